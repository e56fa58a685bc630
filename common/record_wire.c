/*
 * record_wire.c - one record's encoding (table in record_wire.h).
 */
#include <string.h>

#include "common/limits.h"
#include "common/record_wire.h"

static uint32_t
varint_size(uint64_t value)
{
	uint32_t size = 1;

	while (value >= 0x80) {
		value >>= 7;
		size++;
	}
	return size;
}

static uint8_t *
varint_put(uint8_t *pos, uint64_t value)
{
	while (value >= 0x80) {
		*pos++ = (uint8_t)(value | 0x80);
		value >>= 7;
	}
	*pos++ = (uint8_t)value;
	return pos;
}

/* Reads a varint of at most 10 bytes; NULL when it runs past `end` or overflows. */
static const uint8_t *
varint_get(const uint8_t *pos, const uint8_t *end, uint64_t *value_out)
{
	uint64_t value = 0;

	for (uint32_t shift = 0; shift < 64; shift += 7) {
		if (pos == end)
			return NULL;
		uint8_t byte = *pos++;

		if (shift == 63 && byte > 1)
			return NULL;
		value |= (uint64_t)(byte & 0x7f) << shift;
		if ((byte & 0x80) == 0) {
			*value_out = value;
			return pos;
		}
	}
	return NULL;
}

static uint64_t
zigzag_encode(int64_t value)
{
	return ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
}

static int64_t
zigzag_decode(uint64_t value)
{
	return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

uint32_t
record_wire_size(const struct record_wire *r)
{
	return varint_size(zigzag_encode(r->arrival_delta_ns)) + 1u +
	       varint_size(r->partition_key_size) +
	       (r->explicit_hash_key != NULL ? RECORD_WIRE_HASH_KEY_SIZE : 0u) +
	       r->partition_key_size + varint_size(r->data_size) + r->data_size;
}

uint32_t
record_wire_size_max(uint16_t partition_key_size, bool has_hash_key, uint32_t data_size)
{
	return 10u + 1u + varint_size(partition_key_size) +
	       (has_hash_key ? RECORD_WIRE_HASH_KEY_SIZE : 0u) + partition_key_size +
	       varint_size(data_size) + data_size;
}

uint8_t *
record_wire_put(uint8_t *pos, const struct record_wire *r)
{
	pos = varint_put(pos, zigzag_encode(r->arrival_delta_ns));
	*pos++ = r->explicit_hash_key != NULL ? RECORD_WIRE_F_HASH_KEY : 0;
	pos = varint_put(pos, r->partition_key_size);
	if (r->explicit_hash_key != NULL) {
		memcpy(pos, r->explicit_hash_key, RECORD_WIRE_HASH_KEY_SIZE);
		pos += RECORD_WIRE_HASH_KEY_SIZE;
	}
	memcpy(pos, r->partition_key, r->partition_key_size);
	pos += r->partition_key_size;
	pos = varint_put(pos, r->data_size);
	if (r->data_size != 0)
		memcpy(pos, r->data, r->data_size);
	return pos + r->data_size;
}

const uint8_t *
record_wire_next(const uint8_t *pos, const uint8_t *end, struct record_wire *out)
{
	return record_wire_next_max(pos, end, SLUICE_RECORD_DATA_SIZE_MAX, out);
}

const uint8_t *
record_wire_next_max(const uint8_t *pos, const uint8_t *end, uint32_t data_size_max,
		     struct record_wire *out)
{
	uint64_t delta;
	uint64_t key_size;
	uint64_t data_size;
	uint8_t flags;

	pos = varint_get(pos, end, &delta);
	if (pos == NULL || pos == end)
		return NULL;
	flags = *pos++;
	if ((flags & ~RECORD_WIRE_F_HASH_KEY) != 0)
		return NULL;
	pos = varint_get(pos, end, &key_size);
	if (pos == NULL || key_size == 0 || key_size > SLUICE_PARTITION_KEY_SIZE_MAX)
		return NULL;
	out->explicit_hash_key = NULL;
	if ((flags & RECORD_WIRE_F_HASH_KEY) != 0) {
		if (end - pos < (ptrdiff_t)RECORD_WIRE_HASH_KEY_SIZE)
			return NULL;
		out->explicit_hash_key = pos;
		pos += RECORD_WIRE_HASH_KEY_SIZE;
	}
	if ((uint64_t)(end - pos) < key_size)
		return NULL;
	out->partition_key = pos;
	out->partition_key_size = (uint16_t)key_size;
	pos = varint_get(pos + key_size, end, &data_size);
	if (pos == NULL || data_size > data_size_max ||
	    data_size > (uint64_t)(end - pos))
		return NULL;
	out->arrival_delta_ns = zigzag_decode(delta);
	out->data = pos;
	out->data_size = (uint32_t)data_size;
	return pos + data_size;
}
