/*
 * frame_dedup: the per-producer window of frame.h's semantics table, case by
 * case, plus a seeded model check: random arrivals of retransmitted batches
 * are stored at most once, and every retry inside the window gets the
 * original ACK back.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "protocol/frame.h"
#include "tests/support/seed.h"

static struct frame_ack
ack_for(uint64_t seq, uint16_t run_count, struct frame_ack_run *runs)
{
	struct frame_ack ack = {
		.type = FRAME_TYPE_ACK,
		.status = FRAME_STATUS_OK,
		.flags = FRAME_ACK_DURABLE,
		.producer_id = 5,
		.batch_seq = seq,
		.producer_epoch = 1,
		.record_index = FRAME_RECORD_INDEX_NONE,
		.run_count = run_count,
		.runs = runs,
	};

	for (uint16_t i = 0; i < run_count; i++) {
		runs[i] = (struct frame_ack_run){ .seq_first = seq * 100 + i, .shard_index = i,
						  .count = 1 };
	}
	ack.record_count = run_count;
	return ack;
}

static enum frame_dedup_verdict
check(struct frame_dedup *d, uint32_t epoch, uint64_t seq)
{
	const struct frame_dedup_entry *entry;

	return frame_dedup_check(d, epoch, seq, &entry);
}

Test(frame_dedup, new_pending_done)
{
	struct frame_dedup d;
	struct frame_ack_run runs[3];
	struct frame_ack ack = ack_for(10, 3, runs);
	const struct frame_dedup_entry *entry;
	struct frame_ack replay;
	uint8_t wire[FRAME_ACK_SIZE_MAX];

	frame_dedup_init(&d, 5);
	cr_assert_eq(frame_dedup_check(&d, 1, 10, &entry), FRAME_DEDUP_NEW);
	cr_assert_null(entry);
	cr_assert_eq(frame_dedup_check(&d, 1, 10, &entry), FRAME_DEDUP_PENDING);
	cr_assert_not_null(entry);
	frame_dedup_complete(&d, 1, &ack);
	cr_assert_eq(frame_dedup_check(&d, 1, 10, &entry), FRAME_DEDUP_DONE);
	frame_dedup_ack(&d, entry, 4096, &replay);
	cr_assert_eq(replay.flags, FRAME_ACK_DURABLE | FRAME_F_DUPLICATE);
	cr_assert_eq(replay.batch_seq, 10);
	cr_assert_eq(replay.producer_id, 5);
	cr_assert_eq(replay.producer_epoch, 1);
	cr_assert_eq(replay.record_count, 3);
	cr_assert_eq(replay.run_count, 3);
	cr_assert_eq(replay.credit_size, 4096);
	cr_assert_arr_eq(replay.runs, runs, sizeof(runs));
	cr_assert_gt(frame_ack_encode(wire, sizeof(wire), &replay, false), 0, "replay encodes");
}

Test(frame_dedup, abort_makes_a_retry_new)
{
	struct frame_dedup d;

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 1, 3), FRAME_DEDUP_NEW);
	frame_dedup_abort(&d, 1, 3);
	cr_assert_eq(check(&d, 1, 3), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 3), FRAME_DEDUP_PENDING);
}

Test(frame_dedup, window_edges)
{
	struct frame_dedup d;
	struct frame_ack_run runs[1];
	struct frame_ack ack;

	frame_dedup_init(&d, 5);
	for (uint64_t s = 100; s < 100 + FRAME_DEDUP_WINDOW; s++) {
		cr_assert_eq(check(&d, 1, s), FRAME_DEDUP_NEW);
		ack = ack_for(s, 1, runs);
		frame_dedup_complete(&d, 1, &ack);
	}
	/* Window is (99+W-W, 99+W] = [100, 107]: all DONE. */
	for (uint64_t s = 100; s < 100 + FRAME_DEDUP_WINDOW; s++)
		cr_assert_eq(check(&d, 1, s), FRAME_DEDUP_DONE, "seq %lu", (unsigned long)s);
	cr_assert_eq(check(&d, 1, 99), FRAME_DEDUP_TOO_OLD);
	/* One step up: 100 leaves the window. */
	cr_assert_eq(check(&d, 1, 100 + FRAME_DEDUP_WINDOW), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 100), FRAME_DEDUP_TOO_OLD);
	cr_assert_eq(check(&d, 1, 101), FRAME_DEDUP_DONE);
	/* A gap inside the window (a seq never seen) is NEW. */
	cr_assert_eq(check(&d, 1, 200), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 200 - FRAME_DEDUP_WINDOW + 1), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 200 - FRAME_DEDUP_WINDOW), FRAME_DEDUP_TOO_OLD);
	/* A jump far ahead forgets everything. */
	cr_assert_eq(check(&d, 1, UINT64_MAX), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 200), FRAME_DEDUP_TOO_OLD);
}

Test(frame_dedup, epochs_fence_and_reset)
{
	struct frame_dedup d;

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 4, 50), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 3, 50), FRAME_DEDUP_STALE_EPOCH);
	cr_assert_eq(check(&d, 3, 51), FRAME_DEDUP_STALE_EPOCH);
	cr_assert_eq(check(&d, 5, 0), FRAME_DEDUP_NEW, "a new epoch starts afresh");
	cr_assert_eq(check(&d, 5, 0), FRAME_DEDUP_PENDING);
	cr_assert_eq(check(&d, 4, 50), FRAME_DEDUP_STALE_EPOCH);
}

Test(frame_dedup, complete_is_ignored_out_of_window_or_epoch)
{
	struct frame_dedup d;
	struct frame_ack_run runs[1];
	struct frame_ack ack = ack_for(1, 1, runs);

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 1, 1), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 1 + FRAME_DEDUP_WINDOW), FRAME_DEDUP_NEW);
	frame_dedup_complete(&d, 1, &ack);   /* 1 has left: nothing to do. */
	cr_assert_eq(check(&d, 1, 1), FRAME_DEDUP_TOO_OLD);
	ack = ack_for(1 + FRAME_DEDUP_WINDOW, 1, runs);
	frame_dedup_complete(&d, 0, &ack);   /* Wrong epoch. */
	cr_assert_eq(check(&d, 1, 1 + FRAME_DEDUP_WINDOW), FRAME_DEDUP_PENDING);
}

Test(frame_dedup, too_many_runs_keep_only_the_outcome)
{
	struct frame_dedup d;
	struct frame_ack_run runs[FRAME_DEDUP_RUNS_MAX + 1];
	struct frame_ack ack = ack_for(7, FRAME_DEDUP_RUNS_MAX + 1, runs);
	const struct frame_dedup_entry *entry;
	struct frame_ack replay;
	uint8_t wire[FRAME_ACK_SIZE_MAX];
	struct frame_ack got;
	int size;

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 1, 7), FRAME_DEDUP_NEW);
	frame_dedup_complete(&d, 1, &ack);
	cr_assert_eq(frame_dedup_check(&d, 1, 7, &entry), FRAME_DEDUP_DONE);
	frame_dedup_ack(&d, entry, 0, &replay);
	cr_assert_eq(replay.flags, FRAME_ACK_DURABLE | FRAME_F_DUPLICATE | FRAME_F_NO_DETAIL);
	cr_assert_eq(replay.run_count, 0);
	cr_assert_eq(replay.record_count, FRAME_DEDUP_RUNS_MAX + 1);
	size = frame_ack_encode(wire, sizeof(wire), &replay, false);
	cr_assert_gt(size, 0);
	cr_assert_eq(frame_ack_decode(wire, (size_t)size, &got), FRAME_OK);
	cr_assert_eq(got.flags, FRAME_ACK_DURABLE | FRAME_F_DUPLICATE | FRAME_F_NO_DETAIL);
}

/*
 * Model check: a producer keeps at most WINDOW batches unacknowledged; the
 * network duplicates and reorders. The receiver stores a batch only on NEW
 * and must never see TOO_OLD for a batch the producer still retries.
 */
Test(frame_dedup, seeded_retries_store_each_batch_once)
{
	enum { BATCHES = 2000 };
	static uint8_t stored[BATCHES];
	static uint8_t acked[BATCHES];
	struct seed_rng rng;
	struct frame_dedup d;
	uint64_t seed = seed_base();
	uint64_t next = 0;
	uint64_t oldest = 0;

	seed_rng_init(&rng, seed);
	frame_dedup_init(&d, 5);
	memset(stored, 0, sizeof(stored));
	memset(acked, 0, sizeof(acked));
	for (unsigned step = 0; oldest < BATCHES && step < 200000; step++) {
		while (next < BATCHES && next < oldest + FRAME_DEDUP_WINDOW)
			next++;
		uint64_t seq = oldest + seed_rng_below(&rng, next - oldest);
		const struct frame_dedup_entry *entry;
		enum frame_dedup_verdict v = frame_dedup_check(&d, 1, seq, &entry);

		cr_assert_neq(v, FRAME_DEDUP_TOO_OLD, "seq %lu, seed %lu", (unsigned long)seq,
			      (unsigned long)seed);
		if (v == FRAME_DEDUP_NEW) {
			struct frame_ack_run runs[1];
			struct frame_ack ack = ack_for(seq, 1, runs);

			cr_assert_eq(stored[seq], 0, "stored twice: seq %lu, seed %lu",
				     (unsigned long)seq, (unsigned long)seed);
			stored[seq] = 1;
			if (seed_rng_below(&rng, 4) == 0) { /* The store fails: NACK, retry later. */
				stored[seq] = 0;
				frame_dedup_abort(&d, 1, seq);
				continue;
			}
			frame_dedup_complete(&d, 1, &ack);
		} else if (v == FRAME_DEDUP_DONE) {
			cr_assert_eq(entry->runs[0].seq_first, seq * 100);
		}
		if (stored[seq] && seed_rng_below(&rng, 2) == 0) /* This ACK arrives. */
			acked[seq] = 1;
		while (oldest < BATCHES && acked[oldest])
			oldest++;
	}
	cr_assert_eq(oldest, BATCHES, "seed %lu", (unsigned long)seed);
}

/* A hostile producer's seqs at the top of the range must not hang the receiver. */
Test(frame_dedup, seqs_at_the_top_of_the_range, .timeout = 5)
{
	struct frame_dedup d;

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 1, UINT64_MAX - 3), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, UINT64_MAX), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, UINT64_MAX - 3), FRAME_DEDUP_PENDING);
	cr_assert_eq(check(&d, 1, UINT64_MAX - 1), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, UINT64_MAX - FRAME_DEDUP_WINDOW), FRAME_DEDUP_TOO_OLD);
	cr_assert_eq(check(&d, 1, 0), FRAME_DEDUP_TOO_OLD);
}

Test(frame_dedup, a_partly_stored_batch_replays_its_nack)
{
	struct frame_dedup d;
	struct frame_ack_run runs[2];
	struct frame_ack ack = ack_for(7, 2, runs);
	const struct frame_dedup_entry *entry;
	struct frame_ack replay;
	uint8_t wire[FRAME_ACK_SIZE_MAX];

	frame_dedup_init(&d, 5);
	cr_assert_eq(check(&d, 1, 7), FRAME_DEDUP_NEW);
	frame_dedup_fail(&d, 2, 7, 12, FRAME_STATUS_SEQUENCE_OLD); /* Other epoch: ignored. */
	cr_assert_eq(check(&d, 1, 7), FRAME_DEDUP_PENDING);
	frame_dedup_fail(&d, 1, 7, 12, FRAME_STATUS_SEQUENCE_OLD);
	/* Final: neither an abort nor a late completion turns it back into NEW or OK. */
	frame_dedup_abort(&d, 1, 7);
	frame_dedup_complete(&d, 1, &ack);
	for (int retry = 0; retry < 2; retry++) {
		cr_assert_eq(frame_dedup_check(&d, 1, 7, &entry), FRAME_DEDUP_DONE);
		frame_dedup_ack(&d, entry, 1000, &replay);
		cr_assert_eq(replay.type, FRAME_TYPE_NACK);
		cr_assert_eq(replay.status, FRAME_STATUS_SEQUENCE_OLD);
		cr_assert_eq(replay.batch_seq, 7);
		cr_assert_eq(replay.record_count, 12);
		cr_assert_eq(replay.run_count, 0);
		cr_assert_eq(replay.flags, 0);
		cr_assert_gt(frame_ack_encode(wire, sizeof(wire), &replay, false), 0);
	}
	/* The window slides past it as for any batch. */
	cr_assert_eq(check(&d, 1, 7 + FRAME_DEDUP_WINDOW), FRAME_DEDUP_NEW);
	cr_assert_eq(check(&d, 1, 7), FRAME_DEDUP_TOO_OLD);
}

/*
 * Section 7: a producer id belongs to the key of its first signed frame. Unsigned frames
 * pass until then (a stream without auth); afterwards only that key id does.
 */
Test(frame_dedup, a_producer_id_is_bound_to_its_first_key)
{
	const struct frame_auth_key k1 = { .key_id = 1, .key_size = 16 };
	const struct frame_auth_key k2 = { .key_id = 2, .key_size = 16 };
	struct frame_dedup d;

	frame_dedup_init(&d, 5);
	cr_assert(frame_dedup_key_admits(&d, NULL), "unsigned, unbound");
	cr_assert(!d.key_bound);
	cr_assert(frame_dedup_key_admits(&d, &k1), "the first key binds");
	cr_assert(frame_dedup_key_admits(&d, &k1));
	cr_assert(!frame_dedup_key_admits(&d, &k2), "another key is refused");
	cr_assert(!frame_dedup_key_admits(&d, NULL), "so is an unsigned frame, once bound");
	cr_assert_eq(d.key_id, 1, "the binding stays");
	frame_dedup_init(&d, 5);
	cr_assert(!d.key_bound, "a reclaimed window forgets it");
}
