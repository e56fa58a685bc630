/*
 * kinesis_policies.c - Put/Get/DeleteResourcePolicy and the access check
 * (contract in kinesis_policies.h; the policy language in policy.h).
 *
 * ResourceARN -> resource:
 *
 *   ARN                                                  RESOURCE
 *   arn:aws:kinesis:REGION:ACCOUNT:stream/NAME           the stream NAME
 *   .../stream/NAME/consumer/CNAME:TIMESTAMP             the consumer CNAME of NAME (its ARN
 *                                                        exactly, timestamp included)
 *   another region or account                            ResourceNotFoundException
 *
 * Answers: Put and Delete are empty; Get is {"Policy": TEXT}, "{}" when the
 * resource has none (as moto answers); Delete of none: ResourceNotFoundException
 * "No resource policy found for resource ARN ARN.". A refused document:
 * InvalidArgumentException with the reason (policy.c); more than
 * POLICY_STORE_POLICIES_MAX on the appliance: LimitExceededException.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "control/kinesis.h"
#include "control/policy_store.h"

#define KINESIS_CONSUMER_MARK "/consumer/"

/*
 * The operations whose handlers check their resource's policy (the stream
 * resolved by kinesis_stream_resolve(), or by an iterator or a NextToken): the
 * only ones a principal of another account may call. An operation added to
 * the table joins this list once its handler checks (kinesis_authorize());
 * until then such principals are refused it, never let through.
 */
static const char *const kinesis_resource_ops[] = {
	"AddTagsToStream", "DecreaseStreamRetentionPeriod", "DeleteStream",
	"DeregisterStreamConsumer", "DescribeStream", "DescribeStreamConsumer",
	"DescribeStreamSummary", "GetRecords", "GetShardIterator",
	"IncreaseStreamRetentionPeriod", "ListShards", "ListStreamConsumers",
	"ListTagsForStream", "MergeShards", "PutRecord", "PutRecords",
	"RegisterStreamConsumer", "RemoveTagsFromStream", "SplitShard", "SubscribeToShard",
	"UpdateShardCount", "UpdateStreamMode",
};

/*
 * Of those, the ones whose resource is a consumer (its ARN, its policy): the
 * stream they pass on the way is not checked (kinesis_stream_lookup), the
 * consumer is (kinesis_consumer_by_arn, kinesis_consumer_resolve).
 */
static const char *const kinesis_consumer_ops[] = {
	"DeregisterStreamConsumer", "DescribeStreamConsumer", "SubscribeToShard",
};

int
kinesis_policies_open(struct kinesis *k)
{
	return policy_store_open(k->md, &k->policies);
}

void
kinesis_policies_close(struct kinesis *k)
{
	policy_store_close(k->policies);
	k->policies = NULL;
}

void
kinesis_policies_forget(struct kinesis *k, uint32_t stream_id)
{
	if (k->policies != NULL)  /* NULL while kinesis_open() reconciles: loaded after. */
		policy_store_forget_stream(k->policies, stream_id);
}

/* ---- The access check ------------------------------------------------------ */

static bool
kinesis_op_listed(const char *const *ops, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(ops[i], name) == 0)
			return true;
	return false;
}

static void
kinesis_access_denied(struct api_call *call, const char *message)
{
	kinesis_error(call, "AccessDeniedException", "%s", message);
}

bool
kinesis_access_begin(struct kinesis *k, struct api_call *call, const struct api_request *req,
		     const struct kinesis_op *op)
{
	struct kinesis_authz *a = &k->authz;
	bool firehose = api_firehose_target(req->target, req->target_size);
	char account[POLICY_ACCOUNT_ID_SIZE + 1];
	char message[POLICY_MESSAGE_SIZE];
	const char *root;
	int n;

	memset(a, 0, sizeof(*a));
	a->enforce = req->principal_arn != NULL && req->principal_arn[0] != '\0';
	if (!a->enforce)
		return true;
	a->principal_arn = req->principal_arn;
	n = snprintf(a->action, sizeof(a->action), "%s:%s", firehose ? "firehose" : "kinesis",
		     op->name);
	assert(n > 0 && (size_t)n < sizeof(a->action));
	a->owner = policy_principal_account(a->principal_arn, account) == 0 &&
		   strcmp(account, k->config.account_id) == 0;
	root = strrchr(a->principal_arn, ':');
	a->root = a->owner && root != NULL && strcmp(root, ":root") == 0;
	a->consumer = !firehose && kinesis_op_listed(kinesis_consumer_ops,
						     ARRAY_SIZE(kinesis_consumer_ops), op->name);
	/* Firehose's handlers check no resource policy: its operations are the owner's only. */
	if (a->owner || (!firehose && kinesis_op_listed(kinesis_resource_ops,
							ARRAY_SIZE(kinesis_resource_ops), op->name)))
		return true;
	policy_identity_denied(&(struct policy_request){ a->principal_arn, a->action, NULL },
			       message, sizeof(message));
	kinesis_access_denied(call, message);
	return false;
}

void
kinesis_access_end(struct kinesis *k)
{
	memset(&k->authz, 0, sizeof(k->authz));
}

/* The owner's root may always replace or remove a policy: no document locks it out. */
static bool
kinesis_root_exempt(const struct kinesis_authz *a)
{
	return a->root && (strcmp(a->action, "kinesis:PutResourcePolicy") == 0 ||
			   strcmp(a->action, "kinesis:DeleteResourcePolicy") == 0);
}

bool
kinesis_authorize(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		  const char *consumer_name, const char *consumer_arn)
{
	const struct kinesis_authz *a = &k->authz;
	char message[POLICY_MESSAGE_SIZE];
	const struct policy *p = NULL;
	struct policy_request req;
	int rc;

	if (!a->enforce || kinesis_root_exempt(a))
		return true;
	rc = policy_store_find(k->policies, s->stream_id, consumer_name != NULL ?
			       consumer_name : "", &p);
	if (rc != 0) {
		diag_error("kinesis", "resource policy of stream %u: %s", s->stream_id,
			   strerror(-rc));
		kinesis_internal_error(call);
		return false;
	}
	req = (struct policy_request){ a->principal_arn, a->action,
				       consumer_name != NULL ? consumer_arn : s->arn };
	if (policy_authorize(p, &req, k->config.account_id, message, sizeof(message)) == 0)
		return true;
	kinesis_access_denied(call, message);
	return false;
}

bool
kinesis_authorize_missing_arn(struct kinesis *k, struct api_call *call, const char *arn)
{
	const struct kinesis_authz *a = &k->authz;
	char message[POLICY_MESSAGE_SIZE];

	if (!a->enforce || a->owner)
		return true;
	policy_authorize(NULL, &(struct policy_request){ a->principal_arn, a->action, arn },
			 k->config.account_id, message, sizeof(message));
	kinesis_access_denied(call, message);
	return false;
}

bool
kinesis_authorize_missing(struct kinesis *k, struct api_call *call, const char *name,
			  size_t size)
{
	char arn[KINESIS_ARN_SIZE];

	if (!k->authz.enforce || k->authz.owner)
		return true;
	snprintf(arn, sizeof(arn), "arn:aws:kinesis:%s:%s:stream/%.*s", k->config.region,
		 k->config.account_id, (int)size, name);
	return kinesis_authorize_missing_arn(k, call, arn);
}

/* ---- Put/Get/DeleteResourcePolicy -------------------------------------------- */

/* kinesis_policies.h; TagResource and friends resolve their ResourceARN here too. */
struct kinesis_stream *
kinesis_resource_resolve(struct kinesis_req *r, const struct kv_value *arn, bool change,
			const char **consumer)
{
	const struct kv_value no_name = { .json = NULL };
	struct kv_value stream_arn = *arn;
	char text[KINESIS_ARN_SIZE];
	struct kinesis_stream *s = NULL;
	bool deleting = false;

	*consumer = "";
	if (strstr(arn->string, KINESIS_CONSUMER_MARK) != NULL) {
		*consumer = kinesis_consumer_named(r, arn->string, &s, &deleting);
		if (*consumer == NULL)
			return NULL;
		if (change && deleting) {
			kinesis_error(r->call, "ResourceInUseException", "Consumer %s is in "
				      "DELETING state.", arn->string);
			return NULL;
		}
		return s;
	}
	if (arn->size >= sizeof(text)) {
		kinesis_error(r->call, "ResourceNotFoundException", "Stream %s not found.",
			      arn->string);
		return NULL;
	}
	memcpy(text, arn->string, arn->size + 1);
	stream_arn.string = text;
	s = kinesis_stream_resolve(r->k, r->call, &no_name, &stream_arn);
	if (s != NULL && change && s->status == KINESIS_DELETING) {
		kinesis_error(r->call, "ResourceInUseException", "Stream %s under account %s not "
			      "ACTIVE, instead in state DELETING", s->name,
			      r->k->config.account_id);
		return NULL;
	}
	return s;
}

void
kinesis_put_resource_policy(struct kinesis_req *r)
{
	const struct kv_value *policy = &r->v[PUT_POLICY_POLICY];
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, &r->v[PUT_POLICY_RESOURCE_ARN],
							   true, &consumer);
	char message[POLICY_MESSAGE_SIZE];
	int rc;

	if (s == NULL)
		return;
	message[0] = '\0';
	rc = kinesis_md_policy_put(r->k, s, consumer, policy->string, policy->size, message,
				   sizeof(message));
	if (rc == -ENOENT) {   /* Cluster mode: the stream or consumer left etcd meanwhile. */
		kinesis_error(r->call, "ResourceNotFoundException", "Resource %s not found.",
			      r->v[PUT_POLICY_RESOURCE_ARN].string);
		return;
	}
	if (rc == -EINVAL || rc == -E2BIG) {
		kinesis_error(r->call, "InvalidArgumentException", "%s", message);
		return;
	}
	if (rc == -EDQUOT) {
		kinesis_error(r->call, "LimitExceededException", "%s", message);
		return;
	}
	if (rc != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	api_call_reply(r->call, 200);
}

void
kinesis_get_resource_policy(struct kinesis_req *r)
{
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, &r->v[GET_POLICY_RESOURCE_ARN],
							   false, &consumer);
	struct api_out *out;
	size_t size = 0;
	int rc;

	if (s == NULL)
		return;
	rc = policy_store_text(r->k->policies, s->stream_id, consumer, r->k->policy_text,
			       sizeof(r->k->policy_text), &size);
	if (rc == -ENOENT) {
		strcpy(r->k->policy_text, "{}");
		size = 2;
	} else if (rc != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	out = api_call_out(r->call);
	api_out_printf(out, "{\"Policy\":");
	api_out_json_string(out, r->k->policy_text, size);
	api_out_printf(out, "}");
	api_call_reply(r->call, 200);
}

void
kinesis_delete_resource_policy(struct kinesis_req *r)
{
	const struct kv_value *arn = &r->v[DELETE_POLICY_RESOURCE_ARN];
	const char *consumer;
	struct kinesis_stream *s = kinesis_resource_resolve(r, arn, false, &consumer);
	int rc;

	if (s == NULL)
		return;
	rc = kinesis_md_policy_delete(r->k, s, consumer);
	if (rc == -ENOENT) {
		kinesis_error(r->call, "ResourceNotFoundException", "No resource policy found for "
			      "resource ARN %s.", arn->string);
		return;
	}
	if (rc != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	api_call_reply(r->call, 200);
}
