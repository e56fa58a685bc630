/*
 * frame_auth: HMAC-SHA256 trailers verify under the right key and time, and
 * fail for a wrong key, a wrong key id, a stale or future timestamp, a
 * missing trailer, and any changed byte. The allocation-free HMAC is checked
 * against OpenSSL's own HMAC().
 */
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/hmac.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"
#include "tests/protocol/frame_fixture.h"

static uint8_t buf[4096];

static const struct frame_auth_key key = {
	.key_id = 7,
	.key_size = 32,
	.key = "0123456789abcdef0123456789abcdef",
};

#define NOW_MS 1764100000000ull
#define WINDOW_MS 30000ull

Test(frame_auth, sign_then_verify)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	struct frame_records records;
	uint32_t key_id;

	frame_auth_sign(buf, size, &key, NOW_MS);
	cr_assert_eq(frame_records_decode(buf, size, &records), FRAME_OK, "CRC rewritten");
	cr_assert(frame_auth_key_id(buf, size, &key_id));
	cr_assert_eq(key_id, 7);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS, WINDOW_MS), FRAME_OK);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS + WINDOW_MS, WINDOW_MS), FRAME_OK);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS - WINDOW_MS, WINDOW_MS), FRAME_OK);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS + WINDOW_MS + 1, WINDOW_MS),
		     FRAME_ERR_AUTH_STALE);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS - WINDOW_MS - 1, WINDOW_MS),
		     FRAME_ERR_AUTH_STALE);
}

Test(frame_auth, tag_matches_openssl_hmac)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	uint8_t want[32];
	unsigned int want_size = 0;

	frame_auth_sign(buf, size, &key, NOW_MS);
	HMAC(EVP_sha256(), key.key, key.key_size, buf + 8, size - 8 - 32, want, &want_size);
	cr_assert_eq(want_size, 32);
	cr_assert_arr_eq(buf + size - 32, want, 32);
}

Test(frame_auth, refuses_wrong_key_id_missing_trailer_and_any_changed_byte)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	struct frame_auth_key other = key;

	frame_auth_sign(buf, size, &key, NOW_MS);
	other.key[0] ^= 1;
	cr_assert_eq(frame_auth_verify(buf, size, &other, NOW_MS, WINDOW_MS), FRAME_ERR_AUTH_TAG);
	other = key;
	other.key_id = 8;
	cr_assert_eq(frame_auth_verify(buf, size, &other, NOW_MS, WINDOW_MS), FRAME_ERR_AUTH_TAG);
	other = key;
	other.key_size = 31;
	cr_assert_eq(frame_auth_verify(buf, size, &other, NOW_MS, WINDOW_MS), FRAME_ERR_AUTH_TAG);

	/* Every byte after frame_size is covered by the tag (the CRC is recomputed). */
	for (uint32_t i = FRAME_OFF_VERSION; i < size; i++) {
		buf[i] ^= 0x20;
		frame_seal(buf, size);
		cr_assert_neq(frame_auth_verify(buf, size, &key, NOW_MS, WINDOW_MS), FRAME_OK,
			      "byte %u", i);
		buf[i] ^= 0x20;
	}
	frame_seal(buf, size);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS, WINDOW_MS), FRAME_OK);

	size = fixture_records_frame(buf, sizeof(buf), false);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS, WINDOW_MS), FRAME_ERR_AUTH_MISSING);
}

Test(frame_auth, resign_refreshes_only_the_trailer)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	uint8_t before[4096];

	frame_auth_sign(buf, size, &key, NOW_MS);
	memcpy(before, buf, size);
	frame_auth_sign(buf, size, &key, NOW_MS + 60000);
	cr_assert_arr_eq(buf + 8, before + 8, size - 8 - FRAME_AUTH_SIZE);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS, WINDOW_MS), FRAME_ERR_AUTH_STALE);
	cr_assert_eq(frame_auth_verify(buf, size, &key, NOW_MS + 60000, WINDOW_MS), FRAME_OK);
}

Test(frame_auth, trailer_reserved_bytes_must_be_zero)
{
	uint32_t size = fixture_records_frame(buf, sizeof(buf), true);
	struct frame_records records;

	frame_auth_sign(buf, size, &key, NOW_MS);
	buf[size - FRAME_AUTH_SIZE + 4] = 1;
	frame_seal(buf, size);
	cr_assert_eq(frame_records_decode(buf, size, &records), FRAME_ERR_RESERVED);
}

/* Answers to signed frames are signed (section 7): sign_key makes the encoder sign. */
Test(frame_auth, an_answer_with_a_sign_key_is_signed_and_verifies)
{
	const struct frame_ack_run run = { .seq_first = 9, .shard_index = 2, .count = 1 };
	struct frame_ack ack = {
		.producer_id = 31, .batch_seq = 4, .producer_epoch = 1,
		.credit_size = FRAME_CREDIT_UNLIMITED, .flags = FRAME_ACK_DURABLE,
		.record_count = 1, .record_index = FRAME_RECORD_INDEX_NONE, .run_count = 1,
		.type = FRAME_TYPE_ACK, .status = FRAME_STATUS_OK, .runs = &run,
		.sign_key = &key, .sign_time_ms = NOW_MS,
	};
	struct frame_auth_key other = key;
	struct frame_ack out;
	int size = frame_ack_encode(buf, sizeof(buf), &ack, false);

	cr_assert_eq(size, FRAME_ACK_HEADER_SIZE + FRAME_ACK_RUN_SIZE + FRAME_AUTH_SIZE);
	cr_assert_eq(frame_ack_decode(buf, (size_t)size, &out), FRAME_OK);
	cr_assert_not_null(out.auth);
	cr_assert_eq(frame_auth_verify(buf, (uint32_t)size, &key, NOW_MS, WINDOW_MS), FRAME_OK);
	other.key[0] ^= 1;
	cr_assert_eq(frame_auth_verify(buf, (uint32_t)size, &other, NOW_MS, WINDOW_MS),
		     FRAME_ERR_AUTH_TAG, "a forger without the key cannot make one");
	buf[40] ^= 1; /* Any field changed (here record_index): the tag no longer matches. */
	frame_seal(buf, (uint32_t)size);
	cr_assert_eq(frame_auth_verify(buf, (uint32_t)size, &key, NOW_MS, WINDOW_MS),
		     FRAME_ERR_AUTH_TAG);
	ack.sign_key = NULL;
	cr_assert_eq(frame_ack_encode(buf, sizeof(buf), &ack, false),
		     FRAME_ACK_HEADER_SIZE + FRAME_ACK_RUN_SIZE, "unsigned without a key");
}
