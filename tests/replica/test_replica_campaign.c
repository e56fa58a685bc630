/*
 * replica_campaign: a seeded fault campaign over one shard replicated on
 * three nodes in one process (real logs on io_uring, TCP on 127.0.0.1).
 * Every leader -> follower link goes through a proxy the campaign controls.
 * Each step, chosen by the seed, is one of:
 *
 *   append     the leader appends a few records (their bytes name the epoch
 *              that wrote them); records below replica_acked(quorum) count as
 *              acknowledged, and the ledger freezes their bytes
 *   cut        a proxy drops its connections (both directions)
 *   corrupt    a proxy flips one byte of the next chunk leader -> follower
 *   restart    a follower's node closes its log and reopens it (recovery)
 *   failover   the leader stops (after writing an unreplicated tail, half the
 *              time); the campaign, acting as the controller, picks a new
 *              leader among the nodes holding every acknowledged record (the
 *              in-sync set) and bumps the epoch
 *
 * At the end the faults stop; the campaign waits (condition, generous
 * deadline) until every replica holds the leader's end, then checks: every
 * acknowledged record is on every replica with its acknowledged number and
 * bytes; all three logs are identical; no record of a cut tail is readable.
 * It prints one line: replica-campaign: seed=... steps=... faults=... acked=...
 * lost=... diverged=...
 *
 * Seeds: TEST_SEED (base, printed by seed_base) + 0 .. CAMPAIGN_SEEDS-1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "replica/replica.h"
#include "tests/nvme-log/log_test_util.h"
#include "tests/support/seed.h"

#define NODES 3u
#define CAMPAIGN_SEEDS 3u
#define STEPS 40u
#define SEQ_MAX 8192u
#define DATA 64u
#define SHARD LOG_SHARD_ID(9, 0)
#define WAIT_NS (90ull * 1000000000ull)
#define PAIRS_MAX 4u
#define CHUNK 65536u

/* ---- Proxies: leader i -> follower j through proxy[i][j] ------------------- */

struct pair {
	int down;                  /* Accepted from the leader. */
	int up;                    /* Connected to the follower. */
};

struct proxy {
	int listen_fd;
	uint16_t port;
	uint16_t target;
	struct pair pairs[PAIRS_MAX];
	uint32_t pair_count;
	_Atomic bool cut;
	_Atomic bool corrupt;
	uint32_t corrupt_at;       /* Which byte of the chunk (seeded). */
};

struct campaign;

struct node {
	char dir[600];
	struct log *log;
	struct log_producer *p;
	struct replica_follower *f;
	uint16_t port;
};

struct campaign {
	uint64_t seed;
	struct seed_rng rng;
	char root[512];
	struct node nodes[NODES];
	struct proxy proxy[NODES][NODES];
	pthread_t proxy_thread;
	_Atomic bool proxy_stop;
	struct replica_leader *leader;
	uint32_t leader_node;
	uint64_t epoch;
	uint8_t content_acked[SEQ_MAX]; /* Epoch whose bytes each acknowledged seq has. */
	uint64_t acked_end;
	uint64_t acked_in_run;     /* Acknowledged before the faults stopped. */
	uint32_t faults;
	uint32_t failovers;
	uint32_t tails;
};

static void
pair_close(struct proxy *p, uint32_t i)
{
	close(p->pairs[i].down);
	close(p->pairs[i].up);
	p->pairs[i] = p->pairs[--p->pair_count];
}

static void
proxy_accept(struct proxy *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->target),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int down = accept(p->listen_fd, NULL, NULL);
	int up;

	if (down < 0)
		return;
	up = socket(AF_INET, SOCK_STREAM, 0);
	if (p->pair_count == PAIRS_MAX || up < 0 ||
	    connect(up, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(down);
		if (up >= 0)
			close(up);
		return;
	}
	p->pairs[p->pair_count++] = (struct pair){ down, up };
}

/* Moves one chunk from `from` to `to`; false when the pair is finished. */
static bool
proxy_move(struct proxy *p, int from, int to, bool downstream)
{
	static uint8_t buf[CHUNK];
	ssize_t n = recv(from, buf, sizeof(buf), 0);

	if (n <= 0)
		return false;
	if (downstream && atomic_exchange(&p->corrupt, false))
		buf[p->corrupt_at % (uint32_t)n] ^= 0x40;
	return send(to, buf, (size_t)n, MSG_NOSIGNAL) == n;
}

static void *
proxy_main(void *arg)
{
	struct campaign *c = arg;

	while (!atomic_load(&c->proxy_stop)) {
		struct pollfd pfd[NODES * NODES * (1 + 2 * PAIRS_MAX)];
		struct proxy *owner[ARRAY_SIZE(pfd)];
		uint32_t n = 0;

		for (uint32_t i = 0; i < NODES * NODES; i++) {
			struct proxy *p = &c->proxy[i / NODES][i % NODES];

			if (p->listen_fd < 0)
				continue;
			if (atomic_exchange(&p->cut, false))
				while (p->pair_count > 0)
					pair_close(p, 0);
			owner[n] = p;
			pfd[n++] = (struct pollfd){ .fd = p->listen_fd, .events = POLLIN };
			for (uint32_t k = 0; k < p->pair_count; k++) {
				owner[n] = p;
				pfd[n++] = (struct pollfd){ .fd = p->pairs[k].down, .events = POLLIN };
				owner[n] = p;
				pfd[n++] = (struct pollfd){ .fd = p->pairs[k].up, .events = POLLIN };
			}
		}
		if (poll(pfd, n, 5) <= 0)
			continue;
		for (uint32_t i = 0; i < n; i++) {
			struct proxy *p = owner[i];

			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == p->listen_fd) {
				proxy_accept(p);
				continue;
			}
			for (uint32_t k = 0; k < p->pair_count; k++) {
				bool down = p->pairs[k].down == pfd[i].fd;

				if (!down && p->pairs[k].up != pfd[i].fd)
					continue;
				if (!proxy_move(p, pfd[i].fd, down ? p->pairs[k].up : p->pairs[k].down,
						down))
					pair_close(p, k);
				break;
			}
			/* Pairs may have moved: the rest of this round's events wait. */
			break;
		}
	}
	return NULL;
}

static void
proxy_open(struct proxy *p, uint16_t target)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->target = target;
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(p->listen_fd, 0);
	cr_assert_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p->listen_fd, 8), 0);
	cr_assert_eq(getsockname(p->listen_fd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
}

/* ---- Nodes ------------------------------------------------------------------ */

static void
node_open(struct node *n)
{
	struct log_config lc;
	struct replica_follower_config fc = { .port = n->port };

	log_config_default(&lc);
	lc.dir_path = n->dir;
	lc.segment_size = 8u << 20;
	lc.read_cache_bytes = 8u << 20;
	lc.shards_max = 16;
	lc.batch_size = 4096;      /* Small batches: cuts fall inside many of them. */
	lc.watermark_gated = true;
	cr_assert_eq(log_open(&lc, &n->log), 0);
	cr_assert_eq(log_producer_open(n->log, &n->p), 0);
	fc.log = n->log;
	cr_assert_eq(replica_follower_start(&fc, &n->f), 0);
	n->port = replica_follower_port(n->f);
}

static void
node_close(struct node *n)
{
	replica_follower_stop(n->f);
	log_producer_close(n->p);
	log_close(n->log);
}

static uint64_t
local_end(struct node *n)
{
	struct log_shard_info info;

	log_shard_info(n->log, SHARD, &info);
	return info.seq_local;
}

/* Reads the node's records [0, end): which epoch's bytes each seq has (0: bad bytes). */
struct scan {
	uint8_t content[SEQ_MAX];
	uint32_t count;
	uint32_t bad;
};

static int
scan_fn(void *arg, const struct log_record_out *r)
{
	struct scan *s = arg;
	unsigned long long content;
	unsigned long long seq;
	char key[64];

	snprintf(key, sizeof(key), "%.*s", (int)r->partition_key_size, r->partition_key);
	if (sscanf(key, "k%llx-%llu", &content, &seq) != 2 || seq != r->seq ||
	    !test_record_check(content, r, DATA) || r->seq >= SEQ_MAX) {
		s->bad++;
		return 0;
	}
	s->content[r->seq] = (uint8_t)content;
	s->count++;
	return 0;
}

static void
node_scan(struct node *n, struct scan *s)
{
	struct log_reader *r;
	uint64_t next = 0;
	uint64_t end = local_end(n);

	memset(s, 0, sizeof(*s));
	cr_assert_eq(log_reader_open(n->log, &r), 0);
	log_reader_past_watermark(r);
	while (next < end) {
		int got = log_read(r, SHARD, next, 1000, UINT64_MAX, scan_fn, s, &next);

		cr_assert_gt(got, 0, "%s: read at %lu of %lu: %d", n->dir, (unsigned long)next,
			     (unsigned long)end, got);
	}
	log_reader_close(r);
}

/* In sync: holds every acknowledged record with its acknowledged bytes. */
static bool
node_in_sync(struct campaign *c, struct node *n)
{
	struct scan *s = malloc(sizeof(*s));
	bool ok = local_end(n) >= c->acked_end;

	node_scan(n, s);
	for (uint64_t q = 0; ok && q < c->acked_end; q++)
		ok = s->content[q] == c->content_acked[q];
	free(s);
	return ok;
}

/* ---- Steps -------------------------------------------------------------------- */

static uint64_t
rnd(struct campaign *c, uint64_t bound)
{
	return seed_rng_below(&c->rng, bound);
}

/* Appends `count` records of the current epoch at the node's end; waits until durable. */
static void
append_at_end(struct campaign *c, struct node *n, uint32_t count)
{
	uint64_t seq = local_end(n);
	struct log_batch *b;
	struct log_completion done;
	uint64_t first = seq;

	cr_assert_lt(seq + count, SEQ_MAX);
	while ((b = log_batch_get(n->p)) == NULL)
		log_completions_poll(n->p, &done, 1);
	for (uint32_t k = 0; k < count; k++, seq++) {
		uint8_t data[DATA];
		char key[48];
		struct log_record_in rec;

		test_record_make(c->epoch, seq, DATA, data, key, &rec);
		if (log_batch_add(b, &rec) == -ENOSPC) {
			cr_assert_eq(log_batch_submit_at(n->p, b, SHARD, first, c->epoch, 0), 0);
			first = seq;
			while ((b = log_batch_get(n->p)) == NULL)
				log_completions_poll(n->p, &done, 1);
			cr_assert_eq(log_batch_add(b, &rec), 0);
		}
	}
	cr_assert_eq(log_batch_submit_at(n->p, b, SHARD, first, c->epoch, 0), 0);
	while (local_end(n) < seq) {
		while (log_completions_poll(n->p, &done, 1) == 1)
			cr_assert_eq(done.error, 0, "seed %lu: append at %lu: %d", (unsigned long)c->seed, (unsigned long)first, done.error);
	}
	while (log_completions_poll(n->p, &done, 1) == 1)
		cr_assert_eq(done.error, 0, "seed %lu: append: %d", (unsigned long)c->seed, done.error);
}

/* What replica_acked(quorum) says now becomes acknowledged: the ledger freezes it. */
static void
note_acked(struct campaign *c)
{
	struct scan *s;
	uint64_t seq = 0;

	if (c->leader == NULL ||
	    replica_acked(c->leader, SHARD, REPLICA_ACKS_QUORUM, &seq) != 0 ||
	    seq <= c->acked_end)
		return;
	s = malloc(sizeof(*s));
	node_scan(&c->nodes[c->leader_node], s);
	for (uint64_t q = c->acked_end; q < seq; q++)
		c->content_acked[q] = s->content[q];
	c->acked_end = seq;
	free(s);
}

static void
leader_start(struct campaign *c, uint32_t node)
{
	struct replica_leader_config lc = { .log = c->nodes[node].log,
					    .watermark_acks = REPLICA_ACKS_QUORUM };

	for (uint32_t j = 0; j < NODES; j++) {
		if (j == node)
			continue;
		snprintf(lc.followers[lc.follower_count].host, REPLICA_HOST_SIZE_MAX, "127.0.0.1");
		lc.followers[lc.follower_count++].port = c->proxy[node][j].port;
	}
	c->epoch++;
	c->leader_node = node;
	cr_assert_eq(replica_leader_start(&lc, &c->leader), 0);
	cr_assert_eq(replica_lead(c->leader, SHARD, c->epoch), 0, "seed %lu",
		     (unsigned long)c->seed);
}

static bool
some_in_sync(struct campaign *c, uint32_t *node_out)
{
	for (uint32_t k = 0; k < NODES; k++) {
		uint32_t j = (uint32_t)((c->leader_node + 1 + k) % NODES);

		if (j != c->leader_node && node_in_sync(c, &c->nodes[j])) {
			*node_out = j;
			return true;
		}
	}
	return false;
}

static void
step_failover(struct campaign *c)
{
	uint64_t deadline = clock_mono_ns() + WAIT_NS;
	uint32_t next;

	note_acked(c);
	replica_leader_stop(c->leader);
	c->leader = NULL;
	if (rnd(c, 2) == 0) {
		/* Cut off, the old leader still writes: never acknowledged, to be cut. */
		append_at_end(c, &c->nodes[c->leader_node], 1 + (uint32_t)rnd(c, 40));
		c->tails++;
	}
	/* A quorum acknowledged: at least one follower holds it all (or will, once durable). */
	while (!some_in_sync(c, &next)) {
		cr_assert_lt(clock_mono_ns(), deadline, "seed %lu: no in-sync follower",
			     (unsigned long)c->seed);
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
	leader_start(c, next);
	c->failovers++;
}

static void
step_restart(struct campaign *c)
{
	uint32_t j = (uint32_t)((c->leader_node + 1 + rnd(c, NODES - 1)) % NODES);

	node_close(&c->nodes[j]);
	node_open(&c->nodes[j]);
	c->faults++;
}

static void
campaign_step(struct campaign *c)
{
	uint32_t j = (uint32_t)((c->leader_node + 1 + rnd(c, NODES - 1)) % NODES);
	uint64_t roll = rnd(c, 100);

	if (roll < 45) {
		append_at_end(c, &c->nodes[c->leader_node], 1 + (uint32_t)rnd(c, 60));
		cr_assert_eq(replica_ship(c->leader, SHARD, 0), 0);
	} else if (roll < 60) {
		atomic_store(&c->proxy[c->leader_node][j].cut, true);
		c->faults++;
	} else if (roll < 70) {
		c->proxy[c->leader_node][j].corrupt_at = (uint32_t)rnd(c, CHUNK);
		atomic_store(&c->proxy[c->leader_node][j].corrupt, true);
		c->faults++;
	} else if (roll < 85) {
		step_restart(c);
	} else {
		step_failover(c);
	}
	note_acked(c);
}

/* ---- The run ------------------------------------------------------------------- */

static bool
all_caught_up(struct campaign *c)
{
	uint64_t end = local_end(&c->nodes[c->leader_node]);
	uint64_t all = 0;

	return replica_acked(c->leader, SHARD, REPLICA_ACKS_ALL, &all) == 0 && all == end &&
	       local_end(&c->nodes[(c->leader_node + 1) % NODES]) == end &&
	       local_end(&c->nodes[(c->leader_node + 2) % NODES]) == end;
}

static void
campaign_check(struct campaign *c, uint32_t steps)
{
	struct scan *want = malloc(sizeof(*want));
	struct scan *got = malloc(sizeof(*got));
	uint64_t end = local_end(&c->nodes[c->leader_node]);
	uint64_t lost = 0;
	uint64_t diverged = 0;
	uint64_t kept = 0;
	uint64_t cuts = 0;

	node_scan(&c->nodes[c->leader_node], want);
	for (uint32_t n = 0; n < NODES; n++) {
		struct replica_follower_stats st;

		replica_follower_stats(c->nodes[n].f, &st);
		kept += st.records_kept;
		cuts += st.truncations;
		node_scan(&c->nodes[n], got);
		cr_assert_eq(got->bad, 0, "seed %lu: node %u served wrong bytes",
			     (unsigned long)c->seed, n);
		cr_assert_eq(local_end(&c->nodes[n]), end);
		for (uint64_t q = 0; q < end; q++)
			diverged += got->content[q] != want->content[q];
		for (uint64_t q = 0; q < c->acked_end; q++)
			lost += got->content[q] != c->content_acked[q];
	}
	printf("replica-campaign: seed=%lu steps=%u faults=%u failovers=%u tails_cut=%u "
	       "cuts=%lu kept=%lu records=%lu acked_under_faults=%lu acked=%lu lost=%lu "
	       "diverged=%lu\n", (unsigned long)c->seed, steps, c->faults, c->failovers, c->tails,
	       (unsigned long)cuts, (unsigned long)kept, (unsigned long)end,
	       (unsigned long)c->acked_in_run, (unsigned long)c->acked_end, (unsigned long)lost,
	       (unsigned long)diverged);
	fflush(stdout);
	cr_assert_eq(lost, 0, "seed %lu: acknowledged records lost or changed",
		     (unsigned long)c->seed);
	cr_assert_eq(diverged, 0, "seed %lu: replicas differ from the leader",
		     (unsigned long)c->seed);
	free(want);
	free(got);
}

static void
campaign_run(uint64_t seed)
{
	struct campaign *c = calloc(1, sizeof(*c));
	uint64_t deadline;

	c->seed = seed;
	seed_rng_init(&c->rng, seed);
	cr_assert_eq(test_dir_make(c->root, sizeof(c->root)), 0);
	for (uint32_t n = 0; n < NODES; n++) {
		snprintf(c->nodes[n].dir, sizeof(c->nodes[n].dir), "%s/n%u", c->root, n);
		node_open(&c->nodes[n]);
	}
	for (uint32_t i = 0; i < NODES; i++) {
		for (uint32_t j = 0; j < NODES; j++) {
			c->proxy[i][j].listen_fd = -1;
			if (i != j)
				proxy_open(&c->proxy[i][j], c->nodes[j].port);
		}
	}
	cr_assert_eq(pthread_create(&c->proxy_thread, NULL, proxy_main, c), 0);
	leader_start(c, (uint32_t)rnd(c, NODES));
	for (uint32_t s = 0; s < STEPS; s++)
		campaign_step(c);

	c->acked_in_run = c->acked_end;
	/* Heal: no more faults; everything reaches every replica. */
	deadline = clock_mono_ns() + WAIT_NS;
	while (!all_caught_up(c)) {
		if (clock_mono_ns() > deadline) {
			uint64_t all = 0;
			uint64_t quorum = 0;

			replica_acked(c->leader, SHARD, REPLICA_ACKS_ALL, &all);
			replica_acked(c->leader, SHARD, REPLICA_ACKS_QUORUM, &quorum);
			cr_assert_fail("seed %lu: replicas never caught up: leader %u, ends %lu %lu %lu, "
				       "all %lu quorum %lu", (unsigned long)c->seed, c->leader_node,
				       (unsigned long)local_end(&c->nodes[0]),
				       (unsigned long)local_end(&c->nodes[1]),
				       (unsigned long)local_end(&c->nodes[2]), (unsigned long)all,
				       (unsigned long)quorum);
		}
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
	note_acked(c);
	campaign_check(c, STEPS);

	replica_leader_stop(c->leader);
	atomic_store(&c->proxy_stop, true);
	pthread_join(c->proxy_thread, NULL);
	for (uint32_t i = 0; i < NODES * NODES; i++) {
		struct proxy *p = &c->proxy[i / NODES][i % NODES];

		if (p->listen_fd < 0)
			continue;
		while (p->pair_count > 0)
			pair_close(p, 0);
		close(p->listen_fd);
	}
	for (uint32_t n = 0; n < NODES; n++)
		node_close(&c->nodes[n]);
	test_dir_remove(c->root);
	free(c);
}

Test(replica_campaign, acknowledged_records_survive_cuts_corruption_restarts_and_failovers,
     .timeout = 600)
{
	uint64_t base = seed_base();

	diag_level_set(getenv("CAMPAIGN_VERBOSE") != NULL ? DIAG_DEBUG : DIAG_ERROR);
	for (uint32_t i = 0; i < CAMPAIGN_SEEDS; i++)
		campaign_run(base + i);
}
