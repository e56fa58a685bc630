/*
 * keyrange.h - hash key -> the range holding it: THE shard lookup. The Kinesis
 * actions route PutRecord(s) with it (a stream's open shards, kinesis_shards.c)
 * and the dataplane's workers route frames with it (each stream's ranges in the
 * published route table, dp_route.c), so both answer the same for every key.
 *
 * An index is built once over disjoint ranges sorted by start and never changes
 * (resharding builds a new one). Keys are split into KEYRANGE_BUCKETS by their top
 * byte: bucket[b] is the last range starting at or below b << 120, so a key's
 * range lies in bucket[b] .. bucket[b + 1]; a dense array of the starts' top 64
 * bits is searched within that window, then at most a few steps back over starts
 * sharing those bits. One step for a few shards, a short search for thousands.
 *
 *   ARRAY       ENTRIES               WHAT
 *   ranges      count                 [start, end], sorted by start, disjoint
 *   start_hi    count                 ranges[i].start >> 64
 *   bucket      KEYRANGE_BUCKETS + 1  see above; all 0 when count is 0
 *
 * The caller owns the memory (keyrange_index_size() for one block); lookups
 * take no lock and write nothing: any number of threads may share an index.
 */
#ifndef SLUICE_KEYRANGE_H
#define SLUICE_KEYRANGE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hashkey.h"

#define KEYRANGE_BUCKETS 256u

struct keyrange {
	hashkey_t start;
	hashkey_t end;
};

/* Readers take it const; keyrange_index_place() and _seal() write what it points to. */
struct keyrange_index {
	struct keyrange *ranges;
	uint64_t *start_hi;
	uint32_t *bucket;
	uint32_t count;
};

/* Bytes keyrange_index_place() needs for `count` ranges (a multiple of 16). */
size_t keyrange_index_size(uint32_t count);

/*
 * Lays an index for `count` ranges out in `block` (keyrange_index_size(count) bytes,
 * 16-byte aligned) and returns the ranges array for the caller to fill, sorted by start;
 * then keyrange_index_seal() computes the rest.
 */
struct keyrange *keyrange_index_place(struct keyrange_index *index, void *block,
				      uint32_t count);

/*
 * Checks the filled ranges (each start <= end, sorted, disjoint) and fills start_hi
 * and bucket. -EINVAL when they are not; the index must not be used then.
 */
int keyrange_index_seal(struct keyrange_index *index);

/* The position of the range holding `key`, or -1 when it falls in no range. */
static inline int64_t
keyrange_find(const struct keyrange_index *index, hashkey_t key)
{
	const struct keyrange *ranges = index->ranges;
	uint64_t key_hi = (uint64_t)(key >> 64);
	uint32_t low;
	uint32_t high;

	if (index->count == 0)
		return -1;
	low = index->bucket[key >> 120];
	high = index->bucket[(key >> 120) + 1];
	if (ranges[low].start > key)
		return -1; /* Below the first range. */
	/* The last range in low .. high whose start's top half is at or below key's ... */
	while (low < high) {
		uint32_t mid = low + (high - low + 1) / 2;

		if (index->start_hi[mid] <= key_hi)
			low = mid;
		else
			high = mid - 1;
	}
	/* ... then back over ranges sharing that top half but starting above key. */
	while (ranges[low].start > key) {
		assert(low > 0);
		low--;
	}
	return key > ranges[low].end ? -1 : (int64_t)low;
}

#endif /* SLUICE_KEYRANGE_H */
