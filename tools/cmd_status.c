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
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tools/cli_bench.h"
#include "tools/cmd.h"

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
		double id = cli_json_number(s, "id");
		int open = 0;
		const cJSON *sh;

		cJSON_ArrayForEach(sh, shards)
			open += cli_json_number(sh, "stream_id") == id &&
				cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sh, "open"));
		printf("%-32s %8d %14.0f %14.0f %10.0f\n", cJSON_IsString(name) ? name->valuestring : "?",
		       open, cli_json_number(s, "incoming_records"), cli_json_number(s, "incoming_bytes"),
		       cli_json_number(s, "write_exceeded") + cli_json_number(s, "read_exceeded"));
	}
	printf("log: %.1f MiB durable, %.0f segments, %.1f GiB free of %.1f GiB%s\n",
	       cli_json_number(log, "durable_bytes") / (1 << 20), cli_json_number(log, "segments"),
	       cli_json_number(log, "disk_free_bytes") / (1 << 30),
	       cli_json_number(log, "disk_size_bytes") / (1 << 30),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(log, "failed")) ? ", FAILED" : "");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dp, "enabled")))
		printf("dataplane: %.0f workers, %.0f rx packets, %.0f records durable, %.0f drops\n",
		       cli_json_number(dp, "workers"), cli_json_number(dp, "rx_packets"),
		       cli_json_number(dp, "records_durable"), cli_json_number(dp, "drops"));
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
	struct cli_admin_http ready;
	struct cli_admin_http st;
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
	if (cli_admin_get(admin, "/readyz", token, &ready) != 0) {
		fprintf(stderr, "sluice status: cannot reach the admin listener at %s\n", admin);
		return CMD_EXIT_ERROR;
	}
	printf("%s: %s", admin, ready.body);
	free(ready.body);
	if (cli_admin_get(admin, "/status.json", token, &st) != 0 || st.code != 200) {
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
		if (cli_json_number(s, "id") == id)
			return s;
	return NULL;
}

static double
top_delta(const cJSON *now, const cJSON *before, const char *name)
{
	return before == NULL ? 0 : cli_json_number(now, name) - cli_json_number(before, name);
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
		       cli_json_number(s, "freshness_ms") / 1e3,
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
		const cJSON *b = top_find(old, cli_json_number(s, "id"));
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
	       cli_json_number(log, "disk_free_bytes") / (1 << 30));
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
	struct cli_admin_http st;
	cJSON *json = NULL;

	if (cli_admin_get(admin, "/status.json", token, &st) == 0 && st.code == 200)
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
		top_print(now, before, (cli_json_number(now, "now_ms") -
					cli_json_number(before, "now_ms")) / 1000.0);
		fflush(stdout);
		cJSON_Delete(before);
		before = now;
		if (!tty)
			break;
	}
	cJSON_Delete(before);
	return CMD_EXIT_OK;
}
