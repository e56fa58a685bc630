/*
 * log_format.c - encoding and checking of segment headers, batches and
 * records (layouts are tabled in log_format.h and docs/LOG_FORMAT.md).
 * Pure functions: no I/O, no allocation.
 */
#include <errno.h>
#include <string.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/limits.h"
#include "common/record_wire.h"
#include "nvme-log/log_format.h"

uint32_t
log_record_size_max(uint16_t partition_key_size, bool has_hash_key, uint32_t data_size)
{
	return record_wire_size_max(partition_key_size, has_hash_key, data_size);
}

int
log_record_validate(const struct log_record_in *record)
{
	if (record->partition_key == NULL || record->partition_key_size == 0 ||
	    record->partition_key_size > SLUICE_PARTITION_KEY_SIZE_MAX)
		return -EINVAL;
	if (record->data_size > SLUICE_RECORD_DATA_SIZE_LARGE_MAX)
		return -EINVAL;
	if (record->data == NULL && record->data_size != 0)
		return -EINVAL;
	return 0;
}

int
log_record_encode(uint8_t *buf, uint32_t room, uint64_t base_arrival_ns,
		  const struct log_record_in *record)
{
	struct record_wire r = {
		.arrival_delta_ns = (int64_t)(record->arrival_ns - base_arrival_ns),
		.partition_key = record->partition_key,
		.partition_key_size = record->partition_key_size,
		.explicit_hash_key = record->explicit_hash_key,
		.data = record->data,
		.data_size = record->data_size,
	};
	uint32_t size = record_wire_size(&r);
	uint8_t *end;

	assert(log_record_validate(record) == 0);
	if (size > room)
		return -ENOSPC;
	end = record_wire_put(buf, &r);
	assert((uint32_t)(end - buf) == size);
	return (int)size;
}

void
log_batch_seal_body(uint8_t *batch, uint32_t size, uint32_t record_count,
		    uint64_t base_arrival_ns, uint32_t producer_flags)
{
	struct log_batch_header *header = (struct log_batch_header *)(void *)batch;

	assert((producer_flags & ~LOG_BATCH_F_PRODUCER) == 0);
	assert(size >= LOG_BATCH_HEADER_SIZE);
	header->flags = producer_flags;
	assert(size <= LOG_BATCH_SIZE_MAX);
	header->size = size;
	header->record_count = record_count;
	header->base_arrival_ns = base_arrival_ns;
	header->body_crc = crc32c(0, batch + 48, size - 48);
}

void
log_batch_seal_header(uint8_t *batch, uint64_t base_seq, uint64_t shard_id,
		      uint64_t commit_id, uint64_t segment_no, uint32_t durable_lag, uint32_t flags)
{
	struct log_batch_header *header = (struct log_batch_header *)(void *)batch;

	assert((flags & ~LOG_BATCH_F_KNOWN & ~LOG_BATCH_F_PRODUCER) == 0);
	header->magic = LOG_BATCH_MAGIC;
	header->base_seq = base_seq;
	header->shard_id = shard_id;
	header->commit_id = commit_id;
	header->segment_no = (uint32_t)segment_no;
	header->durable_lag = durable_lag;
	header->flags = flags | (header->flags & LOG_BATCH_F_PRODUCER);
	header->header_crc = crc32c(0, batch + 8, LOG_BATCH_HEADER_SIZE - 8);
}

uint32_t
log_batch_records_end(const struct log_batch_header *header)
{
	if ((header->flags & LOG_BATCH_F_ENCRYPTED) != 0)
		return header->size - LOG_BATCH_TRAILER_SIZE;
	return header->size;
}

/* Walks every record once: framing must fit the body exactly. */
int
log_batch_check_records(const uint8_t *buf)
{
	struct log_record_iter iter;
	struct log_record_out record;
	int rc;

	log_record_iter_init(&iter, buf);
	while ((rc = log_record_iter_next(&iter, &record)) == 1)
		;
	if (rc < 0 || iter.pos != iter.end)
		return -EBADMSG;
	return 0;
}

int
log_batch_check(const uint8_t *buf, size_t avail, struct log_batch_header *header_out)
{
	struct log_batch_header header;

	if (avail < 4)
		return -ENODATA;
	memcpy(&header.magic, buf, 4);
	if (header.magic != LOG_BATCH_MAGIC)
		return -ENODATA;
	if (avail < LOG_BATCH_HEADER_SIZE)
		return -EBADMSG;
	memcpy(&header, buf, sizeof(header));
	if (crc32c(0, buf + 8, LOG_BATCH_HEADER_SIZE - 8) != header.header_crc)
		return -EBADMSG;
	if (header.size < LOG_BATCH_HEADER_SIZE || header.size > LOG_BATCH_SIZE_MAX ||
	    header.size > avail)
		return -EBADMSG;
	if ((header.flags & ~LOG_BATCH_F_KNOWN) != 0)
		return -EBADMSG;
	if (crc32c(0, buf + 48, header.size - 48) != header.body_crc)
		return -EBADMSG;
	if ((header.flags & LOG_BATCH_F_ENCRYPTED) != 0 &&
	    header.size < LOG_BATCH_HEADER_SIZE + LOG_BATCH_TRAILER_SIZE)
		return -EBADMSG;
	if (header.record_count == 0 ||
	    header.record_count > log_batch_records_end(&header) - LOG_BATCH_HEADER_SIZE)
		return -EBADMSG;
	/* Encrypted records are checked once decrypted (log_batch_decrypt). */
	if ((header.flags & LOG_BATCH_F_ENCRYPTED) == 0 && log_batch_check_records(buf) != 0)
		return -EBADMSG;
	*header_out = header;
	return 0;
}

void
log_record_iter_init(struct log_record_iter *iter, const uint8_t *batch)
{
	struct log_batch_header header;

	memcpy(&header, batch, sizeof(header));
	iter->pos = batch + LOG_BATCH_HEADER_SIZE;
	iter->end = batch + log_batch_records_end(&header);
	iter->seq = header.base_seq;
	iter->base_arrival_ns = header.base_arrival_ns;
	iter->left = header.record_count;
	iter->encrypted = (header.flags & LOG_BATCH_F_ENCRYPTED) != 0;
}

int
log_record_iter_next(struct log_record_iter *iter, struct log_record_out *out)
{
	struct record_wire r;
	const uint8_t *next;

	if (iter->left == 0)
		return 0;
	next = record_wire_next_max(iter->pos, iter->end, SLUICE_RECORD_DATA_SIZE_LARGE_MAX, &r);
	if (next == NULL)
		return -EBADMSG;
	out->seq = iter->seq;
	out->arrival_ns = iter->base_arrival_ns + (uint64_t)r.arrival_delta_ns;
	out->partition_key = r.partition_key;
	out->partition_key_size = r.partition_key_size;
	out->has_explicit_hash_key = r.explicit_hash_key != NULL;
	if (out->has_explicit_hash_key)
		memcpy(out->explicit_hash_key, r.explicit_hash_key, 16);
	else
		memset(out->explicit_hash_key, 0, 16);
	out->data = r.data;
	out->data_size = r.data_size;
	out->encrypted = iter->encrypted;
	iter->pos = next;
	iter->seq++;
	iter->left--;
	return 1;
}

void
log_segment_header_encode(uint8_t *block, uint64_t log_id, uint64_t segment_no,
			  uint64_t commit_first, uint64_t segment_size, uint64_t created_ns)
{
	struct log_segment_header header = {
		.magic = LOG_SEGMENT_MAGIC,
		.version = LOG_FORMAT_VERSION,
		.log_id = log_id,
		.segment_no = segment_no,
		.commit_first = commit_first,
		.segment_size = segment_size,
		.created_ns = created_ns,
	};

	memset(block, 0, LOG_BLOCK_SIZE);
	memcpy(block, &header, sizeof(header));
	header.crc32c = crc32c(0, block + 12, LOG_SEGMENT_HEADER_SIZE - 12);
	memcpy(block, &header, sizeof(header));
}

int
log_segment_header_decode(const uint8_t *block, struct log_segment_header *out)
{
	struct log_segment_header header;

	memcpy(&header, block, sizeof(header));
	if (header.magic != LOG_SEGMENT_MAGIC)
		return -ENODATA;
	if (crc32c(0, block + 12, LOG_SEGMENT_HEADER_SIZE - 12) != header.crc32c)
		return -EBADMSG;
	if (header.version != LOG_FORMAT_VERSION)
		return -EBADMSG;
	*out = header;
	return 0;
}
