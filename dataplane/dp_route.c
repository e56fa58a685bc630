/*
 * dp_route.c - the route table: stream name -> stream id, and per stream the
 * open shards' hash-key ranges -> log shard id.
 *
 * The control plane fills a builder and publishes it; publishing builds an
 * immutable table (streams sorted by name, each stream's ranges sorted by
 * start and checked for overlap), swaps the table pointer, and frees the old
 * table after an RCU grace period (rte_rcu_qsbr: every worker reports a
 * quiescent state after each poll pass and goes offline while it sleeps, so
 * the grace period is one pass long and workers never wait).
 *
 * Table memory: one malloc per publish, on the control thread.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "common/limits.h"
#include "dataplane/dp_internal.h"
#include "nvme-log/log.h"

/*
 * Hash keys are split into 256 buckets by their top byte; bucket[b] is the
 * index (within the stream's ranges) of the last range starting at or below
 * b << 120, so a key's range lies in bucket[b] .. bucket[b + 1]: one step for
 * a few shards, a short binary search for thousands.
 */
#define DP_ROUTE_BUCKETS 256

struct dp_route_stream {
	char name[SLUICE_STREAM_NAME_SIZE_MAX];
	uint32_t name_size;
	uint32_t stream_id;
	uint32_t range_first;      /* Index into ranges[]. */
	uint32_t range_count;
	uint32_t *bucket;          /* DP_ROUTE_BUCKETS + 1 entries (table only). */
};

struct dp_route_range {
	hashkey_t start;
	hashkey_t end;
	uint64_t shard_id;
	uint32_t stream_id;        /* Builder only: which stream the range belongs to. */
};

struct dp_route_table {
	uint32_t stream_count;
	uint32_t range_count;
	struct dp_route_stream *streams;
	struct dp_route_range *ranges;
	uint64_t *start_hi;        /* Top 64 bits of each range's start: a dense array to search. */
	uint32_t *buckets;         /* stream_count x (DP_ROUTE_BUCKETS + 1) */
};

struct dp_route_builder {
	uint32_t streams_max;
	uint32_t ranges_max;
	struct dp_route_table t;   /* Unsorted until publish. */
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
	b->t.streams = calloc(streams_max, sizeof(*b->t.streams));
	b->t.ranges = calloc(ranges_max, sizeof(*b->t.ranges));
	if (b->t.streams == NULL || b->t.ranges == NULL) {
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
	free(builder->t.streams);
	free(builder->t.ranges);
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
	for (uint32_t i = 0; i < b->t.stream_count; i++)
		if (b->t.streams[i].stream_id == stream_id)
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
	for (uint32_t i = 0; i < builder->t.stream_count; i++)
		if (builder->t.streams[i].name_size == size &&
		    memcmp(builder->t.streams[i].name, name, size) == 0)
			return -EEXIST;
	if (builder->t.stream_count == builder->streams_max)
		return -ENOSPC;
	s = &builder->t.streams[builder->t.stream_count++];
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
	if (builder->t.range_count == builder->ranges_max)
		return -ENOSPC;
	r = &builder->t.ranges[builder->t.range_count++];
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

static void
dp_route_buckets_fill(struct dp_route_stream *st, const struct dp_route_range *ranges)
{
	uint32_t last = 0;

	for (uint32_t b = 0; b <= DP_ROUTE_BUCKETS; b++) {
		hashkey_t low = b == DP_ROUTE_BUCKETS ? HASHKEY_MAX : (hashkey_t)b << 120;

		while (last + 1 < st->range_count && ranges[last + 1].start <= low)
			last++;
		st->bucket[b] = last;
	}
}

/* Sorts, links each stream to its run of ranges and refuses overlaps. */
static int
dp_route_table_index(struct dp_route_table *t)
{
	qsort(t->streams, t->stream_count, sizeof(*t->streams), dp_route_stream_cmp);
	qsort(t->ranges, t->range_count, sizeof(*t->ranges), dp_route_range_cmp);
	for (uint32_t r = 0; r < t->range_count; r++) {
		if (r > 0 && t->ranges[r - 1].stream_id == t->ranges[r].stream_id &&
		    t->ranges[r - 1].end >= t->ranges[r].start)
			return -EINVAL;
	}
	for (uint32_t s = 0; s < t->stream_count; s++) {
		struct dp_route_stream *st = &t->streams[s];

		st->range_first = 0;
		st->range_count = 0;
		for (uint32_t r = 0; r < t->range_count; r++) {
			if (t->ranges[r].stream_id != st->stream_id)
				continue;
			if (st->range_count == 0)
				st->range_first = r;
			st->range_count++;
		}
		st->bucket = t->buckets + (size_t)s * (DP_ROUTE_BUCKETS + 1);
		dp_route_buckets_fill(st, &t->ranges[st->range_first]);
	}
	return 0;
}

static struct dp_route_table *
dp_route_table_build(const struct dp_route_builder *b, int *rc_out)
{
	size_t streams_size = (size_t)b->t.stream_count * sizeof(struct dp_route_stream);
	size_t ranges_size = (size_t)b->t.range_count * sizeof(struct dp_route_range);
	size_t buckets_size = (size_t)b->t.stream_count * (DP_ROUTE_BUCKETS + 1) * sizeof(uint32_t);
	size_t hi_size = (size_t)b->t.range_count * sizeof(uint64_t);
	struct dp_route_table *t = calloc(1, sizeof(*t) + streams_size + ranges_size + hi_size +
					     buckets_size + 16);

	if (t == NULL) {
		*rc_out = -ENOMEM;
		return NULL;
	}
	t->ranges = (struct dp_route_range *)RTE_ALIGN_CEIL((uintptr_t)(t + 1), 16);
	t->streams = (struct dp_route_stream *)((uint8_t *)t->ranges + ranges_size);
	t->start_hi = (uint64_t *)RTE_ALIGN_CEIL((uintptr_t)((uint8_t *)t->streams + streams_size),
						 8);
	t->buckets = (uint32_t *)(t->start_hi + b->t.range_count);
	t->stream_count = b->t.stream_count;
	t->range_count = b->t.range_count;
	memcpy(t->streams, b->t.streams, streams_size);
	memcpy(t->ranges, b->t.ranges, ranges_size);
	*rc_out = dp_route_table_index(t);
	if (*rc_out != 0) {
		free(t);
		return NULL;
	}
	for (uint32_t r = 0; r < t->range_count; r++)
		t->start_hi[r] = (uint64_t)(t->ranges[r].start >> 64);
	return t;
}

int
dp_route_publish(struct dp *dp, const struct dp_route_builder *builder)
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

/* Index (in the table) of the range owning `key` in the stream, or -1. */
static int64_t
dp_route_find_range(const struct dp_route_table *table, int32_t stream_index, hashkey_t key)
{
	const struct dp_route_stream *s;
	const struct dp_route_range *ranges;
	const uint64_t *start_hi;
	uint64_t key_hi = (uint64_t)(key >> 64);
	uint32_t low;
	uint32_t high;

	assert(stream_index >= 0 && (uint32_t)stream_index < table->stream_count);
	s = &table->streams[stream_index];
	if (s->range_count == 0)
		return -1;
	ranges = &table->ranges[s->range_first];
	start_hi = &table->start_hi[s->range_first];
	low = s->bucket[key >> 120];
	high = s->bucket[(key >> 120) + 1];
	if (ranges[low].start > key)
		return -1; /* Below the stream's first range. */
	/* The last range in low .. high whose start's top half is at or below key's ... */
	while (low < high) {
		uint32_t mid = low + (high - low + 1) / 2;

		if (start_hi[mid] <= key_hi)
			low = mid;
		else
			high = mid - 1;
	}
	/* ... then back over ranges sharing that top half but starting above key. */
	while (ranges[low].start > key)
		low--;
	if (key > ranges[low].end)
		return -1;
	return (int64_t)s->range_first + low;
}

int
dp_route_find_shard(const struct dp_route_table *table, int32_t stream_index, hashkey_t key,
		    uint64_t *shard_id_out)
{
	int64_t range = dp_route_find_range(table, stream_index, key);

	if (range < 0)
		return -ENOENT;
	*shard_id_out = table->ranges[range].shard_id;
	return 0;
}

/* Whether the stream has shard `shard_id` open (a scan: only on the refusal path). */
static bool
dp_route_shard_open(const struct dp_route_table *table, int32_t stream_index, uint64_t shard_id)
{
	const struct dp_route_stream *s = &table->streams[stream_index];

	for (uint32_t i = 0; i < s->range_count; i++)
		if (table->ranges[s->range_first + i].shard_id == shard_id)
			return true;
	return false;
}

int
dp_route_check_grouped(const struct dp_route_table *table, int32_t stream_index,
		       uint32_t shard_index, const uint8_t *hash_keys, uint32_t count,
		       uint64_t *shard_id_out, uint32_t *bad_index_out)
{
	uint64_t shard_id = LOG_SHARD_ID(table->streams[stream_index].stream_id, shard_index);
	int64_t range = dp_route_find_range(table, stream_index, hashkey_from_be_bytes(hash_keys));
	const struct dp_route_range *r;

	assert(count > 0);
	*bad_index_out = 0;
	if (range < 0 || table->ranges[range].shard_id != shard_id)
		return dp_route_shard_open(table, stream_index, shard_id) ? -ERANGE : -ENOENT;
	/* Ranges of open shards never change, so a compare per record is the whole check. */
	r = &table->ranges[range];
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
