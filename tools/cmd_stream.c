/*
 * cmd_stream.c - `sluice stream create|list|describe|delete`: stream
 * lifecycle through the Kinesis API (CreateStream, ListStreams,
 * DescribeStreamSummary + ListShards, DeleteStream).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define STREAM_WAIT_NS (60ull * 1000000000ull)  /* create waits this long for ACTIVE. */

static const char stream_synopsis[] =
	"sluice stream create NAME [--shards N] [--mode PROVISIONED|ON_DEMAND] [--no-wait]\n"
	"       sluice stream list [--long]\n"
	"       sluice stream describe NAME [--json]\n"
	"       sluice stream delete NAME";

struct stream_opts {
	struct cli_conn conn;
	uint64_t shards;
	const char *mode;
	bool no_wait;
	bool json;
	bool long_list;
};

static int
stream_wait_active(struct kc_client *client, const char *name)
{
	uint64_t deadline = clock_mono_ns() + STREAM_WAIT_NS;
	useconds_t pause_us = 20000;

	for (;;) {
		cJSON *request = cJSON_CreateObject();
		cJSON *response = NULL;
		const cJSON *status;
		bool active;
		int err;

		cJSON_AddStringToObject(request, "StreamName", name);
		err = kc_call(client, "DescribeStreamSummary", request, &response);
		cJSON_Delete(request);
		if (err != 0)
			return err;
		status = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(response, "StreamDescriptionSummary"),
			"StreamStatus");
		active = cJSON_IsString(status) && strcmp(status->valuestring, "ACTIVE") == 0;
		cJSON_Delete(response);
		if (active)
			return 0;
		if (clock_mono_ns() > deadline)
			return -ETIMEDOUT;
		usleep(pause_us);
		pause_us = pause_us < 500000 ? pause_us * 2 : pause_us;
	}
}

static int
stream_create(struct kc_client *client, const char *name, const struct stream_opts *opts)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	bool on_demand = opts->mode != NULL && strcmp(opts->mode, "ON_DEMAND") == 0;
	int err;

	cJSON_AddStringToObject(request, "StreamName", name);
	if (opts->shards != 0 || !on_demand)
		cJSON_AddNumberToObject(request, "ShardCount",
					(double)(opts->shards != 0 ? opts->shards : 1));
	if (opts->mode != NULL)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(request, "StreamModeDetails"),
					"StreamMode", opts->mode);
	err = kc_call(client, "CreateStream", request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	if (err != 0) {
		cli_call_error("stream create", name, client, err);
		return CMD_EXIT_ERROR;
	}
	if (opts->no_wait)
		return CMD_EXIT_OK;
	err = stream_wait_active(client, name);
	if (err != 0) {
		cli_call_error("stream create", "waiting for ACTIVE", client, err);
		return CMD_EXIT_ERROR;
	}
	return CMD_EXIT_OK;
}

static void
stream_list_print(const cJSON *response, bool long_list)
{
	const cJSON *summaries = cJSON_GetObjectItemCaseSensitive(response, "StreamSummaries");
	const cJSON *item;

	if (long_list && cJSON_IsArray(summaries)) {
		cJSON_ArrayForEach(item, summaries) {
			const cJSON *mode = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(item, "StreamModeDetails"),
				"StreamMode");

			printf("%s\t%s\t%s\n",
			       cJSON_GetStringValue(cJSON_GetObjectItem(item, "StreamName")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(item, "StreamStatus")),
			       cJSON_IsString(mode) ? mode->valuestring : "-");
		}
		return;
	}
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(response, "StreamNames")) {
		if (cJSON_IsString(item))
			printf("%s\n", item->valuestring);
	}
}

static int
stream_list(struct kc_client *client, const struct stream_opts *opts)
{
	char *next_token = NULL;

	for (;;) {
		cJSON *request = cJSON_CreateObject();
		cJSON *response = NULL;
		const cJSON *token;
		int err;

		if (next_token != NULL)
			cJSON_AddStringToObject(request, "NextToken", next_token);
		free(next_token);
		next_token = NULL;
		err = kc_call(client, "ListStreams", request, &response);
		cJSON_Delete(request);
		if (err != 0) {
			cli_call_error("stream list", "ListStreams", client, err);
			return CMD_EXIT_ERROR;
		}
		stream_list_print(response, opts->long_list);
		token = cJSON_GetObjectItemCaseSensitive(response, "NextToken");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(response, "HasMoreStreams")) &&
		    cJSON_IsString(token))
			next_token = strdup(token->valuestring);
		cJSON_Delete(response);
		if (next_token == NULL)
			return CMD_EXIT_OK;
	}
}

static int
stream_delete(struct kc_client *client, const char *name)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", name);
	err = kc_call(client, "DeleteStream", request, &response);
	cJSON_Delete(request);
	cJSON_Delete(response);
	if (err != 0) {
		cli_call_error("stream delete", name, client, err);
		return CMD_EXIT_ERROR;
	}
	return CMD_EXIT_OK;
}


static const char *
stream_field(const cJSON *object, const char *name)
{
	const char *value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, name));

	return value != NULL ? value : "-";
}

static void
stream_summary_print(const cJSON *summary)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(summary, "StreamModeDetails"), "StreamMode");
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(summary, "StreamCreationTimestamp");
	const cJSON *retention = cJSON_GetObjectItemCaseSensitive(summary, "RetentionPeriodHours");
	char when[32] = "-";

	if (cJSON_IsNumber(created)) {
		time_t seconds = (time_t)created->valuedouble;
		struct tm utc;

		gmtime_r(&seconds, &utc);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
	}
	printf("%-12s %s\n", "name", stream_field(summary, "StreamName"));
	printf("%-12s %s\n", "arn", stream_field(summary, "StreamARN"));
	printf("%-12s %s\n", "status", stream_field(summary, "StreamStatus"));
	printf("%-12s %s\n", "mode", cJSON_IsString(mode) ? mode->valuestring : "-");
	printf("%-12s %d h\n", "retention", cJSON_IsNumber(retention) ? retention->valueint : 0);
	printf("%-12s %s\n", "created", when);
}

static void
stream_shards_print(const cJSON *shards)
{
	const cJSON *shard;

	printf("\n%-21s %-21s %-6s %-81s %s\n", "SHARD", "PARENT", "STATE", "HASH KEYS",
	       "FIRST SEQUENCE");
	cJSON_ArrayForEach(shard, shards) {
		const cJSON *hash = cJSON_GetObjectItemCaseSensitive(shard, "HashKeyRange");
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(shard, "SequenceNumberRange");
		char keys[96];

		snprintf(keys, sizeof(keys), "%s..%s", stream_field(hash, "StartingHashKey"),
			 stream_field(hash, "EndingHashKey"));
		printf("%-21s %-21s %-6s %-81s %s\n", stream_field(shard, "ShardId"),
		       stream_field(shard, "ParentShardId"),
		       cli_shard_closed(shard) ? "closed" : "open", keys,
		       stream_field(seq, "StartingSequenceNumber"));
	}
}

static int
stream_describe(struct kc_client *client, const char *name, const struct stream_opts *opts)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	cJSON *shards = NULL;
	int err;

	cJSON_AddStringToObject(request, "StreamName", name);
	err = kc_call(client, "DescribeStreamSummary", request, &response);
	cJSON_Delete(request);
	if (err == 0)
		err = cli_shards_list(client, name, &shards);
	if (err != 0) {
		cli_call_error("stream describe", name, client, err);
		cJSON_Delete(response);
		return CMD_EXIT_ERROR;
	}
	if (opts->json) {
		char *text;

		cJSON_AddItemToObject(response, "Shards", shards);
		text = cJSON_Print(response);
		printf("%s\n", text);
		free(text);
	} else {
		stream_summary_print(cJSON_GetObjectItemCaseSensitive(response,
								      "StreamDescriptionSummary"));
		stream_shards_print(shards);
		cJSON_Delete(shards);
	}
	cJSON_Delete(response);
	return CMD_EXIT_OK;
}

/* Checks the positional arguments of `verb`; prints the usage error itself. */
static bool
stream_args_valid(const struct cli_args *args, const struct stream_opts *opts)
{
	const char *verb = args->positional[0];
	bool named = strcmp(verb, "list") != 0;

	if (args->positional_count != (named ? 2u : 1u)) {
		fprintf(stderr, "sluice stream %s: %s\n", verb,
			named ? "needs exactly one stream NAME" : "takes no arguments");
		return false;
	}
	if (named && !cli_stream_name_valid(args->positional[1])) {
		fprintf(stderr, "sluice stream %s: '%s' is not a stream name (1-128 of "
			"[a-zA-Z0-9_.-])\n", verb, args->positional[1]);
		return false;
	}
	if ((opts->shards != 0 || opts->mode != NULL) && strcmp(verb, "create") != 0) {
		fprintf(stderr, "sluice stream %s: --shards and --mode are for create\n", verb);
		return false;
	}
	if (opts->mode != NULL && strcmp(opts->mode, "PROVISIONED") != 0 &&
	    strcmp(opts->mode, "ON_DEMAND") != 0) {
		fprintf(stderr, "sluice stream create: --mode is PROVISIONED or ON_DEMAND\n");
		return false;
	}
	return true;
}

static int
stream_run(struct kc_client *client, const struct cli_args *args, const struct stream_opts *opts)
{
	const char *verb = args->positional[0];
	const char *name = args->positional[1];

	if (strcmp(verb, "create") == 0)
		return stream_create(client, name, opts);
	if (strcmp(verb, "list") == 0)
		return stream_list(client, opts);
	if (strcmp(verb, "describe") == 0)
		return stream_describe(client, name, opts);
	return stream_delete(client, name);
}

int
cmd_stream(int argc, char **argv)
{
	struct stream_opts opts = { 0 };
	const struct cli_opt table[] = {
		{ "shards", CLI_OPT_COUNT, &opts.shards, 1, 100000, "N",
		  "create: number of shards (default 1; ON_DEMAND: the server's choice)" },
		{ "mode", CLI_OPT_STRING, &opts.mode, 0, 0, "MODE",
		  "create: PROVISIONED (default) or ON_DEMAND" },
		{ "no-wait", CLI_OPT_BOOL, &opts.no_wait, 0, 0, NULL,
		  "create: return without waiting for ACTIVE" },
		{ "long", CLI_OPT_BOOL, &opts.long_list, 0, 0, NULL,
		  "list: name, status and mode, tab-separated" },
		{ "json", CLI_OPT_BOOL, &opts.json, 0, 0, NULL,
		  "describe: print the JSON answers" },
		CLI_CONN_OPTS(&opts.conn),
	};
	static const char *const verbs[] = { "create", "list", "describe", "delete" };
	struct cli_args args;
	struct kc_client client;
	bool done;
	bool known = false;
	int code = cli_parse_or_usage(argc, argv, stream_synopsis, table, ARRAY_SIZE(table),
				      &args, &done);

	if (done)
		return code;
	for (size_t i = 0; args.positional_count > 0 && i < ARRAY_SIZE(verbs); i++)
		known = known || strcmp(args.positional[0], verbs[i]) == 0;
	if (!known || !stream_args_valid(&args, &opts)) {
		if (!known)
			fprintf(stderr, "sluice stream: expected create, list, describe or "
				"delete\n");
		cli_args_usage(stderr, stream_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	code = cli_conn_open("stream", &opts.conn, &client);
	if (code != 0)
		return code;
	code = stream_run(&client, &args, &opts);
	kc_client_close(&client);
	return code;
}
