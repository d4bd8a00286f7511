/*
 * protoc-c 1.4.1's name conversions (protoc-c/c_helpers.cc), redone in C so that the
 * names protoc-gen-arpc writes are the ones protoc-c writes for the same .proto:
 * CamelToLower, CamelToUpper, ToCamel and the FullNameTo* family, with protoc-c's
 * (pb_c_file).c_package override.  docs/protobuf.md section 1 states the rules.
 *
 * Every function returns a string the caller frees, or NULL when out of memory.
 */
#ifndef PROTOC_GEN_ARPC_NAMES_H
#define PROTOC_GEN_ARPC_NAMES_H

#include <stdbool.h>

/** "SumAdd" -> "sum_add", "HTTPServer" -> "httpserver", "getX2Y" -> "get_x2_y":
 *  an '_' before each upper-case letter that follows a non-upper-case one. */
char *gen_camel_to_lower(const char *name);

/** As gen_camel_to_lower(), upper-cased: "SumAdd" -> "SUM_ADD". */
char *gen_camel_to_upper(const char *name);

/** "foo_bar" -> "FooBar": drops each '_' and upper-cases the letter after it. */
char *gen_to_camel(const char *name);

/** ASCII upper-case copy. */
char *gen_to_upper(const char *name);

/**
 * The three spellings of a fully qualified proto name (no leading '.') as protoc-c
 * writes them: each dot-separated part converted, joined by "__", empty parts skipped.
 *   lower: "p.q.FooBar" -> "p__q__foo_bar"   (functions: p__q__foo_bar__init)
 *   upper: "p.q.FooBar" -> "P__Q__FOO_BAR"   (macros: P__Q__FOO_BAR__INIT)
 *   c:     "p.q.FooBar" -> "P__Q__FooBar"    (types)
 * `package` is the package of the file defining the name; `c_package` that file's
 * (pb_c_file).c_package option, or NULL: when set it replaces the package.
 */
char *gen_full_name_to_lower(const char *full_name, const char *package, const char *c_package);
char *gen_full_name_to_upper(const char *full_name, const char *package, const char *c_package);
char *gen_full_name_to_c(const char *full_name, const char *package, const char *c_package);

/** True if `name` is a keyword of C11 or C++ (up to C++20), or an alternative token
 *  of C++ ("and", "or", ...): a struct member so named would not compile as both. */
bool gen_is_keyword(const char *name);

/** "dir/calc.proto" -> "dir/calc" (also strips ".protodevel", as protoc-c does). */
char *gen_strip_proto(const char *filename);

/** A C identifier from a file name, for include guards: letters and digits kept,
 *  any other byte written as '_' and two hex digits ("a/b.proto" -> "a_2fb_2eproto"). */
char *gen_filename_identifier(const char *filename);

#endif
