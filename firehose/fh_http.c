/*
 * fh_http.c - HTTP endpoint destinations (HttpEndpointDestinationConfiguration):
 * a cut range is POSTed as Firehose's documented request (AWS "Understand HTTP
 * endpoint delivery request and response specifications"); what the endpoint
 * does not take within RetryOptions.DurationInSeconds goes to the backup (the
 * S3Configuration's bucket, in the S3-compatible store or under local_root) as
 * Firehose's error records.
 *
 *   REQUEST   POST <Url>, headers:
 *             Content-Type                       application/json
 *             Content-Encoding                   gzip (ContentEncoding GZIP only)
 *             X-Amz-Firehose-Protocol-Version    1.0
 *             X-Amz-Firehose-Request-Id          hash of (stream, version, shard, range)
 *             X-Amz-Firehose-Source-Arn          the delivery stream's ARN
 *             X-Amz-Firehose-Access-Key          AccessKey (when set)
 *             X-Amz-Firehose-Common-Attributes   {"commonAttributes":{...}}
 *             body {"requestId":"<id>","timestamp":<ms>,"records":[{"data":"<b64>"},...]}
 *   SUCCESS   200 with a JSON body whose requestId is ours (<= FH_HTTP_ANSWER_MAX bytes)
 *   FAILURE   anything else: retried by the flusher (1 s doubling to 60 s) until
 *             DurationInSeconds have passed since the range's first failure, then
 *             backed up; 413 is backed up at once (it cannot get better)
 *   BACKUP    <ErrorOutputPrefix>http-endpoint-failed/YYYY/MM/DD/HH/<name>-<version>-
 *             <stamp>-<uuid><ext>, one JSON error record a line (below), compressed
 *             as S3Configuration says
 *
 * At-least-once by nature: the endpoint may have taken a request whose answer we
 * never saw. The request id (and body) depend on the range only, so a retry or a
 * redo after a crash sends the same id: a receiver that dedupes on it sees each
 * record once.
 *
 * The request holds the flusher thread (without the engine lock: fh_flush.c,
 * fh_deliver; never the API thread) for at most FH_HTTP_TIMEOUT_MS; AWS waits 3
 * minutes. What it reads and the lane's retry state are the fh_job's.
 *
 *   TABLE             COLUMNS (firehose.db; one row per HTTP delivery stream)
 *   http_destinations id INTEGER PRIMARY KEY, url, endpoint_name, access_key,
 *                     attributes, gzip, backup_all, retry_s
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/base.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/diag.h"
#include "common/hist.h"
#include "firehose/fh_internal.h"

/* Ours: the request holds the flusher this long at most (AWS: 3 min). */
#define FH_HTTP_TIMEOUT_MS 10000L
#define FH_HTTP_CONNECT_TIMEOUT_MS 3000L
/* AWS: the response is at most 1 MiB. */
#define FH_HTTP_ANSWER_MAX (1u << 20)
/* Ours: an endpoint's errorMessage kept in error records (AWS: 8192). */
#define FH_HTTP_ERROR_TEXT_MAX 512u
#define FH_HTTP_PAYLOAD_TOO_LARGE 413L
/* The largest cut of an HTTP stream: SizeInMBs plus the record that crosses it. */
#define FH_HTTP_RAW_MAX (((size_t)FIREHOSE_HTTP_SIZE_MB_MAX << 20) + FIREHOSE_RECORD_SIZE_MAX)
/* Per record in the body beyond its base64: {"data":""}, or an error record's members. */
#define FH_HTTP_RECORD_OVERHEAD (384u + FH_HTTP_ERROR_TEXT_MAX)
#define FH_HTTP_BODY_MAX ((FH_HTTP_RAW_MAX + 2) / 3 * 4 + /* base64 */ \
			  (size_t)FIREHOSE_HTTP_RECORDS_MAX * FH_HTTP_RECORD_OVERHEAD + 256u)
#define FH_HTTP_FAILED_TYPE "http-endpoint-failed"
#define FH_HTTP_HEADER_SIZE (FIREHOSE_HTTP_ATTRIBUTES_SIZE_MAX + 64u)

struct fh_http {
	CURL *curl;
	char *body;                  /* FH_HTTP_BODY_MAX: the request, or the error records. */
	char *answer;                /* FH_HTTP_ANSWER_MAX + 1 */
	size_t answer_used;
	char arn_prefix[160];        /* arn:aws:firehose:<region>:<account>:deliverystream/ */
	const char *error_code;      /* The last attempt's failure, for error records. */
	char error_text[FH_HTTP_ERROR_TEXT_MAX + 1];
};

/* ---- Life cycle ----------------------------------------------------------- */

int
fh_http_open(struct firehose *fh, const struct firehose_options *options)
{
	struct fh_http *h;

	static_assert(FH_HTTP_BODY_MAX <= FH_RAW_SIZE_MAX, "a gzipped body fits fh->out");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	h = calloc(1, sizeof(*h));
	fh->http = h;
	fh->record_ends = calloc(FH_CUT_RECORDS_MAX, sizeof(*fh->record_ends));
	fh->record_arrivals = calloc(FH_CUT_RECORDS_MAX, sizeof(*fh->record_arrivals));
	fh->record_seqs = calloc(FH_CUT_RECORDS_MAX, sizeof(*fh->record_seqs));
	if (h == NULL || fh->record_ends == NULL || fh->record_arrivals == NULL ||
	    fh->record_seqs == NULL)
		return -ENOMEM;
	snprintf(h->arn_prefix, sizeof(h->arn_prefix), "arn:aws:firehose:%s:%s:deliverystream/",
		 options->region != NULL ? options->region : "us-east-1",
		 options->account_id != NULL ? options->account_id : "000000000000");
	/* Large but untouched until an HTTP cut needs it, as fh->raw. */
	h->body = malloc(FH_HTTP_BODY_MAX);
	h->answer = malloc(FH_HTTP_ANSWER_MAX + 1);
	h->curl = curl_easy_init();
	return h->body == NULL || h->answer == NULL || h->curl == NULL ? -ENOMEM : 0;
}

void
fh_http_close(struct firehose *fh)
{
	struct fh_http *h = fh->http;

	free(fh->record_ends);
	free(fh->record_arrivals);
	free(fh->record_seqs);
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->body);
	free(h->answer);
	free(h);
	curl_global_cleanup();
}

/* ---- SQLite ---------------------------------------------------------------- */

int
fh_http_store_create(struct firehose *fh)
{
	return fh_store_exec(fh, "CREATE TABLE IF NOT EXISTS http_destinations("
			     "id INTEGER PRIMARY KEY, url TEXT NOT NULL,"
			     " endpoint_name TEXT NOT NULL, access_key TEXT NOT NULL,"
			     " attributes TEXT NOT NULL, gzip INTEGER NOT NULL,"
			     " backup_all INTEGER NOT NULL, retry_s INTEGER NOT NULL);");
}

int
fh_http_store_insert(struct firehose *fh, const struct fh_stream *s)
{
	const struct firehose_http *c = &s->spec.http;
	int64_t id = s->id, gzip = c->gzip, all = c->backup_all, retry = c->retry_s;

	if (s->spec.destination != FIREHOSE_DEST_HTTP)
		return 0;
	return fh_store_run(fh, "INSERT INTO http_destinations(id, url, endpoint_name,"
			    " access_key, attributes, gzip, backup_all, retry_s)"
			    " VALUES(?, ?, ?, ?, ?, ?, ?, ?)", "ittttiii",
			    (const void *[]){ &id, c->url, c->endpoint_name, c->access_key,
					      c->attributes, &gzip, &all, &retry });
}

int
fh_http_store_delete(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id;

	return fh_store_run(fh, "DELETE FROM http_destinations WHERE id = ?", "i",
			    (const void *[]){ &id });
}

/* Stream `s` (just loaded) is an HTTP one when it has a row here. */
int
fh_http_store_load(struct firehose *fh, struct fh_stream *s)
{
	struct firehose_http *c = &s->spec.http;
	sqlite3_stmt *st = NULL;
	int step = fh_store_by_id(fh, "SELECT url, endpoint_name, access_key, attributes, gzip,"
				  " backup_all, retry_s FROM http_destinations WHERE id = ?", s->id,
				  &st);

	if (step == SQLITE_ROW) {
		s->spec.destination = FIREHOSE_DEST_HTTP;
		fh_store_column(st, 0, c->url, sizeof(c->url));
		fh_store_column(st, 1, c->endpoint_name, sizeof(c->endpoint_name));
		fh_store_column(st, 2, c->access_key, sizeof(c->access_key));
		fh_store_column(st, 3, c->attributes, sizeof(c->attributes));
		c->gzip = sqlite3_column_int64(st, 4) != 0;
		c->backup_all = sqlite3_column_int64(st, 5) != 0;
		c->retry_s = (uint32_t)sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
	return step < 0 ? step : 0;
}

/* ---- The request ----------------------------------------------------------- */

/* Appends base64 of raw[from..to) to `out` at *at. */
static void
fh_http_b64(const struct firehose *fh, uint32_t i, char *out, size_t *at)
{
	uint32_t from = i == 0 ? 0 : fh->record_ends[i - 1];

	*at += base64_encode(fh->raw + from, fh->record_ends[i] - from, out + *at);
}

static size_t
fh_http_body(struct firehose *fh, const char *request_id, uint64_t first_arrival_ns,
	     uint32_t records)
{
	char *b = fh->http->body;
	size_t at = (size_t)sprintf(b, "{\"requestId\":\"%s\",\"timestamp\":%llu,\"records\":[",
				    request_id, (unsigned long long)(first_arrival_ns / 1000000u));

	for (uint32_t i = 0; i < records; i++) {
		at += (size_t)sprintf(b + at, "%s{\"data\":\"", i == 0 ? "" : ",");
		fh_http_b64(fh, i, b, &at);
		at += (size_t)sprintf(b + at, "\"}");
	}
	at += (size_t)sprintf(b + at, "]}");
	assert(at <= FH_HTTP_BODY_MAX);
	return at;
}

static size_t
fh_http_answer(char *data, size_t size, size_t count, void *arg)
{
	struct fh_http *h = arg;
	size_t n = size * count;

	if (n > FH_HTTP_ANSWER_MAX - h->answer_used)
		return 0;  /* Over AWS's 1 MiB: curl stops with a write error. */
	memcpy(h->answer + h->answer_used, data, n);
	h->answer_used += n;
	return n;
}

/* Keeps `text` for the error records: printable ASCII, no quote or backslash, bounded. */
static void
fh_http_fail(struct fh_http *h, const char *code, const char *text)
{
	size_t i = 0;

	h->error_code = code;
	for (; text[i] != '\0' && i < FH_HTTP_ERROR_TEXT_MAX; i++)
		h->error_text[i] = text[i] >= ' ' && text[i] <= '~' && text[i] != '"' &&
				   text[i] != '\\' ? text[i] : '?';
	h->error_text[i] = '\0';
}

/* The endpoint's answer to a completed exchange: 0 when it took the request. */
static int
fh_http_check_answer(struct fh_http *h, long status, const char *request_id)
{
	cJSON *json = cJSON_ParseWithLength(h->answer, h->answer_used);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "requestId");
	const cJSON *message = cJSON_GetObjectItemCaseSensitive(json, "errorMessage");
	char text[64];
	int rc = 0;

	if (status != 200) {
		snprintf(text, sizeof(text), "The endpoint answered HTTP %ld.", status);
		fh_http_fail(h, status == FH_HTTP_PAYLOAD_TOO_LARGE ? "HttpEndpoint.PayloadTooLarge" :
			     "HttpEndpoint.DestinationException",
			     cJSON_IsString(message) ? message->valuestring : text);
		rc = status == FH_HTTP_PAYLOAD_TOO_LARGE ? -EMSGSIZE : -EIO;
	} else if (!cJSON_IsString(id) || strcmp(id->valuestring, request_id) != 0) {
		fh_http_fail(h, "HttpEndpoint.InvalidResponseFromDestination", "The response is "
			     "not JSON with the request's requestId.");
		rc = -EPROTO;
	}
	cJSON_Delete(json);
	return rc;
}

static int
fh_http_headers(struct fh_job *j, const char *request_id, struct curl_slist **out)
{
	const struct firehose_http *c = &j->spec.http;
	char line[FH_HTTP_HEADER_SIZE];
	struct curl_slist *l = NULL, *next;
	const char *fixed[] = {
		"Content-Type: application/json", "X-Amz-Firehose-Protocol-Version: 1.0",
		"Expect:",  /* No 100-continue round trip for large bodies. */
		c->gzip ? "Content-Encoding: gzip" : NULL,
	};

	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if (fixed[i] != NULL && (next = curl_slist_append(l, fixed[i])) != NULL)
			l = next;
	snprintf(line, sizeof(line), "X-Amz-Firehose-Request-Id: %s", request_id);
	if ((next = curl_slist_append(l, line)) != NULL)
		l = next;
	snprintf(line, sizeof(line), "X-Amz-Firehose-Common-Attributes: {\"commonAttributes\":%s}",
		 c->attributes[0] != '\0' ? c->attributes : "{}");
	if ((next = curl_slist_append(l, line)) != NULL)
		l = next;
	if (c->access_key[0] != '\0') {
		snprintf(line, sizeof(line), "X-Amz-Firehose-Access-Key: %s", c->access_key);
		if ((next = curl_slist_append(l, line)) != NULL)
			l = next;
	}
	*out = l;
	return l == NULL ? -ENOMEM : 0;
}

/* One POST of the cut in fh->raw; 0 when the endpoint took it. */
static int
fh_http_post(struct firehose *fh, struct fh_job *j, const char *request_id,
	     uint64_t first_arrival_ns, uint32_t records)
{
	struct fh_http *h = fh->http;
	struct curl_slist *headers = NULL;
	const char *body = h->body;
	size_t size = fh_http_body(fh, request_id, first_arrival_ns, records);
	char arn_header[sizeof(h->arn_prefix) + FIREHOSE_NAME_SIZE_MAX + 32];
	struct curl_slist *with_arn;
	long status = 0;
	CURLcode cc;
	int rc;

	if (j->spec.http.gzip) {
		rc = fh_codec_compress(FIREHOSE_GZIP, (const uint8_t *)h->body, size, fh->out,
				       fh->out_size, &size);
		if (rc != 0)
			return rc;
		body = (const char *)fh->out;
	}
	rc = fh_http_headers(j, request_id, &headers);
	snprintf(arn_header, sizeof(arn_header), "X-Amz-Firehose-Source-Arn: %s%s",
		 h->arn_prefix, j->spec.name);
	if (rc == 0 && (with_arn = curl_slist_append(headers, arn_header)) != NULL)
		headers = with_arn;
	if (rc != 0) {
		curl_slist_free_all(headers);
		return rc;
	}
	h->answer_used = 0;
	curl_easy_reset(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_URL, j->spec.http.url);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, fh_http_answer);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, FH_HTTP_TIMEOUT_MS);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, FH_HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(h->curl);
	curl_slist_free_all(headers);
	if (cc != CURLE_OK) {
		fh_http_fail(h, cc == CURLE_OPERATION_TIMEDOUT ? "HttpEndpoint.RequestTimeout" :
			     cc == CURLE_WRITE_ERROR ? "HttpEndpoint.ResponseTooLarge" :
			     "HttpEndpoint.ConnectionFailed", curl_easy_strerror(cc));
		return -EIO;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	return fh_http_check_answer(h, status, request_id);
}

/* ---- The backup ------------------------------------------------------------- */

/* Firehose's error records, one JSON object a line, for the cut in fh->raw. */
static size_t
fh_http_error_records(struct firehose *fh, const struct fh_job *j, uint32_t records)
{
	struct fh_http *h = fh->http;
	uint64_t now_ms = clock_real_ns() / 1000000u;
	char *b = h->body;
	size_t at = 0;

	for (uint32_t i = 0; i < records; i++) {
		at += (size_t)sprintf(b + at, "{\"attemptsMade\":%u,\"arrivalTimestamp\":%llu,"
				      "\"errorCode\":\"%s\",\"errorMessage\":\"%s\","
				      "\"attemptEndingTimestamp\":%llu,\"rawData\":\"",
				      j->http_attempts,
				      (unsigned long long)(fh->record_arrivals[i] / 1000000u),
				      h->error_code, h->error_text, (unsigned long long)now_ms);
		fh_http_b64(fh, i, b, &at);
		at += (size_t)sprintf(b + at, "\",\"subsequenceNumber\":0,\"dataId\":\"%llu\"}\n",
				      (unsigned long long)fh->record_seqs[i]);
	}
	assert(at <= FH_HTTP_BODY_MAX);
	return at;
}

static int
fh_http_backup(struct firehose *fh, struct fh_job *j, uint64_t first, uint64_t end,
	       uint64_t first_arrival_ns, uint32_t records)
{
	size_t size = fh_http_error_records(fh, j, records);
	int n;

	diag_warn("firehose", "%s: the endpoint did not take seq %llu..%llu after %u attempts "
		  "(%s: %s): backed up under %s" FH_HTTP_FAILED_TYPE "/", j->spec.name,
		  (unsigned long long)first,
		  (unsigned long long)end, j->http_attempts, fh->http->error_code,
		  fh->http->error_text, j->spec.error_prefix);
	n = fh_error_object_write(fh, j, FH_HTTP_FAILED_TYPE, first, end, first_arrival_ns, 0,
				  (const uint8_t *)fh->http->body, size);
	if (n == 0)  /* Counted per write (fh_commit): a range redone counts again. */
		j->http_backup_records += records;
	return n;
}

/* ---- Delivering -------------------------------------------------------------- */

uint32_t
fh_records_max(const struct fh_stream *s)
{
	return s->spec.destination == FIREHOSE_DEST_HTTP ? FIREHOSE_HTTP_RECORDS_MAX :
	       fh_lambda_records_max(s);
}

int
fh_http_deliver(struct firehose *fh, struct fh_job *j, uint64_t first, uint64_t end,
		uint64_t first_arrival_ns, uint32_t records)
{
	char request_id[FH_UUID_SIZE];
	uint64_t now = clock_mono_ns();
	int rc;

	fh_range_uuid(j, first, end, request_id);
	j->http_attempts++;
	rc = fh_http_post(fh, j, request_id, first_arrival_ns, records);
	if (rc == 0) {
		j->http_failing_ns = 0;
		j->http_attempts = 0;
		/* AllData: the object too (a failure here retries the POST: same request id). */
		return j->spec.http.backup_all ? fh_job_object_write(fh, j, first, end,
								       first_arrival_ns) : 0;
	}
	if (j->http_failing_ns == 0)
		j->http_failing_ns = now;
	/* Retried by the flusher (its back-off) until DurationInSeconds have passed. */
	if (rc != -EMSGSIZE && now - j->http_failing_ns < (uint64_t)j->spec.http.retry_s * 1000000000u)
		return rc;
	rc = fh_http_backup(fh, j, first, end, first_arrival_ns, records);
	if (rc == 0) {
		j->http_failing_ns = 0;
		j->http_attempts = 0;
	}
	return rc;
}
