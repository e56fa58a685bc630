/*
 * seqnum.h - Kinesis sequence numbers: decimal strings that encode a log
 * position. The layout is kinesalite's "version 2" (what AWS's numbers look
 * like), 47 hex digits read as one big integer, printed in decimal:
 *
 *   HEX DIGITS  SIZE  FIELD
 *        0        1   version marker, always 2
 *        1..9     9   shard creation time, epoch seconds
 *       10        1   low nibble of the shard index
 *       11..26   16   seq: the log's per-shard sequence number (<= 2^63 - 1)
 *       27..28    2   00
 *       29..37    9   record arrival time, epoch seconds
 *       38..45    8   shard index
 *       46        1   version, always 2
 *
 * Within a shard, everything above seq is constant, so numeric order is the
 * log's order. The value is below 2^188: at most 57 decimal digits.
 */
#ifndef SLUICE_CONTROL_SEQNUM_H
#define SLUICE_CONTROL_SEQNUM_H

#include <stddef.h>
#include <stdint.h>

/* 57 digits and the NUL. */
#define SEQNUM_DECIMAL_SIZE 58
/* Largest time that fits 9 hex digits. */
#define SEQNUM_TIME_MAX 0xfffffffffull
#define SEQNUM_SEQ_MAX 0x7fffffffffffffffull

struct seqnum {
	uint64_t shard_created_s;
	uint32_t shard_index;
	uint64_t seq;
	uint64_t put_s;
};

/* Writes the decimal form into `buf`; returns its length. Fields must be in range. */
size_t seqnum_format(const struct seqnum *sn, char buf[SEQNUM_DECIMAL_SIZE]);

/*
 * As seqnum_format(), given the previous number formatted (`prev`, its text
 * `prev_text` of `prev_size` digits): when `sn` is the same shard's next
 * seq with the same arrival second, as consecutive records mostly are, it
 * only adds 2^80 to the previous decimal text instead of converting.
 * `buf` may be `prev_text` (the addition works in place).
 */
size_t seqnum_format_next(const struct seqnum *prev, const char *prev_text, size_t prev_size,
			  const struct seqnum *sn, char buf[SEQNUM_DECIMAL_SIZE]);

/*
 * Parses a decimal sequence number of `size` bytes. Returns 0, or -EINVAL
 * for anything that is not a version-2 number this layout produced.
 */
int seqnum_parse(const char *text, size_t size, struct seqnum *sn_out);

/* A sequence number as a client sends it, read as AWS reads it (seqnum_parse_client). */
struct seqnum_client {
	int version;              /* 0, 1 or 2 */
	uint64_t shard_created_s;
	uint32_t shard_index;     /* 16 bits in version 0 */
	uint64_t seq;             /* Version 2 only: the log's sequence number. */
	uint64_t put_s;           /* Arrival time (0 in version 0). */
};

/* Version 0's creation times stop below this (kinesalite: "Date too large"). */
#define SEQNUM_V0_CREATED_MAX 16025175000ull

/*
 * Reads a client's sequence number as AWS does (kinesalite reproduces it): a
 * value below 2^124 has 2^124 added; below 2^129 it is version 0 (hex "1", 9
 * digits creation time, 2, 16, 4 digits shard index); between 2^185 and
 * 1.5 * 2^185 the last hex digit is the version: 2 (this layout, seq and shard
 * index below 2^63 and 2^31) or 1 (creation, 2, 9 digits arrival, 14, 2, 8
 * digits shard index). Returns 0; -EINVAL for anything else; -ERANGE for
 * version 3, which AWS's PutRecord answers with InternalFailure.
 */
int seqnum_parse_client(const char *text, size_t size, struct seqnum_client *c);

#endif /* SLUICE_CONTROL_SEQNUM_H */
