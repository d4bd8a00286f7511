/*
 * The per-server registry behind reflection (src/protobuf/registry.c): files deduplicated
 * by name across the copies generated code embeds, every import registered with its
 * service, the symbol index, the import closure reflection answers with, bad records
 * refused (cycles, over-deep imports, missing names), and every allocation failure
 * leaving a registry whose files are complete and a retry that succeeds.
 */
#include <string.h>

#include <arpc/arpc.h>

#include "base/alloc.h"
#include "protobuf/registry.h"
#include "refl_fixture.h"
#include "rpc/server.h"
#include "test.h"

static arpc_runtime *rt;

static arpc_server *new_server(void)
{
    arpc_server *srv = NULL;
    ASSERT_OK(arpc_server_create(rt, NULL, &srv));
    return srv;
}

static arpc__pb_registry *registry_of(arpc_server *srv)
{
    arpc__pb_registry *reg = NULL;
    ASSERT_OK(arpc__pb_registry_get(srv, &reg));
    ASSERT_TRUE(reg == arpc__server_registry(srv));
    return reg;
}

static long find_file(const arpc__pb_registry *reg, const char *name)
{
    return arpc__pb_registry_find_file(reg, name, strlen(name));
}

static long find_symbol(const arpc__pb_registry *reg, const char *symbol)
{
    return arpc__pb_registry_find_symbol(reg, symbol, strlen(symbol));
}

static const char *file_name(const arpc__pb_registry *reg, long i)
{
    ASSERT_GE(i, 0);
    return arpc__pb_registry_file(reg, (size_t)i)->name;
}

/* Both services: the four files once each, every file after its imports. */
static void check_both(const arpc__pb_registry *reg)
{
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 2);
    ASSERT_TRUE(arpc__pb_registry_service(reg, 0) == &refl_calc_service);
    ASSERT_TRUE(arpc__pb_registry_service(reg, 1) == &refl_mirror_service);
    ASSERT_EQ(arpc__pb_registry_file_count(reg), 4);
    ASSERT_STREQ(file_name(reg, 0), REFL_TS_PROTO);
    ASSERT_STREQ(file_name(reg, 1), REFL_BASE_PROTO);
    ASSERT_STREQ(file_name(reg, 2), REFL_CALC_PROTO);
    ASSERT_STREQ(file_name(reg, 3), REFL_OTHER_PROTO);
    for (long i = 0; i < 4; i++)
        ASSERT_EQ(find_file(reg, file_name(reg, i)), i);
}

static void test_files_deduplicated_by_name(void)
{
    arpc_server *srv = new_server();
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    const arpc__pb_registry *reg = registry_of(srv);
    check_both(reg);
    /* other.proto's own copy of base.proto is a distinct object; calc's, registered
     * first, stands for both. */
    const arpc_pb_file *other = arpc__pb_registry_file(reg, 3);
    ASSERT_TRUE(other->deps[0] != arpc__pb_registry_file(reg, 1));
    ASSERT_TRUE(refl_calc_service.file->deps[0] == arpc__pb_registry_file(reg, 1));
    size_t len = 0;
    const uint8_t *bytes = refl_descriptor(REFL_BASE_PROTO, &len);
    ASSERT_EQ(arpc__pb_registry_file(reg, 1)->descriptor_len, len);
    ASSERT_MEMEQ(arpc__pb_registry_file(reg, 1)->descriptor, bytes, len);
    ASSERT_EQ(find_file(reg, "refl/nope.proto"), -1);
    ASSERT_EQ(find_file(reg, "refl/base.prot"), -1);
    arpc_server_destroy(srv);
}

static void test_service_added_twice_is_kept_once(void)
{
    arpc_server *srv = new_server();
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    check_both(registry_of(srv));
    arpc_server_destroy(srv);
}

static void test_symbols_find_their_files(void)
{
    arpc_server *srv = new_server();
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "google.protobuf.Timestamp")), REFL_TS_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.base.Point.Label")), REFL_BASE_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.base.Color")), REFL_BASE_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.calc.Calc")), REFL_CALC_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.calc.Calc.Chat")), REFL_CALC_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.calc.AddReply")), REFL_CALC_PROTO);
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "refl.other.Mirror.Flip")), REFL_OTHER_PROTO);
    /* A view of a longer string: no NUL needed. */
    ASSERT_STREQ(file_name(reg, arpc__pb_registry_find_symbol(reg, "refl.calc.AddRequestX", 20)),
                 REFL_CALC_PROTO);
    ASSERT_EQ(find_symbol(reg, "refl.calc.Cal"), -1);
    ASSERT_EQ(find_symbol(reg, "refl.calc.Calc/Add"), -1);
    ASSERT_EQ(find_symbol(reg, ""), -1);
    arpc_server_destroy(srv);
}

static void check_closure(const arpc__pb_registry *reg, const char *file, const char *const *want,
                          size_t n)
{
    size_t order[4];
    unsigned char seen[4];
    size_t got = arpc__pb_registry_closure(reg, (size_t)find_file(reg, file), order, seen);
    ASSERT_EQ(got, n);
    for (size_t i = 0; i < n; i++)
        ASSERT_STREQ(file_name(reg, (long)order[i]), want[i]);
}

static void test_closure_is_the_file_then_its_imports(void)
{
    arpc_server *srv = new_server();
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    const arpc__pb_registry *reg = registry_of(srv);
    const char *calc[] = {REFL_CALC_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    const char *other[] = {REFL_OTHER_PROTO, REFL_BASE_PROTO, REFL_TS_PROTO};
    const char *ts[] = {REFL_TS_PROTO};
    check_closure(reg, REFL_CALC_PROTO, calc, 3);
    check_closure(reg, REFL_OTHER_PROTO, other, 3);
    check_closure(reg, REFL_TS_PROTO, ts, 1);
    arpc_server_destroy(srv);
}

/* A diamond: top imports left and right, both import bottom; bottom is sent once. */
static void test_closure_of_a_diamond_holds_each_file_once(void)
{
    static const arpc_pb_file bottom = {.name = "d/bottom.proto"};
    static const arpc_pb_file *const to_bottom[] = {&bottom};
    static const arpc_pb_file left = {.name = "d/left.proto", .deps = to_bottom, .dep_count = 1};
    static const arpc_pb_file right = {.name = "d/right.proto", .deps = to_bottom, .dep_count = 1};
    static const arpc_pb_file *const sides[] = {&left, &right};
    static const arpc_pb_file top = {.name = "d/top.proto", .deps = sides, .dep_count = 2};
    static const arpc_pb_service svc = {.name = "d.Top", .file = &top};
    arpc_server *srv = new_server();
    ASSERT_OK(arpc__pb_registry_add(srv, &svc));
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_EQ(arpc__pb_registry_file_count(reg), 4);
    const char *want[] = {"d/top.proto", "d/left.proto", "d/right.proto", "d/bottom.proto"};
    check_closure(reg, "d/top.proto", want, 4);
    /* The service's name finds its file though the file lists no symbols. */
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "d.Top")), "d/top.proto");
    arpc_server_destroy(srv);
}

static void test_bad_records_are_refused(void)
{
    static const arpc_pb_file nameless = {.name = NULL};
    static const arpc_pb_file *const to_nameless[] = {&nameless};
    static const arpc_pb_file with_bad_dep = {
        .name = "bad.proto", .deps = to_nameless, .dep_count = 1};
    static const char *const bad_symbols[] = {"ok.Symbol", ""};
    static const arpc_pb_file bad_symbol = {
        .name = "sym.proto", .symbols = bad_symbols, .symbol_count = 2};
    const arpc_pb_service cases[] = {
        {.name = NULL, .file = refl_calc_service.file},
        {.name = "", .file = refl_calc_service.file},
        {.name = "x.Nameless", .file = &nameless},
        {.name = "x.BadDep", .file = &with_bad_dep},
        {.name = "x.BadSymbol", .file = &bad_symbol},
    };
    arpc_server *srv = new_server();
    ASSERT_ERR(arpc__pb_registry_add(NULL, &refl_calc_service), ARPC_EINVAL);
    ASSERT_ERR(arpc__pb_registry_add(srv, NULL), ARPC_EINVAL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ASSERT_ERR(arpc__pb_registry_add(srv, &cases[i]), ARPC_EINVAL);
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 0);
    ASSERT_EQ(find_file(reg, "bad.proto"), -1);
    ASSERT_EQ(find_file(reg, "sym.proto"), -1);
    /* A service built by hand without a descriptor is listed by name, with no file. */
    size_t files = arpc__pb_registry_file_count(reg);
    const arpc_pb_service no_file = {.name = "x.NoFile", .file = NULL};
    ASSERT_OK(arpc__pb_registry_add(srv, &no_file));
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 1);
    ASSERT_EQ(arpc__pb_registry_file_count(reg), files);
    /* arpc_pb_register takes a listing back when the methods fail to register. */
    ASSERT_TRUE(arpc__pb_registry_lists(srv, "x.NoFile"));
    arpc__pb_registry_forget(srv, &no_file);
    ASSERT_FALSE(arpc__pb_registry_lists(srv, "x.NoFile"));
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 0);
    ASSERT_OK(arpc__pb_registry_add(srv, &no_file)); /* listed again */
    ASSERT_TRUE(arpc__pb_registry_lists(srv, "x.NoFile"));
    arpc_server_destroy(srv);
}

static void test_import_cycle_is_refused(void)
{
    arpc_pb_file a = {.name = "cycle/a.proto"};
    arpc_pb_file b = {.name = "cycle/b.proto"};
    const arpc_pb_file *to_a[] = {&a};
    const arpc_pb_file *to_b[] = {&b};
    a.deps = to_b;
    a.dep_count = 1;
    b.deps = to_a;
    b.dep_count = 1;
    arpc_pb_service svc = {.name = "cycle.S", .file = &a};
    arpc_server *srv = new_server();
    ASSERT_ERR(arpc__pb_registry_add(srv, &svc), ARPC_EINVAL);
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 0);
    ASSERT_EQ(arpc__pb_registry_file_count(reg), 0);
    arpc_server_destroy(srv);
}

/* A chain of `n` files, chain[0] importing chain[1] ... */
static int add_chain(arpc_server *srv, size_t n)
{
    enum { MAX = ARPC__PB_MAX_IMPORT_DEPTH + 2 };

    static arpc_pb_file chain[MAX];
    static const arpc_pb_file *links[MAX];
    static char names[MAX][64];
    ASSERT_LE(n, MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "chain%zu/f%zu.proto", n, i);
        links[i] = &chain[i];
        chain[i] = (arpc_pb_file){.name = names[i],
                                  .deps = i + 1 < n ? &links[i + 1] : NULL,
                                  .dep_count = i + 1 < n ? 1 : 0};
    }
    char svc_name[64];
    snprintf(svc_name, sizeof(svc_name), "chain%zu.S", n);
    arpc_pb_service svc = {.name = svc_name, .file = &chain[0]};
    return arpc__pb_registry_add(srv, &svc);
}

static void test_imports_nested_too_deep_are_refused(void)
{
    arpc_server *srv = new_server();
    /* The service's file at depth 0, the last import at ARPC__PB_MAX_IMPORT_DEPTH. */
    ASSERT_OK(add_chain(srv, ARPC__PB_MAX_IMPORT_DEPTH + 1));
    ASSERT_ERR(add_chain(srv, ARPC__PB_MAX_IMPORT_DEPTH + 2), ARPC_EINVAL);
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 1);
    ASSERT_EQ(arpc__pb_registry_file_count(reg), ARPC__PB_MAX_IMPORT_DEPTH + 1);
    arpc_server_destroy(srv);
}

static void test_nothing_after_listening(void)
{
    arpc_server *srv = new_server();
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_ERR(arpc__pb_registry_add(srv, &refl_calc_service), ARPC_EINVAL);
    ASSERT_ERR(arpc_server_enable_reflection(srv), ARPC_EINVAL);
    ASSERT_TRUE(arpc__server_registry(srv) == NULL);
    arpc_server_destroy(srv);

    srv = new_server();
    ASSERT_ERR(arpc_server_enable_reflection(NULL), ARPC_EINVAL);
    ASSERT_OK(arpc_server_enable_reflection(srv));
    ASSERT_ERR(arpc_server_enable_reflection(srv), ARPC_EINVAL);
    /* Its own two services are listed, with their files. */
    const arpc__pb_registry *reg = registry_of(srv);
    ASSERT_EQ(arpc__pb_registry_service_count(reg), 2);
    ASSERT_STREQ(arpc__pb_registry_service(reg, 0)->name, "grpc.reflection.v1.ServerReflection");
    ASSERT_STREQ(arpc__pb_registry_service(reg, 1)->name,
                 "grpc.reflection.v1alpha.ServerReflection");
    ASSERT_STREQ(file_name(reg, find_symbol(reg, "grpc.reflection.v1alpha.ErrorResponse")),
                 "grpc/reflection/v1alpha/reflection.proto");
    arpc_server_destroy(srv);
}

/* After a failed add: the service is not listed, and each registered file has its
 * imports registered and its symbols indexed. */
static void check_complete(const arpc__pb_registry *reg)
{
    for (size_t i = 0; i < arpc__pb_registry_file_count(reg); i++) {
        const arpc_pb_file *f = arpc__pb_registry_file(reg, i);
        for (size_t d = 0; d < f->dep_count; d++)
            ASSERT_GE(find_file(reg, f->deps[d]->name), 0);
        for (size_t s = 0; s < f->symbol_count; s++)
            ASSERT_GE(find_symbol(reg, f->symbols[s]), 0);
    }
}

static void test_allocation_failures_leave_complete_files(void)
{
    arpc_server *srv = new_server();
    uint64_t before = arpc__alloc_count();
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
    ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
    int64_t needed = (int64_t)(arpc__alloc_count() - before);
    arpc_server_destroy(srv);
    ASSERT_GT(needed, 0);
    uint64_t failed = 0;
    for (int64_t n = 0; n < needed; n++) {
        srv = new_server();
        uint64_t failures = arpc__alloc_failures();
        arpc__alloc_fail_after(n);
        int rc = arpc__pb_registry_add(srv, &refl_calc_service);
        if (rc == 0)
            rc = arpc__pb_registry_add(srv, &refl_mirror_service);
        arpc__alloc_fail_after(-1);
        if (rc != 0) {
            ASSERT_ERR(rc, ARPC_ENOMEM);
            ASSERT_GT(arpc__alloc_failures(), failures);
            failed++;
            arpc__pb_registry *reg = arpc__server_registry(srv);
            if (reg != NULL)
                check_complete(reg);
        }
        /* A retry completes it. */
        ASSERT_OK(arpc__pb_registry_add(srv, &refl_calc_service));
        ASSERT_OK(arpc__pb_registry_add(srv, &refl_mirror_service));
        check_both(registry_of(srv));
        arpc_server_destroy(srv);
    }
    ASSERT_GT(failed, 0);
}

/* arpc_server_enable_reflection does all or nothing: after any allocation failure the
 * service lists nothing new and a second call succeeds. */
static void test_enable_reflection_fails_whole(void)
{
    arpc_server *srv = new_server();
    uint64_t before = arpc__alloc_count();
    ASSERT_OK(arpc_server_enable_reflection(srv));
    int64_t needed = (int64_t)(arpc__alloc_count() - before);
    ASSERT_ERR(arpc_server_enable_reflection(srv), ARPC_EINVAL); /* enabled already */
    arpc_server_destroy(srv);
    ASSERT_GT(needed, 0);
    for (int64_t n = 0; n < needed; n++) {
        srv = new_server();
        arpc__alloc_fail_after(n);
        int rc = arpc_server_enable_reflection(srv);
        arpc__alloc_fail_after(-1);
        if (rc != 0) {
            ASSERT_ERR(rc, ARPC_ENOMEM);
            const arpc__pb_registry *reg = arpc__server_registry(srv);
            if (reg != NULL)
                ASSERT_EQ(arpc__pb_registry_service_count(reg), 0);
            ASSERT_OK(arpc_server_enable_reflection(srv));
        }
        ASSERT_EQ(arpc__pb_registry_service_count(registry_of(srv)), 2);
        arpc_server_destroy(srv);
    }
}

int main(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    RUN_TEST(test_files_deduplicated_by_name);
    RUN_TEST(test_service_added_twice_is_kept_once);
    RUN_TEST(test_symbols_find_their_files);
    RUN_TEST(test_closure_is_the_file_then_its_imports);
    RUN_TEST(test_closure_of_a_diamond_holds_each_file_once);
    RUN_TEST(test_bad_records_are_refused);
    RUN_TEST(test_import_cycle_is_refused);
    RUN_TEST(test_imports_nested_too_deep_are_refused);
    RUN_TEST(test_nothing_after_listening);
    RUN_TEST(test_allocation_failures_leave_complete_files);
    RUN_TEST(test_enable_reflection_fails_whole);
    arpc_runtime_destroy(rt);
    return 0;
}
