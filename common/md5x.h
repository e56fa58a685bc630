/*
 * md5x.h - MD5 of many short messages at once (partition keys), one message
 * per SIMD lane: 16 lanes with AVX-512F, 8 with AVX2, chosen at run time;
 * without either, OpenSSL's MD5() one message at a time (hashkey_md5).
 *
 * Why: MD5 is a serial chain of 64 dependent steps per block, so one key
 * leaves most of a core idle (~150 ns per key through OpenSSL here); N keys
 * in N lanes cost about as much as one. Every digest equals MD5() of its
 * message; messages may have any size and differ in size across lanes.
 */
#ifndef SLUICE_MD5X_H
#define SLUICE_MD5X_H

#include <stdbool.h>
#include <stdint.h>

#define MD5X_LANES_MAX 16

enum md5x_impl {
	MD5X_IMPL_SCALAR,           /* OpenSSL MD5(), one message at a time. */
	MD5X_IMPL_AVX2,             /* 8 lanes. */
	MD5X_IMPL_AVX512,           /* 16 lanes. */
};

/*
 * The implementation md5x_hash() uses on this CPU: the widest it supports,
 * or at most what SLUICE_MD5X (scalar, avx2, avx512) allows, read once.
 */
enum md5x_impl md5x_impl_best(void);
/* Messages hashed together per call of the lane kernel: 16, 8 or 1. */
uint32_t md5x_impl_lanes(enum md5x_impl impl);
bool md5x_impl_supported(enum md5x_impl impl);
const char *md5x_impl_name(enum md5x_impl impl);

/*
 * digests_out[i] = MD5(messages[i], sizes[i]) for i < count (any count; the
 * messages go through the lanes in groups). With the best implementation.
 */
void md5x_hash(const uint8_t *const messages[], const uint32_t sizes[], uint32_t count,
	       uint8_t digests_out[][16]);
/* The same with a given implementation, which must be supported (tests, benchmarks). */
void md5x_hash_impl(enum md5x_impl impl, const uint8_t *const messages[], const uint32_t sizes[],
		    uint32_t count, uint8_t digests_out[][16]);

#endif /* SLUICE_MD5X_H */
