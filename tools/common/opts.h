/*
 * Command-line flags shared by every load generator and server of the
 * benchmarks (arpc-bench and the raw-socket baselines of bench/), and the one
 * result line the load generators print, so their rows compare 1:1.
 */
#ifndef BENCH_OPTS_H
#define BENCH_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "sys.h"

/** Bits naming the common flags a program accepts; see bench_opts_parse(). */
enum {
    BENCH_OPT_TARGET = 1u << 0, /**< --target HOST:PORT (required when accepted) */
    BENCH_OPT_LISTEN = 1u << 1, /**< --listen HOST:PORT (required when accepted) */
    BENCH_OPT_CONNS = 1u << 2,  /**< --conns C, 1..100000, default 1 */
    BENCH_OPT_DEPTH = 1u << 3,  /**< --depth D, 1..100000, default 1 */
    BENCH_OPT_SIZE = 1u << 4,   /**< --size S bytes (k/m suffix = KiB/MiB), 0..16 MiB, default 64 */
    BENCH_OPT_SECS = 1u << 5,   /**< --secs T, 1..600, default 10 */
    BENCH_OPT_THREADS = 1u << 6, /**< --threads N, 1..1024, default 1 */
};

/** The flags of a load generator. */
#define BENCH_OPTS_CLIENT                                                                     \
    (BENCH_OPT_TARGET | BENCH_OPT_CONNS | BENCH_OPT_DEPTH | BENCH_OPT_SIZE | BENCH_OPT_SECS | \
     BENCH_OPT_THREADS)

/** The flags of a server. */
#define BENCH_OPTS_SERVER (BENCH_OPT_LISTEN | BENCH_OPT_THREADS)

/** Parsed common flags; fill the defaults with bench_opts_init(). */
typedef struct bench_opts {
    const char *target; /**< as given (points into argv), NULL if absent */
    const char *listen; /**< as given (points into argv), NULL if absent */
    bench_addr addr;    /**< resolved --target, else resolved --listen */
    int conns;
    int depth;
    size_t size;
    int secs;
    int threads;
    int help; /**< --help/-h was given; usage went to stdout, exit 0 */
} bench_opts;

/**
 * Handles a flag that is not one of the accepted common flags.
 *
 * @param flag   the name without "--" (e.g. "mode").
 * @param value  the text after '=' or the next argument, NULL if there is none.
 * @return 2 if it took the flag and `value`, 1 if it took only the flag, 0 if
 *         the flag is unknown, negative if `value` is invalid (after printing
 *         why to stderr).
 */
typedef int (*bench_opts_extra_cb)(const char *flag, const char *value, void *user_data);

/** Sets the defaults listed with the BENCH_OPT_* bits. */
void bench_opts_init(bench_opts *opts);

/**
 * Parses `--flag value` and `--flag=value` arguments.  Flags outside
 * `accepted` go to `extra` (may be NULL); one nobody takes is an error.
 * Values are range-checked and addresses resolved.  On error prints
 * "prog: reason" and `usage` to stderr; on --help prints `usage` to stdout and
 * sets `opts->help`.
 *
 * @param accepted  a mask of BENCH_OPT_* bits.
 * @param usage     the program's full usage text, ending in a newline.
 * @param opts      in: defaults; out: written only on success.
 * @return 0 or -EINVAL.
 */
int bench_opts_parse(int argc, char **argv, unsigned accepted, const char *usage,
                     bench_opts_extra_cb extra, void *user_data, bench_opts *opts);

/**
 * Prints the one result line every benchmark ends with, and flushes stdout:
 * "system=S mode=M conns=C depth=D size=S qps=N p50_us=N p99_us=N p999_us=N errors=N".
 * qps and the percentiles (microseconds) are rounded to integers.
 */
void bench_print_result(const char *system, const char *mode, int conns, int depth, size_t size,
                        double qps, const bench_hist *hist, uint64_t errors);

/* The same line with " protocol=P" before its end (P NULL: without it). */
void bench_print_result_protocol(const char *system, const char *mode, int conns, int depth,
                                 size_t size, double qps, const bench_hist *hist, uint64_t errors,
                                 const char *protocol);

#endif /* BENCH_OPTS_H */
