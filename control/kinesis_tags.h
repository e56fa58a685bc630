/*
 * kinesis_tags.h - the tags concern (kinesis_tags.c): AddTagsToStream,
 * ListTagsForStream, RemoveTagsFromStream, Tag/UntagResource, ListTagsForResource
 * (streams and consumers), and the Tags member CreateStream and
 * RegisterStreamConsumer share. Included by control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_TAGS_H
#define SLUICE_CONTROL_KINESIS_TAGS_H

#include "control/kinesis.h"

/* AWS: a Tags map of at most 200 entries per call, TagKeys of at most 50. */
#define KINESIS_TAGS_PER_CALL_MAX 200u
#define KINESIS_TAG_KEYS_MAX 50u

/* ---- Input shapes (kinesis_validate.h) ------------------------------------ */

#define KINESIS_SHAPE_ADD_TAGS(F) \
	F(ADD_TAGS, TAGS, KV_TAGS_FIELD) \
	F(ADD_TAGS, STREAM_NAME, KV_STREAM_NAME) \
	F(ADD_TAGS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(ADD_TAGS);

#define KINESIS_SHAPE_LIST_TAGS(F) \
	F(LIST_TAGS, EXCLUSIVE_START_TAG_KEY, \
	  KV_STR("ExclusiveStartTagKey", false, KV_PATTERN_NONE, 1, 128)) \
	F(LIST_TAGS, LIMIT, KV_INT("Limit", false, 1, 50)) \
	F(LIST_TAGS, STREAM_NAME, KV_STREAM_NAME) \
	F(LIST_TAGS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(LIST_TAGS);

#define KINESIS_SHAPE_REMOVE_TAGS(F) \
	F(REMOVE_TAGS, TAG_KEYS, KV_NESTED("TagKeys", KV_LIST, true, 1, KINESIS_TAG_KEYS_MAX, \
					   kv_members_are_strings, kinesis_tag_keys_check)) \
	F(REMOVE_TAGS, STREAM_NAME, KV_STREAM_NAME) \
	F(REMOVE_TAGS, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(REMOVE_TAGS);

#define KINESIS_SHAPE_TAG_RESOURCE(F) \
	F(TAG_RESOURCE, TAGS, KV_NESTED("Tags", KV_MAP, true, 1, KINESIS_TAGS_PER_CALL_MAX, \
					kv_members_are_strings, kinesis_tags_check)) \
	F(TAG_RESOURCE, RESOURCE_ARN, KV_RESOURCE_ARN)
KV_SHAPE_ENUM(TAG_RESOURCE);

#define KINESIS_SHAPE_UNTAG_RESOURCE(F) \
	F(UNTAG_RESOURCE, TAG_KEYS, KV_NESTED("TagKeys", KV_LIST, true, 1, KINESIS_TAG_KEYS_MAX, \
					      kv_members_are_strings, kinesis_tag_keys_check)) \
	F(UNTAG_RESOURCE, RESOURCE_ARN, KV_RESOURCE_ARN)
KV_SHAPE_ENUM(UNTAG_RESOURCE);

#define KINESIS_SHAPE_LIST_TAGS_RESOURCE(F) \
	F(LIST_TAGS_RESOURCE, RESOURCE_ARN, KV_RESOURCE_ARN)
KV_SHAPE_ENUM(LIST_TAGS_RESOURCE);

/* A stream's or a consumer's ARN. */
#define KV_RESOURCE_ARN KV_STR("ResourceARN", true, KV_PATTERN_RESOURCE_ARN, 1, 2048)

/* The Tags map of CreateStream and AddTagsToStream. */
#define KV_TAGS_FIELD \
	KV_NESTED("Tags", KV_MAP, false, 1, KINESIS_TAGS_PER_CALL_MAX, kv_members_are_strings, \
		  kinesis_tags_check)
kv_nested_check_fn kinesis_tags_check;
kv_nested_check_fn kinesis_tag_keys_check;

kinesis_handler_fn kinesis_add_tags;
kinesis_handler_fn kinesis_list_tags;
kinesis_handler_fn kinesis_remove_tags;
kinesis_handler_fn kinesis_tag_resource;
kinesis_handler_fn kinesis_untag_resource;
kinesis_handler_fn kinesis_list_tags_for_resource;

bool kinesis_tag_text_ok(const char *text);
/* AWS's answer to a tag key or value with a character outside kinesis_tag_text_ok(). */
void kinesis_tags_invalid(struct api_call *call);
/* More than KINESIS_TAGS_PER_STREAM_MAX on stream `name` or its `consumer` (not ""). */
void kinesis_tags_too_many(struct kinesis *k, struct api_call *call, const char *consumer,
			   const char *name);
/* Copies the Tags map into `tags` (at most `max`); false if a character is refused. */
size_t kinesis_tags_collect(const cJSON *item, struct metadata_tag *tags, size_t max,
			    bool *ok_out);

#endif /* SLUICE_CONTROL_KINESIS_TAGS_H */
