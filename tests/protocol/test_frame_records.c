/*
 * frame_records: RECORDS frames survive encode -> decode -> iterate, and the
 * decoder refuses every truncation, every flipped bit, every lying length and
 * every limit + 1 with its specific error. Inputs sit flush against a
 * PROT_NONE page, so reading one byte too far crashes the test.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/protocol/frame_fixture.h"
#include "tests/support/guard_buf.h"

static uint8_t buf[FRAME_SIZE_MAX + 64];

Test(frame_records, round_trips_every_record_shape)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	struct frame_records records;
	struct frame_record_iter iter;
	struct frame_record r;
	unsigned i = 0;

	cr_assert_eq(fixture_records_decode_guarded(buf, size, &records), FRAME_OK);
	cr_assert_eq(records.producer_id, 0x1122334455667788ull);
	cr_assert_eq(records.batch_seq, 42);
	cr_assert_eq(records.producer_epoch, 3);
	cr_assert_eq(records.record_count, FIXTURE_RECORD_COUNT);
	cr_assert_eq(frame_records_ack_mode(&records), FRAME_ACK_DURABLE);
	cr_assert_eq(records.stream_name_size, 9);
	cr_assert_arr_eq(records.stream_name, "orders.v1", 9);
	cr_assert(!records.all_hashed);
	cr_assert_eq(records.data_size_total, 9 + 0 + 3 + 4);
	cr_assert_null(records.auth);

	frame_record_iter_init(&iter, &records);
	while (frame_record_iter_next(&iter, &r)) {
		const struct frame_record *want = &fixture_records[i++];

		cr_assert_eq(r.key_size, want->key_size);
		cr_assert_arr_eq(r.key, want->key, want->key_size);
		cr_assert_eq(r.hash_kind, want->hash_kind);
		if (want->hash_kind == FRAME_HASH_NONE)
			cr_assert_null(r.hash_key);
		else
			cr_assert_arr_eq(r.hash_key, want->hash_key, 16);
		cr_assert_eq(r.data_size, want->data_size);
		if (want->data_size > 0)
			cr_assert_arr_eq(r.data, want->data, want->data_size);
	}
	cr_assert_eq(i, FIXTURE_RECORD_COUNT);
}

/* The CRC from the tables is the frame's own, for every byte of batch_seq and value. */
Test(frame_records, a_renumbered_frame_decodes_with_its_new_batch_seq_and_nothing_else_moves)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	static struct frame_renumber r;
	uint8_t before[sizeof(buf)];
	struct frame_records records;
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	cr_assert_eq(frame_renumber_init(&r, size), 0);
	memcpy(before, buf, size);
	for (int i = 0; i < 2000; i++) {
		uint64_t seq = i < 64 ? 1ull << i : (rng = rng * 6364136223846793005ull + 1);

		cr_assert_eq(frame_renumber(&r, buf, size, seq), 0);
		cr_assert_eq(fixture_records_decode_guarded(buf, size, &records), FRAME_OK,
			     "batch_seq %llx: the CRC", (unsigned long long)seq);
		cr_assert_eq(records.batch_seq, seq);
		cr_assert_eq(records.producer_id, 0x1122334455667788ull);
	}
	/* Only the CRC and batch_seq moved; renumbered back, the bytes are the original. */
	for (uint32_t i = 0; i < size; i++)
		if ((i < FRAME_OFF_CRC || i >= FRAME_OFF_CRC + 4) &&
		    (i < FRAME_OFF_BATCH_SEQ || i >= FRAME_OFF_BATCH_SEQ + 8))
			cr_assert_eq(buf[i], before[i], "byte %u moved", i);
	cr_assert_eq(frame_renumber(&r, buf, size, 42), 0);
	cr_assert_arr_eq(buf, before, size);

	/* Refused: a signed frame (its signature would no longer match), a size that is not
	 * the tables' or the frame's, a frame of another type; tables for impossible sizes. */
	cr_assert_eq(frame_renumber(&r, buf, size - 1, 7), -EINVAL);
	buf[FRAME_OFF_TYPE] = FRAME_TYPE_ACK;
	cr_assert_eq(frame_renumber(&r, buf, size, 7), -EINVAL);
	size = fixture_records_frame(buf, sizeof(buf), true);
	cr_assert_eq(frame_renumber_init(&r, size), 0);
	cr_assert_eq(frame_renumber(&r, buf, size, 7), -EINVAL);
	cr_assert_eq(frame_renumber_init(&r, FRAME_OFF_NAME - 1), -EINVAL);
	cr_assert_eq(frame_renumber_init(&r, FRAME_SIZE_MAX + 1), -EINVAL);
}

/* A frame larger than the tables' 4 KiB zero block (several blocks of it), renumbered. */
Test(frame_records, a_renumbered_large_frame_keeps_a_right_crc)
{
	static uint8_t data[9000];
	static struct frame_renumber r;
	struct frame_batch_params params = {
		.producer_id = 5, .batch_seq = 1, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .stream_name = "big", .stream_name_size = 3,
	};
	struct frame_record rec = { .key = (const uint8_t *)"k", .key_size = 1,
				    .data = data, .data_size = sizeof(data) };
	struct frame_records records;
	struct frame_writer w;
	int size;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	cr_assert_eq(frame_writer_begin(&w, buf, sizeof(buf), &params), 0);
	cr_assert_eq(frame_writer_add(&w, &rec), 0);
	size = frame_writer_finish(&w);
	cr_assert_gt(size, 8192);
	cr_assert_eq(frame_renumber_init(&r, (uint32_t)size), 0);
	for (uint64_t seq = 2; seq < 1u << 20; seq = seq * 3 + 1) {
		cr_assert_eq(frame_renumber(&r, buf, (uint32_t)size, seq), 0);
		cr_assert_eq(frame_records_decode(buf, (size_t)size, &records), FRAME_OK);
		cr_assert_eq(records.batch_seq, seq);
	}
}

Test(frame_records, refuses_every_truncation)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	struct frame_records records;

	for (uint32_t cut = 0; cut < size; cut++) {
		uint32_t frame_size;
		uint32_t need;

		cr_assert_eq(fixture_records_decode_guarded(buf, cut, &records), FRAME_ERR_TRUNCATED,
			     "cut to %u of %u", cut, size);
		cr_assert_eq(frame_next(guard_buf_place(buf, cut), cut, &frame_size, &need),
			     FRAME_ERR_TRUNCATED);
		cr_assert_eq(need, cut < FRAME_HEADER_SIZE ? FRAME_HEADER_SIZE - cut : size - cut);
	}
}

Test(frame_records, refuses_every_flipped_bit)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	struct frame_records records;

	for (uint32_t bit = 0; bit < size * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(fixture_records_decode_guarded(buf, size, &records), FRAME_OK, "bit %u", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(fixture_records_decode_guarded(buf, size, &records), FRAME_OK);
}

Test(frame_records, refuses_trailing_bytes)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	struct frame_records records;

	buf[size] = 0;
	cr_assert_eq(fixture_records_decode_guarded(buf, size + 1, &records), FRAME_ERR_TRAILING);
}

/*
 * A lying field with a correct CRC: what a buggy (or hostile) producer sends.
 * Patches the frame, reseals it and expects `want`.
 */
static void
expect_patched(uint32_t offset, const void *value, size_t value_size, enum frame_err want)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	struct frame_records records;
	enum frame_err got;

	memcpy(buf + offset, value, value_size);
	frame_seal(buf, size);
	got = fixture_records_decode_guarded(buf, size, &records);
	cr_assert_eq(got, want, "offset %u: got %s want %s", offset, frame_err_str(got),
		     frame_err_str(want));
}

/* Offsets in the fixture: name at 40 (9 bytes), first record at 49. */
#define REC0 49u

Test(frame_records, refuses_lying_lengths)
{
	uint16_t u16;
	uint32_t u32;
	uint8_t u8;

	u16 = 0;
	expect_patched(FRAME_OFF_RECORD_COUNT, &u16, 2, FRAME_ERR_RECORD_COUNT);
	u16 = FIXTURE_RECORD_COUNT + 1;
	expect_patched(FRAME_OFF_RECORD_COUNT, &u16, 2, FRAME_ERR_RECORD_TRUNCATED);
	u16 = FIXTURE_RECORD_COUNT - 1;
	expect_patched(FRAME_OFF_RECORD_COUNT, &u16, 2, FRAME_ERR_BODY_SIZE);
	u16 = FRAME_RECORDS_MAX + 1;
	expect_patched(FRAME_OFF_RECORD_COUNT, &u16, 2, FRAME_ERR_RECORD_COUNT);
	u8 = 0;
	expect_patched(FRAME_OFF_NAME_SIZE, &u8, 1, FRAME_ERR_STREAM_NAME);
	u8 = 10; /* Takes the first record's flag byte into the name. */
	expect_patched(FRAME_OFF_NAME_SIZE, &u8, 1, FRAME_ERR_STREAM_NAME);
	u8 = 255;
	expect_patched(FRAME_OFF_NAME_SIZE, &u8, 1, FRAME_ERR_BODY_SIZE);
	u8 = '/';
	expect_patched(FRAME_OFF_NAME + 3, &u8, 1, FRAME_ERR_STREAM_NAME);
	u8 = 1;
	expect_patched(FRAME_OFF_RECORDS_RESERVED, &u8, 1, FRAME_ERR_RESERVED);
	u32 = 10; /* The next record is read one byte late: its key size as flags. */
	expect_patched(REC0 + 2, &u32, 4, FRAME_ERR_RECORD_FLAGS);
	u32 = 8;
	expect_patched(REC0 + 2, &u32, 4, FRAME_ERR_RECORD_FLAGS);
	u32 = 0xFFFFFFFFu;
	expect_patched(REC0 + 2, &u32, 4, FRAME_ERR_RECORD_TOO_LARGE);
	u32 = SLUICE_RECORD_DATA_SIZE_MAX - 8;
	expect_patched(REC0 + 2, &u32, 4, FRAME_ERR_RECORD_TRUNCATED);
	u8 = 3;
	expect_patched(REC0, &u8, 1, FRAME_ERR_RECORD_FLAGS);
	u8 = 4;
	expect_patched(REC0, &u8, 1, FRAME_ERR_RECORD_FLAGS);
	u8 = 0xFF;
	expect_patched(REC0 + 1, &u8, 1, FRAME_ERR_RECORD_TRUNCATED);
	u8 = 0xC0; /* An overlong encoding inside the key. */
	expect_patched(REC0 + 6, &u8, 1, FRAME_ERR_KEY_UTF8);
	u8 = 9;
	expect_patched(FRAME_OFF_TYPE, &u8, 1, FRAME_ERR_TYPE);
	u16 = 0x0003;
	expect_patched(FRAME_OFF_FLAGS, &u16, 2, FRAME_ERR_FLAGS);
	u16 = 0x0100 | FRAME_ACK_DURABLE;
	expect_patched(FRAME_OFF_FLAGS, &u16, 2, FRAME_ERR_FLAGS);
	u16 = FRAME_F_DUPLICATE | FRAME_ACK_DURABLE;
	expect_patched(FRAME_OFF_FLAGS, &u16, 2, FRAME_ERR_FLAGS);
}

Test(frame_records, refuses_frame_size_out_of_bounds)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	struct frame_records records;
	uint32_t frame_size;
	uint32_t need;
	uint32_t lie;

	lie = FRAME_SIZE_MAX + 1;
	frame_store32(buf + FRAME_OFF_SIZE, lie);
	cr_assert_eq(frame_next(buf, size, &frame_size, &need), FRAME_ERR_FRAME_SIZE);
	lie = FRAME_HEADER_SIZE - 1;
	frame_store32(buf + FRAME_OFF_SIZE, lie);
	cr_assert_eq(frame_next(buf, size, &frame_size, &need), FRAME_ERR_FRAME_SIZE);
	/* A frame of just a header is framed, but too short to be RECORDS. */
	frame_store32(buf + FRAME_OFF_SIZE, FRAME_HEADER_SIZE);
	frame_seal(buf, FRAME_HEADER_SIZE);
	cr_assert_eq(fixture_records_decode_guarded(buf, FRAME_HEADER_SIZE, &records),
		     FRAME_ERR_FRAME_SIZE);
	cr_assert_not(records.identity_valid);
}

Test(frame_records, nack_identity_survives_a_bad_record)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), false);
	struct frame_records records;

	buf[REC0] = 3;
	frame_seal(buf, size);
	cr_assert_eq(fixture_records_decode_guarded(buf, size, &records), FRAME_ERR_RECORD_FLAGS);
	cr_assert(records.identity_valid);
	cr_assert_eq(records.batch_seq, 42);
	cr_assert_eq(records.producer_id, 0x1122334455667788ull);
}

static int
begin_named(struct frame_writer *w, const char *name, size_t name_size, size_t capacity)
{
	struct frame_batch_params params = {
		.producer_id = 1,
		.ack_mode = FRAME_ACK_DURABLE,
		.stream_name = name,
		.stream_name_size = (uint8_t)name_size,
	};

	return frame_writer_begin(w, buf, capacity, &params);
}

Test(frame_records, writer_limits_and_limit_plus_one)
{
	static char name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	static uint8_t key[SLUICE_PARTITION_KEY_SIZE_MAX + 1];
	struct frame_writer w;
	struct frame_record r = { .key = key, .key_size = SLUICE_PARTITION_KEY_SIZE_MAX };
	struct frame_records records;
	int size;

	memset(name, 'a', sizeof(name));
	memset(key, 'k', sizeof(key));
	cr_assert_eq(begin_named(&w, name, sizeof(name), sizeof(buf)), -EINVAL);
	cr_assert_eq(begin_named(&w, name, 0, sizeof(buf)), -EINVAL);
	cr_assert_eq(begin_named(&w, "a b", 3, sizeof(buf)), -EINVAL);
	cr_assert_eq(begin_named(&w, name, 128, FRAME_RECORDS_HEADER_SIZE + 127), -ENOSPC);
	cr_assert_eq(begin_named(&w, name, 128, sizeof(buf)), 0);
	cr_assert_eq(frame_writer_finish(&w), -EINVAL, "an empty batch is not a frame");

	cr_assert_eq(begin_named(&w, name, 128, sizeof(buf)), 0);
	r.key_size = SLUICE_PARTITION_KEY_SIZE_MAX + 1;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL);
	r.key_size = 0;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL);
	r.key_size = SLUICE_PARTITION_KEY_SIZE_MAX;
	r.data = buf; /* Contents irrelevant; sizes are what is tested. */
	r.data_size = SLUICE_RECORD_DATA_SIZE_MAX - SLUICE_PARTITION_KEY_SIZE_MAX + 1;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL);
	r.hash_kind = 3;
	r.data_size = 0;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL);
	r.hash_kind = FRAME_HASH_MD5;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL, "an MD5 kind needs the hash");
	r.hash_kind = FRAME_HASH_NONE;
	key[5] = 0xFF;
	cr_assert_eq(frame_writer_add(&w, &r), -EINVAL, "keys are UTF-8");
	key[5] = 'k';
	cr_assert_eq(w.record_count, 0);

	/* The largest record: 256-byte key + data up to 1 MiB in all, in one frame. */
	static uint8_t big[SLUICE_RECORD_DATA_SIZE_MAX];
	uint8_t *frame = malloc(FRAME_SIZE_MAX);

	struct frame_batch_params params = {
		.producer_id = 1, .stream_name = name, .stream_name_size = 128,
	};

	cr_assert_eq(frame_writer_begin(&w, frame, FRAME_SIZE_MAX, &params), 0);
	r.data = big;
	r.data_size = SLUICE_RECORD_DATA_SIZE_MAX - SLUICE_PARTITION_KEY_SIZE_MAX;
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	size = frame_writer_finish(&w);
	cr_assert_gt(size, 0);
	cr_assert_eq(frame_records_decode(guard_buf_place(frame, (size_t)size), (size_t)size,
					  &records), FRAME_OK);
	/* One byte more data with a correct CRC: too large. */
	frame_store32(frame + FRAME_RECORDS_HEADER_SIZE + 128 + 2, (uint32_t)r.data_size + 1);
	frame_seal(frame, (uint32_t)size);
	cr_assert_eq(frame_records_decode(frame, (size_t)size, &records),
		     FRAME_ERR_RECORD_TOO_LARGE);
	free(frame);
}

Test(frame_records, writer_stops_at_record_count_max)
{
	struct frame_writer w;
	struct frame_record r = { .key = (const uint8_t *)"k", .key_size = 1 };
	struct frame_records records;
	int size;

	cr_assert_eq(begin_named(&w, "s", 1, sizeof(buf)), 0);
	for (unsigned i = 0; i < FRAME_RECORDS_MAX; i++)
		cr_assert_eq(frame_writer_add(&w, &r), 0);
	cr_assert_eq(frame_writer_add(&w, &r), -ENOSPC);
	size = frame_writer_finish(&w);
	cr_assert_eq(frame_records_decode(guard_buf_place(buf, (size_t)size), (size_t)size,
					  &records), FRAME_OK);
	cr_assert_eq(records.record_count, FRAME_RECORDS_MAX);
}

Test(frame_records, writer_refuses_what_does_not_fit_and_stays_usable)
{
	struct frame_writer w;
	struct frame_record r = { .key = (const uint8_t *)"k", .key_size = 1,
				  .data = (const uint8_t *)"0123456789", .data_size = 10 };
	uint32_t one = frame_record_encoded_size(1, FRAME_HASH_NONE, 10);
	size_t capacity = FRAME_RECORDS_HEADER_SIZE + 1 + 2 * one + FRAME_AUTH_SIZE;
	struct frame_batch_params params = {
		.producer_id = 1, .stream_name = "s", .stream_name_size = 1, .auth = true,
	};
	struct frame_records records;
	int size;

	cr_assert_eq(frame_writer_begin(&w, buf, capacity, &params), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	cr_assert_eq(frame_writer_add(&w, &r), -ENOSPC, "the trailer's room is kept");
	size = frame_writer_finish(&w);
	cr_assert_eq((size_t)size, capacity);
	cr_assert_eq(frame_records_decode(guard_buf_place(buf, capacity), capacity, &records),
		     FRAME_OK);
	cr_assert_not_null(records.auth);
	cr_assert_eq(records.record_count, 2);
}

struct utf8_case {
	const char *bytes;
	size_t size;
	bool valid;
};

Test(frame_records, utf8_strictness)
{
	static const struct utf8_case cases[] = {
		{ "plain-ascii-key-longer-than-eight", 33, true },
		{ "\xc3\xa9", 2, true },
		{ "\xe2\x82\xac", 3, true },
		{ "\xf0\x9f\x98\x80", 4, true },
		{ "\xf4\x8f\xbf\xbf", 4, true },           /* U+10FFFF */
		{ "\xed\x9f\xbf", 3, true },               /* U+D7FF */
		{ "\x00", 1, true },                       /* NUL is UTF-8 */
		{ "\xc0\xaf", 2, false },                  /* overlong '/' */
		{ "\xc1\xbf", 2, false },
		{ "\xe0\x80\xaf", 3, false },              /* overlong */
		{ "\xf0\x80\x80\xaf", 4, false },          /* overlong */
		{ "\xed\xa0\x80", 3, false },              /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", 4, false },          /* U+110000 */
		{ "\xf5\x80\x80\x80", 4, false },
		{ "\x80", 1, false },                      /* lone continuation */
		{ "\xc3", 1, false },                      /* truncated */
		{ "\xe2\x82", 2, false },
		{ "abcdefg\xc3", 8, false },               /* truncated after ASCII */
		{ "\xc3\x28", 2, false },                  /* bad continuation */
		{ "\xff", 1, false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *p = guard_buf_place(cases[i].bytes, cases[i].size);

		cr_assert_eq(frame_utf8_valid(p, cases[i].size), cases[i].valid, "case %zu", i);
	}
}

Test(frame_records, all_hashed_when_every_record_has_a_hash)
{
	struct frame_writer w;
	uint8_t h[16] = { 0 };
	struct frame_record r = { .key = (const uint8_t *)"k", .key_size = 1,
				  .hash_kind = FRAME_HASH_MD5, .hash_key = h };
	struct frame_records records;
	int size;

	cr_assert_eq(begin_named(&w, "s", 1, sizeof(buf)), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	r.hash_kind = FRAME_HASH_EXPLICIT;
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	size = frame_writer_finish(&w);
	cr_assert_eq(frame_records_decode(buf, (size_t)size, &records), FRAME_OK);
	cr_assert(records.all_hashed);
}

Test(frame_records, error_names_are_distinct)
{
	for (int i = 0; i < FRAME_ERR_COUNT_; i++)
		for (int j = i + 1; j < FRAME_ERR_COUNT_; j++)
			cr_assert_str_neq(frame_err_str((enum frame_err)i),
					  frame_err_str((enum frame_err)j));
	cr_assert_str_eq(frame_err_str(FRAME_ERR_COUNT_), "unknown_error");
	cr_assert_eq(frame_err_status(FRAME_ERR_RECORD_TOO_LARGE), FRAME_STATUS_RECORD_TOO_LARGE);
	cr_assert_eq(frame_err_status(FRAME_ERR_AUTH_STALE), FRAME_STATUS_AUTH_FAILED);
	cr_assert_eq(frame_err_status(FRAME_ERR_CRC), FRAME_STATUS_MALFORMED);
}
