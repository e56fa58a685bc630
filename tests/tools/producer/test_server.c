/* test_server.c - see test_server.h. One thread; the test reads results after stop. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/hashkey.h"
#include "tests/support/seed.h"
#include "tests/tools/producer/test_server.h"

#define RX_SIZE (FRAME_SIZE_MAX + 65536u)

struct test_server {
	struct test_server_config config;
	char stream_name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	struct frame_auth_key key;
	int fd;
	int conn;
	uint16_t port;
	pthread_t thread;
	atomic_bool stop;
	_Atomic uint32_t records_stored;  /* Release per record: test_server_wait_stored(). */
	struct seed_rng rng;
	struct frame_dedup dedup[TEST_SERVER_PRODUCERS_MAX];
	uint32_t dedup_count;
	uint64_t shard_next[TEST_SERVER_SHARDS_MAX];
	struct test_server_stats stats;
	struct test_server_record records[TEST_SERVER_RECORDS_MAX];
	struct frame_ack_run runs[FRAME_RECORDS_MAX];
	uint8_t answer[FRAME_ACK_SIZE_MAX];
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t held[65536];
	size_t held_size;
	struct sockaddr_storage held_peer;
	socklen_t held_peer_len;
	uint8_t held_answer[FRAME_ACK_SIZE_MAX];
	size_t held_answer_size;
	struct sockaddr_storage held_answer_peer;
	socklen_t held_answer_peer_len;
	size_t rx_size;
	uint8_t rx[RX_SIZE];
};

static bool
roll(struct test_server *s, uint32_t pct)
{
	return pct > 0 && seed_rng_below(&s->rng, 100) < pct;
}

static struct frame_dedup *
dedup_for(struct test_server *s, uint64_t producer_id)
{
	for (uint32_t i = 0; i < s->dedup_count; i++)
		if (s->dedup[i].producer_id == producer_id)
			return &s->dedup[i];
	assert(s->dedup_count < TEST_SERVER_PRODUCERS_MAX);
	frame_dedup_init(&s->dedup[s->dedup_count], producer_id);
	return &s->dedup[s->dedup_count++];
}

static int
answer_nack(struct test_server *s, const struct frame_records *rec, uint8_t status)
{
	struct frame_ack nack;

	frame_ack_prepare(&nack, rec, FRAME_TYPE_NACK, status, s->config.credit_size);
	nack.retry_after_ms = status == FRAME_STATUS_THROTTLED ? 1 : 0;
	nack.sign_key = rec->verified_key;
	nack.sign_time_ms = clock_real_ns() / 1000000u;
	s->stats.nacks++;
	return frame_ack_encode(s->answer, sizeof(s->answer), &nack, false);
}

/* not_leader: the odd shards are led by the server on redirect_port. */
static int
answer_redirect(struct test_server *s, const struct frame_records *rec)
{
	struct frame_ack nack;

	frame_ack_prepare(&nack, rec, FRAME_TYPE_NACK, FRAME_STATUS_NOT_LEADER,
			  s->config.credit_size);
	nack.redirect = (struct frame_redirect){
		.shard_index = rec->shard_index, .family = 4, .port = s->config.redirect_port,
		.addr = { 127, 0, 0, 1 },
	};
	if (s->config.redirect_spread != 0)
		nack.redirect.addr[3] = (uint8_t)(2 + s->stats.redirected % s->config.redirect_spread);
	nack.sign_key = rec->verified_key;
	nack.sign_time_ms = clock_real_ns() / 1000000u;
	s->stats.redirected++;
	s->stats.nacks++;
	return frame_ack_encode(s->answer, sizeof(s->answer), &nack, false);
}

static uint32_t
record_index_of(const struct frame_record *r)
{
	uint32_t index = 0;

	assert(r->data_size > 4 && memcmp(r->data, "rec-", 4) == 0);
	for (uint32_t i = 4; i < r->data_size && r->data[i] >= '0' && r->data[i] <= '9'; i++)
		index = index * 10 + (uint32_t)(r->data[i] - '0');
	assert(index < TEST_SERVER_RECORDS_MAX);
	return index;
}

/* Stores every record of the batch and fills `ack` (runs in s->runs). */
static void
batch_store(struct test_server *s, const struct frame_records *rec, struct frame_ack *ack)
{
	struct frame_record_iter iter;
	struct frame_record r;
	uint16_t run_count = 0;

	frame_record_iter_init(&iter, rec);
	while (frame_record_iter_next(&iter, &r)) {
		hashkey_t hk = r.hash_key != NULL ? hashkey_from_be_bytes(r.hash_key) :
						    hashkey_from_partition_key(r.key, r.key_size);

		/* The producer's MD5 must be the one the appliance would compute. */
		assert(r.hash_kind != FRAME_HASH_MD5 ||
		       hk == hashkey_from_partition_key(r.key, r.key_size));
		/* Equal ranges of the hash-key space, as a new Kinesis stream has. */
		uint32_t shard = (uint32_t)(((uint64_t)(hk >> 96) * s->config.shards) >> 32);

		/* A grouped frame's records all lie in its shard (the appliance checks it). */
		assert(!rec->shard_grouped || shard == rec->shard_index);
		uint64_t seq = s->shard_next[shard]++;
		struct test_server_record *stored = &s->records[record_index_of(&r)];

		stored->stored++;
		stored->shard_index = shard;
		stored->seq = seq;
		memcpy(stored->key, r.key, r.key_size);
		stored->key_size = r.key_size;
		frame_ack_run_add(s->runs, &run_count, shard, seq);
		atomic_fetch_add_explicit(&s->records_stored, 1, memory_order_release);
	}
	s->stats.batches_stored++;
	s->stats.grouped_stored += rec->shard_grouped;
	frame_ack_prepare(ack, rec, FRAME_TYPE_ACK, FRAME_STATUS_OK, s->config.credit_size);
	if (frame_records_ack_mode(rec) == FRAME_ACK_DURABLE) {
		ack->run_count = run_count;
		ack->runs = s->runs;
	}
}

/* forge_acks: "stored", one run at shard 0, signed with forge_key or not at all. */
static int
answer_forged(struct test_server *s, const struct frame_records *rec)
{
	struct frame_ack_run run = { .seq_first = 0, .shard_index = 0, .count = rec->record_count };
	struct frame_ack ack;

	frame_ack_prepare(&ack, rec, FRAME_TYPE_ACK, FRAME_STATUS_OK, s->config.credit_size);
	if (frame_records_ack_mode(rec) == FRAME_ACK_DURABLE) {
		ack.run_count = 1;
		ack.runs = &run;
	}
	ack.sign_key = s->config.forge_key;
	ack.sign_time_ms = clock_real_ns() / 1000000u;
	return frame_ack_encode(s->answer, sizeof(s->answer), &ack, false);
}

/* Handles one RECORDS frame; returns the answer's size in s->answer, or 0 for none. */
static int
frame_handle(struct test_server *s, const uint8_t *bytes, uint32_t size)
{
	struct frame_records rec;
	enum frame_err err = frame_records_decode(bytes, size, &rec);
	const struct frame_dedup_entry *entry;
	struct frame_dedup *d;
	struct frame_ack ack;

	s->stats.frames++;
	if (err != FRAME_OK)
		return rec.identity_valid ? answer_nack(s, &rec, (uint8_t)frame_err_status(err)) : 0;
	if (s->config.forge_acks)
		return answer_forged(s, &rec);
	if (s->config.auth_key != NULL &&
	    frame_auth_verify(bytes, size, &s->key, clock_real_ns() / 1000000u, 30000) != FRAME_OK) {
		s->stats.auth_refused++;
		return answer_nack(s, &rec, FRAME_STATUS_AUTH_FAILED);
	}
	/* Answers to a verified frame are signed with its key, as the appliance does. */
	if (s->config.auth_key != NULL)
		rec.verified_key = &s->key;
	if (rec.stream_name_size != strlen(s->stream_name) ||
	    memcmp(rec.stream_name, s->stream_name, rec.stream_name_size) != 0)
		return answer_nack(s, &rec, FRAME_STATUS_UNKNOWN_STREAM);
	if (s->config.redirect_port != 0 && rec.shard_grouped && rec.shard_index % 2 == 1 &&
	    (s->config.redirect_max == 0 || s->stats.redirected < s->config.redirect_max))
		return answer_redirect(s, &rec);
	d = dedup_for(s, rec.producer_id);
	switch (frame_dedup_check(d, rec.producer_epoch, rec.batch_seq, &entry)) {
	case FRAME_DEDUP_NEW:
		break;
	case FRAME_DEDUP_DONE:
		if (s->stats.replays_dropped < s->config.replays_unanswered) {
			s->stats.replays_dropped++;
			return 0;
		}
		if (s->stats.replays_throttled < s->config.replays_throttled) {
			s->stats.replays_throttled++;
			return answer_nack(s, &rec, FRAME_STATUS_THROTTLED);
		}
		s->stats.duplicates_answered++;
		if (frame_records_ack_mode(&rec) == FRAME_ACK_NONE)
			return 0;
		frame_dedup_ack(d, entry, s->config.credit_size, &ack);
		ack.sign_key = rec.verified_key;
		ack.sign_time_ms = clock_real_ns() / 1000000u;
		return frame_ack_encode(s->answer, sizeof(s->answer), &ack, false);
	case FRAME_DEDUP_PENDING:
		return 0;
	case FRAME_DEDUP_STALE_EPOCH:
		return answer_nack(s, &rec, FRAME_STATUS_STALE_EPOCH);
	case FRAME_DEDUP_TOO_OLD:
		return answer_nack(s, &rec, FRAME_STATUS_SEQUENCE_OLD);
	}
	if (rec.shard_grouped && roll(s, s->config.wrong_shard_pct)) {
		frame_dedup_abort(d, rec.producer_epoch, rec.batch_seq);
		s->stats.wrong_shard++;
		return answer_nack(s, &rec, FRAME_STATUS_WRONG_SHARD);
	}
	if (roll(s, s->config.throttle_pct)) {
		frame_dedup_abort(d, rec.producer_epoch, rec.batch_seq);
		return answer_nack(s, &rec, FRAME_STATUS_THROTTLED);
	}
	batch_store(s, &rec, &ack);
	if (frame_records_ack_mode(&rec) == FRAME_ACK_NONE) {
		ack.flags = FRAME_ACK_RECEIVED;   /* Remembered as stored; never answered. */
		frame_dedup_complete(d, rec.producer_epoch, &ack);
		return 0;
	}
	frame_dedup_complete(d, rec.producer_epoch, &ack);
	ack.sign_key = rec.verified_key;
	ack.sign_time_ms = clock_real_ns() / 1000000u;
	return frame_ack_encode(s->answer, sizeof(s->answer), &ack, false);
}

static void
udp_answer_held_flush(struct test_server *s)
{
	if (s->held_answer_size == 0)
		return;
	sendto(s->fd, s->held_answer, s->held_answer_size, 0,
	       (struct sockaddr *)&s->held_answer_peer, s->held_answer_peer_len);
	s->held_answer_size = 0;
}

static void
udp_answer(struct test_server *s, int size)
{
	assert(size >= 0);
	if (size == 0 || roll(s, s->config.drop_out_pct))
		return;
	if (s->held_answer_size == 0 && roll(s, s->config.reorder_out_pct)) {
		memcpy(s->held_answer, s->answer, (size_t)size);
		s->held_answer_size = (size_t)size;
		s->held_answer_peer = s->peer;
		s->held_answer_peer_len = s->peer_len;
		return;
	}
	if (roll(s, s->config.corrupt_out_pct)) {
		uint8_t bad[FRAME_ACK_SIZE_MAX];
		uint64_t bit = seed_rng_below(&s->rng, (uint64_t)size * 8);

		memcpy(bad, s->answer, (size_t)size);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		sendto(s->fd, bad, (size_t)size, 0, (struct sockaddr *)&s->peer, s->peer_len);
	}
	sendto(s->fd, s->answer, (size_t)size, 0, (struct sockaddr *)&s->peer, s->peer_len);
	if (roll(s, s->config.dup_out_pct))
		sendto(s->fd, s->answer, (size_t)size, 0, (struct sockaddr *)&s->peer, s->peer_len);
	udp_answer_held_flush(s);
}

static void
udp_datagram(struct test_server *s, const uint8_t *bytes, size_t size)
{
	size_t off = 0;
	uint32_t frame_size;
	uint32_t need;

	while (off < size && frame_next(bytes + off, size - off, &frame_size, &need) == FRAME_OK) {
		udp_answer(s, frame_handle(s, bytes + off, frame_size));
		off += frame_size;
	}
}

static void
udp_loop(struct test_server *s)
{
	static _Thread_local uint8_t buf[65536];

	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 5) <= 0) {
			udp_answer_held_flush(s);
			if (s->held_size > 0) {     /* Nothing came after it: deliver it late. */
				s->peer = s->held_peer;
				s->peer_len = s->held_peer_len;
				udp_datagram(s, s->held, s->held_size);
				s->held_size = 0;
			}
			continue;
		}
		s->peer_len = sizeof(s->peer);
		n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&s->peer, &s->peer_len);
		if (n <= 0 || roll(s, s->config.drop_in_pct) || s->config.silent)
			continue;
		if (s->held_size == 0 && roll(s, s->config.reorder_pct)) {
			memcpy(s->held, buf, (size_t)n);
			s->held_size = (size_t)n;
			s->held_peer = s->peer;
			s->held_peer_len = s->peer_len;
			continue;
		}
		udp_datagram(s, buf, (size_t)n);
		if (roll(s, s->config.dup_in_pct))
			udp_datagram(s, buf, (size_t)n);
		if (s->held_size > 0) {
			udp_datagram(s, s->held, s->held_size);
			s->held_size = 0;
		}
	}
}

static void
tcp_cut(struct test_server *s)
{
	close(s->conn);
	s->conn = -1;
	s->rx_size = 0;
	s->stats.cuts++;
}

/* Handles every whole frame in the connection's buffer. */
static void
tcp_frames(struct test_server *s)
{
	size_t off = 0;

	while (s->conn >= 0) {
		uint32_t frame_size;
		uint32_t need;
		enum frame_err err = frame_next(s->rx + off, s->rx_size - off, &frame_size, &need);
		int size;

		if (err == FRAME_ERR_TRUNCATED)
			break;
		if (err != FRAME_OK) {
			tcp_cut(s);
			return;
		}
		size = frame_handle(s, s->rx + off, frame_size);
		off += frame_size;
		if (s->stats.connections <= s->config.mute_connections)
			size = 0;       /* Stored, but the answer never comes. */
		if (size > 0 && roll(s, s->config.cut_pct)) {
			tcp_cut(s);     /* Stored (maybe), but the ACK is lost with the connection. */
			return;
		}
		if (size > 0 && send(s->conn, s->answer, (size_t)size, MSG_NOSIGNAL) != size) {
			tcp_cut(s);
			return;
		}
	}
	memmove(s->rx, s->rx + off, s->rx_size - off);
	s->rx_size -= off;
	if (s->rx_size > 0 && roll(s, s->config.cut_pct)) {
		s->stats.cuts_mid_frame++;
		tcp_cut(s);             /* Mid-frame: the producer must resend it whole. */
	}
}

/* One connection at a time: a new one (the producer reconnecting) replaces the old. */
static void
tcp_accept(struct test_server *s)
{
	int fd = accept(s->fd, NULL, NULL);

	if (fd < 0)
		return;
	if (s->conn >= 0)
		tcp_cut(s);
	s->conn = fd;
	s->stats.connections++;
	s->rx_size = 0;
}

static void
tcp_loop(struct test_server *s)
{
	while (!atomic_load(&s->stop)) {
		struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLIN },
					 { .fd = s->conn, .events = POLLIN } };
		ssize_t n;

		if (poll(pfd, 2, 5) <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			tcp_accept(s);
			continue;
		}
		if (s->conn < 0 || (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
			continue;
		/* Small random reads: frames arrive in pieces, as over a real network. */
		n = recv(s->conn, s->rx + s->rx_size,
			 (size_t)min_u64(RX_SIZE - s->rx_size, 1 + seed_rng_below(&s->rng, 512)), 0);
		if (n <= 0) {
			close(s->conn);
			s->conn = -1;
			continue;
		}
		if (s->config.silent || s->stats.connections <= s->config.silent_connections)
			continue;
		s->rx_size += (size_t)n;
		tcp_frames(s);
	}
}

static void *
server_main(void *arg)
{
	struct test_server *s = arg;

	if (s->config.tcp)
		tcp_loop(s);
	else
		udp_loop(s);
	return NULL;
}

int
test_server_start(const struct test_server_config *config, struct test_server **server_out)
{
	struct test_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int one = 1;

	assert(s != NULL);
	assert(config->shards >= 1 && config->shards <= TEST_SERVER_SHARDS_MAX);
	s->config = *config;
	strcpy(s->stream_name, config->stream_name);
	if (config->auth_key != NULL)
		s->key = *config->auth_key;
	seed_rng_init(&s->rng, config->seed);
	s->conn = -1;
	s->fd = socket(AF_INET, config->tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	assert(s->fd >= 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		return -errno;
	if (config->tcp && listen(s->fd, 8) != 0)
		return -errno;
	getsockname(s->fd, (struct sockaddr *)&addr, &len);
	s->port = ntohs(addr.sin_port);
	if (pthread_create(&s->thread, NULL, server_main, s) != 0)
		return -EAGAIN;
	*server_out = s;
	return 0;
}

uint16_t
test_server_port(const struct test_server *s)
{
	return s->port;
}

void
test_server_stop(struct test_server *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	if (s->conn >= 0)
		close(s->conn);
	close(s->fd);
	s->conn = -1;
}

bool
test_server_wait_stored(const struct test_server *s, uint32_t count, uint32_t deadline_ms)
{
	uint64_t end_ns = clock_mono_ns() + deadline_ms * 1000000ull;

	while (atomic_load_explicit(&s->records_stored, memory_order_acquire) < count) {
		if (clock_mono_ns() >= end_ns)
			return false;
		usleep(1000);
	}
	return true;
}

const struct test_server_record *
test_server_record(const struct test_server *s, uint32_t index)
{
	assert(index < TEST_SERVER_RECORDS_MAX);
	return &s->records[index];
}

void
test_server_stats(const struct test_server *s, struct test_server_stats *stats_out)
{
	*stats_out = s->stats;
}

void
test_server_free(struct test_server *s)
{
	free(s);
}
