/*
 * fh_settings.c - what a delivery stream carries besides its records:
 * UpdateDestination (VersionId), DeliveryStreamEncryptionConfiguration and tags.
 *
 *   TABLE                      COLUMNS
 *   delivery_stream_settings   ds_id PRIMARY KEY, updated_ms, enc_enabled, key_type,
 *                              key_arn, log_key_id
 *   delivery_stream_tags       (ds_id, key) PRIMARY KEY, value
 *
 * The destination itself stays in delivery_streams (fh_store.c) and the tables
 * beside it (partitioning, record_processors, http_destinations, lambda_processors): an
 * update rewrites all of them and the version in one transaction.
 *
 * Encryption reuses the log's (nvme-log/log.h, "Encryption at rest") exactly as
 * Kinesis streams do: the stream's own log shard is encrypted from the next batch
 * on under the key control/ resolved in the keyring; the log keeps it in memory
 * only, so fh_settings_load() sets it again at every open.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

static int
fh_settings_tables(struct firehose *fh)
{
	return fh_store_exec(fh,
		"CREATE TABLE IF NOT EXISTS delivery_stream_settings(ds_id INTEGER PRIMARY KEY,"
		" updated_ms INTEGER NOT NULL DEFAULT 0, enc_enabled INTEGER NOT NULL DEFAULT 0,"
		" key_type INTEGER NOT NULL DEFAULT 0, key_arn TEXT NOT NULL DEFAULT '',"
		" log_key_id INTEGER NOT NULL DEFAULT 0);"
		"CREATE TABLE IF NOT EXISTS delivery_stream_tags(ds_id INTEGER NOT NULL,"
		" key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(ds_id, key));");
}

static uint32_t
fh_log_stream(const struct fh_stream *s)
{
	return FIREHOSE_LOG_STREAM_BASE + s->id;
}

static int
fh_settings_row(struct firehose *fh, sqlite3_stmt *st)
{
	struct fh_stream *s = fh_stream_by_id(fh, (uint32_t)sqlite3_column_int64(st, 0));
	const unsigned char *arn = sqlite3_column_text(st, 4);
	struct firehose_encryption *e;

	if (s == NULL)
		return 0;
	e = &s->encryption;
	s->updated_ms = (uint64_t)sqlite3_column_int64(st, 1);
	e->enabled = sqlite3_column_int64(st, 2) != 0;
	e->key_type = sqlite3_column_int64(st, 3) == FIREHOSE_KEY_CUSTOMER ? FIREHOSE_KEY_CUSTOMER :
		      FIREHOSE_KEY_AWS_OWNED;
	snprintf(e->key_arn, sizeof(e->key_arn), "%s", arn != NULL ? (const char *)arn : "");
	e->log_key_id = (uint64_t)sqlite3_column_int64(st, 5);
	if (!e->enabled || e->log_key_id == 0)
		return 0;
	return log_stream_encryption_set(fh->log, fh_log_stream(s), e->log_key_id);
}

int
fh_settings_load(struct firehose *fh)
{
	sqlite3_stmt *st = NULL;
	int rc = fh_settings_tables(fh), step = SQLITE_DONE;

	if (rc != 0)
		return rc;
	if (sqlite3_prepare_v2(fh->db, "SELECT ds_id, updated_ms, enc_enabled, key_type, key_arn,"
			       " log_key_id FROM delivery_stream_settings", -1, &st,
			       NULL) != SQLITE_OK) {
		diag_error("firehose", "sqlite settings: %s", sqlite3_errmsg(fh->db));
		return -EIO;
	}
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
		rc = fh_settings_row(fh, st);
	if (rc == 0 && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

int
fh_settings_delete(struct firehose *fh, const struct fh_stream *s)
{
	int64_t id = s->id;
	int rc = fh_store_run(fh, "DELETE FROM delivery_stream_settings WHERE ds_id = ?", "i",
			      (const void *[]){ &id });

	if (rc == 0)
		rc = fh_store_run(fh, "DELETE FROM delivery_stream_tags WHERE ds_id = ?", "i",
				  (const void *[]){ &id });
	if (rc == 0 && s->encryption.log_key_id != 0)
		rc = log_stream_encryption_set(fh->log, fh_log_stream(s), 0);
	return rc;
}

/* The stream's settings row, written whole (from memory). */
static int
fh_settings_store(struct firehose *fh, const struct fh_stream *s,
		  const struct firehose_encryption *e, uint64_t updated_ms)
{
	int64_t id = s->id, updated = (int64_t)updated_ms, enabled = e->enabled;
	int64_t type = e->key_type, key = (int64_t)e->log_key_id;

	return fh_store_run(fh, "INSERT OR REPLACE INTO delivery_stream_settings(ds_id,"
			    " updated_ms, enc_enabled, key_type, key_arn, log_key_id)"
			    " VALUES(?, ?, ?, ?, ?, ?)", "iiiiti",
			    (const void *[]){ &id, &updated, &enabled, &type, e->key_arn, &key });
}

/* ---- UpdateDestination ---------------------------------------------------------- */

static bool
fh_stream_busy(const struct fh_stream *s)
{
	if (s->source == NULL)
		return s->direct.intent;
	for (uint32_t i = 0; i < s->source->lane_count; i++)
		if (s->source->lanes[i].intent)
			return true;
	return false;
}

/* s->spec is the new one already (the caller puts the old one back on failure). */
static int
fh_update_store(struct firehose *fh, const struct fh_stream *s, uint32_t version,
		uint64_t now_ms)
{
	const struct firehose_spec *p = &s->spec;
	int64_t v = version, size_mb = p->size_mb, interval = p->interval_s;
	int64_t compression = p->compression;
	int rc = fh_store_exec(fh, "BEGIN IMMEDIATE");

	if (rc != 0)
		return rc;
	rc = fh_store_run(fh, "UPDATE delivery_streams SET version = ?, bucket = ?, bucket_arn = ?,"
			  " role_arn = ?, prefix = ?, error_prefix = ?, size_mb = ?, interval_s = ?,"
			  " compression = ? WHERE name = ?", "itttttiiit",
			  (const void *[]){ &v, p->bucket, p->bucket_arn, p->role_arn, p->prefix,
					    p->error_prefix, &size_mb, &interval, &compression,
					    s->spec.name });
	if (rc == 0)
		rc = fh_store_extras_write(fh, s);
	if (rc == 0)
		rc = fh_http_store_delete(fh, s);
	if (rc == 0)
		rc = fh_http_store_insert(fh, s);
	if (rc == 0)
		rc = fh_lambda_store_delete(fh, s);
	if (rc == 0)
		rc = fh_lambda_store_insert(fh, s);
	if (rc == 0)
		rc = fh_settings_store(fh, s, &s->encryption, now_ms);
	if (rc == 0)
		return fh_store_exec(fh, "COMMIT");
	fh_store_exec(fh, "ROLLBACK");
	return rc;
}

/*
 * Everything of the destination changes but the stream's name, source, destination
 * type and whether it partitions: AWS refuses switching to or from an HTTP endpoint and
 * enabling or disabling dynamic partitioning after creation (control/ says so; -EINVAL
 * here). A partitioned stream's buffers were reserved when it was made or loaded.
 */
static int
fh_update_locked(struct firehose *fh, const char *name, uint32_t version,
		 const struct firehose_spec *spec, uint64_t now_ms)
{
	static struct firehose_spec old;  /* Under the lock; too large for the stack. */
	struct fh_stream *s = fh_stream_find(fh, name);
	int rc;

	if (s == NULL)
		return -ENOENT;
	if (version != s->version)
		return -ESTALE;
	if (spec->destination != s->spec.destination ||
	    spec->partitioning != s->spec.partitioning)
		return -EINVAL;
	if (fh_stream_busy(s))
		return -EBUSY;
	old = s->spec;
	s->spec = *spec;
	memcpy(s->spec.name, old.name, sizeof(old.name));
	memcpy(s->spec.source_arn, old.source_arn, sizeof(old.source_arn));
	memcpy(s->spec.source_role_arn, old.source_role_arn, sizeof(old.source_role_arn));
	s->spec.deaggregate = old.deaggregate;
	rc = fh_update_store(fh, s, s->version + 1, now_ms);
	if (rc != 0) {
		s->spec = old;
		return rc;
	}
	s->version++;
	s->updated_ms = now_ms;
	/* What waits is cut by the new hints: let the flusher look again. */
	s->direct.pending_bytes = UINT64_MAX;
	return 0;
}

int
firehose_update(struct firehose *fh, const char *name, uint32_t version,
		const struct firehose_spec *spec, uint64_t now_ms)
{
	int rc;

	fh_lock(fh);
	rc = fh_update_locked(fh, name, version, spec, now_ms);
	fh_unlock(fh);
	return rc;
}

/* ---- Encryption -------------------------------------------------------------------- */

static int
fh_encryption_set_locked(struct firehose *fh, const char *name,
			 const struct firehose_encryption *encryption)
{
	struct fh_stream *s = fh_stream_find(fh, name);
	int rc;

	if (s == NULL)
		return -ENOENT;
	if (s->source != NULL)
		return -EPERM;  /* Its records are its source's: that stream's encryption holds. */
	rc = fh_settings_store(fh, s, encryption, s->updated_ms);
	if (rc != 0)
		return rc;
	s->encryption = *encryption;
	return log_stream_encryption_set(fh->log, fh_log_stream(s),
					 encryption->enabled ? encryption->log_key_id : 0);
}

int
firehose_encryption_set(struct firehose *fh, const char *name,
			const struct firehose_encryption *encryption)
{
	int rc;

	fh_lock(fh);
	rc = fh_encryption_set_locked(fh, name, encryption);
	fh_unlock(fh);
	return rc;
}

/* ---- Tags ---------------------------------------------------------------------------- */

static int
fh_tags_count(struct firehose *fh, const struct fh_stream *s, const char *after,
	      uint32_t *count_out)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(fh->db, "SELECT count(*) FROM delivery_stream_tags WHERE ds_id = ?"
			       " AND key > ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, s->id);
	sqlite3_bind_text(st, 2, after != NULL ? after : "", -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*count_out = (uint32_t)sqlite3_column_int64(st, 0);
	else
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

static int
fh_tags_put(struct firehose *fh, const struct fh_stream *s, const struct firehose_tag *tags,
	    uint32_t count)
{
	int64_t id = s->id;
	uint32_t total = 0;
	int rc = fh_store_exec(fh, "BEGIN IMMEDIATE");

	for (uint32_t i = 0; rc == 0 && i < count; i++)
		rc = fh_store_run(fh, "INSERT OR REPLACE INTO delivery_stream_tags(ds_id, key, value)"
				  " VALUES(?, ?, ?)", "itt",
				  (const void *[]){ &id, tags[i].key, tags[i].value });
	if (rc == 0)
		rc = fh_tags_count(fh, s, NULL, &total);
	if (rc == 0 && total > FIREHOSE_TAGS_MAX)
		rc = -E2BIG;  /* Counted after the replacements: a key given again is one tag. */
	if (rc == 0)
		return fh_store_exec(fh, "COMMIT");
	fh_store_exec(fh, "ROLLBACK");
	return rc;
}

static int
fh_tags_add_locked(struct firehose *fh, const char *name, const struct firehose_tag *tags,
		   uint32_t count)
{
	const struct fh_stream *s = fh_stream_find(fh, name);

	return s == NULL ? -ENOENT : fh_tags_put(fh, s, tags, count);
}

int
firehose_tags_add(struct firehose *fh, const char *name, const struct firehose_tag *tags,
		  uint32_t count)
{
	int rc;

	fh_lock(fh);
	rc = fh_tags_add_locked(fh, name, tags, count);
	fh_unlock(fh);
	return rc;
}

static int
fh_tags_remove_locked(struct firehose *fh, const char *name, const char *const *keys,
		      uint32_t count)
{
	const struct fh_stream *s = fh_stream_find(fh, name);
	int64_t id;
	int rc;

	if (s == NULL)
		return -ENOENT;
	id = s->id;
	rc = fh_store_exec(fh, "BEGIN IMMEDIATE");
	for (uint32_t i = 0; rc == 0 && i < count; i++)
		rc = fh_store_run(fh, "DELETE FROM delivery_stream_tags WHERE ds_id = ? AND key = ?",
				  "it", (const void *[]){ &id, keys[i] });
	if (rc == 0)
		return fh_store_exec(fh, "COMMIT");
	fh_store_exec(fh, "ROLLBACK");
	return rc;
}

int
firehose_tags_remove(struct firehose *fh, const char *name, const char *const *keys,
		     uint32_t count)
{
	int rc;

	fh_lock(fh);
	rc = fh_tags_remove_locked(fh, name, keys, count);
	fh_unlock(fh);
	return rc;
}

static int
fh_tags_list_locked(struct firehose *fh, const char *name, const char *after,
		    struct firehose_tag *out, uint32_t count, uint32_t *total_out)
{
	const struct fh_stream *s = fh_stream_find(fh, name);
	sqlite3_stmt *st = NULL;
	uint32_t n = 0;
	int rc, step = SQLITE_DONE;

	if (s == NULL)
		return -ENOENT;
	rc = fh_tags_count(fh, s, after, total_out);
	if (rc != 0 || sqlite3_prepare_v2(fh->db, "SELECT key, value FROM delivery_stream_tags"
					  " WHERE ds_id = ? AND key > ? ORDER BY key LIMIT ?", -1,
					  &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, s->id);
	sqlite3_bind_text(st, 2, after != NULL ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, count);
	while (n < count && (step = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(out[n].key, sizeof(out[n].key), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		snprintf(out[n].value, sizeof(out[n].value), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		n++;
	}
	if (n < count && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

int
firehose_tags_list(struct firehose *fh, const char *name, const char *after,
		   struct firehose_tag *out, uint32_t count, uint32_t *total_out)
{
	int rc;

	fh_lock(fh);
	rc = fh_tags_list_locked(fh, name, after, out, count, total_out);
	fh_unlock(fh);
	return rc;
}
