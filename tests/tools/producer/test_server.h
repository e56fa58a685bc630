/*
 * test_server.h - an in-process ingest server for libsluice's tests: a
 * thread with a real UDP or TCP socket on 127.0.0.1 that decodes frames with
 * protocol/frame.h, keeps a dedup window per producer, "stores" records
 * (per-shard sequence numbers) and answers with ACK/NACK frames. Seeded
 * faults: drop, duplicate and reorder datagrams (both ways), throttle, and
 * cut TCP connections mid-frame or before the ACK.
 *
 * Records are identified by their data, which the tests make "rec-<index>"
 * (decimal index < TEST_SERVER_RECORDS_MAX).
 */
#ifndef SLUICE_TEST_SERVER_H
#define SLUICE_TEST_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/frame.h"

#define TEST_SERVER_RECORDS_MAX 20000u
#define TEST_SERVER_SHARDS_MAX 64u
#define TEST_SERVER_PRODUCERS_MAX 4u

struct test_server_config {
	bool tcp;
	uint64_t seed;
	uint32_t shards;             /* 1 .. TEST_SERVER_SHARDS_MAX, equal hash-key ranges. */
	const char *stream_name;     /* The one stream that exists. */
	const struct frame_auth_key *auth_key;   /* Non-NULL: the stream requires it. */
	uint32_t credit_size;        /* Sent in every answer. */
	/* Faults, in percent. */
	uint32_t drop_in_pct;
	uint32_t drop_out_pct;
	uint32_t dup_in_pct;
	uint32_t dup_out_pct;
	uint32_t reorder_pct;        /* UDP: a datagram is held and delivered after the next. */
	uint32_t reorder_out_pct;    /* UDP: an answer is held and sent after the next one. */
	uint32_t corrupt_out_pct;    /* UDP: a copy with one bit flipped goes first. */
	uint32_t throttle_pct;       /* NACK throttled instead of storing. */
	uint32_t wrong_shard_pct;    /* NACK a SHARD_RECORDS frame WRONG_SHARD (a moved map). */
	uint32_t cut_pct;            /* TCP: per read with a partial frame, and per ACK. */
	bool silent;                 /* Never answer (receive and store nothing). */
	uint32_t silent_connections; /* TCP: the first N connections are silent (a hung peer). */
	uint32_t mute_connections;   /* TCP: the first N store frames but never answer. */
	/*
	 * The first N copies of already stored batches get no answer, as an appliance that
	 * drops a copy meeting its first copy being stored does (Sluice did until 2026-12;
	 * that one's answer goes to the connection it came on).
	 */
	uint32_t replays_unanswered;
	/*
	 * The first N copies of already stored batches are NACKed THROTTLED, as the
	 * appliance answers a copy that meets its first copy being stored.
	 */
	uint32_t replays_throttled;
	/*
	 * A forger's server: store nothing, answer every frame with an ACK that claims it
	 * stored, unsigned, or signed with forge_key when set (not the producer's key).
	 */
	bool forge_acks;
	const struct frame_auth_key *forge_key;
	/*
	 * A cluster node leading the even shards only: a SHARD_RECORDS frame for an odd
	 * shard is NACKed not_leader naming 127.0.0.1:redirect_port (another server),
	 * before the dedup check, as the appliance does. 0: off.
	 */
	uint16_t redirect_port;
	uint32_t redirect_max;       /* Redirect only the first N such frames (0: every one):
				      * the leadership came back here. */
	/*
	 * N > 0: the k-th redirect names 127.0.0.(2 + k % N) instead of 127.0.0.1, so
	 * redirects name N distinct nodes, where nothing listens (TCP: refused).
	 */
	uint32_t redirect_spread;
};

struct test_server_record {
	uint32_t stored;             /* Times stored: must be 0 or 1. */
	uint32_t shard_index;
	uint64_t seq;
	uint8_t key[SLUICE_PARTITION_KEY_SIZE_MAX];
	uint16_t key_size;
};

struct test_server_stats {
	uint64_t frames;
	uint64_t batches_stored;
	uint64_t duplicates_answered;  /* Dedup DONE: the original ACK again. */
	uint64_t nacks;
	uint64_t cuts;
	uint64_t cuts_mid_frame;       /* Of which with part of a frame received. */
	uint64_t auth_refused;
	uint64_t grouped_stored;       /* SHARD_RECORDS frames stored. */
	uint64_t wrong_shard;          /* SHARD_RECORDS frames NACKed WRONG_SHARD. */
	uint64_t connections;          /* TCP connections accepted. */
	uint64_t replays_dropped;      /* Of replays_unanswered. */
	uint64_t replays_throttled;    /* Of replays_throttled. */
	uint64_t redirected;           /* NACKed not_leader (redirect_port). */
};

struct test_server;

int test_server_start(const struct test_server_config *config, struct test_server **server_out);
uint16_t test_server_port(const struct test_server *server);
/*
 * Waits until the server has stored `count` records in all (duplicates included); false once
 * `deadline_ms` passed. For acknowledgement modes where the producer learns nothing.
 */
bool test_server_wait_stored(const struct test_server *server, uint32_t count,
			     uint32_t deadline_ms);
/* Stops the thread; records and stats stay readable until test_server_free(). */
void test_server_stop(struct test_server *server);
const struct test_server_record *test_server_record(const struct test_server *server,
						    uint32_t index);
void test_server_stats(const struct test_server *server, struct test_server_stats *stats_out);
void test_server_free(struct test_server *server);

#endif /* SLUICE_TEST_SERVER_H */
