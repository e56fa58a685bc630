/*
 * kinesis_validate.c - request decoding as AWS does it, in its order:
 *   1. the body must be a JSON object (SerializationException);
 *   2. every known member must have a convertible type (SerializationException
 *      with the Coral/Java text AWS leaks);
 *   3. every constraint of every member, in AWS's member order, each failure
 *      one "Value ... at 'path' failed to satisfy constraint: ..." message,
 *      at most 10, joined into "N validation error(s) detected: ..."
 *      (ValidationException).
 * Unknown members are ignored, as AWS ignores them.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/base64.h"
#include "control/kinesis.h"

static const char *
kv_json_kind(const cJSON *item)
{
	return cJSON_IsArray(item) ? "Start of list found where not expected" :
	       "Start of structure or map found where not expected.";
}

/* The text AWS gives for a member of `type` holding the wrong kind of JSON value. */
static const char *
kv_type_message(const cJSON *item, enum kv_type type)
{
	bool scalar = !cJSON_IsArray(item) && !cJSON_IsObject(item);

	switch (type) {
	case KV_STRING:
		if (cJSON_IsString(item))
			return NULL;
		if (cJSON_IsBool(item))
			return "class java.lang.Boolean can not be converted to an String";
		/* AWS's JSON reader gives numbers as this class (not BigDecimal) here. */
		if (cJSON_IsNumber(item))
			return "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not "
			       "be converted to an String";
		return kv_json_kind(item);
	case KV_INTEGER:
	case KV_LONG:
		if (cJSON_IsNumber(item))
			return NULL;
		if (cJSON_IsBool(item))
			return type == KV_INTEGER ?
			       "class java.lang.Boolean can not be converted to an Integer" :
			       "class java.lang.Boolean can not be converted to an Long";
		if (cJSON_IsString(item))
			return type == KV_INTEGER ?
			       "class java.lang.String can not be converted to an Integer" :
			       "class java.lang.String can not be converted to an Long";
		return kv_json_kind(item);
	case KV_BOOLEAN:
		if (cJSON_IsBool(item))
			return NULL;
		if (cJSON_IsNumber(item))
			return "class java.math.BigDecimal can not be converted to an Boolean";
		if (cJSON_IsString(item))
			return "Unrecognized boolean value, expected true or false";
		return kv_json_kind(item);
	case KV_BLOB:
		if (cJSON_IsString(item))
			return NULL;
		if (cJSON_IsBool(item))
			return "class java.lang.Boolean can not be converted to a Blob";
		if (cJSON_IsNumber(item))
			return "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not "
			       "be converted to a Blob";
		return kv_json_kind(item);
	case KV_TIMESTAMP:
		if (cJSON_IsNumber(item))
			return NULL;
		if (cJSON_IsString(item))
			return "class java.lang.String can not be converted to milliseconds since epoch";
		if (cJSON_IsBool(item))
			return "class java.lang.Boolean can not be converted to milliseconds since "
			       "epoch";
		return kv_json_kind(item);
	case KV_LIST:
		if (cJSON_IsArray(item))
			return NULL;
		return scalar ? "Expected list or null" :
		       "Start of structure or map found where not expected.";
	case KV_MAP:
		if (cJSON_IsObject(item))
			return NULL;
		return scalar ? "Expected map or null" : "Start of list found where not expected";
	case KV_STRUCT:
		if (cJSON_IsObject(item))
			return NULL;
		return scalar ? "Expected null" : "Start of list found where not expected";
	}
	return "Unknown type";
}

int
kv_blob_check(struct api_call *call, const cJSON *item)
{
	char message[KINESIS_MESSAGE_SIZE];
	const char *text = item->valuestring;
	size_t size = strlen(text);
	uint8_t unused[3];
	size_t bad;

	if (size % 4 != 0) {
		snprintf(message, sizeof(message), "'%.1024s' can not be converted to a Blob: Base64 "
			 "encoded length is expected a multiple of 4 bytes but found: %zu", text, size);
		goto out_reply;
	}
	bad = base64_scan(text, size);
	if (bad < size) {
		snprintf(message, sizeof(message), "'%.1024s' can not be converted to a Blob: "
			 "Invalid Base64 character: '%c'", text, text[bad]);
		goto out_reply;
	}
	/* Only the last group can still be wrong: '=' too early, or unused bits set. */
	if (size == 0 || base64_decode(text + size - 4, 4, unused, 3) >= 0)
		return 0;
	snprintf(message, sizeof(message), "'%.1024s' can not be converted to a Blob: Invalid last "
		 "non-pad Base64 character dectected", text);
out_reply:
	kinesis_serialization_error(call, message);
	return -EINVAL;
}

int
kv_type_check(struct api_call *call, const cJSON *item, enum kv_type type)
{
	const char *message;

	if (item == NULL || cJSON_IsNull(item))
		return 0;
	message = kv_type_message(item, type);
	if (message != NULL) {
		kinesis_serialization_error(call, message);
		return -EINVAL;
	}
	return type == KV_BLOB ? kv_blob_check(call, item) : 0;
}

void
kv_list_render(const cJSON *item, char *buf, size_t size)
{
	const cJSON *child;
	size_t n = (size_t)snprintf(buf, size, "[");

	cJSON_ArrayForEach(child, item) {
		if (n + 4 >= size)
			break;
		n += (size_t)snprintf(buf + n, size - n, "%s%s", child == item->child ? "" : ", ",
				      cJSON_IsString(child) ? child->valuestring : "null");
	}
	if (n + 2 < size)
		snprintf(buf + n, size - n, "]");
}

int
kv_members_are_strings(struct kinesis_req *r, const cJSON *item)
{
	const cJSON *child;

	cJSON_ArrayForEach(child, item)
		if (kv_type_check(r->call, child, KV_STRING) != 0)
			return -EINVAL;
	return 0;
}

const uint8_t *
kv_blob_decode(struct kinesis *k, const cJSON *item, uint32_t *size_out)
{
	size_t size = strlen(item->valuestring);
	uint8_t *out = k->scratch + k->scratch_used;
	int64_t n = base64_decode(item->valuestring, size, out,
					  k->scratch_size - k->scratch_used);

	if (n < 0)
		return NULL;
	k->scratch_used += (size_t)n;
	*size_out = (uint32_t)n;
	return out;
}

void
kv_errors_add(struct kv_errors *errors, const char *value, bool quote, const char *path,
	      const char *rule)
{
	size_t room;
	int n;

	if (errors->count >= KINESIS_VALIDATION_ERRORS_MAX)
		return;
	errors->count++;
	room = sizeof(errors->text) - errors->size;
	n = snprintf(errors->text + errors->size, room, "%sValue %s%s%s at '%s' failed to satisfy "
		     "constraint: %s", errors->count > 1 ? "; " : "", quote ? "'" : "", value,
		     quote ? "'" : "", path, rule);
	errors->size += n < 0 ? 0 : ((size_t)n >= room ? room - 1 : (size_t)n);
}

bool
kv_errors_reply(struct api_call *call, const struct kv_errors *errors)
{
	if (errors->count == 0)
		return false;
	kinesis_error(call, "ValidationException", "%u validation error%s detected: %s",
		      errors->count, errors->count > 1 ? "s" : "", errors->text);
	return true;
}

static bool
kv_digits(const char *text, size_t size, size_t max_after_first)
{
	if (size == 1 && text[0] == '0')
		return true;
	if (size == 0 || size > max_after_first + 1 || text[0] < '1' || text[0] > '9')
		return false;
	for (size_t i = 1; i < size; i++)
		if (text[i] < '0' || text[i] > '9')
			return false;
	return true;
}

/* \S+ from `from` to the end of the text. */
static bool
kv_tail_nonspace(const char *text, size_t from, size_t size)
{
	if (from >= size)
		return false;
	for (size_t j = from; j < size; j++)
		if (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r' ||
		    text[j] == '\f' || text[j] == '\v')
			return false;
	return true;
}

/*
 * arn:aws.*:kinesis:.*:\d{12}:stream/\S+ (a stream), or with `resource`
 * arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+ (a stream or a consumer).
 */
static bool
kv_arn_match(const char *text, size_t size, bool resource)
{
	const char *kinesis;

	if (size < 7 || memcmp(text, "arn:aws", 7) != 0)
		return false;
	kinesis = memmem(text + 7, size - 7, ":kinesis:", 9);
	if (kinesis == NULL)
		return false;
	for (size_t i = (size_t)(kinesis - text) + 9; i + 21 < size; i++) {
		bool digits = text[i] == ':' && text[i + 13] == ':';

		for (size_t j = 1; digits && j <= 12; j++)
			digits = text[i + j] >= '0' && text[i + j] <= '9';
		if (!digits)
			continue;
		if (!resource && memcmp(text + i + 14, "stream/", 7) == 0 &&
		    kv_tail_nonspace(text, i + 21, size))
			return true;
		for (size_t j = i + 14; resource && j + 7 < size; j++)
			if (memcmp(text + j, "stream/", 7) == 0 && kv_tail_nonspace(text, j + 7, size))
				return true;
	}
	return false;
}

bool
kv_pattern_match(enum kv_pattern pattern, const char *text, size_t size)
{
	switch (pattern) {
	case KV_PATTERN_NONE:
		return true;
	case KV_PATTERN_NAME:
		if (size == 0)
			return false;
		for (size_t i = 0; i < size; i++) {
			char c = text[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
				return false;
		}
		return true;
	case KV_PATTERN_HASH_KEY:
		return kv_digits(text, size, 38);
	case KV_PATTERN_SEQUENCE:
		return kv_digits(text, size, 128);
	case KV_PATTERN_ARN:
		return kv_arn_match(text, size, false);
	case KV_PATTERN_RESOURCE_ARN:
		return kv_arn_match(text, size, true);
	}
	return false;
}

static const char *
kv_pattern_text(enum kv_pattern pattern)
{
	static const char *const texts[] = {
		[KV_PATTERN_NONE] = "",
		[KV_PATTERN_NAME] = "[a-zA-Z0-9_.-]+",
		[KV_PATTERN_HASH_KEY] = "0|([1-9]\\d{0,38})",
		[KV_PATTERN_SEQUENCE] = "0|([1-9]\\d{0,128})",
		[KV_PATTERN_ARN] = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
		[KV_PATTERN_RESOURCE_ARN] = "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+",
	};

	return texts[pattern];
}

size_t
kv_utf8_sequence_size(const uint8_t *p, size_t size)
{
	uint32_t cp;
	size_t n;

	if (size == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07u;
	else
		return 0;     /* A continuation byte, an overlong lead (c0, c1) or past U+10FFFF. */
	if (size < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Why each check: cJSON accepts all three, and the actions measure strings with strlen()
 * after decoding, so "a\u0000b" would be stored (or deleted!) as "a"; a key that is not
 * UTF-8 is not the byte string the caller hashed; AWS refuses all three.
 */
const char *
kv_body_check(const uint8_t *body, size_t size)
{
	bool in_string = false;

	for (size_t i = 0; i < size;) {
		size_t n = kv_utf8_sequence_size(body + i, size - i);

		if (n == 0)
			return "Invalid UTF-8 in the request body";
		if (in_string && body[i] < 0x20)
			return "Unescaped control character in a JSON string";
		if (in_string && body[i] == '\\') {
			if (i + 1 < size && body[i + 1] == 'u' && size - i >= 6 &&
			    memcmp(body + i + 2, "0000", 4) == 0)
				return "NUL character (\\u0000) in a JSON string";
			i += 2;   /* The escaped byte cannot end the string. */
			continue;
		}
		if (body[i] == '"')
			in_string = !in_string;
		i += n;
	}
	return NULL;
}

size_t
kv_utf16_length(const char *text, size_t size)
{
	size_t units = 0;

	for (size_t i = 0; i < size; i++) {
		unsigned char c = (unsigned char)text[i];

		/* Lead bytes count one unit, four-byte sequences two (a surrogate pair). */
		if ((c & 0xc0) != 0x80)
			units += c >= 0xf0 ? 2 : 1;
	}
	return units;
}

void
kv_chars_check(struct kv_errors *errors, const char *path, const cJSON *item, int64_t length_min,
	       int64_t length_max)
{
	char rule[128];
	int64_t units;

	if (item == NULL || cJSON_IsNull(item)) {
		kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	units = (int64_t)kv_utf16_length(item->valuestring, strlen(item->valuestring));
	if (units < length_min) {
		snprintf(rule, sizeof(rule), "Member must have length greater than or equal to %lld",
			 (long long)length_min);
		kv_errors_add(errors, item->valuestring, true, path, rule);
	}
	if (units > length_max) {
		snprintf(rule, sizeof(rule), "Member must have length less than or equal to %lld",
			 (long long)length_max);
		kv_errors_add(errors, item->valuestring, true, path, rule);
	}
}

void
kv_string_check(struct kv_errors *errors, const char *path, const cJSON *item, bool not_null,
		enum kv_pattern pattern, int64_t length_min, int64_t length_max)
{
	char rule[128];
	const char *text;
	int64_t size;

	if (item == NULL || cJSON_IsNull(item)) {
		if (not_null)
			kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	text = item->valuestring;
	size = (int64_t)strlen(text);
	if (pattern != KV_PATTERN_NONE && !kv_pattern_match(pattern, text, (size_t)size)) {
		snprintf(rule, sizeof(rule), "Member must satisfy regular expression pattern: %s",
			 kv_pattern_text(pattern));
		kv_errors_add(errors, text, true, path, rule);
	}
	if (length_min >= 0 && size < length_min) {
		snprintf(rule, sizeof(rule), "Member must have length greater than or equal to %lld",
			 (long long)length_min);
		kv_errors_add(errors, text, true, path, rule);
	}
	if (length_max >= 0 && size > length_max) {
		snprintf(rule, sizeof(rule), "Member must have length less than or equal to %lld",
			 (long long)length_max);
		kv_errors_add(errors, text, true, path, rule);
	}
}

/* Renders a member's value as AWS prints it in a validation message. */
static void
kv_value_render(const struct kv_field *field, const struct kv_value *value, char *buf,
		size_t size)
{
	size_t n = 0;

	switch (field->type) {
	case KV_STRING:
		snprintf(buf, size, "%s", value->string);
		return;
	case KV_BLOB:
		snprintf(buf, size, "java.nio.HeapByteBuffer[pos=0 lim=%zu cap=%zu]", value->size,
			 value->size);
		return;
	case KV_LIST:
	case KV_MAP: {
		const cJSON *child;
		bool map = field->type == KV_MAP;

		n += (size_t)snprintf(buf, size, "%c", map ? '{' : '[');
		cJSON_ArrayForEach(child, value->json) {
			const char *text = cJSON_IsString(child) ? child->valuestring :
				field->element_text != NULL ? field->element_text :
				"com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";

			if (n + 4 >= size)
				break;
			n += (size_t)snprintf(buf + n, size - n, "%s%s%s%s",
					      child == value->json->child ? "" : ", ",
					      map ? child->string : "", map ? "=" : "", text);
		}
		if (n + 2 < size)
			snprintf(buf + n, size - n, "%c", map ? '}' : ']');
		return;
	}
	default:
		snprintf(buf, size, "%lld", (long long)value->number);
		return;
	}
}

static void
kv_path(const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s", name);
	if (path[0] >= 'A' && path[0] <= 'Z')
		path[0] = (char)(path[0] - 'A' + 'a');
}

static void
kv_field_bound(struct kv_errors *errors, const struct kv_field *f, const struct kv_value *v,
	       const char *path, const char *rendered)
{
	char rule[128];
	int64_t length = (int64_t)v->size;

	if (f->length_in_chars && f->type == KV_STRING)
		length = (int64_t)kv_utf16_length(v->string, v->size);
	if (f->length_min >= 0 && length < f->length_min) {
		snprintf(rule, sizeof(rule), "Member must have length greater than or equal to %lld",
			 (long long)f->length_min);
		kv_errors_add(errors, rendered, true, path, rule);
	}
	if (f->length_max >= 0 && length > f->length_max) {
		snprintf(rule, sizeof(rule), "Member must have length less than or equal to %lld",
			 (long long)f->length_max);
		kv_errors_add(errors, rendered, true, path, rule);
	}
	if (f->value_min >= 0 && v->number < f->value_min) {
		snprintf(rule, sizeof(rule), "Member must have value greater than or equal to %lld",
			 (long long)f->value_min);
		kv_errors_add(errors, rendered, true, path, rule);
	}
	if (f->value_max >= 0 && v->number > f->value_max) {
		snprintf(rule, sizeof(rule), "Member must have value less than or equal to %lld",
			 (long long)f->value_max);
		kv_errors_add(errors, rendered, true, path, rule);
	}
}

static void
kv_field_enum(struct kv_errors *errors, const struct kv_field *f, const struct kv_value *v,
	      const char *path)
{
	char rule[512];
	size_t n;

	for (const char *const *e = f->enum_values; *e != NULL; e++)
		if (strcmp(*e, v->string) == 0)
			return;
	n = (size_t)snprintf(rule, sizeof(rule), "Member must satisfy enum value set: [");
	for (const char *const *e = f->enum_values; *e != NULL && n < sizeof(rule); e++)
		n += (size_t)snprintf(rule + n, sizeof(rule) - n, "%s%s",
				      e == f->enum_values ? "" : ", ", *e);
	if (n < sizeof(rule))
		snprintf(rule + n, sizeof(rule) - n, "]");
	kv_errors_add(errors, v->string, true, path, rule);
}

/* Every constraint of one member, in AWS's order. */
static void
kv_field_check(struct kinesis_req *r, struct kv_errors *errors, const struct kv_field *f,
	       const struct kv_value *v)
{
	char path[64];
	char rendered[KINESIS_MESSAGE_SIZE];

	kv_path(f->name, path, sizeof(path));
	if (v->json == NULL) {
		if (f->not_null)
			kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	kv_value_render(f, v, rendered, sizeof(rendered));
	if (f->pattern != KV_PATTERN_NONE && !kv_pattern_match(f->pattern, v->string, v->size)) {
		char rule[128];

		snprintf(rule, sizeof(rule), "Member must satisfy regular expression pattern: %s",
			 kv_pattern_text(f->pattern));
		kv_errors_add(errors, rendered, true, path, rule);
	}
	kv_field_bound(errors, f, v, path, rendered);
	if (f->enum_values != NULL)
		kv_field_enum(errors, f, v, path);
	if (f->nested_check != NULL)
		f->nested_check(r, v->json, errors);
}

static int64_t
kv_number(const cJSON *item, enum kv_type type)
{
	double d = floor(item->valuedouble);

	if (type == KV_INTEGER)
		return d > INT32_MAX ? INT32_MAX : (d < INT32_MIN ? INT32_MIN : (int64_t)d);
	if (d >= 9.2e18)
		return INT64_MAX;
	return d <= -9.2e18 ? INT64_MIN : (int64_t)d;
}

/* Type pass for one member: fills `v` or replies SerializationException. */
static int
kv_field_load(struct kinesis_req *r, const struct kv_field *f, const cJSON *item,
	      struct kv_value *v)
{
	struct api_call *call = r->call;
	int rc;

	memset(v, 0, sizeof(*v));
	if (item == NULL || cJSON_IsNull(item))
		return 0;
	rc = kv_type_check(call, item, f->type);
	if (rc == 0 && f->nested_types != NULL)
		rc = f->nested_types(r, item);
	if (rc != 0)
		return rc;
	v->json = item;
	if (cJSON_IsString(item)) {
		v->string = item->valuestring;
		v->size = strlen(item->valuestring);
	}
	if (f->type == KV_INTEGER || f->type == KV_LONG)
		v->number = kv_number(item, f->type);
	else if (f->type == KV_TIMESTAMP)
		v->seconds = item->valuedouble;
	else if (f->type == KV_BOOLEAN)
		v->boolean = cJSON_IsTrue(item);
	else if (f->type == KV_LIST || f->type == KV_MAP)
		v->size = (size_t)cJSON_GetArraySize(item);
	if (f->type == KV_BLOB) {
		uint32_t size = 0;

		v->blob = kv_blob_decode(r->k, item, &size);
		if (v->blob == NULL) {
			kinesis_serialization_error(call, "Request body too large");
			return -EINVAL;
		}
		v->size = size;
	}
	return 0;
}

int
kv_check(struct kinesis_req *r)
{
	const struct kv_field *fields = r->op->shape;
	size_t field_count = r->op->shape_count;
	const struct api_request *req = r->req;
	struct api_call *call = r->call;
	struct kv_errors *errors = &r->scratch->errors;
	struct kv_value *values = r->v;
	const char *bad;
	cJSON *root;

	assert(field_count <= KV_FIELDS_MAX);
	r->k->scratch_used = 0;
	bad = kv_body_check(req->body, req->body_size);
	if (bad != NULL) {
		kinesis_serialization_error(call, bad);
		return -EINVAL;
	}
	root = cJSON_ParseWithLength((const char *)req->body, req->body_size);
	if (root == NULL) {
		kinesis_serialization_error(call, NULL);
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		kinesis_serialization_error(call, cJSON_IsArray(root) ?
					    "Start of list found where not expected" :
					    "Expected null");
		goto out_delete;
	}
	for (size_t i = 0; i < field_count; i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, fields[i].name);

		if (kv_field_load(r, &fields[i], item, &values[i]) != 0)
			goto out_delete;
	}
	errors->count = 0;
	errors->size = 0;
	errors->text[0] = '\0';
	for (size_t i = 0; i < field_count; i++)
		kv_field_check(r, errors, &fields[i], &values[i]);
	if (kv_errors_reply(call, errors))
		goto out_delete;
	r->root = root;
	return 0;

out_delete:
	cJSON_Delete(root);
	return -EINVAL;
}
