/*
 * policy_store: policies stored in a real metadata.db and found again per
 * resource (a stream's and its consumers'), through more resources than the
 * cache holds; replace, delete (-ENOENT twice), refusal of a bad document
 * without touching the stored one, a deleted stream's policies forgotten, and
 * everything found again after a reopen.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "control/policy_store.h"

#define ALLOW_BOB "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":" \
	"\"arn:aws:iam::444455556666:user/bob\"},\"Action\":\"kinesis:*\",\"Resource\":\"*\"}}"
#define DENY_ALL "{\"Statement\":{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"*\"," \
	"\"Resource\":\"*\"}}"

static char dir[64];
static struct metadata *md;
static struct policy_store *ps;
static char message[POLICY_MESSAGE_SIZE];

static void
store_open(void)
{
	cr_assert_eq(metadata_open(dir, &md), 0);
	cr_assert_eq(policy_store_open(md, &ps), 0);
}

static void
store_close(void)
{
	policy_store_close(ps);
	metadata_close(md);
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-policy-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	store_open();
}

static void
teardown(void)
{
	char cmd[128];

	store_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static int
put(uint32_t stream_id, const char *name, const char *json)
{
	return policy_store_put(ps, stream_id, name, json, strlen(json), message, sizeof(message));
}

/* The decision for bob on stream `stream_id`'s resource `name`: 'n' none, 'a' allow, 'd' deny. */
static char
decision(uint32_t stream_id, const char *name)
{
	struct policy_request r = { "arn:aws:iam::444455556666:user/bob", "kinesis:PutRecord",
				    "arn:aws:kinesis:us-east-1:111122223333:stream/s" };
	const struct policy *p;

	cr_assert_eq(policy_store_find(ps, stream_id, name, &p), 0);
	if (p == NULL)
		return 'n';
	return policy_evaluate(p, &r) == POLICY_ALLOWED ? 'a' : 'd';
}

Test(policy_store, finds_each_resource_through_the_cache, .init = setup, .fini = teardown)
{
	char name[32];

	cr_assert_eq(decision(1, ""), 'n');
	/* Three times the cache: every lookup after the first pass misses and reads SQLite. */
	for (uint32_t i = 0; i < 3 * POLICY_STORE_CACHE_SLOTS; i++) {
		snprintf(name, sizeof(name), "consumer-%u", i);
		cr_assert_eq(put(i + 1, i % 2 == 0 ? "" : name, i % 3 == 0 ? DENY_ALL : ALLOW_BOB),
			     0, "%s", message);
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < 3 * POLICY_STORE_CACHE_SLOTS; i++) {
			char expected = i % 3 == 0 ? 'd' : 'a';

			snprintf(name, sizeof(name), "consumer-%u", i);
			cr_assert_eq(decision(i + 1, i % 2 == 0 ? "" : name), expected,
				     "resource %u pass %d", i, pass);
			/* The stream's other resource has none. */
			cr_assert_eq(decision(i + 1, i % 2 == 0 ? name : ""), 'n');
		}
	}
	store_close();
	store_open();
	cr_assert_eq(decision(1, ""), 'd');
	cr_assert_eq(decision(2, "consumer-1"), 'a');
}

Test(policy_store, replace_delete_refuse, .init = setup, .fini = teardown)
{
	char text[POLICY_SIZE_MAX + 1];
	size_t size = 0;

	cr_assert_eq(policy_store_text(ps, 7, "", text, sizeof(text), &size), -ENOENT);
	cr_assert_eq(put(7, "", ALLOW_BOB), 0);
	cr_assert_eq(decision(7, ""), 'a');
	cr_assert_eq(put(7, "", DENY_ALL), 0);
	cr_assert_eq(decision(7, ""), 'd');
	cr_assert_eq(policy_store_text(ps, 7, "", text, sizeof(text), &size), 0);
	cr_assert_str_eq(text, DENY_ALL);
	cr_assert_eq(size, strlen(DENY_ALL));
	/* A refused document leaves the stored one as it was. */
	cr_assert_eq(put(7, "", "{\"Statement\":[]}"), -EINVAL);
	cr_assert(strstr(message, "Invalid policy document") != NULL, "%s", message);
	cr_assert_eq(decision(7, ""), 'd');
	cr_assert_eq(policy_store_delete(ps, 7, ""), 0);
	cr_assert_eq(decision(7, ""), 'n');
	cr_assert_eq(policy_store_delete(ps, 7, ""), -ENOENT);
	cr_assert_eq(policy_store_text(ps, 7, "", text, sizeof(text), &size), -ENOENT);
}

Test(policy_store, deleted_stream_is_forgotten, .init = setup, .fini = teardown)
{
	struct metadata_stream s = { .name = "s", .shard_count = 0, .retention_hours = 24 };

	cr_assert_eq(metadata_stream_create(md, &s, NULL, NULL, 0), 0);
	cr_assert_eq(put(s.stream_id, "", ALLOW_BOB), 0);
	cr_assert_eq(put(s.stream_id, "c", DENY_ALL), 0);
	cr_assert_eq(put(s.stream_id + 1, "", DENY_ALL), 0);
	cr_assert_eq(metadata_stream_delete(md, s.stream_id), 0);
	policy_store_forget_stream(ps, s.stream_id);
	cr_assert_eq(decision(s.stream_id, ""), 'n');
	cr_assert_eq(decision(s.stream_id, "c"), 'n');
	cr_assert_eq(decision(s.stream_id + 1, ""), 'd');
	/* SQLite dropped them too: a restart does not bring them back. */
	store_close();
	store_open();
	cr_assert_eq(decision(s.stream_id, ""), 'n');
	cr_assert_eq(decision(s.stream_id, "c"), 'n');
	cr_assert_eq(decision(s.stream_id + 1, ""), 'd');
}
