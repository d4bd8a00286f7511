/*
 * Design notes: the text of NAME.arpc.h and NAME.arpc.c, exactly the API of
 * docs/protobuf.md section 1.  Every name comes from the plan (model.c), the same
 * spelling check.c tested for collisions.
 *
 * The generated code converts between typed and untyped only where protobuf.h makes it
 * safe: a message pointer to and from ProtobufCMessage * (protobuf-c puts `base` first
 * in every message), and a typed handler or callback to and from arpc_pb_fn, the
 * void (*)(void) that C allows any function pointer to round-trip through (and that
 * GCC's -Wcast-function-type exempts).  Pointers the runtime writes go through a local
 * ProtobufCMessage * rather than a cast of the caller's Out **, which would write one
 * pointer type through another.
 *
 * The .c defines the file objects for reflection only when the file has a service:
 * nothing else refers to them, and an unreferenced static would warn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

static const char *const kind_names[] = {"ARPC_PB_UNARY", "ARPC_PB_SERVER_STREAM",
                                         "ARPC_PB_CLIENT_STREAM", "ARPC_PB_BIDI_STREAM"};
static const char *const kind_words[] = {"unary", "server streaming", "client streaming",
                                         "bidirectional streaming"};

/* A C string literal of `s`: quotes, backslashes, '?' (trigraphs) and non-printables
 * escaped. */
static void put_cstr(gen_out *o, const char *s)
{
    gen_out_printf(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\' || *p == '?' || *p < 0x20 || *p >= 0x7f)
            gen_out_printf(o, "\\%03o", *p);
        else
            gen_out_printf(o, "%c", *p);
    }
    gen_out_printf(o, "\"");
}

/* ---- the header ----------------------------------------------------------------------- */

static void header_unary(gen_out *o, const gen_service *s, const gen_method *gm)
{
    const char *p = s->lower, *m = gm->lower;

    gen_out_printf(o,
                   "/** Server: fills `out` (initialized) and returns 0, or returns an error. */\n"
                   "typedef int (*%s__arpc_%s_fn)(arpc_request *req, const %s *in, %s *out,\n"
                   "                              void *user_data);\n",
                   p, m, gm->in_c, gm->out_c);
    gen_out_printf(o,
                   "/** Client: calls and waits (arpc_pb_call()); `rsp` NULL drops the answer. */\n"
                   "int %s__arpc_%s(arpc_channel *ch, const %s *req, const arpc_call_opts *opts,\n"
                   "                %s **rsp);\n",
                   p, m, gm->in_c, gm->out_c);
    gen_out_printf(
        o,
        "/** Client: the async call's callback; `rsp` is NULL unless status is 0. */\n"
        "typedef void (*%s__arpc_%s_cb)(int status, const %s *rsp, void *user_data);\n"
        "/** Client: starts the call (arpc_pb_call_async()). */\n"
        "int %s__arpc_%s_async(arpc_channel *ch, const %s *req, const arpc_call_opts *opts,\n"
        "                      %s__arpc_%s_cb cb, void *user_data);\n",
        p, m, gm->out_c, p, m, gm->in_c, p, m);
}

static void header_handler(gen_out *o, const gen_service *s, const gen_method *gm)
{
    const char *p = s->lower, *m = gm->lower;

    switch (gm->kind) {
    case GEN_SERVER_STREAM:
        gen_out_printf(
            o,
            "/** Server: sends answers on `st`, returns the final status. */\n"
            "typedef int (*%s__arpc_%s_fn)(arpc_stream *st, const %s *in, void *user_data);\n",
            p, m, gm->in_c);
        break;
    case GEN_CLIENT_STREAM:
        gen_out_printf(
            o,
            "/** Server: reads requests from `st`, fills `out` (initialized), returns\n"
            " *  the final status. */\n"
            "typedef int (*%s__arpc_%s_fn)(arpc_stream *st, %s *out, void *user_data);\n",
            p, m, gm->out_c);
        break;
    default:
        gen_out_printf(o,
                       "/** Server: reads and sends on `st`, returns the final status. */\n"
                       "typedef int (*%s__arpc_%s_fn)(arpc_stream *st, void *user_data);\n",
                       p, m);
    }
}

/* The stream helpers a kind has: open, then the client's write/read and the server's
 * recv/send (docs/protobuf.md section 1). */
static void header_stream(gen_out *o, const gen_service *s, const gen_method *gm)
{
    const char *p = s->lower, *m = gm->lower;

    header_handler(o, s, gm);
    if (gm->kind == GEN_SERVER_STREAM)
        gen_out_printf(o,
                       "/** Client: opens the stream, writes `req` and half-closes\n"
                       " *  (arpc_pb_stream_open()). */\n"
                       "int %s__arpc_%s_open(arpc_channel *ch, const %s *req,\n"
                       "                     const arpc_call_opts *opts, arpc_stream **st);\n",
                       p, m, gm->in_c);
    else
        gen_out_printf(o,
                       "/** Client: opens the stream (arpc_pb_stream_open()). */\n"
                       "int %s__arpc_%s_open(arpc_channel *ch, const arpc_call_opts *opts,\n"
                       "                     arpc_stream **st);\n"
                       "/** Client: writes one request (arpc_pb_stream_write()). */\n"
                       "int %s__arpc_%s_write(arpc_stream *st, const %s *msg);\n",
                       p, m, p, m, gm->in_c);
    if (gm->kind == GEN_CLIENT_STREAM)
        gen_out_printf(o,
                       "/** Client: half-closes and reads the answer\n"
                       " *  (arpc_pb_stream_close_and_recv()). */\n"
                       "int %s__arpc_%s_close_and_recv(arpc_stream *st, arpc_arena *arena,\n"
                       "                               arpc_buf *error_message, %s **rsp);\n",
                       p, m, gm->out_c);
    else
        gen_out_printf(o,
                       "/** Client: reads the next answer (arpc_pb_stream_read()). */\n"
                       "int %s__arpc_%s_read(arpc_stream *st, arpc_arena *arena, %s **msg);\n",
                       p, m, gm->out_c);
    if (gm->kind != GEN_SERVER_STREAM)
        gen_out_printf(o,
                       "/** Server: reads the next request (arpc_pb_stream_read()). */\n"
                       "int %s__arpc_%s_recv(arpc_stream *st, arpc_arena *arena, %s **msg);\n",
                       p, m, gm->in_c);
    if (gm->kind != GEN_CLIENT_STREAM)
        gen_out_printf(o,
                       "/** Server: sends one answer (arpc_pb_stream_write()). */\n"
                       "int %s__arpc_%s_send(arpc_stream *st, const %s *msg);\n",
                       p, m, gm->out_c);
}

static void header_method(gen_out *o, const gen_service *s, const gen_method *gm)
{
    gen_out_printf(o, "\n/* %s: %s */\n#define %s__ARPC_%s_METHOD ", gm->md->name,
                   kind_words[gm->kind], s->upper, gm->upper);
    put_cstr(o, gm->wire);
    gen_out_printf(o, "\n");
    if (gm->kind == GEN_UNARY)
        header_unary(o, s, gm);
    else
        header_stream(o, s, gm);
}

static void header_service(gen_out *o, const gen_service *s)
{
    const char *p = s->lower;

    gen_out_printf(o,
                   "\n/* ---- service %s ---- */\n\n"
                   "/** The service, for arpc_pb_register() and reflection. */\n"
                   "extern const arpc_pb_service %s__arpc_service;\n",
                   s->full, p);
    for (size_t i = 0; i < s->n_methods; i++)
        header_method(o, s, &s->methods[i]);
    gen_out_printf(o,
                   "\n/** The server's handlers, one per method: NULL leaves a method unknown to\n"
                   " *  the server. */\n"
                   "typedef struct %s__arpc_handlers {\n",
                   p);
    for (size_t i = 0; i < s->n_methods; i++)
        gen_out_printf(o, "    %s__arpc_%s_fn %s;\n", p, s->methods[i].lower, s->methods[i].member);
    if (s->n_methods == 0)
        gen_out_printf(o, "    char arpc_no_methods; /* C has no empty structs */\n");
    gen_out_printf(o,
                   "} %s__arpc_handlers;\n\n"
                   "/** Registers the non-NULL handlers, each with `user_data`\n"
                   " *  (arpc_pb_register()); ARPC_EINVAL if `handlers` is NULL. */\n"
                   "int %s__arpc_register(arpc_server *srv, const %s__arpc_handlers *handlers,\n"
                   "                      void *user_data);\n",
                   p, p, p);
}

char *gen_emit_header(const gen_plan *plan, const gen_model *m)
{
    const gen_file *f = plan->file;
    gen_out o;

    (void)m;
    gen_out_init(&o);
    gen_out_printf(&o,
                   "/* Generated by protoc-gen-arpc from %s.  DO NOT EDIT.\n"
                   " * The generated API: arpc's docs/protobuf.md. */\n"
                   "#ifndef ARPC_GEN_%s_ARPC_H\n#define ARPC_GEN_%s_ARPC_H\n\n"
                   "#include <arpc/err.h>\n#include <arpc/protobuf.h>\n\n",
                   f->name, f->ident, f->ident);
    if (!f->no_generate)
        gen_out_printf(&o, "#include \"%s.pb-c.h\"\n\n", plan->stem);
    gen_out_printf(&o, "ARPC_BEGIN_DECLS\n");
    for (size_t i = 0; i < plan->n_services; i++)
        header_service(&o, &plan->services[i]);
    gen_out_printf(&o, "\nARPC_END_DECLS\n\n#endif\n");
    return gen_out_take(&o);
}

/* ---- the source: reflection's file objects -------------------------------------------- */

static void put_bytes(gen_out *o, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gen_out_printf(o, "%s0x%02x,", i % 12 == 0 ? "\n    " : " ", b[i]);
    gen_out_printf(o, "\n");
}

/* Writes the symbol scope.name as one array element; returns its full name (NULL if out
 * of memory, which the pool then records). */
static const char *put_symbol(gen_out *o, gen_pool *pool, size_t *count, const char *scope,
                              const char *name)
{
    const char *full = scope[0] != '\0' ? gen_pool_printf(pool, "%s.%s", scope, name)
                                        : gen_pool_printf(pool, "%s", name);

    if (full == NULL)
        return NULL;
    gen_out_printf(o, "    ");
    put_cstr(o, full);
    gen_out_printf(o, ",\n");
    (*count)++;
    return full;
}

static void put_enum_symbols(gen_out *o, gen_pool *pool, size_t *count, const char *scope,
                             gen_enump *const *enums, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_symbol(o, pool, count, scope, enums[i]->name);
}

/* Messages with their nested messages and enums, depth first. */
static void put_message_symbols(gen_out *o, gen_pool *pool, size_t *count, const char *scope,
                                gen_msgp *const *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *full = put_symbol(o, pool, count, scope, msgs[i]->name);

        if (full == NULL)
            return;
        put_message_symbols(o, pool, count, full, msgs[i]->nested_type, msgs[i]->n_nested_type);
        put_enum_symbols(o, pool, count, full, msgs[i]->enum_type, msgs[i]->n_enum_type);
    }
}

/* The symbols array of `f`; returns how many it holds (0: no array written). */
static size_t put_symbols(gen_out *o, const gen_file *f)
{
    const gen_fdp *fd = f->fd;
    gen_out body;
    gen_pool pool;
    size_t count = 0;
    char *text;

    gen_out_init(&body);
    gen_pool_init(&pool);
    put_message_symbols(&body, &pool, &count, f->package, fd->message_type, fd->n_message_type);
    put_enum_symbols(&body, &pool, &count, f->package, fd->enum_type, fd->n_enum_type);
    for (size_t i = 0; i < fd->n_service; i++) {
        const char *svc = put_symbol(&body, &pool, &count, f->package, fd->service[i]->name);

        for (size_t j = 0; svc != NULL && j < fd->service[i]->n_method; j++)
            put_symbol(&body, &pool, &count, svc, fd->service[i]->method[j]->name);
    }
    text = gen_out_take(&body);
    if (text == NULL || pool.failed)
        o->failed = true;
    else if (count > 0)
        gen_out_printf(o, "static const char *const arpc_gen_file_%s_symbols[] = {\n%s};\n",
                       f->ident, text);
    free(text);
    gen_pool_fini(&pool);
    return count;
}

/* The deps array of `f`; returns how many it holds (0: no array written). */
static size_t put_deps(gen_out *o, const gen_model *m, const gen_file *f)
{
    size_t count = 0;

    for (size_t i = 0; i < f->fd->n_dependency; i++) {
        const gen_file *dep = gen_model_file(m, f->fd->dependency[i]);

        if (dep == NULL)
            continue;
        if (count++ == 0)
            gen_out_printf(o, "static const arpc_pb_file *const arpc_gen_file_%s_deps[] = {\n",
                           f->ident);
        gen_out_printf(o, "    &arpc_gen_file_%s,\n", dep->ident);
    }
    if (count > 0)
        gen_out_printf(o, "};\n");
    return count;
}

static void put_file(gen_out *o, const gen_model *m, const gen_file *f)
{
    size_t symbols, deps;

    gen_out_printf(o, "\n/* %s */\nstatic const uint8_t arpc_gen_file_%s_descriptor[] = {", f->name,
                   f->ident);
    put_bytes(o, f->bytes, f->len);
    gen_out_printf(o, "};\n");
    symbols = put_symbols(o, f);
    deps = put_deps(o, m, f);
    gen_out_printf(o, "static const arpc_pb_file arpc_gen_file_%s = {\n    .name = ", f->ident);
    put_cstr(o, f->name);
    gen_out_printf(o,
                   ",\n    .descriptor = arpc_gen_file_%s_descriptor,\n"
                   "    .descriptor_len = sizeof(arpc_gen_file_%s_descriptor),\n",
                   f->ident, f->ident);
    if (symbols > 0)
        gen_out_printf(o, "    .symbols = arpc_gen_file_%s_symbols,\n", f->ident);
    gen_out_printf(o, "    .symbol_count = %zu,\n", symbols);
    if (deps > 0)
        gen_out_printf(o, "    .deps = arpc_gen_file_%s_deps,\n", f->ident);
    gen_out_printf(o, "    .dep_count = %zu,\n};\n", deps);
}

/* The file and everything it imports, each after its own imports: protoc sends the
 * files in that order. */
static void put_files(gen_out *o, const gen_model *m, const gen_file *f)
{
    bool *reach = gen_model_reachable(m, f);

    if (reach == NULL) {
        o->failed = true;
        return;
    }
    gen_out_printf(o, "\n/* ---- descriptors, for reflection ---- */\n");
    for (size_t i = 0; i < m->n_files; i++) {
        if (reach[i])
            put_file(o, m, &m->files[i]);
    }
    free(reach);
}

/* ---- the source: services --------------------------------------------------------------- */

/* The method's `invoke`: converts the stored handler back to its type and calls it with
 * what its kind takes. */
static void source_invoke(gen_out *o, const gen_service *s, const gen_method *gm)
{
    static const char *const unused[] = {"(void)st;", "(void)req;\n    (void)out;",
                                         "(void)req;\n    (void)in;",
                                         "(void)req;\n    (void)in;\n    (void)out;"};
    const char *p = s->lower, *m = gm->lower;

    gen_out_printf(o,
                   "\nstatic int arpc_gen_%s__%s__invoke(arpc_pb_fn handler, arpc_request *req,\n"
                   "        arpc_stream *st, const ProtobufCMessage *in, ProtobufCMessage *out,\n"
                   "        void *user_data)\n{\n    %s\n    return ((%s__arpc_%s_fn)handler)(",
                   p, m, unused[gm->kind], p, m);
    switch (gm->kind) {
    case GEN_UNARY:
        gen_out_printf(o, "req, (const %s *)in, (%s *)out, user_data);\n}\n", gm->in_c, gm->out_c);
        break;
    case GEN_SERVER_STREAM:
        gen_out_printf(o, "st, (const %s *)in, user_data);\n}\n", gm->in_c);
        break;
    case GEN_CLIENT_STREAM:
        gen_out_printf(o, "st, (%s *)out, user_data);\n}\n", gm->out_c);
        break;
    default:
        gen_out_printf(o, "st, user_data);\n}\n");
    }
    if (gm->kind == GEN_UNARY)
        gen_out_printf(o,
                       "\nstatic void arpc_gen_%s__%s__complete(arpc_pb_fn cb, int status,\n"
                       "        const ProtobufCMessage *rsp, void *user_data)\n{\n"
                       "    ((%s__arpc_%s_cb)cb)(status, (const %s *)rsp, user_data);\n}\n",
                       p, m, p, m, gm->out_c);
}

static void source_methods(gen_out *o, const gen_service *s)
{
    if (s->n_methods == 0)
        return;
    gen_out_printf(o, "\nstatic const arpc_pb_method arpc_gen_%s__methods[%zu] = {\n", s->lower,
                   s->n_methods);
    for (size_t i = 0; i < s->n_methods; i++) {
        const gen_method *gm = &s->methods[i];

        gen_out_printf(o,
                       "    {\n        .name = %s__ARPC_%s_METHOD,\n        .kind = %s,\n"
                       "        .input = &%s__descriptor,\n        .output = &%s__descriptor,\n"
                       "        .invoke = arpc_gen_%s__%s__invoke,\n",
                       s->upper, gm->upper, kind_names[gm->kind], gm->in_lower, gm->out_lower,
                       s->lower, gm->lower);
        if (gm->kind == GEN_UNARY)
            gen_out_printf(o, "        .complete = arpc_gen_%s__%s__complete,\n", s->lower,
                           gm->lower);
        gen_out_printf(o, "    },\n");
    }
    gen_out_printf(o, "};\n");
}

static void source_register(gen_out *o, const gen_service *s)
{
    const char *p = s->lower;

    gen_out_printf(o,
                   "\nint %s__arpc_register(arpc_server *srv, const %s__arpc_handlers *handlers,\n"
                   "                      void *user_data)\n{\n",
                   p, p);
    if (s->n_methods > 0)
        gen_out_printf(o, "    arpc_pb_fn fns[%zu];\n\n", s->n_methods);
    gen_out_printf(o, "    if (handlers == NULL)\n        return ARPC_EINVAL;\n");
    for (size_t i = 0; i < s->n_methods; i++)
        gen_out_printf(o, "    fns[%zu] = (arpc_pb_fn)handlers->%s;\n", i, s->methods[i].member);
    gen_out_printf(o, "    return arpc_pb_register(srv, &%s__arpc_service, %s, user_data);\n}\n", p,
                   s->n_methods > 0 ? "fns" : "NULL");
}

/* `&arpc_gen_P__methods[i]` of method i of `s`. */
#define METHOD_REF "&arpc_gen_%s__methods[%zu]"

static void source_unary(gen_out *o, const gen_service *s, const gen_method *gm, size_t i)
{
    const char *p = s->lower, *m = gm->lower;

    gen_out_printf(
        o,
        "\nint %s__arpc_%s(arpc_channel *ch, const %s *req, const arpc_call_opts *opts,\n"
        "                %s **rsp)\n{\n"
        "    ProtobufCMessage *msg = NULL;\n"
        "    int rc = arpc_pb_call(ch, " METHOD_REF ", (const ProtobufCMessage *)req,\n"
        "                          opts, rsp != NULL ? &msg : NULL);\n\n"
        "    if (rsp != NULL)\n        *rsp = (%s *)msg;\n    return rc;\n}\n",
        p, m, gm->in_c, gm->out_c, p, i, gm->out_c);
    gen_out_printf(
        o,
        "\nint %s__arpc_%s_async(arpc_channel *ch, const %s *req, const arpc_call_opts *opts,\n"
        "                      %s__arpc_%s_cb cb, void *user_data)\n{\n"
        "    return arpc_pb_call_async(ch, " METHOD_REF ", (const ProtobufCMessage *)req,\n"
        "                              opts, (arpc_pb_fn)cb, user_data);\n}\n",
        p, m, gm->in_c, p, m, p, i);
}

/* P__arpc_m_<verb>(st, arena, T **msg): one message read as `type`. */
static void source_read(gen_out *o, const gen_service *s, const gen_method *gm, const char *verb,
                        const char *type_c, const char *type_lower)
{
    gen_out_printf(o,
                   "\nint %s__arpc_%s_%s(arpc_stream *st, arpc_arena *arena, %s **msg)\n{\n"
                   "    ProtobufCMessage *m = NULL;\n"
                   "    if (msg == NULL)\n        return ARPC_EINVAL;\n"
                   "    int rc = arpc_pb_stream_read(st, &%s__descriptor, arena, &m);\n\n"
                   "    *msg = (%s *)m;\n    return rc;\n}\n",
                   s->lower, gm->lower, verb, type_c, type_lower, type_c);
}

static void source_write(gen_out *o, const gen_service *s, const gen_method *gm, const char *verb,
                         const char *type_c)
{
    gen_out_printf(o,
                   "\nint %s__arpc_%s_%s(arpc_stream *st, const %s *msg)\n{\n"
                   "    return arpc_pb_stream_write(st, (const ProtobufCMessage *)msg);\n}\n",
                   s->lower, gm->lower, verb, type_c);
}

static void source_open(gen_out *o, const gen_service *s, const gen_method *gm, size_t i)
{
    const char *p = s->lower, *m = gm->lower;

    if (gm->kind == GEN_SERVER_STREAM)
        gen_out_printf(o,
                       "\nint %s__arpc_%s_open(arpc_channel *ch, const %s *req,\n"
                       "                     const arpc_call_opts *opts, arpc_stream **st)\n{\n"
                       "    return arpc_pb_stream_open(ch, " METHOD_REF
                       ", (const ProtobufCMessage *)req,\n"
                       "                               opts, st);\n}\n",
                       p, m, gm->in_c, p, i);
    else
        gen_out_printf(o,
                       "\nint %s__arpc_%s_open(arpc_channel *ch, const arpc_call_opts *opts,\n"
                       "                     arpc_stream **st)\n{\n"
                       "    return arpc_pb_stream_open(ch, " METHOD_REF ", NULL, opts, st);\n}\n",
                       p, m, p, i);
}

static void source_stream(gen_out *o, const gen_service *s, const gen_method *gm, size_t i)
{
    source_open(o, s, gm, i);
    if (gm->kind != GEN_SERVER_STREAM) {
        source_write(o, s, gm, "write", gm->in_c);
        source_read(o, s, gm, "recv", gm->in_c, gm->in_lower);
    }
    if (gm->kind != GEN_CLIENT_STREAM) {
        source_read(o, s, gm, "read", gm->out_c, gm->out_lower);
        source_write(o, s, gm, "send", gm->out_c);
        return;
    }
    gen_out_printf(o,
                   "\nint %s__arpc_%s_close_and_recv(arpc_stream *st, arpc_arena *arena,\n"
                   "                               arpc_buf *error_message, %s **rsp)\n{\n"
                   "    ProtobufCMessage *m = NULL;\n"
                   "    if (rsp == NULL)\n        return ARPC_EINVAL;\n"
                   "    int rc = arpc_pb_stream_close_and_recv(st, &%s__descriptor, arena,\n"
                   "                                           error_message, &m);\n\n"
                   "    *rsp = (%s *)m;\n    return rc;\n}\n",
                   s->lower, gm->lower, gm->out_c, gm->out_lower, gm->out_c);
}

static void source_service(gen_out *o, const gen_service *s, const gen_file *f)
{
    gen_out_printf(o, "\n/* ---- service %s ---- */\n", s->full);
    for (size_t i = 0; i < s->n_methods; i++)
        source_invoke(o, s, &s->methods[i]);
    source_methods(o, s);
    gen_out_printf(o, "\nconst arpc_pb_service %s__arpc_service = {\n    .name = ", s->lower);
    put_cstr(o, s->full);
    if (s->n_methods > 0)
        gen_out_printf(o, ",\n    .methods = arpc_gen_%s__methods", s->lower);
    gen_out_printf(o, ",\n    .method_count = %zu,\n    .file = &arpc_gen_file_%s,\n};\n",
                   s->n_methods, f->ident);
    source_register(o, s);
    for (size_t i = 0; i < s->n_methods; i++) {
        if (s->methods[i].kind == GEN_UNARY)
            source_unary(o, s, &s->methods[i], i);
        else
            source_stream(o, s, &s->methods[i], i);
    }
}

char *gen_emit_source(const gen_plan *plan, const gen_model *m)
{
    gen_out o;

    gen_out_init(&o);
    gen_out_printf(&o,
                   "/* Generated by protoc-gen-arpc from %s.  DO NOT EDIT.\n"
                   " * The generated API: arpc's docs/protobuf.md. */\n"
                   "#include \"%s.arpc.h\"\n",
                   plan->file->name, plan->stem);
    if (plan->n_services > 0)
        put_files(&o, m, plan->file);
    for (size_t i = 0; i < plan->n_services; i++)
        source_service(&o, &plan->services[i], plan->file);
    return gen_out_take(&o);
}
