/*
 * cmd_bench_ingest.c - `sluice bench ingest STREAM`: an open-loop load
 * generator.
 *
 * Open loop: frame k is due at start + k * interval whatever happened to
 * the frames before it. A frame waits in the backlog until a connection is
 * free, and its records' latency runs from the time it was due, not from
 * when it was sent: a stalled server shows up as latency instead of
 * silently lowering the offered rate (no coordinated omission). The backlog
 * is a count, not a queue: frame k's due time is computed from k.
 *
 * One thread drives every connection through epoll. Over http a frame is
 * one PutRecords request of --records-per-frame records, one in flight per
 * keep-alive connection; the 200 answer means the records are durable and
 * its FailedRecordCount says how many were not stored.
 *
 * Over udp and tcp, libsluice (tools/producer/) carries the records: each
 * record's tag is its frame's due time, so the completion callback measures
 * the same latency; a full lane is back-pressure and keeps the frame in the
 * backlog. --records-per-frame bounds the library's batches.
 *
 * Over dpdk (--device memif|af_xdp) the load comes from sluice-dp-gen, a DPDK
 * process of its own (tools/ includes no DPDK header): it builds frames in
 * mbufs, sends open loop on the same schedule and measures from the same due
 * times; this command runs it, reads its counts and latency histogram, and
 * prints the same summary (no live progress line).
 *
 * Latencies go to log-bucketed histograms (cli_hist.h): one for the run,
 * one per progress interval for the live line.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/hashkey.h"
#include "common/limits.h"
#include "tools/cli_common.h"
#include "tools/cli_frames.h"
#include "tools/cli_hist.h"
#include "tools/cli_progress.h"
#include "tools/cmd.h"

#define BENCH_CONNECTIONS_MAX 1024
#define BENCH_BODIES 64                          /* Distinct request bodies, cycled, */
#define BENCH_BODIES_SIZE_MAX (64u << 20)        /* unless they would take more than this. */
#define BENCH_PUT_RECORDS_SIZE_MAX (5u << 20)    /* Data and keys of one PutRecords. */
#define BENCH_RECORDS_PER_FRAME_MAX 500          /* PutRecords' limit. */
#define BENCH_RECONNECT_NS 100000000ull          /* After a failed connection. */
#define BENCH_KEY_SIZE 12
#define BENCH_PIPELINE_MAX 64                    /* HTTP requests in flight per connection. */
#define BENCH_INDEX_SIZE 24                      /* "rec-" and 20 digits. */
#define BENCH_DPDK_TARGET_DEFAULT "198.18.0.1:4570"  /* [dataplane] ipv4, ingest_port. */
/*
 * sluice-dp-gen's memif rings (the client sets their size): 8,192 slots hold ~200 ms
 * of ACKs at 40,000 frames/s while the generator waits for a CPU (1,024 lost them).
 */
#define BENCH_MEMIF_LOG2_RING 13
#define BENCH_SHARD_MAP_ARG_SIZE 8192            /* sluice-dp-gen's 64 shards, 84 B each. */

static const char bench_synopsis[] =
	"sluice bench ingest STREAM [--transport http|udp|tcp|dpdk] [--rate N] [--size B]\n"
	"       [--records-per-frame N] [--keys uniform|zipf] [--key-count N]\n"
	"       [--connections N] [--pipeline N] [--producers N] [--duration D] [--json]\n"
	"       [--device memif|af_xdp --socket PATH|--iface NAME] [--grouped]\n"
	"sluice bench ingest --compare [--short] [--duration D]   (root)";

/*
 * One keep-alive connection with up to --pipeline requests in flight: the
 * answers come back in request order, so the due times are a FIFO.
 */
struct bench_conn {
	int fd;                 /* -1: closed. */
	struct ssl_st *tls;     /* https: set up before the socket turns nonblocking. */
	bool connected;
	uint32_t inflight;      /* Frames queued or sent, not answered yet. */
	uint32_t head;          /* due_ns[head]: the oldest of them. */
	uint64_t due_ns[BENCH_PIPELINE_MAX];
	uint64_t retry_ns;      /* Closed after a failure: not before this. */
	char *out;              /* Request bytes not written yet: out[out_sent .. out_size). */
	size_t out_size;
	size_t out_sent;
	size_t out_capacity;
	char *rx;
	size_t rx_size;
	size_t rx_capacity;
};

/*
 * The fields of sluice-dp-gen's "dp-gen:" line past the counts (dataplane/dp_gen.c says
 * what each means), passed on as the JSON object "generator".
 */
static const char *const bench_gen_fields[] = {
	"records_acked_in_run", "lat_first_ns", "lat_last_ns", "rx_missed", "rx_nombuf",
	"tx_errors", "sent_p50_ns", "sent_p99_ns",
};
#define BENCH_GEN_FIELD_COUNT 8

struct bench_counts {
	uint64_t frames_sent;
	uint64_t records_sent;
	uint64_t records_acked;
	uint64_t records_failed;   /* Refused by the answer, or lost with their connection. */
	uint64_t frames_failed;
};

struct bench {
	struct kc_client client;
	const char *stream;
	const char *transport;
	const char *target;        /* udp/tcp: the ingest address. */
	const char *keys;
	uint64_t rate;             /* Records per second. */
	uint64_t size;
	uint64_t records_per_frame;
	uint64_t key_count;
	double zipf_s;
	uint64_t connection_count;
	uint64_t pipeline;         /* http: requests in flight per connection. */
	uint64_t duration_ns;
	uint64_t drain_ns;
	bool json;
	bool grouped;              /* --grouped: ListShards, then SHARD_RECORDS frames. */
	bool compare;              /* --compare: every path side by side (sluice-bench-compare). */
	bool compare_short;        /* --short: each path briefly, behaviour only. */
	const char *data_kind;     /* "random", or "index": "rec-<record number>" then padding. */
	const char *device;        /* dpdk: memif or af_xdp. */
	const char *socket_path;   /* dpdk memif: sluiced's memif socket. */
	const char *iface;         /* dpdk af_xdp: the producers' interface. */
	/* Run state. */
	int epoll_fd;
	struct bench_conn *conns;
	char *bodies[BENCH_BODIES];    /* http: whole PutRecords bodies. */
	char *data[BENCH_BODIES];      /* udp/tcp: record data, cycled. */
	uint64_t frame_records_put;    /* udp/tcp: records of the next frame already put. */
	bool closing;                  /* udp/tcp: cancellations at close are not results. */
	struct sluice_producer **producers; /* udp/tcp: --producers of them. */
	size_t body_sizes[BENCH_BODIES];
	size_t body_count;             /* Bodies (http) or data buffers (udp/tcp) in use. */
	double *zipf_cdf;
	uint64_t rng;
	uint64_t start_ns;
	uint64_t interval_ns;      /* Between frames. */
	uint64_t frames_due;       /* Frames whose time has come (sent or in the backlog). */
	uint64_t frames_total;     /* Frames in the whole run. */
	struct bench_counts counts;
	uint64_t gen[BENCH_GEN_FIELD_COUNT]; /* --transport dpdk: sluice-dp-gen's extra fields. */
	bool gen_seen;
	struct cli_hist run;
	struct cli_hist window;    /* Since the last progress line. */
	uint64_t window_acked;
	struct cli_progress progress;
};

/* ---- Keys and request bodies ------------------------------------------------------- */

/* Zipf over key ranks 1..N with exponent s: the CDF, searched per key. */
static int
bench_zipf_init(struct bench *b)
{
	double total = 0.0;

	b->zipf_cdf = malloc(b->key_count * sizeof(*b->zipf_cdf));
	if (b->zipf_cdf == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < b->key_count; i++) {
		total += 1.0 / pow((double)(i + 1), b->zipf_s);
		b->zipf_cdf[i] = total;
	}
	for (uint64_t i = 0; i < b->key_count; i++)
		b->zipf_cdf[i] /= total;
	return 0;
}

static uint64_t
bench_key_index(struct bench *b)
{
	double u;
	uint64_t low = 0;
	uint64_t high;

	if (b->zipf_cdf == NULL)
		return cli_random_next(&b->rng) % b->key_count;
	u = (double)(cli_random_next(&b->rng) >> 11) / 9007199254740992.0;  /* [0, 1) */
	high = b->key_count - 1;
	while (low < high) {
		uint64_t mid = low + (high - low) / 2;

		if (b->zipf_cdf[mid] <= u)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

/* One PutRecords body of records_per_frame records: random data, keys from the distribution. */
static int
bench_body_build(struct bench *b, char **body_out, size_t *size_out)
{
	char *data = malloc(b->size);
	char *encoded = NULL;
	size_t encoded_size = 0;
	size_t capacity;
	size_t size;
	char *body;

	if (data == NULL)
		return -ENOMEM;
	capacity = 64 + strlen(b->stream) + b->records_per_frame * (64 + 4 * b->size / 3 + 4);
	body = malloc(capacity);
	if (body == NULL) {
		free(data);
		return -ENOMEM;
	}
	size = (size_t)snprintf(body, capacity, "{\"StreamName\":\"%s\",\"Records\":[", b->stream);
	for (uint64_t i = 0; i < b->records_per_frame; i++) {
		cli_random_text(&b->rng, data, b->size);
		if (kc_base64_encode(data, b->size, &encoded, &encoded_size) != 0) {
			free(data);
			free(body);
			return -ENOMEM;
		}
		size += (size_t)snprintf(body + size, capacity - size,
					 "%s{\"Data\":\"%s\",\"PartitionKey\":\"key-%08llu\"}",
					 i == 0 ? "" : ",", encoded,
					 (unsigned long long)bench_key_index(b));
		free(encoded);
		encoded = NULL;
	}
	size += (size_t)snprintf(body + size, capacity - size, "]}");
	free(data);
	assert(size < capacity);
	*body_out = body;
	*size_out = size;
	return 0;
}

/* ---- Connections ------------------------------------------------------------------- */

static void
bench_conn_watch(struct bench *b, struct bench_conn *conn, uint32_t events, int op)
{
	struct epoll_event event = { .events = events, .data.ptr = conn };

	epoll_ctl(b->epoll_fd, op, conn->fd, &event);
}

/* Closes the connection; frames in flight are lost and their records count as failed. */
static void
bench_conn_fail(struct bench *b, struct bench_conn *conn, uint64_t now_ns)
{
	b->counts.records_failed += conn->inflight * b->records_per_frame;
	b->counts.frames_failed += conn->inflight;
	kc_tls_close(conn->tls);
	conn->tls = NULL;
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	conn->connected = false;
	conn->rx_size = 0;
	conn->out_size = 0;
	conn->out_sent = 0;
	/* A server that closes idle connections is normal; one that drops frames is not. */
	conn->retry_ns = now_ns + (conn->inflight > 0 ? BENCH_RECONNECT_NS : 0);
	conn->inflight = 0;
	conn->head = 0;
}

/* https: a blocking connect and handshake, then the socket turns nonblocking. */
static int
bench_conn_open_tls(struct bench *b, struct bench_conn *conn)
{
	char why[256];
	int fd = kc_connect(&b->client, false);

	if (fd < 0)
		return fd;
	if (kc_tls_start(&b->client, fd, &conn->tls, why, sizeof(why)) != 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		kc_tls_close(conn->tls);
		conn->tls = NULL;
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static void
bench_conn_open(struct bench *b, struct bench_conn *conn, uint64_t now_ns)
{
	int fd = b->client.tls_enabled ? bench_conn_open_tls(b, conn) :
		 kc_connect(&b->client, true);

	if (fd < 0) {
		conn->retry_ns = now_ns + BENCH_RECONNECT_NS;
		return;
	}
	conn->fd = fd;
	conn->connected = b->client.tls_enabled;
	bench_conn_watch(b, conn, conn->connected ? EPOLLIN : EPOLLOUT | EPOLLIN, EPOLL_CTL_ADD);
}

/* Writes what the socket takes; watches for writability until the request is out. */
static void
bench_conn_send(struct bench *b, struct bench_conn *conn, uint64_t now_ns)
{
	while (conn->out_sent < conn->out_size) {
		ssize_t sent = kc_io_send(conn->fd, conn->tls, conn->out + conn->out_sent,
					  conn->out_size - conn->out_sent);

		if (sent == -EINTR)
			continue;
		if (sent == -EAGAIN) {
			bench_conn_watch(b, conn, EPOLLOUT | EPOLLIN, EPOLL_CTL_MOD);
			return;
		}
		if (sent < 0) {
			bench_conn_fail(b, conn, now_ns);
			return;
		}
		conn->out_sent += (size_t)sent;
	}
	conn->out_size = 0;
	conn->out_sent = 0;
	bench_conn_watch(b, conn, EPOLLIN, EPOLL_CTL_MOD);
}

/* "FailedRecordCount":N in a PutRecords answer; all records when it is missing. */
static uint64_t
bench_failed_count(const struct bench *b, const char *body, size_t size)
{
	static const char field[] = "\"FailedRecordCount\":";
	const char *at = memmem(body, size, field, sizeof(field) - 1);
	uint64_t failed = 0;

	if (at == NULL)
		return b->records_per_frame;
	for (at += sizeof(field) - 1; at < body + size && *at == ' '; at++)
		;
	for (; at < body + size && *at >= '0' && *at <= '9'; at++)
		failed = failed * 10 + (uint64_t)(*at - '0');
	return failed < b->records_per_frame ? failed : b->records_per_frame;
}

static void
bench_conn_answer(struct bench *b, struct bench_conn *conn, const struct kc_http_response *resp,
		  uint64_t now_ns)
{
	uint64_t failed = b->records_per_frame;
	uint64_t acked;
	uint64_t due_ns;
	size_t size;

	if (resp->status == 200)
		failed = bench_failed_count(b, conn->rx + resp->header_size, resp->body_size);
	acked = b->records_per_frame - failed;
	b->counts.records_acked += acked;
	b->counts.records_failed += failed;
	if (acked == 0)
		b->counts.frames_failed++;
	/* From the time the frame was due: waiting for a connection is part of the latency. */
	due_ns = conn->due_ns[conn->head];
	cli_hist_record_count(&b->run, now_ns - due_ns, acked);
	cli_hist_record_count(&b->window, now_ns - due_ns, acked);
	b->window_acked += acked;
	conn->head = (conn->head + 1) % BENCH_PIPELINE_MAX;
	conn->inflight--;
	/* Pipelined answers may follow in the same bytes. */
	size = resp->header_size + resp->body_size;
	memmove(conn->rx, conn->rx + size, conn->rx_size - size);
	conn->rx_size -= size;
	if (resp->connection_close)
		bench_conn_fail(b, conn, now_ns);
}

static void
bench_conn_receive(struct bench *b, struct bench_conn *conn, uint64_t now_ns)
{
	for (;;) {
		struct kc_http_response response;
		ssize_t got;
		int err = 0;

		if (conn->rx_size == conn->rx_capacity) {
			size_t capacity = conn->rx_capacity == 0 ? 16384 : 2 * conn->rx_capacity;
			char *rx = capacity <= KC_HTTP_HEADER_SIZE_MAX + KC_HTTP_BODY_SIZE_MAX ?
				   realloc(conn->rx, capacity) : NULL;

			if (rx == NULL) {
				bench_conn_fail(b, conn, now_ns);
				return;
			}
			conn->rx = rx;
			conn->rx_capacity = capacity;
		}
		got = kc_io_recv(conn->fd, conn->tls, conn->rx + conn->rx_size,
				 conn->rx_capacity - conn->rx_size);
		if (got == -EINTR)
			continue;
		if (got == -EAGAIN)
			return;
		if (got <= 0 || conn->inflight == 0) {  /* Closed, failed, or unasked for. */
			bench_conn_fail(b, conn, now_ns);
			return;
		}
		conn->rx_size += (size_t)got;
		while (conn->inflight > 0 &&
		       (err = kc_http_response_parse(conn->rx, conn->rx_size, &response)) == 0) {
			bench_conn_answer(b, conn, &response, now_ns);
			if (conn->fd < 0)
				return;
		}
		if (conn->inflight > 0 && err != -EAGAIN) {
			bench_conn_fail(b, conn, now_ns);
			return;
		}
	}
}

static void
bench_conn_event(struct bench *b, struct bench_conn *conn, uint32_t events, uint64_t now_ns)
{
	if (!conn->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
		int error = 0;
		socklen_t size = sizeof(error);

		getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &error, &size);
		if (error != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
			bench_conn_fail(b, conn, now_ns);
			conn->retry_ns = now_ns + BENCH_RECONNECT_NS;
			return;
		}
		conn->connected = true;
		bench_conn_watch(b, conn, EPOLLIN, EPOLL_CTL_MOD);
	}
	if ((events & EPOLLOUT) != 0 && conn->out_sent < conn->out_size)
		bench_conn_send(b, conn, now_ns);
	if (conn->fd >= 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
		bench_conn_receive(b, conn, now_ns);
}

/* ---- Schedule ---------------------------------------------------------------------- */

static uint64_t
bench_due_ns(const struct bench *b, uint64_t frame)
{
	return b->start_ns + frame * b->interval_ns;
}

/* Appends frame `frame`'s request to the connection's unwritten bytes. */
static int
bench_conn_queue(struct bench *b, struct bench_conn *conn, uint64_t frame)
{
	char *request;
	size_t size;
	int err = kc_request_build(&b->client, "PutRecords", b->bodies[frame % b->body_count],
				   b->body_sizes[frame % b->body_count], clock_real_ns(),
				   &request, &size);

	if (err != 0)
		return err;
	if (conn->out_size + size > conn->out_capacity) {
		size_t capacity = 2 * (conn->out_size + size);
		char *out = realloc(conn->out, capacity);

		if (out == NULL) {
			free(request);
			return -ENOMEM;
		}
		conn->out = out;
		conn->out_capacity = capacity;
	}
	memcpy(conn->out + conn->out_size, request, size);
	conn->out_size += size;
	free(request);
	conn->due_ns[(conn->head + conn->inflight) % BENCH_PIPELINE_MAX] = bench_due_ns(b, frame);
	conn->inflight++;
	b->counts.frames_sent++;
	b->counts.records_sent += b->records_per_frame;
	return 0;
}

/*
 * Hands backlogged frames to connections, oldest first, level by level:
 * every connection gets its first in-flight frame before any gets a second.
 */
static int
bench_dispatch(struct bench *b, uint64_t now_ns)
{
	for (uint32_t depth = 0; depth < b->pipeline; depth++) {
		for (uint64_t i = 0; i < b->connection_count; i++) {
			struct bench_conn *conn = &b->conns[i];
			int err;

			if (b->counts.frames_sent == b->frames_due)
				goto out_send;
			if (conn->inflight != depth || conn->retry_ns > now_ns)
				continue;
			if (conn->fd < 0)
				bench_conn_open(b, conn, now_ns);
			if (conn->fd < 0)
				continue;
			err = bench_conn_queue(b, conn, b->counts.frames_sent);
			if (err != 0)
				return err;
		}
	}
out_send:
	for (uint64_t i = 0; i < b->connection_count; i++) {
		struct bench_conn *conn = &b->conns[i];

		if (conn->connected && conn->out_sent < conn->out_size)
			bench_conn_send(b, conn, now_ns);
	}
	return 0;
}

static bool
bench_idle(const struct bench *b)
{
	for (uint64_t i = 0; i < b->connection_count; i++) {
		if (b->conns[i].inflight > 0)
			return false;
	}
	return b->counts.frames_sent == b->frames_total;
}

static void
bench_progress(struct bench *b, uint64_t now_ns)
{
	char line[256];
	char p50[16];
	char p99[16];
	double elapsed_s = (double)(now_ns - b->start_ns) / 1e9;

	if (!cli_progress_due(&b->progress, now_ns))
		return;
	cli_format_ns(p50, sizeof(p50), (double)cli_hist_percentile(&b->window, 50.0));
	cli_format_ns(p99, sizeof(p99), (double)cli_hist_percentile(&b->window, 99.0));
	snprintf(line, sizeof(line),
		 "%6.1f s  rate %8.0f rec/s  acked %10llu  errors %llu  backlog %llu  "
		 "p50 %s  p99 %s", elapsed_s,
		 (double)b->window_acked * 1e9 / (double)CLI_PROGRESS_INTERVAL_NS,
		 (unsigned long long)b->counts.records_acked,
		 (unsigned long long)b->counts.records_failed,
		 (unsigned long long)(b->frames_due - b->counts.frames_sent), p50, p99);
	cli_progress_draw(&b->progress, line);
	cli_hist_reset(&b->window);
	b->window_acked = 0;
}

/* How long epoll may sleep: until the next frame is due, capped at 10 ms. */
static struct timespec
bench_wait(const struct bench *b, uint64_t now_ns)
{
	uint64_t wait_ns = 10000000;
	struct timespec wait;

	if (b->frames_due < b->frames_total) {
		uint64_t next_ns = bench_due_ns(b, b->frames_due);

		if (next_ns <= now_ns)
			wait_ns = 0;
		else if (next_ns - now_ns < wait_ns)
			wait_ns = next_ns - now_ns;
	}
	wait.tv_sec = (time_t)(wait_ns / 1000000000u);
	wait.tv_nsec = (long)(wait_ns % 1000000000u);
	return wait;
}

/* Ctrl-C ends the run early but still prints the summary; a second one kills. */
static volatile sig_atomic_t bench_interrupted;

static void
bench_on_interrupt(int signal_number)
{
	(void)signal_number;
	bench_interrupted = 1;
}

/* After Ctrl-C: no frame is due any more; what is in flight is left unanswered. */
static bool
bench_stop_requested(struct bench *b)
{
	if (!bench_interrupted)
		return false;
	b->frames_total = b->frames_due;
	return true;
}

static int
bench_loop(struct bench *b)
{
	uint64_t stop_ns = b->start_ns + b->duration_ns + b->drain_ns;
	struct epoll_event events[64];

	for (;;) {
		uint64_t now_ns = clock_mono_ns();
		struct timespec wait;
		int count;
		int err;

		if (now_ns >= b->start_ns) {
			uint64_t due = (now_ns - b->start_ns) / b->interval_ns + 1;

			b->frames_due = due < b->frames_total ? due : b->frames_total;
		}
		err = bench_dispatch(b, now_ns);
		if (err != 0)
			return err;
		if (bench_idle(b) || now_ns >= stop_ns || bench_stop_requested(b))
			return 0;
		bench_progress(b, now_ns);
		wait = bench_wait(b, now_ns);
		count = epoll_pwait2(b->epoll_fd, events, (int)ARRAY_SIZE(events), &wait, NULL);
		if (count < 0 && errno != EINTR)
			return -errno;
		now_ns = clock_mono_ns();
		for (int i = 0; i < count; i++)
			bench_conn_event(b, events[i].data.ptr, events[i].events, now_ns);
	}
}

static uint64_t
bench_unanswered(const struct bench *b)
{
	uint64_t unanswered = 0;

	for (uint64_t i = 0; i < b->connection_count; i++)
		unanswered += b->conns[i].inflight * b->records_per_frame;
	return unanswered;
}

/* ---- Report ------------------------------------------------------------------------ */

struct bench_result {
	double elapsed_s;
	uint64_t unsent;          /* Due but never sent: the backlog when the run stopped. */
	uint64_t unanswered;      /* Records sent without an answer by the end of the drain. */
};

static const double bench_percentiles[] = { 50.0, 90.0, 99.0, 99.9, 100.0 };
static const char *const bench_percentile_names[] = { "p50", "p90", "p99", "p999", "max" };

static void
bench_print_text(const struct bench *b, const struct bench_result *r)
{
	double rate = (double)b->counts.records_acked / r->elapsed_s;

	if (strcmp(b->transport, "http") == 0)
		printf("bench ingest: %s to %s, %llu connection(s), %.1f s\n",
		       b->client.tls_enabled ? "https" : "http", b->stream,
		       (unsigned long long)b->connection_count, r->elapsed_s);
	else if (strcmp(b->transport, "dpdk") == 0)
		printf("bench ingest: dpdk (%s) to %s, 1 sluice-dp-gen, %.1f s\n", b->device,
		       b->stream, r->elapsed_s);
	else
		printf("bench ingest: %s to %s, %llu libsluice producer(s), %.1f s\n",
		       b->transport, b->stream, (unsigned long long)b->connection_count,
		       r->elapsed_s);
	printf("  offered     %llu records/s, %llu B each, %llu per frame, %s keys over %llu\n",
	       (unsigned long long)b->rate, (unsigned long long)b->size,
	       (unsigned long long)b->records_per_frame, b->keys,
	       (unsigned long long)b->key_count);
	printf("  sent        %llu records in %llu frames\n",
	       (unsigned long long)b->counts.records_sent,
	       (unsigned long long)b->counts.frames_sent);
	printf("  acked       %llu records (%.0f records/s, %.2f MB/s)\n",
	       (unsigned long long)b->counts.records_acked, rate, rate * (double)b->size / 1e6);
	printf("  errors      %llu records failed, %llu frames unsent, %llu records unanswered\n",
	       (unsigned long long)b->counts.records_failed, (unsigned long long)r->unsent,
	       (unsigned long long)r->unanswered);
	printf("  latency    ");
	for (size_t i = 0; i < ARRAY_SIZE(bench_percentiles); i++) {
		char value[16];

		cli_format_ns(value, sizeof(value),
			      (double)cli_hist_percentile(&b->run, bench_percentiles[i]));
		printf("%s %s %s", i == 0 ? "" : ",", bench_percentile_names[i], value);
	}
	printf("  (from the scheduled send time)\n");
}

static void
bench_print_json(const struct bench *b, const struct bench_result *r)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *latency;
	char *text;

	cJSON_AddStringToObject(root, "transport", b->client.tls_enabled ? "https" : b->transport);
	cJSON_AddStringToObject(root, "stream", b->stream);
	cJSON_AddNumberToObject(root, "connections", (double)b->connection_count);
	cJSON_AddNumberToObject(root, "pipeline", (double)b->pipeline);
	cJSON_AddNumberToObject(root, "rate_target", (double)b->rate);
	cJSON_AddNumberToObject(root, "record_size", (double)b->size);
	cJSON_AddNumberToObject(root, "records_per_frame", (double)b->records_per_frame);
	cJSON_AddStringToObject(root, "keys", b->keys);
	cJSON_AddNumberToObject(root, "elapsed_s", r->elapsed_s);
	cJSON_AddNumberToObject(root, "frames_sent", (double)b->counts.frames_sent);
	cJSON_AddNumberToObject(root, "records_sent", (double)b->counts.records_sent);
	cJSON_AddNumberToObject(root, "records_acked", (double)b->counts.records_acked);
	cJSON_AddNumberToObject(root, "records_failed", (double)b->counts.records_failed);
	cJSON_AddNumberToObject(root, "frames_unsent", (double)r->unsent);
	cJSON_AddNumberToObject(root, "records_unanswered", (double)r->unanswered);
	cJSON_AddNumberToObject(root, "records_per_s",
				(double)b->counts.records_acked / r->elapsed_s);
	latency = cJSON_AddObjectToObject(root, "latency_us");
	for (size_t i = 0; i < ARRAY_SIZE(bench_percentiles); i++)
		cJSON_AddNumberToObject(latency, bench_percentile_names[i],
					(double)cli_hist_percentile(&b->run, bench_percentiles[i]) /
					1e3);
	cJSON_AddNumberToObject(latency, "mean", cli_hist_mean(&b->run) / 1e3);
	if (b->gen_seen) {
		cJSON *gen = cJSON_AddObjectToObject(root, "generator");

		for (size_t i = 0; i < BENCH_GEN_FIELD_COUNT; i++)
			cJSON_AddNumberToObject(gen, bench_gen_fields[i], (double)b->gen[i]);
	}
	text = cJSON_PrintUnformatted(root);
	printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

static int
bench_report(struct bench *b, uint64_t end_ns, uint64_t unanswered)
{
	struct bench_result r = {
		.elapsed_s = (double)(end_ns - b->start_ns) / 1e9,
		.unsent = b->frames_total - b->counts.frames_sent,
		.unanswered = unanswered,
	};
	cli_progress_end(&b->progress);
	if (b->json)
		bench_print_json(b, &r);
	else
		bench_print_text(b, &r);
	if (b->counts.records_acked == 0)
		return CMD_EXIT_ERROR;
	return b->counts.records_failed == 0 && r.unsent == 0 && r.unanswered == 0 ?
	       CMD_EXIT_OK : CMD_EXIT_PARTIAL;
}

/* ---- udp / tcp through libsluice --------------------------------------------------- */

static void
bench_frames_complete(void *user, const struct sluice_result *result)
{
	struct bench *b = user;
	uint64_t now_ns = clock_mono_ns();

	if (result->err != 0) {
		if (!b->closing)
			b->counts.records_failed++;
		return;
	}
	b->counts.records_acked++;
	cli_hist_record(&b->run, now_ns - result->tag);
	cli_hist_record(&b->window, now_ns - result->tag);
	b->window_acked++;
}

/* Puts the rest of the next due frame; -EAGAIN when a lane is full (it stays due). */
static int
bench_frames_put(struct bench *b, struct sluice_producer *producer)
{
	uint64_t frame = b->counts.frames_sent;
	uint64_t due_ns = bench_due_ns(b, frame);

	while (b->frame_records_put < b->records_per_frame) {
		char key[24];
		char *data = b->data[(frame + b->frame_records_put) % b->body_count];
		uint32_t data_size = (uint32_t)b->size;
		int size = snprintf(key, sizeof(key), "key-%08llu",
				    (unsigned long long)bench_key_index(b));
		int err;

		/* Index data lets a receiver check every record arrived once. */
		if (strcmp(b->data_kind, "index") == 0) {
			int index_size = snprintf(data, BENCH_INDEX_SIZE, "rec-%llu",
						  (unsigned long long)b->counts.records_sent);

			data[index_size] = ' ';
			if ((uint32_t)index_size + 1 > data_size)
				data_size = (uint32_t)index_size + 1;
		}
		err = sluice_producer_put(producer, key, (uint16_t)size, data, data_size, NULL,
					  due_ns);

		if (err == -EAGAIN)
			return err;
		if (err != 0)
			b->counts.records_failed++;  /* Refused unsent (too large, fenced). */
		b->frame_records_put++;
		b->counts.records_sent++;
	}
	b->frame_records_put = 0;
	b->counts.frames_sent++;
	return 0;
}

/* How long to wait: until the next frame is due (ms, rounded up), at most 10 ms. */
static int
bench_frames_wait_ms(const struct bench *b, uint64_t now_ns, bool lanes_full)
{
	struct timespec wait = bench_wait(b, now_ns);
	uint64_t wait_ns = (uint64_t)wait.tv_sec * 1000000000u + (uint64_t)wait.tv_nsec;

	if (lanes_full || b->counts.frames_sent < b->frames_due)
		return 1;
	return (int)((wait_ns + 999999) / 1000000);
}

/* Sleeps on every producer's socket and timer, then lets each one do its due work. */
static int
bench_frames_wait(struct bench *b, int wait_ms)
{
	struct pollfd fds[BENCH_CONNECTIONS_MAX];
	uint64_t count = b->connection_count;

	for (uint64_t i = 0; i < count; i++) {
		int timer_ms = sluice_producer_timeout_ms(b->producers[i]);
		bool writes = sluice_producer_wants_write(b->producers[i]);

		fds[i].fd = sluice_producer_fd(b->producers[i]);
		fds[i].events = (short)(POLLIN | (writes ? POLLOUT : 0));
		if (timer_ms >= 0 && timer_ms < wait_ms)
			wait_ms = timer_ms;
	}
	if (poll(fds, count, wait_ms) < 0 && errno != EINTR)
		return -errno;
	for (uint64_t i = 0; i < count; i++) {
		/*
		 * poll(p, 0) drops the readiness we saw, and a TCP connect completes only
		 * on its POLLOUT: a ready producer polls its (ready) socket once itself.
		 */
		int err = sluice_producer_poll(b->producers[i], fds[i].revents != 0 ? 1 : 0);

		if (err < 0 && err != -EINTR)
			return err;
	}
	return 0;
}

static uint64_t
bench_frames_outstanding(const struct bench *b)
{
	uint64_t outstanding = 0;

	for (uint64_t i = 0; i < b->connection_count; i++) {
		struct sluice_producer_stats stats;

		sluice_producer_stats(b->producers[i], &stats);
		outstanding += stats.records_outstanding;
	}
	return outstanding;
}

/* Frame k goes to producer k mod --producers; a full one holds the schedule back. */
static int
bench_frames_loop(struct bench *b)
{
	uint64_t stop_ns = b->start_ns + b->duration_ns + b->drain_ns;

	for (;;) {
		uint64_t now_ns = clock_mono_ns();
		int err = 0;

		if (now_ns >= b->start_ns) {
			uint64_t due = (now_ns - b->start_ns) / b->interval_ns + 1;

			b->frames_due = due < b->frames_total ? due : b->frames_total;
		}
		while (err == 0 && b->counts.frames_sent < b->frames_due)
			err = bench_frames_put(b, b->producers[b->counts.frames_sent %
							       b->connection_count]);
		if ((b->counts.frames_sent == b->frames_total &&
		     bench_frames_outstanding(b) == 0) ||
		    now_ns >= stop_ns || bench_stop_requested(b))
			return 0;
		bench_progress(b, now_ns);
		err = bench_frames_wait(b, bench_frames_wait_ms(b, now_ns, err == -EAGAIN));
		if (err != 0)
			return err;
	}
}

static int
bench_frames(struct bench *b, uint64_t *unanswered_out)
{
	struct cli_frames_options options = {
		.transport = b->transport, .target = b->target, .stream = b->stream,
		.records_per_batch = (uint32_t)b->records_per_frame, .linger_us = 1000,
		.on_complete = bench_frames_complete, .user = b,
	};
	int err = 0;

	b->producers = calloc(b->connection_count, sizeof(*b->producers));
	if (b->producers == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < b->connection_count; i++) {
		int code = cli_frames_open("bench ingest", &options, &b->producers[i]);

		if (code != 0) {
			err = code == CMD_EXIT_USAGE ? -EINVAL : -EHOSTUNREACH;
			goto out_close;
		}
		err = b->grouped ? cli_frames_shard_map(b->producers[i], &b->client, b->stream) : 0;
		if (err != 0)
			goto out_close;
	}
	b->start_ns = clock_mono_ns();
	cli_progress_init(&b->progress, stderr, b->start_ns);
	err = bench_frames_loop(b);
	*unanswered_out = bench_frames_outstanding(b);
out_close:
	b->closing = true;
	for (uint64_t i = 0; i < b->connection_count && b->producers[i] != NULL; i++)
		sluice_producer_close(b->producers[i]);
	free(b->producers);
	b->producers = NULL;
	return err;
}

/* ---- dpdk through sluice-dp-gen ---------------------------------------------------- */

/* The "dp-gen:" line's NAME=N fields of bench_gen_fields (0 when one is missing). */
static void
bench_dpdk_gen_fields(struct bench *b, const char *line)
{
	_Static_assert(ARRAY_SIZE(bench_gen_fields) == BENCH_GEN_FIELD_COUNT, "one name a field");
	for (size_t i = 0; i < BENCH_GEN_FIELD_COUNT; i++) {
		char key[48];
		const char *at;

		snprintf(key, sizeof(key), " %s=", bench_gen_fields[i]);
		at = strstr(line, key);
		b->gen[i] = at != NULL ? strtoull(at + strlen(key), NULL, 10) : 0;
	}
	b->gen_seen = true;
}

/* One "dp-gen:" or "dp-gen-latency:" line into the run; other lines are passed on. */
static void
bench_dpdk_line(struct bench *b, char *line, uint64_t *unanswered, uint64_t *elapsed_ns)
{
	unsigned long long sent, records, acked, failed, unsent, lost, elapsed;
	char *save = NULL;

	if (sscanf(line, "dp-gen: frames_sent=%llu records_sent=%llu records_acked=%llu "
		   "records_failed=%llu frames_unsent=%llu records_unanswered=%llu elapsed_ns=%llu",
		   &sent, &records, &acked, &failed, &unsent, &lost, &elapsed) == 7) {
		b->counts.frames_sent = sent;
		b->counts.records_sent = records;
		b->counts.records_acked = acked;
		b->counts.records_failed = failed;
		b->frames_total = sent + unsent;
		*unanswered = lost;
		*elapsed_ns = elapsed;
		bench_dpdk_gen_fields(b, line);
		return;
	}
	if (strncmp(line, "dp-gen-latency:", 15) != 0) {
		fprintf(stderr, "%s\n", line);
		return;
	}
	for (char *pair = strtok_r(line + 15, " ", &save); pair != NULL;
	     pair = strtok_r(NULL, " ", &save)) {
		unsigned long long value, count;

		if (sscanf(pair, "%llu:%llu", &value, &count) == 2)
			cli_hist_record_count(&b->run, value, count);
	}
}

/* --grouped: sluice-dp-gen's --shard-map "INDEX:START:END,..." from ListShards. */
static int
bench_dpdk_shard_map(struct bench *b, char *out, size_t out_size)
{
	struct sluice_shard_range *map;
	uint32_t count;
	size_t used = 0;
	int err = cli_frames_shard_ranges(&b->client, b->stream, &map, &count);

	if (err != 0)
		return err;
	for (uint32_t i = 0; i < count && used < out_size; i++) {
		char start[HASHKEY_DECIMAL_SIZE], end[HASHKEY_DECIMAL_SIZE];

		hashkey_format_decimal(hashkey_from_be_bytes(map[i].start), start);
		hashkey_format_decimal(hashkey_from_be_bytes(map[i].end), end);
		used += (size_t)snprintf(out + used, out_size - used, "%s%u:%s:%s", i ? "," : "",
					 map[i].shard_index, start, end);
	}
	free(map);
	return count == 0 || used >= out_size ? -E2BIG : 0;
}

static int
bench_dpdk(struct bench *b, uint64_t *unanswered_out)
{
	char helper[PATH_MAX], vdev[PATH_MAX + 64], prefix[64], rate[24], size[24], per[24];
	char keys[24], duration[24], drain[24], shard_map[BENCH_SHARD_MAP_ARG_SIZE];
	char *target = (char *)(b->target != NULL ? b->target : BENCH_DPDK_TARGET_DEFAULT);
	char *argv[] = { helper, "--vdev", vdev, "--file-prefix", prefix, "--stream",
			 (char *)b->stream, "--target", target, "--rate", rate, "--size", size,
			 "--records-per-frame", per, "--key-count", keys, "--duration-ms",
			 duration, "--drain-ms", drain, b->grouped ? "--shard-map" : NULL, shard_map,
			 NULL };
	uint64_t elapsed_ns = 0;
	char line[4096];
	size_t used = 0;
	int status;
	pid_t pid;
	int fd;
	int err;

	if (cli_find_helper("sluice-dp-gen", "SLUICE_DP_GEN", helper, sizeof(helper)) != 0) {
		fprintf(stderr, "sluice bench ingest: sluice-dp-gen not found "
			"(set SLUICE_DP_GEN)\n");
		return -EHOSTUNREACH;
	}
	if (strcmp(b->device, "memif") == 0)
		snprintf(vdev, sizeof(vdev), "net_memif0,role=client,socket=%s,socket-abstract=no,"
			 "rsize=%u", b->socket_path, BENCH_MEMIF_LOG2_RING);
	else
		snprintf(vdev, sizeof(vdev), "net_af_xdp0,iface=%s", b->iface);
	snprintf(prefix, sizeof(prefix), "sluice-gen-%d", (int)getpid());
	snprintf(rate, sizeof(rate), "%llu", (unsigned long long)b->rate);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)b->size);
	snprintf(per, sizeof(per), "%llu", (unsigned long long)b->records_per_frame);
	snprintf(keys, sizeof(keys), "%llu", (unsigned long long)b->key_count);
	snprintf(duration, sizeof(duration), "%llu",
		 (unsigned long long)(b->duration_ns / 1000000));
	snprintf(drain, sizeof(drain), "%llu", (unsigned long long)(b->drain_ns / 1000000));
	err = b->grouped ? bench_dpdk_shard_map(b, shard_map, sizeof(shard_map)) : 0;
	if (err != 0) {
		fprintf(stderr, "sluice bench ingest: --grouped: no shard map for %s (%s)\n",
			b->stream, strerror(-err));
		return -EHOSTUNREACH;
	}
	err = cli_spawn(argv, &pid, &fd);
	if (err != 0)
		return err;
	for (;;) {
		ssize_t n = read(fd, line + used, sizeof(line) - 1 - used);
		char *end;

		if (n <= 0)
			break;
		used += (size_t)n;
		line[used] = '\0';
		while ((end = strchr(line, '\n')) != NULL || used == sizeof(line) - 1) {
			size_t taken = end != NULL ? (size_t)(end - line) + 1 : used;

			line[taken - 1] = '\0';
			bench_dpdk_line(b, line, unanswered_out, &elapsed_ns);
			memmove(line, line + taken, used - taken + 1);
			used -= taken;
		}
	}
	close(fd);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || elapsed_ns == 0) {
		fprintf(stderr, "sluice bench ingest: sluice-dp-gen failed\n");
		return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? -EINVAL : -EHOSTUNREACH;
	}
	b->start_ns = clock_mono_ns() - elapsed_ns; /* bench_report measures from here. */
	return 0;
}

/* ---- --compare through sluice-bench-compare ----------------------------------------- */

/*
 * The comparison builds namespaces, devices and sluiceds of its own and runs this
 * command many times: its driver, sluice-bench-compare, replaces this process
 * (found like sluice-dp-gen, or as $SLUICE_BENCH_COMPARE).
 */
static int
bench_compare(const struct bench *b)
{
	char helper[PATH_MAX], self[PATH_MAX], duration[24];
	char *argv[] = { helper, "--sluice", self, "--duration-ms", duration,
			 b->compare_short ? "--short" : NULL, NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (geteuid() != 0) {
		fprintf(stderr, "sluice bench ingest --compare: run as root (it makes a network "
			"namespace, veth and AF_XDP devices, a memif socket and sluiceds of its "
			"own)\n");
		return CMD_EXIT_USAGE;
	}
	if (n <= 0 || cli_find_helper("sluice-bench-compare", "SLUICE_BENCH_COMPARE", helper,
				      sizeof(helper)) != 0) {
		fprintf(stderr, "sluice bench ingest --compare: sluice-bench-compare not found "
			"(set SLUICE_BENCH_COMPARE)\n");
		return CMD_EXIT_ERROR;
	}
	self[n] = '\0';
	/* 0 (not given): the driver's default for --short or the full run. */
	snprintf(duration, sizeof(duration), "%llu",
		 (unsigned long long)(b->duration_ns / 1000000));
	fflush(NULL);
	execv(helper, argv);
	fprintf(stderr, "sluice bench ingest --compare: %s: %s\n", helper, strerror(errno));
	return CMD_EXIT_ERROR;
}

/* ---- Setup ------------------------------------------------------------------------- */

static int
bench_setup(struct bench *b)
{
	int err = 0;

	b->rng = clock_real_ns();
	if (strcmp(b->keys, "zipf") == 0)
		err = bench_zipf_init(b);
	/* Large frames: fewer distinct bodies, so memory stays bounded. */
	b->body_count = BENCH_BODIES_SIZE_MAX /
			(strcmp(b->transport, "http") == 0 ? 2 * b->records_per_frame * b->size :
			 b->size + BENCH_INDEX_SIZE);
	b->body_count = b->body_count < 1 ? 1 : b->body_count > BENCH_BODIES ? BENCH_BODIES :
			b->body_count;
	for (size_t i = 0; err == 0 && i < b->body_count; i++) {
		if (strcmp(b->transport, "http") == 0) {
			err = bench_body_build(b, &b->bodies[i], &b->body_sizes[i]);
			continue;
		}
		b->data[i] = malloc(b->size + BENCH_INDEX_SIZE);
		if (b->data[i] == NULL)
			err = -ENOMEM;
		else
			cli_random_text(&b->rng, b->data[i], b->size);
	}
	if (err != 0)
		return err;
	b->conns = calloc(b->connection_count, sizeof(*b->conns));
	b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (b->conns == NULL || b->epoll_fd < 0)
		return b->conns == NULL ? -ENOMEM : -errno;
	for (uint64_t i = 0; i < b->connection_count; i++)
		b->conns[i].fd = -1;
	b->interval_ns = (uint64_t)(1e9 * (double)b->records_per_frame / (double)b->rate);
	if (b->interval_ns == 0)
		b->interval_ns = 1;
	b->frames_total = b->duration_ns / b->interval_ns;
	if (b->frames_total == 0)
		b->frames_total = 1;
	cli_hist_reset(&b->run);
	cli_hist_reset(&b->window);
	return 0;
}

static void
bench_teardown(struct bench *b)
{
	for (uint64_t i = 0; b->conns != NULL && i < b->connection_count; i++) {
		kc_tls_close(b->conns[i].tls);
		if (b->conns[i].fd >= 0)
			close(b->conns[i].fd);
		free(b->conns[i].out);
		free(b->conns[i].rx);
	}
	for (size_t i = 0; i < BENCH_BODIES; i++) {
		free(b->bodies[i]);
		free(b->data[i]);
	}
	if (b->epoll_fd >= 0)
		close(b->epoll_fd);
	free(b->conns);
	free(b->zipf_cdf);
	kc_client_close(&b->client);
}

static bool
bench_dpdk_opts_valid(const struct bench *b)
{
	if (b->device == NULL || (strcmp(b->device, "memif") != 0 &&
				  strcmp(b->device, "af_xdp") != 0))
		fprintf(stderr, "sluice bench ingest: --transport dpdk needs "
			"--device memif|af_xdp\n");
	else if (strcmp(b->device, "memif") == 0 && b->socket_path == NULL)
		fprintf(stderr, "sluice bench ingest: --device memif needs --socket PATH "
			"(sluiced's [dataplane] vdev socket=)\n");
	else if (strcmp(b->device, "af_xdp") == 0 && b->iface == NULL)
		fprintf(stderr, "sluice bench ingest: --device af_xdp needs --iface NAME\n");
	else if (strcmp(b->data_kind, "random") != 0)
		fprintf(stderr, "sluice bench ingest: --transport dpdk sends --data random only\n");
	else
		return true;
	return false;
}

static bool
bench_opts_valid(const struct bench *b, const struct cli_args *args)
{
	if (args->positional_count != 1 || !cli_stream_name_valid(args->positional[0]))
		fprintf(stderr, "sluice bench ingest: needs one STREAM name\n");
	else if (strcmp(b->keys, "uniform") != 0 && strcmp(b->keys, "zipf") != 0)
		fprintf(stderr, "sluice bench ingest: --keys is uniform or zipf\n");
	else if (strcmp(b->transport, "http") != 0 && strcmp(b->transport, "udp") != 0 &&
		 strcmp(b->transport, "tcp") != 0 && strcmp(b->transport, "dpdk") != 0)
		fprintf(stderr, "sluice bench ingest: --transport is http, udp, tcp or dpdk\n");
	else if (strcmp(b->transport, "dpdk") == 0 && !bench_dpdk_opts_valid(b))
		return false;
	else if (strcmp(b->data_kind, "random") != 0 && (strcmp(b->data_kind, "index") != 0 ||
							 strcmp(b->transport, "http") == 0))
		fprintf(stderr, "sluice bench ingest: --data is random, or index over udp/tcp\n");
	else if (strcmp(b->transport, "http") == 0 &&
		 b->records_per_frame * (b->size + 12) > BENCH_PUT_RECORDS_SIZE_MAX)
		fprintf(stderr, "sluice bench ingest: one PutRecords carries at most 5 MiB: "
			"lower --size or --records-per-frame\n");
	else
		return true;
	return false;
}

static int
bench_main(struct bench *b, struct cli_conn *conn)
{
	bool http = strcmp(b->transport, "http") == 0;
	uint64_t unanswered = 0;
	int code = http || b->grouped ? cli_conn_open("bench ingest", conn, &b->client) : 0;
	struct sigaction interrupt = { .sa_handler = bench_on_interrupt, .sa_flags = SA_RESETHAND };
	int err;

	if (code != 0)
		return code;
	bench_interrupted = 0;
	sigaction(SIGINT, &interrupt, NULL);
	err = bench_setup(b);
	if (err == 0 && http) {
		b->start_ns = clock_mono_ns();
		cli_progress_init(&b->progress, stderr, b->start_ns);
		err = bench_loop(b);
		unanswered = bench_unanswered(b);
	} else if (err == 0 && strcmp(b->transport, "dpdk") == 0) {
		err = bench_dpdk(b, &unanswered);
	} else if (err == 0) {
		err = bench_frames(b, &unanswered);
	}
	if (err != 0) {
		cli_progress_end(&b->progress);
		if (err != -EINVAL && err != -EHOSTUNREACH)  /* Those printed their reason. */
			fprintf(stderr, "sluice bench ingest: %s\n", strerror(-err));
		code = err == -EINVAL ? CMD_EXIT_USAGE : CMD_EXIT_ERROR;
	} else {
		code = bench_report(b, clock_mono_ns(), unanswered);
	}
	bench_teardown(b);
	return code;
}

int
cmd_bench_ingest(int argc, char **argv)
{
	static struct bench b;
	struct cli_conn conn = { 0 };
	const struct cli_opt table[] = {
		{ "transport", CLI_OPT_STRING, &b.transport, 0, 0, "T",
		  "http (default), udp, tcp or dpdk (sluice-dp-gen on --device)" },
		{ "target", CLI_OPT_STRING, &b.target, 0, 0, "HOST:PORT",
		  "udp/tcp: the ingest address (default " CLI_FRAMES_TARGET_DEFAULT "; dpdk: "
		  BENCH_DPDK_TARGET_DEFAULT ")" },
		{ "device", CLI_OPT_STRING, &b.device, 0, 0, "DEV",
		  "dpdk: memif (a memif client) or af_xdp (AF_XDP on --iface)" },
		{ "socket", CLI_OPT_STRING, &b.socket_path, 0, 0, "PATH",
		  "dpdk memif: sluiced's memif socket" },
		{ "iface", CLI_OPT_STRING, &b.iface, 0, 0, "NAME",
		  "dpdk af_xdp: the interface facing the appliance" },
		{ "rate", CLI_OPT_COUNT, &b.rate, 1, 100000000, "N",
		  "offered records per second (default 1000)" },
		{ "size", CLI_OPT_SIZE, &b.size, 1, SLUICE_RECORD_DATA_SIZE_MAX, "B",
		  "bytes of data per record (default 100)" },
		{ "records-per-frame", CLI_OPT_COUNT, &b.records_per_frame, 1,
		  BENCH_RECORDS_PER_FRAME_MAX, "N", "records per frame / PutRecords (default 1)" },
		{ "keys", CLI_OPT_STRING, &b.keys, 0, 0, "DIST", "uniform (default) or zipf" },
		{ "key-count", CLI_OPT_COUNT, &b.key_count, 1, 100000000, "N",
		  "distinct partition keys (default 1000)" },
		{ "zipf-s", CLI_OPT_DOUBLE, &b.zipf_s, 0, 10, "S", "Zipf exponent (default 0.99)" },
		{ "connections", CLI_OPT_COUNT, &b.connection_count, 1, BENCH_CONNECTIONS_MAX, "N",
		  "http: connections, one frame in flight each (default 16)" },
		{ "pipeline", CLI_OPT_COUNT, &b.pipeline, 1, BENCH_PIPELINE_MAX, "N",
		  "http: requests in flight per connection (default 1)" },
		{ "producers", CLI_OPT_COUNT, &b.connection_count, 1, BENCH_CONNECTIONS_MAX, "N",
		  "udp/tcp: libsluice producers (default 4); http: as --connections" },
		{ "duration", CLI_OPT_DURATION, &b.duration_ns, 1000000, 86400000000000, "D",
		  "how long to offer load (default 10s)" },
		{ "drain", CLI_OPT_DURATION, &b.drain_ns, 0, 600000000000, "D",
		  "then wait this long for answers (default 5s)" },
		{ "json", CLI_OPT_BOOL, &b.json, 0, 0, NULL,
		  "print the summary as one JSON object" },
		{ "data", CLI_OPT_STRING, &b.data_kind, 0, 0, "KIND",
		  "random (default) or index (udp/tcp: 'rec-N ' then padding)" },
		{ "grouped", CLI_OPT_BOOL, &b.grouped, 0, 0, NULL,
		  "udp/tcp/dpdk: the stream's shard map first (ListShards through the API), then "
		  "shard-grouped frames, as a producer with the map" },
		{ "compare", CLI_OPT_BOOL, &b.compare, 0, 0, NULL,
		  "root: HTTP, kernel UDP, AF_XDP, memif and testpmd side by side (no STREAM)" },
		{ "short", CLI_OPT_BOOL, &b.compare_short, 0, 0, NULL,
		  "--compare: each path briefly, behaviour only" },
		CLI_CONN_OPTS(&conn),
	};
	struct cli_args args;
	bool done;
	int code;

	memset(&b, 0, sizeof(b));
	b.transport = "http";
	b.keys = "uniform";
	b.data_kind = "random";
	b.rate = 1000;
	b.size = 100;
	b.records_per_frame = 1;
	b.key_count = 1000;
	b.zipf_s = 0.99;
	b.connection_count = 0;  /* Chosen by transport below. */
	b.pipeline = 1;
	b.duration_ns = 0;         /* 10 s, or --compare's own default, when not given. */
	b.drain_ns = 5000000000ull;
	b.epoll_fd = -1;
	code = cli_parse_or_usage(argc, argv, bench_synopsis, table, ARRAY_SIZE(table), &args,
				  &done);
	if (done)
		return code;
	if (b.compare && args.positional_count == 0)
		return bench_compare(&b);
	if (b.duration_ns == 0)
		b.duration_ns = 10000000000ull;
	if (b.compare || b.compare_short || !bench_opts_valid(&b, &args)) {
		cli_args_usage(stderr, bench_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	b.stream = args.positional[0];
	if (b.connection_count == 0)
		b.connection_count = strcmp(b.transport, "http") == 0 ? 16 :
				     strcmp(b.transport, "dpdk") == 0 ? 1 : 4;
	return bench_main(&b, &conn);
}
