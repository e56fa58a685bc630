/* log_test_util.c - see log_test_util.h. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/nvme-log/log_test_util.h"

int
test_dir_make(char *buf, size_t size)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, size, "%s/sluice-log-test-XXXXXX", tmp != NULL ? tmp : "/tmp");
	return mkdtemp(buf) == NULL ? -errno : 0;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
test_dir_remove(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint8_t
record_byte(uint64_t shard_id, uint64_t seq, uint32_t i)
{
	uint64_t z = (shard_id * 0x9E3779B97F4A7C15ull) ^ (seq * 0xBF58476D1CE4E5B9ull) ^ i;

	return (uint8_t)(z ^ (z >> 29) ^ (z >> 47));
}

void
test_record_make(uint64_t shard_id, uint64_t seq, uint32_t data_size, uint8_t *buf,
		 char *key, struct log_record_in *out)
{
	for (uint32_t i = 0; i < data_size; i++)
		buf[i] = record_byte(shard_id, seq, i);
	snprintf(key, 48, "k%llx-%llu", (unsigned long long)shard_id, (unsigned long long)seq);
	memset(out, 0, sizeof(*out));
	out->partition_key = key;
	out->partition_key_size = (uint16_t)strlen(key);
	out->data = buf;
	out->data_size = data_size;
	out->arrival_ns = 1000000000ull * 1700000000ull + seq * 1000u;
}

bool
test_record_check(uint64_t shard_id, const struct log_record_out *record, uint32_t data_size)
{
	char key[48];

	snprintf(key, sizeof(key), "k%llx-%llu", (unsigned long long)shard_id,
		 (unsigned long long)record->seq);
	if (record->data_size != data_size || record->partition_key_size != strlen(key) ||
	    memcmp(record->partition_key, key, record->partition_key_size) != 0)
		return false;
	if (record->arrival_ns != 1000000000ull * 1700000000ull + record->seq * 1000u)
		return false;
	for (uint32_t i = 0; i < data_size; i++) {
		if (record->data[i] != record_byte(shard_id, record->seq, i))
			return false;
	}
	return true;
}

int
test_collect_fn(void *arg, const struct log_record_out *record)
{
	struct test_collect *c = arg;

	if (c->count == c->cap) {
		uint32_t cap = c->cap == 0 ? 1024 : c->cap * 2;
		uint64_t *seqs = realloc(c->seqs, cap * sizeof(*seqs));

		if (seqs == NULL)
			return -ENOMEM;
		c->seqs = seqs;
		c->cap = cap;
	}
	c->seqs[c->count++] = record->seq;
	if (!test_record_check(c->shard_id, record, c->data_size))
		c->bad++;
	return 0;
}
