/*
 * dp_hash.h - the hash keys of one RX burst's records (private to dataplane/).
 *
 * Interface: queue the records of each frame as its datagram arrives
 * (dp_hash_queue_frame), then at the burst's end compute them all
 * (dp_hash_compute): hashes[i] is then the hash key of queued record i.
 * dp_hash_reset() empties the burst for the next one.
 *
 * A record's hash key is the producer's when it gave one; else the MD5 of its
 * partition key, first looked up in a direct-mapped cache of recent keys (the
 * entry is prefetched when the datagram arrives and compared at the burst's
 * end), then the misses' MD5s computed together in SIMD lanes (common/md5x.h).
 * A key repeated within the burst is hashed once.
 *
 * Memory: dp_hash_init() allocates everything; nothing is allocated afterwards.
 */
#ifndef SLUICE_DP_HASH_H
#define SLUICE_DP_HASH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/hashkey.h"
#include "protocol/frame.h"

#define DP_HELD_RECORDS 1024        /* Records of one burst's held frames (keys, MD5 jobs). */
#define DP_KEY_CACHE_SIZE 4096      /* Partition key -> MD5, direct mapped. */
#define DP_KEY_CACHE_KEY_MAX 46

struct dp_key_cache_entry {
	hashkey_t hash;
	uint16_t size;              /* 0: empty. */
	uint8_t key[DP_KEY_CACHE_KEY_MAX];
	uint32_t job;               /* MD5 job + 1 computing `hash` this burst; 0: hash valid. */
};

/*
 * The burst's partition keys: cache lookups (lookup_*), then the misses' MD5
 * jobs. `dst` is the record's index in hashes[].
 */
struct dp_md5_jobs {
	const uint8_t *lookup_keys[DP_HELD_RECORDS];
	uint16_t lookup_sizes[DP_HELD_RECORDS];
	uint32_t lookup_dst[DP_HELD_RECORDS];
	uint32_t lookup_index[DP_HELD_RECORDS];
	uint32_t lookup_count;
	const uint8_t *keys[DP_HELD_RECORDS];
	uint32_t sizes[DP_HELD_RECORDS];
	uint32_t dst[DP_HELD_RECORDS];
	uint32_t cache_index[DP_HELD_RECORDS]; /* UINT32_MAX: key too long to cache. */
	uint8_t digests[DP_HELD_RECORDS][16];
	uint32_t alias_dst[DP_HELD_RECORDS];  /* A repeated key of the burst: hashes[dst] ... */
	uint32_t alias_job[DP_HELD_RECORDS];  /* ... = the result of this job. */
	uint32_t count;
	uint32_t alias_count;
};

struct dp_hash {
	struct dp_key_cache_entry *key_cache; /* DP_KEY_CACHE_SIZE */
	struct dp_md5_jobs *jobs;
	hashkey_t *hashes;          /* DP_HELD_RECORDS: hash key per queued record. */
	uint32_t count;             /* Records queued this burst: hashes[0 .. count). */
};

/* What one dp_hash_compute() did, for the worker's counters. */
struct dp_hash_counts {
	uint32_t md5_computed;
	uint32_t cache_hits;
};

int dp_hash_init(struct dp_hash *h);
void dp_hash_fini(struct dp_hash *h);

/* Is there room to queue `record_count` more records this burst? */
static inline bool
dp_hash_has_room(const struct dp_hash *h, uint32_t record_count)
{
	return h->count + record_count <= DP_HELD_RECORDS;
}

/*
 * Queues every record of `fr` (room checked by the caller); returns the index
 * in hashes[] of its first record. The keys must stay valid until the
 * burst's dp_hash_compute().
 */
uint32_t dp_hash_queue_frame(struct dp_hash *h, const struct frame_records *fr);
/* Every queued record's hash key into hashes[]. */
void dp_hash_compute(struct dp_hash *h, struct dp_hash_counts *counts_out);
/* Forgets the burst's records (the key cache stays). */
void dp_hash_reset(struct dp_hash *h);

#endif /* SLUICE_DP_HASH_H */
