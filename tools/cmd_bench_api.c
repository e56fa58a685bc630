/*
 * cmd_bench_api.c - `sluice bench api`: the Kinesis API's throughput and
 * latency against a running sluiced, next to the log's own append->durable
 * latency measured in the same run on the same disk.
 *
 *   1. PutRecords of 500 x 100 B over HTTP/1.1 keep-alive, --connections
 *      closed loops, durable acknowledgements: records/s; then the same over
 *      h2c through h2load (nghttp2's load generator) when it is installed.
 *   2. GetRecords from TRIM_HORIZON over what phase 1 wrote (the tail, hot in
 *      the page cache), one reader per shard: response bytes/s.
 *   3. Single PutRecord of 100 B at low load (one connection, one in flight):
 *      p50/p99 round trip, interleaved in blocks of 100 with
 *   4. the log alone (a temporary log in --log-dir, sluiced's defaults), one
 *      100 B record per batch, one in flight: submit -> durable p50/p99.
 *
 * --put-only --stream NAME runs phase 1 alone against a stream that exists (the
 * driver of `sluice bench cluster` runs one per node at once): --rate paces it
 * (offered records/s over all connections; 0, the default, is closed loop),
 * --hash-keys sends connection i's records to hash key i mod n (one shard each,
 * no forwarding hop when the endpoint leads it), and it ends with one line a
 * driver parses (BENCH_PUT_LINE, below). --latency-only --stream NAME runs phases
 * 3 and 4 alone (the PutRecords to the first --hash-keys key's shard) and ends with
 * BENCH_LAT_LINE.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/base.h"
#include "common/clock.h"
#include "nvme-log/log.h"
#include "tools/cli_args.h"
#include "tools/cli_bench.h"
#include "tools/cli_common.h"
#include "tools/cli_hist.h"
#include "tools/cmd.h"
#include "tools/kinesis_client.h"

#define BENCH_BATCH_RECORDS 500u
#define BENCH_RECORD_SIZE 100u
#define BENCH_BODIES 8u
#define BENCH_CONNECTIONS_MAX 64u
#define BENCH_SHARDS_MAX 64u
#define BENCH_HASH_KEYS_MAX BENCH_CONNECTIONS_MAX
#define BENCH_HASH_KEY_DIGITS_MAX 39u   /* 2^128 - 1 has 39 decimal digits. */
#define BENCH_RATE_MAX 100000000ull     /* Offered records/s: far above any one host. */
/*
 * --put-only's last line, one token per field, for drivers (tools/bench_cluster.py):
 * "acked" lists KEY:records for each --hash-keys key (or "-" without them).
 * --latency-only's: PutRecord and log append p50/p99, the puts answered 200.
 */
#define BENCH_LAT_LINE "bench-api-lat: put_p50_us=%.1f put_p99_us=%.1f log_p50_us=%.1f " \
	"log_p99_us=%.1f acked=%llu\n"
#define BENCH_PUT_LINE "bench-api-put: records_ok=%llu records_failed=%llu errors=%llu " \
	"seconds=%.3f records_per_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f acked=%s\n"

struct bench_opts {
	struct cli_conn conn;
	const char *log_dir;
	const char *stream;          /* An existing stream (--put-only), else one is made. */
	const char *hash_keys_arg;   /* Comma-separated ExplicitHashKeys, or NULL. */
	char *hash_keys[BENCH_HASH_KEYS_MAX];   /* Parsed from hash_keys_arg, into: */
	char *hash_keys_copy;                   /* malloc'ed, freed after the run. */
	uint32_t hash_key_count;
	uint64_t connections;
	uint64_t shards;
	uint64_t duration_ns;
	uint64_t latency_count;
	uint64_t rate;               /* Offered records/s over all connections; 0: closed loop. */
	bool put_only;
	bool latency_only;           /* Phases 3 and 4 alone on --stream. */
	bool enhanced_monitoring;    /* Every shard-level metric on (what its series cost). */
};

/* One hash key's pre-built, pre-signed requests (or the one target without keys). */
struct bench_target {
	char *requests[BENCH_BODIES];
	size_t request_sizes[BENCH_BODIES];
	uint64_t records_ok;         /* Summed from its connections after the phase. */
};

struct bench_conn {
	const struct kc_client *client;
	const struct bench_target *target;
	uint64_t first_ns;           /* --rate: when the first request is due. */
	uint64_t interval_ns;        /* --rate: between one connection's requests; 0: none. */
	uint64_t deadline_ns;
	uint64_t records_ok;
	uint64_t records_failed;
	uint64_t errors;
	struct cli_hist hist;        /* Round trip of each PutRecords (phase 1). */
	struct cli_rx rx;
};

/* Sleeps until `due_ns` (clock_mono_ns()'s clock) unless it has passed. */
static void
bench_sleep_until(uint64_t due_ns)
{
	uint64_t now = clock_mono_ns();

	if (due_ns > now) {
		struct timespec ts = { .tv_sec = (time_t)((due_ns - now) / 1000000000u),
				       .tv_nsec = (long)((due_ns - now) % 1000000000u) };

		nanosleep(&ts, NULL);
	}
}

static void *
bench_put_worker(void *arg)
{
	struct bench_conn *conn = arg;
	const struct bench_target *t = conn->target;
	int fd = kc_connect(conn->client, false);
	uint32_t next = 0;

	if (fd < 0) {
		conn->errors++;
		return NULL;
	}
	for (;;) {
		struct kc_http_response response;
		const char *body;
		const char *failed;
		uint64_t t0;

		/* Open loop at --rate: each request at its time, late ones at once. */
		if (conn->interval_ns > 0) {
			uint64_t due = conn->first_ns + next * conn->interval_ns;

			bench_sleep_until(due < conn->deadline_ns ? due : conn->deadline_ns);
		}
		t0 = clock_mono_ns();
		if (t0 >= conn->deadline_ns)
			break;
		if (cli_round_trip(&conn->rx, fd, t->requests[next % BENCH_BODIES],
				     t->request_sizes[next % BENCH_BODIES], &response) != 0 ||
		    response.status != 200) {
			conn->errors++;
			break;
		}
		cli_hist_record(&conn->hist, clock_mono_ns() - t0);
		next++;
		body = conn->rx.buf + response.header_size;
		failed = memmem(body, response.body_size, "\"FailedRecordCount\":", 20);
		uint64_t f = failed != NULL ? strtoull(failed + 20, NULL, 10) : BENCH_BATCH_RECORDS;

		conn->records_failed += f;
		conn->records_ok += BENCH_BATCH_RECORDS - f;
	}
	close(fd);
	return NULL;
}

/* What phase 1 measured. */
struct bench_put_result {
	double rate;                 /* Records/s acknowledged durable. */
	double seconds;
	uint64_t ok;
	uint64_t failed;             /* Refused in a 200 answer, or in a request that failed. */
	uint64_t errors;             /* Requests without a 200 answer (each ends its connection). */
	struct cli_hist hist;        /* PutRecords round trips. */
	struct bench_target targets[BENCH_HASH_KEYS_MAX];
	uint32_t target_count;
};

static void
bench_targets_free(struct bench_put_result *r)
{
	for (uint32_t k = 0; k < r->target_count; k++)
		for (uint32_t b = 0; b < BENCH_BODIES; b++)
			free(r->targets[k].requests[b]);
	r->target_count = 0;
}

/* BENCH_BODIES signed PutRecords per hash key (one target without keys). */
static int
bench_targets_build(const struct kc_client *client, const struct bench_opts *o,
		    const char *stream, struct bench_put_result *r)
{
	uint32_t count = o->hash_key_count > 0 ? o->hash_key_count : 1;

	for (uint32_t k = 0; k < count; k++) {
		struct bench_target *t = &r->targets[k];

		*t = (struct bench_target){ 0 };
		r->target_count = k + 1;
		for (uint32_t b = 0; b < BENCH_BODIES; b++) {
			size_t body_size;
			char *body = cli_put_records_body(stream, BENCH_BATCH_RECORDS,
							  BENCH_RECORD_SIZE,
							  o->hash_key_count > 0 ? o->hash_keys[k] :
							  NULL, &body_size);
			int rc = body == NULL ? -ENOMEM :
				kc_request_build(client, "PutRecords", body, body_size,
						 clock_real_ns(), &t->requests[b],
						 &t->request_sizes[b]);

			free(body);
			if (rc != 0) {
				bench_targets_free(r);
				return rc;
			}
		}
	}
	return 0;
}

/*
 * Phase 1: PutRecords throughput, connection i to target i mod targets, each paced
 * to its share of --rate (staggered so that requests do not leave together).
 */
static int
bench_put_phase(const struct kc_client *client, const struct bench_opts *o, const char *stream,
		struct bench_put_result *r)
{
	static struct bench_conn conns[BENCH_CONNECTIONS_MAX];
	pthread_t threads[BENCH_CONNECTIONS_MAX];
	uint64_t interval_ns = o->rate > 0 ? o->connections * BENCH_BATCH_RECORDS * 1000000000ull /
				o->rate : 0;
	uint64_t start;
	int rc = bench_targets_build(client, o, stream, r);

	if (rc != 0)
		return rc;
	cli_hist_reset(&r->hist);
	start = clock_mono_ns();
	for (uint32_t i = 0; i < o->connections; i++) {
		conns[i] = (struct bench_conn){
			.client = client, .target = &r->targets[i % r->target_count],
			.first_ns = start + interval_ns * i / o->connections,
			.interval_ns = interval_ns, .deadline_ns = start + o->duration_ns,
		};
		cli_hist_reset(&conns[i].hist);
		pthread_create(&threads[i], NULL, bench_put_worker, &conns[i]);
	}
	for (uint32_t i = 0; i < o->connections; i++) {
		pthread_join(threads[i], NULL);
		r->ok += conns[i].records_ok;
		r->targets[i % r->target_count].records_ok += conns[i].records_ok;
		r->failed += conns[i].records_failed + conns[i].errors * BENCH_BATCH_RECORDS;
		r->errors += conns[i].errors;
		cli_hist_merge(&r->hist, &conns[i].hist);
		free(conns[i].rx.buf);
	}
	r->seconds = (double)(clock_mono_ns() - start) / 1e9;
	r->rate = (double)r->ok / r->seconds;
	return 0;
}

struct bench_reader {
	struct bench_conn conn;
	char iterator[600];
	uint64_t bytes;
	uint64_t calls;
	int error;
};

/* Copies "NextShardIterator":"..." out of a GetRecords body; false if absent. */
static bool
bench_next_iterator(const char *body, size_t size, char *out, size_t out_size)
{
	const char *p = memmem(body, size, "\"NextShardIterator\":\"", 21);
	const char *end;

	if (p == NULL)
		return false;
	p += 21;
	end = memchr(p, '"', size - (size_t)(p - body));
	if (end == NULL || (size_t)(end - p) >= out_size)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static void *
bench_get_worker(void *arg)
{
	struct bench_reader *r = arg;
	int fd = kc_connect(r->conn.client, false);

	r->error = fd < 0 ? fd : 0;
	while (r->error == 0) {
		struct kc_http_response response;
		char body[700];
		char *request;
		size_t request_size;
		const char *rb;

		snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", r->iterator);
		r->error = kc_request_build(r->conn.client, "GetRecords", body, strlen(body),
					    clock_real_ns(), &request, &request_size);
		if (r->error != 0)
			break;
		r->error = cli_round_trip(&r->conn.rx, fd, request, request_size, &response);
		free(request);
		if (r->error != 0 || response.status != 200) {
			r->error = r->error != 0 ? r->error : -EIO;
			break;
		}
		rb = r->conn.rx.buf + response.header_size;
		r->bytes += response.body_size;
		r->calls++;
		if (response.body_size >= 13 && memcmp(rb, "{\"Records\":[]", 13) == 0)
			break; /* Caught up. */
		if (!bench_next_iterator(rb, response.body_size, r->iterator, sizeof(r->iterator)))
			r->error = -EBADMSG;
	}
	if (fd >= 0)
		close(fd);
	free(r->conn.rx.buf);
	return NULL;
}

static int
bench_shard_iterator(struct kc_client *client, const char *stream, uint32_t shard, char *out,
		     size_t out_size)
{
	cJSON *req = cJSON_CreateObject();
	cJSON *resp = NULL;
	char shard_id[32];
	const cJSON *it;
	int rc;

	snprintf(shard_id, sizeof(shard_id), "shardId-%012u", shard);
	cJSON_AddStringToObject(req, "StreamName", stream);
	cJSON_AddStringToObject(req, "ShardId", shard_id);
	cJSON_AddStringToObject(req, "ShardIteratorType", "TRIM_HORIZON");
	rc = kc_call(client, "GetShardIterator", req, &resp);
	cJSON_Delete(req);
	if (rc != 0)
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(resp, "ShardIterator");
	rc = cJSON_IsString(it) && strlen(it->valuestring) < out_size ? 0 : -EBADMSG;
	if (rc == 0)
		snprintf(out, out_size, "%s", it->valuestring);
	cJSON_Delete(resp);
	return rc;
}

/* Phase 2: every shard read from TRIM_HORIZON to the end, in parallel. Returns bytes/s. */
static double
bench_get_phase(struct kc_client *client, const struct bench_opts *o, const char *stream,
		uint64_t *bytes_out)
{
	static struct bench_reader readers[BENCH_SHARDS_MAX];
	pthread_t threads[BENCH_SHARDS_MAX];
	uint64_t bytes = 0;
	uint64_t start;

	for (uint32_t s = 0; s < o->shards; s++) {
		readers[s] = (struct bench_reader){ .conn.client = client };
		if (bench_shard_iterator(client, stream, s, readers[s].iterator,
					 sizeof(readers[s].iterator)) != 0)
			return -1;
	}
	start = clock_mono_ns();
	for (uint32_t s = 0; s < o->shards; s++)
		pthread_create(&threads[s], NULL, bench_get_worker, &readers[s]);
	for (uint32_t s = 0; s < o->shards; s++) {
		pthread_join(threads[s], NULL);
		if (readers[s].error != 0)
			fprintf(stderr, "sluice bench api: GetRecords on shard %u: %s\n", s,
				strerror(-readers[s].error));
		bytes += readers[s].bytes;
	}
	*bytes_out = bytes;
	return (double)bytes / ((double)(clock_mono_ns() - start) / 1e9);
}

/* One PutRecord of 100 B on `fd`, its round trip recorded in `hist`. */
static int
bench_api_put_once(struct bench_conn *conn, int fd, const char *stream, const char *hash_key,
		   uint64_t i, struct cli_hist *hist)
{
	struct kc_http_response response;
	uint8_t data[BENCH_RECORD_SIZE];
	char body[512];
	char *b64;
	char *request;
	size_t size;
	uint64_t t0;
	int rc;

	RAND_bytes(data, sizeof(data));
	if (kc_base64_encode(data, sizeof(data), &b64, &size) != 0)
		return -ENOMEM;
	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"PartitionKey\":\"lat-%llu\","
		 "%s%s%s\"Data\":\"%s\"}", stream, (unsigned long long)i,
		 hash_key != NULL ? "\"ExplicitHashKey\":\"" : "", hash_key != NULL ? hash_key : "",
		 hash_key != NULL ? "\"," : "", b64);
	free(b64);
	rc = kc_request_build(conn->client, "PutRecord", body, strlen(body), clock_real_ns(),
			      &request, &size);
	if (rc != 0)
		return rc;
	t0 = clock_mono_ns();
	rc = cli_round_trip(&conn->rx, fd, request, size, &response);
	cli_hist_record(hist, clock_mono_ns() - t0);
	free(request);
	return rc == 0 && response.status != 200 ? -EIO : rc;
}

/* Waits for the one outstanding completion of `producer`. */
static int
bench_log_wait(struct log_producer *producer)
{
	struct pollfd pfd = { .fd = log_producer_event_fd(producer), .events = POLLIN };

	for (int i = 0; i < 10000; i++) {
		struct log_completion done;

		if (log_completions_poll(producer, &done, 1) == 1)
			return done.error;
		poll(&pfd, 1, 1);
	}
	return -ETIMEDOUT;
}

/* One 100 B record in its own batch: submit -> durable recorded in `hist`. */
static int
bench_log_append_once(struct log_producer *producer, uint64_t i, struct cli_hist *hist)
{
	static const uint8_t data[BENCH_RECORD_SIZE];
	struct log_batch *batch = log_batch_get(producer);
	struct log_record_in rec = {
		.partition_key = "lat", .partition_key_size = 3, .data = data,
		.data_size = sizeof(data), .arrival_ns = clock_real_ns(),
	};
	uint64_t t0;
	int rc = batch == NULL ? -ENOBUFS : log_batch_add(batch, &rec);

	if (rc != 0)
		return rc;
	t0 = clock_mono_ns();
	rc = log_batch_submit(producer, batch, LOG_SHARD_ID(1, 0), i);
	if (rc == 0)
		rc = bench_log_wait(producer);
	cli_hist_record(hist, clock_mono_ns() - t0);
	return rc;
}

/*
 * Phases 3 and 4, interleaved in blocks of 100 so that both see the same
 * background (writeback of phase 1, neighbours): single PutRecords through
 * sluiced (to the first --hash-keys key's shard when given), and appends to a
 * temporary log opened as sluiced opens its own. *acked counts the puts answered 200.
 */
static int
bench_latency_phase(const struct kc_client *client, const struct bench_opts *o,
		    const char *stream, struct cli_hist *api, struct cli_hist *log_hist,
		    uint64_t *acked)
{
	const char *hash_key = o->hash_key_count > 0 ? o->hash_keys[0] : NULL;
	struct bench_conn conn = { .client = client };
	struct log_producer *producer;
	struct log_config lc;
	struct log *log;
	char dir[512];
	int fd;
	int rc;

	snprintf(dir, sizeof(dir), "%s/sluice-bench-api-log-XXXXXX", o->log_dir);
	if (mkdtemp(dir) == NULL)
		return -errno;
	log_config_default(&lc);
	lc.dir_path = dir;
	/* sluiced's defaults (docs/CONFIG.md; tools/ cannot read control/'s table). */
	lc.commit_window_us = 0;
	lc.commit_window_adaptive_us = 500;
	lc.batch_size = 1088u << 10;
	rc = log_open(&lc, &log);
	if (rc != 0)
		goto out_rmdir;
	rc = log_producer_open(log, &producer);
	if (rc != 0)
		goto out_close_log;
	fd = kc_connect(client, false);
	rc = fd < 0 ? fd : 0;
	for (uint64_t i = 0; rc == 0 && i < o->latency_count; i += 100) {
		for (uint64_t j = i; rc == 0 && j < i + 100 && j < o->latency_count; j++) {
			rc = bench_api_put_once(&conn, fd, stream, hash_key, j, api);
			*acked += rc == 0;
		}
		for (uint64_t j = i; rc == 0 && j < i + 100 && j < o->latency_count; j++)
			rc = bench_log_append_once(producer, j, log_hist);
	}
	if (fd >= 0)
		close(fd);
	free(conn.rx.buf);
	log_producer_close(producer);
out_close_log:
	log_close(log);
out_rmdir: {
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "sluice bench api: could not remove %s\n", dir);
	}
	return rc;
}

/*
 * Phase 1b: the same PutRecords over h2c with prior knowledge, driven by
 * h2load (nghttp2's load generator) with --connections connections, one
 * stream in flight each. Returns records/s (500 per 2xx), or -1 when h2load
 * is missing or failed.
 */
static double
bench_h2c_phase(const struct kc_client *client, const struct bench_opts *o, const char *stream,
		uint64_t *non_2xx_out)
{
	char path[] = "/tmp/sluice-bench-api-h2-XXXXXX";
	char cmd[1024];
	char line[512];
	double rate = -1;
	size_t size;
	char *body = cli_put_records_body(stream, BENCH_BATCH_RECORDS, BENCH_RECORD_SIZE, NULL,
					  &size);
	int fd = mkstemp(path);
	FILE *h2load;

	if (body == NULL || fd < 0 || write(fd, body, size) != (ssize_t)size) {
		free(body);
		return -1;
	}
	close(fd);
	free(body);
	snprintf(cmd, sizeof(cmd), "h2load -c %llu -m 1 -D %llu -d '%s' -H 'x-amz-target: "
		 "Kinesis_20131202.PutRecords' -H 'content-type: application/x-amz-json-1.1' "
		 "'http://%s/' 2>&1", (unsigned long long)o->connections,
		 (unsigned long long)((o->duration_ns + 999999999) / 1000000000), path,
		 client->host_header);
	h2load = popen(cmd, "r");
	while (h2load != NULL && fgets(line, sizeof(line), h2load) != NULL) {
		unsigned long long ok, r3, r4, r5;
		double req_s;

		if (sscanf(line, "finished in %*[^,], %lf req/s", &req_s) == 1)
			rate = req_s * BENCH_BATCH_RECORDS;
		if (sscanf(line, "status codes: %llu 2xx, %llu 3xx, %llu 4xx, %llu 5xx", &ok, &r3, &r4,
			   &r5) == 4)
			*non_2xx_out = r3 + r4 + r5;
	}
	if (h2load == NULL || pclose(h2load) != 0)
		rate = -1;
	unlink(path);
	return rate;
}

struct bench_results {
	struct bench_put_result put;
	double h2c_rate;         /* < 0: not measured. */
	uint64_t h2c_non_2xx;
	double get_rate;
	uint64_t get_bytes;
	uint64_t latency_acked;  /* Single PutRecords answered 200 (phase 3). */
};

static void
bench_report_put(const struct bench_opts *o, const struct bench_put_result *r)
{
	printf("  %-46s %12.0f records/s  (%llu failed, offered %s)\n",
	       "PutRecords 500 x 100 B, HTTP/1.1, durable", r->rate,
	       (unsigned long long)r->failed, o->rate > 0 ? "at --rate" : "closed loop");
	printf("  %-46s p50 %8.1f us  p99 %8.1f us  (n=%llu)\n", "PutRecords round trip",
	       (double)cli_hist_percentile(&r->hist, 50) / 1e3,
	       (double)cli_hist_percentile(&r->hist, 99) / 1e3,
	       (unsigned long long)r->hist.count);
}

/* --put-only's BENCH_PUT_LINE. */
static void
bench_report_put_line(const struct bench_opts *o, const struct bench_put_result *r)
{
	char acked[BENCH_HASH_KEYS_MAX * (BENCH_HASH_KEY_DIGITS_MAX + 24)] = "-";
	size_t used = 0;

	for (uint32_t k = 0; k < r->target_count && o->hash_key_count > 0; k++)
		used += (size_t)snprintf(acked + used, sizeof(acked) - used, "%s%s:%llu",
					 k > 0 ? "," : "", o->hash_keys[k],
					 (unsigned long long)r->targets[k].records_ok);
	printf(BENCH_PUT_LINE, (unsigned long long)r->ok, (unsigned long long)r->failed,
	       (unsigned long long)r->errors, r->seconds, r->rate,
	       (double)cli_hist_percentile(&r->hist, 50) / 1e3,
	       (double)cli_hist_percentile(&r->hist, 99) / 1e3, (double)r->hist.max / 1e3, acked);
}

static void
bench_report_latency(const struct cli_hist *api, const struct cli_hist *log)
{
	double api_p99 = (double)cli_hist_percentile(api, 99) / 1e3;
	double log_p99 = (double)cli_hist_percentile(log, 99) / 1e3;

	printf("  %-46s p50 %8.1f us  p99 %8.1f us  (n=%llu)\n", "PutRecord 100 B, one in flight",
	       (double)cli_hist_percentile(api, 50) / 1e3, api_p99,
	       (unsigned long long)api->count);
	printf("  %-46s p50 %8.1f us  p99 %8.1f us  (n=%llu)\n", "log append -> durable (same run)",
	       (double)cli_hist_percentile(log, 50) / 1e3, log_p99,
	       (unsigned long long)log->count);
	printf("  %-46s %12.2f  (goal <= 2)\n", "PutRecord p99 / log p99",
	       log_p99 > 0 ? api_p99 / log_p99 : 0.0);
}

static void
bench_report(const struct kc_client *client, const struct bench_opts *o,
	     const struct bench_results *r, const struct cli_hist *api, const struct cli_hist *log)
{
	bench_report_put(o, &r->put);
	if (r->h2c_rate >= 0)
		printf("  %-46s %12.0f records/s  (%llu non-2xx)\n",
		       "PutRecords 500 x 100 B, h2c (h2load), durable", r->h2c_rate,
		       (unsigned long long)r->h2c_non_2xx);
	else
		printf("  %-46s %12s\n", "PutRecords over h2c",
		       client->access_key != NULL ? "(not run: h2load cannot sign)" :
		       "(h2load not found or failed)");
	printf("  %-46s %12.1f MB/s       (%.1f MB read)\n", "GetRecords at the tail (response)",
	       r->get_rate / 1e6, (double)r->get_bytes / 1e6);
	bench_report_latency(api, log);
}

static const char bench_synopsis[] =
	"sluice bench api [--endpoint URL] [options]\n"
	"       sluice bench api --put-only --stream NAME [--rate N] [--hash-keys K,K,...] "
	"[options]\n"
	"       sluice bench api --latency-only --stream NAME [--hash-keys K] [options]";

/* Phases 2-4 on the stream phase 1 wrote (not with --put-only). */
static int
bench_other_phases(struct kc_client *client, const struct bench_opts *o, const char *stream,
		   struct bench_results *r, struct cli_hist *api, struct cli_hist *log)
{
	if (client->access_key == NULL)
		r->h2c_rate = bench_h2c_phase(client, o, stream, &r->h2c_non_2xx);
	r->get_rate = bench_get_phase(client, o, stream, &r->get_bytes);
	if (r->get_rate < 0)
		return -EIO;
	return bench_latency_phase(client, o, stream, api, log, &r->latency_acked);
}

static int
bench_run(struct bench_opts *o)
{
	static struct cli_hist api_hist;
	static struct cli_hist log_hist;
	static struct bench_results r;
	struct kc_client client;
	char stream[160];
	int rc = cli_conn_open("bench api", &o->conn, &client);

	if (rc != 0)
		return rc;
	r = (struct bench_results){ .h2c_rate = -1 };
	if (o->stream != NULL)
		snprintf(stream, sizeof(stream), "%s", o->stream);
	else
		snprintf(stream, sizeof(stream), "bench-api-%d-%llu", (int)getpid(),
			 (unsigned long long)(clock_real_ns() / 1000000000u));
	rc = o->stream != NULL ? 0 : cli_bench_stream_create(&client, stream, o->shards);
	if (rc == 0 && o->enhanced_monitoring) {
		char json[256];

		snprintf(json, sizeof(json), "{\"StreamName\":\"%s\",\"ShardLevelMetrics\":"
			 "[\"ALL\"]}", stream);
		rc = cli_bench_call(&client, "EnableEnhancedMonitoring", json);
	}
	if (rc != 0) {
		fprintf(stderr, "sluice bench api: cannot create %s at %s:%s: %s\n", stream,
			client.host, client.port, strerror(-rc));
		kc_client_close(&client);
		return CMD_EXIT_ERROR;
	}
	cli_hist_reset(&api_hist);
	cli_hist_reset(&log_hist);
	printf("sluice bench api: %s:%s, stream %s, %llu connections, %.1f s phases\n",
	       client.host, client.port, stream, (unsigned long long)o->connections,
	       (double)o->duration_ns / 1e9);
	if (o->latency_only)
		rc = bench_latency_phase(&client, o, stream, &api_hist, &log_hist,
					 &r.latency_acked);
	else
		rc = bench_put_phase(&client, o, stream, &r.put);
	if (rc == 0 && !o->put_only && !o->latency_only)
		rc = bench_other_phases(&client, o, stream, &r, &api_hist, &log_hist);
	if (o->stream == NULL)
		cli_bench_stream_delete(&client, stream);
	if (rc != 0) {
		fprintf(stderr, "sluice bench api: a phase failed: %s\n", strerror(-rc));
		bench_targets_free(&r.put);
		kc_client_close(&client);
		return CMD_EXIT_ERROR;
	}
	if (o->put_only) {
		bench_report_put(o, &r.put);
		bench_report_put_line(o, &r.put);
	} else if (o->latency_only) {
		bench_report_latency(&api_hist, &log_hist);
		printf(BENCH_LAT_LINE, (double)cli_hist_percentile(&api_hist, 50) / 1e3,
		       (double)cli_hist_percentile(&api_hist, 99) / 1e3,
		       (double)cli_hist_percentile(&log_hist, 50) / 1e3,
		       (double)cli_hist_percentile(&log_hist, 99) / 1e3,
		       (unsigned long long)r.latency_acked);
	} else {
		bench_report(&client, o, &r, &api_hist, &log_hist);
	}
	bench_targets_free(&r.put);
	kc_client_close(&client);
	return r.put.failed > 0 || r.h2c_non_2xx > 0 ? CMD_EXIT_PARTIAL : CMD_EXIT_OK;
}

/* --hash-keys into o->hash_keys: 1..BENCH_HASH_KEYS_MAX decimal keys. */
static int
bench_hash_keys_parse(struct bench_opts *o)
{
	char *copy = strdup(o->hash_keys_arg);
	char *save = NULL;

	if (copy == NULL)
		return -ENOMEM;
	for (char *k = strtok_r(copy, ",", &save); k != NULL; k = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(k);

		if (o->hash_key_count == BENCH_HASH_KEYS_MAX || n > BENCH_HASH_KEY_DIGITS_MAX)
			goto out_invalid;
		for (size_t i = 0; i < n; i++)
			if (!isdigit((unsigned char)k[i]))
				goto out_invalid;
		o->hash_keys[o->hash_key_count++] = k;
	}
	if (o->hash_key_count > 0) {
		o->hash_keys_copy = copy;   /* The keys point into it. */
		return 0;
	}
out_invalid:
	free(copy);
	o->hash_key_count = 0;
	return -EINVAL;
}

int
cmd_bench_api(int argc, char **argv)
{
	struct bench_opts o = {
		.log_dir = "/tmp", .connections = 4, .shards = 4,
		.duration_ns = 5000000000ull, .latency_count = 2000,
	};
	const struct cli_opt table[] = {
		CLI_CONN_OPTS(&o.conn),
		{ "connections", CLI_OPT_COUNT, &o.connections, 1, BENCH_CONNECTIONS_MAX, "N",
		  "PutRecords connections, one request in flight each (default 4)" },
		{ "shards", CLI_OPT_COUNT, &o.shards, 1, BENCH_SHARDS_MAX, "N",
		  "shards of the benchmark stream (default 4)" },
		{ "duration", CLI_OPT_DURATION, &o.duration_ns, 100000000ull, 0, "TIME",
		  "length of the PutRecords phase (default 5s)" },
		{ "latency-count", CLI_OPT_COUNT, &o.latency_count, 10, 10000000, "N",
		  "single PutRecords and log appends timed (default 2000)" },
		{ "log-dir", CLI_OPT_STRING, &o.log_dir, 0, 0, "DIR",
		  "where the baseline log is made: put it on sluiced's disk (default /tmp)" },
		{ "enhanced-monitoring", CLI_OPT_BOOL, &o.enhanced_monitoring, 0, 0, NULL,
		  "enable every shard-level metric on the stream first (their cost)" },
		{ "put-only", CLI_OPT_BOOL, &o.put_only, 0, 0, NULL,
		  "PutRecords phase alone on --stream, then one bench-api-put: line" },
		{ "latency-only", CLI_OPT_BOOL, &o.latency_only, 0, 0, NULL,
		  "PutRecord/log latency phases alone on --stream, then a bench-api-lat: line" },
		{ "stream", CLI_OPT_STRING, &o.stream, 0, 0, "NAME",
		  "an existing stream (--put-only, --latency-only): not created, not deleted" },
		{ "rate", CLI_OPT_COUNT, &o.rate, 0, BENCH_RATE_MAX, "N",
		  "offered records/s over all connections, paced (default 0: closed loop)" },
		{ "hash-keys", CLI_OPT_STRING, &o.hash_keys_arg, 0, 0, "K,K,...",
		  "connection i puts to ExplicitHashKey i mod n (decimal, one shard each)" },
	};
	struct cli_args args;
	bool done = false;
	int rc = cli_parse_or_usage(argc, argv, bench_synopsis, table, ARRAY_SIZE(table), &args,
				    &done);

	if (done)
		return rc;
	if (args.positional_count > 0 || (o.put_only && o.latency_only) ||
	    ((o.put_only || o.latency_only) != (o.stream != NULL))) {
		fprintf(stderr, "sluice bench api: %s\n", args.positional_count > 0 ?
			"unexpected argument" : "--stream goes with one of --put-only and "
			"--latency-only");
		cli_args_usage(stderr, bench_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	if (o.stream != NULL && !cli_stream_name_valid(o.stream)) {
		fprintf(stderr, "sluice bench api: bad stream name '%s'\n", o.stream);
		return CMD_EXIT_USAGE;
	}
	if (o.hash_keys_arg != NULL && bench_hash_keys_parse(&o) != 0) {
		fprintf(stderr, "sluice bench api: --hash-keys: 1 to %u decimal keys of at most %u "
			"digits, comma-separated\n", BENCH_HASH_KEYS_MAX, BENCH_HASH_KEY_DIGITS_MAX);
		return CMD_EXIT_USAGE;
	}
	rc = bench_run(&o);
	free(o.hash_keys_copy);
	return rc;
}
