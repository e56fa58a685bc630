/*
 * firehose_api.c - the Firehose API (X-Amz-Target Firehose_20150804.<Op>, JSON
 * 1.1, SigV4 service "firehose") over the delivery engine (firehose/firehose.h).
 *
 * The Kinesis layer's machinery serves it: the same operation rows (struct
 * kinesis_op), the same request decoding and AWS-order validation (kv_check
 * against each shape), the same error replies. One row per operation of the
 * 2015-08-04 model (botocore firehose service-2.json); a row without handler
 * answers UnknownOperationException saying it is not served yet (docs/API.md).
 *
 *   OPERATION               ERRORS (in the order they are checked)
 *   CreateDeliveryStream    Serialization, Validation, InvalidArgument (type, destination,
 *                           bucket, format not built, prefix expressions and dynamic
 *                           partitioning: firehose_spec_check), ResourceInUse, LimitExceeded
 *   DescribeDeliveryStream  Serialization, Validation, ResourceNotFound
 *   ListDeliveryStreams     Serialization, Validation
 *   DeleteDeliveryStream    Serialization, Validation, ResourceNotFound
 *   PutRecord(Batch)        Serialization, Validation, ResourceNotFound, InvalidArgument
 *                           (batch over 4 MiB), ServiceUnavailable (503: no room now)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "control/firehose_api.h"
#include "control/kinesis.h"
#include "firehose/firehose.h"

#define FH_TARGET_PREFIX API_FIREHOSE_TARGET_PREFIX
/* "arn:aws:firehose:" region ":" account ":deliverystream/" name (config strings). */
#define FH_ARN_SIZE (2 * CONFIG_STRING_SIZE + FIREHOSE_NAME_SIZE_MAX + 40)
#define FH_LIST_LIMIT_DEFAULT 10u
#define FH_LIMIT_MAX 10000
/*
 * Objects land in directories: a Prefix segment is a directory name (NAME_MAX 255), and
 * the last one also starts the file name "<segment>YYYY/..." (FIREHOSE.md).
 */
#define FH_PREFIX_SEGMENT_MAX 200u
#define FH_DYNAMIC_PARTITIONING "DynamicPartitioningConfiguration"
/* AWS's per-record throttling text (reference §2). */
#define FH_SLOW_DOWN "Slow down."

static const char *const fh_stream_types[] = {
	"DirectPut", "KinesisStreamAsSource", "MSKAsSource", "DatabaseAsSource", NULL,
};

/* ---- Shapes (kinesis_validate.h) ------------------------------------------ */

static kv_nested_types_fn fh_s3_types, fh_http_types, fh_record_types, fh_records_types,
	fh_source_types, fh_http_update_types;
static kv_nested_check_fn fh_s3_check, fh_ext_s3_check, fh_http_check, fh_record_check,
	fh_records_check, fh_source_check, fh_s3_update_check, fh_ext_s3_update_check,
	fh_http_update_check;
static int fh_http_spec_from(struct kinesis_req *r, const cJSON *item, struct firehose_spec *spec);
static void fh_out_http(struct api_out *out, const struct firehose_spec *spec);
static void fh_processing_check(struct kv_errors *errors, const char *base, const cJSON *item);
static int fh_lambda_spec_from(struct kinesis_req *r, const cJSON *item,
			       struct firehose_spec *spec);
static void fh_out_processing(struct api_out *out, const struct firehose_spec *spec);
static int fh_spec_from(struct kinesis_req *r, const cJSON *dest, struct firehose_spec *spec);
static cJSON *fh_processing_json(const struct firehose_spec *spec);

#define KINESIS_SHAPE_FH_CREATE(F) \
	F(FH_CREATE, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_CREATE, TYPE, KV_ENUM("DeliveryStreamType", false, fh_stream_types)) \
	F(FH_CREATE, KINESIS_SOURCE, KV_NESTED("KinesisStreamSourceConfiguration", KV_STRUCT, \
					       false, -1, -1, fh_source_types, fh_source_check)) \
	F(FH_CREATE, ENCRYPTION, KV_NESTED("DeliveryStreamEncryptionConfigurationInput", \
					   KV_STRUCT, false, -1, -1, NULL, NULL)) \
	F(FH_CREATE, S3, KV_NESTED("S3DestinationConfiguration", KV_STRUCT, false, -1, -1, \
				   fh_s3_types, fh_s3_check)) \
	F(FH_CREATE, EXT_S3, KV_NESTED("ExtendedS3DestinationConfiguration", KV_STRUCT, false, \
				       -1, -1, fh_s3_types, fh_ext_s3_check)) \
	F(FH_CREATE, HTTP, KV_NESTED("HttpEndpointDestinationConfiguration", KV_STRUCT, false, \
				     -1, -1, fh_http_types, fh_http_check)) \
	F(FH_CREATE, TAGS, KV_FH_TAGS_FIELD(false))
KV_SHAPE_ENUM(FH_CREATE);

#define KINESIS_SHAPE_FH_DESCRIBE(F) \
	F(FH_DESCRIBE, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_DESCRIBE, LIMIT, KV_INT("Limit", false, 1, FH_LIMIT_MAX)) \
	F(FH_DESCRIBE, START, KV_STR("ExclusiveStartDestinationId", false, KV_PATTERN_NAME, 1, 100))
KV_SHAPE_ENUM(FH_DESCRIBE);

#define KINESIS_SHAPE_FH_LIST(F) \
	F(FH_LIST, LIMIT, KV_INT("Limit", false, 1, FH_LIMIT_MAX)) \
	F(FH_LIST, TYPE, KV_ENUM("DeliveryStreamType", false, fh_stream_types)) \
	F(FH_LIST, START, KV_STR("ExclusiveStartDeliveryStreamName", false, KV_PATTERN_NAME, 1, \
				 FIREHOSE_NAME_SIZE_MAX))
KV_SHAPE_ENUM(FH_LIST);

#define KINESIS_SHAPE_FH_DELETE(F) \
	F(FH_DELETE, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_DELETE, FORCE, KV_FIELD("AllowForceDelete", KV_BOOLEAN, false, KV_PATTERN_NONE, \
				     -1, -1, -1, -1))
KV_SHAPE_ENUM(FH_DELETE);

#define KINESIS_SHAPE_FH_PUT(F) \
	F(FH_PUT, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_PUT, RECORD, KV_NESTED("Record", KV_STRUCT, true, -1, -1, fh_record_types, \
				    fh_record_check))
KV_SHAPE_ENUM(FH_PUT);

/* Records[] as Java renders it in a validation message. */
#define FH_RECORDS_FIELD \
	{ .name = "Records", .type = KV_LIST, .not_null = true, .length_min = 1, \
	  .length_max = FIREHOSE_BATCH_RECORDS_MAX, .value_min = -1, .value_max = -1, \
	  .element_text = "com.amazonaws.firehose.v20150804.Record@c965e310", \
	  .nested_types = fh_records_types, .nested_check = fh_records_check }

#define KINESIS_SHAPE_FH_PUT_BATCH(F) \
	F(FH_PUT_BATCH, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_PUT_BATCH, RECORDS, FH_RECORDS_FIELD)
KV_SHAPE_ENUM(FH_PUT_BATCH);

/* The destination updates a delivery stream may name (one), as the model lists them. */
#define FH_UPDATE_DEST(F, MEMBER, name_, types_, check_) \
	F(FH_UPDATE, MEMBER, KV_NESTED(name_, KV_STRUCT, false, -1, -1, types_, check_))

#define KINESIS_SHAPE_FH_UPDATE(F) \
	F(FH_UPDATE, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_UPDATE, VERSION, KV_STR("CurrentDeliveryStreamVersionId", true, KV_PATTERN_NONE, \
				     1, 50)) \
	F(FH_UPDATE, DESTINATION_ID, KV_STR("DestinationId", true, KV_PATTERN_NONE, 1, 100)) \
	FH_UPDATE_DEST(F, S3, "S3DestinationUpdate", fh_s3_types, fh_s3_update_check) \
	FH_UPDATE_DEST(F, EXT_S3, "ExtendedS3DestinationUpdate", fh_s3_types, \
		       fh_ext_s3_update_check) \
	FH_UPDATE_DEST(F, HTTP, "HttpEndpointDestinationUpdate", fh_http_update_types, \
		       fh_http_update_check)
KV_SHAPE_ENUM(FH_UPDATE);

static kinesis_handler_fn fh_create, fh_describe, fh_list, fh_delete, fh_put, fh_put_batch,
	fh_update;

/* Sorted by name, as the model lists them. */
static const struct kinesis_op fh_ops[] = {
	KINESIS_OP("CreateDeliveryStream", FH_CREATE, fh_create, KINESIS_OP_MUTATING),
	KINESIS_OP("DeleteDeliveryStream", FH_DELETE, fh_delete, KINESIS_OP_MUTATING),
	KINESIS_OP("DescribeDeliveryStream", FH_DESCRIBE, fh_describe, 0),
	KINESIS_OP("ListDeliveryStreams", FH_LIST, fh_list, 0),
	KINESIS_OP("ListTagsForDeliveryStream", FH_LIST_TAGS, fh_list_tags, 0),
	KINESIS_OP("PutRecord", FH_PUT, fh_put, KINESIS_OP_MUTATING),
	KINESIS_OP("PutRecordBatch", FH_PUT_BATCH, fh_put_batch, KINESIS_OP_MUTATING),
	KINESIS_OP("StartDeliveryStreamEncryption", FH_START_ENC, fh_start_encryption,
		   KINESIS_OP_MUTATING),
	KINESIS_OP("StopDeliveryStreamEncryption", FH_STOP_ENC, fh_stop_encryption,
		   KINESIS_OP_MUTATING),
	KINESIS_OP("TagDeliveryStream", FH_TAG, fh_tag, KINESIS_OP_MUTATING),
	KINESIS_OP("UntagDeliveryStream", FH_UNTAG, fh_untag, KINESIS_OP_MUTATING),
	KINESIS_OP("UpdateDestination", FH_UPDATE, fh_update, KINESIS_OP_MUTATING),
};

static const struct kinesis_op *
fh_op_find(const char *target, size_t size)
{
	size_t prefix = strlen(FH_TARGET_PREFIX);

	if (!api_firehose_target(target, size))
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(fh_ops); i++)
		if (strlen(fh_ops[i].name) == size - prefix &&
		    memcmp(fh_ops[i].name, target + prefix, size - prefix) == 0)
			return &fh_ops[i];
	return NULL;
}

/* ---- Nested members ------------------------------------------------------- */

int
fh_member_type(struct kinesis_req *r, const cJSON *item, const char *name, enum kv_type type)
{
	return kv_type_check(r->call, cJSON_GetObjectItemCaseSensitive(item, name), type);
}

/* DynamicPartitioningConfiguration and ProcessingConfiguration: members of the right type. */
static int
fh_processor_types(struct kinesis_req *r, const cJSON *proc)
{
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(proc, "Parameters");
	const cJSON *param;

	if (kv_type_check(r->call, proc, KV_STRUCT) != 0 ||
	    fh_member_type(r, proc, "Type", KV_STRING) != 0 ||
	    kv_type_check(r->call, params, KV_LIST) != 0)
		return -EINVAL;
	cJSON_ArrayForEach(param, params)
		if (kv_type_check(r->call, param, KV_STRUCT) != 0 ||
		    fh_member_type(r, param, "ParameterName", KV_STRING) != 0 ||
		    fh_member_type(r, param, "ParameterValue", KV_STRING) != 0)
			return -EINVAL;
	return 0;
}

static int
fh_partitioning_types(struct kinesis_req *r, const cJSON *item)
{
	const cJSON *dp = cJSON_GetObjectItemCaseSensitive(item, FH_DYNAMIC_PARTITIONING);
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(item, "ProcessingConfiguration");
	const cJSON *procs = cJSON_GetObjectItemCaseSensitive(pc, "Processors");
	const cJSON *proc;

	if (kv_type_check(r->call, dp, KV_STRUCT) != 0 ||
	    (dp != NULL && fh_member_type(r, dp, "Enabled", KV_BOOLEAN) != 0) ||
	    kv_type_check(r->call, pc, KV_STRUCT) != 0 ||
	    (pc != NULL && (fh_member_type(r, pc, "Enabled", KV_BOOLEAN) != 0 ||
			    kv_type_check(r->call, procs, KV_LIST) != 0)))
		return -EINVAL;
	cJSON_ArrayForEach(proc, procs)
		if (fh_processor_types(r, proc) != 0)
			return -EINVAL;
	return 0;
}

static int
fh_s3_types(struct kinesis_req *r, const cJSON *item)
{
	static const char *const strings[] = {
		"RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "CompressionFormat",
	};
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(item, "BufferingHints");

	for (size_t i = 0; i < ARRAY_SIZE(strings); i++)
		if (fh_member_type(r, item, strings[i], KV_STRING) != 0)
			return -EINVAL;
	if (kv_type_check(r->call, hints, KV_STRUCT) != 0)
		return -EINVAL;
	if (hints != NULL && (fh_member_type(r, hints, "SizeInMBs", KV_INTEGER) != 0 ||
			      fh_member_type(r, hints, "IntervalInSeconds", KV_INTEGER) != 0))
		return -EINVAL;
	return fh_partitioning_types(r, item);
}

static void
fh_int_check(struct kv_errors *errors, const char *path, const cJSON *item, int64_t min,
	     int64_t max)
{
	char rule[96], rendered[32];

	if (item == NULL || !cJSON_IsNumber(item))
		return;
	/* %g, not a cast: a value past long long's range (1e300) is undefined to cast. */
	snprintf(rendered, sizeof(rendered), "%.15g", item->valuedouble);
	if (item->valuedouble < (double)min) {
		snprintf(rule, sizeof(rule), "Member must have value greater than or equal to %lld",
			 (long long)min);
		kv_errors_add(errors, rendered, true, path, rule);
	}
	if (item->valuedouble > (double)max) {
		snprintf(rule, sizeof(rule), "Member must have value less than or equal to %lld",
			 (long long)max);
		kv_errors_add(errors, rendered, true, path, rule);
	}
}

/* The CompressionFormat enum of the model, plus ZSTD (our extra). */
static const char *const fh_compression_values[] = {
	"UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY", "ZSTD", NULL,
};

/* A destination's members (`required`: RoleARN and BucketARN, not in an update). */
static void
fh_dest_check(const cJSON *item, struct kv_errors *errors, const char *base, bool required)
{
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(item, "BufferingHints");
	const cJSON *format = cJSON_GetObjectItemCaseSensitive(item, "CompressionFormat");
	char path[128];

	snprintf(path, sizeof(path), "%s.roleARN", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(item, "RoleARN"), required,
			KV_PATTERN_NONE, 1, 512);
	snprintf(path, sizeof(path), "%s.bucketARN", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(item, "BucketARN"),
			required, KV_PATTERN_NONE, 1, 2048);
	snprintf(path, sizeof(path), "%s.prefix", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(item, "Prefix"), false,
			KV_PATTERN_NONE, 0, FIREHOSE_PREFIX_SIZE_MAX);
	snprintf(path, sizeof(path), "%s.errorOutputPrefix", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(item, "ErrorOutputPrefix"),
			false, KV_PATTERN_NONE, 0, FIREHOSE_PREFIX_SIZE_MAX);
	if (hints != NULL) {
		snprintf(path, sizeof(path), "%s.bufferingHints.sizeInMBs", base);
		fh_int_check(errors, path, cJSON_GetObjectItemCaseSensitive(hints, "SizeInMBs"),
			     FIREHOSE_SIZE_MB_MIN, FIREHOSE_SIZE_MB_MAX);
		snprintf(path, sizeof(path), "%s.bufferingHints.intervalInSeconds", base);
		fh_int_check(errors, path,
			     cJSON_GetObjectItemCaseSensitive(hints, "IntervalInSeconds"), 0,
			     FIREHOSE_INTERVAL_S_MAX);
	}
	if (cJSON_IsString(format)) {
		bool known = false;

		for (const char *const *v = fh_compression_values; *v != NULL; v++)
			known |= strcmp(*v, format->valuestring) == 0;
		snprintf(path, sizeof(path), "%s.compressionFormat", base);
		if (!known)
			kv_errors_add(errors, format->valuestring, true, path, "Member must "
				      "satisfy enum value set: [UNCOMPRESSED, GZIP, ZIP, Snappy, "
				      "HADOOP_SNAPPY, ZSTD]");
	}
}

/* KinesisStreamSourceConfiguration{KinesisStreamARN, RoleARN}: both required (model). */
static int
fh_source_types(struct kinesis_req *r, const cJSON *item)
{
	if (fh_member_type(r, item, "KinesisStreamARN", KV_STRING) != 0 ||
	    fh_member_type(r, item, "RoleARN", KV_STRING) != 0)
		return -EINVAL;
	return 0;
}

static void
fh_source_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	kv_string_check(errors, "kinesisStreamSourceConfiguration.kinesisStreamARN",
			cJSON_GetObjectItemCaseSensitive(item, "KinesisStreamARN"), true,
			KV_PATTERN_ARN, 1, FIREHOSE_ARN_SIZE_MAX);
	kv_string_check(errors, "kinesisStreamSourceConfiguration.roleARN",
			cJSON_GetObjectItemCaseSensitive(item, "RoleARN"), true, KV_PATTERN_NONE,
			1, FIREHOSE_ARN_SIZE_MAX);
}

static void
fh_s3_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_dest_check(item, errors, "s3DestinationConfiguration", true);
}

static void
fh_ext_s3_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_dest_check(item, errors, "extendedS3DestinationConfiguration", true);
	fh_processing_check(errors, "extendedS3DestinationConfiguration", item);
}

static void
fh_s3_update_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_dest_check(item, errors, "s3DestinationUpdate", false);
}

static void
fh_ext_s3_update_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_dest_check(item, errors, "extendedS3DestinationUpdate", false);
	fh_processing_check(errors, "extendedS3DestinationUpdate", item);
}

/* Decoded record data by position, for the handler (one request at a time). */
static struct {
	struct firehose_record records[FIREHOSE_BATCH_RECORDS_MAX];
	uint64_t bytes;
} fh_decoded;

static int
fh_record_decode(struct kinesis_req *r, const cJSON *rec, uint32_t i)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "Data");
	const uint8_t *bytes = NULL;
	uint32_t size = 0;

	if (kv_type_check(r->call, rec, KV_STRUCT) != 0 ||
	    kv_type_check(r->call, data, KV_BLOB) != 0)
		return -EINVAL;
	if (data != NULL && !cJSON_IsNull(data)) {
		bytes = kv_blob_decode(r->k, data, &size);
		if (bytes == NULL) {
			kinesis_serialization_error(r->call, "Request body too large");
			return -EINVAL;
		}
	}
	fh_decoded.records[i] = (struct firehose_record){ bytes, size };
	fh_decoded.bytes += size;
	return 0;
}

static int
fh_record_types(struct kinesis_req *r, const cJSON *item)
{
	fh_decoded.bytes = 0;
	return fh_record_decode(r, item, 0);
}

static int
fh_records_types(struct kinesis_req *r, const cJSON *item)
{
	const cJSON *rec;
	uint32_t i = 0;

	fh_decoded.bytes = 0;
	cJSON_ArrayForEach(rec, item) {
		/* Past the limit: only its type matters (the count is a validation error). */
		if (i < FIREHOSE_BATCH_RECORDS_MAX && fh_record_decode(r, rec, i) != 0)
			return -EINVAL;
		if (i >= FIREHOSE_BATCH_RECORDS_MAX && kv_type_check(r->call, rec, KV_STRUCT) != 0)
			return -EINVAL;
		i++;
	}
	return 0;
}

static void
fh_data_check(struct kv_errors *errors, const cJSON *rec, uint32_t i, const char *path)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "Data");

	if (data == NULL || cJSON_IsNull(data)) {
		kv_errors_add(errors, "null", false, path, "Member must not be null");
	} else if (i < FIREHOSE_BATCH_RECORDS_MAX &&
		   fh_decoded.records[i].data_size > FIREHOSE_RECORD_SIZE_MAX) {
		char rendered[96];

		snprintf(rendered, sizeof(rendered), "java.nio.HeapByteBuffer[pos=0 lim=%u cap=%u]",
			 fh_decoded.records[i].data_size, fh_decoded.records[i].data_size);
		kv_errors_add(errors, rendered, true, path, "Member must have length less than or "
			      "equal to 1024000");
	}
}

static void
fh_record_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_data_check(errors, item, 0, "record.data");
}

static void
fh_records_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *rec;
	uint32_t i = 0;

	(void)r;
	cJSON_ArrayForEach(rec, item) {
		char path[64];

		snprintf(path, sizeof(path), "records.%u.member.data", i + 1);
		fh_data_check(errors, rec, i, path);
		i++;
	}
}

/* ---- Replies -------------------------------------------------------------- */

static void
fh_arn(const struct kinesis *k, const char *name, char out[FH_ARN_SIZE])
{
	snprintf(out, FH_ARN_SIZE, "arn:aws:firehose:%s:%s:deliverystream/%s", k->config.region,
		 k->config.account_id, name);
}

void
fh_not_found(struct kinesis_req *r, const char *name)
{
	kinesis_error(r->call, "ResourceNotFoundException", "Firehose %s under account %s not "
		      "found.", name, r->k->config.account_id);
}

void
fh_errno_reply(struct kinesis_req *r, int rc, const char *name)
{
	if (rc == -ENOENT)
		fh_not_found(r, name);
	else if (rc == -ENOKEY || rc == -EKEYREVOKED)
		kinesis_error(r->call, "InvalidKMSResourceException", "The key of Firehose %s is "
			      "%s.", name, rc == -ENOKEY ? "not in this endpoint's keyring" :
			      "disabled");
	else if (rc == -EAGAIN || rc == -ENOSPC)
		api_call_error(r->call, 503, "ServiceUnavailableException", FH_SLOW_DOWN);
	else
		kinesis_internal_error(r->call);
}

/* ---- CreateDeliveryStream -------------------------------------------------- */

/* The source stream is not one of ours (-ENXIO) or has too many shards to follow (-E2BIG). */
static void
fh_source_error(struct kinesis_req *r, const struct firehose_spec *spec, int rc)
{
	if (rc == -E2BIG)
		kinesis_error(r->call, "InvalidArgumentException", "Kinesis stream %s has more than "
			      "%u shards to follow: not supported by this endpoint.",
			      spec->source_arn, FIREHOSE_SOURCE_SHARDS_MAX);
	else
		kinesis_error(r->call, "InvalidArgumentException", "Kinesis stream %s does not "
			      "exist (or is not ACTIVE) under account %s.", spec->source_arn,
			      r->k->config.account_id);
}

static const char *const fh_unsupported_destinations[] = {
	"RedshiftDestinationConfiguration", "ElasticsearchDestinationConfiguration",
	"AmazonopensearchserviceDestinationConfiguration", "SplunkDestinationConfiguration",
	"AmazonOpenSearchServerlessDestinationConfiguration", "SnowflakeDestinationConfiguration",
	"IcebergDestinationConfiguration",
};

static const char *
fh_member_string(const cJSON *item, const char *name, const char *absent)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, name);

	return cJSON_IsString(v) ? v->valuestring : absent;
}

static uint32_t
fh_member_u32(const cJSON *item, const char *name, uint32_t absent)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, name);

	return cJSON_IsNumber(v) ? (uint32_t)v->valuedouble : absent;
}

static size_t
fh_longest_segment(const char *path)
{
	size_t longest = 0;

	for (const char *p = path; *p != '\0';) {
		size_t n = strcspn(p, "/");

		longest = n > longest ? n : longest;
		p += n + (p[n] == '/');
	}
	return longest;
}

/*
 * AppendDelimiterToRecord's Delimiter: the text as given, with the escapes \n, \r, \t and
 * \\ read as the characters they name (AWS's examples write "\\n" as often as a newline).
 * 0 or replied.
 */
static int
fh_delimiter_from(struct kinesis_req *r, const char *text, struct firehose_spec *spec)
{
	static const char escapes[][2] = { { 'n', '\n' }, { 'r', '\r' }, { 't', '\t' },
					    { '\\', '\\' } };
	uint32_t n = 0;

	for (const char *p = text; *p != '\0'; p++) {
		char c = *p;

		for (size_t i = 0; c == '\\' && i < ARRAY_SIZE(escapes); i++)
			if (p[1] == escapes[i][0]) {
				c = escapes[i][1];
				p++;
				break;
			}
		if (n == FIREHOSE_DELIMITER_SIZE_MAX) {
			n = 0;
			break;
		}
		spec->delimiter[n++] = c;
	}
	if (n == 0) {
		kinesis_error(r->call, "InvalidArgumentException", "The Delimiter of an "
			      "AppendDelimiterToRecord processor must have 1 to %u bytes here.",
			      FIREHOSE_DELIMITER_SIZE_MAX);
		return -EINVAL;
	}
	spec->delimiter[n] = '\0';
	spec->delimiter_size = n;
	return 0;
}

/* AppendDelimiterToRecord: its only parameter is Delimiter (default a newline). */
static int
fh_append_delimiter_from(struct kinesis_req *r, const cJSON *proc, struct firehose_spec *spec)
{
	const cJSON *param;

	if (spec->delimiter_size != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Only one processor of type "
			      "AppendDelimiterToRecord is supported.");
		return -EINVAL;
	}
	spec->delimiter[0] = '\n';
	spec->delimiter[1] = '\0';
	spec->delimiter_size = 1;
	cJSON_ArrayForEach(param, cJSON_GetObjectItemCaseSensitive(proc, "Parameters")) {
		const char *name = fh_member_string(param, "ParameterName", "");

		if (strcmp(name, "Delimiter") != 0) {
			kinesis_error(r->call, "InvalidArgumentException", "Processor parameter %s "
				      "is not valid for an AppendDelimiterToRecord processor.", name);
			return -EINVAL;
		}
		if (fh_delimiter_from(r, fh_member_string(param, "ParameterValue", ""), spec) != 0)
			return -EINVAL;
	}
	return 0;
}

/* RecordDeAggregation's Delimiter: base64 (AWS: "must be a base-64 encoded string"). */
static int
fh_split_from(struct kinesis_req *r, const char *text, struct firehose_spec *spec)
{
	uint8_t bytes[FIREHOSE_DELIMITER_SIZE_MAX];
	int64_t n = base64_decode(text, strlen(text), bytes, sizeof(bytes));

	if (n <= 0 || memchr(bytes, '\0', (size_t)n) != NULL) {
		kinesis_error(r->call, "InvalidArgumentException", "The Delimiter of a "
			      "RecordDeAggregation processor must be base64 of 1 to %u bytes (no NUL) "
			      "here, not '%s'.", FIREHOSE_DELIMITER_SIZE_MAX, text);
		return -EINVAL;
	}
	memcpy(spec->split, bytes, (size_t)n);
	spec->split[n] = '\0';
	spec->split_size = (uint32_t)n;
	return 0;
}

/* RecordDeAggregation: SubRecordType JSON, or DELIMITED with its Delimiter. 0 or replied. */
static int
fh_deaggregation_from(struct kinesis_req *r, const cJSON *proc, struct firehose_spec *spec)
{
	const char *type = NULL, *split = NULL;
	const cJSON *param;

	cJSON_ArrayForEach(param, cJSON_GetObjectItemCaseSensitive(proc, "Parameters")) {
		const char *name = fh_member_string(param, "ParameterName", "");
		const char *value = fh_member_string(param, "ParameterValue", "");

		if (strcmp(name, "SubRecordType") == 0) {
			type = value;
		} else if (strcmp(name, "Delimiter") == 0) {
			split = value;
		} else {
			kinesis_error(r->call, "InvalidArgumentException", "Processor parameter %s "
				      "is not valid for a RecordDeAggregation processor.", name);
			return -EINVAL;
		}
	}
	if (spec->deaggregation != FIREHOSE_DEAGG_NONE || type == NULL ||
	    (strcmp(type, "JSON") != 0 && strcmp(type, "DELIMITED") != 0) ||
	    (strcmp(type, "DELIMITED") == 0) != (split != NULL)) {
		kinesis_error(r->call, "InvalidArgumentException", "A RecordDeAggregation processor "
			      "(one) takes SubRecordType JSON, or DELIMITED with a Delimiter.");
		return -EINVAL;
	}
	spec->deaggregation = split != NULL ? FIREHOSE_DEAGG_DELIMITED : FIREHOSE_DEAGG_JSON;
	return split != NULL ? fh_split_from(r, split, spec) : 0;
}

/*
 * One processor: MetadataExtraction's query, AppendDelimiterToRecord's delimiter,
 * RecordDeAggregation's split; Lambda is fh_lambda_spec_from's. 0 or replied.
 */
static int
fh_processor_from(struct kinesis_req *r, const cJSON *proc, struct firehose_spec *spec)
{
	const char *type = fh_member_string(proc, "Type", "");
	const cJSON *param;

	if (strcmp(type, "Lambda") == 0)
		return 0;  /* fh_lambda_spec_from's. */
	if (strcmp(type, "AppendDelimiterToRecord") == 0)
		return fh_append_delimiter_from(r, proc, spec);
	if (strcmp(type, "RecordDeAggregation") == 0)
		return fh_deaggregation_from(r, proc, spec);
	if (strcmp(type, "MetadataExtraction") != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Processor type %s is not "
			      "supported by this endpoint yet (Lambda, MetadataExtraction, "
			      "RecordDeAggregation and AppendDelimiterToRecord are).", type);
		return -EINVAL;
	}
	if (spec->query[0] != '\0') {
		kinesis_error(r->call, "InvalidArgumentException", "Only one processor of type "
			      "MetadataExtraction is supported.");
		return -EINVAL;
	}
	cJSON_ArrayForEach(param, cJSON_GetObjectItemCaseSensitive(proc, "Parameters")) {
		const char *name = fh_member_string(param, "ParameterName", "");
		const char *value = fh_member_string(param, "ParameterValue", "");

		if (strcmp(name, "JsonParsingEngine") == 0 && strcmp(value, "JQ-1.6") != 0) {
			kinesis_error(r->call, "InvalidArgumentException",
				      "JsonParsingEngine %s is not supported: JQ-1.6 is.", value);
			return -EINVAL;
		}
		if (strcmp(name, "MetadataExtractionQuery") != 0)
			continue;
		if (strlen(value) > FIREHOSE_QUERY_SIZE_MAX) {
			kinesis_error(r->call, "InvalidArgumentException",
				      "MetadataExtractionQuery may have at most %u bytes here.",
				      FIREHOSE_QUERY_SIZE_MAX);
			return -EINVAL;
		}
		snprintf(spec->query, sizeof(spec->query), "%s", value);
	}
	return 0;
}

/*
 * DynamicPartitioningConfiguration and ProcessingConfiguration (when Enabled) but its
 * Lambda processor (fh_lambda_spec_from). 0 or replied.
 */
static int
fh_partitioning_from(struct kinesis_req *r, const cJSON *dest, struct firehose_spec *spec)
{
	const cJSON *dp = cJSON_GetObjectItemCaseSensitive(dest, FH_DYNAMIC_PARTITIONING);
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(dest, "ProcessingConfiguration");
	const cJSON *proc;

	spec->partitioning = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dp, "Enabled"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pc, "Enabled")))
		cJSON_ArrayForEach(proc, cJSON_GetObjectItemCaseSensitive(pc, "Processors"))
			if (fh_processor_from(r, proc, spec) != 0)
				return -EINVAL;
	return 0;
}

/*
 * The whole spec of a destination: `dest` the S3 one (an HTTP endpoint's backup), `http`
 * the endpoint (NULL for S3), processors unless `legacy` (S3DestinationConfiguration has
 * none in the model); then the prefixes' expressions against partitioning and the
 * processors (firehose_spec_check). 0 or replied.
 */
static int
fh_spec_build(struct kinesis_req *r, const cJSON *dest, const cJSON *http, bool legacy,
	      struct firehose_spec *spec)
{
	char message[FIREHOSE_MESSAGE_SIZE];

	if (fh_spec_from(r, dest, spec) != 0 ||
	    (http != NULL && fh_http_spec_from(r, http, spec) != 0) ||
	    (!legacy && fh_lambda_spec_from(r, http != NULL ? http : dest, spec) != 0))
		return -EINVAL;
	if (firehose_spec_check(spec, message, sizeof(message)) != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "%s", message);
		return -EINVAL;
	}
	return 0;
}

/* The one destination (S3 or extended S3): its ARN, prefixes, hints. 0 or replied. */
static int
fh_spec_from(struct kinesis_req *r, const cJSON *dest, struct firehose_spec *spec)
{
	static const char s3_arn[] = "arn:aws:s3:::";
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(dest, "BufferingHints");
	const char *bucket_arn = fh_member_string(dest, "BucketARN", "");
	const char *format = fh_member_string(dest, "CompressionFormat", "UNCOMPRESSED");
	const char *bucket = bucket_arn + strlen(s3_arn);

	if (strncmp(bucket_arn, s3_arn, strlen(s3_arn)) != 0 || *bucket == '\0' ||
	    strlen(bucket) > FIREHOSE_BUCKET_SIZE_MAX || strchr(bucket, '/') != NULL ||
	    strcmp(bucket, ".") == 0 || strcmp(bucket, "..") == 0) {
		kinesis_error(r->call, "InvalidArgumentException", "BucketARN %s is not an S3 "
			      "bucket ARN (arn:aws:s3:::<bucket>).", bucket_arn);
		return -EINVAL;
	}
	if (firehose_compression_parse(format, &spec->compression) != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "CompressionFormat %s is not "
			      "supported by this endpoint yet.", format);
		return -EINVAL;
	}
	snprintf(spec->bucket, sizeof(spec->bucket), "%s", bucket);
	snprintf(spec->bucket_arn, sizeof(spec->bucket_arn), "%s", bucket_arn);
	snprintf(spec->role_arn, sizeof(spec->role_arn), "%s",
		 fh_member_string(dest, "RoleARN", ""));
	snprintf(spec->prefix, sizeof(spec->prefix), "%s", fh_member_string(dest, "Prefix", ""));
	snprintf(spec->error_prefix, sizeof(spec->error_prefix), "%s",
		 fh_member_string(dest, "ErrorOutputPrefix", ""));
	if (strstr(spec->prefix, "..") != NULL || strstr(spec->error_prefix, "..") != NULL) {
		/* A local_root destination must not climb out of its bucket directory. */
		kinesis_error(r->call, "InvalidArgumentException", "'..' in prefixes is not "
			      "supported by this endpoint.");
		return -EINVAL;
	}
	if (fh_longest_segment(spec->prefix) > FH_PREFIX_SEGMENT_MAX) {
		/* A directory name the file system refuses would fail every delivery. */
		kinesis_error(r->call, "InvalidArgumentException", "A Prefix segment between '/' "
			      "may have at most %u bytes here (a directory name).",
			      FH_PREFIX_SEGMENT_MAX);
		return -EINVAL;
	}
	spec->size_mb = fh_member_u32(hints, "SizeInMBs", FIREHOSE_SIZE_MB_DEFAULT);
	spec->interval_s = fh_member_u32(hints, "IntervalInSeconds", FIREHOSE_INTERVAL_S_DEFAULT);
	return fh_partitioning_from(r, dest, spec);
}

/* AWS's order: the source type, then exactly one destination. 0 or replied. */
static int
fh_create_check(struct kinesis_req *r, const cJSON **dest_out)
{
	const char *type = r->v[FH_CREATE_TYPE].json != NULL ? r->v[FH_CREATE_TYPE].string :
			   "DirectPut";
	const cJSON *s3 = r->v[FH_CREATE_S3].json, *ext = r->v[FH_CREATE_EXT_S3].json;
	const cJSON *source = r->v[FH_CREATE_KINESIS_SOURCE].json;
	const cJSON *http = r->v[FH_CREATE_HTTP].json;
	uint32_t others = 0;

	if (strcmp(type, "DirectPut") != 0 && strcmp(type, "KinesisStreamAsSource") != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "DeliveryStreamType %s is not "
			      "supported by this endpoint yet.", type);
		return -EINVAL;
	}
	if ((source != NULL) != (strcmp(type, "KinesisStreamAsSource") == 0)) {
		kinesis_error(r->call, "InvalidArgumentException", source != NULL ?
			      "KinesisStreamSourceConfiguration is only allowed for "
			      "KinesisStreamAsSource delivery streams." :
			      "KinesisStreamSourceConfiguration is required for "
			      "KinesisStreamAsSource delivery streams.");
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fh_unsupported_destinations); i++) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(r->root,
								  fh_unsupported_destinations[i]);

		others += d != NULL && !cJSON_IsNull(d);
	}
	if ((s3 != NULL) + (ext != NULL) + (http != NULL) + others != 1) {
		kinesis_error(r->call, "InvalidArgumentException", "Exactly one destination "
			      "configuration is supported for a Firehose");
		return -EINVAL;
	}
	if (others != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Only S3, ExtendedS3 and "
			      "HttpEndpoint destinations are supported by this endpoint yet.");
		return -EINVAL;
	}
	/* An HTTP endpoint's S3Configuration is its backup: the spec's bucket and prefixes. */
	*dest_out = ext != NULL ? ext : s3 != NULL ? s3 :
		    cJSON_GetObjectItemCaseSensitive(http, "S3Configuration");
	return 0;
}

/* KinesisStreamSourceConfiguration into the spec (the stream is looked up by the engine). */
static int
fh_source_from(struct kinesis_req *r, struct firehose_spec *spec)
{
	const cJSON *source = r->v[FH_CREATE_KINESIS_SOURCE].json;
	size_t size;

	if (source == NULL)
		return 0;
	snprintf(spec->source_arn, sizeof(spec->source_arn), "%s",
		 fh_member_string(source, "KinesisStreamARN", ""));
	snprintf(spec->source_role_arn, sizeof(spec->source_role_arn), "%s",
		 fh_member_string(source, "RoleARN", ""));
	if (kinesis_arn_name(r->k, spec->source_arn, &size) == NULL) {
		fh_source_error(r, spec, -ENXIO);
		return -EINVAL;
	}
	return 0;
}

static void
fh_create(struct kinesis_req *r)
{
	struct firehose_spec spec = { 0 };
	const cJSON *dest = NULL;
	char arn[FH_ARN_SIZE];
	int rc;

	if (fh_create_check(r, &dest) != 0 ||
	    fh_spec_build(r, dest, r->v[FH_CREATE_HTTP].json, r->v[FH_CREATE_S3].json != NULL,
			  &spec) != 0 || fh_source_from(r, &spec) != 0)
		return;
	snprintf(spec.name, sizeof(spec.name), "%s", r->v[FH_CREATE_NAME].string);
	rc = firehose_create(r->k->firehose, &spec, kinesis_now_ms(r->req));
	if (rc == -ENXIO || rc == -E2BIG) {
		fh_source_error(r, &spec, rc);
		return;
	}
	if (rc == -EEXIST) {
		kinesis_error(r->call, "ResourceInUseException", "Firehose %s under accountId %s "
			      "already exists", spec.name, r->k->config.account_id);
		return;
	}
	if (rc == -ENOSPC) {
		kinesis_error(r->call, "LimitExceededException", "You have already consumed your "
			      "firehose quota of %u hoses.", FIREHOSE_STREAMS_MAX);
		return;
	}
	if (rc != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	if (fh_tags_create(r, r->v[FH_CREATE_TAGS].json, spec.name) != 0)
		return;
	fh_arn(r->k, spec.name, arn);
	api_out_printf(api_call_out(r->call), "{\"DeliveryStreamARN\":");
	api_out_json_string(api_call_out(r->call), arn, strlen(arn));
	api_out_printf(api_call_out(r->call), "}");
	api_call_reply(r->call, 200);
}

/* ---- DescribeDeliveryStream, ListDeliveryStreams, DeleteDeliveryStream ------ */

static void
fh_out_member(struct api_out *out, const char *name, const char *value, bool comma)
{
	api_out_printf(out, "%s\"%s\":", comma ? "," : "", name);
	api_out_json_string(out, value, strlen(value));
}

static void
fh_out_partitioning(struct api_out *out, const struct firehose_spec *spec)
{
	if (spec->partitioning)
		api_out_printf(out, ",\"DynamicPartitioningConfiguration\":{\"Enabled\":true}");
}

static void
fh_out_destination(struct api_out *out, const struct firehose_spec *spec, bool extended)
{
	api_out_printf(out, "{");
	fh_out_member(out, "RoleARN", spec->role_arn, false);
	fh_out_member(out, "BucketARN", spec->bucket_arn, true);
	fh_out_member(out, "Prefix", spec->prefix, true);
	if (spec->error_prefix[0] != '\0')
		fh_out_member(out, "ErrorOutputPrefix", spec->error_prefix, true);
	api_out_printf(out, ",\"BufferingHints\":{\"SizeInMBs\":%u,\"IntervalInSeconds\":%u}",
		       spec->size_mb, spec->interval_s);
	fh_out_member(out, "CompressionFormat", firehose_compression_name(spec->compression), true);
	api_out_printf(out, ",\"EncryptionConfiguration\":{\"NoEncryptionConfig\":\"NoEncryption\"}"
		       ",\"CloudWatchLoggingOptions\":{\"Enabled\":false}");
	if (extended) {
		api_out_printf(out, ",\"S3BackupMode\":\"Disabled\"");
		fh_out_partitioning(out, spec);
		fh_out_processing(out, spec);
	}
	api_out_printf(out, "}");
}

static const char *
fh_type_name(const struct firehose_spec *spec)
{
	return spec->source_arn[0] != '\0' ? "KinesisStreamAsSource" : "DirectPut";
}

static void
fh_describe(struct kinesis_req *r)
{
	struct api_out *out = api_call_out(r->call);
	struct firehose_info info;
	char arn[FH_ARN_SIZE];
	int rc = firehose_describe(r->k->firehose, r->v[FH_DESCRIBE_NAME].string, &info);

	if (rc != 0) {
		fh_errno_reply(r, rc, r->v[FH_DESCRIBE_NAME].string);
		return;
	}
	fh_arn(r->k, info.spec.name, arn);
	api_out_printf(out, "{\"DeliveryStreamDescription\":{");
	fh_out_member(out, "DeliveryStreamName", info.spec.name, false);
	fh_out_member(out, "DeliveryStreamARN", arn, true);
	api_out_printf(out, ",\"DeliveryStreamStatus\":\"ACTIVE\"");
	fh_out_encryption(out, &info.encryption);
	api_out_printf(out, ",\"DeliveryStreamType\":\"%s\",\"VersionId\":\"%u\","
		       "\"CreateTimestamp\":", fh_type_name(&info.spec), info.version);
	kinesis_out_timestamp(out, info.created_ms);
	if (info.updated_ms != 0) {
		api_out_printf(out, ",\"LastUpdateTimestamp\":");
		kinesis_out_timestamp(out, info.updated_ms);
	}
	if (info.spec.source_arn[0] != '\0') {
		api_out_printf(out, ",\"Source\":{\"KinesisStreamSourceDescription\":{");
		fh_out_member(out, "KinesisStreamARN", info.spec.source_arn, false);
		fh_out_member(out, "RoleARN", info.spec.source_role_arn, true);
		api_out_printf(out, ",\"DeliveryStartTimestamp\":");
		kinesis_out_timestamp(out, info.source_start_ms);
		api_out_printf(out, "}}");
	}
	api_out_printf(out, ",\"Destinations\":[{\"DestinationId\":\"destinationId-000000000001\",");
	if (info.spec.destination == FIREHOSE_DEST_HTTP) {
		fh_out_http(out, &info.spec);
	} else {
		api_out_printf(out, "\"S3DestinationDescription\":");
		fh_out_destination(out, &info.spec, false);
		api_out_printf(out, ",\"ExtendedS3DestinationDescription\":");
		fh_out_destination(out, &info.spec, true);
	}
	api_out_printf(out, "}],\"HasMoreDestinations\":false}}");
	api_call_reply(r->call, 200);
}

static void
fh_list(struct kinesis_req *r)
{
	static char names[FIREHOSE_STREAMS_MAX][FIREHOSE_NAME_SIZE_MAX + 1];
	struct api_out *out = api_call_out(r->call);
	const struct kv_value *type = &r->v[FH_LIST_TYPE];
	uint32_t limit = r->v[FH_LIST_LIMIT].json != NULL ? (uint32_t)r->v[FH_LIST_LIMIT].number :
			 FH_LIST_LIMIT_DEFAULT;
	uint32_t total, n = 0, shown = 0;

	total = firehose_list(r->k->firehose, r->v[FH_LIST_START].json != NULL ?
			      r->v[FH_LIST_START].string : NULL, names, FIREHOSE_STREAMS_MAX);
	api_out_printf(out, "{\"DeliveryStreamNames\":[");
	for (uint32_t i = 0; i < total && i < FIREHOSE_STREAMS_MAX; i++) {
		struct firehose_info info;

		if (firehose_describe(r->k->firehose, names[i], &info) != 0 ||
		    (type->json != NULL && strcmp(type->string, fh_type_name(&info.spec)) != 0))
			continue;
		n++;  /* Of the type asked for; shown up to the limit. */
		if (shown == limit)
			continue;
		api_out_printf(out, "%s", shown++ == 0 ? "" : ",");
		api_out_json_string(out, names[i], strlen(names[i]));
	}
	api_out_printf(out, "],\"HasMoreDeliveryStreams\":%s}", n > shown ? "true" : "false");
	api_call_reply(r->call, 200);
}

static void
fh_delete(struct kinesis_req *r)
{
	int rc = firehose_delete(r->k->firehose, r->v[FH_DELETE_NAME].string);

	if (rc != 0) {
		fh_errno_reply(r, rc, r->v[FH_DELETE_NAME].string);
		return;
	}
	api_out_printf(api_call_out(r->call), "{}");
	api_call_reply(r->call, 200);
}

/* ---- UpdateDestination --------------------------------------------------------- */

/* AWS's only DestinationId while a stream has one destination. */
#define FH_DESTINATION_ID "destinationId-000000000001"

static const char *const fh_other_updates[] = {
	"RedshiftDestinationUpdate", "ElasticsearchDestinationUpdate",
	"AmazonopensearchserviceDestinationUpdate", "SplunkDestinationUpdate",
	"AmazonOpenSearchServerlessDestinationUpdate", "SnowflakeDestinationUpdate",
	"IcebergDestinationUpdate",
};

/*
 * Lays `update`'s members over `base`: objects member by member (AWS merges an update
 * of the same type: members left out are kept), anything else replaced. false: no memory.
 */
static bool
fh_json_overlay(cJSON *base, const cJSON *update)
{
	const cJSON *member;

	cJSON_ArrayForEach(member, update) {
		cJSON *have = cJSON_GetObjectItemCaseSensitive(base, member->string);
		cJSON *copy;

		if (cJSON_IsObject(have) && cJSON_IsObject(member)) {
			if (!fh_json_overlay(have, member))
				return false;
			continue;
		}
		copy = cJSON_Duplicate(member, true);
		if (copy == NULL)
			return false;
		if (have != NULL ? !cJSON_ReplaceItemViaPointer(base, have, copy) :
		    !cJSON_AddItemToObject(base, member->string, copy)) {
			cJSON_Delete(copy);
			return false;
		}
	}
	return true;
}

/* The S3 destination (or an endpoint's backup) as it is, in CreateDeliveryStream's shape. */
static cJSON *
fh_s3_json(const struct firehose_spec *spec, bool extended)
{
	cJSON *dest = cJSON_CreateObject();
	cJSON *hints = cJSON_AddObjectToObject(dest, "BufferingHints");  /* Owned by dest. */
	cJSON *dp = NULL, *pc = extended ? fh_processing_json(spec) : NULL;
	bool ok = hints != NULL &&
		  cJSON_AddStringToObject(dest, "RoleARN", spec->role_arn) != NULL &&
		  cJSON_AddStringToObject(dest, "BucketARN", spec->bucket_arn) != NULL &&
		  cJSON_AddStringToObject(dest, "Prefix", spec->prefix) != NULL &&
		  cJSON_AddStringToObject(dest, "ErrorOutputPrefix", spec->error_prefix) != NULL &&
		  cJSON_AddStringToObject(dest, "CompressionFormat",
					  firehose_compression_name(spec->compression)) != NULL &&
		  cJSON_AddNumberToObject(hints, "SizeInMBs", spec->size_mb) != NULL &&
		  cJSON_AddNumberToObject(hints, "IntervalInSeconds", spec->interval_s) != NULL;

	if (ok && pc != NULL)
		ok = cJSON_AddItemToObject(dest, "ProcessingConfiguration", pc);
	else
		cJSON_Delete(pc);
	if (ok && extended && spec->partitioning) {
		dp = cJSON_AddObjectToObject(dest, FH_DYNAMIC_PARTITIONING);
		ok = dp != NULL && cJSON_AddTrueToObject(dp, "Enabled") != NULL;
	}
	if (!ok) {
		cJSON_Delete(dest);
		return NULL;
	}
	return dest;
}

/* CommonAttributes as their list, from the JSON object the spec keeps. */
static bool
fh_attributes_json(cJSON *request, const struct firehose_http *http)
{
	cJSON *object = cJSON_Parse(http->attributes[0] != '\0' ? http->attributes : "{}");
	cJSON *list = cJSON_AddArrayToObject(request, "CommonAttributes");
	const cJSON *a;
	bool ok = object != NULL && list != NULL;

	cJSON_ArrayForEach(a, object) {
		cJSON *pair = cJSON_CreateObject();

		ok = ok && cJSON_AddItemToArray(list, pair) &&
		     cJSON_AddStringToObject(pair, "AttributeName", a->string) != NULL &&
		     cJSON_AddStringToObject(pair, "AttributeValue",
					     cJSON_IsString(a) ? a->valuestring : "") != NULL;
	}
	cJSON_Delete(object);
	return ok;
}

/* The HTTP endpoint destination as it is, AccessKey too, in CreateDeliveryStream's shape. */
static cJSON *
fh_http_json(const struct firehose_spec *spec)
{
	const struct firehose_http *http = &spec->http;
	cJSON *dest = cJSON_CreateObject();
	cJSON *endpoint = cJSON_AddObjectToObject(dest, "EndpointConfiguration");
	cJSON *hints = cJSON_AddObjectToObject(dest, "BufferingHints");
	cJSON *request = cJSON_AddObjectToObject(dest, "RequestConfiguration");
	cJSON *retry = cJSON_AddObjectToObject(dest, "RetryOptions");
	cJSON *s3 = fh_s3_json(spec, false), *pc = fh_processing_json(spec);
	bool ok = endpoint != NULL && hints != NULL && request != NULL && retry != NULL &&
		  cJSON_AddItemToObject(dest, "S3Configuration", s3) &&
		  cJSON_AddStringToObject(endpoint, "Url", http->url) != NULL &&
		  cJSON_AddStringToObject(endpoint, "AccessKey", http->access_key) != NULL &&
		  (http->endpoint_name[0] == '\0' ||
		   cJSON_AddStringToObject(endpoint, "Name", http->endpoint_name) != NULL) &&
		  cJSON_AddNumberToObject(hints, "SizeInMBs", spec->size_mb) != NULL &&
		  cJSON_AddNumberToObject(hints, "IntervalInSeconds", spec->interval_s) != NULL &&
		  cJSON_AddStringToObject(request, "ContentEncoding",
					  http->gzip ? "GZIP" : "NONE") != NULL &&
		  fh_attributes_json(request, http) &&
		  cJSON_AddNumberToObject(retry, "DurationInSeconds", http->retry_s) != NULL &&
		  cJSON_AddStringToObject(dest, "S3BackupMode",
					  http->backup_all ? "AllData" : "FailedDataOnly") != NULL;

	if (ok && pc != NULL)
		ok = cJSON_AddItemToObject(dest, "ProcessingConfiguration", pc);
	else
		cJSON_Delete(pc);
	if (!ok) {
		if (s3 != NULL && cJSON_GetObjectItemCaseSensitive(dest, "S3Configuration") != s3)
			cJSON_Delete(s3);
		cJSON_Delete(dest);
		return NULL;
	}
	return dest;
}

/*
 * The destination as it is with the update laid over it (an endpoint's S3Update over
 * its S3Configuration): fh_spec_build() reads it as it reads a new one, so an update is
 * checked exactly as a creation. NULL: no memory.
 */
static cJSON *
fh_update_merge(const struct firehose_info *info, const cJSON *update)
{
	bool http = info->spec.destination == FIREHOSE_DEST_HTTP;
	cJSON *merged = http ? fh_http_json(&info->spec) : fh_s3_json(&info->spec, true);
	const cJSON *s3_update = cJSON_GetObjectItemCaseSensitive(update, "S3Update");
	bool ok = merged != NULL && fh_json_overlay(merged, update);

	if (ok && http) {
		cJSON_DeleteItemFromObjectCaseSensitive(merged, "S3Update");
		ok = fh_json_overlay(cJSON_GetObjectItemCaseSensitive(merged, "S3Configuration"),
				     s3_update);
	}
	if (!ok) {
		cJSON_Delete(merged);
		return NULL;
	}
	return merged;
}

/* AWS's order after the shape: the stream, its destination id, the version, the update. */
static int
fh_update_check(struct kinesis_req *r, const struct firehose_info *info, const cJSON **dest_out)
{
	const char *name = r->v[FH_UPDATE_NAME].string;
	const char *version = r->v[FH_UPDATE_VERSION].string;
	const cJSON *s3 = r->v[FH_UPDATE_S3].json, *ext = r->v[FH_UPDATE_EXT_S3].json;
	const cJSON *http = r->v[FH_UPDATE_HTTP].json;
	bool is_http = info->spec.destination == FIREHOSE_DEST_HTTP;
	char current[16];

	if (strcmp(r->v[FH_UPDATE_DESTINATION_ID].string, FH_DESTINATION_ID) != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Destination Id %s of Firehose %s "
			      "under account %s not found.", r->v[FH_UPDATE_DESTINATION_ID].string,
			      name, r->k->config.account_id);
		return -EINVAL;
	}
	snprintf(current, sizeof(current), "%u", info->version);
	if (strcmp(version, current) != 0) {
		kinesis_error(r->call, "ConcurrentModificationException", "Cannot update firehose: "
			      "%s since the current version id: %s and specified version id: %s do "
			      "not match", name, current, version);
		return -ESTALE;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fh_other_updates); i++)
		if (cJSON_GetObjectItemCaseSensitive(r->root, fh_other_updates[i]) != NULL) {
			kinesis_error(r->call, "InvalidArgumentException", "Only S3, ExtendedS3 and "
				      "HttpEndpoint destinations are supported by this endpoint yet.");
			return -EINVAL;
		}
	if ((s3 != NULL) + (ext != NULL) + (http != NULL) != 1) {
		kinesis_error(r->call, "InvalidArgumentException", "Exactly one destination "
			      "update is supported for a Firehose");
		return -EINVAL;
	}
	if ((http != NULL) != is_http) {
		/* AWS: "switching to or from an HTTP endpoint destination is not supported". */
		kinesis_error(r->call, "InvalidArgumentException", "Firehose %s has %s destination: "
			      "an update cannot switch it to %s destination.", name,
			      is_http ? "an HttpEndpoint" : "an S3", is_http ? "an S3" :
			      "an HttpEndpoint");
		return -EINVAL;
	}
	*dest_out = ext != NULL ? ext : s3 != NULL ? s3 : http;
	return 0;
}

/* The merged update into spec; AWS's rules on what an update may not change. 0 or replied. */
static int
fh_update_spec(struct kinesis_req *r, const struct firehose_info *info, const cJSON *merged,
	       struct firehose_spec *spec)
{
	bool http = info->spec.destination == FIREHOSE_DEST_HTTP;
	const cJSON *dest = http ? cJSON_GetObjectItemCaseSensitive(merged, "S3Configuration") :
			    merged;
	bool partitioning = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(merged, FH_DYNAMIC_PARTITIONING), "Enabled"));

	if (partitioning != info->spec.partitioning) {
		/* AWS (CDK's DynamicPartitioningProps): "You cannot enable dynamic partitioning
		 * for an existing Firehose stream"; nor can it be disabled. */
		kinesis_error(r->call, "InvalidArgumentException", "Dynamic partitioning cannot be "
			      "%s for an existing Firehose stream.",
			      partitioning ? "enabled" : "disabled");
		return -EINVAL;
	}
	return fh_spec_build(r, dest, http ? merged : NULL, false, spec);
}

static void
fh_update(struct kinesis_req *r)
{
	static struct firehose_info info;  /* API thread only. */
	static struct firehose_spec spec;
	const char *name = r->v[FH_UPDATE_NAME].string;
	const cJSON *update = NULL;
	cJSON *merged;
	int rc = firehose_describe(r->k->firehose, name, &info);

	if (rc != 0) {
		fh_errno_reply(r, rc, name);
		return;
	}
	if (fh_update_check(r, &info, &update) != 0)
		return;
	merged = fh_update_merge(&info, update);
	if (merged == NULL) {
		kinesis_internal_error(r->call);
		return;
	}
	memset(&spec, 0, sizeof(spec));
	rc = fh_update_spec(r, &info, merged, &spec);
	cJSON_Delete(merged);
	if (rc != 0)
		return;
	rc = firehose_update(r->k->firehose, name, info.version, &spec, kinesis_now_ms(r->req));
	if (rc == -EBUSY)
		kinesis_error(r->call, "ResourceInUseException", "Firehose %s under account %s is "
			      "delivering a range; its settings change once it is delivered.",
			      name, r->k->config.account_id);
	else if (rc != 0)
		fh_errno_reply(r, rc, name);
	if (rc != 0)
		return;
	api_out_printf(api_call_out(r->call), "{}");
	api_call_reply(r->call, 200);
}

/* ---- HttpEndpointDestinationConfiguration ------------------------------------ */

static const char *const fh_http_encodings[] = { "NONE", "GZIP", NULL };
static const char *const fh_http_backup_modes[] = { "FailedDataOnly", "AllData", NULL };

/* The member's type (SerializationException) when present. */
static int
fh_members_typed(struct kinesis_req *r, const cJSON *item, const char *const *names,
		 size_t count, enum kv_type type)
{
	for (size_t i = 0; i < count; i++)
		if (fh_member_type(r, item, names[i], type) != 0)
			return -EINVAL;
	return 0;
}

static int
fh_http_types(struct kinesis_req *r, const cJSON *item)
{
	static const char *const structs[] = {
		"EndpointConfiguration", "BufferingHints", "RequestConfiguration", "RetryOptions",
		"S3Configuration", "ProcessingConfiguration", "CloudWatchLoggingOptions",
	};
	static const char *const endpoint[] = { "Url", "Name", "AccessKey" };
	static const char *const pair[] = { "AttributeName", "AttributeValue" };
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(item, "RequestConfiguration");
	const cJSON *attributes = cJSON_GetObjectItemCaseSensitive(request, "CommonAttributes");
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(item, "BufferingHints");
	const cJSON *s3 = cJSON_GetObjectItemCaseSensitive(item, "S3Configuration");
	const cJSON *list = cJSON_IsArray(attributes) ? attributes : NULL;
	const cJSON *a;

	if (fh_members_typed(r, item, structs, ARRAY_SIZE(structs), KV_STRUCT) != 0 ||
	    fh_member_type(r, item, "S3BackupMode", KV_STRING) != 0 ||
	    fh_member_type(r, item, "RoleARN", KV_STRING) != 0 ||
	    fh_members_typed(r, cJSON_GetObjectItemCaseSensitive(item, "EndpointConfiguration"),
			     endpoint, ARRAY_SIZE(endpoint), KV_STRING) != 0 ||
	    fh_member_type(r, hints, "SizeInMBs", KV_INTEGER) != 0 ||
	    fh_member_type(r, hints, "IntervalInSeconds", KV_INTEGER) != 0 ||
	    fh_member_type(r, request, "ContentEncoding", KV_STRING) != 0 ||
	    fh_member_type(r, request, "CommonAttributes", KV_LIST) != 0 ||
	    fh_member_type(r, cJSON_GetObjectItemCaseSensitive(item, "RetryOptions"),
			   "DurationInSeconds", KV_INTEGER) != 0 ||
	    (s3 != NULL && fh_s3_types(r, s3) != 0) || fh_partitioning_types(r, item) != 0)
		return -EINVAL;
	cJSON_ArrayForEach(a, list)
		if (kv_type_check(r->call, a, KV_STRUCT) != 0 ||
		    fh_members_typed(r, a, pair, ARRAY_SIZE(pair), KV_STRING) != 0)
			return -EINVAL;
	return 0;
}

static void
fh_enum_check(struct kv_errors *errors, const char *path, const cJSON *item,
	      const char *const *values, const char *rule)
{
	bool known = false;

	if (!cJSON_IsString(item))
		return;
	for (const char *const *v = values; *v != NULL; v++)
		known |= strcmp(*v, item->valuestring) == 0;
	if (!known)
		kv_errors_add(errors, item->valuestring, true, path, rule);
}

static void
fh_http_attributes_check(const cJSON *attributes, struct kv_errors *errors, const char *base)
{
	uint32_t i = 0;
	const cJSON *a;
	char path[192];

	snprintf(path, sizeof(path), "%s.requestConfiguration.commonAttributes", base);
	if (cJSON_GetArraySize(attributes) > (int)FIREHOSE_HTTP_ATTRIBUTES_MAX) {
		char rendered[32];

		snprintf(rendered, sizeof(rendered), "%d", cJSON_GetArraySize(attributes));
		kv_errors_add(errors, rendered, false, path, "Member must have length less than "
			      "or equal to 50");
	}
	cJSON_ArrayForEach(a, attributes) {
		i++;
		snprintf(path, sizeof(path), "%s.requestConfiguration.commonAttributes.%u.member."
			 "attributeName", base, i);
		kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(a, "AttributeName"),
				true, KV_PATTERN_NONE, 1, FIREHOSE_HTTP_ATTRIBUTE_NAME_SIZE_MAX);
		snprintf(path, sizeof(path), "%s.requestConfiguration.commonAttributes.%u.member."
			 "attributeValue", base, i);
		kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(a, "AttributeValue"),
				true, KV_PATTERN_NONE, 0, FIREHOSE_HTTP_ATTRIBUTE_VALUE_SIZE_MAX);
	}
}

/* EndpointConfiguration's members (an update may leave the whole member out). */
static void
fh_http_endpoint_check(const cJSON *item, struct kv_errors *errors, const char *base,
		       bool required)
{
	const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive(item, "EndpointConfiguration");
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(endpoint, "Url");
	char path[160];

	snprintf(path, sizeof(path), "%s.endpointConfiguration", base);
	if (required && (endpoint == NULL || cJSON_IsNull(endpoint)))
		kv_errors_add(errors, "null", false, path, "Member must not be null");
	snprintf(path, sizeof(path), "%s.endpointConfiguration.url", base);
	kv_string_check(errors, path, endpoint != NULL ? url : NULL, endpoint != NULL,
			KV_PATTERN_NONE, 1, FIREHOSE_HTTP_URL_SIZE_MAX);
	/* AWS's pattern is https://.*; plain http:// is ours (loopback endpoints, tests). */
	if (cJSON_IsString(url) && strncmp(url->valuestring, "https://", 8) != 0 &&
	    strncmp(url->valuestring, "http://", 7) != 0)
		kv_errors_add(errors, url->valuestring, true, path, "Member must satisfy regular "
			      "expression pattern: https://.*");
	snprintf(path, sizeof(path), "%s.endpointConfiguration.name", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(endpoint, "Name"), false,
			KV_PATTERN_NONE, 1, FIREHOSE_HTTP_NAME_SIZE_MAX);
	snprintf(path, sizeof(path), "%s.endpointConfiguration.accessKey", base);
	kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(endpoint, "AccessKey"),
			false, KV_PATTERN_NONE, 0, FIREHOSE_HTTP_ACCESS_KEY_SIZE_MAX);
}

/*
 * HttpEndpointDestinationConfiguration (`required`: its required members, and its
 * backup as S3Configuration) or HttpEndpointDestinationUpdate (its backup as S3Update).
 */
static void
fh_http_check_at(const cJSON *item, struct kv_errors *errors, const char *base, bool required)
{
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(item, "BufferingHints");
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(item, "RequestConfiguration");
	const char *s3_name = required ? "S3Configuration" : "S3Update";
	const cJSON *s3 = cJSON_GetObjectItemCaseSensitive(item, s3_name);
	char path[160];

	fh_http_endpoint_check(item, errors, base, required);
	snprintf(path, sizeof(path), "%s.bufferingHints.sizeInMBs", base);
	fh_int_check(errors, path, cJSON_GetObjectItemCaseSensitive(hints, "SizeInMBs"),
		     FIREHOSE_SIZE_MB_MIN, FIREHOSE_HTTP_SIZE_MB_MAX);
	snprintf(path, sizeof(path), "%s.bufferingHints.intervalInSeconds", base);
	fh_int_check(errors, path, cJSON_GetObjectItemCaseSensitive(hints, "IntervalInSeconds"),
		     0, FIREHOSE_INTERVAL_S_MAX);
	snprintf(path, sizeof(path), "%s.requestConfiguration.contentEncoding", base);
	fh_enum_check(errors, path, cJSON_GetObjectItemCaseSensitive(request, "ContentEncoding"),
		      fh_http_encodings, "Member must satisfy enum value set: [NONE, GZIP]");
	fh_http_attributes_check(cJSON_GetObjectItemCaseSensitive(request, "CommonAttributes"),
				 errors, base);
	snprintf(path, sizeof(path), "%s.retryOptions.durationInSeconds", base);
	fh_int_check(errors, path, cJSON_GetObjectItemCaseSensitive(
		     cJSON_GetObjectItemCaseSensitive(item, "RetryOptions"), "DurationInSeconds"),
		     0, FIREHOSE_HTTP_RETRY_S_MAX);
	snprintf(path, sizeof(path), "%s.s3BackupMode", base);
	fh_enum_check(errors, path, cJSON_GetObjectItemCaseSensitive(item, "S3BackupMode"),
		      fh_http_backup_modes, "Member must satisfy enum value set: [FailedDataOnly, "
		      "AllData]");
	snprintf(path, sizeof(path), "%s.%s", base, required ? "s3Configuration" : "s3Update");
	if (required && (s3 == NULL || cJSON_IsNull(s3)))
		kv_errors_add(errors, "null", false, path, "Member must not be null");
	else if (s3 != NULL)
		fh_dest_check(s3, errors, path, required);
	fh_processing_check(errors, base, item);
}

static void
fh_http_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_http_check_at(item, errors, "httpEndpointDestinationConfiguration", true);
}

static void
fh_http_update_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	(void)r;
	fh_http_check_at(item, errors, "httpEndpointDestinationUpdate", false);
}

static int
fh_http_update_types(struct kinesis_req *r, const cJSON *item)
{
	const cJSON *s3 = cJSON_GetObjectItemCaseSensitive(item, "S3Update");

	if (kv_type_check(r->call, s3, KV_STRUCT) != 0 || (s3 != NULL && fh_s3_types(r, s3) != 0))
		return -EINVAL;
	return fh_http_types(r, item);
}

/* CommonAttributes as the JSON object the header carries; 0 or replied. */
static int
fh_http_attributes(struct kinesis_req *r, const cJSON *list, struct firehose_http *http)
{
	cJSON *object = cJSON_CreateObject();
	const cJSON *a;
	int rc = 0;

	cJSON_ArrayForEach(a, list)
		cJSON_AddStringToObject(object, fh_member_string(a, "AttributeName", ""),
					fh_member_string(a, "AttributeValue", ""));
	if (cJSON_GetArraySize(object) > 0 &&
	    !cJSON_PrintPreallocated(object, http->attributes, (int)sizeof(http->attributes) - 1,
				     false)) {
		kinesis_error(r->call, "InvalidArgumentException", "CommonAttributes may take at "
			      "most %u bytes as JSON here (they travel in one HTTP header).",
			      FIREHOSE_HTTP_ATTRIBUTES_SIZE_MAX - 1);
		rc = -EINVAL;
	}
	cJSON_Delete(object);
	return rc;
}

/* The endpoint's members over the backup's spec (fh_spec_from). 0 or replied. */
static int
fh_http_spec_from(struct kinesis_req *r, const cJSON *item, struct firehose_spec *spec)
{
	const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive(item, "EndpointConfiguration");
	const cJSON *hints = cJSON_GetObjectItemCaseSensitive(item, "BufferingHints");
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(item, "RequestConfiguration");
	struct firehose_http *http = &spec->http;

	spec->destination = FIREHOSE_DEST_HTTP;
	snprintf(http->url, sizeof(http->url), "%s", fh_member_string(endpoint, "Url", ""));
	snprintf(http->endpoint_name, sizeof(http->endpoint_name), "%s",
		 fh_member_string(endpoint, "Name", ""));
	snprintf(http->access_key, sizeof(http->access_key), "%s",
		 fh_member_string(endpoint, "AccessKey", ""));
	http->gzip = strcmp(fh_member_string(request, "ContentEncoding", "NONE"), "GZIP") == 0;
	http->backup_all = strcmp(fh_member_string(item, "S3BackupMode", "FailedDataOnly"),
				  "AllData") == 0;
	http->retry_s = fh_member_u32(cJSON_GetObjectItemCaseSensitive(item, "RetryOptions"),
				      "DurationInSeconds", FIREHOSE_HTTP_RETRY_S_DEFAULT);
	spec->size_mb = fh_member_u32(hints, "SizeInMBs", FIREHOSE_SIZE_MB_DEFAULT);
	spec->interval_s = fh_member_u32(hints, "IntervalInSeconds", FIREHOSE_INTERVAL_S_DEFAULT);
	return fh_http_attributes(r, cJSON_GetObjectItemCaseSensitive(request, "CommonAttributes"),
				  http);
}

static void
fh_out_http(struct api_out *out, const struct firehose_spec *spec)
{
	const struct firehose_http *http = &spec->http;
	cJSON *attributes = cJSON_Parse(http->attributes);
	const cJSON *a;
	bool first = true;

	api_out_printf(out, "\"HttpEndpointDestinationDescription\":{\"EndpointConfiguration\":{");
	fh_out_member(out, "Url", http->url, false);
	if (http->endpoint_name[0] != '\0')
		fh_out_member(out, "Name", http->endpoint_name, true);
	api_out_printf(out, "},\"BufferingHints\":{\"SizeInMBs\":%u,\"IntervalInSeconds\":%u},"
		       "\"CloudWatchLoggingOptions\":{\"Enabled\":false},\"RequestConfiguration\":"
		       "{\"ContentEncoding\":\"%s\",\"CommonAttributes\":[", spec->size_mb,
		       spec->interval_s, http->gzip ? "GZIP" : "NONE");
	cJSON_ArrayForEach(a, attributes) {
		api_out_printf(out, "%s{", first ? "" : ",");
		fh_out_member(out, "AttributeName", a->string, false);
		fh_out_member(out, "AttributeValue", cJSON_IsString(a) ? a->valuestring : "",
			      true);
		api_out_printf(out, "}");
		first = false;
	}
	cJSON_Delete(attributes);
	api_out_printf(out, "]},\"RetryOptions\":{\"DurationInSeconds\":%u},\"S3BackupMode\":"
		       "\"%s\"", http->retry_s, http->backup_all ? "AllData" : "FailedDataOnly");
	if (spec->role_arn[0] != '\0')
		fh_out_member(out, "RoleARN", spec->role_arn, true);
	fh_out_processing(out, spec);
	api_out_printf(out, ",\"S3DestinationDescription\":");
	fh_out_destination(out, spec, false);
	api_out_printf(out, "}");
}

/* ---- ProcessingConfiguration (a Lambda processor) ---------------------------------- */

static const char *const fh_processor_type_names[] = {
	"RecordDeAggregation", "Decompression", "CloudWatchLogProcessing", "Lambda",
	"MetadataExtraction", "AppendDelimiterToRecord", NULL,
};
static const char *const fh_parameter_names[] = {
	"LambdaArn", "NumberOfRetries", "MetadataExtractionQuery", "JsonParsingEngine",
	"RoleArn", "BufferSizeInMBs", "BufferIntervalInSeconds", "SubRecordType", "Delimiter",
	"CompressionFormat", "DataMessageExtraction", NULL,
};
#define FH_PARAMETER_VALUE_MAX 5120

static void
fh_processing_check(struct kv_errors *errors, const char *base, const cJSON *item)
{
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(item, "ProcessingConfiguration");
	const cJSON *p;
	uint32_t i = 0;
	char path[192];

	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pc, "Processors")) {
		const cJSON *a;
		uint32_t j = 0;

		i++;
		snprintf(path, sizeof(path), "%s.processingConfiguration.processors.%u.member.type",
			 base, i);
		if (cJSON_GetObjectItemCaseSensitive(p, "Type") == NULL)
			kv_errors_add(errors, "null", false, path, "Member must not be null");
		fh_enum_check(errors, path, cJSON_GetObjectItemCaseSensitive(p, "Type"),
			      fh_processor_type_names, "Member must satisfy enum value set: "
			      "[RecordDeAggregation, Decompression, CloudWatchLogProcessing, Lambda, "
			      "MetadataExtraction, AppendDelimiterToRecord]");
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(p, "Parameters")) {
			j++;
			snprintf(path, sizeof(path), "%s.processingConfiguration.processors.%u.member."
				 "parameters.%u.member.parameterName", base, i, j);
			if (cJSON_GetObjectItemCaseSensitive(a, "ParameterName") == NULL)
				kv_errors_add(errors, "null", false, path, "Member must not be null");
			fh_enum_check(errors, path, cJSON_GetObjectItemCaseSensitive(a, "ParameterName"),
				      fh_parameter_names, "Member must satisfy enum value set: "
				      "[LambdaArn, NumberOfRetries, MetadataExtractionQuery, "
				      "JsonParsingEngine, RoleArn, BufferSizeInMBs, "
				      "BufferIntervalInSeconds, SubRecordType, Delimiter, "
				      "CompressionFormat, DataMessageExtraction]");
			snprintf(path, sizeof(path), "%s.processingConfiguration.processors.%u.member."
				 "parameters.%u.member.parameterValue", base, i, j);
			kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(a,
					"ParameterValue"), true, KV_PATTERN_NONE, 1,
					FH_PARAMETER_VALUE_MAX);
		}
	}
}

/* A numeric parameter within [min, max] (text, as AWS takes them); 0 or replied. */
static int
fh_parameter_number(struct kinesis_req *r, const char *name, const char *text, double min,
		    double max, double *out)
{
	char *end = NULL;
	double v = strtod(text, &end);

	if (end == text || *end != '\0' || !(v >= min && v <= max)) {
		kinesis_error(r->call, "InvalidArgumentException", "Processor parameter %s must be "
			      "a number from %g to %g, not '%s'.", name, min, max, text);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int
fh_lambda_parameter(struct kinesis_req *r, const char *name, const char *value,
		    struct firehose_lambda *l)
{
	double v = 0;
	int rc = 0;

	if (strcmp(name, "LambdaArn") == 0) {
		snprintf(l->arn, sizeof(l->arn), "%s", value);
	} else if (strcmp(name, "NumberOfRetries") == 0) {
		rc = fh_parameter_number(r, name, value, 0, FIREHOSE_LAMBDA_RETRIES_MAX, &v);
		l->retries = (uint32_t)v;
	} else if (strcmp(name, "BufferSizeInMBs") == 0) {
		rc = fh_parameter_number(r, name, value, 0.2, 3, &v);
		l->buffer_bytes = (uint32_t)(v * 1048576.0);
	} else if (strcmp(name, "BufferIntervalInSeconds") == 0) {
		rc = fh_parameter_number(r, name, value, 0, FIREHOSE_INTERVAL_S_MAX, &v);
		l->interval_s = (uint32_t)v;
	} else if (strcmp(name, "RoleArn") != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Processor parameter %s is not "
			      "valid for a Lambda processor.", name);
		rc = -EINVAL;
	}
	return rc;
}

/* The destination's ProcessingConfiguration: one Lambda processor, or none. 0 or replied. */
static int
fh_lambda_spec_from(struct kinesis_req *r, const cJSON *item, struct firehose_spec *spec)
{
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(item, "ProcessingConfiguration");
	const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(pc, "Enabled");
	struct firehose_lambda *l = &spec->lambda;
	const cJSON *p, *a;

	if (!cJSON_IsTrue(enabled))
		return 0;  /* Disabled processors do nothing (and are not kept). */
	*l = (struct firehose_lambda){ .retries = FIREHOSE_LAMBDA_RETRIES_DEFAULT,
				       .buffer_bytes = FIREHOSE_LAMBDA_BUFFER_DEFAULT,
				       .interval_s = FIREHOSE_LAMBDA_INTERVAL_S_DEFAULT };
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pc, "Processors")) {
		const char *type = fh_member_string(p, "Type", "");

		if (spec->destination == FIREHOSE_DEST_HTTP && strcmp(type, "Lambda") != 0) {
			kinesis_error(r->call, "InvalidArgumentException", "Processor type %s is not "
				      "supported for an HTTP endpoint destination by this endpoint "
				      "(Lambda is).", type);
			return -EINVAL;
		}
		if (strcmp(type, "MetadataExtraction") == 0 ||
		    strcmp(type, "AppendDelimiterToRecord") == 0 ||
		    strcmp(type, "RecordDeAggregation") == 0)
			continue;  /* fh_processor_from's. */
		if (strcmp(type, "Lambda") != 0 || l->arn[0] != '\0') {
			kinesis_error(r->call, "InvalidArgumentException", "Only one processor of "
				      "type Lambda is supported by this endpoint yet, not %s.", type);
			return -EINVAL;
		}
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(p, "Parameters"))
			if (fh_lambda_parameter(r, fh_member_string(a, "ParameterName", ""),
						fh_member_string(a, "ParameterValue", ""), l) != 0)
				return -EINVAL;
		if (l->arn[0] == '\0') {
			kinesis_error(r->call, "InvalidArgumentException", "A Lambda processor needs "
				      "the parameter LambdaArn.");
			return -EINVAL;
		}
	}
	if (l->arn[0] != '\0' && !firehose_lambda_known(r->k->firehose, l->arn)) {
		kinesis_error(r->call, "InvalidArgumentException", "LambdaArn %s has no executable "
			      "in [firehose] lambda_map here.", l->arn);
		return -EINVAL;
	}
	return 0;
}

/* Appends {Type, Parameters[{ParameterName, ParameterValue}...]} (names[i], values[i]). */
static bool
fh_processor_json(cJSON *list, const char *type, const char *const *names,
		  const char *const *values, size_t count)
{
	cJSON *proc = cJSON_CreateObject();
	cJSON *params = cJSON_AddArrayToObject(proc, "Parameters");
	bool ok = cJSON_AddItemToArray(list, proc) && params != NULL &&
		  cJSON_AddStringToObject(proc, "Type", type) != NULL;

	for (size_t i = 0; ok && i < count; i++) {
		cJSON *param = cJSON_CreateObject();

		ok = cJSON_AddItemToArray(params, param) &&
		     cJSON_AddStringToObject(param, "ParameterName", names[i]) != NULL &&
		     cJSON_AddStringToObject(param, "ParameterValue", values[i]) != NULL;
	}
	return ok;
}

/* The delimiter as fh_delimiter_from reads it back: \n, \r, \t and \\ escaped. */
static void
fh_delimiter_text(const struct firehose_spec *spec, char *out)
{
	for (uint32_t i = 0; i < spec->delimiter_size; i++) {
		char c = spec->delimiter[i];
		const char *e = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" :
				c == '\\' ? "\\\\" : NULL;

		if (e == NULL) {
			*out++ = c;
		} else {
			memcpy(out, e, 2);
			out += 2;
		}
	}
	*out = '\0';
}

/*
 * ProcessingConfiguration as CreateDeliveryStream takes it and Describe shows it:
 * RecordDeAggregation, MetadataExtraction, Lambda, AppendDelimiterToRecord (about the
 * order records meet them; the query reads the Lambda's output).
 * NULL when the stream has no processor (or no memory).
 */
static cJSON *
fh_processing_json(const struct firehose_spec *spec)
{
	static const char *const query_names[] = { "MetadataExtractionQuery", "JsonParsingEngine" };
	static const char *const lambda_names[] = { "LambdaArn", "NumberOfRetries",
						    "BufferSizeInMBs", "BufferIntervalInSeconds" };
	static const char *const delimiter_names[] = { "Delimiter" };
	static const char *const split_names[] = { "SubRecordType", "Delimiter" };
	char split[FIREHOSE_DELIMITER_SIZE_MAX * 2 + 4];
	const char *split_values[] = { spec->deaggregation == FIREHOSE_DEAGG_JSON ? "JSON" :
				       "DELIMITED", split };
	const struct firehose_lambda *l = &spec->lambda;
	char retries[16], size[32], interval[16], delimiter[2 * FIREHOSE_DELIMITER_SIZE_MAX + 1];
	const char *lambda_values[] = { l->arn, retries, size, interval };
	const char *query_values[] = { spec->query, "JQ-1.6" };
	const char *delimiter_values[] = { delimiter };
	cJSON *pc, *list;
	bool ok;

	if (l->arn[0] == '\0' && spec->query[0] == '\0' && spec->delimiter_size == 0 &&
	    spec->deaggregation == FIREHOSE_DEAGG_NONE)
		return NULL;
	split[base64_encode(spec->split, spec->split_size, split)] = '\0';
	snprintf(retries, sizeof(retries), "%u", l->retries);
	snprintf(size, sizeof(size), "%g", l->buffer_bytes / 1048576.0);
	snprintf(interval, sizeof(interval), "%u", l->interval_s);
	fh_delimiter_text(spec, delimiter);
	pc = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(pc, "Processors");
	ok = list != NULL && cJSON_AddTrueToObject(pc, "Enabled") != NULL;
	if (ok && spec->deaggregation != FIREHOSE_DEAGG_NONE)
		ok = fh_processor_json(list, "RecordDeAggregation", split_names, split_values,
				       spec->deaggregation == FIREHOSE_DEAGG_JSON ? 1 : 2);
	if (ok && spec->query[0] != '\0')
		ok = fh_processor_json(list, "MetadataExtraction", query_names, query_values, 2);
	if (ok && l->arn[0] != '\0')
		ok = fh_processor_json(list, "Lambda", lambda_names, lambda_values, 4);
	if (ok && spec->delimiter_size != 0)
		ok = fh_processor_json(list, "AppendDelimiterToRecord", delimiter_names,
				       delimiter_values, 1);
	if (!ok) {
		cJSON_Delete(pc);
		return NULL;
	}
	return pc;
}

static void
fh_out_processing(struct api_out *out, const struct firehose_spec *spec)
{
	cJSON *pc = fh_processing_json(spec);
	char *text = pc != NULL ? cJSON_PrintUnformatted(pc) : NULL;

	if (text != NULL)
		api_out_printf(out, ",\"ProcessingConfiguration\":%s", text);
	cJSON_free(text);
	cJSON_Delete(pc);
}

/* ---- PutRecord, PutRecordBatch ---------------------------------------------- */

/* A put waiting for the log: its call, and which answer it wants. */
struct fh_api_pending {
	bool used;
	bool batch;
	bool encrypted;              /* The stream's encryption is on (the answer's Encrypted). */
	struct api_call *call;
};

static struct fh_api_pending fh_pending[FIREHOSE_PENDING_MAX];
/* The stream a put names (too large for the stack; one request at a time). */
static struct firehose_info fh_put_info;

static void
fh_record_id(struct api_out *out, uint64_t seq)
{
	/* Opaque to clients; ours says which record of the stream's log it became. */
	api_out_printf(out, "\"RecordId\":\"%032llx\"", (unsigned long long)seq);
}

static void
fh_put_done(void *ctx, int error, const uint64_t *seqs, uint32_t count)
{
	struct fh_api_pending *p = ctx;
	struct api_out *out = api_call_out(p->call);
	uint32_t failed = 0;

	p->used = false;
	if (!p->batch) {
		if (error == 0) {
			api_out_printf(out, "{");
			fh_record_id(out, seqs[0]);
			api_out_printf(out, ",\"Encrypted\":%s}", p->encrypted ? "true" : "false");
			api_call_reply(p->call, 200);
		} else if (error == -ENOKEY || error == -EKEYREVOKED) {
			api_call_error(p->call, 400, "InvalidKMSResourceException", error == -ENOKEY ?
				       "The key of this Firehose is not in this endpoint's keyring." :
				       "The key of this Firehose is disabled.");
		} else if (error == -EAGAIN || error == -ENOSPC) {
			api_call_error(p->call, 503, "ServiceUnavailableException", FH_SLOW_DOWN);
		} else {
			kinesis_internal_error(p->call);
		}
		return;
	}
	for (uint32_t i = 0; i < count; i++)
		failed += seqs[i] == UINT64_MAX;
	api_out_printf(out, "{\"FailedPutCount\":%u,\"Encrypted\":%s,\"RequestResponses\":[",
		       failed, p->encrypted ? "true" : "false");
	for (uint32_t i = 0; i < count; i++) {
		api_out_printf(out, "%s{", i == 0 ? "" : ",");
		if (seqs[i] != UINT64_MAX)
			fh_record_id(out, seqs[i]);
		else
			api_out_printf(out, "\"ErrorCode\":\"ServiceUnavailableException\","
				       "\"ErrorMessage\":\"" FH_SLOW_DOWN "\"");
		api_out_printf(out, "}");
	}
	api_out_printf(out, "]}");
	api_call_reply(p->call, 200);
}

static void
fh_put_common(struct kinesis_req *r, uint32_t count, bool batch)
{
	const char *name = r->v[FH_PUT_NAME].string;
	struct fh_api_pending *p = NULL;
	int rc;

	static_assert((int)FH_PUT_NAME == (int)FH_PUT_BATCH_NAME, "one name index");
	if (firehose_describe(r->k->firehose, name, &fh_put_info) != 0) {
		fh_not_found(r, name);
		return;
	}
	if (fh_put_info.spec.source_arn[0] != '\0') {
		kinesis_error(r->call, "InvalidArgumentException", "This operation is not permitted "
			      "on KinesisStreamAsSource delivery stream type.");
		return;
	}
	if (fh_decoded.bytes > FIREHOSE_BATCH_SIZE_MAX) {
		kinesis_error(r->call, "InvalidArgumentException",
			      "Records size exceeds 4 MB limit");
		return;
	}
	for (uint32_t i = 0; i < FIREHOSE_PENDING_MAX && p == NULL; i++)
		if (!fh_pending[i].used)
			p = &fh_pending[i];
	if (p == NULL) {
		api_call_error(r->call, 503, "ServiceUnavailableException", FH_SLOW_DOWN);
		return;
	}
	*p = (struct fh_api_pending){ .used = true, .batch = batch, .call = r->call,
				      .encrypted = fh_put_info.encryption.enabled };
	rc = firehose_put(r->k->firehose, name, fh_decoded.records, count, r->req->now_ns,
			  fh_put_done, p);
	if (rc != 0) {
		p->used = false;
		fh_errno_reply(r, rc, name);
	}
}

static void
fh_put(struct kinesis_req *r)
{
	fh_put_common(r, 1, false);
}

static void
fh_put_batch(struct kinesis_req *r)
{
	fh_put_common(r, (uint32_t)r->v[FH_PUT_BATCH_RECORDS].size, true);
}

/* ---- Dispatch --------------------------------------------------------------- */

void
firehose_api_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kinesis_op *op = fh_op_find(req->target, req->target_size);

	if (op == NULL || op->handler == NULL) {
		kinesis_unknown_operation(call, op);
		return;
	}
	kinesis_op_run(k, call, req, op);
}
