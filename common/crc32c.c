/* crc32c.c - CRC-32C: hardware path on x86-64 with SSE4.2, slicing table otherwise. */
#include <pthread.h>
#include <stdatomic.h>
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
/*
 * Long spans run three CRC streams at once: the crc32 instruction takes 3
 * cycles but issues every cycle, so one stream uses a third of it. Each
 * round hashes three consecutive CRC32C_LANE-byte pieces (the second and
 * third from register 0) and joins them: crc(A || B) = shift(crc(A)) ^ crc(B),
 * where shift() feeds CRC32C_LANE zero bytes through the register, linear in
 * it, so four byte tables do it (crc32c_shift_table, built once).
 */
#define CRC32C_LANE 128

static uint32_t crc32c_shift_table[4][256];
static bool crc32c_shift_ready;
static pthread_once_t crc32c_shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static void
crc32c_shift_init(void)
{
	for (uint32_t k = 0; k < 4; k++) {
		for (uint32_t v = 0; v < 256; v++) {
			uint64_t c = (uint64_t)v << (8 * k);

			for (uint32_t i = 0; i < CRC32C_LANE / 8; i++)
				c = __builtin_ia32_crc32di(c, 0);
			crc32c_shift_table[k][v] = (uint32_t)c;
		}
	}
	/*
	 * Once (pthread_once): two threads filling the table at once wrote the same
	 * values, still a data race that TSan reported (test_log_basic's producers).
	 */
	__atomic_store_n(&crc32c_shift_ready, true, __ATOMIC_RELEASE);
}

static inline uint64_t
crc32c_shift(uint64_t c)
{
	return crc32c_shift_table[0][c & 0xff] ^ crc32c_shift_table[1][(c >> 8) & 0xff] ^
	       crc32c_shift_table[2][(c >> 16) & 0xff] ^ crc32c_shift_table[3][(c >> 24) & 0xff];
}

/* The raw register `c` over rounds of 3 x CRC32C_LANE bytes; returns the bytes used. */
__attribute__((target("sse4.2"))) static size_t
crc32c_hw_3way(uint64_t *c_inout, const uint8_t *p, size_t size)
{
	uint64_t c = *c_inout;
	size_t used = 0;

	if (!__atomic_load_n(&crc32c_shift_ready, __ATOMIC_ACQUIRE))
		pthread_once(&crc32c_shift_once, crc32c_shift_init);
	for (; size - used >= 3 * CRC32C_LANE; used += 3 * CRC32C_LANE, p += 3 * CRC32C_LANE) {
		uint64_t c1 = 0;
		uint64_t c2 = 0;

		for (uint32_t i = 0; i < CRC32C_LANE; i += 8) {
			uint64_t w0;
			uint64_t w1;
			uint64_t w2;

			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC32C_LANE + i, 8);
			memcpy(&w2, p + 2 * CRC32C_LANE + i, 8);
			c = __builtin_ia32_crc32di(c, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		c = crc32c_shift(c) ^ c1;
		c = crc32c_shift(c) ^ c2;
	}
	*c_inout = c;
	return used;
}

__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const void *data, size_t size)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	if (size >= 3 * CRC32C_LANE) {
		size_t used = crc32c_hw_3way(&c, p, size);

		p += used;
		size -= used;
	}
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
	/*
	 * Any thread may be first to ask the CPU; each stores the same answer. Relaxed atomics:
	 * the flag orders nothing else, but a plain int here is a data race (TSan saw it).
	 */
	static atomic_int has_sse42 = -1;
	int hw = atomic_load_explicit(&has_sse42, memory_order_relaxed);

	if (__builtin_expect(hw < 0, 0)) {
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		atomic_store_explicit(&has_sse42, hw, memory_order_relaxed);
	}
	return hw ? crc32c_hw(crc, data, size) : crc32c_sw(crc, data, size);
}
#else
uint32_t
crc32c(uint32_t crc, const void *data, size_t size)
{
	return crc32c_sw(crc, data, size);
}
#endif
