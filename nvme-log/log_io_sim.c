/*
 * log_io_sim.c - the seeded simulated disk (see log_io_sim.h for the fault
 * model). Everything is in memory and deterministic for a seed; a mutex
 * makes the synchronous calls safe from any thread, like the real backend.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "common/base.h"
#include "nvme-log/log_format.h"
#include "nvme-log/log_io.h"
#include "nvme-log/log_io_sim.h"

#define SIM_FILES_MAX 256u
#define SIM_HANDLES_MAX 1024u
#define SIM_NAME_SIZE 64u
#define SIM_HOLD_WAIT_NS 1000000ull  /* A reap on a held disk waits at most this long. */

struct sim_file {
	bool exists;
	char name[SIM_NAME_SIZE];
	uint8_t *vol;
	uint8_t *dur;
	uint8_t *dirty;            /* One flag per sector. */
	uint64_t size;             /* Volatile size. */
	uint64_t dur_size;
	uint64_t cap;
};

struct sim_op {
	uint64_t tag;
	int32_t result;
	uint32_t file;             /* Handle. */
	uint64_t offset;
	uint32_t size;
	uint64_t seq;              /* Submission order. */
	bool dsync;
	bool sync;
};

struct log_io {
	pthread_mutex_t lock;
	uint64_t rng;
	uint64_t clock_ticks;
	uint64_t ops;
	uint64_t fail_at;          /* Op number that fails, 0 = none. */
	int fail_err;
	bool full;
	bool crashed;
	bool crash_at_remove;      /* log_io_sim_crash_at_remove(). */
	uint64_t crash_at;         /* Power is lost before this op (log_io_sim_crash_nth), 0 none. */
	bool held;                 /* log_io_sim_hold: queued ops do not complete. */
	struct sim_file files[SIM_FILES_MAX];
	int32_t handles[SIM_HANDLES_MAX]; /* File index, -1 when free. */
	struct sim_op queue[LOG_IO_INFLIGHT_MAX];
	uint32_t queued;
	uint64_t op_seq;
};

static uint64_t
sim_rand(struct log_io *io)
{
	uint64_t z = (io->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

int
log_io_sim_create(uint64_t seed, struct log_io **io_out)
{
	struct log_io *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return -ENOMEM;
	pthread_mutex_init(&io->lock, NULL);
	io->rng = seed;
	for (uint32_t i = 0; i < SIM_HANDLES_MAX; i++)
		io->handles[i] = -1;
	*io_out = io;
	return 0;
}

static void
file_free(struct sim_file *f)
{
	free(f->vol);
	free(f->dur);
	free(f->dirty);
	memset(f, 0, sizeof(*f));
}

void
log_io_sim_destroy(struct log_io *io)
{
	for (uint32_t i = 0; i < SIM_FILES_MAX; i++)
		file_free(&io->files[i]);
	pthread_mutex_destroy(&io->lock);
	free(io);
}

/* The real backend's entry point has no meaning here: sim users pass config.io. */
int
log_io_default_open(const char *dir_path, struct log_io **io_out)
{
	(void)dir_path;
	(void)io_out;
	return -ENOTSUP;
}

void
log_io_default_close(struct log_io *io)
{
	(void)io;
}

void
log_io_sim_fail_nth(struct log_io *io, uint64_t nth, int err)
{
	assert(nth > 0);
	assert(err < 0);
	pthread_mutex_lock(&io->lock);
	io->fail_at = io->ops + nth;
	io->fail_err = err;
	pthread_mutex_unlock(&io->lock);
}

void
log_io_sim_set_full(struct log_io *io, bool full)
{
	pthread_mutex_lock(&io->lock);
	io->full = full;
	pthread_mutex_unlock(&io->lock);
}

uint64_t
log_io_sim_op_count(const struct log_io *io)
{
	return io->ops;
}

/* Counts an operation and returns the error it must fail with, or 0. */
int
log_io_space_free(struct log_io *io, uint64_t *bytes_out)
{
	(void)io;
	*bytes_out = UINT64_MAX;  /* The simulated disk fails writes with ENOSPC by itself. */
	return 0;
}

static void sim_crash_locked(struct log_io *io);

static int
sim_op_fault(struct log_io *io, bool is_write)
{
	io->ops++;
	if (io->crash_at != 0 && io->ops == io->crash_at)
		sim_crash_locked(io);
	if (io->crashed)
		return -EIO;
	if (io->fail_at != 0 && io->ops == io->fail_at)
		return io->fail_err;
	if (io->full && is_write)
		return -ENOSPC;
	return 0;
}

static int
file_find(struct log_io *io, const char *name)
{
	for (uint32_t i = 0; i < SIM_FILES_MAX; i++) {
		if (io->files[i].exists && strcmp(io->files[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static struct sim_file *
handle_file(struct log_io *io, uint32_t handle)
{
	assert(handle < SIM_HANDLES_MAX);
	assert(io->handles[handle] >= 0);
	return &io->files[io->handles[handle]];
}

static int
file_create(struct log_io *io, const char *name)
{
	for (uint32_t i = 0; i < SIM_FILES_MAX; i++) {
		struct sim_file *f = &io->files[i];

		if (f->exists)
			continue;
		memset(f, 0, sizeof(*f));
		f->exists = true;
		strncpy(f->name, name, SIM_NAME_SIZE - 1);
		return (int)i;
	}
	return -ENOSPC;
}

static int
sim_open(struct log_io *io, const char *name, uint32_t flags, uint32_t *file_out)
{
	int index = file_find(io, name);
	int err = 0;

	if (index >= 0 && (flags & LOG_IO_FILE_CREATE))
		return -EEXIST;
	if (index < 0 && !(flags & (LOG_IO_FILE_CREATE | LOG_IO_FILE_TRUNC)))
		return -ENOENT;
	if (index < 0 && (err = sim_op_fault(io, true)) != 0)
		return err;
	if (index < 0)
		index = file_create(io, name);
	if (index < 0)
		return index;
	if (flags & LOG_IO_FILE_TRUNC) {
		io->files[index].size = 0;
		io->files[index].dur_size = 0;
	}
	for (uint32_t h = 0; h < SIM_HANDLES_MAX; h++) {
		if (io->handles[h] < 0) {
			io->handles[h] = index;
			*file_out = h;
			return 0;
		}
	}
	return -EMFILE;
}

int
log_io_file_open(struct log_io *io, const char *name, uint32_t flags, uint32_t *file_out)
{
	int err;

	pthread_mutex_lock(&io->lock);
	err = io->crashed ? -EIO : sim_open(io, name, flags, file_out);
	pthread_mutex_unlock(&io->lock);
	return err;
}

void
log_io_file_close(struct log_io *io, uint32_t file)
{
	pthread_mutex_lock(&io->lock);
	assert(io->handles[file] >= 0);
	io->handles[file] = -1;
	pthread_mutex_unlock(&io->lock);
}

int
log_io_file_size(struct log_io *io, uint32_t file, uint64_t *size_out)
{
	pthread_mutex_lock(&io->lock);
	*size_out = handle_file(io, file)->size;
	pthread_mutex_unlock(&io->lock);
	return 0;
}

int
log_io_file_remove(struct log_io *io, const char *name)
{
	int index;
	int err = 0;

	pthread_mutex_lock(&io->lock);
	index = file_find(io, name);
	if (index >= 0 && io->crash_at_remove)
		sim_crash_locked(io);
	if (index < 0)
		err = -ENOENT;
	else if (io->crashed)
		err = -EIO;
	else
		file_free(&io->files[index]);
	pthread_mutex_unlock(&io->lock);
	return err;
}

int
log_io_file_rename(struct log_io *io, const char *from, const char *to)
{
	int index;
	int old;
	int err = 0;

	pthread_mutex_lock(&io->lock);
	index = file_find(io, from);
	old = file_find(io, to);
	err = index < 0 ? -ENOENT : sim_op_fault(io, false);
	if (err == 0) {
		if (old >= 0)
			file_free(&io->files[old]);
		strncpy(io->files[index].name, to, SIM_NAME_SIZE - 1);
	}
	pthread_mutex_unlock(&io->lock);
	return err;
}

int
log_io_dir_list(struct log_io *io, int (*fn)(void *arg, const char *name), void *arg)
{
	char names[SIM_FILES_MAX][SIM_NAME_SIZE];
	uint32_t count = 0;
	int rc = 0;

	pthread_mutex_lock(&io->lock);
	for (uint32_t i = 0; i < SIM_FILES_MAX; i++) {
		if (io->files[i].exists)
			memcpy(names[count++], io->files[i].name, SIM_NAME_SIZE);
	}
	pthread_mutex_unlock(&io->lock);
	for (uint32_t i = 0; i < count && rc == 0; i++)
		rc = fn(arg, names[i]);
	return rc;
}

int
log_io_dir_sync(struct log_io *io)
{
	int err;

	pthread_mutex_lock(&io->lock);
	err = sim_op_fault(io, false);
	pthread_mutex_unlock(&io->lock);
	return err;
}

static int
file_reserve(struct sim_file *f, uint64_t size)
{
	uint64_t cap = f->cap == 0 ? LOG_BLOCK_SIZE : f->cap;
	uint8_t *vol;
	uint8_t *dur;
	uint8_t *dirty;

	if (size <= f->cap)
		return 0;
	while (cap < size)
		cap *= 2;
	vol = realloc(f->vol, cap);
	dur = vol == NULL ? NULL : realloc(f->dur, cap);
	dirty = dur == NULL ? NULL : realloc(f->dirty, cap / LOG_SECTOR_SIZE);
	if (vol != NULL)
		f->vol = vol;
	if (dur != NULL)
		f->dur = dur;
	if (dirty == NULL)
		return -ENOMEM;
	f->dirty = dirty;
	memset(f->vol + f->cap, 0, cap - f->cap);
	memset(f->dur + f->cap, 0, cap - f->cap);
	memset(f->dirty + f->cap / LOG_SECTOR_SIZE, 0, (cap - f->cap) / LOG_SECTOR_SIZE);
	f->cap = cap;
	return 0;
}

static int
file_write(struct sim_file *f, const void *buf, uint32_t size, uint64_t offset)
{
	int err = file_reserve(f, align_up(offset + size, LOG_SECTOR_SIZE));

	if (err != 0)
		return err;
	/* A file never written has no image yet (vol NULL): NULL + 0 is undefined too. */
	if (size > 0)
		memcpy(f->vol + offset, buf, size);
	for (uint64_t s = offset / LOG_SECTOR_SIZE; s * LOG_SECTOR_SIZE < offset + size; s++)
		f->dirty[s] = 1;
	f->size = max_u64(f->size, offset + size);
	return 0;
}

/* Makes the sectors of [offset, offset + size) durable (all of the file if size == 0). */
static void
file_persist(struct sim_file *f, uint64_t offset, uint64_t size)
{
	uint64_t end = size == 0 ? f->cap : align_up(offset + size, LOG_SECTOR_SIZE);

	for (uint64_t s = offset / LOG_SECTOR_SIZE; s * LOG_SECTOR_SIZE < end; s++) {
		if (!f->dirty[s])
			continue;
		memcpy(f->dur + s * LOG_SECTOR_SIZE, f->vol + s * LOG_SECTOR_SIZE, LOG_SECTOR_SIZE);
		f->dirty[s] = 0;
	}
	f->dur_size = size == 0 ? f->size : max_u64(f->dur_size, min_u64(f->size, end));
}

int
log_io_pread(struct log_io *io, uint32_t file, void *buf, uint32_t size, uint64_t offset)
{
	struct sim_file *f;
	int err;

	pthread_mutex_lock(&io->lock);
	f = handle_file(io, file);
	err = sim_op_fault(io, false);
	if (err == 0 && offset + size > f->size)
		err = -ENODATA;
	if (err == 0 && size > 0)
		memcpy(buf, f->vol + offset, size);
	pthread_mutex_unlock(&io->lock);
	return err;
}

/* The simulated disk has no page cache: its reads already come from memory. */
int
log_io_pread_cached(struct log_io *io, uint32_t file, void *buf, uint32_t size,
		    uint64_t offset)
{
	return log_io_pread(io, file, buf, size, offset);
}

void
log_io_prefetch(struct log_io *io, uint32_t file, uint64_t offset, uint64_t size)
{
	(void)io;
	(void)file;
	(void)offset;
	(void)size;
}

int
log_io_pwrite(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
	      uint64_t offset)
{
	int err;

	pthread_mutex_lock(&io->lock);
	err = sim_op_fault(io, true);
	if (err == 0)
		err = file_write(handle_file(io, file), buf, size, offset);
	pthread_mutex_unlock(&io->lock);
	return err;
}

int
log_io_fsync(struct log_io *io, uint32_t file)
{
	int err;

	pthread_mutex_lock(&io->lock);
	err = sim_op_fault(io, false);
	if (err == 0)
		file_persist(handle_file(io, file), 0, 0);
	pthread_mutex_unlock(&io->lock);
	return err;
}

int
log_io_write_submit(struct log_io *io, uint32_t file, const void *buf, uint32_t size,
		    uint64_t offset, bool dsync, uint64_t tag)
{
	struct sim_op *op;
	int err = 0;

	pthread_mutex_lock(&io->lock);
	if (io->queued == LOG_IO_INFLIGHT_MAX) {
		pthread_mutex_unlock(&io->lock);
		return -EBUSY;
	}
	op = &io->queue[io->queued++];
	*op = (struct sim_op){ .tag = tag, .file = file, .offset = offset, .size = size,
			       .dsync = dsync, .seq = ++io->op_seq };
	/* The data reaches the volatile image now; durability waits for completion. */
	err = sim_op_fault(io, true);
	if (err == 0)
		err = file_write(handle_file(io, file), buf, size, offset);
	op->result = err != 0 ? err : (int32_t)size;
	pthread_mutex_unlock(&io->lock);
	return 0;
}

int
log_io_sync_submit(struct log_io *io, uint32_t file, uint64_t tag)
{
	struct sim_op *op;

	pthread_mutex_lock(&io->lock);
	if (io->queued == LOG_IO_INFLIGHT_MAX) {
		pthread_mutex_unlock(&io->lock);
		return -EBUSY;
	}
	op = &io->queue[io->queued++];
	*op = (struct sim_op){ .tag = tag, .file = file, .sync = true, .seq = ++io->op_seq };
	op->result = sim_op_fault(io, false);
	pthread_mutex_unlock(&io->lock);
	return 0;
}

static bool
sync_has_elders(const struct log_io *io, uint32_t pick)
{
	for (uint32_t i = 0; i < io->queued; i++) {
		if (i != pick && io->queue[i].seq < io->queue[pick].seq)
			return true;
	}
	return false;
}

/*
 * Completes queued ops in a seeded random order. Durability happens at
 * completion, so a crash before it leaves the sectors to chance.
 */
uint32_t
log_io_reap(struct log_io *io, struct log_io_done *done, uint32_t count, uint64_t wait_ns)
{
	uint32_t got = 0;

	pthread_mutex_lock(&io->lock);
	if (io->held && !io->crashed) {
		pthread_mutex_unlock(&io->lock);
		nanosleep(&(struct timespec){ .tv_nsec = (long)min_u64(wait_ns, SIM_HOLD_WAIT_NS) },
			  NULL);
		return 0;
	}
	/*
	 * Each call completes a seeded random subset, so I/O stays in flight
	 * across steps. After a crash everything queued fails with -EIO.
	 */
	for (uint32_t n = io->queued; n > 0 && got < count; n--) {
		uint32_t pick = (uint32_t)(sim_rand(io) % io->queued);
		struct sim_op op = io->queue[pick];

		if (!io->crashed && (sim_rand(io) & 1))
			continue;
		/* Conservative: a sync completes only after everything queued before it. */
		if (!io->crashed && op.sync && sync_has_elders(io, pick))
			continue;
		if (io->crashed)
			op.result = -EIO;
		io->queue[pick] = io->queue[--io->queued];
		if (op.result >= 0) {
			struct sim_file *f = handle_file(io, op.file);

			if (op.sync)
				file_persist(f, 0, 0);
			else if (op.dsync)
				file_persist(f, op.offset, op.size);
		}
		done[got].tag = op.tag;
		done[got].result = op.result;
		got++;
	}
	pthread_mutex_unlock(&io->lock);
	return got;
}

void
log_io_sim_hold(struct log_io *io, bool hold)
{
	pthread_mutex_lock(&io->lock);
	io->held = hold;
	pthread_mutex_unlock(&io->lock);
}

uint32_t
log_io_sim_queued(struct log_io *io)
{
	uint32_t queued;

	pthread_mutex_lock(&io->lock);
	queued = io->queued;
	pthread_mutex_unlock(&io->lock);
	return queued;
}

/* One crash mode per crash: lose every unsynced sector, keep them all, or a random mix. */
static void
crash_file(struct log_io *io, struct sim_file *f, uint32_t mode)
{
	for (uint64_t s = 0; s < f->cap / LOG_SECTOR_SIZE; s++) {
		bool lands;

		if (!f->dirty[s])
			continue;
		lands = mode == 1 || (mode == 2 && (sim_rand(io) & 1));
		if (lands) {
			memcpy(f->dur + s * LOG_SECTOR_SIZE, f->vol + s * LOG_SECTOR_SIZE,
			       LOG_SECTOR_SIZE);
			f->dur_size = max_u64(f->dur_size, min_u64(f->size, (s + 1) * LOG_SECTOR_SIZE));
		}
		f->dirty[s] = 0;
	}
	memcpy(f->vol, f->dur, f->cap);
	f->size = f->dur_size;
}

/* Under io->lock. */
static void
sim_crash_locked(struct log_io *io)
{
	uint32_t mode = (uint32_t)(sim_rand(io) % 3);

	for (uint32_t i = 0; i < SIM_FILES_MAX; i++) {
		if (io->files[i].exists && io->files[i].cap != 0)
			crash_file(io, &io->files[i], mode);
	}
	io->crashed = true;
	io->crash_at_remove = false;
	io->crash_at = 0;
}

void
log_io_sim_crash(struct log_io *io)
{
	pthread_mutex_lock(&io->lock);
	sim_crash_locked(io);
	pthread_mutex_unlock(&io->lock);
}

void
log_io_sim_crash_nth(struct log_io *io, uint64_t nth)
{
	assert(nth > 0);
	pthread_mutex_lock(&io->lock);
	io->crash_at = io->ops + nth;
	pthread_mutex_unlock(&io->lock);
}

void
log_io_sim_crash_at_remove(struct log_io *io)
{
	pthread_mutex_lock(&io->lock);
	io->crash_at_remove = true;
	pthread_mutex_unlock(&io->lock);
}

void
log_io_sim_restart(struct log_io *io)
{
	pthread_mutex_lock(&io->lock);
	for (uint32_t h = 0; h < SIM_HANDLES_MAX; h++)
		assert(io->handles[h] < 0);
	io->crashed = false;
	io->queued = 0;
	io->fail_at = 0;
	io->full = false;
	pthread_mutex_unlock(&io->lock);
}

int
log_io_sim_corrupt(struct log_io *io, const char *prefix, char *name_out,
		   uint64_t *offset_out)
{
	uint32_t candidates[SIM_FILES_MAX];
	uint32_t count = 0;
	int err = -ENOENT;

	pthread_mutex_lock(&io->lock);
	for (uint32_t i = 0; i < SIM_FILES_MAX; i++) {
		struct sim_file *f = &io->files[i];

		if (f->exists && f->dur_size != 0 && strncmp(f->name, prefix, strlen(prefix)) == 0)
			candidates[count++] = i;
	}
	for (uint32_t tries = 0; tries < 8 && count > 0 && err != 0; tries++) {
		struct sim_file *f = &io->files[candidates[sim_rand(io) % count]];
		uint64_t start = sim_rand(io) % f->dur_size;

		for (uint64_t k = 0; k < f->dur_size && err != 0; k++) {
			uint64_t off = (start + k) % f->dur_size;

			if (f->dur[off] == 0)
				continue;
			f->dur[off] ^= (uint8_t)(1u << (sim_rand(io) % 8));
			f->vol[off] = f->dur[off];
			memcpy(name_out, f->name, SIM_NAME_SIZE);
			*offset_out = off;
			err = 0;
		}
	}
	pthread_mutex_unlock(&io->lock);
	return err;
}

/* Deterministic time: 1 ms per call from a fixed epoch. */
uint64_t
log_io_now_ns(struct log_io *io)
{
	uint64_t now;

	pthread_mutex_lock(&io->lock);
	now = 1700000000000000000ull + ++io->clock_ticks * 1000000ull;
	pthread_mutex_unlock(&io->lock);
	return now;
}

uint64_t
log_io_random_id(struct log_io *io)
{
	uint64_t id;

	pthread_mutex_lock(&io->lock);
	id = sim_rand(io) | 1;
	pthread_mutex_unlock(&io->lock);
	return id;
}
