/*
 * dp_net: the worker's L2/L3 on a net_ring loopback port. Crafted ARP, ICMP,
 * IPv4 and UDP packets go in; the test checks what the worker transmitted
 * and which counter each packet landed in (every packet lands in exactly one).
 */
#include <string.h>

#include <criterion/criterion.h>
#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "tests/dataplane/dp_test.h"

static void
setup(void)
{
	dp_test_open(NULL);
}

static void
teardown(void)
{
	dp_test_close();
}

TestSuite(dp_net, .init = setup, .fini = teardown, .timeout = 20);

static uint16_t
arp_request(uint8_t *frame, uint32_t target_ipv4, bool broadcast)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

	memset(frame, 0, 60);
	if (broadcast)
		memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
	else
		rte_ether_addr_copy(&dp_test->mac, &eth->dst_addr);
	rte_ether_addr_copy(&dp_test_peer_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&dp_test_peer_mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = rte_cpu_to_be_32(DP_TEST_PEER_IPV4);
	arp->arp_data.arp_tip = rte_cpu_to_be_32(target_ipv4);
	return 60; /* Minimum Ethernet frame: ARP rides with padding. */
}

/* Asserts nothing was sent and `counter` is 1 after one injected packet. */
static void
expect_dropped(enum dp_counter counter)
{
	struct rte_mbuf *out[4];

	dp_test_poll();
	cr_assert_eq(dp_test_sent(out, 4), 0, "nothing may be sent");
	cr_assert_eq(dp_test_counter(counter), 1, "counter %s", dp_counter_name(counter));
	cr_assert_eq(dp_test_counter(DP_RX_PACKETS), 1);
	cr_assert_eq(dp_test_counter(DP_TX_PACKETS), 0);
}

Test(dp_net, answers_arp_for_its_address)
{
	uint8_t frame[64];
	struct rte_mbuf *out[4];
	const struct rte_arp_hdr *arp;
	const struct rte_ether_hdr *eth;

	dp_test_inject(frame, arp_request(frame, DP_TEST_IPV4, true));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(out, 4), 1);
	eth = rte_pktmbuf_mtod(out[0], const struct rte_ether_hdr *);
	arp = (const struct rte_arp_hdr *)(eth + 1);
	cr_assert(rte_is_same_ether_addr(&eth->dst_addr, &dp_test_peer_mac));
	cr_assert(rte_is_same_ether_addr(&eth->src_addr, &dp_test->mac));
	cr_assert_eq(arp->arp_opcode, rte_cpu_to_be_16(RTE_ARP_OP_REPLY));
	cr_assert(rte_is_same_ether_addr(&arp->arp_data.arp_sha, &dp_test->mac));
	cr_assert_eq(arp->arp_data.arp_sip, rte_cpu_to_be_32(DP_TEST_IPV4));
	cr_assert(rte_is_same_ether_addr(&arp->arp_data.arp_tha, &dp_test_peer_mac));
	cr_assert_eq(arp->arp_data.arp_tip, rte_cpu_to_be_32(DP_TEST_PEER_IPV4));
	cr_assert_eq(dp_test_counter(DP_ARP_REPLIES), 1);
	cr_assert_eq(dp_test_counter(DP_TX_PACKETS), 1);
	rte_pktmbuf_free(out[0]);
}

Test(dp_net, answers_unicast_arp_too)
{
	uint8_t frame[64];
	struct rte_mbuf *out[4];

	dp_test_inject(frame, arp_request(frame, DP_TEST_IPV4, false));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(out, 4), 1);
	rte_pktmbuf_free(out[0]);
}

Test(dp_net, ignores_arp_for_another_address)
{
	uint8_t frame[64];

	dp_test_inject(frame, arp_request(frame, DP_TEST_IPV4 + 1, true));
	expect_dropped(DP_DROP_NOT_OURS);
}

Test(dp_net, refuses_truncated_arp)
{
	uint8_t frame[64];

	arp_request(frame, DP_TEST_IPV4, true);
	dp_test_inject(frame, sizeof(struct rte_ether_hdr) + sizeof(struct rte_arp_hdr) - 1);
	expect_dropped(DP_DROP_MALFORMED_L2L3);
}

Test(dp_net, drops_arp_replies)
{
	uint8_t frame[64];
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(frame + sizeof(struct rte_ether_hdr));

	arp_request(frame, DP_TEST_IPV4, true);
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	dp_test_inject(frame, 60);
	expect_dropped(DP_DROP_UNKNOWN);
}

/* An echo request from the peer with `data_size` bytes of data. */
static uint16_t
icmp_echo(uint8_t *frame, uint16_t data_size)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	uint16_t l4_size = (uint16_t)(sizeof(*icmp) + data_size);

	dp_test_udp_frame(frame, 7, "", 0);
	ip->next_proto_id = IPPROTO_ICMP;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4_size));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memset(icmp, 0, sizeof(*icmp));
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	icmp->icmp_ident = rte_cpu_to_be_16(0x1234);
	icmp->icmp_seq_nb = rte_cpu_to_be_16(7);
	for (uint16_t i = 0; i < data_size; i++)
		((uint8_t *)(icmp + 1))[i] = (uint8_t)i;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, l4_size);
	return (uint16_t)(sizeof(*eth) + sizeof(*ip) + l4_size);
}

Test(dp_net, answers_icmp_echo)
{
	uint8_t frame[256];
	uint16_t size = icmp_echo(frame, 56);
	struct rte_mbuf *out[4];
	const struct rte_ipv4_hdr *ip;
	const struct rte_icmp_hdr *icmp;

	dp_test_inject(frame, size);
	dp_test_poll();
	cr_assert_eq(dp_test_sent(out, 4), 1);
	cr_assert_eq(out[0]->pkt_len, size);
	ip = rte_pktmbuf_mtod_offset(out[0], const struct rte_ipv4_hdr *,
				     sizeof(struct rte_ether_hdr));
	icmp = (const struct rte_icmp_hdr *)(ip + 1);
	cr_assert_eq(ip->src_addr, rte_cpu_to_be_32(DP_TEST_IPV4));
	cr_assert_eq(ip->dst_addr, rte_cpu_to_be_32(DP_TEST_PEER_IPV4));
	cr_assert_eq(rte_raw_cksum(ip, sizeof(*ip)), 0xffff, "IPv4 header checksum");
	cr_assert_eq(icmp->icmp_type, RTE_IP_ICMP_ECHO_REPLY);
	cr_assert_eq(rte_raw_cksum(icmp, sizeof(*icmp) + 56), 0xffff, "ICMP checksum");
	cr_assert_eq(icmp->icmp_seq_nb, rte_cpu_to_be_16(7));
	cr_assert_arr_eq(icmp + 1, frame + size - 56, 56, "echo data comes back unchanged");
	cr_assert_eq(dp_test_counter(DP_ICMP_ECHO_REPLIES), 1);
	rte_pktmbuf_free(out[0]);
}

Test(dp_net, drops_icmp_with_bad_checksum)
{
	uint8_t frame[256];
	uint16_t size = icmp_echo(frame, 8);

	frame[size - 1] ^= 0x01;
	dp_test_inject(frame, size);
	expect_dropped(DP_DROP_BAD_CHECKSUM);
}

Test(dp_net, drops_other_icmp_types)
{
	uint8_t frame[256];
	uint16_t size = icmp_echo(frame, 8);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(frame + 34);

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, 16);
	dp_test_inject(frame, size);
	expect_dropped(DP_DROP_UNKNOWN);
}

Test(dp_net, drops_bad_ipv4_header_checksum)
{
	uint8_t frame[128];
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "x", 1);

	frame[14 + 8] ^= 0x10; /* TTL: the header checksum no longer matches. */
	dp_test_inject(frame, size);
	expect_dropped(DP_DROP_BAD_CHECKSUM);
}

Test(dp_net, drops_bad_udp_checksum)
{
	uint8_t frame[128];
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcd", 4);

	frame[size - 1] ^= 0x01;
	dp_test_inject(frame, size);
	expect_dropped(DP_DROP_BAD_CHECKSUM);
}

/*
 * Long datagrams take the vector checksum path: every size from 100 to 1,400
 * bytes in steps that cover each tail, valid (reaches the port check) and
 * with one flipped bit in the body or the tail (a checksum drop).
 */
Test(dp_net, checks_udp_checksums_of_long_datagrams)
{
	static uint8_t payload[1400];
	static uint8_t frame[1500];
	uint64_t wrong_port = 0;
	uint64_t bad_sum = 0;

	for (uint32_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 37 + 11);
	for (uint16_t len = 100; len <= sizeof(payload); len += 13) {
		uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT + 1, payload, len);

		dp_test_inject(frame, size);
		frame[42 + len / 2] ^= 0x04;
		dp_test_inject(frame, size);
		frame[42 + len / 2] ^= 0x04;
		frame[size - 1] ^= 0x80;
		dp_test_inject(frame, size);
		while (dp_test_poll() != 0)
			;
		wrong_port += 1;
		bad_sum += 2;
		cr_assert_eq(dp_test_counter(DP_DROP_WRONG_PORT), wrong_port, "len %u", len);
		cr_assert_eq(dp_test_counter(DP_DROP_BAD_CHECKSUM), bad_sum, "len %u", len);
	}
}

Test(dp_net, keeps_fragments_for_reassembly)
{
	uint8_t frame[128];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + 14);
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcd", 4);
	uint16_t flags[] = { RTE_IPV4_HDR_MF_FLAG, 1, RTE_IPV4_HDR_MF_FLAG | 8 };

	for (uint32_t i = 0; i < 3; i++) {
		ip->fragment_offset = rte_cpu_to_be_16(flags[i]);
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		dp_test_inject(frame, size);
	}
	dp_test_poll();
	/* Parts of datagrams whose other parts never come: held (bounded), not answered. */
	cr_assert_eq(dp_test_counter(DP_RX_FRAGMENTS), 3);
	cr_assert_eq(dp_test_counter(DP_REASSEMBLED), 0);
	cr_assert_eq(dp_test_counter(DP_TX_PACKETS), 0);
}

Test(dp_net, drops_udp_to_another_port)
{
	uint8_t frame[128];

	dp_test_inject(frame, dp_test_udp_frame(frame, DP_TEST_PORT + 1, "abcd", 4));
	expect_dropped(DP_DROP_WRONG_PORT);
}

Test(dp_net, drops_other_ip_protocols)
{
	uint8_t frame[128];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + 14);
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcd", 4);

	ip->next_proto_id = IPPROTO_GRE; /* TCP and UDP are served, ICMP answered. */
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	dp_test_inject(frame, size);
	expect_dropped(DP_DROP_UNKNOWN);
}

Test(dp_net, drops_other_addresses_and_ethertypes)
{
	uint8_t frame[128];
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcd", 4);

	eth->dst_addr.addr_bytes[5] ^= 1;
	dp_test_inject(frame, size);
	eth->dst_addr.addr_bytes[5] ^= 1;
	ip->dst_addr = rte_cpu_to_be_32(DP_TEST_IPV4 + 1);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	dp_test_inject(frame, size);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	dp_test_inject(frame, size);
	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_DROP_NOT_OURS), 2);
	cr_assert_eq(dp_test_counter(DP_DROP_UNKNOWN), 1);
}

/* Every cut of a valid datagram is dropped as malformed: no read past the data. */
Test(dp_net, refuses_every_truncation)
{
	uint8_t frame[128];
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcdefgh", 8);

	for (uint16_t cut = 1; cut < size; cut++)
		dp_test_inject(frame, cut);
	while (dp_test_poll() != 0)
		;
	cr_assert_eq(dp_test_counter(DP_DROP_MALFORMED_L2L3), size - 1u);
	cr_assert_eq(dp_test_counter(DP_TX_PACKETS), 0);
}

/* Lengths that claim more or less than the packet holds. */
Test(dp_net, refuses_lying_lengths)
{
	uint8_t frame[128];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + 14);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "abcdefgh", 8);
	uint16_t ip_lengths[] = { (uint16_t)(size - 14 + 1), 19, 0 };
	uint16_t udp_lengths[] = { 7, 8 + 9, 8 + 7 };

	for (uint32_t i = 0; i < 3; i++) {
		dp_test_udp_frame(frame, DP_TEST_PORT, "abcdefgh", 8);
		ip->total_length = rte_cpu_to_be_16(ip_lengths[i]);
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		dp_test_inject(frame, size);
	}
	for (uint32_t i = 0; i < 3; i++) {
		dp_test_udp_frame(frame, DP_TEST_PORT, "abcdefgh", 8);
		udp->dgram_len = rte_cpu_to_be_16(udp_lengths[i]);
		udp->dgram_cksum = 0;
		dp_test_inject(frame, size);
	}
	frame[14] = 0x44; /* IHL 4: shorter than an IPv4 header. */
	dp_test_inject(frame, size);
	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_DROP_MALFORMED_L2L3), 7);
}

/* Ethernet pads short frames to 60 bytes; the IPv4 length wins. */
Test(dp_net, accepts_padded_datagrams_without_udp_checksum)
{
	uint8_t frame[128];
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(frame + 34);
	uint16_t size = dp_test_udp_frame(frame, DP_TEST_PORT, "ab", 2);

	udp->dgram_cksum = 0;
	memset(frame + size, 0xee, 60 - size);
	dp_test_inject(frame, 60);
	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_DROP_MALFORMED_L2L3), 0);
	cr_assert_eq(dp_test_counter(DP_DROP_BAD_CHECKSUM), 0);
	/* "ab" is no record frame: it reaches ingest and is refused there. */
	cr_assert_eq(dp_test_counter(DP_FRAMES_MALFORMED), 1);
}

static void
setup_two_workers(void)
{
	dp_test_workers = 2;
	dp_test_open(NULL);
}

/*
 * Worker i answers on TX queue i only: net_tap steers a flow to the queue it
 * was last answered on, so answering elsewhere would move the flow.
 */
Test(dp_net_queues, answers_on_its_own_queue, .init = setup_two_workers, .fini = teardown,
     .timeout = 20)
{
	uint8_t frame[64];
	struct rte_mbuf *out[4];

	cr_assert_eq(dp_test->worker_count, 2);
	cr_assert_eq(dp_test->workers[1].queue_id, 1);
	dp_test_inject_queue(1, frame, arp_request(frame, DP_TEST_IPV4, true));
	dp_test_poll_worker(0);
	cr_assert_eq(dp_test_counter(DP_RX_PACKETS), 0, "worker 0 does not read queue 1");
	dp_test_poll_worker(1);
	cr_assert_eq(dp_test_sent_queue(0, out, 4), 0, "nothing on queue 0");
	cr_assert_eq(dp_test_sent_queue(1, out, 4), 1, "the reply on queue 1");
	rte_pktmbuf_free(out[0]);
	cr_assert_eq(dp_test->workers[1].counters[DP_ARP_REPLIES], 1);
}
