/*
 * Kinesis actions end to end against a real log in a temp dir: streams,
 * routing, durable puts, every iterator type, reads, restarts, pagination,
 * retention, tags. Requests go straight into kinesis_dispatch().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "common/hashkey.h"
#include "control/kinesis.h"
#include "control/seqnum.h"
#include "tests/control/kinesis/harness.h"
#include "tests/support/seed.h"

static struct harness h;

static void
setup(void)
{
	harness_open(&h, 0);
}

static void
teardown(void)
{
	harness_close(&h);
}

TestSuite(kinesis_actions, .init = setup, .fini = teardown, .timeout = 60);

static const char *
str_at(const cJSON *json, const char *path)
{
	char copy[256];
	const cJSON *cur = json;

	snprintf(copy, sizeof(copy), "%s", path);
	for (char *save = NULL, *part = strtok_r(copy, ".", &save); part != NULL;
	     part = strtok_r(NULL, ".", &save)) {
		if (part[0] >= '0' && part[0] <= '9')
			cur = cJSON_GetArrayItem(cur, atoi(part));
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, part);
		cr_assert_not_null(cur, "no %s", path);
	}
	return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static const cJSON *
item_at(const cJSON *json, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, name);

	cr_assert_not_null(item, "no %s", name);
	return item;
}

static void
create(const char *name, int shards)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"ShardCount\":%d}", name, shards);
	cJSON_Delete(harness_ok(&h, "CreateStream", body));
}

/* Puts `data_b64` with `key`; returns the parsed reply. */
static cJSON *
put(const char *stream, const char *key, const char *data_b64)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"PartitionKey\":\"%s\","
		 "\"Data\":\"%s\"}", stream, key, data_b64);
	return harness_ok(&h, "PutRecord", body);
}

static char *
iterator(const char *stream, const char *shard, const char *type, const char *extra)
{
	char body[512];
	cJSON *json;
	char *it;

	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"ShardId\":\"%s\","
		 "\"ShardIteratorType\":\"%s\"%s}", stream, shard, type, extra);
	json = harness_ok(&h, "GetShardIterator", body);
	it = strdup(str_at(json, "ShardIterator"));
	cJSON_Delete(json);
	return it;
}

static cJSON *
get_records(const char *it, int limit)
{
	char body[1024];

	if (limit > 0)
		snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\",\"Limit\":%d}", it, limit);
	else
		snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
	return harness_ok(&h, "GetRecords", body);
}

Test(kinesis_actions, three_shards_have_aws_boundaries)
{
	cJSON *d;

	create("s3", 3);
	d = harness_ok(&h, "DescribeStream", "{\"StreamName\":\"s3\"}");
	cr_assert_str_eq(str_at(d, "StreamDescription.StreamStatus"), "ACTIVE");
	cr_assert_str_eq(str_at(d, "StreamDescription.StreamARN"),
			 "arn:aws:kinesis:us-east-1:000000000000:stream/s3");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.0.ShardId"), "shardId-000000000000");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.0.HashKeyRange.StartingHashKey"), "0");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.0.HashKeyRange.EndingHashKey"),
			 "113427455640312821154458202477256070484");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.1.HashKeyRange.StartingHashKey"),
			 "113427455640312821154458202477256070485");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.1.HashKeyRange.EndingHashKey"),
			 "226854911280625642308916404954512140969");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.2.HashKeyRange.StartingHashKey"),
			 "226854911280625642308916404954512140970");
	cr_assert_str_eq(str_at(d, "StreamDescription.Shards.2.HashKeyRange.EndingHashKey"),
			 "340282366920938463463374607431768211455");
	cr_assert(cJSON_IsFalse(item_at(item_at(d, "StreamDescription"), "HasMoreShards")));
	cJSON_Delete(d);
	harness_expect_error(&h, "CreateStream", "{\"StreamName\":\"s3\",\"ShardCount\":1}",
			     "ResourceInUseException",
			     "Stream s3 under account 000000000000 already exists.");
}

Test(kinesis_actions, routes_by_md5_and_explicit_hash_key)
{
	cJSON *r;

	create("two", 2);
	r = put("two", "pk1", "aGVsbG8=");
	cr_assert_str_eq(str_at(r, "ShardId"), "shardId-000000000001");
	cJSON_Delete(r);
	r = put("two", "a", "aGVsbG8=");
	cr_assert_str_eq(str_at(r, "ShardId"), "shardId-000000000000");
	cJSON_Delete(r);
	r = harness_ok(&h, "PutRecord", "{\"StreamName\":\"two\",\"PartitionKey\":\"a\","
		       "\"Data\":\"\",\"ExplicitHashKey\":\"170141183460469231731687303715884105728\"}");
	cr_assert_str_eq(str_at(r, "ShardId"), "shardId-000000000001");
	cJSON_Delete(r);
	harness_expect_error(&h, "PutRecord", "{\"StreamName\":\"two\",\"PartitionKey\":\"a\","
			     "\"Data\":\"\",\"ExplicitHashKey\":"
			     "\"340282366920938463463374607431768211456\"}",
			     "InvalidArgumentException", "Invalid ExplicitHashKey. ExplicitHashKey "
			     "must be in the range: [0, 2^128-1]. Specified value was "
			     "340282366920938463463374607431768211456");
}

Test(kinesis_actions, put_then_read_from_trim_horizon)
{
	cJSON *r1;
	cJSON *r2;
	cJSON *g;
	char *it;

	create("rw", 1);
	r1 = put("rw", "k1", "Zmlyc3Q=");
	r2 = put("rw", "k2", "c2Vjb25k");
	it = iterator("rw", "shardId-000000000000", "TRIM_HORIZON", "");
	g = get_records(it, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 2);
	cr_assert_str_eq(str_at(g, "Records.0.Data"), "Zmlyc3Q=");
	cr_assert_str_eq(str_at(g, "Records.0.PartitionKey"), "k1");
	cr_assert_str_eq(str_at(g, "Records.0.SequenceNumber"), str_at(r1, "SequenceNumber"));
	cr_assert_str_eq(str_at(g, "Records.1.SequenceNumber"), str_at(r2, "SequenceNumber"));
	cr_assert(cJSON_IsNumber(item_at(cJSON_GetArrayItem(item_at(g, "Records"), 0),
					 "ApproximateArrivalTimestamp")));
	cr_assert_eq(item_at(g, "MillisBehindLatest")->valuedouble, 0);
	cr_assert_str_neq(str_at(g, "NextShardIterator"), it);
	cJSON_Delete(r1);
	cJSON_Delete(r2);
	cJSON_Delete(g);
	free(it);
}

Test(kinesis_actions, every_iterator_type)
{
	char extra[256];
	cJSON *r[3];
	cJSON *g;
	char *it;

	create("its", 1);
	it = iterator("its", "shardId-000000000000", "LATEST", "");
	for (int i = 0; i < 3; i++)
		r[i] = put("its", "k", i == 0 ? "MA==" : (i == 1 ? "MQ==" : "Mg=="));
	g = get_records(it, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 3, "LATEST sees later puts");
	cJSON_Delete(g);
	free(it);
	snprintf(extra, sizeof(extra), ",\"StartingSequenceNumber\":\"%s\"",
		 str_at(r[1], "SequenceNumber"));
	it = iterator("its", "shardId-000000000000", "AT_SEQUENCE_NUMBER", extra);
	g = get_records(it, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 2);
	cr_assert_str_eq(str_at(g, "Records.0.Data"), "MQ==");
	cJSON_Delete(g);
	free(it);
	it = iterator("its", "0", "AFTER_SEQUENCE_NUMBER", extra); /* Lenient ShardId. */
	g = get_records(it, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 1);
	cr_assert_str_eq(str_at(g, "Records.0.Data"), "Mg==");
	cJSON_Delete(g);
	free(it);
	it = iterator("its", "shardId-0", "AT_TIMESTAMP", ",\"Timestamp\":1000000000");
	g = get_records(it, 1);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 1, "Limit honoured");
	cr_assert_str_eq(str_at(g, "Records.0.Data"), "MA==");
	cr_assert_gt(item_at(g, "MillisBehindLatest")->valuedouble, -1);
	cJSON_Delete(g);
	free(it);
	for (int i = 0; i < 3; i++)
		cJSON_Delete(r[i]);
}

Test(kinesis_actions, iterator_errors)
{
	char body[1024];
	char *it;

	create("ie", 1);
	it = iterator("ie", "shardId-000000000000", "TRIM_HORIZON", "");
	h.clock_offset_ms = 301000;
	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
	harness_expect_error(&h, "GetRecords", body, "ExpiredIteratorException", NULL);
	/* A request clock slightly behind the one that issued the iterator: still valid. */
	h.clock_offset_ms = -500;
	cJSON_Delete(harness_ok(&h, "GetRecords", body));
	h.clock_offset_ms = 0;
	harness_expect_error(&h, "GetRecords", "{\"ShardIterator\":\"AAAAAAAAAAEabc=\"}",
			     "InvalidArgumentException", "Invalid ShardIterator.");
	it[20] = it[20] == 'A' ? 'B' : 'A';
	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
	harness_expect_error(&h, "GetRecords", body, "InvalidArgumentException",
			     "Invalid ShardIterator.");
	free(it);
	/* Delete and re-create: old iterators belong to the old incarnation. */
	it = iterator("ie", "shardId-000000000000", "TRIM_HORIZON", "");
	cJSON_Delete(harness_ok(&h, "DeleteStream", "{\"StreamName\":\"ie\"}"));
	create("ie", 1);
	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
	harness_expect_error(&h, "GetRecords", body, "ResourceNotFoundException",
			     "Shard shardId-000000000000 in stream ie under account 000000000000 "
			     "does not exist");
	free(it);
	harness_expect_error(&h, "GetShardIterator", "{\"StreamName\":\"ie\",\"ShardId\":"
			     "\"shardId-000000000001\",\"ShardIteratorType\":\"LATEST\"}",
			     "ResourceNotFoundException", "Shard shardId-000000000001 in stream ie "
			     "under account 000000000000 does not exist");
	harness_expect_error(&h, "GetShardIterator", "{\"StreamName\":\"ie\",\"ShardId\":"
			     "\"shardId-0\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\"}",
			     "InvalidArgumentException", "Must either specify (1) AT_SEQUENCE_NUMBER "
			     "or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON "
			     "or LATEST and no StartingSequenceNumber. Request specified "
			     "AT_SEQUENCE_NUMBER and no StartingSequenceNumber.");
	harness_expect_error(&h, "GetShardIterator", "{\"StreamName\":\"ie\",\"ShardId\":"
			     "\"shardId-0\",\"ShardIteratorType\":\"AT_TIMESTAMP\"}",
			     "InvalidArgumentException", "Must specify timestampInMillis parameter "
			     "for iterator of type AT_TIMESTAMP. Current request has no timestamp "
			     "parameter.");
	harness_expect_error(&h, "GetShardIterator", "{\"StreamName\":\"ie\",\"ShardId\":"
			     "\"shardId-0\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\","
			     "\"StartingSequenceNumber\":\"12345\"}", "InvalidArgumentException",
			     "Invalid StartingSequenceNumber. It encodes shardId-000000012345, while "
			     "it was used in a call to a shard with shardId-000000000000");
	/* A number AWS cannot read at all (2^130: between 2^129 and 2^185). */
	harness_expect_error(&h, "GetShardIterator", "{\"StreamName\":\"ie\",\"ShardId\":"
			     "\"shardId-0\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\","
			     "\"StartingSequenceNumber\":\"1361129467683753853853498429727072845824\"}",
			     "InvalidArgumentException", "StartingSequenceNumber "
			     "1361129467683753853853498429727072845824 used in GetShardIterator on shard "
			     "shardId-000000000000 in stream ie under account 000000000000 is "
			     "invalid.");
}

/* 500 records over 4 shards: every one comes back once, in put order per shard, routed by MD5. */
Test(kinesis_actions, put_records_batch_reads_back_in_order)
{
	static char body[200000];
	struct seed_rng rng;
	size_t n;
	cJSON *r;
	int total = 0;

	seed_rng_init(&rng, seed_base());
	create("batch", 4);
	n = (size_t)snprintf(body, sizeof(body), "{\"StreamName\":\"batch\",\"Records\":[");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"PartitionKey\":\"k%llu\","
				      "\"Data\":\"%08d\"}", i ? "," : "",
				      (unsigned long long)seed_rng_next(&rng), 10000000 + i);
	snprintf(body + n, sizeof(body) - n, "]}");
	r = harness_ok(&h, "PutRecords", body);
	cr_assert_eq(item_at(r, "FailedRecordCount")->valueint, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(r, "Records")), 500);
	for (int s = 0; s < 4; s++) {
		char shard[32];
		char *it;
		cJSON *g;
		int last = -1;
		const cJSON *rec;

		snprintf(shard, sizeof(shard), "shardId-%012d", s);
		it = iterator("batch", shard, "TRIM_HORIZON", "");
		g = get_records(it, 0);
		cJSON_ArrayForEach(rec, item_at(g, "Records")) {
			/* Data was 8 decimal digits sent as base64 text: it comes back verbatim. */
			int index = atoi(str_at(rec, "Data")) - 10000000;
			const char *key = str_at(rec, "PartitionKey");
			hashkey_t hash = hashkey_from_partition_key(key, strlen(key));

			cr_assert_gt(index, last, "order within %s", shard);
			last = index;
			cr_assert_geq(hash, hashkey_range_start((uint32_t)s, 4), "%s on %s", key, shard);
			if (s < 3)
				cr_assert_lt(hash, hashkey_range_start((uint32_t)s + 1, 4), "%s", key);
			total++;
		}
		cJSON_Delete(g);
		free(it);
	}
	cr_assert_eq(total, 500);
	cJSON_Delete(r);
}

Test(kinesis_actions, survives_a_restart)
{
	cJSON *g;
	cJSON *r;
	char *it;

	create("keep", 2);
	r = put("keep", "pk1", "ZHVyYWJsZQ==");
	cJSON_Delete(harness_ok(&h, "AddTagsToStream", "{\"StreamName\":\"keep\",\"Tags\":"
				"{\"team\":\"ingest\"}}"));
	cJSON_Delete(harness_ok(&h, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"keep\","
				"\"RetentionPeriodHours\":48}"));
	it = iterator("keep", "shardId-000000000001", "TRIM_HORIZON", "");
	harness_restart(&h);
	g = get_records(it, 0); /* The secret persists: old iterators still work. */
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 1);
	cr_assert_str_eq(str_at(g, "Records.0.SequenceNumber"), str_at(r, "SequenceNumber"));
	cJSON_Delete(g);
	g = harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"keep\"}");
	cr_assert_eq(item_at(item_at(g, "StreamDescriptionSummary"),
			     "RetentionPeriodHours")->valueint, 48);
	cJSON_Delete(g);
	g = harness_ok(&h, "ListTagsForStream", "{\"StreamName\":\"keep\"}");
	cr_assert_str_eq(str_at(g, "Tags.0.Key"), "team");
	cJSON_Delete(g);
	cJSON_Delete(r);
	free(it);
}

Test(kinesis_actions, bad_input_stores_nothing)
{
	cJSON *g;
	char *it;

	create("clean", 1);
	harness_expect_error(&h, "PutRecords", "{\"StreamName\":\"clean\",\"Records\":["
			     "{\"PartitionKey\":\"a\",\"Data\":\"YQ==\"},"
			     "{\"PartitionKey\":\"\",\"Data\":\"YQ==\"}]}", "ValidationException",
			     "1 validation error detected: Value '' at "
			     "'records.2.member.partitionKey' failed to satisfy constraint: Member "
			     "must have length greater than or equal to 1");
	harness_expect_error(&h, "PutRecords", "{\"StreamName\":\"clean\",\"Records\":["
			     "{\"PartitionKey\":\"a\",\"Data\":\"YQ==\"},"
			     "{\"PartitionKey\":\"b\",\"Data\":\"YQ=\"}]}", "SerializationException",
			     "'YQ=' can not be converted to a Blob: Base64 encoded length is expected "
			     "a multiple of 4 bytes but found: 3");
	it = iterator("clean", "shardId-000000000000", "TRIM_HORIZON", "");
	g = get_records(it, 0);
	cr_assert_eq(cJSON_GetArraySize(item_at(g, "Records")), 0);
	cJSON_Delete(g);
	free(it);
}

Test(kinesis_actions, list_streams_and_shards_paginate)
{
	char body[1024];
	cJSON *l;

	create("a1", 3);
	create("b2", 1);
	create("c3", 1);
	l = harness_ok(&h, "ListStreams", "{\"Limit\":2}");
	cr_assert_str_eq(str_at(l, "StreamNames.0"), "a1");
	cr_assert_str_eq(str_at(l, "StreamNames.1"), "b2");
	cr_assert(cJSON_IsTrue(item_at(l, "HasMoreStreams")));
	cr_assert_str_eq(str_at(l, "StreamSummaries.1.StreamStatus"), "ACTIVE");
	snprintf(body, sizeof(body), "{\"NextToken\":\"%s\"}", str_at(l, "NextToken"));
	cJSON_Delete(l);
	l = harness_ok(&h, "ListStreams", body);
	cr_assert_eq(cJSON_GetArraySize(item_at(l, "StreamNames")), 1);
	cr_assert_str_eq(str_at(l, "StreamNames.0"), "c3");
	cJSON_Delete(l);
	l = harness_ok(&h, "ListShards", "{\"StreamName\":\"a1\",\"MaxResults\":2}");
	cr_assert_eq(cJSON_GetArraySize(item_at(l, "Shards")), 2);
	snprintf(body, sizeof(body), "{\"NextToken\":\"%s\"}", str_at(l, "NextToken"));
	cJSON_Delete(l);
	l = harness_ok(&h, "ListShards", body);
	cr_assert_str_eq(str_at(l, "Shards.0.ShardId"), "shardId-000000000002");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(l, "NextToken"));
	cJSON_Delete(l);
	harness_expect_error(&h, "ListShards", "{}", "InvalidArgumentException",
			     "Either NextToken or StreamName should be provided.");
	h.clock_offset_ms = 301000;
	harness_expect_error(&h, "ListShards", body, "ExpiredNextTokenException", NULL);
	h.clock_offset_ms = 0;
	l = harness_ok(&h, "ListShards", "{\"StreamName\":\"a1\",\"ShardFilter\":{\"Type\":"
		       "\"AFTER_SHARD_ID\",\"ShardId\":\"shardId-000000000000\"}}");
	cr_assert_eq(cJSON_GetArraySize(item_at(l, "Shards")), 2);
	cJSON_Delete(l);
	/* StreamCreationTimestamp: this incarnation lists, another one is not found. */
	l = harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"a1\"}");
	snprintf(body, sizeof(body), "{\"StreamName\":\"a1\",\"StreamCreationTimestamp\":%.3f}",
		 item_at(item_at(l, "StreamDescriptionSummary"),
			 "StreamCreationTimestamp")->valuedouble);
	cJSON_Delete(l);
	cJSON_Delete(harness_ok(&h, "ListShards", body));
	harness_expect_error(&h, "ListShards", "{\"StreamName\":\"a1\","
			     "\"StreamCreationTimestamp\":1000000000}", "ResourceNotFoundException",
			     "Stream a1 under account 000000000000 not found.");
}

Test(kinesis_actions, retention_tags_limits_mode)
{
	cJSON *l;

	create("set", 1);
	harness_expect_error(&h, "DecreaseStreamRetentionPeriod", "{\"StreamName\":\"set\","
			     "\"RetentionPeriodHours\":12}", "InvalidArgumentException",
			     "Minimum allowed retention period is 24 hours. Requested retention "
			     "period (12 hours) is too short.");
	harness_expect_error(&h, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"set\","
			     "\"RetentionPeriodHours\":9000}", "InvalidArgumentException", NULL);
	cJSON_Delete(harness_ok(&h, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"set\","
				"\"RetentionPeriodHours\":8760}"));
	harness_expect_error(&h, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"set\","
			     "\"RetentionPeriodHours\":100}", "InvalidArgumentException",
			     "Requested retention period (100 hours) for stream set can not be "
			     "shorter than existing retention period (8760 hours). Use "
			     "DecreaseRetentionPeriod API.");
	cJSON_Delete(harness_ok(&h, "AddTagsToStream", "{\"StreamName\":\"set\",\"Tags\":"
				"{\"b\":\"2\",\"a\":\"1\",\"c\":\"\"}}"));
	cJSON_Delete(harness_ok(&h, "RemoveTagsFromStream", "{\"StreamName\":\"set\","
				"\"TagKeys\":[\"c\",\"zz\"]}"));
	l = harness_ok(&h, "ListTagsForStream", "{\"StreamName\":\"set\",\"Limit\":1}");
	cr_assert_str_eq(str_at(l, "Tags.0.Key"), "a");
	cr_assert(cJSON_IsTrue(item_at(l, "HasMoreTags")));
	cJSON_Delete(l);
	l = harness_ok(&h, "DescribeLimits", "{}");
	cr_assert_eq(item_at(l, "OpenShardCount")->valueint, 1);
	cJSON_Delete(l);
	cJSON_Delete(harness_ok(&h, "UpdateStreamMode", "{\"StreamARN\":\"arn:aws:kinesis:"
				"us-east-1:000000000000:stream/set\",\"StreamModeDetails\":"
				"{\"StreamMode\":\"ON_DEMAND\"}}"));
	l = harness_ok(&h, "DescribeStreamSummary", "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:"
		       "000000000000:stream/set\"}");
	cr_assert_str_eq(str_at(l, "StreamDescriptionSummary.StreamModeDetails.StreamMode"),
			 "ON_DEMAND");
	cJSON_Delete(l);
}

/*
 * Issue 12: GetShardIterator, SplitShard and MergeShards check the shard before the stream,
 * as AWS does, and name a shard that parses by its canonical id.
 */
Test(kinesis_actions, the_shard_is_checked_before_the_stream)
{
	static const struct {
		const char *action;
		const char *body;
		const char *message;
	} cases[] = {
		{ "GetShardIterator", "{\"StreamName\":\"nosuch\",\"ShardId\":\"2147483648\","
		  "\"ShardIteratorType\":\"LATEST\"}",
		  "Could not find shard 2147483648 in stream nosuch under account 000000000000." },
		{ "GetShardIterator", "{\"StreamName\":\"nosuch\",\"ShardId\":\"2147483647\","
		  "\"ShardIteratorType\":\"LATEST\"}",
		  "Shard shardId-002147483647 in stream nosuch under account 000000000000 does not "
		  "exist" },
		{ "GetShardIterator", "{\"StreamName\":\"pre\",\"ShardId\":\"shardId-5\","
		  "\"ShardIteratorType\":\"LATEST\"}",
		  "Shard shardId-000000000005 in stream pre under account 000000000000 does not "
		  "exist" },
		{ "SplitShard", "{\"StreamName\":\"nosuch\",\"ShardToSplit\":\"x-5\","
		  "\"NewStartingHashKey\":\"5\"}",
		  "Could not find shard shardId-000000000005 in stream nosuch under account "
		  "000000000000." },
		{ "SplitShard", "{\"StreamName\":\"nosuch\",\"ShardToSplit\":\"abc\","
		  "\"NewStartingHashKey\":\"5\"}",
		  "Could not find shard abc in stream nosuch under account 000000000000." },
		{ "SplitShard", "{\"StreamName\":\"pre\",\"ShardToSplit\":\"shardId-7\","
		  "\"NewStartingHashKey\":\"5\"}",
		  "Could not find shard shardId-000000000007 in stream pre under account "
		  "000000000000." },
		{ "MergeShards", "{\"StreamName\":\"nosuch\",\"ShardToMerge\":\"0\","
		  "\"AdjacentShardToMerge\":\"1\"}",
		  "Could not find shard shardId-000000000000 in stream nosuch under account "
		  "000000000000." },
	};

	create("pre", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		harness_expect_error(&h, cases[i].action, cases[i].body,
				     "ResourceNotFoundException", cases[i].message);
}

/* What the metrics code asks: the switched-on metrics by stream id, kept over a restart. */
Test(kinesis_actions, enhanced_metrics_are_queryable)
{
	uint32_t id;

	create("mon", 1);
	id = kinesis_stream_find(h.k, "mon", 3)->stream_id;
	cr_assert_eq(kinesis_enhanced_metrics(h.k, id), 0);
	cJSON_Delete(harness_ok(&h, "EnableEnhancedMonitoring", "{\"StreamName\":\"mon\","
				"\"ShardLevelMetrics\":[\"IncomingBytes\",\"IteratorAgeMilliseconds\"]}"));
	cr_assert_eq(kinesis_enhanced_metrics(h.k, id),
		     KINESIS_METRIC_INCOMING_BYTES | KINESIS_METRIC_ITERATOR_AGE);
	harness_restart(&h);
	cr_assert_eq(kinesis_enhanced_metrics(h.k, id),
		     KINESIS_METRIC_INCOMING_BYTES | KINESIS_METRIC_ITERATOR_AGE);
	cJSON_Delete(harness_ok(&h, "DisableEnhancedMonitoring", "{\"StreamName\":\"mon\","
				"\"ShardLevelMetrics\":[\"ALL\"]}"));
	cr_assert_eq(kinesis_enhanced_metrics(h.k, id), 0);
	cr_assert_eq(kinesis_enhanced_metrics(h.k, id + 1000), 0, "no such stream: none");
}

/*
 * Long enough that two calls in a row see the status before the change even on a loaded
 * machine under a sanitizer; the waits for the change are waits for a condition.
 */
#define STATUS_DELAY_MS 1000

static void
setup_delayed(void)
{
	harness_open(&h, STATUS_DELAY_MS);
}

/* Bounds a wait for a status change: only a hang reaches it. */
#define STATUS_WAIT_MS 30000

/*
 * Polls until the stream's status is `status`, or (status NULL) until the stream is gone.
 * The transition takes STATUS_DELAY_MS; how much longer is the machine's business.
 */
static void
wait_status(const char *stream, const char *status)
{
	uint64_t end_ns = clock_mono_ns() + STATUS_WAIT_MS * 1000000ull;
	char body[256];

	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\"}", stream);
	for (;;) {
		struct api_call *call;
		bool reached;

		kinesis_poll(h.k, 0);
		call = harness_call(&h, "DescribeStreamSummary", body);
		if (status == NULL) {
			reached = call->status != 200;
		} else {
			cJSON *d = cJSON_Parse(call->out.data);

			reached = call->status == 200 && strcmp(str_at(d, "StreamDescriptionSummary."
								   "StreamStatus"), status) == 0;
			cJSON_Delete(d);
		}
		harness_call_free(call);
		if (reached)
			return;
		cr_assert_lt(clock_mono_ns(), end_ns, "%s never became %s", stream,
			     status != NULL ? status : "gone");
		usleep(1000);
	}
}

/* CREATING -> ACTIVE, ACTIVE -> UPDATING -> ACTIVE, DELETING -> gone, with the delay. */
Test(kinesis_status, transitions_take_the_configured_delay, .init = setup_delayed,
     .fini = teardown, .timeout = 30)
{
	cJSON *d;

	create("slow", 2);
	d = harness_ok(&h, "DescribeStream", "{\"StreamName\":\"slow\"}");
	cr_assert_str_eq(str_at(d, "StreamDescription.StreamStatus"), "CREATING");
	cr_assert_eq(cJSON_GetArraySize(item_at(item_at(d, "StreamDescription"), "Shards")), 0);
	cJSON_Delete(d);
	harness_expect_error(&h, "PutRecord", "{\"StreamName\":\"slow\",\"PartitionKey\":\"a\","
			     "\"Data\":\"\"}", "ResourceNotFoundException",
			     "Stream slow under account 000000000000 not found.");
	wait_status("slow", "ACTIVE");
	cJSON_Delete(harness_ok(&h, "UpdateStreamMode", "{\"StreamARN\":\"arn:aws:kinesis:"
				"us-east-1:000000000000:stream/slow\",\"StreamModeDetails\":"
				"{\"StreamMode\":\"ON_DEMAND\"}}"));
	d = harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"slow\"}");
	cr_assert_str_eq(str_at(d, "StreamDescriptionSummary.StreamStatus"), "UPDATING");
	cJSON_Delete(d);
	wait_status("slow", "ACTIVE");
	cJSON_Delete(put("slow", "a", "YQ=="));
	cJSON_Delete(harness_ok(&h, "DeleteStream", "{\"StreamName\":\"slow\"}"));
	d = harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"slow\"}");
	cr_assert_str_eq(str_at(d, "StreamDescriptionSummary.StreamStatus"), "DELETING");
	cJSON_Delete(d);
	harness_expect_error(&h, "DeleteStream", "{\"StreamName\":\"slow\"}",
			     "ResourceInUseException", NULL);
	wait_status("slow", NULL);
	harness_expect_error(&h, "DescribeStream", "{\"StreamName\":\"slow\"}",
			     "ResourceNotFoundException", NULL);
	/* Gone for good: a restart does not bring it back. */
	harness_restart(&h);
	harness_expect_error(&h, "DescribeStream", "{\"StreamName\":\"slow\"}",
			     "ResourceNotFoundException", NULL);
}

/* A stream deleted while the process stops in DELETING is finished at the next start. */
/* The number of shards DescribeStream lists for `stream`, and its status. */
static int
described_shards(const char *stream, const char *status)
{
	char body[128];
	cJSON *d;
	int n;

	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\"}", stream);
	d = harness_ok(&h, "DescribeStream", body);
	cr_assert_str_eq(str_at(d, "StreamDescription.StreamStatus"), status);
	n = cJSON_GetArraySize(item_at(item_at(d, "StreamDescription"), "Shards"));
	cJSON_Delete(d);
	return n;
}

/*
 * Issue 12, as AWS: a reshard's children are listed once the stream is ACTIVE again, and a
 * stream deleted while CREATING lists no shards.
 */
Test(kinesis_status, describe_lists_what_aws_lists, .init = setup_delayed, .fini = teardown,
     .timeout = 30)
{
	create("gone", 2);
	cJSON_Delete(harness_ok(&h, "DeleteStream", "{\"StreamName\":\"gone\"}"));
	cr_assert_eq(described_shards("gone", "DELETING"), 0);
	create("rs", 2);
	wait_status("rs", "ACTIVE");
	cJSON_Delete(harness_ok(&h, "SplitShard", "{\"StreamName\":\"rs\",\"ShardToSplit\":"
				"\"shardId-000000000000\",\"NewStartingHashKey\":\"1000\"}"));
	cr_assert_eq(described_shards("rs", "UPDATING"), 2, "no children while UPDATING");
	wait_status("rs", "ACTIVE");
	cr_assert_eq(described_shards("rs", "ACTIVE"), 4);
	harness_restart(&h);
	cr_assert_eq(described_shards("rs", "ACTIVE"), 4);
}

Test(kinesis_status, deleting_is_finished_at_start, .init = setup_delayed, .fini = teardown,
     .timeout = 30)
{
	create("half", 1);
	wait_status("half", "ACTIVE");
	cJSON_Delete(harness_ok(&h, "DeleteStream", "{\"StreamName\":\"half\"}"));
	harness_restart(&h);
	harness_expect_error(&h, "DescribeStream", "{\"StreamName\":\"half\"}",
			     "ResourceNotFoundException", NULL);
	create("half", 1); /* The name is free again; a new incarnation. */
}

static cJSON *
put_many(const char *stream, int count, int from)
{
	static char body[100000];
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"Records\":[",
				    stream);

	for (int i = 0; i < count; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"PartitionKey\":\"k%d\","
				      "\"Data\":\"YWJj\"}", i ? "," : "", from + i);
	snprintf(body + n, sizeof(body) - n, "]}");
	return harness_ok(&h, "PutRecords", body);
}

/* shard_throttling: 1,000 records a second per shard, then per-record throttling errors. */
Test(kinesis_status, shard_throttling_limits_writes, .init = setup, .fini = teardown,
     .timeout = 30)
{
	cJSON *r;

	h.config.shard_throttling = true;
	harness_restart(&h); /* Re-opened with the switch on. */
	h.fixed_now_ns = 1800000000ull * 1000000000ull;
	create("hot", 1);
	for (int i = 0; i < 2; i++) {
		r = put_many("hot", 500, i * 500);
		cr_assert_eq(item_at(r, "FailedRecordCount")->valueint, 0);
		cJSON_Delete(r);
	}
	r = put_many("hot", 3, 1000);
	cr_assert_eq(item_at(r, "FailedRecordCount")->valueint, 3);
	cr_assert_str_eq(str_at(r, "Records.0.ErrorCode"), "ProvisionedThroughputExceededException");
	cr_assert_str_eq(str_at(r, "Records.0.ErrorMessage"), "Rate exceeded for shard "
			 "shardId-000000000000 in stream hot under account 000000000000.");
	cJSON_Delete(r);
	h.fixed_now_ns += 1000000000ull; /* The next second has room again. */
	r = put_many("hot", 3, 1003);
	cr_assert_eq(item_at(r, "FailedRecordCount")->valueint, 0);
	cJSON_Delete(r);
}

/* Flips one byte of the first occurrence of `marker` in a log segment under h.dir/log. */
static void
corrupt_segment_at(const char *marker)
{
	char cmd[512];
	char path[512];
	FILE *list;
	bool done = false;

	snprintf(cmd, sizeof(cmd), "ls %s/log/*.log", h.dir);
	list = popen(cmd, "r");
	cr_assert_not_null(list);
	while (!done && fgets(path, sizeof(path), list) != NULL) {
		static char bytes[16 << 20];
		FILE *f;
		size_t n;
		char *at;

		path[strcspn(path, "\n")] = '\0';
		f = fopen(path, "r+b");
		cr_assert_not_null(f, "%s", path);
		n = fread(bytes, 1, sizeof(bytes), f);
		at = memmem(bytes, n, marker, strlen(marker));
		if (at != NULL) {
			cr_assert_eq(fseek(f, at - bytes, SEEK_SET), 0);
			cr_assert_eq(fputc(*at ^ 0x20, f), *at ^ 0x20);
			done = true;
		}
		cr_assert_eq(fclose(f), 0);
	}
	pclose(list);
	cr_assert(done, "marker not found in any segment");
}

/*
 * A record lost to corruption: the reader steps over it (counted, logged), as an AWS reader
 * steps over data past retention. Before, GetRecords answered InternalFailure at that
 * position forever, and SDKs retry InternalFailure forever.
 */
Test(kinesis_actions, a_reader_steps_over_records_lost_to_corruption)
{
	const char *want[] = { "YmVmb3Jl", "YWZ0ZXI=" };  /* "before", "after" */
	char *it;
	int got = 0;

	create("lost", 1);
	cJSON_Delete(put("lost", "k", "YmVmb3Jl"));
	cJSON_Delete(put("lost", "k", "TUFSS0VSLUNPUlJVUFQtMDEyMzQ1Njc4OQ=="));
	cJSON_Delete(put("lost", "k", "YWZ0ZXI="));
	harness_stop(&h);
	corrupt_segment_at("MARKER-CORRUPT-0123456789");
	harness_start(&h);
	it = iterator("lost", "shardId-000000000000", "TRIM_HORIZON", "");
	for (int call = 0; call < 4 && got < 2; call++) {
		cJSON *g = get_records(it, 0);
		const cJSON *recs = item_at(g, "Records");

		for (int i = 0; i < cJSON_GetArraySize(recs); i++) {
			cr_assert_lt(got, 2, "more records than were kept");
			cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, i),
							     "Data")->valuestring, want[got]);
			got++;
		}
		free(it);
		it = strdup(str_at(g, "NextShardIterator"));
		cJSON_Delete(g);
	}
	cr_assert_eq(got, 2, "the record after the lost one was never read");
	cr_assert_eq(h.k->records_lost_skipped, 1);
	free(it);
}
