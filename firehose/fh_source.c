/*
 * fh_source.c - KinesisStreamAsSource: a delivery stream that reads a Sluice
 * Kinesis stream's shards instead of taking puts.
 *
 * control/ owns the shard lineage; the engine asks it (options.source) for a
 * view of the stream every FH_SOURCE_REFRESH_NS and keeps one lane per shard
 * (struct fh_lane): its delivered position and intent in SQLite, delivered
 * exactly as a DirectPut stream's one lane is (fh_flush.c), one object per
 * range of one shard, named from (shard, first seq, end seq).
 *
 *   RULE                          WHY
 *   start at LATEST               AWS: a new delivery stream reads from LATEST
 *   a shard born later: from 0    it was created after the delivery began
 *   children wait for parents     records of a key stay in order across reshards
 *                                 (KCL's rule): a lane reads only once every
 *                                 parent it tracks is finished
 *   finished = closed + delivered a closed shard's seq_durable is final
 *   a shard gone from the view    closed and past retention: its lane is dropped
 *
 *   TABLE           COLUMNS
 *   stream_sources  ds_id PRIMARY KEY, stream_arn, role_arn, stream_id, start_ms
 *   source_lanes    (ds_id, shard_id) PRIMARY KEY, delivered, intent_first,
 *                   intent_end (NULL: none), finished
 *
 * The log gives readers only durable records (log_read: "A record is readable
 * only once its batch is durable"), so nothing delivered can vanish in a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/base.h"
#include "common/diag.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

/* How often a source's shard list is asked for again (new children, closes). */
#define FH_SOURCE_REFRESH_NS 1000000000ull
/* Cuts one lane may make in one run: a backlog is worked off without pausing the thread long. */
#define FH_SOURCE_CUTS_PER_RUN 4u

/* ---- SQLite ----------------------------------------------------------------- */

static int
fh_source_tables(struct firehose *fh)
{
	return fh_store_exec(fh,
		"CREATE TABLE IF NOT EXISTS stream_sources(ds_id INTEGER PRIMARY KEY,"
		" stream_arn TEXT NOT NULL, role_arn TEXT NOT NULL, stream_id INTEGER NOT NULL,"
		" start_ms INTEGER NOT NULL);"
		"CREATE TABLE IF NOT EXISTS source_lanes(ds_id INTEGER NOT NULL,"
		" shard_id INTEGER NOT NULL, delivered INTEGER NOT NULL, intent_first INTEGER,"
		" intent_end INTEGER, finished INTEGER NOT NULL DEFAULT 0,"
		" PRIMARY KEY(ds_id, shard_id));");
}

static int
fh_lane_insert(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l)
{
	int64_t id = s->id, shard = (int64_t)l->shard_id, delivered = (int64_t)l->delivered;

	return fh_store_run(fh, "INSERT OR REPLACE INTO source_lanes(ds_id, shard_id, delivered)"
			    " VALUES(?, ?, ?)", "iii", (const void *[]){ &id, &shard, &delivered });
}

static int
fh_lane_finish_store(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l)
{
	int64_t id = s->id, shard = (int64_t)l->shard_id;

	return fh_store_run(fh, "UPDATE source_lanes SET finished = 1 WHERE ds_id = ? AND"
			    " shard_id = ?", "ii", (const void *[]){ &id, &shard });
}

static int
fh_lane_forget_store(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l)
{
	int64_t id = s->id, shard = (int64_t)l->shard_id;

	return fh_store_run(fh, "DELETE FROM source_lanes WHERE ds_id = ? AND shard_id = ?", "ii",
			    (const void *[]){ &id, &shard });
}

int
fh_source_delete(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id;
	int rc = fh_store_run(fh, "DELETE FROM source_lanes WHERE ds_id = ?", "i",
			      (const void *[]){ &id });

	if (rc == 0)
		rc = fh_store_run(fh, "DELETE FROM stream_sources WHERE ds_id = ?", "i",
				  (const void *[]){ &id });
	return rc;
}

/* ---- Lanes ------------------------------------------------------------------ */

static struct fh_lane *
fh_lane_find(struct fh_source *src, uint64_t shard_id)
{
	for (uint32_t i = 0; i < src->lane_count; i++)
		if (src->lanes[i].shard_id == shard_id)
			return &src->lanes[i];
	return NULL;
}

static struct fh_lane *
fh_lane_add(struct fh_source *src, uint64_t shard_id, uint64_t delivered)
{
	struct fh_lane *l;

	if (src->lane_count == FIREHOSE_SOURCE_SHARDS_MAX)
		return NULL;
	l = &src->lanes[src->lane_count++];
	*l = (struct fh_lane){ .shard_id = shard_id, .delivered = delivered,
			       .scanned = delivered, .parent_ids = { UINT64_MAX, UINT64_MAX } };
	return l;
}

/* Whether every parent the lane's stream still tracks is delivered to its end. */
static bool
fh_lane_ready(struct fh_source *src, const struct fh_lane *l)
{
	for (int i = 0; i < 2; i++) {
		const struct fh_lane *p = l->parent_ids[i] == UINT64_MAX ? NULL :
					  fh_lane_find(src, l->parent_ids[i]);

		if (p != NULL && !p->finished)
			return false;
	}
	return true;
}

/* ---- Create and load ------------------------------------------------------------ */

/* Asks control/ for the source's shards (on the API thread: control/ is not thread-safe). */
static int
fh_source_view(struct firehose *fh, struct fh_stream *s)
{
	struct firehose_source_view *view = &s->source->view;
	int rc = fh->source_fn == NULL ? -ENOENT :
		 fh->source_fn(fh->source_ctx, s->spec.source_arn, view);

	if (rc == 0 && view->shard_count > FIREHOSE_SOURCE_SHARDS_MAX)
		rc = -E2BIG;
	return rc;
}

int
fh_source_create(struct firehose *fh, struct fh_stream *s)
{
	struct fh_source *src = s->source;
	const struct firehose_source_view *view = &src->view;
	int64_t id = s->id, stream_id, start = (int64_t)src->start_ms;
	int rc = fh_source_view(fh, s);

	if (rc != 0)
		return rc == -ENOENT ? -ENXIO : rc;
	src->stream_id = view->stream_id;
	src->retention_hours = view->retention_hours;
	stream_id = src->stream_id;
	rc = fh_store_run(fh, "INSERT INTO stream_sources(ds_id, stream_arn, role_arn, stream_id,"
			  " start_ms) VALUES(?, ?, ?, ?, ?)", "ittii",
			  (const void *[]){ &id, s->spec.source_arn, s->spec.source_role_arn,
					    &stream_id, &start });
	/* LATEST: every shard from what is durable now (a closed one is then finished). */
	for (uint32_t i = 0; rc == 0 && i < view->shard_count; i++) {
		struct log_shard_info info;
		struct fh_lane *l;

		rc = log_shard_info(fh->log, view->shards[i].shard_id, &info);
		l = rc == 0 ? fh_lane_add(src, view->shards[i].shard_id, info.seq_durable) : NULL;
		if (rc == 0)
			rc = l == NULL ? -E2BIG : fh_lane_insert(fh, s, l);
	}
	return rc;
}

static int
fh_source_row(struct firehose *fh, sqlite3_stmt *st)
{
	struct fh_stream *s = fh_stream_by_id(fh, (uint32_t)sqlite3_column_int64(st, 0));
	const unsigned char *arn = sqlite3_column_text(st, 1);
	const unsigned char *role = sqlite3_column_text(st, 2);

	if (s == NULL)
		return 0;  /* Its stream row went in the same transaction: cannot happen. */
	s->source = &fh->sources[s - fh->streams];
	memset(s->source, 0, sizeof(*s->source));
	snprintf(s->spec.source_arn, sizeof(s->spec.source_arn), "%s",
		 arn != NULL ? (const char *)arn : "");
	snprintf(s->spec.source_role_arn, sizeof(s->spec.source_role_arn), "%s",
		 role != NULL ? (const char *)role : "");
	s->source->stream_id = (uint32_t)sqlite3_column_int64(st, 3);
	s->source->start_ms = (uint64_t)sqlite3_column_int64(st, 4);
	s->source->retention_hours = FIREHOSE_DIRECT_RETENTION_HOURS;  /* Until the first view. */
	return 0;
}

static int
fh_lane_row(struct firehose *fh, sqlite3_stmt *st)
{
	struct fh_stream *s = fh_stream_by_id(fh, (uint32_t)sqlite3_column_int64(st, 0));
	struct fh_lane *l;

	if (s == NULL || s->source == NULL)
		return 0;
	l = fh_lane_add(s->source, (uint64_t)sqlite3_column_int64(st, 1),
			(uint64_t)sqlite3_column_int64(st, 2));
	if (l == NULL) {
		diag_error("firehose", "%s: more stored lanes than FIREHOSE_SOURCE_SHARDS_MAX",
			   s->spec.name);
		return -EIO;
	}
	l->intent = sqlite3_column_type(st, 3) != SQLITE_NULL;
	l->intent_first = (uint64_t)sqlite3_column_int64(st, 3);
	l->intent_end = (uint64_t)sqlite3_column_int64(st, 4);
	l->finished = sqlite3_column_int64(st, 5) != 0;
	return 0;
}

static int
fh_source_select(struct firehose *fh, const char *sql,
		 int (*row)(struct firehose *, sqlite3_stmt *))
{
	sqlite3_stmt *st = NULL;
	int rc = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(fh->db, sql, -1, &st, NULL) != SQLITE_OK) {
		diag_error("firehose", "sqlite prepare: %s", sqlite3_errmsg(fh->db));
		return -EIO;
	}
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
		rc = row(fh, st);
	if (rc == 0 && step != SQLITE_DONE) {
		diag_error("firehose", "sqlite load: %s", sqlite3_errmsg(fh->db));
		rc = -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int
fh_source_load(struct firehose *fh)
{
	int rc = fh_source_tables(fh);

	if (rc == 0)
		rc = fh_source_select(fh, "SELECT ds_id, stream_arn, role_arn, stream_id, start_ms"
				      " FROM stream_sources", fh_source_row);
	if (rc == 0)
		rc = fh_source_select(fh, "SELECT ds_id, shard_id, delivered, intent_first,"
				      " intent_end, finished FROM source_lanes"
				      " ORDER BY ds_id, shard_id", fh_lane_row);
	return rc;
}

/* ---- Following the source --------------------------------------------------------- */

/* Drops the lanes of shards the view no longer lists (closed, past retention). */
static void
fh_source_prune(struct firehose *fh, struct fh_stream *s)
{
	struct fh_source *src = s->source;

	for (uint32_t i = 0; i < src->lane_count;) {
		struct fh_lane *l = &src->lanes[i];

		if (l->seen || fh_lane_forget_store(fh, s, l) != 0) {
			i++;
			continue;
		}
		if (!l->finished)
			diag_error("firehose", "%s: shard %016llx aged out of its stream before it was "
				   "delivered to its end (from seq %llu): lost", s->spec.name,
				   (unsigned long long)l->shard_id, (unsigned long long)l->delivered);
		*l = src->lanes[--src->lane_count];
	}
}

/* Takes the view's shards: new lanes (from seq 0: born after the delivery began), lineage. */
static void
fh_source_adopt(struct firehose *fh, struct fh_stream *s)
{
	struct fh_source *src = s->source;
	const struct firehose_source_view *view = &src->view;

	for (uint32_t i = 0; i < src->lane_count; i++)
		src->lanes[i].seen = false;
	for (uint32_t i = 0; i < view->shard_count; i++) {
		struct fh_lane *l = fh_lane_find(src, view->shards[i].shard_id);

		if (l != NULL)
			l->seen = true;
	}
	fh_source_prune(fh, s);
	for (uint32_t i = 0; i < view->shard_count; i++) {
		const struct firehose_source_shard *sh = &view->shards[i];
		struct fh_lane *l = fh_lane_find(src, sh->shard_id);

		if (l == NULL) {
			l = fh_lane_add(src, sh->shard_id, 0);
			if (l == NULL || fh_lane_insert(fh, s, l) != 0) {
				src->lane_count -= l != NULL;
				continue;  /* Tried again at the next refresh. */
			}
		}
		l->seen = true;
		l->parent_ids[0] = sh->parent_ids[0];
		l->parent_ids[1] = sh->parent_ids[1];
		l->source_closed = sh->closed;
	}
}

bool
fh_source_stage(struct firehose *fh, uint64_t now_ns)
{
	bool staged = false;

	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++) {
		struct fh_stream *s = &fh->streams[i];

		if (!s->used || s->source == NULL || s->source->refresh_due_ns > now_ns)
			continue;
		s->source->view_rc = fh_source_view(fh, s);
		s->source->view_new = true;
		s->source->refresh_due_ns = now_ns + FH_SOURCE_REFRESH_NS;
		staged = true;
	}
	return staged;
}

uint64_t
fh_source_stage_due(const struct fh_stream *s)
{
	return s->source->refresh_due_ns;
}

/* Takes the view firehose_poll() staged (the flusher's side). */
static void
fh_source_refresh(struct firehose *fh, struct fh_stream *s)
{
	struct fh_source *src = s->source;
	int rc = src->view_rc;

	src->view_new = false;
	if (rc == 0 && src->view.stream_id != src->stream_id)
		rc = -ENOENT;  /* Deleted and made again: not the stream this one began reading. */
	if (rc == -ENOENT) {
		if (!src->gone)
			diag_error("firehose", "%s: its source %s is gone: nothing more to deliver",
				   s->spec.name, s->spec.source_arn);
		src->gone = true;
		return;
	}
	if (rc != 0) {
		if (rc != src->failed_rc)  /* Once per cause, not every second. */
			diag_warn("firehose", "%s: reading the shards of %s: %s", s->spec.name,
				  s->spec.source_arn, strerror(-rc));
		src->failed_rc = rc;
		return;
	}
	src->failed_rc = 0;
	src->gone = false;
	src->retention_hours = src->view.retention_hours;
	fh_source_adopt(fh, s);
}

/* ---- Scanning: what waits in a lane, without copying it ------------------------------ */

struct fh_scan {
	struct fh_lane *lane;
	uint64_t limit;
};

static int
fh_scan_record(void *arg, const struct log_record_out *record)
{
	struct fh_scan *scan = arg;
	struct fh_lane *l = scan->lane;

	if (record->seq == l->delivered)
		l->oldest_ns = record->arrival_ns;
	l->pending_bytes += record->data_size;
	l->pending_records++;
	/* Either makes the lane due (a partitioned cut is bounded by records too). */
	return l->pending_bytes >= scan->limit || l->pending_records >= FH_PART_RECORDS_MAX ? 1 : 0;
}

/*
 * Counts the data bytes of [scanned, seq_durable) into pending_bytes, up to a cut's
 * size (then the lane is due anyway), so fh_lane_due() knows both hints.
 */
static int
fh_source_scan(struct firehose *fh, struct fh_stream *s, struct fh_lane *l,
	       const struct log_shard_info *info)
{
	struct fh_scan scan = { .lane = l, .limit = (uint64_t)s->spec.size_mb << 20 };

	if (l->pending_bytes == UINT64_MAX || l->scanned < l->delivered) {
		l->pending_bytes = 0;
		l->pending_records = 0;
		l->oldest_ns = 0;
		l->scanned = l->delivered;
	}
	while (l->scanned < info->seq_durable && l->pending_bytes < scan.limit &&
	       l->pending_records < FH_PART_RECORDS_MAX) {
		uint64_t next = l->scanned;
		uint32_t want = (uint32_t)min_u64(info->seq_durable - l->scanned, UINT32_MAX);
		int n = log_read(fh->reader, l->shard_id, l->scanned, want, UINT64_MAX,
				 fh_scan_record, &scan, &next);

		if (n == -ERANGE) {
			l->pending_bytes = UINT64_MAX;  /* Trimmed: fh_flush_lane says what is lost. */
			return 0;
		}
		if (n < 0)
			return n;
		if (n == 0 || next <= l->scanned)
			break;
		l->scanned = next;
	}
	return 0;
}

/* Delivers what is due in one lane; marks it finished once closed and delivered. */
static int
fh_source_lane(struct firehose *fh, struct fh_stream *s, struct fh_lane *l, uint64_t now_ns)
{
	struct log_shard_info info = { 0 };
	int rc = 0;

	uint32_t id = s->id;

	for (uint32_t cut = 0; rc == 0 && cut < FH_SOURCE_CUTS_PER_RUN; cut++) {
		if (!fh_stream_same(s, id))
			return -ECANCELED;
		rc = log_shard_info(fh->log, l->shard_id, &info);
		if (rc == 0 && !l->intent)
			rc = fh_source_scan(fh, s, l, &info);
		if (rc != 0 || fh_lane_due(s, l) > now_ns)
			break;
		rc = fh_flush_lane(fh, s, l, now_ns);
	}
	if (rc == 0 && fh_stream_same(s, id) && l->source_closed && !l->intent &&
	    l->delivered >= info.seq_durable) {
		rc = fh_lane_finish_store(fh, s, l);
		l->finished = rc == 0;
		l->oldest_ns = 0;
	}
	return rc;
}

void
fh_source_run(struct firehose *fh, struct fh_stream *s, uint64_t now_ns)
{
	struct fh_source *src = s->source;
	struct fh_gauges g = FH_GAUGES_INIT;

	uint32_t id = s->id;

	if (fh_source_due(s) > now_ns)
		return;
	if (src->view_new)
		fh_source_refresh(fh, s);
	src->poll_due_ns = now_ns + FH_FLUSH_TICK_NS;
	for (uint32_t i = 0; !src->gone && i < src->lane_count; i++) {
		struct fh_lane *l = &src->lanes[i];
		int rc = 0;

		if (l->finished || !l->seen || !fh_lane_ready(src, l))
			continue;
		if (l->retry_due_ns <= now_ns)
			rc = fh_source_lane(fh, s, l, now_ns);
		if (!fh_stream_same(s, id))
			return;  /* Deleted while an object was written (the lock was let go). */
		fh_lane_account(fh, s, l, rc, now_ns, src->retention_hours, &g);
	}
	if (g.headroom_s == UINT64_MAX)
		g.headroom_s = log_retention_ms(fh->log, src->retention_hours) / 1000u;
	fh_gauges_publish(s, &g);
}

uint64_t
fh_source_due(const struct fh_stream *s)
{
	/* Appends to the source do not wake the engine: it looks every FH_FLUSH_TICK_NS. */
	return s->source->view_new ? 0 : s->source->poll_due_ns;
}
