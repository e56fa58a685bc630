/*
 * cluster.h - cluster/'s public header (issue 15, docs/CLUSTER.md): the etcd
 * client (cluster/etcd.h, included), shard placement as a pure function, and
 * membership: nodes registered under leases, one elected controller that
 * writes the placement to etcd, fenced by its election key.
 *
 * Node ids are small positive integers (0 means "none"); a shard is named by
 * (stream, index) and placed on `replication_factor` nodes, one of which
 * leads. A replica that is not in the shard's in-sync set is catching up: it
 * neither counts toward the in-sync set nor may lead until it has caught up
 * (the shard's leader adds it to the in-sync set; that step belongs to the
 * replication wiring, not built yet).
 */
#ifndef SLUICE_CLUSTER_H
#define SLUICE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/etcd.h"

/* Nodes in one cluster (placement's scratch arrays are this size). */
#define CLUSTER_NODES_MAX 64u
/* replication_factor bounds; 0 asks for the default (3, or fewer nodes). */
#define CLUSTER_REPLICATION_FACTOR_MAX 5u
#define CLUSTER_REPLICATION_FACTOR_DEFAULT 3u
/*
 * A shard's replica set during a move holds its target replicas plus the
 * in-sync ones it is leaving (kept until the targets have caught up).
 */
#define CLUSTER_REPLICA_SET_MAX (2u * CLUSTER_REPLICATION_FACTOR_MAX)
/* Shards one controller places. */
#define CLUSTER_SHARDS_MAX 4096u
/* Leader/replica balancing moves per computation (each strictly improves; a bound, not a tuning). */
#define PLACEMENT_MOVES_MAX (4u * CLUSTER_SHARDS_MAX)

/* ---- Placement (cluster/placement.c): a pure function, no I/O, no clock. */

struct placement_node {
	uint32_t id;               /* > 0, unique. */
	bool draining;             /* Loses its leaderships first, then its replicas. */
};

struct placement_shard {
	uint32_t replicas[CLUSTER_REPLICA_SET_MAX];
	uint32_t replica_count;
	uint32_t isr[CLUSTER_REPLICA_SET_MAX];   /* In-sync replicas: a subset of replicas. */
	uint32_t isr_count;
	uint32_t leader;           /* 0: none (no live in-sync replica). */
	int64_t leader_epoch;      /* Grows by one with every new leader; 0: never led. */
};

/*
 * From the live nodes and the shards' current state, the target state of
 * every shard (out[i] for cur[i]; out may not alias cur):
 *
 *  - replication_factor (0: default) replicas on non-draining nodes, fewer
 *    when fewer nodes; a shard keeps the replicas still live and allowed;
 *  - a replica it adds is catching up (not in the in-sync set); a replica it
 *    leaves (draining node, rebalancing) stays while in sync until every
 *    target replica has caught up, so the in-sync copies never drop;
 *  - the leader is always in the in-sync set, preferably not on a draining
 *    node nor on a replica being left; none when no in-sync replica is live
 *    (no unclean election: the shard waits for one to come back, and keeps
 *    the dead in-sync replicas on record meanwhile);
 *  - leaders, then replicas, balanced over non-draining nodes (max - min <= 1
 *    where the in-sync sets allow it) with as few moves as possible;
 *  - a shard never placed (no replicas, epoch 0) starts with every replica in
 *    sync (an empty log has nothing to catch up);
 *  - leader_epoch + 1 whenever the leader changes to a node.
 *
 * Same input, same output. -EINVAL: a node id 0 or repeated, too many
 * nodes, shards or replicas, an in-sync replica outside the replica set.
 */
int placement_compute(const struct placement_node *nodes, uint32_t node_count,
		      uint32_t replication_factor, const struct placement_shard *cur,
		      uint32_t shard_count, struct placement_shard *out);

bool placement_has(const uint32_t *ids, uint32_t count, uint32_t id);

/* ---- Membership and controller on etcd (cluster/membership.c). */

#define CLUSTER_NAME_SIZE 64u
#define CLUSTER_ADDR_SIZE 64u
#define CLUSTER_STREAM_NAME_SIZE 129u          /* Kinesis: 128 characters. */
/* Lease TTL bounds (etcd raises 1 s to 2 s); the default follows cluster.md §2 (>= 3x etcd's failover). */
#define CLUSTER_LEASE_TTL_S_MIN 2u
#define CLUSTER_LEASE_TTL_S_MAX 60u
#define CLUSTER_LEASE_TTL_S_DEFAULT 6u

struct cluster_config {
	const char *etcd_endpoints;  /* "http://127.0.0.1:2379,..." */
	const char *cluster;         /* Key prefix: /sluice/<cluster>/ */
	uint32_t node_id;
	const char *addr;            /* Replication link address (host:port). */
	const char *api_addr;        /* Kinesis API. */
	const char *dp_addr;         /* Dataplane. */
	uint32_t lease_ttl_s;        /* 0: default. */
	uint32_t replication_factor; /* 0: default. */
};

struct cluster_member;

/*
 * Registers the node (/sluice/<cluster>/nodes/<id> under a lease it keeps
 * alive) and starts its thread: keepalives, campaigning for controller,
 * and while controller, watching nodes and streams and writing placement.
 * -EINVAL bad config, -EEXIST the id is registered by a live node, etcd's
 * errors, -ENOMEM.
 */
int cluster_member_start(const struct cluster_config *config, struct cluster_member **member_out);
/* Stops the thread, resigns, revokes the lease (the node leaves at once). */
void cluster_member_stop(struct cluster_member *member);
/* Stops the thread without a word to etcd: as a crash, the lease expires. */
void cluster_member_abandon(struct cluster_member *member);
/* Marks the node draining (or not) in its registration; the controller moves work off it. */
int cluster_member_drain(struct cluster_member *member, bool draining);

/* One node as registered at /sluice/<cluster>/nodes/<id> (cluster/nodes_etcd.c). */
struct cluster_registration {
	uint32_t id;
	char addr[CLUSTER_ADDR_SIZE];
	char api_addr[CLUSTER_ADDR_SIZE];
	char dp_addr[CLUSTER_ADDR_SIZE];
	bool draining;
	int64_t lease;                 /* The node's lease: the key goes when it expires. */
	int64_t mod_revision;
	bool malformed;                /* A value that cannot be read: only `id` is set. */
};

/* Every registered node (malloc'd array into *nodes_out, free()). */
int cluster_registrations_read(struct etcd_client *client, const char *cluster,
			       struct cluster_registration **nodes_out, uint32_t *count_out);
/*
 * Sets a registered node's draining flag from any process (an operator's
 * drain: what cluster_member_drain does from the node itself), keeping its
 * lease. -ENOENT: not registered; -ESTALE: the key changed meanwhile (read
 * again); -EPROTO: its value is unreadable. A node that registers again
 * (its lease lost) writes its own flag: an operator drains it again.
 */
int cluster_registration_drain(struct etcd_client *client, const char *cluster, uint32_t id,
			       bool draining);

struct cluster_member_status {
	bool controller;
	struct etcd_leader election;   /* Valid when controller: election.rev is the fencing token. */
	uint64_t placements_written;   /* Shard keys this node wrote as controller. */
	uint64_t placement_refused;    /* Its placement txns refused by the fence. */
	uint64_t bad_keys;             /* Unreadable node/stream/placement keys met, per read (skipped). */
	int last_error;
};

void cluster_member_status(struct cluster_member *member, struct cluster_member_status *out);

/* One shard's placement as stored at /sluice/<cluster>/placement/<stream>/<shard>. */
struct cluster_shard {
	char stream[CLUSTER_STREAM_NAME_SIZE];
	uint32_t shard;
	struct placement_shard place;
	int64_t mod_revision;          /* 0: not stored yet. */
	bool malformed;                /* A key or value that cannot be read: place zeroed, skip it. */
};

/*
 * Every stored placement of the cluster (malloc'd array into *shards_out,
 * free()); a key or value of another shape comes back `malformed`.
 */
int cluster_placement_read(struct etcd_client *client, const char *cluster,
			   struct cluster_shard **shards_out, uint32_t *count_out);
/*
 * Writes shards[] in one transaction fenced by `controller` (the election
 * key must still exist with its create_revision) and by each shard key's
 * mod_revision. -ESTALE: the fence or a shard key moved (nothing written);
 * -E2BIG more than fits a transaction (ETCD_TXN_OPS_MAX - 1).
 */
int cluster_placement_write(struct etcd_client *client, const char *cluster,
			    const struct etcd_leader *controller, const struct cluster_shard *shards,
			    uint32_t count);

#endif /* SLUICE_CLUSTER_H */
