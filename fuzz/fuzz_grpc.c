/*
 * libFuzzer target for gRPC's wire pieces (src/proto/grpc/).
 *
 * Input: byte 0 picks the receive limit (below 0x80 the 4 MiB default, else a small limit
 * so ARPC_ETOOBIG is reached), byte 1 seeds the chunk sizes, and the rest, S, is used by
 * every check:
 *   - message decoder: S as a stream's DATA, fed whole, in chunks of fuzzer-chosen sizes
 *     (empty ones included) and one byte at a time; each way must give the messages and
 *     the end (error, or at a boundary or not) of a plain reference reading of the format,
 *     every payload that lies in one chunk must be a view into it, and an error must come
 *     with the chunk holding the byte that decides it;
 *   - grpc-timeout: S parsed, compared with a reference parser; parse(encode(t)) is never
 *     less than t and at most one unit more, for the parsed value and for t read from S;
 *   - grpc-message: decode(encode(S)) == S, encodings printable, the lenient decoder
 *     compared with a reference;
 *   - base64: decode(encode(S)) == S, unpadded and padded; decoding S agrees with a
 *     reference validity check, and what it decodes to re-encodes and decodes the same;
 *   - metadata keys and values and grpc-status compared with reference checks.
 * A violated property aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/err.h>

#include "fuzz_check.h"
#include "proto/grpc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- message decoder ------------------------------------------------------------------ */

struct ref_msg {
    size_t off; /* payload offset in S */
    uint32_t len;
    int compressed;
};

struct ref {
    struct ref_msg *msgs;
    size_t n;
    int err;       /* 0 or the error */
    size_t err_at; /* the byte that decides the error */
    int boundary;  /* no error: S ends between messages */
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* PROTOCOL-HTTP2.md's Length-Prefixed-Message read over the whole of S. */
static void reference_messages(const uint8_t *s, size_t n, uint32_t max, struct ref *r)
{
    size_t off = 0;
    r->n = 0;
    r->err = 0;
    for (;;) {
        r->boundary = off == n;
        if (off == n)
            return;
        if (s[off] > 1) {
            r->err = ARPC_EFRAME;
            r->err_at = off;
            return;
        }
        if (n - off < 5)
            return;
        uint32_t len = be32(s + off + 1);
        if (len > max) {
            r->err = ARPC_ETOOBIG;
            r->err_at = off + 4;
            return;
        }
        if (n - off - 5 < len)
            return;
        r->msgs[r->n++] = (struct ref_msg){off + 5, len, s[off] == 1};
        off += 5 + (size_t)len;
    }
}

struct feeder {
    const uint8_t *s;
    const struct ref *r;
    arpc__grpc_msg_decoder d;
    size_t got;
    int err;
};

static void feed(struct feeder *f, size_t off, size_t n)
{
    const uint8_t *chunk = n > 0 ? f->s + off : NULL, *p = chunk;
    size_t left = n;
    arpc__grpc_msg m;
    int rc;

    while ((rc = arpc__grpc_msg_decode(&f->d, &p, &left, &m)) == 1) {
        CHECK(f->err == 0 && f->got < f->r->n);
        const struct ref_msg *w = &f->r->msgs[f->got++];
        CHECK(m.len == w->len && m.compressed == w->compressed && m.data != NULL);
        CHECK(memcmp(m.data, f->s + w->off, w->len) == 0);
        if (w->len > 0 && w->off >= off && w->off + w->len <= off + n)
            CHECK(m.data == f->s + w->off); /* a view, not a copy */
        CHECK(p == f->s + w->off + w->len);
    }
    CHECK(left == 0);
    if (rc < 0 && f->err == 0) {
        /* The first report comes with the chunk that holds the deciding byte. */
        CHECK(rc == f->r->err);
        CHECK(f->r->err_at >= off && f->r->err_at < off + n);
        f->err = rc;
    }
    CHECK(rc == 0 || rc == f->err);
}

static void feeder_end(struct feeder *f)
{
    CHECK(f->got == f->r->n && f->err == f->r->err);
    CHECK(arpc__grpc_msg_decoder_at_boundary(&f->d) == (f->r->err == 0 && f->r->boundary));
    arpc__grpc_msg_decoder_fini(&f->d);
}

static void fuzz_messages(const uint8_t *s, size_t n, uint32_t max, uint8_t seed)
{
    struct ref r;
    r.msgs = malloc((n / 5 + 1) * sizeof(*r.msgs));
    CHECK(r.msgs != NULL);
    reference_messages(s, n, max, &r);

    for (int way = 0; way < 3; way++) {
        struct feeder f = {.s = s, .r = &r};
        uint32_t x = seed * 2654435761u + 1;
        size_t span = 1 + seed % 41;
        arpc__grpc_msg_decoder_init(&f.d, max);
        for (size_t off = 0; off < n || way == 0;) {
            size_t chunk = n - off;
            if (way == 1) {
                x = x * 1103515245u + 12345;
                chunk = min_size(chunk, (x >> 16) % (span + 1));
            } else if (way == 2) {
                chunk = 1;
            }
            feed(&f, off, chunk);
            off += chunk;
            if (way == 0)
                break;
        }
        feeder_end(&f);
    }
    free(r.msgs);
}

/* ---- grpc-timeout --------------------------------------------------------------------- */

static int64_t unit_ns(uint8_t c)
{
    switch (c) {
    case 'n':
        return 1;
    case 'u':
        return 1000;
    case 'm':
        return 1000000;
    case 'S':
        return 1000000000;
    case 'M':
        return 60LL * 1000000000;
    case 'H':
        return 3600LL * 1000000000;
    default:
        return 0;
    }
}

/* 1*8DIGIT unit, computed in 128 bits and then saturated. */
static int reference_timeout(const uint8_t *s, size_t n, int64_t *ns)
{
    if (n < 2 || n > 9 || unit_ns(s[n - 1]) == 0)
        return ARPC_EINVAL;
    unsigned __int128 v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ARPC_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    v *= (uint64_t)unit_ns(s[n - 1]);
    *ns = v > INT64_MAX ? INT64_MAX : (int64_t)v;
    return 0;
}

static void check_timeout_encode(int64_t t)
{
    char out[ARPC__GRPC_TIMEOUT_MAX_LEN];
    size_t n = arpc__grpc_timeout_encode(t, out);
    int64_t back, unit;
    CHECK(n >= 2 && n <= ARPC__GRPC_TIMEOUT_MAX_LEN);
    CHECK(arpc__grpc_timeout_parse(out, n, &back) == 0);
    unit = unit_ns((uint8_t)out[n - 1]);
    int64_t want = t > 0 ? t : 1;
    CHECK(back >= want && back - want < unit);
    /* The finest unit that fits: one unit finer would need a ninth digit. */
    if (unit > 1) {
        int64_t finer = unit == 60LL * 1000000000     ? 1000000000
                        : unit == 3600LL * 1000000000 ? 60LL * 1000000000
                                                      : unit / 1000;
        CHECK((want - 1) / finer + 1 > 99999999);
    }
}

static void fuzz_timeout(const uint8_t *s, size_t n)
{
    int64_t got = -7, want = -7;
    int rc = arpc__grpc_timeout_parse((const char *)s, n, &got);
    CHECK(rc == reference_timeout(s, n, &want));
    CHECK(got == want);
    if (rc == 0)
        check_timeout_encode(got);
    if (n >= 8) {
        int64_t t;
        memcpy(&t, s, sizeof(t));
        check_timeout_encode(t);
    }
}

/* ---- grpc-message --------------------------------------------------------------------- */

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

static void fuzz_percent(const uint8_t *s, size_t n)
{
    size_t elen = arpc__grpc_percent_encoded_len(s, n);
    char *enc = malloc(elen + 1);
    uint8_t *back = malloc(elen + 1), *want = malloc(n + 1);
    CHECK(enc != NULL && back != NULL && want != NULL);
    CHECK(arpc__grpc_percent_encode(s, n, enc) == elen);
    for (size_t i = 0; i < elen; i++)
        CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
    CHECK(arpc__grpc_percent_decode(enc, elen, back) == n);
    CHECK(memcmp(back, s, n) == 0);

    /* The lenient decoder against a reference. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && n - i >= 3 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            want[w++] = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            want[w++] = s[i];
        }
    }
    CHECK(arpc__grpc_percent_decode((const char *)s, n, back) == w);
    CHECK(memcmp(back, want, w) == 0);
    free(enc);
    free(back);
    free(want);
}

/* ---- base64 --------------------------------------------------------------------------- */

static int b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static int reference_b64_valid(const uint8_t *s, size_t n)
{
    size_t pad = 0;
    if (n % 4 == 0)
        while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
            pad++;
    n -= pad;
    for (size_t i = 0; i < n; i++)
        if (!b64_char(s[i]))
            return 0;
    return n % 4 != 1;
}

static void fuzz_base64(const uint8_t *s, size_t n)
{
    size_t elen = arpc__grpc_base64_encoded_len(n);
    char *enc = malloc(elen + 4);
    uint8_t *back = malloc(n + 3);
    CHECK(enc != NULL && back != NULL);
    CHECK(arpc__grpc_base64_encode(s, n, enc) == elen);
    CHECK(elen == 0 || enc[elen - 1] != '=');
    size_t padded = elen, m;
    while (padded % 4)
        enc[padded++] = '=';
    CHECK(arpc__grpc_base64_decode(enc, elen, back, &m) == 0 && m == n);
    CHECK(memcmp(back, s, n) == 0);
    CHECK(arpc__grpc_base64_decode(enc, padded, back, &m) == 0 && m == n);
    CHECK(memcmp(back, s, n) == 0);
    free(enc);
    free(back);

    /* S as base64: valid exactly when the reference says so, and stable when re-encoded. */
    uint8_t *dec = malloc(arpc__grpc_base64_decoded_max(n) + 1);
    CHECK(dec != NULL);
    int rc = arpc__grpc_base64_decode((const char *)s, n, dec, &m);
    CHECK((rc == 0) == reference_b64_valid(s, n));
    if (rc == 0) {
        CHECK(m <= arpc__grpc_base64_decoded_max(n));
        char *again = malloc(arpc__grpc_base64_encoded_len(m) + 1);
        uint8_t *dec2 = malloc(m + 1);
        size_t m2, e2 = arpc__grpc_base64_encode(dec, m, again);
        CHECK(again != NULL && dec2 != NULL);
        /* Only the ignored low bits of the last character may differ. */
        size_t stripped = n;
        while (stripped > 0 && s[stripped - 1] == '=')
            stripped--;
        CHECK(e2 == stripped);
        if (e2 > 0)
            CHECK(memcmp(again, s, e2 - 1) == 0);
        CHECK(arpc__grpc_base64_decode(again, e2, dec2, &m2) == 0 && m2 == m);
        CHECK(memcmp(dec2, dec, m) == 0);
        free(again);
        free(dec2);
    }
    free(dec);
}

/* ---- metadata and grpc-status --------------------------------------------------------- */

static void fuzz_metadata(const uint8_t *s, size_t n)
{
    const char *k = (const char *)s;
    int key_ok = n > 0, value_ok = n == 0 || (s[0] != ' ' && s[n - 1] != ' ');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        key_ok &=
            (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.';
        value_ok &= c >= 0x20 && c <= 0x7e;
    }
    CHECK(arpc__grpc_md_key_valid(k, n) == key_ok);
    CHECK(arpc__grpc_md_value_valid(k, n) == value_ok);
    int reserved = arpc__grpc_md_key_reserved(k, n);
    if (n >= 5 && memcmp(s, "grpc-", 5) == 0)
        CHECK(reserved);
    if (n >= 1 && s[0] == ':')
        CHECK(reserved);
    int bin = arpc__grpc_md_key_is_bin(k, n);
    CHECK(bin == (n >= 4 && memcmp(s + n - 4, "-bin", 4) == 0));
    /* The key as a key and, split in the middle, as key and value. */
    int rc = arpc__grpc_md_check(k, n, "v", 1);
    CHECK((rc == 0) == (key_ok && !reserved));
    size_t half = n / 2;
    rc = arpc__grpc_md_check(k, half, s + half, n - half);
    CHECK(rc == 0 || rc == ARPC_EINVAL);

    int code = -1;
    rc = arpc__grpc_status_parse(k, n, &code);
    int digits = n >= 1 && n <= 3;
    for (size_t i = 0; i < n; i++)
        digits &= s[i] >= '0' && s[i] <= '9';
    CHECK((rc == 0) == digits);
    if (rc == 0) {
        CHECK(code >= 0 && code <= 999);
        int st = arpc__grpc_status_to_arpc(code);
        CHECK(arpc__grpc_status_name(code) != NULL);
        CHECK(arpc__grpc_status_from_arpc(st) == (code <= 16 ? code : ARPC__GRPC_UNKNOWN));
    }
    if (n >= 4) {
        int32_t v;
        memcpy(&v, s, sizeof(v));
        int c = arpc__grpc_status_from_arpc(v);
        CHECK(c >= 0 && c < ARPC__GRPC_STATUS_COUNT);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t max = data[0] < 0x80 ? ARPC__GRPC_DEFAULT_MAX_RECV : (data[0] & 0x7fu) * 4;
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    fuzz_messages(s, n, max, data[1]);
    fuzz_timeout(s, n);
    fuzz_percent(s, n);
    fuzz_base64(s, n);
    fuzz_metadata(s, n);
    return 0;
}
