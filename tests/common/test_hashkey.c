/* hashkey: MD5 routing golden values, decimal codec edges, AWS's equal splits. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/hashkey.h"

static void
assert_decimal(hashkey_t key, const char *want)
{
	char buf[HASHKEY_DECIMAL_SIZE];

	cr_assert_eq(hashkey_format_decimal(key, buf), strlen(want));
	cr_assert_str_eq(buf, want);
}

Test(hashkey, md5_golden_values)
{
	assert_decimal(hashkey_from_partition_key("a", 1), "16955237001963240173058271559858726497");
	assert_decimal(hashkey_from_partition_key("pk1", 3),
		       "329398341438914906102347661116985167824");
}

Test(hashkey, decimal_edges)
{
	hashkey_t k;

	cr_assert_eq(hashkey_parse_decimal("0", 1, &k), 0);
	cr_assert(k == 0);
	cr_assert_eq(hashkey_parse_decimal("340282366920938463463374607431768211455", 39, &k), 0);
	cr_assert(k == HASHKEY_MAX);
	assert_decimal(HASHKEY_MAX, "340282366920938463463374607431768211455");
	/* 2^128: one past the maximum. */
	cr_assert_eq(hashkey_parse_decimal("340282366920938463463374607431768211456", 39, &k),
		     -EINVAL);
	cr_assert_eq(hashkey_parse_decimal("", 0, &k), -EINVAL);
	cr_assert_eq(hashkey_parse_decimal("-1", 2, &k), -EINVAL);
	cr_assert_eq(hashkey_parse_decimal("12a", 3, &k), -EINVAL);
	cr_assert_eq(hashkey_parse_decimal("1000000000000000000000000000000000000000", 40, &k),
		     -EINVAL);
}

Test(hashkey, equal_splits_as_aws)
{
	assert_decimal(hashkey_range_start(1, 2), "170141183460469231731687303715884105728");
	assert_decimal(hashkey_range_start(1, 3), "113427455640312821154458202477256070485");
	assert_decimal(hashkey_range_start(2, 3), "226854911280625642308916404954512140970");
	assert_decimal(hashkey_range_start(1, 4), "85070591730234615865843651857942052864");
	cr_assert(hashkey_range_start(0, 7) == 0);
}

Test(hashkey, be_bytes_round_trip)
{
	uint8_t b[16];
	hashkey_t k = hashkey_from_partition_key("device-42", 9);

	hashkey_to_be_bytes(k, b);
	cr_assert(hashkey_from_be_bytes(b) == k);
}
