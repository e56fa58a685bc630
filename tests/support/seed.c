/* seed.c - splitmix64: small, fast, and every seed is a full-period stream. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "tests/support/seed.h"

uint64_t
seed_base(void)
{
	static uint64_t base;
	static int ready;
	const char *env;

	if (ready)
		return base;
	env = getenv("TEST_SEED");
	base = env != NULL ? strtoull(env, NULL, 0) : clock_real_ns();
	ready = 1;
	fprintf(stderr, "test seed: TEST_SEED=%" PRIu64 "\n", base);
	return base;
}

void
seed_rng_init(struct seed_rng *rng, uint64_t seed)
{
	rng->state = seed;
}

uint64_t
seed_rng_next(struct seed_rng *rng)
{
	uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint64_t
seed_rng_below(struct seed_rng *rng, uint64_t bound)
{
	assert(bound > 0);
	return seed_rng_next(rng) % bound;
}
