/*
 * log_crypt: encryption at rest on the real backend (io_uring, O_DIRECT,
 * real segment files). An encrypted stream's records read back byte-exact
 * while its segment bytes never hold them; a plain stream next to it does
 * (so the grep can fail); a missing, disabled or different key fails reads
 * with its own errno and serves nothing; ciphertext altered with its CRCs
 * recomputed is corruption, not data; key rotation keeps old batches
 * readable; turning encryption off leaves old batches encrypted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/crc32c.h"
#include "nvme-log/log.h"
#include "nvme-log/log_format.h"
#include "tests/nvme-log/log_test_util.h"

#define STREAM_SECRET 5u
#define STREAM_PLAIN 6u
#define KEY_ID 0x4b4559ull
#define MARK "SECRET-MARK-"  /* In every record's data, so a grep finds plaintext. */
#define MARK_SIZE (sizeof(MARK) - 1)

static char dir[256];

static void
setup(void)
{
	cr_assert_eq(test_dir_make(dir, sizeof(dir)), 0);
}

static void
teardown(void)
{
	test_dir_remove(dir);
}

static struct log *
open_log(void)
{
	struct log_config c;
	struct log *log;

	log_config_default(&c);
	c.dir_path = dir;
	c.segment_size = 2u << 20;
	c.batch_size = 16u << 10;
	c.commit_window_bytes = 64u << 10;
	c.producers_max = 1;
	c.batches_per_producer = 4;
	c.shards_max = 16;
	cr_assert_eq(log_open(&c, &log), 0);
	return log;
}

static struct log_key
key_make(uint32_t version, uint8_t fill, bool enabled)
{
	struct log_key k = { .key_id = KEY_ID, .version = version, .enabled = enabled };

	memset(k.material, fill, sizeof(k.material));
	return k;
}

static void
keys_set(struct log *log, const struct log_key *keys, uint32_t count)
{
	cr_assert_eq(log_keys_replace(log, keys, count), 0);
}

/* One batch of `count` records "SECRET-MARK-<seq>" to shard 0 of the stream; waits for it. */
static int
append(struct log *log, uint32_t stream, uint64_t seq_first, uint32_t count)
{
	struct log_producer *p;
	struct log_batch *b;
	struct log_completion c;
	struct pollfd pfd;
	int rc;

	cr_assert_eq(log_producer_open(log, &p), 0);
	pfd = (struct pollfd){ .fd = log_producer_event_fd(p), .events = POLLIN };
	b = log_batch_get(p);
	for (uint32_t i = 0; i < count; i++) {
		char data[64];
		struct log_record_in rec = {
			.partition_key = "pk", .partition_key_size = 2, .data = data,
			.data_size = (uint32_t)snprintf(data, sizeof(data), MARK "%lu",
							(unsigned long)(seq_first + i)),
			.arrival_ns = 1000 + seq_first + i,
		};

		cr_assert_eq(log_batch_add(b, &rec), 0);
	}
	rc = log_batch_submit(p, b, LOG_SHARD_ID(stream, 0), 0);
	if (rc != 0) {
		log_batch_put(p, b);
	} else {
		while (log_completions_poll(p, &c, 1) == 0)
			cr_assert_geq(poll(&pfd, 1, 5000), 0);
		cr_assert_eq(c.error, 0);
		cr_assert_eq(c.seq_first, seq_first);
	}
	log_producer_close(p);
	return rc;
}

/* Records of STREAM_SECRET from this seq on were written with encryption off. */
static uint64_t plain_from = UINT64_MAX;

struct got {
	uint32_t count;
	uint64_t seq_next;
};

static int
check_fn(void *arg, const struct log_record_out *r)
{
	struct got *g = arg;
	char want[64];
	int n = snprintf(want, sizeof(want), MARK "%lu", (unsigned long)r->seq);

	cr_assert_eq(r->seq, g->seq_next);
	cr_assert_eq(r->data_size, (uint32_t)n);
	cr_assert_arr_eq(r->data, want, (size_t)n);
	cr_assert_eq(r->arrival_ns, 1000 + r->seq);
	cr_assert_eq(r->encrypted, r->seq < plain_from, "seq %lu", (unsigned long)r->seq);
	g->count++;
	g->seq_next++;
	return 0;
}

/* log_read from `seq`: the number of records (all checked), or the error. */
static int
read_from(struct log *log, uint32_t stream, uint64_t seq)
{
	struct log_reader *reader;
	struct got g = { 0, seq };
	uint64_t next;
	int rc;

	cr_assert_eq(log_reader_open(log, &reader), 0);
	rc = log_read(reader, LOG_SHARD_ID(stream, 0), seq, 1000, 1u << 20, check_fn, &g, &next);
	log_reader_close(reader);
	if (rc >= 0)
		cr_assert_eq((uint32_t)rc, g.count);
	else
		cr_assert_eq(g.count, 0, "an error after serving records");
	return rc;
}

/* How many times MARK occurs in the log's segment files. */
static uint32_t
disk_marks(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint32_t found = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[600];
		struct stat st;
		uint8_t *buf;
		int fd;

		if (strncmp(e->d_name, "seg-", 4) != 0 || strstr(e->d_name, ".log") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY);
		cr_assert_geq(fd, 0);
		cr_assert_eq(fstat(fd, &st), 0);
		buf = malloc((size_t)st.st_size);
		cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
		for (const uint8_t *p = buf; (p = memmem(p, (size_t)(buf + st.st_size - p), MARK,
							  MARK_SIZE)) != NULL; p++)
			found++;
		free(buf);
		close(fd);
	}
	closedir(d);
	return found;
}

Test(log_crypt, round_trip_and_no_plaintext_on_disk, .init = setup, .fini = teardown)
{
	struct log *log = open_log();
	struct log_key k = key_make(1, 0x11, true);
	struct log_stats st;

	keys_set(log, &k, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	for (uint64_t seq = 0; seq < 40; seq += 10)
		cr_assert_eq(append(log, STREAM_SECRET, seq, 10), 0);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), 40);
	cr_assert_eq(read_from(log, STREAM_SECRET, 25), 15);
	log_stats_read(log, &st);
	cr_assert_eq(st.batches_encrypted, 4);
	log_close(log);
	cr_assert_eq(disk_marks(), 0, "plaintext of an encrypted stream on disk");

	/* The same check finds a plain stream's records: it can fail. */
	log = open_log();
	keys_set(log, &k, 1);
	cr_assert_eq(append(log, STREAM_PLAIN, 0, 3), 0);
	log_close(log);
	cr_assert_eq(disk_marks(), 3);

	/* Reopened (recovery scans the ciphertext): still readable with the key. */
	log = open_log();
	keys_set(log, &k, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), 40);
	log_close(log);
}

Test(log_crypt, missing_disabled_and_wrong_keys_serve_nothing, .init = setup,
     .fini = teardown)
{
	struct log *log = open_log();
	struct log_key k = key_make(1, 0x22, true);
	struct log_key other = key_make(1, 0x23, true);
	struct log_key off = key_make(1, 0x22, false);
	struct log_stats st;

	keys_set(log, &k, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	cr_assert_eq(append(log, STREAM_SECRET, 0, 5), 0);
	log_close(log);

	log = open_log();
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), -ENOKEY);
	keys_set(log, &off, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), -EKEYREVOKED);
	keys_set(log, &other, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), -EKEYREJECTED);
	log_stats_read(log, &st);
	cr_assert_eq(st.decrypt_errors, 3);
	cr_assert_eq(st.corruptions, 0, "a key problem is not corruption");
	keys_set(log, &k, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), 5);

	/* Writes: a stream whose key is gone or disabled takes nothing. */
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	keys_set(log, NULL, 0);
	cr_assert_eq(append(log, STREAM_SECRET, 5, 1), -ENOKEY);
	keys_set(log, &off, 1);
	cr_assert_eq(append(log, STREAM_SECRET, 5, 1), -EKEYREVOKED);
	keys_set(log, &k, 1);
	cr_assert_eq(append(log, STREAM_SECRET, 5, 1), 0);
	log_close(log);
}

Test(log_crypt, rotation_keeps_old_versions_readable, .init = setup, .fini = teardown)
{
	struct log *log = open_log();
	struct log_key v1 = key_make(1, 0x31, true);
	struct log_key both[2] = { key_make(1, 0x31, true), key_make(2, 0x32, true) };
	struct log_key v2 = key_make(2, 0x32, true);

	keys_set(log, &v1, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	cr_assert_eq(append(log, STREAM_SECRET, 0, 4), 0);
	keys_set(log, both, 2);
	cr_assert_eq(append(log, STREAM_SECRET, 4, 4), 0);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), 8);
	/* Version 2 alone opens exactly the batches written after the rotation. */
	keys_set(log, &v2, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 4), 4);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), -ENOKEY);
	log_close(log);
}

Test(log_crypt, off_again_keeps_old_batches_encrypted, .init = setup, .fini = teardown)
{
	struct log *log = open_log();
	struct log_key k = key_make(7, 0x41, true);
	uint64_t seq = 0;
	struct log_reader *reader;

	keys_set(log, &k, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	cr_assert_eq(append(log, STREAM_SECRET, 0, 3), 0);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, 0), 0);
	cr_assert_eq(append(log, STREAM_SECRET, 3, 2), 0);
	plain_from = 3;
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), 5);
	/* Seeking by time opens encrypted batches too. */
	cr_assert_eq(log_reader_open(log, &reader), 0);
	cr_assert_eq(log_seek_time(reader, LOG_SHARD_ID(STREAM_SECRET, 0), 1002, &seq), 0);
	cr_assert_eq(seq, 2);
	log_reader_close(reader);
	log_close(log);
	cr_assert_eq(disk_marks(), 2);
}

/* Finds the first batch of the first segment and flips a ciphertext byte, CRCs redone. */
static void
tamper_first_batch(void)
{
	char path[600];
	struct log_batch_header h;
	uint8_t *batch = malloc(LOG_BLOCK_SIZE * 8);
	int fd;

	snprintf(path, sizeof(path), "%s/seg-%016x.log", dir, 0);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(pread(fd, batch, LOG_BLOCK_SIZE * 8, LOG_BLOCK_SIZE), LOG_BLOCK_SIZE * 8);
	cr_assert_eq(log_batch_check(batch, LOG_BLOCK_SIZE * 8, &h), 0);
	cr_assert_neq(h.flags & LOG_BATCH_F_ENCRYPTED, 0);
	batch[LOG_BATCH_HEADER_SIZE + 3] ^= 0x01;
	h.body_crc = crc32c(0, batch + 48, h.size - 48);
	memcpy(batch + 44, &h.body_crc, 4);
	h.header_crc = crc32c(0, batch + 8, LOG_BATCH_HEADER_SIZE - 8);
	memcpy(batch + 4, &h.header_crc, 4);
	cr_assert_eq(log_batch_check(batch, LOG_BLOCK_SIZE * 8, &h), 0, "CRCs redone");
	cr_assert_eq(pwrite(fd, batch, LOG_BLOCK_SIZE * 8, LOG_BLOCK_SIZE), LOG_BLOCK_SIZE * 8);
	close(fd);
	free(batch);
}

Test(log_crypt, altered_ciphertext_is_corruption_not_data, .init = setup, .fini = teardown)
{
	struct log *log = open_log();
	struct log_key k = key_make(1, 0x51, true);
	struct log_stats st;

	keys_set(log, &k, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	cr_assert_eq(append(log, STREAM_SECRET, 0, 6), 0);
	log_close(log);
	tamper_first_batch();

	log = open_log();
	keys_set(log, &k, 1);
	cr_assert_eq(read_from(log, STREAM_SECRET, 0), -EBADMSG);
	log_stats_read(log, &st);
	cr_assert_eq(st.corruptions, 1);
	log_close(log);
}

Test(log_crypt, keyring_refuses_bad_sets, .init = setup, .fini = teardown)
{
	struct log *log = open_log();
	struct log_key dup[2] = { key_make(1, 1, true), key_make(1, 2, true) };
	struct log_key zero = key_make(1, 1, true);

	zero.key_id = 0;
	cr_assert_eq(log_keys_replace(log, dup, 2), -EINVAL);
	cr_assert_eq(log_keys_replace(log, &zero, 1), -EINVAL);
	cr_assert_eq(log_keys_replace(log, dup, LOG_KEYS_MAX + 1), -EINVAL);
	log_close(log);
}

/* The largest record a stream may allow (10 MiB, UpdateMaxRecordSize), plain and encrypted. */
struct big_check {
	const uint8_t *want;
	uint32_t count;
};

static int
big_fn(void *arg, const struct log_record_out *r)
{
	struct big_check *b = arg;

	cr_assert_eq(r->data_size, SLUICE_RECORD_DATA_SIZE_LARGE_MAX);
	cr_assert_eq(r->partition_key_size, SLUICE_PARTITION_KEY_SIZE_MAX);
	cr_assert_eq(memcmp(r->data, b->want, r->data_size), 0);
	b->count++;
	return 0;
}

Test(log_crypt, largest_records_round_trip, .init = setup, .fini = teardown, .timeout = 60)
{
	uint8_t *data = malloc(SLUICE_RECORD_DATA_SIZE_LARGE_MAX + 1);
	static char key[SLUICE_PARTITION_KEY_SIZE_MAX];
	struct log_key k = key_make(1, 0x61, true);
	struct log_config c;
	struct log *log;
	struct log_producer *p;
	struct log_reader *reader;

	for (uint32_t i = 0; i <= SLUICE_RECORD_DATA_SIZE_LARGE_MAX; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 24);
	memset(key, 'k', sizeof(key));
	log_config_default(&c);
	c.dir_path = dir;
	c.segment_size = 48u << 20;
	c.batch_size = (10u << 20) + (8u << 10);
	c.commit_window_bytes = 1u << 20;
	c.producers_max = 1;
	c.batches_per_producer = 2;
	c.segments_prepared = 1;
	c.shards_max = 16;
	cr_assert_eq(log_open(&c, &log), 0);
	keys_set(log, &k, 1);
	cr_assert_eq(log_stream_encryption_set(log, STREAM_SECRET, KEY_ID), 0);
	cr_assert_eq(log_producer_open(log, &p), 0);
	for (uint32_t stream = STREAM_SECRET; stream <= STREAM_PLAIN; stream++) {
		struct log_record_in rec = {
			.partition_key = key, .partition_key_size = sizeof(key), .data = data,
			.data_size = SLUICE_RECORD_DATA_SIZE_LARGE_MAX + 1, .arrival_ns = 1,
		};
		struct log_batch *b = log_batch_get(p);
		struct pollfd pfd = { .fd = log_producer_event_fd(p), .events = POLLIN };
		struct log_completion done;

		cr_assert_eq(log_batch_add(b, &rec), -EINVAL, "one byte over the limit");
		rec.data_size = SLUICE_RECORD_DATA_SIZE_LARGE_MAX;
		cr_assert_eq(log_batch_add(b, &rec), 0);
		cr_assert_eq(log_batch_submit(p, b, LOG_SHARD_ID(stream, 0), 0), 0);
		while (log_completions_poll(p, &done, 1) == 0)
			cr_assert_geq(poll(&pfd, 1, 5000), 0);
		cr_assert_eq(done.error, 0);
	}
	log_producer_close(p);
	cr_assert_eq(log_reader_open(log, &reader), 0);
	for (uint32_t stream = STREAM_SECRET; stream <= STREAM_PLAIN; stream++) {
		struct big_check b = { data, 0 };
		uint64_t next;

		cr_assert_eq(log_read(reader, LOG_SHARD_ID(stream, 0), 0, 10, 1024, big_fn, &b,
				      &next), 1);
		cr_assert_eq(b.count, 1);
	}
	log_reader_close(reader);
	log_close(log);
	free(data);
}
