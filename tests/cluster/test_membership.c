/*
 * membership: three cluster members in one process against a real etcd
 * (tests/cluster/etcd_fixture.c): they register, one becomes controller and
 * places every shard; the controller's session dies without a word (its
 * lease expires) and another takes over, moves its leaderships with bigger
 * epochs; the deposed controller's fenced write is refused. Also: a second
 * node with a live node's id is refused, a drained node is left without
 * leaderships, bad configurations are refused. A drain outlives the node's
 * process (it registers again draining, leads nothing until undrained); the
 * placements of a deleted stream are removed, and a stream created again
 * under its name (seen or not seen deleted) is placed afresh. Every wait is
 * on a condition with a generous deadline; the takeover time is printed, not
 * asserted.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "etcd_fixture.h"

#define TTL_S 2u
/* The etcd-stall test's TTL: its grace (one TTL) must outlast two members' restart. */
#define STALL_TTL_S 6u
#define NODES 3u
#define DEADLINE_NS (60ull * 1000000000ull)

static struct cluster_member *members[NODES + 1];   /* By node id. */
static uint32_t ttl_s = TTL_S;                     /* The members' lease TTL. */
static struct etcd_client *client;

static void
setup(void)
{
	etcd_fixture_start();
	cr_assert_eq(etcd_open(etcd_endpoint, 2000, &client), 0);
}

static void
teardown(void)
{
	for (uint32_t i = 1; i <= NODES; i++) {
		if (members[i] != NULL)
			cluster_member_stop(members[i]);
		members[i] = NULL;
	}
	etcd_close(client);
	etcd_fixture_stop();
	ttl_s = TTL_S;
}

TestSuite(membership, .init = setup, .fini = teardown, .timeout = 120);

static void
config(struct cluster_config *c, uint32_t id)
{
	static char addrs[NODES + 2][3][32];

	snprintf(addrs[id][0], 32, "127.0.0.1:%u", 7000 + id);
	snprintf(addrs[id][1], 32, "127.0.0.1:%u", 8000 + id);
	snprintf(addrs[id][2], 32, "127.0.0.1:%u", 9000 + id);
	*c = (struct cluster_config){ .etcd_endpoints = etcd_endpoint, .cluster = "cplace",
				      .node_id = id, .addr = addrs[id][0], .api_addr = addrs[id][1],
				      .dp_addr = addrs[id][2], .lease_ttl_s = ttl_s };
}

static void
start(uint32_t id)
{
	struct cluster_config c;

	config(&c, id);
	cr_assert_eq(cluster_member_start(&c, &members[id]), 0, "node %u", id);
}

/* The one controller's id, 0 when none or more than one think they are. */
static uint32_t
controller(struct etcd_leader *election)
{
	uint32_t found = 0;

	for (uint32_t i = 1; i <= NODES; i++) {
		struct cluster_member_status s;

		if (members[i] == NULL)
			continue;
		cluster_member_status(members[i], &s);
		if (!s.controller)
			continue;
		if (found != 0)
			return 0;
		found = i;
		if (election != NULL)
			*election = s.election;
	}
	return found;
}

/* Placement keys placed() read last (planted malformed ones included). */
static uint32_t placed_count;

/* Every shard on rf replicas, all in sync, none on `not`, led by one of them. */
static bool
placed(uint32_t shards, uint32_t rf, uint32_t not, struct cluster_shard **out)
{
	struct cluster_shard *s;
	uint32_t count;
	bool ok;

	if (cluster_placement_read(client, "cplace", &s, &count) != 0)
		return false;
	for (uint32_t i = 0; i < count; i++)
		shards += s[i].malformed;   /* Planted garbage: not a shard. */
	placed_count = count;
	ok = count == shards;
	for (uint32_t i = 0; ok && i < count; i++) {
		uint32_t r = 0;

		if (s[i].malformed)
			continue;
		for (uint32_t j = 0; j < s[i].place.replica_count; j++)
			r += s[i].place.replicas[j] != not;
		ok = s[i].place.leader != 0 && s[i].place.leader != not && r == rf &&
		     s[i].place.replica_count == rf && s[i].place.isr_count == rf;
	}
	if (ok && out != NULL)
		*out = s;
	else
		free(s);
	return ok;
}

/* What each member and etcd hold, printed before a wait fails. */
static void
dump_state(void)
{
	struct etcd_range dump;

	for (uint32_t i = 1; i <= NODES; i++) {
		struct cluster_member_status st;

		if (members[i] == NULL)
			continue;
		cluster_member_status(members[i], &st);
		printf("node %u: controller=%d error=%d written=%llu refused=%llu bad=%llu\n", i,
		       st.controller, st.last_error, (unsigned long long)st.placements_written,
		       (unsigned long long)st.placement_refused, (unsigned long long)st.bad_keys);
	}
	if (etcd_get(client, "/sluice/cplace/", true, 0, &dump) != 0)
		return;
	for (uint32_t i = 0; i < dump.count; i++)
		printf("%s = %.*s\n", dump.kvs[i].key, (int)dump.kvs[i].value_size,
		       (const char *)dump.kvs[i].value);
	etcd_range_free(&dump);
}

static void
wait_ms(uint32_t ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000l }, NULL);
}

static void
streams(void)
{
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/orders", "{\"shard_count\":6}", 17, 0,
			      NULL), 0);
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/clicks", "{\"shard_count\":3}", 17, 0,
			      NULL), 0);
}

Test(membership, one_controller_places_every_shard_and_a_dead_one_is_replaced_and_fenced)
{
	struct cluster_shard *before;
	struct cluster_shard *after;
	struct etcd_leader old_fence;
	struct etcd_leader new_fence;
	struct etcd_range r;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint64_t t0;
	uint32_t c;
	uint32_t c2;
	uint32_t moved = 0;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	/*
	 * Streams after every node joined: a shard placed on fewer nodes would get
	 * the others as catching-up replicas, and nothing reports their catch-up
	 * until replication is wired (docs/CLUSTER.md, "What remains").
	 */
	streams();
	cr_assert_eq(etcd_get(client, "/sluice/cplace/nodes/", true, 0, &r), 0);
	cr_assert_eq(r.count, NODES, "every node registered");
	cr_assert_neq(r.kvs[0].lease, 0, "under a lease");
	cr_assert(strstr((const char *)r.kvs[0].value, "\"api_addr\":\"127.0.0.1:8001\"") != NULL);
	etcd_range_free(&r);

	while ((c = controller(&old_fence)) == 0 || !placed(9, 3, 0, &before)) {
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "no controller placed the shards");
		wait_ms(20);
	}
	for (uint32_t i = 0; i < 9; i++)
		cr_assert_eq(before[i].place.leader_epoch, 1);

	/* The controller crashes: no resign, no revoke; its lease runs out. */
	t0 = clock_mono_ns();
	cluster_member_abandon(members[c]);
	members[c] = NULL;
	while ((c2 = controller(&new_fence)) == 0 || !placed(9, 2, c, &after)) {
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "nobody took over from node %u", c);
		wait_ms(20);
	}
	printf("membership-takeover: ttl_s=%u takeover_ms=%llu (goal <= %u)\n", TTL_S,
	       (unsigned long long)((clock_mono_ns() - t0) / 1000000u), 2 * TTL_S * 1000);
	cr_assert_neq(c2, c);
	cr_assert_gt(new_fence.rev, old_fence.rev, "the controller epoch grows");

	/* Leaders moved off the dead node with a bigger epoch; the others kept theirs. */
	for (uint32_t i = 0; i < 9; i++) {
		cr_assert_str_eq(after[i].stream, before[i].stream);
		cr_assert_eq(after[i].shard, before[i].shard);
		if (before[i].place.leader == c) {
			cr_assert_gt(after[i].place.leader_epoch, before[i].place.leader_epoch);
			moved++;
		} else {
			cr_assert_eq(after[i].place.leader, before[i].place.leader);
			cr_assert_eq(after[i].place.leader_epoch, before[i].place.leader_epoch);
		}
	}
	cr_assert_gt(moved, 0, "the dead controller led something");

	/* The deposed controller's write, fenced by its old election key, is refused. */
	after[0].place.leader_epoch = 1000;
	cr_assert_eq(cluster_placement_write(client, "cplace", &old_fence, after, 1), -ESTALE);
	free(before);
	cr_assert(placed(9, 2, c, &before));
	cr_assert_neq(before[0].place.leader_epoch, 1000, "the fenced write changed nothing");
	/* The same write with the live fence passes (the refusal was the fence, not the data). */
	cr_assert_eq(cluster_placement_write(client, "cplace", &new_fence, before, 1), 0);
	free(before);
	free(after);
}

Test(membership, a_taken_id_and_bad_configs_are_refused_and_a_drained_node_stops_leading)
{
	struct cluster_config c;
	struct cluster_member *dup;
	struct cluster_member_status st;
	struct cluster_shard *s;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	/*
	 * Streams after every node joined: a shard placed on fewer nodes would get
	 * the others as catching-up replicas, and nothing reports their catch-up
	 * until replication is wired (docs/CLUSTER.md, "What remains").
	 */
	streams();
	/* The id of a live node: its key stays alive, the start gives up after waiting. */
	config(&c, 2);
	cr_assert_eq(cluster_member_start(&c, &dup), -EEXIST);
	c.node_id = 0;
	cr_assert_eq(cluster_member_start(&c, &dup), -EINVAL);
	config(&c, 4);
	c.lease_ttl_s = CLUSTER_LEASE_TTL_S_MAX + 1;
	cr_assert_eq(cluster_member_start(&c, &dup), -EINVAL);
	config(&c, 4);
	c.cluster = "a/b";
	cr_assert_eq(cluster_member_start(&c, &dup), -EINVAL);

	/* Garbage keys are counted and skipped; the good shards are placed all the same. */
	cr_assert_eq(etcd_put(client, "/sluice/cplace/nodes/x7", "{}", 2, 0, NULL), 0);
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/broken", "{", 1, 0, NULL), 0);
	cr_assert_eq(etcd_put(client, "/sluice/cplace/placement/ghost/shardId-000000000000", "[1]", 3,
			      0, NULL), 0);
	while (!placed(9, 3, 0, NULL) || controller(NULL) == 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "nothing placed");
		wait_ms(20);
	}
	while (cluster_member_status(members[controller(NULL)], &st), st.bad_keys < 3) {
		cr_assert_lt(clock_mono_ns(), deadline, "bad keys not counted: %llu",
			     (unsigned long long)st.bad_keys);
		wait_ms(20);
	}
	cr_assert_eq(st.last_error, -EPROTO);
	cr_assert_eq(cluster_member_drain(members[2], true), 0);
	/*
	 * Three nodes, one draining: two replicas per shard on nodes 1 and 3, in
	 * sync already, so node 2 leaves every shard at once (placement's unit
	 * tests cover the catch-up order on larger clusters).
	 */
	while (!placed(9, 2, 2, &s)) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 2 still leads or holds replicas");
		wait_ms(20);
	}
	/* The planted placement of no stream may be gone already: the controller removes it. */
	for (uint32_t i = 0; i < placed_count; i++) {
		if (s[i].malformed)
			continue;
		cr_assert_not(placement_has(s[i].place.replicas, s[i].place.replica_count, 2));
		cr_assert(placement_has(s[i].place.isr, s[i].place.isr_count, s[i].place.leader));
	}
	free(s);
	/* Undrained, it gets replicas again (catching up: nothing reports them in sync yet). */
	cr_assert_eq(cluster_member_drain(members[2], false), 0);
	for (bool back = false; !back;) {
		uint32_t count;

		cr_assert_lt(clock_mono_ns(), deadline, "node 2 got nothing back");
		wait_ms(20);
		cr_assert_eq(cluster_placement_read(client, "cplace", &s, &count), 0);
		for (uint32_t i = 0; i < count; i++) {
			back |= placement_has(s[i].place.replicas, s[i].place.replica_count, 2);
			cr_assert_neq(s[i].place.leader, 2, "a catching-up replica leads");
		}
		free(s);
	}
}

Test(membership, more_shards_than_one_transaction_holds_are_all_placed)
{
	struct etcd_leader fence;
	struct cluster_member_status st;
	struct cluster_shard *s;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t c;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	/* 300 shards: three fenced transactions of at most ETCD_TXN_OPS_MAX - 1 keys. */
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/wide", "{\"shard_count\":300}", 19, 0,
			      NULL), 0);
	while ((c = controller(&fence)) == 0 || !placed(300, 3, 0, &s)) {
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "300 shards not placed");
		wait_ms(20);
	}
	cluster_member_status(members[c], &st);
	cr_assert_eq(st.placements_written, 300);
	cr_assert_eq(st.placement_refused, 0);
	/* One transaction refuses more than it can hold, before asking etcd. */
	cr_assert_eq(cluster_placement_write(client, "cplace", &fence, s, ETCD_TXN_OPS_MAX), -E2BIG);
	free(s);
}

/*
 * Every member started, the two streams written, and waits until one controller
 * placed their 9 shards; its id (its election in *fence; the placement read in
 * *out when not NULL).
 */
static uint32_t
start_placed(struct etcd_leader *fence, struct cluster_shard **out)
{
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t c;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	streams();
	while ((c = controller(fence)) == 0 || !placed(9, 3, 0, out)) {
		cr_assert_lt(clock_mono_ns(), deadline, "no controller placed the shards");
		wait_ms(20);
	}
	return c;
}

/* The controller's lease ends under it (as after a pause or a cut from etcd): it rejoins. */
Test(membership, a_controller_whose_lease_ended_rejoins_as_a_member)
{
	struct etcd_leader fence;
	struct etcd_leader next;
	struct cluster_member_status st;
	struct etcd_range r;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t c;
	uint32_t c2;

	c = start_placed(&fence, NULL);
	cr_assert_eq(etcd_lease_revoke(client, fence.lease), 0);
	for (;;) {
		bool back;

		cr_assert_lt(clock_mono_ns(), deadline, "no new controller, or node %u did not rejoin", c);
		wait_ms(20);
		c2 = controller(&next);
		cluster_member_status(members[c], &st);
		cr_assert_eq(etcd_get(client, "/sluice/cplace/nodes/", true, 0, &r), 0);
		back = r.count == NODES;
		etcd_range_free(&r);
		if (back && c2 != 0 && next.rev > fence.rev)
			break;
	}
	/* Whoever leads now leads with a newer epoch; the old key fences nothing any more. */
	cr_assert_eq(cluster_placement_write(client, "cplace", &fence, NULL, 0), -ESTALE);
	printf("membership-rejoin: old controller %u, now %u\n", c, c2);
}

/* Waits for `key`'s prefix to hold `count` keys. */
static void
wait_keys(const char *prefix, uint32_t count, const char *what)
{
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	struct etcd_range r;

	for (;;) {
		uint32_t n;

		cr_assert_eq(etcd_get(client, prefix, true, 0, &r), 0);
		n = r.count;
		etcd_range_free(&r);
		if (n == count)
			return;
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "%s: %u keys under %s", what, n, prefix);
		wait_ms(20);
	}
}

/* Shards of `stream` in a placement read, and how many of them are led. */
static uint32_t
stream_shards(const struct cluster_shard *s, uint32_t count, const char *stream, uint32_t *led)
{
	uint32_t n = 0;

	*led = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (strcmp(s[i].stream, stream) != 0)
			continue;
		n++;
		*led += s[i].place.leader != 0;
	}
	return n;
}

/* Reads the placement until `stream` has `shards` keys, all led; *out holds that read. */
static uint32_t
wait_stream_placed(const char *stream, uint32_t shards, struct cluster_shard **out)
{
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	for (;;) {
		struct cluster_shard *s;
		uint32_t count;
		uint32_t led;

		cr_assert_eq(cluster_placement_read(client, "cplace", &s, &count), 0);
		if (stream_shards(s, count, stream, &led) == shards && led == shards) {
			*out = s;
			return count;
		}
		free(s);
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "%s not placed", stream);
		wait_ms(20);
	}
}

static void
put(const char *key, const char *value)
{
	cr_assert_eq(etcd_put(client, key, value, strlen(value), 0, NULL), 0, "%s", key);
}

/* One key's mod_revision (0: absent). */
static int64_t
key_revision(const char *key)
{
	struct etcd_range r;
	int64_t rev;

	cr_assert_eq(etcd_get(client, key, false, 0, &r), 0);
	rev = r.count == 1 ? r.kvs[0].mod_revision : 0;
	etcd_range_free(&r);
	return rev;
}

/*
 * A node placed as leader whose log refuses to lead (log_epoch_begin's -ENODATA: the
 * records below a cut are not held again; control/cluster_node.c calls this then)
 * steps down: out of "isr", "leader" 0, by CAS. The controller then places another
 * in-sync replica as leader in a newer epoch, and the refusing node stays a replica,
 * catching up. The only in-sync replica stays (-EBUSY, nothing written): the shard
 * waits unled rather than lose what only that node holds.
 */
Test(membership, a_placed_leader_that_cannot_lead_leaves_the_in_sync_set_for_another)
{
	static const char solo[] = "/sluice/cplace/placement/solo/shardId-000000000000";
	const char *value = "{\"leader\":2,\"epoch\":3,\"replicas\":[2,1,3],\"isr\":[2],"
			    "\"controller_epoch\":1}";
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	struct etcd_leader fence;
	struct cluster_shard *s;
	struct cluster_shard was;
	int64_t rev;

	/* The last in-sync member: before any member runs, so no controller rewrites it. */
	put(solo, value);
	rev = key_revision(solo);
	cr_assert_eq(cluster_placement_resign(client, "cplace", "solo", 0, rev, 2), -EBUSY);
	cr_assert_eq(key_revision(solo), rev, "nothing written");
	cr_assert_eq(etcd_delete(client, solo, false, NULL), 0);

	start_placed(&fence, &s);
	was = s[0];
	free(s);
	cr_assert_eq(cluster_placement_resign(client, "cplace", was.stream, was.shard,
					      was.mod_revision - 1, was.place.leader), -ESTALE,
		     "an older revision: the CAS refuses");
	cr_assert_eq(cluster_placement_resign(client, "cplace", was.stream, was.shard,
					      was.mod_revision, was.place.leader % NODES + 1),
		     -EPERM, "only the placed leader steps down");
	cr_assert_eq(cluster_placement_resign(client, "cplace", was.stream, was.shard,
					      was.mod_revision, was.place.leader), 0);
	for (;;) {
		struct cluster_shard *now = NULL;
		uint32_t count;
		bool led = false;

		cr_assert_eq(cluster_placement_read(client, "cplace", &now, &count), 0);
		for (uint32_t i = 0; i < count; i++) {
			const struct placement_shard *p = &now[i].place;

			if (now[i].shard != was.shard || strcmp(now[i].stream, was.stream) != 0)
				continue;
			/* Led again: by another in-sync replica, in a newer epoch. */
			led = p->leader != 0 && p->leader != was.place.leader &&
			      placement_has(p->isr, p->isr_count, p->leader) &&
			      p->leader_epoch == was.place.leader_epoch + 1;
			/* The refusing node: still a replica, not in sync, not leading. */
			cr_assert(placement_has(p->replicas, p->replica_count, was.place.leader));
			cr_assert_not(placement_has(p->isr, p->isr_count, was.place.leader));
			if (led)
				printf("membership-resign: %s/%u led by %u in epoch %lld (node %u "
				       "stepped down from epoch %lld)\n", was.stream, was.shard,
				       p->leader, (long long)p->leader_epoch, was.place.leader,
				       (long long)was.place.leader_epoch);
		}
		free(now);
		if (led)
			break;
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "the shard was not led again");
		wait_ms(20);
	}
}

/*
 * A drain is an intent that outlives the node: drained, the node's process
 * dies (its lease runs out) and starts again; registered again it is still
 * draining and gets nothing, also of a stream created after it came back
 * (that stream's placement was computed from a snapshot holding the new
 * registration). Undrained, it leads again.
 */
Test(membership, a_drained_node_that_restarts_stays_drained_until_undrained)
{
	struct cluster_config c;
	struct cluster_shard *s;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t count;
	uint32_t led_by_2 = 0;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	streams();
	while (!placed(9, 3, 0, NULL)) {
		cr_assert_lt(clock_mono_ns(), deadline, "nothing placed");
		wait_ms(20);
	}
	cr_assert_eq(cluster_member_drain(members[2], true), 0);
	while (!placed(9, 2, 2, NULL)) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 2 still leads or holds replicas");
		wait_ms(20);
	}

	/*
	 * Killed: no resign, no revoke. Started again at once, it finds its old key under
	 * the old lease and waits for etcd to expire it (at most one TTL), then joins.
	 */
	cluster_member_abandon(members[2]);
	members[2] = NULL;
	config(&c, 2);
	cr_assert_eq(cluster_member_start(&c, &members[2]), 0);
	put("/sluice/cplace/streams/after", "{\"shard_count\":3}");
	count = wait_stream_placed("after", 3, &s);
	for (uint32_t i = 0; i < count; i++) {
		cr_assert_not(placement_has(s[i].place.replicas, s[i].place.replica_count, 2),
			      "%s/%u placed on the drained node", s[i].stream, s[i].shard);
		cr_assert_eq(s[i].place.replica_count, 2, "%s/%u", s[i].stream, s[i].shard);
	}
	free(s);

	/* Undrained: a stream created now has every replica in sync, and node 2 leads some. */
	cr_assert_eq(cluster_member_drain(members[2], false), 0);
	put("/sluice/cplace/streams/again", "{\"shard_count\":3}");
	while (led_by_2 == 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "node 2 leads nothing after the undrain");
		wait_ms(20);
		cr_assert_eq(cluster_placement_read(client, "cplace", &s, &count), 0);
		for (uint32_t i = 0; i < count; i++)
			led_by_2 += s[i].place.leader == 2;
		free(s);
	}
}

/*
 * DeleteStream removes streams/<name>: the controller deletes the placement
 * keys (fenced, counted); a stream created again under the name is placed
 * afresh (epoch 1, its own stream_id). When the controller never saw the
 * delete (name recreated in the same revision as an older placement, here
 * planted: no live in-sync replica, so it would wait forever for one), the
 * older placement is replaced, not inherited, and a shard index the new
 * stream lacks is removed. A placement of a stream whose key exists but
 * cannot be read is kept.
 */
Test(membership, placements_of_a_deleted_stream_are_removed_and_a_recreated_one_is_placed_afresh)
{
	static const char stale[] = "{\"leader\":0,\"epoch\":9,\"replicas\":[7],\"isr\":[7],"
				    "\"controller_epoch\":1,\"stream_id\":8}";
	struct etcd_op ops[] = {
		{ .kind = ETCD_OP_PUT, .key = "/sluice/cplace/streams/logs",
		  .value = "{\"stream_id\":9,\"shard_count\":2}" },
		{ .kind = ETCD_OP_PUT, .key = "/sluice/cplace/placement/logs/shardId-000000000000",
		  .value = stale },
		{ .kind = ETCD_OP_PUT, .key = "/sluice/cplace/placement/logs/shardId-000000000002",
		  .value = stale },
	};
	struct cluster_member_status st;
	struct cluster_shard *s;
	struct etcd_range r;
	bool succeeded = false;
	uint32_t count;
	uint32_t c;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	put("/sluice/cplace/streams/orders", "{\"stream_id\":5,\"shard_count\":4}");
	count = wait_stream_placed("orders", 4, &s);
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(s[i].stream_id, 5, "the placement names its stream");
	free(s);

	/* Unreadable stream key: its placement stays (it may describe data). */
	put("/sluice/cplace/streams/broken", "{");
	put("/sluice/cplace/placement/broken/shardId-000000000000", "[1]");
	cr_assert_eq(etcd_delete(client, "/sluice/cplace/streams/orders", false, NULL), 0);
	wait_keys("/sluice/cplace/placement/orders/", 0, "the deleted stream's placement");
	wait_keys("/sluice/cplace/placement/broken/", 1, "the unreadable stream's placement");
	/* Counted after etcd answered: waited for, as everything else. */
	while ((c = controller(NULL)) == 0 || (cluster_member_status(members[c], &st),
					       st.placements_removed < 4)) {
		cr_assert_lt(clock_mono_ns(), deadline, "removals not counted");
		wait_ms(20);
	}
	cr_assert_eq(st.placement_refused, 0);

	/* Created again, fewer shards: a fresh placement. */
	put("/sluice/cplace/streams/orders", "{\"stream_id\":6,\"shard_count\":2}");
	count = wait_stream_placed("orders", 2, &s);
	for (uint32_t i = 0; i < count; i++) {
		if (strcmp(s[i].stream, "orders") != 0)
			continue;
		cr_assert_eq(s[i].stream_id, 6);
		cr_assert_eq(s[i].place.leader_epoch, 1, "new log shards: epochs from 1");
		cr_assert_eq(s[i].place.replica_count, 3);
		cr_assert_eq(s[i].place.isr_count, 3, "an empty log is in sync everywhere");
	}
	free(s);

	/* Recreated unseen: the older stream's placements are in the same snapshot. */
	for (uint32_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		ops[i].value_size = strlen(ops[i].value);
	cr_assert_eq(etcd_txn(client, NULL, 0, ops, 3, NULL, 0, &succeeded, NULL), 0);
	cr_assert(succeeded);
	count = wait_stream_placed("logs", 2, &s);
	for (uint32_t i = 0; i < count; i++) {
		if (strcmp(s[i].stream, "logs") != 0)
			continue;
		cr_assert_lt(s[i].shard, 2, "shard index 2 of the older stream removed");
		cr_assert_eq(s[i].stream_id, 9);
		cr_assert_eq(s[i].place.leader_epoch, 1, "nothing inherited from the older stream");
		cr_assert_not(placement_has(s[i].place.replicas, s[i].place.replica_count, 7));
	}
	free(s);
	cr_assert_eq(etcd_get(client, "/sluice/cplace/placement/broken/", true, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	etcd_range_free(&r);
}

/* Every node registered, each under a key created after `revision` (registered again). */
static bool
registered_since(int64_t revision)
{
	struct etcd_range r;
	bool ok;

	if (etcd_get(client, "/sluice/cplace/nodes/", true, 0, &r) != 0)
		return false;
	ok = r.count == NODES;
	for (uint32_t i = 0; ok && i < r.count; i++)
		ok = r.kvs[i].create_revision > revision;
	etcd_range_free(&r);
	return ok;
}

/*
 * etcd stalled (SIGSTOP) past every lease's TTL: when it runs again every lease
 * is expired at once (etcd extends leases on a start or leader change, not after
 * a stall), every member registers again and one of them becomes controller. It
 * gives the others a TTL to come back before it places (the grace), so no shard
 * moves: without it the first member back saw itself alone and put every shard
 * on itself, alone in its in-sync set (sluiced nodes, test_cluster_etcd.py). In
 * one process the members come back within milliseconds of each other, which
 * hides that; so members 1 and 3 are slower here, as there: abandoned before the
 * stall (no resign, no revoke) and started again once etcd runs, while member 2
 * finds its lease lapsed and campaigns. A stream created once all are back is
 * placed by the new controller: that pass would have rewritten the old shards
 * too, so their keys unchanged (mod_revision) show nothing moved.
 */
Test(membership, an_etcd_stall_past_every_lease_moves_nothing)
{
	struct cluster_shard *before;
	struct cluster_shard *after;
	struct cluster_member_status st;
	struct etcd_leader fence;
	struct etcd_leader next;
	struct etcd_range r;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t nb;
	uint32_t na;
	uint32_t c0;
	uint32_t c;
	int64_t revision;

	ttl_s = STALL_TTL_S;
	c0 = start_placed(&fence, &before);
	nb = placed_count;
	cr_assert_eq(etcd_get(client, "/sluice/cplace/nodes/", true, 0, &r), 0);
	revision = r.revision;
	etcd_range_free(&r);
	cluster_member_abandon(members[1]);
	cluster_member_abandon(members[3]);
	members[1] = members[3] = NULL;
	etcd_fixture_signal(SIGSTOP);
	/* The stall's length (the fault), not a wait for a condition: past every lease. */
	wait_ms((STALL_TTL_S + 2) * 1000);
	etcd_fixture_signal(SIGCONT);
	/* Member 2, alone, finds its lease lapsed, registers again and wins. */
	while ((c = controller(&next)) != 2 || next.rev <= fence.rev) {
		cr_assert_lt(clock_mono_ns(), deadline, "member 2 is not controller after the stall");
		wait_ms(20);
	}
	start(1);   /* Each waits for its old key to go with its expired lease. */
	start(3);
	while (!registered_since(revision) || controller(NULL) != 2) {
		cr_assert_lt(clock_mono_ns(), deadline, "the members did not all register again");
		wait_ms(20);
	}
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/late", "{\"shard_count\":1}", 17, 0,
			      NULL), 0);
	na = wait_stream_placed("late", 1, &after);
	cr_assert_eq(na, nb + 1);
	for (uint32_t i = 0; i < nb; i++) {
		for (uint32_t j = 0; j < na; j++) {
			if (strcmp(after[j].stream, before[i].stream) != 0 ||
			    after[j].shard != before[i].shard)
				continue;
			cr_assert_eq(after[j].mod_revision, before[i].mod_revision,
				     "%s/%u rewritten after the stall: leader %u -> %u, %u replicas",
				     before[i].stream, before[i].shard, before[i].place.leader,
				     after[j].place.leader, after[j].place.replica_count);
		}
	}
	cluster_member_status(members[c], &st);
	printf("membership-etcd-stall: controller %u -> %u, placements deferred %" PRIu64 "\n",
	       c0, c, st.placement_deferred);
	free(before);
	free(after);
}

/*
 * A controller whose election key is gone while its lease lives learns it. A
 * campaign that gives up (its wait is the keepalive period) just as its key
 * comes to lead is adopted (etcd_leader names it), but etcd's campaign, cancelled
 * by the dropped call, resigns: the key is deleted after the adoption. The node
 * then believed it led while another won; nothing told it until a placement write
 * was refused, and with nothing to change it never wrote (two members reporting
 * themselves controller after an etcd stall: seen with the stall test's first
 * shape). Deleting the key by hand makes that state; the controller checks its key
 * once per keepalive period and campaigns again, so one controller remains.
 */
Test(membership, a_controller_whose_key_is_deleted_steps_down)
{
	struct etcd_leader fence;
	struct etcd_leader next;
	struct etcd_leader lead;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t c;
	uint32_t c2;

	c = start_placed(&fence, NULL);
	cr_assert_eq(etcd_delete(client, fence.key, false, NULL), 0);
	/* One member believes it leads, and it is etcd's leader, under a newer key. */
	while ((c2 = controller(&next)) == 0 || next.rev <= fence.rev ||
	       etcd_leader(client, "/sluice/cplace/controller", &lead) != 0 ||
	       strcmp(lead.key, next.key) != 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "controller %u's key deleted: no single "
			     "controller since (%u)", c, controller(NULL));
		wait_ms(20);
	}
	printf("membership-key-deleted: controller %u -> %u\n", c, c2);
}

/* nodes/<id> as a live node registers it (no lease here: the test says who is live). */
static void
register_node(uint32_t id)
{
	char key[64];
	char value[160];

	snprintf(key, sizeof(key), "/sluice/cplace/nodes/%u", id);
	snprintf(value, sizeof(value), "{\"addr\":\"127.0.0.1:%u\",\"api_addr\":\"127.0.0.1:%u\","
		 "\"dp_addr\":\"127.0.0.1:%u\"}", 7000 + id, 8000 + id, 9000 + id);
	put(key, value);
}

/* One placement key as stored (its "isr" and the epochs it marks). */
static struct cluster_shard
placement_of(const char *stream, uint32_t shard)
{
	struct cluster_shard *s;
	struct cluster_shard found = { .shard = UINT32_MAX };
	uint32_t count;

	cr_assert_eq(cluster_placement_read(client, "cplace", &s, &count), 0);
	for (uint32_t i = 0; i < count; i++)
		if (strcmp(s[i].stream, stream) == 0 && s[i].shard == shard)
			found = s[i];
	free(s);
	cr_assert_neq(found.shard, UINT32_MAX, "%s placed", stream);
	return found;
}

/*
 * An operator's unclean election on etcd (cluster_placement_elect, docs/CLUSTER.md
 * "Unclean election"): refused, nothing written, for an unknown shard, a shard with a
 * leader, a live in-sync replica, a node that is not a live replica, an older revision;
 * else the key gets leader, epoch + 1, isr [leader] and unclean_epoch in one CAS, and a
 * second election is refused (it has a leader). A placed leader that refuses to lead as
 * the only in-sync replica marks "refused_epoch" once (cluster_placement_refused), which
 * lets the election replace it.
 */
Test(membership, an_unclean_election_is_one_cas_refused_unless_no_in_sync_replica_can_lead)
{
	static const char key[] = "/sluice/cplace/placement/solo/shardId-000000000000";
	struct cluster_shard out;
	struct cluster_shard now;
	int64_t rev;

	for (uint32_t id = 1; id <= 3; id++)
		register_node(id);
	cr_assert_eq(cluster_placement_elect(client, "cplace", "nosuch", 0, CLUSTER_REVISION_READ,
					     0, &out), -ENOENT);
	put(key, "{\"leader\":2,\"epoch\":3,\"replicas\":[2,1,3],\"isr\":[2,1],"
	    "\"controller_epoch\":1}");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, CLUSTER_REVISION_READ,
					     1, &out), -EEXIST, "led by node 2");
	put(key, "{\"leader\":0,\"epoch\":3,\"replicas\":[2,1,3],\"isr\":[2],"
	    "\"controller_epoch\":1}");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, CLUSTER_REVISION_READ,
					     1, &out), -EBUSY, "in-sync node 2 is live");
	cr_assert_eq(etcd_delete(client, "/sluice/cplace/nodes/2", false, NULL), 0);
	cr_assert_eq(etcd_delete(client, "/sluice/cplace/nodes/3", false, NULL), 0);
	rev = key_revision(key);
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, rev, 4, &out), -EINVAL,
		     "node 4 is no replica");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, rev, 3, &out),
		     -EHOSTDOWN, "node 3 is not registered");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, rev - 1, 1, &out),
		     -ESTALE, "an older revision: the CAS refuses");
	cr_assert_eq(key_revision(key), rev, "nothing written");

	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, rev, 1, &out), 0);
	cr_assert(out.place.leader == 1 && out.place.leader_epoch == 4 &&
		  out.unclean_epoch == 4, "answered: node 1 in epoch 4");
	now = placement_of("solo", 0);
	cr_assert(now.place.leader == 1 && now.place.leader_epoch == 4 &&
		  now.place.isr_count == 1 && now.place.isr[0] == 1 &&
		  now.place.replica_count == 3 && now.unclean_epoch == 4 &&
		  now.mod_revision > rev, "stored: leader 1, epoch 4, isr [1], unclean_epoch 4");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, CLUSTER_REVISION_READ,
					     0, &out), -EEXIST, "a second election: it has a leader");

	/* The only in-sync replica refusing to lead: marked once, then replaceable. */
	register_node(2);
	put(key, "{\"leader\":2,\"epoch\":6,\"replicas\":[2,1],\"isr\":[2],"
	    "\"controller_epoch\":1}");
	rev = key_revision(key);
	cr_assert_eq(cluster_placement_resign(client, "cplace", "solo", 0, rev, 2), -EBUSY);
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, rev, 1, &out), -EEXIST,
		     "not known to refuse yet");
	cr_assert_eq(cluster_placement_refused(client, "cplace", "solo", 0, rev, 1), -EPERM,
		     "only the placed leader says it refuses");
	cr_assert_eq(cluster_placement_refused(client, "cplace", "solo", 0, rev, 2), 0);
	now = placement_of("solo", 0);
	cr_assert_eq(now.refused_epoch, 6);
	cr_assert_eq(cluster_placement_refused(client, "cplace", "solo", 0, now.mod_revision, 2), 0);
	cr_assert_eq(key_revision(key), now.mod_revision, "marked already: nothing written");
	cr_assert_eq(cluster_placement_elect(client, "cplace", "solo", 0, now.mod_revision, 1,
					     &out), 0);
	now = placement_of("solo", 0);
	cr_assert(now.place.leader == 1 && now.place.leader_epoch == 7 && now.place.isr[0] == 1 &&
		  now.place.isr_count == 1 && now.unclean_epoch == 7);
	cr_assert_eq(etcd_delete(client, key, false, NULL), 0);
	cr_assert_eq(etcd_delete(client, "/sluice/cplace/nodes/", true, NULL), 0);
}

/*
 * The controller keeps an operator's unclean election: a shard whose only in-sync
 * replica died is unled (leader 0, the dead node kept in "isr"); elected by hand, its
 * new leader stays through the controller's next computations (the dead node back as
 * a catching-up replica, another stream placed after it).
 */
Test(membership, the_controller_keeps_an_unclean_election)
{
	struct etcd_leader fence;
	struct cluster_shard *s;
	struct cluster_shard was;
	struct cluster_shard out;
	struct cluster_shard now;
	uint64_t deadline = clock_mono_ns() + DEADLINE_NS;
	uint32_t gone;

	start_placed(&fence, &s);
	was = s[0];
	free(s);
	gone = was.place.leader;
	/* The leader alone in sync (its followers lagged), as its in-sync update writes it. */
	while (cluster_placement_isr_write(client, "cplace", was.stream, was.shard,
					   was.mod_revision, &gone, 1) != 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "the in-sync write kept losing");
		was = placement_of(was.stream, was.shard);
	}
	cluster_member_abandon(members[gone]);
	members[gone] = NULL;
	for (;;) {
		now = placement_of(was.stream, was.shard);
		if (now.place.leader == 0)
			break;
		if (clock_mono_ns() >= deadline)
			dump_state();
		cr_assert_lt(clock_mono_ns(), deadline, "the shard did not become unled");
		wait_ms(20);
	}
	cr_assert(now.place.isr_count == 1 && now.place.isr[0] == gone, "the dead node kept in isr");
	cr_assert_eq(cluster_placement_elect(client, "cplace", was.stream, was.shard,
					     CLUSTER_REVISION_READ, gone, &out), -EHOSTDOWN);
	cr_assert_eq(cluster_placement_elect(client, "cplace", was.stream, was.shard,
					     CLUSTER_REVISION_READ, 0, &out), 0);
	cr_assert(out.place.leader != 0 && out.place.leader != gone &&
		  out.place.leader_epoch == now.place.leader_epoch + 1);
	printf("membership-unclean: %s/%u unled (node %u died alone in sync), node %u elected in "
	       "epoch %lld\n", was.stream, was.shard, gone, out.place.leader,
	       (long long)out.place.leader_epoch);
	start(gone);
	cr_assert_eq(etcd_put(client, "/sluice/cplace/streams/later", "{\"shard_count\":1}", 17, 0,
			      NULL), 0);
	wait_stream_placed("later", 1, &s);
	free(s);
	now = placement_of(was.stream, was.shard);
	cr_assert(now.place.leader == out.place.leader &&
		  now.place.leader_epoch == out.place.leader_epoch &&
		  placement_has(now.place.isr, now.place.isr_count, out.place.leader) &&
		  !placement_has(now.place.isr, now.place.isr_count, gone) &&
		  placement_has(now.place.replicas, now.place.replica_count, gone) &&
		  now.unclean_epoch == out.place.leader_epoch,
		  "kept: leader %u epoch %lld", now.place.leader, (long long)now.place.leader_epoch);
}
