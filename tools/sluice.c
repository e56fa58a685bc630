/*
 * sluice.c - the operator CLI: dispatches `sluice <command> ...` to cmd_*.c.
 * Exit codes: 0 ok, 1 error, 2 usage, 3 partial failure. Diagnostics go to
 * stderr, data to stdout.
 */
#include <stdio.h>
#include <string.h>

#include "tools/cmd.h"

struct sluice_command {
	const char *name;
	const char *sub;     /* Second word for two-word commands ("bench log"), or NULL. */
	int (*run)(int argc, char **argv);
	const char *help;
};

/* One row per command; each owner adds its own row. */
static const struct sluice_command sluice_commands[] = {
	{ "stream", NULL, cmd_stream, "create | list | describe | delete streams" },
	{ "put", NULL, cmd_put, "put one record (PutRecord)" },
	{ "consume", NULL, cmd_consume, "read a stream's records, following shards" },
	{ "produce", NULL, cmd_produce, "send stdin lines or generated records (http|udp|tcp)" },
	{ "bench", "bench ingest", cmd_bench_ingest, "open-loop ingest load generator" },
	{ "bench", "bench dataplane", cmd_bench_dataplane,
	  "dataplane records/s vs dpdk-testpmd on a replayed pcap" },
	{ "bench", "bench tcp", cmd_bench_tcp,
	  "dataplane TCP vs UDP ingest per appliance CPU-second, latency, connections" },
	{ "bench", "bench api", cmd_bench_api, "Kinesis API throughput and latency vs the log" },
	{ "bench", "bench fanout", cmd_bench_fanout,
	  "SubscribeToShard delivery latency, 1 and 20 subscribers, vs GetRecords polling" },
	{ "bench", "bench log", cmd_bench_log, "durable log bandwidth, latency, recovery vs fio" },
	{ "bench", "bench reshard", cmd_bench_reshard,
	  "writers' pause during SplitShard and MergeShards" },
	{ "bench", "bench firehose", cmd_bench_firehose,
	  "stream-sourced GZIP delivery vs ingest at saturation, freshness at half load" },
	{ "bench", "bench cluster", cmd_bench_cluster,
	  "3 nodes (acks = quorum) vs 1 per CPU-second, p99 vs fdatasync, failover (root)" },
	{ "log", NULL, cmd_log, "verify | dump a log directory (read-only)" },
	{ "backup", NULL, cmd_backup, "online backup of a running appliance's data dir" },
	{ "restore", NULL, cmd_restore, "put a backup into an empty data dir" },
	{ "status", NULL, cmd_status, "readiness and a summary, from the admin listener" },
	{ "top", NULL, cmd_top, "rates per stream, log, dataplane; refreshed in place" },
	{ "cluster", NULL, cmd_cluster, "status | drain: nodes, controller, placements (etcd)" },
	{ NULL, NULL, NULL, NULL },
};

static void
sluice_usage(FILE *out)
{
	fprintf(out, "usage: sluice <command> [args]   (sluice <command> --help for more)\n\n"
		     "commands:\n");
	for (const struct sluice_command *c = sluice_commands; c->name != NULL; c++)
		fprintf(out, "  %-22s %s\n", c->sub == NULL ? c->name : c->sub, c->help);
	fprintf(out, "\nexit codes: 0 ok, 1 error, 2 usage, 3 partial failure\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		sluice_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMD_EXIT_USAGE : CMD_EXIT_OK;
	}
	for (const struct sluice_command *c = sluice_commands; c->name != NULL; c++) {
		if (strcmp(argv[1], c->name) != 0)
			continue;
		if (c->sub == NULL)
			return c->run(argc - 1, argv + 1);
		/* "bench log": the row's sub holds the full two-word name. */
		if (argc >= 3 && strcmp(argv[2], strchr(c->sub, ' ') + 1) == 0)
			return c->run(argc - 2, argv + 2);
	}
	fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
	sluice_usage(stderr);
	return CMD_EXIT_USAGE;
}
