/*
 * server: the real API server on a loopback port, driven by real clients
 * (raw sockets for HTTP/1.1 edge cases; curl, nghttp and h2load for h2c and
 * TLS), with a test harness at the api.h seam in place of the Kinesis
 * actions:
 *
 *   TARGET ACTION   HARNESS BEHAVIOUR
 *   ListStreams     replies at once: {"body":<request body>,"key":<access key id>}
 *   PutRecord       replies from kinesis_poll() LATE_MS later (like a group commit)
 *   GetRecords      replies at once with base64 of N bytes (N = body as a number)
 *   DescribeLimits  replies 400 with its own error body (api_call_reply, not _error)
 *   SubscribeToShard a streaming answer: body "N SIZE" -> N EventStream messages of
 *                   SIZE payload bytes (payload starts with the 8-digit event number),
 *                   written until refused, resumed on WRITABLE, ended after the last
 *                   or when the client is GONE
 *   anything else   ResourceNotFoundException with a message needing JSON escapes
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "common/eventstream.h"
#include "control/api.h"
#include "control/server_internal.h"

#define LATE_MS 150
#define LATE_HELD UINT32_MAX /* late_ms: held until late_release is set, or server_stop(). */
#define LATE_MAX 1024    /* More than the calls of any test configuration (656). */
/* Bounds a wait for a condition: only a hang reaches it, never a slow machine. */
#define WAIT_DEADLINE_MS 20000

/* What the test thread may know of the server thread's state: a copy made on that thread. */
struct probe {
	struct server_stats stats;
	uint32_t calls_used;
	uint32_t conns_used;
	uint32_t dispatched;
	uint32_t big_in_use;     /* Pool buffers above SERVER_POOL_MEDIUM held now. */
	uint32_t streams_open;   /* Harness streams not ended yet. */
	uint64_t stream_events;  /* Events the server took. */
	size_t stream_pending_max; /* Most bytes a stream held for its peer. */
	uint32_t streams_gone;   /* GONE events received. */
	uint32_t starved;        /* Connections paused for want of a call. */
	bool draining;           /* api_server_drain() was taken. */
};

/* ---- The harness at the seam ---- */

#define STREAMS_MAX 8u
#define STREAM_EVENT_MAX (64u * 1024u)

struct harness_stream {
	struct api_call *call;
	uint32_t next;           /* Next event number to write. */
	uint32_t total;
	uint32_t payload_size;
	bool ended;
};

struct kinesis {
	int event_fd;
	struct api_call *late[LATE_MAX];
	uint64_t late_due_ns[LATE_MAX];
	uint32_t late_count;
	uint32_t dispatched;
	uint32_t late_ms;      /* 0: LATE_MS. */
	struct harness_stream streams[STREAMS_MAX];
	uint32_t streams_open;
	uint64_t stream_events;
	size_t stream_pending_max;
	uint32_t streams_gone;
};

static struct kinesis harness;
static struct api_server *server;
/* Set by the test thread (then a probe wakes the loop): held replies become due. */
static bool late_release;

/*
 * The probe: the test thread asks (probe_asked++, a write to the harness's eventfd), the server
 * thread answers from kinesis_poll() with a copy under probe_lock. Reading server->stats or
 * harness fields directly from the test thread is a data race (TSan reports it), and a sleep
 * before such a read is a guess about the scheduler.
 */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cond = PTHREAD_COND_INITIALIZER;
static uint64_t probe_asked;
static uint64_t probe_answered;
static struct probe probe_last;

static void
probe_answer(const struct kinesis *k)
{
	pthread_mutex_lock(&probe_lock);
	if (probe_answered != probe_asked) {
		probe_last.stats = server->stats;
		probe_last.calls_used = server->calls_used;
		probe_last.conns_used = server->conns_used;
		probe_last.dispatched = k->dispatched;
		probe_last.streams_open = k->streams_open;
		probe_last.stream_events = k->stream_events;
		probe_last.stream_pending_max = k->stream_pending_max;
		probe_last.streams_gone = k->streams_gone;
		probe_last.draining = server->draining;
		probe_last.starved = 0;
		for (const struct server_conn *c = server->starved_head; c != NULL;
		     c = c->starved_next)
			probe_last.starved++;
		probe_last.big_in_use = 0;
		for (uint32_t i = 0; i < server->pool.class_count; i++) {
			const struct buf_pool_class *c = &server->pool.classes[i];

			if (c->size > SERVER_POOL_MEDIUM)
				probe_last.big_in_use += c->count_allocated - c->free_count;
		}
		probe_answered = probe_asked;
		pthread_cond_broadcast(&probe_cond);
	}
	pthread_mutex_unlock(&probe_lock);
}

int
kinesis_event_fd(const struct kinesis *k)
{
	return k->event_fd;
}

static bool
target_is(const struct api_request *req, const char *action)
{
	size_t prefix = strlen("Kinesis_20131202.");

	return req->target_size == prefix + strlen(action) &&
	       memcmp(req->target + prefix, action, strlen(action)) == 0;
}

static void
stream_end(struct harness_stream *st)
{
	st->ended = true;
	harness.streams_open--;
	api_call_stream_end(st->call);
}

/* Writes events until the stream refuses one or all are written. */
static void
stream_pump(struct harness_stream *st)
{
	static uint8_t payload[STREAM_EVENT_MAX];
	static uint8_t event[STREAM_EVENT_MAX + 256];
	const struct es_header h[] = {
		es_header_string(":event-type", "SubscribeToShardEvent"),
		es_header_string(":content-type", "application/json"),
		es_header_string(":message-type", "event"),
	};

	while (st->next < st->total) {
		size_t size;
		size_t pending;
		int rc;

		memset(payload, 'x', st->payload_size);
		snprintf((char *)payload, 9, "%08u", st->next);
		cr_assert_eq(es_encode(event, sizeof(event), h, 3, payload, st->payload_size, &size), 0);
		rc = api_call_stream_write(st->call, event, size);
		pending = api_call_stream_pending(st->call);
		if (pending > harness.stream_pending_max)
			harness.stream_pending_max = pending;
		if (rc == -EAGAIN || rc == -EPIPE)
			return;  /* WRITABLE or GONE follows. */
		cr_assert_eq(rc, 0);
		st->next++;
		harness.stream_events++;
	}
	stream_end(st);
}

static void
stream_event(void *ctx, enum api_stream_event event)
{
	struct harness_stream *st = ctx;

	cr_assert(!st->ended, "an event after the end");
	if (event == API_STREAM_GONE) {
		harness.streams_gone++;
		stream_end(st);
		return;
	}
	stream_pump(st);
}

static void
stream_start(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	struct harness_stream *st = NULL;
	char text[64];

	for (uint32_t i = 0; i < STREAMS_MAX && st == NULL; i++)
		if (k->streams[i].call == NULL || k->streams[i].ended)
			st = &k->streams[i];
	cr_assert_not_null(st, "more streams than STREAMS_MAX");
	memset(st, 0, sizeof(*st));
	snprintf(text, sizeof(text), "%.*s", (int)req->body_size, (const char *)req->body);
	cr_assert_eq(sscanf(text, "%u %u", &st->total, &st->payload_size), 2);
	cr_assert(st->payload_size >= 8 && st->payload_size <= STREAM_EVENT_MAX);
	st->call = call;
	k->streams_open++;
	cr_assert_eq(api_call_stream_begin(call, "application/vnd.amazon.eventstream",
					   stream_event, st), 0);
	stream_pump(st);
}

void
kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	struct api_out *out = api_call_out(call);

	k->dispatched++;
	if (target_is(req, "ListStreams")) {
		api_out_printf(out, "{\"body\":");
		api_out_json_string(out, (const char *)req->body, req->body_size);
		api_out_printf(out, ",\"key\":\"%s\"}", req->access_key_id);
		api_call_reply(call, 200);
	} else if (target_is(req, "PutRecord")) {
		cr_assert_lt(k->late_count, LATE_MAX);
		k->late[k->late_count] = call;
		k->late_due_ns[k->late_count++] = k->late_ms == LATE_HELD ? UINT64_MAX :
			clock_mono_ns() + (k->late_ms != 0 ? k->late_ms : LATE_MS) * 1000000ull;
	} else if (target_is(req, "SubscribeToShard")) {
		stream_start(k, call, req);
	} else if (target_is(req, "DescribeLimits")) {
		api_call_error(call, 400, "LimitExceededException", "x");
	} else if (target_is(req, "GetRecords")) {
		static uint8_t data[16 << 20];
		char text[32];
		size_t n;

		snprintf(text, sizeof(text), "%.*s", (int)req->body_size, (const char *)req->body);
		n = strtoul(text, NULL, 10);
		cr_assert_leq(n, sizeof(data));
		memset(data, 0xfb, n);
		api_out_append(out, "{\"Data\":\"", 9);
		api_out_base64(out, data, n);
		api_out_append(out, "\"}", 2);
		api_call_reply(call, 200);
	} else {
		api_call_error(call, 400, "ResourceNotFoundException",
			       "Stream \"%.*s\"\n not found", (int)req->body_size,
			       (const char *)req->body);
	}
}

void
kinesis_poll(struct kinesis *k, uint64_t now_ns)
{
	uint64_t mono = __atomic_load_n(&late_release, __ATOMIC_ACQUIRE) ? UINT64_MAX :
		clock_mono_ns();
	uint64_t value;

	(void)now_ns;
	if (read(k->event_fd, &value, sizeof(value)) < 0 && errno != EAGAIN)
		cr_assert_fail("eventfd read");
	for (uint32_t i = 0; i < k->late_count;) {
		if (k->late_due_ns[i] > mono) {
			i++;
			continue;
		}
		api_out_printf(api_call_out(k->late[i]), "{\"SequenceNumber\":\"%u\"}", i);
		api_call_reply(k->late[i], 200);
		k->late[i] = k->late[k->late_count - 1];
		k->late_due_ns[i] = k->late_due_ns[--k->late_count];
	}
	probe_answer(k);
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
	uint64_t mono = clock_mono_ns();
	uint64_t due = UINT64_MAX;

	(void)now_ns;
	for (uint32_t i = 0; i < k->late_count; i++)
		if (k->late_due_ns[i] < due)
			due = k->late_due_ns[i];
	if (due == UINT64_MAX)
		return -1;
	return due <= mono ? 0 : (int)((due - mono) / 1000000u) + 1;
}

/* ---- The server under test, on its own thread ---- */

static struct sluice_config config;
static pthread_t server_thread;
static int server_port;
static char temp_dir[64];

static void *
server_main(void *arg)
{
	(void)arg;
	cr_assert_eq(api_server_run(server), 0);
	return NULL;
}

static int
free_port(void)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	port = ntohs(addr.sin_port);
	close(fd);
	return port;
}

static void
config_for_test(void)
{
	memset(&config, 0, sizeof(config));
	config_defaults(&config);
	server_port = free_port();
	snprintf(config.api_listen, sizeof(config.api_listen), "127.0.0.1:%d", server_port);
	config.connections_max = 16;
	config.request_body_size_max = 1 << 20;
	config.idle_timeout_ms = 5000;
	config.auth = CONFIG_AUTH_OFF;
}

/* The harness's late_ms for the next server_start() (set before its thread exists). */
static uint32_t late_ms_next;

static void
server_start(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&harness, 0, sizeof(harness));
	harness.late_ms = late_ms_next;
	__atomic_store_n(&late_release, false, __ATOMIC_RELEASE);
	harness.event_fd = eventfd(0, EFD_NONBLOCK);
	cr_assert_eq(api_server_open(&config, &harness, &server), 0);
	cr_assert_eq(pthread_create(&server_thread, NULL, server_main, NULL), 0);
}

/* The test joined the server thread itself (its loop returned after a drain). */
static bool server_joined;

static void
server_stop(void)
{
	api_server_stop(server);
	if (!server_joined)
		cr_assert_eq(pthread_join(server_thread, NULL), 0);
	server_joined = false;
	/* The loop has stopped: replies still owed are made here, before the close. */
	buf_pool_thread_set(&server->pool);
	for (uint32_t i = 0; i < harness.late_count; i++)
		api_call_reply(harness.late[i], 200);
	harness.late_count = 0;
	for (uint32_t i = 0; i < STREAMS_MAX; i++)
		if (harness.streams[i].call != NULL && !harness.streams[i].ended)
			stream_end(&harness.streams[i]);
	api_server_close(server);
	close(harness.event_fd);
	if (temp_dir[0] != '\0') {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", temp_dir);
		cr_assert_eq(system(cmd), 0);
		temp_dir[0] = '\0';
	}
}

/* A copy of the server thread's state, made on that thread after this call. */
static void
probe_read(struct probe *out)
{
	struct timespec deadline;
	uint64_t ticket;
	uint64_t one = 1;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_DEADLINE_MS / 1000;
	pthread_mutex_lock(&probe_lock);
	ticket = ++probe_asked;
	pthread_mutex_unlock(&probe_lock);
	cr_assert_eq(write(harness.event_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_mutex_lock(&probe_lock);
	while (probe_answered < ticket)
		if (pthread_cond_timedwait(&probe_cond, &probe_lock, &deadline) == ETIMEDOUT)
			break;
	*out = probe_last;
	pthread_mutex_unlock(&probe_lock);
	cr_assert_geq(probe_answered, ticket, "the server thread did not answer the probe");
}

/*
 * Probes until `cond` (over the struct probe `p`) holds. The deadline only bounds a hang: the
 * server frees a call or a connection a moment after the client saw the last byte.
 */
#define probe_until(p, cond) do {							\
		uint64_t probe_end_ns_ = clock_mono_ns() + WAIT_DEADLINE_MS * 1000000ull;	\
		for (probe_read(&(p)); !(cond); probe_read(&(p))) {			\
			cr_assert_lt(clock_mono_ns(), probe_end_ns_, "never true: %s", #cond);	\
			usleep(1000);							\
		}									\
	} while (0)

static void
setup_default(void)
{
	config_for_test();
	server_start();
}

/* ---- A raw HTTP/1.1 client ---- */

/* A connected socket, or -errno of the connect (the socket closed). */
static int
client_try_connect(void)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)server_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int err;

	cr_assert_geq(fd, 0);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		return fd;
	err = errno;
	close(fd);
	return -err;
}

static int
client_connect(void)
{
	int fd = client_try_connect();

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	return fd;
}

static void
client_send(int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t n = send(fd, p, size, MSG_NOSIGNAL);

		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		p += n;
		size -= (size_t)n;
	}
}

static void
client_send_str(int fd, const char *text)
{
	client_send(fd, text, strlen(text));
}

/* Reads into buf until `needle` appears or the peer closes; returns bytes, -1 on timeout. */
static long
client_read_until(int fd, char *buf, size_t cap, size_t used, const char *needle, int timeout_ms)
{
	while (used < cap - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		buf[used] = '\0';
		if (needle != NULL && strstr(buf, needle) != NULL)
			return (long)used;
		if (poll(&pfd, 1, timeout_ms) != 1)
			return -1;
		n = recv(fd, buf + used, cap - 1 - used, 0);
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return (long)used;
}

struct response {
	int status;
	char head[2048];
	char *body;
	size_t body_size;
};

static char client_buf[24 << 20];
static size_t client_buf_used;

/* Reads one response (head + Content-Length body) from fd; leftovers stay buffered. */
static void
client_response(int fd, struct response *r)
{
	long n = client_read_until(fd, client_buf, sizeof(client_buf), client_buf_used, "\r\n\r\n",
				   5000);
	char *end;
	const char *cl;
	size_t head_size;

	cr_assert_gt(n, 0, "no response");
	client_buf_used = (size_t)n;
	end = strstr(client_buf, "\r\n\r\n");
	cr_assert_not_null(end, "no head in: %s", client_buf);
	head_size = (size_t)(end - client_buf) + 4;
	cr_assert_lt(head_size, sizeof(r->head));
	memcpy(r->head, client_buf, head_size);
	r->head[head_size] = '\0';
	cr_assert_eq(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1, "%s", r->head);
	cl = strcasestr(r->head, "\r\nContent-Length: ");
	r->body_size = cl != NULL ? strtoul(cl + 18, NULL, 10) : 0;
	while (client_buf_used < head_size + r->body_size) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t m;

		cr_assert_eq(poll(&pfd, 1, 5000), 1, "body timeout");
		m = recv(fd, client_buf + client_buf_used, sizeof(client_buf) - client_buf_used, 0);
		cr_assert_gt(m, 0, "closed mid-body");
		client_buf_used += (size_t)m;
	}
	r->body = malloc(r->body_size + 1);
	memcpy(r->body, client_buf + head_size, r->body_size);
	r->body[r->body_size] = '\0';
	memmove(client_buf, client_buf + head_size + r->body_size,
		client_buf_used - head_size - r->body_size);
	client_buf_used -= head_size + r->body_size;
}

static void
response_free(struct response *r)
{
	free(r->body);
	r->body = NULL;
}

/* True when the server closed the connection (EOF) within timeout_ms. */
static bool
client_sees_close(int fd, int timeout_ms)
{
	char buf[4096];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (;;) {
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) != 1)
			return false;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return true;
	}
}

static char *
request(const char *action, const char *body, const char *extra_headers)
{
	static char buf[1 << 16];

	snprintf(buf, sizeof(buf),
		 "POST / HTTP/1.1\r\n"
		 "Host: localhost\r\n"
		 "X-Amz-Target: Kinesis_20131202.%s\r\n"
		 "Content-Type: application/x-amz-json-1.1\r\n"
		 "%s"
		 "Content-Length: %zu\r\n"
		 "\r\n%s",
		 action, extra_headers != NULL ? extra_headers : "", strlen(body), body);
	return buf;
}

/* x-amz-id-2 as AWS sends it: base64 of 64..80 bytes (issue 12). */
static void
assert_id2(const struct response *r)
{
	const char *id2 = strcasestr(r->head, "\r\nx-amz-id-2: ");
	size_t n;

	cr_assert_not_null(id2, "%s", r->head);
	id2 += 14;
	n = strcspn(id2, "\r");
	cr_assert(n % 4 == 0 && n / 4 * 3 >= 64 && n / 4 * 3 <= 80, "%.*s", (int)n, id2);
	cr_assert_eq(strspn(id2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
		     n, "%s", r->head);
}

static void
assert_aws_headers(const struct response *r)
{
	const char *id = strcasestr(r->head, "\r\nx-amzn-RequestId: ");
	unsigned a, b, c, d;
	unsigned long long e;

	cr_assert_not_null(id, "%s", r->head);
	cr_assert_eq(sscanf(id + 20, "%8x-%4x-%4x-%4x-%12llx", &a, &b, &c, &d, &e), 5);
	cr_assert_eq(id[20 + 14], '4', "UUID version 4: %s", r->head);
	cr_assert_not_null(strcasestr(r->head, "\r\nDate: "), "%s", r->head);
	cr_assert_not_null(strcasestr(r->head, " GMT\r\n"), "%s", r->head);
	cr_assert_not_null(strcasestr(r->head, "\r\nContent-Length: "), "%s", r->head);
	assert_id2(r);
}

/* Skips the test (not fails) on a machine without a client tool it drives. */
static void
need_tools(const char *tools)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "for t in %s; do command -v $t >/dev/null || exit 1; done",
		 tools);
	if (system(cmd) != 0)
		cr_skip_test("needs %s installed", tools);
}

/* ---- HTTP/1.1 ---- */

Test(server, keep_alive_serves_requests_in_turn, .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	for (int i = 0; i < 3; i++) {
		client_send_str(fd, request("ListStreams", "{\"n\":1}", NULL));
		client_response(fd, &r);
		cr_assert_eq(r.status, 200, "%s", r.head);
		assert_aws_headers(&r);
		cr_assert_not_null(strstr(r.head, "Content-Type: application/x-amz-json-1.1\r\n"));
		cr_assert_str_eq(r.body, "{\"body\":\"{\\\"n\\\":1}\",\"key\":\"\"}");
		response_free(&r);
	}
	close(fd);
}

Test(server, pipelined_responses_keep_request_order, .init = setup_default,
     .fini = server_stop)
{
	static char both[3 << 16];
	int fd = client_connect();
	struct response r;

	/* The late reply is first: the immediate one must wait behind it. */
	snprintf(both, sizeof(both), "%s", request("PutRecord", "{}", NULL));
	strcat(both, request("ListStreams", "{\"second\":true}", NULL));
	strcat(both, request("Nope", "x", NULL));
	client_send_str(fd, both);
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"SequenceNumber\":\"0\"}");
	response_free(&r);
	client_response(fd, &r);
	cr_assert_str_eq(r.body, "{\"body\":\"{\\\"second\\\":true}\",\"key\":\"\"}");
	response_free(&r);
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_not_null(strstr(r.head, "x-amzn-ErrorType: UnknownOperationException\r\n"));
	cr_assert_str_eq(r.body, "{\"__type\":\"UnknownOperationException\"}");
	response_free(&r);
	close(fd);
}

Test(server, byte_at_a_time_request, .init = setup_default, .fini = server_stop)
{
	const char *text = request("ListStreams", "{\"a\":\"b\"}", NULL);
	int fd = client_connect();
	struct response r;

	for (size_t i = 0; text[i] != '\0'; i++)
		client_send(fd, text + i, 1);
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
}

Test(server, errors_are_json_with_escapes, .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, request("DescribeStream", "a\"b", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.body, "{\"__type\":\"ResourceNotFoundException\",\"message\":"
			 "\"Stream \\\"a\\\"b\\\"\\n not found\"}");
	response_free(&r);
	close(fd);
}

Test(server, reply_after_the_client_left_is_dropped, .init = setup_default,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;
	struct probe p;

	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	client_send_str(fd, request("PutRecord", "{}", NULL));
	probe_until(p, p.dispatched >= 1);     /* The request is the action's before the RST. */
	/* An abortive close (RST): a FIN alone would read as a half-close, still answered. */
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
	close(fd);
	probe_until(p, p.stats.replies_dropped >= 1);
	cr_assert_eq(p.dispatched, 1);
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
	probe_until(p, p.calls_used == 0);     /* Freed just after the response was written. */
	cr_assert_eq(p.stats.replies_dropped, 1);
	cr_assert_eq(p.dispatched, 2);
}

struct route_case {
	const char *raw;
	int status;
	const char *body_prefix;
	bool untyped;          /* AWS sends no Content-Type (issue 12). */
};

Test(server, requests_aws_cannot_route_get_aws_answers, .init = setup_default,
     .fini = server_stop)
{
	static const struct route_case cases[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 403,
		  "<AccessDeniedException>\n  <Message>Unable to determine service/operation", true },
		{ "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 404,
		  "<UnknownOperationException/>", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 0\r\n\r\n", 400,
		  "{\"__type\":\"SerializationException\"}", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.Bogus\r\n"
		  "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 0\r\n\r\n", 400,
		  "{\"__type\":\"UnknownOperationException\"}", false },
		{ "POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
		  403, "<AccessDeniedException>", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", 404,
		  "<UnknownOperationException/>", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 404,
		  "{\"Output\":{\"__type\":\"com.amazon.coral.service#"
		  "UnknownOperationException\"},\"Version\":\"1.0\"}", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{", 400,
		  "{\"Output\":{\"__type\":\"com.amazon.coral.service#SerializationException\"", false },
		/* CBOR in, the action's JSON answer out as CBOR ({"body":"{}","key":""}). */
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-cbor-1.1\r\nContent-Length: 1\r\n\r\n\xa0", 200,
		  "\xbf\x64" "body\x62{}\x63key\x60\xff", false },
		/* The action's JSON error, in CBOR. */
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.DescribeLimits\r\n"
		  "Content-Type: application/x-amz-cbor-1.1\r\nContent-Length: 1\r\n\r\n\xa0", 400,
		  "\xbf\x66__type\x76LimitExceededException\x67message\x61x\xff", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-cbor-1.1\r\nContent-Length: 2\r\n\r\n\xa1\x01", 400,
		  "\xbf\x66__type\x76SerializationException\x67message\x78\x23" "A CBOR map key "
		  "is not a text string", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-cbor-1.1\r\nContent-Length: 2\r\n\r\nab", 400,
		  "\xbf\x66__type\x76SerializationException\x67message\x78\x1aThe CBOR body "
		  "is not a map", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.Bogus\r\n"
		  "Content-Type: application/x-amz-cbor-1.1\r\nContent-Length: 1\r\n\r\n\xa0", 400,
		  "\xbf\x66__type\x78\x19UnknownOperationException\xff", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-json-1.1; charset=utf-8\r\nContent-Length: 2"
		  "\r\n\r\n{}", 200, "{\"body\":", false },
		{ "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
		  "Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}", 404,
		  "<UnknownOperationException/>", false },
	};
	int fd = client_connect();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct response r;

		client_send_str(fd, cases[i].raw);
		client_response(fd, &r);
		cr_assert_eq(r.status, cases[i].status, "case %zu: %s", i, r.head);
		cr_assert(strncmp(r.body, cases[i].body_prefix, strlen(cases[i].body_prefix)) == 0,
			  "case %zu: %s", i, r.body);
		assert_aws_headers(&r);
		cr_assert_eq(strcasestr(r.head, "\r\nContent-Type: ") == NULL, cases[i].untyped,
			     "case %zu: %s", i, r.head);
		response_free(&r);
	}
	close(fd);
}

static void
expect_refusal_then_close(const char *raw, size_t size, int status)
{
	int fd = client_connect();
	struct response r;

	client_send(fd, raw, size);
	client_response(fd, &r);
	cr_assert_eq(r.status, status, "%s", r.head);
	cr_assert_not_null(strstr(r.head, "Connection: close\r\n"), "%s", r.head);
	assert_aws_headers(&r);
	response_free(&r);
	cr_assert(client_sees_close(fd, 2000));
	close(fd);
	client_buf_used = 0;
}

static void
expect_refusal_str(const char *raw, int status)
{
	expect_refusal_then_close(raw, strlen(raw), status);
}

Test(server, limits_are_answered_and_close, .init = setup_default, .fini = server_stop)
{
	static char big[HTTP1_HEAD_SIZE_MAX + 256];
	int n;

	expect_refusal_str("POST / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400);
	expect_refusal_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411);
	expect_refusal_str("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413);
	expect_refusal_str("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
			   400);
	expect_refusal_str("POST / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400);
	expect_refusal_str("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 400);
	n = snprintf(big, sizeof(big), "POST / HTTP/1.1\r\nX-Pad: ");
	memset(big + n, 'p', HTTP1_HEAD_SIZE_MAX);
	memcpy(big + n + HTTP1_HEAD_SIZE_MAX, "\r\n\r\n", 4);
	expect_refusal_then_close(big, (size_t)n + HTTP1_HEAD_SIZE_MAX + 4, 431);
}

Test(server, body_at_the_limit_is_served, .init = setup_default, .fini = server_stop)
{
	static char body[(1 << 20) + 1];
	static char head[512];
	int fd = client_connect();
	struct response r;

	memset(body, 'z', 1 << 20);
	body[0] = '"';
	body[(1 << 20) - 1] = '"';
	snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams"
		 "\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n",
		 1 << 20);
	client_send_str(fd, head);
	client_send(fd, body, 1 << 20);
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_gt(r.body_size, 1 << 20);
	response_free(&r);
	close(fd);
}

Test(server, large_response_streams_out, .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	/* 10 MiB of data: 13.3 MiB of base64, the GetRecords worst case. */
	client_send_str(fd, request("GetRecords", "10485760", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_size, 9 + (10485760 + 2) / 3 * 4 + 2);
	cr_assert_eq(memcmp(r.body + 9, "+/v7", 4), 0);
	response_free(&r);
	close(fd);
}

Test(server, expect_100_continue, .init = setup_default, .fini = server_stop)
{
	char buf[256];
	int fd = client_connect();
	struct response r;
	long n;

	client_send_str(fd, "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
			"Content-Type: application/x-amz-json-1.1\r\nExpect: 100-continue\r\n"
			"Content-Length: 2\r\n\r\n");
	n = client_read_until(fd, buf, sizeof(buf), 0, "\r\n\r\n", 2000);
	cr_assert_gt(n, 0);
	cr_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	client_send_str(fd, "{}");
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
}

/* ---- Timeouts and the connection cap ---- */

static void
setup_short_timeout(void)
{
	config_for_test();
	config.idle_timeout_ms = 300;
	server_start();
}

Test(server, idle_connection_is_closed, .init = setup_short_timeout, .fini = server_stop)
{
	int fd = client_connect();
	uint64_t start = clock_mono_ns();

	cr_assert(client_sees_close(fd, 2000));
	cr_assert_geq(clock_mono_ns() - start, 250 * 1000000ull);
	close(fd);
}

Test(server, slow_client_is_closed_mid_request, .init = setup_short_timeout,
     .fini = server_stop)
{
	const char *text = request("ListStreams", "{}", NULL);
	int fd = client_connect();
	bool closed = false;

	/* One byte every 50 ms keeps the connection busy but never finishes the head. */
	for (int i = 0; i < 40 && !closed; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (send(fd, text + i, 1, MSG_NOSIGNAL) != 1)
			closed = true;
		else if (poll(&pfd, 1, 50) == 1)
			closed = client_sees_close(fd, 100);
	}
	cr_assert(closed);
	close(fd);
}

Test(server, waiting_on_a_late_reply_is_not_idle, .init = setup_short_timeout,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, request("PutRecord", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
}

static void
setup_four_connections(void)
{
	config_for_test();
	config.connections_max = 4;
	server_start();
}

Test(server, connections_beyond_the_cap_are_refused, .init = setup_four_connections,
     .fini = server_stop)
{
	int fds[4];
	int extra;
	struct response r;
	struct probe p;

	for (int i = 0; i < 4; i++) {
		fds[i] = client_connect();
		client_send_str(fds[i], request("ListStreams", "{}", NULL));
		client_response(fds[i], &r);
		response_free(&r);
	}
	extra = client_connect();
	cr_assert(client_sees_close(extra, 2000));
	close(extra);
	probe_read(&p);
	cr_assert_eq(p.stats.connections_refused, 1);
	client_send_str(fds[3], request("ListStreams", "{}", NULL));
	client_response(fds[3], &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fds[0]);
	probe_until(p, p.conns_used == 3);     /* The server has seen the close: a slot is free. */
	extra = client_connect();
	client_send_str(extra, request("ListStreams", "{}", NULL));
	client_response(extra, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	for (int i = 1; i < 4; i++)
		close(fds[i]);
	close(extra);
}

/*
 * Slowloris: peers that trickle bytes and never finish a request held every connection,
 * and every client was refused for as long as they kept it up. With the table full, a
 * new connection now evicts the oldest one with no request accepted (and older than
 * SERVER_EVICT_AGE_MS); connections that made a request are never evicted (above).
 */
Test(server, trickling_connections_are_evicted_for_a_new_client,
     .init = setup_four_connections, .fini = server_stop)
{
	int tricklers[4];
	int fd;
	struct response r;
	struct probe p;

	for (int i = 0; i < 4; i++) {
		tricklers[i] = client_connect();
		client_send_str(tricklers[i], "POST / HTTP/1.1\r\nX-Amz-Tar");
		probe_until(p, p.conns_used == (uint32_t)i + 1);  /* Accepted in this order. */
	}
	/* Not a wait for another thread: time must pass for them to be old enough. */
	usleep((SERVER_EVICT_AGE_MS + 100) * 1000);
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
	cr_assert(client_sees_close(tricklers[0], 2000), "the oldest trickler was evicted");
	probe_read(&p);
	cr_assert_eq(p.stats.connections_evicted, 1);
	cr_assert_eq(p.stats.connections_refused, 0);
	for (int i = 0; i < 4; i++)
		close(tricklers[i]);
}

/*
 * Out of descriptors: a pending connection must be shed (accepted and closed),
 * not left in the backlog where it keeps the listener readable and the loop
 * spinning; once descriptors are free again, connections are served.
 */
Test(server, out_of_descriptors_sheds_and_recovers, .init = setup_default, .fini = server_stop)
{
	struct rlimit lim = { .rlim_cur = 128, .rlim_max = 128 };
	int dummies[128];
	int count = 0;
	int fd;
	struct response r;
	struct probe p;

	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (count < 128 && (fd = open("/dev/null", O_RDONLY)) >= 0)
		dummies[count++] = fd;
	cr_assert_eq(errno, EMFILE);
	cr_assert_gt(count, 1);
	close(dummies[--count]);        /* Exactly one free descriptor: the client's. */
	fd = client_connect();
	cr_assert(client_sees_close(fd, 2000));
	close(fd);
	probe_read(&p);
	cr_assert_eq(p.stats.connections_shed, 1);
	while (count > 0)
		close(dummies[--count]);
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
}

/* Lines of `path` holding `text`. */
static int
file_lines_with(const char *path, const char *text)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/*
 * A flood of connections out of descriptors is not a flood of log lines: the
 * 1st, 2nd, 4th, 8th and 16th of 20 shed connections are logged, all counted.
 */
Test(server, out_of_descriptors_logs_at_powers_of_two, .init = setup_default,
     .fini = server_stop)
{
	struct rlimit lim = { .rlim_cur = 128, .rlim_max = 128 };
	char path[] = "/tmp/sluice-test-shed-XXXXXX";
	int log_fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	int dummies[128];
	int count = 0;
	int fd;
	struct probe p;

	cr_assert(log_fd >= 0 && saved >= 0);
	cr_assert_eq(dup2(log_fd, STDERR_FILENO), STDERR_FILENO);
	close(log_fd);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (count < 128 && (fd = open("/dev/null", O_RDONLY)) >= 0)
		dummies[count++] = fd;
	cr_assert_eq(errno, EMFILE);
	close(dummies[--count]);        /* Exactly one free descriptor: the client's. */
	for (int i = 0; i < 20; i++) {
		fd = client_connect();
		cr_assert(client_sees_close(fd, 2000));
		close(fd);
	}
	probe_until(p, p.stats.connections_shed == 20);
	while (count > 0)
		close(dummies[--count]);
	dup2(saved, STDERR_FILENO);
	close(saved);
	cr_assert_eq(file_lines_with(path, "out of file descriptors"), 5);
	unlink(path);
}

/* RLIMIT_NOFILE of the test below: this many above the descriptors open before it. */
#define LOW_NOFILE_ABOVE 48

static void
setup_low_nofile(void)
{
	int lowest = dup(STDIN_FILENO);  /* The lowest free descriptor. */
	struct rlimit lim;

	cr_assert_geq(lowest, 0);
	close(lowest);
	lim.rlim_cur = lim.rlim_max = (rlim_t)lowest + LOW_NOFILE_ABOVE;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	config_for_test();
	server_start();
}

/*
 * A connection flood under a low RLIMIT_NOFILE leaves the rest of the process
 * its descriptors (the log fail-stops when it cannot open a segment, an index or
 * log.meta): connections are shed SERVER_FDS_HEADROOM (at most a quarter of the
 * limit) short of it, before the cap (16) is reached, and the headroom is free.
 */
Test(server, connections_leave_descriptors_headroom, .init = setup_low_nofile,
     .fini = server_stop)
{
	struct rlimit lim;
	int clients[16];
	int spare[64];
	int n;
	int free_fds = 0;
	rlim_t headroom;
	struct probe p;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
	headroom = lim.rlim_cur / 4 < SERVER_FDS_HEADROOM ? lim.rlim_cur / 4 : SERVER_FDS_HEADROOM;
	for (n = 0; n < 16; n++) {
		clients[n] = client_connect();
		probe_until(p, p.stats.connections_accepted + p.stats.connections_shed ==
			       (uint64_t)n + 1);
		if (p.stats.connections_shed > 0)
			break;
	}
	cr_assert_lt(n, 16, "no connection shed before the cap");
	cr_assert(client_sees_close(clients[n], 2000));
	close(clients[n]);
	while (free_fds < 64 && (spare[free_fds] = open("/dev/null", O_RDONLY)) >= 0)
		free_fds++;
	for (int i = 0; i < free_fds; i++)
		close(spare[i]);
	cr_assert_geq((rlim_t)free_fds, headroom - 1, "%d descriptors free, headroom %d", free_fds,
		      (int)headroom);
	while (n-- > 0)
		close(clients[n]);
}

/* ---- Authentication ---- */

static void
setup_sigv4(void)
{
	config_for_test();
	config.auth = CONFIG_AUTH_SIGV4;
	snprintf(config.access_keys, sizeof(config.access_keys), "AKIDTEST:secret-test-key");
	server_start();
}

static void
setup_presence(void)
{
	config_for_test();
	config.auth = CONFIG_AUTH_PRESENCE;
	server_start();
}

Test(server, presence_mode_needs_an_authorization_header, .init = setup_presence,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.body, "{\"__type\":\"MissingAuthenticationTokenException\","
			 "\"message\":\"Missing Authentication Token\"}");
	response_free(&r);
	/* Issue 12: AWS parses the body first: a body that is not JSON is that error. */
	client_send_str(fd, request("ListStreams", "{not json", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.body, "{\"__type\":\"SerializationException\"}");
	response_free(&r);
	client_send_str(fd, request("ListStreams", "{}", "Authorization: AWS4-HMAC-SHA256 "
				    "Credential=AKIDX/20260101/us-east-1/kinesis/aws4_request, "
				    "SignedHeaders=host, Signature=00\r\n"));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(strstr(r.body, "\"key\":\"AKIDX\""), "%s", r.body);
	response_free(&r);
	close(fd);
}

/* Signs a ListStreams request with botocore now, as the AWS CLI would; prints the headers. */
static void
botocore_sign(const char *key_id, const char *secret, char *headers, size_t cap)
{
	char cmd[2048];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c '"
		 "from botocore.auth import SigV4Auth\n"
		 "from botocore.awsrequest import AWSRequest\n"
		 "from botocore.credentials import Credentials\n"
		 "r = AWSRequest(method=\"POST\", url=\"http://127.0.0.1:%d/\", data=b\"{}\", "
		 "headers={\"X-Amz-Target\": \"Kinesis_20131202.ListStreams\", "
		 "\"Content-Type\": \"application/x-amz-json-1.1\"})\n"
		 "SigV4Auth(Credentials(\"%s\", \"%s\"), \"kinesis\", \"us-east-1\").add_auth(r)\n"
		 "p = r.prepare()\n"
		 "print(\"Host: 127.0.0.1:%d\\r\\n\" + \"\".join(\"%%s: %%s\\r\\n\" %% (k, v) "
		 "for k, v in p.headers.items() if k != \"Content-Length\"), end=\"\")'",
		 server_port, key_id, secret, server_port);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(headers, 1, cap - 1, p);
	headers[n] = '\0';
	cr_assert_eq(pclose(p), 0, "botocore signer failed");
}

Test(server, sigv4_right_keys_pass_wrong_keys_fail, .init = setup_sigv4, .fini = server_stop)
{
	static char headers[4096];
	static char raw[8192];
	int fd = client_connect();
	struct response r;

	need_tools("/usr/bin/python3");
	botocore_sign("AKIDTEST", "secret-test-key", headers, sizeof(headers));
	snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\n%sContent-Length: 2\r\n\r\n{}", headers);
	client_send_str(fd, raw);
	client_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_not_null(strstr(r.body, "\"key\":\"AKIDTEST\""), "%s", r.body);
	response_free(&r);
	botocore_sign("AKIDTEST", "wrong-secret", headers, sizeof(headers));
	snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\n%sContent-Length: 2\r\n\r\n{}", headers);
	client_send_str(fd, raw);
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert(strncmp(r.body, "{\"__type\":\"InvalidSignatureException\",\"message\":\"The "
			  "request signature we calculated does not match", 90) == 0, "%s", r.body);
	cr_assert_not_null(strstr(r.head, "x-amzn-ErrorType: InvalidSignatureException\r\n"));
	response_free(&r);
	botocore_sign("AKIDOTHER", "secret-test-key", headers, sizeof(headers));
	snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\n%sContent-Length: 2\r\n\r\n{}", headers);
	client_send_str(fd, raw);
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(r.body, "{\"__type\":\"UnrecognizedClientException\",\"message\":"
			 "\"The security token included in the request is invalid.\"}");
	response_free(&r);
	close(fd);
}

/* ---- HTTP/2 and TLS through real clients ---- */

/* Runs a shell command; returns its stdout (static buffer) and requires exit status 0. */
static const char *
run(const char *cmd)
{
	static char out[1 << 16];
	FILE *p = popen(cmd, "r");
	size_t n;

	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "command failed: %s\noutput: %s", cmd, out);
	return out;
}

#define CURL_KINESIS(action) "curl -sS --max-time 5 -H 'X-Amz-Target: Kinesis_20131202." \
	action "' -H 'Content-Type: application/x-amz-json-1.1' "

Test(server, h2c_prior_knowledge_with_curl, .init = setup_default, .fini = server_stop)
{
	char cmd[512];
	const char *out;

	need_tools("curl");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("ListStreams") "--http2-prior-knowledge -i "
		 "--data-binary '{\"h\":2}' http://127.0.0.1:%d/", server_port);
	out = run(cmd);
	cr_assert(strncmp(out, "HTTP/2 200", 10) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "x-amzn-requestid: "), "%s", out);
	cr_assert_not_null(strstr(out, "date: "), "%s", out);
	cr_assert_not_null(strstr(out, "content-type: application/x-amz-json-1.1"), "%s", out);
	cr_assert_not_null(strstr(out, "{\"body\":\"{\\\"h\\\":2}\",\"key\":\"\"}"), "%s", out);
	/* A late reply over HTTP/2. */
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("PutRecord") "--http2-prior-knowledge "
		 "--data-binary '{}' http://127.0.0.1:%d/", server_port);
	cr_assert_str_eq(run(cmd), "{\"SequenceNumber\":\"0\"}");
	/* A large response through HTTP/2 flow control. */
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("GetRecords") "--http2-prior-knowledge "
		 "--data-binary '3000000' -o /dev/null -w '%%{http_code} %%{size_download}' "
		 "http://127.0.0.1:%d/", server_port);
	cr_assert_str_eq(run(cmd), "200 4000011");
	/* Errors keep their type header. */
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("Bogus") "--http2-prior-knowledge -i "
		 "--data-binary '{}' http://127.0.0.1:%d/", server_port);
	out = run(cmd);
	cr_assert(strncmp(out, "HTTP/2 400", 10) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "x-amzn-errortype: UnknownOperationException"), "%s", out);
	/* A CORS preflight over HTTP/2. */
	snprintf(cmd, sizeof(cmd), "curl -sS -i --http2-prior-knowledge -X OPTIONS "
		 "-H 'Origin: http://app.example' -H 'Access-Control-Request-Method: POST' "
		 "http://127.0.0.1:%d/", server_port);
	out = run(cmd);
	cr_assert(strncmp(out, "HTTP/2 200", 10) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "access-control-allow-origin: *"), "%s", out);
	cr_assert_not_null(strstr(out, "access-control-allow-methods: POST"), "%s", out);
}

Test(server, h2c_many_concurrent_streams_with_h2load, .init = setup_default,
     .fini = server_stop)
{
	char cmd[1024];
	const char *out;

	need_tools("h2load nghttp");
	snprintf(temp_dir, sizeof(temp_dir), "/tmp/sluice-server-XXXXXX");
	cr_assert_not_null(mkdtemp(temp_dir));
	snprintf(cmd, sizeof(cmd), "printf '{}' > %s/body && h2load -n 300 -c 2 -m 16 "
		 "-d %s/body -H 'x-amz-target: Kinesis_20131202.PutRecord' "
		 "-H 'content-type: application/x-amz-json-1.1' http://127.0.0.1:%d/",
		 temp_dir, temp_dir, server_port);
	out = run(cmd);
	cr_assert_not_null(strstr(out, "300 succeeded, 0 failed"), "%s", out);
	cr_assert_not_null(strstr(out, "status codes: 300 2xx"), "%s", out);
	snprintf(cmd, sizeof(cmd), "nghttp -n -m 20 -d %s/body "
		 "-H 'x-amz-target: Kinesis_20131202.ListStreams' "
		 "-H 'content-type: application/x-amz-json-1.1' -s http://127.0.0.1:%d/",
		 temp_dir, server_port);
	out = run(cmd);
	/* One line per stream of the 20, each with status 200 and a 22-byte body. */
	{
		int count = 0;

		for (const char *p = out; (p = strstr(p, "  200   22 /")) != NULL; p++)
			count++;
		cr_assert_eq(count, 20, "%s", out);
	}
}

static int tls_port;

static void
setup_tls(void)
{
	char cmd[1024];

	config_for_test();
	snprintf(temp_dir, sizeof(temp_dir), "/tmp/sluice-server-XXXXXX");
	cr_assert_not_null(mkdtemp(temp_dir));
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		 "-nodes -keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null", temp_dir,
		 temp_dir);
	cr_assert_eq(system(cmd), 0);
	tls_port = free_port();
	snprintf(config.tls_listen, sizeof(config.tls_listen), "127.0.0.1:%d", tls_port);
	snprintf(config.tls_cert, sizeof(config.tls_cert), "%s/cert.pem", temp_dir);
	snprintf(config.tls_key, sizeof(config.tls_key), "%s/key.pem", temp_dir);
	server_start();
}

Test(server, tls_alpn_h2_and_http11_with_verified_certificate, .init = setup_tls,
     .fini = server_stop)
{
	char cmd[1024];

	need_tools("curl");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("PutRecord") "--cacert %s/cert.pem --http2 "
		 "--data-binary '{}' -w ' %%{http_code} %%{http_version}' "
		 "https://localhost:%d/", temp_dir, tls_port);
	cr_assert_str_eq(run(cmd), "{\"SequenceNumber\":\"0\"} 200 2");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("ListStreams") "--cacert %s/cert.pem --http1.1 "
		 "--data-binary '{}' -w ' %%{http_code} %%{http_version}' "
		 "https://localhost:%d/", temp_dir, tls_port);
	cr_assert_str_eq(run(cmd), "{\"body\":\"{}\",\"key\":\"\"} 200 1.1");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("GetRecords") "--cacert %s/cert.pem --http1.1 "
		 "--data-binary '5000000' -o /dev/null -w '%%{http_code} %%{size_download}' "
		 "https://localhost:%d/", temp_dir, tls_port);
	cr_assert_str_eq(run(cmd), "200 6666679");
	/* TLS 1.1 is refused. */
	snprintf(cmd, sizeof(cmd), "curl -s -k --tls-max 1.1 https://localhost:%d/ "
		 "|| echo refused", tls_port);
	cr_assert_str_eq(run(cmd), "refused\n");
	/* The plain port still speaks both. */
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("ListStreams") "--data-binary '{}' "
		 "http://127.0.0.1:%d/", server_port);
	cr_assert_str_eq(run(cmd), "{\"body\":\"{}\",\"key\":\"\"}");
}

Test(server, too_many_header_fields_is_431, .init = setup_default, .fini = server_stop)
{
	static char raw[8192];
	size_t used = (size_t)snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\n");

	for (unsigned i = 0; i <= HTTP1_HEADERS_MAX; i++)
		used += (size_t)snprintf(raw + used, sizeof(raw) - used, "X-H%u: v\r\n", i);
	snprintf(raw + used, sizeof(raw) - used, "\r\n");
	expect_refusal_str(raw, 431);
}

Test(server, h2_body_over_the_limit_is_413_and_the_connection_lives, .init = setup_default,
     .fini = server_stop)
{
	char cmd[1024];
	const char *out;
	struct probe p;

	need_tools("nghttp");
	snprintf(temp_dir, sizeof(temp_dir), "/tmp/sluice-server-XXXXXX");
	cr_assert_not_null(mkdtemp(temp_dir));
	/*
	 * Three streams of 1 MiB + 1 on one HTTP/2 connection (nghttp sends them at once):
	 * each is refused on its own and the connection carries all three answers. (curl
	 * 7.88 cannot reuse an h2c connection: curl/curl#10634.)
	 */
	snprintf(cmd, sizeof(cmd), "head -c 1048577 /dev/zero > %s/big && nghttp -s -m 3 "
		 "-d %s/big -H 'x-amz-target: Kinesis_20131202.ListStreams' "
		 "-H 'content-type: application/x-amz-json-1.1' http://127.0.0.1:%d/",
		 temp_dir, temp_dir, server_port);
	out = run(cmd);
	{
		int count = 0;

		for (const char *at = out; (at = strstr(at, "  413   ")) != NULL; at++)
			count++;
		cr_assert_eq(count, 3, "%s", out);
	}
	probe_read(&p);
	cr_assert_eq(p.stats.connections_accepted, 1);
}

/*
 * PutRecord replies are held until the test releases them (or the server stops): a reply
 * comes after what the test did to its client, however slow the machine.
 */
static void
setup_late_held(void)
{
	config_for_test();
	late_ms_next = LATE_HELD;
	server_start();
}

Test(server, h2_reply_after_the_client_left_is_dropped, .init = setup_late_held,
     .fini = server_stop)
{
	char port[16];
	char *argv[] = { "curl", "-sS", "-o", "/dev/null", "--http2-prior-knowledge",
			 "-H", "X-Amz-Target: Kinesis_20131202.PutRecord",
			 "-H", "Content-Type: application/x-amz-json-1.1", "--data-binary", "{}",
			 "--url", NULL, NULL };
	char url[64];
	struct probe p;
	pid_t pid;
	int status;

	need_tools("curl");
	snprintf(port, sizeof(port), "%d", server_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/", port);
	argv[12] = url;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null_fd = open("/dev/null", O_WRONLY);

		dup2(null_fd, STDERR_FILENO);
		execvp("curl", argv);
		_exit(127);
	}
	/* The request is the action's, its reply held; then the client is gone. */
	probe_until(p, p.dispatched >= 1);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	probe_until(p, p.conns_used == 0);
	__atomic_store_n(&late_release, true, __ATOMIC_RELEASE);
	probe_until(p, p.stats.replies_dropped >= 1 && p.calls_used == 0);
	cr_assert_eq(p.dispatched, 1);
	cr_assert_eq(p.stats.replies_dropped, 1);
}

/* ---- A stalled HTTP/2 upload, through nghttp2's client API ---- */

/* The pseudo-headers of a POST / on h2c, the first four entries of a request's nva. */
#define H2_CLIENT_PSEUDO_HEADERS \
	{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 }, \
	{ (uint8_t *)":path", (uint8_t *)"/", 5, 1, 0 }, \
	{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 }, \
	{ (uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, 0 }

struct h2_client {
	int fd;
	uint32_t closed_error;
	bool closed;
};

static ssize_t
h2_client_send(nghttp2_session *session, const uint8_t *data, size_t size, int flags,
	       void *user_data)
{
	struct h2_client *cl = user_data;

	(void)session;
	(void)flags;
	return send(cl->fd, data, size, MSG_NOSIGNAL);
}

static int
h2_client_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
		       void *user_data)
{
	struct h2_client *cl = user_data;

	(void)session;
	(void)stream_id;
	cl->closed = true;
	cl->closed_error = error_code;
	return 0;
}

/* A body that never comes: the stream stays open, waiting for DATA. */
static ssize_t
h2_client_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
	       uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	(void)session, (void)stream_id, (void)buf, (void)length, (void)data_flags;
	(void)source, (void)user_data;
	return NGHTTP2_ERR_DEFERRED;
}

Test(server, h2_stream_stalled_mid_request_is_reset, .init = setup_short_timeout,
     .fini = server_stop)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *session;
	struct h2_client cl = { .fd = client_connect() };
	struct probe p;
	const nghttp2_nv nva[] = {
		H2_CLIENT_PSEUDO_HEADERS,
	};
	nghttp2_data_provider body = { .read_callback = h2_client_body };
	uint64_t start = clock_mono_ns();

	cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_send_callback(cb, h2_client_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_client_stream_close);
	cr_assert_eq(nghttp2_session_client_new(&session, cb, &cl), 0);
	cr_assert_eq(nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	cr_assert_gt(nghttp2_submit_request(session, NULL, nva, 4, &body, NULL), 0);
	/* PINGs every 50 ms keep the connection active; only the stream stalls. */
	while (!cl.closed && clock_mono_ns() - start < 3000000000ull) {
		struct pollfd pfd = { .fd = cl.fd, .events = POLLIN };
		uint8_t buf[4096];

		nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, NULL);
		cr_assert_eq(nghttp2_session_send(session), 0);
		if (poll(&pfd, 1, 50) == 1) {
			ssize_t n = recv(cl.fd, buf, sizeof(buf), 0);

			cr_assert_gt(n, 0, "connection closed instead of a stream reset");
			cr_assert_geq(nghttp2_session_mem_recv(session, buf, (size_t)n), 0);
		}
	}
	cr_assert(cl.closed, "stream not reset");
	cr_assert_eq(cl.closed_error, NGHTTP2_CANCEL);
	cr_assert_geq(clock_mono_ns() - start, 250000000ull);
	nghttp2_session_del(session);
	nghttp2_session_callbacks_del(cb);
	close(cl.fd);
	probe_until(p, p.calls_used == 0);
}

/*
 * Pre-authentication lock-out: streams whose request never finishes arriving hold calls no
 * one has authenticated. Before, 32 per connection were allowed, so a few connections (far
 * under the connection cap) held every call and stalled every other client until the idle
 * timeout. Now at most SERVER_H2_READING_MAX per connection; the rest are refused.
 */
#define STALLING_CONNS 12u

Test(server, h2_streams_still_arriving_are_capped_per_connection, .init = setup_default,
     .fini = server_stop)
{
	static nghttp2_session *sessions[STALLING_CONNS];
	static struct h2_client clients[STALLING_CONNS];
	nghttp2_session_callbacks *cb;
	const nghttp2_nv nva[] = {
		H2_CLIENT_PSEUDO_HEADERS,
	};
	nghttp2_data_provider body = { .read_callback = h2_client_body };
	struct response r;
	struct probe p;
	int fd;

	/* Enough stalled streams for every call of the table (320 here) and more. */
	cr_assert_gt(STALLING_CONNS * SERVER_H2_STREAMS_MAX, server->calls_max);

	cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_send_callback(cb, h2_client_send);
	for (uint32_t i = 0; i < STALLING_CONNS; i++) {
		clients[i].fd = client_connect();
		cr_assert_eq(nghttp2_session_client_new(&sessions[i], cb, &clients[i]), 0);
		cr_assert_eq(nghttp2_submit_settings(sessions[i], NGHTTP2_FLAG_NONE, NULL, 0), 0);
		for (uint32_t j = 0; j < SERVER_H2_STREAMS_MAX; j++)
			cr_assert_gt(nghttp2_submit_request(sessions[i], NULL, nva, 4, &body, NULL),
				     0);
		cr_assert_eq(nghttp2_session_send(sessions[i]), 0);
	}
	/* Every stream either holds a call or was refused. */
	probe_until(p, p.calls_used + p.stats.h2_streams_refused >=
		       STALLING_CONNS * SERVER_H2_STREAMS_MAX);
	/* Each connection's own share, plus what all may borrow. */
	cr_assert_leq(p.calls_used, STALLING_CONNS * SERVER_H2_READING_MAX +
		      SERVER_CALLS_BORROW_MAX);
	/* Another client is served at once, not after the stalled streams time out. */
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
	for (uint32_t i = 0; i < STALLING_CONNS; i++) {
		nghttp2_session_del(sessions[i]);
		close(clients[i].fd);
	}
	nghttp2_session_callbacks_del(cb);
}

Test(server, action_errors_get_the_error_type_header, .init = setup_default,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, request("DescribeLimits", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_not_null(strstr(r.head, "x-amzn-ErrorType: LimitExceededException\r\n"), "%s",
			   r.head);
	response_free(&r);
	close(fd);
}

/* More pipelined requests than SERVER_PIPELINE_MAX: reading pauses, nothing is lost. */
Test(server, deep_pipeline_is_paced_not_dropped, .init = setup_default, .fini = server_stop)
{
	static char all[1 << 16];
	const unsigned count = SERVER_PIPELINE_MAX + 8;
	int fd = client_connect();

	all[0] = '\0';
	for (unsigned i = 0; i < count; i++)
		strcat(all, request(i % 2 == 0 ? "PutRecord" : "ListStreams", "{}", NULL));
	client_send_str(fd, all);
	for (unsigned i = 0; i < count; i++) {
		struct response r;

		client_response(fd, &r);
		cr_assert_eq(r.status, 200, "response %u", i);
		if (i % 2 == 0)
			cr_assert(strncmp(r.body, "{\"SequenceNumber\"", 17) == 0, "%u: %s", i,
				  r.body);
		else
			cr_assert_str_eq(r.body, "{\"body\":\"{}\",\"key\":\"\"}", "%u", i);
		response_free(&r);
	}
	close(fd);
}

Test(server, half_closed_client_still_gets_its_late_reply, .init = setup_default,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, request("PutRecord", "{}", NULL));
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"SequenceNumber\":\"0\"}");
	response_free(&r);
	cr_assert(client_sees_close(fd, 2000));
	close(fd);
}

/* Connection: close, then more bytes while the late reply is pending: no busy loop. */
Test(server, bytes_after_connection_close_are_ignored, .init = setup_default,
     .fini = server_stop)
{
	static char both[1 << 17];
	int fd = client_connect();
	struct response r;
	struct probe before;
	struct probe p;

	snprintf(both, sizeof(both), "%s", request("PutRecord", "{}", "Connection: close\r\n"));
	client_send_str(fd, both);
	probe_until(before, before.dispatched >= 1);
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	probe_read(&p);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(strstr(r.head, "Connection: close\r\n"));
	response_free(&r);
	cr_assert(client_sees_close(fd, 2000));
	/*
	 * The ignored bytes must not wake the loop again and again while the late reply is due
	 * (a busy loop makes thousands of passes in LATE_MS). Counted in loop passes, not CPU time:
	 * a pass happens per tick (SERVER_TICK_MS), per event and per probe, so a loaded machine
	 * makes fewer, never more. 64 leaves room for a few ticks, the probes and the events.
	 */
	cr_assert_lt(p.stats.loop_passes - before.stats.loop_passes, 64, "%llu passes",
		     (unsigned long long)(p.stats.loop_passes - before.stats.loop_passes));
	cr_assert_eq(p.dispatched, 1);     /* The ListStreams after the close was not run. */
	close(fd);
}

Test(server, tls_without_alpn_and_garbage_on_the_tls_port, .init = setup_tls,
     .fini = server_stop)
{
	char cmd[1024];
	const char *out;
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)tls_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd;
	struct probe p;

	need_tools("openssl");
	/* No ALPN at all: the protocol is detected from the first bytes, as on the plain port. */
	snprintf(cmd, sizeof(cmd), "printf 'POST / HTTP/1.1\\r\\nX-Amz-Target: "
		 "Kinesis_20131202.ListStreams\\r\\nContent-Type: application/x-amz-json-1.1"
		 "\\r\\nConnection: close\\r\\nContent-Length: 2\\r\\n\\r\\n{}' | "
		 "openssl s_client -quiet -verify_quiet -CAfile %s/cert.pem -connect "
		 "127.0.0.1:%d 2>/dev/null", temp_dir, tls_port);
	out = run(cmd);
	cr_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "{\"body\":\"{}\",\"key\":\"\"}"), "%s", out);
	/* Plain HTTP on the TLS port: the handshake fails and the connection closes. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	client_send_str(fd, request("ListStreams", "{}", NULL));
	cr_assert(client_sees_close(fd, 2000));
	close(fd);
	probe_until(p, p.conns_used == 0);
}

/*
 * The buffer pool is the memory bound: with every body-sized buffer held by
 * requests the actions have not answered, the next body gets 503 (which SDKs
 * retry) instead of more memory. 1 MiB bodies fit the 2 MiB class
 * (SERVER_POOL_LARGE_COUNT) and then the largest (SERVER_POOL_HUGE_COUNT).
 */
/* Room for 41 pipelining connections (656 calls); replies held; no idle timeouts. */
static void
setup_calls_held(void)
{
	config_for_test();
	config.connections_max = 100;
	config.idle_timeout_ms = 60000;
	late_ms_next = LATE_HELD;
	server_start();
}

/*
 * An HTTP/1.1 connection paused because no call was free anywhere resumes when a call is
 * freed on another connection. Before, only a call freed on the same connection woke it, so
 * a connection that held none hung until the idle timeout and was closed unanswered.
 */
Test(server, paused_http1_resumes_when_any_call_is_freed, .init = setup_calls_held,
     .fini = server_stop)
{
	static char pipeline[SERVER_PIPELINE_MAX * 512];
	static int holders[64];
	const uint32_t holder_count = server->calls_max / SERVER_PIPELINE_MAX;
	struct response r;
	struct probe p;
	int fd;

	cr_assert_eq(server->calls_max % SERVER_PIPELINE_MAX, 0, "the shape this test assumes");
	cr_assert_leq(holder_count, 64);
	pipeline[0] = '\0';
	for (uint32_t i = 0; i < SERVER_PIPELINE_MAX; i++)
		strcat(pipeline, request("PutRecord", "{}", NULL));
	/* Every call of the server waits for a held reply. */
	for (uint32_t i = 0; i < holder_count; i++) {
		holders[i] = client_connect();
		client_send_str(holders[i], pipeline);
	}
	probe_until(p, p.calls_used == server->calls_max);
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	probe_until(p, p.starved >= 1);    /* The new connection is paused, holding no call. */
	__atomic_store_n(&late_release, true, __ATOMIC_RELEASE);
	probe_read(&p);                    /* Wakes the loop: the held replies go out. */
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
	for (uint32_t i = 0; i < holder_count; i++)
		close(holders[i]);
}

Test(server, body_buffers_exhausted_is_503, .init = setup_late_held, .fini = server_stop)
{
	static char body[(1 << 20) - 64];
	static char head[512];
	const unsigned held = SERVER_POOL_LARGE_COUNT + SERVER_POOL_HUGE_COUNT;
	const unsigned per_conn = 12;
	int fds[4];
	int extra;
	struct response r;
	struct probe p;

	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecord"
		 "\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n",
		 sizeof(body));
	cr_assert_eq(held % per_conn, 0);
	for (unsigned c = 0; c < held / per_conn; c++) {
		fds[c] = client_connect();
		for (unsigned i = 0; i < per_conn; i++) {
			client_send_str(fds[c], head);
			client_send(fds[c], body, sizeof(body));
		}
	}
	probe_until(p, p.dispatched >= held);
	cr_assert_eq(p.dispatched, held);
	extra = client_connect();
	client_send_str(extra, head);
	client_response(extra, &r);
	cr_assert_eq(r.status, 503, "%s", r.head);
	cr_assert_not_null(strstr(r.head, "Connection: close\r\n"));
	cr_assert_str_eq(r.body, "{\"__type\":\"ServiceUnavailable\",\"message\":\"Server busy: "
			 "retry\"}");
	response_free(&r);
	close(extra);
	for (unsigned c = 0; c < held / per_conn; c++)
		close(fds[c]);
}

static void
setup_sixty_four_connections(void)
{
	config_for_test();
	config.connections_max = 64;
	config.request_body_size_max = 4 << 20;
	server_start();
}

/*
 * The body buffer is reserved from the head's Content-Length, before the body arrives and
 * before authentication. Before, peers trickling 1.5 MB bodies pinned every large buffer
 * and every client's large request got 503; now a connection with no request accepted
 * takes at most half of each class, and a client that made a request gets the other half.
 */
#define PINNERS 40u

Test(server, trickled_bodies_cannot_pin_every_large_buffer,
     .init = setup_sixty_four_connections, .fini = server_stop)
{
	static char body[1 << 20];
	static char head[512];
	static int pinners[PINNERS];
	struct response r;
	struct probe p;
	int fd;

	for (uint32_t i = 0; i < PINNERS; i++) {
		pinners[i] = client_connect();
		client_send_str(pinners[i], "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202."
				"PutRecord\r\nContent-Type: application/x-amz-json-1.1\r\n"
				"Content-Length: 1500000\r\n\r\n{");
	}
	/* Every head handled: a buffer reserved (open), or 503 and closed. */
	probe_until(p, p.stats.connections_accepted >= PINNERS);
	probe_until(p, p.big_in_use == p.conns_used);
	cr_assert_leq(p.big_in_use, (SERVER_POOL_LARGE_COUNT + SERVER_POOL_HUGE_COUNT) / 2);
	/* A client that made a request gets a large buffer for its next one. */
	fd = client_connect();
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecord"
		 "\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n",
		 sizeof(body));
	client_send_str(fd, head);
	client_send(fd, body, sizeof(body));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	response_free(&r);
	close(fd);
	for (uint32_t i = 0; i < PINNERS; i++)
		close(pinners[i]);
}

Test(server, cors_preflight_and_origin_headers, .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	client_send_str(fd, "OPTIONS / HTTP/1.1\r\nOrigin: http://app.example\r\n"
			"Access-Control-Request-Method: POST\r\n"
			"Access-Control-Request-Headers: content-type,x-amz-target,"
			"authorization\r\n"
			"\r\n");
	client_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_eq(r.body_size, 0);
	cr_assert_not_null(strstr(r.head, "access-control-allow-origin: *\r\n"), "%s", r.head);
	cr_assert_not_null(strstr(r.head, "access-control-allow-headers: content-type,x-amz-target,"
				  "authorization\r\n"), "%s", r.head);
	cr_assert_not_null(strstr(r.head, "access-control-allow-methods: POST\r\n"), "%s", r.head);
	cr_assert_not_null(strstr(r.head, "access-control-max-age: 172800\r\n"), "%s", r.head);
	/* As AWS: a preflight has no Content-Type and no x-amz-id-2 (issue 12). */
	cr_assert_null(strcasestr(r.head, "\r\ncontent-type:"), "%s", r.head);
	cr_assert_null(strcasestr(r.head, "x-amz-id-2"), "%s", r.head);
	response_free(&r);
	client_send_str(fd, request("ListStreams", "{}", "Origin: http://app.example\r\n"));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(strstr(r.head, "access-control-allow-origin: *\r\n"), "%s", r.head);
	cr_assert_not_null(strstr(r.head, "access-control-expose-headers: x-amzn-RequestId,"), "%s",
			   r.head);
	assert_id2(&r);
	response_free(&r);
	/* Without Origin: no CORS headers, and OPTIONS is just another non-POST. */
	client_send_str(fd, "OPTIONS / HTTP/1.1\r\n\r\n");
	client_response(fd, &r);
	cr_assert_eq(r.status, 403);
	cr_assert_null(strstr(r.head, "access-control"), "%s", r.head);
	response_free(&r);
	close(fd);
}

/* curl's own SigV4 signer over h2c: it signs "host", which HTTP/2 carries as :authority. */
Test(server, sigv4_over_http2_with_curl, .init = setup_sigv4, .fini = server_stop)
{
	char cmd[1024];

	need_tools("curl");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("ListStreams") "--http2-prior-knowledge "
		 "--aws-sigv4 aws:amz:us-east-1:kinesis --user AKIDTEST:secret-test-key "
		 "--data-binary '{}' -w ' %%{http_code} %%{http_version}' http://127.0.0.1:%d/",
		 server_port);
	cr_assert_str_eq(run(cmd), "{\"body\":\"{}\",\"key\":\"AKIDTEST\"} 200 2");
	snprintf(cmd, sizeof(cmd), CURL_KINESIS("ListStreams") "--http2-prior-knowledge "
		 "--aws-sigv4 aws:amz:us-east-1:kinesis --user AKIDTEST:not-the-key "
		 "--data-binary '{}' -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/",
		 server_port);
	cr_assert_str_eq(run(cmd), "400");
}

Test(server, response_over_the_cap_is_internal_failure, .init = setup_default,
     .fini = server_stop)
{
	int fd = client_connect();
	struct response r;

	/* 16 MiB of data is 21.3 MiB of base64: over SERVER_OUT_SIZE_MAX. */
	client_send_str(fd, request("GetRecords", "16777216", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 500, "%s", r.head);
	cr_assert_str_eq(r.body, "{\"__type\":\"InternalFailure\"}");
	response_free(&r);
	/* The connection and the server go on. */
	client_send_str(fd, request("GetRecords", "3", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"Data\":\"+/v7\"}");
	response_free(&r);
	close(fd);
}

/* ---- Streaming answers (api_call_stream_*): HTTP/1.1 chunks, HTTP/2 DATA ---- */

/* Checks EventStream messages in `data`: numbered from *next on, `payload_size` each. */
static size_t
stream_check_events(const uint8_t *data, size_t size, uint32_t *next, uint32_t payload_size)
{
	static struct es_message m;
	size_t at = 0;

	for (;;) {
		size_t used = 0;
		int rc = es_decode(data + at, size - at, &m, &used);
		char want[9];

		if (rc == -EAGAIN)
			return at;
		cr_assert_eq(rc, 0, "event %u: decode %d", *next, rc);
		cr_assert_eq(m.payload_size, payload_size);
		snprintf(want, sizeof(want), "%08u", *next);
		cr_assert_eq(memcmp(m.payload, want, 8), 0, "event %u out of order", *next);
		cr_assert_not_null(es_message_header(&m, ":event-type"));
		(*next)++;
		at += used;
	}
}

/*
 * Reads a chunked streaming answer from `fd` (after its head), checking every event,
 * until the last chunk, or until `stop_after` events when that is not 0. Returns the
 * events read.
 */
static uint32_t
client_stream_read(int fd, uint32_t payload_size, uint32_t stop_after)
{
	static uint8_t body[4u << 20];
	size_t body_used = 0;
	uint32_t next = 0;
	char *head_end;
	long n = client_read_until(fd, client_buf, sizeof(client_buf), client_buf_used, "\r\n\r\n",
				   5000);

	cr_assert_gt(n, 0);
	client_buf_used = (size_t)n;
	head_end = strstr(client_buf, "\r\n\r\n");
	cr_assert_not_null(head_end);
	*head_end = '\0';
	cr_assert(strncmp(client_buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", client_buf);
	cr_assert_not_null(strstr(client_buf, "\r\nTransfer-Encoding: chunked"), "%s", client_buf);
	cr_assert_not_null(strstr(client_buf, "\r\nContent-Type: application/vnd.amazon.eventstream"));
	cr_assert_null(strcasestr(client_buf, "Content-Length"));
	size_t at = (size_t)(head_end - client_buf) + 4;

	for (;;) {
		char *line_end;
		size_t chunk;

		while ((line_end = memmem(client_buf + at, client_buf_used - at, "\r\n", 2)) == NULL ||
		       client_buf_used - at < (size_t)(line_end - client_buf - (long)at) + 2 +
		       strtoul(client_buf + at, NULL, 16) + 2) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			cr_assert_eq(poll(&pfd, 1, 5000), 1, "stream stalled after %u events", next);
			n = recv(fd, client_buf + client_buf_used,
				 sizeof(client_buf) - 1 - client_buf_used, 0);
			cr_assert_gt(n, 0, "closed after %u events", next);
			client_buf_used += (size_t)n;
		}
		chunk = strtoul(client_buf + at, NULL, 16);
		at = (size_t)(line_end - client_buf) + 2;
		if (chunk == 0) {
			cr_assert_eq(memcmp(client_buf + at, "\r\n", 2), 0);
			at += 2;
			break;
		}
		cr_assert_leq(body_used + chunk, sizeof(body));
		memcpy(body + body_used, client_buf + at, chunk);
		body_used += chunk;
		at += chunk;
		cr_assert_eq(memcmp(client_buf + at, "\r\n", 2), 0, "chunk without CRLF");
		at += 2;
		size_t done = stream_check_events(body, body_used, &next, payload_size);

		memmove(body, body + done, body_used - done);
		body_used -= done;
		/* Keep the client buffer small: drop what was parsed. */
		memmove(client_buf, client_buf + at, client_buf_used - at);
		client_buf_used -= at;
		at = 0;
		if (stop_after != 0 && next >= stop_after)
			return next;
	}
	cr_assert_eq(body_used, 0, "bytes after the last event");
	memmove(client_buf, client_buf + at, client_buf_used - at);
	client_buf_used -= at;
	return next;
}

Test(server, stream_h1_chunks_carry_every_event_then_the_connection_goes_on,
     .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct response r;
	struct probe p;

	client_send_str(fd, request("SubscribeToShard", "500 1000", NULL));
	cr_assert_eq(client_stream_read(fd, 1000, 0), 500);
	/* A stream ended properly leaves the connection usable (keep-alive). */
	client_send_str(fd, request("ListStreams", "{}", NULL));
	client_response(fd, &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	close(fd);
	probe_until(p, p.calls_used == 0 && p.streams_open == 0);
	cr_assert_eq(p.stream_events, 500);
	cr_assert_eq(p.stats.streams_started, 1);
	cr_assert_eq(p.stats.streams_ended, 1);
	cr_assert_eq(p.streams_gone, 0);
}

/* Decodes a whole file of EventStream messages; returns how many. */
static uint32_t
stream_file_events(const char *path, uint32_t payload_size)
{
	static uint8_t data[8u << 20];
	FILE *f = fopen(path, "rb");
	uint32_t next = 0;
	size_t n;

	cr_assert_not_null(f, "%s", path);
	n = fread(data, 1, sizeof(data), f);
	fclose(f);
	cr_assert_eq(stream_check_events(data, n, &next, payload_size), n, "a partial event");
	return next;
}

Test(server, stream_with_curl_over_h1_and_h2c, .init = setup_default, .fini = server_stop)
{
	char cmd[768];
	struct probe p;

	need_tools("curl");
	cr_assert_not_null(mkdtemp(strcpy(temp_dir, "/tmp/fanout-stream-XXXXXX")));
	for (int h2 = 0; h2 < 2; h2++) {
		snprintf(cmd, sizeof(cmd), CURL_KINESIS("SubscribeToShard") "%s --data-binary "
			 "'3000 700' -o %s/events -w '%%{http_code} %%{http_version} "
			 "%%{content_type}' http://127.0.0.1:%d/",
			 h2 ? "--http2-prior-knowledge" : "--http1.1", temp_dir, server_port);
		cr_assert_str_eq(run(cmd), h2 ? "200 2 application/vnd.amazon.eventstream" :
				 "200 1.1 application/vnd.amazon.eventstream");
		snprintf(cmd, sizeof(cmd), "%s/events", temp_dir);
		cr_assert_eq(stream_file_events(cmd, 700), 3000, "h2 %d", h2);
	}
	probe_until(p, p.calls_used == 0 && p.streams_open == 0);
	cr_assert_eq(p.stats.streams_ended, 2);
}

/* Probes until the events a stream took stop changing (100 probes alike); returns them. */
static uint64_t
stream_wait_stable(struct probe *p)
{
	uint64_t end_ns = clock_mono_ns() + WAIT_DEADLINE_MS * 1000000ull;
	uint64_t taken = p->stream_events;

	for (int alike = 0; alike < 100; alike++) {
		cr_assert_lt(clock_mono_ns(), end_ns, "the stream never stopped taking events");
		usleep(1000);
		probe_read(p);
		if (p->stream_events != taken)
			alike = 0;
		taken = p->stream_events;
	}
	cr_assert_lt(taken, 10000);
	return taken;
}

/*
 * A reader that stops reading: the stream is refused, holds at most the bound, and
 * every event the server took reaches the reader, in order, once it reads again.
 */
Test(server, stream_h1_slow_reader_is_bounded_and_loses_nothing, .init = setup_default,
     .fini = server_stop)
{
	int fd = client_connect();
	struct probe p;
	uint32_t read_count;

	client_send_str(fd, request("SubscribeToShard", "100000 16384", NULL));
	probe_until(p, p.stats.stream_writes_refused > 0);
	/*
	 * Blocked: the kernel's socket buffers fill (they grow by autotuning for a while),
	 * then nothing more is taken however long the reader sleeps. 100,000 events would
	 * be 1.6 GB: a stream that never stopped would take them all.
	 */
	uint64_t taken = stream_wait_stable(&p);

	cr_assert_leq(p.stream_pending_max, API_STREAM_PENDING_MAX + 16384 + 64);
	cr_assert_leq(p.big_in_use, 1);
	/* Reading again resumes the stream (WRITABLE) and loses nothing. */
	read_count = client_stream_read(fd, 16384, (uint32_t)taken + 50);
	cr_assert_geq(read_count, taken + 50);
	close(fd);
	probe_until(p, p.calls_used == 0 && p.streams_open == 0);
	cr_assert_eq(p.streams_gone, 1);
	cr_assert_eq(p.stats.streams_gone, 1);
}

static ssize_t
h2_client_body_text(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
		    uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	size_t n = strlen(source->ptr);

	(void)session, (void)stream_id, (void)user_data;
	cr_assert_leq(n, length);
	memcpy(buf, source->ptr, n);
	*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Moves bytes both ways for `ms` (the client's frames out, the server's in). */
static void
h2_client_pump(nghttp2_session *session, struct h2_client *cl, int ms)
{
	uint64_t end = clock_mono_ns() + (uint64_t)ms * 1000000u;

	while (clock_mono_ns() < end) {
		struct pollfd pfd = { .fd = cl->fd, .events = POLLIN };
		uint8_t buf[16384];

		cr_assert_eq(nghttp2_session_send(session), 0);
		if (poll(&pfd, 1, 10) == 1) {
			ssize_t n = recv(cl->fd, buf, sizeof(buf), 0);

			cr_assert_gt(n, 0, "the server closed the connection");
			cr_assert_geq(nghttp2_session_mem_recv(session, buf, (size_t)n), 0);
		}
	}
}

/*
 * HTTP/2: a client that grants no more flow-control window (it never consumes what it
 * receives) stops the server's pulls; the stream is bounded like a full socket; a
 * RST_STREAM from the client is GONE to the action and frees the call.
 */
Test(server, stream_h2_closed_window_is_bounded_then_reset_frees_it, .init = setup_default,
     .fini = server_stop)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *session;
	nghttp2_option *opt;
	struct h2_client cl = { .fd = client_connect() };
	struct probe p;
	const nghttp2_nv nva[] = {
		H2_CLIENT_PSEUDO_HEADERS,
		{ (uint8_t *)"x-amz-target", (uint8_t *)"Kinesis_20131202.SubscribeToShard", 12, 33,
		  0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/x-amz-json-1.1", 12, 26, 0 },
	};
	nghttp2_data_provider body = { .source.ptr = (void *)"100000 16384",
				       .read_callback = h2_client_body_text };
	int32_t stream_id;
	uint64_t taken;

	cr_assert_eq(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, 1);  /* The window never reopens. */
	cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_send_callback(cb, h2_client_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_client_stream_close);
	cr_assert_eq(nghttp2_session_client_new2(&session, cb, &cl, opt), 0);
	cr_assert_eq(nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	stream_id = nghttp2_submit_request(session, NULL, nva, 6, &body, NULL);
	cr_assert_gt(stream_id, 0);
	for (probe_read(&p); p.stats.stream_writes_refused == 0; probe_read(&p)) {
		cr_assert_lt(p.stream_events, 100000, "never refused");
		h2_client_pump(session, &cl, 20);
	}
	taken = p.stream_events;
	/* The window is 65,535 bytes: what the server took is that and one buffer's worth. */
	cr_assert_leq(taken * 16400, 65535 + API_STREAM_PENDING_MAX + 2 * 16400);
	h2_client_pump(session, &cl, 200);
	probe_read(&p);
	cr_assert_eq(p.stream_events, taken, "the server took events past a closed window");
	cr_assert_leq(p.stream_pending_max, API_STREAM_PENDING_MAX + 16384 + 64);
	cr_assert_leq(p.big_in_use, 1);
	cr_assert(!cl.closed);
	cr_assert_eq(nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
					       NGHTTP2_CANCEL), 0);
	h2_client_pump(session, &cl, 20);
	probe_until(p, p.calls_used == 0 && p.streams_open == 0);
	cr_assert_eq(p.streams_gone, 1);
	nghttp2_session_del(session);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	close(cl.fd);
}

Test(server, stream_with_curl_over_tls_h2_and_h1, .init = setup_tls, .fini = server_stop)
{
	char cmd[1024];
	struct probe p;

	need_tools("curl");
	for (int h2 = 0; h2 < 2; h2++) {
		snprintf(cmd, sizeof(cmd), CURL_KINESIS("SubscribeToShard") "--cacert %s/cert.pem "
			 "%s --data-binary '2000 3000' -o %s/events -w '%%{http_code} "
			 "%%{http_version}' https://localhost:%d/", temp_dir,
			 h2 ? "--http2" : "--http1.1", temp_dir, tls_port);
		cr_assert_str_eq(run(cmd), h2 ? "200 2" : "200 1.1");
		snprintf(cmd, sizeof(cmd), "%s/events", temp_dir);
		cr_assert_eq(stream_file_events(cmd, 3000), 2000, "h2 %d", h2);
	}
	probe_until(p, p.calls_used == 0 && p.streams_open == 0);
	cr_assert_eq(p.stats.streams_ended, 2);
}

/* A subscriber that closes its side has left: the stream is GONE at once, not at its end. */
Test(server, stream_h1_client_eof_is_gone, .init = setup_default, .fini = server_stop)
{
	int fd = client_connect();
	struct probe p;

	client_send_str(fd, request("SubscribeToShard", "100000 100", NULL));
	probe_until(p, p.stats.streams_started == 1);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	probe_until(p, p.streams_gone == 1 && p.calls_used == 0 && p.streams_open == 0);
	close(fd);
}

/* ---- A graceful stop (api_server_drain) ---- */

/* Waits for the server thread to return by itself (no api_server_stop). */
static void
server_join_by_itself(void)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_DEADLINE_MS / 1000;
	cr_assert_eq(pthread_timedjoin_np(server_thread, NULL, &deadline), 0,
		     "the loop did not return after its drain");
	server_joined = true;
}

/*
 * The action holds a put (as one waiting for durability) when the drain starts: the
 * listener closes, a request sent then on a keep-alive connection is refused 503 +
 * Connection: close without reaching the action, the held put gets its 200 (with
 * Connection: close), and then the loop returns by itself.
 */
Test(server, drain_answers_calls_taken_and_refuses_new_ones, .init = setup_late_held,
     .fini = server_stop)
{
	int held = client_connect();
	int keep = client_connect();
	struct response r;
	struct probe p;

	client_send_str(keep, request("ListStreams", "{}", NULL));
	client_response(keep, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_null(strcasestr(r.head, "\r\nConnection: close"), "%s", r.head);
	response_free(&r);
	client_send_str(held, request("PutRecord", "{}", NULL));
	probe_until(p, p.dispatched >= 2);

	api_server_drain(server, WAIT_DEADLINE_MS);
	probe_until(p, p.draining);
	cr_assert_eq(client_try_connect(), -ECONNREFUSED, "a new connection while stopping");
	client_send_str(keep, request("ListStreams", "{}", NULL));
	client_response(keep, &r);
	cr_assert_eq(r.status, 503, "%s", r.head);
	cr_assert_not_null(strcasestr(r.head, "\r\nConnection: close"), "%s", r.head);
	cr_assert_not_null(strcasestr(r.head, "\r\nx-amzn-ErrorType: ServiceUnavailable"), "%s",
			   r.head);
	response_free(&r);
	cr_assert(client_sees_close(keep, WAIT_DEADLINE_MS));
	probe_read(&p);
	cr_assert_eq(p.dispatched, 2, "the refused request reached the action");
	cr_assert_eq(p.stats.requests_refused_stopping, 1);

	__atomic_store_n(&late_release, true, __ATOMIC_RELEASE);
	probe_read(&p);  /* Wakes kinesis_poll(), which now answers the held put. */
	client_response(held, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_not_null(strcasestr(r.head, "\r\nConnection: close"), "%s", r.head);
	cr_assert_not_null(strstr(r.body, "SequenceNumber"), "%s", r.body);
	response_free(&r);
	cr_assert(client_sees_close(held, WAIT_DEADLINE_MS));
	server_join_by_itself();
	cr_assert_eq(server->stats.calls_cut_at_stop, 0);
	close(keep);
	close(held);
}

/* The grace ends with the put still held: the loop returns, counting it, and it is cut. */
Test(server, drain_grace_ends_with_a_call_held, .init = setup_late_held, .fini = server_stop)
{
	int held = client_connect();
	struct probe p;

	client_send_str(held, request("PutRecord", "{}", NULL));
	probe_until(p, p.dispatched >= 1);
	api_server_drain(server, 1);
	server_join_by_itself();
	cr_assert_eq(server->stats.calls_cut_at_stop, 1);
	cr_assert_eq(server->calls_used, 1);  /* Still the action's: server_stop answers it. */
	close(held);
}
