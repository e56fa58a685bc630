/*
 * dp_tcp.h - the dataplane's TCP receiver (private to dataplane/): record
 * frames over TCP taken on the polling cores, no kernel socket involved.
 *
 * Passive open only (RFC 9293): the appliance listens on one address and
 * one port (the ingest port) and never connects out. The module is pure:
 * parsed segments come in through dp_tcp_input(), and everything it wants
 * done goes out through struct dp_tcp_ops (send a segment, hand over a
 * whole record frame, ask whether ingest can take one). It includes no DPDK
 * header, so its unit tests drive it with a fake clock and fake ops.
 *
 * What it implements, and where the RFC allows a choice, which:
 *   - handshake: MSS, window scaling, SACK-permitted and timestamps are
 *     negotiated as the peer offers them; ISNs are RFC 6528's (a 4 us clock
 *     plus a keyed MD5 of the 4-tuple); beyond half_open_max half-open
 *     connections (per worker) SYNs are answered with SYN cookies (RFC 4987)
 *     and cost no state; the options a cookie cannot carry (window scale and
 *     SACK without timestamps) are lost, as in Linux.
 *   - receive: in-order bytes go to the frame splitter; a segment holding
 *     whole frames is handed over in place (no copy); a frame spanning
 *     segments is assembled in a receive buffer taken from a per-worker pool;
 *     out-of-order segments are placed into that buffer at their offset, up
 *     to DP_TCP_OOO_RANGES ranges, and answered with SACK blocks; bytes
 *     already received win over a retransmission's (first copy wins).
 *   - flow control: the advertised window is the free space of the receive
 *     buffer (the whole buffer while none is held); when ingest cannot take a
 *     frame (the log pushes back) the connection stops consuming, its bytes
 *     stay buffered and the window closes to zero; zero-window probes are
 *     answered; the window reopens (with an update) when ingest takes frames
 *     again. The producer is slowed down, never cut off.
 *   - send: ACK/NACK frames are written into a per-connection send buffer
 *     (pool), sent within the peer's window, kept until acknowledged,
 *     retransmitted on RTO (RFC 6298, RTT from timestamps or one timed
 *     segment, Karn's rule) and on three duplicate ACKs; the TCP ACK rides on
 *     them; otherwise ACKs are delayed (every second full segment or
 *     DP_TCP_DELACK_MS), immediate for out-of-order data and window updates.
 *   - close: a peer's FIN is acknowledged and answered with ours once every
 *     answer owed is written (CLOSE_WAIT -> LAST_ACK -> freed when our FIN
 *     is acknowledged). The appliance never closes first gracefully: it
 *     aborts (RST) on timeouts and framing errors, so it keeps no TIME_WAIT.
 *   - hardening: RFC 5961 (challenge ACKs for in-window RST and any SYN on a
 *     synchronized connection, rate limited; ACK range check); PAWS (RFC
 *     7323); a per-source connection limit; idle, keepalive, and partial
 *     frame (slowloris) timeouts. A frame whose header cannot be read (magic,
 *     version, size) leaves the stream unframed: the connection is reset (no
 *     NACK is possible: the frame's identity is unknown). A frame that is
 *     framed but invalid inside (CRC, fields) is NACKed by ingest and the
 *     stream goes on.
 *
 * Memory: everything is allocated in dp_tcp_init() from the configuration;
 * nothing afterwards. Connections cost sizeof(struct dp_tcp_conn) plus two
 * table words each; buffers are pooled and held only while needed.
 * Threads: one worker owns a struct dp_tcp; nothing is shared.
 */
#ifndef SLUICE_DP_TCP_H
#define SLUICE_DP_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/dataplane.h"

#define DP_TCP_OOO_RANGES 4         /* Out-of-order ranges kept (and SACK blocks sent). */
#define DP_TCP_SACK_BLOCKS_IN 4     /* SACK blocks a segment can carry (40 B of options). */
#define DP_TCP_OPTIONS_MAX 40
#define DP_TCP_WSCALE 7             /* Our window scale: windows up to 8 MiB. */
#define DP_TCP_WSCALE_MAX 14        /* RFC 7323 */
#define DP_TCP_DELACK_MS 40
#define DP_TCP_RTO_MIN_MS 200       /* Linux's floor (RFC 6298 says 1 s; LANs need less). */
#define DP_TCP_RTO_MAX_MS 60000
#define DP_TCP_RTO_INIT_MS 1000
#define DP_TCP_RETRIES_MAX 8        /* Retransmissions of one segment before a reset. */
#define DP_TCP_SYNACK_RETRIES 3
#define DP_TCP_KEEPALIVE_PROBES 3
#define DP_TCP_CHALLENGE_PER_S 1000 /* RFC 5961 challenge ACKs per worker per second. */
#define DP_TCP_COOKIE_PERIOD_MS 64000u /* A SYN cookie is good for 2 such periods. */
#define DP_TCP_ANSWER_MAX 1472      /* Reserved send space per frame awaiting its answer. */
#define DP_TCP_TIMER_TICK_US 1000   /* Timers are checked at most this often. */
#define DP_TCP_SWEEP_PER_TICK 64    /* Connections the idle sweep looks at per tick. */

#define DP_TCP_NONE UINT32_MAX
#define DP_TCP_CONNS_MAX DP_TCP_CONNECTIONS_MAX
#define DP_TCP_BUFFER_SIZE_MAX (DP_TCP_BUFFER_KB_MAX * 1024u)
#define DP_TCP_KEEPALIVE_INTVL_MS 10000      /* Between unanswered keepalive probes. */
#define DP_TCP_STATELESS_RST_PER_S 10000     /* RSTs to segments of no connection. */

/* TCP header flags. */
#define DP_TCP_FIN 0x01
#define DP_TCP_SYN 0x02
#define DP_TCP_RST 0x04
#define DP_TCP_PSH 0x08
#define DP_TCP_ACK 0x10
#define DP_TCP_URG 0x20

/* Sequence-space comparisons (modulo 2^32). */
#define DP_SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define DP_SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define DP_SEQ_GT(a, b) DP_SEQ_LT(b, a)
#define DP_SEQ_GEQ(a, b) DP_SEQ_LEQ(b, a)

struct dp_tcp_config {
	uint32_t local_addr_be;     /* Our IPv4 address (network order). */
	uint16_t local_port_be;     /* The ingest port (network order). */
	uint16_t mss;               /* The largest segment we take (MTU - 40). */
	uint32_t conns_max;         /* Connection table size. */
	uint32_t half_open_max;     /* SYN_RECEIVED entries before SYN cookies. */
	uint32_t per_source_max;    /* Connections from one IPv4 address. */
	uint32_t rx_buffers;        /* Receive buffer pool ... */
	uint32_t rx_buffer_size;    /* ... and the bytes of each (largest frame taken). */
	uint32_t tx_buffers;        /* Send buffer pool ... */
	uint32_t tx_buffer_size;    /* ... and the bytes of each. */
	uint32_t idle_timeout_ms;   /* No data this long: reset (0: never). */
	uint32_t keepalive_ms;      /* Silence before a keepalive probe (0: none). */
	uint32_t partial_frame_ms;  /* A frame left incomplete this long: reset. */
	uint8_t secret[16];         /* ISN and cookie key (random, per process). */
};

/* Defaults for tests; the dataplane fills it from struct dp_config. */
void dp_tcp_config_default(struct dp_tcp_config *config);

/* One parsed segment (dp_net.c checked IPv4, lengths and the checksum). */
struct dp_tcp_seg {
	const uint8_t *mac;         /* The Ethernet source (6 bytes): where answers go. */
	uint32_t raddr_be;
	uint16_t rport_be;
	uint16_t lport_be;
	uint32_t seq;
	uint32_t ack;
	uint16_t wnd;               /* As sent (not yet scaled). */
	uint8_t flags;
	bool has_mss;
	bool has_wscale;
	bool sack_permitted;
	bool has_ts;
	uint8_t wscale;
	uint16_t opt_mss;
	uint32_t tsval;
	uint32_t tsecr;
	uint8_t sack_count;
	uint32_t sack[DP_TCP_SACK_BLOCKS_IN][2];
	const uint8_t *data;
	uint32_t len;
};

/* A segment to send: dp_net.c builds its headers and checksums. */
struct dp_tcp_out {
	const uint8_t *mac;
	uint32_t raddr_be;
	uint16_t rport_be;
	uint16_t lport_be;          /* Our port: the ingest port, or a refused one (RST). */
	uint32_t seq;
	uint32_t ack;
	uint16_t wnd;
	uint8_t flags;
	uint8_t options_size;
	uint8_t options[DP_TCP_OPTIONS_MAX];
	const uint8_t *data;
	uint32_t len;
};

struct dp_tcp_ops {
	/* Sends one segment. 0, or -ENOBUFS when no packet buffer is free (counted). */
	int (*send)(void *ctx, const struct dp_tcp_out *out);
	/*
	 * Hands over one whole record frame of connection (conn, gen). The bytes
	 * stay valid until held_release() is called or dp_tcp_burst_end() runs.
	 */
	void (*frame)(void *ctx, uint32_t conn, uint32_t gen, const uint8_t *frame, uint32_t size);
	/* Can ingest take one more frame now? (false: the log pushes back.) */
	bool (*can_take)(void *ctx);
	/* Process every frame handed over so far: their bytes are about to move. */
	void (*held_release)(void *ctx);
};

enum dp_tcp_state {
	DP_TCP_CLOSED = 0,          /* A free table entry. */
	DP_TCP_SYN_RECEIVED,
	DP_TCP_ESTABLISHED,
	DP_TCP_CLOSE_WAIT,          /* The peer sent FIN; our answers still go out. */
	DP_TCP_LAST_ACK,            /* Our FIN sent after theirs. */
	DP_TCP_STATE_COUNT,
};

struct dp_tcp_source {
	uint32_t addr_be;
	uint32_t count;             /* 0: an empty entry. */
};

struct dp_tcp_range {
	uint32_t start;             /* Sequence numbers [start, end). */
	uint32_t end;
};

/* One connection: kept small (the table is sized for up to 10^5 per worker). */
struct dp_tcp_conn {
	uint32_t raddr_be;
	uint16_t rport_be;
	uint8_t state;              /* enum dp_tcp_state */
	uint8_t mac[6];
	bool ts_ok;
	bool sack_ok;
	bool blocked;               /* Ingest refused a frame: not consuming. */
	bool touched;               /* On the touched list (output due this pass). */
	bool ack_now;
	bool fin_received;
	bool close_after_send;      /* Framing error: FIN once the NACK is written. */
	bool rto_timed;             /* One segment is timed (no timestamps). */
	bool timed;                 /* On the timer list. */
	bool fin_queued;            /* Our FIN goes after the answers written. */
	bool fin_sent;
	bool zero_window;           /* Our last advertised window was 0. */
	uint8_t snd_wscale;         /* Peer's shift for windows it sends us. */
	uint8_t rcv_wscale;         /* Our shift for windows we send. */
	uint8_t dupacks;
	uint8_t retries;
	uint8_t probes;             /* Keepalive or zero-window probes unanswered. */
	uint8_t ooo_count;
	uint16_t mss;               /* Largest segment we send (peer's MSS). */
	uint16_t segs_unacked;      /* Full segments received since our last ACK. */
	uint32_t gen;               /* Incarnation: answers for an older one are dropped. */
	uint32_t iss;
	uint32_t snd_una;
	uint32_t snd_nxt;
	uint32_t snd_max;           /* Highest sequence sent (snd_nxt rewinds on RTO). */
	uint32_t snd_wnd;           /* Peer's window, scaled. */
	uint32_t snd_wl1;
	uint32_t snd_wl2;
	uint32_t max_snd_wnd;
	uint32_t rtt_seq;           /* The timed segment's end (rto_timed). */
	uint32_t irs;
	uint32_t rcv_nxt;
	uint32_t rcv_adv;           /* Right edge of the window we advertised. */
	uint32_t last_ack_sent;
	uint32_t ts_recent;
	uint32_t srtt_us;           /* 0: no sample yet. */
	uint32_t rttvar_us;
	uint32_t rto_ms;
	uint32_t rx_buf;            /* Pool index, DP_TCP_NONE when none is held. */
	uint32_t rx_head;           /* Unconsumed in-order bytes [rx_head, rx_tail) ... */
	uint32_t rx_tail;           /* ... end just before rcv_nxt; out-of-order after. */
	uint32_t rx_held_epoch;     /* Frames handed over in this hold epoch point into rx_buf. */
	uint32_t tx_buf;            /* Pool index, DP_TCP_NONE when none is held. */
	uint32_t tx_len;            /* Bytes from snd_una in tx_buf (sent or not). */
	uint32_t answers_due;       /* Frames handed over and not yet answered. */
	uint32_t touched_next;      /* Touched list link. */
	uint32_t timer_prev;        /* Timer list links (connections with a deadline). */
	uint32_t timer_next;
	uint64_t rtt_sent_us;
	uint64_t rto_at_us;         /* 0 = not armed; likewise the deadlines below. */
	uint64_t delack_at_us;
	uint64_t close_at_us;       /* SYN-ACK retry, FIN wait, persist: see state. */
	uint64_t partial_since_us;  /* A frame has been incomplete since then. */
	uint64_t last_rx_us;        /* Any segment from the peer. */
	uint64_t last_data_us;      /* Last byte of data from the peer. */
	struct dp_tcp_range ooo[DP_TCP_OOO_RANGES];
};

struct dp_tcp {
	struct dp_tcp_config config;
	struct dp_tcp_ops ops;
	void *ctx;
	uint64_t *counters;         /* enum dp_counter, owner-written (relaxed stores). */
	uint64_t now_us;            /* Of the current call. */
	uint32_t hold_epoch;        /* Raised whenever ingest let go of every frame. */
	uint32_t blocked_count;
	struct dp_tcp_conn *conns;
	uint32_t *table;            /* (raddr, rport) -> conn + 1; linear probing. */
	uint32_t table_mask;
	uint32_t *free_list;
	uint32_t free_count;
	uint32_t half_open;
	uint32_t established;       /* Every state but CLOSED and SYN_RECEIVED. */
	struct dp_tcp_source *sources; /* Per-source counts, linear probing. */
	uint32_t sources_mask;
	uint8_t *rx_mem;
	uint32_t *rx_free;
	uint32_t rx_free_count;
	uint8_t *tx_mem;
	uint32_t *tx_free;
	uint32_t tx_free_count;
	uint32_t touched_head;
	uint32_t timer_head;
	uint64_t next_tick_us;
	uint32_t sweep_hand;
	uint64_t challenge_window_us; /* Rate limits: a count per one-second window. */
	uint32_t challenge_count;
	uint64_t rst_window_us;
	uint32_t rst_count;
};

/* Allocates the table and pools. -EINVAL on a bad config; -ENOMEM. */
int dp_tcp_init(struct dp_tcp *tcp, const struct dp_tcp_config *config,
		const struct dp_tcp_ops *ops, void *ctx, uint64_t *counters);
void dp_tcp_fini(struct dp_tcp *tcp);
/* Bytes dp_tcp_init() allocates for `config` (documented budget). */
size_t dp_tcp_memory(const struct dp_tcp_config *config);

/* One segment to our address (any port: other ports are refused with RST). */
void dp_tcp_input(struct dp_tcp *tcp, const struct dp_tcp_seg *seg, uint64_t now_us);
/*
 * After ingest processed the frames handed over in this burst: frees what
 * they held and sends what is due (ACKs, window updates, answers).
 */
void dp_tcp_burst_end(struct dp_tcp *tcp, uint64_t now_us);
/*
 * Timers (retransmission, delayed ACK, keepalive, timeouts) and connections
 * waiting for ingest to take frames again. Frames may be handed over: call
 * the ingest burst end, then dp_tcp_burst_end(). Returns the work done.
 */
uint32_t dp_tcp_poll(struct dp_tcp *tcp, uint64_t now_us);
/*
 * An answer (ACK/NACK frame) for a frame of connection (conn, gen). -ESTALE
 * when that connection is gone (the answer is dropped and counted); -ENOSPC
 * (nothing written) for one over DP_TCP_ANSWER_MAX that does not fit now:
 * send a shorter one (at most DP_TCP_ANSWER_MAX always fits).
 */
int dp_tcp_answer(struct dp_tcp *tcp, uint32_t conn, uint32_t gen, const uint8_t *bytes,
		  uint32_t size);
/* A frame handed over that will get no answer (ack mode NONE, or unanswerable). */
void dp_tcp_unanswered(struct dp_tcp *tcp, uint32_t conn, uint32_t gen);
/*
 * Nothing to send or hand over now: the worker may sleep. Connections blocked on
 * back-pressure do not count (dp_tcp_poll retries them each tick and reports work only
 * when a retry changed something).
 */
bool dp_tcp_is_idle(const struct dp_tcp *tcp);

/* Parses TCP options into `seg` (has_* fields). false: malformed options. */
bool dp_tcp_parse_options(const uint8_t *options, uint32_t size, struct dp_tcp_seg *seg);

const char *dp_tcp_state_name(enum dp_tcp_state state);

#endif /* SLUICE_DP_TCP_H */
