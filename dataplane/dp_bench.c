/*
 * sluice-dp-bench - one dataplane worker lcore replaying a pcap through
 * net_pcap (infinite_rx), for `sluice bench dataplane` (tools/), which writes
 * the pcaps, runs dpdk-testpmd on the same files as the ceiling and prints
 * the comparison. This program measures one configuration and prints one line:
 *
 *   dp-bench: pps=<rx packets/s> records_per_s=<staged/s> durable_per_s=<...>
 *             cpu_share=<worker CPU s per s> drops=<refused> busy=<busy polls ratio>
 *
 * Modes: "staged" counts records into per-shard log batches and hands full
 * batches back unsubmitted (the dataplane's own cost); "durable" submits them
 * to a real log in --log-dir (bounded by the log's and the disk's bandwidth).
 * The pcap's frames are anonymous (producer id 0) with ack mode NONE, and the
 * duplicate check is off: a replayed pcap repeats its frames forever.
 *
 * `sluice-dp-bench --write-pcap FILE --scenario NAME --frames N` writes a pcap
 * (dp_bench_pcap.c) and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hashkey.h"
#include "dataplane/dataplane.h"
#include "dataplane/dp_bench.h"
#include "nvme-log/log.h"

#define BENCH_STREAM_ID 1u

struct bench_opts {
	const char *pcap;
	const char *log_dir;
	const char *prefix;
	const char *write_pcap;
	const char *scenario;
	uint32_t frames;
	uint32_t seconds;
	uint32_t shards;
	uint32_t mbufs;
	bool durable;
};

static int
bench_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "pcap", required_argument, NULL, 'p' },
		{ "log-dir", required_argument, NULL, 'l' },
		{ "seconds", required_argument, NULL, 's' },
		{ "shards", required_argument, NULL, 'n' },
		{ "mbufs", required_argument, NULL, 'm' },
		{ "mode", required_argument, NULL, 'M' },
		{ "file-prefix", required_argument, NULL, 'f' },
		{ "write-pcap", required_argument, NULL, 'w' },
		{ "scenario", required_argument, NULL, 'S' },
		{ "frames", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*o = (struct bench_opts){ .seconds = 3, .shards = 16, .mbufs = 131071, .frames = 100000 };
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'p')
			o->pcap = optarg;
		else if (opt == 'l')
			o->log_dir = optarg;
		else if (opt == 's')
			o->seconds = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'n')
			o->shards = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'm')
			o->mbufs = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'M')
			o->durable = strcmp(optarg, "durable") == 0;
		else if (opt == 'f')
			o->prefix = optarg;
		else if (opt == 'w')
			o->write_pcap = optarg;
		else if (opt == 'S')
			o->scenario = optarg;
		else if (opt == 'F')
			o->frames = (uint32_t)strtoul(optarg, NULL, 10);
		else
			return -EINVAL;
	}
	if (o->write_pcap != NULL)
		return o->scenario != NULL && o->frames > 0 ? 0 : -EINVAL;
	if (o->pcap == NULL || o->log_dir == NULL || o->shards == 0 || o->seconds == 0)
		return -EINVAL;
	return 0;
}

static int
bench_publish(struct dp *dp, uint32_t shards)
{
	struct dp_route_builder *b;
	int rc = dp_route_builder_open(1, shards, &b);

	if (rc != 0)
		return rc;
	rc = dp_route_add_stream(b, "bench", BENCH_STREAM_ID);
	for (uint32_t i = 0; i < shards && rc == 0; i++) {
		hashkey_t end = i + 1 < shards ? hashkey_range_start(i + 1, shards) - 1 : HASHKEY_MAX;

		rc = dp_route_add_range(b, BENCH_STREAM_ID, hashkey_range_start(i, shards), end,
					LOG_SHARD_ID(BENCH_STREAM_ID, i));
	}
	if (rc == 0)
		rc = dp_route_publish(dp, b);
	dp_route_builder_close(b);
	return rc;
}

static void
bench_sleep_ms(uint32_t ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

/*
 * CPU time (ns) the worker lcore's thread ("rte-worker-1") has run, from
 * /proc schedstat: on this shared 2-vCPU machine the worker waits on the run
 * queue as long as it runs, so rates are also reported per CPU-second.
 */
static uint64_t
bench_worker_cpu_ns(void)
{
	char path[320];
	char comm[64];
	unsigned long long run_ns = 0;
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;

	if (dir == NULL)
		return 0;
	while ((e = readdir(dir)) != NULL) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "rte-worker-1", 12) == 0) {
			FILE *s;

			snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
			s = fopen(path, "r");
			if (s != NULL) {
				if (fscanf(s, "%llu", &run_ns) != 1)
					run_ns = 0;
				fclose(s);
			}
		}
		fclose(f);
	}
	closedir(dir);
	return run_ns;
}

static uint64_t
bench_drops(const struct dp_stats *s)
{
	return s->counters[DP_DROP_NO_BATCH] + s->counters[DP_DROP_NO_ROUTE] +
	       s->counters[DP_FRAMES_MALFORMED] + s->counters[DP_DROP_MALFORMED_L2L3] +
	       s->counters[DP_DROP_BAD_CHECKSUM] + s->counters[DP_DROP_NOT_OURS];
}

static int
bench_measure(struct dp *dp, const struct bench_opts *o)
{
	struct dp_stats a;
	struct dp_stats b;
	uint64_t t0;
	uint64_t cpu0;
	double cpu_share;
	double s;

	bench_sleep_ms(1000); /* Warm-up: caches, the log's first segment. */
	dp_stats_read(dp, &a);
	cpu0 = bench_worker_cpu_ns();
	t0 = clock_mono_ns();
	bench_sleep_ms(o->seconds * 1000);
	dp_stats_read(dp, &b);
	s = (double)(clock_mono_ns() - t0) / 1e9;
	cpu_share = (double)(bench_worker_cpu_ns() - cpu0) / 1e9 / s;
	printf("dp-bench: pps=%.0f records_per_s=%.0f durable_per_s=%.0f cpu_share=%.3f "
	       "drops=%llu busy=%.3f md5_per_s=%.0f\n",
	       (double)(b.counters[DP_RX_PACKETS] - a.counters[DP_RX_PACKETS]) / s,
	       (double)(b.counters[DP_RECORDS_STAGED] - a.counters[DP_RECORDS_STAGED]) / s,
	       (double)(b.counters[DP_RECORDS_DURABLE] - a.counters[DP_RECORDS_DURABLE]) / s,
	       cpu_share, (unsigned long long)(bench_drops(&b) - bench_drops(&a)),
	       (double)(b.counters[DP_POLLS_BUSY] - a.counters[DP_POLLS_BUSY]) /
		       (double)(b.counters[DP_POLLS] - a.counters[DP_POLLS] + 1),
	       (double)(b.counters[DP_MD5_COMPUTED] - a.counters[DP_MD5_COMPUTED]) / s);
	fflush(stdout);
	return 0;
}

static int
bench_run(const struct bench_opts *o, struct log *log)
{
	char vdev[512];
	struct dp_config c;
	struct dp *dp;
	int rc;

	snprintf(vdev, sizeof(vdev), "net_pcap0,rx_pcap=%s,infinite_rx=1", o->pcap);
	dp_config_default(&c);
	c.vdev = vdev;
	c.in_memory = true;
	c.file_prefix = o->prefix;
	c.workers = 1;
	c.idle_polls = 0;       /* Flat out, as in production. */
	c.mbufs = o->mbufs;
	c.ring_size = 1024;
	c.log = log;
	c.bench_no_dedup = true;
	c.bench_discard_batches = !o->durable;
	rc = dp_open(&c, &dp);
	if (rc != 0)
		return rc;
	rc = bench_publish(dp, o->shards);
	if (rc == 0)
		rc = dp_start(dp);
	if (rc == 0) {
		bench_measure(dp, o);
		dp_stop(dp);
	}
	dp_close(dp);
	return rc;
}

int
main(int argc, char **argv)
{
	struct bench_opts o;
	struct log_config lc;
	struct log *log;
	int rc;

	if (bench_parse(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: sluice-dp-bench --pcap FILE --log-dir DIR [--mode staged|durable]"
				" [--seconds S] [--shards N] [--mbufs N] [--file-prefix P]\n"
				"       sluice-dp-bench --write-pcap FILE --scenario NAME [--frames N]\n");
		return 2;
	}
	if (o.write_pcap != NULL) {
		rc = dp_bench_pcap_write(o.write_pcap, o.scenario, o.frames);
		if (rc != 0)
			fprintf(stderr, "sluice-dp-bench: %s: %s\n", o.write_pcap, strerror(-rc));
		return rc == 0 ? 0 : 1;
	}
	mkdir(o.log_dir, 0750);
	log_config_default(&lc);
	lc.dir_path = o.log_dir;
	lc.segment_size = 256u << 20;
	lc.batch_size = 32u << 10;
	lc.commit_window_bytes = 4u << 20;
	lc.commit_window_us = 200;
	lc.batches_per_producer = 4096 + 64;
	rc = log_open(&lc, &log);
	if (rc != 0) {
		fprintf(stderr, "sluice-dp-bench: log_open %s: %s\n", o.log_dir, strerror(-rc));
		return 1;
	}
	rc = bench_run(&o, log);
	if (rc != 0)
		fprintf(stderr, "sluice-dp-bench: %s\n", strerror(-rc));
	log_close(log);
	return rc == 0 ? 0 : 1;
}
