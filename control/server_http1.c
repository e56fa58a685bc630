/*
 * server_http1.c - HTTP/1.1 connections: request heads through http1.c,
 * Content-Length bodies (received straight into the call's buffer once the
 * head is read), Expect: 100-continue, pipelining with responses written in
 * request order however late the actions reply, keep-alive.
 *
 * Limits and their answers (the connection closes after each, since the
 * rest of the byte stream cannot be framed):
 *
 *   LIMIT                                  ANSWER
 *   malformed head or framing headers      400
 *   head > HTTP1_HEAD_SIZE_MAX             431
 *   > HTTP1_HEADERS_MAX header fields      431
 *   Transfer-Encoding (chunked) body       411
 *   Content-Length > request_body_size_max 413
 *   no pool buffer for the body            503 (SDKs retry it)
 *
 * Back-pressure: with SERVER_PIPELINE_MAX requests unanswered the connection
 * stops reading until one is answered; with no call free in the server, until
 * any call is freed (the starved list, server.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#include "control/server_internal.h"

static const char http1_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Pieces (heads and bodies) of pipelined responses sent in one system call. */
#define HTTP1_SEND_IOV_MAX 32u

static const char *
http1_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/*
 * Writes the response head into call->head: `framing` is the Content-Length or
 * Transfer-Encoding line.
 */
static void
http1_head(struct api_call *call, const char *framing)
{
	struct api_server *s = call->server;
	struct server_header extra[SERVER_EXTRA_HEADERS_MAX];
	uint32_t extra_count = server_call_extra_headers(call, extra);
	char lines[SERVER_EXTRA_HEADERS_MAX * (SERVER_CORS_ECHO_SIZE_MAX + 40) + 96] = "";
	size_t used = 0;
	int n;

	/*
	 * Stopping (api_server_drain): the last request on the connection is answered with
	 * Connection: close, so the client's next request goes to another connection.
	 */
	if (s->draining && call == call->conn->calls_tail) {
		call->keep_alive = false;
		call->conn->closing = true;
	}

	if (call->error_type[0] != '\0')
		used += (size_t)snprintf(lines, sizeof(lines), "x-amzn-ErrorType: %s\r\n",
					 call->error_type);
	for (uint32_t i = 0; i < extra_count; i++)
		used += (size_t)snprintf(lines + used, sizeof(lines) - used, "%s: %.*s\r\n",
					 extra[i].name, (int)extra[i].value_size, extra[i].value);
	assert(used < sizeof(lines));
	n = snprintf(call->head, sizeof(call->head),
		     "HTTP/1.1 %d %s\r\n"
		     "x-amzn-RequestId: %s\r\n"
		     "%s"
		     "%s%s%s"
		     "%s\r\n"
		     "Date: %s\r\n"
		     "%s"
		     "\r\n",
		     call->status, http1_reason(call->status), call->request_id, lines,
		     call->content_type != NULL ? "Content-Type: " : "",
		     call->content_type != NULL ? call->content_type : "",
		     call->content_type != NULL ? "\r\n" : "", framing, s->date,
		     call->keep_alive ? "" : "Connection: close\r\n");
	assert(n > 0 && (size_t)n < sizeof(call->head));
	call->head_size = (size_t)n;
	call->sent = 0;
	server_conn_dirty(call->conn);
}

void
http1_call_replied(struct api_call *call)
{
	char framing[40];

	snprintf(framing, sizeof(framing), "Content-Length: %zu", call->out.size);
	http1_head(call, framing);
}

/* A streaming answer's body is chunked: one chunk per message (server_stream.c). */
void
http1_stream_begin(struct api_call *call)
{
	http1_head(call, "Transfer-Encoding: chunked");
}

bool
http1_stream_frame(struct api_call *call, const void *data, size_t size)
{
	size_t before = call->out.size;
	char line[24];
	int n = snprintf(line, sizeof(line), "%zx\r\n", size);

	assert(n > 0 && (size_t)n < sizeof(line));
	api_out_append(&call->out, line, (size_t)n);
	api_out_append(&call->out, data, size);
	api_out_append(&call->out, "\r\n", 2);
	if (!call->out.overflow)
		return true;
	call->out.size = before;  /* Whole chunks only. */
	return false;
}

/* The last chunk; then the call is an answer like any other, freed once sent. */
void
http1_stream_end(struct api_call *call)
{
	static const char last[] = "0\r\n\r\n";

	/* Past the pending bound by 5 bytes at most: the stream takes no more writes. */
	api_out_append(&call->out, last, sizeof(last) - 1);
	if (call->out.overflow) {
		/* No buffer for 5 bytes: the body cannot end properly, so the connection ends. */
		call->out.overflow = false;
		call->keep_alive = false;
	}
	server_call_state_set(call, CALL_REPLIED);
}

/* Answers a request the connection cannot go on after, and stops reading. */
static void
http1_refuse(struct server_conn *c, struct api_call *call, int status, const char *message)
{
	call->keep_alive = false;
	c->closing = true;
	c->reading = NULL;
	c->in_used = 0;
	server_call_refuse(call, status, "SerializationException", message);
}

/* Copies the head's fields into the call (offsets into its buffer). 0 or -ENOBUFS. */
static int
http1_copy_head(struct api_call *call, const struct http1_request *r, size_t head_size,
		uint64_t body_size)
{
	if (server_call_req_reserve(call, head_size + body_size) != 0 ||
	    server_call_req_append(call, r->method, r->method_size, &call->method) != 0 ||
	    server_call_req_append(call, r->target, r->target_size, &call->target) != 0)
		return -ENOBUFS;
	for (size_t i = 0; i < r->header_count; i++) {
		const struct http1_header *h = &r->headers[i];
		uint32_t k = call->header_count;

		if (server_call_req_append(call, h->name, h->name_size, &call->names[k]) != 0 ||
		    server_call_req_append(call, h->value, h->value_size, &call->values[k]) != 0)
			return -ENOBUFS;
		call->header_count++;
	}
	call->body_off = call->req_used;
	return 0;
}

static void
http1_consume(struct server_conn *c, size_t size)
{
	assert(size <= c->in_used);
	memmove(c->in, c->in + size, c->in_used - size);
	c->in_used -= size;
}

/* The body is whole: the request goes on to checks and dispatch. */
static void
http1_body_done(struct server_conn *c, struct api_call *call)
{
	c->reading = NULL;
	c->request_start_ns = c->in_used > 0 ? c->server->now_ns : 0;
	server_call_ready(call);
}

/* Starts a request from a parsed head of `head_size` bytes at the front of c->in. */
static void
http1_begin(struct server_conn *c, struct api_call *call, const struct http1_request *r,
	    size_t head_size)
{
	uint64_t body_max = c->server->config.request_body_size_max;
	struct http1_framing f;

	if (http1_framing_read(r, &f) != 0) {
		http1_refuse(c, call, 400, "Malformed Content-Length, Transfer-Encoding or Expect");
		return;
	}
	if (f.chunked) {
		http1_refuse(c, call, 411, "Chunked request bodies are not supported: send "
			     "Content-Length");
		return;
	}
	if (f.content_length > body_max) {
		http1_refuse(c, call, 413, "Request body exceeds request_body_size_max");
		return;
	}
	if (http1_copy_head(call, r, head_size, f.content_length) != 0) {
		call->keep_alive = false;
		c->closing = true;
		c->in_used = 0;
		server_call_refuse(call, 503, "ServiceUnavailable", "Server busy: retry");
		return;
	}
	call->keep_alive = f.keep_alive;
	call->expect_continue = f.expect_continue;
	call->body_expected = f.content_length;
	if (!f.keep_alive)
		c->closing = true;  /* Nothing after this request is read. */
	http1_consume(c, head_size);
	if (f.content_length == 0) {
		http1_body_done(c, call);
		return;
	}
	c->reading = call;
}

/* Moves buffered body bytes into the reading call. True when the body is complete. */
static bool
http1_body_take(struct server_conn *c)
{
	struct api_call *call = c->reading;
	size_t remaining = call->body_off + call->body_expected - call->req_used;
	size_t n = c->in_used < remaining ? c->in_used : remaining;

	memcpy(call->req + call->req_used, c->in, n);
	call->req_used += n;
	http1_consume(c, n);
	if (n < remaining)
		return false;
	http1_body_done(c, call);
	return true;
}

static void
http1_head_error(struct server_conn *c, struct api_call *call, int rc)
{
	if (rc == HTTP1_INVALID)
		http1_refuse(c, call, 400, "Malformed HTTP/1.1 request");
	else if (rc == HTTP1_HEAD_TOO_LARGE)
		http1_refuse(c, call, 431, "Request head exceeds the server's size limit");
	else
		http1_refuse(c, call, 431, "Request has more header fields than the limit");
}

/* Parses and starts as many buffered requests as the limits allow. */
static void
http1_conn_process(struct server_conn *c)
{
	struct http1_header headers[HTTP1_HEADERS_MAX];
	struct http1_request r;
	struct api_call *call;
	int rc;

	while (c->state == CONN_HTTP1) {
		if (c->reading != NULL) {
			if (!http1_body_take(c))
				return;
			continue;
		}
		if (c->closing || c->in_used == 0)
			return;
		if (c->request_start_ns == 0)
			c->request_start_ns = c->server->now_ns;
		rc = http1_parse_request(c->in, c->in_used, &r, headers, HTTP1_HEADERS_MAX,
					 HTTP1_HEAD_SIZE_MAX);
		if (rc == HTTP1_PARTIAL)
			return;
		if (c->calls_count >= SERVER_PIPELINE_MAX) {
			c->read_paused = true;  /* One of its own calls ends the pause. */
			return;
		}
		if (c->server->call_free == NULL) {
			server_conn_starve(c);  /* Any call freed ends it. */
			return;
		}
		call = server_call_alloc(c->server, c);
		assert(call != NULL);
		if (rc < 0)
			http1_head_error(c, call, rc);
		else
			http1_begin(c, call, &r, (size_t)rc);
	}
}

void
http1_conn_readable(struct server_conn *c)
{
	http1_conn_process(c);  /* Bytes may be buffered already (protocol detection). */
	for (int round = 0; round < 16 && c->state == CONN_HTTP1; round++) {
		struct api_call *call = c->reading;
		size_t asked;
		long n;

		if (c->closing && call == NULL)
			c->read_paused = true;  /* Nothing more is read: no EPOLLIN spinning. */
		if (c->read_paused)
			break;
		if (call != NULL && c->in_used == 0) {
			/* Large bodies go straight from the socket into the call's buffer. */
			asked = call->body_off + call->body_expected - call->req_used;
			n = server_conn_recv(c, call->req + call->req_used, asked);
			if (n > 0) {
				call->req_used += (size_t)n;
				if (call->req_used == call->body_off + call->body_expected)
					http1_body_done(c, call);
			}
		} else {
			/* Full only while paused (a head is at most half the buffer). */
			if (c->in_used == SERVER_IN_SIZE)
				break;
			asked = SERVER_IN_SIZE - c->in_used;
			n = server_conn_recv(c, c->in + c->in_used, asked);
			if (n > 0) {
				c->in_used += (size_t)n;
				http1_conn_process(c);
			}
		}
		if (n == -EAGAIN)
			break;
		if (n == 0 && c->calls_head != NULL && c->calls_head->state == CALL_STREAMING) {
			/* A stream has no end to wait for: a subscriber that closed has left. */
			server_conn_close(c);
			return;
		}
		if (n == 0 && c->calls_head != NULL && c->reading == NULL) {
			/* Half-closed after its requests: answer them, then close. */
			c->closing = true;
			c->read_paused = true;
			break;
		}
		if (n <= 0) {
			server_conn_close(c);
			return;
		}
		c->activity_ns = c->server->now_ns;
		/* A short read drained the socket: skip the recv that would say EAGAIN. */
		if (c->ssl == NULL && (size_t)n < asked)
			break;
	}
	server_conn_dirty(c);
}

/* "100 Continue" for the request at the front whose body has not begun. False: blocked. */
static bool
http1_send_continue(struct server_conn *c, struct api_call *call)
{
	size_t total = sizeof(http1_continue) - 1;
	long n;

	if (!call->expect_continue || call->continue_sent == total)
		return true;
	if (call->continue_sent == 0 && call->req_used != call->body_off)
		return true;  /* The client did not wait for it. */
	n = server_conn_send(c, http1_continue + call->continue_sent,
			     total - call->continue_sent, NULL, 0);
	if (n == -EAGAIN)
		return false;
	if (n < 0) {
		server_conn_close(c);
		return false;
	}
	call->continue_sent += (size_t)n;
	return call->continue_sent == total;
}

/*
 * Gathers the unsent bytes of the replied responses at the front of the
 * queue (in order, up to HTTP1_SEND_IOV_MAX pieces): pipelined responses
 * leave in one system call.
 */
static uint32_t
http1_gather(struct server_conn *c, struct iovec *iov)
{
	uint32_t count = 0;

	for (struct api_call *call = c->calls_head; call != NULL && count + 2 <= HTTP1_SEND_IOV_MAX &&
	     (call->state == CALL_REPLIED || call->state == CALL_STREAMING); call = call->next) {
		if (call->sent < call->head_size)
			iov[count++] = (struct iovec){ call->head + call->sent,
						       call->head_size - call->sent };
		if (call->out.size > 0 && call->sent < call->head_size + call->out.size) {
			size_t body_sent = call->sent > call->head_size ?
					   call->sent - call->head_size : 0;

			iov[count++] = (struct iovec){ call->out.data + body_sent,
						       call->out.size - body_sent };
		}
		if (!call->keep_alive || call->state == CALL_STREAMING)
			break;  /* Nothing after a closing response, or an open stream, is sent. */
	}
	return count;
}

/* Accounts `n` sent bytes to the front calls, freeing finished ones. False: closed. */
static bool
http1_sent(struct server_conn *c, size_t n)
{
	while (c->calls_head != NULL && (c->calls_head->state == CALL_REPLIED ||
					 c->calls_head->state == CALL_STREAMING)) {
		struct api_call *call = c->calls_head;
		size_t left = call->head_size + call->out.size - call->sent;
		bool keep = call->keep_alive;

		if (n < left || call->state == CALL_STREAMING) {
			assert(n <= left);
			call->sent += n;
			if (call->state == CALL_STREAMING)
				server_stream_sent(call);
			return true;
		}
		n -= left;
		server_call_free(call);
		if (!keep) {
			server_conn_close(c);
			return false;
		}
	}
	assert(n == 0);
	return true;
}

/* Writes replied responses in request order. False when the connection closed. */
static bool
http1_conn_output(struct server_conn *c)
{
	struct iovec iov[HTTP1_SEND_IOV_MAX];

	c->want_write = false;
	while (c->calls_head != NULL) {
		struct api_call *call = c->calls_head;
		uint32_t count;
		long n;

		if (call->state == CALL_READING) {
			c->want_write = !http1_send_continue(c, call);
			return c->state == CONN_HTTP1;
		}
		if (call->state != CALL_REPLIED && call->state != CALL_STREAMING)
			return true;
		count = http1_gather(c, iov);
		if (count == 0)
			return true;  /* An open stream with nothing to send. */
		n = server_conn_sendv(c, iov, count);
		if (n == -EAGAIN) {
			c->want_write = true;
			return true;
		}
		if (n < 0) {
			server_conn_close(c);
			return false;
		}
		c->activity_ns = c->server->now_ns;
		if (!http1_sent(c, (size_t)n))
			return false;
	}
	return true;
}

void
http1_conn_service(struct server_conn *c)
{
	if (!http1_conn_output(c))
		return;
	if (c->read_paused && !c->closing && c->calls_count < SERVER_PIPELINE_MAX &&
	    c->server->call_free != NULL) {
		c->read_paused = false;
		http1_conn_process(c);
		if (c->state != CONN_HTTP1 || !http1_conn_output(c))
			return;
	}
	if (c->closing && c->calls_head == NULL) {
		server_conn_close(c);
		return;
	}
	/* OpenSSL may hold decrypted bytes the socket will not signal again. */
	if (c->ssl != NULL && !c->read_paused && (!c->closing || c->reading != NULL) &&
	    SSL_pending(c->ssl) > 0)
		http1_conn_readable(c);
}
