/*
 * cli_bench.c - pieces the API benchmarks share (cli_bench.h).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "tools/cli_bench.h"

/* The largest record cli_put_records_body() makes. */
#define CLI_RECORD_SIZE_MAX 256u
#define CLI_ADMIN_RESPONSE_SIZE_MAX (64u << 20)  /* /status.json of 65536 shards fits. */
#define CLI_ADMIN_TIMEOUT_S 10

int
cli_admin_get(const char *host_port, const char *path, const char *token,
	      struct cli_admin_http *out)
{
	char host[64];
	const char *colon = strrchr(host_port, ':');
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct timeval timeout = { .tv_sec = CLI_ADMIN_TIMEOUT_S };
	char request[512];
	size_t used = 0;
	ssize_t n;
	int fd;

	out->body = NULL;
	if (colon == NULL || (size_t)(colon - host_port) >= sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - host_port), host_port);
	addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		goto out_errno;
	n = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%s\r\n", path,
		     host_port, token != NULL ? "Authorization: Bearer " : "",
		     token != NULL ? token : "", token != NULL ? "\r\n" : "");
	if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n)
		goto out_errno;
	out->body = malloc(CLI_ADMIN_RESPONSE_SIZE_MAX + 1);
	if (out->body == NULL)
		goto out_errno;
	while (used < CLI_ADMIN_RESPONSE_SIZE_MAX &&
	       (n = recv(fd, out->body + used, CLI_ADMIN_RESPONSE_SIZE_MAX - used, 0)) > 0)
		used += (size_t)n;
	close(fd);
	out->body[used] = '\0';
	char *head_end = strstr(out->body, "\r\n\r\n");

	if (head_end == NULL || sscanf(out->body, "HTTP/1.%*d %d", &out->code) != 1) {
		free(out->body);
		out->body = NULL;
		return -EPROTO;
	}
	memmove(out->body, head_end + 4, strlen(head_end + 4) + 1);
	return 0;

out_errno:
	n = -errno;
	close(fd);
	return (int)n;
}

double
cli_json_number(const cJSON *object, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

	return cJSON_IsNumber(item) ? item->valuedouble : 0;
}

int
cli_round_trip(struct cli_rx *rx, int fd, const char *request, size_t size,
	       struct kc_http_response *response)
{
	size_t got = 0;

	for (size_t sent = 0; sent < size;) {
		ssize_t n = write(fd, request + sent, size - sent);

		if (n <= 0)
			return -EIO;
		sent += (size_t)n;
	}
	for (;;) {
		ssize_t n;
		int rc;

		if (got == rx->capacity) {
			rx->capacity = rx->capacity == 0 ? 1u << 20 : rx->capacity * 2;
			rx->buf = realloc(rx->buf, rx->capacity);
			if (rx->buf == NULL)
				return -ENOMEM;
		}
		n = read(fd, rx->buf + got, rx->capacity - got);
		if (n <= 0)
			return -EIO;
		got += (size_t)n;
		rc = kc_http_response_parse(rx->buf, got, response);
		if (rc != -EAGAIN)
			return rc;
	}
}

char *
cli_put_records_body(const char *stream, uint32_t records, uint32_t record_size,
		     const char *explicit_hash_key, size_t *size_out)
{
	size_t capacity = (size_t)records * (CLI_RECORD_SIZE_MAX * 2 + 64) + 256;
	char *body = malloc(capacity);
	size_t n;

	assert(record_size <= CLI_RECORD_SIZE_MAX);
	if (body == NULL)
		return NULL;
	n = (size_t)snprintf(body, capacity, "{\"StreamName\":\"%s\",\"Records\":[", stream);
	for (uint32_t i = 0; i < records; i++) {
		uint8_t data[CLI_RECORD_SIZE_MAX];
		uint64_t key;
		char *b64;
		size_t b64_size;

		RAND_bytes(data, (int)record_size);
		RAND_bytes((uint8_t *)&key, sizeof(key));
		if (kc_base64_encode(data, record_size, &b64, &b64_size) != 0) {
			free(body);
			return NULL;
		}
		n += (size_t)snprintf(body + n, capacity - n, "%s{\"PartitionKey\":\"%016llx\","
				      "%s%s%s\"Data\":\"%s\"}", i > 0 ? "," : "",
				      (unsigned long long)key,
				      explicit_hash_key != NULL ? "\"ExplicitHashKey\":\"" : "",
				      explicit_hash_key != NULL ? explicit_hash_key : "",
				      explicit_hash_key != NULL ? "\"," : "", b64);
		free(b64);
	}
	n += (size_t)snprintf(body + n, capacity - n, "]}");
	*size_out = n;
	return body;
}

int
cli_bench_call(struct kc_client *client, const char *action, const char *json)
{
	cJSON *req = cJSON_Parse(json);
	cJSON *resp = NULL;
	int rc = kc_call(client, action, req, &resp);

	if (rc == -EREMOTEIO)
		fprintf(stderr, "sluice bench: %s: %s: %s\n", action, client->error.type,
			client->error.message);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return rc;
}

int
cli_bench_stream_create(struct kc_client *client, const char *stream, uint64_t shards)
{
	char json[256];
	int rc;

	snprintf(json, sizeof(json), "{\"StreamName\":\"%s\",\"ShardCount\":%llu}", stream,
		 (unsigned long long)shards);
	rc = cli_bench_call(client, "CreateStream", json);
	snprintf(json, sizeof(json), "{\"StreamName\":\"%s\"}", stream);
	for (int i = 0; rc == 0 && i < 500; i++) {
		cJSON *req = cJSON_Parse(json);
		cJSON *resp = NULL;
		const cJSON *status;
		bool active;

		rc = kc_call(client, "DescribeStreamSummary", req, &resp);
		cJSON_Delete(req);
		status = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(resp, "StreamDescriptionSummary"),
			"StreamStatus");
		active = cJSON_IsString(status) && strcmp(status->valuestring, "ACTIVE") == 0;
		cJSON_Delete(resp);
		if (active)
			return 0;
		usleep(10000);
	}
	return rc != 0 ? rc : -ETIMEDOUT;
}

void
cli_bench_stream_delete(struct kc_client *client, const char *stream)
{
	char json[128];

	snprintf(json, sizeof(json), "{\"StreamName\":\"%s\"}", stream);
	cli_bench_call(client, "DeleteStream", json);
}
