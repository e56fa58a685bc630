/*
 * kinesis_cluster: two nodes' Kinesis layers (each its own data dir, log and
 * metadata.db, one process) in cluster mode on a real etcd
 * (tests/cluster/etcd_fixture.c). A stream created through one node is served
 * by the other with the same ARN, creation time and shards; retention and tags
 * set through either are seen through both; a name is created once; a delete
 * through one ends the stream on the other; a node restarted after changes is
 * consistent; a reshard through one is followed by the other; consumers, resource
 * policies and account settings made through one node are the other's; a parent's
 * leader deposed in etcd records no cut. Waits poll
 * the node (each call runs kinesis_poll) until a condition holds, with a
 * generous deadline.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include <criterion/criterion.h>

#include "../../cluster/etcd_fixture.h"
#include "cluster/cluster.h"
#include "common/clock.h"
#include "control/kinesis.h"
#include "control/metadata.h"
#include "harness.h"

#define DEADLINE_NS (30ull * 1000000000ull)

static struct harness h1;
static struct harness h2;

static void
setup(void)
{
	etcd_fixture_start();
	harness_open_cluster(&h1, 0, etcd_endpoint, "kcl");
	harness_open_cluster(&h2, 0, etcd_endpoint, "kcl");
}

static void
teardown(void)
{
	harness_close(&h1);
	harness_close(&h2);
	etcd_fixture_stop();
}

TestSuite(kinesis_cluster, .init = setup, .fini = teardown, .timeout = 120);

/* Calls until the answer has `status` and contains `text` (NULL: any); returns the body. */
static char *
eventually(struct harness *h, const char *action, const char *body, int status, const char *text)
{
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	char call_type[128];

	for (;;) {
		struct api_call *call;

		/* As the server's loop does each pass (a call answered at once does not poll). */
		kinesis_poll(h->k, clock_real_ns());
		call = harness_call(h, action, body);
		char *copy = strndup(call->out.data != NULL ? call->out.data : "", call->out.size);
		bool ok = copy != NULL && call->status == status &&
			  (text == NULL || strstr(copy, text) != NULL ||
			   strstr(call->type, text) != NULL);

		snprintf(call_type, sizeof(call_type), "%s", call->type);
		harness_call_free(call);
		if (ok)
			return copy;
		cr_assert_lt(clock_mono_ns(), deadline, "%s never answered %d with %s: %s %s",
			     action, status, text != NULL ? text : "-", call_type, copy);
		free(copy);
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000000l }, NULL);
	}
}

static const char summary[] = "{\"StreamName\":\"s1\"}";

Test(kinesis_cluster, a_stream_made_through_one_node_is_served_by_both)
{
	char *one;
	char *two;

	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":3}"));
	one = eventually(&h1, "DescribeStream", summary, 200, "\"ACTIVE\"");
	two = eventually(&h2, "DescribeStream", summary, 200, "\"ACTIVE\"");
	/* Same ARN, creation time, shard ids and hash ranges: the same bytes. */
	cr_assert_str_eq(two, one);
	free(one);
	free(two);

	cJSON_Delete(harness_ok(&h2, "PutRecord", "{\"StreamName\":\"s1\",\"PartitionKey\":\"k\","
				"\"Data\":\"aGVsbG8=\"}"));
	cJSON_Delete(harness_ok(&h2, "IncreaseStreamRetentionPeriod",
				"{\"StreamName\":\"s1\",\"RetentionPeriodHours\":48}"));
	free(eventually(&h1, "DescribeStreamSummary", summary, 200,
			"\"RetentionPeriodHours\":48"));
	cJSON_Delete(harness_ok(&h1, "AddTagsToStream",
				"{\"StreamName\":\"s1\",\"Tags\":{\"team\":\"ingest\"}}"));
	free(eventually(&h2, "ListTagsForStream", summary, 200, "ingest"));
	cJSON_Delete(harness_ok(&h2, "RemoveTagsFromStream",
				"{\"StreamName\":\"s1\",\"TagKeys\":[\"team\"]}"));
	free(eventually(&h1, "ListTagsForStream", summary, 200, "\"Tags\":[]"));

	/* A name exists once in the cluster, whichever node is asked. */
	harness_expect_error(&h2, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":1}",
			     "ResourceInUseException", NULL);
	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s2\",\"ShardCount\":1}"));
	harness_expect_error(&h2, "CreateStream", "{\"StreamName\":\"s2\",\"ShardCount\":1}",
			     "ResourceInUseException", NULL);

	cJSON_Delete(harness_ok(&h2, "DeleteStream", summary));
	free(eventually(&h1, "DescribeStreamSummary", summary, 400, "ResourceNotFoundException"));
	free(eventually(&h2, "DescribeStreamSummary", summary, 400, "ResourceNotFoundException"));
	free(eventually(&h2, "DescribeStreamSummary", "{\"StreamName\":\"s2\"}", 200, "ACTIVE"));
}

Test(kinesis_cluster, a_restarted_node_catches_up_and_reshards_follow)
{
	char *one;
	char *two;

	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":2}"));
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "ACTIVE"));
	harness_stop(&h2);
	cJSON_Delete(harness_ok(&h1, "DeleteStream", summary));
	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":4}"));
	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s3\",\"ShardCount\":1}"));
	harness_start(&h2);
	/* The start read etcd: the recreated stream (4 shards) and the new one, at once. */
	one = eventually(&h1, "DescribeStream", summary, 200, "\"ACTIVE\"");
	two = eventually(&h2, "DescribeStream", summary, 200, "\"ACTIVE\"");
	cr_assert_str_eq(two, one);
	cr_assert(strstr(two, "shardId-000000000003") != NULL, "%s", two);
	free(one);
	free(two);
	free(eventually(&h2, "DescribeStreamSummary", "{\"StreamName\":\"s3\"}", 200, "ACTIVE"));

	/*
	 * A split through node 1 reaches node 2 (the children listed, the parent closing).
	 * No log here has a leader (no replication wired), so the parent's cut is never
	 * recorded: the stream stays UPDATING and a second reshard through either node is
	 * ResourceInUse, as AWS answers a reshard of a stream being updated.
	 */
	cJSON_Delete(harness_ok(&h1, "SplitShard", "{\"StreamName\":\"s1\",\"ShardToSplit\":"
				"\"shardId-000000000000\",\"NewStartingHashKey\":\"1000\"}"));
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "\"UPDATING\""));
	harness_expect_error(&h2, "UpdateShardCount", "{\"StreamName\":\"s1\",\"TargetShardCount\""
			     ":8,\"ScalingType\":\"UNIFORM_SCALING\"}", "ResourceInUseException",
			     NULL);
	harness_expect_error(&h1, "MergeShards", "{\"StreamName\":\"s1\",\"ShardToMerge\":"
			     "\"shardId-000000000001\",\"AdjacentShardToMerge\":"
			     "\"shardId-000000000002\"}", "ResourceInUseException", NULL);
}

/* One JSON body of string members: {"k1":"v1",...} (values escaped by cJSON). */
static char *
body_of(const char *k1, const char *v1, const char *k2, const char *v2)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	cr_assert_not_null(o);
	cJSON_AddStringToObject(o, k1, v1);
	if (k2 != NULL)
		cJSON_AddStringToObject(o, k2, v2);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	cr_assert_not_null(text);
	return text;
}

/* A member of an answer's object member, copied. */
static char *
answer_string(cJSON *answer, const char *object, const char *member)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(answer, object), member);

	cr_assert(cJSON_IsString(v), "no %s.%s", object, member);
	return strdup(v->valuestring);
}

/* PutResourcePolicy through `h`: `account`'s root may call kinesis:`action` on `arn`. */
static void
policy_put(struct harness *h, const char *arn, const char *account, const char *action)
{
	char policy[512];
	char *body;

	snprintf(policy, sizeof(policy), "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
		 "\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::%s:root\"},"
		 "\"Action\":\"kinesis:%s\",\"Resource\":\"%s\"}]}", account, action, arn);
	body = body_of("ResourceARN", arn, "Policy", policy);
	cJSON_Delete(harness_ok(h, "PutResourcePolicy", body));
	free(body);
}

/* s1's ARN (s1 made through node 1 and seen by node 2). */
static char *
stream_s1_arn(void)
{
	cJSON *r;
	char *arn;

	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":1}"));
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "ACTIVE"));
	r = harness_ok(&h1, "DescribeStreamSummary", summary);
	arn = answer_string(r, "StreamDescriptionSummary", "StreamARN");
	cJSON_Delete(r);
	return arn;
}

/*
 * Consumers and resource policies are the cluster's (etcd's), not a node's: a consumer
 * registered through one node is described by the other with the same ARN and
 * creation time, a duplicate name is refused through either, a policy put through one
 * is read back through the other, a deregistration through one ends it on both.
 */
Test(kinesis_cluster, consumers_and_policies_are_the_clusters)
{
	cJSON *r;
	char *stream_arn;
	char *consumer_arn;
	char *reg;
	char *ref;
	char *list;
	char *one;
	char *two;
	char *body;

	stream_arn = stream_s1_arn();
	reg = body_of("StreamARN", stream_arn, "ConsumerName", "c1");
	list = body_of("StreamARN", stream_arn, NULL, NULL);
	r = harness_ok(&h1, "RegisterStreamConsumer", reg);
	consumer_arn = answer_string(r, "Consumer", "ConsumerARN");
	cJSON_Delete(r);
	ref = body_of("ConsumerARN", consumer_arn, NULL, NULL);
	two = eventually(&h2, "DescribeStreamConsumer", ref, 200, consumer_arn);
	one = eventually(&h1, "DescribeStreamConsumer", ref, 200, consumer_arn);
	cr_assert_str_eq(two, one);   /* ARN, status, creation time: the same bytes. */
	free(one);
	free(two);
	free(eventually(&h2, "ListStreamConsumers", list, 200, consumer_arn));
	harness_expect_error(&h2, "RegisterStreamConsumer", reg, "ResourceInUseException", NULL);
	harness_expect_error(&h1, "RegisterStreamConsumer", reg, "ResourceInUseException", NULL);
	body = body_of("ConsumerARN", "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/"
		       "nope:1", NULL, NULL);
	harness_expect_error(&h2, "DescribeStreamConsumer", body, "ResourceNotFoundException",
			     NULL);
	free(body);

	/* The consumer's policy, put through node 2, read through node 1. */
	policy_put(&h2, consumer_arn, "444455556666", "DescribeStreamConsumer");
	body = body_of("ResourceARN", consumer_arn, NULL, NULL);
	free(eventually(&h1, "GetResourcePolicy", body, 200, "444455556666"));
	/* The stream's own: put through node 1, deleted through node 2, gone on node 1. */
	policy_put(&h1, stream_arn, "777788889999", "DescribeStreamSummary");
	two = body_of("ResourceARN", stream_arn, NULL, NULL);
	free(eventually(&h2, "GetResourcePolicy", two, 200, "777788889999"));
	cJSON_Delete(harness_ok(&h2, "DeleteResourcePolicy", two));
	free(eventually(&h1, "GetResourcePolicy", two, 200, "{\"Policy\":\"{}\"}"));
	harness_expect_error(&h1, "DeleteResourcePolicy", two, "ResourceNotFoundException", NULL);
	free(two);

	/* Deregistered through node 2: gone on node 1, its policy with it. */
	cJSON_Delete(harness_ok(&h2, "DeregisterStreamConsumer", ref));
	free(eventually(&h1, "DescribeStreamConsumer", ref, 400, "ResourceNotFoundException"));
	free(eventually(&h1, "GetResourcePolicy", body, 400, "ResourceNotFoundException"));
	harness_expect_error(&h1, "DeregisterStreamConsumer", ref, "ResourceNotFoundException",
			     NULL);
	/* The name is free again, through either node. */
	cJSON_Delete(harness_ok(&h1, "RegisterStreamConsumer", reg));
	free(eventually(&h2, "ListStreamConsumers", list, 200, "\"c1\""));
	free(body);
	free(stream_arn);
	free(consumer_arn);
	free(reg);
	free(ref);
	free(list);
}

/*
 * The 20 consumers a stream may have are counted in etcd: registered through both nodes
 * in turn, without either node taking in the other's (no kinesis_poll between the
 * calls: each node's table holds its own ten), the 21st is refused through either.
 * Before this each node checked its own table only and took it.
 */
Test(kinesis_cluster, the_consumer_limit_holds_across_nodes)
{
	char *stream_arn = stream_s1_arn();
	char name[16];
	char *reg;

	for (uint32_t i = 0; i <= KINESIS_CONSUMERS_PER_STREAM_MAX; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		reg = body_of("StreamARN", stream_arn, "ConsumerName", name);
		if (i < KINESIS_CONSUMERS_PER_STREAM_MAX)
			cJSON_Delete(harness_ok(i % 2 == 0 ? &h1 : &h2, "RegisterStreamConsumer",
						reg));
		else
			harness_expect_error(i % 2 == 0 ? &h1 : &h2, "RegisterStreamConsumer", reg,
					     "LimitExceededException", NULL);
		free(reg);
	}
	reg = body_of("StreamARN", stream_arn, "ConsumerName", "another");
	harness_expect_error(&h1, "RegisterStreamConsumer", reg, "LimitExceededException", NULL);
	free(reg);
	free(stream_arn);
}

/*
 * etcd not answering (stopped) while a consumer is registered: InternalFailure (500,
 * retryable), nothing registered; etcd back, the same call registers it. Before this
 * any store error answered LimitExceededException.
 */
Test(kinesis_cluster, a_consumer_registered_while_etcd_stalls_is_an_internal_failure)
{
	char *stream_arn = stream_s1_arn();
	char *reg = body_of("StreamARN", stream_arn, "ConsumerName", "c1");
	char *list = body_of("StreamARN", stream_arn, NULL, NULL);
	char *answer;

	etcd_fixture_signal(SIGSTOP);
	harness_expect_error(&h1, "RegisterStreamConsumer", reg, "InternalFailure", NULL);
	etcd_fixture_signal(SIGCONT);
	answer = eventually(&h1, "ListStreamConsumers", list, 200, "\"Consumers\":[]");
	free(answer);
	cJSON_Delete(harness_ok(&h1, "RegisterStreamConsumer", reg));
	free(eventually(&h2, "ListStreamConsumers", list, 200, "\"c1\""));
	free(list);
	free(reg);
	free(stream_arn);
}

/*
 * The server loop sleeps on kinesis_event_fd() while idle: a stream created through
 * another node must make it readable (the cache's apply wakes it), else an idle node
 * only notices at its next connection event (up to the idle timeout; found at 60 s in
 * the cluster_node test). Taken by kinesis_poll, so it does not spin afterwards.
 */
Test(kinesis_cluster, another_nodes_create_wakes_an_idle_node)
{
	struct pollfd pfd = { .fd = kinesis_event_fd(h2.k), .events = POLLIN };

	kinesis_poll(h2.k, clock_real_ns());
	while (poll(&pfd, 1, 0) > 0)   /* Whatever start-up left readable, taken. */
		kinesis_poll(h2.k, clock_real_ns());
	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s3\",\"ShardCount\":1}"));
	cr_assert_eq(poll(&pfd, 1, (int)(DEADLINE_NS / 1000000ull)), 1,
		     "an idle node was not woken by another node's CreateStream");
	kinesis_poll(h2.k, clock_real_ns());
	free(eventually(&h2, "DescribeStreamSummary", "{\"StreamName\":\"s3\"}", 200, "ACTIVE"));
}

/*
 * UpdateAccountSettings is the cluster's: a commitment started through one node is
 * described identically (status and times) by the other, and its end asked through the
 * other is seen by the first.
 */
Test(kinesis_cluster, account_settings_are_the_clusters)
{
	static const char enable[] = "{\"MinimumThroughputBillingCommitment\":"
				     "{\"Status\":\"ENABLED\"}}";
	static const char disable[] = "{\"MinimumThroughputBillingCommitment\":"
				      "{\"Status\":\"DISABLED\"}}";
	char *one;
	char *two;

	free(eventually(&h2, "DescribeAccountSettings", "{}", 200, "\"DISABLED\""));
	cJSON_Delete(harness_ok(&h1, "UpdateAccountSettings", enable));
	two = eventually(&h2, "DescribeAccountSettings", "{}", 200, "\"ENABLED\"");
	one = eventually(&h1, "DescribeAccountSettings", "{}", 200, "\"ENABLED\"");
	cr_assert_str_eq(two, one);   /* StartedAt and EarliestAllowedEndAt too. */
	cr_assert(strstr(one, "StartedAt") != NULL, "%s", one);
	free(one);
	free(two);
	/* Its earliest end is far ahead: DISABLED through node 2 makes it end then. */
	cJSON_Delete(harness_ok(&h2, "UpdateAccountSettings", disable));
	free(eventually(&h1, "DescribeAccountSettings", "{}", 200,
			"ENABLED_UNTIL_EARLIEST_ALLOWED_END"));
}

/*
 * A stand-in for cluster_node's replication on node 1: it leads every log shard in
 * `fake_epoch` (0: none) and everything is acknowledged. What etcd's placement says
 * is the test's to write.
 */
static _Atomic uint64_t fake_epoch;

static int
fake_acked(void *ctx, uint64_t log_id, uint64_t *seq_out)
{
	(void)ctx;
	(void)log_id;
	*seq_out = UINT64_MAX - 1;
	return atomic_load(&fake_epoch) != 0 ? 0 : -ENOENT;
}

static int
fake_lead_epoch(void *ctx, uint64_t log_id, uint64_t *epoch_out)
{
	(void)ctx;
	(void)log_id;
	*epoch_out = atomic_load(&fake_epoch);
	return *epoch_out != 0 ? 0 : -ENOENT;
}

static void
placement_put(struct etcd_client *client, uint32_t leader, int64_t epoch)
{
	char value[160];
	int n = snprintf(value, sizeof(value), "{\"leader\":%u,\"epoch\":%lld,\"replicas\":[1,2],"
			 "\"isr\":[1,2],\"controller_epoch\":3}", leader, (long long)epoch);

	cr_assert_eq(etcd_put(client, "/sluice/kcl/placement/s1/shardId-000000000000", value,
			      (size_t)n, 0, NULL), 0);
}

static uint64_t
cuts_fenced(struct harness *h)
{
	struct metadata_cluster_status st;

	metadata_cluster_status(h->k->mc, &st);
	return st.cuts_fenced;
}

/*
 * The parent's leader records its cut only while etcd's placement names it, in the
 * epoch it leads with (docs/CLUSTER.md "Resharding in cluster mode"): node 1 believes
 * it leads in epoch 4 while the placement names node 2 in epoch 5 (deposed, not told
 * yet). It cuts its copy, its record is refused once (counted, the stream stays
 * UPDATING) and not tried again in that epoch; node 2, started again meanwhile, loads
 * the stream UPDATING and refuses a second reshard. Placed again in epoch 6, node 1
 * cuts and records: both nodes see the stream ACTIVE.
 */
Test(kinesis_cluster, a_deposed_leader_does_not_record_its_cut_and_records_it_when_placed_again)
{
	int doorbell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct kinesis_replication repl = { .acked = fake_acked, .lead_epoch = fake_lead_epoch,
					    .doorbell_fd = doorbell };
	struct etcd_client *client;
	struct api_call *call;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	cr_assert_geq(doorbell, 0);
	cr_assert_eq(etcd_open(etcd_endpoint, 5000, &client), 0);
	h1.config.cluster_node_id = 1;
	harness_restart(&h1);
	cr_assert_eq(kinesis_replication_set(h1.k, &repl), 0);
	cJSON_Delete(harness_ok(&h1, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":1}"));
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "ACTIVE"));
	placement_put(client, 2, 5);
	atomic_store(&fake_epoch, 4);
	cJSON_Delete(harness_ok(&h1, "SplitShard", "{\"StreamName\":\"s1\",\"ShardToSplit\":"
				"\"shardId-000000000000\",\"NewStartingHashKey\":\"1000\"}"));
	while (cuts_fenced(&h1) == 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 1 tries to record its cut");
		kinesis_poll(h1.k, clock_real_ns());
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000000l }, NULL);
	}
	/* Not again in epoch 4: each pass would cut and ask again (every 20 ms) otherwise. */
	for (int i = 0; i < 40; i++) {
		kinesis_poll(h1.k, clock_real_ns());
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000000l }, NULL);
	}
	cr_assert_eq(cuts_fenced(&h1), 1);
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "\"UPDATING\""));
	free(eventually(&h1, "DescribeStreamSummary", summary, 200, "\"UPDATING\""));
	/*
	 * Node 2 started again meanwhile loads the stream with its parent's close unrecorded:
	 * UPDATING there too, from its first answer, and a second reshard through it waits.
	 */
	harness_restart(&h2);
	call = harness_call(&h2, "DescribeStreamSummary", summary);
	cr_assert_eq(call->status, 200);
	cr_assert_not_null(memmem(call->out.data, call->out.size, "\"UPDATING\"", 10), "%.*s",
			   (int)call->out.size, call->out.data);
	harness_call_free(call);
	call = harness_call(&h2, "SplitShard", "{\"StreamName\":\"s1\",\"ShardToSplit\":"
			    "\"shardId-000000000001\",\"NewStartingHashKey\":\"500\"}");
	cr_assert_eq(call->status, 400);
	cr_assert_str_eq(call->type, "ResourceInUseException");
	harness_call_free(call);

	/* The controller places it again, in a newer epoch: it cuts again and records. */
	placement_put(client, 1, 6);
	atomic_store(&fake_epoch, 6);
	free(eventually(&h1, "DescribeStreamSummary", summary, 200, "\"ACTIVE\""));
	free(eventually(&h2, "DescribeStreamSummary", summary, 200, "\"ACTIVE\""));
	cr_assert_eq(cuts_fenced(&h1), 1);
	kinesis_replication_set(h1.k, NULL);
	close(doorbell);
	etcd_close(client);
}
