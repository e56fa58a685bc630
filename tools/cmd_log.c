/*
 * cmd_log.c - `sluice log verify DIR` and `sluice log dump DIR [--shard S]
 * [--from SEQ]`: offline inspection of a log directory through the log's
 * read-only mode (nothing on disk changes). Exit: 0 clean, 1 corrupt or
 * unreadable, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nvme-log/log.h"
#include "tools/cmd.h"

#define DUMP_PREVIEW_MAX 64u
#define DUMP_SHARDS_MAX 65536u

static void
log_usage(FILE *out)
{
	fprintf(out,
		"usage: sluice log verify DIR\n"
		"       sluice log dump DIR [--shard STREAM:INDEX | --shard ID] [--from SEQ]\n\n"
		"verify  reads every segment: batch CRCs, index files against the data,\n"
		"        sequence continuity per shard; exit 1 on any corruption\n"
		"dump    prints durable records, one per line, tab-separated:\n"
		"        stream:index seq arrival_ns partition_key hash_key|- size data_preview\n");
}

static bool
dir_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A bar on a terminal only: pipes and files get the summary alone. */
static void
verify_progress(void *arg, uint64_t done, uint64_t total)
{
	const bool *tty = arg;
	uint32_t width = 40;
	uint32_t filled = total == 0 ? width : (uint32_t)(done * width / total);
	char bar[41];

	if (!*tty)
		return;
	memset(bar, '#', filled);
	memset(bar + filled, ' ', width - filled);
	bar[width] = '\0';
	fprintf(stderr, "\rverify [%s] %3u%%", bar,
		total == 0 ? 100u : (uint32_t)(done * 100 / total));
	fflush(stderr);
}

static int
log_verify_cmd(const char *dir)
{
	struct log_verify_report r;
	bool tty = isatty(STDERR_FILENO) == 1;
	int err = log_verify(dir, &r, verify_progress, &tty);

	if (tty)
		fprintf(stderr, "\r\033[K");
	if (err != 0 && err != -EBADMSG) {
		fprintf(stderr, "sluice log verify: %s: %s\n", dir, strerror(-err));
		return CMD_EXIT_ERROR;
	}
	printf("segments %" PRIu64 " (sealed %" PRIu64 "), shards %" PRIu64 ", batches %" PRIu64
	       ", records %" PRIu64 ", bytes %" PRIu64 "\n", r.segments, r.segments_sealed,
	       r.shards, r.batches, r.records, r.bytes);
	printf("crc_errors %" PRIu64 ", index_mismatches %" PRIu64 ", sequence_gaps %" PRIu64
	       ", corruptions %" PRIu64 ", torn_tails %" PRIu64 "\n", r.crc_errors,
	       r.index_mismatches, r.sequence_gaps, r.corruptions, r.torn_tails);
	printf("%s\n", err == 0 ? "ok" : "CORRUPT");
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}

static int
dump_record(void *arg, const struct log_record_out *rec)
{
	const uint64_t *shard_id = arg;

	printf("%" PRIu32 ":%" PRIu32 "\t%" PRIu64 "\t%" PRIu64 "\t", LOG_SHARD_STREAM(*shard_id),
	       LOG_SHARD_INDEX(*shard_id), rec->seq, rec->arrival_ns);
	for (uint16_t i = 0; i < rec->partition_key_size; i++) {
		uint8_t c = rec->partition_key[i];

		printf(c >= 0x21 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
	}
	putchar('\t');
	if (rec->has_explicit_hash_key) {
		for (uint32_t i = 0; i < 16; i++)
			printf("%02x", rec->explicit_hash_key[i]);
	} else {
		putchar('-');
	}
	printf("\t%" PRIu32 "\t", rec->data_size);
	for (uint32_t i = 0; i < rec->data_size && i < DUMP_PREVIEW_MAX; i++) {
		uint8_t c = rec->data[i];

		printf(c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
	}
	printf(rec->data_size > DUMP_PREVIEW_MAX ? "...\n" : "\n");
	return 0;
}

/* Records [first, end) could not be shown for `err`: one line for the whole run. */
static void
dump_unreadable(uint64_t shard_id, uint64_t first, uint64_t end, int err)
{
	fprintf(stderr, "sluice log dump: shard %" PRIu32 ":%" PRIu32 " seq %" PRIu64,
		LOG_SHARD_STREAM(shard_id), LOG_SHARD_INDEX(shard_id), first);
	if (end - first > 1)
		fprintf(stderr, "..%" PRIu64, end - 1);
	fprintf(stderr, ": %s%s\n", strerror(-err), err == -EBADMSG ? "" :
		" (encrypted: the keyring is sluiced's; the dump has none)");
}

/*
 * Dumps one shard from `from` to its durable end; a corrupt range is
 * reported on stderr and skipped, and so are encrypted records (no key here:
 * one line per run of them). Returns 0, or -EBADMSG if any was corrupt.
 */
static int
dump_shard(struct log *log, struct log_reader *reader, uint64_t shard_id, uint64_t from)
{
	struct log_shard_info info;
	uint64_t seq = from;
	uint64_t bad_first = 0;
	int bad_err = 0;
	int rc = 0;

	log_shard_info(log, shard_id, &info);
	if (seq < info.seq_trim)
		seq = info.seq_trim;
	while (seq < info.seq_durable) {
		uint64_t at = seq;
		int n = log_read(reader, shard_id, seq, 4096, 64u << 20, dump_record, &shard_id,
				 &seq);

		if (bad_err != 0 && n != bad_err) {
			dump_unreadable(shard_id, bad_first, at, bad_err);
			bad_err = 0;
		}
		if (n > 0)
			continue;
		if (n == 0)
			break;
		if (bad_err == 0) {
			bad_first = at;
			bad_err = n;
		}
		if (n == -EBADMSG)
			rc = -EBADMSG;
		seq = at + 1;
	}
	if (bad_err != 0)
		dump_unreadable(shard_id, bad_first, seq, bad_err);
	return rc;
}

static int
parse_shard(const char *text, uint64_t *shard_out)
{
	char *end;
	unsigned long long a = strtoull(text, &end, 0);

	if (end == text)
		return -EINVAL;
	if (*end == ':') {
		const char *b_text = end + 1;
		unsigned long long b = strtoull(b_text, &end, 0);

		if (end == b_text || *end != '\0' || a > UINT32_MAX || b > UINT32_MAX)
			return -EINVAL;
		*shard_out = LOG_SHARD_ID(a, b);
		return 0;
	}
	if (*end != '\0')
		return -EINVAL;
	*shard_out = a;
	return 0;
}

static int
compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
log_dump_all(struct log *log, bool one, uint64_t shard_id, uint64_t from)
{
	struct log_reader *reader;
	uint64_t *ids = NULL;
	uint32_t count = 1;
	int failed = 0;
	int err = log_reader_open(log, &reader);

	if (err == 0 && !one) {
		ids = calloc(DUMP_SHARDS_MAX, sizeof(*ids));
		err = ids == NULL ? -ENOMEM : 0;
		count = err == 0 ? log_shard_list(log, ids, DUMP_SHARDS_MAX) : 0;
		if (count > DUMP_SHARDS_MAX)
			count = DUMP_SHARDS_MAX;
		qsort(ids, count, sizeof(*ids), compare_u64);
	}
	for (uint32_t i = 0; err == 0 && i < count; i++)
		failed |= dump_shard(log, reader, one ? shard_id : ids[i], from) < 0;
	free(ids);
	if (err == 0)
		log_reader_close(reader);
	return err != 0 ? err : failed ? -EBADMSG : 0;
}

static int
log_dump_cmd(const char *dir, int argc, char **argv)
{
	struct log_config c;
	struct log *log;
	uint64_t shard_id = 0;
	uint64_t from = 0;
	bool one = false;
	int err;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--shard") == 0 && i + 1 < argc &&
		    parse_shard(argv[i + 1], &shard_id) == 0) {
			one = true;
			i++;
		} else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			char *end;

			from = strtoull(argv[++i], &end, 0);
			if (*end != '\0')
				goto out_usage;
		} else {
			goto out_usage;
		}
	}
	log_config_default(&c);
	c.dir_path = dir;
	c.read_only = true;
	c.segment_size = 0;
	err = log_open(&c, &log);
	if (err == 0) {
		err = log_dump_all(log, one, shard_id, from);
		log_close(log);
	}
	if (err != 0 && err != -EBADMSG)
		fprintf(stderr, "sluice log dump: %s: %s\n", dir, strerror(-err));
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;

out_usage:
	log_usage(stderr);
	return CMD_EXIT_USAGE;
}

int
cmd_log(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		log_usage(stdout);
		return CMD_EXIT_OK;
	}
	if (argc < 3 || (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "dump") != 0)) {
		log_usage(stderr);
		return CMD_EXIT_USAGE;
	}
	if (!dir_exists(argv[2])) {
		fprintf(stderr, "sluice log %s: %s: not a directory\n", argv[1], argv[2]);
		return CMD_EXIT_ERROR;
	}
	if (strcmp(argv[1], "verify") == 0)
		return argc == 3 ? log_verify_cmd(argv[2]) : (log_usage(stderr), CMD_EXIT_USAGE);
	return log_dump_cmd(argv[2], argc - 3, argv + 3);
}
