/*
 * cli_frames.c - the CLI's side of libsluice (cli_frames.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "tools/cli_frames.h"
#include "tools/cmd.h"

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
