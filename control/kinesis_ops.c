/*
 * kinesis_ops.c - the one table of Kinesis operations and the dispatcher.
 *
 * Every operation of AWS's model (the 2013-12-02 service, botocore's
 * service-2.json) has a row: its name, its handler, its input shape (the
 * member list in its concern's header, instantiated here) and its flags.
 * A row without a handler is an operation this endpoint does not serve yet:
 * it answers UnknownOperationException saying so. Adding an operation is a
 * shape in its concern's header, a handler in its concern's file, one row.
 *
 * A call runs: find the row -> access check without a resource
 * (kinesis_access_begin) -> (fast path) -> kv_check() against the shape ->
 * resolve the stream (KINESIS_OP_STREAM; its policy is checked there) ->
 * handler -> free the JSON tree. A principal of another account reaches only
 * the operations kinesis_policies.c lists as checking their resource. The
 * Firehose rows (firehose_api.c) run the same way (kinesis_op_run()); they
 * check no resource policy, so only the owner account's principals reach them.
 * Every error answer goes through kinesis_error() and api_call_error().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "control/kinesis.h"
#include "control/metrics.h"

#define KINESIS_TARGET_PREFIX "Kinesis_20131202."

/* A served operation whose stream is resolved from OP_STREAM_NAME / OP_STREAM_ARN first. */
#define KINESIS_OP_S(name_, OP, handler_, flags_) \
	{ .name = (name_), .handler = (handler_), \
	  .shape = (const struct kv_field[]){ KINESIS_SHAPE_##OP(KV_SHAPE_FIELD) }, \
	  .shape_count = OP##_COUNT, .flags = KINESIS_OP_STREAM | (flags_), \
	  .stream_name = OP##_STREAM_NAME, .stream_arn = OP##_STREAM_ARN }

#define MUT KINESIS_OP_MUTATING

/* Sorted by name, as the model lists them. */
static const struct kinesis_op kinesis_ops[] = {
	KINESIS_OP("AddTagsToStream", ADD_TAGS, kinesis_add_tags, MUT),
	KINESIS_OP("CreateStream", CREATE_STREAM, kinesis_create_stream, MUT),
	KINESIS_OP_S("DecreaseStreamRetentionPeriod", RETENTION, kinesis_decrease_retention, MUT),
	KINESIS_OP("DeleteResourcePolicy", DELETE_POLICY, kinesis_delete_resource_policy, MUT),
	KINESIS_OP_S("DeleteStream", DELETE_STREAM, kinesis_delete_stream, MUT),
	KINESIS_OP("DeregisterStreamConsumer", CONSUMER_REF, kinesis_deregister_consumer, MUT),
	{ .name = "DescribeAccountSettings", .handler = kinesis_describe_account_settings },
	{ .name = "DescribeLimits", .handler = kinesis_describe_limits },  /* No members. */
	KINESIS_OP_S("DescribeStream", DESCRIBE_STREAM, kinesis_describe_stream, 0),
	KINESIS_OP("DescribeStreamConsumer", CONSUMER_REF, kinesis_describe_consumer, 0),
	KINESIS_OP_S("DescribeStreamSummary", DESCRIBE_STREAM_SUMMARY,
		     kinesis_describe_stream_summary, 0),
	KINESIS_OP_S("DisableEnhancedMonitoring", MONITORING, kinesis_disable_monitoring, MUT),
	KINESIS_OP_S("EnableEnhancedMonitoring", MONITORING, kinesis_enable_monitoring, MUT),
	KINESIS_OP("GetRecords", GET_RECORDS, kinesis_get_records, 0),
	KINESIS_OP("GetResourcePolicy", GET_POLICY, kinesis_get_resource_policy, 0),
	KINESIS_OP("GetShardIterator", GET_SHARD_ITERATOR, kinesis_get_shard_iterator, 0),
	KINESIS_OP_S("IncreaseStreamRetentionPeriod", RETENTION, kinesis_increase_retention, MUT),
	KINESIS_OP("ListShards", LIST_SHARDS, kinesis_list_shards, 0),
	KINESIS_OP("ListStreamConsumers", LIST_CONSUMERS, kinesis_list_consumers, 0),
	KINESIS_OP("ListStreams", LIST_STREAMS, kinesis_list_streams, 0),
	KINESIS_OP("ListTagsForResource", LIST_TAGS_RESOURCE, kinesis_list_tags_for_resource, 0),
	KINESIS_OP_S("ListTagsForStream", LIST_TAGS, kinesis_list_tags, 0),
	KINESIS_OP("MergeShards", MERGE_SHARDS, kinesis_merge_shards, MUT),
	KINESIS_OP("PutRecord", PUT_RECORD, kinesis_put_record, MUT),
	{ .name = "PutRecords", .handler = kinesis_put_records, .fast = kinesis_put_records_fast,
	  .shape = (const struct kv_field[]){ KINESIS_SHAPE_PUT_RECORDS(KV_SHAPE_FIELD) },
	  .shape_count = PUT_RECORDS_COUNT, .flags = MUT },
	KINESIS_OP("PutResourcePolicy", PUT_POLICY, kinesis_put_resource_policy, MUT),
	KINESIS_OP("RegisterStreamConsumer", REGISTER_CONSUMER, kinesis_register_consumer, MUT),
	KINESIS_OP_S("RemoveTagsFromStream", REMOVE_TAGS, kinesis_remove_tags, MUT),
	KINESIS_OP("SplitShard", SPLIT_SHARD, kinesis_split_shard, MUT),
	KINESIS_OP_S("StartStreamEncryption", ENCRYPTION, kinesis_start_encryption, MUT),
	KINESIS_OP_S("StopStreamEncryption", ENCRYPTION, kinesis_stop_encryption, MUT),
	KINESIS_OP("SubscribeToShard", SUBSCRIBE, kinesis_subscribe_to_shard, 0),
	KINESIS_OP("TagResource", TAG_RESOURCE, kinesis_tag_resource, MUT),
	KINESIS_OP("UntagResource", UNTAG_RESOURCE, kinesis_untag_resource, MUT),
	KINESIS_OP("UpdateAccountSettings", ACCOUNT_SETTINGS, kinesis_update_account_settings,
		   MUT),
	KINESIS_OP("UpdateMaxRecordSize", MAX_RECORD_SIZE, kinesis_update_max_record_size, MUT),
	KINESIS_OP_S("UpdateShardCount", UPDATE_SHARD_COUNT, kinesis_update_shard_count, MUT),
	KINESIS_OP("UpdateStreamMode", UPDATE_STREAM_MODE, kinesis_update_stream_mode, MUT),
	KINESIS_OP_S("UpdateStreamWarmThroughput", WARM_THROUGHPUT, kinesis_update_warm_throughput,
		     MUT),
};

#undef MUT

/* ---- Replies ------------------------------------------------------------ */

void
kinesis_error(struct api_call *call, const char *type, const char *fmt, ...)
{
	char message[KINESIS_MESSAGE_SIZE * 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	api_call_error(call, 400, type, "%s", message);
}

void
kinesis_serialization_error(struct api_call *call, const char *message)
{
	api_call_error(call, 400, "SerializationException", "%s", message != NULL ? message : "");
}

void
kinesis_internal_error(struct api_call *call)
{
	api_call_error(call, 500, "InternalFailure", "%s", "");
}

void
kinesis_out_timestamp(struct api_out *out, uint64_t ms)
{
	api_out_printf(out, "%llu.%03llu", (unsigned long long)(ms / 1000),
		       (unsigned long long)(ms % 1000));
}

uint64_t
kinesis_now_ms(const struct api_request *req)
{
	return req->now_ns / 1000000u;
}

/* ---- The table ------------------------------------------------------------ */

const struct kinesis_op *
kinesis_op_find(const char *name, size_t size)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_ops); i++)
		if (strlen(kinesis_ops[i].name) == size &&
		    memcmp(kinesis_ops[i].name, name, size) == 0)
			return &kinesis_ops[i];
	return NULL;
}

/* The served operations get their own API series (metrics.h); the rest count as "Other". */
void
kinesis_ops_register_metrics(void)
{
	static const char *names[ARRAY_SIZE(kinesis_ops)]; /* metrics.c keeps the pointer. */
	uint32_t n = 0;

	static_assert(ARRAY_SIZE(kinesis_ops) <= METRICS_API_OPS_MAX, "each has series");
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_ops); i++)
		if (kinesis_ops[i].handler != NULL)
			names[n++] = kinesis_ops[i].name;
	metrics_api_ops_register(names, n);
}

/* ---- Dispatch ------------------------------------------------------------- */

void
kinesis_unknown_operation(struct api_call *call, const struct kinesis_op *op)
{
	char message[128] = "";

	/* A model operation not served says so; anything else gets AWS's bare answer. */
	if (op != NULL)
		snprintf(message, sizeof(message), "%s is not supported by this endpoint.",
			 op->name);
	api_call_error(call, 400, "UnknownOperationException", "%s", message);
}

/* The checked path: the body against the shape, the stream resolved, the handler. */
static void
kinesis_dispatch_checked(struct kinesis_req *r)
{
	const struct kinesis_op *op = r->op;

	if (kv_check(r) != 0)
		return;
	if ((op->flags & KINESIS_OP_STREAM) != 0)
		r->stream = kinesis_stream_resolve(r->k, r->call, &r->v[op->stream_name],
						   &r->v[op->stream_arn]);
	if ((op->flags & KINESIS_OP_STREAM) == 0 || r->stream != NULL)
		op->handler(r);
	cJSON_Delete(r->root);
}

void
kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	size_t prefix = strlen(KINESIS_TARGET_PREFIX);
	const struct kinesis_op *op = NULL;

	if (api_firehose_target(req->target, req->target_size)) {
		firehose_api_dispatch(k, call, req);
		return;
	}
	kinesis_stream_status_tick(k, clock_mono_ns());
	if (req->target != NULL && req->target_size > prefix &&
	    memcmp(req->target, KINESIS_TARGET_PREFIX, prefix) == 0)
		op = kinesis_op_find(req->target + prefix, req->target_size - prefix);
	if (op == NULL || op->handler == NULL) {
		kinesis_unknown_operation(call, op);
		return;
	}
	kinesis_op_run(k, call, req, op);
}

void
kinesis_op_run(struct kinesis *k, struct api_call *call, const struct api_request *req,
	       const struct kinesis_op *op)
{
	struct kinesis_req r = {
		.k = k, .call = call, .req = req, .op = op, .scratch = k->req_scratch,
	};

	if (!kinesis_access_begin(k, call, req, op))
		return;
	if (op->fast == NULL || op->fast(&r) != 0)
		kinesis_dispatch_checked(&r);
	kinesis_access_end(k);
}
