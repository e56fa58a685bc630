/* harness.c - see harness.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "control/server_pool.h"
#include "nvme-log/log.h"
#include "tests/control/kinesis/harness.h"

#define HARNESS_OUT_MAX (32u << 20)
#define HARNESS_REPLY_WAIT_MS 60000

struct api_out *
api_call_out(struct api_call *call)
{
	return &call->out;
}

void
api_call_reply(struct api_call *call, int http_status)
{
	cr_assert(!call->replied, "a call was answered twice");
	call->replied = true;
	call->status = http_status;
}

void
api_call_error(struct api_call *call, int http_status, const char *type, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->message, sizeof(call->message), fmt, ap);
	va_end(ap);
	snprintf(call->type, sizeof(call->type), "%s", type);
	api_out_reset(&call->out);
	/* As the server writes it (server_call.c): no empty message; AWS's "Message" spelling. */
	api_out_printf(&call->out, "{\"__type\":");
	api_out_json_string(&call->out, type, strlen(type));
	if (call->message[0] != '\0') {
		api_out_printf(&call->out, strcmp(type, "SerializationException") == 0 ?
			       ",\"Message\":" : ",\"message\":");
		api_out_json_string(&call->out, call->message, strlen(call->message));
	}
	api_out_printf(&call->out, "}");
	api_call_reply(call, http_status);
}

int
api_call_stream_begin(struct api_call *call, const char *content_type, api_stream_fn fn,
		      void *ctx)
{
	cr_assert(!call->replied, "a streaming answer after an answer");
	cr_assert_str_eq(content_type, "application/vnd.amazon.eventstream");
	call->replied = true;
	call->status = 200;
	call->streaming = true;
	call->stream_fn = fn;
	call->stream_ctx = ctx;
	api_out_reset(&call->out);
	return 0;
}

int
api_call_stream_write(struct api_call *call, const void *data, size_t size)
{
	cr_assert(call->streaming && !call->stream_ended);
	if (call->stream_room != 0 && call->out.size + size > call->stream_room)
		return -EAGAIN;
	api_out_append(&call->out, data, size);
	cr_assert(!call->out.overflow);
	return 0;
}

bool
api_call_is_cbor(const struct api_call *call)
{
	return call->cbor;
}

size_t
api_call_stream_pending(const struct api_call *call)
{
	return call->out.size;
}

void
api_call_stream_end(struct api_call *call)
{
	cr_assert(call->streaming && !call->stream_ended, "a stream ended twice");
	call->stream_ended = true;
}

static void
harness_open_parts(struct harness *h)
{
	char log_dir[300];
	struct log_config lc;

	snprintf(log_dir, sizeof(log_dir), "%s/log", h->dir);
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = 8u << 20;
	lc.batch_size = 1088u << 10;
	lc.io = h->io;
	lc.writer_thread = h->io == NULL;
	cr_assert_eq(log_open(&lc, &h->log), 0);
	cr_assert_eq(kinesis_open_cluster(&h->config, h->log, h->etcd_endpoints, h->cluster, &h->k),
		     0);
}

void
harness_open(struct harness *h, uint32_t status_delay_ms)
{
	harness_open_io(h, status_delay_ms, NULL);
}

void
harness_open_io(struct harness *h, uint32_t status_delay_ms, struct log_io *io)
{
	const char *tmp = getenv("TMPDIR");
	struct config_errors errors = { .count = 0 };

	memset(h, 0, sizeof(*h));
	h->io = io;
	snprintf(h->dir, sizeof(h->dir), "%s/sluice-kinesis-XXXXXX", tmp != NULL ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(h->dir));
	config_defaults(&h->config);
	cr_assert_eq(config_set_value(&h->config, "server", "data_dir", h->dir, &errors), 0);
	h->config.stream_status_delay_ms = status_delay_ms;
	harness_open_parts(h);
}

void
harness_open_cluster(struct harness *h, uint32_t status_delay_ms, const char *etcd_endpoints,
		     const char *cluster)
{
	harness_open_io(h, status_delay_ms, NULL);
	harness_stop(h);
	h->etcd_endpoints = etcd_endpoints;
	h->cluster = cluster;
	harness_start(h);
}

void
harness_restart(struct harness *h)
{
	harness_stop(h);
	harness_start(h);
}

void
harness_stop(struct harness *h)
{
	kinesis_close(h->k);
	log_close(h->log);
}

void
harness_start(struct harness *h)
{
	harness_open_parts(h);
}

void
harness_close(struct harness *h)
{
	char cmd[400];

	kinesis_close(h->k);
	log_close(h->log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	cr_assert_eq(system(cmd), 0);
}

struct api_call *
harness_call(struct harness *h, const char *action, const char *body)
{
	struct api_call *call = calloc(1, sizeof(*call));
	char target[128];
	uint64_t end_ns;
	struct api_request req = {
		.target = target, .content_type = "application/x-amz-json-1.1",
		.body = (const uint8_t *)body, .body_size = strlen(body), .request_id = "test",
		.access_key_id = "",
	};

	cr_assert_not_null(call);
	snprintf(target, sizeof(target), "Kinesis_20131202.%s", action);
	req.target_size = strlen(target);
	req.content_type_size = strlen(req.content_type);
	req.now_ns = h->fixed_now_ns != 0 ? h->fixed_now_ns :
		     (uint64_t)((int64_t)clock_real_ns() + h->clock_offset_ms * 1000000);
	api_out_init(&call->out, HARNESS_OUT_MAX);
	call->cbor = h->cbor;
	kinesis_dispatch(h->k, call, &req);
	/* The deadline only bounds a hang: an fsync on a loaded shared disk may take seconds. */
	end_ns = clock_mono_ns() + HARNESS_REPLY_WAIT_MS * 1000000ull;
	while (!call->replied && clock_mono_ns() < end_ns) {
		if (h->io != NULL)
			log_writer_step(h->log, clock_real_ns());
		kinesis_poll(h->k, clock_real_ns());
		if (!call->replied)
			usleep(200);
	}
	cr_assert(call->replied, "%s got no reply", action);
	return call;
}

void
harness_call_free(struct api_call *call)
{
	api_out_release(&call->out);
	free(call);
}

cJSON *
harness_json(const struct api_call *call)
{
	cJSON *json;

	if (call->out.size == 0)
		return NULL;
	json = cJSON_ParseWithLength(call->out.data, call->out.size);
	cr_assert_not_null(json, "not JSON: %.*s", (int)call->out.size, call->out.data);
	return json;
}

void
harness_expect_error(struct harness *h, const char *action, const char *body, const char *type,
		     const char *message)
{
	struct api_call *call = harness_call(h, action, body);
	cJSON *json = harness_json(call);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(json, "__type");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(json, "message");

	if (m == NULL)
		m = cJSON_GetObjectItemCaseSensitive(json, "Message");
	cr_assert_eq(call->status, strcmp(type, "InternalFailure") == 0 ? 500 : 400,
		     "%s %s -> %d %.*s", action, body, call->status, (int)call->out.size,
		     call->out.data);
	cr_assert(cJSON_IsString(t) && strcmp(t->valuestring, type) == 0, "%s %s: %.*s", action,
		  body, (int)call->out.size, call->out.data);
	if (message != NULL)
		cr_assert(cJSON_IsString(m) && strcmp(m->valuestring, message) == 0,
			  "%s %s:\n got  %s\n want %s", action, body,
			  cJSON_IsString(m) ? m->valuestring : "(none)", message);
	cJSON_Delete(json);
	harness_call_free(call);
}

cJSON *
harness_ok(struct harness *h, const char *action, const char *body)
{
	struct api_call *call = harness_call(h, action, body);
	cJSON *json;

	cr_assert_eq(call->status, 200, "%s %.200s -> %d %.*s", action, body, call->status,
		     (int)call->out.size, call->out.data);
	json = harness_json(call);
	harness_call_free(call);
	return json;
}
