/*
 * kinesis_records.c - PutRecord and PutRecords. Records are routed to their
 * shard, packed per shard into log batches and submitted through the one
 * log_producer this module owns. The call waits in the pending table (slot
 * index in the cookie's high half, batch number in the low half) and is
 * answered from kinesis_poll() once every batch is durable, so a 200 means
 * durable. A call starts only when a pending slot and every batch it can need
 * are free; until then it waits, in arrival order, and is re-run from its
 * request when completions free them (kinesis_put_retry). Only past the wait
 * budget ([server] put_queue_mb of request bodies) is a call answered
 * ProvisionedThroughputExceededException (SDKs retry it), as is -ENOSPC.
 * (Before, 256 batches and no waiting refused a PutRecords to 500 shards on an
 * idle server, and ~40 % of calls from 256 clients: issue 14, finding 6.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/diag.h"
#include "common/record_wire.h"
#include "control/forward.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/seqnum.h"
#include "nvme-log/log.h"

#define KINESIS_COMPLETIONS_BURST 64u

static struct kinesis_pending *
kinesis_pending_get(struct kinesis *k, uint32_t *slot_out)
{
	for (uint32_t i = 0; i < KINESIS_PENDING_MAX; i++) {
		if (k->pending[i].call == NULL) {
			*slot_out = i;
			return &k->pending[i];
		}
	}
	return NULL;
}

/* Optional per-shard write limits (1 MiB/s, 1000 records/s) over one-second windows. */
static bool
kinesis_throttle_write(struct kinesis *k, struct kinesis_shard *sh, uint64_t now_s,
		       uint64_t bytes)
{
	if (!k->config.shard_throttling)
		return true;
	if (sh->window_s != now_s) {
		sh->window_s = now_s;
		sh->window_records = 0;
		sh->window_bytes = 0;
	}
	if (sh->window_records + 1 > 1000 || sh->window_bytes + bytes > 1024 * 1024)
		return false;
	sh->window_records++;
	sh->window_bytes += bytes;
	return true;
}

static void
kinesis_put_error_message(const struct kinesis *k, const struct kinesis_pending *p,
			  const struct kinesis_put_result *r, char *buf, size_t size)
{
	char shard_id[KINESIS_SHARD_ID_SIZE];

	kinesis_shard_id_format(r->shard_index, shard_id);
	if (r->error == -ENOSPC || r->error == -EPIPE)
		snprintf(buf, size, "Rate exceeded for shard %s in stream %s under account %s.",
			 shard_id, p->stream_name, k->config.account_id);
	else
		snprintf(buf, size, "Internal service failure.");
}

static void
kinesis_put_record_reply(struct kinesis *k, struct kinesis_pending *p)
{
	const struct kinesis_put_result *r = &p->results[0];
	char message[1024];

	if (r->error == 0) {
		char shard_id[KINESIS_SHARD_ID_SIZE];
		char seq[SEQNUM_DECIMAL_SIZE];
		struct seqnum sn = {
			.shard_created_s = r->shard_created_s, .shard_index = r->shard_index,
			.seq = r->seq, .put_s = r->put_s,
		};

		kinesis_shard_id_format(r->shard_index, shard_id);
		seqnum_format(&sn, seq);
		/* AWS adds EncryptionType only for an encrypted stream (KMS), never NONE. */
		api_out_printf(api_call_out(p->call), "{\"ShardId\":\"%s\",\"SequenceNumber\":\"%s\"%s}",
			       shard_id, seq, kinesis_put_encryption_member(p->encrypted));
		api_call_reply(p->call, 200);
		return;
	}
	if (r->error != -ENOSPC && r->error != -EPIPE) {
		kinesis_internal_error(p->call);
		return;
	}
	kinesis_put_error_message(k, p, r, message, sizeof(message));
	kinesis_error(p->call, "ProvisionedThroughputExceededException", "%s", message);
}

/*
 * The last sequence number written per shard in a PutRecords reply (slots
 * by shard index): a shard's records in one request have consecutive
 * numbers, so seqnum_format_next adds 2^80 to the previous text instead of
 * converting the 188-bit number (the full conversion was 16 % of the
 * server's time in PutRecords under perf). A slot shared by two shards
 * just converts.
 */
#define KINESIS_REPLY_SEQ_SLOTS 8u

struct kinesis_reply_seq {
	bool valid;
	struct seqnum sn;
	char text[SEQNUM_DECIMAL_SIZE];
	size_t size;
};

static void
kinesis_put_records_reply(struct kinesis *k, struct kinesis_pending *p)
{
	struct kinesis_reply_seq last[KINESIS_REPLY_SEQ_SLOTS] = { 0 };
	struct api_out *out = api_call_out(p->call);
	uint32_t failed = 0;

	for (uint32_t i = 0; i < p->record_count; i++)
		failed += p->results[i].error != 0;
	api_out_printf(out, "{\"FailedRecordCount\":%u,\"Records\":[", failed);
	for (uint32_t i = 0; i < p->record_count; i++) {
		const struct kinesis_put_result *r = &p->results[i];
		char text[SEQNUM_DECIMAL_SIZE + 1024];

		if (r->error != 0) {
			kinesis_put_error_message(k, p, r, text, sizeof(text));
			api_out_printf(out, "%s{\"ErrorCode\":\"%s\",\"ErrorMessage\":\"%s\"}",
				       i > 0 ? "," : "", r->error == -ENOSPC || r->error == -EPIPE ?
				       "ProvisionedThroughputExceededException" : "InternalFailure",
				       text);
			continue;
		}
		struct seqnum sn = {
			.shard_created_s = r->shard_created_s, .shard_index = r->shard_index,
			.seq = r->seq, .put_s = r->put_s,
		};
		struct kinesis_reply_seq *ls = &last[r->shard_index % KINESIS_REPLY_SEQ_SLOTS];
		size_t n = 0;

		/* Assembled by hand: 500 of these per request. */
		if (i > 0)
			text[n++] = ',';
		memcpy(text + n, "{\"SequenceNumber\":\"", 19);
		n += 19;
		ls->size = seqnum_format_next(ls->valid ? &ls->sn : NULL, ls->text, ls->size, &sn,
					      ls->text);
		ls->sn = sn;
		ls->valid = true;
		memcpy(text + n, ls->text, ls->size);
		n += ls->size;
		memcpy(text + n, "\",\"ShardId\":\"", 13);
		n += 13;
		kinesis_shard_id_format(r->shard_index, text + n);
		n += KINESIS_SHARD_ID_SIZE - 1;
		memcpy(text + n, "\"}", 2);
		api_out_append(out, text, n + 2);
	}
	api_out_printf(out, "]%s}", kinesis_put_encryption_member(p->encrypted));
	api_call_reply(p->call, 200);
}

/*
 * Shard-level series of one answered PutRecord(s), when the stream still exists
 * with enhanced monitoring on: one recording per record (each names its shard).
 */
static void
kinesis_put_shard_metrics(struct kinesis *k, const struct kinesis_pending *p,
			  const struct metrics_stream_ref *ref)
{
	struct kinesis_stream *s = &k->streams[p->stream_slot];

	if (!s->used || s->stream_id != p->stream_id || s->shard_metrics == 0)
		return;
	for (uint32_t i = 0; i < p->record_count; i++) {
		const struct kinesis_put_result *r = &p->results[i];
		struct metrics_shard_add add = {
			.shard_index = r->shard_index, .enabled = s->shard_metrics,
			.incoming_records = r->error == 0,
			.incoming_bytes = r->error == 0 ? r->data_size : 0,
			.write_exceeded = r->error == -ENOSPC || r->error == -EPIPE,
		};

		kinesis_shard_metrics(s, ref, &add);
	}
}

/* The stream's CloudWatch-named counters for one answered PutRecord(s). */
static void
kinesis_put_metrics(struct kinesis *k, const struct kinesis_pending *p)
{
	struct metrics_stream_ref ref = {
		.slot = p->stream_slot, .stream_id = p->stream_id, .name = p->stream_name,
	};
	struct metrics_put put = { .put_records = p->put_records };

	if (!metrics_enabled())
		return;
	put.latency_ns = clock_mono_ns() - p->started_ns;
	for (uint32_t i = 0; i < p->record_count; i++) {
		const struct kinesis_put_result *r = &p->results[i];

		if (r->error == 0) {
			put.records_ok++;
			put.bytes_ok += r->data_size;
			continue;
		}
		put.records_failed++;
		put.records_throttled += r->error == -ENOSPC || r->error == -EPIPE;
	}
	metrics_stream_put(&ref, &put);
	kinesis_put_shard_metrics(k, p, &ref);
}

/* A key error on any record (the log refused the stream's key): the whole call's answer. */
static int
kinesis_put_kms_errno(const struct kinesis_pending *p)
{
	for (uint32_t i = 0; i < p->record_count; i++)
		if (kinesis_kms_errno(p->results[i].error))
			return p->results[i].error;
	return 0;
}

static void
kinesis_pending_finish(struct kinesis *k, struct kinesis_pending *p)
{
	int kms = kinesis_put_kms_errno(p);

	kinesis_put_metrics(k, p);
	if (kms != 0)
		kinesis_kms_error(p->call, kms, p->key_ref);
	else if (p->put_records)
		kinesis_put_records_reply(k, p);
	else
		kinesis_put_record_reply(k, p);
	p->call = NULL;
	k->pending_count--;
}

/*
 * Cluster mode: whether the replicas [cluster] acks asks for hold every record
 * of the call. A record whose shard is no longer led here (-ESTALE, -ENOENT)
 * fails as throttled (-EPIPE): a new leader takes the retry (docs/CLUSTER.md
 * says why ProvisionedThroughputExceeded: every SDK retries it with back-off,
 * which covers a failover; the record may still be kept, so a retry can
 * duplicate it, as any Kinesis retry can).
 */
static bool
kinesis_put_replicated(struct kinesis *k, struct kinesis_pending *p)
{
	uint64_t acked_log_id = UINT64_MAX;
	uint64_t acked = 0;
	int rc = 0;

	for (uint32_t i = 0; i < p->record_count; i++) {
		struct kinesis_put_result *r = &p->results[i];

		if (r->error != 0 || r->forwarded)
			continue;
		/* A call's records of one shard are consecutive in results[] mostly: ask once. */
		if (r->log_id != acked_log_id) {
			acked_log_id = r->log_id;
			rc = k->repl.acked(k->repl.ctx, r->log_id, &acked);
		}
		if (rc != 0)
			r->error = -EPIPE;
		else if (acked <= r->seq)
			return false;
	}
	return true;
}

void
kinesis_pending_durable(struct kinesis *k, struct kinesis_pending *p)
{
	if (k->repl.acked != NULL && !kinesis_put_replicated(k, p)) {
		p->replicating = true;
		k->replicating++;
		return;
	}
	kinesis_pending_finish(k, p);
}

/* The doorbell rang (or a tick): answer the waiting calls the replicas now cover. */
static void
kinesis_put_replication_poll(struct kinesis *k)
{
	uint64_t drain;

	if (k->repl.acked == NULL)
		return;
	/*
	 * Reset before looking (a ring after this read is seen by the next poll), and
	 * always: the server's loop waits level-triggered on it.
	 */
	if (read(k->repl.doorbell_fd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
		diag_debug("kinesis", "replication doorbell: %s", strerror(errno));
	for (uint32_t i = 0; i < KINESIS_PENDING_MAX && k->replicating > 0; i++) {
		struct kinesis_pending *p = &k->pending[i];

		if (p->call == NULL || !p->replicating || !kinesis_put_replicated(k, p))
			continue;
		p->replicating = false;
		k->replicating--;
		kinesis_pending_finish(k, p);
	}
}

int
kinesis_replication_set(struct kinesis *k, const struct kinesis_replication *repl)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };

	if (repl == NULL) {
		if (k->repl.acked != NULL)
			epoll_ctl(k->wake_fd, EPOLL_CTL_DEL, k->repl.doorbell_fd, NULL);
		if (k->repl.forward != NULL)
			epoll_ctl(k->wake_fd, EPOLL_CTL_DEL, forward_doorbell_fd(k->repl.forward), NULL);
		memset(&k->repl, 0, sizeof(k->repl));
		return 0;
	}
	if (epoll_ctl(k->wake_fd, EPOLL_CTL_ADD, repl->doorbell_fd, &ev) != 0)
		return -errno;
	/* The forwarder's answers wake the loop as the replicas' acknowledgements do. */
	if (repl->forward != NULL &&
	    epoll_ctl(k->wake_fd, EPOLL_CTL_ADD, forward_doorbell_fd(repl->forward), &ev) != 0) {
		int err = -errno;

		epoll_ctl(k->wake_fd, EPOLL_CTL_DEL, repl->doorbell_fd, NULL);
		return err;
	}
	k->repl = *repl;
	return 0;
}

static void
kinesis_put_complete(struct kinesis *k, const struct log_completion *c)
{
	uint32_t slot = (uint32_t)(c->cookie >> 32);
	uint32_t batch_no = (uint32_t)c->cookie;
	struct kinesis_pending *p;

	assert(slot < KINESIS_PENDING_MAX);
	p = &k->pending[slot];
	assert(p->call != NULL && p->batches_left > 0);
	assert(batch_no < p->batch_count);
	/* The batch's records are consecutive in p->batched, from its first one. */
	for (uint32_t j = p->batch_first[batch_no]; j < p->batched_count; j++) {
		struct kinesis_put_result *r = &p->results[p->batched[j]];

		if (r->batch_no != batch_no)
			break;
		if (r->done)
			continue;
		r->done = true;
		/* -ESTALE: a newer leader was promised here first; throttled, so it is retried. */
		r->error = c->error == -ESTALE ? -EPIPE : c->error;
		r->seq = c->seq_first + r->batch_pos;
		if (r->error == 0 && (r->seq > SEQNUM_SEQ_MAX || r->batch_pos >= c->record_count))
			r->error = -EIO;
	}
	/* Cluster mode: the replica leader ships at once, not at its fallback tick. */
	if (c->error == 0 && k->repl.durable != NULL)
		k->repl.durable(k->repl.ctx, c->shard_id, c->seq_first + c->record_count);
	/* -EPIPE: a reshard closed the shard first; answered as throttled, so it is retried. */
	if (c->error != 0 && c->error != -ENOSPC && c->error != -EPIPE && c->error != -ESTALE)
		diag_warn("kinesis", "append to shard %llx failed: %s",
			  (unsigned long long)c->shard_id, strerror(-c->error));
	if (--p->batches_left == 0 && p->forwards_left == 0)
		kinesis_pending_durable(k, p);
}

static void kinesis_put_retry(struct kinesis *k);

void
kinesis_put_poll(struct kinesis *k)
{
	struct log_completion done[KINESIS_COMPLETIONS_BURST];
	uint32_t n;

	do {
		n = log_completions_poll(k->producer, done, KINESIS_COMPLETIONS_BURST);
		for (uint32_t i = 0; i < n; i++)
			kinesis_put_complete(k, &done[i]);
	} while (n == KINESIS_COMPLETIONS_BURST);
	kinesis_forward_poll(k);
	kinesis_put_replication_poll(k);
	kinesis_put_retry(k);
}

/* ---- Submission ----------------------------------------------------------- */

/* Marks every not-yet-submitted record of the open batch as failed with `error`. */
static void
kinesis_batch_fail(struct kinesis_pending *p, int error)
{
	/* The open batch holds records (empty ones are never submitted): the last ones batched. */
	for (uint32_t j = p->batch_first[p->batch_count]; j < p->batched_count; j++) {
		struct kinesis_put_result *r = &p->results[p->batched[j]];

		if (!r->done && r->error == 0 && r->batch_no == p->batch_count) {
			r->error = error;
			r->done = true;
		}
	}
}

static void
kinesis_batch_flush(struct kinesis *k, struct kinesis_pending *p, uint32_t slot,
		    struct log_batch **batch, uint64_t log_id, uint64_t epoch)
{
	uint64_t cookie = (uint64_t)slot << 32 | p->batch_count;
	int rc;

	if (*batch == NULL)
		return;
	if (log_batch_record_count(*batch) == 0) {
		log_batch_put(k->producer, *batch);
		*batch = NULL;
		return;
	}
	/* Cluster mode: in the epoch led (kinesis_put_leads), fenced by the log's promise. */
	rc = log_batch_submit_at(k->producer, *batch, log_id, UINT64_MAX, epoch, cookie);
	if (rc != 0) {
		log_batch_put(k->producer, *batch);
		kinesis_batch_fail(p, kinesis_kms_errno(rc) ? rc : -ENOSPC);
	} else {
		p->batches_left++;
	}
	/* The number moves on either way: failed records keep their marks. */
	p->batch_count++;
	*batch = NULL;
}

static void
kinesis_batch_add(struct kinesis *k, struct kinesis_pending *p, uint32_t slot,
		  struct log_batch **batch, const struct kinesis_put_in *in, uint64_t log_id,
		  uint64_t epoch, uint64_t now_ns)
{
	struct kinesis_put_result *r = &p->results[in->order];
	struct log_record_in rec = {
		.partition_key = in->key, .partition_key_size = in->key_size,
		.explicit_hash_key = in->has_hash_key ? in->hash_key : NULL,
		.data = in->data, .data_size = in->data_size, .arrival_ns = now_ns,
	};
	int rc = -ENOSPC;

	for (int attempt = 0; attempt < 2 && rc == -ENOSPC; attempt++) {
		if (*batch == NULL)
			*batch = log_batch_get(k->producer);
		if (*batch == NULL)
			break;
		rc = log_batch_add(*batch, &rec);
		if (rc == -ENOSPC)
			kinesis_batch_flush(k, p, slot, batch, log_id, epoch);
	}
	if (rc != 0) {
		r->error = rc == -ENOSPC ? -ENOSPC : -EIO;
		r->done = true;
		return;
	}
	r->batch_no = p->batch_count;
	r->batch_pos = log_batch_record_count(*batch) - 1;
	r->log_id = log_id;
	if (r->batch_pos == 0)
		p->batch_first[p->batch_count] = (uint16_t)p->batched_count;
	p->batched[p->batched_count++] = (uint16_t)in->order;
}

/*
 * Orders put->ins[0 .. count) by shard, keeping request order within a
 * shard, into put->sorted: one linked list per shard (heads found through a
 * generation mark on the shard), shards in order of first appearance. O(n).
 */
static void
kinesis_put_group(struct kinesis *k, struct kinesis_put_scratch *put, struct kinesis_stream *s,
		  uint32_t count)
{
	uint32_t *next = put->next;
	uint32_t *heads = put->heads;
	uint32_t shards = 0;
	uint32_t n = 0;

	k->put_generation++;
	for (uint32_t i = 0; i < count; i++) {
		struct kinesis_shard *sh = &s->shards[put->ins[i].shard_index];

		next[i] = UINT32_MAX;
		if (sh->put_generation != k->put_generation) {
			sh->put_generation = k->put_generation;
			heads[shards++] = i;
		} else {
			next[sh->put_tail] = i;
		}
		sh->put_tail = i;
	}
	for (uint32_t h = 0; h < shards; h++)
		for (uint32_t i = heads[h]; i != UINT32_MAX; i = next[i])
			put->sorted[n++] = &put->ins[i];
	assert(n == count);
}

/*
 * Cluster mode: only the shard's leader appends (another node's records would
 * be a divergent tail there). Checked per shard of a call; leadership can still end
 * between this and the flush: the acks never cover the records then, and the
 * batch carries the epoch led (*epoch_out, LOG_EPOCH_NONE in single-node mode),
 * so once this node's follower side promised a newer leader the log refuses it
 * rather than placing it among that leader's records.
 */
static bool
kinesis_put_leads(struct kinesis *k, uint64_t log_id, uint64_t *epoch_out)
{
	uint64_t seq;

	*epoch_out = LOG_EPOCH_NONE;
	if (k->repl.lead_epoch != NULL)
		return k->repl.lead_epoch(k->repl.ctx, log_id, epoch_out) == 0;
	return k->repl.acked == NULL || k->repl.acked(k->repl.ctx, log_id, &seq) == 0;
}

/*
 * Packs the records into per-shard batches and submits them, and sends those of
 * shards led elsewhere to their leaders; replies at once if none went.
 */
static void
kinesis_put_submit(struct kinesis *k, struct kinesis_put_scratch *put, struct kinesis_pending *p,
		   uint32_t slot, struct kinesis_stream *s, uint32_t count,
		   const struct api_request *req)
{
	struct log_batch *batch = NULL;
	uint64_t batch_log_id = 0;
	uint64_t batch_epoch = LOG_EPOCH_NONE;
	uint64_t now_ns = req->now_ns;
	struct kinesis_forward_plan plan;
	uint64_t leads_log_id = UINT64_MAX;
	uint64_t epoch = LOG_EPOCH_NONE;
	bool leads = false;

	kinesis_forward_plan_init(k, &plan, req, slot);
	kinesis_put_group(k, put, s, count);
	for (uint32_t j = 0; j < count; j++) {
		const struct kinesis_put_in *in = put->sorted[j];
		struct kinesis_shard *sh = &s->shards[in->shard_index];
		struct kinesis_put_result *r = &p->results[in->order];

		if (batch != NULL && batch_log_id != sh->log_id)
			kinesis_batch_flush(k, p, slot, &batch, batch_log_id, batch_epoch);
		/*
		 * Once per shard of the call (its records are grouped by shard): asked per
		 * record it was a replica leader's lock, the log's shard and epoch looks and
		 * a sort, 500 times a call. The batch carries the epoch either way, which is
		 * what fences a leadership ended meanwhile (kinesis_put_leads).
		 */
		if (sh->log_id != leads_log_id) {
			leads_log_id = sh->log_id;
			leads = kinesis_put_leads(k, sh->log_id, &epoch);
		}
		if (!leads) {
			/* Led elsewhere: to its leader, else throttled (retried). */
			r->forwarded = kinesis_forward_take(k, &plan, s->name, in, sh->log_id);
			r->error = r->forwarded ? 0 : -EPIPE;
			r->done = !r->forwarded;
			continue;
		}
		if (!kinesis_throttle_write(k, sh, now_ns / 1000000000u,
					    in->data_size + in->key_size)) {
			r->error = -ENOSPC;
			r->done = true;
			continue;
		}
		if (batch != NULL && epoch != batch_epoch)  /* Led again meanwhile: its own batch. */
			kinesis_batch_flush(k, p, slot, &batch, batch_log_id, batch_epoch);
		batch_log_id = sh->log_id;
		batch_epoch = epoch;
		kinesis_batch_add(k, p, slot, &batch, in, sh->log_id, epoch, now_ns);
	}
	kinesis_batch_flush(k, p, slot, &batch, batch_log_id, batch_epoch);
	kinesis_forward_send(k, &plan, p);
	if (p->batches_left == 0 && p->forwards_left == 0)
		kinesis_pending_finish(k, p);
}

/*
 * Whether a call may start now: a pending slot free, and at least as many free batches
 * as it can take. That is one per shard it touches, plus what records overflowing a
 * batch add: two batches in a row of one shard hold more than batch_size bytes (the
 * second's first record did not fit the first), so E encoded bytes fill at most
 * 2E / batch_size more (4E with headers, rounded, to stay safe); and never more than
 * one per record. CONFIG_LOG_BATCHES_MIN makes the most a call can need fit an idle pool.
 */
static bool
kinesis_put_room(struct kinesis *k, const struct kinesis_put_scratch *put,
		 struct kinesis_stream *s, uint32_t count)
{
	uint64_t bytes = 0;
	uint32_t shards = 0;
	uint64_t need;

	if (k->pending_count == KINESIS_PENDING_MAX)
		return false;
	k->put_generation++;
	for (uint32_t i = 0; i < count; i++) {
		const struct kinesis_put_in *in = &put->ins[i];
		struct kinesis_shard *sh = &s->shards[in->shard_index];

		if (sh->put_generation != k->put_generation) {
			sh->put_generation = k->put_generation;
			shards++;
		}
		bytes += in->key_size + in->data_size + RECORD_WIRE_OVERHEAD_MAX;
	}
	need = shards + 4 * bytes / ((uint64_t)k->config.log_batch_size_kb << 10) + 1;
	return log_batches_free(k->producer) >= min_u64(need, count);
}

static void
kinesis_put_refuse(struct kinesis *k, struct api_call *call, struct kinesis_stream *s,
		   uint32_t count, bool put_records)
{
	struct metrics_stream_ref ref = {
		.slot = (uint32_t)(s - k->streams), .stream_id = s->stream_id, .name = s->name,
	};
	struct metrics_put m = {
		.put_records = put_records, .records_failed = count, .records_throttled = count,
	};

	metrics_stream_put(&ref, &m);
	kinesis_error(call, "ProvisionedThroughputExceededException", "Rate exceeded for "
		      "stream %s under account %s.", s->name, k->config.account_id);
}

/*
 * The call cannot start yet: it joins the end of the wait (or, re-run from the head by
 * kinesis_put_retry, stays there). Refused only beyond the wait's budget.
 */
static void
kinesis_put_wait(struct kinesis *k, struct api_call *call, const struct api_request *req,
		 struct kinesis_stream *s, uint32_t count, bool put_records)
{
	struct kinesis_put_wait *w;

	if (k->wait_retrying) {
		k->wait_blocked = true;
		return;
	}
	if (k->wait_count == KINESIS_PUT_WAITS_MAX ||
	    k->wait_bytes + req->body_size > (uint64_t)k->config.put_queue_mb << 20) {
		kinesis_put_refuse(k, call, s, count, put_records);
		return;
	}
	w = &k->waits[(k->wait_head + k->wait_count) % KINESIS_PUT_WAITS_MAX];
	*w = (struct kinesis_put_wait){ .call = call, .req = *req };
	k->wait_count++;
	k->wait_bytes += req->body_size;
}

/*
 * Re-runs waiting calls, oldest first, while they can start (after completions freed
 * batches and slots). A call re-run goes through kinesis_dispatch() again, so it is
 * decoded again from its request and passes the access check again (k->authz is the
 * dispatcher's): one whose stream or permission went meanwhile gets that error. Its
 * records arrive now (req.now_ns). Runs from kinesis_poll only, never inside a
 * dispatch, so the per-call scratch is free.
 */
static void
kinesis_put_retry(struct kinesis *k)
{
	while (k->wait_count > 0) {
		struct kinesis_put_wait *w = &k->waits[k->wait_head];
		struct api_request req = w->req;

		req.now_ns = clock_real_ns();
		k->wait_retrying = true;
		k->wait_blocked = false;
		kinesis_dispatch(k, w->call, &req);
		k->wait_retrying = false;
		if (k->wait_blocked)
			return;
		k->wait_bytes -= w->req.body_size;
		k->wait_head = (k->wait_head + 1) % KINESIS_PUT_WAITS_MAX;
		k->wait_count--;
	}
}

/*
 * Routes r->scratch->put.ins[0 .. count) of stream `s`, takes a pending slot and submits;
 * waits (kinesis_put_wait) while it cannot, and behind calls already waiting.
 */
static void
kinesis_put_start(struct kinesis_req *r, struct kinesis_stream *s, uint32_t count,
		  bool put_records)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_put_scratch *put = &r->scratch->put;
	uint64_t put_s = r->req->now_ns / 1000000000u;
	struct kinesis_pending *p;
	uint32_t slot;

	for (uint32_t i = 0; i < count; i++) {
		struct kinesis_put_in *in = &put->ins[i];
		hashkey_t key = in->has_hash_key ? hashkey_from_be_bytes(in->hash_key) :
				hashkey_from_partition_key(in->key, in->key_size);
		struct kinesis_shard *sh = kinesis_shard_route(s, key);

		assert(sh != NULL); /* Open shards always cover the whole key space. */
		in->shard_index = sh->index;
		in->order = i;
	}
	if ((k->wait_count > 0 && !k->wait_retrying) || !kinesis_put_room(k, put, s, count)) {
		kinesis_put_wait(k, call, r->req, s, count, put_records);
		return;
	}
	p = kinesis_pending_get(k, &slot);
	assert(p != NULL); /* kinesis_put_room saw a free slot. */
	p->call = call;
	p->put_records = put_records;
	p->record_count = count;
	p->batches_left = 0;
	p->replicating = false;
	p->forwards_left = 0;
	p->batch_count = 0;
	p->batched_count = 0;
	memcpy(p->stream_name, s->name, s->name_size + 1);
	p->stream_slot = (uint32_t)(s - k->streams);
	p->stream_id = s->stream_id;
	p->encrypted = s->encryption.on;
	/* The stream table outlives every call: at worst a message names a newer KeyId. */
	p->key_ref = s->encryption.key_ref;
	p->started_ns = metrics_enabled() ? clock_mono_ns() : 0;
	k->pending_count++;
	for (uint32_t i = 0; i < count; i++) {
		const struct kinesis_shard *sh = &s->shards[put->ins[i].shard_index];

		p->results[i] = (struct kinesis_put_result){
			.shard_index = sh->index, .shard_created_s = sh->created_s, .put_s = put_s,
			.batch_no = UINT32_MAX, .data_size = put->ins[i].data_size,
		};
	}
	kinesis_put_submit(k, put, p, slot, s, count, r->req);
}

/* ---- Request decoding ----------------------------------------------------- */

/* Streams accept writes while ACTIVE, UPDATING or DELETING; CREATING reads as not found. */
static struct kinesis_stream *
kinesis_put_stream(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		   const struct kv_value *arn)
{
	struct kinesis_stream *s = kinesis_stream_resolve(k, call, name, arn);

	if (s != NULL && s->status == KINESIS_CREATING) {
		kinesis_error(call, "ResourceNotFoundException", "Stream %s under account %s not "
			      "found.", s->name, k->config.account_id);
		return NULL;
	}
	return s;
}

/*
 * AWS bounds partition keys at 256 characters; the log at 256 bytes of UTF-8
 * (SLUICE_PARTITION_KEY_SIZE_MAX). A key within the first and beyond the
 * second is refused with its own message rather than a misleading length one.
 */
static bool
kinesis_key_fits(struct kinesis *k, struct api_call *call, size_t size)
{
	(void)k;
	if (size <= SLUICE_PARTITION_KEY_SIZE_MAX)
		return true;
	kinesis_error(call, "InvalidArgumentException", "PartitionKey is %zu bytes of UTF-8; "
		      "this endpoint accepts at most %u bytes.", size,
		      SLUICE_PARTITION_KEY_SIZE_MAX);
	return false;
}

/* ExplicitHashKey text (pattern already checked) -> 16 bytes; replies when out of range. */
static int
kinesis_hash_key(struct kinesis *k, struct api_call *call, const char *text,
		 struct kinesis_put_in *in)
{
	hashkey_t key;

	(void)k;
	if (text == NULL)
		return 0;
	if (hashkey_parse_decimal(text, strlen(text), &key) != 0) {
		kinesis_error(call, "InvalidArgumentException", "Invalid ExplicitHashKey. "
			      "ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value "
			      "was %s", text);
		return -EINVAL;
	}
	in->has_hash_key = true;
	hashkey_to_be_bytes(key, in->hash_key);
	return 0;
}

/*
 * A Data blob of `size` bytes against `max`, in AWS's words. The shapes hold the
 * most any stream takes (SLUICE_RECORD_DATA_SIZE_LARGE_MAX); the handlers, once the
 * stream is known, its own MaxRecordSizeInKiB (kinesis_record_data_max).
 */
static void
kinesis_data_check(struct kv_errors *errors, const char *path, uint32_t size, uint32_t max)
{
	char rendered[96];
	char rule[64];

	if (size <= max)
		return;
	snprintf(rendered, sizeof(rendered), "java.nio.HeapByteBuffer[pos=0 lim=%u cap=%u]", size,
		 size);
	snprintf(rule, sizeof(rule), "Member must have length less than or equal to %u", max);
	kv_errors_add(errors, rendered, true, path, rule);
}

/* One Data of `size` bytes over `max`: answers ValidationException. */
static void
kinesis_data_refuse(struct api_call *call, const char *path, uint32_t size, uint32_t max)
{
	struct kv_errors errors;

	errors.count = 0;
	errors.size = 0;
	kinesis_data_check(&errors, path, size, max);
	kv_errors_reply(call, &errors);
}

/*
 * Each of PutRecords' `count` Data against the stream's MaxRecordSizeInKiB;
 * false after answering. The error text is built only when a record is over:
 * the usual call pays one comparison per record.
 */
static bool
kinesis_records_fit(struct kinesis_req *r, const struct kinesis_stream *s, uint32_t count)
{
	const struct kinesis_blob *blobs = r->scratch->put.blobs;
	uint32_t max = kinesis_record_data_max(r->k, s);
	struct kv_errors errors;
	char path[64];
	uint32_t i;

	for (i = 0; i < count && blobs[i].size <= max; i++)
		;
	if (i == count)
		return true;
	errors.count = 0;
	errors.size = 0;
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "records.%u.member.data", i + 1);
		kinesis_data_check(&errors, path, blobs[i].size, max);
	}
	return !kv_errors_reply(r->call, &errors);
}

void
kinesis_put_record(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const struct kv_value *ordering = &r->v[PUT_RECORD_SEQUENCE_NUMBER_FOR_ORDERING];
	const struct kv_value *key = &r->v[PUT_RECORD_PARTITION_KEY];
	const struct kv_value *data = &r->v[PUT_RECORD_DATA];
	struct kinesis_put_in *in = &r->scratch->put.ins[0];
	struct kinesis_stream *s;
	struct seqnum_client sn;
	int rc;

	s = kinesis_put_stream(k, call, &r->v[PUT_RECORD_STREAM_NAME], &r->v[PUT_RECORD_STREAM_ARN]);
	if (s == NULL)
		return;
	if (data->size > kinesis_record_data_max(k, s)) {
		kinesis_data_refuse(call, "data", (uint32_t)data->size, kinesis_record_data_max(k, s));
		return;
	}
	/*
	 * Honoured by construction: a reply means durable, so later puts sort after it. Checked
	 * as AWS does: any version it reads, with times not in the future.
	 */
	rc = ordering->json == NULL ? 0 : seqnum_parse_client(ordering->string, ordering->size, &sn);
	if (rc == -ERANGE) {
		kinesis_internal_error(call);
		return;
	}
	if (rc != 0 || (ordering->json != NULL &&
			(sn.put_s * 1000 > kinesis_now_ms(r->req) ||
			 sn.shard_created_s * 1000 > kinesis_now_ms(r->req)))) {
		kinesis_error(call, "InvalidArgumentException", "ExclusiveMinimumSequenceNumber %s "
			      "used in PutRecord on stream %s under account %s is invalid.",
			      ordering->string, s->name, k->config.account_id);
		return;
	}
	if (!kinesis_key_fits(k, call, key->size))
		return;
	*in = (struct kinesis_put_in){
		.key = key->string, .key_size = (uint16_t)key->size,
		.data = data->blob, .data_size = (uint32_t)data->size,
	};
	if (kinesis_hash_key(k, call, r->v[PUT_RECORD_EXPLICIT_HASH_KEY].string, in) == 0)
		kinesis_put_start(r, s, 1, false);
}

/* Records[]: each a structure of PartitionKey, Data (decoded now), ExplicitHashKey. */
int
kinesis_records_types(struct kinesis_req *r, const cJSON *item)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_blob *blobs = r->scratch->put.blobs;
	const cJSON *rec;
	uint32_t i = 0;

	cJSON_ArrayForEach(rec, item) {
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "Data");

		if (kv_type_check(call, rec, KV_STRUCT) != 0 ||
		    kv_type_check(call, cJSON_GetObjectItemCaseSensitive(rec, "PartitionKey"),
				  KV_STRING) != 0 ||
		    kv_type_check(call, data, KV_BLOB) != 0 ||
		    kv_type_check(call, cJSON_GetObjectItemCaseSensitive(rec, "ExplicitHashKey"),
				  KV_STRING) != 0)
			return -EINVAL;
		if (i < KINESIS_PUT_RECORDS_MAX) {
			blobs[i].data = NULL;
			blobs[i].size = 0;
			if (data != NULL && !cJSON_IsNull(data))
				blobs[i].data = kv_blob_decode(k, data, &blobs[i].size);
			if (data != NULL && !cJSON_IsNull(data) && blobs[i].data == NULL) {
				kinesis_serialization_error(call, "Request body too large");
				return -EINVAL;
			}
		}
		i++;
	}
	return 0;
}

void
kinesis_records_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const struct kinesis_blob *blobs = r->scratch->put.blobs;
	const cJSON *rec;
	uint32_t i = 0;

	cJSON_ArrayForEach(rec, item) {
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "Data");
		char path[64];

		snprintf(path, sizeof(path), "records.%u.member.partitionKey", i + 1);
		kv_chars_check(errors, path, cJSON_GetObjectItemCaseSensitive(rec, "PartitionKey"),
			       1, KINESIS_PARTITION_KEY_CHARS_MAX);
		snprintf(path, sizeof(path), "records.%u.member.data", i + 1);
		if (data == NULL || cJSON_IsNull(data)) {
			kv_errors_add(errors, "null", false, path, "Member must not be null");
		} else if (i < KINESIS_PUT_RECORDS_MAX) {
			kinesis_data_check(errors, path, blobs[i].size,
					   SLUICE_RECORD_DATA_SIZE_LARGE_MAX);
		}
		snprintf(path, sizeof(path), "records.%u.member.explicitHashKey", i + 1);
		kv_string_check(errors, path, cJSON_GetObjectItemCaseSensitive(rec, "ExplicitHashKey"),
				false, KV_PATTERN_HASH_KEY, -1, -1);
		i++;
	}
}

/* Fills the put's records from a validated Records list; replies and fails on a bad one. */
static int
kinesis_records_load(struct kinesis_req *r, const struct kinesis_stream *s,
		     const cJSON *records, uint32_t *count_out)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_put_scratch *put = &r->scratch->put;
	const cJSON *rec;
	uint64_t total = 0;
	uint32_t i = 0;

	if (!kinesis_records_fit(r, s, (uint32_t)cJSON_GetArraySize(records)))
		return -EINVAL;

	cJSON_ArrayForEach(rec, records) {
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(rec, "PartitionKey");
		const cJSON *hash = cJSON_GetObjectItemCaseSensitive(rec, "ExplicitHashKey");
		struct kinesis_put_in *in = &put->ins[i];

		if (!kinesis_key_fits(k, call, strlen(key->valuestring)))
			return -EINVAL;
		*in = (struct kinesis_put_in){
			.key = key->valuestring, .key_size = (uint16_t)strlen(key->valuestring),
			.data = put->blobs[i].data, .data_size = put->blobs[i].size,
		};
		total += in->key_size + in->data_size;
		if (kinesis_hash_key(k, call, hash != NULL && cJSON_IsString(hash) ?
				     hash->valuestring : NULL, in) != 0)
			return -EINVAL;
		i++;
	}
	if (total > KINESIS_PUT_RECORDS_SIZE_MAX) {
		kinesis_error(call, "InvalidArgumentException", "Records size exceeds 5 MB limit");
		return -EINVAL;
	}
	*count_out = i;
	return 0;
}

/* A copy of `size` bytes with a NUL, for the helpers that take C strings. */
static const char *
kinesis_fast_text(char *buf, size_t buf_size, const char *text, size_t size)
{
	assert(size < buf_size);
	memcpy(buf, text, size);
	buf[size] = '\0';
	return buf;
}

/*
 * PutRecords from a body kinesis_fast_put_parse() accepts: same semantics, no
 * tree. 0 once answered; -EINVAL (nothing answered) for any other body.
 */
int
kinesis_put_records_fast(struct kinesis_req *r)
{
	static const cJSON present;  /* A non-NULL json: "the member is there". */
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_put_in *ins = r->scratch->put.ins;
	const struct kinesis_fast_put *put = &r->scratch->put.fast;
	char name_buf[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	char arn_buf[2048 + 1];
	struct kv_value name = { .json = NULL };
	struct kv_value arn = { .json = NULL };
	struct kinesis_stream *s;

	if (kinesis_fast_put_parse(k, r->req->body, r->req->body_size, &r->scratch->put.fast) != 0)
		return -EINVAL;
	if (put->name != NULL)
		name = (struct kv_value){ .json = &present, .size = put->name_size,
			.string = kinesis_fast_text(name_buf, sizeof(name_buf), put->name,
						    put->name_size) };
	if (put->arn != NULL)
		arn = (struct kv_value){ .json = &present, .size = put->arn_size,
			.string = kinesis_fast_text(arn_buf, sizeof(arn_buf), put->arn,
						    put->arn_size) };
	s = kinesis_put_stream(k, call, &name, &arn);
	if (s == NULL)
		return 0;
	for (uint32_t i = 0; i < put->count; i++) {
		const struct kinesis_fast_record *rec = &put->records[i];
		char hash_buf[HASHKEY_DECIMAL_SIZE];

		ins[i] = (struct kinesis_put_in){
			.key = rec->key, .key_size = (uint16_t)rec->key_size,
			.data = rec->decoded, .data_size = rec->decoded_size,
		};
		if (rec->hash_key != NULL &&
		    kinesis_hash_key(k, call, kinesis_fast_text(hash_buf, sizeof(hash_buf),
								rec->hash_key, rec->hash_key_size),
				     &ins[i]) != 0)
			return 0;
	}
	kinesis_put_start(r, s, put->count, true);
	return 0;
}

/* The checked path: every body the fast parser did not take, errors included. */
void
kinesis_put_records(struct kinesis_req *r)
{
	struct kinesis_stream *s;
	uint32_t count;

	s = kinesis_put_stream(r->k, r->call, &r->v[PUT_RECORDS_STREAM_NAME],
			       &r->v[PUT_RECORDS_STREAM_ARN]);
	if (s != NULL && kinesis_records_load(r, s, r->v[PUT_RECORDS_RECORDS].json, &count) == 0)
		kinesis_put_start(r, s, count, true);
}
