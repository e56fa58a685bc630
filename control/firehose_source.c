/*
 * firehose_source.c - what the delivery engine (firehose/) learns of a Kinesis
 * stream it reads (KinesisStreamAsSource): control/ owns the shard lineage, the
 * engine only the log. kinesis_firehose_source() is its options.source.
 *
 *   VIEW FIELD        FROM
 *   stream_id         the stream's log stream id (never reused)
 *   retention_hours   the stream's retention (the log trims past it)
 *   shards[]          every shard ListShards FROM_TRIM_HORIZON would list: open
 *                     ones and closed ones within retention, with their parents'
 *                     log shard ids and whether the log's close is recorded
 */
#include <errno.h>
#include <string.h>

#include "common/clock.h"
#include "control/kinesis.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"

static uint64_t
fh_source_parent(const struct kinesis_stream *s, int64_t index)
{
	return index < 0 || (uint64_t)index >= s->shard_count ? UINT64_MAX :
	       s->shards[index].log_id;
}

int
kinesis_firehose_source(void *ctx, const char *stream_arn, struct firehose_source_view *view)
{
	static const struct kinesis_shard_filter all = { .type = KINESIS_FILTER_FROM_TRIM_HORIZON };
	struct kinesis *k = ctx;
	size_t size = 0;
	const char *name = kinesis_arn_name(k, stream_arn, &size);
	const struct kinesis_stream *s = name != NULL ? kinesis_stream_find(k, name, size) : NULL;
	uint64_t now_s = clock_real_ns() / 1000000000u;

	/* CREATING has no shards to show yet; DELETING is going: neither can be read. */
	if (s == NULL || s->status == KINESIS_CREATING || s->status == KINESIS_DELETING)
		return -ENOENT;
	view->stream_id = s->stream_id;
	view->retention_hours = s->retention_hours;
	view->shard_count = 0;
	for (uint32_t i = 0; i < s->shard_count; i++) {
		const struct kinesis_shard *sh = &s->shards[i];

		if (!kinesis_shard_listed(k, s, i, &all, now_s))
			continue;
		if (view->shard_count == FIREHOSE_SOURCE_SHARDS_MAX)
			return -E2BIG;
		view->shards[view->shard_count++] = (struct firehose_source_shard){
			.shard_id = sh->log_id,
			.parent_ids = { fh_source_parent(s, sh->parent),
					fh_source_parent(s, sh->adjacent_parent) },
			.closed = sh->closed && !sh->close_pending,
		};
	}
	return 0;
}
