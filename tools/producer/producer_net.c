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
	memcpy(&p->nodes[0].addr, res->ai_addr, res->ai_addrlen);
	p->nodes[0].addr_size = res->ai_addrlen;
	freeaddrinfo(res);
	p->node_count = 1;
	return 0;
}

/*
 * TCP to nodes[node] is up: everything in flight to it goes out again, oldest seq
 * first. A batch that was on an earlier connection may meet its first copy still being
 * stored: the appliance NACKs the new copy THROTTLED and sends the first copy's answer
 * to the old connection (PROTOCOL.md section 6); the resend after the hint is answered
 * from the dedup window. Should a copy get no answer at all (an appliance that drops
 * it, as Sluice did before 2026-12), it cannot wait for its deadline while other
 * answers keep this connection alive: no batch seals while it is 8 seqs behind
 * (seq_window_allows()), so the connection goes quiet, is found silent, and on the
 * next one the batch is answered from the dedup window.
 */
static void
tcp_connected(struct sluice_producer *p, uint32_t node)
{
	struct producer_batch *flying[2 * FRAME_DEDUP_WINDOW];
	struct producer_node *n = &p->nodes[node];
	uint64_t now_ns = clock_mono_ns();
	uint32_t count;

	n->connecting = false;
	n->connected = true;
	n->heard_ns = now_ns;
	n->sent_ns = now_ns;
	n->reconnect_ms = PRODUCER_RECONNECT_MS_MIN;
	p->stats.connects++;
	count = producer_flying_to(p, node, flying);
	for (uint32_t i = 0; i < count; i++) {
		if (flying[i]->sent_ns != 0)
			p->stats.batches_resent++;    /* It went out on an earlier connection. */
		producer_send(p, flying[i]);
	}
}

/*
 * TCP to nodes[node] is lost (or never came up). The entry node reconnects with
 * backoff; a redirect node is forgotten: its leadership may have moved, and the entry
 * node knows where to (producer_node_forget()).
 */
static void
tcp_lost(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[node];

	producer_socket_close(p, node);
	if (node != 0) {
		producer_node_forget(p, node);
		return;
	}
	n->reconnect_ns = now_ns + (uint64_t)n->reconnect_ms * 1000000u;
	n->reconnect_ms = (uint32_t)min_u64((uint64_t)n->reconnect_ms * 2,
					    p->config.backoff_max_ms);
}

int
producer_socket_open(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[node];
	bool tcp = p->config.transport == SLUICE_TRANSPORT_TCP;
	int one = 1;
	int fd;

	n->reconnect_ns = 0;
	fd = socket(n->addr.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n->fd = fd;
	n->serial = ++p->serials;
	if (!tcp) {
		/*
		 * Not connected: a cluster's redirects send a shard's frames to its leader
		 * through the same socket, and its answers come from there (udp_read takes
		 * answers only from the nodes in nodes[]).
		 */
		n->connected = true;
		return 0;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&n->addr, n->addr_size) == 0) {
		tcp_connected(p, node);
		return 0;
	}
	if (errno == EINPROGRESS) {
		n->connecting = true;
		n->sent_ns = now_ns;    /* A redirect node's connect is bounded by the silence. */
		return 0;
	}
	/* Refused or unreachable now: the entry is tried again later; a redirect is forgotten. */
	if (node != 0) {
		tcp_lost(p, node, now_ns);
		return 0;
	}
	producer_socket_close(p, node);
	n->reconnect_ns = now_ns + (uint64_t)n->reconnect_ms * 1000000u;
	return 0;
}

void
producer_socket_close(struct sluice_producer *p, uint32_t node)
{
	struct producer_node *n = &p->nodes[node];

	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	n->connected = false;
	n->connecting = false;
	for (uint32_t i = 0; i < n->txq_count; i++) {
		n->txq[i]->queued = false;
		if (n->txq[i]->state == BATCH_DRAINING)
			n->txq[i]->state = BATCH_EMPTY;
	}
	n->txq_count = 0;
	n->tx_offset = 0;
	n->rx_size = 0;
	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++)
			if (p->lanes[l].batches[i].node == node)
				p->lanes[l].batches[i].awaiting = false;  /* Owed by a gone connection. */
}

void
producer_send(struct sluice_producer *p, struct producer_batch *b)
{
	struct producer_node *n = &p->nodes[b->node];

	if (b->queued)
		return;    /* Its bytes are still going out on this connection. */
	if (p->auth)
		frame_auth_sign(b->frame, b->frame_size, &p->auth_key, clock_real_ns() / 1000000u);
	if (p->config.transport == SLUICE_TRANSPORT_UDP) {
		/* Errors (ENOBUFS) are losses: the timer retries. */
		(void)sendto(p->nodes[0].fd, b->frame, b->frame_size, MSG_DONTWAIT,
			     (const struct sockaddr *)&n->addr, n->addr_size);
		return;
	}
	if (n->fd < 0 && n->reconnect_ns == 0) {
		/* A redirect node's first batch (or first since idle): sent once connected. */
		(void)producer_socket_open(p, b->node, clock_mono_ns());
		return;
	}
	if (!n->connected)
		return;    /* Sent on (re)connect, or moved to the entry node if that fails. */
	assert(n->txq_count < PRODUCER_TX_QUEUE_MAX);
	n->txq[n->txq_count++] = b;
	b->queued = true;
	b->txq_node = b->node;
	n->sent_ns = clock_mono_ns();
	/* A resend on this connection does not restart its silence: the first send counts. */
	if (!b->awaiting)
		b->sent_ns = n->sent_ns;
	b->awaiting = true;
}

bool
producer_txq_remove(struct sluice_producer *p, struct producer_batch *b)
{
	struct producer_node *n = &p->nodes[b->txq_node];

	for (uint32_t i = 0; b->queued && i < n->txq_count; i++) {
		if (n->txq[i] != b)
			continue;
		if (i == 0 && n->tx_offset > 0)
			return false;    /* Half written: the rest must follow, or the stream breaks. */
		memmove(n->txq + i, n->txq + i + 1, (n->txq_count - i - 1) * sizeof(n->txq[0]));
		n->txq_count--;
		b->queued = false;
		return true;
	}
	return false;
}

static void
tcp_flush(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[node];

	while (n->connected && n->txq_count > 0) {
		struct producer_batch *b = n->txq[0];
		ssize_t sent = send(n->fd, b->frame + n->tx_offset, b->frame_size - n->tx_offset,
				    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (sent < 0) {
			if (errno != EAGAIN && errno != EINTR)
				tcp_lost(p, node, now_ns);
			return;
		}
		n->tx_offset += (uint32_t)sent;
		if (n->tx_offset < b->frame_size)
			continue;
		n->tx_offset = 0;
		memmove(n->txq, n->txq + 1, --n->txq_count * sizeof(n->txq[0]));
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
frames_answer(struct sluice_producer *p, uint32_t node, const uint8_t *bytes, size_t size,
	      uint64_t now_ns)
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
			producer_answer(p, node, &ack, now_ns);
		off += frame_size;
	}
	return (long)off;
}

/* The node a datagram came from (the socket is not connected); -1: none this producer sends to. */
static int
udp_from_node(const struct sluice_producer *p, const struct sockaddr_storage *from,
	      socklen_t size)
{
	for (uint32_t i = 0; i < p->node_count; i++)
		if (p->nodes[i].addr_size == size && memcmp(&p->nodes[i].addr, from, size) == 0)
			return (int)i;
	return -1;
}

static void
udp_read(struct sluice_producer *p, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[0];

	for (int i = 0; i < PRODUCER_RX_DATAGRAMS_MAX; i++) {
		struct sockaddr_storage from;
		socklen_t from_size = sizeof(from);
		ssize_t got = recvfrom(n->fd, n->rx, sizeof(n->rx), MSG_DONTWAIT,
				       (struct sockaddr *)&from, &from_size);
		int node;

		if (got < 0)
			return;    /* EAGAIN: nothing to read. */
		node = udp_from_node(p, &from, from_size);
		if (node < 0) {
			p->stats.acks_ignored++;
			continue;
		}
		if (frames_answer(p, (uint32_t)node, n->rx, (size_t)got, now_ns) != got)
			p->stats.acks_ignored++;    /* Garbage or a truncated frame: dropped. */
	}
}

static void
tcp_read(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[node];
	uint64_t serial = n->serial;

	while (n->connected && n->serial == serial) {
		ssize_t got = recv(n->fd, n->rx + n->rx_size, sizeof(n->rx) - n->rx_size,
				   MSG_DONTWAIT);
		long used;

		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			tcp_lost(p, node, now_ns);
			return;
		}
		if (got < 0)
			return;
		n->heard_ns = now_ns;    /* Any byte says the appliance is alive. */
		n->rx_size += (uint32_t)got;
		used = frames_answer(p, node, n->rx, n->rx_size, now_ns);
		/*
		 * An answer may have closed this connection (a full node table reusing its
		 * entry for a redirect): its buffer is gone with it.
		 */
		if (!n->connected || n->serial != serial)
			return;
		/* No answer is larger than FRAME_ACK_SIZE_MAX: a full buffer is a broken peer. */
		if (used < 0 || (used == 0 && n->rx_size == sizeof(n->rx))) {
			tcp_lost(p, node, now_ns);
			return;
		}
		memmove(n->rx, n->rx + used, n->rx_size - (size_t)used);
		n->rx_size -= (uint32_t)used;
	}
}

/*
 * A connection is silent when nothing came on it since the oldest frame still owed an
 * answer was sent on it (or since the last bytes, whichever is later) for
 * silence_timeout_ms. A connection with nothing owed is never silent; a redirect
 * node's is idle once nothing was sent or heard on it for PRODUCER_NODE_IDLE_MS either.
 */
static uint64_t
silence_deadline_ns(const struct sluice_producer *p, uint32_t node, bool *owed)
{
	const struct producer_node *n = &p->nodes[node];
	uint64_t oldest = UINT64_MAX;

	*owed = false;
	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++) {
			const struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state != BATCH_FLYING || b->node != node)
				continue;
			*owed = true;
			if (b->awaiting)
				oldest = min_u64(oldest, b->sent_ns);
		}
	if (oldest == UINT64_MAX)
		return UINT64_MAX;
	return max_u64(oldest, n->heard_ns) + (uint64_t)p->config.silence_timeout_ms * 1000000u;
}

/*
 * A redirect node's connect that neither completes nor fails (a host gone, its SYNs
 * dropped) is given up after the silence bound. The entry node's waits as before.
 */
static uint64_t
connect_deadline_ns(const struct sluice_producer *p, uint32_t node)
{
	return p->nodes[node].sent_ns + (uint64_t)p->config.silence_timeout_ms * 1000000u;
}

static uint64_t
idle_deadline_ns(const struct sluice_producer *p, uint32_t node, bool owed)
{
	const struct producer_node *n = &p->nodes[node];

	if (node == 0 || owed || n->txq_count > 0)
		return UINT64_MAX;
	return max_u64(n->sent_ns, n->heard_ns) + (uint64_t)PRODUCER_NODE_IDLE_MS * 1000000u;
}

uint64_t
producer_net_timer_ns(const struct sluice_producer *p)
{
	uint64_t next = UINT64_MAX;

	if (p->config.transport != SLUICE_TRANSPORT_TCP)
		return UINT64_MAX;
	for (uint32_t i = 0; i < p->node_count; i++) {
		const struct producer_node *n = &p->nodes[i];
		bool owed;

		if (n->reconnect_ns != 0)
			next = min_u64(next, n->reconnect_ns);
		if (n->connecting && i != 0)
			next = min_u64(next, connect_deadline_ns(p, i));
		if (!n->connected)
			continue;
		next = min_u64(next, silence_deadline_ns(p, i, &owed));
		next = min_u64(next, idle_deadline_ns(p, i, owed));
	}
	return next;
}

static void
tcp_node_work(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct producer_node *n = &p->nodes[node];
	bool owed;

	if (n->connecting && node != 0 && now_ns >= connect_deadline_ns(p, node)) {
		tcp_lost(p, node, now_ns);
	} else if (n->connected && now_ns >= silence_deadline_ns(p, node, &owed)) {
		/* Dead or hung: a new connection, where every batch in flight is resent. */
		p->stats.connections_silent++;
		tcp_lost(p, node, now_ns);
	} else if (n->connected && now_ns >= idle_deadline_ns(p, node, owed)) {
		producer_socket_close(p, node);
	}
	if (n->fd < 0 && n->reconnect_ns != 0 && now_ns >= n->reconnect_ns)
		producer_socket_open(p, node, now_ns);
	tcp_flush(p, node, now_ns);
}

void
producer_net_work(struct sluice_producer *p, uint64_t now_ns)
{
	if (p->config.transport != SLUICE_TRANSPORT_TCP)
		return;
	for (uint32_t i = 0; i < p->node_count; i++)
		tcp_node_work(p, i, now_ns);
}

/*
 * Finishes a non-blocking connect once the socket is writable or failed.
 * Asks the kernel itself rather than trusting the caller's poll: a caller
 * with its own event loop calls sluice_producer_poll(p, 0).
 */
static void
tcp_connect_check(struct sluice_producer *p, uint32_t node, uint64_t now_ns)
{
	struct pollfd pfd = { .fd = p->nodes[node].fd, .events = POLLOUT };
	int so_error = 0;
	socklen_t len = sizeof(so_error);

	if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) == 0)
		return;
	if (getsockopt(pfd.fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0)
		tcp_lost(p, node, now_ns);
	else
		tcp_connected(p, node);
}

int
sluice_producer_fd(const struct sluice_producer *p)
{
	return p->nodes[0].fd;
}

bool
sluice_producer_wants_write(const struct sluice_producer *p)
{
	return p->nodes[0].connecting || p->nodes[0].txq_count > 0;
}

int
sluice_producer_pollfds(const struct sluice_producer *p, struct pollfd *fds, uint32_t size)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < p->node_count; i++) {
		const struct producer_node *n = &p->nodes[i];

		if (n->fd < 0)
			continue;
		if (count == size)
			return -ENOSPC;
		fds[count++] = (struct pollfd){
			.fd = n->fd,
			.events = (short)(POLLIN | (n->connecting || n->txq_count > 0 ? POLLOUT : 0)),
		};
	}
	return (int)count;
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

	if (p->config.transport == SLUICE_TRANSPORT_UDP) {
		udp_read(p, now_ns);
	} else {
		for (uint32_t i = 0; i < p->node_count; i++) {
			if (p->nodes[i].fd >= 0 && p->nodes[i].connecting)
				tcp_connect_check(p, i, now_ns);
			if (p->nodes[i].fd >= 0 && p->nodes[i].connected)
				tcp_read(p, i, now_ns);
		}
	}
	producer_lanes_work(p, now_ns);
	producer_net_work(p, now_ns);
}

int
sluice_producer_poll(struct sluice_producer *p, int timeout_ms)
{
	struct pollfd fds[PRODUCER_NODES_MAX];
	int wait_ms = timeout_ms;
	int timer_ms;
	int count;

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
	count = sluice_producer_pollfds(p, fds, PRODUCER_NODES_MAX);
	assert(count >= 0);    /* One entry per node at most. */
	if (poll(fds, (nfds_t)count, wait_ms) < 0 && errno != EINTR)
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
