/*
 * Resharding figures (docs/BENCHMARKS.md, "## Resharding"), in process over a
 * real log in a temp dir: how long one SplitShard/MergeShards keeps the API
 * thread (the pause every API writer sees; writers of the affected shard see
 * the same), against a PutRecord's own latency; CreateStream, ListShards (all
 * pages) and DescribeStreamSummary at 10,000 shards. Prints "reshard-bench:"
 * lines; asserts only what must hold (counts), never a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "control/kinesis.h"
#include "tests/control/kinesis/harness.h"

#define ROUNDS 200

static struct harness h;

static void
setup(void)
{
	harness_open(&h, 0);
}

static void
teardown(void)
{
	harness_close(&h);
}

TestSuite(reshard_bench, .init = setup, .fini = teardown, .timeout = 120);

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Calls and returns the wall time in microseconds (asserts 200). */
static uint64_t
timed(const char *action, const char *body)
{
	uint64_t t0 = clock_mono_ns();
	struct api_call *call = harness_call(&h, action, body);
	uint64_t us = (clock_mono_ns() - t0) / 1000;

	cr_assert_eq(call->status, 200, "%s: %s", action, call->out.data);
	harness_call_free(call);
	return us;
}

/* The closes run off the API thread; the next reshard waits for ACTIVE (not timed). */
static void
settle(void)
{
	for (int i = 0; (h.k->closes_pending > 0 || h.k->transitions > 0) && i < 5000; i++) {
		kinesis_poll(h.k, 0);
		usleep(200);
	}
}

static void
report(const char *what, uint64_t *us, size_t n)
{
	qsort(us, n, sizeof(*us), cmp_u64);
	printf("reshard-bench: %-34s p50 %6llu us  p99 %6llu us  max %6llu us  (n=%zu)\n", what,
	       (unsigned long long)us[n / 2], (unsigned long long)us[n * 99 / 100],
	       (unsigned long long)us[n - 1], n);
}

Test(reshard_bench, pause_of_a_reshard)
{
	static uint64_t put_us[ROUNDS];
	static uint64_t split_us[ROUNDS / 2];
	static uint64_t merge_us[ROUNDS / 2];
	char body[256];
	uint32_t next = 4;

	timed("CreateStream", "{\"StreamName\":\"rb\",\"ShardCount\":4}");
	for (int i = 0; i < ROUNDS; i++)
		put_us[i] = timed("PutRecord", "{\"StreamName\":\"rb\",\"PartitionKey\":\"k\","
				  "\"Data\":\"AAAA\",\"ExplicitHashKey\":\"7\"}");
	/* Shard 0 holds key 7: split it, merge its children back, and so on. */
	for (int i = 0; i < ROUNDS / 2; i++) {
		uint32_t parent = i == 0 ? 0 : next - 1;

		timed("PutRecord", "{\"StreamName\":\"rb\",\"PartitionKey\":\"k\",\"Data\":\"AAAA\","
		      "\"ExplicitHashKey\":\"7\"}");
		snprintf(body, sizeof(body), "{\"StreamName\":\"rb\",\"ShardToSplit\":"
			 "\"shardId-%012u\",\"NewStartingHashKey\":\"1000\"}", parent);
		split_us[i] = timed("SplitShard", body);
		settle();
		timed("PutRecord", "{\"StreamName\":\"rb\",\"PartitionKey\":\"k\",\"Data\":\"AAAA\","
		      "\"ExplicitHashKey\":\"7\"}");
		snprintf(body, sizeof(body), "{\"StreamName\":\"rb\",\"ShardToMerge\":"
			 "\"shardId-%012u\",\"AdjacentShardToMerge\":\"shardId-%012u\"}", next,
			 next + 1);
		merge_us[i] = timed("MergeShards", body);
		settle();
		next += 3;
	}
	report("PutRecord (no reshard)", put_us, ROUNDS);
	report("SplitShard (API thread busy)", split_us, ROUNDS / 2);
	report("MergeShards (API thread busy)", merge_us, ROUNDS / 2);
}

Test(reshard_bench, ten_thousand_shards)
{
	uint64_t create_us;
	uint64_t list_us;
	uint64_t summary_us[50];
	uint64_t t0;
	char *token = NULL;
	uint32_t listed = 0;

	create_us = timed("CreateStream", "{\"StreamName\":\"big\",\"ShardCount\":10000}");
	t0 = clock_mono_ns();
	do {
		char body[1024];
		cJSON *l;

		if (token == NULL)
			snprintf(body, sizeof(body), "{\"StreamName\":\"big\",\"MaxResults\":1000}");
		else
			snprintf(body, sizeof(body), "{\"NextToken\":\"%s\",\"MaxResults\":1000}",
				 token);
		free(token);
		token = NULL;
		l = harness_ok(&h, "ListShards", body);
		listed += (uint32_t)cJSON_GetArraySize(cJSON_GetObjectItem(l, "Shards"));
		if (cJSON_GetObjectItem(l, "NextToken") != NULL)
			token = strdup(cJSON_GetObjectItem(l, "NextToken")->valuestring);
		cJSON_Delete(l);
	} while (token != NULL);
	list_us = (clock_mono_ns() - t0) / 1000;
	cr_assert_eq(listed, 10000);
	for (int i = 0; i < 50; i++)
		summary_us[i] = timed("DescribeStreamSummary", "{\"StreamName\":\"big\"}");
	printf("reshard-bench: CreateStream 10000 shards %llu us; ListShards all 10 pages %llu us; "
	       "memory per shard %zu B (struct kinesis_shard)\n", (unsigned long long)create_us,
	       (unsigned long long)list_us, sizeof(struct kinesis_shard));
	report("DescribeStreamSummary 10000 shards", summary_us, 50);
}
