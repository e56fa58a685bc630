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
 * Threads: the functions below are called from one thread (sluiced's API thread),
 * firehose_stats_read() from any. firehose_poll() completes puts; the flusher runs
 * on its own thread (options.flusher_thread) or inside firehose_poll().
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
/*
 * Ours: shards of its source one KinesisStreamAsSource stream follows at once (the
 * open ones and the closed ones still within the source's retention).
 */
#define FIREHOSE_SOURCE_SHARDS_MAX 256u
/*
 * Ours: a delivery whose oldest undelivered record is this close to the source's
 * retention (the log trims it then) raises the retention alarm: a metric and a log line.
 * An hour of retention: [log] retention_hour_ms scales it with the retention.
 */
#define FIREHOSE_RETENTION_MARGIN_S 3600u
/* A DirectPut stream's own log shard keeps the log's default retention (as AWS, 24 h). */
#define FIREHOSE_DIRECT_RETENTION_HOURS 24u
/* MetadataExtractionQuery: AWS allows 50 keys; the text bound is ours. */
#define FIREHOSE_PARTITION_KEYS_MAX 50u
#define FIREHOSE_QUERY_SIZE_MAX 4096u
/*
 * AppendDelimiterToRecord's Delimiter: bytes written after every delivered record.
 * AWS documents no bound; ours keeps the per-record reserve of a cut small.
 */
#define FIREHOSE_DELIMITER_SIZE_MAX 16u
/* RecordDeAggregation: sub-records of one record at most (AWS: "capped at 500 per record"). */
#define FIREHOSE_DEAGG_RECORDS_MAX 500u
/* A refusal's text (firehose_spec_check). */
#define FIREHOSE_MESSAGE_SIZE 512u

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

/* RecordDeAggregation's SubRecordType (none: records as they come). */
enum firehose_deaggregation {
	FIREHOSE_DEAGG_NONE,
	FIREHOSE_DEAGG_JSON,         /* Concatenated JSON objects, or JSON lines. */
	FIREHOSE_DEAGG_DELIMITED,    /* Pieces between the spec's split bytes. */
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
	char prefix[FIREHOSE_PREFIX_SIZE_MAX + 1];   /* With !{...} expressions (fh_prefix.c). */
	char error_prefix[FIREHOSE_PREFIX_SIZE_MAX + 1];
	/* DynamicPartitioningConfiguration.Enabled and the MetadataExtractionQuery ("" none). */
	bool partitioning;
	char query[FIREHOSE_QUERY_SIZE_MAX + 1];
	/*
	 * ProcessingConfiguration's AppendDelimiterToRecord: delimiter[0..delimiter_size)
	 * follows every record delivered to S3 (after the Lambda processor, before
	 * partitioning's objects are gathered); size 0: none.
	 */
	char delimiter[FIREHOSE_DELIMITER_SIZE_MAX + 1];
	uint32_t delimiter_size;
	/* RecordDeAggregation: records split into sub-records first (DELIMITED: at split). */
	enum firehose_deaggregation deaggregation;
	char split[FIREHOSE_DELIMITER_SIZE_MAX + 1];
	uint32_t split_size;
	uint32_t size_mb;
	uint32_t interval_s;
	enum firehose_compression compression;
	/* KinesisStreamAsSource: the source's ARN and role; both empty for DirectPut. */
	char source_arn[FIREHOSE_ARN_SIZE_MAX + 1];
	char source_role_arn[FIREHOSE_ARN_SIZE_MAX + 1];
	enum firehose_destination destination;
	struct firehose_http http;   /* FIREHOSE_DEST_HTTP only; bucket etc. are its backup's. */
	struct firehose_lambda lambda;
	/*
	 * KPL aggregates (magic F3 89 9A C2) are delivered and processed as their user
	 * records, as Firehose does for a Kinesis stream source: the flusher does so for
	 * every stream with source_arn set whatever this says. true asks it for a DirectPut
	 * stream too (the engine's tests; not stored, so not kept across a restart).
	 */
	bool deaggregate;
};

/*
 * DeliveryStreamEncryptionConfiguration. With a log key (the keyring resolved the key)
 * a DirectPut stream's own log shard is encrypted as a Kinesis stream's is
 * (log_stream_encryption_set); without one the status is recorded only.
 */
enum firehose_key_type {
	FIREHOSE_KEY_AWS_OWNED,      /* AWS_OWNED_CMK */
	FIREHOSE_KEY_CUSTOMER,       /* CUSTOMER_MANAGED_CMK: key_arn names it. */
};

struct firehose_encryption {
	bool enabled;
	enum firehose_key_type key_type;
	char key_arn[FIREHOSE_ARN_SIZE_MAX + 1];
	uint64_t log_key_id;         /* The log's key id; 0: the records are not encrypted. */
};

/*
 * The prefixes and partitioning of a spec as CreateDeliveryStream must check them: known
 * expressions in the right prefix, ErrorOutputPrefix when Prefix has expressions or
 * partitioning is on, partition keys only with partitioning and from the query, the
 * query in the JQ subset built. 0, or -EINVAL with the refusal's text in message.
 */
int firehose_spec_check(const struct firehose_spec *spec, char *message, size_t message_size);

/* What DescribeDeliveryStream shows besides the spec. */
struct firehose_info {
	struct firehose_spec spec;
	struct firehose_encryption encryption;
	uint64_t created_ms;
	uint64_t updated_ms;         /* LastUpdateTimestamp: the latest UpdateDestination; 0 none. */
	uint32_t version;            /* VersionId; the version field of object names. */
	uint64_t records_delivered;  /* Since this process started. */
	uint64_t objects_delivered;
	uint64_t records_lost;       /* Aged out of the log before delivery (since start). */
	uint64_t delivered_seq;      /* Next log seq to deliver (durable progress; DirectPut). */
	uint64_t source_start_ms;    /* KinesisStreamAsSource: DeliveryStartTimestamp. */
};

/*
 * A Kinesis stream as control/ sees it now, for a KinesisStreamAsSource stream:
 * control/ owns the shard lineage, the log only the records.
 */
struct firehose_source_shard {
	uint64_t shard_id;           /* LOG_SHARD_ID(stream_id, index) */
	uint64_t parent_ids[2];      /* Its parents' shard ids; UINT64_MAX: none. */
	bool closed;                 /* Closed and the log's close recorded: seq_durable is final. */
};

struct firehose_source_view {
	uint32_t stream_id;          /* The log's stream id (another one: the stream was recreated). */
	uint32_t retention_hours;
	uint32_t shard_count;        /* Open shards and closed ones within retention. */
	struct firehose_source_shard shards[FIREHOSE_SOURCE_SHARDS_MAX];
};

/*
 * Fills `view` for the stream `stream_arn` names: 0, -ENOENT (no such stream, or
 * not ACTIVE yet), -E2BIG (more than FIREHOSE_SOURCE_SHARDS_MAX shards to follow).
 * Called on the engine's thread.
 */
typedef int firehose_source_fn(void *ctx, const char *stream_arn,
			       struct firehose_source_view *view);

/*
 * An S3-compatible store behind every bucket ARN ([firehose] s3_*): objects are PUT to
 * <endpoint>/<bucket>/<key> (path style) or <bucket>.<host>/<key>, SigV4-signed for
 * service s3; an object over part_mb MiB is a multipart upload of part_mb MiB parts.
 */
#define FIREHOSE_S3_FIELD_SIZE_MAX 255u     /* Endpoint, region, keys (config strings). */
#define FIREHOSE_S3_PART_MB_MIN 5u          /* AWS: every part but the last >= 5 MiB. */
#define FIREHOSE_S3_PART_MB_MAX FIREHOSE_SIZE_MB_MAX
#define FIREHOSE_S3_PART_MB_DEFAULT 16u

struct firehose_s3_options {
	const char *endpoint;        /* http(s)://host[:port]; NULL or "": local_root. */
	const char *region;
	const char *access_key;
	const char *secret_key;
	bool path_style;
	uint32_t part_mb;            /* FIREHOSE_S3_PART_MB_MIN..MAX */
};

/*
 * The s3 options as firehose_open() will take them: 0, or -EINVAL with *key_out naming
 * the [firehose] key refused (an endpoint not http(s)://host[:port], a field over
 * FIREHOSE_S3_FIELD_SIZE_MAX, keys missing with an endpoint, part_mb out of range).
 */
int firehose_s3_options_check(const struct firehose_s3_options *options, const char **key_out);

struct firehose_options {
	const char *data_dir;        /* firehose.db lives here. */
	const char *local_root;      /* Objects land in local_root/<bucket>/<key>. */
	struct log *log;
	firehose_source_fn *source;  /* NULL: KinesisStreamAsSource streams are refused. */
	void *source_ctx;
	/*
	 * true: the flusher (cutting, compressing, writing objects) runs on a thread of
	 * its own, so the API thread only takes puts; false: firehose_poll() runs it.
	 */
	bool flusher_thread;
	struct firehose_s3_options s3;   /* endpoint NULL: no store, local_root. */
	const char *region;          /* For delivery streams' ARNs (NULL: us-east-1). */
	const char *account_id;      /* (NULL: 000000000000). */
	const char *lambda_map;      /* "ARN=PATH[,ARN=PATH...]" (NULL or "": none). */
	uint32_t lambda_timeout_s;   /* An invocation is killed after this (0: 60 s, fh_lambda.c). */
};

int firehose_open(const struct firehose_options *options, struct firehose **fh_out);
/* Waits (bounded) for puts still in the log; their callbacks are not called. */
void firehose_close(struct firehose *fh);

/* True when [firehose] lambda_map names an executable for the function `arn`. */
bool firehose_lambda_known(const struct firehose *fh, const char *arn);

/*
 * -EEXIST (name in use), -ENOSPC (FIREHOSE_STREAMS_MAX), or a SQLite/log error (-EIO).
 * With spec->source_arn set (KinesisStreamAsSource), reading starts at LATEST of each
 * open shard (AWS); -ENXIO: the source stream does not exist (or no options.source),
 * -E2BIG: it has more than FIREHOSE_SOURCE_SHARDS_MAX shards to follow.
 */
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

/*
 * UpdateDestination: `spec` replaces the destination (name and source are kept) if
 * `version` is the current VersionId, which then grows by one; ranges cut from now on
 * use it (and its version in their names): prefixes, hints, compression, the
 * processors, the partitioning query, the HTTP endpoint's members. -ENOENT; -ESTALE
 * (another version); -EINVAL: another destination type, or partitioning switched (AWS
 * refuses both); -EBUSY: a range is being delivered (again after a failure): its
 * object keeps the settings it began with (exactly once), so the change waits for it.
 */
int firehose_update(struct firehose *fh, const char *name, uint32_t version,
		    const struct firehose_spec *spec, uint64_t now_ms);
/* Start/StopDeliveryStreamEncryption. -ENOENT; -EPERM for a KinesisStreamAsSource stream. */
int firehose_encryption_set(struct firehose *fh, const char *name,
			    const struct firehose_encryption *encryption);

/* ---- Tags (AWS's limits) ---- */
#define FIREHOSE_TAGS_MAX 50u
#define FIREHOSE_TAG_KEY_SIZE_MAX 128u
#define FIREHOSE_TAG_VALUE_SIZE_MAX 256u

struct firehose_tag {
	char key[FIREHOSE_TAG_KEY_SIZE_MAX + 1];
	char value[FIREHOSE_TAG_VALUE_SIZE_MAX + 1];
};

/* Adds or replaces tags. -ENOENT; -E2BIG: the stream would have more than FIREHOSE_TAGS_MAX. */
int firehose_tags_add(struct firehose *fh, const char *name, const struct firehose_tag *tags,
		      uint32_t count);
/* Removes the tags of `keys` (absent ones are no error). -ENOENT. */
int firehose_tags_remove(struct firehose *fh, const char *name, const char *const *keys,
			 uint32_t count);
/*
 * The stream's tags in key order after `after` (NULL: from the first), at most `count`
 * into out; *total_out is how many there are after `after`. -ENOENT.
 */
int firehose_tags_list(struct firehose *fh, const char *name, const char *after,
		       struct firehose_tag *out, uint32_t count, uint32_t *total_out);

struct firehose_record {
	const void *data;
	uint32_t data_size;          /* 0 .. FIREHOSE_RECORD_SIZE_MAX */
};

/*
 * A put's answer: each record's log sequence number in seqs[], UINT64_MAX for a record
 * that is not durable; error is 0 when every record is, else the first negative errno
 * (-EAGAIN: the log's ring filled mid-put; -ENOSPC: disk full; -EIO: the log failed;
 * -ENOKEY, -EKEYREVOKED: the stream's key).
 */
typedef void firehose_put_fn(void *ctx, int error, const uint64_t *seqs, uint32_t count);

/*
 * Appends 1..FIREHOSE_BATCH_RECORDS_MAX records; `done` runs from a later firehose_poll()
 * once they are durable. Returns 0, -ENOENT (no such stream), -EPERM (a
 * KinesisStreamAsSource stream), -EAGAIN (no room now: the caller answers
 * ServiceUnavailable, nothing was appended), or -ENOKEY / -EKEYREVOKED (the stream's
 * encryption key is missing or disabled in the log's keyring; nothing appended).
 */
int firehose_put(struct firehose *fh, const char *name, const struct firehose_record *records,
		 uint32_t count, uint64_t now_real_ns, firehose_put_fn *done, void *ctx);

/* Readable when puts completed in the log (an eventfd; firehose_poll() resets it). */
int firehose_event_fd(const struct firehose *fh);
/* Completes puts and delivers what is due. */
void firehose_poll(struct firehose *fh, uint64_t now_real_ns);
/* Milliseconds until firehose_poll() wants to run again for a buffer due (puts: the fd). */
int firehose_poll_timeout_ms(struct firehose *fh, uint64_t now_real_ns);

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
	uint64_t retention_warnings;   /* Times a lane came within FIREHOSE_RETENTION_MARGIN_S. */
	uint64_t retention_headroom_s; /* Seconds before the oldest undelivered record ages out. */
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
