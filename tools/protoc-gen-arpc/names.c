/*
 * Design notes: protoc-c decides every C name of a .proto; arpc's generated names hang
 * off protoc-c's (docs/protobuf.md section 1), so these functions follow protoc-c
 * 1.4.1's c_helpers.cc character for character, including its quirks: isupper() on
 * the C locale's ASCII, digits counting as "not upper" (so "V2Api" -> "v2_api"), and
 * empty parts of a dotted name skipped.  tests/codegen/test_names.c pins each rule.
 */
#include "names.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Each conversion at most doubles the length; +1 for the terminator. */
static char *alloc_for(const char *name)
{
    return malloc(2 * strlen(name) + 1);
}

/* CamelToLower (upper = false) and CamelToUpper (upper = true). */
static char *camel_convert(const char *name, bool upper)
{
    char *out = alloc_for(name);
    size_t n = 0;
    bool was_upper = true; /* no '_' in front of a leading capital */

    if (out == NULL)
        return NULL;
    for (const char *p = name; *p != '\0'; p++) {
        bool is_upper = isupper((unsigned char)*p) != 0;

        if (is_upper && !was_upper)
            out[n++] = '_';
        out[n++] = (char)(upper ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
        was_upper = is_upper;
    }
    out[n] = '\0';
    return out;
}

char *gen_camel_to_lower(const char *name)
{
    return camel_convert(name, false);
}

char *gen_camel_to_upper(const char *name)
{
    return camel_convert(name, true);
}

char *gen_to_camel(const char *name)
{
    char *out = alloc_for(name);
    size_t n = 0;
    bool next_upper = true;

    if (out == NULL)
        return NULL;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '_') {
            next_upper = true;
        } else {
            out[n++] = next_upper ? (char)toupper((unsigned char)*p) : *p;
            next_upper = false;
        }
    }
    out[n] = '\0';
    return out;
}

char *gen_to_upper(const char *name)
{
    char *out = alloc_for(name);
    size_t n = 0;

    if (out == NULL)
        return NULL;
    for (const char *p = name; *p != '\0'; p++)
        out[n++] = (char)toupper((unsigned char)*p);
    out[n] = '\0';
    return out;
}

/* protoc-c's OverrideFullName: c_package replaces the package part of the name. */
static char *override_full_name(const char *full_name, const char *package, const char *c_package)
{
    size_t plen = package != NULL ? strlen(package) : 0;
    const char *rest = full_name;
    char *out;

    if (c_package == NULL)
        return strdup(full_name);
    if (strlen(full_name) >= plen)
        rest = full_name + plen;
    out = malloc(strlen(c_package) + 1 + strlen(rest) + 1);
    if (out == NULL)
        return NULL;
    strcpy(out, c_package);
    if (plen == 0)
        strcat(out, ".");
    strcat(out, rest);
    return out;
}

typedef char *(*part_fn)(const char *part);

/* Converts each non-empty dotted part with `conv` and joins them with "__". */
static char *join_parts(const char *full_name, const char *package, const char *c_package,
                        part_fn conv)
{
    char *name = override_full_name(full_name, package, c_package);
    char *out = name != NULL ? malloc(4 * strlen(name) + 1) : NULL;
    char *save = NULL;

    if (out == NULL) {
        free(name);
        return NULL;
    }
    out[0] = '\0';
    for (char *part = strtok_r(name, ".", &save); part != NULL; part = strtok_r(NULL, ".", &save)) {
        char *c = conv(part);

        if (c == NULL) {
            free(out);
            out = NULL;
            break;
        }
        if (out[0] != '\0')
            strcat(out, "__");
        strcat(out, c);
        free(c);
    }
    free(name);
    return out;
}

char *gen_full_name_to_lower(const char *full_name, const char *package, const char *c_package)
{
    return join_parts(full_name, package, c_package, gen_camel_to_lower);
}

char *gen_full_name_to_upper(const char *full_name, const char *package, const char *c_package)
{
    return join_parts(full_name, package, c_package, gen_camel_to_upper);
}

char *gen_full_name_to_c(const char *full_name, const char *package, const char *c_package)
{
    return join_parts(full_name, package, c_package, gen_to_camel);
}

static const char *const keywords[] = {
    /* C11 */
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while",
    /* C++ (up to C++20) and its alternative tokens */
    "alignas", "alignof", "and", "and_eq", "asm", "bitand", "bitor", "bool", "catch", "char8_t",
    "char16_t", "char32_t", "class", "compl", "concept", "consteval", "constexpr", "constinit",
    "const_cast", "co_await", "co_return", "co_yield", "decltype", "delete", "dynamic_cast",
    "explicit", "export", "false", "friend", "mutable", "namespace", "new", "noexcept", "not",
    "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public",
    "reinterpret_cast", "requires", "static_assert", "static_cast", "template", "this",
    "thread_local", "throw", "true", "try", "typeid", "typename", "using", "virtual", "wchar_t",
    "xor", "xor_eq"};

bool gen_is_keyword(const char *name)
{
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (strcmp(name, keywords[i]) == 0)
            return true;
    }
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *gen_strip_proto(const char *filename)
{
    char *out = strdup(filename);

    if (out == NULL)
        return NULL;
    if (ends_with(out, ".protodevel"))
        out[strlen(out) - strlen(".protodevel")] = '\0';
    else if (ends_with(out, ".proto"))
        out[strlen(out) - strlen(".proto")] = '\0';
    return out;
}

char *gen_filename_identifier(const char *filename)
{
    static const char hex[] = "0123456789abcdef";
    char *out = malloc(3 * strlen(filename) + 1);
    size_t n = 0;

    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)filename; *p != '\0'; p++) {
        if (isalnum(*p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '_';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return out;
}
