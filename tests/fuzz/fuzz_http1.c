/*
 * fuzz_http1: the HTTP/1.1 request-head parser on arbitrary bytes. The input
 * is copied into an allocation of exactly its size (ASan flags one byte of
 * overread). Checked on every accepted head: the fields lie inside it, the
 * framing reader accepts or refuses without crashing, and every proper prefix
 * of an accepted head is PARTIAL (the parser never accepts early). The input
 * is read as a pipeline: after each head, its Content-Length bytes are
 * skipped and the next head parsed.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(const char *base, size_t size, const char *p, size_t n)
{
	assert(p >= base && p + n <= base + size);
}

static void
check_head(const char *buf, int rc, const struct http1_request *req)
{
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request again;
	struct http1_framing framing;

	check_inside(buf, (size_t)rc, req->method, req->method_size);
	check_inside(buf, (size_t)rc, req->target, req->target_size);
	for (size_t i = 0; i < req->header_count; i++) {
		check_inside(buf, (size_t)rc, req->headers[i].name, req->headers[i].name_size);
		check_inside(buf, (size_t)rc, req->headers[i].value, req->headers[i].value_size);
	}
	(void)http1_framing_read(req, &framing);
	assert(http1_parse_request(buf, (size_t)rc - 1, &again, headers, HTTP1_HEADERS_MAX,
				   HTTP1_HEAD_SIZE_MAX) == HTTP1_PARTIAL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	char *copy = malloc(size > 0 ? size : 1);
	size_t used = 0;

	if (size > 0)
		memcpy(copy, data, size);
	while (used < size) {
		struct http1_framing framing;
		int rc = http1_parse_request(copy + used, size - used, &req, headers,
					     HTTP1_HEADERS_MAX, HTTP1_HEAD_SIZE_MAX);

		if (rc <= 0)
			break;
		check_head(copy + used, rc, &req);
		used += (size_t)rc;
		if (http1_framing_read(&req, &framing) != 0 || framing.chunked ||
		    framing.content_length > size - used)
			break;
		used += framing.content_length;
	}
	free(copy);
	return 0;
}
