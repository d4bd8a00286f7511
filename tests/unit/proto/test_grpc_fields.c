/*
 * gRPC's header-level pieces (src/proto/grpc/): grpc-timeout parsing and encoding,
 * grpc-message percent-encoding, custom-metadata keys and values, base64 for "-bin"
 * values, and the status table, checked row by row against docs/grpc.md (argv[1]).
 * Decoders also read inputs that end at a PROT_NONE page.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <arpc/err.h>

#include "proto/grpc/wire.h"
#include "test.h"

static const char *doc_path;

/* ---- inputs that end at an unreadable page -------------------------------------------- */

static uint8_t *guard_map;
static size_t guard_page;

static void guard_init(void)
{
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_map =
        mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(guard_map != MAP_FAILED);
    ASSERT_EQ(mprotect(guard_map + guard_page, guard_page, PROT_NONE), 0);
}

/* A copy of s[0, n) whose last byte is the last readable one. */
static const char *at_guard(const char *s, size_t n)
{
    char *p = (char *)guard_map + guard_page - n;
    ASSERT_LE(n, guard_page);
    if (n > 0)
        memcpy(p, s, n);
    return p;
}

/* ---- grpc-timeout --------------------------------------------------------------------- */

static int parse(const char *s, int64_t *ns)
{
    size_t n = strlen(s);
    return arpc__grpc_timeout_parse(at_guard(s, n), n, ns);
}

static void test_timeout_parse_valid(void)
{
    static const struct {
        const char *s;
        int64_t ns;
    } cases[] = {
        {"1n", 1},
        {"0n", 0},
        {"00000000S", 0},
        {"7u", 7000},
        {"2500m", 2500000000LL},
        {"30S", 30000000000LL},
        {"1M", 60000000000LL},
        {"2H", 7200000000000LL},
        {"99999999n", 99999999},
        {"99999999S", 99999999000000000LL},
        {"2562047H", 2562047LL * 3600000000000LL}, /* the largest hour count that fits */
        {"2562048H", INT64_MAX},                   /* saturates */
        {"99999999H", INT64_MAX},
        {"99999999M", 5999999940000000000LL}, /* fits: 6e18 < 9.2e18 */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ns = -1;
        ASSERT_OK(parse(cases[i].s, &ns));
        if (ns != cases[i].ns)
            test_fail(__FILE__, __LINE__, "%s: %" PRId64 " != %" PRId64, cases[i].s, ns,
                      cases[i].ns);
    }
}

static void test_timeout_parse_invalid(void)
{
    static const char *const cases[] = {
        "",    "1",   "n",   "S",    "123456789S", "1x", "1s",   "1h",   "-1S",  " 1S",
        "1S ", "1 S", "+1S", "1.5S", "1SS",        "S1", "0x1S", "1e3m", "1\0S", "999999999n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ns = 42;
        ASSERT_ERR(parse(cases[i], &ns), ARPC_EINVAL);
        ASSERT_EQ(ns, 42);
    }
    /* A NUL inside the value: the length, not the NUL, ends it. */
    int64_t ns = 42;
    ASSERT_ERR(arpc__grpc_timeout_parse("1\0S", 3, &ns), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_timeout_parse(NULL, 0, &ns), ARPC_EINVAL);
    ASSERT_EQ(ns, 42);
}

static void test_timeout_deadline(void)
{
    int64_t d = 0;
    ASSERT_OK(arpc__grpc_timeout_deadline("5m", 2, 1000, &d));
    ASSERT_EQ(d, 1000 + 5000000);
    ASSERT_OK(arpc__grpc_timeout_deadline("99999999H", 9, 1000, &d));
    ASSERT_TRUE(d == INT64_MAX);
    ASSERT_OK(arpc__grpc_timeout_deadline("2562047H", 8, INT64_MAX / 2, &d));
    ASSERT_TRUE(d == INT64_MAX);
    d = 7;
    ASSERT_ERR(arpc__grpc_timeout_deadline("5", 1, 1000, &d), ARPC_EINVAL);
    ASSERT_EQ(d, 7);
}

static void expect_encode(int64_t ns, const char *want)
{
    char out[ARPC__GRPC_TIMEOUT_MAX_LEN + 1];
    size_t n = arpc__grpc_timeout_encode(ns, out);
    out[n] = '\0';
    if (strcmp(out, want) != 0)
        test_fail(__FILE__, __LINE__, "encode(%" PRId64 ") = \"%s\", want \"%s\"", ns, out, want);
}

static void test_timeout_encode(void)
{
    expect_encode(INT64_MIN, "1n");
    expect_encode(-5, "1n");
    expect_encode(0, "1n");
    expect_encode(1, "1n");
    expect_encode(99999999, "99999999n");
    expect_encode(100000000, "100000u");
    expect_encode(100000001, "100001u"); /* rounded up */
    expect_encode(2500000000LL, "2500000u");
    expect_encode(99999999000LL, "99999999u");
    expect_encode(99999999001LL, "100000m");
    expect_encode(1800LL * 1000000000, "1800000m");
    expect_encode(99999999LL * 1000000, "99999999m");
    expect_encode(99999999LL * 1000000 + 1, "100000S");
    expect_encode(99999999LL * 1000000000, "99999999S");
    expect_encode(99999999LL * 1000000000 + 1, "1666667M");
    expect_encode(INT64_MAX, "2562048H");
}

/* Encoding then parsing never gives less time, and gives at most one unit more. */
static void test_timeout_round_trip(void)
{
    test_seed();
    for (int i = 0; i < 200000; i++) {
        int shift = (int)(test_rand() % 63);
        int64_t ns = (int64_t)(test_rand() >> (1 + shift));
        char out[ARPC__GRPC_TIMEOUT_MAX_LEN];
        size_t n = arpc__grpc_timeout_encode(ns, out);
        int64_t back;
        ASSERT_LE(n, ARPC__GRPC_TIMEOUT_MAX_LEN);
        ASSERT_OK(arpc__grpc_timeout_parse(out, n, &back));
        int64_t unit;
        ASSERT_OK(arpc__grpc_timeout_parse((const char[]){'1', out[n - 1]}, 2, &unit));
        int64_t want = ns > 0 ? ns : 1;
        ASSERT_TRUE(back >= want);
        ASSERT_TRUE(back - want < unit);
    }
}

/* ---- grpc-message --------------------------------------------------------------------- */

static void expect_percent(const char *in, size_t n, const char *want)
{
    char out[256];
    ASSERT_EQ(arpc__grpc_percent_encoded_len(in, n), strlen(want));
    size_t got = arpc__grpc_percent_encode(in, n, out);
    ASSERT_EQ(got, strlen(want));
    ASSERT_MEMEQ(out, want, got);

    uint8_t back[256];
    size_t m = arpc__grpc_percent_decode(at_guard(out, got), got, back);
    ASSERT_EQ(m, n);
    ASSERT_MEMEQ(back, in, n);
}

static void test_percent_golden(void)
{
    expect_percent("", 0, "");
    expect_percent("hello world", 11, "hello world");
    expect_percent("50%", 3, "50%25");
    expect_percent("a\nb\tc", 5, "a%0Ab%09c");
    expect_percent("caf\xc3\xa9", 5, "caf%C3%A9");
    expect_percent("\x00\x1f\x7f\xff", 4, "%00%1F%7F%FF");
    expect_percent(" ~!#$&'()*+,/:;=?@[]", 20, " ~!#$&'()*+,/:;=?@[]");
}

static void expect_decode(const char *in, const char *want, size_t want_len)
{
    size_t n = strlen(in);
    uint8_t out[64];
    size_t m = arpc__grpc_percent_decode(at_guard(in, n), n, out);
    ASSERT_EQ(m, want_len);
    ASSERT_MEMEQ(out, want, want_len);
}

/* Malformed escapes are kept as they are; lower-case hex is accepted. */
static void test_percent_decode_lenient(void)
{
    expect_decode("%", "%", 1);
    expect_decode("%4", "%4", 2);
    expect_decode("a%4", "a%4", 3);
    expect_decode("%zz", "%zz", 3);
    expect_decode("%4g%41", "%4gA", 4);
    expect_decode("%%41", "%A", 2);
    expect_decode("%c3%A9", "\xc3\xa9", 2);
    expect_decode("100%", "100%", 4);
    expect_decode("%00", "\0", 1);

    char in_place[] = "x%20y%2";
    size_t m = arpc__grpc_percent_decode(in_place, strlen(in_place), (uint8_t *)in_place);
    ASSERT_EQ(m, 5);
    ASSERT_MEMEQ(in_place, "x y%2", 5);
}

static void test_percent_random_round_trip(void)
{
    uint8_t in[64], back[64];
    char enc[3 * 64];
    for (int i = 0; i < 20000; i++) {
        size_t n = test_rand() % sizeof(in);
        for (size_t j = 0; j < n; j++)
            in[j] = (uint8_t)(test_rand() % 3 ? 0x20 + test_rand() % 0x5f : test_rand());
        size_t e = arpc__grpc_percent_encode(in, n, enc);
        ASSERT_EQ(e, arpc__grpc_percent_encoded_len(in, n));
        for (size_t j = 0; j < e; j++)
            ASSERT_TRUE(enc[j] >= 0x20 && enc[j] <= 0x7e);
        ASSERT_EQ(arpc__grpc_percent_decode(enc, e, back), n);
        ASSERT_MEMEQ(back, in, n);
    }
}

/* ---- metadata ------------------------------------------------------------------------- */

static bool key_valid(const char *k)
{
    return arpc__grpc_md_key_valid(at_guard(k, strlen(k)), strlen(k));
}

static bool key_reserved(const char *k)
{
    return arpc__grpc_md_key_reserved(at_guard(k, strlen(k)), strlen(k));
}

static void test_md_keys(void)
{
    static const char *const valid[] = {"x", "x-echo-a", "trace_id", "a.b", "0", "-bin", "k-bin"};
    static const char *const invalid[] = {"", "X-Echo", "a b", "a:b", ":path", "é", "a/b", "a\tb"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        ASSERT_TRUE(key_valid(valid[i]));
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        ASSERT_FALSE(key_valid(invalid[i]));

    static const char *const reserved[] = {
        "grpc-status",  "grpc-timeout",     "grpc-", ":path",      ":authority",        "te",
        "content-type", "content-length",   "host",  "connection", "transfer-encoding", "upgrade",
        "keep-alive",   "proxy-connection",
    };
    static const char *const user[] = {
        "grpc",       "grpcx-a",  "x-grpc-a",      "tea",           "t",
        "user-agent", "hostname", "content-types", "authorization", "x-bin"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        ASSERT_TRUE(key_reserved(reserved[i]));
    for (size_t i = 0; i < sizeof(user) / sizeof(user[0]); i++)
        ASSERT_FALSE(key_reserved(user[i]));

    ASSERT_TRUE(arpc__grpc_md_key_is_bin("x-bin", 5));
    ASSERT_TRUE(arpc__grpc_md_key_is_bin("-bin", 4));
    ASSERT_FALSE(arpc__grpc_md_key_is_bin("bin", 3));
    ASSERT_FALSE(arpc__grpc_md_key_is_bin("x-bin2", 6));
    ASSERT_FALSE(arpc__grpc_md_key_is_bin("x_bin", 5));
}

static void test_md_values(void)
{
    ASSERT_TRUE(arpc__grpc_md_value_valid("", 0));
    ASSERT_TRUE(arpc__grpc_md_value_valid(at_guard("abc", 3), 3));
    ASSERT_TRUE(arpc__grpc_md_value_valid("a b ~!", 6));
    ASSERT_FALSE(arpc__grpc_md_value_valid(" a", 2));
    ASSERT_FALSE(arpc__grpc_md_value_valid(at_guard("a ", 2), 2));
    ASSERT_FALSE(arpc__grpc_md_value_valid(" ", 1));
    ASSERT_FALSE(arpc__grpc_md_value_valid("a\tb", 3));
    ASSERT_FALSE(arpc__grpc_md_value_valid("a\nb", 3));
    ASSERT_FALSE(arpc__grpc_md_value_valid("a\x7f", 2));
    ASSERT_FALSE(arpc__grpc_md_value_valid("caf\xc3\xa9", 5));
    ASSERT_FALSE(arpc__grpc_md_value_valid("a\0b", 3));

    ASSERT_OK(arpc__grpc_md_check("x-echo-a", 8, "hello", 5));
    ASSERT_OK(arpc__grpc_md_check("x-bin", 5, "\0\xff\n ", 4)); /* binary: any bytes */
    ASSERT_ERR(arpc__grpc_md_check("x-echo-a", 8, "\xff", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_md_check("grpc-status", 11, "0", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_md_check("grpc-x-bin", 10, "", 0), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_md_check("X", 1, "v", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_md_check("", 0, "v", 1), ARPC_EINVAL);
    ASSERT_ERR(arpc__grpc_md_check("te", 2, "trailers", 8), ARPC_EINVAL);
}

/* ---- base64 --------------------------------------------------------------------------- */

static void expect_b64(const char *in, const char *want, const char *padded)
{
    size_t n = strlen(in);
    char out[64];
    ASSERT_EQ(arpc__grpc_base64_encoded_len(n), strlen(want));
    size_t e = arpc__grpc_base64_encode(in, n, out);
    ASSERT_EQ(e, strlen(want));
    ASSERT_MEMEQ(out, want, e);

    const char *forms[] = {want, padded};
    for (size_t f = 0; f < 2; f++) {
        size_t len = strlen(forms[f]);
        uint8_t back[64];
        size_t m = 999;
        ASSERT_LE(n, arpc__grpc_base64_decoded_max(len));
        ASSERT_OK(arpc__grpc_base64_decode(at_guard(forms[f], len), len, back, &m));
        ASSERT_EQ(m, n);
        ASSERT_MEMEQ(back, in, n);
    }
}

/* RFC 4648 §10's vectors, unpadded and padded. */
static void test_base64_golden(void)
{
    expect_b64("", "", "");
    expect_b64("f", "Zg", "Zg==");
    expect_b64("fo", "Zm8", "Zm8=");
    expect_b64("foo", "Zm9v", "Zm9v");
    expect_b64("foob", "Zm9vYg", "Zm9vYg==");
    expect_b64("fooba", "Zm9vYmE", "Zm9vYmE=");
    expect_b64("foobar", "Zm9vYmFy", "Zm9vYmFy");
    expect_b64("\xfb\xff\xfe", "+//+", "+//+");
}

static void test_base64_invalid(void)
{
    static const char *const cases[] = {
        "Z",    "Zg=",  "Zg===", "Z===", "Zm9v=", "Zm9vZ", "Zm$v", "Zg==Zg==", "Zm9v\n",
        "Zm-v", "Zm_v", "=",     "==",   "====",  " Zg",   "Zg ",  "Zm9vY===",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[64], untouched[64];
        size_t m = 77;
        size_t n = strlen(cases[i]);
        memset(out, 0xa5, sizeof(out));
        memset(untouched, 0xa5, sizeof(untouched));
        int rc = arpc__grpc_base64_decode(at_guard(cases[i], n), n, out, &m);
        if (rc != ARPC_EINVAL)
            test_fail(__FILE__, __LINE__, "\"%s\" decoded: %d", cases[i], rc);
        ASSERT_EQ(m, 77);
        ASSERT_MEMEQ(out, untouched, sizeof(out)); /* nothing written on error */
    }
    /* Non-zero unused bits of the last character are ignored. */
    uint8_t out[4];
    size_t m;
    ASSERT_OK(arpc__grpc_base64_decode("Zh", 2, out, &m));
    ASSERT_EQ(m, 1);
    ASSERT_EQ(out[0], 'f');
    ASSERT_OK(arpc__grpc_base64_decode("Zm9=", 4, out, &m));
    ASSERT_EQ(m, 2);
    ASSERT_MEMEQ(out, "fo", 2);
}

static void test_base64_random_round_trip(void)
{
    uint8_t in[100], back[100];
    char enc[140];
    for (int i = 0; i < 20000; i++) {
        size_t n = test_rand() % sizeof(in);
        for (size_t j = 0; j < n; j++)
            in[j] = (uint8_t)test_rand();
        size_t e = arpc__grpc_base64_encode(in, n, enc);
        ASSERT_EQ(e, arpc__grpc_base64_encoded_len(n));
        ASSERT_TRUE(e == 0 || enc[e - 1] != '=');
        /* Padded by hand, the same bytes decode. */
        size_t padded = e;
        while (padded % 4 != 0)
            enc[padded++] = '=';
        for (size_t len = e; len <= padded; len += padded - e > 0 ? padded - e : 1) {
            size_t m;
            ASSERT_LE(n, arpc__grpc_base64_decoded_max(len));
            ASSERT_OK(arpc__grpc_base64_decode(enc, len, back, &m));
            ASSERT_EQ(m, n);
            ASSERT_MEMEQ(back, in, n);
        }
    }
}

/* ---- status codes --------------------------------------------------------------------- */

static const struct {
    const char *name;
    int value;
} arpc_errs[] = {

#define ERR_ROW(name, value, text) {"ARPC_" #name, value},
    ARPC_ERR_MAP(ERR_ROW)
#undef ERR_ROW
};
#define NERRS (sizeof(arpc_errs) / sizeof(arpc_errs[0]))

static void test_status_names(void)
{
    static const char *const want[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    ASSERT_EQ(sizeof(want) / sizeof(want[0]), ARPC__GRPC_STATUS_COUNT);
    for (int c = 0; c < ARPC__GRPC_STATUS_COUNT; c++)
        ASSERT_STREQ(arpc__grpc_status_name(c), want[c]);
    ASSERT_STREQ(arpc__grpc_status_name(-1), "UNKNOWN");
    ASSERT_STREQ(arpc__grpc_status_name(17), "UNKNOWN");
}

static void test_status_mapping_rules(void)
{
    /* The brief's rows, stated here once more as plain asserts. */
    ASSERT_EQ(arpc__grpc_status_from_arpc(0), ARPC__GRPC_OK);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_ETIMEDOUT), ARPC__GRPC_DEADLINE_EXCEEDED);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_ENOMETHOD), ARPC__GRPC_UNIMPLEMENTED);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_EOVERLOAD), ARPC__GRPC_RESOURCE_EXHAUSTED);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_ETOOBIG), ARPC__GRPC_RESOURCE_EXHAUSTED);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_ECANCELED), ARPC__GRPC_CANCELLED);
    ASSERT_EQ(arpc__grpc_status_from_arpc(ARPC_EINTERNAL), ARPC__GRPC_INTERNAL);
    static const int unavailable[] = {ARPC_ESHUTDOWN, ARPC_ECONNREFUSED, ARPC_ECONNRESET,
                                      ARPC_ECLOSED,   ARPC_EHEARTBEAT,   ARPC_ENOENDPOINT};
    for (size_t i = 0; i < sizeof(unavailable) / sizeof(unavailable[0]); i++)
        ASSERT_EQ(arpc__grpc_status_from_arpc(unavailable[i]), ARPC__GRPC_UNAVAILABLE);
    /* Application codes. */
    for (int c = 1; c <= 16; c++)
        ASSERT_EQ(arpc__grpc_status_from_arpc(c), c);
    ASSERT_EQ(arpc__grpc_status_from_arpc(17), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_from_arpc(404), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_from_arpc(INT32_MAX), ARPC__GRPC_UNKNOWN);
    /* Negative codes outside the table. */
    ASSERT_EQ(arpc__grpc_status_from_arpc(-EBADF), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_from_arpc(-1999), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_from_arpc(INT32_MIN), ARPC__GRPC_UNKNOWN);

    /* Every gRPC code survives gRPC -> arpc -> gRPC; outside 0..16 is UNKNOWN. */
    for (int c = 0; c < ARPC__GRPC_STATUS_COUNT; c++)
        ASSERT_EQ(arpc__grpc_status_from_arpc(arpc__grpc_status_to_arpc(c)), c);
    ASSERT_EQ(arpc__grpc_status_to_arpc(17), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_to_arpc(-1), ARPC__GRPC_UNKNOWN);
    ASSERT_EQ(arpc__grpc_status_to_arpc(999), ARPC__GRPC_UNKNOWN);
    /* No received status is ARPC_ESHUTDOWN, which the channel retries as "never ran". */
    for (int c = -1; c <= 20; c++)
        ASSERT_NE(arpc__grpc_status_to_arpc(c), ARPC_ESHUTDOWN);
}

static void test_status_parse(void)
{
    int code = -7;
    ASSERT_OK(arpc__grpc_status_parse("0", 1, &code));
    ASSERT_EQ(code, 0);
    ASSERT_OK(arpc__grpc_status_parse(at_guard("14", 2), 2, &code));
    ASSERT_EQ(code, 14);
    ASSERT_OK(arpc__grpc_status_parse("999", 3, &code));
    ASSERT_EQ(code, 999);
    code = -7;
    static const char *const bad[] = {"", "1000", "-1", "+1", " 1", "1 ", "1a", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_ERR(arpc__grpc_status_parse(bad[i], strlen(bad[i]), &code), ARPC_EINVAL);
    ASSERT_EQ(code, -7);
}

/* Reads docs/grpc.md's two status tables into `fwd` (arpc status -> gRPC code, by arpc_err
 * index) and `back` (gRPC code -> arpc status), checking each row's names. */
static void read_doc_tables(int fwd[NERRS], int back[ARPC__GRPC_STATUS_COUNT], int *nback)
{
    FILE *f = fopen(doc_path, "r");
    char line[512];
    if (f == NULL)
        test_fail(__FILE__, __LINE__, "cannot open %s", doc_path);
    *nback = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char a[64], b[64];
        int code;
        if (sscanf(line, "| `ARPC_%63[A-Z]` | `%63[A-Z_]` |", a, b) == 2) {
            size_t i = 0;
            while (i < NERRS && strcmp(arpc_errs[i].name + 5, a) != 0)
                i++;
            if (i == NERRS)
                test_fail(__FILE__, __LINE__, "docs/grpc.md names an unknown ARPC_%s", a);
            if (fwd[i] != -1)
                test_fail(__FILE__, __LINE__, "docs/grpc.md lists ARPC_%s twice", a);
            fwd[i] = -2;
            for (int c = 0; c < ARPC__GRPC_STATUS_COUNT; c++)
                if (strcmp(arpc__grpc_status_name(c), b) == 0)
                    fwd[i] = c;
            if (fwd[i] == -2)
                test_fail(__FILE__, __LINE__, "docs/grpc.md: unknown gRPC code %s", b);
        } else if (sscanf(line, "| %d `%63[A-Z_]` | `%63[A-Z_0-9]` |", &code, a, b) == 3) {
            ASSERT_TRUE(code >= 0 && code < ARPC__GRPC_STATUS_COUNT);
            ASSERT_STREQ(a, arpc__grpc_status_name(code));
            int status = 1000000;
            if (b[0] >= '0' && b[0] <= '9')
                status = atoi(b);
            for (size_t i = 0; i < NERRS; i++)
                if (strcmp(arpc_errs[i].name, b) == 0)
                    status = arpc_errs[i].value;
            if (status == 1000000)
                test_fail(__FILE__, __LINE__, "docs/grpc.md: unknown arpc status %s", b);
            back[code] = status;
            (*nback)++;
        }
    }
    fclose(f);
}

/* docs/grpc.md and the C table agree on every row, and every arpc_err has its row. */
static void test_status_table_matches_doc(void)
{
    int fwd[NERRS], back[ARPC__GRPC_STATUS_COUNT], nback;
    for (size_t i = 0; i < NERRS; i++)
        fwd[i] = -1;
    read_doc_tables(fwd, back, &nback);
    for (size_t i = 0; i < NERRS; i++) {
        if (fwd[i] == -1)
            test_fail(__FILE__, __LINE__, "docs/grpc.md has no row for %s", arpc_errs[i].name);
        if (arpc__grpc_status_from_arpc(arpc_errs[i].value) != fwd[i])
            test_fail(__FILE__, __LINE__, "%s: C maps to %s, docs/grpc.md to %s", arpc_errs[i].name,
                      arpc__grpc_status_name(arpc__grpc_status_from_arpc(arpc_errs[i].value)),
                      arpc__grpc_status_name(fwd[i]));
    }
    ASSERT_EQ(nback, ARPC__GRPC_STATUS_COUNT);
    for (int c = 0; c < ARPC__GRPC_STATUS_COUNT; c++)
        if (arpc__grpc_status_to_arpc(c) != back[c])
            test_fail(__FILE__, __LINE__, "%s: C maps to %d, docs/grpc.md to %d",
                      arpc__grpc_status_name(c), arpc__grpc_status_to_arpc(c), back[c]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s docs/grpc.md\n", argv[0]);
        return 2;
    }
    doc_path = argv[1];
    guard_init();
    RUN_TEST(test_timeout_parse_valid);
    RUN_TEST(test_timeout_parse_invalid);
    RUN_TEST(test_timeout_deadline);
    RUN_TEST(test_timeout_encode);
    RUN_TEST(test_timeout_round_trip);
    RUN_TEST(test_percent_golden);
    RUN_TEST(test_percent_decode_lenient);
    RUN_TEST(test_percent_random_round_trip);
    RUN_TEST(test_md_keys);
    RUN_TEST(test_md_values);
    RUN_TEST(test_base64_golden);
    RUN_TEST(test_base64_invalid);
    RUN_TEST(test_base64_random_round_trip);
    RUN_TEST(test_status_names);
    RUN_TEST(test_status_mapping_rules);
    RUN_TEST(test_status_parse);
    RUN_TEST(test_status_table_matches_doc);
    return 0;
}
