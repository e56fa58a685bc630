/*
 * firehose.h - delivery streams (the seed's Kinesis Data Firehose): the only
 * header other folders include. The Firehose API itself (JSON, validation,
 * error texts) is control/'s; this module is the delivery engine under it.
 *
 * A DirectPut delivery stream owns one internal log shard,
 * LOG_SHARD_ID(FIREHOSE_LOG_STREAM_BASE + id, 0): PutRecord(Batch) appends
 * there and answers once the log says durable. The flusher reads that shard
 * from the delivered position, cuts a range by the stream's BufferingHints
 * (size before compression, or the oldest record's age), and delivers it as
 * one object under [firehose] local_root/<bucket>/ (docs/FIREHOSE.md).
 *
 * Exactly once: before writing an object the flusher records the range as an
 * intent in SQLite (firehose.db in data_dir); the object's name and bytes are
 * a function of the range alone (time fields from its first record's arrival,
 * the random part a hash of stream, version and range, deterministic
 * compression); it is written to a temp name, fsynced, renamed and its
 * directory fsynced; only then the delivered position moves past the range
 * and the intent is cleared. A crash anywhere redoes the intent into the same
 * name with the same bytes.
 *
 * Threads: everything runs on the caller's thread (sluiced's API thread):
 * firehose_poll() completes puts and runs the flusher.
 * Errors: functions returning int return 0 or a negative errno.
 */
#ifndef SLUICE_FIREHOSE_H
#define SLUICE_FIREHOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct log;
struct firehose;

/* The engine's SQLite database, in data_dir (sluice backup copies it too). */
#define FIREHOSE_DB_FILE "firehose.db"

/* ---- Limits (AWS's, botocore firehose service-2.json, unless marked ours) ---- */
#define FIREHOSE_NAME_SIZE_MAX 64u
#define FIREHOSE_STREAMS_MAX 64u            /* Ours: delivery streams per appliance. */
#define FIREHOSE_RECORD_SIZE_MAX 1024000u   /* Decoded bytes of one record. */
#define FIREHOSE_BATCH_RECORDS_MAX 500u
#define FIREHOSE_BATCH_SIZE_MAX (4u << 20)  /* Decoded bytes of one PutRecordBatch. */
#define FIREHOSE_SIZE_MB_MIN 1u
#define FIREHOSE_SIZE_MB_MAX 128u
#define FIREHOSE_SIZE_MB_DEFAULT 5u
#define FIREHOSE_INTERVAL_S_MAX 900u
#define FIREHOSE_INTERVAL_S_DEFAULT 300u
#define FIREHOSE_PREFIX_SIZE_MAX 1024u
#define FIREHOSE_BUCKET_SIZE_MAX 255u
#define FIREHOSE_ARN_SIZE_MAX 512u
#define FIREHOSE_PENDING_MAX 64u            /* Ours: puts waiting for the log at once. */
/* Ours: the log's stream ids from here up are delivery streams' (Kinesis ids count from 1). */
#define FIREHOSE_LOG_STREAM_BASE 0xF0000000u
/* A path under local_root: root, bucket, prefix, date part, name, version, stamp, uuid. */
#define FIREHOSE_PATH_SIZE_MAX 4096u
#define FIREHOSE_LOCAL_ROOT_SIZE_MAX 2000u

/* HttpEndpointDestinationConfiguration (AWS's limits unless marked ours). */
#define FIREHOSE_HTTP_URL_SIZE_MAX 1000u
#define FIREHOSE_HTTP_NAME_SIZE_MAX 256u
#define FIREHOSE_HTTP_ACCESS_KEY_SIZE_MAX 4096u
#define FIREHOSE_HTTP_ATTRIBUTES_MAX 50u
#define FIREHOSE_HTTP_ATTRIBUTE_NAME_SIZE_MAX 256u
#define FIREHOSE_HTTP_ATTRIBUTE_VALUE_SIZE_MAX 1024u
/* Ours: the X-Amz-Firehose-Common-Attributes header's JSON (an HTTP header, not 64 KB). */
#define FIREHOSE_HTTP_ATTRIBUTES_SIZE_MAX 8192u
#define FIREHOSE_HTTP_SIZE_MB_MAX 64u
#define FIREHOSE_HTTP_RETRY_S_MAX 7200u
#define FIREHOSE_HTTP_RETRY_S_DEFAULT 300u
#define FIREHOSE_HTTP_RECORDS_MAX 10000u      /* Records in one request. */

/* ProcessingConfiguration's Lambda processor (AWS's limits unless marked ours). */
#define FIREHOSE_LAMBDA_RETRIES_MAX 300u
#define FIREHOSE_LAMBDA_RETRIES_DEFAULT 3u
#define FIREHOSE_LAMBDA_BUFFER_MIN (1048576u / 5)   /* BufferSizeInMBs 0.2 .. 3 */
#define FIREHOSE_LAMBDA_BUFFER_MAX (3u << 20)
#define FIREHOSE_LAMBDA_BUFFER_DEFAULT (1u << 20)
#define FIREHOSE_LAMBDA_INTERVAL_S_DEFAULT 60u
#define FIREHOSE_LAMBDA_MAP_MAX 16u                /* Ours: functions in [firehose] lambda_map. */
#define FIREHOSE_LAMBDA_TIMEOUT_S_MAX 300u         /* AWS: an invocation runs 5 min at most. */

/* A Lambda processor: its function runs as the executable [firehose] lambda_map names. */
struct firehose_lambda {
	char arn[FIREHOSE_ARN_SIZE_MAX + 1];   /* LambdaArn; "" no processor. */
	uint32_t retries;            /* NumberOfRetries. */
	uint32_t buffer_bytes;       /* BufferSizeInMBs: input of one invocation at most. */
	uint32_t interval_s;         /* BufferIntervalInSeconds (kept; the cut is by the destination). */
};

enum firehose_destination {
	FIREHOSE_DEST_S3,     /* (Extended)S3DestinationConfiguration: objects under local_root. */
	FIREHOSE_DEST_HTTP,   /* HttpEndpointDestinationConfiguration; S3 is its backup. */
};

/* An HTTP endpoint destination (docs/FIREHOSE.md, "HTTP endpoints"). */
struct firehose_http {
	char url[FIREHOSE_HTTP_URL_SIZE_MAX + 1];          /* https:// (http:// ours). */
	char endpoint_name[FIREHOSE_HTTP_NAME_SIZE_MAX + 1];
	char access_key[FIREHOSE_HTTP_ACCESS_KEY_SIZE_MAX + 1];
	/* CommonAttributes as the JSON object {"name":"value",...} ("" none). */
	char attributes[FIREHOSE_HTTP_ATTRIBUTES_SIZE_MAX + 1];
	bool gzip;                   /* RequestConfiguration.ContentEncoding GZIP. */
	bool backup_all;             /* S3BackupMode AllData (else FailedDataOnly). */
	uint32_t retry_s;            /* RetryOptions.DurationInSeconds. */
};

enum firehose_compression {
	FIREHOSE_UNCOMPRESSED,
	FIREHOSE_GZIP,
	FIREHOSE_SNAPPY,      /* xerial snappy-java stream, as Firehose writes "Snappy". */
	FIREHOSE_ZSTD,        /* Extra: one zstd frame with content size and checksum. */
	FIREHOSE_ZIP,         /* One deflated entry in a PKZIP archive. */
	FIREHOSE_HADOOP_SNAPPY, /* Hadoop's BlockCompressorStream framing of snappy blocks. */
	FIREHOSE_COMPRESSION_COUNT,
};

/* AWS's CompressionFormat value ("UNCOMPRESSED", "GZIP", "Snappy", "ZIP", ...). */
const char *firehose_compression_name(enum firehose_compression c);
/* -EINVAL for an unknown value (the enum is case-sensitive, as AWS's). */
int firehose_compression_parse(const char *text, enum firehose_compression *out);

/* What CreateDeliveryStream stores (the destination's members, checked by the caller). */
struct firehose_spec {
	char name[FIREHOSE_NAME_SIZE_MAX + 1];
	char bucket[FIREHOSE_BUCKET_SIZE_MAX + 1];   /* From BucketARN arn:aws:s3:::<bucket>. */
	char bucket_arn[FIREHOSE_ARN_SIZE_MAX + 1];
	char role_arn[FIREHOSE_ARN_SIZE_MAX + 1];
	char prefix[FIREHOSE_PREFIX_SIZE_MAX + 1];   /* No !{...} expressions yet. */
	char error_prefix[FIREHOSE_PREFIX_SIZE_MAX + 1];
	uint32_t size_mb;
	uint32_t interval_s;
	enum firehose_compression compression;
	enum firehose_destination destination;
	struct firehose_http http;   /* FIREHOSE_DEST_HTTP only; bucket etc. are its backup's. */
	struct firehose_lambda lambda;
	/*
	 * KPL aggregates (magic F3 89 9A C2) are delivered and processed as their user
	 * records, as Firehose does for a Kinesis stream source: the source's to set.
	 */
	bool deaggregate;
};

/* What DescribeDeliveryStream shows besides the spec. */
struct firehose_info {
	struct firehose_spec spec;
	uint64_t created_ms;
	uint32_t version;            /* VersionId; the version field of object names. */
	uint64_t records_delivered;  /* Since this process started. */
	uint64_t objects_delivered;
	uint64_t records_lost;       /* Aged out of the log before delivery (since start). */
	uint64_t delivered_seq;      /* Next log seq to deliver (durable progress). */
};

struct firehose_options {
	const char *data_dir;        /* firehose.db lives here. */
	const char *local_root;      /* Objects land in local_root/<bucket>/<key>. */
	struct log *log;
	const char *region;          /* For delivery streams' ARNs (NULL: us-east-1). */
	const char *account_id;      /* (NULL: 000000000000). */
	const char *lambda_map;      /* "ARN=PATH[,ARN=PATH...]" (NULL or "": none). */
	uint32_t lambda_timeout_s;   /* An invocation is killed after this (0: the maximum). */
};

int firehose_open(const struct firehose_options *options, struct firehose **fh_out);
/* Waits (bounded) for puts still in the log; their callbacks are not called. */
void firehose_close(struct firehose *fh);

/* True when [firehose] lambda_map names an executable for the function `arn`. */
bool firehose_lambda_known(const struct firehose *fh, const char *arn);

/* -EEXIST (name in use), -ENOSPC (FIREHOSE_STREAMS_MAX), or a SQLite/log error (-EIO). */
int firehose_create(struct firehose *fh, const struct firehose_spec *spec, uint64_t now_ms);
/* Forgets the stream and its undelivered records (as AWS drops buffered data). -ENOENT. */
int firehose_delete(struct firehose *fh, const char *name);
int firehose_describe(struct firehose *fh, const char *name, struct firehose_info *info_out);
/*
 * Names in byte order strictly after `after` (NULL: from the start), at most `count`
 * into names_out; returns how many streams there are after `after` in total.
 */
uint32_t firehose_list(struct firehose *fh, const char *after,
		       char names_out[][FIREHOSE_NAME_SIZE_MAX + 1], uint32_t count);

struct firehose_record {
	const void *data;
	uint32_t data_size;          /* 0 .. FIREHOSE_RECORD_SIZE_MAX */
};

/*
 * A put's answer: each record's log sequence number in seqs[], UINT64_MAX for a record
 * that is not durable; error is 0 when every record is, else the first negative errno
 * (-EAGAIN: the log's ring filled mid-put; -ENOSPC: disk full; -EIO: the log failed).
 */
typedef void firehose_put_fn(void *ctx, int error, const uint64_t *seqs, uint32_t count);

/*
 * Appends 1..FIREHOSE_BATCH_RECORDS_MAX records; `done` runs from a later firehose_poll()
 * once they are durable. Returns 0, -ENOENT (no such stream), or -EAGAIN (no room now:
 * the caller answers ServiceUnavailable, nothing was appended).
 */
int firehose_put(struct firehose *fh, const char *name, const struct firehose_record *records,
		 uint32_t count, uint64_t now_real_ns, firehose_put_fn *done, void *ctx);

/* Readable when puts completed in the log (an eventfd; firehose_poll() resets it). */
int firehose_event_fd(const struct firehose *fh);
/* Completes puts and delivers what is due. */
void firehose_poll(struct firehose *fh, uint64_t now_real_ns);
/* Milliseconds until firehose_poll() wants to run again for a buffer due (puts: the fd). */
int firehose_poll_timeout_ms(const struct firehose *fh, uint64_t now_real_ns);

/*
 * One delivery stream's figures (CloudWatch's Firehose metrics), for the metrics
 * endpoint. Written by the engine's thread with relaxed stores, read from any thread.
 */
struct firehose_stats {
	char name[FIREHOSE_NAME_SIZE_MAX + 1];
	uint64_t incoming_records;     /* IncomingRecords: durable puts. */
	uint64_t incoming_bytes;       /* IncomingBytes. */
	uint64_t delivered_records;    /* DeliveryToS3.Records */
	uint64_t delivered_bytes;      /* DeliveryToS3.Bytes (before compression). */
	uint64_t delivered_objects;    /* DeliveryToS3.Success, per object. */
	uint64_t delivery_failures;    /* Attempts that failed (retried). */
	uint64_t records_lost;         /* Aged out of the log before delivery. */
	uint64_t freshness_ms;         /* DeliveryToS3.DataFreshness: oldest undelivered. */
	uint64_t processing_failed;    /* Records a Lambda processor failed (processing-failed/). */
	uint64_t http_backup_records;  /* Records an endpoint did not take (http-endpoint-failed/). */
};

/*
 * Any thread: copies the figures of up to `count` delivery streams (each consistent:
 * a slot changing owner while copied is skipped); returns how many it copied.
 */
uint32_t firehose_stats_read(const struct firehose *fh, struct firehose_stats *out,
			     uint32_t count);

/*
 * The name an object gets (key under the bucket): Firehose's
 * <prefix>YYYY/MM/DD/HH/<name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><ext>, the time
 * fields from `first_arrival_ns` (UTC), the uuid a hash of (name, version, shard,
 * seq_first, seq_end). The same range always gets the same name. -ENAMETOOLONG.
 */
int firehose_object_key(const struct firehose_spec *spec, uint32_t version,
			uint64_t shard_id, uint64_t seq_first, uint64_t seq_end,
			uint64_t first_arrival_ns, char *out, size_t out_size);

#endif /* SLUICE_FIREHOSE_H */
