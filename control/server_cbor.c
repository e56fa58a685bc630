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
 * SERVER_CBOR_NESTING_MAX. Answers are scanned in one pass too (they are our own JSON,
 * but a scan that meets anything else stops with -EINVAL) and maps and arrays go out
 * with indefinite length; Jackson and every CBOR reader take both.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <cbor.h>

#include "common/base64.h"
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
	size_t name_size;
	enum cbor_member_kind kind;
} cbor_members[] = {
#define MEMBER(name, kind) { name, sizeof(name) - 1, kind }
	/* PutRecord, PutRecords' entries (in); GetRecords' records (out). */
	MEMBER("Data", CBOR_MEMBER_BLOB),
	/* GetRecords' records (out). */
	MEMBER("ApproximateArrivalTimestamp", CBOR_MEMBER_TIMESTAMP),
	/* DescribeStream(Summary), ListStreams' summaries (out); ListShards (in). */
	MEMBER("StreamCreationTimestamp", CBOR_MEMBER_TIMESTAMP),
	/* GetShardIterator, ListShards' ShardFilter (in). */
	MEMBER("Timestamp", CBOR_MEMBER_TIMESTAMP),
	/* Stream consumers (out). */
	MEMBER("ConsumerCreationTimestamp", CBOR_MEMBER_TIMESTAMP),
	/* Describe/UpdateAccountSettings' MinimumThroughputBillingCommitment (out). */
	MEMBER("StartedAt", CBOR_MEMBER_TIMESTAMP),
	MEMBER("EarliestAllowedEndAt", CBOR_MEMBER_TIMESTAMP),
	MEMBER("EndedAt", CBOR_MEMBER_TIMESTAMP),
#undef MEMBER
};

static enum cbor_member_kind
cbor_member_kind(const char *name, size_t size)
{
	for (size_t i = 0; i < sizeof(cbor_members) / sizeof(cbor_members[0]); i++)
		if (cbor_members[i].name_size == size &&
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
	/*
	 * Checked before an empty container returns: it is a level of the JSON too, and the
	 * answer direction (scan_value) counts it, so both directions agree on one limit.
	 */
	if (r->depth == SERVER_CBOR_NESTING_MAX) {
		reader_fail(r, "CBOR nesting is deeper than this endpoint accepts");
		return;
	}
	if (!indefinite && items == 0) {
		/* An empty container is complete at once: one item of its parent. */
		api_out_append(r->json, kind == FRAME_MAP ? "{}" : "[]", 2);
		reader_item_end(r);
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
	if (reader_top(r) != NULL && reader_top(r)->kind == FRAME_TEXT) {
		reader_fail(r, "Only text chunks may appear in a chunked CBOR text string");
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

/*
 * A one-pass scanner over the answer's JSON, writing CBOR as it goes: no tree, no
 * allocation but the output (cJSON here cost twice the request direction). Maps and
 * arrays go out with indefinite length, as their counts are not known when they open.
 */
struct json_scan {
	const char *p;
	const char *end;
	struct api_out *out;
	uint32_t depth;
};

/* The encoded head of an item with major type `major` and argument `value`; its size. */
static size_t
head_encode(uint8_t major, uint64_t value, unsigned char head[9])
{
	switch (major) {
	case 0: return cbor_encode_uint(value, head, 9);
	case 1: return cbor_encode_negint(value, head, 9);
	case 2: return cbor_encode_bytestring_start((size_t)value, head, 9);
	case 3: return cbor_encode_string_start((size_t)value, head, 9);
	default: return cbor_encode_tag(value, head, 9);
	}
}

static void
writer_head(struct api_out *out, uint8_t major, uint64_t value)
{
	unsigned char head[9];
	size_t n = head_encode(major, value, head);

	assert(n > 0);
	api_out_append(out, head, n);
}

static void
scan_ws(struct json_scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static bool
scan_take(struct json_scan *s, char c)
{
	scan_ws(s);
	if (s->p == s->end || *s->p != c)
		return false;
	s->p++;
	return true;
}

static int
hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (uint32_t)((c | 0x20) - 'a' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* One escape at p (after the backslash) into UTF-8 at *o; returns input bytes used. */
static size_t
unescape_one(const char *p, const char *end, char **o)
{
	static const char from[] = "\"\\/bfnrt";
	static const char to[] = "\"\\/\b\f\n\r\t";
	const char *hit = p < end && *p != '\0' ? strchr(from, *p) : NULL;
	uint32_t cp;
	uint32_t low;
	char *w = *o;

	if (hit != NULL) {
		*w++ = to[hit - from];
		*o = w;
		return 1;
	}
	if (end - p < 5 || *p != 'u' || hex4(p + 1, &cp) != 0)
		return 0;
	if (cp >= 0xd800 && cp < 0xdc00) {
		if (end - p < 11 || p[5] != '\\' || p[6] != 'u' || hex4(p + 7, &low) != 0 ||
		    low < 0xdc00 || low > 0xdfff)
			return 0;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
	} else if (cp >= 0xdc00 && cp <= 0xdfff) {
		return 0;
	}
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | cp >> 6);
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | cp >> 12);
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | cp >> 18);
		*w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	*o = w;
	return cp >= 0x10000 ? 11 : 5;
}

/* Text with escapes: decoded after room for the longest head, then the head moved in. */
static int
writer_escaped_text(struct api_out *out, const char *text, size_t size)
{
	const char *end = text + size;
	unsigned char head[9];
	size_t head_size;
	char *base = api_out_extend(out, 9 + size);
	char *w;

	if (base == NULL)
		return -ENOBUFS;
	w = base + 9;
	while (text < end) {
		size_t used;

		if (*text != '\\') {
			*w++ = *text++;
			continue;
		}
		used = unescape_one(text + 1, end, &w);
		if (used == 0)
			return -EINVAL;
		text += 1 + used;
	}
	head_size = head_encode(3, (uint64_t)(w - base - 9), head);
	memmove(base + head_size, base + 9, (size_t)(w - base - 9));
	memcpy(base, head, head_size);
	out->size -= (size_t)(base + 9 + size - w) + 9 - head_size;
	return 0;
}

/*
 * A blob member's base64 (what api_out_base64() writes) as a byte string;
 * text that is not strict base64 stays text.
 */
static int
writer_blob(struct api_out *out, const char *text, size_t size)
{
	size_t mark = out->size;
	size_t pad = 0;
	uint8_t *p;
	int64_t n;

	while (pad < 2 && pad < size && text[size - 1 - pad] == '=')
		pad++;
	if (size % 4 == 0 && base64_scan(text, size) == size) {
		writer_head(out, 2, size / 4 * 3 - pad);
		if (size == 0)
			return 0;
		p = api_out_extend(out, size / 4 * 3 - pad);
		if (p == NULL)
			return -ENOBUFS;
		n = base64_decode(text, size, p, size / 4 * 3 - pad);
		if (n == (int64_t)(size / 4 * 3 - pad))
			return 0;
		out->size = mark;   /* Not strict base64 after all: the text as it is. */
	}
	writer_head(out, 3, size);
	api_out_append(out, text, size);
	return 0;
}

/* A string at s->p (after its quote): its span, and whether it has escapes. */
static int
scan_string(struct json_scan *s, const char **text, size_t *size, bool *escaped)
{
	const char *p = s->p;

	*escaped = false;
	while (p < s->end && *p != '"') {
		if (*p == '\\') {
			*escaped = true;
			p++;
		}
		p++;
	}
	if (p >= s->end)
		return -EINVAL;
	*text = s->p;
	*size = (size_t)(p - s->p);
	s->p = p + 1;
	return 0;
}

static int
scan_string_value(struct json_scan *s, enum cbor_member_kind kind)
{
	const char *text;
	size_t size;
	bool escaped;
	int err = scan_string(s, &text, &size, &escaped);

	if (err != 0)
		return err;
	if (escaped)
		return writer_escaped_text(s->out, text, size);
	if (kind == CBOR_MEMBER_BLOB)
		return writer_blob(s->out, text, size);
	writer_head(s->out, 3, size);
	api_out_append(s->out, text, size);
	return 0;
}

/* A number: an integer that fits stays one, anything else is a double. */
static int
scan_number(struct json_scan *s, enum cbor_member_kind kind)
{
	char text[64];
	size_t n = 0;
	bool negative = *s->p == '-';
	unsigned char item[9];
	uint64_t magnitude = 0;
	bool integer = true;
	char *end;
	double v;

	while (s->p + n < s->end && n < sizeof(text) && s->p[n] != '\0' &&
	       strchr("-+0123456789.eE", s->p[n]) != NULL)
		n++;
	if (n == 0 || n == sizeof(text))
		return -EINVAL;
	memcpy(text, s->p, n);
	text[n] = '\0';
	s->p += n;
	for (size_t i = negative; i < n && integer; i++) {
		unsigned digit = (unsigned)(text[i] - '0');

		integer = digit <= 9 && magnitude <= (UINT64_MAX - digit) / 10;
		magnitude = magnitude * 10 + digit;
	}
	integer = integer && n > (size_t)negative && kind != CBOR_MEMBER_TIMESTAMP &&
		  (!negative || magnitude > 0);
	if (integer) {
		writer_head(s->out, negative ? 1 : 0, negative ? magnitude - 1 : magnitude);
		return 0;
	}
	v = strtod(text, &end);
	if (end != text + n)
		return -EINVAL;
	if (kind == CBOR_MEMBER_TIMESTAMP && fabs(v) < 9e15) {
		long long ms = llround(v * 1000.0);

		writer_head(s->out, 6, 1);
		writer_head(s->out, ms < 0 ? 1 : 0, ms < 0 ? (uint64_t)(-(ms + 1)) : (uint64_t)ms);
		return 0;
	}
	n = cbor_encode_double(v, item, sizeof(item));
	assert(n == 9);
	api_out_append(s->out, item, n);
	return 0;
}

static int scan_value(struct json_scan *s, enum cbor_member_kind kind);

static int
scan_object(struct json_scan *s)
{
	static const unsigned char open = 0xbf;
	static const unsigned char close = 0xff;
	int err;

	api_out_append(s->out, &open, 1);
	if (scan_take(s, '}'))
		goto out_close;
	do {
		const char *key;
		size_t size;
		bool escaped;

		if (!scan_take(s, '"'))
			return -EINVAL;
		err = scan_string(s, &key, &size, &escaped);
		if (err == 0 && escaped)
			err = writer_escaped_text(s->out, key, size);
		if (err != 0)
			return err;
		if (!escaped) {
			writer_head(s->out, 3, size);
			api_out_append(s->out, key, size);
		}
		if (!scan_take(s, ':'))
			return -EINVAL;
		err = scan_value(s, escaped ? CBOR_MEMBER_PLAIN : cbor_member_kind(key, size));
		if (err != 0)
			return err;
	} while (scan_take(s, ','));
	if (!scan_take(s, '}'))
		return -EINVAL;
out_close:
	api_out_append(s->out, &close, 1);
	return 0;
}

static int
scan_array(struct json_scan *s)
{
	static const unsigned char open = 0x9f;
	static const unsigned char close = 0xff;
	int err;

	api_out_append(s->out, &open, 1);
	if (scan_take(s, ']'))
		goto out_close;
	do {
		err = scan_value(s, CBOR_MEMBER_PLAIN);
		if (err != 0)
			return err;
	} while (scan_take(s, ','));
	if (!scan_take(s, ']'))
		return -EINVAL;
out_close:
	api_out_append(s->out, &close, 1);
	return 0;
}

/* true, false, null: their simple values. */
static int
scan_word(struct json_scan *s)
{
	static const struct {
		const char *word;
		unsigned char item;
	} words[] = { { "true", 0xf5 }, { "false", 0xf4 }, { "null", 0xf6 } };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);

		if ((size_t)(s->end - s->p) >= n && memcmp(s->p, words[i].word, n) == 0) {
			s->p += n;
			api_out_append(s->out, &words[i].item, 1);
			return 0;
		}
	}
	return -EINVAL;
}

static int
scan_value(struct json_scan *s, enum cbor_member_kind kind)
{
	int err;

	scan_ws(s);
	if (s->p == s->end)
		return -EINVAL;
	switch (*s->p) {
	case '{':
	case '[':
		if (s->depth == SERVER_CBOR_NESTING_MAX)
			return -EINVAL;
		s->depth++;
		s->p++;
		err = s->p[-1] == '{' ? scan_object(s) : scan_array(s);
		s->depth--;
		return err;
	case '"':
		s->p++;
		return scan_string_value(s, kind);
	case 't':
	case 'f':
	case 'n':
		return scan_word(s);
	default:
		return scan_number(s, kind);
	}
}

int
server_cbor_answer_from_json(const char *json, size_t size, struct api_out *cbor)
{
	struct json_scan s = { json, json + size, cbor, 0 };
	int err = scan_value(&s, CBOR_MEMBER_PLAIN);

	scan_ws(&s);
	if (err == 0 && s.p != s.end)
		err = -EINVAL;
	if (cbor->overflow)
		return -ENOBUFS;
	return err;
}
