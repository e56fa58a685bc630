/*
 * log_basic: the whole path on the real backend (io_uring, O_DIRECT, writer
 * thread) in a private temp directory: append -> durable completion ->
 * read back byte-exact (from the window ring, the page cache and O_DIRECT);
 * sequence numbers per shard; segment rollover; a clean close and reopen
 * keeps everything and continues the numbering; nothing past the durable
 * watermark is readable, also while a reader thread races the writer
 * around the smallest window ring.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/record_wire.h"
#include "nvme-log/log.h"
#include "tests/nvme-log/log_test_util.h"

#define SHARDS 3u

static char dir[256];

static void
setup(void)
{
	cr_assert_eq(test_dir_make(dir, sizeof(dir)), 0);
}

static void
teardown(void)
{
	test_dir_remove(dir);
}

static void
config_small(struct log_config *c)
{
	log_config_default(c);
	c->dir_path = dir;
	c->segment_size = 2u << 20;
	c->batch_size = 16u << 10;
	c->commit_window_bytes = 64u << 10;
	c->producers_max = 2;
	c->batches_per_producer = 8;
	c->shards_max = 64;
}

static uint64_t
shard_of(uint32_t i)
{
	return LOG_SHARD_ID(7, i);
}

/* Waits for one completion (blocking on the eventfd) and checks it. */
static void
wait_one(struct log_producer *p, uint64_t *seq_next)
{
	struct log_completion c;
	struct pollfd pfd = { .fd = log_producer_event_fd(p), .events = POLLIN };

	while (log_completions_poll(p, &c, 1) == 0)
		cr_assert_geq(poll(&pfd, 1, 5000), 0);
	cr_assert_eq(c.error, 0, "completion error %d", c.error);
	cr_assert_lt(c.cookie, SHARDS);
	cr_assert_eq(c.shard_id, shard_of((uint32_t)c.cookie));
	cr_assert_eq(c.seq_first, seq_next[c.cookie], "shard %lu: seq %lu, want %lu",
		     (unsigned long)c.cookie, (unsigned long)c.seq_first,
		     (unsigned long)seq_next[c.cookie]);
	cr_assert_gt(c.durable_ns, 0);
	seq_next[c.cookie] += c.record_count;
}

/*
 * Appends `per_shard` records of `data_size` bytes to each shard, round
 * robin, batches of up to 10 records; waits for every completion.
 */
static void
append_all(struct log *log, uint64_t *seq_next, uint32_t per_shard, uint32_t data_size)
{
	struct log_producer *p;
	uint8_t *data = malloc(data_size + 1);
	uint64_t next[SHARDS];
	uint32_t inflight = 0;

	memcpy(next, seq_next, sizeof(next));
	cr_assert_eq(log_producer_open(log, &p), 0);
	for (uint32_t done = 0; done < per_shard;) {
		uint32_t n = per_shard - done < 10 ? per_shard - done : 10;

		for (uint32_t s = 0; s < SHARDS; s++) {
			struct log_batch *b;

			while ((b = log_batch_get(p)) == NULL) {
				wait_one(p, seq_next);
				inflight--;
			}
			for (uint32_t k = 0; k < n; k++) {
				struct log_record_in rec;
				char key[48];

				test_record_make(shard_of(s), next[s] + k, data_size, data, key, &rec);
				cr_assert_eq(log_batch_add(b, &rec), 0);
			}
			next[s] += n;
			cr_assert_eq(log_batch_submit(p, b, shard_of(s), s), 0);
			inflight++;
		}
		done += n;
	}
	while (inflight-- > 0)
		wait_one(p, seq_next);
	log_producer_close(p);
	free(data);
}

static void
read_all(struct log *log, uint32_t s, uint64_t count, uint32_t data_size)
{
	struct log_reader *r;
	struct test_collect col = { .shard_id = shard_of(s), .data_size = data_size };
	uint64_t seq = 0;

	cr_assert_eq(log_reader_open(log, &r), 0);
	while (seq < count) {
		int n = log_read(r, shard_of(s), seq, 1000, 1u << 20, test_collect_fn, &col, &seq);

		cr_assert_gt(n, 0, "shard %u: read at %lu gave %d", s, (unsigned long)seq, n);
	}
	cr_assert_eq(log_read(r, shard_of(s), seq, 10, 1u << 20, test_collect_fn, &col, &seq), 0,
		     "nothing past the durable watermark");
	log_reader_close(r);
	cr_assert_eq(col.count, count);
	cr_assert_eq(col.bad, 0);
	for (uint32_t i = 0; i < col.count; i++)
		cr_assert_eq(col.seqs[i], i);
	free(col.seqs);
}

TestSuite(log_basic, .init = setup, .fini = teardown, .timeout = 60);

Test(log_basic, append_read_reopen)
{
	struct log_config c;
	struct log *log;
	struct log_shard_info info;
	struct log_stats st;
	uint64_t seq_next[SHARDS] = { 0 };

	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	append_all(log, seq_next, 200, 100);
	for (uint32_t s = 0; s < SHARDS; s++) {
		cr_assert_eq(seq_next[s], 200);
		read_all(log, s, 200, 100);
		cr_assert_eq(log_shard_info(log, shard_of(s), &info), 0);
		cr_assert_eq(info.seq_durable, 200);
		cr_assert_eq(info.seq_trim, 0);
		cr_assert(!info.closed);
	}
	log_stats_read(log, &st);
	cr_assert_eq(st.records_appended, 600);
	cr_assert_geq(st.commits, 1);
	log_close(log);

	cr_assert_eq(log_open(&c, &log), 0);
	for (uint32_t s = 0; s < SHARDS; s++) {
		read_all(log, s, 200, 100);
		cr_assert_eq(log_shard_info(log, shard_of(s), &info), 0);
		cr_assert_eq(info.seq_durable, 200);
	}
	log_stats_read(log, &st);
	cr_assert_eq(st.torn_tails_cut, 0);
	cr_assert_eq(st.corruptions, 0);
	append_all(log, seq_next, 50, 100);
	for (uint32_t s = 0; s < SHARDS; s++)
		read_all(log, s, 250, 100);
	log_close(log);
}

Test(log_basic, rolls_over_segments_and_reopens)
{
	struct log_config c;
	struct log *log;
	uint64_t seq_next[SHARDS] = { 0 };

	struct log_stats st;

	config_small(&c);
	c.read_cache_bytes = 0; /* The smallest window ring: most reads are of older data. */
	cr_assert_eq(log_open(&c, &log), 0);
	/* 3 shards x 1500 x 1 KiB = ~4.5 MiB: at least two 2 MiB segments. */
	append_all(log, seq_next, 1500, 1024);
	for (uint32_t s = 0; s < SHARDS; s++)
		read_all(log, s, 1500, 1024);
	/* All three sources served exact bytes: ring, page cache (sealed), O_DIRECT (active). */
	log_stats_read(log, &st);
	cr_assert_gt(st.reads_memory, 0);
	cr_assert_gt(st.reads_cached, 0);
	cr_assert_gt(st.reads_device, 0);
	log_close(log);
	cr_assert_eq(log_open(&c, &log), 0);
	for (uint32_t s = 0; s < SHARDS; s++)
		read_all(log, s, 1500, 1024);
	/* After a reopen the ring is empty and every segment is sealed. */
	log_stats_read(log, &st);
	cr_assert_eq(st.reads_memory, 0);
	cr_assert_gt(st.reads_cached, 0);
	log_close(log);
}

Test(log_basic, unknown_shard_reads_empty)
{
	struct log_config c;
	struct log *log;
	struct log_reader *r;
	struct log_shard_info info;
	struct test_collect col = { 0 };
	uint64_t next = 99;

	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	cr_assert_eq(log_shard_info(log, 12345, &info), 0);
	cr_assert_eq(info.seq_durable, 0);
	cr_assert(!info.closed);
	cr_assert_eq(log_reader_open(log, &r), 0);
	cr_assert_eq(log_read(r, 12345, 0, 10, 1000, test_collect_fn, &col, &next), 0);
	cr_assert_eq(next, 0);
	log_reader_close(r);
	log_close(log);
}

Test(log_basic, refuses_bad_config)
{
	struct log_config c;
	struct log *log;

	config_small(&c);
	c.segment_size = 3u << 19;
	cr_assert_eq(log_open(&c, &log), -EINVAL);
	config_small(&c);
	c.batch_size = 100;
	cr_assert_eq(log_open(&c, &log), -EINVAL);
	config_small(&c);
	c.producers_max = 0;
	cr_assert_eq(log_open(&c, &log), -EINVAL);
	config_small(&c);
	c.commit_window_adaptive_us = LOG_COMMIT_WINDOW_US_MAX + 1;
	cr_assert_eq(log_open(&c, &log), -EINVAL);
}

/* Flips one bit at `offset` of the first segment file. */
static void
flip_bit(uint64_t offset)
{
	char path[400];
	FILE *fp;
	int c;

	snprintf(path, sizeof(path), "%s/seg-0000000000000000.log", dir);
	fp = fopen(path, "r+b");
	cr_assert_not_null(fp);
	fseek(fp, (long)offset, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, (long)offset, SEEK_SET);
	fputc(c ^ 0x10, fp);
	fclose(fp);
}

Test(log_basic, verify_clean_then_detects_a_flipped_bit)
{
	struct log_config c;
	struct log *log;
	struct log_reader *r;
	struct log_verify_report rep;
	struct test_collect col = { .shard_id = shard_of(0), .data_size = 100 };
	uint64_t seq_next[SHARDS] = { 0 };
	uint64_t next;
	int n;

	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	append_all(log, seq_next, 300, 100);
	log_close(log);
	cr_assert_eq(log_verify(dir, &rep, NULL, NULL), 0);
	cr_assert_eq(rep.records, 900);
	cr_assert_eq(rep.shards, SHARDS);
	cr_assert_eq(rep.segments_sealed, rep.segments);
	cr_assert_eq(rep.crc_errors + rep.index_mismatches + rep.sequence_gaps, 0);

	/* A bit inside the first batch's records (block 1 holds the first window). */
	flip_bit(4096 + 64 + 10);
	cr_assert_eq(log_verify(dir, &rep, NULL, NULL), -EBADMSG);
	cr_assert_geq(rep.crc_errors, 1);
	cr_assert_geq(rep.index_mismatches, 1);
	cr_assert_eq(log_open(&c, &log), 0);
	cr_assert_eq(log_reader_open(log, &r), 0);
	n = log_read(r, shard_of(0), 0, 10, 1u << 20, test_collect_fn, &col, &next);
	cr_assert_eq(n, -EBADMSG, "a corrupt sealed batch is reported, never served (%d)", n);
	cr_assert_eq(col.count, 0);
	log_reader_close(r);
	log_close(log);
}

/* ---- Threads: two producers, a concurrent reader, a close while appending ---- */

#include <pthread.h>
#include <stdatomic.h>

struct thread_arg {
	struct log *log;
	uint32_t shard;            /* Each producer thread owns one shard. */
	uint32_t records;
	atomic_bool *stop;
	uint32_t bad;
	uint64_t read_count;
};

static void *
producer_thread(void *argp)
{
	struct thread_arg *a = argp;
	uint64_t next[SHARDS] = { 0 };
	struct log_producer *p;
	uint8_t data[200];
	uint32_t inflight = 0;

	cr_assert_eq(log_producer_open(a->log, &p), 0);
	for (uint64_t seq = 0; seq < a->records || inflight > 0;) {
		struct log_batch *b = seq < a->records ? log_batch_get(p) : NULL;
		struct log_completion c;

		if (b != NULL) {
			for (uint32_t k = 0; k < 5 && seq < a->records; k++, seq++) {
				struct log_record_in rec;
				char key[48];

				test_record_make(shard_of(a->shard), seq, 150, data, key, &rec);
				cr_assert_eq(log_batch_add(b, &rec), 0);
			}
			cr_assert_eq(log_batch_submit(p, b, shard_of(a->shard), a->shard), 0);
			inflight++;
			continue;
		}
		if (log_completions_poll(p, &c, 1) == 0) {
			poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 10);
			continue;
		}
		cr_assert_eq(c.error, 0);
		cr_assert_eq(c.seq_first, next[a->shard]);
		next[a->shard] += c.record_count;
		inflight--;
	}
	log_producer_close(p);
	return NULL;
}

/* Follows shard 0 while it grows: never past durable, never a wrong byte. */
static void *
reader_thread(void *argp)
{
	struct thread_arg *a = argp;
	struct test_collect col = { .shard_id = shard_of(0), .data_size = 150 };
	struct log_reader *r;
	uint64_t seq = 0;

	cr_assert_eq(log_reader_open(a->log, &r), 0);
	while (!atomic_load(a->stop) || seq < a->records) {
		struct log_shard_info info;
		/* Read before the call: an empty read that began before the stop proves nothing. */
		bool stopping = atomic_load(a->stop);
		int n = log_read(r, shard_of(0), seq, 256, 1u << 20, test_collect_fn, &col, &seq);

		cr_assert_geq(n, 0, "read: %d", n);
		log_shard_info(a->log, shard_of(0), &info);
		cr_assert_leq(seq, info.seq_durable);
		if (n == 0 && stopping)
			break;
	}
	log_reader_close(r);
	a->bad = col.bad;
	a->read_count = col.count;
	for (uint32_t i = 0; i < col.count; i++)
		cr_assert_eq(col.seqs[i], i);
	free(col.seqs);
	return NULL;
}

/*
 * Two producers and a reader following shard 0 on their own threads; with
 * `ring_bytes` 0 the window ring is its smallest (4 windows), so the writer
 * overwrites what the reader may be copying all the time (the seqlock).
 */
static void
threads_run(uint64_t ring_bytes, uint32_t adaptive_us)
{
	struct log_config c;
	struct log *log;
	atomic_bool stop = false;
	struct thread_arg args[3];
	pthread_t threads[3];
	struct log_stats st;
	uint64_t end;

	config_small(&c);
	c.read_cache_bytes = ring_bytes;
	c.commit_window_adaptive_us = adaptive_us;
	cr_assert_eq(log_open(&c, &log), 0);
	for (uint32_t i = 0; i < 3; i++)
		args[i] = (struct thread_arg){ log, i == 2 ? 0 : i, 4000, &stop, 0, 0 };
	for (uint32_t i = 0; i < 3; i++)
		pthread_create(&threads[i], NULL, i == 2 ? reader_thread : producer_thread, &args[i]);
	pthread_join(threads[0], NULL);
	pthread_join(threads[1], NULL);
	atomic_store(&stop, true);
	pthread_join(threads[2], NULL);
	cr_assert_eq(args[2].bad, 0);
	cr_assert_eq(args[2].read_count, 4000);
	log_stats_read(log, &st);
	cr_assert_gt(st.reads_memory, 0);
	cr_assert_leq(st.window_wait_ns, (uint64_t)adaptive_us * 1000u);
	if (ring_bytes >= (2u << 20)) /* All ~1.6 MB written fit: the device was never read. */
		cr_assert_eq(st.reads_cached + st.reads_device, 0);
	cr_assert_eq(log_shard_close(log, shard_of(1), &end), 0);
	cr_assert_eq(end, 3999);
	log_close(log);
	cr_assert_eq(log_open(&c, &log), 0);
	read_all(log, 0, 4000, 150);
	read_all(log, 1, 4000, 150);
	log_close(log);
}

Test(log_basic, producers_and_reader_on_threads_then_close)
{
	threads_run(64u << 20, 0);
}

/* The same with the adaptive window (sluiced's default), its state read while it runs. */
Test(log_basic, producers_and_reader_on_threads_adaptive_window)
{
	threads_run(64u << 20, 500);
}

Test(log_basic, producers_and_reader_on_threads_small_ring)
{
	threads_run(0, 0);
}

/*
 * The durable eventfd wakes a reader that owns no producer (a subscription waits on it
 * while another producer writes): silent until armed, readable after a commit, and what
 * it announces is readable at once.
 */
Test(log_basic, durable_event_fd_wakes_a_reader_without_a_producer)
{
	struct log_config c;
	struct log *log;
	struct log_reader *r;
	struct pollfd pfd;
	struct test_collect col = { .shard_id = shard_of(0), .data_size = 100 };
	uint64_t seq_next[SHARDS] = { 0 };
	struct log_shard_info info;
	uint64_t seq = 0;
	uint64_t drained;
	int fd;

	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	append_all(log, seq_next, 20, 100);
	fd = log_durable_event_fd(log);
	cr_assert_geq(fd, 0);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "commits before arming are not signalled");
	append_all(log, seq_next, 30, 100);
	/* The completions may be seen before the signal that follows them: wait for it. */
	cr_assert_eq(poll(&pfd, 1, 20000), 1, "the commits after arming were signalled");
	cr_assert_eq(read(fd, &drained, sizeof(drained)), (ssize_t)sizeof(drained));
	cr_assert_eq(poll(&pfd, 1, 0), 0, "a read clears it");
	cr_assert_eq(log_shard_info(log, shard_of(0), &info), 0);
	cr_assert_eq(info.seq_durable, 50);
	cr_assert_eq(log_reader_open(log, &r), 0);
	cr_assert_eq(log_read(r, shard_of(0), 0, 1000, 1u << 20, test_collect_fn, &col, &seq), 50);
	cr_assert_eq(seq, 50);
	cr_assert_eq(col.bad, 0);
	log_reader_close(r);
	free(col.seqs);
	log_close(log);
}

/* Shard 0's records: their arrival stamps, and whether their bytes are test_record_make's. */
struct arrivals {
	uint64_t *ns;
	uint32_t count;
	uint32_t bad;
};

static int
arrival_fn(void *arg, const struct log_record_out *record)
{
	struct arrivals *a = arg;
	struct log_record_out same = *record;

	a->ns[record->seq] = record->arrival_ns;
	a->count++;
	/* test_record_check also wants test_record_make's arrival: compare the rest. */
	same.arrival_ns = 1000000000ull * 1700000000ull + record->seq * 1000u;
	a->bad += !test_record_check(LOG_SHARD_ID(7, 0), &same, 100);
	return 0;
}

/*
 * A shard-grouped frame's record block goes into batches with one copy,
 * split at record boundaries when it does not fit; its records take the
 * batch's base arrival, and read back byte-exact with the others.
 */
Test(log_basic, encoded_blocks_append_whole_or_split_at_records)
{
	enum { BLOCK_RECORDS = 300, DATA = 100 };
	static uint8_t block[BLOCK_RECORDS * (DATA + 64)];
	static uint64_t arrival_ns[BLOCK_RECORDS + 1];
	struct arrivals arrivals = { .ns = arrival_ns };
	uint8_t data[DATA];
	uint8_t first_data[DATA];
	char key[48];
	char first_key[48];
	struct log_config c;
	struct log *log;
	struct log_producer *p;
	struct log_batch *b;
	struct log_record_in first;
	uint64_t seq_next[SHARDS] = { 0 };
	uint32_t size = 0;
	uint32_t done = 0;
	uint32_t batches = 0;
	struct log_reader *r;
	uint64_t next = 0;

	/* Record 0 the usual way; records 1 .. 300 as one encoded block. */
	test_record_make(shard_of(0), 0, DATA, first_data, first_key, &first);
	for (uint32_t i = 1; i <= BLOCK_RECORDS; i++) {
		struct log_record_in in;

		test_record_make(shard_of(0), i, DATA, data, key, &in);
		size = (uint32_t)(record_wire_put(block + size, &(struct record_wire){
			.partition_key = in.partition_key, .partition_key_size = in.partition_key_size,
			.data = in.data, .data_size = in.data_size }) - block);
	}
	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	cr_assert_eq(log_producer_open(log, &p), 0);
	b = log_batch_get(p);
	first.arrival_ns = 1000;
	cr_assert_eq(log_batch_add(b, &first), 0);
	while (done < BLOCK_RECORDS) {
		uint32_t taken = 0;
		uint32_t off = 0;
		int n;

		/* The offset of record `done` in the block: the walk the log does itself. */
		for (uint32_t i = 0; i < done; i++) {
			struct record_wire w;

			off = (uint32_t)(record_wire_next(block + off, block + size, &w) - block);
		}
		n = log_batch_add_encoded(b, block + off, size - off, BLOCK_RECORDS - done,
					  2000 + done, &taken);
		cr_assert_geq(n, 0);
		if (n == 0 || done + (uint32_t)n < BLOCK_RECORDS) {
			if (n > 0)
				done += (uint32_t)n;
			cr_assert_eq(log_batch_submit(p, b, shard_of(0), 0), 0);
			batches++;
			while ((b = log_batch_get(p)) == NULL)
				wait_one(p, seq_next);
			continue;
		}
		done += (uint32_t)n;
	}
	cr_assert_eq(log_batch_submit(p, b, shard_of(0), 0), 0);
	batches++;
	cr_assert_gt(batches, 1, "a 300-record block does not fit one 16 KiB batch");
	while (seq_next[0] < BLOCK_RECORDS + 1)
		wait_one(p, seq_next);
	log_producer_close(p);

	cr_assert_eq(log_reader_open(log, &r), 0);
	while (next < BLOCK_RECORDS + 1)
		cr_assert_gt(log_read(r, shard_of(0), next, 1000, 1u << 20, arrival_fn, &arrivals,
				      &next), 0);
	log_reader_close(r);
	cr_assert_eq(arrivals.count, BLOCK_RECORDS + 1);
	cr_assert_eq(arrivals.bad, 0);
	cr_assert_eq(arrival_ns[0], 1000);
	cr_assert_eq(arrival_ns[1], 1000, "a block added to a batch takes its base arrival");
	cr_assert_gt(arrival_ns[BLOCK_RECORDS], 2000, "a block opening a batch sets it");
	log_close(log);
}

Test(log_basic, encoded_record_larger_than_a_batch_is_refused)
{
	static uint8_t block[20u << 10];
	static uint8_t big[17u << 10];
	struct log_config c;
	struct log *log;
	struct log_producer *p;
	struct log_batch *b;
	uint32_t taken = 0;
	uint32_t size;

	size = (uint32_t)(record_wire_put(block, &(struct record_wire){
		.partition_key = (const uint8_t *)"k", .partition_key_size = 1,
		.data = big, .data_size = sizeof(big) }) - block);
	config_small(&c);
	cr_assert_eq(log_open(&c, &log), 0);
	cr_assert_eq(log_producer_open(log, &p), 0);
	b = log_batch_get(p);
	cr_assert_eq(log_batch_add_encoded(b, block, size, 1, 1, &taken), -EMSGSIZE);
	cr_assert_eq(log_batch_record_count(b), 0);
	log_batch_put(p, b);
	log_producer_close(p);
	log_close(log);
}

/*
 * A napping poller against the writer thread (the dataplane worker's way): one batch in
 * flight at a time, waited for by naps on the nap fd; every nap that starts with a batch
 * in flight ends by the writer's signal, none by the (generous) deadline: no completion
 * is posted unsignalled while the poller sleeps, and the signalling races TSan checks.
 */
Test(log_basic, nap_fd_wakes_a_napping_poller)
{
	struct log_config c;
	struct log *log;
	struct log_producer *p;
	struct log_completion done;
	uint64_t seq_next[SHARDS] = { 0 };
	uint8_t data[100];
	int fd;

	config_small(&c);
	c.commit_window_adaptive_us = 500;
	cr_assert_eq(log_open(&c, &log), 0);
	cr_assert_eq(log_producer_open(log, &p), 0);
	fd = log_producer_nap_fd(p);
	for (uint32_t i = 0; i < 300; i++) {
		struct log_batch *b = log_batch_get(p);
		struct log_record_in rec;
		char key[48];
		uint32_t got = 0;

		cr_assert_not_null(b);
		test_record_make(shard_of(0), seq_next[0], sizeof(data), data, key, &rec);
		cr_assert_eq(log_batch_add(b, &rec), 0);
		cr_assert_eq(log_batch_submit(p, b, shard_of(0), 0), 0);
		while ((got = log_completions_poll(p, &done, 1)) == 0) {
			if (!log_producer_nap_begin(p))
				continue;
			cr_assert_eq(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 30000), 1,
				     "batch %u: the nap was not ended by its completion", i);
			log_producer_nap_end(p);
		}
		cr_assert_eq(done.error, 0);
		cr_assert_eq(done.seq_first, seq_next[0]);
		seq_next[0]++;
	}
	log_producer_close(p);
	log_close(log);
}
