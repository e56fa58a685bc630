/*
 * dp_kernel.c - the kernel-socket ingest backend (dp_kernel.h): sockets and
 * io_uring in, dp_ingest in the middle, io_uring out.
 *
 * liburing 2.3 (Debian 12) has what this needs: io_uring_register_buf_ring
 * with io_uring_buf_ring_init/add/advance (the ring memory is ours, mmap'ed;
 * io_uring_setup_buf_ring came in 2.4), io_uring_prep_recvmsg_multishot with
 * the io_uring_recvmsg_validate/name/payload helpers, io_uring_prep_recv_multishot,
 * io_uring_prep_multishot_accept and io_uring_get_events. The ring runs with
 * COOP_TASKRUN | TASKRUN_FLAG: completion work runs only when the worker
 * enters the kernel, which it does when the kernel flags work pending (or to
 * submit), so a busy pass costs no interrupt and an idle one no system call.
 *
 * A pass (dp_kernel_poll): completions (UDP datagrams to ingest, accepted
 * connections, TCP data queued per connection) -> connections needing
 * attention (their queued data through the frame splitter, dp_ksplit.c) ->
 * ingest's burst end -> consumed buffers back to their rings -> log
 * completions (answers) -> re-arm what stopped -> TCP answers sent -> one
 * submit. UDP answers go out as io_uring sendmsg from a fixed slot pool: one
 * system call per pass for all of them, where sendto() would cost one each.
 *
 * TCP, per connection: data arrives in provided buffers queued on the
 * connection in arrival order; the splitter hands whole frames to ingest
 * (in place when a frame lies in one buffer, else assembled in a
 * tcp_rx_buffer_kb buffer from a pool). Each frame reserves room for its
 * answer (DP_TCP_ANSWER_MAX) in the connection's send buffer (a pool of
 * tcp_tx_buffers); when ingest or the send buffer has no room, the
 * connection stops: its multishot recv is cancelled, its queued buffers
 * wait, the kernel's receive queue fills and its TCP window closes. A
 * framing error or an oversized frame closes the connection (counted).
 * A connection slot is reused only once none of its requests is in flight.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "common/diag.h"
#include "dataplane/dp_internal.h"
#include "dataplane/dp_kernel.h"
#include "dataplane/dp_ksplit.h"

#define DP_KERNEL_NONE UINT32_MAX
#define DP_KERNEL_UDP_BGID 0
#define DP_KERNEL_TCP_BGID 1
#define DP_KERNEL_LISTEN_BACKLOG 4096
#define DP_KERNEL_SWEEP_US 10000    /* Timeouts are checked this often ... */
#define DP_KERNEL_SWEEP_CONNS 64    /* ... on this many connections, round robin. */
#define DP_KERNEL_KEEPALIVE_PROBES 3 /* Keepalive as the DPDK path's: 3 probes ... */
#define DP_KERNEL_KEEPALIVE_GAP_S 10 /* ... 10 s apart (the kernel's TCP does it). */

static_assert((DP_KERNEL_UDP_BUFFERS & (DP_KERNEL_UDP_BUFFERS - 1)) == 0, "a power of two");
static_assert((DP_KERNEL_TCP_BUFFERS & (DP_KERNEL_TCP_BUFFERS - 1)) == 0, "a power of two");
static_assert(DP_KERNEL_TCP_BUFFERS <= UINT16_MAX, "buffer ids are 16 bits");
static_assert(DP_KERNEL_UDP_BUFFER_SIZE >= sizeof(struct io_uring_recvmsg_out) +
	      sizeof(struct sockaddr_in) + CMSG_SPACE(sizeof(uint32_t)) + 65507u,
	      "any IPv4 UDP datagram fits, with its source and drop count");
static_assert(DP_TCP_CONNECTIONS_MAX < (1u << 28), "a connection index fits user_data");

/* user_data: the request's kind in the top 4 bits, a connection or slot below. */
enum dp_kernel_kind {
	DP_KERNEL_UDP_RECV = 1,
	DP_KERNEL_UDP_SEND,
	DP_KERNEL_ACCEPT,
	DP_KERNEL_TCP_RECV,
	DP_KERNEL_TCP_SEND,
	DP_KERNEL_CANCEL,
};

enum dp_kconn_state { DP_KCONN_FREE, DP_KCONN_OPEN, DP_KCONN_CLOSING };

struct dp_kconn {
	int fd;
	uint32_t gen;               /* Incarnation: answers to an older one are orphaned. */
	uint8_t state;              /* enum dp_kconn_state */
	bool recv_armed;            /* A multishot recv is in flight ... */
	bool cancel_sent;           /* ... and we asked it to stop (back-pressure). */
	bool send_inflight;
	bool eof;                   /* The producer closed its side. */
	bool listed;                /* On the attention list. */
	bool dirty;                 /* On the send list. */
	bool blocked;               /* Stopped by back-pressure (counted once per stop). */
	uint64_t last_rx_tsc;       /* Its last data: the idle timeout. */
	uint64_t partial_tsc;       /* Since when a frame waits for the producer's bytes; 0: none. */
	uint32_t q_head;            /* Queued receive buffers (ids), DP_KERNEL_NONE: none. */
	uint32_t q_tail;
	uint32_t q_off;             /* Bytes of the head buffer already consumed. */
	uint32_t reserved;          /* Frames handed over and owed an answer. */
	uint32_t tx_used;
	uint32_t send_size;         /* tx[0 .. send_size) is being sent. */
	uint8_t *tx;                /* From the send buffer pool while needed. */
	struct dp_ksplit split;
};

struct dp_kernel_udp_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_in to;
	uint8_t bytes[DP_UDP_PAYLOAD_MAX];
};

/* A provided-buffer ring: its shared entries and the buffers they lend. */
struct dp_kernel_bufs {
	struct io_uring_buf_ring *ring;
	size_t ring_size;
	uint8_t *mem;
	uint32_t count;
	uint32_t size;
	uint16_t bgid;
	uint32_t *back;             /* Ids to give back after the burst. */
	uint32_t back_count;
};

struct dp_kernel {
	struct io_uring ring;
	bool ring_ready;
	int udp_fd;
	int listen_fd;
	bool udp_armed;
	bool accept_armed;
	struct msghdr udp_msg;      /* Multishot recvmsg template: name and control sizes. */
	uint32_t udp_drops_seen;    /* The socket's drop count (SO_RXQ_OVFL) counted so far. */
	struct dp_kernel_bufs udp;
	struct dp_kernel_bufs tcp;
	uint32_t *tcp_len;          /* Per TCP buffer: bytes the kernel put in it ... */
	uint32_t *tcp_next;         /* ... and the next one queued on its connection. */
	struct dp_kernel_udp_slot *slots;
	uint32_t *slot_free;
	uint32_t slot_free_count;
	struct dp_kconn *conns;
	uint32_t conn_count;
	uint32_t *conn_free;
	uint32_t conn_free_count;
	uint32_t *attention;        /* Connections to service this pass. */
	uint32_t attention_count;
	uint32_t attention_busy;    /* Of those, not just waiting for room (dp_kernel_idle). */
	uint32_t *sendq;            /* Connections with answers to send. */
	uint32_t sendq_count;
	uint8_t *asm_mem;           /* tcp_rx_buffers x asm_size */
	uint8_t **asm_free;
	uint32_t asm_free_count;
	uint32_t asm_size;
	uint8_t *tx_mem;            /* tcp_tx_buffers x tx_size */
	uint8_t **tx_free;
	uint32_t tx_free_count;
	uint32_t tx_size;
	uint32_t current;           /* The connection being split (splitter callbacks). */
	uint64_t now_tsc;
	uint64_t sweep_tsc;         /* Last timeout sweep ... */
	uint32_t sweep_cursor;      /* ... and the connection it goes on from. */
	uint64_t idle_tsc;          /* tcp_idle_timeout_s (0: never) ... */
	uint64_t partial_tsc;       /* ... and tcp_partial_frame_s, in TSC ticks. */
};

static inline uint64_t
dp_kernel_data(enum dp_kernel_kind kind, uint32_t index)
{
	return (uint64_t)kind << 60 | index;
}

/* ---- Submission ---------------------------------------------------------- */

/* An SQE; a full submission queue is submitted first. NULL only if that fails. */
static struct io_uring_sqe *
dp_kernel_sqe(struct dp_kernel *k)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&k->ring);

	if (sqe == NULL && io_uring_submit(&k->ring) >= 0)
		sqe = io_uring_get_sqe(&k->ring);
	return sqe;
}

static void
dp_kernel_bufs_give_back(struct dp_kernel_bufs *b)
{
	int mask = io_uring_buf_ring_mask(b->count);

	for (uint32_t i = 0; i < b->back_count; i++) {
		uint32_t id = b->back[i];

		io_uring_buf_ring_add(b->ring, b->mem + (size_t)id * b->size, b->size,
				      (unsigned short)id, mask, (int)i);
	}
	io_uring_buf_ring_advance(b->ring, (int)b->back_count);
	b->back_count = 0;
}

static void
dp_kernel_arm_udp(struct dp_kernel *k)
{
	struct io_uring_sqe *sqe;

	if (k->udp_armed || (sqe = dp_kernel_sqe(k)) == NULL)
		return;
	io_uring_prep_recvmsg_multishot(sqe, k->udp_fd, &k->udp_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = DP_KERNEL_UDP_BGID;
	io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_UDP_RECV, 0));
	k->udp_armed = true;
}

static void
dp_kernel_arm_accept(struct dp_kernel *k)
{
	struct io_uring_sqe *sqe;

	if (k->accept_armed || (sqe = dp_kernel_sqe(k)) == NULL)
		return;
	io_uring_prep_multishot_accept(sqe, k->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_ACCEPT, 0));
	k->accept_armed = true;
}

static bool
dp_kernel_arm_recv(struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];
	struct io_uring_sqe *sqe = dp_kernel_sqe(k);

	if (sqe == NULL)
		return false;
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = DP_KERNEL_TCP_BGID;
	io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_TCP_RECV, index));
	c->recv_armed = true;
	c->cancel_sent = false;
	return true;
}

static void
dp_kernel_cancel_recv(struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];
	struct io_uring_sqe *sqe;

	if (!c->recv_armed || c->cancel_sent || (sqe = dp_kernel_sqe(k)) == NULL)
		return;
	io_uring_prep_cancel64(sqe, dp_kernel_data(DP_KERNEL_TCP_RECV, index), 0);
	io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_CANCEL, index));
	c->cancel_sent = true;
}

/* ---- UDP ----------------------------------------------------------------- */

/*
 * Datagrams the kernel dropped on a full socket buffer: SO_RXQ_OVFL puts the
 * socket's running drop count on each datagram after the first drop; the
 * increase since the last one is counted, so no datagram is lost uncounted.
 */
static void
dp_kernel_udp_drops(struct dp_worker *w, struct dp_kernel *k, struct io_uring_recvmsg_out *out)
{
	struct cmsghdr *cm = io_uring_recvmsg_cmsg_firsthdr(out, &k->udp_msg);

	for (; cm != NULL; cm = io_uring_recvmsg_cmsg_nexthdr(out, &k->udp_msg, cm)) {
		uint32_t drops;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SO_RXQ_OVFL)
			continue;
		memcpy(&drops, CMSG_DATA(cm), sizeof(drops));
		dp_count(w, DP_KERNEL_RX_DROPPED, drops - k->udp_drops_seen);
		k->udp_drops_seen = drops;
	}
}

static void
dp_kernel_udp_recv(struct dp_worker *w, struct dp_kernel *k, const struct io_uring_cqe *cqe)
{
	struct io_uring_recvmsg_out *out;
	const struct sockaddr_in *from;
	struct dp_peer peer = { .kernel = true };
	uint32_t id;
	uint8_t *buf;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		k->udp_armed = false;
	if (cqe->res < 0) {
		dp_count(w, cqe->res == -ENOBUFS ? DP_KERNEL_RX_NO_BUFFER : DP_KERNEL_ERRORS, 1);
		return;
	}
	assert(cqe->flags & IORING_CQE_F_BUFFER);
	id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	assert(id < k->udp.count);
	k->udp.back[k->udp.back_count++] = id;
	buf = k->udp.mem + (size_t)id * k->udp.size;
	out = io_uring_recvmsg_validate(buf, cqe->res, &k->udp_msg);
	if (out == NULL || out->namelen < sizeof(*from) || (out->flags & MSG_TRUNC)) {
		dp_count(w, DP_KERNEL_TRUNCATED, 1);
		return;
	}
	dp_kernel_udp_drops(w, k, out);
	from = io_uring_recvmsg_name(out);
	peer.ipv4_be = from->sin_addr.s_addr;
	peer.port_be = from->sin_port;
	dp_count(w, DP_RX_PACKETS, 1);
	dp_count(w, DP_RX_BYTES, out->payloadlen);
	dp_ingest_datagram(w, &peer, io_uring_recvmsg_payload(out, &k->udp_msg),
			   io_uring_recvmsg_payload_length(out, cqe->res, &k->udp_msg), k->now_tsc);
}

static void
dp_kernel_udp_send(struct dp_worker *w, struct dp_kernel *k, const struct dp_peer *peer,
		   const struct frame_ack *ack)
{
	struct dp_kernel_udp_slot *s;
	struct io_uring_sqe *sqe;
	uint32_t slot;
	int size;

	if (k->slot_free_count == 0) {
		dp_count(w, DP_TX_DROPPED, 1); /* Like a full TX queue: the producer retries. */
		return;
	}
	slot = k->slot_free[k->slot_free_count - 1];
	s = &k->slots[slot];
	size = frame_ack_encode(s->bytes, sizeof(s->bytes), ack, false);
	if (size <= 0) {
		/* Only a NACK echoing a lying frame's fields can get here: drop it. */
		dp_count(w, DP_NACKS_SUPPRESSED, 1);
		return;
	}
	sqe = dp_kernel_sqe(k);
	if (sqe == NULL) {
		dp_count(w, DP_TX_DROPPED, 1);
		return;
	}
	k->slot_free_count--;
	s->to.sin_family = AF_INET;
	s->to.sin_addr.s_addr = peer->ipv4_be;
	s->to.sin_port = peer->port_be;
	s->iov.iov_len = (size_t)size;
	io_uring_prep_sendmsg(sqe, k->udp_fd, &s->msg, 0);
	io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_UDP_SEND, slot));
	dp_count(w, ack->type == FRAME_TYPE_ACK ? DP_ACKS_SENT : DP_NACKS_SENT, 1);
}

static void
dp_kernel_udp_sent(struct dp_worker *w, struct dp_kernel *k, uint32_t slot, int res)
{
	assert(slot < DP_KERNEL_UDP_TX_SLOTS);
	k->slot_free[k->slot_free_count++] = slot;
	if (res < 0) {
		dp_count(w, DP_TX_DROPPED, 1);
		return;
	}
	dp_count(w, DP_TX_PACKETS, 1);
	dp_count(w, DP_TX_BYTES, (uint64_t)res);
}

/* ---- TCP connections ----------------------------------------------------- */

static void
dp_kernel_attend(struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];

	if (c->listed)
		return;
	c->listed = true;
	k->attention[k->attention_count++] = index;
	k->attention_busy++;    /* Until a pass finds it only waiting for room. */
}

static void
dp_kernel_queue_send(struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];

	if (c->dirty)
		return;
	c->dirty = true;
	k->sendq[k->sendq_count++] = index;
}

/* Queued receive buffers go back to the ring (after this pass's burst end). */
static void
dp_kernel_drop_queue(struct dp_kernel *k, struct dp_kconn *c)
{
	while (c->q_head != DP_KERNEL_NONE) {
		k->tcp.back[k->tcp.back_count++] = c->q_head;
		c->q_head = k->tcp_next[c->q_head];
	}
	c->q_tail = DP_KERNEL_NONE;
	c->q_off = 0;
}

/* The slot is free once no request of it is in flight. */
static void
dp_kernel_conn_reap(struct dp_worker *w, struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];

	if (c->state != DP_KCONN_CLOSING || c->recv_armed || c->send_inflight || c->listed)
		return;
	close(c->fd);
	if (c->tx != NULL)
		k->tx_free[k->tx_free_count++] = c->tx;
	c->tx = NULL;
	c->fd = -1;
	c->state = DP_KCONN_FREE;
	k->conn_free[k->conn_free_count++] = index;
	dp_count(w, DP_TCP_CONNS_CLOSED, 1);
}

static const struct dp_ksplit_ops dp_kernel_split_ops;

/* Closes a connection: answers still owed to it are orphaned (counted when they come). */
static void
dp_kernel_conn_close(struct dp_worker *w, struct dp_kernel *k, uint32_t index)
{
	struct dp_kconn *c = &k->conns[index];

	if (c->state != DP_KCONN_OPEN)
		return;
	c->state = DP_KCONN_CLOSING;
	c->gen++;
	c->reserved = 0;
	c->tx_used = c->send_inflight ? c->send_size : 0;
	dp_kernel_drop_queue(k, c);
	dp_ksplit_reset(&c->split, &dp_kernel_split_ops, w);
	/* Ends the multishot recv (and any send) with a completion; reaped then. */
	shutdown(c->fd, SHUT_RDWR);
	dp_kernel_conn_reap(w, k, index);
}

/* A send buffer goes back to the pool while nothing is owed or in it. */
static void
dp_kernel_tx_release(struct dp_kernel *k, struct dp_kconn *c)
{
	if (c->tx == NULL || c->tx_used > 0 || c->reserved > 0 || c->send_inflight)
		return;
	k->tx_free[k->tx_free_count++] = c->tx;
	c->tx = NULL;
}

static void
dp_kernel_accepted(struct dp_worker *w, struct dp_kernel *k, const struct io_uring_cqe *cqe)
{
	uint32_t index;
	struct dp_kconn *c;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		k->accept_armed = false;
	if (cqe->res < 0) {
		dp_count(w, DP_KERNEL_ERRORS, 1);
		return;
	}
	if (k->conn_free_count == 0) {
		close(cqe->res);
		dp_count(w, DP_TCP_REFUSED_TABLE_FULL, 1);
		return;
	}
	index = k->conn_free[--k->conn_free_count];
	c = &k->conns[index];
	assert(c->state == DP_KCONN_FREE);
	c->fd = cqe->res;
	c->state = DP_KCONN_OPEN;
	c->eof = false;
	c->q_head = c->q_tail = DP_KERNEL_NONE;
	c->q_off = 0;
	c->reserved = 0;
	c->tx_used = 0;
	c->blocked = false;
	c->last_rx_tsc = k->now_tsc;
	c->partial_tsc = 0;
	dp_count(w, DP_TCP_CONNS_OPENED, 1);
	dp_kernel_attend(k, index); /* Its recv is armed when the connection is serviced. */
}

/* Data (or the end of a multishot recv) on a connection: queued, serviced later. */
static void
dp_kernel_tcp_recv(struct dp_worker *w, struct dp_kernel *k, uint32_t index,
		   const struct io_uring_cqe *cqe)
{
	struct dp_kconn *c = &k->conns[index];

	assert(index < k->conn_count && c->state != DP_KCONN_FREE);
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = false;
	if (cqe->res > 0) {
		uint32_t id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		assert(cqe->flags & IORING_CQE_F_BUFFER);
		assert(id < k->tcp.count);
		dp_count(w, DP_RX_BYTES, (uint64_t)cqe->res);
		if (c->state != DP_KCONN_OPEN) {
			k->tcp.back[k->tcp.back_count++] = id; /* Closing: its recv may end here. */
		} else {
			c->last_rx_tsc = k->now_tsc;
			k->tcp_len[id] = (uint32_t)cqe->res;
			k->tcp_next[id] = DP_KERNEL_NONE;
			if (c->q_tail == DP_KERNEL_NONE)
				c->q_head = id;
			else
				k->tcp_next[c->q_tail] = id;
			c->q_tail = id;
		}
	} else if (cqe->res == 0) {
		c->eof = true;
	} else if (cqe->res == -ENOBUFS) {
		dp_count(w, DP_KERNEL_RX_NO_BUFFER, 1);
	} else if (cqe->res != -ECANCELED) {
		dp_kernel_conn_close(w, k, index); /* Reset by the peer, or shut down by us. */
	}
	dp_kernel_attend(k, index);
}

static void
dp_kernel_tcp_sent(struct dp_worker *w, struct dp_kernel *k, uint32_t index, int res)
{
	struct dp_kconn *c = &k->conns[index];

	assert(index < k->conn_count && c->send_inflight);
	c->send_inflight = false;
	if (res <= 0 || c->state != DP_KCONN_OPEN) {
		dp_kernel_conn_close(w, k, index);
		dp_kernel_conn_reap(w, k, index);
		return;
	}
	assert((uint32_t)res <= c->send_size && c->send_size <= c->tx_used);
	memmove(c->tx, c->tx + res, c->tx_used - (uint32_t)res);
	c->tx_used -= (uint32_t)res;
	dp_count(w, DP_TX_BYTES, (uint64_t)res);
	if (c->tx_used > 0)
		dp_kernel_queue_send(k, index);
	dp_kernel_tx_release(k, c);
	dp_kernel_attend(k, index); /* Room again: a stopped connection may go on. */
}

static void
dp_kernel_send_all(struct dp_worker *w, struct dp_kernel *k)
{
	for (uint32_t i = 0; i < k->sendq_count; i++) {
		struct dp_kconn *c = &k->conns[k->sendq[i]];
		struct io_uring_sqe *sqe;

		c->dirty = false;
		if (c->state != DP_KCONN_OPEN || c->send_inflight || c->tx_used == 0)
			continue;
		sqe = dp_kernel_sqe(k);
		if (sqe == NULL) {
			dp_count(w, DP_KERNEL_ERRORS, 1);
			dp_kernel_conn_close(w, k, k->sendq[i]);
			continue;
		}
		io_uring_prep_send(sqe, c->fd, c->tx, c->tx_used, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, dp_kernel_data(DP_KERNEL_TCP_SEND, k->sendq[i]));
		c->send_size = c->tx_used;
		c->send_inflight = true;
		dp_count(w, DP_TX_PACKETS, 1);
	}
	k->sendq_count = 0;
}

/* ---- The splitter's callbacks (connection k->current) ---------------------- */

static bool
dp_kernel_split_can_take(void *ctx)
{
	struct dp_worker *w = ctx;
	struct dp_kernel *k = w->kernel;
	struct dp_kconn *c = &k->conns[k->current];

	if (!dp_ingest_can_take(w))
		return false;
	if (c->tx == NULL) {
		if (k->tx_free_count == 0)
			return false;
		c->tx = k->tx_free[--k->tx_free_count];
	}
	/* Room for every owed answer, this frame's included: none is ever dropped. */
	return c->tx_used + (uint64_t)(c->reserved + 1) * DP_TCP_ANSWER_MAX <= k->tx_size;
}

static void
dp_kernel_split_frame(void *ctx, const uint8_t *frame, uint32_t size, bool assembled)
{
	struct dp_worker *w = ctx;
	struct dp_kernel *k = w->kernel;
	struct dp_kconn *c = &k->conns[k->current];
	struct dp_peer peer = {
		.kernel = true, .tcp = true, .tcp_conn = k->current, .tcp_gen = c->gen,
	};

	c->reserved++;
	dp_count(w, DP_TCP_FRAMES_IN, 1);
	dp_ingest_datagram(w, &peer, frame, size, k->now_tsc);
	/* The assembly buffer is reused next: its frame must be through ingest now. */
	if (assembled)
		dp_ingest_burst_end(w, k->now_tsc);
}

static uint8_t *
dp_kernel_split_take_asm(void *ctx)
{
	struct dp_worker *w = ctx;
	struct dp_kernel *k = w->kernel;

	if (k->asm_free_count == 0) {
		dp_count(w, DP_TCP_RX_NO_BUFFER, 1);
		return NULL;
	}
	return k->asm_free[--k->asm_free_count];
}

static void
dp_kernel_split_put_asm(void *ctx, uint8_t *buffer)
{
	struct dp_kernel *k = ((struct dp_worker *)ctx)->kernel;

	k->asm_free[k->asm_free_count++] = buffer;
}

static const struct dp_ksplit_ops dp_kernel_split_ops = {
	.can_take = dp_kernel_split_can_take,
	.frame = dp_kernel_split_frame,
	.take_asm = dp_kernel_split_take_asm,
	.put_asm = dp_kernel_split_put_asm,
};

/*
 * Feeds a connection's queued data to the splitter. Returns 0 when all of it
 * went, -EAGAIN when ingest or the connection pushed back, or the splitter's
 * error (the connection is to be closed).
 */
static int
dp_kernel_conn_pump(struct dp_worker *w, struct dp_kernel *k, struct dp_kconn *c)
{
	int rc = 0;

	if (dp_ksplit_holds_frame(&c->split))
		rc = dp_ksplit_feed(&c->split, NULL, 0, &dp_kernel_split_ops, w, &(uint32_t){0});
	while (rc == 0 && c->q_head != DP_KERNEL_NONE) {
		uint32_t id = c->q_head;
		const uint8_t *bytes = k->tcp.mem + (size_t)id * k->tcp.size;
		uint32_t used;

		rc = dp_ksplit_feed(&c->split, bytes + c->q_off, k->tcp_len[id] - c->q_off,
				    &dp_kernel_split_ops, w, &used);
		c->q_off += used;
		if (rc != 0)
			break;
		if (c->q_off < k->tcp_len[id])
			return -EAGAIN;
		k->tcp.back[k->tcp.back_count++] = id;
		c->q_head = k->tcp_next[id];
		c->q_off = 0;
		if (c->q_head == DP_KERNEL_NONE)
			c->q_tail = DP_KERNEL_NONE;
	}
	/* A frame assembled whole but not taken is back-pressure too: no byte may follow. */
	return rc == 0 && dp_ksplit_holds_frame(&c->split) ? -EAGAIN : rc;
}

/*
 * Splits what arrived; stops or re-arms the receive. Stays listed while stopped.
 * *waiting: stopped, and this retry took nothing (it waits for the log or for its
 * answers to go: a completion, so the worker may nap meanwhile).
 */
static bool
dp_kernel_conn_service(struct dp_worker *w, struct dp_kernel *k, uint32_t index,
		       bool *waiting)
{
	struct dp_kconn *c = &k->conns[index];
	uint32_t head = c->q_head;
	uint32_t off = c->q_off;
	bool held = dp_ksplit_holds_frame(&c->split);
	int rc;

	*waiting = false;
	if (c->state != DP_KCONN_OPEN)
		return false;
	k->current = index;
	rc = dp_kernel_conn_pump(w, k, c);
	if (rc == -EAGAIN) {
		if (!c->blocked)
			dp_count(w, DP_TCP_BLOCKED, 1);
		*waiting = c->blocked && head == c->q_head && off == c->q_off &&
			   held == dp_ksplit_holds_frame(&c->split);
		c->blocked = true;
		c->partial_tsc = 0; /* Waiting on us, not on the producer. */
		dp_kernel_cancel_recv(k, index); /* The kernel's window closes. */
		return true;
	}
	c->blocked = false;
	if (!dp_ksplit_is_partial(&c->split))
		c->partial_tsc = 0;
	else if (c->partial_tsc == 0)
		c->partial_tsc = k->now_tsc;
	if (rc != 0) {
		dp_count(w, rc == -EMSGSIZE ? DP_TCP_FRAME_TOO_LARGE : DP_TCP_FRAMING_ERRORS, 1);
		dp_kernel_conn_close(w, k, index);
		return false;
	}
	if (c->eof) {
		/* Half-closed: the answers owed still go out, then the connection ends. */
		if (c->reserved == 0 && c->tx_used == 0 && !c->send_inflight)
			dp_kernel_conn_close(w, k, index);
		return false;
	}
	if (!c->recv_armed && !dp_kernel_arm_recv(k, index))
		return true;
	return false;
}

/*
 * Connections the producer left hanging: no data for tcp_idle_timeout_s while
 * nothing is owed to it, or a frame begun and not finished for
 * tcp_partial_frame_s (slowloris: it holds an assembly buffer). A bounded
 * round-robin slice per sweep; keepalive is the kernel's (set on the listener).
 */
static void
dp_kernel_sweep(struct dp_worker *w, struct dp_kernel *k)
{
	uint64_t now = k->now_tsc;

	if (now - k->sweep_tsc < w->tsc_per_us * DP_KERNEL_SWEEP_US)
		return;
	k->sweep_tsc = now;
	for (uint32_t i = 0; i < DP_KERNEL_SWEEP_CONNS && i < k->conn_count; i++) {
		uint32_t index = k->sweep_cursor++ % k->conn_count;
		struct dp_kconn *c = &k->conns[index];

		if (c->state != DP_KCONN_OPEN)
			continue;
		if (c->partial_tsc != 0 && now - c->partial_tsc > k->partial_tsc) {
			dp_count(w, DP_TCP_TIMEOUT_PARTIAL, 1);
			dp_kernel_conn_close(w, k, index);
		} else if (k->idle_tsc != 0 && c->reserved == 0 && c->tx_used == 0 &&
			   now - c->last_rx_tsc > k->idle_tsc) {
			dp_count(w, DP_TCP_TIMEOUT_IDLE, 1);
			dp_kernel_conn_close(w, k, index);
		}
	}
}

static void
dp_kernel_attend_all(struct dp_worker *w, struct dp_kernel *k)
{
	uint32_t kept = 0;
	uint32_t busy = 0;

	for (uint32_t i = 0; i < k->attention_count; i++) {
		uint32_t index = k->attention[i];
		bool waiting;

		if (dp_kernel_conn_service(w, k, index, &waiting)) {
			k->attention[kept++] = index;
			busy += !waiting;
			continue;
		}
		k->conns[index].listed = false;
		dp_kernel_conn_reap(w, k, index);
	}
	k->attention_count = kept;
	k->attention_busy = busy;
}

/* ---- Answers (from dp_ingest_send) --------------------------------------- */

static void
dp_kernel_tcp_answer(struct dp_worker *w, struct dp_kernel *k, const struct dp_peer *peer,
		     const struct frame_ack *ack)
{
	struct dp_kconn *c = &k->conns[peer->tcp_conn];
	int size;

	assert(peer->tcp_conn < k->conn_count);
	if (c->state != DP_KCONN_OPEN || c->gen != peer->tcp_gen) {
		dp_count(w, DP_TCP_ANSWERS_ORPHANED, 1);
		return;
	}
	assert(c->reserved > 0 && c->tx != NULL);
	c->reserved--;
	size = frame_ack_encode(c->tx + c->tx_used, DP_TCP_ANSWER_MAX, ack, false);
	if (size == -ENOSPC) {
		/*
		 * More runs than the room reserved for the answer holds (a frame of ~90 runs
		 * or more): the ACK without detail, as on DPDK TCP. Before, none was sent and
		 * the producer waited for its retry to get the dedup window's replay.
		 */
		struct frame_ack short_ack = dp_ingest_ack_without_detail(ack);

		size = frame_ack_encode(c->tx + c->tx_used, DP_TCP_ANSWER_MAX, &short_ack, false);
	}
	if (size <= 0) {
		dp_count(w, DP_NACKS_SUPPRESSED, 1);
		dp_kernel_tx_release(k, c);
		return;
	}
	c->tx_used += (uint32_t)size;
	dp_kernel_queue_send(k, peer->tcp_conn);
	dp_count(w, ack->type == FRAME_TYPE_ACK ? DP_ACKS_SENT : DP_NACKS_SENT, 1);
}

void
dp_kernel_send(struct dp_worker *w, const struct dp_peer *peer, const struct frame_ack *ack)
{
	assert(peer->kernel);
	if (peer->tcp)
		dp_kernel_tcp_answer(w, w->kernel, peer, ack);
	else
		dp_kernel_udp_send(w, w->kernel, peer, ack);
}

void
dp_kernel_unanswered(struct dp_worker *w, const struct dp_peer *peer)
{
	struct dp_kernel *k = w->kernel;
	struct dp_kconn *c = &k->conns[peer->tcp_conn];

	assert(peer->kernel && peer->tcp && peer->tcp_conn < k->conn_count);
	if (c->state != DP_KCONN_OPEN || c->gen != peer->tcp_gen)
		return;
	assert(c->reserved > 0);
	c->reserved--;
	dp_kernel_tx_release(k, c);
	if (c->eof)
		dp_kernel_attend(k, peer->tcp_conn);
}

/* ---- The pass ------------------------------------------------------------ */

static void
dp_kernel_complete(struct dp_worker *w, struct dp_kernel *k, const struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	uint32_t index = (uint32_t)(data & 0x0fffffffu);

	switch ((enum dp_kernel_kind)(data >> 60)) {
	case DP_KERNEL_UDP_RECV:
		dp_kernel_udp_recv(w, k, cqe);
		break;
	case DP_KERNEL_UDP_SEND:
		dp_kernel_udp_sent(w, k, index, cqe->res);
		break;
	case DP_KERNEL_ACCEPT:
		dp_kernel_accepted(w, k, cqe);
		break;
	case DP_KERNEL_TCP_RECV:
		dp_kernel_tcp_recv(w, k, index, cqe);
		break;
	case DP_KERNEL_TCP_SEND:
		dp_kernel_tcp_sent(w, k, index, cqe->res);
		break;
	case DP_KERNEL_CANCEL:
		break;
	default:
		assert(false);
	}
}

static uint32_t
dp_kernel_poll(struct dp_worker *w, uint64_t now_tsc)
{
	struct dp_kernel *k = w->kernel;
	struct io_uring_cqe *cqes[DP_KERNEL_CQE_BURST];
	uint32_t count;
	uint32_t work;

	k->now_tsc = now_tsc;
	if (IO_URING_READ_ONCE(*k->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
		io_uring_get_events(&k->ring);
	count = io_uring_peek_batch_cqe(&k->ring, cqes, DP_KERNEL_CQE_BURST);
	for (uint32_t i = 0; i < count; i++)
		dp_kernel_complete(w, k, cqes[i]);
	io_uring_cq_advance(&k->ring, count);
	dp_kernel_attend_all(w, k);
	dp_kernel_sweep(w, k);
	/* Held frames point into the buffers: they go back only after the burst end. */
	dp_ingest_burst_end(w, now_tsc);
	dp_kernel_bufs_give_back(&k->udp);
	dp_kernel_bufs_give_back(&k->tcp);
	work = count + dp_ingest_poll(w, now_tsc);
	dp_kernel_arm_udp(k);
	dp_kernel_arm_accept(k);
	dp_kernel_send_all(w, k);
	if (io_uring_sq_ready(&k->ring) > 0)
		io_uring_submit(&k->ring);
	dp_count(w, DP_POLLS, 1);
	if (work != 0)
		dp_count(w, DP_POLLS_BUSY, 1);
	return work;
}

/* Idle: RCU-offline, wait for a completion at most idle_sleep_us (not a blind sleep). */
static void
dp_kernel_idle(struct dp_worker *w, uint32_t *idle_polls)
{
	struct dp *dp = w->dp;
	struct __kernel_timespec ts = { .tv_nsec = (long long)dp->config.idle_sleep_us * 1000 };
	struct io_uring_cqe *cqe;

	if (dp->config.idle_polls == 0 || ++*idle_polls < dp->config.idle_polls)
		return;
	*idle_polls = 0;
	/*
	 * Connections stopped by back-pressure whose retry took nothing do not keep it
	 * awake: the room they wait for comes with a completion (a send's CQE ends the
	 * wait; the log's, idle_sleep_us later at most), and the next pass retries them.
	 */
	if (!dp_ingest_is_idle(w) || w->kernel->attention_busy > 0)
		return;
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	io_uring_wait_cqe_timeout(&w->kernel->ring, &cqe, &ts);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	dp_count(w, DP_IDLE_SLEEPS, 1);
}

int
dp_kernel_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	struct dp *dp = w->dp;
	uint32_t idle_polls = 0;

	assert(w->lcore_id == rte_lcore_id());
	rte_rcu_qsbr_thread_register(dp->qsbr, w->index);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	while (!atomic_load_explicit(&dp->stop, memory_order_relaxed)) {
		if (dp_kernel_poll(w, rte_rdtsc()) != 0)
			idle_polls = 0;
		else
			dp_kernel_idle(w, &idle_polls);
		dp_worker_flush_check(w);
		rte_rcu_qsbr_quiescent(dp->qsbr, w->index);
	}
	w->unanswered_at_stop = dp_ingest_drain(w);
	dp_kernel_send_all(w, w->kernel);
	io_uring_submit(&w->kernel->ring);
	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	rte_rcu_qsbr_thread_unregister(dp->qsbr, w->index);
	return 0;
}

/* ---- Start and stop ------------------------------------------------------ */

static void
dp_kernel_socket_buffers(int fd)
{
	int size = (int)DP_KERNEL_SOCKET_BUFFER;

	/* Root may exceed net.core.rmem_max; otherwise the sysctl's cap applies. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* A socket of `type` bound to ipv4:ingest_port, shared with the other workers. */
static int
dp_kernel_socket(const struct dp *dp, int type, int *fd_out)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = dp->ipv4_be,
		.sin_port = dp->ingest_port_be,
	};
	int one = 1;
	int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0)
		rc = -errno;
	if (rc == 0 && type == SOCK_STREAM && listen(fd, DP_KERNEL_LISTEN_BACKLOG) != 0)
		rc = -errno;
	if (rc == 0 && type == SOCK_DGRAM &&
	    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0)
		rc = -errno;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	dp_kernel_socket_buffers(fd);
	*fd_out = fd;
	return 0;
}

/* Connections inherit these from the listener: answers now, and keepalive probes. */
static int
dp_kernel_listener_options(int fd, uint32_t keepalive_s)
{
	int one = 1;
	int idle = (int)keepalive_s;
	int gap = DP_KERNEL_KEEPALIVE_GAP_S;
	int probes = DP_KERNEL_KEEPALIVE_PROBES;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return -errno;
	if (keepalive_s == 0)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &gap, sizeof(gap)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes)) != 0)
		return -errno;
	return 0;
}

static void *
dp_kernel_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A provided-buffer ring of `count` buffers of `size` bytes, all lent to the kernel. */
static int
dp_kernel_bufs_open(struct io_uring *ring, struct dp_kernel_bufs *b, uint16_t bgid,
		    uint32_t count, uint32_t size)
{
	struct io_uring_buf_reg reg = { .ring_entries = count, .bgid = bgid };
	int rc;

	b->count = count;
	b->size = size;
	b->bgid = bgid;
	b->ring_size = (size_t)count * sizeof(struct io_uring_buf);
	b->ring = dp_kernel_map(b->ring_size);
	b->mem = dp_kernel_map((size_t)count * size);
	b->back = calloc(count, sizeof(*b->back));
	if (b->ring == NULL || b->mem == NULL || b->back == NULL)
		return -ENOMEM;
	io_uring_buf_ring_init(b->ring);
	reg.ring_addr = (uint64_t)(uintptr_t)b->ring;
	rc = io_uring_register_buf_ring(ring, &reg, 0);
	if (rc != 0)
		return rc;
	for (uint32_t i = 0; i < count; i++)
		b->back[b->back_count++] = i;
	dp_kernel_bufs_give_back(b);
	return 0;
}

static void
dp_kernel_bufs_close(struct dp_kernel_bufs *b)
{
	if (b->ring != NULL)
		munmap(b->ring, b->ring_size);
	if (b->mem != NULL)
		munmap(b->mem, (size_t)b->count * b->size);
	free(b->back);
	memset(b, 0, sizeof(*b));
}

/* A pool of `count` buffers of `size` bytes: one mapping, a stack of free pointers. */
static int
dp_kernel_pool_open(uint8_t **mem, uint8_t ***free_list, uint32_t *free_count, uint32_t count,
		    uint32_t size)
{
	*mem = dp_kernel_map((size_t)count * size);
	*free_list = calloc(count, sizeof(**free_list));
	if (*mem == NULL || *free_list == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		(*free_list)[i] = *mem + (size_t)(count - 1 - i) * size;
	*free_count = count;
	return 0;
}

static int
dp_kernel_tables_open(struct dp_kernel *k, const struct dp_config *dc)
{
	k->conn_count = dc->tcp_connections;
	k->conns = calloc(k->conn_count, sizeof(*k->conns));
	k->conn_free = calloc(k->conn_count, sizeof(uint32_t));
	k->attention = calloc(k->conn_count, sizeof(uint32_t));
	k->sendq = calloc(k->conn_count, sizeof(uint32_t));
	k->tcp_len = calloc(DP_KERNEL_TCP_BUFFERS, sizeof(uint32_t));
	k->tcp_next = calloc(DP_KERNEL_TCP_BUFFERS, sizeof(uint32_t));
	k->slots = calloc(DP_KERNEL_UDP_TX_SLOTS, sizeof(*k->slots));
	k->slot_free = calloc(DP_KERNEL_UDP_TX_SLOTS, sizeof(uint32_t));
	if (k->conns == NULL || k->conn_free == NULL || k->attention == NULL ||
	    k->sendq == NULL || k->tcp_len == NULL || k->tcp_next == NULL || k->slots == NULL ||
	    k->slot_free == NULL)
		return -ENOMEM;
	k->asm_size = dc->tcp_rx_buffer_kb * 1024u;
	k->idle_tsc = (uint64_t)dc->tcp_idle_timeout_s * rte_get_tsc_hz();
	k->partial_tsc = (uint64_t)dc->tcp_partial_frame_s * rte_get_tsc_hz();
	k->tx_size = dc->tcp_tx_buffer_kb * 1024u;
	for (uint32_t i = 0; i < k->conn_count; i++) {
		k->conns[i].fd = -1;
		dp_ksplit_init(&k->conns[i].split, k->asm_size);
		k->conn_free[i] = k->conn_count - 1 - i;
	}
	k->conn_free_count = k->conn_count;
	for (uint32_t i = 0; i < DP_KERNEL_UDP_TX_SLOTS; i++) {
		struct dp_kernel_udp_slot *s = &k->slots[i];

		s->iov.iov_base = s->bytes;
		s->msg.msg_name = &s->to;
		s->msg.msg_namelen = sizeof(s->to);
		s->msg.msg_iov = &s->iov;
		s->msg.msg_iovlen = 1;
		k->slot_free[i] = DP_KERNEL_UDP_TX_SLOTS - 1 - i;
	}
	k->slot_free_count = DP_KERNEL_UDP_TX_SLOTS;
	k->udp_msg.msg_namelen = sizeof(struct sockaddr_in);
	k->udp_msg.msg_controllen = CMSG_SPACE(sizeof(uint32_t));
	if (dp_kernel_pool_open(&k->asm_mem, &k->asm_free, &k->asm_free_count,
				dc->tcp_rx_buffers, k->asm_size) != 0)
		return -ENOMEM;
	return dp_kernel_pool_open(&k->tx_mem, &k->tx_free, &k->tx_free_count,
				   dc->tcp_tx_buffers, k->tx_size);
}

static int
dp_kernel_ring_open(struct dp_kernel *k)
{
	struct io_uring_params p = {
		.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN |
			 IORING_SETUP_TASKRUN_FLAG,
		.cq_entries = DP_KERNEL_CQ_ENTRIES,
	};
	int rc = io_uring_queue_init_params(DP_KERNEL_SQ_ENTRIES, &k->ring, &p);

	if (rc != 0)
		return rc;
	k->ring_ready = true;
	rc = dp_kernel_bufs_open(&k->ring, &k->udp, DP_KERNEL_UDP_BGID, DP_KERNEL_UDP_BUFFERS,
				 DP_KERNEL_UDP_BUFFER_SIZE);
	if (rc == 0)
		rc = dp_kernel_bufs_open(&k->ring, &k->tcp, DP_KERNEL_TCP_BGID,
					 DP_KERNEL_TCP_BUFFERS, DP_KERNEL_TCP_BUFFER_SIZE);
	return rc;
}

int
dp_kernel_worker_open(struct dp_worker *w)
{
	struct dp_kernel *k = calloc(1, sizeof(*k));
	int rc;

	if (k == NULL)
		return -ENOMEM;
	k->udp_fd = -1;
	k->listen_fd = -1;
	w->kernel = k;
	w->tsc_per_us = w->dp->tsc_hz / 1000000u;
	rc = dp_ingest_init(w);
	if (rc != 0) {
		free(k);
		w->kernel = NULL;
		return rc;
	}
	rc = dp_kernel_tables_open(k, &w->dp->config);
	if (rc == 0)
		rc = dp_kernel_ring_open(k);
	if (rc == 0)
		rc = dp_kernel_socket(w->dp, SOCK_DGRAM, &k->udp_fd);
	if (rc == 0)
		rc = dp_kernel_socket(w->dp, SOCK_STREAM, &k->listen_fd);
	/* Answers are small and wanted now: Nagle would hold one behind another's ACK. */
	if (rc == 0)
		rc = dp_kernel_listener_options(k->listen_fd, w->dp->config.tcp_keepalive_s);
	if (rc != 0) {
		diag_error("dataplane", "kernel backend, worker %u: %s", w->index, strerror(-rc));
		dp_kernel_worker_close(w);
	}
	return rc;
}

void
dp_kernel_worker_close(struct dp_worker *w)
{
	struct dp_kernel *k = w->kernel;

	if (k == NULL)
		return;
	/* Exiting the ring cancels what is in flight before the buffers are unmapped. */
	if (k->ring_ready)
		io_uring_queue_exit(&k->ring);
	for (uint32_t i = 0; k->conns != NULL && i < k->conn_count; i++)
		if (k->conns[i].state != DP_KCONN_FREE)
			close(k->conns[i].fd);
	if (k->udp_fd >= 0)
		close(k->udp_fd);
	if (k->listen_fd >= 0)
		close(k->listen_fd);
	dp_kernel_bufs_close(&k->udp);
	dp_kernel_bufs_close(&k->tcp);
	if (k->asm_mem != NULL)
		munmap(k->asm_mem, (size_t)w->dp->config.tcp_rx_buffers * k->asm_size);
	if (k->tx_mem != NULL)
		munmap(k->tx_mem, (size_t)w->dp->config.tcp_tx_buffers * k->tx_size);
	free(k->asm_free);
	free(k->tx_free);
	free(k->conns);
	free(k->conn_free);
	free(k->attention);
	free(k->sendq);
	free(k->tcp_len);
	free(k->tcp_next);
	free(k->slots);
	free(k->slot_free);
	free(k);
	w->kernel = NULL;
	dp_ingest_fini(w);
}
