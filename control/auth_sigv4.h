/*
 * auth_sigv4.h - AWS Signature Version 4 verification of API requests
 * (Authorization header form; OpenSSL SHA-256 and HMAC). Private to the
 * server files.
 *
 * The verifier checks, in AWS's order: the Authorization header exists and
 * names Credential, SignedHeaders and Signature, with an X-Amz-Date or Date
 * header; the access key is known; the credential scope is
 * <date of X-Amz-Date>/<our region>/kinesis/aws4_request; the request time
 * is within +-5 minutes of ours; host (or HTTP/2 :authority) and
 * x-amz-target are signed; the payload hash (x-amz-content-sha256 when sent,
 * else computed) matches the body; and the signature over the canonical
 * request matches, compared in constant time. Failures carry AWS's exception
 * name and message text.
 *
 * Threads: the keys hold a per-key signing-key cache, so one thread uses them.
 */
#ifndef SLUICE_CONTROL_AUTH_SIGV4_H
#define SLUICE_CONTROL_AUTH_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define SIGV4_KEYS_MAX 32
#define SIGV4_KEY_ID_SIZE_MAX 128
#define SIGV4_SECRET_SIZE_MAX 128
#define SIGV4_REGION_SIZE_MAX 64
/* AWS: "a request must reach AWS within five minutes of the time stamp in the request". */
#define SIGV4_CLOCK_SKEW_S 300
#define SIGV4_SIGNED_HEADERS_MAX 64
#define SIGV4_MESSAGE_SIZE 1024
/* Services a request may be scoped to (the X-Amz-Target prefix decides which). */
extern const char SIGV4_SERVICE_KINESIS[];
extern const char SIGV4_SERVICE_FIREHOSE[];

struct sigv4_key {
	char access_key_id[SIGV4_KEY_ID_SIZE_MAX + 1];
	char secret[SIGV4_SECRET_SIZE_MAX + 1];
	/* kSigning for one scope date and service: one derivation per key per day. */
	char cache_date[9];
	const char *cache_service;  /* A SIGV4_SERVICE_* constant (compared by address). */
	uint8_t cache_signing_key[32];
};

struct sigv4_keys {
	struct sigv4_key items[SIGV4_KEYS_MAX];
	uint32_t count;
	char region[SIGV4_REGION_SIZE_MAX + 1];
};

/*
 * Parses "AKID:SECRET,AKID2:SECRET2" (spaces around items ignored) for
 * `region`. Returns 0, or -EINVAL for an empty id or secret, an item without
 * ':', an over-long field or region, more than SIGV4_KEYS_MAX keys.
 */
int sigv4_keys_parse(struct sigv4_keys *keys, const char *access_keys, const char *region);

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
	/* The credential scope's service: SIGV4_SERVICE_KINESIS (NULL) or _FIREHOSE. */
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
};

/* Verifies `in` against `keys`. Never fails otherwise; the verdict is in *result. */
void sigv4_verify(struct sigv4_keys *keys, const struct sigv4_input *in,
		  struct sigv4_result *result);

/*
 * auth = presence: only requires an Authorization header (else
 * MissingAuthenticationTokenException); takes the access key id from its
 * Credential when there is one.
 */
void sigv4_presence(const struct sigv4_input *in, struct sigv4_result *result);

#endif /* SLUICE_CONTROL_AUTH_SIGV4_H */
