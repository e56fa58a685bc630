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
#include "common/hashkey.h"

/* Node ids: 1 .. this (0 means none; [cluster] node_id). */
#define CLUSTER_NODE_ID_MAX 65535u
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

/*
 * The in-sync set, kept by each shard's leader (docs/CLUSTER.md, "The in-sync
 * set"): a follower that has not caught up with the leader's durable end for
 * this long leaves it (Kafka's replica.lag.time.max.ms); one whose acknowledged
 * end reaches the leader's durable end joins it again.
 */
#define CLUSTER_ISR_LAG_MS 3000u
/* How often a leader compares its followers' ends with its own. */
#define CLUSTER_ISR_CHECK_MS 250u

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

/*
 * An operator's unclean election of one shard (docs/CLUSTER.md "Unclean
 * election"; Kafka's kafka-leader-election --election-type unclean), never made
 * by the controller: `node` (0: the first live in-sync replica, else the first
 * live replica in cur's order) leads in leader_epoch + 1 with the in-sync set
 * [node], replicas unchanged. It may lose acknowledged records: those only the
 * missing in-sync replicas held. `live`: the registered node ids;
 * `leader_refuses`: the placed leader refuses to lead in its epoch (its log lacks
 * records it held: refused_epoch). Refused, *out untouched:
 *   -EEXIST     the shard has a leader (placed, and not refusing);
 *   -EBUSY      a live in-sync replica can lead it: the controller elects it (clean);
 *   -EINVAL     `node` is not a replica of the shard;
 *   -EHOSTDOWN  `node` is not live, or (0) no replica is.
 */
int placement_unclean(const struct placement_shard *cur, bool leader_refuses, const uint32_t *live,
		      uint32_t live_count, uint32_t node, struct placement_shard *out);

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
/*
 * Drains the node (or undrains it): its drain intent, drains/<id>, written or
 * removed (cluster_registration_drain); the controller moves work off it.
 */
int cluster_member_drain(struct cluster_member *member, bool draining);

/* One node as registered at /sluice/<cluster>/nodes/<id> (cluster/nodes_etcd.c). */
struct cluster_registration {
	uint32_t id;
	char addr[CLUSTER_ADDR_SIZE];
	char api_addr[CLUSTER_ADDR_SIZE];
	char dp_addr[CLUSTER_ADDR_SIZE];
	bool draining;                 /* drains/<id> exists (not in the registration's value). */
	int64_t lease;                 /* The node's lease: the key goes when it expires. */
	int64_t mod_revision;
	bool malformed;                /* A value that cannot be read: only `id` is set. */
};

/* Every registered node, `draining` from the drain intents (malloc'd *nodes_out, free()). */
int cluster_registrations_read(struct etcd_client *client, const char *cluster,
			       struct cluster_registration **nodes_out, uint32_t *count_out);
/*
 * An operator's drain (what cluster_member_drain does from the node itself):
 * puts /sluice/<cluster>/drains/<id>, a key with no lease, so the intent
 * outlives the node's registration (a restart, a lost lease: the node comes
 * back draining); undraining deletes it. The controller treats a node as
 * draining while the key exists. Draining needs the node registered
 * (-ENOENT: not; -EPROTO: its registration is unreadable), so a mistyped id
 * leaves no intent behind; draining twice keeps the first intent. Undraining
 * works for any id with an intent (a node down for good); -ENOENT when there
 * was none and the node is not registered. -EINVAL: not a node id.
 */
int cluster_registration_drain(struct etcd_client *client, const char *cluster, uint32_t id,
			       bool draining);
/* The node ids with a drain intent, registered or not (malloc'd array into *ids_out, free()). */
int cluster_drains_read(struct etcd_client *client, const char *cluster, uint32_t **ids_out,
			uint32_t *count_out);

struct cluster_member_status {
	bool controller;
	struct etcd_leader election;   /* Valid when controller: election.rev is the fencing token. */
	uint64_t placements_written;   /* Shard keys this node wrote as controller. */
	uint64_t placement_refused;    /* Its placement txns refused by the fence. */
	uint64_t bad_keys;             /* Unreadable keys met, per read (skipped). */
	uint64_t placements_removed;   /* Placements of deleted streams (or shards) removed. */
	uint64_t register_waits;       /* Tries at start that found the node id still registered. */
	uint64_t placement_deferred;   /* Placements put off for nodes to register again (grace). */
	int last_error;
	const char *etcd_endpoint;     /* The etcd URL its lease and election calls go to now. */
};

void cluster_member_status(struct cluster_member *member, struct cluster_member_status *out);

/* Any key the cluster writes: /sluice/<cluster>/placement/<stream>/shardId-<12 digits>. */
#define CLUSTER_KEY_SIZE 256u

/* A compare on one key in a transaction on another (cluster_placement_lead_fence). */
struct cluster_fence {
	char key[CLUSTER_KEY_SIZE];
	struct etcd_compare compare;   /* .key points at key[] above. */
};

/* One shard's placement as stored at /sluice/<cluster>/placement/<stream>/<shard>. */
struct cluster_shard {
	char stream[CLUSTER_STREAM_NAME_SIZE];
	uint32_t shard;
	/*
	 * The stream_id of the stream record it was placed for (0: not known, a
	 * placement written before placements named it). A stream deleted and
	 * created again under its name has a new id (ids are never reused): a
	 * placement naming another id belongs to the old stream, whose log
	 * shards are LOG_SHARD_ID(old id, n), not the new stream's.
	 */
	uint32_t stream_id;
	struct placement_shard place;
	/*
	 * The epoch an operator's unclean election began (placement_unclean): its
	 * leader begins it below records its log lacks (replica_lead_unclean). 0: none.
	 */
	int64_t unclean_epoch;
	/* The epoch whose placed leader refused to lead, the only in-sync replica. 0: none. */
	int64_t refused_epoch;
	int64_t mod_revision;          /* 0: not stored yet. */
	bool malformed;                /* A key or value that cannot be read: place zeroed, skip it. */
	bool remove;                   /* cluster_placement_write: delete the key, do not put it. */
};

/*
 * Every stored placement of the cluster (malloc'd array into *shards_out,
 * free()); a key or value of another shape comes back `malformed`.
 */
int cluster_placement_read(struct etcd_client *client, const char *cluster,
			   struct cluster_shard **shards_out, uint32_t *count_out);
/*
 * Writes shards[] (puts, or deletes those marked `remove`) in one
 * transaction fenced by `controller` (the election key must still exist
 * with its create_revision) and by each shard key's mod_revision. -ESTALE:
 * the fence or a shard key moved (nothing written); -E2BIG more than fits a
 * transaction (ETCD_TXN_OPS_MAX - 1).
 */
int cluster_placement_write(struct etcd_client *client, const char *cluster,
			    const struct etcd_leader *controller, const struct cluster_shard *shards,
			    uint32_t count);

/* ---- Stream metadata on etcd (cluster/streams.c, docs/CLUSTER.md "Stream metadata").
 *
 *   streams/<name>             the whole stream record (JSON, below), shard table included
 *   stream_id                  the last stream id handed out (decimal), bumped with each create
 *   consumers/<stream>/<name>  {"stream_id","created_ms","tags":{},"policy"}
 *
 * The etcd side only: encode, decode, the transactions. Applying it to a node's
 * SQLite cache is control/'s (metadata_cluster.c).
 */

/*
 * One stream record's or consumer's JSON value at most (tags and policy
 * included): under etcd's request limit with room for the transaction around
 * it. A record holds at most CLUSTER_SHARDS_MAX shard indexes (~200 bytes each).
 */
#define CLUSTER_STREAM_VALUE_SIZE_MAX (1u << 20)
/* Tags per record (Kinesis allows 50; decoding allows room, the actions enforce the limit). */
#define CLUSTER_STREAM_TAGS_MAX 200u
/* A compare-and-swap that lost to another writer is redone on fresh state this many times. */
#define CLUSTER_STREAM_CAS_TRIES 8u

enum cluster_shard_state {
	CLUSTER_SHARD_OPEN,
	CLUSTER_SHARD_CLOSING,     /* A reshard closed it; its leader has not recorded the cut. */
	CLUSTER_SHARD_CLOSED,      /* seq_end recorded. */
};

struct cluster_stream_shard {
	uint32_t index;
	hashkey_t start;
	hashkey_t end;
	int64_t parent;            /* Shard index or -1. */
	int64_t adjacent_parent;
	uint64_t created_s;
	enum cluster_shard_state state;
	uint64_t seq_end;
};

/* A tag, a consumer, a policy: malloc'd NUL-terminated strings (cluster_stream_free). */
struct cluster_tag {
	char *key;
	char *value;
};

struct cluster_stream {
	char name[CLUSTER_STREAM_NAME_SIZE];
	uint32_t stream_id;
	uint64_t incarnation;
	uint32_t mode;             /* control/metadata.h's enum metadata_mode. */
	uint32_t retention_hours;
	uint64_t created_ms;
	uint32_t shard_metrics;
	uint32_t max_record_kib;
	uint32_t warm_mibps;
	uint32_t shard_count;      /* Shard indexes ever made: shards[] has this many. */
	struct cluster_stream_shard *shards;
	uint32_t tag_count;
	struct cluster_tag *tags;
	char *policy;              /* The stream's resource policy; NULL: none. */
	/* Encryption at rest: the KeyId as given and the keyring key it resolved to (a
	 * reference: the key material stays in each node's keyring). NULL: off. */
	char *key_ref;
	char *key_name;
	int64_t mod_revision;      /* As read (0: not stored): the compare of an update. */
};

struct cluster_consumer {
	char stream[CLUSTER_STREAM_NAME_SIZE];
	char name[CLUSTER_STREAM_NAME_SIZE];
	uint32_t stream_id;        /* The stream it belongs to (a recreated stream is another). */
	uint64_t created_ms;
	uint32_t tag_count;
	struct cluster_tag *tags;
	char *policy;
	int64_t mod_revision;      /* As read (0: not stored). */
};

void cluster_stream_free(struct cluster_stream *stream);
void cluster_consumer_free(struct cluster_consumer *consumer);

/* The record as JSON (malloc'd, *size_out bytes); -E2BIG past CLUSTER_STREAM_VALUE_SIZE_MAX. */
int cluster_stream_encode(const struct cluster_stream *stream, char **text_out, size_t *size_out);
int cluster_consumer_encode(const struct cluster_consumer *consumer, char **text_out,
			    size_t *size_out);

/* The kinds of key under /sluice/<cluster>/ the stream metadata reads. */
enum cluster_meta_key {
	CLUSTER_META_OTHER,        /* Not stream metadata (nodes, placement, ...). */
	CLUSTER_META_STREAM,
	CLUSTER_META_CONSUMER,
	CLUSTER_META_MALFORMED,    /* Under streams/ or consumers/ but unreadable. */
};

/*
 * Which kind `kv` is; a stream or consumer is decoded into *stream_out /
 * *consumer_out (free them). A deleted key (`deleted`) has no value: only
 * its names are filled.
 */
enum cluster_meta_key cluster_meta_decode(const char *cluster, const struct etcd_kv *kv,
					  bool deleted, struct cluster_stream *stream_out,
					  struct cluster_consumer *consumer_out);

/*
 * Creates streams/<name> (it must not exist) with the next stream id, in one
 * transaction with the id counter (compared on its mod_revision). Fills
 * stream->stream_id; *revision_out is the create's. -EEXIST: the name is
 * taken; -EBUSY: the counter kept moving (CLUSTER_STREAM_CAS_TRIES).
 */
int cluster_stream_create(struct etcd_client *client, const char *cluster,
			  struct cluster_stream *stream, int64_t *revision_out);
/* Reads streams/<name>; -ENOENT absent, -EPROTO unreadable. Free with cluster_stream_free. */
int cluster_stream_get(struct etcd_client *client, const char *cluster, const char *name,
		       struct cluster_stream *stream_out);
/*
 * Writes the record if streams/<name> still has stream->mod_revision and, when
 * `fence` is not NULL, that compare holds too (cluster_placement_lead_fence):
 * -ESTALE: either moved, nothing written; -ENOENT: the stream is gone.
 */
int cluster_stream_put(struct etcd_client *client, const char *cluster,
		       const struct cluster_stream *stream, const struct cluster_fence *fence,
		       int64_t *revision_out);
/* Deletes streams/<name> and its consumers if it still has stream->mod_revision (-ESTALE). */
int cluster_stream_delete(struct etcd_client *client, const char *cluster,
			  const struct cluster_stream *stream, int64_t *revision_out);
/*
 * Puts a consumer (`create`: it must not exist, -EEXIST; else it must still
 * have consumer->mod_revision) in one transaction that also requires the
 * stream key to still have stream->mod_revision (-ESTALE: either moved).
 * `create` with consumers_max > 0: the stream may have at most that many
 * consumers, counted in etcd, not in a node's cache: -EDQUOT when it has them
 * already; the transaction requires that no consumer of the stream was put
 * since the count (-ESTALE: count again), so two nodes registering different
 * names at once cannot both pass a count of max - 1.
 * Deleting: -ENOENT when absent.
 */
int cluster_consumer_put(struct etcd_client *client, const char *cluster,
			 const struct cluster_consumer *consumer,
			 const struct cluster_stream *stream, bool create, uint32_t consumers_max,
			 int64_t *revision_out);
/* Reads consumers/<stream>/<name>; -ENOENT absent, -EPROTO unreadable. */
int cluster_consumer_get(struct etcd_client *client, const char *cluster, const char *stream,
			 const char *name, struct cluster_consumer *consumer_out);
int cluster_consumer_delete(struct etcd_client *client, const char *cluster,
			    const char *stream_name, const char *name, int64_t *revision_out);
/*
 * The shard leader's in-sync update (docs/CLUSTER.md, "The in-sync set"): the
 * shard key's "isr" replaced, the rest kept, by compare-and-swap on
 * `mod_revision`. -ESTALE: the key moved (read again); -ENOENT: gone; -EPROTO:
 * a value that is not an object.
 */
int cluster_placement_isr_write(struct etcd_client *client, const char *cluster, const char *stream,
				uint32_t shard, int64_t mod_revision, const uint32_t *isr,
				uint32_t isr_count);
/*
 * A node placed as the shard's leader that cannot lead it (its log lacks records
 * it must hold first: log_epoch_begin's -ENODATA) steps down: "leader" 0 and
 * itself out of "isr", by the same compare-and-swap on `mod_revision`, so the
 * controller elects another in-sync replica (docs/CLUSTER.md, "The in-sync set").
 * -EBUSY: it is the only in-sync replica (it stays: the shard waits unled rather
 * than lose what only it holds); -EPERM: the key names another leader; else as
 * cluster_placement_isr_write. Nothing is written on any error.
 */
int cluster_placement_resign(struct etcd_client *client, const char *cluster, const char *stream,
			     uint32_t shard, int64_t mod_revision, uint32_t node_id);
/*
 * The placed leader that cannot lead and may not resign (cluster_placement_resign's
 * -EBUSY) says so: "refused_epoch" set to the placement's epoch, by the same
 * compare-and-swap, so an operator's unclean election may replace it (nothing is
 * written when it says so already). -EPERM: the key names another leader.
 */
int cluster_placement_refused(struct etcd_client *client, const char *cluster, const char *stream,
			      uint32_t shard, int64_t mod_revision, uint32_t node_id);
/* cluster_placement_elect's mod_revision: the key as read now. */
#define CLUSTER_REVISION_READ (-1)
/*
 * An operator's unclean election (placement_unclean, whose refusals it answers;
 * -ENOENT: no such placement): the shard key written with the new leader, epoch + 1,
 * "isr" [leader] and "unclean_epoch", by compare-and-swap on `mod_revision`
 * (CLUSTER_REVISION_READ: as read now) and on the elected node's registration
 * (nodes/<id> unchanged: it is live when the key is written). -ESTALE: either moved,
 * nothing written. *out: the placement written.
 */
int cluster_placement_elect(struct etcd_client *client, const char *cluster, const char *stream,
			    uint32_t shard, int64_t mod_revision, uint32_t node_id,
			    struct cluster_shard *out);
/*
 * The compare that fences a shard leader's write to another key in the same
 * transaction (a reshard's cut, docs/CLUSTER.md "Resharding in cluster mode"):
 * reads the shard's placement, checks that it names `node_id` as leader in
 * `epoch` (and stream `stream_id` when it names one), and fills *out with a
 * compare on that key's mod_revision, so the write lands only if the placement
 * did not move meanwhile. -ESTALE: absent, or another leader or epoch (this node
 * is deposed); -EPROTO: unreadable.
 */
int cluster_placement_lead_fence(struct etcd_client *client, const char *cluster,
				 const char *stream, uint32_t shard, uint32_t stream_id,
				 uint32_t node_id, int64_t epoch, struct cluster_fence *out);

#endif /* SLUICE_CLUSTER_H */
