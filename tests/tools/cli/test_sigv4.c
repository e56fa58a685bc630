/*
 * SigV4 signing against vectors botocore 1.29.27 made (sigv4_vectors.py,
 * kept beside this file to re-derive them), and single mutations that must
 * change the signature. Also the request builder: headers and signature
 * sent are the ones signed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tools/kinesis_client.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define BODY "{\"StreamName\":\"orders\"}"

static struct kc_sigv4_request
base_request(void)
{
	struct kc_sigv4_request request = {
		.access_key = "AKIDEXAMPLE",
		.secret_key = SECRET,
		.region = "eu-west-1",
		.service = "kinesis",
		.amz_date = "20261126T081530Z",
		.host = "127.0.0.1:4567",
		.content_type = "application/x-amz-json-1.1",
		.target = "Kinesis_20131202.DescribeStreamSummary",
		.body = BODY,
		.body_size = strlen(BODY),
	};
	return request;
}

static void
assert_signature(const struct kc_sigv4_request *request, const char *expected)
{
	char out[1024];

	cr_assert_eq(kc_sigv4_authorization(request, out, sizeof(out)), 0);
	cr_assert_str_eq(out, expected);
}

Test(sigv4, matches_botocore)
{
	struct kc_sigv4_request request = base_request();

	assert_signature(&request,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/kinesis/aws4_request, "
		"SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
		"Signature=74d7e40b1978d30cc326d867a78a36b3cd67eb97ac145906ffe638fbce95aa43");
}

Test(sigv4, matches_botocore_with_a_session_token)
{
	struct kc_sigv4_request request = base_request();

	request.session_token = "FQoGZXIvYXdzEXAMPLETOKEN";
	assert_signature(&request,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/kinesis/aws4_request, "
		"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
		"Signature=07483b654dcc3d2c861992cfb3ea187015e2d2060f4c8af224d58a663496319e");
}

Test(sigv4, matches_botocore_without_a_port)
{
	struct kc_sigv4_request request = base_request();

	request.host = "kinesis.local";
	request.body = "{}";
	request.body_size = 2;
	request.target = "Kinesis_20131202.ListStreams";
	assert_signature(&request,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/kinesis/aws4_request, "
		"SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
		"Signature=135d78a0ecba14f69748a7af216c8a8805425f7a478781dcc7cc263b3c344dec");
}

static const char *
signature_of(const struct kc_sigv4_request *request)
{
	static char out[1024];

	cr_assert_eq(kc_sigv4_authorization(request, out, sizeof(out)), 0);
	return strstr(out, "Signature=");
}

Test(sigv4, every_input_is_signed)
{
	struct kc_sigv4_request base = base_request();
	char reference[128];

	snprintf(reference, sizeof(reference), "%s", signature_of(&base));
	for (int field = 0; field < 8; field++) {
		struct kc_sigv4_request request = base_request();

		switch (field) {
		case 0: request.secret_key = SECRET "x"; break;
		case 1: request.region = "eu-west-2"; break;
		case 2: request.amz_date = "20261126T081531Z"; break;
		case 3: request.host = "127.0.0.1:4568"; break;
		case 4: request.target = "Kinesis_20131202.DescribeStream"; break;
		case 5: request.body_size -= 1; break;
		case 6: request.content_type = "application/json"; break;
		case 7: request.service = "kinesiz"; break;
		}
		cr_assert_str_neq(signature_of(&request), reference, "field %d", field);
	}
}

Test(sigv4, too_small_an_output_is_refused)
{
	struct kc_sigv4_request request = base_request();
	char out[64];

	cr_assert_lt(kc_sigv4_authorization(&request, out, sizeof(out)), 0);
}

static bool
contains(const char *bytes, size_t size, const char *text)
{
	return memmem(bytes, size, text, strlen(text)) != NULL;
}

Test(kc_request, carries_what_it_signed)
{
	struct kc_config config = {
		.endpoint = "http://127.0.0.1:4567", .region = "eu-west-1",
		.access_key = "AKIDEXAMPLE", .secret_key = SECRET,
	};
	struct kc_client client;
	char *bytes;
	size_t size;
	/* 2026-11-26T08:15:30Z */
	uint64_t now_ns = 1795680930ull * 1000000000ull;

	cr_assert_eq(kc_client_init(&client, &config), 0);
	cr_assert_eq(kc_request_build(&client, "DescribeStreamSummary", BODY, strlen(BODY), now_ns,
				      &bytes, &size), 0);
	cr_assert(contains(bytes, size, "X-Amz-Date: 20261126T081530Z\r\n"));
	cr_assert(contains(bytes, size, "Host: 127.0.0.1:4567\r\n"));
	cr_assert(contains(bytes, size, "Signature=74d7e40b1978d30cc326d867a78a36b3cd67eb97ac14590"
					"6ffe638fbce95aa43\r\n"));
	cr_assert(contains(bytes, size, "Content-Length: 23\r\n\r\n" BODY));
	cr_assert_eq(memcmp(bytes + size - strlen(BODY), BODY, strlen(BODY)), 0);
	free(bytes);
	kc_client_close(&client);
}
