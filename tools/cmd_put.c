/*
 * cmd_put.c - `sluice put STREAM KEY DATA`: one PutRecord; prints the shard
 * and the sequence number the stream gave the record, tab-separated.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/limits.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

static const char put_synopsis[] =
	"sluice put STREAM KEY DATA [--explicit-hash-key N]   (DATA '-' reads stdin)";

/* Reads all of stdin (up to the record size limit) into a malloc()ed buffer. */
static int
put_read_stdin(char **data_out, size_t *size_out)
{
	size_t capacity = 4096;
	size_t size = 0;
	char *data = malloc(capacity);

	while (data != NULL) {
		size_t got = fread(data + size, 1, capacity - size, stdin);

		size += got;
		if (got == 0)
			break;
		if (size > SLUICE_RECORD_DATA_SIZE_MAX)
			break;
		if (size == capacity) {
			char *bigger = realloc(data, capacity * 2);

			if (bigger == NULL)
				free(data);
			data = bigger;
			capacity *= 2;
		}
	}
	if (data == NULL || ferror(stdin) || size > SLUICE_RECORD_DATA_SIZE_MAX) {
		free(data);
		return data == NULL ? -ENOMEM : ferror(stdin) ? -EIO : -EMSGSIZE;
	}
	*data_out = data;
	*size_out = size;
	return 0;
}

static int
put_record(struct kc_client *client, const char *stream, const char *key, const char *data,
	   size_t size, const char *explicit_hash_key)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	char *encoded;
	size_t encoded_size;
	int err = kc_base64_encode(data, size, &encoded, &encoded_size);

	if (err != 0)
		goto out_request;
	cJSON_AddStringToObject(request, "StreamName", stream);
	cJSON_AddStringToObject(request, "PartitionKey", key);
	cJSON_AddStringToObject(request, "Data", encoded);
	if (explicit_hash_key != NULL)
		cJSON_AddStringToObject(request, "ExplicitHashKey", explicit_hash_key);
	free(encoded);
	err = kc_call(client, "PutRecord", request, &response);
	if (err == 0) {
		const char *shard = cJSON_GetStringValue(cJSON_GetObjectItem(response, "ShardId"));
		const char *seq =
			cJSON_GetStringValue(cJSON_GetObjectItem(response, "SequenceNumber"));

		if (shard == NULL || seq == NULL)
			err = -EBADMSG;
		else
			printf("%s\t%s\n", shard, seq);
	}
	cJSON_Delete(response);
out_request:
	cJSON_Delete(request);
	return err;
}

int
cmd_put(int argc, char **argv)
{
	struct cli_conn conn = { 0 };
	const char *explicit_hash_key = NULL;
	const struct cli_opt table[] = {
		{ "explicit-hash-key", CLI_OPT_STRING, &explicit_hash_key, 0, 0, "N",
		  "route by this decimal 128-bit hash key instead of MD5(KEY)" },
		CLI_CONN_OPTS(&conn),
	};
	struct cli_args args;
	struct kc_client client;
	char *data = NULL;
	size_t size;
	bool done;
	int code = cli_parse_or_usage(argc, argv, put_synopsis, table, ARRAY_SIZE(table), &args,
				      &done);
	int err;

	if (done)
		return code;
	if (args.positional_count != 3 || !cli_stream_name_valid(args.positional[0]) ||
	    args.positional[1][0] == '\0' ||
	    strlen(args.positional[1]) > SLUICE_PARTITION_KEY_SIZE_MAX) {
		fprintf(stderr, "sluice put: needs STREAM, KEY (1-%d bytes) and DATA\n",
			SLUICE_PARTITION_KEY_SIZE_MAX);
		cli_args_usage(stderr, put_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	code = cli_conn_open("put", &conn, &client);
	if (code != 0)
		return code;
	if (strcmp(args.positional[2], "-") == 0) {
		err = put_read_stdin(&data, &size);
		if (err != 0) {
			fprintf(stderr, "sluice put: reading stdin: %s\n", strerror(-err));
			kc_client_close(&client);
			return CMD_EXIT_ERROR;
		}
	}
	err = data != NULL ? put_record(&client, args.positional[0], args.positional[1], data, size,
					explicit_hash_key) :
	      put_record(&client, args.positional[0], args.positional[1], args.positional[2],
			 strlen(args.positional[2]), explicit_hash_key);
	if (err != 0)
		cli_call_error("put", args.positional[0], &client, err);
	free(data);
	kc_client_close(&client);
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}
