/*
 * placement.c - where each shard's replicas and leader go (cluster.h).
 * A pure function of (live nodes, current shard states): the controller
 * calls it on every membership change and writes what differs.
 *
 * Per shard the replica set is kept in two parts, in this order:
 *   target   - up to rf replicas on allowed nodes (non-draining, unless every
 *              node drains): the shard's future;
 *   leaving  - in-sync replicas the shard is moving off (a draining node, a
 *              rebalanced one), kept until every target replica is in sync.
 * Keeping that order in the output makes the next call read the same
 * target back (the first rf allowed replicas), so a move in progress is
 * neither undone nor redone.
 *
 * Steps: (1) targets from what is kept, (2) additions on the least loaded
 * nodes, (3) replica balancing by one swap at a time on settled shards,
 * (4) leaders: keep, else the least loaded in-sync target, (5) leader
 * balancing by augmenting paths (a chain of leader moves from a loaded node
 * to one two leaderships lighter: the textbook way to reach max - min <= 1
 * when each shard may only be led by its own in-sync replicas).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "cluster/cluster.h"

struct place {
	const struct placement_node *nodes;
	uint32_t node_count;
	uint32_t rf;                           /* Effective replication factor. */
	bool drainers_allowed;                 /* Every node drains: they are the pool. */
	const struct placement_shard *cur;
	struct placement_shard *out;
	uint32_t shard_count;
	uint32_t target_count[CLUSTER_SHARDS_MAX];  /* out->replicas[0, n) is the target. */
	bool stuck[CLUSTER_SHARDS_MAX];         /* No live in-sync replica: left as it was. */
	uint32_t replica_load[CLUSTER_NODES_MAX];
	uint32_t leader_load[CLUSTER_NODES_MAX];
};

bool
placement_has(const uint32_t *ids, uint32_t count, uint32_t id)
{
	for (uint32_t i = 0; i < count; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* The node's index, or node_count when it is not live. */
static uint32_t
node_index(const struct place *p, uint32_t id)
{
	for (uint32_t i = 0; i < p->node_count; i++)
		if (p->nodes[i].id == id)
			return i;
	return p->node_count;
}

static bool
node_allowed(const struct place *p, uint32_t id)
{
	uint32_t i = node_index(p, id);

	return i < p->node_count && (p->drainers_allowed || !p->nodes[i].draining);
}

static void
set_remove(uint32_t *ids, uint32_t *count, uint32_t id)
{
	for (uint32_t i = 0; i < *count; i++) {
		if (ids[i] == id) {
			memmove(&ids[i], &ids[i + 1], (*count - i - 1) * sizeof(ids[0]));
			(*count)--;
			return;
		}
	}
}

static int
place_validate(const struct placement_node *nodes, uint32_t node_count, uint32_t rf,
	       const struct placement_shard *cur, uint32_t shard_count)
{
	if (node_count > CLUSTER_NODES_MAX || shard_count > CLUSTER_SHARDS_MAX ||
	    rf > CLUSTER_REPLICATION_FACTOR_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < node_count; i++) {
		if (nodes[i].id == 0)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (nodes[j].id == nodes[i].id)
				return -EINVAL;
	}
	for (uint32_t s = 0; s < shard_count; s++) {
		const struct placement_shard *c = &cur[s];

		if (c->replica_count > CLUSTER_REPLICA_SET_MAX || c->isr_count > c->replica_count)
			return -EINVAL;
		for (uint32_t i = 0; i < c->isr_count; i++)
			if (!placement_has(c->replicas, c->replica_count, c->isr[i]))
				return -EINVAL;
		if (c->leader != 0 && !placement_has(c->isr, c->isr_count, c->leader))
			return -EINVAL;
	}
	return 0;
}

/* (1) A shard's target from the allowed replicas it has; the leaving in-sync ones after it. */
static void
place_keep(struct place *p, uint32_t s)
{
	const struct placement_shard *c = &p->cur[s];
	struct placement_shard *o = &p->out[s];
	bool live_isr = false;
	uint32_t n = 0;

	for (uint32_t i = 0; i < c->isr_count; i++)
		live_isr |= node_index(p, c->isr[i]) < p->node_count;
	if (c->replica_count > 0 && !live_isr) {
		/* Wait for an in-sync replica to return; never lead from a stale one. */
		*o = *c;
		o->leader = 0;
		p->stuck[s] = true;
		p->target_count[s] = 0;
		return;
	}
	memset(o, 0, sizeof(*o));
	o->leader_epoch = c->leader_epoch;
	for (uint32_t i = 0; i < c->replica_count && n < p->rf; i++)
		if (node_allowed(p, c->replicas[i]))
			o->replicas[n++] = c->replicas[i];
	p->target_count[s] = n;
	o->replica_count = n;
	for (uint32_t i = 0; i < c->replica_count; i++) {
		uint32_t id = c->replicas[i];

		if (!placement_has(o->replicas, o->replica_count, id) &&
		    node_index(p, id) < p->node_count && placement_has(c->isr, c->isr_count, id))
			o->replicas[o->replica_count++] = id;
	}
	for (uint32_t i = 0; i < o->replica_count; i++)
		if (placement_has(c->isr, c->isr_count, o->replicas[i]))
			o->isr[o->isr_count++] = o->replicas[i];
	for (uint32_t i = 0; i < n; i++)
		p->replica_load[node_index(p, o->replicas[i])]++;
}

/* The allowed node outside the set with the fewest target replicas (lowest id on ties). */
static uint32_t
least_loaded(const struct place *p, const uint32_t *load, const uint32_t *avoid,
	     uint32_t avoid_count)
{
	uint32_t best = p->node_count;

	for (uint32_t i = 0; i < p->node_count; i++) {
		const struct placement_node *nd = &p->nodes[i];

		if ((nd->draining && !p->drainers_allowed) ||
		    placement_has(avoid, avoid_count, nd->id))
			continue;
		if (best == p->node_count || load[i] < load[best] ||
		    (load[i] == load[best] && nd->id < p->nodes[best].id))
			best = i;
	}
	return best;
}

/* Inserts id at the end of the target part (before the leaving replicas). */
static void
target_insert(struct place *p, uint32_t s, uint32_t id)
{
	struct placement_shard *o = &p->out[s];
	uint32_t t = p->target_count[s];

	assert(o->replica_count < CLUSTER_REPLICA_SET_MAX);
	memmove(&o->replicas[t + 1], &o->replicas[t], (o->replica_count - t) * sizeof(uint32_t));
	o->replicas[t] = id;
	o->replica_count++;
	p->target_count[s]++;
}

/* (2) Fills the target up to rf; a never-placed shard's first replicas are in sync. */
static void
place_add(struct place *p, uint32_t s)
{
	struct placement_shard *o = &p->out[s];
	bool fresh = p->cur[s].replica_count == 0 && p->cur[s].leader_epoch == 0;

	while (p->target_count[s] < p->rf) {
		uint32_t i = least_loaded(p, p->replica_load, o->replicas, o->replica_count);

		assert(i < p->node_count);   /* rf <= allowed nodes. */
		target_insert(p, s, p->nodes[i].id);
		p->replica_load[i]++;
		if (fresh)
			o->isr[o->isr_count++] = p->nodes[i].id;
	}
}

/* Once every target replica is in sync the leaving ones go. */
static void
place_settle(struct place *p, uint32_t s)
{
	struct placement_shard *o = &p->out[s];
	uint32_t t = p->target_count[s];

	for (uint32_t i = 0; i < t; i++)
		if (!placement_has(o->isr, o->isr_count, o->replicas[i]))
			return;
	while (o->replica_count > t)
		set_remove(o->isr, &o->isr_count, o->replicas[--o->replica_count]);
}

static bool
settled(const struct place *p, uint32_t s)
{
	const struct placement_shard *o = &p->out[s];

	return !p->stuck[s] && o->replica_count == p->target_count[s] &&
	       o->isr_count == o->replica_count;
}

/* A settled shard with heavy in its target and light nowhere; one not led by heavy first. */
static uint32_t
swap_candidate(const struct place *p, uint32_t heavy, uint32_t light)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t s = 0; s < p->shard_count; s++) {
			const struct placement_shard *o = &p->out[s];

			if (!settled(p, s) || !placement_has(o->replicas, o->replica_count, heavy) ||
			    placement_has(o->replicas, o->replica_count, light) ||
			    (pass == 0 && p->cur[s].leader == heavy))
				continue;
			return s;
		}
	}
	return p->shard_count;
}

/* (3) Moves one replica at a time from the most to the least loaded node. */
static void
place_balance_replicas(struct place *p)
{
	for (uint32_t moves = 0; moves < PLACEMENT_MOVES_MAX; moves++) {
		uint32_t hi = p->node_count;
		uint32_t lo = least_loaded(p, p->replica_load, NULL, 0);
		uint32_t s;

		for (uint32_t i = 0; i < p->node_count; i++)
			if ((p->drainers_allowed || !p->nodes[i].draining) &&
			    (hi == p->node_count || p->replica_load[i] > p->replica_load[hi]))
				hi = i;
		if (lo == p->node_count || p->replica_load[hi] <= p->replica_load[lo] + 1)
			return;
		s = swap_candidate(p, p->nodes[hi].id, p->nodes[lo].id);
		if (s == p->shard_count)
			return;
		/* heavy leaves (in sync, after the target), light joins catching up. */
		set_remove(p->out[s].replicas, &p->out[s].replica_count, p->nodes[hi].id);
		p->target_count[s]--;
		p->out[s].replicas[p->out[s].replica_count++] = p->nodes[hi].id;
		target_insert(p, s, p->nodes[lo].id);
		p->replica_load[hi]--;
		p->replica_load[lo]++;
	}
}

/* May `id` lead shard s? primary: an in-sync target replica; else any live in-sync one. */
static bool
may_lead(const struct place *p, uint32_t s, uint32_t id, bool primary)
{
	const struct placement_shard *o = &p->out[s];

	if (id == 0 || !placement_has(o->isr, o->isr_count, id))
		return false;
	if (primary)
		return placement_has(o->replicas, p->target_count[s], id);
	return node_index(p, id) < p->node_count;
}

static bool
has_primary(const struct place *p, uint32_t s)
{
	for (uint32_t i = 0; i < p->target_count[s]; i++)
		if (may_lead(p, s, p->out[s].replicas[i], true))
			return true;
	return false;
}

static void
leader_set(struct place *p, uint32_t s, uint32_t id)
{
	uint32_t i = node_index(p, id);

	p->out[s].leader = id;
	if (i < p->node_count)
		p->leader_load[i]++;
}

/* The candidate with the fewest leaderships (lowest id on ties), 0 for none. */
static uint32_t
leader_pick(const struct place *p, uint32_t s, bool primary)
{
	const struct placement_shard *o = &p->out[s];
	uint32_t best = 0;
	uint32_t best_load = 0;

	for (uint32_t r = 0; r < o->replica_count; r++) {
		uint32_t id = o->replicas[r];
		uint32_t load;

		if (!may_lead(p, s, id, primary))
			continue;
		load = p->leader_load[node_index(p, id)];
		if (best == 0 || load < best_load || (load == best_load && id < best)) {
			best = id;
			best_load = load;
		}
	}
	return best;
}

/* (4) Keeps every leader still allowed to lead, then places the others. */
static void
place_leaders(struct place *p)
{
	for (uint32_t s = 0; s < p->shard_count; s++) {
		uint32_t lead = p->cur[s].leader;

		if (p->stuck[s])
			continue;
		if (may_lead(p, s, lead, true) || (!has_primary(p, s) && may_lead(p, s, lead, false)))
			leader_set(p, s, lead);
	}
	for (uint32_t s = 0; s < p->shard_count; s++) {
		uint32_t lead;

		if (p->stuck[s] || p->out[s].leader != 0)
			continue;
		lead = leader_pick(p, s, true);
		if (lead == 0)
			lead = leader_pick(p, s, false);
		if (lead != 0)
			leader_set(p, s, lead);
	}
}

/* Applies the chain of leader moves ending at node `to` (found by leaders_path). */
static void
path_apply(struct place *p, uint32_t from, uint32_t to, const uint32_t *prev_node,
	   const uint32_t *prev_shard)
{
	for (uint32_t x = to; x != from; x = prev_node[x])
		p->out[prev_shard[x]].leader = p->nodes[x].id;
	p->leader_load[from]--;
	p->leader_load[to]++;
}

/* A breadth-first search for a chain of leader moves from `from` to a node two lighter. */
static bool
leaders_path(struct place *p, uint32_t from)
{
	uint32_t prev_node[CLUSTER_NODES_MAX];
	uint32_t prev_shard[CLUSTER_NODES_MAX];
	uint32_t queue[CLUSTER_NODES_MAX];
	bool seen[CLUSTER_NODES_MAX] = { false };
	uint32_t head = 0;
	uint32_t tail = 0;

	seen[from] = true;
	queue[tail++] = from;
	while (head < tail) {
		uint32_t u = queue[head++];

		for (uint32_t s = 0; s < p->shard_count; s++) {
			if (p->stuck[s] || p->out[s].leader != p->nodes[u].id)
				continue;
			for (uint32_t r = 0; r < p->target_count[s]; r++) {
				uint32_t v = node_index(p, p->out[s].replicas[r]);

				if (v >= p->node_count || seen[v] || !may_lead(p, s, p->nodes[v].id, true))
					continue;
				seen[v] = true;
				prev_node[v] = u;
				prev_shard[v] = s;
				if (p->leader_load[v] + 2 <= p->leader_load[from]) {
					path_apply(p, from, v, prev_node, prev_shard);
					return true;
				}
				queue[tail++] = v;
			}
		}
	}
	return false;
}

/* (5) Until no loaded node can pass a leadership down a chain to a node two lighter. */
static void
place_balance_leaders(struct place *p)
{
	for (uint32_t moves = 0; moves < PLACEMENT_MOVES_MAX; moves++) {
		bool moved = false;

		for (uint32_t i = 0; i < p->node_count && !moved; i++)
			if (p->drainers_allowed || !p->nodes[i].draining)
				moved = leaders_path(p, i);
		if (!moved)
			return;
	}
}

int
placement_compute(const struct placement_node *nodes, uint32_t node_count,
		  uint32_t replication_factor, const struct placement_shard *cur,
		  uint32_t shard_count, struct placement_shard *out)
{
	static _Thread_local struct place p;   /* ~21 KiB of scratch per thread, not on the stack. */
	uint32_t allowed = 0;
	int err;

	err = place_validate(nodes, node_count, replication_factor, cur, shard_count);
	if (err != 0)
		return err;
	memset(&p, 0, sizeof(p));
	p.nodes = nodes;
	p.node_count = node_count;
	p.cur = cur;
	p.out = out;
	p.shard_count = shard_count;
	for (uint32_t i = 0; i < node_count; i++)
		allowed += !nodes[i].draining;
	p.drainers_allowed = allowed == 0;
	if (allowed == 0)
		allowed = node_count;
	p.rf = replication_factor != 0 ? replication_factor : CLUSTER_REPLICATION_FACTOR_DEFAULT;
	if (p.rf > allowed)
		p.rf = allowed;

	for (uint32_t s = 0; s < shard_count; s++)
		place_keep(&p, s);
	for (uint32_t s = 0; s < shard_count; s++)
		if (!p.stuck[s])
			place_add(&p, s);
	for (uint32_t s = 0; s < shard_count; s++)
		if (!p.stuck[s])
			place_settle(&p, s);
	place_balance_replicas(&p);
	place_leaders(&p);
	place_balance_leaders(&p);
	for (uint32_t s = 0; s < shard_count; s++)
		if (out[s].leader != 0 && out[s].leader != cur[s].leader)
			out[s].leader_epoch = cur[s].leader_epoch + 1;
	return 0;
}

/* The live replica an unclean election picks when none is named: in-sync ones first. */
static uint32_t
unclean_pick(const struct placement_shard *cur, const uint32_t *live, uint32_t live_count)
{
	for (uint32_t i = 0; i < cur->isr_count; i++)
		if (placement_has(live, live_count, cur->isr[i]))
			return cur->isr[i];
	for (uint32_t i = 0; i < cur->replica_count; i++)
		if (placement_has(live, live_count, cur->replicas[i]))
			return cur->replicas[i];
	return 0;
}

int
placement_unclean(const struct placement_shard *cur, bool leader_refuses, const uint32_t *live,
		  uint32_t live_count, uint32_t node, struct placement_shard *out)
{
	uint32_t pick = node;

	if (cur->leader != 0 && !leader_refuses)
		return -EEXIST;
	/* A live in-sync replica that is not the refusing leader: the controller elects it. */
	for (uint32_t i = 0; i < cur->isr_count; i++)
		if (cur->isr[i] != cur->leader && placement_has(live, live_count, cur->isr[i]))
			return -EBUSY;
	if (node != 0 && !placement_has(cur->replicas, cur->replica_count, node))
		return -EINVAL;
	if (node == 0)
		pick = unclean_pick(cur, live, live_count);
	if (pick == 0 || !placement_has(live, live_count, pick))
		return -EHOSTDOWN;
	*out = *cur;
	out->leader = pick;
	out->isr[0] = pick;
	out->isr_count = 1;
	out->leader_epoch = cur->leader_epoch + 1;
	return 0;
}
