/*
 * kinesis_client: kc_call() over a real loopback socket against a scripted
 * peer thread: a normal answer, an answer one byte at a time, a kept-alive
 * connection the peer closed meanwhile (one silent reconnect), Connection:
 * close, Kinesis errors, a cut body, a non-JSON body, and a peer that never
 * answers (timeout).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tools/kinesis_client.h"

enum peer_act {
	PEER_ANSWER,          /* Write the answer whole, keep the connection. */
	PEER_ANSWER_BYTES,    /* Write it one byte at a time. */
	PEER_ANSWER_CLOSE,    /* Write it, then close the connection. */
	PEER_CUT,             /* Write only half of it, then close. */
	PEER_SILENT,          /* Read the request, never answer; close once the client did. */
};

struct peer_step {
	enum peer_act act;
	const char *answer;
};

struct peer {
	int listen_fd;
	uint16_t port;
	const struct peer_step *steps;
	size_t step_count;
	unsigned accepts;     /* Connections the peer accepted. */
	pthread_t thread;
};

static const char ok_answer[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 40\r\n\r\n"
	"{\"StreamNames\":[\"a\"],\"HasMoreStreams\":0}";

/* Reads one request: headers, then Content-Length bytes. false when the client closed. */
static bool
peer_read_request(int fd)
{
	char buf[65536];
	size_t size = 0;

	for (;;) {
		char *end = memmem(buf, size, "\r\n\r\n", 4);
		ssize_t got;

		if (end != NULL) {
			const char *length = strcasestr(buf, "Content-Length:");
			size_t body = length != NULL ? strtoul(length + 15, NULL, 10) : 0;

			if (size >= (size_t)(end - buf) + 4 + body)
				return true;
		}
		got = read(fd, buf + size, sizeof(buf) - size - 1);
		if (got <= 0)
			return false;
		size += (size_t)got;
		buf[size] = '\0';
	}
}

static void
peer_write(int fd, const char *text, size_t size, bool bytewise)
{
	for (size_t i = 0; i < size; i += bytewise ? 1 : size - i) {
		if (write(fd, text + i, bytewise ? 1 : size - i) < 0)
			return;
		if (bytewise)
			usleep(200);
	}
}

static void *
peer_main(void *arg)
{
	struct peer *peer = arg;
	int fd = -1;

	for (size_t i = 0; i < peer->step_count; i++) {
		const struct peer_step *step = &peer->steps[i];
		size_t size = step->answer != NULL ? strlen(step->answer) : 0;

		if (fd < 0) {
			fd = accept(peer->listen_fd, NULL, NULL);
			peer->accepts++;
		}
		if (!peer_read_request(fd)) {  /* The client gave up on this connection. */
			close(fd);
			fd = -1;
			i--;
			continue;
		}
		if (step->act == PEER_SILENT) {
			char drain[256];

			/* Silent until the client gives up and closes: no guess at how long. */
			while (read(fd, drain, sizeof(drain)) > 0)
				;
		} else {
			peer_write(fd, step->answer, step->act == PEER_CUT ? size / 2 : size,
				   step->act == PEER_ANSWER_BYTES);
		}
		if (step->act != PEER_ANSWER && step->act != PEER_ANSWER_BYTES) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void
peer_start(struct peer *peer, const struct peer_step *steps, size_t step_count)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(addr);

	peer->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(peer->listen_fd, 0);
	cr_assert_eq(bind(peer->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(peer->listen_fd, 4), 0);
	getsockname(peer->listen_fd, (struct sockaddr *)&addr, &len);
	peer->port = ntohs(addr.sin_port);
	peer->steps = steps;
	peer->step_count = step_count;
	peer->accepts = 0;
	pthread_create(&peer->thread, NULL, peer_main, peer);
}

static void
client_open(struct kc_client *client, const struct peer *peer, uint32_t timeout_ms)
{
	char endpoint[64];
	struct kc_config config = { .endpoint = endpoint, .timeout_ms = timeout_ms };

	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", peer->port);
	cr_assert_eq(kc_client_init(client, &config), 0);
}

static void
peer_join(struct peer *peer, struct kc_client *client)
{
	kc_client_close(client);
	pthread_join(peer->thread, NULL);
	close(peer->listen_fd);
}

static int
call(struct kc_client *client, cJSON **response)
{
	*response = NULL;
	return kc_call(client, "ListStreams", NULL, response);
}

Test(kc_call, answers_whole_bytewise_and_after_the_peer_closed_an_idle_connection)
{
	static const struct peer_step steps[] = {
		{ PEER_ANSWER_CLOSE, ok_answer },  /* Closes without saying so. */
		{ PEER_ANSWER_BYTES, ok_answer },
		{ PEER_ANSWER, ok_answer },
	};
	struct peer peer;
	struct kc_client client;
	cJSON *response;

	peer_start(&peer, steps, 3);
	client_open(&client, &peer, 2000);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(call(&client, &response), 0, "call %d", i);
		cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(response, "StreamNames"),
						    0)->valuestring, "a");
		cJSON_Delete(response);
	}
	peer_join(&peer, &client);
	cr_assert_eq(peer.accepts, 2, "one reconnect, after the silent close");
}

Test(kc_call, connection_close_is_honoured)
{
	static const char closing[] =
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
	static const struct peer_step steps[] = {
		{ PEER_ANSWER_CLOSE, closing },
		{ PEER_ANSWER, ok_answer },
	};
	struct peer peer;
	struct kc_client client;
	cJSON *response;

	peer_start(&peer, steps, 2);
	client_open(&client, &peer, 2000);
	cr_assert_eq(call(&client, &response), 0);
	cJSON_Delete(response);
	cr_assert_eq(client.fd, -1, "the client closed on Connection: close");
	cr_assert_eq(call(&client, &response), 0);
	cJSON_Delete(response);
	peer_join(&peer, &client);
}

Test(kc_call, kinesis_errors_cuts_and_garbage)
{
	static const char refused[] =
		"HTTP/1.1 400 Bad Request\r\nContent-Length: 70\r\n\r\n"
		"{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream x not found.\"}";
	static const char garbage[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n<xml>";
	static const struct peer_step steps[] = {
		{ PEER_ANSWER, refused },
		{ PEER_ANSWER, garbage },
		{ PEER_CUT, ok_answer },
	};
	struct peer peer;
	struct kc_client client;
	cJSON *response;

	peer_start(&peer, steps, 3);
	client_open(&client, &peer, 2000);
	cr_assert_eq(call(&client, &response), -EREMOTEIO);
	cr_assert_str_eq(client.error.type, "ResourceNotFoundException");
	cr_assert_str_eq(client.error.message, "Stream x not found.");
	cr_assert_eq(client.error.http_status, 400);
	cr_assert_eq(call(&client, &response), -EBADMSG);
	/* Cut mid-body: an error, and no silent retry (the request may have been applied). */
	cr_assert_eq(call(&client, &response), -EBADMSG);
	cr_assert_null(response);
	peer_join(&peer, &client);
}

Test(kc_call, a_silent_peer_times_out)
{
	static const struct peer_step steps[] = { { PEER_SILENT, NULL } };
	struct peer peer;
	struct kc_client client;
	cJSON *response;

	peer_start(&peer, steps, 1);
	client_open(&client, &peer, 200);
	cr_assert_eq(call(&client, &response), -ETIMEDOUT);
	peer_join(&peer, &client);
}

Test(kc_call, nobody_listening)
{
	struct peer peer = { 0 };
	struct kc_client client;
	cJSON *response;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(addr);

	/* A port that was just free and is closed again. */
	bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	getsockname(fd, (struct sockaddr *)&addr, &len);
	peer.port = ntohs(addr.sin_port);
	close(fd);
	client_open(&client, &peer, 500);
	cr_assert_eq(call(&client, &response), -ECONNREFUSED);
	kc_client_close(&client);
}
