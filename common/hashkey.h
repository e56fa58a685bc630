/*
 * hashkey.h - Kinesis hash keys: unsigned 128-bit integers.
 *
 * A record's hash key is MD5(partition key) read as a big-endian 128-bit
 * integer, or the ExplicitHashKey the producer gave. Shards own inclusive
 * ranges of it. The decimal form ("0" .. "340282366920938463463374607431768211455")
 * is what the Kinesis API shows.
 */
#ifndef SLUICE_HASHKEY_H
#define SLUICE_HASHKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* __extension__: GCC and clang have a 128-bit integer; ISO C does not. */
__extension__ typedef unsigned __int128 hashkey_t;

#define HASHKEY_MAX (~(hashkey_t)0)
/* Longest decimal form: 39 digits, plus the terminating NUL. */
#define HASHKEY_DECIMAL_SIZE 40

/* MD5 of `key` (1..256 bytes) read big-endian. Allocation-free; safe on any thread. */
hashkey_t hashkey_from_partition_key(const void *key, size_t size);
/* The 16 MD5 bytes themselves (what a producer sends as a precomputed hash key). */
void hashkey_md5(const void *key, size_t size, uint8_t digest_out[16]);

/* The 16 MD5/hash-key bytes as big-endian, to and from the integer. */
void hashkey_to_be_bytes(hashkey_t key, uint8_t bytes_out[16]);

/* Inline: two loads and two byte swaps, once per record on the ingest paths. */
static inline hashkey_t
hashkey_from_be_bytes(const uint8_t bytes[16])
{
	uint64_t hi;
	uint64_t lo;

	memcpy(&hi, bytes, 8);
	memcpy(&lo, bytes + 8, 8);
	return ((hashkey_t)__builtin_bswap64(hi) << 64) | __builtin_bswap64(lo);
}

/*
 * Parses a decimal string of `size` bytes (no sign, no spaces, at most 39
 * digits, value <= HASHKEY_MAX). Returns 0, or -EINVAL on anything else.
 */
int hashkey_parse_decimal(const char *text, size_t size, hashkey_t *key_out);

/* Writes the decimal form into `buf` (>= HASHKEY_DECIMAL_SIZE bytes). Returns the length. */
size_t hashkey_format_decimal(hashkey_t key, char *buf);

/*
 * The starting hash key of shard `index` of `count` equal shards, as AWS
 * splits a new stream: start(i) = floor(2^128 / count) * i. The ending key of
 * shard i is start(i + 1) - 1, and HASHKEY_MAX for the last. index < count.
 */
hashkey_t hashkey_range_start(uint32_t index, uint32_t count);

#endif /* SLUICE_HASHKEY_H */
