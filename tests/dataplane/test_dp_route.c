/*
 * dp_route: the route table built by a builder and published under RCU.
 * Lookups by stream name and hash key, the edges of every range, refusals
 * (overlap, unknown stream, bad names, limits), and publishing while a
 * worker lcore polls (the publisher waits one grace period, never the worker).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/dataplane/dp_test.h"
#include "tests/support/seed.h"

static void
setup(void)
{
	dp_test_open(NULL);
}

static void
teardown(void)
{
	dp_test_close();
}

TestSuite(dp_route, .init = setup, .fini = teardown, .timeout = 20);

/* `count` equal shards of stream `id` routed to shard ids base + i. */
static void
add_equal_shards(struct dp_route_builder *b, uint32_t id, uint32_t count, uint64_t base)
{
	for (uint32_t i = 0; i < count; i++) {
		hashkey_t start = hashkey_range_start(i, count);
		hashkey_t end = i + 1 < count ? hashkey_range_start(i + 1, count) - 1 : HASHKEY_MAX;

		cr_assert_eq(dp_route_add_range(b, id, start, end, base + i), 0);
	}
}

Test(dp_route, routes_every_range_edge)
{
	struct dp_route_builder *b;
	uint64_t shard;

	cr_assert_eq(dp_route_builder_open(4, 64, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "orders", 7), 0);
	cr_assert_eq(dp_route_add_stream(b, "clicks", 3), 0);
	add_equal_shards(b, 7, 16, 700);
	add_equal_shards(b, 3, 1, 300);
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	dp_route_builder_close(b);

	for (uint32_t i = 0; i < 16; i++) {
		hashkey_t start = hashkey_range_start(i, 16);

		cr_assert_eq(dp_route_lookup(dp_test, "orders", start, &shard), 0);
		cr_assert_eq(shard, 700 + i);
		if (i > 0) {
			cr_assert_eq(dp_route_lookup(dp_test, "orders", start - 1, &shard), 0);
			cr_assert_eq(shard, 700 + i - 1);
		}
	}
	cr_assert_eq(dp_route_lookup(dp_test, "orders", HASHKEY_MAX, &shard), 0);
	cr_assert_eq(shard, 715);
	cr_assert_eq(dp_route_lookup(dp_test, "clicks", 12345, &shard), 0);
	cr_assert_eq(shard, 300);
	cr_assert_eq(dp_route_lookup(dp_test, "click", 0, &shard), -ENOENT);
	cr_assert_eq(dp_route_lookup(dp_test, "clicksx", 0, &shard), -ENOENT);
}

Test(dp_route, finds_gaps_and_refuses_overlaps)
{
	struct dp_route_builder *b;
	uint64_t shard;

	cr_assert_eq(dp_route_builder_open(2, 4, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "s", 1), 0);
	cr_assert_eq(dp_route_add_range(b, 1, 100, 199, 11), 0);
	cr_assert_eq(dp_route_add_range(b, 1, 300, 399, 13), 0);
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	cr_assert_eq(dp_route_lookup(dp_test, "s", 99, &shard), -ENOENT);
	cr_assert_eq(dp_route_lookup(dp_test, "s", 200, &shard), -ENOENT);
	cr_assert_eq(dp_route_lookup(dp_test, "s", 399, &shard), 0);
	cr_assert_eq(dp_route_lookup(dp_test, "s", 400, &shard), -ENOENT);
	cr_assert_eq(dp_route_add_range(b, 1, 199, 250, 12), 0);
	cr_assert_eq(dp_route_publish(dp_test, b), -EINVAL, "199 is owned twice");
	/* The refused table did not replace the published one. */
	cr_assert_eq(dp_route_lookup(dp_test, "s", 150, &shard), 0);
	cr_assert_eq(shard, 11);
	dp_route_builder_close(b);
}

Test(dp_route, refuses_bad_input_and_limits)
{
	struct dp_route_builder *b;
	char long_name[130];

	memset(long_name, 'a', sizeof(long_name));
	long_name[129] = '\0';
	cr_assert_eq(dp_route_builder_open(0, 4, &b), -EINVAL);
	cr_assert_eq(dp_route_builder_open(2, 2, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "", 1), -EINVAL);
	cr_assert_eq(dp_route_add_stream(b, "bad name", 1), -EINVAL);
	cr_assert_eq(dp_route_add_stream(b, long_name, 1), -EINVAL);
	long_name[128] = '\0';
	cr_assert_eq(dp_route_add_stream(b, long_name, 1), 0, "128 characters are allowed");
	cr_assert_eq(dp_route_add_stream(b, "x", 1), -EEXIST);
	cr_assert_eq(dp_route_add_stream(b, long_name, 2), -EEXIST);
	cr_assert_eq(dp_route_add_stream(b, "y", 2), 0);
	cr_assert_eq(dp_route_add_stream(b, "z", 3), -ENOSPC);
	cr_assert_eq(dp_route_add_range(b, 9, 0, 1, 1), -ENOENT);
	cr_assert_eq(dp_route_add_range(b, 1, 5, 4, 1), -EINVAL);
	cr_assert_eq(dp_route_add_range(b, 1, 0, 4, 1), 0);
	cr_assert_eq(dp_route_add_range(b, 2, 0, 4, 1), 0);
	cr_assert_eq(dp_route_add_range(b, 2, 5, 9, 1), -ENOSPC);
	dp_route_builder_close(b);
}

/* A worker polls on its own lcore while the control thread publishes again and again. */
Test(dp_route, publishes_while_a_worker_polls)
{
	struct dp_route_builder *b;
	uint64_t shard;

	cr_assert_eq(dp_start(dp_test), 0);
	/* Wait until the worker polls: then every publish below waits for its grace period. */
	for (uint32_t i = 0; i < 2000 && dp_test_counter(DP_POLLS) == 0; i++)
		usleep(1000);
	cr_assert_gt(dp_test_counter(DP_POLLS), 0, "the worker runs");
	for (uint32_t round = 1; round <= 50; round++) {
		cr_assert_eq(dp_route_builder_open(1, 16, &b), 0);
		cr_assert_eq(dp_route_add_stream(b, "s", 1), 0);
		add_equal_shards(b, 1, 1 + round % 16, round * 100);
		cr_assert_eq(dp_route_publish(dp_test, b), 0);
		dp_route_builder_close(b);
		cr_assert_eq(dp_route_lookup(dp_test, "s", 0, &shard), 0);
		cr_assert_eq(shard, round * 100);
	}
	dp_stop(dp_test);
}

/* The reshard cut: every running worker answers a flush epoch; not running, nobody waits. */
Test(dp_route, workers_answer_flush_requests)
{
	struct dp_route_builder *b;

	cr_assert_eq(dp_flush_staged(dp_test, 1), 0);
	cr_assert_eq(dp_start(dp_test), 0);
	for (uint32_t i = 0; i < 2000 && dp_test_counter(DP_POLLS) == 0; i++)
		usleep(1000);
	for (uint32_t round = 1; round <= 20; round++) {
		cr_assert_eq(dp_route_builder_open(1, 16, &b), 0);
		cr_assert_eq(dp_route_add_stream(b, "s", 1), 0);
		add_equal_shards(b, 1, 1 + round % 16, round * 100);
		cr_assert_eq(dp_route_publish(dp_test, b), 0);
		dp_route_builder_close(b);
		/* Idle sleeps included: a sleeping worker answers when it wakes. */
		cr_assert_eq(dp_flush_staged(dp_test, 2000), 0, "round %u", round);
	}
	dp_stop(dp_test);
	cr_assert_eq(dp_flush_staged(dp_test, 1), 0);
}

/* 10,000 shards, some with ranges a few keys wide: lookups agree with a linear scan. */
Test(dp_route, agrees_with_a_linear_scan)
{
	static hashkey_t starts[10001];
	struct dp_route_builder *b;
	struct seed_rng rng;
	uint64_t seed = seed_base();
	const uint32_t count = 10000;

	seed_rng_init(&rng, seed);
	cr_assert_eq(dp_route_builder_open(1, count, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "many", 9), 0);
	for (uint32_t i = 0; i < count; i++)
		starts[i] = hashkey_range_start(i, count);
	/* The second half crowds into a tiny span: ranges that share their top 64 bits. */
	for (uint32_t i = count / 2; i < count; i++)
		starts[i] = starts[count / 2] + (hashkey_t)(i - count / 2) * 3;
	starts[count] = 0; /* Unused: the last range ends at HASHKEY_MAX. */
	for (uint32_t i = 0; i < count; i++) {
		hashkey_t end = i + 1 < count ? starts[i + 1] - 1 : HASHKEY_MAX;

		cr_assert_eq(dp_route_add_range(b, 9, starts[i], end, 1000 + i), 0);
	}
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	dp_route_builder_close(b);
	for (uint32_t probe = 0; probe < 20000; probe++) {
		uint32_t i = (uint32_t)seed_rng_below(&rng, count);
		hashkey_t end = i + 1 < count ? starts[i + 1] - 1 : HASHKEY_MAX;
		hashkey_t key = probe % 2 ? starts[i] + (end - starts[i]) / 2 : starts[i];
		uint64_t shard;

		if (probe % 3 == 0)
			key = ((hashkey_t)seed_rng_next(&rng) << 64) | seed_rng_next(&rng);
		cr_assert_eq(dp_route_lookup(dp_test, "many", key, &shard), 0);
		if (probe % 3 != 0)
			cr_assert_eq(shard, 1000 + i, "seed %llu probe %u", (unsigned long long)seed,
				     probe);
		i = (uint32_t)(shard - 1000);
		end = i + 1 < count ? starts[i + 1] - 1 : HASHKEY_MAX;
		cr_assert(key >= starts[i] && key <= end, "seed %llu", (unsigned long long)seed);
	}
}
