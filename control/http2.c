/*
 * http2.c - HTTP/2 connections through nghttp2 (h2c with prior knowledge on
 * the plain port, h2 via ALPN on TLS). nghttp2 does the framing, HPACK and
 * flow control; this file turns streams into calls: the request headers and
 * DATA of a stream are gathered into the call's buffer, END_STREAM makes it
 * ready, and a reply is submitted as a response whose body nghttp2 pulls
 * from the call's output buffer. Bytes move with nghttp2_session_mem_recv()
 * and nghttp2_session_mem_send(), so the socket (plain or TLS) stays ours.
 *
 * Each stream is one call; up to SERVER_H2_STREAMS_MAX run at once per
 * connection, of which up to SERVER_H2_READING_MAX may still be arriving.
 * No free call, or too many arriving: the stream is refused (RST_STREAM
 * REFUSED_STREAM, which clients retry). Header block over
 * HTTP1_HEAD_SIZE_MAX or HTTP1_HEADERS_MAX fields: 431; body over
 * request_body_size_max: 413 (the rest of the body is read and dropped).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/server_internal.h"

/* The connection-level receive window: one maximal request in flight at full speed. */
#define H2_CONNECTION_WINDOW (16 * 1024 * 1024)
#define H2_STREAM_WINDOW (1024 * 1024)

static struct api_call *
h2_stream_call(nghttp2_session *session, int32_t stream_id)
{
	struct api_call *call = nghttp2_session_get_stream_user_data(session, stream_id);

	return call != NULL && call->state == CALL_READING ? call : NULL;
}

static int
h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct server_conn *c = user_data;
	struct api_call *call = NULL;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	/* Its own share, or a borrowed one (SERVER_H2_READING_MAX says why). */
	if (c->calls_reading < SERVER_H2_READING_MAX ||
	    c->server->calls_borrowed < SERVER_CALLS_BORROW_MAX)
		call = server_call_alloc(c->server, c);
	if (call == NULL) {
		c->server->stats.h2_streams_refused++;
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
					  NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	call->stream_id = frame->hd.stream_id;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
	return 0;
}

static bool
h2_name_is(const uint8_t *name, size_t size, const char *text)
{
	return size == strlen(text) && memcmp(name, text, size) == 0;
}

static int
h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
	     size_t name_size, const uint8_t *value, size_t value_size, uint8_t flags,
	     void *user_data)
{
	struct api_call *call = h2_stream_call(session, frame->hd.stream_id);
	uint32_t k;

	(void)flags;
	(void)user_data;
	/* Trailers (after the body has begun) are ignored. */
	if (call == NULL || call->refuse_status != 0 || call->body_off != 0)
		return 0;
	k = call->header_count;
	if (k == HTTP1_HEADERS_MAX + 8 ||
	    call->req_used + name_size + value_size > HTTP1_HEAD_SIZE_MAX) {
		call->refuse_status = 431;
		return 0;
	}
	if (server_call_req_append(call, name, name_size, &call->names[k]) != 0 ||
	    server_call_req_append(call, value, value_size, &call->values[k]) != 0) {
		call->refuse_status = 503;
		return 0;
	}
	call->header_count++;
	if (h2_name_is(name, name_size, ":method"))
		call->method = call->values[k];
	else if (h2_name_is(name, name_size, ":path"))
		call->target = call->values[k];
	return 0;
}

static int
h2_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
		 const uint8_t *data, size_t size, void *user_data)
{
	struct api_call *call = h2_stream_call(session, stream_id);
	struct server_conn *c = user_data;

	(void)flags;
	if (call == NULL || call->refuse_status != 0)
		return 0;
	if (call->body_off == 0)
		call->body_off = call->req_used;
	if (call->req_used - call->body_off + size > c->server->config.request_body_size_max) {
		call->refuse_status = 413;
		return 0;
	}
	if (server_call_req_append(call, data, size, NULL) != 0)
		call->refuse_status = 503;
	return 0;
}

static int
h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct api_call *call;

	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	call = h2_stream_call(session, frame->hd.stream_id);
	if (call == NULL)
		return 0;
	if (call->body_off == 0 && call->refuse_status == 0)
		call->body_off = call->req_used;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		server_call_ready(call);
	return 0;
}

static int
h2_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
		   void *user_data)
{
	struct api_call *call = nghttp2_session_get_stream_user_data(session, stream_id);

	(void)error_code;
	(void)user_data;
	if (call == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	if (call->state == CALL_DISPATCHED)
		server_call_detach(call);  /* The action still holds it. */
	else if (call->state == CALL_STREAMING && !call->stream_ended)
		server_stream_detach(call);  /* Reset by the client: the action still holds it. */
	else
		server_call_free(call);
	return 0;
}

int
h2_callbacks_new(nghttp2_session_callbacks **out)
{
	nghttp2_session_callbacks *cb;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
	*out = cb;
	return 0;
}

int
h2_conn_open(struct server_conn *c)
{
	const nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, SERVER_H2_STREAMS_MAX },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HTTP1_HEAD_SIZE_MAX },
	};

	if (nghttp2_session_server_new(&c->h2, c->server->h2_callbacks, c) != 0)
		return -ENOMEM;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings,
				    sizeof(settings) / sizeof(settings[0])) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
						  H2_CONNECTION_WINDOW) != 0)
		return -EIO;
	c->state = CONN_H2;
	c->goaway = false;
	if (c->server->draining)
		h2_conn_goaway(c);  /* Opened while stopping: no stream of it is taken. */
	server_conn_dirty(c);
	return 0;
}

void
h2_conn_goaway(struct server_conn *c)
{
	int32_t last = nghttp2_session_get_last_proc_stream_id(c->h2);

	if (c->goaway)
		return;
	/*
	 * NO_ERROR with the last stream taken: the streams up to it are answered, nghttp2
	 * ignores later ones, and the client knows to send them elsewhere. The session
	 * ends (h2_conn_service) once its streams are done and the frame is out.
	 */
	if (nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) != 0)
		return;
	c->goaway = true;
	server_conn_dirty(c);
}

void
h2_conn_input(struct server_conn *c, const uint8_t *data, size_t size)
{
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, size);

	if (rv < 0) {
		server_conn_close(c);
		return;
	}
	c->activity_ns = c->server->now_ns;
	server_conn_dirty(c);
}

void
h2_conn_readable(struct server_conn *c)
{
	for (int round = 0; round < 16 && c->state == CONN_H2; round++) {
		long n = server_conn_recv(c, c->in, SERVER_IN_SIZE);

		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			server_conn_close(c);
			return;
		}
		h2_conn_input(c, (const uint8_t *)c->in, (size_t)n);
		/* A short read drained the socket: skip the recv that would say EAGAIN. */
		if (c->ssl == NULL && n < (long)SERVER_IN_SIZE)
			return;
	}
}

/* Writes what nghttp2 has to send. False when the connection closed. */
static bool
h2_conn_output(struct server_conn *c)
{
	c->want_write = false;
	for (;;) {
		const uint8_t *data;
		ssize_t size;

		while (c->h2_out_size > 0) {
			long n = server_conn_send(c, c->h2_out, c->h2_out_size, NULL, 0);

			if (n == -EAGAIN) {
				c->want_write = true;
				return true;
			}
			if (n < 0) {
				server_conn_close(c);
				return false;
			}
			c->h2_out += n;
			c->h2_out_size -= (size_t)n;
			c->activity_ns = c->server->now_ns;
		}
		size = nghttp2_session_mem_send(c->h2, &data);
		if (size < 0) {
			server_conn_close(c);
			return false;
		}
		if (size == 0)
			return true;
		c->h2_out = data;
		c->h2_out_size = (size_t)size;
	}
}

void
h2_conn_service(struct server_conn *c)
{
	if (!h2_conn_output(c))
		return;
	if (c->h2_out_size == 0 && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2)) {
		server_conn_close(c);
		return;
	}
	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		h2_conn_readable(c);
}

static ssize_t
h2_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
	     uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct api_call *call = source->ptr;
	size_t left = call->out.size - call->sent;
	size_t n = left < length ? left : length;

	(void)session;
	(void)stream_id;
	(void)user_data;
	if (n > 0)
		memcpy(buf, call->out.data + call->sent, n);
	call->sent += n;
	if (call->sent == call->out.size)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define H2_NV(name, value, value_size) { (uint8_t *)(name), (uint8_t *)(value), \
	sizeof(name) - 1, (value_size), NGHTTP2_NV_FLAG_NONE }

void
h2_call_replied(struct api_call *call)
{
	struct server_conn *c = call->conn;
	char status[4];
	char length[24];
	struct server_header extra[SERVER_EXTRA_HEADERS_MAX];
	uint32_t extra_count = server_call_extra_headers(call, extra);
	size_t count = call->error_type[0] != '\0' ? 5 : 4;
	nghttp2_nv nva[6 + SERVER_EXTRA_HEADERS_MAX] = {
		H2_NV(":status", status, 3),
		H2_NV("content-length", length, 0),
		H2_NV("x-amzn-requestid", call->request_id, strlen(call->request_id)),
		H2_NV("date", call->server->date, strlen(call->server->date)),
		H2_NV("x-amzn-errortype", call->error_type, strlen(call->error_type)),
	};
	nghttp2_data_provider body = { .source.ptr = call, .read_callback = h2_read_body };

	/* No content-type when the answer has none (AWS sends none for some: server_call.c). */
	if (call->content_type != NULL)
		nva[count++] = (nghttp2_nv)H2_NV("content-type", call->content_type,
						 strlen(call->content_type));
	for (uint32_t i = 0; i < extra_count; i++)
		nva[count++] = (nghttp2_nv){ (uint8_t *)extra[i].name, (uint8_t *)extra[i].value,
					     strlen(extra[i].name), extra[i].value_size,
					     NGHTTP2_NV_FLAG_NONE };
	snprintf(status, sizeof(status), "%03d", call->status);
	nva[1].valuelen = (size_t)snprintf(length, sizeof(length), "%zu", call->out.size);
	call->sent = 0;
	if (nghttp2_submit_response(c->h2, call->stream_id, nva, count,
				    call->out.size > 0 ? &body : NULL) != 0) {
		server_call_free(call);  /* The stream is gone. */
		return;
	}
	server_conn_dirty(c);
}

/*
 * A streaming answer's body: what the buffer holds, then DEFERRED until the action
 * writes more (h2_stream_resume), or EOF once it ended. nghttp2 asks only while the
 * peer's flow-control windows are open: a peer that stops reading stops the pulls, and
 * the buffer fills to API_STREAM_PENDING_MAX.
 */
static ssize_t
h2_read_stream(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
	       uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct api_call *call = source->ptr;
	size_t left = server_stream_pending(call);
	size_t n = left < length ? left : length;

	(void)session;
	(void)stream_id;
	(void)user_data;
	if (n == 0 && !call->stream_ended)
		return NGHTTP2_ERR_DEFERRED;
	if (n > 0)
		memcpy(buf, call->out.data + call->sent, n);
	call->sent += n;
	server_stream_sent(call);
	if (call->stream_ended && server_stream_pending(call) == 0)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

int
h2_stream_begin(struct api_call *call)
{
	struct server_conn *c = call->conn;
	struct server_header extra[SERVER_EXTRA_HEADERS_MAX];
	uint32_t extra_count = server_call_extra_headers(call, extra);
	size_t count = 4;
	nghttp2_nv nva[4 + SERVER_EXTRA_HEADERS_MAX] = {
		H2_NV(":status", "200", 3),
		H2_NV("content-type", call->content_type, strlen(call->content_type)),
		H2_NV("x-amzn-requestid", call->request_id, strlen(call->request_id)),
		H2_NV("date", call->server->date, strlen(call->server->date)),
	};
	nghttp2_data_provider body = { .source.ptr = call, .read_callback = h2_read_stream };

	for (uint32_t i = 0; i < extra_count; i++)
		nva[count++] = (nghttp2_nv){ (uint8_t *)extra[i].name, (uint8_t *)extra[i].value,
					     strlen(extra[i].name), extra[i].value_size,
					     NGHTTP2_NV_FLAG_NONE };
	call->head_size = 0;
	call->sent = 0;
	if (nghttp2_submit_response(c->h2, call->stream_id, nva, count, &body) != 0) {
		/* The stream is gone: as if the client had reset it. */
		server_stream_detach(call);
		return 0;
	}
	server_conn_dirty(c);
	return 0;
}

void
h2_stream_resume(struct api_call *call)
{
	/* Fails only when the stream is not deferred (nghttp2 will ask anyway) or gone. */
	(void)nghttp2_session_resume_data(call->conn->h2, call->stream_id);
}

void
h2_conn_sweep(struct server_conn *c, uint64_t limit_ns)
{
	uint64_t now_ns = c->server->now_ns;

	for (struct api_call *call = c->calls_head; call != NULL; call = call->next) {
		if (call->state != CALL_READING || now_ns - call->started_ns <= limit_ns ||
		    call->refuse_status == 408)
			continue;
		/* on_stream_close() frees the call once the reset is sent. */
		call->refuse_status = 408;
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
					  NGHTTP2_CANCEL);
		server_conn_dirty(c);
	}
}
