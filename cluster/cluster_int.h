/*
 * cluster_int.h - what cluster/'s membership and placement store share.
 * Private to cluster/ (and its tests).
 */
#ifndef SLUICE_CLUSTER_INT_H
#define SLUICE_CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

int cluster_key_shard(char *key, size_t size, const char *cluster, const char *stream,
		      uint32_t shard);
/* The placements among a range's keys (others skipped): cluster_placement_read on a snapshot. */
int cluster_placements_from(const struct etcd_range *r, const char *cluster,
			    struct cluster_shard **shards_out, uint32_t *count_out);

/* A nodes/<id> key's value (malloc'd; NULL without memory): the one encoding (nodes_etcd.c). */
char *cluster_registration_encode(const struct cluster_registration *node);
/*
 * A nodes/<id> key of the cluster into *out: -ENOENT another key, -EINVAL an
 * id that is not a node id (out unusable), -EPROTO a value that is not an
 * object (out->id set, `malformed`).
 */
int cluster_registration_decode(const struct etcd_kv *kv, const char *cluster,
				struct cluster_registration *out);

/* A drains/<id> key of the cluster: its node id; -ENOENT another key, -EINVAL not a node id. */
int cluster_drain_decode(const struct etcd_kv *kv, const char *cluster, uint32_t *id_out);

#endif /* SLUICE_CLUSTER_INT_H */
