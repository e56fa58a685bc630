/*
 * replica_test_util.h - a test playing one side of the replication protocol by
 * hand (raw frames over a blocking socket), shared by the replica tests.
 */
#ifndef SLUICE_REPLICA_TEST_UTIL_H
#define SLUICE_REPLICA_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "nvme-log/log.h"
#include "replica/replica_wire.h"

/* Connects to a follower on 127.0.0.1 and sends raw bytes; returns the socket (caller closes). */
int raw_send(uint16_t port, const void *buf, size_t size);
/* Sends one control frame on `fd`. */
void raw_ctl(int fd, enum replica_msg type, uint64_t shard_id, uint64_t epoch, uint64_t seq);
/*
 * Sends one APPEND on `fd`: test_record_make's records of `content` for
 * [seq_first, seq_first + count), `data_size` bytes each.
 */
void raw_append(int fd, const struct replica_append *a, uint64_t content, uint32_t data_size);
/*
 * Reads one whole frame from a blocking socket into buf (60 s at most): its type
 * with *ctl set, or -1 at EOF. `wait_ms` >= 0: 0 when nothing came within it.
 */
int raw_frame(int fd, struct replica_buf *buf, struct replica_ctl *ctl);
int raw_frame_within(int fd, struct replica_buf *buf, struct replica_ctl *ctl, int wait_ms);
/* Adds test_record_make's records of `content` [seq_first, seq_first + count) to a batch. */
void raw_batch_fill(struct log_batch *b, uint64_t content, uint64_t seq_first, uint64_t count,
		    uint32_t data_size);
/* Asserts [from, to) of the shard reads as `content`'s records (test_record_make's). */
void raw_check_range(struct log *log, const char *name, uint64_t shard, uint64_t content,
		     uint32_t data_size, uint64_t from, uint64_t to);

#endif /* SLUICE_REPLICA_TEST_UTIL_H */
