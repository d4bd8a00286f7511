/*
 * Log-linear latency histogram.
 *
 * Design notes: a value v >= 256 with most significant bit m (8..36) lands in
 * group m - 8; inside the group its top 8 bits, v >> (m - 7), are a mantissa
 * in 128..255 that picks one of 128 buckets of width 2^(m - 7).  Smaller
 * values index the first 256 buckets directly.  This is HdrHistogram's layout
 * with 2 significant decimal digits, minus its configurability.
 */
#include "hist.h"

#include <string.h>

_Static_assert((1ull << BENCH_HIST_MAX_MSB) <= BENCH_HIST_MAX_NS &&
                   BENCH_HIST_MAX_NS < (1ull << (BENCH_HIST_MAX_MSB + 1)),
               "BENCH_HIST_MAX_MSB must be the top bit of BENCH_HIST_MAX_NS");

static unsigned bucket_index(uint64_t v)
{
    unsigned msb;
    unsigned shift;

    if (v < BENCH_HIST_LINEAR)
        return (unsigned)v;
    if (v > BENCH_HIST_MAX_NS)
        v = BENCH_HIST_MAX_NS;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - BENCH_HIST_SUB_BITS;
    return BENCH_HIST_LINEAR + (msb - BENCH_HIST_SUB_BITS - 1) * BENCH_HIST_SUB +
           (unsigned)(v >> shift) - BENCH_HIST_SUB;
}

/* Returns the midpoint of bucket `i`, the inverse of bucket_index(). */
static uint64_t bucket_mid(unsigned i)
{
    unsigned group;
    unsigned shift;
    uint64_t mantissa;

    if (i < BENCH_HIST_LINEAR)
        return i;
    group = (i - BENCH_HIST_LINEAR) / BENCH_HIST_SUB;
    mantissa = BENCH_HIST_SUB + (i - BENCH_HIST_LINEAR) % BENCH_HIST_SUB;
    shift = group + 1;
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

void bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

void bench_hist_record(bench_hist *h, uint64_t ns)
{
    h->buckets[bucket_index(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    unsigned i;

    if (src->count == 0)
        return;
    for (i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p)
{
    double want;
    uint64_t rank;
    uint64_t seen = 0;
    uint64_t v;
    unsigned i;

    if (h->count == 0)
        return 0;
    if (p <= 0.0)
        return h->min_ns;
    if (p >= 100.0)
        return h->max_ns;
    /* rank = ceil(p / 100 * count), without pulling in libm. */
    want = p / 100.0 * (double)h->count;
    rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            break;
    }
    v = bucket_mid(i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1);
    if (v < h->min_ns)
        v = h->min_ns;
    if (v > h->max_ns)
        v = h->max_ns;
    return v;
}

uint64_t bench_hist_count(const bench_hist *h)
{
    return h->count;
}

uint64_t bench_hist_mean(const bench_hist *h)
{
    return h->count == 0 ? 0 : h->sum_ns / h->count;
}
