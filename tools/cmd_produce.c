/*
 * cmd_produce.c - `sluice produce STREAM`: records from stdin lines or
 * generated, sent to a stream, each reported with the shard and sequence
 * number it was stored under once the appliance has acknowledged it as
 * durable.
 *
 * Transports: http sends PutRecords batches (up to 500 records) through the
 * Kinesis API; a 200 answer means the accepted records are durable. Records
 * the answer marks as throttled or failed internally are sent again, with
 * backoff, up to --retries times. udp and tcp send record frames through
 * libsluice (tools/producer/) to the appliance's ingest port; its durable
 * ACK carries each record's shard and per-shard log position, and results
 * are printed as they complete (not necessarily in input order). A record
 * without an answer --delivery-timeout after it was read fails as
 * TimeoutOutcomeUnknown; over tcp nothing is resent unless the connection
 * stays silent for --silence-timeout (then it is replaced).
 *
 * Output (stdout), one line per record in input order:
 *   INDEX <tab> SHARD_ID <tab> SEQUENCE          stored
 *   INDEX <tab> ERROR <tab> CODE <tab> MESSAGE   not stored
 * INDEX counts records from 0. --quiet prints only the totals.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/limits.h"
#include "tools/cli_common.h"
#include "tools/cli_frames.h"
#include "tools/cmd.h"

#define PRODUCE_BATCH_MAX 500u                         /* PutRecords' limit. */
#define PRODUCE_BATCH_SIZE_MAX (5u * 1024u * 1024u)     /* Data + keys per request. */
#define PRODUCE_LINE_SIZE_MAX (SLUICE_RECORD_DATA_SIZE_MAX + 1)
#define PRODUCE_KEY_SIZE_RANDOM 16

/* --delivery-timeout, --silence-timeout: a day at most (libsluice takes milliseconds). */
#define PRODUCE_TIMEOUT_NS_MAX (86400ull * 1000000000ull)
/* The last flush waits for every record's delivery deadline, and this much for the poll. */
#define PRODUCE_FLUSH_SLACK_MS 1000u
/* --shard-map: a moved map that could not be read is read again after this. */
#define PRODUCE_MAP_RETRY_NS 1000000000ull

static const char produce_synopsis[] =
	"sluice produce STREAM [--transport http|udp|tcp] [--target HOST:PORT]\n"
	"       [--lines] [--key K | --key-field N] [--count N --size B] [--quiet]\n"
	"       [--shard-map] [--delivery-timeout DURATION] [--silence-timeout DURATION]";

struct produce_record {
	uint64_t index;
	char *key;
	char *data;
	size_t size;
	bool done;
	char *shard;          /* Stored: both set. */
	char *seq;
	char *error_code;     /* Not stored: both set. */
	char *error_message;
};

struct produce_batch {
	struct produce_record records[PRODUCE_BATCH_MAX];
	size_t count;
	size_t size;          /* Data and key bytes. */
};

/* Lines from fd 0 through our own buffer, so poll() can tell when none are waiting. */
struct produce_lines {
	char *buf;
	size_t start;
	size_t end;
	bool eof;
};

struct produce {
	struct kc_client client;
	const char *stream;
	const char *transport;
	const char *target;
	const char *key;
	uint64_t key_field;   /* 1-based whitespace-separated field of the line; 0: none. */
	uint64_t count;       /* Generated records; 0: read lines. */
	uint64_t size;
	uint64_t batch_max;
	uint64_t retries;
	uint64_t linger_ns;
	uint64_t delivery_timeout_ns; /* udp/tcp: libsluice's delivery_timeout_ms. */
	uint64_t silence_timeout_ns;  /* tcp: libsluice's silence_timeout_ms. */
	bool quiet;
	bool shard_map;       /* udp/tcp: shard-grouped frames from ListShards. */
	uint64_t map_retry_ns; /* A moved map is not read again before this. */
	uint64_t rng;
	uint64_t next_index;
	uint64_t stored;
	uint64_t failed;
	struct produce_lines lines;
	struct produce_batch batch;
};

static char *
produce_strndup(const char *text, size_t size)
{
	char *copy = malloc(size + 1);

	if (copy != NULL) {
		memcpy(copy, text, size);
		copy[size] = '\0';
	}
	return copy;
}

static char *
produce_random_text(struct produce *p, size_t size)
{
	char *text = malloc(size + 1);

	if (text != NULL) {
		cli_random_text(&p->rng, text, size);
		text[size] = '\0';
	}
	return text;
}

/* The key of a line: --key, else field N of the line (if it has one), else random. */
static char *
produce_line_key(struct produce *p, const char *line, size_t size)
{
	const char *end = line + size;
	const char *field = line;
	size_t field_size = 0;

	if (p->key != NULL)
		return strdup(p->key);
	for (uint64_t n = 0; p->key_field != 0 && n < p->key_field && field < end; n++) {
		field += field_size;
		while (field < end && (*field == ' ' || *field == '\t'))
			field++;
		field_size = 0;
		while (field + field_size < end && field[field_size] != ' ' &&
		       field[field_size] != '\t')
			field_size++;
	}
	if (field_size > 0 && field_size <= SLUICE_PARTITION_KEY_SIZE_MAX)
		return produce_strndup(field, field_size);
	return produce_random_text(p, PRODUCE_KEY_SIZE_RANDOM);
}

/* Waits up to `wait_ns` (UINT64_MAX: forever) for input; 0, or -EAGAIN on timeout. */
static int
produce_lines_fill(struct produce_lines *lines, uint64_t wait_ns)
{
	struct pollfd fd = { .fd = 0, .events = POLLIN };
	ssize_t got;

	if (lines->start > 0) {
		memmove(lines->buf, lines->buf + lines->start, lines->end - lines->start);
		lines->end -= lines->start;
		lines->start = 0;
	}
	if (wait_ns != UINT64_MAX &&
	    poll(&fd, 1, (int)(wait_ns / 1000000)) == 0)
		return -EAGAIN;
	got = read(0, lines->buf + lines->end, PRODUCE_LINE_SIZE_MAX - lines->end);
	if (got < 0)
		return errno == EINTR ? 0 : -errno;
	if (got == 0)
		lines->eof = true;
	lines->end += (size_t)got;
	return 0;
}

/* 1 and the line (without its newline) in *line_out, 0 at the end, -EAGAIN, or -errno. */
static int
produce_lines_next(struct produce_lines *lines, uint64_t wait_ns, const char **line_out,
		   size_t *size_out)
{
	for (;;) {
		char *start = lines->buf + lines->start;
		char *newline = memchr(start, '\n', lines->end - lines->start);
		int err;

		if (newline != NULL || (lines->eof && lines->end > lines->start)) {
			size_t size = newline != NULL ? (size_t)(newline - start) :
				      lines->end - lines->start;

			lines->start += size + (newline != NULL ? 1 : 0);
			*line_out = start;
			*size_out = size;
			return 1;
		}
		if (lines->eof)
			return 0;
		if (lines->start == 0 && lines->end == PRODUCE_LINE_SIZE_MAX)
			return -EMSGSIZE;
		err = produce_lines_fill(lines, wait_ns);
		if (err != 0)
			return err;
	}
}

/* Fills `record` with the next input; 1, 0 at the end, -EAGAIN (no line yet) or -errno. */
static int
produce_next(struct produce *p, struct produce_record *record, uint64_t wait_ns)
{
	const char *line = NULL;
	size_t size = 0;
	int got;

	memset(record, 0, sizeof(*record));
	if (p->count != 0) {
		if (p->next_index == p->count)
			return 0;
		record->key = p->key != NULL ? strdup(p->key) :
			      produce_random_text(p, PRODUCE_KEY_SIZE_RANDOM);
		record->data = produce_random_text(p, p->size);
		record->size = p->size;
	} else {
		got = produce_lines_next(&p->lines, wait_ns, &line, &size);
		if (got <= 0)
			return got;
		record->key = produce_line_key(p, line, size);
		record->data = produce_strndup(line, size);
		record->size = size;
	}
	if (record->key == NULL || record->data == NULL)
		return -ENOMEM;
	record->index = p->next_index++;
	return 1;
}

static void
produce_record_free(struct produce_record *record)
{
	free(record->key);
	free(record->data);
	free(record->shard);
	free(record->seq);
	free(record->error_code);
	free(record->error_message);
	memset(record, 0, sizeof(*record));
}

static void
produce_record_fail(struct produce_record *record, const char *code, const char *message)
{
	record->done = true;
	record->error_code = strdup(code);
	record->error_message = strdup(message != NULL ? message : "");
}

/* The PutRecords body for the records of the batch not done yet; NULL if out of memory. */
static cJSON *
produce_request(const struct produce *p)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *records = cJSON_AddArrayToObject(request, "Records");

	cJSON_AddStringToObject(request, "StreamName", p->stream);
	for (size_t i = 0; i < p->batch.count; i++) {
		const struct produce_record *record = &p->batch.records[i];
		cJSON *entry;
		char *data;
		size_t size;

		if (record->done)
			continue;
		if (kc_base64_encode(record->data, record->size, &data, &size) != 0) {
			cJSON_Delete(request);
			return NULL;
		}
		entry = cJSON_CreateObject();
		cJSON_AddStringToObject(entry, "Data", data);
		cJSON_AddStringToObject(entry, "PartitionKey", record->key);
		cJSON_AddItemToArray(records, entry);
		free(data);
	}
	return request;
}

static bool
produce_retryable(const char *code)
{
	return strcmp(code, "ProvisionedThroughputExceededException") == 0 ||
	       strcmp(code, "LimitExceededException") == 0 || strcmp(code, "InternalFailure") == 0;
}

/*
 * Matches the answer's Records (same order as the request's) to the pending
 * records. Entries with a retryable error stay pending unless `last` is set.
 * Returns the number still pending, or -EBADMSG for a lying answer.
 */
static int
produce_take(struct produce *p, const cJSON *response, bool last)
{
	const cJSON *entry = cJSON_GetObjectItemCaseSensitive(response, "Records");
	int pending = 0;

	if (!cJSON_IsArray(entry))
		return -EBADMSG;
	entry = entry->child;
	for (size_t i = 0; i < p->batch.count; i++) {
		struct produce_record *record = &p->batch.records[i];
		const char *shard, *seq, *code;

		if (record->done)
			continue;
		if (entry == NULL)
			return -EBADMSG;
		shard = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "ShardId"));
		seq = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry,
									    "SequenceNumber"));
		code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "ErrorCode"));
		if (shard != NULL && seq != NULL) {
			record->done = true;
			record->shard = strdup(shard);
			record->seq = strdup(seq);
		} else if (code != NULL && produce_retryable(code) && !last) {
			pending++;
		} else {
			produce_record_fail(record, code != NULL ? code : "InvalidResponse",
					    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
						    entry, "ErrorMessage")));
		}
		entry = entry->next;
	}
	return entry == NULL ? pending : -EBADMSG;
}

/* Sends the batch until every record is stored or has failed for good. */
static int
produce_send_http(struct produce *p)
{
	useconds_t backoff_us = 50000;
	size_t pending = 0;

	for (size_t i = 0; i < p->batch.count; i++)
		pending += p->batch.records[i].done ? 0 : 1;
	if (pending == 0)
		return 0;  /* Every record failed locally (too large). */
	for (uint64_t attempt = 0;; attempt++) {
		bool last = attempt == p->retries;
		cJSON *request = produce_request(p);
		cJSON *response = NULL;
		int err;

		if (request == NULL)
			return -ENOMEM;
		err = kc_call(&p->client, "PutRecords", request, &response);
		cJSON_Delete(request);
		if (err == 0)
			err = produce_take(p, response, last);
		cJSON_Delete(response);
		/* The whole request throttled: like its records, it is worth another try. */
		if (err == -EREMOTEIO && produce_retryable(p->client.error.type) && !last)
			err = 1;
		if (err <= 0)
			return err;
		usleep(backoff_us);
		backoff_us = backoff_us < 2000000 ? backoff_us * 2 : backoff_us;
	}
}

static void
produce_report(struct produce *p)
{
	for (size_t i = 0; i < p->batch.count; i++) {
		struct produce_record *record = &p->batch.records[i];

		assert(record->done);
		if (record->shard != NULL)
			p->stored++;
		else
			p->failed++;
		if (!p->quiet && record->shard != NULL)
			printf("%llu\t%s\t%s\n", (unsigned long long)record->index, record->shard,
			       record->seq);
		else if (!p->quiet)
			printf("%llu\tERROR\t%s\t%s\n", (unsigned long long)record->index,
			       record->error_code, record->error_message);
		produce_record_free(record);
	}
	p->batch.count = 0;
	p->batch.size = 0;
	fflush(stdout);
}

static int
produce_flush(struct produce *p)
{
	int err;

	if (p->batch.count == 0)
		return 0;
	err = produce_send_http(p);
	if (err == 0)
		produce_report(p);
	return err;
}

/* Adds one record to the batch, sending the batch first when it would overflow. */
static int
produce_add(struct produce *p, struct produce_record *record)
{
	size_t size = record->size + strlen(record->key);
	int err = 0;

	if (p->batch.count == p->batch_max || p->batch.size + size > PRODUCE_BATCH_SIZE_MAX)
		err = produce_flush(p);
	p->batch.records[p->batch.count++] = *record;
	p->batch.size += size;
	if (record->size > SLUICE_RECORD_DATA_SIZE_MAX)
		produce_record_fail(&p->batch.records[p->batch.count - 1], "RecordTooLarge",
				    "data over 1 MiB");
	return err;
}

static int
produce_run(struct produce *p)
{
	uint64_t opened_ns = 0;

	for (;;) {
		struct produce_record record;
		uint64_t wait_ns = UINT64_MAX;
		int got;
		int err;

		/* A partly filled batch waits at most --linger for more lines. */
		if (p->batch.count > 0) {
			uint64_t age_ns = clock_mono_ns() - opened_ns;

			wait_ns = age_ns < p->linger_ns ? p->linger_ns - age_ns : 0;
		}
		got = produce_next(p, &record, wait_ns);
		if (got == -EAGAIN) {
			err = produce_flush(p);
		} else if (got == 1) {
			err = produce_add(p, &record);
			if (p->batch.count == 1)
				opened_ns = clock_mono_ns();
		} else {
			if (got == 0)
				got = produce_flush(p);
			return got;
		}
		if (err != 0)
			return err;
	}
}

/* ---- udp / tcp through libsluice --------------------------------------------------- */

static void
produce_frames_complete(void *user, const struct sluice_result *result)
{
	struct produce *p = user;
	char shard[CLI_FRAMES_SHARD_ID_SIZE];

	if (result->err != 0) {
		p->failed++;
		if (!p->quiet)
			printf("%llu\tERROR\t%s\t%s\n", (unsigned long long)result->tag,
			       cli_frames_error_name(result->err), strerror(-result->err));
		return;
	}
	p->stored++;
	if (p->quiet)
		return;
	if (!result->position_known) {
		printf("%llu\tstored\t-\n", (unsigned long long)result->tag);
		return;
	}
	cli_frames_shard_id(result->shard_index, shard);
	printf("%llu\t%s\t%llu\n", (unsigned long long)result->tag, shard,
	       (unsigned long long)result->seq);
}

/* Puts one record, polling while its lane is full. A refused record is reported here. */
static int
produce_frames_put(struct produce *p, struct sluice_producer *producer,
		   const struct produce_record *record)
{
	for (;;) {
		int err = sluice_producer_put(producer, record->key, (uint16_t)strlen(record->key),
					      record->data, (uint32_t)record->size, NULL,
					      record->index);

		if (err == 0)
			return 0;
		if (err != -EAGAIN) {
			p->failed++;
			if (!p->quiet)
				printf("%llu\tERROR\t%s\t%s\n", (unsigned long long)record->index,
				       err == -EINVAL ? "InvalidRecord" :
				       cli_frames_error_name(err), strerror(-err));
			return 0;
		}
		err = sluice_producer_poll(producer, 10);
		if (err < 0)
			return err;
	}
}

/*
 * The map moved (a reshard): the producer sends RECORDS frames meanwhile. The
 * new map may only come with nothing outstanding, and a reshard in progress
 * lists overlapping shards, so a refresh that fails is tried again a second
 * later, never fatal.
 */
static void
produce_map_refresh(struct produce *p, struct sluice_producer *producer)
{
	int err = sluice_producer_flush(producer, 60000);

	if (err == 0)
		err = cli_frames_shard_map(producer, &p->client, p->stream);
	if (err != 0)
		p->map_retry_ns = clock_mono_ns() + PRODUCE_MAP_RETRY_NS;
}

static int
produce_frames_run(struct produce *p, struct sluice_producer *producer)
{
	int err;

	for (;;) {
		struct produce_record record;
		int got = produce_next(p, &record, 10000000);

		if (got == 0)
			break;
		if (got < 0 && got != -EAGAIN)
			return got;
		if (got == 1) {
			err = produce_frames_put(p, producer, &record);
			produce_record_free(&record);
			if (err != 0)
				return err;
		}
		err = sluice_producer_poll(producer, 0);
		if (err < 0)
			return err;
		if (p->shard_map && sluice_producer_map_stale(producer) &&
		    clock_mono_ns() >= p->map_retry_ns)
			produce_map_refresh(p, producer);
		fflush(stdout);
	}
	/* Every record completes by its deadline; nothing should be left to cancel at close. */
	err = sluice_producer_flush(producer, (int)(p->delivery_timeout_ns / 1000000u) +
					      (int)PRODUCE_FLUSH_SLACK_MS);
	return err == -ETIMEDOUT ? 0 : err;
}

static int
produce_frames(struct produce *p)
{
	struct cli_frames_options options = {
		.transport = p->transport, .target = p->target, .stream = p->stream,
		.records_per_batch = (uint32_t)p->batch_max,
		.linger_us = (uint32_t)(p->linger_ns / 1000),
		.delivery_timeout_ms = (uint32_t)(p->delivery_timeout_ns / 1000000u),
		.silence_timeout_ms = (uint32_t)(p->silence_timeout_ns / 1000000u),
		.on_complete = produce_frames_complete, .user = p,
	};
	struct sluice_producer *producer;
	int code = cli_frames_open("produce", &options, &producer);
	int err;

	/* cli_frames_open() said why; -EINVAL and -EHOSTUNREACH carry usage or error out. */
	if (code != 0)
		return code == CMD_EXIT_USAGE ? -EINVAL : -EHOSTUNREACH;
	err = p->shard_map ? cli_frames_shard_map(producer, &p->client, p->stream) : 0;
	if (err != 0)
		fprintf(stderr, "sluice produce: cannot read the shard map: %s\n", strerror(-err));
	else
		err = produce_frames_run(p, producer);
	sluice_producer_close(producer);
	fflush(stdout);
	return err;
}

static bool
produce_opts_valid(struct produce *p, const struct cli_args *args)
{
	if (args->positional_count != 1 || !cli_stream_name_valid(args->positional[0])) {
		fprintf(stderr, "sluice produce: needs one STREAM name\n");
		return false;
	}
	if (strcmp(p->transport, "http") != 0 && strcmp(p->transport, "udp") != 0 &&
	    strcmp(p->transport, "tcp") != 0) {
		fprintf(stderr, "sluice produce: --transport is http, udp or tcp\n");
		return false;
	}
	if (p->shard_map && strcmp(p->transport, "http") == 0) {
		fprintf(stderr, "sluice produce: --shard-map goes with --transport udp or tcp\n");
		return false;
	}
	if ((p->count != 0) != (p->size != 0) && p->size != 0) {
		fprintf(stderr, "sluice produce: --size goes with --count\n");
		return false;
	}
	if (p->key != NULL && (p->key[0] == '\0' ||
			       strlen(p->key) > SLUICE_PARTITION_KEY_SIZE_MAX)) {
		fprintf(stderr, "sluice produce: --key is 1-%d bytes\n",
			SLUICE_PARTITION_KEY_SIZE_MAX);
		return false;
	}
	return true;
}

static int
produce_main(struct produce *p, struct cli_conn *conn)
{
	bool http = strcmp(p->transport, "http") == 0;
	bool api = http || p->shard_map;
	int code = api ? cli_conn_open("produce", conn, &p->client) : 0;
	int err;

	if (code != 0)
		return code;
	p->lines.buf = p->count == 0 ? malloc(PRODUCE_LINE_SIZE_MAX) : NULL;
	if (p->count == 0 && p->lines.buf == NULL)
		err = -ENOMEM;
	else
		err = http ? produce_run(p) : produce_frames(p);
	if (err == -EMSGSIZE)
		fprintf(stderr, "sluice produce: record %llu: a line longer than 1 MiB\n",
			(unsigned long long)p->next_index);
	else if (err != 0 && http)
		cli_call_error("produce", p->stream, &p->client, err);
	else if (err != 0 && err != -EINVAL && err != -EHOSTUNREACH)  /* Those said why. */
		fprintf(stderr, "sluice produce: %s\n", strerror(-err));
	for (size_t i = 0; i < p->batch.count; i++)
		produce_record_free(&p->batch.records[i]);
	free(p->lines.buf);
	if (api)
		kc_client_close(&p->client);
	if (p->quiet || p->failed != 0)
		fprintf(p->quiet ? stdout : stderr, "stored %llu failed %llu\n",
			(unsigned long long)p->stored, (unsigned long long)p->failed);
	if (err != 0)
		return !http && err == -EINVAL ? CMD_EXIT_USAGE : CMD_EXIT_ERROR;
	return p->failed == 0 ? CMD_EXIT_OK : CMD_EXIT_PARTIAL;
}

int
cmd_produce(int argc, char **argv)
{
	static struct produce p;
	struct cli_conn conn = { 0 };
	bool lines = false;
	const struct cli_opt table[] = {
		{ "transport", CLI_OPT_STRING, &p.transport, 0, 0, "T",
		  "http (default), udp or tcp" },
		{ "target", CLI_OPT_STRING, &p.target, 0, 0, "HOST:PORT",
		  "udp/tcp: the ingest address (default " CLI_FRAMES_TARGET_DEFAULT ")" },
		{ "lines", CLI_OPT_BOOL, &lines, 0, 0, NULL,
		  "one record per stdin line (the default without --count)" },
		{ "key", CLI_OPT_STRING, &p.key, 0, 0, "K", "partition key of every record" },
		{ "key-field", CLI_OPT_COUNT, &p.key_field, 1, 1000, "N",
		  "partition key: the Nth whitespace-separated field of the line" },
		{ "count", CLI_OPT_COUNT, &p.count, 1, 0, "N", "generate N records instead" },
		{ "size", CLI_OPT_SIZE, &p.size, 1, SLUICE_RECORD_DATA_SIZE_MAX, "B",
		  "bytes of each generated record (default 100)" },
		{ "batch", CLI_OPT_COUNT, &p.batch_max, 1, PRODUCE_BATCH_MAX, "N",
		  "records per PutRecords / frame (default 500)" },
		{ "linger", CLI_OPT_DURATION, &p.linger_ns, 0, 60000000000, "DURATION",
		  "send a partial batch of lines after this (default 50ms)" },
		{ "retries", CLI_OPT_COUNT, &p.retries, 0, 100, "N",
		  "resend throttled records up to N times (default 5)" },
		{ "quiet", CLI_OPT_BOOL, &p.quiet, 0, 0, NULL, "print only the totals" },
		{ "shard-map", CLI_OPT_BOOL, &p.shard_map, 0, 0, NULL,
		  "udp/tcp: read the stream's shards (ListShards) and send shard-grouped frames" },
		{ "delivery-timeout", CLI_OPT_DURATION, &p.delivery_timeout_ns, 1000000,
		  PRODUCE_TIMEOUT_NS_MAX, "DURATION",
		  "udp/tcp: a record unanswered this long fails as TimeoutOutcomeUnknown "
		  "(default 120s)" },
		{ "silence-timeout", CLI_OPT_DURATION, &p.silence_timeout_ns, 1000000,
		  PRODUCE_TIMEOUT_NS_MAX, "DURATION",
		  "tcp: a connection silent this long while answers are owed is replaced and "
		  "its frames resent (default 30s)" },
		CLI_CONN_OPTS(&conn),
	};
	struct cli_args args;
	bool done;
	int code;

	memset(&p, 0, sizeof(p));
	p.transport = "http";
	p.batch_max = PRODUCE_BATCH_MAX;
	p.linger_ns = 50000000;
	p.retries = 5;
	p.delivery_timeout_ns = SLUICE_DELIVERY_TIMEOUT_MS_DEFAULT * 1000000ull;
	p.silence_timeout_ns = SLUICE_TCP_SILENCE_MS_DEFAULT * 1000000ull;
	p.rng = clock_real_ns();
	code = cli_parse_or_usage(argc, argv, produce_synopsis, table, ARRAY_SIZE(table), &args,
				  &done);
	if (done)
		return code;
	if (p.count != 0 && p.size == 0)
		p.size = 100;
	if (lines && p.count != 0) {
		fprintf(stderr, "sluice produce: --lines and --count exclude each other\n");
		return CMD_EXIT_USAGE;
	}
	if (!produce_opts_valid(&p, &args)) {
		cli_args_usage(stderr, produce_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	p.stream = args.positional[0];
	return produce_main(&p, &conn);
}
