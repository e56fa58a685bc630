/*
 * harness.h - drives kinesis_dispatch() directly over a real log in a temp
 * dir. It is the server's side of control/api.h in miniature: a call owns
 * an api_out (the server's own api_out.c) and records the status and the
 * error type it was answered with.
 */
#ifndef SLUICE_TESTS_KINESIS_HARNESS_H
#define SLUICE_TESTS_KINESIS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "control/api.h"
#include "control/config.h"

struct api_call {
	struct api_out out;
	int status;
	bool replied;
	char type[128];
	char message[4096];
	/* A streaming answer (SubscribeToShard): its messages accumulate in `out`. */
	bool streaming;
	bool stream_ended;
	size_t stream_room;          /* 0: unbounded; else writes past it are refused. */
	api_stream_fn stream_fn;
	void *stream_ctx;
	bool cbor;                   /* api_call_is_cbor(): set before dispatch. */
};

struct harness {
	char dir[256];
	struct sluice_config config;
	struct log *log;
	struct kinesis *k;
	int64_t clock_offset_ms; /* Added to the wall clock of every request. */
	uint64_t fixed_now_ns;   /* When not 0: the wall clock of every request. */
	struct log_io *io;       /* NULL: the real backend. Else the simulated disk, whose
				  * writer the harness steps itself (no writer thread). */
	bool cbor;               /* Calls say they came in CBOR (api_call_is_cbor()). */
	const char *etcd_endpoints; /* Cluster mode (kinesis_open_cluster); NULL: single node. */
	const char *cluster;
};

void harness_open(struct harness *h, uint32_t status_delay_ms);
/* As harness_open(), with the log on `io` (a simulated disk) and no writer thread. */
void harness_open_io(struct harness *h, uint32_t status_delay_ms, struct log_io *io);
/* As harness_open(), in cluster mode on etcd (docs/CLUSTER.md "Stream metadata"). */
void harness_open_cluster(struct harness *h, uint32_t status_delay_ms, const char *etcd_endpoints,
			  const char *cluster);
/* Closes the log and metadata and opens them again (a restart). */
void harness_restart(struct harness *h);
/* harness_restart() in two halves, to change the files in between. */
void harness_stop(struct harness *h);
void harness_start(struct harness *h);
void harness_close(struct harness *h);

/* Dispatches one action and waits (polling) for its reply. Free with harness_call_free. */
struct api_call *harness_call(struct harness *h, const char *action, const char *body);
void harness_call_free(struct api_call *call);
/* The reply body parsed (cJSON_Delete it); asserts it is JSON. */
cJSON *harness_json(const struct api_call *call);

/* Calls and asserts a 400 with `type` (and `message` unless NULL). */
void harness_expect_error(struct harness *h, const char *action, const char *body,
			  const char *type, const char *message);
/* Calls, asserts 200, returns the parsed body (NULL for an empty one). */
cJSON *harness_ok(struct harness *h, const char *action, const char *body);

#endif /* SLUICE_TESTS_KINESIS_HARNESS_H */
