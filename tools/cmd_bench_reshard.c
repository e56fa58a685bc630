/*
 * cmd_bench_reshard.c - `sluice bench reshard`: the pause writers see while
 * a running sluiced reshards, measured through the Kinesis API (issue 7,
 * "Benchmark": affected writers p99 <= 1 ms, others unchanged).
 *
 *   PHASE     WRITERS                    MAIN THREAD
 *   warm-up   idle                       one SplitShard + MergeShards, timed
 *   baseline  affected and other putting sleeps --reshards x the warm-up time
 *   reshard   affected and other putting --reshards x (SplitShard, ACTIVE,
 *                                        MergeShards of the children, ACTIVE)
 *
 * Two writers, each a thread with its own keep-alive connection, in closed
 * loops of single PutRecord calls: "affected" with an ExplicitHashKey inside
 * shard 0 (the one split and merged), "other" inside the last shard (never
 * touched). A separate connection each, so a stalled affected call cannot
 * delay the other writer. A put answered ProvisionedThroughputExceeded (what
 * a put caught by a reshard gets) is retried at once and its latency runs
 * from the first attempt to the success: the pause a producer sees.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/hashkey.h"
#include "tools/cli_common.h"
#include "tools/cli_hist.h"
#include "tools/cmd.h"

#define RB_WAIT_NS (60ull * 1000000000ull)  /* Longest wait for ACTIVE. */
#define RB_RETRY_MAX 1000                   /* Throttled retries of one put. */
#define RB_NAME_SIZE 129

static const char rb_synopsis[] =
	"sluice bench reshard [--endpoint URL] [--stream NAME] [--shards N] [--reshards N] "
	"[--json]";

enum rb_phase {
	RB_PHASE_BASELINE,
	RB_PHASE_RESHARD,
	RB_PHASE_COUNT,
	RB_PHASE_IDLE = RB_PHASE_COUNT,  /* Writers wait. */
	RB_PHASE_STOP,
};

enum rb_target { RB_AFFECTED, RB_OTHER, RB_TARGET_COUNT };

static const char *const rb_target_names[RB_TARGET_COUNT] = { "affected", "other" };
static const char *const rb_phase_names[RB_PHASE_COUNT] = { "baseline", "reshard" };

struct rb_writer {
	pthread_t thread;
	struct kc_client client;
	cJSON *request;                          /* The PutRecord body, reused. */
	const atomic_int *phase;
	struct cli_hist hist[RB_PHASE_COUNT];    /* Nanoseconds per successful put. */
	uint64_t errors[RB_PHASE_COUNT];
	uint64_t retries[RB_PHASE_COUNT];
	char last_error[sizeof(((struct kc_error *)0)->type) +
			sizeof(((struct kc_error *)0)->message) + 2];  /* "type: message" */
};

struct rb_bench {
	struct cli_conn conn;
	const char *stream;
	uint64_t shards;
	uint64_t reshards;
	bool json;
	char name[RB_NAME_SIZE];
	struct kc_client client;                 /* The main thread's: control calls. */
	atomic_int phase;
	struct rb_writer writers[RB_TARGET_COUNT];
	uint64_t warmup_ns;
	uint64_t reshard_ns;                     /* Length of the reshard phase. */
	uint64_t baseline_ns;
};

/* One put, retried while throttled. 0, or the last error. */
static int
rb_put(struct rb_writer *w, enum rb_phase phase)
{
	for (uint32_t attempt = 0;; attempt++) {
		cJSON *response = NULL;
		int err = kc_call(&w->client, "PutRecord", w->request, &response);

		cJSON_Delete(response);
		if (err == -EREMOTEIO && attempt < RB_RETRY_MAX &&
		    strcmp(w->client.error.type, "ProvisionedThroughputExceededException") == 0) {
			w->retries[phase]++;
			continue;
		}
		return err;
	}
}

static void *
rb_writer_main(void *arg)
{
	struct rb_writer *w = arg;

	for (;;) {
		int phase = atomic_load(w->phase);
		uint64_t start;
		int err;

		if (phase == RB_PHASE_STOP)
			return NULL;
		if (phase == RB_PHASE_IDLE) {
			usleep(1000);
			continue;
		}
		start = clock_mono_ns();
		err = rb_put(w, (enum rb_phase)phase);
		if (err == 0) {
			cli_hist_record(&w->hist[phase], clock_mono_ns() - start);
			continue;
		}
		w->errors[phase]++;
		snprintf(w->last_error, sizeof(w->last_error), "%s: %s",
			 err == -EREMOTEIO ? w->client.error.type : "transport",
			 err == -EREMOTEIO ? w->client.error.message : strerror(-err));
		usleep(1000);  /* Do not spin on a dead connection. */
	}
}

/* A control call with {"StreamName": name} plus up to two string fields. */
static int
rb_control(struct rb_bench *b, const char *action, const char *k1, const char *v1,
	   const char *k2, const char *v2)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", b->name);
	if (k1 != NULL)
		cJSON_AddStringToObject(request, k1, v1);
	if (k2 != NULL)
		cJSON_AddStringToObject(request, k2, v2);
	err = kc_call(&b->client, action, request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	if (err != 0)
		cli_call_error("bench reshard", action, &b->client, err);
	return err;
}

static int
rb_wait_active(struct rb_bench *b)
{
	uint64_t deadline = clock_mono_ns() + RB_WAIT_NS;

	for (;;) {
		cJSON *request = cJSON_CreateObject();
		cJSON *response = NULL;
		const char *status;
		bool active;
		int err;

		cJSON_AddStringToObject(request, "StreamName", b->name);
		err = kc_call(&b->client, "DescribeStreamSummary", request, &response);
		cJSON_Delete(request);
		if (err != 0) {
			cli_call_error("bench reshard", "DescribeStreamSummary", &b->client, err);
			return err;
		}
		status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(response, "StreamDescriptionSummary"),
			"StreamStatus"));
		active = status != NULL && strcmp(status, "ACTIVE") == 0;
		cJSON_Delete(response);
		if (active)
			return 0;
		if (clock_mono_ns() > deadline) {
			fprintf(stderr, "sluice bench reshard: %s not ACTIVE in 60 s\n", b->name);
			return -ETIMEDOUT;
		}
		usleep(1000);  /* Polling fast: the wait is part of what is measured. */
	}
}

/* Whether `id` is some shard's parent: then it is closed (or closing). */
static bool
rb_is_parent(const cJSON *shards, const char *id)
{
	const cJSON *shard;

	cJSON_ArrayForEach(shard, shards) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(shard, "ParentShardId"));
		const char *a = cJSON_GetStringValue(
			cJSON_GetObjectItem(shard, "AdjacentParentShardId"));

		if ((p != NULL && strcmp(p, id) == 0) || (a != NULL && strcmp(a, id) == 0))
			return true;
	}
	return false;
}

/*
 * The open shards inside the affected range [0, end]: their ids ordered by
 * starting hash key, at most two. Returns how many, or a negative errno.
 */
static int
rb_affected_shards(struct rb_bench *b, hashkey_t end, char ids[2][64], hashkey_t starts[2])
{
	cJSON *shards = NULL;
	const cJSON *shard;
	int count = 0;
	int err = cli_shards_list(&b->client, b->name, &shards);

	if (err != 0) {
		cli_call_error("bench reshard", "ListShards", &b->client, err);
		return err;
	}
	cJSON_ArrayForEach(shard, shards) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(shard, "ShardId"));
		const char *start_text = cJSON_GetStringValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(shard, "HashKeyRange"), "StartingHashKey"));
		hashkey_t start;

		if (id == NULL || start_text == NULL ||
		    hashkey_parse_decimal(start_text, strlen(start_text), &start) != 0 ||
		    start > end || rb_is_parent(shards, id))
			continue;
		if (count == 2) {
			count = -EPROTO;
			break;
		}
		snprintf(ids[count], sizeof(ids[count]), "%s", id);
		starts[count++] = start;
	}
	cJSON_Delete(shards);
	if (count == 2 && starts[0] > starts[1]) {
		char id[64];

		memcpy(id, ids[0], sizeof(id));
		memcpy(ids[0], ids[1], sizeof(id));
		memcpy(ids[1], id, sizeof(id));
	}
	return count;
}

/* One SplitShard of the affected range at its middle, then MergeShards of the children. */
static int
rb_cycle(struct rb_bench *b)
{
	hashkey_t end = hashkey_range_start(1, (uint32_t)b->shards) - 1;
	char middle[HASHKEY_DECIMAL_SIZE];
	char ids[2][64];
	hashkey_t starts[2];
	int count = rb_affected_shards(b, end, ids, starts);
	int err;

	if (count != 1) {
		fprintf(stderr, "sluice bench reshard: %d open shards in the affected range, "
			"expected 1\n", count);
		return count < 0 ? count : -EPROTO;
	}
	hashkey_format_decimal(end / 2 + 1, middle);
	err = rb_control(b, "SplitShard", "ShardToSplit", ids[0], "NewStartingHashKey", middle);
	if (err == 0)
		err = rb_wait_active(b);
	if (err != 0)
		return err;
	count = rb_affected_shards(b, end, ids, starts);
	if (count != 2) {
		fprintf(stderr, "sluice bench reshard: %d open shards after SplitShard, "
			"expected 2\n", count);
		return count < 0 ? count : -EPROTO;
	}
	err = rb_control(b, "MergeShards", "ShardToMerge", ids[0], "AdjacentShardToMerge",
			 ids[1]);
	return err != 0 ? err : rb_wait_active(b);
}

static int
rb_writer_init(struct rb_bench *b, enum rb_target target)
{
	struct rb_writer *w = &b->writers[target];
	uint32_t shard = target == RB_AFFECTED ? 0 : (uint32_t)b->shards - 1;
	hashkey_t width = hashkey_range_start(1, (uint32_t)b->shards);
	char key[HASHKEY_DECIMAL_SIZE];
	int code;

	/* A quarter into the shard: inside shard 0's lower child after a split. */
	hashkey_format_decimal(hashkey_range_start(shard, (uint32_t)b->shards) + width / 4, key);
	code = cli_conn_open("bench reshard", &b->conn, &w->client);
	if (code != 0)
		return code;
	w->phase = &b->phase;
	w->request = cJSON_CreateObject();
	cJSON_AddStringToObject(w->request, "StreamName", b->name);
	cJSON_AddStringToObject(w->request, "PartitionKey", rb_target_names[target]);
	cJSON_AddStringToObject(w->request, "ExplicitHashKey", key);
	cJSON_AddStringToObject(w->request, "Data", "AAAAAAAAAAAAAAAAAAAAAA==");
	for (int i = 0; i < RB_PHASE_COUNT; i++)
		cli_hist_reset(&w->hist[i]);
	return 0;
}

static void
rb_writer_fini(struct rb_writer *w)
{
	cJSON_Delete(w->request);
	kc_client_close(&w->client);
}

/* Warm-up cycle (timed), baseline of --reshards cycles' length, then the reshards. */
static int
rb_phases(struct rb_bench *b)
{
	uint64_t start = clock_mono_ns();
	int err = rb_cycle(b);

	if (err != 0)
		return err;
	b->warmup_ns = clock_mono_ns() - start;
	b->baseline_ns = b->warmup_ns * b->reshards;
	atomic_store(&b->phase, RB_PHASE_BASELINE);
	usleep((useconds_t)(b->baseline_ns / 1000));
	atomic_store(&b->phase, RB_PHASE_RESHARD);
	start = clock_mono_ns();
	for (uint64_t i = 0; i < b->reshards && err == 0; i++)
		err = rb_cycle(b);
	b->reshard_ns = clock_mono_ns() - start;
	return err;
}

static int
rb_run(struct rb_bench *b)
{
	int started = 0;
	int err = 0;
	int code;

	atomic_store(&b->phase, RB_PHASE_IDLE);
	for (int t = 0; t < RB_TARGET_COUNT; t++) {
		code = rb_writer_init(b, (enum rb_target)t);
		if (code != 0)
			goto out_stop;
		err = -pthread_create(&b->writers[t].thread, NULL, rb_writer_main,
				      &b->writers[t]);
		if (err != 0) {
			rb_writer_fini(&b->writers[t]);
			goto out_stop;
		}
		started++;
	}
	err = rb_phases(b);
out_stop:
	atomic_store(&b->phase, RB_PHASE_STOP);
	for (int t = 0; t < started; t++) {
		pthread_join(b->writers[t].thread, NULL);
		rb_writer_fini(&b->writers[t]);
	}
	return started == RB_TARGET_COUNT && err == 0 ? 0 : -EIO;
}

static double
rb_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void
rb_print_table(const struct rb_bench *b)
{
	printf("%-9s %-9s %9s %7s %8s %10s %10s %10s\n", "PHASE", "WRITER", "PUTS", "ERRORS",
	       "RETRIES", "P50_US", "P99_US", "MAX_US");
	for (int p = 0; p < RB_PHASE_COUNT; p++) {
		for (int t = 0; t < RB_TARGET_COUNT; t++) {
			const struct rb_writer *w = &b->writers[t];
			const struct cli_hist *h = &w->hist[p];

			printf("%-9s %-9s %9llu %7llu %8llu %10.1f %10.1f %10.1f\n",
			       rb_phase_names[p], rb_target_names[t],
			       (unsigned long long)h->count, (unsigned long long)w->errors[p],
			       (unsigned long long)w->retries[p], rb_us(cli_hist_percentile(h, 50)),
			       rb_us(cli_hist_percentile(h, 99)), rb_us(h->max));
		}
	}
	printf("warm-up cycle %.1f ms, baseline %.1f ms, reshard phase %.1f ms "
	       "(%.1f ms per SplitShard+MergeShards)\n", rb_us(b->warmup_ns) / 1000.0,
	       rb_us(b->baseline_ns) / 1000.0, rb_us(b->reshard_ns) / 1000.0,
	       rb_us(b->reshard_ns) / 1000.0 / (double)b->reshards);
	for (int t = 0; t < RB_TARGET_COUNT; t++) {
		if (b->writers[t].last_error[0] != '\0')
			printf("%s writer's last error: %s\n", rb_target_names[t],
			       b->writers[t].last_error);
	}
}

static void
rb_print_json(const struct rb_bench *b)
{
	cJSON *root = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(root, "stream", b->name);
	cJSON_AddNumberToObject(root, "shards", (double)b->shards);
	cJSON_AddNumberToObject(root, "reshards", (double)b->reshards);
	cJSON_AddNumberToObject(root, "baseline_ms", rb_us(b->baseline_ns) / 1000.0);
	cJSON_AddNumberToObject(root, "reshard_ms", rb_us(b->reshard_ns) / 1000.0);
	for (int p = 0; p < RB_PHASE_COUNT; p++) {
		cJSON *phase = cJSON_AddObjectToObject(root, rb_phase_names[p]);

		for (int t = 0; t < RB_TARGET_COUNT; t++) {
			const struct rb_writer *w = &b->writers[t];
			const struct cli_hist *h = &w->hist[p];
			cJSON *o = cJSON_AddObjectToObject(phase, rb_target_names[t]);

			cJSON_AddNumberToObject(o, "puts", (double)h->count);
			cJSON_AddNumberToObject(o, "errors", (double)w->errors[p]);
			cJSON_AddNumberToObject(o, "retries", (double)w->retries[p]);
			cJSON_AddNumberToObject(o, "p50_us", rb_us(cli_hist_percentile(h, 50)));
			cJSON_AddNumberToObject(o, "p99_us", rb_us(cli_hist_percentile(h, 99)));
			cJSON_AddNumberToObject(o, "max_us", rb_us(h->max));
		}
	}
	text = cJSON_Print(root);
	if (text != NULL)
		printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

static void
rb_report(const struct rb_bench *b)
{
	struct cli_hist baseline;

	if (b->json)
		rb_print_json(b);
	else
		rb_print_table(b);
	/* The baseline is both writers: with no reshard the two are the same case. */
	cli_hist_reset(&baseline);
	for (int t = 0; t < RB_TARGET_COUNT; t++)
		cli_hist_merge(&baseline, &b->writers[t].hist[RB_PHASE_BASELINE]);
	printf("reshard-bench: affected_p99_us=%.1f other_p99_us=%.1f baseline_p99_us=%.1f "
	       "reshards=%llu\n",
	       rb_us(cli_hist_percentile(&b->writers[RB_AFFECTED].hist[RB_PHASE_RESHARD], 99)),
	       rb_us(cli_hist_percentile(&b->writers[RB_OTHER].hist[RB_PHASE_RESHARD], 99)),
	       rb_us(cli_hist_percentile(&baseline, 99)), (unsigned long long)b->reshards);
}

static int
rb_create(struct rb_bench *b)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", b->name);
	cJSON_AddNumberToObject(request, "ShardCount", (double)b->shards);
	err = kc_call(&b->client, "CreateStream", request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	if (err != 0)
		cli_call_error("bench reshard", "CreateStream", &b->client, err);
	return err;
}

static int
rb_main(struct rb_bench *b)
{
	int code = cli_conn_open("bench reshard", &b->conn, &b->client);
	int err;

	if (code != 0)
		return code;
	err = rb_create(b);
	if (err != 0) {
		kc_client_close(&b->client);
		return CMD_EXIT_ERROR;
	}
	err = rb_wait_active(b);
	if (err == 0)
		err = rb_run(b);
	if (err == 0)
		rb_report(b);
	if (rb_control(b, "DeleteStream", NULL, NULL, NULL, NULL) != 0 && err == 0)
		err = -EIO;
	kc_client_close(&b->client);
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}

int
cmd_bench_reshard(int argc, char **argv)
{
	static struct rb_bench b;
	const struct cli_opt table[] = {
		{ "stream", CLI_OPT_STRING, &b.stream, 0, 0, "NAME",
		  "stream to create, reshard and delete (default bench-reshard-<pid>)" },
		{ "shards", CLI_OPT_COUNT, &b.shards, 2, 10000, "N",
		  "shards of the stream (default 4)" },
		{ "reshards", CLI_OPT_COUNT, &b.reshards, 1, 100000, "N",
		  "SplitShard+MergeShards cycles of shard 0 (default 20)" },
		{ "json", CLI_OPT_BOOL, &b.json, 0, 0, NULL, "print the results as JSON" },
		CLI_CONN_OPTS(&b.conn),
	};
	struct cli_args args;
	bool done;
	int code;

	memset(&b, 0, sizeof(b));
	b.shards = 4;
	b.reshards = 20;
	code = cli_parse_or_usage(argc, argv, rb_synopsis, table, ARRAY_SIZE(table), &args,
				  &done);
	if (done)
		return code;
	if (args.positional_count != 0 || (b.stream != NULL && !cli_stream_name_valid(b.stream))) {
		fprintf(stderr, "sluice bench reshard: %s\n", args.positional_count != 0 ?
			"takes no positional arguments" : "invalid stream name");
		cli_args_usage(stderr, rb_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	if (b.stream != NULL)
		snprintf(b.name, sizeof(b.name), "%s", b.stream);
	else
		snprintf(b.name, sizeof(b.name), "bench-reshard-%d", (int)getpid());
	return rb_main(&b);
}
