/*
 * log_meta.c - log.meta: the log's identity and its rare control-plane
 * state (retention per stream, closed shards, deleted streams). Replaced
 * atomically on every change (write log.meta.tmp, fsync, rename, fsync dir),
 * never on the write path.
 *
 *   OFFSET  SIZE  FIELD
 *        0     8  magic            LOG_META_MAGIC ("SLCMETA1")
 *        8     4  crc32c           over bytes 12 .. end of file
 *       12     4  version          LOG_FORMAT_VERSION
 *       16     8  log_id           random; every segment header repeats it
 *       24     4  retention_count
 *       28     4  shard_count      shards closed or trimmed
 *       32     4  deleted_count
 *       36     4  reserved         zero
 *       40     *  retention_count x { stream_id u32, hours u32 }
 *        *     *  shard_count     x { shard_id u64, seq_trim u64, seq_end u64 }
 *                 (seq_end: the durable end of a closed shard, UINT64_MAX while open)
 *        *     *  deleted_count   x { stream_id u32, zero u32, commit_before u64 }
 *
 * A deleted stream's batches with a commit id below commit_before are
 * ignored by recovery; they go away with their segments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

#define LOG_META_MAGIC 0x314154454d434c53ull /* "SLCMETA1" */
#define LOG_META_NAME "log.meta"
#define LOG_META_TMP_NAME "log.meta.tmp"
#define LOG_META_HEADER_SIZE 40u
#define LOG_META_FILE_MAX (64u << 20)

struct meta_header {
	uint64_t magic;
	uint32_t crc32c;
	uint32_t version;
	uint64_t log_id;
	uint32_t retention_count;
	uint32_t shard_count;
	uint32_t deleted_count;
	uint32_t reserved;
};

static_assert(sizeof(struct meta_header) == LOG_META_HEADER_SIZE, "on-disk layout");

struct meta_shard {
	uint64_t shard_id;
	uint64_t seq_trim;
	uint64_t seq_end;
};

static bool
meta_shard_kept(const struct log_shard *shard)
{
	return shard->closed || shard->seq_trim > 0;
}

/* Builds the file image under index_lock. Returns its size or 0 when out of memory. */
static size_t
meta_build(struct log *log, uint8_t **buf_out)
{
	struct meta_header h = { .magic = LOG_META_MAGIC, .version = LOG_FORMAT_VERSION };
	size_t size;
	uint8_t *buf;
	uint8_t *pos;

	h.log_id = log->log_id;
	h.retention_count = log->retention_count;
	for (uint32_t i = 0; i < log->shard_count; i++)
		h.shard_count += meta_shard_kept(&log->shards[i]) ? 1u : 0u;
	h.deleted_count = log->deleted_count;
	size = sizeof(h) + h.retention_count * 8u + h.shard_count * sizeof(struct meta_shard) +
	       h.deleted_count * 16u;
	buf = calloc(1, size);
	if (buf == NULL)
		return 0;
	pos = buf + sizeof(h);
	memcpy(pos, log->retention, h.retention_count * 8u);
	pos += h.retention_count * 8u;
	for (uint32_t i = 0; i < log->shard_count; i++) {
		const struct log_shard *shard = &log->shards[i];
		struct meta_shard ms = { shard->shard_id, shard->seq_trim,
					 shard->closed ? shard->seq_durable : UINT64_MAX };

		if (!meta_shard_kept(shard))
			continue;
		memcpy(pos, &ms, sizeof(ms));
		pos += sizeof(ms);
	}
	memcpy(pos, log->deleted, h.deleted_count * 16u);
	memcpy(buf, &h, sizeof(h));
	h.crc32c = crc32c(0, buf + 12, size - 12);
	memcpy(buf, &h, sizeof(h));
	*buf_out = buf;
	return size;
}

static int
file_replace(struct log *log, const char *name, const char *tmp_name, const uint8_t *buf,
	     size_t size)
{
	uint32_t file;
	int err = log_io_file_open(log->io, tmp_name, LOG_IO_FILE_TRUNC, &file);

	if (err != 0)
		return err;
	err = log_io_pwrite(log->io, file, buf, (uint32_t)size, 0);
	if (err == 0)
		err = log_io_fsync(log->io, file);
	log_io_file_close(log->io, file);
	if (err == 0)
		err = log_io_file_rename(log->io, tmp_name, name);
	if (err == 0)
		err = log_io_dir_sync(log->io);
	return err;
}

int
log_file_store(struct log *log, size_t (*build)(struct log *log, uint8_t **buf_out),
	       const char *name, const char *tmp_name)
{
	uint8_t *buf = NULL;
	size_t size;
	int err;

	pthread_mutex_lock(&log->meta_lock);
	pthread_mutex_lock(&log->index_lock);
	size = build(log, &buf);
	pthread_mutex_unlock(&log->index_lock);
	err = size == 0 ? -ENOMEM : file_replace(log, name, tmp_name, buf, size);
	pthread_mutex_unlock(&log->meta_lock);
	free(buf);
	if (err != 0)
		diag_error("log", "%s: writing %s: %s", log->dir_path, name, strerror(-err));
	return err;
}

/* Persists the current control state. Any thread; serialised by meta_lock. */
int
log_meta_store(struct log *log)
{
	return log_file_store(log, meta_build, LOG_META_NAME, LOG_META_TMP_NAME);
}

static int
meta_parse(struct log *log, const uint8_t *buf, size_t size)
{
	struct meta_header h;
	const uint8_t *pos = buf + sizeof(h);

	if (size < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LOG_META_MAGIC || h.version != LOG_FORMAT_VERSION ||
	    crc32c(0, buf + 12, size - 12) != h.crc32c)
		return -EBADMSG;
	if (h.retention_count > LOG_STREAMS_RETENTION_MAX || h.deleted_count > LOG_DELETED_MAX ||
	    size != sizeof(h) + h.retention_count * 8ull +
			    h.shard_count * (uint64_t)sizeof(struct meta_shard) + h.deleted_count * 16ull)
		return -EBADMSG;
	log->log_id = h.log_id;
	log->retention_count = h.retention_count;
	memcpy(log->retention, pos, h.retention_count * 8u);
	pos += h.retention_count * 8u;
	log->shards_loaded = malloc(h.shard_count * sizeof(struct meta_shard) + 1);
	if (log->shards_loaded == NULL)
		return -ENOMEM;
	memcpy(log->shards_loaded, pos, h.shard_count * sizeof(struct meta_shard));
	log->shards_loaded_count = h.shard_count;
	pos += h.shard_count * sizeof(struct meta_shard);
	log->deleted_count = h.deleted_count;
	memcpy(log->deleted, pos, h.deleted_count * 16u);
	return 0;
}

int
log_file_load(struct log *log, uint32_t file, uint64_t size_max,
	      int (*parse)(struct log *log, const uint8_t *buf, size_t size))
{
	uint64_t size;
	uint8_t *buf;
	int err = log_io_file_size(log->io, file, &size);

	if (err != 0)
		return err;
	if (size > size_max)
		return -EBADMSG;
	buf = malloc(size + 1);
	if (buf == NULL)
		return -ENOMEM;
	err = log_io_pread(log->io, file, buf, (uint32_t)size, 0);
	if (err == 0)
		err = parse(log, buf, size);
	free(buf);
	return err == -ENODATA ? -EBADMSG : err;
}

static int
meta_any_segment(void *arg, const char *name)
{
	(void)arg;
	return strncmp(name, "seg-", 4) == 0 ? 1 : 0;
}

/*
 * Reads log.meta, or creates it for an empty directory. A directory with
 * segments but no readable log.meta is refused: guessing its identity
 * could adopt or discard another log's data.
 */
int
log_meta_load_or_create(struct log *log)
{
	uint32_t file;
	int err = log_io_file_open(log->io, LOG_META_NAME, 0, &file);

	if (err == 0) {
		err = log_file_load(log, file, LOG_META_FILE_MAX, meta_parse);
		log_io_file_close(log->io, file);
		if (err != 0)
			diag_error("log", "%s: %s unreadable: %s", log->dir_path, LOG_META_NAME,
				   strerror(-err));
		return err;
	}
	if (err != -ENOENT || log->config.read_only)
		return err;
	if (log_io_dir_list(log->io, meta_any_segment, NULL) != 0) {
		diag_error("log", "%s: segments without %s", log->dir_path, LOG_META_NAME);
		return -EBADMSG;
	}
	log->log_id = log_io_random_id(log->io);
	return log_meta_store(log);
}
