/*
 * cmd_bench_log.c - `sluice bench log`: the log against the raw device,
 * measured in the same run, in a temp directory on the target's filesystem.
 *
 *   1. fio: sequential O_DIRECT 128 KiB writes at iodepth 32 (bandwidth),
 *      then 4 KiB write + fdatasync at QD1 over the written file (latency;
 *      p50/p99 are the sums of fio's write and sync percentiles).
 *   2. the log, acknowledgements only after durability: bandwidth with 1
 *      and 10,000 shards at 100 B and 1 KiB records (payload bytes acked per
 *      second; segments pre-written before the timed part, as retention's
 *      recycled segments would be), records/s at 100 B, append -> ack
 *      latency at low load (one 100 B record at a time, paced), and the
 *      reopen time after a SIGKILL with --recovery-bytes retained.
 *
 * The last line is machine-readable:
 *   log-bench: bw_ratio_1=... bw_ratio_10k=... rec_per_s_100B=... p50_ratio=...
 *              p99_ratio=... recovery_s=...
 * bw ratios are the lower of the 100 B and 1 KiB runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "nvme-log/log.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define BENCH_SHARDS_MANY 10000u
#define BENCH_DATA_MAX 1024u
#define BENCH_REPS_MAX 15u

struct bench_opts {
	const char *dir;
	const char *only;          /* "bw", "lat" or "recovery": one part (tuning). */
	uint64_t run_bytes;        /* Payload per bandwidth run (a run also stops at run_ns). */
	uint64_t run_ns;
	uint32_t fio_seconds;
	uint64_t fio_size;
	uint32_t lat_count;
	uint32_t lat_gap_us;
	uint64_t recovery_bytes;
	uint64_t segment_size;
	uint32_t batch_size;
	uint64_t window_bytes;
	uint32_t window_us;        /* log.commit_window_us (0: none) ... */
	uint32_t window_adaptive_us; /* ... or its adaptive maximum (0: none). */
	uint32_t reps;             /* Interleaved fio/log repetitions (medians). */
	bool encrypt;              /* The bench stream encrypted (AES-256-GCM, a fixed key). */
};

struct fio_result {
	double bw_bytes;           /* Bytes per second. */
	double p50_us;
	double p99_us;
};

struct bw_result {
	double payload_bps;
	double records_ps;
	double disk_bps;
};

static char bench_root[4096];
static bool fio_printed[256];

static double
now_s(void)
{
	return (double)clock_mono_ns() / 1e9;
}

/* Runs a command and returns its whole stdout (malloc'd), or NULL. */
static char *
run_capture(const char *cmd)
{
	FILE *fp = popen(cmd, "r");
	size_t size = 0;
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	size_t n;

	if (fp == NULL || buf == NULL) {
		free(buf);
		if (fp != NULL)
			pclose(fp);
		return NULL;
	}
	while ((n = fread(buf + size, 1, cap - size - 1, fp)) > 0) {
		size += n;
		if (cap - size < 4096) {
			char *bigger = realloc(buf, cap * 2);

			if (bigger == NULL)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	buf[size] = '\0';
	if (pclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static double
json_num(const cJSON *root, const char *const *path)
{
	const cJSON *node = root;

	for (; *path != NULL && node != NULL; path++)
		node = cJSON_GetObjectItemCaseSensitive(node, *path);
	return cJSON_IsNumber(node) ? node->valuedouble : -1.0;
}

static int
fio_run(const char *args, cJSON **json_out)
{
	char cmd[4096 + 1024];
	char *out;

	snprintf(cmd, sizeof(cmd), "fio --output-format=json --filename=%s/fio.dat %s 2>/dev/null",
		 bench_root, args);
	if (!fio_printed[(uint8_t)args[7]]) {
		/* Each job once: "--name=bw" / "--name=lat" (the letter after "--name="). */
		fio_printed[(uint8_t)args[7]] = true;
		printf("  $ fio --filename=%s/fio.dat %s\n", bench_root, args);
		fflush(stdout);
	}
	out = run_capture(cmd);
	if (out == NULL)
		return -EIO;
	*json_out = cJSON_Parse(out);
	free(out);
	return *json_out == NULL ? -EBADMSG : 0;
}

/* fio: sequential 128 KiB O_DIRECT writes at iodepth 32, bytes per second. */
static int
fio_bw(const struct bench_opts *o, double *bw_out)
{
	char args[512];
	cJSON *json;
	const cJSON *job;
	int err;

	snprintf(args, sizeof(args), "--name=bw --rw=write --bs=128k --size=%" PRIu64 " --direct=1 "
		 "--iodepth=32 --ioengine=io_uring --runtime=%u --time_based", o->fio_size,
		 o->fio_seconds);
	err = fio_run(args, &json);
	if (err != 0)
		return err;
	job = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(json, "jobs"), 0);
	*bw_out = json_num(cJSON_GetObjectItemCaseSensitive(job, "write"),
			   (const char *const[]){ "bw_bytes", NULL });
	cJSON_Delete(json);
	return *bw_out > 0 ? 0 : -EBADMSG;
}

/* fio: 4 KiB write + fdatasync at QD1; p50/p99 are write + sync percentiles added. */
static int
fio_lat(const struct bench_opts *o, struct fio_result *r)
{
	static const char *const w50[] = { "clat_ns", "percentile", "50.000000", NULL };
	static const char *const w99[] = { "clat_ns", "percentile", "99.000000", NULL };
	static const char *const s50[] = { "lat_ns", "percentile", "50.000000", NULL };
	static const char *const s99[] = { "lat_ns", "percentile", "99.000000", NULL };
	char args[512];
	cJSON *json;
	const cJSON *job;
	int err;

	snprintf(args, sizeof(args), "--name=lat --rw=write --bs=4k --size=%" PRIu64 " --direct=1 "
		 "--fdatasync=1 --ioengine=psync --runtime=%u --time_based", o->fio_size,
		 o->fio_seconds);
	err = fio_run(args, &json);
	if (err != 0)
		return err;
	job = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(json, "jobs"), 0);
	r->p50_us = (json_num(cJSON_GetObjectItemCaseSensitive(job, "write"), w50) +
		     json_num(cJSON_GetObjectItemCaseSensitive(job, "sync"), s50)) / 1000.0;
	r->p99_us = (json_num(cJSON_GetObjectItemCaseSensitive(job, "write"), w99) +
		     json_num(cJSON_GetObjectItemCaseSensitive(job, "sync"), s99)) / 1000.0;
	cJSON_Delete(json);
	return r->p50_us > 0 ? 0 : -EBADMSG;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, uint32_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
bench_config(const struct bench_opts *o, const char *dir, uint64_t bytes, struct log_config *c)
{
	uint64_t segments = bytes * 5 / 4 / o->segment_size + 2;

	log_config_default(c);
	c->dir_path = dir;
	c->segment_size = o->segment_size;
	c->batch_size = o->batch_size;
	c->commit_window_bytes = o->window_bytes;
	c->commit_window_us = o->window_us;
	c->commit_window_adaptive_us = o->window_adaptive_us;
	c->producers_max = 1;
	c->batches_per_producer = 128;
	c->shards_max = 16384;
	c->segments_prepared = (uint32_t)(segments < 1000 ? segments : 1000);
}

/* Waits until the preparer has pre-written what the run will need. */
static void
wait_prepared(struct log *log, uint32_t target)
{
	struct log_stats st;
	double deadline = now_s() + 120;

	do {
		log_stats_read(log, &st);
		if (st.segments_spare >= target)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	} while (now_s() < deadline);
}

static uint64_t
shard_of(uint32_t i)
{
	return LOG_SHARD_ID(1, i);
}

/* Fills a batch with records of `size` bytes; returns its payload bytes (key + data). */
static uint64_t
bench_fill(struct log_batch *b, uint32_t shard, uint32_t size, const uint8_t *data)
{
	char key[16];
	struct log_record_in rec = { .partition_key = key, .data = data, .data_size = size };
	uint64_t payload = 0;

	rec.partition_key_size = (uint16_t)snprintf(key, sizeof(key), "key-%u", shard);
	rec.arrival_ns = clock_real_ns();
	while (log_batch_add(b, &rec) == 0)
		payload += size + rec.partition_key_size;
	return payload;
}

static void
bench_fill_one(struct log_batch *b, const uint8_t *data)
{
	struct log_record_in rec = { .partition_key = "key-0", .partition_key_size = 5,
				     .data = data, .data_size = 100,
				     .arrival_ns = clock_real_ns() };

	log_batch_add(b, &rec);
}

struct bw_state {
	uint64_t payload;
	uint64_t records;
	int32_t error;
};

static uint32_t
bw_reap(struct log_producer *p, struct bw_state *st)
{
	struct log_completion c[64];
	uint32_t n = log_completions_poll(p, c, 64);

	for (uint32_t i = 0; i < n; i++) {
		if (c[i].error != 0)
			st->error = c[i].error;
		st->payload += c[i].cookie;
		st->records += c[i].record_count;
	}
	return n;
}

/* Keeps the producer's pool in flight until the byte or time budget is spent. */
static int
bw_loop(const struct bench_opts *o, struct log_producer *p, uint32_t shards, uint32_t size,
	struct bw_state *st)
{
	static uint8_t data[BENCH_DATA_MAX];
	uint64_t start = clock_mono_ns();
	uint32_t shard = 0;
	uint32_t inflight = 0;

	memset(data, 0xa5, sizeof(data));
	while (st->payload < o->run_bytes && clock_mono_ns() - start < o->run_ns &&
	       st->error == 0) {
		struct log_batch *b;
		uint32_t n;

		while ((b = log_batch_get(p)) != NULL) {
			uint64_t payload = bench_fill(b, shard, size, data);

			if (log_batch_submit(p, b, shard_of(shard), payload) != 0)
				return -EIO;
			inflight++;
			shard = (shard + 1) % shards;
		}
		n = bw_reap(p, st);
		inflight -= n;
		if (n == 0)
			poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 1);
	}
	while (inflight > 0) {
		inflight -= bw_reap(p, st);
		poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 1);
	}
	return st->error;
}

/* One timed bandwidth repetition on an open log. */
static int
bw_rep(const struct bench_opts *o, struct log *log, struct log_producer *p, uint32_t shards,
       uint32_t size, struct bw_result *r)
{
	struct bw_state st = { 0 };
	struct log_stats s0;
	struct log_stats s1;
	double t0 = now_s();
	double dt;
	int err;

	log_stats_read(log, &s0);
	err = bw_loop(o, p, shards, size, &st);
	dt = now_s() - t0;
	log_stats_read(log, &s1);
	r->payload_bps = (double)st.payload / dt;
	r->records_ps = (double)st.records / dt;
	r->disk_bps = (double)(s1.bytes_written - s0.bytes_written) / dt;
	return err;
}

/* --encrypt: the bench stream (stream 1) encrypted, as StartStreamEncryption does. */
static int
bench_encrypt(const struct bench_opts *o, struct log *log)
{
	struct log_key key = { .key_id = 1, .version = 1, .enabled = true };
	int err;

	if (!o->encrypt)
		return 0;
	memset(key.material, 0x5a, sizeof(key.material));
	err = log_keys_replace(log, &key, 1);
	return err != 0 ? err : log_stream_encryption_set(log, LOG_SHARD_STREAM(shard_of(0)), 1);
}

/*
 * One configuration: the log is opened once with every segment the
 * repetitions need pre-written, then each repetition runs fio's bandwidth
 * job and right after it the log's, so both see the same neighbours. The
 * results are the medians over repetitions (the ratio: of per-pair ratios).
 */
static int
bw_run(const struct bench_opts *o, uint32_t shards, uint32_t size, struct bw_result *r,
       double *fio_bps, double *ratio)
{
	double pay[BENCH_REPS_MAX], rec[BENCH_REPS_MAX], disk[BENCH_REPS_MAX];
	double fio[BENCH_REPS_MAX], rat[BENCH_REPS_MAX];
	char dir[4200];
	struct log_config c;
	struct log_producer *p;
	struct log *log;
	int err;

	snprintf(dir, sizeof(dir), "%s/bw-%u-%u", bench_root, shards, size);
	bench_config(o, dir, o->run_bytes * o->reps, &c);
	err = log_open(&c, &log);
	if (err != 0)
		return err;
	wait_prepared(log, c.segments_prepared);
	err = bench_encrypt(o, log);
	if (err == 0)
		err = log_producer_open(log, &p);
	for (uint32_t i = 0; err == 0 && i < o->reps; i++) {
		struct bw_result one = { 0 };

		err = fio_bw(o, &fio[i]);
		if (err == 0)
			err = bw_rep(o, log, p, shards, size, &one);
		pay[i] = one.payload_bps;
		rec[i] = one.records_ps;
		disk[i] = one.disk_bps;
		rat[i] = one.payload_bps / fio[i];
	}
	if (err == 0) {
		r->payload_bps = median(pay, o->reps);
		r->records_ps = median(rec, o->reps);
		r->disk_bps = median(disk, o->reps);
		*fio_bps = median(fio, o->reps);
		*ratio = median(rat, o->reps);
		log_producer_close(p);
	}
	log_close(log);
	cli_tree_remove(dir);
	return err;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * One 100 B record at a time, paced: append -> durable ack as a producer
 * blocked on its eventfd sees it.
 */
static int
lat_loop(const struct bench_opts *o, struct log_producer *p, uint64_t *lat, uint64_t *lat_log)
{
	static uint8_t data[100];

	for (uint32_t i = 0; i < o->lat_count; i++) {
		struct log_completion c;
		struct log_batch *b;
		uint64_t t;
		uint64_t t_real;

		nanosleep(&(struct timespec){ .tv_nsec = (long)o->lat_gap_us * 1000 }, NULL);
		b = log_batch_get(p);
		if (b == NULL)
			return -EIO;
		bench_fill_one(b, data);
		t = clock_mono_ns();
		t_real = clock_real_ns();
		if (log_batch_submit(p, b, shard_of(0), 0) != 0)
			return -EIO;
		/* Block like a real client: the eventfd says when the ack is there. */
		while (log_completions_poll(p, &c, 1) == 0)
			poll(&(struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN }, 1, 100);
		lat[i] = clock_mono_ns() - t;
		lat_log[i] = c.durable_ns > t_real ? c.durable_ns - t_real : 0;
		if (c.error != 0)
			return c.error;
	}
	return 0;
}

struct lat_result {
	double p50_us;
	double p99_us;
	double log_p50_us;         /* Submit -> durable inside the log. */
	double fio_p50_us;
	double fio_p99_us;
	double p50_ratio;
	double p99_ratio;
};

/* One repetition: fio's QD1 job, then the log's paced appends; fills slot `i`. */
static int
lat_rep(const struct bench_opts *o, struct log_producer *p, uint64_t *lat, uint64_t *lat_log,
	double (*v)[BENCH_REPS_MAX], uint32_t i)
{
	struct fio_result fio;
	int err = fio_lat(o, &fio);

	if (err == 0)
		err = lat_loop(o, p, lat, lat_log);
	if (err != 0)
		return err;
	qsort(lat, o->lat_count, sizeof(*lat), cmp_u64);
	qsort(lat_log, o->lat_count, sizeof(*lat), cmp_u64);
	v[0][i] = (double)lat[o->lat_count / 2] / 1000.0;
	v[1][i] = (double)lat[o->lat_count * 99 / 100] / 1000.0;
	v[2][i] = (double)lat_log[o->lat_count / 2] / 1000.0;
	v[3][i] = fio.p50_us;
	v[4][i] = fio.p99_us;
	v[5][i] = v[0][i] / fio.p50_us;
	v[6][i] = v[1][i] / fio.p99_us;
	return 0;
}

static int
lat_run(const struct bench_opts *o, struct lat_result *r)
{
	double v[7][BENCH_REPS_MAX];
	char dir[4200];
	struct log_config c;
	struct log_producer *p;
	struct log *log;
	uint64_t *lat = calloc(2 * (size_t)o->lat_count, sizeof(*lat));
	int err;

	snprintf(dir, sizeof(dir), "%s/lat", bench_root);
	bench_config(o, dir, 0, &c);
	c.segment_size = 64u << 20;
	c.batch_size = 4096;
	c.commit_window_bytes = 64u << 10;
	err = lat == NULL ? -ENOMEM : log_open(&c, &log);
	if (err != 0) {
		free(lat);
		return err;
	}
	wait_prepared(log, c.segments_prepared);
	err = bench_encrypt(o, log);
	if (err == 0)
		err = log_producer_open(log, &p);
	for (uint32_t i = 0; err == 0 && i < o->reps; i++)
		err = lat_rep(o, p, lat, lat + o->lat_count, v, i);
	if (err == 0) {
		double *out[7] = { &r->p50_us, &r->p99_us, &r->log_p50_us, &r->fio_p50_us,
				   &r->fio_p99_us, &r->p50_ratio, &r->p99_ratio };

		for (uint32_t k = 0; k < 7; k++)
			*out[k] = median(v[k], o->reps);
		log_producer_close(p);
	}
	log_close(log);
	cli_tree_remove(dir);
	free(lat);
	return err;
}

/* The child of the recovery run: append until `bytes` are acked, say so, go on until killed. */
static void
recovery_child(const struct bench_opts *o, const char *dir, int ready_fd)
{
	struct log_config c;
	struct log_producer *p;
	struct log *log;
	struct bench_opts forever = *o;
	struct bw_state st = { 0 };

	bench_config(o, dir, 0, &c);
	if (log_open(&c, &log) != 0 || log_producer_open(log, &p) != 0)
		_exit(2);
	forever.run_bytes = o->recovery_bytes;
	forever.run_ns = UINT64_MAX;
	if (bw_loop(&forever, p, 100, 1000, &st) != 0)
		_exit(3);
	if (write(ready_fd, "r", 1) != 1)
		_exit(4);
	forever.run_bytes = UINT64_MAX;
	bw_loop(&forever, p, 100, 1000, &st);
	_exit(5);
}

/* Seconds log_open takes after a SIGKILL with recovery_bytes retained. */
static int
recovery_run(const struct bench_opts *o, double *seconds, uint64_t *torn)
{
	char dir[4200];
	struct log_config c;
	struct log_stats st;
	struct log *log;
	int fds[2];
	char ready;
	pid_t pid;
	double t0;
	int err;

	snprintf(dir, sizeof(dir), "%s/recovery", bench_root);
	if (pipe(fds) != 0)
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		recovery_child(o, dir, fds[1]);
	close(fds[1]);
	err = read(fds[0], &ready, 1) == 1 ? 0 : -EIO;
	close(fds[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (err != 0 || pid < 0)
		return pid < 0 ? -errno : err;
	bench_config(o, dir, 0, &c);
	t0 = now_s();
	err = log_open(&c, &log);
	*seconds = now_s() - t0;
	if (err == 0) {
		log_stats_read(log, &st);
		*torn = st.torn_tails_cut;
		log_close(log);
	}
	cli_tree_remove(dir);
	return err;
}

static void
bench_usage(FILE *out)
{
	fprintf(out,
		"usage: sluice bench log [--dir DIR] [--run-bytes N] [--run-seconds S]\n"
		"                        [--fio-seconds S] [--fio-size N] [--lat-count N]\n"
		"                        [--lat-gap-us N] [--recovery-bytes N] [--segment-size N]\n"
		"                        [--batch-size N] [--window-bytes N] [--window-us N]\n"
		"                        [--window-adaptive-us N]\n"
		"                        [--reps N] [--only bw|lat|recovery] [--encrypt 1]\n"
		"Runs fio and the log in a temp dir under DIR (default .), same filesystem.\n"
		"Sizes take k/m/g suffixes (powers of 1024).\n");
}

static int
parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);

	if (end == text)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	else if (*end == 'g' || *end == 'G')
		v <<= 30, end++;
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static int
bench_parse(int argc, char **argv, struct bench_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i];
		uint64_t v = 0;

		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || i + 1 == argc)
			return -EINVAL;
		if (strcmp(name, "--dir") == 0 || strcmp(name, "--only") == 0) {
			*(strcmp(name, "--dir") == 0 ? &o->dir : &o->only) = argv[++i];
			continue;
		}
		if (parse_size(argv[++i], &v) != 0 || v == 0)
			return -EINVAL;
		if (strcmp(name, "--run-bytes") == 0)
			o->run_bytes = v;
		else if (strcmp(name, "--run-seconds") == 0)
			o->run_ns = v * 1000000000ull;
		else if (strcmp(name, "--fio-seconds") == 0)
			o->fio_seconds = (uint32_t)v;
		else if (strcmp(name, "--fio-size") == 0)
			o->fio_size = v;
		else if (strcmp(name, "--lat-count") == 0)
			o->lat_count = (uint32_t)v;
		else if (strcmp(name, "--lat-gap-us") == 0)
			o->lat_gap_us = (uint32_t)v;
		else if (strcmp(name, "--recovery-bytes") == 0)
			o->recovery_bytes = v;
		else if (strcmp(name, "--segment-size") == 0)
			o->segment_size = v;
		else if (strcmp(name, "--batch-size") == 0)
			o->batch_size = (uint32_t)v;
		else if (strcmp(name, "--window-bytes") == 0)
			o->window_bytes = v;
		else if (strcmp(name, "--window-us") == 0)
			o->window_us = (uint32_t)v;
		else if (strcmp(name, "--window-adaptive-us") == 0)
			o->window_adaptive_us = (uint32_t)v;
		else if (strcmp(name, "--reps") == 0 && v <= BENCH_REPS_MAX)
			o->reps = (uint32_t)v;
		else if (strcmp(name, "--encrypt") == 0 && v == 1)
			o->encrypt = true;
		else
			return -EINVAL;
	}
	return 0;
}

static bool
bench_part(const struct bench_opts *o, const char *part)
{
	return o->only == NULL || strcmp(o->only, part) == 0;
}

static void
bench_defaults(struct bench_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dir = ".";
	o->run_bytes = 1ull << 30;
	o->run_ns = 1500000000ull;
	o->fio_seconds = 1;
	o->fio_size = 1ull << 30;
	o->lat_count = 1000;
	o->reps = 3;
	o->lat_gap_us = 500;
	o->recovery_bytes = 4ull << 30;
	o->segment_size = 256u << 20;
	o->batch_size = 256u << 10;
	o->window_bytes = 16u << 20;
}

/* The four bandwidth runs; ratios are the lower of the two record sizes. */
static int
bench_bw(const struct bench_opts *o, double *ratio_1, double *ratio_10k, double *rec_ps_100)
{
	static const uint32_t shard_counts[2] = { 1, BENCH_SHARDS_MANY };
	static const uint32_t sizes[2] = { 100, 1024 };

	*ratio_1 = *ratio_10k = 1e9;
	for (uint32_t s = 0; s < 2; s++) {
		for (uint32_t z = 0; z < 2; z++) {
			struct bw_result r;
			double fio_bps;
			double ratio;
			int err = bw_run(o, shard_counts[s], sizes[z], &r, &fio_bps, &ratio);

			if (err != 0) {
				fprintf(stderr, "sluice bench log: bandwidth run: %s\n", strerror(-err));
				return err;
			}
			printf("log: %5u shard(s), %4u B records: %7.1f MB/s acked payload vs fio %7.1f "
			       "MB/s: %.2f; %.2f M records/s; %7.1f MB/s to disk\n", shard_counts[s],
			       sizes[z], r.payload_bps / 1e6, fio_bps / 1e6, ratio, r.records_ps / 1e6,
			       r.disk_bps / 1e6);
			fflush(stdout);
			if (s == 0 && ratio < *ratio_1)
				*ratio_1 = ratio;
			if (s == 1 && ratio < *ratio_10k)
				*ratio_10k = ratio;
			if (s == 0 && z == 0)
				*rec_ps_100 = r.records_ps;
		}
	}
	return 0;
}

int
cmd_bench_log(int argc, char **argv)
{
	struct bench_opts o;
	struct lat_result lat = { 0 };
	double ratio_1 = 0, ratio_10k = 0, rec_ps = 0, recovery_s = 0;
	uint64_t torn = 0;
	int err = 0;

	bench_defaults(&o);
	if (bench_parse(argc, argv, &o) != 0) {
		bench_usage(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc > 1 && strcmp(argv[1], "--help") == 0 ? CMD_EXIT_OK : CMD_EXIT_USAGE;
	}
	snprintf(bench_root, sizeof(bench_root), "%s/sluice-bench-log-XXXXXX", o.dir);
	if (mkdtemp(bench_root) == NULL) {
		fprintf(stderr, "sluice bench log: %s: %s\n", bench_root, strerror(errno));
		return CMD_EXIT_ERROR;
	}
	printf("sluice bench log in %s: %u repetitions, fio right before the log in each, "
	       "medians\n", bench_root, o.reps);
	if (bench_part(&o, "bw"))
		err = bench_bw(&o, &ratio_1, &ratio_10k, &rec_ps);
	if (err == 0 && bench_part(&o, "lat") && (err = lat_run(&o, &lat)) == 0)
		printf("log: append -> durable ack, 100 B, one at a time every %u us: p50 %.1f us, "
		       "p99 %.1f us (inside the log p50 %.1f us) vs fio 4 KiB write+fdatasync p50 "
		       "%.1f us, p99 %.1f us\n", o.lat_gap_us, lat.p50_us, lat.p99_us, lat.log_p50_us,
		       lat.fio_p50_us, lat.fio_p99_us);
	if (err == 0 && bench_part(&o, "recovery") &&
	    (err = recovery_run(&o, &recovery_s, &torn)) == 0)
		printf("log: reopen after SIGKILL with %.1f GiB retained: %.3f s (%" PRIu64
		       " torn tail cut)\n", (double)o.recovery_bytes / (1u << 30), recovery_s, torn);
	cli_tree_remove(bench_root);
	if (err != 0) {
		fprintf(stderr, "sluice bench log: %s\n", strerror(-err));
		return CMD_EXIT_ERROR;
	}
	printf("log-bench: bw_ratio_1=%.2f bw_ratio_10k=%.2f rec_per_s_100B=%.0f p50_ratio=%.2f "
	       "p99_ratio=%.2f recovery_s=%.2f\n", ratio_1, ratio_10k, rec_ps, lat.p50_ratio,
	       lat.p99_ratio, recovery_s);
	return CMD_EXIT_OK;
}
