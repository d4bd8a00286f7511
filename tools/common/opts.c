/*
 * Common load-generator flags and the result line.
 *
 * Design notes: parsing works on a copy of the caller's bench_opts and copies
 * it back only when every flag parsed and validated, so a failed parse leaves
 * the defaults intact.  No getopt: the flags are long-only, and the callback
 * lets a program (arpc-bench) add its own without re-implementing the rest.
 */
#include "opts.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

struct flag_def {
    const char *name;
    unsigned bit;
};

static const struct flag_def flag_defs[] = {
    {"target", BENCH_OPT_TARGET},   {"listen", BENCH_OPT_LISTEN}, {"conns", BENCH_OPT_CONNS},
    {"depth", BENCH_OPT_DEPTH},     {"size", BENCH_OPT_SIZE},     {"secs", BENCH_OPT_SECS},
    {"threads", BENCH_OPT_THREADS},
};

static const char *prog_name(char **argv)
{
    const char *slash;

    if (argv[0] == NULL)
        return "bench";
    slash = strrchr(argv[0], '/');
    return slash != NULL ? slash + 1 : argv[0];
}

__attribute__((format(printf, 3, 4))) static int usage_error(const char *prog, const char *usage,
                                                             const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return -EINVAL;
}

static int set_common(const char *prog, const char *usage, unsigned bit, const char *value,
                      bench_opts *o)
{
    long long v;

    switch (bit) {
    case BENCH_OPT_TARGET:
        o->target = value;
        return 0;
    case BENCH_OPT_LISTEN:
        o->listen = value;
        return 0;
    case BENCH_OPT_CONNS:
        if (tool_parse_num(value, 1, 100000, 0, &v) != 0)
            return usage_error(prog, usage, "--conns must be 1..100000, got '%s'", value);
        o->conns = (int)v;
        return 0;
    case BENCH_OPT_DEPTH:
        if (tool_parse_num(value, 1, 100000, 0, &v) != 0)
            return usage_error(prog, usage, "--depth must be 1..100000, got '%s'", value);
        o->depth = (int)v;
        return 0;
    case BENCH_OPT_SIZE:
        if (tool_parse_num(value, 0, BENCH_MAX_PAYLOAD, 1, &v) != 0)
            return usage_error(prog, usage, "--size must be 0..16m bytes, got '%s'", value);
        o->size = (size_t)v;
        return 0;
    case BENCH_OPT_SECS:
        if (tool_parse_num(value, 1, 600, 0, &v) != 0)
            return usage_error(prog, usage, "--secs must be 1..600, got '%s'", value);
        o->secs = (int)v;
        return 0;
    case BENCH_OPT_THREADS:
        if (tool_parse_num(value, 1, 1024, 0, &v) != 0)
            return usage_error(prog, usage, "--threads must be 1..1024, got '%s'", value);
        o->threads = (int)v;
        return 0;
    default:
        return usage_error(prog, usage, "internal error: unknown flag bit %u", bit);
    }
}

void bench_opts_init(bench_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->conns = 1;
    opts->depth = 1;
    opts->size = 64;
    opts->secs = 10;
    opts->threads = 1;
}

int bench_opts_parse(int argc, char **argv, unsigned accepted, const char *usage,
                     bench_opts_extra_cb extra, void *user_data, bench_opts *opts)
{
    const char *prog = prog_name(argv);
    bench_opts o = *opts;
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq;
        const char *value;
        char name[64];
        size_t name_len;
        unsigned bit = 0;
        size_t k;
        int r;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            opts->help = 1;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return usage_error(prog, usage, "unexpected argument '%s'", arg);
        arg += 2;
        eq = strchr(arg, '=');
        name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof(name))
            return usage_error(prog, usage, "unknown flag '%s'", argv[i]);
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);

        for (k = 0; k < sizeof(flag_defs) / sizeof(flag_defs[0]); k++) {
            if ((accepted & flag_defs[k].bit) != 0 && strcmp(name, flag_defs[k].name) == 0)
                bit = flag_defs[k].bit;
        }
        if (bit != 0) {
            if (value == NULL)
                return usage_error(prog, usage, "--%s needs a value", name);
            if (set_common(prog, usage, bit, value, &o) != 0)
                return -EINVAL;
            if (eq == NULL)
                i++;
            continue;
        }

        r = extra != NULL ? extra(name, value, user_data) : 0;
        if (r < 0) {
            fputs(usage, stderr);
            return -EINVAL;
        }
        if (r == 0)
            return usage_error(prog, usage, "unknown flag '--%s'", name);
        if (r == 1 && eq != NULL)
            return usage_error(prog, usage, "--%s takes no value", name);
        if (r == 2) {
            if (value == NULL)
                return usage_error(prog, usage, "--%s needs a value", name);
            if (eq == NULL)
                i++;
        }
    }

    if ((accepted & BENCH_OPT_TARGET) != 0) {
        if (o.target == NULL)
            return usage_error(prog, usage, "--target HOST:PORT is required");
        if (bench_addr_parse(o.target, &o.addr) != 0)
            return usage_error(prog, usage, "cannot resolve --target '%s' (want HOST:PORT)",
                               o.target);
        if ((o.addr.ss.ss_family == AF_INET &&
             ((const struct sockaddr_in *)&o.addr.ss)->sin_port == 0) ||
            (o.addr.ss.ss_family == AF_INET6 &&
             ((const struct sockaddr_in6 *)&o.addr.ss)->sin6_port == 0))
            return usage_error(prog, usage, "--target needs a non-zero port");
    } else if ((accepted & BENCH_OPT_LISTEN) != 0) {
        if (o.listen == NULL)
            return usage_error(prog, usage, "--listen HOST:PORT is required");
        if (bench_addr_parse(o.listen, &o.addr) != 0)
            return usage_error(prog, usage, "cannot resolve --listen '%s' (want HOST:PORT)",
                               o.listen);
    }
    *opts = o;
    return 0;
}

/* Rounds nanoseconds to whole microseconds, half up. */
static uint64_t ns_to_us(uint64_t ns)
{
    return (ns + 500) / 1000;
}

void bench_print_result(const char *system, const char *mode, int conns, int depth, size_t size,
                        double qps, const bench_hist *hist, uint64_t errors)
{
    bench_print_result_protocol(system, mode, conns, depth, size, qps, hist, errors, NULL);
}

void bench_print_result_protocol(const char *system, const char *mode, int conns, int depth,
                                 size_t size, double qps, const bench_hist *hist, uint64_t errors,
                                 const char *protocol)
{
    uint64_t qps_int = qps > 0.0 ? (uint64_t)(qps + 0.5) : 0;

    printf("system=%s mode=%s conns=%d depth=%d size=%zu qps=%" PRIu64 " p50_us=%" PRIu64
           " p99_us=%" PRIu64 " p999_us=%" PRIu64 " errors=%" PRIu64 "%s%s\n",
           system, mode, conns, depth, size, qps_int, ns_to_us(bench_hist_percentile(hist, 50.0)),
           ns_to_us(bench_hist_percentile(hist, 99.0)), ns_to_us(bench_hist_percentile(hist, 99.9)),
           errors, protocol != NULL ? " protocol=" : "", protocol != NULL ? protocol : "");
    fflush(stdout);
}
