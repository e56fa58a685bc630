/*
 * dp_ingest.c - record frames from the ingest UDP port to staged records,
 * and the ACK/NACK frames that answer them. It reads in the order a frame
 * travels (docs/PROTOCOL.md; the codec does every byte check):
 *
 *   1. Decode and check, per datagram as it arrives: decode (CRC, sizes,
 *      UTF-8) -> auth tag if present or required -> stream; the frame's
 *      records are queued for their hash keys (dp_hash.c) and it is held.
 *   2. Burst end (dp_ingest_burst_end), in passes: the burst's hash keys all
 *      at once (producer-given, or MD5 through a per-worker key cache, the
 *      misses in SIMD lanes), every record of the burst routed in one loop,
 *      then per frame in arrival order: cluster mode, does this node lead its
 *      shards (else NACK not_leader / split_leaders / throttled, nothing
 *      stored) -> duplicate check (dp_dedup.c, a window per producer id) ->
 *      room for the whole frame -> stage every record (dp_stage.c).
 *   3. Answers: nothing (ack mode NONE), an ACK now (RECEIVED), or, for
 *      DURABLE (the default), a frame slot that waits for its records.
 *   4. Completions -> answers: dp_stage_completions() hands back each
 *      record's outcome (ref, shard, seq, err); a frame's last one answers
 *      it: an ACK with each record's (shard, seq) as runs. When the log
 *      failed some of its batches (disk full, a shard closed by a reshard),
 *      a frame of which nothing is durable is NACKed for a retry, and one
 *      partly durable is NACKed SEQUENCE_OLD (outcome unknown) to every
 *      retry: never stored twice. A frame is staged whole or not at all.
 *      Cluster mode: a frame durable here is ACKed only once the replicas
 *      [cluster] acks asks for hold it; until then it waits in its slot on
 *      the replicating list, looked at again when the doorbell moves.
 *
 * Every ACK and NACK leaves through dp_ingest_send(). NACKs share one token
 * bucket per worker (two RX rings deep, refilled at DP_NACK_PER_S): a flood of bad or
 * throttled frames cannot turn the worker into a reflector; suppressed NACKs
 * are counted (UDP only: a TCP peer is owed every answer). Duplicate windows
 * are one table shared by the workers (struct dp, under dedup_lock): a
 * producer that reconnects or restarts from another port may reach another
 * worker and must meet its window there. The table holds producers_max
 * windows per worker; a new id finding them all taken (none idle) is NACKed
 * THROTTLED (counted), never given another producer's window
 * (docs/PROTOCOL.md section 5).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>

#include "common/clock.h"
#include "common/hashkey.h"
#include "dataplane/dp_internal.h"
#include "dataplane/dp_kernel.h"
#include "nvme-log/log.h"

static_assert(DP_FRAME_RECORDS_MAX <= FRAME_RECORDS_MAX, "a frame slot holds any frame");
static_assert(DP_FRAME_RECORDS_MAX <= DP_HELD_RECORDS, "any one frame can be held");
static_assert((DP_SHARDS_SEEN_SIZE & (DP_SHARDS_SEEN_SIZE - 1)) == 0, "a power of two");
static_assert(DP_SHARDS_SEEN_SIZE >= 2 * DP_FRAME_RECORDS_MAX, "probe chains stay short");

/* Defined with the answers and the completions, below. */
static void dp_ingest_send(struct dp_worker *w, const struct dp_peer *peer,
			   const struct frame_ack *ack);
static void dp_ingest_nack_record(struct dp_worker *w, const struct dp_peer *peer,
				  const struct frame_records *fr, enum frame_status status,
				  uint16_t record_index, uint64_t now_tsc);
static void dp_ingest_grouped(struct dp_worker *w, const struct dp_peer *peer,
			      const struct frame_records *fr, const struct dp_route_table *table,
			      int32_t stream, uint64_t now_tsc);
static void dp_ingest_nack(struct dp_worker *w, const struct dp_peer *peer,
			   const struct frame_records *fr, enum frame_status status, uint64_t now_tsc);
static void dp_ingest_refuse(struct dp_worker *w, const struct dp_peer *peer,
			     const struct frame_records *fr, enum frame_status status, bool reserved,
			     uint64_t now_tsc);
static void dp_ingest_record_done(struct dp_worker *w, const struct dp_record_done *done);

/*
 * A TCP frame handed over that gets no answer: its connection's room reserved for
 * the answer comes back, on either backend. A room never released takes a frame in
 * flight from the connection for good (on the kernel backend, each libsluice resend
 * meeting its first copy being stored took one, until one frame at a time was left).
 */
static void
dp_ingest_unanswered(struct dp_worker *w, const struct dp_peer *peer)
{
	assert(peer->tcp);
	if (peer->kernel)
		dp_kernel_unanswered(w, peer);
	else
		dp_tcp_unanswered(&w->tcp, peer->tcp_conn, peer->tcp_gen);
}

/* ---- Decode and check: per datagram, as it arrives ----------------------- */

/* Checks the tag if present (or required); a verified frame keeps its key to sign answers. */
static bool
dp_ingest_auth_ok(struct dp_worker *w, struct frame_records *fr)
{
	const struct dp *dp = w->dp;
	uint32_t key_id;

	if (fr->auth == NULL)
		return !dp->config.auth_required;
	if (!frame_auth_key_id(fr->frame, fr->frame_size, &key_id))
		return false;
	for (uint32_t i = 0; i < dp->auth_key_count; i++) {
		if (dp->auth_keys[i].key_id != key_id)
			continue;
		if (frame_auth_verify(fr->frame, fr->frame_size, &dp->auth_keys[i],
				      w->ingest.now_real_ns / 1000000u,
				      dp->config.auth_window_ms) != FRAME_OK)
			return false;
		fr->verified_key = &dp->auth_keys[i];
		return true;
	}
	return false;
}

/*
 * The answer to a frame signed under `key` (verified) is signed with it too, so the
 * producer can tell it from a forged one (docs/PROTOCOL.md section 7). NULL: unsigned.
 */
static void
dp_ingest_sign(const struct dp_worker *w, struct frame_ack *ack, const struct frame_auth_key *key)
{
	ack->sign_key = key;
	ack->sign_time_ms = w->ingest.now_real_ns / 1000000u;
}

/*
 * A producer id belongs to the key that first signed for it (frame_dedup_key_admits):
 * a frame under another key, or unsigned, is NACKed auth_failed and counted, and the
 * id's window (epoch, batches) stays as it was. Caller holds dedup_lock.
 */
static bool
dp_ingest_key_admits_locked(struct dp_worker *w, const struct dp_peer *peer,
			    const struct frame_records *fr, struct frame_dedup *d, uint64_t now_tsc)
{
	if (frame_dedup_key_admits(d, fr->verified_key))
		return true;
	dp_count(w, DP_FRAMES_KEY_MISMATCH, 1);
	if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
		dp_ingest_nack(w, peer, fr, FRAME_STATUS_AUTH_FAILED, now_tsc);
	return false;
}

/*
 * Decode and the checks that need no hash key, then its records queued for
 * their hash keys (dp_hash); the frame is held for the rest until
 * dp_ingest_burst_end().
 */
static void
dp_ingest_frame(struct dp_worker *w, const struct dp_peer *peer, const uint8_t *bytes,
		uint32_t size, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	struct frame_records fr;
	enum frame_err err = frame_records_decode(bytes, size, &fr);
	const struct dp_route_table *table;
	int32_t stream;
	uint32_t first;

	/* Every path below answers exactly the frames with an identity and an ack mode. */
	if (peer->tcp && ((err != FRAME_OK && !fr.identity_valid) ||
			  frame_records_ack_mode(&fr) == FRAME_ACK_NONE))
		dp_ingest_unanswered(w, peer);
	if (err != FRAME_OK) {
		dp_count(w, DP_FRAMES_MALFORMED, 1);
		if (fr.identity_valid && frame_records_ack_mode(&fr) != FRAME_ACK_NONE)
			dp_ingest_nack(w, peer, &fr, frame_err_status(err), now_tsc);
		return;
	}
	if (!dp_ingest_auth_ok(w, &fr)) {
		dp_count(w, DP_FRAMES_UNAUTHENTICATED, 1);
		dp_ingest_refuse(w, peer, &fr, FRAME_STATUS_AUTH_FAILED, false, now_tsc);
		return;
	}
	table = dp_route_current(w->dp);
	stream = table == NULL ? -1 : dp_route_find_stream(table, fr.stream_name,
							   fr.stream_name_size);
	if (stream < 0) {
		dp_count(w, DP_FRAMES_UNKNOWN_STREAM, 1);
		dp_ingest_refuse(w, peer, &fr, FRAME_STATUS_UNKNOWN_STREAM, false, now_tsc);
		return;
	}
	if (fr.record_count > DP_FRAME_RECORDS_MAX) {
		dp_count(w, DP_FRAMES_MALFORMED, 1);
		dp_ingest_refuse(w, peer, &fr, FRAME_STATUS_RECORD_TOO_LARGE, false, now_tsc);
		return;
	}
	if (fr.shard_grouped) {
		/* Frames held before it are staged before it (a producer's order holds). */
		dp_ingest_burst_end(w, now_tsc);
		dp_ingest_grouped(w, peer, &fr, table, stream, now_tsc);
		return;
	}
	if (ing->held_count == DP_HELD_FRAMES || !dp_hash_has_room(&ing->hash, fr.record_count))
		dp_ingest_burst_end(w, now_tsc);
	first = dp_hash_queue_frame(&ing->hash, &fr);
	ing->held[ing->held_count++] = (struct dp_held_frame){
		.fr = fr, .peer = *peer, .table = table, .stream = stream, .hash_first = first,
	};
}

void
dp_ingest_datagram(struct dp_worker *w, const struct dp_peer *peer, const uint8_t *payload,
		   uint32_t size, uint64_t now_tsc)
{
	/* A datagram carries one or more whole frames; anything else ends it. */
	while (size > 0) {
		uint32_t frame_size = 0;
		uint32_t need = 0;

		if (frame_next(payload, size, &frame_size, &need) != FRAME_OK) {
			dp_count(w, DP_FRAMES_MALFORMED, 1);
			return;
		}
		dp_ingest_frame(w, peer, payload, frame_size, now_tsc);
		payload += frame_size;
		size -= frame_size;
	}
}

void
dp_ingest_tcp_frame(struct dp_worker *w, uint32_t conn, uint32_t gen, const uint8_t *frame,
		    uint32_t size, uint64_t now_tsc)
{
	struct dp_peer peer = { .tcp = true, .tcp_conn = conn, .tcp_gen = gen };

	dp_ingest_frame(w, &peer, frame, size, now_tsc);
}

uint32_t
dp_ingest_credit(uint32_t frames_free, uint32_t rx_full_streak)
{
	if (frames_free < DP_FRAME_SLOTS / 10 || rx_full_streak >= DP_CREDIT_PAUSE_STREAK)
		return 0;
	if (frames_free < DP_FRAME_SLOTS / 2 || rx_full_streak >= DP_CREDIT_BUSY_STREAK)
		return DP_CREDIT_LOW_BYTES;
	return FRAME_CREDIT_UNLIMITED;
}

bool
dp_ingest_can_take(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;

	/* Frames held this burst may each take a frame slot: count them as taken. */
	return ing->producer != NULL && !ing->behind && ing->frame_free_count > ing->held_count &&
	       dp_stage_can_take(w, 1, 1);
}

/* ---- Burst end: hash (dp_hash), route, dedup (dp_dedup), accept, stage ---- */

/* (Helpers first; dp_ingest_burst_end() at the end of this part puts them in order.) */

/*
 * Is `shard` new to the current frame? Marks it seen. A set per frame, emptied
 * in O(1) by a new stamp (cleared only when the stamp wraps), so counting a
 * frame's distinct shards costs O(records), not the O(records^2) of comparing
 * each record with every earlier one.
 */
static struct dp_shard_seen *
dp_ingest_shard_entry(struct dp_ingest *ing, uint64_t shard, bool *first_out)
{
	uint32_t i = (uint32_t)((shard * 0x9E3779B97F4A7C15ull) >> 32) & (DP_SHARDS_SEEN_SIZE - 1);

	for (;; i = (i + 1) & (DP_SHARDS_SEEN_SIZE - 1)) {
		struct dp_shard_seen *e = &ing->shards_seen[i];

		if (e->stamp != ing->shards_seen_stamp) {
			e->stamp = ing->shards_seen_stamp;
			e->shard = shard;
			*first_out = true;
			return e;
		}
		if (e->shard == shard) {
			*first_out = false;
			return e;
		}
	}
}

static bool
dp_ingest_shard_first(struct dp_ingest *ing, uint64_t shard)
{
	bool first;

	dp_ingest_shard_entry(ing, shard, &first);
	return first;
}

/* A new frame's set of shards: a new stamp (cleared only when the stamp wraps). */
static void
dp_ingest_shards_restamp(struct dp_ingest *ing)
{
	if (++ing->shards_seen_stamp == 0) {
		memset(ing->shards_seen, 0, DP_SHARDS_SEEN_SIZE * sizeof(*ing->shards_seen));
		ing->shards_seen_stamp = 1;
	}
}

/*
 * Routes every record of a frame into shards[]. Returns the number of distinct
 * shards (what staging must hold free), or -ENOENT when a key has no shard.
 */
static int
dp_ingest_route(struct dp_ingest *ing, const struct dp_held_frame *f, const hashkey_t *hashes,
		uint64_t *shards)
{
	uint32_t distinct = 0;

	dp_ingest_shards_restamp(ing);
	for (uint32_t i = 0; i < f->fr.record_count; i++) {
		uint64_t shard;

		if (dp_route_find_shard(f->table, f->stream, hashes[i], &shard) != 0)
			return -ENOENT;
		distinct += dp_ingest_shard_first(ing, shard);
		shards[i] = shard;
	}
	return (int)distinct;
}

/* ---- Cluster mode: who leads the frame's shards (struct dp_cluster) ------- */

/* A leader's dataplane address as a not_leader NACK's redirect block. */
static void
dp_ingest_redirect_of(const struct dp_leader *leader, uint64_t shard,
		      struct frame_redirect *redirect)
{
	memset(redirect, 0, sizeof(*redirect));
	redirect->shard_index = LOG_SHARD_INDEX(shard);
	redirect->family = 4;
	redirect->port = leader->port;
	redirect->addr[0] = (uint8_t)(leader->ipv4 >> 24);
	redirect->addr[1] = (uint8_t)(leader->ipv4 >> 16);
	redirect->addr[2] = (uint8_t)(leader->ipv4 >> 8);
	redirect->addr[3] = (uint8_t)leader->ipv4;
}

/*
 * Does this node lead every shard of the frame's `count` records (shards[])? Asks
 * once per distinct shard and keeps its epoch in shards_seen for the staging
 * (dp_ingest_epoch_of). OK: all led here. NOT_LEADER: all led by one other node,
 * *redirect names it. SPLIT_LEADERS: some here and some elsewhere, or elsewhere on
 * different nodes. THROTTLED: a shard's leader is not known (yet): retry.
 */
static enum frame_status
dp_ingest_leads(struct dp_worker *w, const uint64_t *shards, uint32_t count,
		struct frame_redirect *redirect)
{
	const struct dp_cluster *c = w->dp->config.cluster;
	struct dp_ingest *ing = &w->ingest;
	struct dp_leader first = { 0 };
	bool here = false;
	bool elsewhere = false;
	bool unknown = false;

	dp_ingest_shards_restamp(ing);
	for (uint32_t i = 0; i < count; i++) {
		struct dp_leader leader = { 0 };
		bool is_first;
		struct dp_shard_seen *e = dp_ingest_shard_entry(ing, shards[i], &is_first);
		int rc;

		if (!is_first)
			continue;
		rc = c->lead(c->ctx, shards[i], &e->epoch, &leader);
		if (rc == 0) {
			here = true;
		} else if (rc == -EREMOTE && !elsewhere) {
			elsewhere = true;
			first = leader;
			dp_ingest_redirect_of(&leader, shards[i], redirect);
		} else if (rc == -EREMOTE) {
			if (leader.ipv4 != first.ipv4 || leader.port != first.port)
				return FRAME_STATUS_SPLIT_LEADERS;
		} else {
			unknown = true;
		}
	}
	if (here && elsewhere)
		return FRAME_STATUS_SPLIT_LEADERS;
	if (unknown)
		return FRAME_STATUS_THROTTLED;
	return elsewhere ? FRAME_STATUS_NOT_LEADER : FRAME_STATUS_OK;
}

/* The epoch dp_ingest_leads() found for one of the current frame's shards. */
static uint64_t
dp_ingest_epoch_of(struct dp_worker *w, uint64_t shard)
{
	bool first;

	if (w->dp->config.cluster == NULL)
		return LOG_EPOCH_NONE;
	struct dp_shard_seen *e = dp_ingest_shard_entry(&w->ingest, shard, &first);

	assert(!first);
	return e->epoch;
}

static void dp_ingest_nack_send(struct dp_worker *w, const struct dp_peer *peer,
				const struct frame_records *fr, enum frame_status status,
				uint16_t record_index, const struct frame_redirect *redirect,
				uint64_t now_tsc);

/*
 * Single node, or every shard of the frame led here: go on. Otherwise the frame is
 * answered here (nothing stored, no dedup window touched: the leader's window is the
 * one that counts) and counted.
 */
static bool
dp_ingest_led_here(struct dp_worker *w, const struct dp_peer *peer,
		   const struct frame_records *fr, const uint64_t *shards, uint32_t count,
		   uint64_t now_tsc)
{
	struct frame_redirect redirect;
	enum frame_status status;

	if (w->dp->config.cluster == NULL)
		return true;
	status = dp_ingest_leads(w, shards, count, &redirect);
	if (status == FRAME_STATUS_OK)
		return true;
	dp_count(w, status == FRAME_STATUS_NOT_LEADER ? DP_FRAMES_REDIRECTED :
		    status == FRAME_STATUS_SPLIT_LEADERS ? DP_FRAMES_SPLIT_LEADERS :
		    DP_FRAMES_NO_LEADER, 1);
	if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
		dp_ingest_nack_send(w, peer, fr, status, FRAME_RECORD_INDEX_NONE,
				    status == FRAME_STATUS_NOT_LEADER ? &redirect : NULL, now_tsc);
	return false;
}

/*
 * The duplicate check for a frame with a producer id. Returns true when the
 * frame is new (its window entry is now STORING); otherwise answers it.
 */
static bool
dp_ingest_is_new_locked(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
		 uint64_t now_tsc)
{
	struct frame_dedup *d = dp_dedup_claim(&w->dp->dedup, fr->producer_id, now_tsc);
	const struct frame_dedup_entry *entry = NULL;
	enum frame_dedup_verdict v;
	struct frame_ack ack;

	if (d == NULL) {
		dp_count(w, DP_DROP_PRODUCERS_FULL, 1);
		if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
			dp_ingest_nack(w, peer, fr, FRAME_STATUS_THROTTLED, now_tsc);
		return false;
	}
	if (!dp_ingest_key_admits_locked(w, peer, fr, d, now_tsc))
		return false;
	v = frame_dedup_check(d, fr->producer_epoch, fr->batch_seq, &entry);
	if (v == FRAME_DEDUP_NEW)
		return true;
	dp_count(w, DP_FRAMES_DUPLICATE, 1);
	if (v == FRAME_DEDUP_STALE_EPOCH || v == FRAME_DEDUP_TOO_OLD) {
		if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
			dp_ingest_nack(w, peer, fr, v == FRAME_DEDUP_TOO_OLD ?
					  FRAME_STATUS_SEQUENCE_OLD : FRAME_STATUS_STALE_EPOCH,
				       now_tsc);
		return false;
	}
	if (v == FRAME_DEDUP_DONE && frame_records_ack_mode(fr) != FRAME_ACK_NONE) {
		frame_dedup_ack(d, entry, FRAME_CREDIT_UNLIMITED, &ack);
		dp_ingest_sign(w, &ack, fr->verified_key);
		dp_ingest_send(w, peer, &ack);
	} else if (peer->tcp && frame_records_ack_mode(fr) != FRAME_ACK_NONE) {
		/*
		 * A resend while the first copy is being stored: this copy is not
		 * stored, and says so (THROTTLED, retry soon). The first copy's
		 * answer goes to the connection it came on, which after a reconnect
		 * is gone: the producer's next resend is answered from the window.
		 * TCP has no resend timer, so without this answer the producer
		 * would learn the outcome only after its silence bound.
		 */
		dp_ingest_nack(w, peer, fr, FRAME_STATUS_THROTTLED, now_tsc);
	}
	return false;
}

static bool
dp_ingest_is_new(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
		 uint64_t now_tsc)
{
	bool is_new;

	rte_spinlock_lock(&w->dp->dedup_lock);
	is_new = dp_ingest_is_new_locked(w, peer, fr, now_tsc);
	rte_spinlock_unlock(&w->dp->dedup_lock);
	return is_new;
}

static uint32_t
dp_ingest_frame_slot(struct dp_worker *w, const struct dp_peer *peer,
		     const struct frame_records *fr, uint32_t stream_id, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	uint32_t slot = ing->frame_free[--ing->frame_free_count];
	struct dp_frame_slot *f = &ing->frames[slot];

	f->admit_tsc = now_tsc;
	f->peer = *peer;
	f->producer_id = fr->producer_id;
	f->batch_seq = fr->batch_seq;
	f->epoch = fr->producer_epoch;
	f->stream_id = stream_id;
	f->record_count = fr->record_count;
	f->records_left = fr->record_count;
	f->records_stored = 0;
	f->error = 0;
	f->sign_key = fr->verified_key;
	return slot;
}

/* Stages every record; room was checked, so only a log refusal can fail (counted). */
static void
dp_ingest_stage(struct dp_worker *w, const struct frame_records *fr, const uint64_t *shards,
		uint32_t frame_slot, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	struct frame_record_iter it;
	struct frame_record r;
	uint32_t i = 0;

	frame_record_iter_init(&it, fr);
	while (frame_record_iter_next(&it, &r)) {
		struct log_record_in in = {
			.partition_key = r.key,
			.partition_key_size = r.key_size,
			.explicit_hash_key = r.hash_kind == FRAME_HASH_EXPLICIT ? r.hash_key : NULL,
			.data = r.data,
			.data_size = r.data_size,
			.arrival_ns = ing->now_real_ns,
		};
		struct dp_record_ref ref = {
			.frame_slot = frame_slot, .record_index = (uint16_t)i, .count = 1,
		};
		int rc = dp_stage_add(w, shards[i], dp_ingest_epoch_of(w, shards[i]), &in, ref,
				      now_tsc);

		if (rc != 0) {
			dp_count(w, DP_RECORDS_FAILED, 1);
			dp_ingest_record_done(w, &(struct dp_record_done){
				.ref = ref, .shard_id = shards[i], .error = rc });
		}
		i++;
	}
	dp_count(w, DP_RECORDS_STAGED, fr->record_count);
	dp_count(w, DP_RECORD_BYTES_STAGED, fr->data_size_total);
}

/* A shard-grouped frame's block into its one shard: a copy per batch, not per record. */
static void
dp_ingest_stage_grouped(struct dp_worker *w, const struct frame_records *fr, uint64_t shard,
			uint32_t frame_slot, uint64_t now_tsc)
{
	struct dp_record_ref ref = {
		.frame_slot = frame_slot, .record_index = 0, .count = fr->record_count,
	};
	int rc = dp_stage_add_encoded(w, shard, dp_ingest_epoch_of(w, shard), fr->records,
				      fr->records_size, &ref, now_tsc);

	if (rc != 0) {
		dp_count(w, DP_RECORDS_FAILED, ref.count);
		dp_ingest_record_done(w, &(struct dp_record_done){
			.ref = ref, .shard_id = shard, .error = rc });
	}
	dp_count(w, DP_FRAMES_SHARD_GROUPED, 1);
	dp_count(w, DP_RECORDS_STAGED, fr->record_count);
	dp_count(w, DP_RECORD_BYTES_STAGED, fr->data_size_total);
}

/* An OK ACK without per-record detail: RECEIVED, or the dedup memory of an unanswered batch. */
static void
dp_ingest_ack_received(const struct frame_records *fr, struct frame_ack *ack)
{
	memset(ack, 0, sizeof(*ack));
	ack->producer_id = fr->producer_id;
	ack->batch_seq = fr->batch_seq;
	ack->producer_epoch = fr->producer_epoch;
	ack->credit_size = FRAME_CREDIT_UNLIMITED;
	ack->flags = FRAME_ACK_RECEIVED;
	ack->record_count = fr->record_count;
	ack->record_index = FRAME_RECORD_INDEX_NONE;
	ack->type = FRAME_TYPE_ACK;
	ack->status = FRAME_STATUS_OK;
}

/* After the checks: room, stage, answer. */
static void
dp_ingest_accept(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
		 const uint64_t *shards, uint32_t shard_count, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	enum frame_ack_mode mode = frame_records_ack_mode(fr);
	bool reserved = fr->producer_id != 0 && !w->dp->config.bench_no_dedup;
	uint32_t frame_slot = DP_REF_NO_ACK;
	struct frame_ack ack;

	if (ing->producer == NULL || !dp_stage_can_take(w, shard_count, fr->record_count)) {
		dp_count(w, DP_DROP_NO_BATCH, 1);
		dp_ingest_refuse(w, peer, fr, FRAME_STATUS_THROTTLED, reserved, now_tsc);
		return;
	}
	if (mode == FRAME_ACK_DURABLE && ing->frame_free_count == 0) {
		dp_count(w, DP_DROP_FRAMES_FULL, 1);
		dp_ingest_refuse(w, peer, fr, FRAME_STATUS_THROTTLED, reserved, now_tsc);
		return;
	}
	if (mode == FRAME_ACK_DURABLE && ing->behind) {
		dp_count(w, DP_DROP_FRAMES_LATE, 1);
		dp_ingest_refuse(w, peer, fr, FRAME_STATUS_THROTTLED, reserved, now_tsc);
		return;
	}
	if (mode == FRAME_ACK_DURABLE)
		frame_slot = dp_ingest_frame_slot(w, peer, fr, LOG_SHARD_STREAM(shards[0]), now_tsc);
	dp_count(w, DP_FRAMES_ACCEPTED, 1);
	if (fr->shard_grouped)
		dp_ingest_stage_grouped(w, fr, shards[0], frame_slot, now_tsc);
	else
		dp_ingest_stage(w, fr, shards, frame_slot, now_tsc);
	if (mode == FRAME_ACK_DURABLE)
		return;
	dp_ingest_ack_received(fr, &ack);
	dp_ingest_sign(w, &ack, fr->verified_key);
	if (reserved) {
		rte_spinlock_lock(&w->dp->dedup_lock);
		frame_dedup_complete(dp_dedup_find(&w->dp->dedup, fr->producer_id),
				     fr->producer_epoch, &ack);
		rte_spinlock_unlock(&w->dp->dedup_lock);
	}
	if (mode == FRAME_ACK_RECEIVED)
		dp_ingest_send(w, peer, &ack);
}

/* Duplicate check, staging and answer of a held frame, routed. */
static void
dp_ingest_finish(struct dp_worker *w, const struct dp_held_frame *f, uint64_t now_tsc)
{
	if (f->shard_count < 0) {
		dp_count(w, DP_DROP_NO_ROUTE, 1);
		dp_ingest_refuse(w, &f->peer, &f->fr, FRAME_STATUS_INTERNAL, false, now_tsc);
		return;
	}
	if (!dp_ingest_led_here(w, &f->peer, &f->fr, w->ingest.frame_shards + f->hash_first,
				f->fr.record_count, now_tsc))
		return;
	if (f->fr.producer_id != 0 && !w->dp->config.bench_no_dedup &&
	    !dp_ingest_is_new(w, &f->peer, &f->fr, now_tsc))
		return;
	dp_ingest_accept(w, &f->peer, &f->fr, w->ingest.frame_shards + f->hash_first,
			 (uint32_t)f->shard_count, now_tsc);
}

/*
 * A SHARD_RECORDS frame: no hashing and no routing per record, only a check
 * that its shard is open and owns each hash key, then the same duplicate
 * check, room check and answer as any frame.
 */
static void
dp_ingest_grouped(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
		  const struct dp_route_table *table, int32_t stream, uint64_t now_tsc)
{
	uint32_t bad = 0;
	uint64_t shard = 0;
	int rc = dp_route_check_grouped(table, stream, fr->shard_index, fr->hash_keys,
					fr->record_count, &shard, &bad);

	if (rc == -ENOENT) {
		dp_count(w, DP_FRAMES_WRONG_SHARD, 1);
		dp_ingest_refuse(w, peer, fr, FRAME_STATUS_WRONG_SHARD, false, now_tsc);
		return;
	}
	if (rc != 0) {
		dp_count(w, DP_FRAMES_MALFORMED, 1);
		if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
			dp_ingest_nack_record(w, peer, fr, FRAME_STATUS_MALFORMED, (uint16_t)bad,
					      now_tsc);
		return;
	}
	if (!dp_ingest_led_here(w, peer, fr, &shard, 1, now_tsc))
		return;
	if (fr->producer_id != 0 && !w->dp->config.bench_no_dedup &&
	    !dp_ingest_is_new(w, peer, fr, now_tsc))
		return;
	dp_ingest_accept(w, peer, fr, &shard, 1, now_tsc);
}

void
dp_ingest_burst_end(struct dp_worker *w, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_hash_counts counts;

	if (ing->held_count == 0) {
		assert(ing->hash.count == 0);
		return;
	}
	dp_hash_compute(&ing->hash, &counts);
	dp_count(w, DP_MD5_CACHE_HITS, counts.cache_hits);
	dp_count(w, DP_MD5_COMPUTED, counts.md5_computed);
	/*
	 * All route lookups of the burst in one tight loop: with many shards
	 * each misses the cache, and independent misses overlap here, which
	 * they cannot when a whole datagram's work lies between them.
	 */
	for (uint32_t i = 0; i < ing->held_count; i++) {
		struct dp_held_frame *f = &ing->held[i];

		f->shard_count = dp_ingest_route(ing, f, ing->hash.hashes + f->hash_first,
						 ing->frame_shards + f->hash_first);
	}
	for (uint32_t i = 0; i < ing->held_count; i++)
		dp_ingest_finish(w, &ing->held[i], now_tsc);
	ing->held_count = 0;
	dp_hash_reset(&ing->hash);
}

/* ---- Answers: every ACK and NACK leaves through dp_ingest_send() --------- */

static bool
dp_ingest_nack_allowed(struct dp_worker *w, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	uint64_t tsc_per_token = w->dp->tsc_hz / DP_NACK_PER_S;
	uint64_t earned = (now_tsc - ing->nack_refill_tsc) / tsc_per_token;

	if (earned > 0) {
		ing->nack_tokens = RTE_MIN(ing->nack_tokens + earned, ing->nack_burst);
		ing->nack_refill_tsc += earned * tsc_per_token;
	}
	if (ing->nack_tokens == 0) {
		dp_count(w, DP_NACKS_SUPPRESSED, 1);
		return false;
	}
	ing->nack_tokens--;
	return true;
}

static_assert(DP_TCP_ANSWER_MAX >= DP_UDP_PAYLOAD_MAX, "TCP reserves room for any answer");

/*
 * An answer on a TCP connection, into its send buffer: with every run when
 * the buffer has room (a 500-record frame's ACK is up to 8 KiB), else without
 * detail, which the room reserved when the frame came always holds.
 */
static void
dp_ingest_send_tcp(struct dp_worker *w, const struct dp_peer *peer, const struct frame_ack *ack)
{
	static_assert(FRAME_ACK_SIZE_MAX <= 16384, "an answer fits the stack buffer");
	uint8_t bytes[FRAME_ACK_SIZE_MAX];
	int size = frame_ack_encode(bytes, sizeof(bytes), ack, false);
	int rc;

	if (size <= 0) {
		dp_tcp_unanswered(&w->tcp, peer->tcp_conn, peer->tcp_gen);
		dp_count(w, DP_NACKS_SUPPRESSED, 1);
		return;
	}
	rc = dp_tcp_answer(&w->tcp, peer->tcp_conn, peer->tcp_gen, bytes, (uint32_t)size);
	if (rc == -ENOSPC) {
		struct frame_ack short_ack = dp_ingest_ack_without_detail(ack);

		size = frame_ack_encode(bytes, DP_TCP_ANSWER_MAX, &short_ack, false);
		assert(size > 0);
		rc = dp_tcp_answer(&w->tcp, peer->tcp_conn, peer->tcp_gen, bytes, (uint32_t)size);
	}
	if (rc != 0)
		return; /* The connection is gone (counted): the dedup window remembers. */
	dp_count(w, ack->type == FRAME_TYPE_ACK ? DP_ACKS_SENT : DP_NACKS_SENT, 1);
}

struct frame_ack
dp_ingest_ack_without_detail(const struct frame_ack *ack)
{
	struct frame_ack short_ack = *ack;

	short_ack.flags |= FRAME_F_NO_DETAIL;
	short_ack.run_count = 0;
	short_ack.runs = NULL;
	return short_ack;
}

static void
dp_ingest_send(struct dp_worker *w, const struct dp_peer *peer, const struct frame_ack *ack)
{
	uint8_t *payload;
	struct rte_mbuf *m;
	struct frame_ack paced;
	int size;

	if (peer->kernel) {
		dp_kernel_send(w, peer, ack); /* backend = kernel: sockets (dp_kernel.c). */
		return;
	}
	if (peer->tcp) {
		/* TCP paces itself through its window: no credit hint. */
		dp_ingest_send_tcp(w, peer, ack);
		return;
	}
	paced = *ack;
	paced.credit_size = dp_ingest_credit(w->ingest.frame_free_count, w->rx_full_streak);
	m = dp_net_udp_alloc(w, peer, DP_UDP_PAYLOAD_MAX, &payload);
	if (m == NULL)
		return;
	size = frame_ack_encode(payload, DP_UDP_PAYLOAD_MAX, &paced, false);
	if (size <= 0) {
		/* Only a NACK echoing a lying frame's fields can get here: drop it. */
		rte_pktmbuf_free(m);
		dp_count(w, DP_NACKS_SUPPRESSED, 1);
		return;
	}
	dp_net_udp_finish(m, (uint16_t)size);
	dp_worker_tx(w, m);
	dp_count(w, ack->type == FRAME_TYPE_ACK ? DP_ACKS_SENT : DP_NACKS_SENT, 1);
}

static void
dp_ingest_nack_record(struct dp_worker *w, const struct dp_peer *peer,
		      const struct frame_records *fr, enum frame_status status,
		      uint16_t record_index, uint64_t now_tsc)
{
	dp_ingest_nack_send(w, peer, fr, status, record_index, NULL, now_tsc);
}

/* A NACK; `redirect` (status NOT_LEADER only) names the shard's leader. */
static void
dp_ingest_nack_send(struct dp_worker *w, const struct dp_peer *peer,
		    const struct frame_records *fr, enum frame_status status,
		    uint16_t record_index, const struct frame_redirect *redirect, uint64_t now_tsc)
{
	struct frame_ack nack = {
		.producer_id = fr->producer_id,
		.batch_seq = fr->batch_seq,
		.producer_epoch = fr->producer_epoch,
		.credit_size = FRAME_CREDIT_UNLIMITED,
		/* A count out of range cannot be echoed (section 4: NACK 0 .. 500): 0. */
		.record_count = fr->record_count <= FRAME_RECORDS_MAX ? fr->record_count : 0,
		.record_index = record_index,
		.type = FRAME_TYPE_NACK,
		.status = (uint8_t)status,
	};

	if (status == FRAME_STATUS_THROTTLED || status == FRAME_STATUS_INTERNAL)
		nack.retry_after_ms = DP_NACK_RETRY_MS;
	if (redirect != NULL)
		nack.redirect = *redirect;
	dp_ingest_sign(w, &nack, fr->verified_key);
	/*
	 * A TCP peer passed a handshake (no spoofed source to reflect at) and
	 * TCP's flow control paces it: its NACKs are not rate limited, and it
	 * is owed every answer.
	 */
	if (peer->tcp || dp_ingest_nack_allowed(w, now_tsc))
		dp_ingest_send(w, peer, &nack);
}

static void
dp_ingest_nack(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
	       enum frame_status status, uint64_t now_tsc)
{
	dp_ingest_nack_record(w, peer, fr, status, FRAME_RECORD_INDEX_NONE, now_tsc);
}

/* Refuses a frame that was not stored: NACK (rate limited) and forget its window entry. */
static void
dp_ingest_refuse(struct dp_worker *w, const struct dp_peer *peer, const struct frame_records *fr,
		 enum frame_status status, bool reserved, uint64_t now_tsc)
{
	if (reserved) {
		struct frame_dedup *d;

		rte_spinlock_lock(&w->dp->dedup_lock);
		d = dp_dedup_find(&w->dp->dedup, fr->producer_id);
		if (d != NULL)
			frame_dedup_abort(d, fr->producer_epoch, fr->batch_seq);
		rte_spinlock_unlock(&w->dp->dedup_lock);
	}
	if (frame_records_ack_mode(fr) != FRAME_ACK_NONE)
		dp_ingest_nack(w, peer, fr, status, now_tsc);
}

/* ---- Completions -> answers ---------------------------------------------- */

/* Runs: consecutive records of the frame in one shard with consecutive sequence numbers. */
static uint16_t
dp_ingest_runs(struct dp_worker *w, const struct dp_frame_slot *f)
{
	struct frame_ack_run *runs = w->ingest.runs;
	uint16_t count = 0;

	for (uint32_t i = 0; i < f->record_count; i++) {
		const struct dp_record_result *r = &f->results[i];
		struct frame_ack_run *last = count > 0 ? &runs[count - 1] : NULL;

		if (last != NULL && last->shard_index == r->shard_index &&
		    last->seq_first + last->count == r->seq) {
			last->count++;
			continue;
		}
		runs[count].seq_first = r->seq;
		runs[count].shard_index = r->shard_index;
		runs[count].count = 1;
		count++;
	}
	return count;
}

/*
 * A frame that failed: with nothing of it stored, a retry is safe (the
 * window forgets it); with any record durable, a retry would store those
 * again, so the outcome is final and unknown to the producer (NACK
 * SEQUENCE_OLD, which the window replays to every retry).
 */
static void
dp_ingest_frame_failed(const struct dp_frame_slot *f, struct frame_dedup *d,
		       struct frame_ack *ack)
{
	ack->type = FRAME_TYPE_NACK;
	ack->flags = 0;
	/*
	 * -ESTALE (cluster mode): this node's leadership of a shard of the frame ended
	 * before the replicas held it, so it is not acknowledged here; the producer
	 * resends it, and this node redirects it to the new leader. Whatever of it this
	 * node stored may live on there too: docs/PROTOCOL.md section 5, "Redirects".
	 */
	if (f->records_stored > 0 && f->error != -ESTALE) {
		ack->status = FRAME_STATUS_SEQUENCE_OLD;
		if (d != NULL)
			frame_dedup_fail(d, f->epoch, f->batch_seq, f->record_count,
					 FRAME_STATUS_SEQUENCE_OLD);
		return;
	}
	/* -EPIPE: a reshard closed the shard; the retry routes to a child. */
	ack->status = f->error == -ENOSPC || f->error == -EPIPE || f->error == -ESTALE ?
		      FRAME_STATUS_THROTTLED : FRAME_STATUS_INTERNAL;
	ack->retry_after_ms = DP_NACK_RETRY_MS;
	if (d != NULL)
		frame_dedup_abort(d, f->epoch, f->batch_seq);
}

/*
 * Cluster mode: do the replicas [cluster] acks asks for hold every record of the
 * frame (durable here)? 1 yes, 0 not yet, -ESTALE when a shard of it is no longer
 * led here (never acknowledge: the frame is NACKed for a retry).
 */
static int
dp_ingest_replicated(struct dp_worker *w, const struct dp_frame_slot *f)
{
	const struct dp_cluster *c = w->dp->config.cluster;
	uint16_t run_count = dp_ingest_runs(w, f);

	for (uint16_t i = 0; i < run_count; i++) {
		const struct frame_ack_run *run = &w->ingest.runs[i];
		uint64_t acked = 0;

		if (c->acked(c->ctx, LOG_SHARD_ID(f->stream_id, run->shard_index), &acked) != 0)
			return -ESTALE;
		if (acked < run->seq_first + run->count)
			return 0;
	}
	return 1;
}

static void dp_ingest_frame_answer(struct dp_worker *w, uint32_t slot);

/*
 * Every record of the frame is done in the local log. Single node, or a failure:
 * answer now. Cluster mode: answer once the replicas hold it, else wait on the
 * replicating list (dp_ingest_replication_poll) in the frame's slot.
 */
static void
dp_ingest_frame_done(struct dp_worker *w, uint32_t slot)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_frame_slot *f = &ing->frames[slot];
	int rc;

	if (w->dp->config.cluster == NULL || f->error != 0) {
		dp_ingest_frame_answer(w, slot);
		return;
	}
	rc = dp_ingest_replicated(w, f);
	if (rc == 0) {
		dp_count(w, DP_FRAMES_REPLICATING, 1);
		assert(ing->replicating_count < DP_FRAME_SLOTS);
		ing->replicating[ing->replicating_count++] = slot;
		return;
	}
	if (rc < 0) {
		dp_count(w, DP_FRAMES_LEADERSHIP_LOST, 1);
		f->error = rc;
	}
	dp_ingest_frame_answer(w, slot);
}

/*
 * The doorbell moved: the frames waiting for replicas that they now cover are
 * answered (ACK), those whose leadership ended NACKed. On a DPDK port no more than
 * the TX backlog holds; the rest (and the doorbell) are looked at next pass.
 */
static uint32_t
dp_ingest_replication_poll(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;
	const struct dp_cluster *c = w->dp->config.cluster;
	uint32_t room = w->kernel != NULL ? DP_FRAME_SLOTS : dp_worker_tx_room(w);
	uint32_t answered = 0;
	uint32_t kept = 0;
	uint64_t gen;

	if (ing->replicating_count == 0)
		return 0;
	gen = atomic_load_explicit(c->acked_gen, memory_order_acquire);
	if (gen == ing->acked_gen_seen &&
	    ing->now_tsc - ing->replication_check_tsc <
	    (uint64_t)DP_REPLICATION_RECHECK_MS * w->dp->tsc_hz / 1000u)
		return 0;
	ing->replication_check_tsc = ing->now_tsc;
	for (uint32_t i = 0; i < ing->replicating_count; i++) {
		uint32_t slot = ing->replicating[i];
		struct dp_frame_slot *f = &ing->frames[slot];
		int rc = answered < room ? dp_ingest_replicated(w, f) : 0;

		if (rc == 0) {
			ing->replicating[kept++] = slot;
			continue;
		}
		if (rc < 0) {
			dp_count(w, DP_FRAMES_LEADERSHIP_LOST, 1);
			f->error = rc;
		}
		dp_ingest_frame_answer(w, slot);
		answered++;
	}
	ing->replicating_count = kept;
	if (answered < room)
		ing->acked_gen_seen = gen;  /* Else: not all were looked at; again next pass. */
	return answered;
}

/* The frame's ACK (or NACK, when it failed), and its slot back. */
static void
dp_ingest_frame_answer(struct dp_worker *w, uint32_t slot)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_frame_slot *f = &ing->frames[slot];
	uint64_t waited = ing->now_tsc > f->admit_tsc ? ing->now_tsc - f->admit_tsc : 0;

	ing->wait_min_tsc = RTE_MIN(ing->wait_min_tsc, waited);
	bool dedup = f->producer_id != 0 && !w->dp->config.bench_no_dedup;
	struct frame_dedup *d = NULL;
	struct frame_ack ack = {
		.producer_id = f->producer_id,
		.batch_seq = f->batch_seq,
		.producer_epoch = f->epoch,
		.credit_size = FRAME_CREDIT_UNLIMITED,
		.record_count = f->record_count,
		.record_index = FRAME_RECORD_INDEX_NONE,
		.type = FRAME_TYPE_ACK,
		.status = FRAME_STATUS_OK,
		.flags = FRAME_ACK_DURABLE,
	};

	/* The window is shared with the other workers: its update and the answer it decides. */
	if (dedup) {
		rte_spinlock_lock(&w->dp->dedup_lock);
		d = dp_dedup_find(&w->dp->dedup, f->producer_id);
	}
	if (f->error != 0) {
		dp_ingest_frame_failed(f, d, &ack);
	} else {
		ack.run_count = dp_ingest_runs(w, f);
		ack.runs = ing->runs;
		if (d != NULL)
			frame_dedup_complete(d, f->epoch, &ack);
		/* A datagram's answer fits one datagram; TCP decides by its buffer's room. */
		if (!f->peer.tcp &&
		    FRAME_ACK_HEADER_SIZE + (uint32_t)ack.run_count * FRAME_ACK_RUN_SIZE +
		    (f->sign_key != NULL ? FRAME_AUTH_SIZE : 0) > DP_UDP_PAYLOAD_MAX) {
			ack.flags |= FRAME_F_NO_DETAIL;
			ack.run_count = 0;
			ack.runs = NULL;
		}
	}
	if (dedup)
		rte_spinlock_unlock(&w->dp->dedup_lock);
	dp_ingest_sign(w, &ack, f->sign_key);
	dp_ingest_send(w, &f->peer, &ack);
	ing->frame_free[ing->frame_free_count++] = slot;
}

/* Records' outcome into their frame; the frame's last ones answer the frame. */
static void
dp_ingest_record_done(struct dp_worker *w, const struct dp_record_done *done)
{
	struct dp_record_ref ref = done->ref;
	struct dp_frame_slot *f;

	if (ref.frame_slot == DP_REF_NO_ACK)
		return;
	assert(ref.frame_slot < DP_FRAME_SLOTS);
	f = &w->ingest.frames[ref.frame_slot];
	assert(ref.count > 0 && (uint32_t)ref.record_index + ref.count <= f->record_count);
	assert(f->records_left >= ref.count);
	for (uint32_t k = 0; k < ref.count; k++) {
		f->results[ref.record_index + k].seq = done->error == 0 ? done->seq + k : 0;
		f->results[ref.record_index + k].shard_index = LOG_SHARD_INDEX(done->shard_id);
	}
	if (done->error != 0 && f->error == 0)
		f->error = done->error;
	if (done->error == 0)
		f->records_stored = (uint16_t)(f->records_stored + ref.count);
	f->records_left = (uint16_t)(f->records_left - ref.count);
	if (f->records_left == 0)
		dp_ingest_frame_done(w, ref.frame_slot);
}

/* Finished batches -> their records' outcomes -> frame bookkeeping -> ACKs and NACKs. */
static uint32_t
dp_ingest_completions(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;
	/*
	 * A record done owes at most one ACK: on a DPDK port, take no more than the TX
	 * backlog can hold (the kernel backend's answers go out through its sockets).
	 */
	uint32_t room = w->kernel != NULL ? DP_RECORDS_DONE_MAX :
			RTE_MIN(dp_worker_tx_room(w), (uint32_t)DP_RECORDS_DONE_MAX);
	uint32_t count;

	if (room < DP_BATCH_REFS_MAX)
		return 0; /* The device is not taking answers: the log's ring holds them. */
	count = dp_stage_completions(w, ing->done, room);

	for (uint32_t i = 0; i < count; i++)
		dp_ingest_record_done(w, &ing->done[i]);
	return count;
}

/*
 * Arrival stamps of the next pass: one per pass, not per record, taken from
 * the TSC and re-read from the system clock once a second (a clock_gettime
 * per pass was 13-25% of a worker's profile on net_tap).
 */
static void
dp_ingest_clock(struct dp_worker *w, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;
	uint64_t hz = w->dp->tsc_hz;

	if (now_tsc - ing->real_base_tsc >= hz) {
		ing->real_base_ns = clock_real_ns();
		ing->real_base_tsc = now_tsc;
	}
	ing->now_real_ns = ing->real_base_ns + (now_tsc - ing->real_base_tsc) * 1000000000u / hz;
}

/*
 * Admission by age (admit_wait_ms), once an interval: behind when the fastest
 * durable ACK of the interval waited too long; with no ACK in it, still behind while
 * frames wait, no longer once none does.
 */
static void
dp_ingest_admit_update(struct dp_worker *w, uint64_t now_tsc)
{
	struct dp_ingest *ing = &w->ingest;

	if (now_tsc - ing->admit_interval_start < ing->admit_interval_tsc)
		return;
	if (ing->wait_min_tsc != UINT64_MAX)
		ing->behind = ing->wait_min_tsc > ing->admit_wait_tsc;
	else if (ing->frame_free_count == DP_FRAME_SLOTS)
		ing->behind = false;
	ing->wait_min_tsc = UINT64_MAX;
	ing->admit_interval_start = now_tsc;
}

uint32_t
dp_ingest_poll(struct dp_worker *w, uint64_t now_tsc)
{
	uint32_t work;

	w->ingest.now_tsc = now_tsc;
	work = dp_ingest_completions(w);
	if (w->dp->config.cluster != NULL)
		work += dp_ingest_replication_poll(w);
	work += dp_stage_flush(w, now_tsc, false);
	work += dp_stage_refill(w);
	dp_ingest_clock(w, now_tsc);
	dp_ingest_admit_update(w, now_tsc);
	return work;
}

bool
dp_ingest_is_idle(const struct dp_worker *w)
{
	const struct dp_ingest *ing = &w->ingest;

	/*
	 * Batches in flight do not keep a worker awake: their completions wait in
	 * the producer ring; a DPDK worker's nap ends on the producer's eventfd,
	 * the kernel backend's ACK may be up to idle_sleep_us late (production
	 * polls flat out: idle_polls = 0).
	 */
	return ing->open_count == 0 && ing->retry_count == 0 && ing->failed_count == 0;
}

uint32_t
dp_ingest_drain(struct dp_worker *w)
{
	uint64_t deadline = rte_rdtsc() + (uint64_t)DP_STOP_DRAIN_MS * w->dp->tsc_hz / 1000u;

	dp_stage_flush(w, rte_rdtsc(), true);
	while ((!dp_ingest_is_idle(w) || w->ingest.in_flight > 0) && rte_rdtsc() < deadline) {
		dp_stage_refill(w);
		dp_ingest_completions(w);
		dp_worker_tx_flush(w);
		rte_delay_us_sleep(50);
	}
	/* A frame slot is taken from a frame's acceptance until its answer is sent. */
	return DP_FRAME_SLOTS - w->ingest.frame_free_count;
}

/* ---- Start and stop ------------------------------------------------------ */

/*
 * A producer id's window may go to a new id after this long without a frame:
 * longer than any retry or signed replay (auth_window_ms) can come late.
 */
int
dp_ingest_init(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;
	struct dp_record_result *results;
	int rc;

	ing->batch_age_tsc = (uint64_t)w->dp->config.batch_age_us * w->dp->tsc_hz / 1000000u;
	ing->nack_burst = RTE_MAX(RTE_MAX((uint64_t)DP_NACK_BURST_MIN,
					  2u * (uint64_t)w->dp->config.ring_size),
				  (uint64_t)DP_NACK_PER_S * DP_NACK_STALL_MS / 1000u);
	ing->nack_tokens = ing->nack_burst;
	ing->nack_refill_tsc = rte_rdtsc();
	ing->admit_wait_tsc = (uint64_t)w->dp->config.admit_wait_ms * w->dp->tsc_hz / 1000u;
	ing->admit_interval_tsc = (uint64_t)DP_ADMIT_INTERVAL_MS * w->dp->tsc_hz / 1000u;
	ing->admit_interval_start = rte_rdtsc();
	ing->now_tsc = ing->admit_interval_start;
	ing->wait_min_tsc = UINT64_MAX;
	ing->real_base_ns = clock_real_ns();
	ing->real_base_tsc = rte_rdtsc();
	ing->now_real_ns = ing->real_base_ns;
	ing->frames = calloc(DP_FRAME_SLOTS, sizeof(*ing->frames));
	results = calloc((size_t)DP_FRAME_SLOTS * DP_FRAME_RECORDS_MAX, sizeof(*results));
	ing->frame_free = calloc(DP_FRAME_SLOTS, sizeof(uint32_t));
	ing->frame_shards = calloc(DP_HELD_RECORDS, sizeof(uint64_t));
	ing->runs = calloc(DP_FRAME_RECORDS_MAX, sizeof(*ing->runs));
	ing->done = calloc(DP_RECORDS_DONE_MAX, sizeof(*ing->done));
	ing->held = calloc(DP_HELD_FRAMES, sizeof(*ing->held));
	ing->shards_seen = calloc(DP_SHARDS_SEEN_SIZE, sizeof(*ing->shards_seen));
	ing->replicating = calloc(DP_FRAME_SLOTS, sizeof(uint32_t));
	if (ing->frames == NULL || results == NULL || ing->frame_free == NULL ||
	    ing->frame_shards == NULL || ing->runs == NULL || ing->done == NULL ||
	    ing->held == NULL || ing->shards_seen == NULL || ing->replicating == NULL) {
		free(results);
		dp_ingest_fini(w);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < DP_FRAME_SLOTS; i++) {
		ing->frames[i].results = results + (size_t)i * DP_FRAME_RECORDS_MAX;
		ing->frame_free[i] = DP_FRAME_SLOTS - 1 - i;
	}
	ing->frame_free_count = DP_FRAME_SLOTS;
	rc = dp_hash_init(&ing->hash);
	if (rc != 0) {
		dp_ingest_fini(w);
		return rc;
	}
	rc = dp_stage_init(w);
	if (rc != 0)
		dp_ingest_fini(w);
	return rc;
}

void
dp_ingest_fini(struct dp_worker *w)
{
	struct dp_ingest *ing = &w->ingest;

	dp_stage_fini(w);
	if (ing->frames != NULL)
		free(ing->frames[0].results);
	free(ing->frames);
	free(ing->frame_free);
	dp_hash_fini(&ing->hash);
	free(ing->frame_shards);
	free(ing->runs);
	free(ing->done);
	free(ing->held);
	free(ing->shards_seen);
	free(ing->replicating);
	memset(ing, 0, sizeof(*ing));
}
