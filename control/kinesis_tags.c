/*
 * kinesis_tags.c - the small stream settings: retention (through the log),
 * tags (SQLite only), DescribeLimits, UpdateStreamMode.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "control/kinesis.h"
#include "nvme-log/log.h"

#define KINESIS_RETENTION_MIN 24u
#define KINESIS_RETENTION_MAX 8760u

static void
kinesis_retention(struct kinesis *k, struct api_call *call, const struct api_request *req,
		  bool increase)
{
	const struct kv_field fields[] = {
		KV_INT("RetentionPeriodHours", true, 1, 10000),
		KV_STREAM_NAME,
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	uint32_t hours;
	cJSON *root;
	int rc;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[1], &v[2]);
	if (s == NULL)
		goto out;
	hours = (uint32_t)v[0].number;
	if (hours < KINESIS_RETENTION_MIN) {
		kinesis_error(call, "InvalidArgumentException", "Minimum allowed retention period "
			      "is %u hours. Requested retention period (%u hours) is too short.",
			      KINESIS_RETENTION_MIN, hours);
		goto out;
	}
	if (hours > KINESIS_RETENTION_MAX) {
		kinesis_error(call, "InvalidArgumentException", "Maximum allowed retention period "
			      "is %u hours. Requested retention period (%u hours) is too long.",
			      KINESIS_RETENTION_MAX, hours);
		goto out;
	}
	if (increase ? hours < s->retention_hours : hours > s->retention_hours) {
		kinesis_error(call, "InvalidArgumentException", "Requested retention period (%u "
			      "hours) for stream %s can not be %s than existing retention period "
			      "(%u hours). Use %s API.", hours, s->name,
			      increase ? "shorter" : "longer", s->retention_hours,
			      increase ? "DecreaseRetentionPeriod" : "IncreaseRetentionPeriod");
		goto out;
	}
	/* SQLite first; the log gets the same value now and again at every start. */
	rc = metadata_retention_set(k->md, s->stream_id, hours);
	if (rc == 0)
		rc = kinesis_log_retention(k, s->stream_id, hours);
	if (rc != 0) {
		diag_error("kinesis", "retention of %s: %s", s->name, strerror(-rc));
		kinesis_internal_error(call);
		goto out;
	}
	s->retention_hours = hours;
	api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

void
kinesis_increase_retention(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	kinesis_retention(k, call, req, true);
}

void
kinesis_decrease_retention(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	kinesis_retention(k, call, req, false);
}

void
kinesis_add_tags(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = { kinesis_tags_field, KV_STREAM_NAME, KV_STREAM_ARN };
	struct kv_value v[ARRAY_SIZE(fields)];
	struct metadata_tag tags[200];
	struct kinesis_stream *s;
	size_t count;
	cJSON *root;
	bool ok;
	int rc;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	if (v[0].json == NULL) {
		kinesis_error(call, "ValidationException", "1 validation error detected: Value null "
			      "at 'tags' failed to satisfy constraint: Member must not be null");
		goto out;
	}
	s = kinesis_stream_resolve(k, call, &v[1], &v[2]);
	if (s == NULL)
		goto out;
	count = kinesis_tags_collect(v[0].json, tags, ARRAY_SIZE(tags), &ok);
	if (!ok) {
		kinesis_error(call, "InvalidArgumentException", "Some tags contain invalid "
			      "characters. Valid characters: Unicode letters, digits, white space, "
			      "_ . / = + - %% @.");
		goto out;
	}
	rc = metadata_tags_put(k->md, s->stream_id, tags, count, KINESIS_TAGS_PER_STREAM_MAX);
	if (rc == -E2BIG)
		kinesis_error(call, "InvalidArgumentException", "Failed to add tags to stream %s "
			      "under account %s because a given stream cannot have more than %u "
			      "tags.", s->name, k->config.account_id, KINESIS_TAGS_PER_STREAM_MAX);
	else if (rc != 0)
		kinesis_internal_error(call);
	else
		api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

static void
kinesis_tag_out(void *arg, const struct metadata_tag *tag)
{
	struct api_out *out = arg;

	if (out->data != NULL && out->size > 0 && out->data[out->size - 1] == '}')
		api_out_printf(out, ",");
	api_out_printf(out, "{\"Key\":");
	api_out_json_string(out, tag->key, tag->key_size);
	api_out_printf(out, ",\"Value\":");
	api_out_json_string(out, tag->value, tag->value_size);
	api_out_printf(out, "}");
}

void
kinesis_list_tags(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		KV_STR("ExclusiveStartTagKey", false, KV_PATTERN_NONE, 1, 128),
		KV_INT("Limit", false, 1, 50),
		KV_STREAM_NAME,
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	struct api_out *out;
	bool more = false;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[2], &v[3]);
	if (s == NULL)
		goto out;
	out = api_call_out(call);
	api_out_printf(out, "{\"Tags\":[");
	if (metadata_tags_list(k->md, s->stream_id, v[0].string, v[0].size,
			       v[1].json != NULL ? (uint32_t)v[1].number : 50, kinesis_tag_out, out,
			       &more) != 0) {
		out->size = 0;
		kinesis_internal_error(call);
		goto out;
	}
	api_out_printf(out, "],\"HasMoreTags\":%s}", more ? "true" : "false");
	api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

static void
kinesis_tag_keys_check(struct kinesis *k, const cJSON *item, struct kv_errors *errors)
{
	char rendered[KINESIS_MESSAGE_SIZE];
	const cJSON *child;
	size_t n = (size_t)snprintf(rendered, sizeof(rendered), "[");
	bool ok = true;

	(void)k;
	cJSON_ArrayForEach(child, item) {
		size_t size = cJSON_IsString(child) ? strlen(child->valuestring) : 0;

		ok = ok && size >= 1 && size <= 128;
		if (n + 4 < sizeof(rendered))
			n += (size_t)snprintf(rendered + n, sizeof(rendered) - n, "%s%s",
					      child == item->child ? "" : ", ",
					      cJSON_IsString(child) ? child->valuestring : "null");
	}
	if (n + 2 < sizeof(rendered))
		snprintf(rendered + n, sizeof(rendered) - n, "]");
	if (!ok)
		kv_errors_add(errors, rendered, true, "tagKeys", "Member must satisfy constraint: "
			      "[Member must have length less than or equal to 128, Member must have "
			      "length greater than or equal to 1]");
}

void
kinesis_remove_tags(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		{ .name = "TagKeys", .type = KV_LIST, .not_null = true, .length_min = 1,
		  .length_max = 50, .value_min = -1, .value_max = -1,
		  .nested_types = kv_members_are_strings, .nested_check = kinesis_tag_keys_check },
		KV_STREAM_NAME,
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct metadata_tag keys[50];
	struct kinesis_stream *s;
	const cJSON *child;
	size_t count = 0;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[1], &v[2]);
	if (s == NULL)
		goto out;
	cJSON_ArrayForEach(child, v[0].json) {
		keys[count].key = child->valuestring;
		keys[count].key_size = strlen(child->valuestring);
		count++;
	}
	if (metadata_tags_remove(k->md, s->stream_id, keys, count) != 0)
		kinesis_internal_error(call);
	else
		api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

void
kinesis_describe_limits(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	uint32_t open = 0;
	uint32_t on_demand = 0;
	cJSON *root;

	if (kv_check(k, call, req, NULL, 0, &root, NULL) != 0)
		return;
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		const struct kinesis_stream *s = &k->streams[i];

		if (!s->used)
			continue;
		on_demand += s->mode == METADATA_ON_DEMAND;
		for (uint32_t j = 0; j < s->shard_count; j++)
			open += !s->shards[j].closed;
	}
	api_out_printf(api_call_out(call), "{\"ShardLimit\":%u,\"OpenShardCount\":%u,"
		       "\"OnDemandStreamCount\":%u,\"OnDemandStreamCountLimit\":%u}",
		       k->shard_limit, open, on_demand, SLUICE_STREAMS_MAX);
	api_call_reply(call, 200);
	cJSON_Delete(root);
}

void
kinesis_update_stream_mode(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	struct kv_field fields[] = {
		KV_STR("StreamARN", true, KV_PATTERN_ARN, 1, 2048),
		kinesis_mode_field,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kv_value no_name = { .json = NULL };
	struct kinesis_stream *s;
	cJSON *root;

	fields[1].not_null = true;
	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &no_name, &v[0]);
	if (s == NULL)
		goto out;
	if (s->status != KINESIS_ACTIVE) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s not ACTIVE, "
			      "instead in state %s", s->name, k->config.account_id,
			      kinesis_status_name(s->status));
		goto out;
	}
	if (metadata_mode_set(k->md, s->stream_id, kinesis_mode_parse(v[1].json)) != 0) {
		kinesis_internal_error(call);
		goto out;
	}
	s->mode = kinesis_mode_parse(v[1].json);
	kinesis_status_schedule(k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}
