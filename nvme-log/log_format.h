/*
 * log_format.h - the on-disk format of the log: segment headers, record
 * batches, records and sealed-segment index files. Private to nvme-log/
 * (and its tests and tools through the public API only). Little-endian.
 *
 * A log directory holds:
 *
 *   seg-<16 hex digits>.log   segment files, preallocated and pre-written (zeros)
 *   seg-<16 hex digits>.idx   the sparse index of a sealed segment
 *   log.meta                  log identity, retention, closed shards, deleted streams
 *
 * Segment file (segment_size bytes, O_DIRECT, 4 KiB blocks):
 *
 *   OFFSET  SIZE  FIELD
 *        0  4096  segment header block (table below), zeros past byte 64
 *     4096     *  group-commit windows, each starting on a 4 KiB boundary:
 *                 batches 8-byte aligned, zeros up to the next 4 KiB boundary
 *
 * Segment header (block 0):
 *
 *   OFFSET  SIZE  FIELD
 *        0     8  magic          LOG_SEGMENT_MAGIC ("SLCSEG01")
 *        8     4  crc32c         over bytes 12 .. 63
 *       12     4  version        LOG_FORMAT_VERSION
 *       16     8  log_id         random, from log.meta: a segment of another log is refused
 *       24     8  segment_no     never reused; also in every batch header
 *       32     8  commit_first   commit id of the first window in the segment
 *       40     8  segment_size   bytes of the file
 *       48     8  created_ns     wall clock at activation
 *       56     8  reserved       zero
 *
 * Record batch (header 64 bytes, then the records):
 *
 *   OFFSET  SIZE  FIELD            SET BY    COVERED BY
 *        0     4  magic            writer    (exact match)
 *        4     4  header_crc       writer    crc32c over bytes 8 .. 63
 *        8     8  base_seq         writer    header_crc
 *       16     8  shard_id         writer    header_crc
 *       24     8  commit_id        writer    header_crc
 *       32     4  segment_no       writer    header_crc (low 32 bits of the segment's)
 *       36     4  durable_lag      writer    header_crc: commit_id minus the newest commit
 *                                            durable when the window was submitted (0: none)
 *       40     4  flags            writer    header_crc (LOG_BATCH_F_*)
 *       44     4  body_crc         producer  header_crc; itself crc32c over 48 .. size
 *       48     4  size             producer  body_crc: header + records, unpadded
 *       52     4  record_count     producer  body_crc (0 only for marker batches)
 *       56     8  base_arrival_ns  producer  body_crc
 *       64     *  records
 *
 * As in Kafka's record batch v2, what the writer assigns at append time
 * (base_seq, commit_id, position) sits outside the body CRC, which the
 * producer computes on its own thread; the writer only checksums the 56
 * bytes of its header. The header CRC covers body_crc, so one check chain
 * covers every byte.
 *
 * Record (inside a batch, unaligned): the encoding of common/record_wire.h
 * (shared with shard-grouped frames, which a worker copies in whole):
 *
 *   FIELD               ENCODING (varints are LEB128 as in protobuf)
 *   arrival_delta       zigzag varint: arrival_ns - base_arrival_ns
 *   flags               1 byte: bit 0 = explicit hash key present; others zero
 *   partition_key_size  varint, 1 .. SLUICE_PARTITION_KEY_SIZE_MAX
 *   explicit_hash_key   16 bytes big-endian, only with flag bit 0
 *   partition_key       partition_key_size bytes
 *   data_size           varint, 0 .. SLUICE_RECORD_DATA_SIZE_LARGE_MAX
 *   data                data_size bytes
 *
 * Validity: magic, header_crc, size within bounds and within the span read,
 * body_crc, then record framing (exact fit, counts agree). Bad bytes are an
 * operating error (returned), never an assertion.
 *
 * Encrypted batch (flag LOG_BATCH_F_ENCRYPTED): bytes 64 .. size - 96 are the
 * records encrypted with AES-256-GCM (same length), followed by this trailer;
 * body_crc covers both, so recovery checks ciphertext without a key:
 *
 *   OFFSET  SIZE  FIELD            (from size - LOG_BATCH_TRAILER_SIZE)
 *        0     8  key_id           keyring key (struct log_key)
 *        8     4  key_version
 *       12     4  cipher           LOG_CIPHER_AES256_GCM_KW
 *       16    40  wrapped_key      the data key, AES key wrap (RFC 3394) under the key
 *       56    12  nonce            GCM IV: a per-data-key batch counter (LE), then 4 zeros
 *       68     4  reserved         zero
 *       72     8  arrival_max_ns   latest arrival in the batch (recovery's index entry)
 *       80    16  tag              GCM tag over the records
 *
 * GCM's additional data binds the ciphertext to its place and header:
 * shard_id, size, record_count, base_arrival_ns, the producer's flags, trailer 0 .. 79.
 * Record framing is checked once decrypted (log_batch_decrypt).
 */
#ifndef SLUICE_LOG_FORMAT_H
#define SLUICE_LOG_FORMAT_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/record_wire.h"
#include "nvme-log/log.h"

#define LOG_FORMAT_VERSION 1u
#define LOG_BLOCK_SIZE 4096u
#define LOG_SECTOR_SIZE 512u
#define LOG_BATCH_ALIGN 8u
#define LOG_SEGMENT_MAGIC 0x3130474553434c53ull /* "SLCSEG01" */
#define LOG_SEGMENT_HEADER_SIZE 64u
#define LOG_BATCH_MAGIC 0x54414253u /* "SBAT" */
#define LOG_BATCH_HEADER_SIZE 64u

/* Batch flags: the writer's, and the producer's (which the writer keeps). */
#define LOG_BATCH_F_WINDOW_LAST 0x1u /* Writer: last batch of its group-commit window. */
#define LOG_BATCH_F_ENCRYPTED 0x2u   /* Producer: records encrypted, trailer at the end. */
#define LOG_BATCH_F_PRODUCER LOG_BATCH_F_ENCRYPTED
#define LOG_BATCH_F_KNOWN (LOG_BATCH_F_WINDOW_LAST | LOG_BATCH_F_ENCRYPTED)


struct log_segment_header {
	uint64_t magic;
	uint32_t crc32c;
	uint32_t version;
	uint64_t log_id;
	uint64_t segment_no;
	uint64_t commit_first;
	uint64_t segment_size;
	uint64_t created_ns;
	uint64_t reserved;
};

struct log_batch_header {
	uint32_t magic;
	uint32_t header_crc;
	uint64_t base_seq;
	uint64_t shard_id;
	uint64_t commit_id;
	uint32_t segment_no;
	uint32_t durable_lag;
	uint32_t flags;
	uint32_t body_crc;
	uint32_t size;
	uint32_t record_count;
	uint64_t base_arrival_ns;
};

#define LOG_CIPHER_AES256_GCM_KW 1u
#define LOG_WRAPPED_KEY_SIZE 40u
#define LOG_NONCE_SIZE 12u
#define LOG_TAG_SIZE 16u
#define LOG_BATCH_TRAILER_SIZE 96u

struct log_batch_trailer {
	uint64_t key_id;
	uint32_t key_version;
	uint32_t cipher;
	uint8_t wrapped_key[LOG_WRAPPED_KEY_SIZE];
	uint8_t nonce[LOG_NONCE_SIZE];
	uint32_t reserved;
	uint64_t arrival_max_ns;
	uint8_t tag[LOG_TAG_SIZE];
};

/* Bytes of the trailer GCM authenticates as additional data (all but the tag). */
#define LOG_BATCH_TRAILER_AAD_SIZE 80u

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");
static_assert(sizeof(struct log_batch_trailer) == LOG_BATCH_TRAILER_SIZE, "on-disk layout");
static_assert(offsetof(struct log_batch_trailer, nonce) == 56, "on-disk layout");
static_assert(offsetof(struct log_batch_trailer, tag) == LOG_BATCH_TRAILER_AAD_SIZE,
	      "the tag follows what it authenticates");
static_assert(sizeof(struct log_segment_header) == LOG_SEGMENT_HEADER_SIZE, "on-disk layout");
static_assert(sizeof(struct log_batch_header) == LOG_BATCH_HEADER_SIZE, "on-disk layout");
static_assert(offsetof(struct log_batch_header, base_seq) == 8, "header_crc covers 8 .. 63");
static_assert(offsetof(struct log_batch_header, size) == 48, "body_crc covers 48 .. size");

/* Largest encoded size of one record (for room checks). */
uint32_t log_record_size_max(uint16_t partition_key_size, bool has_hash_key, uint32_t data_size);

/*
 * Appends one record at buf[0..]; `room` bytes are available. Returns the
 * encoded size, or -ENOSPC when it does not fit (nothing is written then).
 * The record must already be validated (log_record_validate).
 */
int log_record_encode(uint8_t *buf, uint32_t room, uint64_t base_arrival_ns,
		      const struct log_record_in *record);
/* 0 or -EINVAL: key size, data size and pointers within the documented bounds. */
int log_record_validate(const struct log_record_in *record);

/*
 * Producer side: fills size, record_count, base_arrival_ns, the producer's
 * flags (LOG_BATCH_F_PRODUCER) and body_crc.
 */
void log_batch_seal_body(uint8_t *batch, uint32_t size, uint32_t record_count,
			 uint64_t base_arrival_ns, uint32_t producer_flags);
/*
 * Writer side: fills magic, base_seq .. flags and header_crc (body_crc must be
 * set); keeps the producer's flags.
 */
void log_batch_seal_header(uint8_t *batch, uint64_t base_seq, uint64_t shard_id,
			   uint64_t commit_id, uint64_t segment_no, uint32_t durable_lag,
			   uint32_t flags);

/*
 * Checks the batch at buf[0 .. avail): magic, header CRC, size, body CRC,
 * record framing. Returns 0 and copies the header; -ENODATA when the bytes
 * are not a batch at all (zeros, wrong magic: the end of written data),
 * -EBADMSG when they claim to be one but do not check out (including a
 * size beyond `avail`).
 */
int log_batch_check(const uint8_t *buf, size_t avail, struct log_batch_header *header_out);

/* Walks the records of a checked batch. */
struct log_record_iter {
	const uint8_t *pos;
	const uint8_t *end;
	uint64_t seq;
	uint64_t base_arrival_ns;
	uint32_t left;
	bool encrypted;
};

/* Records of a checked (and, if encrypted, decrypted) batch. */
void log_record_iter_init(struct log_record_iter *iter, const uint8_t *batch);
/* Bytes of the batch holding records: after the header, before any trailer. */
uint32_t log_batch_records_end(const struct log_batch_header *header);
/* After decryption: the record framing fits the records exactly (0 or -EBADMSG). */
int log_batch_check_records(const uint8_t *batch);
/* 1 and fills *out; 0 at the end; -EBADMSG on bad framing. */
int log_record_iter_next(struct log_record_iter *iter, struct log_record_out *out);

void log_segment_header_encode(uint8_t *block, uint64_t log_id, uint64_t segment_no,
			       uint64_t commit_first, uint64_t segment_size, uint64_t created_ns);
/* 0, -ENODATA (not a segment header: a spare or torn activation), -EBADMSG (bad CRC/version). */
int log_segment_header_decode(const uint8_t *block, struct log_segment_header *out);

/*
 * Sealed-segment index file (seg-N.idx), written once when the segment is
 * sealed and replaced atomically (write tmp, fsync, rename, fsync dir):
 *
 *   OFFSET  SIZE  FIELD
 *        0     8  magic          LOG_INDEX_MAGIC ("SLCIDX01")
 *        8     4  crc32c         over bytes 12 .. end of file
 *       12     4  version
 *       16     8  log_id
 *       24     8  segment_no
 *       32     8  entry_count
 *       40     8  bytes_used     end of the last window (segment offset)
 *       48     *  entries (struct log_index_entry, 48 bytes each), in segment order
 *
 * An entry describes one batch of the sealed segment.
 */
#define LOG_INDEX_MAGIC 0x3130584449434c53ull /* "SLCIDX01" */
#define LOG_INDEX_HEADER_SIZE 48u

struct log_index_entry {
	uint64_t shard_id;
	uint64_t seq_first;
	uint64_t arrival_max_ns;   /* Latest arrival in the batch (for log_seek_time). */
	uint64_t commit_id;
	uint32_t offset;           /* Batch position in the segment. */
	uint32_t size;             /* Batch bytes, unpadded. */
	uint32_t record_count;
	uint32_t reserved;
};

static_assert(sizeof(struct log_index_entry) == 48, "on-disk layout");

#endif /* SLUICE_LOG_FORMAT_H */
