/*
 * forward.h - private to control/: the forwarder thread of cluster mode
 * (docs/CLUSTER.md "Forwarding puts to the shard's leader"). A node that
 * does not lead a record's shard sends it to the leader's API as a
 * PutRecords and answers its caller with the leader's per-record results.
 *
 *   API thread                          forwarder thread ("forwarder")
 *   forward_job_get (bounded: NULL
 *     past FORWARD_INFLIGHT_MAX)
 *   forward_job_add per record
 *   forward_job_submit --- queue --->   signs the request as the caller's key,
 *                                       POSTs it (libcurl multi, FORWARD_TIMEOUT_MS),
 *                                       parses the reply (forward_reply_parse)
 *   forward_poll <--- done queue + doorbell eventfd (in the API thread's epoll set)
 *   forward_job_put
 *
 * A SubscribeToShard of a shard this node holds no replica of is relayed
 * (forward_stream_*): the forwarder opens it on a holder over HTTP/1.1 and
 * puts the event-stream bytes, opaque, into the stream's ring; the API thread
 * takes them from there into the caller's own streaming answer. A full ring
 * pauses the holder's transfer until the caller's side drained it.
 *
 * Every forwarded request carries FORWARD_HEADER: a node never forwards such a
 * request again (its records for shards it does not lead fail throttled), so a
 * stale placement cannot make a loop.
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SLUICE_CONTROL_FORWARD_H
#define SLUICE_CONTROL_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/api.h"
#include "control/config.h"
#include "control/metrics.h"
#include "control/seqnum.h"

/* Forwarded requests in flight per node; past it records fail throttled (counted). */
#define FORWARD_INFLIGHT_MAX 16u
/*
 * A forwarded request not answered within this fails its records InternalFailure:
 * the leader may have appended them (the outcome is unknown, as a client timeout's).
 */
#define FORWARD_TIMEOUT_MS 10000u
/*
 * A passed-through read: FORWARD_TIMEOUT_MS bounds the call over every holder it tries
 * (its caller waits no longer than a put's); one holder gets at most this of it, so a
 * holder that accepts and then hangs leaves the next holder time to answer.
 */
#define FORWARD_READ_TRY_MS 5000u
/* Records in one forwarded PutRecords (AWS's PutRecords bound). */
#define FORWARD_RECORDS_MAX 500u
/*
 * One forwarded body: PutRecords' 5 MiB of data and keys as base64 (4/3) plus
 * per-record JSON with keys escaped (up to 6x) and hash keys. A record that does
 * not fit (a PutRecord larger than 5 MiB) is not forwarded: it fails throttled.
 */
#define FORWARD_BODY_SIZE_MAX (8u << 20)
/* The leader's answer: 500 results of ~130 bytes, or an error. Longer: InternalFailure. */
#define FORWARD_REPLY_SIZE_MAX (256u << 10)
/*
 * A passed-through read's answer (GetRecords): the holder caps a forwarded GetRecords'
 * JSON at this (fewer records, the next call goes on), so every answer fits.
 */
#define FORWARD_READ_REPLY_SIZE_MAX (8u << 20)
/* An error answer's __type and message as passed on to the caller. */
#define FORWARD_ERROR_TYPE_SIZE 128u
#define FORWARD_ERROR_MESSAGE_SIZE 1024u
/* "http://" + an api_addr (CLUSTER_ADDR_SIZE) + "/". */
#define FORWARD_URL_SIZE 96u
/* A forwarded body's Content-Type: JSON; a CBOR caller's relayed subscription's, CBOR. */
#define FORWARD_CONTENT_TYPE "application/x-amz-json-1.1"
#define FORWARD_CONTENT_TYPE_CBOR "application/x-amz-cbor-1.1"
/* The loop guard: set on every forwarded request, never forwarded again. */
#define FORWARD_HEADER "X-Sluice-Forwarded"
#define FORWARD_HEADER_LOWER "x-sluice-forwarded"

/* One record's answer from the leader. */
struct forward_result {
	int32_t error;        /* 0; -EPIPE: throttled (retry); -EIO: InternalFailure. */
	struct seqnum sn;     /* When error is 0: ShardId's index and the leader's number. */
};

/* How a forwarded request ended (the metrics' result label). */
enum forward_outcome {
	FORWARD_OK,           /* The leader answered 200: per-record results. */
	FORWARD_REFUSED,      /* No connection to the leader: nothing appended; throttled. */
	FORWARD_TIMEOUT,      /* No answer within FORWARD_TIMEOUT_MS (a read's try: within
			       * FORWARD_READ_TRY_MS): unknown; InternalFailure. */
	FORWARD_FAILED,       /* Any other transport or HTTP error: unknown; InternalFailure. */
	FORWARD_OUTCOMES,
};

/* The reads a node that holds no replica of a shard passes through (the metrics' action). */
enum forward_read {
	FORWARD_READ_ITERATOR,    /* GetShardIterator */
	FORWARD_READ_RECORDS,     /* GetRecords */
	FORWARD_READ_SUBSCRIBE,   /* SubscribeToShard: relayed (forward_stream_*). */
	FORWARD_READS,
};

struct forward;
struct forward_job;

/* Starts the forwarder thread; the keys of [auth] sign what it sends. */
int forward_open(const struct sluice_config *config, struct forward **f_out);
/* Stops the thread; jobs in flight are dropped (their calls are dropped by kinesis_close). */
void forward_close(struct forward *f);
/* Readable when forward_poll has jobs (read it to reset). */
int forward_doorbell_fd(const struct forward *f);

/*
 * A free job for a PutRecords of `stream` to the node at `api_addr`, signed as
 * `access_key_id` (may be ""), or NULL when FORWARD_INFLIGHT_MAX are in flight
 * (counted). API thread.
 */
struct forward_job *forward_job_get(struct forward *f, const char *stream, const char *api_addr,
				    const char *access_key_id, uint64_t cookie);
/*
 * Appends one record; `tag` comes back with its result (forward_job_tag).
 * -ENOSPC: the body or the record count is full (nothing added).
 */
int forward_job_add(struct forward_job *job, const char *key, size_t key_size,
		    const char *hash_key, const uint8_t *data, size_t data_size, uint16_t tag);
uint32_t forward_job_count(const struct forward_job *job);
/* The body so far (its records; "]}" is added at submit): for tests. */
const char *forward_job_body(const struct forward_job *job, size_t *size_out);
/* Sends it (the API thread no longer touches it until forward_poll returns it). */
void forward_job_submit(struct forward *f, struct forward_job *job);
/* Completed jobs, up to `max`. API thread. */
uint32_t forward_poll(struct forward *f, struct forward_job **done, uint32_t max);
uint64_t forward_job_cookie(const struct forward_job *job);
enum forward_outcome forward_job_outcome(const struct forward_job *job);
/* Record i's tag and result (i < forward_job_count). */
uint16_t forward_job_tag(const struct forward_job *job, uint32_t i);
const struct forward_result *forward_job_result(const struct forward_job *job, uint32_t i);
/*
 * A read passed through to the node at `api_addr`: `body` (JSON, as the caller sent it)
 * under X-Amz-Target `target`, signed as `access_key_id`. NULL when FORWARD_INFLIGHT_MAX
 * are in flight (counted busy). `body_size` fits FORWARD_BODY_SIZE_MAX. API thread.
 */
struct forward_job *forward_job_get_read(struct forward *f, enum forward_read action,
					 const char *target, size_t target_size,
					 const void *body, size_t body_size, const char *api_addr,
					 const char *access_key_id, uint64_t cookie);
/* A read's answer: its HTTP status (0: none came, see the outcome) and body. */
long forward_job_reply(const struct forward_job *job, const char **body, size_t *size);
/*
 * Whether a finished read may go on to another holder: its holder failed it (refused
 * the connection, or timed out or broke after the request was sent: a read changes
 * nothing, so asking another is safe, unlike a put) and its deadline (FORWARD_TIMEOUT_MS
 * from forward_job_get_read) has not passed. An answer too big, or a request that could
 * not be made here, is not the holder's failure: no.
 */
bool forward_job_may_try_next(const struct forward_job *job);
/*
 * A finished read that forward_job_may_try_next() allows is sent again, as it was, to
 * the node at `api_addr` (the next holder), bounded by what is left of its deadline.
 * API thread.
 */
void forward_job_resubmit(struct forward *f, struct forward_job *job, const char *api_addr);
/* A read refused unsent (no holder's address known). */
void forward_read_refused(struct forward *f, enum forward_read action);
/* Gives a job back (submitted or not). API thread. */
void forward_job_put(struct forward *f, struct forward_job *job);

/* ---- Relayed subscriptions (SubscribeToShard on a node holding no replica) ---- */

/* Relayed subscriptions at once per node; past it LimitExceededException (counted busy). */
#define FORWARD_STREAMS_MAX 32u
/*
 * Relayed bytes held per subscription between the holder and the caller. Full: the
 * holder's transfer pauses (CURL_WRITEFUNC_PAUSE) until the caller took half of it.
 * Allocated at open for every slot; twice a libcurl write at least, so a paused
 * transfer always resumes with room for its next write.
 */
#define FORWARD_STREAM_BUFFER_BYTES (256u << 10)
#define FORWARD_STREAM_RESUME_BYTES (FORWARD_STREAM_BUFFER_BYTES / 2u)
/*
 * Nothing from the holder for this long (it sends an event at least every 5 s,
 * KINESIS_SUBSCRIPTION_HEARTBEAT_MS): it is dead or cut off; the caller's stream
 * ends (counted silent). A paused transfer is not held to it (libcurl's speed check).
 */
#define FORWARD_STREAM_SILENCE_S 30u
/* A relayed SubscribeToShard's body: ConsumerARN, ShardId and StartingPosition. */
#define FORWARD_STREAM_REQUEST_SIZE_MAX 4096u

/* A byte ring: the relay's buffer. Pure, unit-tested; the caller serialises. */
struct forward_ring {
	uint8_t *data;
	size_t capacity;
	size_t head;      /* The oldest byte. */
	size_t size;
};

/* Appends all `n` bytes, or none (false) when they do not fit. */
bool forward_ring_put(struct forward_ring *r, const void *data, size_t n);
/* The oldest bytes held in one piece (their count; 0 when empty). */
size_t forward_ring_peek(const struct forward_ring *r, const uint8_t **data);
/* Drops the oldest `n` bytes (n <= size). */
void forward_ring_consume(struct forward_ring *r, size_t n);
size_t forward_ring_free(const struct forward_ring *r);

/* How a relayed subscription's caller stream ended (the metrics' result). */
enum forward_stream_result {
	FORWARD_STREAM_STARTED,   /* The holder answered 200: the caller's stream began. */
	FORWARD_STREAM_HOLDER,    /* The holder ended it (lifetime, its error, deregistered). */
	FORWARD_STREAM_CALLER,    /* The caller left: the holder's transfer was cancelled. */
	FORWARD_STREAM_SILENT,    /* Nothing for FORWARD_STREAM_SILENCE_S. */
	FORWARD_STREAM_FAILED,    /* The holder's connection broke (it died, say). */
	FORWARD_STREAM_RESULTS,
};

struct forward_stream;

/* What the API thread sees of a relayed subscription (forward_stream_look). */
struct forward_stream_state {
	long status;                   /* The holder's HTTP status; 0: none yet. */
	bool finished;                 /* The transfer is over: nothing more comes. */
	enum forward_outcome outcome;  /* When finished (FORWARD_OK: the holder ended it). */
	bool silent;                   /* When finished: by FORWARD_STREAM_SILENCE_S. */
	const uint8_t *data;           /* The oldest relayed bytes, in one piece ... */
	size_t size;                   /* ... and their count (more may follow them). */
};

/*
 * A free relay slot for a SubscribeToShard to the node at `api_addr`, signed as
 * `access_key_id`, its body (forward_stream_body) in `content_type` (JSON or CBOR, as
 * its caller's). NULL when FORWARD_STREAMS_MAX are in use (counted busy). API thread.
 */
struct forward_stream *forward_stream_get(struct forward *f, const char *api_addr,
					  const char *access_key_id, const char *content_type,
					  const char *target, size_t target_size);
/* The request body to fill (capacity FORWARD_STREAM_REQUEST_SIZE_MAX; overflow: too big). */
struct api_out *forward_stream_body(struct forward_stream *st);
/* Opens it on the holder (the forwarder's from now until forward_stream_put). */
void forward_stream_submit(struct forward *f, struct forward_stream *st);
/*
 * A finished relay refused by its holder (no status, FORWARD_REFUSED: nothing was
 * sent) is opened again, its body as it was, on the node at `api_addr`. API thread.
 */
void forward_stream_resubmit(struct forward *f, struct forward_stream *st, const char *api_addr);
/* Its status, end and ready bytes now (the bytes stay valid until consumed). API thread. */
void forward_stream_look(struct forward *f, struct forward_stream *st,
			 struct forward_stream_state *out);
/* The caller took the oldest `n` ready bytes: a paused transfer resumes once half is free. */
void forward_stream_consume(struct forward *f, struct forward_stream *st, size_t n);
/* The API thread is done with it: a transfer still running is cancelled. */
void forward_stream_put(struct forward *f, struct forward_stream *st);
/* Counts a relayed subscription's start or end (sluice_forward_subscriptions_total). */
void forward_stream_count(struct forward *f, enum forward_stream_result result);

/*
 * A leader's PutRecords answer -> results[0 .. count): pure, unit-tested.
 * HTTP 200: each record's ShardId and SequenceNumber, or its ErrorCode
 * (ProvisionedThroughputExceededException -> -EPIPE, any other -> -EIO). Any
 * other status fails every record: -EPIPE for a throttling error type, else
 * -EIO. -EINVAL (every record -EIO) when a 200 is not that shape or has
 * another record count.
 */
int forward_reply_parse(long http_status, const char *body, size_t size,
			struct forward_result *results, uint32_t count);

/*
 * An AWS error answer's __type (after any '#') and message ("message" or "Message";
 * "" when absent) into type[FORWARD_ERROR_TYPE_SIZE] and
 * message[FORWARD_ERROR_MESSAGE_SIZE], cut to fit: pure, unit-tested. -EINVAL when
 * the body is not a JSON object with a string __type.
 */
int forward_error_parse(const char *body, size_t size, char *type, char *message);

/*
 * sluice_forward_requests_total{result}, sluice_forward_records_total{result},
 * sluice_forward_reads_total{action,result} and sluice_forward_subscriptions_total{result}.
 */
void forward_render_metrics(struct forward *f, struct metrics_out *out);

#endif /* SLUICE_CONTROL_FORWARD_H */
