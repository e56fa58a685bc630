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
#include "firehose/firehose.h"
#include "nvme-log/log.h"

/*
 * Rate history: every ADMIN_HISTORY_STEP_NS the admin thread samples each
 * stream's totals into a ring covering 15 minutes, so a page opened now draws
 * the last 15 minutes at once. Bounded: the first ADMIN_HISTORY_STREAMS_MAX
 * streams with traffic get a history; the others show their live figures only.
 */
#define ADMIN_HISTORY_STEP_NS (5ull * 1000000000ull)
#define ADMIN_HISTORY_SAMPLES 180u
#define ADMIN_HISTORY_STREAMS_MAX 64u

struct admin_history_stream {
	uint64_t stream_id_plus1;     /* 0: free. */
	uint64_t records[ADMIN_HISTORY_SAMPLES];
	uint64_t bytes[ADMIN_HISTORY_SAMPLES];
	uint64_t puts[ADMIN_HISTORY_SAMPLES];
	uint64_t latency_ns[ADMIN_HISTORY_SAMPLES];
	bool seen;                    /* In the latest sample. */
};

/* Admin thread only. */
static struct {
	uint64_t due_ns;
	uint32_t count;               /* Samples held, up to ADMIN_HISTORY_SAMPLES. */
	uint32_t next;                /* Ring position of the next sample. */
	uint64_t t_ms[ADMIN_HISTORY_SAMPLES];
	struct admin_history_stream streams[ADMIN_HISTORY_STREAMS_MAX];
	struct metrics_stream_view views[ADMIN_HISTORY_STREAMS_MAX];
} admin_history;

/* The history of `stream_id`, claiming a free one (*fresh_out) when it has none. */
static struct admin_history_stream *
admin_history_find(uint32_t stream_id, bool *fresh_out)
{
	struct admin_history_stream *free_slot = NULL;

	for (uint32_t i = 0; i < ADMIN_HISTORY_STREAMS_MAX; i++) {
		struct admin_history_stream *h = &admin_history.streams[i];

		if (h->stream_id_plus1 == stream_id + 1ull)
			return h;
		if (h->stream_id_plus1 == 0 && free_slot == NULL)
			free_slot = h;
	}
	if (free_slot != NULL) {
		memset(free_slot, 0, sizeof(*free_slot));
		free_slot->stream_id_plus1 = stream_id + 1ull;
		*fresh_out = true;
	}
	return free_slot;
}

/* A stream new to the history reads as flat before it appeared (rate 0). */
static void
admin_history_backfill(struct admin_history_stream *h, const struct metrics_stream_view *v)
{
	for (uint32_t i = 0; i < ADMIN_HISTORY_SAMPLES; i++) {
		h->records[i] = v->incoming_records;
		h->bytes[i] = v->incoming_bytes;
		h->puts[i] = v->put_requests;
		h->latency_ns[i] = v->put_latency_ns_sum;
	}
}

void
admin_history_tick(uint64_t now_ns)
{
	uint32_t slot = admin_history.next;
	uint32_t count;

	if (now_ns < admin_history.due_ns)
		return;
	admin_history.due_ns = now_ns + ADMIN_HISTORY_STEP_NS;
	count = metrics_stream_views(admin_history.views, ADMIN_HISTORY_STREAMS_MAX);
	for (uint32_t i = 0; i < ADMIN_HISTORY_STREAMS_MAX; i++)
		admin_history.streams[i].seen = false;
	for (uint32_t i = 0; i < count; i++) {
		const struct metrics_stream_view *v = &admin_history.views[i];
		bool fresh = false;
		struct admin_history_stream *h = admin_history_find(v->stream_id, &fresh);

		if (h == NULL)
			continue;
		if (fresh)
			admin_history_backfill(h, v);
		h->seen = true;
		h->records[slot] = v->incoming_records;
		h->bytes[slot] = v->incoming_bytes;
		h->puts[slot] = v->put_requests;
		h->latency_ns[slot] = v->put_latency_ns_sum;
	}
	/* A stream gone from the metrics (deleted) frees its history. */
	for (uint32_t i = 0; i < ADMIN_HISTORY_STREAMS_MAX; i++)
		if (!admin_history.streams[i].seen)
			admin_history.streams[i].stream_id_plus1 = 0;
	admin_history.t_ms[slot] = clock_real_ns() / 1000000u;
	admin_history.next = (slot + 1) % ADMIN_HISTORY_SAMPLES;
	if (admin_history.count < ADMIN_HISTORY_SAMPLES)
		admin_history.count++;
}

/* One series of a history as a JSON array, oldest first. */
static void
admin_history_series(struct metrics_out *out, const char *name, const uint64_t *ring)
{
	uint32_t first = (admin_history.next + ADMIN_HISTORY_SAMPLES - admin_history.count) %
			 ADMIN_HISTORY_SAMPLES;

	metrics_printf(out, "\"%s\":[", name);
	for (uint32_t i = 0; i < admin_history.count; i++)
		metrics_printf(out, "%s%llu", i > 0 ? "," : "",
			       (unsigned long long)ring[(first + i) % ADMIN_HISTORY_SAMPLES]);
	metrics_printf(out, "]");
}

static void
admin_status_history(struct metrics_out *out)
{
	uint32_t written = 0;

	metrics_printf(out, ",\"history\":{\"step_s\":%llu,",
		       (unsigned long long)(ADMIN_HISTORY_STEP_NS / 1000000000ull));
	admin_history_series(out, "t_ms", admin_history.t_ms);
	metrics_printf(out, ",\"streams\":[");
	for (uint32_t i = 0; i < ADMIN_HISTORY_STREAMS_MAX; i++) {
		const struct admin_history_stream *h = &admin_history.streams[i];

		if (h->stream_id_plus1 == 0)
			continue;
		metrics_printf(out, "%s{\"id\":%llu,", written++ > 0 ? "," : "",
			       (unsigned long long)(h->stream_id_plus1 - 1));
		admin_history_series(out, "records", h->records);
		metrics_printf(out, ",");
		admin_history_series(out, "bytes", h->bytes);
		metrics_printf(out, ",");
		admin_history_series(out, "puts", h->puts);
		metrics_printf(out, ",");
		admin_history_series(out, "latency_ns", h->latency_ns);
		metrics_printf(out, "}");
	}
	metrics_printf(out, "]}");
}

/*
 * The recent reshards, oldest first: API calls and auto-scaling decisions as the
 * Kinesis actions committed them (metrics_reshard_note). Names and notes hold
 * nothing to escape: stream names are [a-zA-Z0-9_.-], notes are our own formats.
 */
static void
admin_status_reshards(struct metrics_out *out)
{
	static struct metrics_reshard events[METRICS_RESHARDS_MAX]; /* Admin thread only. */
	uint32_t n = metrics_reshard_history(events, METRICS_RESHARDS_MAX);

	metrics_printf(out, ",\"reshards\":[");
	for (uint32_t i = 0; i < n; i++) {
		const struct metrics_reshard *e = &events[i];

		metrics_printf(out, "%s{\"t_ms\":%llu,\"stream_id\":%u,\"stream\":\"%s\","
			       "\"autoscale\":%s,\"what\":\"%s\",\"shards_before\":%u,"
			       "\"shards_after\":%u,\"open_after\":%u}", i > 0 ? "," : "",
			       (unsigned long long)e->time_ms, e->stream_id, e->stream,
			       e->autoscale ? "true" : "false", e->what, e->shards_before,
			       e->shards_after, e->open_after);
	}
	metrics_printf(out, "]");
}

int
admin_context_open(struct admin_context *ctx, const struct sluice_config *config)
{
	(void)config;
	/* A reader on the actions' store: no second writer, no second disk reserve. */
	return metadata_open_reader(ctx->src.md, &ctx->md);
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
	struct log *log;
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

/*
 * A shard with its hash range and the log's view of it: records durable so far
 * (seq_durable; the page differences it into a per-shard rate, the heat map)
 * and the first one still retained (seq_trim: the retention horizon).
 */
static int
admin_status_shard(void *arg, uint32_t stream_id, const struct metadata_shard *sh)
{
	struct admin_status_walk *w = arg;
	struct log_shard_info info = { 0 };

	if (!w->in_shards)
		admin_status_shards_begin(w);
	/* The log's control lock, per shard: never held on the write path. */
	if (log_shard_info(w->log, LOG_SHARD_ID(stream_id, sh->shard_index), &info) != 0)
		memset(&info, 0, sizeof(info));
	metrics_printf(w->out, "%s{\"stream_id\":%u,\"index\":%u,\"open\":%s,\"start\":%.9f,"
		       "\"end\":%.9f,\"parent\":%lld,\"seq_durable\":%llu,\"seq_trim\":%llu}",
		       w->count > 0 ? "," : "", stream_id, sh->shard_index,
		       sh->closed ? "false" : "true", admin_hash_fraction(sh->start),
		       admin_hash_fraction(sh->end), (long long)sh->parent,
		       (unsigned long long)info.seq_durable, (unsigned long long)info.seq_trim);
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

/*
 * Counters whose name starts with "drop_" (ours) or "dev_" (the device's, read from it),
 * or is tx_dropped, are drops.
 */
static bool
admin_counter_is_drop(enum dp_counter c)
{
	const char *name = dp_counter_name(c);

	return strncmp(name, "drop_", 5) == 0 || strncmp(name, "dev_", 4) == 0 ||
	       strcmp(name, "tx_dropped") == 0;
}

static void
admin_status_dataplane(struct admin_context *ctx, struct metrics_out *out)
{
	struct dp_stats one;
	uint64_t sum[DP_COUNTER_COUNT] = { 0 };
	uint64_t drops = 0;
	uint32_t workers = 0;

	while (ctx->src.dataplane_enabled && workers < DP_WORKERS_MAX &&
	       route_dp_worker_stats(ctx->src.route, workers, &one) == 0) {
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

/*
 * Records the dataplane made durable per stream, summed over workers:
 * "dataplane_streams":[{"stream_id":N,"records":N}], stream_id -1 for the
 * streams beyond what a worker tracks (DP_STREAM_COUNTS_MAX).
 */
static void
admin_status_dataplane_streams(struct admin_context *ctx, struct metrics_out *out)
{
	static struct dp_stream_count one[DP_STREAM_COUNTS_MAX + 1];   /* Admin thread only. */
	static struct dp_stream_count sum[DP_STREAM_COUNTS_MAX * 2 + 1];
	uint32_t sum_count = 0;

	for (uint32_t w = 0; ctx->src.dataplane_enabled && w < DP_WORKERS_MAX; w++) {
		int n = route_dp_worker_stream_counts(ctx->src.route, w, one, ARRAY_SIZE(one));

		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			uint32_t j = 0;

			while (j < sum_count && sum[j].stream_id != one[i].stream_id)
				j++;
			if (j == sum_count) {
				if (sum_count == ARRAY_SIZE(sum))
					continue; /* Workers tracking different streams: shown partly. */
				sum[sum_count++] = (struct dp_stream_count){ one[i].stream_id, 0 };
			}
			sum[j].records += one[i].records;
		}
	}
	metrics_printf(out, ",\"dataplane_streams\":[");
	for (uint32_t i = 0; i < sum_count; i++)
		metrics_printf(out, "%s{\"stream_id\":%lld,\"records\":%llu}", i > 0 ? "," : "",
			       sum[i].stream_id == DP_STREAM_COUNT_OTHER ? -1ll :
			       (long long)sum[i].stream_id, (unsigned long long)sum[i].records);
	metrics_printf(out, "]");
}

/*
 * Delivery streams' figures (firehose_stats, sluice top's lines):
 * "delivery_streams":[{"name":S,"delivered_records":N,"delivered_bytes":N,
 * "delivered_objects":N,"delivery_failures":N,"freshness_ms":N,"retention_headroom_s":N}]
 */
static void
admin_status_firehose(struct admin_context *ctx, struct metrics_out *out)
{
	static struct firehose_stats st[FIREHOSE_STREAMS_MAX];  /* Admin thread only. */
	uint32_t n = ctx->src.firehose == NULL ? 0 :
		     firehose_stats_read(ctx->src.firehose, st, FIREHOSE_STREAMS_MAX);

	metrics_printf(out, ",\"delivery_streams\":[");
	for (uint32_t i = 0; i < n; i++)  /* Names are [a-zA-Z0-9_.-]: nothing to escape. */
		metrics_printf(out, "%s{\"name\":\"%s\",\"delivered_records\":%llu,"
			       "\"delivered_bytes\":%llu,\"delivered_objects\":%llu,"
			       "\"delivery_failures\":%llu,\"freshness_ms\":%llu,"
			       "\"retention_headroom_s\":%llu}", i > 0 ? "," : "", st[i].name,
			       (unsigned long long)st[i].delivered_records,
			       (unsigned long long)st[i].delivered_bytes,
			       (unsigned long long)st[i].delivered_objects,
			       (unsigned long long)st[i].delivery_failures,
			       (unsigned long long)st[i].freshness_ms,
			       (unsigned long long)st[i].retention_headroom_s);
	metrics_printf(out, "]");
}

void
admin_status_json(struct admin_context *ctx, struct metrics_out *out)
{
	struct admin_status_walk w = { .log = ctx->src.log, .out = out };
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
	admin_status_dataplane_streams(ctx, out);
	admin_status_firehose(ctx, out);
	admin_status_history(out);
	admin_status_reshards(out);
	metrics_printf(out, "}");
}
