/*
 * kinesis_cluster: two nodes' Kinesis layers (each its own data dir, log and
 * metadata.db, one process) in cluster mode on a real etcd
 * (tests/cluster/etcd_fixture.c). A stream created through one node is served
 * by the other with the same ARN, creation time and shards; retention and tags
 * set through either are seen through both; a name is created once; a delete
 * through one ends the stream on the other; a node restarted after changes is
 * consistent; a reshard through one is followed by the other; the operations not
 * built for a cluster are refused. Waits poll
 * the node (each call runs kinesis_poll) until a condition holds, with a
 * generous deadline.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "../../cluster/etcd_fixture.h"
#include "common/clock.h"
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

Test(kinesis_cluster, a_restarted_node_catches_up_reshards_follow_and_unbuilt_ops_are_refused)
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
	harness_expect_error(&h2, "RegisterStreamConsumer", "{\"StreamARN\":\"arn\","
			     "\"ConsumerName\":\"c\"}", "InvalidArgumentException",
			     "RegisterStreamConsumer is not yet supported in cluster mode.");
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
