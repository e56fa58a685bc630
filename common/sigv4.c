/*
 * sigv4.c - AWS Signature Version 4 primitives and the client signer
 * (sigv4.h has the steps). OpenSSL does the hashing.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/sigv4.h"

void
sigv4_hex_encode(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

void
sigv4_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		  uint8_t out[SIGV4_SHA256_SIZE])
{
	unsigned int len = SIGV4_SHA256_SIZE;

	if (HMAC(EVP_sha256(), key, (int)key_size, data, size, out, &len) == NULL)
		abort();  /* OpenSSL failing SHA-256 is not an input error. */
	assert(len == SIGV4_SHA256_SIZE);
}

void
sigv4_sha256_hex(const void *data, size_t size, char out[SIGV4_HEX_SIZE])
{
	uint8_t digest[SIGV4_SHA256_SIZE];
	unsigned int len = 0;

	if (EVP_Digest(data, size, digest, &len, EVP_sha256(), NULL) != 1)
		abort();
	assert(len == SIGV4_SHA256_SIZE);
	sigv4_hex_encode(digest, SIGV4_SHA256_SIZE, out);
}

int
sigv4_key_derive(const char *secret, const char *date, const char *region, const char *service,
		 uint8_t out[SIGV4_SHA256_SIZE])
{
	char key[SIGV4_SIGN_SECRET_SIZE_MAX + 5];
	uint8_t k[SIGV4_SHA256_SIZE];
	int n = snprintf(key, sizeof(key), "AWS4%s", secret);

	if (n < 0 || (size_t)n >= sizeof(key))
		return -ENAMETOOLONG;
	sigv4_hmac_sha256(key, (size_t)n, date, 8, k);
	sigv4_hmac_sha256(k, sizeof(k), region, strlen(region), k);
	sigv4_hmac_sha256(k, sizeof(k), service, strlen(service), k);
	sigv4_hmac_sha256(k, sizeof(k), SIGV4_TERMINATOR, strlen(SIGV4_TERMINATOR), out);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}

bool
sigv4_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int
sigv4_uri_encode(const char *in, size_t n, bool slash_kept, char *out, size_t out_size)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t used = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (sigv4_unreserved(c) || (slash_kept && c == '/')) {
			if (used + 1 >= out_size)
				return -ENAMETOOLONG;
			out[used++] = (char)c;
			continue;
		}
		if (used + 3 >= out_size)
			return -ENAMETOOLONG;
		out[used++] = '%';
		out[used++] = digits[c >> 4];
		out[used++] = digits[c & 15];
	}
	if (used >= out_size)
		return -ENAMETOOLONG;
	out[used] = '\0';
	return 0;
}

void
sigv4_amz_date(uint64_t real_ns, char out[SIGV4_AMZ_DATE_SIZE])
{
	time_t seconds = (time_t)(real_ns / 1000000000u);
	struct tm utc;

	gmtime_r(&seconds, &utc);
	strftime(out, SIGV4_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", &utc);
}

/* Appends printf output to buf at *used; false when it does not fit. */
static bool
sigv4_append(char *buf, size_t cap, size_t *used, const char *a, const char *b, const char *c)
{
	int n = snprintf(buf + *used, cap - *used, "%s%s%s", a, b, c);

	if (n < 0 || (size_t)n >= cap - *used)
		return false;
	*used += (size_t)n;
	return true;
}

/* Step 1: the canonical request, and the signed header list beside it. */
static int
sigv4_canonical(const struct sigv4_sign *s, char *canonical, size_t *size_out,
		char *signed_names, size_t names_cap)
{
	size_t used = 0, names_used = 0;
	bool ok;

	if (s->header_count == 0 || s->header_count > SIGV4_SIGN_HEADERS_MAX)
		return -EINVAL;
	ok = sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, s->method, "\n",
			  s->canonical_uri) &&
	     sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, "\n", s->canonical_query,
			  "\n");
	for (size_t i = 0; ok && i < s->header_count; i++) {
		const struct sigv4_sign_header *h = &s->headers[i];

		if (i > 0 && strcmp(s->headers[i - 1].name, h->name) >= 0)
			return -EINVAL;
		ok = sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, h->name, ":",
				  h->value) &&
		     sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, "\n", "", "") &&
		     sigv4_append(signed_names, names_cap, &names_used, i > 0 ? ";" : "", h->name,
				  "");
	}
	ok = ok && sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, "\n", signed_names,
				"\n") &&
	     sigv4_append(canonical, SIGV4_CANONICAL_SIZE_MAX, &used, s->payload_hex, "", "");
	if (!ok)
		return -ENAMETOOLONG;
	*size_out = used;
	return 0;
}

int
sigv4_sign_authorization(const struct sigv4_sign *s, char *out, size_t out_size)
{
	char canonical[SIGV4_CANONICAL_SIZE_MAX];
	char signed_names[1024], scope[256], to_sign[512], hex[SIGV4_HEX_SIZE];
	uint8_t key[SIGV4_SHA256_SIZE], signature[SIGV4_SHA256_SIZE];
	size_t size = 0;
	int rc, n;

	assert(strlen(s->amz_date) == SIGV4_AMZ_DATE_SIZE - 1);
	rc = sigv4_canonical(s, canonical, &size, signed_names, sizeof(signed_names));
	if (rc != 0)
		return rc;
	sigv4_sha256_hex(canonical, size, hex);
	n = snprintf(scope, sizeof(scope), "%.8s/%s/%s/" SIGV4_TERMINATOR, s->amz_date,
		     s->region, s->service);
	if (n < 0 || (size_t)n >= sizeof(scope))
		return -ENAMETOOLONG;
	snprintf(to_sign, sizeof(to_sign), SIGV4_ALGORITHM "\n%s\n%s\n%s", s->amz_date, scope,
		 hex);
	rc = sigv4_key_derive(s->secret, s->amz_date, s->region, s->service, key);
	if (rc != 0)
		return rc;
	sigv4_hmac_sha256(key, sizeof(key), to_sign, strlen(to_sign), signature);
	OPENSSL_cleanse(key, sizeof(key));
	sigv4_hex_encode(signature, sizeof(signature), hex);
	n = snprintf(out, out_size, SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, "
		     "Signature=%s", s->access_key, scope, signed_names, hex);
	return n < 0 || (size_t)n >= out_size ? -ENAMETOOLONG : 0;
}
