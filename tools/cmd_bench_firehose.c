/*
 * cmd_bench_firehose.c - `sluice bench firehose`: does delivery keep up with
 * ingest in one sluiced (issue 16's goals, docs/BENCHMARKS.md)?
 *
 *   SETUP   a stream of --shards shards and a KinesisStreamAsSource delivery
 *           stream reading it: GZIP, SizeInMBs --size-mb, IntervalInSeconds --interval
 *   PHASE 1 PutRecords of 500 x 100 B from --connections closed loops for
 *           --duration (saturation). Over the same window, after a warm-up of
 *           IntervalInSeconds + 2 s: records acknowledged durable per second
 *           (ingest) and records delivered per second (status.json's
 *           delivered_records), and their ratio (goal >= 0.8)
 *   DRAIN   until everything acknowledged is delivered
 *   PHASE 2 the same puts paced at half the ingest rate of phase 1 for
 *           --duration; DeliveryToS3.DataFreshness (status.json's freshness_ms)
 *           sampled every FH_BENCH_SAMPLE_NS after the warm-up: p99 (goal <=
 *           IntervalInSeconds + 2 s)
 *
 * Last line: firehose-bench: ingest_rps=.. delivered_rps=.. ratio=.. freshness_p99_s=..
 * --short runs 2 s phases: for the test suite, which checks behaviour, not figures.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "tools/cli_args.h"
#include "tools/cli_bench.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define FH_BENCH_RECORDS 500u
#define FH_BENCH_RECORD_SIZE 100u
#define FH_BENCH_BODIES 8u
#define FH_BENCH_CONNECTIONS_MAX 64u
#define FH_BENCH_SHARDS_MAX 64u
#define FH_BENCH_SAMPLE_NS 100000000ull      /* Freshness and progress samples. */
#define FH_BENCH_SAMPLES_MAX 36000u          /* An hour of samples. */
#define FH_BENCH_WARMUP_EXTRA_S 2u           /* Past IntervalInSeconds: the first cuts. */
#define FH_BENCH_DRAIN_NS (120ull * 1000000000ull)
#define FH_BENCH_SHORT_NS 2000000000ull

struct fh_bench_opts {
	const char *endpoint;
	const char *admin;
	uint64_t connections;
	uint64_t shards;
	uint64_t duration_ns;
	uint64_t interval_s;
	uint64_t size_mb;
	bool short_run;
};

/* What the put threads share: their bodies, the pace, what was acknowledged. */
struct fh_bench_load {
	const struct kc_client *client;
	char *requests[FH_BENCH_BODIES];
	size_t sizes[FH_BENCH_BODIES];
	uint64_t deadline_ns;
	uint64_t period_ns;          /* Per connection between puts; 0: back to back. */
	uint64_t acked;              /* Records acknowledged durable (atomic). */
	uint64_t failed;             /* Records refused or lost with a connection (atomic). */
};

struct fh_bench_figures {
	double ingest_rps;
	double delivered_rps;
	double freshness_p99_s;
	uint64_t failed;
	bool drained;
};

static void *
fh_bench_worker(void *arg)
{
	struct fh_bench_load *load = arg;
	struct cli_rx rx = { 0 };
	int fd = kc_connect(load->client, false);
	uint64_t next_ns = clock_mono_ns();

	for (uint32_t i = 0; fd >= 0 && clock_mono_ns() < __atomic_load_n(&load->deadline_ns,
								       __ATOMIC_RELAXED); i++) {
		struct kc_http_response response;
		const char *failed;
		uint64_t f = FH_BENCH_RECORDS;

		if (load->period_ns != 0) {
			uint64_t now = clock_mono_ns();

			if (next_ns > now)
				usleep((useconds_t)((next_ns - now) / 1000u));
			next_ns += load->period_ns;
		}
		if (cli_round_trip(&rx, fd, load->requests[i % FH_BENCH_BODIES],
				   load->sizes[i % FH_BENCH_BODIES], &response) != 0)
			break;
		failed = response.status != 200 ? NULL :
			 memmem(rx.buf + response.header_size, response.body_size,
				"\"FailedRecordCount\":", 20);
		if (failed != NULL)
			f = strtoull(failed + 20, NULL, 10);
		__atomic_fetch_add(&load->failed, f, __ATOMIC_RELAXED);
		__atomic_fetch_add(&load->acked, FH_BENCH_RECORDS - f, __ATOMIC_RELAXED);
	}
	if (fd >= 0)
		close(fd);
	else
		__atomic_fetch_add(&load->failed, FH_BENCH_RECORDS, __ATOMIC_RELAXED);
	free(rx.buf);
	return NULL;
}

/* The delivery stream's delivered_records and freshness_ms from status.json. */
static int
fh_bench_sample(const struct fh_bench_opts *o, const char *name, uint64_t *delivered,
		uint64_t *freshness_ms)
{
	struct cli_admin_http http;
	const cJSON *list, *s;
	cJSON *json = NULL;
	int rc = cli_admin_get(o->admin, "/status.json", NULL, &http);

	if (rc == 0 && http.code == 200)
		json = cJSON_Parse(http.body);
	free(http.body);
	list = cJSON_GetObjectItemCaseSensitive(json, "delivery_streams");
	rc = -ENOENT;
	cJSON_ArrayForEach(s, list) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");

		if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
			continue;
		*delivered = (uint64_t)cli_json_number(s, "delivered_records");
		*freshness_ms = (uint64_t)cli_json_number(s, "freshness_ms");
		rc = 0;
	}
	cJSON_Delete(json);
	return rc;
}

static void
fh_bench_sleep_until(uint64_t mono_ns)
{
	uint64_t now = clock_mono_ns();

	if (mono_ns > now)
		usleep((useconds_t)((mono_ns - now) / 1000u));
}

static int
fh_bench_threads(struct fh_bench_load *load, const struct fh_bench_opts *o, pthread_t *threads)
{
	for (uint32_t i = 0; i < o->connections; i++)
		if (pthread_create(&threads[i], NULL, fh_bench_worker, load) != 0) {
			/* The started ones stop at once. */
			__atomic_store_n(&load->deadline_ns, 0, __ATOMIC_RELAXED);
			for (uint32_t j = 0; j < i; j++)
				pthread_join(threads[j], NULL);
			return -EAGAIN;
		}
	return 0;
}

/*
 * Sleeps until the load's deadline. --short checks that the bench runs, not figures:
 * on a starved machine no put may be answered within its 1 s window, so there the
 * deadline (the puts with it) moves on, before it passes, until one put counted after
 * `acked_at_start` is answered, bounded by FH_BENCH_DRAIN_NS.
 */
static void
fh_bench_window_end(struct fh_bench_load *load, const struct fh_bench_opts *o,
		    uint64_t acked_at_start)
{
	uint64_t bound = load->deadline_ns + FH_BENCH_DRAIN_NS;

	for (;;) {
		uint64_t now = clock_mono_ns();
		uint64_t due = __atomic_load_n(&load->deadline_ns, __ATOMIC_RELAXED);

		if (o->short_run && due < bound && due < now + FH_BENCH_SAMPLE_NS &&
		    __atomic_load_n(&load->acked, __ATOMIC_RELAXED) == acked_at_start)
			__atomic_store_n(&load->deadline_ns, now + FH_BENCH_SAMPLE_NS,
					 __ATOMIC_RELAXED);
		else if (now >= due)
			return;
		usleep(FH_BENCH_SAMPLE_NS / 4000u);
	}
}

/* Phase 1: saturation; ingest and delivery rates over the same window. */
static int
fh_bench_saturate(struct fh_bench_load *load, const struct fh_bench_opts *o, const char *ds,
		  struct fh_bench_figures *f)
{
	pthread_t threads[FH_BENCH_CONNECTIONS_MAX];
	uint64_t start = clock_mono_ns(), fresh, d_a = 0, d_b = 0, a_a, a_b, t_a, t_b;
	uint64_t warm = min_u64((o->interval_s + FH_BENCH_WARMUP_EXTRA_S) * 1000000000ull,
				o->duration_ns / 2);
	int rc;

	load->deadline_ns = start + o->duration_ns;
	load->period_ns = 0;
	rc = fh_bench_threads(load, o, threads);
	if (rc != 0)
		return rc;
	fh_bench_sleep_until(start + warm);
	t_a = clock_mono_ns();
	a_a = __atomic_load_n(&load->acked, __ATOMIC_RELAXED);
	rc = fh_bench_sample(o, ds, &d_a, &fresh);
	fh_bench_window_end(load, o, a_a);
	t_b = clock_mono_ns();
	a_b = __atomic_load_n(&load->acked, __ATOMIC_RELAXED);
	if (rc == 0)
		rc = fh_bench_sample(o, ds, &d_b, &fresh);
	for (uint32_t i = 0; i < o->connections; i++)
		pthread_join(threads[i], NULL);
	if (rc != 0)
		return rc;
	f->ingest_rps = (double)(a_b - a_a) / ((double)(t_b - t_a) / 1e9);
	f->delivered_rps = (double)(d_b - d_a) / ((double)(t_b - t_a) / 1e9);
	return 0;
}

/* Waits until every acknowledged record is delivered (bounded). */
static bool
fh_bench_drain(struct fh_bench_load *load, const struct fh_bench_opts *o, const char *ds)
{
	uint64_t deadline = clock_mono_ns() + FH_BENCH_DRAIN_NS, delivered = 0, fresh;
	uint64_t acked = __atomic_load_n(&load->acked, __ATOMIC_RELAXED);

	while (fh_bench_sample(o, ds, &delivered, &fresh) == 0 && delivered < acked &&
	       clock_mono_ns() < deadline)
		usleep(FH_BENCH_SAMPLE_NS / 1000u);
	return delivered >= acked;
}

static int
fh_bench_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Phase 2: half load; DataFreshness sampled after the warm-up, p99. */
static int
fh_bench_half(struct fh_bench_load *load, const struct fh_bench_opts *o, const char *ds,
	      struct fh_bench_figures *f)
{
	static uint64_t samples[FH_BENCH_SAMPLES_MAX];
	pthread_t threads[FH_BENCH_CONNECTIONS_MAX];
	uint64_t start = clock_mono_ns(), warm = (o->interval_s + 1) * 1000000000ull;
	uint32_t n = 0;
	double rate = f->ingest_rps / 2;
	int rc;

	load->deadline_ns = start + warm + o->duration_ns;
	load->period_ns = rate > 0 ? (uint64_t)(1e9 * FH_BENCH_RECORDS *
						(double)o->connections / rate) : 1000000000ull;
	rc = fh_bench_threads(load, o, threads);
	if (rc != 0)
		return rc;
	fh_bench_sleep_until(start + warm);
	while (rc == 0 && clock_mono_ns() < load->deadline_ns && n < FH_BENCH_SAMPLES_MAX) {
		uint64_t delivered, next = clock_mono_ns() + FH_BENCH_SAMPLE_NS;

		rc = fh_bench_sample(o, ds, &delivered, &samples[n]);
		n += rc == 0;
		fh_bench_sleep_until(next);
	}
	for (uint32_t i = 0; i < o->connections; i++)
		pthread_join(threads[i], NULL);
	if (rc != 0 || n == 0)
		return rc != 0 ? rc : -ENODATA;
	qsort(samples, n, sizeof(samples[0]), fh_bench_cmp);
	f->freshness_p99_s = (double)samples[(n * 99u) / 100u] / 1e3;
	return 0;
}

static int
fh_bench_load_init(struct fh_bench_load *load, const struct kc_client *client,
		   const char *stream)
{
	*load = (struct fh_bench_load){ .client = client };
	for (uint32_t b = 0; b < FH_BENCH_BODIES; b++) {
		size_t size;
		char *body = cli_put_records_body(stream, FH_BENCH_RECORDS, FH_BENCH_RECORD_SIZE, NULL,
						  &size);
		int rc = body == NULL ? -ENOMEM :
			 kc_request_build(client, "PutRecords", body, size, clock_real_ns(),
					  &load->requests[b], &load->sizes[b]);

		free(body);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void
fh_bench_load_free(struct fh_bench_load *load)
{
	for (uint32_t b = 0; b < FH_BENCH_BODIES; b++)
		free(load->requests[b]);
}

/* The delivery stream reading `stream` (its ARN from DescribeStreamSummary). */
static int
fh_bench_delivery_create(struct kc_client *client, const struct fh_bench_opts *o,
			 const char *stream, const char *ds)
{
	char json[1024];
	cJSON *req, *resp = NULL;
	const cJSON *arn;
	int rc;

	snprintf(json, sizeof(json), "{\"StreamName\":\"%s\"}", stream);
	req = cJSON_Parse(json);
	rc = kc_call(client, "DescribeStreamSummary", req, &resp);
	cJSON_Delete(req);
	arn = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(resp, "StreamDescriptionSummary"), "StreamARN");
	if (rc == 0 && !cJSON_IsString(arn))
		rc = -EBADMSG;
	if (rc == 0)
		snprintf(json, sizeof(json), "{\"DeliveryStreamName\":\"%s\",\"DeliveryStreamType\":"
			 "\"KinesisStreamAsSource\",\"KinesisStreamSourceConfiguration\":{"
			 "\"KinesisStreamARN\":\"%s\",\"RoleARN\":\"arn:aws:iam::000000000000:role/"
			 "bench\"},\"ExtendedS3DestinationConfiguration\":{\"RoleARN\":\"arn:aws:"
			 "iam::000000000000:role/bench\",\"BucketARN\":\"arn:aws:s3:::%s\","
			 "\"CompressionFormat\":\"GZIP\",\"BufferingHints\":{\"SizeInMBs\":%u,"
			 "\"IntervalInSeconds\":%llu}}}", ds, arn->valuestring, ds,
			 (unsigned)o->size_mb, (unsigned long long)o->interval_s);
	cJSON_Delete(resp);
	return rc == 0 ? cli_bench_call(client, "Firehose_20150804.CreateDeliveryStream", json) :
	       rc;
}

static void
fh_bench_report(const struct fh_bench_opts *o, const struct fh_bench_figures *f)
{
	double ratio = f->ingest_rps > 0 ? f->delivered_rps / f->ingest_rps : 0;

	printf("sluice bench firehose: %s, %llu shards, %llu connections, %.1f s phases, "
	       "GZIP, SizeInMBs %llu, IntervalInSeconds %llu%s\n", o->endpoint,
	       (unsigned long long)o->shards, (unsigned long long)o->connections,
	       (double)o->duration_ns / 1e9, (unsigned long long)o->size_mb,
	       (unsigned long long)o->interval_s, o->short_run ? " (--short: not figures)" : "");
	printf("  %-44s %12.0f records/s  (%llu failed)\n", "PutRecords 500 x 100 B, durable",
	       f->ingest_rps, (unsigned long long)f->failed);
	printf("  %-44s %12.0f records/s\n", "delivered (same window)", f->delivered_rps);
	printf("  %-44s %12.2f  (goal >= 0.8)\n", "delivered / ingest", ratio);
	printf("  %-44s %12.2f s  (goal <= %llu s)%s\n", "DataFreshness p99 at half load",
	       f->freshness_p99_s, (unsigned long long)o->interval_s + 2,
	       f->drained ? "" : "  (not drained after phase 1)");
	printf("firehose-bench: ingest_rps=%.0f delivered_rps=%.0f ratio=%.2f freshness_p99_s=%.2f\n",
	       f->ingest_rps, f->delivered_rps, ratio, f->freshness_p99_s);
}

static int
fh_bench_run(const struct fh_bench_opts *o)
{
	struct kc_config kcfg = { .endpoint = o->endpoint };
	struct fh_bench_figures f = { 0 };
	static struct fh_bench_load load;
	struct kc_client client;
	char stream[48], ds[64], json[128];
	int rc = kc_client_init(&client, &kcfg);

	if (rc != 0) {
		fprintf(stderr, "sluice bench firehose: bad endpoint %s\n", o->endpoint);
		return CMD_EXIT_USAGE;
	}
	snprintf(stream, sizeof(stream), "bench-fh-%d-%llu", (int)getpid(),
		 (unsigned long long)(clock_real_ns() / 1000000000u));
	snprintf(ds, sizeof(ds), "%s-gz", stream);
	rc = cli_bench_stream_create(&client, stream, o->shards);
	if (rc == 0)
		rc = fh_bench_delivery_create(&client, o, stream, ds);
	if (rc == 0)
		rc = fh_bench_load_init(&load, &client, stream);
	if (rc == 0)
		rc = fh_bench_saturate(&load, o, ds, &f);
	if (rc == 0) {
		f.drained = fh_bench_drain(&load, o, ds);
		rc = fh_bench_half(&load, o, ds, &f);
	}
	f.failed = __atomic_load_n(&load.failed, __ATOMIC_RELAXED);
	fh_bench_load_free(&load);
	snprintf(json, sizeof(json), "{\"DeliveryStreamName\":\"%s\"}", ds);
	cli_bench_call(&client, "Firehose_20150804.DeleteDeliveryStream", json);
	cli_bench_stream_delete(&client, stream);
	kc_client_close(&client);
	if (rc != 0) {
		fprintf(stderr, "sluice bench firehose: %s (admin %s): %s\n", o->endpoint, o->admin,
			strerror(-rc));
		return CMD_EXIT_ERROR;
	}
	fh_bench_report(o, &f);
	return f.failed > 0 || !f.drained ? CMD_EXIT_PARTIAL : CMD_EXIT_OK;
}

static const char fh_bench_synopsis[] =
	"sluice bench firehose [--endpoint URL] [--admin ADDR:PORT] [options]";

int
cmd_bench_firehose(int argc, char **argv)
{
	struct fh_bench_opts o = {
		.endpoint = KC_DEFAULT_ENDPOINT, .admin = "127.0.0.1:4568", .connections = 4,
		.shards = 4, .duration_ns = 10000000000ull, .interval_s = 1, .size_mb = 5,
	};
	const struct cli_opt table[] = {
		{ "endpoint", CLI_OPT_STRING, &o.endpoint, 0, 0, "URL",
		  "sluiced's API (auth off), default " KC_DEFAULT_ENDPOINT },
		{ "admin", CLI_OPT_STRING, &o.admin, 0, 0, "ADDR:PORT",
		  "sluiced's admin listener (status.json), default 127.0.0.1:4568" },
		{ "connections", CLI_OPT_COUNT, &o.connections, 1, FH_BENCH_CONNECTIONS_MAX, "N",
		  "PutRecords connections, one request in flight each (default 4)" },
		{ "shards", CLI_OPT_COUNT, &o.shards, 1, FH_BENCH_SHARDS_MAX, "N",
		  "shards of the source stream (default 4)" },
		{ "duration", CLI_OPT_DURATION, &o.duration_ns, 1000000000ull, 0, "TIME",
		  "length of each phase (default 10s)" },
		{ "interval", CLI_OPT_COUNT, &o.interval_s, 0, 900, "SECONDS",
		  "the delivery stream's IntervalInSeconds (default 1)" },
		{ "size-mb", CLI_OPT_COUNT, &o.size_mb, 1, 128, "MIB",
		  "the delivery stream's SizeInMBs (default 5, AWS's)" },
		{ "short", CLI_OPT_BOOL, &o.short_run, 0, 0, NULL,
		  "2 s phases: checks that it runs, measures nothing worth keeping" },
	};
	struct cli_args args;
	bool done;
	int rc = cli_parse_or_usage(argc, argv, fh_bench_synopsis, table, ARRAY_SIZE(table), &args,
				    &done);

	if (done)
		return rc;
	if (args.positional_count > 0) {
		fprintf(stderr, "sluice bench firehose: unexpected argument\n");
		return CMD_EXIT_USAGE;
	}
	if (o.short_run)
		o.duration_ns = FH_BENCH_SHORT_NS;
	return fh_bench_run(&o);
}
