/*
 * kinesis_validate.h - request decoding as AWS does it (kinesis_validate.c):
 * the member descriptions an operation's input shape is written in (the
 * shapes themselves are with each concern's header, the table in
 * kinesis_ops.c), the decoded values handlers read by named index, and the
 * checks nested members share. Included by control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_VALIDATE_H
#define SLUICE_CONTROL_KINESIS_VALIDATE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct api_call;
struct kinesis;
struct kinesis_req;

/* One validation message (and its rendered value) at most this long. */
#define KINESIS_MESSAGE_SIZE 2048
#define KINESIS_VALIDATION_ERRORS_MAX 10u

enum kv_type {
	KV_STRING,
	KV_INTEGER,     /* Floored, clamped to INT32 range as AWS does. */
	KV_LONG,
	KV_BOOLEAN,
	KV_BLOB,        /* Strict base64, decoded into the scratch buffer. */
	KV_TIMESTAMP,   /* Epoch seconds, integer or fractional. */
	KV_LIST,        /* Of strings, or of structures (checked by the action). */
	KV_MAP,         /* Of strings. */
	KV_STRUCT,      /* Checked by the action. */
};

enum kv_pattern {
	KV_PATTERN_NONE,
	KV_PATTERN_NAME,      /* [a-zA-Z0-9_.-]+ */
	KV_PATTERN_HASH_KEY,  /* 0|([1-9]\d{0,38}) */
	KV_PATTERN_SEQUENCE,  /* 0|([1-9]\d{0,128}) */
	KV_PATTERN_ARN,       /* arn:aws.*:kinesis:.*:\d{12}:stream/\S+ */
	KV_PATTERN_RESOURCE_ARN, /* arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+ */
};

struct kv_errors;

/* A nested member's type pass (replies SerializationException, -EINVAL) ... */
typedef int kv_nested_types_fn(struct kinesis_req *r, const cJSON *item);
/* ... and its constraint pass (adds to `errors`). */
typedef void kv_nested_check_fn(struct kinesis_req *r, const cJSON *item,
				struct kv_errors *errors);

/* One request member, in the order AWS reports its errors. */
struct kv_field {
	const char *name;        /* JSON member, e.g. "StreamName". */
	enum kv_type type;
	bool not_null;
	enum kv_pattern pattern;
	int64_t length_min;      /* -1: no bound. Strings, blobs, lists, maps. */
	int64_t length_max;
	int64_t value_min;       /* -1: no bound (bounds are never negative here). */
	int64_t value_max;
	const char *const *enum_values; /* NULL-terminated, or NULL. */
	bool length_in_chars;    /* Strings: length in UTF-16 units as AWS (Java) counts. */
	/* Lists of structures: how Java renders an element in a message (NULL: Kinesis's). */
	const char *element_text;
	/* Lists of structures, maps, structures: the action's own checks, or NULL. */
	kv_nested_types_fn *nested_types;
	kv_nested_check_fn *nested_check;
};

#define KV_FIELDS_MAX 8

/* Field constructors: every bound not given is -1 (none). */
#define KV_FIELD(name_, type_, not_null_, pattern_, lmin, lmax, vmin, vmax) \
	{ .name = (name_), .type = (type_), .not_null = (not_null_), .pattern = (pattern_), \
	  .length_min = (lmin), .length_max = (lmax), .value_min = (vmin), .value_max = (vmax) }
#define KV_STR(name_, not_null_, pattern_, lmin, lmax) \
	KV_FIELD(name_, KV_STRING, not_null_, pattern_, lmin, lmax, -1, -1)
#define KV_INT(name_, not_null_, vmin, vmax) \
	KV_FIELD(name_, KV_INTEGER, not_null_, KV_PATTERN_NONE, -1, -1, vmin, vmax)
/* A string member with a set of values (NULL-terminated). */
#define KV_ENUM(name_, not_null_, values) \
	{ .name = (name_), .type = KV_STRING, .not_null = (not_null_), .length_min = -1, \
	  .length_max = -1, .value_min = -1, .value_max = -1, .enum_values = (values) }
/* A list, map or structure with its own checks (kv_nested_*_fn). */
#define KV_NESTED(name_, type_, not_null_, lmin, lmax, types_fn, check_fn) \
	{ .name = (name_), .type = (type_), .not_null = (not_null_), .length_min = (lmin), \
	  .length_max = (lmax), .value_min = -1, .value_max = -1, .nested_types = (types_fn), \
	  .nested_check = (check_fn) }
#define KV_STREAM_NAME KV_STR("StreamName", false, KV_PATTERN_NAME, 1, 128)
#define KV_STREAM_ARN KV_STR("StreamARN", false, KV_PATTERN_ARN, 1, 2048)

struct kv_value {
	const cJSON *json;       /* NULL when absent or null. */
	const char *string;
	size_t size;             /* String bytes, blob bytes, list/map entries. */
	int64_t number;
	double seconds;          /* KV_TIMESTAMP. */
	bool boolean;
	const uint8_t *blob;
};

/* Collects "Value ... failed to satisfy constraint: ..." messages in order. */
struct kv_errors {
	uint32_t count;
	size_t size;
	char text[KINESIS_MESSAGE_SIZE * 8];
};

/*
 * Parses the body of `r` and checks it against its operation's shape: type
 * errors answer SerializationException, constraint errors ValidationException
 * (AWS's text). Returns 0 with r->v filled (one per member) and r->root set (the
 * dispatcher frees it), or -EINVAL after replying (nothing to free).
 */
int kv_check(struct kinesis_req *r);
/* Decodes a blob already type-checked into the scratch buffer; NULL if it does not fit. */
const uint8_t *kv_blob_decode(struct kinesis *k, const cJSON *item, uint32_t *size_out);
/* Replies SerializationException for a malformed blob; -EINVAL, or 0 when it is fine. */
int kv_blob_check(struct api_call *call, const cJSON *item);
/* Adds the errors of one string member (pattern, length bounds) under `path`. */
void kv_string_check(struct kv_errors *errors, const char *path, const cJSON *item,
		     bool not_null, enum kv_pattern pattern, int64_t length_min,
		     int64_t length_max);
/* As kv_string_check() with lengths in UTF-16 units (partition keys). */
void kv_chars_check(struct kv_errors *errors, const char *path, const cJSON *item,
		    int64_t length_min, int64_t length_max);
/* Bytes of the well-formed UTF-8 sequence at p (1..4), or 0 if it is not one. */
size_t kv_utf8_sequence_size(const uint8_t *p, size_t size);
/*
 * What makes a request body unacceptable before JSON parsing, or NULL: invalid UTF-8, a raw
 * control character inside a string, or an escaped NUL (\u0000). The text is the message.
 */
const char *kv_body_check(const uint8_t *body, size_t size);
/* UTF-16 units of UTF-8 text, as Java's String.length() counts them. */
size_t kv_utf16_length(const char *text, size_t size);

void kv_errors_add(struct kv_errors *errors, const char *value, bool quote, const char *path,
		   const char *rule);
/* Replies ValidationException with the collected messages; false if there were none. */
bool kv_errors_reply(struct api_call *call, const struct kv_errors *errors);
bool kv_pattern_match(enum kv_pattern pattern, const char *text, size_t size);
/* Checks a JSON value's type for a member of `type`; replies SerializationException. */
int kv_type_check(struct api_call *call, const cJSON *item, enum kv_type type);
/* A list of strings as AWS renders it in a message: "[a, b, null]" (cut to fit `size`). */
void kv_list_render(const cJSON *item, char *buf, size_t size);
/* nested_types for a map or list whose members must all be strings (Tags, TagKeys). */
kv_nested_types_fn kv_members_are_strings;

/*
 * An operation's input shape is written once, as a list of
 * F(OP, MEMBER, field) in AWS's member order; KV_SHAPE_ENUM(OP) makes the
 * named indices OP_MEMBER (handlers read r->v[OP_MEMBER], never a position)
 * and OP_COUNT, and the operation table instantiates the fields themselves.
 */
#define KV_SHAPE_INDEX(op, member, field) op##_##member,
#define KV_SHAPE_FIELD(op, member, field) field,
#define KV_SHAPE_ENUM(OP) \
	enum { KINESIS_SHAPE_##OP(KV_SHAPE_INDEX) OP##_COUNT }; \
	static_assert(OP##_COUNT <= KV_FIELDS_MAX, #OP ": more members than KV_FIELDS_MAX")

#endif /* SLUICE_CONTROL_KINESIS_VALIDATE_H */
