/*
 * metrics.c's shard-level series and fan-out counters, rendered: only the
 * metrics a stream enabled, labelled stream and shard; METRICS_SHARD_SERIES_MAX
 * series at most, a shard past it refused and counted once, given a series again
 * once one is free; disabling or forgetting a stream drops its series; the open
 * subscriptions gauge. Each Test runs in its own process: fresh tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "control/api.h"
#include "control/metrics.h"

#define OUT_CAPACITY (4u << 20)

static const char *
render(void)
{
	static char *buf;
	struct metrics_out out;

	if (buf == NULL)
		buf = malloc(OUT_CAPACITY);
	cr_assert_not_null(buf);
	out = (struct metrics_out){ .data = buf, .capacity = OUT_CAPACITY };
	metrics_render_tables(false, &out);
	cr_assert(!out.overflow);
	buf[out.size] = '\0';
	return buf;
}

static void
record(const struct metrics_stream_ref *ref, uint32_t *series, uint32_t shard,
       uint32_t enabled, uint64_t records)
{
	struct metrics_shard_add add = {
		.shard_index = shard, .enabled = enabled, .incoming_records = records,
		.incoming_bytes = records * 10, .outgoing_records = records,
	};

	metrics_shard_record(ref, series, &add);
}

static void
assert_line(const char *text, const char *line, bool present)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert(present == (strstr(text, want) != NULL), "%s %s", line,
		  present ? "missing" : "present");
}

static const struct metrics_stream_ref stream_a = { .slot = 3, .stream_id = 7, .name = "a" };
static const struct metrics_stream_ref stream_b = { .slot = 4, .stream_id = 8, .name = "b" };

Test(metrics_shards, only_the_enabled_metrics_per_shard)
{
	uint32_t series[2] = { 0 };
	const char *text;

	record(&stream_a, &series[0], 0, KINESIS_METRIC_INCOMING_RECORDS, 2);
	record(&stream_a, &series[1], 1, KINESIS_METRIC_INCOMING_RECORDS, 3);
	record(&stream_a, &series[1], 1, KINESIS_METRIC_INCOMING_RECORDS, 4);
	text = render();
	assert_line(text, "sluice_shard_incoming_records_total{stream=\"a\","
		    "shard=\"shardId-000000000000\"} 2", true);
	assert_line(text, "sluice_shard_incoming_records_total{stream=\"a\","
		    "shard=\"shardId-000000000001\"} 7", true);
	cr_assert_null(strstr(text, "sluice_shard_incoming_bytes_total{"));
	cr_assert_null(strstr(text, "sluice_shard_outgoing_records_total{"));

	/* More enabled: the series shows them (counted since its claim). */
	metrics_shards_enabled(stream_a.stream_id, KINESIS_METRICS_ALL);
	assert_line(render(), "sluice_shard_incoming_bytes_total{stream=\"a\","
		    "shard=\"shardId-000000000001\"} 70", true);
	/* None: the stream's series go, and come back from zero. */
	metrics_shards_enabled(stream_a.stream_id, 0);
	cr_assert_null(strstr(render(), "stream=\"a\",shard="));
	record(&stream_a, &series[1], 1, KINESIS_METRIC_INCOMING_RECORDS, 1);
	assert_line(render(), "sluice_shard_incoming_records_total{stream=\"a\","
		    "shard=\"shardId-000000000001\"} 1", true);
}

Test(metrics_shards, bounded_and_refusals_counted_once)
{
	static uint32_t series[METRICS_SHARD_SERIES_MAX];
	uint32_t late = 0;
	const char *text;

	for (uint32_t i = 0; i < METRICS_SHARD_SERIES_MAX; i++)
		record(&stream_b, &series[i], i, KINESIS_METRIC_INCOMING_RECORDS, 1);
	record(&stream_a, &late, 0, KINESIS_METRIC_INCOMING_RECORDS, 5);
	record(&stream_a, &late, 0, KINESIS_METRIC_INCOMING_RECORDS, 5);
	text = render();
	assert_line(text, "sluice_shard_series_refused_total 1", true);
	cr_assert_null(strstr(text, "stream=\"a\",shard="));
	assert_line(text, "sluice_shard_incoming_records_total{stream=\"b\","
		    "shard=\"shardId-000000001023\"} 1", true);

	/* Stream b deleted: its series are free, the refused shard gets one. */
	metrics_stream_forget(stream_b.stream_id);
	record(&stream_a, &late, 0, KINESIS_METRIC_INCOMING_RECORDS, 5);
	text = render();
	assert_line(text, "sluice_shard_incoming_records_total{stream=\"a\","
		    "shard=\"shardId-000000000000\"} 5", true);
	cr_assert_null(strstr(text, "stream=\"b\",shard="));
	assert_line(text, "sluice_shard_series_refused_total 1", true);
}

Test(metrics_shards, nothing_recorded_with_metrics_off)
{
	uint32_t series = 0;

	metrics_enable(false);
	record(&stream_a, &series, 0, KINESIS_METRIC_INCOMING_RECORDS, 2);
	cr_assert_eq(series, 0);
	cr_assert_null(strstr(render(), "stream=\"a\",shard="));
}

Test(metrics_fanout, counters_and_open_gauge)
{
	const char *text;

	metrics_fanout_add(METRICS_FANOUT_SUBSCRIPTIONS_STARTED, 3);
	metrics_fanout_add(METRICS_FANOUT_SUBSCRIPTIONS_FINISHED, 1);
	metrics_fanout_add(METRICS_FANOUT_RECORDS, 42);
	metrics_fanout_add(METRICS_FANOUT_STREAMS_GONE, 1);
	metrics_fanout_add(METRICS_FANOUT_WRITES_REFUSED, 9);
	metrics_fanout_add(METRICS_FANOUT_WRITES_NO_BUFFER, 2);
	text = render();
	assert_line(text, "sluice_fanout_subscriptions_total 3", true);
	assert_line(text, "sluice_fanout_subscriptions_open 2", true);
	assert_line(text, "sluice_fanout_records_total 42", true);
	assert_line(text, "sluice_api_streams_total{result=\"gone\"} 1", true);
	assert_line(text, "sluice_api_stream_writes_refused_total{reason=\"slow_reader\"} 9", true);
	assert_line(text, "sluice_api_stream_writes_refused_total{reason=\"no_buffer\"} 2", true);
}
