/*
 * dp_internal.h - structures shared inside dataplane/ (and by its tests).
 *
 * Ownership: struct dp belongs to the control thread; each struct dp_worker
 * belongs to its worker lcore from dp_start() to dp_stop() (the control
 * thread reads only its counters). Tests drive a worker on the main lcore
 * with dp_worker_poll() instead of launching lcores.
 */
#ifndef SLUICE_DP_INTERNAL_H
#define SLUICE_DP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include "common/hashkey.h"
#include "dataplane/dataplane.h"
#include "dataplane/dp_dedup.h"
#include "dataplane/dp_ingest.h"
#include "dataplane/dp_tcp.h"

#define DP_RX_BURST 32
#define DP_TX_BURST 64
/*
 * Answers the device did not take (its TX ring full: a peer slow to drain it, e.g.
 * descheduled on a shared host) wait for the next pass, up to this many; only an
 * answer past them is dropped (tx_dropped). One memif / AF_XDP ring's worth.
 */
#define DP_TX_BACKLOG 1024
/*
 * Backpressure instead of dropping answers: a pass takes an RX burst only with this
 * much room left in the backlog (a packet owes at most one answer, a TCP segment at
 * most two), and log completions only with room for a whole batch's ACKs
 * (DP_BATCH_REFS_MAX, dp_ingest_completions). Otherwise requests wait in the device,
 * which counts what it cannot hold, and durable records wait for their ACK.
 */
#define DP_TX_RX_HEADROOM (2 * DP_RX_BURST)
/*
 * Datagrams larger than one mbuf (jumbo frames chained by the device, or
 * IPv4 fragments reassembled) are copied into one of these per-worker
 * buffers, held until the burst's frames are processed.
 */
#define DP_BIG_SLOTS 4
#define DP_BIG_SIZE 65536           /* Any IPv4 payload fits. */
/* IPv4 reassembly (rte_ip_frag), per worker: at most this many datagrams ... */
#define DP_FRAG_FLOWS 1024
#define DP_FRAG_BUCKET_ENTRIES 16   /* ... in a table of FLOWS / ENTRIES buckets ... */
#define DP_FRAG_TIMEOUT_MS 2000     /* ... each kept at most this long. */

struct dp_kernel;

/* Slots dp_stream_count() probes before counting a stream as "other". */
#define DP_STREAM_PROBES 8u

struct dp_worker {
	/* First line(s): counters, written only by this worker. */
	uint64_t counters[DP_COUNTER_COUNT] __rte_cache_aligned;

	struct dp *dp __rte_cache_aligned;
	uint32_t index;             /* Worker number = RX/TX queue index = RCU thread id. */
	uint32_t lcore_id;
	uint16_t port_id;
	uint16_t queue_id;
	uint32_t idle_polls;        /* Consecutive empty polls. */
	uint32_t rx_full_streak;    /* Consecutive polls whose RX burst was full. */
	uint16_t tx_count;
	uint16_t done_count;
	struct rte_mbuf *tx[DP_TX_BACKLOG]; /* Answers not yet taken by the device. */
	struct rte_mbuf *done[DP_RX_BURST]; /* Consumed this burst: freed in bulk after it. */
	struct dp_ingest ingest;    /* Staging, frames in flight, key cache. */
	struct dp_tcp tcp;          /* TCP connections on the ingest port. */
	struct dp_kernel *kernel;   /* backend = kernel: sockets, io_uring (dp_kernel.c). */
	struct rte_ip_frag_tbl *frag_table;
	struct rte_ip_frag_death_row *death_row; /* Fragments given up, freed per burst. */
	uint8_t *big;               /* DP_BIG_SLOTS x DP_BIG_SIZE */
	uint32_t big_used;          /* Slots taken in this burst. */
	uint64_t tsc_per_us;
	/* The last flush epoch (dp_flush_staged) this worker completed; it alone writes. */
	_Atomic uint64_t flush_done __rte_cache_aligned;
	/*
	 * Set (release) when dp_worker_main() returned; dp_stop() reads it (acquire) after
	 * rte_eal_mp_wait_lcore(). That wait synchronises inside DPDK, which is not built with
	 * ThreadSanitizer: without this pair TSan cannot see that the worker is done before
	 * dp_close() frees its state, and reports a race (docs/TESTING.md).
	 */
	atomic_bool exited;
	/* Frames it took and left unanswered at its stop (dp_ingest_drain); read after exited. */
	uint32_t unanswered_at_stop;
	/*
	 * Durable records per stream (dp_stream_count; dataplane.h): open addressing on
	 * the stream id, probed at most DP_STREAM_PROBES slots. This worker writes; the
	 * control thread reads. A slot's id goes from 0 to a stream's id + 1, once.
	 */
	struct {
		uint64_t id_plus1;
		uint64_t records;
	} stream_counts[DP_STREAM_COUNTS_MAX] __rte_cache_aligned;
	uint64_t stream_counts_other;
} __rte_cache_aligned;

struct dp_route_table;

struct dp {
	struct dp_config config;
	char eal_args[1024];
	char vdev[256];
	char file_prefix[64];
	uint16_t port_id;           /* The first port (tests drive it). */
	uint16_t port_ids[DP_PORTS_MAX];
	uint32_t port_count;
	uint32_t port_open_count;   /* Configured so far: dp_port_close() undoes these. */
	int xsk_fd[DP_WORKERS_MAX]; /* AF_XDP: each worker's XDP socket (the PMD's), or -1. */
	struct rte_ether_addr mac;  /* Every port's (dp_port.c). */
	uint32_t ipv4_be;
	uint16_t ingest_port_be;
	bool rx_cksum_offload;      /* The port checks IPv4/UDP checksums and flags mbufs. */
	struct rte_mempool *pool;
	struct rte_rcu_qsbr *qsbr;
	struct dp_route_table *_Atomic route;
	struct frame_auth_key auth_keys[DP_AUTH_KEYS_MAX];
	uint32_t auth_key_count;
	struct dp_cluster cluster;  /* config.cluster points here (cluster mode). */
	uint32_t worker_count;
	struct dp_worker *workers;  /* worker_count entries, cache aligned. */
	bool eal_ready;
	bool running;
	atomic_bool stop;
	uint64_t tsc_hz;
	_Atomic uint64_t flush_epoch; /* Raised by dp_flush_staged(); workers follow. */
	/*
	 * Producer id -> duplicate window, one table for all workers: a
	 * producer that reconnects (TCP) or restarts its socket (UDP) from
	 * another port may reach another worker (RSS on the 4-tuple, net_tap's
	 * flow hash), and must meet the same window there or its resends are
	 * stored twice. Every use holds dedup_lock (a few hundred ns: a probe,
	 * a window check, and the answer it decides).
	 */
	rte_spinlock_t dedup_lock;
	struct dp_dedup_table dedup;
};

/* Counters: one writer; relaxed so readers on other threads see whole values. */
static inline void
dp_count(struct dp_worker *w, enum dp_counter counter, uint64_t n)
{
	uint64_t *c = &w->counters[counter];

	__atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

/* dp_eal.c */
int dp_eal_init(struct dp *dp);
void dp_eal_cleanup(struct dp *dp);

/* dp_port.c */
int dp_port_open(struct dp *dp);
/* The port and queue worker `worker` polls (and transmits on). */
void dp_port_queue_of(const struct dp *dp, uint32_t worker, uint16_t *port_out,
		      uint16_t *queue_out);
void dp_port_close(struct dp *dp);
/* The device's drops for `worker`'s counters DP_DEV_RX_MISSED and DP_DEV_XSK_RX_RING_FULL. */
void dp_port_drops(const struct dp *dp, uint32_t worker, uint64_t *rx_missed_out,
		   uint64_t *xsk_ring_full_out);

/* dp_net.c: L2/L3; consumes `m` (sent, kept for reassembly, or put on w->done). */
void dp_net_input(struct dp_worker *w, struct rte_mbuf *m, uint64_t now_tsc);
/* The reassembly table and big-datagram buffers of a worker. */
int dp_net_init(struct dp_worker *w);
void dp_net_fini(struct dp_worker *w);
/* After a burst: fragments given up are freed (counted), big buffers are free again. */
void dp_net_burst_end(struct dp_worker *w);
/*
 * A new packet to `peer` from our ingest port, with room for `payload_size`
 * bytes at *payload_out. NULL (counted) when the pool is empty.
 */
struct rte_mbuf *dp_net_udp_alloc(struct dp_worker *w, const struct dp_peer *peer,
				  uint16_t payload_size, uint8_t **payload_out);
/* Fills lengths and checksums once the payload is written; payload_size may shrink. */
void dp_net_udp_finish(struct rte_mbuf *m, uint16_t payload_size);
/* Builds and queues one TCP segment (dp_tcp's send op). 0, or -ENOBUFS (counted). */
int dp_net_tcp_send(struct dp_worker *w, const struct dp_tcp_out *out);

/* dp_worker.c */
/* A worker's parts (ingest, TCP, reassembly), allocated before it starts. */
int dp_worker_open(struct dp_worker *w);
void dp_worker_close(struct dp_worker *w);
static inline uint64_t
dp_worker_now_us(const struct dp_worker *w, uint64_t now_tsc)
{
	return now_tsc / w->tsc_per_us;
}
void dp_worker_tx(struct dp_worker *w, struct rte_mbuf *m);
/* Answers dp_worker_tx() can still hold before it drops (DP_TX_RX_HEADROOM). */
uint32_t dp_worker_tx_room(const struct dp_worker *w);
void dp_worker_tx_flush(struct dp_worker *w);
/* One pass of the poll loop; returns the work done (0 = idle). */
uint32_t dp_worker_poll(struct dp_worker *w, uint64_t now_tsc);
int dp_worker_main(void *arg);
/* Between passes: follows a dp_flush_staged() request (either backend's loop). */
void dp_worker_flush_check(struct dp_worker *w);

/* dp_route.c */
int dp_route_init(struct dp *dp);
void dp_route_fini(struct dp *dp);
/* Worker side, between quiescent states: the table pointer is stable. */
struct dp_route_table *dp_route_current(struct dp *dp);
/* Stream index in `table`, or -1. */
int32_t dp_route_find_stream(const struct dp_route_table *table, const char *name,
			     uint32_t name_size);
/* 0 and the shard, or -ENOENT when no range of the stream owns `key`. */
int dp_route_find_shard(const struct dp_route_table *table, int32_t stream_index,
			hashkey_t key, uint64_t *shard_id_out);
uint32_t dp_route_stream_id(const struct dp_route_table *table, int32_t stream_index);
/*
 * A shard-grouped frame's check: shard `shard_index` of the stream must be
 * open and own every one of the `count` big-endian hash keys. 0 and its log
 * shard id; -ENOENT when the shard is not open (the producer's map moved);
 * -ERANGE when a key lies outside it, *bad_index_out naming the first.
 */
int dp_route_check_grouped(const struct dp_route_table *table, int32_t stream_index,
			   uint32_t shard_index, const uint8_t *hash_keys, uint32_t count,
			   uint64_t *shard_id_out, uint32_t *bad_index_out);

/* dp_stats.c */
void dp_telemetry_register(struct dp *dp);

#endif /* SLUICE_DP_INTERNAL_H */
