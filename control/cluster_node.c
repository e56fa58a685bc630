/*
 * cluster_node.c - sluiced as one node of a cluster (cluster_node.h,
 * docs/CLUSTER.md "sluiced in cluster mode").
 *
 * The watcher thread turns the placement in etcd into this node's roles:
 *
 *   placement/<stream>/shardId-N  --(stream id from the local metadata)-->  log shard
 *   LOG_SHARD_ID(stream id, N), the same id on every node (the stream id and
 *   incarnation come from etcd's streams/<stream>, cmeta), so a follower's log
 *   shard is the leader's.
 *
 *   leader == this node -> replica_lead_isr(log shard, epoch, the other replicas'
 *                          replica addresses from nodes/<id>, the in-sync ones);
 *                          refused for records the log must hold first (-ENODATA)
 *                       -> role_resign: leader 0, this node out of isr (one CAS);
 *                          the only in-sync replica: "refused_epoch" marked instead
 *   leader == this node in an operator's unclean election (unclean_epoch == epoch)
 *                       -> replica_lead_unclean: begins below what the log lacks
 *   led here before, not now (another leader or a newer epoch elsewhere)
 *                       -> replica_unlead: acknowledges nothing from then on
 *
 * A follower needs no setting: its listener takes any leader's LEAD, and the
 * epoch promise refuses the old ones. A replica whose node key is gone (lease
 * expired: the node is down) keeps its last known address, so `acks = all`
 * keeps counting it instead of acknowledging on fewer copies.
 *
 * Locking: `lock` guards the role table and the status the admin thread reads;
 * the watcher builds a new table without it and swaps it in.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cjson/cJSON.h>

#include "cluster/cluster.h"
#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "common/limits.h"
#include "control/cluster_node.h"
#include "control/metadata.h"
#include "replica/replica.h"

/* A placement is read again at least this often (a stream created locally after its key). */
#define CLUSTER_NODE_REFRESH_MS 1000u
/* etcd unreachable: the watcher tries again after this. */
#define CLUSTER_NODE_RETRY_MS 100u
/* Every etcd call of the watcher is bounded by this. */
#define CLUSTER_NODE_ETCD_TIMEOUT_MS 5000u
/*
 * A leader looks at its followers every CLUSTER_ISR_CHECK_MS; a longer gap between two
 * looks (the watcher blocked on a stalled etcd, or waiting for its own in-sync write to
 * come back) is time it did not watch: not counted as lag (isr_clock_skip).
 */
#define CLUSTER_NODE_ISR_GAP_MS (4u * CLUSTER_ISR_CHECK_MS)

/* One shard with this node in its replica set: what GET /cluster shows. */
struct node_role {
	char stream[CLUSTER_STREAM_NAME_SIZE];
	uint32_t shard;
	uint64_t log_id;
	struct placement_shard place;
	struct replica_peer followers[REPLICA_FOLLOWERS_MAX];  /* When led. */
	uint32_t follower_ids[REPLICA_FOLLOWERS_MAX];
	uint32_t follower_count;
	int64_t mod_revision;      /* The placement key's: the in-sync update's CAS. */
	bool led;                  /* Leader here, replica_lead_isr accepted. */
	/* Per follower, while led: the in-sync clock (isr_check). */
	uint64_t mark_end[REPLICA_FOLLOWERS_MAX];  /* The leader's end when last looked ... */
	uint64_t mark_ns[REPLICA_FOLLOWERS_MAX];   /* ... and when. */
	uint64_t caught_ns[REPLICA_FOLLOWERS_MAX]; /* The follower last reached a mark then. */
	uint64_t looked_ns;        /* The last isr_check that looked at the followers. */
	int64_t refused_epoch;     /* The log refused to lead it in this epoch (role_resign). */
	bool unclean;              /* Placed by an operator's unclean election in this epoch. */
};

/* The last replica address (and API address: forwarding) a node id registered. */
struct node_addr {
	uint32_t id;
	struct replica_peer peer;
	char api[CLUSTER_ADDR_SIZE];
	uint32_t dp_ipv4;          /* Its dataplane (dp_addr "a.b.c.d:port"), host order; */
	uint16_t dp_port;          /* 0: none, or not an IPv4 address (no redirect to it). */
};

/*
 * Any placed shard's leader and replicas, for forwarding puts (cluster_node_leader_api)
 * and reads (cluster_node_read_api). leader 0: none.
 */
struct node_leader {
	uint64_t log_id;
	struct placement_shard place;
};

/* A stream of the local metadata: name -> stream id. */
struct node_stream {
	char name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	uint32_t stream_id;
};

struct cluster_node {
	char name[CONFIG_STRING_SIZE];  /* config_validate: < CLUSTER_NAME_SIZE bytes. */
	uint32_t node_id;
	char replica_listen[CONFIG_STRING_SIZE];
	char etcd_endpoints[4 * CONFIG_STRING_SIZE];
	enum replica_acks acks;
	char acks_text[CONFIG_STRING_SIZE];
	uint32_t replication_factor;
	struct log *log;
	struct metadata *md;            /* The watcher's reader. */
	struct replica_follower *follower;
	struct replica_leader *leader;
	struct cluster_member *member;
	struct etcd_client *etcd;
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	/* Written by the watcher under lock (the admin reads them under it). */
	struct node_addr addrs[CLUSTER_NODES_MAX];
	uint32_t addr_count;
	/* Watcher-private. */
	struct node_stream *streams;    /* SLUICE_STREAMS_MAX */
	uint32_t stream_count;
	struct node_role *next;         /* CLUSTER_SHARDS_MAX: the table being built. */
	struct node_leader *leaders_next;  /* CLUSTER_SHARDS_MAX: the same, for every shard. */
	/* Under lock. */
	pthread_mutex_t lock;
	struct node_role *roles;        /* CLUSTER_SHARDS_MAX */
	uint32_t role_count;
	struct node_leader *leaders;    /* CLUSTER_SHARDS_MAX: every placed shard's leader. */
	uint32_t leader_count;
	int64_t placement_revision;     /* The largest mod_revision of the placement read. */
	bool draining;                  /* drains/<node_id> exists (an operator's intent). */
	int last_error;
	uint64_t refreshes;
	_Atomic uint64_t watch_opens;   /* The watcher's etcd watches opened (metrics). */
	_Atomic uint64_t lead_refusals; /* Epochs placed here the log refused to lead (metrics). */
	_Atomic uint64_t resigns;       /* ... after which this node left the in-sync set. */
	_Atomic uint64_t unclean_leads; /* Epochs of unclean elections led here (metrics). */
};

/* ---- Reading etcd and the metadata ----------------------------------------- */

/* "1.2.3.4:5" -> peer. */
static int
peer_parse(const char *text, struct replica_peer *peer)
{
	const char *colon = strrchr(text, ':');
	char *end;
	unsigned long port;

	if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(peer->host))
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > UINT16_MAX)
		return -EINVAL;
	memset(peer, 0, sizeof(*peer));
	memcpy(peer->host, text, (size_t)(colon - text));
	peer->port = (uint16_t)port;
	return 0;
}

/* "a.b.c.d:port" -> IPv4 and port in host order; *port_out 0 when it is not that. */
static void
dp_addr_parse(const char *text, uint32_t *ipv4_out, uint16_t *port_out)
{
	struct replica_peer p;
	struct in_addr ip;

	*ipv4_out = 0;
	*port_out = 0;
	if (peer_parse(text, &p) != 0 || inet_pton(AF_INET, p.host, &ip) != 1)
		return;
	*ipv4_out = ntohl(ip.s_addr);
	*port_out = p.port;
}

static void
addr_remember(struct cluster_node *n, uint32_t id, const struct replica_peer *peer,
	      const char *api, const char *dp)
{
	uint32_t i;

	for (i = 0; i < n->addr_count && n->addrs[i].id != id; i++)
		;
	if (i == n->addr_count) {
		if (n->addr_count == CLUSTER_NODES_MAX)
			return;  /* More node ids than a cluster holds: the newest are not kept. */
		n->addr_count++;
	}
	n->addrs[i] = (struct node_addr){ .id = id, .peer = *peer };
	snprintf(n->addrs[i].api, sizeof(n->addrs[i].api), "%s", api);
	dp_addr_parse(dp, &n->addrs[i].dp_ipv4, &n->addrs[i].dp_port);
}

static const struct replica_peer *
addr_of(const struct cluster_node *n, uint32_t id)
{
	for (uint32_t i = 0; i < n->addr_count; i++) {
		if (n->addrs[i].id == id)
			return &n->addrs[i].peer;
	}
	return NULL;
}

/* nodes/<id> -> the replica addresses ("addr"); unreadable keys are skipped. */
static int
read_addrs(struct cluster_node *n)
{
	char prefix[CONFIG_STRING_SIZE + 16];
	struct etcd_range r;
	int err;

	snprintf(prefix, sizeof(prefix), "/sluice/%s/nodes/", n->name);
	err = etcd_get(n->etcd, prefix, true, 0, &r);
	if (err != 0)
		return err;
	for (uint32_t i = 0; i < r.count; i++) {
		char *end;
		unsigned long id = strtoul(r.kvs[i].key + strlen(prefix), &end, 10);
		cJSON *o = cJSON_ParseWithLength((const char *)r.kvs[i].value,
						 r.kvs[i].value_size);
		const cJSON *addr = cJSON_GetObjectItemCaseSensitive(o, "addr");
		const cJSON *api = cJSON_GetObjectItemCaseSensitive(o, "api_addr");
		const cJSON *dp = cJSON_GetObjectItemCaseSensitive(o, "dp_addr");
		struct replica_peer peer;

		if (*end == '\0' && id > 0 && id <= CLUSTER_NODE_ID_MAX && cJSON_IsString(addr) &&
		    peer_parse(addr->valuestring, &peer) == 0) {
			pthread_mutex_lock(&n->lock);  /* The admin thread names links by it. */
			addr_remember(n, (uint32_t)id, &peer,
				      cJSON_IsString(api) ? api->valuestring : "",
				      cJSON_IsString(dp) ? dp->valuestring : "");
			pthread_mutex_unlock(&n->lock);
		}
		cJSON_Delete(o);
	}
	etcd_range_free(&r);
	return 0;
}

static int
stream_seen(void *arg, const struct metadata_stream *stream)
{
	struct cluster_node *n = arg;
	struct node_stream *s;

	if (stream->deleting || n->stream_count == SLUICE_STREAMS_MAX)
		return 0;
	s = &n->streams[n->stream_count++];
	snprintf(s->name, sizeof(s->name), "%s", stream->name);
	s->stream_id = stream->stream_id;
	return 0;
}

static int
shard_skip(void *arg, uint32_t stream_id, const struct metadata_shard *shard)
{
	(void)arg;
	(void)stream_id;
	(void)shard;
	return 0;
}

static bool
stream_id_of(const struct cluster_node *n, const char *name, uint32_t *id_out)
{
	for (uint32_t i = 0; i < n->stream_count; i++) {
		if (strcmp(n->streams[i].name, name) == 0) {
			*id_out = n->streams[i].stream_id;
			return true;
		}
	}
	return false;
}

/* ---- Roles ----------------------------------------------------------------- */

/* The shard's other replicas as peers; -ENOENT when one never registered an address. */
static int
followers_of(const struct cluster_node *n, const struct placement_shard *p,
	     struct replica_peer *peers, uint32_t *ids, uint32_t *count_out)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < p->replica_count; i++) {
		const struct replica_peer *peer;

		if (p->replicas[i] == n->node_id)
			continue;
		peer = addr_of(n, p->replicas[i]);
		if (peer == NULL)
			return -ENOENT;
		if (count == REPLICA_FOLLOWERS_MAX)
			return -E2BIG;
		ids[count] = p->replicas[i];
		peers[count++] = *peer;
	}
	*count_out = count;
	return 0;
}

static const struct node_role *
role_find(const struct node_role *roles, uint32_t count, uint64_t log_id)
{
	for (uint32_t i = 0; i < count; i++) {
		if (roles[i].log_id == log_id)
			return &roles[i];
	}
	return NULL;
}

/* ---- The in-sync set (docs/CLUSTER.md, "The in-sync set") ---------------------- */

/* The placement's in-sync followers (the leader itself is implied); returns how many. */
static uint32_t
isr_peers(const struct node_role *r, struct replica_peer *in_sync)
{
	uint32_t count = 0;

	for (uint32_t f = 0; f < r->follower_count; f++) {
		if (placement_has(r->place.isr, r->place.isr_count, r->follower_ids[f]))
			in_sync[count++] = r->followers[f];
	}
	return count;
}

/* The placement's in-sync followers -> the leader's acks. */
static int
isr_apply(struct cluster_node *n, const struct node_role *r)
{
	struct replica_peer in_sync[REPLICA_FOLLOWERS_MAX];
	uint32_t count = isr_peers(r, in_sync);

	return replica_in_sync_set(n->leader, r->log_id, in_sync, count);
}

/* The placement's in-sync set with follower f added (join) or removed; written by CAS. */
static int
isr_change(struct cluster_node *n, struct node_role *r, uint32_t f, bool join)
{
	uint32_t isr[CLUSTER_REPLICA_SET_MAX];
	uint32_t count = 0;
	uint32_t id = r->follower_ids[f];
	int err;

	for (uint32_t i = 0; i < r->place.isr_count; i++) {
		if (r->place.isr[i] != id)
			isr[count++] = r->place.isr[i];
	}
	if (join && count < CLUSTER_REPLICA_SET_MAX)
		isr[count++] = id;
	err = cluster_placement_isr_write(n->etcd, n->name, r->stream, r->shard, r->mod_revision,
					  isr, count);
	diag_info("cluster", "%s/%u: node %u %s the in-sync set: %s", r->stream, r->shard, id,
		  join ? "joins" : "leaves", err == 0 ? "written" : strerror(-err));
	if (err == 0) {
		pthread_mutex_lock(&n->lock);  /* The admin prints the isr. */
		memcpy(r->place.isr, isr, sizeof(isr[0]) * count);
		r->place.isr_count = count;
		pthread_mutex_unlock(&n->lock);
		r->mod_revision = 0;  /* Unknown until the watch brings the new key: no more CAS. */
	}
	return err;
}

/*
 * One look at a led shard's followers. A follower is caught up at the mark
 * time when its acknowledged end reached the leader's end of then (under load
 * the end moves on, so "equal to the end now" would rarely hold). Joining:
 * counted by the acks first, then written (never named in sync before it
 * holds what the acks count); leaving: written first, then no longer counted
 * (never dropped from the acks while etcd may still elect it).
 */
/*
 * Moves a led shard's follower clocks past a gap in the leader's looking longer than
 * CLUSTER_NODE_ISR_GAP_MS: lag is what the leader saw. Without it a stall of etcd
 * longer than CLUSTER_ISR_LAG_MS (the watcher's calls wait for it) had every leader
 * take every follower out of the in-sync set once etcd answered, though they had kept
 * up: acknowledgements on one copy until they joined again.
 */
static void
isr_clock_skip(struct node_role *r, uint64_t now)
{
	uint64_t gap = r->looked_ns != 0 && now > r->looked_ns ? now - r->looked_ns : 0;

	if (gap > CLUSTER_NODE_ISR_GAP_MS * 1000000ull) {
		for (uint32_t f = 0; f < r->follower_count; f++) {
			r->mark_ns[f] += gap;
			r->caught_ns[f] += gap;
		}
	}
	r->looked_ns = now;
}

static void
isr_check(struct cluster_node *n, struct node_role *r, uint64_t now)
{
	struct log_shard_info info = { 0 };

	if (r->mod_revision == 0)
		return;  /* Not looking: its own in-sync write is on its way back. */
	isr_clock_skip(r, now);
	log_shard_info(n->log, r->log_id, &info);
	for (uint32_t f = 0; f < r->follower_count && r->mod_revision != 0; f++) {
		bool in_sync = placement_has(r->place.isr, r->place.isr_count, r->follower_ids[f]);
		uint64_t acked = 0;
		int32_t link = -1;

		for (uint32_t k = 0; k < replica_leader_link_count(n->leader) && link < 0; k++) {
			struct replica_link_stats st;

			if (replica_leader_link_stats(n->leader, k, &st) == 0 &&
			    st.peer.port == r->followers[f].port &&
			    strcmp(st.peer.host, r->followers[f].host) == 0)
				link = (int32_t)k;
		}
		if (link < 0 ||
		    replica_leader_link_acked(n->leader, (uint32_t)link, r->log_id, &acked) != 0)
			continue;
		if (acked >= r->mark_end[f]) {
			r->caught_ns[f] = r->mark_ns[f];
			r->mark_end[f] = info.seq_local;
			r->mark_ns[f] = now;
		}
		if (!in_sync && acked >= info.seq_local) {
			struct node_role joined = *r;

			joined.place.isr[joined.place.isr_count++] = r->follower_ids[f];
			if (isr_apply(n, &joined) == 0 && isr_change(n, r, f, true) != 0)
				isr_apply(n, r);  /* Not written: back to the stored set. */
		} else if (in_sync && now - r->caught_ns[f] > CLUSTER_ISR_LAG_MS * 1000000ull &&
			   isr_change(n, r, f, false) == 0) {
			isr_apply(n, r);
		}
	}
}

static void
isr_check_all(struct cluster_node *n)
{
	uint64_t now = clock_mono_ns();

	/* The watcher is the only writer of the roles: reading them needs no lock. */
	for (uint32_t i = 0; i < n->role_count; i++) {
		if (n->roles[i].led)
			isr_check(n, &n->roles[i], now);
	}
}

/*
 * Placed as leader, refused by the log (-ENODATA: the kept range of a cut inside a
 * batch is not held again yet, docs/CLUSTER.md "The in-sync set"): the node leaves
 * the in-sync set and the leadership (one CAS on the placement key, as the leader's
 * in-sync updates), so the controller elects another in-sync replica, which ships it
 * the records; it joins the set again once caught up, as any follower. The only
 * in-sync replica stays (-EBUSY): the shard waits unled rather than lose what only
 * this node holds. Tried again at every refresh while placed so; logged once an epoch.
 */
static void
role_resign(struct cluster_node *n, struct node_role *r, const struct node_role *old)
{
	bool noted = old != NULL && old->refused_epoch == r->place.leader_epoch;
	int err = cluster_placement_resign(n->etcd, n->name, r->stream, r->shard, r->mod_revision,
					   n->node_id);

	r->refused_epoch = r->place.leader_epoch;
	/*
	 * The only in-sync replica says so (once: marked already, nothing is written), so
	 * an operator's unclean election may replace it; a lost CAS is redone at the next
	 * refresh, as the step-down is.
	 */
	if (err == -EBUSY)
		cluster_placement_refused(n->etcd, n->name, r->stream, r->shard, r->mod_revision,
					  n->node_id);
	/* The step-down first: a refusal counted has its outcome counted (tests wait on it). */
	if (err == 0)
		atomic_fetch_add(&n->resigns, 1);
	if (!noted)
		atomic_fetch_add(&n->lead_refusals, 1);
	if (err == 0) {
		diag_warn("cluster", "%s/%u: placed as leader in epoch %" PRId64 " without the "
			  "records below a cut: left the in-sync set for another in-sync replica "
			  "to lead", r->stream, r->shard, r->place.leader_epoch);
	} else if (!noted) {
		diag_warn("cluster", "%s/%u: placed as leader in epoch %" PRId64 " without the "
			  "records below a cut; %s", r->stream, r->shard, r->place.leader_epoch,
			  err == -EBUSY ? "the only in-sync replica: stays, the shard unled until "
			  "an operator's unclean election (sluice cluster elect --unclean)" :
			  strerror(-err));
	}
}

/*
 * Begins an unclean election's epoch (docs/CLUSTER.md "Unclean election"): at the
 * log's end, below records it may lack (the kept range of a cut, or whatever the
 * missing in-sync replicas held), which are lost. Loud: once per epoch, counted.
 */
static int
role_lead_unclean(struct cluster_node *n, struct node_role *r, const struct replica_peer *in_sync,
		  uint32_t count)
{
	struct log_shard_info info = { 0 };
	struct log_epoch_info ei = { 0 };
	int err;

	log_shard_info(n->log, r->log_id, &info);
	log_epoch_info(n->log, r->log_id, &ei);
	err = replica_lead_unclean(n->leader, r->log_id, (uint64_t)r->place.leader_epoch);
	if (err == 0)
		err = replica_lead_isr(n->leader, r->log_id, (uint64_t)r->place.leader_epoch,
				       r->followers, r->follower_count, in_sync, count);
	if (err != 0 || ei.epoch_last == (uint64_t)r->place.leader_epoch)
		return err;  /* Failed, or begun before (a restart): nothing new to say. */
	atomic_fetch_add(&n->unclean_leads, 1);
	diag_warn("cluster", "%s/%u: UNCLEAN ELECTION: leading in epoch %" PRId64 " from this "
		  "log's end %" PRIu64 "; acknowledged records that only the missing in-sync "
		  "replicas held are lost (their numbers go to this epoch's records)",
		  r->stream, r->shard, r->place.leader_epoch, info.seq_local);
	if (ei.kept_end > info.seq_local)
		diag_warn("cluster", "%s/%u: records %" PRIu64 "..%" PRIu64 " its last cut kept "
			  "(never held again) are given up", r->stream, r->shard, info.seq_local,
			  ei.kept_end - 1);
	return 0;
}

/*
 * Leads one shard placed on this node; 0 or the reason it is not led (kept in
 * last_error). Asks the leader only when the epoch or the replica set changed:
 * replica_lead_isr makes the epoch durable and waits for the log.
 */
static int
role_lead(struct cluster_node *n, struct node_role *r)
{
	const struct node_role *old = role_find(n->roles, n->role_count, r->log_id);
	int err = followers_of(n, &r->place, r->followers, r->follower_ids, &r->follower_count);
	uint64_t now = clock_mono_ns();

	for (uint32_t f = 0; f < r->follower_count; f++)
		r->caught_ns[f] = r->mark_ns[f] = now;  /* A new follower starts its clock now. */
	r->looked_ns = now;
	if (err == 0 && old != NULL && old->led &&
	    old->place.leader_epoch == r->place.leader_epoch &&
	    old->follower_count == r->follower_count &&
	    memcmp(old->followers, r->followers, sizeof(r->followers[0]) * r->follower_count) == 0) {
		memcpy(r->mark_end, old->mark_end, sizeof(r->mark_end));
		memcpy(r->mark_ns, old->mark_ns, sizeof(r->mark_ns));
		memcpy(r->caught_ns, old->caught_ns, sizeof(r->caught_ns));
		r->looked_ns = old->looked_ns;
		r->led = true;
		return isr_apply(n, r);
	}
	if (err == 0) {
		struct replica_peer in_sync[REPLICA_FOLLOWERS_MAX];
		uint32_t count = isr_peers(r, in_sync);

		/* One step: the epoch never counts acknowledgements without its in-sync set. */
		err = r->unclean ? role_lead_unclean(n, r, in_sync, count) :
		      replica_lead_isr(n->leader, r->log_id, (uint64_t)r->place.leader_epoch,
				       r->followers, r->follower_count, in_sync, count);
	}
	if (err == -ENODATA)
		role_resign(n, r, old);
	else if (err != 0)
		diag_warn("cluster", "%s/%u (log shard %" PRIx64 "): not led in epoch %" PRId64
			  ": %s", r->stream, r->shard, r->log_id, r->place.leader_epoch,
			  strerror(-err));
	r->led = err == 0;
	return err;
}

/*
 * Builds n->leaders_next from the placement: every shard's leader and replicas (forwarding),
 * for the shards of streams in the local metadata under the same stream id.
 */
static uint32_t
leaders_build(struct cluster_node *n, const struct cluster_shard *shards, uint32_t count)
{
	uint32_t made = 0;

	for (uint32_t i = 0; i < count && made < CLUSTER_SHARDS_MAX; i++) {
		const struct cluster_shard *s = &shards[i];
		uint32_t stream_id;

		if (s->malformed || !stream_id_of(n, s->stream, &stream_id) ||
		    (s->stream_id != 0 && s->stream_id != stream_id))
			continue;
		n->leaders_next[made++] = (struct node_leader){
			.log_id = LOG_SHARD_ID(stream_id, s->shard), .place = s->place,
		};
	}
	return made;
}

/* Builds n->next from the placement: the shards with this node as a replica. */
static uint32_t
roles_build(struct cluster_node *n, const struct cluster_shard *shards, uint32_t count,
	    int *err_out, int64_t *revision_out)
{
	uint32_t made = 0;

	*revision_out = 0;
	for (uint32_t i = 0; i < count && made < CLUSTER_SHARDS_MAX; i++) {
		const struct cluster_shard *s = &shards[i];
		struct node_role *r = &n->next[made];
		uint32_t stream_id;

		*revision_out = s->mod_revision > *revision_out ? s->mod_revision : *revision_out;
		if (s->malformed || !placement_has(s->place.replicas, s->place.replica_count,
						   n->node_id))
			continue;
		/*
		 * Not in the local metadata yet, or placed for another stream of that
		 * name (the cache or the controller has not caught up with a delete
		 * and create): its log shards are not this stream's. Next refresh.
		 */
		if (!stream_id_of(n, s->stream, &stream_id) ||
		    (s->stream_id != 0 && s->stream_id != stream_id)) {
			*err_out = -ENOENT;
			continue;
		}
		memset(r, 0, sizeof(*r));
		snprintf(r->stream, sizeof(r->stream), "%s", s->stream);
		r->shard = s->shard;
		r->log_id = LOG_SHARD_ID(stream_id, s->shard);
		r->place = s->place;
		r->mod_revision = s->mod_revision;
		r->unclean = s->unclean_epoch != 0 && s->unclean_epoch == s->place.leader_epoch;
		made++;
		if (s->place.leader == n->node_id && s->place.leader_epoch > 0) {
			int err = role_lead(n, r);

			if (err != 0)
				*err_out = err;
		}
	}
	return made;
}

/*
 * Shards led here before whose placement names another leader now (or that
 * left this node, or the placement): unled, so they never acknowledge again.
 * A shard still placed here keeps its leader even when leading it failed this
 * time (an address missing): it is asked again at the next refresh.
 */
static void
roles_unlead_lost(struct cluster_node *n, uint32_t made)
{
	for (uint32_t i = 0; i < n->role_count; i++) {
		const struct node_role *old = &n->roles[i];
		const struct node_role *now;

		if (!old->led)
			continue;
		now = role_find(n->next, made, old->log_id);
		if (now != NULL && now->place.leader == n->node_id)
			continue;
		diag_info("cluster", "%s/%u: no longer led here (epoch %" PRId64 " ended)",
			  old->stream, old->shard, old->place.leader_epoch);
		replica_unlead(n->leader, old->log_id);
	}
}

static int
refresh(struct cluster_node *n)
{
	struct cluster_shard *shards = NULL;
	uint32_t count = 0;
	uint32_t made;
	int64_t revision;
	int err = read_addrs(n);
	struct node_role *swap;
	struct node_leader *leaders_swap;
	uint32_t leader_count;
	uint32_t *drains = NULL;
	uint32_t drain_count = 0;
	bool draining;

	if (err == 0)
		err = cluster_drains_read(n->etcd, n->name, &drains, &drain_count);
	if (err != 0)
		return err;
	draining = placement_has(drains, drain_count, n->node_id);
	free(drains);
	err = cluster_placement_read(n->etcd, n->name, &shards, &count);
	if (err != 0)
		return err;
	n->stream_count = 0;
	err = metadata_load(n->md, stream_seen, shard_skip, n);
	if (err != 0) {
		free(shards);
		return err;
	}
	made = roles_build(n, shards, count, &err, &revision);
	leader_count = leaders_build(n, shards, count);
	free(shards);
	roles_unlead_lost(n, made);
	pthread_mutex_lock(&n->lock);
	swap = n->roles;
	n->roles = n->next;
	n->next = swap;
	n->role_count = made;
	leaders_swap = n->leaders;
	n->leaders = n->leaders_next;
	n->leaders_next = leaders_swap;
	n->leader_count = leader_count;
	n->placement_revision = revision;
	n->draining = draining;
	n->last_error = err;
	n->refreshes++;
	pthread_mutex_unlock(&n->lock);
	return err;
}

/* ---- The watcher thread ------------------------------------------------------ */

/* etcd away: the watcher's pace, never a busy loop. */
static void
retry_pause(void)
{
	struct timespec t = { .tv_nsec = (long)CLUSTER_NODE_RETRY_MS * 1000000 };

	nanosleep(&t, NULL);
}

static void *
watcher_main(void *arg)
{
	struct cluster_node *n = arg;
	char prefix[CONFIG_STRING_SIZE + 16];
	struct etcd_watch *watch = NULL;

	prctl(PR_SET_NAME, "cluster-watch");
	snprintf(prefix, sizeof(prefix), "/sluice/%s/", n->name);
	uint64_t refresh_due = 0;
	bool dirty = true;

	while (!atomic_load(&n->stop)) {
		const struct etcd_event *events;
		uint64_t now = clock_mono_ns();
		int rc;

		if (watch == NULL) {
			atomic_fetch_add(&n->watch_opens, 1);
			if (etcd_watch_open(n->etcd_endpoints, prefix, true, 0, &watch) != 0)
				watch = NULL;  /* etcd away: read and try again after the wait below. */
		}
		/* Read after the watch opened: a change between the two is seen either way. */
		if (dirty || now >= refresh_due) {
			refresh(n);
			refresh_due = now + CLUSTER_NODE_REFRESH_MS * 1000000ull;
			dirty = false;
		}
		isr_check_all(n);
		if (watch == NULL) {
			retry_pause();
			dirty = true;
			continue;
		}
		/*
		 * Every event means "read again"; a compacted or ended watch is reopened after
		 * the pause: with etcd down the open succeeds (libcurl connects later) and the
		 * stream ends at once, which without it was a busy loop of connects and reads
		 * that took a CPU from the API threads while etcd was away.
		 */
		rc = etcd_watch_next(watch, CLUSTER_ISR_CHECK_MS, &events);
		if (rc < 0) {
			etcd_watch_close(watch);
			watch = NULL;
			retry_pause();
		}
		dirty |= rc != 0;
	}
	etcd_watch_close(watch);
	return NULL;
}

/* ---- Start and stop ------------------------------------------------------------ */

static enum replica_acks
acks_parse(const char *text)
{
	/* config_validate accepted one of the three. */
	return strcmp(text, "leader") == 0 ? REPLICA_ACKS_LEADER :
	       strcmp(text, "all") == 0 ? REPLICA_ACKS_ALL : REPLICA_ACKS_QUORUM;
}

static int
node_follow(struct cluster_node *n)
{
	struct replica_peer listen;
	struct replica_follower_config fc = { .log = n->log };
	int err = peer_parse(n->replica_listen, &listen);

	if (err != 0)
		return err;
	fc.listen_host = listen.host;
	fc.port = listen.port;
	return replica_follower_start(&fc, &n->follower);
}

static int
node_join(struct cluster_node *n, const struct sluice_config *config)
{
	char dp_addr[CONFIG_STRING_SIZE + 16];
	struct cluster_config cc = {
		.etcd_endpoints = config->cluster_etcd_endpoints, .cluster = config->cluster_name,
		.node_id = config->cluster_node_id, .addr = config->cluster_replica_listen,
		.api_addr = config->cluster_advertise_api[0] != '\0' ?
			    config->cluster_advertise_api : config->api_listen,
		.dp_addr = dp_addr, .lease_ttl_s = config->cluster_lease_ttl_s,
		.replication_factor = config->cluster_replication_factor,
	};

	config_cluster_dp_addr(config, dp_addr, sizeof(dp_addr));
	return cluster_member_start(&cc, &n->member);
}

static int
node_alloc(struct cluster_node *n, const struct sluice_config *config)
{
	snprintf(n->name, sizeof(n->name), "%s", config->cluster_name);
	snprintf(n->replica_listen, sizeof(n->replica_listen), "%s",
		 config->cluster_replica_listen);
	snprintf(n->etcd_endpoints, sizeof(n->etcd_endpoints), "%s",
		 config->cluster_etcd_endpoints);
	snprintf(n->acks_text, sizeof(n->acks_text), "%s", config->cluster_acks);
	n->node_id = config->cluster_node_id;
	n->acks = acks_parse(config->cluster_acks);
	n->replication_factor = config->cluster_replication_factor;
	pthread_mutex_init(&n->lock, NULL);
	n->streams = calloc(SLUICE_STREAMS_MAX, sizeof(*n->streams));
	n->roles = calloc(CLUSTER_SHARDS_MAX, sizeof(*n->roles));
	n->next = calloc(CLUSTER_SHARDS_MAX, sizeof(*n->next));
	n->leaders = calloc(CLUSTER_SHARDS_MAX, sizeof(*n->leaders));
	n->leaders_next = calloc(CLUSTER_SHARDS_MAX, sizeof(*n->leaders_next));
	return n->streams == NULL || n->roles == NULL || n->next == NULL || n->leaders == NULL ||
	       n->leaders_next == NULL ? -ENOMEM : 0;
}

int
cluster_node_start(const struct sluice_config *config, struct log *log, struct metadata *md,
		   struct cluster_node **node_out)
{
	struct cluster_node *n = calloc(1, sizeof(*n));
	struct replica_leader_config lc = {
		.log = log, .watermark_acks = acks_parse(config->cluster_acks),
		.inflight_bytes_max = (uint64_t)config->cluster_inflight_kb << 10,
	};
	int err;

	if (n == NULL)
		return -ENOMEM;
	n->log = log;
	err = node_alloc(n, config);
	if (err == 0)
		err = metadata_open_reader(md, &n->md);
	if (err == 0)
		err = etcd_open(config->cluster_etcd_endpoints, CLUSTER_NODE_ETCD_TIMEOUT_MS,
				&n->etcd);
	/* Follower first: once registered, a leader may dial this node at once. */
	if (err == 0 && (err = node_follow(n)) != 0)
		diag_error("cluster", "replica listener %s: %s", n->replica_listen, strerror(-err));
	if (err == 0)
		err = replica_leader_start(&lc, &n->leader);
	if (err == 0 && (err = node_join(n, config)) != 0)
		diag_error("cluster", "joining %s as node %u through %s: %s", n->name, n->node_id,
			   n->etcd_endpoints, strerror(-err));
	if (err == 0) {
		err = -pthread_create(&n->thread, NULL, watcher_main, n);
		n->started = err == 0;
	}
	if (err != 0) {
		cluster_node_stop(n);
		return err;
	}
	diag_info("cluster", "node %u of %s: replicas on %s, acks = %s", n->node_id, n->name,
		  n->replica_listen, n->acks_text);
	*node_out = n;
	return 0;
}

void
cluster_node_stop(struct cluster_node *n)
{
	if (n == NULL)
		return;
	atomic_store(&n->stop, true);
	if (n->started)
		pthread_join(n->thread, NULL);  /* Its waits end within CLUSTER_ISR_CHECK_MS. */
	/* Resign and revoke: the controller moves this node's leaderships at once. */
	if (n->member != NULL)
		cluster_member_stop(n->member);
	replica_leader_stop(n->leader);
	replica_follower_stop(n->follower);
	if (n->etcd != NULL)
		etcd_close(n->etcd);
	if (n->md != NULL)
		metadata_close(n->md);
	pthread_mutex_destroy(&n->lock);
	free(n->streams);
	free(n->roles);
	free(n->next);
	free(n->leaders);
	free(n->leaders_next);
	free(n);
}

/* ---- The API thread's questions ------------------------------------------------ */

int
cluster_node_acked(struct cluster_node *n, uint64_t log_id, uint64_t *seq_out)
{
	return replica_acked(n->leader, log_id, n->acks, seq_out);
}

int
cluster_node_lead_epoch(struct cluster_node *n, uint64_t log_id, uint64_t *epoch_out)
{
	return replica_lead_epoch(n->leader, log_id, epoch_out);
}

void
cluster_node_durable(struct cluster_node *n, uint64_t log_id, uint64_t seq_end)
{
	replica_ship(n->leader, log_id, seq_end);  /* -ENOENT (not led here): nothing to ship. */
}

int
cluster_node_doorbell_fd(const struct cluster_node *n)
{
	return replica_leader_doorbell_fd(n->leader);
}

/* The placed shard's entry, or NULL. Under lock. */
static const struct node_leader *
leader_of(const struct cluster_node *n, uint64_t log_id)
{
	for (uint32_t i = 0; i < n->leader_count; i++) {
		if (n->leaders[i].log_id == log_id)
			return &n->leaders[i];
	}
	return NULL;
}

/* Node `id`'s API address into addr: 0, or -ENOENT (none registered). Under lock. */
static int
api_of(const struct cluster_node *n, uint32_t id, char *addr, size_t size)
{
	for (uint32_t a = 0; a < n->addr_count && id != 0; a++) {
		if (n->addrs[a].id == id && n->addrs[a].api[0] != '\0') {
			snprintf(addr, size, "%s", n->addrs[a].api);
			return 0;
		}
	}
	return -ENOENT;
}

int
cluster_node_leader_api(struct cluster_node *n, uint64_t log_id, char *addr, size_t size)
{
	const struct node_leader *l;
	int err = -ENOENT;

	pthread_mutex_lock(&n->lock);
	l = leader_of(n, log_id);
	if (l != NULL && l->place.leader != n->node_id)
		err = api_of(n, l->place.leader, addr, size);
	pthread_mutex_unlock(&n->lock);
	return err;
}

int
cluster_node_dp_lead(struct cluster_node *n, uint64_t log_id, uint64_t *epoch_out,
		     uint32_t *ipv4_out, uint16_t *port_out)
{
	const struct node_leader *l;
	int err = replica_lead_epoch(n->leader, log_id, epoch_out);

	if (err == 0)
		return 0;
	err = -ENOENT;
	pthread_mutex_lock(&n->lock);
	l = leader_of(n, log_id);
	for (uint32_t a = 0; l != NULL && l->place.leader != n->node_id && a < n->addr_count;
	     a++) {
		if (n->addrs[a].id == l->place.leader && n->addrs[a].dp_port != 0) {
			*ipv4_out = n->addrs[a].dp_ipv4;
			*port_out = n->addrs[a].dp_port;
			err = -EREMOTE;
		}
	}
	pthread_mutex_unlock(&n->lock);
	return err;
}

const _Atomic uint64_t *
cluster_node_doorbell_gen(const struct cluster_node *n)
{
	return replica_leader_doorbell_gen(n->leader);
}

int
cluster_node_read_api(struct cluster_node *n, uint64_t log_id, uint32_t nth, char *addr,
		      size_t size)
{
	const struct node_leader *l;
	int err = -ENOENT;

	pthread_mutex_lock(&n->lock);
	l = leader_of(n, log_id);
	if (l == NULL || placement_has(l->place.replicas, l->place.replica_count, n->node_id))
		goto out_unlock;
	/* The leader first (it holds the most), then the in-sync followers, in their order. */
	err = api_of(n, l->place.leader, addr, size);
	if (err == 0 && nth-- == 0)
		goto out_unlock;
	err = -ENOENT;
	for (uint32_t i = 0; i < l->place.isr_count && err != 0; i++) {
		if (l->place.isr[i] == l->place.leader ||
		    api_of(n, l->place.isr[i], addr, size) != 0)
			continue;
		if (nth-- == 0)
			err = 0;
	}
	if (err != 0)
		err = -EHOSTUNREACH;
out_unlock:
	pthread_mutex_unlock(&n->lock);
	return err;
}

/* ---- GET /cluster and /metrics ------------------------------------------------- */

static void
ids_print(struct metrics_out *out, const uint32_t *ids, uint32_t count)
{
	metrics_printf(out, "[");
	for (uint32_t i = 0; i < count; i++)
		metrics_printf(out, "%s%u", i > 0 ? "," : "", ids[i]);
	metrics_printf(out, "]");
}

/* Stream names are [a-zA-Z0-9_.-] (Kinesis): printed as they are. */
static void
role_print(struct cluster_node *n, struct metrics_out *out, const struct node_role *r,
	   bool first)
{
	struct log_shard_info info = { 0 };
	uint64_t quorum = 0;
	uint64_t all = 0;
	int err;

	metrics_printf(out, "%s{\"stream\":\"%s\",\"shard\":%u,\"log_shard\":%" PRIu64
		       ",\"epoch\":%" PRId64 ",", first ? "" : ",", r->stream, r->shard, r->log_id,
		       r->place.leader_epoch);
	log_shard_info(n->log, r->log_id, &info);
	if (!r->led) {
		metrics_printf(out, "\"leader\":%u,\"durable_end\":%" PRIu64 "}", r->place.leader,
			       info.seq_local);
		return;
	}
	metrics_printf(out, "\"unclean\":%s,\"replicas\":", r->unclean ? "true" : "false");
	ids_print(out, r->place.replicas, r->place.replica_count);
	metrics_printf(out, ",\"isr\":");
	ids_print(out, r->place.isr, r->place.isr_count);
	err = replica_acked(n->leader, r->log_id, REPLICA_ACKS_QUORUM, &quorum);
	if (err == 0)
		replica_acked(n->leader, r->log_id, REPLICA_ACKS_ALL, &all);
	metrics_printf(out, ",\"durable_end\":%" PRIu64 ",\"acked_quorum\":%" PRIu64
		       ",\"acked_all\":%" PRIu64 ",\"fenced\":%s}", info.seq_local, quorum, all,
		       err == -ESTALE ? "true" : "false");
}

/* Under lock: records the link's follower lacks, over the shards led here. */
static uint64_t
link_lag(struct cluster_node *n, uint32_t link)
{
	uint64_t lag = 0;

	for (uint32_t i = 0; i < n->role_count; i++) {
		struct log_shard_info info = { 0 };
		uint64_t acked;

		if (!n->roles[i].led ||
		    replica_leader_link_acked(n->leader, link, n->roles[i].log_id, &acked) != 0)
			continue;
		log_shard_info(n->log, n->roles[i].log_id, &info);
		lag += info.seq_local > acked ? info.seq_local - acked : 0;
	}
	return lag;
}

static uint32_t
link_node_id(const struct cluster_node *n, const struct replica_peer *peer)
{
	for (uint32_t i = 0; i < n->addr_count; i++) {
		if (n->addrs[i].peer.port == peer->port &&
		    strcmp(n->addrs[i].peer.host, peer->host) == 0)
			return n->addrs[i].id;
	}
	return 0;
}

static void
links_print(struct cluster_node *n, struct metrics_out *out)
{
	uint32_t count = replica_leader_link_count(n->leader);

	metrics_printf(out, "\"links\":[");
	for (uint32_t k = 0; k < count; k++) {
		struct replica_link_stats st;

		if (replica_leader_link_stats(n->leader, k, &st) != 0)
			continue;
		metrics_printf(out, "%s{\"node_id\":%u,\"peer\":\"%s:%u\",\"connected\":%s,"
			       "\"connects\":%" PRIu64 ",\"resets\":%" PRIu64 ",\"bad_frames\":%"
			       PRIu64 ",\"frames_out\":%" PRIu64 ",\"records_shipped\":%" PRIu64
			       ",\"bytes_inflight\":%" PRIu64 ",\"backpressured\":%" PRIu64
			       ",\"fenced\":%" PRIu64 ",\"starts\":%" PRIu64 ",\"lag_records\":%"
			       PRIu64 "}",
			       k > 0 ? "," : "", link_node_id(n, &st.peer), st.peer.host,
			       st.peer.port, st.connected ? "true" : "false", st.connects,
			       st.resets, st.bad_frames, st.frames_out, st.records_shipped,
			       st.bytes_inflight, st.backpressured, st.fenced, st.starts,
			       link_lag(n, k));
	}
	metrics_printf(out, "]");
}

void
cluster_node_render_json(struct cluster_node *n, struct metrics_out *out)
{
	struct cluster_member_status ms;
	struct replica_follower_stats fs;
	bool first;

	if (n == NULL) {
		metrics_printf(out, "{\"enabled\":false}\n");
		return;
	}
	cluster_member_status(n->member, &ms);
	replica_follower_stats(n->follower, &fs);
	pthread_mutex_lock(&n->lock);
	metrics_printf(out, "{\"enabled\":true,\"cluster\":\"%s\",\"node_id\":%u,"
		       "\"controller\":%s,\"controller_epoch\":%" PRId64 ",\"draining\":%s,"
		       "\"acks\":\"%s\","
		       "\"replication_factor\":%u,\"replica_listen\":\"%s\",\"last_error\":%d,"
		       "\"placement_revision\":%" PRId64 ",\"led\":[", n->name, n->node_id,
		       ms.controller ? "true" : "false", ms.controller ? ms.election.rev : 0,
		       n->draining ? "true" : "false", n->acks_text, n->replication_factor,
		       n->replica_listen,
		       ms.last_error != 0 ? ms.last_error : n->last_error, n->placement_revision);
	first = true;
	for (uint32_t i = 0; i < n->role_count; i++) {
		if (n->roles[i].led) {
			role_print(n, out, &n->roles[i], first);
			first = false;
		}
	}
	metrics_printf(out, "],\"followed\":[");
	first = true;
	for (uint32_t i = 0; i < n->role_count; i++) {
		/* A placed leader that refuses follows too (catching up): its end is shown. */
		if (!n->roles[i].led) {
			role_print(n, out, &n->roles[i], first);
			first = false;
		}
	}
	metrics_printf(out, "],");
	links_print(n, out);
	pthread_mutex_unlock(&n->lock);
	metrics_printf(out, ",\"follower\":{\"connections\":%" PRIu64 ",\"resets\":%" PRIu64
		       ",\"bad_frames\":%" PRIu64 ",\"records_appended\":%" PRIu64
		       ",\"stale_epochs\":%" PRIu64 ",\"truncations\":%" PRIu64
		       ",\"records_kept\":%" PRIu64 ",\"starts\":%" PRIu64 "}}\n",
		       fs.connections, fs.resets, fs.bad_frames, fs.records_appended,
		       fs.stale_epochs, fs.truncations, fs.records_kept, fs.starts);
}

/* One gauge or counter family with one sample per link. */
struct link_family {
	const char *name;
	const char *type;
	const char *help;
	size_t offset;             /* A uint64_t of struct replica_link_stats; SIZE_MAX: lag. */
};

static const struct link_family link_families[] = {
	{ "sluice_replica_link_resets_total", "counter", "Replica links dropped.",
	  offsetof(struct replica_link_stats, resets) },
	{ "sluice_replica_link_bad_frames_total", "counter", "Frames refused on the link.",
	  offsetof(struct replica_link_stats, bad_frames) },
	{ "sluice_replica_link_records_shipped_total", "counter", "Records shipped.",
	  offsetof(struct replica_link_stats, records_shipped) },
	{ "sluice_replica_link_bytes_inflight", "gauge", "Bytes shipped, not acknowledged.",
	  offsetof(struct replica_link_stats, bytes_inflight) },
	{ "sluice_replica_link_backpressured_total", "counter",
	  "Times shipping stopped at [cluster] inflight_kb.",
	  offsetof(struct replica_link_stats, backpressured) },
	{ "sluice_replica_link_fenced_total", "counter",
	  "Shards the follower refused for an older epoch.",
	  offsetof(struct replica_link_stats, fenced) },
	{ "sluice_replica_link_starts_total", "counter",
	  "STARTs sent: the follower's end was below this log's trim horizon, its shard "
	  "started there.", offsetof(struct replica_link_stats, starts) },
	{ "sluice_replica_link_lag_records", "gauge",
	  "Records the follower lacks, over the shards led here.", SIZE_MAX },
};

static void
link_metrics(struct cluster_node *n, struct metrics_out *out)
{
	uint32_t count = replica_leader_link_count(n->leader);

	metrics_family(out, "sluice_replica_link_connected", "gauge",
		       "1 while the replica link to the peer is up.");
	for (uint32_t k = 0; k < count; k++) {
		struct replica_link_stats st;

		if (replica_leader_link_stats(n->leader, k, &st) == 0)
			metrics_printf(out, "sluice_replica_link_connected{peer=\"%u\"} %d\n",
				       link_node_id(n, &st.peer), st.connected ? 1 : 0);
	}
	for (size_t f = 0; f < ARRAY_SIZE(link_families); f++) {
		const struct link_family *lf = &link_families[f];

		metrics_family(out, lf->name, lf->type, lf->help);
		for (uint32_t k = 0; k < count; k++) {
			struct replica_link_stats st;
			uint64_t v;

			if (replica_leader_link_stats(n->leader, k, &st) != 0)
				continue;
			v = lf->offset == SIZE_MAX ? link_lag(n, k) :
			    *(const uint64_t *)((const char *)&st + lf->offset);
			metrics_printf(out, "%s{peer=\"%u\"} %" PRIu64 "\n", lf->name,
				       link_node_id(n, &st.peer), v);
		}
	}
}

/* The follower's counters, one sample each. */
struct stat_family {
	const char *name;
	const char *help;
	size_t offset;             /* A uint64_t of struct replica_follower_stats. */
};

static const struct stat_family follower_families[] = {
	{ "sluice_replica_follower_records_appended_total", "Records appended from leaders.",
	  offsetof(struct replica_follower_stats, records_appended) },
	{ "sluice_replica_follower_resets_total", "Leader connections dropped.",
	  offsetof(struct replica_follower_stats, resets) },
	{ "sluice_replica_follower_bad_frames_total", "Frames refused from leaders.",
	  offsetof(struct replica_follower_stats, bad_frames) },
	{ "sluice_replica_follower_stale_epochs_total", "LEAD or APPEND of an older epoch, refused.",
	  offsetof(struct replica_follower_stats, stale_epochs) },
	{ "sluice_replica_follower_truncations_total", "Divergent tails cut.",
	  offsetof(struct replica_follower_stats, truncations) },
	{ "sluice_replica_follower_starts_total", "Shards started at a leader's trim horizon "
	  "(its START, or a handshake that parted below this log's own horizon).",
	  offsetof(struct replica_follower_stats, starts) },
};

void
cluster_node_render_metrics(struct cluster_node *n, struct metrics_out *out)
{
	struct cluster_member_status ms;
	struct replica_follower_stats fs;
	uint32_t led = 0;

	if (n == NULL)
		return;
	cluster_member_status(n->member, &ms);
	replica_follower_stats(n->follower, &fs);
	pthread_mutex_lock(&n->lock);
	for (uint32_t i = 0; i < n->role_count; i++)
		led += n->roles[i].led;
	metrics_family(out, "sluice_cluster_controller", "gauge", "1 while this node is the "
		       "cluster's controller.");
	metrics_printf(out, "sluice_cluster_controller %d\n", ms.controller ? 1 : 0);
	metrics_family(out, "sluice_cluster_shards_led", "gauge", "Shards this node leads.");
	metrics_printf(out, "sluice_cluster_shards_led %u\n", led);
	metrics_family(out, "sluice_cluster_shards_followed", "gauge",
		       "Shards this node holds a replica of, led elsewhere.");
	metrics_printf(out, "sluice_cluster_shards_followed %u\n", n->role_count - led);
	metrics_family(out, "sluice_cluster_watch_opens_total", "counter",
		       "Placement watches opened (while etcd is away: one per retry pause).");
	metrics_printf(out, "sluice_cluster_watch_opens_total %" PRIu64 "\n",
		       atomic_load(&n->watch_opens));
	metrics_family(out, "sluice_cluster_etcd_endpoint", "gauge",
		       "1 for the etcd endpoint this node's lease and election calls go to now.");
	metrics_printf(out, "sluice_cluster_etcd_endpoint{url=\"%s\"} 1\n", ms.etcd_endpoint);
	metrics_family(out, "sluice_cluster_etcd_failovers_total", "counter",
		       "Moves of this process's etcd calls and watches to another endpoint "
		       "(one down, or without a leader; docs/CLUSTER.md).");
	metrics_printf(out, "sluice_cluster_etcd_failovers_total %" PRIu64 "\n", etcd_failovers());
	metrics_family(out, "sluice_cluster_lead_refusals_total", "counter",
		       "Leaderships placed here that the log refused (records below a cut "
		       "not held again yet), once per epoch.");
	metrics_printf(out, "sluice_cluster_lead_refusals_total %" PRIu64 "\n",
		       atomic_load(&n->lead_refusals));
	metrics_family(out, "sluice_cluster_isr_resigns_total", "counter",
		       "Times such a node left the in-sync set for another replica to lead.");
	metrics_printf(out, "sluice_cluster_isr_resigns_total %" PRIu64 "\n",
		       atomic_load(&n->resigns));
	metrics_family(out, "sluice_cluster_unclean_elections_total", "counter",
		       "Epochs this node began as leader by an operator's unclean election "
		       "(sluice cluster elect --unclean: acknowledged records may be lost).");
	metrics_printf(out, "sluice_cluster_unclean_elections_total %" PRIu64 "\n",
		       atomic_load(&n->unclean_leads));
	link_metrics(n, out);
	pthread_mutex_unlock(&n->lock);
	for (size_t f = 0; f < ARRAY_SIZE(follower_families); f++) {
		const struct stat_family *ff = &follower_families[f];

		metrics_family(out, ff->name, "counter", ff->help);
		metrics_printf(out, "%s %" PRIu64 "\n", ff->name,
			       *(const uint64_t *)((const char *)&fs + ff->offset));
	}
}
