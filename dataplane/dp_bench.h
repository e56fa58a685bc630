/* dp_bench.h - the pcap writer of sluice-dp-bench (dp_bench_pcap.c); bench only. */
#ifndef SLUICE_DP_BENCH_H
#define SLUICE_DP_BENCH_H

#include <stdint.h>

/* Writes `count` distinct frames of `scenario` (hash100, hash12x100, md5, md5hot, hash1k). */
int dp_bench_pcap_write(const char *path, const char *scenario, uint32_t count);

#endif /* SLUICE_DP_BENCH_H */
