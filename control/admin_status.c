/*
 * admin_status.c - GET /status.json, what the status page polls: streams and
 * shards as SQLite holds them (the admin thread's own connection, like the
 * route thread's), each stream's counters (metrics.h), the log's statistics
 * and the dataplane's counters summed over workers. Totals only: the page
 * turns them into rates by differencing its polls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/base.h"
#include "common/clock.h"
#include "control/admin_internal.h"
#include "control/metadata.h"
#include "control/route.h"
#include "dataplane/dataplane.h"
#include "nvme-log/log.h"

int
admin_context_open(struct admin_context *ctx, const struct sluice_config *config)
{
	(void)config;
	return metadata_open(ctx->src.data_dir, &ctx->md);
}

void
admin_context_close(struct admin_context *ctx)
{
	if (ctx->md != NULL)
		metadata_close(ctx->md);
	ctx->md = NULL;
}

/* metadata_load calls for every stream first, then for every shard. */
struct admin_status_walk {
	struct metrics_out *out;
	uint32_t count;          /* Items written to the current array. */
	bool in_shards;          /* The streams' array is closed, the shards' open. */
};

static void
admin_status_shards_begin(struct admin_status_walk *w)
{
	metrics_printf(w->out, "],\"shards\":[");
	w->count = 0;
	w->in_shards = true;
}

/* A hash key as a fraction of the key space (the page draws ranges as bars). */
static double
admin_hash_fraction(hashkey_t key)
{
	return (double)(uint64_t)(key >> 64) / 18446744073709551616.0;
}

static int
admin_status_stream(void *arg, const struct metadata_stream *s)
{
	struct admin_status_walk *w = arg;
	struct metrics_stream_view v;
	bool seen = metrics_stream_view(s->stream_id, &v);

	if (!seen)
		memset(&v, 0, sizeof(v));
	/* Stream names are [a-zA-Z0-9_.-]: nothing to escape. */
	metrics_printf(w->out, "%s{\"id\":%u,\"name\":\"%s\",\"mode\":\"%s\","
		       "\"retention_hours\":%u,\"deleting\":%s,\"created_ms\":%llu,"
		       "\"incoming_bytes\":%llu,\"incoming_records\":%llu,\"put_requests\":%llu,"
		       "\"put_latency_ns_sum\":%llu,\"get_records\":%llu,\"get_bytes\":%llu,"
		       "\"write_exceeded\":%llu,\"read_exceeded\":%llu,\"iterator_age_ms\":%llu}",
		       w->count > 0 ? "," : "", s->stream_id, s->name,
		       s->mode == METADATA_ON_DEMAND ? "ON_DEMAND" : "PROVISIONED",
		       s->retention_hours, s->deleting ? "true" : "false",
		       (unsigned long long)s->created_ms,
		       (unsigned long long)v.incoming_bytes, (unsigned long long)v.incoming_records,
		       (unsigned long long)v.put_requests,
		       (unsigned long long)v.put_latency_ns_sum, (unsigned long long)v.get_records,
		       (unsigned long long)v.get_bytes, (unsigned long long)v.write_exceeded,
		       (unsigned long long)v.read_exceeded, (unsigned long long)v.iterator_age_ms);
	w->count++;
	return 0;
}

static int
admin_status_shard(void *arg, uint32_t stream_id, const struct metadata_shard *sh)
{
	struct admin_status_walk *w = arg;

	if (!w->in_shards)
		admin_status_shards_begin(w);
	metrics_printf(w->out, "%s{\"stream_id\":%u,\"index\":%u,\"open\":%s,\"start\":%.9f,"
		       "\"end\":%.9f,\"parent\":%lld}", w->count > 0 ? "," : "", stream_id,
		       sh->shard_index, sh->closed ? "false" : "true",
		       admin_hash_fraction(sh->start), admin_hash_fraction(sh->end),
		       (long long)sh->parent);
	w->count++;
	return 0;
}

static void
admin_status_log(struct admin_context *ctx, struct metrics_out *out)
{
	struct log_stats st;
	struct statvfs vfs;
	double free_bytes = 0;
	double size_bytes = 0;

	log_stats_read(ctx->src.log, &st);
	if (statvfs(ctx->src.data_dir, &vfs) == 0) {
		free_bytes = (double)vfs.f_bavail * (double)vfs.f_frsize;
		size_bytes = (double)vfs.f_blocks * (double)vfs.f_frsize;
	}
	metrics_printf(out, ",\"log\":{\"durable_bytes\":%llu,\"records\":%llu,\"commits\":%llu,"
		       "\"sync_ns_sum\":%llu,\"segments\":%u,\"segments_spare\":%u,"
		       "\"shards_active\":%u,\"failed\":%s,\"recovery_s\":%.3f,"
		       "\"disk_free_bytes\":%.0f,\"disk_size_bytes\":%.0f,\"corruptions\":%llu,"
		       "\"enospc_errors\":%llu}",
		       (unsigned long long)st.bytes_written, (unsigned long long)st.records_appended,
		       (unsigned long long)st.commits, (unsigned long long)st.sync_ns.sum,
		       st.segments, st.segments_spare, st.shards_active,
		       st.failed ? "true" : "false", (double)st.recovery_ns / 1e9, free_bytes,
		       size_bytes, (unsigned long long)st.corruptions,
		       (unsigned long long)st.enospc_errors);
}

/* Counters whose name starts with "drop_" (or is tx_dropped) are drops. */
static bool
admin_counter_is_drop(enum dp_counter c)
{
	const char *name = dp_counter_name(c);

	return strncmp(name, "drop_", 5) == 0 || strcmp(name, "tx_dropped") == 0;
}

static void
admin_status_dataplane(struct admin_context *ctx, struct metrics_out *out)
{
	struct dp_stats one;
	uint64_t sum[DP_COUNTER_COUNT] = { 0 };
	uint64_t drops = 0;
	uint32_t workers = 0;

	while (ctx->src.dataplane_enabled && workers < DP_WORKERS_MAX &&
	       route_dp_worker_stats(workers, &one) == 0) {
		for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++)
			sum[c] += one.counters[c];
		workers++;
	}
	metrics_printf(out, ",\"dataplane\":{\"enabled\":%s,\"workers\":%u",
		       ctx->src.dataplane_enabled ? "true" : "false", workers);
	for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++) {
		if (admin_counter_is_drop((enum dp_counter)c))
			drops += sum[c];
		metrics_printf(out, ",\"%s\":%llu", dp_counter_name((enum dp_counter)c),
			       (unsigned long long)sum[c]);
	}
	metrics_printf(out, ",\"drops\":%llu}", (unsigned long long)drops);
}

void
admin_status_json(struct admin_context *ctx, struct metrics_out *out)
{
	struct admin_status_walk w = { .out = out };
	const char *missing = NULL;
	bool ready = metrics_ready_all(ctx->src.dataplane_enabled, &missing);
	int rc;

	metrics_printf(out, "{\"now_ms\":%llu,\"ready\":%s,\"not_ready\":\"%s\",\"streams\":[",
		       (unsigned long long)(clock_real_ns() / 1000000u), ready ? "true" : "false",
		       ready ? "" : missing);
	rc = metadata_load(ctx->md, admin_status_stream, admin_status_shard, &w);
	if (!w.in_shards)
		admin_status_shards_begin(&w);
	metrics_printf(out, "],\"metadata_error\":%d", rc);
	admin_status_log(ctx, out);
	admin_status_dataplane(ctx, out);
	metrics_printf(out, "}");
}
