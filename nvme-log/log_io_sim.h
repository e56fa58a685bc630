/*
 * log_io_sim.h - the simulated disk behind log_io.h (log_io_sim.c), for
 * seeded tests. Private to nvme-log/ and its tests.
 *
 * Each file has a volatile image (what reads see) and a durable image
 * (what survives power loss), with a dirty flag per 512 B sector. A write
 * changes the volatile image; fsync, or completion of an RWF_DSYNC write,
 * copies its sectors to the durable image. log_io_sim_crash() is power
 * loss: every dirty sector independently either reached the medium or did
 * not (so writes are torn at 512 B and land out of order), chosen by the
 * seed; then the volatile image is the durable one. Completions of queued
 * writes come back in seeded random order.
 *
 * Simplification: directory operations (create, rename, remove) are
 * durable at once; file sizes follow fsync.
 */
#ifndef SLUICE_LOG_IO_SIM_H
#define SLUICE_LOG_IO_SIM_H

#include <stdbool.h>
#include <stdint.h>

struct log_io;

int log_io_sim_create(uint64_t seed, struct log_io **io_out);
void log_io_sim_destroy(struct log_io *io);

/* The `nth` I/O operation from now (1 = the next) fails with `err` (-EIO, -ENOSPC). */
void log_io_sim_fail_nth(struct log_io *io, uint64_t nth, int err);
/* While full, every write and file creation fails with -ENOSPC. */
void log_io_sim_set_full(struct log_io *io, bool full);
/* Power loss now: unsynced sectors land or not (seeded); every later op fails with -EIO. */
void log_io_sim_crash(struct log_io *io);
/* Power loss just before the `nth` I/O operation from now (it fails, as every later op). */
void log_io_sim_crash_nth(struct log_io *io, uint64_t nth);
/* Power loss just before the next file removal (which fails, as every later op). */
void log_io_sim_crash_at_remove(struct log_io *io);
/* Power back: I/O works again on the durable images (handles must all be closed). */
void log_io_sim_restart(struct log_io *io);
/*
 * Bitrot: flips one bit of a random non-zero byte in the durable image of a
 * random file whose name starts with `prefix`. Stores the file offset.
 * Returns 0, or -ENOENT when no such byte exists.
 */
int log_io_sim_corrupt(struct log_io *io, const char *prefix, char *name_out,
		       uint64_t *offset_out);
/*
 * A stalled disk: while held, queued writes and syncs do not complete (the writer's
 * windows stay in flight; synchronous calls go on). A reap meanwhile waits up to 1 ms
 * of its wait instead of spinning. Released, they complete as before.
 */
void log_io_sim_hold(struct log_io *io, bool hold);
/* Queued operations not yet completed. */
uint32_t log_io_sim_queued(struct log_io *io);
/* I/O operations performed so far (each sync call and each queued op counts one). */
uint64_t log_io_sim_op_count(const struct log_io *io);

#endif /* SLUICE_LOG_IO_SIM_H */
