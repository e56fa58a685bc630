/*
 * fuzz_eventstream: arbitrary bytes as a stream of EventStream messages. Every message
 * es_decode() accepts must lie inside the input, its headers and payload inside it, and
 * encode back to the very same bytes (the framing has one spelling per message).
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/eventstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t again[64 * 1024];
static uint8_t payload[64 * 1024];

static void
check_message(const uint8_t *data, size_t used, const struct es_message *m)
{
	size_t size = 0;

	assert(used >= ES_OVERHEAD_SIZE);
	assert(m->payload >= data && m->payload + m->payload_size <= data + used);
	for (uint32_t i = 0; i < m->header_count; i++) {
		const struct es_header *h = &m->headers[i];

		assert((const uint8_t *)h->name > data && h->name_size > 0);
		assert((const uint8_t *)h->name + h->name_size <= m->payload);
		assert(h->value_size == 0 || h->value + h->value_size <= m->payload);
	}
	if (used > sizeof(again))
		return;
	memcpy(payload, m->payload, m->payload_size);
	assert(es_encode(again, sizeof(again), m->headers, m->header_count, payload,
			 m->payload_size, &size) == 0);
	assert(size == used && memcmp(again, data, used) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct es_message m;

	while (size > 0) {
		size_t used = 0;
		int rc = es_decode(data, size, &m, &used);

		if (rc != 0) {
			assert(rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE);
			break;
		}
		assert(used <= size);
		check_message(data, used, &m);
		data += used;
		size -= used;
	}
	return 0;
}
