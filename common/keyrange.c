/* keyrange.c - building the index keyrange.h searches. */
#include <errno.h>
#include <stdint.h>

#include "common/keyrange.h"

/* The block: ranges (16-byte aligned: hashkey_t), then start_hi, then bucket. */
size_t
keyrange_index_size(uint32_t count)
{
	size_t size = (size_t)count * sizeof(struct keyrange) + (size_t)count * sizeof(uint64_t) +
		      (KEYRANGE_BUCKETS + 1) * sizeof(uint32_t);

	/* Rounded up so that blocks laid end to end stay aligned for hashkey_t. */
	return (size + 15u) & ~(size_t)15u;
}

struct keyrange *
keyrange_index_place(struct keyrange_index *index, void *block, uint32_t count)
{
	struct keyrange *ranges = block;
	uint64_t *start_hi = (uint64_t *)(ranges + count);

	assert(((uintptr_t)block & 15u) == 0);
	index->ranges = ranges;
	index->start_hi = start_hi;
	index->bucket = (uint32_t *)(start_hi + count);
	index->count = count;
	return ranges;
}

int
keyrange_index_seal(struct keyrange_index *index)
{
	uint64_t *start_hi = index->start_hi;
	uint32_t *bucket = index->bucket;
	const struct keyrange *r = index->ranges;
	uint32_t last = 0;

	for (uint32_t i = 0; i < index->count; i++) {
		if (r[i].start > r[i].end || (i > 0 && r[i - 1].end >= r[i].start))
			return -EINVAL;
		start_hi[i] = (uint64_t)(r[i].start >> 64);
	}
	for (uint32_t b = 0; b <= KEYRANGE_BUCKETS; b++) {
		hashkey_t low = b == KEYRANGE_BUCKETS ? HASHKEY_MAX : (hashkey_t)b << 120;

		while (last + 1 < index->count && r[last + 1].start <= low)
			last++;
		bucket[b] = last;
	}
	return 0;
}
