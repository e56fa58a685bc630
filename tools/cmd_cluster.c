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
 *   elect    an operator's unclean election of one shard (--unclean required:
 *            clean elections are the controller's), through
 *            cluster_placement_elect: the CAS on the shard's placement key the
 *            chosen node leads from (docs/CLUSTER.md "Unclean election"). The
 *            node: --node, else the live replica with the highest durable end
 *            among those whose admin listener (--admin) answers, else
 *            placement_unclean's choice.
 *
 * Exit: 0 ok; 1 etcd unreachable or a refused drain or election; 3 (partial)
 * when a named admin listener did not answer.
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
	bool unclean;
	uint32_t node;                 /* elect --node; 0: chosen. */
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
		     "       sluice cluster elect STREAM SHARD --unclean [--node ID]\n"
		     "                            [--admin ID=HOST:PORT]... [common]\n"
		     "common: --etcd URL[,URL] or --endpoint URL[,URL]\n"
		     "        (default $SLUICE_ETCD_ENDPOINTS or %s)\n"
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

/* A node id (1 .. CLUSTER_NODE_ID_MAX) into *id_out; -EINVAL for anything else. */
static int
node_id_parse(const char *text, uint32_t *id_out)
{
	char *end;
	unsigned long id = strtoul(text, &end, 10);

	if (*text == '\0' || *end != '\0' || id == 0 || id > CLUSTER_NODE_ID_MAX)
		return -EINVAL;
	*id_out = (uint32_t)id;
	return 0;
}

static int
node_option(struct cluster_cli *c, const char *arg)
{
	return node_id_parse(arg, &c->node);
}

/* Options after the subcommand word; argv[optind..] are the positional arguments. */
static int
cluster_options(int argc, char **argv, struct cluster_cli *c)
{
	static const struct option options[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "unclean", no_argument, NULL, 'U' },
		{ "node", required_argument, NULL, 'n' },
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
		else if (opt == 'U')
			c->unclean = true;
		else if (opt == 'n' && node_option(c, optarg) == 0)
			continue;
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
	cJSON_AddNumberToObject(o, "unclean_epoch", (double)s->unclean_epoch);
	cJSON_AddNumberToObject(o, "refused_epoch", (double)s->refused_epoch);
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

/* What the table says after a shard's row: unled, or how it is led. */
static const char *
shard_note(const struct cluster_shard *s)
{
	bool now = s->place.leader_epoch > 0;

	if (s->place.leader == 0)
		return "  NO LEADER (sluice cluster elect --unclean: see docs/CLUSTER.md)";
	if (now && s->refused_epoch == s->place.leader_epoch)
		return "  LEADER REFUSES (lacks records; the only in-sync replica)";
	if (now && s->unclean_epoch == s->place.leader_epoch)
		return "  UNCLEAN election (this epoch)";
	return s->unclean_epoch != 0 ? "  (an unclean election before)" : "";
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
		       (long long)s->place.leader_epoch, replicas, isr, lag, shard_note(s));
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

/* The stored placement of stream/shard into *out; -ENOENT: none. */
static int
placement_find(struct etcd_client *client, const char *cluster, const char *stream,
	       uint32_t shard, struct cluster_shard *out)
{
	struct cluster_shard *shards;
	uint32_t count;
	int err = cluster_placement_read(client, cluster, &shards, &count);

	for (uint32_t i = 0; err == 0 && i < count; i++) {
		if (shards[i].shard == shard && strcmp(shards[i].stream, stream) == 0) {
			*out = shards[i];
			free(shards);
			return 0;
		}
	}
	if (err == 0)
		free(shards);
	return err == 0 ? -ENOENT : err;
}

/* The shard's durable end on the node from its GET /cluster ("led" or "followed"); -1 unknown. */
static double
node_end(const struct cluster_cli *c, uint32_t id, const char *stream, uint32_t shard)
{
	static const char *const lists[] = { "led", "followed" };
	char note[160];
	cJSON *admin;
	double end = -1;
	const cJSON *e;

	if (node_admin(c, id, &admin, note, sizeof(note)) != 0 || admin == NULL)
		return -1;
	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(admin, lists[l])) {
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "stream");

			if (cJSON_IsString(name) && strcmp(name->valuestring, stream) == 0 &&
			    cli_json_number(e, "shard") == shard)
				end = cli_json_number(e, "durable_end");
		}
	}
	cJSON_Delete(admin);
	return end;
}

/*
 * With no --node, the live replica holding the most of the shard (its durable end from
 * its admin listener, --admin): it loses the fewest records. 0 when no end is known.
 */
static uint32_t
elect_pick(struct etcd_client *client, const struct cluster_cli *c, const struct cluster_shard *s)
{
	struct cluster_registration *nodes;
	uint32_t node_count;
	uint32_t pick = 0;
	double best = -1;

	if (cluster_registrations_read(client, c->cluster, &nodes, &node_count) != 0)
		return 0;
	for (uint32_t i = 0; i < s->place.replica_count; i++) {
		uint32_t id = s->place.replicas[i];
		bool live = false;
		double end;

		for (uint32_t k = 0; k < node_count && !live; k++)
			live = nodes[k].id == id && !nodes[k].malformed;
		end = live ? node_end(c, id, s->stream, s->shard) : -1;
		if (end >= 0)
			printf("node %u: durable end %.0f\n", id, end);
		else
			printf("node %u: %s\n", id, live ? "its end not known" : "not live");
		if (end > best) {
			best = end;
			pick = id;
		}
	}
	free(nodes);
	return pick;
}

/* Why the election was refused, for the operator. */
static const char *
elect_refusal(int err)
{
	switch (err) {
	case -ENOENT:
		return "no placement (no such stream or shard, or not placed yet)";
	case -EEXIST:
		return "the shard has a leader (an unclean election is for a shard with none)";
	case -EBUSY:
		return "not needed: an in-sync replica is live and can lead; the controller "
		       "elects it (clean, nothing lost)";
	case -EINVAL:
		return "the node named is not a replica of the shard";
	case -EHOSTDOWN:
		return "the node named is not live (not registered), or no replica is";
	case -ESTALE:
		return "the placement or the node's registration changed meanwhile: look again "
		       "(sluice cluster status) and run it again";
	default:
		return strerror(-err);
	}
}

static int
cluster_elect(struct etcd_client *client, const struct cluster_cli *c, const char *stream,
	      const char *shard_text)
{
	struct cluster_shard s;
	struct cluster_shard out;
	uint32_t shard;
	uint32_t node = c->node;
	char *end;
	unsigned long n = strtoul(shard_text, &end, 10);
	int err;

	if (!c->unclean) {
		fprintf(stderr, "sluice cluster elect: only --unclean elections are made by hand "
			"(clean ones are the controller's)\n");
		return cluster_usage(stderr, CMD_EXIT_USAGE);
	}
	if (*shard_text == '\0' || *end != '\0' || n > UINT32_MAX)
		return cluster_usage(stderr, CMD_EXIT_USAGE);
	shard = (uint32_t)n;
	err = placement_find(client, c->cluster, stream, shard, &s);
	if (err == 0 && node == 0 && c->admin_count > 0)
		node = elect_pick(client, c, &s);
	if (err == 0)
		err = cluster_placement_elect(client, c->cluster, stream, shard,
					      s.mod_revision, node, &out);
	if (err != 0) {
		fprintf(stderr, "sluice cluster elect: %s/%u: refused: %s\n", stream, shard,
			elect_refusal(err));
		if (err == -EEXIST)
			fprintf(stderr, "  leader: node %u in epoch %lld\n", s.place.leader,
				(long long)s.place.leader_epoch);
		return CMD_EXIT_ERROR;
	}
	printf("%s/%u: node %u elected leader in epoch %lld, in-sync set [%u] (UNCLEAN: "
	       "acknowledged records that only the missing in-sync replicas held are lost)\n",
	       stream, shard, out.place.leader, (long long)out.place.leader_epoch,
	       out.place.leader);
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

	if (strcmp(sub, "status") != 0 && strcmp(sub, "drain") != 0 && strcmp(sub, "elect") != 0)
		return cluster_usage(argc >= 2 && strcmp(sub, "--help") == 0 ? stdout : stderr,
				     argc >= 2 && strcmp(sub, "--help") == 0 ? CMD_EXIT_OK
									       : CMD_EXIT_USAGE);
	err = cluster_options(argc - 1, argv + 1, &c);
	if (err != 0)
		return err > 0 ? cluster_usage(stdout, CMD_EXIT_OK)
			       : cluster_usage(stderr, CMD_EXIT_USAGE);
	/* getopt moved the positional arguments last: elect takes two, drain one, status none. */
	if ((argc - 1) - optind != (strcmp(sub, "elect") == 0 ? 2 : strcmp(sub, "drain") == 0))
		return cluster_usage(stderr, CMD_EXIT_USAGE);
	err = etcd_open(c.etcd, CLUSTER_CLI_TIMEOUT_MS, &client);
	if (err != 0) {
		fprintf(stderr, "sluice cluster: --etcd %s: %s\n", c.etcd, strerror(-err));
		return CMD_EXIT_USAGE;
	}
	if (strcmp(sub, "status") == 0)
		code = cluster_status(client, &c);
	else if (strcmp(sub, "drain") == 0)
		code = cluster_drain(client, &c, argv[1 + optind]);
	else
		code = cluster_elect(client, &c, argv[1 + optind], argv[2 + optind]);
	etcd_close(client);
	return code;
}
