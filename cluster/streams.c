/*
 * streams.c - stream metadata in etcd (cluster.h, docs/CLUSTER.md "Stream
 * metadata"): the truth in cluster mode; every node's SQLite is a cache of it
 * (control/metadata_cluster.c). One key per stream holds the whole record, so
 * one mod_revision compare covers every change to it; consumers have keys of
 * their own (their number is unbounded by the record's size).
 *
 * streams/<name> (numbers that may pass 2^53 travel as decimal strings, as
 * etcd's gateway does; hash keys are 128-bit decimals):
 *
 *   field             type     meaning
 *   stream_id         number   the cluster-wide id (the stream_id counter key)
 *   incarnation       string   random at create: iterators of a recreated stream fail
 *   mode              number   0 provisioned, 1 on demand
 *   retention_hours   number
 *   created_ms        string
 *   shard_metrics     number   EnableEnhancedMonitoring's bits
 *   max_record_kib    number
 *   warm_mibps        number
 *   shard_count       number   shard indexes ever made (placement reads it)
 *   shards            array    [{"index","start","end","parent","adjacent_parent",
 *                              "created_s","state":"open|closing|closed","seq_end"}]
 *   tags              object   {"key":"value",...}
 *   policy            string   the stream's resource policy (absent: none)
 *   key_ref, key_name string   encryption at rest: KeyId and keyring key (absent: off)
 *
 * consumers/<stream>/<name>: {"stream_id","created_ms","tags":{},"policy"}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "cluster/cluster_int.h"

static const char *const shard_states[] = {
	[CLUSTER_SHARD_OPEN] = "open",
	[CLUSTER_SHARD_CLOSING] = "closing",
	[CLUSTER_SHARD_CLOSED] = "closed",
};

static void
tags_free(struct cluster_tag *tags, uint32_t count)
{
	for (uint32_t i = 0; tags != NULL && i < count; i++) {
		free(tags[i].key);
		free(tags[i].value);
	}
	free(tags);
}

void
cluster_stream_free(struct cluster_stream *s)
{
	free(s->shards);
	tags_free(s->tags, s->tag_count);
	free(s->policy);
	free(s->key_ref);
	free(s->key_name);
	s->shards = NULL;
	s->tags = NULL;
	s->policy = NULL;
	s->key_ref = NULL;
	s->key_name = NULL;
	s->shard_count = 0;
	s->tag_count = 0;
}

void
cluster_consumer_free(struct cluster_consumer *c)
{
	tags_free(c->tags, c->tag_count);
	free(c->policy);
	c->tags = NULL;
	c->policy = NULL;
	c->tag_count = 0;
}

/* ---- Encoding ------------------------------------------------------------ */

static bool
add_u64(cJSON *o, const char *name, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRIu64, v);
	return cJSON_AddStringToObject(o, name, text) != NULL;
}

static bool
add_hashkey(cJSON *o, const char *name, hashkey_t key)
{
	char text[HASHKEY_DECIMAL_SIZE];

	hashkey_format_decimal(key, text);
	return cJSON_AddStringToObject(o, name, text) != NULL;
}

static cJSON *
shard_json(const struct cluster_stream_shard *sh)
{
	cJSON *o = cJSON_CreateObject();

	if (o != NULL && cJSON_AddNumberToObject(o, "index", sh->index) != NULL &&
	    add_hashkey(o, "start", sh->start) && add_hashkey(o, "end", sh->end) &&
	    cJSON_AddNumberToObject(o, "parent", (double)sh->parent) != NULL &&
	    cJSON_AddNumberToObject(o, "adjacent_parent", (double)sh->adjacent_parent) != NULL &&
	    add_u64(o, "created_s", sh->created_s) &&
	    cJSON_AddStringToObject(o, "state", shard_states[sh->state]) != NULL &&
	    add_u64(o, "seq_end", sh->seq_end))
		return o;
	cJSON_Delete(o);
	return NULL;
}

static bool
add_tags(cJSON *o, const struct cluster_tag *tags, uint32_t count)
{
	cJSON *t = cJSON_AddObjectToObject(o, "tags");

	for (uint32_t i = 0; t != NULL && i < count; i++)
		if (cJSON_AddStringToObject(t, tags[i].key, tags[i].value) == NULL)
			return false;
	return t != NULL;
}

/* The printed object into *text_out unless it passes the value limit. */
static int
printed(cJSON *o, bool ok, char **text_out, size_t *size_out)
{
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	if (text == NULL)
		return -ENOMEM;
	*size_out = strlen(text);
	if (*size_out > CLUSTER_STREAM_VALUE_SIZE_MAX) {
		free(text);
		return -E2BIG;
	}
	*text_out = text;
	return 0;
}

int
cluster_stream_encode(const struct cluster_stream *s, char **text_out, size_t *size_out)
{
	cJSON *o;
	cJSON *shards = NULL;
	bool ok;

	if (s->shard_count == 0 || s->shard_count > CLUSTER_SHARDS_MAX)
		return -E2BIG;
	o = cJSON_CreateObject();
	ok = o != NULL && cJSON_AddNumberToObject(o, "stream_id", s->stream_id) != NULL &&
	     add_u64(o, "incarnation", s->incarnation) &&
	     cJSON_AddNumberToObject(o, "mode", s->mode) != NULL &&
	     cJSON_AddNumberToObject(o, "retention_hours", s->retention_hours) != NULL &&
	     add_u64(o, "created_ms", s->created_ms) &&
	     cJSON_AddNumberToObject(o, "shard_metrics", s->shard_metrics) != NULL &&
	     cJSON_AddNumberToObject(o, "max_record_kib", s->max_record_kib) != NULL &&
	     cJSON_AddNumberToObject(o, "warm_mibps", s->warm_mibps) != NULL &&
	     cJSON_AddNumberToObject(o, "shard_count", s->shard_count) != NULL &&
	     (shards = cJSON_AddArrayToObject(o, "shards")) != NULL &&
	     add_tags(o, s->tags, s->tag_count) &&
	     (s->policy == NULL || cJSON_AddStringToObject(o, "policy", s->policy) != NULL) &&
	     (s->key_ref == NULL || cJSON_AddStringToObject(o, "key_ref", s->key_ref) != NULL) &&
	     (s->key_name == NULL || cJSON_AddStringToObject(o, "key_name", s->key_name) != NULL);
	for (uint32_t i = 0; ok && i < s->shard_count; i++) {
		cJSON *sh = shard_json(&s->shards[i]);

		ok = sh != NULL && cJSON_AddItemToArray(shards, sh);
	}
	return printed(o, ok, text_out, size_out);
}

int
cluster_consumer_encode(const struct cluster_consumer *c, char **text_out, size_t *size_out)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && cJSON_AddNumberToObject(o, "stream_id", c->stream_id) != NULL &&
		  add_u64(o, "created_ms", c->created_ms) && add_tags(o, c->tags, c->tag_count) &&
		  (c->policy == NULL || cJSON_AddStringToObject(o, "policy", c->policy) != NULL);

	return printed(o, ok, text_out, size_out);
}

/* ---- Decoding: anything but the shapes above is refused (-EPROTO). -------- */

/* A whole JSON number in [min, max]. */
static bool
get_int(const cJSON *o, const char *name, double min, double max, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool
get_u32(const cJSON *o, const char *name, uint32_t *out)
{
	int64_t v;

	if (!get_int(o, name, 0, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* A decimal string of a uint64. */
static bool
get_u64(const cJSON *o, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *end;

	if (!cJSON_IsString(v) || v->valuestring[0] < '0' || v->valuestring[0] > '9')
		return false;
	errno = 0;
	*out = strtoull(v->valuestring, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool
get_hashkey(const cJSON *o, const char *name, hashkey_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) &&
	       hashkey_parse_decimal(v->valuestring, strlen(v->valuestring), out) == 0;
}

static bool
shard_read(const cJSON *o, uint32_t index, struct cluster_stream_shard *sh)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
	uint32_t i = 0;

	if (!get_u32(o, "index", &sh->index) || sh->index != index ||
	    !get_hashkey(o, "start", &sh->start) || !get_hashkey(o, "end", &sh->end) ||
	    sh->start > sh->end || !get_int(o, "parent", -1, (double)index - 1, &sh->parent) ||
	    !get_int(o, "adjacent_parent", -1, (double)index - 1, &sh->adjacent_parent) ||
	    !get_u64(o, "created_s", &sh->created_s) || !get_u64(o, "seq_end", &sh->seq_end) ||
	    !cJSON_IsString(state))
		return false;
	while (i < 3 && strcmp(state->valuestring, shard_states[i]) != 0)
		i++;
	sh->state = (enum cluster_shard_state)i;
	return i < 3;
}

static bool
tags_read(const cJSON *o, struct cluster_tag **tags_out, uint32_t *count_out)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tags");
	const cJSON *v;
	int n = cJSON_IsObject(t) ? cJSON_GetArraySize(t) : -1;

	*tags_out = NULL;
	*count_out = 0;
	if (n < 0 || (uint32_t)n > CLUSTER_STREAM_TAGS_MAX)
		return false;
	*tags_out = calloc((size_t)n + 1, sizeof(**tags_out));
	if (*tags_out == NULL)
		return false;
	cJSON_ArrayForEach(v, t) {
		struct cluster_tag *tag = &(*tags_out)[(*count_out)++];

		if (!cJSON_IsString(v) || v->string == NULL)
			return false;
		tag->key = strdup(v->string);
		tag->value = strdup(v->valuestring);
		if (tag->key == NULL || tag->value == NULL)
			return false;
	}
	return true;
}

/* An optional string: absent is NULL; present must be a string. */
static bool
string_read(const cJSON *o, const char *name, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (v == NULL)
		return true;
	*out = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
	return *out != NULL;
}

static bool
stream_fields_read(const cJSON *o, struct cluster_stream *s)
{
	int64_t mode;

	return get_u32(o, "stream_id", &s->stream_id) && s->stream_id != 0 &&
	       get_u64(o, "incarnation", &s->incarnation) &&
	       get_int(o, "mode", 0, 1, &mode) && (s->mode = (uint32_t)mode, true) &&
	       get_u32(o, "retention_hours", &s->retention_hours) &&
	       get_u64(o, "created_ms", &s->created_ms) &&
	       get_u32(o, "shard_metrics", &s->shard_metrics) &&
	       get_u32(o, "max_record_kib", &s->max_record_kib) &&
	       get_u32(o, "warm_mibps", &s->warm_mibps) &&
	       get_u32(o, "shard_count", &s->shard_count) && s->shard_count != 0 &&
	       s->shard_count <= CLUSTER_SHARDS_MAX;
}

static int
stream_decode(const uint8_t *value, size_t size, struct cluster_stream *s)
{
	cJSON *o = size <= CLUSTER_STREAM_VALUE_SIZE_MAX ?
		   cJSON_ParseWithLength((const char *)value, size) : NULL;
	const cJSON *shards = cJSON_GetObjectItemCaseSensitive(o, "shards");
	const cJSON *sh;
	uint32_t i = 0;
	bool ok = o != NULL && stream_fields_read(o, s) && cJSON_IsArray(shards) &&
		  cJSON_GetArraySize(shards) == (int)s->shard_count;

	if (ok) {
		s->shards = calloc(s->shard_count, sizeof(*s->shards));
		ok = s->shards != NULL;
	}
	for (sh = ok ? shards->child : NULL; sh != NULL && ok; sh = sh->next) {
		ok = shard_read(sh, i, &s->shards[i]);
		i++;
	}
	if (ok)
		ok = tags_read(o, &s->tags, &s->tag_count) &&
		     string_read(o, "policy", &s->policy) &&
		     string_read(o, "key_ref", &s->key_ref) &&
		     string_read(o, "key_name", &s->key_name) &&
		     (s->key_ref == NULL) == (s->key_name == NULL);
	cJSON_Delete(o);
	if (ok)
		return 0;
	cluster_stream_free(s);
	return -EPROTO;
}

static int
consumer_decode(const uint8_t *value, size_t size, struct cluster_consumer *c)
{
	cJSON *o = size <= CLUSTER_STREAM_VALUE_SIZE_MAX ?
		   cJSON_ParseWithLength((const char *)value, size) : NULL;
	bool ok = o != NULL && get_u32(o, "stream_id", &c->stream_id) && c->stream_id != 0 &&
		  get_u64(o, "created_ms", &c->created_ms) &&
		  tags_read(o, &c->tags, &c->tag_count) && string_read(o, "policy", &c->policy);

	cJSON_Delete(o);
	if (ok)
		return 0;
	cluster_consumer_free(c);
	return -EPROTO;
}

/* A name: 1 .. CLUSTER_STREAM_NAME_SIZE - 1 bytes, no '/'. */
static bool
name_copy(char *out, const char *name, size_t size)
{
	if (size == 0 || size >= CLUSTER_STREAM_NAME_SIZE || memchr(name, '/', size) != NULL)
		return false;
	memcpy(out, name, size);
	out[size] = '\0';
	return true;
}

/* The key's kind and names; MALFORMED for a bad name under our prefixes. */
static enum cluster_meta_key
meta_key_read(const char *cluster, const char *key, struct cluster_stream *s,
	      struct cluster_consumer *c)
{
	char prefix[CLUSTER_KEY_SIZE];
	int n = snprintf(prefix, sizeof(prefix), "/sluice/%s/", cluster);
	const char *rest;
	const char *slash;

	if (n <= 0 || (size_t)n >= sizeof(prefix) || strncmp(key, prefix, (size_t)n) != 0)
		return CLUSTER_META_OTHER;
	rest = key + n;
	if (strncmp(rest, "streams/", 8) == 0)
		return name_copy(s->name, rest + 8, strlen(rest + 8)) ? CLUSTER_META_STREAM :
		       CLUSTER_META_MALFORMED;
	if (strncmp(rest, "consumers/", 10) != 0)
		return CLUSTER_META_OTHER;
	rest += 10;
	slash = strchr(rest, '/');
	if (slash == NULL || !name_copy(c->stream, rest, (size_t)(slash - rest)) ||
	    !name_copy(c->name, slash + 1, strlen(slash + 1)))
		return CLUSTER_META_MALFORMED;
	return CLUSTER_META_CONSUMER;
}

enum cluster_meta_key
cluster_meta_decode(const char *cluster, const struct etcd_kv *kv, bool deleted,
		    struct cluster_stream *s, struct cluster_consumer *c)
{
	enum cluster_meta_key kind;

	memset(s, 0, sizeof(*s));
	memset(c, 0, sizeof(*c));
	kind = meta_key_read(cluster, kv->key, s, c);
	if (deleted || kind == CLUSTER_META_OTHER || kind == CLUSTER_META_MALFORMED)
		return kind;
	if (kind == CLUSTER_META_STREAM) {
		s->mod_revision = kv->mod_revision;
		return stream_decode(kv->value, kv->value_size, s) == 0 ? kind :
		       CLUSTER_META_MALFORMED;
	}
	snprintf(s->name, sizeof(s->name), "%s", c->stream);
	c->mod_revision = kv->mod_revision;
	return consumer_decode(kv->value, kv->value_size, c) == 0 ? kind : CLUSTER_META_MALFORMED;
}

/* ---- Transactions ---------------------------------------------------------- */

static int
key_stream(char *key, size_t size, const char *cluster, const char *name)
{
	int n = snprintf(key, size, "/sluice/%s/streams/%s", cluster, name);

	return n > 0 && (size_t)n < size ? 0 : -E2BIG;
}

static int
key_consumer(char *key, size_t size, const char *cluster, const char *stream, const char *name)
{
	int n = snprintf(key, size, "/sluice/%s/consumers/%s%s%s", cluster, stream,
			 name != NULL ? "/" : "", name != NULL ? name : "");

	return n > 0 && (size_t)n < size ? 0 : -E2BIG;
}

/* Reads one key and decodes it as `want`. */
static int
meta_get(struct etcd_client *client, const char *cluster, const char *key,
	 enum cluster_meta_key want, struct cluster_stream *s, struct cluster_consumer *c)
{
	struct etcd_range r;
	int err = etcd_get(client, key, false, 0, &r);

	memset(s, 0, sizeof(*s));
	memset(c, 0, sizeof(*c));
	if (err != 0)
		return err;
	if (r.count == 0)
		err = -ENOENT;
	else if (cluster_meta_decode(cluster, &r.kvs[0], false, s, c) != want)
		err = -EPROTO;
	etcd_range_free(&r);
	return err;
}

int
cluster_stream_get(struct etcd_client *client, const char *cluster, const char *name,
		   struct cluster_stream *out)
{
	char key[CLUSTER_KEY_SIZE];
	struct cluster_consumer unused;
	int err = key_stream(key, sizeof(key), cluster, name);

	if (err == 0)
		err = meta_get(client, cluster, key, CLUSTER_META_STREAM, out, &unused);
	cluster_consumer_free(&unused);
	return err;
}

int
cluster_consumer_get(struct etcd_client *client, const char *cluster, const char *stream,
		     const char *name, struct cluster_consumer *out)
{
	char key[CLUSTER_KEY_SIZE];
	struct cluster_stream unused;
	int err = key_consumer(key, sizeof(key), cluster, stream, name);

	if (err == 0)
		err = meta_get(client, cluster, key, CLUSTER_META_CONSUMER, &unused, out);
	cluster_stream_free(&unused);
	return err;
}

/* The id counter's last value and mod_revision (0, 0: never bumped). */
static int
stream_id_read(struct etcd_client *client, const char *key, uint32_t *last_out, int64_t *rev_out)
{
	struct etcd_range r;
	char text[16] = "";
	char *end;
	unsigned long v = 0;
	int err = etcd_get(client, key, false, 0, &r);

	if (err != 0)
		return err;
	*rev_out = r.count > 0 ? r.kvs[0].mod_revision : 0;
	if (r.count > 0 && r.kvs[0].value_size < sizeof(text))
		memcpy(text, r.kvs[0].value, r.kvs[0].value_size);
	etcd_range_free(&r);
	if (*rev_out != 0) {
		errno = 0;
		v = strtoul(text, &end, 10);
		if (errno != 0 || *end != '\0' || v == 0 || v >= UINT32_MAX)
			return -EPROTO;
	}
	*last_out = (uint32_t)v;
	return 0;
}

/* One try: -ESTALE when the counter moved, -EEXIST when the name is taken. */
static int
stream_create_once(struct etcd_client *client, const char *cluster, struct cluster_stream *s,
		   const char *key, int64_t *revision_out)
{
	char counter_key[CLUSTER_KEY_SIZE];
	char id[16];
	char *text;
	size_t size;
	uint32_t last;
	int64_t counter_rev;
	bool ok = false;
	int err;

	snprintf(counter_key, sizeof(counter_key), "/sluice/%s/stream_id", cluster);
	err = stream_id_read(client, counter_key, &last, &counter_rev);
	if (err != 0)
		return err;
	s->stream_id = last + 1;
	snprintf(id, sizeof(id), "%u", s->stream_id);
	err = cluster_stream_encode(s, &text, &size);
	if (err != 0)
		return err;
	struct etcd_compare cmp[2] = {
		{ .key = counter_key, .target = ETCD_TARGET_MOD, .number = counter_rev },
		{ .key = key, .target = ETCD_TARGET_VERSION, .number = 0 },
	};
	struct etcd_op put[2] = {
		{ .kind = ETCD_OP_PUT, .key = counter_key, .value = id, .value_size = strlen(id) },
		{ .kind = ETCD_OP_PUT, .key = key, .value = text, .value_size = size },
	};
	err = etcd_txn(client, cmp, 2, put, 2, NULL, 0, &ok, revision_out);
	free(text);
	if (err != 0 || ok)
		return err;
	return -ESTALE;   /* The caller reads the stream key: taken, or the counter moved. */
}

int
cluster_stream_create(struct etcd_client *client, const char *cluster, struct cluster_stream *s,
		      int64_t *revision_out)
{
	char key[CLUSTER_KEY_SIZE];
	struct etcd_range r;
	int err = key_stream(key, sizeof(key), cluster, s->name);

	for (uint32_t i = 0; err == 0 && i < CLUSTER_STREAM_CAS_TRIES; i++) {
		err = stream_create_once(client, cluster, s, key, revision_out);
		if (err != -ESTALE)
			return err;
		err = etcd_get(client, key, false, 0, &r);
		if (err != 0)
			return err;
		err = r.count > 0 ? -EEXIST : 0;
		etcd_range_free(&r);
	}
	return err != 0 ? err : -EBUSY;
}

/*
 * A txn of `ops` if streams/<name> has `mod_revision` (and `fence` holds, when not
 * NULL): -ESTALE, or -ENOENT when the stream is gone.
 */
static int
stream_txn(struct etcd_client *client, const char *key, int64_t mod_revision,
	   const struct cluster_fence *fence, const struct etcd_op *ops, uint32_t count,
	   int64_t *revision_out)
{
	struct etcd_compare cmp[2] = { { .key = key, .target = ETCD_TARGET_MOD,
					 .number = mod_revision } };
	struct etcd_range r;
	bool ok = false;
	int err;

	if (fence != NULL)
		cmp[1] = fence->compare;
	err = etcd_txn(client, cmp, fence != NULL ? 2 : 1, ops, count, NULL, 0, &ok, revision_out);

	if (err != 0 || ok)
		return err;
	err = etcd_get(client, key, false, 0, &r);
	if (err != 0)
		return err;
	err = r.count > 0 ? -ESTALE : -ENOENT;
	etcd_range_free(&r);
	return err;
}

int
cluster_stream_put(struct etcd_client *client, const char *cluster,
		   const struct cluster_stream *s, const struct cluster_fence *fence,
		   int64_t *revision_out)
{
	char key[CLUSTER_KEY_SIZE];
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = key };
	char *text;
	int err = key_stream(key, sizeof(key), cluster, s->name);

	if (err == 0)
		err = cluster_stream_encode(s, &text, &put.value_size);
	if (err != 0)
		return err;
	put.value = text;
	err = stream_txn(client, key, s->mod_revision, fence, &put, 1, revision_out);
	free(text);
	return err;
}

int
cluster_stream_delete(struct etcd_client *client, const char *cluster,
		      const struct cluster_stream *s, int64_t *revision_out)
{
	char key[CLUSTER_KEY_SIZE];
	char consumers[CLUSTER_KEY_SIZE];
	int err = key_stream(key, sizeof(key), cluster, s->name);

	if (err == 0)
		err = key_consumer(consumers, sizeof(consumers), cluster, s->name, "");
	if (err != 0)
		return err;
	struct etcd_op del[2] = {
		{ .kind = ETCD_OP_DELETE, .key = key },
		{ .kind = ETCD_OP_DELETE, .key = consumers, .prefix = true },
	};

	return stream_txn(client, key, s->mod_revision, NULL, del, 2, revision_out);
}

/*
 * The consumers under `prefix` number fewer than `max` (-EDQUOT otherwise); *revision_out:
 * the store's revision the count is of.
 */
static int
consumers_count(struct etcd_client *client, const char *prefix, uint32_t max,
		int64_t *revision_out)
{
	struct etcd_range r;
	int err = etcd_get(client, prefix, true, max, &r);

	if (err != 0)
		return err;
	err = r.count >= max ? -EDQUOT : 0;
	*revision_out = r.revision;
	etcd_range_free(&r);
	return err;
}

int
cluster_consumer_put(struct etcd_client *client, const char *cluster,
		     const struct cluster_consumer *c, const struct cluster_stream *s, bool create,
		     uint32_t consumers_max, int64_t *revision_out)
{
	char skey[CLUSTER_KEY_SIZE];
	char ckey[CLUSTER_KEY_SIZE];
	char prefix[CLUSTER_KEY_SIZE];
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = ckey };
	struct etcd_range r;
	int64_t counted = 0;
	char *text;
	bool ok = false;
	int err = key_stream(skey, sizeof(skey), cluster, s->name);

	if (err == 0)
		err = key_consumer(ckey, sizeof(ckey), cluster, s->name, c->name);
	if (err == 0)    /* "consumers/<stream>/": the slash keeps other streams' out. */
		err = key_consumer(prefix, sizeof(prefix), cluster, s->name, "");
	if (err == 0 && create && consumers_max > 0)
		err = consumers_count(client, prefix, consumers_max, &counted);
	if (err == 0)
		err = cluster_consumer_encode(c, &text, &put.value_size);
	if (err != 0)
		return err;
	put.value = text;
	/*
	 * The stream is still this one (its mod_revision), the consumer absent if created,
	 * and, with a limit, no consumer of the stream put since it was counted.
	 */
	struct etcd_compare cmp[3] = {
		{ .key = skey, .target = ETCD_TARGET_MOD, .number = s->mod_revision },
		{ .key = ckey, .target = create ? ETCD_TARGET_VERSION : ETCD_TARGET_MOD,
		  .number = create ? 0 : c->mod_revision },
		{ .key = prefix, .prefix = true, .target = ETCD_TARGET_MOD,
		  .result = ETCD_LESS, .number = counted + 1 },
	};

	err = etcd_txn(client, cmp, counted > 0 ? 3 : 2, &put, 1, NULL, 0, &ok, revision_out);
	free(text);
	if (err != 0 || ok)
		return err;
	err = etcd_get(client, ckey, false, 0, &r);
	if (err != 0)
		return err;
	err = create && r.count > 0 ? -EEXIST : -ESTALE;
	etcd_range_free(&r);
	return err;
}

int
cluster_consumer_delete(struct etcd_client *client, const char *cluster, const char *stream_name,
			const char *name, int64_t *revision_out)
{
	char ckey[CLUSTER_KEY_SIZE];
	struct etcd_op del = { .kind = ETCD_OP_DELETE, .key = ckey };
	struct etcd_compare present = { .key = ckey, .target = ETCD_TARGET_VERSION,
					.result = ETCD_GREATER, .number = 0 };
	bool ok = false;
	int err = key_consumer(ckey, sizeof(ckey), cluster, stream_name, name);

	if (err == 0)
		err = etcd_txn(client, &present, 1, &del, 1, NULL, 0, &ok, revision_out);
	return err != 0 ? err : ok ? 0 : -ENOENT;
}
