/*
 * frame.c - framing: finding frames in a byte stream, checking the common
 * header and the CRC. Everything type-specific lives in frame_records.c and
 * frame_ack.c.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/crc32c.h"
#include "protocol/frame.h"
#include "protocol/frame_int.h"

static_assert(FRAME_SIZE_MAX <= UINT32_MAX, "frame_size is a u32");
static_assert(FRAME_RECORDS_MAX < FRAME_RECORD_INDEX_NONE, "0xFFFF is no record");
static_assert(FRAME_RECORDS_MAX <= UINT16_MAX, "record_count is a u16");
static_assert(FRAME_ACK_SIZE_MAX <= FRAME_SIZE_MAX, "an ACK is a frame");
static_assert(SLUICE_PARTITION_KEY_SIZE_MAX == 256, "key_size_m1 is one byte");
static_assert(SLUICE_STREAM_NAME_SIZE_MAX <= UINT8_MAX, "stream_name_size is one byte");

static const uint8_t magic_bytes[4] = { 'S', 'L', 'U', 'C' };

enum frame_err
frame_next(const void *bytes, size_t size, uint32_t *frame_size_out, uint32_t *need_size_out)
{
	const uint8_t *p = bytes;
	uint32_t frame_size;

	*frame_size_out = 0;
	*need_size_out = 0;
	for (size_t i = 0; i < sizeof(magic_bytes) && i < size; i++)
		if (p[i] != magic_bytes[i])
			return FRAME_ERR_MAGIC;
	if (size < FRAME_HEADER_SIZE) {
		*need_size_out = FRAME_HEADER_SIZE - (uint32_t)size;
		return FRAME_ERR_TRUNCATED;
	}
	if (p[FRAME_OFF_VERSION] != FRAME_VERSION)
		return FRAME_ERR_VERSION;
	frame_size = frame_load32(p + FRAME_OFF_SIZE);
	if (frame_size < FRAME_HEADER_SIZE || frame_size > FRAME_SIZE_MAX)
		return FRAME_ERR_FRAME_SIZE;
	if (frame_size > size) {
		*need_size_out = frame_size - (uint32_t)size;
		return FRAME_ERR_TRUNCATED;
	}
	*frame_size_out = frame_size;
	return FRAME_OK;
}

/* Flag bits each type may carry. */
static bool
header_flags_valid(uint8_t type, uint16_t flags)
{
	uint16_t mode = flags & FRAME_F_ACK_MODE_MASK;

	switch (type) {
	case FRAME_TYPE_RECORDS:
	case FRAME_TYPE_SHARD_RECORDS:
		return (flags & ~(FRAME_F_ACK_MODE_MASK | FRAME_F_AUTH)) == 0 &&
		       mode <= FRAME_ACK_DURABLE;
	case FRAME_TYPE_ACK:
		if ((flags & ~(FRAME_F_ACK_MODE_MASK | FRAME_F_AUTH | FRAME_F_DUPLICATE |
			       FRAME_F_NO_DETAIL)) != 0)
			return false;
		if ((flags & FRAME_F_NO_DETAIL) != 0 && mode != FRAME_ACK_DURABLE)
			return false;
		return mode == FRAME_ACK_RECEIVED || mode == FRAME_ACK_DURABLE;
	case FRAME_TYPE_NACK:
		return (flags & ~FRAME_F_AUTH) == 0;
	default:
		return false;
	}
}

enum frame_err
frame_header_decode(const void *bytes, size_t size, struct frame_header *out)
{
	const uint8_t *p = bytes;
	uint32_t frame_size;
	uint32_t need;
	enum frame_err err;

	err = frame_next(bytes, size, &frame_size, &need);
	if (err != FRAME_OK)
		return err;
	if (frame_size != size)
		return FRAME_ERR_TRAILING;
	out->frame_size = frame_size;
	out->version = p[FRAME_OFF_VERSION];
	out->type = p[FRAME_OFF_TYPE];
	out->flags = frame_load16(p + FRAME_OFF_FLAGS);
	if (out->type < FRAME_TYPE_RECORDS || out->type > FRAME_TYPE_SHARD_RECORDS)
		return FRAME_ERR_TYPE;
	/*
	 * The CRC before the flags: a frame whose bytes are intact but whose
	 * flags break a rule is a producer's mistake and can be answered
	 * (docs/PROTOCOL.md section 4); a damaged one cannot be trusted at all.
	 */
	if (crc32c(0, p + FRAME_OFF_SIZE, frame_size - FRAME_OFF_SIZE) !=
	    frame_load32(p + FRAME_OFF_CRC))
		return FRAME_ERR_CRC;
	if (!header_flags_valid(out->type, out->flags))
		return FRAME_ERR_FLAGS;
	if ((out->flags & FRAME_F_AUTH) != 0 && frame_size < FRAME_HEADER_SIZE + FRAME_AUTH_SIZE)
		return FRAME_ERR_FRAME_SIZE;
	return FRAME_OK;
}

void
frame_seal(uint8_t *frame, uint32_t frame_size)
{
	assert(frame_size >= FRAME_HEADER_SIZE);
	assert(frame_load32(frame + FRAME_OFF_SIZE) == frame_size);
	frame_store32(frame + FRAME_OFF_CRC,
		      crc32c(0, frame + FRAME_OFF_SIZE, frame_size - FRAME_OFF_SIZE));
}
