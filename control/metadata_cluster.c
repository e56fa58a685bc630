/*
 * metadata_cluster.c - cluster mode's metadata (metadata.h "Cluster mode"): etcd
 * holds streams and consumers (cluster/streams.c); this node's SQLite is the
 * cache every other part of sluiced reads. The apply side runs on its own thread
 * with its own SQLite handle; the write side runs on the caller's thread with its
 * own etcd client and waits for the apply side to reach its revision.
 *
 * Applying is a diff: a stream record from etcd is compared with what SQLite holds
 * under that name (a fresh load each batch), and only what differs is written,
 * through metadata.h's functions, so each write publishes its usual change event.
 * A stream whose id or incarnation differs was deleted and recreated meanwhile: the
 * old one is deleted first (its log data goes through pending_deletes as usual).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "cluster/cluster.h"
#include "common/diag.h"
#include "common/limits.h"
#include "control/metadata.h"

/* Every etcd call of the write side and the full read. */
#define MC_ETCD_TIMEOUT_MS 5000u
/* The watch's wait per pass: how soon the thread sees its stop flag. */
#define MC_WATCH_POLL_MS 200u
/* A failed apply or read is retried at this pace. */
#define MC_RETRY_MS 200u
/* /sluice/<cluster>/consumers/<stream>/<name> fits (cluster/'s own keys are private to it). */
#define MC_PREFIX_SIZE (CLUSTER_NAME_SIZE + 16)
#define MC_KEY_SIZE (MC_PREFIX_SIZE + 2 * CLUSTER_STREAM_NAME_SIZE + 16)
/* account/<key>: the integers of one account setting (UpdateAccountSettings: 4). */
#define MC_ACCOUNT_VALUES_MAX 8u
#define MC_ACCOUNT_KEY_SIZE 64u
/* Exact in a JSON number (a double): ms timestamps and small enums are far inside. */
#define MC_ACCOUNT_VALUE_ABS_MAX ((int64_t)1 << 53)
/* Tags listed per resource when diffing (Kinesis: 50 per stream or consumer). */
#define MC_TAGS_MAX CLUSTER_STREAM_TAGS_MAX

/* What SQLite holds of one stream, loaded before each apply. */
struct mc_stream {
	char name[CLUSTER_STREAM_NAME_SIZE];
	struct metadata_stream ms;   /* ms.name points at name. */
	uint32_t shard_first;        /* Its shards in view_shards[]. */
	uint32_t shards_loaded;
};

struct metadata_cluster {
	struct metadata *w;          /* The apply thread's handle. */
	char endpoints[ETCD_ENDPOINTS_MAX * 256];
	char cluster[CLUSTER_NAME_SIZE];
	char prefix[MC_PREFIX_SIZE];
	struct etcd_client *apply_client;
	struct etcd_client *write_client;
	pthread_mutex_t write_lock;  /* The write client is one caller's at a time. */
	struct etcd_watch *watch;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;

	struct mc_stream *view;      /* SLUICE_STREAMS_MAX, taken at start. */
	uint32_t view_count;
	struct metadata_shard *view_shards;   /* SLUICE_SHARDS_MAX */
	uint32_t view_shard_count;

	pthread_mutex_t lock;        /* Guards status; cond signals applied_revision. */
	pthread_cond_t applied_cond;
	struct metadata_cluster_status status;
};

/* ---- The local view ---------------------------------------------------------- */

static int
view_stream(void *arg, const struct metadata_stream *ms)
{
	struct metadata_cluster *mc = arg;
	struct mc_stream *v;

	if (mc->view_count == SLUICE_STREAMS_MAX)
		return -ENOSPC;
	v = &mc->view[mc->view_count++];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", ms->name);
	v->ms = *ms;
	v->ms.name = v->name;
	return 0;
}

static struct mc_stream *
view_by_id(struct metadata_cluster *mc, uint32_t id)
{
	for (uint32_t i = 0; i < mc->view_count; i++)
		if (mc->view[i].ms.stream_id == id)
			return &mc->view[i];
	return NULL;
}

static struct mc_stream *
view_by_name(struct metadata_cluster *mc, const char *name)
{
	for (uint32_t i = 0; i < mc->view_count; i++)
		if (strcmp(mc->view[i].name, name) == 0 && !mc->view[i].ms.deleting)
			return &mc->view[i];
	return NULL;
}

/* Shards arrive by stream, then index: each stream's are contiguous. */
static int
view_shard(void *arg, uint32_t stream_id, const struct metadata_shard *sh)
{
	struct metadata_cluster *mc = arg;
	struct mc_stream *v = view_by_id(mc, stream_id);

	if (v == NULL || mc->view_shard_count == SLUICE_SHARDS_MAX ||
	    sh->shard_index != v->shards_loaded)
		return -EIO;
	if (v->shards_loaded++ == 0)
		v->shard_first = mc->view_shard_count;
	mc->view_shards[mc->view_shard_count++] = *sh;
	return 0;
}

static int
view_load(struct metadata_cluster *mc)
{
	mc->view_count = 0;
	mc->view_shard_count = 0;
	return metadata_load(mc->w, view_stream, view_shard, mc);
}

/* ---- Applying one stream record ------------------------------------------------ */

static int
drop_stream(struct metadata_cluster *mc, struct mc_stream *v)
{
	int rc = v->ms.deleting ? 0 : metadata_stream_deleting(mc->w, v->ms.stream_id);

	if (rc == 0)
		rc = metadata_stream_delete(mc->w, v->ms.stream_id);
	v->ms.deleting = true;
	return rc;
}

static void
tags_view(const struct cluster_tag *tags, uint32_t count, struct metadata_tag *out)
{
	for (uint32_t i = 0; i < count; i++)
		out[i] = (struct metadata_tag){ .key = tags[i].key, .key_size = strlen(tags[i].key),
						.value = tags[i].value,
						.value_size = strlen(tags[i].value) };
}

/* Inserts the stream with every shard open; shard states and settings follow as a diff. */
static int
create_stream(struct metadata_cluster *mc, const struct cluster_stream *s)
{
	struct metadata_shard *shards = calloc(s->shard_count, sizeof(*shards));
	struct metadata_tag tags[MC_TAGS_MAX];
	struct metadata_stream ms = {
		.stream_id = s->stream_id, .incarnation = s->incarnation, .name = s->name,
		.mode = (enum metadata_mode)s->mode, .retention_hours = s->retention_hours,
		.created_ms = s->created_ms, .shard_count = s->shard_count,
		.shard_metrics = s->shard_metrics, .max_record_kib = s->max_record_kib,
	};
	int rc;

	if (shards == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->shard_count; i++)
		shards[i] = (struct metadata_shard){
			.shard_index = i, .start = s->shards[i].start, .end = s->shards[i].end,
			.parent = s->shards[i].parent,
			.adjacent_parent = s->shards[i].adjacent_parent,
			.created_s = s->shards[i].created_s,
		};
	tags_view(s->tags, s->tag_count, tags);
	rc = metadata_stream_create(mc->w, &ms, shards, tags, s->tag_count);
	free(shards);
	return rc;
}

static int
apply_settings(struct metadata_cluster *mc, const struct metadata_stream *have,
	       const struct cluster_stream *s)
{
	int rc = 0;

	if (have->retention_hours != s->retention_hours)
		rc = metadata_retention_set(mc->w, s->stream_id, s->retention_hours);
	if (rc == 0 && (uint32_t)have->mode != s->mode)
		rc = metadata_mode_set(mc->w, s->stream_id, (enum metadata_mode)s->mode);
	if (rc == 0 && have->shard_metrics != s->shard_metrics)
		rc = metadata_setting_set(mc->w, s->stream_id, METADATA_SHARD_METRICS,
					  s->shard_metrics);
	if (rc == 0 && have->max_record_kib != s->max_record_kib)
		rc = metadata_setting_set(mc->w, s->stream_id, METADATA_MAX_RECORD_KIB,
					  s->max_record_kib);
	if (rc == 0 && have->warm_mibps != s->warm_mibps)
		rc = metadata_setting_set(mc->w, s->stream_id, METADATA_WARM_MIBPS, s->warm_mibps);
	return rc;
}

/*
 * Shards, the order a reshard takes on a single node: the parents etcd has closing
 * (closed = 2) and the new indexes in ONE SQLite transaction (so the routes never hold
 * a parent and its children open together), then the cuts etcd recorded (closed = 1,
 * seq_end). A new index still closing (a node that was away) is added open and closed
 * = 2 in a second step; one etcd already recorded closed is added so.
 */
static int
apply_shards(struct metadata_cluster *mc, const struct mc_stream *v, const struct cluster_stream *s)
{
	const struct metadata_shard *have = &mc->view_shards[v->shard_first];
	uint32_t have_count = v->shards_loaded;
	struct metadata_shard *added = NULL;
	uint32_t *closing = calloc(s->shard_count, sizeof(*closing));
	uint32_t *closing_new = calloc(s->shard_count, sizeof(*closing_new));
	uint32_t added_count = s->shard_count > have_count ? s->shard_count - have_count : 0;
	uint32_t closing_count = 0;
	uint32_t closing_new_count = 0;
	int rc = closing != NULL && closing_new != NULL ? 0 : -ENOMEM;

	if (rc == 0 && added_count > 0) {
		added = calloc(added_count, sizeof(*added));
		rc = added != NULL ? 0 : -ENOMEM;
	}
	for (uint32_t i = 0; rc == 0 && i < added_count; i++) {
		const struct cluster_stream_shard *sh = &s->shards[have_count + i];
		bool recorded = sh->state == CLUSTER_SHARD_CLOSED;

		added[i] = (struct metadata_shard){ .shard_index = sh->index, .start = sh->start,
						    .end = sh->end, .parent = sh->parent,
						    .adjacent_parent = sh->adjacent_parent,
						    .created_s = sh->created_s, .closed = recorded,
						    .seq_end = recorded ? sh->seq_end : UINT64_MAX };
		if (sh->state == CLUSTER_SHARD_CLOSING)
			closing_new[closing_new_count++] = sh->index;
	}
	for (uint32_t i = 0; rc == 0 && i < have_count && i < s->shard_count; i++)
		if (s->shards[i].state != CLUSTER_SHARD_OPEN && !have[i].closed)
			closing[closing_count++] = i;
	if (rc == 0 && (added_count > 0 || closing_count > 0))
		rc = metadata_reshard(mc->w, s->stream_id, closing, closing_count, added,
				      added_count, s->shard_count);
	if (rc == 0 && closing_new_count > 0)
		rc = metadata_reshard(mc->w, s->stream_id, closing_new, closing_new_count, NULL, 0,
				      s->shard_count);
	for (uint32_t i = 0; rc == 0 && i < have_count && i < s->shard_count; i++) {
		bool recorded = have[i].closed && !have[i].closing &&
				have[i].seq_end == s->shards[i].seq_end;

		if (s->shards[i].state == CLUSTER_SHARD_CLOSED && !recorded)
			rc = metadata_shard_closed(mc->w, s->stream_id, i, s->shards[i].seq_end);
	}
	free(added);
	free(closing);
	free(closing_new);
	return rc;
}

struct mc_tags {
	char keys[MC_TAGS_MAX][256 + 1];
	char values[MC_TAGS_MAX][256 + 1];
	uint32_t count;
};

static void
tags_collect(void *arg, const struct metadata_tag *tag)
{
	struct mc_tags *t = arg;

	if (t->count == MC_TAGS_MAX || tag->key_size > 256 || tag->value_size > 256)
		return;
	memcpy(t->keys[t->count], tag->key, tag->key_size);
	t->keys[t->count][tag->key_size] = '\0';
	memcpy(t->values[t->count], tag->value, tag->value_size);
	t->values[t->count][tag->value_size] = '\0';
	t->count++;
}

/* A resource's tags made equal to etcd's: removes what etcd lacks, puts what differs. */
static int
apply_tags(struct metadata_cluster *mc, uint32_t id, const char *resource,
	   const struct cluster_tag *tags, uint32_t count)
{
	struct mc_tags *have = calloc(1, sizeof(*have));
	struct metadata_tag *change = calloc(MC_TAGS_MAX, sizeof(*change));
	uint32_t n = 0;
	bool more = false;
	int rc = have != NULL && change != NULL ? 0 : -ENOMEM;

	if (rc == 0)
		rc = metadata_tags_list(mc->w, id, resource, NULL, 0, MC_TAGS_MAX, tags_collect,
					have, &more);
	for (uint32_t i = 0; rc == 0 && i < have->count; i++) {
		bool keep = false;

		for (uint32_t j = 0; j < count && !keep; j++)
			keep = strcmp(tags[j].key, have->keys[i]) == 0;
		if (!keep)
			change[n++] = (struct metadata_tag){ .key = have->keys[i],
							     .key_size = strlen(have->keys[i]) };
	}
	if (rc == 0 && n > 0)
		rc = metadata_tags_remove(mc->w, id, resource, change, n);
	n = 0;
	for (uint32_t j = 0; rc == 0 && j < count; j++) {
		bool same = false;

		for (uint32_t i = 0; i < have->count && !same; i++)
			same = strcmp(tags[j].key, have->keys[i]) == 0 &&
			       strcmp(tags[j].value, have->values[i]) == 0;
		if (!same)
			tags_view(&tags[j], 1, &change[n++]);
	}
	if (rc == 0 && n > 0)
		rc = metadata_tags_put(mc->w, id, resource, change, n, UINT32_MAX);
	free(have);
	free(change);
	return rc;
}

static int
apply_policy(struct metadata_cluster *mc, uint32_t id, const char *resource, const char *policy)
{
	size_t cap = CLUSTER_STREAM_VALUE_SIZE_MAX + 1;
	char *have = malloc(cap);
	size_t size = 0;
	int rc = have != NULL ? metadata_policy_get(mc->w, id, resource, have, cap, &size) :
		 -ENOMEM;

	if (rc == -ENOENT && policy != NULL)
		rc = metadata_policy_put(mc->w, id, resource, policy, strlen(policy));
	else if (rc == 0 && policy == NULL)
		rc = metadata_policy_delete(mc->w, id, resource);
	else if (rc == 0 && (size != strlen(policy) || memcmp(have, policy, size) != 0))
		rc = metadata_policy_put(mc->w, id, resource, policy, strlen(policy));
	else if (rc == -ENOENT)
		rc = 0;
	free(have);
	return rc;
}

struct mc_encryption {
	uint32_t stream_id;
	bool found;
	bool same;
	const struct cluster_stream *s;
};

static int
encryption_find(void *arg, uint32_t stream_id, const char *key_ref, const char *key_name)
{
	struct mc_encryption *e = arg;

	if (stream_id != e->stream_id)
		return 0;
	e->found = true;
	e->same = e->s->key_ref != NULL && strcmp(key_ref, e->s->key_ref) == 0 &&
		  strcmp(key_name, e->s->key_name) == 0;
	return 0;
}

/* The stream's encryption made equal to the record's (a reference: no key material). */
static int
apply_encryption(struct metadata_cluster *mc, const struct cluster_stream *s)
{
	struct mc_encryption e = { .stream_id = s->stream_id, .s = s };
	int rc = metadata_encryption_list(mc->w, encryption_find, &e);

	if (rc != 0 || (e.found ? e.same : s->key_ref == NULL))
		return rc;
	return metadata_encryption_set(mc->w, s->stream_id, s->key_ref, s->key_name);
}

/* Makes SQLite hold `s` as etcd does (the view loaded). */
static int
apply_stream(struct metadata_cluster *mc, const struct cluster_stream *s)
{
	struct mc_stream *v = view_by_name(mc, s->name);
	int rc = 0;

	if (v != NULL && (v->ms.stream_id != s->stream_id || v->ms.incarnation != s->incarnation)) {
		rc = drop_stream(mc, v);   /* Deleted and created again while we were away. */
		v = NULL;
	}
	if (rc == 0 && v == NULL) {
		rc = create_stream(mc, s);
		if (rc == 0)
			rc = view_load(mc);
		v = rc == 0 ? view_by_name(mc, s->name) : NULL;
		if (rc == 0 && v == NULL)
			rc = -EIO;
	}
	if (rc == 0)
		rc = apply_settings(mc, &v->ms, s);
	if (rc == 0)
		rc = apply_shards(mc, v, s);
	if (rc == 0)
		rc = apply_tags(mc, s->stream_id, "", s->tags, s->tag_count);
	if (rc == 0)
		rc = apply_policy(mc, s->stream_id, "", s->policy);
	if (rc == 0)
		rc = apply_encryption(mc, s);
	return rc;
}

/* ---- Consumers ------------------------------------------------------------------- */

struct mc_consumer_find {
	uint32_t stream_id;
	const char *name;
	bool found;
};

static int
consumer_find(void *arg, uint32_t stream_id, const char *name, size_t name_size,
	      uint64_t created_ms)
{
	struct mc_consumer_find *f = arg;

	(void)created_ms;
	if (stream_id == f->stream_id && strlen(f->name) == name_size &&
	    memcmp(name, f->name, name_size) == 0)
		f->found = true;
	return 0;
}

static int
apply_consumer(struct metadata_cluster *mc, const struct cluster_consumer *c)
{
	struct mc_stream *v = view_by_name(mc, c->stream);
	struct mc_consumer_find f = { .stream_id = c->stream_id, .name = c->name };
	struct metadata_tag tags[MC_TAGS_MAX];
	int rc;

	/* Of a stream this cache does not hold (yet, or any more): its stream's key decides. */
	if (v == NULL || v->ms.stream_id != c->stream_id)
		return 0;
	rc = metadata_consumers_load(mc->w, consumer_find, &f);
	if (rc == 0 && !f.found) {
		tags_view(c->tags, c->tag_count, tags);
		rc = metadata_consumer_add(mc->w, c->stream_id, c->name, strlen(c->name),
					   c->created_ms, tags, c->tag_count);
	} else if (rc == 0) {
		rc = apply_tags(mc, c->stream_id, c->name, c->tags, c->tag_count);
	}
	if (rc == 0)
		rc = apply_policy(mc, c->stream_id, c->name, c->policy);
	return rc;
}

static int
remove_consumer(struct metadata_cluster *mc, uint32_t stream_id, const char *name)
{
	int rc = metadata_consumer_remove(mc->w, stream_id, name, strlen(name));

	if (rc == 0 || rc == -ENOENT)
		rc = metadata_policy_delete(mc->w, stream_id, name);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- Account settings ------------------------------------------------------------------ */

/*
 * account/<key> = a JSON array of integers (metadata_account_set's values), applied to
 * the cache's meta table. Kept by this file, as iterator_secret is: cluster/'s records
 * are streams and consumers. 1: not an account key; -EPROTO: unreadable.
 */
static int
apply_account(struct metadata_cluster *mc, const struct etcd_kv *kv, bool deleted)
{
	const char *name = kv->key + strlen(mc->prefix);
	int64_t values[MC_ACCOUNT_VALUES_MAX];
	const cJSON *item;
	const cJSON *list;
	cJSON *json;
	size_t count = 0;
	int rc = 0;

	if (strncmp(kv->key, mc->prefix, strlen(mc->prefix)) != 0 ||
	    strncmp(name, "account/", 8) != 0)
		return 1;
	name += 8;
	/* Never deleted by sluiced: a delete made by hand leaves the cache as it is. */
	if (deleted)
		return 0;
	json = cJSON_ParseWithLength((const char *)kv->value, kv->value_size);
	if (!cJSON_IsArray(json) || strlen(name) >= MC_ACCOUNT_KEY_SIZE ||
	    cJSON_GetArraySize(json) > (int)MC_ACCOUNT_VALUES_MAX)
		rc = -EPROTO;
	list = rc == 0 ? json : NULL;
	cJSON_ArrayForEach(item, list) {
		double v = cJSON_IsNumber(item) ? item->valuedouble : 0.5;

		/* In range first (NaN is not): only then is the cast to an integer defined. */
		if (!(v <= (double)MC_ACCOUNT_VALUE_ABS_MAX &&
		      v >= -(double)MC_ACCOUNT_VALUE_ABS_MAX) || v != (double)(int64_t)v) {
			rc = -EPROTO;
			break;
		}
		values[count++] = (int64_t)v;
	}
	cJSON_Delete(json);
	return rc == 0 ? metadata_account_set(mc->w, name, values, count) : rc;
}

/* ---- Keys, full reads, the watch ---------------------------------------------------- */

static void
count_status(struct metadata_cluster *mc, uint64_t applied, uint64_t bad, int err)
{
	pthread_mutex_lock(&mc->lock);
	mc->status.applied += applied;
	mc->status.bad_keys += bad;
	if (err != 0)
		mc->status.last_error = err;
	pthread_mutex_unlock(&mc->lock);
}

static void
applied_set(struct metadata_cluster *mc, int64_t revision)
{
	pthread_mutex_lock(&mc->lock);
	if (revision > mc->status.applied_revision)
		mc->status.applied_revision = revision;
	pthread_cond_broadcast(&mc->applied_cond);
	pthread_mutex_unlock(&mc->lock);
}

/* One key (a put or a delete) applied to SQLite; keys of other kinds are left alone. */
static int
apply_kv(struct metadata_cluster *mc, const struct etcd_kv *kv, bool deleted)
{
	struct cluster_stream s;
	struct cluster_consumer c;
	enum cluster_meta_key kind = cluster_meta_decode(mc->cluster, kv, deleted, &s, &c);
	struct mc_stream *v;
	int rc = kind == CLUSTER_META_OTHER ? apply_account(mc, kv, deleted) : 0;

	if (rc == 0 && kind == CLUSTER_META_OTHER)
		count_status(mc, 1, 0, 0);   /* An account setting applied. */
	if (rc == -EPROTO)
		kind = CLUSTER_META_MALFORMED;
	rc = rc == 1 || rc == -EPROTO ? 0 : rc;
	if (kind == CLUSTER_META_MALFORMED) {
		diag_warn("metadata", "etcd key %s: unreadable, skipped", kv->key);
		count_status(mc, 0, 1, -EPROTO);
	} else if (kind == CLUSTER_META_STREAM && !deleted) {
		rc = apply_stream(mc, &s);
	} else if (kind == CLUSTER_META_STREAM) {
		v = view_by_name(mc, s.name);
		rc = v != NULL ? drop_stream(mc, v) : 0;
	} else if (kind == CLUSTER_META_CONSUMER && !deleted) {
		rc = apply_consumer(mc, &c);
	} else if (kind == CLUSTER_META_CONSUMER) {
		v = view_by_name(mc, c.stream);
		rc = v != NULL ? remove_consumer(mc, v->ms.stream_id, c.name) : 0;
	}
	if (rc == 0 && (kind == CLUSTER_META_STREAM || kind == CLUSTER_META_CONSUMER))
		count_status(mc, 1, 0, 0);
	cluster_stream_free(&s);
	cluster_consumer_free(&c);
	return rc;
}

/* Whether the range holds `key` (an unreadable value counts: its data is not dropped). */
static bool
range_has(const struct etcd_range *r, const char *key)
{
	for (uint32_t i = 0; i < r->count; i++)
		if (strcmp(r->kvs[i].key, key) == 0)
			return true;
	return false;
}

struct mc_sweep {
	struct metadata_cluster *mc;
	const struct etcd_range *r;
	uint32_t stale_ids[64];      /* Consumers to remove, found while iterating. */
	char stale_names[64][CLUSTER_STREAM_NAME_SIZE];
	uint32_t stale_count;
};

/* A local consumer etcd does not have (of a stream it has: other streams went whole). */
static int
sweep_consumer(void *arg, uint32_t stream_id, const char *name, size_t name_size,
	       uint64_t created_ms)
{
	struct mc_sweep *sw = arg;
	char key[MC_KEY_SIZE];
	struct mc_stream *v = view_by_id(sw->mc, stream_id);
	int n;

	(void)created_ms;
	if (v == NULL || sw->stale_count == 64)
		return 0;
	n = snprintf(key, sizeof(key), "%sconsumers/%s/%.*s", sw->mc->prefix, v->name,
		     (int)name_size, name);
	if (n <= 0 || range_has(sw->r, key))
		return 0;
	sw->stale_ids[sw->stale_count] = stream_id;
	snprintf(sw->stale_names[sw->stale_count++], CLUSTER_STREAM_NAME_SIZE, "%.*s",
		 (int)name_size, name);
	return 0;
}

/* After a full read: what SQLite holds and etcd no longer does goes. */
static int
sweep(struct metadata_cluster *mc, const struct etcd_range *r)
{
	struct mc_sweep sw = { .mc = mc, .r = r };
	char key[MC_KEY_SIZE];
	int rc = view_load(mc);

	for (uint32_t i = 0; rc == 0 && i < mc->view_count; i++) {
		snprintf(key, sizeof(key), "%sstreams/%s", mc->prefix, mc->view[i].name);
		/* A stream recreated under its name was replaced by apply_stream already. */
		if (!mc->view[i].ms.deleting && !range_has(r, key))
			rc = drop_stream(mc, &mc->view[i]);
	}
	if (rc == 0)
		rc = view_load(mc);
	do {
		sw.stale_count = 0;
		if (rc == 0)
			rc = metadata_consumers_load(mc->w, sweep_consumer, &sw);
		for (uint32_t i = 0; rc == 0 && i < sw.stale_count; i++)
			rc = remove_consumer(mc, sw.stale_ids[i], sw.stale_names[i]);
	} while (rc == 0 && sw.stale_count == 64);
	return rc;
}

/* Every stream, then every consumer, of one range; then the sweep. */
static int
full_read(struct metadata_cluster *mc, int64_t *revision_out)
{
	struct etcd_range r;
	int rc = etcd_get(mc->apply_client, mc->prefix, true, 0, &r);

	if (rc != 0)
		return rc;
	rc = view_load(mc);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; rc == 0 && i < r.count; i++) {
			bool consumer = strstr(r.kvs[i].key + strlen(mc->prefix), "consumers/") ==
					r.kvs[i].key + strlen(mc->prefix);

			if (consumer == (pass == 1))
				rc = apply_kv(mc, &r.kvs[i], false);
		}
	}
	if (rc == 0)
		rc = sweep(mc, &r);
	*revision_out = r.revision;
	etcd_range_free(&r);
	pthread_mutex_lock(&mc->lock);
	mc->status.rereads++;
	pthread_mutex_unlock(&mc->lock);
	return rc;
}

/* A full read, then the watch from just after it. */
static int
resync(struct metadata_cluster *mc)
{
	int64_t revision = 0;
	int rc;

	etcd_watch_close(mc->watch);
	mc->watch = NULL;
	rc = full_read(mc, &revision);
	if (rc == 0)
		rc = etcd_watch_open(mc->endpoints, mc->prefix, true, revision + 1, &mc->watch);
	if (rc == 0)
		applied_set(mc, revision);
	return rc;
}

static int
follow(struct metadata_cluster *mc)
{
	const struct etcd_event *events;
	int64_t revision = 0;
	int n = etcd_watch_next(mc->watch, MC_WATCH_POLL_MS, &events);
	int rc = n < 0 ? n : 0;

	for (int i = 0; rc == 0 && i < n; i++) {
		const char *rest = events[i].kv.key + strlen(mc->prefix);

		if (events[i].kv.mod_revision > revision)
			revision = events[i].kv.mod_revision;
		/* Placement and nodes share the prefix: skipped before touching SQLite. */
		if (strncmp(rest, "streams/", 8) != 0 && strncmp(rest, "consumers/", 10) != 0 &&
		    strncmp(rest, "account/", 8) != 0)
			continue;
		/* Fresh for each: a delete or a new stream changes what the next is compared with. */
		rc = view_load(mc);
		if (rc == 0)
			rc = apply_kv(mc, &events[i].kv, events[i].deleted);
	}
	if (rc == 0 && n > 0)
		applied_set(mc, revision);
	return rc;
}

/*
 * A failed pass is logged when its error differs from the one before (the first of
 * an outage), and the pass that ends a run of failures says how many there were:
 * while etcd is down every MC_RETRY_MS fails the same way, and a line each time
 * grew the log by five lines a second for as long as etcd stayed away.
 */
static void
mc_note(int rc, int *last, uint64_t *failures)
{
	if (rc == 0 && *last != 0)
		diag_info("metadata", "cluster cache: etcd answers again after %" PRIu64
			  " failed passes", *failures);
	if (rc != 0 && rc != *last && rc != -ERANGE && rc != -ECONNRESET)
		diag_warn("metadata", "cluster cache: %s; reading etcd again every %u ms "
			  "(logged once)", strerror(-rc), MC_RETRY_MS);
	*failures = rc == 0 ? 0 : *failures + 1;
	*last = rc;
}

static void *
mc_main(void *arg)
{
	struct metadata_cluster *mc = arg;
	bool fresh = true;
	int last = 0;
	uint64_t failures = 0;

	pthread_setname_np(pthread_self(), "sluice-etcd");
	while (!atomic_load(&mc->stop)) {
		int rc = fresh ? 0 : resync(mc);

		if (!fresh && rc == 0)
			mc_note(0, &last, &failures);   /* Read again: etcd answers. */
		fresh = rc == 0;
		if (rc == 0)
			rc = follow(mc);
		if (rc == 0)
			continue;
		/* Compacted, the stream ended, or an apply failed: read everything again. */
		fresh = false;
		count_status(mc, 0, 0, rc);
		mc_note(rc, &last, &failures);
		nanosleep(&(struct timespec){ .tv_nsec = MC_RETRY_MS * 1000000l }, NULL);
	}
	return NULL;
}

/* ---- Start, stop, status --------------------------------------------------------------- */

/*
 * The store must be this cluster's cache: marked so at its first cluster start, which
 * needs it empty. A single-node store (or another cluster's) would lose its streams to
 * the first sweep: refused (-EEXIST) until a migration exists.
 */
static int
cache_claim(struct metadata_cluster *mc)
{
	char key[MC_PREFIX_SIZE + 16];
	int64_t one = 1;
	int rc;

	snprintf(key, sizeof(key), "cluster_cache:%s", mc->cluster);
	rc = metadata_account_get(mc->w, key, &one, 1);
	if (rc != -ENOENT)
		return rc;
	rc = view_load(mc);
	if (rc == 0 && mc->view_count > 0) {
		diag_error("metadata", "cluster %s: data_dir's metadata.db holds %u streams that "
			   "are not this cluster's (single-node or another cluster): cluster mode "
			   "needs an empty data_dir", mc->cluster, mc->view_count);
		return -EEXIST;
	}
	return rc == 0 ? metadata_account_set(mc->w, key, &one, 1) : rc;
}

int
metadata_cluster_secret(struct metadata_cluster *mc, uint8_t *secret, size_t size)
{
	char key[MC_PREFIX_SIZE + 32];
	uint8_t fresh[256];
	struct etcd_compare absent = { .key = key, .target = ETCD_TARGET_VERSION, .number = 0 };
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = key, .value = fresh, .value_size = size };
	struct etcd_range r;
	bool created;
	int rc;

	if (size == 0 || size > sizeof(fresh) || RAND_bytes(fresh, (int)size) != 1)
		return -EIO;
	snprintf(key, sizeof(key), "%siterator_secret", mc->prefix);
	/* Created once (the first node's bytes win), then read: every node gets the same. */
	pthread_mutex_lock(&mc->write_lock);
	rc = etcd_txn(mc->write_client, &absent, 1, &put, 1, NULL, 0, &created, NULL);
	if (rc == 0)
		rc = etcd_get(mc->write_client, key, false, 0, &r);
	pthread_mutex_unlock(&mc->write_lock);
	if (rc != 0)
		return rc;
	if (r.count != 1 || r.kvs[0].value_size != size)
		rc = -EPROTO;
	else
		memcpy(secret, r.kvs[0].value, size);
	etcd_range_free(&r);
	return rc;
}

void
metadata_cluster_stop(struct metadata_cluster *mc)
{
	if (mc == NULL)
		return;
	atomic_store(&mc->stop, true);
	if (mc->thread_started)
		pthread_join(mc->thread, NULL);
	etcd_watch_close(mc->watch);
	etcd_close(mc->apply_client);
	etcd_close(mc->write_client);
	metadata_close(mc->w);
	free(mc->view);
	free(mc->view_shards);
	pthread_cond_destroy(&mc->applied_cond);
	pthread_mutex_destroy(&mc->lock);
	pthread_mutex_destroy(&mc->write_lock);
	free(mc);
}

static int
mc_config(struct metadata_cluster *mc, const char *endpoints, const char *cluster)
{
	if (endpoints == NULL || cluster == NULL || cluster[0] == '\0' ||
	    strchr(cluster, '/') != NULL ||
	    snprintf(mc->endpoints, sizeof(mc->endpoints), "%s", endpoints) >=
		    (int)sizeof(mc->endpoints) ||
	    snprintf(mc->cluster, sizeof(mc->cluster), "%s", cluster) >= (int)sizeof(mc->cluster))
		return -EINVAL;
	snprintf(mc->prefix, sizeof(mc->prefix), "/sluice/%s/", cluster);
	return 0;
}

int
metadata_cluster_start(struct metadata *md, const char *etcd_endpoints, const char *cluster,
		       struct metadata_cluster **mc_out)
{
	struct metadata_cluster *mc = calloc(1, sizeof(*mc));
	pthread_condattr_t attr;
	int rc;

	if (mc == NULL)
		return -ENOMEM;
	pthread_mutex_init(&mc->lock, NULL);
	pthread_mutex_init(&mc->write_lock, NULL);
	/* Waits are bounded on the monotonic clock: a wall-clock step does not move them. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&mc->applied_cond, &attr);
	pthread_condattr_destroy(&attr);
	rc = mc_config(mc, etcd_endpoints, cluster);
	if (rc == 0)
		rc = metadata_open_writer(md, &mc->w);
	if (rc == 0)
		rc = etcd_open(mc->endpoints, MC_ETCD_TIMEOUT_MS, &mc->apply_client);
	if (rc == 0)
		rc = etcd_open(mc->endpoints, MC_ETCD_TIMEOUT_MS, &mc->write_client);
	mc->view = rc == 0 ? calloc(SLUICE_STREAMS_MAX, sizeof(*mc->view)) : NULL;
	mc->view_shards = rc == 0 ? calloc(SLUICE_SHARDS_MAX, sizeof(*mc->view_shards)) : NULL;
	if (rc == 0 && (mc->view == NULL || mc->view_shards == NULL))
		rc = -ENOMEM;
	if (rc == 0)
		rc = cache_claim(mc);
	/* Consistent before anything reads the store: a node that was away catches up here. */
	if (rc == 0)
		rc = resync(mc);
	if (rc == 0) {
		rc = -pthread_create(&mc->thread, NULL, mc_main, mc);
		mc->thread_started = rc == 0;
	}
	if (rc != 0) {
		metadata_cluster_stop(mc);
		return rc;
	}
	*mc_out = mc;
	return 0;
}

void
metadata_cluster_status(struct metadata_cluster *mc, struct metadata_cluster_status *out)
{
	pthread_mutex_lock(&mc->lock);
	*out = mc->status;
	pthread_mutex_unlock(&mc->lock);
}

int
metadata_cluster_wait(struct metadata_cluster *mc, int64_t revision)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += METADATA_CLUSTER_WAIT_MS / 1000;
	pthread_mutex_lock(&mc->lock);
	while (mc->status.applied_revision < revision && rc == 0)
		rc = -pthread_cond_timedwait(&mc->applied_cond, &mc->lock, &deadline);
	pthread_mutex_unlock(&mc->lock);
	return rc;
}

/* ---- Writes: one etcd transaction each, then this node's cache catches up ------------ */

/* 0: write the record; MC_UNCHANGED: write nothing, succeed; else the error. */
typedef int mc_modify_fn(struct cluster_stream *s, const void *arg);
#define MC_UNCHANGED 1

/* A write only a shard's leader in one epoch may make (the cut's record). */
struct mc_lead {
	uint32_t shard;
	uint32_t node_id;
	uint64_t epoch;
};

/* A lost compare-and-swap is redone on fresh state (-EBUSY: the loop's "again"). */
static int
cas_result(int rc)
{
	return rc == -ESTALE ? -EBUSY : rc;
}

/*
 * Read, modify, compare-and-swap (modify NULL: delete the stream and its
 * consumers); redone on fresh state when another writer came first. With `lead`,
 * the write also compares the shard's placement key, which must name lead->node_id
 * as leader in lead->epoch: -ESTALE when it does not (nothing written).
 */
static int
update_stream_led(struct metadata_cluster *mc, const char *name, const struct mc_lead *lead,
		  mc_modify_fn *modify, const void *arg)
{
	struct cluster_fence fence;
	struct cluster_stream s;
	int64_t revision = 0;
	int rc = -EBUSY;

	pthread_mutex_lock(&mc->write_lock);
	for (uint32_t i = 0; i < CLUSTER_STREAM_CAS_TRIES && rc == -EBUSY; i++) {
		rc = cluster_stream_get(mc->write_client, mc->cluster, name, &s);
		if (rc == 0 && modify == NULL)
			rc = cas_result(cluster_stream_delete(mc->write_client, mc->cluster, &s,
							      &revision));
		else if (rc == 0)
			rc = modify(&s, arg);
		/* Read after the stream: a placement moved since fails the put's compare. */
		if (rc == 0 && modify != NULL && lead != NULL)
			rc = cluster_placement_lead_fence(mc->write_client, mc->cluster, name,
							  lead->shard, s.stream_id, lead->node_id,
							  (int64_t)lead->epoch, &fence);
		if (rc == 0 && modify != NULL)
			rc = cas_result(cluster_stream_put(mc->write_client, mc->cluster, &s,
							   lead != NULL ? &fence : NULL, &revision));
		cluster_stream_free(&s);
	}
	pthread_mutex_unlock(&mc->write_lock);
	/* MC_UNCHANGED: etcd already holds what the call asks for; nothing was written. */
	if (rc == MC_UNCHANGED)
		return 0;
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}

static int
update_stream(struct metadata_cluster *mc, const char *name, mc_modify_fn *modify,
	      const void *arg)
{
	return update_stream_led(mc, name, NULL, modify, arg);
}

/* The record's tags and policy from the caller's (copies: the record frees them). */
static int
tags_copy(const struct metadata_tag *tags, size_t count, struct cluster_tag **out)
{
	*out = calloc(count + 1, sizeof(**out));
	if (*out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		(*out)[i].key = strndup(tags[i].key, tags[i].key_size);
		(*out)[i].value = strndup(tags[i].value, tags[i].value_size);
		if ((*out)[i].key == NULL || (*out)[i].value == NULL)
			return -ENOMEM;
	}
	return 0;
}

static int
record_build(struct cluster_stream *s, const struct metadata_stream *ms,
	     const struct metadata_shard *shards, const struct metadata_tag *tags, size_t tag_count)
{
	memset(s, 0, sizeof(*s));
	if (strlen(ms->name) >= sizeof(s->name) || ms->shard_count == 0 ||
	    tag_count > CLUSTER_STREAM_TAGS_MAX)
		return -EINVAL;
	*s = (struct cluster_stream){
		.incarnation = ms->incarnation, .mode = ms->mode,
		.retention_hours = ms->retention_hours, .created_ms = ms->created_ms,
		.shard_metrics = ms->shard_metrics, .warm_mibps = ms->warm_mibps,
		.max_record_kib = ms->max_record_kib != 0 ? ms->max_record_kib :
				  METADATA_MAX_RECORD_KIB_DEFAULT,
		.shard_count = ms->shard_count, .tag_count = (uint32_t)tag_count,
	};
	snprintf(s->name, sizeof(s->name), "%s", ms->name);
	s->shards = calloc(ms->shard_count, sizeof(*s->shards));
	if (s->shards == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < ms->shard_count; i++)
		s->shards[i] = (struct cluster_stream_shard){
			.index = i, .start = shards[i].start, .end = shards[i].end,
			.parent = shards[i].parent, .adjacent_parent = shards[i].adjacent_parent,
			.created_s = shards[i].created_s,
		};
	return tags_copy(tags, tag_count, &s->tags);
}

int
metadata_cluster_stream_create(struct metadata_cluster *mc, struct metadata_stream *stream,
			       const struct metadata_shard *shards,
			       const struct metadata_tag *tags, size_t tag_count)
{
	struct cluster_stream s;
	int64_t revision = 0;
	int rc = record_build(&s, stream, shards, tags, tag_count);

	if (rc == 0) {
		pthread_mutex_lock(&mc->write_lock);
		rc = cluster_stream_create(mc->write_client, mc->cluster, &s, &revision);
		pthread_mutex_unlock(&mc->write_lock);
	}
	stream->stream_id = s.stream_id;
	cluster_stream_free(&s);
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}

int
metadata_cluster_stream_delete(struct metadata_cluster *mc, const char *name)
{
	return update_stream(mc, name, NULL, NULL);
}

static int
modify_retention(struct cluster_stream *s, const void *arg)
{
	s->retention_hours = *(const uint32_t *)arg;
	return 0;
}

int
metadata_cluster_retention_set(struct metadata_cluster *mc, const char *name, uint32_t hours)
{
	return update_stream(mc, name, modify_retention, &hours);
}

static int
modify_mode(struct cluster_stream *s, const void *arg)
{
	s->mode = (uint32_t)*(const enum metadata_mode *)arg;
	return 0;
}

int
metadata_cluster_mode_set(struct metadata_cluster *mc, const char *name, enum metadata_mode mode)
{
	return update_stream(mc, name, modify_mode, &mode);
}

struct mc_setting {
	enum metadata_setting which;
	uint32_t value;
};

static int
modify_setting(struct cluster_stream *s, const void *arg)
{
	const struct mc_setting *set = arg;
	uint32_t *field[] = {
		[METADATA_SHARD_METRICS] = &s->shard_metrics,
		[METADATA_MAX_RECORD_KIB] = &s->max_record_kib,
		[METADATA_WARM_MIBPS] = &s->warm_mibps,
	};

	*field[set->which] = set->value;
	return 0;
}

int
metadata_cluster_setting_set(struct metadata_cluster *mc, const char *name,
			     enum metadata_setting which, uint32_t value)
{
	struct mc_setting set = { .which = which, .value = value };

	return update_stream(mc, name, modify_setting, &set);
}

struct mc_encryption_change {
	const char *key_ref;   /* NULL: off. */
	const char *key_name;
};

static int
modify_encryption(struct cluster_stream *s, const void *arg)
{
	const struct mc_encryption_change *ch = arg;
	char *ref = ch->key_ref != NULL ? strdup(ch->key_ref) : NULL;
	char *name = ch->key_ref != NULL ? strdup(ch->key_name) : NULL;

	if (ch->key_ref != NULL && (ref == NULL || name == NULL)) {
		free(ref);
		free(name);
		return -ENOMEM;
	}
	free(s->key_ref);
	free(s->key_name);
	s->key_ref = ref;
	s->key_name = name;
	return 0;
}

int
metadata_cluster_encryption_set(struct metadata_cluster *mc, const char *name,
				const char *key_ref, const char *key_name)
{
	struct mc_encryption_change ch = { .key_ref = key_ref, .key_name = key_name };

	return update_stream(mc, name, modify_encryption, &ch);
}

/* ---- Reshards (docs/CLUSTER.md "Resharding in cluster mode") ------------------------- */

struct mc_reshard {
	uint32_t stream_id;
	uint32_t old_count;
	const uint32_t *closing;
	size_t closing_count;
	const struct metadata_shard *added;
	size_t added_count;
};

/*
 * The plan was made on the record as this node's cache held it: applied only to that
 * same shard table (same stream, same indexes, every parent still open). Otherwise
 * another reshard (through any node) came first: -EALREADY, nothing written.
 */
static int
modify_reshard(struct cluster_stream *s, const void *arg)
{
	const struct mc_reshard *r = arg;
	struct cluster_stream_shard *shards;

	if (s->stream_id != r->stream_id)
		return -ENOENT;
	if (s->shard_count != r->old_count || r->old_count + r->added_count > CLUSTER_SHARDS_MAX)
		return -EALREADY;
	for (size_t i = 0; i < r->closing_count; i++)
		if (r->closing[i] >= s->shard_count ||
		    s->shards[r->closing[i]].state != CLUSTER_SHARD_OPEN)
			return -EALREADY;
	shards = realloc(s->shards, (s->shard_count + r->added_count) * sizeof(*shards));
	if (shards == NULL)
		return -ENOMEM;
	s->shards = shards;
	for (size_t i = 0; i < r->closing_count; i++)
		shards[r->closing[i]].state = CLUSTER_SHARD_CLOSING;
	for (size_t i = 0; i < r->added_count; i++) {
		const struct metadata_shard *a = &r->added[i];

		if (a->shard_index != s->shard_count)
			return -EINVAL;   /* Children are appended in index order. */
		/* Closed ones: an UpdateShardCount's steps, made and merged away at once (empty). */
		shards[s->shard_count++] = (struct cluster_stream_shard){
			.index = a->shard_index, .start = a->start, .end = a->end,
			.parent = a->parent, .adjacent_parent = a->adjacent_parent,
			.created_s = a->created_s,
			.state = a->closed ? CLUSTER_SHARD_CLOSED : CLUSTER_SHARD_OPEN,
			.seq_end = a->closed ? a->seq_end : 0,
		};
	}
	return 0;
}

int
metadata_cluster_reshard(struct metadata_cluster *mc, const char *name, uint32_t stream_id,
			 uint32_t old_count, const uint32_t *closing, size_t closing_count,
			 const struct metadata_shard *added, size_t added_count)
{
	struct mc_reshard r = { .stream_id = stream_id, .old_count = old_count,
				.closing = closing, .closing_count = closing_count,
				.added = added, .added_count = added_count };

	return update_stream(mc, name, modify_reshard, &r);
}

struct mc_close {
	uint32_t stream_id;
	uint32_t index;
	uint64_t seq_end;
};

static int
modify_closed(struct cluster_stream *s, const void *arg)
{
	const struct mc_close *c = arg;
	struct cluster_stream_shard *sh;

	if (s->stream_id != c->stream_id || c->index >= s->shard_count)
		return -ENOENT;
	sh = &s->shards[c->index];
	if (sh->state == CLUSTER_SHARD_CLOSED)
		return sh->seq_end == c->seq_end ? MC_UNCHANGED : -EALREADY;
	if (sh->state != CLUSTER_SHARD_CLOSING)
		return -EINVAL;
	sh->state = CLUSTER_SHARD_CLOSED;
	sh->seq_end = c->seq_end;
	return 0;
}

int
metadata_cluster_shard_closed(struct metadata_cluster *mc, const char *name, uint32_t stream_id,
			      uint32_t index, uint64_t seq_end, uint32_t node_id, uint64_t epoch)
{
	struct mc_close c = { .stream_id = stream_id, .index = index, .seq_end = seq_end };
	struct mc_lead lead = { .shard = index, .node_id = node_id, .epoch = epoch };
	int rc = update_stream_led(mc, name, &lead, modify_closed, &c);

	if (rc == -ESTALE) {
		pthread_mutex_lock(&mc->lock);
		mc->status.cuts_fenced++;
		pthread_mutex_unlock(&mc->lock);
	}
	return rc;
}

/* ---- Tags and policies: of the stream (its record) or of a consumer (its key) ---------- */

/* What a tag or policy change edits, in a stream record or a consumer. */
struct mc_resource {
	struct cluster_tag **tags;
	uint32_t *tag_count;
	char **policy;
};

typedef int mc_edit_fn(struct mc_resource *res, const void *arg);

struct mc_tags_change {
	const struct metadata_tag *tags;
	size_t count;
	uint32_t max;
};

static int
edit_tags_put(struct mc_resource *res, const void *arg)
{
	const struct mc_tags_change *ch = arg;
	uint32_t n = *res->tag_count;
	struct cluster_tag *t = realloc(*res->tags, (n + ch->count + 1) * sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	*res->tags = t;
	for (size_t i = 0; i < ch->count; i++) {
		char *key = strndup(ch->tags[i].key, ch->tags[i].key_size);
		char *value = strndup(ch->tags[i].value, ch->tags[i].value_size);
		uint32_t j = 0;

		if (key == NULL || value == NULL) {
			free(key);
			free(value);
			return -ENOMEM;
		}
		while (j < n && strcmp(t[j].key, key) != 0)
			j++;
		if (j == n) {
			t[n++] = (struct cluster_tag){ .key = key, .value = value };
			*res->tag_count = n;
			continue;
		}
		free(key);
		free(t[j].value);
		t[j].value = value;
	}
	return n > ch->max ? -E2BIG : 0;
}

static int
edit_tags_remove(struct mc_resource *res, const void *arg)
{
	const struct mc_tags_change *ch = arg;
	struct cluster_tag *t = *res->tags;

	for (size_t i = 0; i < ch->count; i++) {
		for (uint32_t j = 0; j < *res->tag_count; j++) {
			if (strlen(t[j].key) != ch->tags[i].key_size ||
			    memcmp(t[j].key, ch->tags[i].key, ch->tags[i].key_size) != 0)
				continue;
			free(t[j].key);
			free(t[j].value);
			t[j] = t[--*res->tag_count];
			break;
		}
	}
	return 0;
}

struct mc_policy_change {
	const char *policy;   /* NULL: delete. */
	size_t size;
};

static int
edit_policy(struct mc_resource *res, const void *arg)
{
	const struct mc_policy_change *ch = arg;
	char *text = ch->policy != NULL ? strndup(ch->policy, ch->size) : NULL;

	if (ch->policy != NULL && text == NULL)
		return -ENOMEM;
	if (ch->policy == NULL && *res->policy == NULL)
		return -ENOENT;
	free(*res->policy);
	*res->policy = text;
	return 0;
}

struct mc_stream_edit {
	mc_edit_fn *edit;
	const void *arg;
};

static int
modify_stream_resource(struct cluster_stream *s, const void *arg)
{
	const struct mc_stream_edit *e = arg;
	struct mc_resource res = { .tags = &s->tags, .tag_count = &s->tag_count,
				   .policy = &s->policy };

	return e->edit(&res, e->arg);
}

/* A consumer's read, edit, compare-and-swap (on the stream's and the consumer's revisions). */
static int
update_consumer_once(struct metadata_cluster *mc, const char *stream, const char *name,
		     mc_edit_fn *edit, const void *arg, int64_t *revision_out)
{
	struct cluster_stream s;
	struct cluster_consumer c;
	struct mc_resource res = { .tags = &c.tags, .tag_count = &c.tag_count,
				   .policy = &c.policy };
	int rc = cluster_stream_get(mc->write_client, mc->cluster, stream, &s);

	memset(&c, 0, sizeof(c));
	if (rc == 0)
		rc = cluster_consumer_get(mc->write_client, mc->cluster, stream, name, &c);
	if (rc == 0 && c.stream_id != s.stream_id)
		rc = -ENOENT;   /* A leftover of an earlier stream of that name. */
	if (rc == 0)
		rc = edit(&res, arg);
	if (rc == 0)
		rc = cluster_consumer_put(mc->write_client, mc->cluster, &c, &s, false, 0,
					  revision_out);
	cluster_stream_free(&s);
	cluster_consumer_free(&c);
	return rc;
}

static int
update_resource(struct metadata_cluster *mc, const char *name, const char *resource,
		mc_edit_fn *edit, const void *arg)
{
	struct mc_stream_edit e = { .edit = edit, .arg = arg };
	int64_t revision = 0;
	int rc = -ESTALE;

	if (resource == NULL || resource[0] == '\0')
		return update_stream(mc, name, modify_stream_resource, &e);
	pthread_mutex_lock(&mc->write_lock);
	for (uint32_t i = 0; i < CLUSTER_STREAM_CAS_TRIES && rc == -ESTALE; i++)
		rc = update_consumer_once(mc, name, resource, edit, arg, &revision);
	pthread_mutex_unlock(&mc->write_lock);
	if (rc == -ESTALE)
		rc = -EBUSY;
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}

int
metadata_cluster_tags_put(struct metadata_cluster *mc, const char *name, const char *resource,
			  const struct metadata_tag *tags, size_t count, uint32_t max)
{
	struct mc_tags_change ch = { .tags = tags, .count = count,
				     .max = max < CLUSTER_STREAM_TAGS_MAX ? max :
					    CLUSTER_STREAM_TAGS_MAX };

	return update_resource(mc, name, resource, edit_tags_put, &ch);
}

int
metadata_cluster_tags_remove(struct metadata_cluster *mc, const char *name, const char *resource,
			     const struct metadata_tag *keys, size_t count)
{
	struct mc_tags_change ch = { .tags = keys, .count = count };

	return update_resource(mc, name, resource, edit_tags_remove, &ch);
}

int
metadata_cluster_policy_put(struct metadata_cluster *mc, const char *name, const char *resource,
			    const char *policy, size_t size)
{
	struct mc_policy_change ch = { .policy = policy, .size = size };

	return update_resource(mc, name, resource, edit_policy, &ch);
}

int
metadata_cluster_policy_delete(struct metadata_cluster *mc, const char *name,
			       const char *resource)
{
	struct mc_policy_change ch = { 0 };

	return update_resource(mc, name, resource, edit_policy, &ch);
}

/* ---- Consumers ------------------------------------------------------------------------- */

int
metadata_cluster_consumer_add(struct metadata_cluster *mc, const char *stream, const char *name,
			      uint64_t created_ms, const struct metadata_tag *tags,
			      size_t tag_count, uint32_t consumers_max)
{
	struct cluster_stream s;
	struct cluster_consumer c = { .created_ms = created_ms, .tag_count = (uint32_t)tag_count };
	int64_t revision = 0;
	int rc = -ESTALE;

	if (strlen(name) >= sizeof(c.name) || tag_count > CLUSTER_STREAM_TAGS_MAX)
		return -EINVAL;
	snprintf(c.name, sizeof(c.name), "%s", name);
	snprintf(c.stream, sizeof(c.stream), "%s", stream);
	pthread_mutex_lock(&mc->write_lock);
	rc = tags_copy(tags, tag_count, &c.tags);
	for (uint32_t i = 0; rc == 0 && i < CLUSTER_STREAM_CAS_TRIES; i++) {
		rc = cluster_stream_get(mc->write_client, mc->cluster, stream, &s);
		c.stream_id = s.stream_id;
		if (rc == 0)
			rc = cluster_consumer_put(mc->write_client, mc->cluster, &c, &s, true,
						  consumers_max, &revision);
		cluster_stream_free(&s);
		if (rc != -ESTALE)
			break;
		rc = 0;
		revision = -1;   /* Lost every try: -EBUSY below. */
	}
	pthread_mutex_unlock(&mc->write_lock);
	cluster_consumer_free(&c);
	if (rc == 0 && revision < 0)
		rc = -EBUSY;
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}

int
metadata_cluster_consumer_remove(struct metadata_cluster *mc, const char *stream,
				 const char *name)
{
	int64_t revision = 0;
	int rc;

	pthread_mutex_lock(&mc->write_lock);
	rc = cluster_consumer_delete(mc->write_client, mc->cluster, stream, name, &revision);
	pthread_mutex_unlock(&mc->write_lock);
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}

/* ---- Account settings ------------------------------------------------------------------- */

int
metadata_cluster_account_set(struct metadata_cluster *mc, const char *name,
			     const int64_t *values, size_t count)
{
	char key[MC_PREFIX_SIZE + 8 + MC_ACCOUNT_KEY_SIZE];
	char text[MC_ACCOUNT_VALUES_MAX * 24 + 2];
	size_t used = 1;
	int64_t revision = 0;
	int rc;

	if (count > MC_ACCOUNT_VALUES_MAX || strlen(name) >= MC_ACCOUNT_KEY_SIZE ||
	    strchr(name, '/') != NULL)
		return -EINVAL;
	snprintf(key, sizeof(key), "%saccount/%s", mc->prefix, name);
	text[0] = '[';
	for (size_t i = 0; i < count; i++) {
		if (values[i] > MC_ACCOUNT_VALUE_ABS_MAX || values[i] < -MC_ACCOUNT_VALUE_ABS_MAX)
			return -ERANGE;
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%lld",
					 i > 0 ? "," : "", (long long)values[i]);
	}
	snprintf(text + used, sizeof(text) - used, "]");
	/* The whole setting in one put: the last writer's wins, as on one node. */
	pthread_mutex_lock(&mc->write_lock);
	rc = etcd_put(mc->write_client, key, text, strlen(text), 0, &revision);
	pthread_mutex_unlock(&mc->write_lock);
	return rc == 0 ? metadata_cluster_wait(mc, revision) : rc;
}
