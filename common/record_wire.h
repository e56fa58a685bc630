/*
 * record_wire.h - the encoding of one record as the log stores it, shared by
 * the log's batches (nvme-log/) and shard-grouped frames (protocol/, type 4),
 * whose record block a worker appends to a log batch with one copy.
 *
 *   FIELD               ENCODING (varints are LEB128, as in protobuf)
 *   arrival_delta       zigzag varint: arrival_ns - the batch's base_arrival_ns
 *                       (always the one byte 0x00 in a grouped frame: the record
 *                       arrives with its batch)
 *   flags               1 byte: bit 0 = explicit hash key present; others zero
 *   partition_key_size  varint, 1 .. SLUICE_PARTITION_KEY_SIZE_MAX
 *   explicit_hash_key   16 bytes big-endian, only with flag bit 0
 *   partition_key       partition_key_size bytes
 *   data_size           varint, 0 .. SLUICE_RECORD_DATA_SIZE_MAX (frames), or up to
 *                       SLUICE_RECORD_DATA_SIZE_LARGE_MAX in the log (UpdateMaxRecordSize)
 *   data                data_size bytes
 *
 * Pure functions over caller spans: no allocation, no I/O.
 */
#ifndef SLUICE_RECORD_WIRE_H
#define SLUICE_RECORD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_WIRE_F_HASH_KEY 0x1u
#define RECORD_WIRE_HASH_KEY_SIZE 16u
/* Largest overhead of one record: delta, flags, key size, hash key, data size. */
#define RECORD_WIRE_OVERHEAD_MAX (10u + 1u + 3u + 16u + 5u)

/* One record as read from (or to be written into) the encoding. */
struct record_wire {
	int64_t arrival_delta_ns;
	const uint8_t *partition_key;
	uint16_t partition_key_size;
	const uint8_t *explicit_hash_key;  /* 16 bytes big-endian, or NULL. */
	const uint8_t *data;
	uint32_t data_size;
};

/* Bytes the record takes. Sizes must be within the limits. */
uint32_t record_wire_size(const struct record_wire *record);

/* Bytes the record takes at most, whatever its arrival delta. */
uint32_t record_wire_size_max(uint16_t partition_key_size, bool has_hash_key, uint32_t data_size);

/* Writes the record at pos (record_wire_size() bytes of room); returns the end. */
uint8_t *record_wire_put(uint8_t *pos, const struct record_wire *record);

/*
 * Reads the record at pos, never past end. Returns the position after it, or
 * NULL when the bytes are not one well-formed record (truncated, a varint
 * overflows, undefined flags, key size 0 or above the limit, data above the
 * limit: SLUICE_RECORD_DATA_SIZE_MAX). Pointers in *out point into the span.
 */
const uint8_t *record_wire_next(const uint8_t *pos, const uint8_t *end, struct record_wire *out);
/* The same with data up to `data_size_max` (the log: SLUICE_RECORD_DATA_SIZE_LARGE_MAX). */
const uint8_t *record_wire_next_max(const uint8_t *pos, const uint8_t *end,
				    uint32_t data_size_max, struct record_wire *out);

#endif /* SLUICE_RECORD_WIRE_H */
