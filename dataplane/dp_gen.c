/*
 * dp_gen.c - sluice-dp-gen, the DPDK load generator behind `sluice bench ingest
 * --transport dpdk`: it drives a DPDK device of its own (a memif client facing
 * sluiced's memif server, or AF_XDP on the producers' end of a veth pair),
 * builds record frames directly in mbufs, sends them open loop at --rate,
 * receives the ACK frames, and measures each frame's latency from its
 * scheduled send time (no coordinated omission: frame k is due at
 * start + k * interval whatever happened before).
 *
 * It sends no retries: a NACKed frame's records count as failed, a frame with
 * no answer by the end of the drain as unanswered. One producer id, batch_seq
 * = frame number + 1, so an answer names its frame and its due time.
 * --peer-mac MAC skips ARP, for a receiver that answers nothing (dpdk-testpmd
 * rxonly on a memif link, the packet baseline of `sluice bench ingest --compare`).
 *
 * --shard-map INDEX:START:END[,...] (the stream's open shards from ListShards,
 * hash keys in decimal) makes it a producer that knows the map, as libsluice
 * with one: every frame is SHARD_RECORDS for one shard, the shards taken in
 * turn, each record's key drawn from the keys (of --key-count) that shard owns,
 * with its MD5 as the hash key. The keys' MD5s are computed once at start-up
 * (the generator's CPU is not what is measured). A WRONG_SHARD NACK (the map
 * moved) counts as failed, like any NACK.
 *
 * Output (stdout, parsed by tools/cmd_bench_ingest.c), then exit 0:
 *   dp-gen: frames_sent=N records_sent=N records_acked=N records_failed=N
 *           frames_unsent=N records_unanswered=N elapsed_ns=N
 *           records_acked_in_run=N lat_first_ns=N lat_last_ns=N
 *           rx_missed=N rx_nombuf=N tx_errors=N sent_p50_ns=N sent_p99_ns=N   (one line)
 *   records_acked_in_run: acknowledged before the run's duration ended (the durable-ACK
 *   rate while the load was on, not what the drain caught up with); lat_first_ns and
 *   lat_last_ns: the mean latency of the acknowledged frames due in the run's first and
 *   last GEN_PHASE_DIV-th (a queue that grows over the run shows as last > first);
 *   rx_missed, rx_nombuf, tx_errors: the generator's own port (rte_eth_stats imissed,
 *   rx_nombuf, oerrors): answers its device dropped, frames it failed to send.
 *   sent_p50_ns, sent_p99_ns: acknowledged records' latency from when their frame left
 *   (the histogram below is from its due time; they differ when the generator is late).
 *   dp-gen-latency: VALUE_NS:COUNT ...   (a bucketed histogram, several lines)
 * Exit 1 on a setup failure (the reason on stderr), 2 on bad arguments.
 */
#include <assert.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "common/dir.h"
#include "common/hashkey.h"
#include "protocol/frame.h"

#define GEN_MBUFS 8191
#define GEN_DESCRIPTORS 1024
/*
 * RX descriptors wanted (the device's maximum if lower): ACKs pile up while this
 * process waits for a CPU on a shared host, and what the ring cannot hold is lost.
 */
#define GEN_RX_DESCRIPTORS 4096
#define GEN_BURST 32
#define GEN_RX_BURSTS_MAX 8              /* Per pass, while bursts come back full. */
#define GEN_LINK_WAIT_MS 10000
#define GEN_ARP_TRIES 100                /* 100 ms apart. */
#define GEN_KEY_COUNT_MAX 100000000u      /* Keys "key-%08u": 12 bytes each. */
#define GEN_DATA_POOL_SIZE 65536         /* Random record data, cycled. */
#define GEN_UDP_PAYLOAD_MAX 1472         /* A 1500-byte IPv4 MTU, no fragments. */
#define GEN_HEADERS_SIZE (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + \
			  sizeof(struct rte_udp_hdr))
#define GEN_SRC_IPV4 RTE_IPV4(198, 18, 0, 2)
#define GEN_SRC_PORT 40100
#define GEN_IDLE_SLEEP_NS 20000          /* A pass with nothing to do; timer slack 1 us. */
#define GEN_TIMER_SLACK_NS 1000
/* Latency histogram: HdrHistogram's layout, 32 sub-buckets per power of two (3 %). */
#define GEN_HIST_SUB_BITS 5
#define GEN_HIST_SUB_COUNT (1u << GEN_HIST_SUB_BITS)
#define GEN_HIST_VALUE_BITS 42           /* ns: 73 minutes. */
#define GEN_HIST_BUCKETS ((GEN_HIST_VALUE_BITS - GEN_HIST_SUB_BITS + 1) * GEN_HIST_SUB_COUNT)
#define GEN_HIST_PAIRS_PER_LINE 16
#define GEN_SHARDS_MAX 64                /* --shard-map entries. */
#define GEN_GROUPED_KEYS_MAX (1u << 22)   /* --key-count with --shard-map: 16 B of MD5 a key. */
#define GEN_PHASE_DIV 5                  /* lat_first_ns / lat_last_ns: a fifth of the run each. */
/*
 * Frames are built once, at start-up, as this many packet templates and sent in turn,
 * each renumbered (batch_seq; the frame CRC from frame_renumber's tables, the UDP
 * checksum updated for the changed words, RFC 1624): building each frame record by
 * record (a key printed, 12 records copied, two checksums over it) cost the generator
 * more CPU per frame than the appliance spent storing it, so on a 2-vCPU host it could
 * not offer more than about 1.1x the rate the appliance saturated at (the overload step
 * measured the generator's own lag). Without a shard map the keys repeat with the same
 * period as before as long as key_count / gcd(key_count, per_frame) frames fit.
 */
#define GEN_TEMPLATES_MAX 4096
/*
 * Latency is measured from each frame's due time (the figure); it is also measured from
 * when the frame left, to tell the appliance's queueing from the generator's own lag when
 * it falls behind its schedule. Send times are kept per block of this many consecutive
 * frames (the block's first send: a frame's send latency is counted from at most one
 * burst early).
 */
#define GEN_SENT_BLOCK 32
#define GEN_PACKET_MAX (GEN_HEADERS_SIZE + GEN_UDP_PAYLOAD_MAX)
/* The frame's head renumbering changes (CRC at 4, batch_seq at 24): its UDP words. */
#define GEN_RENUMBERED_BYTES 32

struct gen_opts {
	const char *vdev;
	const char *file_prefix;
	const char *peer_mac;            /* Set: no ARP (a receiver that answers none). */
	const char *stream;
	uint32_t dst_be;
	uint16_t dport_be;
	uint64_t rate;
	uint32_t size;
	uint32_t per_frame;
	uint32_t key_count;
	uint64_t duration_ns;
	uint64_t drain_ns;
	const char *shard_map;           /* Set: SHARD_RECORDS frames (see the top). */
};

/* One shard of --shard-map and the keys it owns. */
struct gen_shard {
	uint32_t index;
	hashkey_t start;
	hashkey_t end;
	uint32_t key_count;
	uint32_t next;                   /* The next of its keys to use, cycling. */
	uint32_t *keys;                  /* Key numbers. */
	uint8_t (*hashes)[16];           /* Their MD5s, big-endian. */
};

struct gen {
	struct gen_opts o;
	uint16_t port;
	bool eal_ready;
	bool port_started;
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	struct rte_ether_addr peer_mac;
	uint64_t producer_id;
	uint64_t tsc_hz;
	uint64_t start_tsc;
	uint64_t interval_ns;
	uint64_t frames_total;
	uint64_t frames_sent;
	uint64_t frames_answered;
	uint64_t records_acked;
	uint64_t records_failed;
	uint64_t records_acked_in_run;   /* Acknowledged before duration_ns. */
	uint64_t lat_sum_ns[2];          /* Frames due in the first / last GEN_PHASE_DIV-th ... */
	uint64_t lat_count[2];           /* ... acknowledged: queue growth over the run. */
	uint8_t *answered;               /* One bit per frame: duplicates count once. */
	uint64_t *block_sent_ns;         /* Per GEN_SENT_BLOCK frames: when the first left. */
	uint64_t hist_sent[GEN_HIST_BUCKETS]; /* Latency from the send, acknowledged records. */
	uint8_t *templates;              /* template_count packets, GEN_PACKET_MAX apart. */
	uint16_t *template_sizes;
	uint32_t template_count;
	struct frame_renumber renumber;  /* For the templates' frame size (all one size). */
	struct gen_shard shards[GEN_SHARDS_MAX];
	uint32_t shard_count;            /* 0: RECORDS frames, keys in turn. */
	uint8_t data[GEN_DATA_POOL_SIZE];
	uint64_t hist[GEN_HIST_BUCKETS];
};

static uint64_t
gen_now_ns(const struct gen *g)
{
	return (uint64_t)((double)(rte_rdtsc() - g->start_tsc) * 1e9 / (double)g->tsc_hz);
}

static uint32_t
gen_hist_index(uint64_t value)
{
	uint32_t msb;

	if (value >= (UINT64_C(1) << GEN_HIST_VALUE_BITS))
		value = (UINT64_C(1) << GEN_HIST_VALUE_BITS) - 1;
	if (value < GEN_HIST_SUB_COUNT)
		return (uint32_t)value;
	msb = 63u - (uint32_t)__builtin_clzll(value);
	return (msb - GEN_HIST_SUB_BITS + 1) * GEN_HIST_SUB_COUNT +
	       (uint32_t)((value >> (msb - GEN_HIST_SUB_BITS)) & (GEN_HIST_SUB_COUNT - 1));
}

/* The highest value of bucket `index` (what the report reads back). */
static uint64_t
gen_hist_high(uint32_t index)
{
	uint32_t shift;

	if (index < GEN_HIST_SUB_COUNT)
		return index;
	shift = index / GEN_HIST_SUB_COUNT - 1;
	return ((uint64_t)(GEN_HIST_SUB_COUNT + index % GEN_HIST_SUB_COUNT) << shift) +
	       (UINT64_C(1) << shift) - 1;
}

/* ---- Device ------------------------------------------------------------------------ */

static int
gen_eal(struct gen *g)
{
	char lcores[64];
	char prefix[128];
	char vdev[512];
	char *argv[] = { "sluice-dp-gen", "--no-huge", "-m", "256", "--no-shconf", "--no-pci",
			 "--no-telemetry", "--log-level=*:error", lcores, prefix, vdev, NULL };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	/* Float over every CPU, as sluiced's lcores do: a 2-CPU host has none to spare. */
	snprintf(lcores, sizeof(lcores), "--lcores=0@(0-%ld)", cpus > 1 ? cpus - 1 : 0);
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", g->o.file_prefix);
	if ((size_t)snprintf(vdev, sizeof(vdev), "--vdev=%s", g->o.vdev) >= sizeof(vdev))
		return -1;
	if (rte_eal_init((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) < 0) {
		fprintf(stderr, "sluice-dp-gen: rte_eal_init failed\n");
		return -1;
	}
	g->eal_ready = true;
	g->tsc_hz = rte_get_tsc_hz();
	return 0;
}

static int
gen_port(struct gen *g)
{
	struct rte_eth_conf conf;
	struct rte_eth_link link;
	struct rte_eth_dev_info info;
	uint16_t rx_descriptors = GEN_RX_DESCRIPTORS;
	uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() * GEN_LINK_WAIT_MS / 1000;

	memset(&conf, 0, sizeof(conf));
	g->port = 0;
	g->pool = rte_pktmbuf_pool_create("gen", GEN_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  (int)rte_socket_id());
	if (rte_eth_dev_info_get(g->port, &info) == 0 && info.rx_desc_lim.nb_max > 0)
		rx_descriptors = info.rx_desc_lim.nb_max < rx_descriptors ?
				 info.rx_desc_lim.nb_max : rx_descriptors;
	if (!rte_eth_dev_is_valid_port(g->port) || g->pool == NULL ||
	    rte_eth_dev_configure(g->port, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(g->port, 0, rx_descriptors, rte_socket_id(), NULL,
				   g->pool) != 0 ||
	    rte_eth_tx_queue_setup(g->port, 0, GEN_DESCRIPTORS, rte_socket_id(), NULL) != 0 ||
	    rte_eth_macaddr_get(g->port, &g->mac) != 0 || rte_eth_dev_start(g->port) != 0) {
		fprintf(stderr, "sluice-dp-gen: DPDK port setup failed (%s)\n", g->o.vdev);
		return -1;
	}
	g->port_started = true;
	/* A memif client's link comes up once the server accepted it. */
	do {
		if (rte_eth_link_get_nowait(g->port, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			return 0;
		rte_delay_ms(10);
	} while (rte_get_timer_cycles() < deadline);
	fprintf(stderr, "sluice-dp-gen: link down after %u ms (is sluiced serving %s?)\n",
		GEN_LINK_WAIT_MS, g->o.vdev);
	return -1;
}

static void
gen_arp_request(struct gen *g)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(g->pool);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (m == NULL)
		return;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eth) + sizeof(*arp));
	arp = (struct rte_arp_hdr *)(eth + 1);
	memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&g->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	memset(arp, 0, sizeof(*arp));
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&g->mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = rte_cpu_to_be_32(GEN_SRC_IPV4);
	arp->arp_data.arp_tip = g->o.dst_be;
	if (rte_eth_tx_burst(g->port, 0, &m, 1) != 1)
		rte_pktmbuf_free(m);
}

static bool
gen_arp_reply_seen(struct gen *g)
{
	struct rte_mbuf *rx[GEN_BURST];
	uint16_t count = rte_eth_rx_burst(g->port, 0, rx, GEN_BURST);
	bool seen = false;

	for (uint16_t i = 0; i < count; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(rx[i], struct rte_ether_hdr *);
		struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

		if (rx[i]->data_len >= sizeof(*eth) + sizeof(*arp) &&
		    eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) &&
		    arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
		    arp->arp_data.arp_sip == g->o.dst_be) {
			rte_ether_addr_copy(&arp->arp_data.arp_sha, &g->peer_mac);
			seen = true;
		}
	}
	rte_pktmbuf_free_bulk(rx, count);
	return seen;
}

/* The appliance's MAC, as a host on the wire learns it. */
static int
gen_arp(struct gen *g)
{
	for (int i = 0; i < GEN_ARP_TRIES; i++) {
		gen_arp_request(g);
		for (int k = 0; k < 100; k++) {
			if (gen_arp_reply_seen(g))
				return 0;
			rte_delay_ms(1);
		}
	}
	fprintf(stderr, "sluice-dp-gen: no ARP reply from the appliance\n");
	return -1;
}

/* ---- Frames ------------------------------------------------------------------------ */

/* The shard frame `k` is for: in turn, skipping shards that own none of the keys. */
static struct gen_shard *
gen_frame_shard(struct gen *g, uint64_t k)
{
	for (uint32_t i = 0; i < g->shard_count; i++) {
		struct gen_shard *shard = &g->shards[(k + i) % g->shard_count];

		if (shard->key_count > 0)
			return shard;
	}
	return NULL;
}

/* Frame `k`'s record frame (batch_seq k + 1) after the headers of `m`; its size or -1. */
static int
gen_frame_write(struct gen *g, uint64_t k, uint8_t *payload)
{
	struct gen_shard *shard = gen_frame_shard(g, k);
	struct frame_batch_params p = {
		.producer_id = g->producer_id,
		.batch_seq = k + 1,
		.producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE,
		.shard_grouped = shard != NULL,
		.shard_index = shard != NULL ? shard->index : 0,
		.stream_name = g->o.stream,
		.stream_name_size = (uint8_t)strlen(g->o.stream),
	};
	struct frame_writer w;

	if (frame_writer_begin(&w, payload, GEN_UDP_PAYLOAD_MAX, &p) != 0)
		return -1;
	for (uint32_t i = 0; i < g->o.per_frame; i++) {
		uint64_t record = k * g->o.per_frame + i;
		uint32_t key_number = (uint32_t)(record % g->o.key_count);
		const uint8_t *hash = NULL;
		char key[24];
		int key_size;

		if (shard != NULL) {
			uint32_t j = shard->next++ % shard->key_count;

			key_number = shard->keys[j];
			hash = shard->hashes[j];
		}
		key_size = snprintf(key, sizeof(key), "key-%08u", (unsigned)key_number);
		struct frame_record r = {
			.key = (const uint8_t *)key,
			.key_size = (uint16_t)key_size,
			.data = &g->data[(record * 61) % (GEN_DATA_POOL_SIZE - g->o.size)],
			.data_size = g->o.size,
			.hash_kind = hash != NULL ? FRAME_HASH_MD5 : FRAME_HASH_NONE,
			.hash_key = hash,
		};

		if (frame_writer_add(&w, &r) != 0)
			return -1;
	}
	return frame_writer_finish(&w);
}

/* Frame `k` as a whole packet (headers and frame) into `packet`: its size, or -1. */
static int
gen_packet_write(struct gen *g, uint64_t k, uint8_t *packet)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)packet;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	int size = gen_frame_write(g, k, (uint8_t *)(udp + 1));

	if (size <= 0)
		return -1;
	rte_ether_addr_copy(&g->peer_mac, &eth->dst_addr);
	rte_ether_addr_copy(&g->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + (size_t)size));
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(GEN_SRC_IPV4);
	ip->dst_addr = g->o.dst_be;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = rte_cpu_to_be_16(GEN_SRC_PORT);
	udp->dst_port = g->o.dport_be;
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + (size_t)size));
	return (int)GEN_HEADERS_SIZE + size;
}

static uint64_t
gen_gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Templates for the frames of one period of the keys (GEN_TEMPLATES_MAX at most); 0 or -1. */
static int
gen_templates(struct gen *g)
{
	uint64_t count = g->o.key_count;

	if (g->shard_count > 0)
		count = GEN_TEMPLATES_MAX - GEN_TEMPLATES_MAX % g->shard_count;
	else
		count = g->o.key_count / gen_gcd(g->o.key_count, g->o.per_frame);
	count = RTE_MIN(RTE_MIN(count, (uint64_t)GEN_TEMPLATES_MAX), g->frames_total);
	g->templates = malloc(count * GEN_PACKET_MAX);
	g->template_sizes = calloc(count, sizeof(*g->template_sizes));
	if (g->templates == NULL || g->template_sizes == NULL)
		return -1;
	for (uint64_t k = 0; k < count; k++) {
		uint8_t *packet = g->templates + k * GEN_PACKET_MAX;
		int size = gen_packet_write(g, k, packet);
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(packet + sizeof(struct rte_ether_hdr));
		struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

		/* Keys of one width, records of one size: every frame is the first's size. */
		if (size <= 0 || (k > 0 && size != g->template_sizes[0]))
			return -1;
		g->template_sizes[k] = (uint16_t)size;
		udp->dgram_cksum = 0;
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	}
	g->template_count = (uint32_t)count;
	return frame_renumber_init(&g->renumber,
				   (uint32_t)(g->template_sizes[0] - GEN_HEADERS_SIZE)) == 0 ? 0 : -1;
}

/*
 * A UDP checksum after `size` bytes at an even offset of the datagram went from `was`
 * to `now` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')); 0 is sent as 0xffff (RFC 768).
 */
static uint16_t
gen_cksum_update(uint16_t cksum, const void *was, const void *now, size_t size)
{
	uint32_t sum = (uint16_t)~cksum;

	sum += (uint16_t)~rte_raw_cksum(was, size);
	sum += rte_raw_cksum(now, size);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	cksum = (uint16_t)~sum;
	return cksum == 0 ? 0xffff : cksum;
}

/* Frame `k`: its template, renumbered batch k + 1, the UDP checksum updated to match. */
static struct rte_mbuf *
gen_frame_mbuf(struct gen *g, uint64_t k)
{
	uint64_t t = k % g->template_count;
	uint16_t size = g->template_sizes[t];
	struct rte_mbuf *m = rte_pktmbuf_alloc(g->pool);
	uint8_t *packet;

	if (m == NULL)
		return NULL;
	packet = (uint8_t *)rte_pktmbuf_append(m, size);
	if (packet == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memcpy(packet, g->templates + t * GEN_PACKET_MAX, size);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(packet + GEN_HEADERS_SIZE) - 1;
	uint8_t *frame = (uint8_t *)(udp + 1);
	uint8_t was[GEN_RENUMBERED_BYTES];
	int rc;

	/* A real checksum: verifying it is part of the appliance's work being measured. */
	memcpy(was, frame, sizeof(was));
	rc = frame_renumber(&g->renumber, frame, (uint32_t)(size - GEN_HEADERS_SIZE), k + 1);
	assert(rc == 0);
	(void)rc;
	udp->dgram_cksum = gen_cksum_update(udp->dgram_cksum, was, frame, sizeof(was));
	return m;
}

/* Sends due frames, a burst at most; a frame the device does not take stays due. */
static uint16_t
gen_send(struct gen *g, uint64_t now_ns)
{
	struct rte_mbuf *tx[GEN_BURST];
	uint64_t due = now_ns / g->interval_ns + 1;
	uint16_t count = 0;
	uint16_t sent;

	if (due > g->frames_total)
		due = g->frames_total;
	while (count < GEN_BURST && g->frames_sent + count < due) {
		tx[count] = gen_frame_mbuf(g, g->frames_sent + count);
		if (tx[count] == NULL)
			break;
		count++;
	}
	sent = count == 0 ? 0 : rte_eth_tx_burst(g->port, 0, tx, count);
	rte_pktmbuf_free_bulk(&tx[sent], (unsigned)(count - sent));
	for (uint64_t k = g->frames_sent; k < g->frames_sent + sent; k++)
		if (g->block_sent_ns[k / GEN_SENT_BLOCK] == 0)
			g->block_sent_ns[k / GEN_SENT_BLOCK] = now_ns | 1;  /* 0: none yet. */
	g->frames_sent += sent;
	return sent;
}

/* A frame due at due_ns answered after latency_ns: into the first or last phase's mean. */
static void
gen_phase_add(struct gen *g, uint64_t due_ns, uint64_t latency_ns)
{
	uint64_t phase_ns = g->o.duration_ns / GEN_PHASE_DIV;
	int phase;

	if (due_ns < phase_ns)
		phase = 0;
	else if (due_ns >= g->o.duration_ns - phase_ns)
		phase = 1;
	else
		return;
	g->lat_sum_ns[phase] += latency_ns;
	g->lat_count[phase]++;
}

static uint64_t
gen_phase_mean(const struct gen *g, int phase)
{
	return g->lat_count[phase] == 0 ? 0 : g->lat_sum_ns[phase] / g->lat_count[phase];
}

static void
gen_answer(struct gen *g, const uint8_t *payload, uint16_t size, uint64_t now_ns)
{
	struct frame_ack ack;
	uint64_t k;

	if (frame_ack_decode(payload, size, &ack) != FRAME_OK ||
	    ack.producer_id != g->producer_id || ack.batch_seq == 0 || ack.batch_seq > g->frames_sent)
		return;
	k = ack.batch_seq - 1;
	if (g->answered[k / 8] & (1u << (k % 8)))
		return;
	g->answered[k / 8] |= (uint8_t)(1u << (k % 8));
	g->frames_answered++;
	if (ack.type == FRAME_TYPE_NACK) {
		g->records_failed += g->o.per_frame;
		return;
	}
	g->records_acked += g->o.per_frame;
	if (now_ns < g->o.duration_ns)
		g->records_acked_in_run += g->o.per_frame;
	gen_phase_add(g, k * g->interval_ns, now_ns - k * g->interval_ns);
	g->hist[gen_hist_index(now_ns - k * g->interval_ns)] += g->o.per_frame;
	uint64_t sent_ns = g->block_sent_ns[k / GEN_SENT_BLOCK];

	g->hist_sent[gen_hist_index(now_ns > sent_ns ? now_ns - sent_ns : 0)] += g->o.per_frame;
}

static uint16_t
gen_receive_burst(struct gen *g, uint64_t now_ns)
{
	struct rte_mbuf *rx[GEN_BURST];
	uint16_t count = rte_eth_rx_burst(g->port, 0, rx, GEN_BURST);

	for (uint16_t i = 0; i < count; i++) {
		const struct rte_ether_hdr *eth =
			rte_pktmbuf_mtod(rx[i], const struct rte_ether_hdr *);
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
		const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
		uint16_t udp_size;

		if (rx[i]->nb_segs != 1 || rx[i]->data_len < GEN_HEADERS_SIZE ||
		    eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
		    ip->version_ihl != RTE_IPV4_VHL_DEF || ip->next_proto_id != IPPROTO_UDP ||
		    udp->dst_port != rte_cpu_to_be_16(GEN_SRC_PORT))
			continue;
		udp_size = rte_be_to_cpu_16(udp->dgram_len);
		if (udp_size >= sizeof(*udp) &&
		    udp_size <= rx[i]->data_len - sizeof(*eth) - sizeof(*ip))
			gen_answer(g, (const uint8_t *)(udp + 1),
				   (uint16_t)(udp_size - sizeof(*udp)), now_ns);
	}
	rte_pktmbuf_free_bulk(rx, count);
	return count;
}

/* Answers, several bursts while they come full: catching up after this process waited. */
static uint16_t
gen_receive(struct gen *g, uint64_t now_ns)
{
	uint16_t total = 0;
	uint16_t count;

	for (int i = 0; i < GEN_RX_BURSTS_MAX; i++) {
		count = gen_receive_burst(g, now_ns);
		total += count;
		if (count < GEN_BURST)
			break;
	}
	return total;
}

/*
 * A pass that sent and received nothing sleeps GEN_IDLE_SLEEP_NS when no frame is due
 * before then: a spinning generator took a whole CPU from the appliance it measures on
 * a 2-vCPU host (the log writer waited behind it). A late wake-up shows up as latency,
 * measured from the frame's due time as ever.
 */
static void
gen_idle(const struct gen *g, uint64_t now_ns)
{
	const struct timespec nap = { .tv_sec = 0, .tv_nsec = GEN_IDLE_SLEEP_NS };
	uint64_t next_due_ns = g->frames_sent * g->interval_ns;

	if (g->frames_sent < g->frames_total && next_due_ns < now_ns + GEN_IDLE_SLEEP_NS)
		return;
	nanosleep(&nap, NULL);
}

/* Offers load for the duration, then drains answers until all came or the drain ends. */
static uint64_t
gen_run(struct gen *g)
{
	uint64_t stop_ns = g->o.duration_ns + g->o.drain_ns;
	uint64_t now_ns;

	prctl(PR_SET_TIMERSLACK, GEN_TIMER_SLACK_NS);  /* The default 50 us would double a nap. */
	g->start_tsc = rte_rdtsc();
	for (;;) {
		now_ns = gen_now_ns(g);
		uint16_t moved = now_ns < g->o.duration_ns ? gen_send(g, now_ns) : 0;

		moved += gen_receive(g, now_ns);
		if (now_ns >= stop_ns ||
		    (now_ns >= g->o.duration_ns && g->frames_answered == g->frames_sent))
			return now_ns;
		if (moved == 0)
			gen_idle(g, now_ns);
	}
}

/* The p-th percentile (0 < p <= 100) of a histogram: its bucket's upper bound, 0 if empty. */
static uint64_t
gen_hist_percentile(const uint64_t *hist, double p)
{
	uint64_t total = 0;
	uint64_t seen = 0;

	for (uint32_t i = 0; i < GEN_HIST_BUCKETS; i++)
		total += hist[i];
	for (uint32_t i = 0; i < GEN_HIST_BUCKETS && total > 0; i++) {
		seen += hist[i];
		if ((double)seen >= (double)total * p / 100.0)
			return gen_hist_high(i);
	}
	return 0;
}

static void
gen_report(const struct gen *g, uint64_t elapsed_ns)
{
	struct rte_eth_stats st;
	uint32_t pairs = 0;

	if (rte_eth_stats_get(g->port, &st) != 0)
		memset(&st, 0, sizeof(st));
	printf("dp-gen: frames_sent=%llu records_sent=%llu records_acked=%llu records_failed=%llu "
	       "frames_unsent=%llu records_unanswered=%llu elapsed_ns=%llu "
	       "records_acked_in_run=%llu lat_first_ns=%llu lat_last_ns=%llu "
	       "rx_missed=%llu rx_nombuf=%llu tx_errors=%llu sent_p50_ns=%llu sent_p99_ns=%llu\n",
	       (unsigned long long)g->frames_sent,
	       (unsigned long long)(g->frames_sent * g->o.per_frame),
	       (unsigned long long)g->records_acked, (unsigned long long)g->records_failed,
	       (unsigned long long)(g->frames_total - g->frames_sent),
	       (unsigned long long)((g->frames_sent - g->frames_answered) * g->o.per_frame),
	       (unsigned long long)(elapsed_ns < g->o.duration_ns ? elapsed_ns :
				    g->o.duration_ns),
	       (unsigned long long)g->records_acked_in_run,
	       (unsigned long long)gen_phase_mean(g, 0), (unsigned long long)gen_phase_mean(g, 1),
	       (unsigned long long)st.imissed, (unsigned long long)st.rx_nombuf,
	       (unsigned long long)st.oerrors,
	       (unsigned long long)gen_hist_percentile(g->hist_sent, 50.0),
	       (unsigned long long)gen_hist_percentile(g->hist_sent, 99.0));
	for (uint32_t i = 0; i < GEN_HIST_BUCKETS; i++) {
		if (g->hist[i] == 0)
			continue;
		if (pairs % GEN_HIST_PAIRS_PER_LINE == 0)
			printf("%sdp-gen-latency:", pairs == 0 ? "" : "\n");
		printf(" %llu:%llu", (unsigned long long)gen_hist_high(i),
		       (unsigned long long)g->hist[i]);
		pairs++;
	}
	if (pairs > 0)
		printf("\n");
	/* Before the device closes: its messages (stderr, same pipe) must not split a line. */
	fflush(stdout);
}

/* ---- Set-up ------------------------------------------------------------------------ */

static void
gen_close(struct gen *g)
{
	char runtime_dir[PATH_MAX];

	if (g->port_started) {
		rte_eth_dev_stop(g->port);
		rte_eth_dev_close(g->port);
	}
	if (g->eal_ready) {
		snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
		rte_eal_cleanup();
		dir_remove_flat(runtime_dir);
	}
	free(g->answered);
	free(g->block_sent_ns);
	free(g->templates);
	free(g->template_sizes);
	for (uint32_t i = 0; i < g->shard_count; i++) {
		free(g->shards[i].keys);
		free(g->shards[i].hashes);
	}
}

/* "INDEX:START:END[,...]" into g->shards; 0 or -1. */
static int
gen_shard_map_parse(struct gen *g, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		struct gen_shard *shard = &g->shards[g->shard_count];
		const char *start = strchr(p, ':');
		const char *end = start != NULL ? strchr(start + 1, ':') : NULL;
		const char *next;
		char *after;
		unsigned long index = strtoul(p, &after, 10);

		if (g->shard_count == GEN_SHARDS_MAX || start == NULL || end == NULL ||
		    after != start || index > UINT32_MAX)
			return -1;
		next = end + 1 + strcspn(end + 1, ",");
		if (hashkey_parse_decimal(start + 1, (size_t)(end - start - 1), &shard->start) != 0 ||
		    hashkey_parse_decimal(end + 1, (size_t)(next - end - 1), &shard->end) != 0 ||
		    shard->start > shard->end)
			return -1;
		shard->index = (uint32_t)index;
		g->shard_count++;
		p = *next == ',' ? next + 1 : next;
	}
	return g->shard_count > 0 ? 0 : -1;
}

/* Each key's MD5 into the list of the shard that owns it (a key no shard owns is unused). */
static int
gen_shard_keys(struct gen *g)
{
	for (uint32_t i = 0; i < g->shard_count; i++) {
		g->shards[i].keys = calloc(g->o.key_count, sizeof(*g->shards[i].keys));
		g->shards[i].hashes = calloc(g->o.key_count, sizeof(*g->shards[i].hashes));
		if (g->shards[i].keys == NULL || g->shards[i].hashes == NULL)
			return -1;
	}
	for (uint32_t n = 0; n < g->o.key_count; n++) {
		char key[24];
		int key_size = snprintf(key, sizeof(key), "key-%08u", (unsigned)n);
		uint8_t hash[16];
		hashkey_t h;

		hashkey_md5(key, (size_t)key_size, hash);
		h = hashkey_from_be_bytes(hash);
		for (uint32_t i = 0; i < g->shard_count; i++) {
			struct gen_shard *shard = &g->shards[i];

			if (h < shard->start || h > shard->end)
				continue;
			shard->keys[shard->key_count] = n;
			memcpy(shard->hashes[shard->key_count], hash, sizeof(hash));
			shard->key_count++;
			break;
		}
	}
	return gen_frame_shard(g, 0) != NULL ? 0 : -1;
}

static int
gen_parse(int argc, char **argv, struct gen_opts *o)
{
	static const struct option longopts[] = {
		{ "vdev", required_argument, NULL, 'v' },
		{ "file-prefix", required_argument, NULL, 'f' },
		{ "stream", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 'b' },
		{ "records-per-frame", required_argument, NULL, 'k' },
		{ "key-count", required_argument, NULL, 'c' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "drain-ms", required_argument, NULL, 'D' },
		{ "peer-mac", required_argument, NULL, 'm' },
		{ "shard-map", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	char ip[32] = "198.18.0.1";
	unsigned a, b, c, d, port = 4570;
	int opt;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'v')
			o->vdev = optarg;
		else if (opt == 'f')
			o->file_prefix = optarg;
		else if (opt == 's')
			o->stream = optarg;
		else if (opt == 't' && sscanf(optarg, "%31[0-9.]:%u", ip, &port) != 2)
			return -1;
		else if (opt == 'r')
			o->rate = strtoull(optarg, NULL, 10);
		else if (opt == 'b')
			o->size = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'k')
			o->per_frame = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'c')
			o->key_count = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'd')
			o->duration_ns = strtoull(optarg, NULL, 10) * 1000000u;
		else if (opt == 'D')
			o->drain_ns = strtoull(optarg, NULL, 10) * 1000000u;
		else if (opt == 'm')
			o->peer_mac = optarg;
		else if (opt == 'S')
			o->shard_map = optarg;
		else if (opt == '?')
			return -1;
	}
	if (sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4 || a > 255 || b > 255 || c > 255 ||
	    d > 255 || port == 0 || port > 65535)
		return -1;
	o->dst_be = rte_cpu_to_be_32((a << 24) | (b << 16) | (c << 8) | d);
	o->dport_be = rte_cpu_to_be_16((uint16_t)port);
	if (o->vdev == NULL || o->file_prefix == NULL || o->stream == NULL || o->rate == 0 ||
	    o->size == 0 || o->size > GEN_UDP_PAYLOAD_MAX || o->per_frame == 0 ||
	    o->per_frame > FRAME_RECORDS_MAX || o->key_count == 0 ||
	    o->key_count > GEN_KEY_COUNT_MAX || o->duration_ns == 0 || strlen(o->stream) > 128 ||
	    (o->shard_map != NULL && o->key_count > GEN_GROUPED_KEYS_MAX))
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	static struct gen g;
	uint8_t probe[GEN_UDP_PAYLOAD_MAX];
	int rc = 1;

	g.o = (struct gen_opts){ .size = 100, .per_frame = 1, .key_count = 1000,
				 .drain_ns = 5000000000ull };
	if (gen_parse(argc, argv, &g.o) != 0) {
		fprintf(stderr, "usage: sluice-dp-gen --vdev VDEV --file-prefix P --stream S "
				"--rate N --duration-ms MS [--drain-ms MS] [--target IP:PORT] "
				"[--size B] [--records-per-frame N] [--key-count N] "
				"[--peer-mac MAC] [--shard-map INDEX:START:END,...]\n");
		return 2;
	}
	g.interval_ns = (uint64_t)(1e9 * (double)g.o.per_frame / (double)g.o.rate);
	g.interval_ns = g.interval_ns == 0 ? 1 : g.interval_ns;
	g.frames_total = g.o.duration_ns / g.interval_ns;
	g.frames_total = g.frames_total == 0 ? 1 : g.frames_total;
	g.answered = calloc(g.frames_total / 8 + 1, 1);
	g.block_sent_ns = calloc(g.frames_total / GEN_SENT_BLOCK + 1, sizeof(*g.block_sent_ns));
	for (size_t i = 0; i < sizeof(g.data); i++)
		g.data[i] = (uint8_t)('a' + (i * 7 + i / 26) % 26);
	g.producer_id = ((uint64_t)getpid() << 32 | (uint64_t)time(NULL)) | 1;
	if (g.answered == NULL || g.block_sent_ns == NULL)
		goto out;
	if (g.o.shard_map != NULL &&
	    (gen_shard_map_parse(&g, g.o.shard_map) != 0 || gen_shard_keys(&g) != 0)) {
		fprintf(stderr, "sluice-dp-gen: --shard-map %s: not INDEX:START:END,... (at most "
			"%u shards) owning some of the --key-count keys\n", g.o.shard_map,
			GEN_SHARDS_MAX);
		rc = 2;
		goto out;
	}
	if (gen_frame_write(&g, 0, probe) <= 0) {
		fprintf(stderr, "sluice-dp-gen: %u records of %u B do not fit one %u-byte "
			"datagram\n", g.o.per_frame, g.o.size, GEN_UDP_PAYLOAD_MAX);
		rc = 2;
		goto out;
	}
	if (g.o.peer_mac != NULL && rte_ether_unformat_addr(g.o.peer_mac, &g.peer_mac) != 0) {
		fprintf(stderr, "sluice-dp-gen: --peer-mac %s is not a MAC address\n", g.o.peer_mac);
		rc = 2;
		goto out;
	}
	if (gen_eal(&g) != 0 || gen_port(&g) != 0 || (g.o.peer_mac == NULL && gen_arp(&g) != 0))
		goto out;
	if (gen_templates(&g) != 0) {
		fprintf(stderr, "sluice-dp-gen: cannot prepare %u frame templates (memory, or "
			"frames of unequal sizes)\n", GEN_TEMPLATES_MAX);
		goto out;
	}
	gen_report(&g, gen_run(&g));
	rc = 0;
out:
	gen_close(&g);
	return rc;
}
