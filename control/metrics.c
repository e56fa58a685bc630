/*
 * metrics.c - the tables behind /metrics and the status page, and their
 * Prometheus rendering. Recording functions run on the API server thread and
 * only add to counters of their own; rendering runs on the admin thread.
 *
 * Names follow Prometheus conventions; where CloudWatch has a Kinesis metric
 * the name says which (IncomingBytes -> sluice_stream_incoming_bytes_total,
 * PutRecords.Latency -> sluice_stream_put_records_latency_seconds, ...).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/base.h"
#include "control/api.h"
#include "control/metrics.h"

#define METRICS_NAME_WORDS ((SLUICE_STREAM_NAME_SIZE_MAX + 1 + 7) / 8)

/* One stream's series. Every field after stream_id is a single-writer counter. */
struct metrics_stream {
	uint64_t stream_id_plus1;         /* 0: free. Written last on open (release). */
	uint64_t name_words[METRICS_NAME_WORDS];
	uint64_t incoming_bytes;
	uint64_t incoming_records;
	uint64_t put_record_ok;
	uint64_t put_record_failed;
	uint64_t put_record_bytes;
	struct hist put_record_latency;
	uint64_t put_records_ok;          /* Requests with at least one record stored. */
	uint64_t put_records_failed;
	uint64_t put_records_bytes;
	uint64_t put_records_records_ok;
	uint64_t put_records_records_failed;
	uint64_t put_records_records_throttled;
	struct hist put_records_latency;
	uint64_t get_records_ok;
	uint64_t get_records_failed;
	uint64_t get_records_bytes;
	uint64_t get_records_records;
	struct hist get_records_latency;
	uint64_t get_records_iterator_age_ms;  /* The latest reply's (a gauge). */
	uint64_t read_exceeded;
	uint64_t write_exceeded;
};

struct metrics_api_op {
	struct hist latency;
	uint64_t status_class[6];         /* By status / 100: 1xx .. 5xx. */
	uint64_t errors[METRICS_ERROR_TYPES_MAX + 1];
};

/* The error types counted by name; index METRICS_ERROR_TYPES_MAX is "Other". */
static const char *const metrics_error_types[] = {
	"AccessDeniedException",
	"ExpiredIteratorException",
	"ExpiredNextTokenException",
	"IncompleteSignatureException",
	"InternalFailure",
	"InvalidArgumentException",
	"InvalidSignatureException",
	"LimitExceededException",
	"MissingAuthenticationTokenException",
	"ProvisionedThroughputExceededException",
	"ResourceInUseException",
	"ResourceNotFoundException",
	"SerializationException",
	"ServiceUnavailable",
	"UnknownOperationException",
	"UnrecognizedClientException",
	"ValidationException",
};
static_assert(ARRAY_SIZE(metrics_error_types) <= METRICS_ERROR_TYPES_MAX, "room for them");

static struct metrics_stream metrics_streams[SLUICE_STREAMS_MAX];

/*
 * One shard's series. `claim` is the slot's version: a number new at every
 * claim (0: free), written last (release); a reader that sees the same claim
 * before and after copying has one shard's figures. Every word is one writer's.
 */
struct metrics_shard {
	uint64_t claim;
	uint64_t stream_id;
	uint64_t stream_slot;             /* Its stream's name: metrics_streams[stream_slot]. */
	uint64_t shard_index;
	uint64_t enabled;                 /* enum kinesis_metric bits. */
	uint64_t incoming_bytes;
	uint64_t incoming_records;
	uint64_t outgoing_bytes;
	uint64_t outgoing_records;
	uint64_t write_exceeded;
	uint64_t read_exceeded;
	uint64_t iterator_age_ms;
};

/* A shard's cached series once refused (the refusal is counted once). */
#define METRICS_SHARD_REFUSED UINT32_MAX

static struct metrics_shard metrics_shards[METRICS_SHARD_SERIES_MAX];
/* The API thread's alone: slots in use, the last claim number, where to look next. */
static uint32_t metrics_shards_used;
static uint64_t metrics_shards_claims;
static uint32_t metrics_shards_hint;
static uint64_t metrics_shards_refused;   /* Read by the admin thread. */
static uint64_t metrics_fanout[METRICS_FANOUT_COUNT];
static uint64_t metrics_conn[METRICS_CONN_COUNT];
static const char *const *metrics_api_op_names;
static uint32_t metrics_api_op_count;
static struct metrics_api_op metrics_api_ops[METRICS_API_OPS_MAX + 1];
static bool metrics_ready_flags[METRICS_READY_COUNT];
/*
 * The reshard ring: slot i holds event number seq (seq % METRICS_RESHARDS_MAX == i)
 * once seq_plus1 says so. The writer zeroes seq_plus1, stores the event word by
 * word, then publishes seq_plus1 (release); a reader that sees the same
 * seq_plus1 before and after its word-by-word copy has one whole event.
 */
struct metrics_reshard_slot {
	uint64_t seq_plus1;
	struct metrics_reshard event;
};
static_assert(sizeof(struct metrics_reshard) % 8 == 0, "copied in words");
static struct metrics_reshard_slot metrics_reshards[METRICS_RESHARDS_MAX];
static uint64_t metrics_reshards_next;   /* The API thread's; read by the admin's. */
static uint64_t metrics_access_lines;
static uint64_t metrics_access_suppressed;
static bool metrics_on = true;   /* Written before the threads start, then only read. */

void
metrics_enable(bool enabled)
{
	metrics_on = enabled;
}

bool
metrics_enabled(void)
{
	return metrics_on;
}

/* ---- Recording ------------------------------------------------------------ */

static uint32_t
metrics_error_index(const char *type)
{
	for (uint32_t i = 0; i < ARRAY_SIZE(metrics_error_types); i++)
		if (strcmp(metrics_error_types[i], type) == 0)
			return i;
	return METRICS_ERROR_TYPES_MAX;
}

void
metrics_api_ops_register(const char *const *names, uint32_t count)
{
	assert(count <= METRICS_API_OPS_MAX);
	metrics_api_op_names = names;
	metrics_api_op_count = count;
}

uint32_t
metrics_api_op(const char *target, size_t target_size)
{
	const char *dot = target != NULL ? memchr(target, '.', target_size) : NULL;
	size_t size;

	if (dot == NULL || !metrics_on)
		return METRICS_API_OPS_MAX;
	size = target_size - (size_t)(dot + 1 - target);
	for (uint32_t i = 0; i < metrics_api_op_count; i++)
		if (strlen(metrics_api_op_names[i]) == size &&
		    memcmp(metrics_api_op_names[i], dot + 1, size) == 0)
			return i;
	return METRICS_API_OPS_MAX;
}

void
metrics_api_reply(uint32_t op, int http_status, const char *error_type, uint64_t latency_ns)
{
	struct metrics_api_op *m = &metrics_api_ops[op < metrics_api_op_count ? op :
						    METRICS_API_OPS_MAX];
	uint32_t status_class = http_status >= 100 && http_status < 600 ?
				(uint32_t)http_status / 100 : 5;

	if (!metrics_on)
		return;

	hist_add_single_writer(&m->latency, latency_ns, METRICS_LATENCY_BASE_NS);
	counter_add_single_writer(&m->status_class[status_class], 1);
	if (error_type != NULL && error_type[0] != '\0')
		counter_add_single_writer(&m->errors[metrics_error_index(error_type)], 1);
}

/* The slot of `ref`, claimed for its stream (and zeroed) when it held another. */
static struct metrics_stream *
metrics_stream_slot(const struct metrics_stream_ref *ref)
{
	struct metrics_stream *m;
	uint64_t words[METRICS_NAME_WORDS] = { 0 };

	assert(ref->slot < SLUICE_STREAMS_MAX);
	m = &metrics_streams[ref->slot];
	if (__atomic_load_n(&m->stream_id_plus1, __ATOMIC_RELAXED) == ref->stream_id + 1ull)
		return m;
	/* Readers skip the slot while its id is 0; every word is stored atomically. */
	__atomic_store_n(&m->stream_id_plus1, 0, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	strncpy((char *)words, ref->name, sizeof(words) - 1);
	for (uint32_t i = 0; i < METRICS_NAME_WORDS; i++)
		__atomic_store_n(&m->name_words[i], words[i], __ATOMIC_RELAXED);
	uint64_t *counters = &m->incoming_bytes;
	size_t count = (sizeof(*m) - offsetof(struct metrics_stream, incoming_bytes)) / 8;

	for (size_t i = 0; i < count; i++)
		__atomic_store_n(&counters[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->stream_id_plus1, ref->stream_id + 1ull, __ATOMIC_RELEASE);
	return m;
}

void
metrics_stream_put(const struct metrics_stream_ref *ref, const struct metrics_put *put)
{
	struct metrics_stream *m;
	bool ok = put->records_ok > 0;

	if (!metrics_on)
		return;
	m = metrics_stream_slot(ref);

	counter_add_single_writer(&m->incoming_records, put->records_ok);
	counter_add_single_writer(&m->incoming_bytes, put->bytes_ok);
	counter_add_single_writer(&m->write_exceeded, put->records_throttled);
	if (!put->put_records) {
		counter_add_single_writer(ok ? &m->put_record_ok : &m->put_record_failed, 1);
		counter_add_single_writer(&m->put_record_bytes, put->bytes_ok);
		hist_add_single_writer(&m->put_record_latency, put->latency_ns,
				       METRICS_LATENCY_BASE_NS);
		return;
	}
	counter_add_single_writer(ok ? &m->put_records_ok : &m->put_records_failed, 1);
	counter_add_single_writer(&m->put_records_bytes, put->bytes_ok);
	counter_add_single_writer(&m->put_records_records_ok, put->records_ok);
	counter_add_single_writer(&m->put_records_records_failed, put->records_failed);
	counter_add_single_writer(&m->put_records_records_throttled, put->records_throttled);
	hist_add_single_writer(&m->put_records_latency, put->latency_ns, METRICS_LATENCY_BASE_NS);
}

void
metrics_stream_get(const struct metrics_stream_ref *ref, uint32_t records, uint64_t bytes,
		   uint64_t latency_ns, uint64_t iterator_age_ms, bool throttled)
{
	struct metrics_stream *m;

	if (!metrics_on)
		return;
	m = metrics_stream_slot(ref);
	if (throttled) {
		counter_add_single_writer(&m->get_records_failed, 1);
		counter_add_single_writer(&m->read_exceeded, 1);
		return;
	}
	counter_add_single_writer(&m->get_records_ok, 1);
	counter_add_single_writer(&m->get_records_records, records);
	counter_add_single_writer(&m->get_records_bytes, bytes);
	hist_add_single_writer(&m->get_records_latency, latency_ns, METRICS_LATENCY_BASE_NS);
	__atomic_store_n(&m->get_records_iterator_age_ms, iterator_age_ms, __ATOMIC_RELAXED);
}

void
metrics_stream_forget(uint32_t stream_id)
{
	metrics_shards_enabled(stream_id, 0);
	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (__atomic_load_n(&metrics_streams[i].stream_id_plus1, __ATOMIC_RELAXED) ==
		    stream_id + 1ull)
			__atomic_store_n(&metrics_streams[i].stream_id_plus1, 0, __ATOMIC_RELEASE);
}

/* ---- Shard-level series --------------------------------------------------- */

static void
metrics_shard_free(struct metrics_shard *m)
{
	__atomic_store_n(&m->claim, 0, __ATOMIC_RELEASE);
	metrics_shards_used--;
}

/* A free slot claimed for `ref`'s shard, zeroed; NULL when all are in use. */
static struct metrics_shard *
metrics_shard_claim(const struct metrics_stream_ref *ref, const struct metrics_shard_add *add)
{
	uint64_t *words;

	if (metrics_shards_used == METRICS_SHARD_SERIES_MAX)
		return NULL;
	for (uint32_t n = 0; n < METRICS_SHARD_SERIES_MAX; n++) {
		uint32_t i = (metrics_shards_hint + n) % METRICS_SHARD_SERIES_MAX;
		struct metrics_shard *m = &metrics_shards[i];

		if (__atomic_load_n(&m->claim, __ATOMIC_RELAXED) != 0)
			continue;
		words = &m->stream_id;
		for (size_t w = 0; w < (sizeof(*m) - sizeof(m->claim)) / 8; w++)
			__atomic_store_n(&words[w], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&m->stream_id, ref->stream_id, __ATOMIC_RELAXED);
		__atomic_store_n(&m->stream_slot, ref->slot, __ATOMIC_RELAXED);
		__atomic_store_n(&m->shard_index, add->shard_index, __ATOMIC_RELAXED);
		__atomic_store_n(&m->enabled, add->enabled, __ATOMIC_RELAXED);
		__atomic_store_n(&m->claim, ++metrics_shards_claims, __ATOMIC_RELEASE);
		metrics_shards_used++;
		metrics_shards_hint = i + 1;
		return m;
	}
	/* metrics_shards_used counts every claimed slot: a free one was found above. */
	assert(false);
	return NULL;
}

/* The series `*series` names when it is still this shard's, else a new one (or NULL). */
static struct metrics_shard *
metrics_shard_find(const struct metrics_stream_ref *ref, uint32_t *series,
		   const struct metrics_shard_add *add)
{
	struct metrics_shard *m;

	if (*series != 0 && *series <= METRICS_SHARD_SERIES_MAX) {
		m = &metrics_shards[*series - 1];
		if (__atomic_load_n(&m->claim, __ATOMIC_RELAXED) != 0 &&
		    m->stream_id == ref->stream_id && m->shard_index == add->shard_index)
			return m;
	}
	m = metrics_shard_claim(ref, add);
	if (m == NULL) {
		if (*series != METRICS_SHARD_REFUSED)
			counter_add_single_writer(&metrics_shards_refused, 1);
		*series = METRICS_SHARD_REFUSED;
		return NULL;
	}
	*series = (uint32_t)(m - metrics_shards) + 1;
	return m;
}

void
metrics_shard_record(const struct metrics_stream_ref *ref, uint32_t *series,
		     const struct metrics_shard_add *add)
{
	struct metrics_shard *m;

	if (!metrics_on || add->enabled == 0)
		return;
	(void)metrics_stream_slot(ref);   /* Holds the name the series are labelled with. */
	m = metrics_shard_find(ref, series, add);
	if (m == NULL)
		return;
	if (m->enabled != add->enabled)
		__atomic_store_n(&m->enabled, add->enabled, __ATOMIC_RELAXED);
	counter_add_single_writer(&m->incoming_bytes, add->incoming_bytes);
	counter_add_single_writer(&m->incoming_records, add->incoming_records);
	counter_add_single_writer(&m->outgoing_bytes, add->outgoing_bytes);
	counter_add_single_writer(&m->outgoing_records, add->outgoing_records);
	counter_add_single_writer(&m->write_exceeded, add->write_exceeded);
	counter_add_single_writer(&m->read_exceeded, add->read_exceeded);
	if (add->iterator_age)
		__atomic_store_n(&m->iterator_age_ms, add->iterator_age_ms, __ATOMIC_RELAXED);
}

void
metrics_shards_enabled(uint32_t stream_id, uint32_t enabled)
{
	for (uint32_t i = 0; i < METRICS_SHARD_SERIES_MAX; i++) {
		struct metrics_shard *m = &metrics_shards[i];

		if (__atomic_load_n(&m->claim, __ATOMIC_RELAXED) == 0 || m->stream_id != stream_id)
			continue;
		if (enabled == 0)
			metrics_shard_free(m);
		else
			__atomic_store_n(&m->enabled, enabled, __ATOMIC_RELAXED);
	}
}

void
metrics_fanout_add(enum metrics_fanout_counter counter, uint64_t n)
{
	assert(counter < METRICS_FANOUT_COUNT);
	counter_add_single_writer(&metrics_fanout[counter], n);
}

void
metrics_conn_add(enum metrics_conn_counter counter)
{
	assert(counter < METRICS_CONN_COUNT);
	counter_add_single_writer(&metrics_conn[counter], 1);
}

void
metrics_reshard_note(const struct metrics_reshard *event)
{
	uint64_t seq = metrics_reshards_next;
	struct metrics_reshard_slot *slot = &metrics_reshards[seq % METRICS_RESHARDS_MAX];
	const uint64_t *src = (const uint64_t *)(const void *)event;
	uint64_t *dst = (uint64_t *)(void *)&slot->event;

	__atomic_store_n(&slot->seq_plus1, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t w = 0; w < sizeof(*event) / 8; w++)
		__atomic_store_n(&dst[w], src[w], __ATOMIC_RELAXED);
	__atomic_store_n(&slot->seq_plus1, seq + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&metrics_reshards_next, seq + 1, __ATOMIC_RELEASE);
}

/*
 * The reader's side of every versioned table here: copies `size` bytes (whole
 * words) from `src` while `*version` holds one non-zero value, and returns it;
 * 0 when the entry is free or was rewritten while copying (the copy is torn).
 */
static uint64_t
metrics_copy_versioned(const uint64_t *version, const void *src, void *dst, size_t size)
{
	const uint64_t *from = src;
	uint64_t *to = dst;
	uint64_t v = __atomic_load_n(version, __ATOMIC_ACQUIRE);

	assert(size % 8 == 0);
	if (v == 0)
		return 0;
	for (size_t w = 0; w < size / 8; w++)
		to[w] = __atomic_load_n(&from[w], __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(version, __ATOMIC_RELAXED) == v ? v : 0;
}

/* Event `seq` into *out when its slot still holds it, whole. */
static bool
metrics_reshard_copy(uint64_t seq, struct metrics_reshard *out)
{
	const struct metrics_reshard_slot *slot = &metrics_reshards[seq % METRICS_RESHARDS_MAX];

	return metrics_copy_versioned(&slot->seq_plus1, &slot->event, out, sizeof(*out)) ==
	       seq + 1;
}

uint32_t
metrics_reshard_history(struct metrics_reshard *out, uint32_t count)
{
	uint64_t next = __atomic_load_n(&metrics_reshards_next, __ATOMIC_ACQUIRE);
	uint64_t span = count < METRICS_RESHARDS_MAX ? count : METRICS_RESHARDS_MAX;
	uint64_t first = next > span ? next - span : 0;
	uint32_t n = 0;

	for (uint64_t seq = first; seq < next; seq++)
		if (metrics_reshard_copy(seq, &out[n]))
			n++;
	return n;
}

void
metrics_ready_set(enum metrics_ready what, bool ready)
{
	assert(what < METRICS_READY_COUNT);
	__atomic_store_n(&metrics_ready_flags[what], ready, __ATOMIC_RELEASE);
}

static const char *const metrics_ready_names[METRICS_READY_COUNT] = {
	[METRICS_READY_LOG] = "log",
	[METRICS_READY_METADATA] = "metadata",
	[METRICS_READY_API] = "api",
	[METRICS_READY_DATAPLANE] = "dataplane",
};

bool
metrics_ready_all(bool dataplane_enabled, const char **missing_out)
{
	for (uint32_t i = 0; i < METRICS_READY_COUNT; i++) {
		if (i == METRICS_READY_DATAPLANE && !dataplane_enabled)
			continue;
		if (!__atomic_load_n(&metrics_ready_flags[i], __ATOMIC_ACQUIRE)) {
			*missing_out = metrics_ready_names[i];
			return false;
		}
	}
	*missing_out = NULL;
	return true;
}

/* ---- Reading -------------------------------------------------------------- */

void
metrics_printf(struct metrics_out *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out->data + out->size, out->capacity - out->size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= out->capacity - out->size) {
		out->overflow = true;
		return;
	}
	out->size += (size_t)n;
}

/* Relaxed copy of slot `i`; false when free or reused while copying. */
static bool
metrics_stream_copy(uint32_t i, struct metrics_stream *copy)
{
	const struct metrics_stream *m = &metrics_streams[i];
	uint64_t id = metrics_copy_versioned(&m->stream_id_plus1, m, copy, sizeof(*m));

	static_assert(sizeof(*m) % 8 == 0, "a slot is whole words");
	if (id == 0)
		return false;
	((char *)copy->name_words)[sizeof(copy->name_words) - 1] = '\0';
	copy->stream_id_plus1 = id;
	return true;
}

static void
metrics_view_fill(const struct metrics_stream *copy_in, struct metrics_stream_view *v)
{
	const struct metrics_stream *c = copy_in;

	memset(v, 0, sizeof(*v));
	v->stream_id = (uint32_t)(c->stream_id_plus1 - 1);
	memcpy(v->name, c->name_words, sizeof(v->name) - 1); /* NUL-padded. */
	v->incoming_bytes = c->incoming_bytes;
	v->incoming_records = c->incoming_records;
	v->put_requests = c->put_record_ok + c->put_record_failed + c->put_records_ok +
			  c->put_records_failed;
	v->put_latency_ns_sum = c->put_record_latency.sum + c->put_records_latency.sum;
	v->get_records = c->get_records_records;
	v->get_bytes = c->get_records_bytes;
	v->write_exceeded = c->write_exceeded;
	v->read_exceeded = c->read_exceeded;
	v->iterator_age_ms = c->get_records_iterator_age_ms;
}

uint32_t
metrics_stream_views(struct metrics_stream_view *views, uint32_t count)
{
	static struct metrics_stream copy; /* Admin thread only. */
	uint32_t n = 0;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX && n < count; i++)
		if (metrics_stream_copy(i, &copy))
			metrics_view_fill(&copy, &views[n++]);
	return n;
}

bool
metrics_stream_view(uint32_t stream_id, struct metrics_stream_view *v)
{
	static struct metrics_stream copy; /* Admin thread only. */

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		if (__atomic_load_n(&metrics_streams[i].stream_id_plus1, __ATOMIC_RELAXED) !=
		    stream_id + 1ull || !metrics_stream_copy(i, &copy))
			continue;
		metrics_view_fill(&copy, v);
		return true;
	}
	return false;
}

void
metrics_family(struct metrics_out *out, const char *name, const char *type, const char *help)
{
	metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metrics_hist(struct metrics_out *out, const char *name, const char *labels, const struct hist *h,
	     uint64_t base, double scale)
{
	uint64_t cumulative = 0;
	const char *sep = labels[0] != '\0' ? "," : "";

	for (uint32_t i = 0; i + 1 < HIST_BUCKETS; i++) {
		cumulative += h->buckets[i];
		metrics_printf(out, "%s_bucket{%s%sle=\"%.9g\"} %llu\n", name, labels, sep,
			       (double)(base << i) * scale, (unsigned long long)cumulative);
	}
	cumulative += h->buckets[HIST_BUCKETS - 1];
	metrics_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
		       (unsigned long long)cumulative);
	metrics_printf(out, "%s_sum{%s} %.9g\n", name, labels, (double)h->sum * scale);
	metrics_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cumulative);
}

/* A stream name as a label value: names are [a-zA-Z0-9_.-], nothing to escape. */
static void
metrics_stream_labels(const struct metrics_stream *m, char *buf, size_t size)
{
	snprintf(buf, size, "stream=\"%s\"", (const char *)m->name_words);
}

struct metrics_stream_counter {
	const char *name;
	const char *help;
	size_t offset;
	const char *extra_label;   /* Added to stream="...", or NULL. */
};

#define MS(field) offsetof(struct metrics_stream, field)

/* Consecutive rows with the same name are one family. */
static const struct metrics_stream_counter metrics_stream_counters[] = {
	{ "sluice_stream_incoming_bytes_total",
	  "Data bytes of records stored (CloudWatch IncomingBytes).", MS(incoming_bytes), NULL },
	{ "sluice_stream_incoming_records_total",
	  "Records stored (CloudWatch IncomingRecords).", MS(incoming_records), NULL },
	{ "sluice_stream_put_record_requests_total",
	  "PutRecord calls by result (CloudWatch PutRecord.Success).", MS(put_record_ok),
	  "result=\"success\"" },
	{ "sluice_stream_put_record_requests_total", NULL, MS(put_record_failed),
	  "result=\"failure\"" },
	{ "sluice_stream_put_record_bytes_total",
	  "Data bytes stored by PutRecord (CloudWatch PutRecord.Bytes).", MS(put_record_bytes),
	  NULL },
	{ "sluice_stream_put_records_requests_total",
	  "PutRecords calls by result; success: at least one record stored "
	  "(CloudWatch PutRecords.Success).", MS(put_records_ok), "result=\"success\"" },
	{ "sluice_stream_put_records_requests_total", NULL, MS(put_records_failed),
	  "result=\"failure\"" },
	{ "sluice_stream_put_records_bytes_total",
	  "Data bytes stored by PutRecords (CloudWatch PutRecords.Bytes).",
	  MS(put_records_bytes), NULL },
	{ "sluice_stream_put_records_records_total",
	  "PutRecords records by result (CloudWatch PutRecords.SuccessfulRecords, "
	  ".FailedRecords).", MS(put_records_records_ok), "result=\"successful\"" },
	{ "sluice_stream_put_records_records_total", NULL, MS(put_records_records_failed),
	  "result=\"failed\"" },
	{ "sluice_stream_put_records_throttled_records_total",
	  "PutRecords records refused as throttled (CloudWatch PutRecords.ThrottledRecords).",
	  MS(put_records_records_throttled), NULL },
	{ "sluice_stream_get_records_requests_total",
	  "GetRecords calls by result (CloudWatch GetRecords.Success).", MS(get_records_ok),
	  "result=\"success\"" },
	{ "sluice_stream_get_records_requests_total", NULL, MS(get_records_failed),
	  "result=\"failure\"" },
	{ "sluice_stream_get_records_bytes_total",
	  "Data bytes returned by GetRecords (CloudWatch GetRecords.Bytes).",
	  MS(get_records_bytes), NULL },
	{ "sluice_stream_get_records_records_total",
	  "Records returned by GetRecords (CloudWatch GetRecords.Records).",
	  MS(get_records_records), NULL },
	{ "sluice_stream_read_throughput_exceeded_total",
	  "GetRecords calls throttled (CloudWatch ReadProvisionedThroughputExceeded).",
	  MS(read_exceeded), NULL },
	{ "sluice_stream_write_throughput_exceeded_total",
	  "Records refused as throttled (CloudWatch WriteProvisionedThroughputExceeded).",
	  MS(write_exceeded), NULL },
};

struct metrics_stream_hist {
	const char *name;
	const char *help;
	size_t offset;
};

static const struct metrics_stream_hist metrics_stream_hists[] = {
	{ "sluice_stream_put_record_latency_seconds",
	  "PutRecord latency, decoded request to durable reply (CloudWatch PutRecord.Latency).",
	  MS(put_record_latency) },
	{ "sluice_stream_put_records_latency_seconds",
	  "PutRecords latency, decoded request to durable reply (CloudWatch "
	  "PutRecords.Latency).",
	  MS(put_records_latency) },
	{ "sluice_stream_get_records_latency_seconds",
	  "GetRecords latency (CloudWatch GetRecords.Latency).", MS(get_records_latency) },
};

/* Snapshots of the live streams, taken once per scrape (admin thread only). */
static struct metrics_stream metrics_snapshot[SLUICE_STREAMS_MAX];

static uint32_t
metrics_streams_snapshot(void)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++)
		if (metrics_stream_copy(i, &metrics_snapshot[count]))
			count++;
	return count;
}

static void
metrics_render_streams(struct metrics_out *out)
{
	uint32_t count = metrics_streams_snapshot();
	char labels[SLUICE_STREAM_NAME_SIZE_MAX + 64];

	for (size_t f = 0; f < ARRAY_SIZE(metrics_stream_counters); f++) {
		const struct metrics_stream_counter *c = &metrics_stream_counters[f];

		if (c->help != NULL)
			metrics_family(out, c->name, "counter", c->help);
		for (uint32_t s = 0; s < count; s++) {
			const char *base = (const char *)&metrics_snapshot[s];
			uint64_t value;

			memcpy(&value, base + c->offset, sizeof(value));
			metrics_stream_labels(&metrics_snapshot[s], labels, sizeof(labels));
			metrics_printf(out, "%s{%s%s%s} %llu\n", c->name, labels,
				       c->extra_label != NULL ? "," : "",
				       c->extra_label != NULL ? c->extra_label : "",
				       (unsigned long long)value);
		}
	}
	for (size_t f = 0; f < ARRAY_SIZE(metrics_stream_hists); f++) {
		const struct metrics_stream_hist *h = &metrics_stream_hists[f];

		metrics_family(out, h->name, "histogram", h->help);
		for (uint32_t s = 0; s < count; s++) {
			struct hist copy;

			memcpy(&copy, (const char *)&metrics_snapshot[s] + h->offset, sizeof(copy));
			metrics_stream_labels(&metrics_snapshot[s], labels, sizeof(labels));
			metrics_hist(out, h->name, labels, &copy, METRICS_LATENCY_BASE_NS, 1e-9);
		}
	}
	metrics_family(out, "sluice_stream_get_records_iterator_age_seconds", "gauge",
		       "How far behind the shard's tail the latest GetRecords read "
		       "(CloudWatch GetRecords.IteratorAgeMilliseconds).");
	for (uint32_t s = 0; s < count; s++) {
		metrics_stream_labels(&metrics_snapshot[s], labels, sizeof(labels));
		metrics_printf(out, "sluice_stream_get_records_iterator_age_seconds{%s} %.3f\n",
			       labels, (double)metrics_snapshot[s].get_records_iterator_age_ms / 1e3);
	}
}

const char *
metrics_api_op_name(uint32_t op)
{
	return op < metrics_api_op_count ? metrics_api_op_names[op] : "Other";
}

void
metrics_access_log(bool written)
{
	/* Counted even with [admin] metrics off: they say what the log left out. */
	counter_add_single_writer(written ? &metrics_access_lines : &metrics_access_suppressed, 1);
}

static void
metrics_render_access_log(struct metrics_out *out)
{
	metrics_family(out, "sluice_access_log_lines_total", "counter",
		       "Access log lines written ([admin] access_log_sample).");
	metrics_printf(out, "sluice_access_log_lines_total %llu\n",
		       (unsigned long long)counter_read(&metrics_access_lines));
	metrics_family(out, "sluice_access_log_suppressed_total", "counter",
		       "Error lines the access log left out (over its per-second limit).");
	metrics_printf(out, "sluice_access_log_suppressed_total %llu\n",
		       (unsigned long long)counter_read(&metrics_access_suppressed));
}

static void
metrics_render_api(struct metrics_out *out)
{
	static struct metrics_api_op ops[METRICS_API_OPS_MAX + 1]; /* Admin thread only. */
	char labels[96];

	for (uint32_t op = 0; op <= METRICS_API_OPS_MAX; op++) {
		const uint64_t *src = (const uint64_t *)(const void *)&metrics_api_ops[op];
		uint64_t *dst = (uint64_t *)(void *)&ops[op];

		for (size_t w = 0; w < sizeof(ops[op]) / 8; w++)
			dst[w] = __atomic_load_n(&src[w], __ATOMIC_RELAXED);
	}
	metrics_family(out, "sluice_api_request_duration_seconds", "histogram",
		       "Kinesis API calls, first byte to reply, by operation.");
	for (uint32_t op = 0; op <= METRICS_API_OPS_MAX; op++) {
		if (op >= metrics_api_op_count && op < METRICS_API_OPS_MAX)
			continue;
		snprintf(labels, sizeof(labels), "operation=\"%s\"", metrics_api_op_name(op));
		metrics_hist(out, "sluice_api_request_duration_seconds", labels, &ops[op].latency,
			     METRICS_LATENCY_BASE_NS, 1e-9);
	}
	metrics_family(out, "sluice_api_responses_total", "counter",
		       "Kinesis API replies by operation and status class.");
	for (uint32_t op = 0; op <= METRICS_API_OPS_MAX; op++)
		for (uint32_t c = 1; c < 6; c++)
			if (ops[op].status_class[c] != 0)
				metrics_printf(out, "sluice_api_responses_total{operation=\"%s\","
					       "code=\"%uxx\"} %llu\n", metrics_api_op_name(op), c,
					       (unsigned long long)ops[op].status_class[c]);
	metrics_family(out, "sluice_api_errors_total", "counter",
		       "Kinesis API error replies by operation and AWS error type.");
	for (uint32_t op = 0; op <= METRICS_API_OPS_MAX; op++)
		for (uint32_t t = 0; t <= METRICS_ERROR_TYPES_MAX; t++)
			if (ops[op].errors[t] != 0)
				metrics_printf(out, "sluice_api_errors_total{operation=\"%s\","
					       "type=\"%s\"} %llu\n", metrics_api_op_name(op),
					       t < ARRAY_SIZE(metrics_error_types) ?
					       metrics_error_types[t] : "Other",
					       (unsigned long long)ops[op].errors[t]);
}

static void
metrics_render_ready(bool dataplane_enabled, struct metrics_out *out)
{
	metrics_family(out, "sluice_ready", "gauge",
		       "1 when the part is ready (/readyz needs all; dataplane only when enabled).");
	for (uint32_t i = 0; i < METRICS_READY_COUNT; i++) {
		if (i == METRICS_READY_DATAPLANE && !dataplane_enabled)
			continue;
		metrics_printf(out, "sluice_ready{part=\"%s\"} %d\n", metrics_ready_names[i],
			       __atomic_load_n(&metrics_ready_flags[i], __ATOMIC_ACQUIRE) ? 1 : 0);
	}
}

/* Relaxed copy of shard series `i`; false when free or reclaimed while copying. */
static bool
metrics_shard_copy(uint32_t i, struct metrics_shard *copy)
{
	static_assert(sizeof(*copy) % 8 == 0, "a slot is whole words");
	return metrics_copy_versioned(&metrics_shards[i].claim, &metrics_shards[i], copy,
				      sizeof(*copy)) != 0;
}

/* `stream="...",shard="shardId-..."` of a copied series; false when its stream is gone. */
static bool
metrics_shard_labels(const struct metrics_shard *c, char *buf, size_t size)
{
	const struct metrics_stream *st = &metrics_streams[c->stream_slot];
	uint64_t words[METRICS_NAME_WORDS];

	if (metrics_copy_versioned(&st->stream_id_plus1, st->name_words, words, sizeof(words)) !=
	    c->stream_id + 1)
		return false;
	((char *)words)[sizeof(words) - 1] = '\0';
	/* The ShardId kinesis_shard_id_format() writes (not linked with this file's tests). */
	snprintf(buf, size, "stream=\"%s\",shard=\"shardId-%012u\"", (const char *)words,
		 (unsigned)c->shard_index);
	return true;
}

struct metrics_shard_family {
	const char *name;
	const char *type;
	const char *help;
	uint32_t metric;       /* The enum kinesis_metric bit that exports it. */
	size_t offset;
	double scale;          /* Into the family's unit. */
};

#define MSH(field) offsetof(struct metrics_shard, field)

/* CloudWatch's shard-level Kinesis metrics, each shown when its bit is on. */
static const struct metrics_shard_family metrics_shard_families[] = {
	{ "sluice_shard_incoming_bytes_total", "counter",
	  "Data bytes stored in the shard (CloudWatch shard-level IncomingBytes).",
	  KINESIS_METRIC_INCOMING_BYTES, MSH(incoming_bytes), 1 },
	{ "sluice_shard_incoming_records_total", "counter",
	  "Records stored in the shard (CloudWatch shard-level IncomingRecords).",
	  KINESIS_METRIC_INCOMING_RECORDS, MSH(incoming_records), 1 },
	{ "sluice_shard_outgoing_bytes_total", "counter",
	  "Data bytes read from the shard by GetRecords and SubscribeToShard "
	  "(CloudWatch shard-level OutgoingBytes).",
	  KINESIS_METRIC_OUTGOING_BYTES, MSH(outgoing_bytes), 1 },
	{ "sluice_shard_outgoing_records_total", "counter",
	  "Records read from the shard by GetRecords and SubscribeToShard "
	  "(CloudWatch shard-level OutgoingRecords).",
	  KINESIS_METRIC_OUTGOING_RECORDS, MSH(outgoing_records), 1 },
	{ "sluice_shard_write_throughput_exceeded_total", "counter",
	  "Records refused as throttled (CloudWatch shard-level "
	  "WriteProvisionedThroughputExceeded).",
	  KINESIS_METRIC_WRITE_THROTTLED, MSH(write_exceeded), 1 },
	{ "sluice_shard_read_throughput_exceeded_total", "counter",
	  "GetRecords calls throttled (CloudWatch shard-level "
	  "ReadProvisionedThroughputExceeded).",
	  KINESIS_METRIC_READ_THROTTLED, MSH(read_exceeded), 1 },
	{ "sluice_shard_iterator_age_seconds", "gauge",
	  "How far behind the shard's tail the latest GetRecords read (CloudWatch "
	  "shard-level IteratorAgeMilliseconds).",
	  KINESIS_METRIC_ITERATOR_AGE, MSH(iterator_age_ms), 1e-3 },
};

/* Copies of the series in use, taken once per scrape (admin thread only). */
static struct metrics_shard metrics_shard_snapshot[METRICS_SHARD_SERIES_MAX];

static void
metrics_render_shards(struct metrics_out *out)
{
	static char labels[METRICS_SHARD_SERIES_MAX][SLUICE_STREAM_NAME_SIZE_MAX + 64];
	uint32_t count = 0;

	for (uint32_t i = 0; i < METRICS_SHARD_SERIES_MAX; i++)
		if (metrics_shard_copy(i, &metrics_shard_snapshot[count]) &&
		    metrics_shard_labels(&metrics_shard_snapshot[count], labels[count],
					 sizeof(labels[count])))
			count++;
	for (size_t f = 0; f < ARRAY_SIZE(metrics_shard_families); f++) {
		const struct metrics_shard_family *fam = &metrics_shard_families[f];

		metrics_family(out, fam->name, fam->type, fam->help);
		for (uint32_t s = 0; s < count; s++) {
			const struct metrics_shard *c = &metrics_shard_snapshot[s];
			uint64_t value;

			if ((c->enabled & fam->metric) == 0)
				continue;
			memcpy(&value, (const char *)c + fam->offset, sizeof(value));
			metrics_printf(out, "%s{%s} %.17g\n", fam->name, labels[s],
				       (double)value * fam->scale);
		}
	}
	metrics_family(out, "sluice_shard_series_refused_total", "counter",
		       "Shards with enhanced monitoring on left without series: over "
		       "METRICS_SHARD_SERIES_MAX (counted once per shard).");
	metrics_printf(out, "sluice_shard_series_refused_total %llu\n",
		       (unsigned long long)counter_read(&metrics_shards_refused));
}

struct metrics_fanout_row {
	const char *name;
	const char *help;
	enum metrics_fanout_counter counter;
};

/* Consecutive rows with the same name are one family (help on the first). */
static const struct metrics_fanout_row metrics_fanout_rows[] = {
	{ "sluice_fanout_subscriptions_total", "SubscribeToShard subscriptions started.",
	  METRICS_FANOUT_SUBSCRIPTIONS_STARTED },
	{ "sluice_fanout_events_total", "SubscribeToShardEvents sent.", METRICS_FANOUT_EVENTS },
	{ "sluice_fanout_records_total", "Records delivered in SubscribeToShardEvents.",
	  METRICS_FANOUT_RECORDS },
	{ "sluice_fanout_bytes_total", "Data bytes of the records delivered by SubscribeToShard.",
	  METRICS_FANOUT_BYTES },
	{ "sluice_fanout_events_deferred_total",
	  "Events a slow reader's stream refused (sent again once it takes more).",
	  METRICS_FANOUT_EVENTS_DEFERRED },
	{ "sluice_api_streams_total",
	  "Streaming answers (SubscribeToShard) by how they went: started, ended by the "
	  "server, gone (the client left first).", METRICS_FANOUT_STREAMS_STARTED },
	{ "sluice_api_stream_bytes_total",
	  "Bytes written into streaming answers, framing excluded.",
	  METRICS_FANOUT_STREAM_BYTES },
	{ "sluice_api_stream_writes_refused_total",
	  "Writes into streaming answers refused by reason: slow_reader (the peer had not "
	  "taken the last bytes), no_buffer (no pool buffer free).",
	  METRICS_FANOUT_WRITES_REFUSED },
};

static void
metrics_render_fanout(struct metrics_out *out)
{
	uint64_t v[METRICS_FANOUT_COUNT];

	/* Last to first: a subscription's finish is never read without its start. */
	static_assert(METRICS_FANOUT_SUBSCRIPTIONS_FINISHED > METRICS_FANOUT_SUBSCRIPTIONS_STARTED,
		      "finishes are read first");
	for (uint32_t i = METRICS_FANOUT_COUNT; i-- > 0;)
		v[i] = counter_read(&metrics_fanout[i]);
	for (size_t r = 0; r < ARRAY_SIZE(metrics_fanout_rows); r++) {
		const struct metrics_fanout_row *row = &metrics_fanout_rows[r];

		metrics_family(out, row->name, "counter", row->help);
		if (row->counter == METRICS_FANOUT_STREAMS_STARTED) {
			metrics_printf(out, "%s{result=\"started\"} %llu\n%s{result=\"ended\"} "
				       "%llu\n%s{result=\"gone\"} %llu\n", row->name,
				       (unsigned long long)v[METRICS_FANOUT_STREAMS_STARTED],
				       row->name, (unsigned long long)v[METRICS_FANOUT_STREAMS_ENDED],
				       row->name, (unsigned long long)v[METRICS_FANOUT_STREAMS_GONE]);
		} else if (row->counter == METRICS_FANOUT_WRITES_REFUSED) {
			metrics_printf(out, "%s{reason=\"slow_reader\"} %llu\n"
				       "%s{reason=\"no_buffer\"} %llu\n", row->name,
				       (unsigned long long)v[METRICS_FANOUT_WRITES_REFUSED],
				       row->name,
				       (unsigned long long)v[METRICS_FANOUT_WRITES_NO_BUFFER]);
		} else {
			metrics_printf(out, "%s %llu\n", row->name,
				       (unsigned long long)v[row->counter]);
		}
	}
	metrics_family(out, "sluice_fanout_subscriptions_open", "gauge",
		       "SubscribeToShard subscriptions delivering now.");
	metrics_printf(out, "sluice_fanout_subscriptions_open %llu\n",
		       (unsigned long long)(v[METRICS_FANOUT_SUBSCRIPTIONS_STARTED] -
					     v[METRICS_FANOUT_SUBSCRIPTIONS_FINISHED]));
}

/* sluice_api_connections_total's result label of each metrics_conn_counter. */
static const char *const metrics_conn_results[METRICS_CONN_COUNT] = {
	[METRICS_CONN_ACCEPTED] = "accepted",
	[METRICS_CONN_REFUSED] = "refused",
	[METRICS_CONN_EVICTED] = "evicted",
	[METRICS_CONN_SHED] = "shed",
	[METRICS_CONN_TIMED_OUT] = "timed_out",
};

static void
metrics_render_conns(struct metrics_out *out)
{
	metrics_family(out, "sluice_api_connections_total", "counter",
		       "API connections by what became of them: accepted; refused (the cap "
		       "reached, none evictable); evicted (the oldest unproven one, to let a new "
		       "one in); shed (out of descriptors); timed_out (idle or stalled "
		       "mid-request for idle_timeout_ms).");
	for (uint32_t i = 0; i < METRICS_CONN_COUNT; i++)
		metrics_printf(out, "sluice_api_connections_total{result=\"%s\"} %llu\n",
			       metrics_conn_results[i],
			       (unsigned long long)counter_read(&metrics_conn[i]));
}

void
metrics_render_tables(bool dataplane_enabled, struct metrics_out *out)
{
	metrics_render_ready(dataplane_enabled, out);
	metrics_render_streams(out);
	metrics_render_shards(out);
	metrics_render_api(out);
	metrics_render_fanout(out);
	metrics_render_conns(out);
	metrics_render_access_log(out);
}
