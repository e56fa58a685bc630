/*
 * md5x.c - multi-lane MD5 (see md5x.h): one kernel per vector width, written
 * once (md5x_lanes.inc) with GCC vector types and compiled per ISA through
 * target attributes, so the rest of the build keeps its baseline -march.
 * The CPU is asked once which kernels it runs.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashkey.h"
#include "common/md5x.h"

/* Blocks of the padded message: size bytes, 0x80, zeros, 8-byte bit length. */
static inline uint32_t
md5x_block_count(uint32_t size)
{
	return (size + 8) / 64 + 1;
}

/*
 * Block `block` of the padded message into buf: message bytes, 0x80, zeros.
 * (Measured: a byte buffer read back as words beats assembling each word in
 * registers, whose size-dependent branches mispredict.)
 */
static inline void
md5x_block_fill(const uint8_t *message, uint32_t size, uint32_t block, uint8_t buf[64])
{
	uint32_t offset = block * 64;

	memset(buf, 0, 64);
	if (offset < size)
		memcpy(buf, message + offset, size - offset < 64 ? size - offset : 64);
	if (size >= offset && size - offset < 64)
		buf[size - offset] = 0x80;
}

#if defined(__x86_64__) && defined(__GNUC__)

#define MD5X_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5X_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5X_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5X_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5X_STEP(f, a, b, c, d, mk, t, s)                                  \
	do {                                                                 \
		(a) += (mk) + (uint32_t)(t); /* Off the b-c-d chain. */     \
		(a) += f(b, c, d);                                           \
		(a) = (((a) << (s)) | ((a) >> (32 - (s)))) + (b);            \
	} while (0)
#define MD5X_R4(f, a, b, c, d, m, k0, k1, k2, k3, t0, t1, t2, t3, s0, s1, s2, s3) \
	do {                                                                 \
		MD5X_STEP(f, a, b, c, d, (m)[k0], t0, s0);                   \
		MD5X_STEP(f, d, a, b, c, (m)[k1], t1, s1);                   \
		MD5X_STEP(f, c, d, a, b, (m)[k2], t2, s2);                   \
		MD5X_STEP(f, b, c, d, a, (m)[k3], t3, s3);                   \
	} while (0)
/* RFC 1321, section 3.4: 64 steps, four rounds of 16. */
#define MD5X_ROUNDS(a, b, c, d, m)                                                              \
	do {                                                                                    \
		MD5X_R4(MD5X_F, a, b, c, d, m, 0, 1, 2, 3, 0xd76aa478, 0xe8c7b756,             \
			0x242070db, 0xc1bdceee, 7, 12, 17, 22);                                 \
		MD5X_R4(MD5X_F, a, b, c, d, m, 4, 5, 6, 7, 0xf57c0faf, 0x4787c62a,             \
			0xa8304613, 0xfd469501, 7, 12, 17, 22);                                 \
		MD5X_R4(MD5X_F, a, b, c, d, m, 8, 9, 10, 11, 0x698098d8, 0x8b44f7af,           \
			0xffff5bb1, 0x895cd7be, 7, 12, 17, 22);                                 \
		MD5X_R4(MD5X_F, a, b, c, d, m, 12, 13, 14, 15, 0x6b901122, 0xfd987193,         \
			0xa679438e, 0x49b40821, 7, 12, 17, 22);                                 \
		MD5X_R4(MD5X_G, a, b, c, d, m, 1, 6, 11, 0, 0xf61e2562, 0xc040b340,            \
			0x265e5a51, 0xe9b6c7aa, 5, 9, 14, 20);                                  \
		MD5X_R4(MD5X_G, a, b, c, d, m, 5, 10, 15, 4, 0xd62f105d, 0x02441453,           \
			0xd8a1e681, 0xe7d3fbc8, 5, 9, 14, 20);                                  \
		MD5X_R4(MD5X_G, a, b, c, d, m, 9, 14, 3, 8, 0x21e1cde6, 0xc33707d6,            \
			0xf4d50d87, 0x455a14ed, 5, 9, 14, 20);                                  \
		MD5X_R4(MD5X_G, a, b, c, d, m, 13, 2, 7, 12, 0xa9e3e905, 0xfcefa3f8,           \
			0x676f02d9, 0x8d2a4c8a, 5, 9, 14, 20);                                  \
		MD5X_R4(MD5X_H, a, b, c, d, m, 5, 8, 11, 14, 0xfffa3942, 0x8771f681,           \
			0x6d9d6122, 0xfde5380c, 4, 11, 16, 23);                                 \
		MD5X_R4(MD5X_H, a, b, c, d, m, 1, 4, 7, 10, 0xa4beea44, 0x4bdecfa9,            \
			0xf6bb4b60, 0xbebfbc70, 4, 11, 16, 23);                                 \
		MD5X_R4(MD5X_H, a, b, c, d, m, 13, 0, 3, 6, 0x289b7ec6, 0xeaa127fa,            \
			0xd4ef3085, 0x04881d05, 4, 11, 16, 23);                                 \
		MD5X_R4(MD5X_H, a, b, c, d, m, 9, 12, 15, 2, 0xd9d4d039, 0xe6db99e5,           \
			0x1fa27cf8, 0xc4ac5665, 4, 11, 16, 23);                                 \
		MD5X_R4(MD5X_I, a, b, c, d, m, 0, 7, 14, 5, 0xf4292244, 0x432aff97,            \
			0xab9423a7, 0xfc93a039, 6, 10, 15, 21);                                 \
		MD5X_R4(MD5X_I, a, b, c, d, m, 12, 3, 10, 1, 0x655b59c3, 0x8f0ccc92,           \
			0xffeff47d, 0x85845dd1, 6, 10, 15, 21);                                 \
		MD5X_R4(MD5X_I, a, b, c, d, m, 8, 15, 6, 13, 0x6fa87e4f, 0xfe2ce6e0,           \
			0xa3014314, 0x4e0811a1, 6, 10, 15, 21);                                 \
		MD5X_R4(MD5X_I, a, b, c, d, m, 4, 11, 2, 9, 0xf7537e82, 0xbd3af235,            \
			0x2ad7d2bb, 0xeb86d391, 6, 10, 15, 21);                                 \
	} while (0)

__extension__ typedef uint32_t md5x_v8 __attribute__((vector_size(32)));
__extension__ typedef uint32_t md5x_v16 __attribute__((vector_size(64)));

#define MD5X_N 8
#define MD5X_V md5x_v8
#define MD5X_FN md5x_kernel_avx2
#define MD5X_TARGET "avx2"
#include "common/md5x_lanes.inc"
#undef MD5X_N
#undef MD5X_V
#undef MD5X_FN
#undef MD5X_TARGET

#define MD5X_N 16
#define MD5X_V md5x_v16
#define MD5X_FN md5x_kernel_avx512
#define MD5X_TARGET "avx512f"
#include "common/md5x_lanes.inc"
#undef MD5X_N
#undef MD5X_V
#undef MD5X_FN
#undef MD5X_TARGET

#define MD5X_HAVE_SIMD 1
#else
#define MD5X_HAVE_SIMD 0
#endif

bool
md5x_impl_supported(enum md5x_impl impl)
{
	switch (impl) {
	case MD5X_IMPL_SCALAR:
		return true;
#if MD5X_HAVE_SIMD
	case MD5X_IMPL_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2");
	case MD5X_IMPL_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f");
#else
	case MD5X_IMPL_AVX2:
	case MD5X_IMPL_AVX512:
		return false;
#endif
	}
	return false;
}

enum md5x_impl
md5x_impl_best(void)
{
	/* -1: not asked yet. Relaxed: every thread computes the same answer. */
	static atomic_int best = -1;
	int impl = atomic_load_explicit(&best, memory_order_relaxed);

	if (impl < 0) {
		/* SLUICE_MD5X=scalar|avx2 narrows the choice (benchmarks: before and after). */
		const char *cap = getenv("SLUICE_MD5X");
		bool avx512_ok = cap == NULL || strcmp(cap, "avx512") == 0;
		bool avx2_ok = avx512_ok || strcmp(cap, "avx2") == 0;

		impl = avx512_ok && md5x_impl_supported(MD5X_IMPL_AVX512) ? MD5X_IMPL_AVX512 :
		       avx2_ok && md5x_impl_supported(MD5X_IMPL_AVX2) ? MD5X_IMPL_AVX2 :
		       MD5X_IMPL_SCALAR;
		atomic_store_explicit(&best, impl, memory_order_relaxed);
	}
	return (enum md5x_impl)impl;
}

uint32_t
md5x_impl_lanes(enum md5x_impl impl)
{
	return impl == MD5X_IMPL_AVX512 ? 16 : impl == MD5X_IMPL_AVX2 ? 8 : 1;
}

const char *
md5x_impl_name(enum md5x_impl impl)
{
	return impl == MD5X_IMPL_AVX512 ? "avx512" : impl == MD5X_IMPL_AVX2 ? "avx2" : "scalar";
}

void
md5x_hash_impl(enum md5x_impl impl, const uint8_t *const messages[], const uint32_t sizes[],
	       uint32_t count, uint8_t digests_out[][16])
{
	assert(md5x_impl_supported(impl));
	for (uint32_t i = 0; i < count;) {
		uint32_t left = count - i;

#if MD5X_HAVE_SIMD
		/*
		 * A kernel call costs about the same for 1 or all lanes: a few messages
		 * left go to the narrower kernel, one or two to OpenSSL.
		 */
		if (impl == MD5X_IMPL_AVX512 && left > 8) {
			uint32_t n = left < 16 ? left : 16;

			md5x_kernel_avx512(messages + i, sizes + i, n, digests_out + i);
			i += n;
			continue;
		}
		if (impl != MD5X_IMPL_SCALAR && left > 2) {
			uint32_t n = left < 8 ? left : 8;

			md5x_kernel_avx2(messages + i, sizes + i, n, digests_out + i);
			i += n;
			continue;
		}
#endif
		hashkey_md5(messages[i], sizes[i], digests_out[i]);
		i++;
	}
}

void
md5x_hash(const uint8_t *const messages[], const uint32_t sizes[], uint32_t count,
	  uint8_t digests_out[][16])
{
	md5x_hash_impl(md5x_impl_best(), messages, sizes, count, digests_out);
}
