/*
 * log_replica: the log's replication primitives (log.h, "Replication
 * primitives") on the simulated disk, the writer stepped by hand:
 * appends at given sequence numbers (gaps and overlaps refused), the
 * leader-epoch history and its OffsetsForLeaderEpoch answers, promises,
 * tail truncation that stays cut across a clean reopen, a power loss and
 * segment seals, and the replicated watermark readers stop at.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/crc32c.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "nvme-log/log_io.h"
#include "nvme-log/log_io_sim.h"
#include "tests/nvme-log/log_test_util.h"

#define DATA 100u
#define SHARD LOG_SHARD_ID(3, 1)
#define OLD 0xA1u     /* Content of the tail a truncation cuts (test_record_make's "shard"). */
#define NEW 0xB2u     /* Content written after the cut. */

struct fixture {
	struct log_io *io;
	struct log *log;
	struct log_producer *p;
	struct log_config c;
	uint64_t now;
	uint32_t completed;
	int32_t last_error;
};

static struct fixture f;

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
	cr_assert_eq(log_io_sim_create(7, &f.io), 0);
	log_config_default(&f.c);
	f.c.dir_path = "replica";
	f.c.io = f.io;
	f.c.writer_thread = false;
	f.c.segment_size = 1u << 20;
	f.c.batch_size = 4096;
	f.c.commit_window_bytes = 16u << 10;
	f.c.commit_window_us = 50;
	f.c.producers_max = 2;
	f.c.batches_per_producer = 8;
	f.c.shards_max = 16;
	f.now = 1000000000;
	fx_open();
}

static void
teardown(void)
{
	fx_close();
	log_io_sim_destroy(f.io);
}

TestSuite(log_replica, .init = setup, .fini = teardown, .timeout = 60);

static void
poll_all(void)
{
	struct log_completion c[16];
	uint32_t n;

	while ((n = log_completions_poll(f.p, c, 16)) != 0) {
		for (uint32_t i = 0; i < n; i++) {
			f.completed++;
			if (c[i].error != 0)
				f.last_error = c[i].error;
		}
	}
}

static void
settle(void)
{
	uint32_t idle = 0;

	for (uint32_t i = 0; i < 10000 && idle < 40; i++) {
		f.now += 100000;
		idle = log_writer_step(f.log, f.now) == 0 ? idle + 1 : 0;
	}
	poll_all();
}

/* One batch of records seq_first .. seq_first + n - 1 with `content`, at seq_first (or as next). */
static void
submit(uint32_t content, uint64_t seq_first, uint32_t n, bool at)
{
	struct log_batch *b = log_batch_get(f.p);

	cr_assert_not_null(b);
	for (uint32_t k = 0; k < n; k++) {
		uint8_t data[DATA];
		char key[48];
		struct log_record_in rec;

		test_record_make(content, seq_first + k, DATA, data, key, &rec);
		cr_assert_eq(log_batch_add(b, &rec), 0);
	}
	if (at)
		cr_assert_eq(log_batch_submit_at(f.p, b, SHARD, seq_first, LOG_EPOCH_NONE, 0), 0);
	else
		cr_assert_eq(log_batch_submit(f.p, b, SHARD, 0), 0);
}

static struct log_shard_info
info(void)
{
	struct log_shard_info i;

	cr_assert_eq(log_shard_info(f.log, SHARD, &i), 0);
	return i;
}

/* Reads [from, to) and asserts every record is `content`'s, in order; returns how many. */
static uint32_t
read_range(uint32_t content, uint64_t from, uint64_t to)
{
	struct test_collect c = { .shard_id = content, .data_size = DATA };
	struct log_reader *r;
	uint64_t next;
	int n;

	cr_assert_eq(log_reader_open(f.log, &r), 0);
	n = log_read(r, SHARD, from, (uint32_t)(to - from), UINT64_MAX, test_collect_fn, &c, &next);
	log_reader_close(r);
	cr_assert_geq(n, 0);
	cr_assert_eq(c.bad, 0, "records read back are the ones written");
	for (uint32_t i = 0; i < c.count; i++)
		cr_assert_eq(c.seqs[i], from + i);
	free(c.seqs);
	return (uint32_t)n;
}

static void
reopen(bool crash)
{
	if (crash)
		log_io_sim_crash(f.io);
	fx_close();
	if (crash)
		log_io_sim_restart(f.io);
	fx_open();
}

Test(log_replica, append_at_keeps_the_leaders_numbers_and_refuses_gaps_and_overlaps)
{
	submit(OLD, 0, 3, true);
	submit(OLD, 3, 2, true); /* In flight behind the first: it continues it. */
	settle();
	cr_assert_eq(f.last_error, 0);
	cr_assert_eq(info().seq_durable, 5);
	cr_assert_eq(read_range(OLD, 0, 5), 5, "same numbers, bytes and arrival times");

	submit(OLD, 9, 1, true);
	settle();
	cr_assert_eq(f.last_error, -EILSEQ, "a gap is refused");
	f.last_error = 0;
	submit(OLD, 2, 1, true);
	settle();
	cr_assert_eq(f.last_error, -EEXIST, "an overlap is refused");
	cr_assert_eq(info().seq_durable, 5, "nothing refused was written");
	submit(OLD, 5, 1, false);
	settle();
	cr_assert_eq(info().seq_durable, 6, "plain appends continue after it");
}

Test(log_replica, epoch_history_answers_offsets_for_leader_epoch_and_survives_reopen)
{
	struct log_epoch_info ei;
	uint64_t e;
	uint64_t end;

	cr_assert_eq(log_epoch_begin(f.log, SHARD, 1, 0), 0);
	submit(OLD, 0, 5, false);
	settle();
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 3, 5), 0);
	submit(OLD, 5, 3, false);
	settle();

	cr_assert_eq(log_epoch_end(f.log, SHARD, 1, &e, &end), 0);
	cr_assert(e == 1 && end == 5, "epoch 1 ends where 3 starts (got %lu, %lu)",
		  (unsigned long)e, (unsigned long)end);
	cr_assert_eq(log_epoch_end(f.log, SHARD, 2, &e, &end), 0);
	cr_assert(e == 1 && end == 5, "an unknown epoch answers the largest below it");
	cr_assert_eq(log_epoch_end(f.log, SHARD, 3, &e, &end), 0);
	cr_assert(e == 3 && end == 8, "the newest epoch ends at the durable end");
	cr_assert_eq(log_epoch_end(f.log, SHARD, 9, &e, &end), 0);
	cr_assert(e == 3 && end == 8);
	cr_assert_eq(log_epoch_end(f.log, SHARD, LOG_EPOCH_NONE, &e, &end), 0);
	cr_assert(e == LOG_EPOCH_NONE && end == 0, "below every epoch: none, at the first start");
	cr_assert_eq(log_epoch_at(f.log, SHARD, 4, &e, &end), 0);
	cr_assert(e == 1 && end == 5, "seq 4 was written in epoch 1, which ends at 5");
	cr_assert_eq(log_epoch_at(f.log, SHARD, 7, &e, &end), 0);
	cr_assert(e == 3 && end == UINT64_MAX, "the newest epoch has no end yet");

	cr_assert_eq(log_epoch_begin(f.log, SHARD, 2, 8), -ESTALE, "epochs only grow");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 4, 4), -EINVAL, "and start no earlier");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 3, 5), 0, "beginning it again is a no-op");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, LOG_EPOCH_NONE, 8), -EINVAL);
	cr_assert_eq(log_epoch_promise(f.log, SHARD, 6), 0);
	cr_assert_eq(log_epoch_promise(f.log, SHARD, 5), -ESTALE, "a promise is not taken back");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 5, 8), -ESTALE, "nor broken by a begin");
	cr_assert_eq(log_epoch_record(f.log, SHARD, 2, 8), -ESTALE, "history only grows");

	reopen(true);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert_eq(ei.epoch_last, 3);
	cr_assert_eq(ei.epoch_last_start, 5);
	cr_assert_eq(ei.promised, 6, "the promise is durable");
	cr_assert_eq(ei.count, 2);
	cr_assert_eq(log_epoch_record(f.log, SHARD, 5, 8), 0,
		     "a follower copies an epoch older than its promise");
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 5 && ei.promised == 6, "and promises nothing by it");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 6, 8), 0);
	cr_assert_eq(log_epoch_end(f.log, SHARD, 3, &e, &end), 0);
	cr_assert(e == 3 && end == 8);
}

Test(log_replica, epoch_replaces_an_empty_one_at_the_same_start)
{
	struct log_epoch_info ei;

	cr_assert_eq(log_epoch_begin(f.log, SHARD, 1, 0), 0);
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 2, 0), 0);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.count == 1 && ei.epoch_last == 2, "epoch 1 wrote nothing: replaced");
}

/* Three batches of OLD at 0..2, 3..5, 6..8 under epoch 1, a 4th epoch from 6 on. */
static void
old_tail(void)
{
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 1, 0), 0);
	submit(OLD, 0, 3, false);
	submit(OLD, 3, 3, false);
	settle();
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 4, 6), 0);
	submit(OLD, 6, 3, false);
	settle();
	cr_assert_eq(info().seq_durable, 9);
}

Test(log_replica, truncation_cuts_at_the_batch_holding_seq_and_new_records_replace_the_tail)
{
	struct log_epoch_info ei;
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 4, &end), 0);
	cr_assert_eq(end, 3, "the cut starts at the batch holding seq 4");
	cr_assert_eq(info().seq_durable, 3);
	cr_assert_eq(read_range(OLD, 0, 9), 3, "nothing of the cut tail is readable");
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 1 && ei.promised == 4,
		  "epochs starting after the cut are forgotten, the promise is not");

	submit(NEW, 3, 4, true);
	settle();
	cr_assert_eq(f.last_error, 0);
	cr_assert_eq(info().seq_durable, 7);
	cr_assert_eq(read_range(OLD, 0, 3), 3);
	cr_assert_eq(read_range(NEW, 3, 7), 4, "the new records, not the old ones");

	reopen(false);
	cr_assert_eq(info().seq_durable, 7, "the cut stays cut after a reopen");
	cr_assert_eq(read_range(OLD, 0, 3), 3);
	cr_assert_eq(read_range(NEW, 3, 7), 4);
	reopen(true);
	cr_assert_eq(info().seq_durable, 7, "and after a power loss");
	cr_assert_eq(read_range(NEW, 3, 7), 4);
	submit(NEW, 7, 2, false);
	settle();
	cr_assert_eq(read_range(NEW, 3, 9), 6, "appends continue from the new end");
}

/*
 * A settle waits for what the writer took and cuts nothing: an epoch begun at the end
 * (a new leader's, not yet written) stays, where a cut at the end forgets it. A cut for
 * an older LEAD is refused once a newer epoch is promised, and forgets nothing either.
 */
Test(log_replica, a_settle_lands_in_flight_batches_and_forgets_no_epoch)
{
	struct log_epoch_info ei;
	uint64_t end;

	cr_assert_eq(log_epoch_begin(f.log, SHARD, 1, 0), 0);
	submit(OLD, 0, 3, true);
	settle();
	submit(OLD, 3, 3, true);  /* Not stepped: in flight. */
	cr_assert_eq(info().seq_durable, 3);
	cr_assert_eq(log_shard_settle(f.log, SHARD, &end), 0);
	cr_assert_eq(end, 6, "the batch in flight is durable when the settle returns");
	cr_assert_eq(info().seq_durable, 6);

	cr_assert_eq(log_epoch_begin(f.log, SHARD, 4, 6), 0);
	cr_assert_eq(log_shard_settle(f.log, SHARD, &end), 0);
	cr_assert_eq(end, 6);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.epoch_last == 4 && ei.epoch_last_start == 6, "the epoch begun at the end stays");
	cr_assert_eq(log_shard_truncate_in(f.log, SHARD, 6, 3, &end), -ESTALE,
		     "a cut for epoch 3's LEAD after the promise of 4");
	cr_assert_eq(log_shard_truncate_in(f.log, SHARD, 2, 3, &end), -ESTALE);
	cr_assert_eq(info().seq_durable, 6, "nothing cut");
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert_eq(ei.epoch_last, 4);
	cr_assert_eq(log_shard_truncate_in(f.log, SHARD, 6, 4, &end), 0, "its own epoch may cut");
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert_eq(ei.epoch_last, 1, "a cut at the end forgets the epoch begun there");
	cr_assert_eq(read_range(OLD, 0, 6), 6);
}

Test(log_replica, truncation_survives_a_power_loss_before_anything_new)
{
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 6, &end), 0);
	cr_assert_eq(end, 6);
	reopen(true);
	cr_assert_eq(info().seq_durable, 6, "the cut tail does not come back");
	cr_assert_eq(read_range(OLD, 0, 9), 6);
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 6, &end), 0);
	cr_assert_eq(end, 6, "cutting at the end changes nothing");
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 100, &end), 0);
	cr_assert_eq(end, 6, "nor beyond it");
	{
		struct log_epoch_info ei;

		cr_assert_eq(log_epoch_begin(f.log, SHARD, 7, 6), 0);
		cr_assert_eq(log_shard_truncate(f.log, SHARD, 6, &end), 0);
		reopen(false);
		cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
		cr_assert(ei.epoch_last == 1 && ei.promised == 7,
			  "an epoch begun at the end and never written is forgotten by a cut there");
	}
}

Test(log_replica, truncation_reaches_into_sealed_segments)
{
	struct log_stats st;
	uint64_t end;
	uint64_t seq = 0;

	/* ~1.3 MiB of batches: the first segment is sealed with its index file. */
	for (uint32_t i = 0; i < 400; i++) {
		submit(OLD, seq, 25, false);
		seq += 25;
		settle();
	}
	log_stats_read(f.log, &st);
	cr_assert_geq(st.segments, 2);
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 1000, &end), 0);
	cr_assert_eq(end, 1000);
	submit(NEW, 1000, 25, true);
	settle();
	reopen(false);
	cr_assert_eq(info().seq_durable, 1025);
	cr_assert_eq(read_range(OLD, 0, 1000), 1000);
	cr_assert_eq(read_range(NEW, 1000, 1025), 25, "sealed-segment index entries stay cut");
}

/* Seq 0 of `shard`, appended at 0 and made durable. */
static void
first_record_of(uint64_t shard)
{
	struct log_batch *b = log_batch_get(f.p);
	uint8_t data[DATA];
	char key[48];
	struct log_record_in rec;

	test_record_make(OLD, 0, DATA, data, key, &rec);
	cr_assert_eq(log_batch_add(b, &rec), 0);
	cr_assert_eq(log_batch_submit_at(f.p, b, shard, 0, LOG_EPOCH_NONE, 0), 0);
	settle();
}

/*
 * Cluster resharding: the node that closed a shard as its leader may follow it later,
 * so a closed copy settles, takes epochs and loses an unacknowledged tail to the new
 * leader's cut, and stays closed: appends are refused, across a restart too.
 */
Test(log_replica, a_closed_copy_follows_epochs_and_cuts_but_takes_no_appends)
{
	struct log_epoch_info ei;
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_close(f.log, SHARD, &end), 0);
	cr_assert_eq(end, 8);
	cr_assert_eq(log_shard_settle(f.log, SHARD, &end), 0, "a closed copy settles");
	cr_assert_eq(end, 9);
	cr_assert_eq(log_epoch_promise(f.log, SHARD, 5), 0);
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 5, 9), 0, "and takes an epoch (it may lead)");
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 4, &end), 0, "a tail is cut");
	cr_assert_eq(end, 3);
	cr_assert(info().closed && info().seq_durable == 3);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert_eq(ei.epoch_last, 1, "epochs starting after the cut are forgotten");
	submit(NEW, 3, 1, true);
	settle();
	cr_assert_eq(f.last_error, -EPIPE, "a closed copy takes no append");
	f.last_error = 0;
	reopen(true);
	cr_assert(info().closed && info().seq_durable == 3, "closed and cut after a crash: %d %llu",
		  info().closed, (unsigned long long)info().seq_durable);
	cr_assert_eq(read_range(OLD, 0, 9), 3);
}

Test(log_replica, truncation_refusals)
{
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_close(f.log, SHARD, &end), 0);
	cr_assert_eq(log_shard_truncate_keep(f.log, SHARD, 4, LOG_EPOCH_NONE, &end), -EPIPE,
		     "a closed shard re-appends nothing");
	for (uint32_t i = 0; i < LOG_SHARD_TRUNCATIONS_MAX; i++) {
		first_record_of(LOG_SHARD_ID(4, 0));
		cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), 0);
		cr_assert_eq(end, 0);
	}
	cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), 0,
		     "nothing to cut needs no slot");
	cr_assert_eq(f.last_error, 0);
	first_record_of(LOG_SHARD_ID(4, 0));
	cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), 0,
		     "more than LOG_SHARD_TRUNCATIONS_MAX cuts: older ones are forgotten, no wedge");
	cr_assert_eq(end, 0);
	cr_assert_eq(f.last_error, 0);
}

Test(log_replica, watermark_hides_what_a_quorum_does_not_hold)
{
	struct log_reader *r;
	uint64_t seq;

	old_tail();
	cr_assert_eq(log_shard_watermark_set(f.log, SHARD, 4), 0);
	cr_assert_eq(info().seq_durable, 4);
	cr_assert_eq(info().seq_local, 9, "the local durable end is still known");
	cr_assert_eq(read_range(OLD, 0, 9), 4, "readers stop inside the batch at the watermark");
	cr_assert_eq(read_range(OLD, 4, 9), 0);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	cr_assert_eq(log_seek_time(r, SHARD, UINT64_MAX - 1, &seq), 0);
	cr_assert_eq(seq, 4, "LATEST is the watermark");
	log_reader_close(r);
	{
		struct test_collect c = { .shard_id = OLD, .data_size = DATA };

		cr_assert_eq(log_reader_open(f.log, &r), 0);
		log_reader_past_watermark(r);
		cr_assert_eq(log_read(r, SHARD, 0, 100, UINT64_MAX, test_collect_fn, &c, &seq), 9,
			     "the leader's shipping reader sees its whole durable log");
		log_reader_close(r);
		free(c.seqs);
	}
	cr_assert_eq(log_shard_watermark_set(f.log, SHARD, UINT64_MAX), 0);
	cr_assert_eq(read_range(OLD, 0, 9), 9);
	cr_assert_eq(log_shard_watermark_set(f.log, LOG_SHARD_ID(9, 9), 1), -ENOENT);
}

Test(log_replica, a_gated_log_shows_nothing_until_the_watermark_is_set)
{
	old_tail();
	fx_close();
	f.c.watermark_gated = true;
	fx_open();
	cr_assert_eq(info().seq_durable, 0);
	cr_assert_eq(info().seq_local, 9);
	cr_assert_eq(read_range(OLD, 0, 9), 0);
	cr_assert_eq(log_shard_watermark_set(f.log, SHARD, 6), 0);
	cr_assert_eq(read_range(OLD, 0, 9), 6);
}

Test(log_replica, a_deleted_stream_takes_its_epochs_along)
{
	struct log_epoch_info ei;

	old_tail();
	cr_assert_eq(log_stream_delete(f.log, LOG_SHARD_STREAM(SHARD)), 0);
	reopen(false);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.count == 0 && ei.promised == 0, "a shard id used again starts afresh");
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 1, 0), 0);
}

Test(log_replica, the_writer_refuses_batches_of_an_epoch_older_than_the_promise)
{
	struct log_batch *b;
	uint8_t data[DATA];
	char key[48];
	struct log_record_in rec;

	cr_assert_eq(log_epoch_promise(f.log, SHARD, 5), 0);
	for (uint64_t epoch = 4; epoch <= 5; epoch++) {
		b = log_batch_get(f.p);
		test_record_make(OLD, 0, DATA, data, key, &rec);
		cr_assert_eq(log_batch_add(b, &rec), 0);
		cr_assert_eq(log_batch_submit_at(f.p, b, SHARD, 0, epoch, 0), 0);
		settle();
		cr_assert_eq(f.last_error, epoch == 4 ? -ESTALE : 0, "epoch %lu", (unsigned long)epoch);
		f.last_error = 0;
	}
	cr_assert_eq(info().seq_durable, 1, "only the current epoch's batch was taken");
	reopen(true);
	b = log_batch_get(f.p);
	test_record_make(OLD, 1, DATA, data, key, &rec);
	cr_assert_eq(log_batch_add(b, &rec), 0);
	cr_assert_eq(log_batch_submit_at(f.p, b, SHARD, 1, 4, 0), 0);
	settle();
	cr_assert_eq(f.last_error, -ESTALE, "the fence is durable");
}

/* ---- A shard cut any number of times ------------------------------------ */

#define CUTS 120u
#define CUT_SEQ_MAX 8192u     /* Records a shard reaches in the test (bound of `content`). */

/* What the test expects of SHARD: each record's content, and its batches' starts. */
struct model {
	uint32_t content[CUT_SEQ_MAX];
	bool batch_start[CUT_SEQ_MAX + 1];
	uint64_t end;
	uint64_t rng;
};

static uint32_t
model_rand(struct model *m, uint32_t below)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return (uint32_t)(m->rng % below);
}

struct model_read {
	const struct model *m;
	uint64_t next;
	uint32_t bad;
};

static int
model_read_fn(void *arg, const struct log_record_out *record)
{
	struct model_read *r = arg;

	if (record->seq != r->next || record->seq >= r->m->end ||
	    !test_record_check(r->m->content[record->seq], record, DATA))
		r->bad++;
	r->next = record->seq + 1;
	return 0;
}

/* Every record below the model's end is there with its content; nothing at or past it. */
static void
model_check(const struct model *m, const char *when)
{
	struct model_read mr = { .m = m };
	struct log_reader *r;
	uint64_t next = 0;
	int n;

	cr_assert_eq(info().seq_durable, m->end, "%s: end %lu, expected %lu", when,
		     (unsigned long)info().seq_durable, (unsigned long)m->end);
	cr_assert_eq(log_reader_open(f.log, &r), 0);
	while (next < m->end) {
		n = log_read(r, SHARD, next, 1000, UINT64_MAX, model_read_fn, &mr, &next);
		cr_assert_gt(n, 0, "%s: read at %lu: %d", when, (unsigned long)mr.next, n);
	}
	n = log_read(r, SHARD, m->end, 1000, UINT64_MAX, model_read_fn, &mr, &next);
	log_reader_close(r);
	cr_assert_eq(n, 0, "%s: nothing past the end", when);
	cr_assert_eq(mr.bad, 0, "%s: every record is the one last written at its number", when);
	cr_assert_eq(mr.next, m->end);
}

/* Submits `batches` batches of generation `content` at the end (not settled). */
static void
model_append(struct model *m, uint32_t content, uint32_t batches)
{
	for (uint32_t b = 0; b < batches; b++) {
		uint32_t n = 1 + model_rand(m, 20);

		cr_assert_lt(m->end + n, CUT_SEQ_MAX);
		submit(content, m->end, n, true);
		m->batch_start[m->end] = true;
		for (uint32_t k = 0; k < n; k++)
			m->content[m->end + k] = content;
		m->end += n;
	}
}

/* Records of another shard, so that the cut shard's batches spread over sealed segments. */
static void
filler(uint32_t batches)
{
	for (uint32_t b = 0; b < batches; b++) {
		struct log_batch *batch = log_batch_get(f.p);

		cr_assert_not_null(batch);
		for (uint32_t k = 0; k < 20; k++) {
			uint8_t data[DATA];
			char key[48];
			struct log_record_in rec;

			test_record_make(NEW, k, DATA, data, key, &rec);
			cr_assert_eq(log_batch_add(batch, &rec), 0);
		}
		cr_assert_eq(log_batch_submit(f.p, batch, LOG_SHARD_ID(4, 0), 0), 0);
	}
}

/* After a power loss: batches not settled may or may not have landed, whole. */
static void
model_recovered(struct model *m, uint64_t durable)
{
	uint64_t end = info().seq_durable;

	cr_assert(end >= durable && end <= m->end, "recovered end %lu in [%lu, %lu]",
		  (unsigned long)end, (unsigned long)durable, (unsigned long)m->end);
	cr_assert(end == m->end || m->batch_start[end], "a batch is there whole or not at all");
	for (uint64_t seq = end + 1; seq <= m->end; seq++)
		m->batch_start[seq] = false;
	m->end = end;
}

/* log.epochs's size and version on the simulated disk; false before the first cut. */
static bool
epochs_file(uint64_t *size_out, uint32_t *version_out)
{
	uint32_t file;
	uint32_t version = 0;
	int err = log_io_file_open(f.io, "log.epochs", 0, &file);

	if (err == -ENOENT)
		return false;
	cr_assert_eq(err, 0);
	cr_assert_eq(log_io_file_size(f.io, file, size_out), 0);
	cr_assert_eq(log_io_pread(f.io, file, &version, 4, 12), 0);
	log_io_file_close(f.io, file);
	*version_out = version;
	return true;
}

/*
 * The follower's wedge (docs/CLUSTER.md): a shard cut more often than
 * LOG_SHARD_TRUNCATIONS_MAX refused every later cut. Here one shard is cut 120
 * times at random points (inside batches, at their starts, at the end), each cut
 * followed by appends and a full read; about one round in five ends in a power loss
 * (right after the cut, with appends in flight, or after they are durable) and
 * recovery. Another shard's records fill segments meanwhile, so cut tails and the
 * batches replacing them lie in sealed segments (index files) too. Every record
 * below the last cut keeps the content last written at its number, nothing of a
 * cut tail comes back, and log.epochs stays one cut long.
 */
Test(log_replica, a_shard_cut_any_number_of_times_keeps_what_is_below_its_last_cut,
     .timeout = 300)
{
	struct model *m = calloc(1, sizeof(*m));
	struct log_stats st;
	uint64_t size_first = 0;
	uint64_t size;
	uint32_t version;
	uint32_t crashes = 0;

	cr_assert_not_null(m);
	m->rng = 0x9e3779b97f4a7c15ull;
	model_append(m, 1, 3);
	settle();
	for (uint32_t round = 0; round < CUTS; round++) {
		uint32_t generation = round + 2;
		uint64_t seq = m->end - model_rand(m, (uint32_t)(m->end < 40 ? m->end : 40) + 1);
		uint64_t expect = seq;
		uint64_t end;
		uint32_t crash = model_rand(m, 15);

		cr_log_info("round %u: end %lu, cut at %lu, crash %u", round,
			    (unsigned long)m->end, (unsigned long)seq, crash);

		while (expect < m->end && !m->batch_start[expect])
			expect--;
		cr_assert_eq(log_shard_truncate(f.log, SHARD, seq, &end), 0, "cut %u", round);
		cr_assert_eq(end, expect, "cut %u at %lu: the batch's start", round,
			     (unsigned long)seq);
		for (uint64_t k = end + 1; k <= m->end; k++)
			m->batch_start[k] = false;
		m->end = end;
		model_check(m, "after the cut");
		if (crash == 0) {  /* Power loss right after the cut. */
			reopen(true);
			crashes++;
			model_check(m, "power loss after the cut");
		}
		model_append(m, generation, 1 + model_rand(m, 3));
		filler(4);  /* With up to 3 of the shard: within batches_per_producer. */
		if (crash == 1) {  /* Power loss with the appends in flight. */
			uint64_t durable = end;

			for (uint32_t k = model_rand(m, 4); k > 0; k--)
				log_writer_step(f.log, f.now += 20000);
			reopen(true);
			crashes++;
			model_recovered(m, durable);
		} else {
			settle();
			cr_assert_eq(f.last_error, 0);
		}
		if (crash == 2) {  /* Power loss once they are durable. */
			reopen(true);
			crashes++;
		}
		model_check(m, "after the appends");
		if (!epochs_file(&size, &version))
			continue;  /* Every cut so far was at the end: nothing to remember. */
		if (size_first == 0)
			size_first = size;
		cr_assert_eq(version, 3);
		cr_assert_eq(size, size_first, "log.epochs keeps one cut, whatever the count");
	}
	cr_assert_geq(crashes, 10, "the seed gives power losses at each kind of point");
	log_stats_read(f.log, &st);
	cr_assert_geq(st.segments, 2, "the shard's batches lie in a sealed segment too (%lu)",
		      (unsigned long)st.segments);
	reopen(false);
	model_check(m, "a clean reopen");
	free(m);
}

#define EPOCHS_KEPT_END_AT 48u  /* Version 3: after the header and the first shard's fields. */

/*
 * Rewrites log.epochs while the log is closed: its version field (and its CRC), and
 * with `drop_kept_end` the layout before version 3 (a file of one shard).
 */
static void
epochs_rewrite(uint32_t version, bool drop_kept_end)
{
	uint8_t buf[4096];
	uint64_t size;
	uint32_t file;
	uint32_t crc;

	cr_assert_eq(log_io_file_open(f.io, "log.epochs", 0, &file), 0);
	cr_assert_eq(log_io_file_size(f.io, file, &size), 0);
	cr_assert_leq(size, sizeof(buf));
	cr_assert_eq(log_io_pread(f.io, file, buf, (uint32_t)size, 0), 0);
	log_io_file_close(f.io, file);
	if (drop_kept_end) {
		cr_assert_eq(*(uint32_t *)(void *)(buf + 16), 1, "one shard");
		memmove(buf + EPOCHS_KEPT_END_AT, buf + EPOCHS_KEPT_END_AT + 8,
			size - EPOCHS_KEPT_END_AT - 8);
		size -= 8;
	}
	memcpy(buf + 12, &version, 4);
	crc = crc32c(0, buf + 12, size - 12);
	memcpy(buf + 8, &crc, 4);
	cr_assert_eq(log_io_file_open(f.io, "log.epochs", LOG_IO_FILE_TRUNC, &file), 0);
	cr_assert_eq(log_io_pwrite(f.io, file, buf, (uint32_t)size, 0), 0);
	cr_assert_eq(log_io_fsync(f.io, file), 0);
	log_io_file_close(f.io, file);
}

/*
 * log.epochs version 3 (one cut per shard and its kept range) is read, and so are
 * version 2 (no kept range) and version 1 (every cut kept, the layout of 2); a later
 * version is refused at open with a clear error, never read as if it were known (a
 * forgotten cut would bring a tail back).
 */
Test(log_replica, log_epochs_versions_1_and_2_are_read_and_an_unknown_version_refused)
{
	uint64_t version_size;
	uint32_t version;
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 4, &end), 0);
	cr_assert_eq(end, 3);
	fx_close();
	cr_assert(epochs_file(&version_size, &version));
	cr_assert_eq(version, 3);
	epochs_rewrite(2, true);
	fx_open();
	cr_assert_eq(info().seq_durable, 3, "version 2's cut holds");
	cr_assert_eq(read_range(OLD, 0, 9), 3);
	fx_close();
	epochs_rewrite(1, false);
	fx_open();
	cr_assert_eq(info().seq_durable, 3, "version 1's cut holds");
	cr_assert_eq(read_range(OLD, 0, 9), 3);
	fx_close();
	epochs_rewrite(4, false);
	cr_assert_eq(log_open(&f.c, &f.log), -EPROTONOSUPPORT);
	epochs_rewrite(1, false);
	fx_open();
	cr_assert_eq(info().seq_durable, 3);
}

/*
 * A fresh log holding old_tail(), power lost before the nth I/O operation from now:
 * returns the operation count to measure what the test's operations took.
 */
static uint64_t
old_tail_power_loss_at(uint64_t nth)
{
	uint64_t ops;

	teardown();
	setup();
	old_tail();
	ops = log_io_sim_op_count(f.io);
	log_io_sim_crash_nth(f.io, nth);
	return ops;
}

/*
 * The follower's crash case of a cut inside a batch (log_shard_truncate_keep,
 * docs/CLUSTER.md): the cut at 3 of the batch [3, 6) keeps [3, 5), whose re-append
 * follows. Power is lost before each I/O operation of the cut and the re-append in
 * turn, and once after both. Recovered, the shard either holds [3, 5) (the cut never
 * stored: the old tail, or the re-append durable) or ends at the cut and knows it
 * lacks them: an epoch beginning at its end is refused (-ENODATA; a node placed as
 * leader would lead without records it acknowledged) until they are appended again,
 * as a leader ships them, and that holds across another reopen.
 */
Test(log_replica, a_power_loss_between_a_keeping_cut_and_its_re_append_never_leads_without_them,
     .timeout = 120)
{
	uint32_t seen[3] = { 0 };  /* Recovered: the old tail, the cut alone, the kept records. */
	bool last = false;

	for (uint64_t nth = 1; !last; nth++) {
		struct log_epoch_info ei;
		uint64_t ops;
		uint64_t end;
		int err;

		ops = old_tail_power_loss_at(nth);
		err = log_shard_truncate_keep(f.log, SHARD, 5, LOG_EPOCH_NONE, &end);
		cr_assert(err != 0 || end == 3, "the cut at the batch's start (%lu)",
			  (unsigned long)end);
		if (err == 0) {
			submit(OLD, 3, 2, true);
			settle();
		}
		last = log_io_sim_op_count(f.io) - ops < nth;  /* No op was left to fail. */
		reopen(true);
		f.last_error = 0;  /* The lost appends' errors. */

		end = info().seq_durable;
		cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
		cr_log_info("power lost before op %lu: end %lu, kept end %lu", (unsigned long)nth,
			    (unsigned long)end, (unsigned long)ei.kept_end);
		cr_assert(end == 9 || end == 3 || end == 5, "end %lu", (unsigned long)end);
		cr_assert_eq(read_range(OLD, 0, 9), end, "what is there is what was written");
		seen[end == 9 ? 0 : end == 3 ? 1 : 2]++;
		if (end == 3) {
			cr_assert_eq(ei.kept_end, 5, "the cut's kept range is stored with it");
			cr_assert_eq(log_epoch_begin(f.log, SHARD, 9, 3), -ENODATA,
				     "no epoch begins below the records the cut kept");
			submit(OLD, 3, 2, true);  /* A leader ships them again. */
			settle();
			cr_assert_eq(f.last_error, 0);
			reopen(false);
			end = info().seq_durable;
			cr_assert_eq(end, 5);
		}
		cr_assert_eq(log_epoch_begin(f.log, SHARD, 9, end), 0, "holding them, it may lead");
		reopen(false);
		cr_assert_eq(read_range(OLD, 0, 9), end);
	}
	cr_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0,
		  "each outcome seen: old tail %u, cut alone %u, kept records back %u",
		  seen[0], seen[1], seen[2]);
}

/* ---- A follower below its leader's trim horizon (log_shard_start_at) ---- */

#define LEADER_START 20u  /* The leader's first retained record: everything below expired. */

/* log_read's answer from `from` (records delivered, or its negative errno). */
static int
read_rc(uint64_t from)
{
	struct test_collect c = { .shard_id = NEW, .data_size = DATA };
	struct log_reader *r;
	uint64_t next;
	int n;

	cr_assert_eq(log_reader_open(f.log, &r), 0);
	n = log_read(r, SHARD, from, 64, UINT64_MAX, test_collect_fn, &c, &next);
	log_reader_close(r);
	free(c.seqs);
	return n;
}

/* The shard starts at LEADER_START: nothing below is readable, as on the leader. */
static void
assert_started(uint64_t end)
{
	struct log_shard_info i = info();

	cr_assert_eq(i.seq_trim, LEADER_START, "the leader's start is the horizon (%lu)",
		     (unsigned long)i.seq_trim);
	cr_assert_eq(i.seq_durable, end);
	cr_assert_eq(read_rc(0), -ERANGE, "what it held reads as expired");
	cr_assert_eq(read_rc(8), -ERANGE);
	cr_assert_eq(read_rc(LEADER_START - 1), -ERANGE, "the gap reads as expired too");
	cr_assert_eq(read_range(NEW, LEADER_START, end), end - LEADER_START);
}

/*
 * A follower that held 0..8 while its leader's retention dropped everything below 20
 * starts at 20: its records are dropped as retention drops them and its epoch history
 * with them (it begins again with the leader's epoch at 20, even an older one), the
 * leader's batches continue at 20, and all of it holds across a clean reopen and a
 * power loss. A start
 * at or below its end changes nothing; a deposed epoch's or a closed shard's is refused.
 */
Test(log_replica, a_follower_below_the_leaders_trim_horizon_starts_there)
{
	struct log_epoch_info ei;
	uint64_t epoch;
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_start_at(f.log, SHARD, LEADER_START, 4, &end), 0);
	cr_assert_eq(end, LEADER_START);
	assert_started(LEADER_START);
	submit(NEW, 9, 1, true);
	settle();
	cr_assert_eq(f.last_error, -EEXIST, "its old end is gone: the next seq is the start");
	f.last_error = 0;
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert_eq(ei.count, 0, "the history of what it dropped goes with it");
	cr_assert_eq(ei.promised, 4, "the promise stays");
	cr_assert_eq(log_epoch_record(f.log, SHARD, 3, LEADER_START), 0,
		     "the leader's epoch at its start, older than the dropped ones");
	submit(NEW, LEADER_START, 3, true);
	settle();
	cr_assert_eq(f.last_error, 0);
	assert_started(LEADER_START + 3);
	reopen(false);
	assert_started(LEADER_START + 3);
	reopen(true);
	assert_started(LEADER_START + 3);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.count == 1 && ei.epoch_last == 3 && ei.epoch_last_start == LEADER_START);
	cr_assert_eq(log_epoch_end(f.log, SHARD, 3, &epoch, &end), 0);
	cr_assert(epoch == 3 && end == LEADER_START + 3, "the handshake sees the new history");

	cr_assert_eq(log_shard_start_at(f.log, SHARD, LEADER_START + 1, 5, &end), 0);
	cr_assert_eq(end, LEADER_START + 3, "a shard holding the start is left alone");
	assert_started(LEADER_START + 3);
	cr_assert_eq(log_epoch_promise(f.log, SHARD, 7), 0);
	cr_assert_eq(log_shard_start_at(f.log, SHARD, 100, 6, &end), -ESTALE,
		     "a deposed leader's follower drops nothing");
	assert_started(LEADER_START + 3);
	cr_assert_eq(log_shard_close(f.log, SHARD, &end), 0);
	cr_assert_eq(log_shard_start_at(f.log, SHARD, 100, 7, &end), -EPIPE);
	assert_started(LEADER_START + 3);
}

/* A follower that never held a record of the shard starts there as well. */
Test(log_replica, a_new_follower_starts_at_the_leaders_horizon)
{
	uint64_t end;

	cr_assert_eq(log_shard_start_at(f.log, SHARD, LEADER_START, LOG_EPOCH_NONE, &end), 0);
	cr_assert_eq(end, LEADER_START);
	submit(NEW, LEADER_START, 2, true);
	settle();
	cr_assert_eq(f.last_error, 0);
	reopen(true);
	assert_started(LEADER_START + 2);
}

/*
 * Power is lost before each I/O operation of the start and of the appends that follow
 * it, in turn, and once after all. Recovered, the shard either holds its old records
 * (the start never stored; starting again works) or starts at the leader's horizon with
 * whichever of the leader's batches landed; lost between log.meta and log.epochs, it
 * starts there with its old history, which starting again clears (the follower's
 * handshake does). Never a gap read as "no records here" below records it holds,
 * never its old records above a horizon.
 */
Test(log_replica, a_power_loss_at_every_io_of_a_start_leaves_the_old_shard_or_the_new_start,
     .timeout = 120)
{
	uint32_t seen[4] = { 0 };  /* Recovered: the old records, the start alone, appends,
				    * the start with the old history (log.epochs not stored). */
	bool last = false;

	for (uint64_t nth = 1; !last; nth++) {
		struct log_shard_info i;
		struct log_epoch_info ei;
		uint64_t ops;
		uint64_t end;
		int err;

		ops = old_tail_power_loss_at(nth);
		err = log_shard_start_at(f.log, SHARD, LEADER_START, 4, &end);
		cr_assert(err != 0 || end == LEADER_START);
		if (err == 0) {
			submit(NEW, LEADER_START, 3, true);
			settle();
		}
		last = log_io_sim_op_count(f.io) - ops < nth;  /* No op was left to fail. */
		reopen(true);
		f.last_error = 0;  /* The lost appends' errors. */

		i = info();
		cr_log_info("power lost before op %lu: horizon %lu, end %lu", (unsigned long)nth,
			    (unsigned long)i.seq_trim, (unsigned long)i.seq_durable);
		if (i.seq_trim == 0) {
			cr_assert_eq(i.seq_durable, 9, "the old records, whole");
			cr_assert_eq(read_range(OLD, 0, 9), 9);
			seen[0]++;
			cr_assert_eq(log_shard_start_at(f.log, SHARD, LEADER_START, 4, &end), 0);
			reopen(true);
			assert_started(LEADER_START);
			continue;
		}
		cr_assert(i.seq_durable == LEADER_START || i.seq_durable == LEADER_START + 3,
			  "end %lu", (unsigned long)i.seq_durable);
		assert_started(i.seq_durable);
		seen[i.seq_durable == LEADER_START ? 1 : 2]++;
		cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
		if (ei.count != 0) {
			cr_assert_eq(i.seq_durable, LEADER_START,
				     "no append before the history went");
			cr_assert_eq(ei.epoch_last, 4, "the old history, whole");
			seen[3]++;
			cr_assert_eq(log_shard_start_at(f.log, SHARD, LEADER_START, 4, &end), 0);
			cr_assert_eq(end, LEADER_START);
			reopen(true);
			cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
			cr_assert_eq(ei.count, 0, "starting again clears it");
			assert_started(LEADER_START);
		}
		if (i.seq_durable == LEADER_START) {
			submit(NEW, LEADER_START, 3, true);  /* The leader ships them again. */
			settle();
			cr_assert_eq(f.last_error, 0);
			reopen(true);
			assert_started(LEADER_START + 3);
		}
	}
	cr_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0 && seen[3] > 0,
		  "each outcome seen: old records %u, start alone %u, appends too %u, "
		  "old history %u", seen[0], seen[1], seen[2], seen[3]);
}

/*
 * An operator's unclean election (log_epoch_begin_unclean, docs/CLUSTER.md "Unclean
 * election"): a shard cut inside a batch whose kept records were given up refuses a
 * plain begin at its end (-ENODATA) but takes an unclean one, which forgets the kept
 * range durably with the begin: after a power loss the epoch is there at that end, the
 * range is not, and later epochs begin there too.
 */
Test(log_replica, an_unclean_begin_gives_up_the_kept_range_durably)
{
	struct log_epoch_info ei;
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_truncate_keep(f.log, SHARD, 5, LOG_EPOCH_NONE, &end), 0);
	cr_assert_eq(end, 3, "cut at the batch's start");
	log_shard_keep_abandon(f.log, SHARD);
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 9, 3), -ENODATA);
	cr_assert_eq(log_epoch_begin_unclean(f.log, SHARD, 9, 3), 0);
	reopen(true);
	f.last_error = 0;
	cr_assert_eq(info().seq_durable, 3);
	cr_assert_eq(log_epoch_info(f.log, SHARD, &ei), 0);
	cr_assert(ei.kept_end == 0 && ei.epoch_last == 9 && ei.epoch_last_start == 3 &&
		  ei.promised == 9, "epoch %lu at %lu, promised %lu, kept end %lu",
		  (unsigned long)ei.epoch_last, (unsigned long)ei.epoch_last_start,
		  (unsigned long)ei.promised, (unsigned long)ei.kept_end);
	cr_assert_eq(log_epoch_begin(f.log, SHARD, 10, 3), 0, "no refusal after it");
	cr_assert_eq(log_epoch_begin_unclean(f.log, SHARD, 8, 3), -ESTALE, "an older epoch");
}
