/*
 * dp_ksplit: the kernel backend's TCP frame splitter. A byte stream cut at
 * any point comes out as the same frames; a frame whole in the fed bytes is
 * handed over in place, one that spans feeds is assembled; a stream that is
 * not framed, or a frame larger than an assembly buffer, is an error (the
 * connection closes); back-pressure (can_take says no) and an empty
 * assembly pool stop the splitter where it is, and it resumes there. Fed
 * bytes sit flush against a guard page: reading past them crashes the test.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dataplane/dp_ksplit.h"
#include "protocol/frame.h"
#include "tests/support/guard_buf.h"

#define ASM_SIZE 4096u
#define FRAMES_MAX 64

struct sink {
	bool take;                  /* can_take's answer. */
	bool asm_lent;
	bool asm_free;              /* The one assembly buffer is free. */
	uint8_t asm_buf[ASM_SIZE];
	uint32_t count;
	uint32_t assembled;
	uint32_t sizes[FRAMES_MAX];
	uint8_t first[FRAMES_MAX];  /* Each frame's first record byte (its fill). */
	uint64_t seqs[FRAMES_MAX];
};

static bool
sink_can_take(void *ctx)
{
	return ((struct sink *)ctx)->take;
}

static void
sink_frame(void *ctx, const uint8_t *frame, uint32_t size, bool assembled)
{
	struct sink *s = ctx;
	struct frame_records fr;

	cr_assert_lt(s->count, FRAMES_MAX);
	cr_assert_eq(frame_records_decode(frame, size, &fr), FRAME_OK, "a whole, intact frame");
	s->sizes[s->count] = size;
	s->seqs[s->count] = fr.batch_seq;
	s->count++;
	s->assembled += assembled;
}

static uint8_t *
sink_take_asm(void *ctx)
{
	struct sink *s = ctx;

	if (!s->asm_free)
		return NULL;
	s->asm_free = false;
	s->asm_lent = true;
	return s->asm_buf;
}

static void
sink_put_asm(void *ctx, uint8_t *buffer)
{
	struct sink *s = ctx;

	cr_assert_eq(buffer, s->asm_buf);
	cr_assert(s->asm_lent);
	s->asm_lent = false;
	s->asm_free = true;
}

static const struct dp_ksplit_ops ops = {
	.can_take = sink_can_take,
	.frame = sink_frame,
	.take_asm = sink_take_asm,
	.put_asm = sink_put_asm,
};

static struct sink sink;
static struct dp_ksplit split;

static void
setup(void)
{
	memset(&sink, 0, sizeof(sink));
	sink.take = true;
	sink.asm_free = true;
	dp_ksplit_init(&split, ASM_SIZE);
}

/* A RECORDS frame with `n` records of `size` bytes; returns its size. */
static uint32_t
make_frame(uint8_t *buf, uint32_t capacity, uint64_t seq, uint32_t n, uint32_t size)
{
	struct frame_batch_params p = {
		.producer_id = 7, .batch_seq = seq, .ack_mode = FRAME_ACK_DURABLE,
		.stream_name = "s", .stream_name_size = 1,
	};
	struct frame_writer w;
	uint8_t data[2048];
	int r;

	memset(data, (int)seq, sizeof(data));
	cr_assert_eq(frame_writer_begin(&w, buf, capacity, &p), 0);
	for (uint32_t i = 0; i < n; i++) {
		struct frame_record rec = {
			.key = (const uint8_t *)"k", .key_size = 1, .data = data, .data_size = size,
		};

		cr_assert_eq(frame_writer_add(&w, &rec), 0);
	}
	r = frame_writer_finish(&w);
	cr_assert_gt(r, 0);
	return (uint32_t)r;
}

/* Feeds bytes[0 .. size) from a guard page; returns what was consumed. */
static uint32_t
feed(const uint8_t *bytes, uint32_t size, int rc_want)
{
	uint32_t used = UINT32_MAX;
	const uint8_t *placed = size > 0 ? guard_buf_place(bytes, size) : NULL;

	cr_assert_eq(dp_ksplit_feed(&split, placed, size, &ops, &sink, &used), rc_want);
	return used;
}

TestSuite(dp_ksplit, .init = setup);

Test(dp_ksplit, frames_whole_in_one_receive_are_handed_in_place)
{
	uint8_t bytes[3000];
	uint32_t a = make_frame(bytes, sizeof(bytes), 1, 3, 100);
	uint32_t b = make_frame(bytes + a, sizeof(bytes) - a, 2, 1, 10);

	cr_assert_eq(feed(bytes, a + b, 0), a + b);
	cr_assert_eq(sink.count, 2);
	cr_assert_eq(sink.assembled, 0);
	cr_assert_eq(sink.seqs[0], 1);
	cr_assert_eq(sink.seqs[1], 2);
	cr_assert_not(dp_ksplit_is_partial(&split));
}

/* Every cut of two frames into two receives: the same two frames, nothing lost or doubled. */
Test(dp_ksplit, frame_spanning_receives_at_every_cut)
{
	uint8_t bytes[3000];
	uint32_t a = make_frame(bytes, sizeof(bytes), 1, 2, 300);
	uint32_t total = a + make_frame(bytes + a, sizeof(bytes) - a, 2, 2, 200);

	for (uint32_t cut = 0; cut <= total; cut++) {
		setup();
		cr_assert_eq(feed(bytes, cut, 0), cut, "cut %u", cut);
		cr_assert_eq(feed(bytes + cut, total - cut, 0), total - cut, "cut %u", cut);
		cr_assert_eq(sink.count, 2, "cut %u: %u frames", cut, sink.count);
		cr_assert_eq(sink.seqs[0], 1);
		cr_assert_eq(sink.seqs[1], 2);
		cr_assert_not(sink.asm_lent, "cut %u: the assembly buffer is given back", cut);
	}
}

Test(dp_ksplit, frame_fed_one_byte_at_a_time)
{
	uint8_t bytes[1000];
	uint32_t size = make_frame(bytes, sizeof(bytes), 5, 4, 50);

	for (uint32_t i = 0; i < size; i++) {
		cr_assert_eq(feed(bytes + i, 1, 0), 1);
		cr_assert_eq(sink.count, i + 1 == size ? 1u : 0u);
	}
	cr_assert_eq(sink.assembled, 1);
	cr_assert_eq(sink.sizes[0], size);
}

Test(dp_ksplit, framing_error_is_an_error)
{
	uint8_t bytes[1000];
	uint32_t size = make_frame(bytes, sizeof(bytes), 1, 1, 10);

	memcpy(bytes + size, "GET / HTTP/1.1\r\n", 16);
	/* The good frame goes through; the bytes after it are not a frame. */
	feed(bytes, size + 16, -EPROTO);
	cr_assert_eq(sink.count, 1);
	setup();
	feed((const uint8_t *)"X", 1, -EPROTO); /* A wrong first magic byte is enough. */
	setup();
	bytes[12] ^= 0xff; /* The version byte of the first frame, behind a valid magic. */
	feed(bytes, size, -EPROTO);
	cr_assert_eq(sink.count, 0);
}

Test(dp_ksplit, framing_error_in_an_assembled_frame)
{
	uint8_t bytes[1000];
	uint32_t size = make_frame(bytes, sizeof(bytes), 1, 1, 10);

	bytes[12] ^= 0xff; /* The version byte. */
	cr_assert_eq(feed(bytes, 3, 0), 3); /* The magic alone is a good beginning. */
	feed(bytes + 3, size - 3, -EPROTO);
	dp_ksplit_reset(&split, &ops, &sink);
	cr_assert_not(sink.asm_lent);
}

Test(dp_ksplit, frame_larger_than_assembly_is_refused)
{
	static uint8_t bytes[ASM_SIZE * 2];
	uint32_t size = make_frame(bytes, sizeof(bytes), 1, 3, 2000);

	cr_assert_gt(size, ASM_SIZE);
	feed(bytes, 100, -EMSGSIZE);  /* Known from the header, before any of it is kept. */
	cr_assert_eq(sink.count, 0);
	setup();
	feed(bytes, size, -EMSGSIZE); /* Whole in one receive: the same bound. */
	cr_assert_eq(sink.count, 0);
}

Test(dp_ksplit, back_pressure_stops_before_a_frame_and_resumes_there)
{
	uint8_t bytes[3000];
	uint32_t a = make_frame(bytes, sizeof(bytes), 1, 1, 100);
	uint32_t b = make_frame(bytes + a, sizeof(bytes) - a, 2, 1, 100);
	uint32_t used;

	sink.take = false;
	cr_assert_eq(feed(bytes, a + b, 0), 0, "nothing taken");
	sink.take = true;
	used = feed(bytes, a + b, 0);
	cr_assert_eq(used, a + b);
	cr_assert_eq(sink.count, 2);

	/* Pushed back after the first frame: the second waits in the caller's bytes. */
	setup();
	sink.take = true;
	cr_assert_eq(feed(bytes, a, 0), a);
	sink.take = false;
	cr_assert_eq(feed(bytes + a, b, 0), 0);
	cr_assert_eq(sink.count, 1);
}

Test(dp_ksplit, back_pressure_on_an_assembled_frame_keeps_it)
{
	uint8_t bytes[1000];
	uint32_t size = make_frame(bytes, sizeof(bytes), 3, 2, 100);

	cr_assert_eq(feed(bytes, 10, 0), 10);
	cr_assert_not(dp_ksplit_holds_frame(&split), "a beginning is not a frame");
	sink.take = false;
	cr_assert_eq(feed(bytes + 10, size - 10, 0), size - 10, "copied, not taken");
	cr_assert_eq(sink.count, 0);
	cr_assert(dp_ksplit_is_partial(&split));
	cr_assert(dp_ksplit_holds_frame(&split), "whole, waiting for room");
	cr_assert_eq(feed(NULL, 0, 0), 0, "still pushed back");
	cr_assert_eq(sink.count, 0);
	sink.take = true;
	cr_assert_eq(feed(NULL, 0, 0), 0);
	cr_assert_eq(sink.count, 1);
	cr_assert_eq(sink.seqs[0], 3);
	cr_assert_not(dp_ksplit_is_partial(&split));
	cr_assert_not(dp_ksplit_holds_frame(&split));
	cr_assert_not(sink.asm_lent);
}

Test(dp_ksplit, no_assembly_buffer_stops_at_the_partial_tail)
{
	uint8_t bytes[3000];
	uint32_t a = make_frame(bytes, sizeof(bytes), 1, 1, 100);
	uint32_t b = make_frame(bytes + a, sizeof(bytes) - a, 2, 1, 100);

	sink.asm_free = false;
	cr_assert_eq(feed(bytes, a + 20, 0), a, "the whole frame goes, the tail waits");
	cr_assert_eq(sink.count, 1);
	sink.asm_free = true;
	cr_assert_eq(feed(bytes + a, 20, 0), 20);
	cr_assert_eq(feed(bytes + a + 20, b - 20, 0), b - 20);
	cr_assert_eq(sink.count, 2);
}
