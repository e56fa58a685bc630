/*
 * server_stream.c - streaming answers (api.h, "Streaming answers"): a call whose 200
 * body stays open while its action pushes whole messages into it (SubscribeToShard's
 * EventStream). The protocol files frame the body: HTTP/1.1 as chunks
 * (server_http1.c), HTTP/2 as DATA frames pulled by nghttp2 through a data provider
 * that defers while the buffer is empty (http2.c).
 *
 * A stream's life:
 *
 *   STATE                 ENTERED BY                        LEFT BY
 *   CALL_DISPATCHED       the action has the request        api_call_stream_begin()
 *   CALL_STREAMING        head queued; body open            api_call_stream_end(), or the
 *                                                           client leaving (detached)
 *   h1: CALL_REPLIED      end: last chunk queued            sent: freed as any answer
 *   h2: STREAMING, ended  end: EOF once the buffer drains   nghttp2 closes the stream: freed
 *   detached (conn NULL)  client left while the action     api_call_stream_end(): freed
 *                         held it; GONE delivered
 *
 * Bound: the buffer (call->out) holds what the peer has not taken; a write is refused
 * (-EAGAIN) while the buffer is not empty and the write would take it past
 * API_STREAM_PENDING_MAX. An emptied buffer goes back to the pool at once, so an idle
 * or blocked stream holds at most one message's worth. Events to the action
 * (api_stream_fn) are queued on the server's stream_due list and delivered from the
 * loop's service pass, never from inside a call the action made.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "control/metrics.h"
#include "control/server_internal.h"

size_t
server_stream_pending(const struct api_call *call)
{
	size_t body_sent = call->sent > call->head_size ? call->sent - call->head_size : 0;

	assert(body_sent <= call->out.size);
	return call->out.size - body_sent;
}

/* Queues `call` for server_stream_notify(). */
static void
server_stream_due(struct api_call *call)
{
	struct api_server *s = call->server;

	if (call->stream_due)
		return;
	call->stream_due = true;
	call->stream_due_next = s->stream_due;
	s->stream_due = call;
}

void
server_stream_forget(struct api_call *call)
{
	struct api_call **p = &call->server->stream_due;

	if (!call->stream_due)
		return;
	while (*p != call)
		p = &(*p)->stream_due_next;
	*p = call->stream_due_next;
	call->stream_due = false;
	call->stream_due_next = NULL;
}

void
server_stream_sent(struct api_call *call)
{
	if (call->sent < call->head_size || server_stream_pending(call) > 0)
		return;
	/* Drained: the buffer goes back to the pool; the next write takes one again. */
	api_out_release(&call->out);
	call->sent = call->head_size;
	if (call->stream_blocked && !call->stream_ended)
		server_stream_due(call);
}

void
server_stream_detach(struct api_call *call)
{
	assert(call->state == CALL_STREAMING && !call->stream_ended);
	server_call_detach(call);
	call->server->stats.streams_gone++;
	metrics_fanout_add(METRICS_FANOUT_STREAMS_GONE, 1);
	call->stream_gone = true;
	server_stream_due(call);
}

bool
server_stream_notify(struct api_server *s)
{
	bool delivered = false;

	while (s->stream_due != NULL) {
		struct api_call *call = s->stream_due;

		s->stream_due = call->stream_due_next;
		call->stream_due = false;
		call->stream_due_next = NULL;
		if (call->stream_ended)
			continue;
		if (call->stream_gone) {
			call->stream_fn(call->stream_ctx, API_STREAM_GONE);
		} else if (call->stream_blocked && server_stream_pending(call) == 0) {
			call->stream_blocked = false;
			call->stream_fn(call->stream_ctx, API_STREAM_WRITABLE);
		}
		delivered = true;
	}
	return delivered;
}

int
api_call_stream_begin(struct api_call *call, const char *content_type, api_stream_fn fn,
		      void *ctx)
{
	struct api_server *s = call->server;

	assert(call->state == CALL_DISPATCHED && fn != NULL);
	if (call->conn == NULL) {
		/* Nothing to stream to: finished as a dropped answer. */
		s->stats.replies_dropped++;
		server_call_state_set(call, CALL_REPLIED);
		server_call_free(call);
		return -EPIPE;
	}
	call->status = 200;
	call->content_type = content_type;
	call->stream_fn = fn;
	call->stream_ctx = ctx;
	api_out_release(&call->out);
	server_call_state_set(call, CALL_STREAMING);
	s->stats.streams_started++;
	metrics_fanout_add(METRICS_FANOUT_STREAMS_STARTED, 1);
	/* Latency to the first byte: the answer is the stream's head. */
	metrics_api_reply(call->metrics_op, 200, "", s->now_ns - call->started_ns);
	if (call->conn->state == CONN_H2)
		return h2_stream_begin(call);
	http1_stream_begin(call);
	return 0;
}

bool
api_call_is_cbor(const struct api_call *call)
{
	return call->cbor;
}

size_t
api_call_stream_pending(const struct api_call *call)
{
	assert(call->state == CALL_STREAMING);
	return server_stream_pending(call);
}

int
api_call_stream_write(struct api_call *call, const void *data, size_t size)
{
	struct api_server *s = call->server;
	size_t pending;
	bool h2;

	assert(call->state == CALL_STREAMING && !call->stream_ended && size > 0);
	if (call->conn == NULL)
		return -EPIPE;
	pending = server_stream_pending(call);
	if (pending > 0 && pending + size > API_STREAM_PENDING_MAX) {
		call->stream_blocked = true;
		s->stats.stream_writes_refused++;
		metrics_fanout_add(METRICS_FANOUT_WRITES_REFUSED, 1);
		return -EAGAIN;
	}
	h2 = call->conn->state == CONN_H2;
	if (h2) {
		api_out_append(&call->out, data, size);
	} else if (!http1_stream_frame(call, data, size)) {
		call->out.overflow = true;
	}
	if (call->out.overflow) {
		/* Nothing was appended (api_out drops a write that does not fit whole). */
		call->out.overflow = false;
		s->stats.stream_writes_no_buffer++;
		metrics_fanout_add(METRICS_FANOUT_WRITES_NO_BUFFER, 1);
		return -ENOBUFS;
	}
	s->stats.stream_bytes += size;
	metrics_fanout_add(METRICS_FANOUT_STREAM_BYTES, size);
	if (h2)
		h2_stream_resume(call);
	server_conn_dirty(call->conn);
	return 0;
}

void
api_call_stream_end(struct api_call *call)
{
	struct server_conn *c = call->conn;

	assert(call->state == CALL_STREAMING && !call->stream_ended);
	call->stream_ended = true;
	server_stream_forget(call);
	if (c == NULL) {
		server_call_state_set(call, CALL_REPLIED);
		server_call_free(call);
		return;
	}
	call->server->stats.streams_ended++;
	metrics_fanout_add(METRICS_FANOUT_STREAMS_ENDED, 1);
	if (c->state == CONN_H2) {
		h2_stream_resume(call);
	} else {
		http1_stream_end(call);
	}
	server_conn_dirty(c);
}
