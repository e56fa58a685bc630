/*
 * log_retention.c - shard close, stream delete, retention (control paths).
 */
#include <errno.h>

#include "nvme-log/log_internal.h"

int
log_shard_close(struct log *log, uint64_t shard_id, uint64_t *seq_end_out)
{
	(void)log;
	(void)shard_id;
	*seq_end_out = UINT64_MAX;
	return -ENOSYS;
}

int
log_stream_delete(struct log *log, uint32_t stream_id)
{
	(void)log;
	(void)stream_id;
	return -ENOSYS;
}

int
log_retention_set(struct log *log, uint32_t stream_id, uint32_t hours)
{
	(void)log;
	(void)stream_id;
	if (hours < 24 || hours > 8760)
		return -EINVAL;
	return -ENOSYS;
}

int
log_retention_run(struct log *log, uint64_t now_ns)
{
	(void)log;
	(void)now_ns;
	return -ENOSYS;
}
