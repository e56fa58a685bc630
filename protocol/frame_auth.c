/*
 * frame_auth.c - HMAC-SHA256 trailers. Built on OpenSSL's SHA-256 block
 * functions rather than HMAC()/EVP_MAC, because those allocate a context per
 * call and the dataplane verifies tags on its per-packet path. Keys are at
 * most one block (64 bytes), so RFC 2104 needs no key hashing here.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/sha.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"

#define HMAC_BLOCK_SIZE 64u

static_assert(FRAME_AUTH_KEY_SIZE_MAX == HMAC_BLOCK_SIZE, "keys are used unhashed");
static_assert(FRAME_AUTH_TAG_SIZE == SHA256_DIGEST_LENGTH, "the tag is one digest");

/* tag = SHA256((K ^ opad) || SHA256((K ^ ipad) || msg)) */
static void
hmac_sha256(const struct frame_auth_key *key, const uint8_t *msg, size_t msg_size,
	    uint8_t tag_out[FRAME_AUTH_TAG_SIZE])
{
	uint8_t pad[HMAC_BLOCK_SIZE];
	uint8_t inner[SHA256_DIGEST_LENGTH];
	SHA256_CTX ctx;

	assert(key->key_size >= FRAME_AUTH_KEY_SIZE_MIN);
	assert(key->key_size <= FRAME_AUTH_KEY_SIZE_MAX);
	memset(pad, 0, sizeof(pad));
	memcpy(pad, key->key, key->key_size);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, pad, sizeof(pad));
	SHA256_Update(&ctx, msg, msg_size);
	SHA256_Final(inner, &ctx);

	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, pad, sizeof(pad));
	SHA256_Update(&ctx, inner, sizeof(inner));
	SHA256_Final(tag_out, &ctx);
}

void
frame_auth_sign(void *frame, uint32_t frame_size, const struct frame_auth_key *key,
		uint64_t timestamp_ms)
{
	uint8_t *p = frame;
	uint8_t *trailer = p + frame_size - FRAME_AUTH_SIZE;

	assert(frame_size >= FRAME_HEADER_SIZE + FRAME_AUTH_SIZE);
	assert(frame_load32(p + FRAME_OFF_SIZE) == frame_size);
	assert((frame_load16(p + FRAME_OFF_FLAGS) & FRAME_F_AUTH) != 0);
	frame_store32(trailer, key->key_id);
	frame_store32(trailer + 4, 0);
	frame_store64(trailer + 8, timestamp_ms);
	hmac_sha256(key, p + FRAME_OFF_SIZE, frame_size - FRAME_OFF_SIZE - FRAME_AUTH_TAG_SIZE,
		    trailer + 16);
	frame_seal(p, frame_size);
}

bool
frame_auth_key_id(const void *frame, uint32_t frame_size, uint32_t *key_id_out)
{
	const uint8_t *p = frame;

	if (frame_size < FRAME_HEADER_SIZE + FRAME_AUTH_SIZE ||
	    (frame_load16(p + FRAME_OFF_FLAGS) & FRAME_F_AUTH) == 0)
		return false;
	*key_id_out = frame_load32(p + frame_size - FRAME_AUTH_SIZE);
	return true;
}

enum frame_err
frame_auth_verify(const void *frame, uint32_t frame_size, const struct frame_auth_key *key,
		  uint64_t now_ms, uint64_t window_ms)
{
	const uint8_t *p = frame;
	const uint8_t *trailer;
	uint8_t tag[FRAME_AUTH_TAG_SIZE];
	uint8_t diff = 0;
	uint64_t ts;
	uint32_t key_id;

	if (!frame_auth_key_id(frame, frame_size, &key_id))
		return FRAME_ERR_AUTH_MISSING;
	if (key_id != key->key_id)
		return FRAME_ERR_AUTH_TAG;
	trailer = p + frame_size - FRAME_AUTH_SIZE;
	hmac_sha256(key, p + FRAME_OFF_SIZE, frame_size - FRAME_OFF_SIZE - FRAME_AUTH_TAG_SIZE,
		    tag);
	for (size_t i = 0; i < sizeof(tag); i++)
		diff |= (uint8_t)(tag[i] ^ trailer[16 + i]);
	if (diff != 0)
		return FRAME_ERR_AUTH_TAG;
	ts = frame_load64(trailer + 8);
	if ((ts > now_ms ? ts - now_ms : now_ms - ts) > window_ms)
		return FRAME_ERR_AUTH_STALE;
	return FRAME_OK;
}
