/* dp_test.c - see dp_test.h. */
#include <string.h>

#include <criterion/criterion.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "tests/dataplane/dp_test.h"

struct dp *dp_test;
uint32_t dp_test_workers = 1;
uint32_t dp_test_producers_max;
uint32_t dp_test_batch_age_us;
const struct dp_cluster *dp_test_cluster;
struct rte_mempool *dp_test_pool;
const struct rte_ether_addr dp_test_peer_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };

void
dp_test_open(struct log *log)
{
	dp_test_open_auth(log, NULL, 0, false);
}

void
dp_test_open_auth(struct log *log, const struct frame_auth_key *keys, uint32_t count,
		  bool required)
{
	struct dp_config c;
	int rc;

	dp_config_default(&c);
	c.vdev = "net_ring0";
	c.no_huge = true;
	c.mbufs = 1023;
	c.ring_size = 256;
	c.workers = dp_test_workers;
	if (dp_test_producers_max != 0)
		c.producers_max = dp_test_producers_max;
	if (dp_test_batch_age_us != 0)
		c.batch_age_us = dp_test_batch_age_us;
	c.idle_polls = 0;
	c.ipv4 = DP_TEST_IPV4;
	c.ingest_port = DP_TEST_PORT;
	c.log = log;
	c.auth_keys = keys;
	c.auth_key_count = count;
	c.auth_required = required;
	c.cluster = dp_test_cluster;
	rc = dp_open(&c, &dp_test);
	cr_assert_eq(rc, 0, "dp_open: %d", rc);
	dp_test_pool = rte_pktmbuf_pool_create("dp_test", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					       SOCKET_ID_ANY);
	cr_assert_not_null(dp_test_pool);
}

void
dp_test_close(void)
{
	struct rte_mempool *pool = dp_test_pool;

	dp_test_pool = NULL;
	/* The port's rings may still hold test mbufs: close the port first. */
	dp_close(dp_test);
	(void)pool;
}

void
dp_test_inject(const void *bytes, uint16_t size)
{
	dp_test_inject_queue(0, bytes, size);
}

void
dp_test_inject_queue(uint16_t queue, const void *bytes, uint16_t size)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(dp_test_pool);
	void *data;

	cr_assert_not_null(m);
	data = rte_pktmbuf_append(m, size);
	cr_assert_not_null(data);
	memcpy(data, bytes, size);
	/* net_ring0 is a loopback: what we send on queue 0 arrives on RX queue 0. */
	cr_assert_eq(rte_eth_tx_burst(dp_test->port_id, queue, &m, 1), 1);
}

uint32_t
dp_test_poll(void)
{
	return dp_test_poll_worker(0);
}

uint32_t
dp_test_poll_worker(uint32_t worker)
{
	return dp_worker_poll(&dp_test->workers[worker], rte_rdtsc());
}

uint16_t
dp_test_sent(struct rte_mbuf **out, uint16_t count)
{
	return dp_test_sent_queue(0, out, count);
}

uint16_t
dp_test_sent_queue(uint16_t queue, struct rte_mbuf **out, uint16_t count)
{
	return rte_eth_rx_burst(dp_test->port_id, queue, out, count);
}

uint64_t
dp_test_counter(enum dp_counter counter)
{
	struct dp_stats stats;

	dp_stats_read(dp_test, &stats);
	return stats.counters[counter];
}

uint16_t
dp_test_udp_frame(uint8_t *frame, uint16_t dst_port, const void *payload, uint16_t payload_size)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	rte_ether_addr_copy(&dp_test->mac, &eth->dst_addr);
	rte_ether_addr_copy(&dp_test_peer_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + payload_size));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(DP_TEST_PEER_IPV4);
	ip->dst_addr = rte_cpu_to_be_32(DP_TEST_IPV4);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = rte_cpu_to_be_16(DP_TEST_PEER_PORT);
	udp->dst_port = rte_cpu_to_be_16(dst_port);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + payload_size));
	memcpy(udp + 1, payload, payload_size);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	return (uint16_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + payload_size);
}
