/*
 * api_out: base64 agrees with OpenSSL's encoder for every small size and for
 * random data; JSON strings escape exactly what JSON requires and replace
 * invalid UTF-8; the hard cap marks overflow instead of growing; the pool
 * never hands out more buffers than its counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>

#include "control/server_pool.h"
#include "tests/support/seed.h"

static bool
out_is(const struct api_out *out, const char *text)
{
	return out->size == strlen(text) && memcmp(out->data, text, out->size) == 0;
}

Test(api_out, base64_matches_openssl)
{
	static uint8_t data[4096];
	static char expect[4096 * 2];
	struct seed_rng rng;
	uint64_t seed = seed_base();

	seed_rng_init(&rng, seed);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)seed_rng_next(&rng);
	for (size_t size = 0; size < 300; size++) {
		struct api_out out;
		int n = EVP_EncodeBlock((unsigned char *)expect, data, (int)size);

		api_out_init(&out, 1 << 20);
		api_out_append(&out, "[", 1);
		api_out_base64(&out, data, size);
		cr_assert_eq(out.size, (size_t)n + 1, "size %zu seed %llu", size,
			     (unsigned long long)seed);
		cr_assert(memcmp(out.data + 1, expect, (size_t)n) == 0, "size %zu", size);
		api_out_release(&out);
	}
}

Test(api_out, base64_known_values)
{
	struct api_out out;

	api_out_init(&out, 1024);
	api_out_base64(&out, "f", 1);
	api_out_append(&out, ",", 1);
	api_out_base64(&out, "fo", 2);
	api_out_append(&out, ",", 1);
	api_out_base64(&out, "foo", 3);
	api_out_append(&out, ",", 1);
	api_out_base64(&out, "\xff\xfe\x00\x01", 4);
	cr_assert(out_is(&out, "Zg==,Zm8=,Zm9v,//4AAQ=="));
	api_out_release(&out);
}

Test(api_out, json_escaping)
{
	static const struct {
		const char *in;
		size_t size;
		const char *out;
	} cases[] = {
		{ "plain", 5, "\"plain\"" },
		{ "", 0, "\"\"" },
		{ "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
		{ "\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"" },
		{ "\x01\x0b\x1f\x00", 4, "\"\\u0001\\u000b\\u001f\\u0000\"" },
		{ "/\x7f", 2, "\"/\x7f\"" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
		  "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "\xc3", 1, "\"\\ufffd\"" },
		{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"" },
		{ "\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"" },
		{ "\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
		{ "\xff" "a", 2, "\"\\ufffda\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_out out;

		api_out_init(&out, 1024);
		api_out_json_string(&out, cases[i].in, cases[i].size);
		cr_assert(!out.overflow);
		cr_assert(out_is(&out, cases[i].out), "case %zu: got %.*s", i, (int)out.size,
			  out.data);
		api_out_release(&out);
	}
}

Test(api_out, printf_grows_and_formats)
{
	struct api_out out;

	api_out_init(&out, 1 << 20);
	for (int i = 0; i < 2000; i++)
		api_out_printf(&out, "%d,", i);
	cr_assert(!out.overflow);
	cr_assert(memcmp(out.data, "0,1,2,", 6) == 0);
	cr_assert(memcmp(out.data + out.size - 5, "1999,", 5) == 0);
	api_out_release(&out);
}

Test(api_out, cap_marks_overflow_and_drops_later_appends)
{
	struct api_out out;
	char big[100];

	memset(big, 'x', sizeof(big));
	api_out_init(&out, 100);
	api_out_append(&out, big, 100);
	cr_assert(!out.overflow);
	cr_assert_eq(out.size, 100);
	api_out_append(&out, "y", 1);
	cr_assert(out.overflow);
	cr_assert_eq(out.size, 100);
	api_out_reset(&out);
	cr_assert(!out.overflow);
	api_out_base64(&out, big, 75);  /* 100 bytes of base64: fits exactly. */
	cr_assert(!out.overflow);
	api_out_base64(&out, big, 1);
	cr_assert(out.overflow);
	api_out_reset(&out);
	api_out_json_string(&out, big, 17); /* Worst-case reservation 104 > 100. */
	cr_assert(out.overflow);
	api_out_release(&out);
}

Test(api_out, pool_is_bounded_and_recycles)
{
	static const size_t sizes[] = { 64, 1024 };
	static const uint32_t counts[] = { 2, 1 };
	struct buf_pool pool;
	void *a;
	void *b;
	void *c;
	void *d;
	size_t sa;
	size_t sb;
	size_t sc;
	size_t sd;

	cr_assert_eq(buf_pool_init(&pool, sizes, counts, 2), 0);
	a = buf_pool_get(&pool, 10, &sa);
	b = buf_pool_get(&pool, 64, &sb);
	c = buf_pool_get(&pool, 10, &sc);  /* Small class exhausted: falls back to 1024. */
	cr_assert(a != NULL && b != NULL && c != NULL);
	cr_assert_eq(sa, 64);
	cr_assert_eq(sc, 1024);
	cr_assert_null(buf_pool_get(&pool, 1, &sd));
	cr_assert_null(buf_pool_get(&pool, 1025, &sd));
	cr_assert(buf_pool_exhausted(&pool));
	buf_pool_put(&pool, a, sa);
	cr_assert(buf_pool_exhausted(&pool));  /* Only the largest class counts. */
	d = buf_pool_get(&pool, 1, &sd);
	cr_assert_eq(d, a);
	buf_pool_put(&pool, b, sb);
	buf_pool_put(&pool, c, sc);
	cr_assert(!buf_pool_exhausted(&pool));
	buf_pool_put(&pool, d, sd);
	cr_assert_eq(buf_pool_size_max(&pool), 1024);
	buf_pool_fini(&pool);
}

Test(api_out, pool_backed_out_overflows_when_the_pool_is_empty)
{
	static const size_t sizes[] = { 64, 1024 };
	static const uint32_t counts[] = { 1, 1 };
	struct buf_pool pool;
	struct api_out out;
	char text[200];

	memset(text, 'z', sizeof(text));
	cr_assert_eq(buf_pool_init(&pool, sizes, counts, 2), 0);
	buf_pool_thread_set(&pool);
	api_out_init(&out, 1 << 20);
	api_out_append(&out, text, 10);
	cr_assert_eq(out.capacity, 64);
	api_out_append(&out, text, 200);
	cr_assert_eq(out.capacity, 1024);
	cr_assert_eq(out.size, 210);
	api_out_append(&out, text, 1000);  /* No class above 1024: the cap of this pool. */
	cr_assert(out.overflow);
	api_out_release(&out);
	buf_pool_thread_set(NULL);
	cr_assert_eq(pool.classes[0].free_count, 1);
	cr_assert_eq(pool.classes[1].free_count, 1);
	buf_pool_fini(&pool);
}
