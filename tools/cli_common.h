/*
 * cli_common.h - what the Kinesis-speaking commands share: the connection
 * flags (--endpoint, --region, --access-key, --secret-key, --ca-file,
 * --insecure) with their environment fallbacks, and one way of reporting a failed call.
 */
#ifndef SLUICE_TOOLS_CLI_COMMON_H
#define SLUICE_TOOLS_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tools/cli_args.h"
#include "tools/kinesis_client.h"

struct cli_conn {
	const char *endpoint;
	const char *region;
	const char *access_key;
	const char *secret_key;
	const char *ca_file;
	bool insecure;
};

/* The four connection rows of a command's option table. */
#define CLI_CONN_OPTS(conn)                                                                   \
	{ "endpoint", CLI_OPT_STRING, &(conn)->endpoint, 0, 0, "URL",                         \
	  "Kinesis API endpoint (SLUICE_ENDPOINT; default " KC_DEFAULT_ENDPOINT ")" },        \
	{ "region", CLI_OPT_STRING, &(conn)->region, 0, 0, "REGION",                          \
	  "signing region (AWS_REGION; default " KC_DEFAULT_REGION ")" },                     \
	{ "access-key", CLI_OPT_STRING, &(conn)->access_key, 0, 0, "ID",                      \
	  "sign requests with SigV4 (AWS_ACCESS_KEY_ID)" },                                   \
	{ "secret-key", CLI_OPT_STRING, &(conn)->secret_key, 0, 0, "KEY",                     \
	  "secret for --access-key (AWS_SECRET_ACCESS_KEY)" },                                \
	{ "ca-file", CLI_OPT_STRING, &(conn)->ca_file, 0, 0, "PEM",                           \
	  "https: trust these CAs (AWS_CA_BUNDLE; default: the system's)" },                  \
	{ "insecure", CLI_OPT_BOOL, &(conn)->insecure, 0, 0, NULL,                            \
	  "https: do not verify the server's certificate" }

/*
 * Fills unset fields from the environment and opens the client. On failure
 * prints why and returns the exit code (usage for a bad endpoint); else 0.
 */
int cli_conn_open(const char *command, struct cli_conn *conn, struct kc_client *client);

/* Prints "sluice <command>: <what>: <error>" for a kc_call() failure. */
void cli_call_error(const char *command, const char *what, const struct kc_client *client,
		    int err);

/*
 * Parses the command's flags; on --help prints usage to stdout and returns
 * 0 with *done set; on a usage error prints it and usage to stderr and
 * returns CMD_EXIT_USAGE with *done set.
 */
int cli_parse_or_usage(int argc, char **argv, const char *synopsis, const struct cli_opt *opts,
		       size_t opt_count, struct cli_args *args, bool *done);

/* Random alphanumeric text of `size` bytes (no NUL) from a splitmix64 state. */
void cli_random_text(uint64_t *state, char *out, size_t size);
uint64_t cli_random_next(uint64_t *state);

/* Whether `text` is a valid stream name (1..128 of [a-zA-Z0-9_.-]). */
bool cli_stream_name_valid(const char *text);

/* Every shard of the stream (ListShards, following NextToken) as one JSON array. */
int cli_shards_list(struct kc_client *client, const char *name, cJSON **shards_out);
/*
 * Whether a listed shard is closed: its SequenceNumberRange has an EndingSequenceNumber.
 * Other Kinesis endpoints send "EndingSequenceNumber": null for an open shard.
 */
bool cli_shard_closed(const cJSON *shard);

/* Removes a directory tree the command made (benchmarks' scratch dirs); best effort. */
void cli_tree_remove(const char *path);

/*
 * Starts argv with stdin from /dev/null and stdout+stderr into a pipe whose read
 * end goes to *fd_out. Returns 0 or a negative errno.
 */
int cli_spawn(char *const argv[], pid_t *pid_out, int *fd_out);

/*
 * A helper executable of the benchmarks (they run DPDK in a process of its own:
 * tools/ includes no DPDK header): $`env` when set, else `name` next to this
 * executable or in the build tree's dataplane/. 0 and the path, or -ENOENT.
 */
int cli_find_helper(const char *name, const char *env, char *path, size_t size);

#endif /* SLUICE_TOOLS_CLI_COMMON_H */
