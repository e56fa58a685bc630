/*
 * dp_sender_udp.c - dp_sender's kernel wire: one connected UDP socket.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/dataplane/dp_sender_wire.h"

static int wire_fd = -1;

int
wire_open(const struct wire_opts *opts)
{
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(opts->src_port) };

	if (opts->device != NULL) {
		fprintf(stderr, "dp_sender: -D needs dp_sender_dpdk\n");
		return -1;
	}
	wire_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (wire_fd < 0 ||
	    (opts->src_port != 0 &&
	     bind(wire_fd, (const struct sockaddr *)&src, sizeof(src)) != 0) ||
	    connect(wire_fd, (const struct sockaddr *)&opts->dst, sizeof(opts->dst)) != 0) {
		perror("dp_sender: socket");
		return -1;
	}
	return 0;
}

void
wire_close(void)
{
	if (wire_fd >= 0)
		close(wire_fd);
	wire_fd = -1;
}

void
wire_send(const uint8_t *frame, uint16_t size)
{
	/* EPERM: the test's nftables rule dropped it; ECONNREFUSED: an ICMP error. */
	if (send(wire_fd, frame, size, 0) < 0 && errno != ECONNREFUSED && errno != EPERM)
		perror("dp_sender: send");
}

ssize_t
wire_recv(uint8_t *buf, size_t size, int wait_ms)
{
	struct pollfd pfd = { .fd = wire_fd, .events = POLLIN };
	ssize_t n;

	if (wait_ms > 0 && poll(&pfd, 1, wait_ms) <= 0)
		return 0;
	n = recv(wire_fd, buf, size, MSG_DONTWAIT);
	return n > 0 ? n : 0;
}
