/*
 * placement: the pure placement function (cluster/placement.c) over
 * simulated membership: balance after a join, a loss and a drain, minimal
 * movement, catching-up replicas never leading, no unclean election,
 * determinism, and a seeded random walk of membership changes checked
 * against the invariants at every step (TEST_SEED=<n> replays one).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"

#define SHARDS 12u

struct sim {
	struct placement_node nodes[CLUSTER_NODES_MAX];
	uint32_t node_count;
	struct placement_shard cur[CLUSTER_SHARDS_MAX];
	struct placement_shard out[CLUSTER_SHARDS_MAX];
	uint32_t shard_count;
};

static struct sim sim;

static bool
live(const struct sim *m, uint32_t id, bool *draining)
{
	for (uint32_t i = 0; i < m->node_count; i++) {
		if (m->nodes[i].id == id) {
			if (draining != NULL)
				*draining = m->nodes[i].draining;
			return true;
		}
	}
	return false;
}

static uint32_t
live_in(const struct sim *m, const uint32_t *ids, uint32_t count)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < count; i++)
		n += live(m, ids[i], NULL);
	return n;
}

/* Every rule placement promises, for one step cur -> out. */
static void
check_step(const struct sim *m, uint32_t rf)
{
	uint32_t allowed = 0;

	for (uint32_t i = 0; i < m->node_count; i++)
		allowed += !m->nodes[i].draining;
	if (allowed == 0)
		allowed = m->node_count;
	if (rf > allowed)
		rf = allowed;
	for (uint32_t s = 0; s < m->shard_count; s++) {
		const struct placement_shard *c = &m->cur[s];
		const struct placement_shard *o = &m->out[s];
		bool fresh = c->replica_count == 0 && c->leader_epoch == 0;
		bool stuck = c->replica_count > 0 && live_in(m, c->isr, c->isr_count) == 0;
		uint32_t c_live_isr = live_in(m, c->isr, c->isr_count);

		for (uint32_t i = 0; i < o->replica_count; i++) {
			for (uint32_t j = 0; j < i; j++)
				cr_assert_neq(o->replicas[i], o->replicas[j], "shard %u: repeated replica", s);
			cr_assert(stuck || live(m, o->replicas[i], NULL), "shard %u: dead replica", s);
		}
		for (uint32_t i = 0; i < o->isr_count; i++) {
			cr_assert(placement_has(o->replicas, o->replica_count, o->isr[i]));
			cr_assert(fresh || placement_has(c->isr, c->isr_count, o->isr[i]),
				  "shard %u: node %u in sync without catching up", s, o->isr[i]);
		}
		if (o->leader != 0) {
			cr_assert(live(m, o->leader, NULL));
			cr_assert(placement_has(o->isr, o->isr_count, o->leader));
			cr_assert(fresh || placement_has(c->isr, c->isr_count, o->leader),
				  "shard %u: leader %u was not in sync", s, o->leader);
		}
		if (stuck) {
			cr_assert_eq(o->leader, 0, "shard %u: unclean election", s);
			continue;
		}
		cr_assert_neq(o->leader, 0, "shard %u: a live in-sync replica, no leader", s);
		cr_assert_geq(o->replica_count, rf, "shard %u: %u replicas < %u", s, o->replica_count, rf);
		cr_assert_geq(live_in(m, o->isr, o->isr_count), c_live_isr < rf ? c_live_isr : rf,
			      "shard %u: in-sync copies dropped", s);
		if (o->leader != c->leader)
			cr_assert_eq(o->leader_epoch, c->leader_epoch + 1, "shard %u: epoch", s);
		else
			cr_assert_eq(o->leader_epoch, c->leader_epoch);
	}
}

static void
step(struct sim *m, uint32_t rf)
{
	cr_assert_eq(placement_compute(m->nodes, m->node_count, rf, m->cur, m->shard_count, m->out), 0);
	check_step(m, rf);
	memcpy(m->cur, m->out, m->shard_count * sizeof(m->cur[0]));
}

/* Every replica catches up (what the shard leaders report once replication is wired). */
static void
catch_up(struct sim *m)
{
	for (uint32_t s = 0; s < m->shard_count; s++) {
		struct placement_shard *c = &m->cur[s];

		if (c->leader == 0)
			continue;
		memcpy(c->isr, c->replicas, sizeof(c->isr));
		c->isr_count = c->replica_count;
	}
}

/* Steps with every replica catching up until nothing changes. */
static void
converge(struct sim *m, uint32_t rf)
{
	for (int round = 0; round < 50; round++) {
		struct placement_shard before[SHARDS * 4];

		cr_assert_leq(m->shard_count, SHARDS * 4);
		catch_up(m);
		memcpy(before, m->cur, m->shard_count * sizeof(before[0]));
		step(m, rf);
		catch_up(m);
		if (memcmp(before, m->cur, m->shard_count * sizeof(before[0])) == 0)
			return;
	}
	cr_assert_fail("placement did not converge in 50 rounds");
}

static void
loads(const struct sim *m, uint32_t id, uint32_t *leaders, uint32_t *replicas)
{
	*leaders = 0;
	*replicas = 0;
	for (uint32_t s = 0; s < m->shard_count; s++) {
		*leaders += m->cur[s].leader == id;
		*replicas += placement_has(m->cur[s].replicas, m->cur[s].replica_count, id);
	}
}

static void
check_balanced(const struct sim *m)
{
	uint32_t lmin = UINT32_MAX, lmax = 0, rmin = UINT32_MAX, rmax = 0;

	for (uint32_t i = 0; i < m->node_count; i++) {
		uint32_t l, r;

		if (m->nodes[i].draining)
			continue;
		loads(m, m->nodes[i].id, &l, &r);
		lmin = l < lmin ? l : lmin;
		lmax = l > lmax ? l : lmax;
		rmin = r < rmin ? r : rmin;
		rmax = r > rmax ? r : rmax;
	}
	cr_assert_leq(lmax - lmin, 1, "leaders %u..%u", lmin, lmax);
	cr_assert_leq(rmax - rmin, 1, "replicas %u..%u", rmin, rmax);
}

static void
sim_init(struct sim *m, uint32_t nodes, uint32_t shards)
{
	memset(m, 0, sizeof(*m));
	for (uint32_t i = 0; i < nodes; i++)
		m->nodes[i].id = i + 1;
	m->node_count = nodes;
	m->shard_count = shards;
}

static void
node_remove(struct sim *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->node_count; i++) {
		if (m->nodes[i].id == id) {
			m->nodes[i] = m->nodes[--m->node_count];
			return;
		}
	}
}

Test(placement, new_shards_get_three_in_sync_replicas_and_balanced_leaders)
{
	sim_init(&sim, 3, 8);
	step(&sim, 0);
	for (uint32_t s = 0; s < 8; s++) {
		cr_assert_eq(sim.cur[s].replica_count, 3);
		cr_assert_eq(sim.cur[s].isr_count, 3);
		cr_assert_eq(sim.cur[s].leader_epoch, 1);
	}
	check_balanced(&sim);
}

Test(placement, fewer_nodes_than_the_factor_place_on_every_node)
{
	sim_init(&sim, 2, 4);
	step(&sim, 0);
	for (uint32_t s = 0; s < 4; s++)
		cr_assert_eq(sim.cur[s].replica_count, 2);
	check_balanced(&sim);
	cr_assert_eq(placement_compute(sim.nodes, 2, CLUSTER_REPLICATION_FACTOR_MAX + 1, sim.cur, 4,
				       sim.out), -EINVAL);
}

Test(placement, a_fourth_node_catches_up_before_it_leads_then_takes_its_share)
{
	struct placement_shard before[SHARDS];
	uint32_t l, r;

	sim_init(&sim, 3, SHARDS);
	converge(&sim, 0);
	memcpy(before, sim.cur, sizeof(before));
	sim.nodes[sim.node_count++] = (struct placement_node){ .id = 4 };
	step(&sim, 0);
	for (uint32_t s = 0; s < SHARDS; s++) {
		cr_assert_neq(sim.cur[s].leader, 4, "a catching-up replica leads");
		/* Minimal movement: a shard gains at most node 4 and loses nothing yet. */
		for (uint32_t i = 0; i < before[s].replica_count; i++)
			cr_assert(placement_has(sim.cur[s].replicas, sim.cur[s].replica_count,
						before[s].replicas[i]));
	}
	converge(&sim, 0);
	check_balanced(&sim);
	loads(&sim, 4, &l, &r);
	cr_assert_eq(r, SHARDS * 3 / 4);
	cr_assert_eq(l, SHARDS / 4);
}

Test(placement, losing_a_node_moves_only_its_work_and_bumps_the_epochs)
{
	struct placement_shard before[SHARDS];

	sim_init(&sim, 4, SHARDS);
	converge(&sim, 0);
	memcpy(before, sim.cur, sizeof(before));
	node_remove(&sim, 2);
	step(&sim, 0);
	for (uint32_t s = 0; s < SHARDS; s++) {
		if (!placement_has(before[s].replicas, before[s].replica_count, 2)) {
			cr_assert_arr_eq(sim.cur[s].replicas, before[s].replicas,
					 sizeof(before[s].replicas), "shard %u moved", s);
			continue;
		}
		cr_assert_eq(sim.cur[s].replica_count, 3);
		cr_assert_eq(sim.cur[s].isr_count, 2, "the replacement is catching up");
		if (before[s].leader == 2)
			cr_assert_eq(sim.cur[s].leader_epoch, before[s].leader_epoch + 1);
	}
	converge(&sim, 0);
	check_balanced(&sim);
}

Test(placement, a_draining_node_loses_leaderships_first_then_replicas)
{
	uint32_t l, r;

	sim_init(&sim, 4, SHARDS);
	converge(&sim, 0);
	sim.nodes[0].draining = true;
	step(&sim, 0);
	loads(&sim, 1, &l, &r);
	cr_assert_eq(l, 0, "node 1 still leads");
	cr_assert_eq(r, SHARDS * 3 / 4, "node 1 left before its replacements caught up");
	converge(&sim, 0);
	loads(&sim, 1, &l, &r);
	cr_assert_eq(r, 0);
	check_balanced(&sim);
}

Test(placement, never_a_leader_outside_the_in_sync_set)
{
	sim_init(&sim, 3, 1);
	step(&sim, 0);
	/* Only the leader is in sync; it dies: nobody may lead, and its record stays. */
	sim.cur[0].isr[0] = sim.cur[0].leader;
	sim.cur[0].isr_count = 1;
	uint32_t old = sim.cur[0].leader;
	node_remove(&sim, old);
	step(&sim, 0);
	cr_assert_eq(sim.cur[0].leader, 0);
	cr_assert(placement_has(sim.cur[0].isr, sim.cur[0].isr_count, old));
	sim.nodes[sim.node_count++] = (struct placement_node){ .id = old };
	step(&sim, 0);
	cr_assert_eq(sim.cur[0].leader, old);
	cr_assert_eq(sim.cur[0].leader_epoch, 2);
}

Test(placement, same_input_same_output_and_bad_input_refused)
{
	struct placement_shard again[SHARDS];
	struct placement_node dup[2] = { { .id = 1 }, { .id = 1 } };

	sim_init(&sim, 5, SHARDS);
	converge(&sim, 0);
	node_remove(&sim, 3);
	sim.nodes[0].draining = true;
	cr_assert_eq(placement_compute(sim.nodes, sim.node_count, 0, sim.cur, SHARDS, sim.out), 0);
	cr_assert_eq(placement_compute(sim.nodes, sim.node_count, 0, sim.cur, SHARDS, again), 0);
	cr_assert_arr_eq(again, sim.out, sizeof(again));

	cr_assert_eq(placement_compute(dup, 2, 0, sim.cur, 1, sim.out), -EINVAL);
	dup[1].id = 0;
	cr_assert_eq(placement_compute(dup, 2, 0, sim.cur, 1, sim.out), -EINVAL);
	sim.cur[0].isr[sim.cur[0].isr_count++] = 99;   /* In sync but not a replica. */
	cr_assert_eq(placement_compute(sim.nodes, sim.node_count, 0, sim.cur, 1, sim.out), -EINVAL);
}

/* The seed's walk: joins, losses, drains, catch-ups and ISR shrinks, invariants every step. */
Test(placement, seeded_membership_changes_keep_the_invariants, .timeout = 60)
{
	const char *env = getenv("TEST_SEED");
	unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 10) : 15u;
	uint32_t next_id = 6;

	for (unsigned run = 0; run < 20; run++, seed++) {
		srand(seed);
		sim_init(&sim, 5, 2 * SHARDS);
		for (int i = 0; i < 150; i++) {
			uint32_t s = (uint32_t)rand() % sim.shard_count;
			struct placement_shard *c = &sim.cur[s];
			int op = rand() % 6;

			if (op == 0 && sim.node_count < 8)
				sim.nodes[sim.node_count++] = (struct placement_node){ .id = next_id++ };
			else if (op == 1 && sim.node_count > 1)
				node_remove(&sim, sim.nodes[(uint32_t)rand() % sim.node_count].id);
			else if (op == 2)
				sim.nodes[(uint32_t)rand() % sim.node_count].draining ^= true;
			else if (op == 3 && c->leader != 0) {
				/* One replica catches up. */
				uint32_t r = c->replicas[(uint32_t)rand() % c->replica_count];

				if (!placement_has(c->isr, c->isr_count, r))
					c->isr[c->isr_count++] = r;
			} else if (op == 4 && c->isr_count > 1) {
				/* The leader drops a follower from the in-sync set. */
				uint32_t victim = c->isr[(uint32_t)rand() % c->isr_count];

				if (victim != c->leader) {
					for (uint32_t j = 0; j < c->isr_count; j++)
						if (c->isr[j] == victim)
							c->isr[j] = c->isr[--c->isr_count];
				}
			} else if (op == 5)
				catch_up(&sim);
			step(&sim, 0);
		}
		/* Heal: every node back and undrained, everything caught up: balanced. */
		for (uint32_t i = 0; i < sim.node_count; i++)
			sim.nodes[i].draining = false;
		for (uint32_t s = 0; s < sim.shard_count; s++)
			for (uint32_t j = 0; j < sim.cur[s].isr_count; j++)
				if (!live(&sim, sim.cur[s].isr[j], NULL) && sim.node_count < CLUSTER_NODES_MAX)
					sim.nodes[sim.node_count++] =
						(struct placement_node){ .id = sim.cur[s].isr[j] };
		converge(&sim, 0);
		check_balanced(&sim);
	}
	printf("placement-random: seeds=%u..%u steps=%u\n", seed - 20, seed - 1, 20u * 150u);
}

/*
 * An operator's unclean election (placement_unclean, docs/CLUSTER.md "Unclean
 * election"): refused while the shard has a leader or a live in-sync replica could
 * lead it, for a node that is not a live replica; else the node leads in epoch + 1
 * with the in-sync set [it]. Unnamed, a live in-sync replica (a refusing leader) is
 * picked first, then the first live replica.
 */
Test(placement, an_unclean_election_is_refused_unless_no_in_sync_replica_can_lead)
{
	const struct placement_shard led = { .replicas = { 1, 2, 3 }, .replica_count = 3,
					     .isr = { 1, 2 }, .isr_count = 2, .leader = 1,
					     .leader_epoch = 4 };
	const struct placement_shard unled = { .replicas = { 1, 2, 3 }, .replica_count = 3,
					       .isr = { 1 }, .isr_count = 1, .leader = 0,
					       .leader_epoch = 4 };
	const struct placement_shard refusing = { .replicas = { 1, 2, 3 }, .replica_count = 3,
						  .isr = { 2 }, .isr_count = 1, .leader = 2,
						  .leader_epoch = 7 };
	const uint32_t all[] = { 1, 2, 3 };
	const uint32_t two_three[] = { 2, 3 };
	const uint32_t three[] = { 3 };
	struct placement_shard out;
	struct placement_shard untouched;

	memset(&out, 0xab, sizeof(out));
	untouched = out;
	cr_assert_eq(placement_unclean(&led, false, all, 3, 2, &out), -EEXIST);
	cr_assert_eq(placement_unclean(&led, false, two_three, 2, 2, &out), -EEXIST,
		     "a placed leader, even a dead one: the controller replaces it");
	cr_assert_eq(placement_unclean(&unled, false, all, 3, 2, &out), -EBUSY,
		     "in-sync node 1 is live: the controller elects it");
	cr_assert_eq(placement_unclean(&unled, false, two_three, 2, 4, &out), -EINVAL,
		     "node 4 is not a replica");
	cr_assert_eq(placement_unclean(&unled, false, three, 1, 2, &out), -EHOSTDOWN,
		     "node 2 is not live");
	cr_assert_eq(placement_unclean(&unled, false, NULL, 0, 0, &out), -EHOSTDOWN,
		     "no replica is live");
	cr_assert_eq(placement_unclean(&refusing, false, all, 3, 1, &out), -EEXIST,
		     "a leader not known to refuse leads");
	cr_assert_eq(memcmp(&out, &untouched, sizeof(out)), 0, "nothing written when refused");

	cr_assert_eq(placement_unclean(&unled, false, two_three, 2, 3, &out), 0);
	cr_assert(out.leader == 3 && out.leader_epoch == 5 && out.isr_count == 1 &&
		  out.isr[0] == 3 && out.replica_count == 3 && out.replicas[0] == 1,
		  "node 3 leads in epoch 5, in-sync set [3], the replicas kept");
	cr_assert_eq(placement_unclean(&unled, false, two_three, 2, 0, &out), 0);
	cr_assert_eq(out.leader, 2, "unnamed: the first live replica in the placement's order");
	cr_assert_eq(placement_unclean(&refusing, true, all, 3, 0, &out), 0);
	cr_assert(out.leader == 2 && out.leader_epoch == 8 && out.isr[0] == 2,
		  "unnamed: the refusing in-sync replica first (it lacks the fewest records)");
	cr_assert_eq(placement_unclean(&refusing, true, all, 3, 3, &out), 0);
	cr_assert_eq(out.leader, 3, "named: another live replica");

	/* The controller keeps it: a live leader in its in-sync set. */
	{
		struct placement_node nodes[] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };
		struct placement_shard after;

		cr_assert_eq(placement_unclean(&unled, false, two_three, 2, 3, &out), 0);
		cr_assert_eq(placement_compute(nodes, 3, 3, &out, 1, &after), 0);
		cr_assert(after.leader == 3 && after.leader_epoch == 5 &&
			  placement_has(after.isr, after.isr_count, 3) && after.isr_count == 1,
			  "node 1 back (catching up): node 3 still leads in epoch 5");
		/* Node 1 gone for good: dropped from the led shard, whose quorum is then live. */
		cr_assert_eq(placement_compute(nodes + 1, 2, 3, &out, 1, &after), 0);
		cr_assert(after.leader == 3 && after.leader_epoch == 5 &&
			  !placement_has(after.replicas, after.replica_count, 1) &&
			  after.replica_count == 2, "replicas %u", after.replica_count);
	}
}
