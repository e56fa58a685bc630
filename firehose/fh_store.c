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
		" intent_first INTEGER, intent_end INTEGER);");
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
	s->delivered = (uint64_t)sqlite3_column_int64(st, 12);
	s->intent = sqlite3_column_type(st, 13) != SQLITE_NULL;
	s->intent_first = (uint64_t)sqlite3_column_int64(st, 13);
	s->intent_end = (uint64_t)sqlite3_column_int64(st, 14);
	if ((unsigned)s->spec.compression >= FIREHOSE_COMPRESSION_COUNT) {
		diag_error("firehose", "stream %s: unknown compression %d", s->spec.name,
			   (int)s->spec.compression);
		return -EIO;
	}
	s->used = true;
	s->shard_id = LOG_SHARD_ID(FIREHOSE_LOG_STREAM_BASE + s->id, 0);
	s->pending_bytes = UINT64_MAX;
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
	return rc;
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
	int rc = fh_store_run(fh, "DELETE FROM delivery_streams WHERE name = ?", "t",
			      (const void *[]){ s->spec.name });

	/* An HTTP row left by a crash between the two is never read: ids are not reused. */
	if (rc == 0)
		rc = fh_http_store_delete(fh, s);
	return rc != 0 ? rc : fh_lambda_store_delete(fh, s);
}

int
fh_store_intent(struct firehose *fh, const struct fh_stream *s, uint64_t first, uint64_t end)
{
	int64_t f = (int64_t)first, e = (int64_t)end;

	return fh_store_run(fh, "UPDATE delivery_streams SET intent_first = ?, intent_end = ?"
			    " WHERE name = ?", "iit", (const void *[]){ &f, &e, s->spec.name });
}

int
fh_store_delivered(struct firehose *fh, const struct fh_stream *s, uint64_t next)
{
	int64_t n = (int64_t)next;

	return fh_store_run(fh, "UPDATE delivery_streams SET delivered = ?, intent_first = NULL,"
			    " intent_end = NULL WHERE name = ?", "it",
			    (const void *[]){ &n, s->spec.name });
}
