/*
 * dp_hash.c - the hash keys of one RX burst's records (dp_hash.h states the
 * interface): producer-given keys at once, partition keys through the key
 * cache, the misses' MD5s together in SIMD lanes (common/md5x.h, 16 at once
 * with AVX-512) at the burst's end.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_prefetch.h>

#include "common/crc32c.h"
#include "common/md5x.h"
#include "dataplane/dp_hash.h"

static_assert((DP_KEY_CACHE_SIZE & (DP_KEY_CACHE_SIZE - 1)) == 0, "a power of two");

/*
 * Queues the MD5 of a partition key for the burst's SIMD pass. With a cache
 * entry, claims it now (job + 1): a repeat of the key later in the burst
 * shares the job instead of hashing again.
 */
static void
dp_hash_md5_queue(struct dp_hash *h, const uint8_t *key, uint16_t size, uint32_t dst,
		  uint32_t cache_index)
{
	struct dp_md5_jobs *jobs = h->jobs;
	uint32_t j = jobs->count++;

	assert(j < DP_HELD_RECORDS);
	jobs->keys[j] = key;
	jobs->sizes[j] = size;
	jobs->dst[j] = dst;
	jobs->cache_index[j] = cache_index;
	if (cache_index != UINT32_MAX) {
		struct dp_key_cache_entry *e = &h->key_cache[cache_index];

		e->size = size;
		memcpy(e->key, key, size);
		e->job = j + 1;
	}
}

/*
 * One record's hash key into hashes[dst] when the producer gave it; else a
 * key-cache lookup for the burst's end, its entry prefetched now (with
 * thousands of distinct keys the entry is a cache miss, and the misses of
 * a burst overlap this way instead of stalling each datagram in turn).
 */
static void
dp_hash_record(struct dp_hash *h, const struct frame_record *r, uint32_t dst)
{
	struct dp_md5_jobs *jobs = h->jobs;
	const struct dp_key_cache_entry *e;
	uint32_t index;
	uint32_t l;

	if (r->hash_key != NULL) {
		h->hashes[dst] = hashkey_from_be_bytes(r->hash_key);
		return;
	}
	if (r->key_size > DP_KEY_CACHE_KEY_MAX) {
		dp_hash_md5_queue(h, r->key, r->key_size, dst, UINT32_MAX);
		return;
	}
	index = crc32c(0, r->key, r->key_size) & (DP_KEY_CACHE_SIZE - 1);
	e = &h->key_cache[index];
	rte_prefetch0(e);
	rte_prefetch0((const uint8_t *)e + sizeof(*e) - 1);
	l = jobs->lookup_count++;
	jobs->lookup_keys[l] = r->key;
	jobs->lookup_sizes[l] = r->key_size;
	jobs->lookup_dst[l] = dst;
	jobs->lookup_index[l] = index;
}

uint32_t
dp_hash_queue_frame(struct dp_hash *h, const struct frame_records *fr)
{
	struct frame_record_iter it;
	struct frame_record r;
	uint32_t first = h->count;
	uint32_t i = first;

	assert(dp_hash_has_room(h, fr->record_count));
	frame_record_iter_init(&it, fr);
	while (frame_record_iter_next(&it, &r))
		dp_hash_record(h, &r, i++);
	assert(i - first == fr->record_count);
	h->count = i;
	return first;
}

/* The burst's key-cache lookups, in arrival order: hits now, misses to MD5 jobs. */
static uint32_t
dp_hash_key_lookups(struct dp_hash *h)
{
	struct dp_md5_jobs *jobs = h->jobs;
	uint32_t hits = 0;

	for (uint32_t l = 0; l < jobs->lookup_count; l++) {
		const uint8_t *key = jobs->lookup_keys[l];
		uint16_t size = jobs->lookup_sizes[l];
		uint32_t dst = jobs->lookup_dst[l];
		struct dp_key_cache_entry *e = &h->key_cache[jobs->lookup_index[l]];

		if (e->size != size || memcmp(e->key, key, size) != 0) {
			dp_hash_md5_queue(h, key, size, dst, jobs->lookup_index[l]);
			continue;
		}
		hits++;
		if (e->job == 0) {
			h->hashes[dst] = e->hash;
			continue;
		}
		/* The key came earlier in this burst and its MD5 is queued: share the result. */
		jobs->alias_dst[jobs->alias_count] = dst;
		jobs->alias_job[jobs->alias_count++] = e->job - 1;
	}
	jobs->lookup_count = 0;
	return hits;
}

void
dp_hash_compute(struct dp_hash *h, struct dp_hash_counts *counts_out)
{
	struct dp_md5_jobs *jobs = h->jobs;

	counts_out->cache_hits = dp_hash_key_lookups(h);
	if (jobs->count > 0)
		md5x_hash(jobs->keys, jobs->sizes, jobs->count, jobs->digests);
	for (uint32_t j = 0; j < jobs->count; j++) {
		hashkey_t key = hashkey_from_be_bytes(jobs->digests[j]);
		struct dp_key_cache_entry *e;

		h->hashes[jobs->dst[j]] = key;
		if (jobs->cache_index[j] == UINT32_MAX)
			continue;
		/* Unless a later key of the burst took the entry over (it fills it then). */
		e = &h->key_cache[jobs->cache_index[j]];
		if (e->job == j + 1) {
			e->hash = key;
			e->job = 0;
		}
	}
	for (uint32_t a = 0; a < jobs->alias_count; a++)
		h->hashes[jobs->alias_dst[a]] = h->hashes[jobs->dst[jobs->alias_job[a]]];
	counts_out->md5_computed = jobs->count;
	jobs->count = 0;
	jobs->alias_count = 0;
}

void
dp_hash_reset(struct dp_hash *h)
{
	assert(h->jobs->count == 0 && h->jobs->lookup_count == 0);
	h->count = 0;
}

int
dp_hash_init(struct dp_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->key_cache = calloc(DP_KEY_CACHE_SIZE, sizeof(*h->key_cache));
	h->jobs = calloc(1, sizeof(*h->jobs));
	h->hashes = calloc(DP_HELD_RECORDS, sizeof(*h->hashes));
	if (h->key_cache == NULL || h->jobs == NULL || h->hashes == NULL) {
		dp_hash_fini(h);
		return -ENOMEM;
	}
	return 0;
}

void
dp_hash_fini(struct dp_hash *h)
{
	free(h->key_cache);
	free(h->jobs);
	free(h->hashes);
	memset(h, 0, sizeof(*h));
}
