/*
 * replica_wire.h - the replication protocol's frames (private to replica/).
 * Every integer is little-endian. A frame is a 16-byte header and a payload:
 *
 *   OFFSET  SIZE  FIELD
 *        0     4  magic     REPLICA_MAGIC ("SLRP")
 *        4     1  type      enum replica_msg
 *        5     1  version   REPLICA_VERSION
 *        6     2  hcheck    low 16 bits of crc32c over bytes 0..5 and 8..11: a damaged
 *                           length is refused at once, not waited for
 *        8     4  length    payload bytes, <= REPLICA_PAYLOAD_MAX
 *       12     4  crc32c    over bytes 0 .. 11 and the payload
 *
 * Messages (docs/CLUSTER.md, "Protocol"):
 *
 *   type         dir   payload
 *   LEAD         L->F  ctl { shard, epoch, 0 }        I lead the shard in epoch
 *   EPOCH_QUERY  F->L  ctl { shard, last_epoch, 0 }   where does my newest epoch end for you?
 *   EPOCH_END    L->F  ctl { shard, epoch, seq_end }  largest epoch <= asked, its end (Kafka's
 *                                                     OffsetsForLeaderEpoch answer)
 *   APPEND       L->F  append { shard, epoch, seq_first, watermark, records_epoch, count }
 *                     + count records: epoch is the sender's (fencing), records_epoch the
 *                     one the records were written in (the follower's epoch history);
 *                     count 0 only moves the watermark
 *   READY        F->L  ctl { shard, epoch, end }      handshake done: I match you below end
 *   ACK          F->L  ctl { shard, epoch, durable_end } everything below is durable here
 *   FENCED       F->L  ctl { shard, promised, 0 }     your epoch is older than one I promised
 *   START        L->F  ctl { shard, epoch, seq_start } my log starts at seq_start, above your
 *                                                     end (retention dropped the rest): start
 *                                                     yours there (Kafka's log start offset);
 *                                                     answered with an ACK of seq_start
 *
 * START came after version 1's first messages, under the same version: a build that
 * does not know it refuses it as a bad frame (the link resets), as it refuses any
 * unknown type; such a follower stays behind, as it did before START existed.
 * READY and ACK name the LEAD epoch they answer: after a new LEAD on a live link the
 * leader ignores answers to the old one.
 *
 *   record: { arrival_ns u64, data_size u32, key_size u16, flags u8 (1: explicit hash key),
 *             reserved u8 }, [16-byte explicit hash key], key, data
 */
#ifndef SLUICE_REPLICA_WIRE_H
#define SLUICE_REPLICA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "nvme-log/log.h"

#define REPLICA_MAGIC 0x50524c53u /* "SLRP" */
#define REPLICA_VERSION 1u
#define REPLICA_HEADER_SIZE 16u
#define REPLICA_REC_HEADER_SIZE 16u
#define REPLICA_REC_F_HASH_KEY 0x1u
#define REPLICA_APPEND_HEADER_SIZE 48u
/* An APPEND aims at this much record data, and holds at least one record of any size. */
#define REPLICA_APPEND_BYTES (256u << 10)
#define REPLICA_APPEND_RECORDS_MAX 1000u
#define REPLICA_PAYLOAD_MAX (REPLICA_APPEND_HEADER_SIZE + REPLICA_APPEND_BYTES + \
			     REPLICA_REC_HEADER_SIZE + 16u + SLUICE_PARTITION_KEY_SIZE_MAX + \
			     SLUICE_RECORD_DATA_SIZE_LARGE_MAX + \
			     REPLICA_APPEND_RECORDS_MAX * (REPLICA_REC_HEADER_SIZE + 16u + \
							   SLUICE_PARTITION_KEY_SIZE_MAX))
#define REPLICA_FRAME_SIZE_MAX (REPLICA_HEADER_SIZE + REPLICA_PAYLOAD_MAX)

enum replica_msg {
	REPLICA_MSG_LEAD = 1,
	REPLICA_MSG_EPOCH_QUERY = 2,
	REPLICA_MSG_EPOCH_END = 3,
	REPLICA_MSG_APPEND = 4,
	REPLICA_MSG_ACK = 5,
	REPLICA_MSG_FENCED = 6,
	REPLICA_MSG_READY = 7,
	REPLICA_MSG_START = 8,
};

struct replica_header {
	uint32_t magic;
	uint8_t type;
	uint8_t version;
	uint16_t hcheck;
	uint32_t length;
	uint32_t crc32c;
};

/* Every message but APPEND. */
struct replica_ctl {
	uint64_t shard_id;
	uint64_t epoch;
	uint64_t seq;
};

struct replica_append {
	uint64_t shard_id;
	uint64_t epoch;
	uint64_t seq_first;
	uint64_t watermark;        /* The leader's replicated watermark for the shard. */
	uint64_t records_epoch;    /* Epoch the records were written in (<= epoch). */
	uint32_t count;
	uint32_t reserved;
};

/* A byte buffer: bytes [head, tail) are pending (to send, or received and not parsed). */
struct replica_buf {
	uint8_t *data;
	size_t cap;
	size_t head;
	size_t tail;
};

int replica_buf_init(struct replica_buf *buf, size_t cap);
void replica_buf_fini(struct replica_buf *buf);
size_t replica_buf_room(struct replica_buf *buf);  /* Compacts first. */

/* Appends a control frame. -ENOBUFS without room (the caller resets the link). */
int replica_put_ctl(struct replica_buf *buf, enum replica_msg type, uint64_t shard_id,
		    uint64_t epoch, uint64_t seq);

/* An APPEND being built in a buffer (room for REPLICA_FRAME_SIZE_MAX checked first). */
struct replica_append_build {
	struct replica_buf *buf;
	size_t start;              /* Offset of its frame header. */
	struct replica_append a;
	uint64_t data_bytes;
};

void replica_append_begin(struct replica_append_build *b, struct replica_buf *buf,
			  const struct replica_append *a);
/* A log_read callback: adds one record (the buffer has room: see REPLICA_PAYLOAD_MAX). */
int replica_append_record(void *arg, const struct log_record_out *record);
void replica_append_end(struct replica_append_build *b);

/*
 * The next whole frame in buf: 1 (header and payload set, the frame consumed),
 * 0 (incomplete), -EBADMSG (bad magic, version, length or CRC: reset the link).
 */
int replica_frame_next(struct replica_buf *buf, struct replica_header *h, const uint8_t **payload);
int replica_ctl_parse(const uint8_t *payload, uint32_t length, struct replica_ctl *ctl);
/* Checks an APPEND's header and every record's bounds. -EBADMSG if anything is off. */
int replica_append_parse(const uint8_t *payload, uint32_t length, struct replica_append *a);

/* Walks an APPEND's records (after replica_append_parse succeeded). */
struct replica_rec_iter {
	const uint8_t *pos;
	const uint8_t *end;
};

void replica_rec_iter_init(struct replica_rec_iter *it, const uint8_t *payload, uint32_t length);
/* 1 and *out set, or 0 at the end. */
int replica_rec_next(struct replica_rec_iter *it, struct log_record_in *out);

/* ---- Sockets (replica_wire.c) -------------------------------------------- */

int replica_listen(const char *host, uint16_t port, int *fd_out, uint16_t *port_out);
/* Non-blocking connect: 0 (connected or in progress: wait for POLLOUT) or -errno. */
int replica_connect(const char *host, uint16_t port, int *fd_out);
/* After POLLOUT on a connecting socket: 0 when connected. */
int replica_connect_done(int fd);
/* Sends what is pending. 0 (maybe partly), or -errno when the link is broken. */
int replica_send(int fd, struct replica_buf *buf);
/* Reads what arrived (until full). 0, -ECONNRESET at end of stream, or -errno. */
int replica_recv(int fd, struct replica_buf *buf);

#endif /* SLUICE_REPLICA_WIRE_H */
