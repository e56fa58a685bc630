/*
 * forward_internal.h - what forward.c (jobs: puts and reads) and forward_stream.c
 * (relayed subscriptions) share: the forwarder, its jobs and streams, and how a
 * request to another node's API is signed and set on an easy handle. Private to
 * those two files.
 */
#ifndef SLUICE_CONTROL_FORWARD_INTERNAL_H
#define SLUICE_CONTROL_FORWARD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <curl/curl.h>

#include "common/sigv4.h"
#include "control/auth_sigv4.h"
#include "control/forward.h"

/* A read's results in the metrics: the outcomes, then these. */
enum { FORWARD_READ_BUSY = FORWARD_OUTCOMES, FORWARD_READ_UNSENT, FORWARD_READ_RESULTS };
/* A record's results in the metrics. */
enum forward_record_result { FORWARD_REC_OK, FORWARD_REC_THROTTLED, FORWARD_REC_FAILED,
			     FORWARD_REC_RESULTS };

/* One request to another node's API: where, as whom, what; the forwarder's handle. */
struct forward_http {
	char url[FORWARD_URL_SIZE];
	char host[FORWARD_URL_SIZE];
	char access_key_id[SIGV4_KEY_ID_SIZE_MAX + 1];
	char target[FORWARD_URL_SIZE];  /* X-Amz-Target. */
	const char *content_type;       /* A literal: JSON, or CBOR for a CBOR caller's stream. */
	struct api_out body;            /* Fixed capacity: never grows, never takes a pool buffer. */
	CURL *easy;
	struct curl_slist *headers;
};

struct forward_job {
	struct forward *f;
	bool in_use;
	uint64_t cookie;
	struct forward_http http;
	uint32_t count;
	uint16_t tags[FORWARD_RECORDS_MAX];
	struct forward_result results[FORWARD_RECORDS_MAX];
	enum forward_outcome outcome;
	/* A read passed through (forward_job_get_read) instead of records. */
	bool read;
	enum forward_read action;
	size_t reply_max;               /* FORWARD_REPLY_SIZE_MAX, or a read's. */
	uint64_t deadline_ns;           /* A read: CLOCK_MONOTONIC end of its tries. */
	bool holder_failed;             /* The last try's holder refused, timed out or broke. */
	long status;                    /* The answer's HTTP status; 0: none. */
	/* The forwarder's, while submitted. */
	char *reply;               /* FORWARD_REPLY_SIZE_MAX */
	size_t reply_size;
	bool reply_overflow;
};

/* Where a relay slot's transfer is (under the forwarder's lock). */
enum forward_stream_phase {
	FORWARD_STREAM_IDLE,       /* Not submitted, or over. */
	FORWARD_STREAM_QUEUED,     /* Submitted: the forwarder starts it at its next pass. */
	FORWARD_STREAM_RUNNING,    /* In the multi handle. */
};

struct forward_stream {
	struct forward *f;
	struct forward_http http;
	/* Under the forwarder's lock: */
	bool held;                 /* The API thread's (forward_stream_get .. _put). */
	enum forward_stream_phase phase;
	bool cancel;               /* The API thread let go while it ran. */
	bool paused;               /* The write callback paused the transfer: the ring was full. */
	bool resume;               /* The API thread freed half the ring: unpause it. */
	bool counted;              /* Its reads_total outcome is counted. */
	struct forward_ring ring;
	struct forward_stream_state state;   /* status, finished, outcome, silent. */
};

struct forward {
	enum config_auth auth;
	struct sigv4_keys keys;    /* The forwarder thread's alone (their signing-key cache). */
	char region[CONFIG_STRING_SIZE];
	struct forward_job jobs[FORWARD_INFLIGHT_MAX];
	struct forward_stream streams[FORWARD_STREAMS_MAX];
	CURLM *multi;
	int doorbell;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	bool stop;                                     /* Under lock. */
	struct forward_job *queued[FORWARD_INFLIGHT_MAX]; /* API -> forwarder, under lock. */
	uint32_t queued_count;
	struct forward_job *done[FORWARD_INFLIGHT_MAX];   /* forwarder -> API, under lock. */
	uint32_t done_count;
	_Atomic uint64_t requests[FORWARD_OUTCOMES];
	_Atomic uint64_t busy;                         /* forward_job_get found none free. */
	_Atomic uint64_t records[FORWARD_REC_RESULTS];
	/* Reads by action: how they ended, then busy and refused unsent (FORWARD_READ_*). */
	_Atomic uint64_t reads[FORWARD_READS][FORWARD_READ_RESULTS];
	_Atomic uint64_t subscriptions[FORWARD_STREAM_RESULTS];
};

/* Sets `h` for the node at `api_addr` as `access_key_id`, with an empty body. */
void forward_http_init(struct forward_http *h, const char *api_addr, const char *access_key_id);
/* The request goes to `api_addr` (its URL and Host), nothing else changed. */
void forward_http_target(struct forward_http *h, const char *api_addr);
/*
 * The request on its easy handle, signed now (X-Amz-Date is now), with the loop guard:
 * URL, headers, body, no signals. The caller adds its write callback and timeouts.
 */
int forward_http_prepare(struct forward *f, struct forward_http *h);
/* Its body buffer (allocated whole: it never grows) and easy handle. At open. */
int forward_http_alloc(struct forward_http *h, size_t body_size);
/* Its handle (out of the multi handle), headers and body. At close. */
void forward_http_free(struct forward *f, struct forward_http *h);
/* A transfer's end -> the outcome the metrics and the callers see. */
enum forward_outcome forward_outcome_of(CURLcode rc);

/* `family{result="results[i]"} counts[i]` for i < n (a family's series by result). */
void forward_render_results(struct metrics_out *out, const char *family,
			    const char *const results[], const _Atomic uint64_t *counts,
			    uint32_t n);

/* forward_stream.c: the forwarder thread's side of relayed subscriptions. */
int forward_streams_alloc(struct forward *f);
void forward_streams_free(struct forward *f);
/* Starts the queued, cancels the let go, resumes the drained. Forwarder thread. */
void forward_streams_service(struct forward *f);
/* A finished transfer of `easy`: true when it was a relay's (handled). Forwarder thread. */
bool forward_stream_done(struct forward *f, CURL *easy, CURLcode rc);
void forward_streams_render_metrics(struct forward *f, struct metrics_out *out);

#endif /* SLUICE_CONTROL_FORWARD_INTERNAL_H */
