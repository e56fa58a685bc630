/*
 * log_retention.c - control paths: shard close, stream delete, retention.
 *
 * Close and delete change what the writer accepts, and only the writer
 * knows which sequence numbers are still in flight, so they are requests
 * the writer carries out between steps (log_ctl_process): it refuses new
 * batches for the shard(s), waits until everything it accepted is
 * durable, then changes the state under index_lock. The caller persists
 * the result in log.meta before returning.
 *
 * Retention deletes whole sealed segments, oldest first, once every batch
 * in them is older than its stream's retention; trim horizons advance
 * first (in memory, then in log.meta), files go last, so a crash in
 * between never turns a trimmed range into "lost" data. An hour of retention
 * lasts retention_hour_ms (an hour, unless a test lowers it: log.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"


static void
shard_reset(const struct log *log, struct log_shard *shard)
{
	shard->seq_watermark = log_shard_watermark_initial(log);
	__atomic_store_n(&shard->trunc_hold, false, __ATOMIC_RELAXED);
	__atomic_store_n(&shard->keep_end, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&shard->trunc_stuck, false, __ATOMIC_RELAXED);
	free(shard->segs);
	shard->segs = NULL;
	shard->seg_count = 0;
	shard->seg_cap = 0;
	shard->seq_next = 0;
	shard->seq_durable = 0;
	shard->seq_trim = 0;
	shard->last_arrival_ns = 0;
	free(shard->repl); /* A deleted stream's shard ids start afresh, epochs too. */
	__atomic_store_n(&shard->fence_epoch, 0, __ATOMIC_RELEASE);
	shard->repl = NULL;
	__atomic_store_n(&shard->closed, false, __ATOMIC_RELAXED);
	__atomic_store_n(&shard->close_pending, false, __ATOMIC_RELAXED);
	shard->bad_count = 0;
}

/* Writer: one step of a shard close. Returns true when the request is done. */
static bool
ctl_close_step(struct log *log, struct log_ctl *req)
{
	struct log_shard *shard = log_shard_find(log, req->id);

	if (shard == NULL || shard->deleted) {
		pthread_mutex_lock(&log->index_lock);
		shard = log_shard_get(log, req->id);
		if (shard != NULL && shard->deleted) {
			shard_reset(log, shard);
			shard->deleted = false;
		}
		pthread_mutex_unlock(&log->index_lock);
	}
	if (shard == NULL) {
		req->err = -ENOBUFS;
		return true;
	}
	if (!shard->closed)
		__atomic_store_n(&shard->close_pending, true, __ATOMIC_RELAXED);
	req->accepted = true;
	if (shard->seq_durable != shard->seq_next)
		return false;
	pthread_mutex_lock(&log->index_lock);
	__atomic_store_n(&shard->closed, true, __ATOMIC_RELAXED);
	__atomic_store_n(&shard->close_pending, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log->index_lock);
	req->seq_end = shard->seq_durable == 0 ? UINT64_MAX : shard->seq_durable - 1;
	return true;
}

/* Writer: one step of a stream delete (all of its shards at once). */
static bool
ctl_delete_step(struct log *log, struct log_ctl *req)
{
	bool busy = false;

	for (uint32_t i = 0; i < log->shard_count; i++) {
		struct log_shard *shard = &log->shards[i];

		if (LOG_SHARD_STREAM(shard->shard_id) != (uint32_t)req->id || shard->deleted)
			continue;
		__atomic_store_n(&shard->close_pending, true, __ATOMIC_RELAXED);
		busy |= shard->seq_durable != shard->seq_next;
	}
	req->accepted = true;
	if (busy)
		return false;
	pthread_mutex_lock(&log->index_lock);
	if (log->deleted_count == LOG_DELETED_MAX) {
		req->err = -ENOSPC;
	} else {
		/* Every batch of the stream is in a window with a lower commit id. */
		log->deleted[log->deleted_count++] = (struct log_stream_deleted){
			(uint32_t)req->id, 0, log->commit_next };
		for (uint32_t i = 0; i < log->shard_count; i++) {
			struct log_shard *shard = &log->shards[i];

			if (LOG_SHARD_STREAM(shard->shard_id) != (uint32_t)req->id || shard->deleted)
				continue;
			req->hold |= shard->repl != NULL;
			shard_reset(log, shard);
			shard->deleted = true;
			shard->delete_hold = true; /* Until log.meta says so (log_stream_delete). */
		}
	}
	pthread_mutex_unlock(&log->index_lock);
	return true;
}

/* Writer: advances every pending control request; called between steps. */
void
log_ctl_process(struct log *log)
{
	int32_t failed = atomic_load(&log->failed);
	bool any_left = false;

	if (!atomic_load_explicit(&log->ctl_pending, memory_order_acquire))
		return;
	pthread_mutex_lock(&log->ctl_lock);
	for (uint32_t i = 0; i < log->ctl_count; i++) {
		struct log_ctl *req = log->ctl[i];

		if (req->done)
			continue;
		if (failed != 0) {
			req->err = failed;
			req->done = true;
		} else if (req->kind == LOG_CTL_SHARD_CLOSE) {
			req->done = ctl_close_step(log, req);
		} else if (req->kind == LOG_CTL_SHARD_TRUNCATE) {
			req->done = log_ctl_truncate_step(log, req);
		} else {
			req->done = ctl_delete_step(log, req);
		}
		any_left |= !req->done;
	}
	atomic_store(&log->ctl_pending, any_left);
	pthread_cond_broadcast(&log->ctl_cond);
	pthread_mutex_unlock(&log->ctl_lock);
}

/*
 * Queues the request and waits for the writer; without a writer thread,
 * drives the writer itself (the caller is the thread that steps it).
 */
int
log_ctl_run(struct log *log, struct log_ctl *req)
{
	int err;

	pthread_mutex_lock(&log->ctl_lock);
	while (log->ctl_count == LOG_CTL_MAX)
		pthread_cond_wait(&log->ctl_cond, &log->ctl_lock);
	log->ctl[log->ctl_count++] = req;
	atomic_store_explicit(&log->ctl_pending, true, memory_order_release);
	pthread_mutex_unlock(&log->ctl_lock);
	log_writer_doorbell(log);
	for (;;) {
		pthread_mutex_lock(&log->ctl_lock);
		if (req->done || log->config.writer_thread) {
			while (!req->done)
				pthread_cond_wait(&log->ctl_cond, &log->ctl_lock);
			break;
		}
		pthread_mutex_unlock(&log->ctl_lock);
		err = log_writer_step_forced(log);
		if (err < 0 && !req->done)
			log_ctl_process(log);
	}
	for (uint32_t i = 0; i < log->ctl_count; i++) {
		if (log->ctl[i] == req) {
			log->ctl[i] = log->ctl[--log->ctl_count];
			break;
		}
	}
	pthread_cond_broadcast(&log->ctl_cond);
	pthread_mutex_unlock(&log->ctl_lock);
	return req->err;
}

int
log_shard_close(struct log *log, uint64_t shard_id, uint64_t *seq_end_out)
{
	struct log_ctl req = { .kind = LOG_CTL_SHARD_CLOSE, .id = shard_id };
	int err = log_ctl_run(log, &req);

	if (err == 0)
		err = log_meta_store(log);
	if (err != 0 && req.done && req.err == 0) {
		/* Not durable in log.meta: the shard stays open (the caller sees the error). */
		struct log_shard *shard;

		pthread_mutex_lock(&log->index_lock);
		shard = log_shard_find(log, shard_id);
		if (shard != NULL)
			__atomic_store_n(&shard->closed, false, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&log->index_lock);
	}
	*seq_end_out = req.seq_end;
	return err;
}

int
log_stream_delete(struct log *log, uint32_t stream_id)
{
	struct log_ctl req = { .kind = LOG_CTL_STREAM_DELETE, .id = stream_id };
	int err = log_ctl_run(log, &req);

	if (err == 0)
		err = log_meta_store(log);
	/* Their epoch histories went with them (shard_reset): not back after a restart. */
	if (err == 0 && req.hold)
		err = log_epochs_store(log);
	if (err != 0)
		return err;
	/* Durable now: the shard ids may be used again (from seq 0). */
	pthread_mutex_lock(&log->index_lock);
	for (uint32_t i = 0; i < log->shard_count; i++) {
		if (LOG_SHARD_STREAM(log->shards[i].shard_id) == stream_id)
			__atomic_store_n(&log->shards[i].delete_hold, false, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

static uint32_t
retention_hours(const struct log *log, uint32_t stream_id)
{
	for (uint32_t i = 0; i < log->retention_count; i++) {
		if (log->retention[i].stream_id == stream_id)
			return log->retention[i].hours;
	}
	return LOG_RETENTION_HOURS_DEFAULT;
}

int
log_retention_set(struct log *log, uint32_t stream_id, uint32_t hours)
{
	uint32_t i;

	if (hours < 24 || hours > 8760)
		return -EINVAL;
	pthread_mutex_lock(&log->index_lock);
	for (i = 0; i < log->retention_count; i++) {
		if (log->retention[i].stream_id == stream_id)
			break;
	}
	if (i == LOG_STREAMS_RETENTION_MAX) {
		pthread_mutex_unlock(&log->index_lock);
		return -ENOSPC;
	}
	log->retention[i] = (struct log_stream_retention){ stream_id, hours };
	if (i == log->retention_count)
		log->retention_count++;
	pthread_mutex_unlock(&log->index_lock);
	return log_meta_store(log);
}

uint64_t
log_retention_ms(const struct log *log, uint32_t hours)
{
	uint32_t hour_ms = log->config.retention_hour_ms != 0 ? log->config.retention_hour_ms :
			   LOG_RETENTION_HOUR_MS_DEFAULT;

	return (uint64_t)hours * hour_ms;
}

static bool
entry_expired(const struct log *log, const struct log_index_entry *e, uint64_t now_ns)
{
	uint32_t hours = retention_hours(log, LOG_SHARD_STREAM(e->shard_id));
	uint64_t keep_ns = log_retention_ms(log, hours) * 1000000u;

	if (log_stream_deleted_before(log, e->shard_id, e->commit_id))
		return true;
	return now_ns > e->arrival_max_ns && now_ns - e->arrival_max_ns > keep_ns;
}

/* Under index_lock: how many of the oldest segments hold nothing still retained. */
static uint32_t
retention_expired_count(const struct log *log, uint64_t now_ns)
{
	uint32_t k = 0;

	for (; k < log->segment_count; k++) {
		const struct log_segment *seg = log->segments[k];

		if (seg->state != LOG_SEGMENT_SEALED || !seg->index_persisted)
			break;
		for (uint32_t i = 0; i < seg->entry_count; i++) {
			if (!entry_expired(log, &seg->entries[i], now_ns))
				return k;
		}
	}
	return k;
}

/* Under index_lock: trim horizons move past the first `k` segments. */
static void
retention_trim(struct log *log, uint32_t k)
{
	uint64_t last_no = log->segments[k - 1]->segment_no;

	for (uint32_t s = 0; s < k; s++) {
		const struct log_segment *seg = log->segments[s];

		for (uint32_t i = 0; i < seg->entry_count; i++) {
			const struct log_index_entry *e = &seg->entries[i];
			struct log_shard *shard = log_shard_find(log, e->shard_id);

			if (shard == NULL || shard->deleted ||
			    log_stream_deleted_before(log, e->shard_id, e->commit_id) ||
			    log_entry_truncated(shard, e))
				continue;
			shard->seq_trim = max_u64(shard->seq_trim, e->seq_first + e->record_count);
		}
	}
	for (uint32_t i = 0; i < log->shard_count; i++) {
		struct log_shard *shard = &log->shards[i];
		uint32_t drop = 0;

		while (drop < shard->seg_count && shard->segs[drop].segment_no <= last_no)
			drop++;
		if (drop == 0)
			continue;
		memmove(shard->segs, shard->segs + drop, (shard->seg_count - drop) * sizeof(*shard->segs));
		shard->seg_count -= drop;
	}
}

/* Deleted-stream records older than every retained segment have done their job. */
static bool
retention_prune_deleted(struct log *log)
{
	uint64_t oldest = log->segment_count > 0 ? log->segments[0]->commit_first : UINT64_MAX;
	uint32_t kept = 0;
	bool pruned;

	pthread_mutex_lock(&log->index_lock);
	for (uint32_t i = 0; i < log->deleted_count; i++) {
		if (log->deleted[i].commit_before > oldest)
			log->deleted[kept++] = log->deleted[i];
	}
	pruned = kept != log->deleted_count;
	log->deleted_count = kept;
	pthread_mutex_unlock(&log->index_lock);
	return pruned;
}

static void
retention_remove_files(struct log *log, struct log_segment **gone, uint32_t k)
{
	for (uint32_t i = 0; i < k; i++) {
		char name[64];

		log_segment_name(gone[i]->segment_no, "log", name, sizeof(name));
		log_io_file_remove(log->io, name);
		log_segment_name(gone[i]->segment_no, "idx", name, sizeof(name));
		log_io_file_remove(log->io, name);
		log_segment_free(log, gone[i]);
		log_stat_add(&log->stats.segments_deleted, 1);
	}
	log_io_dir_sync(log->io);
}

int
log_retention_run(struct log *log, uint64_t now_ns)
{
	struct log_segment **gone;
	uint32_t k;
	int err;

	pthread_mutex_lock(&log->index_lock);
	k = retention_expired_count(log, now_ns);
	if (k > 0)
		retention_trim(log, k);
	pthread_mutex_unlock(&log->index_lock);
	if (k == 0)
		return 0;
	/* Horizons are durable before any file goes: recovery never sees a gap. */
	err = log_meta_store(log);
	gone = err == 0 ? calloc(k, sizeof(*gone)) : NULL;
	if (err == 0 && gone == NULL)
		err = -ENOMEM;
	if (err != 0)
		return err;
	pthread_rwlock_wrlock(&log->segments_rw);
	pthread_mutex_lock(&log->index_lock);
	memcpy(gone, log->segments, k * sizeof(*gone));
	memmove(log->segments, log->segments + k, (log->segment_count - k) * sizeof(*gone));
	log->segment_count -= k;
	pthread_mutex_unlock(&log->index_lock);
	pthread_rwlock_unlock(&log->segments_rw);
	retention_remove_files(log, gone, k);
	free(gone);
	diag_info("log", "%s: retention deleted %u segment(s)", log->dir_path, k);
	if (retention_prune_deleted(log))
		err = log_meta_store(log);
	return err;
}
