/*
 * cli_frames.h - how the CLI drives libsluice (tools/producer/) for
 * --transport udp|tcp: the --target address, opening a producer with the
 * command's batching, and names for a record's outcome.
 */
#ifndef SLUICE_TOOLS_CLI_FRAMES_H
#define SLUICE_TOOLS_CLI_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/producer/sluice_producer.h"

#define CLI_FRAMES_TARGET_DEFAULT "127.0.0.1:4570"  /* [dataplane] ingest_port. */
#define CLI_FRAMES_SHARD_ID_SIZE 24

struct cli_frames_options {
	const char *transport;         /* "udp" or "tcp". */
	const char *target;            /* HOST:PORT or [V6]:PORT; NULL: the default. */
	const char *stream;
	uint32_t records_per_batch;    /* 0: the library's default. */
	uint32_t linger_us;
	uint32_t delivery_timeout_ms;  /* 0: the library's default. */
	uint32_t silence_timeout_ms;   /* TCP; 0: the library's default. */
	sluice_completion_fn *on_complete;
	void *user;
};

/*
 * Opens a producer; on failure prints why (prefixed "sluice <command>") and
 * returns the exit code: usage for a bad target, error otherwise.
 */
int cli_frames_open(const char *command, const struct cli_frames_options *options,
		    struct sluice_producer **producer_out);

struct kc_client;

/*
 * The stream's open shards (ListShards through `client`) into *map_out (malloc'd, the
 * caller frees it) and *count_out. 0, the call's negative errno, or -EBADMSG for an
 * answer it cannot read.
 */
int cli_frames_shard_ranges(struct kc_client *client, const char *stream,
			    struct sluice_shard_range **map_out, uint32_t *count_out);

/*
 * Gives `producer` the stream's open shards (ListShards through `client`),
 * so it sends shard-grouped frames; refetch it when sluice_producer_map_stale()
 * says the map moved (after a flush: nothing may be outstanding). 0, or the
 * call's negative errno, -EBUSY with records outstanding, -EBADMSG for an
 * answer it cannot read.
 */
int cli_frames_shard_map(struct sluice_producer *producer, struct kc_client *client,
			 const char *stream);

/* Splits "host:port" / "[v6]:port"; 0 or -EINVAL. `host` gets a NUL-terminated copy. */
int cli_frames_target_parse(const char *target, char *host, size_t host_size,
			    uint16_t *port_out);

/* "UnknownStream", "Throttled", "Timeout", ...: the name of a result->err. */
const char *cli_frames_error_name(int err);

/* Whether the outcome of a failed record is unknown (it may have been stored). */
bool cli_frames_outcome_unknown(int err);

/* "shardId-000000000003" */
void cli_frames_shard_id(uint32_t shard_index, char out[CLI_FRAMES_SHARD_ID_SIZE]);

#endif /* SLUICE_TOOLS_CLI_FRAMES_H */
