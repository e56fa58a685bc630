/*
 * recovery_seeds: writes fuzz_recovery's seed inputs, log directories the real
 * writer made on the simulated disk, one file per shape (recovery_files.h):
 *
 *   one-batch         one record, closed cleanly
 *   many-batches      three shards, windows of several batches, explicit hash keys
 *   crashed           many batches, then power loss mid-window (a torn tail)
 *   sealed-active     a sealed segment with its index file, then an active one
 *   encrypted         a stream encrypted at rest (AES-256-GCM batches)
 *
 *   recovery_seeds DIR     (DIR exists; the files are replaced)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme-log/log.h"
#include "nvme-log/log_io.h"
#include "nvme-log/log_io_sim.h"
#include "tests/fuzz/recovery_files.h"

#define SEEDS_STEPS_MAX 100000u

struct seeds_world {
	struct log_io *io;
	struct log *log;
	struct log_producer *producer;
	uint64_t now_ns;
	uint32_t in_flight;
};

static void
check(int err, const char *what)
{
	if (err != 0) {
		fprintf(stderr, "recovery_seeds: %s: %s\n", what, strerror(-err));
		exit(1);
	}
}

static void
world_open(struct seeds_world *w)
{
	struct log_config config;

	*w = (struct seeds_world){ .now_ns = 1700000000000000000ull };
	check(log_io_sim_create(RECOVERY_SIM_SEED, &w->io), "sim");
	recovery_config(&config, w->io);
	check(log_open(&config, &w->log), "log_open");
	check(log_producer_open(w->log, &w->producer), "producer");
}

/* Steps the writer until every submitted batch completed (durable). */
static void
world_drain(struct seeds_world *w)
{
	struct log_completion c[8];

	for (uint32_t i = 0; i < SEEDS_STEPS_MAX && w->in_flight > 0; i++) {
		uint32_t n;

		w->now_ns += 100000;
		log_writer_step(w->log, w->now_ns);
		while ((n = log_completions_poll(w->producer, c, 8)) > 0) {
			for (uint32_t k = 0; k < n; k++)
				check(c[k].error, "append");
			w->in_flight -= n;
		}
	}
	if (w->in_flight > 0)
		check(-ETIMEDOUT, "drain");
}

/* One batch of `count` records of `data_size` bytes (zeros when `zeros`) to the shard. */
static void
world_batch(struct seeds_world *w, uint64_t shard_id, uint32_t count, uint32_t data_size,
	    bool zeros)
{
	static uint8_t data[RECOVERY_SEGMENT_SIZE / 4];
	struct log_batch *b = log_batch_get(w->producer);
	uint8_t hash_key[16] = { 0x7f, 1, 2, 3 };

	if (b == NULL)
		check(-ENOBUFS, "batch");
	for (uint32_t i = 0; i < count; i++) {
		char key[32];
		struct log_record_in r = {
			.partition_key = key,
			.partition_key_size = (uint16_t)snprintf(key, sizeof(key), "key-%u", i),
			.explicit_hash_key = i % 3 == 2 ? hash_key : NULL,
			.data = data,
			.data_size = data_size + i,
			.arrival_ns = w->now_ns + i * 1000,
		};

		for (uint32_t k = 0; k < r.data_size && k < sizeof(data); k++)
			data[k] = zeros ? 0 : (uint8_t)(k * 31 + i);
		check(log_batch_add(b, &r), "add");
	}
	check(log_batch_submit(w->producer, b, shard_id, 0), "submit");
	w->in_flight++;
}

/* Dumps the disk as one seed file; a crash first loses what was not durable. */
static void
world_dump(struct seeds_world *w, const char *dir, const char *name, bool crash)
{
	char path[4096];
	FILE *out;

	if (crash)
		log_io_sim_crash(w->io);
	log_producer_close(w->producer);
	log_close(w->log);
	if (crash)
		log_io_sim_restart(w->io);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(path, "wb");
	if (out == NULL)
		check(-errno, path);
	check(recovery_files_dump(w->io, RECOVERY_SEGMENT_SIZE, out), name);
	if (fclose(out) != 0)
		check(-errno, path);
	log_io_sim_destroy(w->io);
}

static void
shape_many(struct seeds_world *w)
{
	for (uint32_t window = 0; window < 6; window++) {
		for (uint32_t s = 0; s < 3; s++)
			world_batch(w, LOG_SHARD_ID(1, s), 1 + (window + s) % 4, 20 + 40 * s, false);
		world_drain(w);
	}
}

int
main(int argc, char **argv)
{
	struct seeds_world w;
	struct log_key key;

	if (argc != 2) {
		fprintf(stderr, "usage: recovery_seeds DIR\n");
		return 2;
	}
	world_open(&w);
	world_batch(&w, LOG_SHARD_ID(1, 0), 1, 10, false);
	world_drain(&w);
	world_dump(&w, argv[1], "one-batch", false);

	world_open(&w);
	shape_many(&w);
	world_dump(&w, argv[1], "many-batches", false);

	world_open(&w);
	shape_many(&w);
	world_batch(&w, LOG_SHARD_ID(1, 1), 3, 100, false);
	world_batch(&w, LOG_SHARD_ID(1, 2), 3, 100, false);
	w.now_ns += 100000;
	log_writer_step(w.log, w.now_ns); /* Submitted, not yet flushed. */
	world_dump(&w, argv[1], "crashed", true);

	/* Three batches of ~200 KiB of zeros fill the segment past its sealing point. */
	world_open(&w);
	for (uint32_t i = 0; i < 4; i++) {
		world_batch(&w, LOG_SHARD_ID(2, 0), 1, 200u << 10, true);
		world_drain(&w);
	}
	shape_many(&w);
	world_dump(&w, argv[1], "sealed-active", false);

	world_open(&w);
	recovery_key(&key);
	check(log_keys_replace(w.log, &key, 1), "keys");
	check(log_stream_encryption_set(w.log, 3, RECOVERY_KEY_ID), "encryption");
	for (uint32_t i = 0; i < 3; i++) {
		world_batch(&w, LOG_SHARD_ID(3, 0), 2 + i, 50, false);
		world_batch(&w, LOG_SHARD_ID(1, 0), 1, 30, false);
		world_drain(&w);
	}
	world_dump(&w, argv[1], "encrypted", false);
	return 0;
}
