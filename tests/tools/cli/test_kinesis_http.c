/*
 * kinesis_client: the HTTP/1.1 response parser (whole, every truncation,
 * lying and malformed lengths, limits, on guard pages), error bodies,
 * endpoints and strict base64.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "tests/support/guard_buf.h"
#include "tools/kinesis_client.h"

static const char ok_response[] =
	"HTTP/1.1 200 OK\r\n"
	"x-amzn-RequestId: 6b1c4e2a-0000-4000-8000-000000000000\r\n"
	"Content-Type: application/x-amz-json-1.1\r\n"
	"Content-Length: 27\r\n"
	"\r\n"
	"{\"StreamNames\":[\"orders\"]}\n";

static int
parse(const char *text, size_t size, struct kc_http_response *response)
{
	return kc_http_response_parse(guard_buf_place(text, size), size, response);
}

Test(kc_http, parses_a_whole_response)
{
	struct kc_http_response response;

	cr_assert_eq(parse(ok_response, strlen(ok_response), &response), 0);
	cr_assert_eq(response.status, 200);
	cr_assert_eq(response.body_size, 27);
	cr_assert_eq(response.header_size, strlen(ok_response) - 27);
	cr_assert_not(response.connection_close);
}

Test(kc_http, every_truncation_asks_for_more)
{
	struct kc_http_response response;

	for (size_t cut = 0; cut < strlen(ok_response); cut++)
		cr_assert_eq(parse(ok_response, cut, &response), -EAGAIN, "cut at %zu", cut);
}

/* Bytes after the body are the next response's: not part of this one. */
Test(kc_http, ignores_what_follows_the_body)
{
	char two[512];
	struct kc_http_response response;

	snprintf(two, sizeof(two), "%s%s", ok_response, ok_response);
	cr_assert_eq(parse(two, strlen(two), &response), 0);
	cr_assert_eq(response.header_size + response.body_size, strlen(ok_response));
}

Test(kc_http, refuses_malformed_heads)
{
	static const char *const cases[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n12",
		"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\n\r\n",                         /* no length, not bodiless */
		"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty-name\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n",
		"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
		"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"\r\n\r\n",
	};
	struct kc_http_response response;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		cr_assert_eq(parse(cases[i], strlen(cases[i]), &response), -EBADMSG, "case %zu",
			     i);
}

Test(kc_http, lengths_and_limits)
{
	char head[256];
	struct kc_http_response response;

	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
		 KC_HTTP_BODY_SIZE_MAX);
	cr_assert_eq(parse(head, strlen(head), &response), -EAGAIN);
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
		 KC_HTTP_BODY_SIZE_MAX + 1);
	cr_assert_eq(parse(head, strlen(head), &response), -EMSGSIZE);
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999"
		 "\r\n\r\n");
	cr_assert_neq(parse(head, strlen(head), &response), 0);
	/* The same length twice is one length. */
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2"
		 "\r\n\r\nab");
	cr_assert_eq(parse(head, strlen(head), &response), 0);
}

Test(kc_http, headers_over_the_limit)
{
	size_t size = KC_HTTP_HEADER_SIZE_MAX + 64;
	char *big = malloc(size);
	struct kc_http_response response;

	memset(big, 'a', size);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	cr_assert_eq(parse(big, KC_HTTP_HEADER_SIZE_MAX - 1, &response), -EAGAIN);
	cr_assert_eq(parse(big, size, &response), -EMSGSIZE);
	memcpy(big + size - 4, "\r\n\r\n", 4);
	cr_assert_eq(parse(big, size, &response), -EMSGSIZE);
	free(big);
}

Test(kc_http, bodiless_statuses_chunked_and_connection)
{
	static const char no_content[] = "HTTP/1.1 204 No Content\r\n\r\n";
	static const char chunked[] =
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	static const char closing[] =
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
	static const char old[] = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
	static const char old_kept[] =
		"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
	static const char no_reason[] = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
	struct kc_http_response response;

	cr_assert_eq(parse(no_content, strlen(no_content), &response), 0);
	cr_assert_eq(response.body_size, 0);
	cr_assert_eq(parse(chunked, strlen(chunked), &response), -ENOTSUP);
	cr_assert_eq(parse(closing, strlen(closing), &response), 0);
	cr_assert(response.connection_close);
	cr_assert_eq(parse(old, strlen(old), &response), 0);
	cr_assert(response.connection_close);
	cr_assert_eq(parse(old_kept, strlen(old_kept), &response), 0);
	cr_assert_not(response.connection_close);
	cr_assert_eq(parse(no_reason, strlen(no_reason), &response), 0);
}

/* `head` is the status line and headers without Content-Length; the body is counted. */
static void
error_of(const char *head, const char *body, struct kc_error *error)
{
	char text[512];
	struct kc_http_response response;

	snprintf(text, sizeof(text), "%sContent-Length: %zu\r\n\r\n%s", head, strlen(body), body);
	cr_assert_eq(kc_http_response_parse(text, strlen(text), &response), 0);
	kc_error_from_response(error, &response, text + response.header_size, response.body_size);
}

Test(kc_http, error_bodies)
{
	struct kc_error error;

	error_of("HTTP/1.1 400 Bad\r\n", "{\"__type\":\"com.amazonaws.kinesis.v20131202#"
		 "ResourceNotFoundException\",\"message\":\"x\"}", &error);
	cr_assert_str_eq(error.type, "ResourceNotFoundException");
	cr_assert_str_eq(error.message, "x");
	cr_assert_eq(error.http_status, 400);
	error_of("HTTP/1.1 400 Bad\r\n",
		 "{\"__type\":\"SerializationException\",\"Message\":\"bad\"}", &error);
	cr_assert_str_eq(error.type, "SerializationException");
	cr_assert_str_eq(error.message, "bad");
	error_of("HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: AccessDeniedException:http://x\r\n",
		 "<xml>", &error);
	cr_assert_str_eq(error.type, "AccessDeniedException");
	error_of("HTTP/1.1 500 Oops\r\n", "", &error);
	cr_assert_str_eq(error.type, "HTTP 500");
	error_of("HTTP/1.1 400 Bad\r\n", "{\"__type\":", &error);  /* Cut JSON: status only. */
	cr_assert_str_eq(error.type, "HTTP 400");
}

Test(kc_client, endpoints)
{
	static const struct {
		const char *endpoint;
		int err;
		const char *host, *port, *host_header;
	} cases[] = {
		{ "http://127.0.0.1:4567", 0, "127.0.0.1", "4567", "127.0.0.1:4567" },
		{ "http://localhost/", 0, "localhost", "80", "localhost" },
		{ "http://[::1]:9000/", 0, "::1", "9000", "[::1]:9000" },
		{ "10.0.0.1:81", 0, "10.0.0.1", "81", "10.0.0.1:81" },
		{ "https://kinesis.example", 0, "kinesis.example", "443", "kinesis.example" },
		{ "https://127.0.0.1:8443/", 0, "127.0.0.1", "8443", "127.0.0.1:8443" },
		{ "http://h:443", 0, "h", "443", "h:443" },
		{ "ftp://x", -EPROTONOSUPPORT, NULL, NULL, NULL },
		{ "http://", -EINVAL, NULL, NULL, NULL },
		{ "http://h:", -EINVAL, NULL, NULL, NULL },
		{ "http://h:123456", -EINVAL, NULL, NULL, NULL },
		{ "http://h:80x", -EINVAL, NULL, NULL, NULL },
		{ "http://h/path", -EINVAL, NULL, NULL, NULL },
		{ "http://[::1", -EINVAL, NULL, NULL, NULL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kc_config config = { .endpoint = cases[i].endpoint };
		struct kc_client client;

		cr_assert_eq(kc_client_init(&client, &config), cases[i].err, "%s",
			     cases[i].endpoint);
		if (cases[i].err != 0) {
			kc_client_close(&client);
			continue;
		}
		cr_assert_str_eq(client.host, cases[i].host);
		cr_assert_str_eq(client.port, cases[i].port);
		cr_assert_str_eq(client.host_header, cases[i].host_header);
		kc_client_close(&client);
	}
}

Test(kc_base64, round_trips_every_length)
{
	uint8_t data[64];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 11);
	for (size_t size = 0; size <= sizeof(data); size++) {
		char *text;
		uint8_t *back;
		size_t text_size, back_size;

		cr_assert_eq(kc_base64_encode(data, size, &text, &text_size), 0);
		cr_assert_eq(text_size, strlen(text));
		cr_assert_eq(text_size % 4, 0);
		cr_assert_eq(kc_base64_decode(text, text_size, &back, &back_size), 0, "%s", text);
		cr_assert_eq(back_size, size);
		cr_assert_arr_eq(back, data, size);
		free(text);
		free(back);
	}
}

Test(kc_base64, strict_like_aws)
{
	static const char *const bad[] = {
		"a", "ab", "abc", "abcde", "ab=c", "a===", "====", "ab*d", "YQ=a",
		"YR==",   /* unused bits set: does not re-encode identically */
		"YWJ=",   /* same with one pad */
		"YQ==YQ==",
	};
	uint8_t *out;
	size_t size;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(kc_base64_decode(bad[i], strlen(bad[i]), &out, &size), -EINVAL, "%s",
			     bad[i]);
	cr_assert_eq(kc_base64_decode("YQ==", 4, &out, &size), 0);
	cr_assert_eq(size, 1);
	cr_assert_eq(out[0], 'a');
	free(out);
}
