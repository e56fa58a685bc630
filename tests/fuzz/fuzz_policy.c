/*
 * fuzz_policy: the resource-policy parser and evaluator on arbitrary bytes.
 * The input is copied into an allocation of exactly its size (ASan flags one
 * byte of overread). Checked: parse returns 0, -EINVAL or -E2BIG with a
 * message that says why; an accepted policy stays inside its bounds (every
 * value inside the text), and evaluating it for a few principals, actions and
 * resources gives a decision and, when denied, AWS's text.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy compiled;

static void
check_bounds(const struct policy *p)
{
	assert(p->statement_count <= POLICY_STATEMENTS_MAX);
	assert(p->value_count <= POLICY_VALUES_MAX);
	assert(p->text_used <= POLICY_TEXT_SIZE_MAX);
	for (uint32_t i = 0; i < p->value_count; i++)
		assert(p->values[i].off + p->values[i].size <= p->text_used);
	for (uint32_t i = 0; i < p->statement_count; i++) {
		const struct policy_statement *st = &p->statements[i];

		assert(st->principals.first + st->principals.count <= p->value_count);
		assert(st->actions.first + st->actions.count <= p->value_count);
		assert(st->resources.first + st->resources.count <= p->value_count);
	}
}

static void
check_decisions(const struct policy *p)
{
	static const char *const principals[] = {
		"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::444455556666:role/r",
	};
	static const char *const actions[] = { "kinesis:PutRecord", "kinesis:DeleteStream" };
	static const char *const resources[] = {
		"arn:aws:kinesis:us-east-1:111122223333:stream/s",
		"arn:aws:kinesis:us-east-1:111122223333:stream/s/consumer/c:1",
	};
	char message[POLICY_MESSAGE_SIZE];

	for (size_t i = 0; i < 8; i++) {
		struct policy_request r = { principals[i & 1], actions[(i >> 1) & 1],
					    resources[(i >> 2) & 1] };
		int rc = policy_authorize(p, &r, "111122223333", message, sizeof(message));

		assert(rc == 0 || (rc == -EACCES && strncmp(message, "User: ", 6) == 0));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char message[POLICY_MESSAGE_SIZE];
	char *copy = malloc(size > 0 ? size : 1);
	int rc;

	assert(copy != NULL);
	memcpy(copy, data, size);
	rc = policy_parse(&compiled, copy, size, message, sizeof(message));
	assert(rc == 0 || rc == -EINVAL || rc == -E2BIG);
	if (rc != 0) {
		assert(strncmp(message, "Invalid policy document: ", 25) == 0);
	} else {
		check_bounds(&compiled);
		check_decisions(&compiled);
	}
	free(copy);
	return 0;
}
