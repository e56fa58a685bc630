/*
 * eventstream: botocore's own test messages encoded byte for byte; reference messages
 * botocore parsed
 * (eventstream_vectors.inc) decoded and re-encoded byte for byte; the negative space:
 * every truncation, every bit flip, malformed headers with valid CRCs, the limits.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <zlib.h>

#include "common/eventstream.h"
#include "tests/common/eventstream_vectors.inc"

static uint8_t buf[64 * 1024];
static uint8_t copy[64 * 1024];

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Frames raw header bytes and a payload with correct CRCs (the encoder is not used). */
static size_t
frame_raw(uint8_t *out, const void *headers, size_t headers_size, const void *payload,
	  size_t payload_size)
{
	size_t total = ES_OVERHEAD_SIZE + headers_size + payload_size;

	put32(out, (uint32_t)total);
	put32(out + 4, (uint32_t)headers_size);
	put32(out + 8, (uint32_t)crc32(0, out, 8));
	memcpy(out + 12, headers, headers_size);
	memcpy(out + 12 + headers_size, payload, payload_size);
	put32(out + total - 4, (uint32_t)crc32(0, out, (uInt)(total - 4)));
	return total;
}

static struct es_header
num(const char *name, enum es_type type, int64_t n)
{
	return (struct es_header){ .name = name, .name_size = (uint8_t)strlen(name),
				   .type = type, .number = n };
}

static struct es_header
blob(const char *name, enum es_type type, const void *v, uint16_t size)
{
	return (struct es_header){ .name = name, .name_size = (uint8_t)strlen(name),
				   .type = type, .value = v, .value_size = size };
}

/* botocore's own unit-test messages (tests/unit/test_eventstream.py), byte for byte. */
static const uint8_t botocore_all_headers_types[] =
	"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
	"\x01" "0\x00\x01" "1\x01\x01" "2\x02\x02\x01" "3\x03\x00\x03"
	"\x01" "4\x04\x00\x00\x00\x04\x01" "5\x05\x00\x00\x00\x00\x00\x00\x00\x05"
	"\x01" "6\x06\x00\x05" "bytes\x01" "7\x07\x00\x04" "utf8"
	"\x01" "8\x08\x00\x00\x00\x00\x00\x00\x00\x08\x01" "9\x09" "0123456789abcdef"
	"\x63\x35\x36\x71";
static const uint8_t botocore_one_str_header[] =
	"\x00\x00\x00\x3d\x00\x00\x00\x20\x07\xfd\x83\x96"
	"\x0c" "content-type\x07\x00\x10" "application/json{'foo':'bar'}\x8d\x9c\x08\xb1";

Test(eventstream, botocore_all_header_types_vector)
{
	const struct es_header h[] = {
		num("0", ES_TYPE_TRUE, 1),
		num("1", ES_TYPE_FALSE, 0),
		num("2", ES_TYPE_BYTE, 2),
		num("3", ES_TYPE_SHORT, 3),
		num("4", ES_TYPE_INTEGER, 4),
		num("5", ES_TYPE_LONG, 5),
		blob("6", ES_TYPE_BYTES, "bytes", 5),
		blob("7", ES_TYPE_STRING, "utf8", 4),
		num("8", ES_TYPE_TIMESTAMP, 8),
		blob("9", ES_TYPE_UUID, "0123456789abcdef", 16),
	};
	struct es_message m;
	size_t size = 0;
	size_t used = 0;

	cr_assert_eq(es_encode(buf, sizeof(buf), h, 10, "", 0, &size), 0);
	cr_assert_eq(size, 0x62);
	cr_assert_eq(memcmp(buf, botocore_all_headers_types, size), 0);
	cr_assert_eq(es_decode(botocore_all_headers_types, 0x62, &m, &used), 0);
	cr_assert_eq(used, 0x62);
	cr_assert_eq(m.header_count, 10);
	for (uint32_t i = 0; i < 10; i++) {
		cr_assert_eq(m.headers[i].type, h[i].type);
		cr_assert_eq(m.headers[i].number, h[i].number, "header %u", i);
		cr_assert_eq(m.headers[i].value_size, h[i].value_size, "header %u", i);
	}
	cr_assert_eq(memcmp(es_message_header(&m, "9")->value, "0123456789abcdef", 16), 0);
	cr_assert_eq(m.payload_size, 0);
}

Test(eventstream, botocore_one_string_header_vector)
{
	const struct es_header h = es_header_string("content-type", "application/json");
	size_t size = 0;

	cr_assert_eq(es_encode(buf, sizeof(buf), &h, 1, "{'foo':'bar'}", 13, &size), 0);
	cr_assert_eq(size, 0x3d);
	cr_assert_eq(memcmp(buf, botocore_one_str_header, size), 0);
}

/* Decode a botocore-checked vector, then encode what was decoded: the same bytes. */
static void
roundtrip(const char *name, const uint8_t *raw, size_t size)
{
	struct es_message m;
	size_t used = 0;
	size_t again = 0;

	cr_assert_eq(es_decode(raw, size, &m, &used), 0, "%s", name);
	cr_assert_eq(used, size, "%s", name);
	memcpy(copy, m.payload, m.payload_size);
	cr_assert_eq(es_encode(buf, sizeof(buf), m.headers, m.header_count, copy,
			       m.payload_size, &again), 0, "%s", name);
	cr_assert_eq(again, size, "%s", name);
	cr_assert_eq(memcmp(buf, raw, size), 0, "%s", name);
}

Test(eventstream, botocore_vectors_roundtrip)
{
#define X(name) roundtrip(#name, es_vector_##name, sizeof(es_vector_##name));
	ES_VECTORS(X)
#undef X
}

Test(eventstream, botocore_every_type_values)
{
	struct es_message m;
	size_t used;

	cr_assert_eq(es_decode(es_vector_every_type, sizeof(es_vector_every_type), &m, &used), 0);
	cr_assert_eq(m.header_count, 10);
	cr_assert_eq(es_message_header(&m, "t")->number, 1);
	cr_assert_eq(es_message_header(&m, "f")->number, 0);
	cr_assert_eq(es_message_header(&m, "b")->number, -49);
	cr_assert_eq(es_message_header(&m, "s")->number, -2);
	cr_assert_eq(es_message_header(&m, "i")->number, 40972);
	cr_assert_eq(es_message_header(&m, "l")->number, -42424242);
	cr_assert_eq(es_message_header(&m, "ts")->number, 8675309);
	cr_assert_eq(es_message_header(&m, "bytes")->value_size, 8);
	cr_assert_eq(es_message_header(&m, "str")->value_size, 6);  /* é is two bytes. */
	cr_assert_null(es_message_header(&m, "absent"));
}

Test(eventstream, string_header_helper_matches_vector)
{
	const struct es_header h[] = {
		es_header_string(":event-type", "initial-response"),
		es_header_string(":content-type", "application/json"),
		es_header_string(":message-type", "event"),
	};
	size_t size = 0;

	cr_assert_eq(es_encode(buf, sizeof(buf), h, 3, "{}", 2, &size), 0);
	cr_assert_eq(size, sizeof(es_vector_initial_response));
	cr_assert_eq(memcmp(buf, es_vector_initial_response, size), 0);
}

Test(eventstream, every_truncation_wants_more)
{
	const uint8_t *raw = es_vector_subscribe_event;
	struct es_message m;
	size_t used;

	for (size_t n = 0; n < sizeof(es_vector_subscribe_event); n++)
		cr_assert_eq(es_decode(raw, n, &m, &used), -EAGAIN, "prefix %zu", n);
}

Test(eventstream, every_bit_flip_is_refused)
{
	size_t size = sizeof(es_vector_every_type);
	struct es_message m;
	size_t used;

	for (size_t bit = 0; bit < size * 8; bit++) {
		int rc;

		memcpy(copy, es_vector_every_type, size);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = es_decode(copy, size, &m, &used);
		cr_assert(rc == -EBADMSG, "bit %zu: %d", bit, rc);
	}
}

Test(eventstream, two_messages_back_to_back)
{
	size_t a = sizeof(es_vector_initial_response);
	size_t b = sizeof(es_vector_subscribe_event);
	struct es_message m;
	size_t used;

	memcpy(copy, es_vector_initial_response, a);
	memcpy(copy + a, es_vector_subscribe_event, b);
	cr_assert_eq(es_decode(copy, a + b, &m, &used), 0);
	cr_assert_eq(used, a);
	cr_assert_eq(es_decode(copy + a, b, &m, &used), 0);
	cr_assert_eq(used, b);
	cr_assert_eq(m.payload_size, 73);
}

/* Valid CRCs around broken header blocks: each is refused, none read out of bounds. */
Test(eventstream, malformed_headers_with_valid_crcs)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t size;
	} cases[] = {
		{ "empty name", "\x00\x07\x00\x00", 4 },
		{ "name past the block", "\x05" "ab", 3 },
		{ "no type byte", "\x01" "a", 2 },
		{ "unknown type 10", "\x01" "a\x0a", 3 },
		{ "unknown type 255", "\x01" "a\xff", 3 },
		{ "short value", "\x01" "a\x04\x00\x01", 5 },
		{ "long value", "\x01" "a\x05\x00\x00\x00\x00", 7 },
		{ "string length past the block", "\x01" "a\x07\x00\x09xyz", 7 },
		{ "string without length", "\x01" "a\x07\x00", 4 },
		{ "uuid short", "\x01" "a\x09\x00\x01\x02", 6 },
	};
	struct es_message m;
	size_t used;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = frame_raw(buf, cases[i].bytes, cases[i].size, "p", 1);

		cr_assert_eq(es_decode(buf, n, &m, &used), -EBADMSG, "%s", cases[i].what);
	}
}

Test(eventstream, lengths_that_cannot_be)
{
	struct es_message m;
	size_t used;

	/* Total below the 16-byte minimum; headers longer than the message. */
	for (int i = 0; i < 2; i++) {
		memset(buf, 0, 32);
		put32(buf, i == 0 ? 15 : 32);
		put32(buf + 4, i == 0 ? 0 : 17);
		put32(buf + 8, (uint32_t)crc32(0, buf, 8));
		cr_assert_eq(es_decode(buf, 32, &m, &used), -EBADMSG, "case %d", i);
	}
	/* Over botocore's limits: refused from the prelude alone, before the bytes arrive. */
	put32(buf, ES_OVERHEAD_SIZE + ES_HEADERS_SIZE_MAX + 1);
	put32(buf + 4, ES_HEADERS_SIZE_MAX + 1);
	put32(buf + 8, (uint32_t)crc32(0, buf, 8));
	cr_assert_eq(es_decode(buf, ES_PRELUDE_SIZE, &m, &used), -EMSGSIZE);
	put32(buf, ES_OVERHEAD_SIZE + ES_PAYLOAD_SIZE_MAX + 1);
	put32(buf + 4, 0);
	put32(buf + 8, (uint32_t)crc32(0, buf, 8));
	cr_assert_eq(es_decode(buf, ES_PRELUDE_SIZE, &m, &used), -EMSGSIZE);
	/* Exactly at the payload limit is only waiting for bytes. */
	put32(buf, ES_OVERHEAD_SIZE + ES_PAYLOAD_SIZE_MAX);
	put32(buf + 8, (uint32_t)crc32(0, buf, 8));
	cr_assert_eq(es_decode(buf, ES_PRELUDE_SIZE, &m, &used), -EAGAIN);
}

Test(eventstream, header_count_limit)
{
	uint8_t block[(ES_HEADERS_MAX + 1) * 3];
	struct es_message m;
	size_t used;
	size_t n;

	for (uint32_t i = 0; i <= ES_HEADERS_MAX; i++) {
		block[3 * i] = 1;
		block[3 * i + 1] = 'h';
		block[3 * i + 2] = ES_TYPE_TRUE;
	}
	n = frame_raw(buf, block, ES_HEADERS_MAX * 3, "", 0);
	cr_assert_eq(es_decode(buf, n, &m, &used), 0);
	cr_assert_eq(m.header_count, ES_HEADERS_MAX);
	n = frame_raw(buf, block, sizeof(block), "", 0);
	cr_assert_eq(es_decode(buf, n, &m, &used), -EMSGSIZE);
}

Test(eventstream, encoder_refuses_what_does_not_fit)
{
	const struct es_header h = es_header_string(":event-type", "SubscribeToShardEvent");
	size_t need = ES_OVERHEAD_SIZE + es_headers_size(&h, 1) + 10;
	size_t size = 0;

	cr_assert_eq(es_encode(buf, need - 1, &h, 1, "0123456789", 10, &size), -EMSGSIZE);
	cr_assert_eq(size, 0);
	cr_assert_eq(es_encode(buf, need, &h, 1, "0123456789", 10, &size), 0);
	cr_assert_eq(size, need);
	cr_assert_eq(es_seal(buf, sizeof(buf), NULL, 0, ES_PAYLOAD_SIZE_MAX + 1, &size),
		     -EMSGSIZE);
}
