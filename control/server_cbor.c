/*
 * server_cbor.c - CBOR <-> JSON at the server boundary (server_cbor.h says why).
 *
 *   JSON (what the actions read and write)   CBOR (the wire, as the Java SDK writes it)
 *   object                                   map, definite or indefinite; text keys
 *   array                                    array, definite or indefinite
 *   string                                   text string, definite or chunked
 *   base64 string at a blob member           byte string (definite)
 *   epoch seconds at a timestamp member      tag 1 over integer epoch milliseconds
 *   integer                                  unsigned / negative integer
 *   other number                             half, single or double float
 *   true, false, null                        simple values 21, 20, 22 (23 reads as null)
 *
 * Requests are read by libcbor's streaming decoder, one item per call, straight into
 * JSON text: no tree, and every item consumes input, so work is linear in the body.
 * Tag 1 is read as milliseconds on any number; other tags are skipped (Jackson, which
 * the SDKs use, skips them too). Refused: a top level that is not one map, keys that
 * are not definite text, a byte string anywhere but at a blob member, chunked byte
 * strings (no SDK writes them), NaN and infinities (JSON has none), nesting deeper than
 * SERVER_CBOR_NESTING_MAX. Answers are parsed with cJSON (they are our own JSON, so
 * well formed) and written with definite lengths.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <cbor.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "control/server_cbor.h"
#include "control/server_pool.h"

/* Members whose values are not plain JSON types: the one list, for both directions. */
enum cbor_member_kind {
	CBOR_MEMBER_PLAIN,
	CBOR_MEMBER_BLOB,       /* base64 string in JSON, byte string in CBOR */
	CBOR_MEMBER_TIMESTAMP,  /* epoch seconds in JSON, tag 1 + epoch ms in CBOR */
};

static const struct cbor_member {
	const char *name;
	enum cbor_member_kind kind;
} cbor_members[] = {
	/* PutRecord, PutRecords' entries (in); GetRecords' records (out). */
	{ "Data", CBOR_MEMBER_BLOB },
	/* GetRecords' records (out). */
	{ "ApproximateArrivalTimestamp", CBOR_MEMBER_TIMESTAMP },
	/* DescribeStream(Summary), ListStreams' summaries (out); ListShards (in). */
	{ "StreamCreationTimestamp", CBOR_MEMBER_TIMESTAMP },
	/* GetShardIterator, ListShards' ShardFilter (in). */
	{ "Timestamp", CBOR_MEMBER_TIMESTAMP },
	/* Stream consumers (out). */
	{ "ConsumerCreationTimestamp", CBOR_MEMBER_TIMESTAMP },
};

static enum cbor_member_kind
cbor_member_kind(const char *name, size_t size)
{
	for (size_t i = 0; i < sizeof(cbor_members) / sizeof(cbor_members[0]); i++)
		if (strlen(cbor_members[i].name) == size &&
		    memcmp(cbor_members[i].name, name, size) == 0)
			return cbor_members[i].kind;
	return CBOR_MEMBER_PLAIN;
}

/* ---- CBOR request -> JSON ------------------------------------------------------- */

enum cbor_frame_kind {
	FRAME_MAP,
	FRAME_ARRAY,
	FRAME_TEXT,    /* A chunked text string: only definite text chunks until the break. */
};

struct cbor_frame {
	enum cbor_frame_kind kind;
	bool indefinite;
	uint64_t items;       /* Definite: items to come (a map counts keys and values). */
	uint64_t index;       /* Items done; in a map, even = a key comes next. */
};

struct cbor_reader {
	struct api_out *json;
	struct cbor_frame stack[SERVER_CBOR_NESTING_MAX];
	uint32_t depth;
	bool done;             /* The top-level map is complete. */
	bool timestamp;        /* Tag 1 seen: the next item is epoch milliseconds. */
	bool blob_value;       /* The last key names a blob member. */
	const char *error;
};

static void
reader_fail(struct cbor_reader *r, const char *error)
{
	if (r->error == NULL)
		r->error = error;
}

static struct cbor_frame *
reader_top(struct cbor_reader *r)
{
	return r->depth == 0 ? NULL : &r->stack[r->depth - 1];
}

static bool
reader_at_key(struct cbor_reader *r)
{
	struct cbor_frame *f = reader_top(r);

	return f != NULL && f->kind == FRAME_MAP && f->index % 2 == 0;
}

/*
 * Checks that an item (a container or not, a number or not) may start here and writes
 * the separator before it. False (error set) when it may not.
 */
static bool
reader_item_begin(struct cbor_reader *r, bool is_container, bool is_number)
{
	struct cbor_frame *f = reader_top(r);

	if (r->error != NULL)
		return false;
	if (r->done) {
		reader_fail(r, "Unexpected data after the CBOR body's top-level map");
		return false;
	}
	if (f == NULL && !is_container) {
		reader_fail(r, "The CBOR body is not a map");
		return false;
	}
	if (f != NULL && f->kind == FRAME_TEXT) {
		reader_fail(r, "Only text chunks may appear in a chunked CBOR text string");
		return false;
	}
	if (r->timestamp && !is_number) {
		reader_fail(r, "CBOR tag 1 (timestamp) must tag a number");
		return false;
	}
	if (f == NULL)
		return true;
	if (f->kind == FRAME_MAP && f->index % 2 == 1)
		api_out_append(r->json, ":", 1);
	else if (f->index > 0)
		api_out_append(r->json, ",", 1);
	return true;
}

/* An item is complete: count it, and close every definite container it completes. */
static void
reader_item_end(struct cbor_reader *r)
{
	struct cbor_frame *f;

	r->timestamp = false;
	while ((f = reader_top(r)) != NULL) {
		if (f->kind == FRAME_MAP && f->index % 2 == 1)
			r->blob_value = false;  /* A value ends: the next key decides again. */
		f->index++;
		if (f->indefinite || f->index < f->items)
			return;
		api_out_append(r->json, f->kind == FRAME_MAP ? "}" : "]", 1);
		r->depth--;
	}
	r->done = true;
}

static void
reader_open(struct cbor_reader *r, enum cbor_frame_kind kind, bool indefinite, uint64_t items)
{
	if (!reader_item_begin(r, kind != FRAME_TEXT, false))
		return;
	if (reader_at_key(r) && kind != FRAME_TEXT) {
		reader_fail(r, "A CBOR map key is not a text string");
		return;
	}
	if (kind != FRAME_TEXT && r->blob_value) {
		reader_fail(r, "A Blob member holds a CBOR container");
		return;
	}
	if (r->depth == 0 && kind != FRAME_MAP) {
		reader_fail(r, "The CBOR body is not a map");
		return;
	}
	if (!indefinite && items == 0) {
		/* An empty container is complete at once: one item of its parent. */
		api_out_append(r->json, kind == FRAME_MAP ? "{}" : "[]", 2);
		reader_item_end(r);
		return;
	}
	if (r->depth == SERVER_CBOR_NESTING_MAX) {
		reader_fail(r, "CBOR nesting is deeper than this endpoint accepts");
		return;
	}
	r->stack[r->depth++] = (struct cbor_frame){ kind, indefinite, items, 0 };
	api_out_append(r->json, kind == FRAME_MAP ? "{" : kind == FRAME_ARRAY ? "[" : "\"", 1);
}

static void
on_map(void *ctx, size_t size)
{
	struct cbor_reader *r = ctx;

	/* Keys and values; a count over SIZE_MAX / 2 can never be met by the body anyway. */
	reader_open(r, FRAME_MAP, false, size > SIZE_MAX / 2 ? SIZE_MAX : (uint64_t)size * 2);
}

static void
on_indef_map(void *ctx)
{
	reader_open(ctx, FRAME_MAP, true, 0);
}

static void
on_array(void *ctx, size_t size)
{
	reader_open(ctx, FRAME_ARRAY, false, size);
}

static void
on_indef_array(void *ctx)
{
	reader_open(ctx, FRAME_ARRAY, true, 0);
}

static void
on_indef_text(void *ctx)
{
	struct cbor_reader *r = ctx;

	if (reader_at_key(r)) {
		reader_fail(r, "A CBOR map key is a chunked text string");
		return;
	}
	reader_open(r, FRAME_TEXT, true, 0);
}

static void
on_break(void *ctx)
{
	struct cbor_reader *r = ctx;
	struct cbor_frame *f = reader_top(r);

	if (r->error != NULL)
		return;
	if (f == NULL || !f->indefinite || r->timestamp) {
		reader_fail(r, "A CBOR break outside an indefinite-length item");
		return;
	}
	if (f->kind == FRAME_MAP && f->index % 2 == 1) {
		reader_fail(r, "A CBOR map ends after a key without its value");
		return;
	}
	api_out_append(r->json, f->kind == FRAME_MAP ? "}" : f->kind == FRAME_ARRAY ? "]" : "\"",
		       1);
	r->depth--;
	reader_item_end(r);
}

static void
on_text(void *ctx, cbor_data data, size_t size)
{
	struct cbor_reader *r = ctx;
	struct cbor_frame *f = reader_top(r);

	if (r->error != NULL)
		return;
	if (f != NULL && f->kind == FRAME_TEXT) {
		if (size > 0)
			api_out_json_chars(r->json, (const char *)data, size);
		return;  /* A chunk: the string ends at the break. */
	}
	if (!reader_item_begin(r, false, false))
		return;
	api_out_json_string(r->json, (const char *)data, size);
	if (reader_at_key(r)) {
		/* A key is half a member: its value completes it (reader_item_end). */
		r->blob_value = cbor_member_kind((const char *)data, size) == CBOR_MEMBER_BLOB;
		reader_top(r)->index++;
		return;
	}
	reader_item_end(r);
}

static void
on_bytes(void *ctx, cbor_data data, size_t size)
{
	struct cbor_reader *r = ctx;

	if (!reader_item_begin(r, false, false))
		return;
	if (reader_at_key(r)) {
		reader_fail(r, "A CBOR map key is not a text string");
		return;
	}
	if (!r->blob_value) {
		reader_fail(r, "A CBOR byte string where no Blob member belongs");
		return;
	}
	api_out_append(r->json, "\"", 1);
	api_out_base64(r->json, data, size);
	api_out_append(r->json, "\"", 1);
	reader_item_end(r);
}

static void
on_indef_bytes(void *ctx)
{
	reader_fail(ctx, "Chunked CBOR byte strings are not supported");
}

/* A number item: its JSON text, or with tag 1 its milliseconds as JSON seconds. */
static void
reader_number(struct cbor_reader *r, bool negative, uint64_t magnitude)
{
	if (!reader_item_begin(r, false, true))
		return;
	if (reader_at_key(r)) {
		reader_fail(r, "A CBOR map key is not a text string");
		return;
	}
	if (r->timestamp)
		api_out_printf(r->json, "%s%" PRIu64 ".%03u", negative ? "-" : "",
			       magnitude / 1000u, (unsigned)(magnitude % 1000u));
	else
		api_out_printf(r->json, "%s%" PRIu64, negative ? "-" : "", magnitude);
	reader_item_end(r);
}

static void
on_uint8(void *ctx, uint8_t v)
{
	reader_number(ctx, false, v);
}

static void
on_uint16(void *ctx, uint16_t v)
{
	reader_number(ctx, false, v);
}

static void
on_uint32(void *ctx, uint32_t v)
{
	reader_number(ctx, false, v);
}

static void
on_uint64(void *ctx, uint64_t v)
{
	reader_number(ctx, false, v);
}

/* CBOR's negative integer n is -1 - n; -1 - UINT64_MAX does not fit uint64_t. */
static void
reader_negative(struct cbor_reader *r, uint64_t n)
{
	if (n == UINT64_MAX) {
		reader_fail(r, "A CBOR integer is out of range");
		return;
	}
	reader_number(r, true, n + 1);
}

static void
on_negint8(void *ctx, uint8_t v)
{
	reader_negative(ctx, v);
}

static void
on_negint16(void *ctx, uint16_t v)
{
	reader_negative(ctx, v);
}

static void
on_negint32(void *ctx, uint32_t v)
{
	reader_negative(ctx, v);
}

static void
on_negint64(void *ctx, uint64_t v)
{
	reader_negative(ctx, v);
}

static void
on_double(void *ctx, double v)
{
	struct cbor_reader *r = ctx;

	if (!reader_item_begin(r, false, true))
		return;
	if (reader_at_key(r)) {
		reader_fail(r, "A CBOR map key is not a text string");
		return;
	}
	if (!isfinite(v)) {
		reader_fail(r, "A CBOR float is NaN or infinite");
		return;
	}
	api_out_printf(r->json, "%.17g", r->timestamp ? v / 1000.0 : v);
	reader_item_end(r);
}

static void
on_float(void *ctx, float v)
{
	on_double(ctx, v);
}

/* true, false and null: the JSON word. */
static void
reader_word(struct cbor_reader *r, const char *word)
{
	if (!reader_item_begin(r, false, false))
		return;
	if (reader_at_key(r)) {
		reader_fail(r, "A CBOR map key is not a text string");
		return;
	}
	api_out_append(r->json, word, strlen(word));
	reader_item_end(r);
}

static void
on_null(void *ctx)
{
	reader_word(ctx, "null");
}

static void
on_bool(void *ctx, bool v)
{
	reader_word(ctx, v ? "true" : "false");
}

static void
on_tag(void *ctx, uint64_t tag)
{
	struct cbor_reader *r = ctx;

	if (r->done) {
		reader_fail(r, "Unexpected data after the CBOR body's top-level map");
		return;
	}
	if (tag != 1)
		return;
	if (r->timestamp)
		reader_fail(r, "CBOR tag 1 (timestamp) must tag a number");
	r->timestamp = true;
}

static const struct cbor_callbacks reader_callbacks = {
	.uint8 = on_uint8,
	.uint16 = on_uint16,
	.uint32 = on_uint32,
	.uint64 = on_uint64,
	.negint8 = on_negint8,
	.negint16 = on_negint16,
	.negint32 = on_negint32,
	.negint64 = on_negint64,
	.byte_string = on_bytes,
	.byte_string_start = on_indef_bytes,
	.string = on_text,
	.string_start = on_indef_text,
	.array_start = on_array,
	.indef_array_start = on_indef_array,
	.map_start = on_map,
	.indef_map_start = on_indef_map,
	.tag = on_tag,
	.float2 = on_float,
	.float4 = on_float,
	.float8 = on_double,
	.undefined = on_null,
	.null = on_null,
	.boolean = on_bool,
	.indef_break = on_break,
};

int
server_cbor_request_to_json(const uint8_t *cbor, size_t size, struct api_out *json,
			    const char **error_out)
{
	struct cbor_reader r = { .json = json };
	size_t off = 0;

	assert(cbor != NULL || size == 0);
	while (off < size && r.error == NULL) {
		struct cbor_decoder_result res = cbor_stream_decode(cbor + off, size - off,
								    &reader_callbacks, &r);

		if (res.status == CBOR_DECODER_NEDATA) {
			reader_fail(&r, "The CBOR body ends inside an item");
		} else if (res.status != CBOR_DECODER_FINISHED || res.read == 0) {
			reader_fail(&r, "The CBOR body is malformed");
		} else {
			assert(res.read <= size - off);
			off += res.read;
		}
	}
	if (r.error == NULL && !r.done)
		reader_fail(&r, size == 0 ? "The CBOR body is empty" :
				"The CBOR body ends inside an item");
	if (r.error != NULL) {
		*error_out = r.error;
		return -EINVAL;
	}
	return json->overflow ? -ENOBUFS : 0;
}

/* ---- JSON answer -> CBOR -------------------------------------------------------- */

/* The head of an item with major type `major` (0..7) and argument `value`. */
static void
writer_head(struct api_out *out, uint8_t major, uint64_t value)
{
	unsigned char head[9];
	size_t n;

	switch (major) {
	case 0: n = cbor_encode_uint(value, head, sizeof(head)); break;
	case 1: n = cbor_encode_negint(value, head, sizeof(head)); break;
	case 2: n = cbor_encode_bytestring_start((size_t)value, head, sizeof(head)); break;
	case 3: n = cbor_encode_string_start((size_t)value, head, sizeof(head)); break;
	case 4: n = cbor_encode_array_start((size_t)value, head, sizeof(head)); break;
	case 5: n = cbor_encode_map_start((size_t)value, head, sizeof(head)); break;
	default: n = cbor_encode_tag(value, head, sizeof(head)); break;
	}
	assert(n > 0);
	api_out_append(out, head, n);
}

static void
writer_text(struct api_out *out, const char *text)
{
	size_t size = strlen(text);

	writer_head(out, 3, size);
	api_out_append(out, text, size);
}

/* Our base64 (api_out_base64) decoded into a byte string. */
static void
writer_blob(struct api_out *out, const char *text)
{
	size_t size = strlen(text);
	size_t pad = 0;
	size_t bytes;
	uint8_t *p;

	if (size % 4 != 0) {
		writer_text(out, text);  /* Not ours: keep it a string (cannot happen). */
		return;
	}
	while (pad < 2 && pad < size && text[size - 1 - pad] == '=')
		pad++;
	bytes = size / 4 * 3 - pad;
	writer_head(out, 2, bytes);
	if (size == 0)
		return;
	/* EVP_DecodeBlock writes size / 4 * 3 bytes, padding included, then we trim it. */
	p = api_out_extend(out, size / 4 * 3);
	if (p == NULL)
		return;
	if (EVP_DecodeBlock(p, (const unsigned char *)text, (int)size) < 0)
		memset(p, 0, size / 4 * 3);
	out->size -= pad;
}

static void
writer_number(struct api_out *out, double v, bool timestamp)
{
	unsigned char item[9];
	size_t n;

	if (timestamp) {
		writer_head(out, 6, 1);
		v = round(v * 1000.0);
	}
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		if (v >= 0)
			writer_head(out, 0, (uint64_t)v);
		else
			writer_head(out, 1, (uint64_t)(-v) - 1u);
		return;
	}
	n = cbor_encode_double(v, item, sizeof(item));
	assert(n == 9);
	api_out_append(out, item, n);
}

static void
writer_item(struct api_out *out, const cJSON *item, enum cbor_member_kind kind)
{
	static const unsigned char null_item = 0xf6;
	static const unsigned char false_item = 0xf4;
	static const unsigned char true_item = 0xf5;
	const cJSON *child;

	if (cJSON_IsObject(item)) {
		writer_head(out, 5, (uint64_t)cJSON_GetArraySize(item));
		cJSON_ArrayForEach(child, item) {
			writer_text(out, child->string);
			writer_item(out, child, cbor_member_kind(child->string,
								  strlen(child->string)));
		}
	} else if (cJSON_IsArray(item)) {
		writer_head(out, 4, (uint64_t)cJSON_GetArraySize(item));
		cJSON_ArrayForEach(child, item)
			writer_item(out, child, CBOR_MEMBER_PLAIN);
	} else if (cJSON_IsString(item)) {
		if (kind == CBOR_MEMBER_BLOB)
			writer_blob(out, item->valuestring);
		else
			writer_text(out, item->valuestring);
	} else if (cJSON_IsNumber(item)) {
		writer_number(out, item->valuedouble, kind == CBOR_MEMBER_TIMESTAMP);
	} else if (cJSON_IsBool(item)) {
		api_out_append(out, cJSON_IsTrue(item) ? &true_item : &false_item, 1);
	} else {
		api_out_append(out, &null_item, 1);
	}
}

int
server_cbor_answer_from_json(const char *json, size_t size, struct api_out *cbor)
{
	cJSON *doc = cJSON_ParseWithLength(json, size);

	if (doc == NULL)
		return -EINVAL;
	writer_item(cbor, doc, CBOR_MEMBER_PLAIN);
	cJSON_Delete(doc);
	return cbor->overflow ? -ENOBUFS : 0;
}
