/*
 * Request validation per action: AWS's exception names and message texts
 * ("N validation error(s) detected: ...", SerializationException's Coral
 * texts, InvalidArgumentException semantics), one table row per case.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "control/kinesis.h"
#include "tests/control/kinesis/harness.h"

static struct harness h;

static void
setup(void)
{
	harness_open(&h, 0);
	cJSON_Delete(harness_ok(&h, "CreateStream", "{\"StreamName\":\"s\",\"ShardCount\":1}"));
}

static void
teardown(void)
{
	harness_close(&h);
}

TestSuite(kinesis_validate, .init = setup, .fini = teardown, .timeout = 60);

struct bad_case {
	const char *action;
	const char *body;
	const char *type;
	const char *message; /* NULL: not checked (or absent). */
};

#define V1 "1 validation error detected: "
#define V2 "2 validation errors detected: "
#define NAME_RE "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
#define NOT_NULL "failed to satisfy constraint: Member must not be null"

static const struct bad_case bad_cases[] = {
	/* Serialization: the body and member types. */
	{ "CreateStream", "", "SerializationException", NULL },
	{ "CreateStream", "{", "SerializationException", NULL },
	{ "CreateStream", "[]", "SerializationException",
	  "Start of list found where not expected" },
	{ "CreateStream", "{\"StreamName\":true,\"ShardCount\":1}", "SerializationException",
	  "class java.lang.Boolean can not be converted to an String" },
	{ "CreateStream", "{\"StreamName\":\"x\",\"ShardCount\":\"1\"}", "SerializationException",
	  "class java.lang.String can not be converted to an Integer" },
	/* Issue 12: a number for a String or Blob member, in AWS's words (not BigDecimal). */
	{ "CreateStream", "{\"StreamName\":5,\"ShardCount\":1}", "SerializationException",
	  "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted "
	  "to an String" },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\",\"Data\":12}",
	  "SerializationException", "class com.amazon.coral.value.json.numbers.TruncatingBigNumber "
	  "can not be converted to a Blob" },
	{ "CreateStream", "{\"StreamName\":{},\"ShardCount\":1}", "SerializationException",
	  "Start of structure or map found where not expected." },
	{ "PutRecords", "{\"StreamName\":\"s\",\"Records\":{}}", "SerializationException",
	  "Start of structure or map found where not expected." },
	{ "PutRecords", "{\"StreamName\":\"s\",\"Records\":5}", "SerializationException",
	  "Expected list or null" },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":true}",
	  "SerializationException", "class java.lang.Boolean can not be converted to a Blob" },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"abcde\"}",
	  "SerializationException", "'abcde' can not be converted to a Blob: Base64 encoded "
	  "length is expected a multiple of 4 bytes but found: 5" },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"ab*d\"}",
	  "SerializationException", "'ab*d' can not be converted to a Blob: Invalid Base64 "
	  "character: '*'" },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"YR==\"}",
	  "SerializationException", "'YR==' can not be converted to a Blob: Invalid last non-pad "
	  "Base64 character dectected" },
	{ "PutRecords", "{\"StreamName\":\"s\",\"Records\":[{\"PartitionKey\":\"a\",\"Data\":"
	  "\"YWJ*YWJj\"}]}", "SerializationException", "'YWJ*YWJj' can not be converted to a Blob: "
	  "Invalid Base64 character: '*'" },
	{ "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":"
	  "\"AT_TIMESTAMP\",\"Timestamp\":\"x\"}", "SerializationException",
	  "class java.lang.String can not be converted to milliseconds since epoch" },
	{ "AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":[]}", "SerializationException",
	  "Start of list found where not expected" },
	{ "AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":\"x\"}", "SerializationException",
	  "Expected map or null" },
	/* Validation: AWS's member order, every constraint a message. */
	{ "CreateStream", "{}", "ValidationException", V1 "Value null at 'streamName' " NOT_NULL },
	{ "CreateStream", "{\"StreamName\":\"\",\"ShardCount\":0}", "ValidationException",
	  "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: "
	  "Member must have value greater than or equal to 1; Value '' at 'streamName' failed to "
	  "satisfy constraint: " NAME_RE "; Value '' at 'streamName' failed to satisfy "
	  "constraint: Member must have length greater than or equal to 1" },
	{ "CreateStream", "{\"StreamName\":\"a b\",\"ShardCount\":1e11}", "ValidationException",
	  V2 "Value '2147483647' at 'shardCount' failed to satisfy constraint: Member must have "
	  "value less than or equal to 100000; Value 'a b' at 'streamName' failed to satisfy "
	  "constraint: " NAME_RE },
	{ "CreateStream", "{\"StreamName\":\"m\",\"StreamModeDetails\":{\"StreamMode\":\"X\"}}",
	  "ValidationException", V1 "Value 'X' at 'streamModeDetails.streamMode' failed to satisfy "
	  "constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]" },
	{ "PutRecord", "{\"StreamName\":\"s\"}", "ValidationException",
	  V2 "Value null at 'partitionKey' " NOT_NULL "; Value null at 'data' " NOT_NULL },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"\","
	  "\"ExplicitHashKey\":\"01\",\"SequenceNumberForOrdering\":\"x\"}", "ValidationException",
	  V2 "Value 'x' at 'sequenceNumberForOrdering' failed to satisfy constraint: Member must "
	  "satisfy regular expression pattern: 0|([1-9]\\d{0,128}); Value '01' at "
	  "'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression "
	  "pattern: 0|([1-9]\\d{0,38})" },
	{ "PutRecords", "{\"StreamName\":\"s\",\"Records\":[]}", "ValidationException",
	  V1 "Value '[]' at 'records' failed to satisfy constraint: Member must have length "
	  "greater than or equal to 1" },
	{ "PutRecords", "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"\"},{\"PartitionKey\":"
	  "\"p\"}]}", "ValidationException",
	  /* Issue 12: AWS's paths name the list member ("records.N.member.x"). */
	  V2 "Value null at 'records.1.member.partitionKey' " NOT_NULL
	  "; Value null at 'records.2.member.data' " NOT_NULL },
	{ "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":"
	  "\"NOPE\"}", "ValidationException", V1 "Value 'NOPE' at 'shardIteratorType' failed to "
	  "satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, "
	  "AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]" },
	{ "GetRecords", "{\"ShardIterator\":\"x\",\"Limit\":0}", "ValidationException",
	  V1 "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater "
	  "than or equal to 1" },
	{ "GetRecords", "{\"Limit\":10001}", "ValidationException",
	  V2 "Value '10001' at 'limit' failed to satisfy constraint: Member must have value less "
	  "than or equal to 10000; Value null at 'shardIterator' " NOT_NULL },
	{ "ListShards", "{\"StreamName\":\"s\",\"MaxResults\":0}", "ValidationException",
	  V1 "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value "
	  "greater than or equal to 1" },
	{ "DescribeStream", "{\"StreamName\":\"s\",\"StreamARN\":\"nope\"}", "ValidationException",
	  V1 "Value 'nope' at 'streamARN' failed to satisfy constraint: Member must satisfy "
	  "regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+" },
	{ "AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{\"\":\"v\"}}", "ValidationException",
	  V1 "Value '{=v}' at 'tags' failed to satisfy constraint: Map keys must satisfy "
	  "constraint: [Member must have length less than or equal to 128, Member must have length "
	  "greater than or equal to 1]" },
	{ "RemoveTagsFromStream", "{\"StreamName\":\"s\"}", "ValidationException",
	  V1 "Value null at 'tagKeys' " NOT_NULL },
	{ "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"s\",\"RetentionPeriodHours\":0}",
	  "ValidationException", V1 "Value '0' at 'retentionPeriodHours' failed to satisfy "
	  "constraint: Member must have value greater than or equal to 1" },
	{ "DeleteStream", "{\"StreamName\":\"s\",\"EnforceConsumerDeletion\":5}",
	  "SerializationException", "class java.math.BigDecimal can not be converted to an Boolean" },
	{ "DeleteStream", "{\"StreamName\":\"\"}", "ValidationException",
	  V2 "Value '' at 'streamName' failed to satisfy constraint: " NAME_RE "; Value '' at "
	  "'streamName' failed to satisfy constraint: Member must have length greater than or "
	  "equal to 1" },
	{ "DescribeStreamSummary", "{\"StreamName\":\"" "x129xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "\"}", "ValidationException", NULL },
	{ "ListStreams", "{\"Limit\":0,\"ExclusiveStartStreamName\":\"a b\"}",
	  "ValidationException", V2 "Value '0' at 'limit' failed to satisfy constraint: Member must "
	  "have value greater than or equal to 1; Value 'a b' at 'exclusiveStartStreamName' failed "
	  "to satisfy constraint: " NAME_RE },
	{ "ListTagsForStream", "{\"StreamName\":\"s\",\"Limit\":51}", "ValidationException",
	  V1 "Value '51' at 'limit' failed to satisfy constraint: Member must have value less than "
	  "or equal to 50" },
	{ "DecreaseStreamRetentionPeriod", "{\"StreamName\":\"s\"}", "ValidationException",
	  V1 "Value null at 'retentionPeriodHours' " NOT_NULL },
	{ "DecreaseStreamRetentionPeriod", "{\"StreamName\":\"s\",\"RetentionPeriodHours\":48}",
	  "InvalidArgumentException", "Requested retention period (48 hours) for stream s can not "
	  "be longer than existing retention period (24 hours). Use IncreaseRetentionPeriod API." },
	{ "UpdateStreamMode", "{}", "ValidationException",
	  V2 "Value null at 'streamARN' " NOT_NULL "; Value null at 'streamModeDetails' " NOT_NULL },
	{ "UpdateStreamMode", "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/s\","
	  "\"StreamModeDetails\":{}}", "ValidationException",
	  V1 "Value null at 'streamModeDetails.streamMode' " NOT_NULL },
	{ "UpdateStreamMode", "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/s\","
	  "\"StreamModeDetails\":[]}", "SerializationException",
	  "Start of list found where not expected" },
	{ "RemoveTagsFromStream", "{\"StreamName\":\"s\",\"TagKeys\":[\"\"]}",
	  "ValidationException", V1 "Value '[]' at 'tagKeys' failed to satisfy constraint: Member "
	  "must satisfy constraint: [Member must have length less than or equal to 128, Member "
	  "must have length greater than or equal to 1]" },
	{ "ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"NOPE\"}}",
	  "ValidationException", V1 "Value 'NOPE' at 'shardFilter.type' failed to satisfy "
	  "constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
	  "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]" },
	{ "ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\"}}",
	  "InvalidArgumentException", NULL },
	/* Semantics. */
	{ "DescribeStream", "{}", "InvalidArgumentException",
	  "Either StreamName or StreamARN must be provided." },
	{ "DescribeStream", "{\"StreamName\":\"nope\"}", "ResourceNotFoundException",
	  "Stream nope under account 000000000000 not found." },
	{ "DescribeStream", "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/nope\"}",
	  "ResourceNotFoundException", "Stream nope under account 000000000000 not found." },
	/*
	 * Issue 12: SequenceNumberForOrdering read as AWS reads it (kinesalite's versions):
	 * version 4 is invalid, an all-f version 2 (created in the future) too.
	 */
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"\","
	  "\"SequenceNumberForOrdering\":\"49039857307708443467467104868809893875799651909875269636\"}",
	  "InvalidArgumentException", "ExclusiveMinimumSequenceNumber "
	  "49039857307708443467467104868809893875799651909875269636 used in PutRecord on stream s "
	  "under account 000000000000 is invalid." },
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"\","
	  "\"SequenceNumberForOrdering\":\"73559785961551514828601391991642864028743539089244946418\"}",
	  "InvalidArgumentException", "ExclusiveMinimumSequenceNumber "
	  "73559785961551514828601391991642864028743539089244946418 used in PutRecord on stream s "
	  "under account 000000000000 is invalid." },
	/* Version 3: AWS's PutRecord fails inside. */
	{ "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\",\"Data\":\"\","
	  "\"SequenceNumberForOrdering\":\"49039857307708443467467104868809893875799651909875269635\"}",
	  "InternalFailure", NULL },
	{ "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"shard-x\",\"ShardIteratorType\":"
	  "\"LATEST\"}", "ResourceNotFoundException",
	  "Could not find shard shard-x in stream s under account 000000000000." },
	{ "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":"
	  "\"LATEST\",\"StartingSequenceNumber\":\"1\"}", "InvalidArgumentException",
	  "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
	  "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
	  "Request specified LATEST and also a StartingSequenceNumber." },
	{ "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":"
	  "\"AT_TIMESTAMP\",\"Timestamp\":99999999999}", "InvalidArgumentException", NULL },
	{ "ListShards", "{\"StreamName\":\"s\",\"NextToken\":\"abc\"}", "InvalidArgumentException",
	  "NextToken and StreamName cannot be provided together." },
	{ "ListStreams", "{\"NextToken\":\"abcd\"}", "InvalidArgumentException",
	  "Invalid NextToken." },
	{ "SplitShard", "{}", "ValidationException", "2 validation errors detected: Value null at "
	  "'newStartingHashKey' failed to satisfy constraint: Member must not be null; Value null "
	  "at 'shardToSplit' failed to satisfy constraint: Member must not be null" },
	{ "MergeShards", "{}", "ValidationException", "2 validation errors detected: Value null at "
	  "'adjacentShardToMerge' failed to satisfy constraint: Member must not be null; Value "
	  "null at 'shardToMerge' failed to satisfy constraint: Member must not be null" },
	{ "UpdateShardCount", "{\"ScalingType\":\"HALF\",\"TargetShardCount\":0}",
	  "ValidationException", "2 validation errors detected: Value 'HALF' at 'scalingType' "
	  "failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]; "
	  "Value '0' at 'targetShardCount' failed to satisfy constraint: Member must have value "
	  "greater than or equal to 1" },
	/* Resource policies: ResourceARN's looser pattern (consumer ARNs too), Policy required. */
	{ "PutResourcePolicy", "{}", "ValidationException", "2 validation errors detected: Value "
	  "null at 'resourceARN' " NOT_NULL "; Value null at 'policy' " NOT_NULL },
	{ "GetResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:s\"}",
	  "ValidationException", V1 "Value 'arn:aws:kinesis:us-east-1:000000000000:s' at "
	  "'resourceARN' failed to satisfy constraint: Member must satisfy regular expression "
	  "pattern: arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+" },
	{ "DeleteResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:"
	  "stream/\"}", "ValidationException", NULL },
	{ "DeleteResourcePolicy", "{\"ResourceARN\":5}", "SerializationException", NULL },
	{ "GetResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:"
	  "stream/nope\"}", "ResourceNotFoundException",
	  "Stream nope under account 000000000000 not found." },
	{ "GetResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:"
	  "stream/s/consumer/c:1\"}", "ResourceNotFoundException", NULL },
	{ "DeleteResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:"
	  "stream/s\"}", "ResourceNotFoundException", "No resource policy found for resource ARN "
	  "arn:aws:kinesis:us-east-1:000000000000:stream/s." },
	{ "PutResourcePolicy", "{\"ResourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:"
	  "stream/s\",\"Policy\":\"{}\"}", "InvalidArgumentException",
	  "Invalid policy document: Statement must be an object or a non-empty list" },
	{ "RegisterStreamConsumer", "{}", "ValidationException", "2 validation errors detected: "
	  "Value null at 'streamARN' failed to satisfy constraint: Member must not be null; Value "
	  "null at 'consumerName' failed to satisfy constraint: Member must not be null" },
	{ "SubscribeToShard", "{\"ConsumerARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/"
	  "s/consumer/c:1\",\"ShardId\":\"shardId-000000000000\",\"StartingPosition\":"
	  "{\"Type\":\"LATEST\"}}", "ResourceNotFoundException", "Consumer arn:aws:kinesis:"
	  "us-east-1:000000000000:stream/s/consumer/c:1 not found." },
	{ "StartStreamEncryption", "{}", "ValidationException", NULL },
	{ "NoSuchAction", "{}", "UnknownOperationException", NULL },
};

Test(kinesis_validate, every_bad_case_gets_the_aws_error)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		harness_expect_error(&h, bad_cases[i].action, bad_cases[i].body, bad_cases[i].type,
				     bad_cases[i].message);
}

/* Issue 12: versions AWS reads are taken: version 1, and a small number (version 0). */
Test(kinesis_validate, sequence_numbers_for_ordering_aws_reads_are_taken)
{
	cJSON_Delete(harness_ok(&h, "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\","
				"\"Data\":\"\",\"SequenceNumberForOrdering\":"
				"\"49039857307708443467467104868809893875799651909875269633\"}"));
	cJSON_Delete(harness_ok(&h, "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\","
				"\"Data\":\"\",\"SequenceNumberForOrdering\":\"5\"}"));
}

Test(kinesis_validate, unknown_members_are_ignored_and_nulls_are_absent)
{
	cJSON_Delete(harness_ok(&h, "DescribeStream", "{\"StreamName\":\"s\",\"Whatever\":[1],"
				"\"Limit\":null}"));
}

Test(kinesis_validate, serialization_errors_use_capital_message)
{
	struct api_call *call = harness_call(&h, "CreateStream", "{\"StreamName\":true}");

	cr_assert_not_null(memmem(call->out.data, call->out.size, "\"Message\"", 9));
	harness_call_free(call);
}

Test(kinesis_validate, at_most_ten_messages)
{
	static char body[8192];
	struct api_call *call;
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Records\":[");

	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{}", i ? "," : "");
	snprintf(body + n, sizeof(body) - n, "]}");
	call = harness_call(&h, "PutRecords", body);
	cr_assert_eq(call->status, 400);
	cr_assert_eq(strncmp(call->message, "10 validation errors detected: ", 31), 0, "%s",
		     call->message);
	harness_call_free(call);
}

/* The one-pass PutRecords reader accepts plain valid bodies, and gives up on anything else. */
Test(kinesis_validate, fast_put_records_reader_accepts_only_plain_valid_bodies)
{
	static struct kinesis_fast_put put;
	static const char *const accepted[] = {
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"}",
		" { \"StreamName\" : \"s\" ,\n \"Records\" : [ { \"PartitionKey\" : \"a\" , "
		"\"Data\" : \"\" , \"ExplicitHashKey\" : \"7\" } , {\"Data\":\"YWI=\","
		"\"PartitionKey\":\"\xc3\xa9\"} ] } \n",
		/* Parenthesised: one string on two lines (clang's -Wstring-concatenation). */
		("{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/s\",\"Records\":"
		 "[{\"PartitionKey\":\"k\",\"Data\":\"YWJj\"}]}"),
	};
	static const char *const refused[] = {
		"", "{}", "[]", "{\"Records\":[],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\\\"\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\",\"X\":1}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\","
		"\"StreamName\":\"t\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\",\"Data\":\"YQ==\"}],"
		"\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ=\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YR==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YWJ*YWJj\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"a b\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}]}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\",\"ExplicitHashKey\":\"01\"}],"
		"\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"} x",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"},],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":null,\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"}",
		"{\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}],\"StreamName\":\"s\"",
	};

	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		cr_assert_eq(kinesis_fast_put_parse(h.k, (const uint8_t *)accepted[i],
						    strlen(accepted[i]), &put), 0, "%s", accepted[i]);
	cr_assert_eq(put.count, 1);
	cr_assert_eq(put.records[0].decoded_size, 3);
	cr_assert_eq(memcmp(put.records[0].decoded, "abc", 3), 0);
	cr_assert_eq(kinesis_fast_put_parse(h.k, (const uint8_t *)accepted[1], strlen(accepted[1]),
					    &put), 0);
	cr_assert_eq(put.count, 2);
	cr_assert_eq(put.records[0].hash_key_size, 1);
	cr_assert_eq(put.records[1].key_size, 2);
	cr_assert_eq(put.records[1].decoded_size, 2);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_assert_eq(kinesis_fast_put_parse(h.k, (const uint8_t *)refused[i],
						    strlen(refused[i]), &put), -EINVAL, "%s", refused[i]);
}

/* 501 records: the fast reader gives up, the slow path answers AWS's ValidationException. */
Test(kinesis_validate, fast_reader_gives_up_beyond_500_records)
{
	static struct kinesis_fast_put put;
	static char body[32768];
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Records\":[");

	for (int i = 0; i < 501; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"PartitionKey\":\"k\","
				      "\"Data\":\"\"}", i ? "," : "");
	snprintf(body + n, sizeof(body) - n, "]}");
	cr_assert_eq(kinesis_fast_put_parse(h.k, (const uint8_t *)body, strlen(body), &put),
		     -EINVAL);
	harness_expect_error(&h, "PutRecords", body, "ValidationException", NULL);
}

static void
repeat(char *out, const char *unit, int count)
{
	out[0] = '\0';
	for (int i = 0; i < count; i++)
		strcat(out, unit);
}

/* Keys are bounded in characters as AWS counts them (UTF-16 units), and by the log in bytes. */
Test(kinesis_validate, partition_keys_count_characters)
{
	static char key[2048];
	static char body[4096];
	static char want[4096];

	repeat(key, "\xc3\xa9", 100); /* 100 characters, 200 bytes: fine. */
	snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"PartitionKey\":\"%s\",\"Data\":\"\"}",
		 key);
	cJSON_Delete(harness_ok(&h, "PutRecord", body));
	repeat(key, "\xc3\xa9", 200); /* 200 characters, 400 bytes: the log's bound. */
	snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"PartitionKey\":\"%s\",\"Data\":\"\"}",
		 key);
	harness_expect_error(&h, "PutRecord", body, "InvalidArgumentException",
			     "PartitionKey is 400 bytes of UTF-8; this endpoint accepts at most 256 "
			     "bytes.");
	repeat(key, "a", 257);
	snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Records\":[{\"PartitionKey\":\"%s\","
		 "\"Data\":\"\"}]}", key);
	snprintf(want, sizeof(want), "1 validation error detected: Value '%s' at "
		 "'records.1.member.partitionKey' failed to satisfy constraint: Member must have "
		 "length less than or equal to 256", key);
	harness_expect_error(&h, "PutRecords", body, "ValidationException", want);
	repeat(key, "\xf0\x9f\x98\x80", 129); /* 129 emoji: 258 UTF-16 units. */
	snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"PartitionKey\":\"%s\",\"Data\":\"\"}",
		 key);
	harness_expect_error(&h, "PutRecord", body, "ValidationException", NULL);
}

/* ---- Bytes cJSON accepts and AWS does not: NUL, control characters, broken UTF-8 ---- */

/* Records in shard 0 of stream "s", read from TRIM_HORIZON. */
static int
records_in_s(void)
{
	cJSON *it = harness_ok(&h, "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":"
			       "\"shardId-000000000000\",\"ShardIteratorType\":\"TRIM_HORIZON\"}");
	char body[1024];
	cJSON *got;
	int count;

	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}",
		 cJSON_GetObjectItem(it, "ShardIterator")->valuestring);
	got = harness_ok(&h, "GetRecords", body);
	count = cJSON_GetArraySize(cJSON_GetObjectItem(got, "Records"));
	cJSON_Delete(got);
	cJSON_Delete(it);
	return count;
}

/*
 * Before: strings were measured with strlen() after decoding, so a key "a\u0000b" was
 * acknowledged and stored as "a", and DeleteStream of "s\u0000junk" deleted "s".
 */
Test(kinesis_validate, an_escaped_nul_is_refused_not_truncated)
{
	harness_expect_error(&h, "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"a\\u0000b\","
			     "\"Data\":\"YQ==\"}", "SerializationException",
			     "NUL character (\\u0000) in a JSON string");
	harness_expect_error(&h, "PutRecords", "{\"StreamName\":\"s\",\"Records\":[{\"Data\":"
			     "\"YQ==\",\"PartitionKey\":\"a\\u0000b\"}]}", "SerializationException",
			     "NUL character (\\u0000) in a JSON string");
	cr_assert_eq(records_in_s(), 0);
	harness_expect_error(&h, "DeleteStream", "{\"StreamName\":\"s\\u0000junk\"}",
			     "SerializationException", NULL);
	cJSON_Delete(harness_ok(&h, "DescribeStreamSummary", "{\"StreamName\":\"s\"}"));
	/* An escaped NUL is the only escape refused: "\u0041" is "A". */
	cJSON_Delete(harness_ok(&h, "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":"
				"\"\\u0041\\\\\",\"Data\":\"YQ==\"}"));
	cr_assert_eq(records_in_s(), 1);
}

/* Before: raw control characters and invalid UTF-8 were stored; the key hashed was not UTF-8. */
Test(kinesis_validate, control_characters_and_broken_utf8_are_refused)
{
	static const char *const keys[] = {
		("a\x01" "b"),   /* A raw control character (split: \x01b would be one escape). */
		"a\tb",          /* Tab too: JSON wants it escaped. */
		"\xff",          /* Never in UTF-8. */
		"\xc3",          /* A lead byte cut short. */
		"\xc0\xaf",      /* An overlong '/'. */
		"\xed\xa0\x80",  /* A UTF-16 surrogate. */
		"\xf4\x90\x80\x80", /* Past U+10FFFF. */
	};
	char body[256];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		/* PutRecords takes the one-pass reader first; PutRecord the full parser. */
		snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"YQ==\","
			 "\"PartitionKey\":\"%s\"}]}", keys[i]);
		harness_expect_error(&h, "PutRecords", body, "SerializationException", NULL);
		snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"PartitionKey\":\"%s\","
			 "\"Data\":\"YQ==\"}", keys[i]);
		harness_expect_error(&h, "PutRecord", body, "SerializationException", NULL);
	}
	cr_assert_eq(records_in_s(), 0);
	/* Well-formed UTF-8 up to four bytes still goes through both paths. */
	cJSON_Delete(harness_ok(&h, "PutRecords", "{\"StreamName\":\"s\",\"Records\":[{\"Data\":"
				"\"YQ==\",\"PartitionKey\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]}"));
	cJSON_Delete(harness_ok(&h, "PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":"
				"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"Data\":\"YQ==\"}"));
	cr_assert_eq(records_in_s(), 2);
}
