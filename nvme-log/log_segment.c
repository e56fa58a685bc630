/*
 * log_segment.c - segment files: pre-writing spares, the segment list,
 * batch-level index entries, and the index file of a sealed segment.
 *
 * Spares are created and filled with zeros (then fdatasync'ed, and the
 * directory synced) before the writer ever sees them, so a group commit
 * writes over already-allocated, already-written blocks and its flush
 * pays for no block allocation or metadata journal commit. A background
 * "preparer" thread keeps config.segments_prepared of them ready and writes the
 * index files of sealed segments; without a writer thread (tests) both
 * happen inline, on demand.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

#define PREWRITE_CHUNK (1u << 20)

void
log_segment_name(uint64_t segment_no, const char *ext, char *buf, size_t size)
{
	snprintf(buf, size, "seg-%016" PRIx64 ".%s", segment_no, ext);
}

int
log_segment_entry_add(struct log_segment *seg, const struct log_index_entry *entry)
{
	if (seg->entry_count == seg->entry_cap) {
		uint32_t cap = seg->entry_cap == 0 ? 256 : seg->entry_cap * 2;
		struct log_index_entry *entries = realloc(seg->entries, cap * sizeof(*entries));

		if (entries == NULL)
			return -ENOMEM;
		seg->entries = entries;
		seg->entry_cap = cap;
	}
	seg->entries[seg->entry_count++] = *entry;
	seg->arrival_max_ns = max_u64(seg->arrival_max_ns, entry->arrival_max_ns);
	return 0;
}

bool
log_index_entry_same(const struct log_index_entry *a, const struct log_index_entry *b)
{
	return a->shard_id == b->shard_id && a->seq_first == b->seq_first &&
	       a->offset == b->offset && a->size == b->size &&
	       a->record_count == b->record_count && a->commit_id == b->commit_id;
}

/* Binary search of the ordered segment list; caller holds index_lock. */
struct log_segment *
log_segment_find(struct log *log, uint64_t segment_no)
{
	uint32_t lo = 0;
	uint32_t hi = log->segment_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (log->segments[mid]->segment_no < segment_no)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < log->segment_count && log->segments[lo]->segment_no == segment_no)
		return log->segments[lo];
	return NULL;
}

int
log_segment_list_add(struct log *log, struct log_segment *seg)
{
	if (log->segment_count == LOG_SEGMENTS_MAX)
		return -ENOSPC;
	assert(log->segment_count == 0 ||
	       log->segments[log->segment_count - 1]->segment_no < seg->segment_no);
	log->segments[log->segment_count++] = seg;
	return 0;
}

void
log_segment_free(struct log *log, struct log_segment *seg)
{
	if (seg == NULL)
		return;
	log_io_file_close(log->io, seg->file);
	free(seg->entries);
	free(seg);
}

static int
segment_prewrite(struct log *log, uint32_t file)
{
	struct log_mem zeros;
	int err = log_mem_alloc(&zeros, PREWRITE_CHUNK);

	if (err != 0)
		return err;
	memset(zeros.addr, 0, PREWRITE_CHUNK);
	for (uint64_t off = 0; err == 0 && off < log->config.segment_size; off += PREWRITE_CHUNK)
		err = log_io_pwrite(log->io, file, zeros.addr, PREWRITE_CHUNK, off);
	if (err == 0)
		err = log_io_fsync(log->io, file);
	log_mem_free(&zeros);
	return err;
}

/* Creates, pre-writes and syncs one spare segment and queues it. Any thread. */
int
log_segment_prepare(struct log *log)
{
	struct log_segment *seg;
	char name[64];
	uint64_t segment_no;
	uint64_t free_bytes;
	int err;

	/* ENOSPC before the filesystem is full: LOG_SPACE_HEADROOM says why. */
	if (log_io_space_free(log->io, &free_bytes) == 0 &&
	    free_bytes < log->config.segment_size + LOG_SPACE_HEADROOM)
		return -ENOSPC;
	seg = calloc(1, sizeof(*seg));
	if (seg == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&log->prep_lock);
	segment_no = log->segment_no_next++;
	pthread_mutex_unlock(&log->prep_lock);
	log_segment_name(segment_no, "log", name, sizeof(name));
	err = log_io_file_open(log->io, name, LOG_IO_FILE_DIRECT | LOG_IO_FILE_CREATE, &seg->file);
	if (err != 0)
		goto out_free;
	err = segment_prewrite(log, seg->file);
	if (err == 0)
		err = log_io_dir_sync(log->io);
	if (err != 0)
		goto out_remove;
	seg->segment_no = segment_no;
	seg->state = LOG_SEGMENT_ACTIVE;
	pthread_mutex_lock(&log->prep_lock);
	assert(log->spare_count < log->spares_target);
	log->spares[log->spare_count++] = seg;
	pthread_cond_broadcast(&log->prep_cond);
	pthread_mutex_unlock(&log->prep_lock);
	return 0;

out_remove:
	log_io_file_close(log->io, seg->file);
	log_io_file_remove(log->io, name);
out_free:
	free(seg);
	return err;
}

/*
 * The next spare for the writer, oldest first. With a preparer thread it
 * waits for one (if `wait`); without, it prepares one inline. NULL when
 * none could be had (the preparer's error is in log->prep_error).
 */
struct log_segment *
log_segment_take_spare(struct log *log, bool wait)
{
	struct log_segment *seg = NULL;

	pthread_mutex_lock(&log->prep_lock);
	if (log->spare_count == 0 && !log->prep_started) {
		pthread_mutex_unlock(&log->prep_lock);
		log->prep_error = log_segment_prepare(log);
		pthread_mutex_lock(&log->prep_lock);
	}
	while (wait && log->prep_started && log->spare_count == 0 && log->prep_error == 0)
		pthread_cond_wait(&log->prep_cond, &log->prep_lock);
	if (log->spare_count > 0) {
		seg = log->spares[0];
		log->spare_count--;
		memmove(&log->spares[0], &log->spares[1], log->spare_count * sizeof(seg));
		pthread_cond_broadcast(&log->prep_cond);
	}
	pthread_mutex_unlock(&log->prep_lock);
	return seg;
}

static int
index_file_write(struct log *log, struct log_segment *seg, const char *tmp_name)
{
	size_t size = LOG_INDEX_HEADER_SIZE + (size_t)seg->entry_count * sizeof(*seg->entries);
	uint8_t *buf = malloc(size);
	uint64_t header[6];
	uint32_t crc;
	uint32_t file;
	int err;

	if (buf == NULL)
		return -ENOMEM;
	header[0] = LOG_INDEX_MAGIC;
	header[1] = (uint64_t)LOG_FORMAT_VERSION << 32; /* crc32c filled below */
	header[2] = log->log_id;
	header[3] = seg->segment_no;
	header[4] = seg->entry_count;
	header[5] = seg->bytes_used;
	memcpy(buf, header, sizeof(header));
	/* A segment recovery found no batch in has no entries array (memcpy from NULL is UB). */
	if (seg->entry_count > 0) {
		struct log_index_entry *out = (struct log_index_entry *)(buf + LOG_INDEX_HEADER_SIZE);

		/* Under index_lock: a cut marks entries of sealed segments dead meanwhile. */
		pthread_mutex_lock(&log->index_lock);
		memcpy(out, seg->entries, size - LOG_INDEX_HEADER_SIZE);
		pthread_mutex_unlock(&log->index_lock);
		for (uint32_t i = 0; i < seg->entry_count; i++)
			out[i].reserved &= ~LOG_ENTRY_DEAD; /* Memory only (log_internal.h). */
	}
	crc = crc32c(0, buf + 12, size - 12);
	memcpy(buf + 8, &crc, 4);
	err = log_io_file_open(log->io, tmp_name, LOG_IO_FILE_TRUNC, &file);
	if (err == 0) {
		err = log_io_pwrite(log->io, file, buf, (uint32_t)size, 0);
		if (err == 0)
			err = log_io_fsync(log->io, file);
		log_io_file_close(log->io, file);
	}
	free(buf);
	return err;
}

/* Writes seg-N.idx atomically (tmp, fsync, rename, fsync dir). Entries must be final. */
int
log_segment_index_write(struct log *log, struct log_segment *seg)
{
	char tmp_name[64];
	char name[64];
	int err;

	log_segment_name(seg->segment_no, "idx.tmp", tmp_name, sizeof(tmp_name));
	log_segment_name(seg->segment_no, "idx", name, sizeof(name));
	err = index_file_write(log, seg, tmp_name);
	if (err == 0)
		err = log_io_file_rename(log->io, tmp_name, name);
	if (err == 0)
		err = log_io_dir_sync(log->io);
	if (err != 0) {
		diag_error("log", "%s: writing %s: %s", log->dir_path, name, strerror(-err));
		return err;
	}
	pthread_mutex_lock(&log->index_lock);
	seg->index_persisted = true;
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

static int
index_file_check(struct log *log, struct log_segment *seg, const uint8_t *buf, uint64_t size)
{
	uint64_t header[6];
	uint32_t crc;

	if (size < LOG_INDEX_HEADER_SIZE)
		return -EBADMSG;
	memcpy(header, buf, sizeof(header));
	memcpy(&crc, buf + 8, 4);
	if (header[0] != LOG_INDEX_MAGIC || crc32c(0, buf + 12, size - 12) != crc)
		return -EBADMSG;
	if ((header[1] >> 32) != LOG_FORMAT_VERSION || header[2] != log->log_id ||
	    header[3] != seg->segment_no)
		return -EBADMSG;
	if (header[4] != (size - LOG_INDEX_HEADER_SIZE) / sizeof(struct log_index_entry) ||
	    (size - LOG_INDEX_HEADER_SIZE) % sizeof(struct log_index_entry) != 0 ||
	    header[5] > log->config.segment_size)
		return -EBADMSG;
	seg->bytes_used = header[5];
	return 0;
}

/*
 * Loads seg-N.idx into seg->entries. -ENOENT when there is none (the
 * segment was not sealed), -EBADMSG when it does not check out.
 */
int
log_segment_index_read(struct log *log, struct log_segment *seg)
{
	char name[64];
	uint64_t size;
	uint32_t file;
	uint8_t *buf;
	int err;

	log_segment_name(seg->segment_no, "idx", name, sizeof(name));
	err = log_io_file_open(log->io, name, 0, &file);
	if (err != 0)
		return err;
	err = log_io_file_size(log->io, file, &size);
	if (err == 0 && (size > (1ull << 31) || size < LOG_INDEX_HEADER_SIZE))
		err = -EBADMSG;
	buf = err == 0 ? malloc(size) : NULL;
	if (err == 0 && buf == NULL)
		err = -ENOMEM;
	if (err == 0)
		err = log_io_pread(log->io, file, buf, (uint32_t)size, 0);
	log_io_file_close(log->io, file);
	if (err == 0)
		err = index_file_check(log, seg, buf, size);
	for (uint64_t off = LOG_INDEX_HEADER_SIZE; err == 0 && off < size;
	     off += sizeof(struct log_index_entry)) {
		struct log_index_entry entry;

		memcpy(&entry, buf + off, sizeof(entry));
		entry.reserved &= ~LOG_ENTRY_DEAD; /* Memory only: recovery marks again. */
		err = log_segment_entry_add(seg, &entry);
	}
	free(buf);
	return err == -ENODATA ? -EBADMSG : err;
}

/* Hands a sealed segment to the preparer for its index file (inline without one). */
void
log_segment_seal_request(struct log *log, struct log_segment *seg)
{
	pthread_mutex_lock(&log->prep_lock);
	assert(log->seal_count < LOG_SEGMENTS_MAX);
	log->seal_queue[log->seal_count++] = seg;
	pthread_cond_broadcast(&log->prep_cond);
	pthread_mutex_unlock(&log->prep_lock);
	if (!log->prep_started)
		log_segments_run_seals(log);
}

/* Writes every queued index file. Returns the first error. */
int
log_segments_run_seals(struct log *log)
{
	int err = 0;

	pthread_mutex_lock(&log->prep_lock);
	while (log->seal_count > 0) {
		struct log_segment *seg = log->seal_queue[0];
		int rc;

		log->seal_count--;
		memmove(&log->seal_queue[0], &log->seal_queue[1], log->seal_count * sizeof(seg));
		pthread_mutex_unlock(&log->prep_lock);
		rc = log_segment_index_write(log, seg);
		if (err == 0)
			err = rc;
		pthread_mutex_lock(&log->prep_lock);
	}
	pthread_mutex_unlock(&log->prep_lock);
	return err;
}

static void *
prep_main(void *arg)
{
	struct log *log = arg;

	pthread_setname_np(pthread_self(), "sluice-logprep");
	pthread_mutex_lock(&log->prep_lock);
	while (!log->prep_stop) {
		if (log->seal_count > 0) {
			pthread_mutex_unlock(&log->prep_lock);
			log_segments_run_seals(log);
			pthread_mutex_lock(&log->prep_lock);
		} else if (log->spare_count < log->spares_target && log->prep_error == 0) {
			int err;

			pthread_mutex_unlock(&log->prep_lock);
			err = log_segment_prepare(log);
			pthread_mutex_lock(&log->prep_lock);
			if (err != 0) {
				/* Wakes a writer waiting for a spare; it decides what to do. */
				log->prep_error = err;
				pthread_cond_broadcast(&log->prep_cond);
			}
		} else {
			pthread_cond_wait(&log->prep_cond, &log->prep_lock);
		}
	}
	pthread_mutex_unlock(&log->prep_lock);
	return NULL;
}

int
log_prep_start(struct log *log)
{
	int err = pthread_create(&log->prep_thread, NULL, prep_main, log);

	if (err != 0)
		return -err;
	log->prep_started = true;
	return 0;
}

/* Stops the preparer after it finished the index files queued so far. */
void
log_prep_stop(struct log *log)
{
	if (log->prep_started) {
		pthread_mutex_lock(&log->prep_lock);
		log->prep_stop = true;
		pthread_cond_broadcast(&log->prep_cond);
		pthread_mutex_unlock(&log->prep_lock);
		pthread_join(log->prep_thread, NULL);
		log->prep_started = false;
	}
	log_segments_run_seals(log);
}
