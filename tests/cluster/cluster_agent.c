/*
 * cluster_agent.c - one cluster member in its own process: cluster/'s real
 * membership (lease, registration, campaigning, placing as controller) with
 * no data path. The cluster harness (tests/cluster/harness.py) runs one per
 * network namespace when sluiced has no cluster mode, so membership,
 * controller failover, placement and drain are exercised by real processes
 * that it can SIGKILL, SIGSTOP and partition.
 *
 *   cluster_agent --etcd URL --cluster NAME --node-id N --addr A --api-addr A
 *                 --dp-addr A [--ttl S] [--rf R]
 *
 * Prints "ready node N" once registered; SIGTERM or SIGINT stops it cleanly
 * (resign, revoke: the node leaves at once); SIGKILL leaves its lease to expire.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"

static int
usage(void)
{
	fprintf(stderr, "usage: cluster_agent --etcd URL --cluster NAME --node-id N --addr A "
			"--api-addr A --dp-addr A [--ttl S] [--rf R]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "cluster", required_argument, NULL, 'c' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "addr", required_argument, NULL, 'a' },
		{ "api-addr", required_argument, NULL, 'p' },
		{ "dp-addr", required_argument, NULL, 'd' },
		{ "ttl", required_argument, NULL, 't' },
		{ "rf", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct cluster_config config = { 0 };
	struct cluster_member *member;
	sigset_t stop_signals;
	int sig;
	int opt;
	int err;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'e': config.etcd_endpoints = optarg; break;
		case 'c': config.cluster = optarg; break;
		case 'n': config.node_id = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'a': config.addr = optarg; break;
		case 'p': config.api_addr = optarg; break;
		case 'd': config.dp_addr = optarg; break;
		case 't': config.lease_ttl_s = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'r': config.replication_factor = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: return usage();
		}
	}
	/* Blocked before the member's thread starts, so only sigwait below takes them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	err = cluster_member_start(&config, &member);
	if (err != 0) {
		fprintf(stderr, "cluster_agent: cluster_member_start: %s\n", strerror(-err));
		return err == -EINVAL ? usage() : 1;
	}
	printf("ready node %u\n", config.node_id);
	fflush(stdout);
	sigwait(&stop_signals, &sig);
	cluster_member_stop(member);
	printf("stopped node %u\n", config.node_id);
	return 0;
}
