/*
 * dp_worker.c - the poll loop of one worker lcore.
 *
 * Each pass does bounded work: one RX burst from the worker's own queue
 * (L2/L3 and ingest per packet), log completions and aged batches, one TX
 * burst on the TX queue of the same index (net_tap learns a flow's queue from
 * the queue we answer on, so answering elsewhere would move the flow to
 * another worker). After every pass the worker reports an RCU quiescent
 * state: it holds no route-table pointer across passes. It never blocks,
 * allocates or prints; when something is full, it drops and counts.
 *
 * Idle back-off (dp_worker_idle): after idle_polls empty passes the worker
 * goes RCU-offline and naps, so publishers never wait for a sleeping worker
 * and a 2-CPU machine stays responsive.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "dataplane/dp_internal.h"
#include "dataplane/dp_kernel.h"
#include "nvme-log/log.h"

/*
 * Hands the device what it takes, a burst at a time; the rest stays in the backlog
 * for the next pass (dropping an ACK whose records are durable would leave its
 * producer without an answer).
 */
void
dp_worker_tx_flush(struct dp_worker *w)
{
	uint16_t sent = 0;
	uint16_t n;
	uint64_t bytes = 0;

	if (w->tx_count == 0)
		return;
	do {
		uint16_t left = (uint16_t)(w->tx_count - sent);

		n = rte_eth_tx_burst(w->port_id, w->queue_id, &w->tx[sent],
				     left < DP_TX_BURST ? left : DP_TX_BURST);
		for (uint16_t i = sent; i < sent + n; i++)
			bytes += w->tx[i]->pkt_len;
		sent += n;
	} while (n > 0 && sent < w->tx_count);
	memmove(w->tx, &w->tx[sent], (size_t)(w->tx_count - sent) * sizeof(w->tx[0]));
	w->tx_count -= sent;
	dp_count(w, DP_TX_PACKETS, sent);
	dp_count(w, DP_TX_BYTES, bytes);
}

uint32_t
dp_worker_tx_room(const struct dp_worker *w)
{
	return DP_TX_BACKLOG - w->tx_count;
}

void
dp_worker_tx(struct dp_worker *w, struct rte_mbuf *m)
{
	if (w->tx_count >= DP_TX_BURST)
		dp_worker_tx_flush(w);
	if (w->tx_count == DP_TX_BACKLOG) {
		rte_pktmbuf_free(m);
		dp_count(w, DP_TX_DROPPED, 1);
		return;
	}
	w->tx[w->tx_count++] = m;
}

/* ---- The TCP receiver's ops: how dp_tcp reaches the packet path and ingest. ---- */

static int
dp_worker_tcp_send(void *ctx, const struct dp_tcp_out *out)
{
	return dp_net_tcp_send(ctx, out);
}

static void
dp_worker_tcp_frame(void *ctx, uint32_t conn, uint32_t gen, const uint8_t *frame, uint32_t size)
{
	dp_ingest_tcp_frame(ctx, conn, gen, frame, size, rte_rdtsc());
}

static bool
dp_worker_tcp_can_take(void *ctx)
{
	return dp_ingest_can_take(ctx);
}

static void
dp_worker_tcp_held_release(void *ctx)
{
	dp_ingest_burst_end(ctx, rte_rdtsc());
}

static const struct dp_tcp_ops dp_worker_tcp_ops = {
	.send = dp_worker_tcp_send,
	.frame = dp_worker_tcp_frame,
	.can_take = dp_worker_tcp_can_take,
	.held_release = dp_worker_tcp_held_release,
};

static int
dp_worker_tcp_init(struct dp_worker *w)
{
	const struct dp_config *dc = &w->dp->config;
	struct dp_tcp_config c;

	dp_tcp_config_default(&c);
	c.local_addr_be = w->dp->ipv4_be;
	c.local_port_be = w->dp->ingest_port_be;
	/* The MSS taken: as configured, within the MTU, two segments per receive buffer. */
	c.mss = (uint16_t)RTE_MIN(RTE_MIN(dc->tcp_mss, dc->mtu - 40), dc->tcp_rx_buffer_kb * 512u);
	c.conns_max = dc->tcp_connections;
	c.half_open_max = dc->tcp_half_open;
	c.per_source_max = dc->tcp_per_source;
	c.rx_buffers = dc->tcp_rx_buffers;
	c.rx_buffer_size = dc->tcp_rx_buffer_kb * 1024u;
	c.tx_buffers = dc->tcp_tx_buffers;
	c.tx_buffer_size = dc->tcp_tx_buffer_kb * 1024u;
	c.idle_timeout_ms = dc->tcp_idle_timeout_s * 1000u;
	c.keepalive_ms = dc->tcp_keepalive_s * 1000u;
	c.partial_frame_ms = dc->tcp_partial_frame_s * 1000u;
	/* ISNs and SYN cookies must not be predictable from outside (RFC 6528). */
	if (getrandom(c.secret, sizeof(c.secret), 0) != (ssize_t)sizeof(c.secret))
		return -EIO;
	w->tsc_per_us = w->dp->tsc_hz / 1000000u;
	if (w->tsc_per_us == 0)
		w->tsc_per_us = 1;
	return dp_tcp_init(&w->tcp, &c, &dp_worker_tcp_ops, w, w->counters);
}

int
dp_worker_open(struct dp_worker *w)
{
	int rc;

	if (w->dp->config.backend == DP_BACKEND_KERNEL)
		return dp_kernel_worker_open(w); /* Sockets instead of a port (dp_kernel.c). */
	rc = dp_ingest_init(w);
	if (rc != 0)
		return rc;
	rc = dp_worker_tcp_init(w);
	if (rc != 0)
		goto out_ingest;
	rc = dp_net_init(w);
	if (rc != 0)
		goto out_tcp;
	return 0;

out_tcp:
	dp_tcp_fini(&w->tcp);
out_ingest:
	dp_ingest_fini(w);
	return rc;
}

void
dp_worker_close(struct dp_worker *w)
{
	if (w->dp->config.backend == DP_BACKEND_KERNEL) {
		dp_kernel_worker_close(w);
		return;
	}
	rte_pktmbuf_free_bulk(w->tx, w->tx_count); /* What the device never took. */
	w->tx_count = 0;
	dp_net_fini(w);
	dp_tcp_fini(&w->tcp);
	dp_ingest_fini(w);
}

uint32_t
dp_worker_poll(struct dp_worker *w, uint64_t now_tsc)
{
	struct rte_mbuf *rx[DP_RX_BURST];
	uint64_t now_us = dp_worker_now_us(w, now_tsc);
	uint64_t bytes = 0;
	uint16_t count = 0;
	uint32_t work;

	dp_worker_tx_flush(w); /* Room first: what the device takes now frees backlog slots. */
	if (dp_worker_tx_room(w) >= DP_TX_RX_HEADROOM)
		count = rte_eth_rx_burst(w->port_id, w->queue_id, rx, DP_RX_BURST);
	else
		dp_count(w, DP_RX_PAUSED, 1);

	/* Full bursts in a row: the queue holds more than we take; credits shrink. */
	w->rx_full_streak = count == DP_RX_BURST ? w->rx_full_streak + 1 : 0;
	for (uint16_t i = 0; i < count; i++) {
		bytes += rx[i]->pkt_len;
		if (i + 1 < count)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		dp_net_input(w, rx[i], now_tsc);
	}
	/* Frames held for the burst's MD5 pass point into these mbufs: before the free. */
	dp_ingest_burst_end(w, now_tsc);
	dp_tcp_burst_end(&w->tcp, now_us);
	dp_net_burst_end(w);
	assert(w->done_count <= count);
	rte_pktmbuf_free_bulk(w->done, w->done_count);
	w->done_count = 0;
	work = count + dp_ingest_poll(w, now_tsc);
	/*
	 * TCP timers and connections ingest paused: they may hand frames over
	 * (from their receive buffers), so ingest's burst end follows, then
	 * the answers and ACKs owed go out.
	 */
	work += dp_tcp_poll(&w->tcp, now_us);
	dp_ingest_burst_end(w, now_tsc);
	dp_tcp_burst_end(&w->tcp, now_us);
	dp_worker_tx_flush(w);
	dp_count(w, DP_RX_PACKETS, count);
	dp_count(w, DP_RX_BYTES, bytes);
	dp_count(w, DP_POLLS, 1);
	if (work != 0)
		dp_count(w, DP_POLLS_BUSY, 1);
	return work;
}

/*
 * Sleeps up to `us` microseconds, woken early when the log posts a completion
 * (the producer's nap eventfd, which the log signals only during a nap: no
 * eventfd write per window while the worker polls), so an ACK never waits for
 * the nap. No nap when completions are already waiting.
 */
static void
dp_worker_nap(struct dp_worker *w, uint64_t us)
{
	struct pollfd pfd = { .fd = w->ingest.completion_fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000u),
			       .tv_nsec = (long)(us % 1000000u) * 1000 };

	if (pfd.fd < 0) {
		nanosleep(&ts, NULL);
		return;
	}
	if (!log_producer_nap_begin(w->ingest.producer))
		return;
	ppoll(&pfd, 1, &ts, NULL);
	log_producer_nap_end(w->ingest.producer);
}

/*
 * Idle back-off: after idle_polls empty passes the worker naps, and naps again
 * after every further empty pass until work comes (a poll between naps costs
 * far less than a spin). Batches in flight do not keep it awake (their
 * completions wake it), nor do open batches: it naps until the oldest one is
 * due (batch_age_us), so at moderate load it is not charged a whole CPU for
 * spinning between frames. A packet waits in the RX ring at most
 * idle_sleep_us (plus timer slack): the devices here have no RX interrupts
 * (DPDK 22.11's af_xdp and memif PMDs implement none). Production polls flat
 * out: idle_polls = 0.
 */
static void
dp_worker_idle(struct dp_worker *w)
{
	struct dp *dp = w->dp;
	const struct dp_ingest *ing = &w->ingest;
	uint64_t us = dp->config.idle_sleep_us;
	uint64_t deadline;
	uint64_t now;

	if (dp->config.idle_polls == 0 || ++w->idle_polls < dp->config.idle_polls)
		return;
	w->idle_polls = dp->config.idle_polls; /* Stays sleepy until a pass finds work. */
	if (ing->retry_count != 0 || ing->failed_count != 0 || !dp_tcp_is_idle(&w->tcp))
		return;
	deadline = dp_stage_deadline(w);
	if (deadline != UINT64_MAX) {
		now = rte_rdtsc();
		if (deadline <= now + w->tsc_per_us)
			return;
		us = RTE_MIN(us, (deadline - now) / w->tsc_per_us);
	}
	if (us == 0)
		return;
	/* Offline while asleep: a route publisher must not wait for us. */
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	dp_worker_nap(w, us);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	dp_count(w, DP_IDLE_SLEEPS, 1);
}

/*
 * A flush request (dp_flush_staged): submit every open staging batch; done
 * once nothing waits in the retry list either (all handed to the log).
 */
void
dp_worker_flush_check(struct dp_worker *w)
{
	uint64_t epoch = atomic_load_explicit(&w->dp->flush_epoch, memory_order_acquire);

	if (atomic_load_explicit(&w->flush_done, memory_order_relaxed) == epoch)
		return;
	dp_stage_flush(w, rte_rdtsc(), true);
	if (w->ingest.retry_count == 0)
		atomic_store_explicit(&w->flush_done, epoch, memory_order_release);
}

int
dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	struct dp *dp = w->dp;

	assert(w->lcore_id == rte_lcore_id());
	rte_rcu_qsbr_thread_register(dp->qsbr, w->index);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	/* Relaxed: the flag carries no data; dp_stop() joins the lcore afterwards. */
	while (!atomic_load_explicit(&dp->stop, memory_order_relaxed)) {
		if (dp_worker_poll(w, rte_rdtsc()) != 0)
			w->idle_polls = 0;
		else
			dp_worker_idle(w);
		dp_worker_flush_check(w);
		rte_rcu_qsbr_quiescent(dp->qsbr, w->index);
	}
	w->unanswered_at_stop = dp_ingest_drain(w);
	dp_worker_tx_flush(w);
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	rte_rcu_qsbr_thread_unregister(dp->qsbr, w->index);
	return 0;
}
