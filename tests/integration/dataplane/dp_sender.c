/*
 * dp_sender - a small UDP or TCP producer for the dataplane integration tests,
 * built on the record-frame codec: sends --records random records in frames
 * of --per-frame, at most FRAME_DEDUP_WINDOW batches unacknowledged, and
 * waits for every durable ACK. Writes the ledger "<shard> <seq> <key> <data>"
 * per record, in send order.
 *   UDP: a batch is retransmitted (same bytes, same batch_seq) after -r RTO_MS
 *   without an answer or after a retryable NACK.
 *   TCP (-T): the stream is reliable, so a batch is resent only after a
 *   retryable NACK or on a new connection: when the connection breaks (RST,
 *   EOF) the sender reconnects with the same producer id and resends every
 *   unacknowledged batch, which the dedup window must answer without storing
 *   twice. -C N cuts the connection itself every N acknowledged batches: it
 *   sends a full window, reads (and discards) the answers of every batch in
 *   flight, so they are stored, then resets the connection (RST, SO_LINGER 0);
 *   their resends after the reconnect must come back as DUPLICATE ACKs. -R
 *   reconnects from the same local port (the same 4-tuple: the same worker).
 * --ping N first sends N ICMP echo requests (raw socket) and needs N replies.
 * -L PORT sends UDP from that port (tests steer flows to AF_XDP ports by it).
 *
 * UDP frames travel over a wire (dp_sender_wire.h): a UDP socket (dp_sender_udp.c,
 * in dp_sender) or a DPDK device it drives itself (dp_sender_dpdk.c, -D VDEV -F
 * PREFIX, in dp_sender_dpdk: a memif client). TCP uses a socket of its own.
 *
 * Exit: 0 all acknowledged, 1 failure or timeout, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "protocol/frame.h"
#include "tests/integration/dataplane/dp_sender_wire.h"

#define PER_FRAME_MAX 32u         /* UDP: a frame fits one datagram. */
#define PER_FRAME_TCP_MAX 500u    /* TCP: the protocol's limit. */
#define UDP_FRAME_CAP (1500u - 28u - 14u)
#define RX_BUF_SIZE (64u * 1024u)
#define KEY_MAX 24u
#define DATA_MAX 96u

struct batch {
	uint8_t *frame;
	uint32_t frame_size;
	uint32_t first;            /* Index of its first record. */
	uint16_t count;
	uint64_t sent_ns;          /* 0: not sent yet (or to be resent: TCP). */
	uint64_t retry_at_ns;      /* TCP: a retryable NACK asked to wait until then. */
	bool acked;
	bool answer_dropped;       /* TCP: its ACK was read and dropped before a cut. */
};

struct rec {
	char key[KEY_MAX + 1];
	char data[DATA_MAX + 1];
	uint32_t shard;
	uint64_t seq;
};

struct sender {
	int fd;
	bool tcp;
	struct sockaddr_in dst;
	uint32_t cut_every;        /* TCP: reset the connection every N acked batches. */
	bool same_port;            /* TCP: reconnect from the same local port (-R). */
	uint16_t local_port_be;    /* The first connection's. */
	uint32_t frame_cap;
	uint8_t *rx;               /* TCP: answer bytes not yet a whole frame. */
	uint32_t rx_size;
	uint64_t producer_id;
	uint64_t rng;
	uint32_t records;
	uint32_t per_frame;
	uint32_t rto_ms;
	const char *stream;
	struct frame_auth_key key;   /* key_size 0: frames are not signed. */
	uint32_t batch_count;
	struct batch *batches;
	struct rec *recs;
	uint64_t retransmits;
	uint64_t duplicates;
	uint64_t nacks;
	uint64_t reconnects;
	uint64_t cuts;
};

static uint64_t
next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void
random_text(uint64_t *rng, char *out, uint32_t min, uint32_t max)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint32_t size = min + (uint32_t)(next_rand(rng) % (max - min + 1));

	for (uint32_t i = 0; i < size; i++)
		out[i] = alphabet[next_rand(rng) % (sizeof(alphabet) - 1)];
	out[size] = '\0';
}

static int
build_batch(struct sender *s, uint32_t index)
{
	struct batch *b = &s->batches[index];
	struct frame_batch_params p = {
		.producer_id = s->producer_id,
		.batch_seq = index + 1,
		.producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE,
		.auth = s->key.key_size != 0,
		.stream_name = s->stream,
		.stream_name_size = (uint8_t)strlen(s->stream),
	};
	struct frame_writer w;
	int size;

	b->frame = malloc(s->frame_cap);
	if (b->frame == NULL || frame_writer_begin(&w, b->frame, s->frame_cap, &p) != 0)
		return -1;
	b->first = index * s->per_frame;
	b->count = (uint16_t)(s->records - b->first < s->per_frame ? s->records - b->first :
							      s->per_frame);
	for (uint32_t i = 0; i < b->count; i++) {
		struct rec *r = &s->recs[b->first + i];
		struct frame_record fr = {
			.key = (const uint8_t *)r->key,
			.key_size = (uint16_t)strlen(r->key),
			.data = (const uint8_t *)r->data,
			.data_size = (uint32_t)strlen(r->data),
			.hash_kind = FRAME_HASH_NONE,
		};

		if (frame_writer_add(&w, &fr) != 0)
			return -1;
	}
	size = frame_writer_finish(&w);
	if (size <= 0)
		return -1;
	if (s->key.key_size != 0)
		frame_auth_sign(b->frame, (uint32_t)size, &s->key, clock_real_ns() / 1000000u);
	b->frame_size = (uint32_t)size;
	return 0;
}

/* TCP: the whole frame, or -1 when the connection broke. */
static int
send_all(int fd, const uint8_t *bytes, uint32_t size)
{
	while (size > 0) {
		ssize_t n = send(fd, bytes, size, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		bytes += n;
		size -= (uint32_t)n;
	}
	return 0;
}

/* 0, or -1 when a TCP connection broke (the caller reconnects). */
static int
send_batch(struct sender *s, uint32_t index)
{
	struct batch *b = &s->batches[index];

	if (!s->tcp && b->sent_ns != 0)
		s->retransmits++;
	b->sent_ns = clock_mono_ns();
	if (s->tcp)
		return send_all(s->fd, b->frame, b->frame_size);
	wire_send(b->frame, (uint16_t)b->frame_size); /* UDP: best effort, resent on timeout. */
	return 0;
}

static bool
send_due(const struct sender *s, const struct batch *b, uint64_t now)
{
	if (b->acked)
		return false;
	if (s->tcp) /* The stream is reliable: only NACKs and reconnects resend. */
		return b->sent_ns == 0 && now >= b->retry_at_ns;
	return b->sent_ns == 0 || now - b->sent_ns > (uint64_t)s->rto_ms * 1000000u;
}

/* Applies one answer; returns 1 when it acknowledged a batch, -1 on a fatal NACK. */
static int
on_answer(struct sender *s, const uint8_t *buf, size_t size)
{
	struct frame_ack ack;
	struct frame_ack_run run;
	struct batch *b;
	uint32_t record;

	if (frame_ack_decode(buf, size, &ack) != FRAME_OK || ack.producer_id != s->producer_id ||
	    ack.batch_seq == 0 || ack.batch_seq > s->batch_count)
		return 0;
	b = &s->batches[ack.batch_seq - 1];
	if (ack.type == FRAME_TYPE_NACK) {
		s->nacks++;
		if (!frame_status_retryable((enum frame_status)ack.status)) {
			fprintf(stderr, "dp_sender: batch %llu NACK %s\n",
				(unsigned long long)ack.batch_seq, frame_status_str(ack.status));
			return -1;
		}
		b->sent_ns = clock_mono_ns() - (uint64_t)s->rto_ms * 1000000u +
			     (uint64_t)ack.retry_after_ms * 1000000u;
		if (s->tcp) {
			b->retry_at_ns = clock_mono_ns() + (ack.retry_after_ms + 1ull) * 1000000u;
			b->sent_ns = 0;
		}
		return 0;
	}
	if (ack.flags & FRAME_F_DUPLICATE)
		s->duplicates++;
	else if (b->answer_dropped) {
		/* Its first ACK came before the cut: storing it again broke exactly-once. */
		fprintf(stderr, "dp_sender: batch %llu stored twice (no DUPLICATE after the cut)\n",
			(unsigned long long)ack.batch_seq);
		return -1;
	}
	if (b->acked)
		return 0;
	if (ack.run_count == 0) {
		fprintf(stderr, "dp_sender: batch %llu ACK without detail\n",
			(unsigned long long)ack.batch_seq);
		return -1;
	}
	record = b->first;
	for (uint16_t r = 0; r < ack.run_count; r++) {
		frame_ack_run_get(&ack, r, &run);
		for (uint16_t k = 0; k < run.count; k++, record++) {
			s->recs[record].shard = run.shard_index;
			s->recs[record].seq = run.seq_first + k;
		}
	}
	b->acked = true;
	return 1;
}

static int
tcp_connect(struct sender *s, uint64_t deadline)
{
	for (;;) {
		struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = s->local_port_be };
		socklen_t local_size = sizeof(local);
		int one = 1;

		s->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (s->fd < 0)
			return -1;
		if (s->same_port && s->local_port_be != 0 &&
		    (setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		     bind(s->fd, (const struct sockaddr *)&local, sizeof(local)) != 0))
			perror("dp_sender: bind");
		if (connect(s->fd, (const struct sockaddr *)&s->dst, sizeof(s->dst)) == 0) {
			getsockname(s->fd, (struct sockaddr *)&local, &local_size);
			s->local_port_be = local.sin_port;
			return 0;
		}
		close(s->fd);
		s->fd = -1;
		if (clock_mono_ns() > deadline) {
			perror("dp_sender: connect");
			return -1;
		}
		poll(NULL, 0, 10);
	}
}

/* A broken connection: connect again and resend every unacknowledged batch. */
static int
tcp_reconnect(struct sender *s, uint64_t deadline)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->rx_size = 0;
	s->reconnects++;
	for (uint32_t i = 0; i < s->batch_count; i++) {
		if (!s->batches[i].acked && s->batches[i].sent_ns != 0) {
			s->batches[i].sent_ns = 0;
			s->retransmits++;
		}
	}
	return tcp_connect(s, deadline);
}

/* The cut drops the answers in flight: an ACK's batch is stored, a NACK's is not. */
static int
drop_answer(struct sender *s, const uint8_t *buf, size_t size)
{
	struct frame_ack ack;
	struct batch *b;

	if (frame_ack_decode(buf, size, &ack) != FRAME_OK || ack.producer_id != s->producer_id ||
	    ack.batch_seq == 0 || ack.batch_seq > s->batch_count)
		return 0;
	b = &s->batches[ack.batch_seq - 1];
	if (ack.type == FRAME_TYPE_ACK && !b->acked)
		b->answer_dropped = true;
	else if (ack.type == FRAME_TYPE_NACK)
		b->sent_ns = 0;
	return 0;
}

/*
 * TCP: reads what arrived and applies every whole answer (or, while `drop`,
 * marks its batch answer_dropped and forgets it). Adds the batches acked to
 * *acked; -1 on a fatal NACK, -2 when the connection broke.
 */
static int
tcp_read(struct sender *s, uint32_t *acked, bool drop)
{
	ssize_t n = recv(s->fd, s->rx + s->rx_size, RX_BUF_SIZE - s->rx_size, MSG_DONTWAIT);
	uint32_t at = 0;
	uint32_t frame_size;
	uint32_t need;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -2;
	if (n < 0)
		return 0;
	s->rx_size += (uint32_t)n;
	while (frame_next(s->rx + at, s->rx_size - at, &frame_size, &need) == FRAME_OK) {
		int rc = drop ? drop_answer(s, s->rx + at, frame_size) :
				on_answer(s, s->rx + at, frame_size);

		if (rc < 0)
			return -1;
		*acked += (uint32_t)rc;
		at += frame_size;
	}
	memmove(s->rx, s->rx + at, s->rx_size - at);
	s->rx_size -= at;
	return 0;
}

/*
 * The cut: a full window sent, every answer in flight read and dropped (so
 * those batches are stored and their ACKs lost), then a reset.
 */
static int
tcp_cut(struct sender *s, uint32_t low, uint64_t deadline)
{
	struct linger hard = { .l_onoff = 1, .l_linger = 0 };
	uint32_t end = low + FRAME_DEDUP_WINDOW < s->batch_count ? low + FRAME_DEDUP_WINDOW :
								     s->batch_count;
	uint32_t ignored = 0;

	for (uint32_t i = low; i < end; i++)
		if (send_due(s, &s->batches[i], 0) && send_batch(s, i) != 0)
			return tcp_reconnect(s, deadline);
	for (;;) {
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		bool waiting = false;

		for (uint32_t i = low; i < end; i++)
			waiting |= !s->batches[i].acked && !s->batches[i].answer_dropped &&
				   s->batches[i].sent_ns != 0;
		if (!waiting || clock_mono_ns() > deadline)
			break;
		if (poll(&pfd, 1, 10) > 0 && tcp_read(s, &ignored, true) != 0)
			break;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
	s->cuts++;
	return tcp_reconnect(s, deadline);
}

/* The send loop: a window of FRAME_DEDUP_WINDOW batches from the oldest unacknowledged. */
static int
run(struct sender *s, uint32_t timeout_s)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_s * 1000000000u;
	uint32_t next_cut = s->cut_every;
	uint32_t low = 0;
	uint32_t acked = 0;
	uint8_t buf[2048];

	if (s->tcp && tcp_connect(s, deadline) != 0)
		return -1;
	while (acked < s->batch_count) {
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		uint64_t now = clock_mono_ns();
		int rc = 0;

		if (now > deadline) {
			fprintf(stderr, "dp_sender: timeout, %u of %u batches acked\n", acked,
				s->batch_count);
			return -1;
		}
		while (low < s->batch_count && s->batches[low].acked)
			low++;
		if (s->tcp && next_cut != 0 && acked >= next_cut) {
			next_cut += s->cut_every;
			if (tcp_cut(s, low, deadline) != 0)
				return -1;
			continue;
		}
		for (uint32_t i = low; i < s->batch_count && i < low + FRAME_DEDUP_WINDOW; i++)
			if (send_due(s, &s->batches[i], now) && send_batch(s, i) != 0) {
				rc = -2; /* TCP: the connection broke. */
				break;
			}
		if (s->tcp) {
			if (rc == 0 && poll(&pfd, 1, 2) <= 0)
				continue;
			if (rc == 0)
				rc = tcp_read(s, &acked, false);
			if (rc == -1)
				return -1;
			if (rc == -2 && tcp_reconnect(s, deadline) != 0)
				return -1;
			continue;
		}
		/* UDP: wait up to 2 ms for the first answer, then take what is there. */
		for (int wait_ms = 2;; wait_ms = 0) {
			ssize_t n = wire_recv(buf, sizeof(buf), wait_ms);

			if (n <= 0)
				break;
			rc = on_answer(s, buf, (size_t)n);
			if (rc < 0)
				return -1;
			acked += (uint32_t)rc;
		}
	}
	return 0;
}

static uint16_t
icmp_checksum(const void *data, size_t size)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < size; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (size & 1)
		sum += (uint32_t)(p[size - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* N echo requests; every one must be answered within a second. */
static int
ping(const struct sockaddr_in *dst, uint32_t count)
{
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	uint32_t replies = 0;

	if (fd < 0) {
		perror("dp_sender: raw socket");
		return -1;
	}
	for (uint16_t i = 1; i <= count; i++) {
		uint8_t pkt[64] = { 0 };
		struct icmphdr *h = (struct icmphdr *)pkt;
		uint64_t deadline = clock_mono_ns() + 1000000000u;

		h->type = ICMP_ECHO;
		h->un.echo.id = htons(0x5151);
		h->un.echo.sequence = htons(i);
		memset(pkt + sizeof(*h), 0xa5, sizeof(pkt) - sizeof(*h));
		h->checksum = icmp_checksum(pkt, sizeof(pkt));
		sendto(fd, pkt, sizeof(pkt), 0, (const struct sockaddr *)dst, sizeof(*dst));
		while (clock_mono_ns() < deadline) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			uint8_t in[256];
			ssize_t n;
			const struct icmphdr *r;

			if (poll(&pfd, 1, 100) <= 0)
				continue;
			n = recv(fd, in, sizeof(in), 0);
			r = (const struct icmphdr *)(in + (in[0] & 0x0f) * 4);
			if (n >= 28 && r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(0x5151) &&
			    r->un.echo.sequence == htons(i)) {
				replies++;
				break;
			}
		}
	}
	close(fd);
	printf("dp_sender: ping %u/%u replies\n", replies, count);
	return replies == count ? 0 : -1;
}

/* -K KEY_ID:HEX: sign every frame with this key (as [dataplane] auth_keys spells it). */
static int
parse_key(const char *text, struct frame_auth_key *key)
{
	const char *colon = strchr(text, ':');
	size_t hex_size;

	if (colon == NULL)
		return -1;
	hex_size = strlen(colon + 1);
	if (hex_size % 2 != 0 || hex_size / 2 < FRAME_AUTH_KEY_SIZE_MIN ||
	    hex_size / 2 > FRAME_AUTH_KEY_SIZE_MAX)
		return -1;
	key->key_id = (uint32_t)strtoul(text, NULL, 10);
	key->key_size = (uint8_t)(hex_size / 2);
	for (size_t i = 0; i < key->key_size; i++) {
		unsigned int byte;

		if (sscanf(colon + 1 + 2 * i, "%2x", &byte) != 1)
			return -1;
		key->key[i] = (uint8_t)byte;
	}
	return 0;
}

static int
write_ledger(const struct sender *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	for (uint32_t i = 0; i < s->records; i++)
		fprintf(f, "%u %llu %s %s\n", s->recs[i].shard, (unsigned long long)s->recs[i].seq,
			s->recs[i].key, s->recs[i].data);
	return fclose(f);
}

static int
prepare(struct sender *s, uint64_t seed)
{
	s->rng = seed;
	s->producer_id = next_rand(&s->rng) | 1;
	s->batch_count = (s->records + s->per_frame - 1) / s->per_frame;
	s->recs = calloc(s->records, sizeof(*s->recs));
	s->batches = calloc(s->batch_count, sizeof(*s->batches));
	if (s->recs == NULL || s->batches == NULL)
		return -1;
	for (uint32_t i = 0; i < s->records; i++) {
		random_text(&s->rng, s->recs[i].key, 1, KEY_MAX);
		random_text(&s->rng, s->recs[i].data, 1, DATA_MAX);
	}
	for (uint32_t b = 0; b < s->batch_count; b++)
		if (build_batch(s, b) != 0)
			return -1;
	return 0;
}

/* Buffers, and the UDP wire (a TCP socket is connected by run()). */
static int
setup(struct sender *s, const struct wire_opts *wire)
{
	s->frame_cap = s->tcp ? FRAME_RECORDS_HEADER_SIZE + 256u + FRAME_AUTH_SIZE +
					s->per_frame * (FRAME_RECORD_HEADER_SIZE + KEY_MAX + DATA_MAX) :
				UDP_FRAME_CAP;
	s->rx = malloc(RX_BUF_SIZE);
	if (s->rx == NULL)
		return -1;
	if (s->tcp)
		return 0;
	return wire_open(wire);
}

int
main(int argc, char **argv)
{
	struct sender s = { .fd = -1, .records = 1000, .per_frame = 12, .rto_ms = 30,
			    .stream = "s" };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(4570) };
	struct wire_opts wire = { .src_port = 0 };
	uint32_t per_frame_max;
	int rc;
	const char *ledger = NULL;
	uint64_t seed = 1;
	uint32_t pings = 0;
	uint32_t timeout_s = 60;
	int opt;

	inet_pton(AF_INET, "198.18.0.1", &dst.sin_addr);
	while ((opt = getopt(argc, argv, "d:p:L:D:F:n:k:s:l:P:t:r:S:K:TC:R")) != -1) {
		if (opt == 'd' && inet_pton(AF_INET, optarg, &dst.sin_addr) != 1)
			return 2;
		else if (opt == 'p')
			dst.sin_port = htons((uint16_t)atoi(optarg));
		else if (opt == 'L')
			wire.src_port = (uint16_t)atoi(optarg);
		else if (opt == 'D')
			wire.device = optarg;
		else if (opt == 'F')
			wire.file_prefix = optarg;
		else if (opt == 'n')
			s.records = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'k')
			s.per_frame = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 's')
			seed = strtoull(optarg, NULL, 10);
		else if (opt == 'l')
			ledger = optarg;
		else if (opt == 'P')
			pings = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 't')
			timeout_s = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'r')
			s.rto_ms = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'S')
			s.stream = optarg;
		else if (opt == 'T')
			s.tcp = true;
		else if (opt == 'R')
			s.same_port = true;
		else if (opt == 'C')
			s.cut_every = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'K' && parse_key(optarg, &s.key) != 0)
			return 2;
		else if (opt == '?')
			return 2;
	}
	per_frame_max = s.tcp ? PER_FRAME_TCP_MAX : PER_FRAME_MAX;
	if (s.records == 0 || s.per_frame == 0 || s.per_frame > per_frame_max || ledger == NULL ||
	    (s.cut_every != 0 && !s.tcp) || (wire.device != NULL && (s.tcp || pings > 0))) {
		fprintf(stderr, "usage: dp_sender -l LEDGER [-d ADDR] [-p PORT] [-L SRC_PORT] "
				"[-D VDEV -F PREFIX] [-n RECORDS] "
				"[-k PER_FRAME] [-s SEED] [-P PINGS] [-t TIMEOUT_S] [-r RTO_MS] "
				"[-S STREAM] [-K KEY_ID:HEX] [-T [-C CUT_EVERY] [-R]]\n");
		return 2;
	}
	if (pings > 0 && ping(&dst, pings) != 0)
		return 1;
	s.dst = dst;
	wire.dst = dst;
	if (setup(&s, &wire) != 0 || prepare(&s, seed) != 0) {
		if (!s.tcp)
			wire_close();
		fprintf(stderr, "dp_sender: setup failed\n");
		return 1;
	}
	rc = run(&s, timeout_s);
	if (!s.tcp)
		wire_close();
	if (rc != 0)
		return 1;
	printf("dp_sender: %u records in %u batches acked durable; %llu retransmits, "
	       "%llu duplicate acks, %llu nacks, %llu reconnects, %llu cuts\n", s.records,
	       s.batch_count, (unsigned long long)s.retransmits,
	       (unsigned long long)s.duplicates, (unsigned long long)s.nacks,
	       (unsigned long long)s.reconnects, (unsigned long long)s.cuts);
	return write_ledger(&s, ledger) == 0 ? 0 : 1;
}
