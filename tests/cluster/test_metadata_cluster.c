/*
 * metadata_cluster: three nodes' metadata caches (three SQLite files in their
 * own directories, one process) on a real etcd (tests/cluster/etcd_fixture.c).
 * Writes go through any node; every cache must converge to the same stream
 * ids, incarnations, shard tables, settings, tags, policies and consumers.
 * Also: two nodes creating one name at once (exactly one wins), a node that
 * was stopped while others changed things (consistent as soon as it starts),
 * unreadable keys (skipped, counted, the node keeps going), the refusals.
 * Every wait is on a condition (a revision applied) with a generous deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "control/metadata.h"
#include "etcd_fixture.h"

#define NODES 3u
#define CLUSTER "cmeta"
#define SNAPSHOT_SIZE (64u << 10)

struct node {
	char dir[64];
	struct metadata *md;
	struct metadata_cluster *mc;
};

static struct node nodes[NODES];
static struct etcd_client *client;

static void
node_start(struct node *n)
{
	cr_assert_eq(metadata_open(n->dir, &n->md), 0);
	cr_assert_eq(metadata_cluster_start(n->md, etcd_endpoint, CLUSTER, &n->mc), 0);
}

static void
node_stop(struct node *n)
{
	metadata_cluster_stop(n->mc);
	metadata_close(n->md);
	n->mc = NULL;
	n->md = NULL;
}

static void
setup(void)
{
	etcd_fixture_start();
	cr_assert_eq(etcd_open(etcd_endpoint, 5000, &client), 0);
	for (uint32_t i = 0; i < NODES; i++) {
		snprintf(nodes[i].dir, sizeof(nodes[i].dir), "/tmp/cmeta-md-XXXXXX");
		cr_assert_not_null(mkdtemp(nodes[i].dir));
		node_start(&nodes[i]);
	}
}

static void
teardown(void)
{
	char cmd[320];   /* gcc sizes the %s by the whole array of nodes. */

	for (uint32_t i = 0; i < NODES; i++) {
		if (nodes[i].mc != NULL)
			node_stop(&nodes[i]);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", nodes[i].dir);
		cr_assert_eq(system(cmd), 0);
	}
	etcd_close(client);
	etcd_fixture_stop();
}

TestSuite(metadata_cluster, .init = setup, .fini = teardown, .timeout = 120);

/* ---- A node's cache as text: what must be identical everywhere ---------------------- */

struct snap {
	char *text;
	size_t size;
	struct metadata *md;
};

static void
snap_add(struct snap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
snap_add(struct snap *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->text + s->size, SNAPSHOT_SIZE - s->size, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && s->size + (size_t)n < SNAPSHOT_SIZE);
	s->size += (size_t)n;
}

static void
snap_tag(void *arg, const struct metadata_tag *tag)
{
	snap_add(arg, " %.*s=%.*s", (int)tag->key_size, tag->key, (int)tag->value_size,
		 tag->value);
}

static void
snap_resource(struct snap *s, uint32_t id, const char *resource)
{
	char policy[1024];
	size_t size = 0;
	bool more = false;

	snap_add(s, "  tags[%s]:", resource);
	cr_assert_eq(metadata_tags_list(s->md, id, resource, NULL, 0, 100, snap_tag, s, &more), 0);
	if (metadata_policy_get(s->md, id, resource, policy, sizeof(policy), &size) == 0)
		snap_add(s, " policy=%.*s", (int)size, policy);
	snap_add(s, "\n");
}

static int
snap_stream(void *arg, const struct metadata_stream *ms)
{
	struct snap *s = arg;

	snap_add(s, "stream %s id=%u inc=%llu del=%d mode=%d ret=%u created=%llu shards=%u"
		 " metrics=%u kib=%u warm=%u\n", ms->name, ms->stream_id,
		 (unsigned long long)ms->incarnation, ms->deleting, ms->mode, ms->retention_hours,
		 (unsigned long long)ms->created_ms, ms->shard_count, ms->shard_metrics,
		 ms->max_record_kib, ms->warm_mibps);
	snap_resource(s, ms->stream_id, "");
	return 0;
}

static int
snap_shard(void *arg, uint32_t stream_id, const struct metadata_shard *sh)
{
	snap_add(arg, " shard %u/%u [%llx..%llx] parents=%lld,%lld closed=%d closing=%d end=%llu\n",
		 stream_id, sh->shard_index, (unsigned long long)(sh->start >> 64),
		 (unsigned long long)(sh->end >> 64), (long long)sh->parent,
		 (long long)sh->adjacent_parent, sh->closed, sh->closing,
		 (unsigned long long)sh->seq_end);
	return 0;
}

static int
snap_consumer(void *arg, uint32_t stream_id, const char *name, size_t name_size,
	      uint64_t created_ms)
{
	struct snap *s = arg;
	char resource[CLUSTER_STREAM_NAME_SIZE];

	snprintf(resource, sizeof(resource), "%.*s", (int)name_size, name);
	snap_add(s, "consumer %u/%s created=%llu\n", stream_id, resource,
		 (unsigned long long)created_ms);
	snap_resource(s, stream_id, resource);
	return 0;
}

/* The node's cache as text (free it). */
static char *
snapshot(struct node *n)
{
	struct snap s = { .text = calloc(1, SNAPSHOT_SIZE), .md = n->md };

	cr_assert_not_null(s.text);
	cr_assert_eq(metadata_load(n->md, snap_stream, snap_shard, &s), 0);
	cr_assert_eq(metadata_consumers_load(n->md, snap_consumer, &s), 0);
	return s.text;
}

/* Waits until every running node applied etcd's current revision. */
static void
converge(void)
{
	struct etcd_range r;

	cr_assert_eq(etcd_get(client, "/sluice/" CLUSTER "/", true, 1, &r), 0);
	for (uint32_t i = 0; i < NODES; i++)
		if (nodes[i].mc != NULL)
			cr_assert_eq(metadata_cluster_wait(nodes[i].mc, r.revision), 0,
				     "node %u", i);
	etcd_range_free(&r);
}

/* Every running node's cache identical; node 0's returned (free it). */
static char *
assert_identical(void)
{
	char *first = snapshot(&nodes[0]);

	for (uint32_t i = 1; i < NODES; i++) {
		char *other = snapshot(&nodes[i]);

		cr_assert_str_eq(other, first, "node %u differs:\n%s\nnode 0:\n%s", i, other,
				 first);
		free(other);
	}
	return first;
}

/* ---- Writes through the nodes ---------------------------------------------------------- */

static int
create(struct node *n, const char *name, uint32_t shards, uint32_t *id_out)
{
	struct metadata_shard sh[8];
	struct metadata_tag tag = { .key = "team", .key_size = 4, .value = "ingest",
				    .value_size = 6 };
	struct metadata_stream ms = { .name = name, .incarnation = 0x7000000000000001ull + shards,
				      .retention_hours = 24, .created_ms = 1700000000123ull,
				      .shard_count = shards };
	int rc;

	cr_assert_leq(shards, 8);
	for (uint32_t i = 0; i < shards; i++)
		sh[i] = (struct metadata_shard){
			.shard_index = i, .start = hashkey_range_start(i, shards),
			.end = i + 1 < shards ? hashkey_range_start(i + 1, shards) - 1 :
			       HASHKEY_MAX,
			.parent = -1, .adjacent_parent = -1, .created_s = 1700000000,
		};
	rc = metadata_cluster_stream_create(n->mc, &ms, sh, &tag, 1);
	if (id_out != NULL)
		*id_out = ms.stream_id;
	return rc;
}

static bool
has(const char *text, const char *what)
{
	return strstr(text, what) != NULL;
}

Test(metadata_cluster, creates_settings_tags_policies_consumers_and_deletes_converge)
{
	struct metadata_tag tags[2] = { { .key = "env", .key_size = 3, .value = "prod",
					  .value_size = 4 },
					{ .key = "team", .key_size = 4, .value = "storage",
					  .value_size = 7 } };
	uint32_t a;
	uint32_t b;
	char *text;

	cr_assert_eq(create(&nodes[0], "alpha", 2, &a), 0);
	cr_assert_eq(create(&nodes[1], "beta", 4, &b), 0);
	cr_assert_neq(a, b);
	cr_assert_eq(metadata_cluster_retention_set(nodes[2].mc, "alpha", 48), 0);
	cr_assert_eq(metadata_cluster_mode_set(nodes[2].mc, "beta", METADATA_ON_DEMAND), 0);
	cr_assert_eq(metadata_cluster_setting_set(nodes[1].mc, "alpha", METADATA_MAX_RECORD_KIB,
						  4096), 0);
	cr_assert_eq(metadata_cluster_tags_put(nodes[0].mc, "beta", "", tags, 2, 50), 0);
	cr_assert_eq(metadata_cluster_tags_remove(nodes[1].mc, "alpha", "", &tags[1], 1), 0);
	cr_assert_eq(metadata_cluster_policy_put(nodes[2].mc, "alpha", "", "{\"p\":1}", 7), 0);
	cr_assert_eq(metadata_cluster_consumer_add(nodes[0].mc, "beta", "reader", 1700000000999ull,
						   tags, 1, 0), 0);
	cr_assert_eq(metadata_cluster_tags_put(nodes[1].mc, "beta", "reader", &tags[1], 1, 50), 0);
	cr_assert_eq(metadata_cluster_policy_put(nodes[2].mc, "beta", "reader", "{\"c\":2}", 7), 0);

	/* Read-your-writes: the node that served the call holds it when the call returns. */
	text = snapshot(&nodes[2]);
	cr_assert(has(text, "policy={\"c\":2}"), "%s", text);
	free(text);

	converge();
	text = assert_identical();
	cr_assert(has(text, "stream alpha id=") && has(text, "ret=48"), "%s", text);
	cr_assert(has(text, "kib=4096") && has(text, "mode=1"), "%s", text);
	cr_assert(has(text, "tags[]: env=prod team=storage"), "%s", text);
	cr_assert(has(text, "policy={\"p\":1}"), "%s", text);
	cr_assert(has(text, "consumer") && has(text, "tags[reader]: env=prod team=storage"),
		  "%s", text);
	free(text);

	cr_assert_eq(metadata_cluster_consumer_remove(nodes[2].mc, "beta", "reader"), 0);
	cr_assert_eq(metadata_cluster_stream_delete(nodes[1].mc, "alpha"), 0);
	converge();
	text = assert_identical();
	cr_assert(!has(text, "alpha") && has(text, "stream beta"), "%s", text);
	cr_assert(!has(text, "consumer"), "%s", text);
	free(text);
	for (uint32_t i = 0; i < NODES; i++) {
		struct metadata_cluster_status st;

		metadata_cluster_status(nodes[i].mc, &st);
		cr_assert_eq(st.bad_keys, 0);
		cr_assert_geq(st.applied, 10, "node %u applied %llu", i,
			      (unsigned long long)st.applied);
	}
}

Test(metadata_cluster, refusals_leave_nothing_behind)
{
	struct metadata_tag many[3] = { { "a", 1, "1", 1 }, { "b", 1, "2", 1 },
					{ "c", 1, "3", 1 } };
	char *before;
	char *after;

	cr_assert_eq(create(&nodes[0], "gamma", 1, NULL), 0);
	cr_assert_eq(create(&nodes[1], "gamma", 1, NULL), -EEXIST);
	cr_assert_eq(metadata_cluster_retention_set(nodes[0].mc, "nope", 48), -ENOENT);
	cr_assert_eq(metadata_cluster_stream_delete(nodes[0].mc, "nope"), -ENOENT);
	cr_assert_eq(metadata_cluster_consumer_add(nodes[0].mc, "nope", "c", 1, NULL, 0, 0), -ENOENT);
	cr_assert_eq(metadata_cluster_consumer_add(nodes[0].mc, "gamma", "c", 1, NULL, 0, 0), 0);
	cr_assert_eq(metadata_cluster_consumer_add(nodes[1].mc, "gamma", "c", 1, NULL, 0, 0), -EEXIST);
	cr_assert_eq(metadata_cluster_consumer_remove(nodes[1].mc, "gamma", "other"), -ENOENT);
	converge();
	before = assert_identical();
	/* gamma has one tag: three more pass a limit of 3. */
	cr_assert_eq(metadata_cluster_tags_put(nodes[2].mc, "gamma", "", many, 3, 3), -E2BIG);
	cr_assert_eq(metadata_cluster_policy_delete(nodes[2].mc, "gamma", ""), -ENOENT);
	/* A reshard planned on a shard table etcd no longer has: refused, nothing changes. */
	cr_assert_eq(metadata_cluster_reshard(nodes[2].mc, "gamma", 0, 5, NULL, 0, NULL, 0),
		     -ENOENT, "another stream id");
	cr_assert_eq(metadata_cluster_reshard(nodes[2].mc, "nope", 1, 1, NULL, 0, NULL, 0),
		     -ENOENT);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[2].mc, "gamma", 0, 0, 7, 1, 1), -ENOENT);
	converge();
	after = assert_identical();
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
}

/* Writes shard `shard` of `stream`'s placement as the controller would: `leader` in `epoch`. */
static int64_t
place(const char *stream, uint32_t shard, uint32_t leader, int64_t epoch, uint32_t stream_id)
{
	char key[CLUSTER_KEY_SIZE];
	char value[256];
	int64_t revision = 0;
	int n = snprintf(value, sizeof(value), "{\"leader\":%u,\"epoch\":%lld,\"replicas\":[1,2,3],"
			 "\"isr\":[1,2,3],\"controller_epoch\":5,\"stream_id\":%u}", leader,
			 (long long)epoch, stream_id);

	cr_assert(n > 0 && (size_t)n < sizeof(value));
	snprintf(key, sizeof(key), "/sluice/" CLUSTER "/placement/%s/shardId-%012u", stream, shard);
	cr_assert_eq(etcd_put(client, key, value, (size_t)n, 0, &revision), 0);
	return revision;
}

/* The children of a one-shard stream's split: shard 0's two halves. */
static void
split_children(struct metadata_shard kids[2])
{
	hashkey_t mid = hashkey_range_start(1, 2);

	kids[0] = (struct metadata_shard){ .shard_index = 1, .start = 0, .end = mid - 1,
					   .parent = 0, .adjacent_parent = -1,
					   .created_s = 1700000100 };
	kids[1] = (struct metadata_shard){ .shard_index = 2, .start = mid, .end = HASHKEY_MAX,
					   .parent = 0, .adjacent_parent = -1,
					   .created_s = 1700000100 };
}

/* A split of a one-shard stream `name` through node 0; its id. */
static uint32_t
split(const char *name)
{
	struct metadata_shard kids[2];
	uint32_t closing = 0;
	uint32_t id = 0;

	split_children(kids);
	cr_assert_eq(create(&nodes[0], name, 1, &id), 0);
	cr_assert_eq(metadata_cluster_reshard(nodes[0].mc, name, id, 1, &closing, 1, kids, 2), 0);
	return id;
}

static uint64_t
cuts_fenced(struct node *n)
{
	struct metadata_cluster_status st;

	metadata_cluster_status(n->mc, &st);
	return st.cuts_fenced;
}

/*
 * The cut's record compares the parent's placement in its own transaction
 * (docs/CLUSTER.md "Resharding in cluster mode"): a leader deposed after it checked
 * that it leads (here: the fence read, then the placement moved to node 2 in epoch 5)
 * writes nothing, through the transaction itself or through the call; the same node
 * in another epoch, and a shard with no placement, are refused too; the successor
 * records its own, lower end, also after an in-sync change under it (the compare is
 * on the key's mod_revision, the check on leader and epoch).
 */
Test(metadata_cluster, a_deposed_leaders_cut_is_not_recorded_and_its_successors_is)
{
	struct cluster_fence fence;
	struct cluster_stream rec;
	int64_t revision;
	uint32_t isr[2] = { 2, 3 };
	uint32_t id = split("eps");
	int64_t moved;
	char *text;

	place("eps", 0, 1, 4, id);
	/* The old leader checks: it leads in epoch 4. */
	cr_assert_eq(cluster_placement_lead_fence(client, CLUSTER, "eps", 0, id, 1, 4, &fence), 0);
	cr_assert_eq(cluster_placement_lead_fence(client, CLUSTER, "eps", 0, id, 1, 3, &fence),
		     -ESTALE, "another epoch");
	cr_assert_eq(cluster_placement_lead_fence(client, CLUSTER, "eps", 0, id, 2, 4, &fence),
		     -ESTALE, "another leader");
	cr_assert_eq(cluster_placement_lead_fence(client, CLUSTER, "eps", 0, id + 1, 1, 4, &fence),
		     -ESTALE, "placed for another stream of that name");
	cr_assert_eq(cluster_placement_lead_fence(client, CLUSTER, "eps", 0, id, 1, 4, &fence), 0);
	/* ... the controller moves the leadership (node 1's lease ended) ... */
	moved = place("eps", 0, 2, 5, id);
	/* ... and the old leader's record, made on the record it read, writes nothing. */
	cr_assert_eq(cluster_stream_get(client, CLUSTER, "eps", &rec), 0);
	rec.shards[0].state = CLUSTER_SHARD_CLOSED;
	rec.shards[0].seq_end = 50;
	cr_assert_eq(cluster_stream_put(client, CLUSTER, &rec, &fence, &revision), -ESTALE);
	revision = rec.mod_revision;
	cluster_stream_free(&rec);
	cr_assert_eq(cluster_stream_get(client, CLUSTER, "eps", &rec), 0);
	cr_assert_eq(rec.mod_revision, revision, "the record was not written");
	cr_assert_eq(rec.shards[0].state, CLUSTER_SHARD_CLOSING);
	cluster_stream_free(&rec);

	/* Through the call: deposed (placement moved, another epoch, none at all). */
	cr_assert_eq(metadata_cluster_shard_closed(nodes[0].mc, "eps", id, 0, 50, 1, 4), -ESTALE);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[1].mc, "eps", id, 0, 50, 2, 4), -ESTALE,
		     "the successor's node in the old epoch");
	cr_assert_eq(metadata_cluster_shard_closed(nodes[0].mc, "eps", id, 1, 50, 1, 4), -EINVAL,
		     "open: nothing to record (checked before the placement)");
	cr_assert_eq(cuts_fenced(&nodes[0]), 1);
	cr_assert_eq(cuts_fenced(&nodes[1]), 1);
	converge();
	text = assert_identical();
	cr_assert(has(text, "/0 [0..ffffffffffffffff] parents=-1,-1 closed=1 closing=1 end=0"),
		  "nothing recorded: %s", text);
	free(text);

	/* The successor (node 2, epoch 5) records its end, lower, after an in-sync change. */
	cr_assert_eq(cluster_placement_isr_write(client, CLUSTER, "eps", 0, moved, isr, 2), 0);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[1].mc, "eps", id, 0, 37, 2, 5), 0);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[0].mc, "eps", id, 0, 50, 1, 4), -EALREADY,
		     "the old leader, later: the successor's end stands");
	converge();
	text = assert_identical();
	cr_assert(has(text, "/0 [0..ffffffffffffffff] parents=-1,-1 closed=1 closing=0 end=37"),
		  "%s", text);
	free(text);

	/* No placement at all: nobody leads the shard, so nobody records its cut. */
	id = split("zeta");
	cr_assert_eq(metadata_cluster_shard_closed(nodes[2].mc, "zeta", id, 0, 9, 3, 1), -ESTALE);
	cr_assert_eq(cuts_fenced(&nodes[2]), 1);
}

/*
 * A split through node 0 as one transaction (parent closing, children appended), a
 * second plan made on the same table through node 1 refused (-EALREADY: AWS's
 * ResourceInUse), then the leader's cut recorded (closed, seq_end) through node 2;
 * every cache passes closing -> closed as a single node does.
 */
Test(metadata_cluster, reshard_then_the_cut_recorded_and_a_racing_plan_refused)
{
	struct metadata_shard kids[2];
	uint32_t closing = 0;
	uint32_t id = 0;
	char *text;

	split_children(kids);
	cr_assert_eq(create(&nodes[0], "delta", 1, &id), 0);
	cr_assert_eq(metadata_cluster_reshard(nodes[0].mc, "delta", id, 1, &closing, 1, kids, 2),
		     0);
	cr_assert_eq(metadata_cluster_reshard(nodes[1].mc, "delta", id, 1, &closing, 1, kids, 2),
		     -EALREADY, "planned on the table before the first");
	cr_assert_eq(metadata_cluster_reshard(nodes[1].mc, "delta", id, 3, &closing, 1, NULL, 0),
		     -EALREADY, "its parent is no longer open");
	cr_assert_eq(metadata_cluster_shard_closed(nodes[1].mc, "delta", id, 1, 7, 2, 1), -EINVAL,
		     "an open shard has no cut to record");
	converge();
	text = assert_identical();
	cr_assert(has(text, "shards=3"), "%s", text);
	cr_assert(has(text, "/0 [0..ffffffffffffffff] parents=-1,-1 closed=1 closing=1"), "%s",
		  text);
	cr_assert(has(text, "/2 [8000000000000000..ffffffffffffffff] parents=0,-1 closed=0"),
		  "%s", text);
	free(text);

	/* The parent's leader (node 3 here, epoch 1) records its cut. */
	place("delta", 0, 3, 1, id);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[2].mc, "delta", id, 0, 41, 3, 1), 0);
	cr_assert_eq(metadata_cluster_shard_closed(nodes[1].mc, "delta", id, 0, 41, 3, 1), 0,
		     "the same cut again (a retry) is no change");
	cr_assert_eq(metadata_cluster_shard_closed(nodes[1].mc, "delta", id, 0, 40, 3, 1),
		     -EALREADY, "another cut of a closed shard is refused");
	converge();
	text = assert_identical();
	cr_assert(has(text, "/0 [0..ffffffffffffffff] parents=-1,-1 closed=1 closing=0 end=41"),
		  "%s", text);
	free(text);
}

/* Adds consumer `name` of `stream` through node `n` with a limit of 3 a stream. */
static int
consumer_add3(struct node *n, const char *stream, const char *name)
{
	return metadata_cluster_consumer_add(n->mc, stream, name, 1700000000999ull, NULL, 0, 3);
}

/*
 * The consumers-per-stream limit is counted in etcd, not in a node's cache: consumers
 * added through one node count at once for another (no wait for its cache), another
 * stream's (even one whose name begins with this one's) do not, and a removal frees a
 * place. Before this, the limit was only the Kinesis layer's check of the node's own
 * table, so the metadata layer took a fourth.
 */
Test(metadata_cluster, the_consumer_limit_is_counted_in_etcd)
{
	cr_assert_eq(create(&nodes[0], "eps", 1, NULL), 0);
	cr_assert_eq(create(&nodes[0], "eps2", 1, NULL), 0);
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "o%d", i);
		cr_assert_eq(consumer_add3(&nodes[0], "eps2", name), 0, "%s", name);
	}
	cr_assert_eq(consumer_add3(&nodes[0], "eps", "a"), 0);
	cr_assert_eq(consumer_add3(&nodes[1], "eps", "b"), 0);
	cr_assert_eq(consumer_add3(&nodes[2], "eps", "c"), 0);
	cr_assert_eq(consumer_add3(&nodes[1], "eps", "d"), -EDQUOT);
	cr_assert_eq(consumer_add3(&nodes[2], "eps", "a"), -EDQUOT, "full comes before taken");
	cr_assert_eq(metadata_cluster_consumer_remove(nodes[0].mc, "eps", "b"), 0);
	cr_assert_eq(consumer_add3(&nodes[2], "eps", "d"), 0);
	cr_assert_eq(consumer_add3(&nodes[0], "eps", "e"), -EDQUOT);
	cr_assert_eq(consumer_add3(&nodes[0], "eps2", "o3"), -EDQUOT);
}

struct consumer_racer {
	struct node *n;
	const char *stream;
	char name[8];
	pthread_barrier_t *start;
	int rc;
};

static void *
consumer_race(void *arg)
{
	struct consumer_racer *r = arg;

	pthread_barrier_wait(r->start);
	r->rc = consumer_add3(r->n, r->stream, r->name);
	return NULL;
}

/*
 * Every node registers a different name at once on a stream one short of the limit:
 * exactly one gets it, the others -EDQUOT (none passes a count of two that another's
 * put made three: the transaction requires no consumer put since its count).
 */
Test(metadata_cluster, concurrent_consumers_at_the_limit_one_winner)
{
	for (int round = 0; round < 8; round++) {
		struct consumer_racer r[NODES];
		pthread_t t[NODES];
		pthread_barrier_t start;
		char stream[16];
		uint32_t won = 0;

		snprintf(stream, sizeof(stream), "lim%d", round);
		cr_assert_eq(create(&nodes[0], stream, 1, NULL), 0);
		cr_assert_eq(consumer_add3(&nodes[0], stream, "x"), 0);
		cr_assert_eq(consumer_add3(&nodes[1], stream, "y"), 0);
		cr_assert_eq(pthread_barrier_init(&start, NULL, NODES), 0);
		for (uint32_t i = 0; i < NODES; i++) {
			r[i] = (struct consumer_racer){ .n = &nodes[i], .stream = stream,
							.start = &start };
			snprintf(r[i].name, sizeof(r[i].name), "n%u", i);
			cr_assert_eq(pthread_create(&t[i], NULL, consumer_race, &r[i]), 0);
		}
		for (uint32_t i = 0; i < NODES; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&start);
		for (uint32_t i = 0; i < NODES; i++) {
			cr_assert(r[i].rc == 0 || r[i].rc == -EDQUOT, "round %d node %u: rc %d",
				  round, i, r[i].rc);
			won += r[i].rc == 0;
		}
		cr_assert_eq(won, 1, "round %d: %u registered past the limit", round, won);
	}
}

struct racer {
	struct node *n;
	const char *name;
	int rc;
	uint32_t id;
};

static void *
race(void *arg)
{
	struct racer *r = arg;

	r->rc = create(r->n, r->name, 2, &r->id);
	return NULL;
}

static void
race_all(struct racer *r, uint32_t count)
{
	pthread_t t[NODES];

	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	for (uint32_t i = 0; i < count; i++)
		pthread_join(t[i], NULL);
}

Test(metadata_cluster, concurrent_creates_one_name_one_winner_many_names_distinct_ids)
{
	struct racer same[NODES];
	struct racer distinct[NODES];
	static const char *const names[NODES] = { "d0", "d1", "d2" };
	uint32_t won = 0;
	char *text;

	for (int round = 0; round < 5; round++) {
		char name[16];

		snprintf(name, sizeof(name), "same%d", round);
		for (uint32_t i = 0; i < NODES; i++)
			same[i] = (struct racer){ .n = &nodes[i], .name = name };
		race_all(same, NODES);
		won = 0;
		for (uint32_t i = 0; i < NODES; i++) {
			cr_assert(same[i].rc == 0 || same[i].rc == -EEXIST, "rc %d", same[i].rc);
			won += same[i].rc == 0;
		}
		cr_assert_eq(won, 1, "round %d: %u winners", round, won);
	}
	for (uint32_t i = 0; i < NODES; i++)
		distinct[i] = (struct racer){ .n = &nodes[i], .name = names[i] };
	race_all(distinct, NODES);
	for (uint32_t i = 0; i < NODES; i++) {
		cr_assert_eq(distinct[i].rc, 0);
		for (uint32_t j = 0; j < i; j++)
			cr_assert_neq(distinct[i].id, distinct[j].id);
	}
	converge();
	text = assert_identical();
	free(text);
}

Test(metadata_cluster, a_node_that_missed_changes_is_consistent_when_it_starts)
{
	char *text;

	cr_assert_eq(create(&nodes[0], "kept", 2, NULL), 0);
	cr_assert_eq(create(&nodes[0], "dropped", 1, NULL), 0);
	cr_assert_eq(metadata_cluster_consumer_add(nodes[0].mc, "kept", "gone", 5, NULL, 0, 0), 0);
	converge();
	node_stop(&nodes[2]);

	cr_assert_eq(metadata_cluster_stream_delete(nodes[0].mc, "dropped"), 0);
	cr_assert_eq(metadata_cluster_consumer_remove(nodes[1].mc, "kept", "gone"), 0);
	cr_assert_eq(metadata_cluster_retention_set(nodes[1].mc, "kept", 72), 0);
	cr_assert_eq(create(&nodes[1], "born", 3, NULL), 0);
	/* A name deleted and created again: another id and incarnation. */
	cr_assert_eq(metadata_cluster_stream_delete(nodes[0].mc, "kept"), 0);
	cr_assert_eq(create(&nodes[1], "kept", 4, NULL), 0);
	converge();

	/* No waiting: the start itself read etcd and applied it. */
	node_start(&nodes[2]);
	text = assert_identical();
	cr_assert(has(text, "stream born") && !has(text, "dropped") && !has(text, "consumer"),
		  "%s", text);
	cr_assert(has(text, "stream kept") && has(text, "shards=4"), "%s", text);
	free(text);
}

Test(metadata_cluster, unreadable_keys_are_skipped_and_counted)
{
	static const char *const bad[][2] = {
		{ "/sluice/" CLUSTER "/streams/junk", "not json" },
		{ "/sluice/" CLUSTER "/streams/half", "{\"stream_id\":9,\"shard_count\":1}" },
		{ "/sluice/" CLUSTER "/consumers/noslash", "{}" },
	};
	struct metadata_cluster_status st;
	char *text;

	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(etcd_put(client, bad[i][0], bad[i][1], strlen(bad[i][1]), 0, NULL), 0);
	cr_assert_eq(create(&nodes[0], "fine", 1, NULL), 0);
	converge();
	text = assert_identical();
	cr_assert(has(text, "stream fine") && !has(text, "junk") && !has(text, "half"), "%s", text);
	free(text);
	for (uint32_t i = 0; i < NODES; i++) {
		metadata_cluster_status(nodes[i].mc, &st);
		cr_assert_eq(st.bad_keys, 3, "node %u: %llu", i, (unsigned long long)st.bad_keys);
		cr_assert_eq(st.last_error, -EPROTO);
	}
	/* A restart reads them again: counted again, and the node starts. */
	node_stop(&nodes[1]);
	node_start(&nodes[1]);
	metadata_cluster_status(nodes[1].mc, &st);
	cr_assert_eq(st.bad_keys, 3);
	cr_assert_eq(metadata_cluster_retention_set(nodes[1].mc, "fine", 30), 0);
	converge();
	text = assert_identical();
	cr_assert(has(text, "ret=30"), "%s", text);
	free(text);
}

#define ACCOUNT_PREFIX "/sluice/" CLUSTER "/account/"

/*
 * An account setting written through one node is in every cache's meta table (and in a
 * restarted node's); unreadable values are skipped and counted, and change nothing.
 */
Test(metadata_cluster, account_settings_reach_every_cache_and_bad_ones_are_counted)
{
	static const char *const bad[][2] = {
		{ ACCOUNT_PREFIX "text", "not json" },
		{ ACCOUNT_PREFIX "half", "[1.5]" },
		{ ACCOUNT_PREFIX "huge", "[1e300]" },
		{ ACCOUNT_PREFIX "many", "[1,2,3,4,5,6,7,8,9]" },
	};
	const int64_t want[4] = { 1, 1765000000123, -(1ll << 53), 0 };
	const int64_t wide[1] = { (1ll << 53) + 1 };
	struct metadata_cluster_status st;
	int64_t got[4];

	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(etcd_put(client, bad[i][0], bad[i][1], strlen(bad[i][1]), 0, NULL), 0);
	cr_assert_eq(metadata_cluster_account_set(nodes[0].mc, "commit", want, 4), 0);
	cr_assert_eq(metadata_cluster_account_set(nodes[0].mc, "wide", wide, 1), -ERANGE);
	cr_assert_eq(metadata_cluster_account_set(nodes[0].mc, "a/b", want, 1), -EINVAL);
	converge();
	node_stop(&nodes[2]);
	node_start(&nodes[2]);   /* Its full read applies the key too. */
	for (uint32_t i = 0; i < NODES; i++) {
		cr_assert_eq(metadata_account_get(nodes[i].md, "commit", got, 4), 0, "node %u", i);
		cr_assert_arr_eq(got, want, sizeof(want), "node %u", i);
		for (uint32_t j = 0; j < 4; j++) {
			const char *name = bad[j][0] + strlen(ACCOUNT_PREFIX);

			cr_assert_eq(metadata_account_get(nodes[i].md, name, got, 1), -ENOENT);
		}
		metadata_cluster_status(nodes[i].mc, &st);
		cr_assert_eq(st.bad_keys, 4, "node %u: %llu", i, (unsigned long long)st.bad_keys);
	}
}

static void *
tag_race(void *arg)
{
	static const struct metadata_tag t[NODES] = { { "n0", 2, "x", 1 }, { "n1", 2, "y", 1 },
						       { "n2", 2, "z", 1 } };
	struct racer *r = arg;

	r->rc = metadata_cluster_tags_put(r->n->mc, "hot", "", &t[r->id], 1, 50);
	return NULL;
}

Test(metadata_cluster, racing_updates_of_one_stream_all_land)
{
	char *text;

	cr_assert_eq(create(&nodes[0], "hot", 1, NULL), 0);
	/* Each node tags the same stream from its own thread: the CAS retries keep every tag. */
	for (int round = 0; round < 3; round++) {
		pthread_t th[NODES];
		struct racer r[NODES];

		for (uint32_t i = 0; i < NODES; i++) {
			r[i] = (struct racer){ .n = &nodes[i], .id = i };
			cr_assert_eq(pthread_create(&th[i], NULL, tag_race, &r[i]), 0);
		}
		for (uint32_t i = 0; i < NODES; i++) {
			pthread_join(th[i], NULL);
			cr_assert_eq(r[i].rc, 0, "node %u: %d", i, r[i].rc);
		}
	}
	converge();
	text = assert_identical();
	cr_assert(has(text, "n0=x n1=y n2=z team=ingest"), "%s", text);
	free(text);
}

Test(metadata_cluster, a_single_node_store_is_refused_and_left_alone)
{
	struct metadata_shard sh = { .start = 0, .end = HASHKEY_MAX, .parent = -1,
				     .adjacent_parent = -1 };
	struct metadata_stream ms = { .name = "local", .incarnation = 5, .retention_hours = 24,
				      .shard_count = 1 };
	struct metadata_cluster *mc = NULL;
	char *before;
	char *after;

	/* Node 0 as a single-node appliance with one stream of its own. */
	node_stop(&nodes[0]);
	cr_assert_eq(metadata_open(nodes[0].dir, &nodes[0].md), 0);
	cr_assert_eq(metadata_stream_create(nodes[0].md, &ms, &sh, NULL, 0), 0);
	before = snapshot(&nodes[0]);
	cr_assert_eq(metadata_cluster_start(nodes[0].md, etcd_endpoint, "other", &mc), -EEXIST);
	cr_assert_null(mc);
	after = snapshot(&nodes[0]);
	cr_assert_str_eq(after, before);
	cr_assert(has(after, "stream local"), "%s", after);
	free(before);
	free(after);
	metadata_close(nodes[0].md);
	nodes[0].md = NULL;

	/* A cache of this cluster restarts as such (the mark), streams and all. */
	cr_assert_eq(create(&nodes[1], "shared", 1, NULL), 0);
	converge();
	node_stop(&nodes[2]);
	node_start(&nodes[2]);
	before = snapshot(&nodes[1]);
	after = snapshot(&nodes[2]);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
}
