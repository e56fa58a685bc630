/*
 * etcd.c - the etcd v3 JSON-gateway client (etcd.h). One libcurl easy handle
 * per client, kept alive across calls; requests and answers through cJSON.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cluster/etcd.h"
#include "cluster/etcd_int.h"
#include "common/base64.h"
#include "common/diag.h"

struct etcd_client {
	struct etcd_endpoints ep;
	/* The endpoint calls go to (the one that answered last); atomic: etcd_current_endpoint() reads it. */
	_Atomic uint32_t current;
	uint32_t timeout_ms;
	CURL *curl;
	struct curl_slist *headers;
	char *answer;              /* The last answer, NUL-terminated. */
	size_t answer_size;
	size_t answer_cap;
	bool answer_too_big;
};

/* Every client's and watch's moves to another endpoint (etcd_failovers()). */
static _Atomic uint64_t etcd_failover_count;

/* gRPC status codes etcd puts in "code" (google.golang.org/grpc/codes). */
enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_NOT_FOUND = 5,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_OUT_OF_RANGE = 11,
};

int
etcd_curl_init_once(void)
{
	static int rc = -1;

	/* Called from etcd_open(); the cluster opens its clients from one thread at start. */
	if (rc < 0)
		rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
	return rc;
}

int
etcd_endpoints_parse(struct etcd_endpoints *ep, const char *endpoints)
{
	const char *p = endpoints;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t size = comma != NULL ? (size_t)(comma - p) : strlen(p);

		/* No quote, backslash or space: a URL is also a metrics label value. */
		if (size == 0 || size >= ETCD_URL_SIZE - 16 || ep->count == ETCD_ENDPOINTS_MAX ||
		    strncmp(p, "http://", 7) != 0 || strcspn(p, "\"\\ ") < size)
			return -EINVAL;
		memcpy(ep->urls[ep->count], p, size);
		ep->urls[ep->count][size] = '\0';
		ep->count++;
		p += size + (comma != NULL);
		if (comma != NULL && *p == '\0')
			return -EINVAL;
	}
	return ep->count > 0 ? 0 : -EINVAL;
}

int
etcd_open(const char *endpoints, uint32_t timeout_ms, struct etcd_client **client_out)
{
	struct etcd_client *c;
	int err = etcd_curl_init_once();

	if (err != 0)
		return err;
	if (endpoints == NULL || timeout_ms == 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	err = etcd_endpoints_parse(&c->ep, endpoints);
	if (err != 0)
		goto out_free;
	c->timeout_ms = timeout_ms;
	c->curl = curl_easy_init();
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->curl == NULL || c->headers == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	*client_out = c;
	return 0;

out_free:
	etcd_close(c);
	return err;
}

void
etcd_close(struct etcd_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->answer);
	free(c);
}

/* ---- Transport ----------------------------------------------------------- */

static size_t
etcd_write(char *data, size_t size, size_t count, void *arg)
{
	struct etcd_client *c = arg;
	size_t n = size * count;

	if (c->answer_size + n + 1 > ETCD_RESPONSE_SIZE_MAX) {
		c->answer_too_big = true;
		return 0;   /* libcurl then fails the transfer (CURLE_WRITE_ERROR). */
	}
	if (c->answer_size + n + 1 > c->answer_cap) {
		size_t cap = c->answer_cap == 0 ? 4096 : c->answer_cap;
		char *grown;

		while (cap < c->answer_size + n + 1)
			cap *= 2;
		grown = realloc(c->answer, cap);
		if (grown == NULL)
			return 0;
		c->answer = grown;
		c->answer_cap = cap;
	}
	memcpy(c->answer + c->answer_size, data, n);
	c->answer_size += n;
	c->answer[c->answer_size] = '\0';
	return n;
}

/*
 * A failed transfer's errno. -ECONNREFUSED only where the request certainly was not
 * sent (no connection, no address): another member may take it. Any other failure
 * (reset, closed before the answer, a send or receive error) may have come after the
 * member took the request: -ECONNRESET, not repeated (a put or txn may be applied).
 */
static int
etcd_curl_errno(CURLcode rc, const struct etcd_client *c)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_WRITE_ERROR:
		return c->answer_too_big ? -E2BIG : -ENOMEM;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -ECONNRESET;
	}
}

/* One POST to one endpoint; the answer in c->answer, its HTTP status in *status. */
static int
etcd_post_one(struct etcd_client *c, uint32_t endpoint, const char *path, const char *body,
	      uint32_t timeout_ms, long *status)
{
	char url[ETCD_URL_SIZE + 64];
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", c->ep.urls[endpoint], path);
	c->answer_size = 0;
	c->answer_too_big = false;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, etcd_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK)
		return etcd_curl_errno(rc, c);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* An error answer ({"error": "...", "code": N}) as an errno. */
static int
etcd_error_errno(const cJSON *answer)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(answer, "code");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(answer, "error");
	const char *text = cJSON_IsString(error) ? error->valuestring : "";

	if (strstr(text, "no leader") != NULL && strstr(text, "election") != NULL)
		return -ENOENT;
	if (strstr(text, "too large") != NULL)
		return -E2BIG;
	if (!cJSON_IsNumber(code))
		return -EIO;
	switch (code->valueint) {
	case GRPC_NOT_FOUND:
		return -ENOENT;
	case GRPC_OUT_OF_RANGE:
		return -ERANGE;
	case GRPC_RESOURCE_EXHAUSTED:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

/*
 * An answer from a member that has no leader (cut off from its quorum, or while
 * one is elected: etcd's ErrNoLeader, "etcdserver: no leader"): the request was
 * not proposed, so another member may take it. The election API's own "election:
 * no leader" (nobody campaigns) is an answer, not this.
 */
static bool
etcd_answer_no_leader(const struct etcd_client *c, long status)
{
	return (status < 200 || status > 299) && c->answer_size > 0 &&
	       strstr(c->answer, "etcdserver: no leader") != NULL;
}

void
etcd_failover_note(const char *from, const char *to, const char *why)
{
	atomic_fetch_add(&etcd_failover_count, 1);
	diag_warn("cluster", "etcd %s: %s: %s next", from, why, to);
}

uint64_t
etcd_failovers(void)
{
	return atomic_load(&etcd_failover_count);
}

const char *
etcd_current_endpoint(const struct etcd_client *c)
{
	return c->ep.urls[atomic_load(&c->current)];
}

/*
 * POSTs `request` (consumed) to `path` on the endpoints, from the one that
 * answered last. Where that one cannot be reached (nothing sent) or has no leader
 * (nothing proposed) the same request goes to the next, each endpoint at most once.
 * A call that times out moves the next call on without repeating this one (its time
 * is spent, and a stopped member accepts connections but never answers), unless it
 * `waits`: a campaign's timeout is its answer. A connection broken after the
 * request went (-ECONNRESET) moves the next call on too, this one not repeated: the
 * member may have applied it. *answer_out: the parsed answer (free it) of a 2xx
 * status.
 */
static int
etcd_call_as(struct etcd_client *c, const char *path, cJSON *request, uint32_t timeout_ms,
	     bool waits, cJSON **answer_out)
{
	char *body = cJSON_PrintUnformatted(request);
	int err = -ECONNREFUSED;
	long status = 0;
	cJSON *answer;

	cJSON_Delete(request);
	if (body == NULL)
		return -ENOMEM;
	for (uint32_t tries = 1;; tries++) {
		uint32_t at = atomic_load(&c->current);
		uint32_t next = (at + 1) % c->ep.count;
		bool elsewhere;

		err = etcd_post_one(c, at, path, body, timeout_ms, &status);
		elsewhere = err == -ECONNREFUSED || (err == 0 && etcd_answer_no_leader(c, status)) ||
			    (err == -ETIMEDOUT && !waits) || err == -ECONNRESET;
		if (!elsewhere || c->ep.count == 1)
			break;
		atomic_store(&c->current, next);
		etcd_failover_note(c->ep.urls[at], c->ep.urls[next],
				   err == 0 ? "no leader" : strerror(-err));
		if (err == -ETIMEDOUT || err == -ECONNRESET || tries == c->ep.count)
			break;
	}
	free(body);
	if (err != 0)
		return err;
	answer = cJSON_Parse(c->answer_size > 0 ? c->answer : "");
	if (answer == NULL)
		return -EPROTO;
	if (status < 200 || status > 299 || cJSON_GetObjectItemCaseSensitive(answer, "error")) {
		err = etcd_error_errno(answer);
		cJSON_Delete(answer);
		return err;
	}
	*answer_out = answer;
	return 0;
}

/* A call bounded by timeout_ms (etcd_call_as). */
static int
etcd_call(struct etcd_client *c, const char *path, cJSON *request, uint32_t timeout_ms,
	  cJSON **answer_out)
{
	return etcd_call_as(c, path, request, timeout_ms, false, answer_out);
}

/* `request` when every add to it succeeded (`ok`), else NULL: etcd_call() then answers -ENOMEM. */
static cJSON *
etcd_built(cJSON *request, bool ok)
{
	if (ok)
		return request;
	cJSON_Delete(request);
	return NULL;
}

/* A call whose answer says no more than that it succeeded. */
static int
etcd_call_void(struct etcd_client *c, const char *path, cJSON *request)
{
	cJSON *answer;
	int err = etcd_call(c, path, request, c->timeout_ms, &answer);

	if (err == 0)
		cJSON_Delete(answer);
	return err;
}

/* ---- Encoding ------------------------------------------------------------ */

/* Adds `name`: base64 of size bytes. False when out of memory. */
bool
etcd_add_bytes(cJSON *obj, const char *name, const void *data, size_t size)
{
	char *text = malloc(base64_encoded_size(size) + 1);
	bool ok;

	if (text == NULL)
		return false;
	text[base64_encode(data, size, text)] = '\0';
	ok = cJSON_AddStringToObject(obj, name, text) != NULL;
	free(text);
	return ok;
}

/* int64s travel as strings: a double would round them (cluster.md §1.2). */
bool
etcd_add_int64(cJSON *obj, const char *name, int64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%lld", (long long)value);
	return cJSON_AddStringToObject(obj, name, text) != NULL;
}

/* Reads int64 `name` (absent: 0, proto3 omits defaults). False when it is not a number. */
bool
etcd_get_int64(const cJSON *obj, const char *name, int64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	char *end;

	*out = 0;
	if (item == NULL)
		return true;
	if (!cJSON_IsString(item))
		return false;
	errno = 0;
	*out = strtoll(item->valuestring, &end, 10);
	return errno == 0 && *end == '\0' && end != item->valuestring;
}

/* Decodes base64 `name` into a NUL-terminated malloc'd copy; absent: empty. */
static int
etcd_get_bytes(const cJSON *obj, const char *name, uint8_t **out, size_t *size_out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	size_t len = cJSON_IsString(item) ? strlen(item->valuestring) : 0;
	uint8_t *bytes = malloc(len / 4 * 3 + 1);
	int64_t n = 0;

	if (bytes == NULL)
		return -ENOMEM;
	if (len > 0)
		n = base64_decode(item->valuestring, len, bytes, len / 4 * 3);
	if (n < 0 || (item != NULL && !cJSON_IsString(item))) {
		free(bytes);
		return -EPROTO;
	}
	bytes[n] = '\0';
	*out = bytes;
	*size_out = (size_t)n;
	return 0;
}

/* key, and range_end = the key with its last byte + 1 for a prefix (all keys for ""). */
bool
etcd_add_key_range(cJSON *obj, const char *key, bool prefix)
{
	size_t size = strlen(key);
	char end[ETCD_URL_SIZE * 4];

	if (!etcd_add_bytes(obj, "key", size == 0 && prefix ? "\0" : key, size == 0 && prefix ? 1 : size))
		return false;
	if (!prefix)
		return true;
	if (size == 0 || size > sizeof(end))
		return size == 0 ? etcd_add_bytes(obj, "range_end", "\0", 1) : false;
	memcpy(end, key, size);
	while (size > 0 && (uint8_t)end[size - 1] == 0xff)
		size--;         /* A 0xff last byte carries into the one before it. */
	if (size == 0)
		return etcd_add_bytes(obj, "range_end", "\0", 1);
	end[size - 1] = (char)((uint8_t)end[size - 1] + 1);
	return etcd_add_bytes(obj, "range_end", end, size);
}

static int
etcd_header_revision(const cJSON *answer, int64_t *revision_out)
{
	int64_t revision;

	if (!etcd_get_int64(cJSON_GetObjectItemCaseSensitive(answer, "header"), "revision",
			    &revision))
		return -EPROTO;
	if (revision_out != NULL)
		*revision_out = revision;
	return 0;
}

/* ---- KV ------------------------------------------------------------------ */

int
etcd_put(struct etcd_client *c, const char *key, const void *value, size_t value_size,
	 int64_t lease, int64_t *revision_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int err;

	request = etcd_built(request, request != NULL &&
			     etcd_add_bytes(request, "key", key, strlen(key)) &&
			     etcd_add_bytes(request, "value", value, value_size) &&
			     (lease == 0 || etcd_add_int64(request, "lease", lease)));
	err = etcd_call(c, "/v3/kv/put", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	err = etcd_header_revision(answer, revision_out);
	cJSON_Delete(answer);
	return err;
}

int
etcd_kv_read(const cJSON *item, struct etcd_kv *kv)
{
	uint8_t *key;
	int err = etcd_get_bytes(item, "key", &key, &kv->key_size);

	if (err != 0)
		return err;
	kv->key = (char *)key;
	err = etcd_get_bytes(item, "value", &kv->value, &kv->value_size);
	if (err != 0)
		return err;
	if (!etcd_get_int64(item, "create_revision", &kv->create_revision) ||
	    !etcd_get_int64(item, "mod_revision", &kv->mod_revision) ||
	    !etcd_get_int64(item, "version", &kv->version) ||
	    !etcd_get_int64(item, "lease", &kv->lease))
		return -EPROTO;
	return 0;
}

void
etcd_range_free(struct etcd_range *range)
{
	for (uint32_t i = 0; i < range->count; i++) {
		free(range->kvs[i].key);
		free(range->kvs[i].value);
	}
	free(range->kvs);
	memset(range, 0, sizeof(*range));
}

static int
etcd_range_read(const cJSON *answer, struct etcd_range *range)
{
	const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(answer, "kvs");
	const cJSON *more = cJSON_GetObjectItemCaseSensitive(answer, "more");
	const cJSON *item;
	int n = cJSON_IsArray(kvs) ? cJSON_GetArraySize(kvs) : 0;
	int err = etcd_header_revision(answer, &range->revision);

	if (err != 0)
		return err;
	range->more = cJSON_IsTrue(more);
	range->kvs = calloc((size_t)n + 1, sizeof(*range->kvs));
	if (range->kvs == NULL)
		return -ENOMEM;
	cJSON_ArrayForEach(item, kvs) {
		err = etcd_kv_read(item, &range->kvs[range->count]);
		range->count++;   /* Counted even when partly read: etcd_range_free frees it. */
		if (err != 0)
			return err;
	}
	return 0;
}

int
etcd_get(struct etcd_client *c, const char *key, bool prefix, uint32_t limit,
	 struct etcd_range *range_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int err;

	memset(range_out, 0, sizeof(*range_out));
	request = etcd_built(request, request != NULL && etcd_add_key_range(request, key, prefix) &&
			     (limit == 0 || etcd_add_int64(request, "limit", limit)));
	err = etcd_call(c, "/v3/kv/range", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	err = etcd_range_read(answer, range_out);
	cJSON_Delete(answer);
	if (err != 0)
		etcd_range_free(range_out);
	return err;
}

int
etcd_delete(struct etcd_client *c, const char *key, bool prefix, int64_t *deleted_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int64_t deleted;
	int err;

	request = etcd_built(request, request != NULL && etcd_add_key_range(request, key, prefix));
	err = etcd_call(c, "/v3/kv/deleterange", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	err = etcd_get_int64(answer, "deleted", &deleted) ? 0 : -EPROTO;
	cJSON_Delete(answer);
	if (err == 0 && deleted_out != NULL)
		*deleted_out = deleted;
	return err;
}

/* ---- Transactions -------------------------------------------------------- */

/* The gateway's enum names, indexed by enum etcd_target / etcd_result. */
static const char *const etcd_target_names[] = { "VERSION", "CREATE", "MOD", "VALUE" };
static const char *const etcd_result_names[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
/* The field each target compares, indexed by enum etcd_target. */
static const char *const etcd_target_fields[] = {
	"version", "create_revision", "mod_revision", "value",
};

static cJSON *
etcd_compare_json(const struct etcd_compare *cmp)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && etcd_add_key_range(o, cmp->key, cmp->prefix) &&
		  cJSON_AddStringToObject(o, "target", etcd_target_names[cmp->target]) != NULL &&
		  cJSON_AddStringToObject(o, "result", etcd_result_names[cmp->result]) != NULL;

	if (ok && cmp->target == ETCD_TARGET_VALUE)
		ok = etcd_add_bytes(o, "value", cmp->value, cmp->value_size);
	else if (ok)
		ok = etcd_add_int64(o, etcd_target_fields[cmp->target], cmp->number);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *
etcd_op_json(const struct etcd_op *op)
{
	static const char *const names[] = { "request_put", "request_delete_range",
					     "request_range" };
	cJSON *o = cJSON_CreateObject();
	cJSON *inner = cJSON_CreateObject();
	bool ok = o != NULL && inner != NULL &&
		  etcd_add_key_range(inner, op->key, op->kind == ETCD_OP_DELETE && op->prefix);

	if (ok && op->kind == ETCD_OP_PUT)
		ok = etcd_add_bytes(inner, "value", op->value, op->value_size) &&
		     (op->lease == 0 || etcd_add_int64(inner, "lease", op->lease));
	if (!ok || !cJSON_AddItemToObject(o, names[op->kind], inner)) {
		cJSON_Delete(inner);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool
etcd_add_ops(cJSON *request, const char *name, const struct etcd_op *ops, uint32_t count)
{
	cJSON *array = cJSON_AddArrayToObject(request, name);

	for (uint32_t i = 0; array != NULL && i < count; i++) {
		cJSON *op = etcd_op_json(&ops[i]);

		if (op == NULL)
			return false;
		cJSON_AddItemToArray(array, op);
	}
	return array != NULL;
}

int
etcd_txn(struct etcd_client *c, const struct etcd_compare *compares, uint32_t compare_count,
	 const struct etcd_op *success, uint32_t success_count, const struct etcd_op *failure,
	 uint32_t failure_count, bool *succeeded_out, int64_t *revision_out)
{
	cJSON *request;
	cJSON *array;
	cJSON *answer;
	int err;

	if (compare_count > ETCD_TXN_OPS_MAX || success_count > ETCD_TXN_OPS_MAX ||
	    failure_count > ETCD_TXN_OPS_MAX)
		return -EINVAL;
	request = cJSON_CreateObject();
	array = request != NULL ? cJSON_AddArrayToObject(request, "compare") : NULL;
	for (uint32_t i = 0; array != NULL && i < compare_count; i++) {
		cJSON *cmp = etcd_compare_json(&compares[i]);

		if (cmp == NULL)
			array = NULL;
		else
			cJSON_AddItemToArray(array, cmp);
	}
	if (array == NULL || !etcd_add_ops(request, "success", success, success_count) ||
	    !etcd_add_ops(request, "failure", failure, failure_count)) {
		cJSON_Delete(request);
		return -ENOMEM;
	}
	err = etcd_call(c, "/v3/kv/txn", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	/* A failed txn has no "succeeded" at all (proto3 omits false). */
	*succeeded_out = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "succeeded"));
	err = etcd_header_revision(answer, revision_out);
	cJSON_Delete(answer);
	return err;
}

/* ---- Leases -------------------------------------------------------------- */

int
etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t *id_out, int64_t *ttl_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int err;

	if (ttl_s <= 0) {
		cJSON_Delete(request);
		return -EINVAL;
	}
	request = etcd_built(request, request != NULL && etcd_add_int64(request, "TTL", ttl_s));
	err = etcd_call(c, "/v3/lease/grant", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	if (!etcd_get_int64(answer, "ID", id_out) || !etcd_get_int64(answer, "TTL", ttl_out) ||
	    *id_out == 0)
		err = -EPROTO;
	cJSON_Delete(answer);
	return err;
}

int
etcd_lease_keepalive(struct etcd_client *c, int64_t id, int64_t *ttl_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int err;

	request = etcd_built(request, request != NULL && etcd_add_int64(request, "ID", id));
	err = etcd_call(c, "/v3/lease/keepalive", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	/* A stream of one answer: {"result": {...}}; an expired lease's has no TTL. */
	if (!etcd_get_int64(cJSON_GetObjectItemCaseSensitive(answer, "result"), "TTL", ttl_out))
		err = -EPROTO;
	else if (*ttl_out <= 0)
		err = -ENOENT;
	cJSON_Delete(answer);
	return err;
}

int
etcd_lease_revoke(struct etcd_client *c, int64_t id)
{
	cJSON *request = cJSON_CreateObject();

	request = etcd_built(request, request != NULL && etcd_add_int64(request, "ID", id));
	return etcd_call_void(c, "/v3/lease/revoke", request);
}

/* ---- Elections ----------------------------------------------------------- */

static int
etcd_leader_read(const cJSON *leader, struct etcd_leader *out)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(leader, "name");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(leader, "key");
	int64_t n;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsString(name) || !cJSON_IsString(key))
		return -EPROTO;
	n = base64_decode(name->valuestring, strlen(name->valuestring), (uint8_t *)out->name,
			  sizeof(out->name) - 1);
	if (n < 0)
		return -EPROTO;
	n = base64_decode(key->valuestring, strlen(key->valuestring), (uint8_t *)out->key,
			  sizeof(out->key) - 1);
	if (n < 0)
		return -EPROTO;
	if (!etcd_get_int64(leader, "rev", &out->rev) || !etcd_get_int64(leader, "lease", &out->lease))
		return -EPROTO;
	return 0;
}

int
etcd_campaign(struct etcd_client *c, const char *name, int64_t lease, const void *value,
	      size_t value_size, uint32_t wait_ms, struct etcd_leader *leader_out)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *answer;
	int err;

	if (value_size > sizeof(leader_out->value) || strlen(name) >= sizeof(leader_out->name)) {
		cJSON_Delete(request);
		return -EINVAL;
	}
	request = etcd_built(request, request != NULL &&
			     etcd_add_bytes(request, "name", name, strlen(name)) &&
			     etcd_add_int64(request, "lease", lease) &&
			     etcd_add_bytes(request, "value", value, value_size));
	err = etcd_call_as(c, "/v3/election/campaign", request, wait_ms, true, &answer);
	if (err != 0)
		return err;
	err = etcd_leader_read(cJSON_GetObjectItemCaseSensitive(answer, "leader"), leader_out);
	cJSON_Delete(answer);
	if (err == 0) {
		memcpy(leader_out->value, value, value_size);
		leader_out->value_size = value_size;
	}
	return err;
}

int
etcd_leader(struct etcd_client *c, const char *name, struct etcd_leader *leader_out)
{
	cJSON *request = cJSON_CreateObject();
	const cJSON *kv;
	cJSON *answer;
	uint8_t *value = NULL;
	size_t value_size = 0;
	int err;

	request = etcd_built(request, request != NULL &&
			     etcd_add_bytes(request, "name", name, strlen(name)));
	err = etcd_call(c, "/v3/election/leader", request, c->timeout_ms, &answer);
	if (err != 0)
		return err;
	/* The leader's candidate key as a kv: its create_revision is the epoch. */
	kv = cJSON_GetObjectItemCaseSensitive(answer, "kv");
	memset(leader_out, 0, sizeof(*leader_out));
	snprintf(leader_out->name, sizeof(leader_out->name), "%s", name);
	err = kv == NULL ? -ENOENT : etcd_get_bytes(kv, "value", &value, &value_size);
	if (err == 0 && (!etcd_get_int64(kv, "create_revision", &leader_out->rev) ||
			 !etcd_get_int64(kv, "lease", &leader_out->lease) ||
			 value_size > sizeof(leader_out->value)))
		err = -EPROTO;
	if (err == 0) {
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(kv, "key");
		int64_t n = cJSON_IsString(key) ?
			    base64_decode(key->valuestring, strlen(key->valuestring),
					  (uint8_t *)leader_out->key, sizeof(leader_out->key) - 1) : -1;

		if (n < 0)
			err = -EPROTO;
		memcpy(leader_out->value, value, value_size);
		leader_out->value_size = value_size;
	}
	free(value);
	cJSON_Delete(answer);
	return err;
}

int
etcd_resign(struct etcd_client *c, const struct etcd_leader *leader)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *l = cJSON_CreateObject();

	if (request == NULL || l == NULL ||
	    !etcd_add_bytes(l, "name", leader->name, strlen(leader->name)) ||
	    !etcd_add_bytes(l, "key", leader->key, strlen(leader->key)) ||
	    !etcd_add_int64(l, "rev", leader->rev) || !etcd_add_int64(l, "lease", leader->lease) ||
	    !cJSON_AddItemToObject(request, "leader", l)) {
		cJSON_Delete(l);
		cJSON_Delete(request);
		return -ENOMEM;
	}
	return etcd_call_void(c, "/v3/election/resign", request);
}

int
etcd_compact(struct etcd_client *c, int64_t revision)
{
	cJSON *request = cJSON_CreateObject();

	request = etcd_built(request, request != NULL &&
			     etcd_add_int64(request, "revision", revision) &&
			     cJSON_AddTrueToObject(request, "physical") != NULL);
	return etcd_call_void(c, "/v3/kv/compaction", request);
}
