/*
 * dp_tcp_input.c - a segment's arrival (RFC 9293 section 3.10.7, with RFC
 * 5961's stricter RST/SYN/ACK checks and RFC 7323's PAWS), the passive
 * open with SYN cookies, and the receive path from bytes to frames.
 *
 * Receive path, per connection:
 *   in order, nothing buffered: whole frames are handed over in place (they
 *     point into the segment's packet buffer until the burst ends); the
 *     tail of a frame that continues goes to a receive buffer;
 *   otherwise: bytes are placed into the receive buffer at their stream
 *     offset (after rx_tail), only into gaps (what arrived first wins), and
 *     out-of-order ranges are kept until the hole before them fills.
 * Bytes are acknowledged only once placed, so a segment that finds no
 * buffer (pool empty) or no room is simply retransmitted by the peer.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "dataplane/dp_tcp_internal.h"
#include "protocol/frame.h"

/* MSS values a SYN cookie can carry (2 bits). */
static const uint16_t dp_tcp_cookie_mss[4] = { 536, 1220, 1440, 1460 };
#define DP_TCP_COOKIE_HASH_MASK 0x01FFFFFFu  /* 25 bits of keyed hash ... */
#define DP_TCP_COOKIE_MSS_SHIFT 25           /* ... 2 bits of MSS index ... */
#define DP_TCP_COOKIE_SLOT_SHIFT 27          /* ... 5 bits of time slot. */
#define DP_TCP_COOKIE_TS_BITS 0x3Fu          /* TSval low bits: wscale (4), SACK (1). */
#define DP_TCP_COOKIE_NO_WSCALE 0xFu

static uint16_t
dp_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
dp_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

bool
dp_tcp_parse_options(const uint8_t *o, uint32_t size, struct dp_tcp_seg *seg)
{
	uint32_t i = 0;

	while (i < size) {
		uint8_t kind = o[i];
		uint8_t len;

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= size)
			return false;
		len = o[i + 1];
		if (len < 2 || i + len > size)
			return false;
		switch (kind) {
		case 2:
			if (len != 4)
				return false;
			seg->has_mss = true;
			seg->opt_mss = dp_be16(o + i + 2);
			break;
		case 3:
			if (len != 3)
				return false;
			seg->has_wscale = true;
			seg->wscale = o[i + 2] > DP_TCP_WSCALE_MAX ? DP_TCP_WSCALE_MAX : o[i + 2];
			break;
		case 4:
			if (len != 2)
				return false;
			seg->sack_permitted = true;
			break;
		case 5:
			if ((len - 2) % 8 != 0)
				return false;
			seg->sack_count = 0;
			for (uint32_t b = 0; b < (uint32_t)(len - 2) / 8 && b < DP_TCP_SACK_BLOCKS_IN;
			     b++) {
				seg->sack[b][0] = dp_be32(o + i + 2 + 8 * b);
				seg->sack[b][1] = dp_be32(o + i + 6 + 8 * b);
				seg->sack_count++;
			}
			break;
		case 8:
			if (len != 10)
				return false;
			seg->has_ts = true;
			seg->tsval = dp_be32(o + i + 2);
			seg->tsecr = dp_be32(o + i + 6);
			break;
		default:
			break; /* Unknown options are skipped by their length. */
		}
		i += len;
	}
	return true;
}

/* ---- Replies without a connection ------------------------------------------ */

/* RST for a segment that belongs to no connection (RFC 9293 3.10.7.1), rate limited. */
static void
dp_tcp_rst_reply(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	struct dp_tcp_out out = {
		.mac = seg->mac,
		.raddr_be = seg->raddr_be,
		.rport_be = seg->rport_be,
		.lport_be = seg->lport_be,
	};

	if (seg->flags & DP_TCP_RST)
		return;
	if (!dp_tcp_rate_ok(tcp->now_us, &tcp->rst_window_us, &tcp->rst_count,
			    DP_TCP_STATELESS_RST_PER_S))
		return;
	if (seg->flags & DP_TCP_ACK) {
		out.seq = seg->ack;
		out.flags = DP_TCP_RST;
	} else {
		out.ack = seg->seq + seg->len + !!(seg->flags & DP_TCP_SYN) +
			  !!(seg->flags & DP_TCP_FIN);
		out.flags = DP_TCP_RST | DP_TCP_ACK;
	}
	dp_tcp_count(tcp, DP_TCP_RESETS_SENT, 1);
	dp_tcp_emit(tcp, &out);
}

struct dp_tcp_synack {
	uint32_t iss;
	uint32_t rcv_nxt;
	uint16_t mss;
	bool wscale;
	bool sack;
	bool ts;
	uint32_t tsval;
	uint32_t tsecr;
};

static void
dp_tcp_synack_emit(struct dp_tcp *tcp, const uint8_t *mac, uint32_t raddr_be, uint16_t rport_be,
		   const struct dp_tcp_synack *p)
{
	uint32_t window = tcp->config.rx_buffer_size;
	struct dp_tcp_out out = {
		.mac = mac,
		.raddr_be = raddr_be,
		.rport_be = rport_be,
		.lport_be = tcp->config.local_port_be,
		.seq = p->iss,
		.ack = p->rcv_nxt,
		.flags = DP_TCP_SYN | DP_TCP_ACK,
		/* A SYN's window is never scaled (RFC 7323 2.2). */
		.wnd = (uint16_t)(window > 0xFFFF ? 0xFFFF : window),
	};
	uint8_t *o = out.options;
	uint8_t n = 0;
	uint32_t v;

	o[n++] = 2;
	o[n++] = 4;
	o[n++] = (uint8_t)(p->mss >> 8);
	o[n++] = (uint8_t)p->mss;
	if (p->wscale) {
		o[n++] = 1;
		o[n++] = 3;
		o[n++] = 3;
		o[n++] = DP_TCP_WSCALE;
	}
	if (p->ts) {
		o[n++] = p->sack ? 4 : 1;
		o[n++] = p->sack ? 2 : 1;
		o[n++] = 8;
		o[n++] = 10;
		v = htobe32(p->tsval);
		memcpy(o + n, &v, 4), n += 4;
		v = htobe32(p->tsecr);
		memcpy(o + n, &v, 4), n += 4;
	} else if (p->sack) {
		o[n++] = 1;
		o[n++] = 1;
		o[n++] = 4;
		o[n++] = 2;
	}
	out.options_size = n;
	dp_tcp_emit(tcp, &out);
}

void
dp_tcp_send_synack(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	struct dp_tcp_synack p = {
		.iss = c->iss,
		.rcv_nxt = c->rcv_nxt,
		.mss = tcp->config.mss,
		.wscale = c->rcv_wscale != 0,
		.sack = c->sack_ok,
		.ts = c->ts_ok,
		.tsval = dp_tcp_now_ms(tcp),
		.tsecr = c->ts_recent,
	};

	dp_tcp_synack_emit(tcp, c->mac, c->raddr_be, c->rport_be, &p);
}

static uint16_t
dp_tcp_peer_mss(const struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	uint16_t mss = seg->has_mss ? seg->opt_mss : 536; /* RFC 9293 3.7.1 default. */

	if (mss > tcp->config.mss)
		mss = tcp->config.mss;
	return mss < 88 ? 88 : mss; /* Room for options and a little data. */
}

static uint32_t
dp_tcp_cookie_slot(const struct dp_tcp *tcp)
{
	return (uint32_t)(tcp->now_us / 1000u / DP_TCP_COOKIE_PERIOD_MS);
}

static uint32_t
dp_tcp_cookie_hash(const struct dp_tcp *tcp, const struct dp_tcp_seg *seg, uint32_t irs,
		   uint32_t slot, uint32_t mss_index)
{
	return dp_tcp_keyed_hash(tcp, seg->raddr_be, seg->rport_be, irs,
				 (slot << 2) | mss_index) & DP_TCP_COOKIE_HASH_MASK;
}

/* A SYN answered without state (RFC 4987): everything needed is in the ISN and TSval. */
static void
dp_tcp_syn_cookie(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	uint16_t mss = dp_tcp_peer_mss(tcp, seg);
	uint32_t mss_index = 0;
	uint32_t slot = dp_tcp_cookie_slot(tcp);
	struct dp_tcp_synack p = {
		.rcv_nxt = seg->seq + 1,
		.ts = seg->has_ts,
		.tsecr = seg->tsval,
	};

	for (uint32_t i = 0; i < 4; i++)
		if (dp_tcp_cookie_mss[i] <= mss)
			mss_index = i;
	p.mss = dp_tcp_cookie_mss[mss_index];
	p.iss = ((slot & 0x1Fu) << DP_TCP_COOKIE_SLOT_SHIFT) |
		(mss_index << DP_TCP_COOKIE_MSS_SHIFT) |
		dp_tcp_cookie_hash(tcp, seg, seg->seq, slot, mss_index);
	/* Window scale and SACK survive only in the timestamp (as in Linux). */
	if (seg->has_ts) {
		p.wscale = seg->has_wscale;
		p.sack = seg->sack_permitted;
		p.tsval = (dp_tcp_now_ms(tcp) & ~DP_TCP_COOKIE_TS_BITS) |
			  (seg->has_wscale ? seg->wscale : DP_TCP_COOKIE_NO_WSCALE) |
			  (seg->sack_permitted ? 0x10u : 0u);
	}
	dp_tcp_count(tcp, DP_TCP_SYN_COOKIES_SENT, 1);
	dp_tcp_synack_emit(tcp, seg->mac, seg->raddr_be, seg->rport_be, &p);
}

static void
dp_tcp_negotiate(struct dp_tcp_conn *c, uint16_t mss, bool wscale, uint8_t peer_shift,
		 bool sack, bool ts)
{
	c->mss = mss;
	c->snd_wscale = wscale ? peer_shift : 0;
	c->rcv_wscale = wscale ? DP_TCP_WSCALE : 0;
	c->sack_ok = sack;
	c->ts_ok = ts;
}

/* The ACK of a SYN cookie: a connection opened straight to ESTABLISHED, or NULL. */
static struct dp_tcp_conn *
dp_tcp_cookie_open(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	uint32_t cookie = seg->ack - 1;
	uint32_t irs = seg->seq - 1;
	uint32_t mss_index = (cookie >> DP_TCP_COOKIE_MSS_SHIFT) & 3u;
	uint32_t now_slot = dp_tcp_cookie_slot(tcp);
	bool valid = false;
	struct dp_tcp_conn *c;

	for (uint32_t age = 0; age < 2 && !valid; age++) {
		uint32_t slot = now_slot - age;

		valid = (slot & 0x1Fu) == cookie >> DP_TCP_COOKIE_SLOT_SHIFT &&
			dp_tcp_cookie_hash(tcp, seg, irs, slot, mss_index) ==
			(cookie & DP_TCP_COOKIE_HASH_MASK);
	}
	if (!valid)
		return NULL;
	if (dp_tcp_source_full(tcp, seg->raddr_be)) {
		dp_tcp_count(tcp, DP_TCP_REFUSED_PER_SOURCE, 1);
		return NULL;
	}
	c = dp_tcp_conn_new(tcp, seg);
	if (c == NULL) {
		dp_tcp_count(tcp, DP_TCP_REFUSED_TABLE_FULL, 1);
		return NULL;
	}
	if (seg->has_ts) {
		uint32_t bits = seg->tsecr & DP_TCP_COOKIE_TS_BITS;
		uint32_t shift = bits & DP_TCP_COOKIE_NO_WSCALE;

		dp_tcp_negotiate(c, dp_tcp_cookie_mss[mss_index], shift != DP_TCP_COOKIE_NO_WSCALE,
				 (uint8_t)(shift > DP_TCP_WSCALE_MAX ? DP_TCP_WSCALE_MAX : shift),
				 (bits & 0x10u) != 0, true);
		c->ts_recent = seg->tsval;
	} else {
		dp_tcp_negotiate(c, dp_tcp_cookie_mss[mss_index], false, 0, false, false);
	}
	c->state = DP_TCP_ESTABLISHED;
	c->irs = irs;
	c->rcv_nxt = irs + 1;
	c->rcv_adv = c->rcv_nxt + tcp->config.rx_buffer_size;
	c->iss = cookie;
	c->snd_una = cookie + 1;
	c->snd_nxt = c->snd_una;
	c->snd_max = c->snd_una;
	c->snd_wnd = (uint32_t)seg->wnd << c->snd_wscale;
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = seg->ack;
	tcp->established++;
	dp_tcp_count(tcp, DP_TCP_SYN_COOKIES_OK, 1);
	dp_tcp_count(tcp, DP_TCP_CONNS_OPENED, 1);
	return c;
}

/* A SYN with no connection: a half-open entry, or a cookie when over budget. */
static void
dp_tcp_listen_syn(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	struct dp_tcp_conn *c;

	if (dp_tcp_source_full(tcp, seg->raddr_be)) {
		dp_tcp_count(tcp, DP_TCP_REFUSED_PER_SOURCE, 1);
		dp_tcp_rst_reply(tcp, seg);
		return;
	}
	if (tcp->half_open >= tcp->config.half_open_max || tcp->free_count == 0) {
		dp_tcp_syn_cookie(tcp, seg);
		return;
	}
	c = dp_tcp_conn_new(tcp, seg);
	assert(c != NULL);
	tcp->half_open++;
	c->state = DP_TCP_SYN_RECEIVED;
	dp_tcp_negotiate(c, dp_tcp_peer_mss(tcp, seg), seg->has_wscale, seg->wscale,
			 seg->sack_permitted, seg->has_ts);
	c->ts_recent = seg->tsval;
	c->irs = seg->seq;
	c->rcv_nxt = seg->seq + 1;
	c->rcv_adv = c->rcv_nxt + tcp->config.rx_buffer_size;
	/* RFC 6528: a 4 us clock plus a keyed hash of the connection's addresses. */
	c->iss = dp_tcp_keyed_hash(tcp, seg->raddr_be, seg->rport_be, 0, 0) +
		 (uint32_t)(tcp->now_us / 4u);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->snd_max = c->snd_nxt;
	c->snd_wnd = seg->wnd; /* Unscaled in a SYN. */
	c->max_snd_wnd = c->snd_wnd;
	dp_tcp_send_synack(tcp, c);
	c->close_at_us = tcp->now_us + (uint64_t)DP_TCP_RTO_INIT_MS * 1000u;
	dp_tcp_timer_update(tcp, c);
}

/* ---- Frames out of the byte stream ----------------------------------------- */

/*
 * May ingest take one more frame of this connection? Ingest's room (the
 * log's batches) and ours: room in the send buffer for its answer.
 */
static bool
dp_tcp_take(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (!tcp->ops.can_take(tcp->ctx) || !dp_tcp_tx_room(tcp, c)) {
		if (!c->blocked) {
			c->blocked = true;
			tcp->blocked_count++;
			dp_tcp_count(tcp, DP_TCP_BLOCKED, 1);
		}
		return false;
	}
	if (c->blocked) {
		c->blocked = false;
		tcp->blocked_count--;
	}
	return true;
}

static void
dp_tcp_hand_over(struct dp_tcp *tcp, struct dp_tcp_conn *c, const uint8_t *frame, uint32_t size)
{
	c->answers_due++;
	dp_tcp_count(tcp, DP_TCP_FRAMES_IN, 1);
	tcp->ops.frame(tcp->ctx, (uint32_t)(c - tcp->conns), c->gen, frame, size);
}

/*
 * The next frame in `bytes`: 1 when one is whole (its size in *size_out),
 * 0 when more bytes are needed, -1 when the stream is not framed or the
 * frame cannot fit a receive buffer (the connection was reset).
 */
static int
dp_tcp_next_frame(struct dp_tcp *tcp, struct dp_tcp_conn *c, const uint8_t *bytes,
		  uint32_t avail, uint32_t *size_out)
{
	uint32_t need = 0;
	enum frame_err err = frame_next(bytes, avail, size_out, &need);

	if (err == FRAME_OK)
		return 1;
	if (err != FRAME_ERR_TRUNCATED) {
		dp_tcp_conn_reset(tcp, c, DP_TCP_FRAMING_ERRORS);
		return -1;
	}
	if ((uint64_t)avail + need > tcp->config.rx_buffer_size) {
		dp_tcp_conn_reset(tcp, c, DP_TCP_FRAME_TOO_LARGE);
		return -1;
	}
	return 0;
}

void
dp_tcp_rx_split(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	while (c->rx_head < c->rx_tail) {
		const uint8_t *p = dp_tcp_rx_mem(tcp, c) + c->rx_head;
		uint32_t size = 0;
		int r = dp_tcp_next_frame(tcp, c, p, c->rx_tail - c->rx_head, &size);

		if (r < 0)
			return;
		if (r == 0) {
			if (c->partial_since_us == 0)
				c->partial_since_us = tcp->now_us;
			break;
		}
		if (!dp_tcp_take(tcp, c))
			break;
		c->rx_held_epoch = tcp->hold_epoch;
		c->rx_head += size;
		c->partial_since_us = 0;
		dp_tcp_hand_over(tcp, c, p, size);
	}
	if (c->rx_head == c->rx_tail)
		c->partial_since_us = 0;
	dp_tcp_timer_update(tcp, c);
}

/*
 * Whole frames handed over straight from the segment. Returns the bytes so
 * consumed, or -1 when the connection was reset.
 */
static int64_t
dp_tcp_split_in_place(struct dp_tcp *tcp, struct dp_tcp_conn *c, const uint8_t *data,
		      uint32_t len)
{
	uint32_t pos = 0;

	while (pos < len) {
		uint32_t size = 0;
		int r = dp_tcp_next_frame(tcp, c, data + pos, len - pos, &size);

		if (r < 0)
			return -1;
		if (r == 0 || !dp_tcp_take(tcp, c))
			break;
		dp_tcp_hand_over(tcp, c, data + pos, size);
		pos += size;
	}
	return pos;
}

/* Copies [seq, seq + len) into the buffer except where out-of-order bytes already are. */
static void
dp_tcp_copy_gaps(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint32_t seq, const uint8_t *data,
		 uint32_t len)
{
	uint8_t *base = dp_tcp_rx_mem(tcp, c) + c->rx_tail; /* Where rcv_nxt goes. */
	uint32_t end = seq + len;
	uint32_t pos = seq;

	for (uint32_t i = 0; i < c->ooo_count && DP_SEQ_LT(pos, end); i++) {
		const struct dp_tcp_range *r = &c->ooo[i];

		if (DP_SEQ_LEQ(r->end, pos))
			continue;
		if (DP_SEQ_GEQ(r->start, end))
			break;
		if (DP_SEQ_LT(pos, r->start))
			memcpy(base + (pos - c->rcv_nxt), data + (pos - seq), r->start - pos);
		if (DP_SEQ_GT(r->end, pos)) {
			uint32_t dup_end = DP_SEQ_LT(r->end, end) ? r->end : end;
			uint32_t dup_start = DP_SEQ_GT(r->start, pos) ? r->start : pos;

			dp_tcp_count(tcp, DP_TCP_DUP_BYTES, dup_end - dup_start);
			pos = r->end;
		}
	}
	if (DP_SEQ_LT(pos, end))
		memcpy(base + (pos - c->rcv_nxt), data + (pos - seq), end - pos);
}

/* Adds [start, end) to the sorted out-of-order ranges, merging. false: no range left. */
static bool
dp_tcp_ooo_add(struct dp_tcp_conn *c, uint32_t start, uint32_t end)
{
	struct dp_tcp_range merged = { start, end };
	struct dp_tcp_range keep[DP_TCP_OOO_RANGES + 1];
	uint32_t n = 0;
	bool placed = false;

	for (uint32_t i = 0; i < c->ooo_count; i++) {
		const struct dp_tcp_range *r = &c->ooo[i];

		if (DP_SEQ_LT(r->end, merged.start)) {
			keep[n++] = *r;
		} else if (DP_SEQ_GT(r->start, merged.end)) {
			if (!placed)
				keep[n++] = merged, placed = true;
			keep[n++] = *r;
		} else {
			merged.start = DP_SEQ_LT(r->start, merged.start) ? r->start : merged.start;
			merged.end = DP_SEQ_GT(r->end, merged.end) ? r->end : merged.end;
		}
	}
	if (!placed)
		keep[n++] = merged;
	if (n > DP_TCP_OOO_RANGES)
		return false;
	memcpy(c->ooo, keep, n * sizeof(keep[0]));
	c->ooo_count = (uint8_t)n;
	return true;
}

/* In-order bytes reached out-of-order ranges: take them in. */
static void
dp_tcp_ooo_absorb(struct dp_tcp_conn *c)
{
	uint32_t drop = 0;

	while (drop < c->ooo_count && DP_SEQ_LEQ(c->ooo[drop].start, c->rcv_nxt)) {
		if (DP_SEQ_GT(c->ooo[drop].end, c->rcv_nxt)) {
			c->rx_tail += c->ooo[drop].end - c->rcv_nxt;
			c->rcv_nxt = c->ooo[drop].end;
		}
		drop++;
	}
	if (drop == 0)
		return;
	memmove(c->ooo, c->ooo + drop, (c->ooo_count - drop) * sizeof(c->ooo[0]));
	c->ooo_count = (uint8_t)(c->ooo_count - drop);
}

/* Bytes at `seq` (>= rcv_nxt) into the receive buffer, trimmed to its room. */
static void
dp_tcp_rx_place(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint32_t seq, const uint8_t *data,
		uint32_t len)
{
	uint32_t off = seq - c->rcv_nxt;
	uint32_t space = dp_tcp_rcv_space(tcp, c);

	if (off >= space) {
		dp_tcp_count(tcp, DP_TCP_OOO_DROPPED, 1);
		c->ack_now = true;
		return;
	}
	if (len > space - off)
		len = space - off;
	if (c->rx_tail + off + len > tcp->config.rx_buffer_size)
		dp_tcp_rx_compact(tcp, c);
	if (off > 0) {
		dp_tcp_count(tcp, DP_TCP_OOO_SEGMENTS, 1);
		c->ack_now = true; /* A duplicate ACK with SACK blocks tells the hole. */
		/* Gaps first: the ranges say which bytes arrived before (they win). */
		dp_tcp_copy_gaps(tcp, c, seq, data, len);
		if (!dp_tcp_ooo_add(c, seq, seq + len))
			dp_tcp_count(tcp, DP_TCP_OOO_DROPPED, 1); /* Copied, but not kept. */
		return;
	}
	if (c->ooo_count > 0)
		c->ack_now = true; /* A hole filled: tell the sender at once. */
	dp_tcp_copy_gaps(tcp, c, seq, data, len);
	c->rcv_nxt += len;
	c->rx_tail += len;
	dp_tcp_ooo_absorb(c);
	c->segs_unacked++;
	if (!c->blocked)
		dp_tcp_rx_split(tcp, c);
}

/*
 * New bytes of the connection from `seq` (>= rcv_nxt, inside the window).
 * Returns false when the connection was reset.
 */
static bool
dp_tcp_data(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint32_t seq, const uint8_t *data,
	    uint32_t len)
{
	uint32_t gen = c->gen;

	c->last_data_us = tcp->now_us;
	if (seq == c->rcv_nxt && c->rx_buf == DP_TCP_NONE && !c->blocked) {
		int64_t used = dp_tcp_split_in_place(tcp, c, data, len);

		if (used < 0)
			return false;
		c->rcv_nxt += (uint32_t)used;
		seq += (uint32_t)used;
		data += used;
		len -= (uint32_t)used;
		if (len == 0) {
			c->segs_unacked++;
			return true;
		}
	}
	if (!dp_tcp_rx_get(tcp, c)) {
		dp_tcp_count(tcp, DP_TCP_RX_NO_BUFFER, 1);
		c->ack_now = true;
		return true;
	}
	dp_tcp_rx_place(tcp, c, seq, data, len);
	return c->state != DP_TCP_CLOSED && c->gen == gen;
}

/* ---- Synchronized states ---------------------------------------------------- */

static void
dp_tcp_challenge_ack(struct dp_tcp *tcp, struct dp_tcp_conn *c)
{
	if (!dp_tcp_rate_ok(tcp->now_us, &tcp->challenge_window_us, &tcp->challenge_count,
			    DP_TCP_CHALLENGE_PER_S)) {
		dp_tcp_count(tcp, DP_TCP_CHALLENGE_SUPPRESSED, 1);
		return;
	}
	dp_tcp_count(tcp, DP_TCP_CHALLENGE_ACKS, 1);
	dp_tcp_send_ack(tcp, c);
}

/* RFC 9293's acceptability test against the window we advertised. */
static bool
dp_tcp_acceptable(const struct dp_tcp_conn *c, uint32_t seq, uint32_t seg_len)
{
	uint32_t wnd = DP_SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	uint32_t last = seq + seg_len - 1;

	if (seg_len == 0)
		return wnd == 0 ? seq == c->rcv_nxt :
		       DP_SEQ_GEQ(seq, c->rcv_nxt) && DP_SEQ_LT(seq, c->rcv_nxt + wnd);
	if (wnd == 0)
		return false;
	return (DP_SEQ_GEQ(seq, c->rcv_nxt) && DP_SEQ_LT(seq, c->rcv_nxt + wnd)) ||
	       (DP_SEQ_GEQ(last, c->rcv_nxt) && DP_SEQ_LT(last, c->rcv_nxt + wnd));
}

/* Our data (answers) and FIN acknowledged. Returns false when the connection ended. */
static bool
dp_tcp_ack_advance(struct dp_tcp *tcp, struct dp_tcp_conn *c, const struct dp_tcp_seg *seg)
{
	uint32_t acked = seg->ack - c->snd_una;
	uint32_t data_acked = acked < c->tx_len ? acked : c->tx_len;

	if (data_acked > 0) {
		uint8_t *tx = dp_tcp_tx_mem(tcp, c);

		memmove(tx, tx + data_acked, c->tx_len - data_acked);
		c->tx_len -= data_acked;
	}
	if (c->ts_ok && seg->has_ts && seg->tsecr != 0)
		dp_tcp_rtt_sample(c, (uint32_t)(dp_tcp_now_ms(tcp) - seg->tsecr) * 1000u);
	else if (c->rto_timed && DP_SEQ_GEQ(seg->ack, c->rtt_seq))
		dp_tcp_rtt_sample(c, (uint32_t)(tcp->now_us - c->rtt_sent_us));
	if (c->rto_timed && DP_SEQ_GEQ(seg->ack, c->rtt_seq))
		c->rto_timed = false;
	c->snd_una = seg->ack;
	if (DP_SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	c->dupacks = 0;
	c->retries = 0;
	c->rto_at_us = 0;
	if (c->snd_una != c->snd_max)
		dp_tcp_arm_rto(tcp, c);
	if (c->fin_sent && c->snd_una == c->snd_max && c->state == DP_TCP_LAST_ACK) {
		dp_tcp_conn_free(tcp, c);
		return false;
	}
	dp_tcp_touch(tcp, c);
	return true;
}

/* The ACK field and the window (RFC 9293 3.10.7.4, fifth check). */
static bool
dp_tcp_ack_in(struct dp_tcp *tcp, struct dp_tcp_conn *c, const struct dp_tcp_seg *seg)
{
	uint32_t wnd = (uint32_t)seg->wnd << c->snd_wscale;

	if (DP_SEQ_GT(seg->ack, c->snd_una)) {
		if (!dp_tcp_ack_advance(tcp, c, seg))
			return false;
	} else if (seg->ack == c->snd_una && seg->len == 0 && !(seg->flags & DP_TCP_FIN) &&
		   c->snd_una != c->snd_max && wnd == c->snd_wnd) {
		if (++c->dupacks == 3) {
			dp_tcp_count(tcp, DP_TCP_FAST_RETRANSMITS, 1);
			c->rto_timed = false;
			dp_tcp_retransmit(tcp, c);
		}
	}
	if (DP_SEQ_LT(c->snd_wl1, seg->seq) ||
	    (c->snd_wl1 == seg->seq && DP_SEQ_LEQ(c->snd_wl2, seg->ack))) {
		if (c->snd_wnd == 0 && wnd > 0)
			dp_tcp_touch(tcp, c); /* The window opened: answers may go. */
		c->snd_wnd = wnd;
		c->snd_wl1 = seg->seq;
		c->snd_wl2 = seg->ack;
		if (wnd > c->max_snd_wnd)
			c->max_snd_wnd = wnd;
	}
	return true;
}

static void
dp_tcp_fin_in(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint32_t fin_seq)
{
	if (c->fin_received) {
		c->ack_now = true; /* A retransmitted FIN: our ACK was lost. */
		return;
	}
	/* A FIN beyond a hole is ignored: the peer sends it again after the hole. */
	if (fin_seq != c->rcv_nxt)
		return;
	c->rcv_nxt++;
	c->fin_received = true;
	c->ack_now = true;
	if (c->state == DP_TCP_ESTABLISHED)
		c->state = DP_TCP_CLOSE_WAIT;
	dp_tcp_touch(tcp, c);
}

static void
dp_tcp_synchronized(struct dp_tcp *tcp, struct dp_tcp_conn *c, const struct dp_tcp_seg *seg)
{
	uint8_t flags = seg->flags;
	uint32_t seq = seg->seq;
	const uint8_t *data = seg->data;
	uint32_t len = seg->len;
	bool fin = (flags & DP_TCP_FIN) != 0;
	uint32_t seg_len = len + !!(flags & DP_TCP_SYN) + fin;

	if (c->ts_ok && seg->has_ts && !(flags & DP_TCP_RST) &&
	    DP_SEQ_LT(seg->tsval, c->ts_recent)) {
		dp_tcp_count(tcp, DP_TCP_PAWS_DROPS, 1);
		c->ack_now = true;
		dp_tcp_touch(tcp, c);
		return;
	}
	if (!dp_tcp_acceptable(c, seq, seg_len)) {
		bool probe = seq == c->rcv_nxt && !(flags & (DP_TCP_RST | DP_TCP_SYN));

		if ((flags & (DP_TCP_SYN | DP_TCP_RST)) == DP_TCP_SYN) {
			/* RFC 5961 4.2: any SYN, whatever its sequence number (rate limited). */
			dp_tcp_challenge_ack(tcp, c);
			return;
		}
		if (!probe) {
			if (!(flags & DP_TCP_RST)) {
				dp_tcp_count(tcp, DP_SEQ_LEQ(seq + seg_len, c->rcv_nxt) ?
					     DP_TCP_DUP_BYTES : DP_TCP_OUT_OF_WINDOW,
					     DP_SEQ_LEQ(seq + seg_len, c->rcv_nxt) ? len : 1);
				c->ack_now = true;
				dp_tcp_touch(tcp, c);
			} else {
				/* Blind (RFC 5961 3.2): ignored, never answered, but seen. */
				dp_tcp_count(tcp, DP_TCP_OUT_OF_WINDOW, 1);
			}
			return;
		}
		/* A zero-window probe: its ACK counts, its byte does not. */
		len = 0;
		fin = false;
		c->ack_now = true;
	}
	if (flags & DP_TCP_RST) {
		dp_tcp_count(tcp, DP_TCP_RESETS_RECEIVED, 1);
		if (seq == c->rcv_nxt)
			dp_tcp_conn_free(tcp, c);
		else
			dp_tcp_challenge_ack(tcp, c); /* RFC 5961 3.2: in window, not exact. */
		return;
	}
	if (flags & DP_TCP_SYN) {
		dp_tcp_challenge_ack(tcp, c); /* RFC 5961 4.2 */
		return;
	}
	if (!(flags & DP_TCP_ACK))
		return;
	if (DP_SEQ_GT(seg->ack, c->snd_max)) {
		dp_tcp_count(tcp, DP_TCP_BAD_ACK, 1);
		c->ack_now = true;
		dp_tcp_touch(tcp, c);
		return;
	}
	if (DP_SEQ_LT(seg->ack, c->snd_una - c->max_snd_wnd)) {
		dp_tcp_count(tcp, DP_TCP_BAD_ACK, 1);
		dp_tcp_challenge_ack(tcp, c); /* RFC 5961 5.2 */
		return;
	}
	c->last_rx_us = tcp->now_us;
	c->probes = 0;
	if (c->ts_ok && seg->has_ts && DP_SEQ_LEQ(seq, c->last_ack_sent))
		c->ts_recent = seg->tsval;
	if (!dp_tcp_ack_in(tcp, c, seg))
		return;
	if (len > 0 && !c->fin_received) {
		if (DP_SEQ_LT(seq, c->rcv_nxt)) {
			uint32_t old = c->rcv_nxt - seq;

			dp_tcp_count(tcp, DP_TCP_DUP_BYTES, old < len ? old : len);
			old = old < len ? old : len;
			seq += old;
			data += old;
			len -= old;
		}
		if (len > 0 && DP_SEQ_GT(seq + len, c->rcv_adv)) {
			len = DP_SEQ_GT(c->rcv_adv, seq) ? c->rcv_adv - seq : 0;
			fin = false;
		}
		if (len > 0 && !dp_tcp_data(tcp, c, seq, data, len))
			return;
	}
	if (fin)
		dp_tcp_fin_in(tcp, c, seg->seq + seg->len);
	dp_tcp_touch(tcp, c);
}

static void
dp_tcp_syn_received(struct dp_tcp *tcp, struct dp_tcp_conn *c, const struct dp_tcp_seg *seg)
{
	uint8_t flags = seg->flags;

	if (flags & DP_TCP_RST) {
		dp_tcp_count(tcp, DP_TCP_RESETS_RECEIVED, 1);
		if (seg->seq == c->rcv_nxt)
			dp_tcp_conn_free(tcp, c);
		return;
	}
	if (flags & DP_TCP_SYN) {
		if (seg->seq == c->irs && !(flags & DP_TCP_ACK))
			dp_tcp_send_synack(tcp, c); /* Our SYN-ACK was lost. */
		return;
	}
	if (!(flags & DP_TCP_ACK))
		return;
	if (!DP_SEQ_GT(seg->ack, c->snd_una) || DP_SEQ_GT(seg->ack, c->snd_max)) {
		dp_tcp_rst_reply(tcp, seg);
		return;
	}
	c->state = DP_TCP_ESTABLISHED;
	tcp->half_open--;
	tcp->established++;
	dp_tcp_count(tcp, DP_TCP_CONNS_OPENED, 1);
	c->snd_una = seg->ack;
	c->snd_wnd = (uint32_t)seg->wnd << c->snd_wscale;
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = seg->ack;
	c->close_at_us = 0;
	c->retries = 0;
	dp_tcp_timer_update(tcp, c);
	dp_tcp_synchronized(tcp, c, seg);
}

static void
dp_tcp_no_conn(struct dp_tcp *tcp, const struct dp_tcp_seg *seg)
{
	struct dp_tcp_conn *c;

	if (seg->flags & DP_TCP_RST)
		return;
	if ((seg->flags & (DP_TCP_SYN | DP_TCP_ACK)) == DP_TCP_SYN) {
		dp_tcp_listen_syn(tcp, seg);
		return;
	}
	if ((seg->flags & (DP_TCP_SYN | DP_TCP_ACK)) == DP_TCP_ACK) {
		c = dp_tcp_cookie_open(tcp, seg);
		if (c != NULL) {
			dp_tcp_synchronized(tcp, c, seg);
			return;
		}
	}
	dp_tcp_rst_reply(tcp, seg);
}

void
dp_tcp_input(struct dp_tcp *tcp, const struct dp_tcp_seg *seg, uint64_t now_us)
{
	struct dp_tcp_conn *c;

	tcp->now_us = now_us;
	dp_tcp_count(tcp, DP_TCP_SEGMENTS_IN, 1);
	if (seg->lport_be != tcp->config.local_port_be) {
		dp_tcp_count(tcp, DP_TCP_REFUSED_PORT, 1);
		dp_tcp_rst_reply(tcp, seg);
		return;
	}
	c = dp_tcp_lookup(tcp, seg->raddr_be, seg->rport_be);
	if (c == NULL)
		dp_tcp_no_conn(tcp, seg);
	else if (c->state == DP_TCP_SYN_RECEIVED)
		dp_tcp_syn_received(tcp, c, seg);
	else
		dp_tcp_synchronized(tcp, c, seg);
}
