/*
 * cluster_node_refuse: control/cluster_node.c when the node is placed as a shard's
 * leader and its log refuses to lead (log_epoch_begin's -ENODATA: the kept range of
 * a cut inside a batch was given up, docs/CLUSTER.md "The in-sync set"). A real log
 * (io_uring) in a temporary directory, a real etcd (tests/cluster/etcd_fixture.c)
 * and the node's own metadata cache, for two nodes in one process; node 2 holds the
 * records node 1 gave up.
 *
 * The test holds the controller election itself, so only it places: shard 0 names
 * node 1 leader with isr [1, 2], shard 1 with isr [1] alone. Node 1 must step out of
 * shard 0's isr and leadership (leader 0) and stay in shard 1's (the only in-sync
 * copy: unled, not lossy), counting both refusals and one step-down. Then the test
 * gives the election up; the member that wins places node 2 as shard 0's leader in a
 * newer epoch and leaves shard 1 as it is; node 2 ships node 1 the records and puts it
 * back in shard 0's isr. Shard 1's refusal is marked in its placement (refused_epoch),
 * so an operator's unclean election (cluster_placement_elect, docs/CLUSTER.md "Unclean
 * election") may replace it: it elects node 1 itself in a newer epoch, which node 1
 * then leads from its log's end, the kept range given up (replica_lead_unclean),
 * counted once. Every wait is on a condition.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/diag.h"
#include "control/cluster_node.h"
#include "control/config.h"
#include "control/metadata.h"
#include "control/metrics.h"
#include "nvme-log/log.h"
#include "tests/cluster/etcd_fixture.h"
#include "tests/replica/replica_test_util.h"

#define CLUSTER "crefuse"
#define STREAM "refuse"
#define DEADLINE_NS (60ull * 1000000000ull)
#define DATA 32u
#define CONTENT 0x41u
#define RECORDS 10u
#define KEPT 5u          /* The cut keeps [0, KEPT): the node held them, gave them up. */
#define EPOCH 2          /* The epoch the test places node 1 in. */

/* One sluiced's cluster parts: its log, its metadata cache, its cluster_node. */
struct node {
	char dir[64];
	struct log *log;
	struct log_producer *producer;
	struct metadata *md;
	struct metadata_cluster *mc;
	struct cluster_node *cn;
};

static struct etcd_client *client;
static struct node nodes[3];   /* By node id: 1 and 2. */

static void
wait_ms(uint32_t ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000l }, NULL);
}

static void
node_open(struct node *n)
{
	struct log_config c;
	char path[96];

	snprintf(n->dir, sizeof(n->dir), "/tmp/cfence-node-XXXXXX");
	cr_assert_not_null(mkdtemp(n->dir));
	snprintf(path, sizeof(path), "%s/log", n->dir);
	log_config_default(&c);
	c.dir_path = path;
	c.writer_thread = true;
	c.segment_size = 16u << 20;
	c.shards_max = 16;
	c.watermark_gated = true;
	cr_assert_eq(log_open(&c, &n->log), 0);
	cr_assert_eq(log_producer_open(n->log, &n->producer), 0);
	cr_assert_eq(metadata_open(n->dir, &n->md), 0);
	cr_assert_eq(metadata_cluster_start(n->md, etcd_endpoint, CLUSTER, &n->mc), 0);
}

static void
node_close(struct node *n)
{
	char cmd[128];

	cluster_node_stop(n->cn);
	metadata_cluster_stop(n->mc);
	metadata_close(n->md);
	log_producer_close(n->producer);
	log_close(n->log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
	cr_assert_eq(system(cmd), 0);
}

static void
setup(void)
{
	diag_level_set(DIAG_WARN);
	etcd_fixture_start();
	cr_assert_eq(etcd_open(etcd_endpoint, 5000, &client), 0);
	node_open(&nodes[1]);
	node_open(&nodes[2]);
}

static void
teardown(void)
{
	/* Node 2 first: its leader side dials node 1 (a redial per 50 ms, each logged). */
	node_close(&nodes[2]);
	node_close(&nodes[1]);
	etcd_close(client);
	etcd_fixture_stop();
}

TestSuite(cluster_node_refuse, .init = setup, .fini = teardown, .timeout = 180);

/* Appends [0, RECORDS) to `shard` of n's log in epoch 1, one batch. */
static void
holds_records(struct node *n, uint64_t shard)
{
	struct log_batch *b = log_batch_get(n->producer);
	struct log_completion done;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	cr_assert_eq(log_epoch_record(n->log, shard, 1, 0), 0);
	cr_assert_not_null(b);
	raw_batch_fill(b, CONTENT, 0, RECORDS, DATA);
	cr_assert_eq(log_batch_submit_at(n->producer, b, shard, 0, LOG_EPOCH_NONE, 0), 0);
	while (log_completions_poll(n->producer, &done, 1) == 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "the writer completes the batch");
		wait_ms(1);
	}
	cr_assert_eq(done.error, 0);
}

/*
 * Node 1's log of `shard` held [0, RECORDS); a handshake cut it at 0 keeping [0, KEPT),
 * and their re-append was given up: its end is 0 and it refuses to begin an epoch
 * below KEPT.
 */
static void
lacks_kept_records(uint64_t shard)
{
	struct log_epoch_info ei;
	uint64_t end = 1;

	holds_records(&nodes[1], shard);
	cr_assert_eq(log_shard_truncate_keep(nodes[1].log, shard, KEPT, 1, &end), 0);
	cr_assert_eq(end, 0, "cut at the batch's start");
	log_shard_keep_abandon(nodes[1].log, shard);
	cr_assert_eq(log_epoch_info(nodes[1].log, shard, &ei), 0);
	cr_assert_eq(ei.kept_end, KEPT);
}

static uint32_t
stream_create(void)
{
	struct metadata_shard sh[2];
	struct metadata_stream ms = { .name = STREAM, .incarnation = 0x7000000000000009ull,
				      .retention_hours = 24, .created_ms = 1700000000123ull,
				      .shard_count = 2 };

	for (uint32_t i = 0; i < 2; i++)
		sh[i] = (struct metadata_shard){
			.shard_index = i, .start = hashkey_range_start(i, 2),
			.end = i == 0 ? hashkey_range_start(1, 2) - 1 : HASHKEY_MAX,
			.parent = -1, .adjacent_parent = -1, .created_s = 1700000000,
		};
	cr_assert_eq(metadata_cluster_stream_create(nodes[1].mc, &ms, sh, NULL, 0), 0);
	return ms.stream_id;
}

static void
node_start(uint32_t id)
{
	static struct sluice_config configs[3];
	struct sluice_config *config = &configs[id];

	config_defaults(config);
	config->cluster_enabled = true;
	snprintf(config->cluster_name, sizeof(config->cluster_name), "%s", CLUSTER);
	config->cluster_node_id = id;
	snprintf(config->cluster_etcd_endpoints, sizeof(config->cluster_etcd_endpoints), "%s",
		 etcd_endpoint);
	snprintf(config->cluster_replica_listen, sizeof(config->cluster_replica_listen),
		 "127.0.0.1:%u", etcd_fixture_free_port());
	config->cluster_lease_ttl_s = 2;
	config->cluster_replication_factor = 2;
	cr_assert_eq(cluster_node_start(config, nodes[id].log, nodes[id].md, &nodes[id].cn), 0);
}

/* One counter of the node's /metrics text. */
static uint64_t
metric(uint32_t id, const char *name)
{
	static char text[1u << 16];
	struct metrics_out out = { .data = text, .capacity = sizeof(text) };
	char line[128];
	const char *at;

	cluster_node_render_metrics(nodes[id].cn, &out);
	cr_assert(!out.overflow);
	text[out.size < sizeof(text) ? out.size : sizeof(text) - 1] = '\0';
	snprintf(line, sizeof(line), "\n%s ", name);
	at = strstr(text, line);
	cr_assert_not_null(at, "%s missing", name);
	return strtoull(at + strlen(line), NULL, 10);
}

/* Shard `shard`'s stored placement (and its mod_revision). */
static struct cluster_shard
placement_of(uint32_t shard)
{
	struct cluster_shard *s;
	struct cluster_shard found = { 0 };
	uint32_t count;

	cr_assert_eq(cluster_placement_read(client, CLUSTER, &s, &count), 0);
	for (uint32_t i = 0; i < count; i++)
		if (s[i].shard == shard && strcmp(s[i].stream, STREAM) == 0)
			found = s[i];
	free(s);
	cr_assert_neq(found.mod_revision, 0, "shard %u has no placement", shard);
	return found;
}

static bool
has(const uint32_t *ids, uint32_t count, uint32_t id)
{
	return placement_has(ids, count, id);
}

Test(cluster_node_refuse, a_placed_leader_without_its_kept_records_steps_down_unless_alone)
{
	char election[CLUSTER_KEY_SIZE];
	struct etcd_leader fence;
	struct cluster_shard place[2];
	struct cluster_shard s0;
	struct cluster_shard s1;
	struct log_shard_info info;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	int64_t lease;
	int64_t ttl;
	uint32_t id;

	/* The test is the controller: the members never place while it holds the election. */
	snprintf(election, sizeof(election), "/sluice/%s/controller", CLUSTER);
	cr_assert_eq(etcd_lease_grant(client, 30, &lease, &ttl), 0);
	cr_assert_eq(etcd_campaign(client, election, lease, "test", 4, 5000, &fence), 0);

	id = stream_create();
	lacks_kept_records(LOG_SHARD_ID(id, 0));
	lacks_kept_records(LOG_SHARD_ID(id, 1));
	holds_records(&nodes[2], LOG_SHARD_ID(id, 0));
	node_start(2);
	node_start(1);
	for (;;) {
		struct etcd_range r;
		uint32_t n;

		cr_assert_eq(etcd_get(client, "/sluice/" CLUSTER "/nodes/", true, 0, &r), 0);
		n = r.count;
		etcd_range_free(&r);
		if (n == 2)
			break;
		cr_assert_lt(clock_mono_ns(), deadline, "both nodes register");
		wait_ms(20);
	}

	for (uint32_t i = 0; i < 2; i++) {
		place[i] = (struct cluster_shard){ .shard = i, .stream_id = id };
		snprintf(place[i].stream, sizeof(place[i].stream), "%s", STREAM);
		place[i].place = (struct placement_shard){ .leader = 1, .leader_epoch = EPOCH,
							   .replica_count = 2 - i,
							   .replicas = { 1, 2 }, .isr_count = 2 - i,
							   .isr = { 1, 2 } };
	}
	cr_assert_eq(cluster_placement_write(client, CLUSTER, &fence, place, 2), 0);

	/* Both refusals seen (the step-down's CAS is tried before either is counted). */
	while (metric(1, "sluice_cluster_lead_refusals_total") < 2) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 1 tries to lead both shards");
		wait_ms(20);
	}
	cr_assert_eq(metric(1, "sluice_cluster_isr_resigns_total"), 1);
	s0 = placement_of(0);
	cr_assert_eq(s0.place.leader, 0, "shard 0: node 1 stepped down");
	cr_assert_eq(s0.place.leader_epoch, EPOCH);
	cr_assert(has(s0.place.replicas, s0.place.replica_count, 1), "still a replica");
	cr_assert_not(has(s0.place.isr, s0.place.isr_count, 1), "out of the in-sync set");
	cr_assert(has(s0.place.isr, s0.place.isr_count, 2));
	s1 = placement_of(1);
	cr_assert(s1.place.leader == 1 && s1.place.isr_count == 1 && s1.place.isr[0] == 1,
		  "shard 1: the only in-sync replica stays (leader %u, %u in sync)",
		  s1.place.leader, s1.place.isr_count);

	/* A member's controller now elects node 2 for shard 0; shard 1 waits for node 1. */
	cr_assert_eq(etcd_resign(client, &fence), 0);
	for (;;) {
		s0 = placement_of(0);
		if (s0.place.leader != 0)
			break;
		cr_assert_lt(clock_mono_ns(), deadline, "shard 0 is led again");
		wait_ms(20);
	}
	cr_assert_eq(s0.place.leader, 2);
	cr_assert_eq(s0.place.leader_epoch, EPOCH + 1);
	cr_assert(has(s0.place.replicas, s0.place.replica_count, 1), "node 1 catches up");
	s1 = placement_of(1);
	cr_assert(s1.place.leader == 1 && s1.place.isr_count == 1 &&
		  s1.place.leader_epoch == EPOCH, "shard 1 unchanged: its one in-sync copy");
	cr_assert_eq(metric(1, "sluice_cluster_isr_resigns_total"), 1);

	/* Node 2 ships node 1 the records it lacks; caught up, it is in sync again. */
	while (!has(s0.place.isr, s0.place.isr_count, 1)) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 1 rejoins shard 0's in-sync set");
		wait_ms(20);
		s0 = placement_of(0);
	}
	cr_assert_eq(s0.place.leader, 2);
	cr_assert_eq(log_shard_info(nodes[1].log, LOG_SHARD_ID(id, 0), &info), 0);
	cr_assert_geq(info.seq_local, RECORDS, "node 1 holds what it had given up");
	printf("cluster-node-refuse: shard 0 led by node %u in epoch %" PRId64 " after node 1 "
	       "stepped down, node 1 in sync again at %" PRIu64 "; shard 1 stays on node 1, "
	       "unled\n", s0.place.leader, s0.place.leader_epoch, info.seq_local);

	/* The refusal marked; the operator's unclean election; node 1 leads it after all. */
	while ((s1 = placement_of(1)).refused_epoch != EPOCH) {
		cr_assert_lt(clock_mono_ns(), deadline, "shard 1: the refusal marked in its placement");
		wait_ms(20);
	}
	cr_assert_eq(metric(1, "sluice_cluster_unclean_elections_total"), 0);
	cr_assert_eq(cluster_placement_elect(client, CLUSTER, STREAM, 1, CLUSTER_REVISION_READ,
					     0, &s1), 0);
	cr_assert(s1.place.leader == 1 && s1.place.leader_epoch == EPOCH + 1 &&
		  s1.unclean_epoch == EPOCH + 1, "node 1 elected in epoch %" PRId64,
		  s1.place.leader_epoch);
	while (metric(1, "sluice_cluster_unclean_elections_total") < 1) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 1 leads shard 1 uncleanly");
		wait_ms(20);
	}
	{
		struct log_epoch_info ei;

		cr_assert_eq(log_shard_info(nodes[1].log, LOG_SHARD_ID(id, 1), &info), 0);
		cr_assert_eq(log_epoch_info(nodes[1].log, LOG_SHARD_ID(id, 1), &ei), 0);
		cr_assert(ei.epoch_last == EPOCH + 1 && ei.epoch_last_start == info.seq_local &&
			  ei.kept_end == 0, "epoch %" PRIu64 " from %" PRIu64 " (end %" PRIu64
			  "), kept end %" PRIu64, ei.epoch_last, ei.epoch_last_start,
			  info.seq_local, ei.kept_end);
	}
	s1 = placement_of(1);
	cr_assert(s1.place.leader == 1 && s1.place.leader_epoch == EPOCH + 1,
		  "the controller keeps it");
	cr_assert_eq(metric(1, "sluice_cluster_unclean_elections_total"), 1, "counted once");
	printf("cluster-node-refuse: shard 1 elected uncleanly: node 1 leads epoch %" PRId64
	       " from %" PRIu64 "\n", s1.place.leader_epoch, info.seq_local);
	etcd_lease_revoke(client, lease);
}
