/*
 * fh_internal.h - private to firehose/: the engine's state and the seams
 * between its files:
 *
 *   FILE          CONCERN
 *   fh_main.c     open/close, the stream table, puts and their completions
 *   fh_store.c    SQLite (firehose.db): streams, delivered positions, intents
 *   fh_flush.c    the flusher: cutting ranges, naming, writing objects
 *   fh_codec.c    compression formats
 *   fh_http.c     HTTP endpoint destinations (libcurl), their backup, their table
 *   fh_lambda.c   the Lambda processor (a local executable), its table
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
	uint64_t processing_failed;
	uint64_t http_backup_records;
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
	uint64_t pending_records;    /* Their records (meaningful when pending_bytes is). */
	uint64_t oldest_ns;          /* Arrival of the record at `delivered`; 0 unknown/none. */
	uint64_t retry_due_ns;       /* Real time; 0: no failure outstanding. */
	uint64_t retry_ns;
	uint64_t http_failing_ns;    /* Monotonic time of the range's first failure; 0 none. */
	uint32_t http_attempts;      /* POSTs of the range so far. */
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
	/* FH_CUT_RECORDS_MAX each: where a cut's records end in raw, their arrival, log seq. */
	uint32_t *record_ends;
	uint64_t *record_arrivals;
	uint64_t *record_seqs;
	struct fh_http *http;        /* fh_http.c's state. */
	struct fh_lambda *lambda;    /* fh_lambda.c's state. */
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
/* Helpers for other tables: run SQL; one statement with 'i' int64 / 't' text arguments. */
int fh_store_exec(struct firehose *fh, const char *sql);
int fh_store_run(struct firehose *fh, const char *sql, const char *types,
		 const void *const *args);
int fh_store_fail(struct firehose *fh, const char *what);
void fh_store_column(sqlite3_stmt *st, int col, char *out, size_t size);
/* Runs `sql` with ? = id: SQLITE_ROW (*st_out on it), SQLITE_DONE, or -EIO; finalize *st_out. */
int fh_store_by_id(struct firehose *fh, const char *sql, uint32_t id, sqlite3_stmt **st_out);

/* fh_flush.c */
#define FH_UUID_SIZE 37  /* 8-4-4-4-12 and NUL. */
/* A UUID-shaped hash of (name, version, shard, [first, end)): a range's "random" part. */
void fh_uuid(const char *name, uint32_t version, uint64_t shard_id, uint64_t first,
	     uint64_t end, char out[FH_UUID_SIZE]);
/* Compresses data as spec says and writes it as the object spec names for the range. */
int fh_deliver_local(struct firehose *fh, const struct firehose_spec *spec, uint32_t version,
		     uint64_t shard_id, uint64_t first, uint64_t end, uint64_t first_arrival_ns,
		     const uint8_t *data, size_t size);
void fh_flush_run(struct firehose *fh, uint64_t now_real_ns);
/* Real time at which stream `s` wants the flusher, or UINT64_MAX. */
uint64_t fh_flush_due(const struct fh_stream *s);

/* fh_codec.c */
size_t fh_codec_bound(enum firehose_compression c, size_t size);
const char *fh_codec_extension(enum firehose_compression c);
/* Compresses in[0..size) into out (out_cap >= fh_codec_bound); deterministic bytes. */
int fh_codec_compress(enum firehose_compression c, const uint8_t *in, size_t size,
		      uint8_t *out, size_t out_cap, size_t *out_size);

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
int fh_http_deliver(struct firehose *fh, struct fh_stream *s, uint64_t first, uint64_t end,
		    uint64_t first_arrival_ns, uint32_t records);

/* fh_lambda.c */
int fh_lambda_open(struct firehose *fh, const struct firehose_options *options);
void fh_lambda_close(struct firehose *fh);
int fh_lambda_store_create(struct firehose *fh);
int fh_lambda_store_insert(struct firehose *fh, const struct fh_stream *s);
int fh_lambda_store_delete(struct firehose *fh, const struct fh_stream *s);
int fh_lambda_store_load(struct firehose *fh, struct fh_stream *s);
/* Records a cut may hold for the processor (0: it has none). */
uint32_t fh_lambda_records_max(const struct fh_stream *s);
/*
 * Transforms the cut in fh->raw (*records of them, from seq `first`): afterwards fh->raw,
 * record_ends and record_arrivals hold what the function kept, *records how many;
 * failed records are written under processing-failed/. Else an error (retried).
 */
int fh_lambda_process(struct firehose *fh, const struct fh_stream *s, uint64_t first,
		      uint32_t *records);

#endif /* SLUICE_FIREHOSE_FH_INTERNAL_H */
