/*
 * cli_frames.c - the CLI's side of libsluice (cli_frames.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/hashkey.h"
#include "common/limits.h"
#include "tools/cli_common.h"
#include "tools/cli_frames.h"
#include "tools/cmd.h"
#include "tools/kinesis_client.h"

/* A ListShards hash key ("0" .. 2^128 - 1 in decimal) as 16 big-endian bytes. */
static bool
shard_hash_key(const cJSON *range, const char *name, uint8_t out[16])
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(range, name);
	hashkey_t key;

	if (!cJSON_IsString(text) ||
	    hashkey_parse_decimal(text->valuestring, strlen(text->valuestring), &key) != 0)
		return false;
	hashkey_to_be_bytes(key, out);
	return true;
}

/* "shardId-N" into N; false for anything else. */
static bool
shard_index_of(const cJSON *id, uint32_t *index_out)
{
	unsigned long index;
	char *end;

	if (!cJSON_IsString(id) || strncmp(id->valuestring, "shardId-", 8) != 0)
		return false;
	errno = 0;
	index = strtoul(id->valuestring + 8, &end, 10);
	if (errno != 0 || *end != '\0' || end == id->valuestring + 8 || index > UINT32_MAX)
		return false;
	*index_out = (uint32_t)index;
	return true;
}

static int
index_compare(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a;
	uint32_t y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The indexes of the shards some listed shard names as its parent or adjacent parent,
 * sorted (malloc'd into *parents_out, the caller frees it).
 */
static int
shard_parents(const cJSON *shards, uint32_t **parents_out, uint32_t *count_out)
{
	static const char *const fields[] = { "ParentShardId", "AdjacentParentShardId" };
	uint32_t *parents = calloc(2 * (size_t)cJSON_GetArraySize(shards) + 1, sizeof(*parents));
	uint32_t count = 0;
	const cJSON *shard;

	if (parents == NULL)
		return -ENOMEM;
	cJSON_ArrayForEach(shard, shards)
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			count += shard_index_of(cJSON_GetObjectItemCaseSensitive(shard, fields[i]),
						&parents[count]);
	qsort(parents, count, sizeof(*parents), index_compare);
	*parents_out = parents;
	*count_out = count;
	return 0;
}

/*
 * One ListShards entry into *out; false for a closed shard or one it cannot read. A
 * parent whose child is listed is closed too, though its ending sequence number may not
 * be known yet (a reshard in progress, its cut not recorded): its range overlaps its
 * children's, and records go to the children.
 */
static bool
shard_range_of(const cJSON *shard, const uint32_t *parents, uint32_t parent_count,
	       struct sluice_shard_range *out, bool *bad)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(shard, "ShardId");
	const cJSON *range = cJSON_GetObjectItemCaseSensitive(shard, "HashKeyRange");
	const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(shard, "SequenceNumberRange");
	const cJSON *ending = cJSON_GetObjectItemCaseSensitive(seqs, "EndingSequenceNumber");
	uint32_t index;

	/* Closed shards have an ending sequence number (other endpoints may send null). */
	if (ending != NULL && !cJSON_IsNull(ending))
		return false;
	if (!shard_index_of(id, &index) || !shard_hash_key(range, "StartingHashKey", out->start) ||
	    !shard_hash_key(range, "EndingHashKey", out->end)) {
		*bad = true;
		return false;
	}
	if (bsearch(&index, parents, parent_count, sizeof(*parents), index_compare) != NULL)
		return false;
	out->shard_index = index;
	return true;
}

int
cli_frames_shard_ranges(struct kc_client *client, const char *stream,
			struct sluice_shard_range **map_out, uint32_t *count_out)
{
	struct sluice_shard_range *map = NULL;
	uint32_t *parents = NULL;
	uint32_t parent_count;
	const cJSON *shard;
	cJSON *shards;
	uint32_t count = 0;
	bool bad = false;
	int err = cli_shards_list(client, stream, &shards);

	if (err != 0)
		return err;
	err = shard_parents(shards, &parents, &parent_count);
	if (err != 0)
		goto out_free;
	map = calloc((size_t)cJSON_GetArraySize(shards) + 1, sizeof(*map));
	if (map == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	cJSON_ArrayForEach(shard, shards) {
		if (count < SLUICE_SHARDS_MAX &&
		    shard_range_of(shard, parents, parent_count, &map[count], &bad))
			count++;
	}
	err = bad ? -EBADMSG : 0;
	if (err == 0) {
		*map_out = map;
		*count_out = count;
		map = NULL;
	}
out_free:
	free(map);
	free(parents);
	cJSON_Delete(shards);
	return err;
}

int
cli_frames_shard_map(struct sluice_producer *producer, struct kc_client *client,
		     const char *stream)
{
	struct sluice_shard_range *map;
	uint32_t count;
	int err = cli_frames_shard_ranges(client, stream, &map, &count);

	if (err != 0)
		return err;
	err = sluice_producer_set_shard_map(producer, map, count);
	free(map);
	return err;
}

int
cli_frames_target_parse(const char *target, char *host, size_t host_size, uint16_t *port_out)
{
	const char *colon = strrchr(target, ':');
	const char *host_start = target;
	size_t host_len;
	char *end;
	unsigned long port;

	if (colon == NULL)
		return -EINVAL;
	host_len = (size_t)(colon - target);
	if (target[0] == '[') {
		if (host_len < 3 || colon[-1] != ']')
			return -EINVAL;
		host_start++;
		host_len -= 2;
	} else if (memchr(target, ':', host_len) != NULL) {
		return -EINVAL;  /* An IPv6 address needs brackets. */
	}
	port = strtoul(colon + 1, &end, 10);
	if (host_len == 0 || host_len >= host_size || colon[1] == '\0' || *end != '\0' ||
	    port == 0 || port > 65535)
		return -EINVAL;
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	*port_out = (uint16_t)port;
	return 0;
}

int
cli_frames_open(const char *command, const struct cli_frames_options *options,
		struct sluice_producer **producer_out)
{
	struct sluice_producer_config config;
	bool udp = strcmp(options->transport, "udp") == 0;
	const char *target = options->target != NULL ? options->target : CLI_FRAMES_TARGET_DEFAULT;
	char host[256];
	uint16_t port;
	int err;

	if (cli_frames_target_parse(target, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "sluice %s: --target '%s' is not HOST:PORT\n", command, target);
		return CMD_EXIT_USAGE;
	}
	sluice_producer_config_default(&config, udp ? SLUICE_TRANSPORT_UDP : SLUICE_TRANSPORT_TCP);
	config.host = host;
	config.port = port;
	config.stream_name = options->stream;
	if (options->records_per_batch != 0)
		config.batch_records_max = options->records_per_batch;
	config.linger_us = options->linger_us;
	if (options->delivery_timeout_ms != 0)
		config.delivery_timeout_ms = options->delivery_timeout_ms;
	if (options->silence_timeout_ms != 0)
		config.silence_timeout_ms = options->silence_timeout_ms;
	config.on_complete = options->on_complete;
	config.user = options->user;
	err = sluice_producer_open(&config, producer_out);
	if (err != 0) {
		fprintf(stderr, "sluice %s: cannot open a %s producer to %s: %s\n", command,
			options->transport, target, strerror(-err));
		return CMD_EXIT_ERROR;
	}
	return 0;
}

static const struct {
	int err;
	const char *name;
} cli_frames_errors[] = {
	{ -ENOENT, "UnknownStream" },
	{ -EMSGSIZE, "RecordTooLarge" },
	{ -EINVAL, "Malformed" },
	{ -EACCES, "AuthenticationFailed" },
	{ -ESTALE, "Fenced" },
	{ -ETIMEDOUT, "TimeoutOutcomeUnknown" },
	{ -EPROTO, "SequenceOldOutcomeUnknown" },
	{ -EBUSY, "Throttled" },
	{ -EIO, "InternalFailure" },
	{ -ECANCELED, "CanceledOutcomeUnknown" },
	{ -ENXIO, "WrongShard" },
};

const char *
cli_frames_error_name(int err)
{
	for (size_t i = 0; i < ARRAY_SIZE(cli_frames_errors); i++) {
		if (cli_frames_errors[i].err == err)
			return cli_frames_errors[i].name;
	}
	return "Error";
}

bool
cli_frames_outcome_unknown(int err)
{
	return err == -ETIMEDOUT || err == -EPROTO || err == -ECANCELED;
}

void
cli_frames_shard_id(uint32_t shard_index, char out[CLI_FRAMES_SHARD_ID_SIZE])
{
	snprintf(out, CLI_FRAMES_SHARD_ID_SIZE, "shardId-%012u", shard_index);
}
