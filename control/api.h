/*
 * api.h - the seam inside control/ between the API server (server.c, http1.c,
 * http2.c, auth_sigv4.c) and the Kinesis actions (kinesis_*.c). Private to
 * control/: no other folder includes it.
 *
 * The server parses HTTP/1.1 or HTTP/2, authenticates, and hands each POST
 * to kinesis_dispatch() as a struct api_request plus a struct api_call. The
 * action replies exactly once through api_call_reply()/api_call_error(),
 * either before returning or later (a PutRecord waits for the log's group
 * commit): the server keeps the call alive until then, even if the client
 * went away (the reply is then dropped).
 *
 * Threads: one server thread runs everything here, kinesis_poll() included.
 */
#ifndef SLUICE_CONTROL_API_H
#define SLUICE_CONTROL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "control/config.h"

struct log;
struct firehose;
struct api_call;   /* One request in flight; owned by the server. */
struct kinesis;
struct api_server;

/* A growable output buffer with a hard cap (the response size limit). */
struct api_out {
	char *data;
	size_t size;
	size_t capacity;
	size_t capacity_max;
	bool overflow;     /* An append did not fit under capacity_max: the response is lost. */
};

void api_out_append(struct api_out *out, const void *data, size_t size);
void api_out_printf(struct api_out *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends `size` bytes as standard base64 (with padding), no allocation per call. */
void api_out_base64(struct api_out *out, const void *data, size_t size);
/* Appends a JSON string literal (quotes and escapes included). */
void api_out_json_string(struct api_out *out, const char *text, size_t size);

struct api_request {
	const char *target;          /* X-Amz-Target value, e.g. "Kinesis_20131202.PutRecord". */
	size_t target_size;
	const char *content_type;    /* Content-Type value. */
	size_t content_type_size;
	const uint8_t *body;         /* Whole body; valid until the call is replied to. */
	size_t body_size;
	const char *request_id;      /* The x-amzn-RequestId the response will carry. */
	const char *access_key_id;   /* From a verified (or present) Authorization; may be "". */
	uint64_t now_ns;             /* Wall clock at dispatch. */
};

/* The response body buffer of `call`: write JSON here, then api_call_reply(). */
struct api_out *api_call_out(struct api_call *call);
/* Sends the body in api_call_out(call) with `http_status` (2xx) and the JSON content type. */
void api_call_reply(struct api_call *call, int http_status);
/*
 * Sends an AWS error, the only way an error is answered: {"__type": type,
 * "message": <formatted>} ("Message" for SerializationException, none when the
 * text is empty) with `http_status` (400 for client errors, 500 InternalFailure,
 * 503 ServiceUnavailable) and x-amzn-ErrorType: type.
 */
void api_call_error(struct api_call *call, int http_status, const char *type,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- Kinesis actions (kinesis_*.c) ---- */

/* Opens metadata (SQLite in data_dir) over an open log and loads every stream. */
int kinesis_open(const struct sluice_config *config, struct log *log, struct kinesis **k_out);
void kinesis_close(struct kinesis *k);

/*
 * The dataplane's route table, as the actions see it (route.c provides it while the
 * dataplane runs; docs/ARCHITECTURE.md, "Resharding").
 */
struct kinesis_routes {
	/*
	 * A reshard's cut, on the closer thread between the SQLite commit and the parents'
	 * log close: publish the routes SQLite holds now, then wait until every worker handed
	 * the log what it staged under the older table. 0 or a negative errno.
	 */
	int (*sync)(void *ctx);
	/* Streams or open shards changed in SQLite (API thread): publish soon, do not wait. */
	void (*changed)(void *ctx);
	void *ctx;
};

/*
 * Sets the routes (copied), or clears them with NULL. Set before the server thread starts:
 * the closer thread copies them when it starts, so it never reads a pointer being changed.
 * Clearing first stops the closer thread (the closes it has not begun are redone at the
 * next start, as after a stop); call it only once the server thread has stopped.
 */
void kinesis_routes_set(struct kinesis *k, const struct kinesis_routes *routes);
/* The delivery-stream engine (its figures for the metrics endpoint: any thread). */
const struct firehose *kinesis_firehose(const struct kinesis *k);
/* Readable when kinesis_poll() has work (log completions). */
int kinesis_event_fd(const struct kinesis *k);
/* Handles one request; replies now or from a later kinesis_poll(). */
void kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req);
/* Completions, stream status transitions, retention; call when the event fd fires or on a timer. */
void kinesis_poll(struct kinesis *k, uint64_t now_ns);
/* Milliseconds until kinesis_poll() wants to run again without an event (timers). */
int kinesis_poll_timeout_ms(const struct kinesis *k, uint64_t now_ns);

/* ---- Firehose actions (firehose_api.c), on the same listener ---- */

#define API_FIREHOSE_TARGET_PREFIX "Firehose_20150804."

/* True when an X-Amz-Target names the Firehose service (SigV4 service "firehose"). */
static inline bool
api_firehose_target(const char *target, size_t size)
{
	size_t n = sizeof(API_FIREHOSE_TARGET_PREFIX) - 1;

	return target != NULL && size >= n && memcmp(target, API_FIREHOSE_TARGET_PREFIX, n) == 0;
}

/* Handles one Firehose request (kinesis_dispatch() hands it over); replies now or later. */
void firehose_api_dispatch(struct kinesis *k, struct api_call *call,
			   const struct api_request *req);

/* ---- The server (server.c) ---- */

/* Binds the listeners; a bind or TLS error is returned with a diag_error line. */
int api_server_open(const struct sluice_config *config, struct kinesis *k,
		    struct api_server **server_out);
/* Serves until api_server_stop(); returns 0 or a negative errno. */
int api_server_run(struct api_server *server);
/* Safe from any thread: the loop finishes its current pass and returns. */
void api_server_stop(struct api_server *server);
void api_server_close(struct api_server *server);

#endif /* SLUICE_CONTROL_API_H */
