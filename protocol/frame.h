/*
 * frame.h - the record-frame wire protocol: the only header other folders include.
 *
 * Producers send RECORDS frames to the ingest port over UDP (one datagram
 * carries one or more whole frames) or TCP (frames are a byte stream); the
 * appliance answers each batch with one ACK or NACK frame. docs/PROTOCOL.md
 * is the specification; the tables below are the same layout.
 *
 * This module is pure: no I/O, no allocation, no DPDK types, no clock (time
 * is passed in). Decoders work over a caller's byte span, never read past it
 * and return a specific enum frame_err for every malformed or lying length.
 * Encoders write into a caller's buffer and refuse what does not fit.
 *
 * Threads: no shared state; every object belongs to its caller.
 * Errors: decoders return enum frame_err (FRAME_OK is 0) because callers
 *   count refusals per cause; other functions return 0 or a negative errno.
 *
 * ---------------------------------------------------------------------------
 * Byte order: every integer is LITTLE-ENDIAN, except the 16-byte hash keys,
 * which are big-endian (the MD5 digest order, as Kinesis reads them).
 * No field is aligned; decoders load with memcpy.
 *
 * Frame header (all types), FRAME_HEADER_SIZE = 16 bytes:
 *
 *   OFFSET  SIZE  FIELD
 *        0     4  magic        FRAME_MAGIC: bytes 'S' 'L' 'U' 'C'
 *        4     4  crc32c       CRC-32C (common/crc32c.h) of bytes 8 .. frame_size
 *        8     4  frame_size   whole frame, header and trailer included,
 *                              FRAME_HEADER_SIZE .. FRAME_SIZE_MAX
 *       12     1  version      FRAME_VERSION (1)
 *       13     1  type         enum frame_type
 *       14     2  flags        FRAME_F_*; bits not defined for the type must be 0
 *
 *   flags   bits 0-1  ack mode   RECORDS: which ACK the producer wants
 *                                (enum frame_ack_mode); ACK: which one this is
 *                                (RECEIVED or DURABLE); NACK: 0
 *           bit  2    FRAME_F_AUTH       an auth trailer ends the frame
 *           bit  3    FRAME_F_DUPLICATE  ACK only: replayed from the dedup window
 *           bit  4    FRAME_F_NO_DETAIL  ACK only: stored, but the per-record
 *                                        (shard, seq) detail is no longer known
 *
 * RECORDS body (type 1), from offset 16:
 *
 *       16     8  producer_id       0: anonymous (no dedup, no retries)
 *       24     8  batch_seq         per (producer_id, epoch), chosen by the producer
 *       32     4  producer_epoch    a newer epoch fences the older ones
 *       36     2  record_count      1 .. FRAME_RECORDS_MAX
 *       38     1  stream_name_size  1 .. SLUICE_STREAM_NAME_SIZE_MAX
 *       39     1  reserved          0
 *       40     n  stream_name       [a-zA-Z0-9_.-]+, not NUL-terminated
 *     40+n     *  record_count records, back to back:
 *
 *   Record:
 *        0     1  record_flags      bits 0-1: enum frame_hash_kind; bits 2-7: 0
 *        1     1  key_size_m1       partition key size - 1 (keys are 1 .. 256 bytes)
 *        2     4  data_size         0 .. SLUICE_RECORD_DATA_SIZE_MAX - key size
 *        6    16  hash_key          only when hash kind != NONE; big-endian
 *        *     k  partition_key     valid UTF-8 (no overlongs, no surrogates)
 *        *     d  data              opaque
 *
 * SHARD_RECORDS body (type 4): a batch whose records all belong to one shard,
 * in the log's own record encoding so that a worker appends the block to a
 * log batch with one copy. From offset 16, as RECORDS up to the name, then:
 *
 *     40+n     4  shard_index       the shard (of the producer's map) the records are for
 *     44+n     *  record block      record_count records in common/record_wire.h's
 *                                   encoding, each with arrival_delta 0 (one byte 00)
 *   end-16c  16c  hash_keys         each record's hash key, big-endian, in record order:
 *                                   its explicit hash key (which it then also carries,
 *                                   flag bit 0), or MD5(partition key) (trusted, as
 *                                   hash kind MD5)
 *   A receiver takes the batch only into that shard, while it is open and
 *   owns every record's hash key: a closed or unknown shard is NACKed
 *   WRONG_SHARD (the map moved), a hash key outside the open shard's range
 *   MALFORMED (record_index names the record).
 *
 * ACK (type 2) and NACK (type 3) body, from offset 16:
 *
 *       16     8  producer_id       echoed from the batch
 *       24     8  batch_seq         echoed
 *       32     4  producer_epoch    echoed
 *       36     1  status            enum frame_status: ACK OK only; NACK never OK
 *       37     1  reserved          0
 *       38     2  record_count      records in the batch (0 .. FRAME_RECORDS_MAX)
 *       40     2  record_index      NACK: first offending record, 0xFFFF: the batch
 *                                   (FRAME_RECORD_INDEX_NONE); ACK: 0xFFFF
 *       42     2  run_count         DURABLE ACK with detail: >= 1, the runs cover
 *                                   exactly record_count records; otherwise 0
 *       44     4  credit_size       frame bytes the producer may keep unacknowledged
 *                                   (UDP pacing hint); 0xFFFFFFFF: no limit
 *       48     4  retry_after_ms    NACK THROTTLED/INTERNAL: wait at least this; else 0
 *       52     4  reserved          0
 *       56  16*r  runs
 *       56    24  redirect          NACK NOT_LEADER only (and always), instead of runs:
 *
 *   Redirect (FRAME_REDIRECT_SIZE = 24): who leads the shard the batch is for.
 *        0     4  shard_index       the shard whose leader this names
 *        4     1  family            4: IPv4 (address in bytes 8 .. 11); 6: IPv6
 *        5     1  reserved          0
 *        6     2  port              the leader's ingest port (UDP and TCP)
 *        8    16  address           network byte order; IPv4 leaves 12 .. 23 zero
 *
 *   Run (FRAME_ACK_RUN_SIZE = 16): `count` consecutive records of the batch
 *   (in frame order) stored in one shard with consecutive sequence numbers.
 *        0     8  seq_first         sequence number of the run's first record
 *        8     4  shard_index       shard of the stream ("shardId-%012u")
 *       12     2  count             1 .. FRAME_RECORDS_MAX
 *       14     2  reserved          0
 *
 * Auth trailer (any type, when FRAME_F_AUTH), the last FRAME_AUTH_SIZE = 48 bytes:
 *
 *        0     4  key_id            names the producer's key
 *        4     4  reserved          0
 *        8     8  timestamp_ms      Unix time of signing, milliseconds
 *       16    32  tag               HMAC-SHA256(key, bytes 8 .. frame_size - 32)
 *
 *   The tag covers everything after the CRC field up to itself; the CRC
 *   covers the tag. A receiver checks the CRC first (cheap, catches
 *   corruption), then the tag, then |now - timestamp_ms| <= its replay
 *   window. Replays inside the window are caught by the dedup window.
 * ---------------------------------------------------------------------------
 */
#ifndef SLUICE_FRAME_H
#define SLUICE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

struct frame_auth_key;

#define FRAME_MAGIC 0x43554C53u         /* "SLUC" read little-endian. */
#define FRAME_VERSION 1
#define FRAME_HEADER_SIZE 16u
#define FRAME_RECORDS_HEADER_SIZE 40u   /* Header + RECORDS body up to the stream name. */
#define FRAME_RECORD_HEADER_SIZE 6u     /* Without the optional hash key. */
#define FRAME_SHARD_INDEX_SIZE 4u       /* SHARD_RECORDS: after the stream name. */
#define FRAME_HASH_KEY_SIZE 16u
#define FRAME_ACK_HEADER_SIZE 56u       /* Header + ACK/NACK body up to the runs. */
#define FRAME_ACK_RUN_SIZE 16u
#define FRAME_REDIRECT_SIZE 24u         /* A NOT_LEADER NACK's block after the fixed fields. */
#define FRAME_REDIRECT_ADDR_SIZE 16u
#define FRAME_AUTH_SIZE 48u
#define FRAME_AUTH_TAG_SIZE 32u
#define FRAME_AUTH_KEY_SIZE_MIN 16u
#define FRAME_AUTH_KEY_SIZE_MAX 64u     /* One SHA-256 block: the key is used as is. */
/* Accepted |now - signing time| of a tag, default (sluiced; SigV4's clock window). */
#define FRAME_AUTH_WINDOW_MS 300000u

/* Records in one batch (Kinesis PutRecords allows 500). */
#define FRAME_RECORDS_MAX 500u
/* Any frame: one largest record with a longest key and name fits, with room to spare. */
#define FRAME_SIZE_MAX (SLUICE_RECORD_DATA_SIZE_MAX + 4096u)
/* Largest ACK: one run per record, plus an auth trailer. */
#define FRAME_ACK_SIZE_MAX \
	(FRAME_ACK_HEADER_SIZE + FRAME_RECORDS_MAX * FRAME_ACK_RUN_SIZE + FRAME_AUTH_SIZE)
_Static_assert(FRAME_REDIRECT_SIZE <= FRAME_RECORDS_MAX * FRAME_ACK_RUN_SIZE,
	      "a redirect NACK fits wherever an ACK does");
#define FRAME_RECORD_INDEX_NONE 0xFFFFu
#define FRAME_CREDIT_UNLIMITED 0xFFFFFFFFu

enum frame_type {
	FRAME_TYPE_RECORDS = 1,
	FRAME_TYPE_ACK = 2,
	FRAME_TYPE_NACK = 3,
	FRAME_TYPE_SHARD_RECORDS = 4,  /* RECORDS for one shard, in the log's encoding. */
};

enum frame_ack_mode {
	FRAME_ACK_NONE = 0,     /* Fire and forget: no answer, not even a NACK. */
	FRAME_ACK_RECEIVED = 1, /* ACK once accepted; sequence numbers not yet known. */
	FRAME_ACK_DURABLE = 2,  /* ACK once durable, with every record's (shard, seq). */
};

#define FRAME_F_ACK_MODE_MASK 0x0003u
#define FRAME_F_AUTH 0x0004u
#define FRAME_F_DUPLICATE 0x0008u
#define FRAME_F_NO_DETAIL 0x0010u

enum frame_hash_kind {
	FRAME_HASH_NONE = 0,     /* The appliance computes MD5(partition key). */
	FRAME_HASH_EXPLICIT = 1, /* Kinesis ExplicitHashKey: routes instead of the MD5. */
	FRAME_HASH_MD5 = 2,      /* MD5(partition key) computed by the producer (trusted). */
};

/* Batch outcome on the wire (ACK/NACK status byte). */
enum frame_status {
	FRAME_STATUS_OK = 0,
	FRAME_STATUS_UNKNOWN_STREAM = 1,
	FRAME_STATUS_RECORD_TOO_LARGE = 2,
	FRAME_STATUS_MALFORMED = 3,
	FRAME_STATUS_AUTH_FAILED = 4,     /* Missing, unknown key, bad tag or stale timestamp. */
	FRAME_STATUS_THROTTLED = 5,       /* Full: not stored; retry after retry_after_ms. */
	FRAME_STATUS_INTERNAL = 6,        /* Not stored (e.g. log error); retryable. */
	FRAME_STATUS_STALE_EPOCH = 7,     /* A newer epoch of this producer id exists. */
	FRAME_STATUS_SEQUENCE_OLD = 8,    /* Older than the dedup window: outcome unknown. */
	FRAME_STATUS_WRONG_SHARD = 9,     /* SHARD_RECORDS for a shard not open: the map moved. */
	FRAME_STATUS_NOT_LEADER = 10,     /* Cluster: another node leads the shard; the NACK
					   * names it (struct frame_redirect). Not stored. */
	FRAME_STATUS_SPLIT_LEADERS = 11,  /* Cluster: a RECORDS frame's records go to shards
					   * led by different nodes. Not stored. */
	FRAME_STATUS_COUNT_ = 12,
};

/* True for statuses a producer retries with the same batch_seq (not stored). */
bool frame_status_retryable(enum frame_status status);
/* "ok", "unknown_stream", ...: stable names for logs, metrics and the CLI. */
const char *frame_status_str(enum frame_status status);

/* Decode results: 0 is success; each refusal has its own code (for counters). */
enum frame_err {
	FRAME_OK = 0,
	FRAME_ERR_TRUNCATED,          /* Span ends before the frame does (TCP: read more). */
	FRAME_ERR_MAGIC,
	FRAME_ERR_VERSION,
	FRAME_ERR_FRAME_SIZE,         /* Below the type's minimum, above FRAME_SIZE_MAX. */
	FRAME_ERR_TRAILING,           /* Span longer than frame_size (decode wants one frame). */
	FRAME_ERR_CRC,
	FRAME_ERR_TYPE,               /* Unknown type, or not the type the caller decodes. */
	FRAME_ERR_FLAGS,              /* Undefined bit, or bad ack mode for the type. */
	FRAME_ERR_RESERVED,           /* A reserved field is not zero. */
	FRAME_ERR_RECORD_COUNT,       /* 0, or above FRAME_RECORDS_MAX. */
	FRAME_ERR_STREAM_NAME,        /* Size 0, or a byte outside [a-zA-Z0-9_.-]. */
	FRAME_ERR_RECORD_FLAGS,       /* Undefined hash kind or record flag bit. */
	FRAME_ERR_RECORD_TRUNCATED,   /* A record's sizes run past the body. */
	FRAME_ERR_RECORD_TOO_LARGE,   /* key + data above SLUICE_RECORD_DATA_SIZE_MAX. */
	FRAME_ERR_KEY_UTF8,
	FRAME_ERR_BODY_SIZE,          /* Records (or runs) end before the body does. */
	FRAME_ERR_STATUS,             /* Unknown status, or OK in a NACK / not OK in an ACK. */
	FRAME_ERR_RUNS,               /* Run counts do not sum to record_count, zero count,
				       * sequence overflow, or runs where none may be. */
	FRAME_ERR_RECORD_INDEX,       /* NACK index past record_count; ACK index not NONE. */
	FRAME_ERR_AUTH_MISSING,       /* frame_auth_verify() on a frame without a trailer. */
	FRAME_ERR_AUTH_TAG,
	FRAME_ERR_AUTH_STALE,         /* Timestamp outside the replay window. */
	FRAME_ERR_GROUPED_RECORD,     /* SHARD_RECORDS: a record not in the log's encoding,
				       * an arrival delta not 0, or a hash key that is not
				       * the record's explicit hash key. */
	FRAME_ERR_COUNT_,
};

/* Stable snake_case name of an error ("truncated", "crc", ...). */
const char *frame_err_str(enum frame_err err);
/* The NACK status a receiver answers a decode refusal with. */
enum frame_status frame_err_status(enum frame_err err);

/* ---------------------------------------------------------------- framing */

/*
 * Finds the frame starting at bytes[0]. Reads only the 16-byte header (or
 * what of it is present) and checks magic, version and frame_size bounds.
 *
 *   FRAME_OK             a whole frame is present: *frame_size_out bytes.
 *   FRAME_ERR_TRUNCATED  *need_size_out more bytes are needed before the
 *                        frame is whole (TCP: keep reading; UDP: drop).
 *   anything else        the stream is not framed: close the connection.
 *
 * A prefix of fewer than 16 bytes is checked as far as it goes (a wrong
 * first magic byte is refused at once). The CRC is not checked here.
 */
enum frame_err frame_next(const void *bytes, size_t size, uint32_t *frame_size_out,
			  uint32_t *need_size_out);

struct frame_header {
	uint32_t frame_size;
	uint8_t version;
	uint8_t type;          /* enum frame_type */
	uint16_t flags;
};

/*
 * Checks one whole frame of exactly `size` bytes: header fields, size and
 * CRC. Type-specific decoders call it first; a receiver calls it to learn
 * the type before dispatching.
 */
enum frame_err frame_header_decode(const void *bytes, size_t size, struct frame_header *out);

/* ------------------------------------------------------------ RECORDS */

/* One record, as encoded by the producer or yielded by the iterator (no copies). */
struct frame_record {
	const uint8_t *key;        /* Partition key, key_size bytes of UTF-8. */
	const uint8_t *hash_key;   /* 16 big-endian bytes, NULL when hash_kind is NONE. */
	const uint8_t *data;
	uint32_t data_size;
	uint16_t key_size;         /* 1 .. SLUICE_PARTITION_KEY_SIZE_MAX */
	uint8_t hash_kind;         /* enum frame_hash_kind */
};

/* A decoded RECORDS or SHARD_RECORDS frame: pointers into the caller's bytes. */
struct frame_records {
	uint64_t producer_id;
	uint64_t batch_seq;
	uint32_t producer_epoch;
	uint16_t record_count;
	uint16_t flags;               /* FRAME_F_*; ack mode in the low bits. */
	const char *stream_name;      /* Not NUL-terminated. */
	uint8_t stream_name_size;
	bool identity_valid;          /* producer_id .. record_count were read (see decode). */
	bool all_hashed;              /* Every record carries a hash key: no MD5 needed. */
	bool shard_grouped;           /* SHARD_RECORDS: shard_index, hash_keys are set. */
	uint32_t shard_index;
	const uint8_t *hash_keys;     /* SHARD_RECORDS: 16 bytes per record, big-endian. */
	uint32_t records_size;        /* Bytes of all records (the record block). */
	uint32_t data_size_total;     /* Sum of the records' data sizes. */
	const uint8_t *records;       /* First record. */
	const uint8_t *auth;          /* The trailer, or NULL. */
	const uint8_t *frame;         /* The frame itself, frame_size bytes. */
	uint32_t frame_size;
	/* Receiver: the key its tag verified under (decode leaves NULL); answers sign with it. */
	const struct frame_auth_key *verified_key;
};

/*
 * Decodes and fully validates one RECORDS or SHARD_RECORDS frame of exactly
 * `size` bytes (framing, CRC, every record's sizes, flags and key UTF-8), so
 * that the iterator below needs no checks. A batch is accepted or refused whole.
 * Does not verify the auth tag: see frame_auth_verify().
 *
 * On a refusal after the fixed body was read, out->identity_valid is true
 * and producer_id, batch_seq, producer_epoch and record_count hold the
 * batch's identity, so the receiver can NACK it; otherwise it is false.
 * Cost: one CRC pass plus one pass over the record headers and keys.
 */
enum frame_err frame_records_decode(const void *bytes, size_t size, struct frame_records *out);

static inline enum frame_ack_mode
frame_records_ack_mode(const struct frame_records *records)
{
	return (enum frame_ack_mode)(records->flags & FRAME_F_ACK_MODE_MASK);
}

struct frame_record_iter {
	const uint8_t *next;
	const uint8_t *hash_next;  /* SHARD_RECORDS: the next record's hash key; else NULL. */
	const uint8_t *end;        /* SHARD_RECORDS: the record block's end. */
	uint32_t left;             /* Records not yet yielded. */
};

void frame_record_iter_init(struct frame_record_iter *iter, const struct frame_records *records);
/*
 * Yields the next record (pointers into the frame); false after the last.
 * A SHARD_RECORDS record comes with hash kind EXPLICIT or MD5 and its key.
 */
bool frame_record_iter_next(struct frame_record_iter *iter, struct frame_record *record_out);

/* Bytes one record takes in a frame. Sizes must be within the limits. */
uint32_t frame_record_encoded_size(uint16_t key_size, uint8_t hash_kind, uint32_t data_size);

/* Checks a stream name ([a-zA-Z0-9_.-], 1 .. 128 bytes). */
bool frame_stream_name_valid(const char *name, size_t size);
/* Checks strict UTF-8 (what decode requires of partition keys). */
bool frame_utf8_valid(const uint8_t *bytes, size_t size);

/* ------------------------------------------------------------- encoding */

struct frame_batch_params {
	uint64_t producer_id;
	uint64_t batch_seq;
	uint32_t producer_epoch;
	uint8_t ack_mode;          /* enum frame_ack_mode */
	bool auth;                 /* Reserve the auth trailer (sign with frame_auth_sign). */
	bool shard_grouped;        /* Write SHARD_RECORDS for shard_index: every record
				    * must come with hash kind MD5 or EXPLICIT. */
	uint32_t shard_index;
	const char *stream_name;
	uint8_t stream_name_size;
};

/* A RECORDS frame being written into a caller's buffer. */
struct frame_writer {
	uint8_t *buf;
	uint32_t capacity;         /* min(buffer size, FRAME_SIZE_MAX) */
	uint32_t size;             /* Bytes written so far (header + records). */
	uint32_t reserve;          /* Trailer bytes kept free. */
	uint16_t record_count;
	bool shard_grouped;
	bool finished;
};

/*
 * Starts a batch in buf[0 .. capacity). Returns 0; -EINVAL for a bad
 * stream name or ack mode; -ENOSPC if even an empty batch does not fit.
 */
int frame_writer_begin(struct frame_writer *writer, void *buf, size_t capacity,
		       const struct frame_batch_params *params);

/*
 * Appends one record (copied). Returns 0; -EINVAL for a key that is empty,
 * longer than 256 bytes or not UTF-8, a bad hash kind (in SHARD_RECORDS: NONE),
 * or key + data above SLUICE_RECORD_DATA_SIZE_MAX; -ENOSPC when the record does not fit in the
 * remaining capacity or the batch already has FRAME_RECORDS_MAX records
 * (the writer is unchanged: finish this batch, start another).
 */
int frame_writer_add(struct frame_writer *writer, const struct frame_record *record);

/*
 * Bytes `record` would add to the frame being written: its encoding in the
 * writer's frame type (SHARD_RECORDS: with its hash key entry). The record's
 * sizes must be within the limits.
 */
uint32_t frame_writer_record_size(const struct frame_writer *writer,
				  const struct frame_record *record);

/*
 * Writes the record count and frame size and seals the frame with its CRC
 * (with a zeroed trailer if auth was reserved: call frame_auth_sign next).
 * Returns the frame size, or -EINVAL for an empty batch.
 */
int frame_writer_finish(struct frame_writer *writer);

/*
 * Renumbering prepared frames: a load generator sends each of a few prepared frames
 * many times, each time as a new batch_seq. CRC-32C is affine in the message bits, so
 * among frames of one size, changing batch_seq changes the CRC by a linear function of
 * the changed bits: a table per byte of batch_seq makes the new CRC without reading
 * the frame (a full CRC of a 1,400-byte frame cost the generator a fifth of its CPU).
 */
struct frame_renumber {
	uint32_t frame_size;
	uint32_t crc_delta[8][256];     /* Byte j of batch_seq xored with v: the CRC's change. */
};

/* Tables for frames of `frame_size` bytes (no allocation): 0, or -EINVAL (too small or large). */
int frame_renumber_init(struct frame_renumber *r, uint32_t frame_size);

/*
 * Renumbers a finished, unsigned RECORDS or SHARD_RECORDS frame of the tables' size as
 * batch `batch_seq`, its CRC kept right. -EINVAL for anything else (a signed frame would
 * need signing again).
 */
int frame_renumber(const struct frame_renumber *r, void *frame, uint32_t frame_size,
		   uint64_t batch_seq);

/* ---------------------------------------------------------- ACK / NACK */

struct frame_ack_run {
	uint64_t seq_first;
	uint32_t shard_index;
	uint16_t count;
};

/* A NOT_LEADER NACK's leader: where the shard's frames go instead. */
struct frame_redirect {
	uint32_t shard_index;
	uint8_t family;            /* 4 or 6 */
	uint16_t port;
	uint8_t addr[FRAME_REDIRECT_ADDR_SIZE]; /* Network byte order; IPv4 in the first 4. */
};

/* An ACK or NACK, to encode or as decoded (runs then point into the frame). */
struct frame_ack {
	uint64_t producer_id;
	uint64_t batch_seq;
	uint32_t producer_epoch;
	uint32_t credit_size;
	uint32_t retry_after_ms;
	uint16_t flags;            /* ACK: ack mode | FRAME_F_DUPLICATE | FRAME_F_NO_DETAIL */
	uint16_t record_count;
	uint16_t record_index;
	uint16_t run_count;
	uint8_t type;              /* FRAME_TYPE_ACK or FRAME_TYPE_NACK */
	uint8_t status;            /* enum frame_status */
	/* Encode: the caller's runs. Decode: NULL; use frame_ack_run_get(). */
	const struct frame_ack_run *runs;
	const uint8_t *runs_wire;  /* Decode: the runs' bytes in the frame. */
	struct frame_redirect redirect; /* status FRAME_STATUS_NOT_LEADER only. */
	const uint8_t *auth;       /* Decode: the trailer, or NULL. */
	/* Encode: sign with this key at sign_time_ms (the answer to a signed frame), or NULL. */
	const struct frame_auth_key *sign_key;
	uint64_t sign_time_ms;
};

/*
 * Encodes an ACK or NACK into buf (FRAME_ACK_SIZE_MAX always suffices).
 * `auth` reserves a trailer to sign afterwards; with ack->sign_key the frame
 * is signed here (docs/PROTOCOL.md section 7, "Signed answers"). Returns the frame size;
 * -ENOSPC if it does not fit; -EINVAL when the fields break the rules of
 * the table above (e.g. runs not summing to record_count). Checked with
 * the decoder's rules, so whatever encodes, decodes.
 */
int frame_ack_encode(void *buf, size_t capacity, const struct frame_ack *ack, bool auth);

/*
 * Starts the answer to a decoded batch: identity, record_count, credit, no
 * runs. `type` FRAME_TYPE_ACK (status OK; flags = the batch's ack mode) or
 * FRAME_TYPE_NACK (status not OK). Works on a batch refused after its
 * identity was read (records->identity_valid).
 */
void frame_ack_prepare(struct frame_ack *ack_out, const struct frame_records *records,
		       uint8_t type, uint8_t status, uint32_t credit_size);

/*
 * Appends the next record's (shard, seq), in frame order, to `runs` (room for
 * FRAME_RECORDS_MAX), extending the last run when the record continues it.
 */
void frame_ack_run_add(struct frame_ack_run *runs, uint16_t *run_count, uint32_t shard_index,
		       uint64_t seq);

/* Decodes one whole ACK or NACK frame of exactly `size` bytes. */
enum frame_err frame_ack_decode(const void *bytes, size_t size, struct frame_ack *out);

/* Run `index` (< run_count) of a decoded ACK. */
void frame_ack_run_get(const struct frame_ack *ack, uint16_t index, struct frame_ack_run *run_out);

/* ------------------------------------------------------------------ auth */

struct frame_auth_key {
	uint32_t key_id;
	uint8_t key_size;          /* FRAME_AUTH_KEY_SIZE_MIN .. FRAME_AUTH_KEY_SIZE_MAX */
	uint8_t key[FRAME_AUTH_KEY_SIZE_MAX];
};

/*
 * Fills the trailer of a finished frame (FRAME_F_AUTH set) with the key id,
 * timestamp and tag, then rewrites the CRC. Re-signing a frame (a retry
 * after the replay window) changes only the trailer and the CRC.
 * Allocation-free (SHA-256 via OpenSSL's block functions).
 */
void frame_auth_sign(void *frame, uint32_t frame_size, const struct frame_auth_key *key,
		     uint64_t timestamp_ms);

/* The key id of a frame's trailer; false when it has none. frame_header_decode() first. */
bool frame_auth_key_id(const void *frame, uint32_t frame_size, uint32_t *key_id_out);

/*
 * Verifies a decoded frame's tag under `key` and that its timestamp lies
 * within window_ms of now_ms. FRAME_OK, FRAME_ERR_AUTH_MISSING,
 * FRAME_ERR_AUTH_TAG (also for a key id other than key->key_id) or
 * FRAME_ERR_AUTH_STALE. Constant-time tag comparison.
 */
enum frame_err frame_auth_verify(const void *frame, uint32_t frame_size,
				 const struct frame_auth_key *key, uint64_t now_ms,
				 uint64_t window_ms);

/* ---------------------------------------------------------- dedup window */

/*
 * Per-producer memory of recent batches, embedded by the receiver (one per
 * producer id it tracks). Pure and allocation-free: the receiver owns the
 * table of producers and their eviction.
 *
 * Semantics (docs/PROTOCOL.md, "Exactly-once retries"): the window holds the
 * FRAME_DEDUP_WINDOW highest batch_seqs seen under the current epoch.
 *   - epoch older than the current one            -> STALE_EPOCH (NACK)
 *   - epoch newer                                 -> window reset, NEW
 *   - seq in the window, batch being stored       -> PENDING (drop; its ACK follows)
 *   - seq in the window, batch stored             -> DONE (resend its ACK)
 *   - seq in the window, failed partly stored     -> DONE (resend its NACK)
 *   - seq in the window, never seen or aborted    -> NEW
 *   - seq above the window                        -> NEW (the window slides)
 *   - seq below the window                        -> TOO_OLD (NACK SEQUENCE_OLD)
 * A producer keeps all its unacknowledged batches within FRAME_DEDUP_WINDOW
 * consecutive seqs, so a retry always finds its batch in the window.
 */
#define FRAME_DEDUP_WINDOW 8u
/* Runs kept per stored batch; a batch with more keeps only its outcome. */
#define FRAME_DEDUP_RUNS_MAX 16u

enum frame_dedup_state {
	FRAME_DEDUP_EMPTY = 0,
	FRAME_DEDUP_STORING = 1,
	FRAME_DEDUP_STORED = 2,
};

struct frame_dedup_entry {
	uint64_t batch_seq;
	uint8_t state;             /* enum frame_dedup_state */
	uint8_t ack_mode;          /* What the original ACK was (RECEIVED or DURABLE). */
	uint16_t record_count;
	uint16_t run_count;        /* 0 with a DURABLE ack: detail did not fit. */
	uint8_t status;            /* OK; else the NACK replayed (frame_dedup_fail). */
	struct frame_ack_run runs[FRAME_DEDUP_RUNS_MAX];
};

struct frame_dedup {
	uint64_t producer_id;
	uint64_t seq_high;         /* Highest batch_seq accepted (valid if any_seq). */
	uint32_t epoch;
	bool any_seq;
	bool key_bound;            /* A signed frame used this id: only key_id may go on. */
	uint32_t key_id;
	struct frame_dedup_entry entries[FRAME_DEDUP_WINDOW];   /* Slot: seq % WINDOW. */
};

enum frame_dedup_verdict {
	FRAME_DEDUP_NEW,           /* Store it; the entry is now STORING. */
	FRAME_DEDUP_PENDING,       /* Being stored: drop this copy. */
	FRAME_DEDUP_DONE,          /* Stored: answer with frame_dedup_ack() of *entry_out. */
	FRAME_DEDUP_STALE_EPOCH,
	FRAME_DEDUP_TOO_OLD,
};

void frame_dedup_init(struct frame_dedup *dedup, uint64_t producer_id);

/*
 * Binds the producer id to the key its first signed frame verified under (`key`:
 * the frame's verified key, NULL when unsigned), and then admits only frames
 * verified under that key id: false for another key, or an unsigned frame, once
 * bound (section 7: a holder of another key could else take the id over and fence
 * its producer with a newer epoch). Call before frame_dedup_check().
 */
bool frame_dedup_key_admits(struct frame_dedup *dedup, const struct frame_auth_key *key);

/*
 * Looks a batch up and, when it is NEW, reserves its entry (STORING).
 * *entry_out is set for PENDING and DONE, NULL otherwise.
 */
enum frame_dedup_verdict frame_dedup_check(struct frame_dedup *dedup, uint32_t epoch,
					   uint64_t batch_seq,
					   const struct frame_dedup_entry **entry_out);

/*
 * The batch is stored and `ack` (status OK) is its answer: remember it. No-op
 * when the entry has left the window or the epoch moved on.
 */
void frame_dedup_complete(struct frame_dedup *dedup, uint32_t epoch, const struct frame_ack *ack);

/* The batch was not stored (NACKed): forget it, so a retry is NEW. */
void frame_dedup_abort(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq);

/*
 * The batch failed after part of it was stored: a retry must not store that
 * part again, so the entry becomes DONE and frame_dedup_ack() replays a NACK
 * with `status` (SEQUENCE_OLD: outcome unknown). No-op as frame_dedup_complete().
 */
void frame_dedup_fail(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq,
		      uint16_t record_count, enum frame_status status);

/*
 * Rebuilds the ACK of a stored batch for a retransmit: flags get
 * FRAME_F_DUPLICATE, and FRAME_F_NO_DETAIL when the runs did not fit.
 * ack_out->runs points into the entry. A batch ended by frame_dedup_fail()
 * gets its NACK again instead (no flags, no runs).
 */
void frame_dedup_ack(const struct frame_dedup *dedup, const struct frame_dedup_entry *entry,
		     uint32_t credit_size, struct frame_ack *ack_out);

#endif /* SLUICE_FRAME_H */
