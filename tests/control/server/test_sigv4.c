/*
 * sigv4: requests signed by botocore verify; every single mutation of them
 * (key, secret, body byte, signed header value, scope, clock, signed-header
 * list) is refused with AWS's exception name and message.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

#include "control/auth_sigv4.h"

struct sigv4_vector {
	const char *key_id;
	const char *secret;
	const char *region;
	long long now_s;
	size_t header_count;
	struct {
		const char *name;
		const char *value;
	} headers[16];
	const char *body;
	size_t body_size;
};

#include "sigv4_vectors.h"

#define VECTOR_COUNT (sizeof(sigv4_vectors) / sizeof(sigv4_vectors[0]))

/* A mutable copy of one vector as verifier input. */
struct sigv4_case {
	struct sigv4_keys keys;
	struct sigv4_header headers[20];
	char values[20][512];
	uint8_t body[256];
	struct sigv4_input in;
	struct sigv4_result result;
};

static void
case_load_vector(struct sigv4_case *c, const struct sigv4_vector *v, const char *access_keys)
{
	char keys_text[512];

	memset(c, 0, sizeof(*c));
	snprintf(keys_text, sizeof(keys_text), "OTHER:x,%s:%s", v->key_id, v->secret);
	cr_assert_eq(sigv4_keys_parse(&c->keys, access_keys != NULL ? access_keys : keys_text,
				      v->region), 0);
	for (size_t i = 0; i < v->header_count; i++) {
		snprintf(c->values[i], sizeof(c->values[i]), "%s", v->headers[i].value);
		c->headers[i] = (struct sigv4_header){
			v->headers[i].name, strlen(v->headers[i].name),
			c->values[i], strlen(c->values[i]),
		};
	}
	memcpy(c->body, v->body, v->body_size);
	c->in = (struct sigv4_input){
		.method = "POST", .method_size = 4, .target = "/", .target_size = 1,
		.headers = c->headers, .header_count = v->header_count,
		.body = c->body, .body_size = v->body_size,
		.now_real_ns = (uint64_t)v->now_s * 1000000000ull,
	};
}

static void
case_load(struct sigv4_case *c, size_t index, const char *access_keys)
{
	case_load_vector(c, &sigv4_vectors[index], access_keys);
}

static struct sigv4_header *
case_header(struct sigv4_case *c, const char *name)
{
	for (size_t i = 0; i < c->in.header_count; i++)
		if (strcasecmp(c->headers[i].name, name) == 0)
			return &c->headers[i];
	cr_assert_fail("no header %s", name);
	return NULL;
}

static void
case_rename(struct sigv4_case *c, const char *name, const char *new_name)
{
	struct sigv4_header *h = case_header(c, name);

	h->name = new_name;
	h->name_size = strlen(new_name);
}

static void
case_set(struct sigv4_case *c, const char *name, const char *value)
{
	struct sigv4_header *h = case_header(c, name);
	char *dst = (char *)h->value;

	snprintf(dst, 512, "%s", value);
	h->value_size = strlen(dst);
}

static void
case_verify(struct sigv4_case *c)
{
	sigv4_verify(&c->keys, &c->in, &c->result);
}

static void
assert_refused(struct sigv4_case *c, enum sigv4_status status, const char *type,
	       const char *message_prefix)
{
	case_verify(c);
	cr_assert_eq(c->result.status, status, "status %d: %s", c->result.status,
		     c->result.message);
	cr_assert_str_eq(c->result.error_type, type);
	cr_assert(strncmp(c->result.message, message_prefix, strlen(message_prefix)) == 0,
		  "message: %s", c->result.message);
}

#define BAD_SIGNATURE "The request signature we calculated does not match the signature you " \
	"provided. Check your AWS Secret Access Key and signing method. Consult the service " \
	"documentation for details."

Test(sigv4, botocore_signatures_verify)
{
	static struct sigv4_case c;

	for (size_t i = 0; i < VECTOR_COUNT; i++) {
		case_load(&c, i, NULL);
		case_verify(&c);
		cr_assert_eq(c.result.status, SIGV4_OK, "vector %zu: %s", i, c.result.message);
		cr_assert_str_eq(c.result.access_key_id, sigv4_vectors[i].key_id);
		/* Again: now through the cached signing key. */
		case_verify(&c);
		cr_assert_eq(c.result.status, SIGV4_OK, "vector %zu cached", i);
	}
}

Test(sigv4, clock_window_is_five_minutes_each_way)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	c.in.now_real_ns += 300ull * 1000000000ull;
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK);
	c.in.now_real_ns += 1000000000ull;
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Signature expired: 20261126T081500Z is now earlier than 20261126T081501Z "
		       "(20261126T082001Z - 5 min.)");
	case_load(&c, 0, NULL);
	c.in.now_real_ns -= 300ull * 1000000000ull;
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK);
	c.in.now_real_ns -= 1000000000ull;
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Signature not yet current: 20261126T081500Z is still later than "
		       "20261126T081459Z (20261126T080959Z + 5 min.)");
}

Test(sigv4, wrong_keys_are_refused)
{
	static struct sigv4_case c;

	case_load(&c, 0, "AKIDEXAMPLE:not-the-secret");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	case_load(&c, 0, "SOMEONE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
	assert_refused(&c, SIGV4_UNRECOGNIZED, "UnrecognizedClientException",
		       "The security token included in the request is invalid.");
	cr_assert_str_eq(c.result.access_key_id, "AKIDEXAMPLE");
}

Test(sigv4, every_body_byte_is_covered)
{
	static struct sigv4_case c;

	for (size_t v = 0; v < VECTOR_COUNT; v++) {
		for (size_t i = 0; i < sigv4_vectors[v].body_size; i++) {
			case_load(&c, v, NULL);
			c.body[i] ^= 0x01;
			assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
				       BAD_SIGNATURE);
		}
		case_load(&c, v, NULL);
		c.in.body_size++;  /* One extra byte (the copy has room). */
		assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	}
}

Test(sigv4, signed_header_values_are_covered)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	case_set(&c, "X-Amz-Target", "Kinesis_20131202.DeleteStream");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	case_load(&c, 0, NULL);
	case_set(&c, "Host", "localhost:4568");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	case_load(&c, 0, NULL);
	case_set(&c, "Content-Type", "application/json");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	/* Unsigned headers may change. */
	case_load(&c, 0, NULL);
	case_set(&c, "Content-Length", "9999");
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK);
	/* Case of names and runs of spaces in values are canonicalised away. */
	case_load(&c, 4, NULL);
	case_rename(&c, "X-Note", "x-NOTE");
	case_set(&c, "X-Note", "two spaces and\ttab");
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	case_set(&c, "X-Note", "twospaces and tab");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
}

Test(sigv4, signature_text_mutations)
{
	static struct sigv4_case c;
	char authz[512];

	case_load(&c, 0, NULL);
	snprintf(authz, sizeof(authz), "%s", case_header(&c, "Authorization")->value);
	/* Upper-case hex, a flipped digit, a short signature. */
	for (int m = 0; m < 3; m++) {
		char *sig;

		case_load(&c, 0, NULL);
		sig = strstr((char *)case_header(&c, "Authorization")->value, "Signature=") + 10;
		if (m == 0)
			sig[0] = (char)(sig[0] == 'c' ? 'C' : 'c');
		else if (m == 1)
			sig[63] = (char)(sig[63] == '0' ? '1' : '0');
		else
			sig[63] = '\0';
		case_header(&c, "Authorization")->value_size =
			strlen(case_header(&c, "Authorization")->value);
		assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	}
}

static void
replace(struct sigv4_case *c, const char *from, const char *to)
{
	struct sigv4_header *h = case_header(c, "Authorization");
	char buf[512];
	const char *at = strstr(h->value, from);

	cr_assert_not_null(at, "%s not in %s", from, h->value);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - h->value), h->value, to,
		 at + strlen(from));
	case_set(c, "Authorization", buf);
}

Test(sigv4, scope_mutations)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	replace(&c, "/us-east-1/", "/us-west-2/");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Credential should be scoped to a valid region, not 'us-west-2'. ");
	case_load(&c, 0, NULL);
	replace(&c, "/kinesis/", "/dynamodb/");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Credential should be scoped to correct service: 'kinesis'. ");
	case_load(&c, 0, NULL);
	replace(&c, "/aws4_request", "/aws4_requesu");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Credential should be scoped with a valid terminator");
	case_load(&c, 0, NULL);
	replace(&c, "/20261126/", "/20261125/");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
		       "date from HTTP: '20261125' != '20261126', from '20261126T081500Z'.");
	case_load(&c, 0, NULL);
	replace(&c, "Credential=AKIDEXAMPLE/", "Credential=AKIDEXAMPLE");
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Credential must have exactly 5 slash-delimited elements");
	case_load(&c, 0, NULL);
	replace(&c, "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA512 ");
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'");
	case_load(&c, 0, NULL);
	case_set(&c, "X-Amz-Date", "2026-11-26T08:15:00Z");
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Date must be in ISO-8601 'basic format'.");
}

Test(sigv4, signed_header_list_policy)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	replace(&c, ";x-amz-target,", ",");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.");
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host;", "content-type;");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "'Host' or ':authority' must be a 'SignedHeader'");
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host", "host;content-type");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", "SignedHeaders must be");
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host", "Content-Type;host");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", "SignedHeaders must be");
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host", "content-type;host;host");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", "SignedHeaders must be");
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host", "content-type;;host");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", "SignedHeaders must be");
}

Test(sigv4, missing_and_incomplete_authorization)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	case_rename(&c, "Authorization", "X-Not-Authorization");
	assert_refused(&c, SIGV4_MISSING, "MissingAuthenticationTokenException",
		       "Missing Authentication Token");
	case_load(&c, 0, NULL);
	case_set(&c, "Authorization", "AWS4-HMAC-SHA256 Credential=A/20261126/us-east-1/kinesis/"
		 "aws4_request");
	case_rename(&c, "X-Amz-Date", "X-Amz-Dat");
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Authorization header requires 'Signature' parameter. Authorization header "
		       "requires 'SignedHeaders' parameter. Authorization header requires "
		       "existence of either a 'X-Amz-Date' or a 'Date' header. Authorization="
		       "AWS4-HMAC-SHA256 Credential=A/20261126/us-east-1/kinesis/aws4_request");
}

Test(sigv4, payload_hash_header_must_match)
{
	static struct sigv4_case c;
	static const char empty_sha[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

	/* Vector 3 has an empty body: its hash may be sent (any case) and is then unsigned here. */
	case_load(&c, 3, NULL);
	c.headers[c.in.header_count] = (struct sigv4_header){ "X-Amz-Content-SHA256", 20,
							      empty_sha, 64 };
	c.in.header_count++;
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	c.headers[c.in.header_count - 1].value = "UNSIGNED-PAYLOAD";
	c.headers[c.in.header_count - 1].value_size = 16;
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "The provided 'x-amz-content-sha256' header does not match");
}

Test(sigv4, http2_authority_stands_for_host)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	case_rename(&c, "Host", ":authority");
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
}

Test(sigv4, date_header_fallback)
{
	static struct sigv4_case c;

	/* Signed with X-Amz-Date; with only Date the same instant gives the same string to sign. */
	case_load(&c, 0, NULL);
	replace(&c, "content-type;host;x-amz-date;", "content-type;date;host;");
	case_rename(&c, "X-Amz-Date", "Date");
	case_set(&c, "Date", "Thu, 26 Nov 2026 08:15:00 GMT");
	case_verify(&c);
	/* The signed list changed, so the signature cannot match: but Date parses. */
	cr_assert_eq(c.result.status, SIGV4_INVALID);
	cr_assert_str_eq(c.result.message, BAD_SIGNATURE);
}

Test(sigv4, presence_mode)
{
	static struct sigv4_case c;

	case_load(&c, 0, NULL);
	sigv4_presence(&c.in, &c.result);
	cr_assert_eq(c.result.status, SIGV4_OK);
	cr_assert_str_eq(c.result.access_key_id, "AKIDEXAMPLE");
	case_set(&c, "Authorization", "anything");
	sigv4_presence(&c.in, &c.result);
	cr_assert_eq(c.result.status, SIGV4_OK);
	cr_assert_str_eq(c.result.access_key_id, "");
	case_rename(&c, "Authorization", "Authorisation");
	sigv4_presence(&c.in, &c.result);
	cr_assert_eq(c.result.status, SIGV4_MISSING);
}

Test(sigv4, access_key_list_parsing)
{
	struct sigv4_keys keys;

	cr_assert_eq(sigv4_keys_parse(&keys, "A:a, B:b:c ,C:c", "us-east-1"), 0);
	cr_assert_eq(keys.count, 3);
	cr_assert_str_eq(keys.items[1].access_key_id, "B");
	cr_assert_str_eq(keys.items[1].secret, "b:c");
	cr_assert_str_eq(keys.items[2].secret, "c");
	cr_assert_eq(sigv4_keys_parse(&keys, "", "us-east-1"), -EINVAL);
	cr_assert_eq(sigv4_keys_parse(&keys, "A", "us-east-1"), -EINVAL);
	cr_assert_eq(sigv4_keys_parse(&keys, ":a", "us-east-1"), -EINVAL);
	cr_assert_eq(sigv4_keys_parse(&keys, "A:", "us-east-1"), -EINVAL);
	cr_assert_eq(sigv4_keys_parse(&keys, "A:a,,B:b", "us-east-1"), -EINVAL);
}

Test(sigv4, js_sdk_http2_signature_with_authority_verifies)
{
	static struct sigv4_case c;

	case_load_vector(&c, &sigv4_vector_js_h2, NULL);
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	cr_assert_str_eq(c.result.access_key_id, "AKIDTEST");
	case_load_vector(&c, &sigv4_vector_js_h2, NULL);
	case_set(&c, ":authority", "127.0.0.1:59332");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	case_load_vector(&c, &sigv4_vector_js_h2, NULL);
	c.body[1] = ']';
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "The provided 'x-amz-content-sha256' header does not match");
}

/*
 * A presigned PutRecord: botocore 1.43.11 SigV4QueryAuth (expires=900) at
 * 2026-11-26 08:15:00 UTC, the body kept in the body (SigV4QueryAuth would
 * move it into the query; Kinesis takes its input from the body).
 */
#define PRESIGN_QUERY_HEAD "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F" \
	"20261126%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20261126T081500Z&X-Amz-Expires="
#define PRESIGN_QUERY_TAIL "&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-target&" \
	"X-Amz-Signature=94aea21cd531f10599a6404f3343f95b836671174336bc5ac00a19ae8eb8aac2"
#define PRESIGN_TARGET PRESIGN_QUERY_HEAD "900" PRESIGN_QUERY_TAIL
#define PRESIGN_NOW_S 1795680900ll

static void
presign_load(struct sigv4_case *c, const char *target)
{
	static const char body[] = "{\"StreamName\":\"s\",\"Data\":\"aGk=\","
		"\"PartitionKey\":\"k\"}";
	static const char *const names[] = { "Host", "X-Amz-Target", "Content-Type" };
	static const char *const values[] = { "localhost:4567", "Kinesis_20131202.PutRecord",
					      "application/x-amz-json-1.1" };
	char message[SIGV4_MESSAGE_SIZE];

	memset(c, 0, sizeof(*c));
	cr_assert_eq(sigv4_keys_parse(&c->keys, "OTHER:x,AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+"
				      "bPxRfiCYEXAMPLEKEY", "us-east-1"), 0);
	cr_assert_eq(sigv4_principals_parse(&c->keys, "AKIDEXAMPLE=arn:aws:iam::444455556666:"
					    "user/bob", "111122223333", message,
					    sizeof(message)), 0, "%s", message);
	for (size_t i = 0; i < 3; i++) {
		snprintf(c->values[i], sizeof(c->values[i]), "%s", values[i]);
		c->headers[i] = (struct sigv4_header){ names[i], strlen(names[i]), c->values[i],
						       strlen(values[i]) };
	}
	memcpy(c->body, body, sizeof(body) - 1);
	c->in = (struct sigv4_input){
		.method = "POST", .method_size = 4, .target = target, .target_size = strlen(target),
		.headers = c->headers, .header_count = 3,
		.body = c->body, .body_size = sizeof(body) - 1,
		.now_real_ns = (uint64_t)PRESIGN_NOW_S * 1000000000ull,
	};
}

Test(sigv4, presigned_request_verifies_until_it_expires)
{
	static struct sigv4_case c;

	presign_load(&c, PRESIGN_TARGET);
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	cr_assert_str_eq(c.result.access_key_id, "AKIDEXAMPLE");
	cr_assert_str_eq(c.result.principal_arn, "arn:aws:iam::444455556666:user/bob");
	/* The whole validity period, past the 5-minute window of the header form. */
	c.in.now_real_ns = (uint64_t)(PRESIGN_NOW_S + 900) * 1000000000ull;
	case_verify(&c);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	c.in.now_real_ns += 1000000000ull;
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", "Signature expired: "
		       "20261126T083000Z (X-Amz-Date 20261126T081500Z + X-Amz-Expires 900) is now "
		       "earlier than 20261126T083001Z.");
	c.in.now_real_ns = (uint64_t)(PRESIGN_NOW_S - 301) * 1000000000ull;
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException",
		       "Signature not yet current");
}

Test(sigv4, presigned_request_refuses_every_change)
{
	static struct sigv4_case c;
	static char target[1024];

	/* X-Amz-Expires is signed: a longer life is a different signature. */
	presign_load(&c, PRESIGN_QUERY_HEAD "901" PRESIGN_QUERY_TAIL);
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	presign_load(&c, PRESIGN_TARGET);
	c.body[14] = 't';
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	presign_load(&c, PRESIGN_TARGET);
	case_set(&c, "X-Amz-Target", "Kinesis_20131202.DeleteStream");
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	snprintf(target, sizeof(target), "%s", PRESIGN_TARGET);
	target[strlen(target) - 1] = '3';
	presign_load(&c, target);
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
	/* The wrong secret for the key. */
	presign_load(&c, PRESIGN_TARGET);
	cr_assert_eq(sigv4_keys_parse(&c.keys, "AKIDEXAMPLE:other-secret", "us-east-1"), 0);
	assert_refused(&c, SIGV4_INVALID, "InvalidSignatureException", BAD_SIGNATURE);
}

Test(sigv4, presigned_request_refuses_bad_parameters)
{
	static struct sigv4_case c;
	static const char *const incomplete[] = {
		/* No X-Amz-Expires. */
		"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2F"
		"us-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20261126T081500Z"
		PRESIGN_QUERY_TAIL,
		/* A bad percent escape in the credential. */
		"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%ZZ20261126&"
		"X-Amz-Date=20261126T081500Z&X-Amz-Expires=900" PRESIGN_QUERY_TAIL,
	};
	static const char authz[] = "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, "
		"Signature=00";

	for (size_t i = 0; i < sizeof(incomplete) / sizeof(incomplete[0]); i++) {
		presign_load(&c, incomplete[i]);
		assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
			       "AWS query-string parameters must include 'X-Amz-Algorithm'");
	}
	presign_load(&c, PRESIGN_QUERY_HEAD "0" PRESIGN_QUERY_TAIL);
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "X-Amz-Expires must be a whole number of seconds from 1 to 604800, not '0'");
	presign_load(&c, PRESIGN_QUERY_HEAD "604801" PRESIGN_QUERY_TAIL);
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException", "X-Amz-Expires");
	presign_load(&c, PRESIGN_QUERY_HEAD "-5" PRESIGN_QUERY_TAIL);
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException", "X-Amz-Expires");
	presign_load(&c, "/?X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=AKIDEXAMPLE%2F"
		     "20261126%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20261126T081500Z&"
		     "X-Amz-Expires=900" PRESIGN_QUERY_TAIL);
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'");
	/* Both mechanisms at once. */
	presign_load(&c, PRESIGN_TARGET);
	c.headers[c.in.header_count++] = (struct sigv4_header){ "Authorization", 13, authz,
								strlen(authz) };
	assert_refused(&c, SIGV4_INCOMPLETE, "IncompleteSignatureException",
		       "Only one auth mechanism allowed");
}

/*
 * Vector 0's request made a Firehose PutRecord, signed for the service "firehose" by
 * botocore 1.29.27 SigV4Auth with the clock fixed at the vector's 2026-11-26T08:15:00Z.
 */
#define FIREHOSE_BODY "{\"DeliveryStreamName\":\"d\",\"Record\":{\"Data\":\"aGk=\"}}"
#define FIREHOSE_AUTHORIZATION \
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/firehose/aws4_request, " \
	"SignedHeaders=content-type;host;x-amz-date;x-amz-target, " \
	"Signature=e9d28c31fda3e49d72e8974123f42d0b461388878901fc9dde15a2d692549c7e"

static void
case_load_firehose(struct sigv4_case *c)
{
	case_load(c, 0, NULL);
	case_set(c, "X-Amz-Target", "Firehose_20150804.PutRecord");
	case_set(c, "Authorization", FIREHOSE_AUTHORIZATION);
	static_assert(sizeof(FIREHOSE_BODY) - 1 <= sizeof(c->body), "fits");
	memcpy(c->body, FIREHOSE_BODY, sizeof(FIREHOSE_BODY) - 1);
	c->in.body_size = sizeof(FIREHOSE_BODY) - 1;
	c->in.service = SIGV4_SERVICE_FIREHOSE;
}

/*
 * The request's own service (server_call.c sets firehose for a Firehose_20150804 target)
 * overrides the keys' kinesis; one key alternating between the services on the same day
 * verifies each time (the signing-key cache is keyed by service too).
 */
Test(sigv4, request_service_overrides_the_keys_and_keys_the_cache)
{
	static struct sigv4_case fh, kin;

	case_load_firehose(&fh);
	case_load(&kin, 0, NULL);
	kin.keys = fh.keys;  /* One key set, one cache, as in the server. */
	for (int round = 0; round < 2; round++) {
		sigv4_verify(&kin.keys, &fh.in, &fh.result);
		cr_assert_eq(fh.result.status, SIGV4_OK, "firehose, round %d: %s", round,
			     fh.result.message);
		sigv4_verify(&kin.keys, &kin.in, &kin.result);
		cr_assert_eq(kin.result.status, SIGV4_OK, "kinesis, round %d: %s", round,
			     kin.result.message);
	}
	/* Without the override the keys' service is expected; a kinesis scope as firehose is not. */
	fh.in.service = NULL;
	sigv4_verify(&kin.keys, &fh.in, &fh.result);
	cr_assert_str_eq(fh.result.message,
			 "Credential should be scoped to correct service: 'kinesis'. ");
	kin.in.service = SIGV4_SERVICE_FIREHOSE;
	sigv4_verify(&kin.keys, &kin.in, &kin.result);
	cr_assert_str_eq(kin.result.message,
			 "Credential should be scoped to correct service: 'firehose'. ");
	/* The admin key set (its own service) is overridden the same way. */
	cr_assert_eq(sigv4_keys_parse_service(&fh.keys, "AKIDEXAMPLE:"
					      "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
					      "us-east-1", SIGV4_SERVICE_ADMIN), 0);
	fh.in.service = SIGV4_SERVICE_FIREHOSE;
	case_verify(&fh);
	cr_assert_eq(fh.result.status, SIGV4_OK, "%s", fh.result.message);
	fh.in.service = NULL;
	assert_refused(&fh, SIGV4_INVALID, "InvalidSignatureException",
		       "Credential should be scoped to correct service: 'sluice-admin'. ");
}

Test(sigv4, principals_map_keys_to_arns)
{
	static struct sigv4_keys keys;
	char message[SIGV4_MESSAGE_SIZE];

	cr_assert_eq(sigv4_keys_parse(&keys, "A1:s1,A2:s2", "us-east-1"), 0);
	cr_assert_eq(sigv4_principals_parse(&keys, "", "111122223333", message,
					    sizeof(message)), 0);
	cr_assert_str_eq(keys.items[0].principal_arn, "arn:aws:iam::111122223333:root");
	cr_assert_str_eq(keys.items[1].principal_arn, "arn:aws:iam::111122223333:root");
	cr_assert_eq(sigv4_principals_parse(&keys, " A2 = arn:aws:iam::444455556666:role/r ",
					    "111122223333", message, sizeof(message)), -EINVAL);
	cr_assert_eq(sigv4_principals_parse(&keys, "A2=arn:aws:iam::444455556666:role/r, "
					    "A1=arn:aws:iam::111122223333:user/alice",
					    "111122223333", message, sizeof(message)), 0, "%s",
		     message);
	cr_assert_str_eq(keys.items[0].principal_arn, "arn:aws:iam::111122223333:user/alice");
	cr_assert_str_eq(keys.items[1].principal_arn, "arn:aws:iam::444455556666:role/r");
	cr_assert_eq(sigv4_principals_parse(&keys, "A3=arn:aws:iam::444455556666:root",
					    "111122223333", message, sizeof(message)), -EINVAL);
	cr_assert_str_eq(message, "'A3' is not one of [auth] access_keys");
	cr_assert_eq(sigv4_principals_parse(&keys, "A1=arn:aws:iam::4444:root", "111122223333",
					    message, sizeof(message)), -EINVAL);
	cr_assert(strstr(message, "expected arn:aws:iam::ACCOUNT:root") != NULL, "%s", message);
	cr_assert_eq(sigv4_principals_parse(&keys, "A1", "111122223333", message,
					    sizeof(message)), -EINVAL);
	cr_assert_eq(sigv4_principals_parse(&keys, "", "0000", message, sizeof(message)),
		     -EINVAL);
	cr_assert_str_eq(message, "[server] account_id '0000' is not 12 digits");
}

Test(sigv4, presence_accepts_a_presigned_credential)
{
	static struct sigv4_case c;

	presign_load(&c, PRESIGN_TARGET);
	sigv4_presence(&c.in, &c.result);
	cr_assert_eq(c.result.status, SIGV4_OK, "%s", c.result.message);
	cr_assert_str_eq(c.result.access_key_id, "AKIDEXAMPLE");
	presign_load(&c, "/");
	sigv4_presence(&c.in, &c.result);
	cr_assert_eq(c.result.status, SIGV4_MISSING);
}
