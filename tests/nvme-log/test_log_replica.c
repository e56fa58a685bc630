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

Test(log_replica, truncation_refusals)
{
	uint64_t end;

	old_tail();
	cr_assert_eq(log_shard_close(f.log, SHARD, &end), 0);
	cr_assert_eq(log_shard_truncate(f.log, SHARD, 3, &end), -EPIPE);
	for (uint32_t i = 0; i < LOG_SHARD_TRUNCATIONS_MAX; i++) {
		first_record_of(LOG_SHARD_ID(4, 0));
		cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), 0);
		cr_assert_eq(end, 0);
	}
	cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), 0,
		     "nothing to cut needs no slot");
	cr_assert_eq(f.last_error, 0);
	first_record_of(LOG_SHARD_ID(4, 0));
	cr_assert_eq(log_shard_truncate(f.log, LOG_SHARD_ID(4, 0), 0, &end), -ENOSPC,
		     "LOG_SHARD_TRUNCATIONS_MAX cuts remembered, then a clear refusal");
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
