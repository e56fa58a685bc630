/*
 * fh_store.c - delivery streams in SQLite (data_dir/firehose.db), their own
 * database so the engine does not reach into control/'s metadata.
 *
 *   TABLE              COLUMNS
 *   meta               key TEXT PRIMARY KEY, value INTEGER        next_id
 *   delivery_streams   name TEXT PRIMARY KEY, id, created_ms, version, bucket,
 *                      bucket_arn, role_arn, prefix, error_prefix, size_mb,
 *                      interval_s, compression, delivered, intent_first, intent_end
 *
 *   partitioning       id INTEGER PRIMARY KEY, query TEXT       a stream with dynamic
 *                                                               partitioning enabled
 *   record_processors  id INTEGER PRIMARY KEY, delimiter TEXT,  AppendDelimiterToRecord
 *                      deaggregation INTEGER, split TEXT       ("" none), RecordDeAggregation
 *   s3_uploads         (below, fh_s3.c)
 *   lambda_processors, lambda_answers  (fh_lambda.c)
 *
 * intent_first/intent_end are NULL when no object is being written. Every
 * write is its own transaction with synchronous=FULL: a delivered position
 * or an intent is on stable storage before the flusher goes on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

#define FH_STORE_BUSY_MS 5000

int
fh_store_fail(struct firehose *fh, const char *what)
{
	diag_error("firehose", "sqlite %s: %s", what, sqlite3_errmsg(fh->db));
	return -EIO;
}

int
fh_store_exec(struct firehose *fh, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(fh->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		diag_error("firehose", "sqlite: %s", err != NULL ? err : "?");
		sqlite3_free(err);
		return -EIO;
	}
	return 0;
}

int
fh_store_open(struct firehose *fh)
{
	char path[FIREHOSE_PATH_SIZE_MAX + sizeof(FIREHOSE_DB_FILE) + 1];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", fh->data_dir, FIREHOSE_DB_FILE);
	if (sqlite3_open_v2(path, &fh->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		rc = fh_store_fail(fh, path);

		sqlite3_close(fh->db);
		fh->db = NULL;
		return rc;
	}
	sqlite3_busy_timeout(fh->db, FH_STORE_BUSY_MS);
	rc = fh_store_exec(fh,
		"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);"
		"CREATE TABLE IF NOT EXISTS delivery_streams(name TEXT PRIMARY KEY,"
		" id INTEGER UNIQUE NOT NULL, created_ms INTEGER NOT NULL,"
		" version INTEGER NOT NULL, bucket TEXT NOT NULL, bucket_arn TEXT NOT NULL,"
		" role_arn TEXT NOT NULL, prefix TEXT NOT NULL, error_prefix TEXT NOT NULL,"
		" size_mb INTEGER NOT NULL, interval_s INTEGER NOT NULL,"
		" compression INTEGER NOT NULL, delivered INTEGER NOT NULL,"
		" intent_first INTEGER, intent_end INTEGER);"
		"CREATE TABLE IF NOT EXISTS partitioning(id INTEGER PRIMARY KEY,"
		" query TEXT NOT NULL);"
		"CREATE TABLE IF NOT EXISTS record_processors(id INTEGER PRIMARY KEY,"
		" delimiter TEXT NOT NULL, deaggregation INTEGER NOT NULL, split TEXT NOT NULL);");
	if (rc == 0)
		rc = fh_http_store_create(fh);
	return rc != 0 ? rc : fh_lambda_store_create(fh);
}

void
fh_store_close(struct firehose *fh)
{
	sqlite3_close(fh->db);
	fh->db = NULL;
}

void
fh_store_column(sqlite3_stmt *st, int col, char *out, size_t size)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	snprintf(out, size, "%s", text != NULL ? (const char *)text : "");
}

static int
fh_store_row(struct firehose *fh, sqlite3_stmt *st)
{
	struct fh_stream *s = NULL;

	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX && s == NULL; i++)
		if (!fh->streams[i].used)
			s = &fh->streams[i];
	if (s == NULL) {
		diag_error("firehose", "more stored delivery streams than FIREHOSE_STREAMS_MAX");
		return -EIO;
	}
	memset(s, 0, sizeof(*s));
	fh_store_column(st, 0, s->spec.name, sizeof(s->spec.name));
	s->id = (uint32_t)sqlite3_column_int64(st, 1);
	s->created_ms = (uint64_t)sqlite3_column_int64(st, 2);
	s->version = (uint32_t)sqlite3_column_int64(st, 3);
	fh_store_column(st, 4, s->spec.bucket, sizeof(s->spec.bucket));
	fh_store_column(st, 5, s->spec.bucket_arn, sizeof(s->spec.bucket_arn));
	fh_store_column(st, 6, s->spec.role_arn, sizeof(s->spec.role_arn));
	fh_store_column(st, 7, s->spec.prefix, sizeof(s->spec.prefix));
	fh_store_column(st, 8, s->spec.error_prefix, sizeof(s->spec.error_prefix));
	s->spec.size_mb = (uint32_t)sqlite3_column_int64(st, 9);
	s->spec.interval_s = (uint32_t)sqlite3_column_int64(st, 10);
	s->spec.compression = (enum firehose_compression)sqlite3_column_int64(st, 11);
	s->direct.delivered = (uint64_t)sqlite3_column_int64(st, 12);
	s->direct.intent = sqlite3_column_type(st, 13) != SQLITE_NULL;
	s->direct.intent_first = (uint64_t)sqlite3_column_int64(st, 13);
	s->direct.intent_end = (uint64_t)sqlite3_column_int64(st, 14);
	if ((unsigned)s->spec.compression >= FIREHOSE_COMPRESSION_COUNT) {
		diag_error("firehose", "stream %s: unknown compression %d", s->spec.name,
			   (int)s->spec.compression);
		return -EIO;
	}
	s->used = true;
	s->direct.shard_id = LOG_SHARD_ID(FIREHOSE_LOG_STREAM_BASE + s->id, 0);
	s->direct.pending_bytes = UINT64_MAX;
	if (fh_http_store_load(fh, s) != 0)
		return -EIO;
	return fh_lambda_store_load(fh, s);
}

int
fh_store_by_id(struct firehose *fh, const char *sql, uint32_t id, sqlite3_stmt **st_out)
{
	int step;

	*st_out = NULL;
	if (sqlite3_prepare_v2(fh->db, sql, -1, st_out, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(*st_out, 1, id) != SQLITE_OK)
		return fh_store_fail(fh, sql);
	step = sqlite3_step(*st_out);
	return step == SQLITE_ROW || step == SQLITE_DONE ? step : fh_store_fail(fh, sql);
}

/* A record_processors row onto its stream. */
static void
fh_store_record_processors(struct fh_stream *s, sqlite3_stmt *st)
{
	int64_t deaggregation = sqlite3_column_int64(st, 2);

	fh_store_column(st, 1, s->spec.delimiter, sizeof(s->spec.delimiter));
	s->spec.delimiter_size = (uint32_t)strlen(s->spec.delimiter);
	s->spec.deaggregation = deaggregation == FIREHOSE_DEAGG_JSON ? FIREHOSE_DEAGG_JSON :
				deaggregation == FIREHOSE_DEAGG_DELIMITED ?
				FIREHOSE_DEAGG_DELIMITED : FIREHOSE_DEAGG_NONE;
	fh_store_column(st, 3, s->spec.split, sizeof(s->spec.split));
	s->spec.split_size = (uint32_t)strlen(s->spec.split);
}

/* The partitioning and record_processors rows onto the streams just loaded. */
static int
fh_store_load_extras(struct firehose *fh, const char *sql, bool processors)
{
	sqlite3_stmt *st = NULL;
	int step;

	if (sqlite3_prepare_v2(fh->db, sql, -1, &st, NULL) != SQLITE_OK)
		return fh_store_fail(fh, sql);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct fh_stream *s = fh_stream_by_id(fh, (uint32_t)sqlite3_column_int64(st, 0));

		if (s == NULL)
			continue;  /* No stream of that id (deleted together; not expected). */
		if (processors) {
			fh_store_record_processors(s, st);
			continue;
		}
		s->spec.partitioning = true;
		fh_store_column(st, 1, s->spec.query, sizeof(s->spec.query));
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : fh_store_fail(fh, sql);
}

int
fh_store_extras_write(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id, deaggregation = s->spec.deaggregation;
	int rc = fh_store_run(fh, "DELETE FROM partitioning WHERE id = ?", "i",
			      (const void *[]){ &id });

	if (rc == 0)
		rc = fh_store_run(fh, "DELETE FROM record_processors WHERE id = ?", "i",
				  (const void *[]){ &id });
	if (rc == 0 && s->spec.partitioning)
		rc = fh_store_run(fh, "INSERT INTO partitioning(id, query) VALUES(?, ?)", "it",
				  (const void *[]){ &id, s->spec.query });
	if (rc == 0 && (s->spec.delimiter_size != 0 || deaggregation != FIREHOSE_DEAGG_NONE))
		rc = fh_store_run(fh, "INSERT INTO record_processors(id, delimiter, deaggregation,"
				  " split) VALUES(?, ?, ?, ?)", "itit",
				  (const void *[]){ &id, s->spec.delimiter, &deaggregation,
						    s->spec.split });
	return rc;
}

int
fh_store_load(struct firehose *fh)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	int step;

	if (sqlite3_prepare_v2(fh->db, "SELECT name, id, created_ms, version, bucket, bucket_arn,"
			       " role_arn, prefix, error_prefix, size_mb, interval_s, compression,"
			       " delivered, intent_first, intent_end FROM delivery_streams",
			       -1, &st, NULL) != SQLITE_OK)
		return fh_store_fail(fh, "load");
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
		rc = fh_store_row(fh, st);
	if (rc == 0 && step != SQLITE_DONE)
		rc = fh_store_fail(fh, "load");
	sqlite3_finalize(st);
	if (rc == 0)
		rc = fh_store_load_extras(fh, "SELECT id, query FROM partitioning", false);
	return rc != 0 ? rc : fh_store_load_extras(fh, "SELECT id, delimiter, deaggregation, split"
						    " FROM record_processors", true);
}

/* Runs one statement with integer/text parameters given as a format: 'i' int64, 't' text. */
int
fh_store_run(struct firehose *fh, const char *sql, const char *types, const void *const *args)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(fh->db, sql, -1, &st, NULL) != SQLITE_OK)
		return fh_store_fail(fh, "prepare");
	for (int i = 0; types[i] != '\0'; i++) {
		int b = types[i] == 'i' ? sqlite3_bind_int64(st, i + 1, *(const int64_t *)args[i]) :
			sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);

		if (b != SQLITE_OK)
			rc = -EIO;
	}
	if (rc == 0 && sqlite3_step(st) != SQLITE_DONE)
		rc = -EIO;
	if (rc != 0)
		fh_store_fail(fh, "write");
	sqlite3_finalize(st);
	return rc;
}

static int
fh_store_next_id(struct firehose *fh, uint32_t *id_out)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 1;
	int rc;

	if (sqlite3_prepare_v2(fh->db, "SELECT value FROM meta WHERE key = 'next_id'", -1, &st,
			       NULL) != SQLITE_OK)
		return fh_store_fail(fh, "next_id");
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (id < 1 || id >= (int64_t)(UINT32_MAX - FIREHOSE_LOG_STREAM_BASE))
		return -ENOSPC;  /* Ids are never reused: the range is spent. */
	*id_out = (uint32_t)id;
	id++;
	rc = fh_store_run(fh, "INSERT OR REPLACE INTO meta(key, value) VALUES('next_id', ?)",
			  "i", (const void *[]){ &id });
	return rc;
}

int
fh_store_insert(struct firehose *fh, struct fh_stream *s)
{
	int64_t id, created = (int64_t)s->created_ms, version = s->version;
	int64_t size_mb = s->spec.size_mb, interval = s->spec.interval_s;
	int64_t compression = s->spec.compression, delivered = 0;
	int rc = fh_store_exec(fh, "BEGIN IMMEDIATE");

	if (rc != 0)
		return rc;
	rc = fh_store_next_id(fh, &s->id);
	id = s->id;
	if (rc == 0)
		rc = fh_store_run(fh, "INSERT INTO delivery_streams(name, id, created_ms, version,"
				  " bucket, bucket_arn, role_arn, prefix, error_prefix, size_mb,"
				  " interval_s, compression, delivered)"
				  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "tiiitttttiiii",
				  (const void *[]){ s->spec.name, &id, &created, &version,
						    s->spec.bucket, s->spec.bucket_arn,
						    s->spec.role_arn, s->spec.prefix,
						    s->spec.error_prefix, &size_mb, &interval,
						    &compression, &delivered });
	if (rc == 0 && s->source != NULL)
		rc = fh_source_create(fh, s);
	if (rc == 0)
		rc = fh_store_extras_write(fh, s);
	if (rc == 0)
		rc = fh_http_store_insert(fh, s);
	if (rc == 0)
		rc = fh_lambda_store_insert(fh, s);
	if (rc == 0)
		return fh_store_exec(fh, "COMMIT");
	fh_store_exec(fh, "ROLLBACK");
	return rc;
}

int
fh_store_delete(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id;
	int rc = fh_store_run(fh, "DELETE FROM partitioning WHERE id = ?", "i",
			      (const void *[]){ &id });

	if (rc == 0)
		rc = fh_store_run(fh, "DELETE FROM record_processors WHERE id = ?", "i",
				  (const void *[]){ &id });
	if (rc == 0)
		rc = fh_store_run(fh, "DELETE FROM delivery_streams WHERE name = ?", "t",
				  (const void *[]){ s->spec.name });
	/* An HTTP row left by a crash between the two is never read: ids are not reused. */
	if (rc == 0)
		rc = fh_http_store_delete(fh, s);
	return rc != 0 ? rc : fh_lambda_store_delete(fh, s);
}

/* A DirectPut stream's lane lives in its row; a source's lanes in source_lanes (fh_source.c). */
int
fh_store_intent(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l,
		uint64_t first, uint64_t end)
{
	int64_t f = (int64_t)first, e = (int64_t)end, id = s->id, shard = (int64_t)l->shard_id;

	if (l != &s->direct)
		return fh_store_run(fh, "UPDATE source_lanes SET intent_first = ?, intent_end = ?"
				    " WHERE ds_id = ? AND shard_id = ?", "iiii",
				    (const void *[]){ &f, &e, &id, &shard });
	return fh_store_run(fh, "UPDATE delivery_streams SET intent_first = ?, intent_end = ?"
			    " WHERE name = ?", "iit", (const void *[]){ &f, &e, s->spec.name });
}

static int
fh_store_lane_delivered(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l,
			uint64_t next)
{
	int64_t n = (int64_t)next, id = s->id, shard = (int64_t)l->shard_id;

	if (l != &s->direct)
		return fh_store_run(fh, "UPDATE source_lanes SET delivered = ?, intent_first = NULL,"
				    " intent_end = NULL WHERE ds_id = ? AND shard_id = ?", "iii",
				    (const void *[]){ &n, &id, &shard });
	return fh_store_run(fh, "UPDATE delivery_streams SET delivered = ?, intent_first = NULL,"
			    " intent_end = NULL WHERE name = ?", "it",
			    (const void *[]){ &n, s->spec.name });
}

/* The intent is done: the position moves on; a Lambda's kept answers go in the same step. */
int
fh_store_delivered(struct firehose *fh, const struct fh_stream *s, const struct fh_lane *l,
		   uint64_t next)
{
	int rc;

	if (s->spec.lambda.arn[0] == '\0')
		return fh_store_lane_delivered(fh, s, l, next);
	rc = fh_store_exec(fh, "BEGIN IMMEDIATE");
	if (rc != 0)
		return rc;
	rc = fh_store_lane_delivered(fh, s, l, next);
	if (rc == 0)
		rc = fh_lambda_store_forget(fh, s->id, l->shard_id);
	if (rc == 0)
		return fh_store_exec(fh, "COMMIT");
	fh_store_exec(fh, "ROLLBACK");
	return rc;
}

/*
 * s3_uploads: a multipart upload begun and not yet completed or aborted (fh_s3.c),
 * one at most per stream: stream_id, key, upload_id. A row found at a delivery is an
 * upload a crash left open; it is aborted before the range is sent again.
 */
int
fh_store_uploads_open(struct firehose *fh)
{
	return fh_store_exec(fh, "CREATE TABLE IF NOT EXISTS s3_uploads(stream_id INTEGER"
			     " PRIMARY KEY, key TEXT NOT NULL, upload_id TEXT NOT NULL);");
}

int
fh_store_upload_note(struct firehose *fh, uint32_t stream_id, const char *key,
		     const char *upload_id)
{
	int64_t id = stream_id;

	return fh_store_run(fh, "INSERT OR REPLACE INTO s3_uploads(stream_id, key, upload_id)"
			    " VALUES(?, ?, ?)", "itt", (const void *[]){ &id, key, upload_id });
}

int
fh_store_upload_drop(struct firehose *fh, uint32_t stream_id)
{
	int64_t id = stream_id;

	return fh_store_run(fh, "DELETE FROM s3_uploads WHERE stream_id = ?", "i",
			    (const void *[]){ &id });
}

int
fh_store_upload_find(struct firehose *fh, uint32_t stream_id, char *key,
		     size_t key_size, char *upload_id, size_t upload_id_size)
{
	sqlite3_stmt *st = NULL;
	int rc = -ENOENT;

	if (sqlite3_prepare_v2(fh->db, "SELECT key, upload_id FROM s3_uploads WHERE"
			       " stream_id = ?", -1, &st, NULL) != SQLITE_OK)
		return fh_store_fail(fh, "s3_uploads");
	sqlite3_bind_int64(st, 1, stream_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		fh_store_column(st, 0, key, key_size);
		fh_store_column(st, 1, upload_id, upload_id_size);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}
