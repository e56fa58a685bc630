/*
 * probe: backward-shift deletion keeps every remaining entry findable, with
 * homes chosen to collide and to wrap around the table's end, against a
 * reference set, under seeded random inserts and deletes.
 */
#include <stdbool.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/probe.h"
#include "tests/support/seed.h"

#define SIZE 64u
#define MASK (SIZE - 1)
#define KEYS 48u            /* Entries are key + 1; at most 48 of 64 positions filled. */

/* Homes crowd into the last positions, so chains wrap past the end. */
static uint32_t
home_of_key(uint32_t key)
{
	return (SIZE - 6 + key % 9) & MASK;
}

static uint32_t
home_of(const void *ctx, uint32_t entry)
{
	(void)ctx;
	return home_of_key(entry - 1);
}

static int64_t
find(const uint32_t *table, uint32_t key)
{
	for (uint32_t i = home_of_key(key);; i = (i + 1) & MASK) {
		if (table[i] == 0)
			return -1;
		if (table[i] == key + 1)
			return i;
	}
}

Test(probe, deletion_keeps_every_chain_exact)
{
	uint64_t seed = seed_base();
	struct seed_rng rng;
	uint32_t table[SIZE] = { 0 };
	bool present[KEYS] = { false };
	uint32_t count = 0;

	seed_rng_init(&rng, seed);
	for (uint32_t step = 0; step < 20000; step++) {
		uint32_t key = (uint32_t)seed_rng_below(&rng, KEYS);
		int64_t at = find(table, key);

		cr_assert_eq(at >= 0, present[key], "seed %llu step %u key %u",
			     (unsigned long long)seed, step, key);
		if (at >= 0) {
			probe_unlink_u32(table, MASK, (uint32_t)at, home_of, NULL);
			present[key] = false;
			count--;
		} else {
			uint32_t i = home_of_key(key);

			while (table[i] != 0)
				i = (i + 1) & MASK;
			table[i] = key + 1;
			present[key] = true;
			count++;
		}
		for (uint32_t k = 0; k < KEYS; k++)
			cr_assert_eq(find(table, k) >= 0, present[k], "seed %llu step %u key %u",
				     (unsigned long long)seed, step, k);
	}
	cr_assert_leq(count, KEYS);
}

Test(probe, may_fill_is_the_cyclic_test)
{
	/* Hole 10: an entry at 12 whose home is 11 stays; home 10 or 9 moves back. */
	cr_assert_not(probe_may_fill(10, 12, 11, MASK));
	cr_assert_not(probe_may_fill(10, 12, 12, MASK));
	cr_assert(probe_may_fill(10, 12, 10, MASK));
	cr_assert(probe_may_fill(10, 12, 9, MASK));
	/* Across the end: hole 62, entry at 1 with home 63 stays, home 62 or 61 moves. */
	cr_assert_not(probe_may_fill(62, 1, 63, MASK));
	cr_assert_not(probe_may_fill(62, 1, 0, MASK));
	cr_assert(probe_may_fill(62, 1, 62, MASK));
	cr_assert(probe_may_fill(62, 1, 61, MASK));
}
