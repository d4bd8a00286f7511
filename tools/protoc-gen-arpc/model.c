/*
 * Design notes: the request's structs (descriptor.pb-c) are borrowed for the whole run;
 * the model adds only what they lack: each file's exact bytes (taken from the request's
 * own encoding rather than re-packed, so reflection serves what protoc produced),
 * protoc-c's file options (an extension protobuf-c keeps as unknown fields), and an index
 * of types by full name so that a method's ".p.q.In" finds the file, and so the
 * c_package, that protoc-c used to name it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "names.h"
#include "wire.h"

/* protoc-c's extension numbers (protobuf-c/protobuf-c.proto). */
#define PB_C_FILE_EXTENSION   1019
#define PB_C_NO_GENERATE      1
#define PB_C_C_PACKAGE        6
#define FILE_SOURCE_CODE_INFO 9
#define REQUEST_PROTO_FILE    15

int gen_fail(char **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    *error = gen_vformat(fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads (pb_c_file) from the file's options: protobuf-c keeps it as an unknown field,
 * whose data is the field's bytes after the tag (the length prefix, then the payload). */
static void read_pb_c_options(gen_file *f, gen_pool *pool)
{
    const ProtobufCMessage *opts = (const ProtobufCMessage *)f->fd->options;

    for (size_t i = 0; opts != NULL && i < opts->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &opts->unknown_fields[i];
        const uint8_t *p, *end;
        gen_field fld;

        if (u->tag != PB_C_FILE_EXTENSION || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED ||
            gen_wire_payload(u->data, u->len, &p, &end) < 0)
            continue;
        while (gen_wire_next(&p, end, &fld) > 0) {
            if (fld.number == PB_C_NO_GENERATE && fld.wire_type == 0)
                f->no_generate = fld.varint != 0;
            if (fld.number == PB_C_C_PACKAGE && fld.wire_type == 2)
                f->c_package = gen_pool_add(pool, strndup((const char *)fld.value, fld.value_len));
        }
    }
}

/* Each proto_file's bytes, in order, from the request's encoding. */
static int take_file_bytes(gen_model *m, const uint8_t *raw, size_t raw_len, char **error)
{
    const uint8_t *p = raw;
    size_t i = 0;
    gen_field fld;
    int rc;

    while ((rc = gen_wire_next(&p, raw + raw_len, &fld)) > 0) {
        size_t len;
        uint8_t *bytes;

        if (fld.number != REQUEST_PROTO_FILE || fld.wire_type != 2 || i == m->n_files)
            continue;
        bytes = gen_wire_strip(fld.value, fld.value_len, FILE_SOURCE_CODE_INFO, &len);
        if (gen_pool_add(&m->pool, (char *)bytes) == NULL)
            return gen_fail(error, "%s: malformed or out of memory", m->files[i].name);
        m->files[i].bytes = bytes;
        m->files[i++].len = len;
    }
    if (rc < 0 || i != m->n_files)
        return gen_fail(error, "malformed CodeGeneratorRequest");
    return 0;
}

static int add_type(gen_model *m, const gen_file *f, const char *full, const gen_msgp *msg,
                    const gen_enump *en)
{
    gen_type *t = realloc(m->types, (m->n_types + 1) * sizeof(*t));

    if (t == NULL || full == NULL)
        return -1;
    m->types = t;
    t[m->n_types++] = (gen_type){.full = full, .file = f, .msg = msg, .en = en};
    return 0;
}

static const char *join_name(gen_pool *pool, const char *scope, const char *name)
{
    return scope[0] != '\0' ? gen_pool_printf(pool, "%s.%s", scope, name)
                            : gen_pool_printf(pool, "%s", name);
}

static int add_enums(gen_model *m, const gen_file *f, const char *scope, gen_enump **enums,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (add_type(m, f, join_name(&m->pool, scope, enums[i]->name), NULL, enums[i]) < 0)
            return -1;
    }
    return 0;
}

static int add_messages(gen_model *m, const gen_file *f, const char *scope, gen_msgp **msgs,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *full = join_name(&m->pool, scope, msgs[i]->name);

        if (add_type(m, f, full, msgs[i], NULL) < 0 ||
            add_messages(m, f, full, msgs[i]->nested_type, msgs[i]->n_nested_type) < 0 ||
            add_enums(m, f, full, msgs[i]->enum_type, msgs[i]->n_enum_type) < 0)
            return -1;
    }
    return 0;
}

static int index_file(gen_model *m, gen_file *f, const gen_fdp *fd)
{
    f->fd = fd;
    f->name = fd->name != NULL ? fd->name : "";
    f->package = fd->package != NULL ? fd->package : "";
    f->ident = gen_pool_add(&m->pool, gen_filename_identifier(f->name));
    read_pb_c_options(f, &m->pool);
    if (m->pool.failed)
        return -1;
    if (add_messages(m, f, f->package, fd->message_type, fd->n_message_type) < 0)
        return -1;
    return add_enums(m, f, f->package, fd->enum_type, fd->n_enum_type);
}

int gen_model_build(gen_model *m, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    const uint8_t *raw, size_t raw_len, char **error)
{
    memset(m, 0, sizeof(*m));
    gen_pool_init(&m->pool);
    m->files = calloc(req->n_proto_file + 1, sizeof(*m->files));
    if (m->files == NULL)
        return gen_fail(error, "out of memory");
    m->n_files = req->n_proto_file;
    for (size_t i = 0; i < m->n_files; i++) {
        if (index_file(m, &m->files[i], req->proto_file[i]) < 0)
            return gen_fail(error, "out of memory");
    }
    return take_file_bytes(m, raw, raw_len, error);
}

void gen_model_fini(gen_model *m)
{
    free(m->files);
    free(m->types);
    gen_pool_fini(&m->pool);
    memset(m, 0, sizeof(*m));
}

const gen_file *gen_model_file(const gen_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_files; i++) {
        if (strcmp(m->files[i].name, name) == 0)
            return &m->files[i];
    }
    return NULL;
}

const gen_type *gen_model_type(const gen_model *m, const char *name)
{
    if (name[0] == '.')
        name++;
    for (size_t i = 0; i < m->n_types; i++) {
        if (strcmp(m->types[i].full, name) == 0)
            return &m->types[i];
    }
    return NULL;
}

/* ---- the plan: every name one file generates ------------------------------------------ */

static const char *type_lower(gen_pool *pool, const gen_type *t)
{
    return gen_pool_add(pool,
                        gen_full_name_to_lower(t->full, t->file->package, t->file->c_package));
}

static const char *type_c(gen_pool *pool, const gen_type *t)
{
    return gen_pool_add(pool, gen_full_name_to_c(t->full, t->file->package, t->file->c_package));
}

/* The method's types, which protoc has resolved to full names (".p.q.In"). */
static int plan_types(gen_plan *plan, const gen_model *m, const gen_service *s, gen_method *gm,
                      char **error)
{
    const char *names[2] = {gm->md->input_type, gm->md->output_type};
    const gen_type *types[2];

    for (int i = 0; i < 2; i++) {
        types[i] = names[i] != NULL ? gen_model_type(m, names[i]) : NULL;
        if (types[i] == NULL || types[i]->msg == NULL)
            return gen_fail(error,
                            "%s: service %s, method %s: type %s is not a message in the "
                            "request",
                            plan->file->name, s->full, gm->md->name,
                            names[i] != NULL ? names[i] : "(none)");
    }
    gm->in = types[0];
    gm->out = types[1];
    gm->in_c = type_c(&plan->pool, gm->in);
    gm->out_c = type_c(&plan->pool, gm->out);
    gm->in_lower = type_lower(&plan->pool, gm->in);
    gm->out_lower = type_lower(&plan->pool, gm->out);
    return 0;
}

static int plan_method(gen_plan *plan, const gen_model *m, const gen_service *s, gen_method *gm,
                       const gen_methodp *md, char **error)
{
    bool cs = md->has_client_streaming && md->client_streaming;
    bool ss = md->has_server_streaming && md->server_streaming;

    gm->md = md;
    gm->kind =
        cs ? (ss ? GEN_BIDI_STREAM : GEN_CLIENT_STREAM) : (ss ? GEN_SERVER_STREAM : GEN_UNARY);
    gm->lower = gen_pool_add(&plan->pool, gen_camel_to_lower(md->name));
    gm->upper = gm->lower != NULL ? gen_pool_add(&plan->pool, gen_to_upper(gm->lower)) : NULL;
    gm->wire = gen_pool_printf(&plan->pool, "%s/%s", s->full, md->name);
    if (gm->lower != NULL)
        gm->member =
            gen_is_keyword(gm->lower) ? gen_pool_printf(&plan->pool, "%s_", gm->lower) : gm->lower;
    if (plan->pool.failed)
        return gen_fail(error, "out of memory");
    return plan_types(plan, m, s, gm, error);
}

static int plan_service(gen_plan *plan, const gen_model *m, gen_service *s, const gen_svcp *sd,
                        char **error)
{
    const gen_file *f = plan->file;

    s->sd = sd;
    s->full = join_name(&plan->pool, f->package, sd->name);
    if (s->full != NULL) {
        s->lower =
            gen_pool_add(&plan->pool, gen_full_name_to_lower(s->full, f->package, f->c_package));
        s->upper =
            gen_pool_add(&plan->pool, gen_full_name_to_upper(s->full, f->package, f->c_package));
        s->c = gen_pool_add(&plan->pool, gen_full_name_to_c(s->full, f->package, f->c_package));
    }
    s->methods = calloc(sd->n_method + 1, sizeof(*s->methods));
    if (plan->pool.failed || s->methods == NULL)
        return gen_fail(error, "out of memory");
    s->n_methods = sd->n_method;
    for (size_t i = 0; i < sd->n_method; i++) {
        if (plan_method(plan, m, s, &s->methods[i], sd->method[i], error) < 0)
            return -1;
    }
    return 0;
}

int gen_plan_build(gen_plan *plan, const gen_model *m, const gen_file *file, char **error)
{
    memset(plan, 0, sizeof(*plan));
    gen_pool_init(&plan->pool);
    plan->file = file;
    plan->stem = gen_pool_add(&plan->pool, gen_strip_proto(file->name));
    plan->services = calloc(file->fd->n_service + 1, sizeof(*plan->services));
    if (plan->stem == NULL || plan->services == NULL)
        return gen_fail(error, "out of memory");
    for (size_t i = 0; i < file->fd->n_service; i++) {
        plan->n_services++;
        if (plan_service(plan, m, &plan->services[i], file->fd->service[i], error) < 0)
            return -1;
    }
    return gen_check(plan, m, error);
}

void gen_plan_fini(gen_plan *plan)
{
    for (size_t i = 0; i < plan->n_services; i++)
        free(plan->services[i].methods);
    free(plan->services);
    gen_pool_fini(&plan->pool);
    memset(plan, 0, sizeof(*plan));
}

static void mark_deps(const gen_model *m, const gen_file *f, bool *marks)
{
    size_t i = (size_t)(f - m->files);

    if (marks[i])
        return;
    marks[i] = true;
    for (size_t d = 0; d < f->fd->n_dependency; d++) {
        const gen_file *dep = gen_model_file(m, f->fd->dependency[d]);

        if (dep != NULL)
            mark_deps(m, dep, marks);
    }
}

bool *gen_model_reachable(const gen_model *m, const gen_file *f)
{
    bool *marks = calloc(m->n_files + 1, sizeof(*marks));

    if (marks != NULL)
        mark_deps(m, f, marks);
    return marks;
}
