/*
 * frame_random: seeded property tests. Random batches (key sizes 1..256 of
 * valid UTF-8, every hash kind, data sizes up to 2 KiB) round-trip exactly;
 * random byte mutations with a recomputed CRC never make the decoder read
 * outside its span (guard page) and, when accepted, still iterate inside it.
 * TEST_SEED replays a run.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/support/guard_buf.h"
#include "tests/support/seed.h"

#define RECORDS_PER_FRAME_MAX 40u
#define DATA_SIZE_MAX 2048u

static uint8_t frame[64 * 1024];
static uint8_t keys[RECORDS_PER_FRAME_MAX][SLUICE_PARTITION_KEY_SIZE_MAX];
static uint8_t hashes[RECORDS_PER_FRAME_MAX][16];
static uint8_t datas[RECORDS_PER_FRAME_MAX][DATA_SIZE_MAX];
static struct frame_record records[RECORDS_PER_FRAME_MAX];

/* A random valid UTF-8 key of exactly `size` bytes (ASCII, 2- and 3-byte forms). */
static void
random_key(struct seed_rng *rng, uint8_t *key, uint16_t size)
{
	uint16_t i = 0;

	while (i < size) {
		uint64_t pick = seed_rng_below(rng, 4);

		if (pick == 2 && size - i >= 2) {
			key[i++] = (uint8_t)(0xC2 + seed_rng_below(rng, 0x1E));
			key[i++] = (uint8_t)(0x80 + seed_rng_below(rng, 0x40));
		} else if (pick == 3 && size - i >= 3) {
			key[i++] = 0xE2;
			key[i++] = (uint8_t)(0x80 + seed_rng_below(rng, 0x40));
			key[i++] = (uint8_t)(0x80 + seed_rng_below(rng, 0x40));
		} else {
			key[i++] = (uint8_t)(0x20 + seed_rng_below(rng, 0x5F));
		}
	}
}

static uint32_t
random_frame(struct seed_rng *rng, uint32_t *count_out)
{
	struct frame_batch_params params = {
		.producer_id = seed_rng_next(rng), .batch_seq = seed_rng_next(rng),
		.producer_epoch = (uint32_t)seed_rng_next(rng),
		.ack_mode = (uint8_t)seed_rng_below(rng, 3), .auth = seed_rng_below(rng, 2) == 0,
		.stream_name = "random-stream_1.0", .stream_name_size = 17,
	};
	struct frame_writer w;
	uint32_t count = 1 + (uint32_t)seed_rng_below(rng, RECORDS_PER_FRAME_MAX);
	int size;

	cr_assert_eq(frame_writer_begin(&w, frame, sizeof(frame), &params), 0);
	for (uint32_t i = 0; i < count; i++) {
		struct frame_record *r = &records[i];

		r->key_size = (uint16_t)(1 + seed_rng_below(rng, SLUICE_PARTITION_KEY_SIZE_MAX));
		random_key(rng, keys[i], r->key_size);
		r->key = keys[i];
		r->hash_kind = (uint8_t)seed_rng_below(rng, 3);
		for (int b = 0; b < 16; b++)
			hashes[i][b] = (uint8_t)seed_rng_next(rng);
		r->hash_key = r->hash_kind != FRAME_HASH_NONE ? hashes[i] : NULL;
		r->data_size = (uint32_t)seed_rng_below(rng, DATA_SIZE_MAX + 1);
		for (uint32_t b = 0; b < r->data_size; b++)
			datas[i][b] = (uint8_t)seed_rng_next(rng);
		r->data = datas[i];
		cr_assert_eq(frame_writer_add(&w, r), 0);
	}
	size = frame_writer_finish(&w);
	cr_assert_gt(size, 0);
	*count_out = count;
	return (uint32_t)size;
}

Test(frame_random, round_trips_random_batches)
{
	struct seed_rng rng;
	uint64_t seed = seed_base();

	seed_rng_init(&rng, seed);
	for (int n = 0; n < 300; n++) {
		uint32_t count;
		uint32_t size = random_frame(&rng, &count);
		struct frame_records rec;
		struct frame_record_iter iter;
		struct frame_record r;
		uint32_t i = 0;

		cr_assert_eq(frame_records_decode(guard_buf_place(frame, size), size, &rec),
			     FRAME_OK, "seed %lu", (unsigned long)seed);
		cr_assert_eq(rec.record_count, count);
		frame_record_iter_init(&iter, &rec);
		while (frame_record_iter_next(&iter, &r)) {
			const struct frame_record *want = &records[i++];

			cr_assert_eq(r.key_size, want->key_size);
			cr_assert_arr_eq(r.key, want->key, want->key_size);
			cr_assert_eq(r.hash_kind, want->hash_kind);
			if (want->hash_key != NULL)
				cr_assert_arr_eq(r.hash_key, want->hash_key, 16);
			cr_assert_eq(r.data_size, want->data_size);
			if (r.data_size > 0)
				cr_assert_arr_eq(r.data, want->data, r.data_size);
		}
		cr_assert_eq(i, count, "seed %lu", (unsigned long)seed);
	}
}

Test(frame_random, mutations_with_a_valid_crc_stay_inside_the_span)
{
	struct seed_rng rng;
	uint64_t seed = seed_base();
	uint32_t accepted = 0;

	seed_rng_init(&rng, seed ^ 0x5A5A);
	for (int n = 0; n < 20000; n++) {
		uint32_t count;
		uint32_t size = n % 100 == 0 ? random_frame(&rng, &count) :
					       frame_load32(frame + FRAME_OFF_SIZE);
		uint8_t saved[8];
		uint32_t at[8];
		uint32_t flips = 1 + (uint32_t)seed_rng_below(&rng, 8);
		struct frame_records rec;
		const uint8_t *span;

		for (uint32_t k = 0; k < flips; k++) {
			/* Bytes after the CRC and size: the decoder must catch lies on its own. */
			at[k] = 12 + (uint32_t)seed_rng_below(&rng, size - 12);
			saved[k] = frame[at[k]];
			frame[at[k]] = (uint8_t)seed_rng_next(&rng);
		}
		frame_seal(frame, size);
		span = guard_buf_place(frame, size);
		if (frame_records_decode(span, size, &rec) == FRAME_OK) {
			struct frame_record_iter iter;
			struct frame_record r;

			accepted++;
			frame_record_iter_init(&iter, &rec);
			while (frame_record_iter_next(&iter, &r)) {
				cr_assert(r.key >= span && r.key + r.key_size <= span + size);
				cr_assert(r.data >= span && r.data + r.data_size <= span + size);
			}
		}
		for (uint32_t k = flips; k > 0; k--)
			frame[at[k - 1]] = saved[k - 1];
	}
	/* Mutated data bytes are legal: some mutants must have been accepted. */
	cr_assert_gt(accepted, 0, "seed %lu", (unsigned long)seed);
}
