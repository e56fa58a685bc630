/*
 * recovery_files.c - a log directory as one fuzz input and back (the format
 * is in recovery_files.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "nvme-log/log_format.h"
#include "nvme-log/log_io.h"
#include "tests/fuzz/recovery_files.h"

#define RECOVERY_NAMES_MAX 64u
#define RECOVERY_NAME_SIZE 64u

static enum recovery_file_type
kind_type(uint8_t kind)
{
	return (enum recovery_file_type)((kind >> 4) & 3u);
}

static void
kind_name(uint8_t kind, char *name, size_t size)
{
	uint32_t no = kind & 7u;

	switch (kind_type(kind)) {
	case RECOVERY_FILE_INDEX:
		snprintf(name, size, "seg-%016" PRIx32 ".idx", no);
		break;
	case RECOVERY_FILE_META:
		snprintf(name, size, "log.meta");
		break;
	default:
		snprintf(name, size, "seg-%016" PRIx32 ".log", no);
		break;
	}
}

/* Opens the piece's file; a segment of full size starts as segment_size zeros. */
static int
piece_file_open(struct log_io *io, uint8_t kind, uint64_t segment_size, uint32_t *file_out)
{
	/* Allocated once: a fuzzer loads thousands of directories a minute. */
	static uint8_t *zeros;
	static uint64_t zeros_size;
	char name[RECOVERY_NAME_SIZE];
	int err;

	kind_name(kind, name, sizeof(name));
	err = log_io_file_open(io, name, 0, file_out);
	if (err != -ENOENT)
		return err;
	err = log_io_file_open(io, name, LOG_IO_FILE_CREATE, file_out);
	if (err != 0 || kind_type(kind) != RECOVERY_FILE_SEGMENT)
		return err;
	if (zeros_size < segment_size) {
		free(zeros);
		zeros = calloc(1, segment_size);
		zeros_size = zeros == NULL ? 0 : segment_size;
	}
	err = zeros == NULL ? -ENOMEM : log_io_pwrite(io, *file_out, zeros,
						       (uint32_t)segment_size, 0);
	if (err != 0)
		log_io_file_close(io, *file_out);
	return err;
}

static int
piece_load(struct log_io *io, uint64_t segment_size, const uint8_t *piece, size_t size)
{
	enum recovery_file_type type = kind_type(piece[0]);
	uint64_t limit = type == RECOVERY_FILE_SEGMENT || type == RECOVERY_FILE_SEGMENT_SHORT ?
			 segment_size : RECOVERY_FILE_SIZE_MAX;
	uint64_t offset = (uint64_t)piece[1] * LOG_BLOCK_SIZE;
	uint32_t file;
	int err;

	if (offset > limit)
		return 0;
	err = piece_file_open(io, piece[0], segment_size, &file);
	if (err != 0)
		return err;
	err = log_io_pwrite(io, file, piece + 2, (uint32_t)min_u64(size - 2, limit - offset),
			    offset);
	if (err == 0)
		err = log_io_fsync(io, file);
	log_io_file_close(io, file);
	return err;
}

static const uint8_t *
mark_find(const uint8_t *from, const uint8_t *end)
{
	for (const uint8_t *p = from; p + RECOVERY_FILES_MARK_SIZE <= end; p++) {
		if (memcmp(p, RECOVERY_FILES_MARK, RECOVERY_FILES_MARK_SIZE) == 0)
			return p;
	}
	return end;
}

int
recovery_files_load(struct log_io *io, uint64_t segment_size, const uint8_t *data,
		    size_t size)
{
	const uint8_t *end = data + size;
	int err = 0;

	for (const uint8_t *p = data; p < end && err == 0;) {
		const uint8_t *next = mark_find(p, end);

		if (next - p >= 2)
			err = piece_load(io, segment_size, p, (size_t)(next - p));
		p = next == end ? end : next + RECOVERY_FILES_MARK_SIZE;
	}
	return err;
}

void
recovery_config(struct log_config *config, struct log_io *io)
{
	log_config_default(config);
	config->dir_path = "fuzz";
	config->io = io;
	config->writer_thread = false;
	config->segment_size = RECOVERY_SEGMENT_SIZE;
	config->batch_size = RECOVERY_SEGMENT_SIZE / LOG_BATCHES_PER_SEGMENT_MIN;
	config->commit_window_bytes = 64u << 10;
	config->producers_max = 1;
	config->batches_per_producer = 8;
	config->shards_max = RECOVERY_SHARDS_MAX;
	config->segments_prepared = 1;
	config->read_cache_bytes = 0;
}

void
recovery_key(struct log_key *key)
{
	*key = (struct log_key){ .key_id = RECOVERY_KEY_ID, .version = 1, .enabled = true };
	memset(key->material, 0x5a, sizeof(key->material));
}

/* ---- Dump (seed corpus) -------------------------------------------------- */

struct recovery_names {
	char names[RECOVERY_NAMES_MAX][RECOVERY_NAME_SIZE];
	uint32_t count;
};

static int
names_add(void *arg, const char *name)
{
	struct recovery_names *names = arg;

	if (names->count == RECOVERY_NAMES_MAX)
		return -ERANGE;
	snprintf(names->names[names->count++], RECOVERY_NAME_SIZE, "%s", name);
	return 0;
}

static void
piece_write(FILE *out, bool *first, uint8_t kind, uint8_t block, const uint8_t *bytes,
	    size_t size)
{
	if (!*first)
		fwrite(RECOVERY_FILES_MARK, 1, RECOVERY_FILES_MARK_SIZE, out);
	*first = false;
	fputc(kind, out);
	fputc(block, out);
	fwrite(bytes, 1, size, out);
}

static bool
block_zero(const uint8_t *p, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

/* A full-size segment: each run of non-zero blocks, its trailing zeros cut. */
static void
segment_write(FILE *out, bool *first, uint8_t kind, const uint8_t *buf, uint64_t size)
{
	uint64_t blocks = size / LOG_BLOCK_SIZE;
	bool any = false;

	for (uint64_t b = 0; b < blocks;) {
		uint64_t e = b;
		uint64_t len;

		while (e < blocks && !block_zero(buf + e * LOG_BLOCK_SIZE, LOG_BLOCK_SIZE))
			e++;
		if (e == b) {
			b++;
			continue;
		}
		len = (e - b) * LOG_BLOCK_SIZE;
		while (buf[b * LOG_BLOCK_SIZE + len - 1] == 0)
			len--;
		piece_write(out, first, kind, (uint8_t)b, buf + b * LOG_BLOCK_SIZE, len);
		any = true;
		b = e;
	}
	if (!any)
		piece_write(out, first, kind, 0, buf, 0); /* A spare: the file, all zeros. */
}

static int
file_dump(struct log_io *io, uint64_t segment_size, const char *name, FILE *out, bool *first)
{
	uint8_t kind = RECOVERY_FILE_META << 4;
	uint64_t no = 0;
	uint64_t size;
	uint32_t file;
	uint8_t *buf;
	char tail[8];
	int err;

	if (sscanf(name, "seg-%16" SCNx64 ".%7s", &no, tail) == 2) {
		if (no > 7)
			return -ERANGE;
		kind = (uint8_t)((strcmp(tail, "idx") == 0 ? RECOVERY_FILE_INDEX << 4 : 0) | no);
	} else if (strcmp(name, "log.meta") != 0) {
		return 0; /* Not a file recovery reads (log.epochs is not fuzzed here). */
	}
	err = log_io_file_open(io, name, 0, &file);
	if (err != 0)
		return err;
	err = log_io_file_size(io, file, &size);
	if (err == 0 && size > RECOVERY_FILE_SIZE_MAX)
		err = -ERANGE;
	buf = err == 0 ? malloc(size + 1) : NULL;
	if (err == 0 && buf == NULL)
		err = -ENOMEM;
	if (err == 0 && size > 0)
		err = log_io_pread(io, file, buf, (uint32_t)size, 0);
	log_io_file_close(io, file);
	if (err == 0 && kind_type(kind) == RECOVERY_FILE_SEGMENT && size == segment_size)
		segment_write(out, first, kind, buf, size);
	else if (err == 0 && kind_type(kind) == RECOVERY_FILE_SEGMENT)
		piece_write(out, first, kind | RECOVERY_FILE_SEGMENT_SHORT << 4, 0, buf, size);
	else if (err == 0)
		piece_write(out, first, kind, 0, buf, size);
	free(buf);
	return err;
}

int
recovery_files_dump(struct log_io *io, uint64_t segment_size, FILE *out)
{
	struct recovery_names names = { .count = 0 };
	bool first = true;
	int err;

	if (segment_size > 256u * LOG_BLOCK_SIZE)
		return -ERANGE;
	err = log_io_dir_list(io, names_add, &names);
	for (uint32_t i = 0; i < names.count && err == 0; i++)
		err = file_dump(io, segment_size, names.names[i], out, &first);
	return err;
}
