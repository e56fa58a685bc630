/*
 * kinesis_streams.c - the stream table (lookup, StreamName/StreamARN
 * resolution, status transitions) and the stream operations: CreateStream,
 * DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams. A stream's
 * settings are kinesis_settings.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "nvme-log/log.h"

static const char *const kinesis_modes[] = { "PROVISIONED", "ON_DEMAND", NULL };

const char *
kinesis_mode_name(enum metadata_mode mode)
{
	return kinesis_modes[mode == METADATA_ON_DEMAND ? 1 : 0];
}

/* StreamModeDetails{StreamMode}: shared with UpdateStreamMode. */
int
kinesis_mode_types(struct kinesis_req *r, const cJSON *item)
{
	return kv_type_check(r->call, cJSON_GetObjectItemCaseSensitive(item, "StreamMode"),
			     KV_STRING);
}

void
kinesis_mode_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(item, "StreamMode");
	const char *path = "streamModeDetails.streamMode";

	(void)r;
	if (mode == NULL || cJSON_IsNull(mode)) {
		kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	if (strcmp(mode->valuestring, "PROVISIONED") != 0 &&
	    strcmp(mode->valuestring, "ON_DEMAND") != 0)
		kv_errors_add(errors, mode->valuestring, true, path,
			      "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]");
}

enum metadata_mode
kinesis_mode_parse(const cJSON *details)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(details, "StreamMode");

	return mode != NULL && cJSON_IsString(mode) && strcmp(mode->valuestring, "ON_DEMAND") == 0 ?
	       METADATA_ON_DEMAND : METADATA_PROVISIONED;
}

/* ---- The stream table ---------------------------------------------------- */

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
	kinesis_stream_index_free(s);
	free(s->shards);
	memset(s, 0, sizeof(*s));
}

const char *
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

int
kinesis_stream_lookup(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		      const struct kv_value *arn, struct kinesis_stream_ref *ref)
{
	*ref = (struct kinesis_stream_ref){ .name = name->string, .size = name->size };
	if (name->json == NULL && arn->json == NULL) {
		kinesis_error(call, "InvalidArgumentException",
			      "Either StreamName or StreamARN must be provided.");
		return -EINVAL;
	}
	if (arn->json != NULL) {
		size_t arn_name_size = 0;
		const char *arn_name = kinesis_arn_name(k, arn->string, &arn_name_size);

		if (arn_name == NULL) {
			/* Another region's or account's stream: none here. */
			ref->name = arn->string;
			ref->size = arn->size;
			ref->foreign = true;
			return 0;
		}
		if (name->json != NULL && (name->size != arn_name_size ||
					   memcmp(name->string, arn_name, arn_name_size) != 0)) {
			kinesis_error(call, "InvalidArgumentException",
				      "StreamARN %s does not refer to stream %s.", arn->string,
				      name->string);
			return -EINVAL;
		}
		ref->name = arn_name;
		ref->size = arn_name_size;
	}
	ref->stream = kinesis_stream_find(k, ref->name, ref->size);
	/*
	 * Every way to a stream passes here, so the access check does too: another
	 * account's principal is answered AccessDeniedException before any other
	 * check of the request, and learns nothing of which streams exist. A
	 * consumer operation checks the consumer's policy once it is found.
	 */
	if (ref->stream != NULL && !k->authz.consumer &&
	    !kinesis_authorize(k, call, ref->stream, NULL, NULL))
		return -EACCES;
	if (ref->stream == NULL && !kinesis_authorize_missing(k, call, ref->name, ref->size))
		return -EACCES;
	return 0;
}

struct kinesis_stream *
kinesis_stream_resolve(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		       const struct kv_value *arn)
{
	struct kinesis_stream_ref ref;

	if (kinesis_stream_lookup(k, call, name, arn, &ref) != 0)
		return NULL;
	if (ref.foreign) {
		kinesis_error(call, "ResourceNotFoundException", "Stream %s not found.", ref.name);
		return NULL;
	}
	if (ref.stream == NULL)
		kinesis_error(call, "ResourceNotFoundException", "Stream %.*s under account %s not "
			      "found.", (int)ref.size, ref.name, k->config.account_id);
	return ref.stream;
}

uint32_t
kinesis_record_data_max(const struct kinesis *k, const struct kinesis_stream *s)
{
	uint32_t max = s->max_record_kib * 1024u;

	/* Any configured batch holds 1 MiB (CONFIG_LOG_BATCH_KB_MIN): only larger ones are checked. */
	if (max <= SLUICE_RECORD_DATA_SIZE_MAX ||
	    log_batch_size_for_record(max) > k->config.log_batch_size_kb * 1024u)
		return SLUICE_RECORD_DATA_SIZE_MAX;
	return max;
}

bool
kinesis_record_size_admit(struct kinesis *k, struct api_call *call, uint32_t kib)
{
	uint32_t need = log_batch_size_for_record(kib * 1024u);
	uint32_t need_kb = (need + 1023u) / 1024u;

	if (need <= k->config.log_batch_size_kb * 1024u)
		return true;
	kinesis_error(call, "InvalidArgumentException", "MaxRecordSizeInKiB %u does not fit this "
		      "endpoint's log batches: set [log] batch_size_kb to at least %u (it is %u).",
		      kib, need_kb, k->config.log_batch_size_kb);
	return false;
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
		/*
		 * A reshard is done once its parents' closes are recorded: look again in 1 ms
		 * (cluster mode: a cut made by another node, which may wait long for its
		 * acknowledgements, is looked at on KINESIS_CLUSTER_CUT_POLL_MS instead).
		 */
		if (s->status_next == KINESIS_ACTIVE && kinesis_stream_closing(s)) {
			s->status_due_ns = mono_ns + (k->mc != NULL ?
				KINESIS_CLUSTER_CUT_POLL_MS * 1000000ull : 1000000u);
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
		if (s->status == KINESIS_ACTIVE)
			s->shards_shown = s->shard_count;
	}
}

/* ---- CreateStream --------------------------------------------------------- */

static struct kinesis_stream *
kinesis_stream_slot(struct kinesis *k)
{
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (!k->streams[i].used)
			return &k->streams[i];
	return NULL;
}

/* Fills `s` and its shards for a new stream of `count` equal hash ranges. */
static int
kinesis_stream_build(struct kinesis *k, struct kinesis_stream *s, const struct kv_value *name,
		     uint32_t count, enum metadata_mode mode, uint64_t now_ms)
{
	s->shards = calloc(count, sizeof(*s->shards));
	if (s->shards == NULL)
		return -ENOMEM;
	memcpy(s->name, name->string, name->size);
	s->name[name->size] = '\0';
	s->name_size = name->size;
	snprintf(s->arn, sizeof(s->arn), "arn:aws:kinesis:%s:%s:stream/%s", k->config.region,
		 k->config.account_id, s->name);
	RAND_bytes((uint8_t *)&s->incarnation, sizeof(s->incarnation));
	s->incarnation &= INT64_MAX; /* SQLite integers are signed. */
	s->mode = mode;
	s->retention_hours = 24;
	s->max_record_kib = METADATA_MAX_RECORD_KIB_DEFAULT;
	s->created_ms = now_ms;
	s->shard_count = count;
	for (uint32_t i = 0; i < count; i++) {
		struct kinesis_shard *sh = &s->shards[i];

		sh->index = i;
		sh->start = hashkey_range_start(i, count);
		sh->end = i + 1 < count ? hashkey_range_start(i + 1, count) - 1 : HASHKEY_MAX;
		sh->parent = -1;
		sh->adjacent_parent = -1;
		sh->created_s = now_ms / 1000;
	}
	return 0;
}

bool
kinesis_stream_created_at(struct kinesis_req *r, const struct kinesis_stream *s,
			  const struct kv_value *created)
{
	if (created->json == NULL ||
	    (uint64_t)(created->seconds < 0 ? 0 : created->seconds) == s->created_ms / 1000)
		return true;
	kinesis_error(r->call, "ResourceNotFoundException", "Stream %s under account %s not "
		      "found.", s->name, r->k->config.account_id);
	return false;
}

/* SQLite first: the stream exists once its transaction commits. */
static int
kinesis_stream_store(struct kinesis *k, struct kinesis_stream *s, const struct metadata_tag *tags,
		     size_t tag_count)
{
	struct metadata_shard *shards = calloc(s->shard_count, sizeof(*shards));
	struct metadata_stream ms = {
		.incarnation = s->incarnation, .name = s->name, .mode = s->mode,
		.retention_hours = s->retention_hours, .created_ms = s->created_ms,
		.shard_count = s->shard_count, .max_record_kib = s->max_record_kib,
		.warm_mibps = s->warm_mibps,
	};
	int rc;

	if (shards == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->shard_count; i++) {
		shards[i] = (struct metadata_shard){
			.shard_index = i, .start = s->shards[i].start, .end = s->shards[i].end,
			.parent = -1, .adjacent_parent = -1, .created_s = s->shards[i].created_s,
		};
	}
	rc = kinesis_md_stream_create(k, &ms, shards, tags, tag_count);
	free(shards);
	if (rc != 0)
		return rc;
	s->stream_id = ms.stream_id;
	for (uint32_t i = 0; i < s->shard_count; i++)
		s->shards[i].log_id = LOG_SHARD_ID(s->stream_id, i);
	/* The route publisher learnt of it from the commit (METADATA_CHANGE_STREAM_CREATED). */
	return 0;
}

void
kinesis_status_schedule(struct kinesis *k, struct kinesis_stream *s, enum kinesis_status now,
			enum kinesis_status next)
{
	if (s->status_due_ns != 0)
		k->transitions--;
	s->status = now;
	s->status_next = next;
	s->status_due_ns = 0;
	if (k->config.stream_status_delay_ms == 0) {
		s->status = next;
		if (next == KINESIS_ACTIVE)
			s->shards_shown = s->shard_count;
		return;
	}
	s->status_due_ns = clock_mono_ns() + (uint64_t)k->config.stream_status_delay_ms * 1000000u;
	k->transitions++;
}

static bool
kinesis_create_admit(struct kinesis *k, struct api_call *call, const struct kv_value *name,
		     uint32_t count)
{
	if (kinesis_stream_find(k, name->string, name->size) != NULL) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s already "
			      "exists.", name->string, k->config.account_id);
		return false;
	}
	if ((uint64_t)k->shards_total + count > k->shard_limit) {
		kinesis_error(call, "LimitExceededException", "This request would exceed the shard "
			      "limit for the account %s in %s. Current shard count for the account: "
			      "%u. Limit: %u. Number of additional shards that would have resulted "
			      "from this request: %u. Refer to the AWS Service Limits page "
			      "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
			      "for current limits and how to request higher limits.",
			      k->config.account_id, k->config.region, k->shards_total,
			      k->shard_limit, count);
		return false;
	}
	if (kinesis_stream_slot(k) == NULL) {
		kinesis_error(call, "LimitExceededException", "This request would exceed the limit "
			      "of %u streams for the account %s.", SLUICE_STREAMS_MAX,
			      k->config.account_id);
		return false;
	}
	return true;
}

static void
kinesis_create(struct kinesis_req *r, uint32_t count)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const struct kv_value *name = &r->v[CREATE_STREAM_STREAM_NAME];
	const struct kv_value *details = &r->v[CREATE_STREAM_STREAM_MODE_DETAILS];
	const struct kv_value *tags_in = &r->v[CREATE_STREAM_TAGS];
	const struct kv_value *warm = &r->v[CREATE_STREAM_WARM_THROUGHPUT_MIBPS];
	struct metadata_tag tags[KINESIS_TAGS_PER_STREAM_MAX];
	size_t tag_count = 0;
	enum metadata_mode mode = details->json != NULL ? kinesis_mode_parse(details->json) :
				  METADATA_PROVISIONED;
	struct kinesis_stream *s;
	int rc;

	if (!kinesis_create_admit(k, call, name, count))
		return;
	if (tags_in->json != NULL) {
		bool ok;

		if (tags_in->size > KINESIS_TAGS_PER_STREAM_MAX) {
			kinesis_tags_too_many(k, call, "", name->string);
			return;
		}
		tag_count = kinesis_tags_collect(tags_in->json, tags, ARRAY_SIZE(tags), &ok);
		if (!ok) {
			kinesis_tags_invalid(call);
			return;
		}
	}
	if (r->v[CREATE_STREAM_MAX_RECORD_SIZE_IN_KIB].json != NULL &&
	    !kinesis_record_size_admit(k, call,
				       (uint32_t)r->v[CREATE_STREAM_MAX_RECORD_SIZE_IN_KIB].number))
		return;
	if (warm->json != NULL && !kinesis_warm_admit(r, "WarmThroughputMiBps", name->string, mode,
						      (uint32_t)warm->number))
		return;
	s = kinesis_stream_slot(k);
	rc = kinesis_stream_build(k, s, name, count, mode, kinesis_now_ms(r->req));
	if (rc == 0 && r->v[CREATE_STREAM_MAX_RECORD_SIZE_IN_KIB].json != NULL)
		s->max_record_kib = (uint32_t)r->v[CREATE_STREAM_MAX_RECORD_SIZE_IN_KIB].number;
	if (rc == 0 && warm->json != NULL)
		s->warm_mibps = (uint32_t)warm->number;
	if (rc == 0)
		rc = kinesis_stream_store(k, s, tags, tag_count);
	if (rc == 0)
		rc = kinesis_log_retention(k, s->stream_id, s->retention_hours);
	if (rc != 0) {
		if (rc != -EEXIST)   /* Cluster mode: a name taken through another node, no fault. */
			diag_error("kinesis", "CreateStream %s: %s", name->string, strerror(-rc));
		kinesis_stream_free(s);
		if (rc == -ENOSPC)   /* Not an internal failure: the operator can act on it. */
			kinesis_error(call, "LimitExceededException", "The appliance's disk is "
				      "full: delete a stream, or wait for retention to free space.");
		else if (rc == -EEXIST)   /* Cluster mode: created through another node. */
			kinesis_error(call, "ResourceInUseException", "Stream %s under account %s "
				      "already exists.", name->string, k->config.account_id);
		else
			kinesis_internal_error(call);
		return;
	}
	kinesis_stream_use(k, s);
	kinesis_stream_index(s);
	k->shards_total += count;
	kinesis_status_schedule(k, s, KINESIS_CREATING, KINESIS_ACTIVE);
	api_call_reply(call, 200);
}

void
kinesis_create_stream(struct kinesis_req *r)
{
	const struct kv_value *shard_count = &r->v[CREATE_STREAM_SHARD_COUNT];
	const struct kv_value *details = &r->v[CREATE_STREAM_STREAM_MODE_DETAILS];
	bool on_demand = details->json != NULL &&
			 kinesis_mode_parse(details->json) == METADATA_ON_DEMAND;

	/* ShardCount is optional in the model, required unless ON_DEMAND. */
	if (shard_count->json == NULL && !on_demand) {
		kinesis_error(r->call, "ValidationException", "1 validation error detected: Value "
			      "null at 'shardCount' failed to satisfy constraint: Member must not be "
			      "null");
		return;
	}
	kinesis_create(r, shard_count->json != NULL ? (uint32_t)shard_count->number :
		       KINESIS_ON_DEMAND_SHARDS);
}

/* ---- DeleteStream ------------------------------------------------------- */

int
kinesis_stream_delete_finish(struct kinesis *k, struct kinesis_stream *s)
{
	uint32_t stream_id = s->stream_id;
	int rc = metadata_stream_delete(k->md, stream_id);

	if (rc != 0)
		return rc;
	kinesis_policies_forget(k, stream_id);
	/* SQLite says gone; the log follows, or the next start retries it. */
	k->shards_total -= s->shard_count;
	if (s->status_due_ns != 0)
		k->transitions--;
	kinesis_stream_free(s);
	rc = log_stream_delete(k->log, stream_id);
	if (rc != 0 && rc != -ENOENT) {
		diag_warn("kinesis", "log_stream_delete(%u): %s (retried at start)", stream_id,
			  strerror(-rc));
		return 0;
	}
	return metadata_pending_delete_done(k->md, stream_id);
}

void
kinesis_delete_stream(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct kinesis_stream *s = r->stream;

	if (s->status == KINESIS_DELETING) {
		kinesis_error(r->call, "ResourceInUseException", "Stream %s under account %s not "
			      "ACTIVE, instead in state DELETING", s->name, k->config.account_id);
		return;
	}
	if (kinesis_consumer_count(k, s) > 0 && !r->v[DELETE_STREAM_ENFORCE_CONSUMER_DELETION].boolean) {
		kinesis_error(r->call, "ResourceInUseException", "Stream %s under account %s has "
			      "registered consumers: deregister them or set EnforceConsumerDeletion.",
			      s->name, k->config.account_id);
		return;
	}
	if (kinesis_md_stream_deleting(k, s) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	kinesis_consumers_stream_deleted(k, s->stream_id);
	kinesis_status_schedule(k, s, KINESIS_DELETING, KINESIS_DELETING);
	if (s->status_due_ns == 0 && kinesis_stream_delete_finish(k, s) != 0)
		diag_error("kinesis", "DeleteStream: finishing failed (retried at start)");
	api_call_reply(r->call, 200);
}

/* ---- DescribeStream, DescribeStreamSummary -------------------------------- */

static void
kinesis_out_stream_head(struct kinesis *k, struct api_out *out, const struct kinesis_stream *s)
{
	(void)k;
	api_out_printf(out, "\"StreamName\":\"%s\",\"StreamARN\":", s->name);
	api_out_json_string(out, s->arn, strlen(s->arn));
	api_out_printf(out, ",\"StreamStatus\":\"%s\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"},"
		       "\"RetentionPeriodHours\":%u,\"StreamCreationTimestamp\":",
		       kinesis_status_name(s->status), kinesis_mode_name(s->mode),
		       s->retention_hours);
	kinesis_out_timestamp(out, s->created_ms);
	api_out_printf(out, ",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":");
	kinesis_out_metrics(out, s->shard_metrics);
	api_out_printf(out, "}]");
	kinesis_out_encryption(out, s);
}

void
kinesis_describe_stream(struct kinesis_req *r)
{
	const struct kv_value *lim = &r->v[DESCRIBE_STREAM_LIMIT];
	const struct kv_value *start = &r->v[DESCRIBE_STREAM_EXCLUSIVE_START_SHARD_ID];
	const struct kinesis_stream *s = r->stream;
	struct api_out *out = api_call_out(r->call);
	uint32_t limit = lim->json != NULL && lim->number < 100 ? (uint32_t)lim->number : 100;
	uint32_t from = 0;
	uint32_t n = 0;

	if (start->json != NULL && kinesis_shard_id_parse(start->string, start->size, &from) == 0)
		from++;
	api_out_printf(out, "{\"StreamDescription\":{");
	kinesis_out_stream_head(r->k, out, s);
	api_out_printf(out, ",\"Shards\":[");
	for (uint32_t i = from; i < s->shards_shown && n < limit; i++, n++) {
		if (n > 0)
			api_out_printf(out, ",");
		kinesis_out_shard(out, &s->shards[i]);
	}
	api_out_printf(out, "],\"HasMoreShards\":%s",
		       from + n < s->shards_shown ? "true" : "false");
	/* Not AWS's: what the on-demand auto-scaler did (SDKs ignore unknown members). */
	if (s->mode == METADATA_ON_DEMAND) {
		api_out_printf(out, ",\"SluiceAutoScaling\":{\"Splits\":%u,\"Merges\":%u,"
			       "\"LastDecision\":", s->scale_splits, s->scale_merges);
		api_out_json_string(out, s->scale_last, strlen(s->scale_last));
		api_out_printf(out, "}");
	}
	api_out_printf(out, "}}");
	api_call_reply(r->call, 200);
}

static uint32_t
kinesis_open_shards(const struct kinesis_stream *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->shard_count; i++)
		n += !s->shards[i].closed;
	return n;
}

void
kinesis_describe_stream_summary(struct kinesis_req *r)
{
	const struct kinesis_stream *s = r->stream;
	struct api_out *out = api_call_out(r->call);

	api_out_printf(out, "{\"StreamDescriptionSummary\":{");
	kinesis_out_stream_head(r->k, out, s);
	api_out_printf(out, ",\"OpenShardCount\":%u,\"ConsumerCount\":%u,\"MaxRecordSizeInKiB\":%u",
		       s->status == KINESIS_CREATING ? 0 : kinesis_open_shards(s),
		       kinesis_consumer_count(r->k, s), s->max_record_kib);
	if (s->mode == METADATA_ON_DEMAND && s->warm_mibps != 0)
		kinesis_out_warm(out, s);
	api_out_printf(out, "}}");
	api_call_reply(r->call, 200);
}

/* ---- ListStreams ---------------------------------------------------------- */

static int
kinesis_stream_name_cmp(const void *a, const void *b)
{
	const struct kinesis_stream *sa = *(const struct kinesis_stream *const *)a;
	const struct kinesis_stream *sb = *(const struct kinesis_stream *const *)b;

	return strcmp(sa->name, sb->name);
}

int
kinesis_token_open(struct kinesis *k, struct api_call *call, const struct api_request *req,
		   const struct kv_value *text, struct iterator_token *token)
{
	uint64_t now_ms = kinesis_now_ms(req);

	if (iterator_token_decode(k->secret, text->string, text->size, token) != 0) {
		kinesis_error(call, "InvalidArgumentException", "Invalid NextToken.");
		return -EINVAL;
	}
	if (now_ms > token->issued_ms + KINESIS_TOKEN_TTL_MS) {
		kinesis_error(call, "ExpiredNextTokenException", "The nextToken has expired. "
			      "NextTokens are valid for %u milliseconds.", KINESIS_TOKEN_TTL_MS);
		return -EINVAL;
	}
	return 0;
}

static void
kinesis_out_summary(struct api_out *out, const struct kinesis_stream *s)
{
	api_out_printf(out, "{\"StreamName\":\"%s\",\"StreamARN\":", s->name);
	api_out_json_string(out, s->arn, strlen(s->arn));
	api_out_printf(out, ",\"StreamStatus\":\"%s\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"},"
		       "\"StreamCreationTimestamp\":", kinesis_status_name(s->status),
		       kinesis_mode_name(s->mode));
	kinesis_out_timestamp(out, s->created_ms);
	api_out_printf(out, "}");
}

/* Writes names and summaries of sorted[from .. from + count). */
static void
kinesis_list_streams_out(struct kinesis *k, struct api_call *call, const struct api_request *req,
			 struct kinesis_stream **sorted, uint32_t from, uint32_t count, bool more)
{
	struct api_out *out = api_call_out(call);

	api_out_printf(out, "{\"StreamNames\":[");
	for (uint32_t i = 0; i < count; i++)
		api_out_printf(out, "%s\"%s\"", i > 0 ? "," : "", sorted[from + i]->name);
	api_out_printf(out, "],\"HasMoreStreams\":%s,\"StreamSummaries\":[", more ? "true" : "false");
	for (uint32_t i = 0; i < count; i++) {
		if (i > 0)
			api_out_printf(out, ",");
		kinesis_out_summary(out, sorted[from + i]);
	}
	api_out_printf(out, "]");
	if (more) {
		char text[ITERATOR_TEXT_SIZE_MAX + 1];
		const struct kinesis_stream *last = sorted[from + count - 1];
		struct iterator_token token = {
			.issued_ms = kinesis_now_ms(req), .stream_id = last->stream_id,
			.incarnation = last->incarnation, .name_size = (uint8_t)last->name_size,
		};

		memcpy(token.name, last->name, last->name_size);
		iterator_token_encode(k->secret, &token, text);
		api_out_printf(out, ",\"NextToken\":\"%s\"", text);
	}
	api_out_printf(out, "}");
	api_call_reply(call, 200);
}

void
kinesis_list_streams(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct kinesis_stream **sorted = r->scratch->sorted;
	const struct kv_value *lim = &r->v[LIST_STREAMS_LIMIT];
	const struct kv_value *start = &r->v[LIST_STREAMS_EXCLUSIVE_START_STREAM_NAME];
	const struct kv_value *next = &r->v[LIST_STREAMS_NEXT_TOKEN];
	struct iterator_token token;
	const char *after = NULL;
	uint32_t count = 0;
	uint32_t from = 0;
	uint32_t limit;

	if (next->json != NULL) {
		if (kinesis_token_open(k, r->call, r->req, next, &token) != 0)
			return;
		after = token.name;
	} else if (start->json != NULL) {
		after = start->string;
	}
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (k->streams[i].used)
			sorted[count++] = &k->streams[i];
	qsort(sorted, count, sizeof(sorted[0]), kinesis_stream_name_cmp);
	while (after != NULL && from < count && strcmp(sorted[from]->name, after) <= 0)
		from++;
	limit = lim->json != NULL && lim->number < 100 ? (uint32_t)lim->number : 100;
	kinesis_list_streams_out(k, r->call, r->req, sorted, from,
				 count - from < limit ? count - from : limit, count - from > limit);
}
