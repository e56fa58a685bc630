/*
 * cluster_node.h - private to control/: sluiced as one node of a cluster
 * ([cluster] enabled, docs/CLUSTER.md "sluiced in cluster mode"). It joins the
 * pieces of cluster/ and replica/ around this node's log:
 *
 *   - the replica follower on [cluster] replica_listen (any leader may ship to it);
 *   - the replica leader (links added per shard, replica_lead_set);
 *   - the membership (cluster_member_start: lease, controller campaign, placement);
 *   - the placement watcher thread: on every change under /sluice/<name>/ (and once
 *     a second) it reads placement/ and nodes/, maps (stream, shard index) to the
 *     log's shard id LOG_SHARD_ID(stream id, index) through the local metadata, leads
 *     the shards placed on it in their epochs with their replica sets, and stops
 *     leading the shards it lost (replica_unlead: never acknowledges again).
 *
 * The API thread asks cluster_node_acked() before answering a put, and waits on
 * cluster_node_doorbell_fd() (an eventfd the replica leader rings when a
 * follower's acknowledged end moves or a shard is unled) instead of polling.
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SLUICE_CONTROL_CLUSTER_NODE_H
#define SLUICE_CONTROL_CLUSTER_NODE_H

#include <stdint.h>

#include "control/config.h"
#include "control/metrics.h"
#include "nvme-log/log.h"

struct cluster_node;
struct metadata;

/*
 * Starts the follower, the leader, the membership and the watcher, in that
 * order (a node is registered only once it can take a leader's link). `log`
 * must be opened with watermark_gated; `md` is the actions' metadata (the
 * watcher opens its own reader on it). -EINVAL for a configuration the modules
 * refuse, etcd's errors (-EEXIST: the node id is registered by a live node).
 */
int cluster_node_start(const struct sluice_config *config, struct log *log, struct metadata *md,
		       struct cluster_node **node_out);
/*
 * Stops in the reverse order: the watcher, the membership (resigns, revokes
 * the lease: the controller moves this node's leaderships at once), the leader,
 * the follower. NULL is a no-op.
 */
void cluster_node_stop(struct cluster_node *node);

/*
 * Every record of the log shard below *seq_out is held by the replicas
 * [cluster] acks asks for. -ENOENT: the shard is not led here; -ESTALE: it was,
 * and a newer leader exists (never acknowledge again).
 */
int cluster_node_acked(struct cluster_node *node, uint64_t log_id, uint64_t *seq_out);
/*
 * The leader epoch this node leads the log shard in: the API thread's appends
 * carry it, so the log refuses them once this node promised a newer leader.
 * -ENOENT / -ESTALE as cluster_node_acked.
 */
int cluster_node_lead_epoch(struct cluster_node *node, uint64_t log_id, uint64_t *epoch_out);
/* Records of the log shard below seq_end are durable here: ship them now. */
void cluster_node_durable(struct cluster_node *node, uint64_t log_id, uint64_t seq_end);
/* Readable when an acknowledged end may have moved (read it to reset). */
int cluster_node_doorbell_fd(const struct cluster_node *node);
/*
 * The API address ("host:port", nodes/<id>'s api_addr) of the node the
 * placement names as the log shard's leader, for forwarding a put there.
 * -ENOENT: no placement or leader known, the leader is this node, or it
 * registered no API address. Any thread (under the node's lock).
 */
int cluster_node_leader_api(struct cluster_node *node, uint64_t log_id, char *addr, size_t size);
/*
 * For the dataplane (docs/CLUSTER.md "The dataplane in cluster mode"): 0 and the
 * epoch when the log shard is led here (as cluster_node_lead_epoch); -EREMOTE and
 * the placed leader's dataplane address (nodes/<id>'s dp_addr, host byte order)
 * when another node leads it; -ENOENT when no leader or no IPv4 dp_addr is known.
 * Any thread (under the node's lock).
 */
int cluster_node_dp_lead(struct cluster_node *node, uint64_t log_id, uint64_t *epoch_out,
			 uint32_t *ipv4_out, uint16_t *port_out);
/* The doorbell as a counter raised each time it rings (replica_leader_doorbell_gen). */
const _Atomic uint64_t *cluster_node_doorbell_gen(const struct cluster_node *node);
/*
 * For a read of a log shard this node holds no replica of (docs/CLUSTER.md
 * "Forwarding reads"): the API address of its `nth` holder with an address
 * known, the leader first, then the in-sync followers (a read refused by one goes
 * to the next). -ENOENT: serve it here (this node is one of its replicas, or it is
 * not placed); -EHOSTUNREACH: placed elsewhere, no `nth` holder's address known.
 * Any thread (under the node's lock).
 */
int cluster_node_read_api(struct cluster_node *node, uint64_t log_id, uint32_t nth, char *addr,
			  size_t size);

/* GET /cluster's JSON (docs/CLUSTER.md) and the /metrics families of the node. */
void cluster_node_render_json(struct cluster_node *node, struct metrics_out *out);
void cluster_node_render_metrics(struct cluster_node *node, struct metrics_out *out);

#endif /* SLUICE_CONTROL_CLUSTER_NODE_H */
