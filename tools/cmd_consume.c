/*
 * cmd_consume.c - `sluice consume STREAM`: reads every shard through
 * GetShardIterator + GetRecords and prints the records.
 *
 * Lineage: a shard is started only once every parent it names
 * (ParentShardId, AdjacentParentShardId) that is still listed has been read
 * to its end (GetRecords returned no NextShardIterator), so a key's records
 * come out in order across splits and merges. Parents no longer listed have
 * expired and do not hold their children back.
 *
 * KPL aggregated records (common/kpl_aggregated.proto) are printed as their user
 * records unless --no-deaggregate; one with a bad checksum is reported and printed
 * whole.
 *
 * Without --follow the command stops once every readable shard is caught up
 * (an empty answer with MillisBehindLatest 0); with --follow it polls and
 * lists the shards again now and then to find new children.
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
#include "common/kpl.h"
#include "tools/cmd.h"

#define CONSUME_SHARD_ID_SIZE 128
#define CONSUME_GET_LIMIT_MAX 10000u             /* GetRecords' own maximum. */
#define CONSUME_RELIST_NS (2ull * 1000000000ull)  /* --follow: look for new shards. */
#define CONSUME_SEQ_SIZE 132                     /* 129 digits and some. */

static const char consume_synopsis[] =
	"sluice consume STREAM [--from trim_horizon|latest|at:SEQ|after:SEQ|ts:ISO8601]\n"
	"       [--shard ID] [--follow] [--max N] [--format raw|json] [--no-deaggregate]";

enum consume_format {
	CONSUME_RAW,
	CONSUME_JSON,
};

enum consume_state {
	SHARD_WAITING,    /* Listed; a parent is not finished yet. */
	SHARD_READING,    /* Has an iterator. */
	SHARD_DONE,       /* Read to its end, or not to be read. */
};

struct consume_shard {
	char id[CONSUME_SHARD_ID_SIZE];
	char parent[CONSUME_SHARD_ID_SIZE];
	char adjacent_parent[CONSUME_SHARD_ID_SIZE];
	bool closed;                  /* Has an EndingSequenceNumber. */
	bool initial;                 /* Listed at start: --from applies to it. */
	enum consume_state state;
	char *iterator;
	char last_seq[CONSUME_SEQ_SIZE]; /* Last record printed, to renew an expired iterator. */
	bool caught_up;
};

struct consume {
	struct kc_client client;
	const char *stream;
	const char *from;
	const char *only_shard;
	enum consume_format format;
	bool follow;
	bool no_deaggregate;          /* Print KPL aggregates whole. */
	uint64_t aggregates_bad;      /* KPL aggregates that failed their checks. */
	uint64_t max;                 /* 0: unbounded (stored records, not user records). */
	uint64_t printed;
	uint64_t poll_ns;
	struct consume_shard *shards;
	size_t shard_count;
	size_t shard_capacity;
};

static struct consume_shard *
consume_shard_find(struct consume *c, const char *id)
{
	for (size_t i = 0; i < c->shard_count; i++) {
		if (strcmp(c->shards[i].id, id) == 0)
			return &c->shards[i];
	}
	return NULL;
}

static void
consume_copy(char *out, const char *text)
{
	snprintf(out, CONSUME_SHARD_ID_SIZE, "%s", text != NULL ? text : "");
}

static int
consume_shard_add(struct consume *c, const cJSON *shard, bool initial)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(shard, "ShardId"));
	struct consume_shard *entry;

	if (id == NULL || strlen(id) >= CONSUME_SHARD_ID_SIZE)
		return -EBADMSG;
	if (consume_shard_find(c, id) != NULL)
		return 0;
	if (c->shard_count == c->shard_capacity) {
		size_t capacity = c->shard_capacity == 0 ? 16 : 2 * c->shard_capacity;
		struct consume_shard *shards = realloc(c->shards, capacity * sizeof(*shards));

		if (shards == NULL)
			return -ENOMEM;
		c->shards = shards;
		c->shard_capacity = capacity;
	}
	entry = &c->shards[c->shard_count++];
	memset(entry, 0, sizeof(*entry));
	consume_copy(entry->id, id);
	consume_copy(entry->parent, cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(shard, "ParentShardId")));
	consume_copy(entry->adjacent_parent, cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(shard, "AdjacentParentShardId")));
	entry->closed = cli_shard_closed(shard);
	entry->initial = initial;
	entry->state = SHARD_WAITING;
	return 0;
}

static int
consume_list(struct consume *c, bool initial)
{
	cJSON *shards;
	const cJSON *shard;
	int err = cli_shards_list(&c->client, c->stream, &shards);

	if (err != 0)
		return err;
	cJSON_ArrayForEach(shard, shards) {
		err = consume_shard_add(c, shard, initial);
		if (err != 0)
			break;
	}
	cJSON_Delete(shards);
	return err;
}

/* A parent holds its child back while it is listed and not finished. */
static bool
consume_parent_pending(struct consume *c, const char *parent_id)
{
	const struct consume_shard *parent =
		parent_id[0] != '\0' ? consume_shard_find(c, parent_id) : NULL;

	return parent != NULL && parent->state != SHARD_DONE;
}

/* With --shard, only that shard and its descendants are read. */
static bool
consume_shard_wanted(struct consume *c, const struct consume_shard *shard)
{
	const struct consume_shard *parent;

	if (c->only_shard == NULL || strcmp(shard->id, c->only_shard) == 0)
		return true;
	parent = shard->parent[0] != '\0' ? consume_shard_find(c, shard->parent) : NULL;
	if (parent != NULL && parent != shard && consume_shard_wanted(c, parent))
		return true;
	parent = shard->adjacent_parent[0] != '\0' ?
		 consume_shard_find(c, shard->adjacent_parent) : NULL;
	return parent != NULL && parent != shard && consume_shard_wanted(c, parent);
}

/* Fills the iterator position: a renewal resumes after the last record printed. */
static void
consume_position(const struct consume *c, const struct consume_shard *shard, cJSON *request)
{
	const char *type = "TRIM_HORIZON";
	const char *seq = NULL;

	if (shard->last_seq[0] != '\0') {
		type = "AFTER_SEQUENCE_NUMBER";
		seq = shard->last_seq;
	} else if (!shard->initial || strcmp(c->from, "trim_horizon") == 0) {
		type = "TRIM_HORIZON";
	} else if (strcmp(c->from, "latest") == 0) {
		type = "LATEST";
	} else if (strncmp(c->from, "at:", 3) == 0) {
		type = "AT_SEQUENCE_NUMBER";
		seq = c->from + 3;
	} else if (strncmp(c->from, "after:", 6) == 0) {
		type = "AFTER_SEQUENCE_NUMBER";
		seq = c->from + 6;
	} else {
		type = "AT_TIMESTAMP";
		cJSON_AddNumberToObject(request, "Timestamp", strtod(c->from + 3, NULL));
	}
	cJSON_AddStringToObject(request, "ShardIteratorType", type);
	if (seq != NULL)
		cJSON_AddStringToObject(request, "StartingSequenceNumber", seq);
}

static int
consume_start(struct consume *c, struct consume_shard *shard)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	const char *iterator;
	int err;

	cJSON_AddStringToObject(request, "StreamName", c->stream);
	cJSON_AddStringToObject(request, "ShardId", shard->id);
	consume_position(c, shard, request);
	err = kc_call(&c->client, "GetShardIterator", request, &response);
	cJSON_Delete(request);
	/* at:/after: name one shard's record; the other shards refuse it and are skipped. */
	if (err == -EREMOTEIO && shard->initial && shard->last_seq[0] == '\0' &&
	    strchr(c->from, ':') != NULL && strncmp(c->from, "ts:", 3) != 0 &&
	    strcmp(c->client.error.type, "InvalidArgumentException") == 0) {
		shard->state = SHARD_DONE;
		return 0;
	}
	if (err != 0)
		return err;
	iterator = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(response,
									 "ShardIterator"));
	free(shard->iterator);
	shard->iterator = iterator != NULL ? strdup(iterator) : NULL;
	shard->state = shard->iterator != NULL ? SHARD_READING : SHARD_DONE;
	shard->caught_up = false;
	cJSON_Delete(response);
	return 0;
}

/*
 * Starts every waiting shard whose parents are done; *started_out counts the
 * shards that left WAITING (started, or skipped: that may free their children).
 */
static int
consume_start_ready(struct consume *c, size_t *started_out)
{
	*started_out = 0;
	for (size_t i = 0; i < c->shard_count; i++) {
		struct consume_shard *shard = &c->shards[i];
		int err;

		if (shard->state != SHARD_WAITING || consume_parent_pending(c, shard->parent) ||
		    consume_parent_pending(c, shard->adjacent_parent))
			continue;
		/* LATEST of a closed shard is its end: nothing to read there. */
		if (!consume_shard_wanted(c, shard) ||
		    (shard->initial && shard->closed && strcmp(c->from, "latest") == 0)) {
			shard->state = SHARD_DONE;
			*started_out += 1;
			continue;
		}
		err = consume_start(c, shard);
		if (err != 0)
			return err;
		*started_out += 1;
	}
	return 0;
}

/*
 * One --format json line: the stored record's fields, or with `user` those of one of its
 * KPL user records (SubSequenceNumber, its key, its data). `data` is base64.
 */
static int
consume_print_json(const char *shard_id, const cJSON *record, const struct kpl_record *user,
		   size_t sub_index, const char *data)
{
	cJSON *line = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(line, "ShardId", shard_id);
	cJSON_AddItemToObject(line, "SequenceNumber", cJSON_Duplicate(
		cJSON_GetObjectItemCaseSensitive(record, "SequenceNumber"), true));
	if (user != NULL) {
		cJSON_AddNumberToObject(line, "SubSequenceNumber", (double)sub_index);
		cJSON_AddStringToObject(line, "PartitionKey", user->partition_key);
		if (user->explicit_hash_key != NULL)
			cJSON_AddStringToObject(line, "ExplicitHashKey", user->explicit_hash_key);
	} else {
		cJSON_AddItemToObject(line, "PartitionKey", cJSON_Duplicate(
			cJSON_GetObjectItemCaseSensitive(record, "PartitionKey"), true));
	}
	cJSON_AddItemToObject(line, "ApproximateArrivalTimestamp", cJSON_Duplicate(
		cJSON_GetObjectItemCaseSensitive(record, "ApproximateArrivalTimestamp"), true));
	cJSON_AddStringToObject(line, "Data", data);
	text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	if (text == NULL)
		return -ENOMEM;
	printf("%s\n", text);
	free(text);
	return 0;
}

/* Prints the user records of an unpacked aggregate, one per line. */
static int
consume_print_users(struct consume *c, const char *shard_id, const cJSON *record,
		    const struct kpl *agg)
{
	for (size_t i = 0; i < agg->record_count; i++) {
		struct kpl_record user;
		char *data;
		size_t size;
		int err;

		kpl_record(agg, i, &user);
		if (c->format == CONSUME_RAW) {
			if (user.data_size > 0)  /* protobuf-c leaves empty data NULL. */
				fwrite(user.data, 1, user.data_size, stdout);
			putchar('\n');
			continue;
		}
		if (kc_base64_encode(user.data, user.data_size, &data, &size) != 0)
			return -ENOMEM;
		err = consume_print_json(shard_id, record, &user, i, data);
		free(data);
		if (err != 0)
			return err;
	}
	return 0;
}

/*
 * A KPL aggregate is printed as its user records. One that fails its checks is said
 * so on stderr, counted, and printed whole (as the KCL hands it on). Returns 1 when
 * the record was printed here, 0 when it is to be printed whole.
 */
static int
consume_print_aggregate(struct consume *c, const char *shard_id, const cJSON *record,
			const uint8_t *bytes, size_t size)
{
	struct kpl agg;
	int err;

	if (c->no_deaggregate || !kpl_is_aggregated(bytes, size))
		return 0;
	err = kpl_open(bytes, size, &agg);
	if (err == -EBADMSG || err == -EPROTO) {
		c->aggregates_bad++;
		fprintf(stderr, "sluice consume: %s record %s: KPL aggregate with %s; "
			"printed whole\n", shard_id, cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(record, "SequenceNumber")),
			err == -EBADMSG ? "a bad MD5 checksum" : "a protobuf that does not parse");
		return 0;
	}
	if (err != 0)
		return err;
	err = consume_print_users(c, shard_id, record, &agg);
	kpl_close(&agg);
	return err == 0 ? 1 : err;
}

static int
consume_print(struct consume *c, const char *shard_id, const cJSON *record)
{
	const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "Data"));
	uint8_t *bytes;
	size_t size;
	int err;

	if (data == NULL || kc_base64_decode(data, strlen(data), &bytes, &size) != 0)
		return -EBADMSG;
	err = consume_print_aggregate(c, shard_id, record, bytes, size);
	if (err == 0 && c->format == CONSUME_JSON) {
		err = consume_print_json(shard_id, record, NULL, 0, data);
	} else if (err == 0) {
		fwrite(bytes, 1, size, stdout);
		putchar('\n');
	}
	free(bytes);
	return err < 0 ? err : 0;
}

/* ChildShards at the end of a closed shard: add them, so no relisting is needed. */
static int
consume_children_add(struct consume *c, const cJSON *children)
{
	const cJSON *child;

	cJSON_ArrayForEach(child, children) {
		const cJSON *parents = cJSON_GetObjectItemCaseSensitive(child, "ParentShards");
		cJSON *shard = cJSON_CreateObject();
		int err;

		cJSON_AddItemToObject(shard, "ShardId", cJSON_Duplicate(
			cJSON_GetObjectItemCaseSensitive(child, "ShardId"), true));
		if (cJSON_GetArraySize(parents) > 0)
			cJSON_AddItemToObject(shard, "ParentShardId", cJSON_Duplicate(
				cJSON_GetArrayItem(parents, 0), true));
		if (cJSON_GetArraySize(parents) > 1)
			cJSON_AddItemToObject(shard, "AdjacentParentShardId", cJSON_Duplicate(
				cJSON_GetArrayItem(parents, 1), true));
		err = consume_shard_add(c, shard, false);
		cJSON_Delete(shard);
		if (err != 0)
			return err;
	}
	return 0;
}

/* Takes one GetRecords answer for shard `index`: prints, advances, finishes. */
static int
consume_take(struct consume *c, size_t index, const cJSON *response)
{
	struct consume_shard *shard = &c->shards[index];
	const cJSON *records = cJSON_GetObjectItemCaseSensitive(response, "Records");
	const cJSON *behind = cJSON_GetObjectItemCaseSensitive(response, "MillisBehindLatest");
	const char *next = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(response, "NextShardIterator"));
	const cJSON *record;
	int err;

	cJSON_ArrayForEach(record, records) {
		const char *seq = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(record, "SequenceNumber"));

		err = consume_print(c, shard->id, record);
		if (err != 0)
			return err;
		if (seq != NULL)
			snprintf(shard->last_seq, sizeof(shard->last_seq), "%s", seq);
		c->printed++;
	}
	fflush(stdout);
	shard->caught_up = cJSON_GetArraySize(records) == 0 &&
			   (!cJSON_IsNumber(behind) || behind->valuedouble == 0.0);
	free(shard->iterator);
	shard->iterator = next != NULL ? strdup(next) : NULL;
	if (next == NULL) {
		shard->state = SHARD_DONE;
		/* Adding may move the table: `shard` is not used after this. */
		return consume_children_add(c, cJSON_GetObjectItemCaseSensitive(response,
										 "ChildShards"));
	}
	return 0;
}

static int
consume_read(struct consume *c, size_t index)
{
	struct consume_shard *shard = &c->shards[index];
	uint64_t limit = CONSUME_GET_LIMIT_MAX;
	cJSON *request = cJSON_CreateObject();
	cJSON *response = NULL;
	int err;

	if (c->max != 0 && c->max - c->printed < limit)
		limit = c->max - c->printed;
	cJSON_AddStringToObject(request, "ShardIterator", shard->iterator);
	cJSON_AddNumberToObject(request, "Limit", (double)limit);
	err = kc_call(&c->client, "GetRecords", request, &response);
	cJSON_Delete(request);
	if (err == -EREMOTEIO &&
	    strcmp(c->client.error.type, "ExpiredIteratorException") == 0)
		return consume_start(c, shard);  /* Resumes after last_seq. */
	if (err == -EREMOTEIO &&
	    strcmp(c->client.error.type, "ProvisionedThroughputExceededException") == 0) {
		shard->caught_up = true;  /* Come back after the poll pause. */
		return 0;
	}
	if (err == 0)
		err = consume_take(c, index, response);
	cJSON_Delete(response);
	return err;
}

/* One pass over the shards; *progress_out says whether anything moved. */
static int
consume_pass(struct consume *c, bool *progress_out)
{
	size_t started;
	int err = consume_start_ready(c, &started);

	*progress_out = started > 0;
	for (size_t i = 0; err == 0 && i < c->shard_count; i++) {
		uint64_t printed = c->printed;

		if (c->shards[i].state != SHARD_READING)
			continue;
		err = consume_read(c, i);
		if (c->printed != printed || !c->shards[i].caught_up ||
		    c->shards[i].state == SHARD_DONE)
			*progress_out = true;
		if (c->max != 0 && c->printed >= c->max)
			break;
	}
	return err;
}

static int
consume_run(struct consume *c)
{
	uint64_t listed_ns = clock_mono_ns();
	int err = consume_list(c, true);

	while (err == 0) {
		bool progress;

		err = consume_pass(c, &progress);
		if (err != 0 || (c->max != 0 && c->printed >= c->max))
			break;
		if (progress)
			continue;
		if (!c->follow)
			break;
		if (clock_mono_ns() - listed_ns > CONSUME_RELIST_NS) {
			err = consume_list(c, false);
			listed_ns = clock_mono_ns();
		}
		usleep((useconds_t)(c->poll_ns / 1000));
	}
	return err;
}

/* "2026-11-26T08:15:00[.250][Z|+01:00]" or epoch seconds -> epoch seconds. */
static int
consume_time_parse(const char *text, double *seconds_out)
{
	struct tm utc = { 0 };
	double fraction = 0.0;
	long offset_s = 0;
	char *end;
	const char *p;

	*seconds_out = strtod(text, &end);
	if (end != text && *end == '\0')
		return 0;
	p = strptime(text, "%Y-%m-%dT%H:%M:%S", &utc);
	if (p == NULL)
		return -EINVAL;
	if (*p == '.') {
		fraction = strtod(p, &end);
		p = end;
	}
	if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
		offset_s = (strtol(p + 1, NULL, 10) * 3600 + strtol(p + 4, NULL, 10) * 60) *
			   (p[0] == '-' ? -1 : 1);
		p += 6;
	} else if (*p == 'Z') {
		p++;
	}
	if (*p != '\0')
		return -EINVAL;
	*seconds_out = (double)(timegm(&utc) - offset_s) + fraction;
	return 0;
}

/* Checks --from and rewrites ts:ISO into ts:<epoch seconds> in `buf`. */
static bool
consume_from_valid(struct consume *c, char *buf, size_t buf_size)
{
	double seconds;

	if (strcmp(c->from, "trim_horizon") == 0 || strcmp(c->from, "latest") == 0)
		return true;
	if (strncmp(c->from, "at:", 3) == 0 || strncmp(c->from, "after:", 6) == 0) {
		const char *seq = strchr(c->from, ':') + 1;

		return seq[0] != '\0' && strspn(seq, "0123456789") == strlen(seq);
	}
	if (strncmp(c->from, "ts:", 3) != 0 || consume_time_parse(c->from + 3, &seconds) != 0)
		return false;
	snprintf(buf, buf_size, "ts:%.3f", seconds);
	c->from = buf;
	return true;
}

static void
consume_free(struct consume *c)
{
	for (size_t i = 0; i < c->shard_count; i++)
		free(c->shards[i].iterator);
	free(c->shards);
	kc_client_close(&c->client);
}

int
cmd_consume(int argc, char **argv)
{
	struct consume c = { .from = "trim_horizon", .poll_ns = 200000000 };
	struct cli_conn conn = { 0 };
	const char *format = "raw";
	char from_buf[64];
	const struct cli_opt table[] = {
		{ "from", CLI_OPT_STRING, &c.from, 0, 0, "POS",
		  "trim_horizon (default), latest, at:SEQ, after:SEQ or ts:ISO8601" },
		{ "shard", CLI_OPT_STRING, &c.only_shard, 0, 0, "ID",
		  "read only this shard and its descendants" },
		{ "follow", CLI_OPT_BOOL, &c.follow, 0, 0, NULL,
		  "keep reading new records (and new shards) until interrupted" },
		{ "max", CLI_OPT_COUNT, &c.max, 1, 0, "N", "stop after N records" },
		{ "format", CLI_OPT_STRING, &format, 0, 0, "FMT",
		  "raw (data and a newline, default) or json (one object per line)" },
		{ "poll", CLI_OPT_DURATION, &c.poll_ns, 1000000, 60000000000, "DURATION",
		  "pause when caught up (default 200ms)" },
		{ "no-deaggregate", CLI_OPT_BOOL, &c.no_deaggregate, 0, 0, NULL,
		  "print KPL aggregated records whole instead of their user records" },
		CLI_CONN_OPTS(&conn),
	};
	struct cli_args args;
	bool done;
	int code = cli_parse_or_usage(argc, argv, consume_synopsis, table, ARRAY_SIZE(table),
				      &args, &done);
	int err;

	if (done)
		return code;
	if (args.positional_count != 1 || !cli_stream_name_valid(args.positional[0]) ||
	    !consume_from_valid(&c, from_buf, sizeof(from_buf)) ||
	    (strcmp(format, "raw") != 0 && strcmp(format, "json") != 0)) {
		fprintf(stderr, "sluice consume: needs one STREAM, a valid --from and --format\n");
		cli_args_usage(stderr, consume_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	c.format = strcmp(format, "json") == 0 ? CONSUME_JSON : CONSUME_RAW;
	c.stream = args.positional[0];
	code = cli_conn_open("consume", &conn, &c.client);
	if (code != 0)
		return code;
	err = consume_run(&c);
	if (err != 0)
		cli_call_error("consume", c.stream, &c.client, err);
	if (c.aggregates_bad > 0)
		fprintf(stderr, "sluice consume: %llu KPL aggregate(s) failed their checks and "
			"were printed whole\n", (unsigned long long)c.aggregates_bad);
	consume_free(&c);
	return err == 0 ? CMD_EXIT_OK : CMD_EXIT_ERROR;
}
