/*
 * recovery_files.h - a log directory as one fuzz input (fuzz_recovery.c) and
 * back (recovery_seeds.c): files of the simulated disk (nvme-log/log_io_sim.h)
 * given as byte patches, so that a 1 MiB segment holding a few batches is a
 * few hundred bytes of input.
 *
 * Input: pieces separated by RECOVERY_FILES_MARK; each piece is
 *
 *   OFFSET  SIZE  FIELD
 *        0     1  kind     bits 0..2: segment number; bits 4..5: file type (below)
 *        1     1  block    where the bytes go, in 4 KiB blocks from the file's start
 *        2     *  bytes    up to the next mark or the end of the input
 *
 *   TYPE  FILE                SIZE
 *      0  seg-<no>.log        segment_size (zeros where no piece wrote)
 *      1  seg-<no>.idx        up to its last byte written
 *      2  log.meta            up to its last byte written
 *      3  seg-<no>.log        up to its last byte written (a spare cut short,
 *                             or a segment of another size)
 *
 * Pieces shorter than 2 bytes are ignored; bytes past segment_size (or past
 * RECOVERY_FILE_SIZE_MAX for the other types) are cut. Later pieces write
 * over earlier ones.
 */
#ifndef SLUICE_TEST_RECOVERY_FILES_H
#define SLUICE_TEST_RECOVERY_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct log_config;
struct log_io;
struct log_key;

#define RECOVERY_FILES_MARK "SLCFILE:"
#define RECOVERY_FILES_MARK_SIZE 8u
#define RECOVERY_FILE_SIZE_MAX (1u << 20)   /* Index and meta files (a fuzz input is smaller). */

enum recovery_file_type {
	RECOVERY_FILE_SEGMENT = 0,
	RECOVERY_FILE_INDEX = 1,
	RECOVERY_FILE_META = 2,
	RECOVERY_FILE_SEGMENT_SHORT = 3,
};

/* Writes the input's files into the (empty) simulated disk `io`, durably. 0 or -errno. */
int recovery_files_load(struct log_io *io, uint64_t segment_size, const uint8_t *data,
			size_t size);
/*
 * Writes every file of `io` as pieces to `out` (non-zero 4 KiB blocks only, runs of
 * them as one piece, trailing zeros of a run cut). 0, or -errno; -ERANGE for a
 * file this format cannot name (segment number above 7, a segment past 1 MiB).
 */
int recovery_files_dump(struct log_io *io, uint64_t segment_size, FILE *out);

/*
 * The log both sides open: the seeds' writer and the fuzzed recovery (same
 * simulated disk seed, so a log.meta the writer made names the same log_id as
 * one recovery would create; same sizes, so recovery resumes what it resumed).
 */
#define RECOVERY_SIM_SEED 14u
#define RECOVERY_SEGMENT_SIZE (1u << 20)
#define RECOVERY_KEY_ID 77u
#define RECOVERY_SHARDS_MAX 64u

void recovery_config(struct log_config *config, struct log_io *io);
/* The key the seeds' encrypted stream uses (recovery installs it to read them back). */
void recovery_key(struct log_key *key);

#endif /* SLUICE_TEST_RECOVERY_FILES_H */
