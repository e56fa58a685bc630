/*
 * dp_port.c - the ports the dataplane uses: mempool, configuration with the
 * workers' RX/TX queue pairs spread over the ports, RSS and checksum
 * offloads where every device has them, start and stop.
 *
 * Ports are every device EAL probed (the configured vdevs, or the allowed
 * PCI devices), at most DP_PORTS_MAX. Worker i polls port i % port_count,
 * queue i / port_count: a multi-queue NIC is one port with `workers` queues;
 * devices with one queue each (AF_XDP on veth, whose driver reports no
 * combined channels) are several ports with one queue each.
 *
 * One MAC address: the dataplane answers as one host, so every port takes
 * the first port's MAC (set on the device where it lets us; a device that
 * refuses and differs is an error: the operator sets it, e.g. ip link set
 * ... address). L2 code then needs no per-port address.
 *
 * RSS hash types are masked by what the device offers, or configure fails on
 * devices with fewer types; the key is symmetric (below). Devices without
 * RSS (tap, ring, af_xdp, memif) get plain queues and the kernel, the peer
 * or the test picks the queue.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/if_xdp.h>

#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "common/diag.h"
#include "dataplane/dp_internal.h"

#define DP_MEMPOOL_CACHE 256
#define DP_XSK_SCAN_MAX DP_WORKERS_MAX /* XDP sockets a port setup may add. */
#define DP_RSS_KEY_SIZE_MAX 52

/*
 * 0x6d5a repeated: with this Toeplitz key the hash of (src, dst, sport,
 * dport) equals that of (dst, src, dport, sport) (Woo and Park, "Scalable
 * TCP Session Monitoring with Symmetric Receive-side Scaling"), so both
 * directions of a flow, and later of a TCP connection, reach one worker.
 */
static uint8_t dp_rss_key_symmetric[DP_RSS_KEY_SIZE_MAX] = {
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
	0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
	0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

static void
dp_port_conf(const struct dp *dp, uint16_t queue_count, const struct rte_eth_dev_info *info,
	     struct rte_eth_conf *conf)
{
	uint64_t rss_hf = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP |
			   RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_FRAG_IPV4) &
			  info->flow_type_rss_offloads;

	memset(conf, 0, sizeof(*conf));
	conf->rxmode.mtu = dp->config.mtu;
	/* A jumbo frame does not fit one mbuf: the device chains them. */
	if (dp->config.mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN >
	    RTE_MBUF_DEFAULT_BUF_SIZE - RTE_PKTMBUF_HEADROOM)
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER & info->rx_offload_capa;
	if (queue_count > 1 && rss_hf != 0) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf = rss_hf;
		/* A device with another key size keeps its own (not symmetric) key. */
		if (info->hash_key_size > 0 && info->hash_key_size <= DP_RSS_KEY_SIZE_MAX &&
		    info->hash_key_size % 4 == 0) {
			conf->rx_adv_conf.rss_conf.rss_key = dp_rss_key_symmetric;
			conf->rx_adv_conf.rss_conf.rss_key_len = info->hash_key_size;
		}
	}
	if (dp->rx_cksum_offload)
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM |
					 RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
}

static int
dp_port_queues(struct dp *dp, uint16_t port, uint16_t queue_count)
{
	uint16_t rx_desc = (uint16_t)dp->config.ring_size;
	uint16_t tx_desc = (uint16_t)dp->config.ring_size;
	int socket = rte_eth_dev_socket_id(port);
	int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc);

	if (rc != 0)
		return rc;
	for (uint16_t q = 0; q < queue_count; q++) {
		rc = rte_eth_rx_queue_setup(port, q, rx_desc, (unsigned)socket, NULL, dp->pool);
		if (rc != 0)
			return rc;
		rc = rte_eth_tx_queue_setup(port, q, tx_desc, (unsigned)socket, NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Every port answers with the first port's MAC (file comment). */
static int
dp_port_mac(struct dp *dp, uint32_t index, uint16_t port)
{
	struct rte_ether_addr mac;
	int rc = rte_eth_macaddr_get(port, &mac);

	if (rc != 0 || index == 0) {
		dp->mac = mac;
		return rc;
	}
	if (rte_is_same_ether_addr(&mac, &dp->mac))
		return 0;
	if (rte_eth_dev_default_mac_addr_set(port, &dp->mac) == 0)
		return 0;
	diag_error("dataplane", "port %u has MAC " RTE_ETHER_ADDR_PRT_FMT ", port %u has "
		   RTE_ETHER_ADDR_PRT_FMT " and the device cannot change it: give every port "
		   "the same address", port, RTE_ETHER_ADDR_BYTES(&mac), dp->port_ids[0],
		   RTE_ETHER_ADDR_BYTES(&dp->mac));
	return -EINVAL;
}

static int
dp_port_setup(struct dp *dp, uint32_t index, uint16_t queue_count)
{
	uint16_t port = dp->port_ids[index];
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	int rc = rte_eth_dev_info_get(port, &info);

	if (rc != 0)
		return rc;
	if (info.max_rx_queues < queue_count || info.max_tx_queues < queue_count) {
		diag_error("dataplane", "port %u (%s) has %u/%u queues, %u wanted", port,
			   info.driver_name, info.max_rx_queues, info.max_tx_queues, queue_count);
		return -EINVAL;
	}
	if (dp->config.mtu > info.max_mtu) {
		diag_error("dataplane", "[dataplane] mtu %u: port %u (%s) takes at most %u",
			   dp->config.mtu, port, info.driver_name, info.max_mtu);
		return -EINVAL;
	}
	dp_port_conf(dp, queue_count, &info, &conf);
	rc = rte_eth_dev_configure(port, queue_count, queue_count, &conf);
	if (rc != 0)
		return rc;
	dp->port_open_count = index + 1; /* Configured: dp_port_close() undoes it. */
	rc = dp_port_queues(dp, port, queue_count);
	if (rc == 0)
		rc = dp_port_mac(dp, index, port);
	if (rc == 0)
		rc = rte_eth_dev_start(port);
	if (rc != 0)
		return rc;
	diag_info("dataplane", "port %u (%s): " RTE_ETHER_ADDR_PRT_FMT ", %u queue pairs%s%s",
		  port, info.driver_name, RTE_ETHER_ADDR_BYTES(&dp->mac), queue_count,
		  conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? ", RSS (symmetric)" : "",
		  dp->rx_cksum_offload ? ", rx checksum offload" : "");
	return 0;
}

/* The AF_XDP sockets this process holds, at most `max`, in ascending fd order. */
static uint32_t
dp_port_xsk_scan(int *fds, uint32_t max)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	uint32_t count = 0;

	if (dir == NULL)
		return 0;
	while ((e = readdir(dir)) != NULL) {
		int fd = atoi(e->d_name);
		int domain = 0;
		socklen_t len = sizeof(domain);
		uint32_t at = count;

		if (e->d_name[0] == '.' || fd == dirfd(dir) ||
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_XDP)
			continue;
		for (; at > 0 && fds[at - 1] > fd; at--)
			if (at < max)
				fds[at] = fds[at - 1];
		if (at < max)
			fds[at] = fd;
		count += count < max;
	}
	closedir(dir);
	return count;
}

/*
 * Port `index`'s setup with the XDP sockets it made (AF_XDP: one per queue, made in
 * queue order) noted for its workers' dev_xsk_rx_ring_full: the fds new after it.
 */
static int
dp_port_setup_noting_xsk(struct dp *dp, uint32_t index, uint16_t queue_count)
{
	int before[DP_XSK_SCAN_MAX], after[DP_XSK_SCAN_MAX];
	uint32_t before_count = dp_port_xsk_scan(before, DP_XSK_SCAN_MAX);
	int rc = dp_port_setup(dp, index, queue_count);
	uint32_t after_count = dp_port_xsk_scan(after, DP_XSK_SCAN_MAX);
	uint16_t queue = 0;

	for (uint32_t i = 0; rc == 0 && i < after_count && queue < queue_count; i++) {
		bool old = false;

		for (uint32_t j = 0; j < before_count; j++)
			old = old || before[j] == after[i];
		if (!old)
			dp->xsk_fd[index + queue++ * dp->port_count] = after[i];
	}
	return rc;
}

void
dp_port_drops(const struct dp *dp, uint32_t worker, uint64_t *rx_missed_out,
	      uint64_t *xsk_ring_full_out)
{
	struct xdp_statistics xs;
	struct rte_eth_stats st;
	socklen_t len = sizeof(xs);
	uint16_t port, queue;

	*rx_missed_out = 0;
	*xsk_ring_full_out = 0;
	if (dp->port_open_count == 0 || worker >= dp->worker_count)
		return; /* No port (the kernel backend), or closed. */
	dp_port_queue_of(dp, worker, &port, &queue);
	if (queue == 0 && rte_eth_stats_get(port, &st) == 0)
		*rx_missed_out = st.imissed + st.rx_nombuf;
	if (dp->xsk_fd[worker] >= 0 &&
	    getsockopt(dp->xsk_fd[worker], SOL_XDP, XDP_STATISTICS, &xs, &len) == 0 &&
	    len == sizeof(xs))
		*xsk_ring_full_out = xs.rx_ring_full;
}

/* Finds the ports and what all of them offer; -ENODEV, -E2BIG or -EINVAL. */
static int
dp_port_find(struct dp *dp)
{
	uint64_t cksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	uint64_t next = rte_eth_find_next_owned_by(0, RTE_ETH_DEV_NO_OWNER);

	dp->port_count = 0;
	dp->rx_cksum_offload = true;
	/* RTE_ETH_FOREACH_DEV, without its implicit 64 -> 16 bit conversion. */
	for (; next < RTE_MAX_ETHPORTS;
	     next = rte_eth_find_next_owned_by((uint16_t)(next + 1), RTE_ETH_DEV_NO_OWNER)) {
		uint16_t port = (uint16_t)next;
		struct rte_eth_dev_info info;

		if (dp->port_count == DP_PORTS_MAX) {
			diag_error("dataplane", "more than %u ports", DP_PORTS_MAX);
			return -E2BIG;
		}
		if (rte_eth_dev_info_get(port, &info) != 0 ||
		    (info.rx_offload_capa & cksum) != cksum)
			dp->rx_cksum_offload = false;
		dp->port_ids[dp->port_count++] = port;
	}
	if (dp->port_count == 0) {
		diag_error("dataplane", "no DPDK port (vdev or allowed PCI device)");
		return -ENODEV;
	}
	if (dp->worker_count % dp->port_count != 0) {
		diag_error("dataplane", "%u workers over %u ports: workers must be a multiple of "
			   "the ports (each port gets workers / ports queues)", dp->worker_count,
			   dp->port_count);
		return -EINVAL;
	}
	return 0;
}

int
dp_port_open(struct dp *dp)
{
	int rc = dp_port_find(dp);

	if (rc != 0)
		return rc;
	dp->port_id = dp->port_ids[0];
	dp->pool = rte_pktmbuf_pool_create("sluice_dp", dp->config.mbufs, DP_MEMPOOL_CACHE, 0,
					   RTE_MBUF_DEFAULT_BUF_SIZE,
					   rte_eth_dev_socket_id(dp->port_id));
	if (dp->pool == NULL) {
		diag_error("dataplane", "mempool of %u mbufs: %s", dp->config.mbufs,
			   rte_strerror(rte_errno));
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < DP_WORKERS_MAX; i++)
		dp->xsk_fd[i] = -1;
	for (uint32_t i = 0; i < dp->port_count; i++) {
		rc = dp_port_setup_noting_xsk(dp, i,
					      (uint16_t)(dp->worker_count / dp->port_count));
		if (rc != 0) {
			diag_error("dataplane", "port %u setup: %s", dp->port_ids[i],
				   rte_strerror(rc < 0 ? -rc : rc));
			dp_port_close(dp);
			return rc < 0 ? rc : -rc;
		}
	}
	return 0;
}

void
dp_port_queue_of(const struct dp *dp, uint32_t worker, uint16_t *port_out, uint16_t *queue_out)
{
	assert(dp->port_count > 0);
	assert(worker < dp->worker_count);
	*port_out = dp->port_ids[worker % dp->port_count];
	*queue_out = (uint16_t)(worker / dp->port_count);
}

void
dp_port_close(struct dp *dp)
{
	/* Stopping a port that never started is harmless (DPDK says so and returns 0). */
	for (uint32_t i = dp->port_open_count; i-- > 0;) {
		rte_eth_dev_stop(dp->port_ids[i]);
		rte_eth_dev_close(dp->port_ids[i]);
	}
	dp->port_open_count = 0;
	for (uint32_t i = 0; i < DP_WORKERS_MAX; i++)
		dp->xsk_fd[i] = -1; /* Closed with their ports. */
	rte_mempool_free(dp->pool);
	dp->pool = NULL;
}
