/*
 * forward_stream.c - relayed subscriptions (forward.h "Relayed subscriptions",
 * docs/CLUSTER.md "Forwarding reads"): a SubscribeToShard of a shard this node holds
 * no replica of is opened on a holder over HTTP/1.1, and the holder's event-stream
 * bytes go, opaque, through a ring per slot to the API thread, which writes them
 * into its caller's own streaming answer.
 *
 * A slot's life (fields under the forwarder's lock):
 *
 *   PHASE     HELD  ENTERED BY                        LEFT BY
 *   IDLE      no    open; or over and let go          forward_stream_get (API)
 *   IDLE      yes   forward_stream_get                forward_stream_submit
 *   QUEUED    yes   forward_stream_submit             the forwarder's next pass
 *   RUNNING   yes   added to the multi handle         its end (the holder's, an error,
 *                                                     the silence bound) or a cancel
 *   IDLE      yes   the transfer over (finished)      forward_stream_put
 *   RUNNING   no    put while running: cancel set     the forwarder's next pass
 *
 * Back-pressure: the write callback takes a piece of the holder's bytes whole or
 * pauses the transfer (CURL_WRITEFUNC_PAUSE: libcurl keeps the piece and offers it
 * again). The API thread marks the slot for resumption once the caller took half the
 * ring; the forwarder unpauses it (a handle is only touched on its thread).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "common/base.h"
#include "common/diag.h"
#include "control/forward_internal.h"

/* A paused transfer always has room for libcurl's next write once it resumes. */
static_assert(FORWARD_STREAM_BUFFER_BYTES - FORWARD_STREAM_RESUME_BYTES >= CURL_MAX_WRITE_SIZE,
	      "a resumed relay takes a whole libcurl write");

/* ---- The ring (pure) ------------------------------------------------------------- */

size_t
forward_ring_free(const struct forward_ring *r)
{
	return r->capacity - r->size;
}

bool
forward_ring_put(struct forward_ring *r, const void *data, size_t n)
{
	size_t tail;
	size_t first;

	if (n > forward_ring_free(r))
		return false;
	tail = (r->head + r->size) % r->capacity;
	first = n < r->capacity - tail ? n : r->capacity - tail;
	memcpy(r->data + tail, data, first);
	memcpy(r->data, (const uint8_t *)data + first, n - first);
	r->size += n;
	return true;
}

size_t
forward_ring_peek(const struct forward_ring *r, const uint8_t **data)
{
	size_t to_end = r->capacity - r->head;

	*data = r->data + r->head;
	return r->size < to_end ? r->size : to_end;
}

void
forward_ring_consume(struct forward_ring *r, size_t n)
{
	assert(n <= r->size);
	r->size -= n;
	/* An empty ring starts over at 0: an error answer is then one piece. */
	r->head = r->size == 0 ? 0 : (r->head + n) % r->capacity;
}

/* ---- The API thread's side --------------------------------------------------------- */

struct forward_stream *
forward_stream_get(struct forward *f, const char *api_addr, const char *access_key_id,
		   const char *content_type, const char *target, size_t target_size)
{
	struct forward_stream *st = NULL;

	assert(target_size < sizeof(st->http.target));
	pthread_mutex_lock(&f->lock);
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX && st == NULL; i++) {
		if (!f->streams[i].held && f->streams[i].phase == FORWARD_STREAM_IDLE)
			st = &f->streams[i];
	}
	if (st != NULL) {
		st->held = true;
		st->cancel = false;
		st->paused = false;
		st->resume = false;
		st->counted = false;
		st->ring.head = 0;
		st->ring.size = 0;
		st->state = (struct forward_stream_state){ .status = 0 };
	}
	pthread_mutex_unlock(&f->lock);
	if (st == NULL) {
		atomic_fetch_add_explicit(&f->reads[FORWARD_READ_SUBSCRIBE][FORWARD_READ_BUSY], 1,
					  memory_order_relaxed);
		return NULL;
	}
	forward_http_init(&st->http, api_addr, access_key_id);
	st->http.content_type = content_type;
	memcpy(st->http.target, target, target_size);
	st->http.target[target_size] = '\0';
	return st;
}

struct api_out *
forward_stream_body(struct forward_stream *st)
{
	return &st->http.body;
}

void
forward_stream_submit(struct forward *f, struct forward_stream *st)
{
	assert(!st->http.body.overflow);
	pthread_mutex_lock(&f->lock);
	assert(st->held && st->phase == FORWARD_STREAM_IDLE);
	st->phase = FORWARD_STREAM_QUEUED;
	pthread_mutex_unlock(&f->lock);
	curl_multi_wakeup(f->multi);
}

void
forward_stream_resubmit(struct forward *f, struct forward_stream *st, const char *api_addr)
{
	pthread_mutex_lock(&f->lock);
	assert(st->held && st->phase == FORWARD_STREAM_IDLE && st->state.finished &&
	       st->state.status == 0 && st->state.outcome == FORWARD_REFUSED);
	st->counted = false;
	st->state = (struct forward_stream_state){ .status = 0 };
	pthread_mutex_unlock(&f->lock);
	/* The forwarder leaves an idle slot's handle alone: its URL is ours to change. */
	forward_http_target(&st->http, api_addr);
	forward_stream_submit(f, st);
}

void
forward_stream_look(struct forward *f, struct forward_stream *st,
		    struct forward_stream_state *out)
{
	pthread_mutex_lock(&f->lock);
	*out = st->state;
	/* Only the forwarder appends, past these bytes: they stay put until consumed. */
	out->size = forward_ring_peek(&st->ring, &out->data);
	pthread_mutex_unlock(&f->lock);
}

void
forward_stream_consume(struct forward *f, struct forward_stream *st, size_t n)
{
	bool wake = false;

	pthread_mutex_lock(&f->lock);
	forward_ring_consume(&st->ring, n);
	if (st->paused && forward_ring_free(&st->ring) >= FORWARD_STREAM_RESUME_BYTES) {
		st->paused = false;
		st->resume = wake = true;
	}
	pthread_mutex_unlock(&f->lock);
	if (wake)
		curl_multi_wakeup(f->multi);
}

void
forward_stream_put(struct forward *f, struct forward_stream *st)
{
	bool wake;

	pthread_mutex_lock(&f->lock);
	st->held = false;
	wake = st->phase != FORWARD_STREAM_IDLE;
	st->cancel = wake;
	pthread_mutex_unlock(&f->lock);
	if (wake)
		curl_multi_wakeup(f->multi);
}

void
forward_stream_count(struct forward *f, enum forward_stream_result result)
{
	atomic_fetch_add_explicit(&f->subscriptions[result], 1, memory_order_relaxed);
}

/* ---- The forwarder thread ------------------------------------------------------------ */

/* The request's outcome once (sluice_forward_reads_total{action="SubscribeToShard"}). */
static void
forward_stream_counted(struct forward *f, struct forward_stream *st, enum forward_outcome o)
{
	if (st->counted)
		return;
	st->counted = true;
	atomic_fetch_add_explicit(&f->reads[FORWARD_READ_SUBSCRIBE][o], 1, memory_order_relaxed);
}

static size_t
forward_stream_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct forward_stream *st = arg;
	struct forward *f = st->f;
	size_t n = size * nmemb;
	size_t taken = n;

	pthread_mutex_lock(&f->lock);
	if (st->state.status == 0) {
		curl_easy_getinfo(st->http.easy, CURLINFO_RESPONSE_CODE, &st->state.status);
		forward_stream_counted(f, st, FORWARD_OK);  /* The holder answered. */
	}
	if (st->cancel) {
		taken = 0;  /* Let go: ends the transfer (the next pass removes it). */
	} else if (!forward_ring_put(&st->ring, data, n)) {
		/* An error answer is read whole; a 200's bytes wait for the caller. */
		if (st->state.status == 200 && n <= st->ring.capacity) {
			st->paused = true;
			taken = CURL_WRITEFUNC_PAUSE;
		} else {
			taken = 0;
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (taken == n)
		eventfd_write(f->doorbell, 1);
	return taken;
}

/* Opens a queued relay on its holder: HTTP/1.1, the silence bound, no overall timeout. */
static int
forward_stream_start(struct forward *f, struct forward_stream *st)
{
	CURL *easy = st->http.easy;
	int err = forward_http_prepare(f, &st->http);

	if (err != 0)
		return err;
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)FORWARD_TIMEOUT_MS);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 0L);  /* It lives as long as the holder's. */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)FORWARD_STREAM_SILENCE_S);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, forward_stream_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, st);
	return curl_multi_add_handle(f->multi, easy) == CURLM_OK ? 0 : -ENOMEM;
}

/* The transfer is over (`rc`): finished for the API thread, or the slot is free. */
static void
forward_stream_over(struct forward *f, struct forward_stream *st, CURLcode rc)
{
	enum forward_outcome outcome = forward_outcome_of(rc);

	pthread_mutex_lock(&f->lock);
	st->phase = FORWARD_STREAM_IDLE;
	if (st->state.status == 0 && rc == CURLE_OK)
		curl_easy_getinfo(st->http.easy, CURLINFO_RESPONSE_CODE, &st->state.status);
	st->state.finished = true;
	st->state.outcome = outcome;
	st->state.silent = rc == CURLE_OPERATION_TIMEDOUT;
	/* A head that never came: the request's outcome is the transfer's (a cancel: none). */
	if (st->cancel)
		st->counted = true;
	forward_stream_counted(f, st, st->state.status != 0 ? FORWARD_OK : outcome);
	pthread_mutex_unlock(&f->lock);
	if (outcome != FORWARD_OK)
		diag_debug("forward", "relay %s: %s", st->http.url, curl_easy_strerror(rc));
	eventfd_write(f->doorbell, 1);
}

void
forward_streams_service(struct forward *f)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++) {
		struct forward_stream *st = &f->streams[i];
		enum forward_stream_phase phase;
		bool cancel;
		bool resume;

		pthread_mutex_lock(&f->lock);
		phase = st->phase;
		cancel = st->cancel;
		resume = st->resume;
		st->resume = false;
		if (phase == FORWARD_STREAM_QUEUED && !cancel)
			st->phase = FORWARD_STREAM_RUNNING;
		pthread_mutex_unlock(&f->lock);
		if (phase == FORWARD_STREAM_QUEUED && !cancel) {
			if (forward_stream_start(f, st) != 0)
				forward_stream_over(f, st, CURLE_FAILED_INIT);
		} else if (phase != FORWARD_STREAM_IDLE && cancel) {
			/* The caller left: its holder's transfer goes (a no-op when not added). */
			curl_multi_remove_handle(f->multi, st->http.easy);
			forward_stream_over(f, st, CURLE_ABORTED_BY_CALLBACK);
		} else if (phase == FORWARD_STREAM_RUNNING && resume) {
			/* May deliver the held piece at once: the callback takes the lock itself. */
			curl_easy_pause(st->http.easy, CURLPAUSE_CONT);
		}
	}
}

bool
forward_stream_done(struct forward *f, CURL *easy, CURLcode rc)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++) {
		if (f->streams[i].http.easy == easy) {
			forward_stream_over(f, &f->streams[i], rc);
			return true;
		}
	}
	return false;
}

/* ---- Open, close, /metrics ------------------------------------------------------------- */

int
forward_streams_alloc(struct forward *f)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++) {
		struct forward_stream *st = &f->streams[i];

		st->f = f;
		st->http.body.capacity_max = FORWARD_STREAM_REQUEST_SIZE_MAX;
		st->ring.data = malloc(FORWARD_STREAM_BUFFER_BYTES);
		st->ring.capacity = FORWARD_STREAM_BUFFER_BYTES;
		if (forward_http_alloc(&st->http, FORWARD_STREAM_REQUEST_SIZE_MAX) != 0 ||
		    st->ring.data == NULL)
			return -ENOMEM;
	}
	return 0;
}

void
forward_streams_free(struct forward *f)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++) {
		forward_http_free(f, &f->streams[i].http);
		free(f->streams[i].ring.data);
	}
}

void
forward_streams_render_metrics(struct forward *f, struct metrics_out *out)
{
	static const char *const results[FORWARD_STREAM_RESULTS] = {
		[FORWARD_STREAM_STARTED] = "started", [FORWARD_STREAM_HOLDER] = "holder_ended",
		[FORWARD_STREAM_CALLER] = "caller_left", [FORWARD_STREAM_SILENT] = "silent",
		[FORWARD_STREAM_FAILED] = "failed",
	};

	metrics_family(out, "sluice_forward_subscriptions_total", "counter",
		       "SubscribeToShard relayed from a replica holder: started (the holder "
		       "answered 200), then how the caller's stream ended: holder_ended (the "
		       "holder ended it), caller_left (its transfer cancelled), silent (nothing for "
		       "FORWARD_STREAM_SILENCE_S), failed (the holder's connection broke).");
	forward_render_results(out, "sluice_forward_subscriptions_total", results,
			       f->subscriptions, FORWARD_STREAM_RESULTS);
}
