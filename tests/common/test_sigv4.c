/*
 * common/sigv4.c as an S3 client signs: AWS's published S3 examples
 * ("Signature Calculations for the Authorization Header: Transferring Payload
 * in a Single Chunk", GET Object and PUT Object), and requests as the S3
 * destination sends them against botocore's S3SigV4Auth (sigv4_s3_vectors.py
 * re-derives those). Then the negative space: any changed input changes the
 * signature; headers out of order, too long, or none are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "common/sigv4.h"

#define AWS_KEY "AKIAIOSFODNN7EXAMPLE"
#define AWS_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define BOTO_KEY "AKIDEXAMPLE"
#define BOTO_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char *
signature_of(const char *authorization)
{
	const char *p = strstr(authorization, "Signature=");

	cr_assert_not_null(p, "%s", authorization);
	return p + strlen("Signature=");
}

Test(sigv4, aws_s3_get_object_example)
{
	const struct sigv4_sign_header headers[] = {
		{ "host", "examplebucket.s3.amazonaws.com" }, { "range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA256 }, { "x-amz-date", "20130524T000000Z" },
	};
	const struct sigv4_sign sign = {
		.method = "GET", .canonical_uri = "/test.txt", .canonical_query = "",
		.headers = headers, .header_count = ARRAY_SIZE(headers),
		.payload_hex = EMPTY_SHA256, .amz_date = "20130524T000000Z",
		.region = "us-east-1", .service = "s3", .access_key = AWS_KEY, .secret = AWS_SECRET,
	};
	char out[512];

	cr_assert_eq(sigv4_sign_authorization(&sign, out, sizeof(out)), 0);
	cr_assert_str_eq(signature_of(out),
			 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	cr_assert_str_eq(out, "AWS4-HMAC-SHA256 Credential=" AWS_KEY "/20130524/us-east-1/s3/"
			 "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
			 "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd9"
			 "1039c6036bdb41");
}

Test(sigv4, aws_s3_put_object_example)
{
	static const char body[] = "Welcome to Amazon S3.";
	char payload[SIGV4_HEX_SIZE], path[64], out[512];
	const struct sigv4_sign_header headers[] = {
		{ "date", "Fri, 24 May 2013 00:00:00 GMT" },
		{ "host", "examplebucket.s3.amazonaws.com" },
		{ "x-amz-content-sha256", payload }, { "x-amz-date", "20130524T000000Z" },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
	};
	const struct sigv4_sign sign = {
		.method = "PUT", .canonical_uri = path, .canonical_query = "",
		.headers = headers, .header_count = ARRAY_SIZE(headers), .payload_hex = payload,
		.amz_date = "20130524T000000Z", .region = "us-east-1", .service = "s3",
		.access_key = AWS_KEY, .secret = AWS_SECRET,
	};

	sigv4_sha256_hex(body, strlen(body), payload);
	cr_assert_str_eq(payload,
			 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	/* The key "test$file.text": '$' is encoded once, '/' kept. */
	cr_assert_eq(sigv4_uri_encode("/test$file.text", 15, true, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/test%24file.text");
	cr_assert_eq(sigv4_sign_authorization(&sign, out, sizeof(out)), 0);
	cr_assert_str_eq(signature_of(out),
			 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

/* A request as firehose/fh_s3.c builds it: key and upload id encoded here, then signed. */
struct s3_vector {
	const char *method;
	const char *host;
	const char *bucket;      /* NULL: virtual-host style (the bucket is in host). */
	const char *key;
	const char *upload_id;   /* NULL: no upload query; "" with part 0: "uploads=". */
	unsigned part;
	const char *body;
	const char *signature;   /* botocore's (sigv4_s3_vectors.py). */
};

static const struct s3_vector s3_vectors[] = {
	{ "PUT", "127.0.0.1:4568", "lake", "2026/12/07/05/clicks-1-2026-12-07-05-30-00-x.gz",
	  NULL, 0, "hello\n",
	  "7be9d9c9b602fa3cca55e18e6d91b160e8308c89b65b25637fd7131e3aa0909f" },
	{ "POST", "127.0.0.1:4568", "lake", "big", "", 0, "",
	  "a71dd400c0d900bab6281f5c77ff864a71ed16f97ea6fd612f57ff61e87d856e" },
	{ "PUT", "127.0.0.1:4568", "lake", "big", "a/b+c", 2, "part two",
	  "62c4f787938d4e7440a467ed07fdb8fb56a79372d407052fbb35143ee1e12a77" },
	{ "POST", "127.0.0.1:4568", "lake", "big", "a/b+c", 0,
	  "<CompleteMultipartUpload></CompleteMultipartUpload>",
	  "225985200b3f27f923416645aa7821fdceeb33cc096fde05d21e14d5483a580a" },
	{ "PUT", "lake.s3.local:9000", NULL, "p q/a+b=c/\xc3\xa9.json", NULL, 0, "{}",
	  "c505dea420aa7b9d226356f00d8e6128d53f7d492607e13f0222ba1bf8d7e2a5" },
	{ "DELETE", "127.0.0.1:4568", "lake", "big", "xyz", 0, "",
	  "6267f1ced11d22a82d929ad4670a0a29b0a2472b065d5abfff2cec8560006696" },
};

static void
s3_sign(const struct s3_vector *v, const char *secret, char *out, size_t out_size)
{
	char key[256], path[300], id[128], query[200], payload[SIGV4_HEX_SIZE];
	const struct sigv4_sign_header headers[] = {
		{ "host", v->host }, { "x-amz-content-sha256", payload },
		{ "x-amz-date", "20261207T053000Z" },
	};
	const struct sigv4_sign sign = {
		.method = v->method, .canonical_uri = path, .canonical_query = query,
		.headers = headers, .header_count = ARRAY_SIZE(headers), .payload_hex = payload,
		.amz_date = "20261207T053000Z", .region = "eu-west-1", .service = "s3",
		.access_key = BOTO_KEY, .secret = secret,
	};

	cr_assert_eq(sigv4_uri_encode(v->key, strlen(v->key), true, key, sizeof(key)), 0);
	snprintf(path, sizeof(path), "%s%s/%s", v->bucket != NULL ? "/" : "",
		 v->bucket != NULL ? v->bucket : "", key);
	query[0] = '\0';
	if (v->upload_id != NULL && v->upload_id[0] == '\0') {
		strcpy(query, "uploads=");
	} else if (v->upload_id != NULL) {
		cr_assert_eq(sigv4_uri_encode(v->upload_id, strlen(v->upload_id), false, id,
					      sizeof(id)), 0);
		if (v->part > 0)
			snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", v->part, id);
		else
			snprintf(query, sizeof(query), "uploadId=%s", id);
	}
	sigv4_sha256_hex(v->body, strlen(v->body), payload);
	cr_assert_eq(sigv4_sign_authorization(&sign, out, out_size), 0);
}

Test(sigv4, botocore_s3_vectors)
{
	for (size_t i = 0; i < ARRAY_SIZE(s3_vectors); i++) {
		char out[512];

		s3_sign(&s3_vectors[i], BOTO_SECRET, out, sizeof(out));
		cr_expect_str_eq(signature_of(out), s3_vectors[i].signature, "vector %zu", i);
		cr_expect_not_null(strstr(out, "Credential=" BOTO_KEY "/20261207/eu-west-1/s3/"
					  "aws4_request, SignedHeaders=host;"
					  "x-amz-content-sha256;x-amz-date, "), "%s", out);
	}
}

/* One changed byte anywhere (secret, method, key, body, upload id) is another signature. */
Test(sigv4, every_input_is_signed)
{
	struct s3_vector mutations[6];
	const char *secrets[6] = { "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz" };

	for (size_t i = 0; i < ARRAY_SIZE(mutations); i++) {
		mutations[i] = s3_vectors[2];
		if (i > 0)
			secrets[i] = BOTO_SECRET;
	}
	mutations[1].method = "POST";
	mutations[2].key = "bih";
	mutations[3].body = "part twO";
	mutations[4].upload_id = "a/b+d";
	mutations[5].part = 3;
	for (size_t i = 0; i < ARRAY_SIZE(mutations); i++) {
		char out[512];

		s3_sign(&mutations[i], secrets[i], out, sizeof(out));
		cr_expect_str_neq(signature_of(out), s3_vectors[2].signature, "mutation %zu", i);
	}
}

Test(sigv4, refusals)
{
	const struct sigv4_sign_header unsorted[] = {
		{ "x-amz-date", "20261207T053000Z" }, { "host", "h" },
	};
	struct sigv4_sign sign = {
		.method = "GET", .canonical_uri = "/", .canonical_query = "",
		.headers = unsorted, .header_count = ARRAY_SIZE(unsorted),
		.payload_hex = EMPTY_SHA256, .amz_date = "20261207T053000Z", .region = "r",
		.service = "s3", .access_key = "k", .secret = "s",
	};
	char out[512], small[8], secret[SIGV4_SIGN_SECRET_SIZE_MAX + 2];
	uint8_t key[SIGV4_SHA256_SIZE];

	cr_assert_eq(sigv4_sign_authorization(&sign, out, sizeof(out)), -EINVAL);
	sign.header_count = 0;
	cr_assert_eq(sigv4_sign_authorization(&sign, out, sizeof(out)), -EINVAL);
	sign.header_count = 1;
	cr_assert_eq(sigv4_sign_authorization(&sign, small, sizeof(small)), -ENAMETOOLONG);
	memset(secret, 'a', sizeof(secret) - 1);
	secret[sizeof(secret) - 1] = '\0';
	cr_assert_eq(sigv4_key_derive(secret, "20261207", "r", "s3", key), -ENAMETOOLONG);
	secret[sizeof(secret) - 2] = '\0';
	cr_assert_eq(sigv4_key_derive(secret, "20261207", "r", "s3", key), 0);
	/* URI encoding: exactly fitting, and one byte short. */
	cr_assert_eq(sigv4_uri_encode("a b", 3, true, small, 6), 0);
	cr_assert_str_eq(small, "a%20b");
	cr_assert_eq(sigv4_uri_encode("a b", 3, true, small, 5), -ENAMETOOLONG);
	cr_assert_eq(sigv4_uri_encode("a/b", 3, false, small, sizeof(small)), 0);
	cr_assert_str_eq(small, "a%2Fb");
}
