/*
 * replica_sim: the follower's epoch handshake against interleavings a real disk
 * only shows under load, made deterministic with the simulated disk (log_io_sim:
 * the test stalls it) and a leader played by hand over raw frames:
 *
 *   - a batch of an older LEAD still in the writer's window when a new leader's
 *     handshake compares ends (the stalled disk keeps it there);
 *   - a handshake whose LEAD this node's own, newer epoch deposed meanwhile (it
 *     was placed as the shard's leader between EPOCH_QUERY and EPOCH_END);
 *   - a cut inside a batch, this node placed as the shard's leader before the
 *     records below the cut are appended again (the follower's only batch held
 *     in flight by the stalled disk keeps it between the two), and the log's
 *     primitive behind its fix (log_shard_truncate_keep) alone.
 *
 * Waits are for conditions, with generous deadlines (WAIT_NS), never for time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "nvme-log/log_io_sim.h"
#include "replica/replica.h"
#include "replica/replica_wire.h"
#include "tests/nvme-log/log_test_util.h"
#include "tests/replica/replica_test_util.h"

#define WAIT_NS (60ull * 1000000000ull)
#define POLL_MS 5
#define DATA 100u
#define SHARD LOG_SHARD_ID(5, 0)
#define SHARD_OTHER LOG_SHARD_ID(5, 1)
#define PROBE_SEQ (1ull << 40)  /* Far past anything appended: a gap, never taken. */
#define CONTENT_A 0x41u         /* Records the old leader (epoch 1) wrote. */
#define CONTENT_B 0x42u         /* Records the new leader (epoch 2) wrote. */

struct sim_node {
	struct log_config c;
	struct log_io *io;
	struct log *log;
	struct log_producer *p;
	struct replica_follower *f;
	struct replica_buf in;
};

static struct sim_node n;

/* Opens the node's log and starts its follower (a port of the kernel's choice). */
static void
node_start(void)
{
	struct replica_follower_config fc = { 0 };

	cr_assert_eq(log_open(&n.c, &n.log), 0);
	cr_assert_eq(log_producer_open(n.log, &n.p), 0);
	fc.log = n.log;
	cr_assert_eq(replica_follower_start(&fc, &n.f), 0);
}

/* batches: per producer (the follower's too), 0 for the default. */
static void
setup_batches(uint32_t batches)
{
	memset(&n, 0, sizeof(n));
	diag_level_set(DIAG_ERROR);
	cr_assert_eq(log_io_sim_create(15, &n.io), 0);
	log_config_default(&n.c);
	n.c.dir_path = "follower";
	n.c.io = n.io;
	n.c.writer_thread = true;  /* The follower's appends need a writer of their own. */
	n.c.segment_size = 16u << 20;
	n.c.shards_max = 16;
	n.c.watermark_gated = true;
	if (batches != 0)
		n.c.batches_per_producer = batches;
	node_start();
	cr_assert_eq(replica_buf_init(&n.in, 1u << 16), 0);
}

/* Power loss on the node: its follower stops, the log recovers, the follower starts again. */
static void
node_power_loss(void)
{
	replica_follower_stop(n.f);
	log_producer_close(n.p);
	log_io_sim_crash(n.io);
	log_close(n.log);
	log_io_sim_restart(n.io);
	node_start();
	n.in.head = n.in.tail = 0;  /* Frames of the old connections are gone with them. */
}

static void
setup(void)
{
	setup_batches(0);
}

/* One batch per producer: a batch in flight leaves the follower none to append with. */
static void
setup_one_batch(void)
{
	setup_batches(1);
}

static void
teardown(void)
{
	log_io_sim_hold(n.io, false);  /* A failed test may leave the disk stalled. */
	replica_follower_stop(n.f);
	log_producer_close(n.p);
	log_close(n.log);
	log_io_sim_destroy(n.io);
	replica_buf_fini(&n.in);
}

TestSuite(replica_sim, .init = setup, .fini = teardown, .timeout = 120);

/* The next frame from the follower, which must be `type`; returns its fields. */
static struct replica_ctl
expect(int fd, enum replica_msg type)
{
	struct replica_ctl m = { 0 };
	int got = raw_frame(fd, &n.in, &m);

	cr_assert_eq(got, (int)type, "frame %d, expected %d", got, (int)type);
	return m;
}

/* One batch of the test's own producer, for the leader of `epoch`: its completion's error. */
static int
submit_wait_in(uint32_t content, uint64_t seq_first, uint32_t count, uint64_t at,
	       uint64_t epoch)
{
	struct log_batch *b = log_batch_get(n.p);
	struct log_completion done;
	uint64_t deadline = clock_mono_ns() + WAIT_NS;

	cr_assert_not_null(b);
	raw_batch_fill(b, content, seq_first, count, DATA);
	cr_assert_eq(log_batch_submit_at(n.p, b, SHARD, at, epoch, 0), 0);
	while (log_completions_poll(n.p, &done, 1) == 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "the writer completes the batch");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return done.error;
}

static int
submit_wait(uint32_t content, uint64_t seq_first, uint32_t count, uint64_t at)
{
	return submit_wait_in(content, seq_first, count, at, LOG_EPOCH_NONE);
}

/*
 * Is someone waiting for the shard's in-flight batches (log_shard_settle, or a
 * cut)? Appends are refused with -EAGAIN meanwhile; otherwise this probe, far
 * past the end, is refused as a gap (-EILSEQ). It never adds a record.
 */
static bool
shard_settling(void)
{
	int err = submit_wait(CONTENT_A, 0, 1, PROBE_SEQ);

	cr_assert(err == -EAGAIN || err == -EILSEQ, "probe: %d", err);
	return err == -EAGAIN;
}

static uint64_t
local_end(void)
{
	struct log_shard_info info;

	cr_assert_eq(log_shard_info(n.log, SHARD, &info), 0);
	return info.seq_local;
}

/*
 * The suspected cause of the campaign's hole (seed 9001, docs/CLUSTER.md): the
 * follower holds an APPEND of leader A (epoch 1) in its writer's window, its disk
 * slow, when leader B (epoch 2, which never had those records) runs the handshake.
 * Had the follower answered READY with its durable end (0), A's records would land
 * at 0..4 after it, B's first APPEND would record epoch 2 at 0 and be refused as an
 * overlap, and the next handshake, seeing epoch 2 on both sides, would keep A's
 * records as B's. The follower must settle its in-flight batches first: then it
 * sees A's records at 0..4 in epoch 1, which B's log ends at 0, and cuts them.
 */
Test(replica_sim, a_batch_of_an_older_lead_in_flight_lands_before_the_handshake_compares_ends)
{
	uint16_t port = replica_follower_port(n.f);
	struct replica_append a1 = { .shard_id = SHARD, .epoch = 1, .seq_first = 0,
				     .records_epoch = 1, .count = 5 };
	struct replica_append b2 = { .shard_id = SHARD, .epoch = 2, .seq_first = 0,
				     .records_epoch = 2, .count = 5 };
	struct replica_ctl m;
	uint64_t deadline;
	uint32_t queued;
	int ready_early = 0;
	int a;
	int b;
	uint64_t e;
	uint64_t end;

	log_io_sim_hold(n.io, true);
	queued = log_io_sim_queued(n.io);
	a = raw_send(port, NULL, 0);
	raw_ctl(a, REPLICA_MSG_LEAD, SHARD, 1, 0);
	m = expect(a, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, LOG_EPOCH_NONE);
	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD, LOG_EPOCH_NONE, 0);
	m = expect(a, REPLICA_MSG_READY);
	cr_assert(m.epoch == 1 && m.seq == 0);
	raw_append(a, &a1, CONTENT_A, DATA);
	/* A's batch is in a window whose write the stalled disk holds. */
	for (deadline = clock_mono_ns() + WAIT_NS; log_io_sim_queued(n.io) <= queued;) {
		cr_assert_lt(clock_mono_ns(), deadline, "the writer writes A's batch");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	cr_assert_eq(local_end(), 0, "not durable while the disk is held");

	/* B leads epoch 2; its log has epoch 1 ending at 0 (it never had A's records). */
	b = raw_send(port, NULL, 0);
	raw_ctl(b, REPLICA_MSG_LEAD, SHARD, 2, 0);
	m = expect(b, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, 1, "the follower's newest epoch is A's");
	raw_ctl(b, REPLICA_MSG_EPOCH_END, SHARD, 1, 0);
	/* Until the follower waits for the shard's in-flight batches, or answers too soon. */
	for (deadline = clock_mono_ns() + WAIT_NS; ready_early == 0 && !shard_settling();) {
		cr_assert_lt(clock_mono_ns(), deadline, "the follower answers or waits");
		ready_early = raw_frame_within(b, &n.in, &m, POLL_MS);
	}
	log_io_sim_hold(n.io, false);
	cr_assert_eq(ready_early, 0, "frame %d (end %lu) answered while A's batch was in flight",
		     ready_early, (unsigned long)m.seq);

	m = expect(b, REPLICA_MSG_READY);
	cr_assert(m.epoch == 2 && m.seq == 0, "READY %lu at %lu: A's records are cut",
		  (unsigned long)m.epoch, (unsigned long)m.seq);
	raw_append(b, &b2, CONTENT_B, DATA);
	m = expect(b, REPLICA_MSG_ACK);
	cr_assert(m.epoch == 2 && m.seq == 5);
	raw_check_range(n.log, "follower", SHARD, CONTENT_B, DATA, 0, 5);
	cr_assert_eq(local_end(), 5);
	cr_assert_eq(log_epoch_at(n.log, SHARD, 0, &e, &end), 0);
	cr_assert_eq(e, 2, "B's records are in B's epoch");
	close(a);
	close(b);
}

/*
 * This node follows shard SHARD (epoch 1, records 0..9) and took LEAD(2) from A;
 * before A's EPOCH_END arrives, the controller places this node as the leader
 * in epoch 3 (replica_lead_set: promise, settle, begin at the end, 10). The old
 * handshake must not go on: its cut at the end would forget epoch 3 (begun, not
 * yet written), and this node's records would then be labelled with an older
 * epoch. A gets FENCED; the history keeps epoch 3.
 */
Test(replica_sim, a_handshake_deposed_by_this_nodes_own_newer_epoch_forgets_nothing)
{
	struct replica_leader_config lc = { .log = n.log, .watermark_acks = REPLICA_ACKS_QUORUM };
	struct replica_leader *l;
	struct log_epoch_info ei;
	struct replica_ctl m;
	uint64_t end;
	int a;

	cr_assert_eq(log_epoch_record(n.log, SHARD, 1, 0), 0);
	cr_assert_eq(submit_wait(CONTENT_A, 0, 10, 0), 0);
	a = raw_send(replica_follower_port(n.f), NULL, 0);
	raw_ctl(a, REPLICA_MSG_LEAD, SHARD, 2, 0);
	m = expect(a, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, 1);

	cr_assert_eq(replica_leader_start(&lc, &l), 0);
	cr_assert_eq(replica_lead_set(l, SHARD, 3, NULL, 0), 0);
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 3 && ei.epoch_last_start == 10 && ei.promised == 3);

	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD, 1, 10);  /* A's epoch 1 ends at 10 too. */
	m = expect(a, REPLICA_MSG_FENCED);
	cr_assert_eq(m.epoch, 3, "the follower names the epoch it promised");
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 3 && ei.epoch_last_start == 10,
		  "epoch 3 is still where this node's records start (newest %lu at %lu)",
		  (unsigned long)ei.epoch_last, (unsigned long)ei.epoch_last_start);
	cr_assert_eq(replica_lead_epoch(l, SHARD, &end), 0, "still the leader");
	cr_assert_eq(end, 3);
	/* The log refuses such a cut itself, whoever asks for it. */
	cr_assert_eq(log_shard_truncate_in(n.log, SHARD, 10, 2, &end), -ESTALE);
	cr_assert_eq(log_shard_truncate_in(n.log, SHARD, 5, 2, &end), -ESTALE);
	cr_assert_eq(local_end(), 10);
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert_eq(ei.epoch_last, 3);
	replica_leader_stop(l);
	close(a);
}

/* replica_lead_set on a thread of its own: it may wait for the follower's cut. */
struct lead_call {
	struct replica_leader *l;
	uint64_t epoch;
	int err;
	atomic_bool done;
};

static void *
lead_main(void *arg)
{
	struct lead_call *call = arg;

	call->err = replica_lead_set(call->l, SHARD, call->epoch, NULL, 0);
	atomic_store(&call->done, true);
	return NULL;
}

/*
 * Has the writer fenced `epoch` (a newer one promised and durable)? A probe of
 * that epoch far past the end is refused -ESTALE then, -EAGAIN or -EILSEQ
 * before (shard_settling); it never adds a record.
 */
static bool
shard_fenced(uint64_t epoch)
{
	int err = submit_wait_in(CONTENT_A, 0, 1, PROBE_SEQ, epoch);

	cr_assert(err == -ESTALE || err == -EAGAIN || err == -EILSEQ, "probe: %d", err);
	return err == -ESTALE;
}

/* SHARD holds records 0..9 in one batch, in epoch 1. */
static void
one_batch_in_epoch_1(void)
{
	cr_assert_eq(log_epoch_record(n.log, SHARD, 1, 0), 0);
	cr_assert_eq(submit_wait(CONTENT_A, 0, 10, 0), 0);
}

/*
 * A connection from a leader of SHARD_OTHER (epoch 1) whose APPEND takes the
 * follower's only batch (setup_one_batch) and stays in flight: the disk is held.
 */
static int
only_batch_held(void)
{
	struct replica_append other = { .shard_id = SHARD_OTHER, .epoch = 1, .seq_first = 0,
					.records_epoch = 1, .count = 5 };
	int a = raw_send(replica_follower_port(n.f), NULL, 0);

	raw_ctl(a, REPLICA_MSG_LEAD, SHARD_OTHER, 1, 0);
	expect(a, REPLICA_MSG_EPOCH_QUERY);
	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD_OTHER, LOG_EPOCH_NONE, 0);
	expect(a, REPLICA_MSG_READY);
	log_io_sim_hold(n.io, true);
	raw_append(a, &other, CONTENT_B, DATA);
	return a;
}

/*
 * The loss window of docs/CLUSTER.md ("Failure table"): this node follows SHARD
 * (epoch 1, records 0..9 in one batch) and takes LEAD(2) from A, whose epoch 1
 * ends at 5. The cut falls at 0 (the batch's start), and records 0..4 (the
 * leader's too, maybe acknowledged) are to be appended again. The follower's
 * only batch is in flight on the stalled disk (another shard's APPEND), so it
 * waits between the cut and the re-append; meanwhile the controller places this
 * node as SHARD's leader in epoch 3 (promise, settle, begin at the end). Before
 * the fix the epoch began at 0 and the re-append was fenced: the new leader
 * lacked records 0..4. Now the settle waits for them: epoch 3 begins at 5.
 */
Test(replica_sim, a_cut_inside_a_batch_keeps_its_records_when_this_node_leads_meanwhile,
     .init = setup_one_batch)
{
	struct replica_leader_config lc = { .log = n.log, .watermark_acks = REPLICA_ACKS_QUORUM };
	struct lead_call call = { .epoch = 3 };
	struct log_epoch_info ei;
	struct replica_ctl m;
	pthread_t thread;
	uint64_t deadline;
	uint64_t e;
	uint64_t end;
	int type;
	int a;

	one_batch_in_epoch_1();
	cr_assert_eq(replica_leader_start(&lc, &call.l), 0);
	a = only_batch_held();

	raw_ctl(a, REPLICA_MSG_LEAD, SHARD, 2, 0);
	m = expect(a, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, 1);
	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD, 1, 5);  /* A's epoch 1 ends inside the batch. */
	for (deadline = clock_mono_ns() + WAIT_NS; local_end() != 0;) {
		cr_assert_lt(clock_mono_ns(), deadline, "the follower cuts at the batch's start");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}

	/* Placed as SHARD's leader before records 0..4 are back. */
	cr_assert_eq(pthread_create(&thread, NULL, lead_main, &call), 0);
	for (deadline = clock_mono_ns() + WAIT_NS; !atomic_load(&call.done) && !shard_fenced(2);)
		cr_assert_lt(clock_mono_ns(), deadline, "the leader promises epoch 3");
	log_io_sim_hold(n.io, false);
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert_eq(call.err, 0);

	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 3 && ei.epoch_last_start == 5,
		  "epoch 3 begins after the kept records (newest %lu at %lu)",
		  (unsigned long)ei.epoch_last, (unsigned long)ei.epoch_last_start);
	cr_assert_eq(local_end(), 5, "the new leader holds what it held below the cut");
	raw_check_range(n.log, "follower", SHARD, CONTENT_A, DATA, 0, 5);
	cr_assert_eq(log_epoch_at(n.log, SHARD, 4, &e, &end), 0);
	cr_assert(e == 1 && end == 5, "the kept records are epoch 1's");
	/* A's handshake is deposed (its ACK of the other shard may come first). */
	while ((type = raw_frame(a, &n.in, &m)) == REPLICA_MSG_ACK)
		;
	cr_assert_eq(type, REPLICA_MSG_FENCED);
	cr_assert(m.shard_id == SHARD && m.epoch == 3);
	replica_leader_stop(call.l);
	close(a);
}

/* log_shard_settle on a thread of its own: it waits for a cut's kept records. */
struct settle_call {
	uint64_t end;
	int err;
	atomic_bool done;
};

static void *
settle_main(void *arg)
{
	struct settle_call *call = arg;

	call->err = log_shard_settle(n.log, SHARD, &call->end);
	atomic_store(&call->done, true);
	return NULL;
}

/*
 * The log's side of the fix above (log_shard_truncate_keep): after a cut inside a
 * batch the shard takes only the records below the cut at their numbers, even in an
 * epoch fenced meanwhile; any other append is refused (-EAGAIN: a leader's, one past
 * the kept range, one elsewhere); a settle answers the end after them. Given up
 * (log_shard_keep_abandon), a waiting settle answers the cut point and appends resume.
 */
Test(replica_sim, a_cut_that_keeps_records_takes_only_them_until_they_are_durable)
{
	struct settle_call call = { 0 };
	struct settle_call again = { 0 };
	pthread_t thread;
	uint64_t end;

	cr_assert_eq(log_epoch_record(n.log, SHARD, 1, 0), 0);
	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 10, 0, 1), 0);
	cr_assert_eq(log_shard_truncate_keep(n.log, SHARD, 5, 1, &end), 0);
	cr_assert_eq(end, 0, "the cut falls at the batch's start");
	cr_assert_eq(log_epoch_promise(n.log, SHARD, 3), 0, "this node is placed as leader");

	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 6, 0, 1), -ESTALE, "past them: fenced");
	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 6, 0, LOG_EPOCH_NONE), -EAGAIN, "past them");
	cr_assert_eq(submit_wait_in(CONTENT_B, 0, 1, UINT64_MAX, 3), -EAGAIN, "a leader's");
	cr_assert_eq(submit_wait_in(CONTENT_B, 0, 1, PROBE_SEQ, LOG_EPOCH_NONE), -EAGAIN,
		     "elsewhere");
	cr_assert_eq(pthread_create(&thread, NULL, settle_main, &call), 0);
	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 5, 0, 1), 0, "the kept records, epoch 1 fenced");
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert(call.err == 0 && call.end == 5, "settled at %lu (%d): after the kept records",
		  (unsigned long)call.end, call.err);
	cr_assert_eq(log_epoch_begin(n.log, SHARD, 3, call.end), 0);
	cr_assert_eq(submit_wait_in(CONTENT_B, 5, 5, UINT64_MAX, 3), 0, "the leader appends");
	raw_check_range(n.log, "kept", SHARD, CONTENT_A, DATA, 0, 5);
	raw_check_range(n.log, "led", SHARD, CONTENT_B, DATA, 5, 10);

	/* Given up: a waiting settle answers the cut point; appends resume there. */
	cr_assert_eq(log_shard_truncate_keep(n.log, SHARD, 8, 3, &end), 0);
	cr_assert_eq(end, 5);
	cr_assert_eq(pthread_create(&thread, NULL, settle_main, &again), 0);
	log_shard_keep_abandon(n.log, SHARD);
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert(again.err == 0 && again.end == 5);
	cr_assert_eq(submit_wait_in(CONTENT_B, 5, 1, UINT64_MAX, 3), 0);
	cr_assert_eq(local_end(), 6);
}

static uint64_t
ctl_idle_waits(void)
{
	struct log_stats st;

	log_stats_read(n.log, &st);
	return st.ctl_idle_waits;
}

/*
 * While a settle waits for a cut's kept records and nothing is in flight, the
 * writer has nothing to do until they are submitted: it sleeps on its doorbell
 * (ctl_idle_waits counts such sleeps; a writer spinning on the request never
 * sleeps), and the records' submission wakes it, so the settle then ends.
 */
Test(replica_sim, a_settle_waiting_for_kept_records_lets_the_writer_sleep)
{
	struct settle_call call = { 0 };
	pthread_t thread;
	uint64_t deadline;
	uint64_t before;
	uint64_t end;

	cr_assert_eq(log_epoch_record(n.log, SHARD, 1, 0), 0);
	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 10, 0, 1), 0);
	cr_assert_eq(log_shard_truncate_keep(n.log, SHARD, 5, 1, &end), 0);
	cr_assert_eq(end, 0);
	before = ctl_idle_waits();
	cr_assert_eq(pthread_create(&thread, NULL, settle_main, &call), 0);
	/* Two sleeps: the second began after the settle was queued and seen waiting. */
	for (deadline = clock_mono_ns() + WAIT_NS; ctl_idle_waits() < before + 2;) {
		cr_assert_lt(clock_mono_ns(), deadline, "the writer sleeps while the settle waits");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	cr_assert(!atomic_load(&call.done), "the settle waits for the kept records");
	cr_assert_eq(submit_wait_in(CONTENT_A, 0, 5, 0, 1), 0, "the kept records wake the writer");
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert(call.err == 0 && call.end == 5, "settled at %lu (%d)",
		  (unsigned long)call.end, call.err);
}

/*
 * A cut that keeps records whose re-append then fails (the disk full when they are
 * written): the follower gives them up (log_shard_keep_abandon), so the shard is not
 * left taking only them with every settle waiting for them (a node placed as its
 * leader would hang). Lacking records it held, the node refuses to lead the shard
 * (-ENODATA); the handshake runs again on the next LEAD.
 */
Test(replica_sim, a_failed_re_append_of_kept_records_wedges_nothing, .init = setup_one_batch)
{
	struct replica_leader_config lc = { .log = n.log, .watermark_acks = REPLICA_ACKS_QUORUM };
	struct replica_leader *l;
	struct settle_call call = { 0 };
	struct log_epoch_info ei;
	struct replica_ctl m;
	pthread_t thread;
	uint64_t deadline;
	int err;
	int a;

	one_batch_in_epoch_1();
	cr_assert_eq(log_epoch_record(n.log, SHARD, 3, 10), 0);  /* Begun, never written. */
	a = only_batch_held();
	raw_ctl(a, REPLICA_MSG_LEAD, SHARD, 4, 0);
	m = expect(a, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, 3);
	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD, 1, 5);
	/* Cut at 0 and stored (epoch 3 forgotten, epoch 1 recorded again at 0). */
	for (deadline = clock_mono_ns() + WAIT_NS;;) {
		cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
		if (ei.count == 1 && ei.epoch_last == 1 && local_end() == 0)
			break;
		cr_assert_lt(clock_mono_ns(), deadline, "the follower cuts and records epoch 1");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	log_io_sim_set_full(n.io, true);
	log_io_sim_hold(n.io, false);

	cr_assert_eq(pthread_create(&thread, NULL, settle_main, &call), 0);
	for (deadline = clock_mono_ns() + WAIT_NS; !atomic_load(&call.done);) {
		cr_assert_lt(clock_mono_ns(), deadline, "a settle does not wait for records "
			     "whose re-append failed");
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert(call.err == 0 && call.end == 0, "settled at %lu (%d)",
		  (unsigned long)call.end, call.err);
	log_io_sim_set_full(n.io, false);
	for (deadline = clock_mono_ns() + WAIT_NS;
	     (err = submit_wait(CONTENT_B, 0, 1, 0)) == -ENOSPC;)
		cr_assert_lt(clock_mono_ns(), deadline, "the writer retries once space is free");
	cr_assert_eq(err, 0, "appends at the cut point go on: %d", err);
	/* It held records 0..4 (maybe acknowledged): placed as leader now, it refuses. */
	cr_assert_eq(replica_leader_start(&lc, &l), 0);
	cr_assert_eq(replica_lead_set(l, SHARD, 5, NULL, 0), -ENODATA);
	/*
	 * An operator's unclean election (docs/CLUSTER.md "Unclean election"): it leads
	 * from its end, the kept range given up with the epoch's begin, so later epochs
	 * begin there too.
	 */
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert_gt(ei.kept_end, local_end(), "the kept range is not held");
	cr_assert_eq(replica_lead_unclean(l, SHARD, 6), 0);
	cr_assert_eq(replica_lead_set(l, SHARD, 6, NULL, 0), 0, "begun: led as any epoch");
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert(ei.kept_end == 0 && ei.epoch_last == 6 && ei.epoch_last_start == local_end(),
		  "epoch %lu at %lu (end %lu), kept end %lu", (unsigned long)ei.epoch_last,
		  (unsigned long)ei.epoch_last_start, (unsigned long)local_end(),
		  (unsigned long)ei.kept_end);
	cr_assert_eq(log_epoch_begin(n.log, SHARD, 7, local_end()), 0, "no refusal after it");
	replica_leader_stop(l);
	close(a);
}

#define LEADER_START 20u  /* The leader's first retained record: everything below expired. */

/* The follower's shard starts at LEADER_START and holds `content`'s records up to `end`. */
static void
check_started(uint64_t end, uint32_t content)
{
	struct test_collect c = { .shard_id = content, .data_size = DATA };
	struct log_shard_info info;
	struct log_reader *r;
	uint64_t next;

	cr_assert_eq(log_shard_info(n.log, SHARD, &info), 0);
	cr_assert_eq(info.seq_trim, LEADER_START);
	cr_assert_eq(info.seq_local, end);
	cr_assert_eq(log_reader_open(n.log, &r), 0);
	cr_assert_eq(log_read(r, SHARD, 0, 1, UINT64_MAX, test_collect_fn, &c, &next), -ERANGE,
		     "what it held below the start reads as expired");
	log_reader_close(r);
	free(c.seqs);
	if (end > LEADER_START)
		raw_check_range(n.log, "follower", SHARD, content, DATA, LEADER_START, end);
}

/* LEAD(epoch) and the handshake on a new connection: returns it, READY at `ready_at`. */
static int
handshake(uint64_t epoch, uint64_t asked, uint64_t answer_epoch, uint64_t answer_end,
	  uint64_t ready_at)
{
	int a = raw_send(replica_follower_port(n.f), NULL, 0);
	struct replica_ctl m;

	raw_ctl(a, REPLICA_MSG_LEAD, SHARD, epoch, 0);
	m = expect(a, REPLICA_MSG_EPOCH_QUERY);
	cr_assert_eq(m.epoch, asked, "asks about epoch %lu", (unsigned long)m.epoch);
	raw_ctl(a, REPLICA_MSG_EPOCH_END, SHARD, answer_epoch, answer_end);
	m = expect(a, REPLICA_MSG_READY);
	cr_assert(m.epoch == epoch && m.seq == ready_at, "READY %lu at %lu", (unsigned long)m.epoch,
		  (unsigned long)m.seq);
	return a;
}

/*
 * The follower's side of START (docs/CLUSTER.md, "Catch-up below the leader's trim
 * horizon"): it holds 0..4 of epoch 1; the leader's log starts at 20. START(20) is
 * acknowledged at 20, the shard starts there (below: expired), the leader's APPEND at
 * 20 is taken and its epoch recorded there, and a power loss afterwards recovers all of
 * it: the next handshake matches at 23. A START at or below the follower's end, or from
 * an older epoch, changes nothing.
 */
Test(replica_sim, a_start_from_the_leader_drops_what_is_below_and_survives_a_power_loss)
{
	struct replica_append a1 = { .shard_id = SHARD, .epoch = 1, .seq_first = 0,
				     .records_epoch = 1, .count = 5 };
	struct replica_append a20 = { .shard_id = SHARD, .epoch = 2, .seq_first = LEADER_START,
				      .records_epoch = 2, .count = 3 };
	struct replica_follower_stats st;
	struct replica_ctl m;
	uint64_t e;
	uint64_t end;
	int a = handshake(1, LOG_EPOCH_NONE, LOG_EPOCH_NONE, 0, 0);

	raw_append(a, &a1, CONTENT_A, DATA);
	m = expect(a, REPLICA_MSG_ACK);
	cr_assert_eq(m.seq, 5);
	raw_ctl(a, REPLICA_MSG_START, SHARD, 1, 5);
	cr_assert_eq(raw_frame(a, &n.in, &m), -1, "a START at the follower's end: the link resets");
	close(a);
	n.in.head = n.in.tail = 0;
	raw_check_range(n.log, "follower", SHARD, CONTENT_A, DATA, 0, 5);

	a = handshake(2, 1, 1, 5, 5);
	raw_ctl(a, REPLICA_MSG_START, SHARD, 1, LEADER_START);
	m = expect(a, REPLICA_MSG_FENCED);
	cr_assert_eq(m.epoch, 2, "a START of a deposed epoch drops nothing");
	cr_assert_eq(local_end(), 5);
	raw_ctl(a, REPLICA_MSG_START, SHARD, 2, LEADER_START);
	m = expect(a, REPLICA_MSG_ACK);
	cr_assert(m.epoch == 2 && m.seq == LEADER_START, "ACK %lu at %lu", (unsigned long)m.epoch,
		  (unsigned long)m.seq);
	check_started(LEADER_START, CONTENT_B);
	raw_append(a, &a20, CONTENT_B, DATA);
	m = expect(a, REPLICA_MSG_ACK);
	cr_assert_eq(m.seq, LEADER_START + 3);
	check_started(LEADER_START + 3, CONTENT_B);
	cr_assert_eq(log_epoch_at(n.log, SHARD, LEADER_START, &e, &end), 0);
	cr_assert_eq(e, 2, "the leader's epoch, from the start on");
	replica_follower_stats(n.f, &st);
	cr_assert_eq(st.starts, 1);
	close(a);

	node_power_loss();
	check_started(LEADER_START + 3, CONTENT_B);
	a = handshake(3, 2, 2, LEADER_START + 3, LEADER_START + 3);
	close(a);
}

/*
 * Power lost between a start's log.meta and its log.epochs: the shard starts at 20 but
 * remembers epoch 1 from 0 (its records dropped). A leader whose epoch 1 ended at 3
 * answers the handshake below that start: the follower cannot cut there (-ERANGE, the
 * link would reset for ever); it starts again at its horizon, with no history, and
 * answers READY there. The leader's records from 20 are then taken in its epoch.
 */
Test(replica_sim, a_handshake_parting_below_the_followers_start_starts_again_there,
     .timeout = 240)
{
	struct replica_append a20 = { .shard_id = SHARD, .epoch = 2, .seq_first = LEADER_START,
				      .records_epoch = 2, .count = 3 };
	struct replica_follower_stats st;
	struct log_epoch_info ei;
	struct log_shard_info info;
	struct replica_ctl m;
	bool found = false;
	uint64_t end;
	int a;

	for (uint64_t nth = 1; !found; nth++) {
		cr_assert_lt(nth, 64, "a power loss between log.meta and log.epochs");
		if (nth > 1) {
			teardown();
			setup();
		}
		cr_assert_eq(log_epoch_record(n.log, SHARD, 1, 0), 0);
		cr_assert_eq(submit_wait(CONTENT_A, 0, 5, 0), 0);
		log_io_sim_crash_nth(n.io, nth);
		(void)log_shard_start_at(n.log, SHARD, LEADER_START, LOG_EPOCH_NONE, &end);
		node_power_loss();
		cr_assert_eq(log_shard_info(n.log, SHARD, &info), 0);
		cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
		found = info.seq_trim == LEADER_START && ei.count > 0;
	}
	cr_assert(ei.epoch_last == 1 && ei.epoch_last_start == 0);
	a = handshake(2, 1, 1, 3, LEADER_START);
	cr_assert_eq(log_epoch_info(n.log, SHARD, &ei), 0);
	cr_assert_eq(ei.count, 0, "the history of dropped records is gone");
	check_started(LEADER_START, CONTENT_B);
	raw_append(a, &a20, CONTENT_B, DATA);
	m = expect(a, REPLICA_MSG_ACK);
	cr_assert_eq(m.seq, LEADER_START + 3);
	check_started(LEADER_START + 3, CONTENT_B);
	replica_follower_stats(n.f, &st);
	cr_assert_eq(st.starts, 1);
	close(a);
}
