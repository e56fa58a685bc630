/*
 * kinesis_consumers.h - the consumers and fan-out concern: Register/Describe/List/
 * DeregisterStreamConsumer and SubscribeToShard (kinesis_consumers.c). Included by
 * control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_CONSUMERS_H
#define SLUICE_CONTROL_KINESIS_CONSUMERS_H

#include "control/kinesis.h"

/* AWS: 20 consumers per stream (RegisterStreamConsumer's LimitExceededException). */
#define KINESIS_CONSUMERS_PER_STREAM_MAX 20u
/* Consumers over all streams: the table is sized once, at open. */
#define KINESIS_CONSUMERS_MAX 4096u
#define KINESIS_CONSUMER_NAME_SIZE_MAX 128u
/* "<stream ARN>/consumer/<name>:<epoch seconds>" and its NUL. */
#define KINESIS_CONSUMER_ARN_SIZE (KINESIS_ARN_SIZE + KINESIS_CONSUMER_NAME_SIZE_MAX + 48u)
/* SubscribeToShard calls streaming at once (each holds one server call). */
#define KINESIS_SUBSCRIPTIONS_MAX 1024u
/* AWS ends a subscription after 5 minutes; the client subscribes again. */
#define KINESIS_SUBSCRIPTION_LIFETIME_MS 300000u
/* An event is sent at least this often, records or not (MillisBehindLatest moves on). */
#define KINESIS_SUBSCRIPTION_HEARTBEAT_MS 5000u
/*
 * One SubscribeToShardEvent's JSON payload stays under this (records are whole),
 * unless its first record alone is larger (up to 10 MiB of data: the event
 * buffer, KINESIS_EVENT_BUFFER_SIZE in kinesis_consumers.c, holds one).
 */
#define KINESIS_EVENT_SIZE_MAX (2u * 1024u * 1024u)
/* ListStreamConsumers: MaxResults' bounds and default. */
#define KINESIS_LIST_CONSUMERS_MAX 10000

extern const char *const kinesis_starting_position_types[];
/* SubscribeToShard's streaming answer's Content-Type (its own, and a relayed one's). */
extern const char kinesis_eventstream_type[];

#define KV_CONSUMER_NAME(not_null_) \
	KV_STR("ConsumerName", not_null_, KV_PATTERN_NAME, 1, KINESIS_CONSUMER_NAME_SIZE_MAX)
#define KV_CONSUMER_ARN(not_null_) KV_STR("ConsumerARN", not_null_, KV_PATTERN_NONE, 1, 2048)

#define KINESIS_SHAPE_REGISTER_CONSUMER(F) \
	F(REGISTER_CONSUMER, STREAM_ARN, KV_STR("StreamARN", true, KV_PATTERN_ARN, 1, 2048)) \
	F(REGISTER_CONSUMER, CONSUMER_NAME, KV_CONSUMER_NAME(true)) \
	F(REGISTER_CONSUMER, TAGS, KV_TAGS_FIELD)
KV_SHAPE_ENUM(REGISTER_CONSUMER);

#define KINESIS_SHAPE_CONSUMER_REF(F) \
	F(CONSUMER_REF, STREAM_ARN, KV_STREAM_ARN) \
	F(CONSUMER_REF, CONSUMER_NAME, KV_CONSUMER_NAME(false)) \
	F(CONSUMER_REF, CONSUMER_ARN, KV_CONSUMER_ARN(false))
KV_SHAPE_ENUM(CONSUMER_REF);

#define KINESIS_SHAPE_LIST_CONSUMERS(F) \
	F(LIST_CONSUMERS, STREAM_ARN, KV_STR("StreamARN", true, KV_PATTERN_ARN, 1, 2048)) \
	F(LIST_CONSUMERS, NEXT_TOKEN, KV_STR("NextToken", false, KV_PATTERN_NONE, 1, 1048576)) \
	F(LIST_CONSUMERS, MAX_RESULTS, KV_INT("MaxResults", false, 1, KINESIS_LIST_CONSUMERS_MAX)) \
	F(LIST_CONSUMERS, STREAM_CREATION_TIMESTAMP, \
	  KV_FIELD("StreamCreationTimestamp", KV_TIMESTAMP, false, KV_PATTERN_NONE, -1, -1, -1, -1))
KV_SHAPE_ENUM(LIST_CONSUMERS);

#define KINESIS_SHAPE_SUBSCRIBE(F) \
	F(SUBSCRIBE, CONSUMER_ARN, KV_CONSUMER_ARN(true)) \
	F(SUBSCRIBE, SHARD_ID, KV_STR("ShardId", true, KV_PATTERN_NAME, 1, 128)) \
	F(SUBSCRIBE, STARTING_POSITION, KV_NESTED("StartingPosition", KV_STRUCT, true, -1, -1, \
						  NULL, NULL))
KV_SHAPE_ENUM(SUBSCRIBE);

kinesis_handler_fn kinesis_register_consumer;
kinesis_handler_fn kinesis_describe_consumer;
kinesis_handler_fn kinesis_list_consumers;
kinesis_handler_fn kinesis_deregister_consumer;
kinesis_handler_fn kinesis_subscribe_to_shard;

/* The consumer table and the subscriptions: allocated at open, freed at close. */
int kinesis_fanout_open(struct kinesis *k);
void kinesis_fanout_close(struct kinesis *k);
/* Pushes what became durable (or due) to every subscription (kinesis_poll). */
void kinesis_fanout_poll(struct kinesis *k);
/* Whether any subscription may be open (the log's durable eventfd is watched only then). */
bool kinesis_fanout_active(const struct kinesis *k);
/* Milliseconds until a subscription wants kinesis_fanout_poll() again; -1: none. */
int kinesis_fanout_timeout_ms(const struct kinesis *k);
/* Consumers of the stream (DeleteStream's EnforceConsumerDeletion check). */
uint32_t kinesis_consumer_count(const struct kinesis *k, const struct kinesis_stream *s);
/* The stream is being deleted: its consumers and subscriptions go (SQLite rows go with it). */
void kinesis_consumers_stream_deleted(struct kinesis *k, uint32_t stream_id);
/*
 * Cluster mode: the consumer table made equal to the store, which the cache keeps as
 * etcd holds it (kinesis_cluster_follow): consumers registered through another node
 * are added, those deregistered there turn DELETING and their subscriptions end.
 * -ENOSPC (KINESIS_CONSUMERS_MAX), the store's errors.
 */
int kinesis_consumers_follow(struct kinesis *k);
/*
 * The consumer a ConsumerARN names (the resource policies' concern), checked
 * against its own policy: its name, its stream in *s_out, *deleting when it is
 * DELETING; NULL after answering (ResourceNotFound, AccessDenied).
 */
const char *kinesis_consumer_named(struct kinesis_req *r, const char *arn,
				   struct kinesis_stream **s_out, bool *deleting);
/* Tests: the monotonic clock subscriptions' lifetimes are measured with (NULL: the real one). */
void kinesis_fanout_clock_set(struct kinesis *k, uint64_t (*mono_ns)(void));

#endif /* SLUICE_CONTROL_KINESIS_CONSUMERS_H */
