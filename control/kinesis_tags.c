/*
 * kinesis_tags.c - stream tags (SQLite only): AddTagsToStream,
 * ListTagsForStream, RemoveTagsFromStream, and the Tags member's checks
 * CreateStream shares.
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

void
kinesis_add_tags(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const cJSON *tags_in = r->v[ADD_TAGS_TAGS].json;
	struct metadata_tag tags[KINESIS_TAGS_PER_CALL_MAX];
	struct kinesis_stream *s;
	size_t count;
	bool ok;
	int rc;

	/* Optional in the shared Tags member, required here: checked before the stream. */
	if (tags_in == NULL) {
		kinesis_error(call, "ValidationException", "1 validation error detected: Value null "
			      "at 'tags' failed to satisfy constraint: Member must not be null");
		return;
	}
	s = kinesis_stream_resolve(k, call, &r->v[ADD_TAGS_STREAM_NAME],
				   &r->v[ADD_TAGS_STREAM_ARN]);
	if (s == NULL)
		return;
	count = kinesis_tags_collect(tags_in, tags, ARRAY_SIZE(tags), &ok);
	if (!ok) {
		kinesis_error(call, "InvalidArgumentException", "Some tags contain invalid "
			      "characters. Valid characters: Unicode letters, digits, white space, "
			      "_ . / = + - %% @.");
		return;
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
	if (metadata_tags_list(r->k->md, r->stream->stream_id, start->string, start->size,
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
	size_t n = (size_t)snprintf(rendered, sizeof(rendered), "[");
	bool ok = true;

	(void)r;
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
kinesis_remove_tags(struct kinesis_req *r)
{
	struct metadata_tag keys[KINESIS_TAG_KEYS_MAX];
	const cJSON *child;
	size_t count = 0;

	cJSON_ArrayForEach(child, r->v[REMOVE_TAGS_TAG_KEYS].json) {
		keys[count].key = child->valuestring;
		keys[count].key_size = strlen(child->valuestring);
		count++;
	}
	if (metadata_tags_remove(r->k->md, r->stream->stream_id, keys, count) != 0)
		kinesis_internal_error(r->call);
	else
		api_call_reply(r->call, 200);
}

