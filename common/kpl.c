/*
 * kpl.c - KPL aggregated records (kpl.h). The checks run in the order a
 * reader must trust them: magic, MD5 over the protobuf bytes, the protobuf itself
 * (protobuf-c, bounded by the record: a Kinesis record is at most 10 MiB), then every
 * record's key indexes against the tables, so kpl_record() cannot fail.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/hashkey.h"
#include "common/kpl.h"
#include "common/kpl_aggregated.pb-c.h"

static const uint8_t kpl_magic[KPL_MAGIC_SIZE] = { 0xf3, 0x89, 0x9a, 0xc2 };

bool
kpl_is_aggregated(const uint8_t *data, size_t size)
{
	return size >= KPL_MAGIC_SIZE + KPL_MD5_SIZE &&
	       memcmp(data, kpl_magic, KPL_MAGIC_SIZE) == 0;
}

/* Every record's indexes name entries of the tables. */
static bool
kpl_indexes_valid(const AggregatedRecord *msg)
{
	for (size_t i = 0; i < msg->n_records; i++) {
		const Record *r = msg->records[i];

		if (r->partition_key_index >= msg->n_partition_key_table)
			return false;
		if (r->has_explicit_hash_key_index &&
		    r->explicit_hash_key_index >= msg->n_explicit_hash_key_table)
			return false;
	}
	return true;
}

int
kpl_open(const uint8_t *data, size_t size, struct kpl *agg)
{
	uint8_t digest[KPL_MD5_SIZE];
	const uint8_t *body = data + KPL_MAGIC_SIZE;
	size_t body_size;
	AggregatedRecord *msg;

	memset(agg, 0, sizeof(*agg));
	if (!kpl_is_aggregated(data, size))
		return -ENOMSG;
	body_size = size - KPL_MAGIC_SIZE - KPL_MD5_SIZE;
	hashkey_md5(body, body_size, digest);
	if (memcmp(digest, body + body_size, KPL_MD5_SIZE) != 0)
		return -EBADMSG;
	msg = aggregated_record__unpack(NULL, body_size, body);
	if (msg == NULL)
		return -EPROTO;
	if (!kpl_indexes_valid(msg)) {
		aggregated_record__free_unpacked(msg, NULL);
		return -EPROTO;
	}
	agg->message = msg;
	agg->record_count = msg->n_records;
	return 0;
}

void
kpl_record(const struct kpl *agg, size_t index, struct kpl_record *out)
{
	const AggregatedRecord *msg = agg->message;
	const Record *r;

	assert(msg != NULL);
	assert(index < agg->record_count);
	r = msg->records[index];
	out->partition_key = msg->partition_key_table[r->partition_key_index];
	out->explicit_hash_key = r->has_explicit_hash_key_index ?
				 msg->explicit_hash_key_table[r->explicit_hash_key_index] : NULL;
	out->data = r->data.data;
	out->data_size = r->data.len;
}

void
kpl_close(struct kpl *agg)
{
	if (agg->message != NULL)
		aggregated_record__free_unpacked(agg->message, NULL);
	agg->message = NULL;
	agg->record_count = 0;
}
