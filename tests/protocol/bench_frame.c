/*
 * bench_frame: codec costs on this machine, for docs/BENCHMARKS.md "Ingest".
 * Decode + iterate (the dataplane's per-frame work without routing), encode,
 * dedup check, HMAC verify. Prints one line per measurement; best of 5 runs.
 * Usage: bench_frame [seconds_per_run, default 0.2]
 */
/* MD5(), as libsluice computes producer hash keys. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/md5.h>

#include "common/clock.h"
#include "protocol/frame.h"

static uint8_t frame[FRAME_SIZE_MAX];
static volatile uint64_t sink;

/* A batch of `count` records: 16-byte keys, MD5 hash keys, `data_size` bytes of data. */
static uint32_t
build(uint32_t count, uint32_t data_size, bool auth)
{
	static uint8_t data[4096];
	struct frame_batch_params params = {
		.producer_id = 7, .batch_seq = 1, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .auth = auth,
		.stream_name = "bench", .stream_name_size = 5,
	};
	struct frame_writer w;
	int size;

	memset(data, 'd', sizeof(data));
	frame_writer_begin(&w, frame, sizeof(frame), &params);
	for (uint32_t i = 0; i < count; i++) {
		char key[17];
		uint8_t md5[16];
		struct frame_record r = { .key = (const uint8_t *)key, .key_size = 16,
					  .hash_kind = FRAME_HASH_MD5, .hash_key = md5,
					  .data = data, .data_size = data_size };

		snprintf(key, sizeof(key), "device-%09u", i);
		MD5((const uint8_t *)key, 16, md5);
		if (frame_writer_add(&w, &r) != 0)
			abort();
	}
	size = frame_writer_finish(&w);
	if (size <= 0)
		abort();
	return (uint32_t)size;
}

static double
decode_run(uint32_t size, double seconds, uint64_t *records_out)
{
	uint64_t start = clock_mono_ns();
	uint64_t end = start + (uint64_t)(seconds * 1e9);
	uint64_t records = 0;
	uint64_t now;

	do {
		for (int k = 0; k < 64; k++) {
			struct frame_records rec;
			struct frame_record_iter iter;
			struct frame_record r;

			if (frame_records_decode(frame, size, &rec) != FRAME_OK)
				abort();
			frame_record_iter_init(&iter, &rec);
			while (frame_record_iter_next(&iter, &r))
				sink += r.data_size + r.hash_key[0];
			records += rec.record_count;
		}
		now = clock_mono_ns();
	} while (now < end);
	*records_out = records;
	return (double)(now - start) / 1e9;
}

static void
bench_decode(uint32_t count, uint32_t data_size, double seconds)
{
	uint32_t size = build(count, data_size, false);
	double best = 0;

	for (int run = 0; run < 5; run++) {
		uint64_t records;
		double t = decode_run(size, seconds, &records);

		if ((double)records / t > best)
			best = (double)records / t;
	}
	printf("decode+iterate  %3u records x %4u B data, frame %6u B: %6.1f M records/s, "
	       "%5.2f GB/s\n", count, data_size, size, best / 1e6,
	       best / count * size / 1e9);
}

static void
bench_encode(uint32_t count, uint32_t data_size, double seconds)
{
	double best = 0;

	for (int run = 0; run < 5; run++) {
		uint64_t start = clock_mono_ns();
		uint64_t n = 0;

		while (clock_mono_ns() - start < (uint64_t)(seconds * 1e9)) {
			build(count, data_size, false);
			n += count;
		}
		double rate = (double)n / ((double)(clock_mono_ns() - start) / 1e9);

		if (rate > best)
			best = rate;
	}
	printf("encode (with producer MD5) %3u records x %4u B: %6.2f M records/s\n", count,
	       data_size, best / 1e6);
}

static void
bench_dedup(double seconds)
{
	static struct frame_dedup d;
	struct frame_ack_run run = { .seq_first = 0, .shard_index = 1, .count = 10 };
	struct frame_ack ack = { .type = FRAME_TYPE_ACK, .status = FRAME_STATUS_OK,
				 .flags = FRAME_ACK_DURABLE, .record_count = 10,
				 .record_index = FRAME_RECORD_INDEX_NONE, .run_count = 1,
				 .runs = &run };
	uint64_t start = clock_mono_ns();
	uint64_t seq = 0;

	frame_dedup_init(&d, 7);
	while (clock_mono_ns() - start < (uint64_t)(seconds * 1e9)) {
		for (int k = 0; k < 1024; k++, seq++) {
			const struct frame_dedup_entry *entry;

			if (frame_dedup_check(&d, 1, seq, &entry) != FRAME_DEDUP_NEW)
				abort();
			ack.batch_seq = seq;
			frame_dedup_complete(&d, 1, &ack);
		}
	}
	printf("dedup check+complete: %6.1f M batches/s\n",
	       (double)seq / ((double)(clock_mono_ns() - start) / 1e9) / 1e6);
}

static void
bench_auth(uint32_t count, uint32_t data_size, double seconds)
{
	struct frame_auth_key key = { .key_id = 1, .key_size = 32 };
	uint32_t size = build(count, data_size, true);
	uint64_t start = clock_mono_ns();
	uint64_t n = 0;

	frame_auth_sign(frame, size, &key, 1000);
	while (clock_mono_ns() - start < (uint64_t)(seconds * 1e9)) {
		if (frame_auth_verify(frame, size, &key, 1000, 1000) != FRAME_OK)
			abort();
		n++;
	}
	double rate = (double)n / ((double)(clock_mono_ns() - start) / 1e9);

	printf("HMAC verify, frame %6u B: %6.2f M frames/s, %5.2f GB/s\n", size, rate / 1e6,
	       rate * size / 1e9);
}

int
main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0.2;

	bench_decode(10, 100, seconds);
	bench_decode(1, 1000, seconds);
	bench_decode(100, 10, seconds);
	bench_decode(500, 100, seconds);
	bench_encode(10, 100, seconds);
	bench_dedup(seconds);
	bench_auth(10, 100, seconds * 5);
	bench_auth(500, 100, seconds * 5);
	return 0;
}
