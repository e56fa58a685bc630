/*
 * kinesis_forward.c - cluster mode: records of a PutRecord(s) for shards led
 * by another node go to that node's API as one PutRecords per leader (the
 * forwarder thread, control/forward.h), and its per-record answers are merged
 * into the call's results in the caller's order (docs/CLUSTER.md "Forwarding
 * puts to the shard's leader"). The call waits in the pending table, as for
 * its local batches, until every forward came back.
 */
#include <errno.h>
#include <string.h>

#include "common/hashkey.h"
#include "control/forward.h"
#include "control/kinesis.h"

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

		assert(slot < KINESIS_PENDING_MAX);
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
}
