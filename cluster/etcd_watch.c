/*
 * etcd_watch.c - watch streams (etcd.h): one libcurl easy handle per watch in
 * a multi handle of its own, so the caller waits with a timeout. The gateway
 * answers with one JSON object per line over a chunked response; objects span
 * writes and several may share one, so bytes are kept until a newline ends
 * one (cluster.md §1.2).
 *
 * A stopped member (SIGSTOP, a frozen VM) keeps its connections: the kernel
 * accepts and acknowledges for it, so neither connect nor TCP keepalive notices.
 * A stream not created in time goes to the next endpoint; a created stream that
 * is silent for a while is probed with a status request to its member on a
 * second handle in the same multi, and ended when that is not answered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cluster/etcd.h"
#include "cluster/etcd_int.h"
#include "common/clock.h"

/* One line of the stream may be this long (a revision's events); beyond, the watch fails. */
#define ETCD_WATCH_LINE_MAX (8u << 20)
/* A member whose packets are dropped is given up on after this (the stream itself has no bound). */
#define ETCD_WATCH_CONNECT_TIMEOUT_MS 2000L
/* etcd answers a create_request at once; not within this, the next endpoint is asked. */
#define ETCD_WATCH_CREATE_TIMEOUT_MS 2000u
/* A created stream silent this long has its member probed (etcd's own progress notes come
 * every 10 minutes by default); a probe not answered within its timeout ends the stream. */
#define ETCD_WATCH_SILENCE_MS 3000u
#define ETCD_WATCH_PROBE_TIMEOUT_MS 2000L

struct etcd_watch {
	struct etcd_endpoints ep;
	uint32_t endpoint;         /* The one the stream goes to. */
	uint32_t tries;            /* Endpoints asked so far (the stream's failover bound). */
	bool created;              /* etcd confirmed the watch: an end now is the caller's. */
	bool probing;              /* The probe is in the multi. */
	uint64_t started_ns;       /* This transfer's start. */
	uint64_t heard_ns;         /* The stream's last bytes, or the probe's last answer. */
	CURLM *multi;
	CURL *curl;
	CURL *probe;               /* Status requests to the stream's member while it is silent. */
	struct curl_slist *headers;
	char *body;                /* The create_request, sent once. */
	char *buf;                 /* Bytes received, not yet a whole line. */
	size_t size;
	size_t cap;
	bool overflow;
	bool done;                 /* The transfer ended. */
	struct etcd_event *events; /* The last batch handed out. */
	uint32_t event_count;
};

static size_t
etcd_watch_write(char *data, size_t size, size_t count, void *arg)
{
	struct etcd_watch *w = arg;
	size_t n = size * count;

	w->heard_ns = clock_mono_ns();
	if (w->size + n + 1 > ETCD_WATCH_LINE_MAX) {
		w->overflow = true;
		return 0;
	}
	if (w->size + n + 1 > w->cap) {
		size_t cap = w->cap == 0 ? 4096 : w->cap;
		char *grown;

		while (cap < w->size + n + 1)
			cap *= 2;
		grown = realloc(w->buf, cap);
		if (grown == NULL)
			return 0;
		w->buf = grown;
		w->cap = cap;
	}
	memcpy(w->buf + w->size, data, n);
	w->size += n;
	w->buf[w->size] = '\0';
	return n;
}

static void
etcd_watch_events_free(struct etcd_watch *w)
{
	for (uint32_t i = 0; i < w->event_count; i++) {
		free(w->events[i].kv.key);
		free(w->events[i].kv.value);
	}
	free(w->events);
	w->events = NULL;
	w->event_count = 0;
}

void
etcd_watch_close(struct etcd_watch *w)
{
	if (w == NULL)
		return;
	if (w->multi != NULL && w->curl != NULL)
		curl_multi_remove_handle(w->multi, w->curl);
	if (w->multi != NULL && w->probe != NULL)
		curl_multi_remove_handle(w->multi, w->probe);
	if (w->curl != NULL)
		curl_easy_cleanup(w->curl);
	if (w->probe != NULL)
		curl_easy_cleanup(w->probe);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	curl_slist_free_all(w->headers);
	etcd_watch_events_free(w);
	free(w->body);
	free(w->buf);
	free(w);
}

static char *
etcd_watch_request(const char *key, bool prefix, int64_t start_revision)
{
	cJSON *request = cJSON_CreateObject();
	cJSON *create = cJSON_CreateObject();
	char *body = NULL;

	if (request != NULL && create != NULL && etcd_add_key_range(create, key, prefix) &&
	    (start_revision == 0 || etcd_add_int64(create, "start_revision", start_revision)) &&
	    cJSON_AddItemToObject(request, "create_request", create))
		body = cJSON_PrintUnformatted(request);
	else
		cJSON_Delete(create);
	cJSON_Delete(request);
	return body;
}

/* (Re)starts the transfer on w->endpoint with the same request, nothing received yet. */
static int
etcd_watch_start(struct etcd_watch *w)
{
	char url[ETCD_URL_SIZE + 16];

	snprintf(url, sizeof(url), "%s/v3/watch", w->ep.urls[w->endpoint]);
	w->size = 0;
	w->done = false;
	w->tries++;
	w->started_ns = clock_mono_ns();
	w->heard_ns = w->started_ns;
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, w->body);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, etcd_watch_write);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, ETCD_WATCH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(w->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	return curl_multi_add_handle(w->multi, w->curl) == CURLM_OK ? 0 : -ENOMEM;
}

static size_t
etcd_watch_discard(char *data, size_t size, size_t count, void *arg)
{
	(void)data;
	(void)arg;
	return size * count;
}

/* Asks the stream's member for its status (answered by the member alone, no consensus). */
static int
etcd_watch_probe_start(struct etcd_watch *w)
{
	char url[ETCD_URL_SIZE + 32];

	snprintf(url, sizeof(url), "%s/v3/maintenance/status", w->ep.urls[w->endpoint]);
	curl_easy_setopt(w->probe, CURLOPT_URL, url);
	curl_easy_setopt(w->probe, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(w->probe, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(w->probe, CURLOPT_WRITEFUNCTION, etcd_watch_discard);
	curl_easy_setopt(w->probe, CURLOPT_TIMEOUT_MS, ETCD_WATCH_PROBE_TIMEOUT_MS);
	curl_easy_setopt(w->probe, CURLOPT_NOSIGNAL, 1L);
	if (curl_multi_add_handle(w->multi, w->probe) != CURLM_OK)
		return -ENOMEM;
	w->probing = true;
	return 0;
}

/*
 * The multi's finished transfers: the stream's end (w->done), the probe's
 * answer. False when the probe was not answered (the member stopped or gone).
 */
static bool
etcd_watch_collect(struct etcd_watch *w)
{
	bool answered = true;
	CURLMsg *msg;
	int queued;

	while ((msg = curl_multi_info_read(w->multi, &queued)) != NULL) {
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (msg->easy_handle == w->curl) {
			w->done = true;
			continue;
		}
		curl_easy_getinfo(w->probe, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result == CURLE_OK && status == 200)
			w->heard_ns = clock_mono_ns();
		else
			answered = false;
		curl_multi_remove_handle(w->multi, w->probe);
		w->probing = false;
	}
	return answered;
}

/* Milliseconds until the next of the stream's own deadlines (creation, silence). */
static int64_t
etcd_watch_due_ms(const struct etcd_watch *w, uint64_t now)
{
	uint64_t due = w->created ? w->heard_ns + ETCD_WATCH_SILENCE_MS * 1000000ull :
				    w->started_ns + ETCD_WATCH_CREATE_TIMEOUT_MS * 1000000ull;

	return due > now ? (int64_t)((due - now) / 1000000u) + 1 : 0;
}

/*
 * The stream ended, or did not start in time, before etcd created the watch
 * (refused, a member without a leader, a stopped one): the same request to the
 * next endpoint, each once. Nothing was
 * delivered, so nothing is skipped. False when every endpoint was asked.
 */
static bool
etcd_watch_fail_over(struct etcd_watch *w, const char *why)
{
	uint32_t from = w->endpoint;

	if (w->created || w->tries >= w->ep.count)
		return false;
	curl_multi_remove_handle(w->multi, w->curl);
	if (w->probing)
		curl_multi_remove_handle(w->multi, w->probe);
	w->probing = false;
	w->endpoint = (w->endpoint + 1) % w->ep.count;
	etcd_failover_note(w->ep.urls[from], w->ep.urls[w->endpoint], why);
	return etcd_watch_start(w) == 0;
}

int
etcd_watch_open(const char *endpoints, const char *key, bool prefix, int64_t start_revision,
		struct etcd_watch **watch_out)
{
	struct etcd_watch *w;
	int err = etcd_curl_init_once();

	if (err != 0)
		return err;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	err = etcd_endpoints_parse(&w->ep, endpoints);
	if (err != 0) {
		free(w);
		return err;
	}
	w->body = etcd_watch_request(key, prefix, start_revision);
	w->multi = curl_multi_init();
	w->curl = curl_easy_init();
	w->probe = curl_easy_init();
	w->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* A member without a leader ends the stream instead of going silent. */
	w->headers = w->headers == NULL ? NULL :
		     curl_slist_append(w->headers, "Grpc-Metadata-hasleader: true");
	if (w->body == NULL || w->multi == NULL || w->curl == NULL || w->probe == NULL ||
	    w->headers == NULL || etcd_watch_start(w) != 0) {
		etcd_watch_close(w);
		return -ENOMEM;
	}
	*watch_out = w;
	return 0;
}

/* One event object of a result into *ev. */
static int
etcd_watch_event_read(const cJSON *item, struct etcd_event *ev)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");

	/* PUT is the default: only "DELETE" is ever written (proto3). */
	ev->deleted = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
	return etcd_kv_read(cJSON_GetObjectItemCaseSensitive(item, "kv"), &ev->kv);
}

/* A whole line: a result with events (>0), a line without (0), or an end (<0). */
static int
etcd_watch_line(struct etcd_watch *w, const char *line)
{
	cJSON *answer = cJSON_Parse(line);
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(answer, "result");
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(result, "events");
	const cJSON *item;
	int64_t compact = 0;
	int n;
	int err = 0;

	if (answer == NULL)
		return -EPROTO;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "created")))
		w->created = true;
	if (result == NULL) {   /* {"error": {...}}: the stream's own error shape. */
		cJSON_Delete(answer);
		return -ECONNRESET;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "canceled"))) {
		err = etcd_get_int64(result, "compact_revision", &compact) && compact > 0 ?
		      -ERANGE : -ECONNRESET;
		cJSON_Delete(answer);
		return err;
	}
	n = cJSON_IsArray(events) ? cJSON_GetArraySize(events) : 0;
	w->events = n > 0 ? calloc((size_t)n, sizeof(*w->events)) : NULL;
	if (n > 0 && w->events == NULL)
		err = -ENOMEM;
	cJSON_ArrayForEach(item, events) {
		if (err != 0)
			break;
		err = etcd_watch_event_read(item, &w->events[w->event_count]);
		w->event_count++;
	}
	cJSON_Delete(answer);
	return err != 0 ? err : (int)w->event_count;
}

/* Takes the first whole line out of the buffer; false when there is none. */
static bool
etcd_watch_take_line(struct etcd_watch *w, char **line_out)
{
	char *nl = w->size > 0 ? memchr(w->buf, '\n', w->size) : NULL;
	size_t len;

	if (nl == NULL)
		return false;
	len = (size_t)(nl - w->buf);
	*line_out = strndup(w->buf, len);
	memmove(w->buf, nl + 1, w->size - len - 1);
	w->size -= len + 1;
	return true;
}

/*
 * The stream's own deadlines: not created in time, the next endpoint (false
 * when each was asked); silent too long, a probe (-ENOMEM when it cannot start).
 */
static int
etcd_watch_deadlines(struct etcd_watch *w, uint64_t now)
{
	if (etcd_watch_due_ms(w, now) > 0 || w->probing)
		return 0;
	if (!w->created)
		return etcd_watch_fail_over(w, "watch not created in time") ? 0 : -ECONNRESET;
	return etcd_watch_probe_start(w);
}

int
etcd_watch_next(struct etcd_watch *w, uint32_t timeout_ms, const struct etcd_event **events_out)
{
	uint64_t start = clock_mono_ns();

	etcd_watch_events_free(w);
	for (;;) {
		uint64_t now;
		char *line;
		int64_t left;
		int running = 0;
		int n;

		if (curl_multi_perform(w->multi, &running) != CURLM_OK || !etcd_watch_collect(w))
			return -ECONNRESET;
		while (etcd_watch_take_line(w, &line)) {
			if (line == NULL)
				return -ENOMEM;
			n = etcd_watch_line(w, line);
			free(line);
			if (n == -ECONNRESET && etcd_watch_fail_over(w, "watch refused"))
				break;   /* The rest of the buffer was the old stream's. */
			if (n != 0) {
				*events_out = w->events;
				return n;
			}
		}
		if (w->done && !w->overflow &&
		    etcd_watch_fail_over(w, "watch stream ended before created"))
			continue;
		if (w->done || w->overflow)
			return w->overflow ? -EPROTO : -ECONNRESET;
		now = clock_mono_ns();
		n = etcd_watch_deadlines(w, now);
		if (n != 0)
			return n;
		left = (int64_t)timeout_ms - (int64_t)((now - start) / 1000000u);
		if (left <= 0)
			return 0;
		if (!w->probing && etcd_watch_due_ms(w, now) < left)
			left = etcd_watch_due_ms(w, now);
		if (curl_multi_poll(w->multi, NULL, 0, (int)left, NULL) != CURLM_OK)
			return -ECONNRESET;
	}
}
