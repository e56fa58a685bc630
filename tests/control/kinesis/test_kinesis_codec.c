/*
 * kinesis codecs: sequence numbers (AWS/kinesalite v2 layout, golden values),
 * shard iterators and NextTokens (round trip, every truncation, every flipped
 * bit, wrong secret), and routing golden values (strict base64: tests/common).
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/hashkey.h"
#include "control/iterator.h"
#include "control/kinesis.h"
#include "control/seqnum.h"
#include "tests/support/guard_buf.h"
#include "tests/support/seed.h"

static const uint8_t secret[ITERATOR_SECRET_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

static void
assert_seqnum(const struct seqnum *sn, const char *expected)
{
	char buf[SEQNUM_DECIMAL_SIZE];
	struct seqnum back;

	cr_assert_eq(seqnum_format(sn, buf), strlen(expected));
	cr_assert_str_eq(buf, expected);
	cr_assert_eq(seqnum_parse(guard_buf_place(buf, strlen(buf)), strlen(buf), &back), 0);
	cr_assert_eq(back.shard_created_s, sn->shard_created_s);
	cr_assert_eq(back.shard_index, sn->shard_index);
	cr_assert_eq(back.seq, sn->seq);
	cr_assert_eq(back.put_s, sn->put_s);
}

Test(seqnum, matches_the_reference_worked_example)
{
	struct seqnum sn = { 0x06b07dddd, 0, 0, 0x06b07dddd };

	assert_seqnum(&sn, "49680576507334914667461750157382440720230342774954655746");
	sn.shard_index = 1;
	/* Adjacent shards' starting numbers differ by 2^144 + 16, as observed on AWS. */
	assert_seqnum(&sn, "49680576507357215412660280780523976438502991136460636178");
}

static int
client(const char *text, struct seqnum_client *c)
{
	return seqnum_parse_client(guard_buf_place(text, strlen(text)), strlen(text), c);
}

/* A client's number read as AWS reads it (kinesalite's versions; issue 12). */
Test(seqnum, client_numbers_are_read_as_aws_reads_them)
{
	struct seqnum sn = { .shard_created_s = 1500000000, .shard_index = 7, .seq = 42,
			     .put_s = 1500000100 };
	char ours[SEQNUM_DECIMAL_SIZE];
	struct seqnum_client c;

	/* Small: 2^124 added, version 0, the shard index in the last four hex digits. */
	cr_assert_eq(client("5", &c), 0);
	cr_assert(c.version == 0 && c.shard_index == 5 && c.shard_created_s == 0);
	cr_assert_eq(client("12345", &c), 0);
	cr_assert_eq(c.shard_index, 12345);
	/* Ours are version 2, every field as written. */
	seqnum_format(&sn, ours);
	cr_assert_eq(client(ours, &c), 0);
	cr_assert(c.version == 2 && c.shard_index == 7 && c.seq == 42 &&
		  c.shard_created_s == 1500000000 && c.put_s == 1500000100);
	/* 0x2...01: version 1. */
	cr_assert_eq(client("49039857307708443467467104868809893875799651909875269633", &c), 0);
	cr_assert_eq(c.version, 1);
	/* Version 3 fails inside AWS; 4 and exactly 2^185 (no version) are invalid. */
	cr_assert_eq(client("49039857307708443467467104868809893875799651909875269635", &c),
		     -ERANGE);
	cr_assert_eq(client("49039857307708443467467104868809893875799651909875269636", &c),
		     -EINVAL);
	cr_assert_eq(client("49039857307708443467467104868809893875799651909875269632", &c),
		     -EINVAL);
	/* An 8 leading the seq field; a version 0 created too late; 2^130 (no version). */
	cr_assert_eq(client("49039857307719593840066370180380661734935976090628259842", &c),
		     -EINVAL);
	cr_assert_eq(client("26227199374822427428162556223570313216", &c), -EINVAL);
	cr_assert_eq(client("1361129467683753853853498429727072845824", &c), -EINVAL);
	cr_assert_eq(client("x", &c), -EINVAL);
	cr_assert_eq(client("", &c), -EINVAL);
}

Test(seqnum, round_trips_extremes)
{
	struct seqnum a = { 1700000000, 17, SEQNUM_SEQ_MAX, 1700000001 };
	struct seqnum b = { SEQNUM_TIME_MAX, UINT32_MAX, SEQNUM_SEQ_MAX, SEQNUM_TIME_MAX };

	assert_seqnum(&a, "49646437577141927534714672340537024077174787658079011090");
	assert_seqnum(&b, "73559785961551514828601391991642868751110021924530421746");
}

/* Formatting (division by 10^9) and parsing (multiplication by 10) agree on random fields. */
Test(seqnum, random_round_trips)
{
	struct seed_rng rng;

	seed_rng_init(&rng, seed_base());
	for (int i = 0; i < 20000; i++) {
		struct seqnum sn;
		char buf[SEQNUM_DECIMAL_SIZE];
		struct seqnum back;
		size_t size;

		sn.shard_created_s = seed_rng_next(&rng) & SEQNUM_TIME_MAX;
		sn.shard_index = (uint32_t)seed_rng_next(&rng);
		sn.seq = seed_rng_next(&rng) >> (1 + seed_rng_below(&rng, 63));
		sn.put_s = seed_rng_next(&rng) & SEQNUM_TIME_MAX;
		size = seqnum_format(&sn, buf);
		cr_assert_eq(size, strlen(buf));
		cr_assert_neq(buf[0], '0');
		cr_assert_eq(seqnum_parse(buf, size, &back), 0, "%s", buf);
		cr_assert(back.shard_created_s == sn.shard_created_s &&
			  back.shard_index == sn.shard_index && back.seq == sn.seq &&
			  back.put_s == sn.put_s, "%s (seed %llu)", buf,
			  (unsigned long long)seed_base());
	}
}

/* The incremental formatter agrees with the full one, in place, across carries and gaps. */
Test(seqnum, incremental_formatting_matches)
{
	struct seed_rng rng;
	struct seqnum prev = { 0 };
	char text[SEQNUM_DECIMAL_SIZE] = "";
	size_t size = 0;

	seed_rng_init(&rng, seed_base());
	for (int i = 0; i < 20000; i++) {
		struct seqnum sn = prev;
		char full[SEQNUM_DECIMAL_SIZE];

		if (i == 0 || seed_rng_below(&rng, 100) == 0) {
			sn.shard_created_s = seed_rng_next(&rng) & SEQNUM_TIME_MAX;
			sn.shard_index = (uint32_t)seed_rng_next(&rng);
			sn.seq = seed_rng_below(&rng, 2) ? SEQNUM_SEQ_MAX - 5000 :
				 seed_rng_next(&rng) >> 2;
			sn.put_s = seed_rng_next(&rng) & SEQNUM_TIME_MAX;
		} else {
			sn.seq = prev.seq + 1 + (seed_rng_below(&rng, 50) == 0);
			sn.put_s = prev.put_s + (seed_rng_below(&rng, 30) == 0);
		}
		size = seqnum_format_next(i == 0 ? NULL : &prev, text, size, &sn, text);
		cr_assert_eq(seqnum_format(&sn, full), size);
		cr_assert_str_eq(text, full);
		prev = sn;
	}
}

Test(seqnum, orders_like_the_log_within_a_shard)
{
	struct seed_rng rng;
	char prev[SEQNUM_DECIMAL_SIZE] = "";

	seed_rng_init(&rng, seed_base());
	for (uint64_t seq = 0; seq < 2000; seq += 1 + seed_rng_below(&rng, 1000)) {
		/* Arrival time may even go backwards: seq dominates. */
		struct seqnum sn = { 1600000000, 3, seq, 1600000000 + seed_rng_below(&rng, 100) };
		char buf[SEQNUM_DECIMAL_SIZE];

		seqnum_format(&sn, buf);
		cr_assert(strlen(buf) > strlen(prev) ||
			  (strlen(buf) == strlen(prev) && strcmp(buf, prev) > 0), "seq %llu",
			  (unsigned long long)seq);
		strcpy(prev, buf);
	}
}

Test(seqnum, refuses_what_it_did_not_make)
{
	static const char *const bad[] = {
		"", "0", "1", "01", "-1", "12a", "49680576507334914667461750157382440720230342774954655745",
		"49680576507334914667461750157382440720230342774954655747", /* last digit 3 */
		"4968057650733491466746175015738244072023034277495465574600", /* too big */
		"999999999999999999999999999999999999999999999999999999999",
		"1234567890123456789012345678901234567890",
	};
	struct seqnum sn;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(seqnum_parse(bad[i], strlen(bad[i]), &sn), -EINVAL, "%s", bad[i]);
}

Test(seqnum, refuses_every_truncation_and_digit_change)
{
	struct seqnum sn = { 1700000000, 5, 123456789, 1700000123 };
	struct seqnum back;
	char buf[SEQNUM_DECIMAL_SIZE];
	size_t size = seqnum_format(&sn, buf);
	uint32_t accepted = 0;

	for (size_t cut = 0; cut < size; cut++)
		cr_assert_neq(seqnum_parse(guard_buf_place(buf, cut), cut, &back), 0, "cut %zu", cut);
	/* A changed digit may still decode (it is not authenticated), never to the same value. */
	for (size_t i = 0; i < size; i++) {
		char copy[SEQNUM_DECIMAL_SIZE];

		memcpy(copy, buf, size + 1);
		copy[i] = copy[i] == '9' ? '0' : (char)(copy[i] + 1);
		if (seqnum_parse(copy, size, &back) == 0) {
			accepted++;
			cr_assert(back.shard_created_s != sn.shard_created_s ||
				  back.shard_index != sn.shard_index || back.seq != sn.seq ||
				  back.put_s != sn.put_s);
		}
	}
	cr_assert_lt(accepted, size);
}

static struct iterator
sample_iterator(void)
{
	struct iterator it = {
		.issued_ms = 1700000000123, .nonce = 99, .stream_id = 7,
		.incarnation = 0x1234567890abcdefull, .shard_index = 3, .seq = 42,
		.name_size = 6,
	};

	memcpy(it.name, "orders", 7);
	return it;
}

Test(iterator, round_trips)
{
	char text[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator it = sample_iterator();
	struct iterator back;
	size_t size = iterator_encode(secret, &it, text);

	cr_assert_leq(size, 512);
	cr_assert_eq(strncmp(text, "AAAAAAAAAAE", 11), 0, "AWS-like prefix: %s", text);
	cr_assert_eq(iterator_decode(secret, guard_buf_place(text, size), size, &back), 0);
	cr_assert_eq(back.issued_ms, it.issued_ms);
	cr_assert_eq(back.nonce, it.nonce);
	cr_assert_eq(back.stream_id, it.stream_id);
	cr_assert_eq(back.incarnation, it.incarnation);
	cr_assert_eq(back.shard_index, it.shard_index);
	cr_assert_eq(back.seq, it.seq);
	cr_assert_str_eq(back.name, "orders");
}

/* Every byte is defined: the same iterator always encodes to the same text. */
Test(iterator, encoding_is_deterministic)
{
	char a[ITERATOR_TEXT_SIZE_MAX + 1];
	char b[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator it = sample_iterator();
	char noise[4096];

	iterator_encode(secret, &it, a);
	memset(noise, 0x5a, sizeof(noise));
	cr_assert_eq(noise[100], 0x5a); /* Dirties the stack under the next call. */
	iterator_encode(secret, &it, b);
	cr_assert_str_eq(a, b);
}

Test(iterator, longest_name_fits_512)
{
	char text[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator it = sample_iterator();
	struct iterator back;

	memset(it.name, 'x', 128);
	it.name_size = 128;
	cr_assert_leq(iterator_encode(secret, &it, text), 512);
	cr_assert_eq(iterator_decode(secret, text, strlen(text), &back), 0);
	cr_assert_eq(back.name_size, 128);
}

Test(iterator, refuses_tampering_truncation_and_wrong_secret)
{
	char text[ITERATOR_TEXT_SIZE_MAX + 1];
	uint8_t other[ITERATOR_SECRET_SIZE] = { 9 };
	struct iterator it = sample_iterator();
	struct iterator back;
	size_t size = iterator_encode(secret, &it, text);

	for (size_t cut = 0; cut < size; cut++)
		cr_assert_eq(iterator_decode(secret, guard_buf_place(text, cut), cut, &back), -EINVAL);
	for (size_t i = 0; i < size; i++) {
		for (int bit = 0; bit < 8; bit++) {
			char copy[ITERATOR_TEXT_SIZE_MAX + 1];

			memcpy(copy, text, size + 1);
			copy[i] = (char)(copy[i] ^ (1 << bit));
			cr_assert_eq(iterator_decode(secret, copy, size, &back), -EINVAL,
				     "byte %zu bit %d", i, bit);
		}
	}
	cr_assert_eq(iterator_decode(other, text, size, &back), -EINVAL);
	cr_assert_eq(iterator_decode(secret, "garbage", 7, &back), -EINVAL);
}

Test(iterator, tokens_round_trip_and_are_not_iterators)
{
	char text[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator_token token = {
		.issued_ms = 5, .stream_id = 9, .incarnation = 11, .position = 13, .limit = 1,
		.name_size = 1, .name = "s",
	};
	struct iterator_token back;
	struct iterator it;
	size_t size = iterator_token_encode(secret, &token, text);

	cr_assert_eq(iterator_token_decode(secret, text, size, &back), 0);
	cr_assert_eq(back.position, 13);
	cr_assert_eq(back.incarnation, 11);
	cr_assert_str_eq(back.name, "s");
	cr_assert_eq(iterator_decode(secret, text, size, &it), -EINVAL);
	text[size - 2] = text[size - 2] == 'A' ? 'B' : 'A';
	cr_assert_eq(iterator_token_decode(secret, text, size, &back), -EINVAL);
}

static void
assert_hashkey(hashkey_t key, const char *expected)
{
	char buf[HASHKEY_DECIMAL_SIZE];

	hashkey_format_decimal(key, buf);
	cr_assert_str_eq(buf, expected);
}

Test(routing, golden_values)
{
	assert_hashkey(hashkey_from_partition_key("a", 1), "16955237001963240173058271559858726497");
	assert_hashkey(hashkey_from_partition_key("pk1", 3),
		       "329398341438914906102347661116985167824");
	/* pk1 is on shard 1 of 2: above the split. */
	cr_assert_geq(hashkey_from_partition_key("pk1", 3), hashkey_range_start(1, 2));
	assert_hashkey(hashkey_range_start(1, 2), "170141183460469231731687303715884105728");
	assert_hashkey(hashkey_range_start(1, 3) - 1, "113427455640312821154458202477256070484");
	assert_hashkey(hashkey_range_start(1, 3), "113427455640312821154458202477256070485");
	assert_hashkey(hashkey_range_start(2, 3) - 1, "226854911280625642308916404954512140969");
	assert_hashkey(hashkey_range_start(2, 3), "226854911280625642308916404954512140970");
}
