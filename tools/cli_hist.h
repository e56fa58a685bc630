/*
 * cli_hist.h - log-bucketed latency histograms (HdrHistogram's layout with a
 * fixed range): values 0 .. CLI_HIST_SUB_COUNT - 1 get a bucket each; every
 * power-of-two range [2^k, 2^(k+1)) above is cut into CLI_HIST_SUB_COUNT
 * equal buckets, so a bucket is at most 1/32 (3.1 %) of its values wide.
 * Values above CLI_HIST_VALUE_MAX are clamped into the last bucket and
 * counted in `clamped`. Percentiles report a bucket's highest value, so they
 * never understate a latency. Fixed size, no allocation; merge by adding.
 */
#ifndef SLUICE_TOOLS_CLI_HIST_H
#define SLUICE_TOOLS_CLI_HIST_H

#include <stdint.h>

#define CLI_HIST_SUB_BITS 5
#define CLI_HIST_SUB_COUNT (1u << CLI_HIST_SUB_BITS)
#define CLI_HIST_VALUE_BITS 42 /* Nanoseconds: 2^42 ns is 73 minutes. */
#define CLI_HIST_VALUE_MAX ((UINT64_C(1) << CLI_HIST_VALUE_BITS) - 1)
#define CLI_HIST_BUCKET_COUNT ((CLI_HIST_VALUE_BITS - CLI_HIST_SUB_BITS + 1) * CLI_HIST_SUB_COUNT)

struct cli_hist {
	uint64_t buckets[CLI_HIST_BUCKET_COUNT];
	uint64_t count;
	uint64_t clamped;   /* Values above CLI_HIST_VALUE_MAX. */
	uint64_t min;
	uint64_t max;       /* Unclamped. */
	double sum;
};

void cli_hist_reset(struct cli_hist *hist);
void cli_hist_record(struct cli_hist *hist, uint64_t value);
/* Records `value` `count` times (a frame's records share their latency). */
void cli_hist_record_count(struct cli_hist *hist, uint64_t value, uint64_t count);
void cli_hist_merge(struct cli_hist *into, const struct cli_hist *from);

/* Bucket of `value` (clamped), and the inclusive value range of a bucket. */
uint32_t cli_hist_bucket_index(uint64_t value);
uint64_t cli_hist_bucket_low(uint32_t index);
uint64_t cli_hist_bucket_high(uint32_t index);

/*
 * The value at or below which `percentile` (0..100] of the recorded values
 * lie: the highest value of that bucket, capped at max. 0 when empty.
 */
uint64_t cli_hist_percentile(const struct cli_hist *hist, double percentile);
double cli_hist_mean(const struct cli_hist *hist);

#endif /* SLUICE_TOOLS_CLI_HIST_H */
