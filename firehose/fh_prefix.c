/*
 * fh_prefix.c - custom S3 prefixes (AWS's "Custom Prefixes for Amazon S3
 * Objects") and the JQ subset of dynamic partitioning's MetadataExtraction.
 *
 *   EXPRESSION                       EVALUATES TO                       WHERE
 *   !{timestamp:PATTERN}             the object's oldest record's       Prefix, ErrorOutputPrefix
 *                                    arrival, UTC, PATTERN a Java
 *                                    DateTimeFormatter (subset below)
 *   !{firehose:error-output-type}    the failure's type                 ErrorOutputPrefix only
 *   !{firehose:random-string}        11 characters; ours are a hash of  both
 *                                    the object's range (exactly once)
 *   !{partitionKeyFromQuery:KEY}     KEY's value from the query         Prefix, with dynamic
 *                                                                       partitioning only
 *   !{partitionKeyFromLambda:KEY}    KEY's value in the Lambda          Prefix, with dynamic
 *                                    processor's answer for the record  partitioning and a
 *                                    (metadata.partitionKeys)           Lambda processor
 *
 * A prefix without a timestamp expression gets yyyy/MM/dd/HH/ appended
 * (plain concatenation, as AWS: "raw" gives "raw2026/..."); an ErrorOutputPrefix
 * without !{firehose:error-output-type} gets "<type>/" before that (AWS's example:
 * ".../processing-failed/2018/08/27/").
 *
 * PATTERN letters built: yyyy/uuuu (year), yy/uu (two digits), MM/M, dd/d,
 * DDD/D (day of year), HH/H, mm/m, ss/s; 'text' is literal ('' a quote);
 * other non-letters are literal. Any other letter is refused at create.
 *
 * The query subset: {KEY:.a.b, KEY2:.c} - jq object construction whose values
 * are field paths (identifiers [A-Za-z_][A-Za-z0-9_]*). A value that is a
 * string, number or boolean partitions the record; anything else (absent,
 * null, object, array, a record that is not JSON) sends it to the error
 * prefix. Values become key segments: empty, '.', '..', '/' or control
 * characters are refused too.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "firehose/fh_internal.h"

#define FH_NS_TIMESTAMP "timestamp"
#define FH_NS_FIREHOSE "firehose"
#define FH_NS_QUERY "partitionKeyFromQuery"
#define FH_NS_LAMBDA "partitionKeyFromLambda"
#define FH_RANDOM_SIZE 11u
#define FH_DEFAULT_TIME_PATTERN "yyyy/MM/dd/HH/"

struct fh_out {
	char *p;
	size_t size;
	size_t used;
	bool overflow;
};

static void
fh_put(struct fh_out *o, const char *text, size_t n)
{
	if (o->used + n >= o->size) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->used, text, n);
	o->used += n;
	o->p[o->used] = '\0';
}

/* ---- Expressions --------------------------------------------------------------- */

struct fh_expr {
	const char *ns;        /* Namespace and value, within the template (not NUL-ended). */
	size_t ns_size;
	const char *value;
	size_t value_size;
};

static bool
fh_span_is(const char *p, size_t n, const char *text)
{
	return strlen(text) == n && memcmp(p, text, n) == 0;
}

/*
 * The expression starting at t ("!{...}"): its parts, and its length in *size_out.
 * -EINVAL when it is not closed or has no ':'.
 */
static int
fh_expr_parse(const char *t, struct fh_expr *e, size_t *size_out)
{
	const char *end = strchr(t + 2, '}');
	const char *colon;

	if (end == NULL)
		return -EINVAL;
	colon = memchr(t + 2, ':', (size_t)(end - t - 2));
	if (colon == NULL)
		return -EINVAL;
	e->ns = t + 2;
	e->ns_size = (size_t)(colon - e->ns);
	e->value = colon + 1;
	e->value_size = (size_t)(end - colon - 1);
	*size_out = (size_t)(end - t + 1);
	return 0;
}

/* One pattern letter run: its letter and length, and whether we build it. */
static bool
fh_pattern_letter_ok(char c, size_t run)
{
	switch (c) {
	case 'y': case 'u':
		return run == 2 || run == 4;
	case 'M': case 'd': case 'H': case 'm': case 's':
		return run <= 2;
	case 'D':
		return run == 1 || run == 3;
	default:
		return false;
	}
}

/*
 * The quoted text starting at p[i] == '\'' (Java: '' is a quote, in or out of quotes):
 * its literal bytes go to lit (when not NULL); returns the index after it, or n + 1 when
 * the quote is not closed.
 */
static size_t
fh_quoted(const char *p, size_t n, size_t i, struct fh_out *lit)
{
	if (i + 1 < n && p[i + 1] == '\'') {
		if (lit != NULL)
			fh_put(lit, "'", 1);
		return i + 2;
	}
	for (i++; i < n; i++) {
		if (p[i] != '\'') {
			if (lit != NULL)
				fh_put(lit, p + i, 1);
			continue;
		}
		if (i + 1 < n && p[i + 1] == '\'') {
			if (lit != NULL)
				fh_put(lit, "'", 1);
			i++;
			continue;
		}
		return i + 1;
	}
	return n + 1;
}

static int
fh_pattern_check(const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		char c = p[i];
		size_t run = 1;

		if (c == '\'') {
			i = fh_quoted(p, n, i, NULL);
			if (i > n)
				return -EINVAL;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
			i++;
			continue;
		}
		while (i + run < n && p[i + run] == c)
			run++;
		if (!fh_pattern_letter_ok(c, run))
			return -EINVAL;
		i += run;
	}
	return 0;
}

/* ---- The query ----------------------------------------------------------------- */

static const char *
fh_skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* An identifier into out (NUL-ended); the text after it, or NULL. */
static const char *
fh_ident(const char *p, char *out, size_t out_size)
{
	size_t n = 0;

	if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
		return NULL;
	while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') || p[n] == '_' ||
	       (p[n] >= '0' && p[n] <= '9'))
		n++;
	if (n >= out_size)
		return NULL;
	memcpy(out, p, n);
	out[n] = '\0';
	return p + n;
}

/* ".a.b" into key->fields; the text after it, or NULL. */
static const char *
fh_path(const char *p, struct fh_query_key *key)
{
	key->depth = 0;
	while (*p == '.') {
		if (key->depth == FH_QUERY_DEPTH_MAX)
			return NULL;
		p = fh_ident(p + 1, key->fields[key->depth++], FH_QUERY_NAME_SIZE);
		if (p == NULL)
			return NULL;
	}
	return key->depth > 0 ? p : NULL;
}

int
fh_query_parse(const char *text, struct fh_query *q)
{
	const char *p = fh_skip_ws(text);

	q->count = 0;
	if (*p++ != '{')
		return -EINVAL;
	for (;;) {
		struct fh_query_key *key;

		if (q->count == FIREHOSE_PARTITION_KEYS_MAX)
			return -EINVAL;
		key = &q->keys[q->count++];
		key->lambda = false;
		p = fh_ident(fh_skip_ws(p), key->name, sizeof(key->name));
		if (p == NULL)
			return -EINVAL;
		p = fh_skip_ws(p);
		if (*p++ != ':')
			return -EINVAL;
		p = fh_path(fh_skip_ws(p), key);
		if (p == NULL)
			return -EINVAL;
		p = fh_skip_ws(p);
		if (*p == '}')
			break;
		if (*p++ != ',')
			return -EINVAL;
	}
	return *fh_skip_ws(p + 1) == '\0' ? 0 : -EINVAL;
}

/* The key `name` of the query's (lambda false) or of the Lambda's (true); -1 none. */
static int
fh_query_find(const struct fh_query *q, const char *name, size_t n, bool lambda)
{
	for (uint32_t i = 0; i < q->count; i++)
		if (q->keys[i].lambda == lambda && fh_span_is(name, n, q->keys[i].name))
			return (int)i;
	return -1;
}

/* A value usable as a key segment (directory name under local_root, too). */
static bool
fh_value_ok(const char *v)
{
	if (v[0] == '\0' || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return false;
	for (const char *c = v; *c != '\0'; c++)
		if (*c == '/' || (unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

int
fh_value_text(const cJSON *v, char *out, size_t out_size)
{
	int n;

	if (cJSON_IsString(v))
		n = snprintf(out, out_size, "%s", v->valuestring);
	else if (cJSON_IsBool(v))
		n = snprintf(out, out_size, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else if (cJSON_IsNumber(v) && fabs(v->valuedouble) < 0x1p63 &&
		 v->valuedouble == (double)(long long)v->valuedouble)
		n = snprintf(out, out_size, "%lld", (long long)v->valuedouble);
	else if (cJSON_IsNumber(v))
		n = snprintf(out, out_size, "%.17g", v->valuedouble);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= out_size || !fh_value_ok(out) ? -EINVAL : 0;
}

int
fh_query_eval(const struct fh_query *q, const void *data, size_t size,
	      char values[][FH_VALUE_SIZE_MAX + 1])
{
	cJSON *root = cJSON_ParseWithLength(data, size);
	int rc = root != NULL && cJSON_IsObject(root) ? 0 : -EBADMSG;

	for (uint32_t i = 0; rc == 0 && i < q->count; i++) {
		const struct fh_query_key *key = &q->keys[i];
		const cJSON *v = root;

		if (key->lambda)
			continue;  /* From the Lambda's answer (fh_partition.c). */

		for (uint32_t d = 0; v != NULL && d < key->depth; d++) {
			const char *field = key->fields[d];

			v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, field) : NULL;
		}
		rc = fh_value_text(v, values[i], FH_VALUE_SIZE_MAX + 1);
	}
	cJSON_Delete(root);
	return rc;
}

/* ---- Checking a spec (CreateDeliveryStream) -------------------------------------- */

struct fh_prefix_use {
	bool expressions;
	bool timestamp;
	bool error_type;
	bool partition_key;
	bool lambda_key;
};

static int
fh_msg(char *message, size_t size, const char *text, const char *detail)
{
	snprintf(message, size, text, detail);
	return -EINVAL;
}

/* One expression of `which` prefix; refusals carry their text in message. */
static int
fh_expr_check(const struct fh_expr *e, bool error_prefix, const struct fh_query *q,
	      struct fh_prefix_use *use, char *message, size_t size)
{
	use->expressions = true;
	if (fh_span_is(e->ns, e->ns_size, FH_NS_TIMESTAMP)) {
		use->timestamp = true;
		if (fh_pattern_check(e->value, e->value_size) == 0)
			return 0;
		return fh_msg(message, size, "The timestamp pattern in %s is not a Java "
			      "DateTimeFormatter pattern this endpoint builds (yyyy, yy, MM, dd, "
			      "DDD, HH, mm, ss and 'literal' text).", error_prefix ?
			      "ErrorOutputPrefix" : "Prefix");
	}
	if (fh_span_is(e->ns, e->ns_size, FH_NS_FIREHOSE) &&
	    fh_span_is(e->value, e->value_size, "random-string"))
		return 0;
	if (fh_span_is(e->ns, e->ns_size, FH_NS_FIREHOSE) &&
	    fh_span_is(e->value, e->value_size, "error-output-type")) {
		use->error_type = true;
		return error_prefix ? 0 : fh_msg(message, size, "%s", "The expression "
			"!{firehose:error-output-type} can only be used in ErrorOutputPrefix.");
	}
	if (fh_span_is(e->ns, e->ns_size, FH_NS_QUERY)) {
		use->partition_key = true;
		if (error_prefix)
			return fh_msg(message, size, "%s", "Dynamic Partitioning Namespaces can "
				      "not be part of ErrorOutputPrefix.");
		if (q != NULL && fh_query_find(q, e->value, e->value_size, false) < 0)
			return fh_msg(message, size, "%s", "The partition key in "
				      "!{partitionKeyFromQuery:...} is not one of the keys of the "
				      "MetadataExtractionQuery.");
		return 0;
	}
	if (fh_span_is(e->ns, e->ns_size, FH_NS_LAMBDA)) {
		use->partition_key = use->lambda_key = true;
		if (error_prefix)
			return fh_msg(message, size, "%s", "Dynamic Partitioning Namespaces can "
				      "not be part of ErrorOutputPrefix.");
		if (e->value_size == 0 || e->value_size >= FH_QUERY_NAME_SIZE)
			return fh_msg(message, size, "The partition key in "
				      "!{partitionKeyFromLambda:...} must have 1 to %s bytes here.",
				      FH_QUERY_NAME_MAX_TEXT);
		return 0;
	}
	return fh_msg(message, size, "The supplied prefix(es) contain an unknown expression "
		      "namespace or value in %s: only timestamp, firehose (error-output-type, "
		      "random-string), partitionKeyFromQuery and partitionKeyFromLambda are "
		      "valid.",
		      error_prefix ? "ErrorOutputPrefix" : "Prefix");
}

static int
fh_template_check(const char *t, bool error_prefix, const struct fh_query *q,
		  struct fh_prefix_use *use, char *message, size_t size)
{
	while (*t != '\0') {
		struct fh_expr e;
		size_t n;
		int rc;

		if (t[0] != '!' || t[1] != '{') {
			t++;
			continue;
		}
		if (fh_expr_parse(t, &e, &n) != 0)
			return fh_msg(message, size, "The supplied prefix(es) contain '!{' that "
				      "does not start a !{namespace:value} expression in %s.",
				      error_prefix ? "ErrorOutputPrefix" : "Prefix");
		rc = fh_expr_check(&e, error_prefix, q, use, message, size);
		if (rc != 0)
			return rc;
		t += n;
	}
	return 0;
}

/* Rules across both prefixes and the partitioning switch, in AWS's words where known. */
static int
fh_rules_check(const struct firehose_spec *spec, const struct fh_prefix_use *p,
	       const struct fh_prefix_use *e, char *message, size_t size)
{
	if (p->partition_key && !spec->partitioning)
		return fh_msg(message, size, "%s", "Dynamic Partitioning Namespaces can only be "
			      "part of a prefix expression when Dynamic Partitioning is enabled.");
	if ((p->expressions || spec->partitioning) && spec->error_prefix[0] == '\0')
		return fh_msg(message, size, "%s", "Ths supplied prefix(es) do not satisfy the "
			      "following constraint: ErrorOutputPrefix cannot be null or empty "
			      "when Prefix contains expressions");
	if (e->expressions && !e->error_type)
		return fh_msg(message, size, "%s", "The supplied prefix(es) do not satisfy the "
			      "following constraint: ErrorOutputPrefix must contain "
			      "!{firehose:error-output-type} when it contains expressions");
	if (spec->partitioning && !p->partition_key)
		return fh_msg(message, size, "%s", "When Dynamic Partitioning is enabled, Prefix "
			      "must contain at least one dynamic partitioning namespace "
			      "expression (!{partitionKeyFromQuery:...} or "
			      "!{partitionKeyFromLambda:...}).");
	if (p->lambda_key && spec->lambda.arn[0] == '\0')
		return fh_msg(message, size, "%s", "!{partitionKeyFromLambda:...} needs a Lambda "
			      "processor in ProcessingConfiguration (its answer's "
			      "metadata.partitionKeys).");
	if (spec->partitioning && spec->interval_s == 0)
		return fh_msg(message, size, "%s", "Dynamic Partitioning does not support zero "
			      "buffering: BufferingHints.IntervalInSeconds must be at least 1.");
	return 0;
}

int
firehose_spec_check(const struct firehose_spec *spec, char *message, size_t message_size)
{
	struct fh_prefix_use p = { 0 }, e = { 0 };
	static struct fh_query q;  /* The API thread's; too large for its stack. */
	bool has_query = spec->query[0] != '\0';
	int rc;

	if (has_query && fh_query_parse(spec->query, &q) != 0)
		return fh_msg(message, message_size, "%s", "MetadataExtractionQuery must be a "
			      "JQ object whose values are field paths, such as "
			      "{customer_id:.customer_id,device:.type.device} (at most 50 keys); "
			      "other JQ expressions are not supported by this endpoint yet.");
	if (has_query && !spec->partitioning)
		return fh_msg(message, message_size, "%s", "A MetadataExtraction processor "
			      "requires Dynamic Partitioning to be enabled.");
	rc = fh_template_check(spec->prefix, false, has_query ? &q : NULL, &p, message,
			       message_size);
	if (rc == 0)
		rc = fh_template_check(spec->error_prefix, true, NULL, &e, message, message_size);
	if (rc == 0)
		rc = fh_rules_check(spec, &p, &e, message, message_size);
	if (rc == 0 && spec->partitioning && !has_query && !p.lambda_key)
		rc = fh_msg(message, message_size, "%s", "Dynamic Partitioning needs a "
			    "MetadataExtraction processor or !{partitionKeyFromLambda:...} keys "
			    "from a Lambda processor.");
	if (rc == 0 && (has_query || p.lambda_key) && fh_query_from_spec(spec, &q) != 0)
		rc = fh_msg(message, message_size, "%s", "Dynamic Partitioning may use at most "
			    "50 partition keys (MetadataExtractionQuery and partitionKeyFromLambda "
			    "together).");
	return rc;
}

/* The Lambda keys Prefix names (!{partitionKeyFromLambda:KEY}), once each, after q's. */
static int
fh_query_add_lambda(const char *t, struct fh_query *q)
{
	while (*t != '\0') {
		struct fh_expr e;
		size_t n;

		if (t[0] != '!' || t[1] != '{' || fh_expr_parse(t, &e, &n) != 0) {
			t++;
			continue;
		}
		t += n;
		if (!fh_span_is(e.ns, e.ns_size, FH_NS_LAMBDA) ||
		    fh_query_find(q, e.value, e.value_size, true) >= 0)
			continue;
		if (q->count == FIREHOSE_PARTITION_KEYS_MAX || e.value_size >= FH_QUERY_NAME_SIZE)
			return -EINVAL;
		q->keys[q->count] = (struct fh_query_key){ .lambda = true };
		memcpy(q->keys[q->count].name, e.value, e.value_size);
		q->count++;
	}
	return 0;
}

int
fh_query_from_spec(const struct firehose_spec *spec, struct fh_query *q)
{
	q->count = 0;
	if (spec->query[0] != '\0' && fh_query_parse(spec->query, q) != 0)
		return -EINVAL;
	return fh_query_add_lambda(spec->prefix, q);
}

/* ---- Evaluating ------------------------------------------------------------------ */

static void
fh_put_number(struct fh_out *o, int value, size_t width)
{
	char text[16];
	int n = snprintf(text, sizeof(text), "%0*d", (int)width, value);

	fh_put(o, text, (size_t)n);
}

static void
fh_format_run(struct fh_out *o, const struct tm *tm, char c, size_t run)
{
	switch (c) {
	case 'y': case 'u':
		fh_put_number(o, run == 2 ? (tm->tm_year + 1900) % 100 : tm->tm_year + 1900, run);
		break;
	case 'M': fh_put_number(o, tm->tm_mon + 1, run); break;
	case 'd': fh_put_number(o, tm->tm_mday, run); break;
	case 'D': fh_put_number(o, tm->tm_yday + 1, run); break;
	case 'H': fh_put_number(o, tm->tm_hour, run); break;
	case 'm': fh_put_number(o, tm->tm_min, run); break;
	default: fh_put_number(o, tm->tm_sec, run); break;  /* 's': checked at create. */
	}
}

static void
fh_format_time(struct fh_out *o, const struct tm *tm, const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		char c = p[i];
		size_t run = 1;

		if (c == '\'') {
			i = fh_quoted(p, n, i, o);
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
			fh_put(o, &c, 1);
			i++;
			continue;
		}
		while (i + run < n && p[i + run] == c)
			run++;
		fh_format_run(o, tm, c, run);
		i += run;
	}
}

static void
fh_random_string(struct fh_out *o, uint64_t h)
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char text[FH_RANDOM_SIZE];

	for (size_t i = 0; i < FH_RANDOM_SIZE; i++, h /= 36)
		text[i] = alphabet[h % 36];
	fh_put(o, text, FH_RANDOM_SIZE);
}

static void
fh_eval_expr(struct fh_out *o, const struct fh_expr *e, const struct tm *tm,
	     const struct fh_prefix_vars *v, bool *timestamp)
{
	int key;

	if (fh_span_is(e->ns, e->ns_size, FH_NS_TIMESTAMP)) {
		*timestamp = true;
		fh_format_time(o, tm, e->value, e->value_size);
	} else if (fh_span_is(e->value, e->value_size, "error-output-type")) {
		if (v->error_type != NULL)
			fh_put(o, v->error_type, strlen(v->error_type));
	} else if (fh_span_is(e->value, e->value_size, "random-string")) {
		fh_random_string(o, v->salt);
	} else if (v->query != NULL &&
		   (key = fh_query_find(v->query, e->value, e->value_size,
					fh_span_is(e->ns, e->ns_size, FH_NS_LAMBDA))) >= 0) {
		fh_put(o, v->values[key], strlen(v->values[key]));
	}
}

int
fh_prefix_eval(const char *t, const struct fh_prefix_vars *v, char *out, size_t out_size)
{
	struct fh_out o = { .p = out, .size = out_size };
	const char *t_start = t;
	time_t seconds = (time_t)(v->arrival_ns / 1000000000u);
	bool timestamp = false;
	struct tm tm;

	gmtime_r(&seconds, &tm);
	out[0] = '\0';
	while (*t != '\0') {
		struct fh_expr e;
		size_t n;

		if (t[0] == '!' && t[1] == '{' && fh_expr_parse(t, &e, &n) == 0) {
			fh_eval_expr(&o, &e, &tm, v, &timestamp);
			t += n;
			continue;
		}
		fh_put(&o, t++, 1);
	}
	/* An error prefix that does not say where the type goes gets it as a segment. */
	if (v->error_type != NULL && strstr(t_start, "!{firehose:error-output-type}") == NULL) {
		fh_put(&o, v->error_type, strlen(v->error_type));
		fh_put(&o, "/", 1);
	}
	if (!timestamp)
		fh_format_time(&o, &tm, FH_DEFAULT_TIME_PATTERN, strlen(FH_DEFAULT_TIME_PATTERN));
	return o.overflow ? -ENAMETOOLONG : 0;
}
