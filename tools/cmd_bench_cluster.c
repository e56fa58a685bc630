/*
 * cmd_bench_cluster.c - `sluice bench cluster`: issue 15's cluster goals in one
 * run (a single sluiced next to three in cluster mode, acks = quorum; records
 * per CPU-second, PutRecords p99 against a follower's fdatasync p99, aggregate
 * growth per CPU-second, failover after a leader's SIGKILL against the lease
 * TTL, everything acknowledged read back). The run builds network namespaces,
 * etcd and four sluiceds and calls this command (`bench api --put-only`) many
 * times: its driver, sluice-bench-cluster (tools/bench_cluster.py, which says
 * what each step does), replaces this process as sluice-bench-compare does for
 * `bench ingest --compare`.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define BENCH_CLUSTER_TTL_MAX 60ull        /* Seconds; the failover wait is bounded by it. */
#define BENCH_CLUSTER_RATE_MAX 10000000ull /* Offered records/s, per node in the aggregate. */

static const char bench_cluster_synopsis[] =
	"sluice bench cluster [--short] [--duration D] [--rate N] [--ttl S]   (root)";

int
cmd_bench_cluster(int argc, char **argv)
{
	uint64_t duration_ns = 0, rate = 0, ttl_s = 0;
	bool short_run = false;
	const struct cli_opt table[] = {
		{ "short", CLI_OPT_BOOL, &short_run, 0, 0, NULL,
		  "1 s of low load per step: behaviour only (the line, lost = 0)" },
		{ "duration", CLI_OPT_DURATION, &duration_ns, 1000000000ull, 0, "TIME",
		  "each load step (default 10s)" },
		{ "rate", CLI_OPT_COUNT, &rate, 1000, BENCH_CLUSTER_RATE_MAX, "N",
		  "offered records/s (default 60000; per node in the aggregate step)" },
		{ "ttl", CLI_OPT_COUNT, &ttl_s, 1, BENCH_CLUSTER_TTL_MAX, "S",
		  "the nodes' etcd lease TTL in seconds (default 2)" },
	};
	char helper[PATH_MAX], self[PATH_MAX], duration[24], rate_s[24], ttl[24];
	char *args_out[12] = { helper, "--sluice", self };
	int n_out = 3;
	struct cli_args args;
	bool done = false;
	int rc = cli_parse_or_usage(argc, argv, bench_cluster_synopsis, table, ARRAY_SIZE(table),
				    &args, &done);
	ssize_t n;

	if (done)
		return rc;
	if (args.positional_count > 0) {
		fprintf(stderr, "sluice bench cluster: unexpected argument\n");
		cli_args_usage(stderr, bench_cluster_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "sluice bench cluster: run as root (it makes network namespaces, "
			"etcd and sluiceds of its own)\n");
		return CMD_EXIT_USAGE;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || cli_find_helper("sluice-bench-cluster", "SLUICE_BENCH_CLUSTER", helper,
				      sizeof(helper)) != 0) {
		fprintf(stderr, "sluice bench cluster: sluice-bench-cluster not found "
			"(set SLUICE_BENCH_CLUSTER)\n");
		return CMD_EXIT_ERROR;
	}
	self[n] = '\0';
	if (short_run)
		args_out[n_out++] = "--short";
	if (duration_ns > 0) {
		snprintf(duration, sizeof(duration), "%llu",
			 (unsigned long long)(duration_ns / 1000000));
		args_out[n_out++] = "--duration-ms";
		args_out[n_out++] = duration;
	}
	if (rate > 0) {
		snprintf(rate_s, sizeof(rate_s), "%llu", (unsigned long long)rate);
		args_out[n_out++] = "--rate";
		args_out[n_out++] = rate_s;
	}
	if (ttl_s > 0) {
		snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_s);
		args_out[n_out++] = "--ttl";
		args_out[n_out++] = ttl;
	}
	fflush(NULL);
	execv(helper, args_out);
	fprintf(stderr, "sluice bench cluster: %s: %s\n", helper, strerror(errno));
	return CMD_EXIT_ERROR;
}
