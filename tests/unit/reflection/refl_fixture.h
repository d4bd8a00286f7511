/*
 * What the reflection tests serve: two services shaped as protoc-gen-arpc describes them
 * (include/arpc/protobuf.h), over the real descriptors of proto/refl/ (serialized by
 * protoc at build time, cmake/ArpcEmbedDescriptor.cmake):
 *   refl.calc.Calc     calc.proto:  Add, Watch, Collect, Chat (the four kinds)
 *   refl.other.Mirror  other.proto: Flip
 * calc.proto and other.proto both import refl/base.proto, which imports
 * google/protobuf/timestamp.proto.  Like generated code, each service's file carries its
 * own copies of the files it imports (distinct objects with the same names and bytes), so
 * a registry holding both must tell them apart by name.
 */
#ifndef ARPC_TEST_REFL_FIXTURE_H
#define ARPC_TEST_REFL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpc/arpc.h>
#include <arpc/protobuf.h>

extern const arpc_pb_service refl_calc_service;
extern const arpc_pb_service refl_mirror_service;

/* The file names, as protoc names them. */
#define REFL_CALC_PROTO  "refl/calc.proto"
#define REFL_OTHER_PROTO "refl/other.proto"
#define REFL_BASE_PROTO  "refl/base.proto"
#define REFL_TS_PROTO    "google/protobuf/timestamp.proto"

/* The serialized FileDescriptorProto of a file above (a test failure for another name). */
const uint8_t *refl_descriptor(const char *name, size_t *len);

/*
 * A listening server (127.0.0.1, port 0) on `rt` with both services recorded
 * (arpc__pb_registry_add) and reflection enabled, before them when
 * `reflection_first`, after them otherwise.  Its methods have no handlers: reflection
 * reads only the records.  Fails the test on error.
 */
arpc_server *refl_server(arpc_runtime *rt, bool reflection_first);

#endif
