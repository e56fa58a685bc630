/*
 * dp_ingest.h - a worker's ingest state (private to dataplane/): record frames
 * from UDP datagrams -> route -> per-shard staging batches -> the log, and
 * log completions -> ACK frames.
 *
 * The parts, each with its own state embedded in struct dp_ingest:
 *   dp_ingest.c   frames: decode, checks, held frames, answers (ACK/NACK)
 *   dp_hash.h/.c  the hash keys of a burst's records (key cache, MD5 jobs)
 *   dp_dedup.h/.c producer id -> duplicate window
 *   dp_stage.c    per-shard staging batches (declared below); a finished
 *                 batch comes back as one struct dp_record_done per record
 *
 * A frame is staged whole or not at all (the protocol ACKs or NACKs a batch
 * whole): before its first record is added, the worker holds a spare log
 * batch and a batch slot per distinct shard the frame touches (opening a
 * batch for each, or replacing each once when it fills: a datagram is far
 * smaller than a batch), plus one per DP_BATCH_REFS_MAX records, plus one.
 * Otherwise the frame is NACKed THROTTLED and nothing of it is stored.
 *
 * Memory: every array below is allocated in dp_ingest_init(), sized by the
 * limits here; nothing is allocated afterwards.
 */
#ifndef SLUICE_DP_INGEST_H
#define SLUICE_DP_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

#include "dataplane/dp_dedup.h"
#include "dataplane/dp_hash.h"
#include "protocol/frame.h"

struct dp_worker;
struct log_producer;
struct log_batch;
struct log_record_in;
struct dp_route_table;

#define DP_BATCH_SLOTS 4096         /* Log batches open or in flight per worker. */
#define DP_BATCH_REFS_MAX 256       /* Records per batch (a full batch is submitted). */
#define DP_COMPLETIONS_BURST 32     /* Log completions taken per poll, and the outcomes ... */
#define DP_RECORDS_DONE_MAX (DP_COMPLETIONS_BURST * DP_BATCH_REFS_MAX) /* ... of their records. */
#define DP_OPEN_HASH_SIZE 8192      /* Shard -> open slot; power of two >= 2 x slots. */
#define DP_SPARES_MAX 32            /* Spare log batches: distinct shards per frame. */
/*
 * Frames waiting for a durable ACK per worker: with the log's durable latency L, a
 * worker takes at most DP_FRAME_SLOTS / L frames a second (512 capped it near 300 k
 * records/s at 12 a frame and L = 18 ms on the shared dev VM). Each slot's results
 * take 8 KB of address space (32 MiB a worker), touched only as far as frames use it.
 */
#define DP_FRAME_SLOTS 4096
/*
 * Admission by age: frame slots bound memory, not how long an admitted frame waits
 * for the log (at twice the saturating rate 4,096 slots meant seconds). Once per
 * DP_ADMIT_INTERVAL_MS, a worker whose fastest durable ACK in the interval came more
 * than `[dataplane] admit_wait_ms` after its frame is behind: it refuses new durable
 * frames THROTTLED (drop_frames_late) until an interval's fastest ACK is in time again,
 * or none is waiting. (CoDel's idea: the minimum, so one slow batch does not trip it.)
 */
#define DP_ADMIT_INTERVAL_MS 100
/*
 * A stopping worker waits this long for the log to finish what it submitted so that
 * each frame it took gets its answer (dp_ingest_drain): the log's group commit takes
 * milliseconds; a log this far behind was refusing frames by age already.
 */
#define DP_STOP_DRAIN_MS 2000
/* Kinesis stamps arrival in milliseconds: a grouped record is stamped at most this early. */
#define DP_GROUPED_ARRIVAL_SKEW_NS 1000000u
#define DP_FRAME_RECORDS_MAX FRAME_RECORDS_MAX /* Records of one frame (TCP: up to 500). */
#define DP_SHARDS_SEEN_SIZE 1024    /* Distinct shards of one frame: >= 2 x its records. */
#define DP_HELD_FRAMES 64           /* Frames held in one RX burst (DP_HELD_RECORDS). */
/*
 * UDP NACKs: a token bucket per worker, at least this deep, at least two RX
 * rings deep (a worker back from a stall may find a full ring of frames to
 * refuse, and each is owed its NACK) and at least DP_NACK_STALL_MS of refill
 * (a memif client sizes the rings, 8,192 slots for sluice-dp-gen, beyond
 * ring_size: 126,862 NACKs a run went unsent at 1 record per datagram) ...
 */
#define DP_NACK_BURST_MIN 256
#define DP_NACK_STALL_MS 20
#define DP_NACK_PER_S 1000000       /* ... refilled at this rate (about what a worker can
				     * answer; a NACK is never larger than the frame it
				     * answers: no amplification to limit). */
/*
 * Credit hints (docs/PROTOCOL.md section 4) in every UDP answer: how much a
 * producer may keep unacknowledged, from how loaded the worker is. Busy
 * (frame slots half used, or RX bursts full DP_CREDIT_BUSY_STREAK polls in a
 * row): DP_CREDIT_LOW_BYTES. Overloaded (a tenth of the slots left, or
 * DP_CREDIT_PAUSE_STREAK full bursts in a row): 0, "pause" (one batch each).
 * Producers slow down before the device drops packets they would wait for.
 */
#define DP_CREDIT_LOW_BYTES (8u * 1472u)
#define DP_CREDIT_BUSY_STREAK 2
#define DP_CREDIT_PAUSE_STREAK 8
#define DP_NACK_RETRY_MS 2
/*
 * Cluster mode: frames waiting for replicas are looked at again when the doorbell
 * (struct dp_cluster's acked_gen) moves, and at least this often besides: the
 * safety net for a change that rings no doorbell (the API thread's 10 ms tick).
 */
#define DP_REPLICATION_RECHECK_MS 10
#define DP_UDP_PAYLOAD_MAX 1472     /* ACKs fit a 1500-byte MTU. */

#define DP_REF_NO_ACK UINT32_MAX

/*
 * Where an answer goes: the L2/L3/L4 source of a UDP datagram, or a TCP
 * connection (an entry of the worker's dp_tcp and its incarnation). With
 * `kernel` (backend = kernel, dp_kernel.h) the same through kernel sockets:
 * a datagram's source address and port (no mac), or a connection slot of the
 * worker's dp_kernel and its incarnation.
 */
struct dp_peer {
	struct rte_ether_addr mac;
	uint32_t ipv4_be;
	uint16_t port_be;
	bool tcp;
	bool kernel;
	uint32_t tcp_conn;
	uint32_t tcp_gen;
};

/*
 * Staged records: which frame, and which of its records (`count` from
 * record_index, consecutive in the frame and in the batch: one for a record
 * of a RECORDS frame, a whole block's part for SHARD_RECORDS).
 */
struct dp_record_ref {
	uint32_t frame_slot;        /* DP_REF_NO_ACK when no durable ACK is wanted. */
	uint16_t record_index;
	uint16_t count;
};

/*
 * Staged records' outcome, from staging back to ingest (dp_stage_completions):
 * which frame to tell, where the records went and how it ended.
 */
struct dp_record_done {
	struct dp_record_ref ref;
	uint64_t shard_id;
	uint64_t seq;               /* The first one's sequence number when error == 0. */
	int32_t error;              /* 0: durable; else the log's negative errno. */
};

struct dp_batch_slot {
	struct log_batch *batch;
	uint64_t shard_id;
	uint64_t epoch;             /* The leader epoch its records are appended in (cluster
				     * mode), else LOG_EPOCH_NONE: the log fences a stale one. */
	uint64_t opened_tsc;
	uint32_t ref_count;
	uint32_t record_count;      /* Records in the batch (refs may cover several each). */
	uint32_t open_position;     /* Index in open_list, UINT32_MAX when not open. */
	int32_t error;              /* Why the log refused it at submit (on failed_list). */
	struct dp_record_ref *refs; /* DP_BATCH_REFS_MAX */
};

struct dp_record_result {
	uint64_t seq;
	uint32_t shard_index;
};

struct dp_frame_slot {
	struct dp_peer peer;
	uint64_t admit_tsc;         /* When it was accepted (admission by age). */
	uint64_t producer_id;
	uint64_t batch_seq;
	uint32_t epoch;
	uint32_t stream_id;         /* Cluster mode: its runs' log shards, for the acks. */
	uint16_t record_count;
	uint16_t records_left;
	uint16_t records_stored;    /* Durable so far: a failed frame with any is not retried. */
	int32_t error;              /* First log error among its batches. */
	const struct frame_auth_key *sign_key; /* The frame's verified key: signs its answer. */
	struct dp_record_result *results; /* DP_FRAME_RECORDS_MAX */
};

/* A shard the frame being routed has touched, when `stamp` is the current one. */
struct dp_shard_seen {
	uint64_t shard;
	uint64_t epoch;             /* Cluster mode: the epoch it is led in (dp_ingest_leads). */
	uint32_t stamp;
};

/*
 * A frame of the current RX burst, decoded and checked, waiting for the
 * burst's hash and routing passes (dp_ingest_burst_end).
 */
struct dp_held_frame {
	struct frame_records fr;    /* Points into an mbuf freed only after the burst. */
	struct dp_peer peer;
	const struct dp_route_table *table;
	int32_t stream;
	uint32_t hash_first;        /* Its records in hash.hashes[] and frame_shards[]. */
	int32_t shard_count;        /* Distinct shards once routed; -ENOENT: a key has none. */
};

struct dp_ingest {
	/* Staging (dp_stage.c). */
	struct log_producer *producer;
	int completion_fd;          /* The producer's nap eventfd: wakes a napping worker; or -1. */
	uint64_t batch_age_tsc;
	uint64_t flush_scan_tsc;    /* Last scan of the open batches for age. */
	uint64_t now_real_ns;       /* Wall clock of the current poll pass ... */
	uint64_t real_base_ns;      /* ... counted from the TSC since the clock was last */
	uint64_t real_base_tsc;     /* ... read here (once a second). */
	uint64_t nack_tokens;
	uint64_t nack_burst;        /* The bucket's depth (see DP_NACK_BURST_MIN). */
	uint64_t nack_refill_tsc;
	uint64_t now_tsc;           /* The current poll pass's TSC. */
	uint64_t admit_wait_tsc;    /* [dataplane] admit_wait_ms */
	uint64_t admit_interval_tsc; /* DP_ADMIT_INTERVAL_MS */
	uint64_t admit_interval_start;
	uint64_t wait_min_tsc;      /* The fastest durable ACK's wait this interval. */
	bool behind;                /* Refusing new durable frames (admission by age). */
	uint32_t in_flight;         /* Batches submitted, not yet completed. */
	uint32_t open_count;
	uint32_t retry_count;       /* Batches whose submit found the ring full. */
	uint32_t failed_count;      /* Batches the log refused, their records not yet reported. */
	uint32_t spare_count;
	uint32_t slot_free_count;
	uint32_t frame_free_count;
	struct dp_batch_slot *slots;
	uint32_t *slot_free;
	uint32_t *open_list;
	uint32_t *retry_list;
	uint32_t *failed_list;      /* In the order they failed. */
	uint32_t *open_hash;        /* slot + 1, 0 = empty; linear probing. */
	struct log_batch *spares[DP_SPARES_MAX];
	/* Frames waiting for a durable ACK, and the outcomes that complete them. */
	struct dp_frame_slot *frames;
	uint32_t *frame_free;
	struct frame_ack_run *runs; /* Scratch: DP_FRAME_RECORDS_MAX. */
	struct dp_record_done *done; /* Scratch: DP_RECORDS_DONE_MAX, filled by dp_stage. */
	/* The current RX burst's held frames. */
	struct dp_hash hash;        /* Their hash keys (and the key cache). */
	uint64_t *frame_shards;     /* DP_HELD_RECORDS: shard per record of held frames. */
	struct dp_held_frame *held; /* DP_HELD_FRAMES, in arrival order. */
	uint32_t held_count;
	struct dp_shard_seen *shards_seen; /* DP_SHARDS_SEEN_SIZE, stamped per routed frame. */
	uint32_t shards_seen_stamp;
	/*
	 * Cluster mode: frames durable here whose replicas do not hold them yet. They
	 * keep their frame slots (so back-pressure is the slots', as for the log) and
	 * are looked at again when the doorbell (struct dp_cluster's acked_gen) moves.
	 */
	uint32_t *replicating;      /* DP_FRAME_SLOTS frame slot numbers. */
	uint32_t replicating_count;
	uint64_t acked_gen_seen;
	uint64_t replication_check_tsc; /* The last look at them (DP_REPLICATION_RECHECK_MS). */
};

int dp_ingest_init(struct dp_worker *w);
void dp_ingest_fini(struct dp_worker *w);
/*
 * One UDP payload to the ingest port. Its frames are held until
 * dp_ingest_burst_end(): the payload must stay valid until then.
 */
void dp_ingest_datagram(struct dp_worker *w, const struct dp_peer *peer, const uint8_t *payload,
			uint32_t size, uint64_t now_tsc);
/*
 * One whole frame from TCP connection (conn, gen) (dp_tcp's frame op), held
 * like a datagram's until dp_ingest_burst_end(). Every frame so handed over
 * ends in exactly one dp_tcp_answer() or dp_tcp_unanswered().
 */
void dp_ingest_tcp_frame(struct dp_worker *w, uint32_t conn, uint32_t gen, const uint8_t *frame,
			 uint32_t size, uint64_t now_tsc);
/* Room for one more frame now (dp_tcp's can_take op): staging and frame slots. */
bool dp_ingest_can_take(struct dp_worker *w);
/* The credit hint for a worker with `frames_free` of DP_FRAME_SLOTS and RX pressure. */
uint32_t dp_ingest_credit(uint32_t frames_free, uint32_t rx_full_streak);
/*
 * The ACK without its runs (NO_DETAIL): what a TCP answer falls back to when the room
 * reserved for it (DP_TCP_ANSWER_MAX) cannot hold every run.
 */
struct frame_ack dp_ingest_ack_without_detail(const struct frame_ack *ack);
/*
 * After the datagrams of one RX burst (before its mbufs are freed): their
 * hash keys (dp_hash_compute), then the frames held for them, in order.
 */
void dp_ingest_burst_end(struct dp_worker *w, uint64_t now_tsc);
/* Completions -> ACKs, aged batches -> log, spare refill. Returns the work done. */
uint32_t dp_ingest_poll(struct dp_worker *w, uint64_t now_tsc);
/* Nothing staged or waiting to be submitted: the worker may sleep. */
bool dp_ingest_is_idle(const struct dp_worker *w);
/*
 * At stop (the worker no longer takes frames): submits what is staged and waits for its
 * completions, answering every frame taken (ACK once durable, NACK when the log refused
 * it), for at most DP_STOP_DRAIN_MS. Returns the frames still unanswered then (their
 * batches not finished by the log): their producers retry, as after a crash.
 */
uint32_t dp_ingest_drain(struct dp_worker *w);

/* dp_stage.c: per-shard staging batches. */
int dp_stage_init(struct dp_worker *w);
void dp_stage_fini(struct dp_worker *w);
/*
 * Are spares and slots free for a frame of `record_count` records in
 * `shard_count` shards? Tops the spares up from the log's pool first.
 */
bool dp_stage_can_take(struct dp_worker *w, uint32_t shard_count, uint32_t record_count);
/*
 * Adds one record to the shard's batch of leader epoch `epoch` (an open batch of
 * another epoch is submitted first); 0, -ENOBUFS when no batch is left (the reservation fell
 * short), or -EMSGSIZE / -EINVAL when the log refuses it (never -ENOSPC).
 */
int dp_stage_add(struct dp_worker *w, uint64_t shard_id, uint64_t epoch,
		 const struct log_record_in *record, struct dp_record_ref ref, uint64_t now_tsc);
/*
 * Stages a shard-grouped frame's record block (the log's encoding) into the
 * shard's batch with one copy per batch it spans. *ref covers the block's
 * records; on an error it is left covering those not staged (the caller
 * reports them failed). Records appended to an open batch take its base
 * arrival, so one older than DP_GROUPED_ARRIVAL_SKEW_NS is submitted first.
 */
int dp_stage_add_encoded(struct dp_worker *w, uint64_t shard_id, uint64_t epoch,
			 const uint8_t *records, uint32_t size, struct dp_record_ref *ref,
			 uint64_t now_tsc);
/* When the oldest open batch reaches the age limit (TSC); UINT64_MAX with none open. */
uint64_t dp_stage_deadline(const struct dp_worker *w);
/* Submits batches older than the age limit (all of them with `all`). */
uint32_t dp_stage_flush(struct dp_worker *w, uint64_t now_tsc, bool all);
/* Refills spares and retries ring-full submits. */
uint32_t dp_stage_refill(struct dp_worker *w);
/*
 * Finished batches -> the outcome of each of their records in done[0 .. n),
 * n returned (<= done_max, which holds at least one full batch): first the
 * batches the log refused at submit, then the log's completions. A batch is
 * taken only when all its records fit; the rest wait for the next call, so no
 * outcome is ever dropped.
 */
uint32_t dp_stage_completions(struct dp_worker *w, struct dp_record_done *done,
			      uint32_t done_max);

#endif /* SLUICE_DP_INGEST_H */
