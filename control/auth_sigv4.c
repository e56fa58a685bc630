/*
 * auth_sigv4.c - SigV4 verification (contract in auth_sigv4.h).
 *
 * Canonical request (hashed incrementally, never built in memory):
 *
 *   METHOD \n
 *   canonical URI (path, every byte but unreserved and '/' as %XX) \n
 *   canonical query (k=v pairs sorted bytewise; empty for Kinesis) \n
 *   name:value \n for each signed header (values trimmed, runs of
 *     whitespace collapsed, repeated headers joined with ',') \n
 *   signed header names joined with ';' \n
 *   hex SHA-256 of the body
 *
 * String to sign: "AWS4-HMAC-SHA256\n" X-Amz-Date "\n" scope "\n" hex(SHA-256(canonical)).
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request"),
 * service being "kinesis" for the API ("firehose" for its Firehose targets) and
 * "sluice-admin" for the admin listener.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/sigv4.h"
#include "control/auth_sigv4.h"
#include "control/http1.h"


struct span {
	const char *p;
	size_t n;
};

static bool
span_eq(struct span s, const char *text)
{
	return s.n == strlen(text) && memcmp(s.p, text, s.n) == 0;
}

static void
sigv4_copy_field(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int
sigv4_keys_parse(struct sigv4_keys *keys, const char *access_keys, const char *region)
{
	return sigv4_keys_parse_service(keys, access_keys, region, SIGV4_SERVICE_KINESIS);
}

int
sigv4_keys_parse_service(struct sigv4_keys *keys, const char *access_keys, const char *region,
			 const char *service)
{
	const char *p = access_keys;

	memset(keys, 0, sizeof(*keys));
	if (strlen(region) > SIGV4_REGION_SIZE_MAX || strlen(service) > SIGV4_SERVICE_SIZE_MAX)
		return -EINVAL;
	strcpy(keys->region, region);
	strcpy(keys->service, service);
	keys->target_signed = strcmp(service, SIGV4_SERVICE_KINESIS) == 0;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		const char *colon;
		size_t id_size;
		size_t secret_size;
		struct sigv4_key *key;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && *p == ' ')
			p++;
		colon = memchr(p, ':', (size_t)(end - p));
		if (colon == NULL || keys->count == SIGV4_KEYS_MAX)
			return -EINVAL;
		id_size = (size_t)(colon - p);
		secret_size = (size_t)(end - colon - 1);
		while (secret_size > 0 && colon[secret_size] == ' ')
			secret_size--;
		if (id_size == 0 || id_size > SIGV4_KEY_ID_SIZE_MAX || secret_size == 0 ||
		    secret_size > SIGV4_SECRET_SIZE_MAX)
			return -EINVAL;
		key = &keys->items[keys->count++];
		memcpy(key->access_key_id, p, id_size);
		memcpy(key->secret, colon + 1, secret_size);
		p = *end == ',' ? end + 1 : end;
	}
	return keys->count > 0 ? 0 : -EINVAL;
}

static struct sigv4_key *
sigv4_key_find(struct sigv4_keys *keys, struct span id)
{
	for (uint32_t i = 0; i < keys->count; i++)
		if (span_eq(id, keys->items[i].access_key_id))
			return &keys->items[i];
	return NULL;
}

/* One "AKID=ARN" item of [auth] principals. */
static int
sigv4_principal_item(struct sigv4_keys *keys, const char *p, size_t n, char *message,
		     size_t message_size)
{
	const char *eq = memchr(p, '=', n);
	char account[POLICY_ACCOUNT_ID_SIZE + 1];
	char arn[POLICY_ARN_SIZE_MAX + 1];
	struct sigv4_key *key;

	if (eq == NULL || (size_t)(p + n - eq - 1) > POLICY_ARN_SIZE_MAX) {
		snprintf(message, message_size, "'%.*s': expected ACCESS_KEY_ID=ARN", (int)n, p);
		return -EINVAL;
	}
	key = sigv4_key_find(keys, (struct span){ p, (size_t)(eq - p) });
	sigv4_copy_field(arn, sizeof(arn), eq + 1, (size_t)(p + n - eq - 1));
	if (key == NULL) {
		snprintf(message, message_size, "'%.*s' is not one of [auth] access_keys",
			 (int)(eq - p), p);
		return -EINVAL;
	}
	if (policy_principal_account(arn, account) != 0) {
		snprintf(message, message_size, "'%s': expected arn:aws:iam::ACCOUNT:root, "
			 "...:user/NAME or ...:role/NAME (ACCOUNT: 12 digits)", arn);
		return -EINVAL;
	}
	strcpy(key->principal_arn, arn);
	return 0;
}

int
sigv4_principals_parse(struct sigv4_keys *keys, const char *principals,
		       const char *owner_account, char *message, size_t message_size)
{
	char root[POLICY_ARN_SIZE_MAX + 1];
	char account[POLICY_ACCOUNT_ID_SIZE + 1];
	const char *p = principals;

	snprintf(root, sizeof(root), "arn:aws:iam::%s:root", owner_account);
	if (policy_principal_account(root, account) != 0) {
		snprintf(message, message_size, "[server] account_id '%s' is not 12 digits",
			 owner_account);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < keys->count; i++)
		strcpy(keys->items[i].principal_arn, root);
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t n;
		int rc;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && *p == ' ')
			p++;
		n = (size_t)(end - p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		rc = sigv4_principal_item(keys, p, n, message, message_size);
		if (rc != 0)
			return rc;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

static const struct sigv4_header *
sigv4_header_find(const struct sigv4_input *in, const char *lower)
{
	for (size_t i = 0; i < in->header_count; i++)
		if (http1_name_is(in->headers[i].name, in->headers[i].name_size, lower))
			return &in->headers[i];
	return NULL;
}

static void
sigv4_fail(struct sigv4_result *r, enum sigv4_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sigv4_fail(struct sigv4_result *r, enum sigv4_status status, const char *fmt, ...)
{
	static const char *const types[] = {
		[SIGV4_OK] = NULL,
		[SIGV4_MISSING] = "MissingAuthenticationTokenException",
		[SIGV4_INCOMPLETE] = "IncompleteSignatureException",
		[SIGV4_UNRECOGNIZED] = "UnrecognizedClientException",
		[SIGV4_INVALID] = "InvalidSignatureException",
	};
	va_list ap;

	r->status = status;
	r->error_type = types[status];
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/* The parts of an Authorization header value. */
struct sigv4_auth {
	struct span algorithm;
	struct span credential;
	struct span signed_headers;
	struct span signature;
};

/*
 * What a request claims, from its Authorization header or, presigned, from
 * its query: the parts, the date and (presigned only) the validity period.
 */
struct sigv4_claim {
	struct sigv4_auth auth;
	struct span date;
	bool date_basic;           /* X-Amz-Date's ISO basic format (else Date's RFC 1123). */
	bool presigned;
	uint32_t expires_s;        /* Presigned: X-Amz-Expires. */
};

/* A presigned request's X-Amz-* query parameters, percent-decoded. */
struct sigv4_presign {
	char algorithm[32];
	char credential[SIGV4_QUERY_VALUE_SIZE_MAX + 1];
	char date[32];
	char expires[16];
	char signed_headers[SIGV4_QUERY_VALUE_SIZE_MAX + 1];
	char signature[80];
};

/* "ALG Credential=..., SignedHeaders=..., Signature=..."; parameters split on ',' or ' '. */
static void
sigv4_auth_parse(const char *v, size_t n, struct sigv4_auth *a)
{
	size_t i = 0;

	memset(a, 0, sizeof(*a));
	while (i < n && v[i] != ' ')
		i++;
	a->algorithm = (struct span){ v, i };
	while (i < n) {
		size_t start;
		const char *eq;
		struct span key;
		struct span value;

		while (i < n && (v[i] == ' ' || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ' ' && v[i] != ',')
			i++;
		eq = memchr(v + start, '=', i - start);
		if (eq == NULL)
			continue;
		key = (struct span){ v + start, (size_t)(eq - v - start) };
		value = (struct span){ eq + 1, (size_t)(v + i - eq - 1) };
		if (span_eq(key, "Credential"))
			a->credential = value;
		else if (span_eq(key, "SignedHeaders"))
			a->signed_headers = value;
		else if (span_eq(key, "Signature"))
			a->signature = value;
	}
}

/* kinesalite's (and AWS's) text for missing parts. Returns false after failing `r`. */
static bool
sigv4_check_complete(const struct sigv4_header *authz, const struct sigv4_auth *a,
		     bool have_date, struct sigv4_result *r)
{
	char msg[SIGV4_MESSAGE_SIZE] = "";
	size_t used = 0;

	if (a->credential.n == 0)
		used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			"Authorization header requires 'Credential' parameter. ");
	if (a->signature.n == 0 && used < sizeof(msg))
		used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			"Authorization header requires 'Signature' parameter. ");
	if (a->signed_headers.n == 0 && used < sizeof(msg))
		used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			"Authorization header requires 'SignedHeaders' parameter. ");
	if (!have_date && used < sizeof(msg))
		used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			"Authorization header requires existence of either a 'X-Amz-Date' or "
			"a 'Date' header. ");
	if (used == 0)
		return true;
	sigv4_fail(r, SIGV4_INCOMPLETE, "%sAuthorization=%.*s", msg, (int)authz->value_size,
		   authz->value);
	return false;
}

/* Credential = AKID/yyyymmdd/region/service/terminator. */
struct sigv4_credential {
	struct span key_id;
	struct span date;
	struct span region;
	struct span service;
	struct span terminator;
};

static bool
sigv4_credential_parse(struct span c, struct sigv4_credential *out, struct sigv4_result *r)
{
	struct span parts[5];
	size_t count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= c.n; i++) {
		if (i < c.n && c.p[i] != '/')
			continue;
		if (count == 5) {
			count++;
			break;
		}
		parts[count++] = (struct span){ c.p + start, i - start };
		start = i + 1;
	}
	if (count != 5) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "Credential must have exactly 5 slash-delimited "
			   "elements, e.g. keyid/date/region/service/term, got '%.*s'",
			   (int)c.n, c.p);
		return false;
	}
	*out = (struct sigv4_credential){ parts[0], parts[1], parts[2], parts[3], parts[4] };
	return true;
}

static bool
sigv4_all_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/*
 * The request time from X-Amz-Date (ISO 8601 basic) or Date (RFC 1123), as
 * epoch seconds and as the basic-format text the string to sign uses.
 */
static bool
sigv4_request_time(struct span value, bool basic, char amz_date[17], int64_t *epoch_out,
		   struct sigv4_result *r)
{
	char text[64];
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	sigv4_copy_field(text, sizeof(text), value.p, value.n);
	if (basic) {
		if (value.n != 16 || text[8] != 'T' || text[15] != 'Z' ||
		    !sigv4_all_digits(text, 8) || !sigv4_all_digits(text + 9, 6))
			goto out_bad;
		end = strptime(text, "%Y%m%dT%H%M%SZ", &tm);
	} else {
		end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	if (end == NULL || *end != '\0')
		goto out_bad;
	*epoch_out = (int64_t)timegm(&tm);
	strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm);
	return true;

out_bad:
	sigv4_fail(r, SIGV4_INCOMPLETE, "Date must be in ISO-8601 'basic format'. Got '%s'. See "
		   "http://en.wikipedia.org/wiki/ISO_8601", text);
	return false;
}

/* The header form's date: X-Amz-Date, else Date (one of them exists: checked before). */
static struct span
sigv4_header_date(const struct sigv4_input *in, bool *basic)
{
	const struct sigv4_header *h = sigv4_header_find(in, "x-amz-date");

	*basic = h != NULL;
	if (h == NULL)
		h = sigv4_header_find(in, "date");
	assert(h != NULL);
	return (struct span){ h->value, h->value_size };
}

static void
sigv4_format_time(int64_t epoch, char out[17])
{
	time_t t = (time_t)epoch;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool
sigv4_check_clock(const char *amz_date, int64_t request_s, uint64_t now_ns,
		  struct sigv4_result *r)
{
	int64_t now_s = (int64_t)(now_ns / 1000000000u);
	char now_text[17];
	char edge_text[17];

	sigv4_format_time(now_s, now_text);
	if (request_s < now_s - SIGV4_CLOCK_SKEW_S) {
		sigv4_format_time(now_s - SIGV4_CLOCK_SKEW_S, edge_text);
		sigv4_fail(r, SIGV4_INVALID, "Signature expired: %s is now earlier than %s (%s - 5 "
			   "min.)", amz_date, edge_text, now_text);
		return false;
	}
	if (request_s > now_s + SIGV4_CLOCK_SKEW_S) {
		sigv4_format_time(now_s + SIGV4_CLOCK_SKEW_S, edge_text);
		sigv4_fail(r, SIGV4_INVALID, "Signature not yet current: %s is still later than %s "
			   "(%s + 5 min.)", amz_date, edge_text, now_text);
		return false;
	}
	return true;
}

/* The request's scope service: its own when it names one (Firehose), else the keys'. */
static const char *
sigv4_service(const struct sigv4_keys *keys, const struct sigv4_input *in)
{
	return in->service != NULL ? in->service : keys->service;
}

static bool
sigv4_check_scope(const struct sigv4_credential *c, const char *amz_date,
		  const struct sigv4_keys *keys, const char *service, struct sigv4_result *r)
{
	if (c->date.n != 8 || memcmp(c->date.p, amz_date, 8) != 0) {
		sigv4_fail(r, SIGV4_INVALID, "Date in Credential scope does not match YYYYMMDD "
			   "from ISO-8601 version of date from HTTP: '%.*s' != '%.8s', from '%s'.",
			   (int)c->date.n, c->date.p, amz_date, amz_date);
		return false;
	}
	if (!span_eq(c->region, keys->region)) {
		sigv4_fail(r, SIGV4_INVALID, "Credential should be scoped to a valid region, not "
			   "'%.*s'. ", (int)c->region.n, c->region.p);
		return false;
	}
	if (!span_eq(c->service, service)) {
		sigv4_fail(r, SIGV4_INVALID, "Credential should be scoped to correct service: "
			   "'%s'. ", service);
		return false;
	}
	if (!span_eq(c->terminator, SIGV4_TERMINATOR)) {
		sigv4_fail(r, SIGV4_INVALID, "Credential should be scoped with a valid "
			   "terminator: '" SIGV4_TERMINATOR "', not '%.*s'. ", (int)c->terminator.n,
			   c->terminator.p);
		return false;
	}
	return true;
}

/* Splits SignedHeaders on ';' and enforces: non-empty, lower-case, sorted, unique. */
static bool
sigv4_signed_headers_parse(struct span list, struct span *names, size_t *count_out,
			   struct sigv4_result *r)
{
	size_t count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= list.n; i++) {
		if (i < list.n && list.p[i] != ';') {
			if (list.p[i] >= 'A' && list.p[i] <= 'Z')
				goto out_bad;
			continue;
		}
		if (i == start || count == SIGV4_SIGNED_HEADERS_MAX)
			goto out_bad;
		names[count] = (struct span){ list.p + start, i - start };
		if (count > 0) {
			struct span prev = names[count - 1];
			size_t n = prev.n < names[count].n ? prev.n : names[count].n;
			int cmp = memcmp(prev.p, names[count].p, n);

			if (cmp > 0 || (cmp == 0 && prev.n >= names[count].n))
				goto out_bad;
		}
		count++;
		start = i + 1;
	}
	*count_out = count;
	return true;

out_bad:
	sigv4_fail(r, SIGV4_INVALID, "SignedHeaders must be a ';'-separated list of lower-case, "
		   "sorted, distinct header names. SignedHeaders=%.*s", (int)list.n, list.p);
	return false;
}

static bool
sigv4_list_has(const struct span *names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (span_eq(names[i], name))
			return true;
	return false;
}

static void
sigv4_update(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	if (n > 0 && EVP_DigestUpdate(ctx, p, n) != 1)
		abort();
}

/* Path bytes: unreserved and '/' as they are, the rest as upper-case %XX. */
static void
sigv4_update_uri(EVP_MD_CTX *ctx, const char *path, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		char enc[3];

		if (sigv4_unreserved(c) || c == '/') {
			sigv4_update(ctx, &path[i], 1);
			continue;
		}
		snprintf(enc, sizeof(enc), "%02X", c);
		sigv4_update(ctx, "%", 1);
		sigv4_update(ctx, enc, 2);
	}
}

static int
sigv4_span_cmp(const void *a, const void *b)
{
	const struct span *x = a;
	const struct span *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int cmp = memcmp(x->p, y->p, n);

	return cmp != 0 ? cmp : (x->n > y->n) - (x->n < y->n);
}

/*
 * Query parameters sorted bytewise; a parameter without '=' gets one. A
 * presigned request's X-Amz-Signature is not part of what it signs.
 */
static void
sigv4_update_query(EVP_MD_CTX *ctx, const char *q, size_t n, bool presigned)
{
	static const char signature[] = "X-Amz-Signature=";
	struct span params[SIGV4_SIGNED_HEADERS_MAX];
	size_t count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n && count < SIGV4_SIGNED_HEADERS_MAX; i++) {
		if (i < n && q[i] != '&')
			continue;
		if (i > start && !(presigned && i - start >= sizeof(signature) - 1 &&
				   memcmp(q + start, signature, sizeof(signature) - 1) == 0))
			params[count++] = (struct span){ q + start, i - start };
		start = i + 1;
	}
	qsort(params, count, sizeof(params[0]), sigv4_span_cmp);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			sigv4_update(ctx, "&", 1);
		sigv4_update(ctx, params[i].p, params[i].n);
		if (memchr(params[i].p, '=', params[i].n) == NULL)
			sigv4_update(ctx, "=", 1);
	}
}

/* A header value trimmed, with every run of spaces and tabs as one space. */
static void
sigv4_update_value(EVP_MD_CTX *ctx, const char *v, size_t n)
{
	bool first = true;
	size_t i = 0;

	while (i < n) {
		size_t start;

		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && v[i] != ' ' && v[i] != '\t')
			i++;
		if (!first)
			sigv4_update(ctx, " ", 1);
		sigv4_update(ctx, v + start, i - start);
		first = false;
	}
}

/* Header name (any case) equals the lower-case span? */
static bool
sigv4_name_eq(const char *name, size_t size, struct span lower)
{
	if (size != lower.n)
		return false;
	for (size_t i = 0; i < size; i++) {
		char c = name[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lower.p[i])
			return false;
	}
	return true;
}

static void
sigv4_update_header(EVP_MD_CTX *ctx, const struct sigv4_input *in, struct span name)
{
	bool found = false;

	sigv4_update(ctx, name.p, name.n);
	sigv4_update(ctx, ":", 1);
	for (size_t i = 0; i < in->header_count; i++) {
		const struct sigv4_header *h = &in->headers[i];

		if (!sigv4_name_eq(h->name, h->name_size, name))
			continue;
		if (found)
			sigv4_update(ctx, ",", 1);
		sigv4_update_value(ctx, h->value, h->value_size);
		found = true;
	}
	/* HTTP/2 carries Host as :authority; SDKs sign it under "host". */
	if (!found && span_eq(name, "host")) {
		const struct sigv4_header *h = sigv4_header_find(in, ":authority");

		if (h != NULL)
			sigv4_update_value(ctx, h->value, h->value_size);
	}
	sigv4_update(ctx, "\n", 1);
}

/* Hex SHA-256 of the canonical request. */
static void
sigv4_canonical_hash(const struct sigv4_input *in, const struct span *names, size_t count,
		     const struct sigv4_claim *claim, const char *payload_hex, char out_hex[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *query = memchr(in->target, '?', in->target_size);
	size_t path_size = query != NULL ? (size_t)(query - in->target) : in->target_size;
	uint8_t digest[32];
	unsigned int len = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		abort();
	sigv4_update(ctx, in->method, in->method_size);
	sigv4_update(ctx, "\n", 1);
	sigv4_update_uri(ctx, in->target, path_size);
	sigv4_update(ctx, "\n", 1);
	if (query != NULL)
		sigv4_update_query(ctx, query + 1, in->target_size - path_size - 1,
				   claim->presigned);
	sigv4_update(ctx, "\n", 1);
	for (size_t i = 0; i < count; i++)
		sigv4_update_header(ctx, in, names[i]);
	sigv4_update(ctx, "\n", 1);
	sigv4_update(ctx, claim->auth.signed_headers.p, claim->auth.signed_headers.n);
	sigv4_update(ctx, "\n", 1);
	sigv4_update(ctx, payload_hex, 64);
	if (EVP_DigestFinal_ex(ctx, digest, &len) != 1)
		abort();
	EVP_MD_CTX_free(ctx);
	sigv4_hex_encode(digest, 32, out_hex);
}

/* kSigning for the scope date and service, from the per-key cache when both match. */
static const uint8_t *
sigv4_signing_key(struct sigv4_key *key, const char *region, const char *service,
		  struct span date)
{
	static_assert(SIGV4_SECRET_SIZE_MAX <= SIGV4_SIGN_SECRET_SIZE_MAX, "secrets sign");
	int rc;

	assert(date.n == 8);
	assert(strlen(service) <= SIGV4_SERVICE_SIZE_MAX);
	if (memcmp(key->cache_date, date.p, 8) == 0 && strcmp(key->cache_service, service) == 0)
		return key->cache_signing_key;
	rc = sigv4_key_derive(key->secret, date.p, region, service, key->cache_signing_key);
	assert(rc == 0);  /* Parsing bounds secrets (the static_assert above). */
	(void)rc;
	memcpy(key->cache_date, date.p, 8);
	key->cache_date[8] = '\0';
	strcpy(key->cache_service, service);
	return key->cache_signing_key;
}

/* The body's hash; a sent x-amz-content-sha256 must agree with it. */
static bool
sigv4_payload_hash(const struct sigv4_input *in, char hex[65], struct sigv4_result *r)
{
	const struct sigv4_header *h = sigv4_header_find(in, "x-amz-content-sha256");

	sigv4_sha256_hex(in->body, in->body_size, hex);
	if (h != NULL && (h->value_size != 64 || strncasecmp(h->value, hex, 64) != 0)) {
		sigv4_fail(r, SIGV4_INVALID, "The provided 'x-amz-content-sha256' header does not "
			   "match what was computed.");
		return false;
	}
	return true;
}

/* A presigned request is good from X-Amz-Date (less the skew) to X-Amz-Date + X-Amz-Expires. */
static bool
sigv4_check_expiry(const char *amz_date, int64_t request_s, uint32_t expires_s,
		   uint64_t now_ns, struct sigv4_result *r)
{
	int64_t now_s = (int64_t)(now_ns / 1000000000u);
	char now_text[17];
	char edge_text[17];

	if (request_s > now_s + SIGV4_CLOCK_SKEW_S)
		return sigv4_check_clock(amz_date, request_s, now_ns, r);
	if (now_s <= request_s + (int64_t)expires_s)
		return true;
	sigv4_format_time(now_s, now_text);
	sigv4_format_time(request_s + (int64_t)expires_s, edge_text);
	sigv4_fail(r, SIGV4_INVALID, "Signature expired: %s (X-Amz-Date %s + X-Amz-Expires %u) "
		   "is now earlier than %s.", edge_text, amz_date, expires_s, now_text);
	return false;
}

/* Checks after the key is known: scope, clock (or the presigned validity). */
static bool
sigv4_check_request(struct sigv4_keys *keys, const struct sigv4_input *in,
		    const struct sigv4_claim *claim, const struct sigv4_credential *cred,
		    char amz_date[17], struct sigv4_result *r)
{
	int64_t request_s;

	if (!sigv4_request_time(claim->date, claim->date_basic, amz_date, &request_s, r))
		return false;
	if (!sigv4_check_scope(cred, amz_date, keys, sigv4_service(keys, in), r))
		return false;
	if (claim->presigned)
		return sigv4_check_expiry(amz_date, request_s, claim->expires_s, in->now_real_ns,
					  r);
	return sigv4_check_clock(amz_date, request_s, in->now_real_ns, r);
}

static bool
sigv4_check_signed_set(const struct span *names, size_t count, bool target_signed,
		       struct sigv4_result *r)
{
	/* botocore signs "host"; the JS SDK v3 over HTTP/2 signs ":authority" by that name. */
	if (!sigv4_list_has(names, count, "host") && !sigv4_list_has(names, count, ":authority")) {
		sigv4_fail(r, SIGV4_INVALID, "'Host' or ':authority' must be a 'SignedHeader' in "
			   "the AWS Authorization.");
		return false;
	}
	/* Unsigned, a captured PutRecord body could be replayed as DeleteStream. */
	if (target_signed && !sigv4_list_has(names, count, "x-amz-target")) {
		sigv4_fail(r, SIGV4_INVALID, "'X-Amz-Target' must be a 'SignedHeader' in the AWS "
			   "Authorization.");
		return false;
	}
	return true;
}

/* The header form: Authorization parsed, completeness and algorithm checked. */
static bool
sigv4_header_claim(const struct sigv4_input *in, const struct sigv4_header *authz,
		   struct sigv4_claim *claim, struct sigv4_result *r)
{
	bool have_date = sigv4_header_find(in, "x-amz-date") != NULL ||
			 sigv4_header_find(in, "date") != NULL;
	struct sigv4_auth *a = &claim->auth;

	sigv4_auth_parse(authz->value, authz->value_size, a);
	if (!sigv4_check_complete(authz, a, have_date, r))
		return false;
	if (!span_eq(a->algorithm, SIGV4_ALGORITHM)) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "Unsupported AWS 'algorithm': '%.*s'",
			   (int)a->algorithm.n, a->algorithm.p);
		return false;
	}
	claim->date = sigv4_header_date(in, &claim->date_basic);
	return true;
}

/* The raw value of query parameter `name` (up to '&' or the end), or false. */
static bool
sigv4_query_find(const struct sigv4_input *in, const char *name, struct span *value)
{
	const char *end = in->target + in->target_size;
	const char *p = memchr(in->target, '?', in->target_size);
	size_t name_size = strlen(name);

	while (p != NULL && p + 1 < end) {
		const char *amp;

		p++;  /* Past '?' or '&'. */
		amp = memchr(p, '&', (size_t)(end - p));
		if ((size_t)(end - p) > name_size && memcmp(p, name, name_size) == 0 &&
		    p[name_size] == '=') {
			const char *v = p + name_size + 1;

			*value = (struct span){ v, (size_t)((amp != NULL ? amp : end) - v) };
			return true;
		}
		p = amp;
	}
	return false;
}

/*
 * The query parameter `name`, percent-decoded into `out` (NUL-terminated).
 * False when it is absent, malformed or does not fit.
 */
static bool
sigv4_query_param(const struct sigv4_input *in, const char *name, char *out, size_t cap)
{
	struct span v;
	size_t n = 0;

	if (!sigv4_query_find(in, name, &v))
		return false;
	for (size_t i = 0; i < v.n; i++) {
		int hi = i + 2 < v.n ? OPENSSL_hexchar2int((unsigned char)v.p[i + 1]) : -1;
		int lo = i + 2 < v.n ? OPENSSL_hexchar2int((unsigned char)v.p[i + 2]) : -1;

		if (n + 1 == cap || (v.p[i] == '%' && (hi < 0 || lo < 0)))
			return false;
		if (v.p[i] != '%') {
			out[n++] = v.p[i];
			continue;
		}
		out[n++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[n] = '\0';
	return true;
}

/* The presigned form: X-Amz-* query parameters, decoded into `q`. */
static bool
sigv4_presign_claim(const struct sigv4_input *in, struct sigv4_presign *q,
		    struct sigv4_claim *claim, struct sigv4_result *r)
{
	char *end = NULL;
	unsigned long expires;

	if (!sigv4_query_param(in, "X-Amz-Credential", q->credential, sizeof(q->credential)) ||
	    !sigv4_query_param(in, "X-Amz-Signature", q->signature, sizeof(q->signature)) ||
	    !sigv4_query_param(in, "X-Amz-Date", q->date, sizeof(q->date)) ||
	    !sigv4_query_param(in, "X-Amz-SignedHeaders", q->signed_headers,
			       sizeof(q->signed_headers)) ||
	    !sigv4_query_param(in, "X-Amz-Expires", q->expires, sizeof(q->expires))) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "AWS query-string parameters must include "
			   "'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', "
			   "'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires'. Re-examine the "
			   "query-string parameters.");
		return false;
	}
	if (strcmp(q->algorithm, SIGV4_ALGORITHM) != 0) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "Unsupported AWS 'algorithm': '%s'", q->algorithm);
		return false;
	}
	expires = strtoul(q->expires, &end, 10);
	if (q->expires[0] < '0' || q->expires[0] > '9' || *end != '\0' || expires == 0 ||
	    expires > SIGV4_PRESIGN_EXPIRES_S_MAX) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "X-Amz-Expires must be a whole number of seconds "
			   "from 1 to %u, not '%s'", SIGV4_PRESIGN_EXPIRES_S_MAX, q->expires);
		return false;
	}
	claim->auth = (struct sigv4_auth){
		{ q->algorithm, strlen(q->algorithm) }, { q->credential, strlen(q->credential) },
		{ q->signed_headers, strlen(q->signed_headers) },
		{ q->signature, strlen(q->signature) },
	};
	claim->date = (struct span){ q->date, strlen(q->date) };
	claim->date_basic = true;
	claim->presigned = true;
	claim->expires_s = (uint32_t)expires;
	return true;
}

/* Reads the claim (either form), finds the key; NULL (r failed) when it cannot be verified. */
static struct sigv4_key *
sigv4_front(struct sigv4_keys *keys, const struct sigv4_input *in, struct sigv4_presign *q,
	    struct sigv4_claim *claim, struct sigv4_credential *cred, struct sigv4_result *r)
{
	const struct sigv4_header *authz = sigv4_header_find(in, "authorization");
	bool presigned = sigv4_query_param(in, "X-Amz-Algorithm", q->algorithm,
					   sizeof(q->algorithm));
	struct sigv4_key *key;

	memset(claim, 0, sizeof(*claim));
	if (authz != NULL && presigned) {
		sigv4_fail(r, SIGV4_INCOMPLETE, "Only one auth mechanism allowed; only the "
			   "X-Amz-Algorithm query parameter or the Authorization header should be "
			   "specified");
		return NULL;
	}
	if (authz == NULL && !presigned) {
		sigv4_fail(r, SIGV4_MISSING, "Missing Authentication Token");
		return NULL;
	}
	if (presigned ? !sigv4_presign_claim(in, q, claim, r) :
			!sigv4_header_claim(in, authz, claim, r))
		return NULL;
	if (!sigv4_credential_parse(claim->auth.credential, cred, r))
		return NULL;
	sigv4_copy_field(r->access_key_id, sizeof(r->access_key_id), cred->key_id.p,
			 cred->key_id.n);
	key = sigv4_key_find(keys, cred->key_id);
	if (key == NULL)
		sigv4_fail(r, SIGV4_UNRECOGNIZED, "The security token included in the request is "
			   "invalid.");
	return key;
}

void
sigv4_verify(struct sigv4_keys *keys, const struct sigv4_input *in, struct sigv4_result *r)
{
	struct span names[SIGV4_SIGNED_HEADERS_MAX];
	struct sigv4_credential cred;
	struct sigv4_presign q;
	struct sigv4_claim claim;
	struct sigv4_key *key;
	char amz_date[17];
	char payload_hex[65];
	char canonical_hex[65];
	char to_sign[256];
	char signature[65];
	uint8_t mac[32];
	size_t count = 0;
	int n;

	memset(r, 0, sizeof(*r));
	key = sigv4_front(keys, in, &q, &claim, &cred, r);
	if (key == NULL || !sigv4_check_request(keys, in, &claim, &cred, amz_date, r))
		return;
	if (!sigv4_signed_headers_parse(claim.auth.signed_headers, names, &count, r) ||
	    !sigv4_check_signed_set(names, count, keys->target_signed, r) ||
	    !sigv4_payload_hash(in, payload_hex, r))
		return;
	sigv4_canonical_hash(in, names, count, &claim, payload_hex, canonical_hex);
	n = snprintf(to_sign, sizeof(to_sign), SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/"
		     SIGV4_TERMINATOR "\n%s", amz_date, amz_date, keys->region,
		     sigv4_service(keys, in), canonical_hex);
	assert(n > 0 && (size_t)n < sizeof(to_sign));
	sigv4_hmac_sha256(sigv4_signing_key(key, keys->region, sigv4_service(keys, in), cred.date),
			  32, to_sign, (size_t)n, mac);
	sigv4_hex_encode(mac, 32, signature);
	if (claim.auth.signature.n != 64 ||
	    CRYPTO_memcmp(signature, claim.auth.signature.p, 64) != 0) {
		sigv4_fail(r, SIGV4_INVALID, "The request signature we calculated does not "
			   "match the signature you provided. Check your AWS Secret Access Key "
			   "and signing method. Consult the service documentation for details.");
		return;
	}
	snprintf(r->principal_arn, sizeof(r->principal_arn), "%s", key->principal_arn);
	r->status = SIGV4_OK;
}

void
sigv4_presence(const struct sigv4_input *in, struct sigv4_result *r)
{
	const struct sigv4_header *authz = sigv4_header_find(in, "authorization");
	struct sigv4_credential cred;
	struct sigv4_result scratch;
	struct sigv4_presign q;
	struct span credential = { NULL, 0 };
	struct sigv4_auth a;

	memset(r, 0, sizeof(*r));
	if (authz != NULL) {
		sigv4_auth_parse(authz->value, authz->value_size, &a);
		credential = a.credential;
	} else if (sigv4_query_param(in, "X-Amz-Credential", q.credential,
				     sizeof(q.credential))) {
		credential = (struct span){ q.credential, strlen(q.credential) };  /* Presigned. */
	} else {
		sigv4_fail(r, SIGV4_MISSING, "Missing Authentication Token");
		return;
	}
	if (credential.n > 0 && sigv4_credential_parse(credential, &cred, &scratch))
		sigv4_copy_field(r->access_key_id, sizeof(r->access_key_id), cred.key_id.p,
				 cred.key_id.n);
}
