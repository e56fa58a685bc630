/*
 * A full disk: the log completes batches with -ENOSPC, and the API answers
 * ProvisionedThroughputExceededException (PutRecord) or per-record failures
 * (PutRecords) so SDKs retry; once space is back, puts succeed and nothing
 * from the refused calls is readable. The log runs on the simulated disk.
 */
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "nvme-log/log_io_sim.h"
#include "tests/control/kinesis/harness.h"
#include "tests/support/seed.h"

static struct harness h;
static struct log_io *io;

static void
setup(void)
{
	cr_assert_eq(log_io_sim_create(seed_base(), &io), 0);
	harness_open_io(&h, 0, io);
	cJSON_Delete(harness_ok(&h, "CreateStream", "{\"StreamName\":\"full\",\"ShardCount\":2}"));
}

static void
teardown(void)
{
	harness_close(&h);
	log_io_sim_destroy(io);
}

TestSuite(kinesis_enospc, .init = setup, .fini = teardown, .timeout = 60);

static int
record_count(const char *shard)
{
	char body[512];
	cJSON *it;
	cJSON *g;
	int n;

	snprintf(body, sizeof(body), "{\"StreamName\":\"full\",\"ShardId\":\"%s\","
		 "\"ShardIteratorType\":\"TRIM_HORIZON\"}", shard);
	it = harness_ok(&h, "GetShardIterator", body);
	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}",
		 cJSON_GetObjectItemCaseSensitive(it, "ShardIterator")->valuestring);
	g = harness_ok(&h, "GetRecords", body);
	n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "Records"));
	cJSON_Delete(it);
	cJSON_Delete(g);
	return n;
}

Test(kinesis_enospc, full_disk_throttles_then_recovers)
{
	static const char put_records[] = "{\"StreamName\":\"full\",\"Records\":["
		"{\"PartitionKey\":\"a\",\"Data\":\"YQ==\"},{\"PartitionKey\":\"pk1\",\"Data\":\"Yg==\"}]}";
	int stored[2] = { 0, 0 };
	cJSON *r;

	log_io_sim_set_full(io, true);
	harness_expect_error(&h, "PutRecord", "{\"StreamName\":\"full\",\"PartitionKey\":\"a\","
			     "\"Data\":\"YQ==\"}", "ProvisionedThroughputExceededException",
			     "Rate exceeded for shard shardId-000000000000 in stream full under "
			     "account 000000000000.");
	r = harness_ok(&h, "PutRecords", put_records);
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r, "FailedRecordCount")->valueint, 2);
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(r, "Records"), 1), "ErrorCode")->valuestring,
		"ProvisionedThroughputExceededException");
	cJSON_Delete(r);
	cr_assert_eq(record_count("shardId-000000000000") + record_count("shardId-000000000001"),
		     0);
	log_io_sim_set_full(io, false);
	/* The writer retries space after a pause; callers retry too, as SDKs do. */
	for (int attempt = 0;; attempt++) {
		const cJSON *rec;
		int failed;

		r = harness_ok(&h, "PutRecords", put_records);
		failed = cJSON_GetObjectItemCaseSensitive(r, "FailedRecordCount")->valueint;
		cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(r, "Records")) {
			const cJSON *shard = cJSON_GetObjectItemCaseSensitive(rec, "ShardId");

			if (shard != NULL)
				stored[strcmp(shard->valuestring, "shardId-000000000000") == 0 ? 0 : 1]++;
		}
		cJSON_Delete(r);
		if (failed == 0)
			break;
		cr_assert_lt(attempt, 100, "space came back but puts kept failing");
		usleep(2000);
	}
	/* Exactly the acknowledged records are readable: a refused batch left nothing. */
	cr_assert_eq(record_count("shardId-000000000000"), stored[0]);
	cr_assert_eq(record_count("shardId-000000000001"), stored[1]);
}
