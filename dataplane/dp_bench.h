/* dp_bench.h - the pcap writer of sluice-dp-bench (dp_bench_pcap.c); bench only. */
#ifndef SLUICE_DP_BENCH_H
#define SLUICE_DP_BENCH_H

#include <stdint.h>

/*
 * Shards of the grouped12x100 scenario's map: its frames are SHARD_RECORDS for
 * shard (frame index % this) of so many equal shards, so the bench stream must
 * have exactly this many (sluice bench dataplane's 12x100B_grouped case does).
 */
#define DP_BENCH_GROUPED_SHARDS 16u

/*
 * Writes `count` distinct frames of `scenario` (hash100, hash12x100, md5,
 * md5hot, hash1k, grouped12x100).
 */
int dp_bench_pcap_write(const char *path, const char *scenario, uint32_t count);

#endif /* SLUICE_DP_BENCH_H */
