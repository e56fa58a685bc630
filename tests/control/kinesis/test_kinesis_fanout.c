/*
 * SubscribeToShard at the actions' level, on a fake monotonic clock (the subscription's
 * lifetime) and with a bounded stream (the harness's stream_room): the initial-response
 * then an event with every durable record; a stream that refuses an event keeps its
 * position and loses nothing once WRITABLE; the 5-minute lifetime ends the stream on
 * the fake clock, not before; one subscription per consumer and shard; a deregistered
 * consumer's subscription ends; a CBOR request's events carry CBOR payloads (blobs as
 * byte strings, timestamps as tag 1), decoded with libcbor; records another producer
 * made durable wake the loop (kinesis_event_fd) while a subscription is open, and only
 * then.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <criterion/criterion.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/eventstream.h"
#include "control/kinesis.h"
#include "nvme-log/log.h"
#include "tests/control/kinesis/harness.h"

static struct harness h;
static uint64_t fake_now_ns = 1000000000ull;

static uint64_t
fake_mono_ns(void)
{
	return fake_now_ns;
}

static void
setup(void)
{
	harness_open(&h, 0);
	kinesis_fanout_clock_set(h.k, fake_mono_ns);
}

static void
teardown(void)
{
	harness_close(&h);
}

TestSuite(kinesis_fanout, .init = setup, .fini = teardown, .timeout = 60);

/* A stream with one shard and an ACTIVE consumer; returns the consumer ARN (static). */
static const char *
stream_with_consumer(void)
{
	static char arn[512];
	char body[512];
	cJSON *r;

	cJSON_Delete(harness_ok(&h, "CreateStream", "{\"StreamName\":\"f\",\"ShardCount\":1}"));
	r = harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"f\"}");
	snprintf(body, sizeof(body), "{\"StreamARN\":\"%s\",\"ConsumerName\":\"c\"}",
		 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "StreamDescriptionSummary"),
				     "StreamARN")->valuestring);
	cJSON_Delete(r);
	r = harness_ok(&h, "RegisterStreamConsumer", body);
	snprintf(arn, sizeof(arn), "%s",
		 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "Consumer"), "ConsumerARN")->valuestring);
	cJSON_Delete(r);
	return arn;
}

static void
put(uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count; i++) {
		char body[160];
		char data[16];
		char b64[32];

		snprintf(data, sizeof(data), "r%05u", i);
		b64[base64_encode(data, 6, b64)] = '\0';
		snprintf(body, sizeof(body), "{\"StreamName\":\"f\",\"PartitionKey\":\"k\","
			 "\"Data\":\"%s\"}", b64);
		cJSON_Delete(harness_ok(&h, "PutRecord", body));
	}
}

static struct api_call *
subscribe(const char *arn, const char *position)
{
	char body[768];
	struct api_call *call;

	snprintf(body, sizeof(body), "{\"ConsumerARN\":\"%s\",\"ShardId\":\"shardId-000000000000\","
		 "\"StartingPosition\":%s}", arn, position);
	call = harness_call(&h, "SubscribeToShard", body);
	cr_assert_eq(call->status, 200, "%s: %.*s", call->type, (int)call->out.size,
		     call->out.data);
	cr_assert(call->streaming);
	return call;
}

/*
 * Decodes the messages in the call's stream from *at (an initial-response is skipped):
 * checks the records are numbered from *next on, advancing it. Returns the events.
 */
static uint32_t
events_read(struct api_call *call, size_t *at, uint32_t *next)
{
	static struct es_message m;
	uint32_t events = 0;
	size_t used;

	while (*at < call->out.size) {
		const struct es_header *type;
		cJSON *doc;
		const cJSON *rec;

		cr_assert_eq(es_decode((const uint8_t *)call->out.data + *at, call->out.size - *at,
				       &m, &used), 0);
		*at += used;
		type = es_message_header(&m, ":event-type");
		cr_assert_not_null(type);
		if (type->value_size == 16 && memcmp(type->value, "initial-response", 16) == 0)
			continue;
		cr_assert_eq(type->value_size, 21);
		doc = cJSON_ParseWithLength((const char *)m.payload, m.payload_size);
		cr_assert_not_null(doc);
		cr_assert_not_null(cJSON_GetObjectItem(doc, "ContinuationSequenceNumber"));
		cr_assert_not_null(cJSON_GetObjectItem(doc, "MillisBehindLatest"));
		cJSON_ArrayForEach(rec, cJSON_GetObjectItem(doc, "Records")) {
			const char *text = cJSON_GetObjectItem(rec, "Data")->valuestring;
			uint8_t data[16];
			char want[16];

			snprintf(want, sizeof(want), "r%05u", *next);
			cr_assert_eq(base64_decode(text, strlen(text), data, sizeof(data)), 6);
			cr_assert_eq(memcmp(data, want, 6), 0, "record %u out of order", *next);
			(*next)++;
		}
		cJSON_Delete(doc);
		events++;
	}
	return events;
}

static void
poll_once(void)
{
	kinesis_poll(h.k, clock_real_ns());
}

Test(kinesis_fanout, events_carry_every_durable_record_then_the_lifetime_ends_them)
{
	const char *arn = stream_with_consumer();
	struct api_call *call;
	uint32_t records = 0;
	size_t at = 0;

	put(0, 30);
	call = subscribe(arn, "{\"Type\":\"TRIM_HORIZON\"}");
	cr_assert_eq(memcmp(call->out.data + 12 + 15, "initial-response", 16), 0);
	cr_assert_geq(events_read(call, &at, &records), 1);
	cr_assert_eq(records, 30);
	put(30, 20);
	poll_once();
	events_read(call, &at, &records);
	cr_assert_eq(records, 50);
	/* A second subscription of the same consumer and shard is refused. */
	harness_expect_error(&h, "SubscribeToShard", "{\"ConsumerARN\":\"x\",\"ShardId\":"
			     "\"shardId-000000000000\",\"StartingPosition\":{\"Type\":\"LATEST\"}}",
			     "ResourceNotFoundException", "Consumer x not found.");
	{
		char body[768];

		snprintf(body, sizeof(body), "{\"ConsumerARN\":\"%s\",\"ShardId\":"
			 "\"shardId-000000000000\",\"StartingPosition\":{\"Type\":\"LATEST\"}}", arn);
		harness_expect_error(&h, "SubscribeToShard", body, "ResourceInUseException", NULL);
	}
	/* A second before five minutes: still open. At five minutes: ended. */
	fake_now_ns += (KINESIS_SUBSCRIPTION_LIFETIME_MS - 1000) * 1000000ull;
	poll_once();
	cr_assert(!call->stream_ended, "ended before its lifetime");
	fake_now_ns += 1000 * 1000000ull;
	poll_once();
	cr_assert(call->stream_ended, "not ended after 5 minutes");
	/* The slot is free: the consumer subscribes again. */
	harness_call_free(call);
	call = subscribe(arn, "{\"Type\":\"LATEST\"}");
	cr_assert(!call->stream_ended);
	call->stream_fn(call->stream_ctx, API_STREAM_GONE);
	cr_assert(call->stream_ended, "GONE ends it");
	harness_call_free(call);
}

Test(kinesis_fanout, a_refused_event_is_sent_again_when_writable)
{
	const char *arn = stream_with_consumer();
	struct api_call *call;
	uint32_t records = 0;
	size_t at = 0;

	call = subscribe(arn, "{\"Type\":\"TRIM_HORIZON\"}");
	events_read(call, &at, &records);
	cr_assert_eq(records, 0);
	call->stream_room = call->out.size;  /* Full: every write is refused now. */
	put(0, 40);
	poll_once();
	cr_assert_eq(call->out.size, at, "a write past the room was taken");
	call->stream_room = 0;
	call->stream_fn(call->stream_ctx, API_STREAM_WRITABLE);
	events_read(call, &at, &records);
	cr_assert_eq(records, 40, "records were lost while refused: %u", records);
	harness_call_free(call);
}

Test(kinesis_fanout, deregistering_the_consumer_ends_its_subscription)
{
	const char *arn = stream_with_consumer();
	struct api_call *call = subscribe(arn, "{\"Type\":\"LATEST\"}");
	char body[600];

	snprintf(body, sizeof(body), "{\"ConsumerARN\":\"%s\"}", arn);
	cJSON_Delete(harness_ok(&h, "DeregisterStreamConsumer", body));
	cr_assert(call->stream_ended);
	harness_call_free(call);
}

/* The value at `key` of the CBOR map `map` (definite or not), or NULL. */
static cbor_item_t *
cbor_member(const cbor_item_t *map, const char *key)
{
	struct cbor_pair *pairs = cbor_map_handle(map);

	for (size_t i = 0; i < cbor_map_size(map); i++)
		if (cbor_isa_string(pairs[i].key) && cbor_string_length(pairs[i].key) == strlen(key) &&
		    memcmp(cbor_string_handle(pairs[i].key), key, strlen(key)) == 0)
			return pairs[i].value;
	return NULL;
}

/* A CBOR request's subscription: every event's payload is CBOR, as the Java SDK v2 reads. */
Test(kinesis_fanout, a_cbor_request_gets_cbor_events)
{
	static struct es_message m;
	const char *arn = stream_with_consumer();
	struct api_call *call;
	uint32_t next = 0;
	size_t at = 0;
	size_t used;

	put(0, 25);
	h.cbor = true;
	call = subscribe(arn, "{\"Type\":\"TRIM_HORIZON\"}");
	put(25, 5);
	poll_once();
	while (at < call->out.size) {
		struct cbor_load_result loaded;
		const struct es_header *type;
		const struct es_header *content;
		cbor_item_t *doc;
		cbor_item_t *records;

		cr_assert_eq(es_decode((const uint8_t *)call->out.data + at, call->out.size - at,
				       &m, &used), 0);
		at += used;
		type = es_message_header(&m, ":event-type");
		content = es_message_header(&m, ":content-type");
		cr_assert(content != NULL && content->value_size == 26 &&
			  memcmp(content->value, "application/x-amz-cbor-1.1", 26) == 0);
		doc = cbor_load(m.payload, m.payload_size, &loaded);
		cr_assert(doc != NULL && loaded.error.code == CBOR_ERR_NONE && cbor_isa_map(doc),
			  "an event's payload is not one CBOR map");
		cr_assert_eq(loaded.read, m.payload_size, "bytes after the CBOR map");
		if (type->value_size == 16 && memcmp(type->value, "initial-response", 16) == 0) {
			cr_assert_eq(cbor_map_size(doc), 0);
			cbor_decref(&doc);
			continue;
		}
		cr_assert(cbor_isa_string(cbor_member(doc, "ContinuationSequenceNumber")));
		cr_assert(cbor_isa_uint(cbor_member(doc, "MillisBehindLatest")));
		records = cbor_member(doc, "Records");
		cr_assert(records != NULL && cbor_isa_array(records));
		for (size_t i = 0; i < cbor_array_size(records); i++) {
			cbor_item_t *rec = cbor_array_handle(records)[i];
			cbor_item_t *data = cbor_member(rec, "Data");
			cbor_item_t *ts = cbor_member(rec, "ApproximateArrivalTimestamp");
			char want[16];

			snprintf(want, sizeof(want), "r%05u", next);
			cr_assert(cbor_isa_bytestring(data) && cbor_bytestring_is_definite(data),
				  "Data is not a byte string");
			cr_assert_eq(cbor_bytestring_length(data), 6);
			cr_assert_eq(memcmp(cbor_bytestring_handle(data), want, 6), 0,
				     "record %u out of order", next);
			/* Tag 1 over epoch milliseconds (this century), as the SDK writes them. */
			cr_assert(ts != NULL && cbor_isa_tag(ts) && cbor_tag_value(ts) == 1);
			cr_assert_gt(cbor_get_int(cbor_move(cbor_tag_item(ts))), 1000000000000ull);
			next++;
		}
		cbor_decref(&doc);
	}
	cr_assert_eq(next, 30, "%u of 30 records in CBOR events", next);
	harness_call_free(call);
	h.cbor = false;
}

/* ---- The log's durable eventfd is watched only while a subscription is open ---- */

static bool
fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1;
}

/*
 * One record on the shard from a producer of the test's own (another writer, as the
 * dataplane or, in cluster mode, the follower side is), durable, and the log's durable
 * eventfd signalled for it (it stays readable: nobody else reads it while unwatched).
 */
static void
foreign_append(struct log_producer *p, uint64_t log_id, uint32_t n)
{
	struct log_record_in rec = { .partition_key = "k", .partition_key_size = 1,
				     .arrival_ns = clock_real_ns() };
	struct log_completion done;
	struct log_batch *b = log_batch_get(p);
	uint64_t deadline = clock_mono_ns() + 20ull * 1000000000u;
	char data[16];

	snprintf(data, sizeof(data), "r%05u", n);
	rec.data = data;
	rec.data_size = 6;
	cr_assert_not_null(b);
	cr_assert_eq(log_batch_add(b, &rec), 0);
	cr_assert_eq(log_batch_submit(p, b, log_id, n), 0);
	while (log_completions_poll(p, &done, 1) == 0) {
		cr_assert(clock_mono_ns() < deadline, "the foreign append never became durable");
		fd_readable(log_producer_event_fd(p), 10);
	}
	cr_assert_eq(done.error, 0);
	cr_assert(fd_readable(log_durable_event_fd(h.log), 20000),
		  "the writer signalled the log's durable eventfd");
}

Test(kinesis_fanout, records_made_durable_elsewhere_wake_the_loop_only_while_a_subscription_is_open)
{
	const char *arn = stream_with_consumer();
	struct kinesis_stream *s = kinesis_stream_find(h.k, "f", 1);
	struct log_producer *p;
	struct api_call *call;
	uint32_t records = 0;
	size_t at = 0;

	cr_assert_not_null(s);
	cr_assert_eq(log_producer_open(h.log, &p), 0);
	poll_once();  /* The stream's creation and the consumer's are behind us. */
	/* No subscription: a durable window elsewhere does not wake the server's loop. */
	foreign_append(p, s->shards[0].log_id, 0);
	cr_assert(!fd_readable(kinesis_event_fd(h.k), 0), "woken with no subscription open");
	/* Open (TRIM_HORIZON): it gets the record at once; the next wakes the loop. */
	call = subscribe(arn, "{\"Type\":\"TRIM_HORIZON\"}");
	events_read(call, &at, &records);
	cr_assert_eq(records, 1);
	poll_once();  /* Clears what the subscription's start left readable. */
	foreign_append(p, s->shards[0].log_id, 1);
	cr_assert(fd_readable(kinesis_event_fd(h.k), 20000), "not woken for a subscriber");
	poll_once();
	events_read(call, &at, &records);
	cr_assert_eq(records, 2, "the subscription got the record made durable elsewhere");
	/* Ended: unwatched again. */
	call->stream_fn(call->stream_ctx, API_STREAM_GONE);
	cr_assert(call->stream_ended);
	harness_call_free(call);
	poll_once();
	foreign_append(p, s->shards[0].log_id, 2);
	cr_assert(!fd_readable(kinesis_event_fd(h.k), 0), "woken after the subscription ended");
	log_producer_close(p);
}
