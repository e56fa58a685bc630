/*
 * fh_lambda.c - ProcessingConfiguration's Lambda processor, run as a local
 * executable: [firehose] lambda_map names one per function ARN. A cut (fh->raw,
 * its records' ends and arrivals) is transformed before delivery, in invocations of
 * at most BufferSizeInMBs of input (and FH_LAMBDA_INVOKE_RECORDS_MAX records):
 *
 *   STDIN   Firehose's transformation event:
 *           {"invocationId":"<hash of the invocation's range>","deliveryStreamArn":"..",
 *            "region":"..","records":[{"recordId":"<position in the cut>",
 *            "approximateArrivalTimestamp":<ms>,"data":"<base64>"},...]}
 *   STDOUT  its response: {"records":[{"recordId":"..","result":"Ok"|"Dropped"|
 *           "ProcessingFailed","data":"<base64>","metadata":{"partitionKeys":{..}}},...]}
 *           (at most 6 MB, as AWS); metadata only for !{partitionKeyFromLambda:..}
 *
 * An Ok record's data is followed by the stream's delimiter (AppendDelimiterToRecord)
 * in the transformed cut; its partition keys are noted for partitioning (fh_partition.c).
 *
 *   OUTCOME                                RECORD GOES TO    errorCode
 *   Ok                                     the destination   -
 *   Dropped                                nowhere           -
 *   ProcessingFailed                       processing-failed Lambda.ProcessingFailed
 *   no answer for its recordId             processing-failed Lambda.MissingRecordId
 *   another result, data not base64        processing-failed Lambda.InvalidReturnedRecord
 *   the transformed cut would overflow     processing-failed Lambda.ResponseTooLarge
 *   the invocation failed NumberOfRetries  processing-failed Lambda.FunctionError (exit,
 *   + 1 times (exit status, killed at the                    signal), Lambda.Timeout,
 *   timeout, answer not JSON or too big)                     Lambda.InvalidResponse
 *
 * Failed records are Firehose's error records (one JSON object a line, rawData the
 * source record), written per invocation as <ErrorOutputPrefix>processing-failed/
 * YYYY/MM/DD/HH/<name>-<version>-<stamp>-<uuid of the invocation's range><ext>.
 *
 * Exactly once: the events are a function of the range (ids from the log, no clock),
 * and what the function made of each invocation (its answer, or why every attempt
 * failed, with the attempts' end time) is in SQLite before anything of it is written,
 * until the range is delivered: a redo of the intent (a store failure retried, a
 * crash, an HTTP retry) reuses it and runs nothing, so a function that answers
 * otherwise the second time (a timeout once, records the next) cannot put a record
 * both under processing-failed/ and in an object, and the error objects get the same
 * bytes. The child is killed at [firehose] lambda_timeout_s; it holds the flusher
 * thread (without the engine lock, never the API thread) until then. Memory: the
 * buffers below, allocated at start, untouched until used.
 *
 *   TABLE              COLUMNS (firehose.db)
 *   lambda_processors  id INTEGER PRIMARY KEY, arn, retries,    one row per stream
 *                      buffer_bytes, interval_s                  with a processor
 *   lambda_answers     ds_id, shard_id, first, call, attempts,   one row per invocation
 *                      error_code ("": answered), error_text,   of the lane's intent;
 *                      ending_ms, answer BLOB                    gone once delivered
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/diag.h"
#include "common/hist.h"
#include "firehose/fh_internal.h"

extern char **environ;

/* Ours: records in one invocation (AWS bounds it by the 6 MB event only). */
#define FH_LAMBDA_INVOKE_RECORDS_MAX 10000u
#define FH_LAMBDA_ANSWER_MAX (6u << 20)          /* AWS: 6 MB per response. */
#define FH_LAMBDA_TIMEOUT_S_DEFAULT 60u
#define FH_LAMBDA_ERROR_TEXT_MAX 256u
/* One invocation's input: the buffer, or one record larger than it. */
#define FH_LAMBDA_INPUT_MAX ((size_t)FIREHOSE_LAMBDA_BUFFER_MAX + FIREHOSE_RECORD_SIZE_MAX)
#define FH_LAMBDA_B64_MAX ((FH_LAMBDA_INPUT_MAX + 2) / 3 * 4)
/* Per record besides its base64: the event's members, or an error record's. */
#define FH_LAMBDA_EVENT_RECORD 128u
#define FH_LAMBDA_ERROR_RECORD (256u + FIREHOSE_ARN_SIZE_MAX + FH_LAMBDA_ERROR_TEXT_MAX)
#define FH_LAMBDA_EVENT_MAX (FH_LAMBDA_B64_MAX + 1024u + FIREHOSE_ARN_SIZE_MAX + \
			     (size_t)FH_LAMBDA_INVOKE_RECORDS_MAX * FH_LAMBDA_EVENT_RECORD)
#define FH_LAMBDA_ERRORS_MAX (FH_LAMBDA_B64_MAX + \
			      (size_t)FH_LAMBDA_INVOKE_RECORDS_MAX * FH_LAMBDA_ERROR_RECORD)
#define FH_LAMBDA_FAILED_TYPE "processing-failed"
#define FH_LAMBDA_PATH_SIZE_MAX 1024u
#define FH_LAMBDA_CODE_SIZE 32u                  /* "Lambda.InvalidResponse" and the like. */

struct fh_lambda_fn {
	char arn[FIREHOSE_ARN_SIZE_MAX + 1];
	char path[FH_LAMBDA_PATH_SIZE_MAX];
};

/* One invocation's records: [from, to) of the cut. */
struct fh_lambda_call {
	uint64_t first;              /* The cut's first seq: with from and to, names the call. */
	uint32_t from, to;
	uint32_t attempts;
	uint32_t failed;             /* Records that went to processing-failed. */
	uint64_t ending_ms;          /* When its last attempt ended (error records say it). */
	char error_code[FH_LAMBDA_CODE_SIZE];  /* Of the last failed attempt ("": answered). */
	char error_text[FH_LAMBDA_ERROR_TEXT_MAX];
};

struct fh_lambda {
	struct fh_lambda_fn map[FIREHOSE_LAMBDA_MAP_MAX];
	uint32_t map_count;
	uint32_t timeout_ms;
	char arn_prefix[160];
	char region[64];
	char *event;                 /* FH_LAMBDA_EVENT_MAX */
	char *answer;                /* FH_LAMBDA_ANSWER_MAX + 1 */
	size_t answer_used;
	char *errors;                /* FH_LAMBDA_ERRORS_MAX: one invocation's error records. */
	size_t errors_used;
	int32_t *answer_of;          /* FH_LAMBDA_INVOKE_RECORDS_MAX: response index per record. */
	uint8_t *out;                /* FH_RAW_SIZE_MAX: the transformed cut. */
	size_t out_used;
	uint32_t *out_ends;          /* FH_CUT_RECORDS_MAX each. */
	uint64_t *out_arrivals;
	uint64_t *out_seqs;
	uint32_t out_count;
};

/* ---- Life cycle and the map ----------------------------------------------------- */

static int
fh_lambda_map_parse(struct fh_lambda *l, const char *map)
{
	for (const char *p = map; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, ","), eq = strcspn(p, "=");
		struct fh_lambda_fn *fn = &l->map[l->map_count];

		if (eq >= n || eq == 0 || eq > FIREHOSE_ARN_SIZE_MAX || n - eq - 1 == 0 ||
		    n - eq - 1 >= FH_LAMBDA_PATH_SIZE_MAX || l->map_count == FIREHOSE_LAMBDA_MAP_MAX) {
			diag_error("firehose", "[firehose] lambda_map: expected ARN=PATH[,...] (at "
				   "most %u functions), at '%.*s'", FIREHOSE_LAMBDA_MAP_MAX, (int)n, p);
			return -EINVAL;
		}
		memcpy(fn->arn, p, eq);
		memcpy(fn->path, p + eq + 1, n - eq - 1);
		l->map_count++;
		p += n + (p[n] == ',');
	}
	return 0;
}

int
fh_lambda_open(struct firehose *fh, const struct firehose_options *options)
{
	struct fh_lambda *l = calloc(1, sizeof(*l));

	fh->lambda = l;
	if (l == NULL)
		return -ENOMEM;
	l->timeout_ms = 1000u * (uint32_t)(options->lambda_timeout_s != 0 ?
		min_u64(options->lambda_timeout_s, FIREHOSE_LAMBDA_TIMEOUT_S_MAX) :
		FH_LAMBDA_TIMEOUT_S_DEFAULT);
	snprintf(l->region, sizeof(l->region), "%s",
		 options->region != NULL ? options->region : "us-east-1");
	snprintf(l->arn_prefix, sizeof(l->arn_prefix), "arn:aws:firehose:%s:%s:deliverystream/",
		 l->region, options->account_id != NULL ? options->account_id : "000000000000");
	if (fh_lambda_map_parse(l, options->lambda_map) != 0)
		return -EINVAL;
	/* Large but untouched until a stream with a processor needs them. */
	l->event = malloc(FH_LAMBDA_EVENT_MAX);
	l->answer = malloc(FH_LAMBDA_ANSWER_MAX + 1);
	l->errors = malloc(FH_LAMBDA_ERRORS_MAX);
	l->answer_of = malloc(FH_LAMBDA_INVOKE_RECORDS_MAX * sizeof(*l->answer_of));
	l->out = malloc(FH_RAW_SIZE_MAX);
	l->out_ends = malloc(FH_CUT_RECORDS_MAX * sizeof(*l->out_ends));
	l->out_arrivals = malloc(FH_CUT_RECORDS_MAX * sizeof(*l->out_arrivals));
	l->out_seqs = malloc(FH_CUT_RECORDS_MAX * sizeof(*l->out_seqs));
	return l->event == NULL || l->answer == NULL || l->errors == NULL || l->out == NULL ||
	       l->answer_of == NULL || l->out_ends == NULL || l->out_arrivals == NULL ||
	       l->out_seqs == NULL ? -ENOMEM : 0;
}

void
fh_lambda_close(struct firehose *fh)
{
	struct fh_lambda *l = fh->lambda;

	if (l == NULL)
		return;
	free(l->event);
	free(l->answer);
	free(l->errors);
	free(l->answer_of);
	free(l->out);
	free(l->out_ends);
	free(l->out_arrivals);
	free(l->out_seqs);
	free(l);
}

static const struct fh_lambda_fn *
fh_lambda_find(const struct fh_lambda *l, const char *arn)
{
	for (uint32_t i = 0; i < l->map_count; i++)
		if (strcmp(l->map[i].arn, arn) == 0)
			return &l->map[i];
	return NULL;
}

bool
firehose_lambda_known(const struct firehose *fh, const char *arn)
{
	return fh_lambda_find(fh->lambda, arn) != NULL;
}

/* ---- SQLite ------------------------------------------------------------------------ */

int
fh_lambda_store_create(struct firehose *fh)
{
	return fh_store_exec(fh, "CREATE TABLE IF NOT EXISTS lambda_processors("
			     "id INTEGER PRIMARY KEY, arn TEXT NOT NULL, retries INTEGER NOT NULL,"
			     " buffer_bytes INTEGER NOT NULL, interval_s INTEGER NOT NULL);"
			     "CREATE TABLE IF NOT EXISTS lambda_answers(ds_id INTEGER NOT NULL,"
			     " shard_id INTEGER NOT NULL, first INTEGER NOT NULL,"
			     " call INTEGER NOT NULL, attempts INTEGER NOT NULL,"
			     " error_code TEXT NOT NULL, error_text TEXT NOT NULL,"
			     " ending_ms INTEGER NOT NULL, answer BLOB NOT NULL,"
			     " PRIMARY KEY(ds_id, shard_id, first, call));");
}

/* The lane's intent is delivered (or skipped): its invocations' outcomes are not needed. */
int
fh_lambda_store_forget(struct firehose *fh, uint32_t ds_id, uint64_t shard_id)
{
	int64_t id = ds_id, shard = (int64_t)shard_id;

	return fh_store_run(fh, "DELETE FROM lambda_answers WHERE ds_id = ? AND shard_id = ?",
			    "ii", (const void *[]){ &id, &shard });
}

int
fh_lambda_store_insert(struct firehose *fh, const struct fh_stream *s)
{
	const struct firehose_lambda *c = &s->spec.lambda;
	int64_t id = s->id, retries = c->retries, buffer = c->buffer_bytes;
	int64_t interval = c->interval_s;

	if (c->arn[0] == '\0')
		return 0;
	return fh_store_run(fh, "INSERT INTO lambda_processors(id, arn, retries, buffer_bytes,"
			    " interval_s) VALUES(?, ?, ?, ?, ?)", "itiii",
			    (const void *[]){ &id, c->arn, &retries, &buffer, &interval });
}

int
fh_lambda_store_delete(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id;
	int rc = fh_store_run(fh, "DELETE FROM lambda_answers WHERE ds_id = ?", "i",
			      (const void *[]){ &id });

	return rc != 0 ? rc : fh_store_run(fh, "DELETE FROM lambda_processors WHERE id = ?", "i",
					   (const void *[]){ &id });
}

int
fh_lambda_store_load(struct firehose *fh, struct fh_stream *s)
{
	struct firehose_lambda *c = &s->spec.lambda;
	sqlite3_stmt *st = NULL;
	int step = fh_store_by_id(fh, "SELECT arn, retries, buffer_bytes, interval_s FROM"
				  " lambda_processors WHERE id = ?", s->id, &st);

	if (step == SQLITE_ROW) {
		fh_store_column(st, 0, c->arn, sizeof(c->arn));
		c->retries = (uint32_t)sqlite3_column_int64(st, 1);
		c->buffer_bytes = (uint32_t)sqlite3_column_int64(st, 2);
		c->interval_s = (uint32_t)sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	return step < 0 ? step : 0;
}

/* ---- One invocation ------------------------------------------------------------------ */

/* With the cut's first seq, names the invocation (its id, its error object, its row). */
static uint64_t
fh_lambda_call_key(const struct fh_lambda_call *c)
{
	return (uint64_t)c->from << 32 | c->to;
}

/* Binds an invocation's row key (ds_id, shard_id, first, call) to parameters 1-4. */
static bool
fh_lambda_bind_call(sqlite3_stmt *st, const struct fh_job *j, const struct fh_lambda_call *c)
{
	return sqlite3_bind_int64(st, 1, j->id) == SQLITE_OK &&
	       sqlite3_bind_int64(st, 2, (int64_t)j->shard_id) == SQLITE_OK &&
	       sqlite3_bind_int64(st, 3, (int64_t)c->first) == SQLITE_OK &&
	       sqlite3_bind_int64(st, 4, (int64_t)fh_lambda_call_key(c)) == SQLITE_OK;
}

/*
 * What the function made of this invocation of the intent before (a redo): into c and
 * l->answer; -ENOENT when it has not run for it. Under the engine lock (SQLite).
 */
static int
fh_lambda_recall(struct firehose *fh, const struct fh_job *j, struct fh_lambda_call *c)
{
	struct fh_lambda *l = fh->lambda;
	sqlite3_stmt *st = NULL;
	int rc = -ENOENT, step;

	fh_lock(fh);
	if (sqlite3_prepare_v2(fh->db, "SELECT attempts, error_code, error_text, ending_ms, answer"
			       " FROM lambda_answers WHERE ds_id = ? AND shard_id = ? AND"
			       " first = ? AND call = ?", -1, &st, NULL) != SQLITE_OK ||
	    !fh_lambda_bind_call(st, j, c)) {
		rc = fh_store_fail(fh, "lambda_answers");
		goto out_unlock;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		size_t size = (size_t)sqlite3_column_bytes(st, 4);

		c->attempts = (uint32_t)sqlite3_column_int64(st, 0);
		fh_store_column(st, 1, c->error_code, sizeof(c->error_code));
		fh_store_column(st, 2, c->error_text, sizeof(c->error_text));
		c->ending_ms = (uint64_t)sqlite3_column_int64(st, 3);
		rc = size <= FH_LAMBDA_ANSWER_MAX ? 0 : -EIO;  /* Never kept larger. */
		if (rc == 0 && size > 0)
			memcpy(l->answer, sqlite3_column_blob(st, 4), size);
		l->answer_used = rc == 0 ? size : 0;
	} else if (step != SQLITE_DONE) {
		rc = fh_store_fail(fh, "lambda_answers");
	}
out_unlock:
	sqlite3_finalize(st);
	fh_unlock(fh);
	return rc;
}

/*
 * Keeps what the function made of this invocation (its answer in l->answer, or c's
 * error) until the intent is delivered; on stable storage before any of it is written.
 */
static int
fh_lambda_remember(struct firehose *fh, const struct fh_job *j, const struct fh_lambda_call *c)
{
	struct fh_lambda *l = fh->lambda;
	size_t answer = c->error_code[0] == '\0' ? l->answer_used : 0;
	sqlite3_stmt *st = NULL;
	int rc = 0;

	fh_lock(fh);
	if (sqlite3_prepare_v2(fh->db, "INSERT OR REPLACE INTO lambda_answers(ds_id, shard_id,"
			       " first, call, attempts, error_code, error_text, ending_ms, answer)"
			       " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK ||
	    !fh_lambda_bind_call(st, j, c) ||
	    sqlite3_bind_int64(st, 5, c->attempts) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, c->error_code, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, c->error_text, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, (int64_t)c->ending_ms) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 9, l->answer, (int)answer, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		rc = fh_store_fail(fh, "lambda_answers");
	sqlite3_finalize(st);
	fh_unlock(fh);
	return rc;
}

static void
fh_lambda_fail(struct fh_lambda_call *c, const char *code, const char *fmt, const char *arg)
{
	snprintf(c->error_code, sizeof(c->error_code), "%s", code);
	snprintf(c->error_text, sizeof(c->error_text), fmt, arg);
	for (char *p = c->error_text; *p != '\0'; p++)  /* Kept as JSON text as it is. */
		if (*p < ' ' || *p > '~' || *p == '"' || *p == '\\')
			*p = '?';
}

static size_t
fh_lambda_event(struct firehose *fh, const struct fh_job *j, const struct fh_lambda_call *c)
{
	struct fh_lambda *l = fh->lambda;
	char id[FH_UUID_SIZE];
	char *e = l->event;
	size_t at;

	fh_range_uuid(j, c->first, fh_lambda_call_key(c), id);
	at = (size_t)sprintf(e, "{\"invocationId\":\"%s\",\"deliveryStreamArn\":\"%s%s\","
			     "\"region\":\"%s\",\"records\":[", id, l->arn_prefix, j->spec.name,
			     l->region);
	for (uint32_t i = c->from; i < c->to; i++) {
		uint32_t start = i == 0 ? 0 : fh->record_ends[i - 1];

		at += (size_t)sprintf(e + at, "%s{\"recordId\":\"%u\",\"approximateArrival"
				      "Timestamp\":%llu,\"data\":\"", i == c->from ? "" : ",", i,
				      (unsigned long long)(fh->record_arrivals[i] / 1000000u));
		at += base64_encode(fh->raw + start, fh->record_ends[i] - start, e + at);
		at += (size_t)sprintf(e + at, "\"}");
	}
	at += (size_t)sprintf(e + at, "]}");
	assert(at <= FH_LAMBDA_EVENT_MAX);
	return at;
}

/* Starts `path` with stdin a socket (no SIGPIPE when it exits early) and stdout a pipe. */
static int
fh_lambda_spawn(const char *path, int *in_out, int *out_out, pid_t *pid_out)
{
	char *argv[] = { (char *)(uintptr_t)path, NULL };
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int rc = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
	    pipe2(out, O_CLOEXEC) != 0)
		rc = -errno;
	if (rc == 0) {
		/* Not sluiced's blocked signals or ignored SIGPIPE: a program as from a shell. */
		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_init(&attr);
		posix_spawnattr_setsigmask(&attr, &none);
		posix_spawnattr_setsigdefault(&attr, &all);
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
		posix_spawn_file_actions_init(&actions);
		posix_spawn_file_actions_adddup2(&actions, in[1], 0);
		posix_spawn_file_actions_adddup2(&actions, out[1], 1);
		rc = -posix_spawn(pid_out, path, &actions, &attr, argv, environ);
		posix_spawn_file_actions_destroy(&actions);
		posix_spawnattr_destroy(&attr);
	}
	if (in[1] >= 0)
		close(in[1]);
	if (out[1] >= 0)
		close(out[1]);
	if (rc != 0) {
		if (in[0] >= 0)
			close(in[0]);
		if (out[0] >= 0)
			close(out[0]);
		return rc;
	}
	fcntl(in[0], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	*in_out = in[0];
	*out_out = out[0];
	return 0;
}

/* Feeds the event and takes the answer until the child exits or the deadline passes. */
static int
fh_lambda_exchange(struct fh_lambda *l, size_t size, int in, int out, int pidfd,
		   uint64_t deadline_ns)
{
	size_t sent = 0;
	bool exited = false;

	while (!exited || out >= 0) {
		struct pollfd p[3] = { { in, POLLOUT, 0 }, { out, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
		uint64_t now = clock_mono_ns();
		ssize_t n;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		if (poll(p, 3, (int)((deadline_ns - now) / 1000000u) + 1) < 0 && errno != EINTR)
			return -errno;
		if (in >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
			n = send(in, l->event + sent, size - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = size;  /* It stopped reading: its answer decides. */
			if (sent == size) {
				shutdown(in, SHUT_WR);
				in = -1;
			}
		}
		if (out >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
			n = read(out, l->answer + l->answer_used, FH_LAMBDA_ANSWER_MAX + 1 -
				 l->answer_used);
			if (n > 0)
				l->answer_used += (size_t)n;
			if (l->answer_used > FH_LAMBDA_ANSWER_MAX)
				return -EMSGSIZE;
			if (n == 0)
				out = -1;
		}
		exited = exited || (p[2].revents & POLLIN) != 0;
	}
	return 0;
}

/* Runs the function once on the event; 0 with its answer in l->answer, or c says why not. */
static int
fh_lambda_invoke(struct fh_lambda *l, const struct fh_lambda_fn *fn, size_t size,
		 struct fh_lambda_call *c)
{
	int in = -1, out = -1, pidfd = -1, status = 0, rc;
	char text[64];
	pid_t pid;

	l->answer_used = 0;
	rc = fh_lambda_spawn(fn->path, &in, &out, &pid);
	if (rc != 0) {
		fh_lambda_fail(c, "Lambda.FunctionError", "The function's executable did not "
			       "start: %s", strerror(-rc));
		return rc;
	}
	pidfd = pidfd_open(pid, 0);
	rc = pidfd < 0 ? -errno : fh_lambda_exchange(l, size, in, out, pidfd,
						      clock_mono_ns() + l->timeout_ms * 1000000ull);
	if (rc != 0)
		kill(pid, SIGKILL);  /* Timed out, answered too much, or cannot be watched. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(in);
	close(out);
	if (pidfd >= 0)
		close(pidfd);
	snprintf(text, sizeof(text), "%u s", l->timeout_ms / 1000);
	if (rc == -ETIMEDOUT)
		fh_lambda_fail(c, "Lambda.Timeout", "Killed after the timeout of %s.", text);
	else if (rc == -EMSGSIZE)
		fh_lambda_fail(c, "Lambda.InvalidResponse", "The response is over %s.", "6 MB");
	else if (rc != 0)
		fh_lambda_fail(c, "Lambda.FunctionError", "%s", strerror(-rc));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = -ECHILD;
	if (rc == -ECHILD) {
		snprintf(text, sizeof(text), WIFEXITED(status) ? "exit status %d" : "signal %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		fh_lambda_fail(c, "Lambda.FunctionError", "The function failed: %s.", text);
	}
	return rc;
}

/* ---- Its answer ----------------------------------------------------------------------- */

/* answer_of[i - from] = the response entry for record i, -1 none. -EPROTO if malformed. */
static int
fh_lambda_match(struct fh_lambda *l, const cJSON *records, struct fh_lambda_call *c)
{
	const cJSON *rec;
	int32_t index = 0;

	for (uint32_t i = 0; i < c->to - c->from; i++)
		l->answer_of[i] = -1;
	if (!cJSON_IsArray(records)) {
		fh_lambda_fail(c, "Lambda.InvalidResponse", "The response is not JSON with %s.",
			       "a records array");
		return -EPROTO;
	}
	cJSON_ArrayForEach(rec, records) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "recordId");
		char *end = NULL;
		unsigned long long at = cJSON_IsString(id) ? strtoull(id->valuestring, &end, 10) : 0;

		/* A recordId that names none of ours (or a second answer) is not used. */
		if (end != NULL && *end == '\0' && end != id->valuestring && at >= c->from &&
		    at < c->to && l->answer_of[at - c->from] < 0)
			l->answer_of[at - c->from] = index;
		index++;
	}
	return 0;
}

/* Appends record i's error record to l->errors. */
static void
fh_lambda_error_record(struct firehose *fh, const struct fh_job *j,
		       struct fh_lambda_call *c, uint32_t i, const char *code,
		       const char *text)
{
	struct fh_lambda *l = fh->lambda;
	uint32_t start = i == 0 ? 0 : fh->record_ends[i - 1];
	char *e = l->errors;

	c->failed++;
	l->errors_used += (size_t)sprintf(e + l->errors_used, "{\"attemptsMade\":%u,"
					  "\"arrivalTimestamp\":%llu,\"errorCode\":\"%s\","
					  "\"errorMessage\":\"%s\",\"attemptEndingTimestamp\":%llu,"
					  "\"rawData\":\"", c->attempts,
					  (unsigned long long)(fh->record_arrivals[i] / 1000000u),
					  code, text,
					  (unsigned long long)c->ending_ms);
	l->errors_used += base64_encode(fh->raw + start, fh->record_ends[i] - start,
					e + l->errors_used);
	l->errors_used += (size_t)sprintf(e + l->errors_used, "\",\"lambdaArn\":\"%s\"}\n",
					  j->spec.lambda.arn);
	assert(l->errors_used <= FH_LAMBDA_ERRORS_MAX);
}

/*
 * Record i's transformed data (and the stream's delimiter after it) into l->out; false
 * when it does not fit or is not base64. Its partition keys are noted for partitioning.
 */
static bool
fh_lambda_keep(struct firehose *fh, const struct fh_job *j, uint32_t i, const cJSON *rec,
	       const char **code)
{
	struct fh_lambda *l = fh->lambda;
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "data");
	size_t len = cJSON_IsString(data) ? strlen(data->valuestring) : 0;
	size_t delimiter = j->spec.delimiter_size;
	int64_t n;

	*code = "Lambda.InvalidReturnedRecord";
	if (!cJSON_IsString(data))
		return false;
	n = FH_RAW_SIZE_MAX - l->out_used < delimiter ? -ENOBUFS :
	    base64_decode(data->valuestring, len, l->out + l->out_used,
			  FH_RAW_SIZE_MAX - l->out_used - delimiter);
	if (n == -ENOBUFS)
		*code = "Lambda.ResponseTooLarge";
	if (n < 0 || l->out_count == FH_CUT_RECORDS_MAX)
		return false;
	memcpy(l->out + l->out_used + n, j->spec.delimiter, delimiter);
	if (j->spec.partitioning)
		fh_partition_lambda_note(fh->part, l->out_count,
					 cJSON_GetObjectItemCaseSensitive(rec, "metadata"));
	l->out_used += (size_t)n + delimiter;
	l->out_ends[l->out_count] = (uint32_t)l->out_used;
	l->out_seqs[l->out_count] = fh->record_seqs[i];
	l->out_arrivals[l->out_count++] = fh->record_arrivals[i];
	return true;
}

/* Why record i failed, or NULL when it was kept or dropped (rec: its answer, if any). */
static const char *
fh_lambda_outcome(struct firehose *fh, const struct fh_job *j, uint32_t i, const cJSON *rec)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(rec, "result");
	const char *code = NULL;

	if (rec == NULL)
		return "Lambda.MissingRecordId";
	if (!cJSON_IsString(result))
		return "Lambda.InvalidReturnedRecord";
	if (strcmp(result->valuestring, "Dropped") == 0)
		return NULL;
	if (strcmp(result->valuestring, "ProcessingFailed") == 0)
		return "Lambda.ProcessingFailed";
	if (strcmp(result->valuestring, "Ok") != 0)
		return "Lambda.InvalidReturnedRecord";
	if (!fh_lambda_keep(fh, j, i, rec, &code))
		return code;
	return NULL;
}

/* Applies a good answer record by record; without one (failed), every record failed. */
static void
fh_lambda_apply(struct firehose *fh, const struct fh_job *j, struct fh_lambda_call *c,
		const cJSON *records)
{
	struct fh_lambda *l = fh->lambda;

	for (uint32_t i = c->from; i < c->to; i++) {
		int32_t k = records != NULL ? l->answer_of[i - c->from] : -1;
		const char *code = records == NULL ? c->error_code :
				   fh_lambda_outcome(fh, j, i, k >= 0 ?
						     cJSON_GetArrayItem(records, k) : NULL);

		if (code != NULL)
			fh_lambda_error_record(fh, j, c, i, code, records == NULL ? c->error_text :
					       "The record was not transformed.");
	}
}

/* The answer in l->answer, parsed and matched to c's records; NULL (c says why) if bad. */
static cJSON *
fh_lambda_parse(struct fh_lambda *l, struct fh_lambda_call *c)
{
	cJSON *answer = cJSON_ParseWithLength(l->answer, l->answer_used);

	if (answer == NULL || !cJSON_IsObject(answer)) {
		fh_lambda_fail(c, "Lambda.InvalidResponse", "The response is not JSON with %s.",
			       "a records array");
	} else if (fh_lambda_match(l, cJSON_GetObjectItemCaseSensitive(answer, "records"),
				   c) == 0) {
		c->error_code[0] = '\0';  /* Answered (an earlier attempt may have failed). */
		return answer;
	}
	cJSON_Delete(answer);
	return NULL;
}

/* Runs the function on records [from, to) of the cut, with NumberOfRetries. */
static cJSON *
fh_lambda_run(struct firehose *fh, const struct fh_job *j, struct fh_lambda_call *c)
{
	struct fh_lambda *l = fh->lambda;
	const struct fh_lambda_fn *fn = fh_lambda_find(l, j->spec.lambda.arn);
	size_t size = fh_lambda_event(fh, j, c);
	cJSON *answer = NULL;

	if (fn == NULL)
		fh_lambda_fail(c, "Lambda.FunctionError", "No executable in [firehose] lambda_map "
			       "for the function%s.", "");
	while (fn != NULL && c->attempts <= j->spec.lambda.retries && answer == NULL) {
		c->attempts++;
		if (fh_lambda_invoke(l, fn, size, c) == 0)
			answer = fh_lambda_parse(l, c);
	}
	c->ending_ms = clock_real_ns() / 1000000u;
	if (answer == NULL)
		diag_warn("firehose", "%s: %s failed %u times (%s: %s): records %u..%u of the "
			  "cut from seq %llu to processing-failed", j->spec.name,
			  j->spec.lambda.arn, c->attempts, c->error_code, c->error_text, c->from,
			  c->to - 1, (unsigned long long)c->first);
	return answer;
}

/*
 * Records [from, to) of the cut through the function: what it made of them the first
 * time this intent ran (fh_lambda_recall), else run now and kept (fh_lambda_remember).
 */
static int
fh_lambda_call(struct firehose *fh, struct fh_job *j, struct fh_lambda_call *c)
{
	struct fh_lambda *l = fh->lambda;
	cJSON *answer = NULL;
	int rc = fh_lambda_recall(fh, j, c);

	if (rc == -ENOENT) {
		answer = fh_lambda_run(fh, j, c);
		rc = fh_lambda_remember(fh, j, c);
	} else if (rc == 0 && c->error_code[0] == '\0') {
		answer = fh_lambda_parse(l, c);
	}
	if (rc != 0) {
		cJSON_Delete(answer);
		return rc;
	}
	l->errors_used = 0;
	fh_lambda_apply(fh, j, c, answer != NULL ?
			cJSON_GetObjectItemCaseSensitive(answer, "records") : NULL);
	cJSON_Delete(answer);
	if (l->errors_used == 0)
		return 0;
	rc = fh_error_object_write(fh, j, FH_LAMBDA_FAILED_TYPE, c->first, fh_lambda_call_key(c),
				   fh->record_arrivals[c->from], 0, (const uint8_t *)l->errors,
				   l->errors_used);
	if (rc == 0)  /* Counted per write (fh_commit): a range processed again counts again. */
		j->processing_failed += c->failed;
	return rc;
}

/* ---- The cut --------------------------------------------------------------------------- */

uint32_t
fh_lambda_records_max(const struct fh_stream *s)
{
	return s->spec.lambda.arn[0] != '\0' ? FH_CUT_RECORDS_MAX : 0;
}

static void
fh_lambda_swap(struct firehose *fh)
{
	struct fh_lambda *l = fh->lambda;
	uint8_t *raw = fh->raw;
	uint32_t *ends = fh->record_ends;
	uint64_t *arrivals = fh->record_arrivals;
	uint64_t *seqs = fh->record_seqs;

	fh->raw = l->out;
	fh->raw_used = l->out_used;
	fh->record_ends = l->out_ends;
	fh->record_arrivals = l->out_arrivals;
	fh->record_seqs = l->out_seqs;
	l->out = raw;
	l->out_ends = ends;
	l->out_arrivals = arrivals;
	l->out_seqs = seqs;
}

int
fh_lambda_process(struct firehose *fh, struct fh_job *j, uint64_t first,
		  uint32_t *records)
{
	struct fh_lambda *l = fh->lambda;
	uint32_t from = 0;

	l->out_used = 0;
	l->out_count = 0;
	while (from < *records) {
		struct fh_lambda_call c = { .first = first, .from = from, .to = from + 1 };
		uint32_t start = from == 0 ? 0 : fh->record_ends[from - 1];
		int rc;

		while (c.to < *records && c.to - from < FH_LAMBDA_INVOKE_RECORDS_MAX &&
		       fh->record_ends[c.to] - start <= j->spec.lambda.buffer_bytes)
			c.to++;
		rc = fh_lambda_call(fh, j, &c);
		if (rc != 0)
			return rc;
		from = c.to;
	}
	/* The transformed records take the cut's place: delivery reads fh->raw as before. */
	fh_lambda_swap(fh);
	*records = l->out_count;
	return 0;
}
