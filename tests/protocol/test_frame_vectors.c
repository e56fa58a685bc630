/*
 * frame_vectors: the hex test vectors of docs/PROTOCOL.md §9, read from the
 * document itself (so the spec cannot drift from the code), decoded and
 * checked field by field, then re-encoded byte for byte.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "tests/protocol/frame_fixture.h"
#include "tests/support/guard_buf.h"

#define PRODUCER 0x0102030405060708ull

static uint8_t vec[1024];
static uint8_t out[1024];

static size_t
load(const char *name)
{
	size_t size = fixture_spec_vector(name, vec, sizeof(vec));

	cr_assert_gt(size, 0, "vector %s not found in docs/PROTOCOL.md", name);
	return size;
}

static void
expect_record(struct frame_record_iter *iter, const char *key, const char *data, uint8_t kind)
{
	struct frame_record r;

	cr_assert(frame_record_iter_next(iter, &r));
	cr_assert_eq(r.key_size, strlen(key));
	cr_assert_arr_eq(r.key, key, strlen(key));
	cr_assert_eq(r.data_size, strlen(data));
	cr_assert_arr_eq(r.data, data, strlen(data));
	cr_assert_eq(r.hash_kind, kind);
}

Test(frame_vectors, records_one)
{
	size_t size = load("records_one");
	struct frame_records rec;
	struct frame_record_iter iter;
	struct frame_writer w;
	struct frame_record r = { .key = (const uint8_t *)"a", .key_size = 1,
				  .data = (const uint8_t *)"hello", .data_size = 5 };
	struct frame_batch_params params = {
		.producer_id = PRODUCER, .batch_seq = 1, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .stream_name = "events", .stream_name_size = 6,
	};

	cr_assert_eq(size, 58);
	cr_assert_eq(frame_records_decode(guard_buf_place(vec, size), size, &rec), FRAME_OK);
	cr_assert_eq(rec.producer_id, PRODUCER);
	cr_assert_eq(rec.batch_seq, 1);
	cr_assert_eq(rec.producer_epoch, 1);
	cr_assert_eq(frame_records_ack_mode(&rec), FRAME_ACK_DURABLE);
	cr_assert_arr_eq(rec.stream_name, "events", 6);
	frame_record_iter_init(&iter, &rec);
	expect_record(&iter, "a", "hello", FRAME_HASH_NONE);
	cr_assert_not(frame_record_iter_next(&iter, &r));

	cr_assert_eq(frame_writer_begin(&w, out, sizeof(out), &params), 0);
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	cr_assert_eq(frame_writer_finish(&w), (int)size);
	cr_assert_arr_eq(out, vec, size);

	/* The negative cases the spec states. */
	vec[size - 1] = 0x6e;
	cr_assert_eq(frame_records_decode(guard_buf_place(vec, size), size, &rec), FRAME_ERR_CRC);
	for (size_t cut = 0; cut < size; cut++)
		cr_assert_eq(frame_records_decode(guard_buf_place(vec, cut), cut, &rec),
			     FRAME_ERR_TRUNCATED);
}

Test(frame_vectors, records_auth)
{
	size_t size = load("records_auth");
	static const uint8_t md5_a[16] = {
		0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8,
		0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77, 0x26, 0x61,
	};
	struct frame_auth_key key = { .key_id = 1, .key_size = 16, .key = "sluice-test-key!" };
	const uint64_t ts = 1764144000000ull;
	struct frame_records rec;
	struct frame_record_iter iter;
	struct frame_record r;
	struct frame_writer w;
	struct frame_batch_params params = {
		.producer_id = PRODUCER, .batch_seq = 2, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_RECEIVED, .auth = true,
		.stream_name = "events", .stream_name_size = 6,
	};
	int n;

	cr_assert_eq(frame_records_decode(guard_buf_place(vec, size), size, &rec), FRAME_OK);
	cr_assert_eq(rec.batch_seq, 2);
	cr_assert_eq(frame_records_ack_mode(&rec), FRAME_ACK_RECEIVED);
	cr_assert_eq(frame_auth_verify(vec, (uint32_t)size, &key, ts, 30000), FRAME_OK);
	frame_record_iter_init(&iter, &rec);
	cr_assert(frame_record_iter_next(&iter, &r));
	cr_assert_eq(r.hash_kind, FRAME_HASH_MD5);
	cr_assert_arr_eq(r.hash_key, md5_a, 16);
	cr_assert_arr_eq(r.data, "x", 1);
	expect_record(&iter, "a", "hello", FRAME_HASH_NONE);

	cr_assert_eq(frame_writer_begin(&w, out, sizeof(out), &params), 0);
	r = (struct frame_record){ .key = (const uint8_t *)"a", .key_size = 1,
				   .hash_kind = FRAME_HASH_MD5, .hash_key = md5_a,
				   .data = (const uint8_t *)"x", .data_size = 1 };
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	r = (struct frame_record){ .key = (const uint8_t *)"a", .key_size = 1,
				   .data = (const uint8_t *)"hello", .data_size = 5 };
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	n = frame_writer_finish(&w);
	cr_assert_eq(n, (int)size);
	frame_auth_sign(out, (uint32_t)n, &key, ts);
	cr_assert_arr_eq(out, vec, size);
}

Test(frame_vectors, ack_durable)
{
	size_t size = load("ack_durable");
	struct frame_ack ack;
	struct frame_ack_run run;
	struct frame_ack_run runs[2];
	int n;

	cr_assert_eq(frame_ack_decode(guard_buf_place(vec, size), size, &ack), FRAME_OK);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.flags, FRAME_ACK_DURABLE);
	cr_assert_eq(ack.producer_id, PRODUCER);
	cr_assert_eq(ack.batch_seq, 3);
	cr_assert_eq(ack.record_count, 3);
	cr_assert_eq(ack.credit_size, 65536);
	cr_assert_eq(ack.run_count, 2);
	frame_ack_run_get(&ack, 0, &run);
	cr_assert(run.seq_first == 41 && run.shard_index == 0 && run.count == 1);
	runs[0] = run;
	frame_ack_run_get(&ack, 1, &run);
	cr_assert(run.seq_first == 7 && run.shard_index == 3 && run.count == 2);
	runs[1] = run;

	ack.runs = runs;
	n = frame_ack_encode(out, sizeof(out), &ack, false);
	cr_assert_eq(n, (int)size);
	cr_assert_arr_eq(out, vec, size);
}

/* Decodes NACK vector `name` with `status` into *ack; returns its size. */
static size_t
load_nack(const char *name, uint8_t status, struct frame_ack *ack)
{
	size_t size = load(name);

	cr_assert_eq(frame_ack_decode(guard_buf_place(vec, size), size, ack), FRAME_OK);
	cr_assert_eq(ack->type, FRAME_TYPE_NACK);
	cr_assert_eq(ack->status, status);
	cr_assert_eq(ack->producer_id, PRODUCER);
	return size;
}

/* The decoded answer encodes to the vector's bytes again. */
static void
expect_reencoded(const struct frame_ack *ack, size_t size)
{
	int n = frame_ack_encode(out, sizeof(out), ack, false);

	cr_assert_eq(n, (int)size);
	cr_assert_arr_eq(out, vec, size);
}

Test(frame_vectors, nack_throttled)
{
	struct frame_ack ack;
	size_t size = load_nack("nack_throttled", FRAME_STATUS_THROTTLED, &ack);

	cr_assert_eq(ack.batch_seq, 4);
	cr_assert_eq(ack.record_count, 2);
	cr_assert_eq(ack.record_index, FRAME_RECORD_INDEX_NONE);
	cr_assert_eq(ack.retry_after_ms, 100);
	cr_assert_eq(ack.credit_size, 0);
	expect_reencoded(&ack, size);
}

Test(frame_vectors, nack_not_leader)
{
	static const uint8_t leader[4] = { 198, 18, 0, 2 };
	struct frame_ack ack;
	size_t size = load_nack("nack_not_leader", FRAME_STATUS_NOT_LEADER, &ack);

	cr_assert_eq(ack.batch_seq, 6);
	cr_assert_eq(ack.record_count, 3);
	cr_assert_eq(ack.run_count, 0);
	cr_assert_eq(ack.credit_size, FRAME_CREDIT_UNLIMITED);
	cr_assert_eq(ack.redirect.shard_index, 2);
	cr_assert_eq(ack.redirect.family, 4);
	cr_assert_eq(ack.redirect.port, 4571);
	cr_assert_arr_eq(ack.redirect.addr, leader, sizeof(leader));
	expect_reencoded(&ack, size);
	/* Without its block, or with a block on another status, it is refused. */
	cr_assert_neq(frame_ack_decode(vec, size - FRAME_REDIRECT_SIZE, &ack), FRAME_OK);
	vec[36] = FRAME_STATUS_THROTTLED;
	cr_assert_neq(frame_ack_decode(vec, size, &ack), FRAME_OK);
}

Test(frame_vectors, shard_records_two)
{
	size_t size = load("shard_records_two");
	static const uint8_t md5_a[16] = {
		0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8,
		0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77, 0x26, 0x61,
	};
	static const uint8_t explicit_b[16] = { 0x80, [15] = 0x01 };
	struct frame_records rec;
	struct frame_record_iter iter;
	struct frame_record r;
	struct frame_writer w;
	struct frame_batch_params params = {
		.producer_id = PRODUCER, .batch_seq = 5, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .shard_grouped = true, .shard_index = 3,
		.stream_name = "events", .stream_name_size = 6,
	};
	int n;

	cr_assert_eq(frame_records_decode(guard_buf_place(vec, size), size, &rec), FRAME_OK);
	cr_assert(rec.shard_grouped);
	cr_assert_eq(rec.shard_index, 3);
	cr_assert_eq(rec.batch_seq, 5);
	cr_assert_eq(rec.record_count, 2);
	frame_record_iter_init(&iter, &rec);
	cr_assert(frame_record_iter_next(&iter, &r));
	cr_assert_eq(r.hash_kind, FRAME_HASH_MD5);
	cr_assert_arr_eq(r.hash_key, md5_a, 16);
	cr_assert_arr_eq(r.data, "hello", 5);
	cr_assert(frame_record_iter_next(&iter, &r));
	cr_assert_eq(r.hash_kind, FRAME_HASH_EXPLICIT);
	cr_assert_arr_eq(r.hash_key, explicit_b, 16);
	cr_assert_eq(r.data_size, 0);

	cr_assert_eq(frame_writer_begin(&w, out, sizeof(out), &params), 0);
	r = (struct frame_record){ .key = (const uint8_t *)"a", .key_size = 1,
				   .hash_kind = FRAME_HASH_MD5, .hash_key = md5_a,
				   .data = (const uint8_t *)"hello", .data_size = 5 };
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	r = (struct frame_record){ .key = (const uint8_t *)"b", .key_size = 1,
				   .hash_kind = FRAME_HASH_EXPLICIT, .hash_key = explicit_b };
	cr_assert_eq(frame_writer_add(&w, &r), 0);
	n = frame_writer_finish(&w);
	cr_assert_eq(n, (int)size);
	cr_assert_arr_eq(out, vec, size);
}
