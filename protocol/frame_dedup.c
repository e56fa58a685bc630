/*
 * frame_dedup.c - the per-producer window of recent batches that makes
 * retries exactly-once. Slot i holds the batch whose seq % WINDOW == i; a
 * slot is trusted only while its seq lies in (seq_high - WINDOW, seq_high],
 * and slots are cleared as the window slides over them.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol/frame.h"

static_assert((FRAME_DEDUP_WINDOW & (FRAME_DEDUP_WINDOW - 1)) == 0, "slot = seq & (W - 1)");

static struct frame_dedup_entry *
slot_of(struct frame_dedup *dedup, uint64_t batch_seq)
{
	return &dedup->entries[batch_seq & (FRAME_DEDUP_WINDOW - 1)];
}

static void
entry_reserve(struct frame_dedup *dedup, uint64_t batch_seq)
{
	struct frame_dedup_entry *entry = slot_of(dedup, batch_seq);

	memset(entry, 0, sizeof(*entry));
	entry->batch_seq = batch_seq;
	entry->state = FRAME_DEDUP_STORING;
}

void
frame_dedup_init(struct frame_dedup *dedup, uint64_t producer_id)
{
	memset(dedup, 0, sizeof(*dedup));
	dedup->producer_id = producer_id;
}

bool
frame_dedup_key_admits(struct frame_dedup *dedup, const struct frame_auth_key *key)
{
	if (!dedup->key_bound) {
		if (key != NULL) {
			dedup->key_bound = true;
			dedup->key_id = key->key_id;
		}
		return true;
	}
	return key != NULL && key->key_id == dedup->key_id;
}

/* Moves the window's top to `batch_seq`, clearing the slots it passes over. */
static void
window_slide(struct frame_dedup *dedup, uint64_t batch_seq)
{
	assert(batch_seq > dedup->seq_high);
	if (batch_seq - dedup->seq_high >= FRAME_DEDUP_WINDOW) {
		memset(dedup->entries, 0, sizeof(dedup->entries));
	} else {
		/* Counted, not `s <= batch_seq`: that never ends at UINT64_MAX. */
		for (uint64_t k = 1; k <= batch_seq - dedup->seq_high; k++)
			memset(slot_of(dedup, dedup->seq_high + k), 0,
			       sizeof(struct frame_dedup_entry));
	}
	dedup->seq_high = batch_seq;
}

/* The slot of an in-window batch of the current epoch, or NULL. */
static struct frame_dedup_entry *
entry_find(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq)
{
	struct frame_dedup_entry *entry;

	if (!dedup->any_seq || epoch != dedup->epoch || batch_seq > dedup->seq_high ||
	    dedup->seq_high - batch_seq >= FRAME_DEDUP_WINDOW)
		return NULL;
	entry = slot_of(dedup, batch_seq);
	if (entry->state == FRAME_DEDUP_EMPTY || entry->batch_seq != batch_seq)
		return NULL;
	return entry;
}

enum frame_dedup_verdict
frame_dedup_check(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq,
		  const struct frame_dedup_entry **entry_out)
{
	struct frame_dedup_entry *entry;

	*entry_out = NULL;
	if (dedup->any_seq && epoch < dedup->epoch)
		return FRAME_DEDUP_STALE_EPOCH;
	if (!dedup->any_seq || epoch > dedup->epoch) {
		/* A new incarnation: its seqs start afresh. */
		memset(dedup->entries, 0, sizeof(dedup->entries));
		dedup->epoch = epoch;
		dedup->any_seq = true;
		dedup->seq_high = batch_seq;
		entry_reserve(dedup, batch_seq);
		return FRAME_DEDUP_NEW;
	}
	if (batch_seq > dedup->seq_high) {
		window_slide(dedup, batch_seq);
		entry_reserve(dedup, batch_seq);
		return FRAME_DEDUP_NEW;
	}
	if (dedup->seq_high - batch_seq >= FRAME_DEDUP_WINDOW)
		return FRAME_DEDUP_TOO_OLD;
	entry = entry_find(dedup, epoch, batch_seq);
	if (entry == NULL) {
		entry_reserve(dedup, batch_seq);
		return FRAME_DEDUP_NEW;
	}
	*entry_out = entry;
	return entry->state == FRAME_DEDUP_STORING ? FRAME_DEDUP_PENDING : FRAME_DEDUP_DONE;
}

void
frame_dedup_complete(struct frame_dedup *dedup, uint32_t epoch, const struct frame_ack *ack)
{
	struct frame_dedup_entry *entry = entry_find(dedup, epoch, ack->batch_seq);
	uint16_t mode = ack->flags & FRAME_F_ACK_MODE_MASK;

	assert(ack->type == FRAME_TYPE_ACK);
	assert(ack->status == FRAME_STATUS_OK);
	if (entry == NULL || entry->state != FRAME_DEDUP_STORING)
		return;
	entry->state = FRAME_DEDUP_STORED;
	entry->ack_mode = (uint8_t)mode;
	entry->record_count = ack->record_count;
	entry->run_count = 0;
	if (mode != FRAME_ACK_DURABLE || (ack->flags & FRAME_F_NO_DETAIL) != 0 ||
	    ack->run_count > FRAME_DEDUP_RUNS_MAX)
		return;
	for (uint16_t i = 0; i < ack->run_count; i++)
		frame_ack_run_get(ack, i, &entry->runs[i]);
	entry->run_count = ack->run_count;
}

void
frame_dedup_abort(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq)
{
	struct frame_dedup_entry *entry = entry_find(dedup, epoch, batch_seq);

	if (entry != NULL && entry->state == FRAME_DEDUP_STORING)
		memset(entry, 0, sizeof(*entry));
}

void
frame_dedup_fail(struct frame_dedup *dedup, uint32_t epoch, uint64_t batch_seq,
		 uint16_t record_count, enum frame_status status)
{
	struct frame_dedup_entry *entry = entry_find(dedup, epoch, batch_seq);

	assert(status != FRAME_STATUS_OK);
	if (entry == NULL || entry->state != FRAME_DEDUP_STORING)
		return;
	entry->state = FRAME_DEDUP_STORED;
	entry->status = (uint8_t)status;
	entry->record_count = record_count;
}

void
frame_dedup_ack(const struct frame_dedup *dedup, const struct frame_dedup_entry *entry,
		uint32_t credit_size, struct frame_ack *ack_out)
{
	assert(entry->state == FRAME_DEDUP_STORED);
	memset(ack_out, 0, sizeof(*ack_out));
	ack_out->producer_id = dedup->producer_id;
	ack_out->producer_epoch = dedup->epoch;
	ack_out->batch_seq = entry->batch_seq;
	if (entry->status != FRAME_STATUS_OK) {
		ack_out->type = FRAME_TYPE_NACK;
		ack_out->status = entry->status;
		ack_out->record_count = entry->record_count;
		ack_out->record_index = FRAME_RECORD_INDEX_NONE;
		ack_out->credit_size = credit_size;
		return;
	}
	ack_out->type = FRAME_TYPE_ACK;
	ack_out->status = FRAME_STATUS_OK;
	ack_out->flags = (uint16_t)(entry->ack_mode | FRAME_F_DUPLICATE);
	if (entry->ack_mode == FRAME_ACK_DURABLE && entry->run_count == 0)
		ack_out->flags |= FRAME_F_NO_DETAIL;
	ack_out->record_count = entry->record_count;
	ack_out->record_index = FRAME_RECORD_INDEX_NONE;
	ack_out->run_count = entry->run_count;
	ack_out->runs = entry->runs;
	ack_out->credit_size = credit_size;
}
