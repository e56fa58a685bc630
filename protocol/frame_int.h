/*
 * frame_int.h - little-endian loads and stores shared by the protocol's .c
 * files. Private to protocol/ (tests may include it).
 */
#ifndef SLUICE_FRAME_INT_H
#define SLUICE_FRAME_INT_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "loads below assume a little-endian host");

static inline uint16_t
frame_load16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
frame_load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
frame_load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void
frame_store16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
frame_store32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
frame_store64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Field offsets of the tables in frame.h. */
enum {
	FRAME_OFF_MAGIC = 0,
	FRAME_OFF_CRC = 4,
	FRAME_OFF_SIZE = 8,
	FRAME_OFF_VERSION = 12,
	FRAME_OFF_TYPE = 13,
	FRAME_OFF_FLAGS = 14,
	FRAME_OFF_PRODUCER_ID = 16,
	FRAME_OFF_BATCH_SEQ = 24,
	FRAME_OFF_EPOCH = 32,
	FRAME_OFF_RECORD_COUNT = 36,
	FRAME_OFF_NAME_SIZE = 38,
	FRAME_OFF_RECORDS_RESERVED = 39,
	FRAME_OFF_NAME = 40,
	FRAME_OFF_STATUS = 36,
	FRAME_OFF_ACK_RESERVED = 37,
	FRAME_OFF_ACK_RECORD_COUNT = 38,
	FRAME_OFF_RECORD_INDEX = 40,
	FRAME_OFF_RUN_COUNT = 42,
	FRAME_OFF_CREDIT = 44,
	FRAME_OFF_RETRY_AFTER = 48,
	FRAME_OFF_ACK_RESERVED2 = 52,
	FRAME_OFF_RUNS = 56,
};

/* Writes the CRC of a frame whose other bytes are final. */
void frame_seal(uint8_t *frame, uint32_t frame_size);

#endif /* SLUICE_FRAME_INT_H */
