/*
 * log_reader.c - reads by (shard, seq) and by (shard, arrival time).
 *
 * A read finds the batch through the shard's per-segment summary and the
 * segment's batch entries (both only ever hold durable batches, so nothing
 * past the durable watermark is reachable). Recently written batches are
 * copied from the writer's window ring (struct log_recent: no device I/O,
 * which is what a reader at the tail needs); older ones, or ones the writer
 * overwrote meanwhile, are read with O_DIRECT. Either way the batch is
 * checked again: a batch whose bytes no longer check out is corruption of
 * durable data: counted, logged, its range remembered, and -EBADMSG
 * returned; its bytes are never served.
 *
 * Lock order: segments_rw (shared, across the pread, so retention cannot
 * close the file underneath) then index_lock (briefly, for the lookup).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

struct log_reader {
	struct log *log;
	struct log_mem mem;
	uint32_t buf_size;
	/* Cursor: where the last lookup ended, so sequential reads do not rescan. */
	uint64_t cursor_shard;
	uint64_t cursor_segment;
	uint32_t cursor_entry;
	/* Page-cache prefetch: how far ahead of reads of this segment it was asked for. */
	uint64_t prefetch_segment;
	uint64_t prefetch_end;
	struct log_crypt *crypt;   /* Opens encrypted batches in mem, in place. */
	bool past_watermark;       /* log_reader_past_watermark(): reads to the local durable end. */
};

/*
 * Readers of sealed data ask the kernel to read this far ahead of them, in
 * steps of half of it: the kernel's own readahead (128-256 KiB) left the
 * API thread waiting on the device between GetRecords calls. Shards share
 * segments, so one window per reader serves every shard read near it.
 */
#define READ_PREFETCH_SIZE (8u << 20)

/* A batch found for a read: where it is and what it must contain. */
struct read_loc {
	struct log_index_entry entry;
	uint64_t segment_no;
	uint32_t file;
	bool sealed;               /* Its segment is sealed: no byte of it is written again. */
	uint64_t ring_pos;         /* Where the batch is in the window ring, or UINT64_MAX. */
	uint64_t seq_limit;        /* Readers stop here (durable end or replicated watermark). */
};

int
log_reader_open(struct log *log, struct log_reader **reader_out)
{
	struct log_reader *reader = calloc(1, sizeof(*reader));
	int err;

	if (reader == NULL)
		return -ENOMEM;
	reader->log = log;
	reader->buf_size = (uint32_t)align_up(log->config.batch_size, LOG_BLOCK_SIZE) +
			   2 * LOG_BLOCK_SIZE;
	err = log_mem_alloc(&reader->mem, reader->buf_size);
	if (err == 0)
		err = log_crypt_open(&reader->crypt);
	if (err != 0) {
		log_mem_free(&reader->mem);
		free(reader);
		return err;
	}
	reader->cursor_segment = UINT64_MAX;
	reader->prefetch_segment = UINT64_MAX;
	*reader_out = reader;
	return 0;
}

void
log_reader_close(struct log_reader *reader)
{
	log_crypt_close(reader->crypt);
	log_mem_free(&reader->mem);
	free(reader);
}

static bool
shard_seq_bad(const struct log_shard *shard, uint64_t seq)
{
	for (uint32_t i = 0; i < shard->bad_count; i++) {
		if (shard->bad[i].first <= seq && seq < shard->bad[i].end)
			return true;
	}
	return false;
}

/* The shard's summary for the segment holding `seq`, or NULL. */
static const struct log_shard_seg *
shard_seg_for_seq(const struct log_shard *shard, uint64_t seq)
{
	uint32_t lo = 0;
	uint32_t hi = shard->seg_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (shard->segs[mid].seq_end <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == shard->seg_count || shard->segs[lo].seq_first > seq)
		return NULL;
	return &shard->segs[lo];
}

/*
 * Where the batch at loc is in the window ring, if the extents still know
 * it (index_lock held; newest extents first). The ring may overwrite it
 * later: read_recent checks.
 */
static void
read_loc_recent(const struct log *log, struct read_loc *loc)
{
	const struct log_recent *r = &log->recent;
	uint64_t start = loc->entry.offset;
	uint64_t end = start + loc->entry.size;

	loc->ring_pos = UINT64_MAX;
	for (uint32_t k = 0; k < r->extent_count; k++) {
		const struct log_recent_extent *e =
			&r->extents[(r->extent_last + LOG_RECENT_EXTENTS - k) % LOG_RECENT_EXTENTS];

		if (e->segment_no == loc->segment_no && e->seg_start <= start &&
		    end <= e->seg_end) {
			loc->ring_pos = e->ring_pos + (start - e->seg_start);
			return;
		}
	}
}

/* Finds the shard's batch holding `seq` in `seg`, starting at the cursor. */
static int
segment_find_entry(struct log_reader *reader, const struct log_segment *seg,
		   const struct log_shard *shard, uint64_t seq, struct read_loc *loc)
{
	uint64_t shard_id = shard->shard_id;
	uint32_t start = 0;

	if (reader->cursor_shard == shard_id && reader->cursor_segment == seg->segment_no &&
	    reader->cursor_entry < seg->entry_count &&
	    seg->entries[reader->cursor_entry].seq_first <= seq)
		start = reader->cursor_entry;
	for (uint32_t i = start; i < seg->entry_count; i++) {
		const struct log_index_entry *e = &seg->entries[i];

		if (e->shard_id != shard_id || seq < e->seq_first ||
		    seq >= e->seq_first + e->record_count || log_entry_truncated(shard, e))
			continue;
		loc->entry = *e;
		loc->segment_no = seg->segment_no;
		loc->file = seg->file;
		loc->sealed = seg->state == LOG_SEGMENT_SEALED;
		read_loc_recent(reader->log, loc);
		reader->cursor_shard = shard_id;
		reader->cursor_segment = seg->segment_no;
		reader->cursor_entry = i;
		return 0;
	}
	return -EBADMSG; /* The summary says the shard has it: the index disagrees. */
}

static uint64_t
reader_end(const struct log_reader *reader, const struct log_shard *shard)
{
	return reader->past_watermark ? shard->seq_durable : log_shard_readable_end(shard);
}

void
log_reader_past_watermark(struct log_reader *reader)
{
	reader->past_watermark = true;
}

/*
 * Where `seq` of the shard is. Returns 0, 1 when there is nothing to read
 * (at or past the durable watermark), -ERANGE below the trim horizon,
 * -EBADMSG inside a known corrupt range.
 */
static int
read_locate(struct log_reader *reader, uint64_t shard_id, uint64_t seq, struct read_loc *loc)
{
	struct log *log = reader->log;
	const struct log_shard_seg *summary;
	struct log_segment *seg;
	struct log_shard *shard;
	int rc = 1;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard == NULL || shard->deleted)
		goto out_unlock;
	if (seq < shard->seq_trim) {
		rc = -ERANGE;
	} else if (seq >= reader_end(reader, shard)) {
		rc = 1;
	} else if (shard_seq_bad(shard, seq)) {
		rc = -EBADMSG;
	} else {
		summary = shard_seg_for_seq(shard, seq);
		seg = summary == NULL ? NULL : log_segment_find(log, summary->segment_no);
		rc = seg == NULL ? -ERANGE : segment_find_entry(reader, seg, shard, seq, loc);
		loc->seq_limit = reader_end(reader, shard);
	}
out_unlock:
	pthread_mutex_unlock(&log->index_lock);
	return rc;
}

static void
read_report_corrupt(struct log *log, const struct read_loc *loc, int why)
{
	struct log_shard *shard;

	diag_error("log", "%s: segment %" PRIu64 " offset %u: batch of shard %" PRIx64
		   " seq %" PRIu64 "+%u is corrupt (%s); not served", log->dir_path,
		   loc->segment_no, loc->entry.offset, loc->entry.shard_id, loc->entry.seq_first,
		   loc->entry.record_count, strerror(-why));
	log_stat_add(&log->stats.corruptions, 1);
	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, loc->entry.shard_id);
	if (shard != NULL)
		log_shard_mark_bad(shard, loc->entry.seq_first,
				   loc->entry.seq_first + loc->entry.record_count);
	pthread_mutex_unlock(&log->index_lock);
}

/*
 * The seqlock's copy below races with the writer by design: the re-check of
 * valid_from after it throws a torn copy away (Boehm, "Can seqlocks get along
 * with programming language memory models?", 2012). ThreadSanitizer would report
 * that race, about one run in eight of log_basic's threaded small-ring test, so
 * under TSan the copy's reads are not tracked (the runtime's annotation API);
 * the valid_from loads and the fence stay checked.
 */
#if defined(__SANITIZE_THREAD__)
#define READ_RECENT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define READ_RECENT_TSAN 1
#endif
#endif
#ifdef READ_RECENT_TSAN
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define racy_copy_begin() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define racy_copy_end() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define racy_copy_begin() ((void)0)
#define racy_copy_end() ((void)0)
#endif

/*
 * Copies the batch from the window ring into `dst`. False when the writer
 * has overwritten (or may be overwriting) that part of the ring: the
 * seqlock reader side of log_recent.valid_from (log_internal.h).
 */
static bool
read_recent(struct log *log, const struct read_loc *loc, uint8_t *dst)
{
	const struct log_recent *r = &log->recent;
	uint64_t pos = loc->ring_pos;

	if (pos == UINT64_MAX || pos < atomic_load_explicit(&r->valid_from, memory_order_relaxed))
		return false;
	racy_copy_begin();
	memcpy(dst, (const uint8_t *)r->mem.addr + pos % r->size, loc->entry.size);
	racy_copy_end();
	/* The copy's loads before the re-check; pairs with window_place's release fence. */
	atomic_thread_fence(memory_order_acquire);
	return pos >= atomic_load_explicit(&r->valid_from, memory_order_relaxed);
}

/* Keeps the page cache READ_PREFETCH_SIZE ahead of reads of sealed segments. */
static void
read_prefetch(struct log_reader *reader, const struct read_loc *loc)
{
	uint64_t offset = loc->entry.offset;

	if (reader->prefetch_segment == loc->segment_no && offset < reader->prefetch_end &&
	    offset + READ_PREFETCH_SIZE / 2 < reader->prefetch_end)
		return;
	if (reader->prefetch_segment != loc->segment_no || offset >= reader->prefetch_end ||
	    offset + READ_PREFETCH_SIZE < reader->prefetch_end)
		reader->prefetch_end = offset;
	reader->prefetch_segment = loc->segment_no;
	log_io_prefetch(reader->log->io, loc->file, reader->prefetch_end, READ_PREFETCH_SIZE);
	reader->prefetch_end += READ_PREFETCH_SIZE;
}

/* The batch's CRCs, and that it is the batch the index entry names. */
static int
read_verify(const struct read_loc *loc, const uint8_t *batch)
{
	struct log_batch_header h;
	int err = log_batch_check(batch, loc->entry.size, &h);

	if (err == -ENODATA)
		err = -EBADMSG;
	if (err == 0 && (h.shard_id != loc->entry.shard_id || h.base_seq != loc->entry.seq_first ||
			 h.record_count != loc->entry.record_count ||
			 h.segment_no != (uint32_t)loc->segment_no || h.size != loc->entry.size))
		err = -EBADMSG;
	return err;
}

/*
 * Reads and re-checks the batch; returns a pointer to it in the reader's
 * buffer. Sources, cheapest first: the window ring, the page cache (sealed
 * segments only), an O_DIRECT read. Only the last one's verdict counts:
 * a copy that does not check out from the first two (overwritten, stale)
 * is read again from the device, and only a bad device read is reported.
 */
static int
read_batch(struct log_reader *reader, const struct read_loc *loc, const uint8_t **batch_out)
{
	uint64_t start = loc->entry.offset & ~(uint64_t)(LOG_BLOCK_SIZE - 1);
	uint64_t end = align_up((uint64_t)loc->entry.offset + loc->entry.size, LOG_BLOCK_SIZE);
	uint8_t *batch = (uint8_t *)reader->mem.addr + (loc->entry.offset - start);
	struct log *log = reader->log;
	int err = -EAGAIN;

	*batch_out = batch;
	if (end - start > reader->buf_size) {
		err = -EBADMSG;
	} else if (read_recent(log, loc, batch) && read_verify(loc, batch) == 0) {
		log_stat_add(&log->stats.reads_memory, 1);
		return 0;
	}
	if (err == -EAGAIN && loc->sealed)
		read_prefetch(reader, loc);
	if (err == -EAGAIN && loc->sealed &&
	    log_io_pread_cached(log->io, loc->file, batch, loc->entry.size,
				loc->entry.offset) == 0 &&
	    read_verify(loc, batch) == 0) {
		log_stat_add(&log->stats.reads_cached, 1);
		return 0;
	}
	if (err == -EAGAIN) {
		err = log_io_pread(log->io, loc->file, reader->mem.addr, (uint32_t)(end - start),
				   start);
		log_stat_add(&log->stats.reads_device, 1);
	}
	if (err == 0)
		err = read_verify(loc, batch);
	if (err == -EBADMSG)
		read_report_corrupt(log, loc, err);
	return err;
}

/*
 * read_batch, then decryption in the reader's buffer. A key that is missing,
 * disabled or wrong fails the read (counted) and serves nothing; a batch
 * whose CRCs hold but whose GCM tag does not was altered: corruption.
 */
static int
read_batch_open(struct log_reader *reader, const struct read_loc *loc,
		const uint8_t **batch_out)
{
	struct log *log = reader->log;
	int err = read_batch(reader, loc, batch_out);

	if (err != 0)
		return err;  /* read_batch reported what it found. */
	err = log_batch_decrypt(log, reader->crypt, (uint8_t *)(uintptr_t)*batch_out);
	if (err == -EBADMSG)
		read_report_corrupt(log, loc, err);
	else if (err == -ENOKEY || err == -EKEYREVOKED || err == -EKEYREJECTED)
		log_stat_add(&log->stats.decrypt_errors, 1);
	return err;
}

struct read_ctx {
	log_read_fn fn;
	void *arg;
	uint32_t records_max;
	uint64_t bytes_max;
	uint32_t delivered;
	uint64_t bytes;
	uint64_t seq_next;
	bool stop;
	int fn_error;
	uint64_t seq_limit;
};

/* Delivers the batch's records from ctx->seq_next on. Returns 0 or the callback's errno. */
static int
read_deliver(struct read_ctx *ctx, const uint8_t *batch)
{
	struct log_record_iter iter;
	struct log_record_out record;

	log_record_iter_init(&iter, batch);
	while (!ctx->stop && log_record_iter_next(&iter, &record) == 1) {
		int rc;

		if (record.seq < ctx->seq_next)
			continue;
		if (record.seq >= ctx->seq_limit) {
			ctx->stop = true; /* The replicated watermark cuts this batch. */
			break;
		}
		if (ctx->delivered == ctx->records_max ||
		    (ctx->delivered > 0 && ctx->bytes + record.data_size > ctx->bytes_max)) {
			ctx->stop = true;
			break;
		}
		rc = ctx->fn(ctx->arg, &record);
		if (rc < 0) {
			ctx->fn_error = rc;
			return rc;
		}
		ctx->delivered++;
		ctx->bytes += record.data_size;
		ctx->seq_next = record.seq + 1;
		if (rc == 1)
			ctx->stop = true;
	}
	return 0;
}

int
log_read(struct log_reader *reader, uint64_t shard_id, uint64_t seq_from,
	 uint32_t records_max, uint64_t bytes_max, log_read_fn fn, void *arg,
	 uint64_t *seq_next_out)
{
	struct read_ctx ctx = { fn, arg, records_max, bytes_max, 0, 0, seq_from, false, 0, 0 };
	int rc = 0;

	pthread_rwlock_rdlock(&reader->log->segments_rw);
	while (!ctx.stop && ctx.delivered < records_max) {
		struct read_loc loc;
		const uint8_t *batch;

		rc = read_locate(reader, shard_id, ctx.seq_next, &loc);
		if (rc == 0)
			rc = read_batch_open(reader, &loc, &batch);
		if (rc == 0) {
			ctx.seq_limit = loc.seq_limit;
			rc = read_deliver(&ctx, batch);
		}
		if (rc != 0)
			break;
	}
	pthread_rwlock_unlock(&reader->log->segments_rw);
	*seq_next_out = ctx.seq_next;
	if (ctx.fn_error != 0)
		return ctx.fn_error;
	/* Records already delivered win; a read error shows on the next call. */
	if (rc == 1 || (rc < 0 && ctx.delivered > 0))
		rc = 0;
	return rc < 0 ? rc : (int)ctx.delivered;
}

/* The first batch of the shard whose latest arrival is >= ts_ns (lock held). */
static int
seek_locate(struct log_reader *reader, uint64_t shard_id, uint64_t ts_ns, struct read_loc *loc,
	    uint64_t *seq_out)
{
	struct log *log = reader->log;
	struct log_shard *shard = log_shard_find(log, shard_id);

	if (shard != NULL && shard->deleted)
		shard = NULL;
	*seq_out = shard == NULL ? 0 : log_shard_readable_end(shard);
	if (shard == NULL)
		return 1;
	for (uint32_t k = 0; k < shard->seg_count; k++) {
		const struct log_shard_seg *summary = &shard->segs[k];
		struct log_segment *seg;

		if (summary->arrival_max_ns < ts_ns || summary->seq_end <= shard->seq_trim)
			continue;
		seg = log_segment_find(log, summary->segment_no);
		for (uint32_t i = 0; seg != NULL && i < seg->entry_count; i++) {
			const struct log_index_entry *e = &seg->entries[i];

			if (e->shard_id != shard_id || e->arrival_max_ns < ts_ns ||
			    e->seq_first + e->record_count <= shard->seq_trim ||
			    e->seq_first < summary->seq_first || log_entry_truncated(shard, e) ||
			    e->seq_first >= log_shard_readable_end(shard))
				continue;
			loc->entry = *e;
			loc->segment_no = seg->segment_no;
			loc->file = seg->file;
			loc->sealed = seg->state == LOG_SEGMENT_SEALED;
			loc->seq_limit = log_shard_readable_end(shard);
			read_loc_recent(log, loc);
			return 0;
		}
	}
	return 1;
}

int
log_seek_time(struct log_reader *reader, uint64_t shard_id, uint64_t ts_ns, uint64_t *seq_out)
{
	struct log *log = reader->log;
	struct log_record_iter iter;
	struct log_record_out record;
	const uint8_t *batch;
	struct read_loc loc;
	int rc;

	pthread_rwlock_rdlock(&log->segments_rw);
	pthread_mutex_lock(&log->index_lock);
	rc = seek_locate(reader, shard_id, ts_ns, &loc, seq_out);
	pthread_mutex_unlock(&log->index_lock);
	if (rc == 0)
		rc = read_batch_open(reader, &loc, &batch);
	if (rc == 0) {
		log_record_iter_init(&iter, batch);
		while (log_record_iter_next(&iter, &record) == 1) {
			if (record.arrival_ns >= ts_ns || record.seq >= loc.seq_limit) {
				*seq_out = min_u64(record.seq, loc.seq_limit);
				break;
			}
		}
	}
	pthread_rwlock_unlock(&log->segments_rw);
	return rc < 0 ? rc : 0;
}
