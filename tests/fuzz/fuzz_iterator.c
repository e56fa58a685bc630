/*
 * fuzz_iterator: the token decoders that take text straight from clients
 * (shard iterators, NextTokens, sequence numbers, blobs) must refuse any
 * input they did not produce without reading out of bounds, and what they
 * accept must re-encode to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "control/iterator.h"
#include "control/kinesis.h"
#include "control/seqnum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_secret[ITERATOR_SECRET_SIZE] = { 42 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char again[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator_token token;
	struct iterator it;
	struct seqnum_client client;
	struct seqnum sn;
	uint8_t out[1024];

	if (iterator_decode(fuzz_secret, text, size, &it) == 0) {
		size_t n = iterator_encode(fuzz_secret, &it, again);

		if (n != size || memcmp(again, text, size) != 0)
			abort();
	}
	if (iterator_token_decode(fuzz_secret, text, size, &token) == 0) {
		size_t n = iterator_token_encode(fuzz_secret, &token, again);

		if (n != size || memcmp(again, text, size) != 0)
			abort();
	}
	/* Any text: the client reader must neither crash nor read past `size`. */
	(void)seqnum_parse_client(text, size, &client);
	if (seqnum_parse(text, size, &sn) == 0) {
		char digits[SEQNUM_DECIMAL_SIZE];

		if (seqnum_format(&sn, digits) != size || memcmp(digits, text, size) != 0)
			abort();
	}
	if (size <= 760) {
		int64_t n = base64_decode(text, size, out, sizeof(out));

		if (n >= 0) {
			char enc[1100];

			if (base64_encode(out, (size_t)n, enc) != size ||
			    memcmp(enc, text, size) != 0)
				abort();
		}
	}
	return 0;
}
