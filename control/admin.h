/*
 * admin.h - private to control/: the admin listener ([admin] listen, default
 * 127.0.0.1:4568), separate from the Kinesis port, on its own thread with its
 * own epoll loop. It answers GET only:
 *
 *   /healthz       200 while the process runs
 *   /readyz        200 once the log is recovered, metadata open, the API serving and
 *                  (when enabled) the dataplane serving; 503 naming what is missing
 *   /metrics       Prometheus text format (metrics.h)
 *   /              the status page (status_page.html, compiled in: no external fetch)
 *   /status.json   what the status page polls: streams, shards, rates, log, dataplane
 *   /cluster       this node's cluster state as JSON (docs/CLUSTER.md; {"enabled":false}
 *                  in single-node mode)
 *
 * With [admin] token set, or on a listener that is not loopback, every request
 * must carry "Authorization: Bearer TOKEN" (or ?token=TOKEN, which the status
 * page passes on) or, with [auth] mode = sigv4, a SigV4 signature by one of the
 * API's access_keys for the service "sluice-admin" (SIGV4_SERVICE_ADMIN: a
 * signature for the Kinesis API is not accepted here, nor the reverse). A
 * listener that is not loopback needs one of the two (config_validate).
 *
 * Memory: admin_open() takes everything (connection table, response buffers).
 * Errors: 0 or a negative errno.
 */
#ifndef SLUICE_CONTROL_ADMIN_H
#define SLUICE_CONTROL_ADMIN_H

#include "control/config.h"
#include "control/metrics.h"

struct admin;

/* Binds the listener and opens its own metadata connection. Serves nothing yet. */
int admin_open(const struct sluice_config *config, const struct metrics_sources *src,
	       struct admin **admin_out);
/* Starts the admin thread. */
int admin_start(struct admin *admin);
/*
 * SIGHUP: takes [admin] token and [auth] access_keys of `config` (main thread;
 * the next request is checked against them). 0, or -EINVAL for keys that do
 * not parse (the old ones stay).
 */
int admin_reload(struct admin *admin, const struct sluice_config *config);
/* Stops the thread (if started), closes every connection and frees `admin`. */
void admin_close(struct admin *admin);

#endif /* SLUICE_CONTROL_ADMIN_H */
