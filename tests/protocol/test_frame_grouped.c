/*
 * frame_grouped: SHARD_RECORDS frames (type 4) survive write -> decode ->
 * iterate, their record block is byte for byte the log's record encoding,
 * and the decoder refuses every truncation, flipped bit, non-zero arrival
 * delta, hash key that is not the record's explicit key, and lying length.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/record_wire.h"
#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/protocol/frame_fixture.h"
#include "tests/support/guard_buf.h"

static uint8_t buf[FRAME_SIZE_MAX + 64];

static const uint8_t md5_a[16] = {
	0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8,
	0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77, 0x26, 0x61,
};

/* The fixture's records, each given a hash key (SHARD_RECORDS requires one). */
static struct frame_record
grouped_record(unsigned i)
{
	struct frame_record r = fixture_records[i];

	if (r.hash_kind == FRAME_HASH_NONE) {
		r.hash_kind = FRAME_HASH_MD5;
		r.hash_key = md5_a;
	}
	return r;
}

static uint32_t
grouped_frame(uint8_t *out, size_t capacity, bool auth)
{
	struct frame_batch_params params = {
		.producer_id = 7, .batch_seq = 9, .producer_epoch = 2,
		.ack_mode = FRAME_ACK_DURABLE, .auth = auth,
		.shard_grouped = true, .shard_index = 0x01020304,
		.stream_name = "orders.v1", .stream_name_size = 9,
	};
	struct frame_writer w;

	cr_assert_eq(frame_writer_begin(&w, out, capacity, &params), 0);
	for (unsigned i = 0; i < FIXTURE_RECORD_COUNT; i++) {
		struct frame_record r = grouped_record(i);

		cr_assert_eq(frame_writer_add(&w, &r), 0);
	}
	int size = frame_writer_finish(&w);

	cr_assert_gt(size, 0);
	return (uint32_t)size;
}

Test(frame_grouped, round_trips_and_the_block_is_the_log_encoding)
{
	uint32_t size = grouped_frame(buf, sizeof(buf), false);
	struct frame_records fr;
	struct frame_record_iter it;
	struct frame_record r;
	const uint8_t *pos;
	unsigned i = 0;

	cr_assert_eq(buf[FRAME_OFF_TYPE], FRAME_TYPE_SHARD_RECORDS);
	cr_assert_eq(fixture_records_decode_guarded(buf, size, &fr), FRAME_OK);
	cr_assert(fr.shard_grouped);
	cr_assert(fr.all_hashed);
	cr_assert_eq(fr.shard_index, 0x01020304);
	cr_assert_eq(fr.record_count, FIXTURE_RECORD_COUNT);
	cr_assert_eq(fr.data_size_total, 9 + 0 + 3 + 4);
	cr_assert_eq(fr.hash_keys, fr.records + fr.records_size);

	frame_record_iter_init(&it, &fr);
	pos = fr.records;
	while (frame_record_iter_next(&it, &r)) {
		struct frame_record want = grouped_record(i);
		struct record_wire wire;

		cr_assert_eq(r.key_size, want.key_size);
		cr_assert_arr_eq(r.key, want.key, want.key_size);
		cr_assert_eq(r.hash_kind, want.hash_kind);
		cr_assert_arr_eq(r.hash_key, want.hash_key, 16);
		cr_assert_eq(r.data_size, want.data_size);
		if (want.data_size > 0)
			cr_assert_arr_eq(r.data, want.data, want.data_size);
		/* The same record read as the log reads it. */
		pos = record_wire_next(pos, fr.records + fr.records_size, &wire);
		cr_assert_not_null(pos);
		cr_assert_eq(wire.arrival_delta_ns, 0);
		cr_assert_eq(wire.explicit_hash_key != NULL, want.hash_kind == FRAME_HASH_EXPLICIT);
		cr_assert_eq(wire.data_size, want.data_size);
		i++;
	}
	cr_assert_eq(i, FIXTURE_RECORD_COUNT);
	cr_assert_eq(pos, fr.records + fr.records_size);
}

Test(frame_grouped, writer_refuses_a_record_without_hash_key)
{
	struct frame_batch_params params = {
		.ack_mode = FRAME_ACK_DURABLE, .shard_grouped = true,
		.stream_name = "s", .stream_name_size = 1,
	};
	struct frame_writer w;

	cr_assert_eq(frame_writer_begin(&w, buf, sizeof(buf), &params), 0);
	cr_assert_eq(frame_writer_add(&w, &fixture_records[0]), -EINVAL);
	cr_assert_eq(frame_writer_finish(&w), -EINVAL);
}

Test(frame_grouped, writer_fills_a_datagram_exactly_and_keeps_its_table_in_order)
{
	static uint8_t data[100];
	struct frame_batch_params params = {
		.ack_mode = FRAME_ACK_DURABLE, .shard_grouped = true, .auth = true,
		.stream_name = "events", .stream_name_size = 6,
	};
	struct frame_writer w;
	struct frame_records fr;
	uint8_t keys[FRAME_RECORDS_MAX][16];
	unsigned n = 0;
	int size;

	cr_assert_eq(frame_writer_begin(&w, buf, 1472, &params), 0);
	for (;; n++) {
		struct frame_record r = {
			.key = (const uint8_t *)"k", .key_size = 1, .data = data,
			.data_size = sizeof(data), .hash_kind = FRAME_HASH_MD5, .hash_key = keys[n],
		};

		memset(keys[n], (int)n, 16);
		if (frame_writer_add(&w, &r) == -ENOSPC)
			break;
	}
	cr_assert_gt(n, 10);
	size = frame_writer_finish(&w);
	cr_assert_leq(size, 1472);
	cr_assert_gt(size + 100 + 16 + 5, 1472, "the writer stopped before the datagram was full");
	cr_assert_eq(fixture_records_decode_guarded(buf, (size_t)size, &fr), FRAME_OK);
	cr_assert_eq(fr.record_count, n);
	cr_assert_arr_eq(fr.hash_keys, keys, n * 16u);
	cr_assert_not_null(fr.auth);
}

Test(frame_grouped, refuses_every_truncation_and_flipped_bit)
{
	uint32_t size = grouped_frame(buf, sizeof(buf), true);
	struct frame_records fr;

	for (uint32_t cut = 0; cut < size; cut++)
		cr_assert_eq(fixture_records_decode_guarded(buf, cut, &fr), FRAME_ERR_TRUNCATED);
	for (uint32_t bit = 0; bit < size * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(fixture_records_decode_guarded(buf, size, &fr), FRAME_OK, "bit %u", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(fixture_records_decode_guarded(buf, size, &fr), FRAME_OK);
}

/*
 * A hand-built SHARD_RECORDS frame of one record, whose fields the cases
 * below break one at a time, then reseal with a valid CRC.
 */
struct hand_frame {
	int64_t delta;
	bool explicit_key;
	uint8_t table_key[16];
	uint32_t block_extra;   /* Stray bytes after the record. */
	uint32_t count;
};

static uint32_t
hand_build(const struct hand_frame *h)
{
	static const uint8_t key_explicit[16] = { 1, 2, 3 };
	struct record_wire r = {
		.arrival_delta_ns = h->delta, .partition_key = (const uint8_t *)"ab",
		.partition_key_size = 2, .explicit_hash_key = h->explicit_key ? key_explicit : NULL,
		.data = (const uint8_t *)"xyz", .data_size = 3,
	};
	uint8_t *p = buf;
	uint32_t size;

	memset(buf, 0, 4096);
	memcpy(p, "SLUC", 4);
	p[FRAME_OFF_VERSION] = FRAME_VERSION;
	p[FRAME_OFF_TYPE] = FRAME_TYPE_SHARD_RECORDS;
	frame_store16(p + FRAME_OFF_FLAGS, FRAME_ACK_DURABLE);
	frame_store64(p + FRAME_OFF_PRODUCER_ID, 5);
	frame_store16(p + FRAME_OFF_RECORD_COUNT, (uint16_t)h->count);
	p[FRAME_OFF_NAME_SIZE] = 1;
	p[FRAME_OFF_NAME] = 's';
	frame_store32(p + FRAME_OFF_NAME + 1, 3);
	size = FRAME_OFF_NAME + 1 + 4;
	size = (uint32_t)(record_wire_put(p + size, &r) - p) + h->block_extra;
	memcpy(p + size, h->explicit_key && h->table_key[0] == 0 ? key_explicit : h->table_key, 16);
	size += 16;
	frame_store32(p + FRAME_OFF_SIZE, size);
	frame_seal(p, size);
	return size;
}

Test(frame_grouped, refuses_what_the_log_must_not_take)
{
	struct hand_frame ok = { .count = 1 };
	struct frame_records fr;
	struct hand_frame h;

	cr_assert_eq(fixture_records_decode_guarded(buf, hand_build(&ok), &fr), FRAME_OK);
	h = ok;
	h.explicit_key = true;
	cr_assert_eq(fixture_records_decode_guarded(buf, hand_build(&h), &fr), FRAME_OK);

	h = ok;
	h.delta = 1;
	cr_assert_eq(fixture_records_decode_guarded(buf, hand_build(&h), &fr), FRAME_ERR_GROUPED_RECORD);
	cr_assert(fr.identity_valid, "NACKable");
	cr_assert_eq(frame_err_status(FRAME_ERR_GROUPED_RECORD), FRAME_STATUS_MALFORMED);

	h = ok;
	h.explicit_key = true;
	h.table_key[0] = 9;
	cr_assert_eq(fixture_records_decode_guarded(buf, hand_build(&h), &fr), FRAME_ERR_GROUPED_RECORD);

	h = ok;
	h.block_extra = 1;
	cr_assert_eq(fixture_records_decode_guarded(buf, hand_build(&h), &fr), FRAME_ERR_BODY_SIZE);

	h = ok;
	h.count = 2; /* The table is then read from inside the record: nothing fits. */
	cr_assert_neq(fixture_records_decode_guarded(buf, hand_build(&h), &fr), FRAME_OK);
}

Test(frame_grouped, wrong_shard_has_a_name_and_is_not_retried_as_is)
{
	cr_assert_str_eq(frame_status_str(FRAME_STATUS_WRONG_SHARD), "wrong_shard");
	cr_assert(!frame_status_retryable(FRAME_STATUS_WRONG_SHARD));
	cr_assert_str_eq(frame_err_str(FRAME_ERR_GROUPED_RECORD), "grouped_record");
}
