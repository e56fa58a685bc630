/*
 * kinesis_consumers.c - stream consumers and enhanced fan-out (SubscribeToShard).
 *
 * Consumers live in SQLite (metadata.c's consumers table, removed with their stream)
 * and in a table sized at open. Their status follows from time, as AWS's does:
 *
 *   STATUS    WHILE
 *   CREATING  until stream_status_delay_ms after RegisterStreamConsumer
 *   ACTIVE    then
 *   DELETING  stream_status_delay_ms after DeregisterStreamConsumer (the SQLite row is
 *             gone at once; the memory slot is freed when the time has passed)
 *
 * ARN: arn:aws:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CNAME:CREATION_EPOCH_SECONDS.
 *
 * SubscribeToShard answers with a streaming body (api.h: api_call_stream_*) of
 * EventStream messages (common/eventstream.h):
 *
 *   EVENT                  :event-type / :message-type           PAYLOAD
 *   initial-response       initial-response / event              {}
 *   SubscribeToShardEvent  SubscribeToShardEvent / event         Records,
 *                                                                ContinuationSequenceNumber,
 *                                                                MillisBehindLatest[, ChildShards]
 *
 * Payloads are JSON (:content-type application/json), or CBOR (application/x-amz-cbor-1.1)
 * when the request was CBOR (the Java SDK v2's default): the JSON is built in a second
 * buffer and translated by server_cbor.h, as every other answer to a CBOR request is.
 *
 * Records are pushed as they become durable: the server wakes kinesis_poll() from
 * kinesis_event_fd(), which includes the log's durable eventfd (log_durable_event_fd)
 * while any subscription is open (kinesis_durable_watch: with none, every durable window
 * woke the loop for nothing), so no polling interval sits between durability and delivery. Each pass sends at most
 * one event per subscription (fair across them; kinesis_fanout_timeout_ms says 0 while
 * one has more). A subscription whose peer does not read is refused by the stream
 * (-EAGAIN) and simply stays behind: its position is not advanced, and it resumes when
 * the server reports WRITABLE. It ends after KINESIS_SUBSCRIPTION_LIFETIME_MS, at the
 * end of a closed shard (after an event carrying ChildShards), or when its consumer or
 * stream goes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/diag.h"
#include "common/eventstream.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/policy_store.h"
#include "control/seqnum.h"
#include "control/server_cbor.h"
#include "nvme-log/log.h"

const char *const kinesis_starting_position_types[] = {
	"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP",
	NULL,
};

const char kinesis_eventstream_type[] = "application/vnd.amazon.eventstream";

/*
 * The one event being built: an event of the largest record (10 MiB of data,
 * 13.4 MiB of base64, its JSON fields) fits, framed. botocore reads payloads up
 * to ES_PAYLOAD_SIZE_MAX; an event larger than the buffer could never be sent.
 */
#define KINESIS_EVENT_BUFFER_SIZE (ES_PAYLOAD_SIZE_MAX + 4096u)
static_assert((SLUICE_RECORD_DATA_SIZE_LARGE_MAX + 2u) / 3u * 4u + 64u * 1024u <=
	      ES_PAYLOAD_SIZE_MAX, "an event of the largest record is one botocore reads");

struct kinesis_consumer {
	bool used;
	uint32_t stream_id;
	char name[KINESIS_CONSUMER_NAME_SIZE_MAX + 1];
	size_t name_size;
	uint64_t created_ms;     /* Wall clock. */
	uint64_t deleting_ms;    /* Wall clock when DELETING ends; 0: not deregistered. */
};

struct kinesis_subscription {
	struct kinesis *k;
	struct api_call *call;   /* NULL: the slot is free. */
	uint32_t consumer;       /* Index into the consumer table. */
	uint32_t stream_id;
	uint64_t incarnation;
	uint32_t shard_index;
	uint64_t seq_next;       /* The next log position to deliver. */
	uint64_t last_arrival_ns;
	uint64_t started_ns;     /* fanout->mono_ns() */
	uint64_t event_due_ns;   /* Heartbeat: an event by then even without records. */
	bool blocked;            /* The stream refused an event: wait for WRITABLE. */
	bool retry;              /* No pool buffer for the event: try again next pass. */
	bool cbor;               /* The request was CBOR: so are the events' payloads. */
};

struct kinesis_fanout {
	struct kinesis_consumer consumers[KINESIS_CONSUMERS_MAX];
	struct kinesis_subscription subs[KINESIS_SUBSCRIPTIONS_MAX];
	uint32_t subs_high;      /* No slot at or above this index is in use. */
	struct api_out event;    /* One event being built: prelude, headers, payload, CRC. */
	struct api_out json;     /* A CBOR subscription's payload in JSON, before translation. */
	uint64_t (*mono_ns)(void);
	/* Counters: metrics_fanout_add() (/metrics). */
};

/* ---- Consumers ------------------------------------------------------------ */

static uint64_t
kinesis_consumer_delay_ms(const struct kinesis *k)
{
	return k->config.stream_status_delay_ms;
}

static const char *
kinesis_consumer_status(const struct kinesis *k, const struct kinesis_consumer *c,
			uint64_t now_ms)
{
	if (c->deleting_ms != 0)
		return "DELETING";
	return now_ms < c->created_ms + kinesis_consumer_delay_ms(k) ? "CREATING" : "ACTIVE";
}

/* Frees slots whose DELETING time has passed. */
static void
kinesis_consumers_expire(struct kinesis *k, uint64_t now_ms)
{
	for (uint32_t i = 0; i < KINESIS_CONSUMERS_MAX; i++) {
		struct kinesis_consumer *c = &k->fanout->consumers[i];

		if (c->used && c->deleting_ms != 0 && now_ms >= c->deleting_ms)
			c->used = false;
	}
}

uint32_t
kinesis_consumer_count(const struct kinesis *k, const struct kinesis_stream *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < KINESIS_CONSUMERS_MAX; i++)
		n += k->fanout->consumers[i].used && k->fanout->consumers[i].stream_id == s->stream_id;
	return n;
}

static void
kinesis_consumer_arn(const struct kinesis_stream *s, const struct kinesis_consumer *c,
		     char *buf, size_t size)
{
	snprintf(buf, size, "%s/consumer/%s:%llu", s->arn, c->name,
		 (unsigned long long)(c->created_ms / 1000));
}

/*
 * The consumer of that name: a registered one first, else one still DELETING (in
 * cluster mode the name may be registered again through another node meanwhile).
 */
static struct kinesis_consumer *
kinesis_consumer_find(struct kinesis *k, uint32_t stream_id, const char *name, size_t size)
{
	struct kinesis_consumer *deleting = NULL;

	for (uint32_t i = 0; i < KINESIS_CONSUMERS_MAX; i++) {
		struct kinesis_consumer *c = &k->fanout->consumers[i];

		if (!c->used || c->stream_id != stream_id || c->name_size != size ||
		    memcmp(c->name, name, size) != 0)
			continue;
		if (c->deleting_ms == 0)
			return c;
		deleting = c;
	}
	return deleting;
}

static struct kinesis_consumer *
kinesis_consumer_add(struct kinesis *k, uint32_t stream_id, const char *name, size_t size,
		     uint64_t created_ms)
{
	for (uint32_t i = 0; i < KINESIS_CONSUMERS_MAX; i++) {
		struct kinesis_consumer *c = &k->fanout->consumers[i];

		if (c->used)
			continue;
		memset(c, 0, sizeof(*c));
		c->used = true;
		c->stream_id = stream_id;
		memcpy(c->name, name, size);
		c->name_size = size;
		c->created_ms = created_ms;
		return c;
	}
	return NULL;
}

static int
kinesis_consumer_load(void *arg, uint32_t stream_id, const char *name, size_t size,
		      uint64_t created_ms)
{
	struct kinesis *k = arg;

	if (size > KINESIS_CONSUMER_NAME_SIZE_MAX ||
	    kinesis_consumer_add(k, stream_id, name, size, created_ms) == NULL)
		return -ENOSPC;
	return 0;
}

/*
 * The consumer a ConsumerARN names: "<stream ARN>/consumer/<name>:<epoch>", checked
 * against its resource policy. Replies ResourceNotFoundException (AccessDenied to
 * another account, which learns nothing of what exists) or AccessDenied and
 * returns NULL.
 */
static struct kinesis_consumer *
kinesis_consumer_by_arn(struct kinesis *k, struct api_call *call, const char *arn,
			struct kinesis_stream **s_out)
{
	const char *mark = strstr(arn, "/consumer/");
	const char *colon = mark != NULL ? strrchr(mark, ':') : NULL;
	char stream_arn[KINESIS_ARN_SIZE];
	char expect[KINESIS_CONSUMER_ARN_SIZE];
	struct kinesis_consumer *c = NULL;
	struct kinesis_stream *s = NULL;

	if (colon != NULL && (size_t)(mark - arn) < sizeof(stream_arn)) {
		snprintf(stream_arn, sizeof(stream_arn), "%.*s", (int)(mark - arn), arn);
		for (uint32_t i = 0; i < k->streams_high && s == NULL; i++)
			if (k->streams[i].used && strcmp(k->streams[i].arn, stream_arn) == 0)
				s = &k->streams[i];
	}
	if (s != NULL)
		c = kinesis_consumer_find(k, s->stream_id, mark + 10, (size_t)(colon - mark - 10));
	if (c != NULL)
		kinesis_consumer_arn(s, c, expect, sizeof(expect));
	if (c == NULL || strcmp(expect, arn) != 0) {
		if (kinesis_authorize_missing_arn(k, call, arn))
			kinesis_error(call, "ResourceNotFoundException", "Consumer %s not found.",
				      arn);
		return NULL;
	}
	if (!kinesis_authorize(k, call, s, c->name, arn))
		return NULL;
	*s_out = s;
	return c;
}

const char *
kinesis_consumer_named(struct kinesis_req *r, const char *arn, struct kinesis_stream **s_out,
		       bool *deleting)
{
	struct kinesis_consumer *c;

	kinesis_consumers_expire(r->k, kinesis_now_ms(r->req));
	c = kinesis_consumer_by_arn(r->k, r->call, arn, s_out);
	if (c == NULL)
		return NULL;
	*deleting = c->deleting_ms != 0;
	return c->name;
}

/* Describe/Deregister: ConsumerARN, or StreamARN and ConsumerName (not both ways). */
static struct kinesis_consumer *
kinesis_consumer_resolve(struct kinesis_req *r, struct kinesis_stream **s_out)
{
	const struct kv_value *stream_arn = &r->v[CONSUMER_REF_STREAM_ARN];
	const struct kv_value *name = &r->v[CONSUMER_REF_CONSUMER_NAME];
	const struct kv_value *arn = &r->v[CONSUMER_REF_CONSUMER_ARN];
	const struct kv_value none = { 0 };
	char consumer_arn[KINESIS_CONSUMER_ARN_SIZE];
	struct kinesis_consumer *c;

	if (arn->json != NULL && stream_arn->json == NULL && name->json == NULL)
		return kinesis_consumer_by_arn(r->k, r->call, arn->string, s_out);
	if (arn->json != NULL || stream_arn->json == NULL || name->json == NULL) {
		kinesis_error(r->call, "InvalidArgumentException", "Either ConsumerARN or both "
			      "ConsumerName and StreamARN must be provided.");
		return NULL;
	}
	/* The stream is not checked for a consumer operation: the consumer is, here. */
	*s_out = kinesis_stream_resolve(r->k, r->call, &none, stream_arn);
	if (*s_out == NULL)
		return NULL;
	c = kinesis_consumer_find(r->k, (*s_out)->stream_id, name->string, name->size);
	if (c != NULL)
		kinesis_consumer_arn(*s_out, c, consumer_arn, sizeof(consumer_arn));
	else
		snprintf(consumer_arn, sizeof(consumer_arn), "%s/consumer/%s", (*s_out)->arn,
			 name->string);
	if (c == NULL) {
		if (kinesis_authorize_missing_arn(r->k, r->call, consumer_arn))
			kinesis_error(r->call, "ResourceNotFoundException", "Consumer %s under "
				      "stream %s not found.", name->string, (*s_out)->name);
		return NULL;
	}
	return kinesis_authorize(r->k, r->call, *s_out, c->name, consumer_arn) ? c : NULL;
}

static void
kinesis_out_consumer(struct kinesis *k, struct api_out *out, const struct kinesis_stream *s,
		     const struct kinesis_consumer *c, uint64_t now_ms, bool with_stream)
{
	char arn[KINESIS_CONSUMER_ARN_SIZE];

	kinesis_consumer_arn(s, c, arn, sizeof(arn));
	api_out_printf(out, "{\"ConsumerName\":\"%s\",\"ConsumerARN\":", c->name);
	api_out_json_string(out, arn, strlen(arn));
	api_out_printf(out, ",\"ConsumerStatus\":\"%s\",\"ConsumerCreationTimestamp\":",
		       kinesis_consumer_status(k, c, now_ms));
	kinesis_out_timestamp(out, c->created_ms);
	if (with_stream) {
		api_out_printf(out, ",\"StreamARN\":");
		api_out_json_string(out, s->arn, strlen(s->arn));
	}
	api_out_printf(out, "}");
}

/* RegisterStreamConsumer's Tags into `tags`; false after answering (too many, characters). */
static bool
kinesis_consumer_tags(struct kinesis_req *r, const struct kinesis_stream *s,
		      struct metadata_tag *tags, size_t *count)
{
	const struct kv_value *in = &r->v[REGISTER_CONSUMER_TAGS];
	const struct kv_value *name = &r->v[REGISTER_CONSUMER_CONSUMER_NAME];
	bool ok = true;

	*count = 0;
	if (in->json == NULL)
		return true;
	if (in->size > KINESIS_TAGS_PER_STREAM_MAX) {
		kinesis_tags_too_many(r->k, r->call, name->string, s->name);
		return false;
	}
	*count = kinesis_tags_collect(in->json, tags, KINESIS_TAGS_PER_STREAM_MAX, &ok);
	if (!ok)
		kinesis_tags_invalid(r->call);
	return ok;
}

void
kinesis_register_consumer(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	const struct kv_value *name = &r->v[REGISTER_CONSUMER_CONSUMER_NAME];
	const struct kv_value none = { 0 };
	uint64_t now_ms = kinesis_now_ms(r->req);
	struct metadata_tag tags[KINESIS_TAGS_PER_STREAM_MAX];
	size_t tag_count;
	struct kinesis_stream *s;
	struct kinesis_consumer *c;
	int rc;

	kinesis_consumers_expire(k, now_ms);
	s = kinesis_stream_resolve(k, r->call, &none, &r->v[REGISTER_CONSUMER_STREAM_ARN]);
	if (s == NULL || !kinesis_consumer_tags(r, s, tags, &tag_count))
		return;
	if (kinesis_consumer_find(k, s->stream_id, name->string, name->size) != NULL) {
		kinesis_error(r->call, "ResourceInUseException", "Consumer %s under stream %s "
			      "already exists for account %s.", name->string, s->name,
			      k->config.account_id);
		return;
	}
	/* Cluster mode: counted again in etcd's transaction (-EDQUOT), this node's table may lag. */
	rc = kinesis_consumer_count(k, s) >= KINESIS_CONSUMERS_PER_STREAM_MAX ? -EDQUOT :
	     kinesis_md_consumer_add(k, s, name->string, name->size, now_ms, tags, tag_count);
	if (rc == -EDQUOT) {
		kinesis_error(r->call, "LimitExceededException", "Consumer limit of %u for stream "
			      "%s under account %s exceeded.", KINESIS_CONSUMERS_PER_STREAM_MAX,
			      s->name, k->config.account_id);
		return;
	}
	if (rc == -EEXIST || rc == -EBUSY) {   /* Cluster mode: another node's came first. */
		kinesis_error(r->call, "ResourceInUseException", "Consumer %s under stream %s "
			      "already exists for account %s.", name->string, s->name,
			      k->config.account_id);
		return;
	}
	if (rc != 0) {
		/* The store failed (etcd unreachable, SQLite): nothing registered; retryable. */
		diag_error("kinesis", "RegisterStreamConsumer: %s", strerror(-rc));
		kinesis_internal_error(r->call);
		return;
	}
	c = kinesis_consumer_add(k, s->stream_id, name->string, name->size, now_ms);
	if (c == NULL) {
		kinesis_md_consumer_remove(k, s, name->string, name->size);
		diag_error("kinesis", "RegisterStreamConsumer: KINESIS_CONSUMERS_MAX reached");
		kinesis_error(r->call, "LimitExceededException", "This endpoint holds at most %u "
			      "consumers.", KINESIS_CONSUMERS_MAX);
		return;
	}
	api_out_printf(api_call_out(r->call), "{\"Consumer\":");
	kinesis_out_consumer(k, api_call_out(r->call), s, c, kinesis_now_ms(r->req), false);
	api_out_printf(api_call_out(r->call), "}");
	api_call_reply(r->call, 200);
}

void
kinesis_describe_consumer(struct kinesis_req *r)
{
	struct kinesis_stream *s;
	struct kinesis_consumer *c;

	kinesis_consumers_expire(r->k, kinesis_now_ms(r->req));
	c = kinesis_consumer_resolve(r, &s);
	if (c == NULL)
		return;
	api_out_printf(api_call_out(r->call), "{\"ConsumerDescription\":");
	kinesis_out_consumer(r->k, api_call_out(r->call), s, c, kinesis_now_ms(r->req), true);
	api_out_printf(api_call_out(r->call), "}");
	api_call_reply(r->call, 200);
}

/* The subscriptions of consumer `c` (or of every consumer of a stream) end. */
static void kinesis_subscriptions_end(struct kinesis *k, const struct kinesis_consumer *c,
				      uint32_t stream_id);
static void kinesis_consumer_deleting(struct kinesis *k, struct kinesis_consumer *c,
				      uint64_t now_ms);

void
kinesis_deregister_consumer(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct kinesis_stream *s;
	struct kinesis_consumer *c;
	int rc;

	kinesis_consumers_expire(k, kinesis_now_ms(r->req));
	c = kinesis_consumer_resolve(r, &s);
	if (c == NULL)
		return;
	if (c->deleting_ms != 0) {
		kinesis_error(r->call, "ResourceInUseException", "Consumer %s under stream %s is "
			      "in DELETING state.", c->name, s->name);
		return;
	}
	rc = kinesis_md_consumer_remove(k, s, c->name, c->name_size);
	if (rc == -ENOENT) {   /* Cluster mode: deregistered through another node meanwhile. */
		kinesis_error(r->call, "ResourceNotFoundException", "Consumer %s under stream %s "
			      "not found.", c->name, s->name);
		return;
	}
	if (rc != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	kinesis_consumer_deleting(k, c, kinesis_now_ms(r->req));
	api_call_reply(r->call, 200);
}

/*
 * ListStreamConsumers' NextToken: the stream id and the position (by registration
 * order in the table scan) to go on from, as "<stream id>.<index>". Opaque to clients.
 */
void
kinesis_list_consumers(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	const struct kv_value *token = &r->v[LIST_CONSUMERS_NEXT_TOKEN];
	const struct kv_value *max = &r->v[LIST_CONSUMERS_MAX_RESULTS];
	const struct kv_value none = { 0 };
	struct api_out *out = api_call_out(r->call);
	uint64_t now_ms = kinesis_now_ms(r->req);
	uint32_t limit = max->json != NULL ? (uint32_t)max->number : 100;
	uint32_t start = 0;
	uint32_t n = 0;
	struct kinesis_stream *s;
	unsigned token_stream;
	unsigned token_index;
	uint32_t i;

	kinesis_consumers_expire(k, now_ms);
	s = kinesis_stream_resolve(k, r->call, &none, &r->v[LIST_CONSUMERS_STREAM_ARN]);
	if (s == NULL || !kinesis_stream_created_at(r, s,
						    &r->v[LIST_CONSUMERS_STREAM_CREATION_TIMESTAMP]))
		return;
	if (token->json != NULL) {
		if (sscanf(token->string, "%u.%u", &token_stream, &token_index) != 2 ||
		    token_stream != s->stream_id || token_index >= KINESIS_CONSUMERS_MAX) {
			kinesis_error(r->call, "InvalidArgumentException", "NextToken is invalid.");
			return;
		}
		start = token_index;
	}
	api_out_printf(out, "{\"Consumers\":[");
	for (i = start; i < KINESIS_CONSUMERS_MAX && n < limit; i++) {
		const struct kinesis_consumer *c = &k->fanout->consumers[i];

		if (!c->used || c->stream_id != s->stream_id)
			continue;
		if (n++ > 0)
			api_out_printf(out, ",");
		kinesis_out_consumer(k, out, s, c, now_ms, false);
	}
	api_out_printf(out, "]");
	while (i < KINESIS_CONSUMERS_MAX && !(k->fanout->consumers[i].used &&
					      k->fanout->consumers[i].stream_id == s->stream_id))
		i++;
	if (i < KINESIS_CONSUMERS_MAX)
		api_out_printf(out, ",\"NextToken\":\"%u.%u\"", s->stream_id, i);
	api_out_printf(out, "}");
	api_call_reply(r->call, 200);
}

/* A consumer gone: DELETING for the status delay, its subscriptions ended. */
static void
kinesis_consumer_deleting(struct kinesis *k, struct kinesis_consumer *c, uint64_t now_ms)
{
	c->deleting_ms = now_ms + kinesis_consumer_delay_ms(k);
	if (kinesis_consumer_delay_ms(k) == 0)
		c->deleting_ms = 1;  /* Gone at the next look. */
	kinesis_subscriptions_end(k, c, 0);
}

/* kinesis_consumers_follow's pass: which slots the store still holds. */
struct kinesis_consumers_seen {
	struct kinesis *k;
	uint8_t seen[KINESIS_CONSUMERS_MAX / 8];
};

static int
kinesis_consumer_follow_one(void *arg, uint32_t stream_id, const char *name, size_t size,
			    uint64_t created_ms)
{
	struct kinesis_consumers_seen *f = arg;
	struct kinesis_consumer *c = NULL;
	uint32_t i;

	/* Of a stream not adopted yet: taken at a later pass, once it is. */
	if (size > KINESIS_CONSUMER_NAME_SIZE_MAX || kinesis_stream_by_id(f->k, stream_id) == NULL)
		return 0;
	for (i = 0; i < KINESIS_CONSUMERS_MAX && c == NULL; i++) {
		struct kinesis_consumer *x = &f->k->fanout->consumers[i];

		if (x->used && x->deleting_ms == 0 && x->stream_id == stream_id &&
		    x->created_ms == created_ms && x->name_size == size &&
		    memcmp(x->name, name, size) == 0)
			c = x;
	}
	if (c == NULL)
		c = kinesis_consumer_add(f->k, stream_id, name, size, created_ms);
	if (c == NULL)
		return -ENOSPC;
	i = (uint32_t)(c - f->k->fanout->consumers);
	f->seen[i / 8] |= (uint8_t)(1u << (i % 8));
	return 0;
}

int
kinesis_consumers_follow(struct kinesis *k)
{
	struct kinesis_consumers_seen f = { .k = k };
	uint64_t now_ms = clock_real_ns() / 1000000u;
	int rc;

	kinesis_consumers_expire(k, now_ms);
	rc = metadata_consumers_load(k->md, kinesis_consumer_follow_one, &f);
	for (uint32_t i = 0; rc == 0 && i < KINESIS_CONSUMERS_MAX; i++) {
		struct kinesis_consumer *c = &k->fanout->consumers[i];

		if (c->used && c->deleting_ms == 0 && (f.seen[i / 8] & (1u << (i % 8))) == 0) {
			diag_info("kinesis", "cluster: consumer %s deregistered through another "
				  "node", c->name);
			kinesis_consumer_deleting(k, c, now_ms);
		}
	}
	return rc;
}

void
kinesis_consumers_stream_deleted(struct kinesis *k, uint32_t stream_id)
{
	kinesis_subscriptions_end(k, NULL, stream_id);
	for (uint32_t i = 0; i < KINESIS_CONSUMERS_MAX; i++)
		if (k->fanout->consumers[i].stream_id == stream_id)
			k->fanout->consumers[i].used = false;
}

/* ---- Events --------------------------------------------------------------- */

/*
 * The two events' headers, by payload encoding: a subscription answers in the encoding
 * its request came in (api_call_is_cbor), as the Java SDK v2's CBOR client reads every
 * event's payload with the CBOR parser of its protocol.
 */
enum kinesis_event_kind { KINESIS_EVENT_INITIAL, KINESIS_EVENT_RECORDS };

#define ES_STRING(text) .type = ES_TYPE_STRING, .value = (const uint8_t *)(text), \
	.value_size = sizeof(text) - 1
#define KINESIS_EVENT_HEADERS(event_type, content_type) { \
	{ .name = ":event-type", .name_size = 11, ES_STRING(event_type) }, \
	{ .name = ":content-type", .name_size = 13, ES_STRING(content_type) }, \
	{ .name = ":message-type", .name_size = 13, ES_STRING("event") }, \
}
#define KINESIS_EVENT_HEADER_COUNT 3u

/* [kind][cbor] */
static const struct es_header kinesis_event_headers[2][2][KINESIS_EVENT_HEADER_COUNT] = {
	[KINESIS_EVENT_INITIAL] = {
		KINESIS_EVENT_HEADERS("initial-response", "application/json"),
		KINESIS_EVENT_HEADERS("initial-response", "application/x-amz-cbor-1.1"),
	},
	[KINESIS_EVENT_RECORDS] = {
		KINESIS_EVENT_HEADERS("SubscribeToShardEvent", "application/json"),
		KINESIS_EVENT_HEADERS("SubscribeToShardEvent", "application/x-amz-cbor-1.1"),
	},
};
#undef KINESIS_EVENT_HEADERS
#undef ES_STRING

static const struct es_header *
kinesis_event_header(enum kinesis_event_kind kind, bool cbor)
{
	return kinesis_event_headers[kind][cbor];
}

/*
 * Starts an event in fanout->event: room for the prelude and headers. Returns where
 * its JSON payload goes: straight after them, or fanout->json for a CBOR subscription
 * (translated when sealed).
 */
static struct api_out *
kinesis_event_begin(struct kinesis_fanout *f, enum kinesis_event_kind kind, bool cbor)
{
	static const uint8_t zeros[ES_PRELUDE_SIZE + 128];
	size_t head = ES_PRELUDE_SIZE + es_headers_size(kinesis_event_header(kind, cbor),
							KINESIS_EVENT_HEADER_COUNT);

	assert(head <= sizeof(zeros));
	f->event.size = 0;
	f->event.overflow = false;
	api_out_append(&f->event, zeros, head);
	if (!cbor)
		return &f->event;
	f->json.size = 0;
	f->json.overflow = false;
	return &f->json;
}

/* Frames the event in place (prelude, headers, CRCs), its payload in CBOR if asked. */
static int
kinesis_event_seal(struct kinesis_fanout *f, enum kinesis_event_kind kind, bool cbor)
{
	const struct es_header *h = kinesis_event_header(kind, cbor);
	size_t head = ES_PRELUDE_SIZE + es_headers_size(h, KINESIS_EVENT_HEADER_COUNT);
	size_t payload;
	size_t size;

	/* Our own JSON: only a payload that does not fit fails the translation. */
	if (cbor && (f->json.overflow ||
		     server_cbor_answer_from_json(f->json.data, f->json.size, &f->event) != 0))
		return -ENOBUFS;
	payload = f->event.size - head;
	api_out_append(&f->event, "\0\0\0\0", 4);  /* The message CRC's place. */
	if (f->event.overflow || es_seal((uint8_t *)f->event.data, f->event.size, h,
					 KINESIS_EVENT_HEADER_COUNT, payload, &size) != 0)
		return -ENOBUFS;
	assert(size == f->event.size);
	return 0;
}

static void
kinesis_subscription_free(struct kinesis_subscription *sub)
{
	struct kinesis_fanout *f = sub->k->fanout;

	if (sub->call != NULL)
		metrics_fanout_add(METRICS_FANOUT_SUBSCRIPTIONS_FINISHED, 1);
	sub->call = NULL;
	while (f->subs_high > 0 && f->subs[f->subs_high - 1].call == NULL)
		f->subs_high--;
	kinesis_durable_watch(sub->k);
}

/* Ends the stream (what was queued still goes out) and frees the slot. */
static void
kinesis_subscription_end(struct kinesis_subscription *sub)
{
	api_call_stream_end(sub->call);
	kinesis_subscription_free(sub);
}

static void
kinesis_subscriptions_end(struct kinesis *k, const struct kinesis_consumer *c, uint32_t stream_id)
{
	struct kinesis_fanout *f = k->fanout;

	for (uint32_t i = 0; i < f->subs_high; i++) {
		struct kinesis_subscription *sub = &f->subs[i];

		if (sub->call == NULL)
			continue;
		if ((c != NULL && &f->consumers[sub->consumer] == c) ||
		    (c == NULL && sub->stream_id == stream_id))
			kinesis_subscription_end(sub);
	}
}

/* The event's ContinuationSequenceNumber: the last record delivered, or the shard's start. */
static void
kinesis_event_continuation(struct api_out *out, const struct kinesis_shard *sh,
			   const struct kinesis_subscription *sub)
{
	char text[SEQNUM_DECIMAL_SIZE];
	struct seqnum sn = {
		.shard_created_s = sh->created_s, .shard_index = sh->index,
		.seq = sub->seq_next > 0 ? sub->seq_next - 1 : 0,
		.put_s = sub->seq_next > 0 && sub->last_arrival_ns != 0 ?
			 sub->last_arrival_ns / 1000000000u : sh->created_s,
	};

	seqnum_format(&sn, text);
	api_out_printf(out, "\"ContinuationSequenceNumber\":\"%s\"", text);
}

static uint64_t
kinesis_event_behind_ms(struct kinesis *k, const struct kinesis_shard *sh,
			const struct kinesis_subscription *sub)
{
	struct log_shard_info info;
	uint64_t now_ms = clock_real_ns() / 1000000u;
	uint64_t arrival_ms;

	if (log_shard_info(k->log, sh->log_id, &info) != 0 || sub->seq_next >= info.seq_durable)
		return 0;
	arrival_ms = sub->last_arrival_ns / 1000000u;
	return sub->last_arrival_ns != 0 && now_ms > arrival_ms ? now_ms - arrival_ms : 0;
}

/* What a pass does for one subscription. */
enum kinesis_pump {
	KINESIS_PUMP_IDLE,       /* Nothing to send now. */
	KINESIS_PUMP_SENT,       /* One event sent; there may be more. */
	KINESIS_PUMP_WAIT,       /* Refused, or no buffer: do not advance. */
	KINESIS_PUMP_ENDED,      /* The subscription is over (slot freed). */
};

/* Builds the next SubscribeToShardEvent into fanout->event. */
static int
kinesis_event_build(struct kinesis *k, struct kinesis_stream *s, struct kinesis_shard *sh,
		    struct kinesis_subscription *sub, struct kinesis_records_read *res,
		    bool *ended)
{
	struct kinesis_fanout *f = k->fanout;
	struct api_out *out = kinesis_event_begin(f, KINESIS_EVENT_RECORDS, sub->cbor);
	uint64_t seq_before = sub->seq_next;
	int rc;

	api_out_printf(out, "{\"Records\":[");
	rc = kinesis_records_out(k, sh, out, KINESIS_EVENT_SIZE_MAX - 4096,
				 KINESIS_GET_RECORDS_MAX, sub->seq_next, res);
	if (rc != 0)
		return rc;
	api_out_printf(out, "],");
	sub->seq_next = res->seq_next;
	if (res->count > 0)
		sub->last_arrival_ns = res->last_arrival_ns;
	kinesis_event_continuation(out, sh, sub);
	api_out_printf(out, ",\"MillisBehindLatest\":%llu",
		       (unsigned long long)kinesis_event_behind_ms(k, sh, sub));
	*ended = kinesis_shard_ended(sh, sub->seq_next);
	if (*ended) {
		api_out_printf(out, ",\"ChildShards\":");
		kinesis_out_child_shards(out, s, sh->index);
	}
	api_out_printf(out, "}");
	rc = kinesis_event_seal(f, KINESIS_EVENT_RECORDS, sub->cbor);
	if (rc != 0)
		sub->seq_next = seq_before;
	return rc;
}

/* One event sent: the fan-out counters, and the shard's series when monitored. */
static void
kinesis_subscription_metrics(struct kinesis *k, struct kinesis_stream *s,
			     const struct kinesis_shard *sh, const struct kinesis_records_read *res)
{
	metrics_fanout_add(METRICS_FANOUT_EVENTS, 1);
	metrics_fanout_add(METRICS_FANOUT_RECORDS, res->count);
	metrics_fanout_add(METRICS_FANOUT_BYTES, res->data_bytes);
	if (s->shard_metrics != 0) {
		struct metrics_stream_ref ref = {
			.slot = (uint32_t)(s - k->streams), .stream_id = s->stream_id,
			.name = s->name,
		};
		struct metrics_shard_add add = {
			.shard_index = sh->index, .enabled = s->shard_metrics,
			.outgoing_records = res->count, .outgoing_bytes = res->data_bytes,
		};

		kinesis_shard_metrics(s, &ref, &add);
	}
}

static enum kinesis_pump
kinesis_subscription_pump(struct kinesis_subscription *sub, uint64_t mono_ns)
{
	struct kinesis *k = sub->k;
	struct kinesis_fanout *f = k->fanout;
	struct kinesis_stream *s = kinesis_stream_by_id(k, sub->stream_id);
	struct kinesis_records_read res;
	struct log_shard_info info;
	struct kinesis_shard *sh;
	uint64_t seq_before = sub->seq_next;
	uint64_t arrival_before = sub->last_arrival_ns;
	bool ended = false;
	int rc;

	if (s == NULL || s->incarnation != sub->incarnation ||
	    mono_ns - sub->started_ns >= KINESIS_SUBSCRIPTION_LIFETIME_MS * 1000000ull) {
		kinesis_subscription_end(sub);
		return KINESIS_PUMP_ENDED;
	}
	if (sub->blocked)
		return KINESIS_PUMP_WAIT;
	sh = &s->shards[sub->shard_index];
	if (log_shard_info(k->log, sh->log_id, &info) != 0)
		return KINESIS_PUMP_IDLE;
	if (sub->seq_next >= info.seq_durable && !kinesis_shard_ended(sh, sub->seq_next) &&
	    mono_ns < sub->event_due_ns)
		return KINESIS_PUMP_IDLE;
	rc = kinesis_event_build(k, s, sh, sub, &res, &ended);
	if (rc == 0)
		rc = api_call_stream_write(sub->call, f->event.data, f->event.size);
	if (rc == -EPIPE)
		return KINESIS_PUMP_WAIT;  /* GONE follows and frees it. */
	if (rc != 0) {
		/* Stays behind: the records are read again once the stream takes more. */
		sub->seq_next = seq_before;
		sub->last_arrival_ns = arrival_before;
		sub->blocked = rc == -EAGAIN;
		sub->retry = rc != -EAGAIN;
		metrics_fanout_add(METRICS_FANOUT_EVENTS_DEFERRED, 1);
		return KINESIS_PUMP_WAIT;
	}
	sub->retry = false;
	sub->event_due_ns = mono_ns + KINESIS_SUBSCRIPTION_HEARTBEAT_MS * 1000000ull;
	kinesis_subscription_metrics(k, s, sh, &res);
	if (ended) {
		kinesis_subscription_end(sub);
		return KINESIS_PUMP_ENDED;
	}
	return KINESIS_PUMP_SENT;
}

static void
kinesis_subscription_event(void *ctx, enum api_stream_event event)
{
	struct kinesis_subscription *sub = ctx;

	assert(sub->call != NULL);
	if (event == API_STREAM_GONE) {
		kinesis_subscription_end(sub);
		return;
	}
	sub->blocked = false;
	kinesis_subscription_pump(sub, sub->k->fanout->mono_ns());
}

void
kinesis_fanout_poll(struct kinesis *k)
{
	struct kinesis_fanout *f = k->fanout;
	uint64_t mono_ns = f->mono_ns();

	for (uint32_t i = 0; i < f->subs_high; i++)
		if (f->subs[i].call != NULL)
			kinesis_subscription_pump(&f->subs[i], mono_ns);
}

bool
kinesis_fanout_active(const struct kinesis *k)
{
	return k->fanout->subs_high > 0;
}

int
kinesis_fanout_timeout_ms(const struct kinesis *k)
{
	const struct kinesis_fanout *f = k->fanout;
	uint64_t mono_ns = f->mono_ns();
	uint64_t due = UINT64_MAX;

	for (uint32_t i = 0; i < f->subs_high; i++) {
		const struct kinesis_subscription *sub = &f->subs[i];
		const struct kinesis_stream *s;
		struct log_shard_info info;
		uint64_t end_ns;

		if (sub->call == NULL)
			continue;
		end_ns = sub->started_ns + KINESIS_SUBSCRIPTION_LIFETIME_MS * 1000000ull;
		due = min_u64(due, min_u64(end_ns, sub->event_due_ns));
		if (sub->retry)
			due = min_u64(due, mono_ns + 10000000u);
		s = kinesis_stream_by_id((struct kinesis *)k, sub->stream_id);
		/* More durable than delivered (one event per pass): come back at once. */
		if (!sub->blocked && s != NULL && s->incarnation == sub->incarnation &&
		    log_shard_info(k->log, s->shards[sub->shard_index].log_id, &info) == 0 &&
		    sub->seq_next < info.seq_durable)
			due = mono_ns;
	}
	if (due == UINT64_MAX)
		return -1;
	return due <= mono_ns ? 0 : (int)min_u64((due - mono_ns + 999999) / 1000000, 60000);
}

/* ---- SubscribeToShard ------------------------------------------------------ */

/* The log position StartingPosition names; replies and returns -EINVAL when it is bad. */
static int
kinesis_subscribe_start(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
			const struct kinesis_shard *sh, const cJSON *pos, uint64_t *seq_out)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(pos, "Type");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pos, "SequenceNumber");
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(pos, "Timestamp");
	struct log_shard_info info;
	struct seqnum sn;
	bool known = false;

	for (const char *const *t = kinesis_starting_position_types; *t != NULL; t++)
		known = known || (cJSON_IsString(type) && strcmp(type->valuestring, *t) == 0);
	if (!known) {
		kinesis_error(call, "ValidationException", "1 validation error detected: Value at "
			      "'startingPosition.type' failed to satisfy constraint: Member must "
			      "satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, "
			      "TRIM_HORIZON, LATEST, AT_TIMESTAMP]");
		return -EINVAL;
	}
	if (strstr(type->valuestring, "SEQUENCE_NUMBER") != NULL) {
		if (!cJSON_IsString(seq) || seqnum_parse(seq->valuestring, strlen(seq->valuestring),
							 &sn) != 0 ||
		    sn.shard_index != sh->index || sn.shard_created_s != sh->created_s) {
			kinesis_error(call, "InvalidArgumentException", "Invalid StartingSequenceNumber "
				      "for shard %s in stream %s.", cJSON_IsString(seq) ?
				      seq->valuestring : "(none)", s->name);
			return -EINVAL;
		}
		*seq_out = sn.seq + (strncmp(type->valuestring, "AFTER", 5) == 0);
		return 0;
	}
	if (strcmp(type->valuestring, "AT_TIMESTAMP") == 0) {
		if (!cJSON_IsNumber(ts)) {
			kinesis_error(call, "InvalidArgumentException", "Must specify a Timestamp for "
				      "StartingPosition of type AT_TIMESTAMP.");
			return -EINVAL;
		}
		return log_seek_time(k->reader, sh->log_id, ts->valuedouble <= 0 ? 0 :
				     (uint64_t)(ts->valuedouble * 1e9), seq_out);
	}
	if (log_shard_info(k->log, sh->log_id, &info) != 0)
		return -EIO;
	*seq_out = strcmp(type->valuestring, "LATEST") == 0 ? info.seq_durable : info.seq_trim;
	return 0;
}

static struct kinesis_subscription *
kinesis_subscription_slot(struct kinesis *k, const struct kinesis_consumer *c,
			  const struct kinesis_stream *s, uint32_t shard_index, bool *in_use)
{
	struct kinesis_fanout *f = k->fanout;
	struct kinesis_subscription *free_slot = NULL;
	uint32_t consumer = (uint32_t)(c - f->consumers);

	*in_use = false;
	for (uint32_t i = 0; i < KINESIS_SUBSCRIPTIONS_MAX; i++) {
		struct kinesis_subscription *sub = &f->subs[i];

		if (sub->call == NULL) {
			if (free_slot == NULL)
				free_slot = sub;
			if (i >= f->subs_high)
				break;
			continue;
		}
		if (sub->consumer == consumer && sub->stream_id == s->stream_id &&
		    sub->shard_index == shard_index)
			*in_use = true;
	}
	return *in_use ? NULL : free_slot;
}

/* The initial-response event, then the first SubscribeToShardEvent at once. */
static void
kinesis_subscription_start(struct kinesis *k, struct kinesis_subscription *sub)
{
	struct kinesis_fanout *f = k->fanout;
	int rc;

	api_out_append(kinesis_event_begin(f, KINESIS_EVENT_INITIAL, sub->cbor), "{}", 2);
	rc = kinesis_event_seal(f, KINESIS_EVENT_INITIAL, sub->cbor);
	if (rc == 0)
		rc = api_call_stream_write(sub->call, f->event.data, f->event.size);
	if (rc != 0 && rc != -EPIPE) {
		/* An empty stream cannot refuse: only a pool out of buffers gets here. */
		kinesis_subscription_end(sub);
		return;
	}
	if (rc == 0)
		kinesis_subscription_pump(sub, sub->started_ns);
}

void
kinesis_subscribe_to_shard(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct kinesis_fanout *f = k->fanout;
	const struct kv_value *shard_id = &r->v[SUBSCRIBE_SHARD_ID];
	uint64_t now_ms = kinesis_now_ms(r->req);
	struct kinesis_subscription *sub;
	struct kinesis_stream *s;
	struct kinesis_consumer *c;
	uint32_t index;
	uint64_t seq = 0;
	bool in_use;

	kinesis_consumers_expire(k, now_ms);
	c = kinesis_consumer_by_arn(k, r->call, r->v[SUBSCRIBE_CONSUMER_ARN].string, &s);
	if (c == NULL)
		return;
	if (strcmp(kinesis_consumer_status(k, c, now_ms), "ACTIVE") != 0) {
		kinesis_error(r->call, "ResourceInUseException", "Consumer %s is not in ACTIVE "
			      "state.", r->v[SUBSCRIBE_CONSUMER_ARN].string);
		return;
	}
	if (kinesis_shard_id_parse(shard_id->string, shard_id->size, &index) != 0 ||
	    index >= s->shard_count) {
		kinesis_error(r->call, "ResourceNotFoundException", "Shard %s in stream %s under "
			      "account %s does not exist", shard_id->string, s->name,
			      k->config.account_id);
		return;
	}
	if (kinesis_forward_read(r, FORWARD_READ_SUBSCRIBE, s->shards[index].log_id))
		return;  /* Relayed from a holder, or refused (docs/CLUSTER.md "Forwarding reads"). */
	sub = kinesis_subscription_slot(k, c, s, index, &in_use);
	if (in_use) {
		kinesis_error(r->call, "ResourceInUseException", "Another active subscription "
			      "exists for this consumer: %s", r->v[SUBSCRIBE_CONSUMER_ARN].string);
		return;
	}
	if (sub == NULL) {
		kinesis_error(r->call, "LimitExceededException", "This endpoint serves at most %u "
			      "subscriptions at once.", KINESIS_SUBSCRIPTIONS_MAX);
		return;
	}
	if (kinesis_subscribe_start(k, r->call, s, &s->shards[index],
				    r->v[SUBSCRIBE_STARTING_POSITION].json, &seq) != 0)
		return;
	*sub = (struct kinesis_subscription){
		.k = k, .call = r->call, .consumer = (uint32_t)(c - f->consumers),
		.stream_id = s->stream_id, .incarnation = s->incarnation, .shard_index = index,
		.seq_next = seq, .started_ns = f->mono_ns(), .cbor = api_call_is_cbor(r->call),
	};
	if ((uint32_t)(sub - f->subs) >= f->subs_high)
		f->subs_high = (uint32_t)(sub - f->subs) + 1;
	kinesis_durable_watch(k);
	metrics_fanout_add(METRICS_FANOUT_SUBSCRIPTIONS_STARTED, 1);
	if (api_call_stream_begin(r->call, kinesis_eventstream_type, kinesis_subscription_event,
				  sub) != 0) {
		kinesis_subscription_free(sub);  /* The client left: the call is finished. */
		return;
	}
	kinesis_subscription_start(k, sub);
}

/* ---- Open and close ------------------------------------------------------- */

void
kinesis_fanout_clock_set(struct kinesis *k, uint64_t (*mono_ns)(void))
{
	k->fanout->mono_ns = mono_ns != NULL ? mono_ns : clock_mono_ns;
}

static int
kinesis_event_buffer(struct api_out *out)
{
	*out = (struct api_out){
		.data = malloc(KINESIS_EVENT_BUFFER_SIZE),
		.capacity = KINESIS_EVENT_BUFFER_SIZE,
		.capacity_max = KINESIS_EVENT_BUFFER_SIZE,
	};
	return out->data != NULL ? 0 : -ENOMEM;
}

int
kinesis_fanout_open(struct kinesis *k)
{
	int rc;

	k->fanout = calloc(1, sizeof(*k->fanout));
	if (k->fanout == NULL)
		return -ENOMEM;
	k->fanout->mono_ns = clock_mono_ns;
	/* Whole at start: they never grow, so they never take from the server's pool. */
	rc = kinesis_event_buffer(&k->fanout->event);
	if (rc == 0)
		rc = kinesis_event_buffer(&k->fanout->json);
	if (rc != 0)
		return rc;
	rc = metadata_consumers_load(k->md, kinesis_consumer_load, k);
	if (rc != 0)
		diag_error("kinesis", "loading consumers: %s", strerror(-rc));
	return rc;
}

void
kinesis_fanout_close(struct kinesis *k)
{
	if (k->fanout == NULL)
		return;
	/* Subscriptions' calls belong to the server, closed before us (freed with its tables). */
	free(k->fanout->event.data);
	free(k->fanout->json.data);
	free(k->fanout);
	k->fanout = NULL;
}
