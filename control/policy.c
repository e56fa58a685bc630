/*
 * policy.c - resource-based policies: parse into the compiled form, evaluate
 * (contract and what is supported: policy.h).
 *
 * AccessDeniedException texts (AWS's, for a resource-based decision):
 *
 *   DECISION                         MESSAGE
 *   explicit Deny                    User: P is not authorized to perform: A on resource: R
 *                                    with an explicit deny in a resource-based policy
 *   no Allow, another account        User: P is not authorized to perform: A on resource: R
 *                                    because no resource-based policy allows the A action
 *   account-level action, another    User: P is not authorized to perform: A because no
 *   account (policy_identity_denied) identity-based policy allows the A action
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "control/policy.h"

#define POLICY_ACTION_PREFIX "kinesis:"
#define POLICY_ARN_IAM_PREFIX "arn:aws:iam::"

static char
policy_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool
policy_byte_eq(char a, char b, bool fold_case)
{
	return fold_case ? policy_lower(a) == policy_lower(b) : a == b;
}

bool
policy_wildcard_match(const char *pattern, size_t pattern_size, const char *text,
		      size_t text_size, bool fold_case)
{
	size_t p = 0;
	size_t t = 0;
	size_t star = SIZE_MAX;  /* Pattern index just after the last '*' seen. */
	size_t resume = 0;       /* Text index that '*' has swallowed up to. */

	while (t < text_size) {
		if (p < pattern_size && pattern[p] == '*') {
			star = ++p;
			resume = t;
		} else if (p < pattern_size &&
			   (pattern[p] == '?' || policy_byte_eq(pattern[p], text[t], fold_case))) {
			p++;
			t++;
		} else if (star != SIZE_MAX) {
			/* Only the last '*' is retried: earlier ones cannot do better. */
			p = star;
			t = ++resume;
		} else {
			return false;
		}
	}
	while (p < pattern_size && pattern[p] == '*')
		p++;
	return p == pattern_size;
}

static bool
policy_all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

int
policy_principal_account(const char *arn, char account[POLICY_ACCOUNT_ID_SIZE + 1])
{
	const char *p = arn;
	const char *colon;

	if (strlen(arn) > POLICY_ARN_SIZE_MAX)
		return -EINVAL;
	if (strncmp(p, POLICY_ARN_IAM_PREFIX, strlen(POLICY_ARN_IAM_PREFIX)) != 0)
		return -EINVAL;
	p += strlen(POLICY_ARN_IAM_PREFIX);
	colon = strchr(p, ':');
	if (colon == NULL || colon - p != POLICY_ACCOUNT_ID_SIZE ||
	    !policy_all_digits(p, POLICY_ACCOUNT_ID_SIZE))
		return -EINVAL;
	if (strcmp(colon + 1, "root") != 0 &&
	    !(strncmp(colon + 1, "user/", 5) == 0 && colon[6] != '\0') &&
	    !(strncmp(colon + 1, "role/", 5) == 0 && colon[6] != '\0'))
		return -EINVAL;
	memcpy(account, p, POLICY_ACCOUNT_ID_SIZE);
	account[POLICY_ACCOUNT_ID_SIZE] = '\0';
	return 0;
}

/* ---- Parsing ---------------------------------------------------------------------------- */

struct policy_parser {
	struct policy *p;
	char *message;
	size_t message_size;
};

static int
policy_fail(struct policy_parser *ps, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
policy_fail(struct policy_parser *ps, int rc, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(ps->message, ps->message_size, "Invalid policy document: ");

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < ps->message_size)
		vsnprintf(ps->message + n, ps->message_size - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

/* Appends prefix, item, suffix as one value of the policy. */
static int
policy_value_add(struct policy_parser *ps, const char *prefix, const char *item,
		 const char *suffix)
{
	const char *parts[] = { prefix, item, suffix };
	struct policy *p = ps->p;
	uint32_t off = p->text_used;

	if (p->value_count == POLICY_VALUES_MAX)
		return policy_fail(ps, -E2BIG, "more than %u values", POLICY_VALUES_MAX);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t n = strlen(parts[i]);

		if (n > POLICY_TEXT_SIZE_MAX - p->text_used)
			return policy_fail(ps, -E2BIG, "more than %u bytes of values",
					   POLICY_TEXT_SIZE_MAX);
		memcpy(p->text + p->text_used, parts[i], n);
		p->text_used += (uint32_t)n;
	}
	p->values[p->value_count++] = (struct policy_value){ off, p->text_used - off };
	return 0;
}

typedef int (*policy_item_fn)(struct policy_parser *ps, struct policy_statement *st,
			       const char *item, const char *key);

/* A string or a non-empty array of strings: each item through `fn`. */
static int
policy_strings(struct policy_parser *ps, struct policy_statement *st, const cJSON *v,
	       const char *key, policy_item_fn fn)
{
	const cJSON *item;
	int rc;

	if (cJSON_IsString(v))
		return fn(ps, st, v->valuestring, key);
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return policy_fail(ps, -EINVAL, "%s must be a string or a non-empty list of "
				   "strings", key);
	cJSON_ArrayForEach(item, v) {
		if (!cJSON_IsString(item))
			return policy_fail(ps, -EINVAL, "%s must be a string or a non-empty "
					   "list of strings", key);
		rc = fn(ps, st, item->valuestring, key);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
policy_action_item(struct policy_parser *ps, struct policy_statement *st, const char *item,
		   const char *key)
{
	(void)st;
	if (strcmp(item, "*") != 0 &&
	    strncasecmp(item, POLICY_ACTION_PREFIX, strlen(POLICY_ACTION_PREFIX)) != 0)
		return policy_fail(ps, -EINVAL, "%s '%s' is not a kinesis action: expected "
				   "\"*\" or \"kinesis:NAME\"", key, item);
	return policy_value_add(ps, "", item, "");
}

static int
policy_resource_item(struct policy_parser *ps, struct policy_statement *st,
		     const char *item, const char *key)
{
	(void)st;
	if (strcmp(item, "*") != 0 && strncmp(item, "arn:", 4) != 0)
		return policy_fail(ps, -EINVAL, "%s '%s' is not an ARN", key, item);
	return policy_value_add(ps, "", item, "");
}

static int
policy_principal_item(struct policy_parser *ps, struct policy_statement *st,
		      const char *item, const char *key)
{
	char account[POLICY_ACCOUNT_ID_SIZE + 1];

	(void)key;
	if (strcmp(item, "*") == 0) {
		st->principal_any = true;
		return 0;
	}
	if (strlen(item) == POLICY_ACCOUNT_ID_SIZE && policy_all_digits(item, strlen(item)))
		return policy_value_add(ps, POLICY_ARN_IAM_PREFIX, item, ":root");
	if (policy_principal_account(item, account) != 0)
		return policy_fail(ps, -EINVAL, "Invalid principal in policy: \"AWS\":\"%s\"",
				   item);
	return policy_value_add(ps, "", item, "");
}

/* "*" or {"AWS": ...}; the other principal types name nothing Sluice knows. */
static int
policy_principal(struct policy_parser *ps, struct policy_statement *st, const cJSON *v)
{
	const cJSON *aws;

	if (cJSON_IsString(v)) {
		if (strcmp(v->valuestring, "*") != 0)
			return policy_fail(ps, -EINVAL, "Principal must be \"*\" or an object "
					   "such as {\"AWS\": \"arn:aws:iam::ACCOUNT:root\"}");
		st->principal_any = true;
		return 0;
	}
	if (!cJSON_IsObject(v))
		return policy_fail(ps, -EINVAL, "Principal must be \"*\" or an object");
	aws = cJSON_GetObjectItemCaseSensitive(v, "AWS");
	if (aws == NULL || cJSON_GetArraySize(v) != 1)
		return policy_fail(ps, -EINVAL, "Principal type '%s' is not supported: only "
				   "\"AWS\" principals name Sluice's callers",
				   v->child != NULL ? v->child->string : "");
	return policy_strings(ps, st, aws, "Principal", policy_principal_item);
}

/* Exactly one of `name` and "Not"`name`: its items into *run through `fn`. */
static int
policy_either(struct policy_parser *ps, struct policy_statement *st, const cJSON *s,
	      const char *name, const char *not_name, bool *negated, struct policy_run *run,
	      policy_item_fn fn)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, name);
	const cJSON *not_v = cJSON_GetObjectItemCaseSensitive(s, not_name);
	int rc;

	if ((v == NULL) == (not_v == NULL))
		return policy_fail(ps, -EINVAL, "a statement needs exactly one of %s and %s",
				   name, not_name);
	*negated = v == NULL;
	run->first = ps->p->value_count;
	rc = policy_strings(ps, st, v != NULL ? v : not_v, v != NULL ? name : not_name, fn);
	run->count = ps->p->value_count - run->first;
	return rc;
}

static bool
policy_key_known(const char *key, const char *const *known, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(key, known[i]) == 0)
			return true;
	return false;
}

static int
policy_statement_keys(struct policy_parser *ps, const cJSON *s)
{
	static const char *const known[] = {
		"Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "NotResource",
	};
	const cJSON *item;

	if (!cJSON_IsObject(s))
		return policy_fail(ps, -EINVAL, "a Statement must be an object");
	cJSON_ArrayForEach(item, s) {
		if (strcmp(item->string, "Condition") == 0)
			return policy_fail(ps, -EINVAL, "Condition is not supported by Sluice: no "
					   "condition operator is evaluated");
		if (strcmp(item->string, "NotPrincipal") == 0)
			return policy_fail(ps, -EINVAL, "NotPrincipal is not supported by Sluice");
		if (!policy_key_known(item->string, known, sizeof(known) / sizeof(known[0])))
			return policy_fail(ps, -EINVAL, "unknown statement key '%s'", item->string);
	}
	item = cJSON_GetObjectItemCaseSensitive(s, "Sid");
	if (item != NULL && !cJSON_IsString(item))
		return policy_fail(ps, -EINVAL, "Sid must be a string");
	return 0;
}

static int
policy_statement(struct policy_parser *ps, const cJSON *s)
{
	struct policy *p = ps->p;
	struct policy_statement *st;
	const cJSON *effect;
	const cJSON *principal;
	int rc = policy_statement_keys(ps, s);

	if (rc != 0)
		return rc;
	if (p->statement_count == POLICY_STATEMENTS_MAX)
		return policy_fail(ps, -E2BIG, "more than %u statements", POLICY_STATEMENTS_MAX);
	st = &p->statements[p->statement_count++];
	memset(st, 0, sizeof(*st));
	effect = cJSON_GetObjectItemCaseSensitive(s, "Effect");
	if (!cJSON_IsString(effect) || (strcmp(effect->valuestring, "Allow") != 0 &&
					strcmp(effect->valuestring, "Deny") != 0))
		return policy_fail(ps, -EINVAL, "Effect must be \"Allow\" or \"Deny\"");
	st->effect = effect->valuestring[0] == 'A' ? POLICY_EFFECT_ALLOW : POLICY_EFFECT_DENY;
	principal = cJSON_GetObjectItemCaseSensitive(s, "Principal");
	if (principal == NULL)
		return policy_fail(ps, -EINVAL, "a resource-based policy statement needs a "
				   "Principal");
	st->principals.first = p->value_count;
	rc = policy_principal(ps, st, principal);
	st->principals.count = p->value_count - st->principals.first;
	if (rc == 0)
		rc = policy_either(ps, st, s, "Action", "NotAction", &st->not_action,
				   &st->actions, policy_action_item);
	if (rc == 0)
		rc = policy_either(ps, st, s, "Resource", "NotResource", &st->not_resource,
				   &st->resources, policy_resource_item);
	return rc;
}

static bool
policy_version_known(const cJSON *v)
{
	return cJSON_IsString(v) && (strcmp(v->valuestring, "2012-10-17") == 0 ||
				     strcmp(v->valuestring, "2008-10-17") == 0);
}

static int
policy_document(struct policy_parser *ps, const cJSON *doc)
{
	const cJSON *item;
	const cJSON *statements;
	int rc;

	if (!cJSON_IsObject(doc))
		return policy_fail(ps, -EINVAL, "Syntax errors in policy.");
	cJSON_ArrayForEach(item, doc) {
		if (strcmp(item->string, "Version") == 0) {
			if (!policy_version_known(item))
				return policy_fail(ps, -EINVAL, "Version must be \"2012-10-17\" "
						   "or \"2008-10-17\"");
		} else if (strcmp(item->string, "Id") == 0) {
			if (!cJSON_IsString(item))
				return policy_fail(ps, -EINVAL, "Id must be a string");
		} else if (strcmp(item->string, "Statement") != 0) {
			return policy_fail(ps, -EINVAL, "unknown key '%s'", item->string);
		}
	}
	statements = cJSON_GetObjectItemCaseSensitive(doc, "Statement");
	if (cJSON_IsObject(statements))
		return policy_statement(ps, statements);
	if (!cJSON_IsArray(statements) || cJSON_GetArraySize(statements) == 0)
		return policy_fail(ps, -EINVAL, "Statement must be an object or a non-empty list");
	cJSON_ArrayForEach(item, statements) {
		rc = policy_statement(ps, item);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
policy_parse(struct policy *p, const char *json, size_t size, char *message,
	     size_t message_size)
{
	struct policy_parser ps = { p, message, message_size };
	cJSON *doc;
	int rc;

	assert(message_size > 0);
	message[0] = '\0';
	p->statement_count = p->value_count = p->text_used = 0;
	if (size > POLICY_SIZE_MAX)
		return policy_fail(&ps, -E2BIG, "larger than %u bytes", POLICY_SIZE_MAX);
	doc = cJSON_ParseWithLength(json, size);
	if (doc == NULL)
		return policy_fail(&ps, -EINVAL, "Syntax errors in policy.");
	rc = policy_document(&ps, doc);
	cJSON_Delete(doc);
	return rc;
}

/* ---- Evaluation ------------------------------------------------------------------------- */

/* What a request is matched against, measured once per evaluation (not per statement). */
struct policy_subject {
	struct policy_value_text {
		const char *p;
		size_t n;
	} principal, root, action, resource;
	char root_text[POLICY_ARN_SIZE_MAX + 1];  /* arn:aws:iam::ACCOUNT:root */
};

static void
policy_subject_init(struct policy_subject *sj, const struct policy_request *r)
{
	char account[POLICY_ACCOUNT_ID_SIZE + 1];
	int n = 0;

	if (policy_principal_account(r->principal_arn, account) == 0)
		n = snprintf(sj->root_text, sizeof(sj->root_text), POLICY_ARN_IAM_PREFIX "%s:root",
			     account);
	sj->principal = (struct policy_value_text){ r->principal_arn, strlen(r->principal_arn) };
	/* An unparsable principal has no account: nothing matches its root (n = 0). */
	sj->root = (struct policy_value_text){ sj->root_text, n > 0 ? (size_t)n : 0 };
	sj->action = (struct policy_value_text){ r->action, strlen(r->action) };
	sj->resource = (struct policy_value_text){ r->resource_arn, strlen(r->resource_arn) };
}

static bool
policy_run_matches(const struct policy *p, struct policy_run run, struct policy_value_text text,
		   bool fold_case)
{
	for (uint32_t i = run.first; i < run.first + run.count; i++) {
		const struct policy_value *v = &p->values[i];

		if (policy_wildcard_match(p->text + v->off, v->size, text.p, text.n, fold_case))
			return true;
	}
	return false;
}

static bool
policy_value_is(const struct policy *p, const struct policy_value *v,
		struct policy_value_text text)
{
	return text.n > 0 && v->size == text.n && memcmp(p->text + v->off, text.p, text.n) == 0;
}

/* An account's root ARN in a policy stands for every principal of that account. */
static bool
policy_principal_matches(const struct policy *p, const struct policy_statement *st,
			 const struct policy_subject *sj)
{
	if (st->principal_any)
		return true;
	for (uint32_t i = st->principals.first; i < st->principals.first + st->principals.count;
	     i++)
		if (policy_value_is(p, &p->values[i], sj->principal) ||
		    policy_value_is(p, &p->values[i], sj->root))
			return true;
	return false;
}

static bool
policy_statement_matches(const struct policy *p, const struct policy_statement *st,
			 const struct policy_subject *sj)
{
	if (!policy_principal_matches(p, st, sj))
		return false;
	if (policy_run_matches(p, st->actions, sj->action, true) == st->not_action)
		return false;
	return policy_run_matches(p, st->resources, sj->resource, false) != st->not_resource;
}

enum policy_decision
policy_evaluate(const struct policy *p, const struct policy_request *r)
{
	enum policy_decision decision = POLICY_IMPLICIT_DENY;
	struct policy_subject sj;

	assert(p->statement_count <= POLICY_STATEMENTS_MAX);
	policy_subject_init(&sj, r);
	for (uint32_t i = 0; i < p->statement_count; i++) {
		const struct policy_statement *st = &p->statements[i];

		if (!policy_statement_matches(p, st, &sj))
			continue;
		if (st->effect == POLICY_EFFECT_DENY)
			return POLICY_EXPLICIT_DENY;
		decision = POLICY_ALLOWED;
	}
	return decision;
}

int
policy_authorize(const struct policy *p, const struct policy_request *r,
		 const char *owner_account, char *message, size_t message_size)
{
	enum policy_decision decision = p != NULL ? policy_evaluate(p, r) : POLICY_IMPLICIT_DENY;
	char account[POLICY_ACCOUNT_ID_SIZE + 1];
	bool owner = policy_principal_account(r->principal_arn, account) == 0 &&
		     strcmp(account, owner_account) == 0;

	if (decision == POLICY_EXPLICIT_DENY) {
		snprintf(message, message_size, "User: %s is not authorized to perform: %s on "
			 "resource: %s with an explicit deny in a resource-based policy",
			 r->principal_arn, r->action, r->resource_arn);
		return -EACCES;
	}
	if (decision == POLICY_ALLOWED || owner)
		return 0;
	snprintf(message, message_size, "User: %s is not authorized to perform: %s on resource: "
		 "%s because no resource-based policy allows the %s action", r->principal_arn,
		 r->action, r->resource_arn, r->action);
	return -EACCES;
}

void
policy_identity_denied(const struct policy_request *r, char *message, size_t message_size)
{
	snprintf(message, message_size, "User: %s is not authorized to perform: %s because no "
		 "identity-based policy allows the %s action", r->principal_arn, r->action,
		 r->action);
}
