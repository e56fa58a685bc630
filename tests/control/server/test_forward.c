/*
 * forward: the two pure halves of forwarding a put to a shard's leader
 * (control/forward.h). The split: a job's body is a PutRecords that the
 * server's own JSON reader takes back byte for byte (data, partition keys with
 * quotes, backslashes, control and non-ASCII characters, hash keys), with the
 * record and body bounds and the in-flight bound refusing cleanly. The merge:
 * a leader's answer becomes per-record results in order (numbers and shard
 * ids that must agree), and every other answer fails every record with the
 * right class (throttled: safe to retry; InternalFailure: outcome unknown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/base64.h"
#include "control/config.h"
#include "control/forward.h"

static struct forward *
forward_start(void)
{
	static struct sluice_config config;
	struct forward *f = NULL;

	config_defaults(&config);
	cr_assert_eq(forward_open(&config, &f), 0);
	return f;
}

/* The body as the leader reads it: the "]}" the submit adds, then JSON. */
static cJSON *
body_parse(const struct forward_job *job)
{
	size_t size;
	const char *body = forward_job_body(job, &size);
	char *text = malloc(size + 3);
	cJSON *root;

	cr_assert_not_null(text);
	memcpy(text, body, size);
	memcpy(text + size, "]}", 3);
	root = cJSON_Parse(text);
	free(text);
	cr_assert_not_null(root, "the body is not JSON");
	return root;
}

Test(forward, a_job_body_is_the_records_put_records_reads_back)
{
	static const char *keys[] = { "plain", "q\"uote\\back", "tab\tnl\n\x01", "\xc3\xa9t\xc3\xa9" };
	struct forward *f = forward_start();
	struct forward_job *job = forward_job_get(f, "my-stream.1", "127.0.0.1:1", "AKID", 7);
	uint8_t data[4][300];
	cJSON *root;
	const cJSON *rec;
	uint32_t i = 0;

	cr_assert_not_null(job);
	for (uint32_t r = 0; r < 4; r++) {
		for (size_t b = 0; b < sizeof(data[r]); b++)
			data[r][b] = (uint8_t)(r * 31 + b);
		cr_assert_eq(forward_job_add(job, keys[r], strlen(keys[r]), r == 2 ? "12345" : NULL,
					     data[r], 100 + r, (uint16_t)(10 + r)), 0);
	}
	cr_assert_eq(forward_job_count(job), 4);
	cr_assert_eq(forward_job_cookie(job), 7);
	root = body_parse(job);
	cr_assert_str_eq(cJSON_GetObjectItem(root, "StreamName")->valuestring, "my-stream.1");
	cJSON_ArrayForEach(rec, cJSON_GetObjectItem(root, "Records")) {
		const char *b64 = cJSON_GetObjectItem(rec, "Data")->valuestring;
		const cJSON *hash = cJSON_GetObjectItem(rec, "ExplicitHashKey");
		uint8_t decoded[400];
		int64_t n = base64_decode(b64, strlen(b64), decoded, sizeof(decoded));

		cr_assert_eq(n, 100 + (int64_t)i);
		cr_assert_eq(memcmp(decoded, data[i], (size_t)n), 0);
		cr_assert_str_eq(cJSON_GetObjectItem(rec, "PartitionKey")->valuestring, keys[i]);
		cr_assert_eq(hash != NULL, i == 2);
		if (hash != NULL)
			cr_assert_str_eq(hash->valuestring, "12345");
		cr_assert_eq(forward_job_tag(job, i), 10 + i);
		i++;
	}
	cr_assert_eq(i, 4);
	cJSON_Delete(root);
	forward_job_put(f, job);
	forward_close(f);
}

Test(forward, the_bounds_refuse_without_breaking_the_body)
{
	struct forward *f = forward_start();
	struct forward_job *jobs[FORWARD_INFLIGHT_MAX];
	uint8_t *big = calloc(1, FORWARD_BODY_SIZE_MAX);
	struct forward_job *job;
	cJSON *root;

	cr_assert_not_null(big);
	for (uint32_t i = 0; i < FORWARD_INFLIGHT_MAX; i++)
		cr_assert_not_null(jobs[i] = forward_job_get(f, "s", "h:1", "", i));
	cr_assert_null(forward_job_get(f, "s", "h:1", "", 99), "past FORWARD_INFLIGHT_MAX");
	for (uint32_t i = 1; i < FORWARD_INFLIGHT_MAX; i++)
		forward_job_put(f, jobs[i]);
	job = jobs[0];
	/* A record whose base64 passes the body bound: refused, the body as it was. */
	cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, FORWARD_BODY_SIZE_MAX * 3 / 4, 0),
		     -ENOSPC);
	cr_assert_eq(forward_job_count(job), 0);
	for (uint32_t i = 0; i < FORWARD_RECORDS_MAX; i++)
		cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, 10, (uint16_t)i), 0);
	cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, 10, 0), -ENOSPC, "record 501");
	root = body_parse(job);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "Records")),
		     (int)FORWARD_RECORDS_MAX);
	cJSON_Delete(root);
	forward_job_put(f, job);
	cr_assert_not_null(job = forward_job_get(f, "s", "h:1", "", 1), "a job put back is free");
	forward_job_put(f, job);
	free(big);
	forward_close(f);
}

/* A leader's sequence number for shard `index`, from its own formatter. */
static void
seq_text(uint32_t index, uint64_t seq, char *out)
{
	struct seqnum sn = { .shard_created_s = 1700000000, .shard_index = index, .seq = seq,
			     .put_s = 1700000100 };

	seqnum_format(&sn, out);
}

Test(forward, a_leaders_answer_is_merged_record_by_record)
{
	struct forward_result res[3];
	char s1[SEQNUM_DECIMAL_SIZE];
	char s2[SEQNUM_DECIMAL_SIZE];
	char body[1024];

	seq_text(3, 41, s1);
	seq_text(5, 7, s2);
	snprintf(body, sizeof(body), "{\"FailedRecordCount\":1,\"Records\":["
		 "{\"SequenceNumber\":\"%s\",\"ShardId\":\"shardId-000000000003\"},"
		 "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"x\"},"
		 "{\"ShardId\":\"shardId-000000000005\",\"SequenceNumber\":\"%s\"}]}", s1, s2);
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 3), 0);
	cr_assert_eq(res[0].error, 0);
	cr_assert_eq(res[0].sn.shard_index, 3);
	cr_assert_eq(res[0].sn.seq, 41);
	cr_assert_eq(res[0].sn.shard_created_s, 1700000000);
	cr_assert_eq(res[0].sn.put_s, 1700000100);
	cr_assert_eq(res[1].error, -EPIPE);
	cr_assert_eq(res[2].error, 0);
	cr_assert_eq(res[2].sn.shard_index, 5);
	cr_assert_eq(res[2].sn.seq, 7);

	snprintf(body, sizeof(body), "{\"Records\":[{\"ErrorCode\":\"InternalFailure\"}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 1), 0);
	cr_assert_eq(res[0].error, -EIO);
}

/* Every record of `count` failed with `error`. */
static void
all_failed(const struct forward_result *res, uint32_t count, int32_t error)
{
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(res[i].error, error, "record %u: %d, want %d", i, res[i].error, error);
}

Test(forward, any_other_answer_fails_every_record)
{
	struct forward_result res[2];
	char s1[SEQNUM_DECIMAL_SIZE];
	char body[1024];
	static const struct {
		long status;
		const char *body;
		int32_t error;
	} whole[] = {
		{ 400, "{\"__type\":\"ProvisionedThroughputExceededException\"}", -EPIPE },
		{ 400, "{\"__type\":\"com.amazonaws#ProvisionedThroughputExceededException\"}", -EPIPE },
		{ 503, "{\"__type\":\"ServiceUnavailable\",\"message\":\"busy\"}", -EPIPE },
		{ 500, "{\"__type\":\"InternalFailure\"}", -EIO },
		{ 400, "{\"__type\":\"AccessDeniedException\"}", -EIO },
		{ 502, "<html>bad gateway</html>", -EIO },
	};

	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		cr_assert_eq(forward_reply_parse(whole[i].status, whole[i].body,
						 strlen(whole[i].body), res, 2), 0);
		all_failed(res, 2, whole[i].error);
	}
	/* A 200 that is not the answer asked for: -EINVAL, every record InternalFailure. */
	seq_text(3, 41, s1);
	snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"%s\",\"ShardId\":"
		 "\"shardId-000000000004\"},{\"ErrorCode\":\"InternalFailure\"}]}", s1);
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL,
		     "ShardId and SequenceNumber disagree");
	all_failed(res, 2, -EIO);
	snprintf(body, sizeof(body), "{\"Records\":[{\"ErrorCode\":\"InternalFailure\"}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL, "one of two");
	all_failed(res, 2, -EIO);
	snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"12\",\"ShardId\":"
		 "\"shardId-000000000000\"},{}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL, "bad number");
	all_failed(res, 2, -EIO);
	cr_assert_eq(forward_reply_parse(200, "{\"Records\":", 11, res, 2), -EINVAL, "cut");
	all_failed(res, 2, -EIO);
}

/* A holder's error answer to a passed-through read: its type and message, as they came. */
Test(forward, error_parse_passes_type_and_message)
{
	char type[FORWARD_ERROR_TYPE_SIZE];
	char message[FORWARD_ERROR_MESSAGE_SIZE];
	char body[4096];
	static const struct {
		const char *body;
		const char *type;
		const char *message;
	} ok[] = {
		{ "{\"__type\":\"ExpiredIteratorException\",\"message\":\"Iterator expired.\"}",
		  "ExpiredIteratorException", "Iterator expired." },
		{ "{\"__type\":\"com.amazonaws#InvalidArgumentException\",\"message\":\"x\"}",
		  "InvalidArgumentException", "x" },
		{ "{\"__type\":\"SerializationException\",\"Message\":\"bad\"}",
		  "SerializationException", "bad" },
		{ "{\"__type\":\"InternalFailure\"}", "InternalFailure", "" },
		{ "{\"__type\":\"T\",\"message\":7}", "T", "" },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(forward_error_parse(ok[i].body, strlen(ok[i].body), type, message), 0,
			     "%s", ok[i].body);
		cr_assert_str_eq(type, ok[i].type);
		cr_assert_str_eq(message, ok[i].message);
	}
	/* A message longer than the buffer is cut, never overrun. */
	memset(body, 0, sizeof(body));
	strcpy(body, "{\"__type\":\"T\",\"message\":\"");
	memset(body + strlen(body), 'm', 2 * FORWARD_ERROR_MESSAGE_SIZE);
	strcat(body, "\"}");
	cr_assert_eq(forward_error_parse(body, strlen(body), type, message), 0);
	cr_assert_eq(strlen(message), FORWARD_ERROR_MESSAGE_SIZE - 1);
	/* Not an error answer: -EINVAL. */
	cr_assert_eq(forward_error_parse("<html>bad gateway</html>", 24, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("{\"message\":\"no type\"}", 21, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("[\"__type\"]", 10, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("{\"__type\":", 10, type, message), -EINVAL);
}
