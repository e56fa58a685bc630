/*
 * bench_server_cbor: what CBOR costs at the boundary, for docs/BENCHMARKS.md. One
 * PutRecords of 500 records x 100 B as the Java SDK writes it: its body to JSON, then
 * its answer (500 sequence numbers) to CBOR; and a GetRecords answer of the same 500
 * records to CBOR. Prints the fastest of 201 runs of each (nothing is asserted).
 * Usage: bench_server_cbor
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "control/server_cbor.h"
#include "control/server_pool.h"

#define RECORDS 500u
#define DATA_SIZE 100u
#define RUNS 201u

static void
append_text(struct api_out *out, const char *text)
{
	size_t n = strlen(text);
	uint8_t head = (uint8_t)(0x60 + n);

	if (n >= 24) {
		uint8_t long_head[2] = { 0x78, (uint8_t)n };

		api_out_append(out, long_head, 2);
	} else {
		api_out_append(out, &head, 1);
	}
	api_out_append(out, text, n);
}

/* {"Records": [{"Data": h'..', "PartitionKey": "pk-N"} x 500], "StreamName": "bench"} */
static void
java_put_records(struct api_out *out)
{
	uint8_t data[DATA_SIZE];
	char key[16];

	for (uint32_t i = 0; i < DATA_SIZE; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	api_out_append(out, "\xbf", 1);
	append_text(out, "Records");
	api_out_append(out, "\x9f", 1);
	for (uint32_t i = 0; i < RECORDS; i++) {
		static const uint8_t blob_head[2] = { 0x58, DATA_SIZE };

		api_out_append(out, "\xbf", 1);
		append_text(out, "Data");
		api_out_append(out, blob_head, 2);
		api_out_append(out, data, DATA_SIZE);
		append_text(out, "PartitionKey");
		snprintf(key, sizeof(key), "pk-%u", i);
		append_text(out, key);
		api_out_append(out, "\xff", 1);
	}
	api_out_append(out, "\xff", 1);
	append_text(out, "StreamName");
	append_text(out, "bench");
	api_out_append(out, "\xff", 1);
}

static void
json_answers(struct api_out *put, struct api_out *get)
{
	uint8_t data[DATA_SIZE] = { 0 };

	api_out_printf(put, "{\"FailedRecordCount\":0,\"Records\":[");
	api_out_printf(get, "{\"Records\":[");
	for (uint32_t i = 0; i < RECORDS; i++) {
		const char *comma = i > 0 ? "," : "";

		api_out_printf(put, "%s{\"SequenceNumber\":\"4963%052u\",\"ShardId\":"
			       "\"shardId-000000000000\"}", comma, i);
		api_out_printf(get, "%s{\"SequenceNumber\":\"4963%052u\","
			       "\"ApproximateArrivalTimestamp\":1796609834.123,\"Data\":\"", comma, i);
		api_out_base64(get, data, sizeof(data));
		api_out_printf(get, "\",\"PartitionKey\":\"pk-%u\"}", i);
	}
	api_out_printf(put, "]}");
	api_out_printf(get, "],\"NextShardIterator\":\"AAAA\",\"MillisBehindLatest\":0}");
}

/*
 * The fastest of RUNS translations (direction 0: CBOR -> JSON, 1: JSON -> CBOR): on a
 * shared machine the mean measures the neighbours' load, the minimum the code.
 */
static uint64_t
time_runs(const struct api_out *in, int direction, size_t *out_size)
{
	uint64_t min_ns = UINT64_MAX;
	struct api_out out;
	const char *error;

	api_out_init(&out, 64u << 20);
	for (uint32_t r = 0; r < RUNS; r++) {
		uint64_t start = clock_mono_ns();
		uint64_t ns;
		int err;

		api_out_reset(&out);
		if (direction == 0)
			err = server_cbor_request_to_json((const uint8_t *)in->data, in->size, &out,
							  &error);
		else
			err = server_cbor_answer_from_json(in->data, in->size, &out);
		ns = clock_mono_ns() - start;
		if (err != 0) {
			fprintf(stderr, "bench_server_cbor: translation failed (%d)\n", err);
			exit(1);
		}
		min_ns = ns < min_ns ? ns : min_ns;
	}
	*out_size = out.size;
	api_out_release(&out);
	return min_ns;
}

static void
report(const char *what, const struct api_out *in, int direction)
{
	size_t size;
	uint64_t ns = time_runs(in, direction, &size);

	printf("%-40s %10zu %10zu %9.1f\n", what, in->size, size, (double)ns / 1e3);
}

int
main(void)
{
	struct api_out body;
	struct api_out put_answer;
	struct api_out get_answer;

	api_out_init(&body, 64u << 20);
	api_out_init(&put_answer, 64u << 20);
	api_out_init(&get_answer, 64u << 20);
	java_put_records(&body);
	json_answers(&put_answer, &get_answer);
	printf("%-40s %10s %10s %9s\n", "translation (500 records x 100 B)", "in B", "out B",
	       "min us");
	report("PutRecords request CBOR -> JSON", &body, 0);
	report("PutRecords answer JSON -> CBOR", &put_answer, 1);
	report("GetRecords answer JSON -> CBOR", &get_answer, 1);
	api_out_release(&body);
	api_out_release(&put_answer);
	api_out_release(&get_answer);
	return 0;
}
