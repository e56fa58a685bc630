/*
 * log_recent: reads served from the writer's window ring (recently written,
 * durable data) over the simulated disk, driven step by step. What the ring
 * serves is byte-identical to what the device serves (the same reads are
 * repeated after a reopen, when the ring is empty), never goes past the
 * durable watermark while windows are in flight, and stays right when the
 * ring wraps many times over and segments roll over; batches the writer
 * has overwritten in the ring come from the device.
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
#include "tests/support/seed.h"

#define DATA 100u
#define SHARDS 3u

struct fixture {
	struct log_io *io;
	struct log *log;
	struct log_producer *p;
	struct log_reader *r;
	struct log_config c;
	uint64_t now;
	uint64_t next[SHARDS];
};

static struct fixture f;

static uint64_t
sid(uint32_t s)
{
	return LOG_SHARD_ID(9, s);
}

static void
fx_open(void)
{
	cr_assert_eq(log_open(&f.c, &f.log), 0);
	cr_assert_eq(log_producer_open(f.log, &f.p), 0);
	cr_assert_eq(log_reader_open(f.log, &f.r), 0);
}

static void
fx_close(void)
{
	log_reader_close(f.r);
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
	f.c.dir_path = "recent";
	f.c.io = f.io;
	f.c.writer_thread = false;
	f.c.segment_size = 1u << 20;
	f.c.batch_size = 4096;
	f.c.commit_window_bytes = 16u << 10;
	f.c.producers_max = 1;
	f.c.batches_per_producer = 16;
	f.c.shards_max = 8;
	f.c.read_cache_bytes = 0; /* The smallest ring (4 windows): it wraps often. */
	f.now = 1000000000;
	fx_open();
}

static void
teardown(void)
{
	fx_close();
	log_io_sim_destroy(f.io);
}

TestSuite(log_recent, .init = setup, .fini = teardown, .timeout = 60);

static void
submit(uint32_t s, uint32_t n)
{
	struct log_batch *b = log_batch_get(f.p);

	cr_assert_not_null(b, "pool empty");
	for (uint32_t k = 0; k < n; k++) {
		uint8_t data[DATA];
		char key[48];
		struct log_record_in rec;

		test_record_make(sid(s), f.next[s] + k, DATA, data, key, &rec);
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
		for (uint32_t i = 0; i < n; i++)
			cr_assert_eq(c[i].error, 0);
	}
}

static void
settle(void)
{
	uint32_t idle = 0;

	for (uint32_t i = 0; i < 10000 && idle < 40; i++) {
		f.now += 20000;
		idle = log_writer_step(f.log, f.now) == 0 ? idle + 1 : 0;
	}
	poll_all();
}

/* Digest of what a read delivers: every field of every record, in order. */
struct digest {
	struct test_collect col;
	uint64_t hash;
};

static void
digest_bytes(uint64_t *hash, const void *p, size_t size)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < size; i++)
		*hash = (*hash ^ b[i]) * 1099511628211ull;
}

static int
digest_fn(void *arg, const struct log_record_out *rec)
{
	struct digest *d = arg;

	digest_bytes(&d->hash, &rec->seq, sizeof(rec->seq));
	digest_bytes(&d->hash, &rec->arrival_ns, sizeof(rec->arrival_ns));
	digest_bytes(&d->hash, rec->partition_key, rec->partition_key_size);
	digest_bytes(&d->hash, rec->data, rec->data_size);
	return test_collect_fn(&d->col, rec);
}

/*
 * Reads shard s from `from` to its end in calls of up to `step` records;
 * checks every record's bytes and that the read ends exactly at the durable
 * watermark. Returns the digest.
 */
static uint64_t
read_check(uint32_t s, uint64_t from, uint32_t step)
{
	struct digest d = { .col = { .shard_id = sid(s), .data_size = DATA },
			    .hash = 14695981039346656037ull };
	struct log_shard_info info;
	uint64_t seq = from;
	int n;

	cr_assert_eq(log_shard_info(f.log, sid(s), &info), 0);
	do {
		n = log_read(f.r, sid(s), seq, step, 1u << 20, digest_fn, &d, &seq);
		cr_assert_geq(n, 0, "read shard %u at %lu: %d", s, (unsigned long)seq, n);
	} while (n > 0);
	cr_assert_eq(seq, info.seq_durable, "shard %u: read to %lu, durable %lu", s,
		     (unsigned long)seq, (unsigned long)info.seq_durable);
	cr_assert_eq(d.col.bad, 0);
	cr_assert_eq(d.col.count, info.seq_durable - from);
	for (uint32_t i = 0; i < d.col.count; i++)
		cr_assert_eq(d.col.seqs[i], from + i);
	free(d.col.seqs);
	return d.hash;
}

/*
 * Many wraps of a 4-window ring over several segments: reads from seeded
 * positions (recent ones from the ring, old ones from the device, ones the
 * writer overwrote in the ring meanwhile from the device) are all exact;
 * after a reopen (empty ring) the same reads give the same bytes.
 */
Test(log_recent, ring_matches_device_across_wraps_and_rollovers)
{
	struct seed_rng rng;
	uint64_t hash[SHARDS];
	struct log_stats st;

	seed_rng_init(&rng, seed_base());
	for (uint32_t round = 0; round < 300; round++) {
		for (uint32_t b = 0; b < 8; b++)
			submit((uint32_t)(seed_rng_below(&rng, SHARDS)),
			       1 + (uint32_t)(seed_rng_below(&rng, 30)));
		settle();
		for (uint32_t s = 0; s < SHARDS; s++) {
			uint64_t back = seed_rng_below(&rng, 200);

			read_check(s, f.next[s] > back ? f.next[s] - back : 0,
				   1 + (uint32_t)(seed_rng_below(&rng, 64)));
		}
	}
	log_stats_read(f.log, &st);
	cr_assert_gt(st.reads_memory, 1000, "ring reads: %lu", (unsigned long)st.reads_memory);
	cr_assert_gt(st.reads_device + st.reads_cached, 0);
	cr_assert_gt(f.next[0] * (DATA + 16) * SHARDS, 3u << 20, "not enough data to roll over");
	for (uint32_t s = 0; s < SHARDS; s++)
		hash[s] = read_check(s, 0, 500);
	/* Most of it is old: the device served it. The newest windows came from the ring. */
	log_stats_read(f.log, &st);
	cr_assert_gt(st.reads_device + st.reads_cached, 900);

	fx_close();
	fx_open();
	for (uint32_t s = 0; s < SHARDS; s++)
		cr_assert_eq(read_check(s, 0, 500), hash[s], "shard %u differs after reopen", s);
	log_stats_read(f.log, &st);
	cr_assert_eq(st.reads_memory, 0);
	cr_assert_gt(st.reads_device + st.reads_cached, 0);
}

/*
 * While windows are in flight their bytes are in the ring, but reads stop
 * at the durable watermark after every single writer step.
 */
Test(log_recent, never_past_the_durable_watermark)
{
	uint32_t steps_in_flight = 0;
	struct seed_rng rng;

	seed_rng_init(&rng, seed_base());
	for (uint32_t round = 0; round < 200; round++) {
		for (uint32_t b = 0; b < 6; b++)
			submit((uint32_t)(seed_rng_below(&rng, SHARDS)),
			       1 + (uint32_t)(seed_rng_below(&rng, 30)));
		for (uint32_t step = 0; step < 12; step++) {
			struct log_shard_info info;

			f.now += 20000;
			cr_assert_geq(log_writer_step(f.log, f.now), 0);
			poll_all();
			for (uint32_t s = 0; s < SHARDS; s++) {
				uint64_t back = seed_rng_below(&rng, 100);

				cr_assert_eq(log_shard_info(f.log, sid(s), &info), 0);
				steps_in_flight += info.seq_durable < f.next[s] ? 1u : 0u;
				read_check(s, info.seq_durable > back ? info.seq_durable - back : 0,
					   1 + (uint32_t)(seed_rng_below(&rng, 64)));
			}
		}
		settle();
	}
	/* The property was checked while records were in flight, not only when idle. */
	cr_assert_gt(steps_in_flight, 100);
}

/* A bigger ring serves everything still in it without device I/O. */
Test(log_recent, bigger_ring_serves_all_recent_reads)
{
	struct log_stats st;

	fx_close();
	f.c.read_cache_bytes = 4u << 20;
	f.c.segment_size = 2u << 20;
	fx_open();
	for (uint32_t round = 0; round < 40; round++) {
		for (uint32_t b = 0; b < 8; b++)
			submit(b % SHARDS, 20);
		settle();
	}
	for (uint32_t s = 0; s < SHARDS; s++)
		read_check(s, 0, 100);
	log_stats_read(f.log, &st);
	cr_assert_gt(st.reads_memory, 300);
	cr_assert_eq(st.reads_device + st.reads_cached, 0);
}
