/*
 * dp.c - the dataplane's life cycle: open (EAL, port, route RCU, workers),
 * start (launch worker lcores), stop (ask and join), close (undo open).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "common/diag.h"
#include "dataplane/dp_internal.h"

void
dp_config_default(struct dp_config *config)
{
	memset(config, 0, sizeof(*config));
	config->eal_args = "";
	config->vdev = "net_tap0,iface=sluice0";
	config->ipv4 = (198u << 24) | (18u << 16) | 1u; /* 198.18.0.1 */
	config->ingest_port = 4570;
	config->workers = 1;
	config->batch_age_us = 100;
	config->producers_max = 1024;
	config->idle_polls = 1024;
	config->idle_sleep_us = 100;
	config->mbufs = 8191;
	config->ring_size = 1024;
	config->auth_window_ms = 300000;
}

static int
dp_config_check(const struct dp_config *c)
{
	if (c->workers == 0 || c->workers > DP_WORKERS_MAX)
		return -EINVAL;
	if (c->ring_size < 64 || c->ring_size > 32768 || (c->ring_size & (c->ring_size - 1)))
		return -EINVAL;
	if (c->mbufs < 1023 || c->ingest_port == 0 || c->batch_age_us == 0)
		return -EINVAL;
	if (c->producers_max == 0 || c->producers_max > DP_PRODUCERS_MAX)
		return -EINVAL;
	if (c->auth_key_count > DP_AUTH_KEYS_MAX || (c->auth_key_count > 0 && c->auth_keys == NULL))
		return -EINVAL;
	if (c->no_huge && c->in_memory)
		return -EINVAL; /* EAL: --no-huge implies legacy memory, refused with --in-memory. */
	return 0;
}

static int
dp_copy_strings(struct dp *dp, const struct dp_config *c)
{
	int n;

	n = snprintf(dp->eal_args, sizeof(dp->eal_args), "%s", c->eal_args ? c->eal_args : "");
	if (n < 0 || (size_t)n >= sizeof(dp->eal_args))
		return -E2BIG;
	n = snprintf(dp->vdev, sizeof(dp->vdev), "%s", c->vdev ? c->vdev : "");
	if (n < 0 || (size_t)n >= sizeof(dp->vdev))
		return -E2BIG;
	if (c->file_prefix != NULL)
		n = snprintf(dp->file_prefix, sizeof(dp->file_prefix), "%s", c->file_prefix);
	else
		n = snprintf(dp->file_prefix, sizeof(dp->file_prefix), "sluice-%d", (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(dp->file_prefix))
		return -E2BIG;
	dp->config = *c;
	dp->config.eal_args = dp->eal_args;
	dp->config.vdev = dp->vdev;
	dp->config.file_prefix = dp->file_prefix;
	for (uint32_t i = 0; i < c->auth_key_count; i++)
		dp->auth_keys[i] = c->auth_keys[i];
	dp->auth_key_count = c->auth_key_count;
	dp->config.auth_keys = dp->auth_keys;
	return 0;
}

static int
dp_workers_open(struct dp *dp)
{
	uint32_t lcore = rte_get_main_lcore();
	size_t size = RTE_ALIGN_CEIL(sizeof(struct dp_worker) * dp->worker_count, 64);

	dp->workers = aligned_alloc(64, size);
	if (dp->workers == NULL)
		return -ENOMEM;
	memset(dp->workers, 0, size);
	for (uint32_t i = 0; i < dp->worker_count; i++) {
		struct dp_worker *w = &dp->workers[i];
		int rc;

		lcore = rte_get_next_lcore(lcore, 1, 0);
		assert(lcore < RTE_MAX_LCORE);
		w->dp = dp;
		w->index = i;
		w->lcore_id = lcore;
		w->port_id = dp->port_id;
		w->queue_id = (uint16_t)i;
		rc = dp_ingest_init(w);
		if (rc != 0) {
			while (i-- > 0)
				dp_ingest_fini(&dp->workers[i]);
			free(dp->workers);
			dp->workers = NULL;
			return rc;
		}
	}
	return 0;
}

int
dp_open(const struct dp_config *config, struct dp **dp_out)
{
	struct dp *dp;
	int rc = dp_config_check(config);

	if (rc != 0)
		return rc;
	dp = calloc(1, sizeof(*dp));
	if (dp == NULL)
		return -ENOMEM;
	rc = dp_copy_strings(dp, config);
	if (rc != 0)
		goto out_free;
	dp->worker_count = config->workers;
	dp->ipv4_be = rte_cpu_to_be_32(config->ipv4);
	dp->ingest_port_be = rte_cpu_to_be_16(config->ingest_port);
	rc = dp_eal_init(dp);
	if (rc != 0)
		goto out_free;
	dp->tsc_hz = rte_get_tsc_hz();
	if (rte_lcore_count() < dp->worker_count + 1) {
		diag_error("dataplane", "%u lcores for %u workers + main", rte_lcore_count(),
			   dp->worker_count);
		rc = -EINVAL;
		goto out_eal;
	}
	rc = dp_port_open(dp);
	if (rc != 0)
		goto out_eal;
	rc = dp_route_init(dp);
	if (rc != 0)
		goto out_port;
	rc = dp_workers_open(dp);
	if (rc != 0)
		goto out_route;
	if (config->telemetry)
		dp_telemetry_register(dp);
	*dp_out = dp;
	return 0;

out_route:
	dp_route_fini(dp);
out_port:
	dp_port_close(dp);
out_eal:
	dp_eal_cleanup(dp);
out_free:
	free(dp);
	return rc;
}

/* The lcore function: the worker's loop, then its exit made visible (struct dp_worker). */
static int
dp_worker_launch(void *arg)
{
	struct dp_worker *w = arg;
	int rc = dp_worker_main(w);

	atomic_store_explicit(&w->exited, true, memory_order_release);
	return rc;
}

/* After rte_eal_mp_wait_lcore(): the first `launched` workers have returned. */
static void
dp_workers_joined(struct dp *dp, uint32_t launched)
{
	for (uint32_t i = 0; i < launched; i++) {
		bool exited = atomic_exchange_explicit(&dp->workers[i].exited, false,
						       memory_order_acquire);

		assert(exited);
		(void)exited;
	}
}

int
dp_start(struct dp *dp)
{
	assert(!dp->running);
	atomic_store(&dp->stop, false);
	for (uint32_t i = 0; i < dp->worker_count; i++) {
		struct dp_worker *w = &dp->workers[i];
		int rc = rte_eal_remote_launch(dp_worker_launch, w, w->lcore_id);

		if (rc != 0) {
			diag_error("dataplane", "launch worker %u on lcore %u: %d", i, w->lcore_id,
				   rc);
			atomic_store(&dp->stop, true);
			rte_eal_mp_wait_lcore();
			dp_workers_joined(dp, i);
			return rc < 0 ? rc : -rc;
		}
	}
	dp->running = true;
	return 0;
}

void
dp_stop(struct dp *dp)
{
	if (!dp->running)
		return;
	atomic_store(&dp->stop, true);
	rte_eal_mp_wait_lcore();
	dp_workers_joined(dp, dp->worker_count);
	dp->running = false;
}

void
dp_close(struct dp *dp)
{
	if (dp == NULL)
		return;
	dp_stop(dp);
	for (uint32_t i = 0; i < dp->worker_count; i++)
		dp_ingest_fini(&dp->workers[i]);
	free(dp->workers);
	dp_route_fini(dp);
	dp_port_close(dp);
	dp_eal_cleanup(dp);
	free(dp);
}
