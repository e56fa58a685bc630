/*
 * dp_bench_pcap.c - writes the benchmark's pcap files (part of sluice-dp-bench):
 * `count` distinct Ethernet/IPv4/UDP datagrams to 198.18.0.1:4570, each one
 * RECORDS frame (codec-built) for stream "bench", anonymous, ack mode NONE.
 * Checksums are real, so the dataplane verifies them in software (net_pcap
 * has no checksum offload), as it would for a NIC without offloads.
 *
 * Scenarios (record data sizes are the issue's):
 *   hash100     1 x 100 B record, producer-computed MD5 hash key
 *   hash12x100  12 x 100 B records, producer hash keys, 8-byte keys
 *               (1.6 KB datagrams: needs a jumbo MTU on a real link)
 *   md5         1 x 100 B record, no hash key: the appliance computes MD5;
 *               every frame has its own key (the key cache cannot help)
 *   md5hot      as md5, keys drawn from 1,000 device ids (the key cache helps)
 *   hash1k      1 x 1 KiB record, producer hash key
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "common/hashkey.h"
#include "dataplane/dp_bench.h"
#include "protocol/frame.h"

/* net_pcap's first port has this MAC (02:70:63:61:70 = "pcap", then the port id). */
static const uint8_t dp_bench_pcap_mac[6] = { 0x02, 0x70, 0x63, 0x61, 0x70, 0x00 };

struct dp_bench_shape {
	const char *name;
	uint32_t records;
	uint32_t data_size;
	uint8_t hash_kind;
	uint32_t key_pool;      /* 0: a distinct key per record. */
	uint32_t key_size;
	uint32_t grouped_shards; /* SHARD_RECORDS for shard (frame % this) of so many equal shards. */
};

static const struct dp_bench_shape dp_bench_shapes[] = {
	{ "hash100", 1, 100, FRAME_HASH_MD5, 0, 20, 0 },
	{ "hash12x100", 12, 100, FRAME_HASH_MD5, 0, 8, 0 },
	{ "md5", 1, 100, FRAME_HASH_NONE, 0, 20, 0 },
	{ "md5hot", 1, 100, FRAME_HASH_NONE, 1000, 20, 0 },
	{ "hash1k", 1, 1024, FRAME_HASH_MD5, 0, 20, 0 },
	{ "grouped12x100", 12, 100, FRAME_HASH_MD5, 0, 8, DP_BENCH_GROUPED_SHARDS },
};

static uint64_t
dp_bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Key "k" + decimal id, padded with letters to `size` bytes. */
static void
dp_bench_key(char *key, uint32_t size, uint64_t id)
{
	int n = snprintf(key, size + 1, "k%llu", (unsigned long long)id);

	for (uint32_t i = (uint32_t)n; i < size; i++)
		key[i] = (char)('a' + (id + i) % 26);
	key[size] = '\0';
}

/*
 * A distinct 8-byte key (base 36 of `*next`) whose MD5 falls in `shard` of
 * `shards` equal ranges: tries successive ids (16 tries on average for 16).
 */
static hashkey_t
dp_bench_key_in_shard(char *key, uint32_t shard, uint32_t shards, uint64_t *next)
{
	hashkey_t start = hashkey_range_start(shard, shards);
	hashkey_t end = shard + 1 < shards ? hashkey_range_start(shard + 1, shards) - 1 : HASHKEY_MAX;

	for (;;) {
		uint64_t id = (*next)++;
		hashkey_t h;

		for (int i = 7; i >= 0; i--, id /= 36)
			key[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[id % 36];
		key[8] = '\0';
		h = hashkey_from_partition_key(key, 8);
		if (h >= start && h <= end)
			return h;
	}
}

static int
dp_bench_frame(const struct dp_bench_shape *shape, uint64_t index, uint64_t *rng,
	       uint8_t *out, uint32_t capacity)
{
	static uint64_t grouped_next_id;
	static uint8_t data[1024];
	struct frame_batch_params p = {
		.batch_seq = index,
		.ack_mode = FRAME_ACK_NONE,
		.stream_name = "bench",
		.stream_name_size = 5,
		.shard_grouped = shape->grouped_shards != 0,
		.shard_index = shape->grouped_shards != 0 ? (uint32_t)(index % shape->grouped_shards) : 0,
	};
	struct frame_writer w;

	if (frame_writer_begin(&w, out, capacity, &p) != 0)
		return -EINVAL;
	for (uint32_t r = 0; r < shape->records; r++) {
		char key[64];
		uint8_t hash[16];
		uint64_t id = shape->key_pool != 0 ? dp_bench_rand(rng) % shape->key_pool :
						     index * shape->records + r;
		struct frame_record rec = {
			.key = (const uint8_t *)key,
			.key_size = (uint16_t)shape->key_size,
			.data = data,
			.data_size = shape->data_size,
			.hash_kind = shape->hash_kind,
			.hash_key = shape->hash_kind == FRAME_HASH_NONE ? NULL : hash,
		};

		for (uint32_t i = 0; i < shape->data_size; i++)
			data[i] = (uint8_t)dp_bench_rand(rng);
		if (shape->grouped_shards != 0) {
			assert(shape->key_size == 8);
			hashkey_to_be_bytes(dp_bench_key_in_shard(key, p.shard_index,
								  shape->grouped_shards,
								  &grouped_next_id), hash);
		} else {
			dp_bench_key(key, shape->key_size, id);
			hashkey_to_be_bytes(hashkey_from_partition_key(key, shape->key_size), hash);
		}
		if (frame_writer_add(&w, &rec) != 0)
			return -ENOSPC;
	}
	return frame_writer_finish(&w);
}

/* Wraps `payload` in Ethernet/IPv4/UDP; returns the packet size. */
static uint32_t
dp_bench_packet(uint8_t *pkt, uint64_t index, const uint8_t *payload, uint32_t payload_size)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)pkt;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	memcpy(&eth->dst_addr, dp_bench_pcap_mac, 6);
	memset(&eth->src_addr, 0, 6);
	eth->src_addr.addr_bytes[0] = 0x02;
	eth->src_addr.addr_bytes[5] = 0x02;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + payload_size));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	/* Not RTE_IPV4(): it shifts a signed int into the sign bit. */
	ip->src_addr = rte_cpu_to_be_32((198u << 24) | (19u << 16) | (uint32_t)(index & 0xffff));
	ip->dst_addr = rte_cpu_to_be_32((198u << 24) | (18u << 16) | 1u);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = rte_cpu_to_be_16((uint16_t)(1024 + index % 50000));
	udp->dst_port = rte_cpu_to_be_16(4570);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + payload_size));
	memcpy(udp + 1, payload, payload_size);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	return (uint32_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + payload_size);
}

static int
dp_bench_pcap_header(FILE *f)
{
	/* Classic pcap: magic, v2.4, GMT offset, accuracy, snaplen, LINKTYPE_ETHERNET. */
	uint32_t h[6] = { 0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1 };

	return fwrite(h, sizeof(h), 1, f) == 1 ? 0 : -EIO;
}

int
dp_bench_pcap_write(const char *path, const char *scenario, uint32_t count)
{
	const struct dp_bench_shape *shape = NULL;
	static uint8_t payload[2048];
	static uint8_t pkt[2048];
	uint64_t rng = 0x51ce;
	FILE *f;
	int rc;

	for (size_t i = 0; i < sizeof(dp_bench_shapes) / sizeof(dp_bench_shapes[0]); i++)
		if (strcmp(dp_bench_shapes[i].name, scenario) == 0)
			shape = &dp_bench_shapes[i];
	if (shape == NULL)
		return -EINVAL;
	f = fopen(path, "wb");
	if (f == NULL)
		return -errno;
	rc = dp_bench_pcap_header(f);
	for (uint64_t i = 0; i < count && rc == 0; i++) {
		/* 1920 B of mbuf data room, minus the 42 B of headers. */
		int size = dp_bench_frame(shape, i, &rng, payload, 1920 - 42);
		uint32_t pkt_size;
		uint32_t rec[4];

		if (size < 0) {
			rc = size;
			break;
		}
		pkt_size = dp_bench_packet(pkt, i, payload, (uint32_t)size);
		rec[0] = (uint32_t)(i / 1000000);
		rec[1] = (uint32_t)(i % 1000000);
		rec[2] = pkt_size;
		rec[3] = pkt_size;
		if (fwrite(rec, sizeof(rec), 1, f) != 1 || fwrite(pkt, pkt_size, 1, f) != 1)
			rc = -EIO;
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}
