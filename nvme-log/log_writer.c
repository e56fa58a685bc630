/*
 * log_writer.c - the writer: drains producer rings into a group-commit
 * window, writes the window with O_DIRECT writes into a pre-written
 * segment, flushes it (fdatasync), and once durable publishes the batches
 * in the index, advances shard watermarks and posts completions, in
 * window order.
 *
 * Up to two windows are in flight: window N+1's writes may start once
 * window N's writes completed (while N flushes), so the device is not idle
 * during a flush; window N+2 waits until N is durable, and a window never
 * follows one in flight into a new segment. Recovery relies on it: a valid
 * batch of window w+2 proves window w was durable, which is how a torn
 * tail is told apart from corruption (log_recover.c). While windows are in
 * flight, producers fill the next one, so the batching follows the load.
 *
 * Durability: plain O_DIRECT writes, then one fdatasync per window.
 * RWF_DSYNC writes were measured too: a bit faster on an idle disk, 3-8x
 * slower on this shared one, where every DSYNC write pays its own flush
 * (docs/LOG_FORMAT.md, "Durability").
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

#define WRITER_IDLE_POLL_MS 100
#define WRITER_IO_WAIT_NS 1000000u
#define WRITER_ENOSPC_RETRY_NS 1000000u
#define WRITER_SPIN_NS 20000u

/*
 * The adaptive window (log.h, commit_window_adaptive_us): how long a window
 * with nothing in flight waits after its first batch before it goes, decided
 * once per window when its first batch arrives:
 *   - grow (double, from WINDOW_ADAPT_FIRST_NS, up to the maximum) when that
 *     batch waited for the disk (a window was in flight, or it was already
 *     there when the last one became durable): windows follow each other
 *     back to back, the disk is what limits, and waiting a little gathers
 *     more records per window (the writer's CPU is per window: submit,
 *     notify, wait, wake-ups) at no cost in throughput;
 *   - shrink (halve; below the first step, 0) when the disk had been idle at
 *     least as long as its last busy period (submit to durable): under half
 *     loaded, where a wait would only add latency;
 *   - hold in between (the disk busy more than half the time, but not back
 *     to back): a fast disk at a steady rate would otherwise flip between
 *     the two every other window.
 * Times are the writer steps' clock only: deterministic on the simulated disk.
 */
#define WINDOW_ADAPT_FIRST_NS 50000u

/*
 * The window's flush. Small windows (low load, where latency matters):
 * fdatasync(2) from the writer thread once the writes completed. io_uring
 * always runs fsync on an io-wq worker, one more thread hop; the inline
 * call measured ~30 us lower p50 here. Large windows (high load): an
 * IORING_OP_FSYNC submitted once the writes completed, so the writer keeps
 * filling and writing the next window while the device flushes.
 */
#define LOG_FLUSH_INLINE_MAX (64u << 10)
#define WINDOW_TAG_FLUSH 0x100u

static struct log_window *
window_filling(struct log *log)
{
	return &log->windows[log->window_fill];
}

/* The oldest window in flight, or NULL. */
static struct log_window *
window_flying(struct log *log)
{
	return log->flight_count == 0 ? NULL : &log->windows[log->flight[0]];
}

/* The newest window in flight that has not failed, or NULL. */
static struct log_window *
window_newest_ok(struct log *log)
{
	for (uint32_t i = log->flight_count; i-- > 0;) {
		struct log_window *w = &log->windows[log->flight[i]];

		if (w->error == 0)
			return w;
	}
	return NULL;
}

/*
 * The window ring (struct log_recent) holds the filling window and the two
 * in flight wherever they are: 4 windows' capacity always suffices (a
 * window reserves at most cap, consumes at most cap and skips less than
 * cap at the ring's end, at most once per two windows when size >= 4 cap),
 * and what is left serves reads of recent data.
 */
int
log_windows_init(struct log *log)
{
	const struct log_config *c = &log->config;
	uint32_t cap = (uint32_t)align_up(c->commit_window_bytes + c->batch_size +
					  2 * LOG_BLOCK_SIZE, LOG_BLOCK_SIZE);
	uint64_t size = align_up(max_u64(c->read_cache_bytes, 4ull * cap), LOG_BLOCK_SIZE);
	int err = log_mem_alloc(&log->recent.mem, size);

	if (err != 0)
		return err;
	log->recent.size = size;
	log->window_cap = cap;
	log->flush_inline_max = LOG_FLUSH_INLINE_MAX;
	for (uint32_t i = 0; i < LOG_WINDOWS; i++) {
		struct log_window *w = &log->windows[i];

		w->buf = log->recent.mem.addr;
		w->cap = cap;
		w->batch_cap = cap / (LOG_BATCH_HEADER_SIZE + 8) + 1;
		w->batches = calloc(w->batch_cap, sizeof(*w->batches));
		if (w->batches == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Reserves the window's place in the ring at the fill position. */
static void
window_place(struct log *log, struct log_window *w)
{
	struct log_recent *r = &log->recent;
	uint64_t pos = r->fill_pos;
	uint64_t low;

	if (pos % r->size + w->cap > r->size)
		pos += r->size - pos % r->size;
	w->ring_pos = pos;
	w->buf = (uint8_t *)r->mem.addr + pos % r->size;
	low = pos + w->cap > r->size ? pos + w->cap - r->size : 0;
	for (uint32_t i = 0; i < log->flight_count; i++)
		assert(log->windows[log->flight[i]].ring_pos >= low);
	if (low > atomic_load_explicit(&r->valid_from, memory_order_relaxed))
		atomic_store_explicit(&r->valid_from, low, memory_order_relaxed);
	/*
	 * Orders the store above before the window's bytes (window_add's
	 * copies): a reader that copied any of them sees the new valid_from
	 * after its acquire fence (log_reader.c, read_recent).
	 */
	atomic_thread_fence(memory_order_release);
}

/* A durable window's bytes are readable from the ring (index_lock held). */
static void
recent_note(struct log *log, const struct log_window *w)
{
	struct log_recent *r = &log->recent;
	struct log_recent_extent *e = &r->extents[r->extent_last];
	uint64_t end = w->seg_offset + align_up(w->used, LOG_BLOCK_SIZE);

	if (r->extent_count != 0 && e->segment_no == w->seg->segment_no &&
	    e->seg_end == w->seg_offset &&
	    e->ring_pos + (e->seg_end - e->seg_start) == w->ring_pos) {
		e->seg_end = end;
		return;
	}
	r->extent_last = (r->extent_last + 1) % LOG_RECENT_EXTENTS;
	r->extent_count = (uint32_t)min_u64(r->extent_count + 1, LOG_RECENT_EXTENTS);
	r->extents[r->extent_last] = (struct log_recent_extent){
		.segment_no = w->seg->segment_no, .seg_start = w->seg_offset, .seg_end = end,
		.ring_pos = w->ring_pos,
	};
}

void
log_writer_doorbell(struct log *log)
{
	uint64_t one = 1;

	if (write(log->doorbell_fd, &one, sizeof(one)) < 0)
		one = 0; /* Already signalled (counter saturated is impossible). */
}

/* Posts one batch's completion to its producer's ring. */
static void
batch_complete(struct log_batch *batch, int32_t error, uint64_t durable_ns)
{
	struct log_producer *producer = batch->producer;
	bool pushed;

	batch->error = error;
	batch->durable_ns = durable_ns;
	/* Never full: the ring holds every batch of the producer's pool. */
	pushed = log_spsc_push(&producer->done, batch->index);
	assert(pushed);
	producer->signal_due = true;
}

static void
producers_signal(struct log *log)
{
	uint32_t count = atomic_load_explicit(&log->producer_count, memory_order_acquire);
	uint64_t one = 1;

	/* Orders the completion pushes before the napping loads (log_producer_nap_begin). */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0; i < count; i++) {
		struct log_producer *p = &log->producers[i];

		if (!p->signal_due)
			continue;
		p->signal_due = false;
		if ((atomic_load_explicit(&p->signal_armed, memory_order_acquire) ||
		     atomic_load_explicit(&p->napping, memory_order_relaxed)) &&
		    write(p->event_fd, &one, sizeof(one)) < 0)
			one = 1;
	}
	/*
	 * Readers waiting for any shard's watermark (SubscribeToShard): once per step that
	 * committed a window, after the index_lock release that published it.
	 */
	if (log->durable_due) {
		log->durable_due = false;
		if (atomic_load_explicit(&log->durable_armed, memory_order_acquire) &&
		    write(log->durable_fd, &one, sizeof(one)) < 0)
			one = 1;
	}
}

/*
 * Plans where the filling window goes: after the newest window in flight,
 * after the active segment's durable end, or (NULL) at the start of a new
 * segment.
 */
static void
window_adapt(struct log *log, uint64_t now_ns)
{
	uint64_t max_ns = (uint64_t)log->config.commit_window_adaptive_us * 1000u;
	uint64_t wait_ns = log->window_wait_ns;

	if (log->config.commit_window_us != 0 || max_ns == 0)
		return;
	if (log->flight_count != 0 || log->disk_freed) {
		wait_ns = min_u64(max_u64(2 * wait_ns, WINDOW_ADAPT_FIRST_NS), max_ns);
		log_stat_add(&log->stats.windows_back_to_back, 1);
	} else if (now_ns - log->idle_since_ns >= log->busy_ns) {
		wait_ns = wait_ns / 2 < WINDOW_ADAPT_FIRST_NS ? 0 : wait_ns / 2;
	}
	log->window_wait_ns = wait_ns;
	__atomic_store_n(&log->stats.window_wait_ns, wait_ns, __ATOMIC_RELAXED);
}

/* How long the filling window waits after its first batch (none in flight). */
static uint64_t
window_wait_ns(const struct log *log)
{
	if (log->config.commit_window_us != 0)
		return (uint64_t)log->config.commit_window_us * 1000u;
	return log->window_wait_ns;
}

static void
window_open(struct log *log, struct log_window *w, uint64_t now_ns)
{
	struct log_window *flying = window_newest_ok(log);

	window_adapt(log, now_ns);

	w->seg = log->active;
	w->seg_offset = log->active == NULL ? 0 : log->active->bytes_used;
	if (flying != NULL) {
		w->seg = flying->seals_segment ? NULL : flying->seg;
		w->seg_offset = flying->seals_segment ? 0 :
				flying->seg_offset + align_up(flying->used, LOG_BLOCK_SIZE);
	}
	/* A new segment's first block is its header, written with the first window. */
	w->used = w->seg_offset == 0 ? LOG_BLOCK_SIZE : 0;
	window_place(log, w);
	w->batch_count = 0;
	w->opened_ns = now_ns;
	w->seals_segment = false;
	w->error = 0;
	w->open = true;
}

/* Room check: a batch of `size` bytes fits this window (else the window closes). */
static bool
window_fits(const struct log *log, struct log_window *w, uint32_t size)
{
	uint64_t end = w->used + align_up(size, LOG_BATCH_ALIGN);

	if (w->batch_count == w->batch_cap || end > w->cap)
		return false;
	if (w->seg_offset + align_up(end, LOG_BLOCK_SIZE) > log->config.segment_size) {
		w->seals_segment = true;
		return false;
	}
	return true;
}

static bool
window_full(const struct log *log, const struct log_window *w)
{
	/* An empty window always takes its first batch (the header block is not data). */
	if (w->batch_count == 0)
		return false;
	return w->used >= log->config.commit_window_bytes || w->seals_segment ||
	       w->batch_count == w->batch_cap;
}

/* Copies the batch into the window and assigns its sequence numbers. */
static void
window_add(struct log *log, struct log_window *w, struct log_batch *batch,
	   struct log_shard *shard)
{
	struct log_window_batch *wb = &w->batches[w->batch_count++];
	uint8_t *dst = w->buf + w->used;
	uint32_t padded = (uint32_t)align_up(batch->used, LOG_BATCH_ALIGN);

	memcpy(dst, batch->buf, batch->used);
	memset(dst + batch->used, 0, padded - batch->used);
	batch->seq_first = shard->seq_next;
	shard->seq_next += batch->record_count;
	/* commit_id and segment_no are final only at submit; sealed again then. */
	wb->batch = batch;
	wb->shard_index = (uint32_t)(shard - log->shards);
	wb->offset = (uint32_t)(w->seg_offset + w->used);
	wb->arrival_max_ns = batch->arrival_max_ns;
	w->last_batch_pos = w->used;
	w->used += padded;
}

/*
 * A batch re-appending records below a cut that split their batch
 * (log_shard_truncate_keep): records this log held before the cut, at the same
 * numbers, so no promise fences them.
 */
static bool
batch_kept(const struct log_shard *shard, const struct log_batch *batch)
{
	uint64_t keep_end = __atomic_load_n(&shard->keep_end, __ATOMIC_ACQUIRE);

	return batch->seq_expect == shard->seq_next && batch->record_count > 0 &&
	       batch->seq_expect + batch->record_count <= keep_end;
}

/* Why a batch cannot be appended right now, or 0. */
static int32_t
batch_refusal(struct log *log, struct log_shard *shard, const struct log_batch *batch)
{
	int32_t failed = atomic_load(&log->failed);
	bool kept;

	if (failed != 0)
		return failed;
	if (shard == NULL)
		return -ENOBUFS;
	/* Set under index_lock by closing threads; relaxed: the close protocol orders the rest. */
	if (__atomic_load_n(&shard->closed, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&shard->close_pending, __ATOMIC_RELAXED) ||
	    (shard->deleted && __atomic_load_n(&shard->delete_hold, __ATOMIC_ACQUIRE)))
		return -EPIPE;
	kept = batch_kept(shard, batch);
	if (!kept && batch->epoch != LOG_EPOCH_NONE &&
	    batch->epoch < __atomic_load_n(&shard->fence_epoch, __ATOMIC_ACQUIRE))
		return -ESTALE; /* A newer leader was promised: this one is fenced. */
	if (__atomic_load_n(&shard->trunc_hold, __ATOMIC_RELAXED))
		return -EAGAIN;
	/* A split batch's records come back first, at their own numbers. */
	if (!kept && __atomic_load_n(&shard->keep_end, __ATOMIC_ACQUIRE) > shard->seq_next)
		return -EAGAIN;
	if (log->enospc && log->mono_ns < log->enospc_retry_ns)
		return -ENOSPC;
	return 0;
}

static struct log_shard *
writer_shard(struct log *log, uint64_t shard_id)
{
	struct log_shard *shard = log_shard_find(log, shard_id);

	if (shard == NULL) {
		pthread_mutex_lock(&log->index_lock);
		shard = log_shard_get(log, shard_id);
		pthread_mutex_unlock(&log->index_lock);
	} else if (shard->deleted && !__atomic_load_n(&shard->delete_hold, __ATOMIC_ACQUIRE)) {
		/* Its stream was deleted and that is durable: the id starts afresh. */
		pthread_mutex_lock(&log->index_lock);
		shard->deleted = false;
		pthread_mutex_unlock(&log->index_lock);
	}
	return shard;
}

/* Moves batches from one producer's ring into the window. Returns batches taken. */
static uint32_t
drain_producer(struct log *log, struct log_producer *p, uint64_t mono_ns)
{
	struct log_window *w = window_filling(log);
	uint32_t taken = 0;
	uint32_t index;

	while (log_spsc_peek(&p->submit, &index)) {
		struct log_batch *batch = &p->batches[index];
		struct log_shard *shard = writer_shard(log, batch->shard_id);
		int32_t refusal = batch_refusal(log, shard, batch);

		/* A follower's batch continues the shard exactly (log_batch_submit_at). */
		if (refusal == 0 && batch->seq_expect != UINT64_MAX &&
		    batch->seq_expect != shard->seq_next)
			refusal = batch->seq_expect > shard->seq_next ? -EILSEQ : -EEXIST;
		if (refusal == 0) {
			if (!w->open)
				window_open(log, w, mono_ns);
			if (window_full(log, w) || !window_fits(log, w, batch->used))
				break;
			window_add(log, w, batch, shard);
		}
		log_spsc_pop(&p->submit, &index);
		if (refusal != 0) {
			batch->seq_first = 0;
			batch_complete(batch, refusal, 0);
			if (refusal == -ENOSPC)
				log_stat_add(&log->stats.enospc_errors, 1);
		}
		taken++;
	}
	return taken;
}

static uint32_t
writer_drain(struct log *log, uint64_t mono_ns)
{
	uint32_t count = atomic_load_explicit(&log->producer_count, memory_order_acquire);
	uint32_t taken = 0;

	/* The disk became free since the last drain: its busy period ended now. */
	if (log->disk_freed) {
		log->idle_since_ns = mono_ns;
		log->busy_ns = mono_ns - log->busy_since_ns;
	}
	/* A different producer goes first each time: a busy one cannot starve the others. */
	log->drain_first = count == 0 ? 0 : (log->drain_first + 1) % count;
	for (uint32_t i = 0; i < count; i++)
		taken += drain_producer(log, &log->producers[(log->drain_first + i) % count],
					mono_ns);
	log->disk_freed = false;
	return taken;
}

/* Takes a spare and makes it the active segment for window `w`. */
static int
window_activate_segment(struct log *log, struct log_window *w)
{
	struct log_segment *seg;
	int err;

	pthread_mutex_lock(&log->prep_lock);
	if (log->prep_error != 0) {
		/* Retry after an error (ENOSPC may be gone): let the preparer try again. */
		log->prep_error = 0;
		pthread_cond_broadcast(&log->prep_cond);
	}
	pthread_mutex_unlock(&log->prep_lock);
	seg = log_segment_take_spare(log, !log->enospc);
	if (seg == NULL) {
		pthread_mutex_lock(&log->prep_lock); /* The preparer writes prep_error under it. */
		err = log->prep_error != 0 ? log->prep_error : -ENOSPC;
		pthread_mutex_unlock(&log->prep_lock);
		return err;
	}
	seg->bytes_used = 0;
	pthread_mutex_lock(&log->index_lock);
	err = log_segment_list_add(log, seg);
	pthread_mutex_unlock(&log->index_lock);
	if (err != 0) {
		log_segment_free(log, seg);
		return err;
	}
	log->active = seg;
	w->seg = seg;
	return 0;
}

/*
 * Final header fields of every batch: commit id, segment, window-last flag,
 * and how far behind the newest durable window is (recovery's proof that
 * an earlier window was durable; 0 when none is known).
 */
static void
window_seal_batches(struct log *log, struct log_window *w)
{
	uint64_t lag64 = log->commit_durable == 0 ? 0 : w->commit_id - log->commit_durable;
	uint32_t lag = lag64 > UINT32_MAX ? 0 : (uint32_t)lag64;

	for (uint32_t i = 0; i < w->batch_count; i++) {
		struct log_window_batch *wb = &w->batches[i];
		uint8_t *buf = w->buf + (wb->offset - w->seg_offset);
		uint32_t flags = i + 1 == w->batch_count ? LOG_BATCH_F_WINDOW_LAST : 0;

		log_batch_seal_header(buf, wb->batch->seq_first, wb->batch->shard_id,
				      w->commit_id, w->seg->segment_no, lag, flags);
	}
}

/*
 * The window's writes (plain O_DIRECT over pre-written blocks); its flush
 * follows once they completed (window_writes_done). Tags carry the window
 * index, WINDOW_TAG_FLUSH for the flush, and the expected result in bytes.
 */
static int
window_submit_writes(struct log *log, struct log_window *w)
{
	uint32_t total = (uint32_t)align_up(w->used, LOG_BLOCK_SIZE);
	uint32_t tag = (uint32_t)(w - log->windows);
	int err = 0;

	memset(w->buf + w->used, 0, total - w->used);
	w->ios_pending = 0;
	w->seg->written_end = max_u64(w->seg->written_end, w->seg_offset + total);
	for (uint32_t off = 0; off < total && err == 0; off += LOG_WRITE_CHUNK) {
		uint32_t len = (uint32_t)min_u64(LOG_WRITE_CHUNK, total - off);

		err = log_io_write_submit(log->io, w->seg->file, w->buf + off, len,
					  w->seg_offset + off, false, ((uint64_t)len << 32) | tag);
		w->ios_pending += err == 0 ? 1u : 0u;
	}
	w->flushed = false;
	w->writes_done = false;
	return err;
}

static void window_fail(struct log *log, struct log_window *w, int32_t error);

/* Closes the filling window and submits it; the other one becomes the filling one. */
static void
window_submit(struct log *log, struct log_window *w)
{
	const struct log_config *c = &log->config;
	int err = 0;

	assert(log->flight_count < 2);
	if (log->flight_count == 0)
		log->busy_since_ns = log->mono_ns;
	if (w->seg == NULL)
		err = window_activate_segment(log, w);
	if (err != 0) {
		window_fail(log, w, err);
		return;
	}
	w->commit_id = log->commit_next++;
	if (w->seg_offset == 0) {
		w->seg->commit_first = w->commit_id;
		log_segment_header_encode(w->buf, log->log_id, w->seg->segment_no, w->commit_id,
					  c->segment_size, log_io_now_ns(log->io));
	}
	window_seal_batches(log, w);
	/* Sealed when a window of the largest batch could no longer follow. */
	if (c->segment_size - (w->seg_offset + align_up(w->used, LOG_BLOCK_SIZE)) <
	    align_up(c->batch_size, LOG_BLOCK_SIZE) + LOG_BLOCK_SIZE)
		w->seals_segment = true;
	err = window_submit_writes(log, w);
	assert(err == 0); /* Two windows never need more than LOG_IO_INFLIGHT_MAX ops. */
	log->recent.fill_pos = w->ring_pos + align_up(w->used, LOG_BLOCK_SIZE);
	w->in_flight = true;
	w->open = false;
	log->flight[log->flight_count++] = (uint32_t)(w - log->windows);
	for (uint32_t i = 0; i < LOG_WINDOWS; i++) {
		if (!log->windows[i].in_flight && &log->windows[i] != w) {
			log->window_fill = i;
			break;
		}
	}
}

/*
 * A window that will not become durable: its batches, those of every
 * younger window in flight and of the filling window (all numbered after
 * them) complete with `error`, and their shards' sequence numbers are
 * handed out again. Failed windows stay in flight until their I/O drains
 * (the kernel may still read their buffers); no new window is submitted
 * before, and the next one reuses the failed one's place in the segment
 * (active->bytes_used did not move). Whatever landed of them carries
 * older commit ids, which recovery never takes for a continuation.
 */
static void
window_fail(struct log *log, struct log_window *w, int32_t error)
{
	struct log_window *order[LOG_WINDOWS];
	uint32_t count = 0;
	bool younger = !w->in_flight;

	if (error == -ENOSPC) {
		log->enospc = true;
		log->enospc_retry_ns = log->mono_ns + WRITER_ENOSPC_RETRY_NS;
	} else {
		log_fail(log, error);
	}
	for (uint32_t i = 0; i < log->flight_count; i++) {
		struct log_window *f = &log->windows[log->flight[i]];

		younger |= f == w;
		if (younger && f->batch_count != 0)
			order[count++] = f;
	}
	if (window_filling(log)->open)
		order[count++] = window_filling(log);
	for (uint32_t k = 0; k < count; k++) {
		for (uint32_t i = 0; i < order[k]->batch_count; i++) {
			struct log_window_batch *wb = &order[k]->batches[i];
			struct log_shard *shard = &log->shards[wb->shard_index];

			shard->seq_next = min_u64(shard->seq_next, wb->batch->seq_first);
			batch_complete(wb->batch, error, 0);
			if (error == -ENOSPC)
				log_stat_add(&log->stats.enospc_errors, 1);
		}
		order[k]->batch_count = 0;
		order[k]->open = false;
		if (order[k]->in_flight && order[k]->error == 0)
			order[k]->error = error;
	}
}

/* Publishes a durable window: index, watermarks, then completions. */
static int
window_commit(struct log *log, struct log_window *w)
{
	struct log_segment *seg = w->seg;
	uint64_t durable_ns = log_io_now_ns(log->io);
	int err = 0;

	pthread_mutex_lock(&log->index_lock);
	for (uint32_t i = 0; i < w->batch_count && err == 0; i++) {
		struct log_window_batch *wb = &w->batches[i];
		struct log_index_entry entry = {
			.shard_id = wb->batch->shard_id,
			.seq_first = wb->batch->seq_first,
			.arrival_max_ns = wb->arrival_max_ns,
			.commit_id = w->commit_id,
			.offset = wb->offset,
			.size = wb->batch->used,
			.record_count = wb->batch->record_count,
		};

		err = log_segment_entry_add(seg, &entry);
		if (err == 0)
			err = log_shard_note_batch(log, &log->shards[wb->shard_index],
						   seg->segment_no, &entry);
	}
	if (err == 0)
		recent_note(log, w);
	seg->bytes_used = w->seg_offset + align_up(w->used, LOG_BLOCK_SIZE);
	log->commit_durable = w->commit_id;
	if (w->seals_segment)
		seg->state = LOG_SEGMENT_SEALED;
	pthread_mutex_unlock(&log->index_lock);
	if (err != 0)
		return err;
	uint64_t records = 0;

	for (uint32_t i = 0; i < w->batch_count; i++) {
		records += w->batches[i].batch->record_count;
		batch_complete(w->batches[i].batch, 0, durable_ns);
	}
	log->durable_due = true;
	/* One atomic add per counter and window, not per batch. */
	log_stat_add(&log->stats.commits, 1);
	log_stat_add(&log->stats.batches_appended, w->batch_count);
	log_stat_add(&log->stats.bytes_written, align_up(w->used, LOG_BLOCK_SIZE));
	log_stat_add(&log->stats.records_appended, records);
	hist_add_single_writer(&log->stats.window_bytes, align_up(w->used, LOG_BLOCK_SIZE),
			       LOG_HIST_WINDOW_BASE_BYTES);
	if (w->seals_segment) {
		log->active = NULL;
		log_segment_seal_request(log, seg);
	}
	w->batch_count = 0;
	return 0;
}

/* The writer is the histogram's only writer. */
static void
window_flush_timed(struct log *log, const struct log_window *w)
{
	if (w->flushed)
		hist_add_single_writer(&log->stats.sync_ns, clock_mono_ns() - w->flush_start_ns,
				       LOG_HIST_SYNC_BASE_NS);
}

/* The window's writes completed: flush it, inline when small and alone (see above). */
static void
window_writes_done(struct log *log, struct log_window *w)
{
	uint64_t tag = WINDOW_TAG_FLUSH | (uint64_t)(w - log->windows);
	int err;

	if (w->error != 0)
		return;
	w->flush_start_ns = clock_mono_ns();
	if (w->used <= log->flush_inline_max && log->flight_count == 1) {
		w->error = (int32_t)log_io_fsync(log->io, w->seg->file);
		w->flushed = w->error == 0;
		window_flush_timed(log, w);
		return;
	}
	err = log_io_sync_submit(log->io, w->seg->file, tag);
	if (err != 0)
		w->error = err;
	else
		w->ios_pending++;
}

/* Retires finished windows in order: commit (or fail) the oldest while it is done. */
static void
windows_retire(struct log *log)
{
	while (log->flight_count > 0) {
		struct log_window *w = window_flying(log);

		if (w->ios_pending != 0 || (w->error == 0 && !w->flushed))
			return;
		if (w->error == 0)
			w->error = (int32_t)window_commit(log, w);
		if (w->error == 0)
			log->enospc = false;
		else if (w->batch_count != 0)
			window_fail(log, w, w->error);
		w->in_flight = false;
		w->error = 0;
		log->flight_count--;
		log->disk_freed |= log->flight_count == 0;
		memmove(log->flight, log->flight + 1, log->flight_count * sizeof(log->flight[0]));
	}
}

static void
window_io_done(struct log *log, const struct log_io_done *done)
{
	struct log_window *w = &log->windows[done->tag & 0xff];
	int32_t expected = (int32_t)(done->tag >> 32);
	bool flush = (done->tag & WINDOW_TAG_FLUSH) != 0;

	assert(w->in_flight);
	assert(w->ios_pending > 0);
	if (done->result < 0 && w->error == 0)
		w->error = done->result;
	else if (done->result >= 0 && done->result != expected && w->error == 0)
		w->error = -EIO; /* A short O_DIRECT write over pre-written blocks. */
	w->ios_pending--;
	if (flush) {
		w->flushed = w->error == 0;
		window_flush_timed(log, w);
	} else if (w->ios_pending == 0) {
		w->writes_done = true;
		window_writes_done(log, w);
	}
	if (w->error != 0 && w->batch_count != 0)
		window_fail(log, w, w->error);
}

static uint32_t
writer_reap(struct log *log, uint64_t wait_ns)
{
	struct log_io_done done[LOG_IO_INFLIGHT_MAX];
	uint32_t count;

	if (window_flying(log) == NULL)
		return 0;
	count = log_io_reap(log->io, done, LOG_IO_INFLIGHT_MAX, wait_ns);
	for (uint32_t i = 0; i < count; i++)
		window_io_done(log, &done[i]);
	windows_retire(log);
	return count;
}

/*
 * Whether a window may go now. With none in flight, yes. With one, only
 * once its writes completed (it is flushing), it did not fail and the new
 * window stays in the same segment: so window N+2 is only ever submitted
 * after window N is durable, the rule recovery relies on (log_recover.c).
 */
static bool
window_may_submit(struct log *log, const struct log_window *w)
{
	const struct log_window *f = window_flying(log);

	if (log->flight_count == 0)
		return true;
	return log->flight_count == 1 && f->writes_done && f->error == 0 && !f->seals_segment &&
	       w->seg == f->seg;
}

static bool
window_due(struct log *log, const struct log_window *w, uint64_t mono_ns, bool force)
{
	if (!w->open || w->batch_count == 0 || !window_may_submit(log, w))
		return false;
	/*
	 * Behind a flushing window only a full one goes: each window costs a
	 * flush, and a partial one gathers more by waiting for the flush.
	 */
	if (log->flight_count != 0)
		return window_full(log, w);
	return force || window_full(log, w) || mono_ns - w->opened_ns >= window_wait_ns(log);
}

static int
writer_step(struct log *log, uint64_t mono_ns, bool force)
{
	uint32_t work;

	log->mono_ns = mono_ns;
	work = writer_reap(log, 0);
	work += writer_drain(log, mono_ns);
	/* After the drain: a close covers what producers had handed over by now. */
	log_ctl_process(log);
	if (window_due(log, window_filling(log), mono_ns, force)) {
		window_submit(log, window_filling(log));
		work++;
		work += writer_reap(log, 0);
	}
	producers_signal(log);
	if (atomic_load(&log->failed) != 0)
		return atomic_load(&log->failed);
	return (int)work;
}

int
log_writer_step(struct log *log, uint64_t now_ns)
{
	assert(!log->config.writer_thread);
	return writer_step(log, now_ns, false);
}

/*
 * A step at the caller's last `now` with every open window due: control
 * requests use it without a writer thread, leaving the caller's clock alone.
 */
int
log_writer_step_forced(struct log *log)
{
	assert(!log->config.writer_thread);
	return writer_step(log, log->mono_ns, true);
}

/* No window in flight or filling and nothing submitted: no work of the writer's own. */
static bool
writer_no_batches(struct log *log)
{
	uint32_t count = atomic_load_explicit(&log->producer_count, memory_order_acquire);

	if (window_flying(log) != NULL || window_filling(log)->batch_count != 0)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		if (!log_spsc_empty(&log->producers[i].submit))
			return false;
	}
	return true;
}

static bool
writer_idle(struct log *log)
{
	return !atomic_load(&log->ctl_pending) && writer_no_batches(log);
}

/*
 * Blocks on the doorbell until a producer submits, a control request comes or one
 * that waits may go on (or a timeout). A control request still pending after a step
 * with no batch anywhere waits for another thread (a cut's kept records submitted,
 * log_shard_keep_abandon, another cut's log.epochs stored): each of those rings the
 * doorbell, so the writer sleeps instead of spinning on the request.
 */
static void
writer_sleep(struct log *log)
{
	struct pollfd pfd = { .fd = log->doorbell_fd, .events = POLLIN };
	uint64_t drain;

	atomic_store(&log->writer_sleeping, true);
	/* Pairs with the fence in log_batch_submit (see there). */
	atomic_thread_fence(memory_order_seq_cst);
	if (writer_no_batches(log) && !atomic_load(&log->stop)) {
		if (atomic_load(&log->ctl_pending))
			log_stat_add(&log->stats.ctl_idle_waits, 1);
		poll(&pfd, 1, WRITER_IDLE_POLL_MS);
	}
	atomic_store(&log->writer_sleeping, false);
	if (read(log->doorbell_fd, &drain, sizeof(drain)) < 0)
		drain = 0;
}

/* Waits without burning the core: on I/O, on the window timer, or on the doorbell. */
static void
writer_wait(struct log *log, uint64_t mono_ns, uint64_t *idle_since_ns)
{
	struct log_window *w = window_filling(log);

	if (window_flying(log) != NULL) {
		writer_reap(log, WRITER_IO_WAIT_NS);
	} else if (w->open && w->batch_count != 0) {
		uint64_t due = w->opened_ns + window_wait_ns(log);

		if (due > mono_ns)
			nanosleep(&(struct timespec){ .tv_nsec = (long)(due - mono_ns) }, NULL);
	} else if (mono_ns - *idle_since_ns > WRITER_SPIN_NS) {
		/* A short spin first: the next batch often comes within microseconds. */
		writer_sleep(log);
		*idle_since_ns = clock_mono_ns();
	}
}

static void *
writer_main(void *arg)
{
	struct log *log = arg;
	uint64_t idle_since_ns = clock_mono_ns();

	pthread_setname_np(pthread_self(), "sluice-log");
	/* Short window timers must not be rounded up by the default 50 us slack. */
	prctl(PR_SET_TIMERSLACK, 1ul, 0, 0, 0);
	for (;;) {
		bool stopping = atomic_load(&log->stop);
		uint64_t mono_ns = clock_mono_ns();
		int rc = writer_step(log, mono_ns, stopping);

		if (stopping && writer_idle(log))
			break;
		if (rc > 0) {
			idle_since_ns = mono_ns;
			continue;
		}
		writer_wait(log, mono_ns, &idle_since_ns);
	}
	return NULL;
}

int
log_writer_start(struct log *log)
{
	int err = pthread_create(&log->writer_thread, NULL, writer_main, log);

	if (err != 0)
		return -err;
	log->writer_started = true;
	return 0;
}

/*
 * Zeros what a failed window left past the segment's durable end. Only
 * needed when no later window overwrote it: a rescan of the segment (its
 * index file lost to bitrot) must not mistake it for data, since the
 * sequence numbers it carried were handed out again.
 */
static int
segment_zero_tail(struct log *log, struct log_segment *seg)
{
	struct log_mem zeros;
	int err = 0;

	if (seg->written_end <= seg->bytes_used)
		return 0;
	err = log_mem_alloc(&zeros, LOG_WRITE_CHUNK);
	if (err != 0)
		return err;
	memset(zeros.addr, 0, LOG_WRITE_CHUNK);
	for (uint64_t off = seg->bytes_used; err == 0 && off < seg->written_end;
	     off += LOG_WRITE_CHUNK) {
		uint32_t len = (uint32_t)min_u64(LOG_WRITE_CHUNK, seg->written_end - off);

		err = log_io_pwrite(log->io, seg->file, zeros.addr, len, off);
	}
	if (err == 0)
		err = log_io_fsync(log->io, seg->file);
	log_mem_free(&zeros);
	return err;
}

/*
 * Completes everything submitted, then seals the active segment (its index
 * file spares the next open a scan). A failed log is left for recovery.
 */
void
log_writer_stop(struct log *log)
{
	if (log->writer_started) {
		atomic_store(&log->stop, true);
		log_writer_doorbell(log);
		pthread_join(log->writer_thread, NULL);
		log->writer_started = false;
	} else {
		while (!writer_idle(log) && writer_step(log, clock_mono_ns(), true) >= 0)
			writer_reap(log, WRITER_IO_WAIT_NS);
	}
	/* A segment with nothing durable yet (its header may not be) is left to recovery. */
	if (log->active != NULL && log->active->bytes_used > 0 &&
	    atomic_load(&log->failed) == 0 && segment_zero_tail(log, log->active) == 0) {
		pthread_mutex_lock(&log->index_lock);
		log->active->state = LOG_SEGMENT_SEALED;
		pthread_mutex_unlock(&log->index_lock);
		log_segment_seal_request(log, log->active);
		log->active = NULL;
	}
}
