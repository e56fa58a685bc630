/*
 * kinesis_main.c - the Kinesis side of control/api.h: open (SQLite -> memory,
 * re-apply retention and unfinished deletions to the log), dispatch by
 * X-Amz-Target, poll (log completions, status transitions, retention), and
 * the helpers every action shares (errors, stream lookup, routing, output).
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/seqnum.h"
#include "nvme-log/log.h"

#define KINESIS_TARGET_PREFIX "Kinesis_20131202."

struct kinesis_action {
	const char *name;
	kinesis_action_fn *fn;
};

static const struct kinesis_action kinesis_actions[] = {
	{ "AddTagsToStream", kinesis_add_tags },
	{ "CreateStream", kinesis_create_stream },
	{ "DecreaseStreamRetentionPeriod", kinesis_decrease_retention },
	{ "DeleteStream", kinesis_delete_stream },
	{ "DescribeLimits", kinesis_describe_limits },
	{ "DescribeStream", kinesis_describe_stream },
	{ "DescribeStreamSummary", kinesis_describe_stream_summary },
	{ "GetRecords", kinesis_get_records },
	{ "GetShardIterator", kinesis_get_shard_iterator },
	{ "IncreaseStreamRetentionPeriod", kinesis_increase_retention },
	{ "ListShards", kinesis_list_shards },
	{ "ListStreams", kinesis_list_streams },
	{ "ListTagsForStream", kinesis_list_tags },
	{ "PutRecord", kinesis_put_record },
	{ "PutRecords", kinesis_put_records },
	{ "RemoveTagsFromStream", kinesis_remove_tags },
	{ "MergeShards", kinesis_merge_shards },
	{ "SplitShard", kinesis_split_shard },
	{ "UpdateShardCount", kinesis_update_shard_count },
	{ "UpdateStreamMode", kinesis_update_stream_mode },
};

/* Real Kinesis actions this appliance does not implement (docs/API.md). */
static const char *const kinesis_unsupported[] = {
	"DeleteResourcePolicy", "DeregisterStreamConsumer", "DescribeAccountSettings",
	"DescribeStreamConsumer", "DisableEnhancedMonitoring", "EnableEnhancedMonitoring",
	"GetResourcePolicy", "ListStreamConsumers", "ListTagsForResource",
	"PutResourcePolicy", "RegisterStreamConsumer", "StartStreamEncryption",
	"StopStreamEncryption", "SubscribeToShard", "TagResource", "UntagResource",
	"UpdateAccountSettings", "UpdateMaxRecordSize",
	"UpdateStreamWarmThroughput",
};

/* ---- Replies ------------------------------------------------------------ */

void
kinesis_error(struct api_call *call, const char *type, const char *fmt, ...)
{
	char message[KINESIS_MESSAGE_SIZE * 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	api_call_error(call, 400, type, "%s", message);
}

/* AWS spells this one's key "Message", and sometimes sends none. */
void
kinesis_serialization_error(struct api_call *call, const char *message)
{
	struct api_out *out = api_call_out(call);

	api_out_printf(out, "{\"__type\":\"SerializationException\"");
	if (message != NULL) {
		api_out_printf(out, ",\"Message\":");
		api_out_json_string(out, message, strlen(message));
	}
	api_out_printf(out, "}");
	api_call_reply(call, 400);
}

void
kinesis_internal_error(struct api_call *call)
{
	api_out_printf(api_call_out(call), "{\"__type\":\"InternalFailure\"}");
	api_call_reply(call, 500);
}

static void
kinesis_unknown_operation(struct api_call *call, const char *message)
{
	struct api_out *out = api_call_out(call);

	api_out_printf(out, "{\"__type\":\"UnknownOperationException\"");
	if (message != NULL) {
		api_out_printf(out, ",\"message\":");
		api_out_json_string(out, message, strlen(message));
	}
	api_out_printf(out, "}");
	api_call_reply(call, 400);
}

/* ---- Streams, shards, routing -------------------------------------------- */

const char *
kinesis_status_name(enum kinesis_status status)
{
	static const char *const names[] = {
		[KINESIS_CREATING] = "CREATING", [KINESIS_ACTIVE] = "ACTIVE",
		[KINESIS_UPDATING] = "UPDATING", [KINESIS_DELETING] = "DELETING",
	};

	return names[status];
}

void
kinesis_stream_use(struct kinesis *k, struct kinesis_stream *s)
{
	uint32_t index = (uint32_t)(s - k->streams);

	assert(index < SLUICE_STREAMS_MAX);
	s->used = true;
	if (index + 1 > k->streams_high)
		k->streams_high = index + 1;
}

/* A linear scan bounded by streams_high: appliances hold a handful of streams. */
struct kinesis_stream *
kinesis_stream_find(struct kinesis *k, const char *name, size_t size)
{
	for (uint32_t i = 0; i < k->streams_high; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used && s->name_size == size && memcmp(s->name, name, size) == 0)
			return s;
	}
	return NULL;
}

struct kinesis_stream *
kinesis_stream_by_id(struct kinesis *k, uint32_t stream_id)
{
	for (uint32_t i = 0; i < k->streams_high; i++)
		if (k->streams[i].used && k->streams[i].stream_id == stream_id)
			return &k->streams[i];
	return NULL;
}

void
kinesis_stream_free(struct kinesis_stream *s)
{
	if (s->used)
		metrics_stream_forget(s->stream_id);
	free(s->open_index);
	free(s->shards);
	memset(s, 0, sizeof(*s));
}

/* The stream name inside a StreamARN of our region and account, or NULL. */
static const char *
kinesis_arn_name(const struct kinesis *k, const char *arn, size_t *size_out)
{
	char prefix[KINESIS_ARN_SIZE];
	int n = snprintf(prefix, sizeof(prefix), "arn:aws:kinesis:%s:%s:stream/", k->config.region,
			 k->config.account_id);

	if (n <= 0 || strncmp(arn, prefix, (size_t)n) != 0)
		return NULL;
	*size_out = strlen(arn + n);
	return arn + n;
}

struct kinesis_stream *
kinesis_stream_resolve(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		       const struct kv_value *arn)
{
	const char *text = name->string;
	size_t size = name->size;
	struct kinesis_stream *s;

	if (name->json == NULL && arn->json == NULL) {
		kinesis_error(call, "InvalidArgumentException",
			      "Either StreamName or StreamARN must be provided.");
		return NULL;
	}
	if (arn->json != NULL) {
		size_t arn_name_size = 0;
		const char *arn_name = kinesis_arn_name(k, arn->string, &arn_name_size);

		if (arn_name == NULL) {
			kinesis_error(call, "ResourceNotFoundException",
				      "Stream %s not found.", arn->string);
			return NULL;
		}
		if (name->json != NULL && (name->size != arn_name_size ||
					   memcmp(name->string, arn_name, arn_name_size) != 0)) {
			kinesis_error(call, "InvalidArgumentException",
				      "StreamARN %s does not refer to stream %s.", arn->string,
				      name->string);
			return NULL;
		}
		text = arn_name;
		size = arn_name_size;
	}
	s = kinesis_stream_find(k, text, size);
	if (s == NULL)
		kinesis_error(call, "ResourceNotFoundException", "Stream %.*s under account %s not "
			      "found.", (int)size, text, k->config.account_id);
	return s;
}

void
kinesis_shard_id_format(uint32_t index, char buf[KINESIS_SHARD_ID_SIZE])
{
	snprintf(buf, KINESIS_SHARD_ID_SIZE, "shardId-%012u", index);
}

int
kinesis_shard_id_parse(const char *text, size_t size, uint32_t *index_out)
{
	const char *dash = memchr(text, '-', size);
	uint64_t value = 0;
	size_t from = dash == NULL ? 0 : (size_t)(dash - text) + 1;

	if (from >= size)
		return -EINVAL;
	for (size_t i = from; i < size; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		value = value * 10 + (uint64_t)(text[i] - '0');
		if (value > INT32_MAX)
			return -EINVAL;
	}
	*index_out = (uint32_t)value;
	return 0;
}

static struct kinesis_shard *kinesis_shard_route_scan(struct kinesis_stream *s, hashkey_t key);

static int
kinesis_index_cmp(const void *a, const void *b, void *arg)
{
	const struct kinesis_shard *shards = arg;
	hashkey_t x = shards[*(const uint32_t *)a].start;
	hashkey_t y = shards[*(const uint32_t *)b].start;

	return x < y ? -1 : x > y;
}

void
kinesis_stream_index(struct kinesis_stream *s)
{
	uint32_t n = 0;

	/* SQLite keeps no close time: a parent closed when its children were created. */
	for (uint32_t i = 0; i < s->shard_count; i++) {
		const struct kinesis_shard *sh = &s->shards[i];

		if (sh->parent >= 0 && (uint64_t)sh->parent < s->shard_count)
			s->shards[sh->parent].closed_s = sh->created_s;
		if (sh->adjacent_parent >= 0 && (uint64_t)sh->adjacent_parent < s->shard_count)
			s->shards[sh->adjacent_parent].closed_s = sh->created_s;
	}
	free(s->open_index);
	s->open_count = 0;
	s->open_index = malloc((s->shard_count + 1) * sizeof(*s->open_index));
	if (s->open_index == NULL)
		return;
	for (uint32_t i = 0; i < s->shard_count; i++)
		if (!s->shards[i].closed)
			s->open_index[n++] = i;
	qsort_r(s->open_index, n, sizeof(*s->open_index), kinesis_index_cmp, s->shards);
	s->open_count = n;
}

struct kinesis_shard *
kinesis_shard_route(struct kinesis_stream *s, hashkey_t key)
{
	uint32_t lo = 0;
	uint32_t hi = s->open_count;

	/* Open shards by start: the last one starting at or before the key holds it. */
	while (s->open_index != NULL && lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct kinesis_shard *sh = &s->shards[s->open_index[mid]];

		if (key < sh->start)
			hi = mid;
		else if (key > sh->end)
			lo = mid + 1;
		else
			return sh;
	}
	return kinesis_shard_route_scan(s, key);
}

/* Without an index (no memory for it): binary search by index, then a scan. */
static struct kinesis_shard *
kinesis_shard_route_scan(struct kinesis_stream *s, hashkey_t key)
{
	uint32_t lo = 0;
	uint32_t hi = s->shard_count;

	/* Shards of a new stream are in hash order; closed ones (resharding) fall back. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct kinesis_shard *sh = &s->shards[mid];

		if (key < sh->start)
			hi = mid;
		else if (key > sh->end)
			lo = mid + 1;
		else if (!sh->closed)
			return sh;
		else
			break;
	}
	for (uint32_t i = 0; i < s->shard_count; i++) {
		struct kinesis_shard *sh = &s->shards[i];

		if (!sh->closed && key >= sh->start && key <= sh->end)
			return sh;
	}
	return NULL;
}

void
kinesis_out_timestamp(struct api_out *out, uint64_t ms)
{
	api_out_printf(out, "%llu.%03llu", (unsigned long long)(ms / 1000),
		       (unsigned long long)(ms % 1000));
}

void
kinesis_out_shard(struct api_out *out, const struct kinesis_shard *sh)
{
	char id[KINESIS_SHARD_ID_SIZE];
	char start[HASHKEY_DECIMAL_SIZE];
	char end[HASHKEY_DECIMAL_SIZE];
	char seq[SEQNUM_DECIMAL_SIZE];
	struct seqnum sn = {
		.shard_created_s = sh->created_s, .shard_index = sh->index,
		.seq = 0, .put_s = sh->created_s,
	};

	kinesis_shard_id_format(sh->index, id);
	hashkey_format_decimal(sh->start, start);
	hashkey_format_decimal(sh->end, end);
	seqnum_format(&sn, seq);
	api_out_printf(out, "{\"ShardId\":\"%s\",", id);
	if (sh->parent >= 0) {
		kinesis_shard_id_format((uint32_t)sh->parent, id);
		api_out_printf(out, "\"ParentShardId\":\"%s\",", id);
	}
	if (sh->adjacent_parent >= 0) {
		kinesis_shard_id_format((uint32_t)sh->adjacent_parent, id);
		api_out_printf(out, "\"AdjacentParentShardId\":\"%s\",", id);
	}
	api_out_printf(out, "\"HashKeyRange\":{\"StartingHashKey\":\"%s\",\"EndingHashKey\":\"%s\"},"
		       "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"%s\"", start, end, seq);
	if (sh->closed && !sh->close_pending) {
		/* A shard closed before its first record ends where it starts. */
		sn.seq = sh->seq_end == UINT64_MAX ? 0 : sh->seq_end;
		/* Arrival time sits below seq: the largest one bounds every record of the shard. */
		sn.put_s = SEQNUM_TIME_MAX;
		seqnum_format(&sn, seq);
		api_out_printf(out, ",\"EndingSequenceNumber\":\"%s\"", seq);
	}
	api_out_printf(out, "}}");
}

uint64_t
kinesis_now_ms(const struct api_request *req)
{
	return req->now_ns / 1000000u;
}

int
kinesis_log_retention(struct kinesis *k, uint32_t stream_id, uint32_t hours)
{
	int rc = log_retention_set(k->log, stream_id, hours);

	/* A log without retention yet keeps everything: SQLite still holds the value. */
	if (rc == -ENOSYS) {
		static bool warned;

		if (!warned)
			diag_warn("kinesis", "log retention not available; stream %u keeps all records",
				  stream_id);
		warned = true;
		return 0;
	}
	return rc;
}

void
kinesis_stream_status_tick(struct kinesis *k, uint64_t mono_ns)
{
	if (k->transitions == 0)
		return;
	for (uint32_t i = 0; i < k->streams_high; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (!s->used || s->status_due_ns == 0 || mono_ns < s->status_due_ns)
			continue;
		/* A reshard is done once its parents' closes are recorded: look again in 1 ms. */
		if (s->status_next == KINESIS_ACTIVE && kinesis_stream_closing(s)) {
			s->status_due_ns = mono_ns + 1000000u;
			continue;
		}
		s->status_due_ns = 0;
		k->transitions--;
		if (s->status_next == KINESIS_DELETING) {
			/* On failure the stream stays DELETING in SQLite; the next start finishes. */
			if (kinesis_stream_delete_finish(k, s) != 0)
				diag_error("kinesis", "stream %s: delete failed", s->name);
			continue;
		}
		s->status = s->status_next;
	}
}

/* ---- Open and close ---------------------------------------------------- */

static int
kinesis_load_stream(void *arg, const struct metadata_stream *ms)
{
	struct kinesis *k = arg;
	struct kinesis_stream *s = NULL;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX && s == NULL; i++)
		if (!k->streams[i].used)
			s = &k->streams[i];
	if (s == NULL || ms->shard_count == 0 || strlen(ms->name) > SLUICE_STREAM_NAME_SIZE_MAX)
		return -ENOSPC;
	s->shards = calloc(ms->shard_count, sizeof(*s->shards));
	if (s->shards == NULL)
		return -ENOMEM;
	kinesis_stream_use(k, s);
	s->stream_id = ms->stream_id;
	s->incarnation = ms->incarnation;
	s->name_size = strlen(ms->name);
	memcpy(s->name, ms->name, s->name_size + 1);
	snprintf(s->arn, sizeof(s->arn), "arn:aws:kinesis:%s:%s:stream/%s", k->config.region,
		 k->config.account_id, s->name);
	s->status = ms->deleting ? KINESIS_DELETING : KINESIS_ACTIVE;
	s->mode = ms->mode;
	s->retention_hours = ms->retention_hours;
	s->created_ms = ms->created_ms;
	s->shard_count = ms->shard_count;
	k->shards_total += ms->shard_count;
	return 0;
}

static int
kinesis_load_shard(void *arg, uint32_t stream_id, const struct metadata_shard *msh)
{
	struct kinesis *k = arg;
	struct kinesis_stream *s = kinesis_stream_by_id(k, stream_id);
	struct kinesis_shard *sh;

	if (s == NULL || msh->shard_index >= s->shard_count) {
		diag_error("kinesis", "metadata: shard %u of unknown stream %u", msh->shard_index,
			   stream_id);
		return -EIO;
	}
	sh = &s->shards[msh->shard_index];
	sh->index = msh->shard_index;
	sh->start = msh->start;
	sh->end = msh->end;
	sh->parent = msh->parent;
	sh->adjacent_parent = msh->adjacent_parent;
	sh->created_s = msh->created_s;
	sh->closed = msh->closed;
	sh->close_pending = msh->closing;
	sh->seq_end = msh->seq_end;
	sh->log_id = LOG_SHARD_ID(stream_id, msh->shard_index);
	return 0;
}

static int
kinesis_redo_delete(void *arg, uint32_t stream_id)
{
	struct kinesis *k = arg;
	int rc = log_stream_delete(k->log, stream_id);

	if (rc != 0 && rc != -ENOENT) {
		diag_warn("kinesis", "log_stream_delete(%u): %s", stream_id, strerror(-rc));
		return 0; /* Retried at the next start. */
	}
	return metadata_pending_delete_done(k->md, stream_id);
}

/* Makes the log agree with SQLite: finished deletions, retention. */
static int
kinesis_reconcile(struct kinesis *k)
{
	int rc;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used && s->status == KINESIS_DELETING) {
			rc = kinesis_stream_delete_finish(k, s);
			if (rc != 0)
				return rc;
		}
	}
	/* Reshards committed in SQLite whose parents the log did not close yet. */
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		for (uint32_t j = 0; s->used && j < s->shard_count; j++) {
			if (!s->shards[j].close_pending)
				continue;
			rc = kinesis_reshard_recover(k, s, j);
			/*
			 * A full disk must not keep the appliance down (space comes back
			 * through DeleteStream): the parent stays closing, redone next start.
			 */
			if (rc != 0 && rc != -ENOSPC)
				return rc;
		}
	}
	rc = metadata_pending_deletes(k->md, kinesis_redo_delete, k);
	for (uint32_t i = 0; rc == 0 && i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used)
			rc = kinesis_log_retention(k, s->stream_id, s->retention_hours);
	}
	return rc;
}

static int
kinesis_alloc(struct kinesis *k)
{
	k->streams = calloc(SLUICE_STREAMS_MAX, sizeof(*k->streams));
	k->pending = calloc(KINESIS_PENDING_MAX, sizeof(*k->pending));
	k->results = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
			    sizeof(*k->results));
	k->batched = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
			    sizeof(*k->batched));
	k->batch_first = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
				sizeof(*k->batch_first));
	k->waits = calloc(KINESIS_PUT_WAITS_MAX, sizeof(*k->waits));
	k->scratch_size = k->config.request_body_size_max;
	k->scratch = malloc(k->scratch_size);
	if (k->streams == NULL || k->pending == NULL || k->results == NULL || k->scratch == NULL ||
	    k->batched == NULL || k->batch_first == NULL || k->waits == NULL)
		return -ENOMEM;
	static_assert(CONFIG_LOG_BATCHES_MIN >= KINESIS_PUT_RECORDS_MAX,
		      "one PutRecords to KINESIS_PUT_RECORDS_MAX shards fits the API's batches");
	static_assert(KINESIS_PUT_RECORDS_MAX <= UINT16_MAX, "result indexes are 16-bit");
	for (uint32_t i = 0; i < KINESIS_PENDING_MAX; i++) {
		size_t at = (size_t)i * KINESIS_PUT_RECORDS_MAX;

		k->pending[i].results = &k->results[at];
		k->pending[i].batched = &k->batched[at];
		k->pending[i].batch_first = &k->batch_first[at];
	}
	return 0;
}

/* The actions get their own API series (metrics.h); the rest count as "Other". */
static void
kinesis_metrics_register(void)
{
	static const char *names[ARRAY_SIZE(kinesis_actions)];

	static_assert(ARRAY_SIZE(kinesis_actions) <= METRICS_API_OPS_MAX, "each has series");
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_actions); i++)
		names[i] = kinesis_actions[i].name;
	metrics_api_ops_register(names, ARRAY_SIZE(kinesis_actions));
}

int
kinesis_open(const struct sluice_config *config, struct log *log, struct kinesis **k_out)
{
	struct kinesis *k = calloc(1, sizeof(*k));
	int rc;

	if (k == NULL)
		return -ENOMEM;
	k->config = *config;
	k->log = log;
	kinesis_metrics_register();
	k->shard_limit = config->log_shards_max < SLUICE_SHARDS_MAX ? config->log_shards_max :
			 SLUICE_SHARDS_MAX;
	rc = kinesis_alloc(k);
	if (rc == 0)
		rc = metadata_open(config->data_dir, &k->md);
	if (rc != 0)
		goto out_free;
	rc = metadata_secret(k->md, k->secret, sizeof(k->secret));
	if (rc == 0)
		rc = metadata_load(k->md, kinesis_load_stream, kinesis_load_shard, k);
	for (uint32_t i = 0; rc == 0 && i < SLUICE_STREAMS_MAX; i++)
		if (k->streams[i].used)
			kinesis_stream_index(&k->streams[i]);
	if (rc == 0)
		rc = kinesis_reconcile(k);
	if (rc == 0)
		rc = log_producer_open(log, &k->producer);
	if (rc != 0)
		goto out_free;
	rc = log_reader_open(log, &k->reader);
	if (rc != 0)
		goto out_close_producer;
	RAND_bytes((uint8_t *)&k->nonce, sizeof(k->nonce));
	k->retention_due_ns = clock_mono_ns() + (uint64_t)config->retention_check_s * 1000000000u;
	*k_out = k;
	return 0;

out_close_producer:
	log_producer_close(k->producer);
out_free:
	k->producer = NULL;
	kinesis_close(k);
	return rc;
}

/* Waits (bounded) for batches still in the log so the producer closes idle. */
static void
kinesis_drain(struct kinesis *k)
{
	for (int i = 0; i < 5000 && k->pending_count > 0; i++) {
		struct log_completion done[64];
		uint32_t n = log_completions_poll(k->producer, done, 64);

		for (uint32_t j = 0; j < n; j++) {
			struct kinesis_pending *p = &k->pending[done[j].cookie >> 32];

			if (p->call != NULL && --p->batches_left == 0) {
				p->call = NULL; /* The server is gone: no reply. */
				k->pending_count--;
			}
		}
		if (n == 0)
			usleep(1000);
	}
}

void
kinesis_close(struct kinesis *k)
{
	if (k == NULL)
		return;
	kinesis_reshard_stop(k);
	if (k->producer != NULL) {
		kinesis_drain(k);
		log_producer_close(k->producer);
	}
	if (k->reader != NULL)
		log_reader_close(k->reader);
	for (uint32_t i = 0; k->streams != NULL && i < SLUICE_STREAMS_MAX; i++)
		if (k->streams[i].used)
			kinesis_stream_free(&k->streams[i]);
	metadata_close(k->md);
	free(k->streams);
	free(k->pending);
	free(k->waits);
	free(k->results);
	free(k->batched);
	free(k->batch_first);
	free(k->scratch);
	free(k);
}

/* ---- Dispatch and poll -------------------------------------------------- */

int
kinesis_event_fd(const struct kinesis *k)
{
	return log_producer_event_fd(k->producer);
}

void
kinesis_dispatch(struct kinesis *k, struct api_call *call, const struct api_request *req)
{
	size_t prefix = strlen(KINESIS_TARGET_PREFIX);
	const char *action;
	size_t size;

	kinesis_stream_status_tick(k, clock_mono_ns());
	if (req->target == NULL || req->target_size <= prefix ||
	    memcmp(req->target, KINESIS_TARGET_PREFIX, prefix) != 0) {
		kinesis_unknown_operation(call, NULL);
		return;
	}
	action = req->target + prefix;
	size = req->target_size - prefix;
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_actions); i++) {
		if (strlen(kinesis_actions[i].name) == size &&
		    memcmp(kinesis_actions[i].name, action, size) == 0) {
			kinesis_actions[i].fn(k, call, req);
			return;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_unsupported); i++) {
		if (strlen(kinesis_unsupported[i]) == size &&
		    memcmp(kinesis_unsupported[i], action, size) == 0) {
			char message[128];

			snprintf(message, sizeof(message), "%s is not supported by this endpoint.",
				 kinesis_unsupported[i]);
			kinesis_unknown_operation(call, message);
			return;
		}
	}
	kinesis_unknown_operation(call, NULL);
}

/* Resets the producer's eventfd so a level-triggered loop does not spin. */
static void
kinesis_event_clear(struct kinesis *k)
{
	struct pollfd pfd = { .fd = log_producer_event_fd(k->producer), .events = POLLIN };
	uint64_t value;

	if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0) {
		ssize_t n = read(pfd.fd, &value, sizeof(value));

		(void)n;
	}
}

void
kinesis_poll(struct kinesis *k, uint64_t now_ns)
{
	uint64_t mono = clock_mono_ns();

	(void)now_ns;
	kinesis_event_clear(k);
	kinesis_put_poll(k);
	kinesis_reshard_poll(k);
	kinesis_autoscale_tick(k, mono, clock_real_ns());
	kinesis_stream_status_tick(k, mono);
	if (mono >= k->retention_due_ns) {
		int rc = log_retention_run(k->log, clock_real_ns());

		if (rc != 0 && rc != -ENOSYS)
			diag_warn("kinesis", "log_retention_run: %s", strerror(-rc));
		metadata_reserve_renew(k->md);  /* A no-op while held. */
		k->retention_due_ns = mono + (uint64_t)k->config.retention_check_s * 1000000000u;
	}
}

int
kinesis_poll_timeout_ms(const struct kinesis *k, uint64_t now_ns)
{
	uint64_t mono = clock_mono_ns();
	uint64_t due = k->retention_due_ns;

	(void)now_ns;
	for (uint32_t i = 0; k->transitions > 0 && i < k->streams_high; i++)
		if (k->streams[i].used && k->streams[i].status_due_ns != 0)
			due = min_u64(due, k->streams[i].status_due_ns);
	/* Completions wake us through the event fd; a short tick is a safety net. */
	if (k->pending_count > 0)
		due = min_u64(due, mono + 10000000u);
	if (k->config.autoscale_window_s != 0)
		due = min_u64(due, k->autoscale_due_ns);
	/* Parent closes finish on the closer thread: look again soon. */
	if (k->closes_pending > 0)
		due = min_u64(due, mono + 1000000u);
	if (due <= mono)
		return 0;
	return (int)min_u64((due - mono + 999999) / 1000000, 60000);
}
