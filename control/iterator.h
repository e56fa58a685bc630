/*
 * iterator.h - shard iterators and NextTokens: opaque, self-contained,
 * authenticated with a server secret (HMAC-SHA256), carried as base64.
 *
 * Shard iterator, before base64 (integers big-endian):
 *
 *   OFFSET  SIZE  FIELD
 *        0     8  prefix 00 00 00 00 00 00 00 01 (AWS's iterators start so too)
 *        8     8  issued_ms     wall clock at issue, epoch ms (expiry: 300 s)
 *       16     8  nonce         makes every NextShardIterator a new string
 *       24     4  stream_id
 *       28     8  incarnation   random per CreateStream: a re-created stream
 *                               of the same name refuses old iterators
 *       36     4  shard_index
 *       40     8  seq           next log sequence number to read (inclusive)
 *       48     1  name_size     1 .. 128
 *       49     n  stream name   (error messages name the stream)
 *     49+n    32  HMAC-SHA256(secret, bytes 0 .. 49+n)
 *
 * At most 209 bytes: 280 base64 characters (AWS allows 512).
 *
 * A NextToken (ListShards, ListStreams) is the same idea with a smaller body:
 *   prefix 00..02 (8), issued_ms (8), stream_id (4), incarnation (8),
 *   position (4), limit (4), name_size (1), name (n), HMAC (32).
 */
#ifndef SLUICE_CONTROL_ITERATOR_H
#define SLUICE_CONTROL_ITERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

#define ITERATOR_SECRET_SIZE 32
#define ITERATOR_TEXT_SIZE_MAX 512
#define ITERATOR_NAME_SIZE_MAX SLUICE_STREAM_NAME_SIZE_MAX

struct iterator {
	uint64_t issued_ms;
	uint64_t nonce;
	uint32_t stream_id;
	uint64_t incarnation;
	uint32_t shard_index;
	uint64_t seq;
	char name[ITERATOR_NAME_SIZE_MAX + 1];
	uint8_t name_size;
};

struct iterator_token {
	uint64_t issued_ms;
	uint32_t stream_id;
	uint64_t incarnation;
	uint32_t position;       /* The next shard index (ListShards) or stream slot. */
	uint32_t limit;
	char name[ITERATOR_NAME_SIZE_MAX + 1];
	uint8_t name_size;
};

/* Writes base64 text and a NUL into `buf` (ITERATOR_TEXT_SIZE_MAX + 1); returns its length. */
size_t iterator_encode(const uint8_t secret[ITERATOR_SECRET_SIZE], const struct iterator *it,
		       char *buf);
/* Returns 0, or -EINVAL for text that is malformed, truncated, or not authentic. */
int iterator_decode(const uint8_t secret[ITERATOR_SECRET_SIZE], const char *text, size_t size,
		    struct iterator *it_out);

size_t iterator_token_encode(const uint8_t secret[ITERATOR_SECRET_SIZE],
			     const struct iterator_token *token, char *buf);
int iterator_token_decode(const uint8_t secret[ITERATOR_SECRET_SIZE], const char *text,
			  size_t size, struct iterator_token *token_out);

#endif /* SLUICE_CONTROL_ITERATOR_H */
