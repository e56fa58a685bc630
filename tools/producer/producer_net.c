/*
 * producer_net.c - libsluice's sockets: resolve, connect (TCP without
 * blocking, reconnecting with backoff), send frames, read ACK/NACK frames,
 * and the poll loop that ties them to producer.c's timers.
 *
 * TCP: frames go out through a queue of batches, written in order with
 * partial writes resumed; on any error or EOF, or when nothing at all came
 * on it for silence_timeout_ms while answers were owed, the connection is
 * closed, and on reconnect every batch in flight is queued again in seq
 * order (the appliance's dedup window makes the repeat harmless). Nothing is
 * resent on a live connection (the appliance answers every frame it took)
 * but after a NACK's wait. UDP: one frame per datagram on a connected
 * socket; a lost datagram is the retry timer's job.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "tools/producer/producer_int.h"

/* Datagrams read per poll pass: bounded work per call. */
#define PRODUCER_RX_DATAGRAMS_MAX 64

int
producer_resolve(struct sluice_producer *p)
{
	struct addrinfo hints = { 0 };
	struct addrinfo *res;
	char port[8];

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = p->config.transport == SLUICE_TRANSPORT_TCP ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned)p->config.port);
	if (getaddrinfo(p->config.host, port, &hints, &res) != 0)
		return -ENOENT;
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addr_size = res->ai_addrlen;
	freeaddrinfo(res);
	p->nodes[0] = (struct producer_node){ .addr = p->addr, .addr_size = p->addr_size };
	p->node_count = 1;
	return 0;
}

/*
 * TCP is up: everything in flight goes out again, oldest seq first. A batch that was on
 * an earlier connection may meet its first copy still being stored: the appliance NACKs
 * the new copy THROTTLED and sends the first copy's answer to the old connection
 * (PROTOCOL.md section 6); the resend after the hint is answered from the dedup window.
 * Should a copy get no answer at all (an appliance that drops it, as Sluice did before
 * 2026-12), it cannot wait for its deadline while other answers keep this connection
 * alive: no batch seals while it is 8 seqs behind (seq_window_allows()), so the
 * connection goes quiet, is found silent, and on the next one the batch is answered
 * from the dedup window.
 */
static void
tcp_connected(struct sluice_producer *p)
{
	struct producer_batch *flying[2 * FRAME_DEDUP_WINDOW];
	uint64_t now_ns = clock_mono_ns();
	uint32_t count = 0;

	p->connecting = false;
	p->connected = true;
	p->heard_ns = now_ns;
	p->reconnect_ms = PRODUCER_RECONNECT_MS_MIN;
	p->stats.connects++;
	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++)
			if (p->lanes[l].batches[i].state == BATCH_FLYING)
				flying[count++] = &p->lanes[l].batches[i];
	/* Insertion sort: at most 2 * lanes entries. */
	for (uint32_t i = 1; i < count; i++)
		for (uint32_t j = i; j > 0 && flying[j - 1]->batch_seq > flying[j]->batch_seq; j--) {
			struct producer_batch *t = flying[j];

			flying[j] = flying[j - 1];
			flying[j - 1] = t;
		}
	for (uint32_t i = 0; i < count; i++) {
		if (flying[i]->sent_ns != 0)
			p->stats.batches_resent++;    /* It went out on an earlier connection. */
		producer_send(p, flying[i]);
	}
}

int
producer_socket_open(struct sluice_producer *p, uint64_t now_ns)
{
	bool tcp = p->config.transport == SLUICE_TRANSPORT_TCP;
	int one = 1;
	int fd;

	p->reconnect_ns = 0;
	fd = socket(p->addr.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->fd = fd;
	if (!tcp) {
		/*
		 * Not connected: a cluster's redirects send a shard's frames to its leader
		 * through the same socket, and its answers come from there (udp_read takes
		 * answers only from the nodes in nodes[]).
		 */
		p->connected = true;
		return 0;
	}
	if (connect(fd, (const struct sockaddr *)&p->addr, p->addr_size) == 0) {
		if (tcp)
			tcp_connected(p);
		else
			p->connected = true;
		return 0;
	}
	if (tcp && errno == EINPROGRESS) {
		p->connecting = true;
		return 0;
	}
	/* Refused or unreachable now: try again later, as after a lost connection. */
	producer_socket_close(p);
	p->reconnect_ns = now_ns + (uint64_t)p->reconnect_ms * 1000000u;
	return tcp ? 0 : -errno;
}

void
producer_socket_close(struct sluice_producer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->connected = false;
	p->connecting = false;
	for (uint32_t i = 0; i < p->txq_count; i++) {
		p->txq[i]->queued = false;
		if (p->txq[i]->state == BATCH_DRAINING)
			p->txq[i]->state = BATCH_EMPTY;
	}
	p->txq_count = 0;
	p->tx_offset = 0;
	p->rx_size = 0;
	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++)
			p->lanes[l].batches[i].awaiting = false;   /* Owed by a gone connection. */
}

static void
tcp_lost(struct sluice_producer *p, uint64_t now_ns)
{
	producer_socket_close(p);
	p->reconnect_ns = now_ns + (uint64_t)p->reconnect_ms * 1000000u;
	p->reconnect_ms = (uint32_t)min_u64((uint64_t)p->reconnect_ms * 2,
					    p->config.backoff_max_ms);
}

void
producer_send(struct sluice_producer *p, struct producer_batch *b)
{
	if (b->queued)
		return;    /* Its bytes are still going out on this connection. */
	if (p->auth)
		frame_auth_sign(b->frame, b->frame_size, &p->auth_key, clock_real_ns() / 1000000u);
	if (!p->connected)
		return;    /* Sent on (re)connect, or retried by its timer. */
	if (p->config.transport == SLUICE_TRANSPORT_UDP) {
		const struct producer_node *n = &p->nodes[b->node];

		/* Errors (ENOBUFS) are losses: the timer retries. */
		(void)sendto(p->fd, b->frame, b->frame_size, MSG_DONTWAIT,
			     (const struct sockaddr *)&n->addr, n->addr_size);
		return;
	}
	assert(p->txq_count < PRODUCER_TX_QUEUE_MAX);
	p->txq[p->txq_count++] = b;
	b->queued = true;
	/* A resend on this connection does not restart its silence: the first send counts. */
	if (!b->awaiting)
		b->sent_ns = clock_mono_ns();
	b->awaiting = true;
}

bool
producer_txq_remove(struct sluice_producer *p, struct producer_batch *b)
{
	for (uint32_t i = 0; i < p->txq_count; i++) {
		if (p->txq[i] != b)
			continue;
		if (i == 0 && p->tx_offset > 0)
			return false;    /* Half written: the rest must follow, or the stream breaks. */
		memmove(p->txq + i, p->txq + i + 1, (p->txq_count - i - 1) * sizeof(p->txq[0]));
		p->txq_count--;
		b->queued = false;
		return true;
	}
	return false;
}

static void
tcp_flush(struct sluice_producer *p, uint64_t now_ns)
{
	while (p->connected && p->txq_count > 0) {
		struct producer_batch *b = p->txq[0];
		ssize_t n = send(p->fd, b->frame + p->tx_offset, b->frame_size - p->tx_offset,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				tcp_lost(p, now_ns);
			return;
		}
		p->tx_offset += (uint32_t)n;
		if (p->tx_offset < b->frame_size)
			continue;
		p->tx_offset = 0;
		memmove(p->txq, p->txq + 1, --p->txq_count * sizeof(p->txq[0]));
		b->queued = false;
		if (b->state == BATCH_DRAINING)
			b->state = BATCH_EMPTY;
	}
}

/* Answers every whole frame in bytes[0 .. size); returns the bytes consumed or -EPROTO. */
/*
 * A producer that signs its frames takes only answers signed with its own key, within
 * the replay window (docs/PROTOCOL.md section 7): anyone can send an unsigned ACK that
 * would make it drop records the appliance never stored. The one exception is a NACK
 * auth_failed, which the appliance cannot sign when the frame's tag did not verify: a
 * forged one fails a batch visibly (-EACCES), it never passes records off as stored.
 * Answers refused here are counted (answers_forged); the batch's retry timer goes on.
 */
static bool
answer_authentic(const struct sluice_producer *p, const struct frame_ack *ack,
		 const uint8_t *frame, uint32_t size)
{
	if (!p->auth)
		return true;
	if (ack->auth == NULL)
		return ack->type == FRAME_TYPE_NACK && ack->status == FRAME_STATUS_AUTH_FAILED;
	/* The tag's timestamp is wall-clock time. */
	return frame_auth_verify(frame, size, &p->auth_key, clock_real_ns() / 1000000u,
				 FRAME_AUTH_WINDOW_MS) == FRAME_OK;
}

static long
frames_answer(struct sluice_producer *p, const uint8_t *bytes, size_t size, uint64_t now_ns)
{
	size_t off = 0;

	while (off < size) {
		uint32_t frame_size;
		uint32_t need;
		struct frame_ack ack;
		enum frame_err err = frame_next(bytes + off, size - off, &frame_size, &need);

		if (err == FRAME_ERR_TRUNCATED)
			break;
		if (err != FRAME_OK)
			return -EPROTO;
		if (frame_ack_decode(bytes + off, frame_size, &ack) != FRAME_OK)
			p->stats.acks_ignored++;
		else if (!answer_authentic(p, &ack, bytes + off, frame_size))
			p->stats.answers_forged++;
		else
			producer_answer(p, &ack, now_ns);
		off += frame_size;
	}
	return (long)off;
}

/* A datagram from one of the nodes this producer sends to (the socket is not connected). */
static bool
udp_from_node(const struct sluice_producer *p, const struct sockaddr_storage *from,
	      socklen_t size)
{
	for (uint32_t i = 0; i < p->node_count; i++)
		if (p->nodes[i].addr_size == size && memcmp(&p->nodes[i].addr, from, size) == 0)
			return true;
	return false;
}

static void
udp_read(struct sluice_producer *p, uint64_t now_ns)
{
	for (int i = 0; i < PRODUCER_RX_DATAGRAMS_MAX; i++) {
		struct sockaddr_storage from;
		socklen_t from_size = sizeof(from);
		ssize_t n = recvfrom(p->fd, p->rx, sizeof(p->rx), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &from_size);

		if (n < 0)
			return;    /* EAGAIN: nothing to read. */
		if (!udp_from_node(p, &from, from_size)) {
			p->stats.acks_ignored++;
			continue;
		}
		if (frames_answer(p, p->rx, (size_t)n, now_ns) != n)
			p->stats.acks_ignored++;    /* Garbage or a truncated frame: dropped. */
	}
}

static void
tcp_read(struct sluice_producer *p, uint64_t now_ns)
{
	for (;;) {
		ssize_t n = recv(p->fd, p->rx + p->rx_size, sizeof(p->rx) - p->rx_size,
				 MSG_DONTWAIT);
		long used;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			tcp_lost(p, now_ns);
			return;
		}
		if (n < 0)
			return;
		p->heard_ns = now_ns;    /* Any byte says the appliance is alive. */
		p->rx_size += (uint32_t)n;
		used = frames_answer(p, p->rx, p->rx_size, now_ns);
		/* No answer is larger than FRAME_ACK_SIZE_MAX: a full buffer is a broken peer. */
		if (used < 0 || (used == 0 && p->rx_size == sizeof(p->rx))) {
			tcp_lost(p, now_ns);
			return;
		}
		memmove(p->rx, p->rx + used, p->rx_size - (size_t)used);
		p->rx_size -= (uint32_t)used;
	}
}

/*
 * The connection is silent when nothing came on it since the oldest frame still owed
 * an answer was sent (or since the last bytes, whichever is later) for
 * silence_timeout_ms. A connection idle with nothing owed is never silent.
 */
uint64_t
producer_silence_deadline_ns(const struct sluice_producer *p)
{
	uint64_t oldest = UINT64_MAX;

	if (p->config.transport != SLUICE_TRANSPORT_TCP || !p->connected)
		return UINT64_MAX;
	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++) {
			const struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state == BATCH_FLYING && b->awaiting)
				oldest = min_u64(oldest, b->sent_ns);
		}
	if (oldest == UINT64_MAX)
		return UINT64_MAX;
	return max_u64(oldest, p->heard_ns) + (uint64_t)p->config.silence_timeout_ms * 1000000u;
}

void
producer_net_work(struct sluice_producer *p, uint64_t now_ns)
{
	if (now_ns >= producer_silence_deadline_ns(p)) {
		/* Dead or hung: a new connection, where every batch in flight is resent. */
		p->stats.connections_silent++;
		tcp_lost(p, now_ns);
	}
	if (p->fd < 0 && p->reconnect_ns != 0 && now_ns >= p->reconnect_ns)
		producer_socket_open(p, now_ns);
	if (p->config.transport == SLUICE_TRANSPORT_TCP)
		tcp_flush(p, now_ns);
}

/*
 * Finishes a non-blocking connect once the socket is writable or failed.
 * Asks the kernel itself rather than trusting the caller's poll: a caller
 * with its own event loop calls sluice_producer_poll(p, 0).
 */
static void
tcp_connect_check(struct sluice_producer *p, uint64_t now_ns)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLOUT };
	int so_error = 0;
	socklen_t len = sizeof(so_error);

	if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) == 0)
		return;
	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0)
		tcp_lost(p, now_ns);
	else
		tcp_connected(p);
}

int
sluice_producer_fd(const struct sluice_producer *p)
{
	return p->fd;
}

bool
sluice_producer_wants_write(const struct sluice_producer *p)
{
	return p->connecting || p->txq_count > 0;
}

int
sluice_producer_timeout_ms(const struct sluice_producer *p)
{
	uint64_t next = producer_next_timer_ns(p);
	uint64_t now = clock_mono_ns();

	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return (int)min_u64((next - now + 999999u) / 1000000u, 60000);
}

/* Timers, sends and reads that are due now. */
static void
producer_work(struct sluice_producer *p)
{
	uint64_t now_ns = clock_mono_ns();

	if (p->fd >= 0 && p->connecting)
		tcp_connect_check(p, now_ns);
	if (p->fd >= 0 && p->connected) {
		if (p->config.transport == SLUICE_TRANSPORT_UDP)
			udp_read(p, now_ns);
		else
			tcp_read(p, now_ns);
	}
	producer_lanes_work(p, now_ns);
	producer_net_work(p, now_ns);
}

int
sluice_producer_poll(struct sluice_producer *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	int wait_ms = timeout_ms;
	int timer_ms;

	p->completed = 0;
	producer_work(p);
	if (p->completed > 0 || timeout_ms == 0)
		return p->completed;
	/* Nothing outstanding and no timer: an endless wait would never end. */
	if (timeout_ms < 0 && p->stats.records_put == p->stats.records_ok + p->stats.records_failed)
		return 0;
	timer_ms = sluice_producer_timeout_ms(p);
	if (timer_ms >= 0 && (wait_ms < 0 || timer_ms < wait_ms))
		wait_ms = timer_ms;
	pfd.fd = p->fd;
	if (sluice_producer_wants_write(p))
		pfd.events |= POLLOUT;
	if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
		return -errno;
	producer_work(p);
	return p->completed;
}

int
sluice_producer_flush(struct sluice_producer *p, int timeout_ms)
{
	uint64_t deadline_ns = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	int err = 0;

	p->flushing = true;
	for (;;) {
		struct sluice_producer_stats stats;
		uint64_t now_ns;
		int rc;

		sluice_producer_stats(p, &stats);
		if (stats.records_outstanding == 0)
			break;
		now_ns = clock_mono_ns();
		if (now_ns >= deadline_ns) {
			err = -ETIMEDOUT;
			break;
		}
		rc = sluice_producer_poll(p, (int)((deadline_ns - now_ns + 999999u) / 1000000u));
		if (rc < 0) {
			err = rc;
			break;
		}
	}
	p->flushing = false;
	return err;
}
