/*
 * log_recover.c - opening an existing log directory.
 *
 * Sealed segments come back from their index files (no data is read).
 * A segment without one (the tail the last run was writing) is scanned:
 * batches are followed from block 1 while they check out, the longest
 * valid prefix is kept and the segment is sealed on the spot. The newest
 * segment is then resumed as the active one when it has room and no corruption
 * was found in it (recover_resume):
 * its index file goes, a window whose end never landed is dropped, and
 * whatever a torn tail left past the kept prefix is zeroed, so the new run
 * writes over zeros exactly as if the tail had never been written. Before, every open began a new segment, and N restarts
 * with little data left N segments (issue 14, finding 4).
 *
 * Torn tail or corruption? Every batch records the newest window that was
 * durable when its window was submitted (commit_id - durable_lag). So when
 * the walk stops at a bad batch in window w, any valid batch further on
 * written after w was durable proves it: the bad batch is corruption of
 * durable data (counted, logged, its shards' sequence gaps read as
 * -EBADMSG) and the walk resumes there. Otherwise it is a torn tail and is
 * cut. Corruption in the last durable windows (before any later write
 * recorded them durable) cannot be told from a torn write by any format
 * without a second copy; that limit is documented.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

struct recover_names {
	uint64_t *nos;
	uint32_t count;
	uint32_t cap;
};

struct scan_state {
	uint64_t pos;
	uint64_t last_commit;     /* Last complete window. */
	uint64_t cur_commit;      /* Window being walked, when in_window. */
	bool in_window;
	uint32_t corruptions;
	uint32_t commits_seen;
	bool torn;
};

static int
names_add(void *arg, const char *name)
{
	struct recover_names *names = arg;
	uint64_t no;
	char tail[8];

	if (sscanf(name, "seg-%16" SCNx64 ".%7s", &no, tail) != 2 || strcmp(tail, "log") != 0)
		return 0;
	if (names->count == names->cap) {
		uint32_t cap = names->cap == 0 ? 64 : names->cap * 2;
		uint64_t *nos = realloc(names->nos, cap * sizeof(*nos));

		if (nos == NULL)
			return -ENOMEM;
		names->nos = nos;
		names->cap = cap;
	}
	names->nos[names->count++] = no;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool
batch_valid_at(const uint8_t *buf, uint64_t size, uint64_t pos, uint64_t segment_no,
	       struct log_batch_header *h)
{
	return pos + LOG_BATCH_HEADER_SIZE <= size &&
	       log_batch_check(buf + pos, size - pos, h) == 0 &&
	       h->segment_no == (uint32_t)segment_no;
}

/*
 * First 4 KiB boundary after `from` holding a valid batch written after a
 * window >= `durable` had become durable (its durable_lag says so).
 */
static uint64_t
scan_later_window(const uint8_t *buf, uint64_t size, uint64_t from, uint64_t segment_no,
		  uint64_t durable, struct log_batch_header *h)
{
	for (uint64_t pos = align_up(from, LOG_BLOCK_SIZE); pos < size; pos += LOG_BLOCK_SIZE) {
		if (batch_valid_at(buf, size, pos, segment_no, h) && h->durable_lag != 0 &&
		    h->commit_id - h->durable_lag >= durable)
			return pos;
	}
	return 0;
}

static bool
all_zero(const uint8_t *p, uint64_t size)
{
	/* Each byte equals the next and the first is 0: memcmp's vector loop, not a byte loop. */
	return size == 0 || (p[0] == 0 && memcmp(p, p + 1, size - 1) == 0);
}

static uint64_t
batch_arrival_max(const uint8_t *batch)
{
	struct log_record_iter iter;
	struct log_record_out record;
	uint64_t max = 0;

	/* Encrypted records cannot be read here (no key needed to recover): the trailer has it. */
	if ((((const struct log_batch_header *)(const void *)batch)->flags &
	     LOG_BATCH_F_ENCRYPTED) != 0)
		return log_batch_trailer_arrival_max(batch);
	log_record_iter_init(&iter, batch);
	while (log_record_iter_next(&iter, &record) == 1)
		max = max_u64(max, record.arrival_ns);
	return max;
}

static int
scan_add(struct log_segment *seg, const uint8_t *buf, uint64_t pos,
	 const struct log_batch_header *h)
{
	struct log_index_entry entry = {
		.shard_id = h->shard_id,
		.seq_first = h->base_seq,
		.arrival_max_ns = batch_arrival_max(buf + pos),
		.commit_id = h->commit_id,
		.offset = (uint32_t)pos,
		.size = h->size,
		.record_count = h->record_count,
	};

	return log_segment_entry_add(seg, &entry);
}

/* The walk stopped at st->pos: resume after corruption, or end (torn or clean). */
static bool
scan_stop(struct log *log, struct log_segment *seg, const uint8_t *buf, uint64_t size,
	  struct scan_state *st)
{
	/*
	 * The window at st->pos is `cur`, or (between windows) the first window
	 * after last_commit that became durable, if any did: windows follow each
	 * other without gaps, a failed one's place is taken by the next.
	 */
	uint64_t w = st->in_window ? st->cur_commit : st->last_commit + 1;
	struct log_batch_header h;
	uint64_t next = scan_later_window(buf, size, st->pos + 1, seg->segment_no, w, &h);

	if (next != 0) {
		diag_error("log", "%s: segment %" PRIu64 ": corrupt durable data at bytes %" PRIu64
			   "..%" PRIu64 " (window %" PRIu64 "); later windows kept",
			   log->dir_path, seg->segment_no, st->pos, next, w);
		st->corruptions++;
		st->pos = next;
		st->in_window = false;
		st->last_commit = h.commit_id - 1;
		return true;
	}
	st->torn = st->in_window ||
		   !all_zero(buf + st->pos, min_u64(LOG_BLOCK_SIZE, size - st->pos));
	return false;
}

/* Walks the batches of one unsealed segment image into seg->entries. */
static int
scan_segment(struct log *log, struct log_segment *seg, const uint8_t *buf, uint64_t size,
	     struct scan_state *st)
{
	struct log_batch_header h;
	int err;

	st->pos = LOG_BLOCK_SIZE;
	while (st->pos + LOG_BATCH_HEADER_SIZE <= size) {
		bool ok = batch_valid_at(buf, size, st->pos, seg->segment_no, &h) &&
			  (st->in_window ? h.commit_id == st->cur_commit :
					   h.commit_id > st->last_commit);

		if (!ok) {
			if (scan_stop(log, seg, buf, size, st))
				continue;
			break;
		}
		err = scan_add(seg, buf, st->pos, &h);
		if (err != 0)
			return err;
		st->pos = align_up(st->pos + h.size, LOG_BATCH_ALIGN);
		if (h.flags & LOG_BATCH_F_WINDOW_LAST) {
			st->pos = align_up(st->pos, LOG_BLOCK_SIZE);
			st->last_commit = h.commit_id;
			st->in_window = false;
			st->commits_seen++;
		} else {
			st->in_window = true;
			st->cur_commit = h.commit_id;
		}
	}
	seg->bytes_used = align_up(min_u64(st->pos, size), LOG_BLOCK_SIZE);
	return 0;
}

int
log_segment_read_all(struct log *log, struct log_segment *seg, struct log_mem *image)
{
	int err = log_mem_alloc(image, log->config.segment_size);

	if (err != 0)
		return err;
	err = log_io_pread(log->io, seg->file, image->addr, (uint32_t)log->config.segment_size, 0);
	if (err != 0)
		log_mem_free(image);
	return err;
}

/* Walks a segment image into seg->entries, as recovery does (for log_verify). */
int
log_segment_scan_image(struct log *log, struct log_segment *seg, const uint8_t *image,
		       uint32_t *corruptions_out, bool *torn_out)
{
	struct scan_state st = { .last_commit = seg->commit_first == 0 ? 0 : seg->commit_first - 1 };
	int err = scan_segment(log, seg, image, log->config.segment_size, &st);

	*corruptions_out = st.corruptions;
	*torn_out = st.torn;
	return err;
}

/*
 * Scans an unsealed segment and seals it. A segment with a bad header
 * (`headerless`) and valid batches is either a torn activation (its first
 * window never became durable) or durable data under a corrupt header;
 * two windows prove the latter, else it stays `doubtful` until recovery
 * knows whether a later segment holds data (log_recover decides).
 * -ENOENT: nothing in it (a spare); the caller drops it.
 */
static int
recover_scan(struct log *log, struct log_segment *seg, bool headerless)
{
	struct scan_state st = { .last_commit = headerless ? 0 : seg->commit_first - 1 };
	struct log_mem image;
	int err = log_segment_read_all(log, seg, &image);

	if (err != 0)
		return err;
	err = scan_segment(log, seg, image.addr, log->config.segment_size, &st);
	/* Untouched since it was pre-written: it can serve as a spare again. */
	if (err == 0 && headerless && seg->entry_count == 0 &&
	    all_zero(image.addr, log->config.segment_size))
		err = -EAGAIN;
	log_mem_free(&image);
	if (err != 0)
		return err;
	if (headerless && seg->entry_count == 0)
		return -ENOENT;
	if (headerless && st.commits_seen < 2) {
		seg->doubtful = true;
	} else if (headerless) {
		diag_error("log", "%s: segment %" PRIu64 ": corrupt header; %u batches recovered",
			   log->dir_path, seg->segment_no, seg->entry_count);
		st.corruptions++;
	}
	log_stat_add(&log->stats.corruptions, st.corruptions);
	/*
	 * Proven corruption: a later window vouched for the damaged one. Resuming would drop
	 * that later window if it is torn and zero it, and with it the only proof that the
	 * damaged window was durable: the next open would cut the records kept now.
	 */
	seg->corrupt = st.corruptions > 0;
	if (st.torn) {
		diag_warn("log", "%s: segment %" PRIu64 ": torn tail cut at byte %" PRIu64,
			  log->dir_path, seg->segment_no, st.pos);
		log_stat_add(&log->stats.torn_tails_cut, 1);
	}
	seg->state = LOG_SEGMENT_SEALED;
	if (headerless && seg->entries != NULL)
		seg->commit_first = seg->entries[0].commit_id;
	if (log->config.read_only)
		return 0;
	/*
	 * The prefix we keep may hold windows whose flush never completed (the
	 * last run died or failed between write and fdatasync): make it durable
	 * before anything, the index file first of all, vouches for it.
	 */
	err = log_io_fsync(log->io, seg->file);
	if (err != 0)
		return err;
	return log_segment_index_write(log, seg);
}

static int
recover_header(struct log *log, struct log_segment *seg, bool *headerless)
{
	struct log_segment_header header;
	struct log_mem block;
	uint64_t size;
	int err = log_io_file_size(log->io, seg->file, &size);

	if (err != 0)
		return err;
	if (size < LOG_BLOCK_SIZE)
		return -ENOENT; /* A spare whose pre-writing was cut short. */
	err = log_mem_alloc(&block, LOG_BLOCK_SIZE);
	if (err != 0)
		return err;
	err = log_io_pread(log->io, seg->file, block.addr, LOG_BLOCK_SIZE, 0);
	if (err == 0)
		err = log_segment_header_decode(block.addr, &header);
	log_mem_free(&block);
	if (size != log->config.segment_size) {
		/*
		 * Another size: a spare cut short, unless it is a segment of this log
		 * written with another segment_size. Dropping that one would delete
		 * records, so the open is refused, saying what to set.
		 */
		if (err != 0 || header.log_id != log->log_id || header.segment_size != size)
			return -ENOENT;
		diag_error("log", "%s: segment %" PRIu64 " is %" PRIu64 " MiB but the log is opened "
			   "with %" PRIu64 " MiB segments: set [log] segment_size_mb = %" PRIu64
			   " (the size of a log's segments cannot change)", log->dir_path,
			   seg->segment_no, size >> 20, log->config.segment_size >> 20, size >> 20);
		return -EMEDIUMTYPE;
	}
	if (err == -ENODATA || err == -EBADMSG) {
		*headerless = true;
		return 0;
	}
	if (err != 0)
		return err;
	if (header.log_id != log->log_id || header.segment_no != seg->segment_no ||
	    header.segment_size != log->config.segment_size) {
		diag_error("log", "%s: segment %" PRIu64 " belongs to another log or size",
			   log->dir_path, seg->segment_no);
		return -EBADMSG;
	}
	seg->commit_first = header.commit_first;
	return 0;
}

static void
recover_drop(struct log *log, struct log_segment *seg)
{
	char name[64];

	log_io_file_close(log->io, seg->file);
	if (!log->config.read_only) {
		log_segment_name(seg->segment_no, "log", name, sizeof(name));
		log_io_file_remove(log->io, name);
		log_segment_name(seg->segment_no, "idx", name, sizeof(name));
		log_io_file_remove(log->io, name);
	}
	free(seg->entries);
	free(seg);
}

/* Recovers one segment file: from its index, by a scan, or drops it (spare). */
static int
recover_segment(struct log *log, uint64_t segment_no)
{
	struct log_segment *seg = calloc(1, sizeof(*seg));
	bool headerless = false;
	char name[64];
	int err;

	if (seg == NULL)
		return -ENOMEM;
	seg->segment_no = segment_no;
	log_segment_name(segment_no, "log", name, sizeof(name));
	err = log_io_file_open(log->io, name, LOG_IO_FILE_DIRECT, &seg->file);
	if (err != 0) {
		free(seg);
		return err;
	}
	err = recover_header(log, seg, &headerless);
	if (err == -ENOENT) {
		recover_drop(log, seg);
		return 0;
	}
	if (err == 0)
		err = log_segment_index_read(log, seg);
	diag_debug("log", "%s: segment %" PRIu64 ": header %s, index %s", log->dir_path, segment_no,
		   headerless ? "bad" : "ok", err == 0 ? "loaded" : strerror(-err));
	if (err == 0) {
		/* Sealed: its index file proves the data was durable. */
		seg->state = LOG_SEGMENT_SEALED;
		seg->index_persisted = true;
		seg->indexed = true;
		if (headerless) {
			diag_error("log", "%s: segment %" PRIu64 ": corrupt header (sealed; index kept)",
				   log->dir_path, seg->segment_no);
			log_stat_add(&log->stats.corruptions, 1);
		}
	} else if (err == -ENOENT || err == -EBADMSG) {
		if (err == -EBADMSG) {
			/* Index files are replaced atomically: a bad one is bitrot. */
			diag_error("log", "%s: segment %" PRIu64 ": corrupt index file; rescanned",
				   log->dir_path, seg->segment_no);
			log_stat_add(&log->stats.corruptions, 1);
		}
		seg->entry_count = 0;
		err = recover_scan(log, seg, headerless);
	}
	if (err == -EAGAIN && log->spare_count < log->spares_target) {
		seg->state = LOG_SEGMENT_ACTIVE;
		log->spares[log->spare_count++] = seg;
		return 0;
	}
	if (err == -ENOENT || err == -EAGAIN) {
		recover_drop(log, seg);
		return 0;
	}
	/* A corrupt header is never written to again: see recover_resume(). */
	seg->resumable = !headerless && !seg->corrupt;
	if (err == 0)
		err = log_segment_list_add(log, seg);
	if (err != 0)
		log_segment_free(log, seg);
	return err;
}

/*
 * A doubtful segment (bad header, one window) followed by a segment with
 * data held durable data: keep it and report the header. Otherwise it was
 * a torn activation: drop it, counted as a torn tail.
 */
static void
recover_doubtful(struct log *log)
{
	bool later_data = false;

	for (uint32_t i = log->segment_count; i-- > 0;) {
		struct log_segment *seg = log->segments[i];

		if (seg->doubtful && later_data) {
			diag_error("log", "%s: segment %" PRIu64 ": corrupt header; %u batches kept",
				   log->dir_path, seg->segment_no, seg->entry_count);
			log_stat_add(&log->stats.corruptions, 1);
		} else if (seg->doubtful) {
			diag_warn("log", "%s: segment %" PRIu64 ": torn first window dropped",
				  log->dir_path, seg->segment_no);
			log_stat_add(&log->stats.torn_tails_cut, 1);
			memmove(&log->segments[i], &log->segments[i + 1],
				(log->segment_count - i - 1) * sizeof(seg));
			log->segment_count--;
			recover_drop(log, seg);
			continue;
		}
		seg->doubtful = false;
		later_data |= seg->entry_count > 0;
	}
}

/* Replays one index entry into its shard, checking sequence continuity. */
static int
recover_entry(struct log *log, struct log_segment *seg, struct log_index_entry *e)
{
	struct log_shard *shard;

	log->commit_next = max_u64(log->commit_next, e->commit_id + 1);
	if (log_stream_deleted_before(log, e->shard_id, e->commit_id))
		return 0;
	if (log_entry_truncated(log_shard_find(log, e->shard_id), e)) {
		e->reserved |= LOG_ENTRY_DEAD; /* Reads skip it without the cut's record. */
		return 0;
	}
	shard = log_shard_get(log, e->shard_id);
	if (shard == NULL)
		return -ENOBUFS;
	if (e->seq_first + e->record_count <= shard->seq_trim)
		return 0; /* Trimmed by retention; its segment goes soon. */
	/* Appended after a cut there that log.epochs no longer names: the cut again. */
	if (e->seq_first < shard->seq_durable && log_recover_cut(log, shard, e->seq_first, e->commit_id) == 0)
		diag_debug("log", "%s: shard %" PRIx64 ": cut at seq %" PRIu64 " replayed",
			   log->dir_path, e->shard_id, e->seq_first);
	if (e->seq_first < shard->seq_durable) {
		diag_error("log", "%s: shard %" PRIx64 ": seq %" PRIu64 " repeated in segment %"
			   PRIu64 "; batch ignored", log->dir_path, e->shard_id, e->seq_first,
			   seg->segment_no);
		log_stat_add(&log->stats.corruptions, 1);
		return 0;
	}
	if (e->seq_first > shard->seq_durable) {
		diag_error("log", "%s: shard %" PRIx64 ": records %" PRIu64 "..%" PRIu64
			   " lost to corruption", log->dir_path, e->shard_id, shard->seq_durable,
			   e->seq_first - 1);
		log_stat_add(&log->stats.corruptions, 1);
		log_shard_mark_bad(shard, shard->seq_durable, e->seq_first);
	}
	return log_shard_note_batch(log, shard, seg->segment_no, e);
}

/*
 * Trim horizons and closed shards come from log.meta before any entry is
 * replayed: a shard whose records start above its horizon lost them.
 */
static int
recover_meta_shards(struct log *log)
{
	const uint64_t *ms = log->shards_loaded;

	for (uint32_t i = 0; i < log->shards_loaded_count; i++, ms += 3) {
		struct log_shard *shard = log_shard_get(log, ms[0]);

		if (shard == NULL)
			return -ENOBUFS;
		shard->seq_trim = ms[1];
		shard->seq_durable = ms[1];
		shard->closed = ms[2] != UINT64_MAX;
	}
	return 0;
}

static int
recover_shards(struct log *log)
{
	const uint64_t *ms = log->shards_loaded;
	int err = recover_meta_shards(log);

	if (err == 0)
		err = log_epochs_load(log); /* Cuts apply before any entry is replayed. */
	for (uint32_t s = 0; s < log->segment_count && err == 0; s++) {
		struct log_segment *seg = log->segments[s];

		log->commit_next = max_u64(log->commit_next, seg->commit_first + 1);
		for (uint32_t i = 0; i < seg->entry_count && err == 0; i++)
			err = recover_entry(log, seg, &seg->entries[i]);
	}
	for (uint32_t i = 0; i < log->shards_loaded_count && err == 0; i++, ms += 3) {
		struct log_shard *shard = log_shard_find(log, ms[0]);

		if (ms[2] != UINT64_MAX && shard->seq_durable < ms[2]) {
			log_stat_add(&log->stats.corruptions, 1);
			log_shard_mark_bad(shard, shard->seq_durable, ms[2]);
			shard->seq_durable = ms[2];
		}
	}
	for (uint32_t i = 0; i < log->shard_count; i++)
		log->shards[i].seq_next = log->shards[i].seq_durable;
	return err;
}

static int
probe_first(void *arg, const char *name)
{
	uint64_t no;
	char tail[8];

	if (sscanf(name, "seg-%16" SCNx64 ".%7s", &no, tail) != 2 || strcmp(tail, "log") != 0)
		return 0;
	snprintf(arg, 64, "%s", name);
	return 1;
}

/* Read-only opens take the segment size from the files (0 when there are none). */
int
log_probe_segment_size(struct log_io *io, uint64_t *size_out)
{
	char name[64] = "";
	uint32_t file;
	int err;

	*size_out = 0;
	log_io_dir_list(io, probe_first, name);
	if (name[0] == '\0')
		return 0;
	err = log_io_file_open(io, name, 0, &file);
	if (err != 0)
		return err;
	err = log_io_file_size(io, file, size_out);
	log_io_file_close(io, file);
	return err;
}

/*
 * Zeros whatever lies past the segment's kept prefix within the reach of the last
 * run's windows in flight (a torn tail; a failed window's leftovers): a later rescan
 * (index file lost, or a crash before the next seal) must find zeros there, never an
 * old batch whose sequence numbers were handed out again. Only blocks that are not
 * already zero are written; then one fsync.
 */
static int
recover_zero_tail(struct log *log, struct log_segment *seg)
{
	uint64_t end = min_u64(log->config.segment_size, seg->bytes_used + LOG_TAIL_REACH);
	struct log_mem chunk;
	bool wrote = false;
	int err = log_mem_alloc(&chunk, LOG_WRITE_CHUNK);

	if (err != 0)
		return err;
	for (uint64_t off = seg->bytes_used; err == 0 && off < end; off += LOG_WRITE_CHUNK) {
		uint32_t len = (uint32_t)min_u64(LOG_WRITE_CHUNK, end - off);

		err = log_io_pread(log->io, seg->file, chunk.addr, len, off);
		if (err != 0 || all_zero(chunk.addr, len))
			continue;
		memset(chunk.addr, 0, len);
		err = log_io_pwrite(log->io, seg->file, chunk.addr, len, off);
		wrote = true;
	}
	if (err == 0 && wrote)
		err = log_io_fsync(log->io, seg->file);
	log_mem_free(&chunk);
	return err;
}

/*
 * Windows follow each other without gaps, and recovery reads a valid window that
 * vouches for an earlier one as proof that the earlier one was durable. A scan keeps
 * the valid batches of a window whose last batch never landed (a torn tail cut inside
 * a window); writing new windows after them would make that torn window look like
 * durable data with a corrupt end. So before a segment is resumed, such an open window
 * is dropped: none of its batches were acknowledged (a window completes as a whole,
 * after its flush). -EBADMSG: the last batch does not check out (do not resume).
 */
static int
resume_drop_open_window(struct log *log, struct log_segment *seg)
{
	const struct log_index_entry *last = &seg->entries[seg->entry_count - 1];
	uint64_t from = last->offset / LOG_BLOCK_SIZE * LOG_BLOCK_SIZE;
	uint64_t to = align_up((uint64_t)last->offset + last->size, LOG_BLOCK_SIZE);
	struct log_batch_header h;
	struct log_mem mem;
	int err = log_mem_alloc(&mem, to - from);

	if (err != 0)
		return err;
	err = log_io_pread(log->io, seg->file, mem.addr, (uint32_t)(to - from), from);
	if (err == 0 && !batch_valid_at(mem.addr, to - from, last->offset - from,
					seg->segment_no, &h))
		err = -EBADMSG;
	log_mem_free(&mem);
	if (err != 0 || (h.flags & LOG_BATCH_F_WINDOW_LAST))
		return err;
	while (seg->entry_count > 0 && seg->entries[seg->entry_count - 1].commit_id == h.commit_id)
		seg->entry_count--;
	/* A window starts on a block (the first one after the header block). */
	seg->bytes_used = seg->entry_count == 0 ? LOG_BLOCK_SIZE :
			  seg->entries[seg->entry_count].offset;
	assert(seg->bytes_used % LOG_BLOCK_SIZE == 0);
	diag_warn("log", "%s: segment %" PRIu64 ": unfinished window %" PRIu64 " dropped (never "
		  "acknowledged) before the segment is continued", log->dir_path, seg->segment_no,
		  h.commit_id);
	return 0;
}

/*
 * A resumed segment loses its index file (the writer appends past what it describes),
 * so after a crash the next open walks the data instead. An index vouches for batches
 * that bitrot may since have damaged (reads report those, the index still places the
 * rest); a walk would cut such damage in the last windows as a torn tail, losing records
 * this open serves. So an indexed segment is resumed only when a walk of it finds the
 * indexed batches first (*same_out); else it stays sealed with its index.
 */
static int
resume_walk_matches(struct log *log, struct log_segment *seg, bool *same_out)
{
	struct log_segment walk = { .segment_no = seg->segment_no,
				    .commit_first = seg->commit_first };
	struct log_mem image;
	uint32_t corruptions;
	bool torn;
	int err = log_segment_read_all(log, seg, &image);

	if (err != 0)
		return err;
	err = log_segment_scan_image(log, &walk, image.addr, &corruptions, &torn);
	log_mem_free(&image);
	/* Batches past the indexed ones are a failed last window's leftovers: zeroed next. */
	*same_out = err == 0 && corruptions == 0 && walk.entry_count >= seg->entry_count;
	for (uint32_t i = 0; *same_out && i < seg->entry_count; i++)
		*same_out = log_index_entry_same(&walk.entries[i], &seg->entries[i]);
	free(walk.entries);
	return err;
}

/*
 * Makes the newest segment the active one again when its header is sound and a
 * window of the largest batch still fits (the writer's own sealing rule), instead
 * of leaving it sealed and starting a spare. Runs before the shards are rebuilt
 * (resume_drop_open_window may drop entries). Order matters for a crash at any
 * point: the index file is removed and the directory synced first (it must never
 * outlive a change to the data it describes), then the tail is zeroed and synced,
 * and only then may the writer append. A crash in between leaves a segment that
 * the next open scans to the same result.
 */
static int
recover_resume(struct log *log)
{
	struct log_segment *seg;
	char name[64];
	int err = 0;

	if (log->config.read_only || log->segment_count == 0)
		return 0;
	seg = log->segments[log->segment_count - 1];
	/* One without entries (its first window torn, its header landed) is resumed too. */
	if (!seg->resumable || seg->bytes_used < LOG_BLOCK_SIZE ||
	    log->config.segment_size - seg->bytes_used <
		    align_up(log->config.batch_size, LOG_BLOCK_SIZE) + LOG_BLOCK_SIZE)
		return 0;
	/*
	 * Only a scan can have kept an unfinished window: an index file vouches for every
	 * window in it (a clean close, or a seal whose later window proved a damaged one
	 * durable, which dropping it now would lose for good).
	 */
	if (seg->entry_count > 0 && !seg->indexed)
		err = resume_drop_open_window(log, seg);
	if (err == -EBADMSG)
		return 0; /* Its last batch fails its checks: left sealed, as before. */
	if (err == 0 && seg->indexed) {
		bool same;

		err = resume_walk_matches(log, seg, &same);
		if (err == 0 && !same) {
			diag_error("log", "%s: segment %" PRIu64 ": its data no longer matches its "
				   "index file (damaged since it was written); left sealed",
				   log->dir_path, seg->segment_no);
			return 0;
		}
	}
	log_segment_name(seg->segment_no, "idx", name, sizeof(name));
	if (err == 0) {
		err = log_io_file_remove(log->io, name);
		err = err == -ENOENT ? 0 : err;
	}
	if (err == 0)
		err = log_io_dir_sync(log->io);
	if (err == 0)
		err = recover_zero_tail(log, seg);
	if (err != 0) {
		diag_error("log", "%s: segment %" PRIu64 ": cannot continue it: %s", log->dir_path,
			   seg->segment_no, strerror(-err));
		return err;
	}
	seg->state = LOG_SEGMENT_ACTIVE;
	seg->index_persisted = false;
	seg->written_end = seg->bytes_used;
	log->active = seg;
	log_stat_add(&log->stats.segments_resumed, 1);
	return 0;
}

/* Rebuilds segments, shards and counters from the directory (log.meta is loaded). */
int
log_recover(struct log *log)
{
	struct recover_names names = { 0 };
	int err = log_io_dir_list(log->io, names_add, &names);

	log->commit_next = 1;
	if (err == 0 && names.count > 0)
		qsort(names.nos, names.count, sizeof(uint64_t), cmp_u64);
	for (uint32_t i = 0; i < names.count && err == 0; i++)
		err = recover_segment(log, names.nos[i]);
	if (names.count > 0)
		log->segment_no_next = names.nos[names.count - 1] + 1;
	free(names.nos);
	if (err == 0)
		recover_doubtful(log);
	if (err == 0)
		err = recover_resume(log);
	if (err == 0)
		err = recover_shards(log);
	/* Everything kept was flushed (log_segment_index_write paths) or was sealed. */
	log->commit_durable = log->commit_next - 1;
	if (err != 0)
		diag_error("log", "%s: recovery failed: %s", log->dir_path, strerror(-err));
	return err;
}
