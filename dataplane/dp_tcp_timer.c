/*
 * dp_tcp_timer.c - what happens with time: retransmission (RFC 6298),
 * delayed ACKs, SYN-ACK retries, the persist probe of a zero window,
 * connections waiting for ingest, and the timeouts that reset a connection
 * (keepalive, idle, a frame left incomplete).
 *
 * dp_tcp_poll() runs at most once per DP_TCP_TIMER_TICK_US: it walks the
 * timer list (connections with a deadline or blocked) and sweeps a few
 * entries of the whole table for keepalive and idle timeouts.
 */
#include <assert.h>

#include "dataplane/dp_tcp_internal.h"

bool
dp_tcp_rate_ok(uint64_t now_us, uint64_t *window_us, uint32_t *count, uint32_t limit)
{
	if (now_us - *window_us >= 1000000u) {
		*window_us = now_us;
		*count = 0;
	}
	if (*count >= limit)
		return false;
	(*count)++;
	return true;
}

void
dp_tcp_rtt_sample(struct dp_tcp_conn *c, uint32_t rtt_us)
{
	uint32_t rto_us;

	if (c->srtt_us == 0) {
		c->srtt_us = rtt_us > 0 ? rtt_us : 1;
		c->rttvar_us = rtt_us / 2;
	} else {
		uint32_t delta = c->srtt_us > rtt_us ? c->srtt_us - rtt_us : rtt_us - c->srtt_us;

		c->rttvar_us = c->rttvar_us - c->rttvar_us / 4 + delta / 4;
		c->srtt_us = c->srtt_us - c->srtt_us / 8 + rtt_us / 8;
	}
	rto_us = c->srtt_us + (4 * c->rttvar_us > 1000 ? 4 * c->rttvar_us : 1000);
	c->rto_ms = rto_us / 1000;
	if (c->rto_ms < DP_TCP_RTO_MIN_MS)
		c->rto_ms = DP_TCP_RTO_MIN_MS;
	if (c->rto_ms > DP_TCP_RTO_MAX_MS)
		c->rto_ms = DP_TCP_RTO_MAX_MS;
}

void
dp_tcp_retransmit(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	dp_tcp_count(tcp, DP_TCP_RETRANSMITS, 1);
	if (c->tx_buf != DP_TCP_NONE && c->tx_len > 0) {
		uint32_t len = c->tx_len < dp_tcp_payload_max(c) ? c->tx_len : dp_tcp_payload_max(c);

		/* A shut window gets a one-byte probe (RFC 9293 3.8.6.1). */
		if (c->snd_wnd == 0)
			len = 1;
		else if (len > c->snd_wnd)
			len = c->snd_wnd;
		dp_tcp_send(tcp, c, DP_TCP_PSH, c->snd_una, dp_tcp_tx_mem(tcp, c), len);
		if (DP_SEQ_LT(c->snd_nxt, c->snd_una + len))
			c->snd_nxt = c->snd_una + len;
		if (DP_SEQ_LT(c->snd_max, c->snd_nxt))
			c->snd_max = c->snd_nxt;
		return;
	}
	if (c->fin_sent && c->snd_una != c->snd_max)
		dp_tcp_send(tcp, c, DP_TCP_FIN, c->snd_una, NULL, 0);
}

/* RTO: back off, go back to the first unacknowledged byte, send one segment. */
static bool
dp_tcp_rto_fire(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (++c->retries > DP_TCP_RETRIES_MAX) {
		dp_tcp_conn_reset(tcp, c, DP_TCP_TIMEOUT_RETRANSMIT);
		return false;
	}
	c->rto_ms = c->rto_ms * 2 > DP_TCP_RTO_MAX_MS ? DP_TCP_RTO_MAX_MS : c->rto_ms * 2;
	c->rto_timed = false; /* Karn: no sample from a retransmitted segment. */
	c->dupacks = 0;
	c->snd_nxt = c->snd_una;
	if (c->fin_sent && c->tx_len > 0)
		c->fin_sent = false; /* It goes again after the data. */
	dp_tcp_retransmit(tcp, c);
	if (c->fin_sent && c->tx_len == 0 && c->snd_nxt == c->snd_una)
		c->snd_nxt = c->snd_una + 1;
	dp_tcp_arm_rto(tcp, c);
	return true;
}

/*
 * A connection paused by ingest: try its buffered frames again. True when something
 * changed (a frame taken, the pause over, the connection gone): a retry that changed
 * nothing is no work, so a worker whose connections only wait for the log (its doorbell
 * wakes a nap) or for the peer's ACKs may nap like an idle one instead of spinning.
 */
static bool
dp_tcp_unblock(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t gen = c->gen;
	uint32_t head = c->rx_head;

	if (c->rx_buf == DP_TCP_NONE || c->rx_head == c->rx_tail) {
		/* Nothing buffered: it paused on a frame it had not buffered. */
		if (!tcp->ops.can_take(tcp->ctx) || !dp_tcp_tx_room(tcp, c))
			return false;
		c->blocked = false;
		tcp->blocked_count--;
	} else {
		dp_tcp_rx_split(tcp, c);
		if (c->state == DP_TCP_CLOSED || c->gen != gen)
			return true;
		if (c->blocked)
			return c->rx_head != head;
	}
	c->ack_now = true; /* The window reopened: say so. */
	dp_tcp_touch(tcp, c);
	return true;
}

/* The connection's deadlines. Returns 1 when it did something. */
static uint32_t
dp_tcp_conn_timers(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint64_t now = tcp->now_us;
	uint32_t work = 0;

	if (c->state == DP_TCP_SYN_RECEIVED) {
		if (c->close_at_us > now)
			return 0;
		if (c->retries++ >= DP_TCP_SYNACK_RETRIES) {
			dp_tcp_conn_free(tcp, c);
			return 1;
		}
		dp_tcp_send_synack(tcp, c);
		c->close_at_us = now + ((uint64_t)DP_TCP_RTO_INIT_MS * 1000u << c->retries);
		return 1;
	}
	if (c->rto_at_us != 0 && c->rto_at_us <= now) {
		if (!dp_tcp_rto_fire(tcp, c))
			return 1;
		work = 1;
	}
	if (c->delack_at_us != 0 && c->delack_at_us <= now) {
		dp_tcp_send_ack(tcp, c);
		work = 1;
	}
	if (c->partial_since_us != 0 && !c->blocked &&
	    now - c->partial_since_us >= (uint64_t)tcp->config.partial_frame_ms * 1000u) {
		dp_tcp_conn_reset(tcp, c, DP_TCP_TIMEOUT_PARTIAL);
		return 1;
	}
	if (c->blocked && dp_tcp_unblock(tcp, c))
		work = 1;
	if (c->state != DP_TCP_CLOSED)
		dp_tcp_timer_update(tcp, c);
	return work;
}

/* Keepalive and idle timeouts, a few entries of the table per tick. */
static uint32_t
dp_tcp_sweep(struct dp_tcp *tcp)
{
	const struct dp_tcp_config *cfg = &tcp->config;
	uint64_t now = tcp->now_us;
	uint32_t work = 0;

	for (uint32_t n = 0; n < DP_TCP_SWEEP_PER_TICK && n < cfg->conns_max; n++) {
		struct dp_tcp_conn *c = &tcp->conns[tcp->sweep_hand];

		tcp->sweep_hand = tcp->sweep_hand + 1 == cfg->conns_max ? 0 : tcp->sweep_hand + 1;
		if (c->state == DP_TCP_CLOSED || c->state == DP_TCP_SYN_RECEIVED)
			continue;
		if (cfg->idle_timeout_ms != 0 &&
		    now - c->last_data_us >= (uint64_t)cfg->idle_timeout_ms * 1000u) {
			dp_tcp_conn_reset(tcp, c, DP_TCP_TIMEOUT_IDLE);
			work++;
			continue;
		}
		/* With answers outstanding the retransmission timer watches the peer. */
		if (cfg->keepalive_ms == 0 || c->snd_una != c->snd_max ||
		    now - c->last_rx_us < (uint64_t)cfg->keepalive_ms * 1000u +
		    (uint64_t)c->probes * DP_TCP_KEEPALIVE_INTVL_MS * 1000u)
			continue;
		if (c->probes >= DP_TCP_KEEPALIVE_PROBES) {
			dp_tcp_conn_reset(tcp, c, DP_TCP_TIMEOUT_KEEPALIVE);
			work++;
			continue;
		}
		/* An old sequence number: the peer answers with an ACK (RFC 9293 3.8.4). */
		c->probes++;
		dp_tcp_send(tcp, c, 0, c->snd_una - 1, NULL, 0);
		work++;
	}
	return work;
}

uint32_t
dp_tcp_poll(struct dp_tcp *tcp, uint64_t now_us)
{
	uint32_t work = 0;

	tcp->now_us = now_us;
	if (now_us < tcp->next_tick_us)
		return 0;
	tcp->next_tick_us = now_us + DP_TCP_TIMER_TICK_US;
	for (uint32_t id = tcp->timer_head; id != DP_TCP_NONE;) {
		struct dp_tcp_conn *c = &tcp->conns[id];

		id = c->timer_next;
		work += dp_tcp_conn_timers(tcp, c);
	}
	return work + dp_tcp_sweep(tcp);
}
