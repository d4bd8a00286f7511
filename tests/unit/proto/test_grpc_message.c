/*
 * gRPC Length-Prefixed-Message framing (src/proto/grpc/message.c): golden bytes, a stream
 * of several messages split at every byte position and at every pair of positions, a
 * message straddling many chunks, chunks that end at a PROT_NONE page, the zero-copy
 * promise (a payload within one chunk is a view into it and allocates nothing), the
 * receive limit decided from the prefix alone, malformed flags, sticky errors, failed
 * allocations and a seeded random round trip.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "proto/grpc/wire.h"
#include "test.h"

#define MAX_RECV ARPC__GRPC_DEFAULT_MAX_RECV

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- expected messages and a reader that feeds chunks the way nghttp2 delivers them ---- */

struct want {
    bool compressed;
    uint32_t len;
    size_t payload_off; /* where the payload starts in the stream */
};

struct reader {
    arpc__grpc_msg_decoder dec;
    const uint8_t *stream; /* the whole stream, to compare payloads with */
    const struct want *want;
    size_t nwant;
    size_t ngot;
    int err; /* the error the decoder reported, 0 if none */
};

static void reader_init(struct reader *r, const uint8_t *stream, const struct want *want,
                        size_t nwant, uint32_t max_len)
{
    arpc__grpc_msg_decoder_init(&r->dec, max_len);
    r->stream = stream;
    r->want = want;
    r->nwant = nwant;
    r->ngot = 0;
    r->err = 0;
}

/* Feeds one chunk: `chunk` holds stream bytes [off, off + n), wherever it was placed. */
static void reader_feed(struct reader *r, const uint8_t *chunk, size_t n, size_t off)
{
    const uint8_t *p = chunk;
    size_t left = n;
    arpc__grpc_msg m;
    int rc;

    while ((rc = arpc__grpc_msg_decode(&r->dec, &p, &left, &m)) == 1) {
        ASSERT_LT(r->ngot, r->nwant);
        const struct want *w = &r->want[r->ngot++];
        ASSERT_EQ(m.len, w->len);
        ASSERT_EQ(m.compressed, w->compressed);
        ASSERT_TRUE(m.data != NULL);
        ASSERT_MEMEQ(m.data, r->stream + w->payload_off, w->len);
        /* A payload wholly inside this chunk is a view into it: no copy. */
        if (w->len > 0 && w->payload_off >= off && w->payload_off + w->len <= off + n)
            ASSERT_TRUE(m.data == chunk + (w->payload_off - off));
        /* The decoder consumed exactly up to the end of this message. */
        ASSERT_EQ((size_t)(p - chunk), w->payload_off + w->len - off);
    }
    ASSERT_EQ(left, 0);
    if (rc < 0) {
        ASSERT_TRUE(r->err == 0 || r->err == rc);
        r->err = rc;
    }
}

static void reader_assert_done(struct reader *r)
{
    ASSERT_EQ(r->err, 0);
    ASSERT_EQ(r->ngot, r->nwant);
    ASSERT_TRUE(arpc__grpc_msg_decoder_at_boundary(&r->dec));
    arpc__grpc_msg_decoder_fini(&r->dec);
}

/* Builds a stream of messages with these lengths (every third compressed) and its wants. */
static uint8_t *build_stream(const uint32_t *lens, size_t n, struct want *want, size_t *size)
{
    arpc_buf *b;
    ASSERT_OK(arpc_buf_create(&b));
    for (size_t i = 0; i < n; i++) {
        uint8_t *payload = malloc(lens[i] + 1);
        ASSERT_TRUE(payload != NULL);
        for (uint32_t j = 0; j < lens[i]; j++)
            payload[j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
        want[i].compressed = i % 3 == 2;
        want[i].len = lens[i];
        want[i].payload_off = arpc_buf_len(b) + ARPC__GRPC_PREFIX_SIZE;
        ASSERT_OK(arpc__grpc_msg_encode(b, want[i].compressed, payload, lens[i]));
        free(payload);
    }
    *size = arpc_buf_len(b);
    uint8_t *s = malloc(*size);
    ASSERT_TRUE(s != NULL);
    memcpy(s, arpc_buf_data(b), *size);
    arpc_buf_destroy(b);
    return s;
}

/* ---- golden bytes --------------------------------------------------------------------- */

static const uint8_t golden_hello[] = {
    0x00,                   /* not compressed */
    0x00, 0x00, 0x00, 0x05, /* length 5, big-endian */
    'h',  'e',  'l',  'l',  'o',
};

static const uint8_t golden_empty[] = {0x00, 0x00, 0x00, 0x00, 0x00};

static const uint8_t golden_compressed_prefix[] = {
    0x01,                   /* compressed */
    0x01, 0x02, 0x03, 0x04, /* length 0x01020304 */
};

static void test_golden_encode(void)
{
    uint8_t prefix[ARPC__GRPC_PREFIX_SIZE];
    arpc_buf *b;

    arpc__grpc_msg_write_prefix(prefix, true, 0x01020304);
    ASSERT_MEMEQ(prefix, golden_compressed_prefix, sizeof(prefix));
    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc__grpc_msg_encode(b, false, "hello", 5));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_hello));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_hello, sizeof(golden_hello));
    arpc_buf_clear(b);
    ASSERT_OK(arpc__grpc_msg_encode(b, false, NULL, 0));
    ASSERT_EQ(arpc_buf_len(b), sizeof(golden_empty));
    ASSERT_MEMEQ(arpc_buf_data(b), golden_empty, sizeof(golden_empty));
    arpc_buf_destroy(b);
}

static void test_golden_decode(void)
{
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;
    const uint8_t *p = golden_hello;
    size_t n = sizeof(golden_hello);

    arpc__grpc_msg_decoder_init(&d, UINT32_MAX); /* the compressed prefix announces 16 MiB */
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 1);
    ASSERT_EQ(m.len, 5);
    ASSERT_FALSE(m.compressed);
    ASSERT_TRUE(m.data == golden_hello + 5);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 0);

    p = golden_empty;
    n = sizeof(golden_empty);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 1);
    ASSERT_EQ(m.len, 0);
    ASSERT_TRUE(m.data != NULL);
    ASSERT_TRUE(arpc__grpc_msg_decoder_at_boundary(&d));

    /* A compressed prefix alone: the decoder waits for the payload. */
    p = golden_compressed_prefix;
    n = sizeof(golden_compressed_prefix);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 0);
    ASSERT_FALSE(arpc__grpc_msg_decoder_at_boundary(&d));
    arpc__grpc_msg_decoder_fini(&d);
}

/* ---- split points --------------------------------------------------------------------- */

/* Several messages, the empty one and one of exactly one byte among them, and one that is
 * larger than a typical DATA frame. */
static const uint32_t small_lens[] = {5, 0, 1, 17, 0, 130, 4, 2, 64};
#define NSMALL (sizeof(small_lens) / sizeof(small_lens[0]))

static void test_split_at_every_position(void)
{
    struct want want[NSMALL];
    size_t size;
    uint8_t *s = build_stream(small_lens, NSMALL, want, &size);

    for (size_t split = 0; split <= size; split++) {
        struct reader r;
        reader_init(&r, s, want, NSMALL, MAX_RECV);
        reader_feed(&r, s, split, 0);
        reader_feed(&r, s + split, size - split, split);
        reader_assert_done(&r);
    }
    free(s);
}

static void test_split_at_every_pair_of_positions(void)
{
    struct want want[NSMALL];
    size_t size;
    uint8_t *s = build_stream(small_lens, NSMALL, want, &size);

    for (size_t a = 0; a <= size; a++) {
        for (size_t b = a; b <= size; b++) {
            struct reader r;
            reader_init(&r, s, want, NSMALL, MAX_RECV);
            reader_feed(&r, s, a, 0);
            reader_feed(&r, s + a, b - a, a);
            reader_feed(&r, s + b, size - b, b);
            reader_assert_done(&r);
        }
    }
    free(s);
}

static void test_one_byte_at_a_time(void)
{
    struct want want[NSMALL];
    size_t size;
    uint8_t *s = build_stream(small_lens, NSMALL, want, &size);
    struct reader r;

    reader_init(&r, s, want, NSMALL, MAX_RECV);
    for (size_t i = 0; i < size; i++) {
        reader_feed(&r, s + i, 1, i);
        reader_feed(&r, NULL, 0, i + 1); /* empty chunks change nothing */
    }
    reader_assert_done(&r);
    free(s);
}

/* A 200 000-byte message (larger than the kept buffer) between small ones, cut into chunks
 * of every size from 1 to 40 bytes and of DATA-frame sizes, and split in two around each
 * of its boundaries. */
static void test_message_straddling_chunks(void)
{
    static const uint32_t lens[] = {3, 200000, 0, 9, 70000, 1};

    enum { N = sizeof(lens) / sizeof(lens[0]) };
    struct want want[N];
    size_t size;
    uint8_t *s = build_stream(lens, N, want, &size);
    static const size_t frame_sizes[] = {41, 1000, 16384, 16385, 65535, 200005};

    for (size_t step = 1; step <= 40 + sizeof(frame_sizes) / sizeof(frame_sizes[0]); step++) {
        size_t chunk = step <= 40 ? step : frame_sizes[step - 41];
        struct reader r;
        reader_init(&r, s, want, N, MAX_RECV);
        for (size_t off = 0; off < size; off += chunk)
            reader_feed(&r, s + off, min_size(chunk, size - off), off);
        reader_assert_done(&r);
    }
    for (size_t i = 0; i < N; i++) {
        size_t start = want[i].payload_off - ARPC__GRPC_PREFIX_SIZE;
        size_t end = want[i].payload_off + want[i].len;
        for (size_t k = 0; k < 14; k++) {
            size_t split = k < 7 ? start + k : end - 6 + k;
            if (split > size || (k >= 7 && end < 6))
                continue;
            struct reader r;
            reader_init(&r, s, want, N, MAX_RECV);
            reader_feed(&r, s, split, 0);
            reader_feed(&r, s + split, size - split, split);
            reader_assert_done(&r);
        }
    }
    free(s);
}

/* ---- chunks that end at an unreadable page -------------------------------------------- */

struct guarded {
    uint8_t *map;
    size_t page;
};

static void guarded_init(struct guarded *g)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(g->map != MAP_FAILED);
    ASSERT_EQ(mprotect(g->map + g->page, g->page, PROT_NONE), 0);
}

static void guarded_fini(struct guarded *g)
{
    ASSERT_EQ(munmap(g->map, 2 * g->page), 0);
}

static const uint8_t *guarded_place(struct guarded *g, const uint8_t *bytes, size_t n)
{
    uint8_t *p = g->map + g->page - n;
    ASSERT_LE(n, g->page);
    if (n > 0)
        memcpy(p, bytes, n);
    return p;
}

/* Every two-chunk split of the small stream, each chunk placed against the guard page
 * (the second overwrites the first, which the decoder must no longer need), and every
 * chunk length of a one-byte-stepped feed. */
static void test_chunks_end_at_guard_page(void)
{
    struct want want[NSMALL];
    size_t size;
    uint8_t *s = build_stream(small_lens, NSMALL, want, &size);
    struct guarded g;

    guarded_init(&g);
    for (size_t split = 0; split <= size; split++) {
        struct reader r;
        reader_init(&r, s, want, NSMALL, MAX_RECV);
        reader_feed(&r, guarded_place(&g, s, split), split, 0);
        reader_feed(&r, guarded_place(&g, s + split, size - split), size - split, split);
        reader_assert_done(&r);
    }
    for (size_t chunk = 1; chunk <= 8; chunk++) {
        struct reader r;
        reader_init(&r, s, want, NSMALL, MAX_RECV);
        for (size_t off = 0; off < size; off += chunk) {
            size_t n = min_size(chunk, size - off);
            reader_feed(&r, guarded_place(&g, s + off, n), n, off);
        }
        reader_assert_done(&r);
    }
    /* An error decided from bytes that end at the guard. */
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;
    uint8_t big[ARPC__GRPC_PREFIX_SIZE];
    arpc__grpc_msg_write_prefix(big, false, MAX_RECV + 1);
    const uint8_t *p = guarded_place(&g, big, sizeof(big));
    size_t n = sizeof(big);
    arpc__grpc_msg_decoder_init(&d, MAX_RECV);
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ETOOBIG);
    arpc__grpc_msg_decoder_fini(&d);
    guarded_fini(&g);
    free(s);
}

/* ---- zero copy ------------------------------------------------------------------------ */

static void test_one_chunk_allocates_nothing(void)
{
    struct want want[NSMALL];
    size_t size;
    uint8_t *s = build_stream(small_lens, NSMALL, want, &size);
    struct reader r;

    uint64_t before = arpc__alloc_count();
    reader_init(&r, s, want, NSMALL, MAX_RECV);
    reader_feed(&r, s, size, 0);
    /* Prefixes split from their payloads still give views. */
    r.ngot = 0;
    for (size_t i = 0; i < NSMALL; i++) {
        size_t start = want[i].payload_off - ARPC__GRPC_PREFIX_SIZE;
        reader_feed(&r, s + start, 3, start);
        reader_feed(&r, s + start + 3, 2 + want[i].len, start + 3);
    }
    ASSERT_EQ(arpc__alloc_count(), before);
    reader_assert_done(&r);
    free(s);
}

/* White-box: the assembly buffer follows what arrived, not what was announced; a small one
 * is kept for the next message, a large one released once its message is consumed. */
static void test_assembly_buffer_policy(void)
{
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;
    uint8_t prefix[ARPC__GRPC_PREFIX_SIZE + 10] = {0};

    arpc__grpc_msg_decoder_init(&d, MAX_RECV);
    arpc__grpc_msg_write_prefix(prefix, false, MAX_RECV);
    const uint8_t *p = prefix;
    size_t n = sizeof(prefix);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 0);
    ASSERT_LE(d.body_cap, 16 * 1024); /* 4 MiB announced, 10 bytes sent */
    arpc__grpc_msg_decoder_fini(&d);

    static const uint32_t lens[] = {1000, 1000, 1000, 300000, 0};
    struct want want[5];
    size_t size;
    uint8_t *s = build_stream(lens, 5, want, &size);
    struct reader r;
    reader_init(&r, s, want, 5, MAX_RECV);
    /* Each message cut after its first payload byte: all but the empty one are assembled. */
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        size_t end = want[i].payload_off + want[i].len;
        size_t mid = min_size(want[i].payload_off + 1, end);
        uint64_t before = arpc__alloc_count();
        reader_feed(&r, s + off, mid - off, off);
        reader_feed(&r, s + mid, end - mid, mid);
        off = end;
        if (i == 1 || i == 2)
            ASSERT_EQ(arpc__alloc_count(), before); /* the first one's buffer is reused */
        if (i < 3)
            ASSERT_TRUE(r.dec.body != NULL && r.dec.body_cap == 1000);
        /* The reader's next call, after the 300000-byte message, gave its buffer back. */
        if (i >= 3)
            ASSERT_TRUE(r.dec.body == NULL);
    }
    reader_assert_done(&r);
    free(s);
}

/* ---- limits and malformed input ------------------------------------------------------- */

/* Feeds `bytes` whole to a fresh decoder with limit `max_len`; returns the last result. */
static int decode_all(const uint8_t *bytes, size_t n, uint32_t max_len, size_t *left)
{
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;
    int rc;

    arpc__grpc_msg_decoder_init(&d, max_len);
    while ((rc = arpc__grpc_msg_decode(&d, &bytes, &n, &m)) == 1)
        ;
    *left = n;
    arpc__grpc_msg_decoder_fini(&d);
    return rc;
}

static void test_limit(void)
{
    uint8_t prefix[ARPC__GRPC_PREFIX_SIZE];
    size_t left;

    /* Exactly the limit is accepted; one more is refused from the prefix alone. */
    arpc__grpc_msg_write_prefix(prefix, false, 100);
    ASSERT_EQ(decode_all(prefix, sizeof(prefix), 100, &left), 0);
    ASSERT_ERR(decode_all(prefix, sizeof(prefix), 99, &left), ARPC_ETOOBIG);
    arpc__grpc_msg_write_prefix(prefix, false, MAX_RECV + 1);
    ASSERT_ERR(decode_all(prefix, sizeof(prefix), MAX_RECV, &left), ARPC_ETOOBIG);
    arpc__grpc_msg_write_prefix(prefix, true, UINT32_MAX);
    ASSERT_ERR(decode_all(prefix, sizeof(prefix), MAX_RECV, &left), ARPC_ETOOBIG);
    ASSERT_EQ(decode_all(prefix, sizeof(prefix), UINT32_MAX, &left), 0);
    /* Four bytes of an oversized prefix are not yet an error. */
    ASSERT_EQ(decode_all(prefix, 4, MAX_RECV, &left), 0);
    /* Limit 0: only empty messages. */
    ASSERT_EQ(decode_all(golden_empty, sizeof(golden_empty), 0, &left), 0);
    ASSERT_ERR(decode_all(golden_hello, sizeof(golden_hello), 0, &left), ARPC_ETOOBIG);
    ASSERT_EQ(left, 0);
}

/* After an over-limit prefix the rest of the stream passes through unread and unbuffered,
 * and every later call reports the same error; earlier messages were delivered. */
static void test_error_is_sticky_and_skips_the_rest(void)
{
    uint8_t stream[64];
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;

    memcpy(stream, golden_hello, sizeof(golden_hello));
    arpc__grpc_msg_write_prefix(stream + 10, false, 1000);
    memset(stream + 15, 0xee, sizeof(stream) - 15);

    const uint8_t *p = stream;
    size_t n = sizeof(stream);
    arpc__grpc_msg_decoder_init(&d, 999);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 1);
    ASSERT_EQ(m.len, 5);
    uint64_t before = arpc__alloc_count();
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ETOOBIG);
    ASSERT_EQ(n, 0); /* the tail after the prefix is skipped */
    for (int i = 0; i < 3; i++) {
        p = stream;
        n = sizeof(stream);
        ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ETOOBIG);
        ASSERT_EQ(n, 0);
        ASSERT_TRUE(p == stream + sizeof(stream));
    }
    p = NULL;
    n = 0;
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ETOOBIG);
    ASSERT_TRUE(p == NULL);
    ASSERT_EQ(arpc__alloc_count(), before);
    ASSERT_FALSE(arpc__grpc_msg_decoder_at_boundary(&d));
    arpc__grpc_msg_decoder_fini(&d);
}

static void test_bad_flag(void)
{
    static const uint8_t flags[] = {2, 3, 0x80, 0xff};
    size_t left;

    for (size_t i = 0; i < sizeof(flags); i++) {
        uint8_t bytes[sizeof(golden_hello)];
        memcpy(bytes, golden_hello, sizeof(bytes));
        bytes[0] = flags[i];
        /* Known from the first byte: no need to wait for the length. */
        ASSERT_ERR(decode_all(bytes, 1, MAX_RECV, &left), ARPC_EFRAME);
        ASSERT_ERR(decode_all(bytes, sizeof(bytes), MAX_RECV, &left), ARPC_EFRAME);
        ASSERT_EQ(left, 0);
    }
    /* A bad flag after a good message, its first byte alone in a chunk. */
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;
    uint8_t two[sizeof(golden_hello) + 1];
    memcpy(two, golden_hello, sizeof(golden_hello));
    two[sizeof(golden_hello)] = 7;
    const uint8_t *p = two;
    size_t n = sizeof(golden_hello);
    arpc__grpc_msg_decoder_init(&d, MAX_RECV);
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 1);
    n = 1;
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_EFRAME);
    arpc__grpc_msg_decoder_fini(&d);
}

static void test_truncated_is_not_at_boundary(void)
{
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;

    for (size_t cut = 1; cut < sizeof(golden_hello); cut++) {
        const uint8_t *p = golden_hello;
        size_t n = cut;
        arpc__grpc_msg_decoder_init(&d, MAX_RECV);
        ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 0);
        ASSERT_FALSE(arpc__grpc_msg_decoder_at_boundary(&d));
        arpc__grpc_msg_decoder_fini(&d);
    }
}

/* ---- allocation failure --------------------------------------------------------------- */

static void test_enomem_while_assembling(void)
{
    static const uint32_t lens[] = {300};
    struct want want[1];
    size_t size;
    uint8_t *s = build_stream(lens, 1, want, &size);
    arpc__grpc_msg_decoder d;
    arpc__grpc_msg m;

    const uint8_t *p = s;
    size_t n = 100;
    arpc__grpc_msg_decoder_init(&d, MAX_RECV);
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(n, 0);
    p = s + 100;
    n = size - 100;
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ENOMEM);
    arpc__grpc_msg_decoder_fini(&d);

    /* A failure while growing an assembly already under way (the 70000-byte payload needs
     * several doublings): sticky, and fini frees what was assembled. */
    static const uint32_t big[] = {70000};
    uint8_t *b = build_stream(big, 1, want, &size);
    arpc__grpc_msg_decoder_init(&d, MAX_RECV);
    p = b;
    n = 20000;
    ASSERT_EQ(arpc__grpc_msg_decode(&d, &p, &n, &m), 0);
    arpc__alloc_fail_after(0);
    n = size - 20000;
    ASSERT_ERR(arpc__grpc_msg_decode(&d, &p, &n, &m), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    arpc__grpc_msg_decoder_fini(&d);
    free(b);
    free(s);
}

static void test_encode_errors(void)
{
    static uint8_t big[100000]; /* more than any buffer's first allocation */
    arpc_buf *b;

    ASSERT_OK(arpc_buf_create(&b));
    ASSERT_OK(arpc_buf_append(b, "x", 1));
    arpc__alloc_fail_after(0);
    ASSERT_ERR(arpc__grpc_msg_encode(b, false, big, sizeof(big)), ARPC_ENOMEM);
    arpc__alloc_fail_after(-1);
    ASSERT_EQ(arpc_buf_len(b), 1);
    ASSERT_MEMEQ(arpc_buf_data(b), "x", 1);
#if SIZE_MAX > UINT32_MAX
    ASSERT_ERR(arpc__grpc_msg_encode(b, false, "", (size_t)UINT32_MAX + 1), ARPC_EINVAL);
    ASSERT_EQ(arpc_buf_len(b), 1);
#endif
    arpc_buf_destroy(b);
}

/* ---- random round trip ---------------------------------------------------------------- */

static void test_random_round_trip(void)
{
    test_seed();
    for (int iter = 0; iter < 300; iter++) {
        uint32_t lens[12];
        struct want want[12];
        size_t n = 1 + test_rand() % 12, size;
        for (size_t i = 0; i < n; i++)
            lens[i] = (uint32_t)(test_rand() % 4 == 0 ? test_rand() % 90000 : test_rand() % 40);
        uint8_t *s = build_stream(lens, n, want, &size);

        struct reader r;
        reader_init(&r, s, want, n, MAX_RECV);
        for (size_t off = 0; off < size;) {
            size_t draw = test_rand() % 3 == 0 ? test_rand() % 20000 : test_rand() % 12;
            size_t chunk = min_size(size - off, draw);
            reader_feed(&r, s + off, chunk, off);
            off += chunk;
        }
        reader_assert_done(&r);
        free(s);
    }
}

int main(void)
{
    RUN_TEST(test_golden_encode);
    RUN_TEST(test_golden_decode);
    RUN_TEST(test_split_at_every_position);
    RUN_TEST(test_split_at_every_pair_of_positions);
    RUN_TEST(test_one_byte_at_a_time);
    RUN_TEST(test_message_straddling_chunks);
    RUN_TEST(test_chunks_end_at_guard_page);
    RUN_TEST(test_one_chunk_allocates_nothing);
    RUN_TEST(test_assembly_buffer_policy);
    RUN_TEST(test_limit);
    RUN_TEST(test_error_is_sticky_and_skips_the_rest);
    RUN_TEST(test_bad_flag);
    RUN_TEST(test_truncated_is_not_at_boundary);
    RUN_TEST(test_enomem_while_assembling);
    RUN_TEST(test_encode_errors);
    RUN_TEST(test_random_round_trip);
    return 0;
}
