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
#include "dataplane/dp_kernel.h"

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
	config->admit_wait_ms = DP_ADMIT_WAIT_MS_DEFAULT;
	config->producers_max = 1024;
	config->idle_polls = 16;
	config->idle_sleep_us = 100;
	config->mbufs = 8191;
	config->ring_size = 1024;
	config->mtu = 1500;
	config->auth_window_ms = FRAME_AUTH_WINDOW_MS;
	config->tcp_connections = 16384;
	config->tcp_half_open = 1024;
	config->tcp_per_source = 4096;
	config->tcp_rx_buffers = 64;
	config->tcp_rx_buffer_kb = 1028; /* FRAME_SIZE_MAX: any legal frame. */
	config->tcp_tx_buffers = 256;
	config->tcp_tx_buffer_kb = 64;
	config->tcp_mss = 1460;
	config->tcp_idle_timeout_s = 600;
	config->tcp_keepalive_s = 60;
	config->tcp_partial_frame_s = 30;
}

/* The field at fault, or NULL when dp_open() accepts `c`. */
static const char *
dp_config_fault(const struct dp_config *c)
{
	if (c->workers == 0 || c->workers > DP_WORKERS_MAX)
		return "workers";
	if (c->backend != DP_BACKEND_DPDK && c->backend != DP_BACKEND_KERNEL)
		return "backend";
	if (c->ring_size < DP_RING_SIZE_MIN || c->ring_size > DP_RING_SIZE_MAX ||
	    (c->ring_size & (c->ring_size - 1)) != 0)
		return "ring_size";
	if (c->mbufs < DP_MBUFS_MIN || c->mbufs > DP_MBUFS_MAX)
		return "mbufs";
	if (c->ingest_port == 0)
		return "ingest_port";
	if (c->batch_age_us < DP_BATCH_AGE_US_MIN || c->batch_age_us > DP_BATCH_AGE_US_MAX)
		return "batch_age_us";
	if (c->admit_wait_ms < DP_ADMIT_WAIT_MS_MIN || c->admit_wait_ms > DP_ADMIT_WAIT_MS_MAX)
		return "admit_wait_ms";
	if (c->idle_polls > DP_IDLE_POLLS_MAX)
		return "idle_polls";
	if (c->idle_sleep_us > DP_IDLE_SLEEP_US_MAX)
		return "idle_sleep_us";
	if (c->producers_max == 0 || c->producers_max > DP_PRODUCERS_MAX)
		return "producers_max";
	if (c->auth_key_count > DP_AUTH_KEYS_MAX || (c->auth_key_count > 0 && c->auth_keys == NULL))
		return "auth_keys";
	if (c->cluster != NULL && (c->cluster->lead == NULL || c->cluster->acked == NULL ||
				   c->cluster->durable == NULL || c->cluster->acked_gen == NULL))
		return "cluster";
	if (c->mtu < DP_MTU_MIN || c->mtu > DP_MTU_MAX)
		return "mtu";
	if (c->tcp_connections == 0 || c->tcp_connections > DP_TCP_CONNECTIONS_MAX)
		return "tcp_connections";
	if (c->tcp_half_open == 0 || c->tcp_half_open > DP_TCP_CONNECTIONS_MAX)
		return "tcp_half_open";
	if (c->tcp_per_source == 0 || c->tcp_per_source > DP_TCP_CONNECTIONS_MAX)
		return "tcp_per_source";
	if (c->tcp_rx_buffers == 0 || c->tcp_rx_buffers > DP_TCP_BUFFERS_MAX)
		return "tcp_rx_buffers";
	if (c->tcp_tx_buffers == 0 || c->tcp_tx_buffers > DP_TCP_BUFFERS_MAX)
		return "tcp_tx_buffers";
	if (c->tcp_rx_buffer_kb < DP_TCP_BUFFER_KB_MIN || c->tcp_rx_buffer_kb > DP_TCP_BUFFER_KB_MAX)
		return "tcp_rx_buffer_kb";
	if (c->tcp_tx_buffer_kb < DP_TCP_BUFFER_KB_MIN || c->tcp_tx_buffer_kb > DP_TCP_BUFFER_KB_MAX)
		return "tcp_tx_buffer_kb";
	if (c->tcp_mss < DP_TCP_MSS_MIN || c->tcp_mss > DP_MTU_MAX - 40)
		return "tcp_mss";
	if (c->tcp_idle_timeout_s > DP_TCP_TIMEOUT_S_MAX)
		return "tcp_idle_timeout_s";
	if (c->tcp_keepalive_s > DP_TCP_TIMEOUT_S_MAX)
		return "tcp_keepalive_s";
	if (c->tcp_partial_frame_s == 0 || c->tcp_partial_frame_s > DP_TCP_PARTIAL_FRAME_S_MAX)
		return "tcp_partial_frame_s";
	if (c->no_huge && c->in_memory)
		return "no_huge"; /* EAL: --no-huge implies legacy memory, refused with --in-memory. */
	return NULL;
}

int
dp_config_check(const struct dp_config *c, const char **field_out)
{
	const char *field = dp_config_fault(c);

	if (field_out != NULL)
		*field_out = field;
	return field == NULL ? 0 : -EINVAL;
}

static int
dp_copy_strings(struct dp *dp, const struct dp_config *c)
{
	int n;

	n = snprintf(dp->eal_args, sizeof(dp->eal_args), "%s", c->eal_args ? c->eal_args : "");
	if (n < 0 || (size_t)n >= sizeof(dp->eal_args))
		return -E2BIG;
	/* The kernel backend opens no DPDK device. */
	n = snprintf(dp->vdev, sizeof(dp->vdev), "%s",
		     c->vdev != NULL && c->backend == DP_BACKEND_DPDK ? c->vdev : "");
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
	if (c->cluster != NULL) {
		dp->cluster = *c->cluster;
		dp->config.cluster = &dp->cluster;
	}
	return 0;
}

/*
 * The producers' duplicate windows, shared by every worker (dp_internal.h
 * says why): producers_max per worker, so the memory is as before. A window
 * idle longer than any retry or signed replay can come late may be reused.
 */
static int
dp_dedup_open(struct dp *dp)
{
	uint64_t idle_tsc = ((uint64_t)DP_PRODUCER_IDLE_S * 1000u + dp->config.auth_window_ms) *
			    (dp->tsc_hz / 1000u);

	rte_spinlock_init(&dp->dedup_lock);
	return dp_dedup_init(&dp->dedup, dp->config.producers_max * dp->worker_count, idle_tsc);
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
		if (dp->config.backend == DP_BACKEND_DPDK) /* The kernel backend has no port. */
			dp_port_queue_of(dp, i, &w->port_id, &w->queue_id);
		rc = dp_worker_open(w);
		if (rc != 0) {
			while (i-- > 0)
				dp_worker_close(&dp->workers[i]);
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
	int rc = dp_config_check(config, NULL);

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
	/* The kernel backend has no port: sockets, opened per worker. */
	rc = config->backend == DP_BACKEND_KERNEL ? 0 : dp_port_open(dp);
	if (rc != 0)
		goto out_eal;
	rc = dp_route_init(dp);
	if (rc != 0)
		goto out_port;
	rc = dp_dedup_open(dp);
	if (rc != 0)
		goto out_route;
	rc = dp_workers_open(dp);
	if (rc != 0)
		goto out_dedup;
	if (config->telemetry)
		dp_telemetry_register(dp);
	*dp_out = dp;
	return 0;

out_dedup:
	dp_dedup_fini(&dp->dedup);
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
	int rc = w->dp->config.backend == DP_BACKEND_KERNEL ? dp_kernel_worker_main(w) :
							       dp_worker_main(w);

	atomic_store_explicit(&w->exited, true, memory_order_release);
	return rc;
}

/*
 * After rte_eal_mp_wait_lcore(): the first `launched` workers have returned. Frames
 * they took and could not answer within DP_STOP_DRAIN_MS are logged with their count.
 */
static void
dp_workers_joined(struct dp *dp, uint32_t launched)
{
	uint64_t unanswered = 0;

	for (uint32_t i = 0; i < launched; i++) {
		bool exited = atomic_exchange_explicit(&dp->workers[i].exited, false,
						       memory_order_acquire);

		assert(exited);
		(void)exited;
		unanswered += dp->workers[i].unanswered_at_stop;
		dp->workers[i].unanswered_at_stop = 0;
	}
	if (unanswered > 0)
		diag_warn("dataplane", "stopped with %llu frames unanswered: the log did not "
			  "finish their batches within DP_STOP_DRAIN_MS (%u ms); producers retry "
			  "them", (unsigned long long)unanswered, DP_STOP_DRAIN_MS);
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
		dp_worker_close(&dp->workers[i]);
	free(dp->workers);
	dp_dedup_fini(&dp->dedup);
	dp_route_fini(dp);
	dp_port_close(dp);
	dp_eal_cleanup(dp);
	free(dp);
}
