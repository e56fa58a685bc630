/*
 * kinesis_cluster.c - the Kinesis actions in cluster mode (docs/CLUSTER.md "Stream
 * metadata"): their metadata writes go to etcd (metadata_cluster_*, which returns once
 * this node's cache holds them) and the streams in memory follow what other nodes changed
 * (kinesis_cluster_follow, from kinesis_poll). In single-node mode every write is
 * SQLite's.
 *
 * What follows other nodes: streams created and deleted, retention, mode and settings,
 * reshards (new shard indexes, parents closing, their cuts), consumers (the table in memory,
 * kinesis_consumers_follow) and the resource policies' index (policy_store_reload),
 * encryption (kinesis_encryption_follow: memory and the log); tags and account settings
 * are read from the store at each call. Every action runs in cluster mode (a
 * SubscribeToShard only on a node holding a replica of the shard: its handler refuses
 * it elsewhere).
 *
 * Reshards (docs/CLUSTER.md "Resharding in cluster mode"): the action's node writes
 * the children and the parents "closing" in one etcd transaction; the parent's
 * leader, wherever it is, closes the parent in its log (kinesis_cluster_closes, on the
 * closer thread) and records "closed" at that end once every record up to it is
 * acknowledged; followers' copies stay open (the leader-epoch handshakes go on) and
 * their readers end at the recorded end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "control/policy_store.h"

/* New streams adopted per follow pass; more wait for the next pass. */
#define KINESIS_FOLLOW_NEW_MAX 64u

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
	return metadata_cluster_consumer_add(k->mc, s->name, name, created_ms, tags, tag_count,
					     KINESIS_CONSUMERS_PER_STREAM_MAX);
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
	uint8_t grown[SLUICE_STREAMS_MAX / 8];  /* By slot: shards added or closed. */
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

/* A new shard index of a stream in memory (a reshard through another node): appended. */
static int
follow_shard_add(struct kinesis *k, struct kinesis_stream *s, const struct metadata_shard *msh)
{
	struct kinesis_shard *shards = realloc(s->shards, (s->shard_count + 1) * sizeof(*shards));

	if (shards == NULL)
		return -ENOMEM;
	s->shards = shards;
	memset(&shards[s->shard_count], 0, sizeof(*shards));
	s->shard_count++;
	k->shards_total++;
	return kinesis_load_shard(k, s->stream_id, msh);
}

/*
 * A shard of the store for a stream in memory: new indexes are appended, a parent a
 * reshard closed becomes closed (close_pending until its leader's cut is recorded),
 * and a recorded cut gives it its EndingSequenceNumber. Shards arrive in index order.
 */
static int
follow_shard(void *arg, uint32_t stream_id, const struct metadata_shard *msh)
{
	struct kinesis_follow *f = arg;
	struct kinesis_stream *s = kinesis_stream_by_id(f->k, stream_id);
	struct kinesis_shard *sh;
	uint32_t slot;
	int rc = 0;

	if (s == NULL || s->status == KINESIS_DELETING || msh->shard_index > s->shard_count)
		return 0;   /* Adopted whole, going, or a gap the next pass sees filled. */
	slot = (uint32_t)(s - f->k->streams);
	if (msh->shard_index == s->shard_count) {
		rc = follow_shard_add(f->k, s, msh);
		f->grown[slot / 8] |= (uint8_t)(1u << (slot % 8));
		return rc;
	}
	sh = &s->shards[msh->shard_index];
	if (msh->closed && !sh->closed) {
		sh->closed = true;
		sh->close_pending = msh->closing;
		sh->seq_end = msh->seq_end;
		f->grown[slot / 8] |= (uint8_t)(1u << (slot % 8));
	} else if (msh->closed && !msh->closing && sh->close_pending) {
		if (sh->cut_here && sh->cut_end != msh->seq_end)
			diag_info("kinesis", "cluster: stream %s shard %u ends at %llu, the cut of its "
				  "new leader (this node cut it at %llu, not acknowledged)", s->name,
				  sh->index, (unsigned long long)msh->seq_end,
				  (unsigned long long)sh->cut_end);
		sh->seq_end = msh->seq_end;
		sh->close_pending = false;
	}
	return rc;
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
				  METADATA_CHANGE_STREAM_DELETED | METADATA_CHANGE_STREAM_UPDATED | \
				  METADATA_CHANGE_RESHARDED | METADATA_CHANGE_SHARD_CLOSED | \
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
	rc = metadata_load(k->md, follow_stream, follow_shard, f);
	/* A reshard through another node: routes to the children, UPDATING until recorded. */
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if ((f->grown[i / 8] & (1u << (i % 8))) == 0 || !s->used)
			continue;
		kinesis_stream_index(s);
		if (s->status == KINESIS_ACTIVE || s->status == KINESIS_UPDATING)
			kinesis_reshard_status(k, s);
	}
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

/* ---- Reshards: the parent's leader cuts it (docs/CLUSTER.md "Resharding in cluster mode") */

/*
 * Whether this node leads the log shard now, and in which epoch. The cut is made
 * and recorded only here: every append to the shard happens on its leader, so its
 * log's end is the shard's end.
 */
static bool
cluster_leads(struct kinesis *k, uint64_t log_id, uint64_t *epoch_out)
{
	return k->repl.lead_epoch != NULL && k->repl.lead_epoch(k->repl.ctx, log_id, epoch_out) == 0;
}

void
kinesis_cluster_cut_done(struct kinesis *k, uint32_t stream_id, uint32_t index, uint64_t seq_end,
			 int rc)
{
	struct kinesis_stream *s = kinesis_stream_by_id(k, stream_id);
	struct kinesis_shard *sh;

	if (s == NULL || index >= s->shard_count)
		return;   /* Deleted meanwhile. */
	sh = &s->shards[index];
	sh->cut_queued = false;
	if (rc != 0) {
		diag_error("kinesis", "stream %s: closing shard %u in the log: %s (tried again)",
			   s->name, index, strerror(-rc));
		return;
	}
	sh->cut_here = true;
	sh->cut_end = seq_end;
	/* The first transaction's effect on the leader (tests wait for this line). */
	diag_info("kinesis", "stream %s: shard %u cut in the log here at %llu (its end is "
		  "recorded once acknowledged)", s->name, index, (unsigned long long)seq_end);
}

/*
 * The second transaction: records `sh`'s cut once every record up to it is held by
 * the replicas [cluster] acks asks for. Then any in-sync replica that becomes the
 * leader holds the whole parent (the leader-epoch rule), and the end etcd names is
 * one every reader reaches. The transaction also compares the shard's placement
 * (this node its leader in `epoch`): a node deposed since it looked records nothing.
 * Returns true while it still waits.
 */
static bool
cluster_cut_record(struct kinesis *k, struct kinesis_stream *s, struct kinesis_shard *sh,
		   uint64_t epoch)
{
	uint64_t acked = 0;
	int rc;

	if (k->repl.acked == NULL || k->repl.acked(k->repl.ctx, sh->log_id, &acked) != 0)
		return true;
	if (sh->cut_end != UINT64_MAX && acked <= sh->cut_end)
		return true;
	rc = metadata_cluster_shard_closed(k->mc, s->name, s->stream_id, sh->index, sh->cut_end,
					   k->config.cluster_node_id, epoch);
	if (rc == -EALREADY) {
		/* A successor's cut came first: the cache brings its end (kinesis_cluster_follow). */
		return false;
	}
	if (rc == -ESTALE) {
		/*
		 * Deposed: its successor records its own end. Not cut or recorded again in
		 * this epoch (once logged, counted in metadata_cluster_status's cuts_fenced).
		 */
		diag_warn("kinesis", "stream %s: shard %u: its cut at %llu is not recorded: the "
			  "placement no longer names this node its leader in epoch %llu",
			  s->name, sh->index, (unsigned long long)sh->cut_end,
			  (unsigned long long)epoch);
		sh->cut_fenced_epoch = epoch;
		sh->cut_here = false;
		return false;
	}
	if (rc != 0) {
		diag_warn("kinesis", "stream %s: recording the cut of shard %u: %s (tried again)",
			  s->name, sh->index, strerror(-rc));
		return true;
	}
	diag_info("kinesis", "stream %s: shard %u closed at %llu (its leader's cut)", s->name,
		  sh->index, (unsigned long long)sh->cut_end);
	sh->seq_end = sh->cut_end;
	sh->close_pending = false;
	return false;
}

uint32_t
kinesis_cluster_closes(struct kinesis *k)
{
	uint64_t mono = clock_mono_ns();
	uint32_t waiting = 0;
	bool full;

	if (k->mc == NULL)
		return 0;
	full = mono >= k->cluster_fence_due_ns;
	if (full)
		k->cluster_fence_due_ns = mono + KINESIS_CLUSTER_FENCE_MS * 1000000ull;
	for (uint32_t i = 0; i < k->streams_high; i++) {
		struct kinesis_stream *s = &k->streams[i];

		for (uint32_t j = 0; s->used && s->status != KINESIS_DELETING && j < s->shard_count;
		     j++) {
			struct kinesis_shard *sh = &s->shards[j];
			uint64_t epoch = 0;
			bool leads;

			/* Recorded ones (a new leader's fence) are looked at on the slower pace. */
			if (!sh->closed || sh->cut_queued || (sh->cut_here && !sh->close_pending) ||
			    (!sh->close_pending && (!full || sh->seq_end == UINT64_MAX)))
				continue;
			/* Deposed in this epoch (its record refused): until it leads anew. */
			leads = cluster_leads(k, sh->log_id, &epoch) && epoch != sh->cut_fenced_epoch;
			if (!leads) {
				/*
				 * A handshake may cut this copy's tail: cut again when leading again.
				 * Not counted: leadership moving here is seen at the usual pace.
				 */
				sh->cut_here = false;
				continue;
			}
			if (!sh->cut_here) {
				/* Closed, also when recorded already: a new leader's copy takes no more. */
				sh->cut_queued = kinesis_closer_push(k, s, j) == 0;
				waiting += sh->close_pending;
				continue;
			}
			waiting += cluster_cut_record(k, s, sh, epoch);
		}
	}
	return waiting;
}
