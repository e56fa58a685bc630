/*
 * fuzz_server: arbitrary bytes from a client, through the whole API server
 * on one connection: protocol detection, HTTP/1.1 (parser, framing,
 * pipelining, 100-continue), HTTP/2 (nghttp2 and our stream callbacks), the
 * pre-dispatch routing table and authentication. The first byte picks
 * [auth] off, presence or sigv4. A harness at the api.h seam answers at once,
 * except PutRecord, which it holds until the connection is gone (the
 * detached-call path). After each input: no call and no connection may be
 * left (a leak of either is a crash).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "control/server_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HELD_MAX 64

struct kinesis {
	struct api_call *held[HELD_MAX];
	uint32_t held_count;
};

static struct kinesis harness;

int
kinesis_event_fd(const struct kinesis *k)
{
	(void)k;
	return -1;
}

void
kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	static const char put[] = "Kinesis_20131202.PutRecord";

	if (req->target_size == sizeof(put) - 1 && memcmp(req->target, put, sizeof(put) - 1) == 0 &&
	    k->held_count < HELD_MAX) {
		k->held[k->held_count++] = call;
		return;
	}
	api_out_append(api_call_out(call), "{\"Data\":\"", 9);
	api_out_base64(api_call_out(call), req->body, req->body_size);
	api_out_append(api_call_out(call), "\"}", 2);
	api_call_reply(call, 200);
}

void
kinesis_poll(struct kinesis *k, uint64_t now_ns)
{
	(void)k;
	(void)now_ns;
}

/* The server passes a SIGHUP's keys on; these actions have none to take. */
void
kinesis_reload(struct kinesis *k, const struct sluice_config *config)
{
	(void)k;
	(void)config;
}

int
kinesis_poll_timeout_ms(const struct kinesis *k, uint64_t now_ns)
{
	(void)k;
	(void)now_ns;
	return -1;
}

static struct api_server *servers[3];

static struct api_server *
server_for(uint8_t mode)
{
	struct sluice_config config;
	struct api_server **s = &servers[mode % 3];

	if (*s != NULL)
		return *s;
	config_defaults(&config);
	strcpy(config.api_listen, "127.0.0.1:0");
	config.connections_max = 4;
	config.request_body_size_max = 64 * 1024;
	config.auth = (enum config_auth)(mode % 3);
	strcpy(config.access_keys, "AKIDFUZZ:secret");
	if (api_server_open(&config, &harness, s) != 0)
		abort();
	return *s;
}

/* Reads and drops whatever the server wrote back. */
static void
drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void
pass(struct api_server *s, struct server_conn *c, int peer)
{
	if (c->state != CONN_FREE)
		server_conn_event(c, EPOLLIN | EPOLLOUT);
	server_service_dirty(s);
	drain(peer);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_server *s;
	struct server_conn *c;
	int fds[2];

	if (size < 1)
		return 0;
	s = server_for(data[0]);
	buf_pool_thread_set(&s->pool);
	s->now_ns = clock_mono_ns();
	server_date_update(s, clock_real_ns());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
		abort();
	c = server_conn_adopt(s, fds[0], false);
	assert(c != NULL);
	if (write(fds[1], data + 1, size - 1) < 0 && size > 1)
		abort();
	for (int i = 0; i < 4; i++)
		pass(s, c, fds[1]);
	shutdown(fds[1], SHUT_WR);
	pass(s, c, fds[1]);
	/* Late replies: to a connection still open, or dropped after it closed. */
	for (uint32_t i = 0; i < harness.held_count; i++)
		api_call_reply(harness.held[i], 200);
	harness.held_count = 0;
	pass(s, c, fds[1]);
	if (c->state != CONN_FREE)
		server_conn_close(c);
	/*
	 * The last passes may have dispatched more pipelined PutRecords: the actions own
	 * those calls until they reply, even to a closed connection (the reply is dropped).
	 */
	for (uint32_t i = 0; i < harness.held_count; i++)
		api_call_reply(harness.held[i], 200);
	harness.held_count = 0;
	server_service_dirty(s);
	close(fds[1]);
	assert(s->conns_used == 0);
	assert(s->calls_used == 0);
	buf_pool_thread_set(NULL);
	return 0;
}
