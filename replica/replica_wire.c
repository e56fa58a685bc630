/*
 * replica_wire.c - frames of the replication protocol (replica_wire.h has the
 * layout) and the few socket calls the links make.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "replica/replica_wire.h"

static_assert(sizeof(struct replica_header) == REPLICA_HEADER_SIZE, "wire layout");
static_assert(sizeof(struct replica_ctl) == 24, "wire layout");
static_assert(sizeof(struct replica_append) == REPLICA_APPEND_HEADER_SIZE, "wire layout");

int
replica_buf_init(struct replica_buf *buf, size_t cap)
{
	memset(buf, 0, sizeof(*buf));
	buf->data = malloc(cap);
	if (buf->data == NULL)
		return -ENOMEM;
	buf->cap = cap;
	return 0;
}

void
replica_buf_fini(struct replica_buf *buf)
{
	free(buf->data);
	memset(buf, 0, sizeof(*buf));
}

size_t
replica_buf_room(struct replica_buf *buf)
{
	if (buf->head > 0) {
		memmove(buf->data, buf->data + buf->head, buf->tail - buf->head);
		buf->tail -= buf->head;
		buf->head = 0;
	}
	return buf->cap - buf->tail;
}

/* The header's own check: its type and length are trusted before the payload arrives. */
static uint16_t
header_check(const uint8_t *h)
{
	return (uint16_t)crc32c(crc32c(0, h, 6), h + 8, 4);
}

/* Fills in the header of the frame at `start` whose payload ends at buf->tail. */
static void
frame_seal(struct replica_buf *buf, size_t start, enum replica_msg type)
{
	struct replica_header h = {
		.magic = REPLICA_MAGIC,
		.type = (uint8_t)type,
		.version = REPLICA_VERSION,
		.length = (uint32_t)(buf->tail - start - REPLICA_HEADER_SIZE),
	};
	uint32_t crc;

	memcpy(buf->data + start, &h, sizeof(h));
	h.hcheck = header_check(buf->data + start);
	memcpy(buf->data + start, &h, sizeof(h));
	crc = crc32c(0, buf->data + start, 12);
	h.crc32c = crc32c(crc, buf->data + start + REPLICA_HEADER_SIZE, h.length);
	memcpy(buf->data + start, &h, sizeof(h));
}

int
replica_put_ctl(struct replica_buf *buf, enum replica_msg type, uint64_t shard_id,
		uint64_t epoch, uint64_t seq)
{
	struct replica_ctl ctl = { shard_id, epoch, seq };
	size_t start;

	if (replica_buf_room(buf) < REPLICA_HEADER_SIZE + sizeof(ctl))
		return -ENOBUFS;
	start = buf->tail;
	memcpy(buf->data + start + REPLICA_HEADER_SIZE, &ctl, sizeof(ctl));
	buf->tail += REPLICA_HEADER_SIZE + sizeof(ctl);
	frame_seal(buf, start, type);
	return 0;
}

void
replica_append_begin(struct replica_append_build *b, struct replica_buf *buf,
		     const struct replica_append *a)
{
	/* Outside the assert: the room call compacts the buffer, which must happen. */
	size_t room = replica_buf_room(buf);

	assert(room >= REPLICA_FRAME_SIZE_MAX);
	b->buf = buf;
	b->start = buf->tail;
	b->a = *a;
	b->a.count = 0;
	b->data_bytes = 0;
	buf->tail += REPLICA_HEADER_SIZE + REPLICA_APPEND_HEADER_SIZE;
}

int
replica_append_record(void *arg, const struct log_record_out *record)
{
	struct replica_append_build *b = arg;
	struct replica_buf *buf = b->buf;
	uint8_t hdr[REPLICA_REC_HEADER_SIZE] = { 0 };
	uint16_t key_size = record->partition_key_size;
	uint8_t flags = record->has_explicit_hash_key ? REPLICA_REC_F_HASH_KEY : 0;

	memcpy(hdr, &record->arrival_ns, 8);
	memcpy(hdr + 8, &record->data_size, 4);
	memcpy(hdr + 12, &key_size, 2);
	hdr[14] = flags;
	memcpy(buf->data + buf->tail, hdr, sizeof(hdr));
	buf->tail += sizeof(hdr);
	if (flags != 0) {
		memcpy(buf->data + buf->tail, record->explicit_hash_key, 16);
		buf->tail += 16;
	}
	memcpy(buf->data + buf->tail, record->partition_key, key_size);
	buf->tail += key_size;
	memcpy(buf->data + buf->tail, record->data, record->data_size);
	buf->tail += record->data_size;
	b->a.count++;
	b->data_bytes += record->data_size;
	assert(buf->tail <= buf->cap);
	return 0;
}

void
replica_append_end(struct replica_append_build *b)
{
	memcpy(b->buf->data + b->start + REPLICA_HEADER_SIZE, &b->a, sizeof(b->a));
	frame_seal(b->buf, b->start, REPLICA_MSG_APPEND);
}

int
replica_frame_next(struct replica_buf *buf, struct replica_header *h, const uint8_t **payload)
{
	size_t have = buf->tail - buf->head;
	const uint8_t *p = buf->data + buf->head;
	uint32_t crc;

	if (have < REPLICA_HEADER_SIZE)
		return 0;
	memcpy(h, p, sizeof(*h));
	if (h->magic != REPLICA_MAGIC || h->version != REPLICA_VERSION ||
	    h->hcheck != header_check(p) || h->length > REPLICA_PAYLOAD_MAX)
		return -EBADMSG;
	if (have < REPLICA_HEADER_SIZE + (size_t)h->length)
		return 0;
	crc = crc32c(0, p, 12);
	if (crc32c(crc, p + REPLICA_HEADER_SIZE, h->length) != h->crc32c)
		return -EBADMSG;
	*payload = p + REPLICA_HEADER_SIZE;
	buf->head += REPLICA_HEADER_SIZE + h->length;
	return 1;
}

int
replica_ctl_parse(const uint8_t *payload, uint32_t length, struct replica_ctl *ctl)
{
	if (length != sizeof(*ctl))
		return -EBADMSG;
	memcpy(ctl, payload, sizeof(*ctl));
	return 0;
}

void
replica_rec_iter_init(struct replica_rec_iter *it, const uint8_t *payload, uint32_t length)
{
	it->pos = payload + REPLICA_APPEND_HEADER_SIZE;
	it->end = payload + length;
}

/* One record at it->pos, bounds checked: 1, 0 at the end, -EBADMSG. */
static int
rec_take(struct replica_rec_iter *it, struct log_record_in *out)
{
	uint32_t data_size;
	uint16_t key_size;
	uint8_t flags;
	size_t need;

	if (it->pos == it->end)
		return 0;
	if ((size_t)(it->end - it->pos) < REPLICA_REC_HEADER_SIZE)
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	memcpy(&out->arrival_ns, it->pos, 8);
	memcpy(&data_size, it->pos + 8, 4);
	memcpy(&key_size, it->pos + 12, 2);
	flags = it->pos[14];
	if ((flags & ~REPLICA_REC_F_HASH_KEY) != 0 || it->pos[15] != 0 || key_size == 0 ||
	    key_size > SLUICE_PARTITION_KEY_SIZE_MAX || data_size > SLUICE_RECORD_DATA_SIZE_LARGE_MAX)
		return -EBADMSG;
	need = REPLICA_REC_HEADER_SIZE + (flags != 0 ? 16u : 0u) + key_size + (size_t)data_size;
	if ((size_t)(it->end - it->pos) < need)
		return -EBADMSG;
	it->pos += REPLICA_REC_HEADER_SIZE;
	if (flags != 0) {
		out->explicit_hash_key = it->pos;
		it->pos += 16;
	}
	out->partition_key = it->pos;
	out->partition_key_size = key_size;
	it->pos += key_size;
	out->data = it->pos;
	out->data_size = data_size;
	it->pos += data_size;
	return 1;
}

int
replica_rec_next(struct replica_rec_iter *it, struct log_record_in *out)
{
	int rc = rec_take(it, out);

	assert(rc >= 0); /* replica_append_parse walked them all before. */
	return rc;
}

int
replica_append_parse(const uint8_t *payload, uint32_t length, struct replica_append *a)
{
	struct replica_rec_iter it;
	struct log_record_in rec;
	uint32_t count = 0;
	int rc;

	if (length < REPLICA_APPEND_HEADER_SIZE)
		return -EBADMSG;
	memcpy(a, payload, sizeof(*a));
	if (a->reserved != 0 || a->count > REPLICA_APPEND_RECORDS_MAX || a->records_epoch > a->epoch ||
	    a->seq_first > UINT64_MAX - a->count)
		return -EBADMSG;
	replica_rec_iter_init(&it, payload, length);
	while ((rc = rec_take(&it, &rec)) == 1)
		count++;
	return rc == 0 && count == a->count ? 0 : -EBADMSG;
}

/* ---- Sockets -------------------------------------------------------------- */

static int
addr_make(const char *host, uint16_t port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

/* A non-blocking TCP socket and the address of host:port. */
static int
sock_open(const char *host, uint16_t port, struct sockaddr_in *sa, int *fd_out)
{
	int err = addr_make(host, port, sa);

	if (err != 0)
		return err;
	*fd_out = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return *fd_out < 0 ? -errno : 0;
}

int
replica_listen(const char *host, uint16_t port, int *fd_out, uint16_t *port_out)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd;
	int err = sock_open(host, port, &sa, &fd);

	if (err != 0)
		return err;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	*port_out = ntohs(sa.sin_port);
	return 0;
}

int
replica_connect(const char *host, uint16_t port, int *fd_out)
{
	struct sockaddr_in sa;
	int one = 1;
	int fd;
	int err = sock_open(host, port, &sa, &fd);

	if (err != 0)
		return err;
	/* Frames are whole messages: no Nagle delay on an ACK or a small APPEND. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

int
replica_connect_done(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		return -errno;
	return -soerr;
}

int
replica_send(int fd, struct replica_buf *buf)
{
	while (buf->head < buf->tail) {
		ssize_t n = send(fd, buf->data + buf->head, buf->tail - buf->head, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		buf->head += (size_t)n;
	}
	buf->head = buf->tail = 0;
	return 0;
}

int
replica_recv(int fd, struct replica_buf *buf)
{
	for (;;) {
		size_t room = replica_buf_room(buf);
		ssize_t n;

		if (room == 0)
			return 0; /* Whole frames wait in it: parse them first. */
		n = recv(fd, buf->data + buf->tail, room, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		buf->tail += (size_t)n;
	}
}
