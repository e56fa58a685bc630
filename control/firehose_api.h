/*
 * firehose_api.h - private to control/: what the Firehose API's files share
 * (firehose_api.c: streams, destinations, puts; firehose_manage.c: tags and
 * encryption). The operation table is firehose_api.c's.
 */
#ifndef SLUICE_CONTROL_FIREHOSE_API_H
#define SLUICE_CONTROL_FIREHOSE_API_H

#include "control/kinesis.h"
#include "firehose/firehose.h"

#define KV_DELIVERY_STREAM_NAME \
	KV_STR("DeliveryStreamName", true, KV_PATTERN_NAME, 1, FIREHOSE_NAME_SIZE_MAX)

/* AWS's text for an operation a KinesisStreamAsSource stream does not take. */
#define FH_NOT_FOR_SOURCE "This operation is not permitted on KinesisStreamAsSource " \
	"delivery stream type."

/* Tags[] of CreateDeliveryStream and TagDeliveryStream: [{Key, Value}], 1..50. */
#define KV_FH_TAGS_FIELD(not_null_) \
	KV_NESTED("Tags", KV_LIST, not_null_, 1, FIREHOSE_TAGS_MAX, fh_tags_types, fh_tags_check)
kv_nested_types_fn fh_tags_types;
kv_nested_check_fn fh_tags_check;

#define KINESIS_SHAPE_FH_TAG(F) \
	F(FH_TAG, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_TAG, TAGS, KV_FH_TAGS_FIELD(true))
KV_SHAPE_ENUM(FH_TAG);

#define KINESIS_SHAPE_FH_UNTAG(F) \
	F(FH_UNTAG, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_UNTAG, KEYS, KV_NESTED("TagKeys", KV_LIST, true, 1, FIREHOSE_TAGS_MAX, \
				    kv_members_are_strings, fh_tag_keys_check))
KV_SHAPE_ENUM(FH_UNTAG);
kv_nested_check_fn fh_tag_keys_check;

#define KINESIS_SHAPE_FH_LIST_TAGS(F) \
	F(FH_LIST_TAGS, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_LIST_TAGS, START, KV_STR("ExclusiveStartTagKey", false, KV_PATTERN_NONE, 1, \
				      FIREHOSE_TAG_KEY_SIZE_MAX)) \
	F(FH_LIST_TAGS, LIMIT, KV_INT("Limit", false, 1, FIREHOSE_TAGS_MAX))
KV_SHAPE_ENUM(FH_LIST_TAGS);

extern const char *const fh_key_types[];

#define KINESIS_SHAPE_FH_START_ENC(F) \
	F(FH_START_ENC, NAME, KV_DELIVERY_STREAM_NAME) \
	F(FH_START_ENC, CONFIG, KV_NESTED("DeliveryStreamEncryptionConfigurationInput", \
					  KV_STRUCT, false, -1, -1, fh_enc_types, fh_enc_check))
KV_SHAPE_ENUM(FH_START_ENC);
kv_nested_types_fn fh_enc_types;
kv_nested_check_fn fh_enc_check;

#define KINESIS_SHAPE_FH_STOP_ENC(F) \
	F(FH_STOP_ENC, NAME, KV_DELIVERY_STREAM_NAME)
KV_SHAPE_ENUM(FH_STOP_ENC);

kinesis_handler_fn fh_tag, fh_untag, fh_list_tags, fh_start_encryption, fh_stop_encryption;

/* Adds CreateDeliveryStream's Tags to the new stream `name`; 0 or replied. */
int fh_tags_create(struct kinesis_req *r, const cJSON *tags, const char *name);
/* ,"DeliveryStreamEncryptionConfiguration":{...} of DescribeDeliveryStream. */
void fh_out_encryption(struct api_out *out, const struct firehose_encryption *e);

/* firehose_api.c */
void fh_not_found(struct kinesis_req *r, const char *name);
/* -ENOENT: ResourceNotFound; -EAGAIN, -ENOSPC: ServiceUnavailable; else internal. */
void fh_errno_reply(struct kinesis_req *r, int rc, const char *name);
int fh_member_type(struct kinesis_req *r, const cJSON *item, const char *name, enum kv_type type);

#endif /* SLUICE_CONTROL_FIREHOSE_API_H */
