/*
 * The typed ShapeStore, Keywords and Pinger services of tests/codegen/proto, through
 * the code protoc-gen-arpc and protoc-c generate from them (arpc_codegen_gen), shared
 * by test_pb_generated and interop_grpc_typed.  tests/interop/grpc/typed_peer.py
 * implements the same semantics in Python from the same .proto:
 *  - GetShape(Point{x, y}): the Shape gen_fill_shape() builds; x < 0 is application
 *    error 9 (FAILED_PRECONDITION) with the message "negative x".
 *  - ListVertices(Shape): each of its vertices sent back as received (unknown fields
 *    too, as protobuf keeps them).
 *  - UploadPoints(stream Point): Empty; the sum of every x + y is what GetHTTPStatus
 *    answers afterwards (the Int32Value), so a caller can check what arrived.
 *  - Chat(stream EchoRequest): one EchoReply per request, parts [text, shape's name or
 *    ""], at.seconds its index.
 *  - Echo(EchoRequest): checks a request built by gen_fill_echo() (x, y from its Any,
 *    which holds a Point) field by field and answers parts [text, "checked"], at
 *    {x, y}; a mismatch is application error 3 naming the field.  The text "metadata"
 *    answers the value of the request's "x-typed-in" in parts[1] and adds it as
 *    "x-typed-out" to the answer's metadata; "deadline" answers the remaining
 *    milliseconds in parts[1].
 *  - Now: no handler (ARPC_ENOMETHOD).  Keywords.Return: parts ["return:" text];
 *    Keywords.Int (bidi): "int:" text for each; the others no handler.
 *  - Pinger.Send (c_package renamed.pkg): seq + 1.
 */
#ifndef GEN_SERVICE_H
#define GEN_SERVICE_H

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

#include "arpc/test/cpkg/renamed.arpc.h"
#include "arpc/test/svc/all.arpc.h"

#define SS(name) arpc__test__svc__v1__shape_store__arpc_##name
#define KW(name) arpc__test__svc__v1__keywords__arpc_##name

typedef Arpc__Test__Common__Point gen_point;
typedef Arpc__Test__Common__Shape gen_shape;
typedef Arpc__Test__Common__Shape__Vertex gen_vertex;
typedef Arpc__Test__Svc__V1__EchoRequest gen_echo_req;
typedef Arpc__Test__Svc__V1__EchoReply gen_echo_reply;

/* Registers ShapeStore, Keywords, Nothing and Pinger on `srv`; returns the first error. */
int gen_register_all(arpc_server *srv);

/* The canonical Shape of (x, y), allocated from `arena`: name "shape-X-Y"; three
 * vertices at (x+i, y-i), the second a corner; labels {x: x, y: y, big: 2^40};
 * points_by_id {x: (y, x), 1000+x: (-x, -y)}; fill by x % 3: color GREEN, pattern
 * "stripes-Y", texture {x, y, 0, 255}; area x*y/2; created {1700000000+x, y};
 * lifetime {y, 500}; tags ["t0", "t-X"]; int -x-1; default y odd. */
void gen_fill_shape(arpc_arena *arena, int32_t x, int32_t y, gen_shape *out);

/* NULL when `s` is exactly gen_fill_shape(x, y)'s (maps in any order), else the
 * first field that differs. */
const char *gen_check_shape(const gen_shape *s, int32_t x, int32_t y);

/* The request Echo checks: text "echo", shape gen_fill_shape(x, y), extra an Any of
 * type.googleapis.com/arpc.test.common.Point holding (x, y), meta the Struct
 * {n: 1.5, s: "str", b: true, l: [1, "two"], z: null}, maybe x*y. */
void gen_fill_echo(arpc_arena *arena, int32_t x, int32_t y, gen_echo_req *out);

/* NULL when `r` is gen_fill_echo(x, y)'s with x, y read from its Any (stored in *x,
 * *y), else the first field that differs. */
const char *gen_check_echo(const gen_echo_req *r, int32_t *x, int32_t *y);

#endif
