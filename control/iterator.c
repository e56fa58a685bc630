/*
 * iterator.c - the shard-iterator and NextToken codecs (layouts in iterator.h).
 * Authentication is HMAC-SHA256 with the server's secret, compared in
 * constant time; nothing in a token is trusted before its MAC checks.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "control/iterator.h"

#define ITERATOR_MAC_SIZE 32
#define ITERATOR_FIXED_SIZE 49
#define TOKEN_FIXED_SIZE 37
#define ITERATOR_BINARY_MAX (ITERATOR_FIXED_SIZE + ITERATOR_NAME_SIZE_MAX + ITERATOR_MAC_SIZE)

static_assert((ITERATOR_BINARY_MAX + 2) / 3 * 4 <= ITERATOR_TEXT_SIZE_MAX,
	      "an iterator fits AWS's 512 characters");

static const uint8_t iterator_prefix[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t token_prefix[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };

static void
put_be(uint8_t *p, uint64_t value, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[size - 1 - i] = (uint8_t)(value >> (8 * i));
}

static uint64_t
get_be(const uint8_t *p, unsigned size)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < size; i++)
		value = (value << 8) | p[i];
	return value;
}

static void
iterator_mac(const uint8_t secret[ITERATOR_SECRET_SIZE], const uint8_t *data, size_t size,
	     uint8_t mac_out[ITERATOR_MAC_SIZE])
{
	unsigned int mac_size = 0;
	uint8_t *ok = HMAC(EVP_sha256(), secret, ITERATOR_SECRET_SIZE, data, size, mac_out,
			   &mac_size);

	/* HMAC over memory fails only on a broken OpenSSL. */
	assert(ok != NULL);
	assert(mac_size == ITERATOR_MAC_SIZE);
}

/* Appends the MAC and base64-encodes `size` bytes of `bin` into `buf`. */
static size_t
iterator_seal(const uint8_t secret[ITERATOR_SECRET_SIZE], uint8_t *bin, size_t size, char *buf)
{
	size_t n;

	iterator_mac(secret, bin, size, bin + size);
	n = base64_encode(bin, size + ITERATOR_MAC_SIZE, buf);
	buf[n] = '\0';
	return n;
}

/* Decodes and authenticates; returns the body size (MAC excluded) or -EINVAL. */
static int
iterator_open(const uint8_t secret[ITERATOR_SECRET_SIZE], const char *text, size_t size,
	      const uint8_t prefix[8], size_t fixed_size, uint8_t bin[ITERATOR_BINARY_MAX])
{
	uint8_t mac[ITERATOR_MAC_SIZE];
	int64_t n;
	size_t body;

	if (size > ITERATOR_TEXT_SIZE_MAX)
		return -EINVAL;
	n = base64_decode(text, size, bin, ITERATOR_BINARY_MAX);
	if (n < (int64_t)(fixed_size + 1 + ITERATOR_MAC_SIZE))
		return -EINVAL;
	body = (size_t)n - ITERATOR_MAC_SIZE;
	iterator_mac(secret, bin, body, mac);
	if (CRYPTO_memcmp(mac, bin + body, ITERATOR_MAC_SIZE) != 0)
		return -EINVAL;
	/* Authentic, so written by iterator_seal(): the checks below are belts and braces. */
	if (memcmp(bin, prefix, 8) != 0)
		return -EINVAL;
	if (bin[fixed_size - 1] == 0 || fixed_size + bin[fixed_size - 1] != body)
		return -EINVAL;
	return (int)body;
}

size_t
iterator_encode(const uint8_t secret[ITERATOR_SECRET_SIZE], const struct iterator *it, char *buf)
{
	uint8_t bin[ITERATOR_BINARY_MAX];

	assert(it->name_size >= 1 && it->name_size <= ITERATOR_NAME_SIZE_MAX);
	memcpy(bin, iterator_prefix, 8);
	put_be(bin + 8, it->issued_ms, 8);
	put_be(bin + 16, it->nonce, 8);
	put_be(bin + 24, it->stream_id, 4);
	put_be(bin + 28, it->incarnation, 8);
	put_be(bin + 36, it->shard_index, 4);
	put_be(bin + 40, it->seq, 8);
	bin[48] = it->name_size;
	memcpy(bin + ITERATOR_FIXED_SIZE, it->name, it->name_size);
	return iterator_seal(secret, bin, ITERATOR_FIXED_SIZE + it->name_size, buf);
}

int
iterator_decode(const uint8_t secret[ITERATOR_SECRET_SIZE], const char *text, size_t size,
		struct iterator *it_out)
{
	uint8_t bin[ITERATOR_BINARY_MAX];
	int body = iterator_open(secret, text, size, iterator_prefix, ITERATOR_FIXED_SIZE, bin);

	if (body < 0)
		return body;
	it_out->issued_ms = get_be(bin + 8, 8);
	it_out->nonce = get_be(bin + 16, 8);
	it_out->stream_id = (uint32_t)get_be(bin + 24, 4);
	it_out->incarnation = get_be(bin + 28, 8);
	it_out->shard_index = (uint32_t)get_be(bin + 36, 4);
	it_out->seq = get_be(bin + 40, 8);
	it_out->name_size = bin[48];
	memcpy(it_out->name, bin + ITERATOR_FIXED_SIZE, it_out->name_size);
	it_out->name[it_out->name_size] = '\0';
	return 0;
}

size_t
iterator_token_encode(const uint8_t secret[ITERATOR_SECRET_SIZE],
		      const struct iterator_token *token, char *buf)
{
	uint8_t bin[ITERATOR_BINARY_MAX];

	assert(token->name_size >= 1 && token->name_size <= ITERATOR_NAME_SIZE_MAX);
	memcpy(bin, token_prefix, 8);
	put_be(bin + 8, token->issued_ms, 8);
	put_be(bin + 16, token->stream_id, 4);
	put_be(bin + 20, token->incarnation, 8);
	put_be(bin + 28, token->position, 4);
	put_be(bin + 32, token->limit, 4);
	bin[36] = token->name_size;
	memcpy(bin + TOKEN_FIXED_SIZE, token->name, token->name_size);
	return iterator_seal(secret, bin, TOKEN_FIXED_SIZE + token->name_size, buf);
}

int
iterator_token_decode(const uint8_t secret[ITERATOR_SECRET_SIZE], const char *text, size_t size,
		      struct iterator_token *token_out)
{
	uint8_t bin[ITERATOR_BINARY_MAX];
	int body = iterator_open(secret, text, size, token_prefix, TOKEN_FIXED_SIZE, bin);

	if (body < 0)
		return body;
	token_out->issued_ms = get_be(bin + 8, 8);
	token_out->stream_id = (uint32_t)get_be(bin + 16, 4);
	token_out->incarnation = get_be(bin + 20, 8);
	token_out->position = (uint32_t)get_be(bin + 28, 4);
	token_out->limit = (uint32_t)get_be(bin + 32, 4);
	token_out->name_size = bin[36];
	memcpy(token_out->name, bin + TOKEN_FIXED_SIZE, token_out->name_size);
	token_out->name[token_out->name_size] = '\0';
	return 0;
}
