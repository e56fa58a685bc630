/*
 * log_writer: the writer's policies, driven step by step over the
 * simulated disk (deterministic, no threads): group commit batches many
 * submissions into one window; back-pressure when a producer's pool is in
 * flight; windows close on bytes and on time; segments roll over and are
 * sealed with an index file; shard close, stream delete, retention trim,
 * seek by time and read limits; ENOSPC fails fast then recovers; EIO is
 * fail-stop and a reopen recovers.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "nvme-log/log_format.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"
#include "nvme-log/log_io_sim.h"
#include "tests/nvme-log/log_test_util.h"

#define DATA 100u

struct fixture {
	struct log_io *io;
	struct log *log;
	struct log_producer *p;
	struct log_config c;
	uint64_t now;
	uint64_t next[8];          /* Next seq per shard index (as the test expects it). */
	uint32_t completed;
	uint32_t errors;
	int32_t last_error;
};

static struct fixture f;

static uint64_t
sid(uint32_t s)
{
	return LOG_SHARD_ID(5 + s / 4, s % 4);
}

static void
fx_open(void)
{
	cr_assert_eq(log_open(&f.c, &f.log), 0);
	cr_assert_eq(log_producer_open(f.log, &f.p), 0);
}

static void
fx_close(void)
{
	log_producer_close(f.p);
	log_close(f.log);
}

static void
setup(void)
{
	memset(&f, 0, sizeof(f));
	diag_level_set(DIAG_ERROR);
	cr_assert_eq(log_io_sim_create(42, &f.io), 0);
	log_config_default(&f.c);
	f.c.dir_path = "writer";
	f.c.io = f.io;
	f.c.writer_thread = false;
	f.c.segment_size = 1u << 20;
	f.c.batch_size = 4096;
	f.c.commit_window_bytes = 16u << 10;
	f.c.commit_window_us = 50;
	f.c.producers_max = 2;
	f.c.batches_per_producer = 8;
	f.c.shards_max = 32;
	f.now = 1000000000;
	fx_open();
}

static void
teardown(void)
{
	fx_close();
	log_io_sim_destroy(f.io);
}

TestSuite(log_writer, .init = setup, .fini = teardown, .timeout = 30);

/* One batch of `n` records for shard s, arrival `arrival_ns` + seq. */
static void
submit(uint32_t s, uint32_t n, uint64_t arrival_ns)
{
	struct log_batch *b = log_batch_get(f.p);

	cr_assert_not_null(b, "pool empty");
	for (uint32_t k = 0; k < n; k++) {
		uint8_t data[DATA];
		char key[48];
		struct log_record_in rec;

		test_record_make(sid(s), f.next[s] + k, DATA, data, key, &rec);
		if (arrival_ns != 0)
			rec.arrival_ns = arrival_ns + k;
		cr_assert_eq(log_batch_add(b, &rec), 0);
	}
	cr_assert_eq(log_batch_submit(f.p, b, sid(s), s), 0);
	f.next[s] += n;
}

static void
poll_all(void)
{
	struct log_completion c[16];
	uint32_t n;

	while ((n = log_completions_poll(f.p, c, 16)) != 0) {
		for (uint32_t i = 0; i < n; i++) {
			f.completed++;
			if (c[i].error != 0) {
				f.errors++;
				f.last_error = c[i].error;
			}
		}
	}
}

/*
 * Steps with time advancing by `dt` until no work is left (the simulated
 * disk completes a random half of the queued I/O per step, so idle means
 * many steps in a row without work).
 */
static void
settle_steps(uint64_t dt)
{
	uint32_t idle = 0;

	for (uint32_t i = 0; i < 10000 && idle < 40; i++) {
		f.now += dt;
		idle = log_writer_step(f.log, f.now) == 0 ? idle + 1 : 0;
	}
}

static void
settle(uint64_t dt)
{
	settle_steps(dt);
	poll_all();
}

static uint64_t
durable(uint32_t s)
{
	struct log_shard_info info;

	cr_assert_eq(log_shard_info(f.log, sid(s), &info), 0);
	return info.seq_durable;
}

Test(log_writer, group_commit_batches_submissions)
{
	struct log_stats st0;
	struct log_stats st;

	submit(0, 1, 0);       /* The first window also writes the segment header block. */
	settle(100000);
	log_stats_read(f.log, &st0);
	for (uint32_t i = 0; i < 8; i++)
		submit(i % 3, 2, 0);
	settle(100000);
	log_stats_read(f.log, &st);
	cr_assert_eq(f.completed, 9);
	cr_assert_eq(f.errors, 0);
	cr_assert_eq(st.commits - st0.commits, 1, "8 small batches ready together: one window");
	cr_assert_eq(st.batches_appended - st0.batches_appended, 8);
	cr_assert_eq(st.bytes_written - st0.bytes_written, 4096,
		     "and one 4 KiB block, whatever the shard count");
	cr_assert_eq(durable(0), 7);
	cr_assert_eq(durable(1), 6);
	cr_assert_eq(durable(2), 4);
}

Test(log_writer, back_pressure_when_the_pool_is_in_flight)
{
	struct log_batch *b;

	for (uint32_t i = 0; i < 8; i++)
		submit(0, 1, 0);
	cr_assert_null(log_batch_get(f.p), "all 8 batches in flight");
	settle(100000);
	cr_assert_eq(f.completed, 8);
	b = log_batch_get(f.p);
	cr_assert_not_null(b, "completions return batches to the pool");
	log_batch_put(f.p, b);
}

Test(log_writer, window_waits_its_time_then_commits)
{
	struct log_stats st;

	submit(0, 1, 0);
	cr_assert_geq(log_writer_step(f.log, f.now), 1);
	poll_all();
	log_stats_read(f.log, &st);
	cr_assert_eq(st.commits, 0, "the window is open for commit_window_us");
	cr_assert_eq(durable(0), 0, "nothing readable before durable");
	settle(60000);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.commits, 1);
	cr_assert_eq(durable(0), 1);
}

Test(log_writer, window_closes_on_bytes)
{
	struct log_stats st;

	/* 8 batches of ~3.6 KiB with a 16 KiB window: at least two windows, no time passing. */
	for (uint32_t i = 0; i < 8; i++)
		submit(0, 30, 0);
	for (uint32_t i = 0; i < 50; i++)
		log_writer_step(f.log, f.now);
	poll_all();
	log_stats_read(f.log, &st);
	cr_assert_geq(st.commits, 1, "a full window goes without waiting for time");
	cr_assert_geq(durable(0), 120);
	cr_assert_lt(durable(0), 240, "the rest waits for its window's time");
	settle(60000);
	cr_assert_eq(durable(0), 240);
}

static int
count_idx(void *arg, const char *name)
{
	size_t len = strlen(name);

	if (len > 4 && strcmp(name + len - 4, ".idx") == 0)
		(*(uint32_t *)arg)++;
	return 0;
}

Test(log_writer, rolls_over_and_seals_with_an_index)
{
	struct log_reader *r;
	struct test_collect col = { .shard_id = sid(1), .data_size = DATA };
	uint32_t idx_files = 0;
	uint64_t seq = 0;

	/* ~3.5 MiB over 1 MiB segments. */
	for (uint32_t i = 0; i < 1000; i++) {
		submit(1, 30, 0);
		settle(100000);
	}
	cr_assert_eq(f.errors, 0);
	log_io_dir_list(f.io, count_idx, &idx_files);
	cr_assert_geq(idx_files, 3, "sealed segments have index files");
	fx_close();
	fx_open();
	cr_assert_eq(durable(1), 30000);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	while (seq < 30000)
		cr_assert_gt(log_read(r, sid(1), seq, 5000, 1u << 30, test_collect_fn, &col, &seq), 0);
	log_reader_close(r);
	cr_assert_eq(col.count, 30000);
	cr_assert_eq(col.bad, 0);
	free(col.seqs);
}

static int
stop_after_three(void *arg, const struct log_record_out *r)
{
	uint32_t *n = arg;

	(void)r;
	return ++*n == 3 ? 1 : 0;
}

static int
abort_at_once(void *arg, const struct log_record_out *r)
{
	(void)arg;
	(void)r;
	return -ECANCELED;
}

Test(log_writer, read_limits)
{
	struct log_reader *r;
	struct test_collect col = { .shard_id = sid(0), .data_size = DATA };
	uint32_t n = 0;
	uint64_t next;

	submit(0, 20, 0);
	settle(100000);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_read(r, sid(0), 5, 4, 1u << 20, test_collect_fn, &col, &next), 4);
	cr_assert_eq(next, 9);
	cr_assert_eq(log_read(r, sid(0), 0, 100, 250, test_collect_fn, &col, &next), 2,
		     "bytes_max 250 with 100 B records: 2 (the first always goes)");
	cr_assert_eq(log_read(r, sid(0), 0, 100, 1, test_collect_fn, &col, &next), 1);
	cr_assert_eq(log_read(r, sid(0), 0, 100, 1u << 20, stop_after_three, &n, &next), 3);
	cr_assert_eq(next, 3);
	cr_assert_eq(log_read(r, sid(0), 0, 100, 1u << 20, abort_at_once, NULL, &next), -ECANCELED);
	cr_assert_eq(log_read(r, sid(0), 20, 100, 1u << 20, test_collect_fn, &col, &next), 0);
	cr_assert_eq(col.bad, 0);
	log_reader_close(r);
	free(col.seqs);
}

Test(log_writer, seek_by_arrival_time)
{
	struct log_reader *r;
	uint64_t seq;

	submit(2, 10, 5000);   /* arrivals 5000 .. 5009 */
	settle(100000);
	submit(2, 10, 9000);   /* arrivals 9000 .. 9009 */
	settle(100000);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_seek_time(r, sid(2), 0, &seq), 0);
	cr_assert_eq(seq, 0);
	cr_assert_eq(log_seek_time(r, sid(2), 5004, &seq), 0);
	cr_assert_eq(seq, 4);
	cr_assert_eq(log_seek_time(r, sid(2), 6000, &seq), 0);
	cr_assert_eq(seq, 10);
	cr_assert_eq(log_seek_time(r, sid(2), 9009, &seq), 0);
	cr_assert_eq(seq, 19);
	cr_assert_eq(log_seek_time(r, sid(2), 9010, &seq), 0);
	cr_assert_eq(seq, 20, "past the newest: the durable end");
	log_reader_close(r);
}

Test(log_writer, shard_close_persists_and_refuses)
{
	struct log_shard_info info;
	uint64_t end;

	submit(0, 5, 0);
	submit(0, 5, 0);
	cr_assert_eq(log_shard_close(f.log, sid(0), &end), 0);
	poll_all();
	cr_assert_eq(end, 9, "batches accepted before the close are durable first");
	cr_assert_eq(f.errors, 0);
	submit(0, 1, 0);
	settle(100000);
	cr_assert_eq(f.last_error, -EPIPE);
	cr_assert_eq(log_shard_close(f.log, sid(7), &end), 0);
	cr_assert_eq(end, UINT64_MAX, "a shard that never had a record");
	fx_close();
	fx_open();
	cr_assert_eq(log_shard_info(f.log, sid(0), &info), 0);
	cr_assert(info.closed);
	cr_assert_eq(info.seq_durable, 10);
	cr_assert_eq(log_shard_info(f.log, sid(7), &info), 0);
	cr_assert(info.closed);
	f.errors = 0;
	submit(0, 1, 0);
	settle(100000);
	cr_assert_eq(f.last_error, -EPIPE, "still closed after reopen");
}

Test(log_writer, stream_delete_forgets_its_shards)
{
	struct log_shard_info info;
	struct log_stats st;

	submit(0, 5, 0);        /* stream 5 */
	submit(4, 5, 0);        /* stream 6 */
	settle(100000);
	cr_assert_eq(log_stream_delete(f.log, 5), 0);
	cr_assert_eq(log_shard_info(f.log, sid(0), &info), 0);
	cr_assert_eq(info.seq_durable, 0);
	cr_assert_eq(durable(4), 5, "other streams keep their data");
	fx_close();
	fx_open();
	cr_assert_eq(durable(0), 0, "still forgotten after reopen");
	cr_assert_eq(durable(4), 5);
	f.next[0] = 0;
	submit(0, 3, 0);
	settle(100000);
	cr_assert_eq(durable(0), 3, "the shard id starts again at 0");
	fx_close();
	fx_open();
	cr_assert_eq(durable(0), 3);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.corruptions, 0);
}

/* ~2.5 MiB to shard 3 arriving at `old_ns` (segments seal), then a batch at `recent_ns`. */
static void
fill_old_then_recent(uint64_t old_ns, uint64_t recent_ns)
{
	for (uint32_t i = 0; i < 700; i++) {
		submit(3, 30, old_ns);
		settle(100000);
	}
	submit(3, 30, recent_ns);
	settle(100000);
}

Test(log_writer, retention_deletes_old_segments_and_trims)
{
	const uint64_t hour = 3600ull * 1000000000ull;
	struct log_reader *r;
	struct log_shard_info info;
	struct log_stats st;
	struct test_collect col = { .shard_id = sid(3), .data_size = DATA };
	uint64_t next;

	cr_assert_eq(log_retention_set(f.log, 5, 10), -EINVAL);
	cr_assert_eq(log_retention_set(f.log, 5, 8761), -EINVAL);
	cr_assert_eq(log_retention_set(f.log, 5, 48), 0);
	fill_old_then_recent(hour, 60 * hour);
	cr_assert_eq(log_retention_run(f.log, 40 * hour), 0);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.segments_deleted, 0, "48 h retention keeps 39 h old records");
	cr_assert_eq(log_retention_run(f.log, 50 * hour), 0);
	log_stats_read(f.log, &st);
	cr_assert_geq(st.segments_deleted, 1);
	cr_assert_eq(log_shard_info(f.log, sid(3), &info), 0);
	cr_assert_gt(info.seq_trim, 0);
	cr_assert_eq(info.seq_durable, 21030);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_read(r, sid(3), 0, 10, 1u << 20, test_collect_fn, &col, &next), -ERANGE);
	cr_assert_eq(log_read(r, sid(3), info.seq_trim, 10, 1u << 20, test_collect_fn, &col, &next),
		     10);
	log_reader_close(r);
	fx_close();
	fx_open();
	cr_assert_eq(log_shard_info(f.log, sid(3), &info), 0);
	cr_assert_gt(info.seq_trim, 0, "the horizon survives a reopen");
	log_stats_read(f.log, &st);
	cr_assert_eq(st.corruptions, 0, "a trimmed range is not lost data");
	free(col.seqs);
}

static bool
segment_file_exists(uint64_t segment_no)
{
	char name[64];
	uint32_t file;

	log_segment_name(segment_no, "log", name, sizeof(name));
	if (log_io_file_open(f.io, name, 0, &file) != 0)
		return false;
	log_io_file_close(f.io, file);
	return true;
}

/*
 * [log] retention_hour_ms scales only the retention arithmetic: with an hour of 1 s,
 * a 24 h stream keeps its records 24 s. The horizon is durable before any file goes:
 * power lost at the first removal leaves the files, and the reopened log reads them
 * as trimmed (not lost); the next run removes them.
 */
Test(log_writer, retention_expires_at_the_scaled_hour_horizon_first)
{
	const uint64_t second = 1000000000ull;
	struct log_reader *r;
	struct log_shard_info info;
	struct log_shard_info before;
	struct log_stats st;
	struct test_collect col = { .shard_id = sid(3), .data_size = DATA };
	uint64_t next;
	uint64_t oldest_no;

	fx_close();
	f.c.retention_hour_ms = 1000;
	fx_open();
	cr_assert_eq(log_retention_set(f.log, 5, 23), -EINVAL, "hours keep AWS's bounds");
	cr_assert_eq(log_retention_set(f.log, 5, 24), 0);
	fill_old_then_recent(10 * second, 100 * second);
	cr_assert_eq(log_retention_run(f.log, 33 * second), 0);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.segments_deleted, 0, "23 scaled hours old: kept");
	cr_assert_eq(log_shard_info(f.log, sid(3), &info), 0);
	cr_assert_eq(info.seq_trim, 0);

	oldest_no = f.log->segments[0]->segment_no;
	log_io_sim_crash_at_remove(f.io);
	cr_assert_eq(log_retention_run(f.log, 35 * second), 0, "the horizon was stored");
	cr_assert_eq(log_shard_info(f.log, sid(3), &before), 0);
	cr_assert_gt(before.seq_trim, 0, "25 scaled hours old: trimmed");
	cr_assert_lt(before.seq_trim, 21000, "the recent batch is kept");
	fx_close();
	log_io_sim_restart(f.io);
	fx_open();
	cr_assert(segment_file_exists(oldest_no), "power went before the first removal");
	cr_assert_eq(log_shard_info(f.log, sid(3), &info), 0);
	cr_assert_eq(info.seq_trim, before.seq_trim, "the horizon was durable first");
	cr_assert_eq(info.seq_durable, 21030);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.corruptions, 0, "records below the horizon are trimmed, not lost");
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_read(r, sid(3), 0, 10, 1u << 20, test_collect_fn, &col, &next), -ERANGE);
	cr_assert_eq(log_read(r, sid(3), info.seq_trim, 10, 1u << 20, test_collect_fn, &col, &next),
		     10);
	cr_assert_eq(col.seqs[0], info.seq_trim);
	log_reader_close(r);

	cr_assert_eq(log_retention_run(f.log, 35 * second), 0);
	log_stats_read(f.log, &st);
	cr_assert_geq(st.segments_deleted, 1, "the files left behind go at the next run");
	cr_assert(!segment_file_exists(oldest_no));
	cr_assert_eq(log_shard_info(f.log, sid(3), &info), 0);
	cr_assert_eq(info.seq_trim, before.seq_trim);
	free(col.seqs);
}

Test(log_writer, enospc_fails_fast_then_resumes)
{
	log_io_sim_set_full(f.io, true);
	submit(0, 3, 0);
	for (uint32_t i = 0; i < 3; i++)
		log_writer_step(f.log, f.now += 60000);
	poll_all();
	cr_assert_eq(f.last_error, -ENOSPC);
	cr_assert_eq(durable(0), 0);
	submit(0, 3, 0);
	log_writer_step(f.log, f.now);
	poll_all();
	cr_assert_eq(f.errors, 2, "while full, completions come at once");
	log_io_sim_set_full(f.io, false);
	f.next[0] = 0;
	f.errors = 0;
	f.now += 2000000;
	submit(0, 3, 0);
	settle(100000);
	cr_assert_eq(f.errors, 0);
	cr_assert_eq(durable(0), 3, "sequence numbers of failed batches were handed out again");
}

Test(log_writer, eio_is_fail_stop_and_reopen_recovers)
{
	struct log_stats st;

	submit(1, 4, 0);
	settle(100000);
	log_io_sim_fail_nth(f.io, 1, -EIO);
	submit(1, 4, 0);
	settle(100000);
	cr_assert_eq(f.last_error, -EIO);
	log_stats_read(f.log, &st);
	cr_assert(st.failed);
	submit(1, 4, 0);
	cr_assert_lt(log_writer_step(f.log, f.now), 0);
	poll_all();
	cr_assert_eq(f.errors, 2);
	fx_close();
	fx_open();
	cr_assert_eq(durable(1), 4);
	log_stats_read(f.log, &st);
	cr_assert(!st.failed);
}

/*
 * A producer that never asked for its eventfd (a polling dataplane worker) costs
 * no eventfd write on the writer and no read on the poller; once armed, every
 * posting signals it.
 */
Test(log_writer, eventfd_signals_only_once_armed)
{
	uint64_t counter = 0;
	int fd;

	submit(0, 1, 0);
	settle(100000);
	cr_assert_eq(f.completed, 1);
	/* Not armed: the writer did not signal (the eventfd reads empty). */
	cr_assert_eq(read(f.p->event_fd, &counter, sizeof(counter)), -1);
	cr_assert_eq(errno, EAGAIN);
	fd = log_producer_event_fd(f.p);   /* Armed now: the next posting signals. */
	submit(1, 1, 0);
	for (uint32_t i = 0; i < 200; i++) {
		f.now += 100000;
		log_writer_step(f.log, f.now);
	}
	cr_assert_eq(read(fd, &counter, sizeof(counter)), (ssize_t)sizeof(counter),
		     "armed: the posting was signalled");
	cr_assert_geq(counter, 1);
	poll_all();
	cr_assert_eq(f.completed, 2);
}

/* Reopens the log: a fixed window of `fixed_us`, or (0) the adaptive one up to `max_us`. */
static void
fx_reopen_window(uint32_t fixed_us, uint32_t max_us)
{
	fx_close();
	f.c.commit_window_us = fixed_us;
	f.c.commit_window_adaptive_us = max_us;
	f.c.batches_per_producer = 64;   /* Never pool-bound below (one batch per step). */
	fx_open();
}

static struct log_stats
stats_now(void)
{
	struct log_stats st;

	log_stats_read(f.log, &st);
	return st;
}

/*
 * Polls completions, checking each: no error, in submission order per shard
 * without a gap, and readable (durable) when acknowledged.
 */
static void
poll_in_order(uint64_t *acked)
{
	struct log_completion c[16];
	uint32_t n;

	while ((n = log_completions_poll(f.p, c, 16)) != 0) {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t s = (uint32_t)c[i].cookie;

			cr_assert_eq(c[i].error, 0);
			cr_assert_eq(c[i].seq_first, acked[s], "shard %u acked out of order", s);
			acked[s] += c[i].record_count;
			cr_assert_geq(durable(s), acked[s], "acknowledged before durable");
			f.completed++;
		}
	}
}

/* One batch per step of 10 us, `steps` times; returns the largest wait seen. */
static uint64_t
run_back_to_back(uint32_t steps, uint64_t max_ns, uint64_t *acked)
{
	uint64_t seen = 0;

	for (uint32_t i = 0; i < steps; i++) {
		submit(i % 3, 2, 0);
		f.now += 10000;
		cr_assert_geq(log_writer_step(f.log, f.now), 0);
		poll_in_order(acked);
		seen = max_u64(seen, stats_now().window_wait_ns);
		cr_assert_leq(stats_now().window_wait_ns, max_ns, "past the maximum");
	}
	return seen;
}

/*
 * The adaptive window (commit_window_adaptive_us): with a batch arriving every
 * 10 us, each window's first batch arrives while the previous window is on the
 * disk, so the wait doubles up to its maximum (never past it) and windows gather
 * many batches; acknowledgements stay in order and durable. Then lone batches on
 * an idle disk halve it back to 0, after which a batch commits with no time passing.
 */
Test(log_writer, adaptive_window_grows_back_to_back_and_falls_when_idle)
{
	uint64_t acked[8] = { 0 };
	struct log_stats st0;
	struct log_stats st;
	uint64_t prev;

	fx_reopen_window(0, 400);
	cr_assert_eq(stats_now().window_wait_ns, 0, "no wait before any window");
	st0 = stats_now();
	cr_assert_eq(run_back_to_back(400, 400000, acked), 400000, "grew to its maximum");
	settle_steps(100000);
	poll_in_order(acked);
	st = stats_now();
	cr_assert_eq(f.completed, 400);
	for (uint32_t s = 0; s < 3; s++)
		cr_assert_eq(durable(s), f.next[s]);
	cr_assert_gt(st.windows_back_to_back, 0);
	cr_assert_geq(st.batches_appended - st0.batches_appended,
		      8 * (st.commits - st0.commits), "the wait gathered batches per window");
	/* Idle: each lone window halves the wait (400, 200, 100, 50, then 0). */
	prev = st.window_wait_ns;
	for (uint32_t i = 0; i < 5; i++) {
		submit(0, 1, 0);
		settle_steps(100000);
		poll_in_order(acked);
		cr_assert_leq(stats_now().window_wait_ns, prev / 2, "window %u did not shrink", i);
		prev = stats_now().window_wait_ns;
	}
	cr_assert_eq(prev, 0, "back to 0 when idle");
	st0 = stats_now();
	submit(1, 1, 0);
	for (uint32_t i = 0; i < 200 && stats_now().commits == st0.commits; i++)
		log_writer_step(f.log, f.now);
	cr_assert_eq(stats_now().commits, st0.commits + 1, "no wait at 0: commits at once");
	poll_in_order(acked);
	cr_assert_eq(f.completed, 406);
}

/* Back-to-back windows that must not adapt: all acked in order, the wait stays 0. */
static void
never_adapts(uint32_t fixed_us, uint32_t max_us)
{
	uint64_t acked[8] = { 0 };

	fx_reopen_window(fixed_us, max_us);
	cr_assert_eq(run_back_to_back(100, 0, acked), 0);
	cr_assert_eq(stats_now().windows_back_to_back, 0);
	settle_steps(100000);
	poll_in_order(acked);
	cr_assert_eq(f.completed, 100);
}

/* A fixed commit_window_us overrides the adaptive window: it never adapts. */
Test(log_writer, fixed_window_overrides_the_adaptive_one)
{
	never_adapts(50, 400);
}

/* Without a maximum (the library's default) nothing waits or adapts. */
Test(log_writer, adaptive_window_off_by_default)
{
	never_adapts(0, 0);
}

/*
 * A napping poller (a dataplane worker): the nap fd is signalled only while it naps,
 * so postings between naps cost no eventfd write; a nap is refused while completions
 * wait; its end clears the fd.
 */
Test(log_writer, nap_fd_signals_only_during_a_nap)
{
	uint64_t counter = 0;
	int fd = log_producer_nap_fd(f.p);

	submit(0, 1, 0);
	settle_steps(100000);
	cr_assert_eq(read(fd, &counter, sizeof(counter)), -1, "posted while polling: no signal");
	cr_assert_eq(errno, EAGAIN);
	cr_assert(!log_producer_nap_begin(f.p), "a completion waits: no nap");
	poll_all();
	cr_assert_eq(f.completed, 1);
	cr_assert(log_producer_nap_begin(f.p));
	submit(1, 1, 0);
	settle_steps(100000);
	cr_assert_eq(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 0), 1,
		     "posted during the nap: signalled");
	log_producer_nap_end(f.p);
	cr_assert_eq(read(fd, &counter, sizeof(counter)), -1, "the nap's end cleared it");
	cr_assert_eq(errno, EAGAIN);
	poll_all();
	cr_assert_eq(f.completed, 2);
	submit(2, 1, 0);
	settle_steps(100000);
	cr_assert_eq(read(fd, &counter, sizeof(counter)), -1, "after the nap: no signal again");
	poll_all();
	cr_assert_eq(f.completed, 3);
}

/*
 * A segment whose header reached the medium but none of its windows (power lost right
 * after activation; here the window is wiped, the index of the clean close removed):
 * recovery scans it, seals it with an index of no entries, then resumes it. That index
 * was built by copying its entries from NULL, undefined behaviour that UBSan reports
 * (fuzz_recovery found it). The log opens empty and takes appends again.
 */
Test(log_writer, segment_with_a_header_and_no_batch_recovers_empty)
{
	static const uint8_t zeros[LOG_BLOCK_SIZE];
	struct log_stats st;
	uint32_t file;
	int err;

	submit(0, 3, 0);
	settle(100000);
	cr_assert_eq(durable(0), 3);
	fx_close();
	cr_assert_eq(log_io_file_open(f.io, "seg-0000000000000000.log", 0, &file), 0);
	cr_assert_eq(log_io_pwrite(f.io, file, zeros, sizeof(zeros), LOG_BLOCK_SIZE), 0);
	cr_assert_eq(log_io_fsync(f.io, file), 0);
	log_io_file_close(f.io, file);
	err = log_io_file_remove(f.io, "seg-0000000000000000.idx");
	cr_assert(err == 0 || err == -ENOENT);
	fx_open();
	log_stats_read(f.log, &st);
	cr_assert_eq(st.segments_resumed, 1);
	cr_assert_eq(durable(0), 0);
	f.next[0] = 0;
	submit(0, 2, 0);
	settle(100000);
	cr_assert_eq(f.errors, 0);
	cr_assert_eq(durable(0), 2);
}

#define SEG0 "seg-0000000000000000.log"

struct seg_batch {
	uint64_t pos;
	struct log_batch_header h;
};

/* The batches of segment 0 in file order (8-byte boundaries that check out). */
static uint32_t
seg0_batches(uint8_t *image, struct seg_batch *out, uint32_t max)
{
	uint32_t file;
	uint32_t n = 0;

	cr_assert_eq(log_io_file_open(f.io, SEG0, 0, &file), 0);
	cr_assert_eq(log_io_pread(f.io, file, image, (uint32_t)f.c.segment_size, 0), 0);
	log_io_file_close(f.io, file);
	for (uint64_t pos = LOG_BLOCK_SIZE; pos < f.c.segment_size && n < max;
	     pos += LOG_BATCH_ALIGN) {
		if (log_batch_check(image + pos, f.c.segment_size - pos, &out[n].h) == 0)
			out[n++].pos = pos;
	}
	return n;
}

static void
seg0_write(const void *buf, uint32_t size, uint64_t offset)
{
	uint32_t file;

	cr_assert_eq(log_io_file_open(f.io, SEG0, 0, &file), 0);
	cr_assert_eq(log_io_pwrite(f.io, file, buf, size, offset), 0);
	cr_assert_eq(log_io_fsync(f.io, file), 0);
	log_io_file_close(f.io, file);
}

/* Records of shard 0 readable in [from, to): how many, all with their own bytes. */
static uint32_t
readable(uint64_t from, uint64_t to)
{
	struct test_collect col = { .shard_id = sid(0), .data_size = DATA };
	struct log_reader *r;
	uint64_t next;

	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_read(r, sid(0), from, (uint32_t)(to - from), 1u << 20, test_collect_fn,
			      &col, &next), (int)(to - from));
	log_reader_close(r);
	cr_assert_eq(col.bad, 0);
	free(col.seqs);
	return col.count;
}

/*
 * Window A (three batches) is damaged in its middle batch; window B, written after A
 * was durable, vouches for it, but B's own last batch never landed (torn). Recovery
 * keeps A's first batch and B's first, reports A's rest as lost. It used to resume
 * the segment: drop B (unfinished) and zero it, the only proof that A was durable, so
 * the next open cut A's first batch too: records served once, gone after a restart
 * (fuzz_recovery found it). Now the segment stays sealed and every reopen, clean or
 * after power loss, serves the same records.
 */
Test(log_writer, corruption_proven_by_a_torn_window_survives_reopens)
{
	static uint8_t image[1u << 20];
	static const uint8_t zeros[LOG_BLOCK_SIZE];
	struct seg_batch b[8];
	uint8_t flip;
	int err;

	for (uint32_t i = 0; i < 3; i++)
		submit(0, 2, 0);
	settle(100000);
	submit(0, 2, 0);
	submit(0, 2, 0);
	settle(100000);
	cr_assert_eq(durable(0), 10);
	fx_close();
	err = log_io_file_remove(f.io, "seg-0000000000000000.idx");
	cr_assert(err == 0 || err == -ENOENT);
	cr_assert_eq(seg0_batches(image, b, 8), 5);
	cr_assert(b[0].h.commit_id == b[2].h.commit_id && b[3].h.commit_id == b[4].h.commit_id &&
		  b[3].h.commit_id > b[2].h.commit_id, "two windows of 3 and 2 batches");
	cr_assert_geq(b[3].h.commit_id - b[3].h.durable_lag, b[0].h.commit_id,
		      "window B was written after A was durable");
	flip = image[b[1].pos + LOG_BATCH_HEADER_SIZE + 1] ^ 0x40;
	seg0_write(&flip, 1, b[1].pos + LOG_BATCH_HEADER_SIZE + 1);
	seg0_write(zeros, b[4].h.size, b[4].pos);

	for (uint32_t run = 0; run < 3; run++) {
		fx_open();
		cr_assert_eq(durable(0), 8, "run %u", run);
		cr_assert_eq(readable(0, 2), 2, "run %u", run);
		cr_assert_eq(readable(6, 8), 2, "run %u", run);
		if (run == 1)
			log_io_sim_crash(f.io);
		fx_close();
		if (run == 1)
			log_io_sim_restart(f.io);
	}
	fx_open();
	f.next[0] = 8;
	submit(0, 2, 0);
	settle(100000);
	cr_assert_eq(f.errors, 0);
	cr_assert_eq(durable(0), 10);
	cr_assert_eq(readable(8, 10), 2);
}

/*
 * Bitrot in the last window of a cleanly closed segment: its index still places every
 * batch, so the open serves all but the damaged one. Resuming the segment removed the
 * index; after power loss the next open walked the data instead, took the damage for a
 * torn tail and cut the good batch after it (fuzz_recovery found it). Now a segment whose
 * data no longer matches its index is left sealed, and the records stay.
 */
Test(log_writer, bitrot_in_an_indexed_segment_does_not_cut_records_after_a_crash)
{
	static uint8_t image[1u << 20];
	struct log_reader *r;
	struct seg_batch b[8];
	uint64_t next;
	uint8_t flip;

	for (uint32_t w = 0; w < 2; w++) {
		submit(0, 2, 0);
		submit(0, 2, 0);
		settle(100000);
	}
	cr_assert_eq(durable(0), 8);
	fx_close();
	cr_assert_eq(seg0_batches(image, b, 8), 4);
	cr_assert(b[0].h.commit_id == b[1].h.commit_id && b[2].h.commit_id == b[3].h.commit_id &&
		  b[2].h.commit_id > b[1].h.commit_id, "two windows of 2 batches");
	flip = image[b[2].pos + LOG_BATCH_HEADER_SIZE + 1] ^ 0x40;
	seg0_write(&flip, 1, b[2].pos + LOG_BATCH_HEADER_SIZE + 1);

	for (uint32_t run = 0; run < 3; run++) {
		fx_open();
		cr_assert_eq(durable(0), 8, "run %u", run);
		cr_assert_eq(readable(0, 4), 4, "run %u", run);
		cr_assert_eq(readable(6, 8), 2, "run %u", run);
		cr_assert_eq(log_reader_open(f.log, &r), 0);
		cr_assert_eq(log_read(r, sid(0), 4, 2, 1u << 20, test_collect_fn, NULL, &next),
			     -EBADMSG, "run %u", run);
		log_reader_close(r);
		if (run == 0)
			log_io_sim_crash(f.io);
		fx_close();
		if (run == 0)
			log_io_sim_restart(f.io);
	}
	fx_open();
}
