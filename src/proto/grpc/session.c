/*
 * gRPC over HTTP/2 on nghttp2, driven by memory buffers (session.h).
 *
 * Design notes:
 * - Each stream's received header bytes live in one arpc_buf (hb) with spans into it, so a
 *   request costs a few buffer growths, not one allocation per header; md arrays for events
 *   are built in a session-wide scratch array, valid during the callback only.
 * - The session answers broken requests itself (Trailers-Only, HTTP 415, RST_STREAM) and
 *   reports them only if the handler already saw EV_REQUEST, as an EV_CLOSE with canceled
 *   set: handlers never see a request that breaks a rule before it starts.
 * - Output nv arrays (names and values copied, "-bin" values base64, grpc-message
 *   percent-encoded) are built in one block; nghttp2 copies headers at submit, so the block
 *   is freed at once, except trailers, which wait in the stream until its queued messages
 *   are out (nghttp2_submit_trailer from the data provider, as nghttp2 documents).
 *   The constant blocks of a plain OK answer are static nv arrays (NO_COPY), not built.
 * - Early answers (server, early_answers): answers submitted from events wait inside nghttp2
 *   until mem_recv returns.  Once enough are queued, on_header or on_data_chunk returns
 *   NGHTTP2_ERR_PAUSE and feed sends them before going on.  on_header pauses after storing
 *   its header; on_data_chunk before delivering its chunk (held, delivered after the send),
 *   so a stream is never answered before its own frame's END_STREAM was processed (the
 *   answer would otherwise be followed by a needless RST_STREAM(NO_ERROR)).
 * - nghttp2's memory comes from the session's pool (mempool.h): no malloc per call.
 */
#include "proto/grpc/session.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "proto/grpc/mempool.h"
#include "proto/grpc/wire.h"

#define DEFAULT_MAX_STREAMS     256u
#define DEFAULT_MAX_HEADER_LIST (16u * 1024)
#define DEFAULT_STREAM_WINDOW   (4u * 1024 * 1024)
#define DEFAULT_CONN_WINDOW     (16u * 1024 * 1024)
#define HEADER_ENTRY_OVERHEAD   32u /* RFC 9113 section 6.5.2 */

struct span {
    uint32_t off;
    uint32_t len;
    bool set;
};

struct md_span {
    struct span key;
    struct span value;
};

typedef struct gstream {
    struct gstream *prev, *next; /* every stream of the session */
    int32_t id;
    void *user;
    arpc_buf hb;  /* received header bytes */
    arpc_buf mds; /* struct md_span entries into hb */
    uint32_t hdr_bytes;
    struct span path, method, ctype, timeout, encoding, status, gstatus, gmessage;
    arpc__grpc_msg_decoder dec;
    arpc_buf out;         /* queued DATA bytes (messages with their prefixes) */
    arpc_buf tb;          /* the trailers' block */
    const nghttp2_nv *trailers; /* in tb (or trailers_ok), waiting for the queued DATA */
    size_t ntrailers;
    int grpc_status;
    bool hdr_too_big;
    bool reported;     /* server: EV_REQUEST given (so EV_CLOSE is owed) */
    bool headers_sent; /* server: response HEADERS submitted */
    bool status_set;   /* server: no more messages (status given or the session answered) */
    bool self_answer;  /* server: the session ended the stream for a broken rule */
    bool deferred;     /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool end_sent;     /* a frame with END_STREAM went out */
    bool eof;          /* client: the request's data provider reaches EOF when out is empty */
    bool got_headers;  /* client: the initial HEADERS arrived */
    bool local_status; /* client: grpc_status set here (over-limit, bad frame) */
    bool canceled;     /* cancel() was called */
    bool pending;      /* server: HEADERS begun, the request's message not complete yet */
    int64_t begin_ns;  /* server: when its HEADERS began (expire's stall limit) */
    int64_t deadline_ns; /* server: from grpc-timeout, once the headers are complete */
    /* Streams (session.h, "streams"). */
    bool stream;           /* received DATA waits for consume; sent DATA raises EV_CREDIT */
    size_t owed;           /* received bytes not yet granted back to the peer */
    size_t unary_owed;     /* a unary stream's bytes not yet granted at stream level */
    size_t partial;        /* received bytes of the message not complete yet */
    size_t advance;        /* of those, granted ahead (a message over the window) */
    size_t skip;           /* granted ahead for delivered messages: consume skips them */
    size_t prefix_debt;    /* prefix bytes queued in out, not counted as credit */
    size_t credit_pending; /* payload bytes nghttp2 took, not yet reported (EV_CREDIT) */
} gstream;

/* A token bucket of frames a peer may send (hostile peers, below). */
struct ratelim {
    uint32_t burst;
    uint32_t rate; /* tokens added per second */
    uint32_t tokens;
    int64_t last_s;
};

struct arpc__grpc_session {
    nghttp2_session *h2;
    arpc__grpc_event_fn cb;
    void *user;
    bool server;
    bool goaway_recv;
    bool goaway_sent;
    bool alloc_failed; /* an allocation of nghttp2's failed */
    nghttp2_mem mem;
    arpc__grpc_pool pool; /* nghttp2's memory (mem): outlives h2 */
    arpc_buf stash; /* output sent early by feed (see there), handed on by flush first */
    uint32_t max_recv_msg;
    uint32_t max_header_list;
    uint32_t pings_without_data;
    uint32_t early_answers;  /* server: pause the input at this many answers queued (0: never) */
    uint32_t answers_queued; /* answers submitted since the last mem_send */
    bool paused;             /* a callback paused nghttp2_session_mem_recv for them */
    uint32_t ncredit;        /* streams with credit_pending > 0 */
    uint32_t stream_window;  /* our SETTINGS_INITIAL_WINDOW_SIZE */
    size_t conn_owed;        /* unary bytes received, granted at connection level after mem_recv */

    struct { /* the DATA chunk on_data_chunk paused before (feed delivers it) */
        int32_t id;
        const uint8_t *data;
        size_t len;
    } held;
    size_t nstreams;
    gstream *streams;
    gstream *spare; /* freed streams kept with their buffers, for the next ones */
    size_t nspare;
    arpc_buf nvbuf; /* header blocks being submitted (nghttp2 copies them) */
    arpc__grpc_md *scratch;
    size_t scratch_cap;
    /* Hostile peers (server side). */
    size_t held_bytes;   /* answer bytes in the streams' out, not yet taken by nghttp2 */
    uint32_t npending;   /* streams with pending set */
    bool refuse_streams; /* new streams get REFUSED_STREAM */
    bool calm;           /* a flood ended the session: GOAWAY(ENHANCE_YOUR_CALM) */
    bool goaway_code_set;
    uint32_t goaway_code;   /* the GOAWAY we sent */
    struct ratelim control; /* PING, SETTINGS, PRIORITY, empty DATA, CONTINUATION */
    struct ratelim resets;  /* RST_STREAM (CVE-2023-44487, "rapid reset") */
    char h2_error[120];     /* nghttp2's reason for the last connection error */
    char error_text[200];
};

/* ---- preface ---------------------------------------------------------------------------- */

int arpc__h2_preface_detect(const void *data, size_t len)
{
    size_t n = len < ARPC__H2_PREFACE_LEN ? len : ARPC__H2_PREFACE_LEN;
    if (n > 0 && memcmp(data, ARPC__H2_PREFACE, n) != 0)
        return ARPC__H2_NO;
    return n == ARPC__H2_PREFACE_LEN ? ARPC__H2_YES : ARPC__H2_NEED_MORE;
}

/* ---- allocator -------------------------------------------------------------------------- */

/* nghttp2's allocations, through the hooks; a failure is remembered so that the session's
 * end it causes (nghttp2 gives up with INTERNAL_ERROR) reads as ARPC_ENOMEM, not as the
 * peer's fault. */
static void *noted(void *p, void *u)
{
    if (!p)
        ((arpc__grpc_session *)u)->alloc_failed = true;
    return p;
}

static void *mem_malloc(size_t size, void *u)
{
    return noted(arpc__grpc_pool_alloc(&((arpc__grpc_session *)u)->pool, size), u);
}

static void mem_free(void *p, void *u)
{
    arpc__grpc_pool_free(&((arpc__grpc_session *)u)->pool, p);
}

static void *mem_calloc(size_t n, size_t size, void *u)
{
    return noted(arpc__grpc_pool_calloc(&((arpc__grpc_session *)u)->pool, n, size), u);
}

static void *mem_realloc(void *p, size_t size, void *u)
{
    return noted(arpc__grpc_pool_realloc(&((arpc__grpc_session *)u)->pool, p, size), u);
}

/* ---- streams ---------------------------------------------------------------------------- */

#define MAX_SPARE_STREAMS 64

static gstream *stream_new(arpc__grpc_session *s, int32_t id, void *user, uint32_t max_recv)
{
    gstream *st = s->spare;
    if (st) {
        s->spare = st->next;
        s->nspare--;
    } else {
        st = arpc__calloc(1, sizeof(*st));
        if (!st)
            return NULL;
        arpc__buf_init(&st->hb);
        arpc__buf_init(&st->mds);
        arpc__buf_init(&st->out);
        arpc__buf_init(&st->tb);
    }
    st->prev = NULL;
    st->id = id;
    st->user = user;
    arpc__grpc_msg_decoder_init(&st->dec, max_recv);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    return st;
}

static void stream_release(gstream *st)
{
    arpc__buf_fini(&st->hb);
    arpc__buf_fini(&st->mds);
    arpc__buf_fini(&st->out);
    arpc__buf_fini(&st->tb);
    arpc__free(st);
}

/* Empties a spare stream's buffer; a big one (a large message went through it) is freed, so
 * spares hold at most MAX_SPARE_STREAMS * 4 * SPARE_BUF_MAX bytes. */
#define SPARE_BUF_MAX (16u * 1024)

static void spare_buf(arpc_buf *b)
{
    if (b->cap > SPARE_BUF_MAX) {
        arpc__buf_fini(b);
        arpc__buf_init(b);
    }
    arpc__buf_clear(b);
}

/* The hostile-peer accounting of a stream that goes away: its queued answer bytes and its
 * pending request. */
static void stream_forget(arpc__grpc_session *s, gstream *st)
{
    if (s->server)
        s->held_bytes -= st->out.len;
    if (st->pending)
        s->npending--;
    st->pending = false;
    if (st->credit_pending)
        s->ncredit--;
    st->credit_pending = 0;
}

/* Unlinks the stream; keeps it (buffers and all, contents dropped) as a spare. */
static void stream_free(arpc__grpc_session *s, gstream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->nstreams--;
    stream_forget(s, st);
    arpc__grpc_msg_decoder_fini(&st->dec);
    if (s->nspare >= MAX_SPARE_STREAMS) {
        stream_release(st);
        return;
    }
    arpc_buf hb = st->hb, mds = st->mds, out = st->out, tb = st->tb;
    memset(st, 0, sizeof(*st));
    st->hb = hb;
    st->mds = mds;
    st->out = out;
    st->tb = tb;
    spare_buf(&st->hb);
    spare_buf(&st->mds);
    spare_buf(&st->out);
    spare_buf(&st->tb);
    st->next = s->spare;
    s->spare = st;
    s->nspare++;
}

static gstream *stream_get(arpc__grpc_session *s, int32_t id)
{
    gstream *st = nghttp2_session_get_stream_user_data(s->h2, id);
    if (st)
        return st;
    for (st = s->streams; st; st = st->next) /* a client stream not opened by nghttp2 yet */
        if (st->id == id)
            return st;
    return NULL;
}

static void headers_reset(gstream *st)
{
    arpc__buf_clear(&st->hb);
    arpc__buf_clear(&st->mds);
    st->hdr_bytes = 0;
}

static const char *span_ptr(const gstream *st, struct span sp)
{
    return (const char *)arpc__buf_data(&st->hb) + sp.off;
}

static bool span_eq(const gstream *st, struct span sp, const char *lit)
{
    size_t n = strlen(lit);
    return sp.set && sp.len == n && memcmp(span_ptr(st, sp), lit, n) == 0;
}

static int span_store(gstream *st, const void *p, size_t len, struct span *sp)
{
    if (len > UINT32_MAX - st->hb.len)
        return ARPC_ENOMEM;
    uint32_t off = (uint32_t)st->hb.len;
    if (arpc__buf_append(&st->hb, p, len) < 0)
        return ARPC_ENOMEM; /* sp untouched: a span always lies inside hb */
    *sp = (struct span){off, (uint32_t)len, true};
    return 0;
}

/* Builds the md array of the stream's collected metadata in the session's scratch. */
static int md_view(arpc__grpc_session *s, gstream *st, const arpc__grpc_md **md, size_t *n)
{
    size_t count = st->mds.len / sizeof(struct md_span);
    if (count > s->scratch_cap) {
        arpc__grpc_md *p = arpc__realloc(s->scratch, count * sizeof(*p));
        if (!p)
            return ARPC_ENOMEM;
        s->scratch = p;
        s->scratch_cap = count;
    }
    const struct md_span *ms = arpc__buf_data(&st->mds);
    for (size_t i = 0; i < count; i++) {
        struct md_span e;
        memcpy(&e, ms + i, sizeof(e));
        s->scratch[i] =
            (arpc__grpc_md){span_ptr(st, e.key), e.key.len, span_ptr(st, e.value), e.value.len};
    }
    *md = s->scratch;
    *n = count;
    return 0;
}

/* ---- building header blocks ------------------------------------------------------------- */

enum { ENC_RAW, ENC_BASE64, ENC_PERCENT };

struct kv {
    const char *k;
    size_t kl;
    const void *v;
    size_t vl;
    int enc;
};

static size_t kv_value_len(const struct kv *e)
{
    if (e->enc == ENC_BASE64)
        return arpc__grpc_base64_encoded_len(e->vl);
    if (e->enc == ENC_PERCENT)
        return arpc__grpc_percent_encoded_len(e->v, e->vl);
    return e->vl;
}

/* One block in `into` (cleared first; reused, so a warm connection allocates nothing here):
 * the nv array, then every name and value.  Fixed entries first, then md (checked with the
 * wire.h rules).  @return 0, ARPC_EINVAL or ARPC_ENOMEM. */
static int nv_build(arpc_buf *into, const struct kv *fixed, size_t nfixed, const arpc__grpc_md *md,
                    size_t nmd, nghttp2_nv **out, size_t *count)
{
    size_t bytes = (nfixed + nmd) * sizeof(nghttp2_nv);
    for (size_t i = 0; i < nfixed; i++)
        bytes += fixed[i].kl + kv_value_len(&fixed[i]);
    for (size_t i = 0; i < nmd; i++) {
        if (arpc__grpc_md_check(md[i].key, md[i].key_len, md[i].value, md[i].value_len) < 0)
            return ARPC_EINVAL;
        struct kv e = {md[i].key, md[i].key_len, md[i].value, md[i].value_len,
                       arpc__grpc_md_key_is_bin(md[i].key, md[i].key_len) ? ENC_BASE64 : ENC_RAW};
        bytes += e.kl + kv_value_len(&e);
    }
    arpc__buf_clear(into);
    if (arpc__buf_ensure(into, bytes ? bytes : 1) < 0)
        return ARPC_ENOMEM;
    nghttp2_nv *nv = (nghttp2_nv *)(void *)arpc__buf_head(into); /* malloc'd, start 0 */
    uint8_t *p = (uint8_t *)(nv + nfixed + nmd);
    for (size_t i = 0; i < nfixed + nmd; i++) {
        struct kv e =
            i < nfixed
                ? fixed[i]
                : (struct kv){md[i - nfixed].key, md[i - nfixed].key_len, md[i - nfixed].value,
                              md[i - nfixed].value_len,
                              arpc__grpc_md_key_is_bin(md[i - nfixed].key, md[i - nfixed].key_len)
                                  ? ENC_BASE64
                                  : ENC_RAW};
        nv[i].name = p;
        nv[i].namelen = e.kl;
        if (e.kl)
            memcpy(p, e.k, e.kl);
        p += e.kl;
        nv[i].value = p;
        if (e.enc == ENC_BASE64)
            nv[i].valuelen = arpc__grpc_base64_encode(e.v, e.vl, (char *)p);
        else if (e.enc == ENC_PERCENT)
            nv[i].valuelen = arpc__grpc_percent_encode(e.v, e.vl, (char *)p);
        else {
            if (e.vl)
                memcpy(p, e.v, e.vl);
            nv[i].valuelen = e.vl;
        }
        p += nv[i].valuelen;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    *out = nv;
    *count = nfixed + nmd;
    return 0;
}

#define KV_LIT(k, v) ((struct kv){k, sizeof(k) - 1, v, sizeof(v) - 1, ENC_RAW})

/* The blocks every successful call sends, as constant nv arrays: nothing to build, and with
 * NO_COPY nghttp2 copies only the array (the strings are static, so they outlive the frame). */
#define NV_STATIC(k, v)                                                  \
    {                                                                    \
        (uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, sizeof(v) - 1,    \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE \
    }

static const nghttp2_nv response_headers[] = {NV_STATIC(":status", "200"),
                                              NV_STATIC("content-type", "application/grpc")};
static const nghttp2_nv trailers_ok[] = {NV_STATIC("grpc-status", "0")};

static int map_h2_err(int rv)
{
    if (rv == NGHTTP2_ERR_NOMEM)
        return ARPC_ENOMEM;
    if (rv == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || rv == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED)
        return ARPC_ESHUTDOWN;
    if (rv == NGHTTP2_ERR_INVALID_ARGUMENT || rv == NGHTTP2_ERR_STREAM_CLOSED ||
        rv == NGHTTP2_ERR_DATA_EXIST || rv == NGHTTP2_ERR_INVALID_STATE ||
        rv == NGHTTP2_ERR_STREAM_SHUT_WR)
        return ARPC_EINVAL;
    return ARPC_EFRAME;
}

/* ---- events ----------------------------------------------------------------------------- */

static void emit(arpc__grpc_session *s, arpc__grpc_event *ev)
{
    if (s->cb)
        s->cb(s->user, ev);
}

static arpc__grpc_event event_for(int type, const gstream *st)
{
    arpc__grpc_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.deadline_ns = ARPC__NO_DEADLINE;
    if (st) {
        ev.stream_id = st->id;
        ev.stream_user = st->user;
    }
    return ev;
}

/* ---- data providers --------------------------------------------------------------------- */

static void settle(arpc__grpc_session *s, gstream *st);

static int submit_trailers(arpc__grpc_session *s, gstream *st)
{
    int rv = nghttp2_submit_trailer(s->h2, st->id, st->trailers, st->ntrailers);
    st->trailers = NULL;
    st->ntrailers = 0;
    return rv;
}

/* A stream's n bytes taken by nghttp2: payload bytes become credit, reported once the send
 * loop is done (send_into), so the application never runs inside nghttp2's callback.  The
 * prefixes are subtracted first, so the sum is exact, the split between calls not. */
static void note_credit(arpc__grpc_session *s, gstream *st, size_t n)
{
    size_t d = n < st->prefix_debt ? n : st->prefix_debt;
    st->prefix_debt -= d;
    n -= d;
    if (n == 0)
        return;
    if (st->credit_pending == 0)
        s->ncredit++;
    st->credit_pending += n;
}

static void emit_credits(arpc__grpc_session *s)
{
    for (gstream *st = s->streams, *next; st && s->ncredit > 0; st = next) {
        next = st->next;
        if (st->credit_pending == 0)
            continue;
        arpc__grpc_event ev = event_for(ARPC__GRPC_EV_CREDIT, st);
        ev.len = st->credit_pending;
        st->credit_pending = 0;
        s->ncredit--;
        emit(s, &ev);
    }
}

static ssize_t data_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)h2;
    (void)id;
    arpc__grpc_session *s = u;
    gstream *st = src->ptr;
    size_t n = st->out.len < length ? st->out.len : length;
    if (n) {
        memcpy(buf, arpc__buf_head(&st->out), n);
        arpc__buf_consume(&st->out, n);
        if (s->server)
            s->held_bytes -= n;
        if (st->stream)
            note_credit(s, st, n);
    }
    if (st->out.len > 0)
        return (ssize_t)n;
    if (s->server && st->status_set) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (submit_trailers(s, st) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return (ssize_t)n;
    }
    if (!s->server && st->eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n)
        return (ssize_t)n;
    st->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
}

static int resume(arpc__grpc_session *s, gstream *st)
{
    if (!st->deferred)
        return 0;
    st->deferred = false;
    int rv = nghttp2_session_resume_data(s->h2, st->id);
    return rv == NGHTTP2_ERR_NOMEM ? ARPC_ENOMEM : 0;
}

/* ---- server: answers -------------------------------------------------------------------- */

static gstream *server_stream(arpc__grpc_session *s, int32_t id)
{
    if (!s->server)
        return NULL;
    gstream *st = nghttp2_session_get_stream_user_data(s->h2, id);
    return st && !st->end_sent ? st : NULL;
}

static int submit_headers(arpc__grpc_session *s, gstream *st, const arpc__grpc_md *md, size_t n)
{
    struct kv fixed[] = {KV_LIT(":status", "200"), KV_LIT("content-type", "application/grpc")};
    const nghttp2_nv *nv = response_headers;
    size_t count = 2;
    if (n > 0) {
        nghttp2_nv *built;
        int rc = nv_build(&s->nvbuf, fixed, 2, md, n, &built, &count);
        if (rc < 0)
            return rc;
        nv = built;
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int rv = nghttp2_submit_response(s->h2, st->id, nv, count, &prd);
    if (rv != 0)
        return map_h2_err(rv);
    st->headers_sent = true;
    return 0;
}

int arpc__grpc_session_send_headers(arpc__grpc_session *s, int32_t stream_id,
                                    const arpc__grpc_md *md, size_t md_count)
{
    gstream *st = server_stream(s, stream_id);
    if (!st || st->headers_sent || st->status_set)
        return ARPC_EINVAL;
    return submit_headers(s, st, md, md_count);
}

/* A client stream that may still send. */
static gstream *client_writable(arpc__grpc_session *s, int32_t id)
{
    gstream *st = s->server ? NULL : stream_get(s, id);
    return st && st->stream && !st->eof && !st->canceled && !st->local_status ? st : NULL;
}

int arpc__grpc_session_send_message(arpc__grpc_session *s, int32_t stream_id, const void *data,
                                    size_t len)
{
    gstream *st = s->server ? server_stream(s, stream_id) : client_writable(s, stream_id);
    if (!st || st->status_set || len > UINT32_MAX)
        return ARPC_EINVAL;
    if (arpc__buf_ensure(&st->out, len + ARPC__GRPC_PREFIX_SIZE) < 0)
        return ARPC_ENOMEM;
    if (s->server && !st->headers_sent) {
        int rc = submit_headers(s, st, NULL, 0);
        if (rc < 0)
            return rc;
    }
    size_t before = st->out.len;
    int rc = arpc__grpc_msg_encode(&st->out, false, data, len);
    if (rc < 0)
        return rc;
    if (s->server)
        s->held_bytes += st->out.len - before;
    if (st->stream)
        st->prefix_debt += ARPC__GRPC_PREFIX_SIZE;
    return resume(s, st);
}

/* The status entries: grpc-status, then grpc-message when there is one. */
static size_t status_kv(struct kv *kv, char digits[4], int grpc_status, const char *message,
                        size_t message_len)
{
    size_t n = 0; /* 0..999, checked by the caller */
    if (grpc_status >= 100)
        digits[n++] = (char)('0' + grpc_status / 100);
    if (grpc_status >= 10)
        digits[n++] = (char)('0' + grpc_status / 10 % 10);
    digits[n++] = (char)('0' + grpc_status % 10);
    kv[0] = (struct kv){"grpc-status", 11, digits, n, ENC_RAW};
    if (!message || message_len == 0)
        return 1;
    kv[1] = (struct kv){"grpc-message", 12, message, message_len, ENC_PERCENT};
    return 2;
}

/* The trailers wait in the stream until its queued DATA is out (data_read submits them). */
static int set_trailers(arpc__grpc_session *s, gstream *st, int grpc_status, const nghttp2_nv *nv,
                        size_t count)
{
    st->grpc_status = grpc_status;
    st->trailers = nv;
    st->ntrailers = count;
    st->status_set = true;
    return resume(s, st);
}

/* Status, trailing md, and, for extra (an unsupported encoding), one more fixed entry. */
static int finish(arpc__grpc_session *s, gstream *st, int grpc_status, const char *message,
                  size_t message_len, const arpc__grpc_md *md, size_t nmd, const struct kv *extra)
{
    struct kv kv[5];
    char digits[4];
    size_t n = 0;
    bool only = !st->headers_sent && st->out.len == 0;
    if (only) {
        kv[n++] = KV_LIT(":status", "200");
        kv[n++] = KV_LIT("content-type", "application/grpc");
    }
    if (grpc_status < 0 || grpc_status > 999)
        grpc_status = ARPC__GRPC_UNKNOWN;
    s->answers_queued++;
    if (!only && grpc_status == 0 && (!message || message_len == 0) && nmd == 0 && !extra)
        return set_trailers(s, st, grpc_status, trailers_ok, 1);
    n += status_kv(kv + n, digits, grpc_status, message, message_len);
    if (extra)
        kv[n++] = *extra;
    nghttp2_nv *nv;
    size_t count;
    int rc = nv_build(only ? &s->nvbuf : &st->tb, kv, n, md, nmd, &nv, &count);
    if (rc < 0)
        return rc;
    st->grpc_status = grpc_status;
    if (only) {
        int rv = nghttp2_submit_response(s->h2, st->id, nv, count, NULL);
        if (rv != 0)
            return map_h2_err(rv);
        st->headers_sent = true;
        st->status_set = true;
        return 0;
    }
    return set_trailers(s, st, grpc_status, nv, count);
}

int arpc__grpc_session_send_status(arpc__grpc_session *s, int32_t stream_id, int grpc_status,
                                   const char *message, size_t message_len, const arpc__grpc_md *md,
                                   size_t md_count)
{
    gstream *st = server_stream(s, stream_id);
    if (!st || st->status_set)
        return ARPC_EINVAL;
    int rc = finish(s, st, grpc_status, message, message_len, md, md_count, NULL);
    settle(s, st); /* what the client still sends is discarded */
    return rc;
}

/* The session's own answer to a broken rule: Trailers-Only (or trailers), the rest of the
 * stream's DATA discarded.  A failure to queue it resets the stream instead. */
static void self_answer(arpc__grpc_session *s, gstream *st, int grpc_status, const char *msg,
                        const struct kv *extra)
{
    if (st->status_set)
        return;
    st->self_answer = true;
    s->held_bytes -= st->out.len;
    arpc__buf_clear(&st->out);
    if (finish(s, st, grpc_status, msg, strlen(msg), NULL, 0, extra) < 0) {
        st->status_set = true;
        nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
}

static void http_answer(arpc__grpc_session *s, gstream *st, const char *code)
{
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE}};
    st->status_set = true;
    st->self_answer = true;
    if (nghttp2_submit_response(s->h2, st->id, nv, 1, NULL) != 0)
        nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

int arpc__grpc_session_shutdown_notice(arpc__grpc_session *s)
{
    if (!s->server)
        return ARPC_EINVAL;
    int rv = nghttp2_submit_shutdown_notice(s->h2);
    return rv == 0 ? 0 : map_h2_err(rv);
}

int arpc__grpc_session_goaway(arpc__grpc_session *s)
{
    int rv = nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE,
                                   nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR,
                                   NULL, 0);
    if (rv != 0)
        return map_h2_err(rv);
    s->goaway_sent = true;
    return 0;
}

/* ---- hostile peers (server side) --------------------------------------------------------
 *
 * What nghttp2 1.52 leaves to us (docs/grpc.md, "Hostile peers"):
 * - Floods.  Frames that cost the server work and carry no request: PING and SETTINGS
 *   (each makes nghttp2 queue an ACK), PRIORITY, CONTINUATION, DATA that is empty and does
 *   not end its stream; and RST_STREAM, which frees a stream slot at once, so HEADERS then
 *   RST_STREAM repeated starts unbounded work under any concurrency limit (CVE-2023-44487;
 *   nghttp2 bounds it from 1.57 on, not in Debian's 1.52).  Each kind draws on a token
 *   bucket per connection, counted from on_begin_frame (every frame header, CONTINUATION
 *   included, before its payload is processed); an empty bucket ends the session with
 *   GOAWAY(ENHANCE_YOUR_CALM) and feed returns ARPC_EOVERLOAD.  Resets: nghttp2 1.57's
 *   own defaults, 1000 and 33 a second.  Control frames: 500 and 100 a second, far above
 *   what gRPC clients send (a few BDP PINGs a second, two heartbeat PINGs), and below
 *   nghttp2's own limit of 1000 queued ACKs, which would end the session without a GOAWAY.
 * - Streams that never end: expire, from the server's periodic sweep.
 * - Answers held by flow control: counted in `held_bytes`; while the caller says so
 *   (refuse_streams), new streams are refused instead of adding to them.
 */

#define CONTROL_BURST 500u
#define CONTROL_RATE  100u
#define RESET_BURST   1000u
#define RESET_RATE    33u

static void ratelim_init(struct ratelim *r, uint32_t burst, uint32_t rate)
{
    *r = (struct ratelim){burst, rate, burst, arpc__now_ns() / (1000 * ARPC__NS_PER_MS)};
}

/* Takes one token.  @return false when none is left. */
static bool ratelim_take(struct ratelim *r)
{
    int64_t now_s = arpc__now_ns() / (1000 * ARPC__NS_PER_MS);
    if (now_s > r->last_s) {
        uint64_t add = (uint64_t)(now_s - r->last_s) * r->rate + r->tokens;
        r->tokens = add > r->burst ? r->burst : (uint32_t)add;
        r->last_s = now_s;
    }
    if (r->tokens == 0)
        return false;
    r->tokens--;
    return true;
}

/* The kind of flood a frame belongs to, or NULL for a frame that is not counted. */
static const char *flood_kind(const nghttp2_frame_hd *hd)
{
    switch (hd->type) {
    case NGHTTP2_PING:
        return hd->flags & NGHTTP2_FLAG_ACK ? NULL : "PING";
    case NGHTTP2_SETTINGS:
        return hd->flags & NGHTTP2_FLAG_ACK ? NULL : "SETTINGS";
    case NGHTTP2_PRIORITY:
        return "PRIORITY";
    case NGHTTP2_CONTINUATION:
        return "CONTINUATION";
    case NGHTTP2_DATA:
        return hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) ? "empty DATA" : NULL;
    case NGHTTP2_RST_STREAM:
        return "RST_STREAM";
    default:
        return NULL;
    }
}

static int on_begin_frame(nghttp2_session *h2, const nghttp2_frame_hd *hd, void *u)
{
    arpc__grpc_session *s = u;
    const char *kind = s->server && !s->calm ? flood_kind(hd) : NULL;
    if (!kind || ratelim_take(hd->type == NGHTTP2_RST_STREAM ? &s->resets : &s->control))
        return 0;
    s->calm = true;
    snprintf(s->error_text, sizeof(s->error_text),
             "%s flood (over %u a second after a burst of %u): GOAWAY(ENHANCE_YOUR_CALM)", kind,
             hd->type == NGHTTP2_RST_STREAM ? RESET_RATE : CONTROL_RATE,
             hd->type == NGHTTP2_RST_STREAM ? RESET_BURST : CONTROL_BURST);
    /* Queues the GOAWAY and ignores every byte after this frame header. */
    int rv = nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
    return rv == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* nghttp2's reason for a connection error, kept for the log line (error_text). */
static int on_h2_error(nghttp2_session *h2, int lib_error_code, const char *msg, size_t len,
                       void *u)
{
    (void)h2;
    (void)lib_error_code;
    arpc__grpc_session *s = u;
    snprintf(s->h2_error, sizeof(s->h2_error), "%.*s", (int)len, msg);
    return 0;
}

static void emit_fault(arpc__grpc_session *s, gstream *st, int fault)
{
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_FAULT, st);
    ev.stream_id = st ? st->id : 0;
    ev.fault = fault;
    emit(s, &ev);
}

static int refuse_stream(arpc__grpc_session *s, int32_t id)
{
    int rv = nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    if (rv != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* out of memory */
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_FAULT, NULL);
    ev.stream_id = id;
    ev.fault = ARPC__GRPC_FAULT_REFUSED_STREAM;
    emit(s, &ev);
    return 0;
}

static void mark_pending(arpc__grpc_session *s, gstream *st)
{
    st->pending = true;
    st->begin_ns = arpc__now_ns();
    st->deadline_ns = ARPC__NO_DEADLINE;
    s->npending++;
}

static void not_pending(arpc__grpc_session *s, gstream *st)
{
    if (st->pending)
        s->npending--;
    st->pending = false;
}

/* Ends one stream whose request did not arrive in time. */
static int expire_stream(arpc__grpc_session *s, gstream *st, bool late)
{
    not_pending(s, st);
    emit_fault(s, st, ARPC__GRPC_FAULT_STREAM_TIMEOUT);
    if (late) {
        self_answer(s, st, ARPC__GRPC_DEADLINE_EXCEEDED,
                    "deadline exceeded before the request arrived", NULL);
        return 0;
    }
    st->status_set = true;
    st->self_answer = true;
    int rv = nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    return rv == NGHTTP2_ERR_NOMEM ? ARPC_ENOMEM : 0;
}

int arpc__grpc_session_expire(arpc__grpc_session *s, int64_t now_ns, int64_t stall_ns)
{
    if (!s->server || s->npending == 0)
        return 0;
    for (gstream *st = s->streams; st; st = st->next) {
        if (!st->pending || st->status_set)
            continue;
        bool late = st->deadline_ns != ARPC__NO_DEADLINE && now_ns >= st->deadline_ns;
        if (!late && (stall_ns <= 0 || now_ns - st->begin_ns < stall_ns))
            continue;
        int rc = expire_stream(s, st, late);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void arpc__grpc_session_refuse_streams(arpc__grpc_session *s, bool on)
{
    s->refuse_streams = on;
}

size_t arpc__grpc_session_held_bytes(const arpc__grpc_session *s)
{
    return s->held_bytes;
}

const char *arpc__grpc_session_error_text(const arpc__grpc_session *s)
{
    return s->error_text[0] ? s->error_text : NULL;
}

/* The text for a connection error nghttp2 found: the GOAWAY it sent and its reason. */
static void note_h2_error(arpc__grpc_session *s)
{
    if (s->calm || s->error_text[0])
        return;
    if (s->goaway_code_set)
        snprintf(s->error_text, sizeof(s->error_text), "HTTP/2 GOAWAY(%s)%s%s",
                 nghttp2_http2_strerror(s->goaway_code), s->h2_error[0] ? ": " : "", s->h2_error);
    else if (s->h2_error[0])
        snprintf(s->error_text, sizeof(s->error_text), "HTTP/2: %s", s->h2_error);
}

/* ---- receive windows ------------------------------------------------------------------- *
 *
 * The session runs nghttp2 with no_auto_window_update: every received DATA byte is granted
 * back by nghttp2_session_consume (connection and stream window; nghttp2 sends the
 * WINDOW_UPDATE once half a window is consumed).  A unary stream's bytes are consumed as
 * they arrive, as nghttp2 would by itself; a stream's wait in `owed` until the application
 * consumed its messages (arpc__grpc_session_consume), except the prefixes, and except once
 * the stream takes no more messages (settle). */

static bool recv_done(const arpc__grpc_session *s, const gstream *st)
{
    return s->server ? st->status_set : st->local_status || st->canceled;
}

/* Grants n (<= owed) of the stream's bytes back.  @return 0 or a fatal nghttp2 error. */
static int grant(arpc__grpc_session *s, gstream *st, size_t n)
{
    if (n > st->owed)
        n = st->owed;
    if (n == 0)
        return 0;
    st->owed -= n;
    int rv = nghttp2_session_consume(s->h2, st->id, n);
    return nghttp2_is_fatal(rv) ? rv : 0;
}

/* A message larger than the window would never complete: once every complete message was
 * consumed and what is still owed is half a window of one incomplete message, that part is
 * granted ahead, and the consume of the message skips it.  So a reader holds at most its
 * window of complete messages, plus one message. */
static void grant_ahead(arpc__grpc_session *s, gstream *st)
{
    size_t ungranted = st->partial - st->advance;
    if (ungranted == 0 || st->owed != ungranted || ungranted < s->stream_window / 2)
        return;
    st->advance += ungranted;
    (void)grant(s, st, ungranted);
}

/* A stream's message of `len` payload bytes was delivered: its prefix is granted now, the
 * payload at its consume, less what went ahead (which began with the prefix: its first
 * bytes), so every byte is granted exactly once. */
static void stream_delivered(arpc__grpc_session *s, gstream *st, size_t len)
{
    size_t wire = len + ARPC__GRPC_PREFIX_SIZE;
    size_t pre = st->advance < ARPC__GRPC_PREFIX_SIZE ? st->advance : ARPC__GRPC_PREFIX_SIZE;
    st->partial -= wire < st->partial ? wire : st->partial;
    st->skip += st->advance - pre;
    st->advance = 0;
    (void)grant(s, st, ARPC__GRPC_PREFIX_SIZE - pre);
}

/* A stream that takes no more messages gives its window back at once. */
static void settle(arpc__grpc_session *s, gstream *st)
{
    if (!st->stream)
        return;
    if (st->owed > 0 && recv_done(s, st))
        (void)grant(s, st, st->owed);
    else
        grant_ahead(s, st);
}

/* on_data_chunk's bytes: owed on a stream still reading, else consumed now.  A unary
 * stream's cost what nghttp2's automatic updates cost: the connection's are granted once per
 * mem_recv (feed), the stream's only once they reach half its window (a unary message ends
 * its stream, whose window then no longer matters). */
static int account_chunk(arpc__grpc_session *s, gstream *st, int32_t id, size_t len)
{
    if (st && st->stream && !recv_done(s, st)) {
        st->owed += len;
        st->partial += len;
        return 0;
    }
    int rv = 0;
    if (!st) {
        rv = nghttp2_session_consume(s->h2, id, len);
    } else {
        s->conn_owed += len;
        st->unary_owed += len;
        if (st->unary_owed >= s->stream_window / 2) {
            rv = nghttp2_session_consume_stream(s->h2, id, st->unary_owed);
            st->unary_owed = 0;
        }
    }
    return nghttp2_is_fatal(rv) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* The connection window of the unary bytes account_chunk took, after mem_recv. */
static int grant_connection(arpc__grpc_session *s)
{
    if (s->conn_owed == 0)
        return 0;
    int rv = nghttp2_session_consume_connection(s->h2, s->conn_owed);
    s->conn_owed = 0;
    return nghttp2_is_fatal(rv) ? ARPC_ENOMEM : 0;
}

int arpc__grpc_session_stream(arpc__grpc_session *s, int32_t stream_id)
{
    gstream *st = server_stream(s, stream_id);
    if (!st || !st->reported || st->status_set)
        return ARPC_EINVAL;
    st->stream = true;
    not_pending(s, st); /* a stream may idle: the rpc layer's deadline and heartbeats judge */
    return 0;
}

int arpc__grpc_session_consume(arpc__grpc_session *s, int32_t stream_id, size_t n)
{
    gstream *st = stream_get(s, stream_id);
    if (!st || !st->stream)
        return 0; /* ended: its bytes were granted back then */
    size_t d = n < st->skip ? n : st->skip;
    st->skip -= d;
    if (grant(s, st, n - d) != 0)
        return ARPC_ENOMEM;
    grant_ahead(s, st);
    return 0;
}

int arpc__grpc_session_half_close(arpc__grpc_session *s, int32_t stream_id)
{
    gstream *st = client_writable(s, stream_id);
    if (!st)
        return ARPC_EINVAL;
    st->eof = true;
    return resume(s, st);
}

/* ---- server: requests ------------------------------------------------------------------- */

/* Validates a complete request header block and reports it, or answers it here. */
static void server_request(arpc__grpc_session *s, gstream *st)
{
    static const struct kv accept = {"grpc-accept-encoding", 20, "identity", 8, ENC_RAW};
    /* Not REFUSED_STREAM: that tells a client to retry elsewhere, where it fails again. */
    if (st->hdr_too_big) {
        emit_fault(s, st, ARPC__GRPC_FAULT_HEADERS_TOO_BIG);
        return self_answer(s, st, ARPC__GRPC_RESOURCE_EXHAUSTED,
                           "header list larger than the server's limit", NULL);
    }
    if (!span_eq(st, st->method, "POST"))
        return http_answer(s, st, "405");
    if (!st->ctype.set || st->ctype.len < 16 ||
        memcmp(span_ptr(st, st->ctype), "application/grpc", 16) != 0 ||
        (st->ctype.len > 16 && span_ptr(st, st->ctype)[16] != '+' &&
         span_ptr(st, st->ctype)[16] != ';'))
        return http_answer(s, st, "415");
    if (!st->path.set || st->path.len < 2 || span_ptr(st, st->path)[0] != '/')
        return self_answer(s, st, ARPC__GRPC_UNIMPLEMENTED, "malformed :path", NULL);
    if (st->encoding.set && !span_eq(st, st->encoding, "identity"))
        return self_answer(s, st, ARPC__GRPC_UNIMPLEMENTED, "unsupported grpc-encoding", &accept);
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_REQUEST, st);
    if (st->timeout.set && arpc__grpc_timeout_deadline(span_ptr(st, st->timeout), st->timeout.len,
                                                       arpc__now_ns(), &ev.deadline_ns) < 0)
        return self_answer(s, st, ARPC__GRPC_INTERNAL, "malformed grpc-timeout", NULL);
    if (md_view(s, st, &ev.md, &ev.md_count) < 0)
        return self_answer(s, st, ARPC__GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
    ev.path = span_ptr(st, st->path);
    ev.path_len = st->path.len;
    st->reported = true;
    st->deadline_ns = ev.deadline_ns;
    emit(s, &ev);
}

static void server_data(arpc__grpc_session *s, gstream *st, const uint8_t *p, size_t n)
{
    char text[96];
    arpc__grpc_msg m;
    while (!st->status_set) {
        int rc = arpc__grpc_msg_decode(&st->dec, &p, &n, &m);
        if (rc == 0)
            return;
        if (rc == 1 && m.compressed)
            return self_answer(s, st, ARPC__GRPC_INTERNAL,
                               "compressed message without a negotiated grpc-encoding", NULL);
        if (rc == 1) {
            not_pending(s, st);
            if (st->stream)
                stream_delivered(s, st, m.len);
            arpc__grpc_event ev = event_for(ARPC__GRPC_EV_MESSAGE, st);
            ev.data = m.data;
            ev.len = m.len;
            emit(s, &ev);
            continue;
        }
        if (rc == ARPC_ETOOBIG) {
            snprintf(text, sizeof(text), "received message larger than max (%u bytes)",
                     st->dec.max_len);
            return self_answer(s, st, ARPC__GRPC_RESOURCE_EXHAUSTED, text, NULL);
        }
        if (rc == ARPC_ENOMEM)
            return self_answer(s, st, ARPC__GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return self_answer(s, st, ARPC__GRPC_INTERNAL, "malformed message prefix", NULL);
    }
}

static void server_end_stream(arpc__grpc_session *s, gstream *st)
{
    if (!st->reported || st->status_set)
        return;
    if (!arpc__grpc_msg_decoder_at_boundary(&st->dec))
        return self_answer(s, st, ARPC__GRPC_INTERNAL, "truncated message at END_STREAM", NULL);
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_HALF_CLOSE, st);
    emit(s, &ev);
}

/* ---- client: calls ---------------------------------------------------------------------- */

int arpc__grpc_session_open_stream(arpc__grpc_session *s, const arpc__grpc_call_desc *d,
                                   void *stream_user, int32_t *stream_id)
{
    if (s->server || !d->path || d->path_len < 2 || d->path[0] != '/' || d->msg_len > UINT32_MAX)
        return ARPC_EINVAL;
    if (s->goaway_recv || s->goaway_sent)
        return ARPC_ESHUTDOWN;
    struct kv kv[8];
    size_t n = 0;
    const char *auth = d->authority ? d->authority : "localhost";
    char tmo[ARPC__GRPC_TIMEOUT_MAX_LEN];
    kv[n++] = KV_LIT(":method", "POST");
    kv[n++] = KV_LIT(":scheme", "http");
    kv[n++] = (struct kv){":path", 5, d->path, d->path_len, ENC_RAW};
    kv[n++] = (struct kv){":authority", 10, auth, strlen(auth), ENC_RAW};
    kv[n++] = KV_LIT("te", "trailers");
    kv[n++] = KV_LIT("content-type", "application/grpc");
    if (d->timeout_ns >= 0)
        kv[n++] = (struct kv){"grpc-timeout", 12, tmo,
                              arpc__grpc_timeout_encode(d->timeout_ns, tmo), ENC_RAW};
    nghttp2_nv *nv;
    size_t count;
    int rc = nv_build(&s->nvbuf, kv, n, d->md, d->md_count, &nv, &count);
    if (rc < 0)
        return rc;
    /* Each call's grpc-timeout differs: indexed, every one would be a new entry of the HPACK
     * dynamic table on both sides, evicting the entries that do repeat (RFC 7541 7.1.3
     * leaves the choice to the encoder). */
    if (d->timeout_ns >= 0)
        nv[n - 1].flags = NGHTTP2_NV_FLAG_NO_INDEX;
    gstream *st = stream_new(s, 0, stream_user, s->max_recv_msg);
    if (!st || (!d->stream && arpc__grpc_msg_encode(&st->out, false, d->msg, d->msg_len) < 0)) {
        if (st)
            stream_free(s, st);
        return ARPC_ENOMEM;
    }
    st->eof = !d->stream;
    st->stream = d->stream;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int32_t id = nghttp2_submit_request(s->h2, NULL, nv, count, &prd, st);
    if (id < 0) {
        stream_free(s, st);
        return map_h2_err(id);
    }
    st->id = id;
    *stream_id = id;
    return 0;
}

int arpc__grpc_session_cancel(arpc__grpc_session *s, int32_t stream_id)
{
    gstream *st = stream_get(s, stream_id);
    if (!st || st->canceled || (s->server && st->end_sent))
        return ARPC_EINVAL;
    st->canceled = true;
    st->status_set = true;
    settle(s, st);
    int rv = nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    return rv == 0 ? 0 : map_h2_err(rv);
}

/* gRPC's doc/http-grpc-status-mapping.md. */
static int status_from_http(unsigned code)
{
    switch (code) {
    case 400:
        return ARPC__GRPC_INTERNAL;
    case 401:
        return ARPC__GRPC_UNAUTHENTICATED;
    case 403:
        return ARPC__GRPC_PERMISSION_DENIED;
    case 404:
        return ARPC__GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return ARPC__GRPC_UNAVAILABLE;
    default:
        return ARPC__GRPC_UNKNOWN;
    }
}

static unsigned http_status(const gstream *st)
{
    if (!st->status.set || st->status.len != 3)
        return 0;
    const char *p = span_ptr(st, st->status);
    return (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
}

static void client_local_status(arpc__grpc_session *s, gstream *st, int code)
{
    if (st->local_status)
        return;
    st->local_status = true;
    st->grpc_status = code;
    nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
}

static void client_headers_done(arpc__grpc_session *s, gstream *st, bool end_stream)
{
    if (st->got_headers || end_stream)
        return; /* trailers, or Trailers-Only: kept for EV_CLOSE */
    st->got_headers = true;
    unsigned code = http_status(st);
    if (code != 200) {
        client_local_status(s, st, status_from_http(code));
        return;
    }
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_HEADERS, st);
    if (md_view(s, st, &ev.md, &ev.md_count) < 0) {
        client_local_status(s, st, ARPC__GRPC_RESOURCE_EXHAUSTED);
        return;
    }
    emit(s, &ev);
    headers_reset(st);
    st->status = st->gstatus = st->gmessage = (struct span){0};
}

static void client_data(arpc__grpc_session *s, gstream *st, const uint8_t *p, size_t n)
{
    arpc__grpc_msg m;
    while (!st->local_status && !st->canceled) {
        int rc = arpc__grpc_msg_decode(&st->dec, &p, &n, &m);
        if (rc == 0)
            return;
        if (rc == 1 && !m.compressed) {
            if (st->stream)
                stream_delivered(s, st, m.len);
            arpc__grpc_event ev = event_for(ARPC__GRPC_EV_MESSAGE, st);
            ev.data = m.data;
            ev.len = m.len;
            emit(s, &ev);
            continue;
        }
        client_local_status(s, st,
                            rc == ARPC_ETOOBIG || rc == ARPC_ENOMEM ? ARPC__GRPC_RESOURCE_EXHAUSTED
                                                                    : ARPC__GRPC_INTERNAL);
    }
}

/* A stream a server going away turned away without running it.  gRPC core's server
 * (grpcio, gRPC C++) fails every stream that arrives after its shutdown began, until its
 * second GOAWAY, with a Trailers-Only CANCELLED that never reaches the application
 * (tests/interop/grpc/goaway_probe.py; a call cut off by the end of the grace period gets
 * UNAVAILABLE instead).  Such a stream was opened before the first GOAWAY came (none opens
 * after) and is answered after it, and its id is at or below the last stream id, so the
 * GOAWAY alone does not mark it: CANCELLED with no response headers on a session that got
 * a GOAWAY is read as "never processed", like REFUSED_STREAM.  The turning away begins
 * before the first GOAWAY goes out: one that comes before any GOAWAY is marked `suspect`,
 * and grpc_proto.c holds it until the server shows which it was.  docs/grpc.md section 7. */
static bool turned_away(const arpc__grpc_session *s, const gstream *st, int code)
{
    return code == ARPC__GRPC_CANCELLED && s->goaway_recv && !st->got_headers;
}

/* The call's result at the stream's close. */
static void client_close(arpc__grpc_session *s, gstream *st, uint32_t error_code)
{
    arpc__grpc_event ev = event_for(ARPC__GRPC_EV_CLOSE, st);
    int code;
    if (st->local_status) {
        code = st->grpc_status;
    } else if (st->canceled) {
        code = ARPC__GRPC_CANCELLED;
        ev.canceled = true;
    } else if (st->gstatus.set) {
        if (arpc__grpc_status_parse(span_ptr(st, st->gstatus), st->gstatus.len, &code) < 0)
            code = ARPC__GRPC_UNKNOWN;
        if (st->gmessage.set) {
            char *m = (char *)span_ptr(st, st->gmessage);
            ev.message = m;
            ev.message_len = arpc__grpc_percent_decode(m, st->gmessage.len, (uint8_t *)m);
        }
        if (md_view(s, st, &ev.md, &ev.md_count) < 0)
            ev.md_count = 0;
        ev.refused = turned_away(s, st, code);
        ev.answered = true;
        ev.suspect = code == ARPC__GRPC_CANCELLED && !s->goaway_recv && !st->got_headers;
    } else if (error_code == NGHTTP2_REFUSED_STREAM) {
        code = ARPC__GRPC_UNAVAILABLE;
        ev.refused = true;
    } else if (st->status.set && http_status(st) != 200) {
        code = status_from_http(http_status(st));
    } else if (error_code == NGHTTP2_CANCEL) {
        code = ARPC__GRPC_CANCELLED;
    } else {
        code = error_code == NGHTTP2_NO_ERROR ? ARPC__GRPC_UNKNOWN : ARPC__GRPC_UNAVAILABLE;
    }
    ev.grpc_status = code;
    ev.status = arpc__grpc_status_to_arpc(code);
    emit(s, &ev);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *u)
{
    arpc__grpc_session *s = u;
    if (!s->server || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (s->refuse_streams)
        return refuse_stream(s, frame->hd.stream_id);
    gstream *st = stream_new(s, frame->hd.stream_id, NULL, s->max_recv_msg);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, st) != 0) {
        stream_free(s, st);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    mark_pending(s, st);
    return 0;
}

static struct span *special_span(gstream *st, bool server, const uint8_t *k, size_t kl)
{
#define IS(lit) (kl == sizeof(lit) - 1 && memcmp(k, lit, kl) == 0)
    if (server) {
        if (IS(":path"))
            return &st->path;
        if (IS(":method"))
            return &st->method;
        if (IS("content-type"))
            return &st->ctype;
        if (IS("grpc-timeout"))
            return &st->timeout;
        if (IS("grpc-encoding"))
            return &st->encoding;
        return NULL;
    }
    if (IS(":status"))
        return &st->status;
    if (IS("grpc-status"))
        return &st->gstatus;
    if (IS("grpc-message"))
        return &st->gmessage;
    return NULL;
#undef IS
}

/* A custom metadata entry: checked, "-bin" values decoded; a bad one is dropped (as gRPC's
 * implementations do with entries they cannot read). */
static int store_md(gstream *st, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    const char *key = (const char *)k;
    if (!arpc__grpc_md_key_valid(key, kl) || arpc__grpc_md_key_reserved(key, kl))
        return 0;
    struct md_span e;
    if (span_store(st, k, kl, &e.key) < 0)
        return ARPC_ENOMEM;
    if (arpc__grpc_md_key_is_bin(key, kl)) {
        size_t max = arpc__grpc_base64_decoded_max(vl), got;
        if (arpc__buf_ensure(&st->hb, max) < 0)
            return ARPC_ENOMEM;
        if (arpc__grpc_base64_decode((const char *)v, vl, arpc__buf_tail(&st->hb), &got) < 0) {
            st->hb.len -= kl; /* drop the key again */
            return 0;
        }
        e.value = (struct span){(uint32_t)st->hb.len, (uint32_t)got, true};
        st->hb.len += got;
    } else {
        if (!arpc__grpc_md_value_valid((const char *)v, vl)) {
            st->hb.len -= kl;
            return 0;
        }
        if (span_store(st, v, vl, &e.value) < 0)
            return ARPC_ENOMEM;
    }
    return arpc__buf_append(&st->mds, &e, sizeof(e));
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *u)
{
    (void)flags;
    arpc__grpc_session *s = u;
    gstream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    uint64_t add = (uint64_t)namelen + valuelen + HEADER_ENTRY_OVERHEAD;
    if (st->hdr_too_big || st->hdr_bytes + add > s->max_header_list) {
        st->hdr_too_big = true;
        return 0;
    }
    st->hdr_bytes += (uint32_t)add;
    struct span *sp = special_span(st, s->server, name, namelen);
    int rc =
        sp ? span_store(st, value, valuelen, sp) : store_md(st, name, namelen, value, valuelen);
    if (rc < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    /* A new request's header with answers waiting: let feed hand them out first (design
     * notes).  The header is stored; nghttp2 resumes after it. */
    if (s->early_answers != 0 && s->answers_queued >= s->early_answers) {
        s->paused = true;
        return NGHTTP2_ERR_PAUSE;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *u)
{
    arpc__grpc_session *s = u;
    gstream *st =
        frame->hd.stream_id ? nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id) : NULL;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        s->pings_without_data = 0;
        if (!st)
            return 0;
        if (s->server && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            server_request(s, st);
        else if (!s->server)
            client_headers_done(s, st, end);
        if (s->server && end)
            server_end_stream(s, st);
        return 0;
    case NGHTTP2_DATA:
        s->pings_without_data = 0;
        if (st && s->server && end)
            server_end_stream(s, st);
        return 0;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            arpc__grpc_event ev = event_for(ARPC__GRPC_EV_PING_ACK, NULL);
            memcpy(&ev.ping_data, frame->ping.opaque_data, 8);
            emit(s, &ev);
        }
        return 0;
    case NGHTTP2_GOAWAY: {
        s->goaway_recv = true;
        arpc__grpc_event ev = event_for(ARPC__GRPC_EV_GOAWAY, NULL);
        ev.last_stream_id = frame->goaway.last_stream_id;
        ev.error_code = frame->goaway.error_code;
        emit(s, &ev);
        return 0;
    }
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *u)
{
    (void)flags;
    arpc__grpc_session *s = u;
    gstream *st = nghttp2_session_get_stream_user_data(h2, id);
    if (account_chunk(s, st, id, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (!st)
        return 0;
    if (s->server) {
        if (!st->reported)
            return 0;
        /* Answers waiting: hand them out before this chunk's message is answered too
         * (design notes); nghttp2 keeps `data` valid until the next mem_recv. */
        if (s->early_answers != 0 && s->answers_queued >= s->early_answers) {
            s->held.id = id;
            s->held.data = data;
            s->held.len = len;
            s->paused = true;
            return NGHTTP2_ERR_PAUSE;
        }
        server_data(s, st, data, len);
    } else {
        client_data(s, st, data, len);
    }
    settle(s, st);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *u)
{
    arpc__grpc_session *s = u;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        s->goaway_code_set = true;
        s->goaway_code = frame->goaway.error_code;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    s->pings_without_data = 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gstream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st)
        return 0;
    st->end_sent = true;
    /* PROTOCOL-HTTP2.md: a server that ends the stream before the client did resets it. */
    if (s->server && nghttp2_session_get_stream_remote_close(h2, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

/* A client stream whose HEADERS could not go out (GOAWAY received, ids exhausted): nghttp2
 * never opened it, so no close callback comes; report it here. */
static int on_frame_not_send(nghttp2_session *h2, const nghttp2_frame *frame, int err, void *u)
{
    (void)err;
    arpc__grpc_session *s = u;
    if (s->server || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (nghttp2_session_find_stream(h2, frame->hd.stream_id))
        return 0; /* opened after all: on_stream_close reports it */
    gstream *st = stream_get(s, frame->hd.stream_id);
    if (!st)
        return 0;
    if (st->canceled)
        client_close(s, st, NGHTTP2_CANCEL);
    else
        client_close(s, st, NGHTTP2_REFUSED_STREAM);
    stream_free(s, st);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *u)
{
    arpc__grpc_session *s = u;
    gstream *st = nghttp2_session_get_stream_user_data(h2, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    /* The connection window of bytes the application will not consume now. */
    if (st->owed > 0 && nghttp2_session_consume_connection(h2, st->owed) == NGHTTP2_ERR_NOMEM)
        s->alloc_failed = true;
    st->owed = 0;
    if (!s->server) {
        client_close(s, st, error_code);
    } else if (st->reported) {
        arpc__grpc_event ev = event_for(ARPC__GRPC_EV_CLOSE, st);
        ev.canceled = !st->end_sent || st->self_answer;
        ev.grpc_status = ev.canceled && !st->self_answer ? ARPC__GRPC_CANCELLED : st->grpc_status;
        ev.status = arpc__grpc_status_to_arpc(ev.grpc_status);
        emit(s, &ev);
    }
    stream_free(s, st);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static nghttp2_session_callbacks *make_callbacks(void)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_h2_error);
    return cbs;
}

static uint32_t or_default(uint32_t v, uint32_t d)
{
    return v ? v : d;
}

static int session_settings(arpc__grpc_session *s, const arpc__grpc_session_opts *o)
{
    uint32_t stream_window = or_default(o->stream_window, DEFAULT_STREAM_WINDOW);
    uint32_t conn_window = or_default(o->conn_window, DEFAULT_CONN_WINDOW);
    if (stream_window > NGHTTP2_MAX_WINDOW_SIZE)
        stream_window = NGHTTP2_MAX_WINDOW_SIZE;
    s->stream_window = stream_window;
    if (conn_window > NGHTTP2_MAX_WINDOW_SIZE)
        conn_window = NGHTTP2_MAX_WINDOW_SIZE;
    nghttp2_settings_entry iv[4];
    size_t n = 0;
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->max_header_list};
    if (s->server)
        iv[n++] =
            (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                     or_default(o->max_concurrent_streams, DEFAULT_MAX_STREAMS)};
    else
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    int rv = nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, iv, n);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(s->h2, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)conn_window);
    return rv == 0 ? 0 : map_h2_err(rv);
}

static int session_new(bool server, const arpc__grpc_session_opts *opts, arpc__grpc_event_fn cb,
                       void *user, arpc__grpc_session **out)
{
    static const arpc__grpc_session_opts none;
    const arpc__grpc_session_opts *o = opts ? opts : &none;
    arpc__grpc_session *s = arpc__calloc(1, sizeof(*s));
    if (!s)
        return ARPC_ENOMEM;
    s->cb = cb;
    s->user = user;
    s->server = server;
    arpc__buf_init(&s->stash);
    arpc__buf_init(&s->nvbuf);
    arpc__grpc_pool_init(&s->pool);
    s->mem = (nghttp2_mem){s, mem_malloc, mem_free, mem_calloc, mem_realloc};
    s->max_recv_msg = or_default(o->max_recv_msg, ARPC__GRPC_DEFAULT_MAX_RECV);
    s->max_header_list = or_default(o->max_header_list, DEFAULT_MAX_HEADER_LIST);
    s->early_answers = server ? o->early_answers : 0;
    ratelim_init(&s->control, CONTROL_BURST, CONTROL_RATE);
    ratelim_init(&s->resets, RESET_BURST, RESET_RATE);
    nghttp2_session_callbacks *cbs = make_callbacks();
    nghttp2_option *opt = NULL;
    int rv = NGHTTP2_ERR_NOMEM;
    if (cbs && nghttp2_option_new(&opt) == 0) {
        /* Receive windows are ours to grant (see "receive windows"). */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        rv = server ? nghttp2_session_server_new3(&s->h2, cbs, s, opt, &s->mem)
                    : nghttp2_session_client_new3(&s->h2, cbs, s, opt, &s->mem);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv == 0)
        rv = session_settings(s, o);
    if (rv != 0) {
        nghttp2_session_del(s->h2);
        arpc__grpc_pool_fini(&s->pool);
        arpc__free(s);
        return ARPC_ENOMEM;
    }
    *out = s;
    return 0;
}

int arpc__grpc_session_server_new(const arpc__grpc_session_opts *opts, arpc__grpc_event_fn cb,
                                  void *user, arpc__grpc_session **out)
{
    return session_new(true, opts, cb, user, out);
}

int arpc__grpc_session_client_new(const arpc__grpc_session_opts *opts, arpc__grpc_event_fn cb,
                                  void *user, arpc__grpc_session **out)
{
    return session_new(false, opts, cb, user, out);
}

void arpc__grpc_session_destroy(arpc__grpc_session *s)
{
    if (!s)
        return;
    /* nghttp2_session_del frees its streams without calling back; report nothing. */
    s->cb = NULL;
    nghttp2_session_del(s->h2);
    while (s->streams)
        stream_free(s, s->streams);
    while (s->spare) {
        gstream *st = s->spare;
        s->spare = st->next;
        stream_release(st);
    }
    arpc__buf_fini(&s->nvbuf);
    arpc__free(s->scratch);
    arpc__buf_fini(&s->stash);
    arpc__grpc_pool_fini(&s->pool); /* after nghttp2_session_del gave its blocks back */
    arpc__free(s);
}

static int send_into(arpc__grpc_session *s, arpc_buf *out);

int arpc__grpc_session_feed(arpc__grpc_session *s, const void *data, size_t len)
{
    return arpc__grpc_session_feed_into(s, data, len, &s->stash);
}

/* The chunk on_data_chunk held back, now that the answers before it are out.  Its frame's
 * END_STREAM is processed by the next mem_recv, before anything is sent again. */
static void deliver_held(arpc__grpc_session *s)
{
    if (s->held.data == NULL)
        return;
    gstream *st = nghttp2_session_get_stream_user_data(s->h2, s->held.id);
    if (st != NULL && st->reported) {
        server_data(s, st, s->held.data, s->held.len);
        settle(s, st);
    }
    s->held.data = NULL;
}

int arpc__grpc_session_feed_into(arpc__grpc_session *s, const void *data, size_t len, arpc_buf *out)
{
    const uint8_t *p = data;
    s->held.data = NULL; /* one a failed feed left is not delivered: the connection goes */
    s->error_text[0] = '\0';
    if (out != &s->stash && s->stash.len > 0) {
        if (arpc__buf_append(out, arpc__buf_head(&s->stash), s->stash.len) < 0)
            return ARPC_ENOMEM;
        arpc__buf_clear(&s->stash);
    }
    do {
        s->paused = false;
        ssize_t rv = nghttp2_session_mem_recv(s->h2, p, len);
        if (grant_connection(s) < 0 || rv == NGHTTP2_ERR_NOMEM)
            return ARPC_ENOMEM;
        if (rv == NGHTTP2_ERR_FLOODED) {
            snprintf(s->error_text, sizeof(s->error_text), "flood of frames to ACK (nghttp2)");
            return ARPC_EOVERLOAD;
        }
        if (rv < 0)
            return s->alloc_failed ? ARPC_ENOMEM : ARPC_EFRAME;
        p += rv;
        len -= (size_t)rv;
        /* A connection error makes nghttp2 queue GOAWAY(error) and still return success (a
         * bad HPACK block, a frame other than SETTINGS first); it stops reading only once
         * that GOAWAY is out.  So send now and ask: without a GOAWAY either way, an error
         * is what stopped it.  After a pause (on_header) this hands the answers out. */
        int rc = send_into(s, out);
        if (rc < 0)
            return rc;
        deliver_held(s);
    } while (s->paused); /* resumed even with no bytes left: the paused frame may be whole */
    if (!nghttp2_session_want_read(s->h2) && !s->goaway_sent && !s->goaway_recv) {
        if (s->alloc_failed)
            return ARPC_ENOMEM;
        if (s->calm)
            return ARPC_EOVERLOAD;
        note_h2_error(s);
        return ARPC_EFRAME;
    }
    return 0;
}

int arpc__grpc_session_flush(arpc__grpc_session *s, arpc_buf *out)
{
    if (s->stash.len) {
        if (arpc__buf_append(out, arpc__buf_head(&s->stash), s->stash.len) < 0)
            return ARPC_ENOMEM;
        arpc__buf_clear(&s->stash);
    }
    return send_into(s, out);
}

static int send_into(arpc__grpc_session *s, arpc_buf *out)
{
    s->answers_queued = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(s->h2, &p);
        if (n < 0)
            return n == NGHTTP2_ERR_NOMEM || n == NGHTTP2_ERR_CALLBACK_FAILURE || s->alloc_failed
                       ? ARPC_ENOMEM
                       : ARPC_EFRAME;
        if (n == 0 && s->ncredit == 0)
            return 0;
        if (n == 0) {
            emit_credits(s); /* may queue more messages: send again */
            continue;
        }
        if (arpc_buf_append(out, p, (size_t)n) < 0)
            return ARPC_ENOMEM;
    }
}

bool arpc__grpc_session_done(const arpc__grpc_session *s)
{
    return !nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2);
}

int arpc__grpc_session_set_stream_user(arpc__grpc_session *s, int32_t stream_id, void *user)
{
    gstream *st = stream_get(s, stream_id);
    if (!st)
        return ARPC_EINVAL;
    st->user = user;
    return 0;
}

int arpc__grpc_session_ping(arpc__grpc_session *s, uint64_t data)
{
    uint8_t opaque[8];
    memcpy(opaque, &data, 8);
    int rv = nghttp2_submit_ping(s->h2, NGHTTP2_FLAG_NONE, opaque);
    if (rv != 0)
        return map_h2_err(rv);
    s->pings_without_data++;
    return 0;
}

uint32_t arpc__grpc_session_pings_without_data(const arpc__grpc_session *s)
{
    return s->pings_without_data;
}

size_t arpc__grpc_session_stream_count(const arpc__grpc_session *s)
{
    return s->nstreams;
}
