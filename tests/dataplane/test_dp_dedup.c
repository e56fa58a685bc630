/*
 * dp_dedup: a worker's producer table on its own (no EAL needed): claim and
 * lookup, limit + 1 refused without evicting anyone, reclaim of idle ids only
 * (a few looked at per claim), and the open-addressing hash staying exact
 * through many reclaims (every remaining id found, every reclaimed one gone).
 */
#include <stdint.h>

#include <criterion/criterion.h>

#include "dataplane/dp_dedup.h"
#include "tests/support/seed.h"

#define IDLE_TSC 1000u

static struct dp_dedup_table table;

static void
teardown(void)
{
	dp_dedup_fini(&table);
}

TestSuite(dp_dedup, .fini = teardown, .timeout = 20);

Test(dp_dedup, claims_then_finds_the_same_window)
{
	struct frame_dedup *d;

	cr_assert_eq(dp_dedup_init(&table, 4, IDLE_TSC), 0);
	cr_assert_null(dp_dedup_find(&table, 7), "an empty table knows no id");
	d = dp_dedup_claim(&table, 7, 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->producer_id, 7);
	cr_assert_eq(dp_dedup_find(&table, 7), d);
	cr_assert_null(dp_dedup_find(&table, 8));
	cr_assert_eq(dp_dedup_claim(&table, 7, 5), d, "a known id keeps its window");
	cr_assert_eq(table.count, 1);
}

Test(dp_dedup, a_full_table_refuses_a_new_id_and_evicts_nobody)
{
	cr_assert_eq(dp_dedup_init(&table, 4, IDLE_TSC), 0);
	for (uint64_t id = 1; id <= 4; id++)
		cr_assert_not_null(dp_dedup_claim(&table, id, 0));
	/* Idle exactly IDLE_TSC is not idle enough. */
	cr_assert_null(dp_dedup_claim(&table, 5, IDLE_TSC), "limit + 1 is refused");
	cr_assert_null(dp_dedup_find(&table, 5));
	for (uint64_t id = 1; id <= 4; id++)
		cr_assert_not_null(dp_dedup_find(&table, id), "id %lu kept", (unsigned long)id);
}

Test(dp_dedup, reclaims_only_idle_windows)
{
	cr_assert_eq(dp_dedup_init(&table, 4, IDLE_TSC), 0);
	for (uint64_t id = 1; id <= 4; id++)
		cr_assert_not_null(dp_dedup_claim(&table, id, 0));
	/* Id 2 sends again: it is not idle at IDLE_TSC + 1, ids 1, 3 and 4 are. */
	cr_assert_not_null(dp_dedup_claim(&table, 2, IDLE_TSC));
	cr_assert_not_null(dp_dedup_claim(&table, 5, IDLE_TSC + 1));
	cr_assert_not_null(dp_dedup_claim(&table, 6, IDLE_TSC + 1));
	cr_assert_null(dp_dedup_find(&table, 1), "idle id 1 gave its window up");
	cr_assert_not_null(dp_dedup_find(&table, 2), "the busy id kept its window");
	cr_assert_null(dp_dedup_find(&table, 3), "idle id 3 gave its window up");
	cr_assert_not_null(dp_dedup_find(&table, 4));
	cr_assert_not_null(dp_dedup_find(&table, 5));
	cr_assert_not_null(dp_dedup_find(&table, 6));
	cr_assert_eq(dp_dedup_find(&table, 6)->producer_id, 6, "a reclaimed window starts anew");
}

/* A claim looks at DP_PRODUCER_RECLAIM_SCAN windows: an idle one further on takes two claims. */
Test(dp_dedup, looks_at_a_bounded_number_of_windows_per_claim)
{
	uint32_t max = 2 * DP_PRODUCER_RECLAIM_SCAN;
	uint64_t idle_id = DP_PRODUCER_RECLAIM_SCAN + 4;

	cr_assert_eq(dp_dedup_init(&table, max, IDLE_TSC), 0);
	for (uint64_t id = 1; id <= max; id++)
		cr_assert_not_null(dp_dedup_claim(&table, id, 0));
	for (uint64_t id = 1; id <= max; id++)
		if (id != idle_id)
			cr_assert_not_null(dp_dedup_claim(&table, id, IDLE_TSC));
	cr_assert_null(dp_dedup_claim(&table, 1000, IDLE_TSC + 1), "none idle among the first");
	cr_assert_not_null(dp_dedup_claim(&table, 1000, IDLE_TSC + 1), "the scan moved on");
	cr_assert_null(dp_dedup_find(&table, idle_id));
}

/* Random ids (colliding homes), then half the table reclaimed: the hash stays exact. */
Test(dp_dedup, stays_exact_through_many_reclaims)
{
	enum { MAX = 1000, NEW = MAX / 2 };
	static uint64_t ids[MAX];
	uint64_t seed = seed_base();
	struct seed_rng rng;

	seed_rng_init(&rng, seed);
	cr_assert_eq(dp_dedup_init(&table, MAX, IDLE_TSC), 0);
	for (uint32_t i = 0; i < MAX; i++) {
		/* Nonzero and distinct from the ids claimed below (high bit clear). */
		ids[i] = ((seed_rng_next(&rng) >> 1) | 1) + MAX;
		if (dp_dedup_find(&table, ids[i]) != NULL) {
			i--;
			continue;
		}
		cr_assert_not_null(dp_dedup_claim(&table, ids[i], 0), "seed %lu",
				   (unsigned long)seed);
	}
	/* Everyone idle now: each new id takes back the next window in turn. */
	for (uint64_t n = 1; n <= NEW; n++)
		cr_assert_not_null(dp_dedup_claim(&table, n, IDLE_TSC + 1), "seed %lu",
				   (unsigned long)seed);
	for (uint32_t i = 0; i < MAX; i++) {
		struct frame_dedup *d = dp_dedup_find(&table, ids[i]);

		if (i < NEW)
			cr_assert_null(d, "reclaimed id at window %u still found (seed %lu)", i,
				       (unsigned long)seed);
		else
			cr_assert(d != NULL && d->producer_id == ids[i],
				  "id at window %u lost (seed %lu)", i, (unsigned long)seed);
	}
	for (uint64_t n = 1; n <= NEW; n++)
		cr_assert_not_null(dp_dedup_find(&table, n), "new id %lu lost (seed %lu)",
				   (unsigned long)n, (unsigned long)seed);
}
