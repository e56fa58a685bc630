/*
 * kinesis_tags.c - stream and consumer tags (SQLite only): AddTagsToStream,
 * ListTagsForStream, RemoveTagsFromStream, their ARN-based forms TagResource,
 * UntagResource, ListTagsForResource (a stream's or a consumer's ARN), and the Tags
 * member's checks CreateStream and RegisterStreamConsumer share. A consumer's tags
 * go with it (metadata_consumer_remove) or with its stream.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/kinesis.h"

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

void
kinesis_tags_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	char rendered[KINESIS_MESSAGE_SIZE];
	const cJSON *child;
	bool keys_ok = true;
	bool values_ok = true;

	(void)r;
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

/*
 * AWS: "Unicode letters, digits, white space, _ . / = + - % @", where white space is the
 * space alone (AWS refuses a TAB or a newline); we take any UTF-8 beyond ASCII.
 */
bool
kinesis_tag_text_ok(const char *text)
{
	/* A JSON null passes the type check as "absent" but is no text: refused. */
	if (text == NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)text; *p != 0; p++)
		if (*p < 0x80 && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && strchr(" _./=+-%@:", *p) == NULL)
			return false;
	return true;
}

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

static void kinesis_tags_add(struct kinesis_req *r, const struct kinesis_stream *s,
			     const char *consumer, const cJSON *tags_in);

void
kinesis_tags_invalid(struct api_call *call)
{
	kinesis_error(call, "InvalidArgumentException", "Some tags contain invalid characters. "
		      "Valid characters: Unicode letters, digits, white space, _ . / = + - %% @.");
}

void
kinesis_tags_too_many(struct kinesis *k, struct api_call *call, const char *consumer,
		      const char *name)
{
	const char *kind = consumer[0] != '\0' ? "consumer" : "stream";

	kinesis_error(call, "InvalidArgumentException", "Failed to add tags to %s %s under "
		      "account %s because a given %s cannot have more than %u tags.", kind,
		      consumer[0] != '\0' ? consumer : name, k->config.account_id, kind,
		      KINESIS_TAGS_PER_STREAM_MAX);
}

static void kinesis_tags_remove(struct kinesis_req *r, const struct kinesis_stream *s,
				const char *consumer, const cJSON *keys_in);

void
kinesis_add_tags(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const cJSON *tags_in = r->v[ADD_TAGS_TAGS].json;
	struct kinesis_stream *s;

	/* Optional in the shared Tags member, required here: checked before the stream. */
	if (tags_in == NULL) {
		kinesis_error(call, "ValidationException", "1 validation error detected: Value null "
			      "at 'tags' failed to satisfy constraint: Member must not be null");
		return;
	}
	s = kinesis_stream_resolve(k, call, &r->v[ADD_TAGS_STREAM_NAME],
				   &r->v[ADD_TAGS_STREAM_ARN]);
	if (s != NULL)
		kinesis_tags_add(r, s, "", tags_in);
}

/* Adds or overwrites the Tags map `tags_in` on stream `s` or its `consumer`, and answers. */
static void
kinesis_tags_add(struct kinesis_req *r, const struct kinesis_stream *s, const char *consumer,
		 const cJSON *tags_in)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct metadata_tag tags[KINESIS_TAGS_PER_CALL_MAX];
	size_t count;
	bool ok;
	int rc;

	count = kinesis_tags_collect(tags_in, tags, ARRAY_SIZE(tags), &ok);
	if (!ok) {
		kinesis_tags_invalid(call);
		return;
	}
	rc = kinesis_md_tags_put(k, s, consumer, tags, count, KINESIS_TAGS_PER_STREAM_MAX);
	if (rc == -E2BIG)
		kinesis_tags_too_many(k, call, consumer, s->name);
	else if (rc != 0)
		kinesis_internal_error(call);
	else
		api_call_reply(call, 200);
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
kinesis_list_tags(struct kinesis_req *r)
{
	const struct kv_value *start = &r->v[LIST_TAGS_EXCLUSIVE_START_TAG_KEY];
	const struct kv_value *limit = &r->v[LIST_TAGS_LIMIT];
	struct api_out *out = api_call_out(r->call);
	bool more = false;

	api_out_printf(out, "{\"Tags\":[");
	if (metadata_tags_list(r->k->md, r->stream->stream_id, "", start->string, start->size,
			       limit->json != NULL ? (uint32_t)limit->number : 50, kinesis_tag_out,
			       out, &more) != 0) {
		out->size = 0;
		kinesis_internal_error(r->call);
		return;
	}
	api_out_printf(out, "],\"HasMoreTags\":%s}", more ? "true" : "false");
	api_call_reply(r->call, 200);
}

void
kinesis_tag_keys_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	char rendered[KINESIS_MESSAGE_SIZE];
	const cJSON *child;
	bool ok = true;

	(void)r;
	cJSON_ArrayForEach(child, item) {
		size_t size = cJSON_IsString(child) ? strlen(child->valuestring) : 0;

		ok = ok && size >= 1 && size <= 128;
	}
	kv_list_render(item, rendered, sizeof(rendered));
	if (!ok)
		kv_errors_add(errors, rendered, true, "tagKeys", "Member must satisfy constraint: "
			      "[Member must have length less than or equal to 128, Member must have "
			      "length greater than or equal to 1]");
}

void
kinesis_remove_tags(struct kinesis_req *r)
{
	kinesis_tags_remove(r, r->stream, "", r->v[REMOVE_TAGS_TAG_KEYS].json);
}


/* ---- By resource ARN: TagResource, UntagResource, ListTagsForResource ---------- */

void
kinesis_tag_resource(struct kinesis_req *r)
{
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, &r->v[TAG_RESOURCE_RESOURCE_ARN],
							    true, &consumer);

	if (s != NULL)
		kinesis_tags_add(r, s, consumer, r->v[TAG_RESOURCE_TAGS].json);
}

/* Removes TagKeys `keys` from stream `s` or its `consumer` (unknown keys are ignored). */
static void
kinesis_tags_remove(struct kinesis_req *r, const struct kinesis_stream *s, const char *consumer,
		    const cJSON *keys_in)
{
	struct metadata_tag keys[KINESIS_TAG_KEYS_MAX];
	const cJSON *child;
	size_t count = 0;

	cJSON_ArrayForEach(child, keys_in) {
		if (!kinesis_tag_text_ok(child->valuestring)) {
			kinesis_tags_invalid(r->call);
			return;
		}
		keys[count].key = child->valuestring;
		keys[count].key_size = strlen(child->valuestring);
		count++;
	}
	if (kinesis_md_tags_remove(r->k, s, consumer, keys, count) != 0)
		kinesis_internal_error(r->call);
	else
		api_call_reply(r->call, 200);
}

void
kinesis_untag_resource(struct kinesis_req *r)
{
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, &r->v[UNTAG_RESOURCE_RESOURCE_ARN],
							    true, &consumer);

	if (s != NULL)
		kinesis_tags_remove(r, s, consumer, r->v[UNTAG_RESOURCE_TAG_KEYS].json);
}

void
kinesis_list_tags_for_resource(struct kinesis_req *r)
{
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, &r->v[LIST_TAGS_RESOURCE_RESOURCE_ARN],
							    false, &consumer);
	struct api_out *out;
	bool more = false;

	if (s == NULL)
		return;
	out = api_call_out(r->call);
	api_out_printf(out, "{\"Tags\":[");
	if (metadata_tags_list(r->k->md, s->stream_id, consumer, NULL, 0, KINESIS_TAGS_PER_CALL_MAX,
			       kinesis_tag_out, out, &more) != 0) {
		out->size = 0;
		kinesis_internal_error(r->call);
		return;
	}
	api_out_printf(out, "]}");
	api_call_reply(r->call, 200);
}
