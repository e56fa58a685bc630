/*
 * kinesis_shards.h - the shards concern: shard ids, routing and output, and
 * ListShards (kinesis_shards.c); SplitShard, MergeShards, UpdateShardCount and
 * the lineage reads use (kinesis_reshard.c); on-demand auto-scaling
 * (kinesis_autoscale.c). Included by control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_SHARDS_H
#define SLUICE_CONTROL_KINESIS_SHARDS_H

#include "control/kinesis.h"

/* ---- Input shapes (kinesis_validate.h) ------------------------------------ */

#define KINESIS_SHAPE_LIST_SHARDS(F) \
	F(LIST_SHARDS, EXCLUSIVE_START_SHARD_ID, \
	  KV_STR("ExclusiveStartShardId", false, KV_PATTERN_NAME, 1, 128)) \
	F(LIST_SHARDS, MAX_RESULTS, KV_INT("MaxResults", false, 1, 10000)) \
	F(LIST_SHARDS, NEXT_TOKEN, KV_STR("NextToken", false, KV_PATTERN_NONE, 1, 1048576)) \
	F(LIST_SHARDS, STREAM_CREATION_TIMESTAMP, \
	  KV_FIELD("StreamCreationTimestamp", KV_TIMESTAMP, false, KV_PATTERN_NONE, -1, -1, -1, -1)) \
	F(LIST_SHARDS, STREAM_NAME, KV_STREAM_NAME) \
	F(LIST_SHARDS, SHARD_FILTER, KV_NESTED("ShardFilter", KV_STRUCT, false, -1, -1, \
					       kinesis_filter_types_check, kinesis_filter_check)) \
	F(LIST_SHARDS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(LIST_SHARDS);

#define KINESIS_SHAPE_SPLIT_SHARD(F) \
	F(SPLIT_SHARD, NEW_STARTING_HASH_KEY, \
	  KV_STR("NewStartingHashKey", true, KV_PATTERN_HASH_KEY, -1, -1)) \
	F(SPLIT_SHARD, SHARD_TO_SPLIT, KV_STR("ShardToSplit", true, KV_PATTERN_NAME, 1, 128)) \
	F(SPLIT_SHARD, STREAM_NAME, KV_STREAM_NAME) \
	F(SPLIT_SHARD, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(SPLIT_SHARD);

#define KINESIS_SHAPE_MERGE_SHARDS(F) \
	F(MERGE_SHARDS, ADJACENT_SHARD_TO_MERGE, \
	  KV_STR("AdjacentShardToMerge", true, KV_PATTERN_NAME, 1, 128)) \
	F(MERGE_SHARDS, SHARD_TO_MERGE, KV_STR("ShardToMerge", true, KV_PATTERN_NAME, 1, 128)) \
	F(MERGE_SHARDS, STREAM_NAME, KV_STREAM_NAME) \
	F(MERGE_SHARDS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(MERGE_SHARDS);

#define KINESIS_SHAPE_UPDATE_SHARD_COUNT(F) \
	F(UPDATE_SHARD_COUNT, SCALING_TYPE, KV_ENUM("ScalingType", true, kinesis_scaling_types)) \
	F(UPDATE_SHARD_COUNT, STREAM_NAME, KV_STREAM_NAME) \
	F(UPDATE_SHARD_COUNT, TARGET_SHARD_COUNT, KV_INT("TargetShardCount", true, 1, 100000)) \
	F(UPDATE_SHARD_COUNT, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(UPDATE_SHARD_COUNT);

kv_nested_types_fn kinesis_filter_types_check;
kv_nested_check_fn kinesis_filter_check;
extern const char *const kinesis_scaling_types[];

kinesis_handler_fn kinesis_list_shards;
kinesis_handler_fn kinesis_split_shard;
kinesis_handler_fn kinesis_merge_shards;
kinesis_handler_fn kinesis_update_shard_count;

/* ---- Listing (kinesis_shards.c, kinesis_reshard.c) --------------------------- */

/* ListShards' ShardFilter (AFTER_SHARD_ID is FROM_TRIM_HORIZON after a shard). */
enum kinesis_filter {
	KINESIS_FILTER_FROM_TRIM_HORIZON,
	KINESIS_FILTER_AT_TRIM_HORIZON,
	KINESIS_FILTER_AT_LATEST,
	KINESIS_FILTER_AT_TIMESTAMP,
	KINESIS_FILTER_FROM_TIMESTAMP,
};
/* A NextToken keeps the filter type above the shard index in its position. */
#define KINESIS_FILTER_SHIFT 24

struct kinesis_shard_filter {
	enum kinesis_filter type;
	uint64_t ts_s;           /* AT_TIMESTAMP, FROM_TIMESTAMP: epoch seconds, floored. */
};

/* When shard `index` was closed: its children's creation second (0 while open). */
uint64_t kinesis_shard_closed_s(const struct kinesis_stream *s, uint32_t index);
/*
 * Whether ListShards shows shard `index` under `filter` at `now_s`. A closed
 * shard past the stream's retention (log_retention_ms) is never shown (AWS);
 * "open at t" means open at the start of second t, so a consumer starting
 * there misses nothing.
 */
bool kinesis_shard_listed(const struct kinesis *k, const struct kinesis_stream *s,
			  uint32_t index, const struct kinesis_shard_filter *filter,
			  uint64_t now_s);
/* Whether a read at `seq_next` is past the end of a closed shard. */
bool kinesis_shard_ended(const struct kinesis_shard *sh, uint64_t seq_next);
/* Writes the ChildShards array (AWS's GetRecords shape) of shard `index`. */
void kinesis_out_child_shards(struct api_out *out, const struct kinesis_stream *s,
			      uint32_t index);


/* ---- Resharding (kinesis_reshard.c, kinesis_autoscale.c) ------------------ */

/*
 * A reshard planned on a copy of the stream's shards: parents are marked
 * closed in the copy, children appended after the old ones. Short-lived
 * intermediate shards of UpdateShardCount are appended and closed in the same
 * plan; they never receive a record (ending sequence number UINT64_MAX: empty).
 */
struct kinesis_reshard {
	struct kinesis_shard *shards;
	uint32_t count;          /* Shards in the copy. */
	uint32_t capacity;
	uint32_t old_count;      /* Shards of the stream before the plan. */
	uint64_t created_s;      /* Creation time of every child. */
};

int kinesis_reshard_init(struct kinesis_reshard *plan, const struct kinesis_stream *s,
			 uint32_t extra, uint64_t created_s);
void kinesis_reshard_free(struct kinesis_reshard *plan);
/* 0, or -EINVAL unless start + 1 < new_start < end (AWS's NewStartingHashKey rule). */
int kinesis_split_check(const struct kinesis_shard *sh, hashkey_t new_start);
/* Whether `a` and `b` are open and adjacent in hash order (a.end + 1 == b.start). */
bool kinesis_merge_check(const struct kinesis_shard *a, const struct kinesis_shard *b);
/* Closes shard `index` of the plan and appends [start, new_start - 1], [new_start, end]. */
int kinesis_reshard_split(struct kinesis_reshard *plan, uint32_t index, hashkey_t new_start);
/* Closes shards `a`, `b` (a.end + 1 == b.start) and appends [a.start, b.end]. */
int kinesis_reshard_merge(struct kinesis_reshard *plan, uint32_t a, uint32_t b);
/*
 * Plans UNIFORM_SCALING to `target` open shards: splits at every boundary of
 * the equal partition that is not one yet, then merges each target range's
 * pieces pairwise, left to right.
 */
int kinesis_reshard_uniform(struct kinesis_reshard *plan, uint32_t target);
/* Open shards of a plan, or of a stream's shard array. */
uint32_t kinesis_open_count(const struct kinesis_shard *shards, uint32_t count);
/* A committed reshard of `s` (which had `before` shards) into the status page's history. */
void kinesis_reshard_history(const struct kinesis_stream *s, uint32_t before, bool autoscale,
			     const char *what);
/*
 * Commits a plan: SQLite (one transaction), memory (routing moves to the
 * children), then the log (each parent closed after its accepted batches are
 * durable; its ending sequence number recorded). Takes the plan's array.
 */
int kinesis_reshard_commit(struct kinesis *k, struct kinesis_stream *s,
			   struct kinesis_reshard *plan);
/* kinesis_autoscale.c: one look per autoscale_window_s at every ON_DEMAND stream. */
void kinesis_autoscale_tick(struct kinesis *k, uint64_t mono_ns, uint64_t now_ns);

/* Whether a parent of `s` waits for its log close to be recorded. */
bool kinesis_stream_closing(const struct kinesis_stream *s);
/*
 * ACTIVE -> UPDATING -> ACTIVE after a reshard: ACTIVE once the delay has
 * passed and every parent's close is recorded (as AWS: UPDATING until done).
 */
void kinesis_reshard_status(struct kinesis *k, struct kinesis_stream *s);
/*
 * Cluster mode: a stream loaded (at start, or adopted) while a parent's close is not
 * recorded yet, resharded through another node, shows UPDATING until it is, as on that
 * node: a second reshard through this one waits for the first.
 */
void kinesis_reshard_loaded(struct kinesis *k, struct kinesis_stream *s);

/* Queues one shard's log close to the closer thread (cluster mode: the leader's cut). */
int kinesis_closer_push(struct kinesis *k, const struct kinesis_stream *s, uint32_t index);
/* Records the parent closes the closer thread finished (kinesis_poll). */
void kinesis_reshard_poll(struct kinesis *k);
/* Waits for the closer thread's queue, records what it finished, stops it. */
void kinesis_reshard_stop(struct kinesis *k);
/* At open: completes reshards committed in SQLite whose log close was not recorded. */
int kinesis_reshard_recover(struct kinesis *k, struct kinesis_stream *s, uint32_t index);

#endif /* SLUICE_CONTROL_KINESIS_SHARDS_H */
