/*
 * fh_internal.h - private to firehose/: the engine's state and the seams
 * between its files:
 *
 *   FILE          CONCERN
 *   fh_main.c     open/close, the stream table, puts and their completions
 *   fh_store.c    SQLite (firehose.db): streams, delivered positions, intents
 *   fh_flush.c    the flusher: cutting ranges, naming, writing objects
 *   fh_codec.c    compression formats
 *   fh_source.c   KinesisStreamAsSource: following a Kinesis stream's shards (lanes)
 *   fh_settings.c UpdateDestination, encryption, tags
 *   fh_thread.c   the flusher's thread and the lock
 *   fh_s3.c       the S3-compatible destination (SigV4, multipart upload)
 *   fh_prefix.c   custom prefixes (!{...}) and the partitioning query's JQ subset
 *   fh_partition.c  dynamic partitioning: one range as one object per partition
 *   fh_http.c     HTTP endpoint destinations (libcurl), their backup, their table
 *   fh_lambda.c   the Lambda processor (a local executable), its table
 *   fh_split.c    RecordDeAggregation: a record's JSON objects or delimited pieces
 */
#ifndef SLUICE_FIREHOSE_FH_INTERNAL_H
#define SLUICE_FIREHOSE_FH_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "firehose/firehose.h"

/* Batches one put may fill before submitting (4 MiB of data over >= 1 MiB batches). */
#define FH_PUT_BATCHES_MAX 16u
/* Completions taken from the log per poll. */
#define FH_COMPLETIONS_POLL 64u
/* The flusher looks at its streams this often when nothing else wakes it. */
#define FH_FLUSH_TICK_NS 100000000ull
/* A failed delivery is retried after this, doubling up to the max. */
#define FH_RETRY_MIN_NS 1000000000ull
#define FH_RETRY_MAX_NS 60000000000ull
/* The log record key every delivery-stream record carries (the shard is the stream's one). */
#define FH_PARTITION_KEY "f"
/* Records of one cut of a stream with a processor (HTTP: FIREHOSE_HTTP_RECORDS_MAX). */
#define FH_CUT_RECORDS_MAX 100000u
/* Bytes of the raw (uncompressed) buffer: the largest cut plus the record that crosses it. */
#define FH_RAW_SIZE_MAX (((size_t)FIREHOSE_SIZE_MB_MAX << 20) + FIREHOSE_RECORD_SIZE_MAX)

/*
 * A stream's figures for other threads (firehose_stats_read): whole words, each
 * written with a relaxed store by the engine's thread; id_plus1 (0: free) is stored
 * last on create (release) and first on delete, so a reader that sees the same id
 * before and after copying has one stream's figures.
 */
#define FH_NAME_WORDS ((FIREHOSE_NAME_SIZE_MAX + 1 + 7) / 8)

struct fh_stats_slot {
	uint64_t id_plus1;
	uint64_t name_words[FH_NAME_WORDS];
	uint64_t incoming_records;
	uint64_t incoming_bytes;
	uint64_t delivered_records;
	uint64_t delivered_bytes;
	uint64_t delivered_objects;
	uint64_t delivery_failures;
	uint64_t records_lost;
	uint64_t freshness_ms;
	uint64_t retention_warnings;
	uint64_t retention_headroom_s;
	uint64_t processing_failed;
	uint64_t http_backup_records;
};

/*
 * One source shard's delivery: its durable progress and what the flusher knows
 * of what waits. A DirectPut stream has one lane (its own log shard); a
 * KinesisStreamAsSource stream one per shard of its source (fh_source.c).
 */
struct fh_lane {
	uint64_t shard_id;
	uint64_t delivered;          /* Next seq to deliver (durable in SQLite). */
	bool intent;                 /* A range being delivered: [intent_first, intent_end). */
	uint64_t intent_first;
	uint64_t intent_end;
	/* In memory only: hints that spare the flusher a read. */
	uint64_t pending_bytes;      /* Durable, undelivered data bytes; UINT64_MAX unknown. */
	uint64_t pending_records;    /* Their records (valid when pending_bytes is). */
	uint64_t oldest_ns;          /* Arrival of the record at `delivered`; 0 unknown/none. */
	uint64_t retry_due_ns;       /* Real time; 0: no failure outstanding. */
	uint64_t retry_ns;
	/* HTTP endpoint destinations: the range's retry state (fh_http.c, through fh_job). */
	uint64_t http_failing_ns;    /* Monotonic time of the range's first failure; 0 none. */
	uint32_t http_attempts;      /* POSTs of the range so far. */
	bool at_risk;                /* Within FIREHOSE_RETENTION_MARGIN_S of aging out. */
	/* Source lanes only (fh_source.c). */
	uint64_t scanned;            /* Next seq not counted in pending_bytes. */
	uint64_t parent_ids[2];      /* Delivered first (as KCL does); UINT64_MAX: none. */
	bool source_closed;          /* The shard takes no more records. */
	bool finished;               /* Closed and all of it delivered. */
	bool seen;                   /* In the source's latest view. */
};

/* A KinesisStreamAsSource stream's source (fh_source.c). */
struct fh_source {
	uint32_t stream_id;          /* The source's log stream id, fixed at creation. */
	uint32_t retention_hours;    /* As of the latest view. */
	uint64_t start_ms;           /* DeliveryStartTimestamp. */
	uint64_t refresh_due_ns;     /* Real time of the next look at the source's shards. */
	uint64_t poll_due_ns;        /* Real time of the next look at its lanes. */
	bool gone;                   /* The stream was deleted (or recreated): nothing to read. */
	/* control/'s answer, asked on the API thread (fh_source_stage), taken by the flusher. */
	struct firehose_source_view view;
	int view_rc;
	bool view_new;
	int failed_rc;               /* The latest view's error, said once. */
	uint32_t lane_count;
	struct fh_lane lanes[FIREHOSE_SOURCE_SHARDS_MAX];
};

struct fh_stream {
	bool used;
	uint32_t id;                 /* Log stream id is FIREHOSE_LOG_STREAM_BASE + id. */
	struct firehose_spec spec;
	uint64_t created_ms;
	uint32_t version;
	struct fh_lane direct;       /* DirectPut: the stream's own log shard. */
	struct fh_source *source;    /* KinesisStreamAsSource; NULL for DirectPut. */
	struct firehose_encryption encryption;  /* fh_settings.c */
	uint64_t updated_ms;
	struct fh_stats_slot *stats; /* Its slot in firehose.stats (same index). */
};

/*
 * What a delivery reads of its stream once the flusher has let go of the lock: a
 * copy taken under it (fh_flush.c, fh_deliver), the stream itself may go meanwhile.
 */
struct fh_job {
	struct firehose_spec spec;
	uint32_t id;
	uint32_t version;
	uint64_t shard_id;           /* The lane's: part of the object's name. */
	/* The lane's HTTP retry state, copied in and back (fh_commit). */
	uint64_t http_failing_ns;
	uint32_t http_attempts;
	/* What the delivery did, counted under the lock again (the stream may be gone). */
	uint32_t objects;
	uint32_t processing_failed;
	uint32_t http_backup_records;
};

struct fh_pending {
	bool used;
	firehose_put_fn *done;
	void *ctx;
	uint32_t stream_id;
	uint32_t count;
	uint32_t batches_left;
	int error;
	uint64_t bytes;
	uint64_t arrival_ns;
	uint64_t seqs[FIREHOSE_BATCH_RECORDS_MAX];
};

/*
 * Threads. With options.flusher_thread the flusher runs on its own thread; `lock`
 * guards everything below but the stats slots (atomics) and the flusher's buffers
 * (raw, out, reader: its own), and the flusher lets go of it only while it
 * compresses and writes an object (fh_flush.c). Without, firehose_poll() runs the
 * flusher on the caller's thread (tests drive time that way), under the same lock.
 */
struct firehose {
	pthread_mutex_t lock;
	pthread_cond_t wake;         /* The flusher's: puts completed, a stream made or changed. */
	pthread_t thread;
	bool thread_running;
	bool stop;                   /* Under lock: the flusher thread returns. */
	char data_dir[FIREHOSE_PATH_SIZE_MAX];
	char local_root[FIREHOSE_LOCAL_ROOT_SIZE_MAX + 1];
	struct log *log;
	struct log_producer *producer;
	struct log_reader *reader;
	int event_fd;                /* The producer's completion eventfd (not ours to close). */
	sqlite3 *db;
	struct fh_stream streams[FIREHOSE_STREAMS_MAX];
	struct fh_stats_slot stats[FIREHOSE_STREAMS_MAX];
	struct fh_source *sources;   /* FIREHOSE_STREAMS_MAX, stream i's at [i]. */
	firehose_source_fn *source_fn;
	void *source_ctx;
	struct fh_pending *pending;  /* FIREHOSE_PENDING_MAX */
	uint32_t pending_count;
	uint64_t flush_due_ns;       /* Real time. */
	uint8_t *raw;                /* FH_RAW_SIZE_MAX: one cut, uncompressed. */
	size_t raw_used;
	uint8_t *out;                /* fh_codec_bound(FH_RAW_SIZE_MAX) */
	size_t out_size;
	struct fh_s3 *s3;            /* NULL: objects land under local_root. */
	struct fh_part *part;        /* Dynamic partitioning's state (fh_partition.c). */
	struct fh_job job;           /* The flusher's: the delivery under way (fh_deliver). */
	/* FH_CUT_RECORDS_MAX each: where a cut's records end in raw, their arrival, log seq. */
	uint32_t *record_ends;
	uint64_t *record_arrivals;
	uint64_t *record_seqs;
	struct fh_http *http;        /* fh_http.c's state. */
	struct fh_lambda *lambda;    /* fh_lambda.c's state. */
};

struct fh_stream *fh_stream_find(struct firehose *fh, const char *name);
/* Whether slot `s` still holds stream `id` (after the lock was let go: deleted or reused). */
bool fh_stream_same(const struct fh_stream *s, uint32_t id);
/* The flusher's side of the lock around compressing and writing an object. */
void fh_unlock(struct firehose *fh);
void fh_lock(struct firehose *fh);
/* fh_thread.c: the flusher thread (firehose_open/close), and a nudge to look now. */
int fh_thread_start(struct firehose *fh);
void fh_thread_stop(struct firehose *fh);
void fh_thread_wake(struct firehose *fh);
/* Publishes stream `s` (now used) in its stats slot, or retires the slot (unused). */
void fh_stats_publish(struct firehose *fh, struct fh_stream *s);
struct fh_stream *fh_stream_by_id(struct firehose *fh, uint32_t id);

/* fh_store.c */
int fh_store_open(struct firehose *fh);
void fh_store_close(struct firehose *fh);
/* Calls fh_stream_load for every stored stream. */
int fh_store_load(struct firehose *fh);
/* Assigns s->id (never reused) and stores the stream. */
int fh_store_insert(struct firehose *fh, struct fh_stream *s);
int fh_store_delete(struct firehose *fh, const struct fh_stream *s);
/* The stream's partitioning and delimiter rows, as its spec says (inside a transaction). */
int fh_store_extras_write(struct firehose *fh, const struct fh_stream *s);
/* Records [first, end) of lane `l` as the range being delivered. */
int fh_store_intent(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l,
		    uint64_t first, uint64_t end);
/* Moves lane `l`'s delivered position to `next` and clears its intent. */
int fh_store_delivered(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l,
		       uint64_t next);
/* Runs `sql` alone ("BEGIN IMMEDIATE", "COMMIT", ...). */
int fh_store_exec(struct firehose *fh, const char *sql);
/* One statement; `types` says each argument's: 'i' int64_t *, 't' text. */
int fh_store_run(struct firehose *fh, const char *sql, const char *types,
		 const void *const *args);

/* s3_uploads: the multipart upload a stream has open (fh_s3.c). find: -ENOENT when none. */
int fh_store_uploads_open(struct firehose *fh);
int fh_store_upload_note(struct firehose *fh, uint32_t stream_id, const char *key,
			 const char *upload_id);
int fh_store_upload_drop(struct firehose *fh, uint32_t stream_id);
int fh_store_upload_find(struct firehose *fh, uint32_t stream_id, char *key,
			 size_t key_size, char *upload_id, size_t upload_id_size);
int fh_store_fail(struct firehose *fh, const char *what);
void fh_store_column(sqlite3_stmt *st, int col, char *out, size_t size);
/* Runs `sql` with ? = id: SQLITE_ROW (*st_out on it), SQLITE_DONE, or -EIO; finalize *st_out. */
int fh_store_by_id(struct firehose *fh, const char *sql, uint32_t id, sqlite3_stmt **st_out);

/* fh_flush.c */
#define FH_UUID_SIZE 37  /* 8-4-4-4-12 and NUL. */
/* A UUID-shaped hash of (name, version, shard, [first, end)): a range's "random" part. */
void fh_range_uuid(const struct fh_job *j, uint64_t first, uint64_t end,
		   char out[FH_UUID_SIZE]);
void fh_flush_run(struct firehose *fh, uint64_t now_real_ns);
uint64_t fh_hash_text(uint64_t h, const char *text);
struct fh_prefix_vars;
/*
 * The key of one object of range [first, end): `prefix` evaluated with vars, then
 * <name>-<version>-<stamp>-<uuid><ext>, the stamp from vars->arrival_ns, the uuid (and
 * !{firehose:random-string}) a hash of the stream, range and vars->salt. -ENAMETOOLONG.
 */
int fh_object_key(const struct fh_job *j, uint64_t first, uint64_t end, const char *prefix,
		  const struct fh_prefix_vars *vars, char *out, size_t out_size);
/* Compresses raw[0..size) as the stream says and writes it to its destination as key. */
int fh_object_write(struct firehose *fh, const struct fh_job *j, const char *key,
		    const uint8_t *raw, size_t size);
/* The object of [first, end) as it is in fh->raw, under the stream's Prefix. */
int fh_job_object_write(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
			uint64_t first_arrival_ns);
/*
 * An error object: data under ErrorOutputPrefix with !{firehose:error-output-type} =
 * type (appended as "<type>/" when the prefix has none), named for [first, end) and
 * salt (0: as the range's own object). Partitioning, HTTP backup and Lambda failures.
 */
int fh_error_object_write(struct firehose *fh, const struct fh_job *j, const char *type,
			  uint64_t first, uint64_t end, uint64_t arrival_ns, uint64_t salt,
			  const uint8_t *data, size_t size);
/* Real time at which stream `s` wants the flusher, or UINT64_MAX. */
uint64_t fh_flush_due(const struct fh_stream *s);
/* Real time at which lane `l` wants the flusher, or UINT64_MAX. */
uint64_t fh_lane_due(const struct fh_stream *s, const struct fh_lane *l);
/* Cuts and delivers what is due in lane `l` (a redo first). */
int fh_flush_lane(struct firehose *fh, struct fh_stream *s, struct fh_lane *l, uint64_t now_ns);
/* A stream's gauges, gathered over its lanes, then published. */
struct fh_gauges {
	uint64_t freshness_ms;       /* The oldest waiting record's age, over all lanes. */
	uint64_t headroom_s;         /* The least time before a waiting record ages out. */
};
#define FH_GAUGES_INIT ((struct fh_gauges){ .freshness_ms = 0, .headroom_s = UINT64_MAX })
/* After fh_flush_lane: its retry pause; its freshness and retention into `g`. */
void fh_lane_account(const struct firehose *fh, struct fh_stream *s, struct fh_lane *l, int rc,
		     uint64_t now_ns, uint32_t retention_hours, struct fh_gauges *g);
void fh_gauges_publish(struct fh_stream *s, const struct fh_gauges *g);

/* fh_settings.c */
/* Loads encryption settings (and applies them to the log) after fh_store_load. */
int fh_settings_load(struct firehose *fh);
/* Forgets a deleted stream's settings and tags. */
int fh_settings_delete(struct firehose *fh, const struct fh_stream *s);

/* fh_source.c */
/* Stores the source of a new stream (inside fh_store_insert's transaction) and its lanes. */
int fh_source_create(struct firehose *fh, struct fh_stream *s);
/* Loads every stored source and its lanes (after fh_store_load). */
int fh_source_load(struct firehose *fh);
int fh_source_delete(struct firehose *fh, const struct fh_stream *s);
/* API thread: asks control/ for the views of the sources due a look (for the flusher). */
bool fh_source_stage(struct firehose *fh, uint64_t now_ns);
/* Real time of a source's next look, for the API thread's poll timeout. */
uint64_t fh_source_stage_due(const struct fh_stream *s);
/* Follows the source's shards, delivers its lanes (parents before children). */
void fh_source_run(struct firehose *fh, struct fh_stream *s, uint64_t now_ns);
uint64_t fh_source_due(const struct fh_stream *s);

/* fh_codec.c */
size_t fh_codec_bound(enum firehose_compression c, size_t size);
const char *fh_codec_extension(enum firehose_compression c);
/* Compresses in[0..size) into out (out_cap >= fh_codec_bound); deterministic bytes. */
int fh_codec_compress(enum firehose_compression c, const uint8_t *in, size_t size,
		      uint8_t *out, size_t out_cap, size_t *out_size);

/* fh_prefix.c */
#define FH_QUERY_DEPTH_MAX 8u           /* .a.b.c...: fields in one path. */
#define FH_QUERY_NAME_SIZE 65u          /* A key or field name and NUL. */
#define FH_QUERY_NAME_MAX_TEXT "64"
#define FH_VALUE_SIZE_MAX 256u          /* One partition value (a key segment). */

struct fh_query_key {
	char name[FH_QUERY_NAME_SIZE];
	bool lambda;                 /* !{partitionKeyFromLambda:name}: no fields, no query. */
	uint32_t depth;
	char fields[FH_QUERY_DEPTH_MAX][FH_QUERY_NAME_SIZE];
};

struct fh_query {
	uint32_t count;
	struct fh_query_key keys[FIREHOSE_PARTITION_KEYS_MAX];
};

/* What a prefix's expressions evaluate to for one object. */
struct fh_prefix_vars {
	uint64_t arrival_ns;                 /* The object's oldest record. */
	const char *error_type;              /* NULL: not an error object. */
	uint64_t salt;                       /* !{firehose:random-string} is made of it. */
	const struct fh_query *query;        /* NULL: no partition keys. */
	const char (*values)[FH_VALUE_SIZE_MAX + 1];   /* values[i]: query->keys[i]'s. */
};

/* -EINVAL outside the subset (fh_prefix.c's header comment). */
int fh_query_parse(const char *text, struct fh_query *q);
/*
 * Every partition key of a spec: its query's, then the Lambda keys its Prefix names.
 * -EINVAL: the query is outside the subset, or more than FIREHOSE_PARTITION_KEYS_MAX.
 */
int fh_query_from_spec(const struct firehose_spec *spec, struct fh_query *q);
/* A JSON value as a partition value: -ENOENT (absent, null, object, array), -EINVAL. */
struct cJSON;
int fh_value_text(const struct cJSON *v, char *out, size_t out_size);
/*
 * Every query key's value in one record (Lambda keys are left): 0, -EBADMSG (not a
 * JSON object), -ENOENT (a key
 * absent, null, an object or array), -EINVAL (a value no key segment may be).
 */
int fh_query_eval(const struct fh_query *q, const void *data, size_t size,
		  char values[][FH_VALUE_SIZE_MAX + 1]);
/* Prefix template t evaluated (a checked one); -ENAMETOOLONG when out is short. */
int fh_prefix_eval(const char *t, const struct fh_prefix_vars *v, char *out, size_t out_size);

/* fh_split.c: a sub-record of a record, data[off..off+size). */
struct fh_piece {
	size_t off;
	size_t size;
};
/*
 * The record's sub-records as spec->deaggregation says: 0 (*count >= 1), or -EINVAL
 * (it does not split so, or into more than FIREHOSE_DEAGG_RECORDS_MAX: kept whole).
 */
int fh_split(const struct firehose_spec *spec, const uint8_t *data, size_t size,
	     struct fh_piece pieces[FIREHOSE_DEAGG_RECORDS_MAX], uint32_t *count);

/* fh_partition.c: records in one partitioned cut (the flusher stops a cut there). */
#define FH_PART_RECORDS_MAX (1u << 17)
/* The !{firehose:error-output-type} of records that could not be partitioned (ours). */
#define FH_PARTITION_ERROR_TYPE "partitioning-failed"
struct fh_part;
int fh_partition_open(struct firehose *fh);
/*
 * The buffers of partitioned delivery (a range's worth, FH_RAW_SIZE_MAX, and per-record
 * places), taken once, when the first partitioned stream is created or loaded: others
 * never pay for them. 0 or -ENOMEM.
 */
int fh_partition_reserve(struct firehose *fh);
void fh_partition_close(struct firehose *fh);
/*
 * Before a partitioned cut is delivered (and before its Lambda processor runs): the
 * stream's partition keys. -EINVAL: they no longer parse.
 */
int fh_partition_begin(struct firehose *fh, const struct fh_job *j);
/*
 * The Lambda processor kept output record `index`; `metadata` is its answer's metadata
 * member (NULL: none): the values of the Lambda keys, from metadata.partitionKeys.
 */
void fh_partition_lambda_note(struct fh_part *p, uint32_t index, const struct cJSON *metadata);
/*
 * Record `index` of the cut is raw[off..off+size) (its delimiter, if any, follows),
 * arrived at arrival_ns.
 */
void fh_partition_note(struct fh_part *p, uint32_t index, size_t off, size_t size,
		       uint64_t arrival_ns);
/*
 * The cut [first, end) in fh->raw as one object per partition and error objects
 * (*objects_out: how many). Runs unlocked: reads j, the flusher's buffers and fh->part.
 */
int fh_partition_deliver(struct firehose *fh, const struct fh_job *j, uint64_t first,
			 uint64_t end, uint32_t *objects_out);

/* fh_s3.c: nothing to do (fh->s3 stays NULL) without an endpoint. */
int fh_s3_open(struct firehose *fh, const struct firehose_s3_options *options);
void fh_s3_close(struct firehose *fh);
/* PUTs (or uploads in parts) one object under the stream's bucket; 0 or a negative errno. */
int fh_s3_deliver(struct firehose *fh, const struct fh_job *j, const char *key,
		  const uint8_t *data, size_t size);
/* fh_http.c */
int fh_http_open(struct firehose *fh, const struct firehose_options *options);
void fh_http_close(struct firehose *fh);
int fh_http_store_create(struct firehose *fh);
/* Stores s->spec.http when s is an HTTP stream (inside fh_store_insert's transaction). */
int fh_http_store_insert(struct firehose *fh, const struct fh_stream *s);
int fh_http_store_delete(struct firehose *fh, const struct fh_stream *s);
/* Makes s (just loaded) an HTTP stream when it has a stored HTTP destination. */
int fh_http_store_load(struct firehose *fh, struct fh_stream *s);
/* Records a cut may hold (0: no limit but the size). */
uint32_t fh_records_max(const struct fh_stream *s);
/*
 * POSTs the cut in fh->raw (record_ends/arrivals filled); after RetryOptions the range
 * goes to the backup instead. 0: taken (or backed up); else retried by the flusher.
 */
int fh_http_deliver(struct firehose *fh, struct fh_job *j, uint64_t first, uint64_t end,
		    uint64_t first_arrival_ns, uint32_t records);

/* fh_lambda.c */
int fh_lambda_open(struct firehose *fh, const struct firehose_options *options);
void fh_lambda_close(struct firehose *fh);
int fh_lambda_store_create(struct firehose *fh);
int fh_lambda_store_insert(struct firehose *fh, const struct fh_stream *s);
int fh_lambda_store_delete(struct firehose *fh, const struct fh_stream *s);
int fh_lambda_store_forget(struct firehose *fh, uint32_t ds_id, uint64_t shard_id);
int fh_lambda_store_load(struct firehose *fh, struct fh_stream *s);
/* Records a cut may hold for the processor (0: it has none). */
uint32_t fh_lambda_records_max(const struct fh_stream *s);
/*
 * Transforms the cut in fh->raw (*records of them, from seq `first`): afterwards fh->raw,
 * record_ends and record_arrivals hold what the function kept, *records how many;
 * failed records are written under processing-failed/. Else an error (retried).
 */
int fh_lambda_process(struct firehose *fh, struct fh_job *j, uint64_t first,
		      uint32_t *records);

#endif /* SLUICE_FIREHOSE_FH_INTERNAL_H */
