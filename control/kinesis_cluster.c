/*
 * kinesis_cluster.c - the Kinesis actions in cluster mode (docs/CLUSTER.md "Stream
 * metadata"): their metadata writes go to etcd (metadata_cluster_*, which returns once
 * this node's cache holds them), the streams in memory follow what other nodes changed
 * (kinesis_cluster_follow, from kinesis_poll), and the operations not built for a
 * cluster are refused before they run. In single-node mode every write is SQLite's.
 *
 * What follows other nodes: streams created and deleted, retention, mode and settings,
 * consumers (the table in memory, kinesis_consumers_follow) and the resource policies'
 * index (policy_store_reload); tags and account settings are read from the store at each
 * call; encryption (kinesis_encryption_follow: memory and the log). Reshards keep state
 * in memory or in SQLite alone: refused (KINESIS_OP_LOCAL) until built on etcd.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/diag.h"
#include "control/kinesis.h"
#include "control/policy_store.h"

/* New streams adopted per follow pass; more wait for the next pass. */
#define KINESIS_FOLLOW_NEW_MAX 64u

bool
kinesis_cluster_refused(struct kinesis *k, struct api_call *call, const struct kinesis_op *op)
{
	if (k->mc == NULL || (op->flags & KINESIS_OP_LOCAL) == 0)
		return false;
	kinesis_error(call, "InvalidArgumentException", "%s is not yet supported in cluster mode.",
		      op->name);
	return true;
}

/* ---- Writes ---------------------------------------------------------------------- */

int
kinesis_md_stream_create(struct kinesis *k, struct metadata_stream *ms,
			 const struct metadata_shard *shards, const struct metadata_tag *tags,
			 size_t tag_count)
{
	if (k->mc == NULL)
		return metadata_stream_create(k->md, ms, shards, tags, tag_count);
	return metadata_cluster_stream_create(k->mc, ms, shards, tags, tag_count);
}

/* Cluster mode: the stream leaves etcd at once; the cache removes it here, and the
 * action's own delete (kinesis_stream_delete_finish) finds it gone, which it allows. */
int
kinesis_md_stream_deleting(struct kinesis *k, const struct kinesis_stream *s)
{
	if (k->mc == NULL)
		return metadata_stream_deleting(k->md, s->stream_id);
	return metadata_cluster_stream_delete(k->mc, s->name);
}

int
kinesis_md_retention_set(struct kinesis *k, const struct kinesis_stream *s, uint32_t hours)
{
	if (k->mc == NULL)
		return metadata_retention_set(k->md, s->stream_id, hours);
	return metadata_cluster_retention_set(k->mc, s->name, hours);
}

int
kinesis_md_mode_set(struct kinesis *k, const struct kinesis_stream *s, enum metadata_mode mode)
{
	if (k->mc == NULL)
		return metadata_mode_set(k->md, s->stream_id, mode);
	return metadata_cluster_mode_set(k->mc, s->name, mode);
}

int
kinesis_md_setting_set(struct kinesis *k, const struct kinesis_stream *s,
		       enum metadata_setting which, uint32_t value)
{
	if (k->mc == NULL)
		return metadata_setting_set(k->md, s->stream_id, which, value);
	return metadata_cluster_setting_set(k->mc, s->name, which, value);
}

int
kinesis_md_tags_put(struct kinesis *k, const struct kinesis_stream *s, const char *resource,
		    const struct metadata_tag *tags, size_t count, uint32_t max)
{
	if (k->mc == NULL)
		return metadata_tags_put(k->md, s->stream_id, resource, tags, count, max);
	return metadata_cluster_tags_put(k->mc, s->name, resource, tags, count, max);
}

int
kinesis_md_tags_remove(struct kinesis *k, const struct kinesis_stream *s, const char *resource,
		       const struct metadata_tag *keys, size_t count)
{
	if (k->mc == NULL)
		return metadata_tags_remove(k->md, s->stream_id, resource, keys, count);
	return metadata_cluster_tags_remove(k->mc, s->name, resource, keys, count);
}

int
kinesis_md_policy_put(struct kinesis *k, const struct kinesis_stream *s, const char *resource,
		      const char *json, size_t size, char *message, size_t message_size)
{
	int rc;

	if (k->mc == NULL)
		return policy_store_put(k->policies, s->stream_id, resource, json, size, message,
					message_size);
	rc = policy_store_check(k->policies, s->stream_id, resource, json, size, message,
				message_size);
	if (rc == 0)
		rc = metadata_cluster_policy_put(k->mc, s->name, resource, json, size);
	/* In the cache now: this node enforces it from its next call on. */
	return rc == 0 ? policy_store_reload(k->policies) : rc;
}

int
kinesis_md_policy_delete(struct kinesis *k, const struct kinesis_stream *s, const char *resource)
{
	int rc;

	if (k->mc == NULL)
		return policy_store_delete(k->policies, s->stream_id, resource);
	rc = metadata_cluster_policy_delete(k->mc, s->name, resource);
	return rc == 0 ? policy_store_reload(k->policies) : rc;
}

int
kinesis_md_consumer_add(struct kinesis *k, const struct kinesis_stream *s, const char *name,
			size_t name_size, uint64_t created_ms, const struct metadata_tag *tags,
			size_t tag_count)
{
	if (k->mc == NULL)
		return metadata_consumer_add(k->md, s->stream_id, name, name_size, created_ms,
					     tags, tag_count);
	return metadata_cluster_consumer_add(k->mc, s->name, name, created_ms, tags, tag_count);
}

/* Single-node: the policy goes first (a consumer registered again under the name is a new
 * resource). Cluster mode: the consumer's key holds its policy; both leave in one delete. */
int
kinesis_md_consumer_remove(struct kinesis *k, const struct kinesis_stream *s, const char *name,
			   size_t name_size)
{
	int rc;

	if (k->mc != NULL)
		return metadata_cluster_consumer_remove(k->mc, s->name, name);
	rc = policy_store_delete(k->policies, s->stream_id, name);
	if (rc == 0 || rc == -ENOENT)
		rc = metadata_consumer_remove(k->md, s->stream_id, name, name_size);
	return rc;
}

int
kinesis_md_account_set(struct kinesis *k, const char *key, const int64_t *values, size_t count)
{
	if (k->mc == NULL)
		return metadata_account_set(k->md, key, values, count);
	return metadata_cluster_account_set(k->mc, key, values, count);
}

/* ---- Following other nodes ------------------------------------------------------- */

struct kinesis_follow {
	struct kinesis *k;
	uint8_t seen[SLUICE_STREAMS_MAX / 8];   /* By slot: still in the store. */
	struct metadata_stream adopt[KINESIS_FOLLOW_NEW_MAX];
	char names[KINESIS_FOLLOW_NEW_MAX][SLUICE_STREAM_NAME_SIZE_MAX + 1];
	uint32_t adopt_count;
	bool more;                              /* New streams left for the next pass. */
};

/* A stream of the store: known ones take its settings, new ones are noted. */
static int
follow_stream(void *arg, const struct metadata_stream *ms)
{
	struct kinesis_follow *f = arg;
	struct kinesis *k = f->k;
	struct kinesis_stream *s = kinesis_stream_by_id(k, ms->stream_id);
	uint32_t slot;

	if (s == NULL && !ms->deleting) {
		if (f->adopt_count == KINESIS_FOLLOW_NEW_MAX) {
			f->more = true;
			return 0;
		}
		snprintf(f->names[f->adopt_count], sizeof(f->names[0]), "%s", ms->name);
		f->adopt[f->adopt_count] = *ms;
		f->adopt[f->adopt_count].name = f->names[f->adopt_count];
		f->adopt_count++;
		return 0;
	}
	if (s == NULL)
		return 0;
	slot = (uint32_t)(s - k->streams);
	f->seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
	if (s->retention_hours != ms->retention_hours &&
	    kinesis_log_retention(k, s->stream_id, ms->retention_hours) == 0)
		s->retention_hours = ms->retention_hours;
	s->mode = ms->mode;
	s->shard_metrics = ms->shard_metrics & KINESIS_METRICS_ALL;
	s->max_record_kib = ms->max_record_kib;
	s->warm_mibps = ms->warm_mibps;
	return 0;
}

static int
follow_no_shard(void *arg, uint32_t stream_id, const struct metadata_shard *shard)
{
	(void)arg;
	(void)stream_id;
	(void)shard;
	return 0;
}

/* A stream in memory the store no longer has: deleted through another node. */
static void
follow_deleted(struct kinesis *k, struct kinesis_stream *s)
{
	diag_info("kinesis", "cluster: stream %s deleted through another node", s->name);
	kinesis_consumers_stream_deleted(k, s->stream_id);
	kinesis_status_schedule(k, s, KINESIS_DELETING, KINESIS_DELETING);
	if (s->status_due_ns == 0 && kinesis_stream_delete_finish(k, s) != 0)
		diag_error("kinesis", "cluster: finishing the delete of %s failed (retried at "
			   "start)", s->name);
}

/* The changes a cluster node's streams, consumers and policy index in memory follow. */
#define KINESIS_CLUSTER_FOLLOWED (METADATA_CHANGE_STREAM_CREATED | \
				  METADATA_CHANGE_STREAM_DELETING | \
				  METADATA_CHANGE_STREAM_DELETED | \
				  METADATA_CHANGE_STREAM_UPDATED | \
				  METADATA_CHANGE_CONSUMERS | METADATA_CHANGE_POLICIES)

int
kinesis_cluster_wake_open(struct kinesis *k)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if (k->mc == NULL)
		return 0;
	rc = metadata_watch_open(k->md, KINESIS_CLUSTER_FOLLOWED, &k->cluster_watch);
	if (rc != 0)
		return rc;
	if (epoll_ctl(k->wake_fd, EPOLL_CTL_ADD, metadata_watch_fd(k->cluster_watch), &ev) != 0)
		return -errno;
	return 0;
}

void
kinesis_cluster_follow(struct kinesis *k)
{
	struct kinesis_follow *f;
	uint64_t generation;
	int rc;

	if (k->mc == NULL)
		return;
	/* Taken before reading (the read holds at least these changes); clears the wake. */
	generation = metadata_watch_take(k->cluster_watch);
	if (generation == k->cluster_seen)
		return;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return;   /* The next poll tries again. */
	f->k = k;
	rc = metadata_load(k->md, follow_stream, follow_no_shard, f);
	for (uint32_t i = 0; rc == 0 && i < f->adopt_count; i++) {
		diag_info("kinesis", "cluster: stream %s created through another node",
			  f->adopt[i].name);
		rc = kinesis_stream_adopt(k, &f->adopt[i]);
	}
	for (uint32_t i = 0; rc == 0 && !f->more && i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];
		bool adopted = false;

		for (uint32_t j = 0; s->used && j < f->adopt_count && !adopted; j++)
			adopted = f->adopt[j].stream_id == s->stream_id;
		if (s->used && !adopted && s->status != KINESIS_DELETING &&
		    (f->seen[i / 8] & (1u << (i % 8))) == 0)
			follow_deleted(k, s);
	}
	/* After the streams: a consumer of a stream adopted above is taken too. */
	if (rc == 0)
		rc = kinesis_consumers_follow(k);
	if (rc == 0)
		rc = kinesis_encryption_follow(k);
	if (rc == 0 && k->policies != NULL)
		rc = policy_store_reload(k->policies);
	if (rc != 0)
		diag_warn("kinesis", "cluster: following the store: %s (next poll)", strerror(-rc));
	else if (!f->more)
		k->cluster_seen = generation;
	free(f);
}
