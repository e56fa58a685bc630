/*
 * kinesis_client.h - a small Kinesis API client for the sluice CLI, private
 * to tools/: HTTP/1.1 over one keep-alive TCP connection (TLS for https://
 * endpoints), JSON 1.1 bodies through cJSON, SigV4 signing (OpenSSL) when
 * keys are given.
 *
 * The pieces are separate so the load generator can drive many connections
 * from its own event loop: kc_request_build() makes the bytes of a request,
 * kc_http_response_parse() recognises a whole response in a byte span, and
 * kc_call() is the blocking round trip the other commands use.
 *
 * Errors: functions returning int return 0 or a negative errno. kc_call()
 * returns -EREMOTEIO when the server answered with a Kinesis error, whose
 * type and message are then in client->error.
 */
#ifndef SLUICE_TOOLS_KINESIS_CLIENT_H
#define SLUICE_TOOLS_KINESIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <cjson/cJSON.h>

struct ssl_ctx_st;   /* OpenSSL's SSL_CTX and SSL, kept out of this header. */
struct ssl_st;

#define KC_HOST_SIZE_MAX 256
#define KC_HTTP_HEADER_SIZE_MAX (16u * 1024u)       /* Status line and headers. */
#define KC_HTTP_BODY_SIZE_MAX (64u * 1024u * 1024u) /* GetRecords: 10 MiB, base64'd. */
#define KC_DEFAULT_ENDPOINT "http://127.0.0.1:4567"
#define KC_DEFAULT_REGION "us-east-1"
#define KC_AMZ_DATE_SIZE 17                         /* "20261126T081500Z" and NUL. */

struct kc_config {
	const char *endpoint;      /* "http://host[:port][/]"; NULL: KC_DEFAULT_ENDPOINT. */
	const char *region;        /* NULL: KC_DEFAULT_REGION. */
	const char *access_key;    /* NULL or empty: requests are not signed. */
	const char *secret_key;
	const char *session_token; /* Optional, sent as X-Amz-Security-Token. */
	uint32_t timeout_ms;       /* Per send or receive; 0: 30 s. */
	const char *ca_file;       /* https: PEM CA bundle; NULL: the system's. */
	bool insecure;             /* https: do not verify the server's certificate. */
};

struct kc_error {
	int http_status;           /* 0 when no response arrived. */
	char type[128];            /* "ResourceNotFoundException"; any "...#" prefix removed. */
	char message[512];
};

struct kc_client {
	char host[KC_HOST_SIZE_MAX];       /* For connect(); IPv6 without brackets. */
	char port[8];
	char host_header[KC_HOST_SIZE_MAX + 8];
	char region[64];
	const char *access_key;
	const char *secret_key;
	const char *session_token;
	uint32_t timeout_ms;
	bool tls_enabled;                  /* https:// endpoint. */
	bool insecure;
	struct ssl_ctx_st *tls_ctx;        /* https: shared by every connection. */
	struct ssl_st *tls;                /* The blocking connection's TLS session. */
	int fd;                            /* -1 when not connected. */
	char *rx;                          /* Response bytes, grown as needed. */
	size_t rx_capacity;
	struct kc_error error;
};

struct kc_http_response {
	int status;
	size_t header_size;                /* Status line through the empty line. */
	size_t body_size;
	bool connection_close;
	char error_type[128];              /* x-amzn-ErrorType, if present. */
};

/* Parses the endpoint; connects lazily. -EINVAL for a malformed endpoint,
 * -EPROTONOSUPPORT for a scheme other than http and https, -ENOENT for a
 * CA file that cannot be loaded. */
int kc_client_init(struct kc_client *client, const struct kc_config *config);
void kc_client_close(struct kc_client *client);

/*
 * Sends Kinesis_20131202.<action> (or a whole Firehose target, "Firehose_20150804.<Op>",
 * signed for the service firehose) with `request` (NULL: "{}") and waits for
 * the answer. On 0, *response_out holds the parsed body (an empty object for
 * an empty body), which the caller frees with cJSON_Delete(). Reconnects once
 * when a kept-alive connection turns out to be closed.
 */
int kc_call(struct kc_client *client, const char *action, const cJSON *request,
	    cJSON **response_out);

/* Connects a new socket to the client's endpoint; returns the fd or a negative errno. */
int kc_connect(const struct kc_client *client, bool nonblocking);

/*
 * https: runs the TLS handshake on the connected, blocking `fd` (ALPN
 * http/1.1, SNI, certificate and host name checked unless insecure). 0 and
 * the session in *tls_out, or -EPROTO with the reason in `why`.
 */
int kc_tls_start(const struct kc_client *client, int fd, struct ssl_st **tls_out, char *why,
		 size_t why_size);
void kc_tls_close(struct ssl_st *tls);

/*
 * One send or receive on `fd`, through `tls` when it is not NULL. Returns the
 * bytes moved (receive: 0 when the peer closed), -EAGAIN when the socket
 * would block (or timed out), or another negative errno. Never raises SIGPIPE.
 */
ssize_t kc_io_send(int fd, struct ssl_st *tls, const void *buf, size_t size);
ssize_t kc_io_recv(int fd, struct ssl_st *tls, void *buf, size_t size);

/*
 * Builds the whole HTTP request (headers and body) in a malloc()ed buffer,
 * signed when the client has keys, dated `now_real_ns` (Unix epoch, ns).
 */
int kc_request_build(const struct kc_client *client, const char *action, const char *body,
		     size_t body_size, uint64_t now_real_ns, char **request_out,
		     size_t *request_size_out);

/*
 * Recognises one HTTP/1.x response at the start of buf[0 .. size). Returns
 * 0 when the whole response (headers and Content-Length bytes of body) is
 * there; -EAGAIN when more bytes are needed; -EBADMSG when malformed (bad
 * status line, header without a colon, missing, duplicate or non-decimal
 * Content-Length); -EMSGSIZE when headers or body exceed the limits above;
 * -ENOTSUP for a chunked body. Reads nothing outside the span.
 */
int kc_http_response_parse(const char *buf, size_t size, struct kc_http_response *response);

/* Fills `error` from an error response body (JSON "__type"/"message"). */
void kc_error_from_response(struct kc_error *error, const struct kc_http_response *response,
			    const char *body, size_t body_size);

/* SigV4: the inputs of one signature, and its Authorization header value. */
struct kc_sigv4_request {
	const char *access_key;
	const char *secret_key;
	const char *session_token;   /* NULL: not signed. */
	const char *region;
	const char *service;         /* "kinesis" */
	const char *amz_date;        /* "yyyymmddTHHMMSSZ" */
	const char *host;            /* The Host header as sent. */
	const char *content_type;
	const char *target;          /* The X-Amz-Target header. */
	const void *body;
	size_t body_size;
};

int kc_sigv4_authorization(const struct kc_sigv4_request *request, char *out, size_t out_size);
void kc_amz_date(uint64_t real_ns, char out[KC_AMZ_DATE_SIZE]);

/* Standard base64 with padding. encode: *out_size excludes the NUL it writes. */
int kc_base64_encode(const void *data, size_t size, char **out, size_t *out_size);
/* decode: strict (AWS's rules); -EINVAL for a malformed string. */
int kc_base64_decode(const char *text, size_t text_size, uint8_t **out, size_t *out_size);

#endif /* SLUICE_TOOLS_KINESIS_CLIENT_H */
