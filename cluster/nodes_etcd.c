/*
 * nodes_etcd.c - node registrations in etcd (cluster.h, docs/CLUSTER.md):
 * the one encoding of a nodes/<id> key, read by the controller, written by
 * the node itself (membership.c) and by an operator's drain (the CLI).
 *
 *   /sluice/<cluster>/nodes/<id>   {"addr","api_addr","dp_addr","draining"}, under the node's lease
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "cluster/cluster_int.h"

char *
cluster_registration_encode(const struct cluster_registration *n)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, "addr", n->addr) != NULL &&
	    cJSON_AddStringToObject(o, "api_addr", n->api_addr) != NULL &&
	    cJSON_AddStringToObject(o, "dp_addr", n->dp_addr) != NULL &&
	    cJSON_AddBoolToObject(o, "draining", n->draining) != NULL)
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
	out->draining = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "draining"));
	cJSON_Delete(o);
	return 0;
}

int
cluster_registrations_read(struct etcd_client *client, const char *cluster,
			   struct cluster_registration **nodes_out, uint32_t *count_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	struct cluster_registration *nodes;
	struct etcd_range r;
	int err;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/nodes/", cluster);
	err = etcd_get(client, prefix, true, 0, &r);
	if (err != 0)
		return err;
	nodes = calloc(r.count > 0 ? r.count : 1, sizeof(*nodes));
	*count_out = 0;
	if (nodes == NULL) {
		etcd_range_free(&r);
		return -ENOMEM;
	}
	/* An id that is not a number is not a node at all; a bad value is a node, marked. */
	for (uint32_t i = 0; i < r.count; i++)
		if (cluster_registration_decode(&r.kvs[i], cluster, &nodes[*count_out]) != -EINVAL)
			(*count_out)++;
	etcd_range_free(&r);
	*nodes_out = nodes;
	return 0;
}

int
cluster_registration_drain(struct etcd_client *client, const char *cluster, uint32_t id,
			   bool draining)
{
	char key[CLUSTER_KEY_SIZE];
	struct cluster_registration node;
	struct etcd_compare same = { .key = key, .target = ETCD_TARGET_MOD, .result = ETCD_EQUAL };
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = key };
	struct etcd_range r;
	bool succeeded = false;
	char *text;
	int err;

	snprintf(key, sizeof(key), "/sluice/%s/nodes/%u", cluster, id);
	err = etcd_get(client, key, false, 0, &r);
	if (err != 0)
		return err;
	err = r.count == 1 ? cluster_registration_decode(&r.kvs[0], cluster, &node) : -ENOENT;
	etcd_range_free(&r);
	if (err != 0)
		return err;
	node.draining = draining;
	text = cluster_registration_encode(&node);
	if (text == NULL)
		return -ENOMEM;
	/* Same lease (the key still goes with the node), and only over the value we read. */
	same.number = node.mod_revision;
	put.value = text;
	put.value_size = strlen(text);
	put.lease = node.lease;
	err = etcd_txn(client, &same, 1, &put, 1, NULL, 0, &succeeded, NULL);
	free(text);
	return err == 0 && !succeeded ? -ESTALE : err;
}
