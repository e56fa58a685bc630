/*
 * probe.h - linear probing in power-of-two tables: deletion by backward shift,
 * so there are no tombstones and every probe chain stays exact. The
 * dataplane's tables (staging batches, dedup windows, TCP connections and
 * sources) share it.
 *
 * Removing the entry at `hole` leaves a gap that would end the probe of every
 * later entry whose chain crossed it. Walking on from the hole to the next
 * empty position, an entry at `i` moves back into the hole unless its home
 * lies cyclically in (hole, i]; the position it left is the new hole.
 */
#ifndef SLUICE_PROBE_H
#define SLUICE_PROBE_H

#include <stdbool.h>
#include <stdint.h>

/* Whether the entry at `i`, whose home is `home`, may move back into `hole`. */
static inline bool
probe_may_fill(uint32_t hole, uint32_t i, uint32_t home, uint32_t mask)
{
	return ((i - home) & mask) >= ((i - hole) & mask);
}

/*
 * Empties position `hole` of a table of uint32 entries (0 = empty, mask + 1
 * positions), moving back the entries whose chains crossed it.
 * home_of(ctx, entry) is an entry's home position; inlined at each caller.
 */
static inline void
probe_unlink_u32(uint32_t *table, uint32_t mask, uint32_t hole,
		 uint32_t (*home_of)(const void *ctx, uint32_t entry), const void *ctx)
{
	for (uint32_t i = (hole + 1) & mask; table[i] != 0; i = (i + 1) & mask) {
		if (probe_may_fill(hole, i, home_of(ctx, table[i]), mask)) {
			table[hole] = table[i];
			hole = i;
		}
	}
	table[hole] = 0;
}

#endif /* SLUICE_PROBE_H */
