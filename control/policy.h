/*
 * policy.h - AWS resource-based policies for Kinesis streams and consumers:
 * parse (validate and compile into a bounded, pointer-free form) and
 * evaluate. Private to the control module (the Kinesis layer and its tests).
 *
 * Pure: no I/O, no clock, no global state. policy_parse() uses cJSON (it runs
 * when a policy is put or loaded, not per request); evaluation allocates
 * nothing and walks the compiled form.
 *
 * What is supported (anything else is refused at parse with the reason):
 *
 *   KEY          ACCEPTED
 *   Version      "2012-10-17" or "2008-10-17"; optional
 *   Id           a string; optional
 *   Statement    one object or a non-empty array of objects
 *   Sid          a string; optional
 *   Effect       "Allow" | "Deny"
 *   Principal    "*", or {"AWS": V} with V "*", a 12-digit account id, an IAM ARN
 *                (arn:aws:iam::ACCOUNT:root|user/...|role/...), or a list of them.
 *                NotPrincipal, and Service/Federated/CanonicalUser principals: refused
 *   Action       "*" or "kinesis:PATTERN" (one or a list; `*` and `?` wildcards;
 *   NotAction    action names compare case-insensitively)
 *   Resource     "*" or "arn:PATTERN" (one or a list; `*` and `?` wildcards,
 *   NotResource  case-sensitive)
 *   Condition    refused: no condition operator is evaluated, so none is accepted
 *
 * Evaluation (policy_authorize): an explicit Deny that matches wins; else a
 * matching Allow allows; else the owner account's principals are allowed (they
 * stand for identity-based permissions, which Sluice does not model) and every
 * other principal is denied. A principal "arn:aws:iam::A:root" (or "A") in a
 * policy matches every principal of account A.
 *
 * Wildcard matching is the linear-space greedy algorithm with one backtrack
 * point (the last `*`): O(pattern x text) at worst, never exponential.
 */
#ifndef SLUICE_CONTROL_POLICY_H
#define SLUICE_CONTROL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AWS: "The maximum size of a resource-based policy is 20 KiB". */
#define POLICY_SIZE_MAX 20480u
/* Bounds of the compiled form; a 20 KiB policy of one-letter items stays within them. */
#define POLICY_STATEMENTS_MAX 100u
#define POLICY_VALUES_MAX 1024u
/* Decoded strings (and account ids written out as root ARNs) of one policy. */
#define POLICY_TEXT_SIZE_MAX (2u * POLICY_SIZE_MAX)
#define POLICY_MESSAGE_SIZE 512u
/* IAM principal ARNs as configured in [auth] principals. */
#define POLICY_ARN_SIZE_MAX 256u
#define POLICY_ACCOUNT_ID_SIZE 12u

enum policy_effect {
	POLICY_EFFECT_ALLOW,
	POLICY_EFFECT_DENY,
};

/* One string of the policy: text[off .. off + size). */
struct policy_value {
	uint32_t off;
	uint32_t size;
};

/* A run values[first .. first + count). */
struct policy_run {
	uint32_t first;
	uint32_t count;
};

struct policy_statement {
	enum policy_effect effect;
	bool principal_any;        /* "*" or {"AWS": "*"} among the principals. */
	bool not_action;
	bool not_resource;
	struct policy_run principals;  /* Exact ARNs, or "arn:aws:iam::A:root" for account A. */
	struct policy_run actions;     /* Patterns, "kinesis:" prefix kept ("*" alone too). */
	struct policy_run resources;   /* Patterns. */
};

struct policy {
	uint32_t statement_count;
	uint32_t value_count;
	uint32_t text_used;
	struct policy_statement statements[POLICY_STATEMENTS_MAX];
	struct policy_value values[POLICY_VALUES_MAX];
	char text[POLICY_TEXT_SIZE_MAX];
};

/*
 * Parses and validates `json` (`size` bytes, not NUL-terminated) into *p.
 * Returns 0; -E2BIG when size > POLICY_SIZE_MAX or a bound of the compiled
 * form is passed; -EINVAL for anything refused. On error `message` holds the
 * reason, AWS-like ("Invalid policy document: ...").
 */
int policy_parse(struct policy *p, const char *json, size_t size, char *message,
		 size_t message_size);

/* The caller and the call being authorized. */
struct policy_request {
	const char *principal_arn;  /* arn:aws:iam::ACCOUNT:root|user/..|role/.. */
	const char *action;         /* "kinesis:PutRecord" */
	const char *resource_arn;   /* The stream's or consumer's ARN. */
};

enum policy_decision {
	POLICY_IMPLICIT_DENY,      /* No statement matched. */
	POLICY_ALLOWED,            /* An Allow matched and no Deny did. */
	POLICY_EXPLICIT_DENY,      /* A Deny matched. */
};

/* Which statements of `p` match `r`, combined (Deny wins). */
enum policy_decision policy_evaluate(const struct policy *p, const struct policy_request *r);

/*
 * The whole decision: `p` may be NULL (no policy attached). `owner_account` is
 * the appliance's account ([server] account_id). Returns 0 (allowed) or
 * -EACCES with AWS's AccessDeniedException text in `message`.
 */
int policy_authorize(const struct policy *p, const struct policy_request *r,
		     const char *owner_account, char *message, size_t message_size);

/*
 * The text for a call no resource policy can allow (an account-level action,
 * such as ListStreams, by a principal of another account): AWS's
 * identity-based wording.
 */
void policy_identity_denied(const struct policy_request *r, char *message, size_t message_size);

/* `pattern` matches all of `text`? `*` any run, `?` one byte; fold_case: ASCII case-blind. */
bool policy_wildcard_match(const char *pattern, size_t pattern_size, const char *text,
			   size_t text_size, bool fold_case);

/*
 * Checks an IAM principal ARN (arn:aws:iam::ACCOUNT:root|user/NAME|role/NAME)
 * and copies its account id (12 digits + NUL) to `account`. Returns 0 or -EINVAL.
 */
int policy_principal_account(const char *arn, char account[POLICY_ACCOUNT_ID_SIZE + 1]);

#endif /* SLUICE_CONTROL_POLICY_H */
