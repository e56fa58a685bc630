/*
 * dp_stats.c - counter names, summing for the control plane, and the DPDK
 * telemetry command /sluice/dp/stats (one dict: every counter summed over
 * workers), /sluice/dp/worker,<n> (one worker's counters) and /sluice/dp/tcp
 * (the TCP tables: size, connections held, dp_tcp_memory()'s accounting).
 *
 * Readers run on other threads (control, telemetry) and read each counter
 * with a relaxed load: the writer stores whole 64-bit values, so a reader
 * sees a recent value, never a torn one; counters only grow.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <rte_telemetry.h>

#include "dataplane/dp_internal.h"

static const char *const dp_counter_names[DP_COUNTER_COUNT] = {
	[DP_RX_PACKETS] = "rx_packets",
	[DP_RX_BYTES] = "rx_bytes",
	[DP_TX_PACKETS] = "tx_packets",
	[DP_TX_BYTES] = "tx_bytes",
	[DP_TX_DROPPED] = "tx_dropped",
	[DP_ARP_REPLIES] = "arp_replies",
	[DP_ICMP_ECHO_REPLIES] = "icmp_echo_replies",
	[DP_DROP_NOT_OURS] = "drop_not_ours",
	[DP_DROP_UNKNOWN] = "drop_unknown",
	[DP_DROP_MALFORMED_L2L3] = "drop_malformed_l2l3",
	[DP_DROP_BAD_CHECKSUM] = "drop_bad_checksum",
	[DP_DROP_FRAGMENT] = "drop_fragment",
	[DP_RX_FRAGMENTS] = "rx_fragments",
	[DP_REASSEMBLED] = "reassembled",
	[DP_DROP_WRONG_PORT] = "drop_wrong_port",
	[DP_DROP_MULTI_SEGMENT] = "drop_multi_segment",
	[DP_FRAMES_ACCEPTED] = "frames_accepted",
	[DP_FRAMES_MALFORMED] = "frames_malformed",
	[DP_FRAMES_UNAUTHENTICATED] = "frames_unauthenticated",
	[DP_FRAMES_KEY_MISMATCH] = "frames_key_mismatch",
	[DP_FRAMES_DUPLICATE] = "frames_duplicate",
	[DP_FRAMES_UNKNOWN_STREAM] = "frames_unknown_stream",
	[DP_FRAMES_SHARD_GROUPED] = "frames_shard_grouped",
	[DP_FRAMES_WRONG_SHARD] = "frames_wrong_shard",
	[DP_FRAMES_REDIRECTED] = "frames_redirected",
	[DP_FRAMES_NO_LEADER] = "frames_no_leader",
	[DP_FRAMES_SPLIT_LEADERS] = "frames_split_leaders",
	[DP_FRAMES_REPLICATING] = "frames_replicating",
	[DP_FRAMES_LEADERSHIP_LOST] = "frames_leadership_lost",
	[DP_RECORDS_STAGED] = "records_staged",
	[DP_RECORD_BYTES_STAGED] = "record_bytes_staged",
	[DP_RECORDS_DURABLE] = "records_durable",
	[DP_RECORDS_FAILED] = "records_failed",
	[DP_DROP_NO_ROUTE] = "drop_no_route",
	[DP_DROP_NO_BATCH] = "drop_no_batch",
	[DP_DROP_FRAMES_FULL] = "drop_frames_full",
	[DP_DROP_FRAMES_LATE] = "drop_frames_late",
	[DP_DROP_PRODUCERS_FULL] = "drop_producers_full",
	[DP_DROP_NO_MBUF] = "drop_no_mbuf",
	[DP_RING_FULL] = "ring_full",
	[DP_BATCHES_SUBMITTED] = "batches_submitted",
	[DP_ACKS_SENT] = "acks_sent",
	[DP_NACKS_SENT] = "nacks_sent",
	[DP_NACKS_SUPPRESSED] = "nacks_suppressed",
	[DP_MD5_COMPUTED] = "md5_computed",
	[DP_MD5_CACHE_HITS] = "md5_cache_hits",
	[DP_POLLS] = "polls",
	[DP_POLLS_BUSY] = "polls_busy",
	[DP_IDLE_SLEEPS] = "idle_sleeps",
	[DP_RX_PAUSED] = "rx_paused",
	[DP_DEV_RX_MISSED] = "dev_rx_missed",
	[DP_DEV_XSK_RX_RING_FULL] = "dev_xsk_rx_ring_full",
	[DP_TCP_SEGMENTS_IN] = "tcp_segments_in",
	[DP_TCP_SEGMENTS_OUT] = "tcp_segments_out",
	[DP_TCP_CONNS_OPENED] = "tcp_conns_opened",
	[DP_TCP_CONNS_CLOSED] = "tcp_conns_closed",
	[DP_TCP_SYN_COOKIES_SENT] = "tcp_syn_cookies_sent",
	[DP_TCP_SYN_COOKIES_OK] = "tcp_syn_cookies_ok",
	[DP_TCP_RESETS_SENT] = "tcp_resets_sent",
	[DP_TCP_RESETS_RECEIVED] = "tcp_resets_received",
	[DP_TCP_REFUSED_TABLE_FULL] = "tcp_refused_table_full",
	[DP_TCP_REFUSED_PER_SOURCE] = "tcp_refused_per_source",
	[DP_TCP_REFUSED_PORT] = "tcp_refused_port",
	[DP_TCP_BAD_SEGMENT] = "tcp_bad_segment",
	[DP_TCP_OUT_OF_WINDOW] = "tcp_out_of_window",
	[DP_TCP_PAWS_DROPS] = "tcp_paws_drops",
	[DP_TCP_CHALLENGE_ACKS] = "tcp_challenge_acks",
	[DP_TCP_CHALLENGE_SUPPRESSED] = "tcp_challenge_suppressed",
	[DP_TCP_BAD_ACK] = "tcp_bad_ack",
	[DP_TCP_DUP_BYTES] = "tcp_dup_bytes",
	[DP_TCP_OOO_SEGMENTS] = "tcp_ooo_segments",
	[DP_TCP_OOO_DROPPED] = "tcp_ooo_dropped",
	[DP_TCP_RX_NO_BUFFER] = "tcp_rx_no_buffer",
	[DP_TCP_BLOCKED] = "tcp_blocked",
	[DP_TCP_ZERO_WINDOWS] = "tcp_zero_windows",
	[DP_TCP_RETRANSMITS] = "tcp_retransmits",
	[DP_TCP_FAST_RETRANSMITS] = "tcp_fast_retransmits",
	[DP_TCP_FRAMES_IN] = "tcp_frames_in",
	[DP_TCP_FRAMING_ERRORS] = "tcp_framing_errors",
	[DP_TCP_FRAME_TOO_LARGE] = "tcp_frame_too_large",
	[DP_TCP_TIMEOUT_RETRANSMIT] = "tcp_timeout_retransmit",
	[DP_TCP_TIMEOUT_IDLE] = "tcp_timeout_idle",
	[DP_TCP_TIMEOUT_KEEPALIVE] = "tcp_timeout_keepalive",
	[DP_TCP_TIMEOUT_PARTIAL] = "tcp_timeout_partial",
	[DP_TCP_ANSWERS_ORPHANED] = "tcp_answers_orphaned",
	[DP_KERNEL_RX_NO_BUFFER] = "kernel_rx_no_buffer",
	[DP_KERNEL_TRUNCATED] = "kernel_truncated",
	[DP_KERNEL_ERRORS] = "kernel_errors",
	[DP_KERNEL_RX_DROPPED] = "kernel_rx_dropped",
};

const char *
dp_counter_name(enum dp_counter counter)
{
	assert(counter < DP_COUNTER_COUNT);
	assert(dp_counter_names[counter] != NULL);
	return dp_counter_names[counter];
}

void
dp_worker_stats_read(const struct dp *dp, uint32_t worker, struct dp_stats *stats_out)
{
	const struct dp_worker *w;

	assert(worker < dp->worker_count);
	w = &dp->workers[worker];
	for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++)
		stats_out->counters[c] = __atomic_load_n(&w->counters[c], __ATOMIC_RELAXED);
	dp_port_drops(dp, worker, &stats_out->counters[DP_DEV_RX_MISSED],
		      &stats_out->counters[DP_DEV_XSK_RX_RING_FULL]);
}

uint32_t
dp_worker_stream_counts(const struct dp *dp, uint32_t worker, struct dp_stream_count *out,
			uint32_t max)
{
	const struct dp_worker *w;
	uint64_t other;
	uint32_t n = 0;

	assert(worker < dp->worker_count);
	w = &dp->workers[worker];
	for (uint32_t i = 0; i < DP_STREAM_COUNTS_MAX && n < max; i++) {
		uint64_t id = __atomic_load_n(&w->stream_counts[i].id_plus1, __ATOMIC_ACQUIRE);

		if (id == 0)
			continue;
		out[n].stream_id = (uint32_t)(id - 1);
		out[n].records = __atomic_load_n(&w->stream_counts[i].records, __ATOMIC_RELAXED);
		n++;
	}
	other = __atomic_load_n(&w->stream_counts_other, __ATOMIC_RELAXED);
	if (other != 0 && n < max)
		out[n++] = (struct dp_stream_count){ DP_STREAM_COUNT_OTHER, other };
	return n;
}

void
dp_stats_read(const struct dp *dp, struct dp_stats *stats_out)
{
	memset(stats_out, 0, sizeof(*stats_out));
	for (uint32_t i = 0; i < dp->worker_count; i++) {
		struct dp_stats one;

		dp_worker_stats_read(dp, i, &one);
		for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++)
			stats_out->counters[c] += one.counters[c];
	}
}

/* Telemetry callbacks get no argument pointer: the one dataplane of the process. */
static const struct dp *dp_telemetry_dp;

static void
dp_telemetry_dict(struct rte_tel_data *d, const struct dp_stats *stats)
{
	rte_tel_data_start_dict(d);
	for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++)
		rte_tel_data_add_dict_u64(d, dp_counter_names[c], stats->counters[c]);
}

static int
dp_telemetry_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_stats stats;

	(void)cmd;
	(void)params;
	dp_stats_read(dp_telemetry_dp, &stats);
	dp_telemetry_dict(d, &stats);
	return 0;
}

static int
dp_telemetry_worker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_stats stats;
	char *end = NULL;
	unsigned long worker;

	(void)cmd;
	if (params == NULL || params[0] == '\0')
		return -1;
	worker = strtoul(params, &end, 10);
	if (*end != '\0' || worker >= dp_telemetry_dp->worker_count)
		return -1;
	dp_worker_stats_read(dp_telemetry_dp, (uint32_t)worker, &stats);
	dp_telemetry_dict(d, &stats);
	return 0;
}

/*
 * The TCP tables summed over workers. table_bytes is dp_tcp_memory() without
 * the buffer pools: what the connection table costs, per connection slot
 * whether used or not (sluice bench tcp divides it by connections_max).
 * `established` is conns_opened - conns_closed from the counters (relaxed
 * loads): struct dp_tcp's own `established` is only ever incremented.
 */
static int
dp_telemetry_tcp(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint64_t conns_max = 0, established = 0, table_bytes = 0, memory_bytes = 0;

	(void)cmd;
	(void)params;
	for (uint32_t i = 0; i < dp_telemetry_dp->worker_count; i++) {
		const struct dp_tcp *tcp = &dp_telemetry_dp->workers[i].tcp;
		struct dp_tcp_config table_only = tcp->config;
		struct dp_stats stats;

		dp_worker_stats_read(dp_telemetry_dp, i, &stats);
		table_only.rx_buffers = 0;
		table_only.tx_buffers = 0;
		conns_max += tcp->config.conns_max;
		established += stats.counters[DP_TCP_CONNS_OPENED] -
			       stats.counters[DP_TCP_CONNS_CLOSED];
		table_bytes += dp_tcp_memory(&table_only);
		memory_bytes += dp_tcp_memory(&tcp->config);
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "workers", dp_telemetry_dp->worker_count);
	rte_tel_data_add_dict_u64(d, "connections_max", conns_max);
	rte_tel_data_add_dict_u64(d, "established", established);
	rte_tel_data_add_dict_u64(d, "table_bytes", table_bytes);
	rte_tel_data_add_dict_u64(d, "memory_bytes", memory_bytes);
	return 0;
}

void
dp_telemetry_register(struct dp *dp)
{
	dp_telemetry_dp = dp;
	rte_telemetry_register_cmd("/sluice/dp/stats", dp_telemetry_stats,
				   "Dataplane counters summed over workers. No parameters");
	rte_telemetry_register_cmd("/sluice/dp/worker", dp_telemetry_worker,
				   "One worker's dataplane counters. Parameter: worker index");
	rte_telemetry_register_cmd("/sluice/dp/tcp", dp_telemetry_tcp,
				   "TCP tables summed over workers: size, established, bytes. "
				   "No parameters");
}
