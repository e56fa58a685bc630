/*
 * membership: three cluster members in one process against a real etcd
 * (tests/cluster/etcd_fixture.c): they register, one becomes controller and
 * places every shard; the controller's session dies without a word (its
 * lease expires) and another takes over, moves its leaderships with bigger
 * epochs; the deposed controller's fenced write is refused. Also: a second
 * node with a live node's id is refused, a drained node is left without
 * leaderships, bad configurations are refused. Every wait is on a condition
 * with a generous deadline; the takeover time is printed, not asserted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "etcd_fixture.h"

#define TTL_S 2u
#define NODES 3u
#define DEADLINE_NS (60ull * 1000000000ull)

static struct cluster_member *members[NODES + 1];   /* By node id. */
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
				      .dp_addr = addrs[id][2], .lease_ttl_s = TTL_S };
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
	for (uint32_t i = 0; i < 10; i++) {
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

	for (uint32_t i = 1; i <= NODES; i++)
		start(i);
	streams();
	while ((c = controller(&fence)) == 0 || !placed(9, 3, 0, NULL)) {
		cr_assert_lt(clock_mono_ns(), deadline, "no controller placed the shards");
		wait_ms(20);
	}
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
