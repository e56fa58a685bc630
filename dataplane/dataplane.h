/*
 * dataplane.h - the DPDK ingest dataplane: the only header other folders include.
 *
 * dp_open() initialises DPDK (EAL) from a struct dp_config, sets up its ports
 * (up to DP_PORTS_MAX) with one RX/TX queue pair per worker lcore in all,
 * sizes every pool, ring and table, and opens one log_producer per worker.
 * dp_start() launches the workers: each polls its own RX queue, answers ARP
 * and ICMP echo for the configured IPv4 address, decodes record frames
 * arriving on the ingest UDP port, routes every record to its shard through
 * the route table and stages it in a per-shard log batch; batches go to the
 * log when full or older than batch_age_us, and ACK frames go back once the
 * log reports them durable.
 * Workers transmit only on the TX queue (of the same port) whose index equals
 * their RX queue.
 *
 * With backend = DP_BACKEND_KERNEL there is no port: EAL starts without a
 * device (lcores and RCU only) and each worker takes the same frames on its
 * own kernel UDP socket and TCP listener bound to ipv4:ingest_port, through
 * io_uring, feeding the same staging, log and answers (dp_kernel.h).
 *
 * The control plane publishes the route table (stream name -> stream id, open
 * shards' hash-key ranges -> log shard id) with dp_route_publish(); workers
 * read it under RCU and never wait for a publisher.
 *
 * Memory: everything is sized and allocated in dp_open(); workers never
 *   allocate. Route builders are control-plane objects (malloc is fine there).
 * Threads: dp_open/dp_start/dp_stop/dp_close from one control thread;
 *   dp_stats_read and dp_route_publish from any one control thread at a time.
 * Errors: functions returning int return 0 or a negative errno.
 * DPDK: no rte_* type appears here; only dataplane/ includes DPDK headers.
 */
#ifndef SLUICE_DATAPLANE_H
#define SLUICE_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/hashkey.h"
#include "protocol/frame.h"

struct log;
struct dp;
struct dp_route_builder;

/* Largest number of worker lcores (and queue pairs) one dataplane runs. */
#define DP_WORKERS_MAX 16
/* Largest number of ports (devices) one dataplane polls; workers are spread over them. */
#define DP_PORTS_MAX 8
/* Producer HMAC keys the dataplane knows. */
#define DP_AUTH_KEYS_MAX 16
#define DP_PRODUCERS_MAX 262144      /* Bound of producers_max (a window is ~2.2 KiB). */
/*
 * Bounds of the other struct dp_config fields: the only place they are written
 * down. sluiced's configuration table uses them and --check-config runs
 * dp_config_check() itself, so a value dp_open() refuses is refused there first.
 */
#define DP_RING_SIZE_MIN 64u         /* RX/TX descriptors per queue, a power of two; */
#define DP_RING_SIZE_MAX 32768u      /* ... the largest that fits DPDK's uint16_t count. */
#define DP_MBUFS_MIN 1023u           /* A mempool of 2^n - 1 buffers packs best. */
#define DP_MBUFS_MAX 1048575u
#define DP_BATCH_AGE_US_MIN 1u
#define DP_BATCH_AGE_US_MAX 100000u  /* A staged record waits at most 100 ms. */
/* admit_wait_ms: admission by age (dp_ingest.h), the default and the bounds. */
#define DP_ADMIT_WAIT_MS_DEFAULT 200  /* Plain: config.c stringifies it. */
#define DP_ADMIT_WAIT_MS_MIN 1u
#define DP_ADMIT_WAIT_MS_MAX 10000u
#define DP_IDLE_POLLS_MAX 100000000u
#define DP_IDLE_SLEEP_US_MAX 100000u
#define DP_MTU_MIN 576u
#define DP_MTU_MAX 9000u
/* Bounds of the TCP receiver's sizes (struct dp_config tcp_*). */
#define DP_TCP_CONNECTIONS_MAX (1u << 22)   /* Per worker. */
#define DP_TCP_BUFFER_KB_MIN 4u
#define DP_TCP_BUFFER_KB_MAX 16384u         /* A receive buffer holds any legal frame. */
#define DP_TCP_BUFFERS_MAX 65536u           /* Per pool, per worker. */
#define DP_TCP_MSS_MIN 536u                 /* RFC 9293's default MSS. */
#define DP_TCP_TIMEOUT_S_MAX 86400u         /* Idle and keepalive: at most a day. */
#define DP_TCP_PARTIAL_FRAME_S_MAX 3600u

/* Where frames come from ([dataplane] backend). */
enum dp_backend {
	DP_BACKEND_DPDK,            /* A DPDK port (vdev or PCI), our own L2/L3/TCP. */
	DP_BACKEND_KERNEL,          /* Kernel UDP/TCP sockets through io_uring; no port. */
};

/* ---- Cluster mode ---------------------------------------------------------- */

/* A shard's leader's dataplane address (nodes/<id>'s dp_addr), host byte order. */
struct dp_leader {
	uint32_t ipv4;
	uint16_t port;
};

/*
 * A cluster node's dataplane (docs/CLUSTER.md, "The dataplane in cluster mode"):
 * frames for shards led here are appended in the leader epoch and ACKed only once
 * the replicas [cluster] acks asks for hold them (the rule PutRecords follows);
 * frames for shards led elsewhere are NACKed not_leader, naming the leader. sluiced
 * fills this from its cluster node (the dataplane includes nothing of control/); it
 * is copied at dp_open and must outlive the dataplane. Every op may be called from
 * every worker at once (each takes its owner's lock briefly: once per shard of a
 * frame, once per batch completed, and once per run of a waiting frame each time
 * acked_gen moves).
 */
struct dp_cluster {
	void *ctx;
	/*
	 * 0: log shard `log_id` is led here, in epoch *epoch_out (appends carry it, so the
	 * log refuses them once this node promised a newer leader). -EREMOTE: another
	 * node leads it, its dataplane address in *leader_out. -ENOENT: no leader known
	 * (or its address is not an IPv4 address and port).
	 */
	int (*lead)(void *ctx, uint64_t log_id, uint64_t *epoch_out,
		    struct dp_leader *leader_out);
	/*
	 * Every record of the log shard below *seq_out is held by the replicas [cluster]
	 * acks asks for. -ENOENT / -ESTALE: not led here (any more): never ACK.
	 */
	int (*acked)(void *ctx, uint64_t log_id, uint64_t *seq_out);
	/* The shard's records below seq_end are durable here: ship them now. */
	void (*durable)(void *ctx, uint64_t log_id, uint64_t seq_end);
	/*
	 * The doorbell: raised (release) after any answer of `acked` may have moved. A
	 * worker with frames waiting for replicas asks `acked` again only when it moved:
	 * one load per poll pass, no fd to share among workers, no polling thread.
	 */
	const _Atomic uint64_t *acked_gen;
};

struct dp_config {
	enum dp_backend backend;
	const char *eal_args;       /* Extra EAL arguments, space separated ("" or NULL). */
	const char *vdev;           /* Virtual devices, ';' separated ("" or NULL: use
				     * PCI/eal_args ports). net_af_xdp entries without
				     * queue_count get workers / devices queues. */
	const char *file_prefix;    /* EAL --file-prefix; NULL: "sluice-<pid>". */
	bool no_huge;               /* --no-huge (anonymous memory, -m sized from mbufs). */
	bool in_memory;             /* --in-memory (hugepages, no runtime files). */
	bool telemetry;             /* Keep DPDK telemetry on (registers /sluice/dp/stats). */
	uint32_t ipv4;              /* Our address, host byte order. */
	uint16_t ingest_port;       /* UDP port of the record-frame protocol. */
	uint32_t workers;           /* Worker lcores, 1 .. DP_WORKERS_MAX. */
	uint32_t batch_age_us;      /* A staged batch goes to the log at most this old. */
	uint32_t admit_wait_ms;     /* Durable ACKs this late: refuse new frames (dp_ingest.h). */
	uint32_t producers_max;     /* Producer ids with a dedup window, per worker. */
	uint32_t idle_polls;        /* Empty polls before napping; 0 = never sleep. */
	uint32_t idle_sleep_us;     /* Longest nap of an idle worker (dp_worker.c). */
	uint32_t mbufs;             /* Packet buffers in the mempool. */
	uint32_t ring_size;         /* RX/TX descriptors per queue (power of two). */
	uint32_t mtu;               /* IP MTU of the port, DP_MTU_MIN .. DP_MTU_MAX (jumbo:
				     * packets span chained mbufs where the device scatters). */
	/*
	 * TCP ingest on the same port (dp_tcp.h), sizes per worker. A receive
	 * buffer assembles a frame that spans segments (so it bounds the largest
	 * frame a TCP producer may send) and keeps out-of-order data; a send
	 * buffer keeps answers until the producer acknowledges them.
	 */
	uint32_t tcp_connections;   /* Connection table entries (~0.3 KiB each). */
	uint32_t tcp_half_open;     /* Half-open entries before SYN cookies. */
	uint32_t tcp_per_source;    /* Connections from one IPv4 address. */
	uint32_t tcp_rx_buffers;
	uint32_t tcp_rx_buffer_kb;
	uint32_t tcp_tx_buffers;
	uint32_t tcp_tx_buffer_kb;
	uint32_t tcp_mss;           /* Largest segment taken (MTU - 40). */
	uint32_t tcp_idle_timeout_s; /* No data this long: reset (0: never). */
	uint32_t tcp_keepalive_s;   /* Silence before keepalive probes (0: none). */
	uint32_t tcp_partial_frame_s; /* A frame left incomplete this long: reset. */
	struct log *log;            /* Where records go; one producer per worker is opened.
				     * NULL: every frame is refused THROTTLED (L2/L3 only). */
	const struct dp_cluster *cluster; /* Cluster mode (copied), or NULL: single node. */
	const struct frame_auth_key *auth_keys; /* Copied at open; up to DP_AUTH_KEYS_MAX. */
	uint32_t auth_key_count;
	bool auth_required;         /* Refuse frames without a valid HMAC tag. */
	uint32_t auth_window_ms;    /* Accepted |now - signing time| of a tag. */
	/*
	 * Benchmarks only: skip the duplicate check (a pcap replays the same
	 * frames forever) and hand full batches back unsubmitted (measures
	 * staging without the disk).
	 */
	bool bench_no_dedup;
	bool bench_discard_batches;
};

/* dp_config with the defaults of docs/CONFIG.md's [dataplane] section. */
void dp_config_default(struct dp_config *config);

/*
 * The checks dp_open() runs: 0, or -EINVAL with *field_out (when not NULL)
 * naming the struct dp_config field at fault ("ring_size", ...). Touches no
 * DPDK state: --check-config calls it without starting anything.
 */
int dp_config_check(const struct dp_config *config, const char **field_out);

/*
 * Initialises DPDK, the port, pools and per-worker state. Call once per
 * process (DPDK's EAL cannot be initialised twice). -EINVAL on a bad config,
 * -ENODEV when no port exists, -ENOMEM, or the errno DPDK reported.
 */
int dp_open(const struct dp_config *config, struct dp **dp_out);
/* Launches the worker lcores. */
int dp_start(struct dp *dp);
/* Asks the workers to stop, waits for them; staged batches are submitted first. */
void dp_stop(struct dp *dp);
/* Stops if needed, closes the port, producers and EAL. */
void dp_close(struct dp *dp);

/* ---- Counters -------------------------------------------------------------- */

/* Per-worker counters, single writer each; dp_stats_read sums them. */
enum dp_counter {
	DP_RX_PACKETS,
	DP_RX_BYTES,
	DP_TX_PACKETS,
	DP_TX_BYTES,
	DP_TX_DROPPED,          /* The TX queue was full. */
	DP_ARP_REPLIES,
	DP_ICMP_ECHO_REPLIES,
	DP_DROP_NOT_OURS,       /* Another MAC or IPv4 address. */
	DP_DROP_UNKNOWN,        /* Unknown ethertype, protocol, ARP op, ICMP type. */
	DP_DROP_MALFORMED_L2L3, /* Short or lying Ethernet/IPv4/UDP headers. */
	DP_DROP_BAD_CHECKSUM,
	DP_DROP_FRAGMENT,       /* IPv4 fragments given up: timeout, more than 8, table full. */
	DP_RX_FRAGMENTS,        /* IPv4 fragments taken into reassembly ... */
	DP_REASSEMBLED,         /* ... and the datagrams they made whole. */
	DP_DROP_WRONG_PORT,     /* UDP to a port other than ingest_port. */
	DP_DROP_MULTI_SEGMENT,  /* Chained: headers beyond the first buffer, or an ICMP echo. */
	DP_FRAMES_ACCEPTED,
	DP_FRAMES_MALFORMED,
	DP_FRAMES_UNAUTHENTICATED,
	DP_FRAMES_KEY_MISMATCH, /* Signed under a key other than the one its producer id is
				 * bound to (or unsigned once bound): NACKed auth_failed. */
	DP_FRAMES_DUPLICATE,    /* Stored or being stored already; or a stale epoch or
				 * a sequence older than the duplicate window. */
	DP_FRAMES_UNKNOWN_STREAM,
	DP_FRAMES_SHARD_GROUPED, /* SHARD_RECORDS frames accepted (also in frames_accepted). */
	DP_FRAMES_WRONG_SHARD,  /* SHARD_RECORDS for a shard not open: the producer's map moved. */
	/* Cluster mode (struct dp_cluster). */
	DP_FRAMES_REDIRECTED,   /* NACKed not_leader: another node leads the shard (named). */
	DP_FRAMES_NO_LEADER,    /* NACKed throttled: no leader (or its address) known yet. */
	DP_FRAMES_SPLIT_LEADERS, /* RECORDS frames over shards of different leaders: refused. */
	DP_FRAMES_REPLICATING,  /* Durable here, then waited for the replicas before the ACK. */
	DP_FRAMES_LEADERSHIP_LOST, /* Leadership ended while waiting: NACKed, never ACKed. */
	DP_RECORDS_STAGED,
	DP_RECORD_BYTES_STAGED,
	DP_RECORDS_DURABLE,
	DP_RECORDS_FAILED,      /* The log completed their batch with an error. */
	DP_DROP_NO_ROUTE,       /* No open shard owns the record's hash key. */
	DP_DROP_NO_BATCH,       /* The log's batch pool or our staging was exhausted. */
	DP_DROP_FRAMES_FULL,    /* No free slot to track a frame until its ACK. */
	DP_DROP_FRAMES_LATE,    /* Durable ACKs came too late (admit_wait_ms): behind the log. */
	DP_DROP_PRODUCERS_FULL, /* A new producer id found every dedup window taken. */
	DP_DROP_NO_MBUF,
	DP_RING_FULL,           /* log_batch_submit() said -EAGAIN. */
	DP_BATCHES_SUBMITTED,
	DP_ACKS_SENT,
	DP_NACKS_SENT,
	DP_NACKS_SUPPRESSED,    /* Throttled NACKs over the rate limit. */
	DP_MD5_COMPUTED,
	DP_MD5_CACHE_HITS,
	DP_POLLS,
	DP_POLLS_BUSY,          /* Polls that did work: busy ratio = busy / polls. */
	DP_IDLE_SLEEPS,
	DP_RX_PAUSED,           /* Polls that took no RX burst: the TX backlog had no room
				 * for their answers (the device was not taking them).
				 * Requests wait in the device meanwhile. */
	/*
	 * The device's own drops, read from it when the counters are read (not
	 * counted by the worker): dev_rx_missed, the port's rte_eth_stats imissed +
	 * rx_nombuf (port-wide: on the worker of the port's queue 0); and on AF_XDP,
	 * dev_xsk_rx_ring_full, datagrams the kernel dropped because the worker's XDP
	 * socket's RX ring was full (XDP_STATISTICS; DPDK 22.11's imissed leaves it out).
	 */
	DP_DEV_RX_MISSED,
	DP_DEV_XSK_RX_RING_FULL,
	/* TCP (dp_tcp.h): connections, segments, refusals, timeouts. */
	DP_TCP_SEGMENTS_IN,
	DP_TCP_SEGMENTS_OUT,
	DP_TCP_CONNS_OPENED,    /* Reached ESTABLISHED; open now = opened - closed. */
	DP_TCP_CONNS_CLOSED,
	DP_TCP_SYN_COOKIES_SENT,
	DP_TCP_SYN_COOKIES_OK,  /* A cookie's ACK opened a connection. */
	DP_TCP_RESETS_SENT,
	DP_TCP_RESETS_RECEIVED,
	DP_TCP_REFUSED_TABLE_FULL,
	DP_TCP_REFUSED_PER_SOURCE,
	DP_TCP_REFUSED_PORT,    /* A SYN or segment to another port: RST. */
	DP_TCP_BAD_SEGMENT,     /* Bad header length or options. */
	DP_TCP_OUT_OF_WINDOW,   /* Unacceptable sequence numbers: ACK and drop (RST: drop). */
	DP_TCP_PAWS_DROPS,
	DP_TCP_CHALLENGE_ACKS,  /* RFC 5961 (sent). */
	DP_TCP_CHALLENGE_SUPPRESSED,
	DP_TCP_BAD_ACK,         /* Acknowledges what we never sent. */
	DP_TCP_DUP_BYTES,       /* Received again (first copy kept). */
	DP_TCP_OOO_SEGMENTS,
	DP_TCP_OOO_DROPPED,     /* No room or no range left for it. */
	DP_TCP_RX_NO_BUFFER,    /* Receive pool empty: data left unacknowledged. */
	DP_TCP_BLOCKED,         /* Ingest pushed back: a connection stopped consuming. */
	DP_TCP_ZERO_WINDOWS,    /* Windows of zero advertised. */
	DP_TCP_RETRANSMITS,
	DP_TCP_FAST_RETRANSMITS,
	DP_TCP_FRAMES_IN,       /* Whole frames handed to ingest. */
	DP_TCP_FRAMING_ERRORS,  /* The byte stream is not framed: RST. */
	DP_TCP_FRAME_TOO_LARGE, /* Larger than a receive buffer: RST. */
	DP_TCP_TIMEOUT_RETRANSMIT, /* Gave up retransmitting: RST. */
	DP_TCP_TIMEOUT_IDLE,
	DP_TCP_TIMEOUT_KEEPALIVE,
	DP_TCP_TIMEOUT_PARTIAL, /* A frame left incomplete (slowloris): RST. */
	DP_TCP_ANSWERS_ORPHANED, /* The connection closed before its answer. */
	/* Kernel backend (dp_kernel.h); its TCP uses the DP_TCP_* counters that apply. */
	DP_KERNEL_RX_NO_BUFFER, /* A multishot receive found its buffer ring empty: re-armed. */
	DP_KERNEL_TRUNCATED,    /* A datagram larger than a receive buffer (dropped). */
	DP_KERNEL_ERRORS,       /* Unexpected completion errors (accept, submit). */
	DP_KERNEL_RX_DROPPED,   /* Datagrams the kernel dropped on our full socket buffer. */
	DP_COUNTER_COUNT,
};

struct dp_stats {
	uint64_t counters[DP_COUNTER_COUNT];
};

/* "rx_packets", ... : the name telemetry and tools show for a counter. */
const char *dp_counter_name(enum dp_counter counter);

/* Sums every worker's counters (relaxed reads; each counter is monotonic). */
void dp_stats_read(const struct dp *dp, struct dp_stats *stats_out);
/* One worker's counters; worker < workers. */
void dp_worker_stats_read(const struct dp *dp, uint32_t worker, struct dp_stats *stats_out);

/*
 * Records made durable per stream (the status page's per-stream dataplane
 * figures), counted per worker when a batch completes, not per record: one
 * lookup per batch. Each worker tracks the first DP_STREAM_COUNTS_MAX streams
 * it sees (ids are never reused, a slot is never freed); records of streams
 * beyond those count under stream id DP_STREAM_COUNT_OTHER.
 */
#define DP_STREAM_COUNTS_MAX 256u
#define DP_STREAM_COUNT_OTHER UINT32_MAX

struct dp_stream_count {
	uint32_t stream_id;
	uint64_t records;
};

/* One worker's per-stream counts (relaxed reads): how many it wrote to `out` (<= max). */
uint32_t dp_worker_stream_counts(const struct dp *dp, uint32_t worker,
				 struct dp_stream_count *out, uint32_t max);

/* ---- Route table ----------------------------------------------------------- */

/*
 * A builder collects streams and their open shards' hash-key ranges; publish
 * turns it into the table the workers use. Limits are given at open.
 */
int dp_route_builder_open(uint32_t streams_max, uint32_t ranges_max,
			  struct dp_route_builder **builder_out);
void dp_route_builder_close(struct dp_route_builder *builder);

/* -EEXIST for a name or id added twice; -EINVAL for a bad name; -ENOSPC when full. */
int dp_route_add_stream(struct dp_route_builder *builder, const char *name, uint32_t stream_id);
/*
 * Adds an open shard of `stream_id`: hash keys start..end (inclusive) go to
 * log shard `shard_id`. -ENOENT for an unknown stream; -EINVAL when start >
 * end; -ENOSPC when full. Overlaps are found by dp_route_publish().
 */
int dp_route_add_range(struct dp_route_builder *builder, uint32_t stream_id, hashkey_t start,
		       hashkey_t end, uint64_t shard_id);

/*
 * Builds the table from the builder (which stays the caller's; its entries are
 * sorted in place), swaps it in,
 * waits for every worker to pass a quiescent state, then frees the old table.
 * Workers never wait. -EINVAL when a stream's ranges overlap; -ENOMEM.
 */
int dp_route_publish(struct dp *dp, struct dp_route_builder *builder);

/*
 * Resharding's cut (docs/ARCHITECTURE.md, "Resharding"): asks every worker to
 * submit to the log all it has staged, and waits until each has, or is
 * asleep with nothing staged. Called after dp_route_publish() returned, it
 * means: every record routed with an older table is in the log's hands. A
 * sleeping worker answers when it wakes (idle_sleep_us). -ETIMEDOUT after
 * `timeout_ms`; 0 at once when the workers are not running.
 */
int dp_flush_staged(struct dp *dp, uint32_t timeout_ms);

/* Routes one hash key as a worker would, from the control thread (tests, tools). */
int dp_route_lookup(struct dp *dp, const char *stream_name, hashkey_t key, uint64_t *shard_id_out);

#endif /* SLUICE_DATAPLANE_H */
