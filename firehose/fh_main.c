/*
 * fh_main.c - the engine's life cycle, the stream table and puts.
 *
 * A put takes a pending slot, fills log batches (all taken before any is
 * submitted, so a put without room appends nothing and the client can retry
 * without duplicating), submits them with cookie (slot << 32 | first record),
 * and answers from firehose_poll() when the last batch is durable.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/diag.h"
#include "common/hist.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

/* Rounds of waiting, 1 ms each, for puts still in the log at close. */
#define FH_DRAIN_ROUNDS 5000

struct fh_stream *
fh_stream_find(struct firehose *fh, const char *name)
{
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++)
		if (fh->streams[i].used && strcmp(fh->streams[i].spec.name, name) == 0)
			return &fh->streams[i];
	return NULL;
}

struct fh_stream *
fh_stream_by_id(struct firehose *fh, uint32_t id)
{
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++)
		if (fh->streams[i].used && fh->streams[i].id == id)
			return &fh->streams[i];
	return NULL;
}

static int
fh_alloc(struct firehose *fh)
{
	size_t out = 0;

	for (int c = 0; c < FIREHOSE_COMPRESSION_COUNT; c++)
		out = max_u64(out, fh_codec_bound((enum firehose_compression)c, FH_RAW_SIZE_MAX));
	/* Large but untouched until a cut needs it: the pages come as data does. */
	fh->raw = malloc(FH_RAW_SIZE_MAX);
	fh->out = malloc(out);
	fh->out_size = out;
	fh->pending = calloc(FIREHOSE_PENDING_MAX, sizeof(*fh->pending));
	fh->sources = calloc(FIREHOSE_STREAMS_MAX, sizeof(*fh->sources));
	return fh->raw == NULL || fh->out == NULL || fh->pending == NULL || fh->sources == NULL ?
	       -ENOMEM : 0;
}

int
firehose_open(const struct firehose_options *options, struct firehose **fh_out)
{
	struct firehose *fh = calloc(1, sizeof(*fh));
	int rc;

	if (fh == NULL)
		return -ENOMEM;
	if (pthread_mutex_init(&fh->lock, NULL) != 0 || pthread_cond_init(&fh->wake, NULL) != 0) {
		free(fh);  /* Neither allocates on Linux: cannot happen. */
		return -ENOMEM;
	}
	fh->log = options->log;
	fh->source_fn = options->source;
	fh->source_ctx = options->source_ctx;
	if (strlen(options->data_dir) >= sizeof(fh->data_dir) ||
	    strlen(options->local_root) >= sizeof(fh->local_root)) {
		free(fh);
		return -ENAMETOOLONG;
	}
	snprintf(fh->data_dir, sizeof(fh->data_dir), "%s", options->data_dir);
	snprintf(fh->local_root, sizeof(fh->local_root), "%s", options->local_root);
	rc = fh_alloc(fh);
	if (rc == 0)
		rc = fh_http_open(fh, options);
	if (rc == 0)
		rc = fh_lambda_open(fh, options);
	if (rc == 0)
		rc = fh_store_open(fh);
	if (rc == 0)
		rc = fh_s3_open(fh, &options->s3);
	if (rc == 0)
		rc = fh_partition_open(fh);
	if (rc == 0)
		rc = fh_store_load(fh);
	if (rc == 0)
		rc = fh_source_load(fh);
	if (rc == 0)
		rc = fh_settings_load(fh);
	for (uint32_t i = 0; rc == 0 && i < FIREHOSE_STREAMS_MAX; i++)
		if (fh->streams[i].used)
			fh_stats_publish(fh, &fh->streams[i]);
	for (uint32_t i = 0; rc == 0 && i < FIREHOSE_STREAMS_MAX; i++)
		if (fh->streams[i].used && fh->streams[i].spec.partitioning)
			rc = fh_partition_reserve(fh);
	if (rc == 0)
		rc = log_producer_open(fh->log, &fh->producer);
	if (rc == 0)
		rc = log_reader_open(fh->log, &fh->reader);
	if (rc == 0) {
		/* Armed before any put: no completion is posted unsignalled. Non-blocking. */
		fh->event_fd = log_producer_event_fd(fh->producer);
		rc = fh->event_fd < 0 ? fh->event_fd : 0;
	}
	if (rc == 0 && options->flusher_thread)
		rc = fh_thread_start(fh);
	if (rc != 0) {
		firehose_close(fh);
		return rc;
	}
	*fh_out = fh;
	return 0;
}

static void fh_completions(struct firehose *fh, bool answer);

void
firehose_close(struct firehose *fh)
{
	if (fh == NULL)
		return;
	fh_thread_stop(fh);
	for (int i = 0; fh->producer != NULL && fh->pending_count > 0 && i < FH_DRAIN_ROUNDS; i++) {
		fh_completions(fh, false);
		if (fh->pending_count > 0)
			usleep(1000);
	}
	if (fh->producer != NULL)
		log_producer_close(fh->producer);
	if (fh->reader != NULL)
		log_reader_close(fh->reader);
	fh_s3_close(fh);
	fh_partition_close(fh);
	fh_store_close(fh);
	fh_http_close(fh);
	fh_lambda_close(fh);
	free(fh->raw);
	free(fh->out);
	free(fh->pending);
	free(fh->sources);
	pthread_cond_destroy(&fh->wake);
	pthread_mutex_destroy(&fh->lock);
	free(fh);
}

/* ---- The stream table ------------------------------------------------------ */

static int
fh_create_locked(struct firehose *fh, const struct firehose_spec *spec, uint64_t now_ms)
{
	struct fh_stream *s = NULL;
	int rc;

	if (fh_stream_find(fh, spec->name) != NULL)
		return -EEXIST;
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX && s == NULL; i++)
		if (!fh->streams[i].used)
			s = &fh->streams[i];
	if (s == NULL)
		return -ENOSPC;
	if (spec->partitioning && (rc = fh_partition_reserve(fh)) != 0)
		return rc;
	memset(s, 0, sizeof(*s));
	s->spec = *spec;
	s->created_ms = now_ms;
	s->version = 1;
	if (spec->source_arn[0] != '\0') {
		s->source = &fh->sources[s - fh->streams];
		memset(s->source, 0, sizeof(*s->source));
		s->source->start_ms = now_ms;
	}
	rc = fh_store_insert(fh, s);
	if (rc != 0)
		return rc;
	s->direct.shard_id = LOG_SHARD_ID(FIREHOSE_LOG_STREAM_BASE + s->id, 0);
	s->used = true;
	fh_stats_publish(fh, s);
	fh_thread_wake(fh);
	return 0;
}

int
firehose_create(struct firehose *fh, const struct firehose_spec *spec, uint64_t now_ms)
{
	int rc;

	fh_lock(fh);
	rc = fh_create_locked(fh, spec, now_ms);
	fh_unlock(fh);
	return rc;
}

static int
fh_delete_locked(struct firehose *fh, const char *name)
{
	struct fh_stream *s = fh_stream_find(fh, name);
	int rc;

	if (s == NULL)
		return -ENOENT;
	rc = fh_store_delete(fh, s);
	if (rc == 0 && s->source != NULL)
		rc = fh_source_delete(fh, s);
	if (rc == 0)
		rc = fh_settings_delete(fh, s);
	if (rc != 0)
		return rc;
	/*
	 * The log forgets the shard; if this fails (or we crash first) its data only
	 * waits for retention: the id is never reused.
	 */
	rc = log_stream_delete(fh->log, FIREHOSE_LOG_STREAM_BASE + s->id);
	if (rc != 0 && rc != -ENOENT)
		diag_warn("firehose", "log_stream_delete(%s): %s", name, strerror(-rc));
	s->used = false;
	fh_stats_publish(fh, s);
	return 0;
}

int
firehose_delete(struct firehose *fh, const char *name)
{
	int rc;

	fh_lock(fh);
	rc = fh_delete_locked(fh, name);
	fh_unlock(fh);
	return rc;
}

static int
fh_describe_locked(struct firehose *fh, const char *name, struct firehose_info *info_out)
{
	const struct fh_stream *s = fh_stream_find(fh, name);

	if (s == NULL)
		return -ENOENT;
	*info_out = (struct firehose_info){
		.spec = s->spec, .encryption = s->encryption, .created_ms = s->created_ms,
		.updated_ms = s->updated_ms, .version = s->version,
		.records_delivered = counter_read(&s->stats->delivered_records),
		.objects_delivered = counter_read(&s->stats->delivered_objects),
		.records_lost = counter_read(&s->stats->records_lost),
		.delivered_seq = s->direct.delivered,
		.source_start_ms = s->source != NULL ? s->source->start_ms : 0,
	};
	return 0;
}

int
firehose_describe(struct firehose *fh, const char *name, struct firehose_info *info_out)
{
	int rc;

	fh_lock(fh);
	rc = fh_describe_locked(fh, name, info_out);
	fh_unlock(fh);
	return rc;
}

static uint32_t
fh_list_locked(struct firehose *fh, const char *after,
	       char names_out[][FIREHOSE_NAME_SIZE_MAX + 1], uint32_t count)
{
	const char *last = after;
	uint32_t total = 0, n = 0;

	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++)
		total += fh->streams[i].used &&
			 (after == NULL || strcmp(fh->streams[i].spec.name, after) > 0);
	/* Selection by repeated minimum: FIREHOSE_STREAMS_MAX is small. */
	while (n < count) {
		const char *best = NULL;

		for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++) {
			const char *name = fh->streams[i].spec.name;

			if (fh->streams[i].used && (last == NULL || strcmp(name, last) > 0) &&
			    (best == NULL || strcmp(name, best) < 0))
				best = name;
		}
		if (best == NULL)
			break;
		snprintf(names_out[n++], FIREHOSE_NAME_SIZE_MAX + 1, "%s", best);
		last = best;
	}
	return total;
}

uint32_t
firehose_list(struct firehose *fh, const char *after,
	      char names_out[][FIREHOSE_NAME_SIZE_MAX + 1], uint32_t count)
{
	uint32_t rc;

	fh_lock(fh);
	rc = fh_list_locked(fh, after, names_out, count);
	fh_unlock(fh);
	return rc;
}

/* ---- Figures for other threads ------------------------------------------------ */

void
fh_stats_publish(struct firehose *fh, struct fh_stream *s)
{
	struct fh_stats_slot *slot = &fh->stats[s - fh->streams];
	uint64_t words[FH_NAME_WORDS] = { 0 };
	uint64_t *w = (uint64_t *)(void *)slot;

	s->stats = slot;
	__atomic_store_n(&slot->id_plus1, 0, __ATOMIC_RELEASE);
	if (!s->used)
		return;
	memcpy(words, s->spec.name, strlen(s->spec.name));
	static_assert(sizeof(*slot) % 8 == 0, "a slot is whole words");
	for (size_t i = 1; i < sizeof(*slot) / 8; i++)  /* Counters from zero, a new name. */
		__atomic_store_n(&w[i], i <= FH_NAME_WORDS ? words[i - 1] : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->id_plus1, (uint64_t)s->id + 1, __ATOMIC_RELEASE);
}

static bool
fh_stats_copy(const struct fh_stats_slot *slot, struct fh_stats_slot *copy)
{
	const uint64_t *src = (const uint64_t *)(const void *)slot;
	uint64_t *dst = (uint64_t *)(void *)copy;
	uint64_t id = __atomic_load_n(&slot->id_plus1, __ATOMIC_ACQUIRE);

	if (id == 0)
		return false;
	for (size_t i = 0; i < sizeof(*slot) / 8; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&slot->id_plus1, __ATOMIC_RELAXED) == id;
}

uint32_t
firehose_stats_read(const struct firehose *fh, struct firehose_stats *out, uint32_t count)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX && n < count; i++) {
		struct fh_stats_slot c;

		if (!fh_stats_copy(&fh->stats[i], &c))
			continue;
		memcpy(out[n].name, c.name_words, FIREHOSE_NAME_SIZE_MAX);
		out[n].name[FIREHOSE_NAME_SIZE_MAX] = '\0';
		out[n].incoming_records = c.incoming_records;
		out[n].incoming_bytes = c.incoming_bytes;
		out[n].delivered_records = c.delivered_records;
		out[n].delivered_bytes = c.delivered_bytes;
		out[n].delivered_objects = c.delivered_objects;
		out[n].delivery_failures = c.delivery_failures;
		out[n].records_lost = c.records_lost;
		out[n].freshness_ms = c.freshness_ms;
		out[n].retention_warnings = c.retention_warnings;
		out[n].retention_headroom_s = c.retention_headroom_s;
		out[n].processing_failed = c.processing_failed;
		out[n].http_backup_records = c.http_backup_records;
		n++;
	}
	return n;
}

/* ---- Puts ---------------------------------------------------------------------- */

static void
fh_batches_put_back(struct firehose *fh, struct log_batch **batches, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		log_batch_put(fh->producer, batches[i]);
}

/* Fills batches with every record; -EAGAIN (all returned) when the pool runs dry. */
static int
fh_fill(struct firehose *fh, const struct firehose_record *records, uint32_t count,
	uint64_t now_ns, struct log_batch **batches, uint32_t *firsts, uint32_t *used_out)
{
	uint32_t used = 0;

	for (uint32_t i = 0; i < count; i++) {
		struct log_record_in in = {
			.partition_key = FH_PARTITION_KEY, .partition_key_size = 1,
			.data = records[i].data, .data_size = records[i].data_size,
			.arrival_ns = now_ns,
		};
		int rc = used == 0 ? -ENOSPC : log_batch_add(batches[used - 1], &in);

		if (rc == -ENOSPC) {
			if (used == FH_PUT_BATCHES_MAX ||
			    (batches[used] = log_batch_get(fh->producer)) == NULL) {
				fh_batches_put_back(fh, batches, used);
				return -EAGAIN;
			}
			firsts[used++] = i;
			rc = log_batch_add(batches[used - 1], &in);
		}
		if (rc != 0) {
			fh_batches_put_back(fh, batches, used);
			return rc == -ENOSPC ? -EAGAIN : rc;
		}
	}
	*used_out = used;
	return 0;
}

static int
fh_put_locked(struct firehose *fh, const char *name, const struct firehose_record *records,
	      uint32_t count, uint64_t now_real_ns, firehose_put_fn *done, void *ctx)
{
	struct log_batch *batches[FH_PUT_BATCHES_MAX];
	uint32_t firsts[FH_PUT_BATCHES_MAX], used = 0, slot = 0;
	struct fh_stream *s = fh_stream_find(fh, name);
	struct fh_pending *p;
	int rc;

	assert(count >= 1 && count <= FIREHOSE_BATCH_RECORDS_MAX);
	if (s == NULL)
		return -ENOENT;
	if (s->source != NULL)
		return -EPERM;  /* Its records come from its source stream only. */
	while (slot < FIREHOSE_PENDING_MAX && fh->pending[slot].used)
		slot++;
	if (slot == FIREHOSE_PENDING_MAX)
		return -EAGAIN;
	rc = fh_fill(fh, records, count, now_real_ns, batches, firsts, &used);
	if (rc != 0)
		return rc;
	p = &fh->pending[slot];
	*p = (struct fh_pending){ .used = true, .done = done, .ctx = ctx, .stream_id = s->id,
				  .count = count, .arrival_ns = now_real_ns };
	for (uint32_t i = 0; i < count; i++) {
		p->bytes += records[i].data_size;
		p->seqs[i] = UINT64_MAX;  /* Until its batch is durable. */
	}
	for (uint32_t b = 0; b < used; b++) {
		rc = log_batch_submit(fh->producer, batches[b], s->direct.shard_id,
				      (uint64_t)slot << 32 | firsts[b]);
		if (rc != 0) {
			/*
			 * The ring is full mid-put (-EAGAIN), or the stream's key is missing or
			 * disabled (-ENOKEY, -EKEYREVOKED): what went in is durable, the rest is not.
			 */
			fh_batches_put_back(fh, batches + b, used - b);
			p->error = rc;
			break;
		}
		p->batches_left++;
	}
	if (p->batches_left == 0) {  /* Nothing went in: the client may simply retry. */
		p->used = false;
		return p->error;
	}
	fh->pending_count++;
	return 0;
}

int
firehose_put(struct firehose *fh, const char *name, const struct firehose_record *records,
	     uint32_t count, uint64_t now_real_ns, firehose_put_fn *done, void *ctx)
{
	int rc;

	fh_lock(fh);
	rc = fh_put_locked(fh, name, records, count, now_real_ns, done, ctx);
	fh_unlock(fh);
	return rc;
}

static void
fh_pending_finish(struct firehose *fh, struct fh_pending *p, bool answer)
{
	struct fh_stream *s = fh_stream_by_id(fh, p->stream_id);
	uint32_t durable = 0;

	for (uint32_t i = 0; s != NULL && i < p->count; i++)
		durable += p->seqs[i] != UINT64_MAX;
	if (durable > 0) {
		counter_add_single_writer(&s->stats->incoming_records, durable);
		if (p->error == 0)
			counter_add_single_writer(&s->stats->incoming_bytes, p->bytes);
		/* A partial put's bytes are not summed: "unknown" makes the flusher look. */
		if (s->direct.pending_bytes != UINT64_MAX)
			s->direct.pending_bytes = p->error == 0 ? s->direct.pending_bytes + p->bytes :
						  UINT64_MAX;
		s->direct.pending_records += durable;
		if (s->direct.oldest_ns == 0)
			s->direct.oldest_ns = p->arrival_ns;
	}
	fh_thread_wake(fh);  /* Its buffer may be due by size now. */
	if (answer)
		p->done(p->ctx, p->error, p->seqs, p->count);
	p->used = false;
	fh->pending_count--;
}

static void
fh_completions_take(struct firehose *fh, const struct log_completion *done, uint32_t n,
		    bool answer)
{
	for (uint32_t i = 0; i < n; i++) {
		struct fh_pending *p = &fh->pending[done[i].cookie >> 32];
		uint32_t first = (uint32_t)done[i].cookie;

		assert(p->used && p->batches_left > 0);
		if (done[i].error != 0)
			p->error = done[i].error;
		for (uint32_t j = 0; done[i].error == 0 && j < done[i].record_count &&
				     first + j < p->count; j++)
			p->seqs[first + j] = done[i].seq_first + j;
		if (--p->batches_left == 0)
			fh_pending_finish(fh, p, answer);
	}
}

static void
fh_completions(struct firehose *fh, bool answer)
{
	struct log_completion done[FH_COMPLETIONS_POLL];
	uint32_t n;

	/* Until the ring is empty: the eventfd was reset, nothing else would wake us. */
	do {
		n = log_completions_poll(fh->producer, done, FH_COMPLETIONS_POLL);
		fh_completions_take(fh, done, n, answer);
	} while (n == FH_COMPLETIONS_POLL);
}

int
firehose_event_fd(const struct firehose *fh)
{
	return fh->event_fd;
}

/* Resets the eventfd so a level-triggered loop does not spin. */
static void
fh_event_clear(struct firehose *fh)
{
	uint64_t value;
	ssize_t n = read(fh->event_fd, &value, sizeof(value));

	(void)n;  /* EAGAIN: nothing was posted. */
}

void
firehose_poll(struct firehose *fh, uint64_t now_real_ns)
{
	fh_lock(fh);
	fh_event_clear(fh);
	if (fh->pending_count > 0)
		fh_completions(fh, true);
	/*
	 * A view staged: let the flusher look (puts' completions signalled it in
	 * fh_pending_finish). Not on every call: this runs once per pass of the API
	 * thread's loop, and a signal per pass woke an idle flusher about a thousand
	 * times a second under Kinesis load with no delivery stream at all.
	 */
	if (fh_source_stage(fh, now_real_ns) && fh->thread_running)
		pthread_cond_signal(&fh->wake);
	else if (!fh->thread_running)
		fh_flush_run(fh, now_real_ns);
	fh_unlock(fh);
}

int
firehose_poll_timeout_ms(struct firehose *fh, uint64_t now_real_ns)
{
	uint64_t due = UINT64_MAX;

	fh_lock(fh);
	/* A lost wake-up costs at most this tick while puts wait. */
	if (fh->pending_count > 0)
		due = now_real_ns + FH_FLUSH_TICK_NS;
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++) {
		const struct fh_stream *s = &fh->streams[i];

		if (s->used && s->source != NULL)
			due = min_u64(due, fh_source_stage_due(s));
		if (s->used && !fh->thread_running)
			due = min_u64(due, fh_flush_due(s));
	}
	fh_unlock(fh);
	if (due <= now_real_ns)
		return 0;
	return (int)min_u64((due - now_real_ns + 999999) / 1000000, 60000);
}
