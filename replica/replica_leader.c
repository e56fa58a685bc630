/*
 * replica_leader.c - the leader's side: one thread, one link per follower.
 *
 * Per link and shard (docs/CLUSTER.md, "Protocol"):
 *
 *   IDLE --send LEAD--> LEAD_SENT --READY(end)--> STREAMING --FENCED--> FENCED
 *                        ^  answers EPOCH_QUERY      | ships APPENDs from `next_send`
 *                        +--- link reset (any state but FENCED goes back to IDLE)
 *
 * The thread reads the shard's durable records with its own reader (past the
 * replicated watermark: it ships what followers lack) straight into the
 * link's send buffer, one APPEND per read, while the link's unacknowledged
 * bytes stay below inflight_bytes_max. A follower's ACK moves its `acked`
 * end; the quorum of those ends and the leader's own is the shard's
 * replicated watermark, set on the log after every pass (monotonic).
 *
 * Each shard has its own replica set (`links`, a bit per link): a node leads
 * shards whose followers differ (cluster placement spreads them), so the leader
 * links to the union of its shards' followers, at most REPLICA_FOLLOWERS_MAX
 * peers, and a shard is LEAD, shipped and counted only on its own links. Links
 * are added by replica_lead_set (a control path: placement changes), never
 * removed; a link no shard names any more stays idle.
 *
 * Locking: `lock` guards the shard table, every link's `acked` ends, the
 * shards' link sets and the published statistics; the thread holds it
 * briefly, never across I/O. `link_count` grows under it, after the new link is
 * whole (release; the thread reads it with acquire).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "replica/replica.h"
#include "replica/replica_wire.h"

#define LEADER_POLL_MS 20           /* Fallback pass when no doorbell rings. */
#define LEADER_RX_BYTES (64u << 10) /* Followers send only small control frames. */
#define LEADER_TX_BYTES (REPLICA_FRAME_SIZE_MAX + (4u << 20))
#define LEADER_SENT_MAX 4096u       /* APPENDs in flight per link. */

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP };

enum link_shard_state { LS_IDLE, LS_LEAD_SENT, LS_STREAMING, LS_FENCED, LS_STUCK };

struct link_shard {
	uint8_t state;
	uint64_t lead_epoch;       /* Epoch of the LEAD sent. */
	uint64_t next_send;
	uint64_t watermark_sent;
	uint64_t acked;            /* Under lock: the follower's durable end. */
};

struct sent {
	uint32_t shard;
	uint32_t bytes;
	uint64_t seq_end;
};

struct link {
	struct replica_peer peer;
	enum link_state state;
	int fd;
	uint64_t retry_ns;
	uint64_t heard_ns;         /* Last frame received (or connected). */
	struct replica_buf rx;
	struct replica_buf tx;
	struct link_shard *shards; /* REPLICA_SHARDS_MAX, by leader shard index. */
	struct sent *sent;         /* Ring of LEADER_SENT_MAX, oldest at sent_head. */
	uint32_t sent_head;
	uint32_t sent_count;
	struct replica_link_stats stats;     /* Thread-private. */
	struct replica_link_stats published; /* Under lock. */
};

struct lshard {
	uint64_t shard_id;
	uint64_t epoch;
	uint32_t links;            /* The shard's followers: a bit per link index. */
	uint32_t in_sync;          /* Followers whose end caps the acks (a subset of links). */
	bool fenced;               /* A follower promised a newer epoch, or unled here. */
	uint64_t watermark;        /* Set on the log; never moves back. */
};

struct replica_leader {
	struct replica_leader_config config;
	struct log_reader *reader;
	pthread_t thread;
	bool started;
	int wake_fd;
	int doorbell_fd;           /* Rung when an acknowledged end may have moved ... */
	_Atomic uint64_t rings;    /* ... and raised then too (replica_leader_doorbell_gen). */
	bool rang;                 /* Thread-private: ring it at the end of this pass. */
	_Atomic bool stop;
	pthread_mutex_t lock;
	struct lshard *shards;     /* REPLICA_SHARDS_MAX; entries are never removed. */
	_Atomic uint32_t shard_count;
	struct link links[REPLICA_FOLLOWERS_MAX];
	_Atomic uint32_t link_count;
};

static_assert(REPLICA_FOLLOWERS_MAX <= 32, "a shard's link set is a 32-bit mask");

static uint32_t
link_count(const struct replica_leader *l)
{
	return atomic_load_explicit(&l->link_count, memory_order_acquire);
}

/* Under lock: whether link k carries shard i. */
static bool
shard_on_link(const struct replica_leader *l, uint32_t i, uint32_t k)
{
	return (l->shards[i].links >> k) & 1u;
}

/* ---- Shard table ---------------------------------------------------------- */

/* Index of the shard, or -1. Under lock, or on the thread (ids never change once added). */
static int32_t
shard_index(const struct replica_leader *l, uint64_t shard_id)
{
	uint32_t count = atomic_load_explicit(&l->shard_count, memory_order_acquire);

	for (uint32_t i = 0; i < count; i++) {
		if (l->shards[i].shard_id == shard_id)
			return (int32_t)i;
	}
	return -1;
}

static void
ring(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		diag_debug("replica", "doorbell: %s", strerror(errno));
}

/* An acknowledged end may have moved: the doorbell's two forms (replica.h). */
static void
doorbell(struct replica_leader *l)
{
	atomic_fetch_add_explicit(&l->rings, 1, memory_order_release);
	ring(l->doorbell_fd);
}

static void
wake(struct replica_leader *l)
{
	uint64_t one = 1;

	if (write(l->wake_fd, &one, sizeof(one)) < 0)
		diag_debug("replica", "wake: %s", strerror(errno));
}

static int link_init(struct link *k, const struct replica_peer *peer);
static void link_fini(struct link *k);

/* Under lock: the index of the link to `peer`, or -1. */
static int32_t
link_find(const struct replica_leader *l, const struct replica_peer *peer)
{
	for (uint32_t k = 0; k < link_count(l); k++) {
		if (l->links[k].peer.port == peer->port &&
		    strcmp(l->links[k].peer.host, peer->host) == 0)
			return (int32_t)k;
	}
	return -1;
}

/* Under lock: the link to `peer`, added if new. -ENOSPC past REPLICA_FOLLOWERS_MAX peers. */
static int
link_find_or_add(struct replica_leader *l, const struct replica_peer *peer, uint32_t *index_out)
{
	uint32_t n = link_count(l);
	int32_t found = link_find(l, peer);
	int err;

	if (found >= 0) {
		*index_out = (uint32_t)found;
		return 0;
	}
	if (n == REPLICA_FOLLOWERS_MAX)
		return -ENOSPC;
	err = link_init(&l->links[n], peer);
	if (err != 0) {
		link_fini(&l->links[n]);
		memset(&l->links[n], 0, sizeof(l->links[n]));
		return err;
	}
	atomic_store_explicit(&l->link_count, n + 1, memory_order_release);
	*index_out = n;
	return 0;
}

/* Under lock: the link set of `followers` (links added as needed). */
static int
links_of(struct replica_leader *l, const struct replica_peer *followers, uint32_t count,
	 uint32_t *mask_out)
{
	uint32_t mask = 0;

	if (count > REPLICA_FOLLOWERS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t k;
		int err = link_find_or_add(l, &followers[i], &k);

		if (err != 0)
			return err;
		mask |= 1u << k;
	}
	*mask_out = mask;
	return 0;
}

/* Under lock: the shard's in-sync followers from now on; -EINVAL (unchanged) for a stranger. */
static int
in_sync_apply(struct replica_leader *l, uint32_t i, const struct replica_peer *in_sync,
	      uint32_t count)
{
	uint32_t mask = 0;

	for (uint32_t j = 0; j < count; j++) {
		int32_t k = link_find(l, &in_sync[j]);

		if (k < 0 || !shard_on_link(l, i, (uint32_t)k))
			return -EINVAL;
		mask |= 1u << k;
	}
	l->shards[i].in_sync = mask;
	return 0;
}

int
replica_lead(struct replica_leader *l, uint64_t shard_id, uint64_t epoch)
{
	return replica_lead_set(l, shard_id, epoch, l->config.followers,
				l->config.follower_count);
}

int
replica_lead_set(struct replica_leader *l, uint64_t shard_id, uint64_t epoch,
		 const struct replica_peer *followers, uint32_t follower_count)
{
	return replica_lead_isr(l, shard_id, epoch, followers, follower_count, NULL, 0);
}

/*
 * Begins `epoch` in the log at its durable end, unless begun already (leading again in
 * the epoch the log is in, a restart); `unclean`: also below the log's kept range,
 * giving it up (log_epoch_begin_unclean).
 */
static int
epoch_start(struct replica_leader *l, uint64_t shard_id, uint64_t epoch, bool unclean)
{
	struct log_shard_info info;
	struct log_epoch_info ei;
	uint64_t end;
	int err;

	/*
	 * Fence first: once the promise is durable the writer refuses every batch this
	 * node's follower side still sends for an older leader; then wait until those it
	 * took are durable (log_shard_settle). Only then is the durable end where this
	 * epoch starts.
	 */
	err = log_epoch_promise(l->config.log, shard_id, epoch);
	if (err == 0)
		err = log_shard_settle(l->config.log, shard_id, &end);
	if (err != 0)
		return err;
	log_shard_info(l->config.log, shard_id, &info);
	log_epoch_info(l->config.log, shard_id, &ei);
	if (ei.epoch_last == epoch && ei.count > 0)
		return 0;
	return (unclean ? log_epoch_begin_unclean : log_epoch_begin)(l->config.log, shard_id, epoch,
								     info.seq_local);
}

int
replica_lead_unclean(struct replica_leader *l, uint64_t shard_id, uint64_t epoch)
{
	return epoch_start(l, shard_id, epoch, true);
}

int
replica_lead_isr(struct replica_leader *l, uint64_t shard_id, uint64_t epoch,
		 const struct replica_peer *followers, uint32_t follower_count,
		 const struct replica_peer *in_sync, uint32_t in_sync_count)
{
	uint32_t mask = 0;
	int32_t i;
	int err = epoch_start(l, shard_id, epoch, false);

	if (err != 0)
		return err;
	pthread_mutex_lock(&l->lock);
	err = links_of(l, followers, follower_count, &mask);
	i = shard_index(l, shard_id);
	if (err != 0) {
		/* Nothing changes for the shard. */
	} else if (i < 0 && atomic_load(&l->shard_count) == REPLICA_SHARDS_MAX) {
		err = -ENOSPC;
	} else if (i < 0) {
		uint32_t n = atomic_load(&l->shard_count);

		l->shards[n] = (struct lshard){ .shard_id = shard_id, .epoch = epoch,
						.links = mask };  /* in_sync: none until told. */
		atomic_store_explicit(&l->shard_count, n + 1, memory_order_release);
	} else if (epoch > l->shards[i].epoch) {
		l->shards[i].epoch = epoch;
		l->shards[i].fenced = false;
		l->shards[i].links = mask;
		l->shards[i].in_sync = 0;
		/*
		 * What a follower acknowledged in an older epoch is not what it holds of
		 * this log: meanwhile another leader may have cut it (records this node
		 * wrote and nobody acknowledged) and this node followed that leader. Its
		 * end counts again from its READY in this epoch.
		 */
		for (uint32_t k = 0; k < link_count(l); k++)
			l->links[k].shards[i].acked = 0;
	} else if (epoch == l->shards[i].epoch && !l->shards[i].fenced) {
		l->shards[i].links = mask;  /* The replica set changed within the epoch. */
		l->shards[i].in_sync &= mask;
	} else {
		err = -ESTALE;  /* Unled or fenced in this epoch: only a newer one leads again. */
	}
	/* In the same locked step: no acknowledgement is counted with the set empty. */
	if (err == 0 && in_sync != NULL)
		err = in_sync_apply(l, (uint32_t)shard_index(l, shard_id), in_sync, in_sync_count);
	pthread_mutex_unlock(&l->lock);
	wake(l);
	return err;
}

int
replica_in_sync_set(struct replica_leader *l, uint64_t shard_id,
		    const struct replica_peer *in_sync, uint32_t count)
{
	int32_t i;
	int err;

	pthread_mutex_lock(&l->lock);
	i = shard_index(l, shard_id);
	err = i < 0 ? -ENOENT : in_sync_apply(l, (uint32_t)i, in_sync, count);
	pthread_mutex_unlock(&l->lock);
	if (err == 0)
		doorbell(l);  /* A smaller set may let waiting calls go. */
	return err;
}

int
replica_unlead(struct replica_leader *l, uint64_t shard_id)
{
	int32_t i;

	pthread_mutex_lock(&l->lock);
	i = shard_index(l, shard_id);
	if (i >= 0) {
		l->shards[i].fenced = true;
		l->shards[i].links = 0;  /* The thread idles its links' states for it. */
	}
	pthread_mutex_unlock(&l->lock);
	if (i < 0)
		return -ENOENT;
	wake(l);
	doorbell(l);  /* Calls waiting on the shard get their answer now. */
	return 0;
}

const _Atomic uint64_t *
replica_leader_doorbell_gen(const struct replica_leader *l)
{
	return &l->rings;
}

int
replica_leader_doorbell_fd(const struct replica_leader *l)
{
	return l->doorbell_fd;
}

int
replica_ship(struct replica_leader *l, uint64_t shard_id, uint64_t seq_end)
{
	(void)seq_end; /* The thread ships to the log's durable end, which is at least this. */
	if (shard_index(l, shard_id) < 0)
		return -ENOENT;
	wake(l);
	return 0;
}

static int
cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Under lock: what every in-sync follower of shard i holds. A quorum answer never
 * passes it: a new leader is picked from the in-sync set, so each member must hold
 * everything acknowledged (docs/CLUSTER.md, "The in-sync set").
 */
static uint64_t
in_sync_end(const struct replica_leader *l, uint32_t i, uint64_t local)
{
	uint64_t end = local;

	for (uint32_t k = 0; k < link_count(l); k++) {
		if (shard_on_link(l, i, k) && ((l->shards[i].in_sync >> k) & 1u))
			end = min_u64(end, l->links[k].shards[i].acked);
	}
	return end;
}

/* Under lock: what `acks` replicas hold of shard i, given the leader's durable end. */
static uint64_t
acked_under_lock(const struct replica_leader *l, uint32_t i, enum replica_acks acks,
		 uint64_t local)
{
	uint64_t ends[1 + REPLICA_FOLLOWERS_MAX];
	uint32_t n = 1;

	ends[0] = local;
	for (uint32_t k = 0; k < link_count(l); k++) {
		if (shard_on_link(l, i, k))
			ends[n++] = min_u64(l->links[k].shards[i].acked, local);
	}
	qsort(ends, n, sizeof(ends[0]), cmp_desc);
	switch (acks) {
	case REPLICA_ACKS_LEADER:
		return local;
	case REPLICA_ACKS_ALL:
		return ends[n - 1];
	case REPLICA_ACKS_QUORUM:
	default:
		return min_u64(ends[n / 2], in_sync_end(l, i, local));
	}
}

/*
 * Under lock: shard i's state as a leader. A newer epoch promised on this log
 * (this node's follower side took another leader's LEAD) deposes it even before
 * the placement or a follower's FENCED says so.
 */
static int
lead_state(const struct replica_leader *l, int32_t i, const struct log_epoch_info *ei)
{
	if (i < 0)
		return -ENOENT;
	if (l->shards[i].fenced || ei->promised > l->shards[i].epoch)
		return -ESTALE;
	return 0;
}

/* What replica_acked and replica_lead_epoch answer, under one look. */
static int
lead_query(struct replica_leader *l, uint64_t shard_id, enum replica_acks acks,
	   uint64_t *seq_out, uint64_t *epoch_out)
{
	struct log_shard_info info;
	struct log_epoch_info ei = { 0 };
	int32_t i;
	int err;

	log_shard_info(l->config.log, shard_id, &info);
	log_epoch_info(l->config.log, shard_id, &ei);
	pthread_mutex_lock(&l->lock);
	i = shard_index(l, shard_id);
	err = lead_state(l, i, &ei);
	if (err == 0) {
		*seq_out = acked_under_lock(l, (uint32_t)i, acks, info.seq_local);
		*epoch_out = l->shards[i].epoch;
	}
	pthread_mutex_unlock(&l->lock);
	return err;
}

int
replica_acked(struct replica_leader *l, uint64_t shard_id, enum replica_acks acks,
	      uint64_t *seq_out)
{
	uint64_t epoch;

	return lead_query(l, shard_id, acks, seq_out, &epoch);
}

int
replica_lead_epoch(struct replica_leader *l, uint64_t shard_id, uint64_t *epoch_out)
{
	uint64_t seq;

	return lead_query(l, shard_id, REPLICA_ACKS_LEADER, &seq, epoch_out);
}

int
replica_leader_link_acked(struct replica_leader *l, uint32_t link, uint64_t shard_id,
			  uint64_t *seq_out)
{
	int32_t i;
	int err = 0;

	pthread_mutex_lock(&l->lock);
	i = shard_index(l, shard_id);
	if (link >= link_count(l) || i < 0 || !shard_on_link(l, (uint32_t)i, link))
		err = -ENOENT;
	else
		*seq_out = l->links[link].shards[i].acked;
	pthread_mutex_unlock(&l->lock);
	return err;
}

uint32_t
replica_leader_link_count(struct replica_leader *l)
{
	return link_count(l);
}

int
replica_leader_link_stats(struct replica_leader *l, uint32_t follower,
			  struct replica_link_stats *stats_out)
{
	if (follower >= link_count(l))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	*stats_out = l->links[follower].published;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* ---- Links ---------------------------------------------------------------- */

static void
link_reset(struct replica_leader *l, struct link *k, const char *why, int err)
{
	uint32_t count = atomic_load(&l->shard_count);

	diag_warn("replica", "link to %s:%u reset: %s (%s)", k->peer.host, k->peer.port, why,
		  strerror(err < 0 ? -err : err));
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	if (k->state == LINK_UP)
		k->stats.resets++;
	k->state = LINK_DOWN;
	k->retry_ns = clock_mono_ns() + REPLICA_RECONNECT_NS;
	k->rx.head = k->rx.tail = 0;
	k->tx.head = k->tx.tail = 0;
	k->sent_count = 0;
	k->stats.bytes_inflight = 0;
	k->stats.connected = false;
	for (uint32_t i = 0; i < count; i++) {
		if (k->shards[i].state != LS_FENCED)
			k->shards[i].state = LS_IDLE;
	}
}

static void
link_dial(struct replica_leader *l, struct link *k)
{
	int err = replica_connect(k->peer.host, k->peer.port, &k->fd);

	if (err != 0) {
		k->fd = -1;
		link_reset(l, k, "connect", err);
		return;
	}
	k->state = LINK_CONNECTING;
}

static int
link_flush(struct link *k)
{
	return replica_send(k->fd, &k->tx);
}

/* Frees the in-flight bytes of every APPEND the follower acknowledged, oldest first. */
static void
link_release(struct link *k)
{
	while (k->sent_count > 0) {
		struct sent *s = &k->sent[k->sent_head];

		if (k->shards[s->shard].acked < s->seq_end)
			break;
		k->stats.bytes_inflight -= s->bytes;
		k->sent_head = (k->sent_head + 1) % LEADER_SENT_MAX;
		k->sent_count--;
	}
}

static int
on_epoch_query(struct replica_leader *l, struct link *k, const struct replica_ctl *c)
{
	uint64_t epoch;
	uint64_t end;

	if (shard_index(l, c->shard_id) < 0)
		return -EBADMSG;
	log_epoch_end(l->config.log, c->shard_id, c->epoch, &epoch, &end);
	diag_debug("replica", "leader: %s:%u asks where epoch %" PRIu64 " ends: %" PRIu64 "/%"
		   PRIu64, k->peer.host, k->peer.port, c->epoch, epoch, end);
	return replica_put_ctl(&k->tx, REPLICA_MSG_EPOCH_END, c->shard_id, epoch, end);
}

/* APPENDs of shard i shipped before a new handshake will never be acknowledged. */
static void
link_forget_sent(struct link *k, uint32_t i)
{
	for (uint32_t n = 0; n < k->sent_count; n++) {
		struct sent *s = &k->sent[(k->sent_head + n) % LEADER_SENT_MAX];

		if (s->shard == i) {
			k->stats.bytes_inflight -= s->bytes;
			s->bytes = 0;
			s->seq_end = 0;
		}
	}
}

static int
on_ready(struct replica_leader *l, struct link *k, const struct replica_ctl *c)
{
	int32_t i = shard_index(l, c->shard_id);
	struct link_shard *ls;

	if (i < 0)
		return -EBADMSG;
	ls = &k->shards[i];
	diag_debug("replica", "leader: %s:%u READY at %" PRIu64 " (epoch %" PRIu64 ", state %u)",
		   k->peer.host, k->peer.port, c->seq, c->epoch, ls->state);
	if (ls->state != LS_LEAD_SENT || c->epoch != ls->lead_epoch)
		return 0; /* The answer to an older LEAD. */
	pthread_mutex_lock(&l->lock);
	if (c->epoch != l->shards[i].epoch) {
		/* The shard is led in a newer epoch since: link_lead sends its LEAD. */
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	/* The follower matches us below c->seq: ship from there. */
	link_forget_sent(k, (uint32_t)i);
	ls->state = LS_STREAMING;
	ls->next_send = c->seq;
	ls->watermark_sent = UINT64_MAX;
	ls->acked = c->seq;
	pthread_mutex_unlock(&l->lock);
	l->rang = true;
	link_release(k);
	return 0;
}

static int
on_ack(struct replica_leader *l, struct link *k, const struct replica_ctl *c)
{
	int32_t i = shard_index(l, c->shard_id);
	struct link_shard *ls;

	if (i < 0)
		return -EBADMSG;
	ls = &k->shards[i];
	if (ls->state != LS_STREAMING || c->epoch != ls->lead_epoch)
		return 0;
	pthread_mutex_lock(&l->lock);
	/*
	 * Not an ACK of an older epoch once replica_lead_set reset the ends. The
	 * doorbell rings if the shard's watermark moves (leader_watermarks), not per ACK.
	 */
	if (c->epoch == l->shards[i].epoch)
		ls->acked = max_u64(ls->acked, c->seq);
	pthread_mutex_unlock(&l->lock);
	link_release(k);
	return 0;
}

static int
on_fenced(struct replica_leader *l, struct link *k, const struct replica_ctl *c)
{
	int32_t i = shard_index(l, c->shard_id);

	if (i < 0)
		return -EBADMSG;
	diag_warn("replica", "shard %" PRIx64 ": %s:%u promised epoch %" PRIu64 ": fenced",
		  c->shard_id, k->peer.host, k->peer.port, c->epoch);
	k->shards[i].state = LS_FENCED;
	k->stats.fenced++;
	pthread_mutex_lock(&l->lock);
	if (c->epoch > l->shards[i].epoch)
		l->shards[i].fenced = true;
	pthread_mutex_unlock(&l->lock);
	l->rang = true;
	return 0;
}

static int
link_frame(struct replica_leader *l, struct link *k, const struct replica_header *h,
	   const uint8_t *payload)
{
	struct replica_ctl c;

	if (replica_ctl_parse(payload, h->length, &c) != 0)
		return -EBADMSG;
	switch (h->type) {
	case REPLICA_MSG_EPOCH_QUERY:
		return on_epoch_query(l, k, &c);
	case REPLICA_MSG_READY:
		return on_ready(l, k, &c);
	case REPLICA_MSG_ACK:
		return on_ack(l, k, &c);
	case REPLICA_MSG_FENCED:
		return on_fenced(l, k, &c);
	default:
		return -EBADMSG;
	}
}

static int
link_receive(struct replica_leader *l, struct link *k)
{
	struct replica_header h;
	const uint8_t *payload;
	int err = replica_recv(k->fd, &k->rx);
	int rc;

	while (err == 0 && (rc = replica_frame_next(&k->rx, &h, &payload)) != 0) {
		k->heard_ns = clock_mono_ns();
		err = rc < 0 ? rc : link_frame(l, k, &h, payload);
		if (err == -EBADMSG)
			k->stats.bad_frames++;
	}
	return err;
}

/* LEAD for every shard this link has not been told about (in its current epoch). */
static int
link_lead(struct replica_leader *l, struct link *k)
{
	uint32_t count = atomic_load_explicit(&l->shard_count, memory_order_acquire);

	uint32_t self = (uint32_t)(k - l->links);

	for (uint32_t i = 0; i < count; i++) {
		struct link_shard *ls = &k->shards[i];
		uint64_t epoch;
		bool fenced;
		bool member;
		int err;

		pthread_mutex_lock(&l->lock);
		epoch = l->shards[i].epoch;
		fenced = l->shards[i].fenced;
		member = shard_on_link(l, i, self);
		pthread_mutex_unlock(&l->lock);
		if (!member) {
			/* Left the shard's set (or never in it): ship nothing, wait for nothing. */
			if (ls->state == LS_LEAD_SENT || ls->state == LS_STREAMING) {
				ls->state = LS_IDLE;
				link_forget_sent(k, i);
			}
			continue;
		}
		if (fenced || (ls->state != LS_IDLE && ls->lead_epoch == epoch) ||
		    (ls->state == LS_FENCED && ls->lead_epoch == epoch))
			continue;
		err = replica_put_ctl(&k->tx, REPLICA_MSG_LEAD, l->shards[i].shard_id, epoch, 0);
		if (err != 0)
			return 0; /* Later, once the buffer drained. */
		ls->state = LS_LEAD_SENT;
		ls->lead_epoch = epoch;
	}
	return 0;
}

/*
 * The follower lacks records below the leader's trim horizon (retention dropped them
 * while it was away): tells it to start its shard there (START, docs/CLUSTER.md
 * "Catch-up below the leader's trim horizon") and ships from there on. Never below the
 * horizon: the follower starts at the leader's first retained record, not lower, so no
 * gap of records the leader holds reads as empty there. 1 sent, 0 not below the
 * horizon (the read failed for another reason), -ENOBUFS no room yet.
 */
static int
link_start(struct replica_leader *l, struct link *k, uint32_t i)
{
	struct link_shard *ls = &k->shards[i];
	uint64_t shard_id = l->shards[i].shard_id;
	struct log_shard_info info;

	log_shard_info(l->config.log, shard_id, &info);
	if (info.seq_trim <= ls->next_send)
		return 0;
	if (replica_put_ctl(&k->tx, REPLICA_MSG_START, shard_id, ls->lead_epoch,
			    info.seq_trim) != 0)
		return -ENOBUFS; /* Later, once the buffer drained. */
	diag_info("replica", "shard %" PRIx64 ": %s:%u ends at %" PRIu64 ", below this log's start"
		  " %" PRIu64 ": it starts there", shard_id, k->peer.host, k->peer.port,
		  ls->next_send, info.seq_trim);
	ls->next_send = info.seq_trim;
	k->stats.starts++;
	return 1;
}

/* One APPEND of shard i from ls->next_send: 1 sent, 0 nothing to send, or -errno. */
static int
link_append(struct replica_leader *l, struct link *k, uint32_t i, uint64_t local,
	    uint64_t watermark)
{
	struct link_shard *ls = &k->shards[i];
	const struct lshard *s = &l->shards[i];
	struct replica_append a = { .shard_id = s->shard_id, .epoch = ls->lead_epoch,
				    .seq_first = ls->next_send, .watermark = watermark };
	struct replica_append_build b;
	uint64_t epoch_end;
	uint64_t next;
	int n = 0;
	int rc;

	log_epoch_at(l->config.log, s->shard_id, ls->next_send, &a.records_epoch, &epoch_end);
	replica_append_begin(&b, &k->tx, &a);
	if (ls->next_send < local) {
		/* One APPEND never spans two epochs: the follower's history stays the leader's. */
		uint32_t max = (uint32_t)min_u64(REPLICA_APPEND_RECORDS_MAX,
						 epoch_end - ls->next_send);

		n = log_read(l->reader, s->shard_id, ls->next_send, max, REPLICA_APPEND_BYTES,
			     replica_append_record, &b, &next);
	}
	if (n < 0 || (n == 0 && watermark == ls->watermark_sent)) {
		k->tx.tail = b.start;
		if (n == -ERANGE && (rc = link_start(l, k, i)) != 0)
			return rc > 0 ? 1 : 0;
		if (n < 0) {
			diag_error("replica", "shard %" PRIx64 ": reading seq %" PRIu64 " to ship: %s",
				   s->shard_id, ls->next_send, strerror(-n));
			ls->state = LS_STUCK; /* Corrupt (logged): the link stops the shard. */
		}
		return 0;
	}
	replica_append_end(&b);
	ls->watermark_sent = watermark;
	k->stats.frames_out++;
	if (n > 0) {
		uint32_t bytes = (uint32_t)(k->tx.tail - b.start);

		k->sent[(k->sent_head + k->sent_count++) % LEADER_SENT_MAX] =
			(struct sent){ i, bytes, next };
		k->stats.bytes_inflight += bytes;
		k->stats.records_shipped += (uint64_t)n;
		ls->next_send = next;
	}
	return 1;
}

/* Ships what each streaming shard's follower lacks, within the in-flight bound. */
static int
link_ship(struct replica_leader *l, struct link *k)
{
	uint32_t count = atomic_load_explicit(&l->shard_count, memory_order_acquire);
	uint64_t max = l->config.inflight_bytes_max;

	for (uint32_t i = 0; i < count; i++) {
		struct link_shard *ls = &k->shards[i];
		struct log_shard_info info;
		uint64_t watermark;
		int rc = 1;

		if (ls->state != LS_STREAMING)
			continue;
		log_shard_info(l->config.log, l->shards[i].shard_id, &info);
		pthread_mutex_lock(&l->lock);
		watermark = l->shards[i].watermark;
		pthread_mutex_unlock(&l->lock);
		while (rc == 1) {
			if (k->stats.bytes_inflight >= max || k->sent_count == LEADER_SENT_MAX) {
				k->stats.backpressured++;
				return 0;
			}
			if (replica_buf_room(&k->tx) < REPLICA_FRAME_SIZE_MAX) {
				int err = link_flush(k);

				if (err != 0)
					return err;
				if (replica_buf_room(&k->tx) < REPLICA_FRAME_SIZE_MAX)
					return 0; /* The socket is full: POLLOUT brings us back. */
			}
			rc = link_append(l, k, i, info.seq_local, watermark);
		}
	}
	return 0;
}

/* The link expects an answer: a handshake is open or shipped bytes are unacknowledged. */
static bool
link_waiting(const struct replica_leader *l, const struct link *k)
{
	uint32_t count = atomic_load_explicit(&l->shard_count, memory_order_acquire);

	if (k->stats.bytes_inflight > 0)
		return true;
	for (uint32_t i = 0; i < count; i++) {
		if (k->shards[i].state == LS_LEAD_SENT)
			return true;
	}
	return false;
}

static void
link_service(struct replica_leader *l, struct link *k, short revents)
{
	int err = 0;

	if (k->state == LINK_CONNECTING) {
		if ((revents & (POLLOUT | POLLERR | POLLHUP)) == 0)
			return;
		err = replica_connect_done(k->fd);
		if (err != 0) {
			link_reset(l, k, "connect", err);
			return;
		}
		k->state = LINK_UP;
		k->heard_ns = clock_mono_ns();
		k->stats.connects++;
		k->stats.connected = true;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP))
		err = link_receive(l, k);
	if (err == 0)
		err = link_lead(l, k);
	if (err == 0)
		err = link_ship(l, k);
	if (err == 0)
		err = link_flush(k);
	if (err == 0 && link_waiting(l, k) && clock_mono_ns() - k->heard_ns > REPLICA_LINK_SILENCE_NS)
		err = -ETIMEDOUT; /* A half-open connection, or a frame lost in a way TCP missed. */
	if (err != 0)
		link_reset(l, k, err == -EBADMSG ? "bad frame" : "I/O", err);
}

/* Moves each shard's replicated watermark on the log (never back). */
static void
leader_watermarks(struct replica_leader *l)
{
	uint32_t count = atomic_load_explicit(&l->shard_count, memory_order_acquire);

	for (uint32_t i = 0; i < count; i++) {
		struct log_shard_info info;
		uint64_t wm;
		bool moved = false;

		log_shard_info(l->config.log, l->shards[i].shard_id, &info);
		pthread_mutex_lock(&l->lock);
		wm = acked_under_lock(l, i, l->config.watermark_acks, info.seq_local);
		if (!l->shards[i].fenced && wm > l->shards[i].watermark) {
			l->shards[i].watermark = wm;
			moved = true;
		}
		pthread_mutex_unlock(&l->lock);
		if (moved)
			log_shard_watermark_set(l->config.log, l->shards[i].shard_id, wm);
		l->rang |= moved;
	}
}

static void
leader_publish(struct replica_leader *l)
{
	pthread_mutex_lock(&l->lock);
	for (uint32_t k = 0; k < link_count(l); k++)
		l->links[k].published = l->links[k].stats;
	pthread_mutex_unlock(&l->lock);
}

static void
leader_pass(struct replica_leader *l)
{
	struct pollfd pfd[1 + REPLICA_FOLLOWERS_MAX];
	uint32_t n = link_count(l);
	uint64_t now = clock_mono_ns();
	uint64_t drain;

	pfd[0] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
	for (uint32_t i = 0; i < n; i++) {
		struct link *k = &l->links[i];

		if (k->state == LINK_DOWN && now >= k->retry_ns)
			link_dial(l, k);
		pfd[1 + i] = (struct pollfd){ .fd = k->fd, .events = POLLIN };
		if (k->state == LINK_CONNECTING || k->tx.head < k->tx.tail)
			pfd[1 + i].events |= POLLOUT;
	}
	if (poll(pfd, 1 + n, LEADER_POLL_MS) < 0)
		return;
	if ((pfd[0].revents & POLLIN) && read(l->wake_fd, &drain, sizeof(drain)) < 0)
		diag_debug("replica", "wake read: %s", strerror(errno));
	for (uint32_t i = 0; i < n; i++) {
		if (l->links[i].state != LINK_DOWN)
			link_service(l, &l->links[i], pfd[1 + i].revents);
	}
	leader_watermarks(l);
	leader_publish(l);
	if (l->rang)
		doorbell(l);
	l->rang = false;
}

static void *
leader_main(void *arg)
{
	struct replica_leader *l = arg;

	prctl(PR_SET_NAME, "replica-leader");
	while (!atomic_load(&l->stop))
		leader_pass(l);
	return NULL;
}

/* ---- Start and stop -------------------------------------------------------- */

static int
link_init(struct link *k, const struct replica_peer *peer)
{
	int err;

	k->peer = *peer;
	k->stats.peer = *peer;
	k->fd = -1;
	k->shards = calloc(REPLICA_SHARDS_MAX, sizeof(*k->shards));
	k->sent = calloc(LEADER_SENT_MAX, sizeof(*k->sent));
	if (k->shards == NULL || k->sent == NULL)
		return -ENOMEM;
	err = replica_buf_init(&k->rx, LEADER_RX_BYTES);
	if (err == 0)
		err = replica_buf_init(&k->tx, LEADER_TX_BYTES);
	return err;
}

static void
link_fini(struct link *k)
{
	if (k->fd >= 0)
		close(k->fd);
	free(k->shards);
	free(k->sent);
	replica_buf_fini(&k->rx);
	replica_buf_fini(&k->tx);
}

static int
leader_config_check(const struct replica_leader_config *c)
{
	if (c->log == NULL || c->follower_count > REPLICA_FOLLOWERS_MAX ||
	    (c->inflight_bytes_max != 0 && (c->inflight_bytes_max < REPLICA_INFLIGHT_BYTES_MIN ||
					    c->inflight_bytes_max > REPLICA_INFLIGHT_BYTES_MAX)) ||
	    c->watermark_acks > REPLICA_ACKS_ALL)
		return -EINVAL;
	return 0;
}

int
replica_leader_start(const struct replica_leader_config *config,
		     struct replica_leader **leader_out)
{
	struct replica_leader *l;
	int err = leader_config_check(config);

	if (err != 0)
		return err;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->config = *config;
	if (l->config.inflight_bytes_max == 0)
		l->config.inflight_bytes_max = REPLICA_INFLIGHT_BYTES_DEFAULT;
	pthread_mutex_init(&l->lock, NULL);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->doorbell_fd = l->wake_fd < 0 ? -1 : eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->shards = calloc(REPLICA_SHARDS_MAX, sizeof(*l->shards));
	err = l->wake_fd < 0 || l->doorbell_fd < 0 ? -errno : l->shards == NULL ? -ENOMEM : 0;
	for (uint32_t i = 0; i < config->follower_count && err == 0; i++) {
		err = link_init(&l->links[i], &config->followers[i]);
		atomic_store(&l->link_count, i + 1);  /* Freed by stop even when half made. */
	}
	if (err == 0)
		err = log_reader_open(config->log, &l->reader);
	if (err == 0) {
		log_reader_past_watermark(l->reader);
		err = -pthread_create(&l->thread, NULL, leader_main, l);
	}
	if (err != 0)
		goto out_free;
	l->started = true;
	*leader_out = l;
	return 0;

out_free:
	replica_leader_stop(l);
	return err;
}

void
replica_leader_stop(struct replica_leader *l)
{
	if (l == NULL)
		return;
	atomic_store(&l->stop, true);
	if (l->started) {
		wake(l);
		pthread_join(l->thread, NULL);
	}
	for (uint32_t i = 0; i < link_count(l); i++)
		link_fini(&l->links[i]);
	if (l->reader != NULL)
		log_reader_close(l->reader);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->doorbell_fd >= 0)
		close(l->doorbell_fd);
	pthread_mutex_destroy(&l->lock);
	free(l->shards);
	free(l);
}
