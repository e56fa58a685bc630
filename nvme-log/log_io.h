/*
 * log_io.h - the narrow I/O seam between the log core and its backend
 * (private to nvme-log/ and its tests). Two backends implement every
 * function below; the link picks one, so the seam costs no indirect call:
 *
 *   log_io_uring.c  io_uring + O_DIRECT on the real directory (log_dep)
 *   log_io_sim.c    a seeded simulated disk in memory (log_sim_dep)
 *
 * Files are small integer handles. Synchronous calls serve control paths
 * (open, recovery, reads, preparing segments, index files) and may be
 * called from any thread. The asynchronous calls (write_submit, reap) are
 * the writer's hot path and belong to the writer thread only.
 *
 * Buffers and offsets of segment I/O are LOG_BLOCK_SIZE aligned (O_DIRECT).
 */
#ifndef SLUICE_LOG_IO_H
#define SLUICE_LOG_IO_H

#include <stdbool.h>
#include <stdint.h>

struct log_io;

#define LOG_IO_FILE_DIRECT 0x1u  /* Segment files: O_DIRECT. */
#define LOG_IO_FILE_CREATE 0x2u  /* Create; fail with -EEXIST if it exists. */
#define LOG_IO_FILE_TRUNC 0x4u   /* Create or truncate (index and meta temp files). */

struct log_io_done {
	uint64_t tag;
	int32_t result;  /* Bytes written, or a negative errno. */
};

/* Opens the backend's default instance on `dir_path` (created if missing). */
int log_io_default_open(const char *dir_path, struct log_io **io_out);
void log_io_default_close(struct log_io *io);

int log_io_file_open(struct log_io *io, const char *name, uint32_t flags, uint32_t *file_out);
void log_io_file_close(struct log_io *io, uint32_t file);
int log_io_file_size(struct log_io *io, uint32_t file, uint64_t *size_out);
int log_io_file_remove(struct log_io *io, const char *name);
/* Atomically replaces `to` by `from`. */
int log_io_file_rename(struct log_io *io, const char *from, const char *to);
/* Calls fn for each regular file name in the directory; stops at a non-zero return. */
int log_io_dir_list(struct log_io *io, int (*fn)(void *arg, const char *name), void *arg);
int log_io_dir_sync(struct log_io *io);
/* Bytes an unprivileged writer may still take on the directory's filesystem. */
int log_io_space_free(struct log_io *io, uint64_t *bytes_out);

/* Synchronous read/write of exactly `size` bytes: 0, -ENODATA past the end, or -errno. */
int log_io_pread(struct log_io *io, uint32_t file, void *buf, uint32_t size, uint64_t offset);
int log_io_pwrite(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
		  uint64_t offset);
/*
 * Like log_io_pread, through the page cache (a buffered descriptor of the
 * same file, opened on first use; no alignment needed), with sequential
 * readahead. Only for bytes that are durable and never written again
 * (sealed segments): the writer's O_DIRECT writes elsewhere in the file
 * invalidate cached pages they cover, and the caller re-reads with
 * log_io_pread when what it got does not check out.
 */
int log_io_pread_cached(struct log_io *io, uint32_t file, void *buf, uint32_t size,
			uint64_t offset);
/* Starts reading [offset, offset + size) into the page cache without waiting (a hint). */
void log_io_prefetch(struct log_io *io, uint32_t file, uint64_t offset, uint64_t size);
int log_io_fsync(struct log_io *io, uint32_t file);

/*
 * Queues a write; with `dsync` it is durable when it completes (RWF_DSYNC).
 * Returns 0 or -EBUSY when the queue is full (reap first).
 */
int log_io_write_submit(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
			uint64_t offset, bool dsync, uint64_t tag);
/*
 * Queues an fdatasync of `file`. It covers the writes that completed
 * before it was queued (the writer queues it once a window's writes are done).
 */
int log_io_sync_submit(struct log_io *io, uint32_t file, uint64_t tag);
/*
 * Submits what is queued, then collects up to `count` completions, waiting
 * up to `wait_ns` for the first one when none is ready. Returns the count.
 */
uint32_t log_io_reap(struct log_io *io, struct log_io_done *done, uint32_t count,
		     uint64_t wait_ns);

/* Wall-clock ns (the simulation's is deterministic). */
uint64_t log_io_now_ns(struct log_io *io);
/* A fresh random 64-bit identity (the simulation's comes from its seed). */
uint64_t log_io_random_id(struct log_io *io);

/* Most writes a caller may have submitted and not yet reaped. */
#define LOG_IO_INFLIGHT_MAX 64u

#endif /* SLUICE_LOG_IO_H */
