/*
 * frame_stream: frame_next() splits a TCP byte stream cut at random points
 * (a frame across segments, many frames per segment) and a UDP datagram
 * holding several frames; it refuses garbage as soon as the header shows it.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/protocol/frame_fixture.h"
#include "tests/support/guard_buf.h"
#include "tests/support/seed.h"

enum { FRAMES = 50 };

static uint8_t stream[FRAMES * 600];
static uint32_t frame_sizes[FRAMES];

/* Builds FRAMES frames of both types back to back; returns the stream size. */
static size_t
stream_build(void)
{
	size_t size = 0;

	for (unsigned i = 0; i < FRAMES; i++) {
		int n;

		if (i % 3 == 2) {
			struct frame_ack ack = {
				.type = FRAME_TYPE_NACK, .status = FRAME_STATUS_THROTTLED,
				.batch_seq = i, .record_index = FRAME_RECORD_INDEX_NONE,
			};
			n = frame_ack_encode(stream + size, sizeof(stream) - size, &ack, false);
		} else {
			n = (int)fixture_records_frame(stream + size, sizeof(stream) - size,
						       i % 2 == 0);
		}
		cr_assert_gt(n, 0);
		frame_sizes[i] = (uint32_t)n;
		size += (size_t)n;
	}
	return size;
}

Test(frame_stream, reassembles_randomly_cut_segments)
{
	static uint8_t conn[4096];   /* A connection's receive buffer. */
	size_t total = stream_build();
	size_t held = 0;
	size_t sent = 0;
	unsigned frames = 0;
	struct seed_rng rng;
	uint64_t seed = seed_base();

	seed_rng_init(&rng, seed);
	while (sent < total) {
		size_t seg = 1 + seed_rng_below(&rng, 700);
		uint32_t frame_size;
		uint32_t need;

		if (seg > total - sent)
			seg = total - sent;
		memcpy(conn + held, stream + sent, seg);
		held += seg;
		sent += seg;
		for (;;) {
			enum frame_err err = frame_next(guard_buf_place(conn, held), held,
							&frame_size, &need);
			struct frame_header header;

			if (err == FRAME_ERR_TRUNCATED) {
				cr_assert_gt(need, 0);
				break;
			}
			cr_assert_eq(err, FRAME_OK, "seed %lu", (unsigned long)seed);
			cr_assert_eq(frame_size, frame_sizes[frames]);
			cr_assert_eq(frame_header_decode(conn, frame_size, &header), FRAME_OK);
			frames++;
			memmove(conn, conn + frame_size, held - frame_size);
			held -= frame_size;
		}
	}
	cr_assert_eq(frames, FRAMES, "seed %lu", (unsigned long)seed);
	cr_assert_eq(held, 0);
}

Test(frame_stream, splits_one_datagram_of_many_frames)
{
	size_t total = stream_build();
	const uint8_t *p = guard_buf_place(stream, total);
	size_t off = 0;
	unsigned frames = 0;

	while (off < total) {
		uint32_t frame_size;
		uint32_t need;

		cr_assert_eq(frame_next(p + off, total - off, &frame_size, &need), FRAME_OK);
		off += frame_size;
		frames++;
	}
	cr_assert_eq(frames, FRAMES);
	/* The same datagram cut short: the last frame is truncated (UDP drops it). */
	p = guard_buf_place(stream, total - 1);
	off = total - frame_sizes[FRAMES - 1];
	uint32_t frame_size;
	uint32_t need;

	cr_assert_eq(frame_next(p + off, frame_sizes[FRAMES - 1] - 1, &frame_size, &need),
		     FRAME_ERR_TRUNCATED);
	cr_assert_eq(need, 1);
}

Test(frame_stream, refuses_garbage_early)
{
	uint8_t bytes[FRAME_HEADER_SIZE];
	uint32_t frame_size;
	uint32_t need;

	fixture_records_frame(stream, sizeof(stream), false);
	memcpy(bytes, stream, sizeof(bytes));
	cr_assert_eq(frame_next(guard_buf_place("G", 1), 1, &frame_size, &need), FRAME_ERR_MAGIC);
	cr_assert_eq(frame_next(guard_buf_place("SLUX", 4), 4, &frame_size, &need),
		     FRAME_ERR_MAGIC);
	cr_assert_eq(frame_next(guard_buf_place("SLU", 3), 3, &frame_size, &need),
		     FRAME_ERR_TRUNCATED);
	cr_assert_eq(need, FRAME_HEADER_SIZE - 3);
	cr_assert_eq(frame_next(guard_buf_place("", 0), 0, &frame_size, &need),
		     FRAME_ERR_TRUNCATED);
	cr_assert_eq(need, FRAME_HEADER_SIZE);
	bytes[FRAME_OFF_VERSION] = 2;
	cr_assert_eq(frame_next(guard_buf_place(bytes, sizeof(bytes)), sizeof(bytes), &frame_size,
				&need), FRAME_ERR_VERSION);
	bytes[FRAME_OFF_VERSION] = FRAME_VERSION;
	frame_store32(bytes + FRAME_OFF_SIZE, FRAME_SIZE_MAX + 1);
	cr_assert_eq(frame_next(guard_buf_place(bytes, sizeof(bytes)), sizeof(bytes), &frame_size,
				&need), FRAME_ERR_FRAME_SIZE);
	frame_store32(bytes + FRAME_OFF_SIZE, FRAME_SIZE_MAX);
	cr_assert_eq(frame_next(guard_buf_place(bytes, sizeof(bytes)), sizeof(bytes), &frame_size,
				&need), FRAME_ERR_TRUNCATED);
	cr_assert_eq(need, FRAME_SIZE_MAX - FRAME_HEADER_SIZE);
}
