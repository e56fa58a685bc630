/*
 * kinesis_settings.c - a stream's settings and the account's: retention
 * (through the log), capacity mode, enhanced (shard-level) monitoring, the
 * largest record, warm throughput; DescribeLimits and the account settings.
 * Every setting is written to SQLite first, then memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "control/kinesis.h"
#include "control/metrics.h"

/* ---- Retention, capacity mode, limits ---------------------------------------- */

#define KINESIS_RETENTION_MIN 24u
#define KINESIS_RETENTION_MAX 8760u

static void
kinesis_retention(struct kinesis_req *r, bool increase)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct kinesis_stream *s = r->stream;
	uint32_t hours = (uint32_t)r->v[RETENTION_RETENTION_PERIOD_HOURS].number;
	int rc;

	if (hours < KINESIS_RETENTION_MIN) {
		kinesis_error(call, "InvalidArgumentException", "Minimum allowed retention period "
			      "is %u hours. Requested retention period (%u hours) is too short.",
			      KINESIS_RETENTION_MIN, hours);
		return;
	}
	if (hours > KINESIS_RETENTION_MAX) {
		kinesis_error(call, "InvalidArgumentException", "Maximum allowed retention period "
			      "is %u hours. Requested retention period (%u hours) is too long.",
			      KINESIS_RETENTION_MAX, hours);
		return;
	}
	if (increase ? hours < s->retention_hours : hours > s->retention_hours) {
		kinesis_error(call, "InvalidArgumentException", "Requested retention period (%u "
			      "hours) for stream %s can not be %s than existing retention period "
			      "(%u hours). Use %s API.", hours, s->name,
			      increase ? "shorter" : "longer", s->retention_hours,
			      increase ? "DecreaseRetentionPeriod" : "IncreaseRetentionPeriod");
		return;
	}
	/* SQLite first; the log gets the same value now and again at every start. */
	rc = kinesis_md_retention_set(k, s, hours);
	if (rc == 0)
		rc = kinesis_log_retention(k, s->stream_id, hours);
	if (rc != 0) {
		diag_error("kinesis", "retention of %s: %s", s->name, strerror(-rc));
		kinesis_internal_error(call);
		return;
	}
	s->retention_hours = hours;
	api_call_reply(call, 200);
}

void
kinesis_increase_retention(struct kinesis_req *r)
{
	kinesis_retention(r, true);
}

void
kinesis_decrease_retention(struct kinesis_req *r)
{
	kinesis_retention(r, false);
}

void
kinesis_describe_limits(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	uint32_t open = 0;
	uint32_t on_demand = 0;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		const struct kinesis_stream *s = &k->streams[i];

		if (!s->used)
			continue;
		on_demand += s->mode == METADATA_ON_DEMAND;
		for (uint32_t j = 0; j < s->shard_count; j++)
			open += !s->shards[j].closed;
	}
	api_out_printf(api_call_out(r->call), "{\"ShardLimit\":%u,\"OpenShardCount\":%u,"
		       "\"OnDemandStreamCount\":%u,\"OnDemandStreamCountLimit\":%u}",
		       k->shard_limit, open, on_demand, SLUICE_STREAMS_MAX);
	api_call_reply(r->call, 200);
}

void
kinesis_update_stream_mode(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const cJSON *details = r->v[UPDATE_STREAM_MODE_STREAM_MODE_DETAILS].json;
	const struct kv_value no_name = { .json = NULL };
	struct kinesis_stream *s;

	s = kinesis_stream_resolve(k, call, &no_name, &r->v[UPDATE_STREAM_MODE_STREAM_ARN]);
	if (s == NULL)
		return;
	if (s->status != KINESIS_ACTIVE) {
		kinesis_error(call, "ResourceInUseException", "Stream %s under account %s not ACTIVE, "
			      "instead in state %s", s->name, k->config.account_id,
			      kinesis_status_name(s->status));
		return;
	}
	if (kinesis_md_mode_set(k, s, kinesis_mode_parse(details)) != 0) {
		kinesis_internal_error(call);
		return;
	}
	s->mode = kinesis_mode_parse(details);
	kinesis_status_schedule(k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	api_call_reply(call, 200);
}


/* ---- Enhanced monitoring ---------------------------------------------------- */

/* AWS's MetricsName values in enum kinesis_metric bit order; "ALL" is every bit. */
static const char *const kinesis_metric_names[] = {
	"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
	"IteratorAgeMilliseconds",
};

static_assert(KINESIS_METRICS_ALL == (1u << ARRAY_SIZE(kinesis_metric_names)) - 1,
	      "a bit per metric name");

/* The bits of one MetricsName, 0 when it is none. */
static uint32_t
kinesis_metric_bits(const char *name)
{
	if (strcmp(name, "ALL") == 0)
		return KINESIS_METRICS_ALL;
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_metric_names); i++)
		if (strcmp(name, kinesis_metric_names[i]) == 0)
			return 1u << i;
	return 0;
}

void
kinesis_metrics_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	char rendered[KINESIS_MESSAGE_SIZE];
	const cJSON *child;
	bool ok = true;

	(void)r;
	cJSON_ArrayForEach(child, item)
		ok = ok && cJSON_IsString(child) && kinesis_metric_bits(child->valuestring) != 0;
	kv_list_render(item, rendered, sizeof(rendered));
	if (!ok)
		kv_errors_add(errors, rendered, true, "shardLevelMetrics", "Member must satisfy "
			      "constraint: [Member must satisfy enum value set: [IncomingBytes, "
			      "IncomingRecords, OutgoingBytes, OutgoingRecords, "
			      "WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, "
			      "IteratorAgeMilliseconds, ALL]]");
}

void
kinesis_out_metrics(struct api_out *out, uint32_t metrics)
{
	bool first = true;

	api_out_printf(out, "[");
	for (size_t i = 0; i < ARRAY_SIZE(kinesis_metric_names); i++) {
		if ((metrics & (1u << i)) == 0)
			continue;
		api_out_printf(out, "%s\"%s\"", first ? "" : ",", kinesis_metric_names[i]);
		first = false;
	}
	api_out_printf(out, "]");
}

uint32_t
kinesis_enhanced_metrics(const struct kinesis *k, uint32_t stream_id)
{
	for (uint32_t i = 0; i < k->streams_high; i++)
		if (k->streams[i].used && k->streams[i].stream_id == stream_id)
			return k->streams[i].shard_metrics;
	return 0;
}

/* Opens an answer with {"StreamName": ..., "StreamARN": ... */
static void
kinesis_out_name_arn(struct api_out *out, const struct kinesis_stream *s)
{
	api_out_printf(out, "{\"StreamName\":");
	api_out_json_string(out, s->name, s->name_size);
	api_out_printf(out, ",\"StreamARN\":");
	api_out_json_string(out, s->arn, strlen(s->arn));
}

/* Settings change only on an ACTIVE stream, or the call answers ResourceInUse. */
static bool
kinesis_settings_admit(struct kinesis_req *r, const struct kinesis_stream *s)
{
	if (s->status == KINESIS_ACTIVE)
		return true;
	kinesis_error(r->call, "ResourceInUseException", "Stream %s under account %s not ACTIVE, "
		      "instead in state %s", s->name, r->k->config.account_id,
		      kinesis_status_name(s->status));
	return false;
}

/* Enable (`on`) or disable the listed metrics; answers the sets before and after. */
static void
kinesis_monitoring(struct kinesis_req *r, bool on)
{
	struct kinesis_stream *s = r->stream;
	struct api_out *out = api_call_out(r->call);
	uint32_t before = s->shard_metrics;
	uint32_t listed = 0;
	uint32_t after;
	const cJSON *child;

	if (!kinesis_settings_admit(r, s))
		return;
	cJSON_ArrayForEach(child, r->v[MONITORING_SHARD_LEVEL_METRICS].json)
		listed |= kinesis_metric_bits(child->valuestring);
	after = on ? before | listed : before & ~listed;
	if (after != before &&
	    kinesis_md_setting_set(r->k, s, METADATA_SHARD_METRICS, after) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	s->shard_metrics = after;
	metrics_shards_enabled(s->stream_id, after);
	kinesis_out_name_arn(out, s);
	api_out_printf(out, ",\"CurrentShardLevelMetrics\":");
	kinesis_out_metrics(out, before);
	api_out_printf(out, ",\"DesiredShardLevelMetrics\":");
	kinesis_out_metrics(out, after);
	api_out_printf(out, "}");
	api_call_reply(r->call, 200);
}

void
kinesis_enable_monitoring(struct kinesis_req *r)
{
	kinesis_monitoring(r, true);
}

void
kinesis_disable_monitoring(struct kinesis_req *r)
{
	kinesis_monitoring(r, false);
}

/* ---- The largest record ------------------------------------------------------ */

/*
 * PutRecord and PutRecords then take records up to the new size (the log's batch
 * must hold one: refused otherwise, before anything changes); GetRecords and
 * SubscribeToShard serve them whole.
 */
void
kinesis_update_max_record_size(struct kinesis_req *r)
{
	const struct kv_value no_name = { .json = NULL };
	uint32_t kib = (uint32_t)r->v[MAX_RECORD_SIZE_MAX_RECORD_SIZE_IN_KIB].number;
	struct kinesis_stream *s;

	s = kinesis_stream_resolve(r->k, r->call, &no_name, &r->v[MAX_RECORD_SIZE_STREAM_ARN]);
	if (s == NULL || !kinesis_settings_admit(r, s) ||
	    !kinesis_record_size_admit(r->k, r->call, kib))
		return;
	if (kinesis_md_setting_set(r->k, s, METADATA_MAX_RECORD_KIB, kib) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	s->max_record_kib = kib;
	kinesis_status_schedule(r->k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	api_call_reply(r->call, 200);
}

/* ---- Account settings: the minimum throughput billing commitment --------------- */

enum kinesis_commitment_status {
	KINESIS_COMMITMENT_DISABLED,
	KINESIS_COMMITMENT_ENABLED,
	KINESIS_COMMITMENT_ENDING,   /* Disabled before its earliest end: ends then. */
};

static const char *const kinesis_commitment_names[] = {
	[KINESIS_COMMITMENT_DISABLED] = "DISABLED",
	[KINESIS_COMMITMENT_ENABLED] = "ENABLED",
	[KINESIS_COMMITMENT_ENDING] = "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
};

/* The meta table's record of it: status, started, earliest end, ended (ms; 0: never). */
#define KINESIS_COMMITMENT_KEY "billing_commitment"
#define KINESIS_COMMITMENT_FIELDS 4

struct kinesis_commitment {
	int64_t status;
	int64_t started_ms;
	int64_t earliest_end_ms;
	int64_t ended_ms;
};

int
kinesis_commitment_types(struct kinesis_req *r, const cJSON *item)
{
	return kv_type_check(r->call, cJSON_GetObjectItemCaseSensitive(item, "Status"), KV_STRING);
}

void
kinesis_commitment_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(item, "Status");
	const char *path = "minimumThroughputBillingCommitment.status";

	(void)r;
	if (status == NULL || cJSON_IsNull(status))
		kv_errors_add(errors, "null", false, path, "Member must not be null");
	else if (strcmp(status->valuestring, "ENABLED") != 0 &&
		 strcmp(status->valuestring, "DISABLED") != 0)
		kv_errors_add(errors, status->valuestring, true, path,
			      "Member must satisfy enum value set: [ENABLED, DISABLED]");
}

/* The commitment as of `now_ms` (a pending end that has passed has ended). */
static int
kinesis_commitment_get(struct kinesis *k, uint64_t now_ms, struct kinesis_commitment *c)
{
	int64_t v[KINESIS_COMMITMENT_FIELDS];
	int rc = metadata_account_get(k->md, KINESIS_COMMITMENT_KEY, v, ARRAY_SIZE(v));

	if (rc == -ENOENT) {
		*c = (struct kinesis_commitment){ .status = KINESIS_COMMITMENT_DISABLED };
		return 0;
	}
	if (rc != 0)
		return rc;
	*c = (struct kinesis_commitment){
		.status = v[0], .started_ms = v[1], .earliest_end_ms = v[2], .ended_ms = v[3],
	};
	if (c->status == KINESIS_COMMITMENT_ENDING && (int64_t)now_ms >= c->earliest_end_ms) {
		c->status = KINESIS_COMMITMENT_DISABLED;
		c->ended_ms = c->earliest_end_ms;
	}
	if (c->status < KINESIS_COMMITMENT_DISABLED || c->status > KINESIS_COMMITMENT_ENDING)
		return -EIO;
	return 0;
}

static int
kinesis_commitment_put(struct kinesis *k, const struct kinesis_commitment *c)
{
	const int64_t v[KINESIS_COMMITMENT_FIELDS] = {
		c->status, c->started_ms, c->earliest_end_ms, c->ended_ms,
	};

	return kinesis_md_account_set(k, KINESIS_COMMITMENT_KEY, v, ARRAY_SIZE(v));
}

static void
kinesis_commitment_out(struct api_call *call, const struct kinesis_commitment *c)
{
	struct api_out *out = api_call_out(call);
	const struct {
		const char *name;
		int64_t ms;
	} times[] = {
		{ "StartedAt", c->started_ms }, { "EndedAt", c->ended_ms },
		{ "EarliestAllowedEndAt", c->earliest_end_ms },
	};

	api_out_printf(out, "{\"MinimumThroughputBillingCommitment\":{\"Status\":\"%s\"",
		       kinesis_commitment_names[c->status]);
	for (size_t i = 0; i < ARRAY_SIZE(times); i++) {
		if (times[i].ms <= 0)
			continue;
		api_out_printf(out, ",\"%s\":", times[i].name);
		kinesis_out_timestamp(out, (uint64_t)times[i].ms);
	}
	api_out_printf(out, "}}");
	api_call_reply(call, 200);
}

void
kinesis_describe_account_settings(struct kinesis_req *r)
{
	struct kinesis_commitment c;

	if (kinesis_commitment_get(r->k, kinesis_now_ms(r->req), &c) != 0)
		kinesis_internal_error(r->call);
	else
		kinesis_commitment_out(r->call, &c);
}

/*
 * ENABLED starts a commitment (or cancels a pending end); DISABLED ends it, at
 * once past its earliest end, else at that time (ENABLED_UNTIL_EARLIEST_ALLOWED_END).
 */
void
kinesis_update_account_settings(struct kinesis_req *r)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(
		r->v[ACCOUNT_SETTINGS_MINIMUM_THROUGHPUT_BILLING_COMMITMENT].json, "Status");
	int64_t now_ms = (int64_t)kinesis_now_ms(r->req);
	bool enable = strcmp(status->valuestring, "ENABLED") == 0;
	struct kinesis_commitment c;

	if (kinesis_commitment_get(r->k, (uint64_t)now_ms, &c) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	if (enable && c.status == KINESIS_COMMITMENT_DISABLED) {
		c = (struct kinesis_commitment){
			.status = KINESIS_COMMITMENT_ENABLED, .started_ms = now_ms,
			.earliest_end_ms = now_ms + (int64_t)KINESIS_COMMITMENT_MIN_MS,
		};
	} else if (enable) {
		c.status = KINESIS_COMMITMENT_ENABLED;
	} else if (c.status != KINESIS_COMMITMENT_DISABLED) {
		c.status = now_ms >= c.earliest_end_ms ? KINESIS_COMMITMENT_DISABLED :
			   KINESIS_COMMITMENT_ENDING;
		c.ended_ms = c.status == KINESIS_COMMITMENT_DISABLED ? now_ms : 0;
	}
	if (kinesis_commitment_put(r->k, &c) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	kinesis_commitment_out(r->call, &c);
}

/* ---- Warm throughput ------------------------------------------------------------ */

void
kinesis_out_warm(struct api_out *out, const struct kinesis_stream *s)
{
	/* Sluice has no capacity to warm up: the target is what it can take at once. */
	api_out_printf(out, ",\"WarmThroughput\":{\"TargetMiBps\":%u,\"CurrentMiBps\":%u}",
		       s->warm_mibps, s->status == KINESIS_UPDATING ? 0 : s->warm_mibps);
}

bool
kinesis_warm_admit(struct kinesis_req *r, const char *op, const char *stream,
		   enum metadata_mode mode, uint32_t mibps)
{
	struct kinesis_commitment c;

	if (mode != METADATA_ON_DEMAND) {
		kinesis_error(r->call, "ValidationException", "%s is not supported for stream %s "
			      "under account %s because it is in PROVISIONED capacity mode.", op,
			      stream, r->k->config.account_id);
		return false;
	}
	if (kinesis_commitment_get(r->k, kinesis_now_ms(r->req), &c) != 0) {
		kinesis_internal_error(r->call);
		return false;
	}
	if (c.status == KINESIS_COMMITMENT_DISABLED) {
		kinesis_error(r->call, "ValidationException", "Warm throughput requires a minimum "
			      "throughput billing commitment on account %s (UpdateAccountSettings).",
			      r->k->config.account_id);
		return false;
	}
	if (mibps > KINESIS_WARM_MIBPS_MAX) {
		kinesis_error(r->call, "LimitExceededException", "WarmThroughputMiBps %u exceeds "
			      "the limit of %u MiBps for stream %s under account %s.", mibps,
			      KINESIS_WARM_MIBPS_MAX, stream, r->k->config.account_id);
		return false;
	}
	return true;
}

void
kinesis_update_warm_throughput(struct kinesis_req *r)
{
	uint32_t mibps = (uint32_t)r->v[WARM_THROUGHPUT_WARM_THROUGHPUT_MIBPS].number;
	struct kinesis_stream *s = r->stream;
	struct api_out *out = api_call_out(r->call);

	if (!kinesis_warm_admit(r, "UpdateStreamWarmThroughput", s->name, s->mode, mibps) ||
	    !kinesis_settings_admit(r, s))
		return;
	if (kinesis_md_setting_set(r->k, s, METADATA_WARM_MIBPS, mibps) != 0) {
		kinesis_internal_error(r->call);
		return;
	}
	s->warm_mibps = mibps;
	kinesis_status_schedule(r->k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	kinesis_out_name_arn(out, s);
	kinesis_out_warm(out, s);
	api_out_printf(out, "}");
	api_call_reply(r->call, 200);
}
