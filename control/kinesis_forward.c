/*
 * kinesis_forward.c - cluster mode: records of a PutRecord(s) for shards led
 * by another node go to that node's API as one PutRecords per leader (the
 * forwarder thread, control/forward.h), and its per-record answers are merged
 * into the call's results in the caller's order (docs/CLUSTER.md "Forwarding
 * puts to the shard's leader"). The call waits in the pending table, as for
 * its local batches, until every forward came back.
 *
 * Reads (GetShardIterator, GetRecords) of a shard this node holds no replica of
 * are passed through to a node that holds one: the caller's body as it came,
 * the holder's answer (or error) as it came back (docs/CLUSTER.md "Forwarding
 * reads"). The call waits in k->reads, one slot per forwarder job. A holder that
 * refuses the connection (nothing sent) passes the read on to the next holder (the
 * leader, then the in-sync followers), each once; only when none connects does the
 * call fail ServiceUnavailable. A relay's holder is chosen the same way.
 *
 * SubscribeToShard there is relayed: the forwarder opens it on a holder
 * (forward_stream_*), and its event-stream bytes, opaque, go into the caller's own
 * streaming answer (HTTP/2 or chunked HTTP/1.1; a CBOR caller's request goes on in
 * CBOR, so the holder's events are CBOR too). A relay in k->relays pumps at every
 * poll: the holder's head decides between a stream (200) and its error passed on;
 * bytes go while the caller's stream takes them (refused: WRITABLE resumes it, and
 * the holder's transfer pauses behind a full ring); the holder's end, a broken or
 * silent connection end the caller's stream once what came is written; the caller
 * leaving cancels the holder's transfer.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/hashkey.h"
#include "control/forward.h"
#include "control/kinesis.h"
#include "control/server_cbor.h"

void
kinesis_forward_plan_init(struct kinesis *k, struct kinesis_forward_plan *plan,
			  const struct api_request *req, uint32_t slot)
{
	plan->enabled = k->repl.forward != NULL && k->repl.leader_api != NULL && !req->forwarded;
	plan->access_key_id = req->access_key_id != NULL ? req->access_key_id : "";
	plan->cookie = slot;
	plan->log_id = UINT64_MAX;
	plan->leader = -1;
	plan->count = 0;
}

/* The plan's entry for the shard's leader (a job taken at its first record), or -1. */
static int32_t
kinesis_forward_leader(struct kinesis *k, struct kinesis_forward_plan *plan, const char *stream,
		       uint64_t log_id)
{
	char addr[KINESIS_FORWARD_ADDR_SIZE];
	uint32_t i;

	if (k->repl.leader_api(k->repl.ctx, log_id, addr, sizeof(addr)) != 0)
		return -1;
	for (i = 0; i < plan->count && strcmp(plan->leaders[i].addr, addr) != 0; i++)
		;
	if (i < plan->count)
		return (int32_t)i;
	if (plan->count == KINESIS_FORWARD_LEADERS_MAX)
		return -1;
	memcpy(plan->leaders[i].addr, addr, sizeof(addr));
	plan->leaders[i].job = forward_job_get(k->repl.forward, stream, addr, plan->access_key_id,
					       plan->cookie);
	plan->count++;
	return (int32_t)i;
}

bool
kinesis_forward_take(struct kinesis *k, struct kinesis_forward_plan *plan, const char *stream,
		     const struct kinesis_put_in *in, uint64_t log_id)
{
	char hash[HASHKEY_DECIMAL_SIZE];
	struct forward_job *job;

	if (!plan->enabled)
		return false;
	if (log_id != plan->log_id) {
		plan->log_id = log_id;
		plan->leader = kinesis_forward_leader(k, plan, stream, log_id);
	}
	if (plan->leader < 0 || (job = plan->leaders[plan->leader].job) == NULL)
		return false;
	/* The caller's hash key, if any: the leader routes the record as this node did. */
	if (in->has_hash_key)
		hashkey_format_decimal(hashkey_from_be_bytes(in->hash_key), hash);
	return forward_job_add(job, in->key, in->key_size, in->has_hash_key ? hash : NULL,
			       in->data, in->data_size, (uint16_t)in->order) == 0;
}

void
kinesis_forward_send(struct kinesis *k, struct kinesis_forward_plan *plan,
		     struct kinesis_pending *p)
{
	for (uint32_t i = 0; i < plan->count; i++) {
		struct forward_job *job = plan->leaders[i].job;

		if (job == NULL)
			continue;
		if (forward_job_count(job) == 0) {  /* Its records did not fit: failed already. */
			forward_job_put(k->repl.forward, job);
			continue;
		}
		forward_job_submit(k->repl.forward, job);
		p->forwards_left++;
	}
}

/* A read the holders cannot serve now: a retryable error (SDKs retry 503s). */
static void
kinesis_forward_unreachable(struct api_call *call)
{
	api_call_error(call, 503, "ServiceUnavailable", "No replica of this shard is reachable "
		       "from this node; retry.");
}

/*
 * The holder after `*holder` for a read of `log_id` whose holder failed it: true with
 * its address, or false when none is left (read_api's list is the leader and the
 * in-sync followers, each once: the tries end with it).
 */
static bool
kinesis_forward_next_holder(struct kinesis *k, uint64_t log_id, uint32_t *holder, char *addr)
{
	if (k->repl.read_api == NULL)
		return false;
	++*holder;
	return k->repl.read_api(k->repl.ctx, log_id, *holder, addr,
				KINESIS_FORWARD_ADDR_SIZE) == 0;
}

/* ---- SubscribeToShard relayed from a holder ---------------------------------------- */

static void kinesis_relay_pump(struct kinesis_relay *rl);

static void
kinesis_relay_free(struct kinesis_relay *rl)
{
	forward_stream_put(rl->k->repl.forward, rl->st);
	rl->call = NULL;
	rl->st = NULL;
}

/* Ends the caller's stream (what was written still goes out), counted as `result`. */
static void
kinesis_relay_end(struct kinesis_relay *rl, enum forward_stream_result result)
{
	api_call_stream_end(rl->call);
	forward_stream_count(rl->k->repl.forward, result);
	kinesis_relay_free(rl);
}

static void
kinesis_relay_event(void *ctx, enum api_stream_event event)
{
	struct kinesis_relay *rl = ctx;

	assert(rl->call != NULL);
	if (event == API_STREAM_GONE) {
		kinesis_relay_end(rl, FORWARD_STREAM_CALLER);
		return;
	}
	rl->blocked = false;
	kinesis_relay_pump(rl);
}

/* No stream: the holder's error answer passed on (a CBOR one read as JSON), or ours. */
static void
kinesis_relay_refused(struct kinesis_relay *rl, const struct forward_stream_state *st)
{
	char type[FORWARD_ERROR_TYPE_SIZE];
	char message[FORWARD_ERROR_MESSAGE_SIZE];
	char text[FORWARD_ERROR_TYPE_SIZE + FORWARD_ERROR_MESSAGE_SIZE + 64];
	struct api_out json = { .data = text, .capacity = sizeof(text),
				.capacity_max = sizeof(text) };
	const char *why;

	if (st->status == 0 && st->outcome == FORWARD_REFUSED) {
		kinesis_forward_unreachable(rl->call);
		return;
	}
	if (st->status == 0 || st->outcome != FORWARD_OK) {
		kinesis_internal_error(rl->call);  /* Broken before its answer: safe to retry. */
		return;
	}
	if (!api_call_is_cbor(rl->call))
		api_out_append(&json, st->data, st->size);
	else if (server_cbor_request_to_json(st->data, st->size, &json, &why) != 0)
		json.size = 0;
	if (!json.overflow && forward_error_parse(json.data, json.size, type, message) == 0)
		api_call_error(rl->call, (int)st->status, type, "%s", message);
	else
		kinesis_internal_error(rl->call);
}

/* The holder's bytes into the caller's stream while it takes them; its end after them. */
static void
kinesis_relay_pump(struct kinesis_relay *rl)
{
	struct forward *f = rl->k->repl.forward;
	struct forward_stream_state st;

	char addr[KINESIS_FORWARD_ADDR_SIZE];

	forward_stream_look(f, rl->st, &st);
	if (!rl->begun) {
		if (st.status == 0 && st.finished && st.outcome == FORWARD_REFUSED &&
		    kinesis_forward_next_holder(rl->k, rl->log_id, &rl->holder, addr)) {
			forward_stream_resubmit(f, rl->st, addr);
			return;
		}
		if (st.status != 200) {
			if (st.finished) {
				kinesis_relay_refused(rl, &st);
				kinesis_relay_free(rl);
			}
			return;
		}
		if (api_call_stream_begin(rl->call, kinesis_eventstream_type, kinesis_relay_event,
					  rl) != 0) {
			kinesis_relay_free(rl);  /* The client left: the call is finished. */
			return;
		}
		rl->begun = true;
		forward_stream_count(f, FORWARD_STREAM_STARTED);
	}
	while (st.size > 0) {
		size_t n = st.size < API_STREAM_PENDING_MAX ? st.size : API_STREAM_PENDING_MAX;
		int rc = api_call_stream_write(rl->call, st.data, n);

		if (rc == -EPIPE)
			return;  /* GONE follows and ends it. */
		rl->blocked = rc == -EAGAIN;
		rl->retry = rc == -ENOBUFS;
		if (rc != 0)
			return;
		forward_stream_consume(f, rl->st, n);
		forward_stream_look(f, rl->st, &st);
	}
	if (st.finished)
		kinesis_relay_end(rl, st.outcome == FORWARD_OK ? FORWARD_STREAM_HOLDER :
				  st.silent ? FORWARD_STREAM_SILENT : FORWARD_STREAM_FAILED);
}

/* Opens the relay of SubscribeToShard `r` of `log_id` on its first holder, at `addr`. */
static void
kinesis_forward_relay(struct kinesis_req *r, uint64_t log_id, const char *addr)
{
	struct kinesis *k = r->k;
	struct kinesis_relay *rl = NULL;
	struct forward_stream *st;
	struct api_out *body;
	bool cbor = api_call_is_cbor(r->call);
	int rc = 0;

	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX && rl == NULL; i++)
		if (k->relays[i].call == NULL)
			rl = &k->relays[i];
	st = forward_stream_get(k->repl.forward, addr,
				r->req->access_key_id != NULL ? r->req->access_key_id : "",
				cbor ? FORWARD_CONTENT_TYPE_CBOR : FORWARD_CONTENT_TYPE,
				r->req->target, r->req->target_size);
	if (st == NULL) {
		kinesis_error(r->call, "LimitExceededException", "This node relays at most %u "
			      "subscriptions from replica holders at once; retry, or subscribe on a "
			      "node holding a replica of the shard.", FORWARD_STREAMS_MAX);
		return;
	}
	/* Relays never outnumber the forwarder's slots held: a slot was free, so is a relay. */
	assert(rl != NULL);
	body = forward_stream_body(st);
	if (cbor)
		rc = server_cbor_answer_from_json((const char *)r->req->body, r->req->body_size,
						  body);
	else
		api_out_append(body, r->req->body, r->req->body_size);
	if (rc != 0 || body->overflow) {
		forward_stream_put(k->repl.forward, st);
		kinesis_error(r->call, "InvalidArgumentException", "The request is too large to "
			      "pass on to a replica holder.");
		return;
	}
	*rl = (struct kinesis_relay){ .k = k, .call = r->call, .st = st, .log_id = log_id };
	forward_stream_submit(k->repl.forward, st);
}

/* Relayed subscriptions: their holders' bytes to their callers (not waiting for WRITABLE). */
static void
kinesis_forward_relays_poll(struct kinesis *k)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++) {
		struct kinesis_relay *rl = &k->relays[i];

		if (rl->call != NULL && !rl->blocked)
			kinesis_relay_pump(rl);
	}
}

bool
kinesis_forward_relays_retry(const struct kinesis *k)
{
	for (uint32_t i = 0; i < FORWARD_STREAMS_MAX; i++)
		if (k->relays[i].call != NULL && k->relays[i].retry)
			return true;
	return false;
}

bool
kinesis_forward_read(struct kinesis_req *r, enum forward_read action, uint64_t log_id)
{
	struct kinesis *k = r->k;
	char addr[KINESIS_FORWARD_ADDR_SIZE];
	struct forward_job *job;
	uint32_t slot = 0;
	int rc;

	if (k->repl.read_api == NULL || k->repl.forward == NULL)
		return false;
	rc = k->repl.read_api(k->repl.ctx, log_id, 0, addr, sizeof(addr));
	if (rc == -ENOENT)
		return false;
	if (r->req->body_size > FORWARD_BODY_SIZE_MAX) {
		kinesis_error(r->call, "InvalidArgumentException", "The request is too large to "
			      "pass on to a replica holder.");
		return true;
	}
	/* A forwarded read reaching a non-holder (a stale placement) goes no further. */
	if (rc != 0 || r->req->forwarded) {
		if (rc != 0)  /* No holder known: counted; the loop guard's refusal is not. */
			forward_read_refused(k->repl.forward, action);
		kinesis_forward_unreachable(r->call);
		return true;
	}
	if (action == FORWARD_READ_SUBSCRIBE) {
		kinesis_forward_relay(r, log_id, addr);
		return true;
	}
	while (slot < FORWARD_INFLIGHT_MAX && k->reads[slot].call != NULL)
		slot++;
	job = forward_job_get_read(k->repl.forward, action, r->req->target, r->req->target_size,
				   r->req->body, r->req->body_size, addr,
				   r->req->access_key_id != NULL ? r->req->access_key_id : "",
				   KINESIS_PENDING_MAX + slot);
	if (job == NULL) {
		kinesis_error(r->call, "ProvisionedThroughputExceededException", "Rate exceeded: "
			      "too many reads passed on to replica holders at once.");
		return true;
	}
	/* Read calls never outnumber the jobs in use: a job was free, so was a slot. */
	assert(slot < FORWARD_INFLIGHT_MAX);
	k->reads[slot] = (struct kinesis_read){ .call = r->call, .log_id = log_id };
	forward_job_submit(k->repl.forward, job);
	return true;
}

/*
 * The holder's answer to a passed-through read, to its caller as it came; true when
 * its holder failed it (refused, timed out, broke) and it went on to the next holder
 * within its deadline (the job stays in flight).
 */
static bool
kinesis_forward_read_done(struct kinesis *k, struct forward_job *job, uint32_t slot)
{
	struct kinesis_read *rd = &k->reads[slot];
	struct api_call *call = rd->call;
	char addr[KINESIS_FORWARD_ADDR_SIZE];
	char type[FORWARD_ERROR_TYPE_SIZE];
	char message[FORWARD_ERROR_MESSAGE_SIZE];
	const char *body;
	size_t size;
	long status = forward_job_reply(job, &body, &size);

	if (call != NULL && forward_job_may_try_next(job) &&
	    kinesis_forward_next_holder(k, rd->log_id, &rd->holder, addr)) {
		forward_job_resubmit(k->repl.forward, job, addr);
		return true;
	}
	rd->call = NULL;
	if (call == NULL)
		return false;  /* Dropped by kinesis_drain. */
	if (forward_job_outcome(job) == FORWARD_REFUSED) {
		kinesis_forward_unreachable(call);
	} else if (forward_job_outcome(job) != FORWARD_OK) {
		kinesis_internal_error(call);  /* Timed out or broken: a read is safe to retry. */
	} else if (status == 200) {
		api_out_append(api_call_out(call), body, size);
		if (api_call_out(call)->overflow) {
			api_call_out(call)->size = 0;
			kinesis_internal_error(call);
		} else {
			api_call_reply(call, 200);
		}
	} else if (forward_error_parse(body, size, type, message) == 0) {
		api_call_error(call, (int)status, type, "%s", message);
	} else {
		kinesis_internal_error(call);
	}
	return false;
}

/* The leader's answer for one record -> its result (ShardId and number from the leader). */
static void
kinesis_forward_merge(struct kinesis_put_result *r, const struct forward_result *fr)
{
	r->done = true;
	r->error = fr->error;
	if (fr->error != 0)
		return;
	r->shard_index = fr->sn.shard_index;
	r->shard_created_s = fr->sn.shard_created_s;
	r->seq = fr->sn.seq;
	r->put_s = fr->sn.put_s;
}

void
kinesis_forward_poll(struct kinesis *k)
{
	struct forward_job *done[FORWARD_INFLIGHT_MAX];
	uint32_t n;

	if (k->repl.forward == NULL)
		return;
	n = forward_poll(k->repl.forward, done, FORWARD_INFLIGHT_MAX);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t slot = forward_job_cookie(done[i]);
		struct kinesis_pending *p;

		if (slot >= KINESIS_PENDING_MAX) {
			assert(slot - KINESIS_PENDING_MAX < FORWARD_INFLIGHT_MAX);
			if (!kinesis_forward_read_done(k, done[i],
						       (uint32_t)(slot - KINESIS_PENDING_MAX)))
				forward_job_put(k->repl.forward, done[i]);
			continue;
		}
		p = &k->pending[slot];
		assert(p->call != NULL && p->forwards_left > 0);
		for (uint32_t j = 0; j < forward_job_count(done[i]); j++) {
			uint16_t order = forward_job_tag(done[i], j);

			assert(order < p->record_count);
			kinesis_forward_merge(&p->results[order], forward_job_result(done[i], j));
		}
		forward_job_put(k->repl.forward, done[i]);
		if (--p->forwards_left == 0 && p->batches_left == 0)
			kinesis_pending_durable(k, p);
	}
	kinesis_forward_relays_poll(k);
}
