/*
 * seed.h - seeded randomness for tests. TEST_SEED in the environment replays
 * one run; otherwise the seed comes from the clock. Every failing assertion
 * in a seeded test prints the seed (use seed_str() in the message).
 */
#ifndef SLUICE_TEST_SEED_H
#define SLUICE_TEST_SEED_H

#include <stdint.h>

struct seed_rng {
	uint64_t state;
};

/* The run's base seed: TEST_SEED if set, else derived from the clock (printed once). */
uint64_t seed_base(void);

void seed_rng_init(struct seed_rng *rng, uint64_t seed);
uint64_t seed_rng_next(struct seed_rng *rng);            /* splitmix64 */
uint64_t seed_rng_below(struct seed_rng *rng, uint64_t bound); /* 0 .. bound - 1 */

#endif /* SLUICE_TEST_SEED_H */
