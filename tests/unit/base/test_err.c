/*
 * The error table: walking ARPC_ERR_MAP proves every code is negative, unique,
 * in the right range (OS codes are -errno, arpc's own are <= -1000), and has a
 * non-empty text and name that arpc_strerror()/arpc_err_name() return.  Codes
 * outside the table get "unknown error" / "UNKNOWN" (or strerror()'s text for
 * a real errno), and never NULL.
 */
#include <limits.h>
#include <string.h>

#include <arpc/err.h>

#include "test.h"

typedef struct err_entry {
    const char *name;
    int value;
    const char *text;
} err_entry;

static const err_entry table[] = {
#define ENTRY(name, value, text) {#name, value, text},
    ARPC_ERR_MAP(ENTRY)
#undef ENTRY
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

static void test_values_unique_and_in_range(void)
{
    ASSERT_GT(TABLE_LEN, 0);
    for (size_t i = 0; i < TABLE_LEN; i++) {
        ASSERT_LT(table[i].value, 0);
        /* OS failures are -errno (above -1000); arpc's own codes start at -1000. */
        if (table[i].value > -1000)
            ASSERT_LT(-table[i].value, 4096);
        for (size_t j = i + 1; j < TABLE_LEN; j++) {
            ASSERT_NE(table[i].value, table[j].value);
            ASSERT_TRUE(strcmp(table[i].name, table[j].name) != 0);
        }
    }
}

static void test_text_and_name_match_table(void)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const char *text = arpc_strerror(table[i].value);
        const char *name = arpc_err_name(table[i].value);
        ASSERT_TRUE(text != NULL && name != NULL);
        ASSERT_GT(strlen(table[i].text), 0);
        ASSERT_GT(strlen(table[i].name), 0);
        ASSERT_STREQ(text, table[i].text);
        ASSERT_STREQ(name, table[i].name);
    }
}

static void test_enum_matches_errno(void)
{
    ASSERT_EQ(ARPC_ENOMEM, -ENOMEM);
    ASSERT_EQ(ARPC_ETIMEDOUT, -ETIMEDOUT);
    ASSERT_EQ(ARPC_ECONNREFUSED, -ECONNREFUSED);
    ASSERT_EQ(ARPC_EFRAME, -1001);
    ASSERT_STREQ(arpc_err_name(ARPC_ETIMEDOUT), "ETIMEDOUT");
    ASSERT_STREQ(arpc_strerror(ARPC_ETIMEDOUT), "deadline exceeded");
}

static void test_unknown_codes(void)
{
    static const int unknown[] = {0, 1, 42, INT_MAX, -1000, -1500, -999999, INT_MIN};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ASSERT_STREQ(arpc_strerror(unknown[i]), "unknown error");
        ASSERT_STREQ(arpc_err_name(unknown[i]), "UNKNOWN");
    }
}

static void test_plain_errno_uses_strerror(void)
{
    /* A real errno that is not in the table: described, but not named. */
    char want[256];
    snprintf(want, sizeof(want), "%s", strerror(ENOENT));
    ASSERT_STREQ(arpc_strerror(-ENOENT), want);
    ASSERT_STREQ(arpc_err_name(-ENOENT), "UNKNOWN");
}

int main(void)
{
    RUN_TEST(test_values_unique_and_in_range);
    RUN_TEST(test_text_and_name_match_table);
    RUN_TEST(test_enum_matches_errno);
    RUN_TEST(test_unknown_codes);
    RUN_TEST(test_plain_errno_uses_strerror);
    return 0;
}
