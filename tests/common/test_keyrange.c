/*
 * keyrange: the one shard lookup (common/keyrange.h). Every edge of every range,
 * keys in gaps, below the first and above the last range, ranges crowded into one
 * top-byte bucket or sharing their top 64 bits, the empty index, and the refusals
 * (unsorted, overlapping, start > end); random layouts against a linear scan.
 */
#include <errno.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "common/keyrange.h"
#include "tests/support/seed.h"

/* Ranges in the random layouts: enough to fill many buckets and crowd some. */
#define RANDOM_RANGES_MAX 3000u

struct fixture {
	struct keyrange_index index;
	void *block;
};

static struct keyrange *
fixture_open(struct fixture *f, uint32_t count)
{
	f->block = aligned_alloc(16, keyrange_index_size(count));
	cr_assert_not_null(f->block);
	return keyrange_index_place(&f->index, f->block, count);
}

static void
fixture_close(struct fixture *f)
{
	free(f->block);
}

/* The position holding `key` by a scan, or -1. */
static int64_t
scan(const struct keyrange_index *index, hashkey_t key)
{
	for (uint32_t i = 0; i < index->count; i++)
		if (key >= index->ranges[i].start && key <= index->ranges[i].end)
			return i;
	return -1;
}

Test(keyrange, finds_every_edge_of_an_equal_partition)
{
	struct fixture f;
	struct keyrange *r = fixture_open(&f, 16);

	for (uint32_t i = 0; i < 16; i++)
		r[i] = (struct keyrange){ hashkey_range_start(i, 16),
			i + 1 < 16 ? hashkey_range_start(i + 1, 16) - 1 : HASHKEY_MAX };
	cr_assert_eq(keyrange_index_seal(&f.index), 0);
	for (uint32_t i = 0; i < 16; i++) {
		cr_assert_eq(keyrange_find(&f.index, r[i].start), i);
		cr_assert_eq(keyrange_find(&f.index, r[i].end), i);
		cr_assert_eq(keyrange_find(&f.index, r[i].start + (r[i].end - r[i].start) / 2), i);
	}
	cr_assert_eq(keyrange_find(&f.index, 0), 0);
	cr_assert_eq(keyrange_find(&f.index, HASHKEY_MAX), 15);
	fixture_close(&f);
}

Test(keyrange, gaps_and_outside_are_not_found)
{
	struct fixture f;
	struct keyrange *r = fixture_open(&f, 3);

	/* Three ranges in one bucket sharing their top 64 bits, with gaps around them. */
	r[0] = (struct keyrange){ 100, 199 };
	r[1] = (struct keyrange){ 300, 300 };
	r[2] = (struct keyrange){ 302, 400 };
	cr_assert_eq(keyrange_index_seal(&f.index), 0);
	cr_assert_eq(keyrange_find(&f.index, 0), -1, "below the first range");
	cr_assert_eq(keyrange_find(&f.index, 99), -1);
	cr_assert_eq(keyrange_find(&f.index, 100), 0);
	cr_assert_eq(keyrange_find(&f.index, 199), 0);
	cr_assert_eq(keyrange_find(&f.index, 200), -1, "a gap");
	cr_assert_eq(keyrange_find(&f.index, 300), 1);
	cr_assert_eq(keyrange_find(&f.index, 301), -1, "a one-key gap");
	cr_assert_eq(keyrange_find(&f.index, 302), 2);
	cr_assert_eq(keyrange_find(&f.index, 401), -1, "above the last range");
	cr_assert_eq(keyrange_find(&f.index, HASHKEY_MAX), -1);
	cr_assert_eq(keyrange_find(&f.index, (hashkey_t)1 << 64 | 150), -1, "same low bits");
	fixture_close(&f);
}

Test(keyrange, the_empty_index_finds_nothing)
{
	struct fixture f;

	fixture_open(&f, 0);
	cr_assert_eq(keyrange_index_seal(&f.index), 0);
	cr_assert_eq(keyrange_find(&f.index, 0), -1);
	cr_assert_eq(keyrange_find(&f.index, HASHKEY_MAX), -1);
	fixture_close(&f);
}

Test(keyrange, refuses_unsorted_overlapping_and_inverted_ranges)
{
	static const struct keyrange bad[][2] = {
		{ { 200, 300 }, { 100, 150 } },   /* Unsorted. */
		{ { 100, 200 }, { 200, 300 } },   /* Overlapping by one key. */
		{ { 100, 200 }, { 150, 160 } },   /* Nested. */
		{ { 300, 200 }, { 400, 500 } },   /* start > end. */
	};

	for (size_t c = 0; c < sizeof(bad) / sizeof(bad[0]); c++) {
		struct fixture f;
		struct keyrange *r = fixture_open(&f, 2);

		r[0] = bad[c][0];
		r[1] = bad[c][1];
		cr_assert_eq(keyrange_index_seal(&f.index), -EINVAL, "case %zu", c);
		fixture_close(&f);
	}
}

static int
hashkey_cmp(const void *a, const void *b)
{
	hashkey_t x = *(const hashkey_t *)a;
	hashkey_t y = *(const hashkey_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorted distinct cuts -> ranges [cut i, cut i+1 - 1], one in five dropped (a gap). */
static uint32_t
ranges_from_cuts(struct seed_rng *rng, const hashkey_t *cuts, uint32_t count,
		 struct keyrange *r)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < count; i++) {
		hashkey_t end = i + 1 < count ? cuts[i + 1] - 1 : HASHKEY_MAX;

		if (i > 0 && cuts[i] == cuts[i - 1])
			continue;
		if (seed_rng_below(rng, 5) == 0)
			continue;
		r[n++] = (struct keyrange){ cuts[i], end };
	}
	return n;
}

/* Random cuts, some ranges dropped (gaps), some crowded under one top byte. */
Test(keyrange, random_layouts_agree_with_a_scan)
{
	struct seed_rng rng;

	seed_rng_init(&rng, seed_base());
	for (int round = 0; round < 40; round++) {
		uint32_t count = 1 + (uint32_t)seed_rng_below(&rng, RANDOM_RANGES_MAX);
		hashkey_t *cuts = calloc(count, sizeof(*cuts));
		struct keyrange *scratch = calloc(count, sizeof(*scratch));
		struct keyrange *r;
		struct fixture f;
		uint32_t n;

		cr_assert(cuts != NULL && scratch != NULL);
		for (uint32_t i = 0; i < count; i++) {
			hashkey_t key = (hashkey_t)seed_rng_next(&rng) << 64 | seed_rng_next(&rng);

			/* Crowded rounds: all under top byte 0x80, many sharing top 64 bits. */
			cuts[i] = round % 2 == 1 ? ((hashkey_t)0x80 << 120) | (key >> 72) : key;
		}
		qsort(cuts, count, sizeof(*cuts), hashkey_cmp);
		n = ranges_from_cuts(&rng, cuts, count, scratch);
		r = fixture_open(&f, n);
		for (uint32_t i = 0; i < n; i++)
			r[i] = scratch[i];
		cr_assert_eq(keyrange_index_seal(&f.index), 0);
		for (uint32_t k = 0; k < 4000; k++) {
			hashkey_t key = (hashkey_t)seed_rng_next(&rng) << 64 | seed_rng_next(&rng);

			if (n > 0 && k % 2 == 0) {  /* An edge of a range, or just outside it. */
				const struct keyrange *e = &r[seed_rng_below(&rng, n)];

				key = k % 4 == 0 ? e->start - (k % 8 == 0) : e->end + (k % 8 == 2);
			}
			cr_assert_eq(keyrange_find(&f.index, key), scan(&f.index, key),
				     "TEST_SEED=%llu round %d key %u",
				     (unsigned long long)seed_base(), round, k);
		}
		fixture_close(&f);
		free(scratch);
		free(cuts);
	}
}
