/*
 * metrics.h - private to control/: the figures an operator watches, kept
 * where they happen and read by the admin listener (admin.c) without a lock.
 *
 * Writers: the API server thread records per-operation replies, per-stream and
 * per-shard puts and reads, and the fan-out counters (the Kinesis actions and
 * the streaming answers run on it); main() records readiness.
 * Every counter has that one writer and is updated with a relaxed load and
 * store (common/hist.h): no locked instruction on the request path.
 * Reader: the admin thread, at any time, with relaxed loads. A stream's slot
 * carries its stream id as a version: a reader that sees the same id before
 * and after copying a slot has a slot of one stream (ids are never reused).
 *
 * Memory: fixed tables (SLUICE_STREAMS_MAX stream slots, METRICS_API_OPS_MAX
 * operations, METRICS_SHARD_SERIES_MAX shard series), in static storage: nothing
 * is allocated.
 */
#ifndef SLUICE_CONTROL_METRICS_H
#define SLUICE_CONTROL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hist.h"
#include "common/limits.h"

struct log;
struct firehose;
struct route;
struct metadata;

/*
 * Operations with their own series (room for the Kinesis model's 39); index
 * METRICS_API_OPS_MAX is "Other".
 */
#define METRICS_API_OPS_MAX 40u
/* AWS error types counted by name (metrics.c); the rest count as "Other". */
#define METRICS_ERROR_TYPES_MAX 24u
/* Smallest latency bucket: 50 us .. 1.6 s in 16 doublings. */
#define METRICS_LATENCY_BASE_NS 50000u

/* ---- Recording (the API server thread) ------------------------------------ */

/*
 * [admin] metrics: false makes every recording call return at once (it exists to
 * measure what recording costs, docs/BENCHMARKS.md). Set before any thread starts.
 */
void metrics_enable(bool enabled);
bool metrics_enabled(void);

/*
 * The operations with their own series, in index order: the Kinesis actions
 * register themselves at open, before any thread reads the table. The names
 * must stay valid (static strings).
 */
void metrics_api_ops_register(const char *const *names, uint32_t count);
/* The operation an X-Amz-Target names ("Kinesis_20131202.PutRecord"), else "Other". */
uint32_t metrics_api_op(const char *target, size_t target_size);
/* The name of operation `op` ("Other" past the registered ones). */
const char *metrics_api_op_name(uint32_t op);
/* An access log line written (true) or an error's line suppressed by the rate limit. */
void metrics_access_log(bool written);
/* One reply of operation `op` (metrics_api_op), error_type "" on success. */
void metrics_api_reply(uint32_t op, int http_status, const char *error_type,
		       uint64_t latency_ns);

/* A stream's identity, as the recording calls name it. */
struct metrics_stream_ref {
	uint32_t slot;            /* Its index in the Kinesis stream table. */
	uint32_t stream_id;
	const char *name;
};

/* PutRecord (put_records false) or PutRecords, once its reply is sent. */
struct metrics_put {
	bool put_records;
	uint32_t records_ok;
	uint32_t records_failed;      /* Throttled ones included. */
	uint32_t records_throttled;   /* ProvisionedThroughputExceeded. */
	uint64_t bytes_ok;            /* Data bytes of the records stored. */
	uint64_t latency_ns;
};

void metrics_stream_put(const struct metrics_stream_ref *ref, const struct metrics_put *put);
/* A GetRecords reply (a throttled one: records 0 and throttled true). */
void metrics_stream_get(const struct metrics_stream_ref *ref, uint32_t records, uint64_t bytes,
			uint64_t latency_ns, uint64_t iterator_age_ms, bool throttled);
/* The stream is gone (DeleteStream finished): its series stop. */
void metrics_stream_forget(uint32_t stream_id);

/* ---- Shard-level series (the API thread; enhanced monitoring) ------------ */

/*
 * Shard series kept at once, over all streams with enhanced monitoring on: a
 * shard past it is not exported and counted (sluice_shard_series_refused_total).
 * Bounds /metrics' size: each series is up to 7 lines.
 */
#define METRICS_SHARD_SERIES_MAX 1024u

/*
 * What one shard-level recording adds. `enabled` is the stream's enum
 * kinesis_metric bits (api.h): only those are exported. The caller checks the
 * stream's bits are not 0 first, so a stream without monitoring costs that test.
 */
struct metrics_shard_add {
	uint32_t shard_index;
	uint32_t enabled;
	uint64_t incoming_bytes;
	uint64_t incoming_records;
	uint64_t outgoing_bytes;
	uint64_t outgoing_records;
	uint64_t write_exceeded;      /* Records refused as throttled. */
	uint64_t read_exceeded;       /* GetRecords calls throttled. */
	uint64_t iterator_age_ms;     /* With iterator_age: the latest read's age. */
	bool iterator_age;
};

/*
 * Adds to the series of shard `add->shard_index` of stream `ref`. `*series` is
 * the shard's cache of its series (0 at first; the caller keeps it with the
 * shard): a series is claimed on first use, or refused (counted once) when
 * METRICS_SHARD_SERIES_MAX are in use.
 */
void metrics_shard_record(const struct metrics_stream_ref *ref, uint32_t *series,
			  const struct metrics_shard_add *add);
/*
 * Enhanced monitoring changed to `enabled` for `stream_id`: its series show only
 * those metrics from now on; 0 drops its series (EnableEnhancedMonitoring,
 * DisableEnhancedMonitoring).
 */
void metrics_shards_enabled(uint32_t stream_id, uint32_t enabled);

/* ---- Fan-out (the API thread; counted whatever [admin] metrics says) ------- */

enum metrics_fanout_counter {
	METRICS_FANOUT_SUBSCRIPTIONS_STARTED,   /* SubscribeToShard answers begun. */
	METRICS_FANOUT_SUBSCRIPTIONS_FINISHED,  /* ... and ended, however. */
	METRICS_FANOUT_EVENTS,                  /* SubscribeToShardEvents sent. */
	METRICS_FANOUT_RECORDS,                 /* Records in them. */
	METRICS_FANOUT_BYTES,                   /* Data bytes of those records. */
	METRICS_FANOUT_EVENTS_DEFERRED,         /* An event the stream refused: sent later. */
	METRICS_FANOUT_STREAMS_STARTED,         /* The server's streaming answers begun, */
	METRICS_FANOUT_STREAMS_ENDED,           /* ... ended by the action, */
	METRICS_FANOUT_STREAMS_GONE,            /* ... whose client left first; */
	METRICS_FANOUT_STREAM_BYTES,            /* bytes written into them (framing excluded); */
	METRICS_FANOUT_WRITES_REFUSED,          /* writes refused: the reader had not taken */
	METRICS_FANOUT_WRITES_NO_BUFFER,        /* the last bytes / no pool buffer free. */
	METRICS_FANOUT_COUNT,
};

void metrics_fanout_add(enum metrics_fanout_counter counter, uint64_t n);

/* ---- API connections (the API thread; counted whatever [admin] metrics says) */

/* What became of API connections (sluice_api_connections_total{result}). */
enum metrics_conn_counter {
	METRICS_CONN_ACCEPTED,   /* Taken into the connection table. */
	METRICS_CONN_REFUSED,    /* Closed at once: the cap reached, none evictable. */
	METRICS_CONN_EVICTED,    /* The oldest unproven one, closed to let a new one in. */
	METRICS_CONN_SHED,       /* Accepted and closed at once: out of descriptors. */
	METRICS_CONN_TIMED_OUT,  /* Idle, or stalled mid-request, for idle_timeout_ms. */
	METRICS_CONN_COUNT,
};

void metrics_conn_add(enum metrics_conn_counter counter);

/* ---- Reshard history (the API thread) -------------------------------------- */

/* Recent reshards kept for the status page; older ones drop off. */
#define METRICS_RESHARDS_MAX 64u
#define METRICS_RESHARD_WHAT_SIZE 160u

/* One reshard, as committed (an API call's or an auto-scaling decision's). */
struct metrics_reshard {
	uint64_t time_ms;                 /* Wall clock. */
	uint32_t stream_id;
	uint32_t shards_before;           /* Shards (open and closed) before and after. */
	uint32_t shards_after;
	uint32_t open_after;
	bool autoscale;                   /* Decided by auto-scaling, not an API call. */
	char stream[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	char what[METRICS_RESHARD_WHAT_SIZE];  /* "SplitShard", or auto-scaling's note. */
};

/* Records one (always, whatever [admin] metrics says: reshards are rare). */
void metrics_reshard_note(const struct metrics_reshard *event);
/* Copies up to `count` of the most recent, oldest first; returns how many (admin thread). */
uint32_t metrics_reshard_history(struct metrics_reshard *out, uint32_t count);

/* ---- Readiness (main) ---------------------------------------------------- */

enum metrics_ready {
	METRICS_READY_LOG,        /* The log is recovered and open. */
	METRICS_READY_METADATA,   /* SQLite is open, streams loaded. */
	METRICS_READY_API,        /* The API server thread runs. */
	METRICS_READY_DATAPLANE,  /* The dataplane runs (required only when enabled). */
	METRICS_READY_COUNT,
};

void metrics_ready_set(enum metrics_ready what, bool ready);
/*
 * Whether every part is ready; when not, the first one missing is named in
 * *missing_out. The dataplane counts only when `dataplane_enabled`.
 */
bool metrics_ready_all(bool dataplane_enabled, const char **missing_out);

/* ---- Reading (the admin thread) ------------------------------------------ */

/* A bounded text buffer: appends past capacity set `overflow` and are dropped. */
struct metrics_out {
	char *data;
	size_t size;
	size_t capacity;
	bool overflow;
};

void metrics_printf(struct metrics_out *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What /metrics reads besides the tables above. */
struct cluster_node;

struct metrics_sources {
	struct log *log;
	const struct firehose *firehose;  /* Delivery streams' figures, or NULL. */
	const char *data_dir;
	bool dataplane_enabled;
	struct route *route;              /* The dataplane's counters (route.h), or NULL. */
	struct metadata *md;              /* The actions' store: the admin opens a reader on it. */
	struct cluster_node *cluster;     /* Cluster mode's node (cluster_node.h), or NULL. */
	struct forward *forward;          /* Cluster mode's forwarder (forward.h), or NULL. */
};

/* The Prometheus text exposition (format 0.0.4) of everything (metrics_system.c). */
void metrics_render_prometheus(const struct metrics_sources *src, struct metrics_out *out);
/* ... of this file's tables only: readiness, streams, API operations. */
void metrics_render_tables(bool dataplane_enabled, struct metrics_out *out);
/* # HELP and # TYPE lines of one family. */
void metrics_family(struct metrics_out *out, const char *name, const char *type,
		    const char *help);
/*
 * A histogram's samples: cumulative buckets, `le` being base << i scaled by
 * `scale` into the family's unit (1e-9: ns -> seconds), then _sum and _count.
 */
void metrics_hist(struct metrics_out *out, const char *name, const char *labels,
		  const struct hist *h, uint64_t base, double scale);

/* One stream's figures, copied consistently (the status page). */
struct metrics_stream_view {
	uint32_t stream_id;
	char name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	uint64_t incoming_bytes;
	uint64_t incoming_records;
	uint64_t put_requests;
	uint64_t put_latency_ns_sum;
	uint64_t get_records;
	uint64_t get_bytes;
	uint64_t write_exceeded;
	uint64_t read_exceeded;
	uint64_t iterator_age_ms;
};

/* Copies the stream with `stream_id`; false when it has no series (yet). */
bool metrics_stream_view(uint32_t stream_id, struct metrics_stream_view *view_out);
/* Copies up to `count` streams that have series; returns how many it copied. */
uint32_t metrics_stream_views(struct metrics_stream_view *views_out, uint32_t count);

#endif /* SLUICE_CONTROL_METRICS_H */
