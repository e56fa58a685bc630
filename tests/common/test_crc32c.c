/* crc32c: the standard check value, hardware and table paths agree, chaining works. */
#include <criterion/criterion.h>

#include "common/crc32c.h"
#include "tests/support/seed.h"

Test(crc32c, check_value)
{
	cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(crc32c_sw(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(crc32c(0, "", 0), 0u);
}

Test(crc32c, hw_and_sw_agree_on_random_spans)
{
	static unsigned char buf[4096];
	struct seed_rng rng;

	seed_rng_init(&rng, seed_base());
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)seed_rng_next(&rng);
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len < 300; len++)
			cr_assert_eq(crc32c(7, buf + off, len), crc32c_sw(7, buf + off, len),
				     "off %zu len %zu", off, len);
}

/* Spans long enough for the three-stream rounds (384 bytes each), with every tail. */
Test(crc32c, hw_and_sw_agree_on_long_spans)
{
	static unsigned char buf[4096 + 16];
	struct seed_rng rng;
	uint64_t seed = seed_base();

	seed_rng_init(&rng, seed);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)seed_rng_next(&rng);
	for (size_t len = 300; len <= 4096; len += 1 + len % 7)
		cr_assert_eq(crc32c(7, buf + len % 16, len), crc32c_sw(7, buf + len % 16, len),
			     "len %zu seed %llu", len, (unsigned long long)seed);
	/* A flipped bit anywhere in a long span changes the CRC. */
	for (size_t bit = 0; bit < 1600 * 8; bit += 97) {
		uint32_t before = crc32c(0, buf, 1600);

		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		cr_assert_neq(crc32c(0, buf, 1600), before, "bit %zu", bit);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
}

Test(crc32c, chains)
{
	const char *s = "sluice streams records";
	uint32_t whole = crc32c(0, s, 22);

	cr_assert_eq(crc32c(crc32c(0, s, 10), s + 10, 12), whole);
}
