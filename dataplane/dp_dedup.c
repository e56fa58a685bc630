/*
 * dp_dedup.c - a worker's producer table: producer id -> duplicate window
 * (dp_dedup.h states the contract). Windows are per worker: a producer's
 * datagrams come from one address and port, so RSS (or the tap flow hash)
 * keeps them on one queue.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>

#include "common/probe.h"
#include "dataplane/dp_dedup.h"

static uint32_t
dp_dedup_home(const struct dp_dedup_table *t, uint64_t producer_id)
{
	return (uint32_t)((producer_id * 0x9E3779B97F4A7C15ull) >> 32) & t->hash_mask;
}

struct frame_dedup *
dp_dedup_find(const struct dp_dedup_table *t, uint64_t producer_id)
{
	uint32_t h = dp_dedup_home(t, producer_id);

	for (;; h = (h + 1) & t->hash_mask) {
		uint32_t slot = t->hash[h];

		if (slot == 0)
			return NULL;
		if (t->windows[slot - 1].producer_id == producer_id)
			return &t->windows[slot - 1];
	}
}

static uint32_t
dp_dedup_home_of(const void *ctx, uint32_t entry)
{
	const struct dp_dedup_table *t = ctx;

	return dp_dedup_home(t, t->windows[entry - 1].producer_id);
}

/* Empties position `hole` of the hash (common/probe.h: backward shift). */
static void
dp_dedup_unlink(struct dp_dedup_table *t, uint32_t hole)
{
	probe_unlink_u32(t->hash, t->hash_mask, hole, dp_dedup_home_of, t);
}

/*
 * A full table takes back a window whose producer sent nothing for idle_tsc
 * (longer than any retry or signed replay can come late), looking at a few
 * windows per new id so the cost per frame stays bounded.
 */
static bool
dp_dedup_reclaim(struct dp_dedup_table *t, uint64_t now_tsc, uint32_t *slot_out)
{
	for (uint32_t n = 0; n < DP_PRODUCER_RECLAIM_SCAN; n++) {
		uint32_t slot = t->hand;
		uint32_t h;

		t->hand = slot + 1 == t->windows_max ? 0 : slot + 1;
		if (now_tsc - t->seen_tsc[slot] <= t->idle_tsc)
			continue;
		h = dp_dedup_home(t, t->windows[slot].producer_id);
		while (t->hash[h] != slot + 1)
			h = (h + 1) & t->hash_mask;
		dp_dedup_unlink(t, h);
		*slot_out = slot;
		return true;
	}
	return false;
}

struct frame_dedup *
dp_dedup_claim(struct dp_dedup_table *t, uint64_t producer_id, uint64_t now_tsc)
{
	struct frame_dedup *d = dp_dedup_find(t, producer_id);
	uint32_t slot;
	uint32_t h;

	if (d != NULL) {
		t->seen_tsc[d - t->windows] = now_tsc;
		return d;
	}
	if (t->count < t->windows_max)
		slot = t->count++;
	else if (!dp_dedup_reclaim(t, now_tsc, &slot))
		return NULL;
	h = dp_dedup_home(t, producer_id);
	while (t->hash[h] != 0)
		h = (h + 1) & t->hash_mask;
	t->hash[h] = slot + 1;
	frame_dedup_init(&t->windows[slot], producer_id);
	t->seen_tsc[slot] = now_tsc;
	return &t->windows[slot];
}

int
dp_dedup_init(struct dp_dedup_table *t, uint32_t windows_max, uint64_t idle_tsc)
{
	assert(windows_max > 0);
	assert(windows_max <= UINT32_MAX / 4);

	memset(t, 0, sizeof(*t));
	t->windows_max = windows_max;
	t->hash_mask = rte_align32pow2(2 * windows_max) - 1;
	t->idle_tsc = idle_tsc;
	t->windows = calloc(windows_max, sizeof(*t->windows));
	t->seen_tsc = calloc(windows_max, sizeof(*t->seen_tsc));
	t->hash = calloc((size_t)t->hash_mask + 1, sizeof(*t->hash));
	if (t->windows == NULL || t->seen_tsc == NULL || t->hash == NULL) {
		dp_dedup_fini(t);
		return -ENOMEM;
	}
	return 0;
}

void
dp_dedup_fini(struct dp_dedup_table *t)
{
	free(t->windows);
	free(t->seen_tsc);
	free(t->hash);
	memset(t, 0, sizeof(*t));
}
