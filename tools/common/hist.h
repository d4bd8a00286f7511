/*
 * Log-linear latency histogram for benchmark clients (HdrHistogram-style).
 *
 * Values are nanoseconds.  0..255 ns are counted exactly; above that every
 * power-of-two range is split into 128 equal buckets, so a bucket is at most
 * 1/128 (0.8%) of its values wide and a reported percentile (the bucket's
 * midpoint) is within 0.4% of the true sample.  Values above
 * BENCH_HIST_MAX_NS (100 s) are counted in the last bucket; min and max are
 * exact.  Recording is a few instructions and never allocates.
 *
 * Not thread-safe: give each thread its own histogram and bench_hist_merge()
 * them at the end.  The struct is ~32 KiB, so prefer heap or static storage
 * to small thread stacks.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

/** log2 of the number of buckets per power of two above the linear range. */
#define BENCH_HIST_SUB_BITS 7
/** Buckets per power of two (128). */
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
/** Values below this (256 ns) get one bucket each. */
#define BENCH_HIST_LINEAR (2u * BENCH_HIST_SUB)
/** Largest value tracked with full precision: 100 s. */
#define BENCH_HIST_MAX_NS 100000000000ull
/** Most significant bit of BENCH_HIST_MAX_NS (2^36 <= 1e11 < 2^37). */
#define BENCH_HIST_MAX_MSB 36u
/** Total number of buckets: the linear range plus one group per power of two up to the max. */
#define BENCH_HIST_BUCKETS \
    (BENCH_HIST_LINEAR + (BENCH_HIST_MAX_MSB - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB)

/** A latency histogram in caller storage; initialize with bench_hist_init(). */
typedef struct bench_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist;

/** Empties `h`.  Thread: the owner. */
void bench_hist_init(bench_hist *h);

/** Adds one sample of `ns` nanoseconds.  Never allocates.  Thread: the owner. */
void bench_hist_record(bench_hist *h, uint64_t ns);

/** Adds every sample of `src` to `dst`; `src` is unchanged. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

/**
 * Returns the value at percentile `p` (0..100, e.g. 99.9) in nanoseconds: the
 * midpoint of the bucket holding the sample of rank ceil(p/100 * count),
 * clamped to the exact min and max.  p <= 0 gives min, p >= 100 gives max.
 *
 * @return nanoseconds, or 0 if the histogram is empty.
 */
uint64_t bench_hist_percentile(const bench_hist *h, double p);

/** Returns the number of samples recorded. */
uint64_t bench_hist_count(const bench_hist *h);

/** Returns the mean in nanoseconds, or 0 if the histogram is empty. */
uint64_t bench_hist_mean(const bench_hist *h);

#endif /* BENCH_HIST_H */
