/*
 * kinesis_policies.h - the resource-policy concern (kinesis_policies.c):
 * Put/Get/DeleteResourcePolicy, and the access check every call passes
 * when [auth] mode = sigv4. Included by control/kinesis.h.
 *
 * Where a call is checked (policy.h says how a decision is made):
 *
 *   WHEN                                   WHAT
 *   before the handler (dispatch)          a principal of another account may call only
 *                                          the operations kinesis_policies.c lists as
 *                                          checking their resource; others, and every
 *                                          Firehose operation: AccessDenied
 *   the stream is found (resolve, or by    the stream's policy for kinesis:<Operation>
 *   an iterator or NextToken)              on the stream's ARN
 *   a consumer is found (its concern)      kinesis_authorize() with the consumer's name;
 *                                          for the consumer operations the stream found
 *                                          on the way is not checked: the consumer's own
 *                                          policy decides (as AWS evaluates the consumer
 *                                          ARN as the resource)
 *
 * A principal of another account naming a stream that does not exist gets
 * AccessDenied, not ResourceNotFound: no policy can allow it, and the name is
 * not confirmed. The owner account's root (a key not in [auth] principals) is
 * never denied Put/DeleteResourcePolicy, so a policy that denies everyone can
 * always be removed.
 */
#ifndef SLUICE_CONTROL_KINESIS_POLICIES_H
#define SLUICE_CONTROL_KINESIS_POLICIES_H

#include "control/kinesis.h"
#include "control/policy.h"

/* ---- Input shapes (kinesis_validate.h) ------------------------------------ */

#define KV_STREAM_ID KV_STR("StreamId", false, KV_PATTERN_NONE, 1, 24)
/* A stream's or a consumer's ARN (kinesis_tags.h's TagResource family uses the same member). */
#define KV_RESOURCE_ARN KV_STR("ResourceARN", true, KV_PATTERN_RESOURCE_ARN, 1, 2048)

#define KINESIS_SHAPE_PUT_POLICY(F) \
	F(PUT_POLICY, RESOURCE_ARN, KV_RESOURCE_ARN) \
	F(PUT_POLICY, STREAM_ID, KV_STREAM_ID) \
	F(PUT_POLICY, POLICY, KV_STR("Policy", true, KV_PATTERN_NONE, -1, -1))
KV_SHAPE_ENUM(PUT_POLICY);

#define KINESIS_SHAPE_GET_POLICY(F) \
	F(GET_POLICY, RESOURCE_ARN, KV_RESOURCE_ARN) \
	F(GET_POLICY, STREAM_ID, KV_STREAM_ID)
KV_SHAPE_ENUM(GET_POLICY);

#define KINESIS_SHAPE_DELETE_POLICY(F) \
	F(DELETE_POLICY, RESOURCE_ARN, KV_RESOURCE_ARN) \
	F(DELETE_POLICY, STREAM_ID, KV_STREAM_ID)
KV_SHAPE_ENUM(DELETE_POLICY);

kinesis_handler_fn kinesis_put_resource_policy;
kinesis_handler_fn kinesis_get_resource_policy;
kinesis_handler_fn kinesis_delete_resource_policy;

/* Opens the policy store over k->md (at kinesis_open). */
int kinesis_policies_open(struct kinesis *k);
void kinesis_policies_close(struct kinesis *k);

/*
 * Sets k->authz for the call and makes the check that needs no resource.
 * False when it answered AccessDenied (the handler must not run).
 */
bool kinesis_access_begin(struct kinesis *k, struct api_call *call,
			  const struct api_request *req, const struct kinesis_op *op);

/* The call has been handled: work done outside a call (timers, completions) checks nothing. */
void kinesis_access_end(struct kinesis *k);

/*
 * The call's principal against the policy of stream `s` (consumer_name NULL)
 * or of its consumer `consumer_name` whose ARN is `consumer_arn`. True:
 * allowed; false: AccessDenied answered (or InternalFailure if SQLite failed).
 */
bool kinesis_authorize(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		       const char *consumer_name, const char *consumer_arn);

/*
 * A stream `name` that does not exist: true when the caller may hear so
 * (ResourceNotFound); false after answering AccessDenied to another account.
 */
bool kinesis_authorize_missing(struct kinesis *k, struct api_call *call, const char *name,
			       size_t size);
/* The same for a resource named by its ARN (a consumer that does not exist). */
bool kinesis_authorize_missing_arn(struct kinesis *k, struct api_call *call, const char *arn);

/*
 * The resource a ResourceARN names (policies and tags): its stream, and in *consumer
 * the consumer's name ("" for the stream itself), resolved and checked as a StreamARN
 * or a ConsumerARN would be; NULL after answering. `change`: a stream or consumer being
 * deleted is refused (ResourceInUseException), as what is changed would outlive it.
 */
struct kinesis_stream *kinesis_resource_resolve(struct kinesis_req *r, const struct kv_value *arn,
						bool change, const char **consumer);

/* A deleted stream's policies leave the index (SQLite's rows went with the stream). */
void kinesis_policies_forget(struct kinesis *k, uint32_t stream_id);

#endif /* SLUICE_CONTROL_KINESIS_POLICIES_H */
