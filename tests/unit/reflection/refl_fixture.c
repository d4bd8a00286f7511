#include "refl_fixture.h"

#include <string.h>

#include "protobuf/registry.h"
#include "refl_base_fd.h"
#include "refl_calc_fd.h"
#include "refl_other_fd.h"
#include "refl_ts_fd.h"
#include "test.h"

static const char *const ts_symbols[] = {"google.protobuf.Timestamp"};
static const char *const base_symbols[] = {"refl.base.Color", "refl.base.Point",
                                           "refl.base.Point.Label"};
static const char *const calc_symbols[] = {
    "refl.calc.AddRequest", "refl.calc.AddReply",     "refl.calc.Calc",      "refl.calc.Calc.Add",
    "refl.calc.Calc.Watch", "refl.calc.Calc.Collect", "refl.calc.Calc.Chat",
};
static const char *const other_symbols[] = {"refl.other.Mirror", "refl.other.Mirror.Flip"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A file's object as generated code has it: name, bytes, symbols, direct imports. */
#define REFL_FILE(file_name, fd, syms, dep_list, ndeps)                                     \
    {                                                                                       \
        .name = file_name, .descriptor = fd, .descriptor_len = sizeof(fd), .symbols = syms, \
        .symbol_count = COUNT(syms), .deps = dep_list, .dep_count = ndeps                   \
    }

/* calc.proto's copies of its imports. */
static const arpc_pb_file calc_ts = REFL_FILE(REFL_TS_PROTO, refl_ts_fd, ts_symbols, NULL, 0);
static const arpc_pb_file *const calc_base_deps[] = {&calc_ts};
static const arpc_pb_file calc_base =
    REFL_FILE(REFL_BASE_PROTO, refl_base_fd, base_symbols, calc_base_deps, 1);
static const arpc_pb_file *const calc_deps[] = {&calc_base};
static const arpc_pb_file calc_file =
    REFL_FILE(REFL_CALC_PROTO, refl_calc_fd, calc_symbols, calc_deps, 1);

/* other.proto's. */
static const arpc_pb_file other_ts = REFL_FILE(REFL_TS_PROTO, refl_ts_fd, ts_symbols, NULL, 0);
static const arpc_pb_file *const other_base_deps[] = {&other_ts};
static const arpc_pb_file other_base =
    REFL_FILE(REFL_BASE_PROTO, refl_base_fd, base_symbols, other_base_deps, 1);
static const arpc_pb_file *const other_deps[] = {&other_base};
static const arpc_pb_file other_file =
    REFL_FILE(REFL_OTHER_PROTO, refl_other_fd, other_symbols, other_deps, 1);

/* Reflection reads no method but its name and kind. */
static const arpc_pb_method calc_methods[] = {
    {.name = "refl.calc.Calc/Add", .kind = ARPC_PB_UNARY},
    {.name = "refl.calc.Calc/Watch", .kind = ARPC_PB_SERVER_STREAM},
    {.name = "refl.calc.Calc/Collect", .kind = ARPC_PB_CLIENT_STREAM},
    {.name = "refl.calc.Calc/Chat", .kind = ARPC_PB_BIDI_STREAM},
};
static const arpc_pb_method mirror_methods[] = {
    {.name = "refl.other.Mirror/Flip", .kind = ARPC_PB_UNARY},
};

const arpc_pb_service refl_calc_service = {
    .name = "refl.calc.Calc",
    .methods = calc_methods,
    .method_count = COUNT(calc_methods),
    .file = &calc_file,
};
const arpc_pb_service refl_mirror_service = {
    .name = "refl.other.Mirror",
    .methods = mirror_methods,
    .method_count = COUNT(mirror_methods),
    .file = &other_file,
};

const uint8_t *refl_descriptor(const char *name, size_t *len)
{
    const arpc_pb_file *files[] = {&calc_file, &other_file, &calc_base, &calc_ts};
    for (size_t i = 0; i < COUNT(files); i++) {
        if (strcmp(files[i]->name, name) == 0) {
            *len = files[i]->descriptor_len;
            return files[i]->descriptor;
        }
    }
    test_fail(__FILE__, __LINE__, "no descriptor for %s", name);
    return NULL;
}

arpc_server *refl_server(arpc_runtime *rt, bool reflection_first)
{
    arpc_server_opts opts;
    arpc_server_opts_init(&opts);
    opts.heartbeat_timeout_ms = 5000; /* a slow sanitizer loop is not a dead peer */
    arpc_server *srv = NULL;
    ASSERT_OK(arpc_server_create(rt, &opts, &srv));
    if (reflection_first)
        ASSERT_OK(arpc_server_enable_reflection(srv));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    if (!reflection_first)
        ASSERT_OK(arpc_server_enable_reflection(srv));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_GT(arpc_server_port(srv), 0);
    return srv;
}
