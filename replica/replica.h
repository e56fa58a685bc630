/*
 * replica.h - quorum replication of shard logs, leader -> followers (issue 15):
 * the only header other folders include. docs/CLUSTER.md has the design, the
 * protocol and the failure table.
 *
 * A leader ships the durable records of the shards it leads to each follower
 * over one persistent TCP connection per follower (the link). A follower
 * appends them to its own log with the leader's sequence numbers and answers
 * with its durable end. Every shard has a leader epoch (from the cluster's
 * metadata, etcd): a follower refuses anything from an older epoch, and on
 * (re)connect the pair runs Kafka's OffsetsForLeaderEpoch handshake so the
 * follower cuts any divergent tail before it takes new records. The leader
 * computes, per shard, what `acks = leader | quorum | all` replicas hold
 * durably (replica_acked) and keeps its log's replicated watermark there, so
 * readers never see what a quorum does not hold.
 *
 * Threads: a leader runs one thread for all its links, a follower one for all
 * its connections (poll loops: a handful of sockets, each carrying large
 * frames; the log's io_uring is the log's own, docs/CLUSTER.md says why).
 * The functions below may be called from any thread.
 * Errors: functions returning int return 0 or a negative errno.
 */
#ifndef SLUICE_REPLICA_H
#define SLUICE_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "nvme-log/log.h"

#define REPLICA_FOLLOWERS_MAX 4u          /* Followers per leader: replication factor <= 5. */
#define REPLICA_SHARDS_MAX 4096u          /* Shards one leader leads / one follower follows. */
#define REPLICA_CONNS_MAX 16u             /* Leaders one follower serves at once. */
#define REPLICA_HOST_SIZE_MAX 64u
/* Bytes shipped to one follower and not yet acknowledged (back-pressure). */
#define REPLICA_INFLIGHT_BYTES_MIN (1u << 20)
#define REPLICA_INFLIGHT_BYTES_MAX (1u << 30)
#define REPLICA_INFLIGHT_BYTES_DEFAULT (16u << 20)
#define REPLICA_RECONNECT_NS 50000000ull  /* A lost link is dialled again after 50 ms. */
/* A link waiting for an answer (handshake, ACKs) that hears nothing this long is reset. */
#define REPLICA_LINK_SILENCE_NS (10ull * 1000000000ull)

enum replica_acks {
	REPLICA_ACKS_LEADER,   /* The leader's durable end. */
	REPLICA_ACKS_QUORUM,   /* What a majority of the replicas (leader included) hold. */
	REPLICA_ACKS_ALL,      /* What every replica holds. */
};

struct replica_peer {
	char host[REPLICA_HOST_SIZE_MAX];  /* Numeric IPv4 address. */
	uint16_t port;
};

/* ---- Leader -------------------------------------------------------------- */

struct replica_leader;

struct replica_leader_config {
	struct log *log;           /* Opened with watermark_gated: else its readers see
				    * everything until the first watermark is set. */
	struct replica_peer followers[REPLICA_FOLLOWERS_MAX];
	uint32_t follower_count;
	uint64_t inflight_bytes_max;       /* Per link; 0: REPLICA_INFLIGHT_BYTES_DEFAULT. */
	enum replica_acks watermark_acks;  /* What the log's replicated watermark follows. */
};

int replica_leader_start(const struct replica_leader_config *config,
			 struct replica_leader **leader_out);
void replica_leader_stop(struct replica_leader *leader);

/*
 * Starts leading the shard in `epoch` (> every epoch it had): the epoch begins
 * durably at the log's durable end, and from then on the shard's records are
 * shipped. Call it before appending in that epoch. -ESTALE for an old epoch,
 * -ENOSPC past REPLICA_SHARDS_MAX shards.
 */
int replica_lead(struct replica_leader *leader, uint64_t shard_id, uint64_t epoch);
/*
 * replica_lead with the shard's own replica set: `followers` are the shard's
 * other replicas (at most REPLICA_FOLLOWERS_MAX). The leader links to the union
 * of its shards' followers (the config's and every set given here), at most
 * REPLICA_FOLLOWERS_MAX distinct peers (-ENOSPC beyond); a shard is shipped to,
 * and `acks` count, its own set only. Called again in the same epoch it
 * replaces the set (a follower added starts with the handshake; one removed
 * stops counting at once). -ESTALE for an epoch the shard was unled or fenced
 * in: only a newer epoch leads it again.
 */
int replica_lead_set(struct replica_leader *leader, uint64_t shard_id, uint64_t epoch,
		     const struct replica_peer *followers, uint32_t follower_count);
/*
 * replica_lead_set and replica_in_sync_set in one step (`in_sync` NULL: as
 * replica_lead_set alone): a new epoch starts with its in-sync set in place, so
 * no acknowledgement is ever counted against an empty set (a majority) while the
 * cluster's set names a replica that may become leader. -EINVAL for an in-sync
 * follower outside `followers` (the leadership is taken, the set unchanged).
 */
int replica_lead_isr(struct replica_leader *leader, uint64_t shard_id, uint64_t epoch,
		     const struct replica_peer *followers, uint32_t follower_count,
		     const struct replica_peer *in_sync, uint32_t in_sync_count);
/*
 * An operator's unclean election (docs/CLUSTER.md "Unclean election"), before
 * replica_lead_isr in that epoch: the epoch begins (fenced and settled as
 * replica_lead_isr does) at the log's durable end even below the records its newest
 * cut kept and did not hold again (log_epoch_begin_unclean: they are given up),
 * where replica_lead_isr answers -ENODATA; replica_lead_isr then finds it begun.
 * Begun already: 0, nothing done.
 */
int replica_lead_unclean(struct replica_leader *leader, uint64_t shard_id, uint64_t epoch);
/*
 * The shard's in-sync followers (a subset of its set; the leader is implied):
 * a REPLICA_ACKS_QUORUM answer never passes what each of them holds, so every
 * in-sync replica holds everything acknowledged and may become leader. None
 * (the start): a majority suffices. -ENOENT for a shard not led here, -EINVAL
 * for a follower outside the shard's set. A follower is added before the
 * cluster's in-sync set names it and removed after (docs/CLUSTER.md).
 */
int replica_in_sync_set(struct replica_leader *leader, uint64_t shard_id,
			const struct replica_peer *in_sync, uint32_t count);
/*
 * Stops leading the shard (a newer leader was placed): nothing more is shipped
 * and replica_acked answers -ESTALE from now on. -ENOENT for a shard never led.
 */
int replica_unlead(struct replica_leader *leader, uint64_t shard_id);
/* Records up to seq_end are durable in the leader's log: ship them (a doorbell). */
int replica_ship(struct replica_leader *leader, uint64_t shard_id, uint64_t seq_end);
/*
 * Every record below *seq_out is durable on the replicas `acks` asks for.
 * -ENOENT for a shard not led here; -ESTALE once a follower refused the
 * shard's epoch (a newer leader exists: never acknowledge again).
 */
int replica_acked(struct replica_leader *leader, uint64_t shard_id, enum replica_acks acks,
		  uint64_t *seq_out);

/*
 * The epoch this node leads the shard in. The leader's own appends carry it
 * (log_batch_submit_at with seq UINT64_MAX): once this node's follower side
 * promised a newer leader, the log refuses them (-ESTALE), so a deposed leader
 * that has not heard of its successor cannot add records among the successor's.
 * -ENOENT for a shard not led here; -ESTALE once fenced, unled, or a newer epoch
 * was promised on this node's log (replica_acked answers -ESTALE then too).
 */
int replica_lead_epoch(struct replica_leader *leader, uint64_t shard_id, uint64_t *epoch_out);

struct replica_link_stats {
	struct replica_peer peer;
	bool connected;
	uint64_t connects;
	uint64_t resets;            /* Links dropped (errors, bad frames, peer gone). */
	uint64_t bad_frames;        /* Frames refused (magic, version, size, CRC, content). */
	uint64_t frames_out;
	uint64_t records_shipped;
	uint64_t bytes_inflight;    /* Shipped and not yet acknowledged. */
	uint64_t backpressured;     /* Times shipping stopped at inflight_bytes_max. */
	uint64_t fenced;            /* Shards the follower refused for an older epoch. */
	uint64_t starts;            /* STARTs sent: the follower's end was below this log's
				     * trim horizon, its shard starts there. */
};

/*
 * An eventfd the leader thread makes readable when a shard's replicated
 * watermark moved (what `watermark_acks` replicas hold: one ring per pass, not
 * per follower ACK), a follower's handshake finished, a shard was fenced or
 * unled, or an in-sync set changed: a thread holding replies until
 * replica_acked covers them, asked with the config's watermark_acks, waits on
 * it instead of polling (read it to reset; then ask replica_acked again). A
 * waiter asking another `acks` may miss a move of its own and polls.
 */
int replica_leader_doorbell_fd(const struct replica_leader *leader);
/*
 * The same doorbell as a counter, raised (release) each time it rings: for threads
 * that poll anyway (the dataplane's workers) and so need no fd of their own: one
 * load per pass, replica_acked again only when it moved.
 */
const _Atomic uint64_t *replica_leader_doorbell_gen(const struct replica_leader *leader);
/* Links: the config's followers first, then the peers replica_lead_set added, in order. */
uint32_t replica_leader_link_count(struct replica_leader *leader);
int replica_leader_link_stats(struct replica_leader *leader, uint32_t follower,
			      struct replica_link_stats *stats_out);
/* The durable end link `follower` acknowledged for the shard; -ENOENT: not in its set. */
int replica_leader_link_acked(struct replica_leader *leader, uint32_t follower, uint64_t shard_id,
			      uint64_t *seq_out);

/* ---- Follower ------------------------------------------------------------ */

struct replica_follower;

struct replica_follower_config {
	struct log *log;           /* Best opened with watermark_gated (log.h). */
	const char *listen_host;   /* Numeric IPv4 address (NULL: 127.0.0.1). */
	uint16_t port;             /* 0: the kernel picks (replica_follower_port). */
};

int replica_follower_start(const struct replica_follower_config *config,
			   struct replica_follower **follower_out);
uint16_t replica_follower_port(const struct replica_follower *follower);
void replica_follower_stop(struct replica_follower *follower);

struct replica_follower_stats {
	uint64_t connections;
	uint64_t resets;
	uint64_t bad_frames;
	uint64_t records_appended;
	uint64_t stale_epochs;      /* LEAD or APPEND of an older epoch, refused. */
	uint64_t truncations;       /* Divergent tails cut. */
	uint64_t records_kept;      /* Below a cut but in its batch: appended again. */
	uint64_t starts;            /* Shards started at a leader's trim horizon (START, or a
				     * handshake that parted below this log's own horizon). */
};

void replica_follower_stats(struct replica_follower *follower,
			    struct replica_follower_stats *stats_out);

#endif /* SLUICE_REPLICA_H */
