/*
 * nodes_etcd.c - node registrations and drains in etcd (cluster.h,
 * docs/CLUSTER.md): the one encoding of a nodes/<id> key, read by the
 * controller, written by the node itself (membership.c); and the drain
 * intents, written by an operator's drain (the CLI) or the node itself.
 *
 *   /sluice/<cluster>/nodes/<id>    {"addr","api_addr","dp_addr"}, under the node's lease
 *   /sluice/<cluster>/drains/<id>   {"since_ms"}, no lease: the operator's intent outlives
 *                                   the node's registration (a restart, a lease lost)
 *
 * Why the intent is not a flag in the registration (as it was): the
 * registration goes with the lease, so a node that restarted came back
 * undrained in the middle of its maintenance. Registrations no longer carry
 * a flag; one written by an earlier build ("draining") is ignored: cluster
 * mode has no release whose nodes could be drained that way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "cluster/cluster_int.h"
#include "common/clock.h"

char *
cluster_registration_encode(const struct cluster_registration *n)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, "addr", n->addr) != NULL &&
	    cJSON_AddStringToObject(o, "api_addr", n->api_addr) != NULL &&
	    cJSON_AddStringToObject(o, "dp_addr", n->dp_addr) != NULL)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static void
copy_string(char *dst, size_t size, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

int
cluster_registration_decode(const struct etcd_kv *kv, const char *cluster,
			    struct cluster_registration *out)
{
	char prefix[CLUSTER_KEY_SIZE];
	unsigned long id;
	char *end;
	cJSON *o;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/nodes/", cluster);
	if (strncmp(kv->key, prefix, strlen(prefix)) != 0)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	id = strtoul(kv->key + strlen(prefix), &end, 10);
	if (*end != '\0' || id == 0 || id > UINT32_MAX)
		return -EINVAL;
	out->id = (uint32_t)id;
	out->lease = kv->lease;
	out->mod_revision = kv->mod_revision;
	o = cJSON_ParseWithLength((const char *)kv->value, kv->value_size);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		out->malformed = true;
		return -EPROTO;
	}
	copy_string(out->addr, sizeof(out->addr), o, "addr");
	copy_string(out->api_addr, sizeof(out->api_addr), o, "api_addr");
	copy_string(out->dp_addr, sizeof(out->dp_addr), o, "dp_addr");
	cJSON_Delete(o);
	return 0;
}

/*
 * The keys under /sluice/<cluster>/<dir>/ into *r and an array of as many
 * `size` elements (NULL and *err_out on failure, *r then freed).
 */
static void *
range_and_array(struct etcd_client *client, const char *cluster, const char *dir, size_t size,
		struct etcd_range *r, int *err_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	void *array;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/%s/", cluster, dir);
	*err_out = etcd_get(client, prefix, true, 0, r);
	if (*err_out != 0)
		return NULL;
	array = calloc(r->count > 0 ? r->count : 1, size);
	if (array == NULL) {
		etcd_range_free(r);
		*err_out = -ENOMEM;
	}
	return array;
}

int
cluster_registrations_read(struct etcd_client *client, const char *cluster,
			   struct cluster_registration **nodes_out, uint32_t *count_out)
{
	struct cluster_registration *nodes;
	struct etcd_range r;
	uint32_t *drains;
	uint32_t drain_count;
	int err;

	*count_out = 0;
	nodes = range_and_array(client, cluster, "nodes", sizeof(*nodes), &r, &err);
	if (nodes == NULL)
		return err;
	/* An id that is not a number is not a node at all; a bad value is a node, marked. */
	for (uint32_t i = 0; i < r.count; i++)
		if (cluster_registration_decode(&r.kvs[i], cluster, &nodes[*count_out]) != -EINVAL)
			(*count_out)++;
	etcd_range_free(&r);
	err = cluster_drains_read(client, cluster, &drains, &drain_count);
	if (err != 0) {
		free(nodes);
		return err;
	}
	for (uint32_t i = 0; i < *count_out; i++)
		nodes[i].draining = placement_has(drains, drain_count, nodes[i].id);
	free(drains);
	*nodes_out = nodes;
	return 0;
}

int
cluster_drain_decode(const struct etcd_kv *kv, const char *cluster, uint32_t *id_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	unsigned long id;
	char *end;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/drains/", cluster);
	if (strncmp(kv->key, prefix, strlen(prefix)) != 0)
		return -ENOENT;
	id = strtoul(kv->key + strlen(prefix), &end, 10);
	if (*end != '\0' || id == 0 || id > CLUSTER_NODE_ID_MAX)
		return -EINVAL;
	*id_out = (uint32_t)id;
	return 0;   /* The value says when, for people: the key's presence is the intent. */
}

int
cluster_drains_read(struct etcd_client *client, const char *cluster, uint32_t **ids_out,
		    uint32_t *count_out)
{
	struct etcd_range r;
	uint32_t *ids;
	int err;

	*count_out = 0;
	ids = range_and_array(client, cluster, "drains", sizeof(*ids), &r, &err);
	if (ids == NULL)
		return err;
	/* A key that names no node id drains nothing (the controller counts it as bad). */
	for (uint32_t i = 0; i < r.count; i++)
		*count_out += cluster_drain_decode(&r.kvs[i], cluster, &ids[*count_out]) == 0;
	etcd_range_free(&r);
	*ids_out = ids;
	return 0;
}

/* Puts drains/<id> if nodes/<id> is registered (-ENOENT: not); one already there is kept. */
static int
drain_put(struct etcd_client *client, const char *node_key, const char *drain_key)
{
	struct etcd_compare c[2] = {
		{ .key = node_key, .target = ETCD_TARGET_VERSION, .result = ETCD_GREATER },
		{ .key = drain_key, .target = ETCD_TARGET_VERSION, .result = ETCD_EQUAL },
	};
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = drain_key };
	char value[48];
	bool succeeded = false;
	struct etcd_range r;
	int err;

	put.value = value;
	put.value_size = (size_t)snprintf(value, sizeof(value), "{\"since_ms\":%llu}",
					  (unsigned long long)(clock_real_ns() / 1000000u));
	/* No lease: the intent stays until undrained, whatever the node does meanwhile. */
	err = etcd_txn(client, c, 2, &put, 1, NULL, 0, &succeeded, NULL);
	if (err != 0 || succeeded)
		return err;
	err = etcd_get(client, drain_key, false, 0, &r);
	if (err != 0)
		return err;
	err = r.count == 1 ? 0 : -ENOENT;   /* Drained already, or the node is not registered. */
	etcd_range_free(&r);
	return err;
}

int
cluster_registration_drain(struct etcd_client *client, const char *cluster, uint32_t id,
			   bool draining)
{
	char node_key[CLUSTER_KEY_SIZE];
	char drain_key[CLUSTER_KEY_SIZE];
	struct cluster_registration node;
	struct etcd_range r;
	int64_t deleted = 0;
	int undo;
	int err;

	if (id == 0 || id > CLUSTER_NODE_ID_MAX)
		return -EINVAL;
	snprintf(node_key, sizeof(node_key), "/sluice/%s/nodes/%u", cluster, id);
	snprintf(drain_key, sizeof(drain_key), "/sluice/%s/drains/%u", cluster, id);
	err = etcd_get(client, node_key, false, 0, &r);
	if (err != 0)
		return err;
	err = r.count == 1 ? cluster_registration_decode(&r.kvs[0], cluster, &node) : -ENOENT;
	etcd_range_free(&r);
	if (draining)
		return err != 0 ? err : drain_put(client, node_key, drain_key);
	/* Undrain works for any id with an intent: the node may be down for good. */
	undo = etcd_delete(client, drain_key, false, &deleted);
	if (undo != 0)
		return undo;
	/* Nothing to undo is fine for a registered node (as a drain twice is). */
	return deleted > 0 || err != -ENOENT ? 0 : -ENOENT;
}
