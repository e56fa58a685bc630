/*
 * kinesis_shards.c - shard ids, routing a hash key to its open shard, a
 * shard's JSON, and ListShards (its ShardFilter and NextToken).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/diag.h"
#include "common/keyrange.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/seqnum.h"

static struct kinesis_shard *kinesis_shard_route_scan(struct kinesis_stream *s, hashkey_t key);

/* ---- Shard ids, routing, output --------------------------------------------- */

void
kinesis_shard_id_format(uint32_t index, char buf[KINESIS_SHARD_ID_SIZE])
{
	snprintf(buf, KINESIS_SHARD_ID_SIZE, "shardId-%012u", index);
}

void
kinesis_shard_metrics(struct kinesis_stream *s, const struct metrics_stream_ref *ref,
		      const struct metrics_shard_add *add)
{
	assert(add->shard_index < s->shard_count);
	metrics_shard_record(ref, &s->shards[add->shard_index].metrics_series, add);
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
	struct keyrange *ranges;
	uint32_t n = 0;

	/* SQLite keeps no close time: a parent closed when its children were created. */
	for (uint32_t i = 0; i < s->shard_count; i++) {
		const struct kinesis_shard *sh = &s->shards[i];

		if (sh->parent >= 0 && (uint64_t)sh->parent < s->shard_count)
			s->shards[sh->parent].closed_s = sh->created_s;
		if (sh->adjacent_parent >= 0 && (uint64_t)sh->adjacent_parent < s->shard_count)
			s->shards[sh->adjacent_parent].closed_s = sh->created_s;
	}
	kinesis_stream_index_free(s);
	for (uint32_t i = 0; i < s->shard_count; i++)
		n += !s->shards[i].closed;
	/* One block: the keyrange index of the open shards, then their shard indices. */
	s->open_block = malloc(keyrange_index_size(n) + (n + 1) * sizeof(*s->open_index));
	if (s->open_block == NULL)
		return;
	ranges = keyrange_index_place(&s->open_keys, s->open_block, n);
	s->open_index = (uint32_t *)((uint8_t *)s->open_block + keyrange_index_size(n));
	n = 0;
	for (uint32_t i = 0; i < s->shard_count; i++)
		if (!s->shards[i].closed)
			s->open_index[n++] = i;
	qsort_r(s->open_index, n, sizeof(*s->open_index), kinesis_index_cmp, s->shards);
	for (uint32_t i = 0; i < n; i++)
		ranges[i] = (struct keyrange){ s->shards[s->open_index[i]].start,
					       s->shards[s->open_index[i]].end };
	s->open_count = n;
	/* Overlapping open shards come only from a damaged metadata.db: route by scanning. */
	if (keyrange_index_seal(&s->open_keys) != 0) {
		diag_error("kinesis", "stream %s: open shards overlap in metadata", s->name);
		kinesis_stream_index_free(s);
	}
}

void
kinesis_stream_index_free(struct kinesis_stream *s)
{
	free(s->open_block);
	s->open_block = NULL;
	s->open_index = NULL;
	s->open_count = 0;
	memset(&s->open_keys, 0, sizeof(s->open_keys));
}

struct kinesis_shard *
kinesis_shard_route(struct kinesis_stream *s, hashkey_t key)
{
	int64_t at;

	if (s->open_index == NULL)
		return kinesis_shard_route_scan(s, key);
	/* common/keyrange.h: the lookup the dataplane's workers make too. */
	at = keyrange_find(&s->open_keys, key);
	return at < 0 ? NULL : &s->shards[s->open_index[at]];
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

/* ---- ListShards ----------------------------------------------------------- */

static const char *const kinesis_filter_types[] = {
	"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
	"FROM_TIMESTAMP", NULL,
};

int
kinesis_filter_types_check(struct kinesis_req *r, const cJSON *item)
{
	struct api_call *call = r->call;

	if (kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "Type"), KV_STRING) != 0 ||
	    kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "ShardId"), KV_STRING) != 0)
		return -EINVAL;
	return kv_type_check(call, cJSON_GetObjectItemCaseSensitive(item, "Timestamp"),
			     KV_TIMESTAMP);
}

void
kinesis_filter_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "Type");
	bool known = false;

	(void)r;
	kv_string_check(errors, "shardFilter.shardId",
			cJSON_GetObjectItemCaseSensitive(item, "ShardId"), false, KV_PATTERN_NAME,
			1, 128);
	if (type == NULL || cJSON_IsNull(type)) {
		kv_errors_add(errors, "null", false, "shardFilter.type", "Member must not be null");
		return;
	}
	for (const char *const *t = kinesis_filter_types; *t != NULL; t++)
		known = known || strcmp(*t, type->valuestring) == 0;
	if (!known)
		kv_errors_add(errors, type->valuestring, true, "shardFilter.type",
			      "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
			      "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]");
}

/* Which shards a ShardFilter keeps; the first index to list in *from. */
static int
kinesis_filter_apply(struct kinesis *k, struct api_call *call, const cJSON *filter,
		     uint32_t *from, struct kinesis_shard_filter *sf)
{
	static const struct {
		const char *name;
		enum kinesis_filter type;
	} types[] = {
		{ "AFTER_SHARD_ID", KINESIS_FILTER_FROM_TRIM_HORIZON },
		{ "AT_TRIM_HORIZON", KINESIS_FILTER_AT_TRIM_HORIZON },
		{ "FROM_TRIM_HORIZON", KINESIS_FILTER_FROM_TRIM_HORIZON },
		{ "AT_LATEST", KINESIS_FILTER_AT_LATEST },
		{ "AT_TIMESTAMP", KINESIS_FILTER_AT_TIMESTAMP },
		{ "FROM_TIMESTAMP", KINESIS_FILTER_FROM_TIMESTAMP },
	};
	const char *type = cJSON_GetObjectItemCaseSensitive(filter, "Type")->valuestring;
	const cJSON *shard_id = cJSON_GetObjectItemCaseSensitive(filter, "ShardId");
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(filter, "Timestamp");
	uint32_t index;

	(void)k;
	if (strcmp(type, "AFTER_SHARD_ID") == 0) {
		if (shard_id == NULL || cJSON_IsNull(shard_id)) {
			kinesis_error(call, "InvalidArgumentException", "Must specify ShardId for "
				      "ShardFilter type AFTER_SHARD_ID.");
			return -EINVAL;
		}
		if (kinesis_shard_id_parse(shard_id->valuestring, strlen(shard_id->valuestring),
					   &index) == 0 && index + 1 > *from)
			*from = index + 1;
	} else if ((strcmp(type, "AT_TIMESTAMP") == 0 || strcmp(type, "FROM_TIMESTAMP") == 0) &&
		   (ts == NULL || cJSON_IsNull(ts))) {
		kinesis_error(call, "InvalidArgumentException", "Must specify Timestamp for "
			      "ShardFilter type %s.", type);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(type, types[i].name) == 0)
			sf->type = types[i].type;
	/* Whole seconds, rounded down: shard times are seconds (see kinesis_shard_listed). */
	sf->ts_s = ts == NULL || cJSON_IsNull(ts) || ts->valuedouble < 0 ? 0 :
		   (uint64_t)ts->valuedouble;
	return 0;
}

static void
kinesis_list_shards_out(struct kinesis *k, struct api_call *call, const struct api_request *req,
			const struct kinesis_stream *s, uint32_t from, uint32_t limit,
			const struct kinesis_shard_filter *sf)
{
	uint64_t now_s = kinesis_now_ms(req) / 1000;
	struct api_out *out = api_call_out(call);
	uint32_t n = 0;
	uint32_t i;

	api_out_printf(out, "{\"Shards\":[");
	for (i = from; i < s->shard_count && n < limit; i++) {
		if (!kinesis_shard_listed(k, s, i, sf, now_s))
			continue;
		api_out_printf(out, "%s", n++ > 0 ? "," : "");
		kinesis_out_shard(out, &s->shards[i]);
	}
	api_out_printf(out, "]");
	if (i < s->shard_count) {
		char text[ITERATOR_TEXT_SIZE_MAX + 1];
		struct iterator_token token = {
			.issued_ms = kinesis_now_ms(req), .stream_id = s->stream_id,
			.incarnation = s->incarnation,
			.position = i | (uint32_t)sf->type << KINESIS_FILTER_SHIFT,
			.limit = (uint32_t)min_u64(sf->ts_s, UINT32_MAX),
			.name_size = (uint8_t)s->name_size,
		};

		memcpy(token.name, s->name, s->name_size);
		iterator_token_encode(k->secret, &token, text);
		api_out_printf(out, ",\"NextToken\":\"%s\"", text);
	}
	api_out_printf(out, "}");
	api_call_reply(call, 200);
}

/* NextToken excludes StreamName/StreamARN, ExclusiveStartShardId, StreamCreationTimestamp. */
static bool
kinesis_list_shards_args(struct kinesis_req *r)
{
	const struct kv_value *v = r->v;
	bool token = v[LIST_SHARDS_NEXT_TOKEN].json != NULL;
	bool name = v[LIST_SHARDS_STREAM_NAME].json != NULL;
	bool arn = v[LIST_SHARDS_STREAM_ARN].json != NULL;
	bool start = v[LIST_SHARDS_EXCLUSIVE_START_SHARD_ID].json != NULL;
	bool created = v[LIST_SHARDS_STREAM_CREATION_TIMESTAMP].json != NULL;

	if (!token && !name && !arn) {
		kinesis_error(r->call, "InvalidArgumentException",
			      "Either NextToken or StreamName should be provided.");
		return false;
	}
	if (token && (name || arn)) {
		kinesis_error(r->call, "InvalidArgumentException", "NextToken and %s cannot be "
			      "provided together.", name ? "StreamName" : "StreamARN");
		return false;
	}
	if (token && (start || created)) {
		kinesis_error(r->call, "InvalidArgumentException", "NextToken and %s cannot be "
			      "provided together.", start ? "ExclusiveStartShardId" :
			      "StreamCreationTimestamp");
		return false;
	}
	return true;
}

static struct kinesis_stream *
kinesis_list_shards_stream(struct kinesis_req *r, uint32_t *from,
			   struct kinesis_shard_filter *sf)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	struct iterator_token token;
	struct kinesis_stream *s;

	if (r->v[LIST_SHARDS_NEXT_TOKEN].json == NULL)
		return kinesis_stream_resolve(k, call, &r->v[LIST_SHARDS_STREAM_NAME],
					      &r->v[LIST_SHARDS_STREAM_ARN]);
	if (kinesis_token_open(k, call, r->req, &r->v[LIST_SHARDS_NEXT_TOKEN], &token) != 0)
		return NULL;
	s = kinesis_stream_by_id(k, token.stream_id);
	if (s == NULL || s->incarnation != token.incarnation) {
		kinesis_error(call, "ResourceNotFoundException", "Stream %s under account %s not "
			      "found.", token.name, k->config.account_id);
		return NULL;
	}
	if (!kinesis_authorize(k, call, s, NULL, NULL))
		return NULL;
	*from = token.position & ((1u << KINESIS_FILTER_SHIFT) - 1);
	sf->type = (enum kinesis_filter)(token.position >> KINESIS_FILTER_SHIFT);
	sf->ts_s = token.limit;
	return s;
}

void
kinesis_list_shards(struct kinesis_req *r)
{
	const struct kv_value *created = &r->v[LIST_SHARDS_STREAM_CREATION_TIMESTAMP];
	const struct kv_value *start = &r->v[LIST_SHARDS_EXCLUSIVE_START_SHARD_ID];
	const struct kv_value *filter = &r->v[LIST_SHARDS_SHARD_FILTER];
	const struct kv_value *max = &r->v[LIST_SHARDS_MAX_RESULTS];
	struct kinesis_shard_filter sf = { .type = KINESIS_FILTER_FROM_TRIM_HORIZON };
	struct kinesis_stream *s;
	uint32_t from = 0;

	if (!kinesis_list_shards_args(r))
		return;
	s = kinesis_list_shards_stream(r, &from, &sf);
	if (s == NULL)
		return;
	if (!kinesis_stream_created_at(r, s, created))
		return;
	if (start->json != NULL && kinesis_shard_id_parse(start->string, start->size, &from) == 0)
		from++;
	if (filter->json != NULL &&
	    kinesis_filter_apply(r->k, r->call, filter->json, &from, &sf) != 0)
		return;
	kinesis_list_shards_out(r->k, r->call, r->req, s, from, max->json != NULL ?
				(uint32_t)max->number : 1000, &sf);
}
