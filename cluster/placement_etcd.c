/*
 * placement_etcd.c - shard placements in etcd (cluster.h, docs/CLUSTER.md):
 * one key per shard, JSON values, written by the controller in fenced
 * transactions.
 *
 *   /sluice/<cluster>/placement/<stream>/shardId-<12 digits>
 *     {"leader":2,"epoch":7,"replicas":[2,3,1],"isr":[2,3],"controller_epoch":41,
 *      "stream_id":12}
 *
 * "replicas" lists the target replicas first, then any the shard is
 * leaving (placement.c); a replica outside "isr" is catching up.
 * The shard's leader changes "isr" by compare-and-swap; a placed leader that
 * cannot lead sets "leader" to 0 and leaves "isr" the same way; a leader's write
 * to another key compares this one (cluster_placement_lead_fence).
 * "stream_id" names the stream record it was placed for (absent: not known);
 * "unclean_epoch" (absent: none) the epoch an operator's unclean election began,
 * "refused_epoch" (absent: none) one whose placed leader refused to lead as the
 * only in-sync replica (docs/CLUSTER.md "Unclean election");
 * the controller deletes the keys of a deleted stream in its fenced
 * transactions and replaces those of an older stream of the same name.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "cluster/cluster_int.h"

/* The key of one shard's placement; -E2BIG when the names do not fit. */
int
cluster_key_shard(char *key, size_t size, const char *cluster, const char *stream, uint32_t shard)
{
	int n = snprintf(key, size, "/sluice/%s/placement/%s/shardId-%012u", cluster, stream, shard);

	return n > 0 && (size_t)n < size ? 0 : -E2BIG;
}

static cJSON *
ids_json(const uint32_t *ids, uint32_t count)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; a != NULL && i < count; i++) {
		if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]))) {
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

/* The value of a placement key (malloc'd string, NULL without memory). */
static char *
shard_json(const struct cluster_shard *s, int64_t controller_epoch)
{
	const struct placement_shard *p = &s->place;
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && cJSON_AddNumberToObject(o, "leader", p->leader) != NULL &&
	    cJSON_AddNumberToObject(o, "epoch", (double)p->leader_epoch) != NULL &&
	    cJSON_AddItemToObject(o, "replicas", ids_json(p->replicas, p->replica_count)) &&
	    cJSON_AddItemToObject(o, "isr", ids_json(p->isr, p->isr_count)) &&
	    cJSON_AddNumberToObject(o, "controller_epoch", (double)controller_epoch) != NULL &&
	    (s->stream_id == 0 || cJSON_AddNumberToObject(o, "stream_id", s->stream_id) != NULL) &&
	    (s->unclean_epoch == 0 ||
	     cJSON_AddNumberToObject(o, "unclean_epoch", (double)s->unclean_epoch) != NULL) &&
	    (s->refused_epoch == 0 ||
	     cJSON_AddNumberToObject(o, "refused_epoch", (double)s->refused_epoch) != NULL))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* The largest whole number a JSON (double) number holds exactly: 2^53. */
#define JSON_INT_MAX 9007199254740992.0

/* A JSON number that must be a whole number in [0, max]. */
static bool
json_uint(const cJSON *v, double max, double *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = v->valuedouble;
	return true;
}

static bool
ids_read(const cJSON *a, uint32_t *ids, uint32_t *count)
{
	const cJSON *v;
	double d;

	*count = 0;
	if (!cJSON_IsArray(a))
		return false;
	cJSON_ArrayForEach(v, a) {
		if (*count == CLUSTER_REPLICA_SET_MAX || !json_uint(v, UINT32_MAX, &d) || d == 0)
			return false;
		ids[(*count)++] = (uint32_t)d;
	}
	return true;
}

/* An optional whole number in [0, max] (absent: 0). */
static bool
json_uint_opt(const cJSON *o, const char *name, double max, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = 0;
	return v == NULL || json_uint(v, max, out);
}

/*
 * A parsed placement value into s (place, stream_id, the epochs marked); -EPROTO for
 * anything but the shape above.
 */
static int
shard_json_read(const cJSON *o, struct cluster_shard *s)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "stream_id");
	struct placement_shard *p = &s->place;
	double leader;
	double epoch;
	double stream_id = 0;
	double unclean;
	double refused;
	bool ok;

	memset(p, 0, sizeof(*p));
	ok = o != NULL && json_uint(cJSON_GetObjectItemCaseSensitive(o, "leader"), UINT32_MAX, &leader) &&
	     json_uint(cJSON_GetObjectItemCaseSensitive(o, "epoch"), JSON_INT_MAX, &epoch) &&
	     ids_read(cJSON_GetObjectItemCaseSensitive(o, "replicas"), p->replicas, &p->replica_count) &&
	     ids_read(cJSON_GetObjectItemCaseSensitive(o, "isr"), p->isr, &p->isr_count) &&
	     (id == NULL || json_uint(id, UINT32_MAX, &stream_id)) &&
	     json_uint_opt(o, "unclean_epoch", JSON_INT_MAX, &unclean) &&
	     json_uint_opt(o, "refused_epoch", JSON_INT_MAX, &refused);
	if (!ok)
		return -EPROTO;
	p->leader = (uint32_t)leader;
	p->leader_epoch = (int64_t)epoch;
	s->stream_id = (uint32_t)stream_id;
	s->unclean_epoch = (int64_t)unclean;
	s->refused_epoch = (int64_t)refused;
	return 0;
}

/* A placement value into s, as shard_json_read. */
static int
shard_read(const uint8_t *value, size_t size, struct cluster_shard *s)
{
	cJSON *o = cJSON_ParseWithLength((const char *)value, size);
	int err = shard_json_read(o, s);

	cJSON_Delete(o);
	return err;
}

/* "<stream>/shardId-<12 digits>" after the prefix into s; false for another shape. */
static bool
shard_name_read(const char *rest, struct cluster_shard *s)
{
	const char *slash = strrchr(rest, '/');
	char *end;
	unsigned long n;

	if (slash == NULL || slash == rest || (size_t)(slash - rest) >= sizeof(s->stream) ||
	    strncmp(slash + 1, "shardId-", 8) != 0)
		return false;
	/* Only the name cluster_key_shard makes: the controller's writes compare this very key. */
	n = strtoul(slash + 9, &end, 10);
	if (*end != '\0' || n > UINT32_MAX || strlen(slash + 9) != 12)
		return false;
	memcpy(s->stream, rest, (size_t)(slash - rest));
	s->stream[slash - rest] = '\0';
	s->shard = (uint32_t)n;
	return true;
}

int
cluster_placements_from(const struct etcd_range *r, const char *cluster,
			struct cluster_shard **shards_out, uint32_t *count_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	struct cluster_shard *shards;
	size_t prefix_size;

	*shards_out = NULL;
	*count_out = 0;
	if (snprintf(prefix, sizeof(prefix), "/sluice/%s/placement/", cluster) >= (int)sizeof(prefix))
		return -E2BIG;
	prefix_size = strlen(prefix);
	shards = calloc(r->count > 0 ? r->count : 1, sizeof(*shards));
	if (shards == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->count; i++) {
		struct cluster_shard *s = &shards[*count_out];

		if (strncmp(r->kvs[i].key, prefix, prefix_size) != 0)
			continue;
		if (!shard_name_read(r->kvs[i].key + prefix_size, s) ||
		    shard_read(r->kvs[i].value, r->kvs[i].value_size, s) != 0) {
			memset(&s->place, 0, sizeof(s->place));
			s->stream_id = 0;
			s->unclean_epoch = s->refused_epoch = 0;
			s->malformed = true;
		}
		s->mod_revision = r->kvs[i].mod_revision;
		(*count_out)++;
	}
	*shards_out = shards;
	return 0;
}

int
cluster_placement_read(struct etcd_client *client, const char *cluster,
		       struct cluster_shard **shards_out, uint32_t *count_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	struct etcd_range r;
	int err;

	*shards_out = NULL;
	*count_out = 0;
	if (snprintf(prefix, sizeof(prefix), "/sluice/%s/placement/", cluster) >= (int)sizeof(prefix))
		return -E2BIG;
	err = etcd_get(client, prefix, true, 0, &r);
	if (err != 0)
		return err;
	err = cluster_placements_from(&r, cluster, shards_out, count_out);
	etcd_range_free(&r);
	return err;
}

/* The ops' keys and values, freed together. */
struct txn_text {
	char keys[ETCD_TXN_OPS_MAX][CLUSTER_KEY_SIZE];
	char *values[ETCD_TXN_OPS_MAX];
	struct etcd_compare compares[ETCD_TXN_OPS_MAX];
	struct etcd_op ops[ETCD_TXN_OPS_MAX];
};

static void
txn_text_free(struct txn_text *t, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		free(t->values[i]);
	free(t);
}

int
cluster_placement_write(struct etcd_client *client, const char *cluster,
			const struct etcd_leader *controller, const struct cluster_shard *shards,
			uint32_t count)
{
	struct txn_text *t;
	bool succeeded = false;
	int err = 0;

	if (count > ETCD_TXN_OPS_MAX - 1)
		return -E2BIG;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	/* The fence: the controller's election key, as created when it won. */
	t->compares[0] = (struct etcd_compare){ .key = controller->key, .target = ETCD_TARGET_CREATE,
						.result = ETCD_EQUAL, .number = controller->rev };
	for (uint32_t i = 0; i < count && err == 0; i++) {
		err = cluster_key_shard(t->keys[i], sizeof(t->keys[i]), cluster, shards[i].stream,
					shards[i].shard);
		t->values[i] = err == 0 && !shards[i].remove ?
			       shard_json(&shards[i], controller->rev) : NULL;
		if (err == 0 && !shards[i].remove && t->values[i] == NULL)
			err = -ENOMEM;
		/* Unchanged since read (0: still absent): a leader's in-sync update is not lost. */
		t->compares[i + 1] = (struct etcd_compare){ .key = t->keys[i], .target = ETCD_TARGET_MOD,
							    .result = ETCD_EQUAL,
							    .number = shards[i].mod_revision };
		t->ops[i] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = t->keys[i],
					      .value = t->values[i],
					      .value_size = t->values[i] ? strlen(t->values[i]) : 0 };
		if (shards[i].remove)
			t->ops[i].kind = ETCD_OP_DELETE;   /* Stream or shard gone. */
	}
	if (err == 0)
		err = etcd_txn(client, t->compares, count + 1, t->ops, count, NULL, 0, &succeeded, NULL);
	if (err == 0 && !succeeded)
		err = -ESTALE;
	txn_text_free(t, count);
	return err;
}

/*
 * A change of one stored placement value (cJSON object): 0, 1 (no change: nothing
 * is written, the call answers 0), or an error (nothing is written). It may fill
 * `fence` (its key empty: none), a second compare of the transaction.
 */
typedef int placement_edit_fn(cJSON *value, const void *arg, struct cluster_fence *fence);

/*
 * Reads the shard's key, edits its value, puts it only if the key still has
 * `mod_revision` (CLUSTER_REVISION_READ: the one read) (a compare-and-swap: a
 * controller's write or another leader's meanwhile wins, and the caller reads again).
 */
static int
placement_cas(struct etcd_client *client, const char *cluster, const char *stream,
	      uint32_t shard, int64_t mod_revision, placement_edit_fn *edit, const void *arg)
{
	char key[CLUSTER_KEY_SIZE];
	struct cluster_fence fence = { .key = "" };
	struct etcd_range r;
	cJSON *o = NULL;
	char *text = NULL;
	bool succeeded = false;
	int err = cluster_key_shard(key, sizeof(key), cluster, stream, shard);

	if (err != 0)
		return err;
	err = etcd_get(client, key, false, 0, &r);
	if (err != 0)
		return err;
	if (r.count == 1 && mod_revision == CLUSTER_REVISION_READ)
		mod_revision = r.kvs[0].mod_revision;
	if (r.count != 1)
		err = -ENOENT;
	else if (r.kvs[0].mod_revision != mod_revision)
		err = -ESTALE;
	else if (!cJSON_IsObject(o = cJSON_ParseWithLength((const char *)r.kvs[0].value,
							   r.kvs[0].value_size)))
		err = -EPROTO;
	etcd_range_free(&r);
	if (err == 0)
		err = edit(o, arg, &fence);
	if (err == 0 && (text = cJSON_PrintUnformatted(o)) == NULL)
		err = -ENOMEM;
	if (err == 0) {
		struct etcd_compare c[2] = {
			{ .key = key, .target = ETCD_TARGET_MOD, .result = ETCD_EQUAL,
			  .number = mod_revision },
			fence.compare,
		};
		struct etcd_op put = { .kind = ETCD_OP_PUT, .key = key, .value = text,
				       .value_size = strlen(text) };

		c[1].key = fence.key;
		err = etcd_txn(client, c, fence.key[0] != '\0' ? 2 : 1, &put, 1, NULL, 0,
			       &succeeded, NULL);
		if (err == 0 && !succeeded)
			err = -ESTALE;
	}
	free(text);
	cJSON_Delete(o);
	return err == 1 ? 0 : err;
}

/* "isr" replaced by ids[0 .. count). */
struct isr_set {
	const uint32_t *ids;
	uint32_t count;
};

static int
edit_isr(cJSON *o, const void *arg, struct cluster_fence *fence)
{
	const struct isr_set *set = arg;
	cJSON *ids = ids_json(set->ids, set->count);

	if (ids == NULL)
		return -ENOMEM;
	(void)fence;
	if (!cJSON_ReplaceItemInObjectCaseSensitive(o, "isr", ids)) {
		cJSON_Delete(ids);  /* Not taken: no "isr" member to replace. */
		return -EPROTO;
	}
	return 0;
}

/* Member `name` set to the number `v`, replaced or added. */
static int
json_set(cJSON *o, const char *name, double v)
{
	cJSON *n = cJSON_CreateNumber(v);

	if (n == NULL)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(o, name) == NULL ?
	    !cJSON_AddItemToObject(o, name, n) : !cJSON_ReplaceItemInObjectCaseSensitive(o, name, n)) {
		cJSON_Delete(n);
		return -ENOMEM;
	}
	return 0;
}

/* The shard leader's in-sync update (cluster.h). */
int
cluster_placement_isr_write(struct etcd_client *client, const char *cluster, const char *stream,
			    uint32_t shard, int64_t mod_revision, const uint32_t *isr,
			    uint32_t isr_count)
{
	struct isr_set set = { .ids = isr, .count = isr_count };

	if (isr_count > CLUSTER_REPLICA_SET_MAX)
		return -EINVAL;
	return placement_cas(client, cluster, stream, shard, mod_revision, edit_isr, &set);
}

/*
 * The placed leader steps down: "leader" 0 (a leader outside "isr" is a placement
 * the controller refuses to compute from) and itself out of "isr", unless nobody
 * else is in it. "epoch" stays: the controller's next leader takes epoch + 1.
 */
static int
edit_resign(cJSON *o, const void *arg, struct cluster_fence *fence)
{
	uint32_t node_id = *(const uint32_t *)arg;
	struct cluster_shard s;
	uint32_t isr[CLUSTER_REPLICA_SET_MAX];
	uint32_t count = 0;
	struct isr_set set = { .ids = isr };
	int err = shard_json_read(o, &s);

	if (err != 0)
		return err;
	if (s.place.leader != node_id)
		return -EPERM;
	for (uint32_t i = 0; i < s.place.isr_count; i++)
		if (s.place.isr[i] != node_id)
			isr[count++] = s.place.isr[i];
	if (count == 0)
		return -EBUSY;
	set.count = count;
	err = edit_isr(o, &set, fence);
	return err != 0 ? err : json_set(o, "leader", 0);
}

int
cluster_placement_resign(struct etcd_client *client, const char *cluster, const char *stream,
			 uint32_t shard, int64_t mod_revision, uint32_t node_id)
{
	return placement_cas(client, cluster, stream, shard, mod_revision, edit_resign, &node_id);
}

/* The placed leader marks its refusal in its epoch (once). */
static int
edit_refused(cJSON *o, const void *arg, struct cluster_fence *fence)
{
	uint32_t node_id = *(const uint32_t *)arg;
	struct cluster_shard s;
	int err = shard_json_read(o, &s);

	(void)fence;
	if (err != 0)
		return err;
	if (s.place.leader != node_id)
		return -EPERM;
	if (s.refused_epoch == s.place.leader_epoch)
		return 1;
	return json_set(o, "refused_epoch", (double)s.place.leader_epoch);
}

int
cluster_placement_refused(struct etcd_client *client, const char *cluster, const char *stream,
			  uint32_t shard, int64_t mod_revision, uint32_t node_id)
{
	return placement_cas(client, cluster, stream, shard, mod_revision, edit_refused, &node_id);
}

/* An unclean election's inputs and what it wrote. */
struct elect {
	const char *cluster;
	const struct cluster_registration *nodes;  /* The live ones: registered. */
	uint32_t node_count;
	uint32_t node_id;                          /* Asked for; 0: chosen. */
	struct cluster_shard *out;
};

static int
edit_elect(cJSON *o, const void *arg, struct cluster_fence *fence)
{
	const struct elect *e = arg;
	uint32_t live[CLUSTER_NODES_MAX];
	uint32_t live_count = 0;
	struct isr_set set = { .count = 1 };
	struct cluster_shard s;
	struct placement_shard next;
	const struct cluster_registration *node = NULL;
	int err = shard_json_read(o, &s);

	if (err != 0)
		return err;
	for (uint32_t i = 0; i < e->node_count && live_count < CLUSTER_NODES_MAX; i++)
		if (!e->nodes[i].malformed)
			live[live_count++] = e->nodes[i].id;
	err = placement_unclean(&s.place, s.place.leader != 0 &&
				s.refused_epoch == s.place.leader_epoch, live, live_count,
				e->node_id, &next);
	if (err != 0)
		return err;
	for (uint32_t i = 0; i < e->node_count && node == NULL; i++)
		if (e->nodes[i].id == next.leader)
			node = &e->nodes[i];
	assert(node != NULL);  /* placement_unclean elects a live node. */
	/* The elected node still registered, unchanged, when the key is written: live. */
	snprintf(fence->key, sizeof(fence->key), "/sluice/%s/nodes/%u", e->cluster, node->id);
	fence->compare = (struct etcd_compare){ .target = ETCD_TARGET_MOD, .result = ETCD_EQUAL,
						.number = node->mod_revision };
	set.ids = &next.leader;
	err = edit_isr(o, &set, fence);
	if (err == 0)
		err = json_set(o, "leader", next.leader);
	if (err == 0)
		err = json_set(o, "epoch", (double)next.leader_epoch);
	if (err == 0)
		err = json_set(o, "unclean_epoch", (double)next.leader_epoch);
	if (err == 0) {
		*e->out = s;
		e->out->place = next;
		e->out->unclean_epoch = next.leader_epoch;
	}
	return err;
}

int
cluster_placement_elect(struct etcd_client *client, const char *cluster, const char *stream,
			uint32_t shard, int64_t mod_revision, uint32_t node_id,
			struct cluster_shard *out)
{
	struct elect e = { .cluster = cluster, .node_id = node_id, .out = out };
	struct cluster_registration *nodes;
	int err = cluster_registrations_read(client, cluster, &nodes, &e.node_count);

	if (err != 0)
		return err;
	e.nodes = nodes;
	memset(out, 0, sizeof(*out));
	err = placement_cas(client, cluster, stream, shard, mod_revision, edit_elect, &e);
	if (err == 0) {
		snprintf(out->stream, sizeof(out->stream), "%s", stream);
		out->shard = shard;
	}
	free(nodes);
	return err;
}

int
cluster_placement_lead_fence(struct etcd_client *client, const char *cluster,
			     const char *stream, uint32_t shard, uint32_t stream_id,
			     uint32_t node_id, int64_t epoch, struct cluster_fence *out)
{
	struct cluster_shard s;
	struct etcd_range r;
	int err = cluster_key_shard(out->key, sizeof(out->key), cluster, stream, shard);

	if (err != 0)
		return err;
	err = etcd_get(client, out->key, false, 0, &r);
	if (err != 0)
		return err;
	if (r.count != 1)
		err = -ESTALE;   /* No placement: nobody leads it, this node neither. */
	else
		err = shard_read(r.kvs[0].value, r.kvs[0].value_size, &s);
	if (err == 0 && (s.place.leader != node_id || s.place.leader_epoch != epoch ||
			 (s.stream_id != 0 && s.stream_id != stream_id)))
		err = -ESTALE;
	/* mod_revision, not the value: "isr" and "controller_epoch" move under a standing leader. */
	if (err == 0)
		out->compare = (struct etcd_compare){ .key = out->key, .target = ETCD_TARGET_MOD,
						      .result = ETCD_EQUAL,
						      .number = r.kvs[0].mod_revision };
	etcd_range_free(&r);
	return err;
}
