/*
 * metadata.h - streams, shards, tags, resource policies and the server secret in SQLite
 * (data_dir/metadata.db, WAL, synchronous=FULL). The only SQLite user in sluiced (the
 * admin thread reads through it too; `sluice backup` copies the file with SQLite's backup API).
 *
 * Every change is one transaction, committed before the caller touches the
 * log, so after a crash SQLite is the truth: shard existence, retention (re-
 * applied to the log at start) and deletions (a stream is removed here first
 * and recorded in pending_deletes; its log data is dropped afterwards, and
 * again at every start until that succeeded).
 *
 * Errors: functions returning int return 0 or a negative errno (-EIO for an
 * SQLite failure, reported with diag_error; -EEXIST for a duplicate name).
 *
 * This header is the metadata interface the Kinesis actions, the route publisher
 * and the admin use; metadata.c is its SQLite implementation (single-node mode).
 * What a backend must give is stated here, not in metadata.c: one transaction per
 * call, and the change events at the end of this header.
 */
#ifndef SLUICE_CONTROL_METADATA_H
#define SLUICE_CONTROL_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hashkey.h"

struct metadata;

enum metadata_mode {
	METADATA_PROVISIONED,
	METADATA_ON_DEMAND,
};

struct metadata_stream {
	uint32_t stream_id;
	uint64_t incarnation;
	const char *name;
	bool deleting;
	enum metadata_mode mode;
	uint32_t retention_hours;
	uint64_t created_ms;
	uint32_t shard_count;
	uint32_t shard_metrics;  /* EnableEnhancedMonitoring's set, a bit per metric. */
	uint32_t max_record_kib; /* UpdateMaxRecordSize (default METADATA_MAX_RECORD_KIB_DEFAULT). */
	uint32_t warm_mibps;     /* UpdateStreamWarmThroughput; 0: none. */
};

/* A stream's MaxRecordSizeInKiB until UpdateMaxRecordSize (AWS: 1 MiB). */
#define METADATA_MAX_RECORD_KIB_DEFAULT 1024

/* The per-stream settings metadata_setting_set() changes. */
enum metadata_setting {
	METADATA_SHARD_METRICS,
	METADATA_MAX_RECORD_KIB,
	METADATA_WARM_MIBPS,
};

struct metadata_shard {
	uint32_t shard_index;
	hashkey_t start;
	hashkey_t end;
	int64_t parent;          /* Shard index or -1. */
	int64_t adjacent_parent; /* Shard index or -1. */
	uint64_t created_s;
	bool closed;
	bool closing;            /* Closed by a reshard whose log close is not recorded yet. */
	uint64_t seq_end;
};

struct metadata_tag {
	const char *key;
	size_t key_size;
	const char *value;
	size_t value_size;
};

/*
 * Opens (creating) data_dir/metadata.db and takes the disk space reserve
 * (data_dir/metadata.reserve) when there is room: the delete path's writes
 * (metadata_stream_deleting, metadata_stream_delete, metadata_pending_delete_done)
 * give it back and retry once when the disk is full. Writes that fail for want of
 * space return -ENOSPC.
 */
int metadata_open(const char *data_dir, struct metadata **md_out);
/*
 * A second handle on the same store for another thread (its own SQLite connection,
 * no disk reserve, no schema work): it reads what `md` committed and shares `md`'s
 * change events. Close it (and its watches) before `md`.
 */
int metadata_open_reader(struct metadata *md, struct metadata **reader_out);
/*
 * A second writing handle for another thread (the cluster cache, which applies
 * etcd's state while the API thread writes through `md`): its own connection
 * (SQLite serialises the two writers; each waits up to its busy timeout), no disk
 * reserve, and its changes are published on `md`'s change events. Close it before `md`.
 */
int metadata_open_writer(struct metadata *md, struct metadata **writer_out);
void metadata_close(struct metadata *md);
/* Takes the reserve again if it was given back (after retention freed space). */
void metadata_reserve_renew(struct metadata *md);
/*
 * Gives the reserve back for another writer that frees space (the log's retention,
 * which must record what it drops before dropping it). True if it was held.
 */
bool metadata_reserve_give(struct metadata *md);

/* The server secret: created (random) on first use, then always the same. */
int metadata_secret(struct metadata *md, uint8_t *secret, size_t size);

typedef int metadata_stream_fn(void *arg, const struct metadata_stream *stream);
typedef int metadata_shard_fn(void *arg, uint32_t stream_id, const struct metadata_shard *shard);

/* Calls `stream_fn` for every stream, then `shard_fn` for every shard (by stream, index). */
int metadata_load(struct metadata *md, metadata_stream_fn *stream_fn,
		  metadata_shard_fn *shard_fn, void *arg);

/*
 * Creates a stream with its shards, tags and settings (shard_metrics,
 * max_record_kib; warm_mibps must be 0) in one transaction. Picks the stream
 * id (never reused) and stores it in stream->stream_id; a stream_id given
 * (not 0) is kept as it is: the cluster cache stores the id etcd handed out,
 * and the local counter moves past it.
 */
int metadata_stream_create(struct metadata *md, struct metadata_stream *stream,
			   const struct metadata_shard *shards, const struct metadata_tag *tags,
			   size_t tag_count);
int metadata_stream_deleting(struct metadata *md, uint32_t stream_id);
/* Removes the stream, its shards and tags; records it in pending_deletes. */
int metadata_stream_delete(struct metadata *md, uint32_t stream_id);
/* Calls `fn(arg, stream_id)` for every stream whose log data may still exist. */
int metadata_pending_deletes(struct metadata *md, int (*fn)(void *arg, uint32_t stream_id),
			     void *arg);
int metadata_pending_delete_done(struct metadata *md, uint32_t stream_id);

int metadata_retention_set(struct metadata *md, uint32_t stream_id, uint32_t hours);
int metadata_mode_set(struct metadata *md, uint32_t stream_id, enum metadata_mode mode);
int metadata_setting_set(struct metadata *md, uint32_t stream_id, enum metadata_setting which,
			 uint32_t value);
/*
 * Account-wide settings: `count` integers under `key` in the meta table. get:
 * -ENOENT when never set.
 */
int metadata_account_get(struct metadata *md, const char *key, int64_t *values, size_t count);
int metadata_account_set(struct metadata *md, const char *key, const int64_t *values,
			 size_t count);

/*
 * One reshard in one transaction: the shards `closing[0 .. closing_count)`
 * become closed with their ending sequence number still unknown (closed = 2,
 * see metadata_shard_closed), `added[0 .. added_count)` are inserted as they
 * are (open, or closed and empty), and the stream's shard count becomes
 * `shard_count`. The caller closes the log shards afterwards; a start that
 * finds closed = 2 does it again (log_shard_close is idempotent).
 */
int metadata_reshard(struct metadata *md, uint32_t stream_id, const uint32_t *closing,
		     size_t closing_count, const struct metadata_shard *added, size_t added_count,
		     uint32_t shard_count);
/* Records a closing shard's ending sequence number (closed = 1). */
int metadata_shard_closed(struct metadata *md, uint32_t stream_id, uint32_t shard_index,
			  uint64_t seq_end);

/*
 * Tags of a stream (resource "") or of one of its consumers (resource = the
 * consumer's name), removed with their resource.
 * put adds or overwrites; -E2BIG when the resource would hold more than `max` tags
 * (nothing changed then).
 */
int metadata_tags_put(struct metadata *md, uint32_t stream_id, const char *resource,
		      const struct metadata_tag *tags, size_t count, uint32_t max);
int metadata_tags_remove(struct metadata *md, uint32_t stream_id, const char *resource,
			 const struct metadata_tag *keys, size_t count);
/*
 * Calls `fn` for up to `limit` tags sorted by key, after `start_after` (NULL:
 * from the first). *more_out tells whether more follow.
 */
int metadata_tags_list(struct metadata *md, uint32_t stream_id, const char *resource,
		       const char *start_after, size_t start_after_size, uint32_t limit,
		       void (*fn)(void *arg, const struct metadata_tag *tag), void *arg,
		       bool *more_out);

/*
 * Resource policies: one per stream (resource "") and per consumer (resource =
 * the consumer's name), removed with the stream. put overwrites; get copies
 * the text NUL-terminated into out (-E2BIG if it needs more than cap bytes);
 * get and delete return -ENOENT when there is none.
 */
int metadata_policy_put(struct metadata *md, uint32_t stream_id, const char *resource,
			const char *policy, size_t size);
int metadata_policy_get(struct metadata *md, uint32_t stream_id, const char *resource, char *out,
			size_t cap, size_t *size_out);
int metadata_policy_delete(struct metadata *md, uint32_t stream_id, const char *resource);
typedef int metadata_policy_fn(void *arg, uint32_t stream_id, const char *resource);
/* Calls `fn` for every stored policy (at open: which streams have one). */
int metadata_policies(struct metadata *md, metadata_policy_fn *fn, void *arg);
/*
 * Stream consumers (RegisterStreamConsumer) with their first tags (`name` NUL-terminated),
 * removed with their stream; remove takes the consumer's tags too. -EEXIST: a duplicate.
 */
int metadata_consumer_add(struct metadata *md, uint32_t stream_id, const char *name,
			  size_t name_size, uint64_t created_ms, const struct metadata_tag *tags,
			  size_t tag_count);
int metadata_consumer_remove(struct metadata *md, uint32_t stream_id, const char *name,
			     size_t name_size);
typedef int metadata_consumer_fn(void *arg, uint32_t stream_id, const char *name,
				 size_t name_size, uint64_t created_ms);
/* Calls `fn` for every consumer, by stream then registration. */
int metadata_consumers_load(struct metadata *md, metadata_consumer_fn *fn, void *arg);

/*
 * Encryption at rest: the KeyId a stream's new records are encrypted under, as
 * given, and the keyring key name it resolved to (key_ref NULL: off). Kept
 * until the stream is deleted.
 */
int metadata_encryption_set(struct metadata *md, uint32_t stream_id, const char *key_ref,
			    const char *key_name);
typedef int metadata_encryption_fn(void *arg, uint32_t stream_id, const char *key_ref,
				   const char *key_name);
/* Calls `fn` for every encrypted stream; a non-zero return from `fn` stops and is returned. */
int metadata_encryption_list(struct metadata *md, metadata_encryption_fn *fn, void *arg);

/* ---- Change events ----------------------------------------------------------------
 *
 * Every committed change that moves the route table (a stream created, marked
 * deleting or removed; a reshard changing the open shards), a shard's end (its
 * close recorded), a stream's retention, mode or settings, a consumer or a resource
 * policy is published by the
 * function that committed it, after the commit: callers cannot forget to announce
 * one. A watch sees the changes of the kinds in its mask as a generation counter
 * (how many so far) and an eventfd that is readable while the counter moved past
 * what metadata_watch_take() returned.
 *
 * A counter, not a queue of events: a watcher rebuilds its view from a full read
 * (metadata_load) anyway, so "something changed since generation g" is all it
 * needs; N changes while it was busy cost one rebuild (they coalesce), the writer
 * never blocks on a slow watcher and nothing can overflow. etcd's revision is the
 * same kind of counter (a cluster backend's watch maps onto it).
 *
 * Threads: the writer publishes on its own thread; a watch is taken on one other
 * thread; open and close from any thread (a mutex the writer holds only to publish).
 */

enum metadata_change {
	METADATA_CHANGE_STREAM_CREATED = 1u << 0,
	METADATA_CHANGE_STREAM_DELETING = 1u << 1,
	METADATA_CHANGE_STREAM_DELETED = 1u << 2,
	METADATA_CHANGE_RESHARDED = 1u << 3,     /* metadata_reshard: open shards changed. */
	METADATA_CHANGE_SHARD_CLOSED = 1u << 4,  /* metadata_shard_closed: an end recorded. */
	/* retention, mode, a setting or encryption (metadata_*_set): a cluster node's Kinesis
	 * layer follows. */
	METADATA_CHANGE_STREAM_UPDATED = 1u << 5,
	/* A consumer added or removed, a resource policy put or deleted: a cluster node's
	 * consumer table and policy index follow (kinesis_cluster.c). */
	METADATA_CHANGE_CONSUMERS = 1u << 6,
	METADATA_CHANGE_POLICIES = 1u << 7,
};
#define METADATA_CHANGE_KINDS 8u
/* The changes that alter the route table (streams not deleting, their open shards). */
#define METADATA_CHANGES_ROUTING (METADATA_CHANGE_STREAM_CREATED | \
				  METADATA_CHANGE_STREAM_DELETING | \
				  METADATA_CHANGE_STREAM_DELETED | METADATA_CHANGE_RESHARDED)
/* Watches on one store at once (the route publisher, tests): a fixed table. */
#define METADATA_WATCHES_MAX 8u

struct metadata_watch;

/* A watch on `mask` (enum metadata_change bits). -ENOSPC past METADATA_WATCHES_MAX. */
int metadata_watch_open(struct metadata *md, uint32_t mask, struct metadata_watch **watch_out);
void metadata_watch_close(struct metadata_watch *watch);
/* Readable (poll POLLIN) while changes of the mask came after the last take (or a kick). */
int metadata_watch_fd(const struct metadata_watch *watch);
/*
 * Clears the fd's readiness and returns the watch's generation: the number of
 * changes of its mask committed so far. Read it BEFORE reading metadata: the
 * read then holds at least every change it counts.
 */
uint64_t metadata_watch_take(struct metadata_watch *watch);
/* Makes the fd readable without a change (the watcher's own stop). */
void metadata_watch_kick(struct metadata_watch *watch);
/* Changes of one kind (a single enum metadata_change bit) published by the store so far. */
uint64_t metadata_changes(struct metadata *md, enum metadata_change kind);

/* ---- Cluster mode (metadata_cluster.c, docs/CLUSTER.md "Stream metadata") ----------
 *
 * etcd holds the truth (cluster/streams.c); this store is the node's cache of it. A
 * thread reads /sluice/<cluster>/ in one range at start (and after a compaction or a
 * watch that ended), then follows a watch, and applies every stream and consumer it
 * meets through the functions above on its own handle (metadata_open_writer): the
 * rest of sluiced reads SQLite as in single-node mode and gets the same change events.
 * A key it cannot read is skipped and counted. Ids and incarnations are etcd's, so
 * every node caches the same ones.
 *
 * Writes go to etcd as one transaction each (compared on the stream key's
 * mod_revision; a lost race is redone on fresh state up to CLUSTER_STREAM_CAS_TRIES
 * times, then -EBUSY), then wait until this node's cache applied that revision
 * (read-your-writes on the node that served the call; other nodes converge within
 * their watch's latency). Errors: the SQLite functions' plus -ENOENT (no such stream
 * or consumer), -EEXIST, -EBUSY, -ETIMEDOUT (the cache did not catch up within
 * METADATA_CLUSTER_WAIT_MS: the change is in etcd and will be applied), etcd's.
 */
#define METADATA_CLUSTER_WAIT_MS 10000u

struct metadata_cluster;

/*
 * Starts the cache on `md` (the writer's handle; it must outlive the cache): reads
 * etcd and applies it before returning (so a node that missed changes while down
 * starts consistent), then follows the watch on its thread. Call after
 * metadata_open and before anything loads the store (kinesis_open). -EEXIST: the
 * store holds streams that are not this cluster's (a single-node data_dir, or
 * another cluster's): nothing is touched; cluster mode starts on an empty data_dir.
 */
int metadata_cluster_start(struct metadata *md, const char *etcd_endpoints, const char *cluster,
			   struct metadata_cluster **mc_out);
void metadata_cluster_stop(struct metadata_cluster *mc);
/*
 * The cluster's one iterator secret (etcd's /sluice/<cluster>/iterator_secret,
 * created with `size` random bytes by the first node that asks): every node signs
 * and checks ShardIterators and NextTokens with it, so an iterator one node gave
 * is good on any node (a client behind a DNS name over all of them). etcd's
 * errors; -EPROTO for a stored secret of another size.
 */
int metadata_cluster_secret(struct metadata_cluster *mc, uint8_t *secret, size_t size);

struct metadata_cluster_status {
	int64_t applied_revision;  /* etcd's revision the cache holds everything up to. */
	uint64_t rereads;          /* Full reads (start, compaction, a watch that ended). */
	uint64_t applied;          /* Stream and consumer keys applied. */
	uint64_t bad_keys;         /* Unreadable keys skipped. */
	uint64_t cuts_fenced;      /* Cut records refused: the placement names another leader. */
	int last_error;
};

void metadata_cluster_status(struct metadata_cluster *mc, struct metadata_cluster_status *out);
/* Waits until the cache applied `revision` (-ETIMEDOUT after METADATA_CLUSTER_WAIT_MS). */
int metadata_cluster_wait(struct metadata_cluster *mc, int64_t revision);

/* stream->name, mode, retention, created_ms, incarnation, settings; fills stream_id. */
int metadata_cluster_stream_create(struct metadata_cluster *mc, struct metadata_stream *stream,
				   const struct metadata_shard *shards,
				   const struct metadata_tag *tags, size_t tag_count);
int metadata_cluster_stream_delete(struct metadata_cluster *mc, const char *name);
int metadata_cluster_retention_set(struct metadata_cluster *mc, const char *name, uint32_t hours);
int metadata_cluster_mode_set(struct metadata_cluster *mc, const char *name,
			      enum metadata_mode mode);
int metadata_cluster_setting_set(struct metadata_cluster *mc, const char *name,
				 enum metadata_setting which, uint32_t value);
/* resource "": the stream's; else the consumer's (NUL-terminated name). */
int metadata_cluster_tags_put(struct metadata_cluster *mc, const char *name, const char *resource,
			      const struct metadata_tag *tags, size_t count, uint32_t max);
int metadata_cluster_tags_remove(struct metadata_cluster *mc, const char *name,
				 const char *resource, const struct metadata_tag *keys,
				 size_t count);
int metadata_cluster_policy_put(struct metadata_cluster *mc, const char *name,
				const char *resource, const char *policy, size_t size);
int metadata_cluster_policy_delete(struct metadata_cluster *mc, const char *name,
				   const char *resource);
/*
 * consumers_max > 0: -EDQUOT when the stream has that many consumers in etcd (counted
 * there, in the create's transaction: cluster_consumer_put), whatever this node's cache
 * shows.
 */
int metadata_cluster_consumer_add(struct metadata_cluster *mc, const char *stream,
				  const char *name, uint64_t created_ms,
				  const struct metadata_tag *tags, size_t tag_count,
				  uint32_t consumers_max);
int metadata_cluster_consumer_remove(struct metadata_cluster *mc, const char *stream,
				     const char *name);
/* Encryption at rest of the stream (key_ref NULL: off): the record's KeyId and key name. */
int metadata_cluster_encryption_set(struct metadata_cluster *mc, const char *name,
				    const char *key_ref, const char *key_name);
/*
 * An account-wide setting (metadata_account_set's) for the whole cluster: etcd's
 * account/<name> (at most 8 integers, each within +-2^53), then every cache's meta
 * table. -EINVAL (too many, a name of 64 bytes or more or with '/'), -ERANGE, etcd's.
 */
int metadata_cluster_account_set(struct metadata_cluster *mc, const char *name,
				 const int64_t *values, size_t count);
/*
 * A reshard as one etcd transaction (docs/CLUSTER.md "Resharding in cluster mode"):
 * on stream `name` (id `stream_id`) still holding `old_count` shard indexes, the
 * shards closing[] become "closing" and added[] (open, indexes old_count on) are
 * appended. -EALREADY: another reshard came first (the count moved or a parent is no
 * longer open), nothing written; -ENOENT: no such stream; -EBUSY: lost every CAS.
 */
int metadata_cluster_reshard(struct metadata_cluster *mc, const char *name, uint32_t stream_id,
			     uint32_t old_count, const uint32_t *closing, size_t closing_count,
			     const struct metadata_shard *added, size_t added_count);
/*
 * The parent's leader records its cut: shard `index` "closing" -> "closed" at seq_end
 * (the second transaction), in the same transaction as a compare on the shard's
 * placement key, which must name `node_id` as its leader in `epoch`. 0 also when it is
 * closed at that seq_end already; -EALREADY: closed at another seq_end (a successor's
 * cut came first); -EINVAL: open; -ESTALE: the placement names another leader or epoch
 * (this node was deposed: nothing written, counted in cuts_fenced).
 */
int metadata_cluster_shard_closed(struct metadata_cluster *mc, const char *name,
				  uint32_t stream_id, uint32_t index, uint64_t seq_end,
				  uint32_t node_id, uint64_t epoch);

#endif /* SLUICE_CONTROL_METADATA_H */
