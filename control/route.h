/*
 * route.h - the control side of the dataplane (route.c), private to control/:
 * starts the DPDK dataplane from the [dataplane] configuration and keeps its
 * route table in step with the streams and open shards in metadata.
 */
#ifndef SLUICE_CONTROL_ROUTE_H
#define SLUICE_CONTROL_ROUTE_H

#include "control/config.h"

struct dp_config;
struct dp_stats;
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
 * route table whenever the streams or their open shards change. One
 * dataplane per process. Returns 0 or a negative errno (nothing is left
 * running on failure).
 */
int route_dataplane_start(const struct sluice_config *config, struct log *log);

/*
 * Set while the dataplane runs (NULL otherwise): publishes the routes SQLite
 * holds now (RCU swap, every worker past a quiescent state), then waits until
 * every worker has handed the log what it staged under the older table. A
 * reshard calls it between its SQLite commit and log_shard_close() on the
 * parents. Defined in kinesis_reshard.c so the actions link without DPDK.
 */
extern int (*route_sync_hook)(void);

/*
 * Stops the route thread and the dataplane (staged records are submitted
 * first). No-op when it was not started.
 */
void route_dataplane_stop(void);

/*
 * One worker's counters of the running dataplane (the admin listener's
 * /metrics); -ENODEV when no dataplane runs or `worker` is past the last.
 */
int route_dp_worker_stats(uint32_t worker, struct dp_stats *stats_out);

#endif /* SLUICE_CONTROL_ROUTE_H */
