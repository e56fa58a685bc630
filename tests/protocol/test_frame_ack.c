/*
 * frame_ack: ACK and NACK frames round trip; the encoder refuses what the
 * decoder would refuse; truncations, bit flips and lying fields are refused.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/support/guard_buf.h"

static uint8_t buf[FRAME_ACK_SIZE_MAX];

static const struct frame_ack_run runs3[] = {
	{ .seq_first = 1000, .shard_index = 0, .count = 2 },
	{ .seq_first = 77, .shard_index = 5, .count = 1 },
	{ .seq_first = UINT64_MAX - 1, .shard_index = 0xFFFFFFFFu, .count = 2 },
};

static struct frame_ack
durable_ack(void)
{
	struct frame_ack ack = {
		.type = FRAME_TYPE_ACK,
		.status = FRAME_STATUS_OK,
		.flags = FRAME_ACK_DURABLE,
		.producer_id = 0xAABBCCDDEEFF0011ull,
		.batch_seq = 9,
		.producer_epoch = 2,
		.record_count = 5,
		.record_index = FRAME_RECORD_INDEX_NONE,
		.run_count = 3,
		.runs = runs3,
		.credit_size = 65536,
	};
	return ack;
}

static enum frame_err
decode_guarded(size_t size, struct frame_ack *out)
{
	return frame_ack_decode(guard_buf_place(buf, size), size, out);
}

Test(frame_ack, durable_ack_round_trips)
{
	struct frame_ack ack = durable_ack();
	struct frame_ack got;
	int size = frame_ack_encode(buf, sizeof(buf), &ack, false);

	cr_assert_eq(size, (int)(FRAME_ACK_HEADER_SIZE + 3 * FRAME_ACK_RUN_SIZE));
	cr_assert_eq(decode_guarded((size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.type, FRAME_TYPE_ACK);
	cr_assert_eq(got.flags, FRAME_ACK_DURABLE);
	cr_assert_eq(got.producer_id, ack.producer_id);
	cr_assert_eq(got.batch_seq, 9);
	cr_assert_eq(got.producer_epoch, 2);
	cr_assert_eq(got.record_count, 5);
	cr_assert_eq(got.credit_size, 65536);
	cr_assert_eq(got.run_count, 3);
	for (uint16_t i = 0; i < 3; i++) {
		struct frame_ack_run run;

		frame_ack_run_get(&got, i, &run);
		cr_assert_eq(run.seq_first, runs3[i].seq_first);
		cr_assert_eq(run.shard_index, runs3[i].shard_index);
		cr_assert_eq(run.count, runs3[i].count);
	}
}

Test(frame_ack, nack_and_received_ack_round_trip)
{
	struct frame_ack nack = {
		.type = FRAME_TYPE_NACK, .status = FRAME_STATUS_THROTTLED, .producer_id = 1,
		.batch_seq = 2, .record_count = 3, .record_index = FRAME_RECORD_INDEX_NONE,
		.retry_after_ms = 250, .credit_size = 0,
	};
	struct frame_ack recv = {
		.type = FRAME_TYPE_ACK, .status = FRAME_STATUS_OK, .flags = FRAME_ACK_RECEIVED,
		.record_count = 3, .record_index = FRAME_RECORD_INDEX_NONE,
		.credit_size = FRAME_CREDIT_UNLIMITED,
	};
	struct frame_ack got;
	int size;

	size = frame_ack_encode(buf, sizeof(buf), &nack, true);
	cr_assert_eq(size, (int)(FRAME_ACK_HEADER_SIZE + FRAME_AUTH_SIZE));
	cr_assert_eq(decode_guarded((size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.type, FRAME_TYPE_NACK);
	cr_assert_eq(got.status, FRAME_STATUS_THROTTLED);
	cr_assert_eq(got.retry_after_ms, 250);
	cr_assert_not_null(got.auth);
	cr_assert(frame_status_retryable(got.status));

	size = frame_ack_encode(buf, sizeof(buf), &recv, false);
	cr_assert_eq(decode_guarded((size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.flags, FRAME_ACK_RECEIVED);
	cr_assert_eq(got.run_count, 0);
	cr_assert_eq(got.credit_size, FRAME_CREDIT_UNLIMITED);
}

Test(frame_ack, encoder_refuses_broken_fields)
{
	struct frame_ack ack;
	struct frame_ack_run bad[2] = {
		{ .seq_first = 1, .count = 0 },
		{ .seq_first = UINT64_MAX, .count = 2 },
	};

	ack = durable_ack();
	ack.record_count = 6;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL, "runs sum to 5");
	ack = durable_ack();
	ack.status = FRAME_STATUS_INTERNAL;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL);
	ack = durable_ack();
	ack.type = FRAME_TYPE_NACK;
	ack.status = FRAME_STATUS_OK;
	ack.flags = 0;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL);
	ack.status = FRAME_STATUS_INTERNAL;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL, "NACK with runs");
	ack.run_count = 0;
	ack.record_index = 5;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL, "index 5 of 5");
	ack.record_index = 4;
	cr_assert_gt(frame_ack_encode(buf, sizeof(buf), &ack, false), 0);
	ack.status = FRAME_STATUS_COUNT_;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL);
	ack = durable_ack();
	ack.runs = bad;
	ack.run_count = 1;
	ack.record_count = 0;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL, "empty run");
	ack.runs = bad + 1;
	ack.record_count = 2;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL, "seq overflow");
	ack = durable_ack();
	ack.flags = FRAME_ACK_RECEIVED | FRAME_F_NO_DETAIL;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL);
	ack.flags = FRAME_ACK_NONE;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false), -EINVAL);
	ack = durable_ack();
	cr_assert_eq(frame_ack_encode(buf, FRAME_ACK_HEADER_SIZE + 3 * FRAME_ACK_RUN_SIZE - 1,
				      &ack, false), -ENOSPC);
}

Test(frame_ack, largest_ack_fits_ack_size_max)
{
	static struct frame_ack_run runs[FRAME_RECORDS_MAX];
	struct frame_ack ack = durable_ack();
	struct frame_ack got;
	int size;

	for (unsigned i = 0; i < FRAME_RECORDS_MAX; i++)
		runs[i] = (struct frame_ack_run){ .seq_first = i * 7, .shard_index = i, .count = 1 };
	ack.runs = runs;
	ack.run_count = FRAME_RECORDS_MAX;
	ack.record_count = FRAME_RECORDS_MAX;
	size = frame_ack_encode(buf, sizeof(buf), &ack, true);
	cr_assert_eq(size, (int)FRAME_ACK_SIZE_MAX);
	cr_assert_eq(decode_guarded((size_t)size, &got), FRAME_OK);
}

Test(frame_ack, refuses_every_truncation_and_flipped_bit)
{
	struct frame_ack ack = durable_ack();
	struct frame_ack got;
	int size = frame_ack_encode(buf, sizeof(buf), &ack, true);

	for (int cut = 0; cut < size; cut++)
		cr_assert_eq(decode_guarded((size_t)cut, &got), FRAME_ERR_TRUNCATED, "cut %d", cut);
	for (int bit = 0; bit < size * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(decode_guarded((size_t)size, &got), FRAME_OK, "bit %d", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(decode_guarded((size_t)size, &got), FRAME_OK);
}

static void
expect_patched(uint32_t offset, const void *value, size_t value_size, enum frame_err want)
{
	struct frame_ack ack = durable_ack();
	struct frame_ack got;
	int size = frame_ack_encode(buf, sizeof(buf), &ack, false);
	enum frame_err err;

	memcpy(buf + offset, value, value_size);
	frame_seal(buf, (uint32_t)size);
	err = decode_guarded((size_t)size, &got);
	cr_assert_eq(err, want, "offset %u: got %s", offset, frame_err_str(err));
}

Test(frame_ack, refuses_lying_fields)
{
	uint16_t u16;
	uint8_t u8;

	u16 = 2;
	expect_patched(FRAME_OFF_RUN_COUNT, &u16, 2, FRAME_ERR_BODY_SIZE);
	u16 = 4;
	expect_patched(FRAME_OFF_RUN_COUNT, &u16, 2, FRAME_ERR_BODY_SIZE);
	u16 = 0xFFFF;
	expect_patched(FRAME_OFF_RUN_COUNT, &u16, 2, FRAME_ERR_BODY_SIZE);
	u16 = 4;
	expect_patched(FRAME_OFF_ACK_RECORD_COUNT, &u16, 2, FRAME_ERR_RUNS);
	u16 = FRAME_RECORDS_MAX + 1;
	expect_patched(FRAME_OFF_ACK_RECORD_COUNT, &u16, 2, FRAME_ERR_RECORD_COUNT);
	u16 = 0;
	expect_patched(FRAME_OFF_RUNS + 12, &u16, 2, FRAME_ERR_RUNS);
	u16 = 1;
	expect_patched(FRAME_OFF_RUNS + 14, &u16, 2, FRAME_ERR_RESERVED);
	u16 = 0;
	expect_patched(FRAME_OFF_RECORD_INDEX, &u16, 2, FRAME_ERR_RECORD_INDEX);
	u8 = FRAME_STATUS_THROTTLED;
	expect_patched(FRAME_OFF_STATUS, &u8, 1, FRAME_ERR_STATUS);
	u8 = 1;
	expect_patched(FRAME_OFF_ACK_RESERVED, &u8, 1, FRAME_ERR_RESERVED);
	expect_patched(FRAME_OFF_ACK_RESERVED2 + 3, &u8, 1, FRAME_ERR_RESERVED);
	u8 = FRAME_TYPE_RECORDS;
	expect_patched(FRAME_OFF_TYPE, &u8, 1, FRAME_ERR_TYPE);
	u8 = FRAME_TYPE_NACK;
	expect_patched(FRAME_OFF_TYPE, &u8, 1, FRAME_ERR_FLAGS);
	u16 = FRAME_ACK_NONE;
	expect_patched(FRAME_OFF_FLAGS, &u16, 2, FRAME_ERR_FLAGS);
	u16 = FRAME_ACK_DURABLE | FRAME_F_NO_DETAIL;
	expect_patched(FRAME_OFF_FLAGS, &u16, 2, FRAME_ERR_RUNS);
}

Test(frame_ack, records_decoder_refuses_an_ack_and_back)
{
	struct frame_ack ack = durable_ack();
	struct frame_records records;
	int size = frame_ack_encode(buf, sizeof(buf), &ack, false);

	cr_assert_eq(frame_records_decode(buf, (size_t)size, &records), FRAME_ERR_TYPE);
}

Test(frame_ack, status_names)
{
	cr_assert_str_eq(frame_status_str(FRAME_STATUS_OK), "ok");
	cr_assert_str_eq(frame_status_str(FRAME_STATUS_SEQUENCE_OLD), "sequence_old");
	cr_assert_str_eq(frame_status_str(FRAME_STATUS_COUNT_), "unknown_status");
	cr_assert(frame_status_retryable(FRAME_STATUS_INTERNAL));
	cr_assert_not(frame_status_retryable(FRAME_STATUS_UNKNOWN_STREAM));
}

Test(frame_ack, run_add_merges_consecutive_records)
{
	struct frame_ack_run runs[FRAME_RECORDS_MAX];
	uint16_t count = 0;

	frame_ack_run_add(runs, &count, 2, 10);
	frame_ack_run_add(runs, &count, 2, 11);
	frame_ack_run_add(runs, &count, 2, 12);
	frame_ack_run_add(runs, &count, 5, 13);    /* Another shard. */
	frame_ack_run_add(runs, &count, 5, 15);    /* A gap in the seqs. */
	frame_ack_run_add(runs, &count, 2, 13);    /* Back to shard 2: a new run. */
	cr_assert_eq(count, 4);
	cr_assert(runs[0].shard_index == 2 && runs[0].seq_first == 10 && runs[0].count == 3);
	cr_assert(runs[1].shard_index == 5 && runs[1].seq_first == 13 && runs[1].count == 1);
	cr_assert(runs[2].shard_index == 5 && runs[2].seq_first == 15 && runs[2].count == 1);
	cr_assert(runs[3].shard_index == 2 && runs[3].seq_first == 13 && runs[3].count == 1);
}

Test(frame_ack, prepare_answers_a_decoded_batch)
{
	uint8_t frame[512];
	struct frame_batch_params params = {
		.producer_id = 99, .batch_seq = 5, .producer_epoch = 4,
		.ack_mode = FRAME_ACK_RECEIVED, .stream_name = "s", .stream_name_size = 1,
	};
	struct frame_record r = { .key = (const uint8_t *)"k", .key_size = 1 };
	struct frame_writer w;
	struct frame_records rec;
	struct frame_ack ack;
	struct frame_ack got;
	int size;

	cr_assert_eq(frame_writer_begin(&w, frame, sizeof(frame), &params), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	size = frame_writer_finish(&w);
	cr_assert_eq(frame_records_decode(frame, (size_t)size, &rec), FRAME_OK);

	frame_ack_prepare(&ack, &rec, FRAME_TYPE_ACK, FRAME_STATUS_OK, 1000);
	size = frame_ack_encode(buf, sizeof(buf), &ack, false);
	cr_assert_eq(frame_ack_decode(buf, (size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.flags, FRAME_ACK_RECEIVED);
	cr_assert(got.producer_id == 99 && got.batch_seq == 5 && got.producer_epoch == 4);
	cr_assert_eq(got.record_count, 2);
	cr_assert_eq(got.credit_size, 1000);

	frame_ack_prepare(&ack, &rec, FRAME_TYPE_NACK, FRAME_STATUS_UNKNOWN_STREAM, 0);
	size = frame_ack_encode(buf, sizeof(buf), &ack, false);
	cr_assert_eq(frame_ack_decode(buf, (size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.type, FRAME_TYPE_NACK);
	cr_assert_eq(got.status, FRAME_STATUS_UNKNOWN_STREAM);
}
