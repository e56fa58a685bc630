/*
 * eventstream.c - encoder and decoder of the EventStream framing (eventstream.h has
 * the message layout). CRCs are zlib's CRC-32 (the IEEE polynomial, not CRC-32C).
 *
 * Header value shapes, by type byte (big-endian numbers):
 *
 *   TYPE  NAME        VALUE
 *   0     true        none
 *   1     false       none
 *   2     byte        1 byte, signed
 *   3     short       2 bytes, signed
 *   4     integer     4 bytes, signed
 *   5     long        8 bytes, signed
 *   6     bytes       2-byte length, then that many bytes
 *   7     string      2-byte length, then that many bytes of UTF-8
 *   8     timestamp   8 bytes, signed milliseconds since the epoch
 *   9     uuid        16 bytes
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <zlib.h>

#include "common/eventstream.h"

/* Per type: the fixed value size, or ES_VARIABLE for a 2-byte length and bytes. */
#define ES_VARIABLE 0xffu
static const uint8_t es_value_size[ES_TYPE_COUNT] = {
	[ES_TYPE_TRUE] = 0,
	[ES_TYPE_FALSE] = 0,
	[ES_TYPE_BYTE] = 1,
	[ES_TYPE_SHORT] = 2,
	[ES_TYPE_INTEGER] = 4,
	[ES_TYPE_LONG] = 8,
	[ES_TYPE_BYTES] = ES_VARIABLE,
	[ES_TYPE_STRING] = ES_VARIABLE,
	[ES_TYPE_TIMESTAMP] = 8,
	[ES_TYPE_UUID] = 16,
};

static uint32_t
es_crc(uint32_t crc, const uint8_t *data, size_t size)
{
	/* zlib takes uInt lengths; messages are far below 4 GiB (ES_PAYLOAD_SIZE_MAX). */
	assert(size <= UINT32_MAX);
	return (uint32_t)crc32(crc, data, (uInt)size);
}

static void
put_be(uint8_t *p, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * (size - 1 - i)));
}

static uint64_t
get_be(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v = v << 8 | p[i];
	return v;
}

/* Sign-extends a `size`-byte two's-complement value. */
static int64_t
es_signed(uint64_t v, unsigned size)
{
	unsigned shift = 64 - 8 * size;

	return size == 0 ? 0 : (int64_t)(v << shift) >> shift;
}

struct es_header
es_header_string(const char *name, const char *value)
{
	size_t name_size = strlen(name);
	size_t value_size = strlen(value);

	assert(name_size > 0 && name_size <= UINT8_MAX && value_size <= UINT16_MAX);
	return (struct es_header){
		.name = name,
		.name_size = (uint8_t)name_size,
		.type = ES_TYPE_STRING,
		.value = (const uint8_t *)value,
		.value_size = (uint16_t)value_size,
	};
}

/* Bytes of one header on the wire; 0 when it is malformed. */
static size_t
es_header_size(const struct es_header *h)
{
	uint8_t fixed;

	if (h->name_size == 0 || (unsigned)h->type >= ES_TYPE_COUNT)
		return 0;
	fixed = es_value_size[h->type];
	if (fixed == ES_VARIABLE)
		return 1u + h->name_size + 1u + 2u + h->value_size;
	if (h->type == ES_TYPE_UUID && (h->value == NULL || h->value_size != 16))
		return 0;
	return 1u + h->name_size + 1u + fixed;
}

size_t
es_headers_size(const struct es_header *headers, uint32_t count)
{
	size_t total = 0;

	for (uint32_t i = 0; i < count; i++) {
		size_t n = es_header_size(&headers[i]);

		assert(n > 0);  /* Headers are the caller's constants, not input. */
		total += n;
	}
	return total;
}

static uint8_t *
es_header_put(uint8_t *p, const struct es_header *h)
{
	uint8_t fixed = es_value_size[h->type];

	*p++ = h->name_size;
	memcpy(p, h->name, h->name_size);
	p += h->name_size;
	*p++ = (uint8_t)h->type;
	if (fixed == ES_VARIABLE) {
		put_be(p, h->value_size, 2);
		if (h->value_size > 0)
			memcpy(p + 2, h->value, h->value_size);
		return p + 2 + h->value_size;
	}
	if (h->type == ES_TYPE_UUID)
		memcpy(p, h->value, 16);
	else
		put_be(p, (uint64_t)h->number, fixed);
	return p + fixed;
}

int
es_seal(uint8_t *buf, size_t capacity, const struct es_header *headers, uint32_t count,
	size_t payload_size, size_t *size_out)
{
	size_t headers_size = es_headers_size(headers, count);
	size_t total = ES_OVERHEAD_SIZE + headers_size + payload_size;
	uint8_t *p = buf + ES_PRELUDE_SIZE;

	if (headers_size > ES_HEADERS_SIZE_MAX || payload_size > ES_PAYLOAD_SIZE_MAX ||
	    total > capacity)
		return -EMSGSIZE;
	put_be(buf, total, 4);
	put_be(buf + 4, headers_size, 4);
	put_be(buf + 8, es_crc(0, buf, 8), 4);
	for (uint32_t i = 0; i < count; i++)
		p = es_header_put(p, &headers[i]);
	assert((size_t)(p - buf) == ES_PRELUDE_SIZE + headers_size);
	put_be(buf + total - 4, es_crc(0, buf, total - 4), 4);
	*size_out = total;
	return 0;
}

int
es_encode(uint8_t *buf, size_t capacity, const struct es_header *headers, uint32_t count,
	  const void *payload, size_t payload_size, size_t *size_out)
{
	size_t at = ES_PRELUDE_SIZE + es_headers_size(headers, count);

	if (at + payload_size + 4 > capacity)
		return -EMSGSIZE;
	if (payload_size > 0)
		memcpy(buf + at, payload, payload_size);
	return es_seal(buf, capacity, headers, count, payload_size, size_out);
}

/* Reads one header at p (end excluded). Returns the byte after it, or NULL if malformed. */
static const uint8_t *
es_header_get(const uint8_t *p, const uint8_t *end, struct es_header *h)
{
	uint8_t fixed;

	memset(h, 0, sizeof(*h));
	if (end - p < 2 || p[0] == 0 || end - p < 2 + p[0])
		return NULL;
	h->name_size = p[0];
	h->name = (const char *)p + 1;
	p += 1 + h->name_size;
	if (*p >= ES_TYPE_COUNT)
		return NULL;
	h->type = (enum es_type)*p++;
	fixed = es_value_size[h->type];
	if (fixed == ES_VARIABLE) {
		if (end - p < 2)
			return NULL;
		h->value_size = (uint16_t)get_be(p, 2);
		p += 2;
		if (end - p < h->value_size)
			return NULL;
		h->value = p;
		return p + h->value_size;
	}
	if (end - p < fixed)
		return NULL;
	if (h->type == ES_TYPE_UUID) {
		h->value = p;
		h->value_size = 16;
	} else if (h->type == ES_TYPE_TRUE || h->type == ES_TYPE_FALSE) {
		h->number = h->type == ES_TYPE_TRUE;
	} else {
		h->number = es_signed(get_be(p, fixed), fixed);
	}
	return p + fixed;
}

static int
es_headers_get(const uint8_t *p, size_t size, struct es_message *msg)
{
	const uint8_t *end = p + size;

	msg->header_count = 0;
	while (p < end) {
		if (msg->header_count == ES_HEADERS_MAX)
			return -EMSGSIZE;
		p = es_header_get(p, end, &msg->headers[msg->header_count]);
		if (p == NULL)
			return -EBADMSG;
		msg->header_count++;
	}
	return 0;
}

int
es_decode(const uint8_t *data, size_t size, struct es_message *msg, size_t *consumed)
{
	uint32_t total;
	uint32_t headers_size;

	if (size < ES_PRELUDE_SIZE)
		return -EAGAIN;
	total = (uint32_t)get_be(data, 4);
	headers_size = (uint32_t)get_be(data + 4, 4);
	if (es_crc(0, data, 8) != (uint32_t)get_be(data + 8, 4))
		return -EBADMSG;
	if (total < ES_OVERHEAD_SIZE || headers_size > total - ES_OVERHEAD_SIZE)
		return -EBADMSG;
	if (headers_size > ES_HEADERS_SIZE_MAX ||
	    total - ES_OVERHEAD_SIZE - headers_size > ES_PAYLOAD_SIZE_MAX)
		return -EMSGSIZE;
	if (size < total)
		return -EAGAIN;
	if (es_crc(0, data, total - 4) != (uint32_t)get_be(data + total - 4, 4))
		return -EBADMSG;
	msg->payload = data + ES_PRELUDE_SIZE + headers_size;
	msg->payload_size = total - ES_OVERHEAD_SIZE - headers_size;
	*consumed = total;
	return es_headers_get(data + ES_PRELUDE_SIZE, headers_size, msg);
}

const struct es_header *
es_message_header(const struct es_message *msg, const char *name)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < msg->header_count; i++)
		if (msg->headers[i].name_size == n && memcmp(msg->headers[i].name, name, n) == 0)
			return &msg->headers[i];
	return NULL;
}
