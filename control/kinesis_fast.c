/*
 * kinesis_fast.c - PutRecords without building a JSON tree: the body SDKs
 * send ({"Records":[{"Data":..,"PartitionKey":..,"ExplicitHashKey":..}],
 * "StreamName":..,"StreamARN":..} in any member order, plain strings) is
 * read in one pass, each Data decoded straight into the scratch buffer.
 *
 * The fast path only ever accepts: anything it does not recognise or that
 * breaks a constraint (an escape in a string, an unknown or repeated member,
 * a bad length, base64 or pattern) makes it give up, and the request takes
 * the cJSON path, which produces AWS's exact error. So both paths accept the
 * same requests, and only the slow one ever answers an error.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/base64.h"
#include "control/kinesis.h"

struct kf_cursor {
	const char *p;
	const char *end;
};

static void
kf_ws(struct kf_cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool
kf_char(struct kf_cursor *c, char ch)
{
	kf_ws(c);
	if (c->p == c->end || *c->p != ch)
		return false;
	c->p++;
	return true;
}

#define KF_ONES 0x0101010101010101ull
#define KF_HIGHS 0x8080808080808080ull

/*
 * Whether any of the 8 bytes is '"', '\\', below 0x20 or above 0x7f (the bit
 * hacks "haszero" and "hasless": exact as a yes/no, not as a position). Bytes
 * above 0x7f go to the byte loop, which checks they are UTF-8.
 */
static bool
kf_word_special(uint64_t w)
{
	uint64_t quote = w ^ (KF_ONES * '"');
	uint64_t backslash = w ^ (KF_ONES * '\\');

	return ((((quote - KF_ONES) & ~quote) | ((backslash - KF_ONES) & ~backslash) |
		 ((w - KF_ONES * 0x20) & ~w) | w) & KF_HIGHS) != 0;
}

/*
 * A string without escapes or control characters; false for anything else.
 * Skips 8 plain bytes at a time (Data is most of a PutRecords body: the
 * byte loop alone was 11 % of the server's time under perf), then the byte
 * loop finds what ended the run.
 */
static bool
kf_string(struct kf_cursor *c, const char **text, size_t *size)
{
	const char *start;
	uint64_t w;

	if (!kf_char(c, '"'))
		return false;
	start = c->p;
	while (c->end - c->p >= 8) {
		memcpy(&w, c->p, sizeof(w));
		if (kf_word_special(w))
			break;
		c->p += 8;
	}
	while (c->p < c->end && *c->p != '"') {
		size_t n = kv_utf8_sequence_size((const uint8_t *)c->p, (size_t)(c->end - c->p));

		/* Escapes, control characters and broken UTF-8 are the full parser's. */
		if (*c->p == '\\' || (unsigned char)*c->p < 0x20 || n == 0)
			return false;
		c->p += n;
	}
	if (c->p == c->end)
		return false;
	*text = start;
	*size = (size_t)(c->p - start);
	c->p++;
	return true;
}

static bool
kf_key_is(const char *key, size_t size, const char *name)
{
	return strlen(name) == size && memcmp(key, name, size) == 0;
}

/* One {"Data":..,"PartitionKey":..,"ExplicitHashKey":..} into `rec`. */
static bool
kf_record(struct kf_cursor *c, struct kinesis_fast_record *rec)
{
	bool more = true;

	memset(rec, 0, sizeof(*rec));
	if (!kf_char(c, '{'))
		return false;
	if (kf_char(c, '}'))
		return false; /* No PartitionKey: the slow path says so. */
	while (more) {
		const char *key;
		const char *value;
		size_t key_size;
		size_t size;

		if (!kf_string(c, &key, &key_size) || !kf_char(c, ':') ||
		    !kf_string(c, &value, &size))
			return false;
		if (kf_key_is(key, key_size, "Data") && rec->data == NULL) {
			rec->data = value;
			rec->data_size = size;
		} else if (kf_key_is(key, key_size, "PartitionKey") && rec->key == NULL) {
			rec->key = value;
			rec->key_size = size;
		} else if (kf_key_is(key, key_size, "ExplicitHashKey") && rec->hash_key == NULL) {
			rec->hash_key = value;
			rec->hash_key_size = size;
		} else {
			return false;
		}
		more = kf_char(c, ',');
	}
	return kf_char(c, '}') && rec->data != NULL && rec->key != NULL;
}

static bool
kf_records(struct kf_cursor *c, struct kinesis_fast_put *put)
{
	if (!kf_char(c, '['))
		return false;
	do {
		if (put->count == KINESIS_PUT_RECORDS_MAX ||
		    !kf_record(c, &put->records[put->count]))
			return false;
		put->count++;
	} while (kf_char(c, ','));
	return kf_char(c, ']');
}

/* The top-level object; every member recognised, none twice. */
static bool
kf_body(struct kf_cursor *c, struct kinesis_fast_put *put)
{
	bool seen_records = false;

	if (!kf_char(c, '{'))
		return false;
	do {
		const char *key;
		size_t key_size;
		bool ok;

		if (!kf_string(c, &key, &key_size) || !kf_char(c, ':'))
			return false;
		if (kf_key_is(key, key_size, "Records") && !seen_records) {
			ok = kf_records(c, put);
			seen_records = true;
		} else if (kf_key_is(key, key_size, "StreamName") && put->name == NULL) {
			ok = kf_string(c, &put->name, &put->name_size);
		} else if (kf_key_is(key, key_size, "StreamARN") && put->arn == NULL) {
			ok = kf_string(c, &put->arn, &put->arn_size);
		} else {
			ok = false;
		}
		if (!ok)
			return false;
	} while (kf_char(c, ','));
	if (!kf_char(c, '}'))
		return false;
	kf_ws(c);
	return c->p == c->end && seen_records;
}

/* The constraints the slow path would check, all satisfied? Decodes Data on the way. */
static bool
kf_valid(struct kinesis *k, struct kinesis_fast_put *put)
{
	uint64_t total = 0;

	if (put->count == 0 || (put->name == NULL && put->arn == NULL))
		return false;
	if (put->name != NULL && (put->name_size < 1 || put->name_size > 128 ||
				  !kv_pattern_match(KV_PATTERN_NAME, put->name, put->name_size)))
		return false;
	if (put->arn != NULL && (put->arn_size < 1 || put->arn_size > 2048 ||
				 !kv_pattern_match(KV_PATTERN_ARN, put->arn, put->arn_size)))
		return false;
	for (uint32_t i = 0; i < put->count; i++) {
		struct kinesis_fast_record *rec = &put->records[i];
		uint8_t *out = k->scratch + k->scratch_used;
		int64_t n;

		if (rec->key_size < 1 || rec->key_size > SLUICE_PARTITION_KEY_SIZE_MAX)
			return false;
		if (rec->hash_key != NULL &&
		    !kv_pattern_match(KV_PATTERN_HASH_KEY, rec->hash_key, rec->hash_key_size))
			return false;
		n = base64_decode(rec->data, rec->data_size, out,
					  k->scratch_size - k->scratch_used);
		if (n < 0 || n > SLUICE_RECORD_DATA_SIZE_MAX)
			return false;
		rec->decoded = out;
		rec->decoded_size = (uint32_t)n;
		k->scratch_used += (size_t)n;
		total += rec->key_size + (uint64_t)n;
	}
	return total <= KINESIS_PUT_RECORDS_SIZE_MAX;
}

int
kinesis_fast_put_parse(struct kinesis *k, const uint8_t *body, size_t size,
		       struct kinesis_fast_put *put)
{
	struct kf_cursor c = { (const char *)body, (const char *)body + size };

	memset(put, 0, offsetof(struct kinesis_fast_put, records));
	k->scratch_used = 0;
	if (!kf_body(&c, put) || !kf_valid(k, put))
		return -EINVAL;
	return 0;
}
