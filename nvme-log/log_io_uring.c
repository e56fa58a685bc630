/*
 * log_io_uring.c - the real backend of log_io.h: io_uring for the writer's
 * hot path, plain syscalls for control paths. The only file that includes
 * liburing.h. Segment files are opened O_DIRECT; index and meta files are
 * buffered and made durable with fsync.
 *
 * The writer is the only submitter, so the ring needs no lock; the file
 * table is shared with control threads and guarded by `files_lock`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <liburing.h>

#include "common/base.h"
#include "common/clock.h"
#include "nvme-log/log_io.h"

#define LOG_IO_FILES_MAX 65536u
#define LOG_IO_RING_ENTRIES 128u

struct log_io {
	struct io_uring ring;
	int dir_fd;
	uint32_t queued;           /* SQEs prepared and not yet submitted. */
	pthread_mutex_t files_lock;
	uint32_t file_hint;        /* Where the next free-slot search starts. */
	int fds[LOG_IO_FILES_MAX]; /* -1 when free. */
	/* Buffered descriptors of the same files for log_io_pread_cached (-1: not yet). */
	int cached_fds[LOG_IO_FILES_MAX];
};

int
log_io_default_open(const char *dir_path, struct log_io **io_out)
{
	struct log_io *io;
	int err;

	if (mkdir(dir_path, 0755) != 0 && errno != EEXIST)
		return -errno;
	io = calloc(1, sizeof(*io));
	if (io == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < LOG_IO_FILES_MAX; i++) {
		io->fds[i] = -1;
		io->cached_fds[i] = -1;
	}
	io->dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (io->dir_fd < 0) {
		err = -errno;
		goto out_free;
	}
	err = io_uring_queue_init(LOG_IO_RING_ENTRIES, &io->ring, 0);
	if (err < 0)
		goto out_close_dir;
	pthread_mutex_init(&io->files_lock, NULL);
	*io_out = io;
	return 0;

out_close_dir:
	close(io->dir_fd);
out_free:
	free(io);
	return err;
}

void
log_io_default_close(struct log_io *io)
{
	for (uint32_t i = 0; i < LOG_IO_FILES_MAX; i++) {
		if (io->fds[i] >= 0)
			close(io->fds[i]);
		if (io->cached_fds[i] >= 0)
			close(io->cached_fds[i]);
	}
	io_uring_queue_exit(&io->ring);
	close(io->dir_fd);
	pthread_mutex_destroy(&io->files_lock);
	free(io);
}

int
log_io_file_open(struct log_io *io, const char *name, uint32_t flags, uint32_t *file_out)
{
	int oflags = O_RDWR | O_CLOEXEC;
	int fd;

	if (flags & LOG_IO_FILE_DIRECT)
		oflags |= O_DIRECT;
	if (flags & LOG_IO_FILE_CREATE)
		oflags |= O_CREAT | O_EXCL;
	if (flags & LOG_IO_FILE_TRUNC)
		oflags |= O_CREAT | O_TRUNC;
	fd = openat(io->dir_fd, name, oflags, 0644);
	if (fd < 0)
		return -errno;

	pthread_mutex_lock(&io->files_lock);
	for (uint32_t n = 0; n < LOG_IO_FILES_MAX; n++) {
		uint32_t i = (io->file_hint + n) % LOG_IO_FILES_MAX;

		if (io->fds[i] < 0) {
			io->fds[i] = fd;
			io->file_hint = i + 1;
			pthread_mutex_unlock(&io->files_lock);
			*file_out = i;
			return 0;
		}
	}
	pthread_mutex_unlock(&io->files_lock);
	close(fd);
	return -EMFILE;
}

static int
io_fd(struct log_io *io, uint32_t file)
{
	assert(file < LOG_IO_FILES_MAX);
	assert(io->fds[file] >= 0);
	return io->fds[file];
}

void
log_io_file_close(struct log_io *io, uint32_t file)
{
	pthread_mutex_lock(&io->files_lock);
	close(io_fd(io, file));
	io->fds[file] = -1;
	if (io->cached_fds[file] >= 0)
		close(io->cached_fds[file]);
	io->cached_fds[file] = -1;
	pthread_mutex_unlock(&io->files_lock);
}

int
log_io_file_size(struct log_io *io, uint32_t file, uint64_t *size_out)
{
	struct stat st;

	if (fstat(io_fd(io, file), &st) != 0)
		return -errno;
	*size_out = (uint64_t)st.st_size;
	return 0;
}

int
log_io_file_remove(struct log_io *io, const char *name)
{
	return unlinkat(io->dir_fd, name, 0) == 0 ? 0 : -errno;
}

int
log_io_file_rename(struct log_io *io, const char *from, const char *to)
{
	return renameat(io->dir_fd, from, io->dir_fd, to) == 0 ? 0 : -errno;
}

int
log_io_dir_list(struct log_io *io, int (*fn)(void *arg, const char *name), void *arg)
{
	int fd = openat(io->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *entry;
	DIR *dir;
	int rc = 0;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (rc == 0 && (entry = readdir(dir)) != NULL) {
		if (entry->d_type == DT_REG)
			rc = fn(arg, entry->d_name);
	}
	closedir(dir);
	return rc;
}

int
log_io_dir_sync(struct log_io *io)
{
	return fsync(io->dir_fd) == 0 ? 0 : -errno;
}

int
log_io_space_free(struct log_io *io, uint64_t *bytes_out)
{
	struct statvfs st;

	if (fstatvfs(io->dir_fd, &st) != 0)
		return -errno;
	*bytes_out = (uint64_t)st.f_bavail * st.f_frsize;
	return 0;
}

int
log_io_pread(struct log_io *io, uint32_t file, void *buf, uint32_t size, uint64_t offset)
{
	int fd = io_fd(io, file);
	uint32_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += (uint32_t)n;
	}
	return 0;
}

/*
 * The buffered twin of a file's descriptor, reopened through /proc/self/fd
 * (the same inode, without O_DIRECT). Under files_lock: readers of
 * different threads may ask at once; the file cannot be closed meanwhile
 * (the log's readers hold segments_rw across the read).
 */
static int
io_cached_fd(struct log_io *io, uint32_t file)
{
	char path[64];
	int fd;

	pthread_mutex_lock(&io->files_lock);
	fd = io->cached_fds[file];
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", io_fd(io, file));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			io->cached_fds[file] = fd;
		} else {
			fd = -errno;
		}
	}
	pthread_mutex_unlock(&io->files_lock);
	return fd;
}

int
log_io_pread_cached(struct log_io *io, uint32_t file, void *buf, uint32_t size,
		    uint64_t offset)
{
	int fd = io_cached_fd(io, file);
	uint32_t done = 0;

	if (fd < 0)
		return fd;
	while (done < size) {
		ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += (uint32_t)n;
	}
	return 0;
}

void
log_io_prefetch(struct log_io *io, uint32_t file, uint64_t offset, uint64_t size)
{
	int fd = io_cached_fd(io, file);

	if (fd >= 0)
		(void)posix_fadvise(fd, (off_t)offset, (off_t)size, POSIX_FADV_WILLNEED);
}

int
log_io_pwrite(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
	      uint64_t offset)
{
	int fd = io_fd(io, file);
	uint32_t done = 0;

	while (done < size) {
		ssize_t n = pwrite(fd, (const char *)buf + done, size - done,
				   (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (uint32_t)n;
	}
	return 0;
}

int
log_io_fsync(struct log_io *io, uint32_t file)
{
	return fdatasync(io_fd(io, file)) == 0 ? 0 : -errno;
}

int
log_io_write_submit(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
		    uint64_t offset, bool dsync, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_write(sqe, io_fd(io, file), buf, size, offset);
	if (dsync)
		sqe->rw_flags = RWF_DSYNC;
	io_uring_sqe_set_data64(sqe, tag);
	io->queued++;
	return 0;
}

int
log_io_sync_submit(struct log_io *io, uint32_t file, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_fsync(sqe, io_fd(io, file), IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, tag);
	io->queued++;
	return 0;
}

uint32_t
log_io_reap(struct log_io *io, struct log_io_done *done, uint32_t count, uint64_t wait_ns)
{
	struct io_uring_cqe *cqes[LOG_IO_INFLIGHT_MAX];
	uint32_t got;

	if (io->queued != 0) {
		io_uring_submit(&io->ring);
		io->queued = 0;
	}
	count = (uint32_t)min_u64(count, LOG_IO_INFLIGHT_MAX);
	got = io_uring_peek_batch_cqe(&io->ring, cqes, count);
	if (got == 0 && wait_ns != 0) {
		struct __kernel_timespec ts = {
			.tv_sec = (long long)(wait_ns / 1000000000u),
			.tv_nsec = (long long)(wait_ns % 1000000000u),
		};
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe_timeout(&io->ring, &cqe, &ts) == 0)
			got = io_uring_peek_batch_cqe(&io->ring, cqes, count);
	}
	for (uint32_t i = 0; i < got; i++) {
		done[i].tag = io_uring_cqe_get_data64(cqes[i]);
		done[i].result = cqes[i]->res;
	}
	io_uring_cq_advance(&io->ring, got);
	return got;
}

uint64_t
log_io_now_ns(struct log_io *io)
{
	(void)io;
	return clock_real_ns();
}

uint64_t
log_io_random_id(struct log_io *io)
{
	uint64_t id = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	(void)io;
	if (fd >= 0) {
		if (read(fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
			id = 0;
		close(fd);
	}
	return id != 0 ? id : clock_real_ns() ^ ((uint64_t)getpid() << 32);
}
