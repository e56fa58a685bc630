/*
 * kpl.h - KPL aggregated records (common/kpl_aggregated.proto has the layout):
 * recognising one in a Kinesis record's data, checking its MD5, and walking its
 * user records. Parsing is protobuf-c's, over the .proto in the tree.
 */
#ifndef SLUICE_TOOLS_KPL_H
#define SLUICE_TOOLS_KPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KPL_MAGIC_SIZE 4u
#define KPL_MD5_SIZE 16u

/* One aggregated record, unpacked (its strings and data point into `message`). */
struct kpl {
	void *message;        /* AggregatedRecord of protobuf-c. */
	size_t record_count;
};

/* A user record inside; explicit_hash_key is NULL when it has none. */
struct kpl_record {
	const char *partition_key;
	const char *explicit_hash_key;
	const uint8_t *data;
	size_t data_size;
};

/* True when `data` starts with the KPL magic and is long enough to hold an aggregate. */
bool kpl_is_aggregated(const uint8_t *data, size_t size);

/*
 * Unpacks the aggregate in `data`. Returns 0, -ENOMSG when it is not one (no magic),
 * -EBADMSG when its MD5 does not match, -EPROTO when the protobuf does not parse or a
 * record names a key that is not in the tables, -ENOMEM. Close it after a 0.
 */
int kpl_open(const uint8_t *data, size_t size, struct kpl *agg);
/* The user record at `index` (< record_count). */
void kpl_record(const struct kpl *agg, size_t index, struct kpl_record *out);
void kpl_close(struct kpl *agg);

#endif /* SLUICE_TOOLS_KPL_H */
