/*
 * cmd_bench_dataplane.c - `sluice bench dataplane`: the dataplane's records/s
 * on one worker lcore against dpdk-testpmd (--forward-mode=rxonly) replaying
 * the same pcap in the same run, the ceiling of the same PMD on this machine.
 *
 * For each scenario it writes a pcap of --frames distinct frames (through
 * sluice-dp-bench --write-pcap, which links the codec and the dataplane),
 * runs testpmd on it, then sluice-dp-bench (net_pcap infinite_rx, one
 * worker, records staged into per-shard batches). The 100 B scenario also
 * runs with batches submitted to a real log ("durable"). Prints a table and
 * a final line "dataplane-bench: ..." with every rate and its ratio.
 *
 * --replay ring: sluice-dp-bench replays the same pcap from pre-built mbufs on a
 * net_ring port instead of net_pcap (no per-packet copy in the worker: what a NIC's
 * DMA spares it; see dataplane/dp_bench.c); testpmd stays on net_pcap.
 *
 * Ratios compare packets per CPU-second of each side's polling thread (from
 * /proc/<pid>/task/<tid>/schedstat): on a shared 2-vCPU machine both wait on
 * the run queue for varying shares of the time; raw wall-clock ratios are
 * printed next to them.
 *
 * tools/ may not include DPDK or dataplane headers: both halves are separate
 * processes found next to this executable (or $SLUICE_DP_BENCH) and in PATH.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define BENCH_OUT_SIZE (256u * 1024u)
#define BENCH_ARGS_MAX 32
#define BENCH_ROUNDS_MAX 9

struct bench_case {
	const char *label;     /* Name in the table and the final line. */
	const char *scenario;  /* sluice-dp-bench --scenario */
	uint32_t shards;
	uint32_t records_per_frame;
	const char *target;
	double testpmd_pps;
	double testpmd_cpu;    /* CPU share of testpmd's forwarding lcore thread. */
	double pps;
	double records_per_s;
	double durable_per_s;
	double cpu;            /* CPU share of the dataplane worker's thread. */
};

static struct bench_case bench_cases[] = {
	{ "100B", "hash100", 16, 1, ">= 25 M/s or >= 50% of testpmd", 0, 0, 0, 0, 0, 0 },
	{ "12x100B", "hash12x100", 16, 12, ">= 40 M records/s", 0, 0, 0, 0, 0, 0 },
	{ "md5", "md5", 16, 1, ">= 8 M/s (MD5 by the appliance)", 0, 0, 0, 0, 0, 0 },
	{ "md5hot", "md5hot", 16, 1, "(1,000 repeating keys: key cache)", 0, 0, 0, 0, 0, 0 },
	{ "1KiB", "hash1k", 16, 1, ">= 5 M/s", 0, 0, 0, 0, 0, 0 },
	{ "10k_shards", "hash100", 10000, 1, ">= 80% of the 16-shard rate", 0, 0, 0, 0, 0, 0 },
	/* Shard-grouped: 16 shards, as dp_bench_pcap.c groups them (DP_BENCH_GROUPED_SHARDS). */
	{ "12x100B_grp", "grouped12x100", 16, 12, ">= 25 M records per CPU-second", 0, 0, 0, 0,
	  0, 0 },
};

/* Runs argv with stdout+stderr into out; returns the exit status or -errno. */
static int
bench_run(char *const argv[], char *out, size_t out_size)
{
	size_t used = 0;
	int status;
	pid_t pid;
	int fd;
	int rc = cli_spawn(argv, &pid, &fd);

	if (rc != 0)
		return rc;
	for (;;) {
		ssize_t n = read(fd, out + used, out_size - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == out_size - 1)
			used = 0; /* Keep the tail: the summary comes last. */
	}
	out[used] = '\0';
	close(fd);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of testpmd's "Rx-pps:" samples, skipping idle ones and the first (ramp-up). */
static double
bench_testpmd_pps(const char *out)
{
	double samples[64];
	uint32_t count = 0;

	for (const char *p = strstr(out, "Rx-pps:"); p != NULL; p = strstr(p + 1, "Rx-pps:")) {
		double v = strtod(p + 7, NULL);

		if (v > 0 && count < 64)
			samples[count++] = v;
	}
	if (count == 0)
		return 0;
	if (count > 1) {
		/* The first sample covers the ramp-up: drop it. */
		memmove(samples, samples + 1, (count - 1) * sizeof(double));
		count--;
	}
	qsort(samples, count, sizeof(double), bench_cmp_double);
	return samples[count / 2];
}

/* Run time (ns) of `pid`'s thread named rte-worker-1 (EAL's first worker lcore). */
static uint64_t
bench_worker_cpu_ns(pid_t pid)
{
	char path[320];
	char comm[64];
	unsigned long long run_ns = 0;
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return 0;
	while ((e = readdir(dir)) != NULL) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "rte-worker-1", 12) == 0) {
			FILE *st;

			snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
			st = fopen(path, "r");
			if (st != NULL) {
				if (fscanf(st, "%llu", &run_ns) != 1)
					run_ns = 0;
				fclose(st);
			}
		}
		fclose(f);
	}
	closedir(dir);
	return run_ns;
}

static uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * testpmd runs until SIGINT; its forwarding thread's CPU time is sampled over
 * the measured seconds (after about 2.5 s of EAL start-up and pcap loading).
 */
static int
bench_testpmd(const char *pcap, uint32_t seconds, char *out, double *pps_out, double *cpu_out)
{
	char prefix[64];
	char vdev[PATH_MAX + 64];
	char *argv[BENCH_ARGS_MAX] = {
		"dpdk-testpmd", "-l", "0,1", "--no-pci", "--in-memory", "--file-prefix", prefix,
		"--vdev", vdev, "--", "--forward-mode=rxonly", "--auto-start", "--stats-period", "1",
		"--total-num-mbufs=131072", NULL,
	};
	uint64_t cpu0, t0;
	size_t used = 0;
	pid_t pid;
	int fd;
	int rc;

	snprintf(prefix, sizeof(prefix), "sluice-tp-%d", (int)getpid());
	snprintf(vdev, sizeof(vdev), "net_pcap0,rx_pcap=%s,infinite_rx=1", pcap);
	rc = cli_spawn(argv, &pid, &fd);
	if (rc != 0)
		return rc;
	usleep(2500000);
	cpu0 = bench_worker_cpu_ns(pid);
	t0 = bench_now_ns();
	usleep(seconds * 1000000u);
	*cpu_out = (double)(bench_worker_cpu_ns(pid) - cpu0) / (double)(bench_now_ns() - t0);
	kill(pid, SIGINT);
	for (;;) {
		ssize_t n = read(fd, out + used, BENCH_OUT_SIZE - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == BENCH_OUT_SIZE - 1)
			used = 0;
	}
	out[used] = '\0';
	close(fd);
	waitpid(pid, NULL, 0);
	*pps_out = bench_testpmd_pps(out);
	/* testpmd leaves its (empty) runtime directory behind even with --in-memory. */
	snprintf(vdev, sizeof(vdev), "/var/run/dpdk/%s", prefix);
	rmdir(vdev);
	if (*pps_out <= 0 || *cpu_out <= 0) {
		fprintf(stderr, "sluice bench dataplane: testpmd gave no rate:\n%s\n", out);
		return -EIO;
	}
	return 0;
}

static const char *bench_replay = "pcap";  /* --replay: sluice-dp-bench's. */

static int
bench_dp(const char *helper, const char *pcap, const char *dir, const struct bench_case *c,
	 const char *mode, uint32_t seconds, char *out, struct bench_case *result)
{
	char secs[16];
	char shards[16];
	char log_dir[PATH_MAX];
	char prefix[64];
	char *argv[BENCH_ARGS_MAX] = {
		(char *)helper, "--pcap", (char *)pcap, "--log-dir", log_dir, "--seconds", secs,
		"--shards", shards, "--mode", (char *)mode, "--file-prefix", prefix, "--replay",
		(char *)bench_replay, NULL,
	};
	const char *line;
	int rc;

	snprintf(secs, sizeof(secs), "%u", seconds);
	snprintf(shards, sizeof(shards), "%u", c->shards);
	snprintf(log_dir, sizeof(log_dir), "%s/log-%s-%s", dir, c->label, mode);
	snprintf(prefix, sizeof(prefix), "sluice-dpb-%d", (int)getpid());
	rc = bench_run(argv, out, BENCH_OUT_SIZE);
	line = strstr(out, "dp-bench:");
	if (rc != 0 || line == NULL ||
	    sscanf(line, "dp-bench: pps=%lf records_per_s=%lf durable_per_s=%lf cpu_share=%lf",
		   &result->pps, &result->records_per_s, &result->durable_per_s,
		   &result->cpu) != 4) {
		fprintf(stderr, "sluice bench dataplane: %s failed (exit %d):\n%s\n", helper, rc, out);
		return -EIO;
	}
	return 0;
}

static int
bench_write_pcap(const char *helper, const char *pcap, const char *scenario, uint32_t frames,
		 char *out)
{
	char count[16];
	char *argv[BENCH_ARGS_MAX] = {
		(char *)helper, "--write-pcap", (char *)pcap, "--scenario", (char *)scenario,
		"--frames", count, NULL,
	};

	snprintf(count, sizeof(count), "%u", frames);
	if (bench_run(argv, out, BENCH_OUT_SIZE) != 0) {
		fprintf(stderr, "sluice bench dataplane: writing %s: %s\n", pcap, out);
		return -EIO;
	}
	return 0;
}

/* Ratio of packet rates per CPU-second of each side's polling thread. */
static double
bench_ratio(const struct bench_case *c)
{
	if (c->testpmd_pps <= 0 || c->testpmd_cpu <= 0 || c->cpu <= 0)
		return 0;
	return (c->pps / c->cpu) / (c->testpmd_pps / c->testpmd_cpu);
}

static void
bench_print(const struct bench_case *c, size_t count)
{
	printf("%-11s %6s %12s %5s %12s %12s %5s %7s %7s  %s\n", "scenario", "shards",
	       "testpmd_pps", "cpu", "dp_pps", "records/s", "cpu", "ratio", "raw", "goal");
	for (size_t i = 0; i < count; i++)
		printf("%-11s %6u %12.0f %5.2f %12.0f %12.0f %5.2f %7.3f %7.3f  %s\n", c[i].label,
		       c[i].shards, c[i].testpmd_pps, c[i].testpmd_cpu, c[i].pps, c[i].records_per_s,
		       c[i].cpu, bench_ratio(&c[i]),
		       c[i].testpmd_pps > 0 ? c[i].pps / c[i].testpmd_pps : 0.0, c[i].target);
	printf("ratio: packets per CPU-second of the polling thread, dataplane / testpmd "
	       "(raw: per wall second); dataplane replay: %s\n",
	       strcmp(bench_replay, "ring") == 0 ? "ring (pre-built mbufs, no copy)" : "net_pcap");
}

static void
bench_final_line(const struct bench_case *c, size_t count, double durable)
{
	double per_cpu_16 = c[0].cpu > 0 ? c[0].records_per_s / c[0].cpu : 0;
	double per_cpu_10k = c[5].cpu > 0 ? c[5].records_per_s / c[5].cpu : 0;
	double per_cpu_12 = c[1].cpu > 0 ? c[1].records_per_s / c[1].cpu : 0;
	double per_cpu_grouped = c[6].cpu > 0 ? c[6].records_per_s / c[6].cpu : 0;

	printf("dataplane-bench:");
	for (size_t i = 0; i < count; i++)
		printf(" rec_per_s_%s=%.0f ratio_%s=%.3f", c[i].label, c[i].records_per_s,
		       c[i].label, bench_ratio(&c[i]));
	printf(" testpmd_pps_100B=%.0f ratio_10k_vs_16=%.3f durable_rec_per_s_100B=%.0f"
	       " rec_per_cpu_s_12x100B=%.0f rec_per_cpu_s_12x100B_grouped=%.0f\n",
	       c[0].testpmd_pps, per_cpu_16 > 0 ? per_cpu_10k / per_cpu_16 : 0, durable,
	       per_cpu_12, per_cpu_grouped);
}

/* The scenario labelled `label` (--only), or NULL. */
static struct bench_case *
bench_case_find(const char *label)
{
	for (size_t i = 0; i < ARRAY_SIZE(bench_cases); i++)
		if (strcmp(bench_cases[i].label, label) == 0)
			return &bench_cases[i];
	return NULL;
}

static void
bench_usage(FILE *f)
{
	fprintf(f, "usage: sluice bench dataplane [--seconds S] [--frames N] [--rounds R] "
		   "[--dir DIR] [--only SCENARIO] [--replay pcap|ring]\n"
		   "  Replays N (>= 100000) distinct frames per scenario through net_pcap on one\n"
		   "  worker lcore and through dpdk-testpmd rxonly; needs root and hugepages.\n"
		   "  --only runs one scenario (100B, 12x100B, md5, md5hot, 1KiB, 10k_shards,\n"
		   "  12x100B_grp). --replay ring: the worker's frames come from pre-built mbufs\n"
		   "  (the pcap's, no per-packet copy) instead of net_pcap; testpmd stays on it.\n");
}

static double
bench_median(double *v, uint32_t count)
{
	qsort(v, count, sizeof(double), bench_cmp_double);
	return v[count / 2];
}

/*
 * testpmd and the dataplane alternate `rounds` times on the same pcap; each
 * figure is the median of its rounds (this machine is shared and noisy).
 */
static int
bench_one(const char *helper, const char *dir, struct bench_case *c, uint32_t frames,
	  uint32_t seconds, uint32_t rounds, char *out)
{
	double testpmd[BENCH_ROUNDS_MAX];
	double testpmd_cpu[BENCH_ROUNDS_MAX];
	double pps[BENCH_ROUNDS_MAX];
	double records[BENCH_ROUNDS_MAX];
	double cpu[BENCH_ROUNDS_MAX];
	char pcap[PATH_MAX];

	snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, c->scenario);
	if (access(pcap, R_OK) != 0 && bench_write_pcap(helper, pcap, c->scenario, frames, out) != 0)
		return -EIO;
	for (uint32_t r = 0; r < rounds; r++) {
		if (bench_testpmd(pcap, seconds, out, &testpmd[r], &testpmd_cpu[r]) != 0)
			return -EIO;
		if (bench_dp(helper, pcap, dir, c, "staged", seconds, out, c) != 0)
			return -EIO;
		pps[r] = c->pps;
		records[r] = c->records_per_s;
		cpu[r] = c->cpu;
	}
	c->testpmd_pps = bench_median(testpmd, rounds);
	c->testpmd_cpu = bench_median(testpmd_cpu, rounds);
	c->pps = bench_median(pps, rounds);
	c->records_per_s = bench_median(records, rounds);
	c->cpu = bench_median(cpu, rounds);
	return 0;
}

int
cmd_bench_dataplane(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "frames", required_argument, NULL, 'f' },
		{ "dir", required_argument, NULL, 'd' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "replay", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char helper[PATH_MAX];
	char dir[PATH_MAX] = "";
	char pcap[PATH_MAX + 32];
	bool own_dir = false;
	uint32_t seconds = 2;
	uint32_t frames = 100000;
	uint32_t rounds = 3;
	struct bench_case durable = bench_cases[0];
	struct bench_case *only = NULL;
	char *out;
	int opt;
	int rc = 0;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 's')
			seconds = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'f')
			frames = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'd')
			snprintf(dir, sizeof(dir), "%s", optarg);
		else if (opt == 'r')
			rounds = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'o' && (only = bench_case_find(optarg)) != NULL)
			continue;
		else if (opt == 'R' && (strcmp(optarg, "pcap") == 0 || strcmp(optarg, "ring") == 0))
			bench_replay = optarg;
		else {
			bench_usage(opt == 'h' ? stdout : stderr);
			return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
		}
	}
	if (seconds == 0 || frames == 0 || rounds == 0 || rounds > BENCH_ROUNDS_MAX) {
		bench_usage(stderr);
		return CMD_EXIT_USAGE;
	}
	if (cli_find_helper("sluice-dp-bench", "SLUICE_DP_BENCH", helper, sizeof(helper)) != 0) {
		fprintf(stderr, "sluice bench dataplane: sluice-dp-bench not found "
				"(set SLUICE_DP_BENCH)\n");
		return CMD_EXIT_ERROR;
	}
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/sluice-dpbench-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return CMD_EXIT_ERROR;
		own_dir = true;
	} else {
		mkdir(dir, 0750);
	}
	out = malloc(BENCH_OUT_SIZE);
	if (out == NULL)
		return CMD_EXIT_ERROR;
	for (size_t i = 0; i < ARRAY_SIZE(bench_cases) && rc == 0; i++) {
		if (only != NULL && only != &bench_cases[i])
			continue;
		fprintf(stderr, "sluice bench dataplane: %s ...\n", bench_cases[i].label);
		rc = bench_one(helper, dir, &bench_cases[i], frames, seconds, rounds, out);
	}
	snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, durable.scenario);
	if (rc == 0 && only != NULL)
		bench_print(only, 1);  /* One scenario: its row, no durable run, no final line. */
	else if (rc == 0)
		rc = bench_dp(helper, pcap, dir, &durable, "durable", seconds, out, &durable);
	if (rc == 0 && only == NULL) {
		bench_print(bench_cases, sizeof(bench_cases) / sizeof(bench_cases[0]));
		printf("%-11s %6u %12s %5s %12.0f %12.0f %5.2f %7s %7s  %s\n", "100B-durab",
		       durable.shards, "-", "-", durable.pps, durable.durable_per_s, durable.cpu, "-",
		       "-", "durable: as far as the log allows");
		bench_final_line(bench_cases, sizeof(bench_cases) / sizeof(bench_cases[0]),
				 durable.durable_per_s);
	}
	free(out);
	/* A directory we made holds ~0.5 GB of pcaps and logs: remove it (--dir keeps them). */
	if (own_dir)
		cli_tree_remove(dir);
	return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}
