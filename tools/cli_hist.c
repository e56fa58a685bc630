/*
 * cli_hist.c - the log-bucketed histogram of cli_hist.h.
 */
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "tools/cli_hist.h"

void
cli_hist_reset(struct cli_hist *hist)
{
	memset(hist, 0, sizeof(*hist));
	hist->min = UINT64_MAX;
}

/*
 * Below SUB_COUNT the index is the value. Above, with k the top bit of the
 * value, the range [2^k, 2^(k+1)) starts at index (k - SUB_BITS + 1) * SUB_COUNT
 * and the SUB_BITS bits under the top bit pick the bucket within it.
 */
uint32_t
cli_hist_bucket_index(uint64_t value)
{
	uint32_t top_bit;
	uint32_t shift;

	if (value > CLI_HIST_VALUE_MAX)
		value = CLI_HIST_VALUE_MAX;
	if (value < CLI_HIST_SUB_COUNT)
		return (uint32_t)value;
	top_bit = 63u - (uint32_t)__builtin_clzll(value);
	shift = top_bit - CLI_HIST_SUB_BITS;
	return (top_bit - CLI_HIST_SUB_BITS + 1) * CLI_HIST_SUB_COUNT +
	       (uint32_t)((value >> shift) & (CLI_HIST_SUB_COUNT - 1));
}

uint64_t
cli_hist_bucket_low(uint32_t index)
{
	uint32_t top_bit;
	uint64_t sub;

	assert(index < CLI_HIST_BUCKET_COUNT);
	if (index < CLI_HIST_SUB_COUNT)
		return index;
	top_bit = index / CLI_HIST_SUB_COUNT + CLI_HIST_SUB_BITS - 1;
	sub = index % CLI_HIST_SUB_COUNT;
	return (CLI_HIST_SUB_COUNT + sub) << (top_bit - CLI_HIST_SUB_BITS);
}

uint64_t
cli_hist_bucket_high(uint32_t index)
{
	uint32_t top_bit;

	assert(index < CLI_HIST_BUCKET_COUNT);
	if (index < CLI_HIST_SUB_COUNT)
		return index;
	top_bit = index / CLI_HIST_SUB_COUNT + CLI_HIST_SUB_BITS - 1;
	return cli_hist_bucket_low(index) + (UINT64_C(1) << (top_bit - CLI_HIST_SUB_BITS)) - 1;
}

void
cli_hist_record_count(struct cli_hist *hist, uint64_t value, uint64_t count)
{
	if (count == 0)
		return;
	hist->buckets[cli_hist_bucket_index(value)] += count;
	hist->count += count;
	if (value > CLI_HIST_VALUE_MAX)
		hist->clamped += count;
	if (value < hist->min)
		hist->min = value;
	if (value > hist->max)
		hist->max = value;
	hist->sum += (double)value * (double)count;
}

void
cli_hist_record(struct cli_hist *hist, uint64_t value)
{
	cli_hist_record_count(hist, value, 1);
}

void
cli_hist_merge(struct cli_hist *into, const struct cli_hist *from)
{
	for (uint32_t i = 0; i < CLI_HIST_BUCKET_COUNT; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	into->clamped += from->clamped;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	into->sum += from->sum;
}

uint64_t
cli_hist_percentile(const struct cli_hist *hist, double percentile)
{
	uint64_t rank;
	uint64_t seen = 0;

	assert(percentile > 0.0 && percentile <= 100.0);
	if (hist->count == 0)
		return 0;
	/* The rank-th smallest value, 1-based: p99 of 100 values is the 99th. */
	rank = (uint64_t)ceil(percentile / 100.0 * (double)hist->count);
	if (rank == 0)
		rank = 1;
	for (uint32_t i = 0; i < CLI_HIST_BUCKET_COUNT; i++) {
		seen += hist->buckets[i];
		if (seen >= rank) {
			uint64_t high = cli_hist_bucket_high(i);

			return high < hist->max ? high : hist->max;
		}
	}
	assert(false);
	return hist->max;
}

double
cli_hist_mean(const struct cli_hist *hist)
{
	return hist->count == 0 ? 0.0 : hist->sum / (double)hist->count;
}
