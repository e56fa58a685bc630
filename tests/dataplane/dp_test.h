/*
 * dp_test.h - helpers shared by the dataplane tests: a dataplane on a
 * net_ring loopback port (no NIC, no hugepages, no runtime files), crafted
 * packets injected into the worker's RX queue, and what the worker sent
 * read back from the same ring.
 */
#ifndef SLUICE_TESTS_DP_TEST_H
#define SLUICE_TESTS_DP_TEST_H

#include <stdint.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "dataplane/dp_internal.h"

/* Not RTE_IPV4(): it shifts a signed int into the sign bit (UBSan). */
#define DP_TEST_IPV4 ((198u << 24) | (18u << 16) | 1u)
#define DP_TEST_PEER_IPV4 ((198u << 24) | (18u << 16) | 2u)
#define DP_TEST_PORT 4570
#define DP_TEST_PEER_PORT 40000

extern struct dp *dp_test;
extern struct rte_mempool *dp_test_pool;
extern const struct rte_ether_addr dp_test_peer_mac;

/* Opens the dataplane on net_ring0 with `log` (may be NULL); Criterion asserts. */
void dp_test_open(struct log *log);
/* Worker lcores (= queue pairs) the next dp_test_open*() configures; default 1. */
extern uint32_t dp_test_workers;
/* Dedup windows per worker of the next dp_test_open*(); 0: the default. */
extern uint32_t dp_test_producers_max;
/* batch_age_us of the next dp_test_open*(); 0: the default. */
extern uint32_t dp_test_batch_age_us;
/* Cluster mode of the next dp_test_open*() (a fake node), or NULL. */
extern const struct dp_cluster *dp_test_cluster;

/* The same with producer HMAC keys (and whether frames must carry a tag). */
void dp_test_open_auth(struct log *log, const struct frame_auth_key *keys, uint32_t count,
		       bool required);
void dp_test_close(void);

/* Puts a copy of `bytes` on the worker's RX queue. */
void dp_test_inject(const void *bytes, uint16_t size);
void dp_test_inject_queue(uint16_t queue, const void *bytes, uint16_t size);
/* One poll pass of worker 0 (or of `worker`). */
uint32_t dp_test_poll(void);
uint32_t dp_test_poll_worker(uint32_t worker);
/* Takes up to `count` packets the worker transmitted (on TX queue `queue`). */
uint16_t dp_test_sent(struct rte_mbuf **out, uint16_t count);
uint16_t dp_test_sent_queue(uint16_t queue, struct rte_mbuf **out, uint16_t count);
uint64_t dp_test_counter(enum dp_counter counter);

/*
 * Writes Ethernet + IPv4 + UDP from the peer to us around `payload` into
 * `frame` (checksums valid). Returns the frame size.
 */
uint16_t dp_test_udp_frame(uint8_t *frame, uint16_t dst_port, const void *payload,
			   uint16_t payload_size);

#endif /* SLUICE_TESTS_DP_TEST_H */
