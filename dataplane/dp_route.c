/*
 * dp_route.c - the route table: stream name -> stream id, and per stream the
 * open shards' hash-key ranges -> log shard id.
 *
 * The control plane fills a builder and publishes it; publishing builds an
 * immutable table (streams sorted by name, each stream's ranges sorted by
 * start and checked for overlap into a common/keyrange.h index: the same
 * shard lookup the Kinesis actions use), swaps the table pointer, and frees the old
 * table after an RCU grace period (rte_rcu_qsbr: every worker reports a
 * quiescent state after each poll pass and goes offline while it sleeps, so
 * the grace period is one pass long and workers never wait).
 *
 * Table memory: one allocation per publish, on the control thread.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "common/keyrange.h"
#include "common/limits.h"
#include "dataplane/dp_internal.h"
#include "nvme-log/log.h"

struct dp_route_stream {
	char name[SLUICE_STREAM_NAME_SIZE_MAX];
	uint32_t name_size;
	uint32_t stream_id;
	struct keyrange_index index;  /* Its open shards' ranges (table only). */
	uint64_t *shard_ids;          /* Log shard id of index.ranges[i] (table only). */
};

/* A range as the control plane adds it (builder only). */
struct dp_route_range {
	hashkey_t start;
	hashkey_t end;
	uint64_t shard_id;
	uint32_t stream_id;
};

/* Immutable once published. One allocation: this, streams, then each stream's block. */
struct dp_route_table {
	uint32_t stream_count;
	struct dp_route_stream *streams;
};

struct dp_route_builder {
	uint32_t streams_max;
	uint32_t ranges_max;
	uint32_t stream_count;
	uint32_t range_count;
	struct dp_route_stream *streams;
	struct dp_route_range *ranges;
};

int
dp_route_builder_open(uint32_t streams_max, uint32_t ranges_max,
		      struct dp_route_builder **builder_out)
{
	struct dp_route_builder *b;

	if (streams_max == 0 || streams_max > SLUICE_STREAMS_MAX || ranges_max == 0 ||
	    ranges_max > SLUICE_SHARDS_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	b->streams = calloc(streams_max, sizeof(*b->streams));
	b->ranges = calloc(ranges_max, sizeof(*b->ranges));
	if (b->streams == NULL || b->ranges == NULL) {
		dp_route_builder_close(b);
		return -ENOMEM;
	}
	b->streams_max = streams_max;
	b->ranges_max = ranges_max;
	*builder_out = b;
	return 0;
}

void
dp_route_builder_close(struct dp_route_builder *builder)
{
	if (builder == NULL)
		return;
	free(builder->streams);
	free(builder->ranges);
	free(builder);
}

static bool
dp_route_name_valid(const char *name, size_t size)
{
	if (size == 0 || size > SLUICE_STREAM_NAME_SIZE_MAX)
		return false;
	for (size_t i = 0; i < size; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

		if (!ok)
			return false;
	}
	return true;
}

static int32_t
dp_route_builder_find(const struct dp_route_builder *b, uint32_t stream_id)
{
	for (uint32_t i = 0; i < b->stream_count; i++)
		if (b->streams[i].stream_id == stream_id)
			return (int32_t)i;
	return -1;
}

int
dp_route_add_stream(struct dp_route_builder *builder, const char *name, uint32_t stream_id)
{
	size_t size = strnlen(name, SLUICE_STREAM_NAME_SIZE_MAX + 1);
	struct dp_route_stream *s;

	if (!dp_route_name_valid(name, size))
		return -EINVAL;
	if (dp_route_builder_find(builder, stream_id) >= 0)
		return -EEXIST;
	for (uint32_t i = 0; i < builder->stream_count; i++)
		if (builder->streams[i].name_size == size &&
		    memcmp(builder->streams[i].name, name, size) == 0)
			return -EEXIST;
	if (builder->stream_count == builder->streams_max)
		return -ENOSPC;
	s = &builder->streams[builder->stream_count++];
	memcpy(s->name, name, size);
	s->name_size = (uint32_t)size;
	s->stream_id = stream_id;
	return 0;
}

int
dp_route_add_range(struct dp_route_builder *builder, uint32_t stream_id, hashkey_t start,
		   hashkey_t end, uint64_t shard_id)
{
	struct dp_route_range *r;

	if (dp_route_builder_find(builder, stream_id) < 0)
		return -ENOENT;
	if (start > end)
		return -EINVAL;
	if (builder->range_count == builder->ranges_max)
		return -ENOSPC;
	r = &builder->ranges[builder->range_count++];
	r->start = start;
	r->end = end;
	r->shard_id = shard_id;
	r->stream_id = stream_id;
	return 0;
}

static int
dp_route_name_cmp(const char *a, uint32_t a_size, const char *b, uint32_t b_size)
{
	int c = memcmp(a, b, a_size < b_size ? a_size : b_size);

	if (c != 0)
		return c;
	return a_size < b_size ? -1 : a_size > b_size;
}

static int
dp_route_stream_cmp(const void *a, const void *b)
{
	const struct dp_route_stream *x = a;
	const struct dp_route_stream *y = b;

	return dp_route_name_cmp(x->name, x->name_size, y->name, y->name_size);
}

/* Orders ranges by stream id, then start: each stream's ranges become one run. */
static int
dp_route_range_cmp(const void *a, const void *b)
{
	const struct dp_route_range *x = a;
	const struct dp_route_range *y = b;

	if (x->stream_id != y->stream_id)
		return x->stream_id < y->stream_id ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/* The first range of the sorted builder whose stream id is at or above `stream_id`. */
static uint32_t
dp_route_lower_bound(const struct dp_route_builder *b, uint32_t stream_id)
{
	uint32_t low = 0;
	uint32_t high = b->range_count;

	while (low < high) {
		uint32_t mid = low + (high - low) / 2;

		if (b->ranges[mid].stream_id < stream_id)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

/* A stream's run of ranges in the builder's sorted array: first, count. */
static void
dp_route_stream_run(const struct dp_route_builder *b, uint32_t stream_id,
		    uint32_t *first_out, uint32_t *count_out)
{
	*first_out = dp_route_lower_bound(b, stream_id);
	*count_out = stream_id == UINT32_MAX ? b->range_count - *first_out :
		     dp_route_lower_bound(b, stream_id + 1) - *first_out;
}

/* A stream's shard ids, rounded up so that the next stream's index stays 16-byte aligned. */
static size_t
dp_route_ids_size(uint32_t count)
{
	return RTE_ALIGN_CEIL((size_t)count * sizeof(uint64_t), 16);
}

/* Lays each stream's index out after the streams and fills it; -EINVAL on an overlap. */
static int
dp_route_table_index(struct dp_route_table *t, const struct dp_route_builder *b, uint8_t *at)
{
	for (uint32_t s = 0; s < t->stream_count; s++) {
		struct dp_route_stream *st = &t->streams[s];
		uint32_t first;
		uint32_t count;
		struct keyrange *ranges;

		dp_route_stream_run(b, st->stream_id, &first, &count);
		ranges = keyrange_index_place(&st->index, at, count);
		at += keyrange_index_size(count);
		st->shard_ids = (uint64_t *)at;
		at += dp_route_ids_size(count);
		for (uint32_t i = 0; i < count; i++) {
			ranges[i] = (struct keyrange){ b->ranges[first + i].start,
						       b->ranges[first + i].end };
			st->shard_ids[i] = b->ranges[first + i].shard_id;
		}
		if (keyrange_index_seal(&st->index) != 0)
			return -EINVAL;
	}
	return 0;
}

/* The builder is sorted here (streams by name, ranges by stream then start). */
static struct dp_route_table *
dp_route_table_build(struct dp_route_builder *b, int *rc_out)
{
	size_t streams_size = RTE_ALIGN_CEIL((size_t)b->stream_count * sizeof(*b->streams), 16);
	size_t size = RTE_ALIGN_CEIL(sizeof(struct dp_route_table), 16) + streams_size;
	struct dp_route_table *t;

	qsort(b->streams, b->stream_count, sizeof(*b->streams), dp_route_stream_cmp);
	qsort(b->ranges, b->range_count, sizeof(*b->ranges), dp_route_range_cmp);
	/* Every range belongs to an added stream (dp_route_add_range checked). */
	for (uint32_t s = 0; s < b->stream_count; s++) {
		uint32_t first;
		uint32_t count;

		dp_route_stream_run(b, b->streams[s].stream_id, &first, &count);
		size += keyrange_index_size(count) + dp_route_ids_size(count);
	}
	t = aligned_alloc(16, RTE_ALIGN_CEIL(size, 16));
	if (t == NULL) {
		*rc_out = -ENOMEM;
		return NULL;
	}
	memset(t, 0, size);
	t->streams = (struct dp_route_stream *)((uint8_t *)t +
						RTE_ALIGN_CEIL(sizeof(*t), 16));
	t->stream_count = b->stream_count;
	memcpy(t->streams, b->streams, (size_t)b->stream_count * sizeof(*b->streams));
	*rc_out = dp_route_table_index(t, b, (uint8_t *)t->streams + streams_size);
	if (*rc_out != 0) {
		free(t);
		return NULL;
	}
	return t;
}

int
dp_route_publish(struct dp *dp, struct dp_route_builder *builder)
{
	struct dp_route_table *old;
	int rc;
	struct dp_route_table *t = dp_route_table_build(builder, &rc);

	if (t == NULL)
		return rc;
	/* Release: the table's contents are visible before its pointer. */
	old = atomic_exchange_explicit(&dp->route, t, memory_order_acq_rel);
	/* Every online worker passes a quiescent state: none still reads `old`. */
	rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
	free(old);
	return 0;
}

int
dp_flush_staged(struct dp *dp, uint32_t timeout_ms)
{
	uint64_t epoch = atomic_fetch_add_explicit(&dp->flush_epoch, 1, memory_order_acq_rel) + 1;
	uint64_t deadline = rte_get_timer_cycles() + (uint64_t)timeout_ms * rte_get_timer_hz() / 1000;

	for (uint32_t i = 0; dp->running && i < dp->worker_count; i++) {
		while (atomic_load_explicit(&dp->workers[i].flush_done, memory_order_acquire) <
		       epoch) {
			if (rte_get_timer_cycles() > deadline)
				return -ETIMEDOUT;
			rte_delay_us_sleep(10);
		}
	}
	return 0;
}

struct dp_route_table *
dp_route_current(struct dp *dp)
{
	/* Acquire pairs with the publisher's release. */
	return atomic_load_explicit(&dp->route, memory_order_acquire);
}

int32_t
dp_route_find_stream(const struct dp_route_table *table, const char *name, uint32_t name_size)
{
	uint32_t low = 0;
	uint32_t high = table->stream_count;

	while (low < high) {
		uint32_t mid = low + (high - low) / 2;
		const struct dp_route_stream *s = &table->streams[mid];
		int c = dp_route_name_cmp(name, name_size, s->name, s->name_size);

		if (c == 0)
			return (int32_t)mid;
		if (c < 0)
			high = mid;
		else
			low = mid + 1;
	}
	return -1;
}

uint32_t
dp_route_stream_id(const struct dp_route_table *table, int32_t stream_index)
{
	assert(stream_index >= 0 && (uint32_t)stream_index < table->stream_count);
	return table->streams[stream_index].stream_id;
}

int
dp_route_find_shard(const struct dp_route_table *table, int32_t stream_index, hashkey_t key,
		    uint64_t *shard_id_out)
{
	const struct dp_route_stream *s;
	int64_t range;

	assert(stream_index >= 0 && (uint32_t)stream_index < table->stream_count);
	s = &table->streams[stream_index];
	range = keyrange_find(&s->index, key);
	if (range < 0)
		return -ENOENT;
	*shard_id_out = s->shard_ids[range];
	return 0;
}

/* Whether the stream has shard `shard_id` open (a scan: only on the refusal path). */
static bool
dp_route_shard_open(const struct dp_route_stream *s, uint64_t shard_id)
{
	for (uint32_t i = 0; i < s->index.count; i++)
		if (s->shard_ids[i] == shard_id)
			return true;
	return false;
}

int
dp_route_check_grouped(const struct dp_route_table *table, int32_t stream_index,
		       uint32_t shard_index, const uint8_t *hash_keys, uint32_t count,
		       uint64_t *shard_id_out, uint32_t *bad_index_out)
{
	const struct dp_route_stream *s = &table->streams[stream_index];
	uint64_t shard_id = LOG_SHARD_ID(s->stream_id, shard_index);
	int64_t range = keyrange_find(&s->index, hashkey_from_be_bytes(hash_keys));
	const struct keyrange *r;

	assert(count > 0);
	*bad_index_out = 0;
	if (range < 0 || s->shard_ids[range] != shard_id)
		return dp_route_shard_open(s, shard_id) ? -ERANGE : -ENOENT;
	/* Ranges of open shards never change, so a compare per record is the whole check. */
	r = &s->index.ranges[range];
	for (uint32_t i = 1; i < count; i++) {
		hashkey_t key = hashkey_from_be_bytes(hash_keys + (size_t)i * 16u);

		if (key < r->start || key > r->end) {
			*bad_index_out = i;
			return -ERANGE;
		}
	}
	*shard_id_out = shard_id;
	return 0;
}

int
dp_route_lookup(struct dp *dp, const char *stream_name, hashkey_t key, uint64_t *shard_id_out)
{
	struct dp_route_table *t = dp_route_current(dp);
	int32_t s;

	if (t == NULL)
		return -ENOENT;
	s = dp_route_find_stream(t, stream_name, (uint32_t)strnlen(stream_name, 256));
	if (s < 0)
		return -ENOENT;
	return dp_route_find_shard(t, s, key, shard_id_out);
}

int
dp_route_init(struct dp *dp)
{
	size_t size = rte_rcu_qsbr_get_memsize(dp->worker_count);

	dp->qsbr = rte_zmalloc("sluice_dp_rcu", size, RTE_CACHE_LINE_SIZE);
	if (dp->qsbr == NULL)
		return -ENOMEM;
	if (rte_rcu_qsbr_init(dp->qsbr, dp->worker_count) != 0) {
		rte_free(dp->qsbr);
		dp->qsbr = NULL;
		return -EINVAL;
	}
	atomic_store(&dp->route, NULL);
	return 0;
}

void
dp_route_fini(struct dp *dp)
{
	free(atomic_exchange(&dp->route, NULL));
	rte_free(dp->qsbr);
	dp->qsbr = NULL;
}
