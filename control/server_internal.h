/*
 * server_internal.h - what the server files share: the connection table, the
 * call (one request in flight) and the server itself. Private to server.c,
 * server_call.c, server_http1.c and http2.c.
 *
 * Ownership: the server owns every connection and every call. A call is on
 * its connection's list from its first byte until its response is written
 * (HTTP/1.1: in request order) or its stream closes (HTTP/2). When the
 * connection closes first, a call the action still holds (DISPATCHED) is
 * detached (conn = NULL) and freed by its api_call_reply(); every other call
 * is freed with the connection.
 *
 * Memory: the connection table, the call table and the buffer-pool limits are
 * sized at open from connections_max; nothing grows past them.
 */
#ifndef SLUICE_CONTROL_SERVER_INTERNAL_H
#define SLUICE_CONTROL_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "control/api.h"
#include "control/auth_sigv4.h"
#include "control/http1.h"
#include "control/server_pool.h"

/* Per-connection input buffer: one maximal head plus as much again of body. */
#define SERVER_IN_SIZE (2u * HTTP1_HEAD_SIZE_MAX)
/* HTTP/1.1 requests read ahead of their responses on one connection. */
#define SERVER_PIPELINE_MAX 16u
/*
 * HTTP/2 streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS):
 * enough to keep a pipeline full, few enough that one connection cannot hold
 * much of the call table.
 */
#define SERVER_H2_STREAMS_MAX 32u
/*
 * Calls whose request is still arriving (headers or body) are held by peers nobody has
 * authenticated yet: a few HTTP/2 connections with 32 stalled streams each held the whole
 * table. So each connection has SERVER_CALLS_PER_CONN arriving calls of its own, and may
 * borrow beyond that from a shared SERVER_CALLS_BORROW_MAX (clients do open many streams
 * at once: nghttp2 sends every HEADERS before any DATA). Streams over both are refused
 * (REFUSED_STREAM, which clients retry). Holding the table unauthenticated then takes
 * every connection the cap allows.
 */
#define SERVER_H2_READING_MAX SERVER_CALLS_PER_CONN
/*
 * With every connection taken, a new one evicts the oldest connection that has not had
 * a request accepted (authenticated and dispatched) and is at least this old: trickling
 * peers (slowloris) cannot hold the cap against clients that make requests. Younger
 * ones are spared so a burst of real clients at the cap is refused, not churned.
 */
#define SERVER_EVICT_AGE_MS 1000u
/*
 * HTTP/1.1 cannot tell an idle keep-alive connection to go: a stop (api_server_drain)
 * keeps such connections open this long (within the grace) so that a client between two
 * requests sends its next one into a 503 + Connection: close rather than into the close
 * (1 request in 80 clients' last ones without it). An idle pool's connection sees the
 * close before its next request and connects elsewhere.
 */
#define SERVER_DRAIN_LINGER_MS 500u
#define SERVER_CALLS_BORROW_MAX (SERVER_CALLS_EXTRA / 2)
/* Calls in flight across the server per connection allowed (the call table size). */
#define SERVER_CALLS_PER_CONN 4u
#define SERVER_CALLS_EXTRA 256u
/* The call table's ceiling (~2 KiB each) whatever connections_max is. */
#define SERVER_CALLS_MAX 16384u
/*
 * Largest response: GetRecords returns up to 10 MiB of data = 13.4 MiB of
 * base64, plus up to 10,000 records of JSON fields (~200 B each) = ~15.4 MiB.
 */
#define SERVER_OUT_SIZE_MAX (20u * 1024u * 1024u)
/*
 * Largest JSON a CBOR request body may become: base64 makes 4 bytes of 3, and a CBOR
 * item of one byte can take up to ~6 in JSON (false,), so a body near
 * request_body_size_max may not fit; none the SDKs send comes close.
 */
#define SERVER_CBOR_JSON_SIZE_MAX SERVER_OUT_SIZE_MAX
/* Size classes of the buffer pool and how many of each may exist. */
#define SERVER_POOL_SMALL (16u * 1024u)
#define SERVER_POOL_MEDIUM (256u * 1024u)
#define SERVER_POOL_LARGE (2u * 1024u * 1024u)
#define SERVER_POOL_MEDIUM_COUNT 256u
/*
 * ... or this many per connection, if more: a request body and its response, so the
 * connection cap's worth of clients each with one ordinary PutRecords (500 x 100 B is
 * ~90 KB of JSON) in flight finds buffers, not 503 (issue 14, finding 6: 512 such
 * clients got 220 x 503 from 256 + 32 + 4 buffers). Allocated as used.
 */
#define SERVER_POOL_MEDIUM_PER_CONN 2u
#define SERVER_POOL_LARGE_COUNT 32u
#define SERVER_POOL_HUGE_COUNT 4u
/* epoll events handled per wakeup, and connections accepted per listener wakeup. */
#define SERVER_EVENTS_MAX 256
#define SERVER_ACCEPT_BURST 64
/*
 * Descriptors kept for the rest of sluiced (log segments, their indexes,
 * log.meta, SQLite, the dataplane): a connection accepted into the last of
 * RLIMIT_NOFILE is shed as at EMFILE. At most a quarter of the limit.
 */
#define SERVER_FDS_HEADROOM 64u
/* The longest the loop sleeps, so timeouts are checked at least this often. */
#define SERVER_TICK_MS 100
#define SERVER_REQUEST_ID_SIZE 37
/* x-amz-id-2: base64 of random bytes, as AWS sends (64..80 bytes decoded): 72 -> 96 chars. */
#define SERVER_ID2_BYTES 72
#define SERVER_ID2_SIZE (SERVER_ID2_BYTES / 3 * 4 + 1)
/* Longest Access-Control-Request-* value echoed in a CORS preflight answer. */
#define SERVER_CORS_ECHO_SIZE_MAX 384u
/* Extra response headers beyond the fixed ones (CORS). */
#define SERVER_EXTRA_HEADERS_MAX 4

enum conn_state {
	CONN_FREE,
	CONN_TLS_HANDSHAKE,
	CONN_DETECT,    /* Plain or ALPN-less TLS: HTTP/1.1 or an h2 prior-knowledge preface? */
	CONN_HTTP1,
	CONN_H2,
};

struct api_server;

struct server_conn {
	struct api_server *server;
	enum conn_state state;
	int fd;
	uint32_t index;
	SSL *ssl;                     /* NULL on the plain listener. */
	bool tls_want_write;          /* OpenSSL needs the socket writable to go on. */
	bool want_write;              /* Output is waiting for the socket. */
	bool closing;                 /* Close once the queued output is written. */
	bool read_paused;             /* Back-pressure: pipeline full or no call free. */
	bool dirty;                   /* On the server's dirty list (see server_conn_dirty). */
	struct server_conn *dirty_next;
	bool starved;                 /* On the server's starved list: paused for want of a call. */
	struct server_conn *starved_next;
	uint32_t epoll_events;
	uint64_t accepted_ns;         /* Monotonic. */
	bool proven;                  /* A request of it was accepted (SERVER_EVICT_AGE_MS). */
	bool goaway;                  /* HTTP/2: GOAWAY submitted (api_server_drain). */
	uint64_t activity_ns;         /* Last byte moved either way. */
	uint64_t request_start_ns;    /* First byte of an unfinished HTTP/1.1 request; 0 if none. */
	char *in;                     /* SERVER_IN_SIZE bytes. */
	size_t in_used;
	/* Calls of this connection, oldest first. */
	struct api_call *calls_head;
	struct api_call *calls_tail;
	uint32_t calls_count;
	uint32_t calls_reading;       /* Of which CALL_READING (SERVER_H2_READING_MAX). */
	struct api_call *reading;     /* HTTP/1.1: the call whose body is arriving. */
	nghttp2_session *h2;
	const uint8_t *h2_out;        /* Bytes nghttp2 produced that the socket has not taken. */
	size_t h2_out_size;
};

enum call_state {
	CALL_FREE,
	CALL_READING,      /* Head and body arriving. */
	CALL_DISPATCHED,   /* With the Kinesis action (or about to be answered by the server). */
	CALL_REPLIED,      /* Response ready or being written. */
	CALL_STREAMING,    /* A streaming answer: head sent or queued, body open (server_stream.c). */
};

struct call_span {
	uint32_t off;
	uint32_t size;
};

struct api_call {
	struct api_server *server;
	struct server_conn *conn;        /* NULL once detached from a closed connection. */
	enum call_state state;
	int32_t stream_id;               /* HTTP/2 stream; 0 on HTTP/1.1. */
	uint64_t started_ns;             /* Monotonic time of its first byte. */
	uint32_t metrics_op;             /* metrics_api_op(), for metrics_api_reply(). */
	struct api_call *prev;
	struct api_call *next;           /* Connection list, or the free list. */
	/* The request: head fields then body, in one pool buffer, located by offsets. */
	char *req;
	size_t req_capacity;
	size_t req_used;
	struct call_span method;
	struct call_span target;
	uint32_t header_count;
	struct call_span names[HTTP1_HEADERS_MAX + 8];
	struct call_span values[HTTP1_HEADERS_MAX + 8];
	size_t body_off;
	size_t body_expected;            /* HTTP/1.1 Content-Length. */
	int refuse_status;               /* HTTP/2: 413/431 noticed while receiving; 0 if none. */
	bool keep_alive;
	bool late;                       /* Begun after api_server_drain(): refused 503. */
	bool expect_continue;
	size_t continue_sent;            /* Bytes of "100 Continue" written. */
	char access_key_id[SIGV4_KEY_ID_SIZE_MAX + 1];
	char principal_arn[POLICY_ARN_SIZE_MAX + 1];
	bool cors;                       /* The request had an Origin header. */
	bool cors_preflight;             /* OPTIONS with Origin: answered by the server. */
	/*
	 * A CBOR request: its body translated to JSON for the actions, and the JSON answer
	 * translated back when it is sent (server_cbor.h).
	 */
	bool cbor;
	struct api_out cbor_json;
	/* The response. */
	int status;
	const char *content_type;        /* NULL: no Content-Type header (AWS sends none). */
	char error_type[64];
	char request_id[SERVER_REQUEST_ID_SIZE];
	char id2[SERVER_ID2_SIZE];       /* x-amz-id-2 ("" on a CORS preflight, as AWS). */
	struct api_out out;
	char head[1536];
	size_t head_size;
	size_t sent;                     /* Bytes of head + body written (HTTP/1.1) or body (h2). */
	/* A streaming answer (server_stream.c); `out` holds what the peer has not taken. */
	api_stream_fn stream_fn;
	void *stream_ctx;
	bool stream_blocked;             /* A write was refused: WRITABLE is owed once drained. */
	bool stream_ended;               /* api_call_stream_end() was called (h2: EOF pending). */
	bool stream_gone;                /* GONE is owed (detached) or was delivered. */
	bool stream_due;                 /* On the server's stream_due list. */
	struct api_call *stream_due_next;
};

struct server_stats {
	uint64_t connections_accepted;
	uint64_t connections_refused;
	uint64_t connections_evicted;    /* Unproven, to let a new one in (SERVER_EVICT_AGE_MS). */
	uint64_t connections_shed;       /* Accepted and closed at once: out of fds. */
	uint64_t connections_timed_out;
	uint64_t requests;
	uint64_t replies_dropped;        /* The client left before the reply. */
	uint64_t h2_streams_refused;     /* REFUSED_STREAM: no call free, or too many arriving. */
	uint64_t loop_passes;            /* epoll_wait returns: shows a busy loop (tests). */
	uint64_t cbor_requests;          /* application/x-amz-cbor-1.1 bodies translated. */
	uint64_t cbor_rejected;          /* ... refused as bad CBOR (SerializationException). */
	uint64_t streams_started;        /* Streaming answers begun (SubscribeToShard). */
	uint64_t streams_ended;          /* ... ended by the action with the client still there. */
	uint64_t streams_gone;           /* ... whose client left first. */
	uint64_t stream_bytes;           /* Bytes written into streams (framing excluded). */
	uint64_t stream_writes_refused;  /* -EAGAIN: the peer had not taken the last bytes. */
	uint64_t stream_writes_no_buffer; /* -ENOBUFS: no pool buffer free. */
	uint64_t requests_refused_stopping; /* Begun after api_server_drain(): 503. */
	uint64_t calls_cut_at_stop;      /* Unanswered when the shutdown grace ended. */
};

struct api_server {
	struct sluice_config config;
	struct kinesis *kinesis;
	int epoll_fd;
	int stop_fd;                     /* eventfd: api_server_stop() writes it. */
	int listen_fd;
	int tls_listen_fd;               /* -1 without TLS. */
	int kinesis_fd;                  /* -1 when the actions have no event fd. */
	int spare_fd;                    /* Held open to shed a connection at EMFILE. */
	int fd_shed_at;                  /* A connection's fd this high is shed (SERVER_FDS_HEADROOM). */
	SSL_CTX *ssl_ctx;
	atomic_bool stop;
	/* api_server_drain(): asked (any thread), then the loop's own state. */
	atomic_bool drain;
	atomic_uint drain_grace_ms;
	bool draining;
	uint64_t drain_deadline_ns;      /* Monotonic: the grace ends here. */
	uint64_t drain_linger_ns;        /* ... and idle HTTP/1.1 connections wait to here. */
	/* api_server_reload(): the configuration to take, under reload_lock. */
	atomic_bool reload;
	pthread_mutex_t reload_lock;
	struct sluice_config reload_config;
	/* The access log ([admin] access_log_sample): sampling and the error-line budget. */
	uint64_t access_seq;
	uint64_t access_errors_second;
	uint32_t access_errors_in_second;
	struct server_conn *conns;
	uint32_t conns_max;
	uint32_t conns_used;
	uint32_t *conn_free;             /* Stack of free connection indexes. */
	uint32_t conn_free_count;
	char *in_buffers;                /* conns_max x SERVER_IN_SIZE. */
	struct api_call *calls;
	uint32_t calls_max;
	uint32_t calls_used;
	uint32_t calls_borrowed;         /* Arriving calls over connections' own shares. */
	struct api_call *call_free;
	struct buf_pool pool;
	struct sigv4_keys keys;
	struct sigv4_keys reload_keys;   /* SIGHUP's parse, before it replaces `keys`. */
	struct server_conn *dirty;
	/*
	 * Connections paused because no call was free, oldest first. A call freed on any
	 * connection wakes them (server_service_dirty), not only one freed on their own:
	 * they may hold none.
	 */
	struct server_conn *starved_head;
	struct server_conn *starved_tail;
	uint64_t now_ns;                 /* Monotonic time of the current loop pass. */
	int64_t date_s;
	char date[40];                   /* The Date header of this second. */
	uint64_t rng;                    /* Request ids. */
	nghttp2_session_callbacks *h2_callbacks;
	struct api_call *stream_due;     /* Streams owed an api_stream_fn call (server_stream.c). */
	struct server_stats stats;
};

/* ---- server.c: connections ---- */
/* Takes a connected, non-blocking socket into the table (closed when the table is full). */
struct server_conn *server_conn_adopt(struct api_server *s, int fd, bool tls);
/* Handles epoll `events` for `c`. */
void server_conn_event(struct server_conn *c, uint32_t events);
/* Writes replies and resumes reads for every connection something happened to. */
void server_service_dirty(struct api_server *s);
/* Queues `c` for server_conn_service() at the end of the loop pass. */
void server_conn_dirty(struct server_conn *c);
/* Pauses `c` until a call is free anywhere (no call was free for its next request). */
void server_conn_starve(struct server_conn *c);
/* Closes now: detaches calls the actions hold, frees the others. */
void server_conn_close(struct server_conn *c);
/* Receives: bytes read, 0 at end of stream, -EAGAIN, or another -errno. */
long server_conn_recv(struct server_conn *c, void *buf, size_t size);
/* Sends a then b (b may be empty): bytes taken, or -EAGAIN, or another -errno. */
long server_conn_send(struct server_conn *c, const void *a, size_t a_size, const void *b,
		      size_t b_size);
struct iovec;
/* Sends the pieces in order (at least one, none empty): bytes taken, -EAGAIN or -errno. */
long server_conn_sendv(struct server_conn *c, const struct iovec *iov, uint32_t count);

/* ---- server_call.c: calls ---- */
struct api_call *server_call_alloc(struct api_server *s, struct server_conn *c);
/* Every change of call->state goes through here: it keeps the arriving-call counts. */
void server_call_state_set(struct api_call *call, enum call_state state);
void server_call_free(struct api_call *call);
/* The connection is going away but the action holds `call`: take it off the connection. */
void server_call_detach(struct api_call *call);
/* Appends bytes to the request buffer (growing it from the pool). 0 or -ENOBUFS. */
/* Makes room for `size` more request bytes in one pool buffer. 0 or -ENOBUFS. */
int server_call_req_reserve(struct api_call *call, size_t size);
int server_call_req_append(struct api_call *call, const void *data, size_t size,
			   struct call_span *span_out);
/* The request is complete: check method/target/type, authenticate, dispatch. */
void server_call_ready(struct api_call *call);
/* Replies with an error the server itself decides (no JSON body when `type` is NULL). */
void server_call_refuse(struct api_call *call, int status, const char *type, const char *message);
/* A response header beyond the fixed set; names are lower-case (HTTP/2 needs it). */
struct server_header {
	const char *name;
	const char *value;
	size_t value_size;
};

/* The CORS headers `call`'s response carries (AWS's, as kinesalite copies them). */
uint32_t server_call_extra_headers(const struct api_call *call,
				   struct server_header out[SERVER_EXTRA_HEADERS_MAX]);
/* Case-insensitive lookup of a request header; NULL when absent. */
bool server_call_header(const struct api_call *call, const char *lower, const char **value,
			size_t *size);
void server_date_update(struct api_server *s, uint64_t real_ns);

/* ---- server_access.c ---- */
/* The access log's line for `call`, whose status and body are decided, when it is due. */
void server_access_log(struct api_call *call);
/* ---- server_stream.c: streaming answers ---- */
/* Body bytes of a stream the peer has not taken yet. */
size_t server_stream_pending(const struct api_call *call);
/* After `sent` advanced: gives an emptied buffer back, owes WRITABLE to a blocked writer. */
void server_stream_sent(struct api_call *call);
/* The connection of a stream the action still holds went away: detach, owe GONE. */
void server_stream_detach(struct api_call *call);
/* Takes `call` off the stream_due list (it is being freed). */
void server_stream_forget(struct api_call *call);
/* Delivers owed stream events. True when any was delivered (services are due again). */
bool server_stream_notify(struct api_server *s);

/* ---- server_http1.c ---- */
void http1_conn_readable(struct server_conn *c);
void http1_conn_service(struct server_conn *c);
void http1_call_replied(struct api_call *call);
void http1_stream_begin(struct api_call *call);
/* Appends one chunk (HTTP/1.1 framing) of `size` bytes. False when out of buffer. */
bool http1_stream_frame(struct api_call *call, const void *data, size_t size);
void http1_stream_end(struct api_call *call);

/* ---- http2.c ---- */
int h2_callbacks_new(nghttp2_session_callbacks **out);
int h2_conn_open(struct server_conn *c);
void h2_conn_readable(struct server_conn *c);
void h2_conn_input(struct server_conn *c, const uint8_t *data, size_t size);
void h2_conn_service(struct server_conn *c);
void h2_call_replied(struct api_call *call);
/* 0, or -EPIPE when the stream is gone. */
int h2_stream_begin(struct api_call *call);
/* New bytes are in the stream's buffer, or it ended: nghttp2 may pull again. */
void h2_stream_resume(struct api_call *call);
/* Resets streams still receiving their request after `limit_ns` (slow clients). */
void h2_conn_sweep(struct server_conn *c, uint64_t limit_ns);
/* Submits GOAWAY naming the last stream taken (once); later streams are ignored. */
void h2_conn_goaway(struct server_conn *c);

#endif /* SLUICE_CONTROL_SERVER_INTERNAL_H */
