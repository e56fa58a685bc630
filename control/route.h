/*
 * route.h - the control side of the dataplane (route.c), private to control/:
 * starts the DPDK dataplane from the [dataplane] configuration and keeps its
 * route table in step with the streams and open shards in metadata.
 */
#ifndef SLUICE_CONTROL_ROUTE_H
#define SLUICE_CONTROL_ROUTE_H

#include "common/hashkey.h"
#include "control/api.h"
#include "control/config.h"

struct dp_cluster;

struct dp_config;
struct dp_stats;
struct dp_stream_count;
struct log;

/*
 * The [dataplane] keys -> the dataplane's configuration (the only conversion;
 * --check-config uses it too). -EINVAL with *key_out naming the [dataplane]
 * key whose text does not parse (ipv4, auth_keys); 0 otherwise.
 */
int route_dp_config(const struct sluice_config *config, struct log *log, struct dp_config *out,
		    const char **key_out);

struct metadata;
struct route;

/* What asked for a metadata read (route_stats.refreshes). */
enum route_cause {
	ROUTE_CAUSE_START,       /* route_dataplane_start: the first table. */
	ROUTE_CAUSE_EVENT,       /* The metadata watch fired (a routing change committed). */
	ROUTE_CAUSE_CUT,         /* kinesis_routes.sync: a reshard's cut, on the closer thread. */
	ROUTE_CAUSE_RETRY,       /* The last read or publish failed: retried on a timer. */
	ROUTE_CAUSES,
};

struct route_stats {
	uint64_t refreshes[ROUTE_CAUSES];  /* Metadata reads, by cause. */
	uint64_t skips;                    /* Wakes and cuts with no change since the last read. */
	uint64_t failures;                 /* Reads or publishes that failed (then retried). */
	uint64_t publishes;                /* Tables published (the read differed). */
	uint64_t generation;               /* The watch generation the last good read holds. */
};

/*
 * The route publisher, not running yet: route_dp_worker_stats() answers -ENODEV
 * until route_dataplane_start(). One per dataplane; -ENOMEM.
 */
int route_open(struct route **route_out);
/* Stops it if running (route_dataplane_stop) and frees it. NULL: no-op. */
void route_close(struct route *route);

/*
 * Starts the dataplane on `log` and a route thread that republishes the route
 * table whenever metadata publishes a routing change (metadata.h, change events):
 * it reads through its own reader handle on `md` (which must outlive the stop).
 * One dataplane per process. Fills *routes_out for kinesis_routes_set(): `sync`
 * publishes the routes metadata holds now (RCU swap, every worker past a quiescent
 * state), then waits until every worker has handed the log what it staged under
 * the older table (a reshard's cut). `cluster` (cluster mode, else NULL): the node's
 * leadership and replica acks for the dataplane (copied). Returns 0 or a negative
 * errno (nothing is left running on failure).
 */
int route_dataplane_start(struct route *route, const struct sluice_config *config,
			  struct log *log, struct metadata *md, const struct dp_cluster *cluster,
			  struct kinesis_routes *routes_out);

/*
 * Stops the route thread and the dataplane (staged records are submitted
 * first). No-op when it was not started. Clear the actions' routes first
 * (kinesis_routes_set(k, NULL)): nothing may call them after this.
 */
void route_dataplane_stop(struct route *route);

/*
 * One worker's counters of the running dataplane (the admin listener's
 * /metrics); -ENODEV when `route` is NULL, no dataplane runs or `worker` is past the last.
 */
int route_dp_worker_stats(struct route *route, uint32_t worker, struct dp_stats *stats_out);
/* One worker's per-stream durable records (dp_worker_stream_counts): the count, or -ENODEV. */
int route_dp_worker_stream_counts(struct route *route, uint32_t worker,
				  struct dp_stream_count *out, uint32_t max);

/* A consistent copy of the counters (any thread; waits for a publish in progress). */
void route_stats_read(struct route *route, struct route_stats *out);
/* "start", "event", "cut", "retry": the /metrics label. */
const char *route_cause_name(enum route_cause cause);
/*
 * Routes a hash key through the published table as a worker would (tests, tools):
 * 0 and the log shard id, -ENOENT, or -ENODEV when no dataplane runs.
 */
int route_lookup(struct route *route, const char *stream_name, hashkey_t key,
		 uint64_t *shard_id_out);
/*
 * Holds the publisher (its lock) until route_release: changes committed meanwhile wait
 * and are read together once released (tests: a storm meeting a busy publisher).
 */
void route_hold(struct route *route);
void route_release(struct route *route);

#endif /* SLUICE_CONTROL_ROUTE_H */
