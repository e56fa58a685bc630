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
	FORWARD_TIMEOUT,      /* No answer within FORWARD_TIMEOUT_MS: unknown; InternalFailure. */
	FORWARD_FAILED,       /* Any other transport or HTTP error: unknown; InternalFailure. */
	FORWARD_OUTCOMES,
};

/* The reads a node that holds no replica of a shard passes through (the metrics' action). */
enum forward_read {
	FORWARD_READ_ITERATOR,    /* GetShardIterator */
	FORWARD_READ_RECORDS,     /* GetRecords */
	FORWARD_READ_SUBSCRIBE,   /* SubscribeToShard: not passed through yet, refused (counted). */
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
/* A read refused unsent (no holder's address known; SubscribeToShard not passed yet). */
void forward_read_refused(struct forward *f, enum forward_read action);
/* Gives a job back (submitted or not). API thread. */
void forward_job_put(struct forward *f, struct forward_job *job);

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
 * sluice_forward_requests_total{result}, sluice_forward_records_total{result} and
 * sluice_forward_reads_total{action,result}.
 */
void forward_render_metrics(struct forward *f, struct metrics_out *out);

#endif /* SLUICE_CONTROL_FORWARD_H */
