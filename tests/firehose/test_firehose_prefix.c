/*
 * firehose/fh_prefix.c: the JQ field-path subset (what it takes, what it
 * refuses), values as key segments, prefix evaluation (every pattern letter,
 * quotes, the appended default, error types, random strings), and
 * firehose_spec_check's rules with their texts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "firehose/fh_internal.h"

/* 2026-03-04 05:06:07 UTC, day 63 of the year. */
#define T0_NS (1772600767ull * 1000000000ull)

static struct fh_query q;
static char values[FIREHOSE_PARTITION_KEYS_MAX][FH_VALUE_SIZE_MAX + 1];

Test(fh_query, parses_the_subset)
{
	cr_assert_eq(fh_query_parse("{customer_id:.customer_id}", &q), 0);
	cr_assert_eq(q.count, 1);
	cr_assert_str_eq(q.keys[0].name, "customer_id");
	cr_assert_eq(q.keys[0].depth, 1);
	cr_assert_eq(fh_query_parse(" { a : .x.y_2 ,\n b:.c } ", &q), 0);
	cr_assert_eq(q.count, 2);
	cr_assert_eq(q.keys[0].depth, 2);
	cr_assert_str_eq(q.keys[0].fields[1], "y_2");
	cr_assert_str_eq(q.keys[1].name, "b");
}

Test(fh_query, refuses_everything_else)
{
	static const char *const bad[] = {
		"", "{}", "{a:.b", "{a:b}", "{a:.b|ascii_downcase}", "{a:.b}x", ".a", "{a:.}",
		"{1a:.b}", "{a:.b,}", "{a .b}", "{a:.b.}", "{\"a\":.b}", "{a:.[0]}",
		"{a:.b.c.d.e.f.g.h.i.j}",
	};
	char many[2048] = "{";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(fh_query_parse(bad[i], &q), -EINVAL, "%s", bad[i]);
	/* 50 keys are AWS's limit; 51 are refused. */
	for (int i = 0; i < 51; i++) {
		if (i == 50) {
			strcat(many, "}");
			cr_assert_eq(fh_query_parse(many, &q), 0);
			cr_assert_eq(q.count, 50);
			many[strlen(many) - 1] = '\0';
		}
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sk%d:.f", i ? "," : "",
			 i);
	}
	strcat(many, "}");
	cr_assert_eq(fh_query_parse(many, &q), -EINVAL);
}

static int
eval(const char *json)
{
	return fh_query_eval(&q, json, strlen(json), values);
}

Test(fh_query, values_and_failures)
{
	char long_value[400];

	cr_assert_eq(fh_query_parse("{c:.c, k:.e.k}", &q), 0);
	cr_assert_eq(eval("{\"c\":\"acme\",\"e\":{\"k\":\"click\"}}"), 0);
	cr_assert_str_eq(values[0], "acme");
	cr_assert_str_eq(values[1], "click");
	cr_assert_eq(eval("{\"c\":42,\"e\":{\"k\":true}}"), 0);
	cr_assert_str_eq(values[0], "42");
	cr_assert_str_eq(values[1], "true");
	cr_assert_eq(eval("{\"c\":1.5,\"e\":{\"k\":false}}"), 0);
	cr_assert_str_eq(values[0], "1.5");
	cr_assert_eq(eval("not json"), -EBADMSG);
	cr_assert_eq(eval("[1,2]"), -EBADMSG);
	cr_assert_eq(eval("{\"c\":\"a\"}"), -ENOENT);
	cr_assert_eq(eval("{\"c\":null,\"e\":{\"k\":\"x\"}}"), -ENOENT);
	cr_assert_eq(eval("{\"c\":{},\"e\":{\"k\":\"x\"}}"), -ENOENT);
	cr_assert_eq(eval("{\"c\":\"a\",\"e\":\"k\"}"), -ENOENT);
	cr_assert_eq(eval("{\"c\":\"a/b\",\"e\":{\"k\":\"x\"}}"), -EINVAL);
	cr_assert_eq(eval("{\"c\":\"..\",\"e\":{\"k\":\"x\"}}"), -EINVAL);
	cr_assert_eq(eval("{\"c\":\"\",\"e\":{\"k\":\"x\"}}"), -EINVAL);
	cr_assert_eq(eval("{\"c\":\"a\\nb\",\"e\":{\"k\":\"x\"}}"), -EINVAL);
	memset(long_value, 'v', sizeof(long_value));
	snprintf(long_value, sizeof(long_value), "{\"c\":\"%0*d\",\"e\":{\"k\":\"x\"}}",
		 FH_VALUE_SIZE_MAX + 1, 7);
	cr_assert_eq(eval(long_value), -EINVAL, "a value over FH_VALUE_SIZE_MAX");
	snprintf(long_value, sizeof(long_value), "{\"c\":\"%0*d\",\"e\":{\"k\":\"x\"}}",
		 FH_VALUE_SIZE_MAX, 7);
	cr_assert_eq(eval(long_value), 0, "a value of FH_VALUE_SIZE_MAX");
}

static const char *
prefix(const char *t, const char *error_type, uint64_t salt)
{
	static char out[1024];
	struct fh_prefix_vars v = {
		.arrival_ns = T0_NS, .error_type = error_type, .salt = salt, .query = &q,
		.values = (const char (*)[FH_VALUE_SIZE_MAX + 1])values,
	};

	cr_assert_eq(fh_prefix_eval(t, &v, out, sizeof(out)), 0, "%s", t);
	return out;
}

Test(fh_prefix, evaluates_expressions)
{
	char random_a[32], random_b[32];

	cr_assert_str_eq(prefix("", NULL, 0), "2026/03/04/05/");
	cr_assert_str_eq(prefix("raw", NULL, 0), "raw2026/03/04/05/");
	cr_assert_str_eq(prefix("!{timestamp:yyyy-yy-MM-M-dd-d-DDD-D-HH-H-mm-m-ss-s}/", NULL, 0),
			 "2026-26-03-3-04-4-063-63-05-5-06-6-07-7/");
	cr_assert_str_eq(prefix("!{timestamp:'year='yyyy'/it''s'}/", NULL, 0),
			 "year=2026/it's/");
	cr_assert_str_eq(prefix("!{timestamp:uuuu''}", NULL, 0), "2026'");
	cr_assert_str_eq(prefix("e/!{firehose:error-output-type}/", "partitioning-failed", 0),
			 "e/partitioning-failed/2026/03/04/05/");
	cr_assert_str_eq(prefix("e/", "partitioning-failed", 0),
			 "e/partitioning-failed/2026/03/04/05/");
	cr_assert_eq(fh_query_parse("{c:.c, k:.e.k}", &q), 0);
	strcpy(values[0], "acme");
	strcpy(values[1], "view");
	cr_assert_str_eq(prefix("c=!{partitionKeyFromQuery:c}/k=!{partitionKeyFromQuery:k}/"
				"!{timestamp:yyyy}/", NULL, 0), "c=acme/k=view/2026/");
	strcpy(random_a, prefix("!{firehose:random-string}", NULL, 1));
	cr_assert_eq(strlen(random_a), 11 + strlen("2026/03/04/05/"));
	cr_assert_str_eq(prefix("!{firehose:random-string}", NULL, 1), random_a, "deterministic");
	strcpy(random_b, prefix("!{firehose:random-string}", NULL, 2));
	cr_assert_str_neq(random_a, random_b);
}

Test(fh_prefix, too_long_is_refused)
{
	struct fh_prefix_vars v = { .arrival_ns = T0_NS };
	char out[16];

	cr_assert_eq(fh_prefix_eval("", &v, out, 15), 0);
	cr_assert_eq(fh_prefix_eval("", &v, out, 14), -ENAMETOOLONG);
	cr_assert_eq(fh_prefix_eval("abcdefghijklmnopq", &v, out, sizeof(out)), -ENAMETOOLONG);
}

static struct firehose_spec spec;

static const char *
check_spec(const char *prefix_text, const char *error_prefix, bool partitioning,
	   const char *query, uint32_t interval_s)
{
	static char message[FIREHOSE_MESSAGE_SIZE];

	memset(&spec, 0, sizeof(spec));
	snprintf(spec.prefix, sizeof(spec.prefix), "%s", prefix_text);
	snprintf(spec.error_prefix, sizeof(spec.error_prefix), "%s", error_prefix);
	spec.partitioning = partitioning;
	snprintf(spec.query, sizeof(spec.query), "%s", query);
	spec.interval_s = interval_s;
	message[0] = '\0';
	return firehose_spec_check(&spec, message, sizeof(message)) == 0 ? NULL : message;
}

#define P "c=!{partitionKeyFromQuery:c}/"
#define E "e/!{firehose:error-output-type}/"

Test(firehose_spec_check, accepts_and_refuses)
{
	static const struct {
		const char *prefix, *error_prefix;
		bool partitioning;
		const char *query;
		uint32_t interval_s;
		const char *refusal;   /* NULL: accepted; else a part of the text. */
	} cases[] = {
		{ "", "", false, "", 0, NULL },
		{ "raw/", "", false, "", 0, NULL },
		{ "!{timestamp:yyyy}/", E, false, "", 0, NULL },
		{ "!{firehose:random-string}/", "e/", false, "", 0, NULL },
		{ P "!{timestamp:yyyy}/", E "!{timestamp:yyyy}/", true, "{c:.c}", 60, NULL },
		{ "!{timestamp:yyyy}/", "", false, "", 0, "Ths supplied prefix(es) do not satisfy "
		  "the following constraint: ErrorOutputPrefix cannot be null or empty when Prefix "
		  "contains expressions" },
		{ P, E, false, "", 0, "Dynamic Partitioning Namespaces can only be part of a "
		  "prefix expression when Dynamic Partitioning is enabled." },
		{ P, E, true, "", 60, "needs a MetadataExtraction processor" },
		{ P, "", true, "{c:.c}", 60, "ErrorOutputPrefix cannot be null or empty" },
		{ P, E, true, "{c:.c}", 0, "zero buffering" },
		{ "raw/", E, true, "{c:.c}", 60, "at least one dynamic partitioning namespace" },
		{ "x=!{partitionKeyFromQuery:d}/", E, true, "{c:.c}", 60, "not one of the keys" },
		{ P, E, true, "{c:.c|x}", 60, "JQ object whose values are field paths" },
		{ "raw/", E, false, "{c:.c}", 60, "requires Dynamic Partitioning" },
		{ "!{partitionKeyFromLambda:c}/", E, true, "{c:.c}", 60, "needs a Lambda processor" },
		{ "!{partitionKeyFromLambda:}/", E, true, "{c:.c}", 60, "must have 1 to 64 bytes" },
		{ P "e/!{partitionKeyFromLambda:c}/", "e/" E, true, "{c:.c}", 60, "needs a Lambda" },
		{ P, E "!{partitionKeyFromLambda:c}/", true, "{c:.c}", 60, "can not be part of "
		  "ErrorOutputPrefix" },
		{ "!{firehose:error-output-type}/", "e/", false, "", 0, "only be used in "
		  "ErrorOutputPrefix" },
		{ P, "e/" P E, true, "{c:.c}", 60, "can not be part of ErrorOutputPrefix" },
		{ "!{timestamp:yyyy}/", "e/!{timestamp:yyyy}/", false, "", 0, "must contain "
		  "!{firehose:error-output-type}" },
		{ "!{timestamp:yyyyy}/", E, false, "", 0, "Java DateTimeFormatter" },
		{ "!{timestamp:MMM}/", E, false, "", 0, "Java DateTimeFormatter" },
		{ "!{timestamp:'open}/", E, false, "", 0, "Java DateTimeFormatter" },
		{ "!{unknown:x}/", E, false, "", 0, "unknown expression namespace" },
		{ "!{firehose:other}/", E, false, "", 0, "unknown expression namespace" },
		{ "!{timestamp}/", E, false, "", 0, "does not start a !{namespace:value}" },
		{ "!{timestamp:yyyy", E, false, "", 0, "does not start a !{namespace:value}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = check_spec(cases[i].prefix, cases[i].error_prefix,
					     cases[i].partitioning, cases[i].query,
					     cases[i].interval_s);

		if (cases[i].refusal == NULL)
			cr_expect_null(got, "case %zu refused: %s", i, got);
		else
			cr_expect(got != NULL && strstr(got, cases[i].refusal) != NULL,
				  "case %zu: %s", i, got != NULL ? got : "(accepted)");
	}
}

/* !{partitionKeyFromLambda:KEY}: with a Lambda processor, alone or beside the query's keys. */
Test(firehose_spec_check, lambda_partition_keys)
{
	static const struct {
		const char *prefix, *query;
		const char *refusal;
	} cases[] = {
		{ "a=!{partitionKeyFromLambda:a}/", "", NULL },
		{ "a=!{partitionKeyFromLambda:a}/" P, "{c:.c}", NULL },
		{ "a=!{partitionKeyFromLambda:c}/" P, "{c:.c}", NULL },  /* Namespaces apart. */
		{ "a=!{partitionKeyFromLambda:a}/b=!{partitionKeyFromLambda:a}/", "", NULL },
		{ "raw/", "", "at least one dynamic partitioning namespace" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static char message[FIREHOSE_MESSAGE_SIZE];
		int rc;

		memset(&spec, 0, sizeof(spec));
		snprintf(spec.prefix, sizeof(spec.prefix), "%s", cases[i].prefix);
		snprintf(spec.error_prefix, sizeof(spec.error_prefix), "%s", E);
		snprintf(spec.query, sizeof(spec.query), "%s", cases[i].query);
		snprintf(spec.lambda.arn, sizeof(spec.lambda.arn), "arn:aws:lambda:x");
		spec.partitioning = true;
		spec.interval_s = 60;
		message[0] = '\0';
		rc = firehose_spec_check(&spec, message, sizeof(message));
		if (cases[i].refusal == NULL)
			cr_expect(rc == 0, "case %zu refused: %s", i, message);
		else
			cr_expect(rc != 0 && strstr(message, cases[i].refusal) != NULL,
				  "case %zu: %s", i, rc != 0 ? message : "(accepted)");
	}
}

/* The Lambda keys a prefix names follow the query's, each once. */
Test(fh_query_from_spec, lambda_keys_after_the_query)
{
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.prefix, sizeof(spec.prefix), "a=!{partitionKeyFromLambda:a}/"
		 "c=!{partitionKeyFromQuery:c}/b=!{partitionKeyFromLambda:b}/"
		 "!{partitionKeyFromLambda:a}/");
	snprintf(spec.query, sizeof(spec.query), "{c:.x.c}");
	cr_assert_eq(fh_query_from_spec(&spec, &q), 0);
	cr_assert_eq(q.count, 3);
	cr_expect(!q.keys[0].lambda && strcmp(q.keys[0].name, "c") == 0);
	cr_expect(q.keys[1].lambda && strcmp(q.keys[1].name, "a") == 0 && q.keys[1].depth == 0);
	cr_expect(q.keys[2].lambda && strcmp(q.keys[2].name, "b") == 0);
}

/* RecordDeAggregation's split: JSON objects (with or without whitespace) or pieces. */
Test(fh_split, json_objects_and_delimited_pieces)
{
	static const struct {
		enum firehose_deaggregation type;
		const char *split, *record;
		int rc;
		uint32_t count;
		const char *last;      /* The last sub-record. */
	} cases[] = {
		{ FIREHOSE_DEAGG_JSON, "", "{\"a\":1}{\"a\":2}", 0, 2, "{\"a\":2}" },
		{ FIREHOSE_DEAGG_JSON, "", "{\"a\":1}\n{\"a\":\"}{\"}\n", 0, 2, "{\"a\":\"}{\"}" },
		{ FIREHOSE_DEAGG_JSON, "", " {\"a\":{\"b\":[1,{}]}} ", 0, 1, "{\"a\":{\"b\":[1,{}]}}" },
		{ FIREHOSE_DEAGG_JSON, "", "{\"a\":\"\\\"}\"}", 0, 1, "{\"a\":\"\\\"}\"}" },
		{ FIREHOSE_DEAGG_JSON, "", "[{\"a\":1},{\"a\":2}]", -EINVAL, 0, NULL },
		{ FIREHOSE_DEAGG_JSON, "", "{\"a\":1} tail", -EINVAL, 0, NULL },
		{ FIREHOSE_DEAGG_JSON, "", "{\"a\":1", -EINVAL, 0, NULL },
		{ FIREHOSE_DEAGG_JSON, "", "  ", -EINVAL, 0, NULL },
		{ FIREHOSE_DEAGG_DELIMITED, "####", "a####bb########c####", 0, 3, "c" },
		{ FIREHOSE_DEAGG_DELIMITED, "##", "no delimiter", 0, 1, "no delimiter" },
		{ FIREHOSE_DEAGG_DELIMITED, "##", "####", -EINVAL, 0, NULL },
	};
	struct fh_piece pieces[FIREHOSE_DEAGG_RECORDS_MAX];
	static char many[FIREHOSE_DEAGG_RECORDS_MAX * 8 + 16];
	size_t at = 0;
	uint32_t count;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *rec = cases[i].record;
		int rc;

		memset(&spec, 0, sizeof(spec));
		spec.deaggregation = cases[i].type;
		spec.split_size = (uint32_t)strlen(cases[i].split);
		memcpy(spec.split, cases[i].split, spec.split_size);
		count = 0;
		rc = fh_split(&spec, (const uint8_t *)rec, strlen(rec), pieces, &count);
		cr_expect_eq(rc, cases[i].rc, "case %zu", i);
		if (rc != 0)
			continue;
		cr_expect_eq(count, cases[i].count, "case %zu: %u", i, count);
		cr_expect(pieces[count - 1].size == strlen(cases[i].last) &&
			  memcmp(rec + pieces[count - 1].off, cases[i].last,
				 pieces[count - 1].size) == 0, "case %zu: the last one", i);
	}
	/* AWS's cap: 500 sub-records split; 501 keep the record whole. */
	memset(&spec, 0, sizeof(spec));
	spec.deaggregation = FIREHOSE_DEAGG_JSON;
	for (uint32_t i = 0; i < FIREHOSE_DEAGG_RECORDS_MAX; i++)
		at += (size_t)sprintf(many + at, "{\"n\":1}");
	cr_expect_eq(fh_split(&spec, (const uint8_t *)many, at, pieces, &count), 0);
	cr_expect_eq(count, FIREHOSE_DEAGG_RECORDS_MAX);
	at += (size_t)sprintf(many + at, "{}");
	cr_expect_eq(fh_split(&spec, (const uint8_t *)many, at, pieces, &count), -EINVAL);
}
