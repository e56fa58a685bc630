/*
 * frame_writer.c - builds RECORDS and SHARD_RECORDS frames in a caller's
 * buffer, record by record. It refuses what the decoder would refuse, so a
 * frame it finishes always decodes.
 *
 * SHARD_RECORDS: the hash-key table follows the record block, whose size is
 * known only at the end, so the keys are written downwards from the top of
 * the buffer (below the trailer's room) and moved into place by finish().
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/record_wire.h"
#include "protocol/frame.h"
#include "protocol/frame_int.h"

int
frame_writer_begin(struct frame_writer *writer, void *buf, size_t capacity,
		   const struct frame_batch_params *params)
{
	uint8_t *p = buf;
	uint32_t head_size;

	assert(buf != NULL);
	if (!frame_stream_name_valid(params->stream_name, params->stream_name_size) ||
	    params->ack_mode > FRAME_ACK_DURABLE)
		return -EINVAL;
	memset(writer, 0, sizeof(*writer));
	writer->buf = p;
	writer->capacity = (uint32_t)min_u64(capacity, FRAME_SIZE_MAX);
	writer->reserve = params->auth ? FRAME_AUTH_SIZE : 0;
	writer->shard_grouped = params->shard_grouped;
	head_size = FRAME_RECORDS_HEADER_SIZE + params->stream_name_size +
		    (params->shard_grouped ? FRAME_SHARD_INDEX_SIZE : 0);
	if ((uint64_t)head_size + writer->reserve > writer->capacity)
		return -ENOSPC;

	memset(p, 0, head_size);
	memcpy(p + FRAME_OFF_MAGIC, "SLUC", 4);
	p[FRAME_OFF_VERSION] = FRAME_VERSION;
	p[FRAME_OFF_TYPE] = params->shard_grouped ? FRAME_TYPE_SHARD_RECORDS : FRAME_TYPE_RECORDS;
	frame_store16(p + FRAME_OFF_FLAGS,
		      (uint16_t)(params->ack_mode | (params->auth ? FRAME_F_AUTH : 0)));
	frame_store64(p + FRAME_OFF_PRODUCER_ID, params->producer_id);
	frame_store64(p + FRAME_OFF_BATCH_SEQ, params->batch_seq);
	frame_store32(p + FRAME_OFF_EPOCH, params->producer_epoch);
	p[FRAME_OFF_NAME_SIZE] = params->stream_name_size;
	memcpy(p + FRAME_OFF_NAME, params->stream_name, params->stream_name_size);
	if (params->shard_grouped)
		frame_store32(p + FRAME_OFF_NAME + params->stream_name_size, params->shard_index);
	writer->size = head_size;
	return 0;
}

static bool
record_valid(const struct frame_record *record)
{
	if (record->key == NULL || record->key_size == 0 ||
	    record->key_size > SLUICE_PARTITION_KEY_SIZE_MAX)
		return false;
	if (record->hash_kind > FRAME_HASH_MD5)
		return false;
	if (record->hash_kind != FRAME_HASH_NONE && record->hash_key == NULL)
		return false;
	if ((uint64_t)record->key_size + record->data_size > SLUICE_RECORD_DATA_SIZE_MAX)
		return false;
	if (record->data_size > 0 && record->data == NULL)
		return false;
	return frame_utf8_valid(record->key, record->key_size);
}

/* Where the hash key of record `index` waits until finish() (SHARD_RECORDS). */
static uint8_t *
grouped_hash_slot(const struct frame_writer *writer, uint32_t index)
{
	return writer->buf + writer->capacity - writer->reserve -
	       (index + 1) * FRAME_HASH_KEY_SIZE;
}

/* A record as a SHARD_RECORDS block holds it: the log's encoding, arriving with its batch. */
static struct record_wire
grouped_wire(const struct frame_record *record)
{
	return (struct record_wire){
		.arrival_delta_ns = 0,
		.partition_key = record->key,
		.partition_key_size = record->key_size,
		.explicit_hash_key = record->hash_kind == FRAME_HASH_EXPLICIT ?
				     record->hash_key : NULL,
		.data = record->data,
		.data_size = record->data_size,
	};
}

uint32_t
frame_writer_record_size(const struct frame_writer *writer, const struct frame_record *record)
{
	struct record_wire r;

	if (!writer->shard_grouped)
		return frame_record_encoded_size(record->key_size, record->hash_kind,
						 record->data_size);
	r = grouped_wire(record);
	return record_wire_size(&r) + FRAME_HASH_KEY_SIZE;
}

static int
writer_add_grouped(struct frame_writer *writer, const struct frame_record *record)
{
	struct record_wire r = grouped_wire(record);
	uint32_t size = record_wire_size(&r);

	if (record->hash_kind == FRAME_HASH_NONE)
		return -EINVAL;
	if ((uint64_t)writer->size + size + writer->reserve +
	    (writer->record_count + 1u) * FRAME_HASH_KEY_SIZE > writer->capacity)
		return -ENOSPC;
	record_wire_put(writer->buf + writer->size, &r);
	memcpy(grouped_hash_slot(writer, writer->record_count), record->hash_key,
	       FRAME_HASH_KEY_SIZE);
	writer->size += size;
	writer->record_count++;
	return 0;
}

int
frame_writer_add(struct frame_writer *writer, const struct frame_record *record)
{
	uint8_t *p;
	uint32_t size;

	assert(!writer->finished);
	if (!record_valid(record))
		return -EINVAL;
	if (writer->record_count == FRAME_RECORDS_MAX)
		return -ENOSPC;
	if (writer->shard_grouped)
		return writer_add_grouped(writer, record);
	size = frame_record_encoded_size(record->key_size, record->hash_kind, record->data_size);
	if ((uint64_t)writer->size + size + writer->reserve > writer->capacity)
		return -ENOSPC;

	p = writer->buf + writer->size;
	p[0] = record->hash_kind;
	p[1] = (uint8_t)(record->key_size - 1);
	frame_store32(p + 2, record->data_size);
	p += FRAME_RECORD_HEADER_SIZE;
	if (record->hash_kind != FRAME_HASH_NONE) {
		memcpy(p, record->hash_key, FRAME_HASH_KEY_SIZE);
		p += FRAME_HASH_KEY_SIZE;
	}
	memcpy(p, record->key, record->key_size);
	if (record->data_size > 0)
		memcpy(p + record->key_size, record->data, record->data_size);
	writer->size += size;
	writer->record_count++;
	return 0;
}

/* The hash keys, stored downwards from the top, into record order after the block. */
static void
grouped_hash_keys_place(struct frame_writer *writer)
{
	uint32_t count = writer->record_count;
	uint8_t *table = writer->buf + writer->size;
	uint8_t tmp[FRAME_HASH_KEY_SIZE];

	memmove(table, grouped_hash_slot(writer, count - 1), count * FRAME_HASH_KEY_SIZE);
	for (uint32_t i = 0, j = count - 1; i < j; i++, j--) {
		memcpy(tmp, table + i * FRAME_HASH_KEY_SIZE, FRAME_HASH_KEY_SIZE);
		memcpy(table + i * FRAME_HASH_KEY_SIZE, table + j * FRAME_HASH_KEY_SIZE,
		       FRAME_HASH_KEY_SIZE);
		memcpy(table + j * FRAME_HASH_KEY_SIZE, tmp, FRAME_HASH_KEY_SIZE);
	}
	writer->size += count * FRAME_HASH_KEY_SIZE;
}

int
frame_writer_finish(struct frame_writer *writer)
{
	uint8_t *p = writer->buf;

	assert(!writer->finished);
	if (writer->record_count == 0)
		return -EINVAL;
	if (writer->shard_grouped)
		grouped_hash_keys_place(writer);
	if (writer->reserve > 0) {
		memset(p + writer->size, 0, writer->reserve);
		writer->size += writer->reserve;
	}
	frame_store16(p + FRAME_OFF_RECORD_COUNT, writer->record_count);
	frame_store32(p + FRAME_OFF_SIZE, writer->size);
	frame_seal(p, writer->size);
	writer->finished = true;
	return (int)writer->size;
}

/* CRC-32C of `size` zero bytes with `byte` at `at`, from a zero block: no allocation. */
static uint32_t
renumber_crc_of_zeros(uint32_t size, uint32_t at, uint8_t byte)
{
	static const uint8_t zeros[4096];
	uint32_t crc = 0;

	for (uint32_t done = 0, n; done < size; done += n) {
		n = size - done < sizeof(zeros) ? size - done : (uint32_t)sizeof(zeros);
		if (done <= at && at < done + n) {
			crc = crc32c(crc, zeros, at - done);
			crc = crc32c(crc, &byte, 1);
			crc = crc32c(crc, zeros, done + n - at - 1);
		} else {
			crc = crc32c(crc, zeros, n);
		}
	}
	return crc;
}

int
frame_renumber_init(struct frame_renumber *r, uint32_t frame_size)
{
	uint32_t at = FRAME_OFF_BATCH_SEQ - FRAME_OFF_SIZE;  /* In what the CRC covers. */
	uint32_t covered;
	uint32_t bit[8];
	uint32_t base;

	if (frame_size < FRAME_OFF_NAME || frame_size > FRAME_SIZE_MAX)
		return -EINVAL;
	covered = frame_size - FRAME_OFF_SIZE;
	r->frame_size = frame_size;
	base = renumber_crc_of_zeros(covered, at, 0);
	for (uint32_t j = 0; j < 8; j++) {
		/* Affine: crc(Z ^ D) ^ crc(Z) is linear in D, so single bits make every byte. */
		for (uint32_t b = 0; b < 8; b++)
			bit[b] = renumber_crc_of_zeros(covered, at + j, (uint8_t)(1u << b)) ^ base;
		for (uint32_t v = 0; v < 256; v++) {
			r->crc_delta[j][v] = 0;
			for (uint32_t b = 0; b < 8; b++)
				if (v & (1u << b))
					r->crc_delta[j][v] ^= bit[b];
		}
	}
	return 0;
}

int
frame_renumber(const struct frame_renumber *r, void *frame, uint32_t frame_size,
	       uint64_t batch_seq)
{
	uint8_t *p = frame;
	uint8_t seq[8];
	uint32_t crc;

	if (frame_size != r->frame_size || frame_load32(p + FRAME_OFF_SIZE) != frame_size ||
	    (p[FRAME_OFF_TYPE] != FRAME_TYPE_RECORDS &&
	     p[FRAME_OFF_TYPE] != FRAME_TYPE_SHARD_RECORDS) ||
	    (frame_load16(p + FRAME_OFF_FLAGS) & FRAME_F_AUTH) != 0)
		return -EINVAL;
	frame_store64(seq, batch_seq);
	crc = frame_load32(p + FRAME_OFF_CRC);
	for (uint32_t j = 0; j < 8; j++)
		crc ^= r->crc_delta[j][seq[j] ^ p[FRAME_OFF_BATCH_SEQ + j]];
	memcpy(p + FRAME_OFF_BATCH_SEQ, seq, sizeof(seq));
	frame_store32(p + FRAME_OFF_CRC, crc);
	return 0;
}
