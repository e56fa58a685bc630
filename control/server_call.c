/*
 * server_call.c - one request in flight: its buffers, the checks the server
 * makes before an action sees it (in AWS's order, as kinesalite reproduces
 * it), authentication, dispatch, and the api_call_* replies of api.h.
 *
 * Pre-dispatch answers, first match wins:
 *
 *   CONDITION                                   STATUS  BODY
 *   HTTP/2 body over request_body_size_max      413     SerializationException
 *   HTTP/2 header block over the head limits    431     SerializationException
 *   no pool buffer for the request (HTTP/2)     503     ServiceUnavailable
 *   OPTIONS with Origin (CORS preflight)        200     empty
 *   method is not POST                          403     XML AccessDeniedException
 *   path is not "/" (a query may follow)        404     XML UnknownOperationException
 *   empty body, x-amz-json-1.1                  400     JSON SerializationException if the
 *                                                       target is valid, else UnknownOperation
 *   empty body, any other type                  400     the same in CBOR
 *   x-amz-cbor-1.1, unknown service or action   400     CBOR UnknownOperationException
 *   x-amz-cbor-1.1, body not CBOR of one map    400     CBOR SerializationException
 *   x-amz-cbor-1.1, its JSON over the cap       413     CBOR SerializationException (503
 *                                                       ServiceUnavailable: no buffer now)
 *   other type, target incomplete               403     XML AccessDeniedException
 *   other type                                  404     XML UnknownOperationException
 *   application/json, body not JSON             400     Coral SerializationException
 *   application/json                            404     Coral UnknownOperationException
 *   unknown service or action                   400     UnknownOperationException
 *     (services: Kinesis_20131202 and Firehose_20150804, each with its operations)
 *   authentication fails, body not JSON         400     SerializationException (AWS parses first)
 *   authentication fails ([auth] mode)          400     the SigV4 exception
 *
 * A CBOR request goes on as JSON (server_cbor.h), and whatever is answered to it in
 * JSON, success or error, leaves in CBOR: the answer's type mirrors the request's.
 * (HTTP/1.1 framing limits are answered before a request exists: server_http1.c.)
 * With an Origin header every answer also carries Access-Control-Allow-Origin
 * and -Expose-Headers; a preflight echoes the requested headers and method.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/diag.h"
#include "control/forward.h"
#include "control/metrics.h"
#include "control/server_cbor.h"
#include "control/server_internal.h"

#define JSON_1_1 "application/x-amz-json-1.1"
#define JSON_LEGACY "application/json"
#define CBOR_1_1 "application/x-amz-cbor-1.1"
#define XML_TYPE "text/xml"
#define TARGET_PREFIX "Kinesis_20131202."

/* Every operation of the Kinesis 2013-12-02 model (botocore 1.43.11). */
static const char *const kinesis_operations[] = {
	"AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod",
	"DeleteResourcePolicy", "DeleteStream", "DeregisterStreamConsumer",
	"DescribeAccountSettings", "DescribeLimits", "DescribeStream",
	"DescribeStreamConsumer", "DescribeStreamSummary", "DisableEnhancedMonitoring",
	"EnableEnhancedMonitoring", "GetRecords", "GetResourcePolicy", "GetShardIterator",
	"IncreaseStreamRetentionPeriod", "ListShards", "ListStreamConsumers", "ListStreams",
	"ListTagsForResource", "ListTagsForStream", "MergeShards", "PutRecord", "PutRecords",
	"PutResourcePolicy", "RegisterStreamConsumer", "RemoveTagsFromStream", "SplitShard",
	"StartStreamEncryption", "StopStreamEncryption", "SubscribeToShard", "TagResource",
	"UntagResource", "UpdateAccountSettings", "UpdateMaxRecordSize", "UpdateShardCount",
	"UpdateStreamMode", "UpdateStreamWarmThroughput",
};

/* Every operation of the Firehose 2015-08-04 model (botocore 1.29 and 1.43 list the same). */
static const char *const firehose_operations[] = {
	"CreateDeliveryStream", "DeleteDeliveryStream", "DescribeDeliveryStream",
	"ListDeliveryStreams", "ListTagsForDeliveryStream", "PutRecord", "PutRecordBatch",
	"StartDeliveryStreamEncryption", "StopDeliveryStreamEncryption", "TagDeliveryStream",
	"UntagDeliveryStream", "UpdateDestination",
};

static uint64_t
server_rng_next(struct api_server *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A version-4 (random) UUID: unique enough for request ids, not a secret. */
static void
server_request_id(struct api_server *s, char out[SERVER_REQUEST_ID_SIZE])
{
	uint64_t hi = server_rng_next(s);
	uint64_t lo = server_rng_next(s);

	hi = (hi & ~0xf000ull) | 0x4000ull;
	lo = (lo & ~(3ull << 62)) | (2ull << 62);
	snprintf(out, SERVER_REQUEST_ID_SIZE, "%08x-%04x-%04x-%04x-%012llx",
		 (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff,
		 (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffull));
}

void
server_date_update(struct api_server *s, uint64_t real_ns)
{
	time_t now = (time_t)(real_ns / 1000000000u);
	struct tm tm;

	if ((int64_t)now == s->date_s)
		return;
	s->date_s = (int64_t)now;
	gmtime_r(&now, &tm);
	strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

struct api_call *
server_call_alloc(struct api_server *s, struct server_conn *c)
{
	struct api_call *call = s->call_free;

	if (call == NULL)
		return NULL;
	s->call_free = call->next;
	s->calls_used++;
	memset(call, 0, offsetof(struct api_call, head));
	call->server = s;
	call->conn = c;
	call->keep_alive = true;
	call->late = s->draining;
	call->content_type = JSON_1_1;
	call->started_ns = s->now_ns;
	call->metrics_op = METRICS_API_OPS_MAX; /* "Other" until the target is known. */
	api_out_init(&call->out, SERVER_OUT_SIZE_MAX);
	api_out_init(&call->cbor_json, SERVER_CBOR_JSON_SIZE_MAX);
	server_request_id(s, call->request_id);
	call->head_size = 0;
	/* The stream fields follow `head` (not cleared above); server_call_free forgot it. */
	assert(!call->stream_due);
	call->stream_fn = NULL;
	call->stream_ctx = NULL;
	call->stream_blocked = false;
	call->stream_ended = false;
	call->stream_gone = false;
	/* Append to the connection's list. */
	call->prev = c->calls_tail;
	call->next = NULL;
	if (c->calls_tail != NULL)
		c->calls_tail->next = call;
	else
		c->calls_head = call;
	c->calls_tail = call;
	c->calls_count++;
	server_call_state_set(call, CALL_READING);
	return call;
}

void
server_call_state_set(struct api_call *call, enum call_state state)
{
	struct server_conn *c = call->conn;

	if (c != NULL && call->state == CALL_READING) {
		if (c->calls_reading-- > SERVER_H2_READING_MAX)
			call->server->calls_borrowed--;
	}
	if (c != NULL && state == CALL_READING) {
		if (++c->calls_reading > SERVER_H2_READING_MAX)
			call->server->calls_borrowed++;
	}
	call->state = state;
}

/* Takes `call` off its connection's list (it stays valid). */
static void
server_call_unlink(struct api_call *call)
{
	struct server_conn *c = call->conn;

	if (c == NULL)
		return;
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->calls_head = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	else
		c->calls_tail = call->prev;
	assert(c->calls_count > 0);
	c->calls_count--;
	if (c->reading == call)
		c->reading = NULL;
	call->prev = NULL;
	call->next = NULL;
	call->conn = NULL;
	/* A freed call may let a paused connection read again. */
	server_conn_dirty(c);
}

void
server_call_detach(struct api_call *call)
{
	assert(call->state == CALL_DISPATCHED || call->state == CALL_STREAMING);
	server_call_unlink(call);
}

void
server_call_free(struct api_call *call)
{
	struct api_server *s = call->server;

	assert(call->state != CALL_FREE);
	server_call_state_set(call, CALL_FREE);  /* While it still knows its connection. */
	server_stream_forget(call);
	server_call_unlink(call);
	api_out_release(&call->out);
	api_out_release(&call->cbor_json);
	if (call->req != NULL)
		buf_pool_put(&s->pool, call->req, call->req_capacity);
	call->req = NULL;
	call->state = CALL_FREE;
	call->next = s->call_free;
	s->call_free = call;
	assert(s->calls_used > 0);
	s->calls_used--;
}

int
server_call_req_reserve(struct api_call *call, size_t size)
{
	struct api_server *s = call->server;
	size_t need = call->req_used + size;

	if (need > call->req_capacity) {
		size_t capacity;
		char *bigger;

		if (need > UINT32_MAX)
			return -ENOBUFS;
		/*
		 * The body is reserved before it arrives and before it is authenticated: a
		 * connection with no request accepted yet may take only half of each class,
		 * so peers that trickle large bodies cannot pin every buffer (issue 14, #3).
		 */
		bigger = buf_pool_get_share(&s->pool, need,
					    call->conn != NULL && !call->conn->proven, &capacity);
		if (bigger == NULL)
			return -ENOBUFS;
		if (call->req != NULL) {
			memcpy(bigger, call->req, call->req_used);
			buf_pool_put(&s->pool, call->req, call->req_capacity);
		}
		call->req = bigger;
		call->req_capacity = capacity;
	}
	return 0;
}

int
server_call_req_append(struct api_call *call, const void *data, size_t size,
		       struct call_span *span_out)
{
	size_t need = call->req_used + size;

	if (server_call_req_reserve(call, size) != 0)
		return -ENOBUFS;
	if (size > 0)
		memcpy(call->req + call->req_used, data, size);
	if (span_out != NULL)
		*span_out = (struct call_span){ (uint32_t)call->req_used, (uint32_t)size };
	call->req_used = need;
	return 0;
}

bool
server_call_header(const struct api_call *call, const char *lower, const char **value,
		   size_t *size)
{
	for (uint32_t i = 0; i < call->header_count; i++) {
		if (!http1_name_is(call->req + call->names[i].off, call->names[i].size, lower))
			continue;
		*value = call->req + call->values[i].off;
		*size = call->values[i].size;
		return true;
	}
	return false;
}

static size_t server_cbor_error_body(uint8_t *body, size_t body_size, const char *type,
				     const char *message);

/*
 * The JSON answer to a CBOR request, in CBOR; returns the status to send. When the
 * translation cannot be made (no buffer), a short CBOR error replaces the answer.
 */
static int
server_call_cbor_answer(struct api_call *call, int status)
{
	struct api_out cbor;
	uint8_t body[128];
	bool busy;
	int err;

	call->content_type = CBOR_1_1;
	if (call->out.size == 0)
		return status;
	api_out_init(&cbor, SERVER_OUT_SIZE_MAX);
	err = server_cbor_answer_from_json(call->out.data, call->out.size, &cbor);
	if (err == 0) {
		api_out_release(&call->out);
		call->out = cbor;
		return status;
	}
	busy = buf_pool_exhausted(&call->server->pool);
	api_out_release(&cbor);
	api_out_release(&call->out);
	diag_warn("server", "CBOR answer for request %s not made (%d): %s", call->request_id,
		  err, busy ? "ServiceUnavailable" : "InternalFailure");
	snprintf(call->error_type, sizeof(call->error_type), "%s",
		 busy ? "ServiceUnavailable" : "InternalFailure");
	api_out_append(&call->out, body, server_cbor_error_body(body, sizeof(body),
								call->error_type, NULL));
	return busy ? 503 : 500;
}

/* x-amz-id-2 of an answer: random bytes, base64 (no preflight gets one, as on AWS). */
static void
server_call_id2(struct api_call *call)
{
	uint8_t bytes[SERVER_ID2_BYTES];
	size_t n;

	static_assert(SERVER_ID2_BYTES % 24 == 0, "whole random words, no base64 padding");
	call->id2[0] = '\0';
	if (call->cors_preflight)
		return;
	for (size_t i = 0; i < sizeof(bytes); i += 8) {
		uint64_t v = server_rng_next(call->server);

		memcpy(bytes + i, &v, 8);
	}
	n = base64_encode(bytes, sizeof(bytes), call->id2);
	call->id2[n] = '\0';
}

/* Hands a finished response to the connection's protocol; frees it if the client left. */
static void
server_call_finish(struct api_call *call, int status)
{
	struct server_conn *c = call->conn;

	assert(call->state == CALL_DISPATCHED || call->state == CALL_READING);
	if (call->cbor && strcmp(call->content_type, JSON_1_1) == 0)
		status = server_call_cbor_answer(call, status);
	server_call_state_set(call, CALL_REPLIED);
	call->status = status;
	server_call_id2(call);
	metrics_api_reply(call->metrics_op, status, call->error_type,
			  call->server->now_ns - call->started_ns);
	server_access_log(call);
	if (c == NULL) {
		call->server->stats.replies_dropped++;
		server_call_free(call);
		return;
	}
	if (c->state == CONN_H2)
		h2_call_replied(call);
	else
		http1_call_replied(call);
}

/* A response with a body the server wrote itself (XML, CBOR, Coral JSON). */
static void
server_call_respond_raw(struct api_call *call, int status, const char *content_type,
			const char *error_type, const void *body, size_t size)
{
	api_out_reset(&call->out);
	api_out_append(&call->out, body, size);
	call->content_type = content_type;
	snprintf(call->error_type, sizeof(call->error_type), "%s", error_type);
	server_call_finish(call, status);
}

/* {"__type": type[, "message": text]}; SerializationException spells it "Message" (AWS). */
static void
server_call_json_error(struct api_call *call, int status, const char *type, const char *text,
		       size_t text_size)
{
	struct api_out *out = &call->out;

	api_out_reset(out);
	api_out_append(out, "{\"__type\":", 10);
	api_out_json_string(out, type, strlen(type));
	if (text_size > 0) {
		if (strcmp(type, "SerializationException") == 0)
			api_out_append(out, ",\"Message\":", 11);
		else
			api_out_append(out, ",\"message\":", 11);
		api_out_json_string(out, text, text_size);
	}
	api_out_append(out, "}", 1);
	snprintf(call->error_type, sizeof(call->error_type), "%s", type);
	server_call_finish(call, status);
}

struct api_out *
api_call_out(struct api_call *call)
{
	assert(call->state == CALL_DISPATCHED);
	return &call->out;
}

void
api_call_reply(struct api_call *call, int http_status)
{
	assert(call->state == CALL_DISPATCHED);
	assert(http_status >= 200 && http_status <= 599);
	/* Error answers come from api_call_error(): the body is never read back for its type. */
	assert(http_status < 400 || call->error_type[0] != '\0');
	if (call->out.overflow) {
		/* Under the cap but no larger buffer free: busy, not too large. */
		bool busy = call->out.capacity < buf_pool_size_max(&call->server->pool) &&
			    buf_pool_exhausted(&call->server->pool);

		api_out_release(&call->out);  /* Its buffer may be what the error body needs. */
		if (busy) {
			/* Every large buffer is busy: a retry will find one (SDKs retry 503). */
			server_call_json_error(call, 503, "ServiceUnavailable", "Server busy: retry",
					       18);
			return;
		}
		diag_warn("server", "response over %zu bytes for request %s: InternalFailure",
			  call->out.capacity_max, call->request_id);
		server_call_json_error(call, 500, "InternalFailure", "", 0);
		return;
	}
	server_call_finish(call, http_status);
}

void
api_call_error(struct api_call *call, int http_status, const char *type, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	int n;

	assert(call->state == CALL_DISPATCHED);
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(text))
		n = (int)sizeof(text) - 1;
	server_call_json_error(call, http_status, type, text, (size_t)n);
}

void
server_call_refuse(struct api_call *call, int status, const char *type, const char *message)
{
	server_call_state_set(call, CALL_DISPATCHED);
	if (type == NULL) {
		/* An empty answer (the CORS preflight): AWS sends no Content-Type. */
		server_call_respond_raw(call, status, NULL, "", "", 0);
		return;
	}
	server_call_json_error(call, status, type, message, strlen(message));
}

/*
 * A request begun after api_server_drain(): refused before any work, as a 503 the SDKs
 * retry; on HTTP/1.1 the connection closes after it (h2 has had its GOAWAY).
 */
static void
server_call_refuse_stopping(struct api_call *call)
{
	struct server_conn *c = call->conn;

	call->server->stats.requests_refused_stopping++;
	if (c != NULL && c->state == CONN_HTTP1) {
		call->keep_alive = false;
		c->closing = true;  /* Nothing after this request is read. */
	}
	server_call_refuse(call, 503, "ServiceUnavailable",
			   "The server is stopping: retry on another connection");
}

/*
 * AWS's XML answers for requests it cannot route (see the table above); `typed`:
 * with Content-Type text/xml (AWS sends none when the method is not POST).
 */
static void
server_call_xml(struct api_call *call, int status, const char *type, const char *message,
		bool typed)
{
	char body[256];
	int n;

	if (message == NULL)
		n = snprintf(body, sizeof(body), "<%s/>\n", type);
	else
		n = snprintf(body, sizeof(body), "<%s>\n  <Message>%s</Message>\n</%s>\n", type,
			     message, type);
	assert(n > 0 && (size_t)n < sizeof(body));
	server_call_state_set(call, CALL_DISPATCHED);
	server_call_respond_raw(call, status, typed ? XML_TYPE : NULL, type, body, (size_t)n);
}

/* A CBOR map {"__type": type[, "message": text]} in `body`; returns its size. */
static size_t
server_cbor_error_body(uint8_t *body, size_t body_size, const char *type, const char *message)
{
	size_t n = 0;
	const char *items[4] = { "__type", type, "message", message };

	body[n++] = 0xbf;  /* Map of indefinite length. */
	for (int i = 0; i < (message != NULL ? 4 : 2); i++) {
		size_t len = strlen(items[i]);

		assert(len < 256 && n + len + 3 < body_size);
		if (len < 24) {
			body[n++] = (uint8_t)(0x60 + len);
		} else {
			body[n++] = 0x78;
			body[n++] = (uint8_t)len;
		}
		memcpy(body + n, items[i], len);
		n += len;
	}
	body[n++] = 0xff;
	return n;
}

/* The server's own CBOR error answer to a request it does not dispatch. */
static void
server_call_cbor(struct api_call *call, int status, const char *type, const char *message)
{
	uint8_t body[512];
	size_t n = server_cbor_error_body(body, sizeof(body), type, message);

	server_call_state_set(call, CALL_DISPATCHED);
	server_call_respond_raw(call, status, CBOR_1_1, type, body, n);
}

static bool
span_is(const char *p, size_t n, const char *text)
{
	return n == strlen(text) && memcmp(p, text, n) == 0;
}

/* The media type of Content-Type: parameters after ';' dropped, spaces trimmed. */
static void
server_media_type(const struct api_call *call, const char **type, size_t *size)
{
	const char *v = "";
	size_t n = 0;
	const char *semi;

	server_call_header(call, "content-type", &v, &n);
	semi = memchr(v, ';', n);
	if (semi != NULL)
		n = (size_t)(semi - v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	*type = v;
	*size = n;
}

static bool
media_is(const char *type, size_t size, const char *lower)
{
	return http1_name_is(type, size, lower);
}

struct server_target {
	bool service_valid;   /* "Kinesis_20131202" before the dot. */
	bool complete;        /* Both a service and an operation part. */
	bool operation_valid;
};

static void
server_target_read(const struct api_call *call, struct server_target *t)
{
	const char *v = "";
	size_t n = 0;
	const char *dot;
	size_t prefix = strlen(TARGET_PREFIX);

	memset(t, 0, sizeof(*t));
	server_call_header(call, "x-amz-target", &v, &n);
	dot = memchr(v, '.', n);
	t->complete = dot != NULL && dot != v && dot + 1 < v + n;
	t->service_valid = n >= prefix && memcmp(v, TARGET_PREFIX, prefix) == 0;
	if (api_firehose_target(v, n)) {
		size_t fp = strlen(API_FIREHOSE_TARGET_PREFIX);

		t->service_valid = true;
		for (size_t i = 0; i < ARRAY_SIZE(firehose_operations); i++)
			if (span_is(v + fp, n - fp, firehose_operations[i]))
				t->operation_valid = true;
		return;
	}
	if (!t->service_valid)
		return;
	for (size_t i = 0; i < sizeof(kinesis_operations) / sizeof(kinesis_operations[0]); i++)
		if (span_is(v + prefix, n - prefix, kinesis_operations[i]))
			t->operation_valid = true;
}

/*
 * application/json is a legacy Coral type: AWS parses the body, then answers
 * 404 UnknownOperationException (400 SerializationException when it does not
 * parse), in Coral's envelope and with the request's content type.
 */
static void
server_call_legacy_json(struct api_call *call)
{
	static const char unknown[] = "{\"Output\":{\"__type\":\"com.amazon.coral.service#"
		"UnknownOperationException\"},\"Version\":\"1.0\"}";
	static const char serialization[] = "{\"Output\":{\"__type\":\"com.amazon.coral."
		"service#SerializationException\",\"Message\":null},\"Version\":\"1.0\"}";
	cJSON *doc = cJSON_ParseWithLength(call->req + call->body_off,
					   call->req_used - call->body_off);
	bool object = doc != NULL && cJSON_IsObject(doc);

	cJSON_Delete(doc);
	server_call_state_set(call, CALL_DISPATCHED);
	if (object)
		server_call_respond_raw(call, 404, JSON_LEGACY, "UnknownOperationException",
					unknown, sizeof(unknown) - 1);
	else
		server_call_respond_raw(call, 400, JSON_LEGACY, "SerializationException",
					serialization, sizeof(serialization) - 1);
}

/*
 * A CBOR body becomes the JSON the actions read (call->cbor_json). It is read before
 * authentication, as AWS parses a body before it checks the signature (issue 12).
 */
static bool
server_call_cbor_request(struct api_call *call)
{
	struct api_server *s = call->server;
	const char *error = NULL;
	int err;

	call->cbor = true;
	s->stats.cbor_requests++;
	err = server_cbor_request_to_json((const uint8_t *)call->req + call->body_off,
					  call->req_used - call->body_off, &call->cbor_json,
					  &error);
	if (err == 0)
		return true;
	if (err == -EINVAL) {
		s->stats.cbor_rejected++;
		server_call_cbor(call, 400, "SerializationException", error);
	} else if (buf_pool_exhausted(&s->pool)) {
		server_call_cbor(call, 503, "ServiceUnavailable", "Server busy: retry");
	} else {
		server_call_cbor(call, 413, "SerializationException",
				 "Request body exceeds the JSON it may become");
	}
	api_out_release(&call->cbor_json);
	return false;
}

/* The request target's path: a presigned request carries its signature in the query. */
static size_t
server_call_path_size(const struct api_call *call)
{
	const char *target = call->req + call->target.off;
	const char *query = memchr(target, '?', call->target.size);

	return query != NULL ? (size_t)(query - target) : call->target.size;
}

#define ACCESS_DENIED_TEXT "Unable to determine service/operation name to be authorized"

/* The table at the top of this file, down to the target check. True: go on to auth. */
static bool
server_call_route(struct api_call *call)
{
	const char *req = call->req;
	struct server_target t;
	const char *type;
	size_t type_size;
	bool json11;

	if (!span_is(req + call->method.off, call->method.size, "POST")) {
		server_call_xml(call, 403, "AccessDeniedException", ACCESS_DENIED_TEXT, false);
		return false;
	}
	if (!span_is(req + call->target.off, server_call_path_size(call), "/")) {
		server_call_xml(call, 404, "UnknownOperationException", NULL, true);
		return false;
	}
	server_media_type(call, &type, &type_size);
	server_target_read(call, &t);
	json11 = media_is(type, type_size, JSON_1_1);
	if (call->req_used == call->body_off) {
		const char *name = t.service_valid && t.operation_valid ?
				   "SerializationException" : "UnknownOperationException";

		if (json11)
			server_call_refuse(call, 400, name, "");
		else
			server_call_cbor(call, 400, name, NULL);
		return false;
	}
	if (media_is(type, type_size, CBOR_1_1)) {
		if (!t.service_valid || !t.operation_valid) {
			server_call_cbor(call, 400, "UnknownOperationException", NULL);
			return false;
		}
		return server_call_cbor_request(call);
	}
	if (!json11 && !media_is(type, type_size, JSON_LEGACY)) {
		if (!t.complete)
			server_call_xml(call, 403, "AccessDeniedException", ACCESS_DENIED_TEXT, true);
		else
			server_call_xml(call, 404, "UnknownOperationException", NULL, true);
		return false;
	}
	if (!json11) {
		server_call_legacy_json(call);
		return false;
	}
	if (!t.service_valid || !t.operation_valid) {
		server_call_refuse(call, 400, "UnknownOperationException", "");
		return false;
	}
	return true;
}

static void
server_call_cors(struct api_call *call)
{
	const char *v;
	size_t n;

	call->cors = server_call_header(call, "origin", &v, &n);
	call->cors_preflight = call->cors &&
			       span_is(call->req + call->method.off, call->method.size, "OPTIONS");
}

/* An Access-Control-Request-* value to echo, if the request has one that is not too long. */
static bool
server_cors_echo(const struct api_call *call, const char *request_name, const char *name,
		 struct server_header *out)
{
	const char *v;
	size_t n;

	if (!server_call_header(call, request_name, &v, &n) || n > SERVER_CORS_ECHO_SIZE_MAX)
		return false;
	*out = (struct server_header){ name, v, n };
	return true;
}

uint32_t
server_call_extra_headers(const struct api_call *call,
			  struct server_header out[SERVER_EXTRA_HEADERS_MAX])
{
	static const char expose[] = "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,"
		"x-amz-id-2,x-amzn-ErrorMessage,Date";
	uint32_t n = 0;

	if (call->id2[0] != '\0')
		out[n++] = (struct server_header){ "x-amz-id-2", call->id2, strlen(call->id2) };
	if (!call->cors)
		return n;
	out[n++] = (struct server_header){ "access-control-allow-origin", "*", 1 };
	if (!call->cors_preflight) {
		out[n++] = (struct server_header){ "access-control-expose-headers", expose,
						   sizeof(expose) - 1 };
		return n;
	}
	n += server_cors_echo(call, "access-control-request-headers",
			      "access-control-allow-headers", &out[n]);
	n += server_cors_echo(call, "access-control-request-method",
			      "access-control-allow-methods", &out[n]);
	out[n++] = (struct server_header){ "access-control-max-age", "172800", 6 };
	assert(n <= SERVER_EXTRA_HEADERS_MAX);
	return n;
}

/* Whether the body parses as JSON (only asked on the way to an authentication error). */
static bool
server_body_is_json(const struct api_call *call)
{
	cJSON *doc;
	bool ok;

	/* A CBOR body was read before authentication already (server_call_cbor_request). */
	if (call->cbor)
		return true;
	doc = cJSON_ParseWithLength(call->req + call->body_off, call->req_used - call->body_off);
	ok = doc != NULL;
	cJSON_Delete(doc);
	return ok;
}

/* [auth] mode: off, presence or sigv4. True: authenticated (access key id recorded). */
static bool
server_call_auth(struct api_call *call)
{
	struct api_server *s = call->server;
	struct sigv4_header headers[HTTP1_HEADERS_MAX + 8];
	struct sigv4_result result;
	const char *target;
	size_t target_size;
	struct sigv4_input in = {
		.method = call->req + call->method.off,
		.method_size = call->method.size,
		.target = call->req + call->target.off,
		.target_size = call->target.size,
		.headers = headers,
		.header_count = call->header_count,
		.body = (const uint8_t *)call->req + call->body_off,
		.body_size = call->req_used - call->body_off,
		.now_real_ns = clock_real_ns(),
	};

	if (s->config.auth == CONFIG_AUTH_OFF)
		return true;
	if (server_call_header(call, "x-amz-target", &target, &target_size) &&
	    api_firehose_target(target, target_size))
		in.service = SIGV4_SERVICE_FIREHOSE;
	for (uint32_t i = 0; i < call->header_count; i++)
		headers[i] = (struct sigv4_header){
			call->req + call->names[i].off, call->names[i].size,
			call->req + call->values[i].off, call->values[i].size,
		};
	if (s->config.auth == CONFIG_AUTH_PRESENCE)
		sigv4_presence(&in, &result);
	else
		sigv4_verify(&s->keys, &in, &result);
	if (result.status != SIGV4_OK) {
		server_call_state_set(call, CALL_DISPATCHED);
		/* AWS reads the body before it checks the signature: not JSON is that error. */
		if (!server_body_is_json(call))
			server_call_json_error(call, 400, "SerializationException", "", 0);
		else
			server_call_json_error(call, 400, result.error_type, result.message,
					       strlen(result.message));
		return false;
	}
	snprintf(call->access_key_id, sizeof(call->access_key_id), "%s", result.access_key_id);
	snprintf(call->principal_arn, sizeof(call->principal_arn), "%s", result.principal_arn);
	return true;
}

void
server_call_ready(struct api_call *call)
{
	struct api_server *s = call->server;
	struct api_request req;
	const char *forwarded;
	size_t forwarded_size;

	assert(call->state == CALL_READING);
	if (call->refuse_status == 408)
		return;  /* Timed out (HTTP/2): the stream reset is on its way. */
	s->stats.requests++;
	if (call->late) {
		server_call_refuse_stopping(call);
		return;
	}
	if (call->refuse_status == 413) {
		server_call_refuse(call, 413, "SerializationException",
				   "Request body exceeds request_body_size_max");
		return;
	}
	if (call->refuse_status == 503) {
		server_call_refuse(call, 503, "ServiceUnavailable", "Server busy: retry");
		return;
	}
	if (call->refuse_status == 431) {
		server_call_refuse(call, 431, "SerializationException",
				   "Request headers exceed the server's limits");
		return;
	}
	server_call_cors(call);
	if (call->cors_preflight) {
		server_call_refuse(call, 200, NULL, "");
		return;
	}
	if (!server_call_route(call) || !server_call_auth(call))
		return;
	if (call->conn != NULL)
		call->conn->proven = true;  /* Not evicted for a newcomer any more. */
	memset(&req, 0, sizeof(req));
	server_call_header(call, "x-amz-target", &req.target, &req.target_size);
	server_call_header(call, "content-type", &req.content_type, &req.content_type_size);
	req.body = (const uint8_t *)call->req + call->body_off;
	req.body_size = call->req_used - call->body_off;
	if (call->cbor) {
		/* The actions read JSON only: hand them the translation. */
		req.content_type = JSON_1_1;
		req.content_type_size = strlen(JSON_1_1);
		req.body = (const uint8_t *)call->cbor_json.data;
		req.body_size = call->cbor_json.size;
	}
	req.request_id = call->request_id;
	req.access_key_id = call->access_key_id;
	req.principal_arn = call->principal_arn;
	req.forwarded = server_call_header(call, FORWARD_HEADER_LOWER, &forwarded, &forwarded_size);
	req.now_ns = clock_real_ns();
	server_call_state_set(call, CALL_DISPATCHED);
	call->metrics_op = metrics_api_op(req.target, req.target_size);
	kinesis_dispatch(s->kinesis, call, &req);
}
