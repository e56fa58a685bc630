/* harness.c - see harness.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/support/seed.h"
#include "tests/tools/producer/harness.h"

struct outcome outcomes[TEST_SERVER_RECORDS_MAX];

void
on_complete(void *user, const struct sluice_result *r)
{
	struct outcome *o = &outcomes[r->tag];

	(void)user;
	cr_assert_lt(r->tag, TEST_SERVER_RECORDS_MAX);
	o->completions++;
	o->err = r->err;
	o->status = r->status;
	o->known = r->position_known;
	o->shard_index = r->shard_index;
	o->seq = r->seq;
}

void
server_config_init(struct test_server_config *sc, bool tcp)
{
	memset(sc, 0, sizeof(*sc));
	sc->tcp = tcp;
	sc->seed = seed_base();
	sc->shards = 4;
	sc->stream_name = STREAM;
	sc->credit_size = FRAME_CREDIT_UNLIMITED;
}

void
producer_config_init(struct sluice_producer_config *pc, struct test_server *server, bool tcp)
{
	sluice_producer_config_default(pc, tcp ? SLUICE_TRANSPORT_TCP : SLUICE_TRANSPORT_UDP);
	pc->host = "127.0.0.1";
	pc->port = test_server_port(server);
	pc->stream_name = STREAM;
	pc->on_complete = on_complete;
	pc->ack_timeout_ms = 20;
	pc->backoff_max_ms = 100;
	pc->retries_max = 200;
	pc->linger_us = 500;
}

void
put_all(struct sluice_producer *p, uint32_t count, uint32_t keys)
{
	memset(outcomes, 0, sizeof(outcomes));
	put_range(p, 0, count, keys);
}

void
put_range(struct sluice_producer *p, uint32_t first, uint32_t count, uint32_t keys)
{
	for (uint32_t i = first; i < first + count; i++) {
		char key[32];
		char data[32];
		int key_size = snprintf(key, sizeof(key), "key-%u", i % keys);
		int data_size = snprintf(data, sizeof(data), "rec-%u", i);
		int rc;

		while ((rc = sluice_producer_put(p, key, (uint16_t)key_size, data,
						 (uint32_t)data_size, NULL, i)) == -EAGAIN)
			cr_assert_geq(sluice_producer_poll(p, 10), 0);
		cr_assert_eq(rc, 0, "put %u: %d", i, rc);
	}
}

void
verify(struct test_server *server, uint32_t count, uint32_t keys, bool positions_required)
{
	uint64_t seed = seed_base();

	for (uint32_t i = 0; i < count; i++) {
		const struct test_server_record *rec = test_server_record(server, i);
		const struct outcome *o = &outcomes[i];

		cr_assert_eq(o->completions, 1, "record %u completed %u times (seed %lu)", i,
			     o->completions, (unsigned long)seed);
		cr_assert_leq(rec->stored, 1, "record %u stored twice (seed %lu)", i,
			      (unsigned long)seed);
		if (o->err != 0)
			continue;
		cr_assert_eq(rec->stored, 1, "record %u acked, never stored", i);
		if (positions_required)
			cr_assert(o->known, "record %u: no position (seed %lu)", i,
				  (unsigned long)seed);
		if (o->known) {
			cr_assert_eq(o->shard_index, rec->shard_index, "record %u shard", i);
			cr_assert_eq(o->seq, rec->seq, "record %u seq (seed %lu)", i,
				     (unsigned long)seed);
		}
	}
	/* Same key, same shard, and put order = sequence order. */
	for (uint32_t i = keys; i < count; i++) {
		const struct test_server_record *a = test_server_record(server, i - keys);
		const struct test_server_record *b = test_server_record(server, i);

		if (a->stored && b->stored) {
			cr_assert_eq(a->shard_index, b->shard_index);
			cr_assert_lt(a->seq, b->seq, "key order broken at record %u (seed %lu)", i,
				     (unsigned long)seed);
		}
	}
}
