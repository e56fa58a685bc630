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
 * Replay (--replay): "pcap" (net_pcap, infinite_rx: the PMD copies each packet from
 * the file's memory into an mbuf on the worker's thread, as testpmd pays too) or
 * "ring" (pre-built mbufs: the pcap's frames are loaded once into the mbufs of a
 * pool of their own, each mbuf keeping its frame and length for good; on a net_ring
 * port, an RX callback fills each burst with mbufs from that pool, setting their
 * length, as a NIC's PMD refills its descriptors with fresh mbufs, and the worker
 * frees them back: no copy, as with a NIC's DMA). The frames are the pcap's either
 * way (each addressed to the port's MAC instead of net_pcap's).
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

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "common/clock.h"
#include "common/hashkey.h"
#include "dataplane/dataplane.h"
#include "dataplane/dp_bench.h"
#include "nvme-log/log.h"

#define BENCH_STREAM_ID 1u
#define BENCH_RING_VDEV "net_ring0"
#define BENCH_FEED_MBUFS 32767                /* The ring replay's pool: distinct frames. */
#define BENCH_RING_MBUFS 8191                 /* The worker's own pool: TX only. */
#define BENCH_PCAP_HEADER 24
#define BENCH_PCAP_RECORD 16
#define BENCH_FRAME_MAX 2048

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
	bool ring;                  /* --replay ring */
};

/* The ring replay's pre-built mbufs (see the top). */
struct bench_feed {
	struct rte_mempool *pool;
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
		{ "replay", required_argument, NULL, 'R' },
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
		else if (opt == 'R' && (strcmp(optarg, "ring") == 0 || strcmp(optarg, "pcap") == 0))
			o->ring = strcmp(optarg, "ring") == 0;
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

/*
 * The next packet of the pcap into m (from the first again at its end), addressed to
 * `mac` (the pcap's frames are for net_pcap's MAC); 0 or -EIO.
 */
static int
bench_pcap_next(FILE *in, struct rte_mbuf *m, const struct rte_ether_addr *mac)
{
	uint32_t rec[BENCH_PCAP_RECORD / 4];

	if (fread(rec, sizeof(rec), 1, in) != 1) {
		if (fseek(in, BENCH_PCAP_HEADER, SEEK_SET) != 0 || fread(rec, sizeof(rec), 1, in) != 1)
			return -EIO;
	}
	if (rec[2] == 0 || rec[2] > BENCH_FRAME_MAX || rec[2] > rte_pktmbuf_tailroom(m) ||
	    rec[2] < RTE_ETHER_ADDR_LEN || fread(rte_pktmbuf_mtod(m, void *), rec[2], 1, in) != 1)
		return -EIO;
	memcpy(rte_pktmbuf_mtod(m, void *), mac, RTE_ETHER_ADDR_LEN);
	*(uint32_t *)rte_mbuf_to_priv(m) = rec[2];
	return 0;
}

/*
 * Every mbuf of the feed pool gets a frame of the pcap (in file order, cycling), its
 * length in the mbuf's private area; alloc leaves data and private area as they are.
 */
static int
bench_feed_load(struct bench_feed *f, const char *pcap)
{
	struct rte_mbuf **all = calloc(BENCH_FEED_MBUFS, sizeof(*all));
	FILE *in = fopen(pcap, "rb");
	struct rte_ether_addr mac;
	uint32_t count = 0;
	int rc = all == NULL || in == NULL ? -ENOMEM : 0;

	if (rc == 0 && rte_eth_macaddr_get(0, &mac) != 0)
		rc = -ENODEV;
	if (rc == 0 && fseek(in, BENCH_PCAP_HEADER, SEEK_SET) != 0)
		rc = -EIO;
	while (rc == 0 && count < BENCH_FEED_MBUFS) {
		all[count] = rte_pktmbuf_alloc(f->pool);
		if (all[count] == NULL)
			break; /* Some wait in per-lcore caches: those are never fed. */
		rc = bench_pcap_next(in, all[count++], &mac);
	}
	if (count > 0)
		rte_pktmbuf_free_bulk(all, count);
	if (in != NULL)
		fclose(in);
	free(all);
	return rc;
}

/* RX callback on the worker's queue: the rest of the burst from the pre-built mbufs. */
static uint16_t
bench_feed_rx(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t count,
	      uint16_t max, void *arg)
{
	struct rte_mempool *pool = arg;

	(void)port;
	(void)queue;
	if (count == max || rte_pktmbuf_alloc_bulk(pool, &pkts[count], max - count) != 0)
		return count; /* None left: the worker holds them all. */
	for (uint16_t i = count; i < max; i++) {
		pkts[i]->data_len = (uint16_t)*(uint32_t *)rte_mbuf_to_priv(pkts[i]);
		pkts[i]->pkt_len = pkts[i]->data_len;
	}
	return max;
}

static int
bench_feed_start(struct bench_feed *f, const char *pcap)
{
	int rc;

	f->pool = rte_pktmbuf_pool_create("bench_feed", BENCH_FEED_MBUFS, 256, sizeof(uint64_t),
					  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (f->pool == NULL)
		return -ENOMEM;
	rc = bench_feed_load(f, pcap);
	if (rc != 0)
		return rc;
	return rte_eth_add_rx_callback(0, 0, bench_feed_rx, f->pool) != NULL ? 0 : -ENOTSUP;
}

static int
bench_run(const struct bench_opts *o, struct log *log)
{
	char vdev[512];
	struct bench_feed feed;
	struct dp_config c;
	struct dp *dp;
	int rc;

	if (o->ring)
		snprintf(vdev, sizeof(vdev), "%s", BENCH_RING_VDEV);
	else
		snprintf(vdev, sizeof(vdev), "net_pcap0,rx_pcap=%s,infinite_rx=1", o->pcap);
	dp_config_default(&c);
	c.vdev = vdev;
	c.in_memory = true;
	c.file_prefix = o->prefix;
	c.workers = 1;
	c.idle_polls = 0;       /* Flat out, as in production. */
	c.mbufs = o->ring ? BENCH_RING_MBUFS : o->mbufs;
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
	if (rc == 0 && o->ring) {
		rc = bench_feed_start(&feed, o->pcap);
		if (rc != 0)
			dp_stop(dp);
	}
	if (rc == 0) {
		bench_measure(dp, o);
		dp_stop(dp); /* The callback and its pool go with the port and the EAL. */
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
				" [--seconds S] [--shards N] [--mbufs N] [--file-prefix P]"
				" [--replay pcap|ring]\n"
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
