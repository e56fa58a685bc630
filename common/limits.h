/*
 * limits.h - bounds shared by more than one folder. A folder's private
 * bounds live in its own header; these are the ones the wire formats, the
 * log and the API must agree on. Values follow Kinesis where it has one.
 */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include <assert.h>

/* Stream names: 1..128 of [a-zA-Z0-9_.-] (Kinesis). */
#define SLUICE_STREAM_NAME_SIZE_MAX 128
/* Partition keys: 1..256 bytes of UTF-8 (Kinesis counts characters; we bound bytes). */
#define SLUICE_PARTITION_KEY_SIZE_MAX 256
/* Record data blob: up to 1 MiB (Kinesis), partition key included in AWS's count. */
#define SLUICE_RECORD_DATA_SIZE_MAX (1024u * 1024u)
/*
 * ... and up to 10 MiB on a stream whose MaxRecordSizeInKiB allows it
 * (UpdateMaxRecordSize): what the log stores and serves.
 */
#define SLUICE_RECORD_DATA_SIZE_LARGE_MAX (10u * 1024u * 1024u)
/* Shards in one appliance, across all streams: sizes the log's shard table. */
#define SLUICE_SHARDS_MAX 65536u
/* Streams in one appliance. */
#define SLUICE_STREAMS_MAX 4096u

static_assert(SLUICE_SHARDS_MAX >= 10000, "the benchmarks run 10,000 shards");

#endif /* SLUICE_LIMITS_H */
