/*
 * etcd: the client against a real etcd (Debian etcd-server, started by the
 * test on free loopback ports in a temp directory, stopped by PID): KV with
 * revisions and binary values, prefixes, compare-and-swap transactions,
 * leases, elections with an epoch that grows across leaders, endpoint
 * failover (a put whose connection broke after sending not repeated on the next
 * member), and the errors of an unreachable or wrong store.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "etcd_fixture.h"

static struct etcd_client *client;

static void
etcd_start(void)
{
	etcd_fixture_start();
	cr_assert_eq(etcd_open(etcd_endpoint, 2000, &client), 0);
}

static void
etcd_stop(void)
{
	etcd_close(client);
	client = NULL;
	etcd_fixture_stop();
}

TestSuite(etcd, .init = etcd_start, .fini = etcd_stop, .timeout = 60);

Test(etcd, put_get_prefix_delete_with_revisions_and_binary_values)
{
	static const uint8_t binary[] = { 0, 1, 0xff, '"', '\\', 0 };
	struct etcd_range r;
	int64_t rev1;
	int64_t rev2;
	int64_t deleted;

	cr_assert_eq(etcd_put(client, "sluice/shards/1", binary, sizeof(binary), 0, &rev1), 0);
	cr_assert_eq(etcd_put(client, "sluice/shards/2", "two", 3, 0, &rev2), 0);
	cr_assert_eq(etcd_put(client, "sluice/shards0", "outside", 7, 0, NULL), 0);
	cr_assert_gt(rev2, rev1);

	cr_assert_eq(etcd_get(client, "sluice/shards/1", false, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	cr_assert_str_eq(r.kvs[0].key, "sluice/shards/1");
	cr_assert_eq(r.kvs[0].value_size, sizeof(binary));
	cr_assert_arr_eq(r.kvs[0].value, binary, sizeof(binary));
	cr_assert_eq(r.kvs[0].mod_revision, rev1);
	cr_assert_eq(r.kvs[0].version, 1);
	cr_assert_geq(r.revision, rev2);
	etcd_range_free(&r);

	cr_assert_eq(etcd_get(client, "sluice/shards/", true, 0, &r), 0);
	cr_assert_eq(r.count, 2, "the prefix stops before sluice/shards0");
	etcd_range_free(&r);
	cr_assert_eq(etcd_get(client, "sluice/shards/", true, 1, &r), 0);
	cr_assert_eq(r.count, 1);
	cr_assert(r.more);
	etcd_range_free(&r);
	cr_assert_eq(etcd_get(client, "nosuch", false, 0, &r), 0);
	cr_assert_eq(r.count, 0, "an absent key: no kvs (proto3 omits them)");
	etcd_range_free(&r);

	cr_assert_eq(etcd_delete(client, "sluice/shards/", true, &deleted), 0);
	cr_assert_eq(deleted, 2);
	cr_assert_eq(etcd_get(client, "", true, 0, &r), 0);
	cr_assert_eq(r.count, 1, "only sluice/shards0 is left of every key");
	etcd_range_free(&r);
}

Test(etcd, txn_creates_once_and_swaps_only_the_revision_it_read)
{
	struct etcd_compare absent = {
		.key = "sluice/controller", .target = ETCD_TARGET_VERSION, .result = ETCD_EQUAL,
		.number = 0,
	};
	struct etcd_op put_a = { .kind = ETCD_OP_PUT, .key = "sluice/controller", .value = "a",
				 .value_size = 1 };
	struct etcd_op put_b = { .kind = ETCD_OP_PUT, .key = "sluice/controller", .value = "b",
				 .value_size = 1 };
	struct etcd_range r;
	bool ok;
	int64_t rev;
	int64_t rev_after;

	cr_assert_eq(etcd_txn(client, &absent, 1, &put_a, 1, NULL, 0, &ok, &rev), 0);
	cr_assert(ok);
	cr_assert_eq(etcd_txn(client, &absent, 1, &put_b, 1, NULL, 0, &ok, NULL), 0);
	cr_assert_not(ok, "created once");

	/* Compare-and-swap on mod_revision: the first writer wins, a stale one fails. */
	struct etcd_compare same = {
		.key = "sluice/controller", .target = ETCD_TARGET_MOD, .result = ETCD_EQUAL,
		.number = rev,
	};
	cr_assert_eq(etcd_txn(client, &same, 1, &put_b, 1, NULL, 0, &ok, &rev_after), 0);
	cr_assert(ok);
	cr_assert_gt(rev_after, rev);
	cr_assert_eq(etcd_txn(client, &same, 1, &put_a, 1, NULL, 0, &ok, NULL), 0);
	cr_assert_not(ok, "a stale revision loses");
	cr_assert_eq(etcd_get(client, "sluice/controller", false, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	cr_assert_arr_eq(r.kvs[0].value, "b", 1);
	etcd_range_free(&r);

	/* A value compare, and a failure branch that deletes. */
	struct etcd_compare is_a = {
		.key = "sluice/controller", .target = ETCD_TARGET_VALUE, .result = ETCD_EQUAL,
		.value = "a", .value_size = 1,
	};
	struct etcd_op del = { .kind = ETCD_OP_DELETE, .key = "sluice/controller" };
	cr_assert_eq(etcd_txn(client, &is_a, 1, NULL, 0, &del, 1, &ok, NULL), 0);
	cr_assert_not(ok);
	cr_assert_eq(etcd_get(client, "sluice/controller", false, 0, &r), 0);
	cr_assert_eq(r.count, 0, "the failure branch ran");
	etcd_range_free(&r);

	struct etcd_op many[ETCD_TXN_OPS_MAX + 1];
	cr_assert_eq(etcd_txn(client, NULL, 0, many, ETCD_TXN_OPS_MAX + 1, NULL, 0, &ok, NULL),
		     -EINVAL);
}

Test(etcd, leases_keep_and_revoke_their_keys)
{
	int64_t id;
	int64_t ttl;
	struct etcd_range r;

	cr_assert_eq(etcd_lease_grant(client, 1, &id, &ttl), 0);
	cr_assert_neq(id, 0);
	cr_assert_geq(ttl, 1);
	cr_assert_eq(etcd_put(client, "sluice/nodes/n1", "up", 2, id, NULL), 0);
	/* Renewing by id proves it came back exact (ids use 64 bits: no double may carry them). */
	cr_assert_eq(etcd_lease_keepalive(client, id, &ttl), 0);
	cr_assert_geq(ttl, 1);
	cr_assert_eq(etcd_get(client, "sluice/nodes/n1", false, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.kvs[0].lease, id);
	etcd_range_free(&r);

	cr_assert_eq(etcd_lease_revoke(client, id), 0);
	cr_assert_eq(etcd_get(client, "sluice/nodes/n1", false, 0, &r), 0);
	cr_assert_eq(r.count, 0, "revoking the lease removed its key");
	etcd_range_free(&r);
	cr_assert_eq(etcd_lease_keepalive(client, id, &ttl), -ENOENT);
	cr_assert_eq(etcd_lease_revoke(client, id), -ENOENT);
	cr_assert_eq(etcd_put(client, "sluice/nodes/n2", "x", 1, id, NULL), -ENOENT);
	cr_assert_eq(etcd_lease_grant(client, 0, &id, &ttl), -EINVAL);
}

Test(etcd, one_leader_at_a_time_and_the_epoch_grows)
{
	struct etcd_client *other;
	struct etcd_leader a;
	struct etcd_leader b;
	struct etcd_leader seen;
	int64_t lease_a;
	int64_t lease_b;
	int64_t ttl;

	cr_assert_eq(etcd_open(etcd_endpoint, 2000, &other), 0);
	cr_assert_eq(etcd_leader(client, "sluice/elect/controller", &seen), -ENOENT);
	cr_assert_eq(etcd_lease_grant(client, 10, &lease_a, &ttl), 0);
	cr_assert_eq(etcd_lease_grant(other, 10, &lease_b, &ttl), 0);
	cr_assert_eq(etcd_campaign(client, "sluice/elect/controller", lease_a, "node-a", 6, 5000,
				   &a), 0);
	cr_assert_eq(etcd_leader(other, "sluice/elect/controller", &seen), 0);
	cr_assert_eq(seen.value_size, 6);
	cr_assert_arr_eq(seen.value, "node-a", 6);
	cr_assert_eq(seen.rev, a.rev);
	cr_assert_str_eq(seen.key, a.key);

	/* B waits while A leads, and gives up at its deadline. */
	cr_assert_eq(etcd_campaign(other, "sluice/elect/controller", lease_b, "node-b", 6, 300,
				   &b), -ETIMEDOUT);
	cr_assert_eq(etcd_resign(client, &a), 0);
	cr_assert_eq(etcd_campaign(other, "sluice/elect/controller", lease_b, "node-b", 6, 5000,
				   &b), 0);
	cr_assert_gt(b.rev, a.rev, "the next leader's epoch is greater: a fencing token");
	cr_assert_eq(etcd_leader(client, "sluice/elect/controller", &seen), 0);
	cr_assert_arr_eq(seen.value, "node-b", 6);
	/* A leader whose lease is gone is no leader. */
	cr_assert_eq(etcd_lease_revoke(other, lease_b), 0);
	cr_assert_eq(etcd_leader(client, "sluice/elect/controller", &seen), -ENOENT);
	etcd_close(other);
}

Test(etcd, moves_to_a_live_endpoint_and_names_what_is_wrong)
{
	char both[160];
	struct etcd_client *c;
	struct etcd_range r;
	uint16_t dead = etcd_fixture_free_port();

	uint64_t failovers = etcd_failovers();

	snprintf(both, sizeof(both), "http://127.0.0.1:%u,%s", dead, etcd_endpoint);
	cr_assert_eq(etcd_open(both, 2000, &c), 0);
	cr_assert_eq(etcd_put(c, "k", "v", 1, 0, NULL), 0, "the second endpoint answered");
	cr_assert_eq(etcd_failovers(), failovers + 1, "the move counted");
	cr_assert_str_eq(etcd_current_endpoint(c), etcd_endpoint);
	cr_assert_eq(etcd_get(c, "k", false, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	etcd_range_free(&r);
	cr_assert_eq(etcd_failovers(), failovers + 1, "the client stays on the one that answered");
	etcd_close(c);

	/* A stalled member (connections accepted, nothing answered): the call times out and
	 * the next goes to the next endpoint, without repeating the timed-out one. */
	snprintf(both, sizeof(both), "%s,http://127.0.0.1:%u", etcd_endpoint, dead);
	cr_assert_eq(etcd_open(both, 300, &c), 0);
	cr_assert_eq(etcd_put(c, "k", "v", 1, 0, NULL), 0);
	etcd_fixture_signal(SIGSTOP);
	cr_assert_eq(etcd_get(c, "k", false, 0, &r), -ETIMEDOUT);
	etcd_fixture_signal(SIGCONT);
	cr_assert_neq(strcmp(etcd_current_endpoint(c), etcd_endpoint), 0, "moved on");
	cr_assert_eq(etcd_get(c, "k", false, 0, &r), 0, "the dead one refused, back to the live one");
	etcd_range_free(&r);
	cr_assert_str_eq(etcd_current_endpoint(c), etcd_endpoint);
	etcd_close(c);

	snprintf(both, sizeof(both), "http://127.0.0.1:%u", dead);
	cr_assert_eq(etcd_open(both, 2000, &c), 0);
	cr_assert_eq(etcd_put(c, "k", "v", 1, 0, NULL), -ECONNREFUSED);
	etcd_close(c);

	cr_assert_eq(etcd_open("", 1000, &c), -EINVAL);
	cr_assert_eq(etcd_open("127.0.0.1:2379", 1000, &c), -EINVAL, "a scheme is required");
	cr_assert_eq(etcd_open("http://a:1,", 1000, &c), -EINVAL);
	cr_assert_eq(etcd_open("http://a:1", 0, &c), -EINVAL);

	/* A request over etcd's 1.5 MiB limit. */
	size_t big = ETCD_REQUEST_SIZE_MAX + 1024;
	char *value = calloc(1, big);

	cr_assert_not_null(value);
	cr_assert_eq(etcd_put(client, "big", value, big, 0, NULL), -E2BIG);
	free(value);
}

/* Waits up to `seconds` for the watch's next events or its end; fails the test when neither comes. */
static int
watch_wait_s(struct etcd_watch *w, const struct etcd_event **events, uint64_t seconds)
{
	uint64_t deadline = clock_mono_ns() + seconds * 1000000000ull;
	int n;

	while ((n = etcd_watch_next(w, 200, events)) == 0)
		cr_assert_lt(clock_mono_ns(), deadline, "the watch neither delivered nor ended");
	return n;
}

static int
watch_wait(struct etcd_watch *w, const struct etcd_event **events)
{
	return watch_wait_s(w, events, 10);
}

/* A stalled member as the kernel shows it: connections complete (the backlog), nothing answers. */
static int
stalled_listener(uint16_t *port_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port_out = ntohs(a.sin_port);
	return fd;
}

/* A member that takes the request and closes the connection without answering. */
struct closer {
	int fd;
	uint16_t port;
	pthread_t thread;
	size_t got;       /* The request's bytes it read. */
};

static void *
closer_main(void *arg)
{
	struct closer *cl = arg;
	char req[4096];
	char *head_end = NULL;
	int fd = accept(cl->fd, NULL, NULL);

	cr_assert_geq(fd, 0);
	/* The head, then the JSON body to its closing brace: the request whole. */
	while (cl->got < sizeof(req) - 1 && (head_end == NULL || strchr(head_end, '}') == NULL)) {
		ssize_t n = read(fd, req + cl->got, sizeof(req) - 1 - cl->got);

		if (n <= 0)
			break;
		cl->got += (size_t)n;
		req[cl->got] = '\0';
		head_end = strstr(req, "\r\n\r\n");
	}
	close(fd);
	return NULL;
}

Test(etcd, a_put_whose_connection_broke_after_sending_is_not_repeated_on_the_next_member)
{
	char both[160];
	struct etcd_client *c;
	struct etcd_range r;
	struct closer cl = { .got = 0 };
	uint64_t failovers = etcd_failovers();

	cl.fd = stalled_listener(&cl.port);
	cr_assert_eq(pthread_create(&cl.thread, NULL, closer_main, &cl), 0);
	snprintf(both, sizeof(both), "http://127.0.0.1:%u,%s", cl.port, etcd_endpoint);
	cr_assert_eq(etcd_open(both, 5000, &c), 0);
	cr_assert_eq(etcd_put(c, "broken-put", "v", 1, 0, NULL), -ECONNRESET,
		     "the error, not the next member's answer");
	pthread_join(cl.thread, NULL);
	cr_assert_gt(cl.got, 0, "the first member took the request");
	cr_assert_eq(etcd_get(client, "broken-put", false, 0, &r), 0);
	cr_assert_eq(r.count, 0, "the put was not sent to the second member");
	etcd_range_free(&r);
	cr_assert_eq(etcd_failovers(), failovers + 1, "the next call moves on (counted)");
	cr_assert_str_eq(etcd_current_endpoint(c), etcd_endpoint);
	cr_assert_eq(etcd_put(c, "broken-put", "v", 1, 0, NULL), 0, "the caller's retry lands");
	cr_assert_eq(etcd_get(client, "broken-put", false, 0, &r), 0);
	cr_assert_eq(r.count, 1);
	etcd_range_free(&r);
	etcd_close(c);
	close(cl.fd);
}

/* The watch's next events or end, waiting up to 60 s (its own deadlines are seconds). */
static int
watch_wait_long(struct etcd_watch *w, const struct etcd_event **events)
{
	return watch_wait_s(w, events, 60);
}

Test(etcd, a_stopped_member_is_left_by_a_watch_being_created_and_one_created, .timeout = 120)
{
	char list[160];
	struct etcd_watch *w;
	const struct etcd_event *ev;
	uint16_t port;
	int stalled = stalled_listener(&port);
	uint64_t failovers = etcd_failovers();
	int64_t rev;

	/* Not created in time on the stalled one: the next endpoint takes it, nothing skipped. */
	cr_assert_eq(etcd_put(client, "st/a", "1", 1, 0, &rev), 0);
	snprintf(list, sizeof(list), "http://127.0.0.1:%u,%s", port, etcd_endpoint);
	cr_assert_eq(etcd_watch_open(list, "st/", true, rev, &w), 0);
	cr_assert_eq(watch_wait_long(w, &ev), 1);
	cr_assert_eq(ev[0].kv.mod_revision, rev);
	cr_assert_eq(etcd_failovers(), failovers + 1);
	etcd_watch_close(w);

	/* Only the stalled one: the watch ends instead of waiting for ever. */
	snprintf(list, sizeof(list), "http://127.0.0.1:%u", port);
	cr_assert_eq(etcd_watch_open(list, "st/", true, 0, &w), 0);
	cr_assert_eq(watch_wait_long(w, &ev), -ECONNRESET);
	etcd_watch_close(w);
	close(stalled);

	/* Created, quiet (its member answers the probes), then the member stopped: it ends. */
	cr_assert_eq(etcd_watch_open(etcd_endpoint, "st/", true, rev, &w), 0);
	cr_assert_eq(watch_wait_long(w, &ev), 1);
	cr_assert_eq(etcd_watch_next(w, 4000, &ev), 0, "a quiet stream whose member answers");
	etcd_fixture_signal(SIGSTOP);
	cr_assert_eq(watch_wait_long(w, &ev), -ECONNRESET);
	etcd_fixture_signal(SIGCONT);
	etcd_watch_close(w);
}

Test(etcd, a_watch_opens_on_the_next_endpoint_when_one_is_down)
{
	char list[160];
	struct etcd_watch *w;
	const struct etcd_event *ev;
	uint16_t dead = etcd_fixture_free_port();
	uint16_t dead2 = etcd_fixture_free_port();
	uint64_t failovers = etcd_failovers();
	int64_t rev;

	snprintf(list, sizeof(list), "http://127.0.0.1:%u,%s", dead, etcd_endpoint);
	cr_assert_eq(etcd_watch_open(list, "fo/", true, 0, &w), 0);
	/* Created on the live member (not seen here: wait for a put to come through). */
	cr_assert_eq(etcd_put(client, "fo/a", "1", 1, 0, &rev), 0);
	while (etcd_watch_next(w, 200, &ev) == 0)
		cr_assert_eq(etcd_put(client, "fo/a", "1", 1, 0, &rev), 0);
	cr_assert_str_eq(ev[0].kv.key, "fo/a");
	cr_assert_eq(etcd_failovers(), failovers + 1);
	etcd_watch_close(w);

	/* From a revision, through the dead one: nothing skipped. */
	cr_assert_eq(etcd_watch_open(list, "fo/", true, rev, &w), 0);
	cr_assert_eq(watch_wait(w, &ev), 1);
	cr_assert_eq(ev[0].kv.mod_revision, rev);
	etcd_watch_close(w);

	/* Every endpoint down: the stream's end, after each was asked once. */
	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u", dead, dead2);
	failovers = etcd_failovers();
	cr_assert_eq(etcd_watch_open(list, "fo/", true, 0, &w), 0);
	cr_assert_eq(watch_wait(w, &ev), -ECONNRESET);
	cr_assert_eq(etcd_failovers(), failovers + 1, "two endpoints: one move");
	etcd_watch_close(w);
}

Test(etcd, watch_sees_puts_and_deletes_in_order_and_replays_from_a_revision)
{
	struct etcd_watch *w;
	struct etcd_watch *replay;
	const struct etcd_event *ev;
	int64_t first;
	int64_t last;
	int64_t deleted;
	uint32_t seen = 0;
	int n;

	cr_assert_eq(etcd_watch_open(etcd_endpoint, "sluice/streams/", true, 0, &w), 0);
	/* Nothing yet: a timeout, not an error. */
	cr_assert_eq(etcd_watch_next(w, 100, &ev), 0);
	cr_assert_eq(etcd_put(client, "sluice/streams/a", "1", 1, 0, &first), 0);
	cr_assert_eq(etcd_put(client, "sluice/other", "x", 1, 0, NULL), 0);
	cr_assert_eq(etcd_put(client, "sluice/streams/b", "2", 1, 0, NULL), 0);
	cr_assert_eq(etcd_delete(client, "sluice/streams/a", false, &deleted), 0);
	cr_assert_eq(etcd_put(client, "sluice/streams/b", "3", 1, 0, &last), 0);
	while (seen < 4) {
		n = watch_wait(w, &ev);
		for (int i = 0; i < n; i++, seen++) {
			static const char *const keys[] = { "sluice/streams/a", "sluice/streams/b",
							     "sluice/streams/a", "sluice/streams/b" };

			cr_assert_str_eq(ev[i].kv.key, keys[seen], "event %u", seen);
			cr_assert_eq(ev[i].deleted, seen == 2);
			if (seen == 0)
				cr_assert_eq(ev[i].kv.mod_revision, first);
			if (seen == 3) {
				cr_assert_eq(ev[i].kv.mod_revision, last);
				cr_assert_arr_eq(ev[i].kv.value, "3", 1);
			}
		}
	}
	cr_assert_eq(seen, 4, "sluice/other is outside the prefix");
	etcd_watch_close(w);

	/* From a past revision the history is replayed, then compaction ends that. */
	cr_assert_eq(etcd_watch_open(etcd_endpoint, "sluice/streams/", true, first, &replay), 0);
	n = watch_wait(replay, &ev);
	cr_assert_str_eq(ev[0].kv.key, "sluice/streams/a");
	cr_assert_eq(ev[0].kv.mod_revision, first);
	etcd_watch_close(replay);
	cr_assert_eq(etcd_compact(client, last), 0);
	cr_assert_eq(etcd_watch_open(etcd_endpoint, "sluice/streams/", true, first, &replay), 0);
	cr_assert_eq(watch_wait(replay, &ev), -ERANGE, "a compacted start revision");
	etcd_watch_close(replay);
}
