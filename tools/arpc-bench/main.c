/*
 * arpc-bench: closed-loop load generator for arpc, comparable line for line
 * with the raw-socket baselines of bench/ (same flags, histogram and result
 * line, from tools/common).
 *
 * Design notes.
 *
 * Shape.  C channels ("connections"), each created with
 * connections_per_endpoint = 1, so each holds one connection per endpoint of
 * --target; the library spreads them over the runtime's loops round-robin in
 * creation order.  On each channel D workers keep one call in flight each:
 *  - coro:  D coroutines per channel, each looping arpc_call() with a reused
 *           response buffer;
 *  - async: D callback chains per channel; a completion records its call and
 *           starts the next one from the callback, on the loop thread;
 *  - sync:  D plain threads per channel, each looping arpc_call() (blocking).
 * Coroutines and chains of channel c start on loop (c * E) % L (E endpoints,
 * L loops): the loop the library gives that channel's first connection (its
 * placement counter is process-wide and starts at 0, and nothing else here
 * creates channels), so a call never crosses threads.  Were that guess wrong,
 * calls would only be slower (one inbox hop), never wrong: statistics are
 * kept per loop *thread*, found through a thread-local pointer.
 *
 * Timing, as in bench/raw_*.c: main fixes `warm_end` (start + 1 s) and `end`
 * (warm_end + T) before any worker starts.  A call counts (towards qps or
 * errors) if it completed inside [warm_end, end); its latency is recorded if
 * it also started after warm_end.  At `end` main raises `stop`; each worker
 * finishes its call in flight (bounded by --timeout-ms) and leaves with
 * arpc_wg_done(); main waits for the wait group with a bound, then tears down
 * and prints.  A worker reads the clock once per call: the end of one call is
 * the start of the next (the accounting in between counts as latency, so the
 * error is on the high side), which matters where clock_gettime is slow.
 *
 * Statistics: one block (counters and histograms) per loop in coro and async
 * mode, touched only by that loop's thread; one per thread in sync mode.  Main
 * merges them after the wait group says every worker has finished (and, but
 * for the pathological drain timeout, after the threads are joined).
 *
 * Errors: a failed call (non-zero status, or an echo of the wrong length)
 * counts one error and the worker carries on.  After a connection-level
 * failure (refused, reset, closed, heartbeat, no endpoint, ...) it pauses 1 ms
 * first, so a dead server costs no busy loop; a timeout needs no pause (it
 * has waited already) and neither does an answer from a live server.
 *
 * Tail (--tail-pct P --tail-ms M): call n of a worker is slow (method `sleep`,
 * payload "M") when floor((n + 1) P / 100) > floor(n P / 100): exactly P% of
 * the calls, evenly spread.  Each worker starts its counter at its own index,
 * so the slow calls of different workers do not line up.
 *
 * Streams (--stream): N bidirectional streams (arpc_stream_open) to
 * --method, default arpc.echo.Echo/Stream, spread over the C channels
 * round-robin; one coroutine per stream writes D messages of S bytes
 * (EchoMsg{data} over gRPC), then for each echo it reads writes one more, so
 * D messages stay in flight.  One coroutine reads and writes, so D*S is kept
 * within the smallest stream window (64 KiB): the writer can then never wait
 * for window while the peer waits for us to read.  A message counts if its
 * echo arrived inside [warm_end, end); its latency (write to echo; FIFO, so a
 * ring of D send times) is recorded if it was also written after warm_end.
 * At `end` the coroutine stops writing and finishes the stream (half-close,
 * the unread echoes are dropped), bounded by the stream's deadline: the
 * whole run plus --timeout-ms.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "hist.h"
#include "num.h"
#include "opts.h"
#include "sys.h"

#define WARMUP_NS        1000000000ull
#define MAX_ENDPOINTS    1024
#define MAX_SYNC_THREADS 4096
#define MAX_CORO_WORKERS 100000
#define MAX_ASYNC_CHAINS 1000000
#define MAX_MS           3600000 /* the server's `sleep` accepts up to an hour */
#define SYNC_STACK       (256u * 1024u)
#define DRAIN_SLACK_MS   3000
#define MAX_BUSY_POLL_US 1000000
#define MAX_STREAMS      10000
#define MAX_STREAM_BYTES 65536 /* depth * size: the smallest stream window */

static const char usage_text[] =
    "usage: arpc-bench --target HOST:PORT[,HOST:PORT...] [--conns C] [--depth D] [--size S]\n"
    "                  [--secs T] [--mode coro|async|sync] [--threads N] [--method NAME]\n"
    "                  [--lb round_robin|random|least_in_flight|consistent_hash]\n"
    "                  [--timeout-ms N] [--tail-pct P --tail-ms M] [--busy-poll-us N]\n"
    "                  [--protocol native|grpc|thrift] [--stream [--streams N]]\n"
    "                  [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
    "                  [--tls-server-name NAME]\n"
    "  Keeps D calls in flight on each of C connections (one channel each) with\n"
    "  S-byte payloads; warms up 1 s, then measures T s (1..600) and prints\n"
    "  system=arpc mode=M conns=C depth=D size=S qps=N p50_us=N p99_us=N p999_us=N errors=N\n"
    "  and, with --protocol, protocol=P\n"
    "  --protocol native (default) or grpc: over gRPC each call sends EchoMsg{data: S\n"
    "             bytes} (proto/arpc/echo.proto) to --method, default\n"
    "             /arpc.echo.Echo/Echo, and tail calls go to /arpc.echo.Echo/Sleep;\n"
    "             over thrift each call is Echo.echo(data: S bytes) and tail calls\n"
    "             Echo.sleep(ms) (proto/arpc/echo.thrift), no streams\n"
    "  --mode     coro (default): D coroutines per connection calling arpc_call();\n"
    "             async: D arpc_call_async() chains per connection;\n"
    "             sync: C*D plain threads (at most 4096) calling arpc_call()\n"
    "  --threads  event loops of the client runtime (default 1)\n"
    "  --method   method of the normal calls (default echo; an echo's answer must be\n"
    "             as long as its request)\n"
    "  --lb       load balancing over the endpoints of --target (default round_robin;\n"
    "             consistent_hash uses a random key per call)\n"
    "  --timeout-ms  deadline of each call, 1..3600000 (default 1000)\n"
    "  --tail-pct P --tail-ms M  P% (0 < P <= 100) of the calls go to `sleep` with\n"
    "             payload \"M\" (0..3600000 ms); a second line then reports the other\n"
    "             (fast) calls alone:\n"
    "  system=arpc mode=M conns=C depth=D size=S tail_pct=P tail_ms=M fast_qps=N\n"
    "  fast_p50_us=N fast_p99_us=N fast_p999_us=N\n"
    "  --busy-poll-us  each client loop polls this long before it sleeps\n"
    "             (0..1000000, default 0; see arpc_loop_opts.busy_poll_us)\n"
    "  --stream   N bidirectional streams (--streams, default 1, at most 10000) over\n"
    "             the C connections, each keeping D messages of S bytes in flight\n"
    "             (write D, then one more per echo read; D*S at most 65536) to\n"
    "             --method, default arpc.echo.Echo/Stream; prints\n"
    "  system=arpc mode=stream protocol=P conns=C streams=N depth=D size=S msgs_per_s=N\n"
    "  p50_us=N p99_us=N p999_us=N errors=N\n"
    "  --tls-*    any of them connects over TLS (docs/tls.md): the server's certificate\n"
    "             must chain to --tls-ca (default: the system's CAs) and name\n"
    "             --tls-server-name (default: each endpoint's host); --tls-cert and\n"
    "             --tls-key for mutual TLS\n"
    "  Defaults: --conns 1 --depth 1 --size 64 --secs 10.\n";

enum bench_mode { MODE_CORO, MODE_ASYNC, MODE_SYNC };

static const char *const mode_names[] = {"coro", "async", "sync"};

static const char *const lb_names[] = {"round_robin", "random", "least_in_flight",
                                       "consistent_hash"};

/* The flags arpc-bench adds to the common ones (tools/common/opts.h). */
typedef struct extra_opts {
    const char *target;
    enum bench_mode mode;
    const char *method;
    arpc_lb_policy lb;
    int64_t timeout_ms;
    double tail_pct;      /* 0: no tail */
    int64_t tail_ms;      /* -1: not given */
    int64_t busy_poll_us; /* arpc_loop_opts.busy_poll_us of every client loop */
    arpc_protocol protocol;
    bool protocol_given; /* the result line says protocol=P only then: old lines stay */
    bool stream;         /* --stream */
    int64_t streams;     /* --streams, default 1 */
    arpc_channel_tls_opts tls; /* --tls-*: enabled by any of them (docs/tls.md) */
} extra_opts;

/* Counters and histograms of one loop (coro, async) or one thread (sync). */
typedef struct stats {
    uint64_t ok;      /* successful calls completed inside the window */
    uint64_t fast_ok; /* of which normal (not tail) calls */
    uint64_t errors;  /* failed calls completed inside the window */
    bench_hist all;
    bench_hist fast; /* used only with --tail-pct */
} stats;

/* One call in flight, looping: a coroutine, an async chain or a thread. */
typedef struct worker {
    arpc_channel *ch;
    arpc_loop *loop; /* coro, async: where it starts */
    stats *st;       /* sync: its own block */
    arpc_call_opts opts;
    uint64_t n;   /* calls started: the tail counter */
    uint64_t rng; /* xorshift state for consistent_hash keys */
    uint64_t t0;  /* async: start of the call in flight */
    bool slow;    /* async: the call in flight is a tail call */
    pthread_t tid;
} worker;

/* Read-only once the workers start, except `stop` and `done`. */
static struct {
    extra_opts x;
    bench_opts o;
    unsigned endpoints;
    bool check_echo;
    arpc_runtime *rt;
    unsigned nloops;
    stats **loop_stats;
    uint8_t *payload;
    char slow_req[24];
    size_t slow_len;
    size_t slow_rsp_len;     /* the tail call's answer: its request's length but over Thrift */
    size_t req_len;          /* the normal call's request: S bytes, or EchoMsg{S bytes} */
    const char *slow_method; /* "sleep", or /arpc.echo.Echo/Sleep */
    uint64_t warm_end;
    uint64_t end;
    atomic_bool stop;
    arpc_wg done;
} g;

static _Thread_local stats *tls_stats;

/* ---- flags ------------------------------------------------------------- */

/* Parses a decimal integer in [min, max] for --flag.  @return 0 or -EINVAL (reported). */
static int parse_range(const char *flag, const char *value, int64_t min, int64_t max, int64_t *out)
{
    long long v;

    if (tool_parse_num(value, min, max, 0, &v) != 0) {
        fprintf(stderr, "arpc-bench: --%s must be %lld..%lld, got '%s'\n", flag, (long long)min,
                (long long)max, value);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_ms(const char *flag, const char *value, int64_t min, int64_t *out)
{
    return parse_range(flag, value, min, MAX_MS, out);
}

/* bench_opts_parse() callback for the flags the common parser does not know. */
/* --tls-ca, --tls-cert, --tls-key, --tls-server-name (`flag` without "tls-"): each turns
 * TLS on.  @return 2, or 0 for another --tls-* flag. */
static int parse_tls(const char *flag, const char *value, arpc_channel_tls_opts *tls)
{
    if (strcmp(flag, "ca") == 0)
        tls->ca_file = value;
    else if (strcmp(flag, "cert") == 0)
        tls->cert_file = value;
    else if (strcmp(flag, "key") == 0)
        tls->key_file = value;
    else if (strcmp(flag, "server-name") == 0)
        tls->server_name = value;
    else
        return 0;
    tls->enabled = true;
    return 2;
}

static int parse_extra(const char *flag, const char *value, void *user_data)
{
    extra_opts *x = user_data;
    size_t i;

    if (strcmp(flag, "target") != 0 && strcmp(flag, "mode") != 0 && strcmp(flag, "method") != 0 &&
        strcmp(flag, "lb") != 0 && strcmp(flag, "timeout-ms") != 0 &&
        strcmp(flag, "tail-pct") != 0 && strcmp(flag, "tail-ms") != 0 &&
        strcmp(flag, "busy-poll-us") != 0 && strcmp(flag, "protocol") != 0 &&
        strcmp(flag, "stream") != 0 && strcmp(flag, "streams") != 0 &&
        strncmp(flag, "tls-", 4) != 0)
        return 0;
    if (strcmp(flag, "stream") == 0) {
        x->stream = true;
        return 1;
    }
    if (value == NULL)
        return 2; /* the parser reports the missing value */

    if (strcmp(flag, "target") == 0) {
        x->target = value;
        return 2;
    }
    if (strncmp(flag, "tls-", 4) == 0)
        return parse_tls(flag + 4, value, &x->tls);
    if (strcmp(flag, "mode") == 0) {
        for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
            if (strcmp(value, mode_names[i]) == 0) {
                x->mode = (enum bench_mode)i;
                return 2;
            }
        }
        fprintf(stderr, "arpc-bench: --mode must be coro, async or sync, got '%s'\n", value);
        return -EINVAL;
    }
    if (strcmp(flag, "protocol") == 0) {
        x->protocol_given = true;
        if (strcmp(value, "native") == 0) {
            x->protocol = ARPC_PROTOCOL_NATIVE;
            return 2;
        }
        if (strcmp(value, "grpc") == 0) {
            x->protocol = ARPC_PROTOCOL_GRPC;
            return 2;
        }
        if (strcmp(value, "thrift") == 0) {
            x->protocol = ARPC_PROTOCOL_THRIFT;
            return 2;
        }
        fprintf(stderr, "arpc-bench: --protocol must be native, grpc or thrift, got '%s'\n",
                value);
        return -EINVAL;
    }
    if (strcmp(flag, "method") == 0) {
        if (value[0] == '\0' || strlen(value) > 255) {
            fprintf(stderr, "arpc-bench: --method must be 1..255 bytes\n");
            return -EINVAL;
        }
        x->method = value;
        return 2;
    }
    if (strcmp(flag, "lb") == 0) {
        for (i = 0; i < sizeof(lb_names) / sizeof(lb_names[0]); i++) {
            if (strcmp(value, lb_names[i]) == 0) {
                x->lb = (arpc_lb_policy)i;
                return 2;
            }
        }
        fprintf(stderr,
                "arpc-bench: --lb must be round_robin, random, least_in_flight or "
                "consistent_hash, got '%s'\n",
                value);
        return -EINVAL;
    }
    if (strcmp(flag, "timeout-ms") == 0)
        return parse_ms(flag, value, 1, &x->timeout_ms) == 0 ? 2 : -EINVAL;
    if (strcmp(flag, "tail-ms") == 0)
        return parse_ms(flag, value, 0, &x->tail_ms) == 0 ? 2 : -EINVAL;
    if (strcmp(flag, "busy-poll-us") == 0)
        return parse_range(flag, value, 0, MAX_BUSY_POLL_US, &x->busy_poll_us) == 0 ? 2 : -EINVAL;
    if (strcmp(flag, "streams") == 0)
        return parse_range(flag, value, 1, MAX_STREAMS, &x->streams) == 0 ? 2 : -EINVAL;

    /* tail-pct */
    {
        char *end;
        double p;

        errno = 0;
        p = strtod(value, &end);
        if (*value == '\0' || *end != '\0' || errno != 0 || !isfinite(p) || p <= 0.0 || p > 100.0) {
            fprintf(stderr, "arpc-bench: --tail-pct must be a number in (0, 100], got '%s'\n",
                    value);
            return -EINVAL;
        }
        x->tail_pct = p;
        return 2;
    }
}

/* Checks every HOST:PORT of a comma-separated target.  @return endpoints, or 0. */
static unsigned check_target(const char *target)
{
    const char *p = target;
    unsigned count = 0;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char one[300];
        bench_addr addr;
        char shown[300];

        if (len == 0 || len >= sizeof(one) || ++count > MAX_ENDPOINTS)
            return 0;
        memcpy(one, p, len);
        one[len] = '\0';
        if (bench_addr_parse(one, &addr) != 0)
            return 0;
        /* A numeric rendering ending in ":0" means port 0: nothing to call. */
        bench_addr_format(&addr, shown, sizeof(shown));
        len = strlen(shown);
        if (len >= 2 && strcmp(shown + len - 2, ":0") == 0)
            return 0;
        if (comma == NULL)
            return count;
        p = comma + 1;
    }
}

static int usage_error(const char *why)
{
    fprintf(stderr, "arpc-bench: %s\n%s", why, usage_text);
    return 2;
}

/* @return 0, 1 (--help: exit 0) or 2 (bad usage, reported). */
static int parse_args(int argc, char **argv)
{
    unsigned accepted = BENCH_OPTS_CLIENT & ~(unsigned)BENCH_OPT_TARGET;
    uint64_t workers;
    uint64_t cap;

    bench_opts_init(&g.o);
    memset(&g.x, 0, sizeof(g.x));
    g.x.mode = MODE_CORO;
    g.x.method = NULL; /* echo, or /arpc.echo.Echo/Echo over gRPC */
    g.x.lb = ARPC_LB_ROUND_ROBIN;
    g.x.timeout_ms = 1000;
    g.x.tail_ms = -1;
    g.x.streams = 1;
    /* --target goes to parse_extra: the common parser resolves exactly one HOST:PORT. */
    if (bench_opts_parse(argc, argv, accepted, usage_text, parse_extra, &g.x, &g.o) != 0)
        return 2;
    if (g.o.help)
        return 1;
    if (g.x.target == NULL)
        return usage_error("--target HOST:PORT[,HOST:PORT...] is required");
    g.endpoints = check_target(g.x.target);
    if (g.endpoints == 0)
        return usage_error("--target must be HOST:PORT[,HOST:PORT...] (at most 1024, resolvable, "
                           "non-zero ports)");
    if ((g.x.tail_pct > 0.0) != (g.x.tail_ms >= 0))
        return usage_error("--tail-pct and --tail-ms go together");
    if ((g.x.tls.cert_file == NULL) != (g.x.tls.key_file == NULL))
        return usage_error("--tls-cert and --tls-key go together");
    if (g.x.stream) {
        if (g.x.tail_pct > 0.0 || g.x.mode != MODE_CORO)
            return usage_error("--stream runs coroutines and has no tail: no --mode, --tail-pct");
        if ((uint64_t)g.o.depth * g.o.size > MAX_STREAM_BYTES)
            return usage_error("--stream needs depth*size <= 65536");
        return 0;
    }
    workers = (uint64_t)g.o.conns * (uint64_t)g.o.depth;
    cap = g.x.mode == MODE_SYNC   ? MAX_SYNC_THREADS
          : g.x.mode == MODE_CORO ? MAX_CORO_WORKERS
                                  : MAX_ASYNC_CHAINS;
    if (workers > cap) {
        char why[128];

        snprintf(why, sizeof(why), "--mode %s allows at most %llu calls in flight (conns*depth)",
                 mode_names[g.x.mode], (unsigned long long)cap);
        return usage_error(why);
    }
    return 0;
}

/* ---- calls --------------------------------------------------------------- */

/* The statistics block of the calling loop thread (coro, async). */
static stats *stats_here(void)
{
    if (tls_stats == NULL) {
        arpc_loop *here = arpc_loop_current();
        unsigned i;

        for (i = 0; i < g.nloops && here != NULL; i++) {
            if (arpc_runtime_loop(g.rt, i) == here)
                tls_stats = g.loop_stats[i];
        }
        if (tls_stats == NULL) {
            fprintf(stderr, "arpc-bench: a call completed outside the runtime's loops\n");
            abort();
        }
    }
    return tls_stats;
}

static uint64_t next_random(worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

/* Picks the next call of `w`: true for a tail call (see the design notes). */
static bool next_call(worker *w)
{
    uint64_t n = w->n++;

    if (g.x.lb == ARPC_LB_CONSISTENT_HASH)
        w->opts.hash_key = next_random(w);
    if (g.x.tail_pct <= 0.0)
        return false;
    return (uint64_t)((double)(n + 1) * g.x.tail_pct / 100.0) >
           (uint64_t)((double)n * g.x.tail_pct / 100.0);
}

static int start_async(worker *w, bool slow, arpc_call_cb cb)
{
    if (slow)
        return arpc_call_async(w->ch, g.slow_method, g.slow_req, g.slow_len, &w->opts, cb, w);
    return arpc_call_async(w->ch, g.x.method, g.payload, g.req_len, &w->opts, cb, w);
}

static int call_sync(worker *w, bool slow, arpc_buf *rsp)
{
    if (slow)
        return arpc_call(w->ch, g.slow_method, g.slow_req, g.slow_len, &w->opts, rsp);
    return arpc_call(w->ch, g.x.method, g.payload, g.req_len, &w->opts, rsp);
}

/* Failures after which a retry at once would only spin: the connection is the problem. */
static bool connection_level(int status)
{
    return status < 0 && status != ARPC_ETIMEDOUT && status != ARPC_ENOMETHOD &&
           status != ARPC_EOVERLOAD && status != ARPC_EINTERNAL && status != ARPC_ETOOBIG &&
           status != ARPC_EINVAL;
}

/* Accounts one finished call to `st`. */
static void account(stats *st, int status, size_t rsp_len, bool slow, uint64_t t0, uint64_t t1)
{
    if (t1 < g.warm_end || t1 >= g.end)
        return;
    if (status == 0 && (slow || g.check_echo) && rsp_len != (slow ? g.slow_rsp_len : g.req_len))
        status = -EPROTO; /* the echo does not match the request */
    if (status != 0) {
        st->errors++;
        return;
    }
    st->ok++;
    if (!slow)
        st->fast_ok++;
    if (t0 < g.warm_end)
        return;
    bench_hist_record(&st->all, t1 - t0);
    if (!slow && g.x.tail_pct > 0.0)
        bench_hist_record(&st->fast, t1 - t0);
}

static bool stopping(void)
{
    return atomic_load_explicit(&g.stop, memory_order_relaxed);
}

/* The body of a coroutine or a sync thread: call, account, repeat. */
static void call_loop(worker *w, stats *st)
{
    arpc_buf *rsp;

    if (arpc_buf_create(&rsp) != 0) {
        st->errors++;
        return;
    }
    uint64_t t0 = bench_now_ns();

    while (!stopping()) {
        bool slow = next_call(w);
        uint64_t t1;
        int rc;

        arpc_buf_clear(rsp);
        rc = call_sync(w, slow, rsp);
        t1 = bench_now_ns();
        account(st, rc, arpc_buf_len(rsp), slow, t0, t1);
        if (t1 >= g.end)
            break;
        /* The end of one call is the start of the next: one clock read per call. */
        t0 = t1;
        if (connection_level(rc)) {
            arpc_coro_sleep_ms(1);
            t0 = bench_now_ns();
        }
    }
    arpc_buf_destroy(rsp);
}

static void coro_main(void *arg)
{
    call_loop(arg, stats_here());
    arpc_wg_done(&g.done);
}

static void *sync_main(void *arg)
{
    worker *w = arg;

    tls_stats = w->st;
    call_loop(w, w->st);
    arpc_wg_done(&g.done);
    return NULL;
}

static void chain_next(worker *w, uint64_t now);

static void chain_resume(void *arg)
{
    chain_next(arg, bench_now_ns());
}

static void on_async_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    worker *w = user_data;
    uint64_t t1 = bench_now_ns();

    account(stats_here(), status, rsp_len, w->slow, w->t0, t1);
    if (connection_level(status) && !stopping() && t1 < g.end &&
        arpc_timer_add(arpc_loop_current(), 1, chain_resume, w, NULL) == 0)
        return;
    chain_next(w, t1); /* its end is the next call's start: one clock read per call */
}

/* Starts the next call of an async chain at `now`, or ends the chain.  Loop thread. */
static void chain_next(worker *w, uint64_t now)
{
    int rc;

    if (stopping() || now >= g.end) {
        arpc_wg_done(&g.done);
        return;
    }
    w->slow = next_call(w);
    w->t0 = now;
    rc = start_async(w, w->slow, on_async_done);
    if (rc == 0)
        return;
    /* Refused at once: the callback will not run.  Count it and retry in 1 ms. */
    account(stats_here(), rc, 0, w->slow, w->t0, bench_now_ns());
    if (arpc_timer_add(arpc_loop_current(), 1, chain_resume, w, NULL) != 0)
        arpc_wg_done(&g.done); /* cannot even wait: this chain ends */
}

/* ---- streams (--stream) ------------------------------------------------------ */

static uint64_t ns_to_us(uint64_t ns);

/* Runs one stream for the whole window (see the design notes).  @return 0, or
 * the failure that ended it early. */
static int stream_run(worker *w, stats *st, arpc_buf *msg, uint64_t *sent)
{
    arpc_call_opts opts;
    arpc_stream *s;
    size_t head = 0;
    int rc;

    arpc_call_opts_init(&opts);
    /* Bounded: the stream ends by itself after the run and the drain time. */
    opts.timeout_ms = (int64_t)((g.end - bench_now_ns()) / 1000000u) + g.x.timeout_ms;
    rc = arpc_stream_open(w->ch, g.x.method, &opts, &s);
    if (rc != 0)
        return rc;
    for (int i = 0; i < g.o.depth && rc == 0; i++) {
        sent[i] = bench_now_ns();
        rc = arpc_stream_write(s, g.payload, g.req_len);
    }
    while (rc == 0) {
        uint64_t t1;

        arpc_buf_clear(msg);
        rc = arpc_stream_read(s, msg);
        if (rc != 0)
            break;
        t1 = bench_now_ns();
        account(st, 0, arpc_buf_len(msg), false, sent[head], t1);
        if (t1 >= g.end || stopping())
            break;
        sent[head] = t1; /* the echo's arrival is the next message's start */
        head = (head + 1) % (size_t)g.o.depth;
        rc = arpc_stream_write(s, g.payload, g.req_len);
    }
    if (rc == 0 || rc == ARPC_EEOS)
        rc = arpc_stream_finish(s, NULL);
    arpc_stream_destroy(s);
    return rc;
}

static void stream_main(void *arg)
{
    worker *w = arg;
    stats *st = stats_here();
    uint64_t *sent = malloc((size_t)g.o.depth * sizeof(*sent));
    arpc_buf *msg = NULL;

    if (sent == NULL || arpc_buf_create(&msg) != 0 || stream_run(w, st, msg, sent) != 0)
        st->errors++;
    arpc_buf_destroy(msg);
    free(sent);
    arpc_wg_done(&g.done);
}

static void print_stream_results(stats *total)
{
    printf("system=arpc mode=stream protocol=%s conns=%d streams=%lld depth=%d size=%zu "
           "msgs_per_s=%.0f p50_us=%llu p99_us=%llu p999_us=%llu errors=%llu\n",
           g.x.protocol == ARPC_PROTOCOL_GRPC ? "grpc" : "native", g.o.conns,
           (long long)g.x.streams, g.o.depth, g.o.size, (double)total->ok / g.o.secs,
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->all, 50.0)),
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->all, 99.0)),
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->all, 99.9)),
           (unsigned long long)total->errors);
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------ */

static stats *stats_create(void)
{
    stats *st = malloc(sizeof(*st));

    if (st == NULL)
        return NULL;
    st->ok = st->fast_ok = st->errors = 0;
    bench_hist_init(&st->all);
    bench_hist_init(&st->fast);
    return st;
}

static void sleep_until(uint64_t deadline_ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
    ts.tv_nsec = (long)(deadline_ns % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static uint64_t ns_to_us(uint64_t ns)
{
    return (ns + 500) / 1000;
}

static void print_results(stats *total)
{
    const char *mode = mode_names[g.x.mode];

    if (g.x.stream) {
        print_stream_results(total);
        return;
    }
    bench_print_result_protocol("arpc", mode, g.o.conns, g.o.depth, g.o.size,
                                (double)total->ok / g.o.secs, &total->all, total->errors,
                                !g.x.protocol_given                    ? NULL
                                : g.x.protocol == ARPC_PROTOCOL_GRPC   ? "grpc"
                                : g.x.protocol == ARPC_PROTOCOL_THRIFT ? "thrift"
                                                                       : "native");
    if (g.x.tail_pct <= 0.0)
        return;
    printf("system=arpc mode=%s conns=%d depth=%d size=%zu tail_pct=%g tail_ms=%lld "
           "fast_qps=%.0f fast_p50_us=%llu fast_p99_us=%llu fast_p999_us=%llu\n",
           mode, g.o.conns, g.o.depth, g.o.size, g.x.tail_pct, (long long)g.x.tail_ms,
           (double)total->fast_ok / g.o.secs,
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->fast, 50.0)),
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->fast, 99.0)),
           (unsigned long long)ns_to_us(bench_hist_percentile(&total->fast, 99.9)));
    fflush(stdout);
}

static void merge(stats *dst, const stats *src)
{
    dst->ok += src->ok;
    dst->fast_ok += src->fast_ok;
    dst->errors += src->errors;
    bench_hist_merge(&dst->all, &src->all);
    bench_hist_merge(&dst->fast, &src->fast);
}

/* EchoMsg's field 1 header for `len` bytes of data: tag 0x0a and the varint length.
 * @return its bytes (at most 11) written to p. */
static size_t echo_msg_header(uint8_t *p, size_t len)
{
    size_t n = 0;
    p[n++] = 0x0a;
    do {
        p[n++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
        len >>= 7;
    } while (len != 0);
    return n;
}

/* Thrift's Echo.echo arguments {1: binary data}: the field header and the length (7 bytes)
 * in front of the data, the STOP behind; the result {0: binary data} is as long. */
#define THRIFT_BINARY_STRUCT 8
static size_t thrift_binary_header(uint8_t *p, size_t len)
{
    p[0] = 0x0b; /* STRING */
    p[1] = 0;
    p[2] = 1;
    for (int i = 0; i < 4; i++)
        p[3 + i] = (uint8_t)(len >> (24 - 8 * i));
    return 7;
}

/* Echo.sleep's arguments {1: i32 ms}.  @return its 8 bytes' length. */
static size_t thrift_i32_args(char *p, int32_t v)
{
    p[0] = 0x08; /* I32 */
    p[1] = 0;
    p[2] = 1;
    for (int i = 0; i < 4; i++)
        p[3 + i] = (char)((uint32_t)v >> (24 - 8 * i));
    p[7] = 0;
    return 8;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "arpc-bench: %s: %s (%s)\n", what, arpc_strerror(rc), arpc_err_name(rc));
    return 1;
}

int main(int argc, char **argv)
{
    arpc_runtime_opts rt_opts;
    arpc_channel_opts ch_opts;
    arpc_channel **chans;
    worker *workers;
    stats *total;
    pthread_attr_t attr;
    size_t nworkers;
    size_t started = 0;
    int64_t drain_ms;
    int setup_failed = 0;
    int rc;
    int i;

    rc = parse_args(argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    bench_raise_nofile();
    bench_ignore_sigpipe();
    bool grpc = g.x.protocol == ARPC_PROTOCOL_GRPC;
    bool thrift = g.x.protocol == ARPC_PROTOCOL_THRIFT;
    if (thrift && g.x.stream) {
        fprintf(stderr, "arpc-bench: --stream: Thrift has no streams\n");
        return 2;
    }
    if (g.x.method == NULL)
        g.x.method = g.x.stream ? "arpc.echo.Echo/Stream" : grpc ? "/arpc.echo.Echo/Echo" : "echo";
    g.check_echo = strcmp(g.x.method, g.x.stream ? "arpc.echo.Echo/Stream"
                                      : grpc     ? "/arpc.echo.Echo/Echo"
                                                 : "echo") == 0;
    g.slow_method = grpc ? "/arpc.echo.Echo/Sleep" : "sleep";
    if (g.x.tail_pct > 0.0) {
        /* Over gRPC: EchoMsg{data: the digits}, two bytes of tag and length in front. */
        size_t at = grpc ? 2 : 0;
        int n = snprintf(g.slow_req + at, sizeof(g.slow_req) - at, "%lld", (long long)g.x.tail_ms);
        g.slow_req[0] = grpc ? 0x0a : g.slow_req[0];
        g.slow_req[1] = grpc ? (char)n : g.slow_req[1];
        g.slow_len = at + (size_t)n;
        g.slow_rsp_len = g.slow_len;
        if (thrift) {
            /* {1: i32 ms}, answered {0: binary "digits"} */
            g.slow_len = thrift_i32_args(g.slow_req, (int32_t)g.x.tail_ms);
            g.slow_rsp_len = THRIFT_BINARY_STRUCT + (size_t)n;
        }
    }

    arpc_runtime_opts_init(&rt_opts);
    rt_opts.loops = (unsigned)g.o.threads;
    rt_opts.loop.busy_poll_us = (unsigned)g.x.busy_poll_us;
    rc = arpc_runtime_create(&rt_opts, &g.rt);
    if (rc < 0)
        return fail("runtime", rc);
    g.nloops = arpc_runtime_loop_count(g.rt);

    nworkers = g.x.stream ? (size_t)g.x.streams : (size_t)g.o.conns * (size_t)g.o.depth;
    g.payload = malloc(g.o.size + 16);
    g.loop_stats = calloc(g.nloops, sizeof(*g.loop_stats));
    chans = calloc((size_t)g.o.conns, sizeof(*chans));
    workers = calloc(nworkers, sizeof(*workers));
    total = stats_create();
    if (g.payload == NULL || g.loop_stats == NULL || chans == NULL || workers == NULL ||
        total == NULL)
        return fail("setup", ARPC_ENOMEM);
    g.req_len = grpc ? echo_msg_header(g.payload, g.o.size)
                : thrift ? thrift_binary_header(g.payload, g.o.size)
                         : 0;
    bench_fill_pattern(g.payload + g.req_len, g.o.size);
    g.req_len += g.o.size;
    if (thrift)
        g.payload[g.req_len++] = 0; /* the argument struct's STOP */
    for (unsigned l = 0; l < g.nloops; l++) {
        if ((g.loop_stats[l] = stats_create()) == NULL)
            return fail("setup", ARPC_ENOMEM);
    }

    arpc_channel_opts_init(&ch_opts);
    ch_opts.connections_per_endpoint = 1;
    ch_opts.default_timeout_ms = g.x.timeout_ms;
    ch_opts.lb_policy = g.x.lb;
    ch_opts.protocol = g.x.protocol;
    /* Field by field: g.x starts zeroed, and the channel's defaults (timeout, versions) stay. */
    ch_opts.tls.enabled = g.x.tls.enabled;
    ch_opts.tls.ca_file = g.x.tls.ca_file;
    ch_opts.tls.cert_file = g.x.tls.cert_file;
    ch_opts.tls.key_file = g.x.tls.key_file;
    ch_opts.tls.server_name = g.x.tls.server_name;
    for (i = 0; i < g.o.conns; i++) {
        rc = arpc_channel_create(g.rt, g.x.target, &ch_opts, &chans[i]);
        if (rc < 0)
            return fail(g.x.target, rc);
    }

    for (size_t k = 0; k < nworkers; k++) {
        worker *w = &workers[k];
        size_t c = g.x.stream ? k % (size_t)g.o.conns : k / (size_t)g.o.depth;

        w->ch = chans[c];
        w->loop = arpc_runtime_loop(g.rt, (unsigned)((c * g.endpoints) % g.nloops));
        arpc_call_opts_init(&w->opts);
        w->opts.timeout_ms = g.x.timeout_ms;
        w->n = k;
        w->rng = 0x9e3779b97f4a7c15ull * (k + 1);
        if (g.x.mode == MODE_SYNC && (w->st = stats_create()) == NULL)
            return fail("setup", ARPC_ENOMEM);
    }

    arpc_wg_init(&g.done, (int64_t)nworkers);
    g.warm_end = bench_now_ns() + WARMUP_NS;
    g.end = g.warm_end + (uint64_t)g.o.secs * 1000000000ull;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SYNC_STACK);
    for (started = 0; started < nworkers; started++) {
        worker *w = &workers[started];

        if (g.x.stream)
            rc = arpc_coro_spawn(w->loop, stream_main, w);
        else if (g.x.mode == MODE_CORO)
            rc = arpc_coro_spawn(w->loop, coro_main, w);
        else if (g.x.mode == MODE_ASYNC)
            rc = arpc_loop_submit(w->loop, chain_resume, w);
        else
            rc = -pthread_create(&w->tid, &attr, sync_main, w);
        if (rc != 0) {
            fprintf(stderr, "arpc-bench: could start only %zu of %zu workers: %s\n", started,
                    nworkers, arpc_strerror(rc));
            setup_failed = 1;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    /* Workers that never started are done already. */
    for (size_t k = started; k < nworkers; k++)
        arpc_wg_done(&g.done);

    sleep_until(g.end);
    atomic_store(&g.stop, true);
    drain_ms = g.x.timeout_ms + DRAIN_SLACK_MS;
    if (arpc_wg_wait(&g.done, drain_ms) != 0) {
        /* Cannot happen while every call has a deadline; never hang a script on it. */
        fprintf(stderr,
                "arpc-bench: calls still running %lld ms after the end; "
                "results are approximate\n",
                (long long)drain_ms);
        for (unsigned l = 0; l < g.nloops; l++)
            merge(total, g.loop_stats[l]);
        for (size_t k = 0; g.x.mode == MODE_SYNC && k < started; k++)
            merge(total, workers[k].st);
        print_results(total);
        _exit(1);
    }

    for (size_t k = 0; g.x.mode == MODE_SYNC && k < started; k++)
        pthread_join(workers[k].tid, NULL);
    for (i = 0; i < g.o.conns; i++)
        arpc_channel_destroy(chans[i]);
    arpc_runtime_destroy(g.rt);

    for (unsigned l = 0; l < g.nloops; l++) {
        merge(total, g.loop_stats[l]);
        free(g.loop_stats[l]);
    }
    for (size_t k = 0; k < nworkers; k++) {
        if (workers[k].st != NULL) {
            merge(total, workers[k].st);
            free(workers[k].st);
        }
    }
    print_results(total);
    free(total);
    free(workers);
    free(chans);
    free(g.loop_stats);
    free(g.payload);
    return setup_failed;
}
