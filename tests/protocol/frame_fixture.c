/* frame_fixture.c - see frame_fixture.h. */
#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/protocol/frame_fixture.h"
#include "tests/support/guard_buf.h"

static const uint8_t hash_explicit[16] = {
	0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};
/* MD5("device-7") as the producer would compute it (value irrelevant to the codec). */
static const uint8_t hash_md5[16] = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
};

const struct frame_record fixture_records[FIXTURE_RECORD_COUNT] = {
	{ .key = (const uint8_t *)"device-1", .key_size = 8,
	  .data = (const uint8_t *)"temp=21.5", .data_size = 9 },
	{ .key = (const uint8_t *)"k\xc3\xa9y", .key_size = 4, .hash_kind = FRAME_HASH_EXPLICIT,
	  .hash_key = hash_explicit, .data = NULL, .data_size = 0 },
	{ .key = (const uint8_t *)"device-7", .key_size = 8, .hash_kind = FRAME_HASH_MD5,
	  .hash_key = hash_md5, .data = (const uint8_t *)"\x00\x01\x02", .data_size = 3 },
	{ .key = (const uint8_t *)"\xe2\x82\xac", .key_size = 3,
	  .data = (const uint8_t *)"euro", .data_size = 4 },
};

uint32_t
fixture_records_frame(uint8_t *buf, size_t capacity, bool auth)
{
	struct frame_batch_params params = {
		.producer_id = 0x1122334455667788ull,
		.batch_seq = 42,
		.producer_epoch = 3,
		.ack_mode = FRAME_ACK_DURABLE,
		.auth = auth,
		.stream_name = "orders.v1",
		.stream_name_size = 9,
	};
	struct frame_writer writer;
	int rc = frame_writer_begin(&writer, buf, capacity, &params);

	assert(rc == 0);
	for (unsigned i = 0; i < FIXTURE_RECORD_COUNT; i++) {
		rc = frame_writer_add(&writer, &fixture_records[i]);
		assert(rc == 0);
	}
	rc = frame_writer_finish(&writer);
	assert(rc > 0);
	return (uint32_t)rc;
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
fixture_hex_parse(const char *hex, uint8_t *out, size_t capacity)
{
	size_t n = 0;
	int high = -1;

	for (const char *c = hex; *c != '\0'; c++) {
		int d;

		if (isspace((unsigned char)*c))
			continue;
		d = hex_digit(*c);
		if (d < 0 || (high < 0 && n == capacity))
			return 0;
		if (high < 0) {
			high = d;
		} else {
			out[n++] = (uint8_t)(high << 4 | d);
			high = -1;
		}
	}
	return high < 0 ? n : 0;
}

size_t
fixture_spec_vector(const char *name, uint8_t *out, size_t capacity)
{
	static char doc[256 * 1024];
	char marker[128];
	FILE *f = fopen(PROTOCOL_MD_PATH, "r");
	size_t size;
	char *start;
	char *end;

	assert(f != NULL);
	size = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[size] = '\0';
	snprintf(marker, sizeof(marker), "vector: %s\n", name);
	start = strstr(doc, marker);
	if (start == NULL)
		return 0;
	start = strstr(start, "```hex\n");
	if (start == NULL)
		return 0;
	start += strlen("```hex\n");
	end = strstr(start, "```");
	if (end == NULL)
		return 0;
	*end = '\0';
	return fixture_hex_parse(start, out, capacity);
}

enum frame_err
fixture_records_decode_guarded(const uint8_t *bytes, size_t size, struct frame_records *out)
{
	return frame_records_decode(guard_buf_place(bytes, size), size, out);
}
