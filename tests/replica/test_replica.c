/*
 * replica: leader -> follower log shipping in one process, on real logs
 * (io_uring, real files in a temp directory) over TCP on 127.0.0.1 (ports
 * from the kernel): three nodes replicate with the same sequence numbers and
 * bytes; the quorum watermark under each acks mode; a restarted follower
 * catches up; a leader's unreplicated tail is cut after a failover to a
 * higher epoch (and stays cut after a restart); a leader of an older epoch is
 * fenced, at its LEAD and at a raw APPEND; corrupt frames reset the link and
 * are counted; back-pressure bounds the bytes in flight.
 *
 * Waits are for conditions, with generous deadlines (WAIT_NS), never for time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "replica/replica.h"
#include "replica/replica_wire.h"
#include "tests/nvme-log/log_test_util.h"
#include "tests/replica/replica_test_util.h"

#define WAIT_NS (60ull * 1000000000ull)
#define DATA 200u
#define SHARD_A LOG_SHARD_ID(7, 0)
#define SHARD_B LOG_SHARD_ID(7, 1)
#define CONTENT_X 0x11u   /* test_record_make's "shard": whose bytes a record carries. */
#define CONTENT_Y 0x22u

struct node {
	char dir[600];
	bool gated;
	uint64_t segment_size;     /* 0: 16 MiB. */
	struct log *log;
	struct log_producer *p;
	struct replica_follower *f;
	struct replica_leader *l;
	uint16_t port;
};

static char root[512];

static void
setup(void)
{
	diag_level_set(DIAG_ERROR);
	cr_assert_eq(test_dir_make(root, sizeof(root)), 0);
}

static void
teardown(void)
{
	test_dir_remove(root);
}

TestSuite(replica, .init = setup, .fini = teardown, .timeout = 240);

static void
node_open(struct node *n)
{
	struct log_config c;

	log_config_default(&c);
	c.dir_path = n->dir;
	c.segment_size = 16u << 20;
	if (n->segment_size != 0) {  /* Small segments: windows and batches fit them. */
		c.segment_size = n->segment_size;
		c.commit_window_bytes = n->segment_size / LOG_WINDOWS_PER_SEGMENT_MIN;
		c.batch_size = (uint32_t)(n->segment_size / LOG_BATCHES_PER_SEGMENT_MIN / 4u);
	}
	c.read_cache_bytes = 16u << 20;
	c.shards_max = 64;
	c.watermark_gated = n->gated;
	cr_assert_eq(log_open(&c, &n->log), 0, "open %s", n->dir);
	cr_assert_eq(log_producer_open(n->log, &n->p), 0);
}

/* segment_size: 0 for 16 MiB. */
static void
node_init_sized(struct node *n, const char *name, bool gated, uint64_t segment_size)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "%s/%s", root, name);
	n->gated = gated;
	n->segment_size = segment_size;
	node_open(n);
}

static void
node_init(struct node *n, const char *name, bool gated)
{
	node_init_sized(n, name, gated, 0);
}

static void
follow(struct node *n)
{
	struct replica_follower_config c = { .log = n->log, .port = n->port };

	cr_assert_eq(replica_follower_start(&c, &n->f), 0);
	n->port = replica_follower_port(n->f);
}

static void
unfollow(struct node *n)
{
	replica_follower_stop(n->f);
	n->f = NULL;
}

static void
lead(struct node *n, struct node **followers, uint32_t count, enum replica_acks wm,
     uint64_t inflight)
{
	struct replica_leader_config c = { .log = n->log, .follower_count = count,
					   .watermark_acks = wm, .inflight_bytes_max = inflight };

	for (uint32_t i = 0; i < count; i++) {
		snprintf(c.followers[i].host, sizeof(c.followers[i].host), "127.0.0.1");
		c.followers[i].port = followers[i]->port;
	}
	cr_assert_eq(replica_leader_start(&c, &n->l), 0);
}

static void
node_close(struct node *n)
{
	if (n->l != NULL)
		replica_leader_stop(n->l);
	if (n->f != NULL)
		replica_follower_stop(n->f);
	n->l = NULL;
	n->f = NULL;
	log_producer_close(n->p);
	log_close(n->log);
}

/* Adds `content`'s records [seq_first, seq_first + count) to a batch. */
static void
batch_fill(struct log_batch *b, uint32_t content, uint64_t seq_first, uint64_t count)
{
	raw_batch_fill(b, content, seq_first, count, DATA);
}

/* Appends records [seq_first, seq_first + count) of `content` and waits until durable. */
static void
append(struct node *n, uint64_t shard, uint32_t content, uint64_t seq_first, uint32_t count)
{
	uint32_t pending = 0;
	uint64_t seq = seq_first;

	while (seq < seq_first + count || pending > 0) {
		struct log_completion done[16];
		uint32_t got = log_completions_poll(n->p, done, 16);

		for (uint32_t i = 0; i < got; i++) {
			cr_assert_eq(done[i].error, 0);
			pending--;
		}
		if (seq < seq_first + count) {
			struct log_batch *b = log_batch_get(n->p);
			uint64_t first = seq;

			if (b == NULL)
				continue;
			seq = min_u64(seq + 50, seq_first + count);
			batch_fill(b, content, first, seq - first);
			/* At the expected numbers: the test knows what the shard holds. */
			cr_assert_eq(log_batch_submit_at(n->p, b, shard, first, LOG_EPOCH_NONE, 0), 0);
			pending++;
		}
	}
	if (n->l != NULL)
		cr_assert_eq(replica_ship(n->l, shard, seq), 0);
}

static uint64_t
local_end(struct node *n, uint64_t shard)
{
	struct log_shard_info info;

	cr_assert_eq(log_shard_info(n->log, shard, &info), 0);
	return info.seq_local;
}

static uint64_t
readable_end(struct node *n, uint64_t shard)
{
	struct log_shard_info info;

	cr_assert_eq(log_shard_info(n->log, shard, &info), 0);
	return info.seq_durable;
}

static uint64_t
acked(struct node *n, uint64_t shard, enum replica_acks acks)
{
	uint64_t seq = 0;

	cr_assert_eq(replica_acked(n->l, shard, acks, &seq), 0);
	return seq;
}

static bool
waited(bool (*cond)(void *), void *arg)
{
	uint64_t deadline = clock_mono_ns() + WAIT_NS;

	while (!cond(arg)) {
		if (clock_mono_ns() > deadline)
			return false;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return true;
}

struct acked_cond {
	struct node *n;
	uint64_t shard;
	enum replica_acks acks;
	uint64_t seq;
};

static bool
acked_reached(void *arg)
{
	struct acked_cond *c = arg;

	return acked(c->n, c->shard, c->acks) >= c->seq;
}

static void
wait_acked(struct node *n, uint64_t shard, enum replica_acks acks, uint64_t seq)
{
	struct acked_cond c = { n, shard, acks, seq };

	cr_assert(waited(acked_reached, &c), "acks %d of shard %lx reached %lu (at %lu)",
		  (int)acks, (unsigned long)shard, (unsigned long)seq,
		  (unsigned long)acked(n, shard, acks));
}

struct readable_cond {
	struct node *n;
	uint64_t shard;
	uint64_t seq;
};

static bool
readable_reached(void *arg)
{
	struct readable_cond *c = arg;

	return readable_end(c->n, c->shard) >= c->seq;
}

/* Asserts [from, to) of the shard reads as `content`'s records. */
static void
check_range(struct node *n, uint64_t shard, uint32_t content, uint64_t from, uint64_t to)
{
	raw_check_range(n->log, n->dir, shard, content, DATA, from, to);
}

Test(replica, three_nodes_hold_the_same_records_under_the_same_numbers)
{
	struct node l, f1, f2;
	struct node *fs[] = { &f1, &f2 };
	struct log_epoch_info ei;
	struct readable_cond rc1 = { &f1, SHARD_A, 600 };
	struct readable_cond rc2 = { &f2, SHARD_A, 600 };

	node_init(&l, "leader", true);
	node_init(&f1, "f1", true);
	node_init(&f2, "f2", true);
	follow(&f1);
	follow(&f2);
	lead(&l, fs, 2, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 1), 0);
	cr_assert_eq(replica_lead(l.l, SHARD_B, 1), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 600);
	append(&l, SHARD_B, CONTENT_Y, 0, 80);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 600);
	wait_acked(&l, SHARD_B, REPLICA_ACKS_ALL, 80);
	for (uint32_t i = 0; i < 2; i++) {
		check_range(fs[i], SHARD_A, CONTENT_X, 0, 600);
		check_range(fs[i], SHARD_B, CONTENT_Y, 0, 80);
		cr_assert_eq(local_end(fs[i], SHARD_A), 600, "nothing more");
		cr_assert_eq(log_epoch_info(fs[i]->log, SHARD_A, &ei), 0);
		cr_assert(ei.epoch_last == 1 && ei.epoch_last_start == 0 && ei.promised == 1,
			  "the follower keeps the leader's epoch history");
	}
	cr_assert(waited(readable_reached, &rc1) && waited(readable_reached, &rc2),
		  "the leader's watermark reaches the followers' readers");
	cr_assert_eq(readable_end(&l, SHARD_A), 600);
	node_close(&l);
	node_close(&f1);
	node_close(&f2);
}

Test(replica, the_watermark_follows_each_acks_mode)
{
	struct node l, f1, f2;
	struct node *fs[] = { &f1, &f2 };
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	/* f2's port: taken from the kernel now, f2 listens on it later. */
	cr_assert_eq(bind(probe, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
	node_init(&l, "leader", true);
	node_init(&f1, "f1", true);
	node_init(&f2, "f2", true);
	f2.port = ntohs(sa.sin_port);
	close(probe);
	follow(&f1);
	lead(&l, fs, 2, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 1), 0);

	append(&l, SHARD_A, CONTENT_X, 0, 100);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_QUORUM, 100);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_LEADER), 100);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_ALL), 0, "f2 holds nothing");
	{
		struct readable_cond rc = { &l, SHARD_A, 100 };

		cr_assert(waited(readable_reached, &rc));
	}

	unfollow(&f1);
	append(&l, SHARD_A, CONTENT_X, 100, 50);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_LEADER), 150, "the leader's own end");
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_QUORUM), 100, "no follower took 100..149");
	cr_assert_eq(readable_end(&l, SHARD_A), 100, "readers stop at the quorum watermark");
	cr_assert_eq(local_end(&l, SHARD_A), 150);

	follow(&f2);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_QUORUM, 150);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_ALL), 100, "f1 is still at 100");
	{
		struct readable_cond rc = { &l, SHARD_A, 150 };

		cr_assert(waited(readable_reached, &rc));
	}
	check_range(&f2, SHARD_A, CONTENT_X, 0, 150);
	cr_assert_eq(replica_acked(l.l, SHARD_B, REPLICA_ACKS_QUORUM, &(uint64_t){ 0 }), -ENOENT);
	node_close(&l);
	node_close(&f1);
	node_close(&f2);
}

Test(replica, a_restarted_follower_catches_up)
{
	struct node l, f1;
	struct node *fs[] = { &f1 };

	node_init(&l, "leader", false);
	node_init(&f1, "f1", true);
	follow(&f1);
	lead(&l, fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 3), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 300);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 300);

	node_close(&f1);                   /* Its log closed too. */
	append(&l, SHARD_A, CONTENT_X, 300, 700);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_ALL), 300);
	node_open(&f1);                    /* Reopened: recovery, same port. */
	follow(&f1);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 1000);
	check_range(&f1, SHARD_A, CONTENT_X, 0, 1000);
	{
		struct replica_link_stats st;

		cr_assert_eq(replica_leader_link_stats(l.l, 0, &st), 0);
		cr_assert_geq(st.connects, 2, "the link was dialled again");
		cr_assert_geq(st.records_shipped, 1000);
	}
	node_close(&l);
	node_close(&f1);
}

struct stats_cond {
	struct node *n;
	uint64_t resets;
};

static bool
resets_reached(void *arg)
{
	struct stats_cond *c = arg;
	struct replica_follower_stats st;

	replica_follower_stats(c->n->f, &st);
	return st.resets >= c->resets;
}

static bool
stale_reached(void *arg)
{
	struct node *n = arg;
	struct replica_follower_stats st;

	replica_follower_stats(n->f, &st);
	return st.stale_epochs >= 1;
}

static bool
fenced_counted(void *arg)
{
	struct node *n = arg;
	struct replica_link_stats st;

	replica_leader_link_stats(n->l, 0, &st);
	return st.fenced >= 1;
}

Test(replica, divergent_tail_is_cut_after_failover_and_old_epochs_are_fenced)
{
	struct node a, b, c, d;
	struct node *a_fs[] = { &b, &c };
	struct node *b_fs[] = { &a, &c };
	struct node *d_fs[] = { &c };
	struct replica_follower_stats fst;
	struct replica_link_stats lst;
	uint64_t seq;

	node_init(&a, "a", true);
	node_init(&b, "b", true);
	node_init(&c, "c", true);
	follow(&b);
	follow(&c);
	lead(&a, a_fs, 2, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(a.l, SHARD_A, 1), 0);
	append(&a, SHARD_A, CONTENT_X, 0, 100);
	wait_acked(&a, SHARD_A, REPLICA_ACKS_ALL, 100);

	/* A is cut off from its followers, then writes a tail nobody else has. */
	replica_leader_stop(a.l);
	a.l = NULL;
	append(&a, SHARD_A, CONTENT_X, 100, 30);
	cr_assert_eq(local_end(&a, SHARD_A), 130);
	cr_assert_eq(readable_end(&a, SHARD_A), 100, "the unreplicated tail was never readable");

	/* B is elected in epoch 2 and writes its own records from 100 on. */
	unfollow(&b);
	follow(&a);
	lead(&b, b_fs, 2, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(b.l, SHARD_A, 2), 0);
	append(&b, SHARD_A, CONTENT_Y, 100, 20);
	wait_acked(&b, SHARD_A, REPLICA_ACKS_ALL, 120);

	check_range(&a, SHARD_A, CONTENT_X, 0, 100);
	check_range(&a, SHARD_A, CONTENT_Y, 100, 120);
	cr_assert_eq(local_end(&a, SHARD_A), 120, "A's own tail is gone");
	check_range(&c, SHARD_A, CONTENT_Y, 100, 120);
	replica_follower_stats(a.f, &fst);
	cr_assert_eq(fst.truncations, 1);
	cr_assert_eq(log_epoch_begin(a.log, SHARD_A, 1, 130), -ESTALE,
		     "the old leader cannot lead in its old epoch again");

	/* After a restart of A, the cut tail stays cut. */
	unfollow(&a);
	node_close(&a);
	node_open(&a);
	cr_assert_eq(local_end(&a, SHARD_A), 120);
	check_range(&a, SHARD_A, CONTENT_Y, 100, 120);
	{
		struct log_verify_report rep;

		cr_assert_eq(log_verify(a.dir, &rep, NULL, NULL), 0,
			     "sluice log verify: a cut tail is not corruption (%lu, %lu gaps)",
			     (unsigned long)rep.corruptions, (unsigned long)rep.sequence_gaps);
		cr_assert_eq(rep.records, 150, "the 30 cut records stay in their segment until it goes");
	}
	follow(&a);

	/* D still believes it leads in epoch 1: C refuses its LEAD. */
	node_init(&d, "d", false);
	cr_assert_eq(log_epoch_begin(d.log, SHARD_A, 1, 0), 0);
	append(&d, SHARD_A, CONTENT_X, 0, 140);
	lead(&d, d_fs, 1, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(d.l, SHARD_A, 1), 0);
	{
		uint64_t deadline = clock_mono_ns() + WAIT_NS;

		while (replica_acked(d.l, SHARD_A, REPLICA_ACKS_QUORUM, &seq) != -ESTALE)
			cr_assert_lt(clock_mono_ns(), deadline, "D learns it is fenced");
	}
	cr_assert(waited(fenced_counted, &d), "D's link counted the FENCED");
	cr_assert_eq(replica_leader_link_stats(d.l, 0, &lst), 0);
	cr_assert_eq(lst.fenced, 1);
	cr_assert(waited(stale_reached, &c), "C counted the stale LEAD");
	cr_assert_eq(local_end(&c, SHARD_A), 120, "C took nothing from D");
	check_range(&c, SHARD_A, CONTENT_Y, 100, 120);

	/* A raw APPEND of epoch 1 (whoever sends it) is refused with FENCED. */
	{
		struct replica_buf out;
		struct replica_buf in;
		struct replica_append_build bld;
		struct replica_append ap = { .shard_id = SHARD_A, .epoch = 1, .seq_first = 120,
					     .records_epoch = 1 };
		struct log_record_out rec = { .seq = 120, .partition_key = (const uint8_t *)"k",
					      .partition_key_size = 1,
					      .data = (const uint8_t *)"stale", .data_size = 5 };
		struct replica_ctl m;
		int fd;

		cr_assert_eq(replica_buf_init(&out, REPLICA_FRAME_SIZE_MAX), 0);
		cr_assert_eq(replica_buf_init(&in, 4096), 0);
		replica_append_begin(&bld, &out, &ap);
		replica_append_record(&bld, &rec);
		replica_append_end(&bld);
		fd = raw_send(c.port, out.data, out.tail);
		cr_assert_eq(raw_frame(fd, &in, &m), REPLICA_MSG_FENCED);
		cr_assert(m.shard_id == SHARD_A && m.epoch == 2, "C names the epoch it promised");
		close(fd);
		replica_buf_fini(&out);
		replica_buf_fini(&in);
	}
	cr_assert_eq(local_end(&c, SHARD_A), 120);
	append(&b, SHARD_A, CONTENT_Y, 120, 10);
	wait_acked(&b, SHARD_A, REPLICA_ACKS_ALL, 130);
	check_range(&a, SHARD_A, CONTENT_Y, 100, 130);
	check_range(&c, SHARD_A, CONTENT_Y, 100, 130);
	node_close(&d);
	node_close(&b);
	node_close(&a);
	node_close(&c);
}

Test(replica, a_corrupt_frame_resets_the_link_and_is_counted)
{
	struct node l, f1;
	struct node *fs[] = { &f1 };
	struct replica_buf buf;
	struct replica_follower_stats st;
	struct stats_cond sc = { &f1, 1 };
	uint8_t junk[64];
	int fd;

	node_init(&l, "leader", false);
	node_init(&f1, "f1", true);
	follow(&f1);

	/* A LEAD whose payload lost a bit on the way: the CRC refuses it. */
	cr_assert_eq(replica_buf_init(&buf, 4096), 0);
	cr_assert_eq(replica_put_ctl(&buf, REPLICA_MSG_LEAD, SHARD_A, 1, 0), 0);
	buf.data[REPLICA_HEADER_SIZE + 3] ^= 0x10;
	fd = raw_send(f1.port, buf.data, buf.tail);
	buf.head = buf.tail = 0;
	{
		struct replica_ctl m;

		cr_assert_eq(raw_frame(fd, &buf, &m), -1, "the follower closes the link");
	}
	close(fd);
	cr_assert(waited(resets_reached, &sc));
	replica_follower_stats(f1.f, &st);
	cr_assert_eq(st.bad_frames, 1);

	/* Not even a frame: wrong magic. */
	memset(junk, 0x5a, sizeof(junk));
	fd = raw_send(f1.port, junk, sizeof(junk));
	sc.resets = 2;
	cr_assert(waited(resets_reached, &sc));
	close(fd);
	replica_follower_stats(f1.f, &st);
	cr_assert_eq(st.bad_frames, 2);
	{
		struct log_epoch_info ei;

		cr_assert_eq(log_epoch_info(f1.log, SHARD_A, &ei), 0);
		cr_assert_eq(ei.promised, 0, "nothing of the bad frames was acted on");
	}

	/* The follower serves a real leader afterwards. */
	lead(&l, fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 1), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 50);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 50);
	check_range(&f1, SHARD_A, CONTENT_X, 0, 50);
	replica_buf_fini(&buf);
	node_close(&l);
	node_close(&f1);
}

Test(replica, back_pressure_bounds_the_bytes_in_flight)
{
	struct node l, f1;
	struct node *fs[] = { &f1 };
	struct replica_link_stats st;

	node_init(&l, "leader", false);
	node_init(&f1, "f1", true);
	/* ~4 MiB ready before the link exists: more than REPLICA_INFLIGHT_BYTES_MIN. */
	cr_assert_eq(log_epoch_begin(l.log, SHARD_A, 1, 0), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 20000);
	follow(&f1);
	lead(&l, fs, 1, REPLICA_ACKS_ALL, REPLICA_INFLIGHT_BYTES_MIN);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 1), 0);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 20000);
	check_range(&f1, SHARD_A, CONTENT_X, 0, 20000);
	cr_assert_eq(replica_leader_link_stats(l.l, 0, &st), 0);
	cr_assert_gt(st.backpressured, 0, "shipping stopped at the bound and went on after ACKs");
	node_close(&l);
	node_close(&f1);
}

/* Appends [seq_first, seq_first + count) of `content` as ONE batch. */
/* One batch of `content`'s records [seq_first, +count) submitted at `at` in `epoch`: its error. */
static int
submit_one_batch(struct node *n, uint32_t content, uint64_t seq_first, uint32_t count,
		 uint64_t at, uint64_t epoch)
{
	struct log_batch *b = log_batch_get(n->p);
	struct log_completion done;

	cr_assert_not_null(b);
	batch_fill(b, content, seq_first, count);
	cr_assert_eq(log_batch_submit_at(n->p, b, SHARD_A, at, epoch, 0), 0);
	while (log_completions_poll(n->p, &done, 1) == 0)
		;
	return done.error;
}

static void
append_one_batch(struct node *n, uint32_t content, uint64_t seq_first, uint32_t count)
{
	cr_assert_eq(submit_one_batch(n, content, seq_first, count, seq_first, LOG_EPOCH_NONE), 0);
}

Test(replica, a_cut_inside_a_batch_keeps_what_the_leader_has)
{
	struct node f1, n;
	struct node *fs[] = { &f1 };
	struct replica_follower_stats st;
	struct log_epoch_info ei;
	uint64_t e;
	uint64_t end;

	/* f1 holds epoch 1's records 0..99 in one batch. */
	node_init(&f1, "f1", true);
	cr_assert_eq(log_epoch_record(f1.log, SHARD_A, 1, 0), 0);
	append_one_batch(&f1, CONTENT_X, 0, 100);
	/* The new leader had epoch 1 only up to 60 (the same records), then leads epoch 2. */
	node_init(&n, "n", false);
	cr_assert_eq(log_epoch_begin(n.log, SHARD_A, 1, 0), 0);
	append(&n, SHARD_A, CONTENT_X, 0, 60);
	follow(&f1);
	lead(&n, fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(n.l, SHARD_A, 2), 0);
	append(&n, SHARD_A, CONTENT_Y, 60, 30);
	wait_acked(&n, SHARD_A, REPLICA_ACKS_ALL, 90);

	check_range(&f1, SHARD_A, CONTENT_X, 0, 60);
	check_range(&f1, SHARD_A, CONTENT_Y, 60, 90);
	cr_assert_eq(local_end(&f1, SHARD_A), 90);
	replica_follower_stats(f1.f, &st);
	cr_assert_eq(st.truncations, 1);
	cr_assert_eq(st.records_kept, 60, "the batch went whole, its first 60 records came back");
	cr_assert_eq(log_epoch_at(f1.log, SHARD_A, 30, &e, &end), 0);
	cr_assert(e == 1 && end == 60, "kept records stay in epoch 1, which ends at 60");
	cr_assert_eq(log_epoch_info(f1.log, SHARD_A, &ei), 0);
	cr_assert(ei.epoch_last == 2 && ei.epoch_last_start == 60);
	node_close(&n);
	node_close(&f1);
	node_open(&f1);
	check_range(&f1, SHARD_A, CONTENT_X, 0, 60);
	check_range(&f1, SHARD_A, CONTENT_Y, 60, 90);
	node_close(&f1);
}

static void
peer_of(const struct node *n, struct replica_peer *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->host, sizeof(p->host), "127.0.0.1");
	p->port = n->port;
}

/*
 * Cluster placement gives each shard its own followers: a leader with no
 * configured followers leads shard A on {f1, f2} and shard B on {f3}; each
 * follower holds only its shards, acks count each shard's own set, a set
 * changed within the epoch moves the counting at once, and an unled shard never
 * acknowledges again until a newer epoch leads it.
 */
Test(replica, each_shard_ships_to_its_own_replica_set)
{
	struct node l, f1, f2, f3;
	struct replica_peer a_set[2];
	struct replica_peer b_set[1];
	struct replica_peer five[REPLICA_FOLLOWERS_MAX + 1];
	struct log_shard_info info;
	uint64_t seq = 0;

	node_init(&l, "leader", true);
	node_init(&f1, "f1", true);
	node_init(&f2, "f2", true);
	node_init(&f3, "f3", true);
	follow(&f1);
	follow(&f2);
	follow(&f3);
	lead(&l, NULL, 0, REPLICA_ACKS_QUORUM, 0);
	peer_of(&f1, &a_set[0]);
	peer_of(&f2, &a_set[1]);
	peer_of(&f3, &b_set[0]);
	cr_assert_eq(replica_lead_set(l.l, SHARD_A, 1, a_set, 2), 0);
	cr_assert_eq(replica_lead_set(l.l, SHARD_B, 1, b_set, 1), 0);
	cr_assert_eq(replica_leader_link_count(l.l), 3u, "the union of the sets");
	append(&l, SHARD_A, CONTENT_X, 0, 300);
	append(&l, SHARD_B, CONTENT_Y, 0, 70);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 300);
	wait_acked(&l, SHARD_B, REPLICA_ACKS_ALL, 70);
	{
		struct pollfd pfd = { .fd = replica_leader_doorbell_fd(l.l), .events = POLLIN };

		cr_assert_eq(poll(&pfd, 1, (int)(WAIT_NS / 1000000u)), 1,
			     "the followers' acknowledgements rang the doorbell");
	}
	check_range(&f1, SHARD_A, CONTENT_X, 0, 300);
	check_range(&f2, SHARD_A, CONTENT_X, 0, 300);
	check_range(&f3, SHARD_B, CONTENT_Y, 0, 70);
	cr_assert(log_shard_info(f3.log, SHARD_A, &info) != 0 || info.seq_local == 0,
		  "f3 holds nothing of shard A");
	cr_assert(log_shard_info(f1.log, SHARD_B, &info) != 0 || info.seq_local == 0,
		  "f1 holds nothing of shard B");
	cr_assert(log_shard_info(f2.log, SHARD_B, &info) != 0 || info.seq_local == 0,
		  "f2 holds nothing of shard B");

	/* f3 stops: B (its set is f3 alone) waits for quorum and all; A does not notice. */
	unfollow(&f3);
	append(&l, SHARD_B, CONTENT_Y, 70, 30);
	append(&l, SHARD_A, CONTENT_X, 300, 30);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 330);
	cr_assert_eq(acked(&l, SHARD_B, REPLICA_ACKS_LEADER), 100);
	cr_assert_eq(acked(&l, SHARD_B, REPLICA_ACKS_QUORUM), 70, "2 replicas: both count");
	/* The set changes within the epoch: B on {f1}; f1 catches B up from 0. */
	cr_assert_eq(replica_lead_set(l.l, SHARD_B, 1, a_set, 1), 0);
	wait_acked(&l, SHARD_B, REPLICA_ACKS_ALL, 100);
	check_range(&f1, SHARD_B, CONTENT_Y, 0, 100);

	/* Unled: no more acknowledgements, not even the leader's own. */
	cr_assert_eq(replica_unlead(l.l, SHARD_B), 0);
	cr_assert_eq(replica_acked(l.l, SHARD_B, REPLICA_ACKS_LEADER, &seq), -ESTALE);
	cr_assert_eq(replica_lead_set(l.l, SHARD_B, 1, a_set, 1), -ESTALE, "not in that epoch");
	cr_assert_eq(replica_unlead(l.l, LOG_SHARD_ID(9, 9)), -ENOENT);
	cr_assert_eq(replica_lead_set(l.l, SHARD_B, 2, a_set, 2), 0, "a newer epoch leads again");
	append(&l, SHARD_B, CONTENT_Y, 100, 10);
	wait_acked(&l, SHARD_B, REPLICA_ACKS_ALL, 110);
	check_range(&f2, SHARD_B, CONTENT_Y, 0, 110);

	/* More distinct peers than REPLICA_FOLLOWERS_MAX: refused, nothing changes. */
	for (uint32_t i = 0; i < REPLICA_FOLLOWERS_MAX + 1; i++) {
		memset(&five[i], 0, sizeof(five[i]));
		snprintf(five[i].host, sizeof(five[i].host), "127.0.0.1");
		five[i].port = (uint16_t)(1 + i);  /* Never dialled successfully: no listener. */
	}
	cr_assert_eq(replica_lead_set(l.l, SHARD_A, 1, five, REPLICA_FOLLOWERS_MAX + 1), -EINVAL);
	cr_assert_eq(replica_lead_set(l.l, SHARD_A, 1, five, 2), -ENOSPC,
		     "3 links + 2 new > REPLICA_FOLLOWERS_MAX");
	append(&l, SHARD_A, CONTENT_X, 330, 10);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, 340);
	node_close(&l);
	node_close(&f1);
	node_close(&f2);
	node_close(&f3);
}

/*
 * The in-sync set caps quorum acknowledgements: with f1 and f2 in sync, f2
 * stopped holds a quorum answer back (every in-sync replica must hold what is
 * acknowledged: one of them may lead next); once f2 leaves the set, a majority
 * suffices again. acks = all is not changed by it.
 */
Test(replica, the_in_sync_set_caps_quorum_acknowledgements)
{
	struct node l, f1, f2;
	struct node *fs[] = { &f1, &f2 };
	struct replica_peer both[2];
	struct replica_peer stranger;

	node_init(&l, "leader", true);
	node_init(&f1, "f1", true);
	node_init(&f2, "f2", true);
	follow(&f1);
	follow(&f2);
	lead(&l, fs, 2, REPLICA_ACKS_QUORUM, 0);
	peer_of(&f1, &both[0]);
	peer_of(&f2, &both[1]);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 1), 0);
	cr_assert_eq(replica_in_sync_set(l.l, SHARD_A, both, 2), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 100);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_QUORUM, 100);

	unfollow(&f2);
	append(&l, SHARD_A, CONTENT_X, 100, 50);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_LEADER, 150);
	{
		struct log_shard_info info;
		uint64_t f1_end = 0;

		/* f1 got all 150 (its own end), yet the quorum answer waits for f2. */
		cr_assert_eq(replica_leader_link_acked(l.l, 0, SHARD_A, &f1_end), 0);
		for (uint64_t deadline = clock_mono_ns() + WAIT_NS; f1_end < 150 &&
		     clock_mono_ns() < deadline;) {
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
			cr_assert_eq(replica_leader_link_acked(l.l, 0, SHARD_A, &f1_end), 0);
		}
		cr_assert_eq(f1_end, 150u);
		cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_QUORUM), 100, "capped by f2 in sync");
		cr_assert_eq(log_shard_info(l.log, SHARD_A, &info), 0);
		cr_assert_eq(info.seq_durable, 100, "readers wait too");
	}
	cr_assert_eq(replica_in_sync_set(l.l, SHARD_A, both, 1), 0, "f2 leaves the set");
	wait_acked(&l, SHARD_A, REPLICA_ACKS_QUORUM, 150);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_ALL), 100, "all still waits for f2");

	memset(&stranger, 0, sizeof(stranger));
	snprintf(stranger.host, sizeof(stranger.host), "127.0.0.1");
	stranger.port = 1;
	cr_assert_eq(replica_in_sync_set(l.l, SHARD_A, &stranger, 1), -EINVAL);
	cr_assert_eq(replica_in_sync_set(l.l, SHARD_B, both, 1), -ENOENT);
	cr_assert_eq(replica_leader_link_count(l.l), 2u, "no link added by a refusal");
	node_close(&l);
	node_close(&f1);
	node_close(&f2);
}

/*
 * A follower's acknowledged end belongs to one epoch. A leads epoch 1 on {B, C}
 * and B acknowledges 0..100; C, in sync but stopped at 50, holds the quorum
 * answer at 50. C is elected (epoch 2) and writes its own 50..60: A's and B's
 * unacknowledged 50..100 are cut. A leads again in epoch 3 on {B} while B is
 * down: B holds 60, so nothing A writes past 60 may count as on B (the end B
 * acknowledged in epoch 1, 100, is about records B no longer holds).
 */
Test(replica, an_acknowledged_end_from_an_older_epoch_is_not_counted)
{
	struct node a, b, c;
	struct node *c_fs[] = { &a, &b };
	struct replica_peer bc[2];
	struct replica_peer b_only[1];
	uint64_t b_acked = 0;

	node_init(&a, "a", true);
	node_init(&b, "b", true);
	node_init(&c, "c", true);
	follow(&a);
	follow(&b);
	follow(&c);
	peer_of(&b, &bc[0]);
	peer_of(&c, &bc[1]);
	peer_of(&b, &b_only[0]);
	lead(&a, NULL, 0, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead_set(a.l, SHARD_A, 1, bc, 2), 0);
	cr_assert_eq(replica_in_sync_set(a.l, SHARD_A, bc, 2), 0);
	append(&a, SHARD_A, CONTENT_X, 0, 50);
	wait_acked(&a, SHARD_A, REPLICA_ACKS_ALL, 50);
	unfollow(&c);
	append(&a, SHARD_A, CONTENT_X, 50, 50);
	cr_assert_eq(replica_leader_link_acked(a.l, 0, SHARD_A, &b_acked), 0);
	for (uint64_t deadline = clock_mono_ns() + WAIT_NS; b_acked < 100;) {
		cr_assert_lt(clock_mono_ns(), deadline, "B acknowledges 100");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		cr_assert_eq(replica_leader_link_acked(a.l, 0, SHARD_A, &b_acked), 0);
	}
	cr_assert_eq(acked(&a, SHARD_A, REPLICA_ACKS_QUORUM), 50, "capped by C in sync");

	/* C (in sync: it holds every acknowledged record) leads epoch 2. */
	cr_assert_eq(replica_unlead(a.l, SHARD_A), 0);
	lead(&c, c_fs, 2, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead(c.l, SHARD_A, 2), 0);
	append(&c, SHARD_A, CONTENT_Y, 50, 10);
	wait_acked(&c, SHARD_A, REPLICA_ACKS_ALL, 60);
	check_range(&a, SHARD_A, CONTENT_Y, 50, 60);
	check_range(&b, SHARD_A, CONTENT_Y, 50, 60);
	cr_assert_eq(local_end(&b, SHARD_A), 60, "B's 60..100 of epoch 1 are cut");

	/* B goes down; A leads epoch 3 on {B} and writes 60..90 alone. */
	cr_assert_eq(replica_unlead(c.l, SHARD_A), 0);
	unfollow(&b);
	cr_assert_eq(replica_lead_set(a.l, SHARD_A, 3, b_only, 1), 0);
	append(&a, SHARD_A, CONTENT_X, 60, 30);
	wait_acked(&a, SHARD_A, REPLICA_ACKS_LEADER, 90);
	cr_assert_eq(replica_leader_link_acked(a.l, 0, SHARD_A, &b_acked), 0);
	cr_assert_leq(b_acked, 60, "B holds 60: its end from epoch 1 (100) is not counted");
	cr_assert_leq(acked(&a, SHARD_A, REPLICA_ACKS_QUORUM), 60, "only A holds 60..90");
	cr_assert_leq(acked(&a, SHARD_A, REPLICA_ACKS_ALL), 60);

	/* B back: it catches up, and then the quorum answer moves. */
	follow(&b);
	wait_acked(&a, SHARD_A, REPLICA_ACKS_ALL, 90);
	check_range(&b, SHARD_A, CONTENT_Y, 50, 60);
	check_range(&b, SHARD_A, CONTENT_X, 60, 90);
	node_close(&c);
	node_close(&a);
	node_close(&b);
}

/*
 * A deposed leader that has not heard of its successor (cut from etcd: its
 * placement never changes) must not add records among the successor's. O leads
 * epoch 1 and wrote 0..10; N (with those records) leads epoch 2 on {O} and
 * writes 10..20 to O. O's own leader still believes in epoch 1: it must answer
 * -ESTALE (no acks, no appends), and an append it had already decided on, made
 * in its epoch as the API thread makes it, is refused by the log: O's log stays
 * N's, record for record.
 */
Test(replica, a_leader_that_promised_a_newer_epoch_neither_appends_nor_acknowledges)
{
	struct node o, n;
	struct node *n_fs[] = { &o };
	uint64_t epoch = 0;
	uint64_t seq = 0;

	node_init(&o, "o", true);
	node_init(&n, "n", true);
	follow(&o);
	lead(&o, NULL, 0, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead_set(o.l, SHARD_A, 1, NULL, 0), 0);
	cr_assert_eq(replica_lead_epoch(o.l, SHARD_A, &epoch), 0);
	cr_assert_eq(epoch, 1);
	append(&o, SHARD_A, CONTENT_X, 0, 10);
	cr_assert_eq(acked(&o, SHARD_A, REPLICA_ACKS_QUORUM), 10, "a set of one: its own end");

	cr_assert_eq(log_epoch_begin(n.log, SHARD_A, 1, 0), 0);
	append(&n, SHARD_A, CONTENT_X, 0, 10);
	lead(&n, n_fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(n.l, SHARD_A, 2), 0);
	append(&n, SHARD_A, CONTENT_Y, 10, 10);
	wait_acked(&n, SHARD_A, REPLICA_ACKS_ALL, 20);

	cr_assert_eq(replica_acked(o.l, SHARD_A, REPLICA_ACKS_LEADER, &seq), -ESTALE,
		     "O promised epoch 2: it acknowledges nothing as the leader of 1");
	cr_assert_eq(replica_lead_epoch(o.l, SHARD_A, &epoch), -ESTALE);
	cr_assert_eq(submit_one_batch(&o, CONTENT_X, 20, 5, UINT64_MAX, 1), -ESTALE,
		     "an epoch-1 append after the promise of 2 is refused");
	cr_assert_eq(local_end(&o, SHARD_A), 20);

	append(&n, SHARD_A, CONTENT_Y, 20, 10);
	wait_acked(&n, SHARD_A, REPLICA_ACKS_ALL, 30);
	check_range(&o, SHARD_A, CONTENT_X, 0, 10);
	check_range(&o, SHARD_A, CONTENT_Y, 10, 30);
	node_close(&n);
	node_close(&o);
}

/*
 * replica_lead_isr takes the leadership and the in-sync set in one step: a new
 * epoch's quorum answers are capped by its in-sync followers from the first
 * ACK on. Shard A: {f1, f2} with f1 in sync and down; f2 holds everything, yet
 * nothing is acknowledged until f1 is back. Shard B, led with replica_lead_set
 * alone (no set given: none, a majority suffices), acknowledges with f2.
 */
Test(replica, a_new_epoch_starts_with_its_in_sync_set)
{
	struct node l, f1, f2;
	struct replica_peer both[2];
	struct replica_peer stranger;
	uint64_t f2_end = 0;

	node_init(&l, "leader", true);
	node_init(&f1, "f1", true);
	node_init(&f2, "f2", true);
	follow(&f1);
	follow(&f2);
	unfollow(&f1);                     /* Its port stays: it comes back on it. */
	peer_of(&f1, &both[0]);
	peer_of(&f2, &both[1]);
	lead(&l, NULL, 0, REPLICA_ACKS_QUORUM, 0);
	cr_assert_eq(replica_lead_isr(l.l, SHARD_A, 1, both, 2, both, 1), 0);
	cr_assert_eq(replica_lead_set(l.l, SHARD_B, 1, both, 2), 0);
	append(&l, SHARD_A, CONTENT_X, 0, 50);
	append(&l, SHARD_B, CONTENT_Y, 0, 50);
	wait_acked(&l, SHARD_B, REPLICA_ACKS_QUORUM, 50);
	for (uint64_t deadline = clock_mono_ns() + WAIT_NS; f2_end < 50;) {
		cr_assert_lt(clock_mono_ns(), deadline, "f2 acknowledges shard A");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		cr_assert_eq(replica_leader_link_acked(l.l, 1, SHARD_A, &f2_end), 0);
	}
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_QUORUM), 0, "capped by f1, in sync from the start");

	memset(&stranger, 0, sizeof(stranger));
	snprintf(stranger.host, sizeof(stranger.host), "127.0.0.1");
	stranger.port = 1;
	cr_assert_eq(replica_lead_isr(l.l, SHARD_A, 1, both, 2, &stranger, 1), -EINVAL);
	cr_assert_eq(acked(&l, SHARD_A, REPLICA_ACKS_QUORUM), 0, "the set unchanged");

	follow(&f1);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_QUORUM, 50);
	check_range(&f1, SHARD_A, CONTENT_X, 0, 50);
	node_close(&l);
	node_close(&f1);
	node_close(&f2);
}

#define AWAY_RECORDS 12000u  /* 200-byte records: several 1 MiB segments, sealed and expired. */
#define EXPIRED_NS 2000000000000000000ull  /* 2033: test_record_make's records (2023) expired. */

/* The leader's retention drops every sealed segment: returns its new trim horizon. */
static uint64_t
leader_expire(struct node *l, uint64_t above)
{
	struct log_shard_info info;

	cr_assert_eq(log_retention_run(l->log, EXPIRED_NS), 0);
	cr_assert_eq(log_shard_info(l->log, SHARD_A, &info), 0);
	cr_assert_gt(info.seq_trim, above, "retention dropped what the follower lacks (%lu)",
		     (unsigned long)info.seq_trim);
	return info.seq_trim;
}

/* The follower's shard starts at `trim`, reads as expired below and as the leader's above. */
static void
check_started(struct node *f, uint64_t trim, uint64_t end)
{
	struct test_collect c = { .shard_id = CONTENT_X, .data_size = DATA };
	struct log_shard_info info;
	struct log_reader *r;
	uint64_t next;

	cr_assert_eq(log_shard_info(f->log, SHARD_A, &info), 0);
	cr_assert_eq(info.seq_trim, trim, "the follower starts at the leader's first retained"
		     " record (%lu, not %lu)", (unsigned long)info.seq_trim, (unsigned long)trim);
	cr_assert_eq(info.seq_local, end);
	cr_assert_eq(log_reader_open(f->log, &r), 0);
	cr_assert_eq(log_read(r, SHARD_A, 0, 1, UINT64_MAX, test_collect_fn, &c, &next), -ERANGE);
	cr_assert_eq(log_read(r, SHARD_A, trim - 1, 1, UINT64_MAX, test_collect_fn, &c, &next),
		     -ERANGE, "the gap reads as expired, as on the leader");
	log_reader_close(r);
	free(c.seqs);
	check_range(f, SHARD_A, CONTENT_X, trim, end);
}

/*
 * Issue 15: a follower away longer than retention. While it is down, the leader takes
 * records across several segments and its retention drops them: the follower's end (300)
 * is below the leader's first retained record. Back, the follower is told to start there
 * (START): it drops what it held, as retention would, takes the leader's records from that
 * point and is caught up (every record acknowledged by all). The leader never ships below
 * its horizon. Away again, with the history it began at the start, it starts again; a
 * restart after catching up goes on as usual.
 */
Test(replica, a_follower_away_longer_than_retention_starts_at_the_leaders_horizon)
{
	struct node l, f1;
	struct node *fs[] = { &f1 };
	struct replica_link_stats st;
	struct replica_follower_stats fst;
	uint64_t end = 300;
	uint64_t trim;
	uint64_t trim2;

	node_init_sized(&l, "leader", false, 1u << 20);
	node_init(&f1, "f1", true);
	follow(&f1);
	lead(&l, fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 3), 0);
	append(&l, SHARD_A, CONTENT_X, 0, (uint32_t)end);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, end);

	node_close(&f1);
	append(&l, SHARD_A, CONTENT_X, end, AWAY_RECORDS);
	trim = leader_expire(&l, end);
	append(&l, SHARD_A, CONTENT_X, end + AWAY_RECORDS, 100);
	end += AWAY_RECORDS + 100;
	node_open(&f1);
	follow(&f1);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, end);
	check_started(&f1, trim, end);
	cr_assert_eq(replica_leader_link_stats(l.l, 0, &st), 0);
	cr_assert_eq(st.starts, 1);
	cr_assert_leq(st.records_shipped, 300 + (end - trim), "nothing below the horizon shipped");
	replica_follower_stats(f1.f, &fst);
	cr_assert_eq(fst.starts, 1);

	node_close(&f1);  /* Away again, with the epoch history its start began. */
	append(&l, SHARD_A, CONTENT_X, end, AWAY_RECORDS);
	trim2 = leader_expire(&l, end);
	end += AWAY_RECORDS;
	node_open(&f1);
	follow(&f1);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, end);
	check_started(&f1, trim2, end);

	node_close(&f1);  /* Caught up: a restart goes on from its end. */
	append(&l, SHARD_A, CONTENT_X, end, 100);
	end += 100;
	node_open(&f1);
	follow(&f1);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, end);
	check_started(&f1, trim2, end);
	cr_assert_eq(replica_leader_link_stats(l.l, 0, &st), 0);
	cr_assert_eq(st.starts, 2, "a follower that holds the start needs none");
	node_close(&l);
	node_close(&f1);
}

/*
 * A replica that joins after the leader's retention trimmed the shard (a replacement
 * starts with an empty log): its first handshake ends at 0, below the leader's
 * horizon, and it starts there too instead of waiting for records that expired.
 */
Test(replica, a_replica_added_after_the_leaders_retention_starts_at_its_horizon)
{
	struct node l, f2;
	struct node *fs[] = { &f2 };
	uint64_t end = AWAY_RECORDS + 100;
	uint64_t trim;

	node_init_sized(&l, "leader", false, 1u << 20);
	node_init(&f2, "f2", true);
	follow(&f2);   /* Its port, for the leader's configuration ... */
	node_close(&f2);  /* ... and down until the shard is trimmed. */
	lead(&l, fs, 1, REPLICA_ACKS_ALL, 0);
	cr_assert_eq(replica_lead(l.l, SHARD_A, 3), 0);
	append(&l, SHARD_A, CONTENT_X, 0, AWAY_RECORDS);
	trim = leader_expire(&l, 0);
	append(&l, SHARD_A, CONTENT_X, AWAY_RECORDS, 100);
	node_open(&f2);
	follow(&f2);
	wait_acked(&l, SHARD_A, REPLICA_ACKS_ALL, end);
	check_started(&f2, trim, end);
	node_close(&l);
	node_close(&f2);
}
