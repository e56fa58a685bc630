/*
 * dp_kernel.h - the kernel-socket ingest backend (private to dataplane/):
 * [dataplane] backend = kernel. The record-frame protocol on kernel UDP and
 * TCP sockets bound to ipv4:ingest_port, through one io_uring per worker,
 * feeding the same ingest code as the DPDK path (dp_ingest.c): the same
 * staging, log batches, duplicate windows and answers.
 *
 * Per worker: a UDP socket and a TCP listener (SO_REUSEPORT: the kernel
 * spreads flows over the workers by their 4-tuple, so one producer stays on
 * one worker and its duplicate window), a multishot recvmsg on the UDP socket
 * and a multishot recv on each connection, both picking buffers from
 * provided-buffer rings, and a multishot accept. Answers leave through
 * io_uring too (sendmsg for UDP, send for TCP), submitted once per pass.
 *
 * Memory: dp_kernel_open() allocates every buffer, ring and table; nothing is
 * allocated afterwards. Threads: the worker's lcore alone uses its state
 * between dp_start() and dp_stop() (it arms every request itself, so the
 * kernel runs completion work on that thread).
 */
#ifndef SLUICE_DP_KERNEL_H
#define SLUICE_DP_KERNEL_H

#include <stdint.h>

struct dp_worker;
struct dp_peer;
struct frame_ack;

#define DP_KERNEL_SQ_ENTRIES 1024u
#define DP_KERNEL_CQ_ENTRIES 16384u
#define DP_KERNEL_CQE_BURST 64u       /* Completions taken per pass (one ingest burst). */
#define DP_KERNEL_UDP_BUFFERS 256u    /* Provided buffers for datagrams (power of two) ... */
#define DP_KERNEL_UDP_BUFFER_SIZE (65536u + 64u) /* ... each any IPv4 datagram + headers. */
#define DP_KERNEL_TCP_BUFFERS 1024u   /* Provided buffers for TCP data (power of two) ... */
#define DP_KERNEL_TCP_BUFFER_SIZE 16384u /* ... of this size. */
#define DP_KERNEL_UDP_TX_SLOTS 1024u  /* UDP answers in flight per worker. */
#define DP_KERNEL_SOCKET_BUFFER (4u << 20) /* SO_RCVBUF/SO_SNDBUF asked for (root: forced). */

/* The worker's sockets, rings and tables, before it starts; undone by close. */
int dp_kernel_worker_open(struct dp_worker *w);
void dp_kernel_worker_close(struct dp_worker *w);
/* The worker lcore's loop (dp_worker_main's counterpart). */
int dp_kernel_worker_main(void *arg);
/* An answer to a kernel peer (dp_ingest_send's kernel branch); counted. */
void dp_kernel_send(struct dp_worker *w, const struct dp_peer *peer, const struct frame_ack *ack);
/* A TCP frame handed over that gets no answer: its reserved room is released. */
void dp_kernel_unanswered(struct dp_worker *w, const struct dp_peer *peer);

#endif /* SLUICE_DP_KERNEL_H */
