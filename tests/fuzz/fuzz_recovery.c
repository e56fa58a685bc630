/*
 * fuzz_recovery: a log directory of arbitrary bytes (segment, index and meta
 * files, recovery_files.h) on the simulated disk, opened as sluiced opens its
 * log, then every record read back. Invariants:
 *   - log_open returns 0 or a negative errno (the diagnostics say why);
 *     no crash, no read out of bounds, no leak (ASan, LSan);
 *   - every record recovery exposes is one of a batch of the input that passes
 *     its checksums (found independently by scanning the input's segments with
 *     log_batch_check): plaintext records byte for byte, encrypted ones by
 *     shard and sequence number (GCM vouches for their bytes);
 *   - recovery is idempotent: reopening what the first open left gives the
 *     same records, and so does an open after power loss during the second
 *     (whatever recovery wrote, it synced).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/diag.h"
#include "nvme-log/log.h"
#include "nvme-log/log_format.h"
#include "nvme-log/log_io.h"
#include "nvme-log/log_io_sim.h"
#include "tests/fuzz/recovery_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_RECORDS_MAX 65536u     /* Records remembered per side (more are not checked). */
#define FUZZ_READ_RECORDS 512u      /* Records per log_read call. */

struct fuzz_record {
	uint64_t shard_id;
	uint64_t seq;
	uint64_t hash;             /* Of the record's fields; 0 for an encrypted one. */
};

struct fuzz_records {
	struct fuzz_record r[FUZZ_RECORDS_MAX];
	uint32_t count;
};

/* What the input's checksummed batches hold, and what each open exposed. */
static struct fuzz_records oracle;
static struct fuzz_records seen[2];

/*
 * Two CRC32Cs of the record's fields (common/crc32c.c: not instrumented, so hashing a
 * 200 KiB record costs the fuzzer no comparison callbacks). Never 0: that marks encrypted.
 */
static uint64_t
record_hash(const struct log_record_out *r)
{
	uint32_t head = crc32c(0, &r->arrival_ns, sizeof(r->arrival_ns));

	head = crc32c(head, &r->partition_key_size, sizeof(r->partition_key_size));
	head = crc32c(head, r->partition_key, r->partition_key_size);
	head = crc32c(head, &r->has_explicit_hash_key, sizeof(r->has_explicit_hash_key));
	if (r->has_explicit_hash_key)
		head = crc32c(head, r->explicit_hash_key, sizeof(r->explicit_hash_key));
	return ((uint64_t)head << 32 | crc32c(r->data_size, r->data, r->data_size)) | 1u;
}

static void
records_add(struct fuzz_records *rs, uint64_t shard_id, uint64_t seq, uint64_t hash)
{
	if (rs->count < FUZZ_RECORDS_MAX)
		rs->r[rs->count++] = (struct fuzz_record){ shard_id, seq, hash };
}

/*
 * Each checksummed batch anywhere in the file (an index file may point anywhere), whatever
 * recovery makes of it.
 */
static void
oracle_add_file(const uint8_t *buf, uint64_t size)
{
	static const uint32_t magic = LOG_BATCH_MAGIC;
	struct log_batch_header h;
	struct log_record_iter iter;
	struct log_record_out r;

	for (uint64_t pos = 0; pos + LOG_BATCH_HEADER_SIZE <= size; pos++) {
		/* memmem (not instrumented) skips to the next magic: a 1 MiB scan stays cheap. */
		const uint8_t *m = memmem(buf + pos, size - pos, &magic, sizeof(magic));

		if (m == NULL)
			return;
		pos = (uint64_t)(m - buf);
		if (pos + LOG_BATCH_HEADER_SIZE > size || log_batch_check(buf + pos, size - pos, &h) != 0)
			continue;
		if (h.flags & LOG_BATCH_F_ENCRYPTED) {
			for (uint32_t i = 0; i < h.record_count && oracle.count < FUZZ_RECORDS_MAX; i++)
				records_add(&oracle, h.shard_id, h.base_seq + i, 0);
			continue;
		}
		log_record_iter_init(&iter, buf + pos);
		while (log_record_iter_next(&iter, &r) == 1)
			records_add(&oracle, h.shard_id, r.seq, record_hash(&r));
	}
}

static int
oracle_add_name(void *arg, const char *name)
{
	struct log_io *io = arg;
	size_t len = strlen(name);
	static uint8_t buf[RECOVERY_FILE_SIZE_MAX]; /* Reused: no 1 MiB allocation per file. */
	uint64_t size;
	uint32_t file;

	if (len < 4 || strcmp(name + len - 4, ".log") != 0)
		return 0;
	if (log_io_file_open(io, name, 0, &file) != 0)
		abort();
	if (log_io_file_size(io, file, &size) != 0 || size > sizeof(buf))
		abort();
	if (size > 0 && log_io_pread(io, file, buf, (uint32_t)size, 0) != 0)
		abort();
	log_io_file_close(io, file);
	oracle_add_file(buf, size);
	return 0;
}

static bool
oracle_has(uint64_t shard_id, uint64_t seq, uint64_t hash)
{
	for (uint32_t i = 0; i < oracle.count; i++) {
		const struct fuzz_record *o = &oracle.r[i];

		if (o->shard_id == shard_id && o->seq == seq && o->hash == hash)
			return true;
	}
	return oracle.count == FUZZ_RECORDS_MAX; /* Beyond what the oracle holds: unchecked. */
}

struct collect_ctx {
	struct fuzz_records *rs;
	uint64_t shard_id;
};

static int
collect_fn(void *arg, const struct log_record_out *record)
{
	struct collect_ctx *ctx = arg;
	uint64_t hash = record->encrypted ? 0 : record_hash(record);

	if (!oracle_has(ctx->shard_id, record->seq, hash)) {
		fprintf(stderr, "fuzz_recovery: shard %" PRIx64 " seq %" PRIu64 " is in no "
			"checksummed batch of the input\n", ctx->shard_id, record->seq);
		abort();
	}
	records_add(ctx->rs, ctx->shard_id, record->seq, hash);
	return 0;
}

/* Reads one shard from its trim horizon to its durable end, stepping over known bad ranges. */
static void
collect_shard(struct log *log, struct log_reader *reader, struct collect_ctx *ctx)
{
	struct log_shard_info info;
	uint64_t seq;

	if (log_shard_info(log, ctx->shard_id, &info) != 0)
		abort();
	for (seq = info.seq_trim; seq < info.seq_durable;) {
		uint64_t next = seq;
		uint64_t first;
		uint64_t end;
		int n = log_read(reader, ctx->shard_id, seq, FUZZ_READ_RECORDS, UINT64_MAX,
				 collect_fn, ctx, &next);

		if (n == -EBADMSG && log_shard_bad_range(log, ctx->shard_id, seq, &first,
							 &end) == 0 && end > seq) {
			seq = end;
			continue;
		}
		if (n < -4095)
			abort();
		if (n <= 0 || next <= seq)
			return; /* -ENOKEY and the like: the rest of the shard is not readable. */
		seq = next;
	}
}

static void
collect(struct log *log, struct fuzz_records *rs)
{
	uint64_t ids[RECOVERY_SHARDS_MAX];
	uint32_t count = log_shard_list(log, ids, RECOVERY_SHARDS_MAX);
	struct log_reader *reader;

	rs->count = 0;
	if (log_reader_open(log, &reader) != 0)
		abort();
	for (uint32_t i = 0; i < count && i < RECOVERY_SHARDS_MAX; i++) {
		struct collect_ctx ctx = { rs, ids[i] };

		collect_shard(log, reader, &ctx);
	}
	log_reader_close(reader);
}

/*
 * Opens the log on `io` and reads every record into *rs, then closes it cleanly or after
 * power loss (`crash`). Returns log_open's result.
 */
static int
open_and_read(struct log_io *io, struct fuzz_records *rs, bool crash)
{
	struct log_config config;
	struct log_key key;
	struct log *log;
	int err;

	recovery_config(&config, io);
	err = log_open(&config, &log);
	if (err > 0 || err < -4095)
		abort();
	if (err != 0)
		return err;
	recovery_key(&key);
	if (log_keys_replace(log, &key, 1) != 0)
		abort();
	collect(log, rs);
	if (crash)
		log_io_sim_crash(io);
	log_close(log);
	if (crash)
		log_io_sim_restart(io);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log_io *io;
	int err;

	/*
	 * Every input is a damaged log: its diagnostics would drown the fuzzer's output.
	 * FUZZ_RECOVERY_VERBOSE=1 shows them (replaying one input).
	 */
	diag_level_set(getenv("FUZZ_RECOVERY_VERBOSE") != NULL ? DIAG_DEBUG :
		       (enum diag_level)(DIAG_ERROR + 1));
	if (log_io_sim_create(RECOVERY_SIM_SEED, &io) != 0)
		abort();
	oracle.count = 0;
	if (recovery_files_load(io, RECOVERY_SEGMENT_SIZE, data, size) != 0)
		goto out;
	log_io_dir_list(io, oracle_add_name, io);
	err = open_and_read(io, &seen[0], false);
	if (err != 0)
		goto out;
	/* Again after a clean close, then after power loss: what recovery wrote was synced. */
	for (uint32_t i = 0; i < 2; i++) {
		if (open_and_read(io, &seen[1], i == 0) != 0 || seen[0].count != seen[1].count ||
		    memcmp(seen[0].r, seen[1].r, seen[0].count * sizeof(seen[0].r[0])) != 0) {
			fprintf(stderr, "fuzz_recovery: open %u exposed other records (%u, then %u)\n",
				i + 2, seen[0].count, seen[1].count);
			abort();
		}
	}
out:
	log_io_sim_destroy(io);
	return 0;
}
