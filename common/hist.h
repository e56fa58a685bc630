/*
 * hist.h - a fixed-bucket histogram and counters with one writer each, read
 * from any thread without a lock (the admin listener's /metrics).
 *
 * Bucket i counts values <= base << i (i < HIST_BUCKETS - 1); the last
 * bucket counts the rest. Bases are chosen per use (8 us for fdatasync, 4 KiB
 * for commit windows, 50 us for API latency), so 16 doublings span 4 orders
 * of magnitude and one bucket search is a count-leading-zeros.
 *
 * Concurrency: the one writer does a relaxed load and a relaxed store (no
 * locked instruction on the hot path); readers do relaxed loads. A reader may
 * see a bucket updated before the sum, never a torn value. Counters only grow.
 */
#ifndef SLUICE_HIST_H
#define SLUICE_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 17u

struct hist {
	uint64_t buckets[HIST_BUCKETS];  /* Not cumulative. */
	uint64_t sum;                    /* Of every value added, in the value's unit. */
};

/* Adds `value` to a counter that only this thread writes. */
static inline void
counter_add_single_writer(uint64_t *counter, uint64_t value)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + value,
			 __ATOMIC_RELAXED);
}

static inline uint64_t
counter_read(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Index of the bucket of `value`: the smallest i with value <= base << i. */
static inline uint32_t
hist_bucket_index(uint64_t value, uint64_t base)
{
	uint64_t q = (value + base - 1) / base;  /* value <= base << i  <=>  q <= 1 << i */
	uint32_t i = q <= 1 ? 0 : 64u - (uint32_t)__builtin_clzll(q - 1);

	return i < HIST_BUCKETS - 1 ? i : HIST_BUCKETS - 1;
}

static inline void
hist_add_single_writer(struct hist *h, uint64_t value, uint64_t base)
{
	counter_add_single_writer(&h->buckets[hist_bucket_index(value, base)], 1);
	counter_add_single_writer(&h->sum, value);
}

/* Relaxed copy of a histogram another thread writes. */
static inline void
hist_read(const struct hist *h, struct hist *out)
{
	for (uint32_t i = 0; i < HIST_BUCKETS; i++)
		out->buckets[i] = counter_read(&h->buckets[i]);
	out->sum = counter_read(&h->sum);
}

#endif /* SLUICE_HIST_H */
