/*
 * sigv4.h - the pieces of AWS Signature Version 4 both sides use: the
 * signing key chain, hex, HMAC-SHA256, URI encoding, and a client signer
 * (the S3 client of firehose/, the CLI's Kinesis client). The server's
 * verifier (control/auth_sigv4.c) builds its canonical request from the
 * bytes it received and shares the primitives below.
 *
 * The signature, as AWS documents it ("Create a signed AWS API request"):
 *
 *   STEP  VALUE
 *   1     canonical request = METHOD \n URI \n QUERY \n (name:value \n)* \n
 *         signed;names \n payload-hash
 *   2     string to sign = AWS4-HMAC-SHA256 \n amz-date \n scope \n hex(sha256(1))
 *         scope = YYYYMMDD/region/service/aws4_request
 *   3     kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, YYYYMMDD), region), service),
 *                         "aws4_request")
 *   4     signature = hex(HMAC(kSigning, 2))
 */
#ifndef SLUICE_COMMON_SIGV4_H
#define SLUICE_COMMON_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"
#define SIGV4_SHA256_SIZE 32u
#define SIGV4_HEX_SIZE (2u * SIGV4_SHA256_SIZE + 1u)   /* 64 hex digits and NUL. */
/* YYYYMMDDTHHMMSSZ and NUL. */
#define SIGV4_AMZ_DATE_SIZE 17u
/* The longest secret the key chain takes ("AWS4" + secret in one buffer). */
#define SIGV4_SIGN_SECRET_SIZE_MAX 256u
/* A client request's canonical request and headers (the signer builds it in one buffer). */
#define SIGV4_CANONICAL_SIZE_MAX 8192u
#define SIGV4_SIGN_HEADERS_MAX 16u

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void sigv4_hex_encode(const uint8_t *bytes, size_t n, char *out);
void sigv4_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		       uint8_t out[SIGV4_SHA256_SIZE]);
/* Hex SHA-256 of data (the payload hash, x-amz-content-sha256). */
void sigv4_sha256_hex(const void *data, size_t size, char out[SIGV4_HEX_SIZE]);
/* kSigning for a scope (date: the 8 digits YYYYMMDD). -ENAMETOOLONG for a longer secret. */
int sigv4_key_derive(const char *secret, const char *date, const char *region,
		     const char *service, uint8_t out[SIGV4_SHA256_SIZE]);
/* RFC 3986 unreserved: A-Z a-z 0-9 - . _ ~ (kept as they are by URI encoding). */
bool sigv4_unreserved(unsigned char c);
/*
 * in[0..n) URI-encoded into out (NUL-terminated): unreserved bytes as they are, '/' too
 * when slash_kept (a path), the rest as upper-case %XX. -ENAMETOOLONG if out is short.
 */
int sigv4_uri_encode(const char *in, size_t n, bool slash_kept, char *out, size_t out_size);

/* One signed header: name in lower case; the signer wants them sorted by name. */
struct sigv4_sign_header {
	const char *name;
	const char *value;       /* Trimmed, single spaces (the signer takes it verbatim). */
};

/* A client request to sign (every string NUL-terminated). */
struct sigv4_sign {
	const char *method;
	const char *canonical_uri;    /* Already encoded as the service wants (S3: once). */
	const char *canonical_query;  /* Sorted name=value&...; "" for none. */
	const struct sigv4_sign_header *headers;
	size_t header_count;          /* 1..SIGV4_SIGN_HEADERS_MAX */
	const char *payload_hex;      /* Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". */
	const char *amz_date;         /* YYYYMMDDTHHMMSSZ */
	const char *region;
	const char *service;
	const char *access_key;
	const char *secret;
};

/*
 * The Authorization header's value, as botocore writes it:
 * "AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=a;b, Signature=hex".
 * -ENAMETOOLONG when the canonical request or out does not fit; -EINVAL for headers
 * out of order.
 */
int sigv4_sign_authorization(const struct sigv4_sign *sign, char *out, size_t out_size);
/* YYYYMMDDTHHMMSSZ of a wall-clock time. */
void sigv4_amz_date(uint64_t real_ns, char out[SIGV4_AMZ_DATE_SIZE]);

#endif /* SLUICE_COMMON_SIGV4_H */
