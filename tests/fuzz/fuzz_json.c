/*
 * fuzz_json: arbitrary request bodies through kinesis_dispatch() for every
 * action, over a real log and SQLite in a temp dir. Every request must get
 * exactly one reply whose body is JSON, and nothing may crash or leak.
 * The first input byte picks the action (from 0x80: a Firehose action); the rest is
 * the body.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/base64.h"
#include "common/clock.h"
#include "control/api.h"
#include "control/kinesis.h"
#include "control/server_cbor.h"
#include "nvme-log/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct api_call {
	struct api_out out;
	int replies;
	int status;
};

/* A plain growable api_out: the fuzzer judges the actions, not the server's buffers. */
static void
fuzz_out_reserve(struct api_out *out, size_t extra)
{
	size_t want = out->size + extra + 1;

	if (want <= out->capacity)
		return;
	if (want > out->capacity_max) {
		out->overflow = true;
		return;
	}
	out->capacity = want * 2 < out->capacity_max ? want * 2 : out->capacity_max;
	out->data = realloc(out->data, out->capacity);
	if (out->data == NULL)
		abort();
}

void
api_out_append(struct api_out *out, const void *data, size_t size)
{
	fuzz_out_reserve(out, size);
	if (out->overflow)
		return;
	memcpy(out->data + out->size, data, size);
	out->size += size;
}

void
api_out_printf(struct api_out *out, const char *fmt, ...)
{
	char buf[65536];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		abort(); /* The actions print bounded pieces. */
	api_out_append(out, buf, (size_t)n);
}

void
api_out_base64(struct api_out *out, const void *data, size_t size)
{
	char *text = malloc(base64_encoded_size(size));

	if (text == NULL)
		abort();
	api_out_append(out, text, base64_encode(data, size, text));
	free(text);
}

void
api_out_json_string(struct api_out *out, const char *text, size_t size)
{
	api_out_append(out, "\"", 1);
	for (size_t i = 0; i < size; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '"' || c == '\\')
			api_out_append(out, "\\", 1);
		if (c < 0x20)
			api_out_printf(out, "\\u%04x", c);
		else
			api_out_append(out, &text[i], 1);
	}
	api_out_append(out, "\"", 1);
}

struct api_out *
api_call_out(struct api_call *call)
{
	return &call->out;
}

void
api_call_reply(struct api_call *call, int http_status)
{
	call->replies++;
	call->status = http_status;
}

void
api_call_error(struct api_call *call, int http_status, const char *type, const char *fmt, ...)
{
	call->out.size = 0;
	api_out_printf(&call->out, "{\"__type\":\"%s\",\"message\":\"-\"}", type);
	(void)fmt;
	api_call_reply(call, http_status);
}

/* A streaming answer's client is always gone here: the action must let go of the call. */
int
api_call_stream_begin(struct api_call *call, const char *content_type, api_stream_fn fn,
		      void *ctx)
{
	(void)content_type, (void)fn, (void)ctx;
	call->replies++;
	call->status = 200;
	return -EPIPE;
}

int
api_call_stream_write(struct api_call *call, const void *data, size_t size)
{
	(void)call, (void)data, (void)size;
	abort();
}

/* JSON requests only: no event is ever translated to CBOR here (no stream begins). */
bool
api_call_is_cbor(const struct api_call *call)
{
	(void)call;
	return false;
}

int
server_cbor_answer_from_json(const char *json, size_t size, struct api_out *cbor)
{
	(void)json, (void)size, (void)cbor;
	abort();
}

/* A relayed CBOR subscription's request (cluster mode's forwarder: never here). */
int
server_cbor_request_to_json(const uint8_t *cbor, size_t size, struct api_out *json,
			    const char **error_out)
{
	(void)cbor, (void)size, (void)json, (void)error_out;
	abort();
}

size_t
api_call_stream_pending(const struct api_call *call)
{
	(void)call;
	abort();
}

void
api_call_stream_end(struct api_call *call)
{
	(void)call;
	abort();
}

static const char *const fuzz_actions[] = {
	"CreateStream", "DeleteStream", "DescribeStream", "DescribeStreamSummary", "ListStreams",
	"ListShards", "PutRecord", "PutRecords", "GetShardIterator", "GetRecords",
	"IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod", "AddTagsToStream",
	"ListTagsForStream", "RemoveTagsFromStream", "DescribeLimits", "UpdateStreamMode",
	"SplitShard", "Nope",
};

/* Delivery streams (control/firehose_api.c), picked by a first byte from 0x80. */
static const char *const fuzz_firehose_actions[] = {
	"CreateDeliveryStream", "DescribeDeliveryStream", "ListDeliveryStreams",
	"DeleteDeliveryStream", "PutRecord", "PutRecordBatch", "UpdateDestination",
};

static struct log *fuzz_log;
static struct kinesis *fuzz_k;

static char fuzz_dir[] = "/tmp/sluice-fuzz-json-XXXXXX";

/* The log and metadata live in a temp dir that goes away with the process. */
static void
fuzz_cleanup(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fuzz_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_json: could not remove %s\n", fuzz_dir);
}

static void
fuzz_open(void)
{
	char *dir = fuzz_dir;
	static char log_dir[64];
	struct sluice_config config;
	struct log_config lc;

	if (mkdtemp(dir) == NULL)
		abort();
	atexit(fuzz_cleanup);
	snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
	config_defaults(&config);
	snprintf(config.data_dir, sizeof(config.data_dir), "%s", dir);
	config.stream_status_delay_ms = 0;
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = 8u << 20;
	if (log_open(&lc, &fuzz_log) != 0 || kinesis_open(&config, fuzz_log, &fuzz_k) != 0)
		abort();
}

/*
 * Oracle for the one-pass PutRecords reader: whatever it accepts, cJSON must
 * read as the same records, with Data that the strict blob checks accept.
 */
static void
fuzz_fast_oracle(const uint8_t *body, size_t size)
{
	static struct kinesis_fast_put put;
	const cJSON *records;
	cJSON *json;

	if (kinesis_fast_put_parse(fuzz_k, body, size, &put) != 0)
		return;
	json = cJSON_ParseWithLength((const char *)body, size);
	records = cJSON_GetObjectItemCaseSensitive(json, "Records");
	if (json == NULL || cJSON_GetArraySize(records) != (int)put.count)
		abort();
	for (uint32_t i = 0; i < put.count; i++) {
		const cJSON *rec = cJSON_GetArrayItem(records, (int)i);
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(rec, "PartitionKey");
		const cJSON *blob = cJSON_GetObjectItemCaseSensitive(rec, "Data");
		const struct kinesis_fast_record *f = &put.records[i];

		if (!cJSON_IsString(key) || strlen(key->valuestring) != f->key_size ||
		    memcmp(key->valuestring, f->key, f->key_size) != 0 || !cJSON_IsString(blob) ||
		    strlen(blob->valuestring) != f->data_size ||
		    base64_scan(blob->valuestring, f->data_size) != f->data_size ||
		    f->data_size % 4 != 0)
			abort();
	}
	cJSON_Delete(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char target[64];
	struct api_call call = { .replies = 0 };
	struct api_request req = { .content_type = "application/x-amz-json-1.1",
				   .request_id = "fuzz", .access_key_id = "" };
	cJSON *json;

	if (fuzz_k == NULL)
		fuzz_open();
	if (size == 0)
		return 0;
	if (data[0] >= 0x80)
		snprintf(target, sizeof(target), "Firehose_20150804.%s",
			 fuzz_firehose_actions[(data[0] - 0x80) % ARRAY_SIZE(fuzz_firehose_actions)]);
	else
		snprintf(target, sizeof(target), "Kinesis_20131202.%s",
			 fuzz_actions[data[0] % ARRAY_SIZE(fuzz_actions)]);
	req.target = target;
	req.target_size = strlen(target);
	req.content_type_size = strlen(req.content_type);
	req.body = data + 1;
	req.body_size = size - 1;
	req.now_ns = clock_real_ns();
	if (strcmp(target, "Kinesis_20131202.PutRecords") == 0)
		fuzz_fast_oracle(req.body, req.body_size);
	call.out.capacity_max = 32u << 20;
	kinesis_dispatch(fuzz_k, &call, &req);
	for (int i = 0; call.replies == 0 && i < 100000; i++) {
		kinesis_poll(fuzz_k, clock_real_ns());
		if (call.replies == 0)
			usleep(100);
	}
	if (call.replies != 1)
		abort();
	if (call.out.size > 0) {
		json = cJSON_ParseWithLength(call.out.data, call.out.size);
		if (json == NULL)
			abort();
		cJSON_Delete(json);
	}
	free(call.out.data);
	return 0;
}
