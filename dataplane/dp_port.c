/*
 * dp_port.c - the one port the dataplane uses: mempool, configuration with
 * one RX/TX queue pair per worker, RSS and checksum offloads where the device
 * has them, start and stop.
 *
 * The port is the first one EAL probed (the configured vdev, or the first
 * allowed PCI device). RSS hash types are masked by what the device offers,
 * or configure fails on devices with fewer types; devices without RSS (tap,
 * ring, pcap) get plain queues and the kernel or the test picks the queue.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "common/diag.h"
#include "dataplane/dp_internal.h"

#define DP_MEMPOOL_CACHE 256

static void
dp_port_conf(struct dp *dp, const struct rte_eth_dev_info *info, struct rte_eth_conf *conf)
{
	uint64_t rss_hf = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP |
			   RTE_ETH_RSS_FRAG_IPV4) & info->flow_type_rss_offloads;
	uint64_t cksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;

	memset(conf, 0, sizeof(*conf));
	conf->rxmode.mtu = dp->config.mtu;
	/* A jumbo frame does not fit one mbuf: the device chains them. */
	if (dp->config.mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN >
	    RTE_MBUF_DEFAULT_BUF_SIZE - RTE_PKTMBUF_HEADROOM)
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER & info->rx_offload_capa;
	if (dp->worker_count > 1 && rss_hf != 0) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf = rss_hf;
	}
	if ((info->rx_offload_capa & cksum) == cksum) {
		conf->rxmode.offloads |= cksum;
		dp->rx_cksum_offload = true;
	}
}

static int
dp_port_queues(struct dp *dp, uint16_t port)
{
	uint16_t rx_desc = (uint16_t)dp->config.ring_size;
	uint16_t tx_desc = (uint16_t)dp->config.ring_size;
	int socket = rte_eth_dev_socket_id(port);
	int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc);

	if (rc != 0)
		return rc;
	for (uint16_t q = 0; q < dp->worker_count; q++) {
		rc = rte_eth_rx_queue_setup(port, q, rx_desc, (unsigned)socket, NULL, dp->pool);
		if (rc != 0)
			return rc;
		rc = rte_eth_tx_queue_setup(port, q, tx_desc, (unsigned)socket, NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
dp_port_open(struct dp *dp)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	uint64_t found = rte_eth_find_next_owned_by(0, RTE_ETH_DEV_NO_OWNER);
	uint16_t port;
	int rc;

	if (found >= RTE_MAX_ETHPORTS) {
		diag_error("dataplane", "no DPDK port (vdev or allowed PCI device)");
		return -ENODEV;
	}
	port = (uint16_t)found;
	dp->pool = rte_pktmbuf_pool_create("sluice_dp", dp->config.mbufs, DP_MEMPOOL_CACHE, 0,
					   RTE_MBUF_DEFAULT_BUF_SIZE, rte_eth_dev_socket_id(port));
	if (dp->pool == NULL) {
		diag_error("dataplane", "mempool of %u mbufs: %s", dp->config.mbufs,
			   rte_strerror(rte_errno));
		return -ENOMEM;
	}
	rc = rte_eth_dev_info_get(port, &info);
	if (rc != 0)
		goto out_fail;
	if (info.max_rx_queues < dp->worker_count || info.max_tx_queues < dp->worker_count) {
		diag_error("dataplane", "port %u has %u/%u queues, %u workers", port,
			   info.max_rx_queues, info.max_tx_queues, dp->worker_count);
		rc = -EINVAL;
		goto out_fail;
	}
	if (dp->config.mtu > info.max_mtu) {
		diag_error("dataplane", "[dataplane] mtu %u: port %u (%s) takes at most %u",
			   dp->config.mtu, port, info.driver_name, info.max_mtu);
		rc = -EINVAL;
		goto out_fail;
	}
	dp_port_conf(dp, &info, &conf);
	rc = rte_eth_dev_configure(port, (uint16_t)dp->worker_count, (uint16_t)dp->worker_count,
				   &conf);
	if (rc == 0)
		rc = dp_port_queues(dp, port);
	if (rc == 0)
		rc = rte_eth_macaddr_get(port, &dp->mac);
	if (rc == 0)
		rc = rte_eth_dev_start(port);
	if (rc != 0)
		goto out_fail;
	dp->port_id = port;
	dp->port_started = true;
	diag_info("dataplane", "port %u (%s): " RTE_ETHER_ADDR_PRT_FMT ", %u queue pairs%s%s",
		  port, info.driver_name, RTE_ETHER_ADDR_BYTES(&dp->mac), dp->worker_count,
		  conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? ", RSS" : "",
		  dp->rx_cksum_offload ? ", rx checksum offload" : "");
	return 0;

out_fail:
	diag_error("dataplane", "port %u setup: %s", port, rte_strerror(rc < 0 ? -rc : rc));
	rte_mempool_free(dp->pool);
	dp->pool = NULL;
	return rc < 0 ? rc : -rc;
}

void
dp_port_close(struct dp *dp)
{
	if (dp->port_started) {
		rte_eth_dev_stop(dp->port_id);
		rte_eth_dev_close(dp->port_id);
		dp->port_started = false;
	}
	rte_mempool_free(dp->pool);
	dp->pool = NULL;
}
