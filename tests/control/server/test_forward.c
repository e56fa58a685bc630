/*
 * forward: the two pure halves of forwarding a put to a shard's leader
 * (control/forward.h). The split: a job's body is a PutRecords that the
 * server's own JSON reader takes back byte for byte (data, partition keys with
 * quotes, backslashes, control and non-ASCII characters, hash keys), with the
 * record and body bounds and the in-flight bound refusing cleanly. The merge:
 * a leader's answer becomes per-record results in order (numbers and shard
 * ids that must agree), and every other answer fails every record with the
 * right class (throttled: safe to retry; InternalFailure: outcome unknown).
 * A relay (forward_stream_*): its ring, its slot bound, and real transfers from a
 * holder thread on loopback: paused at the ring's bound and resumed with every byte
 * in order, cancelled when let go, a refusal read whole, a refused connection (and
 * the same relay opened again on the next holder). A read passed through: a holder
 * that takes it and hangs, or breaks the connection, lets it go on to the next holder
 * (an error answer does not), within its deadline.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/base64.h"
#include "control/config.h"
#include "control/forward.h"

static struct forward *
forward_start(void)
{
	static struct sluice_config config;
	struct forward *f = NULL;

	config_defaults(&config);
	cr_assert_eq(forward_open(&config, &f), 0);
	return f;
}

/* The body as the leader reads it: the "]}" the submit adds, then JSON. */
static cJSON *
body_parse(const struct forward_job *job)
{
	size_t size;
	const char *body = forward_job_body(job, &size);
	char *text = malloc(size + 3);
	cJSON *root;

	cr_assert_not_null(text);
	memcpy(text, body, size);
	memcpy(text + size, "]}", 3);
	root = cJSON_Parse(text);
	free(text);
	cr_assert_not_null(root, "the body is not JSON");
	return root;
}

Test(forward, a_job_body_is_the_records_put_records_reads_back)
{
	static const char *keys[] = { "plain", "q\"uote\\back", "tab\tnl\n\x01", "\xc3\xa9t\xc3\xa9" };
	struct forward *f = forward_start();
	struct forward_job *job = forward_job_get(f, "my-stream.1", "127.0.0.1:1", "AKID", 7);
	uint8_t data[4][300];
	cJSON *root;
	const cJSON *rec;
	uint32_t i = 0;

	cr_assert_not_null(job);
	for (uint32_t r = 0; r < 4; r++) {
		for (size_t b = 0; b < sizeof(data[r]); b++)
			data[r][b] = (uint8_t)(r * 31 + b);
		cr_assert_eq(forward_job_add(job, keys[r], strlen(keys[r]), r == 2 ? "12345" : NULL,
					     data[r], 100 + r, (uint16_t)(10 + r)), 0);
	}
	cr_assert_eq(forward_job_count(job), 4);
	cr_assert_eq(forward_job_cookie(job), 7);
	root = body_parse(job);
	cr_assert_str_eq(cJSON_GetObjectItem(root, "StreamName")->valuestring, "my-stream.1");
	cJSON_ArrayForEach(rec, cJSON_GetObjectItem(root, "Records")) {
		const char *b64 = cJSON_GetObjectItem(rec, "Data")->valuestring;
		const cJSON *hash = cJSON_GetObjectItem(rec, "ExplicitHashKey");
		uint8_t decoded[400];
		int64_t n = base64_decode(b64, strlen(b64), decoded, sizeof(decoded));

		cr_assert_eq(n, 100 + (int64_t)i);
		cr_assert_eq(memcmp(decoded, data[i], (size_t)n), 0);
		cr_assert_str_eq(cJSON_GetObjectItem(rec, "PartitionKey")->valuestring, keys[i]);
		cr_assert_eq(hash != NULL, i == 2);
		if (hash != NULL)
			cr_assert_str_eq(hash->valuestring, "12345");
		cr_assert_eq(forward_job_tag(job, i), 10 + i);
		i++;
	}
	cr_assert_eq(i, 4);
	cJSON_Delete(root);
	forward_job_put(f, job);
	forward_close(f);
}

Test(forward, the_bounds_refuse_without_breaking_the_body)
{
	struct forward *f = forward_start();
	struct forward_job *jobs[FORWARD_INFLIGHT_MAX];
	uint8_t *big = calloc(1, FORWARD_BODY_SIZE_MAX);
	struct forward_job *job;
	cJSON *root;

	cr_assert_not_null(big);
	for (uint32_t i = 0; i < FORWARD_INFLIGHT_MAX; i++)
		cr_assert_not_null(jobs[i] = forward_job_get(f, "s", "h:1", "", i));
	cr_assert_null(forward_job_get(f, "s", "h:1", "", 99), "past FORWARD_INFLIGHT_MAX");
	for (uint32_t i = 1; i < FORWARD_INFLIGHT_MAX; i++)
		forward_job_put(f, jobs[i]);
	job = jobs[0];
	/* A record whose base64 passes the body bound: refused, the body as it was. */
	cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, FORWARD_BODY_SIZE_MAX * 3 / 4, 0),
		     -ENOSPC);
	cr_assert_eq(forward_job_count(job), 0);
	for (uint32_t i = 0; i < FORWARD_RECORDS_MAX; i++)
		cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, 10, (uint16_t)i), 0);
	cr_assert_eq(forward_job_add(job, "k", 1, NULL, big, 10, 0), -ENOSPC, "record 501");
	root = body_parse(job);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "Records")),
		     (int)FORWARD_RECORDS_MAX);
	cJSON_Delete(root);
	forward_job_put(f, job);
	cr_assert_not_null(job = forward_job_get(f, "s", "h:1", "", 1), "a job put back is free");
	forward_job_put(f, job);
	free(big);
	forward_close(f);
}

/* A leader's sequence number for shard `index`, from its own formatter. */
static void
seq_text(uint32_t index, uint64_t seq, char *out)
{
	struct seqnum sn = { .shard_created_s = 1700000000, .shard_index = index, .seq = seq,
			     .put_s = 1700000100 };

	seqnum_format(&sn, out);
}

Test(forward, a_leaders_answer_is_merged_record_by_record)
{
	struct forward_result res[3];
	char s1[SEQNUM_DECIMAL_SIZE];
	char s2[SEQNUM_DECIMAL_SIZE];
	char body[1024];

	seq_text(3, 41, s1);
	seq_text(5, 7, s2);
	snprintf(body, sizeof(body), "{\"FailedRecordCount\":1,\"Records\":["
		 "{\"SequenceNumber\":\"%s\",\"ShardId\":\"shardId-000000000003\"},"
		 "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"x\"},"
		 "{\"ShardId\":\"shardId-000000000005\",\"SequenceNumber\":\"%s\"}]}", s1, s2);
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 3), 0);
	cr_assert_eq(res[0].error, 0);
	cr_assert_eq(res[0].sn.shard_index, 3);
	cr_assert_eq(res[0].sn.seq, 41);
	cr_assert_eq(res[0].sn.shard_created_s, 1700000000);
	cr_assert_eq(res[0].sn.put_s, 1700000100);
	cr_assert_eq(res[1].error, -EPIPE);
	cr_assert_eq(res[2].error, 0);
	cr_assert_eq(res[2].sn.shard_index, 5);
	cr_assert_eq(res[2].sn.seq, 7);

	snprintf(body, sizeof(body), "{\"Records\":[{\"ErrorCode\":\"InternalFailure\"}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 1), 0);
	cr_assert_eq(res[0].error, -EIO);
}

/* Every record of `count` failed with `error`. */
static void
all_failed(const struct forward_result *res, uint32_t count, int32_t error)
{
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(res[i].error, error, "record %u: %d, want %d", i, res[i].error, error);
}

Test(forward, any_other_answer_fails_every_record)
{
	struct forward_result res[2];
	char s1[SEQNUM_DECIMAL_SIZE];
	char body[1024];
	static const struct {
		long status;
		const char *body;
		int32_t error;
	} whole[] = {
		{ 400, "{\"__type\":\"ProvisionedThroughputExceededException\"}", -EPIPE },
		{ 400, "{\"__type\":\"com.amazonaws#ProvisionedThroughputExceededException\"}", -EPIPE },
		{ 503, "{\"__type\":\"ServiceUnavailable\",\"message\":\"busy\"}", -EPIPE },
		{ 500, "{\"__type\":\"InternalFailure\"}", -EIO },
		{ 400, "{\"__type\":\"AccessDeniedException\"}", -EIO },
		{ 502, "<html>bad gateway</html>", -EIO },
	};

	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		cr_assert_eq(forward_reply_parse(whole[i].status, whole[i].body,
						 strlen(whole[i].body), res, 2), 0);
		all_failed(res, 2, whole[i].error);
	}
	/* A 200 that is not the answer asked for: -EINVAL, every record InternalFailure. */
	seq_text(3, 41, s1);
	snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"%s\",\"ShardId\":"
		 "\"shardId-000000000004\"},{\"ErrorCode\":\"InternalFailure\"}]}", s1);
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL,
		     "ShardId and SequenceNumber disagree");
	all_failed(res, 2, -EIO);
	snprintf(body, sizeof(body), "{\"Records\":[{\"ErrorCode\":\"InternalFailure\"}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL, "one of two");
	all_failed(res, 2, -EIO);
	snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"12\",\"ShardId\":"
		 "\"shardId-000000000000\"},{}]}");
	cr_assert_eq(forward_reply_parse(200, body, strlen(body), res, 2), -EINVAL, "bad number");
	all_failed(res, 2, -EIO);
	cr_assert_eq(forward_reply_parse(200, "{\"Records\":", 11, res, 2), -EINVAL, "cut");
	all_failed(res, 2, -EIO);
}

/* A holder's error answer to a passed-through read: its type and message, as they came. */
Test(forward, error_parse_passes_type_and_message)
{
	char type[FORWARD_ERROR_TYPE_SIZE];
	char message[FORWARD_ERROR_MESSAGE_SIZE];
	char body[4096];
	static const struct {
		const char *body;
		const char *type;
		const char *message;
	} ok[] = {
		{ "{\"__type\":\"ExpiredIteratorException\",\"message\":\"Iterator expired.\"}",
		  "ExpiredIteratorException", "Iterator expired." },
		{ "{\"__type\":\"com.amazonaws#InvalidArgumentException\",\"message\":\"x\"}",
		  "InvalidArgumentException", "x" },
		{ "{\"__type\":\"SerializationException\",\"Message\":\"bad\"}",
		  "SerializationException", "bad" },
		{ "{\"__type\":\"InternalFailure\"}", "InternalFailure", "" },
		{ "{\"__type\":\"T\",\"message\":7}", "T", "" },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(forward_error_parse(ok[i].body, strlen(ok[i].body), type, message), 0,
			     "%s", ok[i].body);
		cr_assert_str_eq(type, ok[i].type);
		cr_assert_str_eq(message, ok[i].message);
	}
	/* A message longer than the buffer is cut, never overrun. */
	memset(body, 0, sizeof(body));
	strcpy(body, "{\"__type\":\"T\",\"message\":\"");
	memset(body + strlen(body), 'm', 2 * FORWARD_ERROR_MESSAGE_SIZE);
	strcat(body, "\"}");
	cr_assert_eq(forward_error_parse(body, strlen(body), type, message), 0);
	cr_assert_eq(strlen(message), FORWARD_ERROR_MESSAGE_SIZE - 1);
	/* Not an error answer: -EINVAL. */
	cr_assert_eq(forward_error_parse("<html>bad gateway</html>", 24, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("{\"message\":\"no type\"}", 21, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("[\"__type\"]", 10, type, message), -EINVAL);
	cr_assert_eq(forward_error_parse("{\"__type\":", 10, type, message), -EINVAL);
}

/* ---- A relay's ring and its transfer (forward_stream_*) ------------------------------ */

Test(forward, the_ring_takes_a_piece_whole_or_not_and_hands_it_back_in_order)
{
	uint8_t mem[10];
	struct forward_ring r = { .data = mem, .capacity = sizeof(mem) };
	const uint8_t *p;

	cr_assert(forward_ring_put(&r, "abcdef", 6));
	cr_assert_not(forward_ring_put(&r, "ghijk", 5), "5 bytes into 4 free");
	cr_assert_eq(r.size, 6, "a refused piece leaves nothing");
	cr_assert_eq(forward_ring_peek(&r, &p), 6);
	cr_assert_eq(memcmp(p, "abcdef", 6), 0);
	forward_ring_consume(&r, 4);
	cr_assert(forward_ring_put(&r, "ghijklmn", 8), "wraps past the end");
	cr_assert_eq(forward_ring_free(&r), 0);
	cr_assert_not(forward_ring_put(&r, "x", 1));
	/* Held in two pieces: the one up to the end first. */
	cr_assert_eq(forward_ring_peek(&r, &p), 6);
	cr_assert_eq(memcmp(p, "efghij", 6), 0);
	forward_ring_consume(&r, 6);
	cr_assert_eq(forward_ring_peek(&r, &p), 4);
	cr_assert_eq(memcmp(p, "klmn", 4), 0);
	forward_ring_consume(&r, 4);
	cr_assert_eq(forward_ring_peek(&r, &p), 0);
	cr_assert_eq(r.head, 0, "an emptied ring starts over (an error answer is one piece)");
	cr_assert(forward_ring_put(&r, mem, 0), "nothing always fits");
}

Test(forward, relays_past_the_bound_are_refused_and_counted)
{
	struct forward *f = forward_start();
	struct forward_stream *st[FORWARD_STREAMS_MAX];
	static char text[1 << 16];
	struct metrics_out out = { .data = text, .capacity = sizeof(text) };

	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++)
		cr_assert_not_null(st[i] = forward_stream_get(f, "127.0.0.1:1", "", FORWARD_CONTENT_TYPE,
							      "T", 1));
	cr_assert_null(forward_stream_get(f, "127.0.0.1:1", "", FORWARD_CONTENT_TYPE, "T", 1));
	/* A body past FORWARD_STREAM_REQUEST_SIZE_MAX overflows, nothing written past it. */
	api_out_append(forward_stream_body(st[0]), text, FORWARD_STREAM_REQUEST_SIZE_MAX + 1);
	cr_assert(forward_stream_body(st[0])->overflow);
	forward_stream_put(f, st[0]);
	cr_assert_not_null(forward_stream_get(f, "127.0.0.1:1", "", FORWARD_CONTENT_TYPE, "T", 1),
			   "a slot put back is free");
	forward_render_metrics(f, &out);
	cr_assert_not_null(strstr(text, "sluice_forward_reads_total{action=\"SubscribeToShard\","
				  "result=\"busy\"} 1\n"), "%s", text);
	forward_close(f);
}

/*
 * A holder that answers 200 with `bytes` of a pattern, as fast as they are read (a relay),
 * or as `mode` says (a read).
 */
#define RELAY_BYTES (4u << 20)

enum holder_mode {
	HOLDER_STREAM,       /* The pattern, or `answer`, then close. */
	HOLDER_HANG,         /* Takes the request, never answers (until the client goes). */
	HOLDER_BREAK,        /* Takes the request, closes without a byte. */
};

struct holder {
	enum holder_mode mode;
	const char *target;  /* The X-Amz-Target the request must carry. */
	const char *answer;  /* Instead of the pattern: this whole answer, then close. */
	size_t bytes;
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	bool broken;         /* Its peer went away before it wrote everything. */
	bool got_request;
};

static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

static void *
holder_main(void *arg)
{
	struct holder *h = arg;
	char head[256];
	int head_size = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
				 "application/vnd.amazon.eventstream\r\nContent-Length: %zu\r\n\r\n",
				 h->bytes);
	char req[8192];
	uint8_t chunk[65536];
	size_t got = 0;
	int fd = accept(h->listen_fd, NULL, NULL);

	cr_assert_geq(fd, 0);
	/* The request's head and its short body: read until the body's closing brace. */
	while (got < sizeof(req) - 1 && memchr(req, '}', got) == NULL) {
		ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);

		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	req[got] = '\0';
	cr_assert_not_null(strstr(req, "X-Sluice-Forwarded: 1"), "the loop guard goes along");
	cr_assert_not_null(strstr(req, h->target), "X-Amz-Target %s", h->target);
	h->got_request = true;
	if (h->mode != HOLDER_STREAM) {
		while (h->mode == HOLDER_HANG && read(fd, req, sizeof(req)) > 0)
			;    /* Until the forwarder gives up and closes. */
		h->bytes = 0;
	} else if (h->answer != NULL) {
		cr_assert_eq(write(fd, h->answer, strlen(h->answer)), (ssize_t)strlen(h->answer));
		h->bytes = 0;
	} else {
		cr_assert_eq(write(fd, head, (size_t)head_size), (ssize_t)head_size);
	}
	for (size_t off = 0; off < h->bytes && !h->broken; off += sizeof(chunk)) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = pattern(off + i);
		for (size_t done = 0; done < sizeof(chunk);) {
			ssize_t n = send(fd, chunk + done, sizeof(chunk) - done, MSG_NOSIGNAL);

			if (n <= 0) {
				h->broken = true;
				break;
			}
			done += (size_t)n;
		}
	}
	close(fd);
	return NULL;
}

/* A socket bound to a free loopback port (not listening yet): its port. */
static uint16_t
loopback_bind(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(*fd, 0);
	cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void
holder_start_as(struct holder *h, enum holder_mode mode, const char *target, size_t bytes,
		const char *answer)
{
	memset(h, 0, sizeof(*h));
	h->mode = mode;
	h->target = target;
	h->bytes = bytes;
	h->answer = answer;
	h->port = loopback_bind(&h->listen_fd);
	cr_assert_eq(listen(h->listen_fd, 1), 0);
	cr_assert_eq(pthread_create(&h->thread, NULL, holder_main, h), 0);
}

static void
holder_start(struct holder *h, size_t bytes, const char *answer)
{
	holder_start_as(h, HOLDER_STREAM, "X-Amz-Target: Kinesis_20131202.SubscribeToShard", bytes,
			answer);
}

static struct forward_stream *
relay_open(struct forward *f, const struct holder *h)
{
	static const char body[] = "{\"ConsumerARN\":\"a\",\"ShardId\":\"shardId-000000000000\"}";
	static const char target[] = "Kinesis_20131202.SubscribeToShard";
	char addr[32];
	struct forward_stream *st;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", h->port);
	st = forward_stream_get(f, addr, "", FORWARD_CONTENT_TYPE, target, sizeof(target) - 1);
	cr_assert_not_null(st);
	api_out_append(forward_stream_body(st), body, sizeof(body) - 1);
	forward_stream_submit(f, st);
	return st;
}

/* The relay's state once `cond` holds, waiting on the doorbell (a generous deadline). */
static void
relay_wait(struct forward *f, struct forward_stream *st, struct forward_stream_state *out,
	   bool (*cond)(const struct forward_stream_state *))
{
	for (int i = 0; i < 600; i++) {
		struct pollfd p = { .fd = forward_doorbell_fd(f), .events = POLLIN };
		uint64_t drain;

		forward_stream_look(f, st, out);
		if (cond(out))
			return;
		if (poll(&p, 1, 100) > 0 && read(p.fd, &drain, sizeof(drain)) < 0)
			cr_assert_fail("doorbell");
	}
	cr_assert_fail("the relay's condition did not come");
}

static bool
ring_full(const struct forward_stream_state *s)
{
	/* Pieces of up to CURL_MAX_WRITE_SIZE: full is less than one short of the bound. */
	return s->size + 16384 > FORWARD_STREAM_BUFFER_BYTES;
}

static bool
more_or_over(const struct forward_stream_state *s)
{
	return s->size > 0 || s->finished;
}

Test(forward, a_relay_pauses_at_its_bound_and_passes_every_byte_in_order)
{
	struct forward *f = forward_start();
	struct holder h;
	struct forward_stream_state s;
	struct forward_stream *st;
	size_t total = 0;

	holder_start(&h, RELAY_BYTES, NULL);
	st = relay_open(f, &h);
	relay_wait(f, st, &s, ring_full);
	cr_assert_eq(s.status, 200);
	cr_assert_not(s.finished, "4 MiB do not fit: the transfer waits, paused");
	cr_assert_leq(s.size, FORWARD_STREAM_BUFFER_BYTES);
	/* Taken in small bites: the ring never holds more than its bound, bytes in order. */
	for (;;) {
		size_t n;

		relay_wait(f, st, &s, more_or_over);
		if (s.size == 0)
			break;
		cr_assert_leq(s.size, FORWARD_STREAM_BUFFER_BYTES);
		n = s.size < 5000 ? s.size : 5000;
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(s.data[i], pattern(total + i), "byte %zu", total + i);
		total += n;
		forward_stream_consume(f, st, n);
	}
	cr_assert_eq(total, RELAY_BYTES);
	cr_assert_eq(s.outcome, FORWARD_OK);
	forward_stream_put(f, st);
	pthread_join(h.thread, NULL);
	cr_assert_not(h.broken);
	close(h.listen_fd);
	forward_close(f);
}

Test(forward, a_relay_let_go_cancels_the_holders_transfer)
{
	struct forward *f = forward_start();
	struct holder h;
	struct forward_stream_state s;
	struct forward_stream *st;

	/* More than any socket buffers hold: the holder is still writing when it goes. */
	holder_start(&h, (size_t)1 << 30, NULL);
	st = relay_open(f, &h);
	relay_wait(f, st, &s, ring_full);
	forward_stream_put(f, st);
	/* The holder sees its connection go: it cannot write the rest. */
	pthread_join(h.thread, NULL);
	cr_assert(h.broken);
	close(h.listen_fd);
	forward_close(f);
}

static bool
over(const struct forward_stream_state *s)
{
	return s->finished;
}

Test(forward, a_holders_refusal_is_read_whole_for_the_caller)
{
	static const char body[] = "{\"__type\":\"ResourceInUseException\",\"message\":\"Another "
				   "active subscription exists\"}";
	char answer[512];
	char type[FORWARD_ERROR_TYPE_SIZE];
	char message[FORWARD_ERROR_MESSAGE_SIZE];
	struct forward *f = forward_start();
	struct holder h;
	struct forward_stream_state s;
	struct forward_stream *st;

	snprintf(answer, sizeof(answer), "HTTP/1.1 400 Bad Request\r\nContent-Type: application/"
		 "x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n%s", sizeof(body) - 1, body);
	holder_start(&h, 0, answer);
	st = relay_open(f, &h);
	relay_wait(f, st, &s, over);
	cr_assert_eq(s.status, 400);
	cr_assert_eq(s.outcome, FORWARD_OK, "the holder answered");
	cr_assert_eq(s.size, sizeof(body) - 1, "the whole answer, in one piece");
	cr_assert_eq(forward_error_parse((const char *)s.data, s.size, type, message), 0);
	cr_assert_str_eq(type, "ResourceInUseException");
	forward_stream_put(f, st);
	pthread_join(h.thread, NULL);
	close(h.listen_fd);
	forward_close(f);
}

Test(forward, a_holder_that_refuses_the_connection_ends_the_relay_refused)
{
	struct forward *f = forward_start();
	struct holder h;
	struct forward_stream_state s;
	struct forward_stream *st;

	/* A port bound and not listening: its connections are refused, and it is ours. */
	h.port = loopback_bind(&h.listen_fd);
	st = relay_open(f, &h);
	relay_wait(f, st, &s, over);
	cr_assert_eq(s.status, 0);
	cr_assert_eq(s.outcome, FORWARD_REFUSED);
	forward_stream_put(f, st);
	close(h.listen_fd);
	forward_close(f);
}

Test(forward, a_refused_relay_opens_again_on_the_next_holder_with_its_body)
{
	struct forward *f = forward_start();
	struct holder refusing;
	struct holder h;
	struct forward_stream_state s;
	struct forward_stream *st;
	char addr[32];
	size_t total = 0;

	refusing.port = loopback_bind(&refusing.listen_fd);
	st = relay_open(f, &refusing);
	relay_wait(f, st, &s, over);
	cr_assert_eq(s.outcome, FORWARD_REFUSED);
	/* The next holder reads the same request (its body's brace, the target checked). */
	holder_start(&h, 3 * 65536, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", h.port);
	forward_stream_resubmit(f, st, addr);
	for (;;) {
		relay_wait(f, st, &s, more_or_over);
		cr_assert_eq(s.status, 200, "the next holder's answer, not the refusal");
		for (size_t i = 0; i < s.size; i++)
			cr_assert_eq(s.data[i], pattern(total + i), "byte %zu", total + i);
		total += s.size;
		forward_stream_consume(f, st, s.size);
		if (s.finished && s.size == 0)
			break;
	}
	cr_assert_eq(s.outcome, FORWARD_OK);
	cr_assert_eq(total, 3 * 65536);
	forward_stream_put(f, st);
	pthread_join(h.thread, NULL);
	close(h.listen_fd);
	close(refusing.listen_fd);
	forward_close(f);
}

/* ---- A read passed through: a holder that fails it after it was sent ---------------- */

/* A read's holder: `mode`, answering `answer` when it streams. */
static void
read_holder_start(struct holder *h, enum holder_mode mode, const char *answer)
{
	holder_start_as(h, mode, "X-Amz-Target: Kinesis_20131202.GetRecords", 0, answer);
}

static void
read_holder_end(struct holder *h)
{
	pthread_join(h->thread, NULL);
	cr_assert(h->got_request, "the request reached the holder");
	close(h->listen_fd);
}

static void
holder_addr(const struct holder *h, char addr[32])
{
	snprintf(addr, 32, "127.0.0.1:%u", h->port);
}

/* The one job in flight, once finished (waiting on the doorbell, a generous deadline). */
static struct forward_job *
read_wait(struct forward *f)
{
	for (int i = 0; i < 600; i++) {
		struct pollfd p = { .fd = forward_doorbell_fd(f), .events = POLLIN };
		struct forward_job *done;
		uint64_t drain;

		if (forward_poll(f, &done, 1) == 1)
			return done;
		if (poll(&p, 1, 100) > 0 && read(p.fd, &drain, sizeof(drain)) < 0)
			cr_assert_fail("doorbell");
	}
	cr_assert_fail("the read did not finish");
	return NULL;
}

static struct forward_job *
read_submit(struct forward *f, const struct holder *h)
{
	static const char body[] = "{\"ShardIterator\":\"it\"}";
	static const char target[] = "Kinesis_20131202.GetRecords";
	char addr[32];
	struct forward_job *job;

	holder_addr(h, addr);
	job = forward_job_get_read(f, FORWARD_READ_RECORDS, target, sizeof(target) - 1, body,
				   sizeof(body) - 1, addr, "", 1);
	cr_assert_not_null(job);
	forward_job_submit(f, job);
	return job;
}

/*
 * GetRecords passed through to a holder that took the request and then hung (a stopped
 * process) or broke its connection (a killed one): the try ends (FORWARD_READ_TRY_MS,
 * or at once), and the read may go on to the next holder, which answers; its answer is
 * the job's. A holder's own error answer is an answer: not passed on.
 */
Test(forward, a_read_whose_holder_hangs_or_breaks_goes_on_to_the_next)
{
	static const char ok_body[] = "{\"Records\":[],\"MillisBehindLatest\":0}";
	static const char err_body[] = "{\"__type\":\"ExpiredIteratorException\",\"message\":\"x\"}";
	char ok[256];
	char err[256];
	struct forward *f = forward_start();
	struct holder hung, broken, good, erring;
	struct forward_job *job;
	const char *body;
	size_t size;
	char addr[32];

	snprintf(ok, sizeof(ok), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
		 sizeof(ok_body) - 1, ok_body);
	snprintf(err, sizeof(err), "HTTP/1.1 400 Bad Request\r\nContent-Length: %zu\r\n\r\n%s",
		 sizeof(err_body) - 1, err_body);
	read_holder_start(&hung, HOLDER_HANG, NULL);
	read_holder_start(&broken, HOLDER_BREAK, NULL);
	read_holder_start(&good, HOLDER_STREAM, ok);
	read_holder_start(&erring, HOLDER_STREAM, err);

	job = read_submit(f, &hung);
	cr_assert_eq(read_wait(f), job);
	cr_assert_eq(forward_job_outcome(job), FORWARD_TIMEOUT);
	cr_assert(forward_job_may_try_next(job), "a hung holder's read goes on");
	holder_addr(&broken, addr);
	forward_job_resubmit(f, job, addr);
	cr_assert_eq(read_wait(f), job);
	cr_assert_eq(forward_job_outcome(job), FORWARD_FAILED);
	cr_assert(forward_job_may_try_next(job), "a broken holder's read goes on");
	holder_addr(&good, addr);
	forward_job_resubmit(f, job, addr);
	cr_assert_eq(read_wait(f), job);
	cr_assert_eq(forward_job_outcome(job), FORWARD_OK);
	cr_assert_eq(forward_job_reply(job, &body, &size), 200);
	cr_assert_eq(size, sizeof(ok_body) - 1);
	cr_assert_eq(memcmp(body, ok_body, size), 0, "the next holder's answer");
	cr_assert_not(forward_job_may_try_next(job));
	forward_job_put(f, job);

	job = read_submit(f, &erring);
	cr_assert_eq(read_wait(f), job);
	cr_assert_eq(forward_job_outcome(job), FORWARD_OK);
	cr_assert_eq(forward_job_reply(job, &body, &size), 400);
	cr_assert_not(forward_job_may_try_next(job), "an error answer is the holder's answer");
	forward_job_put(f, job);
	read_holder_end(&hung);
	read_holder_end(&broken);
	read_holder_end(&good);
	read_holder_end(&erring);
	forward_close(f);
}

/*
 * The call's deadline bounds the tries: two holders that hang take it all
 * (FORWARD_READ_TRY_MS each, FORWARD_TIMEOUT_MS in all), and the read goes no further.
 */
Test(forward, a_read_stops_trying_holders_at_its_deadline, .timeout = 60)
{
	struct forward *f = forward_start();
	struct holder first, second;
	struct forward_job *job;
	char addr[32];

	cr_assert_eq(2 * FORWARD_READ_TRY_MS, FORWARD_TIMEOUT_MS, "two tries take the deadline");
	read_holder_start(&first, HOLDER_HANG, NULL);
	read_holder_start(&second, HOLDER_HANG, NULL);
	job = read_submit(f, &first);
	cr_assert_eq(read_wait(f), job);
	cr_assert(forward_job_may_try_next(job));
	holder_addr(&second, addr);
	forward_job_resubmit(f, job, addr);
	cr_assert_eq(read_wait(f), job);
	cr_assert_eq(forward_job_outcome(job), FORWARD_TIMEOUT);
	cr_assert_not(forward_job_may_try_next(job), "past its deadline");
	forward_job_put(f, job);
	read_holder_end(&first);
	read_holder_end(&second);
	forward_close(f);
}
