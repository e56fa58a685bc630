/*
 * http1.c - the strict HTTP/1.1 request-head parser and body framing rules
 * (contract in http1.h). One forward pass over the bytes; every read is
 * checked against `avail` first, so a truncated head is PARTIAL, never an
 * overread.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "control/http1.h"

/* RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~". */
static bool
http1_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: VCHAR, obs-text, SP, HTAB. */
static bool
http1_is_value_char(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* Request-target bytes: visible ASCII only (no spaces, no controls, no obs-text). */
static bool
http1_is_target_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* The head ran out: more bytes may complete it, unless the size limit is reached. */
static int
http1_out_of_bytes(size_t size, size_t head_size_max)
{
	return size >= head_size_max ? HTTP1_HEAD_TOO_LARGE : HTTP1_PARTIAL;
}

struct http1_cursor {
	const unsigned char *buf;
	size_t pos;
	size_t avail;      /* min(size, head_size_max): bytes we may look at. */
	size_t size;
	size_t head_size_max;
};

/* Scans a non-empty run of bytes accepted by `ok`, then requires `end`. 0, or an HTTP1_* code. */
static int
http1_scan(struct http1_cursor *c, bool (*ok)(unsigned char), unsigned char end,
	   size_t *start_out, size_t *len_out)
{
	size_t start = c->pos;

	while (c->pos < c->avail && ok(c->buf[c->pos]))
		c->pos++;
	if (c->pos >= c->avail)
		return http1_out_of_bytes(c->size, c->head_size_max);
	if (c->buf[c->pos] != end || c->pos == start)
		return HTTP1_INVALID;
	*start_out = start;
	*len_out = c->pos - start;
	c->pos++;
	return 1;
}

/* Requires the literal `text` at the cursor, byte by byte as far as bytes exist. */
static int
http1_expect(struct http1_cursor *c, const char *text)
{
	for (; *text != '\0'; text++, c->pos++) {
		if (c->pos >= c->avail)
			return http1_out_of_bytes(c->size, c->head_size_max);
		if (c->buf[c->pos] != (unsigned char)*text)
			return HTTP1_INVALID;
	}
	return 1;
}

static int
http1_parse_request_line(struct http1_cursor *c, struct http1_request *req)
{
	size_t start;
	size_t len;
	int rc;

	/* Skip empty lines left over between pipelined requests. */
	while (c->pos < c->avail && c->buf[c->pos] == '\r') {
		if (c->pos + 1 >= c->avail)
			return http1_out_of_bytes(c->size, c->head_size_max);
		if (c->buf[c->pos + 1] != '\n')
			return HTTP1_INVALID;
		c->pos += 2;
	}
	rc = http1_scan(c, http1_is_tchar, ' ', &start, &len);
	if (rc != 1)
		return rc;
	req->method = (const char *)c->buf + start;
	req->method_size = len;
	rc = http1_scan(c, http1_is_target_char, ' ', &start, &len);
	if (rc != 1)
		return rc;
	req->target = (const char *)c->buf + start;
	req->target_size = len;
	rc = http1_expect(c, "HTTP/1.");
	if (rc != 1)
		return rc;
	if (c->pos >= c->avail)
		return http1_out_of_bytes(c->size, c->head_size_max);
	if (c->buf[c->pos] != '0' && c->buf[c->pos] != '1')
		return HTTP1_INVALID;
	req->minor_version = c->buf[c->pos] - '0';
	c->pos++;
	return http1_expect(c, "\r\n");
}

/* One header field line; the cursor is at its first byte (not at the final CRLF). */
static int
http1_parse_header(struct http1_cursor *c, struct http1_header *header)
{
	size_t start;
	size_t len;
	size_t end;
	int rc;

	rc = http1_scan(c, http1_is_tchar, ':', &start, &len);
	if (rc != 1)
		return rc;
	header->name = (const char *)c->buf + start;
	header->name_size = len;
	while (c->pos < c->avail && (c->buf[c->pos] == ' ' || c->buf[c->pos] == '\t'))
		c->pos++;
	start = c->pos;
	while (c->pos < c->avail && http1_is_value_char(c->buf[c->pos]))
		c->pos++;
	if (c->pos >= c->avail)
		return http1_out_of_bytes(c->size, c->head_size_max);
	end = c->pos;
	while (end > start && (c->buf[end - 1] == ' ' || c->buf[end - 1] == '\t'))
		end--;
	header->value = (const char *)c->buf + start;
	header->value_size = end - start;
	return http1_expect(c, "\r\n");
}

int
http1_parse_request(const char *buf, size_t size, struct http1_request *req,
		    struct http1_header *headers, size_t headers_capacity,
		    size_t head_size_max)
{
	struct http1_cursor c = {
		.buf = (const unsigned char *)buf,
		.pos = 0,
		.avail = size < head_size_max ? size : head_size_max,
		.size = size,
		.head_size_max = head_size_max,
	};
	int rc;

	assert(buf != NULL || size == 0);
	assert(head_size_max > 0 && head_size_max <= INT_MAX);
	memset(req, 0, sizeof(*req));
	req->headers = headers;
	rc = http1_parse_request_line(&c, req);
	if (rc != 1)
		return rc;
	for (;;) {
		if (c.pos >= c.avail)
			return http1_out_of_bytes(size, head_size_max);
		if (c.buf[c.pos] == '\r') {
			rc = http1_expect(&c, "\r\n");
			if (rc != 1)
				return rc;
			return (int)c.pos;
		}
		/* A line starting with whitespace is obsolete folding: refused. */
		if (req->header_count == headers_capacity)
			return HTTP1_TOO_MANY_HEADERS;
		rc = http1_parse_header(&c, &headers[req->header_count]);
		if (rc != 1)
			return rc;
		req->header_count++;
	}
}

bool
http1_name_is(const char *name, size_t name_size, const char *lower)
{
	size_t i;

	for (i = 0; i < name_size; i++) {
		char c = name[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (lower[i] == '\0' || c != lower[i])
			return false;
	}
	return lower[i] == '\0';
}

const struct http1_header *
http1_header_find(const struct http1_request *req, const char *lower)
{
	for (size_t i = 0; i < req->header_count; i++) {
		const struct http1_header *h = &req->headers[i];

		if (http1_name_is(h->name, h->name_size, lower))
			return h;
	}
	return NULL;
}

/* Case-insensitive equality of a header value with a lower-case literal. */
static bool
http1_value_is(const char *value, size_t size, const char *lower)
{
	return http1_name_is(value, size, lower);
}

/* Strict decimal: digits only, no sign, no overflow past 2^63. */
static int
http1_parse_length(const char *text, size_t size, uint64_t *out)
{
	uint64_t value = 0;

	if (size == 0 || size > 18)
		return -EINVAL;
	for (size_t i = 0; i < size; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		value = value * 10 + (uint64_t)(text[i] - '0');
	}
	*out = value;
	return 0;
}

/* Does a comma-separated Connection value list contain `token`? */
static bool
http1_list_has(const char *value, size_t size, const char *token)
{
	size_t i = 0;

	while (i < size) {
		size_t start;
		size_t end;

		while (i < size && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < size && value[i] != ',')
			i++;
		end = i;
		while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
			end--;
		if (end > start && http1_value_is(value + start, end - start, token))
			return true;
	}
	return false;
}

int
http1_framing_read(const struct http1_request *req, struct http1_framing *framing)
{
	bool have_length = false;
	bool close = false;
	bool keep = false;

	memset(framing, 0, sizeof(*framing));
	for (size_t i = 0; i < req->header_count; i++) {
		const struct http1_header *h = &req->headers[i];
		uint64_t length;

		if (http1_name_is(h->name, h->name_size, "content-length")) {
			if (http1_parse_length(h->value, h->value_size, &length) != 0)
				return -EINVAL;
			if (have_length && length != framing->content_length)
				return -EINVAL;
			framing->content_length = length;
			have_length = true;
		} else if (http1_name_is(h->name, h->name_size, "transfer-encoding")) {
			framing->chunked = true;
		} else if (http1_name_is(h->name, h->name_size, "expect")) {
			if (!http1_value_is(h->value, h->value_size, "100-continue"))
				return -EINVAL;
			framing->expect_continue = true;
		} else if (http1_name_is(h->name, h->name_size, "connection")) {
			close = close || http1_list_has(h->value, h->value_size, "close");
			keep = keep || http1_list_has(h->value, h->value_size, "keep-alive");
		}
	}
	/* RFC 9112 6.1: both framings at once is a smuggling vector. */
	if (have_length && framing->chunked)
		return -EINVAL;
	framing->keep_alive = !close && (req->minor_version == 1 || keep);
	/* HTTP/1.0 has no 100-continue. */
	if (req->minor_version == 0)
		framing->expect_continue = false;
	return 0;
}
