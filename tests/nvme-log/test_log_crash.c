/*
 * log_crash: real kill -9 on the real backend. A child process opens the
 * log (recovering what the last child left), appends batches to a few
 * shards as fast as completions allow, and writes every acknowledgement to
 * a ledger file (one write() per ack: a SIGKILL cannot tear it). The
 * parent SIGKILLs it at a random moment, reopens the log itself and checks
 * that every acknowledged record is present, byte-exact and in order, that
 * every record served is the one the child made for that (shard, seq), and
 * that nothing was reported corrupt. ITERATIONS rounds per run (default
 * 120; CRASH_ITERATIONS overrides); the seed is printed and TEST_SEED
 * replays the kill schedule.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/diag.h"
#include "nvme-log/log.h"
#include "nvme-log/log_internal.h" /* LOG_SPARES_DEFAULT */
#include "tests/nvme-log/log_test_util.h"
#include "tests/support/seed.h"

#define SHARDS 4u
#define DATA_SIZE(seq) ((uint32_t)((seq) * 37u % 500u))

struct ack {
	uint32_t shard;
	uint32_t count;
	uint64_t seq_first;
};

static char dir[256];
static char log_dir[300];
static char ledger_path[300];

static void
config_crash(struct log_config *c)
{
	log_config_default(c);
	c->dir_path = log_dir;
	c->segment_size = 1u << 20;
	c->batch_size = 8192;
	c->commit_window_bytes = 32u << 10;
	c->producers_max = 1;
	c->batches_per_producer = 16;
	c->shards_max = 16;
}

static uint64_t
shard_id(uint32_t s)
{
	return LOG_SHARD_ID(9, s);
}

static void
child_fill(struct log_batch *b, uint32_t s, uint64_t *next)
{
	uint32_t n = 1 + (uint32_t)(*next % 7);

	for (uint32_t k = 0; k < n; k++) {
		static uint8_t data[600];
		struct log_record_in rec;
		char key[48];

		test_record_make(shard_id(s), *next, DATA_SIZE(*next), data, key, &rec);
		if (log_batch_add(b, &rec) != 0)
			break;
		(*next)++;
	}
}

/* The child: append forever, one ledger write per acknowledgement. */
/* A child's start: the log recovered, a producer, each shard's next seq; the ledger fd. */
static int
child_open(struct log_producer **p_out, uint64_t *next)
{
	struct log_config c;
	struct log *log;
	int ledger = open(ledger_path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	config_crash(&c);
	if (ledger < 0 || log_open(&c, &log) != 0 || log_producer_open(log, p_out) != 0)
		_exit(2);
	for (uint32_t s = 0; s < SHARDS; s++) {
		struct log_shard_info info;

		log_shard_info(log, shard_id(s), &info);
		next[s] = info.seq_durable;
	}
	return ledger;
}

static void
child_main(void)
{
	struct log_producer *p;
	uint64_t next[SHARDS];
	int ledger = child_open(&p, next);

	for (uint32_t round = 0;; round++) {
		struct log_batch *b;
		struct log_completion comp[16];
		uint32_t s = round % SHARDS;
		uint64_t first = next[s];

		while ((b = log_batch_get(p)) != NULL) {
			child_fill(b, s, &next[s]);
			if (log_batch_submit(p, b, shard_id(s), first) != 0)
				_exit(3);
			s = (s + 1) % SHARDS;
			first = next[s];
		}
		for (uint32_t n = log_completions_poll(p, comp, 16), i = 0; i < n; i++) {
			struct ack a = { LOG_SHARD_INDEX(comp[i].shard_id), comp[i].record_count,
					 comp[i].seq_first };

			if (comp[i].error != 0 || comp[i].seq_first != comp[i].cookie)
				_exit(4);
			if (write(ledger, &a, sizeof(a)) != (ssize_t)sizeof(a))
				_exit(5);
		}
		poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 10);
	}
}

/*
 * A child that writes little: `batches` batches acked (ledger), one more submitted and
 * maybe in flight, then one byte on `ready` and it waits to be killed.
 */
static void
child_small(int ready, uint32_t batches)
{
	struct log_producer *p;
	uint64_t next[SHARDS];
	int ledger = child_open(&p, next);

	for (uint32_t i = 0; i <= batches; i++) {
		struct log_batch *b = log_batch_get(p);
		uint32_t s = i % SHARDS;
		uint64_t first = next[s];
		struct log_completion comp;

		if (b == NULL)
			_exit(3);
		child_fill(b, s, &next[s]);
		if (log_batch_submit(p, b, shard_id(s), first) != 0)
			_exit(3);
		while (i < batches && log_completions_poll(p, &comp, 1) == 0)
			poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 100);
		if (i < batches) {
			struct ack a = { s, comp.record_count, comp.seq_first };

			if (comp.error != 0 || comp.seq_first != first ||
			    write(ledger, &a, sizeof(a)) != (ssize_t)sizeof(a))
				_exit(4);
		}
	}
	if (write(ready, "r", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

struct crash_check {
	uint32_t shard;
	uint64_t seq_expect;
	uint32_t bad;
};

static int
crash_check_fn(void *arg, const struct log_record_out *r)
{
	struct crash_check *c = arg;

	if (r->seq != c->seq_expect || !test_record_check(shard_id(c->shard), r, DATA_SIZE(r->seq)))
		c->bad++;
	c->seq_expect = r->seq + 1;
	return 0;
}

/* Highest acked end per shard from the ledger; checks acks per shard are in order. */
static void
ledger_read(uint64_t *acked_end, uint64_t seed)
{
	int fd = open(ledger_path, O_RDONLY);
	struct ack a;

	memset(acked_end, 0, SHARDS * sizeof(uint64_t));
	cr_assert_geq(fd, 0);
	while (read(fd, &a, sizeof(a)) == (ssize_t)sizeof(a)) {
		cr_assert_lt(a.shard, SHARDS, "TEST_SEED=%" PRIu64 ": bad ledger", seed);
		if (a.seq_first + a.count > acked_end[a.shard])
			acked_end[a.shard] = a.seq_first + a.count;
	}
	close(fd);
}

/*
 * Reopens and checks each shard from `from[s]` (what earlier rounds already
 * verified; 0 for the final full pass) to its durable end.
 */
static void
parent_verify(uint64_t seed, uint32_t iteration, uint64_t *from, uint64_t *total_acked)
{
	struct log_config c;
	struct log *log;
	struct log_reader *r;
	struct log_stats st;
	uint64_t acked_end[SHARDS];
	int err;

	config_crash(&c);
	ledger_read(acked_end, seed);
	err = log_open(&c, &log);
	cr_assert_eq(err, 0, "TEST_SEED=%" PRIu64 " iteration %u: reopen: %d", seed, iteration, err);
	cr_assert_eq(log_reader_open(log, &r), 0);
	*total_acked = 0;
	for (uint32_t s = 0; s < SHARDS; s++) {
		struct log_shard_info info;
		struct crash_check cc = { s, from[s], 0 };
		uint64_t seq = from[s];

		log_shard_info(log, shard_id(s), &info);
		cr_assert_geq(info.seq_durable, acked_end[s], "TEST_SEED=%" PRIu64 " iteration %u: "
			      "shard %u durable %" PRIu64 " < acked %" PRIu64, seed, iteration, s,
			      info.seq_durable, acked_end[s]);
		while (seq < info.seq_durable) {
			int n = log_read(r, shard_id(s), seq, 4096, 1u << 22, crash_check_fn, &cc, &seq);

			cr_assert_gt(n, 0, "TEST_SEED=%" PRIu64 ": read shard %u at %" PRIu64 ": %d",
				     seed, s, seq, n);
		}
		cr_assert_eq(cc.bad, 0, "TEST_SEED=%" PRIu64 " iteration %u: shard %u: %u wrong records",
			     seed, iteration, s, cc.bad);
		*total_acked += acked_end[s];
		from[s] = info.seq_durable;
	}
	log_reader_close(r);
	log_stats_read(log, &st);
	cr_assert_eq(st.corruptions, 0, "TEST_SEED=%" PRIu64 " iteration %u", seed, iteration);
	log_close(log);
}

static uint32_t
iterations(void)
{
	const char *env = getenv("CRASH_ITERATIONS");

	return env != NULL ? (uint32_t)strtoul(env, NULL, 0) : 120;
}

Test(log_crash, sigkill_loses_no_acked_record, .timeout = 180)
{
	uint64_t seed = seed_base();
	struct seed_rng rng;
	uint32_t count = iterations();
	uint64_t total_acked = 0;
	uint64_t from[SHARDS] = { 0 };

	seed_rng_init(&rng, seed);
	cr_assert_eq(test_dir_make(dir, sizeof(dir)), 0);
	snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
	snprintf(ledger_path, sizeof(ledger_path), "%s/ledger", dir);
	diag_level_set(DIAG_ERROR);
	for (uint32_t i = 0; i < count; i++) {
		pid_t pid = fork();
		int status;

		cr_assert_geq(pid, 0);
		if (pid == 0)
			child_main();
		/* 2 .. 120 ms: inside recovery, preparing spares, or appending. */
		nanosleep(&(struct timespec){ .tv_nsec = (long)(2 + seed_rng_below(&rng, 118)) *
					      1000000L }, NULL);
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "TEST_SEED=%" PRIu64 ": child exited %d", seed,
			  WEXITSTATUS(status));
		parent_verify(seed, i, from, &total_acked);
	}
	memset(from, 0, sizeof(from));
	parent_verify(seed, count, from, &total_acked);
	fprintf(stderr, "log_crash: %u kills, %" PRIu64 " acked records verified\n", count,
		total_acked);
	cr_assert_gt(total_acked, 0);
	test_dir_remove(dir);
}

static uint32_t
segment_files(void)
{
	DIR *d = opendir(log_dir);
	struct dirent *e;
	uint32_t count = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		count += strncmp(e->d_name, "seg-", 4) == 0 && len > 4 &&
			 strcmp(e->d_name + len - 4, ".log") == 0;
	}
	closedir(d);
	return count;
}

/*
 * Issue 14, finding 4, with real kills: 25 children each ack 3 small batches, submit a
 * fourth and are SIGKILLed; the parent reopens after each (another clean open and close).
 * Before, each open began a new segment (25 kills: 26 segments, and a small disk filled);
 * now all of it stays in the first 1 MiB segment, beside the pre-written spares.
 */
Test(log_crash, restarts_with_little_data_keep_one_segment, .timeout = 180)
{
	uint64_t seed = seed_base();
	struct log_verify_report rep;
	struct log_config c;
	uint64_t total_acked = 0;
	uint64_t from[SHARDS] = { 0 };

	config_crash(&c);
	cr_assert_eq(test_dir_make(dir, sizeof(dir)), 0);
	snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
	snprintf(ledger_path, sizeof(ledger_path), "%s/ledger", dir);
	diag_level_set(DIAG_ERROR);
	for (uint32_t i = 0; i < 25; i++) {
		int fds[2];
		pid_t pid;
		int status;
		char byte;

		cr_assert_eq(pipe(fds), 0);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			child_small(fds[1], 3);
		}
		close(fds[1]);
		/* The deadline only bounds a hang; the child says when it is ready. */
		cr_assert_eq(poll(&(struct pollfd){ .fd = fds[0], .events = POLLIN }, 1, 60000), 1,
			     "child %u never got its batches acked", i);
		cr_assert_eq(read(fds[0], &byte, 1), 1, "child %u died early", i);
		close(fds[0]);
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "child exited %d", WEXITSTATUS(status));
		parent_verify(seed, i, from, &total_acked);
		cr_assert_leq(segment_files(), 1 + LOG_SPARES_DEFAULT,
			      "after %u kills: %u segment files", i + 1, segment_files());
	}
	memset(from, 0, sizeof(from));
	parent_verify(seed, 25, from, &total_acked);
	cr_assert_geq(total_acked, 25 * 3);
	cr_assert_eq(log_verify(log_dir, &rep, NULL, NULL), 0);
	cr_assert_eq(rep.segments, 1, "%" PRIu64 " segments hold the data", rep.segments);
	cr_assert_eq(rep.corruptions, 0);
	test_dir_remove(dir);
}
