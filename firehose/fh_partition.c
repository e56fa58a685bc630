/*
 * fh_partition.c - dynamic partitioning: one cut range of a stream with
 * DynamicPartitioningConfiguration enabled becomes one object per partition
 * (the tuple of its MetadataExtractionQuery values), plus error objects for
 * the records that could not be partitioned, under ErrorOutputPrefix with
 * !{firehose:error-output-type} = FH_PARTITION_ERROR_TYPE.
 *
 *   STEP  WHAT
 *   1     the range is read into fh->raw, each record's place noted (fh_flush.c);
 *         with a Lambda processor, the records it kept, each one's
 *         metadata.partitionKeys noted (fh_partition_lambda_note)
 *   2     each record's values are extracted (the query's from the record, the
 *         Lambda keys' from its noted answer); equal tuples make one group, in
 *         the order of their first record (at most FH_PARTITIONS_MAX groups)
 *   3     each group's records, in order (each with the stream's delimiter, when
 *         AppendDelimiterToRecord is on), are one object: its prefix evaluated
 *         with the group's values and oldest arrival, its name salted with the
 *         group (fh_object_key)
 *   4     failed records, as Firehose's error JSON lines, are error objects
 *         (cut where FH_RAW_SIZE_MAX would be passed)
 *
 * Exactly once: the groups, their order and every byte are functions of the
 * range, so a redo writes the same objects again under the same keys; the
 * intent covers the range as a whole (fh_flush.c).
 *
 * Ours, not AWS's: the stream buffers as one (BufferingHints cut the range,
 * then it is split), not one buffer per partition; a cut holds at most
 * FH_PART_RECORDS_MAX records.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/base64.h"
#include "common/hist.h"
#include "firehose/fh_internal.h"

/* AWS's default limit of active partitions; records of more go to the error prefix. */
#define FH_PARTITIONS_MAX 500u
#define FH_PART_SLOTS 1024u                  /* Hash slots: a power of two > groups. */
/* A group's values joined by FH_PART_SEP (values hold no control characters). */
#define FH_GROUP_TEXT_SIZE 2048u
#define FH_PART_SEP '\x1f'
/* An error line's bytes besides the base64 data (fields, numbers, message). */
#define FH_ERROR_LINE_OVERHEAD 512u
/* S3's longest key, and a directory name's longest (NAME_MAX) under local_root. */
#define FH_KEY_SIZE_MAX 1024u
#define FH_KEY_SEGMENT_MAX 255u

/* Why a record failed (rec_group values from FH_GROUP_FAILED up). */
enum fh_part_failure {
	FH_FAIL_NOT_JSON = 0xFFF0,
	FH_FAIL_KEY,
	FH_FAIL_VALUE,
	FH_FAIL_LIMIT,
	FH_FAIL_KEY_SIZE,
	FH_FAIL_LAMBDA_KEY,
};
#define FH_GROUP_FAILED 0xFFF0u

/*   FAILURE         errorCode                                       errorMessage */
static const char *const fh_failures[][2] = {
	{ "DynamicPartitioning.MetadataExtractionFailed", "Non JSON record provided" },
	{ "DynamicPartitioning.MetadataExtractionFailed",
	  "A partition key's value is absent, null, an object or an array" },
	{ "DynamicPartitioning.MetadataExtractionFailed",
	  "A partition key's value cannot be a key segment (empty, '.', '..', '/', control "
	  "characters, or too long)" },
	{ "DynamicPartitioning.ActivePartitionsLimitExceeded",
	  "More active partitions than the limit in one buffer" },
	{ "DynamicPartitioning.MetadataExtractionFailed",
	  "The evaluated prefix is longer than an object key or a key segment may be" },
	{ "DynamicPartitioning.MetadataExtractionFailed",
	  "The Lambda function's metadata.partitionKeys lacks a key of the prefix, or its "
	  "value is null, an object or an array, or cannot be a key segment" },
};
/* Lambda-key tuples of the records a Lambda processor kept (rec_lambda) besides these. */
#define FH_LAMBDA_NONE 0xFFFFu

struct fh_group {
	uint64_t hash;
	uint64_t first_arrival_ns;
	char text[FH_GROUP_TEXT_SIZE];
};

/* Distinct texts, each once, in the order of their first record. */
struct fh_groups {
	struct fh_group *groups;             /* FH_PARTITIONS_MAX */
	uint32_t count;
	uint16_t slots[FH_PART_SLOTS];       /* Group index + 1; 0 free. */
};

struct fh_part {
	struct fh_query query;
	char values[FIREHOSE_PARTITION_KEYS_MAX][FH_VALUE_SIZE_MAX + 1];
	struct fh_groups part;               /* The partitions of the cut. */
	/* The Lambda keys' values of each record the processor kept (FH_LAMBDA_NONE: none). */
	struct fh_groups lambda;
	uint16_t *rec_lambda;                /* FH_PART_RECORDS_MAX */
	bool lambda_keys;                    /* The query has Lambda keys. */
	uint32_t count;                      /* Records noted. */
	uint32_t *rec_off;                   /* FH_PART_RECORDS_MAX each */
	uint32_t *rec_size;
	uint64_t *rec_arrival;
	uint16_t *rec_group;
	uint8_t *gather;                     /* FH_RAW_SIZE_MAX: one object's records. */
	size_t gathered;
	uint32_t objects;                    /* Written for the current range. */
};

int
fh_partition_open(struct firehose *fh)
{
	fh->part = calloc(1, sizeof(*fh->part));
	return fh->part == NULL ? -ENOMEM : 0;
}

int
fh_partition_reserve(struct firehose *fh)
{
	struct fh_part *p = fh->part;

	/* Each piece once: a retry after -ENOMEM takes only what is still missing. */
	if (p->part.groups == NULL)
		p->part.groups = calloc(FH_PARTITIONS_MAX, sizeof(*p->part.groups));
	if (p->lambda.groups == NULL)
		p->lambda.groups = calloc(FH_PARTITIONS_MAX, sizeof(*p->lambda.groups));
	if (p->rec_lambda == NULL)
		p->rec_lambda = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_lambda));
	if (p->rec_off == NULL)
		p->rec_off = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_off));
	if (p->rec_size == NULL)
		p->rec_size = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_size));
	if (p->rec_arrival == NULL)
		p->rec_arrival = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_arrival));
	if (p->rec_group == NULL)
		p->rec_group = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_group));
	if (p->gather == NULL && p->part.groups != NULL && p->rec_off != NULL &&
	    p->rec_size != NULL && p->rec_arrival != NULL && p->rec_group != NULL &&
	    p->lambda.groups != NULL && p->rec_lambda != NULL)
		p->gather = malloc(FH_RAW_SIZE_MAX);  /* Untouched until a partitioned cut. */
	return p->gather == NULL ? -ENOMEM : 0;  /* What was taken is freed at close. */
}

void
fh_partition_close(struct firehose *fh)
{
	struct fh_part *p = fh->part;

	if (p == NULL)
		return;
	free(p->part.groups);
	free(p->lambda.groups);
	free(p->rec_lambda);
	free(p->rec_off);
	free(p->rec_size);
	free(p->rec_arrival);
	free(p->rec_group);
	free(p->gather);
	free(p);
	fh->part = NULL;
}

void
fh_partition_note(struct fh_part *p, uint32_t index, size_t off, size_t size,
		  uint64_t arrival_ns)
{
	assert(index < FH_PART_RECORDS_MAX && off + size <= FH_RAW_SIZE_MAX);
	p->rec_off[index] = (uint32_t)off;
	p->rec_size[index] = (uint32_t)size;
	p->rec_arrival[index] = arrival_ns;
	p->count = index + 1;
}

/* ---- Grouping ---------------------------------------------------------------------- */

/*
 * The values of the query's keys (lambda false) or of its Lambda keys (true) joined into
 * text; -EINVAL when they do not fit FH_GROUP_TEXT_SIZE.
 */
static int
fh_group_text(const struct fh_part *p, bool lambda, char text[FH_GROUP_TEXT_SIZE])
{
	size_t used = 0;

	for (uint32_t k = 0; k < p->query.count; k++) {
		size_t n = strlen(p->values[k]);

		if (lambda && !p->query.keys[k].lambda)
			continue;

		if (used + n + 1 >= FH_GROUP_TEXT_SIZE)
			return -EINVAL;
		memcpy(text + used, p->values[k], n);
		used += n;
		text[used++] = FH_PART_SEP;
	}
	text[used] = '\0';
	return 0;
}

static void
fh_groups_reset(struct fh_groups *t)
{
	t->count = 0;
	memset(t->slots, 0, sizeof(t->slots));
}

/* The group of text (made when new); FH_FAIL_LIMIT past FH_PARTITIONS_MAX groups. */
static uint16_t
fh_group_find(struct fh_groups *t, const char *text, uint64_t arrival_ns)
{
	uint64_t h = fh_hash_text(7, text) | 1;  /* Never 0: a salt of 0 means no group. */
	uint32_t slot = (uint32_t)h & (FH_PART_SLOTS - 1);
	struct fh_group *g;

	for (; t->slots[slot] != 0; slot = (slot + 1) & (FH_PART_SLOTS - 1)) {
		g = &t->groups[t->slots[slot] - 1];
		if (g->hash == h && strcmp(g->text, text) == 0)
			return (uint16_t)(t->slots[slot] - 1);
	}
	if (t->count == FH_PARTITIONS_MAX)
		return FH_FAIL_LIMIT;
	g = &t->groups[t->count];
	g->hash = h;
	g->first_arrival_ns = arrival_ns;
	strcpy(g->text, text);
	t->slots[slot] = (uint16_t)(++t->count);
	return (uint16_t)(t->count - 1);
}

/* The group's text split back into p->values: every key's, or the Lambda keys' only. */
static void
fh_group_values(struct fh_part *p, const struct fh_group *g, bool lambda)
{
	const char *t = g->text;

	for (uint32_t k = 0; k < p->query.count; k++) {
		size_t n = strcspn(t, "\x1f");

		if (lambda && !p->query.keys[k].lambda)
			continue;
		memcpy(p->values[k], t, n);
		p->values[k][n] = '\0';
		t += n + 1;
	}
}

/* Record i's values: the query's from its data, the Lambda keys' from its noted answer. */
static uint16_t
fh_record_group(struct fh_part *p, const uint8_t *raw, uint32_t i)
{
	char text[FH_GROUP_TEXT_SIZE];
	int rc = fh_query_eval(&p->query, raw + p->rec_off[i], p->rec_size[i], p->values);

	if (rc == -EBADMSG && !p->lambda_keys)
		return FH_FAIL_NOT_JSON;
	if (rc == -EBADMSG) {
		/* Lambda keys alone need no JSON; query keys do. */
		for (uint32_t k = 0; k < p->query.count; k++)
			if (!p->query.keys[k].lambda)
				return FH_FAIL_NOT_JSON;
		rc = 0;
	}
	if (rc == 0 && p->lambda_keys) {
		if (p->rec_lambda[i] >= FH_GROUP_FAILED)
			return p->rec_lambda[i] == FH_FAIL_LIMIT ? FH_FAIL_LIMIT : FH_FAIL_LAMBDA_KEY;
		fh_group_values(p, &p->lambda.groups[p->rec_lambda[i]], true);
	}
	if (rc == 0 && fh_group_text(p, false, text) != 0)
		rc = -EINVAL;
	return rc == -ENOENT ? FH_FAIL_KEY : rc != 0 ? FH_FAIL_VALUE :
	       fh_group_find(&p->part, text, p->rec_arrival[i]);
}

static void
fh_group_all(struct fh_part *p, const uint8_t *raw)
{
	fh_groups_reset(&p->part);
	for (uint32_t i = 0; i < p->count; i++)
		p->rec_group[i] = fh_record_group(p, raw, i);
}

int
fh_partition_begin(struct firehose *fh, const struct fh_job *j)
{
	struct fh_part *p = fh->part;

	p->lambda_keys = false;
	fh_groups_reset(&p->lambda);
	if (fh_query_from_spec(&j->spec, &p->query) != 0)
		return -EINVAL;  /* Checked at create: a changed build refusing it is an error. */
	for (uint32_t k = 0; k < p->query.count; k++)
		p->lambda_keys |= p->query.keys[k].lambda;
	return 0;
}

void
fh_partition_lambda_note(struct fh_part *p, uint32_t index, const struct cJSON *metadata)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(metadata, "partitionKeys");
	char text[FH_GROUP_TEXT_SIZE];

	if (!p->lambda_keys)
		return;
	assert(index < FH_PART_RECORDS_MAX);
	p->rec_lambda[index] = FH_LAMBDA_NONE;
	if (!cJSON_IsObject(keys))
		return;
	for (uint32_t k = 0; k < p->query.count; k++)
		if (p->query.keys[k].lambda &&
		    fh_value_text(cJSON_GetObjectItemCaseSensitive(keys, p->query.keys[k].name),
				  p->values[k], FH_VALUE_SIZE_MAX + 1) != 0)
			return;
	if (fh_group_text(p, true, text) == 0)
		p->rec_lambda[index] = fh_group_find(&p->lambda, text, 0);
}

/* ---- Objects ----------------------------------------------------------------------- */

/* A key every destination takes: S3's length, and segments a file system names. */
static bool
fh_key_fits(const char *key)
{
	if (strlen(key) > FH_KEY_SIZE_MAX)
		return false;
	for (const char *p = key; *p != '\0';) {
		size_t n = strcspn(p, "/");

		if (n > FH_KEY_SEGMENT_MAX)
			return false;
		p += n + (p[n] == '/');
	}
	return true;
}

/* A group whose key cannot be: its records become error records (the same on a redo). */
static void
fh_group_fail(struct fh_part *p, uint16_t index)
{
	for (uint32_t i = 0; i < p->count; i++)
		if (p->rec_group[i] == index)
			p->rec_group[i] = FH_FAIL_KEY_SIZE;
}

static int
fh_group_deliver(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
		 uint16_t index)
{
	struct fh_part *p = fh->part;
	const struct fh_group *g = &p->part.groups[index];
	struct fh_prefix_vars v = {
		.arrival_ns = g->first_arrival_ns, .salt = g->hash, .query = &p->query,
		.values = (const char (*)[FH_VALUE_SIZE_MAX + 1])p->values,
	};
	char key[FIREHOSE_PATH_SIZE_MAX];
	int rc;

	fh_group_values(p, g, false);
	rc = fh_object_key(j, first, end, j->spec.prefix, &v, key, sizeof(key));
	if (rc == -ENAMETOOLONG || (rc == 0 && !fh_key_fits(key))) {
		fh_group_fail(p, index);
		return 0;
	}
	if (rc != 0)
		return rc;
	p->gathered = 0;
	for (uint32_t i = 0; i < p->count; i++) {
		if (p->rec_group[i] != index)
			continue;
		/* The delimiter follows the record's data in fh->raw (fh_flush.c, fh_lambda.c). */
		memcpy(p->gather + p->gathered, fh->raw + p->rec_off[i],
		       p->rec_size[i] + j->spec.delimiter_size);
		p->gathered += p->rec_size[i] + j->spec.delimiter_size;
	}
	p->objects++;
	return fh_object_write(fh, j, key, p->gather, p->gathered);
}

/* Firehose's error record: one JSON object a line, the data base64 in rawData. */
static size_t
fh_error_line(const struct fh_part *p, const uint8_t *raw, uint32_t i, char *out)
{
	const char *const *f = fh_failures[p->rec_group[i] - FH_GROUP_FAILED];
	uint64_t ms = p->rec_arrival[i] / 1000000u;
	int n = sprintf(out, "{\"attemptsMade\":1,\"arrivalTimestamp\":%llu,\"errorCode\":\"%s\","
			"\"errorMessage\":\"%s\",\"attemptEndingTimestamp\":%llu,\"rawData\":\"",
			(unsigned long long)ms, f[0], f[1], (unsigned long long)ms);
	size_t used = (size_t)n + base64_encode(raw + p->rec_off[i], p->rec_size[i], out + n);

	memcpy(out + used, "\"}\n", 3);
	return used + 3;
}

static int
fh_errors_flush(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
		uint64_t arrival_ns, uint64_t chunk)
{
	struct fh_part *p = fh->part;

	return fh_error_object_write(fh, j, FH_PARTITION_ERROR_TYPE, first, end, arrival_ns,
				     fh_hash_text(chunk + 11, FH_PARTITION_ERROR_TYPE) | 1,
				     p->gather, p->gathered);
}

/* Step 4; *objects_out counts the error objects written. */
static int
fh_errors_deliver(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
		  uint32_t *objects_out)
{
	struct fh_part *p = fh->part;
	uint64_t arrival_ns = 0, chunk = 0;
	int rc = 0;

	p->gathered = 0;
	for (uint32_t i = 0; rc == 0 && i < p->count; i++) {
		size_t line_max = base64_encoded_size(p->rec_size[i]) + FH_ERROR_LINE_OVERHEAD;

		if (p->rec_group[i] < FH_GROUP_FAILED)
			continue;
		if (p->gathered + line_max > FH_RAW_SIZE_MAX) {
			rc = fh_errors_flush(fh, j, first, end, arrival_ns, chunk++);
			p->gathered = 0;
		}
		if (p->gathered == 0)
			arrival_ns = p->rec_arrival[i];
		p->gathered += fh_error_line(p, fh->raw, i, (char *)p->gather + p->gathered);
	}
	if (rc == 0 && p->gathered > 0)
		rc = fh_errors_flush(fh, j, first, end, arrival_ns, chunk++);
	*objects_out = (uint32_t)chunk;
	return rc;
}

int
fh_partition_deliver(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
		     uint32_t *objects_out)
{
	struct fh_part *p = fh->part;
	uint32_t errors = 0;
	int rc = 0;

	assert(p->gather != NULL);  /* Reserved when the stream was created or loaded. */
	p->objects = 0;
	fh_group_all(p, fh->raw);
	for (uint32_t g = 0; rc == 0 && g < p->part.count; g++)
		rc = fh_group_deliver(fh, j, first, end, (uint16_t)g);
	if (rc == 0)
		rc = fh_errors_deliver(fh, j, first, end, &errors);
	/* fh_commit counts them, under the lock again (the stream may be gone). */
	*objects_out = p->objects + errors;
	return rc;
}
