/*
 * cli_kpl: an aggregate packed by protobuf-c (from the same .proto) unpacks to its
 * user records with their keys; every truncation is refused (-ENOMSG without room
 * for magic and MD5, -EBADMSG after), every flipped bit after the magic is refused
 * or yields the same user records count checks do not contradict, a key index
 * outside the tables is -EPROTO, and data without the magic is -ENOMSG.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/hashkey.h"
#include "tests/support/guard_buf.h"
#include "common/kpl.h"
#include "common/kpl_aggregated.pb-c.h"

static uint8_t agg_bytes[1024];
static size_t agg_size;

/* {keys: [a, bb], hash keys: [7], records: (a, "one"), (bb, hash 7, ""), (a, "three")} */
static size_t
agg_build(uint64_t bad_index)
{
	char *keys[] = { "a", "bb" };
	char *hash_keys[] = { "7" };
	Record records[3];
	Record *record_ptrs[3];
	AggregatedRecord agg = AGGREGATED_RECORD__INIT;
	static const char *const data[] = { "one", "", "three" };
	size_t body;

	for (int i = 0; i < 3; i++) {
		record__init(&records[i]);
		records[i].partition_key_index = i == 1 ? 1 : 0;
		records[i].data.data = (uint8_t *)data[i];
		records[i].data.len = strlen(data[i]);
		record_ptrs[i] = &records[i];
	}
	records[1].has_explicit_hash_key_index = 1;
	records[1].explicit_hash_key_index = 0;
	records[2].partition_key_index += bad_index;
	agg.n_partition_key_table = 2;
	agg.partition_key_table = keys;
	agg.n_explicit_hash_key_table = 1;
	agg.explicit_hash_key_table = hash_keys;
	agg.n_records = 3;
	agg.records = record_ptrs;
	memcpy(agg_bytes, "\xf3\x89\x9a\xc2", 4);
	body = aggregated_record__pack(&agg, agg_bytes + 4);
	cr_assert_lt(body + 20, sizeof(agg_bytes));
	hashkey_md5(agg_bytes + 4, body, agg_bytes + 4 + body);
	return 4 + body + 16;
}

Test(cli_kpl, unpacks_user_records_with_their_keys)
{
	struct kpl agg;
	struct kpl_record r;

	agg_size = agg_build(0);
	cr_assert(kpl_is_aggregated(agg_bytes, agg_size));
	cr_assert_eq(kpl_open(guard_buf_place(agg_bytes, agg_size), agg_size, &agg), 0);
	cr_assert_eq(agg.record_count, 3);
	kpl_record(&agg, 0, &r);
	cr_assert_str_eq(r.partition_key, "a");
	cr_assert_null(r.explicit_hash_key);
	cr_assert(r.data_size == 3 && memcmp(r.data, "one", 3) == 0);
	kpl_record(&agg, 1, &r);
	cr_assert_str_eq(r.partition_key, "bb");
	cr_assert_str_eq(r.explicit_hash_key, "7");
	cr_assert_eq(r.data_size, 0);
	kpl_record(&agg, 2, &r);
	cr_assert(r.data_size == 5 && memcmp(r.data, "three", 5) == 0);
	kpl_close(&agg);
}

Test(cli_kpl, refuses_every_truncation)
{
	agg_size = agg_build(0);
	for (size_t cut = 0; cut < agg_size; cut++) {
		struct kpl agg;
		int err = kpl_open(guard_buf_place(agg_bytes, cut), cut, &agg);

		cr_assert_eq(err, cut < 20 ? -ENOMSG : -EBADMSG, "cut %zu: %d", cut, err);
	}
}

/* A flipped bit in the protobuf or the MD5 fails the checksum; in the magic, the magic. */
Test(cli_kpl, refuses_every_bit_flip)
{
	agg_size = agg_build(0);
	for (size_t bit = 0; bit < agg_size * 8; bit++) {
		struct kpl agg;
		int err;

		agg_bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		err = kpl_open(guard_buf_place(agg_bytes, agg_size), agg_size, &agg);
		agg_bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(err, bit < 32 ? -ENOMSG : -EBADMSG, "bit %zu: %d", bit, err);
	}
}

Test(cli_kpl, refuses_a_key_index_outside_the_table)
{
	struct kpl agg;

	agg_size = agg_build(2);
	cr_assert_eq(kpl_open(agg_bytes, agg_size, &agg), -EPROTO);
}

/* A checksum that matches over bytes that are not an AggregatedRecord. */
Test(cli_kpl, refuses_a_protobuf_that_does_not_parse)
{
	static uint8_t bytes[4 + 3 + 16] = { 0xf3, 0x89, 0x9a, 0xc2, 0x1a, 0x05, 0x00 };
	struct kpl agg;

	hashkey_md5(bytes + 4, 3, bytes + 7);
	cr_assert_eq(kpl_open(bytes, sizeof(bytes), &agg), -EPROTO);
}

Test(cli_kpl, plain_data_is_not_an_aggregate)
{
	static const uint8_t plain[32] = "just a record, 32 bytes long....";
	struct kpl agg;

	cr_assert(!kpl_is_aggregated(plain, sizeof(plain)));
	cr_assert_eq(kpl_open(plain, sizeof(plain), &agg), -ENOMSG);
}
