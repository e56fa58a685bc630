/*
 * route.h - the control side of the dataplane (route.c), private to control/:
 * starts the DPDK dataplane from the [dataplane] configuration and keeps its
 * route table in step with the streams and open shards in metadata.
 */
#ifndef SLUICE_CONTROL_ROUTE_H
#define SLUICE_CONTROL_ROUTE_H

#include "control/api.h"
#include "control/config.h"

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

/*
 * Starts the dataplane on `log` and a route thread that republishes the
 * route table whenever the actions say the streams or their open shards
 * changed. One dataplane per process. Fills *routes_out for
 * kinesis_routes_set(): `changed` wakes the route thread; `sync` publishes
 * the routes SQLite holds now (RCU swap, every worker past a quiescent
 * state), then waits until every worker has handed the log what it staged
 * under the older table (a reshard's cut). Returns 0 or a negative errno
 * (nothing is left running on failure).
 */
int route_dataplane_start(const struct sluice_config *config, struct log *log,
			  struct kinesis_routes *routes_out);

/*
 * Stops the route thread and the dataplane (staged records are submitted
 * first). No-op when it was not started. Clear the actions' routes first
 * (kinesis_routes_set(k, NULL)): nothing may call them after this.
 */
void route_dataplane_stop(void);

/*
 * One worker's counters of the running dataplane (the admin listener's
 * /metrics); -ENODEV when no dataplane runs or `worker` is past the last.
 */
int route_dp_worker_stats(uint32_t worker, struct dp_stats *stats_out);
/* One worker's per-stream durable records (dp_worker_stream_counts): the count, or -ENODEV. */
int route_dp_worker_stream_counts(uint32_t worker, struct dp_stream_count *out, uint32_t max);

#endif /* SLUICE_CONTROL_ROUTE_H */
