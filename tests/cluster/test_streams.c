/*
 * cluster_streams: the stream and consumer records of cluster/streams.c without
 * etcd: an encoded record decodes to the same fields (64-bit numbers and 128-bit
 * hash keys exact); keys are classified by their names; every malformed value or
 * name is refused (MALFORMED), never half-read; a record past the value limit
 * is refused at encoding.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"

static struct cluster_stream_shard shards[2] = {
	{ .index = 0, .start = 0, .end = ((hashkey_t)1 << 127) - 1, .parent = -1,
	  .adjacent_parent = -1, .created_s = 1700000000, .state = CLUSTER_SHARD_CLOSED,
	  .seq_end = 18446744073709551615ull },
	{ .index = 1, .start = (hashkey_t)1 << 127, .end = HASHKEY_MAX, .parent = 0,
	  .adjacent_parent = -1, .created_s = 1700000001, .state = CLUSTER_SHARD_CLOSING },
};

static struct cluster_tag tags[1] = { { .key = "team", .value = "ingest \"x\"" } };

static struct cluster_stream
record(void)
{
	return (struct cluster_stream){
		.name = "orders", .stream_id = 7, .incarnation = 9007199254740993ull, .mode = 1,
		.retention_hours = 48, .created_ms = 1700000000123ull, .shard_metrics = 3,
		.max_record_kib = 2048, .warm_mibps = 10, .shard_count = 2, .shards = shards,
		.tag_count = 1, .tags = tags, .policy = "{\"Version\":\"2012-10-17\"}",
		.key_ref = "alias/aws/kinesis", .key_name = "key-1",
	};
}

static enum cluster_meta_key
decode(const char *key, const char *value, struct cluster_stream *s, struct cluster_consumer *c)
{
	struct etcd_kv kv = { .key = (char *)key, .value = (uint8_t *)value,
			      .value_size = value != NULL ? strlen(value) : 0, .mod_revision = 42 };

	return cluster_meta_decode("c1", &kv, value == NULL, s, c);
}

Test(cluster_streams, a_record_round_trips_exactly)
{
	struct cluster_stream in = record();
	struct cluster_stream out;
	struct cluster_consumer unused;
	char *text;
	size_t size;

	cr_assert_eq(cluster_stream_encode(&in, &text, &size), 0);
	cr_assert_eq(strlen(text), size);
	/* Placement reads shard_count as a plain number. */
	cr_assert_not_null(strstr(text, "\"shard_count\":2"));
	cr_assert_eq(decode("/sluice/c1/streams/orders", text, &out, &unused), CLUSTER_META_STREAM);
	cr_assert_str_eq(out.name, "orders");
	cr_assert_eq(out.stream_id, 7);
	cr_assert_eq(out.incarnation, 9007199254740993ull);   /* 2^53 + 1: no double on the way. */
	cr_assert_eq(out.mode, 1);
	cr_assert_eq(out.retention_hours, 48);
	cr_assert_eq(out.created_ms, 1700000000123ull);
	cr_assert_eq(out.shard_metrics, 3);
	cr_assert_eq(out.max_record_kib, 2048);
	cr_assert_eq(out.warm_mibps, 10);
	cr_assert_eq(out.mod_revision, 42);
	cr_assert_eq(out.shard_count, 2);
	cr_assert(memcmp(out.shards, shards, sizeof(shards)) == 0);
	cr_assert_eq(out.tag_count, 1);
	cr_assert_str_eq(out.tags[0].key, "team");
	cr_assert_str_eq(out.tags[0].value, "ingest \"x\"");
	cr_assert_str_eq(out.policy, in.policy);
	cr_assert_str_eq(out.key_ref, "alias/aws/kinesis");
	cr_assert_str_eq(out.key_name, "key-1");
	cluster_stream_free(&out);
	free(text);
}

Test(cluster_streams, consumers_and_key_names)
{
	struct cluster_consumer in = { .stream = "orders", .name = "reader", .stream_id = 7,
				       .created_ms = 5, .tag_count = 1, .tags = tags };
	struct cluster_stream s;
	struct cluster_consumer out;
	char *text;
	size_t size;

	cr_assert_eq(cluster_consumer_encode(&in, &text, &size), 0);
	cr_assert_eq(decode("/sluice/c1/consumers/orders/reader", text, &s, &out),
		     CLUSTER_META_CONSUMER);
	cr_assert_str_eq(out.stream, "orders");
	cr_assert_str_eq(out.name, "reader");
	cr_assert_eq(out.stream_id, 7);
	cr_assert_eq(out.created_ms, 5);
	cr_assert_eq(out.tag_count, 1);
	cr_assert_null(out.policy);
	cluster_consumer_free(&out);
	free(text);

	/* A delete has no value: the names alone. */
	cr_assert_eq(decode("/sluice/c1/streams/gone", NULL, &s, &out), CLUSTER_META_STREAM);
	cr_assert_str_eq(s.name, "gone");
	cr_assert_eq(decode("/sluice/c1/consumers/a/b", NULL, &s, &out), CLUSTER_META_CONSUMER);
	cr_assert_str_eq(out.stream, "a");
	cr_assert_str_eq(out.name, "b");
	/* Other keys of the cluster, and other clusters, are not stream metadata. */
	cr_assert_eq(decode("/sluice/c1/nodes/1", NULL, &s, &out), CLUSTER_META_OTHER);
	cr_assert_eq(decode("/sluice/c1/placement/a/shardId-000000000000", NULL, &s, &out),
		     CLUSTER_META_OTHER);
	cr_assert_eq(decode("/sluice/c2/streams/a", NULL, &s, &out), CLUSTER_META_OTHER);
	cr_assert_eq(decode("/sluice/c1x/streams/a", NULL, &s, &out), CLUSTER_META_OTHER);
}

Test(cluster_streams, malformed_names_and_values_are_refused_whole)
{
	static const char *const bad_keys[] = {
		"/sluice/c1/streams/", "/sluice/c1/streams/a/b", "/sluice/c1/consumers/a",
		"/sluice/c1/consumers//b", "/sluice/c1/consumers/a/", "/sluice/c1/consumers/a/b/c",
	};
	struct cluster_stream good = record();
	struct cluster_stream s;
	struct cluster_consumer c;
	char long_name[200];
	char key[256];
	char *text;
	size_t size;

	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		cr_assert_eq(decode(bad_keys[i], "{}", &s, &c), CLUSTER_META_MALFORMED, "%s",
			     bad_keys[i]);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(key, sizeof(key), "/sluice/c1/streams/%s", long_name);
	cr_assert_eq(decode(key, NULL, &s, &c), CLUSTER_META_MALFORMED);

	/* Each field broken in turn, from a good record's text. */
	cr_assert_eq(cluster_stream_encode(&good, &text, &size), 0);
	static const char *const breaks[][2] = {
		{ "\"stream_id\":7", "\"stream_id\":0" },
		{ "\"stream_id\":7", "\"stream_id\":\"7\"" },
		{ "\"incarnation\":\"9007199254740993\"", "\"incarnation\":9007199254740993" },
		{ "\"incarnation\":\"9007199254740993\"", "\"incarnation\":\"-1\"" },
		{ "\"mode\":1", "\"mode\":2" },
		{ "\"retention_hours\":48", "\"retention_hours\":4.5" },
		{ "\"shard_count\":2", "\"shard_count\":3" },
		{ "\"shard_count\":2", "\"shard_count\":0" },
		{ "\"index\":1", "\"index\":0" },
		{ "\"state\":\"closing\"", "\"state\":\"half\"" },
		{ "\"parent\":0", "\"parent\":1" },
		{ "\"start\":\"0\"", "\"start\":\"x\"" },
		{ "\"seq_end\":\"0\"", "\"seq_end\":\"18446744073709551616\"" },
		{ "\"team\":\"ingest \\\"x\\\"\"", "\"team\":5" },
		{ "\"policy\":\"", "\"policy\":[\"" },
		{ "\"key_ref\":\"", "\"key_ref\":[\"" },
		/* A key reference without its name. */
		{ "\"key_name\":\"key-1\"", "\"key_nameless\":\"key-1\"" },
	};
	for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		char broken[4096];
		const char *at = strstr(text, breaks[i][0]);

		cr_assert_not_null(at, "%s not in %s", breaks[i][0], text);
		snprintf(broken, sizeof(broken), "%.*s%s%s", (int)(at - text), text, breaks[i][1],
			 at + strlen(breaks[i][0]));
		cr_assert_eq(decode("/sluice/c1/streams/orders", broken, &s, &c),
			     CLUSTER_META_MALFORMED, "%s", broken);
		cr_assert_null(s.shards);
		cr_assert_null(s.tags);
	}
	cr_assert_eq(decode("/sluice/c1/streams/orders", "not json", &s, &c),
		     CLUSTER_META_MALFORMED);
	cr_assert_eq(decode("/sluice/c1/streams/orders", "{\"shard_count\":1}", &s, &c),
		     CLUSTER_META_MALFORMED);
	cr_assert_eq(decode("/sluice/c1/consumers/a/b", "{\"stream_id\":0,\"created_ms\":\"1\","
			    "\"tags\":{}}", &s, &c), CLUSTER_META_MALFORMED);
	free(text);
}

Test(cluster_streams, a_record_past_the_value_limit_is_refused)
{
	struct cluster_stream s = record();
	char *policy = malloc(CLUSTER_STREAM_VALUE_SIZE_MAX + 1);
	char *text = NULL;
	size_t size;

	cr_assert_not_null(policy);
	memset(policy, 'p', CLUSTER_STREAM_VALUE_SIZE_MAX);
	policy[CLUSTER_STREAM_VALUE_SIZE_MAX] = '\0';
	s.policy = policy;
	cr_assert_eq(cluster_stream_encode(&s, &text, &size), -E2BIG);
	cr_assert_null(text);
	s.policy = NULL;
	s.shard_count = 0;
	cr_assert_eq(cluster_stream_encode(&s, &text, &size), -E2BIG);
	free(policy);
}
