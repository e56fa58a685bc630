/*
 * kinesis.h - private to the Kinesis actions (control/kinesis_*.c): the
 * in-memory stream table, the pending-put table, the request validator and
 * the helpers every action shares. The server sees only control/api.h.
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
#include "common/limits.h"
#include "control/api.h"
#include "control/iterator.h"
#include "control/metadata.h"

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
#define KINESIS_TAGS_PER_STREAM_MAX 50u
#define KINESIS_SHARD_ID_SIZE 21 /* "shardId-" + 12 digits + NUL */
#define KINESIS_ARN_SIZE 768
#define KINESIS_VALIDATION_ERRORS_MAX 10u
#define KINESIS_MESSAGE_SIZE 2048
/* Shards a new ON_DEMAND stream gets (kinesis-mock gives 4 too). */
#define KINESIS_ON_DEMAND_SHARDS 4u
/* UpdateShardCount calls remembered per stream (the rolling 24 h limit's upper bound). */
#define KINESIS_SCALINGS_TRACK 64u

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
	uint64_t created_ms;
	uint32_t shard_count;
	struct kinesis_shard *shards; /* Indexed by shard index. */
	uint32_t *open_index;    /* Open shards' indices by starting hash key (routing). */
	uint32_t open_count;
	/* Wall-clock ms of the latest UpdateShardCount calls (a ring), for the daily limit. */
	uint64_t scalings_ms[KINESIS_SCALINGS_TRACK];
	uint32_t scalings_next;
	/* On-demand auto-scaling: counters since start, the last decision, the cooldown. */
	uint32_t scale_splits;
	uint32_t scale_merges;
	uint64_t scale_quiet_ns;      /* Monotonic: no decision before. */
	char scale_last[160];
};

/* One record of a pending PutRecord(s): where it went and what came back. */
struct kinesis_put_result {
	uint32_t shard_index;
	uint32_t batch_no;
	uint32_t batch_pos;
	uint64_t shard_created_s;
	uint64_t seq;
	uint64_t put_s;
	int32_t error;           /* 0, or a negative errno (-ENOSPC: throttled). */
	bool done;
	uint32_t data_size;      /* For the stream's byte counters (metrics.h). */
};

struct kinesis_pending {
	struct api_call *call;   /* NULL when the slot is free. */
	bool put_records;
	uint32_t batch_count;
	char stream_name[SLUICE_STREAM_NAME_SIZE_MAX + 1]; /* For error messages. */
	uint32_t stream_slot;    /* The stream's series (metrics.h) ... */
	uint32_t stream_id;
	uint64_t started_ns;     /* ... and its latency, from dispatch (monotonic). */
	uint32_t record_count;
	uint32_t batches_left;
	struct kinesis_put_result *results; /* KINESIS_PUT_RECORDS_MAX per slot. */
	/*
	 * Records in the order they went into batches (result indexes), and where each
	 * batch starts in it: a completion visits its own batch's records only.
	 */
	uint16_t *batched;       /* KINESIS_PUT_RECORDS_MAX per slot. */
	uint16_t *batch_first;   /* KINESIS_PUT_RECORDS_MAX per slot: a batch holds >= 1 record. */
	uint32_t batched_count;
};

/* A call waiting to start (kinesis_put_wait): the request is re-run when it may go. */
struct kinesis_put_wait {
	struct api_call *call;
	struct api_request req;  /* Its pointers stay valid until the call is replied to. */
	bool put_records;
};

struct kinesis_blob {
	const uint8_t *data;
	uint32_t size;
};

struct kinesis {
	struct sluice_config config;
	struct log *log;
	struct log_producer *producer;
	struct log_reader *reader;
	struct metadata *md;
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
	struct kinesis_blob blobs[KINESIS_PUT_RECORDS_MAX]; /* PutRecords data, decoded. */
	uint64_t nonce;
	uint64_t retention_due_ns;        /* Monotonic. */
	uint32_t transitions;             /* Streams with a status change due. */
	uint64_t put_generation;          /* Never wraps: shard marks stay unambiguous. */
	uint32_t shard_limit;             /* Shards over all streams (the log's table). */
	uint32_t shards_total;
	struct kinesis_closer *closer;    /* Closes reshard parents off this thread. */
	struct kinesis_routes routes;     /* The dataplane's, while it runs (all NULL otherwise). */
	uint64_t autoscale_due_ns;        /* Monotonic; 0 before the first look. */
	uint32_t closes_pending;          /* Parents queued to it, not yet recorded. */
	uint64_t records_lost_skipped;    /* Corrupt records readers stepped over. */
};

/* ---- Request validation (kinesis_validate.c) ---------------------------- */

enum kv_type {
	KV_STRING,
	KV_INTEGER,     /* Floored, clamped to INT32 range as AWS does. */
	KV_LONG,
	KV_BOOLEAN,
	KV_BLOB,        /* Strict base64, decoded into the scratch buffer. */
	KV_TIMESTAMP,   /* Epoch seconds, integer or fractional. */
	KV_LIST,        /* Of strings, or of structures (checked by the action). */
	KV_MAP,         /* Of strings. */
	KV_STRUCT,      /* Checked by the action. */
};

enum kv_pattern {
	KV_PATTERN_NONE,
	KV_PATTERN_NAME,      /* [a-zA-Z0-9_.-]+ */
	KV_PATTERN_HASH_KEY,  /* 0|([1-9]\d{0,38}) */
	KV_PATTERN_SEQUENCE,  /* 0|([1-9]\d{0,128}) */
	KV_PATTERN_ARN,       /* arn:aws.*:kinesis:.*:\d{12}:stream/\S+ */
};

struct kv_errors;

/* One request member, in the order AWS reports its errors. */
struct kv_field {
	const char *name;        /* JSON member, e.g. "StreamName". */
	enum kv_type type;
	bool not_null;
	enum kv_pattern pattern;
	int64_t length_min;      /* -1: no bound. Strings, blobs, lists, maps. */
	int64_t length_max;
	int64_t value_min;       /* -1: no bound (bounds are never negative here). */
	int64_t value_max;
	const char *const *enum_values; /* NULL-terminated, or NULL. */
	bool length_in_chars;    /* Strings: length in UTF-16 units as AWS (Java) counts. */
	/* Lists of structures, maps, structures: the action's own checks, or NULL. */
	int (*nested_types)(struct kinesis *k, struct api_call *call, const cJSON *item);
	void (*nested_check)(struct kinesis *k, const cJSON *item, struct kv_errors *errors);
};

#define KV_FIELDS_MAX 8

/* Field constructors: every bound not given is -1 (none). */
#define KV_FIELD(name_, type_, not_null_, pattern_, lmin, lmax, vmin, vmax) \
	{ .name = (name_), .type = (type_), .not_null = (not_null_), .pattern = (pattern_), \
	  .length_min = (lmin), .length_max = (lmax), .value_min = (vmin), .value_max = (vmax) }
#define KV_STR(name_, not_null_, pattern_, lmin, lmax) \
	KV_FIELD(name_, KV_STRING, not_null_, pattern_, lmin, lmax, -1, -1)
#define KV_INT(name_, not_null_, vmin, vmax) \
	KV_FIELD(name_, KV_INTEGER, not_null_, KV_PATTERN_NONE, -1, -1, vmin, vmax)
#define KV_STREAM_NAME KV_STR("StreamName", false, KV_PATTERN_NAME, 1, 128)
#define KV_STREAM_ARN KV_STR("StreamARN", false, KV_PATTERN_ARN, 1, 2048)

struct kv_value {
	const cJSON *json;       /* NULL when absent or null. */
	const char *string;
	size_t size;             /* String bytes, blob bytes, list/map entries. */
	int64_t number;
	double seconds;          /* KV_TIMESTAMP. */
	bool boolean;
	const uint8_t *blob;
};

/* Collects "Value ... failed to satisfy constraint: ..." messages in order. */
struct kv_errors {
	uint32_t count;
	size_t size;
	char text[KINESIS_MESSAGE_SIZE * 8];
};

/*
 * Parses `req->body` and checks it against `fields`: type errors answer
 * SerializationException, constraint errors ValidationException (AWS's text).
 * Returns 0 with `values` filled (one per field) and *root_out to cJSON_Delete,
 * or -EINVAL after replying (nothing to free).
 */
int kv_check(struct kinesis *k, struct api_call *call, const struct api_request *req,
	     const struct kv_field *fields, size_t field_count, cJSON **root_out,
	     struct kv_value *values);
/* Decodes a blob already type-checked into the scratch buffer; NULL if it does not fit. */
const uint8_t *kv_blob_decode(struct kinesis *k, const cJSON *item, uint32_t *size_out);
/* Replies SerializationException for a malformed blob; -EINVAL, or 0 when it is fine. */
int kv_blob_check(struct api_call *call, const cJSON *item);
/* Adds the errors of one string member (pattern, length bounds) under `path`. */
void kv_string_check(struct kv_errors *errors, const char *path, const cJSON *item,
		     bool not_null, enum kv_pattern pattern, int64_t length_min,
		     int64_t length_max);
/* As kv_string_check() with lengths in UTF-16 units (partition keys). */
void kv_chars_check(struct kv_errors *errors, const char *path, const cJSON *item,
		    int64_t length_min, int64_t length_max);
/* Bytes of the well-formed UTF-8 sequence at p (1..4), or 0 if it is not one. */
size_t kv_utf8_sequence_size(const uint8_t *p, size_t size);
/*
 * What makes a request body unacceptable before JSON parsing, or NULL: invalid UTF-8, a raw
 * control character inside a string, or an escaped NUL (\u0000). The text is the message.
 */
const char *kv_body_check(const uint8_t *body, size_t size);
/* UTF-16 units of UTF-8 text, as Java's String.length() counts them. */
size_t kv_utf16_length(const char *text, size_t size);

void kv_errors_add(struct kv_errors *errors, const char *value, bool quote, const char *path,
		   const char *rule);
/* Replies ValidationException with the collected messages; false if there were none. */
bool kv_errors_reply(struct api_call *call, const struct kv_errors *errors);
bool kv_pattern_match(enum kv_pattern pattern, const char *text, size_t size);
/* Checks a JSON value's type for a member of `type`; replies SerializationException. */
int kv_type_check(struct api_call *call, const cJSON *item, enum kv_type type);
/* nested_types for a map or list whose members must all be strings (Tags, TagKeys). */
int kv_members_are_strings(struct kinesis *k, struct api_call *call, const cJSON *item);

/* Strict base64 as AWS's blob decoding; returns decoded size or -EINVAL. */
int64_t kinesis_base64_decode(const char *text, size_t size, uint8_t *out, size_t out_size);
size_t kinesis_base64_encode(const uint8_t *data, size_t size, char *out);
/*
 * Index of the first character outside [A-Za-z0-9+/=], or of a '=' followed by
 * something else; `size` when there is none.
 */
size_t kinesis_base64_scan(const char *text, size_t size);

/* ---- Shared helpers (kinesis_main.c) ------------------------------------ */

void kinesis_error(struct api_call *call, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void kinesis_serialization_error(struct api_call *call, const char *message);
void kinesis_internal_error(struct api_call *call);

/*
 * Finds the stream named by StreamName and/or StreamARN (values[name_i],
 * values[arn_i]); replies ResourceNotFound/InvalidArgument itself and
 * returns NULL when there is none.
 */
struct kinesis_stream *kinesis_stream_resolve(struct kinesis *k, struct api_call *call,
					      const struct kv_value *name,
					      const struct kv_value *arn);
struct kinesis_stream *kinesis_stream_find(struct kinesis *k, const char *name, size_t size);
struct kinesis_stream *kinesis_stream_by_id(struct kinesis *k, uint32_t stream_id);
/* Marks slot `s` used (and raises streams_high). */
void kinesis_stream_use(struct kinesis *k, struct kinesis_stream *s);
void kinesis_stream_free(struct kinesis_stream *s);
const char *kinesis_status_name(enum kinesis_status status);
void kinesis_shard_id_format(uint32_t index, char buf[KINESIS_SHARD_ID_SIZE]);
/* AWS's lenient ShardId parsing: digits after the first '-'. -EINVAL if none. */
int kinesis_shard_id_parse(const char *text, size_t size, uint32_t *index_out);
struct kinesis_shard *kinesis_shard_route(struct kinesis_stream *s, hashkey_t key);
/* Rebuilds open_index after the shards changed; without memory routing scans (slower). */
void kinesis_stream_index(struct kinesis_stream *s);
void kinesis_out_timestamp(struct api_out *out, uint64_t ms);
void kinesis_out_shard(struct api_out *out, const struct kinesis_shard *shard);
void kinesis_stream_status_tick(struct kinesis *k, uint64_t mono_ns);
uint64_t kinesis_now_ms(const struct api_request *req);
/* log_retention_set(), tolerating a log built without retention (-ENOSYS). */
int kinesis_log_retention(struct kinesis *k, uint32_t stream_id, uint32_t hours);

/* ---- Actions ------------------------------------------------------------ */

typedef void kinesis_action_fn(struct kinesis *k, struct api_call *call,
			       const struct api_request *req);

kinesis_action_fn kinesis_create_stream;
kinesis_action_fn kinesis_delete_stream;
kinesis_action_fn kinesis_describe_stream;
kinesis_action_fn kinesis_describe_stream_summary;
kinesis_action_fn kinesis_list_streams;
kinesis_action_fn kinesis_list_shards;
kinesis_action_fn kinesis_put_record;
kinesis_action_fn kinesis_put_records;
kinesis_action_fn kinesis_get_shard_iterator;
kinesis_action_fn kinesis_get_records;
kinesis_action_fn kinesis_increase_retention;
kinesis_action_fn kinesis_decrease_retention;
kinesis_action_fn kinesis_add_tags;
kinesis_action_fn kinesis_list_tags;
kinesis_action_fn kinesis_remove_tags;
kinesis_action_fn kinesis_describe_limits;
kinesis_action_fn kinesis_update_stream_mode;
kinesis_action_fn kinesis_split_shard;
kinesis_action_fn kinesis_merge_shards;
kinesis_action_fn kinesis_update_shard_count;

/* ---- Resharding (kinesis_reshard.c) --------------------------------------- */

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

/* Tells the dataplane's route thread that streams or open shards changed in SQLite. */
void kinesis_routes_changed(struct kinesis *k);
/* Records the parent closes the closer thread finished (kinesis_poll). */
void kinesis_reshard_poll(struct kinesis *k);
/* Waits for the closer thread's queue, records what it finished, stops it. */
void kinesis_reshard_stop(struct kinesis *k);
/* At open: completes reshards committed in SQLite whose log close was not recorded. */
int kinesis_reshard_recover(struct kinesis *k, struct kinesis_stream *s, uint32_t index);
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
 * shard past the stream's retention is never shown (AWS); "open at t" means
 * open at the start of second t, so a consumer starting there misses nothing.
 */
bool kinesis_shard_listed(const struct kinesis_stream *s, uint32_t index,
			  const struct kinesis_shard_filter *filter, uint64_t now_s);
/* Whether a read at `seq_next` is past the end of a closed shard. */
bool kinesis_shard_ended(const struct kinesis_shard *sh, uint64_t seq_next);
/* Writes the ChildShards array (AWS's GetRecords shape) of shard `index`. */
void kinesis_out_child_shards(struct api_out *out, const struct kinesis_stream *s,
			      uint32_t index);

/* kinesis_streams.c: StreamModeDetails and Tags members, shared with other actions. */
extern const struct kv_field kinesis_mode_field;
extern const struct kv_field kinesis_tags_field;
enum metadata_mode kinesis_mode_parse(const cJSON *details);
bool kinesis_tag_text_ok(const char *text);
size_t kinesis_tags_collect(const cJSON *item, struct metadata_tag *tags, size_t max,
			    bool *ok_out);

/* Sets `now`, and `next` after stream_status_delay_ms (at once when the delay is 0). */
void kinesis_status_schedule(struct kinesis *k, struct kinesis_stream *s,
			     enum kinesis_status now, enum kinesis_status next);

/* kinesis_streams.c: finishes a DELETING stream (SQLite first, then the log). */
int kinesis_stream_delete_finish(struct kinesis *k, struct kinesis_stream *s);

/* kinesis_fast.c: PutRecords read in one pass, no JSON tree (see the file). */
struct kinesis_fast_record {
	const char *key;
	size_t key_size;
	const char *data;        /* base64 text */
	size_t data_size;
	const char *hash_key;    /* NULL when absent */
	size_t hash_key_size;
	const uint8_t *decoded;  /* Data, decoded into the scratch buffer */
	uint32_t decoded_size;
};

struct kinesis_fast_put {
	const char *name;        /* Not NUL-terminated; NULL when absent. */
	size_t name_size;
	const char *arn;
	size_t arn_size;
	uint32_t count;
	struct kinesis_fast_record records[KINESIS_PUT_RECORDS_MAX];
};

/*
 * Recognises a plain, valid PutRecords body. Returns 0 with `put` filled,
 * or -EINVAL: then the caller takes the cJSON path, which answers errors.
 */
int kinesis_fast_put_parse(struct kinesis *k, const uint8_t *body, size_t size,
			   struct kinesis_fast_put *put);

/* kinesis_records.c: completions from the log -> replies. */
void kinesis_put_poll(struct kinesis *k);

#endif /* SLUICE_CONTROL_KINESIS_H */
