/*
 * bench_replica: what replication costs, in one process on this machine: a
 * leader and two followers (real logs on io_uring, loopback TCP).
 *
 *   1. latency, one batch of 100 records x 100 B in flight at a time: submit ->
 *      durable on the leader, and submit -> replica_acked(quorum) / (all);
 *   2. throughput, 200,000 records x 100 B submitted as fast as the producer can:
 *      records/s until durable on the leader, until quorum, until all.
 *
 * A benchmark() target (meson test --benchmark bench_replica): it prints
 * figures and asserts only that everything arrived.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "replica/replica.h"
#include "tests/nvme-log/log_test_util.h"

#define SHARD LOG_SHARD_ID(1, 0)
#define DATA 100u
#define LAT_BATCHES 500u
#define BATCH_RECORDS 100u
#define TPUT_RECORDS 200000u

struct node {
	char dir[600];
	struct log *log;
	struct log_producer *p;
	struct replica_follower *f;
};

static void
die(const char *what, int err)
{
	fprintf(stderr, "bench_replica: %s: %d\n", what, err);
	exit(1);
}

static void
node_open(struct node *n, const char *root, const char *name, bool follow)
{
	struct log_config c;
	int err;

	snprintf(n->dir, sizeof(n->dir), "%s/%s", root, name);
	log_config_default(&c);
	c.dir_path = n->dir;
	c.shards_max = 16;
	c.watermark_gated = true;
	if ((err = log_open(&c, &n->log)) != 0 || (err = log_producer_open(n->log, &n->p)) != 0)
		die("open", err);
	if (follow) {
		struct replica_follower_config fc = { .log = n->log };

		if ((err = replica_follower_start(&fc, &n->f)) != 0)
			die("follower", err);
	}
}

static uint64_t
acked(struct replica_leader *l, enum replica_acks acks)
{
	uint64_t seq = 0;

	replica_acked(l, SHARD, acks, &seq);
	return seq;
}

static void
wait_acked(struct replica_leader *l, enum replica_acks acks, uint64_t seq)
{
	while (acked(l, acks) < seq)
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
}

/* Submits one batch at `seq`; returns false when the pool is empty. */
static bool
submit(struct node *n, uint64_t seq)
{
	struct log_batch *b = log_batch_get(n->p);
	uint8_t data[DATA];
	char key[48];

	if (b == NULL)
		return false;
	for (uint32_t k = 0; k < BATCH_RECORDS; k++) {
		struct log_record_in rec;

		test_record_make(1, seq + k, DATA, data, key, &rec);
		if (log_batch_add(b, &rec) != 0)
			die("add", -1);
	}
	if (log_batch_submit(n->p, b, SHARD, 0) != 0)
		die("submit", -1);
	return true;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
print_lat(const char *what, uint64_t *ns)
{
	qsort(ns, LAT_BATCHES, sizeof(*ns), cmp_u64);
	printf("| %-32s | %8.0f | %8.0f | %8.0f |\n", what, (double)ns[LAT_BATCHES / 2] / 1e3,
	       (double)ns[LAT_BATCHES * 99 / 100] / 1e3, (double)ns[LAT_BATCHES - 1] / 1e3);
}

int
main(void)
{
	static uint64_t local_ns[LAT_BATCHES], quorum_ns[LAT_BATCHES], all_ns[LAT_BATCHES];
	char root[512];
	struct node l, f1, f2;
	struct replica_leader_config lc = { .follower_count = 2,
					    .watermark_acks = REPLICA_ACKS_QUORUM };
	struct replica_leader *leader;
	struct log_completion done[64];
	uint64_t seq = 0;
	uint64_t t0;
	uint64_t t_local = 0;
	int err;

	diag_level_set(DIAG_ERROR);
	if (test_dir_make(root, sizeof(root)) != 0)
		die("tmpdir", -1);
	node_open(&l, root, "leader", false);
	node_open(&f1, root, "f1", true);
	node_open(&f2, root, "f2", true);
	lc.log = l.log;
	snprintf(lc.followers[0].host, REPLICA_HOST_SIZE_MAX, "127.0.0.1");
	lc.followers[0].port = replica_follower_port(f1.f);
	snprintf(lc.followers[1].host, REPLICA_HOST_SIZE_MAX, "127.0.0.1");
	lc.followers[1].port = replica_follower_port(f2.f);
	if ((err = replica_leader_start(&lc, &leader)) != 0 ||
	    (err = replica_lead(leader, SHARD, 1)) != 0)
		die("leader", err);

	for (uint32_t i = 0; i < LAT_BATCHES; i++) {
		t0 = clock_mono_ns();
		submit(&l, seq);
		while (log_completions_poll(l.p, done, 1) == 0)
			;
		local_ns[i] = clock_mono_ns() - t0;
		seq += BATCH_RECORDS;
		replica_ship(leader, SHARD, seq);
		wait_acked(leader, REPLICA_ACKS_QUORUM, seq);
		quorum_ns[i] = clock_mono_ns() - t0;
		wait_acked(leader, REPLICA_ACKS_ALL, seq);
		all_ns[i] = clock_mono_ns() - t0;
	}
	printf("| one batch of %u x %u B in flight | p50 us | p99 us | max us |\n| --- | ---: | ---: | ---: |\n",
	       BATCH_RECORDS, DATA);
	print_lat("durable on the leader", local_ns);
	print_lat("acked by a quorum (2 of 3)", quorum_ns);
	print_lat("acked by all 3", all_ns);

	t0 = clock_mono_ns();
	for (uint64_t end = seq + TPUT_RECORDS; seq < end || t_local == 0;) {
		uint32_t got = log_completions_poll(l.p, done, 64);

		if (seq < end && submit(&l, seq))
			seq += BATCH_RECORDS;
		if (got > 0) {
			replica_ship(leader, SHARD, done[got - 1].seq_first + done[got - 1].record_count);
			if (done[got - 1].seq_first + done[got - 1].record_count == end)
				t_local = clock_mono_ns() - t0;
		}
	}
	wait_acked(leader, REPLICA_ACKS_QUORUM, seq);
	{
		uint64_t t_quorum = clock_mono_ns() - t0;

		wait_acked(leader, REPLICA_ACKS_ALL, seq);
		uint64_t t_all = clock_mono_ns() - t0;

		printf("\n| %u records x %u B, pipelined | records/s |\n| --- | ---: |\n", TPUT_RECORDS,
		       DATA);
		printf("| durable on the leader | %.0f |\n", TPUT_RECORDS / ((double)t_local / 1e9));
		printf("| acked by a quorum (2 of 3) | %.0f |\n", TPUT_RECORDS / ((double)t_quorum / 1e9));
		printf("| acked by all 3 | %.0f |\n", TPUT_RECORDS / ((double)t_all / 1e9));
	}
	replica_leader_stop(leader);
	replica_follower_stop(f1.f);
	replica_follower_stop(f2.f);
	log_producer_close(l.p);
	log_producer_close(f1.p);
	log_producer_close(f2.p);
	log_close(l.log);
	log_close(f1.log);
	log_close(f2.log);
	test_dir_remove(root);
	return 0;
}
