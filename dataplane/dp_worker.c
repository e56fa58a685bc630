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
 * Idle back-off: after idle_polls empty passes (and with nothing staged) the
 * worker goes RCU-offline and sleeps idle_sleep_us, so publishers never wait
 * for a sleeping worker and a 2-CPU machine stays responsive.
 */
#include <assert.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "dataplane/dp_internal.h"

void
dp_worker_tx_flush(struct dp_worker *w)
{
	uint16_t sent;
	uint64_t bytes = 0;

	if (w->tx_count == 0)
		return;
	for (uint16_t i = 0; i < w->tx_count; i++)
		bytes += w->tx[i]->pkt_len;
	sent = rte_eth_tx_burst(w->port_id, w->queue_id, w->tx, w->tx_count);
	for (uint16_t i = sent; i < w->tx_count; i++) {
		bytes -= w->tx[i]->pkt_len;
		rte_pktmbuf_free(w->tx[i]);
	}
	dp_count(w, DP_TX_PACKETS, sent);
	dp_count(w, DP_TX_BYTES, bytes);
	if (sent < w->tx_count)
		dp_count(w, DP_TX_DROPPED, (uint64_t)(w->tx_count - sent));
	w->tx_count = 0;
}

void
dp_worker_tx(struct dp_worker *w, struct rte_mbuf *m)
{
	if (w->tx_count == DP_TX_BURST)
		dp_worker_tx_flush(w);
	w->tx[w->tx_count++] = m;
}

uint32_t
dp_worker_poll(struct dp_worker *w, uint64_t now_tsc)
{
	struct rte_mbuf *rx[DP_RX_BURST];
	uint16_t count = rte_eth_rx_burst(w->port_id, w->queue_id, rx, DP_RX_BURST);
	uint64_t bytes = 0;
	uint32_t work;

	for (uint16_t i = 0; i < count; i++) {
		bytes += rx[i]->pkt_len;
		if (i + 1 < count)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		dp_net_input(w, rx[i], now_tsc);
	}
	/* Frames held for the burst's MD5 pass point into these mbufs: before the free. */
	dp_ingest_burst_end(w, now_tsc);
	assert(w->done_count <= count);
	rte_pktmbuf_free_bulk(w->done, w->done_count);
	w->done_count = 0;
	work = count + dp_ingest_poll(w, now_tsc);
	dp_worker_tx_flush(w);
	dp_count(w, DP_RX_PACKETS, count);
	dp_count(w, DP_RX_BYTES, bytes);
	dp_count(w, DP_POLLS, 1);
	if (work != 0)
		dp_count(w, DP_POLLS_BUSY, 1);
	return work;
}

static void
dp_worker_idle(struct dp_worker *w)
{
	struct dp *dp = w->dp;

	if (dp->config.idle_polls == 0 || ++w->idle_polls < dp->config.idle_polls)
		return;
	w->idle_polls = 0;
	if (!dp_ingest_is_idle(w))
		return;
	/* Offline while asleep: a route publisher must not wait for us. */
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	usleep(dp->config.idle_sleep_us);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	dp_count(w, DP_IDLE_SLEEPS, 1);
}

/*
 * A flush request (dp_flush_staged): submit every open staging batch; done
 * once nothing waits in the retry list either (all handed to the log).
 */
static void
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
	dp_ingest_drain(w);
	dp_worker_tx_flush(w);
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	rte_rcu_qsbr_thread_unregister(dp->qsbr, w->index);
	return 0;
}
