/*
 * bench_firehose.c - what delivery costs next to ingest, in one process, on one
 * thread (as sluiced runs both on its API thread): 100 B records put through
 * firehose_put() in batches of 500 until durable, then delivered by the flusher,
 * once per compression format. Prints records/s of each phase and their ratio
 * (issue 16's goal: delivery >= 0.8x ingest with GZIP). Not a test: it can only
 * fail when the engine does. `meson test -C build --benchmark firehose_bench`.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"

#define BENCH_RECORDS 1000000u
#define BENCH_BATCH 500u
#define BENCH_RECORD_SIZE 100u
#define BENCH_INFLIGHT 8u   /* Puts waiting for the log at once. */
#define BENCH_POOL 64u      /* Distinct batches (3.2 MB: past zstd's window at level 3). */

static uint32_t bench_done;
static uint64_t bench_object_bytes;

static int
bench_sum(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F)
		bench_object_bytes += (uint64_t)st->st_size;
	return 0;
}
static int bench_error;

static void
bench_put_done(void *ctx, int error, const uint64_t *seqs, uint32_t count)
{
	(void)ctx;
	(void)seqs;
	(void)count;
	bench_done++;
	if (error != 0)
		bench_error = error;
}

static int
bench_one(const char *dir, enum firehose_compression c)
{
	static uint8_t data[BENCH_POOL][BENCH_BATCH][BENCH_RECORD_SIZE];
	static struct firehose_record recs[BENCH_POOL][BENCH_BATCH];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct firehose_spec spec = { .size_mb = 128, .interval_s = 900, .compression = c };
	char log_dir[512], root[512];
	struct firehose_options o = { .data_dir = dir, .local_root = root };
	struct firehose_info info;
	struct log_config lc;
	struct log *log;
	struct firehose *fh;
	uint32_t sent = 0, puts = 0;
	uint64_t t0, t1, t2;

	snprintf(log_dir, sizeof(log_dir), "%s/log-%d", dir, (int)c);
	snprintf(root, sizeof(root), "%s/objects-%d", dir, (int)c);
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = 256u << 20;
	lc.batch_size = 1088u << 10;
	lc.batches_per_producer = 64;
	lc.writer_thread = true;
	if (log_open(&lc, &log) != 0)
		return 1;
	o.log = log;
	snprintf(spec.name, sizeof(spec.name), "bench-%d", (int)c);
	snprintf(spec.bucket, sizeof(spec.bucket), "b");
	if (firehose_open(&o, &fh) != 0 || firehose_create(fh, &spec, 1) != 0)
		return 1;
	/* Telemetry-like lines: a fixed shape, varying ids and readings (xorshift). */
	for (uint32_t b = 0; b < BENCH_POOL; b++) {
		for (uint32_t i = 0; i < BENCH_BATCH; i++) {
			char line[2 * BENCH_RECORD_SIZE];
			int n;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memset(line, ' ', sizeof(line));
			n = snprintf(line, sizeof(line), "{\"ts\":17865%05u,\"sensor\":\"s-%04u\","
				     "\"temp\":%u.%02u,\"rh\":%u,\"seq\":%llu,\"ok\":true}",
				     (unsigned)(x % 100000), (unsigned)(x >> 20) % 5000,
				     (unsigned)(x >> 33) % 40, (unsigned)(x >> 40) % 100,
				     (unsigned)(x >> 50) % 100, (unsigned long long)(x >> 44));
			line[n] = ' ';  /* Padded with spaces to the record size. */
			memcpy(data[b][i], line, BENCH_RECORD_SIZE - 1);
			data[b][i][BENCH_RECORD_SIZE - 1] = '\n';
			recs[b][i] = (struct firehose_record){ data[b][i], BENCH_RECORD_SIZE };
		}
	}
	bench_done = 0;
	t0 = clock_mono_ns();
	while (bench_done < BENCH_RECORDS / BENCH_BATCH) {
		if (sent < BENCH_RECORDS && puts - bench_done < BENCH_INFLIGHT &&
		    firehose_put(fh, spec.name, recs[puts % BENCH_POOL], BENCH_BATCH, clock_real_ns(),
				 bench_put_done, NULL) == 0) {
			sent += BENCH_BATCH;
			puts++;
			continue;
		}
		firehose_poll(fh, clock_real_ns());
	}
	t1 = clock_mono_ns();
	/* Everything is due 900 s on: the flusher cuts 128 MiB objects until done. */
	do {
		firehose_poll(fh, clock_real_ns() + 901ull * 1000000000ull);
		firehose_describe(fh, spec.name, &info);
	} while (info.delivered_seq < BENCH_RECORDS);
	t2 = clock_mono_ns();
	bench_object_bytes = 0;
	nftw(root, bench_sum, 16, FTW_PHYS);
	printf("firehose-bench %-12s ingest %9.0f rec/s  deliver %9.0f rec/s  ratio %.2f  "
	       "objects %llu  %.1f%% of %u MB\n", firehose_compression_name(c),
	       BENCH_RECORDS / ((double)(t1 - t0) / 1e9),
	       BENCH_RECORDS / ((double)(t2 - t1) / 1e9), (double)(t1 - t0) / (double)(t2 - t1),
	       (unsigned long long)info.objects_delivered,
	       100.0 * (double)bench_object_bytes / (BENCH_RECORDS * (double)BENCH_RECORD_SIZE),
	       BENCH_RECORDS * BENCH_RECORD_SIZE / 1000000u);
	firehose_close(fh);
	log_close(log);
	return bench_error != 0;
}

int
main(void)
{
	char dir[] = "/tmp/sluice-firehose-bench-XXXXXX";
	char cmd[128];
	int rc = 0;

	if (mkdtemp(dir) == NULL)
		return 1;
	for (int c = 0; c < FIREHOSE_COMPRESSION_COUNT && rc == 0; c++)
		rc = bench_one(dir, (enum firehose_compression)c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
