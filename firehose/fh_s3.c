/*
 * fh_s3.c - the S3-compatible destination: objects PUT to [firehose]
 * s3_endpoint through libcurl, signed with SigV4 (service s3, the payload's
 * SHA-256 in x-amz-content-sha256: common/sigv4.h), path-style
 * (host/bucket/key) or virtual-host (bucket.host/key) addressing.
 *
 * An object up to the part size is one PUT; a larger one a multipart upload:
 *
 *   STEP  REQUEST                                          DURABLE AFTER IT
 *   1     POST /key?uploads= -> <UploadId>                 -
 *   2     s3_uploads row (stream, bucket, key, upload id)  SQLite
 *   3     PUT /key?partNumber=N&uploadId=ID per part       the parts (not the object)
 *   4     POST /key?uploadId=ID <CompleteMultipartUpload>  the object
 *   5     row deleted                                      SQLite
 *
 * Exactly once: the key and bytes are the range's (fh_flush.c), so a redo
 * PUTs the same object again. An upload a crash or a failure left behind
 * (its row) is aborted (DELETE /key?uploadId=ID, best effort: a store that
 * refuses it, such as s3rver, keeps unseen parts) before the range is sent
 * again as a new upload; the key only ever appears complete.
 *
 * The store's answer: 2xx is success, except a CompleteMultipartUpload whose
 * 200 body is an <Error> (AWS documents that); anything else is a failure the
 * flusher retries with its growing pause (fh_flush.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "common/sigv4.h"
#include "firehose/fh_internal.h"

/* What the store answers that we read (XML bodies: UploadId, errors). Ours. */
#define FH_S3_RESPONSE_SIZE_MAX (64u << 10)
/* A quoted ETag as S3 sends it (32 hex, quotes, "-N"), with room to spare. */
#define FH_S3_ETAG_SIZE 128u
#define FH_S3_UPLOAD_ID_SIZE 1024u
/* One <Part><PartNumber>N</PartNumber><ETag>...</ETag></Part>. */
#define FH_S3_COMPLETE_PART_SIZE (64u + FH_S3_ETAG_SIZE)
#define FH_S3_URL_SIZE_MAX (FIREHOSE_PATH_SIZE_MAX * 3u + 2048u)
/*
 * A store that does not answer this soon has failed the attempt (retried later). Ours:
 * one flusher thread serves every delivery stream, so a stalled store (under 1 B/s
 * for FH_S3_STALL_S) fails fast, while a slow large upload that moves may take its time.
 */
#define FH_S3_CONNECT_TIMEOUT_MS 3000L
#define FH_S3_REQUEST_TIMEOUT_MS 300000L
#define FH_S3_STALL_S 20L

struct fh_s3 {
	CURL *curl;
	char scheme[8];                  /* "http" or "https" */
	char host[FIREHOSE_S3_FIELD_SIZE_MAX + 1];   /* host[:port] of the endpoint. */
	char region[FIREHOSE_S3_FIELD_SIZE_MAX + 1];
	char access_key[FIREHOSE_S3_FIELD_SIZE_MAX + 1];
	char secret_key[FIREHOSE_S3_FIELD_SIZE_MAX + 1];
	bool path_style;
	size_t part_size;
	char *response;                  /* FH_S3_RESPONSE_SIZE_MAX + 1 */
	size_t response_used;
	char etag[FH_S3_ETAG_SIZE];      /* The last answer's ETag header. */
	/* Parts of the largest object: the flusher's output buffer over the part size. */
	size_t parts_max;
	char (*etags)[FH_S3_ETAG_SIZE];  /* parts_max */
	char *complete;                  /* The CompleteMultipartUpload body. */
	char upload_id[FH_S3_UPLOAD_ID_SIZE];
};

/* ---- Set-up ---------------------------------------------------------------- */

/* "http(s)://host[:port]" with nothing after but an optional '/'. */
static int
fh_s3_endpoint_parse(struct fh_s3 *s3, const char *endpoint)
{
	const char *rest;
	size_t n;

	if (strncmp(endpoint, "http://", 7) == 0) {
		strcpy(s3->scheme, "http");
		rest = endpoint + 7;
	} else if (strncmp(endpoint, "https://", 8) == 0) {
		strcpy(s3->scheme, "https");
		rest = endpoint + 8;
	} else {
		return -EINVAL;
	}
	n = strcspn(rest, "/?#");
	if (n == 0 || n >= sizeof(s3->host) || (rest[n] != '\0' && strcmp(rest + n, "/") != 0))
		return -EINVAL;
	memcpy(s3->host, rest, n);
	s3->host[n] = '\0';
	return 0;
}

static int
fh_s3_copy(char *dst, size_t cap, const char *src)
{
	if (src == NULL || strlen(src) >= cap)
		return -EINVAL;
	strcpy(dst, src);
	return 0;
}

int
firehose_s3_options_check(const struct firehose_s3_options *o, const char **key_out)
{
	static struct fh_s3 probe;  /* Only its endpoint fields; main thread, at start. */
	const char *key = NULL;

	if (o->endpoint == NULL || o->endpoint[0] == '\0')
		return 0;
	if (fh_s3_endpoint_parse(&probe, o->endpoint) != 0)
		key = "s3_endpoint";
	else if (o->region == NULL || o->region[0] == '\0' ||
		 strlen(o->region) > FIREHOSE_S3_FIELD_SIZE_MAX)
		key = "s3_region";
	else if (o->access_key == NULL || o->access_key[0] == '\0' ||
		 strlen(o->access_key) > FIREHOSE_S3_FIELD_SIZE_MAX)
		key = "s3_access_key";
	else if (o->secret_key == NULL || o->secret_key[0] == '\0' ||
		 strlen(o->secret_key) > FIREHOSE_S3_FIELD_SIZE_MAX)
		key = "s3_secret_key";
	else if (o->part_mb < FIREHOSE_S3_PART_MB_MIN || o->part_mb > FIREHOSE_S3_PART_MB_MAX)
		key = "s3_part_mb";
	*key_out = key;
	return key == NULL ? 0 : -EINVAL;
}

int
fh_s3_open(struct firehose *fh, const struct firehose_s3_options *o)
{
	const char *key = NULL;
	struct fh_s3 *s3;
	int rc;

	if (o->endpoint == NULL || o->endpoint[0] == '\0')
		return 0;  /* No store: objects land under local_root. */
	if (firehose_s3_options_check(o, &key) != 0) {
		diag_error("firehose", "[firehose] %s refused (docs/CONFIG.md)", key);
		return -EINVAL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	s3 = calloc(1, sizeof(*s3));
	if (s3 == NULL) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	fh->s3 = s3;
	rc = fh_s3_endpoint_parse(s3, o->endpoint);
	if (rc == 0)
		rc = fh_s3_copy(s3->region, sizeof(s3->region), o->region);
	if (rc == 0)
		rc = fh_s3_copy(s3->access_key, sizeof(s3->access_key), o->access_key);
	if (rc == 0)
		rc = fh_s3_copy(s3->secret_key, sizeof(s3->secret_key), o->secret_key);
	if (rc != 0)
		return rc;  /* Checked above: not expected. */
	s3->path_style = o->path_style;
	s3->part_size = (size_t)o->part_mb << 20;
	s3->response = malloc(FH_S3_RESPONSE_SIZE_MAX + 1);
	s3->parts_max = fh->out_size / s3->part_size + 1;
	s3->etags = calloc(s3->parts_max, sizeof(*s3->etags));
	s3->complete = malloc(s3->parts_max * FH_S3_COMPLETE_PART_SIZE + 128u);
	s3->curl = curl_easy_init();
	if (s3->response == NULL || s3->etags == NULL || s3->complete == NULL ||
	    s3->curl == NULL)
		return -ENOMEM;
	return fh_store_uploads_open(fh);
}

void
fh_s3_close(struct firehose *fh)
{
	struct fh_s3 *s3 = fh->s3;

	if (s3 == NULL)
		return;
	if (s3->curl != NULL)
		curl_easy_cleanup(s3->curl);
	free(s3->response);
	free(s3->etags);
	free(s3->complete);
	explicit_bzero(s3->secret_key, sizeof(s3->secret_key));
	free(s3);
	fh->s3 = NULL;
	curl_global_cleanup();  /* Counted: undoes fh_s3_open's init. */
}

/* ---- One request ----------------------------------------------------------- */

static size_t
fh_s3_on_body(char *data, size_t size, size_t count, void *arg)
{
	struct fh_s3 *s3 = arg;
	size_t n = size * count;
	size_t room = FH_S3_RESPONSE_SIZE_MAX - s3->response_used;
	size_t take = n < room ? n : room;  /* The rest is dropped: we read the head only. */

	memcpy(s3->response + s3->response_used, data, take);
	s3->response_used += take;
	s3->response[s3->response_used] = '\0';
	return n;
}

/* Keeps the ETag header (UploadPart's answer); other headers are not needed. */
static size_t
fh_s3_on_header(char *data, size_t size, size_t count, void *arg)
{
	struct fh_s3 *s3 = arg;
	size_t n = size * count;

	if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
		size_t start = 5, end = n;

		while (start < end && (data[start] == ' ' || data[start] == '\t'))
			start++;
		while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n' ||
				       data[end - 1] == ' '))
			end--;
		if (end - start < sizeof(s3->etag)) {
			memcpy(s3->etag, data + start, end - start);
			s3->etag[end - start] = '\0';
		}
	}
	return n;
}

/* The request's path (as signed and sent) and Host. */
static int
fh_s3_target(const struct fh_s3 *s3, const char *bucket, const char *key, char *path,
	     size_t path_cap, char *host, size_t host_cap)
{
	char enc[FIREHOSE_PATH_SIZE_MAX * 3 + 1];
	int n, rc = sigv4_uri_encode(key, strlen(key), true, enc, sizeof(enc));

	if (rc != 0)
		return rc;
	if (s3->path_style) {
		n = snprintf(path, path_cap, "/%s/%s", bucket, enc);
		if (n < 0 || (size_t)n >= path_cap)
			return -ENAMETOOLONG;
		n = snprintf(host, host_cap, "%s", s3->host);
	} else {
		n = snprintf(path, path_cap, "/%s", enc);
		if (n < 0 || (size_t)n >= path_cap)
			return -ENAMETOOLONG;
		n = snprintf(host, host_cap, "%s.%s", bucket, s3->host);
	}
	return n < 0 || (size_t)n >= host_cap ? -ENAMETOOLONG : 0;
}

/* Signed headers for curl (Expect and Content-Type left out: S3 needs neither). */
static struct curl_slist *
fh_s3_headers(const struct fh_s3 *s3, const char *method, const char *path, const char *query,
	      const char *host, const uint8_t *body, size_t size)
{
	char payload[SIGV4_HEX_SIZE], date[SIGV4_AMZ_DATE_SIZE], auth[1024];
	char line[FIREHOSE_S3_FIELD_SIZE_MAX + 1200];
	const struct sigv4_sign_header headers[] = {
		{ "host", host }, { "x-amz-content-sha256", payload }, { "x-amz-date", date },
	};
	const struct sigv4_sign sign = {
		.method = method, .canonical_uri = path, .canonical_query = query,
		.headers = headers, .header_count = ARRAY_SIZE(headers), .payload_hex = payload,
		.amz_date = date, .region = s3->region, .service = "s3",
		.access_key = s3->access_key, .secret = s3->secret_key,
	};
	const char *lines[] = { "Host: %s", "x-amz-content-sha256: %s", "x-amz-date: %s",
				"Authorization: %s", "Expect:%s", "Content-Type:%s" };
	const char *values[] = { host, payload, date, auth, "", "" };
	struct curl_slist *list = NULL;

	sigv4_sha256_hex(body, size, payload);
	sigv4_amz_date(clock_real_ns(), date);
	if (sigv4_sign_authorization(&sign, auth, sizeof(auth)) != 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		struct curl_slist *next;

		snprintf(line, sizeof(line), lines[i], values[i]);
		next = curl_slist_append(list, line);
		if (next == NULL) {
			curl_slist_free_all(list);
			return NULL;
		}
		list = next;
	}
	return list;
}

/*
 * One signed request; the answer's body is in s3->response, its ETag in s3->etag.
 * Returns 0 for 2xx, -EHOSTUNREACH when the store could not be reached, -EIO otherwise.
 */
static int
fh_s3_request(struct fh_s3 *s3, const char *method, const char *bucket, const char *key,
	      const char *query, const uint8_t *body, size_t size)
{
	char path[FIREHOSE_PATH_SIZE_MAX * 3 + 300], host[FIREHOSE_S3_FIELD_SIZE_MAX * 2 + 2];
	char url[FH_S3_URL_SIZE_MAX];
	struct curl_slist *headers;
	CURL *c = s3->curl;
	CURLcode cc;
	long status = 0;
	int rc = fh_s3_target(s3, bucket, key, path, sizeof(path), host, sizeof(host));

	if (rc != 0)
		return rc;
	rc = snprintf(url, sizeof(url), "%s://%s%s%s%s", s3->scheme, host, path,
		      query[0] != '\0' ? "?" : "", query);
	if (rc < 0 || (size_t)rc >= sizeof(url))
		return -ENAMETOOLONG;
	headers = fh_s3_headers(s3, method, path, query, host, body, size);
	if (headers == NULL)
		return -ENOMEM;
	s3->response_used = 0;
	s3->response[0] = '\0';
	s3->etag[0] = '\0';
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, size > 0 ? (const char *)body : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fh_s3_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s3);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, fh_s3_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s3);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, FH_S3_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, FH_S3_REQUEST_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, FH_S3_STALL_S);
	cc = curl_easy_perform(c);
	curl_slist_free_all(headers);
	if (cc != CURLE_OK) {
		diag_warn("firehose", "s3: %s %s: %s", method, url, curl_easy_strerror(cc));
		return -EHOSTUNREACH;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return 0;
	diag_warn("firehose", "s3: %s %s: HTTP %ld %.300s", method, url, status, s3->response);
	return -EIO;
}

/* ---- Multipart --------------------------------------------------------------- */

/* The text of <tag>...</tag> in the answer, into out. -EPROTO when absent or too long. */
static int
fh_s3_xml_text(const char *xml, const char *tag, char *out, size_t out_size)
{
	char open[64], close[64];
	const char *start, *end;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	start = strstr(xml, open);
	if (start == NULL)
		return -EPROTO;
	start += strlen(open);
	end = strstr(start, close);
	if (end == NULL || (size_t)(end - start) >= out_size || end == start)
		return -EPROTO;
	memcpy(out, start, (size_t)(end - start));
	out[end - start] = '\0';
	return 0;
}

/* "uploadId=<encoded>" with an optional "partNumber=N&" before it (sorted: p < u). */
static int
fh_s3_upload_query(const struct fh_s3 *s3, uint32_t part, char *out, size_t out_size)
{
	char enc[FH_S3_UPLOAD_ID_SIZE * 3 + 1];
	int n, rc = sigv4_uri_encode(s3->upload_id, strlen(s3->upload_id), false, enc,
				     sizeof(enc));

	if (rc != 0)
		return rc;
	n = part > 0 ? snprintf(out, out_size, "partNumber=%u&uploadId=%s", part, enc) :
		       snprintf(out, out_size, "uploadId=%s", enc);
	return n < 0 || (size_t)n >= out_size ? -ENAMETOOLONG : 0;
}

/* Aborts an upload (best effort: logged, never fails the delivery). */
static void
fh_s3_abort(struct fh_s3 *s3, const char *bucket, const char *key)
{
	char query[FH_S3_UPLOAD_ID_SIZE * 3 + 32];

	if (fh_s3_upload_query(s3, 0, query, sizeof(query)) == 0 &&
	    fh_s3_request(s3, "DELETE", bucket, key, query, NULL, 0) == 0)
		return;
	diag_info("firehose", "s3: upload %s of %s/%s not aborted (the store keeps its parts)",
		  s3->upload_id, bucket, key);
}

static int
fh_s3_parts(struct fh_s3 *s3, const char *bucket, const char *key, const uint8_t *data,
	    size_t size, uint32_t *parts_out)
{
	char query[FH_S3_UPLOAD_ID_SIZE * 3 + 32];
	uint32_t part = 0;

	for (size_t off = 0; off < size; off += s3->part_size) {
		size_t n = size - off < s3->part_size ? size - off : s3->part_size;
		int rc;

		assert(part < s3->parts_max);  /* Objects are at most fh->out_size bytes. */
		rc = fh_s3_upload_query(s3, part + 1, query, sizeof(query));
		if (rc == 0)
			rc = fh_s3_request(s3, "PUT", bucket, key, query, data + off, n);
		if (rc == 0 && s3->etag[0] == '\0')
			rc = -EPROTO;  /* UploadPart answers an ETag; Complete needs it. */
		if (rc != 0)
			return rc;
		strcpy(s3->etags[part++], s3->etag);
	}
	*parts_out = part;
	return 0;
}

static int
fh_s3_complete(struct fh_s3 *s3, const char *bucket, const char *key, uint32_t parts)
{
	char query[FH_S3_UPLOAD_ID_SIZE * 3 + 32];
	size_t used = 0;
	int rc;

	used += (size_t)sprintf(s3->complete, "<CompleteMultipartUpload>");
	for (uint32_t i = 0; i < parts; i++)
		used += (size_t)sprintf(s3->complete + used, "<Part><PartNumber>%u</PartNumber>"
					"<ETag>%s</ETag></Part>", i + 1, s3->etags[i]);
	used += (size_t)sprintf(s3->complete + used, "</CompleteMultipartUpload>");
	rc = fh_s3_upload_query(s3, 0, query, sizeof(query));
	if (rc == 0)
		rc = fh_s3_request(s3, "POST", bucket, key, query, (const uint8_t *)s3->complete,
				   used);
	/* A 200 can carry an <Error> (AWS: "the error is embedded in the 200 response"). */
	if (rc == 0 && strstr(s3->response, "<Error>") != NULL) {
		diag_warn("firehose", "s3: completing %s/%s: %.300s", bucket, key, s3->response);
		rc = -EIO;
	}
	return rc;
}

/*
 * The flusher calls in here without the engine lock (fh_flush.c, fh_deliver): the
 * s3_uploads rows are written under it, briefly, as any other SQLite statement.
 */
static int
fh_s3_upload_note(struct firehose *fh, uint32_t stream_id, const char *key,
		  const char *upload_id)
{
	int rc;

	fh_lock(fh);
	rc = upload_id != NULL ? fh_store_upload_note(fh, stream_id, key, upload_id) :
				 fh_store_upload_drop(fh, stream_id);
	fh_unlock(fh);
	return rc;
}

static int
fh_s3_multipart(struct firehose *fh, const struct fh_job *j, const char *key,
		const uint8_t *data, size_t size)
{
	struct fh_s3 *s3 = fh->s3;
	const char *bucket = j->spec.bucket;
	uint32_t parts = 0;
	int rc = fh_s3_request(s3, "POST", bucket, key, "uploads=", NULL, 0);

	if (rc == 0)
		rc = fh_s3_xml_text(s3->response, "UploadId", s3->upload_id,
				    sizeof(s3->upload_id));
	if (rc != 0)
		return rc;
	rc = fh_s3_upload_note(fh, j->id, key, s3->upload_id);
	if (rc == 0)
		rc = fh_s3_parts(s3, bucket, key, data, size, &parts);
	if (rc == 0)
		rc = fh_s3_complete(s3, bucket, key, parts);
	if (rc != 0)
		fh_s3_abort(s3, bucket, key);
	/* Complete or aborted: the row goes (a failure to drop it only costs an abort later). */
	(void)fh_s3_upload_note(fh, j->id, key, NULL);
	return rc;
}

/* ---- The destination ----------------------------------------------------------- */

int
fh_s3_deliver(struct firehose *fh, const struct fh_job *j, const char *key,
	      const uint8_t *data, size_t size)
{
	struct fh_s3 *s3 = fh->s3;
	char old_key[FIREHOSE_PATH_SIZE_MAX];
	int found;

	assert(s3 != NULL && size <= fh->out_size);
	fh_lock(fh);
	found = fh_store_upload_find(fh, j->id, old_key, sizeof(old_key), s3->upload_id,
				     sizeof(s3->upload_id));
	fh_unlock(fh);
	/* An upload a crash left open: abort it before sending the range again. */
	if (found == 0) {
		fh_s3_abort(s3, j->spec.bucket, old_key);
		(void)fh_s3_upload_note(fh, j->id, old_key, NULL);
	}
	if (size <= s3->part_size)
		return fh_s3_request(s3, "PUT", j->spec.bucket, key, "", data, size);
	return fh_s3_multipart(fh, j, key, data, size);
}
