/*
 * kinesis_records.h - the records concern: PutRecord and PutRecords
 * (kinesis_records.c, the fast parser in kinesis_fast.c), GetShardIterator and
 * GetRecords (kinesis_read.c). Included by control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_RECORDS_H
#define SLUICE_CONTROL_KINESIS_RECORDS_H

#include "control/kinesis.h"

/* ---- Input shapes (kinesis_validate.h) ------------------------------------ */

#define KINESIS_SHAPE_PUT_RECORD(F) \
	F(PUT_RECORD, SEQUENCE_NUMBER_FOR_ORDERING, \
	  KV_STR("SequenceNumberForOrdering", false, KV_PATTERN_SEQUENCE, -1, -1)) \
	F(PUT_RECORD, PARTITION_KEY, KV_PARTITION_KEY_FIELD) \
	F(PUT_RECORD, EXPLICIT_HASH_KEY, KV_STR("ExplicitHashKey", false, KV_PATTERN_HASH_KEY, -1, -1)) \
	F(PUT_RECORD, DATA, KV_FIELD("Data", KV_BLOB, true, KV_PATTERN_NONE, -1, \
				     SLUICE_RECORD_DATA_SIZE_LARGE_MAX, -1, -1)) \
	F(PUT_RECORD, STREAM_NAME, KV_STREAM_NAME) \
	F(PUT_RECORD, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(PUT_RECORD);

#define KINESIS_SHAPE_PUT_RECORDS(F) \
	F(PUT_RECORDS, RECORDS, KV_NESTED("Records", KV_LIST, true, 1, KINESIS_PUT_RECORDS_MAX, \
					  kinesis_records_types, kinesis_records_check)) \
	F(PUT_RECORDS, STREAM_NAME, KV_STREAM_NAME) \
	F(PUT_RECORDS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(PUT_RECORDS);

#define KINESIS_SHAPE_GET_SHARD_ITERATOR(F) \
	F(GET_SHARD_ITERATOR, SHARD_ID, KV_STR("ShardId", true, KV_PATTERN_NAME, 1, 128)) \
	F(GET_SHARD_ITERATOR, SHARD_ITERATOR_TYPE, \
	  KV_ENUM("ShardIteratorType", true, kinesis_iterator_types)) \
	F(GET_SHARD_ITERATOR, STARTING_SEQUENCE_NUMBER, \
	  KV_STR("StartingSequenceNumber", false, KV_PATTERN_SEQUENCE, -1, -1)) \
	F(GET_SHARD_ITERATOR, STREAM_NAME, KV_STREAM_NAME) \
	F(GET_SHARD_ITERATOR, TIMESTAMP, \
	  KV_FIELD("Timestamp", KV_TIMESTAMP, false, KV_PATTERN_NONE, -1, -1, -1, -1)) \
	F(GET_SHARD_ITERATOR, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(GET_SHARD_ITERATOR);

#define KINESIS_SHAPE_GET_RECORDS(F) \
	F(GET_RECORDS, LIMIT, KV_INT("Limit", false, 1, KINESIS_GET_RECORDS_MAX)) \
	F(GET_RECORDS, SHARD_ITERATOR, \
	  KV_STR("ShardIterator", true, KV_PATTERN_NONE, 1, ITERATOR_TEXT_SIZE_MAX)) \
	F(GET_RECORDS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(GET_RECORDS);

/* AWS: 1..256 characters, counted in UTF-16 units as Java does. */
#define KV_PARTITION_KEY_FIELD \
	{ .name = "PartitionKey", .type = KV_STRING, .not_null = true, .length_min = 1, \
	  .length_max = KINESIS_PARTITION_KEY_CHARS_MAX, .value_min = -1, .value_max = -1, \
	  .length_in_chars = true }

/* Records[] of PutRecords: checked member by member (kinesis_records.c). */
kv_nested_types_fn kinesis_records_types;
kv_nested_check_fn kinesis_records_check;
/* GetShardIterator's ShardIteratorType values (kinesis_read.c). */
extern const char *const kinesis_iterator_types[];

kinesis_handler_fn kinesis_put_record;
kinesis_handler_fn kinesis_put_records;
int kinesis_put_records_fast(struct kinesis_req *r);
kinesis_handler_fn kinesis_get_shard_iterator;
kinesis_handler_fn kinesis_get_records;

/* ---- The pending table: puts waiting for the log's group commit ---------- */

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
	uint64_t log_id;         /* The log shard it went to (cluster mode's acks). */
	bool forwarded;          /* Sent to its shard's leader: answered from there. */
	uint32_t data_size;      /* For the stream's byte counters (metrics.h). */
};

struct kinesis_pending {
	struct api_call *call;   /* NULL when the slot is free. */
	bool put_records;
	uint32_t batch_count;
	char stream_name[SLUICE_STREAM_NAME_SIZE_MAX + 1]; /* For error messages. */
	uint32_t stream_slot;    /* The stream's series (metrics.h) ... */
	uint32_t stream_id;
	bool encrypted;          /* The stream's encryption at the call (EncryptionType) ... */
	const char *key_ref;     /* ... and its KeyId (the stream's; for KMS errors). */
	uint64_t started_ns;     /* ... and its latency, from dispatch (monotonic). */
	uint32_t record_count;
	uint32_t batches_left;
	bool replicating;        /* Durable here; waits for the replicas (cluster mode). */
	uint32_t forwards_left;  /* Forwarded requests not answered yet (kinesis_forward.c). */
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
};

struct kinesis_blob {
	const uint8_t *data;
	uint32_t size;
};

/* One record of a put on its way into the log. */
struct kinesis_put_in {
	const char *key;
	uint16_t key_size;
	const uint8_t *data;
	uint32_t data_size;
	bool has_hash_key;
	uint8_t hash_key[16];
	uint32_t shard_index;
	uint32_t order; /* Request position, for the stable per-shard sort. */
};

/* ---- kinesis_fast.c: PutRecords read in one pass, no JSON tree (see the file) ---- */
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

/* A put's working memory (struct kinesis_scratch). */
struct kinesis_put_scratch {
	struct kinesis_put_in ins[KINESIS_PUT_RECORDS_MAX];
	struct kinesis_put_in *sorted[KINESIS_PUT_RECORDS_MAX]; /* By shard, request order. */
	uint32_t next[KINESIS_PUT_RECORDS_MAX];   /* The per-shard lists of the sort. */
	uint32_t heads[KINESIS_PUT_RECORDS_MAX];
	struct kinesis_blob blobs[KINESIS_PUT_RECORDS_MAX]; /* PutRecords data, decoded. */
	struct kinesis_fast_put fast;
};

/* What kinesis_records_out() wrote. */
struct kinesis_records_read {
	uint32_t count;
	uint64_t seq_next;        /* Where to read on from. */
	uint64_t last_arrival_ns;
	uint64_t data_bytes;
};

/*
 * Writes the shard's durable records from log position `seq` as GetRecords' Records
 * members ({...},{...}) into `out`, at most `limit`, keeping out->size under
 * `size_limit` (after the first record). A position below the trim horizon moves up to
 * it, records lost to corruption are stepped over (as GetRecords does). 0 or a negative
 * errno. For SubscribeToShard's events (kinesis_consumers.c).
 */
int kinesis_records_out(struct kinesis *k, const struct kinesis_shard *sh, struct api_out *out,
			size_t size_limit, uint32_t limit, uint64_t seq,
			struct kinesis_records_read *res);

/* Completions from the log -> replies (kinesis_poll). */
void kinesis_put_poll(struct kinesis *k);
/* Every batch and forward of the call ended: answer, or wait for the replicas. */
void kinesis_pending_durable(struct kinesis *k, struct kinesis_pending *p);

/* ---- kinesis_forward.c: records for shards led elsewhere (cluster mode) ---- */

/* Leaders one call forwards to (each takes one of the forwarder's jobs). */
#define KINESIS_FORWARD_LEADERS_MAX 8u
#define KINESIS_FORWARD_ADDR_SIZE 96u

/* One call's forwarding, built while its records are submitted (on the stack). */
struct kinesis_forward_plan {
	bool enabled;             /* Cluster mode with a forwarder, the call not forwarded. */
	const char *access_key_id;
	uint64_t cookie;
	uint64_t log_id;          /* The shard asked last (records come grouped by shard) ... */
	int32_t leader;           /* ... and its leader's entry, -1: none. */
	uint32_t count;
	struct {
		char addr[KINESIS_FORWARD_ADDR_SIZE];
		struct forward_job *job;   /* NULL: no job free (its records fail throttled). */
	} leaders[KINESIS_FORWARD_LEADERS_MAX];
};

void kinesis_forward_plan_init(struct kinesis *k, struct kinesis_forward_plan *plan,
			       const struct api_request *req, uint32_t slot);
/* Adds a record of a shard not led here; false: it cannot go (fail it throttled). */
/*
 * A read of log shard `log_id` (`action`: enum forward_read) on a node that holds no
 * replica of it (docs/CLUSTER.md "Forwarding reads"): true when the call was taken,
 * passed through to a holder (answered from kinesis_forward_poll) or refused with a
 * retryable error; false: serve it here.
 */
bool kinesis_forward_read(struct kinesis_req *r, enum forward_read action, uint64_t log_id);
bool kinesis_forward_take(struct kinesis *k, struct kinesis_forward_plan *plan,
			  const char *stream, const struct kinesis_put_in *in, uint64_t log_id);
/* Sends the plan's requests: p->forwards_left of them. */
void kinesis_forward_send(struct kinesis *k, struct kinesis_forward_plan *plan,
			  struct kinesis_pending *p);
/* Answers from leaders -> the calls' results, relays pumped (kinesis_put_poll). */
void kinesis_forward_poll(struct kinesis *k);
/* A relay waits for a pool buffer: poll again soon. */
bool kinesis_forward_relays_retry(const struct kinesis *k);

#endif /* SLUICE_CONTROL_KINESIS_RECORDS_H */
