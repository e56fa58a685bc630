/*
 * md5x: every lane of every kernel equals OpenSSL's MD5() (hashkey_md5):
 * each length 0..300 (one, two, three and more blocks; the 55/56 and 63/64
 * padding edges), seeded random keys of mixed lengths across lanes, and 1 to
 * 16 lanes used. Kernels the CPU lacks are skipped, said so on stderr.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/hashkey.h"
#include "common/md5x.h"
#include "tests/support/seed.h"

#define SIZE_MAX_TESTED 300
#define BATCH 40 /* More than 2 x 16: full groups and a remainder. */

static const enum md5x_impl impls[] = { MD5X_IMPL_SCALAR, MD5X_IMPL_AVX2, MD5X_IMPL_AVX512 };

static void
check_batch(enum md5x_impl impl, const uint8_t *const msgs[], const uint32_t sizes[],
	    uint32_t count, uint64_t seed)
{
	uint8_t got[BATCH][16];
	uint8_t want[16];

	cr_assert_leq(count, BATCH);
	/* A poisoned output: a lane that is not written cannot pass. */
	memset(got, 0xa5, sizeof(got));
	md5x_hash_impl(impl, msgs, sizes, count, got);
	for (uint32_t i = 0; i < count; i++) {
		hashkey_md5(msgs[i], sizes[i], want);
		cr_assert_arr_eq(got[i], want, 16, "%s lane %u of %u, size %u, seed %llu",
				 md5x_impl_name(impl), i, count, sizes[i],
				 (unsigned long long)seed);
	}
}

static bool
skip(enum md5x_impl impl)
{
	if (md5x_impl_supported(impl))
		return false;
	fprintf(stderr, "md5x: %s not supported by this CPU, skipped\n", md5x_impl_name(impl));
	return true;
}

Test(md5x, every_length_in_every_lane)
{
	static uint8_t bytes[SIZE_MAX_TESTED + 16];
	const uint8_t *msgs[BATCH];
	uint32_t sizes[BATCH];

	for (uint32_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 131 + 7);
	for (uint32_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
		if (skip(impls[k]))
			continue;
		/* Lane i of the group gets length base + i: each length visits lanes 0..15. */
		for (uint32_t base = 0; base <= SIZE_MAX_TESTED; base++) {
			uint32_t count = 16;

			for (uint32_t i = 0; i < count; i++) {
				sizes[i] = base + i > SIZE_MAX_TESTED ? base : base + i;
				msgs[i] = bytes + (i % 16);
			}
			check_batch(impls[k], msgs, sizes, count, 0);
		}
	}
}

Test(md5x, random_keys_mixed_lengths_one_to_all_lanes)
{
	uint64_t seed = seed_base();
	struct seed_rng rng;
	static uint8_t pool[BATCH][SIZE_MAX_TESTED];
	const uint8_t *msgs[BATCH];
	uint32_t sizes[BATCH];

	seed_rng_init(&rng, seed);
	for (uint32_t round = 0; round < 200; round++) {
		uint32_t count = 1 + (uint32_t)seed_rng_below(&rng, BATCH);

		for (uint32_t i = 0; i < count; i++) {
			/* Mostly partition-key sizes (one block), sometimes long ones. */
			uint32_t limit = seed_rng_below(&rng, 4) == 0 ? SIZE_MAX_TESTED : 56;

			sizes[i] = (uint32_t)seed_rng_below(&rng, limit + 1);
			for (uint32_t j = 0; j < sizes[i]; j++)
				pool[i][j] = (uint8_t)seed_rng_next(&rng);
			msgs[i] = pool[i];
		}
		for (uint32_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
			if (md5x_impl_supported(impls[k]))
				check_batch(impls[k], msgs, sizes, count, seed);
		}
	}
}

Test(md5x, lane_counts_and_golden_value)
{
	static const uint8_t abc[] = "abc";
	/* RFC 1321's test suite: MD5("abc"). */
	static const uint8_t want[16] = { 0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
					  0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72 };
	const uint8_t *msgs[BATCH];
	uint32_t sizes[BATCH];
	uint8_t got[BATCH][16];

	for (uint32_t i = 0; i < BATCH; i++) {
		msgs[i] = abc;
		sizes[i] = 3;
	}
	for (uint32_t count = 1; count <= BATCH; count++) {
		memset(got, 0, sizeof(got));
		md5x_hash(msgs, sizes, count, got);
		for (uint32_t i = 0; i < count; i++)
			cr_assert_arr_eq(got[i], want, 16, "lane %u of %u (%s)", i, count,
					 md5x_impl_name(md5x_impl_best()));
	}
	cr_assert(md5x_impl_supported(md5x_impl_best()));
	cr_assert_geq(md5x_impl_lanes(md5x_impl_best()), 1);
}
