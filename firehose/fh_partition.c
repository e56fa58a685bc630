/*
 * fh_partition.c - dynamic partitioning: one cut range of a stream with
 * DynamicPartitioningConfiguration enabled becomes one object per partition
 * (the tuple of its MetadataExtractionQuery values), plus error objects for
 * the records that could not be partitioned, under ErrorOutputPrefix with
 * !{firehose:error-output-type} = FH_PARTITION_ERROR_TYPE.
 *
 *   STEP  WHAT
 *   1     the range is read into fh->raw, each record's place noted (fh_flush.c)
 *   2     each record's values are extracted; equal tuples make one group, in
 *         the order of their first record (at most FH_PARTITIONS_MAX groups)
 *   3     each group's records, in order, are one object: its prefix evaluated
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
};

struct fh_group {
	uint64_t hash;
	uint64_t first_arrival_ns;
	char text[FH_GROUP_TEXT_SIZE];
};

struct fh_part {
	struct fh_query query;
	char values[FIREHOSE_PARTITION_KEYS_MAX][FH_VALUE_SIZE_MAX + 1];
	struct fh_group *groups;             /* FH_PARTITIONS_MAX */
	uint32_t group_count;
	uint16_t slots[FH_PART_SLOTS];       /* Group index + 1; 0 free. */
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
	if (p->groups == NULL)
		p->groups = calloc(FH_PARTITIONS_MAX, sizeof(*p->groups));
	if (p->rec_off == NULL)
		p->rec_off = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_off));
	if (p->rec_size == NULL)
		p->rec_size = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_size));
	if (p->rec_arrival == NULL)
		p->rec_arrival = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_arrival));
	if (p->rec_group == NULL)
		p->rec_group = calloc(FH_PART_RECORDS_MAX, sizeof(*p->rec_group));
	if (p->gather == NULL && p->groups != NULL && p->rec_off != NULL && p->rec_size != NULL &&
	    p->rec_arrival != NULL && p->rec_group != NULL)
		p->gather = malloc(FH_RAW_SIZE_MAX);  /* Untouched until a partitioned cut. */
	return p->gather == NULL ? -ENOMEM : 0;  /* What was taken is freed at close. */
}

void
fh_partition_close(struct firehose *fh)
{
	struct fh_part *p = fh->part;

	if (p == NULL)
		return;
	free(p->groups);
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

/* The values joined into text; -EINVAL when they do not fit FH_GROUP_TEXT_SIZE. */
static int
fh_group_text(const struct fh_part *p, char text[FH_GROUP_TEXT_SIZE])
{
	size_t used = 0;

	for (uint32_t k = 0; k < p->query.count; k++) {
		size_t n = strlen(p->values[k]);

		if (used + n + 1 >= FH_GROUP_TEXT_SIZE)
			return -EINVAL;
		memcpy(text + used, p->values[k], n);
		used += n;
		text[used++] = FH_PART_SEP;
	}
	text[used] = '\0';
	return 0;
}

/* The group of text (made when new); FH_FAIL_LIMIT past FH_PARTITIONS_MAX groups. */
static uint16_t
fh_group_find(struct fh_part *p, const char *text, uint64_t arrival_ns)
{
	uint64_t h = fh_hash_text(7, text) | 1;  /* Never 0: a salt of 0 means no group. */
	uint32_t slot = (uint32_t)h & (FH_PART_SLOTS - 1);
	struct fh_group *g;

	for (; p->slots[slot] != 0; slot = (slot + 1) & (FH_PART_SLOTS - 1)) {
		g = &p->groups[p->slots[slot] - 1];
		if (g->hash == h && strcmp(g->text, text) == 0)
			return (uint16_t)(p->slots[slot] - 1);
	}
	if (p->group_count == FH_PARTITIONS_MAX)
		return FH_FAIL_LIMIT;
	g = &p->groups[p->group_count];
	g->hash = h;
	g->first_arrival_ns = arrival_ns;
	strcpy(g->text, text);
	p->slots[slot] = (uint16_t)(++p->group_count);
	return (uint16_t)(p->group_count - 1);
}

static void
fh_group_all(struct fh_part *p, const uint8_t *raw)
{
	char text[FH_GROUP_TEXT_SIZE];

	p->group_count = 0;
	memset(p->slots, 0, sizeof(p->slots));
	for (uint32_t i = 0; i < p->count; i++) {
		int rc = fh_query_eval(&p->query, raw + p->rec_off[i], p->rec_size[i], p->values);

		if (rc == 0 && fh_group_text(p, text) != 0)
			rc = -EINVAL;
		p->rec_group[i] = rc == -EBADMSG ? FH_FAIL_NOT_JSON :
				  rc == -ENOENT ? FH_FAIL_KEY :
				  rc != 0 ? FH_FAIL_VALUE :
				  fh_group_find(p, text, p->rec_arrival[i]);
	}
}

/* The group's text split back into p->values (for the prefix). */
static void
fh_group_values(struct fh_part *p, const struct fh_group *g)
{
	const char *t = g->text;

	for (uint32_t k = 0; k < p->query.count; k++) {
		size_t n = strcspn(t, "\x1f");

		memcpy(p->values[k], t, n);
		p->values[k][n] = '\0';
		t += n + 1;
	}
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
	const struct fh_group *g = &p->groups[index];
	struct fh_prefix_vars v = {
		.arrival_ns = g->first_arrival_ns, .salt = g->hash, .query = &p->query,
		.values = (const char (*)[FH_VALUE_SIZE_MAX + 1])p->values,
	};
	char key[FIREHOSE_PATH_SIZE_MAX];
	int rc;

	fh_group_values(p, g);
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
		memcpy(p->gather + p->gathered, fh->raw + p->rec_off[i], p->rec_size[i]);
		p->gathered += p->rec_size[i];
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
	int rc = fh_query_parse(j->spec.query, &p->query);

	assert(p->gather != NULL);  /* Reserved when the stream was created or loaded. */
	p->objects = 0;

	if (rc != 0)
		return rc;  /* Checked at create: a changed build refusing it is an error. */
	fh_group_all(p, fh->raw);
	for (uint32_t g = 0; rc == 0 && g < p->group_count; g++)
		rc = fh_group_deliver(fh, j, first, end, (uint16_t)g);
	if (rc == 0)
		rc = fh_errors_deliver(fh, j, first, end, &errors);
	/* fh_commit counts them, under the lock again (the stream may be gone). */
	*objects_out = p->objects + errors;
	return rc;
}
