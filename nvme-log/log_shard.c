/*
 * log_shard.c - the shard table (open addressing, sized once from
 * shards_max) and each shard's in-memory sparse index: one summary per
 * segment the shard has batches in (seq range, latest arrival). The
 * batch-level entries live with their segment (log_segment.c).
 * Callers hold index_lock unless a function says otherwise.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"

static uint32_t
shard_hash(uint64_t shard_id)
{
	uint64_t z = shard_id * 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 29)) * 0xBF58476D1CE4E5B9ull;
	return (uint32_t)(z ^ (z >> 32));
}

int
log_shard_table_init(struct log *log)
{
	uint32_t slots = 2;

	while (slots < 2 * log->config.shards_max)
		slots <<= 1;
	log->shards = calloc(log->config.shards_max, sizeof(*log->shards));
	log->shard_slots = calloc(slots, sizeof(uint32_t));
	if (log->shards == NULL || log->shard_slots == NULL)
		return -ENOMEM;
	log->shard_slot_mask = slots - 1;
	return 0;
}

void
log_shard_table_fini(struct log *log)
{
	if (log->shards != NULL) {
		for (uint32_t i = 0; i < log->shard_count; i++) {
			free(log->shards[i].segs);
			free(log->shards[i].repl);
		}
	}
	free(log->shards);
	free(log->shard_slots);
}

/* The shard, or NULL if the log never saw it. The writer may call it without the lock. */
struct log_shard *
log_shard_find(struct log *log, uint64_t shard_id)
{
	for (uint32_t i = shard_hash(shard_id);; i++) {
		uint32_t slot = log->shard_slots[i & log->shard_slot_mask];

		if (slot == 0)
			return NULL;
		if (log->shards[slot - 1].shard_id == shard_id)
			return &log->shards[slot - 1];
	}
}

/* Finds or adds the shard; NULL when the table is full (shards_max). Writer/recovery only. */
struct log_shard *
log_shard_get(struct log *log, uint64_t shard_id)
{
	struct log_shard *shard = log_shard_find(log, shard_id);
	uint32_t i;

	if (shard != NULL)
		return shard;
	if (log->shard_count == log->config.shards_max)
		return NULL;
	for (i = shard_hash(shard_id); log->shard_slots[i & log->shard_slot_mask] != 0; i++)
		;
	shard = &log->shards[log->shard_count];
	memset(shard, 0, sizeof(*shard));
	shard->shard_id = shard_id;
	shard->used = true;
	shard->seq_watermark = log_shard_watermark_initial(log);
	log->shard_count++;
	log->shard_slots[i & log->shard_slot_mask] = log->shard_count;
	return shard;
}

/*
 * Records a durable batch in the shard's per-segment summary. The caller
 * checked that entry->seq_first continues the shard. -ENOMEM if the
 * summary cannot grow.
 */
int
log_shard_note_batch(struct log *log, struct log_shard *shard, uint64_t segment_no,
		     const struct log_index_entry *entry)
{
	struct log_shard_seg *last = shard->seg_count == 0 ? NULL :
				     &shard->segs[shard->seg_count - 1];

	(void)log;
	if (last == NULL || last->segment_no != segment_no) {
		if (shard->seg_count == shard->seg_cap) {
			uint32_t cap = shard->seg_cap == 0 ? 4 : shard->seg_cap * 2;
			struct log_shard_seg *segs = realloc(shard->segs, cap * sizeof(*segs));

			if (segs == NULL)
				return -ENOMEM;
			shard->segs = segs;
			shard->seg_cap = cap;
		}
		last = &shard->segs[shard->seg_count++];
		last->segment_no = segment_no;
		last->seq_first = entry->seq_first;
		last->arrival_max_ns = 0;
	}
	last->seq_end = entry->seq_first + entry->record_count;
	last->arrival_max_ns = max_u64(last->arrival_max_ns, entry->arrival_max_ns);
	shard->seq_durable = last->seq_end;
	shard->last_arrival_ns = max_u64(shard->last_arrival_ns, entry->arrival_max_ns);
	return 0;
}

/* Remembers a corrupt range: reads of it return -EBADMSG from now on. */
void
log_shard_mark_bad(struct log_shard *shard, uint64_t first, uint64_t end)
{
	for (uint32_t i = 0; i < shard->bad_count; i++) {
		if (shard->bad[i].first <= first && end <= shard->bad[i].end)
			return;
	}
	if (shard->bad_count == LOG_SHARD_BAD_MAX) {
		/* Out of slots: widen the last range so nothing bad is ever served. */
		struct log_seq_range *last = &shard->bad[LOG_SHARD_BAD_MAX - 1];

		last->first = min_u64(last->first, first);
		last->end = max_u64(last->end, end);
		return;
	}
	shard->bad[shard->bad_count].first = first;
	shard->bad[shard->bad_count].end = end;
	shard->bad_count++;
}

int
log_shard_info(struct log *log, uint64_t shard_id, struct log_shard_info *info_out)
{
	struct log_shard *shard;

	memset(info_out, 0, sizeof(*info_out));
	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	if (shard != NULL && !shard->deleted) {
		info_out->seq_trim = shard->seq_trim;
		info_out->seq_durable = log_shard_readable_end(shard);
		info_out->seq_local = shard->seq_durable;
		info_out->closed = shard->closed;
		info_out->last_arrival_ns = shard->last_arrival_ns;
	}
	pthread_mutex_unlock(&log->index_lock);
	return 0;
}

int
log_shard_bad_range(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *first_out,
		    uint64_t *end_out)
{
	struct log_shard *shard;
	int rc = -ENOENT;

	pthread_mutex_lock(&log->index_lock);
	shard = log_shard_find(log, shard_id);
	for (uint32_t i = 0; shard != NULL && i < shard->bad_count; i++) {
		const struct log_seq_range *bad = &shard->bad[i];

		if (bad->end <= seq || (rc == 0 && bad->first >= *first_out))
			continue;
		*first_out = bad->first;
		*end_out = bad->end;
		rc = 0;
	}
	pthread_mutex_unlock(&log->index_lock);
	return rc;
}

/* True for a batch of a stream deleted after the batch was written. */
bool
log_stream_deleted_before(const struct log *log, uint64_t shard_id, uint64_t commit_id)
{
	for (uint32_t i = 0; i < log->deleted_count; i++) {
		if (log->deleted[i].stream_id == LOG_SHARD_STREAM(shard_id) &&
		    commit_id < log->deleted[i].commit_before)
			return true;
	}
	return false;
}

uint32_t
log_shard_list(struct log *log, uint64_t *ids_out, uint32_t count)
{
	uint32_t known = 0;

	pthread_mutex_lock(&log->index_lock);
	for (uint32_t i = 0; i < log->shard_count; i++) {
		if (log->shards[i].deleted)
			continue;
		if (known < count)
			ids_out[known] = log->shards[i].shard_id;
		known++;
	}
	pthread_mutex_unlock(&log->index_lock);
	return known;
}
