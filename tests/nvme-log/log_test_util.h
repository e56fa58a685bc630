/*
 * log_test_util.h - helpers shared by the nvme-log tests: a private temp
 * directory (removed afterwards), deterministic record contents, and a
 * reader callback that collects what log_read delivers.
 */
#ifndef SLUICE_TEST_LOG_UTIL_H
#define SLUICE_TEST_LOG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvme-log/log.h"

/* mkdtemp under $TMPDIR (or /tmp); writes the path into buf. Returns 0 or -errno. */
int test_dir_make(char *buf, size_t size);
/* rm -r of the directory. */
void test_dir_remove(const char *path);

/*
 * Deterministic record for (shard, seq): key "k<shard>-<seq>", data of
 * `data_size` bytes derived from both. `buf` holds >= data_size bytes and
 * `key` >= 48 bytes.
 */
void test_record_make(uint64_t shard_id, uint64_t seq, uint32_t data_size, uint8_t *buf,
		      char *key, struct log_record_in *out);
/* True when the record read back is exactly test_record_make's for its seq. */
bool test_record_check(uint64_t shard_id, const struct log_record_out *record,
		       uint32_t data_size);

/* Collects records: seqs and a per-record "content matches" flag. */
struct test_collect {
	uint64_t shard_id;
	uint32_t data_size;        /* Expected data size (test_record_make). */
	uint32_t count;
	uint32_t cap;
	uint64_t *seqs;
	uint32_t bad;              /* Records whose bytes did not match. */
};

int test_collect_fn(void *arg, const struct log_record_out *record);

#endif /* SLUICE_TEST_LOG_UTIL_H */
