/*
 * cli_hist: buckets tile the value range without gaps or overlaps and are
 * never wider than 1/32 of their values; percentiles never understate and
 * stay within one bucket of the truth; clamping, merging and emptiness.
 */
#include <math.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "tools/cli_hist.h"

Test(cli_hist, buckets_tile_the_range)
{
	cr_assert_eq(cli_hist_bucket_low(0), 0);
	for (uint32_t i = 0; i < CLI_HIST_BUCKET_COUNT; i++) {
		uint64_t low = cli_hist_bucket_low(i);
		uint64_t high = cli_hist_bucket_high(i);

		cr_assert_leq(low, high, "bucket %u", i);
		cr_assert_eq(cli_hist_bucket_index(low), i, "bucket %u low %lu", i, low);
		cr_assert_eq(cli_hist_bucket_index(high), i, "bucket %u high %lu", i, high);
		if (i + 1 < CLI_HIST_BUCKET_COUNT)
			cr_assert_eq(high + 1, cli_hist_bucket_low(i + 1), "gap after %u", i);
		/* Width at most 1/32 of the bucket's lowest value above the exact range. */
		if (low >= CLI_HIST_SUB_COUNT)
			cr_assert_leq((high - low + 1) * CLI_HIST_SUB_COUNT, low, "bucket %u", i);
	}
	cr_assert_eq(cli_hist_bucket_high(CLI_HIST_BUCKET_COUNT - 1), CLI_HIST_VALUE_MAX);
}

Test(cli_hist, clamps_above_the_range)
{
	struct cli_hist hist;

	cli_hist_reset(&hist);
	cli_hist_record(&hist, CLI_HIST_VALUE_MAX);
	cli_hist_record(&hist, CLI_HIST_VALUE_MAX + 1);
	cli_hist_record(&hist, UINT64_MAX);
	cr_assert_eq(hist.clamped, 2);
	cr_assert_eq(hist.buckets[CLI_HIST_BUCKET_COUNT - 1], 3);
	cr_assert_eq(hist.max, UINT64_MAX);
	cr_assert_eq(cli_hist_percentile(&hist, 100.0), CLI_HIST_VALUE_MAX);
}

Test(cli_hist, empty_reports_zero)
{
	struct cli_hist hist;

	cli_hist_reset(&hist);
	cr_assert_eq(cli_hist_percentile(&hist, 50.0), 0);
	cr_assert_float_eq(cli_hist_mean(&hist), 0.0, 1e-12);
}

Test(cli_hist, exact_below_sub_count)
{
	struct cli_hist hist;

	cli_hist_reset(&hist);
	for (uint64_t v = 1; v <= 10; v++)
		cli_hist_record(&hist, v);
	cr_assert_eq(cli_hist_percentile(&hist, 50.0), 5);
	cr_assert_eq(cli_hist_percentile(&hist, 90.0), 9);
	cr_assert_eq(cli_hist_percentile(&hist, 91.0), 10);
	cr_assert_eq(cli_hist_percentile(&hist, 100.0), 10);
	cr_assert_eq(cli_hist_percentile(&hist, 0.001), 1);
	cr_assert_float_eq(cli_hist_mean(&hist), 5.5, 1e-12);
}

static int
u64_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Against the sorted truth: never below it, and within one bucket (1/32) above. */
Test(cli_hist, percentiles_bound_the_truth)
{
	static uint64_t values[100000];
	static const double percentiles[] = { 1, 10, 50, 90, 99, 99.9, 99.99, 100 };
	struct cli_hist hist;
	uint64_t state = 12345;

	cli_hist_reset(&hist);
	for (size_t i = 0; i < 100000; i++) {
		/* Log-uniform from 1 us to 1 s, as latencies spread. */
		state = state * 6364136223846793005u + 1442695040888963407u;
		values[i] = (uint64_t)(1000.0 * pow(1e6, (double)(state >> 11) /
						    9007199254740992.0));
		cli_hist_record(&hist, values[i]);
	}
	qsort(values, 100000, sizeof(values[0]), u64_compare);
	for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++) {
		size_t rank = (size_t)ceil(percentiles[i] / 100.0 * 100000.0);
		uint64_t truth = values[rank - 1];
		uint64_t got = cli_hist_percentile(&hist, percentiles[i]);

		cr_assert_geq(got, truth, "p%g: %lu < %lu", percentiles[i], got, truth);
		cr_assert_leq(got - truth, truth / 32 + 1, "p%g: %lu vs %lu", percentiles[i], got,
			      truth);
	}
}

Test(cli_hist, merge_adds)
{
	struct cli_hist a, b;

	cli_hist_reset(&a);
	cli_hist_reset(&b);
	cli_hist_record(&a, 100);
	cli_hist_record(&b, 7);
	cli_hist_record(&b, 1000000);
	cli_hist_merge(&a, &b);
	cr_assert_eq(a.count, 3);
	cr_assert_eq(a.min, 7);
	cr_assert_eq(a.max, 1000000);
	cr_assert_eq(cli_hist_percentile(&a, 50.0),
		     cli_hist_bucket_high(cli_hist_bucket_index(100)));
}
