/*
 * fuzz_cbor: arbitrary bytes as a CBOR request body through server_cbor.c. Whatever it
 * accepts must be JSON that cJSON parses as one object, and that JSON must translate
 * back to CBOR (the answer direction) without error; whatever it refuses must come
 * with a message. The same bytes as a JSON answer must translate or be refused as
 * not JSON. Nothing may crash, read out of bounds or leak.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "control/server_cbor.h"
#include "control/server_pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_out json;
	struct api_out cbor;
	const char *error = NULL;
	cJSON *doc;
	int err;

	api_out_init(&cbor, 64u * 1024u * 1024u);
	err = server_cbor_answer_from_json((const char *)data, size, &cbor);
	if (err != 0 && err != -EINVAL)
		abort();
	api_out_release(&cbor);
	api_out_init(&json, 64u * 1024u * 1024u);
	err = server_cbor_request_to_json(data, size, &json, &error);
	if (err != 0) {
		if (err != -EINVAL || error == NULL)
			abort();
		api_out_release(&json);
		return 0;
	}
	doc = cJSON_ParseWithLength(json.data, json.size);
	if (doc == NULL || !cJSON_IsObject(doc))
		abort();
	cJSON_Delete(doc);
	api_out_init(&cbor, 64u * 1024u * 1024u);
	if (server_cbor_answer_from_json(json.data, json.size, &cbor) != 0)
		abort();
	api_out_release(&cbor);
	api_out_release(&json);
	return 0;
}
