/*
 * log.c - opening and closing a log, configuration defaults, aligned
 * (hugepage) memory, statistics and fail-stop. The write path is in
 * log_writer.c, the read path in log_reader.c, recovery in log_recover.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hugetlbfs.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "common/limits.h"
#include "nvme-log/log_internal.h"
#include "nvme-log/log_io.h"

void
log_config_default(struct log_config *config)
{
	memset(config, 0, sizeof(*config));
	config->segment_size = 64ull << 20;
	config->commit_window_us = 0;
	config->commit_window_bytes = 1u << 20;
	config->producers_max = 8;
	config->batches_per_producer = 64;
	config->batch_size = 64u << 10;
	config->shards_max = 16384;
	config->writer_thread = true;
	config->read_cache_bytes = 64ull << 20;
	config->retention_hour_ms = LOG_RETENTION_HOUR_MS_DEFAULT;
}

/* The field at fault, or NULL when `config` is acceptable to log_open(). */
static const char *
log_config_fault(const struct log_config *config)
{
	if (config->dir_path == NULL || config->dir_path[0] == '\0' ||
	    strlen(config->dir_path) >= LOG_DIR_PATH_SIZE_MAX)
		return "dir_path";
	if (config->segment_size < LOG_SEGMENT_SIZE_MIN ||
	    config->segment_size % LOG_SEGMENT_SIZE_UNIT != 0 ||
	    config->segment_size > LOG_SEGMENT_SIZE_MAX)
		return "segment_size";
	if (config->batch_size < LOG_BATCH_SIZE_MIN || config->batch_size > LOG_BATCH_SIZE_MAX ||
	    config->batch_size % LOG_BATCH_ALIGN != 0 ||
	    config->batch_size > config->segment_size / LOG_BATCHES_PER_SEGMENT_MIN)
		return "batch_size";
	/* A window is at most LOG_IO_INFLIGHT_MAX - 1 chunk writes plus its sync. */
	if (config->commit_window_bytes < LOG_COMMIT_WINDOW_BYTES_MIN ||
	    config->commit_window_bytes > config->segment_size / LOG_WINDOWS_PER_SEGMENT_MIN ||
	    config->commit_window_bytes > LOG_COMMIT_WINDOW_BYTES_MAX)
		return "commit_window_bytes";
	if (config->commit_window_us > LOG_COMMIT_WINDOW_US_MAX)
		return "commit_window_us";
	if (config->commit_window_adaptive_us > LOG_COMMIT_WINDOW_US_MAX)
		return "commit_window_adaptive_us";
	if (config->producers_max == 0 || config->producers_max > LOG_PRODUCERS_MAX)
		return "producers_max";
	if (config->batches_per_producer == 0 ||
	    config->batches_per_producer > LOG_BATCHES_PER_PRODUCER_MAX)
		return "batches_per_producer";
	if (config->shards_max == 0 || config->shards_max > SLUICE_SHARDS_MAX)
		return "shards_max";
	if (config->segments_prepared > LOG_SPARES_MAX)
		return "segments_prepared";
	if (config->read_cache_bytes > LOG_READ_CACHE_BYTES_MAX)
		return "read_cache_bytes";
	if (config->retention_hour_ms != 0 &&
	    (config->retention_hour_ms < LOG_RETENTION_HOUR_MS_MIN ||
	     config->retention_hour_ms > LOG_RETENTION_HOUR_MS_MAX))
		return "retention_hour_ms";
	return NULL;
}

int
log_config_check(const struct log_config *config, const char **field_out)
{
	const char *field = log_config_fault(config);

	if (field_out != NULL)
		*field_out = field;
	return field == NULL ? 0 : -EINVAL;
}

/* Statistics have one writer each; readers may see a slightly stale value. */
void
log_stat_add(uint64_t *counter, uint64_t value)
{
	__atomic_fetch_add(counter, value, __ATOMIC_RELAXED);
}

/*
 * Hugepages are shared with DPDK: a log takes them only for buffers up to
 * 128 MiB (the window ring of 16 MiB windows is 4 x 16.3 MiB) and only
 * while 256 MiB stay free for others.
 */
#define LOG_HUGE_ALLOC_MAX (128ull << 20)
#define LOG_HUGE_LEAVE (256ull << 20)
/* Buffers from 1 MiB on get a mapping of their own (log_mem_alloc says why). */
#define LOG_MAP_ALLOC_MIN (1ull << 20)
/* Pages (4 KiB) are whole blocks, so a mapping is aligned for O_DIRECT. */
static_assert(LOG_BLOCK_SIZE == 4096u, "a mapping's page alignment serves O_DIRECT");

/* Free 2 MiB hugepages; asking libhugetlbfs for more than that makes it complain. */
static uint64_t
hugepages_free(void)
{
	FILE *fp = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	unsigned long long count = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%llu", &count) != 1)
		count = 0;
	fclose(fp);
	return count;
}

/*
 * Aligned memory for O_DIRECT buffers, not zeroed. Large buffers (the
 * batch pools and windows) come from 2 MiB hugepages through libhugetlbfs
 * when the system has them (fewer TLB misses on the copy into the window),
 * else from an anonymous mapping of their own: pages become resident only
 * when first written, whatever malloc's settings (glibc's MALLOC_PERTURB_
 * writes every byte it hands out, which made a pool of 10 MiB batches
 * resident at once). Small buffers come from malloc.
 */
int
log_mem_alloc(struct log_mem *mem, size_t size)
{
	mem->huge = false;
	mem->mapped = false;
	mem->size = (size_t)align_up(size, LOG_BLOCK_SIZE);
	if (size >= LOG_MAP_ALLOC_MIN && size <= LOG_HUGE_ALLOC_MAX &&
	    hugepages_free() * (2u << 20) >= align_up(size, 2u << 20) + LOG_HUGE_LEAVE) {
		mem->addr = get_hugepage_region(align_up(size, 2u << 20), GHR_STRICT);
		if (mem->addr != NULL) {
			mem->huge = true;
			return 0;
		}
	}
	if (size >= LOG_MAP_ALLOC_MIN) {
		mem->addr = mmap(NULL, mem->size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem->addr == MAP_FAILED) {
			mem->addr = NULL;
			return -ENOMEM;
		}
		mem->mapped = true;
		return 0;
	}
	if (posix_memalign(&mem->addr, LOG_BLOCK_SIZE, mem->size) != 0) {
		mem->addr = NULL;
		return -ENOMEM;
	}
	return 0;
}

void
log_mem_free(struct log_mem *mem)
{
	if (mem->addr == NULL)
		return;
	if (mem->huge)
		free_hugepage_region(mem->addr);
	else if (mem->mapped)
		munmap(mem->addr, mem->size);
	else
		free(mem->addr);
	mem->addr = NULL;
}

/* Fail-stop: the first error wins; from now on appends complete with it. */
void
log_fail(struct log *log, int err)
{
	int32_t expected = 0;

	assert(err < 0);
	if (atomic_compare_exchange_strong(&log->failed, &expected, err)) {
		diag_error("log", "%s: fail-stop after %s; reopen to recover", log->dir_path,
			   strerror(-err));
		log_stat_add(&log->stats.io_errors, 1);
	}
}

static int
log_locks_init(struct log *log)
{
	pthread_mutex_init(&log->producer_lock, NULL);
	pthread_mutex_init(&log->index_lock, NULL);
	pthread_rwlock_init(&log->segments_rw, NULL);
	pthread_mutex_init(&log->prep_lock, NULL);
	pthread_mutex_init(&log->meta_lock, NULL);
	pthread_mutex_init(&log->ctl_lock, NULL);
	pthread_cond_init(&log->ctl_cond, NULL);
	pthread_cond_init(&log->prep_cond, NULL);
	log->doorbell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (log->doorbell_fd < 0)
		return -errno;
	log->durable_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (log->durable_fd < 0)
		return -errno;
	return log_keys_init(&log->keys);
}

static void
log_free(struct log *log)
{
	for (uint32_t i = 0; i < log->spare_count; i++)
		log_segment_free(log, log->spares[i]);
	for (uint32_t i = 0; i < log->segment_count; i++)
		log_segment_free(log, log->segments[i]);
	log_producers_fini(log);
	log_mem_free(&log->recent.mem);
	for (uint32_t w = 0; w < LOG_WINDOWS; w++)
		free(log->windows[w].batches);
	log_shard_table_fini(log);
	if (log->io_owned && log->io != NULL)
		log_io_default_close(log->io);
	if (log->doorbell_fd >= 0)
		close(log->doorbell_fd);
	if (log->durable_fd >= 0)
		close(log->durable_fd);
	log_keys_fini(&log->keys);
	pthread_mutex_destroy(&log->producer_lock);
	pthread_mutex_destroy(&log->index_lock);
	pthread_rwlock_destroy(&log->segments_rw);
	pthread_mutex_destroy(&log->prep_lock);
	pthread_mutex_destroy(&log->meta_lock);
	pthread_mutex_destroy(&log->ctl_lock);
	pthread_cond_destroy(&log->ctl_cond);
	free(log->shards_loaded);
	pthread_cond_destroy(&log->prep_cond);
	free(log);
}

static int
log_open_io(struct log *log, const struct log_config *config)
{
	strcpy(log->dir_path, config->dir_path);
	if (config->io != NULL) {
		log->io = config->io;
		return 0;
	}
	log->io_owned = true;
	return log_io_default_open(config->dir_path, &log->io);
}

/* Read-only: the segment size found on disk, and a reader buffer for any batch. */
static int
log_open_read_only(struct log *log)
{
	struct log_config *c = &log->config;
	int err = c->segment_size != 0 ? 0 : log_probe_segment_size(log->io, &c->segment_size);

	if (err != 0)
		return err;
	if (c->segment_size == 0)
		c->segment_size = 1u << 20;
	c->writer_thread = false;
	c->producers_max = 1;
	c->batches_per_producer = 1;
	c->batch_size = (uint32_t)min_u64(LOG_BATCH_SIZE_MAX, c->segment_size / 4);
	c->commit_window_bytes = LOG_BLOCK_SIZE;
	c->shards_max = SLUICE_SHARDS_MAX;
	c->read_cache_bytes = 0; /* Nothing is written: the ring only needs its 4 windows. */
	return log_config_check(c, NULL);
}

int
log_open(const struct log_config *config, struct log **log_out)
{
	struct log *log;
	int err = config->read_only ? 0 : log_config_check(config, NULL);

	if (err != 0)
		return err;
	if (config->dir_path == NULL || strlen(config->dir_path) >= LOG_DIR_PATH_SIZE_MAX)
		return -EINVAL;
	log = calloc(1, sizeof(*log));
	if (log == NULL)
		return -ENOMEM;
	log->config = *config;
	log->config.dir_path = log->dir_path;
	log->doorbell_fd = -1;
	log->durable_fd = -1;
	log->spares_target = config->segments_prepared != 0 ? config->segments_prepared :
			     LOG_SPARES_DEFAULT;
	err = log_locks_init(log);
	if (err == 0)
		err = log_open_io(log, config);
	if (err == 0 && config->read_only)
		err = log_open_read_only(log);
	if (err == 0)
		err = log_shard_table_init(log);
	if (err == 0)
		err = log_meta_load_or_create(log);
	if (err == 0) {
		uint64_t start_ns = clock_mono_ns();

		err = log_recover(log);
		log->stats.recovery_ns = clock_mono_ns() - start_ns;
	}
	if (err == 0)
		err = log_producers_init(log);
	if (err == 0)
		err = log_windows_init(log);
	if (err == 0 && config->writer_thread)
		err = log_prep_start(log);
	if (err == 0 && config->writer_thread)
		err = log_writer_start(log);
	if (err != 0)
		goto out_free;
	*log_out = log;
	return 0;

out_free:
	log_prep_stop(log);
	log_free(log);
	return err;
}

void
log_close(struct log *log)
{
	log_writer_stop(log);
	log_prep_stop(log);
	log_free(log);
}

void
log_stats_read(struct log *log, struct log_stats *stats_out)
{
	const uint64_t *src = (const uint64_t *)(const void *)&log->stats;
	uint64_t *dst = (uint64_t *)(void *)stats_out;

	/* The counters come first in struct log_stats, all uint64_t. */
	for (size_t i = 0; i < offsetof(struct log_stats, shards_active) / 8; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	pthread_mutex_lock(&log->index_lock);
	stats_out->shards_active = log->shard_count;
	stats_out->segments = log->segment_count;
	pthread_mutex_unlock(&log->index_lock);
	stats_out->failed = atomic_load(&log->failed) != 0;
	pthread_mutex_lock(&log->prep_lock);
	stats_out->segments_spare = log->spare_count;
	pthread_mutex_unlock(&log->prep_lock);
}
