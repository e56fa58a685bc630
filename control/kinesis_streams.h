/*
 * kinesis_streams.h - the streams concern (kinesis_streams.c): the stream
 * table, CreateStream, DeleteStream, DescribeStream(Summary), ListStreams and
 * the stream settings: retention, capacity mode, DescribeLimits. Included by
 * control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_STREAMS_H
#define SLUICE_CONTROL_KINESIS_STREAMS_H

#include "control/kinesis.h"

/* ---- Input shapes (kinesis_validate.h) ------------------------------------ */

#define KINESIS_SHAPE_CREATE_STREAM(F) \
	F(CREATE_STREAM, SHARD_COUNT, KV_INT("ShardCount", false, 1, 100000)) \
	F(CREATE_STREAM, STREAM_NAME, KV_STR("StreamName", true, KV_PATTERN_NAME, 1, 128)) \
	F(CREATE_STREAM, STREAM_MODE_DETAILS, KV_MODE_FIELD(false)) \
	F(CREATE_STREAM, TAGS, KV_TAGS_FIELD) \
	F(CREATE_STREAM, MAX_RECORD_SIZE_IN_KIB, \
	  KV_INT("MaxRecordSizeInKiB", false, KINESIS_MAX_RECORD_KIB_MIN, KINESIS_MAX_RECORD_KIB_MAX)) \
	F(CREATE_STREAM, WARM_THROUGHPUT_MIBPS, KV_INT("WarmThroughputMiBps", false, 0, -1))
KV_SHAPE_ENUM(CREATE_STREAM);

#define KINESIS_SHAPE_DELETE_STREAM(F) \
	F(DELETE_STREAM, STREAM_NAME, KV_STREAM_NAME) \
	F(DELETE_STREAM, ENFORCE_CONSUMER_DELETION, \
	  KV_FIELD("EnforceConsumerDeletion", KV_BOOLEAN, false, KV_PATTERN_NONE, -1, -1, -1, -1)) \
	F(DELETE_STREAM, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(DELETE_STREAM);

#define KINESIS_SHAPE_DESCRIBE_STREAM(F) \
	F(DESCRIBE_STREAM, LIMIT, KV_INT("Limit", false, 1, 10000)) \
	F(DESCRIBE_STREAM, EXCLUSIVE_START_SHARD_ID, \
	  KV_STR("ExclusiveStartShardId", false, KV_PATTERN_NAME, 1, 128)) \
	F(DESCRIBE_STREAM, STREAM_NAME, KV_STREAM_NAME) \
	F(DESCRIBE_STREAM, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(DESCRIBE_STREAM);

#define KINESIS_SHAPE_DESCRIBE_STREAM_SUMMARY(F) \
	F(DESCRIBE_STREAM_SUMMARY, STREAM_NAME, KV_STREAM_NAME) \
	F(DESCRIBE_STREAM_SUMMARY, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(DESCRIBE_STREAM_SUMMARY);

#define KINESIS_SHAPE_LIST_STREAMS(F) \
	F(LIST_STREAMS, LIMIT, KV_INT("Limit", false, 1, 10000)) \
	F(LIST_STREAMS, EXCLUSIVE_START_STREAM_NAME, \
	  KV_STR("ExclusiveStartStreamName", false, KV_PATTERN_NAME, 1, 128)) \
	F(LIST_STREAMS, NEXT_TOKEN, KV_STR("NextToken", false, KV_PATTERN_NONE, 1, 1048576))
KV_SHAPE_ENUM(LIST_STREAMS);

/* IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod. */
#define KINESIS_SHAPE_RETENTION(F) \
	F(RETENTION, RETENTION_PERIOD_HOURS, KV_INT("RetentionPeriodHours", true, 1, 10000)) \
	F(RETENTION, STREAM_NAME, KV_STREAM_NAME) \
	F(RETENTION, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(RETENTION);

/* AWS requires the ARN here: there is no StreamName member. */
#define KINESIS_SHAPE_UPDATE_STREAM_MODE(F) \
	F(UPDATE_STREAM_MODE, STREAM_ARN, KV_STR("StreamARN", true, KV_PATTERN_ARN, 1, 2048)) \
	F(UPDATE_STREAM_MODE, STREAM_MODE_DETAILS, KV_MODE_FIELD(true))
KV_SHAPE_ENUM(UPDATE_STREAM_MODE);

/* EnableEnhancedMonitoring and DisableEnhancedMonitoring. */
#define KINESIS_SHAPE_MONITORING(F) \
	F(MONITORING, STREAM_NAME, KV_STREAM_NAME) \
	F(MONITORING, SHARD_LEVEL_METRICS, KV_NESTED("ShardLevelMetrics", KV_LIST, true, 1, 7, \
						     kv_members_are_strings, kinesis_metrics_check)) \
	F(MONITORING, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(MONITORING);

/* AWS takes only the ARN here. */
#define KINESIS_SHAPE_MAX_RECORD_SIZE(F) \
	F(MAX_RECORD_SIZE, STREAM_ARN, KV_STREAM_ARN) \
	F(MAX_RECORD_SIZE, MAX_RECORD_SIZE_IN_KIB, \
	  KV_INT("MaxRecordSizeInKiB", true, KINESIS_MAX_RECORD_KIB_MIN, KINESIS_MAX_RECORD_KIB_MAX))
KV_SHAPE_ENUM(MAX_RECORD_SIZE);

#define KINESIS_SHAPE_WARM_THROUGHPUT(F) \
	F(WARM_THROUGHPUT, STREAM_ARN, KV_STREAM_ARN) \
	F(WARM_THROUGHPUT, STREAM_NAME, KV_STREAM_NAME) \
	F(WARM_THROUGHPUT, WARM_THROUGHPUT_MIBPS, KV_INT("WarmThroughputMiBps", true, 0, -1))
KV_SHAPE_ENUM(WARM_THROUGHPUT);

#define KINESIS_SHAPE_ACCOUNT_SETTINGS(F) \
	F(ACCOUNT_SETTINGS, MINIMUM_THROUGHPUT_BILLING_COMMITMENT, \
	  KV_NESTED("MinimumThroughputBillingCommitment", KV_STRUCT, true, -1, -1, \
		    kinesis_commitment_types, kinesis_commitment_check))
KV_SHAPE_ENUM(ACCOUNT_SETTINGS);

/* AWS: records of 1 MiB by default, up to 10 MiB (MaxRecordSizeInKiB). */
#define KINESIS_MAX_RECORD_KIB_MIN 1024
#define KINESIS_MAX_RECORD_KIB_MAX 10240
static_assert(KINESIS_MAX_RECORD_KIB_MAX * 1024u == SLUICE_RECORD_DATA_SIZE_LARGE_MAX &&
	      KINESIS_MAX_RECORD_KIB_MIN * 1024u == SLUICE_RECORD_DATA_SIZE_MAX,
	      "MaxRecordSizeInKiB spans what the log stores");
/* AWS: warm throughput up to 10 GiB/s per on-demand stream. */
#define KINESIS_WARM_MIBPS_MAX 10240u
/* AWS: a minimum throughput billing commitment lasts at least 24 hours. */
#define KINESIS_COMMITMENT_MIN_MS (24ull * 3600 * 1000)

/*
 * The largest Data a record of stream `s` may carry: its MaxRecordSizeInKiB, or
 * 1 MiB when the log's batch no longer holds that (a restart with a smaller
 * [log] batch_size_kb): refused as too large, not failed in the log.
 */
uint32_t kinesis_record_data_max(const struct kinesis *k, const struct kinesis_stream *s);
/*
 * Whether this endpoint's log batch holds a record of `kib` KiB (CreateStream's
 * and UpdateMaxRecordSize's MaxRecordSizeInKiB); false after answering
 * InvalidArgumentException naming [log] batch_size_kb and the value needed.
 */
bool kinesis_record_size_admit(struct kinesis *k, struct api_call *call, uint32_t kib);

kv_nested_check_fn kinesis_metrics_check;
kv_nested_types_fn kinesis_commitment_types;
kv_nested_check_fn kinesis_commitment_check;

/* StreamModeDetails{StreamMode}: CreateStream (optional), UpdateStreamMode (required). */
#define KV_MODE_FIELD(not_null_) \
	KV_NESTED("StreamModeDetails", KV_STRUCT, not_null_, -1, -1, kinesis_mode_types, \
		  kinesis_mode_check)
kv_nested_types_fn kinesis_mode_types;
kv_nested_check_fn kinesis_mode_check;
enum metadata_mode kinesis_mode_parse(const cJSON *details);
const char *kinesis_mode_name(enum metadata_mode mode);
/* A ShardLevelMetrics list of the enum kinesis_metric bits in `metrics`. */
void kinesis_out_metrics(struct api_out *out, uint32_t metrics);
/* ,"WarmThroughput":{...} of an on-demand stream. */
void kinesis_out_warm(struct api_out *out, const struct kinesis_stream *s);
/*
 * A StreamCreationTimestamp member (ListShards, ListStreamConsumers) tells incarnations of
 * one name apart: true when absent or `s`'s creation second; else ResourceNotFoundException
 * answered (another incarnation is not found) and false.
 */
bool kinesis_stream_created_at(struct kinesis_req *r, const struct kinesis_stream *s,
			       const struct kv_value *created);
/*
 * A warm throughput of `mibps` for `stream` (operation `op`): ON_DEMAND streams of an
 * account with a billing commitment, up to KINESIS_WARM_MIBPS_MAX. False after answering.
 */
bool kinesis_warm_admit(struct kinesis_req *r, const char *op, const char *stream,
			enum metadata_mode mode, uint32_t mibps);

kinesis_handler_fn kinesis_create_stream;
kinesis_handler_fn kinesis_delete_stream;
kinesis_handler_fn kinesis_describe_stream;
kinesis_handler_fn kinesis_describe_stream_summary;
kinesis_handler_fn kinesis_list_streams;
kinesis_handler_fn kinesis_increase_retention;
kinesis_handler_fn kinesis_decrease_retention;
kinesis_handler_fn kinesis_describe_limits;
kinesis_handler_fn kinesis_update_stream_mode;
kinesis_handler_fn kinesis_enable_monitoring;
kinesis_handler_fn kinesis_disable_monitoring;
kinesis_handler_fn kinesis_update_max_record_size;
kinesis_handler_fn kinesis_update_warm_throughput;
kinesis_handler_fn kinesis_describe_account_settings;
kinesis_handler_fn kinesis_update_account_settings;

/* ---- Shared with the other concerns ---------------------------------------- */

/* Sets `now`, and `next` after stream_status_delay_ms (at once when the delay is 0). */
void kinesis_status_schedule(struct kinesis *k, struct kinesis_stream *s,
			     enum kinesis_status now, enum kinesis_status next);
/* Finishes a DELETING stream (SQLite first, then the log). */
int kinesis_stream_delete_finish(struct kinesis *k, struct kinesis_stream *s);
/* Decodes a NextToken; replies and returns -EINVAL when it is forged or expired. */
int kinesis_token_open(struct kinesis *k, struct api_call *call, const struct api_request *req,
		       const struct kv_value *text, struct iterator_token *token);

#endif /* SLUICE_CONTROL_KINESIS_STREAMS_H */
