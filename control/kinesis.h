/*
 * kinesis.h - private to the Kinesis layer (control/kinesis_*.c): the module
 * state (the in-memory stream table), the operation table's types and the
 * per-call context every handler gets, and the helpers every concern shares.
 * Each concern's own declarations are in its header, included at the end:
 *
 *   HEADER               FILES                                  CONCERN
 *   kinesis_validate.h   kinesis_validate.c                     request decoding, shapes
 *   kinesis_streams.h    kinesis_streams.c, kinesis_settings.c  streams and their settings
 *   kinesis_records.h    kinesis_records.c, _fast.c, _read.c    PutRecord(s), GetRecords
 *   kinesis_shards.h     kinesis_shards.c, _reshard.c, _autoscale.c  shards, resharding
 *   kinesis_tags.h       kinesis_tags.c                         tags
 *   kinesis_policies.h   kinesis_policies.c                     resource policies, access
 *   kinesis_consumers.h  kinesis_consumers.c                    consumers, SubscribeToShard
 *   kinesis_encryption.h kinesis_encryption.c                   encryption at rest
 *
 * kinesis_ops.c holds the one operation table and the dispatcher; kinesis_main.c
 * opens, polls and closes the module. The server sees only control/api.h.
 *
 * Ownership: struct kinesis lives on the server thread. Streams and shards
 * are loaded from SQLite (metadata.c) at open and changed only by actions;
 * SQLite is always written first, then memory, then the log, so a crash at
 * any point leaves SQLite as the truth that the next start re-applies.
 */
#ifndef SLUICE_CONTROL_KINESIS_H
#define SLUICE_CONTROL_KINESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/hashkey.h"
#include "common/keyrange.h"
#include "common/limits.h"
#include "control/api.h"
#include "control/forward.h"
#include "control/iterator.h"
#include "control/keyring.h"
#include "control/kinesis_validate.h"
#include "control/metadata.h"
#include "control/policy.h"

/* PutRecord/PutRecords calls waiting for the log's group commit. */
#define KINESIS_PENDING_MAX 256u
/*
 * PutRecord/PutRecords calls that wait, in arrival order, for a pending slot and the
 * log's batches (kinesis_records.c): at most every call the server can hold
 * (SERVER_CALLS_MAX), and request bodies within [server] put_queue_mb.
 */
#define KINESIS_PUT_WAITS_MAX 16384u
#define KINESIS_PUT_RECORDS_MAX 500u
/* AWS: partition keys of 1..256 Unicode characters (the log bounds bytes: see records.c). */
#define KINESIS_PARTITION_KEY_CHARS_MAX 256
/* AWS: a PutRecords request carries at most 5 MiB of data and partition keys. */
#define KINESIS_PUT_RECORDS_SIZE_MAX (5u * 1024u * 1024u)
#define KINESIS_GET_RECORDS_MAX 10000u
#define KINESIS_GET_RECORDS_SIZE_MAX (10u * 1024u * 1024u)
/* log_read calls of one GetRecords: past the trim horizon, then past lost ranges. */
#define KINESIS_READ_ATTEMPTS_MAX 10u
/* Iterators and NextTokens expire this long after issue (AWS: 300 s). */
#define KINESIS_TOKEN_TTL_MS 300000u
/* AWS: 50 tags a resource, a stream or a consumer alike. */
#define KINESIS_TAGS_PER_STREAM_MAX 50u
#define KINESIS_SHARD_ID_SIZE 21 /* "shardId-" + 12 digits + NUL */
#define KINESIS_ARN_SIZE 768
/* Shards a new ON_DEMAND stream gets (kinesis-mock gives 4 too). */
#define KINESIS_ON_DEMAND_SHARDS 4u
/* UpdateShardCount calls remembered per stream (the rolling 24 h limit's upper bound). */
#define KINESIS_SCALINGS_TRACK 64u

/*
 * KeyIds kept per stream (AWS: up to 2048 characters). A longer one cannot
 * name a keyring key (names are below 256 bytes, ARN prefixes short): it is
 * answered KMSNotFoundException like any unknown key, never stored.
 */
#define KINESIS_KEY_ID_SIZE_MAX 512u

/* A stream's encryption at rest (kinesis_encryption.c). */
struct kinesis_encryption {
	bool on;
	char key_ref[KINESIS_KEY_ID_SIZE_MAX];   /* The KeyId as given (DescribeStream). */
};

enum kinesis_status {
	KINESIS_CREATING,
	KINESIS_ACTIVE,
	KINESIS_UPDATING,
	KINESIS_DELETING,
};

struct kinesis_shard {
	uint32_t index;
	hashkey_t start;
	hashkey_t end;
	int64_t parent;          /* Shard index, or -1. */
	int64_t adjacent_parent; /* Shard index, or -1. */
	uint64_t created_s;      /* Encoded in every sequence number of the shard. */
	bool closed;
	bool close_pending;      /* Closed in SQLite; the log close is not recorded yet. */
	uint64_t seq_end;        /* Last log seq when closed; UINT64_MAX: closed empty. */
	uint64_t closed_s;       /* When closed: its children's creation second. */
	uint64_t log_id;         /* LOG_SHARD_ID(stream_id, index). */
	/* Cluster mode (kinesis_cluster.c): this node's cut of a closed shard it leads. */
	bool cut_queued;         /* Its log close is on the closer thread. */
	bool cut_here;           /* This node's log copy is closed, at cut_end. */
	uint64_t cut_end;        /* Last seq of the copy closed here (UINT64_MAX: empty). */
	uint64_t cut_fenced_epoch;  /* etcd refused its record: deposed in that epoch (0: no). */
	uint64_t put_generation; /* Grouping of one PutRecords by shard (records.c). */
	uint32_t put_tail;
	/* Optional throttling (config shard_throttling): one-second windows. */
	uint64_t window_s;
	uint32_t window_records;
	uint64_t window_bytes;
	uint64_t read_window_s;
	uint32_t read_window_calls;
	uint64_t read_window_bytes;
	/* Auto-scaling (kinesis_autoscale.c): durable seq at the last look, rate since. */
	uint64_t scale_seq;
	uint64_t scale_rate;
	uint32_t metrics_series;  /* Its shard-level series (metrics_shard_record's cache). */
};

struct kinesis_stream {
	bool used;
	uint32_t stream_id;      /* Never reused: the log's shard ids stay unique. */
	uint64_t incarnation;    /* Random per CreateStream: iterators are bound to it. */
	char name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	size_t name_size;
	char arn[KINESIS_ARN_SIZE];
	enum kinesis_status status;
	enum kinesis_status status_next;
	uint64_t status_due_ns;  /* Monotonic; 0 = no transition pending. */
	enum metadata_mode mode;
	uint32_t retention_hours;
	uint32_t shard_metrics;  /* Enhanced monitoring: enum kinesis_metric bits (api.h). */
	uint32_t max_record_kib; /* UpdateMaxRecordSize. */
	uint32_t warm_mibps;     /* UpdateStreamWarmThroughput's target; 0: none. */
	uint64_t created_ms;
	uint32_t shard_count;
	/*
	 * Shards DescribeStream lists (AWS): none before the stream was first ACTIVE (so
	 * none if it is deleted while CREATING), and a reshard's children from ACTIVE on.
	 */
	uint32_t shards_shown;
	struct kinesis_shard *shards; /* Indexed by shard index. */
	/* Routing (kinesis_stream_index): the open shards' ranges and their indices, by start. */
	struct keyrange_index open_keys;
	uint32_t *open_index;    /* open_count entries; NULL: no index (routing scans). */
	uint32_t open_count;
	void *open_block;        /* The one allocation both live in. */
	/* Wall-clock ms of the latest UpdateShardCount calls (a ring), for the daily limit. */
	uint64_t scalings_ms[KINESIS_SCALINGS_TRACK];
	uint32_t scalings_next;
	/* On-demand auto-scaling: counters since start, the last decision, the cooldown. */
	uint32_t scale_splits;
	uint32_t scale_merges;
	uint64_t scale_quiet_ns;      /* Monotonic: no decision before. */
	char scale_last[160];
	struct kinesis_encryption encryption;
};

/* The call being dispatched, as the access check sees it (kinesis_policies.c). */
struct kinesis_authz {
	bool enforce;              /* [auth] mode = sigv4: a verified principal. */
	bool owner;                /* The principal is of [server] account_id ... */
	bool root;                 /* ... and is that account's root. */
	bool consumer;             /* The resource is a consumer: its policy, not its stream's. */
	const char *principal_arn;
	char action[64];           /* "kinesis:" or "firehose:" + the operation's name. */
};

/* A SubscribeToShard relayed from a replica holder to its caller (kinesis_forward.c). */
struct kinesis_relay {
	struct kinesis *k;
	struct api_call *call;        /* NULL: the slot is free. */
	struct forward_stream *st;
	bool begun;                   /* The caller's stream is open (the holder answered 200). */
	bool blocked;                 /* The caller's stream refused bytes: wait for WRITABLE. */
	bool retry;                   /* No pool buffer for them: try again at the next pass. */
	uint64_t log_id;              /* Its log shard: a refusing holder's next (read_api). */
	uint32_t holder;              /* The holder tried now (read_api's nth). */
};

/* A read passed through to a replica holder, waiting for its answer (kinesis_forward.c). */
struct kinesis_read {
	struct api_call *call;        /* NULL: the slot is free (or its call dropped). */
	uint64_t log_id;
	uint32_t holder;              /* The holder tried now (read_api's nth). */
};

struct kinesis {
	struct sluice_config config;
	struct log *log;
	struct log_producer *producer;
	struct log_reader *reader;
	struct metadata *md;
	struct metadata_cluster *mc;      /* Cluster mode: etcd holds the truth, md its cache. */
	uint64_t cluster_seen;            /* Cluster mode: md's changes the streams reflect. */
	/* Cluster mode: the cache's applies wake the server loop (an idle loop sleeps). */
	struct metadata_watch *cluster_watch;
	uint8_t secret[ITERATOR_SECRET_SIZE];
	struct kinesis_stream *streams;   /* SLUICE_STREAMS_MAX slots. */
	uint32_t streams_high;            /* No slot at or above this index was ever used. */
	struct kinesis_pending *pending;  /* KINESIS_PENDING_MAX slots. */
	struct kinesis_put_result *results;
	uint16_t *batched;                /* KINESIS_PENDING_MAX x KINESIS_PUT_RECORDS_MAX. */
	uint16_t *batch_first;            /* Same. */
	uint32_t pending_count;
	struct kinesis_put_wait *waits;   /* KINESIS_PUT_WAITS_MAX, a ring from wait_head. */
	uint32_t wait_head;
	uint32_t wait_count;
	uint64_t wait_bytes;              /* Request bodies the waiting calls hold. */
	bool wait_retrying;               /* kinesis_put_retry() is re-running the head ... */
	bool wait_blocked;                /* ... and it has to wait on. */
	uint8_t *scratch;                 /* Decoded record data of one request. */
	size_t scratch_size;
	size_t scratch_used;
	struct kinesis_scratch *req_scratch; /* The rest of one request's working memory. */
	uint64_t nonce;
	uint64_t retention_due_ns;        /* Monotonic. */
	uint32_t transitions;             /* Streams with a status change due. */
	uint64_t put_generation;          /* Never wraps: shard marks stay unambiguous. */
	uint32_t shard_limit;             /* Shards over all streams (the log's table). */
	uint32_t shards_total;
	struct kinesis_closer *closer;    /* Closes reshard parents off this thread. */
	struct kinesis_routes routes;     /* The dataplane's, while it runs (all NULL otherwise). */
	struct kinesis_replication repl;  /* Cluster mode's acks (acked NULL: single node). */
	uint32_t replicating;             /* Pending calls durable here, waiting for replicas. */
	/* Reads passed through to a replica holder, waiting for its answer (cookie - PENDING_MAX). */
	struct kinesis_read reads[FORWARD_INFLIGHT_MAX];
	/* SubscribeToShard relayed from a replica holder (kinesis_forward.c); call NULL: free. */
	struct kinesis_relay relays[FORWARD_STREAMS_MAX];
	uint64_t autoscale_due_ns;        /* Monotonic; 0 before the first look. */
	uint32_t closes_pending;          /* Parents queued to it, not yet recorded. */
	uint32_t cluster_cuts_waiting;    /* Cluster mode: parents whose cut is not in etcd. */
	uint64_t cluster_fence_due_ns;    /* Monotonic: the next look at recorded closed shards. */
	uint64_t records_lost_skipped;    /* Corrupt records readers stepped over. */
	struct policy_store *policies;    /* Resource policies (kinesis_policies.c). */
	struct kinesis_authz authz;       /* The call being dispatched. */
	char policy_text[POLICY_SIZE_MAX + 1]; /* GetResourcePolicy's document. */
	struct kinesis_fanout *fanout;    /* Consumers and subscriptions (kinesis_consumers.c). */
	struct firehose *firehose;        /* Delivery streams (firehose_api.c serves their API). */
	/*
	 * epoll: the producer's completions, the log's durability (while a subscription
	 * is open: durable_watched), delivery-stream puts.
	 */
	int wake_fd;
	bool durable_watched;
	struct keyring_shared *keyring;   /* KeyId resolution (kinesis_keyring_set); may be NULL. */
};


/* ---- Operations and the per-call context (kinesis_ops.c) ------------------- */

enum kinesis_op_flags {
	/* StreamName/StreamARN resolved before the handler runs (r->stream). */
	KINESIS_OP_STREAM = 1u << 0,
	/* Changes streams, shards, tags or records (for access checks: not for reads). */
	KINESIS_OP_MUTATING = 1u << 1,
};

struct kinesis_req;
typedef void kinesis_handler_fn(struct kinesis_req *r);

/* One row of the operation table: an operation of the Kinesis 2013-12-02 model. */
struct kinesis_op {
	const char *name;              /* After "Kinesis_20131202.". */
	kinesis_handler_fn *handler;   /* NULL: in AWS's model, not served here (yet). */
	/* Optional: serves a plain body without a JSON tree; -EINVAL: take the checked path. */
	int (*fast)(struct kinesis_req *r);
	const struct kv_field *shape;  /* Input members in AWS's order (kinesis_validate.h). */
	uint32_t shape_count;
	uint32_t flags;                /* enum kinesis_op_flags */
	uint8_t stream_name;           /* KINESIS_OP_STREAM: the members naming the stream. */
	uint8_t stream_arn;
};

/*
 * One call as its handler sees it: made on the dispatcher's stack, filled by
 * kv_check(), the body's JSON tree freed after the handler returns. A handler
 * that answers later (PutRecord) copies what it needs into the pending table.
 */
struct kinesis_req {
	struct kinesis *k;
	struct api_call *call;
	const struct api_request *req;
	const struct kinesis_op *op;
	cJSON *root;
	struct kv_value v[KV_FIELDS_MAX]; /* By the operation's named indices. */
	struct kinesis_stream *stream;    /* KINESIS_OP_STREAM: never NULL in the handler. */
	struct kinesis_scratch *scratch;  /* Working memory, allocated at open. */
};

/* A served operation whose handler resolves the stream itself (or has none to resolve). */
#define KINESIS_OP(name_, OP, handler_, flags_) \
	{ .name = (name_), .handler = (handler_), \
	  .shape = (const struct kv_field[]){ KINESIS_SHAPE_##OP(KV_SHAPE_FIELD) }, \
	  .shape_count = OP##_COUNT, .flags = (flags_) }
/* In AWS's model, not served here yet (docs/API.md). */
#define KINESIS_OP_NOT_YET(name_) { .name = (name_) }

/*
 * Runs a served row: access check -> (fast path) -> kv_check -> stream -> handler
 * (firehose_api.c's rows too).
 */
void kinesis_op_run(struct kinesis *k, struct api_call *call, const struct api_request *req,
		    const struct kinesis_op *op);
/* UnknownOperationException, naming a row not served yet (op may be NULL: unknown). */
void kinesis_unknown_operation(struct api_call *call, const struct kinesis_op *op);
/* The row of `name` (any operation of the model), or NULL. */
const struct kinesis_op *kinesis_op_find(const char *name, size_t size);
/* Gives each served operation its metrics series (metrics_api_ops_register). */
void kinesis_ops_register_metrics(void);

/* ---- Shared helpers ------------------------------------------------------- */

/* Every error answer (api_call_error(): the server never reads a body back). */
void kinesis_error(struct api_call *call, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* AWS sends some without a message: NULL. */
void kinesis_serialization_error(struct api_call *call, const char *message);
void kinesis_internal_error(struct api_call *call);
void kinesis_out_timestamp(struct api_out *out, uint64_t ms);
uint64_t kinesis_now_ms(const struct api_request *req);

/* kinesis_streams.c: the stream table. */

/* The stream a request names, and the name it gave (for messages). */
struct kinesis_stream_ref {
	struct kinesis_stream *stream; /* NULL: no such stream. */
	const char *name;              /* Not NUL-terminated. */
	size_t size;
	bool foreign;                  /* An ARN of another region or account: `name` is it. */
};

/*
 * Looks up the stream StreamName and/or StreamARN name without answering "not
 * found" (some operations check other members first). -EINVAL after answering
 * a request naming none, or two different ones.
 */
int kinesis_stream_lookup(struct kinesis *k, struct api_call *call, const struct kv_value *name,
			  const struct kv_value *arn, struct kinesis_stream_ref *ref);
/*
 * Finds the stream named by StreamName and/or StreamARN; replies
 * ResourceNotFound/InvalidArgument itself and returns NULL when there is none.
 */
struct kinesis_stream *kinesis_stream_resolve(struct kinesis *k, struct api_call *call,
					      const struct kv_value *name,
					      const struct kv_value *arn);
struct kinesis_stream *kinesis_stream_find(struct kinesis *k, const char *name, size_t size);
/* The stream name inside a StreamARN of our region and account (*size_out bytes), or NULL. */
const char *kinesis_arn_name(const struct kinesis *k, const char *arn, size_t *size_out);
/* firehose_source.c: a Kinesis stream as a delivery stream's source (firehose_source_fn). */
struct firehose_source_view;
int kinesis_firehose_source(void *ctx, const char *stream_arn, struct firehose_source_view *view);
struct kinesis_stream *kinesis_stream_by_id(struct kinesis *k, uint32_t stream_id);
/* Marks slot `s` used (and raises streams_high). */
void kinesis_stream_use(struct kinesis *k, struct kinesis_stream *s);
void kinesis_stream_free(struct kinesis_stream *s);
const char *kinesis_status_name(enum kinesis_status status);
void kinesis_stream_status_tick(struct kinesis *k, uint64_t mono_ns);
/* log_retention_set(), tolerating a log built without retention (-ENOSYS). */
int kinesis_log_retention(struct kinesis *k, uint32_t stream_id, uint32_t hours);

/* kinesis_shards.c: shard ids and routing. */
void kinesis_shard_id_format(uint32_t index, char buf[KINESIS_SHARD_ID_SIZE]);
struct metrics_stream_ref;
struct metrics_shard_add;
/*
 * Adds to the shard-level series of shard add->shard_index of `s`; the caller
 * checks s->shard_metrics != 0 first (streams without monitoring pay that test).
 */
void kinesis_shard_metrics(struct kinesis_stream *s, const struct metrics_stream_ref *ref,
			   const struct metrics_shard_add *add);
/* AWS's lenient ShardId parsing: digits after the first '-'. -EINVAL if none. */
int kinesis_shard_id_parse(const char *text, size_t size, uint32_t *index_out);
struct kinesis_shard *kinesis_shard_route(struct kinesis_stream *s, hashkey_t key);
/* Rebuilds open_index after the shards changed; without memory routing scans (slower). */
void kinesis_stream_index(struct kinesis_stream *s);
void kinesis_stream_index_free(struct kinesis_stream *s);
void kinesis_out_shard(struct api_out *out, const struct kinesis_shard *shard);

/* ---- Cluster mode (kinesis_cluster.c): writes through etcd, following other nodes ---- */

/* Cluster mode: brings the streams in memory in line with the cache when it changed. */
void kinesis_cluster_follow(struct kinesis *k);
/*
 * Cluster mode, every poll: closes in the log the closed shards this node leads
 * and records a parent's cut in etcd once every record below it is acknowledged
 * (docs/CLUSTER.md "Resharding in cluster mode"). Returns how many parents this
 * node leads still wait for their cut to be recorded (the poll looks again soon).
 */
uint32_t kinesis_cluster_closes(struct kinesis *k);
/* How soon the poll looks again while a parent's cut waits (kinesis_poll_timeout_ms). */
#define KINESIS_CLUSTER_CUT_POLL_MS 20u
/*
 * How often a closed shard whose cut is recorded is looked at: one this node has come to
 * lead (a failover) gets its log copy closed too, so no stale-routed append lands in it.
 */
#define KINESIS_CLUSTER_FENCE_MS 500u
/* The closer thread closed a shard's log copy here (rc, seq_end): noted for the above. */
void kinesis_cluster_cut_done(struct kinesis *k, uint32_t stream_id, uint32_t index,
			      uint64_t seq_end, int rc);
/*
 * Puts the log's durable eventfd in the wake_fd epoll set while a subscription may be
 * open (kinesis_fanout_active) and takes it out when none is: only SubscribeToShard
 * waits on it, and it fires for every durable window and watermark move (in cluster
 * mode the follower side's appends and the leader's watermarks too). Called when a
 * subscription starts or ends, and by kinesis_poll (a failed epoll_ctl is retried).
 */
void kinesis_durable_watch(struct kinesis *k);
/*
 * Cluster mode: a watch on the changes kinesis_cluster_follow() follows, in the
 * wake_fd epoll set, so the cache's apply of another node's change wakes an idle
 * server loop at once (it would wait for its next connection event, up to the idle
 * timeout). 0 in single-node mode.
 */
int kinesis_cluster_wake_open(struct kinesis *k);
/*
 * The actions' metadata writes: SQLite in single-node mode, etcd (then the cache) in
 * cluster mode. Same errors as metadata.h's; -EEXIST / -EBUSY mean ResourceInUse.
 */
int kinesis_md_stream_create(struct kinesis *k, struct metadata_stream *ms,
			     const struct metadata_shard *shards, const struct metadata_tag *tags,
			     size_t tag_count);
int kinesis_md_stream_deleting(struct kinesis *k, const struct kinesis_stream *s);
int kinesis_md_retention_set(struct kinesis *k, const struct kinesis_stream *s, uint32_t hours);
int kinesis_md_mode_set(struct kinesis *k, const struct kinesis_stream *s,
			enum metadata_mode mode);
int kinesis_md_setting_set(struct kinesis *k, const struct kinesis_stream *s,
			   enum metadata_setting which, uint32_t value);
int kinesis_md_tags_put(struct kinesis *k, const struct kinesis_stream *s, const char *resource,
			const struct metadata_tag *tags, size_t count, uint32_t max);
int kinesis_md_tags_remove(struct kinesis *k, const struct kinesis_stream *s,
			   const char *resource, const struct metadata_tag *keys, size_t count);
/*
 * Resource policies: put validates first (policy_store_check in cluster mode) and
 * answers -EINVAL / -E2BIG / -EDQUOT with `message` set; the node's policy index is
 * reloaded once etcd's change is in its cache. Delete: -ENOENT when there is none.
 */
int kinesis_md_policy_put(struct kinesis *k, const struct kinesis_stream *s,
			  const char *resource, const char *json, size_t size, char *message,
			  size_t message_size);
int kinesis_md_policy_delete(struct kinesis *k, const struct kinesis_stream *s,
			     const char *resource);
/*
 * Consumers: etcd in cluster mode (ARN and timestamp identical on every node). Add in
 * cluster mode: -EDQUOT when the stream has KINESIS_CONSUMERS_PER_STREAM_MAX in etcd,
 * -EEXIST / -EBUSY when another node's registration came first, etcd's errors.
 */
int kinesis_md_consumer_add(struct kinesis *k, const struct kinesis_stream *s, const char *name,
			    size_t name_size, uint64_t created_ms, const struct metadata_tag *tags,
			    size_t tag_count);
int kinesis_md_consumer_remove(struct kinesis *k, const struct kinesis_stream *s,
			       const char *name, size_t name_size);
/* Account-wide settings (UpdateAccountSettings): the meta table, or etcd then every cache. */
int kinesis_md_account_set(struct kinesis *k, const char *key, const int64_t *values,
			   size_t count);
/* kinesis_main.c: a stream of the store not yet in memory (slot, shards, index). */
int kinesis_stream_adopt(struct kinesis *k, const struct metadata_stream *ms);
/* A shard of the store into its stream in memory (index below shard_count); metadata_load's. */
int kinesis_load_shard(void *arg, uint32_t stream_id, const struct metadata_shard *msh);

/* ---- Each concern's declarations ------------------------------------------ */

#include "control/kinesis_policies.h"
#include "control/kinesis_consumers.h"
#include "control/kinesis_encryption.h"
#include "control/kinesis_records.h"
#include "control/kinesis_shards.h"
#include "control/kinesis_streams.h"
#include "control/kinesis_tags.h"

/* One request's working memory besides the decoded data (one server thread: one at a time). */
struct kinesis_scratch {
	struct kv_errors errors;
	struct kinesis_put_scratch put;
	struct kinesis_stream *sorted[SLUICE_STREAMS_MAX]; /* ListStreams */
};

#endif /* SLUICE_CONTROL_KINESIS_H */
