/*
 * dp_net.c - L2/L3 of a worker: Ethernet, ARP responder, IPv4 and UDP
 * validation, ICMP echo reply, and the UDP headers of the frames we send.
 *
 * Every received packet ends here in exactly one way: transmitted back (ARP
 * and echo replies are built in place in the received mbuf, to the L2 source
 * of the request: no ARP cache is needed), handed to ingest (UDP to
 * ingest_port; the mbuf is freed after ingest copied what it keeps), handed
 * to the TCP receiver (any TCP segment to our address: dp_tcp.h answers
 * other ports with RST; the mbuf is freed after the burst, as frames handed
 * over in place point into it), or dropped and counted under one cause.
 *
 * Checksums: when the port validates IPv4/UDP checksums we trust its GOOD and
 * BAD flags; anything else (no offload, flag UNKNOWN) is verified in software.
 * Replies get software checksums (small, rare packets).
 *
 * Big datagrams: a jumbo frame the device chained over several mbufs, or an
 * IPv4 datagram reassembled from fragments (rte_ip_frag, a bounded table per
 * worker: DP_FRAG_FLOWS datagrams, DP_FRAG_TIMEOUT_MS each, at most
 * RTE_LIBRTE_IP_FRAG_MAX_FRAG fragments), is copied into one of the worker's
 * big buffers when its payload is not contiguous. Fragments the table gives
 * up (timeout, too many, table full) are counted as drop_fragment when they
 * are freed at the burst's end: nothing is dropped uncounted.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dataplane/dp_internal.h"

#define DP_IPV4_TTL 64
/* Handlers return this once the mbuf is sent or freed, else the drop counter. */
#define DP_NET_CONSUMED (-1)


/* Turns the received frame around: back to its L2 source, from us. */
static void
dp_net_eth_reflect(struct dp_worker *w, struct rte_ether_hdr *eth)
{
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&w->dp->mac, &eth->src_addr);
}

static int
dp_net_arp(struct dp_worker *w, struct rte_mbuf *m, struct rte_ether_hdr *eth)
{
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	struct rte_arp_ipv4 *body = &arp->arp_data;

	if (m->data_len < sizeof(*eth) + sizeof(*arp))
		return DP_DROP_MALFORMED_L2L3;
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4)
		return DP_DROP_MALFORMED_L2L3;
	if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST))
		return DP_DROP_UNKNOWN;
	if (body->arp_tip != w->dp->ipv4_be)
		return DP_DROP_NOT_OURS;

	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&body->arp_sha, &body->arp_tha);
	body->arp_tip = body->arp_sip;
	rte_ether_addr_copy(&w->dp->mac, &body->arp_sha);
	body->arp_sip = w->dp->ipv4_be;
	dp_net_eth_reflect(w, eth);
	dp_count(w, DP_ARP_REPLIES, 1);
	dp_worker_tx(w, m);
	return DP_NET_CONSUMED;
}

static int
dp_net_icmp(struct dp_worker *w, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	    struct rte_ipv4_hdr *ip, uint16_t l4_size)
{
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)((uint8_t *)ip + rte_ipv4_hdr_len(ip));
	uint32_t addr;

	if (l4_size < sizeof(*icmp))
		return DP_DROP_MALFORMED_L2L3;
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		return DP_DROP_UNKNOWN;
	if (rte_raw_cksum(icmp, l4_size) != 0xffff)
		return DP_DROP_BAD_CHECKSUM;

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, l4_size);
	addr = ip->src_addr;
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = addr;
	ip->time_to_live = DP_IPV4_TTL;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	dp_net_eth_reflect(w, eth);
	dp_count(w, DP_ICMP_ECHO_REPLIES, 1);
	dp_worker_tx(w, m);
	return DP_NET_CONSUMED;
}

/*
 * RFC 1071 ones' complement sum, 4 bytes at a time into a 64-bit accumulator
 * (DPDK's rte_raw_cksum adds 2 bytes at a time: it was a tenth of the whole
 * per-packet cost). Summing little-endian words gives the byte-swapped sum;
 * a valid checksum sums to 0xffff in either order.
 */
#if defined(__x86_64__)
/*
 * The 32-byte blocks of a long span with AVX2: each 32-bit word widened
 * into one of eight 64-bit lanes (no carries lost below 2^32 words), about
 * four times the scalar loop's pace on a 1.5 KB datagram.
 */
__attribute__((target("avx2"))) static uint64_t
dp_net_sum_avx2(const uint8_t **p_inout, uint32_t *size_inout)
{
	const uint8_t *p = *p_inout;
	uint32_t size = *size_inout;
	__m256i zero = _mm256_setzero_si256();
	__m256i lo = zero;
	__m256i hi = zero;
	uint64_t lanes[4];

	for (; size >= 32; p += 32, size -= 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);

		lo = _mm256_add_epi64(lo, _mm256_unpacklo_epi32(v, zero));
		hi = _mm256_add_epi64(hi, _mm256_unpackhi_epi32(v, zero));
	}
	_mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(lo, hi));
	*p_inout = p;
	*size_inout = size;
	return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

static uint16_t
dp_net_sum(const void *data, uint32_t size, uint64_t sum)
{
	const uint8_t *p = data;
	uint64_t sum2 = 0;

#if defined(__x86_64__)
	if (size >= 128 && __builtin_cpu_supports("avx2"))
		sum += dp_net_sum_avx2(&p, &size);
#endif

	/* Two independent chains: the adds of one do not wait for the other's. */
	for (; size >= 16; p += 16, size -= 16) {
		uint64_t a;
		uint64_t b;

		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		sum += (a & 0xffffffffu) + (a >> 32);
		sum2 += (b & 0xffffffffu) + (b >> 32);
	}
	sum += sum2;
	if (size >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		sum += (v & 0xffffffffu) + (v >> 32);
		p += 8;
		size -= 8;
	}
	if (size >= 4) {
		uint32_t v;

		memcpy(&v, p, 4);
		sum += v;
		p += 4;
		size -= 4;
	}
	if (size >= 2) {
		uint16_t v;

		memcpy(&v, p, 2);
		sum += v;
		p += 2;
		size -= 2;
	}
	if (size == 1)
		sum += *p;
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)sum;
}

/* The UDP checksum over pseudo-header, header and payload sums to 0xffff when valid. */
static bool
dp_net_udp_sum_ok(const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *udp)
{
	/*
	 * The pseudo-header's words as they lie in memory (the sum is taken over
	 * little-endian loads): addresses, then bytes {0, protocol}, then the
	 * length. Summed in registers: a stack copy cost a store-forwarding stall.
	 */
	uint64_t pseudo = (uint64_t)ip->src_addr + ip->dst_addr + ((uint32_t)IPPROTO_UDP << 8) +
			  udp->dgram_len;

	return dp_net_sum(udp, rte_be_to_cpu_16(udp->dgram_len), pseudo) == 0xffff;
}

static bool
dp_net_udp_cksum_ok(struct dp_worker *w, const struct rte_mbuf *m,
		    const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *udp)
{
	uint64_t flag = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	if (udp->dgram_cksum == 0)
		return true; /* IPv4 lets a sender omit the UDP checksum. */
	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		return true;
	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return false;
	return dp_net_udp_sum_ok(ip, udp);
}

/*
 * The bytes [off, off + size) of `m`: in place when its first segment holds
 * them, else copied into a big buffer (the frames held in the big buffers are
 * processed first when all are taken). NULL only for a size beyond any
 * IPv4 datagram.
 */
static const uint8_t *
dp_net_bytes(struct dp_worker *w, const struct rte_mbuf *m, uint32_t off, uint32_t size)
{
	uint8_t *buf;

	if (off + size <= m->data_len)
		return rte_pktmbuf_mtod_offset(m, const uint8_t *, off);
	if (size > DP_BIG_SIZE)
		return NULL;
	if (w->big_used == DP_BIG_SLOTS) {
		dp_ingest_burst_end(w, rte_rdtsc());
		w->big_used = 0;
	}
	buf = w->big + (size_t)w->big_used++ * DP_BIG_SIZE;
	return rte_pktmbuf_read(m, off, size, buf);
}

/* An L4 checksum over a header in place and a payload elsewhere (both even-aligned). */
static bool
dp_net_l4_sum_ok(const void *header, uint32_t header_size, const uint8_t *payload,
		 uint32_t payload_size, uint64_t pseudo)
{
	return dp_net_sum(payload, payload_size, dp_net_sum(header, header_size, pseudo)) ==
	       0xffff;
}

static int
dp_net_udp(struct dp_worker *w, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   struct rte_ipv4_hdr *ip, uint16_t l4_size, uint64_t now_tsc)
{
	uint32_t off = (uint32_t)sizeof(*eth) + rte_ipv4_hdr_len(ip);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)((uint8_t *)ip + rte_ipv4_hdr_len(ip));
	uint32_t size = (uint32_t)(l4_size - sizeof(*udp));
	const uint8_t *payload;
	struct dp_peer peer;

	if (m->data_len < off + sizeof(*udp))
		return DP_DROP_MULTI_SEGMENT; /* Its header does not fit the first buffer. */
	if (l4_size < sizeof(*udp) || rte_be_to_cpu_16(udp->dgram_len) != l4_size)
		return DP_DROP_MALFORMED_L2L3;
	if (m->nb_segs == 1) {
		if (!dp_net_udp_cksum_ok(w, m, ip, udp))
			return DP_DROP_BAD_CHECKSUM;
		payload = (const uint8_t *)(udp + 1);
	} else {
		/* Chained (jumbo or reassembled): checked in software over the copy. */
		payload = dp_net_bytes(w, m, off + (uint32_t)sizeof(*udp), size);
		if (payload == NULL)
			return DP_DROP_MALFORMED_L2L3;
		if (udp->dgram_cksum != 0 &&
		    !dp_net_l4_sum_ok(udp, sizeof(*udp), payload, size,
				      (uint64_t)ip->src_addr + ip->dst_addr +
				      ((uint32_t)IPPROTO_UDP << 8) + udp->dgram_len))
			return DP_DROP_BAD_CHECKSUM;
	}
	if (udp->dst_port != w->dp->ingest_port_be)
		return DP_DROP_WRONG_PORT;

	memset(&peer, 0, sizeof(peer));
	rte_ether_addr_copy(&eth->src_addr, &peer.mac);
	peer.ipv4_be = ip->src_addr;
	peer.port_be = udp->src_port;
	dp_ingest_datagram(w, &peer, payload, size, now_tsc);
	w->done[w->done_count++] = m; /* Ingest copied what it keeps. */
	return DP_NET_CONSUMED;
}

/* TCP's pseudo-header has no length field of its own: the segment's length. */
static bool
dp_net_tcp_cksum_ok(struct dp_worker *w, const struct rte_mbuf *m,
		    const struct rte_ipv4_hdr *ip, const struct rte_tcp_hdr *tcp, uint16_t l4_size)
{
	uint64_t flag = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	uint64_t pseudo;

	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		return true;
	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return false;
	pseudo = (uint64_t)ip->src_addr + ip->dst_addr + ((uint32_t)IPPROTO_TCP << 8) +
		 rte_cpu_to_be_16(l4_size);
	return dp_net_sum(tcp, l4_size, pseudo) == 0xffff;
}

static int
dp_net_tcp(struct dp_worker *w, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   struct rte_ipv4_hdr *ip, uint16_t l4_size, uint64_t now_tsc)
{
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)((uint8_t *)ip + rte_ipv4_hdr_len(ip));
	struct dp_tcp_seg seg;
	uint32_t header_size;

	uint32_t off = (uint32_t)sizeof(*eth) + rte_ipv4_hdr_len(ip);
	const uint8_t *payload;

	if (l4_size < sizeof(*tcp))
		return DP_DROP_MALFORMED_L2L3;
	header_size = (uint32_t)(tcp->data_off >> 4) * 4u;
	if (header_size < sizeof(*tcp) || header_size > l4_size)
		return DP_DROP_MALFORMED_L2L3;
	if (m->data_len < off + header_size)
		return DP_DROP_MULTI_SEGMENT; /* Its header does not fit the first buffer. */
	if (m->nb_segs == 1) {
		if (!dp_net_tcp_cksum_ok(w, m, ip, tcp, l4_size))
			return DP_DROP_BAD_CHECKSUM;
		payload = (const uint8_t *)tcp + header_size;
	} else {
		payload = dp_net_bytes(w, m, off + header_size, l4_size - header_size);
		if (payload == NULL)
			return DP_DROP_MALFORMED_L2L3;
		if (!dp_net_l4_sum_ok(tcp, header_size, payload, l4_size - header_size,
				      (uint64_t)ip->src_addr + ip->dst_addr +
				      ((uint32_t)IPPROTO_TCP << 8) + rte_cpu_to_be_16(l4_size)))
			return DP_DROP_BAD_CHECKSUM;
	}
	memset(&seg, 0, sizeof(seg));
	if (!dp_tcp_parse_options((const uint8_t *)(tcp + 1), header_size - (uint32_t)sizeof(*tcp), &seg))
		return DP_TCP_BAD_SEGMENT;
	seg.mac = eth->src_addr.addr_bytes;
	seg.raddr_be = ip->src_addr;
	seg.rport_be = tcp->src_port;
	seg.lport_be = tcp->dst_port;
	seg.seq = rte_be_to_cpu_32(tcp->sent_seq);
	seg.ack = rte_be_to_cpu_32(tcp->recv_ack);
	seg.wnd = rte_be_to_cpu_16(tcp->rx_win);
	seg.flags = tcp->tcp_flags;
	seg.data = payload;
	seg.len = l4_size - header_size;
	dp_tcp_input(&w->tcp, &seg, dp_worker_now_us(w, now_tsc));
	w->done[w->done_count++] = m; /* Frames handed over in place point into it. */
	return DP_NET_CONSUMED;
}

static bool
dp_net_ipv4_cksum_ok(struct dp_worker *w, const struct rte_mbuf *m,
		     const struct rte_ipv4_hdr *ip)
{
	uint64_t flag = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;

	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		return true;
	if (w->dp->rx_cksum_offload && flag == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		return false;
	return dp_net_sum(ip, rte_ipv4_hdr_len(ip), 0) == 0xffff;
}

/*
 * A fragment into the reassembly table. Returns DP_NET_CONSUMED while its
 * datagram is incomplete (the table keeps it, or gave it up: counted when
 * freed), else 0 with *mp the whole datagram (chained mbufs).
 */
static int
dp_net_reassemble(struct dp_worker *w, struct rte_mbuf **mp, struct rte_ipv4_hdr *ip,
		  uint64_t now_tsc)
{
	struct rte_mbuf *m = *mp;
	struct rte_mbuf *whole;

	dp_count(w, DP_RX_FRAGMENTS, 1);
	m->l2_len = sizeof(struct rte_ether_hdr);
	m->l3_len = rte_ipv4_hdr_len(ip);
	whole = rte_ipv4_frag_reassemble_packet(w->frag_table, w->death_row, m, now_tsc, ip);
	if (whole == NULL)
		return DP_NET_CONSUMED;
	dp_count(w, DP_REASSEMBLED, 1);
	*mp = whole;
	return 0;
}

static int
dp_net_ipv4(struct dp_worker *w, struct rte_mbuf **mp, uint64_t now_tsc)
{
	struct rte_mbuf *m = *mp;
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	uint32_t first_room = (uint32_t)(m->data_len - sizeof(*eth));
	uint32_t l3_room = (uint32_t)(m->pkt_len - sizeof(*eth));
	uint32_t header_size;
	uint32_t total_size;

	if (first_room < sizeof(*ip) || (ip->version_ihl >> 4) != 4)
		return DP_DROP_MALFORMED_L2L3;
	header_size = rte_ipv4_hdr_len(ip);
	total_size = rte_be_to_cpu_16(ip->total_length);
	if (header_size < sizeof(*ip) || header_size > total_size || total_size > l3_room ||
	    header_size > first_room)
		return DP_DROP_MALFORMED_L2L3;
	if (!dp_net_ipv4_cksum_ok(w, m, ip))
		return DP_DROP_BAD_CHECKSUM;
	if (ip->dst_addr != w->dp->ipv4_be)
		return DP_DROP_NOT_OURS;
	/* Ethernet pads short frames: the IPv4 length is the truth from here on. */
	if (l3_room > total_size && rte_pktmbuf_trim(m, (uint16_t)(l3_room - total_size)) != 0)
		return DP_DROP_MALFORMED_L2L3;
	if ((ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG |
						     RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
		if (dp_net_reassemble(w, mp, ip, now_tsc) == DP_NET_CONSUMED)
			return DP_NET_CONSUMED;
		m = *mp;
		eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		ip = (struct rte_ipv4_hdr *)(eth + 1);
		header_size = rte_ipv4_hdr_len(ip);
		total_size = rte_be_to_cpu_16(ip->total_length);
		if (total_size != m->pkt_len - sizeof(*eth) || header_size > total_size)
			return DP_DROP_MALFORMED_L2L3;
	}
	if (m->nb_segs != 1 && ip->next_proto_id == IPPROTO_ICMP)
		return DP_DROP_MULTI_SEGMENT; /* Echo replies are built in place: small pings only. */

	if (ip->next_proto_id == IPPROTO_UDP)
		return dp_net_udp(w, m, eth, ip, (uint16_t)(total_size - header_size), now_tsc);
	if (ip->next_proto_id == IPPROTO_TCP)
		return dp_net_tcp(w, m, eth, ip, (uint16_t)(total_size - header_size), now_tsc);
	if (ip->next_proto_id == IPPROTO_ICMP)
		return dp_net_icmp(w, m, eth, ip, (uint16_t)(total_size - header_size));
	return DP_DROP_UNKNOWN;
}

static int
dp_net_classify(struct dp_worker *w, struct rte_mbuf **mp, uint64_t now_tsc)
{
	struct rte_mbuf *m = *mp;
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	bool to_us;

	if (m->data_len < sizeof(*eth))
		return DP_DROP_MALFORMED_L2L3;
	to_us = rte_is_same_ether_addr(&eth->dst_addr, &w->dp->mac);
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		if (!to_us && !rte_is_broadcast_ether_addr(&eth->dst_addr))
			return DP_DROP_NOT_OURS;
		return dp_net_arp(w, m, eth);
	}
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return DP_DROP_UNKNOWN;
	if (!to_us)
		return DP_DROP_NOT_OURS;
	return dp_net_ipv4(w, mp, now_tsc);
}

void
dp_net_input(struct dp_worker *w, struct rte_mbuf *m, uint64_t now_tsc)
{
	/* Reassembly may hand back another mbuf: the whole datagram. */
	int verdict = dp_net_classify(w, &m, now_tsc);

	if (verdict == DP_NET_CONSUMED)
		return;
	assert(verdict >= 0 && verdict < DP_COUNTER_COUNT);
	dp_count(w, (enum dp_counter)verdict, 1);
	w->done[w->done_count++] = m;
}

/*
 * A new packet of `size` bytes from us to (mac, ipv4_be) carrying `proto`,
 * its Ethernet and IPv4 headers written (lengths and checksum are the
 * caller's). NULL (counted) when the pool is empty.
 */
static struct rte_mbuf *
dp_net_ipv4_alloc(struct dp_worker *w, const uint8_t *mac, uint32_t ipv4_be, uint8_t proto,
		  uint16_t size, struct rte_ipv4_hdr **ip_out)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->dp->pool);
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;

	if (m == NULL || (eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, size)) == NULL) {
		rte_pktmbuf_free(m);
		dp_count(w, DP_DROP_NO_MBUF, 1);
		return NULL;
	}
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	memcpy(eth->dst_addr.addr_bytes, mac, RTE_ETHER_ADDR_LEN);
	rte_ether_addr_copy(&w->dp->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = DP_IPV4_TTL;
	ip->next_proto_id = proto;
	ip->src_addr = w->dp->ipv4_be;
	ip->dst_addr = ipv4_be;
	*ip_out = ip;
	return m;
}

struct rte_mbuf *
dp_net_udp_alloc(struct dp_worker *w, const struct dp_peer *peer, uint16_t payload_size,
		 uint8_t **payload_out)
{
	const uint16_t headers = sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) +
				 sizeof(struct rte_udp_hdr);
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	struct rte_mbuf *m = dp_net_ipv4_alloc(w, peer->mac.addr_bytes, peer->ipv4_be, IPPROTO_UDP,
					       (uint16_t)(headers + payload_size), &ip);

	if (m == NULL)
		return NULL;
	udp = (struct rte_udp_hdr *)(ip + 1);
	udp->src_port = w->dp->ingest_port_be;
	udp->dst_port = peer->port_be;
	*payload_out = (uint8_t *)(udp + 1);
	return m;
}

void
dp_net_udp_finish(struct rte_mbuf *m, uint16_t payload_size)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint16_t size = (uint16_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + payload_size);

	assert(size <= m->data_len);
	rte_pktmbuf_trim(m, (uint16_t)(m->data_len - size));
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + payload_size));
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + payload_size));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

int
dp_net_tcp_send(struct dp_worker *w, const struct dp_tcp_out *out)
{
	uint16_t tcp_size = (uint16_t)(sizeof(struct rte_tcp_hdr) + out->options_size);
	uint16_t size = (uint16_t)(sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) +
				   tcp_size + out->len);
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *tcp;
	struct rte_mbuf *m;

	assert(out->options_size % 4 == 0);
	m = dp_net_ipv4_alloc(w, out->mac, out->raddr_be, IPPROTO_TCP, size, &ip);
	if (m == NULL)
		return -ENOBUFS;
	tcp = (struct rte_tcp_hdr *)(ip + 1);
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + tcp_size + out->len));
	tcp->src_port = out->lport_be;
	tcp->dst_port = out->rport_be;
	tcp->sent_seq = rte_cpu_to_be_32(out->seq);
	tcp->recv_ack = rte_cpu_to_be_32(out->ack);
	tcp->data_off = (uint8_t)((tcp_size / 4) << 4);
	tcp->tcp_flags = out->flags;
	tcp->rx_win = rte_cpu_to_be_16(out->wnd);
	tcp->cksum = 0;
	tcp->tcp_urp = 0;
	memcpy(tcp + 1, out->options, out->options_size);
	if (out->len > 0)
		memcpy((uint8_t *)tcp + tcp_size, out->data, out->len);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	dp_worker_tx(w, m);
	return 0;
}

int
dp_net_init(struct dp_worker *w)
{
	uint64_t ttl = w->dp->tsc_hz / 1000u * DP_FRAG_TIMEOUT_MS;

	w->frag_table = rte_ip_frag_table_create(DP_FRAG_FLOWS / DP_FRAG_BUCKET_ENTRIES,
						 DP_FRAG_BUCKET_ENTRIES, DP_FRAG_FLOWS, ttl,
						 (int)rte_socket_id());
	w->death_row = calloc(1, sizeof(*w->death_row));
	w->big = malloc((size_t)DP_BIG_SLOTS * DP_BIG_SIZE);
	if (w->frag_table == NULL || w->death_row == NULL || w->big == NULL) {
		dp_net_fini(w);
		return -ENOMEM;
	}
	return 0;
}

void
dp_net_burst_end(struct dp_worker *w)
{
	if (w->death_row->cnt > 0) {
		dp_count(w, DP_DROP_FRAGMENT, w->death_row->cnt);
		rte_ip_frag_free_death_row(w->death_row, 0);
	}
	w->big_used = 0;
}

void
dp_net_fini(struct dp_worker *w)
{
	if (w->death_row != NULL && w->death_row->cnt > 0)
		rte_ip_frag_free_death_row(w->death_row, 0);
	rte_ip_frag_table_destroy(w->frag_table);
	free(w->death_row);
	free(w->big);
	w->frag_table = NULL;
	w->death_row = NULL;
	w->big = NULL;
}
