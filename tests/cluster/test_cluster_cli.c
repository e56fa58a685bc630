/*
 * cluster_cli: `sluice cluster status | drain` against a real etcd
 * (etcd_fixture.c) whose keys were written by cluster/'s own writers: two
 * members registered by cluster_member_start, placements written by the
 * elected controller. The CLI runs as a process ($SLUICE_CLI); its --json
 * output is compared with what cluster/'s readers return; a drain through
 * the CLI is what the controller acts on, and outlives the node's
 * registration (stopped: shown as not registered; started again: draining);
 * the refusals (unknown node, an unreadable registration, usage) and an admin
 * listener that does not answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "etcd_fixture.h"

#define NODES 2u
#define DEADLINE_NS (60ull * 1000000000ull)
#define OUTPUT_MAX (1u << 20)

static struct cluster_member *members[NODES + 1];
static struct etcd_client *client;

static void
start_member(uint32_t id)
{
	static char addrs[NODES + 1][3][32];
	struct cluster_config c = { .etcd_endpoints = etcd_endpoint, .cluster = "ccli",
				    .node_id = id, .lease_ttl_s = 2 };

	snprintf(addrs[id][0], 32, "127.0.0.1:%u", 7000 + id);
	snprintf(addrs[id][1], 32, "127.0.0.1:%u", 8000 + id);
	snprintf(addrs[id][2], 32, "127.0.0.1:%u", 9000 + id);
	c.addr = addrs[id][0];
	c.api_addr = addrs[id][1];
	c.dp_addr = addrs[id][2];
	cr_assert_eq(cluster_member_start(&c, &members[id]), 0);
}

static void
setup(void)
{
	etcd_fixture_start();
	cr_assert_eq(etcd_open(etcd_endpoint, 2000, &client), 0);
	for (uint32_t id = 1; id <= NODES; id++)
		start_member(id);
}

static void
teardown(void)
{
	for (uint32_t id = 1; id <= NODES; id++)
		if (members[id] != NULL)
			cluster_member_stop(members[id]);
	etcd_close(client);
	etcd_fixture_stop();
}

TestSuite(cluster_cli, .init = setup, .fini = teardown, .timeout = 150);

/* Runs `sluice cluster ARGS --etcd E --cluster ccli`; its stdout into out, its exit code. */
static int
cli(char *out, const char *args)
{
	const char *bin = getenv("SLUICE_CLI");
	char cmd[1024];
	size_t n = 0;
	FILE *p;
	int status;

	cr_assert_not_null(bin, "SLUICE_CLI names the sluice binary");
	snprintf(cmd, sizeof(cmd), "%s cluster %s --etcd %s --cluster ccli", bin, args,
		 etcd_endpoint);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (!feof(p) && n < OUTPUT_MAX - 1)
		n += fread(out + n, 1, OUTPUT_MAX - 1 - n, p);
	out[n] = '\0';
	status = pclose(p);
	cr_assert(WIFEXITED(status), "%s", cmd);
	return WEXITSTATUS(status);
}

static cJSON *
status_json(char *buf)
{
	cJSON *j;

	cr_assert_eq(cli(buf, "status --json"), 0, "%s", buf);
	j = cJSON_Parse(buf);
	cr_assert_not_null(j, "%s", buf);
	return j;
}

/* The i-th node object of a status document. */
static const cJSON *
node_item(const cJSON *status, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItem(status, "nodes"), i);
}

static void
wait_until(bool (*cond)(void), const char *what)
{
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	while (!cond()) {
		cr_assert_lt(clock_mono_ns(), deadline, "waited for %s", what);
		nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	}
}

/* Every one of the 4 stored placements is led by `leader` (0: by anyone). */
static bool
all_led_by(uint32_t leader)
{
	struct cluster_shard *s;
	uint32_t n;
	bool ok;

	if (cluster_placement_read(client, "ccli", &s, &n) != 0)
		return false;
	ok = n == 4;
	for (uint32_t i = 0; i < n; i++)
		ok &= leader == 0 ? s[i].place.leader != 0 : s[i].place.leader == leader;
	free(s);
	return ok;
}

static bool
all_placed(void)
{
	return all_led_by(0);
}

static bool
node2_leads_nothing(void)
{
	return all_led_by(1);   /* Two nodes: what node 2 does not lead, node 1 does. */
}

static bool
node_draining(uint32_t id)
{
	struct cluster_registration *nodes;
	uint32_t n;
	bool d = false;

	cr_assert_eq(cluster_registrations_read(client, "ccli", &nodes, &n), 0);
	for (uint32_t i = 0; i < n; i++)
		if (nodes[i].id == id)
			d = nodes[i].draining;
	free(nodes);
	return d;
}

Test(cluster_cli, status_shows_what_cluster_readers_read_and_drain_moves_leaders)
{
	static const char orders[] = "{\"stream_id\":3,\"shard_count\":4}";
	char *buf = malloc(OUTPUT_MAX);
	struct cluster_shard *shards;
	uint32_t count;
	const cJSON *n;
	const cJSON *p;
	cJSON *j;
	int i = 0;

	cr_assert_eq(etcd_put(client, "/sluice/ccli/streams/orders", orders, strlen(orders), 0,
			      NULL), 0);
	wait_until(all_placed, "4 shards placed");

	j = status_json(buf);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "nodes")), 2, "%s", buf);
	cJSON_ArrayForEach(n, cJSON_GetObjectItem(j, "nodes")) {
		char want[32];

		i++;
		cr_assert_eq(cJSON_GetObjectItem(n, "id")->valuedouble, i);
		snprintf(want, sizeof(want), "127.0.0.1:%d", 8000 + i);
		cr_assert_str_eq(cJSON_GetObjectItem(n, "api_addr")->valuestring, want);
		cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(n, "draining")));
		cr_assert(cJSON_IsString(cJSON_GetObjectItem(n, "cluster_note")), "no admin given");
	}
	{
		const cJSON *ctl = cJSON_GetObjectItem(j, "controller");
		uint32_t id = (uint32_t)cJSON_GetObjectItem(ctl, "node")->valuedouble;
		struct cluster_member_status st;

		cr_assert(id == 1 || id == 2, "%s", buf);
		cluster_member_status(members[id], &st);
		cr_assert(st.controller);
		cr_assert_eq((int64_t)cJSON_GetObjectItem(ctl, "epoch")->valuedouble,
			     st.election.rev);
	}
	/* Placements: exactly what cluster_placement_read returns, shard by shard. */
	cr_assert_eq(cluster_placement_read(client, "ccli", &shards, &count), 0);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "placements")), (int)count);
	i = 0;
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "placements")) {
		const struct cluster_shard *s = &shards[i++];

		cr_assert_str_eq(cJSON_GetObjectItem(p, "stream")->valuestring, s->stream);
		cr_assert_eq(cJSON_GetObjectItem(p, "shard")->valuedouble, s->shard);
		cr_assert_eq(cJSON_GetObjectItem(p, "stream_id")->valuedouble, s->stream_id);
		cr_assert_eq(s->stream_id, 3, "the placement names its stream");
		cr_assert_eq(cJSON_GetObjectItem(p, "leader")->valuedouble, s->place.leader);
		cr_assert_eq(cJSON_GetObjectItem(p, "epoch")->valuedouble, (double)s->place.leader_epoch);
		cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "isr")),
			     (int)s->place.isr_count);
		cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "replicas")),
			     (int)s->place.replica_count);
	}
	free(shards);
	cJSON_Delete(j);

	/* The table names the controller and every shard. */
	cr_assert_eq(cli(buf, "status"), 0);
	cr_assert_not_null(strstr(buf, "controller node"), "%s", buf);
	cr_assert_not_null(strstr(buf, "orders/shardId-000000000003"), "%s", buf);

	/* Drain through the CLI: the flag the controller reads, and node 2 leads nothing. */
	cr_assert_eq(cli(buf, "drain 2"), 0, "%s", buf);
	cr_assert(node_draining(2));
	cr_assert(!node_draining(1));
	wait_until(node2_leads_nothing, "node 2's leaderships gone");
	j = status_json(buf);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(node_item(j, 1), "draining")), "%s", buf);
	cJSON_Delete(j);
	cr_assert_eq(cli(buf, "drain 2"), 0, "draining twice is fine: %s", buf);

	/*
	 * The node stops (its registration goes with its lease): the intent stays,
	 * shown as a node that is not registered; it comes back draining.
	 */
	cluster_member_stop(members[2]);
	members[2] = NULL;
	j = status_json(buf);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "nodes")), 1, "%s", buf);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "drains")), 1, "%s", buf);
	cr_assert_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "drains"), 0)->valuedouble, 2);
	cJSON_Delete(j);
	cr_assert_eq(cli(buf, "status"), 0);
	cr_assert_not_null(strstr(buf, "not registered"), "%s", buf);
	start_member(2);
	cr_assert(node_draining(2), "registered again, still draining");
	j = status_json(buf);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(node_item(j, 1), "draining")), "%s", buf);
	cJSON_Delete(j);

	cr_assert_eq(cli(buf, "drain 2 --undo"), 0, "%s", buf);
	cr_assert(!node_draining(2));
	j = status_json(buf);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "drains")), 0, "%s", buf);
	cJSON_Delete(j);
	cr_assert_eq(cli(buf, "drain 2 --undo"), 0, "undraining a registered node twice is fine");
	free(buf);
}

Test(cluster_cli, refusals_and_an_admin_listener_that_does_not_answer)
{
	char *buf = malloc(OUTPUT_MAX);
	char args[128];
	struct etcd_range r;
	cJSON *j;

	cr_assert_eq(cli(buf, "drain 9"), 1, "an unregistered node: %s", buf);
	cr_assert_eq(cluster_registration_drain(client, "ccli", 9, true), -ENOENT);
	cr_assert_eq(cli(buf, "drain 9 --undo"), 1, "no intent, not registered: %s", buf);
	cr_assert_eq(cluster_registration_drain(client, "ccli", 9, false), -ENOENT);
	cr_assert_eq(cluster_registration_drain(client, "ccli", CLUSTER_NODE_ID_MAX + 1, true),
		     -EINVAL);
	cr_assert_eq(cli(buf, "drain"), 2, "no node id");
	cr_assert_eq(cli(buf, "drain 0"), 2, "node id 0");
	cr_assert_eq(cli(buf, "drain 1 2"), 2, "two ids");
	cr_assert_eq(cli(buf, "status extra"), 2, "status takes no argument");
	cr_assert_eq(cli(buf, "status --admin 1"), 2, "--admin without =ADDR");
	cr_assert_eq(cli(buf, "elect s 0"), 2, "clean elections are the controller's");
	cr_assert_eq(cli(buf, "elect s --unclean"), 2, "no shard");
	cr_assert_eq(cli(buf, "elect s x --unclean"), 2, "a shard that is no number");
	cr_assert_eq(cli(buf, "elect s 0 --unclean --node 0"), 2, "node id 0");
	cr_assert_eq(cli(buf, "elect nosuch 0 --unclean 2>&1"), 1, "%s", buf);
	cr_assert_not_null(strstr(buf, "no placement"), "an unknown shard: %s", buf);

	/* A registration that is not an object: shown as such, not drained. */
	cr_assert_eq(etcd_put(client, "/sluice/ccli/nodes/7", "[]", 2, 0, NULL), 0);
	cr_assert_eq(cluster_registration_drain(client, "ccli", 7, true), -EPROTO);
	cr_assert_eq(etcd_get(client, "/sluice/ccli/drains/7", false, 0, &r), 0);
	cr_assert_eq(r.count, 0, "a refused drain leaves no intent");
	etcd_range_free(&r);
	j = status_json(buf);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(node_item(j, 2), "malformed")), "%s", buf);
	cJSON_Delete(j);

	/* Nobody listens on the admin address given: the note says so, the exit is partial. */
	snprintf(args, sizeof(args), "status --json --admin 1=127.0.0.1:%u",
		 etcd_fixture_free_port());
	cr_assert_eq(cli(buf, args), 3, "%s", buf);
	cr_assert_not_null(strstr(buf, "not answering"), "%s", buf);

	/* No etcd there: an error, not a hang. */
	{
		const char *bin = getenv("SLUICE_CLI");
		char cmd[512];
		int status;

		snprintf(cmd, sizeof(cmd),
			 "%s cluster status --etcd http://127.0.0.1:%u >/dev/null 2>&1", bin,
			 etcd_fixture_free_port());
		status = system(cmd);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	}
	free(buf);
}
