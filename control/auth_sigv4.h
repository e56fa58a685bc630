/*
 * auth_sigv4.h - AWS Signature Version 4 verification of API requests
 * (Authorization header form; OpenSSL SHA-256 and HMAC). Private to the
 * server files.
 *
 * The verifier checks, in AWS's order: the Authorization header exists and
 * names Credential, SignedHeaders and Signature, with an X-Amz-Date or Date
 * header; the access key is known; the credential scope is
 * <date of X-Amz-Date>/<our region>/<service>/aws4_request (kinesis for the
 * API, firehose for its Firehose targets, sluice-admin for the admin listener); the request time is within +-5
 * minutes of ours; host (or HTTP/2 :authority) and, for the API, x-amz-target
 * are signed; the payload hash (x-amz-content-sha256 when sent,
 * else computed) matches the body; and the signature over the canonical
 * request matches, compared in constant time. Failures carry AWS's exception
 * name and message text.
 *
 * Presigned requests (no Authorization header; X-Amz-Algorithm, -Credential,
 * -Date, -Expires, -SignedHeaders and -Signature in the query, as botocore's
 * SigV4QueryAuth writes them) are verified the same way, with the query minus
 * X-Amz-Signature as the canonical query and the body's hash as the payload
 * hash; they are good from X-Amz-Date (less the 5-minute skew) until
 * X-Amz-Date + X-Amz-Expires.
 *
 * Each key maps to a principal ([auth] principals): an IAM ARN whose account
 * is the caller's; a key not mapped is the owner account's root
 * (arn:aws:iam::ACCOUNT:root, ACCOUNT = [server] account_id).
 *
 * Threads: the keys hold a per-key signing-key cache, so one thread uses them.
 */
#ifndef SLUICE_CONTROL_AUTH_SIGV4_H
#define SLUICE_CONTROL_AUTH_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/policy.h"

#define SIGV4_KEYS_MAX 32
#define SIGV4_KEY_ID_SIZE_MAX 128
#define SIGV4_SECRET_SIZE_MAX 128
#define SIGV4_REGION_SIZE_MAX 64
/* AWS: "a request must reach AWS within five minutes of the time stamp in the request". */
#define SIGV4_CLOCK_SKEW_S 300
#define SIGV4_SIGNED_HEADERS_MAX 64
#define SIGV4_MESSAGE_SIZE 1024
/* A presigned request's decoded X-Amz-Credential or X-Amz-SignedHeaders. */
#define SIGV4_QUERY_VALUE_SIZE_MAX 512
/* AWS: a presigned URL is valid for at most seven days. */
#define SIGV4_PRESIGN_EXPIRES_S_MAX 604800u
/* The Kinesis API's service name in the credential scope. */
#define SIGV4_SERVICE_KINESIS "kinesis"
/* The Firehose API's, on the same listener and keys (sigv4_input.service chooses it). */
#define SIGV4_SERVICE_FIREHOSE "firehose"
/* The admin listener's (admin.h): a GET there cannot be replayed as a Kinesis call. */
#define SIGV4_SERVICE_ADMIN "sluice-admin"
#define SIGV4_SERVICE_SIZE_MAX 32

struct sigv4_key {
	char access_key_id[SIGV4_KEY_ID_SIZE_MAX + 1];
	char secret[SIGV4_SECRET_SIZE_MAX + 1];
	char principal_arn[POLICY_ARN_SIZE_MAX + 1];
	/* kSigning for one scope date and service: one derivation per key per day. */
	char cache_date[9];
	char cache_service[SIGV4_SERVICE_SIZE_MAX + 1];
	uint8_t cache_signing_key[32];
};

struct sigv4_keys {
	struct sigv4_key items[SIGV4_KEYS_MAX];
	uint32_t count;
	char region[SIGV4_REGION_SIZE_MAX + 1];
	char service[SIGV4_SERVICE_SIZE_MAX + 1];  /* The scope's service. */
	bool target_signed;          /* X-Amz-Target must be signed (the Kinesis API). */
};

/*
 * Parses "AKID:SECRET,AKID2:SECRET2" (spaces around items ignored) for
 * `region` and the Kinesis service (X-Amz-Target signed). Returns 0, or
 * -EINVAL for an empty id or secret, an item without ':', an over-long field
 * or region, more than SIGV4_KEYS_MAX keys.
 */
int sigv4_keys_parse(struct sigv4_keys *keys, const char *access_keys, const char *region);
/*
 * The same keys for another service's scope (SIGV4_SERVICE_ADMIN): requests
 * there carry no X-Amz-Target, so none is required. -EINVAL as above, or for
 * an over-long service.
 */
int sigv4_keys_parse_service(struct sigv4_keys *keys, const char *access_keys,
			     const char *region, const char *service);

/*
 * Sets every key's principal: "AKID=ARN,AKID2=ARN2" ([auth] principals, may
 * be empty) for the keys it names, the owner account's root for the rest.
 * Returns 0, or -EINVAL for an item without '=', a key id not among the keys,
 * an ARN policy_principal_account() refuses, an owner account that is not 12
 * digits; `message` then says which.
 */
int sigv4_principals_parse(struct sigv4_keys *keys, const char *principals,
			   const char *owner_account, char *message, size_t message_size);

struct sigv4_header {
	const char *name;      /* Any case; HTTP/2 pseudo-headers start with ':'. */
	size_t name_size;
	const char *value;
	size_t value_size;
};

struct sigv4_input {
	const char *method;
	size_t method_size;
	const char *target;    /* Request target: path, optionally "?query". */
	size_t target_size;
	const struct sigv4_header *headers;
	size_t header_count;
	const uint8_t *body;
	size_t body_size;
	uint64_t now_real_ns;  /* Wall clock, for the +-5 minute window. */
	/*
	 * The credential scope's service for this request (SIGV4_SERVICE_FIREHOSE for a
	 * Firehose_20150804 target); NULL: the keys' own (sigv4_keys.service).
	 */
	const char *service;
};

enum sigv4_status {
	SIGV4_OK,
	SIGV4_MISSING,         /* MissingAuthenticationTokenException */
	SIGV4_INCOMPLETE,      /* IncompleteSignatureException */
	SIGV4_UNRECOGNIZED,    /* UnrecognizedClientException */
	SIGV4_INVALID,         /* InvalidSignatureException */
};

struct sigv4_result {
	enum sigv4_status status;
	const char *error_type;                  /* AWS exception name; NULL when OK. */
	char message[SIGV4_MESSAGE_SIZE];        /* AWS's message text; "" when OK. */
	char access_key_id[SIGV4_KEY_ID_SIZE_MAX + 1];  /* From the credential, when parsed. */
	char principal_arn[POLICY_ARN_SIZE_MAX + 1];    /* The key's principal; "" unless OK. */
};

/* Verifies `in` against `keys`. Never fails otherwise; the verdict is in *result. */
void sigv4_verify(struct sigv4_keys *keys, const struct sigv4_input *in,
		  struct sigv4_result *result);

/*
 * auth = presence: only requires an Authorization header or a presigned
 * X-Amz-Credential query parameter (else MissingAuthenticationTokenException);
 * takes the access key id from its Credential when there is one.
 */
void sigv4_presence(const struct sigv4_input *in, struct sigv4_result *result);

#endif /* SLUICE_CONTROL_AUTH_SIGV4_H */
