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
struct forward;    /* control/forward.h: cluster mode's forwarder. */

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
	/* The verified key's principal ([auth] principals); "" unless [auth] mode = sigv4. */
	const char *principal_arn;
	uint64_t now_ns;             /* Wall clock at dispatch. */
	/* It carries X-Sluice-Forwarded (forward.h): never forwarded again. */
	bool forwarded;
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

/*
 * Streaming answers (SubscribeToShard): a 200 whose body stays open and receives bytes
 * pushed later, as HTTP/1.1 chunks or HTTP/2 DATA frames. Each stream buffers at most
 * API_STREAM_PENDING_MAX bytes not yet taken by the peer (one write bigger than that is
 * taken only into an empty buffer): when the peer does not read (TCP full, h2 window
 * closed), writes are refused with -EAGAIN and the action stops producing until the
 * server calls it back with API_STREAM_WRITABLE. Memory is therefore bounded per
 * stream, whatever the peer does.
 */
#define API_STREAM_PENDING_MAX (256u * 1024u)

enum api_stream_event {
	API_STREAM_WRITABLE,  /* A refused write's bytes can go now: the buffer is empty. */
	API_STREAM_GONE,      /* The client left or reset the stream: call api_call_stream_end(). */
};

/* Called on the server thread, never from inside api_call_stream_*(). */
typedef void (*api_stream_fn)(void *ctx, enum api_stream_event event);

/*
 * Starts the streaming answer of `call` (status 200, `content_type`, no length). `fn`
 * receives the stream's events until api_call_stream_end(). 0, or -EPIPE when the
 * client already left (the call is then finished: do not end it).
 */
int api_call_stream_begin(struct api_call *call, const char *content_type, api_stream_fn fn,
			  void *ctx);
/*
 * Queues `size` bytes (an action's own stream writes whole messages; a relayed one,
 * kinesis_forward.c, pieces of its holder's stream as they come: framing is theirs). 0;
 * -EAGAIN when they do not fit now (API_STREAM_WRITABLE follows); -ENOBUFS when no pool
 * buffer is free (retry later: no event follows); -EPIPE when the client left
 * (API_STREAM_GONE follows, if it has not come yet).
 */
int api_call_stream_write(struct api_call *call, const void *data, size_t size);
/*
 * True when the request came in CBOR (application/x-amz-cbor-1.1). The server
 * translates whole answers; a streaming answer's messages are the action's own, so
 * it writes their payloads in CBOR itself (SubscribeToShard's events).
 */
bool api_call_is_cbor(const struct api_call *call);
/* Bytes queued and not yet taken by the peer (what a refused write waits on). */
size_t api_call_stream_pending(const struct api_call *call);
/* Ends the body once what is queued has gone (or at once if the client left). */
void api_call_stream_end(struct api_call *call);

/* ---- Kinesis actions (kinesis_*.c) ---- */

/* Opens metadata (SQLite in data_dir) over an open log and loads every stream. */
int kinesis_open(const struct sluice_config *config, struct log *log, struct kinesis **k_out);
/*
 * Cluster mode (docs/CLUSTER.md "Stream metadata"): as kinesis_open, and right after
 * opening metadata it starts the etcd cache on it (metadata_cluster_start: reads etcd
 * and applies it before anything is loaded); the actions write through etcd, other
 * nodes' streams and settings are followed at each kinesis_poll(), and the actions not
 * built for a cluster yet are refused. kinesis_close() stops the cache before metadata.
 * etcd_endpoints NULL: single-node mode (kinesis_open).
 */
int kinesis_open_cluster(const struct sluice_config *config, struct log *log,
			 const char *etcd_endpoints, const char *cluster, struct kinesis **k_out);
void kinesis_close(struct kinesis *k);
/*
 * The actions' metadata handle (metadata.h): the route publisher opens its reader and
 * change watch on it. Valid until kinesis_close(); the readers must be closed before.
 */
struct metadata *kinesis_metadata(struct kinesis *k);

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
	void *ctx;
};

/*
 * Sets the routes (copied), or clears them with NULL. Set before the server thread starts:
 * the closer thread copies them when it starts, so it never reads a pointer being changed.
 * Clearing first stops the closer thread (the closes it has not begun are redone at the
 * next start, as after a stop); call it only once the server thread has stopped.
 */
void kinesis_routes_set(struct kinesis *k, const struct kinesis_routes *routes);

/*
 * Cluster mode (docs/CLUSTER.md, "The ack path"): a put is answered once the
 * replicas [cluster] acks asks for hold its records, not on the local flush.
 */
struct kinesis_replication {
	/*
	 * Every record of the log shard below *seq_out is held by enough replicas.
	 * -ENOENT: the shard is not led here; -ESTALE: a newer leader exists. Any
	 * thread; the API thread calls it.
	 */
	int (*acked)(void *ctx, uint64_t log_id, uint64_t *seq_out);
	/*
	 * The leader epoch the log shard is led in here (errors as acked): appends
	 * carry it, and the log refuses them (-ESTALE, answered as throttled) once
	 * this node promised a newer leader. NULL: appends carry no epoch.
	 */
	int (*lead_epoch)(void *ctx, uint64_t log_id, uint64_t *epoch_out);
	/* Records of the log shard below seq_end are durable here: ship them now (a doorbell). */
	void (*durable)(void *ctx, uint64_t log_id, uint64_t seq_end);
	void *ctx;
	int doorbell_fd;   /* Readable when an acked end may have moved (read to reset). */
	/*
	 * Forwarding (docs/CLUSTER.md "Forwarding puts to the shard's leader"): the
	 * API address of the log shard's leader elsewhere (-ENOENT: none known), and
	 * the forwarder (control/forward.h) that sends records there. NULL: records
	 * for shards led elsewhere fail throttled.
	 */
	int (*leader_api)(void *ctx, uint64_t log_id, char *addr, size_t size);
	/*
	 * Reads (docs/CLUSTER.md "Forwarding reads"): the API address of the `nth` node
	 * holding the log shard (0: the leader, if known) when this node holds no replica
	 * of it; -ENOENT: serve it here; -EHOSTUNREACH: no `nth` holder known. A read
	 * refused by a holder goes to the next. NULL: every read is served here.
	 */
	int (*read_api)(void *ctx, uint64_t log_id, uint32_t nth, char *addr, size_t size);
	struct forward *forward;
};

/*
 * Sets the replication (copied) before the server thread starts, or clears it
 * with NULL once it stopped (calls still waiting are dropped at kinesis_close).
 */
int kinesis_replication_set(struct kinesis *k, const struct kinesis_replication *repl);
/* Shard-level metrics (EnableEnhancedMonitoring): bits of kinesis_enhanced_metrics(). */
enum kinesis_metric {
	KINESIS_METRIC_INCOMING_BYTES = 1u << 0,
	KINESIS_METRIC_INCOMING_RECORDS = 1u << 1,
	KINESIS_METRIC_OUTGOING_BYTES = 1u << 2,
	KINESIS_METRIC_OUTGOING_RECORDS = 1u << 3,
	KINESIS_METRIC_WRITE_THROTTLED = 1u << 4,   /* WriteProvisionedThroughputExceeded */
	KINESIS_METRIC_READ_THROTTLED = 1u << 5,    /* ReadProvisionedThroughputExceeded */
	KINESIS_METRIC_ITERATOR_AGE = 1u << 6,      /* IteratorAgeMilliseconds */
};
#define KINESIS_METRICS_ALL 0x7fu

/*
 * The shard-level metrics switched on for stream `stream_id` (enum kinesis_metric
 * bits; 0 for none or no such stream), for the metrics code. Server thread.
 */
uint32_t kinesis_enhanced_metrics(const struct kinesis *k, uint32_t stream_id);
/* The keyring StartStreamEncryption resolves KeyIds in. Set before the server thread starts. */
struct keyring_shared;
void kinesis_keyring_set(struct kinesis *k, struct keyring_shared *keyring);
/* The delivery-stream engine (its figures for the metrics endpoint: any thread). */
const struct firehose *kinesis_firehose(const struct kinesis *k);
/* Readable when kinesis_poll() has work (log completions, durability, delivery-stream puts). */
int kinesis_event_fd(const struct kinesis *k);
/* Handles one request; replies now or from a later kinesis_poll(). */
void kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req);
/* Completions, stream status transitions, retention; call when the event fd fires or on a timer. */
void kinesis_poll(struct kinesis *k, uint64_t now_ns);
/* Milliseconds until kinesis_poll() wants to run again without an event (timers). */
int kinesis_poll_timeout_ms(const struct kinesis *k, uint64_t now_ns);
/*
 * SIGHUP, on the API thread: takes the live keys of `config` (autoscaling, throttling,
 * UpdateShardCount limits, status delay, retention interval) for the next decision.
 */
void kinesis_reload(struct kinesis *k, const struct sluice_config *config);

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
/*
 * A graceful stop, from any thread (docs/OPERATIONS.md "Stopping"): the listeners close
 * (the connections already in their backlog are taken first); a request begun after this
 * is refused before any work (HTTP/1.1: 503 ServiceUnavailable + Connection: close;
 * h2: every connection gets GOAWAY with the last stream it took, and later streams are
 * ignored, which clients retry elsewhere); the calls begun before run to their answer
 * (puts wait for durability, replicas or their forward as usual), written with
 * Connection: close. api_server_run() returns once none is left (subscriptions, which
 * never end by themselves, are not waited for; idle HTTP/1.1 connections are kept
 * SERVER_DRAIN_LINGER_MS for a last request to refuse), or after `grace_ms`, logging how
 * many calls it closed unanswered; api_server_stop() ends it at once.
 */
void api_server_drain(struct api_server *server, uint32_t grace_ms);
/*
 * SIGHUP, from any thread: the loop takes the live keys of `config` (copied here)
 * at its next pass: auth mode and keys, idle timeout, access log sampling, a new
 * TLS certificate and key (new connections get them; open ones keep theirs; a
 * pair that does not load is reported and the old one stays), and passes them
 * to kinesis_reload().
 */
void api_server_reload(struct api_server *server, const struct sluice_config *config);
void api_server_close(struct api_server *server);

#endif /* SLUICE_CONTROL_API_H */
