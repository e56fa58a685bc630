/*
 * common/base64: every length round-trips; decoding is as strict as AWS's
 * blob decoding (each fault in the last group and in a fast-path group).
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/base64.h"
#include "tests/support/guard_buf.h"

Test(base64, round_trips_every_length)
{
	uint8_t data[64];
	uint8_t back[64];
	char text[100];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 1);
	for (size_t n = 0; n <= sizeof(data); n++) {
		size_t size = base64_encode(data, n, text);

		cr_assert_eq(size, (n + 2) / 3 * 4);
		cr_assert_eq(base64_decode(guard_buf_place(text, size), size, back, sizeof(back)),
			     (int64_t)n);
		cr_assert_arr_eq(back, data, n);
	}
}

Test(base64, is_as_strict_as_aws)
{
	static const char *const bad[] = {
		"a", "ab", "abc", "abcde", "ab=c", "a===", "====", "YQ=a", "YR==", "YWJ=",
		"YW J", "YW\nJ", "YWI*", "=YWI",
		/* The same faults in a group that is not the last one (the fast path). */
		"YW*JYWJj", "YWJ*YWJj", "Y*JjYWJj", "YWJ=YWJj", "YW==YWJj", "YWJ\xffYWJj",
		"YWJ YWJj",
	};
	uint8_t out[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_lt(base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), 0, "%s",
			     bad[i]);
	cr_assert_eq(base64_decode("YQ==", 4, out, sizeof(out)), 1);
	cr_assert_eq(base64_decode("YWI=", 4, out, sizeof(out)), 2);
	cr_assert_eq(base64_decode("", 0, out, sizeof(out)), 0);
	cr_assert_eq(base64_decode("YWJj", 4, out, 2), -ENOBUFS);
}
