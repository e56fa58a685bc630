/*
 * policy: resource-based policies. A table of allow/deny decisions across
 * two accounts' principals (the appliance owner's alice, another account's bob
 * and carol, a third account's dave), every refused document with its reason,
 * the bounds (size, statements), AWS's AccessDeniedException texts, and
 * wildcard matching (including a pattern that is exponential for naive
 * backtracking).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "control/policy.h"

#define OWNER "111122223333"
#define ALICE "arn:aws:iam::111122223333:user/alice"
#define BOB "arn:aws:iam::444455556666:user/bob"
#define CAROL "arn:aws:iam::444455556666:role/carol"
#define DAVE "arn:aws:iam::777788889999:user/dave"
#define ORDERS "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
#define LOGS "arn:aws:kinesis:us-east-1:111122223333:stream/logs"

struct policy_case {
	const char *policy;     /* NULL: no policy attached. */
	const char *principal;
	const char *action;
	const char *resource;
	int expected;           /* 0 allowed, 'i' implicit deny, 'x' explicit deny. */
};

#define STMT(effect, principal, action, resource) \
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"" effect "\",\"Principal\":" \
	principal ",\"Action\":" action ",\"Resource\":" resource "}]}"
#define BOB_AWS "{\"AWS\":\"" BOB "\"}"
#define ANY_REGION "arn:aws:kinesis:*:111122223333:stream/"

static const struct policy_case cases[] = {
	/* No policy: the owner's principals only. */
	{ NULL, ALICE, "kinesis:PutRecord", ORDERS, 0 },
	{ NULL, BOB, "kinesis:PutRecord", ORDERS, 'i' },
	/* Allow bob Get*: bob reads, does not write; alice is unaffected; carol is not named. */
	{ STMT("Allow", BOB_AWS, "\"kinesis:Get*\"", "\"" ORDERS "\""), BOB, "kinesis:GetRecords",
	  ORDERS, 0 },
	{ STMT("Allow", BOB_AWS, "\"kinesis:Get*\"", "\"" ORDERS "\""), BOB, "kinesis:PutRecord",
	  ORDERS, 'i' },
	{ STMT("Allow", BOB_AWS, "\"kinesis:Get*\"", "\"" ORDERS "\""), ALICE, "kinesis:PutRecord",
	  ORDERS, 0 },
	{ STMT("Allow", BOB_AWS, "\"kinesis:Get*\"", "\"" ORDERS "\""), CAROL, "kinesis:GetRecords",
	  ORDERS, 'i' },
	/* The resource must match too. */
	{ STMT("Allow", BOB_AWS, "\"kinesis:*\"", "\"" ORDERS "\""), BOB, "kinesis:GetRecords",
	  LOGS, 'i' },
	/* An account id, or its root ARN, stands for every principal of the account. */
	{ STMT("Allow", "{\"AWS\":\"444455556666\"}", "\"kinesis:*\"", "\"*\""), CAROL,
	  "kinesis:PutRecords", ORDERS, 0 },
	{ STMT("Allow", "{\"AWS\":[\"arn:aws:iam::444455556666:root\"]}", "\"*\"", "\"*\""), BOB,
	  "kinesis:PutRecords", ORDERS, 0 },
	{ STMT("Allow", "{\"AWS\":\"444455556666\"}", "\"kinesis:*\"", "\"*\""), DAVE,
	  "kinesis:PutRecords", ORDERS, 'i' },
	/* An explicit Deny beats the owner's implicit allow and any Allow. */
	{ STMT("Deny", "{\"AWS\":\"" ALICE "\"}", "\"kinesis:DeleteStream\"", "\"" ORDERS "\""),
	  ALICE, "kinesis:DeleteStream", ORDERS, 'x' },
	{ STMT("Deny", "{\"AWS\":\"" ALICE "\"}", "\"kinesis:DeleteStream\"", "\"" ORDERS "\""),
	  ALICE, "kinesis:PutRecord", ORDERS, 0 },
	{ "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kinesis:*\","
	  "\"Resource\":\"*\"},{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":"
	  "\"kinesis:Delete*\",\"Resource\":\"*\"}]}", BOB, "kinesis:DeleteStream", ORDERS, 'x' },
	{ "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kinesis:*\","
	  "\"Resource\":\"*\"},{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":"
	  "\"kinesis:Delete*\",\"Resource\":\"*\"}]}", BOB, "kinesis:PutRecord", ORDERS, 0 },
	/* NotAction, NotResource. */
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":" BOB_AWS ",\"NotAction\":"
	  "\"kinesis:Delete*\",\"Resource\":\"*\"}}", BOB, "kinesis:ListShards", ORDERS, 0 },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":" BOB_AWS ",\"NotAction\":"
	  "\"kinesis:Delete*\",\"Resource\":\"*\"}}", BOB, "kinesis:DeleteStream", ORDERS, 'i' },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":" BOB_AWS ",\"Action\":\"*\","
	  "\"NotResource\":\"" LOGS "\"}}", BOB, "kinesis:PutRecord", ORDERS, 0 },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":" BOB_AWS ",\"Action\":\"*\","
	  "\"NotResource\":\"" LOGS "\"}}", BOB, "kinesis:PutRecord", LOGS, 'i' },
	/* Action names compare case-blind; ARNs do not. Wildcards `?` and `*` in ARNs. */
	{ STMT("Allow", BOB_AWS, "\"KINESIS:putrecord\"", "\"*\""), BOB, "kinesis:PutRecord",
	  ORDERS, 0 },
	{ STMT("Allow", BOB_AWS, "\"kinesis:*\"", "\"" ANY_REGION "ORDERS\""), BOB,
	  "kinesis:PutRecord", ORDERS, 'i' },
	{ STMT("Allow", BOB_AWS, "\"kinesis:*\"", "\"" ANY_REGION "ord?rs\""), BOB,
	  "kinesis:PutRecord", ORDERS, 0 },
	{ STMT("Allow", BOB_AWS, "\"kinesis:*\"", "\"" ANY_REGION "ord?rs\""), BOB,
	  "kinesis:PutRecord", LOGS, 'i' },
	/* A list of principals: each is matched. */
	{ STMT("Allow", "{\"AWS\":[\"" DAVE "\",\"" CAROL "\"]}", "[\"kinesis:PutRecord\","
	  "\"kinesis:PutRecords\"]", "\"*\""), CAROL, "kinesis:PutRecords", ORDERS, 0 },
	{ STMT("Allow", "{\"AWS\":[\"" DAVE "\",\"" CAROL "\"]}", "[\"kinesis:PutRecord\","
	  "\"kinesis:PutRecords\"]", "\"*\""), BOB, "kinesis:PutRecords", ORDERS, 'i' },
	/* Consumer ARNs are resources like any other. */
	{ STMT("Allow", BOB_AWS, "\"kinesis:SubscribeToShard\"", "\"" ORDERS "/consumer/*\""), BOB,
	  "kinesis:SubscribeToShard", ORDERS "/consumer/app:1700000000", 0 },
};

static struct policy compiled;

Test(policy, decision_table)
{
	char message[POLICY_MESSAGE_SIZE];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct policy_case *c = &cases[i];
		struct policy_request r = { c->principal, c->action, c->resource };
		int rc;

		if (c->policy != NULL)
			cr_assert_eq(policy_parse(&compiled, c->policy, strlen(c->policy), message,
						  sizeof(message)), 0, "case %zu: %s", i, message);
		rc = policy_authorize(c->policy != NULL ? &compiled : NULL, &r, OWNER, message,
				      sizeof(message));
		cr_assert_eq(rc, c->expected == 0 ? 0 : -EACCES, "case %zu", i);
		if (c->expected == 'x')
			cr_assert(strstr(message, "with an explicit deny") != NULL, "case %zu: %s",
				  i, message);
		if (c->expected == 'i')
			cr_assert(strstr(message, "because no resource-based policy") != NULL,
				  "case %zu: %s", i, message);
	}
}

Test(policy, aws_texts)
{
	struct policy_request r = { BOB, "kinesis:PutRecord", ORDERS };
	char message[POLICY_MESSAGE_SIZE];
	const char *deny = STMT("Deny", BOB_AWS, "\"kinesis:*\"", "\"*\"");

	cr_assert_eq(policy_authorize(NULL, &r, OWNER, message, sizeof(message)), -EACCES);
	cr_assert_str_eq(message, "User: " BOB " is not authorized to perform: kinesis:PutRecord "
			 "on resource: " ORDERS " because no resource-based policy allows the "
			 "kinesis:PutRecord action");
	cr_assert_eq(policy_parse(&compiled, deny, strlen(deny), message, sizeof(message)), 0);
	cr_assert_eq(policy_authorize(&compiled, &r, OWNER, message, sizeof(message)), -EACCES);
	cr_assert_str_eq(message, "User: " BOB " is not authorized to perform: kinesis:PutRecord "
			 "on resource: " ORDERS " with an explicit deny in a resource-based "
			 "policy");
	r.action = "kinesis:ListStreams";
	policy_identity_denied(&r, message, sizeof(message));
	cr_assert_str_eq(message, "User: " BOB " is not authorized to perform: kinesis:ListStreams "
			 "because no identity-based policy allows the kinesis:ListStreams action");
}

struct refused {
	const char *policy;
	int rc;
	const char *reason;    /* A substring of the message. */
};

static const struct refused refused[] = {
	{ "", -EINVAL, "Syntax errors in policy." },
	{ "{\"Statement\":[", -EINVAL, "Syntax errors in policy." },
	{ "[]", -EINVAL, "Syntax errors in policy." },
	{ "{}", -EINVAL, "Statement must be" },
	{ "{\"Statement\":[]}", -EINVAL, "Statement must be" },
	{ "{\"Version\":\"2020-01-01\",\"Statement\":[]}", -EINVAL, "Version must be" },
	{ "{\"Statement\":[],\"Extra\":1}", -EINVAL, "unknown key 'Extra'" },
	{ STMT("Maybe", BOB_AWS, "\"*\"", "\"*\""), -EINVAL, "Effect must be" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}", -EINVAL,
	  "needs a Principal" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Resource\":\"*\"}}", -EINVAL,
	  "exactly one of Action and NotAction" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"NotAction\":"
	  "\"*\",\"Resource\":\"*\"}}", -EINVAL, "exactly one of Action and NotAction" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\"}}", -EINVAL,
	  "exactly one of Resource and NotResource" },
	{ STMT("Allow", BOB_AWS, "\"s3:GetObject\"", "\"*\""), -EINVAL, "is not a kinesis action" },
	{ STMT("Allow", BOB_AWS, "[]", "\"*\""), -EINVAL, "non-empty list" },
	{ STMT("Allow", BOB_AWS, "[1]", "\"*\""), -EINVAL, "list of strings" },
	{ STMT("Allow", BOB_AWS, "\"*\"", "\"stream/orders\""), -EINVAL, "is not an ARN" },
	{ STMT("Allow", "{\"AWS\":\"bob\"}", "\"*\"", "\"*\""), -EINVAL, "Invalid principal" },
	{ STMT("Allow", "{\"AWS\":\"arn:aws:iam::1234:user/x\"}", "\"*\"", "\"*\""), -EINVAL,
	  "Invalid principal" },
	{ STMT("Allow", "{\"AWS\":\"arn:aws:iam::123456789012:group/x\"}", "\"*\"", "\"*\""),
	  -EINVAL, "Invalid principal" },
	{ STMT("Allow", "{\"Service\":\"lambda.amazonaws.com\"}", "\"*\"", "\"*\""), -EINVAL,
	  "Principal type 'Service' is not supported" },
	{ STMT("Allow", "\"bob\"", "\"*\"", "\"*\""), -EINVAL, "Principal must be" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"NotPrincipal\":\"*\",\"Action\":\"*\","
	  "\"Resource\":\"*\"}}", -EINVAL, "NotPrincipal is not supported" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":"
	  "\"*\",\"Condition\":{\"StringEquals\":{\"aws:PrincipalAccount\":\"1\"}}}}", -EINVAL,
	  "Condition is not supported" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":"
	  "\"*\",\"Sid\":7}}", -EINVAL, "Sid must be a string" },
	{ "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":"
	  "\"*\",\"Foo\":\"x\"}}", -EINVAL, "unknown statement key 'Foo'" },
};

Test(policy, refuses_each_malformed_document_with_its_reason)
{
	char message[POLICY_MESSAGE_SIZE];

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const struct refused *c = &refused[i];

		cr_assert_eq(policy_parse(&compiled, c->policy, strlen(c->policy), message,
					  sizeof(message)), c->rc, "case %zu (%s)", i, c->policy);
		cr_assert(strstr(message, "Invalid policy document: ") == message, "%s", message);
		cr_assert(strstr(message, c->reason) != NULL, "case %zu: %s", i, message);
	}
}

/* A document of n copies of one statement, padded with spaces to `size` bytes. */
static char *
policy_build(size_t n, size_t size)
{
	static const char one[] = "{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\","
		"\"Resource\":\"*\"}";
	char *doc = malloc(size + 1);
	size_t used = 0;

	cr_assert_not_null(doc);
	used += (size_t)sprintf(doc, "{\"Statement\":[");
	for (size_t i = 0; i < n; i++)
		used += (size_t)sprintf(doc + used, "%s%s", i > 0 ? "," : "", one);
	used += (size_t)sprintf(doc + used, "]}");
	cr_assert_leq(used, size);
	memset(doc + used, ' ', size - used);
	doc[size] = '\0';
	return doc;
}

Test(policy, bounds_size_and_statements)
{
	char message[POLICY_MESSAGE_SIZE];
	char *at_limit = policy_build(10, POLICY_SIZE_MAX);
	char *over = policy_build(10, POLICY_SIZE_MAX + 1);
	char *many = policy_build(POLICY_STATEMENTS_MAX + 1, POLICY_SIZE_MAX);
	char *enough = policy_build(POLICY_STATEMENTS_MAX, POLICY_SIZE_MAX);

	cr_assert_eq(policy_parse(&compiled, at_limit, POLICY_SIZE_MAX, message,
				  sizeof(message)), 0, "%s", message);
	cr_assert_eq(compiled.statement_count, 10);
	cr_assert_eq(policy_parse(&compiled, over, POLICY_SIZE_MAX + 1, message,
				  sizeof(message)), -E2BIG);
	cr_assert(strstr(message, "larger than 20480 bytes") != NULL, "%s", message);
	cr_assert_eq(policy_parse(&compiled, enough, POLICY_SIZE_MAX, message, sizeof(message)),
		     0, "%s", message);
	cr_assert_eq(policy_parse(&compiled, many, POLICY_SIZE_MAX, message, sizeof(message)),
		     -E2BIG);
	cr_assert(strstr(message, "more than 100 statements") != NULL, "%s", message);
	free(at_limit);
	free(over);
	free(many);
	free(enough);
}

Test(policy, wildcards)
{
	static const struct {
		const char *pattern;
		const char *text;
		bool fold;
		bool match;
	} w[] = {
		{ "", "", false, true }, { "", "a", false, false }, { "*", "", false, true },
		{ "*", "anything", false, true }, { "a*", "a", false, true },
		{ "a?c", "abc", false, true }, { "a?c", "ac", false, false },
		{ "*b*", "abc", false, true }, { "*b", "abc", false, false },
		{ "a*b*c", "aXbYbZc", false, true }, { "a*b*c", "aXbYbZ", false, false },
		{ "ABC", "abc", false, false }, { "ABC", "abc", true, true },
		{ "**a", "ba", false, true }, { "a*?", "a", false, false },
	};
	char text[10001];

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		cr_assert_eq(policy_wildcard_match(w[i].pattern, strlen(w[i].pattern), w[i].text,
						   strlen(w[i].text), w[i].fold), w[i].match,
			     "'%s' vs '%s'", w[i].pattern, w[i].text);
	/* Exponential for naive recursion (each '*' retried at every split); linear here. */
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	cr_assert_not(policy_wildcard_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", 26, text,
					    strlen(text), false));
	cr_assert(policy_wildcard_match("*a*a*a*a*a*a*a*a*a*a*a*a*", 25, text, strlen(text),
					false));
}

Test(policy, principal_arns)
{
	char account[POLICY_ACCOUNT_ID_SIZE + 1];

	cr_assert_eq(policy_principal_account(ALICE, account), 0);
	cr_assert_str_eq(account, OWNER);
	cr_assert_eq(policy_principal_account("arn:aws:iam::444455556666:root", account), 0);
	cr_assert_str_eq(account, "444455556666");
	cr_assert_eq(policy_principal_account(CAROL, account), 0);
	cr_assert_eq(policy_principal_account("arn:aws:iam::44445555666:root", account), -EINVAL);
	cr_assert_eq(policy_principal_account("arn:aws:iam::44445555666a:root", account), -EINVAL);
	cr_assert_eq(policy_principal_account("arn:aws:iam::444455556666:user/", account), -EINVAL);
	cr_assert_eq(policy_principal_account("arn:aws:s3::444455556666:root", account), -EINVAL);
	cr_assert_eq(policy_principal_account("444455556666", account), -EINVAL);
	cr_assert_eq(policy_principal_account("", account), -EINVAL);
}
