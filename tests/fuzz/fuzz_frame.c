/*
 * fuzz_frame: arbitrary bytes through every decoder of protocol/frame.h.
 * A decode that returns FRAME_OK must describe a frame the encoders would
 * produce: iterating yields exactly record_count records inside the span,
 * and re-encoding an ACK gives the same bytes back.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/crc32c.h"
#include "protocol/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_records(const uint8_t *data, size_t size)
{
	struct frame_records rec;
	struct frame_record_iter iter;
	struct frame_record r;
	uint32_t count = 0;

	if (frame_records_decode(data, size, &rec) != FRAME_OK)
		return;
	frame_record_iter_init(&iter, &rec);
	while (frame_record_iter_next(&iter, &r)) {
		assert(r.key >= data && r.key + r.key_size <= data + size);
		assert(r.data >= data && r.data + r.data_size <= data + size);
		assert(frame_utf8_valid(r.key, r.key_size));
		count++;
	}
	assert(count == rec.record_count);
}

static void
check_ack(const uint8_t *data, size_t size)
{
	static struct frame_ack_run runs[FRAME_RECORDS_MAX];
	static uint8_t again[FRAME_ACK_SIZE_MAX];
	struct frame_ack ack;
	int n;

	if (frame_ack_decode(data, size, &ack) != FRAME_OK)
		return;
	for (uint16_t i = 0; i < ack.run_count; i++)
		frame_ack_run_get(&ack, i, &runs[i]);
	ack.runs = runs;
	n = frame_ack_encode(again, sizeof(again), &ack, ack.auth != NULL);
	assert(n == (int)size);
	/* The trailer is copied: only header, body and runs are compared. */
	assert(memcmp(again + 8, data + 8, size - 8 - (ack.auth != NULL ? FRAME_AUTH_SIZE : 0)) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t frame_size;
	uint32_t need;
	size_t off = 0;

	/* As a UDP datagram or TCP buffer: split, then decode each frame. */
	while (off < size && frame_next(data + off, size - off, &frame_size, &need) == FRAME_OK) {
		check_records(data + off, frame_size);
		check_ack(data + off, frame_size);
		off += frame_size;
	}
	/* And the whole input as one frame, CRC and all. */
	check_records(data, size);
	check_ack(data, size);

	/*
	 * Random bytes almost never carry a right CRC and frame_size, which would
	 * keep the fuzzer at the door: fix both in a copy so it explores the body.
	 */
	static uint8_t fixed[FRAME_SIZE_MAX];
	uint32_t size32 = (uint32_t)size;
	uint32_t crc;

	if (size < FRAME_HEADER_SIZE || size > sizeof(fixed))
		return 0;
	memcpy(fixed, data, size);
	memcpy(fixed + 8, &size32, 4);
	crc = crc32c(0, fixed + 8, size - 8);
	memcpy(fixed + 4, &crc, 4);
	check_records(fixed, size);
	check_ack(fixed, size);
	return 0;
}
