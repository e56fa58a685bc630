/*
 * kinesis_streams.c - stream lifecycle and listing: CreateStream, DeleteStream,
 * DescribeStream, DescribeStreamSummary, ListStreams, ListShards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "nvme-log/log.h"

static const char *const kinesis_modes[] = { "PROVISIONED", "ON_DEMAND", NULL };

static const char *
kinesis_mode_name(enum metadata_mode mode)
{
	return kinesis_modes[mode == METADATA_ON_DEMAND ? 1 : 0];
}

/* StreamModeDetails{StreamMode}: shared with UpdateStreamMode. */
static int
kinesis_mode_types(struct kinesis *k, struct api_call *call, const cJSON *item)
{
	(void)k;
	return kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "StreamMode"), KV_STRING);
}

static void
kinesis_mode_check(struct kinesis *k, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(item, "StreamMode");
	const char *path = "streamModeDetails.streamMode";

	(void)k;
	if (mode == NULL || cJSON_IsNull(mode)) {
		kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	if (strcmp(mode->valuestring, "PROVISIONED") != 0 &&
	    strcmp(mode->valuestring, "ON_DEMAND") != 0)
		kv_errors_add(errors, mode->valuestring, true, path,
			      "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]");
}

const struct kv_field kinesis_mode_field = {
	.name = "StreamModeDetails", .type = KV_STRUCT, .length_min = -1, .length_max = -1,
	.value_min = -1, .value_max = -1, .nested_types = kinesis_mode_types,
	.nested_check = kinesis_mode_check,
};

enum metadata_mode
kinesis_mode_parse(const cJSON *details)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(details, "StreamMode");

	return mode != NULL && cJSON_IsString(mode) && strcmp(mode->valuestring, "ON_DEMAND") == 0 ?
	       METADATA_ON_DEMAND : METADATA_PROVISIONED;
}

static void
kinesis_tags_render(const cJSON *item, char *buf, size_t size)
{
	const cJSON *child;
	size_t n = (size_t)snprintf(buf, size, "{");

	cJSON_ArrayForEach(child, item) {
		if (n + 4 >= size)
			break;
		n += (size_t)snprintf(buf + n, size - n, "%s%s=%s", child == item->child ? "" : ", ",
				      child->string, cJSON_IsString(child) ? child->valuestring :
				      "null");
	}
	if (n + 2 < size)
		snprintf(buf + n, size - n, "}");
}

static void
kinesis_tags_check(struct kinesis *k, const cJSON *item, struct kv_errors *errors)
{
	char rendered[KINESIS_MESSAGE_SIZE];
	const cJSON *child;
	bool keys_ok = true;
	bool values_ok = true;

	(void)k;
	cJSON_ArrayForEach(child, item) {
		size_t key = strlen(child->string);
		size_t value = cJSON_IsString(child) ? strlen(child->valuestring) : 0;

		keys_ok = keys_ok && key >= 1 && key <= 128;
		values_ok = values_ok && value <= 256;
	}
	kinesis_tags_render(item, rendered, sizeof(rendered));
	if (!keys_ok)
		kv_errors_add(errors, rendered, true, "tags", "Map keys must satisfy constraint: "
			      "[Member must have length less than or equal to 128, Member must have "
			      "length greater than or equal to 1]");
	if (!values_ok)
		kv_errors_add(errors, rendered, true, "tags", "Map value must satisfy constraint: "
			      "[Member must have length less than or equal to 256, Member must have "
			      "length greater than or equal to 0]");
}

const struct kv_field kinesis_tags_field = {
	.name = "Tags", .type = KV_MAP, .length_min = 1, .length_max = 200, .value_min = -1,
	.value_max = -1, .nested_types = kv_members_are_strings, .nested_check = kinesis_tags_check,
};

/* AWS: "Unicode letters, digits, white space, _ . / = + - % @"; we take ASCII + UTF-8. */
bool
kinesis_tag_text_ok(const char *text)
{
	/* A JSON null passes the type check as "absent" but is no text: refused. */
	if (text == NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)text; *p != 0; p++)
		if (*p < 0x80 && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && strchr(" _./=+-%@:\t", *p) == NULL)
			return false;
	return true;
}

/* Copies the Tags map into `tags` (at most `max`); false if a character is refused. */
size_t
kinesis_tags_collect(const cJSON *item, struct metadata_tag *tags, size_t max, bool *ok_out)
{
	const cJSON *child;
	size_t n = 0;

	*ok_out = true;
	cJSON_ArrayForEach(child, item) {
		if (n == max)
			break;
		if (!kinesis_tag_text_ok(child->string) ||
		    !kinesis_tag_text_ok(child->valuestring)) {
			*ok_out = false;
			continue;
		}
		tags[n].key = child->string;
		tags[n].key_size = strlen(child->string);
		tags[n].value = child->valuestring;
		tags[n].value_size = strlen(child->valuestring);
		n++;
	}
	return n;
}

/* ---- CreateStream --------------------------------------------------------- */

static struct kinesis_stream *
kinesis_stream_slot(struct kinesis *k)
{
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (!k->streams[i].used)
			return &k->streams[i];
	return NULL;
}

/* Fills `s` and its shards for a new stream of `count` equal hash ranges. */
static int
kinesis_stream_build(struct kinesis *k, struct kinesis_stream *s, const struct kv_value *name,
		     uint32_t count, enum metadata_mode mode, uint64_t now_ms)
{
	s->shards = calloc(count, sizeof(*s->shards));
	if (s->shards == NULL)
		return -ENOMEM;
	memcpy(s->name, name->string, name->size);
	s->name[name->size] = '\0';
	s->name_size = name->size;
	snprintf(s->arn, sizeof(s->arn), "arn:aws:kinesis:%s:%s:stream/%s", k->config.region,
		 k->config.account_id, s->name);
	RAND_bytes((uint8_t *)&s->incarnation, sizeof(s->incarnation));
	s->incarnation &= INT64_MAX; /* SQLite integers are signed. */
	s->mode = mode;
	s->retention_hours = 24;
	s->created_ms = now_ms;
	s->shard_count = count;
	for (uint32_t i = 0; i < count; i++) {
		struct kinesis_shard *sh = &s->shards[i];

		sh->index = i;
		sh->start = hashkey_range_start(i, count);
		sh->end = i + 1 < count ? hashkey_range_start(i + 1, count) - 1 : HASHKEY_MAX;
		sh->parent = -1;
		sh->adjacent_parent = -1;
		sh->created_s = now_ms / 1000;
	}
	return 0;
}

/* SQLite first: the stream exists once its transaction commits. */
static int
kinesis_stream_store(struct kinesis *k, struct kinesis_stream *s, const struct metadata_tag *tags,
		     size_t tag_count)
{
	struct metadata_shard *shards = calloc(s->shard_count, sizeof(*shards));
	struct metadata_stream ms = {
		.incarnation = s->incarnation, .name = s->name, .mode = s->mode,
		.retention_hours = s->retention_hours, .created_ms = s->created_ms,
		.shard_count = s->shard_count,
	};
	int rc;

	if (shards == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->shard_count; i++) {
		shards[i] = (struct metadata_shard){
			.shard_index = i, .start = s->shards[i].start, .end = s->shards[i].end,
			.parent = -1, .adjacent_parent = -1, .created_s = s->shards[i].created_s,
		};
	}
	rc = metadata_stream_create(k->md, &ms, shards, tags, tag_count);
	free(shards);
	if (rc != 0)
		return rc;
	s->stream_id = ms.stream_id;
	for (uint32_t i = 0; i < s->shard_count; i++)
		s->shards[i].log_id = LOG_SHARD_ID(s->stream_id, i);
	kinesis_routes_changed(k);  /* UDP producers may write to it from now on. */
	return 0;
}

void
kinesis_status_schedule(struct kinesis *k, struct kinesis_stream *s, enum kinesis_status now,
			enum kinesis_status next)
{
	if (s->status_due_ns != 0)
		k->transitions--;
	s->status = now;
	s->status_next = next;
	s->status_due_ns = 0;
	if (k->config.stream_status_delay_ms == 0) {
		s->status = next;
		return;
	}
	s->status_due_ns = clock_mono_ns() + (uint64_t)k->config.stream_status_delay_ms * 1000000u;
	k->transitions++;
}

static bool
kinesis_create_admit(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		     uint32_t count)
{
	if (kinesis_stream_find(k, name->string, name->size) != NULL) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s already "
			      "exists.", name->string, k->config.account_id);
		return false;
	}
	if ((uint64_t)k->shards_total + count > k->shard_limit) {
		kinesis_error(call, "LimitExceededException", "This request would exceed the shard "
			      "limit for the account %s in %s. Current shard count for the account: "
			      "%u. Limit: %u. Number of additional shards that would have resulted "
			      "from this request: %u. Refer to the AWS Service Limits page "
			      "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
			      "for current limits and how to request higher limits.",
			      k->config.account_id, k->config.region, k->shards_total,
			      k->shard_limit, count);
		return false;
	}
	if (kinesis_stream_slot(k) == NULL) {
		kinesis_error(call, "LimitExceededException", "This request would exceed the limit "
			      "of %u streams for the account %s.", SLUICE_STREAMS_MAX,
			      k->config.account_id);
		return false;
	}
	return true;
}

static void
kinesis_create(struct kinesis *k, struct api_call *call, const struct api_request *req,
	       const struct kv_value *v, uint32_t count)
{
	struct metadata_tag tags[KINESIS_TAGS_PER_STREAM_MAX];
	size_t tag_count = 0;
	enum metadata_mode mode = v[2].json != NULL ? kinesis_mode_parse(v[2].json) :
				  METADATA_PROVISIONED;
	struct kinesis_stream *s;
	int rc;

	if (!kinesis_create_admit(k, call, &v[1], count))
		return;
	if (v[3].json != NULL) {
		bool ok;

		if (v[3].size > KINESIS_TAGS_PER_STREAM_MAX) {
			kinesis_error(call, "InvalidArgumentException", "Failed to add tags to stream "
				      "%s under account %s because a given stream cannot have more "
				      "than %u tags.", v[1].string, k->config.account_id,
				      KINESIS_TAGS_PER_STREAM_MAX);
			return;
		}
		tag_count = kinesis_tags_collect(v[3].json, tags, ARRAY_SIZE(tags), &ok);
		if (!ok) {
			kinesis_error(call, "InvalidArgumentException", "Some tags contain invalid "
				      "characters. Valid characters: Unicode letters, digits, white "
				      "space, _ . / = + - %% @.");
			return;
		}
	}
	s = kinesis_stream_slot(k);
	rc = kinesis_stream_build(k, s, &v[1], count, mode, kinesis_now_ms(req));
	if (rc == 0)
		rc = kinesis_stream_store(k, s, tags, tag_count);
	if (rc == 0)
		rc = kinesis_log_retention(k, s->stream_id, s->retention_hours);
	if (rc != 0) {
		diag_error("kinesis", "CreateStream %s: %s", v[1].string, strerror(-rc));
		kinesis_stream_free(s);
		if (rc == -ENOSPC)   /* Not an internal failure: the operator can act on it. */
			kinesis_error(call, "LimitExceededException", "The appliance's disk is "
				      "full: delete a stream, or wait for retention to free space.");
		else
			kinesis_internal_error(call);
		return;
	}
	kinesis_stream_use(k, s);
	kinesis_stream_index(s);
	k->shards_total += count;
	kinesis_status_schedule(k, s, KINESIS_CREATING, KINESIS_ACTIVE);
	api_call_reply(call, 200);
}

void
kinesis_create_stream(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		KV_INT("ShardCount", false, 1, 100000),
		KV_STR("StreamName", true, KV_PATTERN_NAME, 1, 128),
		kinesis_mode_field,
		kinesis_tags_field,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	cJSON *root;
	bool on_demand;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	on_demand = v[2].json != NULL && kinesis_mode_parse(v[2].json) == METADATA_ON_DEMAND;
	if (v[0].json == NULL && !on_demand) {
		kinesis_error(call, "ValidationException", "1 validation error detected: Value null "
			      "at 'shardCount' failed to satisfy constraint: Member must not be null");
		goto out;
	}
	kinesis_create(k, call, req, v, v[0].json != NULL ? (uint32_t)v[0].number :
		       KINESIS_ON_DEMAND_SHARDS);
out:
	cJSON_Delete(root);
}

/* ---- DeleteStream ------------------------------------------------------- */

int
kinesis_stream_delete_finish(struct kinesis *k, struct kinesis_stream *s)
{
	uint32_t stream_id = s->stream_id;
	int rc = metadata_stream_delete(k->md, stream_id);

	if (rc != 0)
		return rc;
	/* SQLite says gone; the log follows, or the next start retries it. */
	k->shards_total -= s->shard_count;
	if (s->status_due_ns != 0)
		k->transitions--;
	kinesis_stream_free(s);
	rc = log_stream_delete(k->log, stream_id);
	if (rc != 0 && rc != -ENOENT) {
		diag_warn("kinesis", "log_stream_delete(%u): %s (retried at start)", stream_id,
			  strerror(-rc));
		return 0;
	}
	return metadata_pending_delete_done(k->md, stream_id);
}

void
kinesis_delete_stream(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		KV_STREAM_NAME,
		KV_FIELD("EnforceConsumerDeletion", KV_BOOLEAN, false, KV_PATTERN_NONE, -1, -1, -1,
			 -1),
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[0], &v[2]);
	if (s == NULL)
		goto out;
	if (s->status == KINESIS_DELETING) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s not ACTIVE, "
			      "instead in state DELETING", s->name, k->config.account_id);
		goto out;
	}
	if (metadata_stream_deleting(k->md, s->stream_id) != 0) {
		kinesis_internal_error(call);
		goto out;
	}
	kinesis_routes_changed(k);  /* A deleting stream is routed no more. */
	kinesis_status_schedule(k, s, KINESIS_DELETING, KINESIS_DELETING);
	if (s->status_due_ns == 0 && kinesis_stream_delete_finish(k, s) != 0)
		diag_error("kinesis", "DeleteStream: finishing failed (retried at start)");
	api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

/* ---- DescribeStream, DescribeStreamSummary -------------------------------- */

static void
kinesis_out_stream_head(struct kinesis *k, struct api_out *out, const struct kinesis_stream *s)
{
	(void)k;
	api_out_printf(out, "\"StreamName\":\"%s\",\"StreamARN\":", s->name);
	api_out_json_string(out, s->arn, strlen(s->arn));
	api_out_printf(out, ",\"StreamStatus\":\"%s\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"},"
		       "\"RetentionPeriodHours\":%u,\"StreamCreationTimestamp\":",
		       kinesis_status_name(s->status), kinesis_mode_name(s->mode),
		       s->retention_hours);
	kinesis_out_timestamp(out, s->created_ms);
	api_out_printf(out, ",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],"
		       "\"EncryptionType\":\"NONE\"");
}

void
kinesis_describe_stream(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		KV_INT("Limit", false, 1, 10000),
		KV_STR("ExclusiveStartShardId", false, KV_PATTERN_NAME, 1, 128),
		KV_STREAM_NAME,
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	struct api_out *out;
	uint32_t from = 0;
	uint32_t limit;
	uint32_t n = 0;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[2], &v[3]);
	if (s == NULL)
		goto out;
	limit = v[0].json != NULL && v[0].number < 100 ? (uint32_t)v[0].number : 100;
	if (v[1].json != NULL && kinesis_shard_id_parse(v[1].string, v[1].size, &from) == 0)
		from++;
	out = api_call_out(call);
	api_out_printf(out, "{\"StreamDescription\":{");
	kinesis_out_stream_head(k, out, s);
	api_out_printf(out, ",\"Shards\":[");
	for (uint32_t i = from; s->status != KINESIS_CREATING && i < s->shard_count && n < limit;
	     i++, n++) {
		if (n > 0)
			api_out_printf(out, ",");
		kinesis_out_shard(out, &s->shards[i]);
	}
	api_out_printf(out, "],\"HasMoreShards\":%s", s->status != KINESIS_CREATING &&
		       from + n < s->shard_count ? "true" : "false");
	/* Not AWS's: what the on-demand auto-scaler did (SDKs ignore unknown members). */
	if (s->mode == METADATA_ON_DEMAND) {
		api_out_printf(out, ",\"SluiceAutoScaling\":{\"Splits\":%u,\"Merges\":%u,"
			       "\"LastDecision\":", s->scale_splits, s->scale_merges);
		api_out_json_string(out, s->scale_last, strlen(s->scale_last));
		api_out_printf(out, "}");
	}
	api_out_printf(out, "}}");
	api_call_reply(call, 200);
out:
	cJSON_Delete(root);
}

static uint32_t
kinesis_open_shards(const struct kinesis_stream *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->shard_count; i++)
		n += !s->shards[i].closed;
	return n;
}

void
kinesis_describe_stream_summary(struct kinesis *k, struct api_call *call,
				const struct api_request *req)
{
	const struct kv_field fields[] = { KV_STREAM_NAME, KV_STREAM_ARN };
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	struct api_out *out;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	s = kinesis_stream_resolve(k, call, &v[0], &v[1]);
	if (s != NULL) {
		out = api_call_out(call);
		api_out_printf(out, "{\"StreamDescriptionSummary\":{");
		kinesis_out_stream_head(k, out, s);
		api_out_printf(out, ",\"OpenShardCount\":%u,\"ConsumerCount\":0}}",
			       s->status == KINESIS_CREATING ? 0 : kinesis_open_shards(s));
		api_call_reply(call, 200);
	}
	cJSON_Delete(root);
}

/* ---- ListStreams ---------------------------------------------------------- */

static int
kinesis_stream_name_cmp(const void *a, const void *b)
{
	const struct kinesis_stream *sa = *(const struct kinesis_stream *const *)a;
	const struct kinesis_stream *sb = *(const struct kinesis_stream *const *)b;

	return strcmp(sa->name, sb->name);
}

/* Decodes a NextToken; replies and returns -EINVAL when it is forged or expired. */
static int
kinesis_token_open(struct kinesis *k, struct api_call *call, const struct api_request *req,
		   const struct kv_value *text, struct iterator_token *token)
{
	uint64_t now_ms = kinesis_now_ms(req);

	if (iterator_token_decode(k->secret, text->string, text->size, token) != 0) {
		kinesis_error(call, "InvalidArgumentException", "Invalid NextToken.");
		return -EINVAL;
	}
	if (now_ms > token->issued_ms + KINESIS_TOKEN_TTL_MS) {
		kinesis_error(call, "ExpiredNextTokenException", "The nextToken has expired. "
			      "NextTokens are valid for %u milliseconds.", KINESIS_TOKEN_TTL_MS);
		return -EINVAL;
	}
	return 0;
}

static void
kinesis_out_summary(struct api_out *out, const struct kinesis_stream *s)
{
	api_out_printf(out, "{\"StreamName\":\"%s\",\"StreamARN\":", s->name);
	api_out_json_string(out, s->arn, strlen(s->arn));
	api_out_printf(out, ",\"StreamStatus\":\"%s\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"},"
		       "\"StreamCreationTimestamp\":", kinesis_status_name(s->status),
		       kinesis_mode_name(s->mode));
	kinesis_out_timestamp(out, s->created_ms);
	api_out_printf(out, "}");
}

/* Writes names and summaries of sorted[from .. from + count). */
static void
kinesis_list_streams_out(struct kinesis *k, struct api_call *call, const struct api_request *req,
			 struct kinesis_stream **sorted, uint32_t from, uint32_t count, bool more)
{
	struct api_out *out = api_call_out(call);

	api_out_printf(out, "{\"StreamNames\":[");
	for (uint32_t i = 0; i < count; i++)
		api_out_printf(out, "%s\"%s\"", i > 0 ? "," : "", sorted[from + i]->name);
	api_out_printf(out, "],\"HasMoreStreams\":%s,\"StreamSummaries\":[", more ? "true" : "false");
	for (uint32_t i = 0; i < count; i++) {
		if (i > 0)
			api_out_printf(out, ",");
		kinesis_out_summary(out, sorted[from + i]);
	}
	api_out_printf(out, "]");
	if (more) {
		char text[ITERATOR_TEXT_SIZE_MAX + 1];
		const struct kinesis_stream *last = sorted[from + count - 1];
		struct iterator_token token = {
			.issued_ms = kinesis_now_ms(req), .stream_id = last->stream_id,
			.incarnation = last->incarnation, .name_size = (uint8_t)last->name_size,
		};

		memcpy(token.name, last->name, last->name_size);
		iterator_token_encode(k->secret, &token, text);
		api_out_printf(out, ",\"NextToken\":\"%s\"", text);
	}
	api_out_printf(out, "}");
	api_call_reply(call, 200);
}

void
kinesis_list_streams(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	static struct kinesis_stream *sorted[SLUICE_STREAMS_MAX];
	const struct kv_field fields[] = {
		KV_INT("Limit", false, 1, 10000),
		KV_STR("ExclusiveStartStreamName", false, KV_PATTERN_NAME, 1, 128),
		KV_STR("NextToken", false, KV_PATTERN_NONE, 1, 1048576),
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct iterator_token token;
	const char *after = NULL;
	uint32_t count = 0;
	uint32_t from = 0;
	uint32_t limit;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	if (v[2].json != NULL) {
		if (kinesis_token_open(k, call, req, &v[2], &token) != 0)
			goto out;
		after = token.name;
	} else if (v[1].json != NULL) {
		after = v[1].string;
	}
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (k->streams[i].used)
			sorted[count++] = &k->streams[i];
	qsort(sorted, count, sizeof(sorted[0]), kinesis_stream_name_cmp);
	while (after != NULL && from < count && strcmp(sorted[from]->name, after) <= 0)
		from++;
	limit = v[0].json != NULL && v[0].number < 100 ? (uint32_t)v[0].number : 100;
	kinesis_list_streams_out(k, call, req, sorted, from,
				 count - from < limit ? count - from : limit, count - from > limit);
out:
	cJSON_Delete(root);
}

/* ---- ListShards ----------------------------------------------------------- */

static const char *const kinesis_filter_types[] = {
	"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
	"FROM_TIMESTAMP", NULL,
};

static int
kinesis_filter_types_check(struct kinesis *k, struct api_call *call, const cJSON *item)
{
	(void)k;
	if (kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "Type"), KV_STRING) != 0 ||
	    kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "ShardId"), KV_STRING) != 0)
		return -EINVAL;
	return kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "Timestamp"),
			     KV_TIMESTAMP);
}

static void
kinesis_filter_check(struct kinesis *k, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "Type");
	bool known = false;

	(void)k;
	kv_string_check(errors, "shardFilter.shardId",
			cJSON_GetObjectItemCaseSensitive(item, "ShardId"), false, KV_PATTERN_NAME,
			1, 128);
	if (type == NULL || cJSON_IsNull(type)) {
		kv_errors_add(errors, "null", false, "shardFilter.type", "Member must not be null");
		return;
	}
	for (const char *const *t = kinesis_filter_types; *t != NULL; t++)
		known = known || strcmp(*t, type->valuestring) == 0;
	if (!known)
		kv_errors_add(errors, type->valuestring, true, "shardFilter.type",
			      "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
			      "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]");
}

/* Which shards a ShardFilter keeps; the first index to list in *from. */
static int
kinesis_filter_apply(struct kinesis *k, struct api_call *call, const cJSON *filter,
		     uint32_t *from, struct kinesis_shard_filter *sf)
{
	static const struct {
		const char *name;
		enum kinesis_filter type;
	} types[] = {
		{ "AFTER_SHARD_ID", KINESIS_FILTER_FROM_TRIM_HORIZON },
		{ "AT_TRIM_HORIZON", KINESIS_FILTER_AT_TRIM_HORIZON },
		{ "FROM_TRIM_HORIZON", KINESIS_FILTER_FROM_TRIM_HORIZON },
		{ "AT_LATEST", KINESIS_FILTER_AT_LATEST },
		{ "AT_TIMESTAMP", KINESIS_FILTER_AT_TIMESTAMP },
		{ "FROM_TIMESTAMP", KINESIS_FILTER_FROM_TIMESTAMP },
	};
	const char *type = cJSON_GetObjectItemCaseSensitive(filter, "Type")->valuestring;
	const cJSON *shard_id = cJSON_GetObjectItemCaseSensitive(filter, "ShardId");
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(filter, "Timestamp");
	uint32_t index;

	(void)k;
	if (strcmp(type, "AFTER_SHARD_ID") == 0) {
		if (shard_id == NULL || cJSON_IsNull(shard_id)) {
			kinesis_error(call, "InvalidArgumentException", "Must specify ShardId for "
				      "ShardFilter type AFTER_SHARD_ID.");
			return -EINVAL;
		}
		if (kinesis_shard_id_parse(shard_id->valuestring, strlen(shard_id->valuestring),
					   &index) == 0 && index + 1 > *from)
			*from = index + 1;
	} else if ((strcmp(type, "AT_TIMESTAMP") == 0 || strcmp(type, "FROM_TIMESTAMP") == 0) &&
		   (ts == NULL || cJSON_IsNull(ts))) {
		kinesis_error(call, "InvalidArgumentException", "Must specify Timestamp for "
			      "ShardFilter type %s.", type);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(type, types[i].name) == 0)
			sf->type = types[i].type;
	/* Whole seconds, rounded down: shard times are seconds (see kinesis_shard_listed). */
	sf->ts_s = ts == NULL || cJSON_IsNull(ts) || ts->valuedouble < 0 ? 0 :
		   (uint64_t)ts->valuedouble;
	return 0;
}

static void
kinesis_list_shards_out(struct kinesis *k, struct api_call *call, const struct api_request *req,
			const struct kinesis_stream *s, uint32_t from, uint32_t limit,
			const struct kinesis_shard_filter *sf)
{
	uint64_t now_s = kinesis_now_ms(req) / 1000;
	struct api_out *out = api_call_out(call);
	uint32_t n = 0;
	uint32_t i;

	api_out_printf(out, "{\"Shards\":[");
	for (i = from; i < s->shard_count && n < limit; i++) {
		if (!kinesis_shard_listed(s, i, sf, now_s))
			continue;
		api_out_printf(out, "%s", n++ > 0 ? "," : "");
		kinesis_out_shard(out, &s->shards[i]);
	}
	api_out_printf(out, "]");
	if (i < s->shard_count) {
		char text[ITERATOR_TEXT_SIZE_MAX + 1];
		struct iterator_token token = {
			.issued_ms = kinesis_now_ms(req), .stream_id = s->stream_id,
			.incarnation = s->incarnation,
			.position = i | (uint32_t)sf->type << KINESIS_FILTER_SHIFT,
			.limit = (uint32_t)min_u64(sf->ts_s, UINT32_MAX),
			.name_size = (uint8_t)s->name_size,
		};

		memcpy(token.name, s->name, s->name_size);
		iterator_token_encode(k->secret, &token, text);
		api_out_printf(out, ",\"NextToken\":\"%s\"", text);
	}
	api_out_printf(out, "}");
	api_call_reply(call, 200);
}

/* NextToken excludes StreamName/StreamARN, ExclusiveStartShardId, StreamCreationTimestamp. */
static bool
kinesis_list_shards_args(struct kinesis *k, struct api_call *call, const struct kv_value *v)
{
	(void)k;
	if (v[2].json == NULL && v[4].json == NULL && v[6].json == NULL) {
		kinesis_error(call, "InvalidArgumentException",
			      "Either NextToken or StreamName should be provided.");
		return false;
	}
	if (v[2].json != NULL && (v[4].json != NULL || v[6].json != NULL)) {
		kinesis_error(call, "InvalidArgumentException", "NextToken and %s cannot be provided "
			      "together.", v[4].json != NULL ? "StreamName" : "StreamARN");
		return false;
	}
	if (v[2].json != NULL && (v[0].json != NULL || v[3].json != NULL)) {
		kinesis_error(call, "InvalidArgumentException", "NextToken and %s cannot be provided "
			      "together.", v[0].json != NULL ? "ExclusiveStartShardId" :
			      "StreamCreationTimestamp");
		return false;
	}
	return true;
}

static struct kinesis_stream *
kinesis_list_shards_stream(struct kinesis *k, struct api_call *call, const struct api_request *req,
			   const struct kv_value *v, uint32_t *from, struct kinesis_shard_filter *sf)
{
	struct iterator_token token;
	struct kinesis_stream *s;

	if (v[2].json == NULL)
		return kinesis_stream_resolve(k, call, &v[4], &v[6]);
	if (kinesis_token_open(k, call, req, &v[2], &token) != 0)
		return NULL;
	s = kinesis_stream_by_id(k, token.stream_id);
	if (s == NULL || s->incarnation != token.incarnation) {
		kinesis_error(call, "ResourceNotFoundException", "Stream %s under account %s not "
			      "found.", token.name, k->config.account_id);
		return NULL;
	}
	*from = token.position & ((1u << KINESIS_FILTER_SHIFT) - 1);
	sf->type = (enum kinesis_filter)(token.position >> KINESIS_FILTER_SHIFT);
	sf->ts_s = token.limit;
	return s;
}

void
kinesis_list_shards(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	const struct kv_field fields[] = {
		KV_STR("ExclusiveStartShardId", false, KV_PATTERN_NAME, 1, 128),
		KV_INT("MaxResults", false, 1, 10000),
		KV_STR("NextToken", false, KV_PATTERN_NONE, 1, 1048576),
		KV_FIELD("StreamCreationTimestamp", KV_TIMESTAMP, false, KV_PATTERN_NONE, -1, -1,
			 -1, -1),
		KV_STREAM_NAME,
		{ .name = "ShardFilter", .type = KV_STRUCT, .length_min = -1, .length_max = -1,
		  .value_min = -1, .value_max = -1, .nested_types = kinesis_filter_types_check,
		  .nested_check = kinesis_filter_check },
		KV_STREAM_ARN,
	};
	struct kv_value v[ARRAY_SIZE(fields)];
	struct kinesis_stream *s;
	struct kinesis_shard_filter sf = { .type = KINESIS_FILTER_FROM_TRIM_HORIZON };
	uint32_t from = 0;
	cJSON *root;

	if (kv_check(k, call, req, fields, ARRAY_SIZE(fields), &root, v) != 0)
		return;
	if (!kinesis_list_shards_args(k, call, v))
		goto out;
	s = kinesis_list_shards_stream(k, call, req, v, &from, &sf);
	if (s == NULL)
		goto out;
	/* StreamCreationTimestamp tells incarnations of one name apart: another one is not found. */
	if (v[3].json != NULL && (uint64_t)(v[3].seconds < 0 ? 0 : v[3].seconds) !=
	    s->created_ms / 1000) {
		kinesis_error(call, "ResourceNotFoundException", "Stream %s under account %s not "
			      "found.", s->name, k->config.account_id);
		goto out;
	}
	if (v[0].json != NULL && kinesis_shard_id_parse(v[0].string, v[0].size, &from) == 0)
		from++;
	if (v[5].json != NULL && kinesis_filter_apply(k, call, v[5].json, &from, &sf) != 0)
		goto out;
	kinesis_list_shards_out(k, call, req, s, from, v[1].json != NULL ?
				(uint32_t)v[1].number : 1000, &sf);
out:
	cJSON_Delete(root);
}
