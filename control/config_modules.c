/*
 * config_modules.c - the configuration as the modules see it. The [log] keys
 * become a struct log_config here and nowhere else; the [dataplane] keys
 * become a struct dp_config in route.c. --check-config and start-up both run
 * the modules' own checks on the result, so every value the log or the
 * dataplane would refuse at open is refused first, naming the key.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "control/auth_sigv4.h"
#include "control/config_modules.h"
#include "control/keyring.h"
#include "control/route.h"
#include "dataplane/dataplane.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"

/* A module's field -> the key an operator sets, and the rule a refusal broke. */
struct config_field_key {
	const char *field;
	const char *key;
	const char *rule;
};

static const struct config_field_key config_log_fields[] = {
	{ "dir_path", "[server] data_dir", "a directory path of at most 4000 bytes" },
	{ "segment_size", "[log] segment_size_mb", "whole MiB below 4 GiB" },
	{ "batch_size", "[log] batch_size_kb",
	  "at most a quarter of [log] segment_size_mb" },
	{ "commit_window_bytes", "[log] commit_window_kb",
	  "at most half of [log] segment_size_mb" },
	{ "commit_window_us", "[log] commit_window_us", "at most one second" },
	{ "commit_window_adaptive_us", "[log] commit_window_adaptive_us", "at most one second" },
	{ "producers_max", "[dataplane] workers", "one log client per worker, plus three" },
	{ "batches_per_producer", "[log] batches_per_producer", "see docs/CONFIG.md" },
	{ "shards_max", "[log] shards_max", "see docs/CONFIG.md" },
	{ "read_cache_bytes", "[log] read_cache_mb", "see docs/CONFIG.md" },
	{ "retention_hour_ms", "[log] retention_hour_ms", "see docs/CONFIG.md" },
};

static const struct config_field_key config_dp_fields[] = {
	{ "workers", "[dataplane] workers", "see docs/CONFIG.md" },
	{ "ring_size", "[dataplane] ring_size", "a power of two in range" },
	{ "mbufs", "[dataplane] mbufs", "see docs/CONFIG.md" },
	{ "ingest_port", "[dataplane] ingest_port", "a UDP port, not 0" },
	{ "batch_age_us", "[dataplane] batch_age_us", "see docs/CONFIG.md" },
	{ "admit_wait_ms", "[dataplane] admit_wait_ms", "see docs/CONFIG.md" },
	{ "idle_polls", "[dataplane] idle_polls", "see docs/CONFIG.md" },
	{ "idle_sleep_us", "[dataplane] idle_sleep_us", "see docs/CONFIG.md" },
	{ "producers_max", "[dataplane] producers_max", "see docs/CONFIG.md" },
	{ "auth_keys", "[dataplane] auth_keys",
	  "comma-separated KEY_ID:HEX, 16 to 64 bytes each" },
	{ "no_huge", "[dataplane] no_huge", "see docs/CONFIG.md" },
	{ "ipv4", "[dataplane] ipv4", "a dotted IPv4 address" },
	{ "mtu", "[dataplane] mtu", "see docs/CONFIG.md" },
	{ "tcp_connections", "[dataplane] tcp_connections", "see docs/CONFIG.md" },
	{ "tcp_half_open", "[dataplane] tcp_half_open", "see docs/CONFIG.md" },
	{ "tcp_per_source", "[dataplane] tcp_per_source", "see docs/CONFIG.md" },
	{ "tcp_rx_buffers", "[dataplane] tcp_rx_buffers", "see docs/CONFIG.md" },
	{ "tcp_tx_buffers", "[dataplane] tcp_tx_buffers", "see docs/CONFIG.md" },
	{ "tcp_rx_buffer_kb", "[dataplane] tcp_rx_buffer_kb", "see docs/CONFIG.md" },
	{ "tcp_tx_buffer_kb", "[dataplane] tcp_tx_buffer_kb", "see docs/CONFIG.md" },
	{ "tcp_mss", "[dataplane] tcp_mss", "see docs/CONFIG.md" },
	{ "tcp_idle_timeout_s", "[dataplane] tcp_idle_timeout_s", "see docs/CONFIG.md" },
	{ "tcp_keepalive_s", "[dataplane] tcp_keepalive_s", "see docs/CONFIG.md" },
	{ "tcp_partial_frame_s", "[dataplane] tcp_partial_frame_s", "see docs/CONFIG.md" },
};

void
config_log_config(const struct sluice_config *config, const char *log_dir,
		  struct log_config *out)
{
	log_config_default(out);
	out->dir_path = log_dir;
	out->segment_size = (uint64_t)config->log_segment_size_mb << 20;
	out->commit_window_us = config->log_commit_window_us;
	out->commit_window_adaptive_us = config->log_commit_window_adaptive_us;
	out->commit_window_bytes = (uint64_t)config->log_commit_window_kb << 10;
	out->batch_size = config->log_batch_size_kb << 10;
	out->batches_per_producer = config->log_batches_per_producer;
	out->read_cache_bytes = (uint64_t)config->log_read_cache_mb << 20;
	/*
	 * One log client per dataplane worker, one for the API, one for delivery streams
	 * (firehose/), one spare (tools, tests).
	 */
	out->producers_max = config->dp_workers + 3;
	out->shards_max = config->log_shards_max;
	out->retention_hour_ms = config->log_retention_hour_ms;
}

static void
config_module_refusal(const char *module, const struct config_field_key *map, size_t count,
		      const char *field, struct config_errors *errors)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(map[i].field, field) == 0) {
			config_error_add(errors, "config", 0, "%s: refused by the %s: %s", map[i].key,
					 module, map[i].rule);
			return;
		}
	}
	/* A field with no key is set by sluiced itself: a bug, but still named. */
	config_error_add(errors, "config", 0, "the %s refuses its '%s' setting", module, field);
}

/* [auth] keys and principals as the API server will read them. */
static void
config_check_auth(const struct sluice_config *config, struct config_errors *errors)
{
	static struct sigv4_keys keys;  /* 18 KiB: not on the stack; main thread only. */
	char message[SIGV4_MESSAGE_SIZE];

	if (config->auth != CONFIG_AUTH_SIGV4 || config->access_keys[0] == '\0')
		return;  /* config_check() already names a missing access_keys. */
	if (sigv4_keys_parse(&keys, config->access_keys, config->region) != 0) {
		config_error_add(errors, "config", 0, "[auth] access_keys: expected "
				 "ACCESS_KEY_ID:SECRET[,...] (at most %d keys)", SIGV4_KEYS_MAX);
		return;
	}
	if (sigv4_principals_parse(&keys, config->principals, config->account_id, message,
				   sizeof(message)) != 0)
		config_error_add(errors, "config", 0, "[auth] principals: %s", message);
}

/* The keyring must load as sluiced would load it (start and SIGHUP alike). */
static void
config_check_keyring(const struct sluice_config *config, struct config_errors *errors)
{
	char why[KEYRING_WHY_SIZE];
	struct keyring *keyring;

	if (config->keyring[0] == '\0')
		return;
	keyring = calloc(1, sizeof(*keyring));
	if (keyring == NULL) {
		config_error_add(errors, "config", 0, "[encryption] keyring: out of memory");
		return;
	}
	if (keyring_load(config->keyring, keyring, why, sizeof(why)) != 0)
		config_error_add(errors, "config", 0, "[encryption] keyring %s: %s",
				 config->keyring, why);
	keyring_wipe(keyring);
	free(keyring);
}

/* [firehose] s3_* as firehose_open() will take them. */
static void
config_check_firehose(const struct sluice_config *config, struct config_errors *errors)
{
	const struct firehose_s3_options o = {
		.endpoint = config->firehose_s3_endpoint, .region = config->firehose_s3_region,
		.access_key = config->firehose_s3_access_key,
		.secret_key = config->firehose_s3_secret_key,
		.path_style = config->firehose_s3_path_style,
		.part_mb = config->firehose_s3_part_mb,
	};
	const char *key = NULL;

	if (firehose_s3_options_check(&o, &key) != 0)
		config_error_add(errors, "config", 0, "[firehose] %s: refused by the firehose: %s",
				 key, strcmp(key, "s3_endpoint") == 0 ?
				 "http://host[:port] or https://host[:port], nothing after" :
				 "set, at most 255 bytes, when s3_endpoint is (docs/CONFIG.md)");
}

int
config_check_modules(const struct sluice_config *config, struct config_errors *errors)
{
	char log_dir[CONFIG_STRING_SIZE + 8];
	struct log_config lc;
	struct dp_config dc;
	const char *field = NULL;
	uint32_t errors_before = errors->count;

	snprintf(log_dir, sizeof(log_dir), "%s/log", config->data_dir);
	config_log_config(config, log_dir, &lc);
	if (log_config_check(&lc, &field) != 0)
		config_module_refusal("log", config_log_fields, ARRAY_SIZE(config_log_fields),
				      field, errors);
	/* Checked even when disabled: the file must still be good the day it is enabled. */
	if (route_dp_config(config, NULL, &dc, &field) != 0 || dp_config_check(&dc, &field) != 0)
		config_module_refusal("dataplane", config_dp_fields, ARRAY_SIZE(config_dp_fields),
				      field, errors);
	config_check_auth(config, errors);
	config_check_keyring(config, errors);
	config_check_firehose(config, errors);
	return errors->count == errors_before ? 0 : -EINVAL;
}
