/*
 * kinesis_reshard.c - SplitShard, MergeShards, UpdateShardCount, and the
 * lineage helpers reads use (ChildShards, end of a closed shard).
 *
 * A reshard is planned on a copy of the stream's shard array, then committed
 * in three steps (docs/ARCHITECTURE.md, "Resharding"):
 *
 *   STEP  WHERE   WHAT
 *   1     SQLite  one transaction: parents closed = 2 (closing), children
 *                 inserted, shard_count raised
 *   2     memory  the copy replaces the array: from here on every put routes
 *                 to the children (the server thread is the only router);
 *                 the parents are queued to the closer thread
 *   3     closer  (its own thread) routes.sync when the dataplane runs:
 *                 the route table from SQLite is published with RCU, every
 *                 worker passes a quiescent state and submits what it staged
 *                 (dp_flush_staged); then log_shard_close(parent): batches the
 *                 writer accepted are durable first, its last seq is returned
 *   4     server  kinesis_reshard_poll records it: EndingSequenceNumber in
 *                 SQLite (closed = 1) and memory; until then reads of the
 *                 parent do not end and it shows no EndingSequenceNumber
 *
 * A crash after 1 leaves closed = 2: the next start redoes 3 and 4 before
 * serving (the close is idempotent in the log). Puts submitted before step 2 that the writer had
 * not accepted by step 3 complete with -EPIPE; the put path answers them as
 * throttled, so the producer retries and the retry routes to a child.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/seqnum.h"
#include "nvme-log/log.h"

#define KINESIS_DAY_MS (24ull * 3600 * 1000)

/* ---- Plans ---------------------------------------------------------------- */

int
kinesis_reshard_init(struct kinesis_reshard *plan, const struct kinesis_stream *s, uint32_t extra,
		     uint64_t created_s)
{
	memset(plan, 0, sizeof(*plan));
	plan->capacity = s->shard_count + extra;
	plan->shards = calloc(plan->capacity, sizeof(*plan->shards));
	if (plan->shards == NULL)
		return -ENOMEM;
	memcpy(plan->shards, s->shards, s->shard_count * sizeof(*s->shards));
	plan->count = s->shard_count;
	plan->old_count = s->shard_count;
	plan->created_s = created_s;
	return 0;
}

void
kinesis_reshard_free(struct kinesis_reshard *plan)
{
	free(plan->shards);
	plan->shards = NULL;
}

int
kinesis_split_check(const struct kinesis_shard *sh, hashkey_t new_start)
{
	/* Written so that start + 1 cannot wrap: start < end always holds when it matters. */
	if (new_start <= sh->start || new_start - sh->start <= 1 || new_start >= sh->end)
		return -EINVAL;
	return 0;
}

bool
kinesis_merge_check(const struct kinesis_shard *a, const struct kinesis_shard *b)
{
	return !a->closed && !b->closed && a->end != HASHKEY_MAX && a->end + 1 == b->start;
}

static struct kinesis_shard *
kinesis_reshard_child(struct kinesis_reshard *plan, hashkey_t start, hashkey_t end,
		      int64_t parent, int64_t adjacent_parent)
{
	struct kinesis_shard *sh;

	assert(plan->count < plan->capacity);
	sh = &plan->shards[plan->count];
	memset(sh, 0, sizeof(*sh));
	sh->index = plan->count++;
	sh->start = start;
	sh->end = end;
	sh->parent = parent;
	sh->adjacent_parent = adjacent_parent;
	sh->created_s = plan->created_s;
	return sh;
}

/* Closes a shard of the plan; a shard created by this plan was never written: empty. */
static void
kinesis_reshard_close(struct kinesis_reshard *plan, uint32_t index)
{
	struct kinesis_shard *sh = &plan->shards[index];

	sh->closed = true;
	sh->closed_s = plan->created_s;
	sh->seq_end = UINT64_MAX;
	sh->close_pending = index < plan->old_count;
}

int
kinesis_reshard_split(struct kinesis_reshard *plan, uint32_t index, hashkey_t new_start)
{
	struct kinesis_shard *sh;
	hashkey_t start;
	hashkey_t end;

	if (index >= plan->count || plan->count + 2 > plan->capacity)
		return -EINVAL;
	sh = &plan->shards[index];
	/* Internally any cut start < new_start <= end works; the API checks AWS's rule. */
	if (sh->closed || new_start <= sh->start || new_start > sh->end)
		return -EINVAL;
	start = sh->start;
	end = sh->end;
	kinesis_reshard_close(plan, index);
	kinesis_reshard_child(plan, start, new_start - 1, index, -1);
	kinesis_reshard_child(plan, new_start, end, index, -1);
	return 0;
}

int
kinesis_reshard_merge(struct kinesis_reshard *plan, uint32_t a, uint32_t b)
{
	if (a >= plan->count || b >= plan->count || plan->count + 1 > plan->capacity ||
	    !kinesis_merge_check(&plan->shards[a], &plan->shards[b]))
		return -EINVAL;
	kinesis_reshard_close(plan, a);
	kinesis_reshard_close(plan, b);
	kinesis_reshard_child(plan, plan->shards[a].start, plan->shards[b].end, a, b);
	return 0;
}

uint32_t
kinesis_open_count(const struct kinesis_shard *shards, uint32_t count)
{
	uint32_t open = 0;

	for (uint32_t i = 0; i < count; i++)
		open += !shards[i].closed;
	return open;
}

/* The open shard of the plan holding `key` (open shards cover every key). */
static uint32_t
kinesis_reshard_find(const struct kinesis_reshard *plan, hashkey_t key)
{
	for (uint32_t i = plan->count; i-- > 0;) {
		const struct kinesis_shard *sh = &plan->shards[i];

		if (!sh->closed && key >= sh->start && key <= sh->end)
			return i;
	}
	/* Unreachable: the open shards of a plan always cover the whole key space. */
	assert(false);
	return 0;
}

/* Merges the open shards inside [start, end] (already cut at both ends) into one. */
static int
kinesis_reshard_gather(struct kinesis_reshard *plan, hashkey_t start, hashkey_t end)
{
	uint32_t left = kinesis_reshard_find(plan, start);

	while (plan->shards[left].end < end) {
		uint32_t right = kinesis_reshard_find(plan, plan->shards[left].end + 1);
		int rc = kinesis_reshard_merge(plan, left, right);

		if (rc != 0)
			return rc;
		left = plan->count - 1;
	}
	return plan->shards[left].end == end ? 0 : -EINVAL;
}

int
kinesis_reshard_uniform(struct kinesis_reshard *plan, uint32_t target)
{
	int rc = 0;

	if (target == 0)
		return -EINVAL;
	/* Cut at every boundary of the equal partition that is not one already. */
	for (uint32_t i = 1; rc == 0 && i < target; i++) {
		hashkey_t cut = hashkey_range_start(i, target);
		uint32_t at = kinesis_reshard_find(plan, cut);

		if (plan->shards[at].start != cut)
			rc = kinesis_reshard_split(plan, at, cut);
	}
	for (uint32_t i = 0; rc == 0 && i < target; i++) {
		hashkey_t end = i + 1 < target ? hashkey_range_start(i + 1, target) - 1 :
				HASHKEY_MAX;

		rc = kinesis_reshard_gather(plan, hashkey_range_start(i, target), end);
	}
	return rc;
}

/* ---- Commit and recovery ------------------------------------------------- */

int
kinesis_reshard_recover(struct kinesis *k, struct kinesis_stream *s, uint32_t index)
{
	struct kinesis_shard *sh = &s->shards[index];
	uint64_t seq_end = UINT64_MAX;
	int rc = log_shard_close(k->log, sh->log_id, &seq_end);

	if (rc == 0)
		rc = metadata_shard_closed(k->md, s->stream_id, index, seq_end);
	if (rc != 0) {
		diag_error("kinesis", "stream %s: closing shard %u: %s (retried at the next start)",
			   s->name, index, strerror(-rc));
		return rc;
	}
	sh->seq_end = seq_end;
	sh->close_pending = false;
	return 0;
}

/* Step 1: the plan's closings and additions in one SQLite (or etcd) transaction. */
static int
kinesis_reshard_store(struct kinesis *k, struct kinesis_stream *s,
		      const struct kinesis_reshard *plan)
{
	uint32_t added_count = plan->count - plan->old_count;
	uint32_t *closing = calloc(plan->old_count, sizeof(*closing));
	struct metadata_shard *added = calloc(added_count, sizeof(*added));
	uint32_t closing_count = 0;
	int rc = -ENOMEM;

	if (closing == NULL || added == NULL)
		goto out_free;
	for (uint32_t i = 0; i < plan->old_count; i++)
		if (plan->shards[i].closed && !s->shards[i].closed)
			closing[closing_count++] = i;
	for (uint32_t i = 0; i < added_count; i++) {
		const struct kinesis_shard *sh = &plan->shards[plan->old_count + i];

		added[i] = (struct metadata_shard){
			.shard_index = sh->index, .start = sh->start, .end = sh->end,
			.parent = sh->parent, .adjacent_parent = sh->adjacent_parent,
			.created_s = sh->created_s, .closed = sh->closed, .seq_end = sh->seq_end,
		};
	}
	/* Cluster mode: one etcd transaction, answered once this node's cache applied it. */
	if (k->mc != NULL)
		rc = metadata_cluster_reshard(k->mc, s->name, s->stream_id, plan->old_count, closing,
					      closing_count, added, added_count);
	else
		rc = metadata_reshard(k->md, s->stream_id, closing, closing_count, added,
				      added_count, plan->count);
out_free:
	free(closing);
	free(added);
	return rc;
}

/* ---- The closer thread -------------------------------------------------------- */

/*
 * Parent closes run here, not on the API thread: the dataplane cut and
 * log_shard_close() wait for workers and for a commit window, and the API
 * thread keeps serving every shard meanwhile. The API thread records each
 * result in SQLite and memory (kinesis_reshard_poll), as it owns both.
 */
struct kinesis_close {
	uint32_t stream_id;
	uint32_t shard_index;
	uint64_t log_id;
	uint64_t seq_end;
	int rc;
};

struct kinesis_close_list {
	struct kinesis_close *items;
	uint32_t count;
	uint32_t capacity;
};

struct kinesis_closer {
	struct log *log;
	struct kinesis_routes routes;    /* Copied before the thread starts; never changes. */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct kinesis_close_list todo;  /* Under lock. */
	struct kinesis_close_list done;  /* Under lock. */
};

static int
kinesis_close_push(struct kinesis_close_list *list, const struct kinesis_close *c)
{
	if (list->count == list->capacity) {
		uint32_t cap = list->capacity != 0 ? list->capacity * 2 : 64;
		void *p = realloc(list->items, cap * sizeof(*list->items));

		if (p == NULL)
			return -ENOMEM;
		list->items = p;
		list->capacity = cap;
	}
	list->items[list->count++] = *c;
	return 0;
}

static void *
kinesis_closer_main(void *arg)
{
	struct kinesis_closer *cl = arg;
	struct kinesis_close_list work = { 0 };

	pthread_setname_np(pthread_self(), "sluice-closer");
	pthread_mutex_lock(&cl->lock);
	for (;;) {
		struct kinesis_close_list swap;

		while (cl->todo.count == 0 && !cl->stop)
			pthread_cond_wait(&cl->cond, &cl->lock);
		if (cl->todo.count == 0)
			break;
		swap = cl->todo;
		cl->todo = work;
		work = swap;
		pthread_mutex_unlock(&cl->lock);
		/* The dataplane's cut first: new table published, old staging handed over. */
		if (cl->routes.sync != NULL) {
			int err = cl->routes.sync(cl->routes.ctx);

			if (err != 0)
				diag_warn("kinesis", "dataplane cut: %s (late records are refused as "
					  "throttled and retried)", strerror(-err));
		}
		/* Each close costs the log a metadata fsync; a stop leaves the rest to the start. */
		for (uint32_t i = 0; i < work.count; i++) {
			if (__atomic_load_n(&cl->stop, __ATOMIC_RELAXED)) {
				work.count = i;
				break;
			}
			work.items[i].rc = log_shard_close(cl->log, work.items[i].log_id,
							   &work.items[i].seq_end);
		}
		pthread_mutex_lock(&cl->lock);
		for (uint32_t i = 0; i < work.count; i++)
			if (kinesis_close_push(&cl->done, &work.items[i]) != 0)
				diag_error("kinesis", "closer: out of memory (the close is redone "
					   "at the next start)");
		work.count = 0;
	}
	pthread_mutex_unlock(&cl->lock);
	free(work.items);
	return NULL;
}

static int
kinesis_closer_start(struct kinesis *k)
{
	struct kinesis_closer *cl = calloc(1, sizeof(*cl));
	int rc;

	if (cl == NULL)
		return -ENOMEM;
	cl->log = k->log;
	cl->routes = k->routes;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->cond, NULL);
	rc = -pthread_create(&cl->thread, NULL, kinesis_closer_main, cl);
	if (rc != 0) {
		free(cl);
		return rc;
	}
	k->closer = cl;
	return 0;
}

/* Queues the log close of one shard; the caller holds the closer's lock and signals. */
static int
kinesis_closer_add(struct kinesis *k, const struct kinesis_stream *s, uint32_t index)
{
	struct kinesis_close c = {
		.stream_id = s->stream_id, .shard_index = index, .log_id = s->shards[index].log_id,
	};
	int rc = kinesis_close_push(&k->closer->todo, &c);

	k->closes_pending += rc == 0;
	return rc;
}

/* Queues the log close of one shard to the closer thread (started at the first). */
int
kinesis_closer_push(struct kinesis *k, const struct kinesis_stream *s, uint32_t index)
{
	int rc = k->closer == NULL ? kinesis_closer_start(k) : 0;

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&k->closer->lock);
	rc = kinesis_closer_add(k, s, index);
	pthread_cond_signal(&k->closer->cond);
	pthread_mutex_unlock(&k->closer->lock);
	return rc;
}

/*
 * Queues the close of every parent the commit left close_pending, all under one lock: the
 * closer takes a reshard's parents (a merge has two) together, so one reshard costs the
 * dataplane one cut. Cluster mode: none here; the parents' leaders close them
 * (kinesis_cluster_closes, wherever they are).
 */
static int
kinesis_closer_queue(struct kinesis *k, struct kinesis_stream *s, uint32_t old_count)
{
	uint32_t pending = 0;
	int rc = 0;

	for (uint32_t i = 0; k->mc == NULL && i < old_count; i++)
		pending += s->shards[i].close_pending;
	if (pending == 0)
		return 0;
	if (k->closer == NULL && (rc = kinesis_closer_start(k)) != 0)
		return rc;
	pthread_mutex_lock(&k->closer->lock);
	for (uint32_t i = 0; rc == 0 && i < old_count; i++)
		if (s->shards[i].close_pending)
			rc = kinesis_closer_add(k, s, i);
	pthread_cond_signal(&k->closer->cond);
	pthread_mutex_unlock(&k->closer->lock);
	return rc;
}

void
kinesis_reshard_poll(struct kinesis *k)
{
	struct kinesis_close_list done;

	if (k->closes_pending == 0)
		return;
	pthread_mutex_lock(&k->closer->lock);
	done = k->closer->done;
	k->closer->done = (struct kinesis_close_list){ 0 };
	pthread_mutex_unlock(&k->closer->lock);
	for (uint32_t i = 0; i < done.count; i++) {
		const struct kinesis_close *c = &done.items[i];
		struct kinesis_stream *s = kinesis_stream_by_id(k, c->stream_id);
		int rc = c->rc;

		k->closes_pending--;
		if (k->mc != NULL) {
			kinesis_cluster_cut_done(k, c->stream_id, c->shard_index, c->seq_end, rc);
			continue;
		}
		/* A stream deleted meanwhile: nothing to record. */
		if (s == NULL || c->shard_index >= s->shard_count ||
		    !s->shards[c->shard_index].close_pending)
			continue;
		if (rc == 0)
			rc = metadata_shard_closed(k->md, s->stream_id, c->shard_index, c->seq_end);
		if (rc != 0) {
			diag_error("kinesis", "stream %s: closing shard %u: %s (redone at the next "
				   "start)", s->name, c->shard_index, strerror(-rc));
			continue;
		}
		s->shards[c->shard_index].seq_end = c->seq_end;
		s->shards[c->shard_index].close_pending = false;
	}
	free(done.items);
}

void
kinesis_routes_set(struct kinesis *k, const struct kinesis_routes *routes)
{
	if (routes == NULL) {
		/* The closer may be inside routes.sync: joined first, then the copy is gone. */
		kinesis_reshard_stop(k);
		memset(&k->routes, 0, sizeof(k->routes));
		return;
	}
	/* A running closer would keep its older copy: routes are set before serving. */
	assert(k->closer == NULL);
	k->routes = *routes;
}

void
kinesis_reshard_stop(struct kinesis *k)
{
	struct kinesis_closer *cl = k->closer;

	if (cl == NULL)
		return;
	pthread_mutex_lock(&cl->lock);
	__atomic_store_n(&cl->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
	pthread_join(cl->thread, NULL);
	kinesis_reshard_poll(k);
	free(cl->todo.items);
	free(cl->done.items);
	pthread_mutex_destroy(&cl->lock);
	pthread_cond_destroy(&cl->cond);
	free(cl);
	k->closer = NULL;
}

int
kinesis_reshard_commit(struct kinesis *k, struct kinesis_stream *s, struct kinesis_reshard *plan)
{
	uint32_t old_count = plan->old_count;
	int rc = kinesis_reshard_store(k, s, plan);

	if (rc != 0)
		return rc;
	for (uint32_t i = old_count; i < plan->count; i++)
		plan->shards[i].log_id = LOG_SHARD_ID(s->stream_id, i);
	free(s->shards);
	s->shards = plan->shards;
	k->shards_total += plan->count - s->shard_count;
	s->shard_count = plan->count;
	plan->shards = NULL;
	kinesis_stream_index(s);
	rc = kinesis_closer_queue(k, s, old_count);
	if (rc != 0)
		diag_error("kinesis", "stream %s: parent closes not queued: %s (redone at the next "
			   "start)", s->name, strerror(-rc));
	return 0;
}

uint64_t
kinesis_shard_closed_s(const struct kinesis_stream *s, uint32_t index)
{
	const struct kinesis_shard *sh = &s->shards[index];

	if (!sh->closed)
		return 0;
	return sh->closed_s != 0 ? sh->closed_s : sh->created_s;
}

/*
 * Closed more than the stream's retention ago (log_retention_ms: [log] retention_hour_ms).
 * closed_s is the second the close fell in, now_s the current one: counting from the end
 * of closed_s, the shard goes only once its last record is past retention (which
 * matters when retention_hour_ms makes retention a few seconds).
 */
static bool
kinesis_shard_expired(const struct kinesis *k, const struct kinesis_stream *s, uint32_t index,
		      uint64_t now_s)
{
	uint64_t closed_s = kinesis_shard_closed_s(s, index);

	return closed_s != 0 &&
	       (closed_s + 1) * 1000 + log_retention_ms(k->log, s->retention_hours) < now_s * 1000;
}

/* Open at the start of second `t`: created before it (or a first shard), not closed before. */
static bool
kinesis_shard_open_at(const struct kinesis_stream *s, uint32_t index, uint64_t t)
{
	const struct kinesis_shard *sh = &s->shards[index];

	if (sh->parent >= 0 && sh->created_s >= t)
		return false;
	return !sh->closed || kinesis_shard_closed_s(s, index) >= t;
}

static bool
kinesis_parent_gone(const struct kinesis *k, const struct kinesis_stream *s, int64_t parent,
		    uint64_t now_s)
{
	return parent < 0 || kinesis_shard_expired(k, s, (uint32_t)parent, now_s);
}

bool
kinesis_shard_listed(const struct kinesis *k, const struct kinesis_stream *s, uint32_t index,
		     const struct kinesis_shard_filter *filter, uint64_t now_s)
{
	const struct kinesis_shard *sh = &s->shards[index];

	if (kinesis_shard_expired(k, s, index, now_s))
		return false;
	switch (filter->type) {
	case KINESIS_FILTER_AT_LATEST:
		return !sh->closed;
	case KINESIS_FILTER_AT_TRIM_HORIZON:
		/* The roots of what retention still holds. */
		return kinesis_parent_gone(k, s, sh->parent, now_s) &&
		       kinesis_parent_gone(k, s, sh->adjacent_parent, now_s);
	case KINESIS_FILTER_AT_TIMESTAMP:
		return kinesis_shard_open_at(s, index, filter->ts_s);
	case KINESIS_FILTER_FROM_TIMESTAMP:
		return !sh->closed || kinesis_shard_closed_s(s, index) >= filter->ts_s;
	case KINESIS_FILTER_FROM_TRIM_HORIZON:
	default:
		return true;
	}
}

bool
kinesis_shard_ended(const struct kinesis_shard *sh, uint64_t seq_next)
{
	if (!sh->closed || sh->close_pending)
		return false;
	return sh->seq_end == UINT64_MAX || seq_next > sh->seq_end;
}

void
kinesis_out_child_shards(struct api_out *out, const struct kinesis_stream *s, uint32_t index)
{
	char id[KINESIS_SHARD_ID_SIZE];
	char start[HASHKEY_DECIMAL_SIZE];
	char end[HASHKEY_DECIMAL_SIZE];
	bool first = true;

	api_out_printf(out, "[");
	for (uint32_t i = index + 1; i < s->shard_count; i++) {
		const struct kinesis_shard *sh = &s->shards[i];

		if (sh->parent != (int64_t)index && sh->adjacent_parent != (int64_t)index)
			continue;
		kinesis_shard_id_format(i, id);
		hashkey_format_decimal(sh->start, start);
		hashkey_format_decimal(sh->end, end);
		api_out_printf(out, "%s{\"ShardId\":\"%s\",\"ParentShards\":[", first ? "" : ",", id);
		kinesis_shard_id_format((uint32_t)sh->parent, id);
		api_out_printf(out, "\"%s\"", id);
		if (sh->adjacent_parent >= 0) {
			kinesis_shard_id_format((uint32_t)sh->adjacent_parent, id);
			api_out_printf(out, ",\"%s\"", id);
		}
		api_out_printf(out, "],\"HashKeyRange\":{\"StartingHashKey\":\"%s\","
			       "\"EndingHashKey\":\"%s\"}}", start, end);
		first = false;
	}
	api_out_printf(out, "]");
}

bool
kinesis_stream_closing(const struct kinesis_stream *s)
{
	for (uint32_t i = 0; i < s->shard_count; i++)
		if (s->shards[i].close_pending)
			return true;
	return false;
}

/* An ACTIVE stream with a parent's close unrecorded turns UPDATING until it is. */
static bool
kinesis_reshard_hold(struct kinesis *k, struct kinesis_stream *s)
{
	if (s->status != KINESIS_ACTIVE || !kinesis_stream_closing(s))
		return false;
	s->status = KINESIS_UPDATING;
	s->status_next = KINESIS_ACTIVE;
	s->status_due_ns = clock_mono_ns();
	k->transitions++;
	return true;
}

void
kinesis_reshard_status(struct kinesis *k, struct kinesis_stream *s)
{
	uint32_t shown = s->shards_shown;

	kinesis_status_schedule(k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	/* Without a delay: UPDATING still, until the parents' closes are recorded. */
	if (kinesis_reshard_hold(k, s))
		s->shards_shown = shown;  /* The children show once ACTIVE. */
}

void
kinesis_reshard_loaded(struct kinesis *k, struct kinesis_stream *s)
{
	kinesis_reshard_hold(k, s);
}

/* ---- Shared checks ---------------------------------------------------------- */

/* ACTIVE and PROVISIONED, or replies. */
static bool
kinesis_reshard_admit(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		      const char *action)
{
	if (s->mode == METADATA_ON_DEMAND) {
		kinesis_error(call, "ValidationException", "%s is not supported for stream %s under "
			      "account %s because it is in ON_DEMAND capacity mode.", action,
			      s->name, k->config.account_id);
		return false;
	}
	if (s->status != KINESIS_ACTIVE) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s not ACTIVE, "
			      "instead in state %s", s->name, k->config.account_id,
			      kinesis_status_name(s->status));
		return false;
	}
	return true;
}

/* The shard count over all streams stays within the log's table, or replies. */
static bool
kinesis_reshard_quota(struct kinesis *k, struct api_call *call, uint32_t added)
{
	if ((uint64_t)k->shards_total + added <= k->shard_limit)
		return true;
	kinesis_error(call, "LimitExceededException", "This request would exceed the shard limit "
		      "for the account %s in %s. Current shard count for the account: %u. Limit: "
		      "%u. Number of additional shards that would have resulted from this request: "
		      "%u. Refer to the AWS Service Limits page "
		      "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for "
		      "current limits and how to request higher limits.", k->config.account_id,
		      k->config.region, k->shards_total, k->shard_limit, added);
	return false;
}

/* "Could not find shard": the id as given when it does not parse, else canonical. */
static void
kinesis_reshard_no_shard(struct kinesis *k, struct api_call *call, const char *id,
			 const struct kinesis_stream_ref *ref)
{
	kinesis_error(call, "ResourceNotFoundException", "Could not find shard %s in stream %.*s "
		      "under account %s.", id, (int)ref->size, ref->name, k->config.account_id);
}

/*
 * The index ShardId `v` names, checked before the stream as AWS does: an id
 * that does not parse, or any id of a stream that does not exist, is not
 * found. -ENOENT after answering.
 */
static int
kinesis_reshard_index(struct kinesis *k, struct api_call *call,
		      const struct kinesis_stream_ref *ref, const struct kv_value *v,
		      uint32_t *index_out)
{
	char id[KINESIS_SHARD_ID_SIZE];

	if (kinesis_shard_id_parse(v->string, v->size, index_out) != 0) {
		kinesis_reshard_no_shard(k, call, v->string, ref);
		return -ENOENT;
	}
	if (ref->stream == NULL) {
		kinesis_shard_id_format(*index_out, id);
		kinesis_reshard_no_shard(k, call, id, ref);
		return -ENOENT;
	}
	return 0;
}

/* Shard `index` of the stream in `ref`, open, or replies ResourceNotFound / InvalidArgument. */
static struct kinesis_shard *
kinesis_reshard_shard(struct kinesis *k, struct api_call *call,
		      const struct kinesis_stream_ref *ref, uint32_t index)
{
	struct kinesis_stream *s = ref->stream;
	struct kinesis_shard *sh;

	if (index >= s->shard_count) {
		char id[KINESIS_SHARD_ID_SIZE];

		kinesis_shard_id_format(index, id);
		kinesis_reshard_no_shard(k, call, id, ref);
		return NULL;
	}
	sh = &s->shards[index];
	if (sh->closed) {
		char id[KINESIS_SHARD_ID_SIZE];

		kinesis_shard_id_format(index, id);
		kinesis_error(call, "InvalidArgumentException", "Shard %s in stream %s under account "
			      "%s has already been merged or split, and thus is not eligible for "
			      "merging or splitting.", id, s->name, k->config.account_id);
		return NULL;
	}
	return sh;
}

void
kinesis_reshard_history(const struct kinesis_stream *s, uint32_t before, bool autoscale,
			const char *what)
{
	struct metrics_reshard ev = {
		.time_ms = clock_real_ns() / 1000000u,
		.stream_id = s->stream_id,
		.shards_before = before,
		.shards_after = s->shard_count,
		.open_after = kinesis_open_count(s->shards, s->shard_count),
		.autoscale = autoscale,
	};

	snprintf(ev.stream, sizeof(ev.stream), "%s", s->name);
	snprintf(ev.what, sizeof(ev.what), "%s", what);
	metrics_reshard_note(&ev);
}

/*
 * Commits, logs the decision and moves the stream to UPDATING -> ACTIVE.
 * Returns 0 once committed (a failed log close is retried at the next start),
 * or a negative errno with nothing changed (the plan is freed either way).
 */
static int
kinesis_reshard_finish(struct kinesis *k, struct kinesis_stream *s, struct kinesis_reshard *plan,
		       const char *what)
{
	uint32_t before = s->shard_count;
	int rc = kinesis_reshard_commit(k, s, plan);

	if (plan->shards != NULL) {
		diag_error("kinesis", "%s on stream %s: %s", what, s->name, strerror(-rc));
		kinesis_reshard_free(plan);
		return rc != 0 ? rc : -EIO;
	}
	diag_info("kinesis", "stream %s: %s: shards %u -> %u (%u open)", s->name, what, before,
		  s->shard_count, kinesis_open_count(s->shards, s->shard_count));
	kinesis_reshard_history(s, before, false, what);
	kinesis_reshard_status(k, s);
	return 0;
}

/*
 * A commit that failed: cluster mode's race (another reshard through another node
 * came first, or every compare-and-swap was lost) is ResourceInUse, as AWS answers
 * a reshard of a stream being updated; anything else is an internal error.
 */
static void
kinesis_reshard_failed(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		       int rc)
{
	if (rc == -EALREADY || rc == -EBUSY)
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s not "
			      "ACTIVE, instead in state UPDATING", s->name, k->config.account_id);
	else
		kinesis_internal_error(call);
}

/* ---- SplitShard ------------------------------------------------------------- */

void
kinesis_split_shard(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const struct kv_value *new_start = &r->v[SPLIT_SHARD_NEW_STARTING_HASH_KEY];
	struct kinesis_stream_ref ref;
	struct kinesis_reshard plan;
	struct kinesis_stream *s;
	struct kinesis_shard *sh;
	hashkey_t key = 0;
	uint32_t index;
	int rc;

	if (kinesis_stream_lookup(k, call, &r->v[SPLIT_SHARD_STREAM_NAME],
				  &r->v[SPLIT_SHARD_STREAM_ARN], &ref) != 0 ||
	    kinesis_reshard_index(k, call, &ref, &r->v[SPLIT_SHARD_SHARD_TO_SPLIT], &index) != 0)
		return;
	s = ref.stream;
	if (!kinesis_reshard_admit(k, call, s, "SplitShard"))
		return;
	sh = kinesis_reshard_shard(k, call, &ref, index);
	if (sh == NULL || !kinesis_reshard_quota(k, call, 2))
		return;
	if (hashkey_parse_decimal(new_start->string, new_start->size, &key) != 0 ||
	    kinesis_split_check(sh, key) != 0) {
		char id[KINESIS_SHARD_ID_SIZE];
		char start[HASHKEY_DECIMAL_SIZE];
		char end[HASHKEY_DECIMAL_SIZE];

		kinesis_shard_id_format(sh->index, id);
		hashkey_format_decimal(sh->start, start);
		hashkey_format_decimal(sh->end, end);
		kinesis_error(call, "InvalidArgumentException", "NewStartingHashKey %s used in "
			      "SplitShard() on shard %s in stream %s under account %s is not both "
			      "greater than one plus the shard's StartingHashKey %s and less than the "
			      "shard's EndingHashKey %s.", new_start->string, id, s->name,
			      k->config.account_id, start, end);
		return;
	}
	if (kinesis_reshard_init(&plan, s, 2, kinesis_now_ms(r->req) / 1000) != 0 ||
	    kinesis_reshard_split(&plan, sh->index, key) != 0) {
		kinesis_reshard_free(&plan);
		kinesis_internal_error(call);
		return;
	}
	rc = kinesis_reshard_finish(k, s, &plan, "SplitShard");
	if (rc != 0)
		kinesis_reshard_failed(k, call, s, rc);
	else
		api_call_reply(call, 200);
}

/* ---- MergeShards ------------------------------------------------------------ */

void
kinesis_merge_shards(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_stream_ref ref;
	struct kinesis_reshard plan;
	struct kinesis_stream *s;
	struct kinesis_shard *a;
	struct kinesis_shard *b;
	uint32_t ia;
	uint32_t ib;
	int rc;

	if (kinesis_stream_lookup(k, call, &r->v[MERGE_SHARDS_STREAM_NAME],
				  &r->v[MERGE_SHARDS_STREAM_ARN], &ref) != 0 ||
	    kinesis_reshard_index(k, call, &ref, &r->v[MERGE_SHARDS_SHARD_TO_MERGE], &ia) != 0 ||
	    kinesis_reshard_index(k, call, &ref, &r->v[MERGE_SHARDS_ADJACENT_SHARD_TO_MERGE],
				  &ib) != 0)
		return;
	s = ref.stream;
	if (!kinesis_reshard_admit(k, call, s, "MergeShards"))
		return;
	a = kinesis_reshard_shard(k, call, &ref, ia);
	b = a == NULL ? NULL : kinesis_reshard_shard(k, call, &ref, ib);
	if (b == NULL || !kinesis_reshard_quota(k, call, 1))
		return;
	if (!kinesis_merge_check(a, b)) {
		char ida[KINESIS_SHARD_ID_SIZE];
		char idb[KINESIS_SHARD_ID_SIZE];

		kinesis_shard_id_format(a->index, ida);
		kinesis_shard_id_format(b->index, idb);
		kinesis_error(call, "InvalidArgumentException", "Shards %s and %s in stream %s under "
			      "account %s are not an adjacent pair of shards eligible for merging",
			      ida, idb, s->name, k->config.account_id);
		return;
	}
	if (kinesis_reshard_init(&plan, s, 1, kinesis_now_ms(r->req) / 1000) != 0 ||
	    kinesis_reshard_merge(&plan, a->index, b->index) != 0) {
		kinesis_reshard_free(&plan);
		kinesis_internal_error(call);
		return;
	}
	rc = kinesis_reshard_finish(k, s, &plan, "MergeShards");
	if (rc != 0)
		kinesis_reshard_failed(k, call, s, rc);
	else
		api_call_reply(call, 200);
}

/* ---- UpdateShardCount ------------------------------------------------------- */

const char *const kinesis_scaling_types[] = { "UNIFORM_SCALING", NULL };

/* Calls within the last 24 h among the remembered ones. */
static uint32_t
kinesis_scalings_recent(const struct kinesis_stream *s, uint64_t now_ms)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < KINESIS_SCALINGS_TRACK; i++)
		n += s->scalings_ms[i] != 0 && s->scalings_ms[i] + KINESIS_DAY_MS > now_ms;
	return n;
}

/* AWS's UpdateShardCount limits (configurable), or replies LimitExceeded. */
static bool
kinesis_scaling_limits(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		       uint32_t open, uint32_t target, uint64_t now_ms)
{
	const char *account = k->config.account_id;
	uint32_t per_day = k->config.shard_count_updates_per_day;

	if ((uint64_t)target > 2ull * open) {
		kinesis_error(call, "LimitExceededException", "UpdateShardCount cannot scale up over "
			      "double your current open shard count. Current open shard count: %u "
			      "Target shard count: %u", open, target);
	} else if ((uint64_t)target * 2 < open) {
		kinesis_error(call, "LimitExceededException", "UpdateShardCount cannot scale down "
			      "below half your current open shard count. Current open shard count: "
			      "%u Target shard count: %u", open, target);
	} else if (target > k->config.shards_per_stream_max) {
		kinesis_error(call, "LimitExceededException", "UpdateShardCount cannot scale up over "
			      "the stream shard limit. Stream %s under account %s. Limit: %u Target "
			      "shard count: %u", s->name, account, k->config.shards_per_stream_max,
			      target);
	} else if (per_day != 0 && kinesis_scalings_recent(s, now_ms) >= per_day) {
		kinesis_error(call, "LimitExceededException", "Rate exceeded for stream %s under "
			      "account %s: UpdateShardCount may be called %u times in a rolling 24 "
			      "hour period.", s->name, account, per_day);
	} else {
		return true;
	}
	return false;
}

static void
kinesis_update_shard_count_run(struct kinesis *k, struct api_call *call,
			       struct kinesis_stream *s, uint32_t target, uint64_t now_ms)
{
	uint32_t open = kinesis_open_count(s->shards, s->shard_count);
	struct kinesis_reshard plan;
	struct api_out *out = api_call_out(call);

	if (!kinesis_reshard_admit(k, call, s, "UpdateShardCount") ||
	    !kinesis_scaling_limits(k, call, s, open, target, now_ms))
		return;
	/* Worst case: target - 1 splits (2 each), then one merge per piece beyond target. */
	if (kinesis_reshard_init(&plan, s, 3 * target + open + 4, now_ms / 1000) != 0 ||
	    kinesis_reshard_uniform(&plan, target) != 0) {
		kinesis_reshard_free(&plan);
		kinesis_internal_error(call);
		return;
	}
	if (!kinesis_reshard_quota(k, call, plan.count - plan.old_count)) {
		kinesis_reshard_free(&plan);
		return;
	}
	s->scalings_ms[s->scalings_next++ % KINESIS_SCALINGS_TRACK] = now_ms;
	if (plan.count == plan.old_count) {
		kinesis_reshard_free(&plan);
	} else {
		int rc = kinesis_reshard_finish(k, s, &plan, "UpdateShardCount");

		if (rc != 0) {
			kinesis_reshard_failed(k, call, s, rc);
			return;
		}
	}
	api_out_printf(out, "{\"StreamName\":");
	api_out_json_string(out, s->name, s->name_size);
	api_out_printf(out, ",\"CurrentShardCount\":%u,\"TargetShardCount\":%u,\"StreamARN\":",
		       open, target);
	api_out_json_string(out, s->arn, strlen(s->arn));
	api_out_printf(out, "}");
	api_call_reply(call, 200);
}

void
kinesis_update_shard_count(struct kinesis_req *r)
{
	kinesis_update_shard_count_run(r->k, r->call, r->stream,
				       (uint32_t)r->v[UPDATE_SHARD_COUNT_TARGET_SHARD_COUNT].number,
				       kinesis_now_ms(r->req));
}
