/*
 * dp_tcp.c - the TCP receiver's connection table, buffers, timers and
 * output (dp_tcp.h has the contract; dp_tcp_input.c has the segment
 * arrival rules of RFC 9293 section 3.10.7).
 *
 * Lists, all intrusive and bounded by the table:
 *   touched: connections with output due at the end of this burst (ACKs,
 *            window updates, answers), emptied by dp_tcp_burst_end();
 *   timer:   connections with a deadline or a reason to be looked at every
 *            tick (retransmission, delayed ACK, SYN-ACK retry, a frame left
 *            incomplete, blocked by ingest); walked once per tick.
 * Keepalive and idle timeouts of every connection are found by a sweep that
 * looks at DP_TCP_SWEEP_PER_TICK entries per tick, so no per-connection
 * timer is armed for them.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashkey.h"
#include "common/probe.h"
#include "dataplane/dp_tcp_internal.h"

void
dp_tcp_config_default(struct dp_tcp_config *config)
{
	memset(config, 0, sizeof(*config));
	config->mss = 1460;
	config->conns_max = 1024;
	config->half_open_max = 256;
	config->per_source_max = 1024;
	config->rx_buffers = 16;
	config->rx_buffer_size = FRAME_SIZE_MAX;
	config->tx_buffers = 64;
	config->tx_buffer_size = 64 * 1024;
	config->idle_timeout_ms = 300000;
	config->keepalive_ms = 60000;
	config->partial_frame_ms = 30000;
}

static const char *const dp_tcp_state_names[DP_TCP_STATE_COUNT] = {
	[DP_TCP_CLOSED] = "CLOSED",
	[DP_TCP_SYN_RECEIVED] = "SYN_RECEIVED",
	[DP_TCP_ESTABLISHED] = "ESTABLISHED",
	[DP_TCP_CLOSE_WAIT] = "CLOSE_WAIT",
	[DP_TCP_LAST_ACK] = "LAST_ACK",
};

const char *
dp_tcp_state_name(enum dp_tcp_state state)
{
	return state < DP_TCP_STATE_COUNT ? dp_tcp_state_names[state] : "?";
}

/* ---- Memory ---------------------------------------------------------------- */

static uint32_t
dp_tcp_pow2(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static uint32_t
dp_tcp_table_size(const struct dp_tcp_config *c)
{
	return dp_tcp_pow2(2 * c->conns_max);
}

size_t
dp_tcp_memory(const struct dp_tcp_config *c)
{
	size_t table = dp_tcp_table_size(c);

	return (size_t)c->conns_max * (sizeof(struct dp_tcp_conn) + sizeof(uint32_t)) +
	       table * sizeof(uint32_t) + table * sizeof(struct dp_tcp_source) +
	       (size_t)c->rx_buffers * (c->rx_buffer_size + sizeof(uint32_t)) +
	       (size_t)c->tx_buffers * (c->tx_buffer_size + sizeof(uint32_t));
}

static int
dp_tcp_config_check(const struct dp_tcp_config *c)
{
	if (c->conns_max == 0 || c->conns_max > DP_TCP_CONNS_MAX || c->mss < 536 ||
	    c->rx_buffers == 0 || c->tx_buffers == 0 || c->half_open_max == 0 ||
	    c->per_source_max == 0 || c->rx_buffer_size < 2 * c->mss ||
	    c->rx_buffer_size > DP_TCP_BUFFER_SIZE_MAX ||
	    c->tx_buffer_size < 2 * DP_TCP_ANSWER_MAX ||
	    c->tx_buffer_size > DP_TCP_BUFFER_SIZE_MAX)
		return -EINVAL;
	return 0;
}

int
dp_tcp_init(struct dp_tcp *tcp, const struct dp_tcp_config *config,
	    const struct dp_tcp_ops *ops, void *ctx, uint64_t *counters)
{
	const struct dp_tcp_config *c = config;
	uint32_t table = dp_tcp_table_size(c);

	memset(tcp, 0, sizeof(*tcp));
	if (dp_tcp_config_check(c) != 0)
		return -EINVAL;
	tcp->config = *c;
	tcp->ops = *ops;
	tcp->ctx = ctx;
	tcp->counters = counters;
	tcp->conns = calloc(c->conns_max, sizeof(*tcp->conns));
	tcp->free_list = calloc(c->conns_max, sizeof(uint32_t));
	tcp->table = calloc(table, sizeof(uint32_t));
	tcp->sources = calloc(table, sizeof(*tcp->sources));
	tcp->rx_mem = malloc((size_t)c->rx_buffers * c->rx_buffer_size);
	tcp->rx_free = calloc(c->rx_buffers, sizeof(uint32_t));
	tcp->tx_mem = malloc((size_t)c->tx_buffers * c->tx_buffer_size);
	tcp->tx_free = calloc(c->tx_buffers, sizeof(uint32_t));
	if (tcp->conns == NULL || tcp->free_list == NULL || tcp->table == NULL ||
	    tcp->sources == NULL || tcp->rx_mem == NULL || tcp->rx_free == NULL ||
	    tcp->tx_mem == NULL || tcp->tx_free == NULL) {
		dp_tcp_fini(tcp);
		return -ENOMEM;
	}
	tcp->table_mask = table - 1;
	tcp->sources_mask = table - 1;
	for (uint32_t i = 0; i < c->conns_max; i++) {
		tcp->conns[i].touched_next = DP_TCP_NONE;
		tcp->free_list[i] = c->conns_max - 1 - i;
	}
	tcp->free_count = c->conns_max;
	for (uint32_t i = 0; i < c->rx_buffers; i++)
		tcp->rx_free[i] = i;
	tcp->rx_free_count = c->rx_buffers;
	for (uint32_t i = 0; i < c->tx_buffers; i++)
		tcp->tx_free[i] = i;
	tcp->tx_free_count = c->tx_buffers;
	tcp->touched_head = DP_TCP_NONE;
	tcp->timer_head = DP_TCP_NONE;
	return 0;
}

void
dp_tcp_fini(struct dp_tcp *tcp)
{
	free(tcp->conns);
	free(tcp->free_list);
	free(tcp->table);
	free(tcp->sources);
	free(tcp->rx_mem);
	free(tcp->rx_free);
	free(tcp->tx_mem);
	free(tcp->tx_free);
	memset(tcp, 0, sizeof(*tcp));
}

/* ---- The connection table: (raddr, rport) -> entry, linear probing --------- */

static uint32_t
dp_tcp_home(uint32_t mask, uint32_t addr_be, uint16_t port_be)
{
	uint64_t k = ((uint64_t)addr_be << 16) | port_be;

	return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

struct dp_tcp_conn *
dp_tcp_lookup(struct dp_tcp *tcp, uint32_t addr_be, uint16_t port_be)
{
	for (uint32_t i = dp_tcp_home(tcp->table_mask, addr_be, port_be);;
	     i = (i + 1) & tcp->table_mask) {
		uint32_t e = tcp->table[i];
		struct dp_tcp_conn *c;

		if (e == 0)
			return NULL;
		c = &tcp->conns[e - 1];
		if (c->raddr_be == addr_be && c->rport_be == port_be)
			return c;
	}
}

static uint32_t
dp_tcp_home_of(const void *ctx, uint32_t entry)
{
	const struct dp_tcp *tcp = ctx;
	const struct dp_tcp_conn *c = &tcp->conns[entry - 1];

	return dp_tcp_home(tcp->table_mask, c->raddr_be, c->rport_be);
}

static void
dp_tcp_table_remove(struct dp_tcp *tcp, const struct dp_tcp_conn *c)
{
	uint32_t id = (uint32_t)(c - tcp->conns) + 1;
	uint32_t hole = dp_tcp_home(tcp->table_mask, c->raddr_be, c->rport_be);

	while (tcp->table[hole] != id)
		hole = (hole + 1) & tcp->table_mask;
	probe_unlink_u32(tcp->table, tcp->table_mask, hole, dp_tcp_home_of, tcp);
}

/* The per-source count of `addr_be`'s entry (created at 0), never NULL: sized 2x. */
static struct dp_tcp_source *
dp_tcp_source(struct dp_tcp *tcp, uint32_t addr_be)
{
	uint32_t mask = tcp->sources_mask;
	uint32_t i = (uint32_t)(((uint64_t)addr_be * 0x9E3779B97F4A7C15ull) >> 32) & mask;

	for (;; i = (i + 1) & mask) {
		struct dp_tcp_source *s = &tcp->sources[i];

		if (s->count == 0 || s->addr_be == addr_be) {
			s->addr_be = addr_be;
			return s;
		}
	}
}

static void
dp_tcp_source_put(struct dp_tcp *tcp, uint32_t addr_be)
{
	uint32_t mask = tcp->sources_mask;
	uint32_t hole;
	struct dp_tcp_source *s = dp_tcp_source(tcp, addr_be);

	assert(s->count > 0);
	if (--s->count > 0)
		return;
	hole = (uint32_t)(s - tcp->sources);
	/* An empty entry ends probes: move back the ones whose chain crossed it. */
	for (uint32_t i = (hole + 1) & mask; tcp->sources[i].count != 0; i = (i + 1) & mask) {
		uint32_t home = (uint32_t)(((uint64_t)tcp->sources[i].addr_be *
					    0x9E3779B97F4A7C15ull) >> 32) & mask;

		if (probe_may_fill(hole, i, home, mask)) {
			tcp->sources[hole] = tcp->sources[i];
			hole = i;
		}
	}
	tcp->sources[hole].count = 0;
}

bool
dp_tcp_source_full(struct dp_tcp *tcp, uint32_t addr_be)
{
	return dp_tcp_source(tcp, addr_be)->count >= tcp->config.per_source_max;
}

struct dp_tcp_conn *
dp_tcp_conn_new(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	struct dp_tcp_conn *c;
	uint32_t id;
	uint32_t i;
	uint32_t touched_next;
	bool touched;
	uint32_t gen;

	if (tcp->free_count == 0)
		return NULL;
	id = tcp->free_list[--tcp->free_count];
	c = &tcp->conns[id];
	/* A freed entry may still sit on this burst's touched list: keep its link. */
	touched = c->touched;
	touched_next = c->touched_next;
	gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->touched = touched;
	c->touched_next = touched_next;
	c->gen = gen;
	c->raddr_be = seg->raddr_be;
	c->rport_be = seg->rport_be;
	memcpy(c->mac, seg->mac, sizeof(c->mac));
	c->rx_buf = DP_TCP_NONE;
	c->tx_buf = DP_TCP_NONE;
	c->rto_ms = DP_TCP_RTO_INIT_MS;
	c->last_rx_us = tcp->now_us;
	c->last_data_us = tcp->now_us;
	i = dp_tcp_home(tcp->table_mask, c->raddr_be, c->rport_be);
	while (tcp->table[i] != 0)
		i = (i + 1) & tcp->table_mask;
	tcp->table[i] = id + 1;
	dp_tcp_source(tcp, c->raddr_be)->count++;
	return c;
}

/* ---- Timer and touched lists ---------------------------------------------- */

static bool
dp_tcp_wants_timer(const struct dp_tcp_conn *c)
{
	return c->state != DP_TCP_CLOSED &&
	       (c->rto_at_us != 0 || c->delack_at_us != 0 || c->close_at_us != 0 ||
		c->partial_since_us != 0 || c->blocked);
}

void
dp_tcp_timer_update(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t id = (uint32_t)(c - tcp->conns);
	bool want = dp_tcp_wants_timer(c);

	if (want == c->timed)
		return;
	if (want) {
		c->timer_prev = DP_TCP_NONE;
		c->timer_next = tcp->timer_head;
		if (tcp->timer_head != DP_TCP_NONE)
			tcp->conns[tcp->timer_head].timer_prev = id;
		tcp->timer_head = id;
	} else {
		if (c->timer_prev != DP_TCP_NONE)
			tcp->conns[c->timer_prev].timer_next = c->timer_next;
		else
			tcp->timer_head = c->timer_next;
		if (c->timer_next != DP_TCP_NONE)
			tcp->conns[c->timer_next].timer_prev = c->timer_prev;
	}
	c->timed = want;
}

void
dp_tcp_touch(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->touched)
		return;
	c->touched = true;
	c->touched_next = tcp->touched_head;
	tcp->touched_head = (uint32_t)(c - tcp->conns);
}

/* ---- Buffers --------------------------------------------------------------- */

uint8_t *
dp_tcp_rx_mem(struct dp_tcp *tcp, const struct dp_tcp_conn *c)
{
	assert(c->rx_buf != DP_TCP_NONE);
	return tcp->rx_mem + (size_t)c->rx_buf * tcp->config.rx_buffer_size;
}

uint8_t *
dp_tcp_tx_mem(struct dp_tcp *tcp, const struct dp_tcp_conn *c)
{
	assert(c->tx_buf != DP_TCP_NONE);
	return tcp->tx_mem + (size_t)c->tx_buf * tcp->config.tx_buffer_size;
}

bool
dp_tcp_rx_get(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->rx_buf != DP_TCP_NONE)
		return true;
	if (tcp->rx_free_count == 0)
		return false;
	c->rx_buf = tcp->rx_free[--tcp->rx_free_count];
	c->rx_head = 0;
	c->rx_tail = 0;
	return true;
}

/* Frames handed over from this buffer are still held by ingest. */
bool
dp_tcp_rx_held(const struct dp_tcp *tcp, const struct dp_tcp_conn *c)
{
	return c->rx_buf != DP_TCP_NONE && c->rx_held_epoch == tcp->hold_epoch;
}

/* Ingest processes every frame it holds: no buffer is pointed into after this. */
void
dp_tcp_release_held(struct dp_tcp *tcp)
{
	tcp->ops.held_release(tcp->ctx);
	tcp->hold_epoch++;
}

/* Gives the receive buffer back once nothing is in it and nothing points into it. */
void
dp_tcp_rx_maybe_put(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->rx_buf == DP_TCP_NONE || c->rx_head != c->rx_tail || c->ooo_count != 0 ||
	    dp_tcp_rx_held(tcp, c))
		return;
	tcp->rx_free[tcp->rx_free_count++] = c->rx_buf;
	c->rx_buf = DP_TCP_NONE;
	c->rx_head = 0;
	c->rx_tail = 0;
}

/*
 * Moves the unconsumed and out-of-order bytes to the buffer's start, so
 * rx_head is 0 (frames held in it are processed first).
 */
void
dp_tcp_rx_compact(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t end = c->rx_tail;
	uint8_t *buf;

	if (c->rx_buf == DP_TCP_NONE || c->rx_head == 0)
		return;
	if (dp_tcp_rx_held(tcp, c))
		dp_tcp_release_held(tcp);
	for (uint32_t i = 0; i < c->ooo_count; i++)
		end = c->rx_tail + (c->ooo[i].end - c->rcv_nxt) > end ?
		      c->rx_tail + (c->ooo[i].end - c->rcv_nxt) : end;
	buf = dp_tcp_rx_mem(tcp, c);
	memmove(buf, buf + c->rx_head, end - c->rx_head);
	c->rx_tail -= c->rx_head;
	c->rx_head = 0;
}

bool
dp_tcp_tx_get(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->tx_buf != DP_TCP_NONE)
		return true;
	if (tcp->tx_free_count == 0)
		return false;
	c->tx_buf = tcp->tx_free[--tcp->tx_free_count];
	c->tx_len = 0;
	return true;
}

void
dp_tcp_tx_maybe_put(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->tx_buf == DP_TCP_NONE || c->tx_len != 0 || c->answers_due != 0)
		return;
	tcp->tx_free[tcp->tx_free_count++] = c->tx_buf;
	c->tx_buf = DP_TCP_NONE;
}

/* Room for one more frame's answer, counting the answers still owed. */
bool
dp_tcp_tx_room(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (!dp_tcp_tx_get(tcp, c))
		return false;
	return c->tx_len + (uint64_t)(c->answers_due + 1) * DP_TCP_ANSWER_MAX <=
	       tcp->config.tx_buffer_size;
}

/* ---- Closing --------------------------------------------------------------- */

void
dp_tcp_conn_free(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t id = (uint32_t)(c - tcp->conns);

	assert(c->state != DP_TCP_CLOSED);
	if (dp_tcp_rx_held(tcp, c))
		dp_tcp_release_held(tcp);
	if (c->state == DP_TCP_SYN_RECEIVED) {
		tcp->half_open--;
	} else {
		tcp->established--;
		dp_tcp_count(tcp, DP_TCP_CONNS_CLOSED, 1);
	}
	if (c->blocked)
		tcp->blocked_count--;
	c->blocked = false;
	c->state = DP_TCP_CLOSED;
	c->rto_at_us = 0;
	c->delack_at_us = 0;
	c->close_at_us = 0;
	c->partial_since_us = 0;
	dp_tcp_timer_update(tcp, c);
	if (c->rx_buf != DP_TCP_NONE)
		tcp->rx_free[tcp->rx_free_count++] = c->rx_buf;
	if (c->tx_buf != DP_TCP_NONE)
		tcp->tx_free[tcp->tx_free_count++] = c->tx_buf;
	c->rx_buf = DP_TCP_NONE;
	c->tx_buf = DP_TCP_NONE;
	c->answers_due = 0;
	dp_tcp_table_remove(tcp, c);
	dp_tcp_source_put(tcp, c->raddr_be);
	tcp->free_list[tcp->free_count++] = id;
}

/* Abort: RST to the peer (<SEQ=SND.NXT><CTL=RST>), then forget the connection. */
void
dp_tcp_conn_reset(struct dp_tcp *tcp, struct dp_tcp_conn *c, enum dp_counter why)
{
	struct dp_tcp_out out = {
		.mac = c->mac,
		.raddr_be = c->raddr_be,
		.rport_be = c->rport_be,
		.lport_be = tcp->config.local_port_be,
		.seq = c->snd_nxt,
		.flags = DP_TCP_RST,
	};

	dp_tcp_count(tcp, why, 1);
	dp_tcp_count(tcp, DP_TCP_RESETS_SENT, 1);
	dp_tcp_emit(tcp, &out);
	dp_tcp_conn_free(tcp, c);
}

/* ---- Answers --------------------------------------------------------------- */

static struct dp_tcp_conn *
dp_tcp_conn_of(struct dp_tcp *tcp, uint32_t conn, uint32_t gen)
{
	struct dp_tcp_conn *c;

	if (conn >= tcp->config.conns_max)
		return NULL;
	c = &tcp->conns[conn];
	if (c->gen != gen || c->state == DP_TCP_CLOSED || c->state == DP_TCP_SYN_RECEIVED)
		return NULL;
	return c;
}

int
dp_tcp_answer(struct dp_tcp *tcp, uint32_t conn, uint32_t gen, const uint8_t *bytes,
	      uint32_t size)
{
	struct dp_tcp_conn *c = dp_tcp_conn_of(tcp, conn, gen);

	if (c == NULL || c->answers_due == 0) {
		dp_tcp_count(tcp, DP_TCP_ANSWERS_ORPHANED, 1);
		return -ESTALE;
	}
	/*
	 * dp_tcp_tx_room() reserved DP_TCP_ANSWER_MAX for it when the frame was
	 * taken; a larger answer (every run of a big frame) goes only where the
	 * buffer has room beyond the other answers' reservations.
	 */
	assert(c->tx_buf != DP_TCP_NONE);
	if (size > DP_TCP_ANSWER_MAX &&
	    c->tx_len + size + (uint64_t)(c->answers_due - 1) * DP_TCP_ANSWER_MAX >
	    tcp->config.tx_buffer_size)
		return -ENOSPC;
	assert(c->tx_len + size <= tcp->config.tx_buffer_size);
	memcpy(dp_tcp_tx_mem(tcp, c) + c->tx_len, bytes, size);
	c->tx_len += size;
	c->answers_due--;
	dp_tcp_touch(tcp, c);
	return 0;
}

void
dp_tcp_unanswered(struct dp_tcp *tcp, uint32_t conn, uint32_t gen)
{
	struct dp_tcp_conn *c = dp_tcp_conn_of(tcp, conn, gen);

	if (c == NULL || c->answers_due == 0)
		return;
	c->answers_due--;
	dp_tcp_touch(tcp, c);
}

/* ---- Keyed hashes: ISNs (RFC 6528) and SYN cookies (RFC 4987) -------------- */

uint32_t
dp_tcp_keyed_hash(const struct dp_tcp *tcp, uint32_t raddr_be, uint16_t rport_be,
		  uint32_t extra1, uint32_t extra2)
{
	uint8_t msg[16 + 4 + 2 + 4 + 2 + 8];
	uint8_t digest[16];
	uint32_t h;
	size_t o = 0;

	memcpy(msg + o, tcp->config.secret, 16), o += 16;
	memcpy(msg + o, &raddr_be, 4), o += 4;
	memcpy(msg + o, &rport_be, 2), o += 2;
	memcpy(msg + o, &tcp->config.local_addr_be, 4), o += 4;
	memcpy(msg + o, &tcp->config.local_port_be, 2), o += 2;
	memcpy(msg + o, &extra1, 4), o += 4;
	memcpy(msg + o, &extra2, 4), o += 4;
	hashkey_md5(msg, o, digest);
	memcpy(&h, digest, 4);
	return h;
}

/* ---- Output ---------------------------------------------------------------- */

void
dp_tcp_emit(struct dp_tcp *tcp, const struct dp_tcp_out *out)
{
	if (tcp->ops.send(tcp->ctx, out) == 0)
		dp_tcp_count(tcp, DP_TCP_SEGMENTS_OUT, 1);
}

uint32_t
dp_tcp_now_ms(const struct dp_tcp *tcp)
{
	return (uint32_t)(tcp->now_us / 1000u);
}

/* Free receive space: the window we can honour. */
uint32_t
dp_tcp_rcv_space(const struct dp_tcp *tcp, const struct dp_tcp_conn *c)
{
	if (c->rx_buf == DP_TCP_NONE)
		return c->blocked ? 0 : tcp->config.rx_buffer_size;
	return tcp->config.rx_buffer_size - (c->rx_tail - c->rx_head);
}

static uint16_t
dp_tcp_window_field(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t space = dp_tcp_rcv_space(tcp, c);
	uint32_t field = space >> c->rcv_wscale;

	if (field > 0xFFFF)
		field = 0xFFFF;
	if (field == 0 && !c->zero_window)
		dp_tcp_count(tcp, DP_TCP_ZERO_WINDOWS, 1);
	c->zero_window = field == 0;
	c->rcv_adv = c->rcv_nxt + (field << c->rcv_wscale);
	return (uint16_t)field;
}

/* SACK blocks a segment carries after `before` bytes of other options. */
static uint8_t
dp_tcp_sack_blocks(const struct dp_tcp_conn *c, uint8_t before)
{
	uint8_t blocks = (uint8_t)((DP_TCP_OPTIONS_MAX - before - 2) / 8);

	if (!c->sack_ok)
		return 0;
	return blocks < c->ooo_count ? blocks : c->ooo_count;
}

/* Timestamps and SACK blocks (RFC 7323 appendix A layout: NOPs align them). */
static uint8_t
dp_tcp_options(const struct dp_tcp *tcp, const struct dp_tcp_conn *c, uint8_t *o)
{
	uint8_t n = 0;
	uint32_t v;

	if (c->ts_ok) {
		o[n++] = 1;
		o[n++] = 1;
		o[n++] = 8;
		o[n++] = 10;
		v = htobe32(dp_tcp_now_ms(tcp));
		memcpy(o + n, &v, 4), n += 4;
		v = htobe32(c->ts_recent);
		memcpy(o + n, &v, 4), n += 4;
	}
	if (dp_tcp_sack_blocks(c, n) > 0) {
		uint8_t blocks = dp_tcp_sack_blocks(c, n);

		o[n++] = 1;
		o[n++] = 1;
		o[n++] = 5;
		o[n++] = (uint8_t)(2 + 8 * blocks);
		for (uint8_t i = 0; i < blocks; i++) {
			v = htobe32(c->ooo[i].start);
			memcpy(o + n, &v, 4), n += 4;
			v = htobe32(c->ooo[i].end);
			memcpy(o + n, &v, 4), n += 4;
		}
	}
	assert(n <= DP_TCP_OPTIONS_MAX);
	return n;
}

/* One segment of the connection from sequence `seq`: ACK, window, options. */
void
dp_tcp_send(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint8_t flags, uint32_t seq,
	    const uint8_t *data, uint32_t len)
{
	struct dp_tcp_out out = {
		.mac = c->mac,
		.raddr_be = c->raddr_be,
		.rport_be = c->rport_be,
		.lport_be = tcp->config.local_port_be,
		.seq = seq,
		.ack = c->rcv_nxt,
		.flags = (uint8_t)(flags | DP_TCP_ACK),
		.data = data,
		.len = len,
	};

	out.wnd = dp_tcp_window_field(tcp, c);
	out.options_size = dp_tcp_options(tcp, c, out.options);
	c->last_ack_sent = c->rcv_nxt;
	c->segs_unacked = 0;
	c->delack_at_us = 0;
	c->ack_now = false;
	dp_tcp_emit(tcp, &out);
}

void
dp_tcp_send_ack(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	dp_tcp_send(tcp, c, 0, c->snd_nxt, NULL, 0);
}

/*
 * Room for data after the options, in a segment to this peer: every option
 * dp_tcp_options() writes counts against the peer's MSS, the SACK blocks
 * sent while out-of-order data is kept too, or the packet outgrows the MTU
 * and is lost on the way (every retransmission with it, as long as the hole
 * stays open).
 */
uint32_t
dp_tcp_payload_max(const struct dp_tcp_conn *c)
{
	uint8_t options = c->ts_ok ? 12u : 0u;
	uint8_t blocks = dp_tcp_sack_blocks(c, options);

	return c->mss - options - (blocks > 0 ? 4u + 8u * blocks : 0u);
}

void
dp_tcp_arm_rto(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	c->rto_at_us = tcp->now_us + (uint64_t)c->rto_ms * 1000u;
}

/*
 * Sends what the peer's window allows of the answers not yet sent, then our
 * FIN when it is due. Returns the segments sent.
 */
static uint32_t
dp_tcp_output_data(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t end = c->snd_una + c->tx_len;
	uint32_t sent = 0;

	while (DP_SEQ_LT(c->snd_nxt, end)) {
		uint32_t off = c->snd_nxt - c->snd_una;
		uint32_t wnd_end = c->snd_una + c->snd_wnd;
		uint32_t len = end - c->snd_nxt;

		if (!DP_SEQ_LT(c->snd_nxt, wnd_end))
			break;
		len = len < wnd_end - c->snd_nxt ? len : wnd_end - c->snd_nxt;
		len = len < dp_tcp_payload_max(c) ? len : dp_tcp_payload_max(c);
		if (!c->ts_ok && !c->rto_timed && c->snd_nxt == c->snd_max) {
			c->rto_timed = true;
			c->rtt_seq = c->snd_nxt + len;
			c->rtt_sent_us = tcp->now_us;
		}
		dp_tcp_send(tcp, c, DP_TCP_PSH, c->snd_nxt, dp_tcp_tx_mem(tcp, c) + off, len);
		c->snd_nxt += len;
		if (DP_SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		if (c->rto_at_us == 0)
			dp_tcp_arm_rto(tcp, c);
		sent++;
	}
	if (c->fin_queued && c->snd_nxt == end && !c->fin_sent) {
		dp_tcp_send(tcp, c, DP_TCP_FIN, c->snd_nxt, NULL, 0);
		c->fin_sent = true;
		c->snd_nxt++;
		c->snd_max = c->snd_nxt;
		if (c->rto_at_us == 0)
			dp_tcp_arm_rto(tcp, c);
		sent++;
	}
	/* The peer's window is shut with answers waiting: the persist timer probes it. */
	if (DP_SEQ_LT(c->snd_nxt, end) && c->rto_at_us == 0)
		dp_tcp_arm_rto(tcp, c);
	return sent;
}

/*
 * Should a pure ACK go out now? Out-of-order data, a duplicate, a window
 * that opened by two segments or from zero, or the second full segment.
 */
static bool
dp_tcp_ack_due(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	uint32_t adv = c->rcv_adv - c->rcv_nxt;
	uint32_t space = dp_tcp_rcv_space(tcp, c);

	if (c->ack_now || c->segs_unacked >= 2)
		return true;
	if (DP_SEQ_LT(c->rcv_adv, c->rcv_nxt))
		adv = 0;
	/* The sender has (nearly) used the window up: it waits for us, not 40 ms. */
	if (adv < tcp->config.mss && c->rcv_nxt != c->last_ack_sent)
		return true;
	return space > adv && ((space >> c->rcv_wscale) > (adv >> c->rcv_wscale)) &&
	       (adv == 0 || space - adv >= 2u * tcp->config.mss);
}

/* What a touched connection owes its peer, at the end of a burst or a poll. */
static void
dp_tcp_output(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (c->state == DP_TCP_CLOSED || c->state == DP_TCP_SYN_RECEIVED)
		return;
	dp_tcp_rx_maybe_put(tcp, c);
	dp_tcp_tx_maybe_put(tcp, c);
	/* The peer is done sending; once our answers are written, our FIN follows. */
	if (c->state == DP_TCP_CLOSE_WAIT && c->answers_due == 0 && !c->blocked &&
	    !c->fin_queued) {
		c->fin_queued = true;
		c->state = DP_TCP_LAST_ACK;
	}
	if (c->tx_buf != DP_TCP_NONE || c->fin_queued) {
		if (dp_tcp_output_data(tcp, c) > 0) {
			dp_tcp_timer_update(tcp, c);
			return;
		}
	}
	if (dp_tcp_ack_due(tcp, c)) {
		dp_tcp_send_ack(tcp, c);
	} else if (c->segs_unacked > 0 && c->delack_at_us == 0) {
		c->delack_at_us = tcp->now_us + DP_TCP_DELACK_MS * 1000u;
	}
	dp_tcp_timer_update(tcp, c);
}

void
dp_tcp_burst_end(struct dp_tcp *tcp, uint64_t now_us)
{
	tcp->now_us = now_us;
	/* Ingest has processed every frame it was handed: no buffer is held now. */
	tcp->hold_epoch++;
	while (tcp->touched_head != DP_TCP_NONE) {
		struct dp_tcp_conn *c = &tcp->conns[tcp->touched_head];

		tcp->touched_head = c->touched_next;
		c->touched = false;
		c->touched_next = DP_TCP_NONE;
		dp_tcp_output(tcp, c);
	}
}

bool
dp_tcp_is_idle(const struct dp_tcp *tcp)
{
	/*
	 * Blocked connections do not keep the worker awake: they wait for the log (whose
	 * doorbell ends a nap) or for the peer's ACKs, and the next tick retries them.
	 */
	return tcp->touched_head == DP_TCP_NONE;
}
