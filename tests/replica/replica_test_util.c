/*
 * replica_test_util.c - raw protocol frames for the replica tests (see the header).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "tests/nvme-log/log_test_util.h"
#include "tests/replica/replica_test_util.h"

#define RAW_WAIT_MS 60000
#define RAW_DATA_MAX 1024u

static void
raw_write(int fd, const void *buf, size_t size)
{
	cr_assert_eq(send(fd, buf, size, MSG_NOSIGNAL), (ssize_t)size);
}

int
raw_send(uint16_t port, const void *buf, size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (size > 0)
		raw_write(fd, buf, size);
	return fd;
}

void
raw_ctl(int fd, enum replica_msg type, uint64_t shard_id, uint64_t epoch, uint64_t seq)
{
	struct replica_buf out;

	cr_assert_eq(replica_buf_init(&out, 4096), 0);
	cr_assert_eq(replica_put_ctl(&out, type, shard_id, epoch, seq), 0);
	raw_write(fd, out.data, out.tail);
	replica_buf_fini(&out);
}

void
raw_append(int fd, const struct replica_append *a, uint64_t content, uint32_t data_size)
{
	struct replica_buf out;
	struct replica_append_build b;

	cr_assert_leq(data_size, RAW_DATA_MAX);
	cr_assert_eq(replica_buf_init(&out, REPLICA_FRAME_SIZE_MAX), 0);
	replica_append_begin(&b, &out, a);
	for (uint64_t seq = a->seq_first; seq < a->seq_first + a->count; seq++) {
		uint8_t data[RAW_DATA_MAX];
		char key[48];
		struct log_record_in in;
		struct log_record_out rec;

		test_record_make(content, seq, data_size, data, key, &in);
		rec = (struct log_record_out){ .seq = seq, .arrival_ns = in.arrival_ns,
					       .partition_key = in.partition_key,
					       .partition_key_size = in.partition_key_size,
					       .data = in.data, .data_size = in.data_size };
		cr_assert_eq(replica_append_record(&b, &rec), 0);
	}
	replica_append_end(&b);
	raw_write(fd, out.data, out.tail);
	replica_buf_fini(&out);
}

int
raw_frame_within(int fd, struct replica_buf *buf, struct replica_ctl *ctl, int wait_ms)
{
	struct replica_header h;
	const uint8_t *payload;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = replica_frame_next(buf, &h, &payload);
		size_t room;
		ssize_t n;

		if (rc == 1) {
			cr_assert_eq(replica_ctl_parse(payload, h.length, ctl), 0);
			return h.type;
		}
		cr_assert_eq(rc, 0);
		if (poll(&p, 1, wait_ms) == 0)
			return 0;
		/*
		 * Compacting moves the data and the tail: done before the tail is read (as a
		 * call argument, the order is the compiler's: clang read the old tail first and
		 * the next frame landed past the one just taken, which was read again).
		 */
		room = replica_buf_room(buf);
		n = recv(fd, buf->data + buf->tail, room, 0);
		if (n <= 0)
			return -1;
		buf->tail += (size_t)n;
	}
}

int
raw_frame(int fd, struct replica_buf *buf, struct replica_ctl *ctl)
{
	int type = raw_frame_within(fd, buf, ctl, RAW_WAIT_MS);

	cr_assert_neq(type, 0, "a frame within %d ms", RAW_WAIT_MS);
	return type;
}

void
raw_check_range(struct log *log, const char *name, uint64_t shard, uint64_t content,
		uint32_t data_size, uint64_t from, uint64_t to)
{
	struct test_collect c = { .shard_id = content, .data_size = data_size };
	struct log_reader *r;
	uint64_t next;
	int got;

	cr_assert_eq(log_reader_open(log, &r), 0);
	log_reader_past_watermark(r);
	got = log_read(r, shard, from, (uint32_t)(to - from), UINT64_MAX, test_collect_fn, &c,
		       &next);
	log_reader_close(r);
	cr_assert_eq(got, (int)(to - from), "%s: %d records of [%lu, %lu)", name, got,
		     (unsigned long)from, (unsigned long)to);
	cr_assert_eq(c.bad, 0, "%s: same bytes, keys and arrival times as the leader's", name);
	for (uint32_t i = 0; i < c.count; i++)
		cr_assert_eq(c.seqs[i], from + i, "same sequence numbers");
	free(c.seqs);
}

void
raw_batch_fill(struct log_batch *b, uint64_t content, uint64_t seq_first, uint64_t count,
	       uint32_t data_size)
{
	cr_assert_leq(data_size, RAW_DATA_MAX);
	for (uint64_t seq = seq_first; seq < seq_first + count; seq++) {
		uint8_t data[RAW_DATA_MAX];
		char key[48];
		struct log_record_in rec;

		test_record_make(content, seq, data_size, data, key, &rec);
		cr_assert_eq(log_batch_add(b, &rec), 0);
	}
}
