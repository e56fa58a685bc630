/*
 * membership.c - a node's membership and, when elected, the controller
 * (cluster.h, docs/CLUSTER.md "Membership, election, placement").
 *
 * One thread per node, one etcd client on it. Each pass of its loop:
 *   1. keeps the lease alive every TTL/3 (a lost lease: register again);
 *   2. not controller: campaigns for /sluice/<cluster>/controller until the
 *      next keepalive is due (etcd drops an abandoned candidacy);
 *   3. controller: when nodes, drains, streams or placements changed (a watch
 *      on /sluice/<cluster>/), recomputes placement and writes the shards that
 *      differ, and deletes the placements of streams (or shard indexes) that
 *      no longer exist, in transactions fenced by its election key; a refused
 *      fence means another controller took over: it goes back to campaigning.
 *
 * Keys (values JSON):
 *   nodes/<id>                       {"addr","api_addr","dp_addr"}, under the lease
 *   drains/<id>                      an operator's drain intent, no lease (nodes_etcd.c)
 *   controller/<lease hex>           etcd's election keys; the leader's create_revision = epoch
 *   streams/<stream>                 {"stream_id","shard_count":N,...} (read; stream metadata's)
 *   placement/<stream>/shardId-<n>   placement_etcd.c
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "cluster/cluster_int.h"
#include "common/clock.h"
#include "common/diag.h"

/* Every etcd call but a campaign (whose wait is the keepalive period); a third of the
 * lease TTL when that is shorter (member_timeout_ms). */
#define CLUSTER_ETCD_TIMEOUT_MS 2000u
/* The thread's shortest wait: a failing etcd is retried at this pace, not spun on. */
#define CLUSTER_RETRY_MS 100u
/*
 * A start that finds its node id registered waits this many lease TTLs (plus one retry)
 * for the key to go: a predecessor's lease expires at most one TTL after it died.
 */
#define CLUSTER_REGISTER_WAIT_TTLS 2u
/* Its pace: each try grants a lease and revokes it when the id is still taken. */
#define CLUSTER_REGISTER_RETRY_MS 250u

struct cluster_member {
	char endpoints[ETCD_ENDPOINTS_MAX * 256];
	char cluster[CLUSTER_NAME_SIZE];
	char addr[CLUSTER_ADDR_SIZE];
	char api_addr[CLUSTER_ADDR_SIZE];
	char dp_addr[CLUSTER_ADDR_SIZE];
	uint32_t node_id;
	uint32_t ttl_s;
	uint32_t rf;
	char node_key[CLUSTER_KEY_SIZE];
	char election[CLUSTER_KEY_SIZE];
	char prefix[CLUSTER_KEY_SIZE];         /* /sluice/<cluster>/ */

	struct etcd_client *client;            /* The thread's. */
	struct etcd_watch *watch;              /* While controller. */
	pthread_t thread;
	atomic_bool stop;
	uint64_t keepalive_due_ns;
	bool dirty;                            /* Placement to recompute. */
	uint64_t key_check_due_ns;             /* Controller: its election key is looked at then. */
	uint64_t lease_lost_ns;                /* Its own lease found expired while it ran; 0 never. */
	uint64_t grace_end_ns;                 /* Controller: placing waits for the nodes until then. */

	/* Placement scratch, taken at start. */
	struct placement_node *nodes;
	struct cluster_shard *shards;
	struct placement_shard *cur;
	struct placement_shard *out;
	bool *retag;                           /* shards[i]'s key lacks its stream_id. */
	struct cluster_shard *gone;            /* Placements of streams or shards gone: deleted. */

	pthread_mutex_t lock;                  /* Guards what follows (the thread reads lease unlocked). */
	int64_t lease;                         /* 0: none (lost, joining again). */
	struct cluster_member_status status;
};

static void
lease_set(struct cluster_member *m, int64_t lease)
{
	pthread_mutex_lock(&m->lock);
	m->lease = lease;
	pthread_mutex_unlock(&m->lock);
}

/* The node key under the lease, created if absent (-EEXIST: a live node has the id). */
static int
register_node(struct cluster_member *m)
{
	struct etcd_compare absent = { .key = m->node_key, .target = ETCD_TARGET_VERSION,
				       .result = ETCD_EQUAL, .number = 0 };
	struct etcd_op put = { .kind = ETCD_OP_PUT, .key = m->node_key, .lease = m->lease };
	struct cluster_registration node = { .id = m->node_id };
	bool succeeded = false;
	char *text;
	int err;

	snprintf(node.addr, sizeof(node.addr), "%s", m->addr);
	snprintf(node.api_addr, sizeof(node.api_addr), "%s", m->api_addr);
	snprintf(node.dp_addr, sizeof(node.dp_addr), "%s", m->dp_addr);
	text = cluster_registration_encode(&node);
	if (text == NULL)
		return -ENOMEM;
	put.value = text;
	put.value_size = strlen(text);
	err = etcd_txn(m->client, &absent, 1, &put, 1, NULL, 0, &succeeded, NULL);
	free(text);
	return err == 0 && !succeeded ? -EEXIST : err;
}

/* A new lease and the node key under it. */
static int
join(struct cluster_member *m)
{
	int64_t lease;
	int64_t ttl;
	int err;

	err = etcd_lease_grant(m->client, m->ttl_s, &lease, &ttl);
	if (err != 0)
		return err;
	lease_set(m, lease);
	err = register_node(m);
	if (err != 0) {
		(void)etcd_lease_revoke(m->client, lease);
		lease_set(m, 0);
		return err;
	}
	m->keepalive_due_ns = clock_mono_ns() + (uint64_t)m->ttl_s * 1000000000ull / 3;
	return 0;
}

/*
 * join() at start, waiting while the id is still registered (-EEXIST). A node restarted
 * within its lease's TTL (systemd restarts in seconds, a SIGKILL revokes nothing) finds
 * its predecessor's key, which etcd deletes when that lease expires, at most one TTL
 * later. A live node with the same id keeps its key alive: then the start fails after
 * CLUSTER_REGISTER_WAIT_TTLS TTLs, with -EEXIST.
 */
static int
join_at_start(struct cluster_member *m)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)m->ttl_s * CLUSTER_REGISTER_WAIT_TTLS *
					      1000000000ull;
	int err;

	while ((err = join(m)) == -EEXIST && clock_mono_ns() < deadline) {
		if (m->status.register_waits++ == 0)
			diag_warn("cluster", "node %u is still registered (a previous "
				    "process's lease, or another node with this id): waiting up to "
				    "%u s for it to expire", m->node_id,
				    m->ttl_s * CLUSTER_REGISTER_WAIT_TTLS);
		nanosleep(&(struct timespec){ .tv_nsec = CLUSTER_REGISTER_RETRY_MS * 1000000l },
			  NULL);
	}
	return err;
}

static void
set_controller(struct cluster_member *m, const struct etcd_leader *election)
{
	pthread_mutex_lock(&m->lock);
	m->status.controller = election != NULL;
	if (election != NULL)
		m->status.election = *election;
	pthread_mutex_unlock(&m->lock);
	if (election == NULL && m->watch != NULL) {
		etcd_watch_close(m->watch);
		m->watch = NULL;
	}
}

static bool
is_controller(struct cluster_member *m)
{
	bool c;

	pthread_mutex_lock(&m->lock);
	c = m->status.controller;
	pthread_mutex_unlock(&m->lock);
	return c;
}

static void
note_error(struct cluster_member *m, int err)
{
	pthread_mutex_lock(&m->lock);
	m->status.last_error = err;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The member thread's calls: a third of the TTL at most, so that one timing out on a
 * stopped etcd member and the retry through the next (CLUSTER_RETRY_MS later) still renew
 * the lease within its TTL, whichever call met the stopped member first.
 */
static uint32_t
member_timeout_ms(const struct cluster_member *m)
{
	uint32_t third = m->ttl_s * 1000u / 3u;

	return third < CLUSTER_ETCD_TIMEOUT_MS ? third : CLUSTER_ETCD_TIMEOUT_MS;
}

/* Keepalive when due; a lost lease (expired while we were away) means joining again. */
static int
keep_alive(struct cluster_member *m)
{
	int64_t ttl;
	int err;

	if (m->lease != 0 && clock_mono_ns() < m->keepalive_due_ns)
		return 0;
	err = m->lease != 0 ? etcd_lease_keepalive(m->client, m->lease, &ttl) : -ENOENT;
	if (err == -ENOENT && m->lease != 0)
		m->lease_lost_ns = clock_mono_ns();
	if (err == -ENOENT) {
		/* Our election key went with the lease: whoever leads now is not us. */
		set_controller(m, NULL);
		lease_set(m, 0);
		return join(m);   /* Failing, the loop retries at CLUSTER_RETRY_MS. */
	}
	if (err == 0)
		m->keepalive_due_ns = clock_mono_ns() + (uint64_t)m->ttl_s * 1000000000ull / 3;
	return err;
}

static uint32_t
ms_until_keepalive(const struct cluster_member *m)
{
	uint64_t now = clock_mono_ns();
	uint64_t ms = m->keepalive_due_ns > now ? (m->keepalive_due_ns - now) / 1000000u : 0;

	return ms < CLUSTER_RETRY_MS ? CLUSTER_RETRY_MS : (uint32_t)ms;
}

/*
 * A controller elected within a lease TTL of finding its own lease expired while it
 * ran gives the nodes until TTL after that moment to register again before it
 * places without them. Its lease lapsing while it ran means etcd did not hear it (a
 * stall of etcd longer than the TTL, which expires every lease at once when etcd
 * runs again: etcd 3.4 extends leases on a restart or leader change, not after a
 * stall), so the other nodes' registrations are as likely gone for the same reason
 * as dead. Placing at once put every shard on the first node back, alone in its
 * in-sync set (acknowledged on one copy) and moved every leadership there
 * (test_cluster_etcd). A node that is really dead waits one TTL more to be replaced.
 */
static void
grace_begin(struct cluster_member *m)
{
	uint64_t ttl_ns = (uint64_t)m->ttl_s * 1000000000ull;
	uint64_t now = clock_mono_ns();

	m->grace_end_ns = m->lease_lost_ns != 0 && now - m->lease_lost_ns < ttl_ns ?
			  m->lease_lost_ns + ttl_ns : 0;
	if (m->grace_end_ns != 0)
		diag_info("cluster", "node %u: controller %" PRIu64 " ms after its own lease "
			  "lapsed: placement waits up to %" PRIu64 " ms for the nodes to register "
			  "again", m->node_id, (now - m->lease_lost_ns) / 1000000u,
			  (m->grace_end_ns - now) / 1000000u);
}

/* In the grace, a node holding a replica of a shard read (m->shards) is not registered. */
static bool
grace_waits(struct cluster_member *m, uint32_t node_count, uint32_t count)
{
	if (m->grace_end_ns == 0 || clock_mono_ns() >= m->grace_end_ns)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		const struct placement_shard *p = &m->shards[i].place;

		for (uint32_t r = 0; r < p->replica_count; r++) {
			bool live = false;

			for (uint32_t k = 0; k < node_count && !live; k++)
				live = m->nodes[k].id == p->replicas[r];
			if (!live)
				return true;
		}
	}
	return false;
}

/* How long the controller waits for a change: a deferred placement is tried at the grace's end. */
static uint32_t
control_wait_ms(const struct cluster_member *m)
{
	uint64_t now = clock_mono_ns();
	uint32_t ms = ms_until_keepalive(m);
	uint64_t left;

	if (!m->dirty || m->grace_end_ns <= now)
		return ms;
	left = (m->grace_end_ns - now) / 1000000u;
	left = left < CLUSTER_RETRY_MS ? CLUSTER_RETRY_MS : left;
	return left < ms ? (uint32_t)left : ms;
}

/* Campaigns until the next keepalive; on winning, watches the cluster's keys. */
static int
campaign(struct cluster_member *m)
{
	struct etcd_leader won;
	char value[16];
	int n = snprintf(value, sizeof(value), "%u", m->node_id);
	int err;

	err = etcd_campaign(m->client, m->election, m->lease, value, (size_t)n,
			    ms_until_keepalive(m), &won);
	if (err == -ETIMEDOUT || err == -ECONNRESET) {
		/* Won as the call gave up (or its connection broke)? Then our key leads: adopt it
		 * rather than block everyone. */
		if (etcd_leader(m->client, m->election, &won) != 0 || won.lease != m->lease)
			return 0;
		err = 0;
	}
	if (err != 0)
		return err;
	err = etcd_watch_open(m->endpoints, m->prefix, true, 0, &m->watch);
	if (err != 0)
		return err;   /* Campaign again next pass: the same key wins at once. */
	set_controller(m, &won);
	m->dirty = true;
	grace_begin(m);
	return 0;
}

/* Keys one read could not use: counted (skipped), and last_error says so. */
static void
count_bad(struct cluster_member *m, uint32_t bad)
{
	pthread_mutex_lock(&m->lock);
	m->status.bad_keys += bad;
	if (bad > 0)
		m->status.last_error = -EPROTO;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The nodes/<id> keys of the snapshot into m->nodes, draining when the same
 * snapshot holds drains/<id> (so a node that registers again is draining from
 * the first placement that sees it).
 */
static void
read_nodes(struct cluster_member *m, const struct etcd_range *r, uint32_t *count_out)
{
	uint32_t bad = 0;

	*count_out = 0;
	for (uint32_t i = 0; i < r->count && *count_out < CLUSTER_NODES_MAX; i++) {
		struct cluster_registration node;
		int err = cluster_registration_decode(&r->kvs[i], m->cluster, &node);

		if (err == -ENOENT)
			continue;   /* Not a node key. */
		bad += err != 0;
		/* An unreadable value still names a live node (its lease holds the key). */
		if (err != -EINVAL)
			m->nodes[(*count_out)++] = (struct placement_node){ .id = node.id };
	}
	for (uint32_t i = 0; i < r->count; i++) {
		uint32_t id;
		int err = cluster_drain_decode(&r->kvs[i], m->cluster, &id);

		bad += err == -EINVAL;
		for (uint32_t k = 0; err == 0 && k < *count_out; k++)
			m->nodes[k].draining |= m->nodes[k].id == id;
	}
	count_bad(m, bad);
}

/*
 * One stream key's shard count and stream id (0 when the record has none);
 * false for a value it cannot read.
 */
static bool
stream_read(const struct etcd_kv *kv, uint32_t *shards_out, uint32_t *id_out)
{
	cJSON *o = cJSON_ParseWithLength((const char *)kv->value, kv->value_size);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "shard_count");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "stream_id");
	bool ok = cJSON_IsNumber(n) && n->valuedouble >= 1 &&
		  n->valuedouble <= CLUSTER_SHARDS_MAX &&
		  (id == NULL || (cJSON_IsNumber(id) && id->valuedouble >= 1 &&
				  id->valuedouble <= UINT32_MAX));

	*shards_out = ok ? (uint32_t)n->valuedouble : 0;
	*id_out = ok && id != NULL ? (uint32_t)id->valuedouble : 0;
	cJSON_Delete(o);
	return ok;
}

/* The snapshot's streams/<stream> key; NULL when it has none. */
static const struct etcd_kv *
stream_key(const struct etcd_range *r, const char *prefix, const char *stream)
{
	size_t size = strlen(prefix);

	for (uint32_t i = 0; i < r->count; i++)
		if (strncmp(r->kvs[i].key, prefix, size) == 0 &&
		    strcmp(r->kvs[i].key + size, stream) == 0)
			return &r->kvs[i];
	return NULL;
}

/*
 * A stored placement no shard of the snapshot took: to delete when its stream
 * key is gone (DeleteStream) or its stream has no such shard (an older stream
 * of the name had more). Kept when the stream key exists but cannot be read
 * (its data is not dropped for a bad value either) or the placement's own
 * name cannot be read.
 */
static bool
placement_orphan(const struct etcd_range *r, const char *prefix, const struct cluster_shard *p)
{
	const struct etcd_kv *kv;
	uint32_t shards;
	uint32_t id;

	if (p->stream[0] == '\0')
		return false;
	kv = stream_key(r, prefix, p->stream);
	return kv == NULL || (stream_read(kv, &shards, &id) && p->shard >= shards);
}

/*
 * Shard k of a stream with id `id` from its stored placement (j), into s:
 * the stored state, unless it was placed for another stream of that name
 * (deleted and created again before this controller saw the delete): then
 * the shard is new (no replicas, epoch 0) and only the key's mod_revision is
 * kept, for the compare of the write that replaces it. Its log shard is
 * LOG_SHARD_ID(id, k), which no replica has held: epochs start again at 1.
 */
static void
shard_from(struct cluster_member *m, uint32_t n, const struct cluster_shard *stored, uint32_t id)
{
	struct cluster_shard *s = &m->shards[n];
	bool older = id != 0 && stored->stream_id != 0 && stored->stream_id != id;

	m->retag[n] = !older && id != 0 && stored->stream_id != id;
	if (older) {
		memset(&s->place, 0, sizeof(s->place));
		s->mod_revision = stored->mod_revision;
		return;
	}
	*s = *stored;
	s->stream_id = id != 0 ? id : stored->stream_id;
}

/*
 * Every shard of every stream of the snapshot into m->shards (*count_out), with
 * its stored placement if any; the stored placements of streams or shards
 * that no longer exist into m->gone (*gone_out), to delete.
 */
static int
read_shards(struct cluster_member *m, const struct etcd_range *r, uint32_t *count_out,
	    uint32_t *gone_out)
{
	char prefix[CLUSTER_KEY_SIZE];
	struct cluster_shard *stored;
	uint32_t stored_count;
	bool *taken;
	uint32_t bad = 0;
	int err;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/streams/", m->cluster);
	err = cluster_placements_from(r, m->cluster, &stored, &stored_count);
	if (err != 0)
		return err;
	taken = calloc(stored_count + 1, sizeof(*taken));
	if (taken == NULL) {
		free(stored);
		return -ENOMEM;
	}
	*count_out = 0;
	for (uint32_t i = 0; i < r->count; i++) {
		const char *stream = r->kvs[i].key + strlen(prefix);
		uint32_t shards;
		uint32_t id;

		if (strncmp(r->kvs[i].key, prefix, strlen(prefix)) != 0)
			continue;
		if (strlen(stream) >= CLUSTER_STREAM_NAME_SIZE ||
		    !stream_read(&r->kvs[i], &shards, &id)) {
			bad++;
			continue;
		}
		for (uint32_t k = 0; k < shards && *count_out < CLUSTER_SHARDS_MAX; k++) {
			struct cluster_shard *s = &m->shards[*count_out];
			bool malformed = false;

			memset(s, 0, sizeof(*s));
			snprintf(s->stream, sizeof(s->stream), "%s", stream);
			s->shard = k;
			s->stream_id = id;
			m->retag[*count_out] = false;
			for (uint32_t j = 0; j < stored_count; j++) {
				if (stored[j].shard != k || strcmp(stored[j].stream, stream) != 0)
					continue;
				taken[j] = true;
				malformed = stored[j].malformed;
				shard_from(m, *count_out, &stored[j], id);
			}
			/* An unreadable placement may describe data: left alone, not re-placed. */
			*count_out += !malformed;
		}
	}
	*gone_out = 0;
	for (uint32_t j = 0; j < stored_count; j++) {
		bad += stored[j].malformed;
		if (!taken[j] && *gone_out < CLUSTER_SHARDS_MAX &&
		    placement_orphan(r, prefix, &stored[j])) {
			m->gone[*gone_out] = stored[j];
			m->gone[(*gone_out)++].remove = true;
		}
	}
	count_bad(m, bad);
	free(taken);
	free(stored);
	return 0;
}

/* shards[] in fenced transactions of ETCD_TXN_OPS_MAX - 1 keys at most; *done_out counts them. */
static int
write_batches(struct cluster_member *m, const struct etcd_leader *fence,
	      const struct cluster_shard *shards, uint32_t count, uint64_t *done_out)
{
	int err = 0;

	for (uint32_t off = 0; off < count && err == 0; off += ETCD_TXN_OPS_MAX - 1) {
		uint32_t n = count - off;

		n = n < ETCD_TXN_OPS_MAX - 1 ? n : ETCD_TXN_OPS_MAX - 1;
		err = cluster_placement_write(m->client, m->cluster, fence, shards + off, n);
		*done_out += err == 0 ? n : 0;
	}
	return err;
}

/*
 * Writes the shards whose placement (or stream id) changed, then deletes the
 * placements in m->gone. Deleting a stream's placement as soon as its key is
 * gone is safe for the nodes: a node whose cache still holds the stream finds
 * no placement, leads nothing of it (replica_unlead) and refuses its puts,
 * as it does once its cache dropped the stream and the placement names none.
 */
static int
write_changes(struct cluster_member *m, uint32_t count, uint32_t gone,
	      const struct etcd_leader *fence)
{
	uint32_t changed = 0;
	uint64_t written = 0;
	uint64_t removed = 0;
	int err;

	for (uint32_t i = 0; i < count; i++) {
		if (m->retag[i] || memcmp(&m->cur[i], &m->out[i], sizeof(m->out[i])) != 0) {
			m->shards[changed] = m->shards[i];
			m->shards[changed++].place = m->out[i];
		}
	}
	err = write_batches(m, fence, m->shards, changed, &written);
	if (err == 0)
		err = write_batches(m, fence, m->gone, gone, &removed);
	pthread_mutex_lock(&m->lock);
	m->status.placements_written += written;
	m->status.placements_removed += removed;
	m->status.placement_refused += err == -ESTALE;
	pthread_mutex_unlock(&m->lock);
	return err;
}

/*
 * Reads nodes, streams and placements in ONE range (one revision: a stream
 * is never placed on a node set older than the stream), computes, writes
 * what differs.
 */
static int
place(struct cluster_member *m)
{
	struct etcd_leader fence;
	struct etcd_range r;
	uint32_t node_count;
	uint32_t count;
	uint32_t gone;
	int err;

	pthread_mutex_lock(&m->lock);
	fence = m->status.election;
	pthread_mutex_unlock(&m->lock);
	err = etcd_get(m->client, m->prefix, true, 0, &r);
	if (err != 0)
		return err;
	read_nodes(m, &r, &node_count);
	err = read_shards(m, &r, &count, &gone);
	etcd_range_free(&r);
	if (err != 0)
		return err;
	if (grace_waits(m, node_count, count)) {
		pthread_mutex_lock(&m->lock);
		m->status.placement_deferred++;
		pthread_mutex_unlock(&m->lock);
		return -EAGAIN;   /* Again on the next registration, or at the grace's end. */
	}
	for (uint32_t i = 0; i < count; i++)
		m->cur[i] = m->shards[i].place;
	err = placement_compute(m->nodes, node_count, m->rf, m->cur, count, m->out);
	if (err != 0)
		return err;
	return write_changes(m, count, gone, &fence);
}

/*
 * Whether the controller's election key still leads, asked once per keepalive
 * period. A campaign that gives up just as its key comes to lead is adopted
 * (campaign()), but etcd's campaign, cancelled by the dropped call, resigns: the key
 * is deleted after the adoption and another member wins. Nothing else told this one
 * until a placement write was refused, and with nothing to change it never wrote:
 * two members reported themselves controller (seen after an etcd stall).
 */
static bool
key_leads(struct cluster_member *m)
{
	struct etcd_leader now;
	uint64_t t = clock_mono_ns();
	int err;

	if (t < m->key_check_due_ns)
		return true;
	err = etcd_leader(m->client, m->election, &now);
	if (err != 0 && err != -ENOENT)
		return true;   /* etcd away: asked again next pass. */
	m->key_check_due_ns = t + (uint64_t)m->ttl_s * 1000000000ull / 3;
	return err == 0 && strcmp(now.key, m->status.election.key) == 0;
}

/* Controller pass: place when something changed, then wait for changes. */
static int
control(struct cluster_member *m)
{
	const struct etcd_event *events;
	struct etcd_leader now;
	int n;

	if (!key_leads(m)) {
		diag_warn("cluster", "node %u: its controller key %s no longer leads: "
			  "campaigning again", m->node_id, m->status.election.key);
		set_controller(m, NULL);
		return 0;
	}
	if (m->dirty) {
		int err = place(m);

		if (err == 0)
			m->dirty = false;
		if (err == -ESTALE && (etcd_leader(m->client, m->election, &now) != 0 ||
				       strcmp(now.key, m->status.election.key) != 0)) {
			set_controller(m, NULL);   /* Deposed: the fence held. */
			return -ESTALE;
		}
		if (err != 0 && err != -ESTALE && err != -EAGAIN)
			return err;
	}
	n = etcd_watch_next(m->watch, control_wait_ms(m), &events);
	if (n < 0) {
		/* Compacted or ended: reopen from now and recompute from a fresh read. */
		etcd_watch_close(m->watch);
		m->watch = NULL;
		m->dirty = true;
		return etcd_watch_open(m->endpoints, m->prefix, true, 0, &m->watch);
	}
	if (n > 0)
		m->dirty = true;
	return 0;
}

static void *
member_main(void *arg)
{
	struct cluster_member *m = arg;

	pthread_setname_np(pthread_self(), "sluice-member");
	while (!atomic_load(&m->stop)) {
		int err = keep_alive(m);

		if (err == 0 && m->lease != 0)
			err = is_controller(m) && m->watch != NULL ? control(m) : campaign(m);
		if (err != 0) {
			note_error(m, err);
			nanosleep(&(struct timespec){ .tv_nsec = CLUSTER_RETRY_MS * 1000000l }, NULL);
		}
	}
	return NULL;
}

static int
config_copy(struct cluster_member *m, const struct cluster_config *c)
{
	if (c->etcd_endpoints == NULL || c->cluster == NULL || c->cluster[0] == '\0' ||
	    strchr(c->cluster, '/') != NULL || c->node_id == 0 || c->addr == NULL ||
	    c->api_addr == NULL || c->dp_addr == NULL ||
	    c->replication_factor > CLUSTER_REPLICATION_FACTOR_MAX ||
	    (c->lease_ttl_s != 0 && (c->lease_ttl_s < CLUSTER_LEASE_TTL_S_MIN ||
				     c->lease_ttl_s > CLUSTER_LEASE_TTL_S_MAX)))
		return -EINVAL;
	if (snprintf(m->endpoints, sizeof(m->endpoints), "%s", c->etcd_endpoints) >=
		    (int)sizeof(m->endpoints) ||
	    snprintf(m->cluster, sizeof(m->cluster), "%s", c->cluster) >= (int)sizeof(m->cluster) ||
	    snprintf(m->addr, sizeof(m->addr), "%s", c->addr) >= (int)sizeof(m->addr) ||
	    snprintf(m->api_addr, sizeof(m->api_addr), "%s", c->api_addr) >= (int)sizeof(m->api_addr) ||
	    snprintf(m->dp_addr, sizeof(m->dp_addr), "%s", c->dp_addr) >= (int)sizeof(m->dp_addr))
		return -EINVAL;
	m->node_id = c->node_id;
	m->ttl_s = c->lease_ttl_s != 0 ? c->lease_ttl_s : CLUSTER_LEASE_TTL_S_DEFAULT;
	m->rf = c->replication_factor;
	snprintf(m->prefix, sizeof(m->prefix), "/sluice/%s/", m->cluster);
	snprintf(m->node_key, sizeof(m->node_key), "/sluice/%s/nodes/%u", m->cluster, m->node_id);
	snprintf(m->election, sizeof(m->election), "/sluice/%s/controller", m->cluster);
	return 0;
}

static void
member_free(struct cluster_member *m)
{
	if (m->watch != NULL)
		etcd_watch_close(m->watch);
	etcd_close(m->client);
	free(m->nodes);
	free(m->shards);
	free(m->cur);
	free(m->out);
	free(m->retag);
	free(m->gone);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int
cluster_member_start(const struct cluster_config *config, struct cluster_member **member_out)
{
	struct cluster_member *m = calloc(1, sizeof(*m));
	int err;

	if (m == NULL)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	err = config_copy(m, config);
	if (err != 0)
		goto out_free;
	m->nodes = calloc(CLUSTER_NODES_MAX, sizeof(*m->nodes));
	m->shards = calloc(CLUSTER_SHARDS_MAX, sizeof(*m->shards));
	m->cur = calloc(CLUSTER_SHARDS_MAX, sizeof(*m->cur));
	m->out = calloc(CLUSTER_SHARDS_MAX, sizeof(*m->out));
	m->retag = calloc(CLUSTER_SHARDS_MAX, sizeof(*m->retag));
	m->gone = calloc(CLUSTER_SHARDS_MAX, sizeof(*m->gone));
	err = -ENOMEM;
	if (m->nodes == NULL || m->shards == NULL || m->cur == NULL || m->out == NULL ||
	    m->retag == NULL || m->gone == NULL)
		goto out_free;
	err = etcd_open(m->endpoints, member_timeout_ms(m), &m->client);
	if (err != 0)
		goto out_free;
	err = join_at_start(m);
	if (err != 0)
		goto out_free;
	err = -pthread_create(&m->thread, NULL, member_main, m);
	if (err != 0)
		goto out_lease;
	*member_out = m;
	return 0;

out_lease:
	(void)etcd_lease_revoke(m->client, m->lease);
out_free:
	member_free(m);
	return err;
}

void
cluster_member_abandon(struct cluster_member *m)
{
	atomic_store(&m->stop, true);
	pthread_join(m->thread, NULL);
	member_free(m);
}

void
cluster_member_stop(struct cluster_member *m)
{
	atomic_store(&m->stop, true);
	pthread_join(m->thread, NULL);
	if (m->status.controller)
		(void)etcd_resign(m->client, &m->status.election);
	if (m->lease != 0)
		(void)etcd_lease_revoke(m->client, m->lease);
	member_free(m);
}

int
cluster_member_drain(struct cluster_member *m, bool draining)
{
	struct etcd_client *client;
	int err;

	/* Its own client: the member's belongs to its thread. */
	err = etcd_open(m->endpoints, CLUSTER_ETCD_TIMEOUT_MS, &client);
	if (err != 0)
		return err;
	err = cluster_registration_drain(client, m->cluster, m->node_id, draining);
	etcd_close(client);
	return err;
}

void
cluster_member_status(struct cluster_member *m, struct cluster_member_status *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->status;
	pthread_mutex_unlock(&m->lock);
	out->etcd_endpoint = etcd_current_endpoint(m->client);   /* Atomic: any thread. */
}
