/*
 * cmd_status.c - sluice status and sluice top, from a running appliance's
 * admin listener (/readyz and /status.json, the figures the status page shows).
 *
 * status: readiness and a one-screen summary; exit 0 when ready, 1 when not
 *         or unreachable.
 * top:    rates per stream (records/s, bytes/s, put latency), log and
 *         dataplane rates, from two /status.json samples `--interval` apart;
 *         refreshed in place on a terminal, one snapshot when piped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tools/cmd.h"

#define STATUS_RESPONSE_SIZE_MAX (64u << 20)  /* /status.json of 65536 shards fits. */
#define STATUS_TIMEOUT_S 10

struct status_http {
	int code;
	char *body;      /* NUL-terminated, malloc'ed; NULL on failure. */
};

/* GET http://HOST:PORT/path over HTTP/1.0 (the admin listener closes after one answer). */
static int
status_get(const char *host_port, const char *path, const char *token, struct status_http *out)
{
	char host[64];
	const char *colon = strrchr(host_port, ':');
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct timeval timeout = { .tv_sec = STATUS_TIMEOUT_S };
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
	out->body = malloc(STATUS_RESPONSE_SIZE_MAX + 1);
	if (out->body == NULL)
		goto out_errno;
	while (used < STATUS_RESPONSE_SIZE_MAX &&
	       (n = recv(fd, out->body + used, STATUS_RESPONSE_SIZE_MAX - used, 0)) > 0)
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

static double
status_number(const cJSON *object, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

	return cJSON_IsNumber(item) ? item->valuedouble : 0;
}

static void
status_print(const cJSON *st)
{
	const cJSON *streams = cJSON_GetObjectItemCaseSensitive(st, "streams");
	const cJSON *shards = cJSON_GetObjectItemCaseSensitive(st, "shards");
	const cJSON *log = cJSON_GetObjectItemCaseSensitive(st, "log");
	const cJSON *dp = cJSON_GetObjectItemCaseSensitive(st, "dataplane");
	const cJSON *s;

	printf("%-32s %8s %14s %14s %10s\n", "stream", "shards", "records", "bytes", "throttled");
	cJSON_ArrayForEach(s, streams) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
		double id = status_number(s, "id");
		int open = 0;
		const cJSON *sh;

		cJSON_ArrayForEach(sh, shards)
			open += status_number(sh, "stream_id") == id &&
				cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sh, "open"));
		printf("%-32s %8d %14.0f %14.0f %10.0f\n", cJSON_IsString(name) ? name->valuestring : "?",
		       open, status_number(s, "incoming_records"), status_number(s, "incoming_bytes"),
		       status_number(s, "write_exceeded") + status_number(s, "read_exceeded"));
	}
	printf("log: %.1f MiB durable, %.0f segments, %.1f GiB free of %.1f GiB%s\n",
	       status_number(log, "durable_bytes") / (1 << 20), status_number(log, "segments"),
	       status_number(log, "disk_free_bytes") / (1 << 30),
	       status_number(log, "disk_size_bytes") / (1 << 30),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(log, "failed")) ? ", FAILED" : "");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dp, "enabled")))
		printf("dataplane: %.0f workers, %.0f rx packets, %.0f records durable, %.0f drops\n",
		       status_number(dp, "workers"), status_number(dp, "rx_packets"),
		       status_number(dp, "records_durable"), status_number(dp, "drops"));
	else
		printf("dataplane: off\n");
}

int
cmd_status(int argc, char **argv)
{
	static const struct option options[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *admin = "127.0.0.1:4568";
	const char *token = getenv("SLUICE_ADMIN_TOKEN");
	struct status_http ready;
	struct status_http st;
	cJSON *json;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'a')
			admin = optarg;
		else if (opt == 't')
			token = optarg;
		else {
			fprintf(opt == 'h' ? stdout : stderr, "usage: sluice status [--admin "
				"ADDR:PORT] [--token T]   (default 127.0.0.1:4568; "
				"$SLUICE_ADMIN_TOKEN)\n");
			return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
		}
	}
	if (status_get(admin, "/readyz", token, &ready) != 0) {
		fprintf(stderr, "sluice status: cannot reach the admin listener at %s\n", admin);
		return CMD_EXIT_ERROR;
	}
	printf("%s: %s", admin, ready.body);
	free(ready.body);
	if (status_get(admin, "/status.json", token, &st) != 0 || st.code != 200) {
		fprintf(stderr, "sluice status: /status.json: %s\n", st.body != NULL ? st.body : "?");
		free(st.body);
		return CMD_EXIT_ERROR;
	}
	json = cJSON_Parse(st.body);
	free(st.body);
	if (json == NULL) {
		fprintf(stderr, "sluice status: /status.json is not JSON\n");
		return CMD_EXIT_ERROR;
	}
	status_print(json);
	cJSON_Delete(json);
	return ready.code == 200 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}

/* ---- sluice top ----------------------------------------------------------- */

#define TOP_INTERVAL_MS_DEFAULT 2000u
#define TOP_INTERVAL_MS_MAX 3600000u

/* The same stream (by id) in an earlier sample, or NULL. */
static const cJSON *
top_find(const cJSON *streams, double id)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, streams)
		if (status_number(s, "id") == id)
			return s;
	return NULL;
}

static double
top_delta(const cJSON *now, const cJSON *before, const char *name)
{
	return before == NULL ? 0 : status_number(now, name) - status_number(before, name);
}

/* The same delivery stream (by name) in an earlier sample, or NULL. */
static const cJSON *
top_find_name(const cJSON *list, const char *name)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, list) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");

		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return s;
	}
	return NULL;
}

/* One line per delivery stream: what it delivers, how fresh, how far from retention. */
static void
top_print_firehose(const cJSON *now, const cJSON *before, double seconds)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(now, "delivery_streams");
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(before, "delivery_streams");
	const cJSON *s;

	if (cJSON_GetArraySize(list) == 0)
		return;
	printf("%-32s %12s %12s %10s %12s %10s\n", "delivery stream", "delivered/s", "bytes/s",
	       "objects/s", "freshness s", "failures/s");
	cJSON_ArrayForEach(s, list) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
		const cJSON *b = cJSON_IsString(name) ? top_find_name(old, name->valuestring) : NULL;

		printf("%-32s %12.0f %12.0f %10.1f %12.1f %10.1f\n",
		       cJSON_IsString(name) ? name->valuestring : "?",
		       top_delta(s, b, "delivered_records") / seconds,
		       top_delta(s, b, "delivered_bytes") / seconds,
		       top_delta(s, b, "delivered_objects") / seconds,
		       status_number(s, "freshness_ms") / 1e3,
		       top_delta(s, b, "delivery_failures") / seconds);
	}
}

static void
top_print(const cJSON *now, const cJSON *before, double seconds)
{
	const cJSON *streams = cJSON_GetObjectItemCaseSensitive(now, "streams");
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(before, "streams");
	const cJSON *log = cJSON_GetObjectItemCaseSensitive(now, "log");
	const cJSON *old_log = cJSON_GetObjectItemCaseSensitive(before, "log");
	const cJSON *dp = cJSON_GetObjectItemCaseSensitive(now, "dataplane");
	const cJSON *old_dp = cJSON_GetObjectItemCaseSensitive(before, "dataplane");
	const cJSON *s;

	printf("%-32s %12s %12s %12s %10s\n", "stream", "records/s", "bytes/s", "put ms",
	       "throttled/s");
	cJSON_ArrayForEach(s, streams) {
		const cJSON *b = top_find(old, status_number(s, "id"));
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
		double puts = top_delta(s, b, "put_requests");

		printf("%-32s %12.0f %12.0f %12.2f %10.1f\n",
		       cJSON_IsString(name) ? name->valuestring : "?",
		       top_delta(s, b, "incoming_records") / seconds,
		       top_delta(s, b, "incoming_bytes") / seconds,
		       puts > 0 ? top_delta(s, b, "put_latency_ns_sum") / puts / 1e6 : 0.0,
		       (top_delta(s, b, "write_exceeded") + top_delta(s, b, "read_exceeded")) /
		       seconds);
	}
	printf("log: %.1f MiB/s durable, %.0f commits/s, %.1f GiB free\n",
	       top_delta(log, old_log, "durable_bytes") / seconds / (1 << 20),
	       top_delta(log, old_log, "commits") / seconds,
	       status_number(log, "disk_free_bytes") / (1 << 30));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dp, "enabled")))
		printf("dataplane: %.0f rx packets/s, %.0f records/s durable, %.0f drops/s\n",
		       top_delta(dp, old_dp, "rx_packets") / seconds,
		       top_delta(dp, old_dp, "records_durable") / seconds,
		       top_delta(dp, old_dp, "drops") / seconds);
	top_print_firehose(now, before, seconds);
}

static cJSON *
top_sample(const char *admin, const char *token)
{
	struct status_http st;
	cJSON *json = NULL;

	if (status_get(admin, "/status.json", token, &st) == 0 && st.code == 200)
		json = cJSON_Parse(st.body);
	free(st.body);
	return json;
}

static void
top_sleep_ms(uint32_t ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

int
cmd_top(int argc, char **argv)
{
	static const struct option options[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "interval", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *admin = "127.0.0.1:4568";
	const char *token = getenv("SLUICE_ADMIN_TOKEN");
	uint32_t interval_ms = TOP_INTERVAL_MS_DEFAULT;
	bool tty = isatty(STDOUT_FILENO) != 0;
	cJSON *before;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'a') {
			admin = optarg;
		} else if (opt == 't') {
			token = optarg;
		} else if (opt == 'i' && atoi(optarg) > 0 &&
			   (uint32_t)atoi(optarg) <= TOP_INTERVAL_MS_MAX) {
			interval_ms = (uint32_t)atoi(optarg);
		} else {
			fprintf(opt == 'h' ? stdout : stderr, "usage: sluice top [--admin ADDR:PORT] "
				"[--token T] [--interval MS]   (default 127.0.0.1:4568, 2000 ms)\n"
				"  Rates refreshed in place on a terminal; one snapshot when piped.\n");
			return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
		}
	}
	before = top_sample(admin, token);
	if (before == NULL) {
		fprintf(stderr, "sluice top: cannot read %s/status.json\n", admin);
		return CMD_EXIT_ERROR;
	}
	/* Bounded only on a terminal, where the operator ends it (Ctrl-C). */
	for (;;) {
		cJSON *now;

		top_sleep_ms(interval_ms);
		now = top_sample(admin, token);
		if (now == NULL) {
			cJSON_Delete(before);
			fprintf(stderr, "sluice top: cannot read %s/status.json\n", admin);
			return CMD_EXIT_ERROR;
		}
		if (tty)
			printf("\033[H\033[2J%s, every %.1f s\n", admin, interval_ms / 1000.0);
		top_print(now, before, (status_number(now, "now_ms") -
					status_number(before, "now_ms")) / 1000.0);
		fflush(stdout);
		cJSON_Delete(before);
		before = now;
		if (!tty)
			break;
	}
	cJSON_Delete(before);
	return CMD_EXIT_OK;
}
