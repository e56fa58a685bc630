/*
 * dp_tcp_internal.h - shared between dp_tcp.c (table, buffers, output),
 * dp_tcp_input.c (segment arrival) and dp_tcp_timer.c (timers). Nothing
 * outside these files includes it.
 */
#ifndef SLUICE_DP_TCP_INTERNAL_H
#define SLUICE_DP_TCP_INTERNAL_H

#include <endian.h>

#include "dataplane/dp_tcp.h"

/* Counters: one writer; relaxed so readers on other threads see whole values. */
static inline void
dp_tcp_count(struct dp_tcp *tcp, enum dp_counter counter, uint64_t n)
{
	uint64_t *c = &tcp->counters[counter];

	__atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

struct dp_tcp_conn *dp_tcp_lookup(struct dp_tcp *tcp, uint32_t addr_be, uint16_t port_be);
/* A new entry in the table for the segment's peer (state CLOSED), or NULL when full. */
struct dp_tcp_conn *dp_tcp_conn_new(struct dp_tcp *tcp, const struct dp_tcp_seg *seg);
bool dp_tcp_source_full(struct dp_tcp *tcp, uint32_t addr_be);
void dp_tcp_conn_free(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_conn_reset(struct dp_tcp *tcp, struct dp_tcp_conn *c, enum dp_counter why);

void dp_tcp_timer_update(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_touch(struct dp_tcp *tcp, struct dp_tcp_conn *c);

uint8_t *dp_tcp_rx_mem(struct dp_tcp *tcp, const struct dp_tcp_conn *c);
uint8_t *dp_tcp_tx_mem(struct dp_tcp *tcp, const struct dp_tcp_conn *c);
bool dp_tcp_rx_get(struct dp_tcp *tcp, struct dp_tcp_conn *c);
bool dp_tcp_rx_held(const struct dp_tcp *tcp, const struct dp_tcp_conn *c);
void dp_tcp_release_held(struct dp_tcp *tcp);
void dp_tcp_rx_maybe_put(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_rx_compact(struct dp_tcp *tcp, struct dp_tcp_conn *c);
bool dp_tcp_tx_get(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_tx_maybe_put(struct dp_tcp *tcp, struct dp_tcp_conn *c);
bool dp_tcp_tx_room(struct dp_tcp *tcp, struct dp_tcp_conn *c);
uint32_t dp_tcp_rcv_space(const struct dp_tcp *tcp, const struct dp_tcp_conn *c);

uint32_t dp_tcp_keyed_hash(const struct dp_tcp *tcp, uint32_t raddr_be, uint16_t rport_be,
			   uint32_t extra1, uint32_t extra2);
uint32_t dp_tcp_now_ms(const struct dp_tcp *tcp);

void dp_tcp_emit(struct dp_tcp *tcp, const struct dp_tcp_out *out);
void dp_tcp_send(struct dp_tcp *tcp, struct dp_tcp_conn *c, uint8_t flags, uint32_t seq,
		 const uint8_t *data, uint32_t len);
void dp_tcp_send_ack(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_arm_rto(struct dp_tcp *tcp, struct dp_tcp_conn *c);
uint32_t dp_tcp_payload_max(const struct dp_tcp_conn *c);

/* dp_tcp_timer.c */
/* Sends again the first unacknowledged segment (or our FIN); a probe when the window is 0. */
void dp_tcp_retransmit(struct dp_tcp *tcp, struct dp_tcp_conn *c);
void dp_tcp_rtt_sample(struct dp_tcp_conn *c, uint32_t rtt_us);
/* Counts within a one-second window; false once `limit` is reached. */
bool dp_tcp_rate_ok(uint64_t now_us, uint64_t *window_us, uint32_t *count, uint32_t limit);

/* dp_tcp_input.c */
/* Hands over the whole frames in [rx_head, rx_tail) while ingest takes them. */
void dp_tcp_rx_split(struct dp_tcp *tcp, struct dp_tcp_conn *c);
/* The SYN-ACK of a half-open entry (first send and retries). */
void dp_tcp_send_synack(struct dp_tcp *tcp, struct dp_tcp_conn *c);

#endif /* SLUICE_DP_TCP_INTERNAL_H */
