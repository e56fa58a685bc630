/*
 * cmd_bench_fanout.c - `sluice bench fanout`: enhanced fan-out against a running sluiced.
 *
 * One shard, written at --rate records/s (PutRecords every 10 ms, 100 B records whose
 * first 8 bytes are the send time), read at once by
 *
 *   READER                 HOW
 *   SubscribeToShard x S   one HTTP/1.1 connection each, EventStream decoded here
 *   GetRecords poller      one loop: GetRecords, sleep --poll-interval (AWS allows 5/s)
 *
 * for S = 1, then S = --subscribers (20), in the same run. Per reader: records/s, the
 * latency from put (send) to delivery, and from the writer's acknowledgement to delivery
 * (0 when delivered before the writer read its answer); for the writer, put ->
 * acknowledged. Durability lies between put and acknowledgement, so durable->delivered
 * lies between acknowledged->delivered and put->delivered.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/eventstream.h"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/cli_hist.h"
#include "tools/cmd.h"
#include "tools/kinesis_client.h"

#define FB_SUBSCRIBERS_MAX 20u          /* AWS: 20 consumers per stream. */
#define FB_TICK_NS 10000000ull          /* A PutRecords every 10 ms. */
#define FB_RECORD_SIZE 100u
#define FB_DRAIN_NS (20ull * 1000000000ull) /* Readers get the last records within this. */
#define FB_RX_SIZE (8u << 20)
#define FB_BATCHES_MAX (1u << 20)       /* PutRecords of one phase (2.9 hours of ticks). */

static const char fb_synopsis[] = "sluice bench fanout [--rate N] [--duration D] "
	"[--subscribers N] [--poll-interval D] [connection options]";

struct fb_reader {
	struct fb_bench *b;
	pthread_t thread;
	int fd;
	char consumer_arn[512];
	struct cli_hist hist;     /* put -> delivered, ns. */
	struct cli_hist after_ack; /* acknowledged -> delivered, ns (0: delivered before). */
	uint64_t records;
	int error;
};

struct fb_bench {
	struct cli_conn conn;
	struct kc_client client;
	char name[64];
	char stream_arn[512];
	uint64_t rate;
	uint64_t duration_ns;
	uint64_t subscribers;
	uint64_t poll_interval_ns;
	struct fb_reader readers[FB_SUBSCRIBERS_MAX];
	struct fb_reader poller;
	struct cli_hist put_hist; /* put -> acknowledged, ns. */
	_Atomic uint64_t *ack_ns; /* By batch: when the writer got its answer (0: not yet). */
	uint64_t batch;
	uint64_t produced;
	atomic_bool stop;
};

/* The send time in a record's first 8 bytes -> now: one latency. */
static void
fb_record_seen(struct fb_reader *r, const char *b64, size_t size)
{
	uint8_t *data = NULL;
	size_t n = 0;
	uint64_t sent_ns;
	uint64_t batch;
	uint64_t now = clock_mono_ns();
	uint64_t ack;

	if (kc_base64_decode(b64, size, &data, &n) != 0 || n < 2 * sizeof(sent_ns)) {
		free(data);
		r->error = -EBADMSG;
		return;
	}
	memcpy(&sent_ns, data, sizeof(sent_ns));
	memcpy(&batch, data + sizeof(sent_ns), sizeof(batch));
	free(data);
	cli_hist_record(&r->hist, now - sent_ns);
	ack = batch < FB_BATCHES_MAX ? atomic_load(&r->b->ack_ns[batch]) : 0;
	cli_hist_record(&r->after_ack, ack != 0 && now > ack ? now - ack : 0);
	__atomic_store_n(&r->records, r->records + 1, __ATOMIC_RELAXED);
}

static void
fb_records_seen(struct fb_reader *r, const cJSON *records)
{
	const cJSON *rec;

	cJSON_ArrayForEach(rec, records) {
		const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "Data"));

		if (data != NULL)
			fb_record_seen(r, data, strlen(data));
	}
}

/* Decodes the whole EventStream messages in buf; returns the bytes used. */
static size_t
fb_events(struct fb_reader *r, const uint8_t *buf, size_t size)
{
	static _Thread_local struct es_message m;
	size_t at = 0;
	size_t used;

	while (es_decode(buf + at, size - at, &m, &used) == 0) {
		const struct es_header *type = es_message_header(&m, ":event-type");

		at += used;
		if (type != NULL && type->value_size == 21) {
			cJSON *doc = cJSON_ParseWithLength((const char *)m.payload, m.payload_size);

			fb_records_seen(r, cJSON_GetObjectItemCaseSensitive(doc, "Records"));
			cJSON_Delete(doc);
		}
	}
	return at;
}

/* Moves whole chunks of buf[*at..size) into body; returns false at the last chunk. */
static bool
fb_dechunk(char *buf, size_t *at, size_t size, uint8_t *body, size_t *body_size)
{
	for (;;) {
		char *line_end = memmem(buf + *at, size - *at, "\r\n", 2);
		size_t chunk;

		if (line_end == NULL)
			return true;
		chunk = strtoul(buf + *at, NULL, 16);
		if (chunk == 0)
			return false;
		if ((size_t)(line_end - buf) + 2 + chunk + 2 > size ||
		    *body_size + chunk > FB_RX_SIZE)
			return true;
		memcpy(body + *body_size, line_end + 2, chunk);
		*body_size += chunk;
		*at = (size_t)(line_end - buf) + 2 + chunk + 2;
	}
}

static void *
fb_subscriber_main(void *arg)
{
	struct fb_reader *r = arg;
	char *buf = malloc(FB_RX_SIZE);
	uint8_t *body = malloc(FB_RX_SIZE);
	size_t used = 0;
	size_t body_size = 0;
	char *head_end = NULL;

	while (buf != NULL && body != NULL) {
		ssize_t n = kc_io_recv(r->fd, NULL, buf + used, FB_RX_SIZE - used - 1);
		size_t at = 0;
		size_t done;

		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		if (head_end == NULL) {
			head_end = strstr(buf, "\r\n\r\n");
			if (head_end == NULL)
				continue;
			if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
				fprintf(stderr, "sluice bench fanout: SubscribeToShard: %s\n", buf);
				r->error = -EREMOTEIO;
				break;
			}
			at = (size_t)(head_end - buf) + 4;
		}
		if (!fb_dechunk(buf, &at, used, body, &body_size))
			break;
		memmove(buf, buf + at, used - at);
		used -= at;
		done = fb_events(r, body, body_size);
		memmove(body, body + done, body_size - done);
		body_size -= done;
	}
	free(buf);
	free(body);
	return NULL;
}

static int
fb_subscribe(struct fb_bench *b, struct fb_reader *r)
{
	char body[1024];
	char *request = NULL;
	size_t request_size = 0;
	int n = snprintf(body, sizeof(body), "{\"ConsumerARN\":\"%s\",\"ShardId\":"
			 "\"shardId-000000000000\",\"StartingPosition\":{\"Type\":\"LATEST\"}}",
			 r->consumer_arn);
	int err = kc_request_build(&b->client, "SubscribeToShard", body, (size_t)n,
				   clock_real_ns(), &request, &request_size);

	if (err != 0)
		return err;
	r->b = b;
	r->fd = kc_connect(&b->client, false);
	if (r->fd < 0) {
		free(request);
		return r->fd;
	}
	if (kc_io_send(r->fd, NULL, request, request_size) != (ssize_t)request_size)
		err = -EIO;
	free(request);
	if (err == 0)
		err = -pthread_create(&r->thread, NULL, fb_subscriber_main, r);
	return err;
}

/* A control call with one string member and optionally a second. */
static int
fb_call(struct fb_bench *b, const char *action, const char *k1, const char *v1, const char *k2,
	const char *v2, cJSON **response_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, k1, v1);
	if (k2 != NULL)
		cJSON_AddStringToObject(request, k2, v2);
	err = kc_call(&b->client, action, request, &response);
	cJSON_Delete(request);
	if (err != 0)
		cli_call_error("bench fanout", action, &b->client, err);
	if (response_out != NULL)
		*response_out = response;
	else
		cJSON_Delete(response);
	return err;
}

static const char *
fb_path(const cJSON *json, const char *a, const char *b)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(json, a), b));
}

/* The stream (one shard, ACTIVE) and its consumers (ACTIVE). */
static int
fb_setup(struct fb_bench *b)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", b->name);
	cJSON_AddNumberToObject(request, "ShardCount", 1);
	err = kc_call(&b->client, "CreateStream", request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	for (int i = 0; err == 0 && i < 6000; i++) {
		err = fb_call(b, "DescribeStreamSummary", "StreamName", b->name, NULL, NULL,
			      &response);
		if (err == 0 && strcmp(fb_path(response, "StreamDescriptionSummary",
					       "StreamStatus"), "ACTIVE") == 0) {
			snprintf(b->stream_arn, sizeof(b->stream_arn), "%s",
				 fb_path(response, "StreamDescriptionSummary", "StreamARN"));
			cJSON_Delete(response);
			break;
		}
		cJSON_Delete(response);
		usleep(10000);
	}
	for (uint64_t i = 0; err == 0 && i < b->subscribers; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bench-%llu", (unsigned long long)i);
		err = fb_call(b, "RegisterStreamConsumer", "StreamARN", b->stream_arn,
			      "ConsumerName", name, &response);
		if (err == 0)
			snprintf(b->readers[i].consumer_arn, sizeof(b->readers[i].consumer_arn),
				 "%s", fb_path(response, "Consumer", "ConsumerARN"));
		cJSON_Delete(response);
	}
	/* ACTIVE after the server's status delay: a subscription before it is refused. */
	for (int i = 0; err == 0 && i < 6000; i++) {
		err = fb_call(b, "DescribeStreamConsumer", "ConsumerARN",
			      b->readers[b->subscribers - 1].consumer_arn, NULL, NULL, &response);
		if (err == 0 && strcmp(fb_path(response, "ConsumerDescription", "ConsumerStatus"),
				       "ACTIVE") == 0) {
			cJSON_Delete(response);
			return 0;
		}
		cJSON_Delete(response);
		usleep(10000);
	}
	return err != 0 ? err : -ETIMEDOUT;
}

static void *
fb_poller_main(void *arg)
{
	struct fb_reader *r = arg;
	struct fb_bench *b = r->b;
	struct kc_client client;
	cJSON *response = NULL;
	char iterator[1024];

	if (kc_client_init(&client, &(struct kc_config){ .endpoint = b->conn.endpoint }) != 0)
		return NULL;
	{
		cJSON *req = cJSON_CreateObject();

		cJSON_AddStringToObject(req, "StreamName", b->name);
		cJSON_AddStringToObject(req, "ShardId", "shardId-000000000000");
		cJSON_AddStringToObject(req, "ShardIteratorType", "LATEST");
		r->error = kc_call(&client, "GetShardIterator", req, &response);
		cJSON_Delete(req);
	}
	if (r->error == 0)
		snprintf(iterator, sizeof(iterator), "%s", cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(response, "ShardIterator")));
	cJSON_Delete(response);
	while (r->error == 0 && !atomic_load(&b->stop)) {
		cJSON *req = cJSON_CreateObject();
		const char *next;

		cJSON_AddStringToObject(req, "ShardIterator", iterator);
		r->error = kc_call(&client, "GetRecords", req, &response);
		cJSON_Delete(req);
		if (r->error != 0)
			break;
		fb_records_seen(r, cJSON_GetObjectItemCaseSensitive(response, "Records"));
		next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(response,
									     "NextShardIterator"));
		if (next != NULL)
			snprintf(iterator, sizeof(iterator), "%s", next);
		cJSON_Delete(response);
		usleep((useconds_t)(b->poll_interval_ns / 1000));
	}
	kc_client_close(&client);
	return NULL;
}

/* One PutRecords of `count` records stamped with their send time. */
static int
fb_put(struct fb_bench *b, uint32_t count)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *records = cJSON_AddArrayToObject(request, "Records");
	cJSON *response = NULL;
	uint64_t sent_ns = clock_mono_ns();
	uint8_t data[FB_RECORD_SIZE];
	int err;

	memset(data, 'f', sizeof(data));
	memcpy(data, &sent_ns, sizeof(sent_ns));
	memcpy(data + sizeof(sent_ns), &b->batch, sizeof(b->batch));
	for (uint32_t i = 0; i < count; i++) {
		cJSON *rec = cJSON_CreateObject();
		char *b64 = NULL;
		size_t b64_size = 0;

		kc_base64_encode(data, sizeof(data), &b64, &b64_size);
		cJSON_AddStringToObject(rec, "Data", b64);
		cJSON_AddStringToObject(rec, "PartitionKey", "k");
		cJSON_AddItemToArray(records, rec);
		free(b64);
	}
	cJSON_AddStringToObject(request, "StreamName", b->name);
	err = kc_call(&b->client, "PutRecords", request, &response);
	cJSON_Delete(request);
	if (err == 0 && cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
				response, "FailedRecordCount")) > 0)
		err = -EAGAIN;
	cJSON_Delete(response);
	if (err == 0) {
		uint64_t now = clock_mono_ns();

		if (b->batch < FB_BATCHES_MAX)
			atomic_store(&b->ack_ns[b->batch], now);
		cli_hist_record_count(&b->put_hist, now - sent_ns, count);
		b->produced += count;
	}
	b->batch++;
	return err;
}

static int
fb_produce(struct fb_bench *b)
{
	uint64_t start = clock_mono_ns();
	uint64_t per_tick_x100 = b->rate * FB_TICK_NS / 10000000ull; /* Records x100 a tick. */
	uint64_t owed_x100 = 0;

	for (uint64_t tick = 1; clock_mono_ns() - start < b->duration_ns; tick++) {
		uint64_t due = start + tick * FB_TICK_NS;
		uint64_t now = clock_mono_ns();
		int err;

		owed_x100 += per_tick_x100;
		err = fb_put(b, (uint32_t)(owed_x100 / 100));
		if (err != 0)
			return err;
		owed_x100 %= 100;
		if (due > now)
			usleep((useconds_t)((due - now) / 1000));
	}
	return 0;
}

static void
fb_line(const char *what, uint64_t readers, const struct cli_hist *h, uint64_t records,
	double seconds)
{
	printf("| %s | %llu | %.0f | %.2f | %.2f | %.2f |\n", what, (unsigned long long)readers,
	       (double)records / seconds, (double)cli_hist_percentile(h, 50) / 1e6,
	       (double)cli_hist_percentile(h, 99) / 1e6, (double)h->max / 1e6);
}

/* One phase: `count` subscribers and the poller while the writer runs. */
static int
fb_phase(struct fb_bench *b, uint64_t count)
{
	struct cli_hist subs;
	struct cli_hist after_ack;
	uint64_t delivered = 0;
	uint64_t drain_end;
	bool drained = false;
	int err = 0;

	atomic_store(&b->stop, false);
	b->produced = 0;
	b->batch = 0;
	memset(b->ack_ns, 0, FB_BATCHES_MAX * sizeof(*b->ack_ns));
	cli_hist_reset(&b->put_hist);
	memset(&b->poller.hist, 0, sizeof(b->poller.hist));
	cli_hist_reset(&b->poller.hist);
	b->poller.records = 0;
	b->poller.b = b;
	cli_hist_reset(&b->poller.after_ack);
	for (uint64_t i = 0; err == 0 && i < count; i++) {
		cli_hist_reset(&b->readers[i].hist);
		cli_hist_reset(&b->readers[i].after_ack);
		b->readers[i].records = 0;
		err = fb_subscribe(b, &b->readers[i]);
	}
	if (err == 0)
		err = -pthread_create(&b->poller.thread, NULL, fb_poller_main, &b->poller);
	usleep(200000);  /* Subscriptions start at LATEST: begin writing once they are open. */
	if (err == 0)
		err = fb_produce(b);
	drain_end = clock_mono_ns() + FB_DRAIN_NS;
	while (!drained && clock_mono_ns() < drain_end) {
		drained = b->poller.records >= b->produced;
		for (uint64_t i = 0; i < count; i++)
			drained = drained && __atomic_load_n(&b->readers[i].records, __ATOMIC_RELAXED) >=
				  b->produced;
		usleep(10000);
	}
	atomic_store(&b->stop, true);
	for (uint64_t i = 0; i < count; i++) {
		shutdown(b->readers[i].fd, SHUT_RDWR);
		pthread_join(b->readers[i].thread, NULL);
		close(b->readers[i].fd);
	}
	pthread_join(b->poller.thread, NULL);
	cli_hist_reset(&subs);
	cli_hist_reset(&after_ack);
	for (uint64_t i = 0; i < count; i++) {
		cli_hist_merge(&subs, &b->readers[i].hist);
		cli_hist_merge(&after_ack, &b->readers[i].after_ack);
		delivered += b->readers[i].records;
		if (b->readers[i].records != b->produced)
			fprintf(stderr, "sluice bench fanout: subscriber %llu got %llu of %llu\n",
				(unsigned long long)i, (unsigned long long)b->readers[i].records,
				(unsigned long long)b->produced);
	}
	{
		double seconds = (double)b->duration_ns / 1e9;

		fb_line("SubscribeToShard, put -> delivered", count, &subs, delivered, seconds);
		fb_line("SubscribeToShard, acknowledged -> delivered", count, &after_ack, delivered,
			seconds);
		fb_line("GetRecords poll, put -> seen", 1, &b->poller.hist, b->poller.records,
			seconds);
		fb_line("GetRecords poll, acknowledged -> seen", 1, &b->poller.after_ack,
			b->poller.records, seconds);
		fb_line("PutRecords, put -> acknowledged (durable)", 1, &b->put_hist, b->produced,
			seconds);
	}
	return err != 0 ? err : drained ? 0 : -ETIMEDOUT;
}

static int
fb_delete(struct fb_bench *b)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", b->name);
	cJSON_AddBoolToObject(request, "EnforceConsumerDeletion", true);
	err = kc_call(&b->client, "DeleteStream", request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	return err;
}

int
cmd_bench_fanout(int argc, char **argv)
{
	static struct fb_bench b;
	const struct cli_opt table[] = {
		{ "rate", CLI_OPT_COUNT, &b.rate, 1, 100000, "N",
		  "records/s written to the shard (default 1000)" },
		{ "duration", CLI_OPT_DURATION, &b.duration_ns, 1000000000ull, 0, "D",
		  "writing time per phase (default 10s)" },
		{ "subscribers", CLI_OPT_COUNT, &b.subscribers, 1, FB_SUBSCRIBERS_MAX, "N",
		  "subscribers of the second phase (default 20; the first has 1)" },
		{ "poll-interval", CLI_OPT_DURATION, &b.poll_interval_ns, 0, 0, "D",
		  "GetRecords poller's sleep between calls (default 200ms: AWS's 5 reads/s)" },
		CLI_CONN_OPTS(&b.conn),
	};
	struct cli_args args;
	bool done;
	int code;
	int err;

	memset(&b, 0, sizeof(b));
	b.rate = 1000;
	b.duration_ns = 10000000000ull;
	b.subscribers = 20;
	b.poll_interval_ns = 200000000ull;
	code = cli_parse_or_usage(argc, argv, fb_synopsis, table, ARRAY_SIZE(table), &args,
				  &done);
	if (done)
		return code;
	code = cli_conn_open("bench fanout", &b.conn, &b.client);
	if (code != 0)
		return code;
	snprintf(b.name, sizeof(b.name), "bench-fanout-%d", (int)getpid());
	b.ack_ns = calloc(FB_BATCHES_MAX, sizeof(*b.ack_ns));
	err = b.ack_ns != NULL ? fb_setup(&b) : -ENOMEM;
	if (err == 0) {
		printf("| reader | readers | records/s | p50 ms | p99 ms | max ms |\n"
		       "|---|---|---|---|---|---|\n");
		err = fb_phase(&b, 1);
	}
	if (err == 0 && b.subscribers > 1) {
		/* The first phase's subscription of consumer 0 ends when the server sees its
		 * connection close: give it a moment, or the next one is ResourceInUse. */
		usleep(500000);
		err = fb_phase(&b, b.subscribers);
	}
	if (fb_delete(&b) != 0 && err == 0)
		err = -EIO;
	kc_client_close(&b.client);
	free(b.ack_ns);
	if (err != 0)
		fprintf(stderr, "sluice bench fanout: %s\n", strerror(-err));
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}
