/*
 * cmd_cluster.c - sluice cluster status | drain (docs/CLUSTER.md "Operating a
 * cluster"), from etcd through cluster/'s readers, so what it shows is what
 * the controller and the nodes read:
 *
 *   status   nodes (addresses, draining), the drain intents of nodes not
 *            registered (down), the controller (node, controller
 *            epoch), every shard's placement (leader, leader epoch,
 *            replicas, in-sync set), and each node's GET /cluster from its
 *            admin listener when one is named (--admin ID=HOST:PORT) and
 *            answers (its links; a shard's lag from its leader's entry);
 *            a table, or --json.
 *   drain    puts a node's drain intent, drains/<id> (--undo deletes it), through
 *            cluster_registration_drain: the key the controller reads; it
 *            outlives the node's registration (a restart comes back draining).
 *
 * Exit: 0 ok; 1 etcd unreachable or a refused drain; 3 (partial) when a
 * named admin listener did not answer.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "tools/cli_bench.h"
#include "tools/cmd.h"

#define CLUSTER_CLI_ETCD_DEFAULT "http://127.0.0.1:2379"
#define CLUSTER_CLI_NAME_DEFAULT "sluice"
/* etcd calls from the CLI: one answer each, no campaign. */
#define CLUSTER_CLI_TIMEOUT_MS 5000u
/* --admin ID=HOST:PORT options (one per node at most). */
#define CLUSTER_CLI_ADMINS_MAX CLUSTER_NODES_MAX

struct cluster_cli {
	const char *etcd;
	const char *cluster;
	const char *token;
	bool json;
	bool undo;
	uint32_t admin_ids[CLUSTER_CLI_ADMINS_MAX];
	const char *admin_addrs[CLUSTER_CLI_ADMINS_MAX];
	uint32_t admin_count;
};

/* What etcd holds for the cluster, read at once. */
struct cluster_view {
	struct cluster_registration *nodes;
	uint32_t node_count;
	struct cluster_shard *shards;
	uint32_t shard_count;
	uint32_t *drains;              /* Node ids with a drain intent, registered or not. */
	uint32_t drain_count;
	bool has_controller;
	uint32_t controller_node;
	int64_t controller_epoch;
	/* Per node (nodes[i]): its GET /cluster, or NULL and a note saying why not. */
	cJSON **admin;
	char (*note)[160];
	bool admin_missing;            /* A named admin listener did not answer. */
};

static int
cluster_usage(FILE *out, int code)
{
	fprintf(out, "usage: sluice cluster status [--json] [--admin ID=HOST:PORT]... [common]\n"
		     "       sluice cluster drain NODE_ID [--undo] [common]\n"
		     "common: --etcd URL[,URL] (default $SLUICE_ETCD_ENDPOINTS or %s)\n"
		     "        --cluster NAME (default %s)\n"
		     "        --token T (admin listeners; $SLUICE_ADMIN_TOKEN)\n",
		CLUSTER_CLI_ETCD_DEFAULT, CLUSTER_CLI_NAME_DEFAULT);
	return code;
}

static int
admin_option(struct cluster_cli *c, const char *arg)
{
	char *end;
	unsigned long id = strtoul(arg, &end, 10);

	if (*end != '=' || id == 0 || id > UINT32_MAX || end[1] == '\0' ||
	    c->admin_count == CLUSTER_CLI_ADMINS_MAX)
		return -EINVAL;
	c->admin_ids[c->admin_count] = (uint32_t)id;
	c->admin_addrs[c->admin_count++] = end + 1;
	return 0;
}

/* Options after the subcommand word; argv[optind..] are the positional arguments. */
static int
cluster_options(int argc, char **argv, struct cluster_cli *c)
{
	static const struct option options[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "cluster", required_argument, NULL, 'c' },
		{ "token", required_argument, NULL, 't' },
		{ "admin", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "undo", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	c->etcd = getenv("SLUICE_ETCD_ENDPOINTS") != NULL ? getenv("SLUICE_ETCD_ENDPOINTS")
							   : CLUSTER_CLI_ETCD_DEFAULT;
	c->cluster = CLUSTER_CLI_NAME_DEFAULT;
	c->token = getenv("SLUICE_ADMIN_TOKEN");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'e')
			c->etcd = optarg;
		else if (opt == 'c')
			c->cluster = optarg;
		else if (opt == 't')
			c->token = optarg;
		else if (opt == 'j')
			c->json = true;
		else if (opt == 'u')
			c->undo = true;
		else if (opt == 'a' && admin_option(c, optarg) == 0)
			continue;
		else
			return opt == 'h' ? 1 : -EINVAL;
	}
	return 0;
}

static void
view_free(struct cluster_view *v)
{
	for (uint32_t i = 0; v->admin != NULL && i < v->node_count; i++)
		cJSON_Delete(v->admin[i]);
	free(v->admin);
	free(v->note);
	free(v->nodes);
	free(v->shards);
	free(v->drains);
}

static int
view_read(struct etcd_client *client, const char *cluster, struct cluster_view *v)
{
	char election[CLUSTER_NAME_SIZE + 32];
	struct etcd_leader leader;
	int err;

	memset(v, 0, sizeof(*v));
	err = cluster_registrations_read(client, cluster, &v->nodes, &v->node_count);
	if (err == 0)
		err = cluster_placement_read(client, cluster, &v->shards, &v->shard_count);
	if (err == 0)
		err = cluster_drains_read(client, cluster, &v->drains, &v->drain_count);
	if (err != 0)
		return err;
	/* The controller: the election's leader (value: node id; create_revision: the epoch). */
	snprintf(election, sizeof(election), "/sluice/%s/controller", cluster);
	err = etcd_leader(client, election, &leader);
	if (err == -ENOENT)
		return 0;
	if (err != 0)
		return err;
	v->has_controller = true;
	v->controller_node = (uint32_t)strtoul((const char *)leader.value, NULL, 10);
	v->controller_epoch = leader.rev;
	return 0;
}

static const char *
admin_of(const struct cluster_cli *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->admin_count; i++)
		if (c->admin_ids[i] == id)
			return c->admin_addrs[i];
	return NULL;
}

/*
 * A node's GET /cluster (replica lag and link figures, documented by the
 * node: docs/CLUSTER.md) parsed into *out, or a note saying why not.
 */
static int
node_admin(const struct cluster_cli *c, uint32_t id, cJSON **out, char *note, size_t size)
{
	const char *addr = admin_of(c, id);
	struct cli_admin_http r = { 0 };

	*out = NULL;
	if (addr == NULL) {
		snprintf(note, size, "no admin address given (--admin %u=HOST:PORT)", id);
		return 0;
	}
	if (cli_admin_get(addr, "/cluster", c->token, &r) != 0) {
		snprintf(note, size, "%s not answering", addr);
		return -EHOSTUNREACH;
	}
	if (r.code == 200)
		*out = cJSON_Parse(r.body);
	if (*out == NULL)
		snprintf(note, size, "%s: GET /cluster answered %d%s", addr, r.code,
			 r.code == 200 ? " (not JSON)" : " (not served by this node)");
	free(r.body);
	return *out != NULL ? 0 : -EPROTO;
}

/* Every node's GET /cluster, once (both printers use them). */
static int
view_admin(const struct cluster_cli *c, struct cluster_view *v)
{
	v->admin = calloc(v->node_count + 1, sizeof(*v->admin));
	v->note = calloc(v->node_count + 1, sizeof(*v->note));
	if (v->admin == NULL || v->note == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->node_count; i++)
		v->admin_missing |= node_admin(c, v->nodes[i].id, &v->admin[i], v->note[i],
					       sizeof(v->note[i])) == -EHOSTUNREACH;
	return 0;
}

/*
 * A shard's replication lag from its leader's GET /cluster: the leader's
 * durable end minus what every replica acknowledged (acked_all); -1 unknown.
 */
static double
shard_lag(const struct cluster_view *v, const struct cluster_shard *s)
{
	const cJSON *e;

	for (uint32_t i = 0; i < v->node_count; i++) {
		if (v->nodes[i].id != s->place.leader || v->admin[i] == NULL)
			continue;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(v->admin[i], "led")) {
			const cJSON *stream = cJSON_GetObjectItemCaseSensitive(e, "stream");

			if (!cJSON_IsString(stream) || cli_json_number(e, "shard") != s->shard ||
			    strcmp(stream->valuestring, s->stream) != 0)
				continue;
			return cli_json_number(e, "durable_end") - cli_json_number(e, "acked_all");
		}
	}
	return -1;
}

static cJSON *
ids_array(const uint32_t *ids, uint32_t count)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; a != NULL && i < count; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
	return a;
}

static void
ids_text(char *out, size_t size, const uint32_t *ids, uint32_t count)
{
	size_t used = 0;

	out[0] = '\0';
	for (uint32_t i = 0; i < count && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%u", i > 0 ? "," : "", ids[i]);
}

static cJSON *
shard_json(const struct cluster_shard *s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "stream", s->stream);
	cJSON_AddNumberToObject(o, "shard", s->shard);
	cJSON_AddNumberToObject(o, "stream_id", s->stream_id);
	cJSON_AddBoolToObject(o, "malformed", s->malformed);
	cJSON_AddNumberToObject(o, "leader", s->place.leader);
	cJSON_AddNumberToObject(o, "epoch", (double)s->place.leader_epoch);
	cJSON_AddItemToObject(o, "replicas", ids_array(s->place.replicas, s->place.replica_count));
	cJSON_AddItemToObject(o, "isr", ids_array(s->place.isr, s->place.isr_count));
	cJSON_AddNumberToObject(o, "mod_revision", (double)s->mod_revision);
	return o;
}

/* Whether node `id` is registered. */
static bool
registered(const struct cluster_view *v, uint32_t id)
{
	for (uint32_t i = 0; i < v->node_count; i++)
		if (v->nodes[i].id == id)
			return true;
	return false;
}

/* The whole view as one JSON document (the campaign and scripts read this). */
static int
status_json(const struct cluster_cli *c, const struct cluster_view *v)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
	cJSON *shards = cJSON_AddArrayToObject(root, "placements");
	char *text;

	cJSON_AddStringToObject(root, "cluster", c->cluster);
	cJSON_AddItemToObject(root, "drains", ids_array(v->drains, v->drain_count));
	if (v->has_controller) {
		cJSON *ctl = cJSON_AddObjectToObject(root, "controller");

		cJSON_AddNumberToObject(ctl, "node", v->controller_node);
		cJSON_AddNumberToObject(ctl, "epoch", (double)v->controller_epoch);
	} else {
		cJSON_AddNullToObject(root, "controller");
	}
	for (uint32_t i = 0; i < v->node_count; i++) {
		const struct cluster_registration *n = &v->nodes[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "id", n->id);
		cJSON_AddStringToObject(o, "addr", n->addr);
		cJSON_AddStringToObject(o, "api_addr", n->api_addr);
		cJSON_AddStringToObject(o, "dp_addr", n->dp_addr);
		cJSON_AddBoolToObject(o, "draining", n->draining);
		cJSON_AddBoolToObject(o, "malformed", n->malformed);
		if (v->admin[i] != NULL)
			cJSON_AddItemReferenceToObject(o, "cluster", v->admin[i]);
		else
			cJSON_AddStringToObject(o, "cluster_note", v->note[i]);
		cJSON_AddItemToArray(nodes, o);
	}
	for (uint32_t i = 0; i < v->shard_count; i++) {
		cJSON *o = shard_json(&v->shards[i]);
		double lag = shard_lag(v, &v->shards[i]);

		if (lag >= 0)
			cJSON_AddNumberToObject(o, "lag_records", lag);
		else
			cJSON_AddNullToObject(o, "lag_records");
		cJSON_AddItemToArray(shards, o);
	}
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (text == NULL)
		return CMD_EXIT_ERROR;
	printf("%s\n", text);
	free(text);
	return v->admin_missing ? CMD_EXIT_PARTIAL : CMD_EXIT_OK;
}

/* One node's links from its GET /cluster: peer, connected, lag, resets. */
static void
print_links(uint32_t id, const cJSON *admin)
{
	bool controller = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(admin, "controller"));
	int led = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(admin, "led"));
	int followed = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(admin, "followed"));
	const cJSON *l;

	printf("node %u: %s, leads %d, follows %d, links:", id,
	       controller ? "controller" : "member", led, followed);
	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(admin, "links")) {
		bool up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "connected"));

		printf(" ->%.0f %s lag %.0f resets %.0f", cli_json_number(l, "node_id"),
		       up ? "up" : "DOWN", cli_json_number(l, "lag_records"),
		       cli_json_number(l, "resets"));
	}
	printf("\n");
}

static int
status_table(const struct cluster_cli *c, const struct cluster_view *v)
{
	if (v->has_controller)
		printf("cluster %s: controller node %u (controller epoch %lld), %u nodes, "
		       "%u shards\n", c->cluster, v->controller_node,
		       (long long)v->controller_epoch, v->node_count, v->shard_count);
	else
		printf("cluster %s: NO controller, %u nodes, %u shards\n", c->cluster,
		       v->node_count, v->shard_count);
	printf("%-6s %-22s %-22s %-22s %-8s\n", "node", "replication", "api", "dataplane",
	       "draining");
	for (uint32_t i = 0; i < v->node_count; i++) {
		const struct cluster_registration *n = &v->nodes[i];

		printf("%-6u %-22s %-22s %-22s %-8s%s\n", n->id, n->addr, n->api_addr, n->dp_addr,
		       n->draining ? "yes" : "no", n->malformed ? "  (unreadable value)" : "");
	}
	/* An intent outlives the registration: a node down for maintenance comes back draining. */
	for (uint32_t i = 0; i < v->drain_count; i++)
		if (!registered(v, v->drains[i]))
			printf("%-6u %-22s%46s %-8s\n", v->drains[i], "(not registered: down)", "",
			       "yes");
	printf("\n%-40s %6s %6s %-14s %-14s %8s\n", "stream/shard", "leader", "epoch", "replicas",
	       "in-sync", "lag");
	for (uint32_t i = 0; i < v->shard_count; i++) {
		const struct cluster_shard *s = &v->shards[i];
		char name[CLUSTER_STREAM_NAME_SIZE + 32];
		char replicas[64];
		char isr[64];
		char lag[24] = "-";
		double l = shard_lag(v, s);

		snprintf(name, sizeof(name), "%s/shardId-%012u", s->stream, s->shard);
		if (s->malformed) {
			printf("%-40s (unreadable placement)\n", name);
			continue;
		}
		ids_text(replicas, sizeof(replicas), s->place.replicas, s->place.replica_count);
		ids_text(isr, sizeof(isr), s->place.isr, s->place.isr_count);
		if (l >= 0)
			snprintf(lag, sizeof(lag), "%.0f", l);
		printf("%-40s %6u %6lld %-14s %-14s %8s%s\n", name, s->place.leader,
		       (long long)s->place.leader_epoch, replicas, isr, lag,
		       s->place.leader == 0 ? "  NO LEADER" : "");
	}
	printf("\n");
	for (uint32_t i = 0; i < v->node_count; i++) {
		if (v->admin[i] != NULL)
			print_links(v->nodes[i].id, v->admin[i]);
		else
			printf("node %u: %s\n", v->nodes[i].id, v->note[i]);
	}
	return v->admin_missing ? CMD_EXIT_PARTIAL : CMD_EXIT_OK;
}

static int
cluster_status(struct etcd_client *client, const struct cluster_cli *c)
{
	struct cluster_view v;
	int err = view_read(client, c->cluster, &v);
	int code;

	if (err == 0)
		err = view_admin(c, &v);
	if (err != 0) {
		fprintf(stderr, "sluice cluster status: etcd %s: %s\n", c->etcd, strerror(-err));
		view_free(&v);
		return CMD_EXIT_ERROR;
	}
	code = c->json ? status_json(c, &v) : status_table(c, &v);
	view_free(&v);
	return code;
}

static int
cluster_drain(struct etcd_client *client, const struct cluster_cli *c, const char *node)
{
	char *end;
	unsigned long id = strtoul(node, &end, 10);
	int err;

	if (*end != '\0' || id == 0 || id > UINT32_MAX)
		return cluster_usage(stderr, CMD_EXIT_USAGE);
	err = cluster_registration_drain(client, c->cluster, (uint32_t)id, !c->undo);
	if (err != 0) {
		fprintf(stderr, "sluice cluster drain: node %lu: %s\n", id,
			err == -ENOENT ? (c->undo ? "not registered and not draining"
					  : "not registered (down, or another cluster name?)") :
			err == -ESTALE ? "its registration changed meanwhile; run it again" :
			strerror(-err));
		return CMD_EXIT_ERROR;
	}
	printf("node %lu %s\n", id, c->undo ? "no longer draining" :
	       "draining (until `sluice cluster drain --undo`, across restarts)");
	return CMD_EXIT_OK;
}

int
cmd_cluster(int argc, char **argv)
{
	struct cluster_cli c = { 0 };
	struct etcd_client *client;
	const char *sub = argc >= 2 ? argv[1] : "";
	int err;
	int code;

	if (strcmp(sub, "status") != 0 && strcmp(sub, "drain") != 0)
		return cluster_usage(argc >= 2 && strcmp(sub, "--help") == 0 ? stdout : stderr,
				     argc >= 2 && strcmp(sub, "--help") == 0 ? CMD_EXIT_OK
									       : CMD_EXIT_USAGE);
	err = cluster_options(argc - 1, argv + 1, &c);
	if (err != 0)
		return err > 0 ? cluster_usage(stdout, CMD_EXIT_OK)
			       : cluster_usage(stderr, CMD_EXIT_USAGE);
	/* getopt moved the positional arguments last: drain takes exactly one, status none. */
	if ((argc - 1) - optind != (strcmp(sub, "drain") == 0 ? 1 : 0))
		return cluster_usage(stderr, CMD_EXIT_USAGE);
	err = etcd_open(c.etcd, CLUSTER_CLI_TIMEOUT_MS, &client);
	if (err != 0) {
		fprintf(stderr, "sluice cluster: --etcd %s: %s\n", c.etcd, strerror(-err));
		return CMD_EXIT_USAGE;
	}
	code = strcmp(sub, "status") == 0 ? cluster_status(client, &c)
					  : cluster_drain(client, &c, argv[1 + optind]);
	etcd_close(client);
	return code;
}
