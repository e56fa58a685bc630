/*
 * server_access.c - the sampled access log ([admin] access_log_sample = N):
 * one line for 1 in N replies, and while it is on every error reply too, at
 * most CONFIG_ACCESS_LOG_ERRORS_PER_S a second (the rest only counted:
 * sluice_access_log_suppressed_total). Written on the API thread when a reply
 * is decided; off (N = 0) it costs one branch per reply.
 *
 *   FIELD        WHAT
 *   peer         ADDR:PORT of the client ("-": it has left)
 *   op           the X-Amz-Target's operation ("Other" when not one of ours)
 *   stream       StreamName, or the name in StreamARN, from the body ("-": none)
 *   status       HTTP status
 *   error        AWS error type ("-": none)
 *   bytes_in     request body bytes
 *   bytes_out    response body bytes
 *   latency_us   first request byte to the reply being decided
 *
 * The time is the line's own (diag_fields): text "sluice info access: k=v ...",
 * json one object with these members.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/diag.h"
#include "control/metrics.h"
#include "control/server_internal.h"

/* Kinesis stream names: 1..128 of [a-zA-Z0-9_.-]. */
#define ACCESS_STREAM_NAME_MAX 128u

static bool
access_name_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/*
 * The value after `key` in a JSON body ("key" : "value") or a CBOR one (the key
 * a text string, then a text string of at most 255 bytes). Found by a search,
 * not a parse: the line only reports it, nothing depends on it.
 */
static bool
access_body_value(const char *body, size_t size, const char *key, const char **value_out,
		  size_t *value_size_out)
{
	size_t key_size = strlen(key);
	const char *end = body + size;
	const char *p = memmem(body, size, key, key_size);

	if (p == NULL)
		return false;
	p += key_size;
	if (p < end && *p == '"') { /* JSON: the closing quote of the key. */
		const char *q;

		p++;
		while (p < end && (*p == ' ' || *p == ':' || *p == '\t'))
			p++;
		if (p >= end || *p != '"')
			return false;
		p++;
		q = memchr(p, '"', (size_t)(end - p));
		if (q == NULL)
			return false;
		*value_out = p;
		*value_size_out = (size_t)(q - p);
		return true;
	}
	if (p < end && ((unsigned char)*p & 0xe0u) == 0x60u) { /* CBOR major type 3. */
		size_t n = (unsigned char)*p & 0x1fu;

		p++;
		if (n == 24 && p < end)
			n = (unsigned char)*p++;
		else if (n > 23)
			return false;
		if ((size_t)(end - p) < n)
			return false;
		*value_out = p;
		*value_size_out = n;
		return true;
	}
	return false;
}

/* The stream the request names, checked to be a stream name; "" when none. */
static void
access_stream(const struct api_call *call, char *out, size_t out_size)
{
	const char *body = call->req + call->body_off;
	size_t size = call->req_used - call->body_off;
	const char *v = NULL;
	size_t n = 0;

	out[0] = '\0';
	if (!access_body_value(body, size, "StreamName", &v, &n) &&
	    access_body_value(body, size, "StreamARN", &v, &n)) {
		const char *slash = memrchr(v, '/', n);

		if (slash == NULL)
			return;
		n -= (size_t)(slash + 1 - v);
		v = slash + 1;
	}
	if (v == NULL || n == 0 || n > ACCESS_STREAM_NAME_MAX || n >= out_size)
		return;
	for (size_t i = 0; i < n; i++)
		if (!access_name_byte(v[i]))
			return;
	memcpy(out, v, n);
	out[n] = '\0';
}

static void
access_peer(const struct server_conn *c, char *out, size_t size)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	snprintf(out, size, "-");
	if (c == NULL || getpeername(c->fd, (struct sockaddr *)&sa, &len) != 0)
		return;
	if (sa.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(out, size, "%s:%u", host, port);
	} else if (sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(out, size, "[%s]:%u", host, port);
	}
}

/* Whether this reply gets a line: sampled, or an error within this second's budget. */
static bool
access_wanted(struct api_server *s, int status)
{
	uint32_t every = s->config.admin_access_log_sample;
	uint64_t second;

	if (status < 400)
		return s->access_seq++ % every == 0;
	second = s->now_ns / 1000000000u;
	if (second != s->access_errors_second) {
		s->access_errors_second = second;
		s->access_errors_in_second = 0;
	}
	if (s->access_errors_in_second >= CONFIG_ACCESS_LOG_ERRORS_PER_S) {
		metrics_access_log(false);
		return false;
	}
	s->access_errors_in_second++;
	return true;
}

void
server_access_log(struct api_call *call)
{
	struct api_server *s = call->server;
	char peer[INET6_ADDRSTRLEN + 10];
	char stream[ACCESS_STREAM_NAME_MAX + 1];
	struct diag_field fields[8];

	if (s->config.admin_access_log_sample == 0 || !access_wanted(s, call->status))
		return;
	access_peer(call->conn, peer, sizeof(peer));
	access_stream(call, stream, sizeof(stream));
	fields[0] = (struct diag_field){ "peer", peer, 0 };
	fields[1] = (struct diag_field){ "op", metrics_api_op_name(call->metrics_op), 0 };
	fields[2] = (struct diag_field){ "stream", stream, 0 };
	fields[3] = (struct diag_field){ "status", NULL, (uint64_t)call->status };
	fields[4] = (struct diag_field){ "error", call->error_type, 0 };
	fields[5] = (struct diag_field){ "bytes_in", NULL, call->req_used - call->body_off };
	fields[6] = (struct diag_field){ "bytes_out", NULL, call->out.size };
	fields[7] = (struct diag_field){ "latency_us", NULL,
					 (s->now_ns - call->started_ns) / 1000u };
	diag_fields(DIAG_INFO, "access", fields, 8);
	metrics_access_log(true);
}
