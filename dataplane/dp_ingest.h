/*
 * dp_ingest.h - a worker's ingest state (private to dataplane/): record frames
 * from UDP datagrams -> route -> per-shard staging batches -> the log, and
 * log completions -> ACK frames.
 */
#ifndef SLUICE_DP_INGEST_H
#define SLUICE_DP_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

#include "common/hashkey.h"

struct dp_worker;
struct log_producer;
struct log_batch;

/* Where an ACK goes: the L2/L3/L4 source of the frame being answered. */
struct dp_peer {
	struct rte_ether_addr mac;
	uint32_t ipv4_be;
	uint16_t port_be;
};

struct dp_ingest {
	struct log_producer *producer;
};

int dp_ingest_init(struct dp_worker *w);
void dp_ingest_fini(struct dp_worker *w);
/* One UDP payload to the ingest port; copies what it keeps. */
void dp_ingest_datagram(struct dp_worker *w, const struct dp_peer *peer, const uint8_t *payload,
			uint32_t size, uint64_t now_tsc);
/* Completions -> ACKs, aged batches -> log. Returns the work done. */
uint32_t dp_ingest_poll(struct dp_worker *w, uint64_t now_tsc);
/* Nothing staged and nothing in flight: the worker may sleep. */
bool dp_ingest_is_idle(const struct dp_worker *w);
/* At stop: submits what is staged and waits (bounded) for its completions. */
void dp_ingest_drain(struct dp_worker *w);

#endif /* SLUICE_DP_INGEST_H */
