/*
 * fuzz_kpl: arbitrary bytes as an aggregate's protobuf, framed with the magic and a
 * correct MD5 (so every input reaches protobuf-c and the index checks), and the same
 * bytes as a whole record. Every user record of an accepted aggregate is read: its key
 * and data must lie within what was unpacked. Nothing may crash or leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashkey.h"
#include "common/kpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
kpl_walk(const uint8_t *bytes, size_t size)
{
	struct kpl agg;
	int err = kpl_open(bytes, size, &agg);

	if (err != 0) {
		if (err != -ENOMSG && err != -EBADMSG && err != -EPROTO && err != -ENOMEM)
			abort();
		return;
	}
	for (size_t i = 0; i < agg.record_count; i++) {
		struct kpl_record r;
		volatile size_t sink;

		kpl_record(&agg, i, &r);
		sink = strlen(r.partition_key) + (r.explicit_hash_key != NULL ?
						  strlen(r.explicit_hash_key) : 0);
		if (r.data_size > 0)
			sink += r.data[0] + r.data[r.data_size - 1];
		(void)sink;
	}
	kpl_close(&agg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *framed;

	if (size > (1u << 20))
		return 0;
	kpl_walk(data, size);
	framed = malloc(size + 20);
	if (framed == NULL)
		return 0;
	memcpy(framed, "\xf3\x89\x9a\xc2", 4);
	if (size > 0)
		memcpy(framed + 4, data, size);
	hashkey_md5(framed + 4, size, framed + 4 + size);
	kpl_walk(framed, size + 20);
	free(framed);
	return 0;
}
