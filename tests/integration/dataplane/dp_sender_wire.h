/*
 * dp_sender_wire.h - how dp_sender's frames travel: a connected UDP socket
 * (dp_sender_udp.c) or a DPDK device it drives itself (dp_sender_dpdk.c),
 * each linked into its own executable. One wire per process.
 */
#ifndef SLUICE_DP_SENDER_WIRE_H
#define SLUICE_DP_SENDER_WIRE_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>

struct wire_opts {
	struct sockaddr_in dst;      /* The appliance's ingest address. */
	uint16_t src_port;           /* 0: the wire picks one. */
	const char *device;          /* DPDK wire: the vdev (NULL on the UDP wire). */
	const char *file_prefix;     /* DPDK wire: EAL --file-prefix. */
};

/* 0, or -1 with the reason printed. */
int wire_open(const struct wire_opts *opts);
void wire_close(void);
/* Best effort, as UDP is: a frame the wire cannot take now is lost (and resent). */
void wire_send(const uint8_t *frame, uint16_t size);
/* One answer's UDP payload into `buf`: its size, or 0 when none came within wait_ms. */
ssize_t wire_recv(uint8_t *buf, size_t size, int wait_ms);

#endif /* SLUICE_DP_SENDER_WIRE_H */
