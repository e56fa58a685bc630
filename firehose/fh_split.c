/*
 * fh_split.c - ProcessingConfiguration's RecordDeAggregation: one record (or KPL
 * user record) of several sub-records becomes those sub-records, before a Lambda
 * processor and partitioning see them (AWS: "deaggregation -> data transformation
 * through Lambda -> partitioning keys").
 *
 *   SubRecordType  A RECORD IS                        A SUB-RECORD IS
 *   JSON           JSON objects one after another,    one object, its bytes as they
 *                  with or without whitespace          are ({"a":1}{"a":2}, JSONL)
 *                  (newlines) between them
 *   DELIMITED      pieces between the Delimiter's     one piece (empty ones dropped)
 *                  bytes (base64 in the API)
 *
 * A record that does not split so (not JSON objects at the top level: an array, a
 * number, text), or into more than FIREHOSE_DEAGG_RECORDS_MAX sub-records (AWS's
 * cap), is delivered whole: later steps (partitioning) see it as it came. The JSON
 * split finds each object's end by its braces outside strings; it does not check
 * the JSON inside (the partitioning query does, per sub-record).
 */
#include <errno.h>
#include <string.h>

#include "firehose/fh_internal.h"

static bool
fh_json_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Bytes of the JSON object at p[0] == '{' (strings skipped); 0 when it does not close. */
static size_t
fh_json_object_size(const uint8_t *p, size_t n)
{
	uint32_t depth = 0;
	bool string = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				string = false;
			continue;
		}
		if (c == '"')
			string = true;
		else if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return i + 1;
	}
	return 0;
}

static int
fh_split_json(const uint8_t *data, size_t size, struct fh_piece *pieces, uint32_t *count)
{
	size_t at = 0;

	*count = 0;
	for (;;) {
		size_t n;

		while (at < size && fh_json_space(data[at]))
			at++;
		if (at == size)
			return *count > 0 ? 0 : -EINVAL;
		if (data[at] != '{' || *count == FIREHOSE_DEAGG_RECORDS_MAX)
			return -EINVAL;
		n = fh_json_object_size(data + at, size - at);
		if (n == 0)
			return -EINVAL;
		pieces[(*count)++] = (struct fh_piece){ .off = at, .size = n };
		at += n;
	}
}

static int
fh_split_delimited(const struct firehose_spec *spec, const uint8_t *data, size_t size,
		   struct fh_piece *pieces, uint32_t *count)
{
	size_t at = 0;

	*count = 0;
	while (at < size) {
		const uint8_t *next = memmem(data + at, size - at, spec->split, spec->split_size);
		size_t end = next != NULL ? (size_t)(next - data) : size;

		if (end > at) {
			if (*count == FIREHOSE_DEAGG_RECORDS_MAX)
				return -EINVAL;
			pieces[(*count)++] = (struct fh_piece){ .off = at, .size = end - at };
		}
		at = next != NULL ? end + spec->split_size : size;
	}
	return *count > 0 ? 0 : -EINVAL;
}

int
fh_split(const struct firehose_spec *spec, const uint8_t *data, size_t size,
	 struct fh_piece pieces[FIREHOSE_DEAGG_RECORDS_MAX], uint32_t *count)
{
	if (spec->deaggregation == FIREHOSE_DEAGG_JSON)
		return fh_split_json(data, size, pieces, count);
	if (spec->deaggregation == FIREHOSE_DEAGG_DELIMITED)
		return fh_split_delimited(spec, data, size, pieces, count);
	return -EINVAL;
}
