/*
 * forward.c - the forwarder thread (forward.h, docs/CLUSTER.md "Forwarding
 * puts to the shard's leader").
 *
 * Jobs live in a fixed table of FORWARD_INFLIGHT_MAX, each with its body and
 * reply buffers allocated at open: a job is owned by the API thread while it
 * is free or being filled, by the forwarder from forward_job_submit until it
 * is in the done queue, then by the API thread again. The two queues are
 * guarded by `lock`; the forwarder waits in curl_multi_poll and is woken by
 * curl_multi_wakeup, the API thread by the doorbell eventfd.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "control/forward_internal.h"

#define FORWARD_TARGET "Kinesis_20131202.PutRecords"
/* The forwarder's wait when nothing happens: its stop flag is seen by a wakeup anyway. */
#define FORWARD_POLL_MS 1000
/* "Authorization: " + Credential, SignedHeaders and a signature. */
#define FORWARD_AUTHORIZATION_SIZE 1024u

/* ---- The leader's answer (pure) ------------------------------------------------ */

static int32_t
forward_error_of(const char *type)
{
	const char *hash = strrchr(type, '#');

	if (hash != NULL)
		type = hash + 1;
	/* Throttled and busy answers appended nothing: the caller's retry is safe. */
	return strcmp(type, "ProvisionedThroughputExceededException") == 0 ||
	       strcmp(type, "ServiceUnavailable") == 0 ? -EPIPE : -EIO;
}

static void
forward_fail_all(struct forward_result *results, uint32_t count, int32_t error)
{
	for (uint32_t i = 0; i < count; i++)
		results[i] = (struct forward_result){ .error = error };
}

/* One record of a 200: its ShardId and SequenceNumber (which must agree), or its error. */
static int
forward_record_parse(const cJSON *rec, struct forward_result *r)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(rec, "ErrorCode");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rec, "SequenceNumber");
	const cJSON *shard = cJSON_GetObjectItemCaseSensitive(rec, "ShardId");
	unsigned long index;
	char *end;

	*r = (struct forward_result){ .error = 0 };
	if (cJSON_IsString(code)) {
		r->error = forward_error_of(code->valuestring);
		return 0;
	}
	if (!cJSON_IsString(seq) || !cJSON_IsString(shard) ||
	    strncmp(shard->valuestring, "shardId-", 8) != 0 ||
	    seqnum_parse(seq->valuestring, strlen(seq->valuestring), &r->sn) != 0)
		return -EINVAL;
	index = strtoul(shard->valuestring + 8, &end, 10);
	if (*end != '\0' || end == shard->valuestring + 8 || index != r->sn.shard_index)
		return -EINVAL;
	return 0;
}

int
forward_reply_parse(long http_status, const char *body, size_t size,
		    struct forward_result *results, uint32_t count)
{
	cJSON *root = cJSON_ParseWithLength(body, size);
	const cJSON *records = cJSON_GetObjectItemCaseSensitive(root, "Records");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "__type");
	const cJSON *rec;
	uint32_t i = 0;
	int err = 0;

	if (http_status != 200) {
		forward_fail_all(results, count, cJSON_IsString(type) ?
				 forward_error_of(type->valuestring) : -EIO);
		goto out_free;
	}
	if (!cJSON_IsArray(records) || (uint32_t)cJSON_GetArraySize(records) != count) {
		err = -EINVAL;
		goto out_fail;
	}
	cJSON_ArrayForEach(rec, records) {
		if (forward_record_parse(rec, &results[i++]) != 0) {
			err = -EINVAL;
			goto out_fail;
		}
	}
	goto out_free;
out_fail:
	forward_fail_all(results, count, -EIO);
out_free:
	cJSON_Delete(root);
	return err;
}

int
forward_error_parse(const char *body, size_t size, char *type, char *message)
{
	cJSON *root = cJSON_ParseWithLength(body, size);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "__type");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
	const char *hash;
	int err = 0;

	if (m == NULL)
		m = cJSON_GetObjectItemCaseSensitive(root, "Message");
	if (!cJSON_IsObject(root) || !cJSON_IsString(t)) {
		err = -EINVAL;
		goto out_free;
	}
	hash = strrchr(t->valuestring, '#');
	snprintf(type, FORWARD_ERROR_TYPE_SIZE, "%s", hash != NULL ? hash + 1 : t->valuestring);
	snprintf(message, FORWARD_ERROR_MESSAGE_SIZE, "%s",
		 cJSON_IsString(m) ? m->valuestring : "");
out_free:
	cJSON_Delete(root);
	return err;
}

/* ---- The API thread's side ------------------------------------------------------- */

/* A free job for `api_addr` with an empty body, or NULL. */
static struct forward_job *
forward_job_take(struct forward *f, const char *api_addr, const char *access_key_id,
		 uint64_t cookie)
{
	struct forward_job *job = NULL;

	for (uint32_t i = 0; i < FORWARD_INFLIGHT_MAX && job == NULL; i++) {
		if (!f->jobs[i].in_use)
			job = &f->jobs[i];
	}
	if (job == NULL)
		return NULL;
	job->in_use = true;
	job->cookie = cookie;
	job->count = 0;
	job->read = false;
	job->status = 0;
	forward_http_init(&job->http, api_addr, access_key_id);
	return job;
}

void
forward_http_target(struct forward_http *h, const char *api_addr)
{
	snprintf(h->url, sizeof(h->url), "http://%s/", api_addr);
	snprintf(h->host, sizeof(h->host), "%s", api_addr);
}

void
forward_http_init(struct forward_http *h, const char *api_addr, const char *access_key_id)
{
	forward_http_target(h, api_addr);
	snprintf(h->access_key_id, sizeof(h->access_key_id), "%s", access_key_id);
	h->content_type = FORWARD_CONTENT_TYPE;
	h->body.size = 0;
	h->body.overflow = false;
}

struct forward_job *
forward_job_get(struct forward *f, const char *stream, const char *api_addr,
		const char *access_key_id, uint64_t cookie)
{
	struct forward_job *job = forward_job_take(f, api_addr, access_key_id, cookie);

	if (job == NULL) {
		atomic_fetch_add_explicit(&f->busy, 1, memory_order_relaxed);
		return NULL;
	}
	snprintf(job->http.target, sizeof(job->http.target), "%s", FORWARD_TARGET);
	job->reply_max = FORWARD_REPLY_SIZE_MAX;
	/* Room for the closing "]}" stays free (forward_job_submit). */
	job->http.body.capacity_max = FORWARD_BODY_SIZE_MAX - 2;
	api_out_append(&job->http.body, "{\"StreamName\":", 14);
	api_out_json_string(&job->http.body, stream, strlen(stream));
	api_out_append(&job->http.body, ",\"Records\":[", 12);
	assert(!job->http.body.overflow);
	return job;
}

int
forward_job_add(struct forward_job *job, const char *key, size_t key_size,
		const char *hash_key, const uint8_t *data, size_t data_size, uint16_t tag)
{
	size_t before = job->http.body.size;
	struct api_out *out = &job->http.body;

	if (job->count == FORWARD_RECORDS_MAX)
		return -ENOSPC;
	api_out_append(out, job->count > 0 ? ",{\"Data\":\"" : "{\"Data\":\"",
		       job->count > 0 ? 10 : 9);
	api_out_base64(out, data, data_size);
	api_out_append(out, "\",\"PartitionKey\":", 17);
	api_out_json_string(out, key, key_size);
	if (hash_key != NULL) {
		api_out_append(out, ",\"ExplicitHashKey\":\"", 20);
		api_out_append(out, hash_key, strlen(hash_key));
		api_out_append(out, "\"", 1);
	}
	api_out_append(out, "}", 1);
	if (out->overflow) {
		out->size = before;
		out->overflow = false;
		return -ENOSPC;
	}
	job->tags[job->count++] = tag;
	return 0;
}

struct forward_job *
forward_job_get_read(struct forward *f, enum forward_read action, const char *target,
		     size_t target_size, const void *body, size_t body_size, const char *api_addr,
		     const char *access_key_id, uint64_t cookie)
{
	struct forward_job *job;

	/* The target is one dispatch knew (short), the body checked by the caller. */
	assert(action < FORWARD_READS && body_size <= FORWARD_BODY_SIZE_MAX &&
	       target_size < sizeof(((struct forward_job *)NULL)->http.target));
	job = forward_job_take(f, api_addr, access_key_id, cookie);
	if (job == NULL) {
		atomic_fetch_add_explicit(&f->reads[action][FORWARD_READ_BUSY], 1,
					  memory_order_relaxed);
		return NULL;
	}
	job->read = true;
	job->action = action;
	memcpy(job->http.target, target, target_size);
	job->http.target[target_size] = '\0';
	job->reply_max = FORWARD_READ_REPLY_SIZE_MAX;
	job->deadline_ns = clock_mono_ns() + (uint64_t)FORWARD_TIMEOUT_MS * 1000000u;
	job->http.body.capacity_max = FORWARD_BODY_SIZE_MAX;
	api_out_append(&job->http.body, body, body_size);
	assert(!job->http.body.overflow);
	return job;
}

long
forward_job_reply(const struct forward_job *job, const char **body, size_t *size)
{
	*body = job->reply;
	*size = job->reply_size;
	return job->status;
}

bool
forward_job_may_try_next(const struct forward_job *job)
{
	return job->read && job->outcome != FORWARD_OK && job->holder_failed &&
	       clock_mono_ns() < job->deadline_ns;
}

void
forward_job_resubmit(struct forward *f, struct forward_job *job, const char *api_addr)
{
	assert(job->in_use && job->read && job->outcome != FORWARD_OK && job->holder_failed);
	forward_http_target(&job->http, api_addr);
	job->status = 0;
	forward_job_submit(f, job);
}

void
forward_read_refused(struct forward *f, enum forward_read action)
{
	atomic_fetch_add_explicit(&f->reads[action][FORWARD_READ_UNSENT], 1, memory_order_relaxed);
}

uint32_t
forward_job_count(const struct forward_job *job)
{
	return job->count;
}

const char *
forward_job_body(const struct forward_job *job, size_t *size_out)
{
	*size_out = job->http.body.size;
	return job->http.body.data;
}

void
forward_job_submit(struct forward *f, struct forward_job *job)
{
	assert(job->in_use && (job->read || job->count > 0));
	if (!job->read) {
		job->http.body.capacity_max = FORWARD_BODY_SIZE_MAX;
		api_out_append(&job->http.body, "]}", 2);
	}
	pthread_mutex_lock(&f->lock);
	assert(f->queued_count < FORWARD_INFLIGHT_MAX);
	f->queued[f->queued_count++] = job;
	pthread_mutex_unlock(&f->lock);
	curl_multi_wakeup(f->multi);
}

uint32_t
forward_poll(struct forward *f, struct forward_job **done, uint32_t max)
{
	uint32_t n;
	uint64_t drain;
	bool more;

	/* Reset before looking: a ring after this read is seen by the next poll. */
	if (read(f->doorbell, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
		diag_debug("forward", "doorbell: %s", strerror(errno));
	pthread_mutex_lock(&f->lock);
	n = f->done_count < max ? f->done_count : max;
	memcpy(done, f->done, n * sizeof(*done));
	memmove(f->done, f->done + n, (f->done_count - n) * sizeof(*done));
	f->done_count -= n;
	more = f->done_count > 0;
	pthread_mutex_unlock(&f->lock);
	if (more)  /* The rest at the next poll. */
		eventfd_write(f->doorbell, 1);
	return n;
}

uint64_t
forward_job_cookie(const struct forward_job *job)
{
	return job->cookie;
}

enum forward_outcome
forward_job_outcome(const struct forward_job *job)
{
	return job->outcome;
}

uint16_t
forward_job_tag(const struct forward_job *job, uint32_t i)
{
	assert(i < job->count);
	return job->tags[i];
}

const struct forward_result *
forward_job_result(const struct forward_job *job, uint32_t i)
{
	assert(i < job->count);
	return &job->results[i];
}

void
forward_job_put(struct forward *f, struct forward_job *job)
{
	(void)f;
	job->in_use = false;
}

/* ---- The forwarder thread ----------------------------------------------------------- */

static size_t
forward_reply_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct forward_job *job = arg;
	size_t n = size * nmemb;

	if (job->reply_size + n > job->reply_max) {
		job->reply_overflow = true;
		return 0;  /* Ends the transfer: an answer this long is not one we asked for. */
	}
	memcpy(job->reply + job->reply_size, data, n);
	job->reply_size += n;
	return n;
}

/*
 * The Authorization header of a request as its caller's key (docs/CLUSTER.md: the
 * leader checks the same key and policies). "" with [auth] mode = off; -ENOKEY
 * when sigv4 does not know the key (the caller was verified with it here: the
 * nodes' keys differ).
 */
static int
forward_sign(struct forward *f, const struct forward_http *h, const char *amz_date,
	     char *out, size_t out_size)
{
	char payload_hex[SIGV4_HEX_SIZE];
	const char *secret = "presence";  /* [auth] mode = presence checks the header only. */
	struct sigv4_sign_header headers[] = {
		{ "content-type", h->content_type },
		{ "host", h->host },
		{ "x-amz-date", amz_date },
		{ "x-amz-target", h->target },
		{ FORWARD_HEADER_LOWER, "1" },
	};
	struct sigv4_sign sign = {
		.method = "POST", .canonical_uri = "/", .canonical_query = "",
		.headers = headers, .header_count = ARRAY_SIZE(headers),
		.payload_hex = payload_hex, .amz_date = amz_date, .region = f->region,
		.service = SIGV4_SERVICE_KINESIS, .access_key = h->access_key_id,
	};

	out[0] = '\0';
	if (f->auth == CONFIG_AUTH_OFF || h->access_key_id[0] == '\0')
		return 0;
	if (f->auth == CONFIG_AUTH_SIGV4) {
		secret = NULL;
		for (uint32_t i = 0; i < f->keys.count && secret == NULL; i++) {
			if (strcmp(f->keys.items[i].access_key_id, h->access_key_id) == 0)
				secret = f->keys.items[i].secret;
		}
		if (secret == NULL)
			return -ENOKEY;
	}
	sign.secret = secret;
	sigv4_sha256_hex(h->body.data, h->body.size, payload_hex);
	memcpy(out, "Authorization: ", 15);
	return sigv4_sign_authorization(&sign, out + 15, out_size - 15);
}

static int
forward_header(struct forward_http *h, const char *fmt, const char *value)
{
	char line[FORWARD_AUTHORIZATION_SIZE + 64];
	struct curl_slist *l;

	snprintf(line, sizeof(line), fmt, value);
	l = curl_slist_append(h->headers, line);
	if (l == NULL)
		return -ENOMEM;
	h->headers = l;
	return 0;
}

int
forward_http_alloc(struct forward_http *h, size_t body_size)
{
	h->body.data = malloc(body_size);
	h->body.capacity = body_size;
	h->easy = curl_easy_init();
	return h->body.data != NULL && h->easy != NULL ? 0 : -ENOMEM;
}

void
forward_http_free(struct forward *f, struct forward_http *h)
{
	if (h->easy != NULL) {
		curl_multi_remove_handle(f->multi, h->easy);  /* Not added: a no-op. */
		curl_easy_cleanup(h->easy);
	}
	curl_slist_free_all(h->headers);
	free(h->body.data);
}

int
forward_http_prepare(struct forward *f, struct forward_http *h)
{
	char amz_date[SIGV4_AMZ_DATE_SIZE];
	char authorization[FORWARD_AUTHORIZATION_SIZE];
	int err;

	sigv4_amz_date(clock_real_ns(), amz_date);
	err = forward_sign(f, h, amz_date, authorization, sizeof(authorization));
	curl_slist_free_all(h->headers);
	h->headers = NULL;
	if (err == 0)
		err = forward_header(h, "Content-Type: %s", h->content_type);
	if (err == 0)
		err = forward_header(h, "Host: %s", h->host);
	if (err == 0)
		err = forward_header(h, "X-Amz-Date: %s", amz_date);
	if (err == 0)
		err = forward_header(h, "X-Amz-Target: %s", h->target);
	if (err == 0)
		err = forward_header(h, FORWARD_HEADER ": %s", "1");
	/* No "Expect: 100-continue" round trip for bodies over 1 MiB. */
	if (err == 0)
		err = forward_header(h, "Expect:%s", "");
	if (err == 0 && authorization[0] != '\0')
		err = forward_header(h, "%s", authorization);
	if (err != 0)
		return err;
	curl_easy_setopt(h->easy, CURLOPT_URL, h->url);
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body.data);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body.size);
	curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
	return 0;
}

/* A put's timeout, or a read's try: FORWARD_READ_TRY_MS at most, within its deadline. */
static long
forward_timeout_ms(const struct forward_job *job)
{
	uint64_t now = clock_mono_ns();
	uint64_t left_ms;

	if (!job->read)
		return (long)FORWARD_TIMEOUT_MS;
	/* Rounded up: a try that times out ends past the deadline, and no other follows. */
	left_ms = job->deadline_ns > now ? (job->deadline_ns - now + 999999u) / 1000000u : 0;
	/* At least 1: libcurl's 0 is no timeout at all. */
	return (long)max_u64(1, min_u64(left_ms, FORWARD_READ_TRY_MS));
}

/* The job's request on its easy handle. */
static int
forward_prepare(struct forward *f, struct forward_job *job)
{
	int err = forward_http_prepare(f, &job->http);

	if (err != 0)
		return err;
	job->reply_size = 0;
	job->reply_overflow = false;
	curl_easy_setopt(job->http.easy, CURLOPT_TIMEOUT_MS, forward_timeout_ms(job));
	curl_easy_setopt(job->http.easy, CURLOPT_WRITEFUNCTION, forward_reply_write);
	curl_easy_setopt(job->http.easy, CURLOPT_WRITEDATA, job);
	curl_easy_setopt(job->http.easy, CURLOPT_PRIVATE, job);
	return 0;
}

static void
forward_count(struct forward *f, struct forward_job *job)
{
	if (job->read) {
		atomic_fetch_add_explicit(&f->reads[job->action][job->outcome], 1,
					  memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&f->requests[job->outcome], 1, memory_order_relaxed);
	for (uint32_t i = 0; i < job->count; i++) {
		int32_t e = job->results[i].error;

		atomic_fetch_add_explicit(&f->records[e == 0 ? FORWARD_REC_OK : e == -EPIPE ?
						      FORWARD_REC_THROTTLED : FORWARD_REC_FAILED],
					  1, memory_order_relaxed);
	}
}

enum forward_outcome
forward_outcome_of(CURLcode rc)
{
	if (rc == CURLE_OK)
		return FORWARD_OK;
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return FORWARD_REFUSED;
	return rc == CURLE_OPERATION_TIMEDOUT ? FORWARD_TIMEOUT : FORWARD_FAILED;
}

/* The transfer ended (`rc`): the job's outcome and results, then to the done queue. */
static void
forward_finish(struct forward *f, struct forward_job *job, CURLcode rc)
{
	long status = 0;

	/* Not the holder's doing: a request not made here, an answer too big to take. */
	job->holder_failed = rc != CURLE_OK && rc != CURLE_FAILED_INIT && !job->reply_overflow;
	if (rc == CURLE_OK && !job->reply_overflow && job->read) {
		/* Any answer is passed on as it came (an error included): the read went through. */
		curl_easy_getinfo(job->http.easy, CURLINFO_RESPONSE_CODE, &status);
		job->status = status;
		job->outcome = FORWARD_OK;
	} else if (rc == CURLE_OK && !job->reply_overflow) {
		curl_easy_getinfo(job->http.easy, CURLINFO_RESPONSE_CODE, &status);
		job->outcome = status == 200 ? FORWARD_OK : FORWARD_FAILED;
		forward_reply_parse(status, job->reply, job->reply_size, job->results, job->count);
	} else {
		job->outcome = rc == CURLE_OK ? FORWARD_FAILED : forward_outcome_of(rc);
		/* Refused: nothing reached the leader. */
		forward_fail_all(job->results, job->count,
				 job->outcome == FORWARD_REFUSED ? -EPIPE : -EIO);
	}
	if (job->outcome != FORWARD_OK)
		diag_debug("forward", "%s: %s (HTTP %ld)", job->http.url, curl_easy_strerror(rc),
			   status);
	forward_count(f, job);
	pthread_mutex_lock(&f->lock);
	f->done[f->done_count++] = job;
	pthread_mutex_unlock(&f->lock);
	eventfd_write(f->doorbell, 1);
}

/* Takes the queued jobs into the multi handle; a job that cannot start fails at once. */
static void
forward_start_queued(struct forward *f)
{
	struct forward_job *start[FORWARD_INFLIGHT_MAX];
	uint32_t n;

	pthread_mutex_lock(&f->lock);
	n = f->queued_count;
	memcpy(start, f->queued, n * sizeof(*start));
	f->queued_count = 0;
	pthread_mutex_unlock(&f->lock);
	for (uint32_t i = 0; i < n; i++) {
		if (forward_prepare(f, start[i]) != 0 ||
		    curl_multi_add_handle(f->multi, start[i]->http.easy) != CURLM_OK)
			forward_finish(f, start[i], CURLE_FAILED_INIT);
	}
}

static void *
forward_main(void *arg)
{
	struct forward *f = arg;

	prctl(PR_SET_NAME, "forwarder");
	for (;;) {
		CURLMsg *msg;
		int running;
		int left;
		bool stop;

		pthread_mutex_lock(&f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		if (stop)
			break;
		forward_start_queued(f);
		forward_streams_service(f);
		curl_multi_perform(f->multi, &running);
		while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
			struct forward_job *job = NULL;
			CURL *easy = msg->easy_handle;
			CURLcode rc = msg->data.result;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_multi_remove_handle(f->multi, easy);  /* msg is gone after this. */
			if (forward_stream_done(f, easy, rc))
				continue;
			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
			forward_finish(f, job, rc);
		}
		curl_multi_poll(f->multi, NULL, 0, FORWARD_POLL_MS, NULL);
	}
	return NULL;
}

/* ---- Open and close ------------------------------------------------------------------ */

static int
forward_alloc(struct forward *f)
{
	for (uint32_t i = 0; i < FORWARD_INFLIGHT_MAX; i++) {
		struct forward_job *job = &f->jobs[i];

		job->f = f;
		/* Touched only as far as answers reach: a put's stay under FORWARD_REPLY_SIZE_MAX. */
		job->reply = malloc(FORWARD_READ_REPLY_SIZE_MAX);
		if (forward_http_alloc(&job->http, FORWARD_BODY_SIZE_MAX) != 0 || job->reply == NULL)
			return -ENOMEM;
	}
	return 0;
}

int
forward_open(const struct sluice_config *config, struct forward **f_out)
{
	struct forward *f = calloc(1, sizeof(*f));
	int err = 0;

	if (f == NULL)
		return -ENOMEM;
	f->doorbell = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->auth = config->auth;
	snprintf(f->region, sizeof(f->region), "%s", config->region);
	if (config->auth == CONFIG_AUTH_SIGV4)
		err = sigv4_keys_parse(&f->keys, config->access_keys, config->region);
	if (err == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		err = -ENOMEM;
	if (err == 0 && (f->multi = curl_multi_init()) == NULL)
		err = -ENOMEM;
	if (err == 0)
		err = forward_alloc(f);
	if (err == 0)
		err = forward_streams_alloc(f);
	if (err == 0 && (f->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		err = -errno;
	if (err == 0) {
		err = -pthread_create(&f->thread, NULL, forward_main, f);
		f->started = err == 0;
	}
	if (err != 0) {
		forward_close(f);
		return err;
	}
	*f_out = f;
	return 0;
}

void
forward_close(struct forward *f)
{
	if (f == NULL)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->lock);
		f->stop = true;
		pthread_mutex_unlock(&f->lock);
		curl_multi_wakeup(f->multi);
		pthread_join(f->thread, NULL);
	}
	for (uint32_t i = 0; i < FORWARD_INFLIGHT_MAX; i++) {
		forward_http_free(f, &f->jobs[i].http);
		free(f->jobs[i].reply);
	}
	forward_streams_free(f);
	if (f->multi != NULL)
		curl_multi_cleanup(f->multi);
	if (f->doorbell >= 0)
		close(f->doorbell);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int
forward_doorbell_fd(const struct forward *f)
{
	return f->doorbell;
}

/* ---- /metrics -------------------------------------------------------------------------- */

void
forward_render_results(struct metrics_out *out, const char *family,
		       const char *const results[], const _Atomic uint64_t *counts, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		metrics_printf(out, "%s{result=\"%s\"} %llu\n", family, results[i],
			       (unsigned long long)atomic_load_explicit(&counts[i],
									memory_order_relaxed));
}

static void
forward_render_reads(struct forward *f, struct metrics_out *out,
		     const char *const outcomes[FORWARD_OUTCOMES])
{
	static const char *const actions[FORWARD_READS] = {
		[FORWARD_READ_ITERATOR] = "GetShardIterator", [FORWARD_READ_RECORDS] = "GetRecords",
		[FORWARD_READ_SUBSCRIBE] = "SubscribeToShard",
	};

	metrics_family(out, "sluice_forward_reads_total", "counter",
		       "Reads of a shard this node holds no replica of, passed through to a "
		       "replica holder, by how they ended (ok: answered, its answer passed on; "
		       "refused: per holder tried, the next one asked); "
		       "busy: not sent, FORWARD_INFLIGHT_MAX (SubscribeToShard: FORWARD_STREAMS_MAX) "
		       "in flight; unsent: refused here (no holder's address known).");
	for (uint32_t a = 0; a < FORWARD_READS; a++) {
		for (uint32_t r = 0; r < FORWARD_READ_RESULTS; r++)
			metrics_printf(out, "sluice_forward_reads_total{action=\"%s\",result=\"%s\"} "
				       "%llu\n", actions[a], r == FORWARD_READ_BUSY ? "busy" :
				       r == FORWARD_READ_UNSENT ? "unsent" : outcomes[r],
				       (unsigned long long)atomic_load_explicit(
					       &f->reads[a][r], memory_order_relaxed));
	}
}

void
forward_render_metrics(struct forward *f, struct metrics_out *out)
{
	static const char *const outcomes[FORWARD_OUTCOMES] = {
		[FORWARD_OK] = "ok", [FORWARD_REFUSED] = "refused",
		[FORWARD_TIMEOUT] = "timeout", [FORWARD_FAILED] = "failed",
	};
	static const char *const records[FORWARD_REC_RESULTS] = {
		[FORWARD_REC_OK] = "ok", [FORWARD_REC_THROTTLED] = "throttled",
		[FORWARD_REC_FAILED] = "failed",
	};

	if (f == NULL)
		return;
	metrics_family(out, "sluice_forward_requests_total", "counter",
		       "PutRecords sent to a shard's leader by how they ended; busy: not sent, "
		       "FORWARD_INFLIGHT_MAX in flight (its records failed throttled).");
	forward_render_results(out, "sluice_forward_requests_total", outcomes, f->requests,
			       FORWARD_OUTCOMES);
	metrics_printf(out, "sluice_forward_requests_total{result=\"busy\"} %llu\n",
		       (unsigned long long)atomic_load_explicit(&f->busy, memory_order_relaxed));
	forward_render_reads(f, out, outcomes);
	forward_streams_render_metrics(f, out);
	metrics_family(out, "sluice_forward_records_total", "counter",
		       "Records forwarded to a shard's leader by their result.");
	forward_render_results(out, "sluice_forward_records_total", records, f->records,
			       FORWARD_REC_RESULTS);
}
