/* crc32c.c - CRC-32C: hardware path on x86-64 with SSE4.2, slicing table otherwise. */
#include <stdbool.h>
#include <string.h>

#include "common/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t crc32c_table[8][256];
static bool crc32c_table_ready;

static void
crc32c_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
				crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
	/* Benign race: every thread computes identical contents. */
	__atomic_store_n(&crc32c_table_ready, true, __ATOMIC_RELEASE);
}

uint32_t
crc32c_sw(uint32_t crc, const void *data, size_t size)
{
	const uint8_t *p = data;

	if (!__atomic_load_n(&crc32c_table_ready, __ATOMIC_ACQUIRE))
		crc32c_table_init();
	crc = ~crc;
	while (size >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
		      crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff] ^
		      crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff] ^
		      crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
		p += 8;
		size -= 8;
	}
	while (size-- > 0)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const void *data, size_t size)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	while (size >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		size -= 8;
	}
	while (size-- > 0)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

uint32_t
crc32c(uint32_t crc, const void *data, size_t size)
{
	static int has_sse42 = -1;

	if (__builtin_expect(has_sse42 < 0, 0))
		has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	return has_sse42 ? crc32c_hw(crc, data, size) : crc32c_sw(crc, data, size);
}
#else
uint32_t
crc32c(uint32_t crc, const void *data, size_t size)
{
	return crc32c_sw(crc, data, size);
}
#endif
