/*
 * dp_sender_dpdk.c - dp_sender's DPDK wire: EAL with one vdev (-D; in the
 * tests a memif client facing sluiced's memif server), one queue pair, and
 * frames wrapped in Ethernet/IPv4/UDP from WIRE_SRC_IPV4 to the appliance,
 * whose MAC it learns by ARP as a host on the wire would. Runs with
 * --no-huge (no hugepages needed) under its own --file-prefix (-F), whose
 * runtime directory it removes on close.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "common/dir.h"
#include "tests/integration/dataplane/dp_sender_wire.h"

#define WIRE_SRC_IPV4 RTE_IPV4(198, 18, 0, 2)
#define WIRE_SRC_PORT_DEFAULT 40000
#define WIRE_MBUFS 4095
#define WIRE_DESCRIPTORS 512
#define WIRE_BURST 32
#define WIRE_LINK_WAIT_MS 10000
#define WIRE_ARP_TRIES 100      /* 100 ms apart. */
#define WIRE_HEADERS_SIZE (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + \
			   sizeof(struct rte_udp_hdr))

static struct {
	bool eal_ready;
	bool port_started;
	uint16_t port;
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	struct rte_ether_addr peer_mac;
	uint32_t src_be;
	uint32_t dst_be;
	uint16_t sport_be;
	uint16_t dport_be;
	struct rte_mbuf *rx[WIRE_BURST];
	uint16_t rx_count;
	uint16_t rx_next;
} wire;

static int
wire_eal(const struct wire_opts *opts)
{
	char lcores[64];
	char prefix[128];
	char vdev[512];
	char *argv[] = { "dp_sender_dpdk", "--no-huge", "-m", "128", "--no-shconf", "--no-pci",
			 "--no-telemetry", "--log-level=*:warning", lcores, prefix, vdev, NULL };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	/* Float over every CPU, as sluiced's lcores do: a 2-CPU host has no CPU to spare. */
	snprintf(lcores, sizeof(lcores), "--lcores=0@(0-%ld)", cpus > 1 ? cpus - 1 : 0);
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", opts->file_prefix);
	if ((size_t)snprintf(vdev, sizeof(vdev), "--vdev=%s", opts->device) >= sizeof(vdev))
		return -1;
	if (rte_eal_init((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) < 0) {
		fprintf(stderr, "dp_sender: rte_eal_init failed\n");
		return -1;
	}
	wire.eal_ready = true;
	return 0;
}

static int
wire_port(void)
{
	struct rte_eth_conf conf;
	struct rte_eth_link link;
	uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() * WIRE_LINK_WAIT_MS / 1000;

	memset(&conf, 0, sizeof(conf));
	wire.port = 0;
	wire.pool = rte_pktmbuf_pool_create("wire", WIRE_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					    (int)rte_socket_id());
	if (!rte_eth_dev_is_valid_port(wire.port) || wire.pool == NULL ||
	    rte_eth_dev_configure(wire.port, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(wire.port, 0, WIRE_DESCRIPTORS, rte_socket_id(), NULL,
				   wire.pool) != 0 ||
	    rte_eth_tx_queue_setup(wire.port, 0, WIRE_DESCRIPTORS, rte_socket_id(), NULL) != 0 ||
	    rte_eth_macaddr_get(wire.port, &wire.mac) != 0 || rte_eth_dev_start(wire.port) != 0) {
		fprintf(stderr, "dp_sender: DPDK port setup failed\n");
		return -1;
	}
	wire.port_started = true;
	/* A memif client's link comes up once the server accepted it. */
	do {
		if (rte_eth_link_get_nowait(wire.port, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			return 0;
		rte_delay_ms(10);
	} while (rte_get_timer_cycles() < deadline);
	fprintf(stderr, "dp_sender: link down after %u ms\n", WIRE_LINK_WAIT_MS);
	return -1;
}

static void
wire_tx(struct rte_mbuf *m)
{
	if (rte_eth_tx_burst(wire.port, 0, &m, 1) != 1)
		rte_pktmbuf_free(m);
}

static void
wire_arp_request(void)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(wire.pool);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (m == NULL)
		return;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eth) + sizeof(*arp));
	arp = (struct rte_arp_hdr *)(eth + 1);
	memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&wire.mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	memset(arp, 0, sizeof(*arp));
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&wire.mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = wire.src_be;
	arp->arp_data.arp_tip = wire.dst_be;
	wire_tx(m);
}

static bool
wire_arp_reply_seen(void)
{
	struct rte_mbuf *rx[WIRE_BURST];
	uint16_t count = rte_eth_rx_burst(wire.port, 0, rx, WIRE_BURST);
	bool seen = false;

	for (uint16_t i = 0; i < count; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(rx[i], struct rte_ether_hdr *);
		struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

		if (rx[i]->data_len >= sizeof(*eth) + sizeof(*arp) &&
		    eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) &&
		    arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
		    arp->arp_data.arp_sip == wire.dst_be) {
			rte_ether_addr_copy(&arp->arp_data.arp_sha, &wire.peer_mac);
			seen = true;
		}
	}
	rte_pktmbuf_free_bulk(rx, count);
	return seen;
}

static int
wire_arp(void)
{
	for (int i = 0; i < WIRE_ARP_TRIES; i++) {
		wire_arp_request();
		for (int k = 0; k < 100; k++) {
			if (wire_arp_reply_seen())
				return 0;
			rte_delay_ms(1);
		}
	}
	fprintf(stderr, "dp_sender: no ARP reply from the appliance\n");
	return -1;
}

int
wire_open(const struct wire_opts *opts)
{
	if (opts->device == NULL || opts->file_prefix == NULL) {
		fprintf(stderr, "dp_sender_dpdk: -D VDEV and -F PREFIX are needed\n");
		return -1;
	}
	wire.src_be = rte_cpu_to_be_32(WIRE_SRC_IPV4);
	wire.dst_be = opts->dst.sin_addr.s_addr;
	wire.dport_be = opts->dst.sin_port;
	wire.sport_be = rte_cpu_to_be_16(opts->src_port != 0 ? opts->src_port :
					 WIRE_SRC_PORT_DEFAULT);
	if (wire_eal(opts) != 0 || wire_port() != 0 || wire_arp() != 0)
		return -1;
	return 0;
}

void
wire_send(const uint8_t *frame, uint16_t size)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(wire.pool);
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;

	if (m == NULL)
		return;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, (uint16_t)(WIRE_HEADERS_SIZE + size));
	if (eth == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	udp = (struct rte_udp_hdr *)(ip + 1);
	rte_ether_addr_copy(&wire.peer_mac, &eth->dst_addr);
	rte_ether_addr_copy(&wire.mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + size));
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = wire.src_be;
	ip->dst_addr = wire.dst_be;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = wire.sport_be;
	udp->dst_port = wire.dport_be;
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + size));
	udp->dgram_cksum = 0;
	memcpy(udp + 1, frame, size);
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	wire_tx(m);
}

/* The UDP payload of `m` when it is an answer to us, else NULL. */
static const uint8_t *
wire_answer(const struct rte_mbuf *m, uint16_t *size_out)
{
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	uint16_t udp_size;

	if (m->nb_segs != 1 || m->data_len < WIRE_HEADERS_SIZE ||
	    eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ip->version_ihl != RTE_IPV4_VHL_DEF || ip->next_proto_id != IPPROTO_UDP ||
	    udp->dst_port != wire.sport_be)
		return NULL;
	udp_size = rte_be_to_cpu_16(udp->dgram_len);
	if (udp_size < sizeof(*udp) || udp_size > m->data_len - sizeof(*eth) - sizeof(*ip))
		return NULL;
	*size_out = (uint16_t)(udp_size - sizeof(*udp));
	return (const uint8_t *)(udp + 1);
}

ssize_t
wire_recv(uint8_t *buf, size_t size, int wait_ms)
{
	uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() * (uint64_t)wait_ms / 1000;

	for (;;) {
		while (wire.rx_next < wire.rx_count) {
			struct rte_mbuf *m = wire.rx[wire.rx_next++];
			uint16_t answer_size = 0;
			const uint8_t *answer = wire_answer(m, &answer_size);
			ssize_t n = 0;

			if (answer != NULL && answer_size <= size) {
				memcpy(buf, answer, answer_size);
				n = answer_size;
			}
			rte_pktmbuf_free(m);
			if (n > 0)
				return n;
		}
		wire.rx_count = rte_eth_rx_burst(wire.port, 0, wire.rx, WIRE_BURST);
		wire.rx_next = 0;
		if (wire.rx_count == 0 && rte_get_timer_cycles() >= deadline)
			return 0;
	}
}

void
wire_close(void)
{
	char runtime_dir[PATH_MAX];

	if (wire.port_started) {
		rte_pktmbuf_free_bulk(&wire.rx[wire.rx_next], wire.rx_count - wire.rx_next);
		rte_eth_dev_stop(wire.port);
		rte_eth_dev_close(wire.port);
		wire.port_started = false;
	}
	if (!wire.eal_ready)
		return;
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	dir_remove_flat(runtime_dir);
	wire.eal_ready = false;
}
