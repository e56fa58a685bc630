/*
 * dp_port: the workers spread over several ports (net_ring loopbacks: what is
 * sent on a queue comes back on the same queue). Worker i polls port
 * i % ports, queue i / ports, and answers on the port and queue it heard on;
 * a worker count that is not a multiple of the port count is refused.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dataplane/dp_internal.h"

#define TEST_IPV4 ((198u << 24) | (18u << 16) | 1u)
#define TEST_PEER_IPV4 ((198u << 24) | (18u << 16) | 2u)

static struct dp *dp;
static struct rte_mempool *pool;
static const struct rte_ether_addr peer_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };

static int
open_dp(const char *vdevs, uint32_t workers)
{
	struct dp_config c;

	dp_config_default(&c);
	c.vdev = vdevs;
	c.no_huge = true;
	c.mbufs = 1023;
	c.ring_size = 256;
	c.workers = workers;
	c.idle_polls = 0;
	c.ipv4 = TEST_IPV4;
	return dp_open(&c, &dp);
}

static void
open_or_fail(const char *vdevs, uint32_t workers)
{
	int rc = open_dp(vdevs, workers);

	cr_assert_eq(rc, 0, "dp_open: %d", rc);
	pool = rte_pktmbuf_pool_create("test_port", 255, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	cr_assert_not_null(pool);
}

/* An ARP request for our address onto `port`/`queue` (the ring brings it back in). */
static void
inject_arp(uint16_t port, uint16_t queue)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	cr_assert_not_null(m);
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, 60);
	cr_assert_not_null(eth);
	memset(eth, 0, 60);
	arp = (struct rte_arp_hdr *)(eth + 1);
	memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
	rte_ether_addr_copy(&peer_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&peer_mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = rte_cpu_to_be_32(TEST_PEER_IPV4);
	arp->arp_data.arp_tip = rte_cpu_to_be_32(TEST_IPV4);
	cr_assert_eq(rte_eth_tx_burst(port, queue, &m, 1), 1);
}

/* Packets waiting on `port`/`queue` (what a worker transmitted there), freed. */
static uint16_t
drain(uint16_t port, uint16_t queue)
{
	struct rte_mbuf *out[8];
	uint16_t count = rte_eth_rx_burst(port, queue, out, 8);

	rte_pktmbuf_free_bulk(out, count);
	return count;
}

/* Each worker answers an ARP on its own port and queue, and nowhere else. */
static void
expect_each_worker_answers_on_its_queue(void)
{
	uint16_t queues = (uint16_t)(dp->worker_count / dp->port_count);

	for (uint32_t i = 0; i < dp->worker_count; i++) {
		struct dp_worker *w = &dp->workers[i];
		struct dp_stats stats;

		inject_arp(w->port_id, w->queue_id);
		for (uint32_t k = 0; k < dp->worker_count; k++)
			dp_worker_poll(&dp->workers[k], rte_rdtsc());
		for (uint32_t p = 0; p < dp->port_count; p++)
			for (uint16_t q = 0; q < queues; q++)
				cr_assert_eq(drain(dp->port_ids[p], q),
					     dp->port_ids[p] == w->port_id && q == w->queue_id,
					     "worker %u: port %u queue %u", i, dp->port_ids[p], q);
		dp_worker_stats_read(dp, i, &stats);
		cr_assert_eq(stats.counters[DP_ARP_REPLIES], 1, "worker %u", i);
	}
}

Test(dp_port, two_ports_one_queue_each, .timeout = 20)
{
	open_or_fail("net_ring0;net_ring1", 2);
	cr_assert_eq(dp->port_count, 2);
	for (uint32_t i = 0; i < 2; i++) {
		cr_assert_eq(dp->workers[i].port_id, dp->port_ids[i]);
		cr_assert_eq(dp->workers[i].queue_id, 0);
	}
	expect_each_worker_answers_on_its_queue();
	dp_close(dp);
}

Test(dp_port, four_workers_over_two_ports, .timeout = 20)
{
	open_or_fail("net_ring0;net_ring1", 4);
	cr_assert_eq(dp->workers[2].port_id, dp->port_ids[0]);
	cr_assert_eq(dp->workers[2].queue_id, 1);
	cr_assert_eq(dp->workers[3].port_id, dp->port_ids[1]);
	cr_assert_eq(dp->workers[3].queue_id, 1);
	expect_each_worker_answers_on_its_queue();
	dp_close(dp);
}

Test(dp_port, refuses_workers_not_a_multiple_of_ports, .timeout = 20)
{
	cr_assert_eq(open_dp("net_ring0;net_ring1", 3), -EINVAL);
}
