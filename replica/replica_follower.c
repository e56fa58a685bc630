/*
 * replica_follower.c - the follower's side: one thread accepts leaders'
 * links, runs the epoch handshake per shard, appends APPENDs to the log at
 * the leader's sequence numbers and answers with durable ends.
 *
 * Per shard (docs/CLUSTER.md, "Protocol"):
 *
 *   LEAD(e):        e < promised -> FENCED; else promise e durably, the link
 *                   owns the shard, send EPOCH_QUERY(my newest epoch L)
 *   EPOCH_END(E,x): cut my tail at min(x, my end of E) (durable); if E == L the
 *                   handshake is done -> READY(my end), else ask again with my
 *                   new newest epoch (it is lower: the cut forgot every epoch > E);
 *                   a cut below my trim horizon: start again there -> READY(horizon)
 *   APPEND:         epoch < promised -> FENCED; from the owning link, ready, at
 *                   exactly my end: begin records_epoch if new (durable), append
 *                   with log_batch_submit_at; each durable batch -> ACK
 *   START(s):       epoch < promised -> FENCED; from the owning link, ready, s above
 *                   my end: my shard starts at s (log_shard_start_at, durable) -> ACK(s)
 *
 * Anything else (bad frame, an APPEND out of place, a refused append) resets
 * the link: the leader dials again and the handshake re-synchronises.
 *
 * Completions carry (generation << 32 | shard index) as their cookie; a new
 * LEAD bumps the shard's generation, so batches appended for an older one
 * are not acknowledged to the new leader.
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
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/diag.h"
#include "replica/replica.h"
#include "replica/replica_wire.h"

#define FOLLOWER_POLL_MS 20
#define FOLLOWER_TX_BYTES (1u << 20)     /* Control frames only. */
#define FOLLOWER_HANDSHAKE_ROUNDS_MAX (2u * LOG_SHARD_EPOCHS_MAX)
#define FOLLOWER_BATCH_WAIT_MS 5

struct fconn {
	int fd;                    /* -1: free slot. */
	bool broken;               /* Reset at the end of the pass (frames may be in use). */
	struct replica_buf rx;
	struct replica_buf tx;
};

struct fshard {
	uint64_t shard_id;
	int32_t conn;              /* Owning link, -1 none. */
	uint64_t epoch;            /* Its LEAD epoch. */
	uint32_t generation;
	bool ready;                /* Handshake done: APPENDs taken. */
	uint32_t rounds;
	uint64_t seq_next;         /* End of what was submitted. */
};

struct replica_follower {
	struct replica_follower_config config;
	struct log_producer *producer;
	int listen_fd;
	uint16_t port;
	int wake_fd;
	int done_fd;               /* The producer's completion eventfd. */
	_Atomic bool stop;
	pthread_t thread;
	bool started;
	struct fconn conns[REPLICA_CONNS_MAX];
	struct fshard *shards;     /* REPLICA_SHARDS_MAX. */
	uint32_t shard_count;
	struct replica_follower_stats stats;     /* Thread-private. */
	pthread_mutex_t lock;
	struct replica_follower_stats published; /* Under lock. */
};

static struct fshard *
fshard_get(struct replica_follower *f, uint64_t shard_id)
{
	for (uint32_t i = 0; i < f->shard_count; i++) {
		if (f->shards[i].shard_id == shard_id)
			return &f->shards[i];
	}
	if (f->shard_count == REPLICA_SHARDS_MAX)
		return NULL;
	f->shards[f->shard_count] = (struct fshard){ .shard_id = shard_id, .conn = -1 };
	return &f->shards[f->shard_count++];
}

static int32_t
conn_index(const struct replica_follower *f, const struct fconn *c)
{
	return (int32_t)(c - f->conns);
}

static void
conn_close(struct replica_follower *f, struct fconn *c)
{
	int32_t ci = conn_index(f, c);

	close(c->fd);
	c->fd = -1;
	c->broken = false;
	replica_buf_fini(&c->rx);
	replica_buf_fini(&c->tx);
	for (uint32_t i = 0; i < f->shard_count; i++) {
		if (f->shards[i].conn == ci) {
			f->shards[i].conn = -1;
			f->shards[i].ready = false;
		}
	}
}

static void
conn_break(struct replica_follower *f, struct fconn *c, const char *why, int err)
{
	if (c->broken)
		return;
	diag_warn("replica", "follower: link reset: %s (%s)", why, strerror(err < 0 ? -err : err));
	c->broken = true;
	f->stats.resets++;
}

static void
conn_accept(struct replica_follower *f)
{
	int fd = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct fconn *c = NULL;

	if (fd < 0)
		return;
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX && c == NULL; i++) {
		if (f->conns[i].fd < 0)
			c = &f->conns[i];
	}
	/* Buffers per link, allocated when it comes (not per frame). */
	if (c == NULL || replica_buf_init(&c->rx, REPLICA_FRAME_SIZE_MAX) != 0 ||
	    replica_buf_init(&c->tx, FOLLOWER_TX_BYTES) != 0) {
		diag_warn("replica", "follower: link refused (%s)",
			  c == NULL ? "REPLICA_CONNS_MAX links" : "out of memory");
		if (c != NULL) {
			replica_buf_fini(&c->rx);
			replica_buf_fini(&c->tx);
		}
		close(fd);
		return;
	}
	c->fd = fd;
	c->broken = false;
	f->stats.connections++;
}

/* A control frame to `c`; a link that cannot take it is reset. */
static void
conn_put(struct replica_follower *f, struct fconn *c, enum replica_msg type, uint64_t shard_id,
	 uint64_t epoch, uint64_t seq)
{
	int err = replica_put_ctl(&c->tx, type, shard_id, epoch, seq);

	if (err != 0)
		conn_break(f, c, "send buffer full", err);
}

/* ---- Completions ----------------------------------------------------------- */

static void
follower_completions(struct replica_follower *f)
{
	struct log_completion done[64];
	uint32_t n;

	while ((n = log_completions_poll(f->producer, done, ARRAY_SIZE(done))) != 0) {
		for (uint32_t i = 0; i < n; i++) {
			struct fshard *s = &f->shards[(uint32_t)done[i].cookie];
			struct fconn *c = s->conn < 0 ? NULL : &f->conns[s->conn];

			if ((uint32_t)(done[i].cookie >> 32) != s->generation || c == NULL)
				continue; /* Appended for an older LEAD: the handshake covers it. */
			if (done[i].error != 0) {
				conn_break(f, c, "append refused", done[i].error);
				continue;
			}
			conn_put(f, c, REPLICA_MSG_ACK, s->shard_id, s->epoch,
				 done[i].seq_first + done[i].record_count);
		}
	}
}

/* A free batch, waiting for completions when all are in flight (back-pressure). */
static struct log_batch *
batch_wait(struct replica_follower *f)
{
	struct log_batch *b;

	while ((b = log_batch_get(f->producer)) == NULL && !atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->done_fd, .events = POLLIN };
		uint64_t drain;

		follower_completions(f);
		if (log_batches_free(f->producer) > 0)
			continue;
		if (poll(&p, 1, FOLLOWER_BATCH_WAIT_MS) > 0 &&
		    read(f->done_fd, &drain, sizeof(drain)) < 0)
			diag_debug("replica", "completion read: %s", strerror(errno));
	}
	return b;
}

static int
batch_submit(struct replica_follower *f, struct fshard *s, struct log_batch *b)
{
	uint64_t cookie = (uint64_t)s->generation << 32 | (uint64_t)(s - f->shards);
	int err;

	/* The writer refuses it (-ESTALE) if this node promised a newer epoch meanwhile. */
	while ((err = log_batch_submit_at(f->producer, b, s->shard_id, s->seq_next, s->epoch,
					  cookie)) == -EAGAIN && !atomic_load(&f->stop))
		follower_completions(f);
	if (err != 0) {
		log_batch_put(f->producer, b);
		return err;
	}
	s->seq_next += log_batch_record_count(b);
	return 0;
}

/* ---- Messages --------------------------------------------------------------- */

static void
on_lead(struct replica_follower *f, struct fconn *c, const struct replica_ctl *m)
{
	struct fshard *s = fshard_get(f, m->shard_id);
	struct log_epoch_info ei;
	int err;

	if (s == NULL) {
		conn_break(f, c, "REPLICA_SHARDS_MAX shards", -ENOSPC);
		return;
	}
	err = log_epoch_promise(f->config.log, m->shard_id, m->epoch);
	if (err == -ESTALE) {
		log_epoch_info(f->config.log, m->shard_id, &ei);
		f->stats.stale_epochs++;
		conn_put(f, c, REPLICA_MSG_FENCED, m->shard_id, ei.promised, 0);
		return;
	}
	if (err != 0) {
		conn_break(f, c, "promise", err);
		return;
	}
	log_epoch_info(f->config.log, m->shard_id, &ei);
	diag_debug("replica", "follower %u: LEAD shard %" PRIx64 " epoch %" PRIu64 " (newest %"
		   PRIu64 ")", f->port, m->shard_id, m->epoch, ei.epoch_last);
	s->conn = conn_index(f, c);
	s->epoch = m->epoch;
	s->generation++;
	s->ready = false;
	s->rounds = 0;
	conn_put(f, c, REPLICA_MSG_EPOCH_QUERY, m->shard_id, ei.epoch_last, 0);
}

/* What the APPEND encoding of a record takes (log_read callback). */
static int
keep_size_fn(void *arg, const struct log_record_out *r)
{
	uint64_t *size = arg;

	*size += REPLICA_REC_HEADER_SIZE + (r->has_explicit_hash_key ? 16u : 0u) +
		 r->partition_key_size + r->data_size;
	return 0;
}

/* Copies the shard's records [from, to) into `keep` in the APPEND record encoding. */
static int
keep_read(struct log *log, uint64_t shard_id, uint64_t from, uint64_t to,
	  struct replica_buf *keep)
{
	uint64_t size = REPLICA_HEADER_SIZE + REPLICA_APPEND_HEADER_SIZE;
	struct replica_append_build b = { .buf = keep };
	struct log_reader *r;
	uint64_t next;
	int n;
	int err = log_reader_open(log, &r);

	if (err != 0)
		return err;
	log_reader_past_watermark(r);
	n = log_read(r, shard_id, from, (uint32_t)(to - from), UINT64_MAX, keep_size_fn, &size,
		     &next);
	err = n < 0 ? n : (uint64_t)n != to - from ? -EIO : replica_buf_init(keep, size);
	if (err == 0) {
		keep->tail = REPLICA_HEADER_SIZE + REPLICA_APPEND_HEADER_SIZE; /* Records after. */
		n = log_read(r, shard_id, from, (uint32_t)(to - from), UINT64_MAX,
			     replica_append_record, &b, &next);
		err = (uint64_t)n == to - from ? 0 : n < 0 ? n : -EIO;
	}
	log_reader_close(r);
	return err;
}

/*
 * Waits until the shard's local durable end reaches `seq` (sending ACKs meanwhile),
 * or the link broke (an append of it was refused: it never will).
 */
static int
wait_durable(struct replica_follower *f, const struct fconn *c, uint64_t shard_id, uint64_t seq)
{
	struct log_shard_info info;

	for (;;) {
		struct pollfd p = { .fd = f->done_fd, .events = POLLIN };
		uint64_t drain;

		follower_completions(f);
		log_shard_info(f->config.log, shard_id, &info);
		if (info.seq_local >= seq)
			return 0;
		if (atomic_load(&f->stop) || c->broken)
			return -ECANCELED;
		if (poll(&p, 1, FOLLOWER_BATCH_WAIT_MS) > 0 &&
		    read(f->done_fd, &drain, sizeof(drain)) < 0)
			diag_debug("replica", "completion read: %s", strerror(errno));
	}
}

static int append_records(struct replica_follower *f, struct fshard *s, const uint8_t *payload,
			  uint32_t length);

/*
 * A cut falls on a batch boundary: a batch straddling `cut` goes whole, with
 * records [point, cut) the leader holds too (maybe acknowledged). They are
 * copied first, the tail cut, then appended again at the same numbers in the
 * epoch they had (an epoch starts on a batch boundary, so at most one starts at
 * `point`), durable before the handshake answers: a follower never holds less
 * than it said it held. The log makes the cut and the re-append one step
 * (log_shard_truncate_keep): if this node is placed as the shard's leader
 * meanwhile, its settle waits for them and its epoch begins after them, and
 * its promise does not fence them.
 */
static int
truncate_exact(struct replica_follower *f, struct fconn *c, struct fshard *s, uint64_t cut,
	       uint64_t *end_out)
{
	struct log *log = f->config.log;
	struct replica_buf keep = { 0 };
	uint64_t point;
	uint64_t epoch_point = LOG_EPOCH_NONE;
	uint64_t epoch_before = LOG_EPOCH_NONE;
	uint64_t unused;
	bool keeping = false;
	int err = log_shard_cut_point(log, s->shard_id, cut, &point);

	if (err == 0 && point < cut) {
		err = keep_read(log, s->shard_id, point, cut, &keep);
		log_epoch_at(log, s->shard_id, point, &epoch_point, &unused);
		if (point > 0)
			log_epoch_at(log, s->shard_id, point - 1, &epoch_before, &unused);
	}
	if (err == 0 && point < cut) {
		err = log_shard_truncate_keep(log, s->shard_id, cut, s->epoch, end_out);
		keeping = err == 0;
	} else if (err == 0) {
		err = log_shard_truncate_in(log, s->shard_id, cut, s->epoch, end_out);
	}
	if (err == 0 && point < cut && *end_out == point) {
		if (epoch_point != epoch_before)
			err = log_epoch_record(log, s->shard_id, epoch_point, point);
		s->seq_next = point;
		if (err == 0)
			err = append_records(f, s, keep.data + REPLICA_HEADER_SIZE,
					     (uint32_t)(keep.tail - REPLICA_HEADER_SIZE));
		if (err == 0)
			err = wait_durable(f, c, s->shard_id, cut);
		if (err == 0) {
			f->stats.records_kept += cut - point;
			*end_out = cut;
		}
	}
	/*
	 * Not back durably (not the batch read, a refusal, a failed write, the link
	 * broke): the shard must not go on taking only them, nor settles wait for them.
	 */
	if (keeping && (err != 0 || *end_out != cut))
		log_shard_keep_abandon(log, s->shard_id);
	replica_buf_fini(&keep);
	return err;
}

/*
 * A newer epoch was promised since this handshake's LEAD (another leader's, or this
 * node's own: it was placed as the shard's leader and began its epoch at its end):
 * the handshake stops, answered FENCED. Going on, its cut at the end would forget an
 * epoch begun there and not yet written, and this node's records would carry an
 * older epoch's name. True when deposed.
 */
static bool
handshake_deposed(struct replica_follower *f, struct fconn *c, struct fshard *s)
{
	struct log_epoch_info ei;

	log_epoch_info(f->config.log, s->shard_id, &ei);
	if (ei.promised <= s->epoch)
		return false;
	f->stats.stale_epochs++;
	s->conn = -1;
	s->ready = false;
	conn_put(f, c, REPLICA_MSG_FENCED, s->shard_id, ei.promised, 0);
	return true;
}

/*
 * The leader's history parts from mine below my trim horizon: nothing I hold (all of it
 * at or above the horizon) is vouched for, and what lies below expired. The shard starts
 * again at my horizon, empty and with no history (a cut drops what it holds, then
 * log_shard_start_at, which also repairs a start that lost power before its log.epochs),
 * and the handshake is done there: the leader ships from it, or sends START if its own
 * horizon is higher.
 */
static void
handshake_restart(struct replica_follower *f, struct fconn *c, struct fshard *s, uint64_t trim)
{
	uint64_t end;
	int err = log_shard_truncate_in(f->config.log, s->shard_id, trim, s->epoch, &end);

	if (err == 0)
		err = log_shard_start_at(f->config.log, s->shard_id, trim, s->epoch, &end);
	if ((err == 0 || err == -ESTALE) && handshake_deposed(f, c, s))
		return;
	if (err != 0) {
		conn_break(f, c, "start", err);
		return;
	}
	diag_info("replica", "follower %u: shard %" PRIx64 ": the leader's history parts from"
		  " mine below my start %" PRIu64 ": starting again there", f->port, s->shard_id,
		  trim);
	f->stats.starts++;
	s->ready = true;
	s->seq_next = end;
	conn_put(f, c, REPLICA_MSG_READY, s->shard_id, s->epoch, end);
}

static void
on_epoch_end(struct replica_follower *f, struct fconn *c, const struct replica_ctl *m)
{
	struct fshard *s = fshard_get(f, m->shard_id);
	struct log_shard_info info;
	struct log_epoch_info ei;
	uint64_t own_epoch;
	uint64_t own_end;
	uint64_t cut;
	int err;

	if (s == NULL || s->conn != conn_index(f, c) || s->ready ||
	    ++s->rounds > FOLLOWER_HANDSHAKE_ROUNDS_MAX) {
		conn_break(f, c, "EPOCH_END out of place", -EPROTO);
		return;
	}
	if (handshake_deposed(f, c, s))
		return;
	/*
	 * Everything the writer took for the shard durable first: a batch of an older
	 * LEAD (or of this node's own deposed leadership) taken before the promise would
	 * land after the end compared here, under the epoch the new leader's first
	 * APPEND records there, and no later handshake could tell it from the leader's.
	 */
	err = log_shard_settle(f->config.log, m->shard_id, &own_end);
	if (err != 0) {
		conn_break(f, c, "settle", err);
		return;
	}
	log_epoch_info(f->config.log, m->shard_id, &ei);
	/* Where my copy of epoch m->epoch ends: the start of my first newer epoch. */
	log_epoch_end(f->config.log, m->shard_id, m->epoch, &own_epoch, &own_end);
	log_shard_info(f->config.log, m->shard_id, &info);
	cut = min_u64(m->seq, own_end);
	diag_debug("replica", "follower %u: EPOCH_END %" PRIu64 "/%" PRIu64 ", mine %" PRIu64
		   " ends %" PRIu64 ", end %" PRIu64 ": cut %" PRIu64, f->port, m->epoch, m->seq,
		   ei.epoch_last, own_end, info.seq_local, cut);
	if (cut < info.seq_trim) {
		handshake_restart(f, c, s, info.seq_trim);
		return;
	}
	/* Also at my end when I know epochs newer than E: they never wrote here, and go. */
	if (cut < info.seq_local || m->epoch != ei.epoch_last) {
		uint64_t end;

		err = truncate_exact(f, c, s, cut, &end);
		/* Also after a cut that kept records: this node may lead the shard now. */
		if ((err == 0 || err == -ESTALE) && handshake_deposed(f, c, s))
			return;
		if (err != 0) {
			conn_break(f, c, "truncate", err);
			return;
		}
		if (end < info.seq_local)
			f->stats.truncations++;
	}
	if (m->epoch != ei.epoch_last) {
		log_epoch_info(f->config.log, m->shard_id, &ei);
		conn_put(f, c, REPLICA_MSG_EPOCH_QUERY, m->shard_id, ei.epoch_last, 0);
		return;
	}
	log_shard_info(f->config.log, m->shard_id, &info);
	s->ready = true;
	s->seq_next = info.seq_local;
	conn_put(f, c, REPLICA_MSG_READY, m->shard_id, s->epoch, s->seq_next);
}

/* The records of an APPEND into batches at the leader's numbers. */
static int
append_records(struct replica_follower *f, struct fshard *s, const uint8_t *payload,
	       uint32_t length)
{
	struct replica_rec_iter it;
	struct log_record_in rec;
	struct log_batch *b = batch_wait(f);
	int err = 0;

	replica_rec_iter_init(&it, payload, length);
	while (b != NULL && err == 0 && replica_rec_next(&it, &rec) == 1) {
		err = log_batch_add(b, &rec);
		if (err == -ENOSPC) {
			err = batch_submit(f, s, b);
			b = err == 0 ? batch_wait(f) : NULL;
			err = b == NULL ? (err != 0 ? err : -ECANCELED) : log_batch_add(b, &rec);
		}
		if (err == 0)
			f->stats.records_appended++;
	}
	if (b == NULL)
		return err != 0 ? err : -ECANCELED;
	if (err == 0 && log_batch_record_count(b) > 0)
		return batch_submit(f, s, b);
	log_batch_put(f->producer, b);
	return err;
}

static void
on_append(struct replica_follower *f, struct fconn *c, const uint8_t *payload, uint32_t length)
{
	struct replica_append a;
	struct log_epoch_info ei;
	struct fshard *s;
	int err;

	if (replica_append_parse(payload, length, &a) != 0) {
		f->stats.bad_frames++;
		conn_break(f, c, "bad APPEND", -EBADMSG);
		return;
	}
	log_epoch_info(f->config.log, a.shard_id, &ei);
	if (a.epoch < ei.promised) {
		f->stats.stale_epochs++;
		conn_put(f, c, REPLICA_MSG_FENCED, a.shard_id, ei.promised, 0);
		return;
	}
	s = fshard_get(f, a.shard_id);
	if (s == NULL || s->conn != conn_index(f, c) || !s->ready || a.epoch != s->epoch ||
	    a.seq_first != s->seq_next || (a.count > 0 && a.records_epoch < ei.epoch_last)) {
		conn_break(f, c, "APPEND out of place", -EPROTO);
		return;
	}
	log_shard_watermark_set(f->config.log, a.shard_id, a.watermark);
	if (a.count == 0)
		return;
	if (a.records_epoch > ei.epoch_last) {
		/* Its first records: the epoch's start is durable before them. */
		err = log_epoch_record(f->config.log, a.shard_id, a.records_epoch, a.seq_first);
		if (err != 0) {
			conn_break(f, c, "epoch begin", err);
			return;
		}
	}
	err = append_records(f, s, payload, length);
	if (err != 0)
		conn_break(f, c, "append", err);
}

/*
 * START: the leader's log starts above my end (its retention dropped what I lack): my
 * shard starts there (log_shard_start_at: what I hold below is dropped as retention
 * would, durably), and the ACK of that point tells the leader I hold what it holds below.
 */
static void
on_start(struct replica_follower *f, struct fconn *c, const struct replica_ctl *m)
{
	struct fshard *s = fshard_get(f, m->shard_id);
	struct log_epoch_info ei;
	uint64_t end;
	int err;

	log_epoch_info(f->config.log, m->shard_id, &ei);
	if (m->epoch < ei.promised) {
		f->stats.stale_epochs++;
		conn_put(f, c, REPLICA_MSG_FENCED, m->shard_id, ei.promised, 0);
		return;
	}
	if (s == NULL || s->conn != conn_index(f, c) || !s->ready || m->epoch != s->epoch ||
	    m->seq <= s->seq_next) {
		conn_break(f, c, "START out of place", -EPROTO);
		return;
	}
	err = log_shard_start_at(f->config.log, m->shard_id, m->seq, s->epoch, &end);
	if (err == -ESTALE && handshake_deposed(f, c, s))
		return;
	if (err == 0 && end != m->seq)
		err = -EPROTO; /* It held records past the start: not what was shipped to it. */
	if (err != 0) {
		conn_break(f, c, "start", err);
		return;
	}
	diag_info("replica", "follower %u: shard %" PRIx64 " starts at %" PRIu64 " (the leader's"
		  " first retained record)", f->port, m->shard_id, m->seq);
	f->stats.starts++;
	s->seq_next = m->seq;
	conn_put(f, c, REPLICA_MSG_ACK, s->shard_id, s->epoch, m->seq);
}

static void
conn_frame(struct replica_follower *f, struct fconn *c, const struct replica_header *h,
	   const uint8_t *payload)
{
	struct replica_ctl m;

	if (h->type == REPLICA_MSG_APPEND) {
		on_append(f, c, payload, h->length);
		return;
	}
	if (replica_ctl_parse(payload, h->length, &m) != 0 ||
	    (h->type != REPLICA_MSG_LEAD && h->type != REPLICA_MSG_EPOCH_END &&
	     h->type != REPLICA_MSG_START)) {
		f->stats.bad_frames++;
		conn_break(f, c, "bad frame", -EBADMSG);
		return;
	}
	if (h->type == REPLICA_MSG_LEAD)
		on_lead(f, c, &m);
	else if (h->type == REPLICA_MSG_START)
		on_start(f, c, &m);
	else
		on_epoch_end(f, c, &m);
}

static void
conn_receive(struct replica_follower *f, struct fconn *c)
{
	struct replica_header h;
	const uint8_t *payload;
	int err = replica_recv(c->fd, &c->rx);
	int rc;

	while (!c->broken && (rc = replica_frame_next(&c->rx, &h, &payload)) != 0) {
		if (rc < 0) {
			f->stats.bad_frames++;
			conn_break(f, c, "bad frame", rc);
			break;
		}
		conn_frame(f, c, &h, payload);
	}
	if (err != 0)
		conn_break(f, c, "receive", err);
}

/* ---- The thread ------------------------------------------------------------ */

static void
follower_pass(struct replica_follower *f)
{
	struct pollfd pfd[3 + REPLICA_CONNS_MAX];
	uint64_t drain;

	pfd[0] = (struct pollfd){ .fd = f->wake_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = f->listen_fd, .events = POLLIN };
	pfd[2] = (struct pollfd){ .fd = f->done_fd, .events = POLLIN };
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX; i++) {
		struct fconn *c = &f->conns[i];

		pfd[3 + i] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		if (c->fd >= 0 && c->tx.head < c->tx.tail)
			pfd[3 + i].events |= POLLOUT;
	}
	if (poll(pfd, ARRAY_SIZE(pfd), FOLLOWER_POLL_MS) < 0)
		return;
	if ((pfd[2].revents & POLLIN) && read(f->done_fd, &drain, sizeof(drain)) < 0)
		diag_debug("replica", "completion read: %s", strerror(errno));
	if (pfd[1].revents & POLLIN)
		conn_accept(f);
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX; i++) {
		if (f->conns[i].fd >= 0 && (pfd[3 + i].revents & (POLLIN | POLLERR | POLLHUP)))
			conn_receive(f, &f->conns[i]);
	}
	follower_completions(f);
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX; i++) {
		struct fconn *c = &f->conns[i];
		int err;

		if (c->fd < 0)
			continue;
		err = c->broken ? 0 : replica_send(c->fd, &c->tx);
		if (err != 0)
			conn_break(f, c, "send", err);
		if (c->broken)
			conn_close(f, c);
	}
	pthread_mutex_lock(&f->lock);
	f->published = f->stats;
	pthread_mutex_unlock(&f->lock);
}

static void *
follower_main(void *arg)
{
	struct replica_follower *f = arg;

	prctl(PR_SET_NAME, "replica-follow");
	while (!atomic_load(&f->stop))
		follower_pass(f);
	return NULL;
}

int
replica_follower_start(const struct replica_follower_config *config,
		       struct replica_follower **follower_out)
{
	struct replica_follower *f;
	int err;

	if (config->log == NULL)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->config = *config;
	f->listen_fd = -1;
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX; i++)
		f->conns[i].fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	f->shards = calloc(REPLICA_SHARDS_MAX, sizeof(*f->shards));
	err = f->wake_fd < 0 ? -errno : f->shards == NULL ? -ENOMEM : 0;
	if (err == 0)
		err = replica_listen(config->listen_host != NULL ? config->listen_host : "127.0.0.1",
				     config->port, &f->listen_fd, &f->port);
	if (err == 0)
		err = log_producer_open(config->log, &f->producer);
	if (err == 0) {
		f->done_fd = log_producer_event_fd(f->producer);
		err = f->done_fd < 0 ? f->done_fd : 0;
	}
	if (err == 0)
		err = -pthread_create(&f->thread, NULL, follower_main, f);
	if (err != 0)
		goto out_free;
	f->started = true;
	*follower_out = f;
	return 0;

out_free:
	replica_follower_stop(f);
	return err;
}

uint16_t
replica_follower_port(const struct replica_follower *f)
{
	return f->port;
}

void
replica_follower_stats(struct replica_follower *f, struct replica_follower_stats *stats_out)
{
	pthread_mutex_lock(&f->lock);
	*stats_out = f->published;
	pthread_mutex_unlock(&f->lock);
}

void
replica_follower_stop(struct replica_follower *f)
{
	uint64_t one = 1;

	if (f == NULL)
		return;
	atomic_store(&f->stop, true);
	if (f->started) {
		if (write(f->wake_fd, &one, sizeof(one)) < 0)
			diag_debug("replica", "wake: %s", strerror(errno));
		pthread_join(f->thread, NULL);
	}
	for (uint32_t i = 0; i < REPLICA_CONNS_MAX; i++) {
		if (f->conns[i].fd >= 0)
			conn_close(f, &f->conns[i]);
	}
	if (f->producer != NULL) {
		/* What is in flight completes inside log_producer_close's wait, or log_close. */
		log_producer_close(f->producer);
	}
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
	pthread_mutex_destroy(&f->lock);
	free(f->shards);
	free(f);
}
