/*
 * cluster_int.h - what cluster/'s membership and placement store share.
 * Private to cluster/ (and its tests).
 */
#ifndef SLUICE_CLUSTER_INT_H
#define SLUICE_CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

/* Any key the cluster writes: /sluice/<cluster>/placement/<stream>/shardId-<12 digits>. */
#define CLUSTER_KEY_SIZE 256u

int cluster_key_shard(char *key, size_t size, const char *cluster, const char *stream,
		      uint32_t shard);
/* The placements among a range's keys (others skipped): cluster_placement_read on a snapshot. */
int cluster_placements_from(const struct etcd_range *r, const char *cluster,
			    struct cluster_shard **shards_out, uint32_t *count_out);

#endif /* SLUICE_CLUSTER_INT_H */
