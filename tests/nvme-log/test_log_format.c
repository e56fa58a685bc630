/*
 * log_format: a batch survives encode -> check -> iterate unchanged, and
 * the checker refuses every byte string that is not exactly a valid batch:
 * every truncation, every single flipped bit (header, body, padding-free
 * records), bad framing behind a valid CRC. Inputs sit flush against a
 * PROT_NONE page (guard_buf), so reading one byte too far crashes the test.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/crc32c.h"
#include "common/limits.h"
#include "nvme-log/log_format.h"
#include "tests/support/guard_buf.h"

#define BATCH_CAP 4096u

static const uint8_t hash_key[16] = { 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* Three records: plain, with an explicit hash key (arrival earlier), empty data. */
static uint32_t
build_batch(uint8_t *buf)
{
	struct log_record_in recs[3] = {
		{ .partition_key = "alpha", .partition_key_size = 5, .data = "hello",
		  .data_size = 5, .arrival_ns = 1000000 },
		{ .partition_key = "b", .partition_key_size = 1, .explicit_hash_key = hash_key,
		  .data = "0123456789", .data_size = 10, .arrival_ns = 999000 },
		{ .partition_key = "gamma", .partition_key_size = 5, .data = NULL,
		  .data_size = 0, .arrival_ns = 5000000000ull },
	};
	uint32_t used = LOG_BATCH_HEADER_SIZE;

	memset(buf, 0, BATCH_CAP);
	for (uint32_t i = 0; i < 3; i++) {
		int n = log_record_encode(buf + used, BATCH_CAP - used, recs[0].arrival_ns, &recs[i]);

		cr_assert_gt(n, 0);
		used += (uint32_t)n;
	}
	log_batch_seal_body(buf, used, 3, recs[0].arrival_ns, 0);
	log_batch_seal_header(buf, 42, 0x700000003ull, 9, 5, 2, LOG_BATCH_F_WINDOW_LAST);
	return used;
}

Test(log_format, round_trips_a_batch)
{
	uint8_t buf[BATCH_CAP];
	uint32_t size = build_batch(buf);
	const uint8_t *placed = guard_buf_place(buf, size);
	struct log_batch_header h;
	struct log_record_iter iter;
	struct log_record_out r;

	cr_assert_eq(log_batch_check(placed, size, &h), 0);
	cr_assert_eq(h.base_seq, 42);
	cr_assert_eq(h.shard_id, 0x700000003ull);
	cr_assert_eq(h.commit_id, 9);
	cr_assert_eq(h.segment_no, 5);
	cr_assert_eq(h.durable_lag, 2);
	cr_assert_eq(h.record_count, 3);
	cr_assert_eq(h.size, size);
	log_record_iter_init(&iter, placed);
	cr_assert_eq(log_record_iter_next(&iter, &r), 1);
	cr_assert_eq(r.seq, 42);
	cr_assert_eq(r.arrival_ns, 1000000);
	cr_assert_eq(r.partition_key_size, 5);
	cr_assert_arr_eq(r.partition_key, "alpha", 5);
	cr_assert_eq(r.data_size, 5);
	cr_assert_arr_eq(r.data, "hello", 5);
	cr_assert(!r.has_explicit_hash_key);
	cr_assert_eq(log_record_iter_next(&iter, &r), 1);
	cr_assert_eq(r.seq, 43);
	cr_assert_eq(r.arrival_ns, 999000, "negative arrival deltas round trip");
	cr_assert(r.has_explicit_hash_key);
	cr_assert_arr_eq(r.explicit_hash_key, hash_key, 16);
	cr_assert_arr_eq(r.data, "0123456789", 10);
	cr_assert_eq(log_record_iter_next(&iter, &r), 1);
	cr_assert_eq(r.seq, 44);
	cr_assert_eq(r.arrival_ns, 5000000000ull);
	cr_assert_eq(r.data_size, 0);
	cr_assert_eq(log_record_iter_next(&iter, &r), 0);
}

Test(log_format, writer_fields_reseal_without_body_crc)
{
	uint8_t buf[BATCH_CAP];
	uint32_t size = build_batch(buf);
	uint32_t body_crc;
	struct log_batch_header h;

	memcpy(&body_crc, buf + 44, 4);
	log_batch_seal_header(buf, 7777, 1, 2, 3, 0, 0);
	cr_assert_eq(memcmp(buf + 44, &body_crc, 4), 0, "the writer never touches body_crc");
	cr_assert_eq(log_batch_check(guard_buf_place(buf, size), size, &h), 0);
	cr_assert_eq(h.base_seq, 7777);
}

Test(log_format, refuses_every_truncation)
{
	uint8_t buf[BATCH_CAP];
	uint32_t size = build_batch(buf);
	struct log_batch_header h;

	for (uint32_t cut = 0; cut < size; cut++) {
		int rc = log_batch_check(guard_buf_place(buf, cut), cut, &h);

		cr_assert(rc == -EBADMSG || rc == -ENODATA, "cut to %u of %u bytes: %d", cut, size,
			  rc);
	}
}

Test(log_format, detects_every_single_bit_flip)
{
	uint8_t buf[BATCH_CAP];
	uint32_t size = build_batch(buf);
	struct log_batch_header h;

	for (uint32_t bit = 0; bit < size * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(log_batch_check(guard_buf_place(buf, size), size, &h), 0,
			      "bit %u flipped went unnoticed", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(log_batch_check(guard_buf_place(buf, size), size, &h), 0);
}

/* A producer bug (or a forged batch) with a valid CRC but bad framing is still refused. */
Test(log_format, refuses_bad_framing_behind_valid_crcs)
{
	uint8_t buf[BATCH_CAP];
	uint32_t size = build_batch(buf);
	struct log_batch_header h;
	uint8_t save;

	/* record_count one too many. */
	log_batch_seal_body(buf, size, 4, 1000000, 0);
	log_batch_seal_header(buf, 42, 1, 1, 1, 0, 0);
	cr_assert_eq(log_batch_check(guard_buf_place(buf, size), size, &h), -EBADMSG);
	/* Trailing garbage after the last record. */
	build_batch(buf);
	buf[size] = 0x00;
	log_batch_seal_body(buf, size + 1, 3, 1000000, 0);
	log_batch_seal_header(buf, 42, 1, 1, 1, 0, 0);
	cr_assert_eq(log_batch_check(guard_buf_place(buf, size + 1), size + 1, &h), -EBADMSG);
	/* Unknown record flag. */
	size = build_batch(buf);
	save = buf[LOG_BATCH_HEADER_SIZE + 1];
	buf[LOG_BATCH_HEADER_SIZE + 1] = 0x80;
	log_batch_seal_body(buf, size, 3, 1000000, 0);
	log_batch_seal_header(buf, 42, 1, 1, 1, 0, 0);
	cr_assert_eq(log_batch_check(guard_buf_place(buf, size), size, &h), -EBADMSG);
	buf[LOG_BATCH_HEADER_SIZE + 1] = save;
	/* Zero records. */
	log_batch_seal_body(buf, LOG_BATCH_HEADER_SIZE, 0, 0, 0);
	log_batch_seal_header(buf, 42, 1, 1, 1, 0, 0);
	cr_assert_eq(log_batch_check(guard_buf_place(buf, LOG_BATCH_HEADER_SIZE),
				     LOG_BATCH_HEADER_SIZE, &h), -EBADMSG);
}

Test(log_format, zeros_read_as_no_data)
{
	static uint8_t zeros[LOG_BLOCK_SIZE];
	struct log_batch_header h;

	cr_assert_eq(log_batch_check(guard_buf_place(zeros, sizeof(zeros)), sizeof(zeros), &h),
		     -ENODATA);
}

Test(log_format, encode_refuses_what_does_not_fit)
{
	uint8_t buf[64];
	struct log_record_in rec = { .partition_key = "k", .partition_key_size = 1,
				     .data = buf, .data_size = 60, .arrival_ns = 1 };
	uint32_t max = log_record_size_max(1, false, 60);

	cr_assert_eq(log_record_encode(buf, max - 11, 1, &rec), -ENOSPC);
	cr_assert_leq(log_record_encode(buf, 64, 1, &rec), (int)max);
}

Test(log_format, validate_bounds)
{
	static uint8_t key[SLUICE_PARTITION_KEY_SIZE_MAX + 1];
	struct log_record_in rec = { .partition_key = key, .partition_key_size = 1 };

	cr_assert_eq(log_record_validate(&rec), 0);
	rec.partition_key_size = 0;
	cr_assert_eq(log_record_validate(&rec), -EINVAL);
	rec.partition_key_size = SLUICE_PARTITION_KEY_SIZE_MAX;
	cr_assert_eq(log_record_validate(&rec), 0);
	rec.partition_key_size = SLUICE_PARTITION_KEY_SIZE_MAX + 1;
	cr_assert_eq(log_record_validate(&rec), -EINVAL);
	rec.partition_key_size = 1;
	rec.data_size = SLUICE_RECORD_DATA_SIZE_LARGE_MAX;
	rec.data = key;
	cr_assert_eq(log_record_validate(&rec), 0);
	rec.data_size = SLUICE_RECORD_DATA_SIZE_LARGE_MAX + 1;
	rec.data = key;
	cr_assert_eq(log_record_validate(&rec), -EINVAL);
	rec.data_size = 5;
	rec.data = NULL;
	cr_assert_eq(log_record_validate(&rec), -EINVAL);
}

Test(log_format, segment_header_round_trip_and_bit_flips)
{
	static uint8_t block[LOG_BLOCK_SIZE];
	struct log_segment_header h;

	log_segment_header_encode(block, 0x1234, 77, 900, 8u << 20, 555);
	cr_assert_eq(log_segment_header_decode(block, &h), 0);
	cr_assert_eq(h.log_id, 0x1234);
	cr_assert_eq(h.segment_no, 77);
	cr_assert_eq(h.commit_first, 900);
	cr_assert_eq(h.segment_size, 8u << 20);
	for (uint32_t bit = 0; bit < LOG_SEGMENT_HEADER_SIZE * 8; bit++) {
		block[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(log_segment_header_decode(block, &h), 0, "bit %u", bit);
		block[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}
