/*
 * test_dp_tcp.c - the TCP receiver's state machine against crafted
 * segments, on a fake clock, with fake ops (no DPDK, no device): every
 * transition the receiver uses, SYN cookies, RFC 5961, PAWS, out-of-order,
 * overlapping and out-of-window data, zero windows and probes, timers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dataplane/dp_tcp.h"
#include "protocol/frame.h"

#define PEER_ADDR 0x02001264u          /* Any value: the module never routes. */
#define PEER_PORT 0x3412u
#define LOCAL_ADDR 0x010012c6u
#define LOCAL_PORT 0xDA11u             /* 4570 in network order. */
#define PEER_ISN 1000000u
#define SENT_MAX 256
#define FRAMES_MAX 256

static const uint8_t peer_mac[6] = { 2, 0, 0, 0, 0, 2 };

struct sent {
	struct dp_tcp_out out;
	uint8_t data[2048];
};

static struct dp_tcp tcp;
static uint64_t counters[DP_COUNTER_COUNT];
static struct sent sent[SENT_MAX];
static uint32_t sent_count;
static uint8_t frames[FRAMES_MAX][4096];
static uint32_t frame_sizes[FRAMES_MAX];
static uint32_t frame_conn[FRAMES_MAX];
static uint32_t frame_gen[FRAMES_MAX];
static const uint8_t *frame_ptr[FRAMES_MAX];
static uint32_t frame_count;
static bool take = true;
static uint32_t held_releases;
static uint64_t now_us = 1000000;

static int
fake_send(void *ctx, const struct dp_tcp_out *out)
{
	/* Past SENT_MAX the last slot is overwritten: floods are counted, not kept. */
	struct sent *slot = &sent[sent_count < SENT_MAX ? sent_count : SENT_MAX - 1];

	(void)ctx;
	slot->out = *out;
	cr_assert_leq(out->len, sizeof(slot->data));
	if (out->len > 0)
		memcpy(slot->data, out->data, out->len);
	slot->out.data = slot->data;
	sent_count++;
	return 0;
}

static void
fake_frame(void *ctx, uint32_t conn, uint32_t gen, const uint8_t *frame, uint32_t size)
{
	(void)ctx;
	cr_assert_lt(frame_count, FRAMES_MAX);
	cr_assert_leq(size, sizeof(frames[0]));
	memcpy(frames[frame_count], frame, size);
	frame_sizes[frame_count] = size;
	frame_conn[frame_count] = conn;
	frame_gen[frame_count] = gen;
	frame_ptr[frame_count] = frame;
	frame_count++;
}

static bool
fake_can_take(void *ctx)
{
	(void)ctx;
	return take;
}

static void
fake_held_release(void *ctx)
{
	(void)ctx;
	held_releases++;
}

static const struct dp_tcp_ops fake_ops = {
	.send = fake_send,
	.frame = fake_frame,
	.can_take = fake_can_take,
	.held_release = fake_held_release,
};

static void
setup_with(void (*adjust)(struct dp_tcp_config *))
{
	struct dp_tcp_config config;

	dp_tcp_config_default(&config);
	config.local_addr_be = LOCAL_ADDR;
	config.local_port_be = LOCAL_PORT;
	config.rx_buffer_size = 16384;
	config.tx_buffer_size = 8192;
	config.conns_max = 16;
	config.half_open_max = 4;
	config.per_source_max = 8;
	memset(config.secret, 0x5a, sizeof(config.secret));
	if (adjust != NULL)
		adjust(&config);
	memset(counters, 0, sizeof(counters));
	sent_count = 0;
	frame_count = 0;
	take = true;
	held_releases = 0;
	now_us = 1000000;
	cr_assert_eq(dp_tcp_init(&tcp, &config, &fake_ops, NULL, counters), 0);
}

static void
setup(void)
{
	setup_with(NULL);
}

static void
teardown(void)
{
	dp_tcp_fini(&tcp);
}

/* ---- Segment helpers -------------------------------------------------------- */

static struct dp_tcp_seg
seg_make(uint8_t flags, uint32_t seq, uint32_t ack, const void *data, uint32_t len)
{
	struct dp_tcp_seg s = {
		.mac = peer_mac,
		.raddr_be = PEER_ADDR,
		.rport_be = PEER_PORT,
		.lport_be = LOCAL_PORT,
		.seq = seq,
		.ack = ack,
		.wnd = 65535,
		.flags = flags,
		.data = data,
		.len = len,
	};

	return s;
}

/* One segment in, then the burst's end (as a worker does). */
static void
deliver(const struct dp_tcp_seg *s)
{
	dp_tcp_input(&tcp, s, now_us);
	dp_tcp_burst_end(&tcp, now_us);
}

static void
advance_ms(uint32_t ms)
{
	now_us += (uint64_t)ms * 1000u;
	dp_tcp_poll(&tcp, now_us);
	dp_tcp_burst_end(&tcp, now_us);
}

static const struct sent *
last_sent(void)
{
	cr_assert_gt(sent_count, 0, "something was sent");
	return &sent[sent_count <= SENT_MAX ? sent_count - 1 : SENT_MAX - 1];
}

/* The value of option `kind` in a sent segment, or -1 when absent. */
static int64_t
opt_find(const struct dp_tcp_out *o, uint8_t kind, uint32_t *second)
{
	for (uint32_t i = 0; i < o->options_size;) {
		uint8_t k = o->options[i];

		if (k == 0)
			break;
		if (k == 1) {
			i++;
			continue;
		}
		if (k == kind) {
			const uint8_t *v = o->options + i + 2;
			uint8_t len = o->options[i + 1];

			if (len == 4)
				return (v[0] << 8) | v[1];
			if (len == 3)
				return v[0];
			if (len == 2)
				return 0;
			if (second != NULL && len >= 10)
				*second = ((uint32_t)v[4] << 24) | ((uint32_t)v[5] << 16) |
					  ((uint32_t)v[6] << 8) | v[7];
			return ((int64_t)v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3];
		}
		i += o->options[i + 1];
	}
	return -1;
}

static uint32_t our_iss;

/* The peer's SYN with every option: MSS, window scale, SACK-permitted, timestamps. */
static struct dp_tcp_seg
syn_with_options(uint16_t mss, uint8_t wscale, uint32_t tsval)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_SYN, PEER_ISN - 1, 0, NULL, 0);

	s.has_mss = true;
	s.opt_mss = mss;
	s.has_wscale = true;
	s.wscale = wscale;
	s.sack_permitted = true;
	s.has_ts = true;
	s.tsval = tsval;
	return s;
}

/* SYN (MSS 1460, wscale 7, SACK, TS) -> SYN-ACK -> ACK: the connection is up. */
static void
handshake_with(bool options)
{
	struct dp_tcp_seg s = options ? syn_with_options(1460, 7, 100) :
				  seg_make(DP_TCP_SYN, PEER_ISN - 1, 0, NULL, 0);
	const struct sent *synack;

	deliver(&s);
	synack = last_sent();
	cr_assert_eq(synack->out.flags, DP_TCP_SYN | DP_TCP_ACK);
	cr_assert_eq(synack->out.ack, PEER_ISN);
	our_iss = synack->out.seq;
	s = seg_make(DP_TCP_ACK, PEER_ISN, our_iss + 1, NULL, 0);
	if (options) {
		s.has_ts = true;
		s.tsval = 101;
		s.tsecr = (uint32_t)(now_us / 1000);
		s.wnd = 1000; /* x 128 */
	}
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_CONNS_OPENED], 1);
}

static void
handshake(void)
{
	handshake_with(true);
}

/* A data segment from the peer at stream offset `off` (TS option when `ts`). */
static struct dp_tcp_seg
data_seg(uint32_t off, const void *bytes, uint32_t len, bool ts)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_ACK | DP_TCP_PSH, PEER_ISN + off, our_iss + 1,
				       bytes, len);

	s.wnd = 1000;
	if (ts) {
		s.has_ts = true;
		s.tsval = 200 + off;
		s.tsecr = 1;
	}
	return s;
}

/* A RECORDS frame with `n` records of `size` bytes of `fill`; returns its size. */
static uint32_t
make_frame(uint8_t *buf, uint32_t capacity, uint64_t seq, uint32_t n, uint32_t size, uint8_t fill)
{
	struct frame_batch_params p = {
		.producer_id = 7,
		.batch_seq = seq,
		.ack_mode = FRAME_ACK_DURABLE,
		.stream_name = "s",
		.stream_name_size = 1,
	};
	struct frame_writer w;
	uint8_t data[1024];
	int r;

	memset(data, fill, sizeof(data));
	cr_assert_eq(frame_writer_begin(&w, buf, capacity, &p), 0);
	for (uint32_t i = 0; i < n; i++) {
		struct frame_record rec = {
			.key = (const uint8_t *)"k", .key_size = 1, .data = data,
			.data_size = size,
		};

		cr_assert_eq(frame_writer_add(&w, &rec), 0);
	}
	r = frame_writer_finish(&w);
	cr_assert_gt(r, 0);
	return (uint32_t)r;
}

TestSuite(dp_tcp, .init = setup, .fini = teardown);

/* ---- Handshake -------------------------------------------------------------- */

Test(dp_tcp, handshake_negotiates_what_the_peer_offers)
{
	struct dp_tcp_seg s = syn_with_options(1400, 9, 4242);
	const struct sent *synack;
	uint32_t tsecr = 0;

	deliver(&s);
	synack = last_sent();
	cr_assert_eq(synack->out.flags, DP_TCP_SYN | DP_TCP_ACK);
	cr_assert_eq(opt_find(&synack->out, 2, NULL), 1460, "our MSS");
	cr_assert_eq(opt_find(&synack->out, 3, NULL), DP_TCP_WSCALE);
	cr_assert_eq(opt_find(&synack->out, 4, NULL), 0, "SACK permitted");
	cr_assert_neq(opt_find(&synack->out, 8, &tsecr), -1);
	cr_assert_eq(tsecr, 4242, "the peer's TSval echoed");
	cr_assert_eq(tcp.half_open, 1);
	cr_assert_eq(counters[DP_TCP_CONNS_OPENED], 0);
}

Test(dp_tcp, handshake_without_options_offers_none)
{
	const struct sent *synack;

	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR,
				      .rport_be = PEER_PORT, .lport_be = LOCAL_PORT,
				      .seq = 5, .flags = DP_TCP_SYN, .wnd = 1000 });
	synack = last_sent();
	cr_assert_eq(opt_find(&synack->out, 3, NULL), -1, "no window scale");
	cr_assert_eq(opt_find(&synack->out, 4, NULL), -1, "no SACK");
	cr_assert_eq(opt_find(&synack->out, 8, NULL), -1, "no timestamps");
	cr_assert_eq(opt_find(&synack->out, 2, NULL), 1460);
}

Test(dp_tcp, isns_differ_per_peer_and_over_time)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_SYN, 1, 0, NULL, 0);
	uint32_t a;
	uint32_t b;

	deliver(&s);
	a = last_sent()->out.seq;
	s.rport_be = PEER_PORT + 1;
	deliver(&s);
	b = last_sent()->out.seq;
	cr_assert_neq(a, b, "the keyed hash covers the port");
	cr_assert_gt(b - a > 0x80000000u ? a - b : b - a, 1000u, "not a plain counter");
}

Test(dp_tcp, synack_is_retried_then_the_half_open_entry_dropped)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_SYN, 1, 0, NULL, 0);
	uint32_t before;

	deliver(&s);
	before = sent_count;
	advance_ms(1001);
	cr_assert_eq(sent_count, before + 1);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_SYN | DP_TCP_ACK);
	for (uint32_t i = 0; i < 20; i++)
		advance_ms(2000);
	cr_assert_eq(tcp.half_open, 0, "given up after its retries");
	cr_assert_eq(tcp.free_count, 16);
}

Test(dp_tcp, retransmitted_syn_gets_the_same_synack)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_SYN, 77, 0, NULL, 0);
	uint32_t iss;

	deliver(&s);
	iss = last_sent()->out.seq;
	deliver(&s);
	cr_assert_eq(last_sent()->out.seq, iss);
	cr_assert_eq(tcp.half_open, 1, "no second entry");
}

Test(dp_tcp, ack_of_unknown_connection_gets_rst)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_ACK, 10, 12345, NULL, 0);

	deliver(&s);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_RST);
	cr_assert_eq(last_sent()->out.seq, 12345, "RST takes the segment's ACK as its seq");
	cr_assert_eq(counters[DP_TCP_RESETS_SENT], 1);
}

Test(dp_tcp, segment_to_another_port_is_refused)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_SYN, 10, 0, NULL, 0);

	s.lport_be = htons(80);
	deliver(&s);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_RST | DP_TCP_ACK);
	cr_assert_eq(last_sent()->out.ack, 11);
	cr_assert_eq(last_sent()->out.lport_be, htons(80));
	cr_assert_eq(counters[DP_TCP_REFUSED_PORT], 1);
	cr_assert_eq(tcp.half_open, 0);
}

Test(dp_tcp, rst_to_rst_is_never_sent)
{
	struct dp_tcp_seg s = seg_make(DP_TCP_RST, 10, 0, NULL, 0);

	deliver(&s);
	cr_assert_eq(sent_count, 0);
}

/* ---- SYN cookies ---------------------------------------------------------------- */

static void
small_half_open(struct dp_tcp_config *c)
{
	c->half_open_max = 1;
}

Test(dp_tcp, syn_cookies_beyond_the_half_open_budget, .init = NULL)
{
	struct dp_tcp_seg s;
	const struct sent *synack;
	uint32_t tsval;

	setup_with(small_half_open);
	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + 1,
				      .rport_be = 1, .lport_be = LOCAL_PORT, .seq = 1,
				      .flags = DP_TCP_SYN });
	cr_assert_eq(tcp.half_open, 1);
	s = syn_with_options(1460, 6, 555);
	deliver(&s);
	synack = last_sent();
	cr_assert_eq(counters[DP_TCP_SYN_COOKIES_SENT], 1);
	cr_assert_eq(tcp.half_open, 1, "a cookie costs no state");
	cr_assert_eq(tcp.free_count, 15);
	cr_assert_neq(opt_find(&synack->out, 8, NULL), -1);
	tsval = (uint32_t)opt_find(&synack->out, 8, NULL);
	cr_assert_eq(tsval & 0xF, 6, "window scale rides in TSval");
	cr_assert_eq(tsval & 0x10, 0x10, "SACK too");

	s = seg_make(DP_TCP_ACK, PEER_ISN, synack->out.seq + 1, NULL, 0);
	s.has_ts = true;
	s.tsval = 556;
	s.tsecr = tsval;
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_SYN_COOKIES_OK], 1);
	cr_assert_eq(counters[DP_TCP_CONNS_OPENED], 1);
	cr_assert_eq(tcp.free_count, 14);
}

Test(dp_tcp, forged_cookie_is_refused, .init = NULL)
{
	struct dp_tcp_seg s;
	uint32_t iss;

	setup_with(small_half_open);
	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + 1,
				      .rport_be = 1, .lport_be = LOCAL_PORT, .seq = 1,
				      .flags = DP_TCP_SYN });
	s = seg_make(DP_TCP_SYN, PEER_ISN - 1, 0, NULL, 0);
	deliver(&s);
	iss = last_sent()->out.seq;
	/* Another peer's ISN, a wrong hash bit, and the right one but too late. */
	s = seg_make(DP_TCP_ACK, PEER_ISN + 1, iss + 1, NULL, 0);
	deliver(&s);
	s = seg_make(DP_TCP_ACK, PEER_ISN, (iss ^ 1) + 1, NULL, 0);
	deliver(&s);
	now_us += 3ull * DP_TCP_COOKIE_PERIOD_MS * 1000u;
	s = seg_make(DP_TCP_ACK, PEER_ISN, iss + 1, NULL, 0);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_SYN_COOKIES_OK], 0);
	cr_assert_eq(counters[DP_TCP_RESETS_SENT], 3);
	cr_assert_eq(tcp.free_count, 15);
}

Test(dp_tcp, cookie_without_timestamps_loses_wscale_and_sack, .init = NULL)
{
	struct dp_tcp_seg s;
	const struct sent *synack;

	setup_with(small_half_open);
	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + 1,
				      .rport_be = 1, .lport_be = LOCAL_PORT, .seq = 1,
				      .flags = DP_TCP_SYN });
	s = seg_make(DP_TCP_SYN, PEER_ISN - 1, 0, NULL, 0);
	s.has_wscale = true;
	s.wscale = 7;
	s.sack_permitted = true;
	s.has_mss = true;
	s.opt_mss = 1300;
	deliver(&s);
	synack = last_sent();
	cr_assert_eq(opt_find(&synack->out, 3, NULL), -1);
	cr_assert_eq(opt_find(&synack->out, 2, NULL), 1220, "the largest coded MSS <= 1300");
	s = seg_make(DP_TCP_ACK, PEER_ISN, synack->out.seq + 1, NULL, 0);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_SYN_COOKIES_OK], 1);
}

/* ---- Receiving frames --------------------------------------------------------- */

Test(dp_tcp, whole_frames_in_a_segment_are_handed_over_in_place)
{
	uint8_t buf[1024];
	uint32_t a;
	uint32_t b;

	handshake();
	a = make_frame(buf, sizeof(buf), 1, 2, 10, 'a');
	b = make_frame(buf + a, sizeof(buf) - a, 2, 1, 20, 'b');
	{
		struct dp_tcp_seg s = data_seg(0, buf, a + b, true);

		deliver(&s);
	}
	cr_assert_eq(frame_count, 2);
	cr_assert_eq(frame_ptr[0], buf, "no copy: the frame points into the segment");
	cr_assert_eq(frame_ptr[1], buf + a);
	cr_assert_eq(frame_sizes[1], b);
	cr_assert_eq(counters[DP_TCP_FRAMES_IN], 2);
	cr_assert_eq(tcp.rx_free_count, 16, "no receive buffer was needed");
}

Test(dp_tcp, frame_spanning_segments_is_assembled)
{
	uint8_t buf[4096];
	uint32_t size;
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 3, 900, 'x');
	cr_assert_gt(size, 2700);
	s = data_seg(0, buf, 1000, true);
	deliver(&s);
	cr_assert_eq(frame_count, 0);
	s = data_seg(1000, buf + 1000, 1000, true);
	deliver(&s);
	cr_assert_eq(frame_count, 0);
	s = data_seg(2000, buf + 2000, size - 2000, true);
	deliver(&s);
	cr_assert_eq(frame_count, 1);
	cr_assert_eq(frame_sizes[0], size);
	cr_assert_arr_eq(frames[0], buf, size);
	cr_assert_eq(tcp.rx_free_count, 16, "the buffer went back once empty");
}

Test(dp_tcp, delayed_ack_every_second_segment_or_after_the_timer)
{
	uint8_t buf[1024];
	uint32_t size;
	struct dp_tcp_seg s;
	uint32_t before;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	sent_count = 0;
	s = data_seg(0, buf, size, true);
	deliver(&s);
	cr_assert_eq(sent_count, 0, "the first segment's ACK is delayed");
	advance_ms(DP_TCP_DELACK_MS - 1);
	cr_assert_eq(sent_count, 0);
	advance_ms(2);
	cr_assert_eq(sent_count, 1, "the delayed ACK timer fired");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + size);
	before = sent_count;
	size = make_frame(buf, sizeof(buf), 2, 1, 10, 'b');
	s = data_seg(size, buf, size, true);
	deliver(&s);
	s = data_seg(2 * size, buf, size, true);
	deliver(&s);
	cr_assert_eq(sent_count, before + 1, "the second segment is ACKed at once");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + 3 * size);
}

Test(dp_tcp, out_of_order_segment_gets_sack_then_fills)
{
	uint8_t buf[4096];
	uint32_t size;
	struct dp_tcp_seg s;
	uint32_t right = 0;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 3, 900, 'x');
	sent_count = 0;
	s = data_seg(1000, buf + 1000, size - 1000, true);
	deliver(&s);
	cr_assert_eq(sent_count, 1, "a duplicate ACK at once");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN);
	cr_assert_eq(opt_find(&last_sent()->out, 5, &right), PEER_ISN + 1000);
	cr_assert_eq(right, PEER_ISN + size);
	cr_assert_eq(counters[DP_TCP_OOO_SEGMENTS], 1);
	s = data_seg(0, buf, 1000, true);
	deliver(&s);
	cr_assert_eq(frame_count, 1);
	cr_assert_arr_eq(frames[0], buf, size);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + size, "the hole filled: ACK at once");
	cr_assert_eq(opt_find(&last_sent()->out, 5, NULL), -1, "no SACK left");
}

Test(dp_tcp, overlapping_retransmission_first_copy_wins)
{
	uint8_t good[4096];
	uint8_t evil[4096];
	uint32_t size;
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(good, sizeof(good), 1, 3, 900, 'g');
	/* Other bytes exactly where a retransmission overlaps what arrived before. */
	memcpy(evil, good, size);
	memset(evil + 1000, 'E', 500);
	memset(evil + 2500, 'E', size - 2500);
	/* In order: the first 1500 bytes arrive, then [1000, 2000) with other old bytes. */
	s = data_seg(0, good, 1500, true);
	deliver(&s);
	s = data_seg(1000, evil + 1000, 1000, true);
	deliver(&s);
	/* Out of order: [2500, end), then [2200, end) with other bytes where they overlap. */
	s = data_seg(2500, good + 2500, size - 2500, true);
	deliver(&s);
	s = data_seg(2200, evil + 2200, size - 2200, true);
	deliver(&s);
	cr_assert_eq(frame_count, 0, "a hole remains at [2000, 2200)");
	s = data_seg(2000, good + 2000, 200, true);
	deliver(&s);
	cr_assert_eq(frame_count, 1);
	cr_assert_arr_eq(frames[0], good, size, "the bytes that came first are kept");
	cr_assert_gt(counters[DP_TCP_DUP_BYTES], 0);
}

Test(dp_tcp, duplicate_segment_is_acked_not_delivered_twice)
{
	uint8_t buf[1024];
	uint32_t size;
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	s = data_seg(0, buf, size, true);
	deliver(&s);
	sent_count = 0;
	deliver(&s);
	cr_assert_eq(frame_count, 1);
	cr_assert_eq(sent_count, 1, "an immediate ACK tells the sender");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + size);
	cr_assert_eq(counters[DP_TCP_DUP_BYTES], size);
}

Test(dp_tcp, data_beyond_the_window_is_dropped_and_acked)
{
	uint8_t junk[100] = { 0 };
	struct dp_tcp_seg s;

	handshake();
	sent_count = 0;
	s = data_seg(1u << 30, junk, sizeof(junk), true);
	deliver(&s);
	cr_assert_eq(frame_count, 0);
	cr_assert_eq(counters[DP_TCP_OUT_OF_WINDOW], 1);
	cr_assert_eq(sent_count, 1);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN);
}

Test(dp_tcp, not_framed_stream_is_reset)
{
	uint8_t junk[64];
	struct dp_tcp_seg s;

	memset(junk, 'G', sizeof(junk)); /* "GET / HTTP/1.1" is not a frame either. */
	handshake();
	s = data_seg(0, junk, sizeof(junk), true);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_FRAMING_ERRORS], 1);
	cr_assert_eq(last_sent()->out.flags & DP_TCP_RST, DP_TCP_RST);
	cr_assert_eq(tcp.free_count, 16);
	cr_assert_eq(counters[DP_TCP_CONNS_CLOSED], 1);
}

Test(dp_tcp, frame_larger_than_a_buffer_is_reset)
{
	uint8_t buf[4096];
	uint32_t size;
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	(void)size;
	/* Claim 20000 bytes: more than the 16 KiB receive buffer. */
	buf[8] = 0x20;
	buf[9] = 0x4e;
	buf[10] = 0;
	buf[11] = 0;
	s = data_seg(0, buf, 100, true);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_FRAME_TOO_LARGE] + counters[DP_TCP_FRAMING_ERRORS], 1);
	cr_assert_eq(tcp.free_count, 16);
}

/* ---- Flow control ------------------------------------------------------------------ */

static void
big_send_buffer(struct dp_tcp_config *c)
{
	c->tx_buffer_size = 64 * 1024;
}

Test(dp_tcp, back_pressure_closes_the_window_and_probes_are_answered, .init = NULL)
{
	static uint8_t buf[20000];
	uint32_t size = 0;
	uint32_t off = 0;
	struct dp_tcp_seg s;

	setup_with(big_send_buffer);
	handshake();
	while (size + 1100 < sizeof(buf))
		size += make_frame(buf + size, sizeof(buf) - size, off++ + 1, 1, 1000, 'w');
	take = false;
	/* Send until the window is shut. */
	for (off = 0; off + 1000 <= 16384; off += 1000) {
		s = data_seg(off, buf + off, 1000, true);
		deliver(&s);
	}
	s = data_seg(off, buf + off, 16384 - off, true);
	deliver(&s);
	cr_assert_eq(frame_count, 0, "ingest refused: nothing handed over");
	cr_assert_eq(counters[DP_TCP_BLOCKED], 1);
	cr_assert_eq(last_sent()->out.wnd, 0, "the window closed");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + 16384);
	cr_assert_gt(counters[DP_TCP_ZERO_WINDOWS], 0);
	/* A zero-window probe: one byte, answered with the same ACK and window 0. */
	sent_count = 0;
	s = data_seg(16384, buf + 16384, 1, true);
	deliver(&s);
	cr_assert_eq(sent_count, 1);
	cr_assert_eq(last_sent()->out.wnd, 0);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + 16384, "the probe byte is not taken");
	/*
	 * While ingest still refuses, the retries each tick change nothing: no work, and
	 * the worker may nap (it used to spin for the whole stall).
	 */
	for (int i = 0; i < 5; i++) {
		now_us += DP_TCP_TIMER_TICK_US;
		cr_assert_eq(dp_tcp_poll(&tcp, now_us), 0, "a retry that changed nothing is no work");
		dp_tcp_burst_end(&tcp, now_us);
		cr_assert(dp_tcp_is_idle(&tcp), "blocked, waiting: the worker may nap");
	}
	cr_assert_eq(tcp.blocked_count, 1);
	cr_assert_eq(frame_count, 0);
	/* Ingest takes again: frames flow, the window reopens with an update. */
	take = true;
	now_us += DP_TCP_TIMER_TICK_US;
	cr_assert_gt(dp_tcp_poll(&tcp, now_us), 0, "the retry that took frames is work");
	dp_tcp_burst_end(&tcp, now_us);
	cr_assert_gt(frame_count, 10);
	cr_assert_gt(last_sent()->out.wnd, 0, "a window update");
	cr_assert_eq(tcp.blocked_count, 0);
}

Test(dp_tcp, send_buffer_full_of_owed_answers_pauses_the_connection)
{
	uint8_t buf[2048];
	uint32_t size;
	uint32_t owed = 8192 / DP_TCP_ANSWER_MAX; /* The test's 8 KiB send buffer. */
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	for (uint32_t i = 0; i < owed + 2; i++) {
		s = data_seg(i * size, buf, size, true);
		deliver(&s);
	}
	cr_assert_eq(frame_count, owed, "one answer's room is reserved per frame taken");
	cr_assert_eq(counters[DP_TCP_BLOCKED], 1);
	/* Answers written and acknowledged free the room. */
	for (uint32_t i = 0; i < owed; i++)
		cr_assert_eq(dp_tcp_answer(&tcp, frame_conn[i], frame_gen[i], buf, 100), 0);
	dp_tcp_burst_end(&tcp, now_us);
	s = seg_make(DP_TCP_ACK, PEER_ISN + (owed + 2) * size, our_iss + 1 + owed * 100, NULL, 0);
	s.wnd = 1000;
	deliver(&s);
	advance_ms(1);
	cr_assert_eq(frame_count, owed + 2, "the two buffered frames went on");
}

/* ---- Sending answers ---------------------------------------------------------------- */

static void
one_frame(uint32_t *conn, uint32_t *gen, uint32_t *size_out)
{
	uint8_t buf[1024];
	uint32_t size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	struct dp_tcp_seg s = data_seg(0, buf, size, true);

	deliver(&s);
	cr_assert_eq(frame_count, 1);
	*conn = frame_conn[0];
	*gen = frame_gen[0];
	if (size_out != NULL)
		*size_out = size;
}

Test(dp_tcp, answer_carries_the_ack_and_is_retransmitted_on_rto)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[72];
	uint32_t before;

	memset(answer, 'A', sizeof(answer));
	handshake();
	one_frame(&conn, &gen, &size);
	sent_count = 0;
	cr_assert_eq(dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer)), 0);
	dp_tcp_burst_end(&tcp, now_us);
	cr_assert_eq(sent_count, 1, "the answer piggy-backs the ACK (no separate ACK)");
	cr_assert_eq(last_sent()->out.len, sizeof(answer));
	cr_assert_eq(last_sent()->out.seq, our_iss + 1);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + size);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_ACK | DP_TCP_PSH);
	before = sent_count;
	advance_ms(DP_TCP_RTO_INIT_MS - 10);
	cr_assert_eq(sent_count, before, "not before the RTO");
	advance_ms(20);
	cr_assert_eq(sent_count, before + 1);
	cr_assert_eq(last_sent()->out.seq, our_iss + 1);
	cr_assert_arr_eq(last_sent()->data, answer, sizeof(answer));
	cr_assert_eq(counters[DP_TCP_RETRANSMITS], 1);
	/* Backed off: the next one after twice as long. */
	advance_ms(DP_TCP_RTO_INIT_MS + 10);
	cr_assert_eq(counters[DP_TCP_RETRANSMITS], 1);
	advance_ms(DP_TCP_RTO_INIT_MS);
	cr_assert_eq(counters[DP_TCP_RETRANSMITS], 2);
}

/*
 * An answer sent while out-of-order data is kept carries SACK blocks: they
 * count against the peer's MSS like the timestamps, or a full segment is
 * larger than the MTU and never arrives (nor does any retransmission of it).
 */
Test(dp_tcp, segments_with_sack_blocks_stay_within_the_peer_mss)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[DP_TCP_ANSWER_MAX];
	uint8_t later[100];
	struct dp_tcp_seg s;

	memset(answer, 'A', sizeof(answer));
	memset(later, 'z', sizeof(later));
	handshake();
	one_frame(&conn, &gen, &size);
	s = data_seg(size + 500, later, sizeof(later), true); /* A hole before it. */
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_OOO_SEGMENTS], 1);
	sent_count = 0;
	cr_assert_eq(dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer)), 0);
	dp_tcp_burst_end(&tcp, now_us);
	cr_assert_geq(sent_count, 1);
	for (uint32_t i = 0; i < sent_count; i++) {
		cr_assert_gt(opt_find(&sent[i].out, 5, NULL), 0, "SACK blocks on the answer");
		cr_assert_leq(sent[i].out.len + sent[i].out.options_size, 1460,
			      "segment %u: %u bytes of data and %u of options exceed the MSS", i,
			      sent[i].out.len, sent[i].out.options_size);
	}
	sent_count = 0;
	advance_ms(DP_TCP_RTO_INIT_MS + 10); /* The retransmission, too. */
	cr_assert_geq(sent_count, 1);
	cr_assert_leq(sent[0].out.len + sent[0].out.options_size, 1460);
}

Test(dp_tcp, three_duplicate_acks_retransmit_fast)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[1400];
	struct dp_tcp_seg s;

	memset(answer, 'B', sizeof(answer));
	handshake();
	one_frame(&conn, &gen, &size);
	cr_assert_eq(dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer)), 0);
	cr_assert_eq(tcp.conns[conn].answers_due, 0);
	dp_tcp_burst_end(&tcp, now_us);
	s = seg_make(DP_TCP_ACK, PEER_ISN + size, our_iss + 1, NULL, 0);
	s.wnd = 1000;
	s.has_ts = true;
	s.tsval = 900;
	for (int i = 0; i < 3; i++)
		deliver(&s);
	cr_assert_eq(counters[DP_TCP_FAST_RETRANSMITS], 1);
	cr_assert_eq(last_sent()->out.seq, our_iss + 1);
}

Test(dp_tcp, acked_answers_free_the_send_buffer_and_sample_rtt)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[100] = { 0 };
	struct dp_tcp_seg s;
	uint32_t tsval;

	handshake();
	one_frame(&conn, &gen, &size);
	dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer));
	dp_tcp_burst_end(&tcp, now_us);
	tsval = (uint32_t)opt_find(&last_sent()->out, 8, NULL);
	now_us += 5000;
	s = seg_make(DP_TCP_ACK, PEER_ISN + size, our_iss + 1 + sizeof(answer), NULL, 0);
	s.wnd = 1000;
	s.has_ts = true;
	s.tsval = 901;
	s.tsecr = tsval;
	deliver(&s);
	cr_assert_eq(tcp.tx_free_count, 64, "the send buffer went back");
	cr_assert_eq(tcp.conns[conn].srtt_us, 5000, "RTT from the echoed timestamp");
	cr_assert_eq(tcp.conns[conn].rto_at_us, 0, "nothing outstanding: no RTO");
}

Test(dp_tcp, retransmissions_give_up_with_a_reset)
{
	uint32_t conn;
	uint32_t gen;
	uint8_t answer[10] = { 0 };

	handshake();
	one_frame(&conn, &gen, NULL);
	dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer));
	dp_tcp_burst_end(&tcp, now_us);
	for (int i = 0; i < 400; i++)
		advance_ms(1000);
	cr_assert_eq(counters[DP_TCP_TIMEOUT_RETRANSMIT], 1);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_RST);
	cr_assert_eq(tcp.free_count, 16);
	cr_assert_eq(dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer)), -ESTALE,
		     "an answer for the gone connection is dropped");
	cr_assert_eq(counters[DP_TCP_ANSWERS_ORPHANED], 1);
}

Test(dp_tcp, zero_window_from_the_peer_is_probed)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[100] = { 0 };
	struct dp_tcp_seg s;

	handshake();
	one_frame(&conn, &gen, &size);
	s = seg_make(DP_TCP_ACK, PEER_ISN + size, our_iss + 1, NULL, 0);
	s.wnd = 0;
	s.has_ts = true;
	s.tsval = 300;
	deliver(&s);
	sent_count = 0;
	dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer));
	dp_tcp_burst_end(&tcp, now_us);
	cr_assert(sent_count == 0 || last_sent()->out.len == 0, "nothing beyond a shut window");
	advance_ms(DP_TCP_RTO_INIT_MS + 1);
	cr_assert_eq(last_sent()->out.len, 1, "a one-byte probe");
	s.wnd = 100;
	s.tsval = 301;
	deliver(&s);
	cr_assert_eq(last_sent()->out.len, 99, "the rest once the window opened");
}

/* ---- RFC 5961, PAWS -------------------------------------------------------------------- */

Test(dp_tcp, rst_exactly_at_rcv_nxt_closes)
{
	struct dp_tcp_seg s;

	handshake();
	cr_assert_eq(tcp.established, 1);
	s = seg_make(DP_TCP_RST, PEER_ISN, 0, NULL, 0);
	deliver(&s);
	cr_assert_eq(tcp.free_count, 16);
	cr_assert_eq(tcp.established, 0, "an open-connection count that goes down too");
	cr_assert_eq(counters[DP_TCP_RESETS_RECEIVED], 1);
}

Test(dp_tcp, rst_in_window_but_not_exact_gets_a_challenge_ack)
{
	struct dp_tcp_seg s;

	handshake();
	sent_count = 0;
	s = seg_make(DP_TCP_RST, PEER_ISN + 100, 0, NULL, 0);
	deliver(&s);
	cr_assert_eq(tcp.free_count, 15, "still open");
	cr_assert_eq(counters[DP_TCP_CHALLENGE_ACKS], 1);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_ACK);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN);
	s = seg_make(DP_TCP_RST, PEER_ISN + (1u << 30), 0, NULL, 0);
	deliver(&s);
	cr_assert_eq(tcp.free_count, 15, "out of window: ignored");
	cr_assert_eq(sent_count, 1, "and not answered");
}

/* A blind RST storm outside the window changes nothing, but is seen in the counters. */
Test(dp_tcp, rst_outside_the_window_is_ignored_and_counted)
{
	struct dp_tcp_seg s;

	handshake();
	sent_count = 0;
	s = seg_make(DP_TCP_RST, PEER_ISN - 100000, 0, NULL, 0);
	deliver(&s);
	s = seg_make(DP_TCP_RST, PEER_ISN + (1u << 30), 0, NULL, 0);
	deliver(&s);
	cr_assert_eq(tcp.free_count, 15, "still open");
	cr_assert_eq(sent_count, 0, "not answered");
	cr_assert_eq(counters[DP_TCP_OUT_OF_WINDOW], 2);
}

Test(dp_tcp, syn_on_an_open_connection_gets_a_challenge_ack)
{
	struct dp_tcp_seg s;

	handshake();
	s = seg_make(DP_TCP_SYN, PEER_ISN + 5, 0, NULL, 0);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_CHALLENGE_ACKS], 1);
	cr_assert_eq(tcp.free_count, 15);
	cr_assert_eq(last_sent()->out.ack, PEER_ISN);
}

/* RFC 5961 4.2: any SYN, in the window or not, gets a challenge ACK, rate limited. */
Test(dp_tcp, syn_outside_the_window_gets_a_rate_limited_challenge_ack)
{
	struct dp_tcp_seg s;

	handshake();
	sent_count = 0;
	s = seg_make(DP_TCP_SYN, PEER_ISN + (1u << 30), 0, NULL, 0);
	for (int i = 0; i < DP_TCP_CHALLENGE_PER_S + 50; i++)
		deliver(&s);
	cr_assert_eq(tcp.free_count, 15, "still open");
	cr_assert_eq(counters[DP_TCP_CHALLENGE_ACKS], DP_TCP_CHALLENGE_PER_S);
	cr_assert_eq(counters[DP_TCP_CHALLENGE_SUPPRESSED], 50);
	cr_assert_eq(sent_count, DP_TCP_CHALLENGE_PER_S, "no answer beyond the limit");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN);
}

Test(dp_tcp, challenge_acks_are_rate_limited)
{
	struct dp_tcp_seg s;

	handshake();
	s = seg_make(DP_TCP_RST, PEER_ISN + 100, 0, NULL, 0);
	for (int i = 0; i < DP_TCP_CHALLENGE_PER_S + 50; i++)
		dp_tcp_input(&tcp, &s, now_us);
	cr_assert_eq(counters[DP_TCP_CHALLENGE_ACKS], DP_TCP_CHALLENGE_PER_S);
	cr_assert_eq(counters[DP_TCP_CHALLENGE_SUPPRESSED], 50);
}

Test(dp_tcp, ack_of_unsent_data_is_refused)
{
	struct dp_tcp_seg s;

	handshake();
	sent_count = 0;
	s = seg_make(DP_TCP_ACK, PEER_ISN, our_iss + 5000, NULL, 0);
	deliver(&s);
	cr_assert_eq(counters[DP_TCP_BAD_ACK], 1);
	cr_assert_eq(sent_count, 1);
	cr_assert_eq(last_sent()->out.seq, our_iss + 1);
}

Test(dp_tcp, paws_drops_an_old_timestamp)
{
	uint8_t buf[1024];
	uint32_t size;
	struct dp_tcp_seg s;

	handshake();
	size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	s = data_seg(0, buf, size, true);
	s.tsval = 50; /* Older than the handshake's 101. */
	deliver(&s);
	cr_assert_eq(frame_count, 0);
	cr_assert_eq(counters[DP_TCP_PAWS_DROPS], 1);
	s.tsval = 150;
	deliver(&s);
	cr_assert_eq(frame_count, 1);
}

/* ---- Closing and timeouts ------------------------------------------------------------- */

Test(dp_tcp, peer_fin_after_answers_then_our_fin)
{
	uint32_t conn;
	uint32_t gen;
	uint32_t size;
	uint8_t answer[50] = { 0 };
	struct dp_tcp_seg s;

	handshake();
	one_frame(&conn, &gen, &size);
	s = seg_make(DP_TCP_ACK | DP_TCP_FIN, PEER_ISN + size, our_iss + 1, NULL, 0);
	s.wnd = 1000;
	s.has_ts = true;
	s.tsval = 400;
	deliver(&s);
	cr_assert_eq(tcp.conns[conn].state, DP_TCP_CLOSE_WAIT, "an answer is still owed");
	cr_assert_eq(last_sent()->out.ack, PEER_ISN + size + 1, "the FIN is acknowledged");
	cr_assert_eq(last_sent()->out.flags & DP_TCP_FIN, 0);
	dp_tcp_answer(&tcp, conn, gen, answer, sizeof(answer));
	dp_tcp_burst_end(&tcp, now_us);
	cr_assert_eq(tcp.conns[conn].state, DP_TCP_LAST_ACK);
	cr_assert_eq(last_sent()->out.flags & DP_TCP_FIN, DP_TCP_FIN, "our FIN after the answer");
	s = seg_make(DP_TCP_ACK, PEER_ISN + size + 1, our_iss + 1 + sizeof(answer) + 1, NULL, 0);
	s.has_ts = true;
	s.tsval = 401;
	deliver(&s);
	cr_assert_eq(tcp.free_count, 16);
	cr_assert_eq(counters[DP_TCP_CONNS_CLOSED], 1);
}

Test(dp_tcp, partial_frame_held_too_long_is_reset)
{
	uint8_t buf[2048];
	struct dp_tcp_seg s;

	handshake();
	make_frame(buf, sizeof(buf), 1, 1, 1000, 'a');
	s = data_seg(0, buf, 100, true);
	deliver(&s);
	advance_ms(tcp.config.partial_frame_ms - 1);
	cr_assert_eq(tcp.free_count, 15);
	advance_ms(2);
	cr_assert_eq(counters[DP_TCP_TIMEOUT_PARTIAL], 1);
	cr_assert_eq(tcp.free_count, 16);
	cr_assert_eq(tcp.rx_free_count, 16);
}

Test(dp_tcp, silent_peer_is_probed_then_reset)
{
	uint32_t i;

	handshake();
	sent_count = 0;
	for (i = 0; i < 200 && counters[DP_TCP_TIMEOUT_KEEPALIVE] == 0; i++)
		advance_ms(1000);
	cr_assert_eq(counters[DP_TCP_TIMEOUT_KEEPALIVE], 1);
	cr_assert_geq(sent_count, DP_TCP_KEEPALIVE_PROBES + 1, "probes, then the RST");
	cr_assert_eq(sent[0].out.seq, our_iss, "a probe carries an old sequence number");
}

Test(dp_tcp, answered_keepalive_keeps_the_connection)
{
	struct dp_tcp_seg s;

	handshake();
	for (uint32_t i = 0; i < 150; i++) {
		advance_ms(1000);
		s = seg_make(DP_TCP_ACK, PEER_ISN, our_iss + 1, NULL, 0);
		s.has_ts = true;
		s.tsval = 1000 + i;
		s.wnd = 1000;
		deliver(&s);
	}
	cr_assert_eq(counters[DP_TCP_TIMEOUT_KEEPALIVE], 0);
	cr_assert_eq(tcp.free_count, 15);
}

static void
short_idle(struct dp_tcp_config *c)
{
	c->idle_timeout_ms = 5000;
	c->keepalive_ms = 0;
}

Test(dp_tcp, idle_connection_is_reset, .init = NULL)
{
	setup_with(short_idle);
	handshake();
	for (uint32_t i = 0; i < 10; i++)
		advance_ms(1000);
	cr_assert_eq(counters[DP_TCP_TIMEOUT_IDLE], 1);
	cr_assert_eq(tcp.free_count, 16);
}

/* ---- Limits and memory --------------------------------------------------------------- */

static void
many_half_open(struct dp_tcp_config *c)
{
	c->half_open_max = 16;
}

Test(dp_tcp, per_source_limit_refuses_more_connections, .init = NULL)
{
	setup_with(many_half_open);
	for (uint16_t p = 0; p < 10; p++)
		deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR,
					      .rport_be = (uint16_t)(100 + p),
					      .lport_be = LOCAL_PORT, .seq = 1,
					      .flags = DP_TCP_SYN });
	cr_assert_eq(counters[DP_TCP_REFUSED_PER_SOURCE], 2);
	cr_assert_eq(tcp.free_count, 16 - 8, "half-open entries count too");
}

static void
tiny_table(struct dp_tcp_config *c)
{
	c->conns_max = 2;
	c->half_open_max = 2;
}

Test(dp_tcp, full_table_answers_with_cookies_and_refuses_their_acks, .init = NULL)
{
	uint32_t iss;

	setup_with(tiny_table);
	for (uint16_t p = 0; p < 2; p++)
		deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + p,
					      .rport_be = 1, .lport_be = LOCAL_PORT, .seq = 1,
					      .flags = DP_TCP_SYN });
	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + 9, .rport_be = 1,
				      .lport_be = LOCAL_PORT, .seq = 1, .flags = DP_TCP_SYN });
	cr_assert_eq(counters[DP_TCP_SYN_COOKIES_SENT], 1);
	iss = last_sent()->out.seq;
	deliver(&(struct dp_tcp_seg){ .mac = peer_mac, .raddr_be = PEER_ADDR + 9, .rport_be = 1,
				      .lport_be = LOCAL_PORT, .seq = 2, .ack = iss + 1,
				      .flags = DP_TCP_ACK });
	cr_assert_eq(counters[DP_TCP_REFUSED_TABLE_FULL], 1);
	cr_assert_eq(last_sent()->out.flags, DP_TCP_RST);
}

Test(dp_tcp, memory_budget_for_100k_connections)
{
	struct dp_tcp_config c;

	dp_tcp_config_default(&c);
	/* sluiced's defaults ([dataplane] tcp_*, docs/CONFIG.md), 100,000 connections. */
	c.conns_max = 100000;
	c.rx_buffers = 64;
	c.rx_buffer_size = 1028 * 1024;
	c.tx_buffers = 256;
	c.tx_buffer_size = 64 * 1024;
	/* An idle established connection holds no buffer: its entry and table words. */
	cr_assert_leq(sizeof(struct dp_tcp_conn) + 2 * 2 * sizeof(uint32_t) +
		      2 * sizeof(struct dp_tcp_source), 1024);
	cr_assert_leq(dp_tcp_memory(&c), 128u << 20, "%zu bytes", dp_tcp_memory(&c));
}

Test(dp_tcp, options_parser_refuses_lying_lengths)
{
	struct dp_tcp_seg s = { 0 };
	const uint8_t ok[] = { 2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2 };
	const uint8_t bad_len[] = { 2, 5, 5, 180, 0 };
	const uint8_t past_end[] = { 8, 10, 0, 0 };
	const uint8_t zero_len[] = { 99, 0 };
	const uint8_t unknown[] = { 99, 4, 1, 2, 0 };

	cr_assert(dp_tcp_parse_options(ok, sizeof(ok), &s));
	cr_assert(s.has_mss && s.opt_mss == 1460 && s.has_wscale && s.wscale == 7);
	cr_assert(s.sack_permitted && s.has_ts && s.tsval == 1 && s.tsecr == 2);
	cr_assert_not(dp_tcp_parse_options(bad_len, sizeof(bad_len), &s));
	cr_assert_not(dp_tcp_parse_options(past_end, sizeof(past_end), &s));
	cr_assert_not(dp_tcp_parse_options(zero_len, sizeof(zero_len), &s));
	cr_assert(dp_tcp_parse_options(unknown, sizeof(unknown), &s));
}

Test(dp_tcp, a_large_answer_goes_where_there_is_room_only)
{
	static uint8_t big[6000];
	uint8_t buf[1024];
	uint32_t size = make_frame(buf, sizeof(buf), 1, 1, 10, 'a');
	struct dp_tcp_seg s;

	handshake();
	/* Three frames taken: three answers owed, 3 x 1472 reserved of the 8 KiB buffer. */
	for (uint32_t i = 0; i < 3; i++) {
		s = data_seg(i * size, buf, size, true);
		deliver(&s);
	}
	cr_assert_eq(frame_count, 3);
	cr_assert_eq(dp_tcp_answer(&tcp, frame_conn[0], frame_gen[0], big, 6000), -ENOSPC,
		     "6000 B would eat the others' reserved room");
	cr_assert_eq(tcp.conns[frame_conn[0]].answers_due, 3, "nothing written");
	cr_assert_eq(dp_tcp_answer(&tcp, frame_conn[0], frame_gen[0], big, 5000), 0,
		     "5000 B leaves 2 x 1472 for the other two");
	cr_assert_eq(dp_tcp_answer(&tcp, frame_conn[1], frame_gen[1], big, DP_TCP_ANSWER_MAX), 0);
	cr_assert_eq(dp_tcp_answer(&tcp, frame_conn[2], frame_gen[2], big, DP_TCP_ANSWER_MAX), 0);
	cr_assert_eq(tcp.conns[frame_conn[0]].tx_len, 5000 + 2 * DP_TCP_ANSWER_MAX);
}
