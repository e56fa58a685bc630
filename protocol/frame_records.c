/*
 * frame_records.c - RECORDS and SHARD_RECORDS frames: the strict decoder and
 * the record iterator. The decoder checks every record once, so the iterator
 * (the dataplane's per-record path) does no checks at all.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/base.h"
#include "common/record_wire.h"
#include "protocol/frame.h"
#include "protocol/frame_int.h"

bool
frame_stream_name_valid(const char *name, size_t size)
{
	if (size == 0 || size > SLUICE_STREAM_NAME_SIZE_MAX)
		return false;
	for (size_t i = 0; i < size; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* Length of the UTF-8 sequence starting at bytes[i], or 0 when it is invalid. */
static size_t
utf8_sequence_size(const uint8_t *bytes, size_t size, size_t i)
{
	uint8_t c = bytes[i];
	uint8_t lo = 0x80;
	uint8_t hi = 0xBF;
	size_t n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	/* The second byte's range excludes overlongs, surrogates and > U+10FFFF. */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (size - i < n)
		return 0;
	if (bytes[i + 1] < lo || bytes[i + 1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((bytes[i + k] & 0xC0) != 0x80)
			return 0;
	return n;
}

bool
frame_utf8_valid(const uint8_t *bytes, size_t size)
{
	size_t i = 0;

	while (i < size) {
		/* Keys are mostly ASCII: skip eight plain bytes at a time. */
		if (size - i >= 8 && (frame_load64(bytes + i) & 0x8080808080808080ull) == 0) {
			i += 8;
			continue;
		}
		if (bytes[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_sequence_size(bytes, size, i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

uint32_t
frame_record_encoded_size(uint16_t key_size, uint8_t hash_kind, uint32_t data_size)
{
	assert(key_size >= 1 && key_size <= SLUICE_PARTITION_KEY_SIZE_MAX);
	assert(data_size <= SLUICE_RECORD_DATA_SIZE_MAX);
	return FRAME_RECORD_HEADER_SIZE + (hash_kind != FRAME_HASH_NONE ? FRAME_HASH_KEY_SIZE : 0) +
	       key_size + data_size;
}

/* Checks one record at p[0 .. avail) and returns its size in *size_out. */
static enum frame_err
record_check(const uint8_t *p, uint32_t avail, uint32_t *size_out, uint32_t *data_size_out,
	     bool *hashed_out)
{
	uint8_t flags;
	uint32_t key_size;
	uint32_t data_size;
	uint64_t need;
	const uint8_t *key;

	if (avail < FRAME_RECORD_HEADER_SIZE)
		return FRAME_ERR_RECORD_TRUNCATED;
	flags = p[0];
	if ((flags & ~0x03u) != 0 || (flags & 0x03u) > FRAME_HASH_MD5)
		return FRAME_ERR_RECORD_FLAGS;
	key_size = (uint32_t)p[1] + 1;
	data_size = frame_load32(p + 2);
	if ((uint64_t)key_size + data_size > SLUICE_RECORD_DATA_SIZE_MAX)
		return FRAME_ERR_RECORD_TOO_LARGE;
	*hashed_out = flags != FRAME_HASH_NONE;
	need = FRAME_RECORD_HEADER_SIZE + (*hashed_out ? FRAME_HASH_KEY_SIZE : 0) +
	       (uint64_t)key_size + data_size;
	if (need > avail)
		return FRAME_ERR_RECORD_TRUNCATED;
	key = p + FRAME_RECORD_HEADER_SIZE + (*hashed_out ? FRAME_HASH_KEY_SIZE : 0);
	if (!frame_utf8_valid(key, key_size))
		return FRAME_ERR_KEY_UTF8;
	*size_out = (uint32_t)need;
	*data_size_out = data_size;
	return FRAME_OK;
}

/* Reads the fixed RECORDS body (identity, count, name) up to the first record. */
static enum frame_err
records_fixed_decode(const uint8_t *p, uint32_t body_end, struct frame_records *out)
{
	if (body_end < FRAME_RECORDS_HEADER_SIZE)
		return FRAME_ERR_FRAME_SIZE;
	out->producer_id = frame_load64(p + FRAME_OFF_PRODUCER_ID);
	out->batch_seq = frame_load64(p + FRAME_OFF_BATCH_SEQ);
	out->producer_epoch = frame_load32(p + FRAME_OFF_EPOCH);
	out->record_count = frame_load16(p + FRAME_OFF_RECORD_COUNT);
	out->identity_valid = true;
	out->stream_name_size = p[FRAME_OFF_NAME_SIZE];
	out->stream_name = (const char *)p + FRAME_OFF_NAME;
	if (out->record_count == 0 || out->record_count > FRAME_RECORDS_MAX)
		return FRAME_ERR_RECORD_COUNT;
	if (p[FRAME_OFF_RECORDS_RESERVED] != 0)
		return FRAME_ERR_RESERVED;
	if (out->stream_name_size > body_end - FRAME_RECORDS_HEADER_SIZE)
		return FRAME_ERR_BODY_SIZE;
	if (!frame_stream_name_valid(out->stream_name, out->stream_name_size))
		return FRAME_ERR_STREAM_NAME;
	return FRAME_OK;
}

static bool
is_records_type(uint8_t type)
{
	return type == FRAME_TYPE_RECORDS || type == FRAME_TYPE_SHARD_RECORDS;
}

/* The records of a RECORDS frame, p[pos .. body_end). */
static enum frame_err
records_check(const uint8_t *p, uint32_t pos, uint32_t body_end, struct frame_records *out)
{
	out->records = p + pos;
	out->all_hashed = true;
	for (uint32_t i = 0; i < out->record_count; i++) {
		uint32_t record_size;
		uint32_t data_size;
		bool hashed;
		enum frame_err err = record_check(p + pos, body_end - pos, &record_size,
						  &data_size, &hashed);

		if (err != FRAME_OK)
			return err;
		out->all_hashed = out->all_hashed && hashed;
		out->data_size_total += data_size;
		pos += record_size;
	}
	if (pos != body_end)
		return FRAME_ERR_BODY_SIZE;
	out->records_size = (uint32_t)(p + pos - out->records);
	return FRAME_OK;
}

/* One record of a SHARD_RECORDS block, whose hash key entry is `hash_key`. */
static enum frame_err
grouped_record_check(const struct record_wire *r, const uint8_t *hash_key)
{
	if (r->arrival_delta_ns != 0)
		return FRAME_ERR_GROUPED_RECORD;
	if (r->explicit_hash_key != NULL &&
	    memcmp(r->explicit_hash_key, hash_key, FRAME_HASH_KEY_SIZE) != 0)
		return FRAME_ERR_GROUPED_RECORD;
	if ((uint64_t)r->partition_key_size + r->data_size > SLUICE_RECORD_DATA_SIZE_MAX)
		return FRAME_ERR_RECORD_TOO_LARGE;
	if (!frame_utf8_valid(r->partition_key, r->partition_key_size))
		return FRAME_ERR_KEY_UTF8;
	return FRAME_OK;
}

/* The shard index, record block and hash keys of a SHARD_RECORDS frame. */
static enum frame_err
grouped_check(const uint8_t *p, uint32_t pos, uint32_t body_end, struct frame_records *out)
{
	uint32_t table_size = (uint32_t)out->record_count * FRAME_HASH_KEY_SIZE;
	const uint8_t *next;
	const uint8_t *end;

	if (body_end - pos < FRAME_SHARD_INDEX_SIZE + table_size)
		return FRAME_ERR_BODY_SIZE;
	out->shard_grouped = true;
	out->all_hashed = true;
	out->shard_index = frame_load32(p + pos);
	out->records = p + pos + FRAME_SHARD_INDEX_SIZE;
	out->hash_keys = p + body_end - table_size;
	next = out->records;
	end = out->hash_keys;
	for (uint32_t i = 0; i < out->record_count; i++) {
		struct record_wire r;
		enum frame_err err;

		next = next == end ? NULL : record_wire_next(next, end, &r);
		if (next == NULL)
			return FRAME_ERR_RECORD_TRUNCATED;
		err = grouped_record_check(&r, out->hash_keys + i * FRAME_HASH_KEY_SIZE);
		if (err != FRAME_OK)
			return err;
		out->data_size_total += r.data_size;
	}
	if (next != end)
		return FRAME_ERR_BODY_SIZE;
	out->records_size = (uint32_t)(end - out->records);
	return FRAME_OK;
}

enum frame_err
frame_records_decode(const void *bytes, size_t size, struct frame_records *out)
{
	const uint8_t *p = bytes;
	struct frame_header header;
	uint32_t body_end;
	uint32_t pos;
	enum frame_err err;

	memset(out, 0, sizeof(*out));
	err = frame_header_decode(bytes, size, &header);
	if (err == FRAME_ERR_FLAGS && is_records_type(header.type)) {
		/* Intact bytes, refused flags (ack mode 3, undefined bits): NACKable. */
		out->flags = header.flags;
		(void)records_fixed_decode(p, header.frame_size, out);
		return err;
	}
	if (err != FRAME_OK)
		return err;
	if (!is_records_type(header.type))
		return FRAME_ERR_TYPE;
	out->flags = header.flags;
	out->frame = p;
	out->frame_size = header.frame_size;
	body_end = header.frame_size;
	if ((header.flags & FRAME_F_AUTH) != 0) {
		body_end -= FRAME_AUTH_SIZE;
		out->auth = p + body_end;
		if (frame_load32(out->auth + 4) != 0)
			return FRAME_ERR_RESERVED;
	}
	err = records_fixed_decode(p, body_end, out);
	if (err != FRAME_OK)
		return err;
	pos = FRAME_RECORDS_HEADER_SIZE + out->stream_name_size;
	if (header.type == FRAME_TYPE_SHARD_RECORDS)
		return grouped_check(p, pos, body_end, out);
	return records_check(p, pos, body_end, out);
}

void
frame_record_iter_init(struct frame_record_iter *iter, const struct frame_records *records)
{
	iter->next = records->records;
	iter->left = records->record_count;
	iter->hash_next = records->hash_keys;
	iter->end = records->records + records->records_size;
}

/* A SHARD_RECORDS record: the decoder checked the block, so this cannot fail. */
static bool
grouped_iter_next(struct frame_record_iter *iter, struct frame_record *record_out)
{
	struct record_wire r;

	iter->next = record_wire_next(iter->next, iter->end, &r);
	assert(iter->next != NULL);
	record_out->key = r.partition_key;
	record_out->key_size = r.partition_key_size;
	record_out->data = r.data;
	record_out->data_size = r.data_size;
	record_out->hash_key = iter->hash_next;
	record_out->hash_kind = r.explicit_hash_key != NULL ? FRAME_HASH_EXPLICIT : FRAME_HASH_MD5;
	iter->hash_next += FRAME_HASH_KEY_SIZE;
	iter->left--;
	return true;
}

bool
frame_record_iter_next(struct frame_record_iter *iter, struct frame_record *record_out)
{
	const uint8_t *p = iter->next;
	uint8_t kind;

	if (iter->left == 0)
		return false;
	if (iter->hash_next != NULL)
		return grouped_iter_next(iter, record_out);
	kind = p[0];
	record_out->hash_kind = kind;
	record_out->key_size = (uint16_t)(p[1] + 1);
	record_out->data_size = frame_load32(p + 2);
	p += FRAME_RECORD_HEADER_SIZE;
	record_out->hash_key = NULL;
	if (kind != FRAME_HASH_NONE) {
		record_out->hash_key = p;
		p += FRAME_HASH_KEY_SIZE;
	}
	record_out->key = p;
	p += record_out->key_size;
	record_out->data = p;
	iter->next = p + record_out->data_size;
	iter->left--;
	return true;
}
