/*
 * http1: the request-head parser accepts exactly the well-formed heads, whole,
 * byte at a time and pipelined; refuses malformed ones; and holds its size and
 * count limits at the limit and at limit + 1. Every input sits flush against a
 * PROT_NONE page (guard_buf), so one byte of overread crashes the test.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "control/http1.h"
#include "tests/support/guard_buf.h"

#define AWS_HEAD \
	"POST / HTTP/1.1\r\n" \
	"Host: localhost:4567\r\n" \
	"X-Amz-Target: Kinesis_20131202.PutRecord\r\n" \
	"Content-Type: application/x-amz-json-1.1\r\n" \
	"X-Amz-Date: 20261126T081500Z\r\n" \
	"Authorization: AWS4-HMAC-SHA256 " \
	"Credential=AKID/20261126/us-east-1/kinesis/aws4_request, " \
	"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00\r\n" \
	"Content-Length: 2\r\n" \
	"\r\n"

static int
parse(const char *text, size_t size, struct http1_request *req, struct http1_header *headers,
      size_t capacity)
{
	const char *placed = guard_buf_place(text, size);

	return http1_parse_request(placed, size, req, headers, capacity, HTTP1_HEAD_SIZE_MAX);
}

static int
parse_str(const char *text, struct http1_request *req)
{
	static struct http1_header headers[HTTP1_HEADERS_MAX];

	return parse(text, strlen(text), req, headers, HTTP1_HEADERS_MAX);
}

static bool
span_is(const char *p, size_t size, const char *text)
{
	return size == strlen(text) && memcmp(p, text, size) == 0;
}

Test(http1, parses_an_aws_cli_head_whole)
{
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	struct http1_framing framing;
	int rc = parse(AWS_HEAD "{}", strlen(AWS_HEAD) + 2, &req, headers, HTTP1_HEADERS_MAX);

	cr_assert_eq(rc, (int)strlen(AWS_HEAD));
	cr_assert(span_is(req.method, req.method_size, "POST"));
	cr_assert(span_is(req.target, req.target_size, "/"));
	cr_assert_eq(req.minor_version, 1);
	cr_assert_eq(req.header_count, 6);
	cr_assert(span_is(headers[1].name, headers[1].name_size, "X-Amz-Target"));
	cr_assert(span_is(headers[1].value, headers[1].value_size, "Kinesis_20131202.PutRecord"));
	cr_assert_not_null(http1_header_find(&req, "content-type"));
	cr_assert_null(http1_header_find(&req, "content-typ"));
	cr_assert_eq(http1_framing_read(&req, &framing), 0);
	cr_assert_eq(framing.content_length, 2);
	cr_assert(framing.keep_alive);
	cr_assert(!framing.chunked);
	cr_assert(!framing.expect_continue);
}

/* Every proper prefix is PARTIAL (never INVALID, never an overread), then the whole parses. */
Test(http1, byte_at_a_time_is_partial_until_complete)
{
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	size_t size = strlen(AWS_HEAD);

	for (size_t cut = 0; cut < size; cut++)
		cr_assert_eq(parse(AWS_HEAD, cut, &req, headers, HTTP1_HEADERS_MAX),
			     HTTP1_PARTIAL, "cut at %zu", cut);
	cr_assert_eq(parse(AWS_HEAD, size, &req, headers, HTTP1_HEADERS_MAX), (int)size);
}

Test(http1, pipelined_heads_parse_one_after_another)
{
	char buf[4096];
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	size_t used = 0;
	size_t size;
	int count = 0;

	size = (size_t)snprintf(buf, sizeof(buf), "%s{}%s{}\r\nGET /x HTTP/1.0\r\n\r\n",
				AWS_HEAD, AWS_HEAD);
	while (used < size) {
		const char *placed = guard_buf_place(buf + used, size - used);
		struct http1_framing framing;
		int rc = http1_parse_request(placed, size - used, &req, headers,
					     HTTP1_HEADERS_MAX, HTTP1_HEAD_SIZE_MAX);

		cr_assert_gt(rc, 0, "request %d: %d", count, rc);
		cr_assert_eq(http1_framing_read(&req, &framing), 0);
		used += (size_t)rc + framing.content_length;
		count++;
	}
	cr_assert_eq(count, 3);
	cr_assert(span_is(req.method, req.method_size, "GET"));
	cr_assert(span_is(req.target, req.target_size, "/x"));
	cr_assert_eq(req.minor_version, 0);
}

Test(http1, refuses_malformed_request_lines)
{
	static const char *const bad[] = {
		" POST / HTTP/1.1\r\n\r\n",
		"POST  / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1 \r\n\r\n",
		"POST /  HTTP/1.1\r\n\r\n",
		"POST / HTTP/2.0\r\n\r\n",
		"POST / HTTP/1.2\r\n\r\n",
		"POST / http/1.1\r\n\r\n",
		"POST / HTTP/1.1\n\r\n",
		"POST / HTTP/1.1\r\r\n",
		"PO(T / HTTP/1.1\r\n\r\n",
		"POST /a\x01 HTTP/1.1\r\n\r\n",
		"POST /\xc3\xa9 HTTP/1.1\r\n\r\n",
		"POST\t/ HTTP/1.1\r\n\r\n",
		"\n\nPOST / HTTP/1.1\r\n\r\n",
		"\r\rPOST / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\n\n",
	};
	struct http1_request req;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_str(bad[i], &req), HTTP1_INVALID, "case %zu", i);
}

Test(http1, refuses_malformed_headers)
{
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost : x\r\n\r\n",
		"POST / HTTP/1.1\r\n: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost\r\n\r\n",
		"POST / HTTP/1.1\r\nHo st: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"POST / HTTP/1.1\r\n\tHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\x01z\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\x7fz\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\n\rX",
		"POST / HTTP/1.1\r\nX-\x80: x\r\n\r\n",
	};
	struct http1_request req;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_str(bad[i], &req), HTTP1_INVALID, "case %zu", i);
}

Test(http1, trims_values_and_keeps_obs_text)
{
	struct http1_request req;
	int rc = parse_str("POST / HTTP/1.1\r\nA: \t v a \t\r\nB:\r\nC: \xc3\xa9\r\n\r\n", &req);

	cr_assert_gt(rc, 0);
	cr_assert(span_is(req.headers[0].value, req.headers[0].value_size, "v a"));
	cr_assert_eq(req.headers[1].value_size, 0);
	cr_assert(span_is(req.headers[2].value, req.headers[2].value_size, "\xc3\xa9"));
}

/* Builds a head of exactly `size` bytes (padding one header value). */
static size_t
head_of_size(char *buf, size_t size)
{
	const char *start = "POST / HTTP/1.1\r\nX-Pad: ";
	const char *end = "\r\n\r\n";
	size_t pad = size - strlen(start) - strlen(end);

	memcpy(buf, start, strlen(start));
	memset(buf + strlen(start), 'p', pad);
	memcpy(buf + strlen(start) + pad, end, strlen(end));
	return size;
}

Test(http1, head_size_limit_and_limit_plus_one)
{
	static char buf[HTTP1_HEAD_SIZE_MAX + 64];
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	size_t size = head_of_size(buf, HTTP1_HEAD_SIZE_MAX);

	cr_assert_eq(parse(buf, size, &req, headers, HTTP1_HEADERS_MAX), (int)size);
	size = head_of_size(buf, HTTP1_HEAD_SIZE_MAX + 1);
	cr_assert_eq(parse(buf, size, &req, headers, HTTP1_HEADERS_MAX), HTTP1_HEAD_TOO_LARGE);
	/* Known too large before the end arrives: no waiting for more bytes. */
	cr_assert_eq(parse(buf, HTTP1_HEAD_SIZE_MAX, &req, headers, HTTP1_HEADERS_MAX),
		     HTTP1_HEAD_TOO_LARGE);
	cr_assert_eq(parse(buf, HTTP1_HEAD_SIZE_MAX - 1, &req, headers, HTTP1_HEADERS_MAX),
		     HTTP1_PARTIAL);
}

static size_t
head_with_headers(char *buf, size_t cap, size_t count)
{
	size_t used = (size_t)snprintf(buf, cap, "POST / HTTP/1.1\r\n");

	for (size_t i = 0; i < count; i++)
		used += (size_t)snprintf(buf + used, cap - used, "X-H%zu: %zu\r\n", i, i);
	used += (size_t)snprintf(buf + used, cap - used, "\r\n");
	return used;
}

Test(http1, header_count_limit_and_limit_plus_one)
{
	static char buf[8192];
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request req;
	size_t size = head_with_headers(buf, sizeof(buf), HTTP1_HEADERS_MAX);

	cr_assert_eq(parse(buf, size, &req, headers, HTTP1_HEADERS_MAX), (int)size);
	cr_assert_eq(req.header_count, HTTP1_HEADERS_MAX);
	size = head_with_headers(buf, sizeof(buf), HTTP1_HEADERS_MAX + 1);
	cr_assert_eq(parse(buf, size, &req, headers, HTTP1_HEADERS_MAX), HTTP1_TOO_MANY_HEADERS);
	cr_assert_eq(parse(buf, size, &req, headers, 0), HTTP1_TOO_MANY_HEADERS);
}

Test(http1, leading_empty_lines_count_toward_the_limit)
{
	static char buf[HTTP1_HEAD_SIZE_MAX + 64];
	struct http1_request req;
	struct http1_header headers[4];

	for (size_t i = 0; i + 1 < sizeof(buf); i += 2)
		memcpy(buf + i, "\r\n", 2);
	cr_assert_eq(parse(buf, HTTP1_HEAD_SIZE_MAX, &req, headers, 4), HTTP1_HEAD_TOO_LARGE);
	cr_assert_eq(parse(buf, 100, &req, headers, 4), HTTP1_PARTIAL);
	cr_assert_eq(parse(buf, 101, &req, headers, 4), HTTP1_PARTIAL);
}

static int
framing_of(const char *head, struct http1_framing *framing)
{
	struct http1_request req;
	int rc = parse_str(head, &req);

	cr_assert_gt(rc, 0, "head did not parse: %d", rc);
	return http1_framing_read(&req, framing);
}

Test(http1, framing_rules)
{
	struct http1_framing f;

	cr_assert_eq(framing_of("POST / HTTP/1.1\r\n\r\n", &f), 0);
	cr_assert(f.keep_alive && f.content_length == 0);
	cr_assert_eq(framing_of("POST / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", &f), 0);
	cr_assert(!f.keep_alive);
	cr_assert_eq(framing_of("POST / HTTP/1.0\r\n\r\n", &f), 0);
	cr_assert(!f.keep_alive);
	cr_assert_eq(framing_of("POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &f), 0);
	cr_assert(f.keep_alive);
	cr_assert_eq(framing_of("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n"
				"Content-Length: 16777216\r\n\r\n", &f), 0);
	cr_assert(f.expect_continue && f.content_length == 16777216);
	cr_assert_eq(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &f), 0);
	cr_assert(f.chunked);
	cr_assert_eq(framing_of("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
				&f), 0);
	cr_assert_eq(f.content_length, 5);
}

Test(http1, framing_refusals)
{
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
	};
	struct http1_framing f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(framing_of(bad[i], &f), -EINVAL, "case %zu", i);
}

Test(http1, name_comparison)
{
	cr_assert(http1_name_is("X-Amz-Target", 12, "x-amz-target"));
	cr_assert(!http1_name_is("X-Amz-Target", 11, "x-amz-target"));
	cr_assert(!http1_name_is("X-Amz-Targets", 13, "x-amz-target"));
	cr_assert(http1_name_is("", 0, ""));
}
