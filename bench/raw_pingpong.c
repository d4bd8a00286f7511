/*
 * raw-pingpong: blocking ping-pong load generator, one thread per connection.
 *
 * Design notes: each connection keeps exactly one frame in flight: send the
 * frame, read the whole echo, repeat.  That is the latency floor of a
 * request/response over TCP on this machine: two syscalls per side per
 * message, no event loop, no framework.
 *
 * Timing: main connects every socket first, then fixes `warm_end` (now + 1 s)
 * and `end` (warm_end + secs) before any worker starts, so the workers only
 * read them.  A message counts towards qps if its echo completed inside
 * [warm_end, end); its latency is recorded if it was also sent after
 * warm_end.  Sockets carry 1 s send/receive timeouts, so a stalled server
 * turns into an error and the run still ends by itself.
 *
 * Errors (connection failures, timeouts, echoes of the wrong length) are
 * counted per worker; the worker then waits 100 ms and reconnects, until
 * the run ends.  Each worker owns its histogram; main merges after join.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hist.h"
#include "net.h"
#include "opts.h"

#define WARMUP_NS     1000000000ull
#define IO_TIMEOUT_MS 1000
#define RETRY_MS      100
#define WORKER_STACK  (256u * 1024u)

static const char usage_text[] =
    "usage: raw-pingpong --target HOST:PORT [--conns C] [--depth 1] [--size S] [--secs T]\n"
    "  Blocking ping-pong against raw-pingpong-server: one thread per connection,\n"
    "  one frame in flight per connection.  Warms up 1 s, then measures T s.\n"
    "  Defaults: --conns 1 --size 64 --secs 10.\n";

struct worker {
    pthread_t tid;
    int fd;
    uint64_t done;   /* echoes completed inside the measured window */
    uint64_t errors; /* failed connects, I/O errors, wrong echo lengths */
    bench_hist hist;
};

/* Read-only once the workers start. */
static struct {
    bench_addr addr;
    size_t size;
    const uint8_t *frame; /* header + payload, shared by all workers */
    size_t frame_len;
    uint64_t warm_end;
    uint64_t end;
} g;

/* Reads one echo into `rx`.  Returns 0, -EPROTO if the length is wrong, or -errno. */
static int recv_echo(int fd, uint8_t *rx)
{
    size_t have = 0;
    ssize_t n;

    /* Ask for no more than one echo, so nothing of a later frame is ever consumed. */
    while (have < g.frame_len) {
        n = recv(fd, rx + have, g.frame_len - have, 0);
        if (n > 0) {
            have += (size_t)n;
            if (have >= BENCH_FRAME_HDR && bench_frame_len(rx) != g.size)
                return -EPROTO;
        } else if (n == 0) {
            return -ECONNRESET;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t *rx = malloc(g.frame_len);
    uint64_t sent_at;
    uint64_t t = bench_now_ns();

    if (rx == NULL) {
        w->errors++;
        return NULL;
    }
    while (t < g.end) {
        if (w->fd < 0) {
            if (bench_connect(&g.addr, IO_TIMEOUT_MS, &w->fd) != 0) {
                w->errors++;
                bench_sleep_ms(RETRY_MS);
                t = bench_now_ns();
                continue;
            }
            t = bench_now_ns();
        }
        sent_at = t;
        if (bench_send_all(w->fd, g.frame, g.frame_len) != 0 || recv_echo(w->fd, rx) != 0) {
            /* Back off like a failed connect, so a broken server is not hammered. */
            w->errors++;
            close(w->fd);
            w->fd = -1;
            bench_sleep_ms(RETRY_MS);
            t = bench_now_ns();
            continue;
        }
        t = bench_now_ns();
        if (t >= g.warm_end && t < g.end) {
            w->done++;
            if (sent_at >= g.warm_end)
                bench_hist_record(&w->hist, t - sent_at);
        }
    }
    free(rx);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_opts opts;
    struct worker *workers;
    pthread_attr_t attr;
    bench_hist total;
    uint8_t *frame;
    uint64_t errors = 0;
    uint64_t done = 0;
    int connected = 0;
    int started = 0;
    int i;

    bench_opts_init(&opts);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_CLIENT & ~(unsigned)BENCH_OPT_THREADS, usage_text,
                         NULL, NULL, &opts) != 0)
        return 2;
    if (opts.help)
        return 0;
    if (opts.depth != 1) {
        fprintf(stderr,
                "raw-pingpong: --depth must be 1 (one frame in flight per connection); "
                "use raw-pipelined for --depth %d\n",
                opts.depth);
        return 2;
    }
    bench_raise_nofile();
    bench_ignore_sigpipe();

    g.addr = opts.addr;
    g.size = opts.size;
    g.frame_len = BENCH_FRAME_HDR + opts.size;
    frame = malloc(g.frame_len);
    workers = calloc((size_t)opts.conns, sizeof(*workers));
    if (frame == NULL || workers == NULL) {
        fprintf(stderr, "raw-pingpong: out of memory\n");
        return 1;
    }
    bench_frame_set_len(frame, (uint32_t)opts.size);
    bench_fill_pattern(frame + BENCH_FRAME_HDR, opts.size);
    g.frame = frame;

    for (i = 0; i < opts.conns; i++) {
        workers[i].fd = -1;
        bench_hist_init(&workers[i].hist);
        if (bench_connect(&g.addr, IO_TIMEOUT_MS, &workers[i].fd) == 0)
            connected++;
        else
            workers[i].errors++;
    }
    if (connected == 0) {
        fprintf(stderr, "raw-pingpong: cannot connect to %s\n", opts.target);
        return 1;
    }

    g.warm_end = bench_now_ns() + WARMUP_NS;
    g.end = g.warm_end + (uint64_t)opts.secs * 1000000000ull;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (i = 0; i < opts.conns; i++) {
        if (pthread_create(&workers[i].tid, &attr, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "raw-pingpong: could only start %d of %d threads\n", i, opts.conns);
            break;
        }
        started++;
    }
    pthread_attr_destroy(&attr);

    bench_hist_init(&total);
    for (i = 0; i < opts.conns; i++) {
        if (i < started)
            pthread_join(workers[i].tid, NULL);
        if (workers[i].fd >= 0)
            close(workers[i].fd);
        bench_hist_merge(&total, &workers[i].hist);
        done += workers[i].done;
        errors += workers[i].errors;
    }
    bench_print_result("raw-pingpong", "blocking", opts.conns, 1, opts.size,
                       (double)done / opts.secs, &total, errors);
    free(workers);
    free(frame);
    return started == opts.conns ? 0 : 1;
}
