/*
 * fuzz_kc_response - libFuzzer target for the CLI's Kinesis client: the
 * HTTP/1.1 response parser over arbitrary bytes (placed exactly, so ASan
 * catches a read past the span), the error-body reader on what it accepts,
 * and strict base64 decoding with a re-encode check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/kinesis_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	struct kc_http_response response;
	uint8_t *decoded;
	size_t decoded_size;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (kc_http_response_parse(copy, size, &response) == 0) {
		struct kc_error error;

		if (response.header_size + response.body_size > size)
			abort();
		kc_error_from_response(&error, &response, copy + response.header_size,
				       response.body_size);
	}
	if (kc_base64_decode(copy, size, &decoded, &decoded_size) == 0) {
		char *again;
		size_t again_size;

		/* Strict decoding: what it accepts re-encodes to the same text. */
		if (kc_base64_encode(decoded, decoded_size, &again, &again_size) != 0)
			abort();
		if (again_size != size || memcmp(again, copy, size) != 0)
			abort();
		free(again);
		free(decoded);
	}
	free(copy);
	return 0;
}
