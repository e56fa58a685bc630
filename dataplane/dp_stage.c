/*
 * dp_stage.c - a worker's per-shard staging: one open log batch per shard
 * being written, found through a small open-addressing table, submitted to
 * the log when full, when its records reach DP_BATCH_REFS_MAX, or when older
 * than batch_age_us; completions come back on the worker's own producer ring.
 *
 * A batch slot carries the log batch and, per record, which frame to tell
 * (the ref), from staging until its completion. Spare log batches are taken
 * from the log's pool between frames so that a frame can be staged whole.
 * A submit that finds the producer ring full keeps its slot on a retry list
 * (counted as ring_full); it is retried every pass, before anything new.
 *
 * Nothing here calls back into ingest: dp_stage_completions() turns finished
 * batches (the log's completions, and batches the log refused at submit,
 * kept on failed_list until then) into one struct dp_record_done per record,
 * in an array the caller passes and drains.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>

#include "common/probe.h"
#include "dataplane/dp_internal.h"
#include "nvme-log/log.h"

#define DP_OPEN_HASH_MASK (DP_OPEN_HASH_SIZE - 1)
#define DP_NOT_OPEN UINT32_MAX

static_assert((DP_OPEN_HASH_SIZE & DP_OPEN_HASH_MASK) == 0, "a power of two");
static_assert(DP_OPEN_HASH_SIZE >= 2 * DP_BATCH_SLOTS, "probe chains stay short");

static uint32_t
dp_stage_home(uint64_t shard_id)
{
	return (uint32_t)((shard_id * 0x9E3779B97F4A7C15ull) >> 32) & DP_OPEN_HASH_MASK;
}

static int64_t
dp_stage_find(const struct dp_ingest *ing, uint64_t shard_id)
{
	for (uint32_t i = dp_stage_home(shard_id);; i = (i + 1) & DP_OPEN_HASH_MASK) {
		uint32_t e = ing->open_hash[i];

		if (e == 0)
			return -1;
		if (ing->slots[e - 1].shard_id == shard_id)
			return e - 1;
	}
}

static void
dp_stage_hash_insert(struct dp_ingest *ing, uint32_t slot)
{
	uint32_t i = dp_stage_home(ing->slots[slot].shard_id);

	while (ing->open_hash[i] != 0)
		i = (i + 1) & DP_OPEN_HASH_MASK;
	ing->open_hash[i] = slot + 1;
}

static uint32_t
dp_stage_home_of(const void *ctx, uint32_t entry)
{
	const struct dp_ingest *ing = ctx;

	return dp_stage_home(ing->slots[entry - 1].shard_id);
}

/* Linear probing deletion by backward shift (common/probe.h). */
static void
dp_stage_hash_remove(struct dp_ingest *ing, uint32_t slot)
{
	uint32_t i = dp_stage_home(ing->slots[slot].shard_id);

	while (ing->open_hash[i] != slot + 1)
		i = (i + 1) & DP_OPEN_HASH_MASK;
	probe_unlink_u32(ing->open_hash, DP_OPEN_HASH_MASK, i, dp_stage_home_of, ing);
}

static void
dp_stage_close(struct dp_ingest *ing, uint32_t slot)
{
	struct dp_batch_slot *s = &ing->slots[slot];
	uint32_t last = ing->open_list[--ing->open_count];

	assert(s->open_position != DP_NOT_OPEN);
	dp_stage_hash_remove(ing, slot);
	ing->open_list[s->open_position] = last;
	ing->slots[last].open_position = s->open_position;
	s->open_position = DP_NOT_OPEN;
}

static void
dp_stage_release(struct dp_ingest *ing, uint32_t slot)
{
	ing->slots[slot].batch = NULL;
	ing->slots[slot].ref_count = 0;
	ing->slots[slot].record_count = 0;
	ing->slot_free[ing->slot_free_count++] = slot;
}

/*
 * A closed batch the log refused: it goes back to the pool now; the slot,
 * holding its refs, waits on failed_list until dp_stage_completions()
 * reports its records.
 */
static void
dp_stage_fail(struct dp_worker *w, uint32_t slot, int error)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_batch_slot *s = &ing->slots[slot];

	assert(error < 0);
	assert(ing->failed_count < DP_BATCH_SLOTS);
	dp_count(w, DP_RECORDS_FAILED, s->record_count);
	log_batch_put(ing->producer, s->batch);
	s->batch = NULL;
	s->error = error;
	ing->failed_list[ing->failed_count++] = slot;
}

/* False only when the log's ring is full (-EAGAIN): the one refusal worth retrying. */
static bool
dp_stage_try_submit(struct dp_worker *w, uint32_t slot)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_batch_slot *s = &ing->slots[slot];
	int rc;

	if (w->dp->config.bench_discard_batches) {
		log_batch_put(ing->producer, s->batch);
		dp_stage_release(ing, slot);
		dp_count(w, DP_BATCHES_SUBMITTED, 1);
		return true;
	}
	/* Cluster mode: the log refuses (-ESTALE) an epoch this node promised to end. */
	rc = log_batch_submit_at(ing->producer, s->batch, s->shard_id, UINT64_MAX, s->epoch, slot);
	if (rc == -EAGAIN)
		return false;
	if (rc != 0) {
		dp_stage_fail(w, slot, rc);
		return true;
	}
	ing->in_flight++;
	dp_count(w, DP_BATCHES_SUBMITTED, 1);
	return true;
}

static void
dp_stage_submit(struct dp_worker *w, uint32_t slot)
{
	struct dp_ingest *ing = &w->ingest;

	dp_stage_close(ing, slot);
	if (ing->retry_count == 0 && dp_stage_try_submit(w, slot))
		return;
	/* Keep submit order per shard: once one waits, later ones queue behind it. */
	dp_count(w, DP_RING_FULL, 1);
	ing->retry_list[ing->retry_count++] = slot;
}

/* Closes a batch that holds no record and gives it back to the spares. */
static void
dp_stage_discard(struct dp_ingest *ing, uint32_t slot)
{
	struct dp_batch_slot *s = &ing->slots[slot];

	assert(s->ref_count == 0);
	dp_stage_close(ing, slot);
	if (ing->spare_count < DP_SPARES_MAX)
		ing->spares[ing->spare_count++] = s->batch;
	else
		log_batch_put(ing->producer, s->batch);
	dp_stage_release(ing, slot);
}

/*
 * Opens a batch for `shard_id` from the spares (or straight from the log's
 * pool). -ENOBUFS when neither a batch nor a slot is left: callers reserve
 * enough per frame (dp_stage_can_take), so this is the rare case of an
 * estimate falling short, handled as a refused record, never an assert.
 */
static int64_t
dp_stage_open(struct dp_ingest *ing, uint64_t shard_id, uint64_t epoch, uint64_t now_tsc)
{
	struct log_batch *batch = NULL;
	struct dp_batch_slot *s;
	uint32_t slot;

	if (ing->slot_free_count == 0)
		return -ENOBUFS;
	if (ing->spare_count > 0)
		batch = ing->spares[--ing->spare_count];
	else if (ing->producer != NULL)
		batch = log_batch_get(ing->producer);
	if (batch == NULL)
		return -ENOBUFS;
	slot = ing->slot_free[--ing->slot_free_count];
	s = &ing->slots[slot];
	s->batch = batch;
	s->shard_id = shard_id;
	s->epoch = epoch;
	s->opened_tsc = now_tsc;
	s->ref_count = 0;
	s->record_count = 0;
	dp_stage_hash_insert(ing, slot);
	s->open_position = ing->open_count;
	ing->open_list[ing->open_count++] = slot;
	return slot;
}

bool
dp_stage_can_take(struct dp_worker *w, uint32_t shard_count, uint32_t record_count)
{
	struct dp_ingest *ing = &w->ingest;
	/*
	 * Per shard one batch to open or to replace when full (a datagram is
	 * smaller than a batch), plus one per DP_BATCH_REFS_MAX records.
	 */
	uint32_t need = shard_count + 1 + record_count / DP_BATCH_REFS_MAX;

	/* A burst of frames to many shards can use up the spares within one pass. */
	while (ing->spare_count < need && ing->spare_count < DP_SPARES_MAX &&
	       ing->producer != NULL) {
		struct log_batch *b = log_batch_get(ing->producer);

		if (b == NULL)
			break;
		ing->spares[ing->spare_count++] = b;
	}
	return ing->spare_count >= need && ing->slot_free_count >= need;
}

/*
 * The shard's open batch, or -1; one of an older leader epoch (this node leads the
 * shard again) is submitted first: a batch carries one epoch.
 */
static int64_t
dp_stage_find_epoch(struct dp_worker *w, uint64_t shard_id, uint64_t epoch)
{
	int64_t slot = dp_stage_find(&w->ingest, shard_id);

	if (slot >= 0 && w->ingest.slots[slot].epoch != epoch) {
		dp_stage_submit(w, (uint32_t)slot);
		return -1;
	}
	return slot;
}

int
dp_stage_add(struct dp_worker *w, uint64_t shard_id, uint64_t epoch,
	     const struct log_record_in *log_record, struct dp_record_ref ref, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	int64_t slot = dp_stage_find_epoch(w, shard_id, epoch);
	struct dp_batch_slot *s;
	int rc;

	if (slot < 0)
		slot = dp_stage_open(ing, shard_id, epoch, now_tsc);
	if (slot < 0)
		return (int)slot;
	s = &ing->slots[slot];
	rc = log_batch_add(s->batch, log_record);
	if (rc == -ENOSPC && s->ref_count > 0) {
		dp_stage_submit(w, (uint32_t)slot);
		slot = dp_stage_open(ing, shard_id, epoch, now_tsc);
		if (slot < 0)
			return (int)slot;
		s = &ing->slots[slot];
		rc = log_batch_add(s->batch, log_record);
	}
	if (rc != 0) {
		/* An empty batch left open would be submitted, refused, and wedge the slot. */
		if (s->ref_count == 0)
			dp_stage_discard(ing, (uint32_t)slot);
		return rc == -ENOSPC ? -EMSGSIZE : rc;
	}
	assert(ref.count == 1);
	s->refs[s->ref_count++] = ref;
	s->record_count++;
	if (s->ref_count == DP_BATCH_REFS_MAX)
		dp_stage_submit(w, (uint32_t)slot);
	return 0;
}

/* The shard's open batch if grouped records may still take its base arrival, else -1. */
static int64_t
dp_stage_find_for_block(struct dp_worker *w, uint64_t shard_id, uint64_t epoch)
{
	struct dp_ingest *ing = &w->ingest;
	int64_t slot = dp_stage_find_epoch(w, shard_id, epoch);

	if (slot >= 0 && (int64_t)(ing->now_real_ns -
				   log_batch_base_arrival_ns(ing->slots[slot].batch)) >
			 (int64_t)DP_GROUPED_ARRIVAL_SKEW_NS) {
		dp_stage_submit(w, (uint32_t)slot);
		return -1;
	}
	return slot;
}

int
dp_stage_add_encoded(struct dp_worker *w, uint64_t shard_id, uint64_t epoch,
		     const uint8_t *records, uint32_t size, struct dp_record_ref *ref,
		     uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;

	while (ref->count > 0) {
		int64_t slot = dp_stage_find_for_block(w, shard_id, epoch);
		struct dp_batch_slot *s;
		uint32_t taken;
		int n;

		if (slot < 0)
			slot = dp_stage_open(ing, shard_id, epoch, now_tsc);
		if (slot < 0)
			return (int)slot;
		s = &ing->slots[slot];
		n = log_batch_add_encoded(s->batch, records, size, ref->count, ing->now_real_ns,
					  &taken);
		if (n <= 0) {
			/* 0: full, and it holds records (an empty batch takes one or refuses). */
			if (n == 0) {
				dp_stage_submit(w, (uint32_t)slot);
				continue;
			}
			if (s->ref_count == 0)
				dp_stage_discard(ing, (uint32_t)slot);
			return n;
		}
		s->refs[s->ref_count++] = (struct dp_record_ref){
			.frame_slot = ref->frame_slot, .record_index = ref->record_index,
			.count = (uint16_t)n,
		};
		s->record_count += (uint32_t)n;
		ref->record_index = (uint16_t)(ref->record_index + n);
		ref->count = (uint16_t)(ref->count - n);
		records += taken;
		size -= taken;
		if (s->ref_count == DP_BATCH_REFS_MAX)
			dp_stage_submit(w, (uint32_t)slot);
	}
	return 0;
}

uint64_t
dp_stage_deadline(const struct dp_worker *w)
{
	const struct dp_ingest *ing = &w->ingest;
	uint64_t oldest = UINT64_MAX;

	for (uint32_t i = 0; i < ing->open_count; i++)
		oldest = RTE_MIN(oldest, ing->slots[ing->open_list[i]].opened_tsc);
	return oldest == UINT64_MAX ? UINT64_MAX : oldest + ing->batch_age_tsc;
}

uint32_t
dp_stage_flush(struct dp_worker *w, uint64_t now_tsc, bool all)
{
	struct dp_ingest *ing = &w->ingest;
	uint32_t flushed = 0;

	/* Scan a quarter age apart: batches leave between 1 and 1.25 ages old. */
	if (!all && now_tsc - ing->flush_scan_tsc < ing->batch_age_tsc / 4)
		return 0;
	ing->flush_scan_tsc = now_tsc;
	/* Backwards: closing a slot moves the last entry into its place. */
	for (uint32_t i = ing->open_count; i-- > 0;) {
		uint32_t slot = ing->open_list[i];

		if (all || now_tsc - ing->slots[slot].opened_tsc >= ing->batch_age_tsc) {
			dp_stage_submit(w, slot);
			flushed++;
		}
	}
	return flushed;
}

uint32_t
dp_stage_refill(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;
	uint32_t done = 0;
	uint32_t i = 0;

	while (i < ing->retry_count && dp_stage_try_submit(w, ing->retry_list[i]))
		i++;
	if (i > 0) {
		memmove(ing->retry_list, ing->retry_list + i,
			(ing->retry_count - i) * sizeof(*ing->retry_list));
		ing->retry_count -= i;
		done += i;
	}
	while (ing->producer != NULL && ing->spare_count < DP_SPARES_MAX) {
		struct log_batch *b = log_batch_get(ing->producer);

		if (b == NULL)
			break;
		ing->spares[ing->spare_count++] = b;
	}
	return done;
}

/* Each ref of batch `s` with its outcome into done[]; returns how many. */
static uint32_t
dp_stage_report(const struct dp_batch_slot *s, uint64_t shard_id, uint64_t seq_first,
		int32_t error, struct dp_record_done *done)
{
	uint64_t seq = seq_first;

	for (uint32_t r = 0; r < s->ref_count; r++) {
		done[r] = (struct dp_record_done){
			.ref = s->refs[r],
			.shard_id = shard_id,
			.seq = error == 0 ? seq : 0,
			.error = error,
		};
		seq += s->refs[r].count;
	}
	return s->ref_count;
}

/* The records of refused batches, oldest first, as many whole batches as fit. */
static uint32_t
dp_stage_report_failed(struct dp_ingest *ing, struct dp_record_done *done, uint32_t done_max)
{
	uint32_t count = 0;
	uint32_t i = 0;

	for (; i < ing->failed_count; i++) {
		uint32_t slot = ing->failed_list[i];
		struct dp_batch_slot *s = &ing->slots[slot];

		if (count + s->ref_count > done_max)
			break;
		count += dp_stage_report(s, s->shard_id, 0, s->error, done + count);
		dp_stage_release(ing, slot);
	}
	memmove(ing->failed_list, ing->failed_list + i,
		(ing->failed_count - i) * sizeof(*ing->failed_list));
	ing->failed_count -= i;
	return count;
}

/*
 * Adds a completed batch's records to its stream's count: once per batch, so a
 * hash and a probe or two per batch (the records each cost far more).
 */
static void
dp_stream_count(struct dp_worker *w, uint32_t stream_id, uint64_t records)
{
	uint32_t home = (stream_id * 2654435761u) % DP_STREAM_COUNTS_MAX;

	for (uint32_t i = 0; i < DP_STREAM_PROBES; i++) {
		uint32_t slot = (home + i) % DP_STREAM_COUNTS_MAX;
		uint64_t id = w->stream_counts[slot].id_plus1;

		if (id == 0) {
			/* Claimed by this worker only; the reader sees the id, then counts. */
			__atomic_store_n(&w->stream_counts[slot].id_plus1, stream_id + 1ull,
					 __ATOMIC_RELEASE);
			id = stream_id + 1ull;
		}
		if (id == stream_id + 1ull) {
			uint64_t *c = &w->stream_counts[slot].records;

			__atomic_store_n(c, *c + records, __ATOMIC_RELAXED);
			return;
		}
	}
	__atomic_store_n(&w->stream_counts_other, w->stream_counts_other + records,
			 __ATOMIC_RELAXED);
}

uint32_t
dp_stage_completions(struct dp_worker *w, struct dp_record_done *done, uint32_t done_max)
{
	struct dp_ingest *ing = &w->ingest;
	struct log_completion polled[DP_COMPLETIONS_BURST];
	const struct dp_cluster *cluster = w->dp->config.cluster;
	uint32_t count;
	uint32_t room;
	uint32_t n;

	assert(done_max >= DP_BATCH_REFS_MAX);
	count = ing->failed_count > 0 ? dp_stage_report_failed(ing, done, done_max) : 0;
	if (ing->producer == NULL || ing->in_flight == 0)
		return count;
	/* Only as many batches as surely fit: a completion taken is reported whole. */
	room = RTE_MIN((done_max - count) / DP_BATCH_REFS_MAX, (uint32_t)DP_COMPLETIONS_BURST);
	n = room == 0 ? 0 : log_completions_poll(ing->producer, polled, room);
	for (uint32_t c = 0; c < n; c++) {
		uint32_t slot = (uint32_t)polled[c].cookie;
		struct dp_batch_slot *s = &ing->slots[slot];

		assert(slot < DP_BATCH_SLOTS);
		assert(s->record_count == polled[c].record_count || polled[c].error != 0);
		count += dp_stage_report(s, polled[c].shard_id, polled[c].seq_first,
					 polled[c].error, done + count);
		dp_count(w, polled[c].error == 0 ? DP_RECORDS_DURABLE : DP_RECORDS_FAILED,
			 s->record_count);
		if (polled[c].error == 0)
			dp_stream_count(w, LOG_SHARD_STREAM(polled[c].shard_id), s->record_count);
		/* Cluster mode: the replica leader ships at once, not at its fallback tick. */
		if (polled[c].error == 0 && cluster != NULL)
			cluster->durable(cluster->ctx, polled[c].shard_id,
					 polled[c].seq_first + polled[c].record_count);
		dp_stage_release(ing, slot);
		ing->in_flight--;
	}
	assert(count <= done_max);
	return count;
}

int
dp_stage_init(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_record_ref *refs;
	int rc;

	ing->slots = calloc(DP_BATCH_SLOTS, sizeof(*ing->slots));
	refs = calloc((size_t)DP_BATCH_SLOTS * DP_BATCH_REFS_MAX, sizeof(*refs));
	ing->slot_free = calloc(DP_BATCH_SLOTS, sizeof(uint32_t));
	ing->open_list = calloc(DP_BATCH_SLOTS, sizeof(uint32_t));
	ing->retry_list = calloc(DP_BATCH_SLOTS, sizeof(uint32_t));
	ing->failed_list = calloc(DP_BATCH_SLOTS, sizeof(uint32_t));
	ing->open_hash = calloc(DP_OPEN_HASH_SIZE, sizeof(uint32_t));
	if (ing->slots == NULL || refs == NULL || ing->slot_free == NULL ||
	    ing->open_list == NULL || ing->retry_list == NULL || ing->failed_list == NULL ||
	    ing->open_hash == NULL) {
		free(refs);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < DP_BATCH_SLOTS; i++) {
		ing->slots[i].refs = refs + (size_t)i * DP_BATCH_REFS_MAX;
		ing->slots[i].open_position = DP_NOT_OPEN;
		ing->slot_free[i] = DP_BATCH_SLOTS - 1 - i;
	}
	ing->slot_free_count = DP_BATCH_SLOTS;
	ing->completion_fd = -1;
	if (w->dp->config.log != NULL) {
		rc = log_producer_open(w->dp->config.log, &ing->producer);
		if (rc != 0)
			return rc;
		ing->completion_fd = log_producer_nap_fd(ing->producer);
		dp_stage_refill(w);
	}
	return 0;
}

void
dp_stage_fini(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;

	if (ing->producer != NULL) {
		while (ing->open_count > 0) {
			uint32_t slot = ing->open_list[ing->open_count - 1];

			log_batch_put(ing->producer, ing->slots[slot].batch);
			dp_stage_close(ing, slot);
		}
		for (uint32_t i = 0; i < ing->retry_count; i++)
			log_batch_put(ing->producer, ing->slots[ing->retry_list[i]].batch);
		while (ing->spare_count > 0)
			log_batch_put(ing->producer, ing->spares[--ing->spare_count]);
		log_producer_close(ing->producer);
		ing->producer = NULL;
		ing->completion_fd = -1;
	}
	if (ing->slots != NULL)
		free(ing->slots[0].refs);
	free(ing->slots);
	free(ing->slot_free);
	free(ing->open_list);
	free(ing->retry_list);
	free(ing->failed_list);
	free(ing->open_hash);
	ing->slots = NULL;
}
