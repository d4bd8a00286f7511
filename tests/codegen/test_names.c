/*
 * protoc-gen-arpc's name conversions (tools/protoc-gen-arpc/names.c) against protoc-c
 * 1.4.1's: each expected value here is what protoc-c writes for the same name (its
 * c_helpers.cc rules; the all-features .proto of tests/codegen checks the same against
 * protoc-c's real output by compiling both together).
 */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "test.h"

/* Checks one conversion's result and frees it. */
static void check(char *got, const char *want)
{
    ASSERT_TRUE(got != NULL);
    ASSERT_STREQ(got, want);
    free(got);
}

static void test_camel_to_lower(void)
{
    check(gen_camel_to_lower("SumAdd"), "sum_add");
    check(gen_camel_to_lower("sumAdd"), "sum_add");
    check(gen_camel_to_lower("HTTPServer"), "httpserver");
    check(gen_camel_to_lower("GetHTTPStatus"), "get_httpstatus");
    check(gen_camel_to_lower("getX2Y"), "get_x2_y");
    check(gen_camel_to_lower("V2Api"), "v2_api");
    check(gen_camel_to_lower("already_lower"), "already_lower");
    check(gen_camel_to_lower("Snake_Case"), "snake__case");
    check(gen_camel_to_lower(""), "");
}

static void test_camel_to_upper(void)
{
    check(gen_camel_to_upper("SumAdd"), "SUM_ADD");
    check(gen_camel_to_upper("HTTPServer"), "HTTPSERVER");
    check(gen_camel_to_upper("getX2Y"), "GET_X2_Y");
    check(gen_to_upper("sum_add"), "SUM_ADD");
}

static void test_to_camel(void)
{
    check(gen_to_camel("foo_bar"), "FooBar");
    check(gen_to_camel("FooBar"), "FooBar");
    check(gen_to_camel("foo__bar_"), "FooBar");
    check(gen_to_camel("v1"), "V1");
}

static void test_full_names(void)
{
    check(gen_full_name_to_lower("p.q.FooBar", "p.q", NULL), "p__q__foo_bar");
    check(gen_full_name_to_upper("p.q.FooBar", "p.q", NULL), "P__Q__FOO_BAR");
    check(gen_full_name_to_c("p.q.FooBar", "p.q", NULL), "P__Q__FooBar");
    check(gen_full_name_to_c("p.q.Outer.Inner", "p.q", NULL), "P__Q__Outer__Inner");
    check(gen_full_name_to_c("my_pkg.v1.Req", "my_pkg.v1", NULL), "MyPkg__V1__Req");
    check(gen_full_name_to_lower("my_pkg.v1.HTTPReq", "my_pkg.v1", NULL), "my_pkg__v1__httpreq");
    /* No package: just the name. */
    check(gen_full_name_to_lower("Calc", "", NULL), "calc");
    check(gen_full_name_to_c("Calc.Inner", "", NULL), "Calc__Inner");
}

/* protoc-c's (pb_c_file).c_package replaces the package, also where there is none. */
static void test_c_package(void)
{
    check(gen_full_name_to_lower("arpc.test.Pinger", "arpc.test", "renamed.pkg"),
          "renamed__pkg__pinger");
    check(gen_full_name_to_c("arpc.test.Ping", "arpc.test", "renamed.pkg"), "Renamed__Pkg__Ping");
    check(gen_full_name_to_lower("Ping", "", "cpkg"), "cpkg__ping");
    check(gen_full_name_to_upper("a.B.C", "a", "x_y"), "X_Y__B__C");
}

static void test_keywords(void)
{
    static const char *const yes[] = {"return", "switch", "default",  "int",     "delete",
                                      "class",  "and",    "restrict", "nullptr", "co_await"};
    static const char *const no[] = {"sum_add", "returns", "Return", "int_", "main", ""};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ASSERT_TRUE(gen_is_keyword(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ASSERT_TRUE(!gen_is_keyword(no[i]));
}

static void test_files(void)
{
    check(gen_strip_proto("dir/calc.proto"), "dir/calc");
    check(gen_strip_proto("old.protodevel"), "old");
    check(gen_strip_proto("noext"), "noext");
    check(gen_filename_identifier("a/b.proto"), "a_2fb_2eproto");
    /* '_' is escaped too, so two file names never give one identifier. */
    check(gen_filename_identifier("a_b"), "a_5fb");
    check(gen_filename_identifier("a-b"), "a_2db");
}

int main(void)
{
    test_camel_to_lower();
    test_camel_to_upper();
    test_to_camel();
    test_full_names();
    test_c_package();
    test_keywords();
    test_files();
    return 0;
}
