/*
 * kinesis_autoscale.c - on-demand auto-scaling (beyond AWS's fixed rules):
 * the API thread looks at every ACTIVE ON_DEMAND stream once per
 * server.autoscale_window_s and makes at most one decision per stream:
 *
 *   RULE   WHEN (rates over the last window, from the log's durable seq,
 *          so API and dataplane records both count)               ACTION
 *   split  the hottest open shard wrote > autoscale_split_records_s   SplitShard at
 *          records/s, its range has room, open < shards_per_stream_max its hash midpoint
 *   merge  no split; the coldest adjacent open pair together wrote    MergeShards of
 *          < autoscale_split_records_s / 4 records/s, open > 4        the pair
 *
 * Hysteresis: the merge threshold is a quarter of the split threshold (a
 * split pair needs its load to fall by 4x to merge back), and a stream is
 * left alone for server.autoscale_cooldown_s after any reshard of it. Each
 * decision goes through kinesis_reshard_commit() (same cut as the API), is
 * logged (diag_info), counted, and shown in DescribeStream's
 * "SluiceAutoScaling" member (counters since start).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "nvme-log/log.h"

#define KINESIS_AUTOSCALE_MERGE_DIVISOR 4u

/* Records each open shard made durable since the last look; remembers the new mark. */
static uint64_t
kinesis_autoscale_delta(struct kinesis *k, struct kinesis_shard *sh)
{
	struct log_shard_info info;
	uint64_t delta;

	if (log_shard_info(k->log, sh->log_id, &info) != 0)
		return 0;
	delta = info.seq_durable >= sh->scale_seq ? info.seq_durable - sh->scale_seq : 0;
	sh->scale_seq = info.seq_durable;
	return delta;
}

/* The decision, once committed: DescribeStream's note, the journal, the page's history. */
static void
kinesis_autoscale_note(struct kinesis_stream *s, uint32_t before, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
kinesis_autoscale_note(struct kinesis_stream *s, uint32_t before, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->scale_last, sizeof(s->scale_last), fmt, ap);
	va_end(ap);
	diag_info("autoscale", "stream %s: %s", s->name, s->scale_last);
	kinesis_reshard_history(s, before, true, s->scale_last);
}

static int
kinesis_autoscale_split(struct kinesis *k, struct kinesis_stream *s, uint32_t index,
			uint64_t rate, uint64_t now_s)
{
	struct kinesis_shard *sh = &s->shards[index];
	hashkey_t mid = sh->start + (sh->end - sh->start) / 2 + 1;
	struct kinesis_reshard plan;
	char id[KINESIS_SHARD_ID_SIZE];
	int rc;

	if (kinesis_split_check(sh, mid) != 0 || k->shards_total + 2 > k->shard_limit)
		return -ENOSPC;
	rc = kinesis_reshard_init(&plan, s, 2, now_s);
	if (rc == 0)
		rc = kinesis_reshard_split(&plan, index, mid);
	if (rc == 0)
		rc = kinesis_reshard_commit(k, s, &plan);
	kinesis_reshard_free(&plan);
	if (rc != 0)
		return rc;
	s->scale_splits++;
	kinesis_shard_id_format(index, id);
	kinesis_autoscale_note(s, s->shard_count - 2, "split %s at %llu records/s", id,
			       (unsigned long long)rate);
	return 0;
}

static int
kinesis_autoscale_merge(struct kinesis *k, struct kinesis_stream *s, uint32_t a, uint32_t b,
			uint64_t rate, uint64_t now_s)
{
	struct kinesis_reshard plan;
	char ida[KINESIS_SHARD_ID_SIZE];
	char idb[KINESIS_SHARD_ID_SIZE];
	int rc;

	if (k->shards_total + 1 > k->shard_limit)
		return -ENOSPC;
	rc = kinesis_reshard_init(&plan, s, 1, now_s);
	if (rc == 0)
		rc = kinesis_reshard_merge(&plan, a, b);
	if (rc == 0)
		rc = kinesis_reshard_commit(k, s, &plan);
	kinesis_reshard_free(&plan);
	if (rc != 0)
		return rc;
	s->scale_merges++;
	kinesis_shard_id_format(a, ida);
	kinesis_shard_id_format(b, idb);
	kinesis_autoscale_note(s, s->shard_count - 1, "merged %s and %s at %llu records/s together",
			       ida, idb, (unsigned long long)rate);
	return 0;
}

/* One look at one stream: rates per open shard, then at most one reshard. */
static void
kinesis_autoscale_stream(struct kinesis *k, struct kinesis_stream *s, uint64_t window_s,
			 uint64_t mono_ns, uint64_t now_s, bool decide)
{
	uint64_t split_rate = k->config.autoscale_split_records_s;
	uint64_t hot_rate = 0;
	uint64_t cold_rate = UINT64_MAX;
	int64_t hot = -1;
	int64_t cold = -1;
	uint32_t cold_next = 0;
	uint32_t open = s->open_count;

	for (uint32_t i = 0; i < s->shard_count; i++)
		s->shards[i].scale_rate = s->shards[i].closed ? 0 :
					  kinesis_autoscale_delta(k, &s->shards[i]) / window_s;
	if (!decide || s->status != KINESIS_ACTIVE || mono_ns < s->scale_quiet_ns ||
	    s->open_index == NULL)
		return;
	/* Open shards in hash order: neighbours in the index are adjacent ranges. */
	for (uint32_t p = 0; p < s->open_count; p++) {
		uint32_t i = s->open_index[p];
		uint64_t rate = s->shards[i].scale_rate;

		if (rate > hot_rate) {
			hot_rate = rate;
			hot = i;
		}
		if (p + 1 < s->open_count &&
		    rate + s->shards[s->open_index[p + 1]].scale_rate < cold_rate) {
			cold_rate = rate + s->shards[s->open_index[p + 1]].scale_rate;
			cold = i;
			cold_next = s->open_index[p + 1];
		}
	}
	if (hot >= 0 && hot_rate > split_rate && open < k->config.shards_per_stream_max &&
	    kinesis_autoscale_split(k, s, (uint32_t)hot, hot_rate, now_s) == 0)
		goto out_decided;
	if (cold >= 0 && open > KINESIS_ON_DEMAND_SHARDS &&
	    cold_rate < split_rate / KINESIS_AUTOSCALE_MERGE_DIVISOR &&
	    kinesis_autoscale_merge(k, s, (uint32_t)cold, cold_next, cold_rate, now_s) == 0)
		goto out_decided;
	return;

out_decided:
	s->scale_quiet_ns = mono_ns + (uint64_t)k->config.autoscale_cooldown_s * 1000000000u;
	kinesis_reshard_status(k, s);
}

void
kinesis_autoscale_tick(struct kinesis *k, uint64_t mono_ns, uint64_t now_ns)
{
	uint64_t window_s = k->config.autoscale_window_s;

	if (window_s == 0 || mono_ns < k->autoscale_due_ns)
		return;
	/* The first look only sets the marks: rates need a whole window. */
	for (uint32_t i = 0; i < k->streams_high; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used && s->mode == METADATA_ON_DEMAND)
			kinesis_autoscale_stream(k, s, window_s, mono_ns, now_ns / 1000000000u,
						 k->autoscale_due_ns != 0);
	}
	k->autoscale_due_ns = mono_ns + window_s * 1000000000u;
}
