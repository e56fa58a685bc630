/*
 * producer_errors: libsluice's failure paths and limits against the test
 * server: refusals (unknown stream, authentication), fencing by a newer
 * epoch, timeouts, back-pressure with bounded memory, close with records in
 * flight, ack modes, explicit hash keys and argument validation. Every
 * record is still completed exactly once.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "tests/tools/producer/harness.h"

static struct test_server *
server_start(struct test_server_config *sc)
{
	struct test_server *server;

	cr_assert_eq(test_server_start(sc, &server), 0);
	return server;
}

static void
expect_all(uint32_t first, uint32_t count, int err)
{
	for (uint32_t i = first; i < first + count; i++) {
		cr_assert_eq(outcomes[i].completions, 1, "record %u", i);
		cr_assert_eq(outcomes[i].err, err, "record %u: err %d, want %d", i, outcomes[i].err,
			     err);
	}
}

/* Short timeouts and 3 sends per batch: for servers that never answer usefully. */
static void
retries_short(struct sluice_producer_config *pc)
{
	pc->ack_timeout_ms = 5;
	pc->backoff_max_ms = 10;
	pc->retries_max = 3;
}

static void
expect_none_stored(struct test_server *server, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(test_server_record(server, i)->stored, 0, "record %u", i);
}

Test(producer_errors, unknown_stream_fails_every_record)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;

	server_config_init(&sc, false);
	sc.stream_name = "other";
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 100, 7);
	cr_assert_eq(sluice_producer_flush(p, 5000), 0);
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 100, -ENOENT);
	cr_assert_eq(outcomes[0].status, FRAME_STATUS_UNKNOWN_STREAM);
	expect_none_stored(server, 100);
	test_server_free(server);
}

static const struct frame_auth_key good_key = {
	.key_id = 3, .key_size = 32, .key = "this-is-the-producer-key-0123456",
};

static void
auth_run(bool tcp, const struct frame_auth_key *key, int want)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;

	server_config_init(&sc, tcp);
	sc.auth_key = &good_key;
	server = server_start(&sc);
	producer_config_init(&pc, server, tcp);
	pc.auth_key = key;
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 200, 11);
	cr_assert_eq(sluice_producer_flush(p, 5000), 0);
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 200, want);
	if (want == 0)
		verify(server, 200, 11, true);
	else
		expect_none_stored(server, 200);
	test_server_free(server);
}

Test(producer_errors, auth_right_key_wrong_key_no_key)
{
	struct frame_auth_key wrong = good_key;

	wrong.key[5] ^= 1;
	auth_run(false, &good_key, 0);
	auth_run(true, &good_key, 0);
	auth_run(false, &wrong, -EACCES);
	auth_run(false, NULL, -EACCES);
	cr_assert_eq(outcomes[0].status, FRAME_STATUS_AUTH_FAILED);
}

/*
 * Section 7: a signing producer takes only answers signed with its key. A forger's ACKs
 * (unsigned, or signed with another key) claiming every batch stored are ignored and
 * counted, and no record is reported stored: the batches run out of retries instead.
 */
Test(producer_errors, ignores_forged_acks_when_signing)
{
	const struct frame_auth_key forger = { .key_id = 3, .key_size = 32,
					       .key = "not-the-producer-key-89abcdef012" };
	const struct frame_auth_key *forge_keys[2] = { NULL, &forger };

	for (int i = 0; i < 2; i++) {
		struct test_server_config sc;
		struct sluice_producer_config pc;
		struct sluice_producer_stats stats;
		struct sluice_producer *p;
		struct test_server *server;

		server_config_init(&sc, i == 1);
		sc.forge_acks = true;
		sc.forge_key = forge_keys[i];
		server = server_start(&sc);
		producer_config_init(&pc, server, i == 1);
		pc.auth_key = &good_key;
		retries_short(&pc);
		/* TCP resends nothing on a live connection: the delivery deadline ends it. */
		pc.delivery_timeout_ms = 500;
		cr_assert_eq(sluice_producer_open(&pc, &p), 0);
		put_all(p, 40, 5);
		cr_assert_eq(sluice_producer_flush(p, 10000), 0);
		sluice_producer_stats(p, &stats);
		cr_assert_geq(stats.answers_forged, stats.batches_sent, "every forgery counted");
		cr_assert_eq(stats.acks_received, 0, "no forged ACK used");
		sluice_producer_close(p);
		test_server_stop(server);
		expect_all(0, 40, -ETIMEDOUT);
		expect_none_stored(server, 40);
		test_server_free(server);
	}
}

Test(producer_errors, newer_epoch_fences_the_older_producer)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *old;
	struct sluice_producer *new;
	struct test_server *server;

	server_config_init(&sc, false);
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	pc.producer_id = 0xFEED;
	pc.producer_epoch = 1;
	cr_assert_eq(sluice_producer_open(&pc, &old), 0);
	pc.producer_epoch = 2;
	cr_assert_eq(sluice_producer_open(&pc, &new), 0);

	put_all(old, 10, 3);
	cr_assert_eq(sluice_producer_flush(old, 5000), 0);
	put_range(new, 10, 10, 3);
	cr_assert_eq(sluice_producer_flush(new, 5000), 0);
	put_range(old, 20, 10, 3);
	cr_assert_eq(sluice_producer_flush(old, 5000), 0);
	expect_all(0, 20, 0);
	expect_all(20, 10, -ESTALE);
	cr_assert_eq(sluice_producer_put(old, "k", 1, "rec-30", 6, NULL, 30), -ESTALE);
	sluice_producer_close(old);
	sluice_producer_close(new);
	test_server_stop(server);
	test_server_free(server);
}

Test(producer_errors, silent_server_times_out_every_record)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct sluice_producer_stats stats;
	struct test_server *server;

	server_config_init(&sc, false);
	sc.silent = true;
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	retries_short(&pc);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 50, 5);
	cr_assert_eq(sluice_producer_flush(p, 5000), 0);
	sluice_producer_stats(p, &stats);
	cr_assert_eq(stats.batches_resent, 2 * stats.batches_sent, "3 sends per batch");
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 50, -ETIMEDOUT);
	test_server_free(server);
}

/*
 * Over TCP the appliance answers every frame it took, so a silent but live connection
 * gets no copies: with no retry limit (the default) each record fails -ETIMEDOUT at its
 * delivery deadline, never before it (a lower bound: load can only lengthen the wait),
 * and nothing was resent. Over UDP the same deadline ends resends that did happen.
 */
static void
deadline_run(bool tcp, struct sluice_producer_stats *stats)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;
	uint64_t put_done_ns;

	server_config_init(&sc, tcp);
	sc.silent = true;
	server = server_start(&sc);
	producer_config_init(&pc, server, tcp);
	pc.retries_max = 0;
	pc.delivery_timeout_ms = 1000;    /* UDP: room for several resends, even on a busy host. */
	pc.silence_timeout_ms = 600000;    /* Never reached: the deadline comes first. */
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 50, 5);
	put_done_ns = clock_mono_ns();
	cr_assert_eq(sluice_producer_flush(p, 30000), 0);
	cr_assert_geq(clock_mono_ns() - put_done_ns, 1000 * 1000000ull,
		      "no record failed before its deadline");
	sluice_producer_stats(p, stats);
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 50, -ETIMEDOUT);
	test_server_free(server);
}

Test(producer_errors, delivery_deadline_fails_records_and_tcp_resends_nothing_live)
{
	struct sluice_producer_stats stats;

	deadline_run(true, &stats);
	cr_assert_gt(stats.batches_sent, 0);
	cr_assert_eq(stats.batches_resent, 0, "no copy on a live connection");
	cr_assert_eq(stats.connects, 1);
	cr_assert_eq(stats.connections_silent, 0);
	deadline_run(false, &stats);
	cr_assert_gt(stats.batches_resent, 0, "UDP resends on its ack timeout");
}

/*
 * A hung appliance: the first two connections take frames and never answer. Each is
 * declared dead after silence_timeout_ms, replaced, and the batches in flight resent
 * on the new one; the third answers, and every record is stored exactly once.
 */
Test(producer_errors, tcp_silent_connection_is_replaced_and_its_batches_resent)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer_stats stats;
	struct test_server_stats server_stats;
	struct sluice_producer *p;
	struct test_server *server;

	server_config_init(&sc, true);
	sc.silent_connections = 2;
	server = server_start(&sc);
	producer_config_init(&pc, server, true);
	pc.retries_max = 0;
	pc.silence_timeout_ms = 1000;
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 500, 17);
	cr_assert_eq(sluice_producer_flush(p, 60000), 0);
	sluice_producer_stats(p, &stats);
	sluice_producer_close(p);
	test_server_stop(server);
	test_server_stats(server, &server_stats);
	expect_all(0, 500, 0);
	verify(server, 500, 17, true);
	/* A loaded machine may make the good connection look silent too: at least two. */
	cr_assert_geq(stats.connections_silent, 2);
	cr_assert_eq(stats.connects, stats.connections_silent + 1);
	cr_assert_eq(server_stats.connections, stats.connects);
	cr_assert_gt(stats.batches_resent, 0, "resent on the new connections");
	test_server_free(server);
}

/* Puts record `tag` ("rec-<tag>") under `key`, polling while its lane is full. */
static void
put_keyed(struct sluice_producer *p, const char *key, uint32_t tag)
{
	char data[32];
	int size = snprintf(data, sizeof(data), "rec-%u", tag);
	int rc;

	while ((rc = sluice_producer_put(p, key, (uint16_t)strlen(key), data, (uint32_t)size,
					 NULL, tag)) == -EAGAIN)
		cr_assert_geq(sluice_producer_poll(p, 10), 0);
	cr_assert_eq(rc, 0);
}

/*
 * A server whose first TCP connection stores but never answers, and a producer of
 * `lanes` lanes, one record a batch, that replaces a connection silent for 1 s.
 */
static struct test_server *
mute_first_connection(struct test_server_config *sc, struct sluice_producer_config *pc,
		      uint32_t lanes, struct sluice_producer **p_out)
{
	struct test_server *server;

	sc->mute_connections = 1;
	server = server_start(sc);
	producer_config_init(pc, server, true);
	pc->lanes = lanes;
	pc->batch_records_max = 1;
	pc->retries_max = 0;
	pc->silence_timeout_ms = 1000;
	cr_assert_eq(sluice_producer_open(pc, p_out), 0);
	return server;
}

/*
 * A batch stored on a connection that went silent (its answer lost with it) is resent
 * on the new one and meets an appliance that drops a copy of a batch "being stored" (as
 * Sluice did until 2026-12; the next test has today's THROTTLED answer): no answer
 * there either. The other lane's answers keep the new connection alive only
 * until the seq window stops new batches (8 seqs past the stranded one); then the
 * connection goes quiet, is replaced, and the batch is answered from the dedup window
 * (a replayed ACK), long before its delivery deadline (120 s, past this test's bound);
 * every record stored once.
 */
Test(producer_errors, tcp_answer_lost_with_its_connection_comes_after_the_next_silence)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer_stats stats;
	struct test_server_stats server_stats;
	struct sluice_producer *p;
	struct test_server *server;
	uint64_t bound_ns = clock_mono_ns() + 60 * 1000000000ull;  /* Only bounds a hang. */
	const char *first = "key-0";
	char other[32];
	uint32_t tag = 1;

	server_config_init(&sc, true);
	sc.replays_unanswered = 1;
	server = mute_first_connection(&sc, &pc, 2, &p);
	/* A key of the other lane (lane = crc32c(key) % lanes). */
	for (uint32_t k = 1;; k++) {
		snprintf(other, sizeof(other), "key-%u", k);
		if (crc32c(0, other, strlen(other)) % 2 != crc32c(0, first, strlen(first)) % 2)
			break;
	}
	memset(outcomes, 0, sizeof(outcomes));
	put_keyed(p, first, 0);
	do {    /* Connected and written ... */
		cr_assert_lt(clock_mono_ns(), bound_ns, "never written");
		cr_assert_geq(sluice_producer_poll(p, 10), 0);
		sluice_producer_stats(p, &stats);
	} while (stats.connects == 0 || sluice_producer_wants_write(p));
	/* ... and stored on the mute connection; not polling, the producer cannot give up. */
	cr_assert(test_server_wait_stored(server, 1, 30000));
	do {    /* Silence, a new connection, the resend meets its stored copy: dropped. */
		cr_assert_lt(clock_mono_ns(), bound_ns, "no reconnect");
		cr_assert_geq(sluice_producer_poll(p, 10), 0);
		sluice_producer_stats(p, &stats);
	} while (stats.connects < 2);
	while (outcomes[0].completions == 0) {  /* The other lane keeps the connection busy. */
		cr_assert_lt(clock_mono_ns(), bound_ns, "record 0 never answered");
		cr_assert_lt(tag, TEST_SERVER_RECORDS_MAX);
		put_keyed(p, other, tag++);
		cr_assert_geq(sluice_producer_poll(p, 5), 0);
	}
	cr_assert_eq(sluice_producer_flush(p, 30000), 0);
	sluice_producer_stats(p, &stats);
	sluice_producer_close(p);
	test_server_stop(server);
	test_server_stats(server, &server_stats);
	expect_all(0, tag, 0);
	cr_assert_eq(server_stats.replays_dropped, 1, "the copy that met its first copy");
	for (uint32_t i = 0; i < tag; i++)
		cr_assert_eq(test_server_record(server, i)->stored, 1, "record %u", i);
	cr_assert_geq(stats.acks_duplicate, 1, "record 0 answered from the window");
	cr_assert_geq(stats.connections_silent, 2, "the mute one, then the one it was dropped on");
	test_server_free(server);
}

/*
 * As the appliance does since it answers such a copy: the batch stored on a connection
 * that went silent is resent on the new one, meets its first copy "being stored" and is
 * NACKed THROTTLED (three times here); libsluice resends it on the same connection after
 * the hint and is answered from the dedup window. No second silence: the only silent
 * connection is the mute one, and the record is stored once.
 */
Test(producer_errors, tcp_copy_throttled_while_stored_is_answered_on_the_new_connection)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer_stats stats;
	struct test_server_stats server_stats;
	struct sluice_producer *p;
	struct test_server *server;
	uint64_t bound_ns = clock_mono_ns() + 60 * 1000000000ull;  /* Only bounds a hang. */

	server_config_init(&sc, true);
	sc.replays_throttled = 3;
	server = mute_first_connection(&sc, &pc, 1, &p);
	memset(outcomes, 0, sizeof(outcomes));
	put_keyed(p, "key-0", 0);
	while (outcomes[0].completions == 0) {
		cr_assert_lt(clock_mono_ns(), bound_ns, "record 0 never answered");
		cr_assert_geq(sluice_producer_poll(p, 10), 0);
	}
	sluice_producer_stats(p, &stats);
	sluice_producer_close(p);
	test_server_stop(server);
	test_server_stats(server, &server_stats);
	expect_all(0, 1, 0);
	cr_assert_eq(test_server_record(server, 0)->stored, 1);
	cr_assert_eq(server_stats.replays_throttled, 3, "the copies that met their first copy");
	cr_assert_geq(stats.nacks_received, 3);
	cr_assert_eq(stats.acks_duplicate, 1, "answered from the window");
	cr_assert_eq(stats.connections_silent, 1, "only the mute connection");
	test_server_free(server);
}

/* With no answers, put() stops at 2 batches per lane, and close cancels them all. */
Test(producer_errors, backpressure_bounds_memory_and_close_cancels)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;
	uint32_t accepted = 0;

	server_config_init(&sc, true);
	sc.silent = true;
	server = server_start(&sc);
	producer_config_init(&pc, server, true);
	pc.lanes = 2;
	pc.batch_records_max = 10;
	pc.retries_max = 1000;
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	memset(outcomes, 0, sizeof(outcomes));
	for (uint32_t i = 0; i < 1000; i++) {
		char data[16];
		int n = snprintf(data, sizeof(data), "rec-%u", i);
		int rc = sluice_producer_put(p, data, (uint16_t)n, data, (uint32_t)n, NULL, i);

		if (rc == -EAGAIN) {
			sluice_producer_poll(p, 1);
			continue;
		}
		cr_assert_eq(rc, 0);
		accepted++;
	}
	cr_assert_leq(accepted, 2 * 2 * 10, "accepted %u", accepted);
	cr_assert_geq(accepted, 2 * 10);
	cr_assert_eq(sluice_producer_flush(p, 50), -ETIMEDOUT);
	sluice_producer_close(p);
	test_server_stop(server);
	for (uint32_t i = 0; i < 1000; i++)
		cr_assert_leq(outcomes[i].completions, 1);
	uint32_t cancelled = 0;

	for (uint32_t i = 0; i < 1000; i++)
		if (outcomes[i].completions == 1) {
			cr_assert_eq(outcomes[i].err, -ECANCELED);
			cancelled++;
		}
	cr_assert_eq(cancelled, accepted);
	test_server_free(server);
}

static void
ack_mode_run(uint8_t ack_mode)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;

	server_config_init(&sc, false);
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	pc.ack_mode = ack_mode;
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 300, 13);
	cr_assert_eq(sluice_producer_flush(p, 5000), 0);
	sluice_producer_close(p);
	/* Mode NONE answers nothing: wait until the server has read all that was sent. */
	cr_assert(test_server_wait_stored(server, 300, 20000), "not all 300 records arrived");
	test_server_stop(server);
	expect_all(0, 300, 0);
	for (uint32_t i = 0; i < 300; i++)
		cr_assert_not(outcomes[i].known);
	verify(server, 300, 13, false);
	for (uint32_t i = 0; i < 300; i++)
		cr_assert_eq(test_server_record(server, i)->stored, 1);
	test_server_free(server);
}

Test(producer_errors, ack_modes_received_and_none)
{
	ack_mode_run(FRAME_ACK_RECEIVED);
	ack_mode_run(FRAME_ACK_NONE);
}

Test(producer_errors, credit_zero_still_progresses_one_batch_at_a_time)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;

	server_config_init(&sc, false);
	sc.credit_size = 0;
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	put_all(p, 500, 17);
	cr_assert_eq(sluice_producer_flush(p, 10000), 0);
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 500, 0);
	verify(server, 500, 17, true);
	test_server_free(server);
}

Test(producer_errors, explicit_hash_key_routes)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;
	uint8_t high[16];
	uint8_t low[16] = { 0 };

	memset(high, 0xFF, sizeof(high));
	server_config_init(&sc, false);
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	memset(outcomes, 0, sizeof(outcomes));
	cr_assert_eq(sluice_producer_put(p, "a", 1, "rec-0", 5, high, 0), 0);
	cr_assert_eq(sluice_producer_put(p, "a", 1, "rec-1", 5, low, 1), 0);
	cr_assert_eq(sluice_producer_flush(p, 5000), 0);
	sluice_producer_close(p);
	test_server_stop(server);
	cr_assert_eq(outcomes[0].shard_index, 3);
	cr_assert_eq(outcomes[1].shard_index, 0);
	test_server_free(server);
}

Test(producer_errors, refuses_bad_configs_and_records)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;
	static uint8_t big[2000];
	struct frame_auth_key short_key = { .key_id = 1, .key_size = 15 };

	server_config_init(&sc, false);
	server = server_start(&sc);
	producer_config_init(&pc, server, false);
	pc.lanes = 0;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	pc.lanes = FRAME_DEDUP_WINDOW + 1;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.batch_records_max = FRAME_RECORDS_MAX + 1;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.batch_size_max = 65508;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.stream_name = "no spaces";
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.on_complete = NULL;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.auth_key = &short_key;
	cr_assert_eq(sluice_producer_open(&pc, &p), -EINVAL);
	producer_config_init(&pc, server, false);
	pc.host = "no-such-host.invalid";
	cr_assert_eq(sluice_producer_open(&pc, &p), -ENOENT);

	producer_config_init(&pc, server, false);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	cr_assert_eq(sluice_producer_put(p, "", 0, "x", 1, NULL, 0), -EINVAL);
	cr_assert_eq(sluice_producer_put(p, big, 257, "x", 1, NULL, 0), -EINVAL);
	cr_assert_eq(sluice_producer_put(p, "\xff", 1, "x", 1, NULL, 0), -EINVAL);
	cr_assert_eq(sluice_producer_put(p, "k", 1, big, sizeof(big), NULL, 0), -EMSGSIZE,
		     "UDP: one datagram");
	sluice_producer_close(p);
	test_server_stop(server);
	test_server_free(server);
}

/* A caller with its own event loop: waits on fd/timeout itself, polls with 0. */
static void
own_loop_run(bool tcp)
{
	struct test_server_config sc;
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct sluice_producer_stats stats;
	struct test_server *server;
	int rounds = 0;

	server_config_init(&sc, tcp);
	server = server_start(&sc);
	producer_config_init(&pc, server, tcp);
	cr_assert_eq(sluice_producer_open(&pc, &p), 0);
	memset(outcomes, 0, sizeof(outcomes));
	for (uint32_t i = 0; i < 500; i++) {
		char data[16];
		int n = snprintf(data, sizeof(data), "rec-%u", i);

		while (sluice_producer_put(p, data, (uint16_t)n, data, (uint32_t)n, NULL, i) ==
		       -EAGAIN)
			cr_assert_geq(sluice_producer_poll(p, 0), 0);
	}
	do {
		struct pollfd pfd = { .fd = sluice_producer_fd(p), .events = POLLIN };

		if (sluice_producer_wants_write(p))
			pfd.events |= POLLOUT;
		poll(&pfd, 1, sluice_producer_timeout_ms(p));
		cr_assert_geq(sluice_producer_poll(p, 0), 0);
		sluice_producer_stats(p, &stats);
		cr_assert_lt(++rounds, 100000, "no progress");
	} while (stats.records_outstanding > 0);
	sluice_producer_close(p);
	test_server_stop(server);
	expect_all(0, 500, 0);
	verify(server, 500, 500, true);
	test_server_free(server);
}

Test(producer_errors, own_event_loop_polling_with_zero)
{
	own_loop_run(false);
	own_loop_run(true);
}
