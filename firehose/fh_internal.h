/*
 * fh_internal.h - private to firehose/: the engine's state and the seams
 * between its files:
 *
 *   FILE          CONCERN
 *   fh_main.c     open/close, the stream table, puts and their completions
 *   fh_store.c    SQLite (firehose.db): streams, delivered positions, intents
 *   fh_flush.c    the flusher: cutting ranges, naming, writing objects
 *   fh_codec.c    compression formats
 *   fh_s3.c       the S3-compatible destination (SigV4, multipart upload)
 *   fh_prefix.c   custom prefixes (!{...}) and the partitioning query's JQ subset
 *   fh_partition.c  dynamic partitioning: one range as one object per partition
 */
#ifndef SLUICE_FIREHOSE_FH_INTERNAL_H
#define SLUICE_FIREHOSE_FH_INTERNAL_H

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
};

struct fh_stream {
	bool used;
	uint32_t id;                 /* Log stream id is FIREHOSE_LOG_STREAM_BASE + id. */
	uint64_t shard_id;
	struct firehose_spec spec;
	uint64_t created_ms;
	uint32_t version;
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
	struct fh_stats_slot *stats; /* Its slot in firehose.stats (same index). */
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

struct firehose {
	char data_dir[FIREHOSE_PATH_SIZE_MAX];
	char local_root[FIREHOSE_LOCAL_ROOT_SIZE_MAX + 1];
	struct log *log;
	struct log_producer *producer;
	struct log_reader *reader;
	int event_fd;                /* The producer's completion eventfd (not ours to close). */
	sqlite3 *db;
	struct fh_stream streams[FIREHOSE_STREAMS_MAX];
	struct fh_stats_slot stats[FIREHOSE_STREAMS_MAX];
	struct fh_pending *pending;  /* FIREHOSE_PENDING_MAX */
	uint32_t pending_count;
	uint64_t flush_due_ns;       /* Real time. */
	uint8_t *raw;                /* FH_RAW_SIZE_MAX: one cut, uncompressed. */
	size_t raw_used;
	uint8_t *out;                /* fh_codec_bound(FH_RAW_SIZE_MAX) */
	size_t out_size;
	struct fh_s3 *s3;            /* NULL: objects land under local_root. */
	struct fh_part *part;        /* Dynamic partitioning's state (fh_partition.c). */
};

struct fh_stream *fh_stream_find(struct firehose *fh, const char *name);
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
/* Records [first, end) as the range being delivered. */
int fh_store_intent(struct firehose *fh, const struct fh_stream *s, uint64_t first, uint64_t end);
/* Moves the delivered position to `next` and clears the intent. */
int fh_store_delivered(struct firehose *fh, const struct fh_stream *s, uint64_t next);

/* s3_uploads: the multipart upload a stream has open (fh_s3.c). find: -ENOENT when none. */
int fh_store_uploads_open(struct firehose *fh);
int fh_store_upload_note(struct firehose *fh, const struct fh_stream *s, const char *key,
			 const char *upload_id);
int fh_store_upload_drop(struct firehose *fh, const struct fh_stream *s);
int fh_store_upload_find(struct firehose *fh, const struct fh_stream *s, char *key,
			 size_t key_size, char *upload_id, size_t upload_id_size);

/* fh_flush.c */
void fh_flush_run(struct firehose *fh, uint64_t now_real_ns);
uint64_t fh_hash_text(uint64_t h, const char *text);
struct fh_prefix_vars;
/*
 * The key of one object of range [first, end): `prefix` evaluated with vars, then
 * <name>-<version>-<stamp>-<uuid><ext>, the stamp from vars->arrival_ns, the uuid (and
 * !{firehose:random-string}) a hash of the stream, range and vars->salt. -ENAMETOOLONG.
 */
int fh_object_key(const struct fh_stream *s, uint64_t first, uint64_t end, const char *prefix,
		  const struct fh_prefix_vars *vars, char *out, size_t out_size);
/* Compresses raw[0..size) as the stream says and writes it to its destination as key. */
int fh_object_write(struct firehose *fh, struct fh_stream *s, const char *key,
		    const uint8_t *raw, size_t size);
/* Real time at which stream `s` wants the flusher, or UINT64_MAX. */
uint64_t fh_flush_due(const struct fh_stream *s);

/* fh_codec.c */
size_t fh_codec_bound(enum firehose_compression c, size_t size);
const char *fh_codec_extension(enum firehose_compression c);
/* Compresses in[0..size) into out (out_cap >= fh_codec_bound); deterministic bytes. */
int fh_codec_compress(enum firehose_compression c, const uint8_t *in, size_t size,
		      uint8_t *out, size_t out_cap, size_t *out_size);

/* fh_prefix.c */
#define FH_QUERY_DEPTH_MAX 8u           /* .a.b.c...: fields in one path. */
#define FH_QUERY_NAME_SIZE 65u          /* A key or field name and NUL. */
#define FH_VALUE_SIZE_MAX 256u          /* One partition value (a key segment). */

struct fh_query_key {
	char name[FH_QUERY_NAME_SIZE];
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
 * Every key's value in one record: 0, -EBADMSG (not a JSON object), -ENOENT (a key
 * absent, null, an object or array), -EINVAL (a value no key segment may be).
 */
int fh_query_eval(const struct fh_query *q, const void *data, size_t size,
		  char values[][FH_VALUE_SIZE_MAX + 1]);
/* Prefix template t evaluated (a checked one); -ENAMETOOLONG when out is short. */
int fh_prefix_eval(const char *t, const struct fh_prefix_vars *v, char *out, size_t out_size);

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
/* Record `index` of the cut is raw[off..off+size), arrived at arrival_ns. */
void fh_partition_note(struct fh_part *p, uint32_t index, size_t off, size_t size,
		       uint64_t arrival_ns);
/* The cut [first, end) in fh->raw as one object per partition and error objects. */
int fh_partition_deliver(struct firehose *fh, struct fh_stream *s, uint64_t first,
			 uint64_t end);

/* fh_s3.c: nothing to do (fh->s3 stays NULL) without an endpoint. */
int fh_s3_open(struct firehose *fh, const struct firehose_s3_options *options);
void fh_s3_close(struct firehose *fh);
/* PUTs (or uploads in parts) one object under the stream's bucket; 0 or a negative errno. */
int fh_s3_deliver(struct firehose *fh, const struct fh_stream *s, const char *key,
		  const uint8_t *data, size_t size);

#endif /* SLUICE_FIREHOSE_FH_INTERNAL_H */
