/*
 * log_epoch.c - the replication primitives of a shard (log.h, "Replication
 * primitives"): its leader-epoch history, the epoch it promised, tail
 * truncation and the replicated watermark.
 *
 * log.epochs holds every shard's history and cuts. It is replaced
 * atomically on every change (write log.epochs.tmp, fsync, rename, fsync
 * the directory), as log.meta is: changes are rare (a failover, a new
 * leader), never on the write path. Little-endian:
 *
 *   OFFSET  SIZE  FIELD
 *        0     8  magic            LOG_EPOCHS_MAGIC ("SLCEPOC1")
 *        8     4  crc32c           over bytes 12 .. end of file
 *       12     4  version          LOG_EPOCHS_VERSION
 *       16     4  shard_count      shards with a history or a cut
 *       20     4  reserved         zero
 *       24     *  shard_count x {
 *                   shard_id u64, promised u64, epoch_count u32, trunc_count u32,
 *                   kept_end u64                                 (version 3 on)
 *                   epoch_count x { epoch u64, seq_start u64 }   (oldest first)
 *                   trunc_count x { seq u64, commit_before u64 }
 *                 }
 *
 * A cut {seq, commit_before} removes every batch of the shard whose first
 * sequence number is >= seq and whose window's commit id is below
 * commit_before: exactly the batches that were durable when it was made.
 * Their index entries and bytes stay where they are (segments are shared
 * by all shards) and are skipped by recovery, reads and retention
 * (log_entry_truncated; in memory each such entry is marked
 * LOG_ENTRY_DEAD); they go with their segments. Batches appended after the
 * cut have higher commit ids, so they are kept. Recovery raises its next
 * commit id above every commit_before, so that holds across restarts too.
 *
 * Version 2 keeps one cut per shard, the newest, so a shard can be cut any
 * number of times (version 1 kept up to LOG_SHARD_TRUNCATIONS_MAX and then
 * refused cuts, which wedged a follower). When a cut is made, every older
 * one is either
 *   - subsumed: the new cut point is at or below its point (the shard's end
 *     never grew past it since), and the new commit_before is higher, so
 *     the new cut removes all it removed; or
 *   - overwritten: the shard grew past its point since, so a batch starting
 *     exactly there, appended after it, is durable. Recovery replays batches
 *     in commit order; meeting that batch below the shard's end it replays
 *     the cut (log_recover_cut: every batch from there on replayed so far is
 *     dead), which removes exactly what the cut removed.
 * Either way the older cut is forgotten. Version 2 state read by a version
 * 1 binary would bring cut tails back, so it is refused there (version
 * check); this code reads both.
 *
 * Version 3 adds kept_end: the newest cut split a batch and kept the records
 * [its point, kept_end) to append them again (log_shard_truncate_keep). Stored
 * in the same file as the cut, so a crash between the cut and their re-append
 * leaves a shard that knows it lacks records it held: it begins no epoch below
 * kept_end (log_epoch_begin: -ENODATA) until it holds them again, from its
 * leader. A version 2 binary would lose that, so it refuses version 3; this
 * code reads versions 1 to 3 (kept_end 0 below 3).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

#define LOG_EPOCHS_MAGIC 0x31434f5045434c53ull /* "SLCEPOC1" */
#define LOG_EPOCHS_VERSION 3u       /* Written: one cut per shard and its kept range. */
#define LOG_EPOCHS_VERSION_KEPT 3u  /* The first with kept_end. */
#define LOG_EPOCHS_VERSION_MIN 1u   /* Read: version 1 kept every cut (up to 32). */
#define LOG_EPOCHS_NAME "log.epochs"
#define LOG_EPOCHS_TMP_NAME "log.epochs.tmp"
#define LOG_EPOCHS_FILE_MAX (64u << 20)

struct epochs_header {
	uint64_t magic;
	uint32_t crc32c;
	uint32_t version;
	uint32_t shard_count;
	uint32_t reserved;
};

struct epochs_shard {
	uint64_t shard_id;
	uint64_t promised;
	uint32_t epoch_count;
	uint32_t trunc_count;
};

static_assert(sizeof(struct epochs_header) == 24, "on-disk layout");
static_assert(sizeof(struct epochs_shard) == 24, "on-disk layout");
static_assert(sizeof(struct log_epoch_entry) == 16 && sizeof(struct log_truncation) == 16,
	      "on-disk layout");

static size_t
epochs_shard_size(const struct log_shard_repl *repl, uint32_t version)
{
	size_t kept = version >= LOG_EPOCHS_VERSION_KEPT ? sizeof(repl->kept_end) : 0;

	return sizeof(struct epochs_shard) + kept + (repl->epoch_count + repl->trunc_count) * 16u;
}

/* The file image, built under index_lock. Returns its size, 0 when out of memory. */
static size_t
epochs_build(struct log *log, uint8_t **buf_out)
{
	struct epochs_header h = { .magic = LOG_EPOCHS_MAGIC, .version = LOG_EPOCHS_VERSION };
	size_t size = sizeof(h);
	uint8_t *buf;
	uint8_t *pos;

	for (uint32_t i = 0; i < log->shard_count; i++) {
		if (log->shards[i].repl != NULL) {
			size += epochs_shard_size(log->shards[i].repl, LOG_EPOCHS_VERSION);
			h.shard_count++;
		}
	}
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	pos = buf + sizeof(h);
	for (uint32_t i = 0; i < log->shard_count; i++) {
		const struct log_shard_repl *repl = log->shards[i].repl;
		struct epochs_shard es;

		if (repl == NULL)
			continue;
		es = (struct epochs_shard){ log->shards[i].shard_id, repl->promised,
					    repl->epoch_count, repl->trunc_count };
		memcpy(pos, &es, sizeof(es));
		pos += sizeof(es);
		memcpy(pos, &repl->kept_end, sizeof(repl->kept_end));
		pos += sizeof(repl->kept_end);
		memcpy(pos, repl->epochs, repl->epoch_count * 16u);
		pos += repl->epoch_count * 16u;
		memcpy(pos, repl->truncs, repl->trunc_count * 16u);
		pos += repl->trunc_count * 16u;
	}
	memcpy(buf, &h, sizeof(h));
	h.crc32c = crc32c(0, buf + 12, size - 12);
	memcpy(buf, &h, sizeof(h));
	*buf_out = buf;
	return size;
}

/* Persists every shard's history and cuts. Any thread. */
int
log_epochs_store(struct log *log)
{
	return log_file_store(log, epochs_build, LOG_EPOCHS_NAME, LOG_EPOCHS_TMP_NAME);
}

static struct log_shard_repl *
shard_repl(struct log_shard *shard)
{
	if (shard->repl == NULL)
		shard->repl = calloc(1, sizeof(*shard->repl));
	return shard->repl;
}

/* One shard's record at `pos` into the shard table. Returns its size or a negative errno. */
static int64_t
epochs_parse_shard(struct log *log, uint32_t version, const uint8_t *pos, size_t left)
{
	size_t kept = version >= LOG_EPOCHS_VERSION_KEPT ? sizeof(uint64_t) : 0;
	uint64_t kept_end = 0;
	struct epochs_shard es;
	struct log_shard *shard;
	struct log_shard_repl *repl;

	if (left < sizeof(es) + kept)
		return -EBADMSG;
	memcpy(&es, pos, sizeof(es));
	memcpy(&kept_end, pos + sizeof(es), kept);
	pos += kept;  /* The entries follow it. */
	left -= kept;
	if (es.epoch_count > LOG_SHARD_EPOCHS_MAX || es.trunc_count > LOG_SHARD_TRUNCATIONS_MAX ||
	    left < sizeof(es) + (es.epoch_count + es.trunc_count) * 16ull)
		return -EBADMSG;
	shard = log_shard_get(log, es.shard_id);
	if (shard == NULL)
		return -ENOBUFS;
	repl = shard_repl(shard);
	if (repl == NULL)
		return -ENOMEM;
	repl->promised = es.promised;
	__atomic_store_n(&shard->fence_epoch, es.promised, __ATOMIC_RELEASE);
	repl->epoch_count = es.epoch_count;
	repl->trunc_count = es.trunc_count;
	repl->kept_end = kept_end;
	memcpy(repl->epochs, pos + sizeof(es), es.epoch_count * 16u);
	memcpy(repl->truncs, pos + sizeof(es) + es.epoch_count * 16u, es.trunc_count * 16u);
	/* Batches written after a restart must not look older than a cut. */
	for (uint32_t i = 0; i < repl->trunc_count; i++)
		log->commit_next = max_u64(log->commit_next, repl->truncs[i].commit_before);
	return (int64_t)epochs_shard_size(repl, version);
}

static int
epochs_parse(struct log *log, const uint8_t *buf, size_t size)
{
	struct epochs_header h;
	size_t off = sizeof(h);

	if (size < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LOG_EPOCHS_MAGIC || crc32c(0, buf + 12, size - 12) != h.crc32c)
		return -EBADMSG;
	if (h.version < LOG_EPOCHS_VERSION_MIN || h.version > LOG_EPOCHS_VERSION) {
		diag_error("log", "%s: %s version %" PRIu32 ", this build reads %u to %u",
			   log->dir_path, LOG_EPOCHS_NAME, h.version, LOG_EPOCHS_VERSION_MIN,
			   LOG_EPOCHS_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (uint32_t i = 0; i < h.shard_count; i++) {
		int64_t used = epochs_parse_shard(log, h.version, buf + off, size - off);

		if (used < 0)
			return (int)used;
		off += (size_t)used;
	}
	return off == size ? 0 : -EBADMSG;
}

/*
 * A missing file is an empty history (a log that never replicated). An
 * unreadable one is refused: forgetting a cut would bring a divergent tail back.
 */
int
log_epochs_load(struct log *log)
{
	uint32_t file;
	int err = log_io_file_open(log->io, LOG_EPOCHS_NAME, 0, &file);

	if (err == -ENOENT)
		return 0;
	if (err != 0)
		return err;
	err = log_file_load(log, file, LOG_EPOCHS_FILE_MAX, epochs_parse);
	log_io_file_close(log->io, file);
	if (err != 0)
		diag_error("log", "%s: %s unreadable: %s", log->dir_path, LOG_EPOCHS_NAME,
			   strerror(-err));
	return err;
}

bool
log_entry_truncated(const struct log_shard *shard, const struct log_index_entry *e)
{
	if ((e->reserved & LOG_ENTRY_DEAD) != 0)
		return true;
	if (shard == NULL || shard->repl == NULL)
		return false;
	for (uint32_t i = 0; i < shard->repl->trunc_count; i++) {
		const struct log_truncation *t = &shard->repl->truncs[i];

		if (e->commit_id < t->commit_before && e->seq_first >= t->seq)
			return true;
	}
	return false;
}

uint64_t
log_shard_readable_end(const struct log_shard *shard)
{
	return min_u64(shard->seq_durable, shard->seq_watermark);
}

uint64_t
log_shard_watermark_initial(const struct log *log)
{
	return log->config.watermark_gated ? 0 : UINT64_MAX;
}

int
log_shard_watermark_set(struct log *log, uint64_t shard_id, uint64_t seq)
{
	struct log_shard *shard;
	int err = 0;

	uint64_t one = 1;
	bool moved = false;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard == NULL) {
		err = -ENOENT;
	} else {
		moved = seq > shard->seq_watermark;
		shard->seq_watermark = seq;
	}
	pthread_mutex_unlock(&log->index_lock);
	/*
	 * Readers waiting for a shard (SubscribeToShard) wake as the writer wakes them at
	 * local durability: on a replicated log, records become readable here instead.
	 */
	if (moved && atomic_load_explicit(&log->durable_armed, memory_order_acquire) &&
	    write(log->durable_fd, &one, sizeof(one)) < 0)
		one = 1;
	return err;
}

/* ---- Truncation --------------------------------------------------------- */

/* Under index_lock: the first seq of the live batch holding `seq` (seq if none is found). */
static uint64_t
truncate_point(struct log *log, const struct log_shard *shard, uint64_t seq)
{
	for (uint32_t k = 0; k < shard->seg_count; k++) {
		const struct log_shard_seg *summary = &shard->segs[k];
		const struct log_segment *seg;

		if (seq < summary->seq_first || seq >= summary->seq_end)
			continue;
		seg = log_segment_find(log, summary->segment_no);
		for (uint32_t i = 0; seg != NULL && i < seg->entry_count; i++) {
			const struct log_index_entry *e = &seg->entries[i];

			if (e->shard_id == shard->shard_id && e->seq_first <= seq &&
			    seq < e->seq_first + e->record_count && !log_entry_truncated(shard, e))
				return e->seq_first;
		}
	}
	return seq;
}

int
log_shard_cut_point(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *seq_out)
{
	struct log_shard *shard;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	*seq_out = shard == NULL ? 0 : seq >= shard->seq_durable ? shard->seq_durable :
									truncate_point(log, shard, seq);
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

/*
 * Under index_lock: marks every batch of the shard from `cut` on, in windows below
 * `commit_before`, dead (its index entries, in the segments the shard's summary
 * names from there on). Recovery passes the commit id of the batch it replays:
 * later entries of the same segments are not replayed yet.
 */
static void
entries_mark_dead(struct log *log, const struct log_shard *shard, uint64_t cut,
		  uint64_t commit_before)
{
	for (uint32_t k = 0; k < shard->seg_count; k++) {
		const struct log_segment *seg;

		if (shard->segs[k].seq_end <= cut)
			continue;
		seg = log_segment_find(log, shard->segs[k].segment_no);
		for (uint32_t i = 0; seg != NULL && i < seg->entry_count; i++) {
			struct log_index_entry *e = &seg->entries[i];

			if (e->shard_id == shard->shard_id && e->seq_first >= cut &&
			    e->commit_id < commit_before)
				e->reserved |= LOG_ENTRY_DEAD;
		}
	}
}

/* Under index_lock: the shard's records end at `cut` (summary, bad ranges, ends). */
static void
shard_cut(struct log *log, struct log_shard *shard, uint64_t cut, uint64_t commit_before)
{
	uint32_t kept = 0;

	entries_mark_dead(log, shard, cut, commit_before);

	for (uint32_t k = 0; k < shard->seg_count; k++) {
		if (shard->segs[k].seq_first >= cut)
			break;
		shard->segs[k].seq_end = min_u64(shard->segs[k].seq_end, cut);
		kept = k + 1;
	}
	shard->seg_count = kept;
	for (uint32_t i = 0; i < shard->bad_count;) {
		shard->bad[i].end = min_u64(shard->bad[i].end, cut);
		if (shard->bad[i].first >= shard->bad[i].end)
			shard->bad[i] = shard->bad[--shard->bad_count];
		else
			i++;
	}
	shard->seq_durable = cut;
	shard->seq_next = cut;
}

/* Under index_lock: forgets everything of the shard from `cut` on (in memory). */
static void
truncate_forget(struct log *log, struct log_shard *shard, uint64_t cut)
{
	struct log_shard_repl *repl = shard->repl;

	shard_cut(log, shard, cut, log->commit_next);
	while (repl->epoch_count > 0 && repl->epochs[repl->epoch_count - 1].seq_start >= cut)
		repl->epoch_count--;
}

int
log_recover_cut(struct log *log, struct log_shard *shard, uint64_t seq, uint64_t commit_id)
{
	/* Only a shard that was cut, only at a batch boundary above its trim horizon. */
	if (shard->repl == NULL || shard->repl->trunc_count == 0 || seq < shard->seq_trim ||
	    truncate_point(log, shard, seq) != seq)
		return -EBADMSG;
	shard_cut(log, shard, seq, commit_id);
	return 0;
}

/* Under index_lock: the cut itself, once nothing of the shard is in flight. */
static void
truncate_cut(struct log *log, struct log_shard *shard, struct log_ctl *req)
{
	uint64_t cut = truncate_point(log, shard, req->seq);
	struct log_shard_repl *repl;

	/* Nothing of an earlier cut is pending here (truncate_busy): its range is over. */
	__atomic_store_n(&shard->keep_end, 0, __ATOMIC_RELEASE);
	req->seq_end = min_u64(cut, shard->seq_durable);
	if (req->epoch != LOG_EPOCH_NONE && shard->repl != NULL &&
	    shard->repl->promised > req->epoch) {
		req->err = -ESTALE;
		return;
	}
	if (cut == shard->seq_durable && shard->repl != NULL && shard->repl->epoch_count > 0 &&
	    shard->repl->epochs[shard->repl->epoch_count - 1].seq_start >= cut) {
		/* Epochs begun at the end and never written to: forgotten, durably. */
		truncate_forget(log, shard, cut);
		req->hold = true;
		return;
	}
	if (cut >= shard->seq_durable)
		return;
	if (cut < shard->seq_trim) {
		req->err = -ERANGE;
		return;
	}
	repl = shard_repl(shard);
	if (repl == NULL) {
		req->err = -ENOMEM;
		return;
	}
	/*
	 * Every batch of the shard so far is in a window below commit_next. Every older
	 * cut is subsumed by this one or overwritten (see the top of this file).
	 */
	repl->truncs[0] = (struct log_truncation){ cut, log->commit_next };
	repl->trunc_count = 1;
	/* Stored with the cut: a crash before the records are back must not forget them. */
	repl->kept_end = req->keep && cut < req->seq ? req->seq : 0;
	truncate_forget(log, shard, cut);
	req->hold = true;
	/* In the same step as the cut: no settle, so no new epoch, comes between. */
	if (repl->kept_end != 0)
		__atomic_store_n(&shard->keep_end, req->seq, __ATOMIC_RELEASE);
}

/* True when the shard remembers no epoch, no cut and no kept range up to `seq`. */
static bool
repl_empty(const struct log_shard_repl *repl, uint64_t seq)
{
	return repl == NULL || (repl->epoch_count == 0 && repl->trunc_count == 0 &&
				repl->kept_end <= seq);
}

/*
 * Under index_lock: log_shard_start_at's change, once nothing of the shard is in flight.
 * A shard ending above `seq` is left alone. Otherwise it forgets what it holds, as
 * retention would, and starts empty at `seq`: like recovery from log.meta with that
 * horizon, it keeps no summary and no bad range below it (the old batches' index
 * entries stay with their segments, below the horizon: never read, never replayed).
 * Its epoch history and cut describe only records below the horizon: they go too (as
 * Kafka's truncateFullyAndStartAt clears its leader-epoch cache); the promise stays,
 * and so does a kept range reaching above the horizon (those records are not back).
 */
static void
start_cut(struct log *log, struct log_shard *shard, struct log_ctl *req)
{
	(void)log;
	__atomic_store_n(&shard->keep_end, 0, __ATOMIC_RELEASE);
	req->seq_end = shard->seq_durable;
	if (req->epoch != LOG_EPOCH_NONE && shard->repl != NULL &&
	    shard->repl->promised > req->epoch) {
		req->err = -ESTALE;
		return;
	}
	if (req->seq < shard->seq_durable ||
	    (req->seq == shard->seq_trim && req->seq == shard->seq_durable &&
	     repl_empty(shard->repl, req->seq)))
		return;
	shard->seg_count = 0;
	shard->bad_count = 0;
	shard->seq_trim = req->seq;
	shard->seq_durable = req->seq;
	shard->seq_next = req->seq;
	if (shard->repl != NULL) {
		shard->repl->epoch_count = 0;
		shard->repl->trunc_count = 0;
		/* Kept records the shard lacks above `seq`: still no lead without them. */
		if (shard->repl->kept_end <= req->seq)
			shard->repl->kept_end = 0;
	}
	req->seq_end = req->seq;
	req->hold = true;
}

/*
 * Another cut's work on the shard is under way: its log.epochs not stored yet
 * (trunc_hold), or the records it split from a batch not durable again yet. A
 * settle meanwhile would answer an end below records this log holds, and a new
 * leader would begin its epoch there.
 */
static bool
truncate_busy(const struct log_shard *shard)
{
	return __atomic_load_n(&shard->trunc_hold, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&shard->keep_end, __ATOMIC_ACQUIRE) > shard->seq_durable;
}

bool
log_ctl_truncate_step(struct log *log, struct log_ctl *req)
{
	struct log_shard *shard = log_shard_find(log, req->id);

	if (shard == NULL) {
		pthread_mutex_lock(&log->index_lock);
		shard = log_shard_get(log, req->id);
		pthread_mutex_unlock(&log->index_lock);
	}
	if (shard == NULL) {
		req->err = -ENOBUFS;
		return true;
	}
	/*
	 * A closed shard takes no appends, but its replica copies still follow the leader
	 * epochs (a node that closed a shard as its leader may follow it later): settles,
	 * epochs and cuts of a tail that was never acknowledged go on (docs/CLUSTER.md
	 * "Resharding"). A cut that re-appends records (keep) would append: refused.
	 */
	if (shard->deleted || (shard->closed && (req->keep || req->start))) {
		req->err = shard->deleted ? -ENOENT : -EPIPE;
		return true;
	}
	if (req->seq == UINT64_MAX) /* Only makes the shard exist (log_epoch_*). */
		return true;
	if (!req->accepted && __atomic_load_n(&shard->trunc_stuck, __ATOMIC_RELAXED)) {
		req->err = -EIO; /* A cut that could not be stored: the log must be reopened. */
		return true;
	}
	if (!req->accepted && truncate_busy(shard))
		return false;
	__atomic_store_n(&shard->trunc_hold, true, __ATOMIC_RELAXED);
	req->accepted = true;
	if (shard->seq_durable != shard->seq_next)
		return false;
	pthread_mutex_lock(&log->index_lock);
	if (req->start)
		start_cut(log, shard, req);
	else
		truncate_cut(log, shard, req);
	if (!req->hold)
		__atomic_store_n(&shard->trunc_hold, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log->index_lock);
	return true;
}

int
log_shard_truncate(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *seq_end_out)
{
	return log_shard_truncate_in(log, shard_id, seq, LOG_EPOCH_NONE, seq_end_out);
}

int
log_shard_settle(struct log *log, uint64_t shard_id, uint64_t *seq_end_out)
{
	/* A cut past every record: it waits for the writer and cuts nothing. */
	return log_shard_truncate_in(log, shard_id, UINT64_MAX - 1, LOG_EPOCH_NONE, seq_end_out);
}

/*
 * Runs a cut (or a start, req->start) in the writer, then makes it durable: log.epochs,
 * after log.meta (the trim horizon) for a start. Until then the shard refuses appends
 * (trunc_hold): a batch durable before its start's horizon would be replayed as a gap.
 */
static int
truncate_run(struct log *log, struct log_ctl *req, uint64_t *seq_end_out)
{
	struct log_shard *shard;
	bool closed;
	int err;

	if (log->config.read_only)
		return -EROFS;
	req->kind = LOG_CTL_SHARD_TRUNCATE;
	req->seq = min_u64(req->seq, UINT64_MAX - 1);
	err = log_ctl_run(log, req);
	*seq_end_out = req->seq_end;
	if (err != 0 || !req->hold)
		return err;
	/*
	 * A closed shard's end is in log.meta too (recovery takes a shorter replay as lost
	 * records): stored first, so a crash between the two leaves the uncut tail, which
	 * the next handshake cuts again, never a hole.
	 */
	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, req->id);
	closed = shard != NULL && shard->closed;
	pthread_mutex_unlock(&log->index_lock);
	/* A start's horizon first: a crash before its log.epochs leaves a history that
	 * ends at or below it, which the next handshake clears by starting again. */
	if (closed || req->start)
		err = log_meta_store(log);
	if (err == 0)
		err = log_epochs_store(log);
	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, req->id);
	if (err != 0) {
		/* Appends stay refused: the cut is not durable. Others' cuts fail, not wait. */
		__atomic_store_n(&shard->trunc_stuck, true, __ATOMIC_RELAXED);
		__atomic_store_n(&shard->keep_end, 0, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&shard->trunc_hold, false, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&log->index_lock);
	log_writer_doorbell(log); /* Requests waiting for this cut (truncate_busy) go on. */
	if (err != 0)
		return err;
	diag_info("log", "%s: shard %" PRIx64 ": %s at seq %" PRIu64, log->dir_path, req->id,
		  req->start ? "starts" : "tail cut", req->seq_end);
	return 0;
}

int
log_shard_truncate_in(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
		      uint64_t *seq_end_out)
{
	struct log_ctl req = { .id = shard_id, .seq = seq, .epoch = epoch };

	return truncate_run(log, &req, seq_end_out);
}

int
log_shard_truncate_keep(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
			uint64_t *seq_end_out)
{
	struct log_ctl req = { .id = shard_id, .seq = seq, .epoch = epoch, .keep = true };

	return truncate_run(log, &req, seq_end_out);
}

int
log_shard_start_at(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
		   uint64_t *seq_end_out)
{
	struct log_ctl req = { .id = shard_id, .seq = seq, .epoch = epoch, .start = true };

	if (seq == UINT64_MAX)
		return -EINVAL;
	return truncate_run(log, &req, seq_end_out);
}

void
log_shard_keep_abandon(struct log *log, uint64_t shard_id)
{
	struct log_shard *shard;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard != NULL)
		__atomic_store_n(&shard->keep_end, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&log->index_lock);
	log_writer_doorbell(log); /* A settle waiting for the records goes on. */
}

/* ---- Epochs -------------------------------------------------------------- */

/* The shard (created through the writer if new), with index_lock held. */
static struct log_shard *
shard_lock_ensure(struct log *log, uint64_t shard_id, int *err_out)
{
	struct log_ctl req = { .kind = LOG_CTL_SHARD_TRUNCATE, .id = shard_id, .seq = UINT64_MAX };
	struct log_shard *shard;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard != NULL) {
		*err_out = 0;
		return shard;
	}
	pthread_mutex_unlock(&log->index_lock);
	*err_out = log_ctl_run(log, &req);
	if (*err_out != 0)
		return NULL;
	pthread_mutex_lock(&log->index_lock);
	return log_shard_find(log, shard_id);
}

int
log_epoch_info(struct log *log, uint64_t shard_id, struct log_epoch_info *info_out)
{
	struct log_shard *shard;

	memset(info_out, 0, sizeof(*info_out));
	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard != NULL && shard->repl != NULL) {
		const struct log_shard_repl *repl = shard->repl;

		info_out->promised = repl->promised;
		info_out->count = repl->epoch_count;
		info_out->kept_end = repl->kept_end;
		if (repl->epoch_count > 0) {
			info_out->epoch_last = repl->epochs[repl->epoch_count - 1].epoch;
			info_out->epoch_last_start = repl->epochs[repl->epoch_count - 1].seq_start;
		}
	}
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

enum epoch_op {
	EPOCH_BEGIN,               /* A leader: history and promise. */
	EPOCH_BEGIN_UNCLEAN,       /* An operator's unclean election: the kept range given up. */
	EPOCH_RECORD,              /* A follower copying a leader's history. */
	EPOCH_PROMISE,
};

/* Under index_lock: adds (epoch, seq_start) to the history. */
static int
epoch_add(struct log_shard_repl *repl, uint64_t epoch, uint64_t seq_start, enum epoch_op op)
{
	struct log_epoch_entry *last = repl->epoch_count == 0 ? NULL :
				       &repl->epochs[repl->epoch_count - 1];

	bool begin = op == EPOCH_BEGIN || op == EPOCH_BEGIN_UNCLEAN;

	if ((begin && epoch < repl->promised) || (last != NULL && epoch < last->epoch))
		return -ESTALE;
	/* Records this log held, kept by its newest cut, are not back: it must not lead. */
	if (op == EPOCH_BEGIN && seq_start < repl->kept_end)
		return -ENODATA;
	if (last != NULL && (seq_start < last->seq_start ||
			     (epoch == last->epoch && seq_start != last->seq_start)))
		return -EINVAL;
	if (last != NULL && epoch == last->epoch)
		return 1; /* Begun already. */
	if (last != NULL && seq_start == last->seq_start) {
		/* The older epoch wrote nothing: the new one replaces it, as Kafka does. */
		last->epoch = epoch;
	} else {
		if (repl->epoch_count == LOG_SHARD_EPOCHS_MAX) {
			/* Forget the oldest: a query below it answers "none", a deeper cut. */
			memmove(repl->epochs, repl->epochs + 1,
				(LOG_SHARD_EPOCHS_MAX - 1) * sizeof(repl->epochs[0]));
			repl->epoch_count--;
		}
		repl->epochs[repl->epoch_count++] = (struct log_epoch_entry){ epoch, seq_start };
	}
	if (begin)
		repl->promised = max_u64(repl->promised, epoch);
	/* The epoch numbers its records from seq_start on: the kept range is gone for good. */
	if (op == EPOCH_BEGIN_UNCLEAN && seq_start < repl->kept_end)
		repl->kept_end = 0;
	return 0;
}

/* Applies `epoch_add` or a promise, then stores; the memory is restored if storing fails. */
static int
epoch_change(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start,
	     enum epoch_op op)
{
	struct log_shard_repl saved;
	struct log_shard_repl *repl;
	struct log_shard *shard;
	int err;

	if (epoch == LOG_EPOCH_NONE)
		return -EINVAL;
	if (log->config.read_only)
		return -EROFS;
	shard = shard_lock_ensure(log, shard_id, &err);
	if (shard == NULL)
		return err;
	repl = shard_repl(shard);
	if (repl == NULL) {
		pthread_mutex_unlock(&log->index_lock);
		return -ENOMEM;
	}
	saved = *repl;
	if (op != EPOCH_PROMISE)
		err = epoch_add(repl, epoch, seq_start, op);
	else if (epoch < repl->promised)
		err = -ESTALE;
	else
		err = epoch == repl->promised ? 1 : (repl->promised = epoch, 0);
	pthread_mutex_unlock(&log->index_lock);
	if (err != 0)
		return err == 1 ? 0 : err;
	err = log_epochs_store(log);
	pthread_mutex_lock(&log->index_lock);
	if (err != 0)
		*repl = saved;
	else /* Durable: the writer refuses older epochs' batches from now on. */
		__atomic_store_n(&shard->fence_epoch, repl->promised, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&log->index_lock);
	return err;
}

int
log_epoch_begin(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start)
{
	return epoch_change(log, shard_id, epoch, seq_start, EPOCH_BEGIN);
}

int
log_epoch_begin_unclean(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start)
{
	return epoch_change(log, shard_id, epoch, seq_start, EPOCH_BEGIN_UNCLEAN);
}

int
log_epoch_record(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start)
{
	return epoch_change(log, shard_id, epoch, seq_start, EPOCH_RECORD);
}

int
log_epoch_promise(struct log *log, uint64_t shard_id, uint64_t epoch)
{
	return epoch_change(log, shard_id, epoch, 0, EPOCH_PROMISE);
}

/* Locks index_lock: the shard (or NULL) and its history (or NULL). */
static const struct log_shard_repl *
repl_lock_find(struct log *log, uint64_t shard_id, struct log_shard **shard_out)
{
	pthread_mutex_lock(&log->index_lock);
	*shard_out = log_shard_find(log, shard_id);
	return *shard_out == NULL ? NULL : (*shard_out)->repl;
}

int
log_epoch_end(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t *epoch_out,
	      uint64_t *seq_end_out)
{
	struct log_shard *shard;
	const struct log_shard_repl *repl = repl_lock_find(log, shard_id, &shard);
	uint32_t n = 0;

	*epoch_out = LOG_EPOCH_NONE;
	*seq_end_out = shard == NULL ? 0 : shard->seq_durable;
	/* n: how many remembered epochs are <= epoch. */
	while (repl != NULL && n < repl->epoch_count && repl->epochs[n].epoch <= epoch)
		n++;
	if (repl != NULL && n > 0) {
		*epoch_out = repl->epochs[n - 1].epoch;
		if (n < repl->epoch_count)
			*seq_end_out = repl->epochs[n].seq_start;
		else
			*seq_end_out = max_u64(shard->seq_durable, repl->epochs[n - 1].seq_start);
	} else if (repl != NULL && repl->epoch_count > 0) {
		*seq_end_out = repl->epochs[0].seq_start;
	}
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

int
log_epoch_at(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *epoch_out,
	     uint64_t *seq_end_out)
{
	struct log_shard *shard;
	const struct log_shard_repl *repl = repl_lock_find(log, shard_id, &shard);
	uint32_t n = 0;

	/* n: how many remembered epochs start at or before seq. */
	while (repl != NULL && n < repl->epoch_count && repl->epochs[n].seq_start <= seq)
		n++;
	*epoch_out = n == 0 ? LOG_EPOCH_NONE : repl->epochs[n - 1].epoch;
	*seq_end_out = repl != NULL && n < repl->epoch_count ? repl->epochs[n].seq_start : UINT64_MAX;
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}
