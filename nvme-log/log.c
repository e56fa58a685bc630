/* log.c - configuration defaults (the rest of the log arrives with its module work). */
#include <string.h>

#include "nvme-log/log.h"

void
log_config_default(struct log_config *config)
{
	memset(config, 0, sizeof(*config));
	config->segment_size = 64ull << 20;
	config->commit_window_us = 10;
	config->commit_window_bytes = 1u << 20;
	config->producers_max = 8;
	config->batches_per_producer = 64;
	config->batch_size = 64u << 10;
	config->shards_max = 16384;
	config->writer_thread = true;
}
