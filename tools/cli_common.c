/*
 * cli_common.c - connection flags, error reports and small helpers shared by
 * the Kinesis-speaking commands (cli_common.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/limits.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

static const char *
cli_env_first(const char *value, const char *name, const char *fallback_name)
{
	const char *env;

	if (value != NULL)
		return value;
	env = getenv(name);
	if ((env == NULL || env[0] == '\0') && fallback_name != NULL)
		env = getenv(fallback_name);
	return env != NULL && env[0] != '\0' ? env : NULL;
}

int
cli_conn_open(const char *command, struct cli_conn *conn, struct kc_client *client)
{
	struct kc_config config = { 0 };
	int err;

	config.endpoint = cli_env_first(conn->endpoint, "SLUICE_ENDPOINT", NULL);
	config.region = cli_env_first(conn->region, "AWS_REGION", "AWS_DEFAULT_REGION");
	config.access_key = cli_env_first(conn->access_key, "AWS_ACCESS_KEY_ID", NULL);
	config.secret_key = cli_env_first(conn->secret_key, "AWS_SECRET_ACCESS_KEY", NULL);
	config.ca_file = cli_env_first(conn->ca_file, "AWS_CA_BUNDLE", NULL);
	config.insecure = conn->insecure;
	/* A session token only makes sense with the environment's keys. */
	if (conn->access_key == NULL)
		config.session_token = cli_env_first(NULL, "AWS_SESSION_TOKEN", NULL);
	if (config.access_key != NULL && config.secret_key == NULL) {
		fprintf(stderr, "sluice %s: an access key needs a secret key\n", command);
		return CMD_EXIT_USAGE;
	}
	err = kc_client_init(client, &config);
	if (err != 0) {
		if (err == -ENOENT)
			fprintf(stderr, "sluice %s: cannot load the CA file '%s'\n", command,
				config.ca_file != NULL ? config.ca_file : "(system)");
		else
			fprintf(stderr, "sluice %s: bad endpoint '%s': %s\n", command,
				config.endpoint != NULL ? config.endpoint : KC_DEFAULT_ENDPOINT,
				err == -EPROTONOSUPPORT ? "http:// or https:// only" :
				strerror(-err));
		kc_client_close(client);
		return CMD_EXIT_USAGE;
	}
	return 0;
}

void
cli_call_error(const char *command, const char *what, const struct kc_client *client,
	       int err)
{
	if (err == -EREMOTEIO)
		fprintf(stderr, "sluice %s: %s: %s%s%s\n", command, what, client->error.type,
			client->error.message[0] != '\0' ? ": " : "", client->error.message);
	else
		fprintf(stderr, "sluice %s: %s: %s (endpoint %s:%s)\n", command, what,
			client->error.message[0] != '\0' ? client->error.message : strerror(-err),
			client->host, client->port);
}

int
cli_parse_or_usage(int argc, char **argv, const char *synopsis, const struct cli_opt *opts,
		   size_t opt_count, struct cli_args *args, bool *done)
{
	int err = cli_args_parse(argc, argv, opts, opt_count, args);

	*done = err != 0;
	if (err == CLI_ARGS_HELP) {
		cli_args_usage(stdout, synopsis, opts, opt_count);
		return CMD_EXIT_OK;
	}
	if (err != 0) {
		fprintf(stderr, "sluice %s: %s\n", argv[0], args->error);
		cli_args_usage(stderr, synopsis, opts, opt_count);
		return CMD_EXIT_USAGE;
	}
	return 0;
}

uint64_t
cli_random_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void
cli_random_text(uint64_t *state, char *out, size_t size)
{
	static const char alphabet[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	for (size_t i = 0; i < size; i++)
		out[i] = alphabet[cli_random_next(state) % (sizeof(alphabet) - 1)];
}

bool
cli_stream_name_valid(const char *text)
{
	size_t size = strlen(text);

	return size >= 1 && size <= SLUICE_STREAM_NAME_SIZE_MAX &&
	       strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
		       size;
}

/* Every shard of the stream, following NextToken, as one JSON array (caller frees). */
bool
cli_shard_closed(const cJSON *shard)
{
	const cJSON *range = cJSON_GetObjectItemCaseSensitive(shard, "SequenceNumberRange");

	return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(range, "EndingSequenceNumber"));
}

int
cli_shards_list(struct kc_client *client, const char *name, cJSON **shards_out)
{
	cJSON *shards = cJSON_CreateArray();
	char *next_token = NULL;
	int err;

	do {
		cJSON *request = cJSON_CreateObject();
		cJSON *response = NULL;
		cJSON *shard;
		const cJSON *token;

		if (next_token != NULL)
			cJSON_AddStringToObject(request, "NextToken", next_token);
		else
			cJSON_AddStringToObject(request, "StreamName", name);
		free(next_token);
		next_token = NULL;
		err = kc_call(client, "ListShards", request, &response);
		cJSON_Delete(request);
		if (err != 0)
			break;
		while ((shard = cJSON_DetachItemFromArray(
				cJSON_GetObjectItemCaseSensitive(response, "Shards"), 0)) != NULL)
			cJSON_AddItemToArray(shards, shard);
		token = cJSON_GetObjectItemCaseSensitive(response, "NextToken");
		if (cJSON_IsString(token))
			next_token = strdup(token->valuestring);
		cJSON_Delete(response);
	} while (next_token != NULL);
	if (err != 0) {
		cJSON_Delete(shards);
		return err;
	}
	*shards_out = shards;
	return 0;
}

static int
cli_tree_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
cli_tree_remove(const char *path)
{
	nftw(path, cli_tree_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
cli_spawn(char *const argv[], pid_t *pid_out, int *fd_out)
{
	int pipe_fd[2];
	pid_t pid;

	if (pipe(pipe_fd) != 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(pipe_fd[0]);
		close(pipe_fd[1]);
		return err;
	}
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);

		dup2(null_fd, 0);
		dup2(pipe_fd[1], 1);
		dup2(pipe_fd[1], 2);
		close(pipe_fd[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pipe_fd[1]);
	*pid_out = pid;
	*fd_out = pipe_fd[0];
	return 0;
}

int
cli_find_helper(const char *name, const char *env, char *path, size_t size)
{
	const char *env_path = getenv(env);
	char self[PATH_MAX];
	ssize_t n;
	char *dir;

	if (path == NULL || size == 0)
		return -EINVAL; /* Also tells GCC's -fsanitize builds that path is not NULL. */
	if (env_path != NULL) {
		snprintf(path, size, "%s", env_path);
		return access(path, X_OK) == 0 ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	dir = dirname(self);
	snprintf(path, size, "%s/%s", dir, name);
	if (access(path, X_OK) == 0)
		return 0;
	snprintf(path, size, "%s/../dataplane/%s", dir, name);
	return access(path, X_OK) == 0 ? 0 : -ENOENT;
}
