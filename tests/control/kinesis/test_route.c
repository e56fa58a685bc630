/*
 * route: metadata's change events and the route publisher (control/route.c) that
 * follows them into a real dataplane (net_ring0 loopback, --no-huge) over a real log
 * and a real metadata.db.
 *
 * What is asserted: a routing change reaches the dataplane's table because metadata
 * published it (refreshes counted by cause; there is no timer to fall back on);
 * changes that move no route wake nobody; a storm of reshards against a busy
 * publisher costs one read; a reshard's cut publishes before it returns, and a change
 * is read once whether the cut or the route thread gets there first; a table the
 * dataplane refuses leaves the last one in place and is retried until fixed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/hashkey.h"
#include "control/config.h"
#include "control/metadata.h"
#include "control/route.h"
#include "nvme-log/log.h"

/* Splits in the storm: far more than one read's worth. */
#define STORM_SPLITS 40u
/* Shards the storm leaves: the first two, then one closed and two added per split. */
#define STORM_SHARDS (2u + 2u * STORM_SPLITS)
/* A generous bound on any wait (a hang, not a slow machine, reaches it). */
#define WAIT_MS 20000

static struct {
	char dir[256];
	struct log *log;
	struct metadata *md;
	struct route *route;
	struct kinesis_routes routes;
	uint32_t stream_id;
} t;

static void
stream_create(const char *name, uint32_t shard_count, uint32_t *id_out)
{
	struct metadata_shard shards[4];
	struct metadata_stream s = {
		.name = name, .mode = METADATA_PROVISIONED, .retention_hours = 24,
		.created_ms = 1, .shard_count = shard_count, .incarnation = 1,
		.max_record_kib = METADATA_MAX_RECORD_KIB_DEFAULT,
	};

	cr_assert_leq(shard_count, 4);
	for (uint32_t i = 0; i < shard_count; i++)
		shards[i] = (struct metadata_shard){
			.shard_index = i, .start = hashkey_range_start(i, shard_count),
			.end = i + 1 < shard_count ? hashkey_range_start(i + 1, shard_count) - 1 :
						     HASHKEY_MAX,
			.parent = -1, .adjacent_parent = -1, .created_s = 1,
		};
	cr_assert_eq(metadata_stream_create(t.md, &s, shards, NULL, 0), 0);
	*id_out = s.stream_id;
}

/* Splits open shard `index` ([start, end]) at `cut` into shards `next` and `next + 1`. */
static void
split(uint32_t index, hashkey_t start, hashkey_t cut, hashkey_t end, uint32_t next)
{
	const struct metadata_shard added[2] = {
		{ .shard_index = next, .start = start, .end = cut - 1, .parent = index,
		  .adjacent_parent = -1, .created_s = 2 },
		{ .shard_index = next + 1, .start = cut, .end = end, .parent = index,
		  .adjacent_parent = -1, .created_s = 2 },
	};

	cr_assert_eq(metadata_reshard(t.md, t.stream_id, &index, 1, added, 2, next + 2), 0);
}

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct config_errors errors = { .count = 0 };
	struct sluice_config config;
	struct log_config lc;
	char log_dir[300];

	snprintf(t.dir, sizeof(t.dir), "%s/sluice-route-XXXXXX", tmp != NULL ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(t.dir));
	snprintf(log_dir, sizeof(log_dir), "%s/log", t.dir);
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = 8u << 20;
	cr_assert_eq(log_open(&lc, &t.log), 0);
	cr_assert_eq(metadata_open(t.dir, &t.md), 0);
	stream_create("orders", 2, &t.stream_id);

	config_defaults(&config);
	cr_assert_eq(config_set_value(&config, "dataplane", "vdev", "net_ring0", &errors), 0);
	cr_assert_eq(config_set_value(&config, "dataplane", "no_huge", "true", &errors), 0);
	cr_assert_eq(config_set_value(&config, "dataplane", "mbufs", "1023", &errors), 0);
	cr_assert_eq(config_set_value(&config, "dataplane", "ring_size", "256", &errors), 0);
	cr_assert_eq(route_open(&t.route), 0);
	cr_assert_eq(route_dataplane_start(t.route, &config, t.log, t.md, NULL, &t.routes), 0);
}

static void
teardown(void)
{
	char cmd[300];

	route_close(t.route);
	metadata_close(t.md);
	log_close(t.log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t.dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(route, .init = setup, .fini = teardown, .timeout = 60);

/* Waits until `key` of `stream` routes to `want` (a log shard id, or -ENOENT for none). */
static void
wait_route(const char *stream, hashkey_t key, int64_t want)
{
	int64_t got = 0;

	for (int i = 0; i < WAIT_MS; i++) {
		uint64_t shard_id;
		int rc = route_lookup(t.route, stream, key, &shard_id);

		got = rc == 0 ? (int64_t)shard_id : rc;
		if (got == want)
			return;
		usleep(1000);
	}
	cr_assert_fail("%s: routed to %lld, want %lld", stream, (long long)got, (long long)want);
}

static struct route_stats
stats(void)
{
	struct route_stats s;

	route_stats_read(t.route, &s);
	return s;
}

Test(route, a_reshard_reaches_the_table_by_its_event)
{
	hashkey_t half = hashkey_range_start(1, 2);
	hashkey_t quarter = hashkey_range_start(1, 4);
	struct route_stats before = stats();
	struct route_stats after;

	cr_assert_eq(before.refreshes[ROUTE_CAUSE_START], 1);
	cr_assert_eq(before.refreshes[ROUTE_CAUSE_EVENT], 0);
	cr_assert_eq(before.publishes, 1);
	wait_route("orders", 0, (int64_t)LOG_SHARD_ID(t.stream_id, 0));

	split(0, 0, quarter, half - 1, 2);
	wait_route("orders", 0, (int64_t)LOG_SHARD_ID(t.stream_id, 2));
	wait_route("orders", quarter, (int64_t)LOG_SHARD_ID(t.stream_id, 3));
	wait_route("orders", HASHKEY_MAX, (int64_t)LOG_SHARD_ID(t.stream_id, 1));
	after = stats();
	cr_assert_eq(after.refreshes[ROUTE_CAUSE_EVENT], 1, "one change, one wake, one read");
	cr_assert_eq(after.refreshes[ROUTE_CAUSE_CUT], 0);
	cr_assert_eq(after.publishes, 2);
	cr_assert_eq(after.generation, 1, "the table holds the watch's first change");

	/* A new stream and a deletion travel the same way. */
	uint32_t id;

	stream_create("clicks", 1, &id);
	wait_route("clicks", 7, (int64_t)LOG_SHARD_ID(id, 0));
	cr_assert_eq(metadata_stream_deleting(t.md, t.stream_id), 0);
	wait_route("orders", 0, -ENOENT);
	wait_route("clicks", 7, (int64_t)LOG_SHARD_ID(id, 0));
	cr_assert_eq(stats().refreshes[ROUTE_CAUSE_EVENT], 3);
	cr_assert_eq(stats().generation, 3);
}

/* A storm against a held publisher: every change counted, one read, the final table. */
Test(route, a_storm_of_reshards_coalesces_into_one_read)
{
	hashkey_t start = hashkey_range_start(1, 2);
	uint32_t index = 1;
	struct route_stats before = stats();
	struct route_stats after;

	route_hold(t.route);
	for (uint32_t i = 0; i < STORM_SPLITS; i++) {
		hashkey_t cut = start + (HASHKEY_MAX - start) / 2;

		split(index, start, cut, HASHKEY_MAX, 2 + 2 * i);
		index = 3 + 2 * i;
		start = cut;
	}
	route_release(t.route);
	wait_route("orders", HASHKEY_MAX, (int64_t)LOG_SHARD_ID(t.stream_id, STORM_SHARDS - 1));
	wait_route("orders", hashkey_range_start(1, 2),
		   (int64_t)LOG_SHARD_ID(t.stream_id, 2));
	after = stats();
	cr_assert_eq(after.generation, STORM_SPLITS, "every change is counted");
	cr_assert_eq(after.refreshes[ROUTE_CAUSE_EVENT] - before.refreshes[ROUTE_CAUSE_EVENT], 1,
		     "%u reshards while the publisher was busy: one read",
		     STORM_SPLITS);
	cr_assert_eq(after.publishes - before.publishes, 1);
}

/*
 * The closer thread's cut: published by the time sync returns. The route thread may read
 * the change before the cut or not: either way it is read once (the other finds nothing new).
 */
Test(route, a_cut_publishes_before_it_returns_and_reads_a_change_once)
{
	hashkey_t half = hashkey_range_start(1, 2);
	struct route_stats s;
	uint64_t shard_id;

	split(1, half, half + 1000, HASHKEY_MAX, 2);
	cr_assert_eq(t.routes.sync(t.routes.ctx), 0);
	cr_assert_eq(route_lookup(t.route, "orders", HASHKEY_MAX, &shard_id), 0);
	cr_assert_eq(shard_id, LOG_SHARD_ID(t.stream_id, 3));
	s = stats();
	cr_assert_eq(s.refreshes[ROUTE_CAUSE_CUT] + s.refreshes[ROUTE_CAUSE_EVENT], 1,
		     "cut %llu, event %llu", (unsigned long long)s.refreshes[ROUTE_CAUSE_CUT],
		     (unsigned long long)s.refreshes[ROUTE_CAUSE_EVENT]);
	cr_assert_eq(s.generation, 1);
	/* A second cut with nothing new reads nothing. */
	cr_assert_eq(t.routes.sync(t.routes.ctx), 0);
	cr_assert_eq(stats().refreshes[ROUTE_CAUSE_CUT], s.refreshes[ROUTE_CAUSE_CUT]);
	cr_assert_geq(stats().skips, 1);
}

/*
 * A table the dataplane refuses (open shards that overlap: only a damaged store has them)
 * keeps the last table and is retried on the timer, the only one, until a change fixes it.
 */
Test(route, a_failed_publish_keeps_the_table_and_is_retried)
{
	hashkey_t half = hashkey_range_start(1, 2);
	const struct metadata_shard overlap = {
		.shard_index = 2, .start = half, .end = HASHKEY_MAX, .parent = -1,
		.adjacent_parent = -1, .created_s = 2,
	};
	uint32_t one = 1;
	struct route_stats s;

	cr_assert_eq(metadata_reshard(t.md, t.stream_id, NULL, 0, &overlap, 1, 3), 0);
	/* A cut fails too (it reads again after a failure), and leaves the retries running. */
	cr_assert_eq(t.routes.sync(t.routes.ctx), -EINVAL);
	for (int i = 0; i < WAIT_MS && stats().refreshes[ROUTE_CAUSE_RETRY] == 0; i++)
		usleep(1000);
	s = stats();
	cr_assert_geq(s.failures, 2, "the event's read and a retry failed");
	cr_assert_geq(s.refreshes[ROUTE_CAUSE_RETRY], 1);
	cr_assert_eq(s.publishes, 1, "nothing published over the start's table");
	wait_route("orders", HASHKEY_MAX, (int64_t)LOG_SHARD_ID(t.stream_id, 1));
	/* Closing the old shard leaves shard 2 alone on its range: published. */
	cr_assert_eq(metadata_reshard(t.md, t.stream_id, &one, 1, NULL, 0, 3), 0);
	wait_route("orders", HASHKEY_MAX, (int64_t)LOG_SHARD_ID(t.stream_id, 2));
	s = stats();
	cr_assert_eq(s.publishes, 2);
	cr_assert_eq(s.generation, 2);
}

/* ---- metadata's watches alone (the fixture's route watches too) --------------------- */

static bool
readable(const struct metadata_watch *w)
{
	struct pollfd pfd = { .fd = metadata_watch_fd(w), .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;  /* Readiness now, not a wait. */
}

Test(route, watches_see_their_kinds_only)
{
	const struct metadata_tag tag = {
		.key = "k", .key_size = 1, .value = "v", .value_size = 1,
	};
	const int64_t values[1] = { 5 };
	struct metadata_watch *routing;
	struct metadata_watch *closes;
	struct metadata *reader;
	hashkey_t half = hashkey_range_start(1, 2);

	cr_assert_eq(metadata_watch_open(t.md, METADATA_CHANGES_ROUTING, &routing), 0);
	cr_assert_eq(metadata_watch_open(t.md, METADATA_CHANGE_SHARD_CLOSED, &closes), 0);
	cr_assert_not(readable(routing));
	/* Changes that move no route wake no routing watch. */
	cr_assert_eq(metadata_tags_put(t.md, t.stream_id, "", &tag, 1, 50), 0);
	cr_assert_eq(metadata_account_set(t.md, "limits", values, 1), 0);
	cr_assert_eq(metadata_retention_set(t.md, t.stream_id, 48), 0);
	cr_assert_not(readable(routing));
	cr_assert_eq(metadata_watch_take(routing), 0);

	split(0, 0, 1000, half - 1, 2);
	cr_assert(readable(routing));
	cr_assert_not(readable(closes));
	cr_assert_eq(metadata_watch_take(routing), 1);
	cr_assert_not(readable(routing), "taking clears the readiness");
	cr_assert_eq(metadata_shard_closed(t.md, t.stream_id, 0, 17), 0);
	cr_assert(readable(closes));
	cr_assert_not(readable(routing));
	cr_assert_eq(metadata_watch_take(closes), 1);
	cr_assert_eq(metadata_changes(t.md, METADATA_CHANGE_RESHARDED), 1);
	cr_assert_eq(metadata_changes(t.md, METADATA_CHANGE_STREAM_CREATED), 1);

	/* A failed change publishes nothing: the name is taken. */
	{
		struct metadata_stream dup = {
			.name = "orders", .mode = METADATA_PROVISIONED, .retention_hours = 24,
			.shard_count = 0, .max_record_kib = METADATA_MAX_RECORD_KIB_DEFAULT,
		};

		cr_assert_eq(metadata_stream_create(t.md, &dup, NULL, NULL, 0), -EEXIST);
		cr_assert_not(readable(routing));
		cr_assert_eq(metadata_changes(t.md, METADATA_CHANGE_STREAM_CREATED), 1);
	}

	/* A reader sees the writer's commits and shares its events; it cannot write. */
	cr_assert_eq(metadata_open_reader(t.md, &reader), 0);
	cr_assert_eq(metadata_changes(reader, METADATA_CHANGE_RESHARDED), 1);
	cr_assert_neq(metadata_retention_set(reader, t.stream_id, 24), 0);
	metadata_close(reader);

	/* A kick wakes without a change; the table of watches is bounded. */
	metadata_watch_kick(routing);
	cr_assert(readable(routing));
	cr_assert_eq(metadata_watch_take(routing), 1);
	{
		struct metadata_watch *more[METADATA_WATCHES_MAX];
		struct metadata_watch *extra;
		uint32_t n = 0;

		/* The route publisher holds one, these two others. */
		while (n < METADATA_WATCHES_MAX &&
		       metadata_watch_open(t.md, METADATA_CHANGES_ROUTING, &more[n]) == 0)
			n++;
		cr_assert_eq(n, METADATA_WATCHES_MAX - 3);
		cr_assert_eq(metadata_watch_open(t.md, METADATA_CHANGES_ROUTING, &extra), -ENOSPC);
		while (n > 0)
			metadata_watch_close(more[--n]);
	}
	metadata_watch_close(routing);
	metadata_watch_close(closes);
}
