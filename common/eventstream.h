/*
 * eventstream.h - AWS's `application/vnd.amazon.eventstream` message framing, the
 * body of a SubscribeToShard answer: a sequence of self-delimiting messages, each
 *
 *   OFFSET  SIZE  FIELD
 *   0       4     total length (big-endian), the whole message including both CRCs
 *   4       4     headers length (big-endian)
 *   8       4     prelude CRC: zlib CRC-32 of bytes 0..7
 *   12      H     headers (below), H = headers length
 *   12+H    P     payload, P = total - H - 16
 *   total-4 4     message CRC: zlib CRC-32 of bytes 0..total-5 (prelude CRC included)
 *
 * A header is a name length (1 byte, 1..255), the name, a type byte and a value whose
 * shape the type gives (the table next to the code in eventstream.c). Pure: no
 * allocation, no I/O; the encoder is the server's, the decoder the tests' and tools'.
 */
#ifndef SLUICE_EVENTSTREAM_H
#define SLUICE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

/* Total length, headers length, prelude CRC. */
#define ES_PRELUDE_SIZE 12u
/* Prelude plus the trailing message CRC: the smallest message. */
#define ES_OVERHEAD_SIZE 16u
/* botocore's parser refuses more (botocore/eventstream.py: _MAX_HEADERS_LENGTH). */
#define ES_HEADERS_SIZE_MAX (128u * 1024u)
/* botocore's parser refuses more (_MAX_PAYLOAD_LENGTH). */
#define ES_PAYLOAD_SIZE_MAX (16u * 1024u * 1024u)
/* Headers a decoded message may carry (AWS's events carry 3). */
#define ES_HEADERS_MAX 32u

enum es_type {
	ES_TYPE_TRUE = 0,
	ES_TYPE_FALSE = 1,
	ES_TYPE_BYTE = 2,
	ES_TYPE_SHORT = 3,
	ES_TYPE_INTEGER = 4,
	ES_TYPE_LONG = 5,
	ES_TYPE_BYTES = 6,
	ES_TYPE_STRING = 7,
	ES_TYPE_TIMESTAMP = 8,   /* Milliseconds since the epoch, as a long. */
	ES_TYPE_UUID = 9,
	ES_TYPE_COUNT,
};

/*
 * One header. Booleans and numbers use `number`; bytes, strings and UUIDs use
 * `value`/`value_size` (a UUID is exactly 16 bytes). Decoded headers point into the
 * message buffer.
 */
struct es_header {
	const char *name;
	uint8_t name_size;
	enum es_type type;
	int64_t number;
	const uint8_t *value;
	uint16_t value_size;
};

struct es_message {
	struct es_header headers[ES_HEADERS_MAX];
	uint32_t header_count;
	const uint8_t *payload;
	size_t payload_size;
};

/* A string header with a C-string value (names and values of AWS's event headers). */
struct es_header es_header_string(const char *name, const char *value);

/*
 * Bytes the headers take, or 0 when one is malformed (empty or over-long name, a value
 * over 65,535 bytes, a UUID not of 16, an unknown type): the caller's bug, asserted.
 */
size_t es_headers_size(const struct es_header *headers, uint32_t count);

/*
 * Finishes a message in place: the payload is already at buf + ES_PRELUDE_SIZE +
 * es_headers_size(headers); writes the prelude, the headers and the message CRC. The
 * message's size goes to *size_out. 0, or -EMSGSIZE when it does not fit `capacity` or
 * exceeds the limits above.
 */
int es_seal(uint8_t *buf, size_t capacity, const struct es_header *headers, uint32_t count,
	    size_t payload_size, size_t *size_out);

/* es_seal() with the payload copied in from `payload` (which must not overlap `buf`). */
int es_encode(uint8_t *buf, size_t capacity, const struct es_header *headers, uint32_t count,
	      const void *payload, size_t payload_size, size_t *size_out);

/*
 * Decodes the message at the front of `data`. 0: *msg describes it (pointing into
 * `data`) and *consumed is its size. -EAGAIN: `size` holds only part of it (not an
 * error for a stream: read more). -EBADMSG: a CRC does not match, or the lengths or a
 * header are malformed. -EMSGSIZE: over ES_HEADERS_SIZE_MAX, ES_PAYLOAD_SIZE_MAX or
 * ES_HEADERS_MAX.
 */
int es_decode(const uint8_t *data, size_t size, struct es_message *msg, size_t *consumed);

/* The first header called `name`, or NULL. */
const struct es_header *es_message_header(const struct es_message *msg, const char *name);

#endif /* SLUICE_EVENTSTREAM_H */
