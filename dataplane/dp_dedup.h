/*
 * dp_dedup.h - a worker's producer table (private to dataplane/): the
 * duplicate window (protocol/frame.h, struct frame_dedup) of each producer id
 * the worker has seen, found by id.
 *
 * Contract:
 *   - dp_dedup_find() looks an id up and never changes the table.
 *   - dp_dedup_claim() returns the id's window, else gives the id a free one,
 *     else takes back a window idle longer than idle_tsc (a few looked at per
 *     claim, DP_PRODUCER_RECLAIM_SCAN), else refuses (NULL): a window in use is
 *     never handed to another id, or that producer's retries would be stored
 *     twice.
 *   - Sizes are fixed by dp_dedup_init(); nothing is allocated afterwards.
 *
 * Windows sit in windows[0 .. count); hash maps an id's home (linear probing)
 * to its window + 1 (0 = empty) and has at least twice as many positions as
 * there are windows, so a probe always ends.
 */
#ifndef SLUICE_DP_DEDUP_H
#define SLUICE_DP_DEDUP_H

#include <stdint.h>

#include "protocol/frame.h"

#define DP_PRODUCER_IDLE_S 60       /* A full table may reclaim ids idle this long ... */
#define DP_PRODUCER_RECLAIM_SCAN 8  /* ... looking at this many per new id. */

struct dp_dedup_table {
	struct frame_dedup *windows;    /* windows_max */
	uint64_t *seen_tsc;             /* Last frame of each window's id. */
	uint32_t *hash;                 /* hash_mask + 1 */
	uint32_t hash_mask;
	uint32_t windows_max;
	uint32_t count;                 /* Windows in use: windows[0 .. count). */
	uint32_t hand;                  /* Next window the reclaim scan looks at. */
	uint64_t idle_tsc;              /* Reclaimable after this long without a frame. */
};

/* Room for `windows_max` (>= 1) ids; 0 or -ENOMEM (then nothing is left allocated). */
int dp_dedup_init(struct dp_dedup_table *t, uint32_t windows_max, uint64_t idle_tsc);
void dp_dedup_fini(struct dp_dedup_table *t);
/* The window of `producer_id`, or NULL when it has none. */
struct frame_dedup *dp_dedup_find(const struct dp_dedup_table *t, uint64_t producer_id);
/*
 * The window of `producer_id` (its id marked seen at now_tsc), a new one for
 * an id not seen yet, or NULL when every window is taken and none is idle.
 */
struct frame_dedup *dp_dedup_claim(struct dp_dedup_table *t, uint64_t producer_id,
				   uint64_t now_tsc);

#endif /* SLUICE_DP_DEDUP_H */
