/*
 * metadata.c - the SQLite store behind metadata.h. Statements are prepared
 * per call: these are control-plane operations, a few per second at most.
 *
 * Schema (version 1):
 *   meta(key TEXT PRIMARY KEY, value BLOB)          secret, next_stream_id
 *   streams(stream_id, incarnation, name UNIQUE, deleting, mode, retention_hours,
 *           created_ms, shard_count)
 *   shards(stream_id, shard_index, start_key, end_key, parent, adjacent_parent,
 *          created_s, closed, seq_end)                hash keys as decimal text;
 *                                                     closed: 0 open, 1 closed,
 *                                                     2 closing (seq_end unknown)
 *   tags(stream_id, key, value)
 *   consumer_tags(stream_id, consumer, key, value)    a consumer's (TagResource), removed
 *                                                     with the consumer or its stream
 *   pending_deletes(stream_id)                        log data still to drop
 *
 * A full disk: SQLite's writes fail, and DeleteStream (how space comes back) answered
 * 500. So the actions' connection holds METADATA_RESERVE_SIZE bytes in metadata.reserve;
 * a delete-path write that fails for want of space gives it back (unlink) and is retried
 * once; metadata_reserve_renew() takes it again once retention has freed space.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <sqlite3.h>

#include "common/base.h"
#include "common/diag.h"
#include "control/metadata.h"

/* A number macro as SQL text. */
#define METADATA_TEXT(x) METADATA_TEXT_(x)
#define METADATA_TEXT_(x) #x

/* Enough WAL pages for the delete path's transactions many times over. */
#define METADATA_RESERVE_SIZE (4u << 20)
/* The reserve is taken back only with this much free (three reserves: room to spare). */
#define METADATA_RESERVE_RENEW_FREE (3ull * METADATA_RESERVE_SIZE)

/* The change events of one store (metadata.h): owned by the writer's handle, shared by readers. */
struct metadata_feed {
	pthread_mutex_t lock;      /* Publishing, watch open and close. */
	struct metadata_watch *watches[METADATA_WATCHES_MAX];
	uint32_t readers;          /* Reader handles open (0 at the writer's close). */
	_Atomic uint64_t counts[METADATA_CHANGE_KINDS];
};

struct metadata_watch {
	struct metadata_feed *feed;
	uint32_t mask;
	int fd;                    /* eventfd: the writer adds, metadata_watch_take() drains. */
	_Atomic uint64_t generation;
};

struct metadata {
	sqlite3 *db;
	bool reserve_held;
	char reserve_path[4096];
	char path[4096];           /* metadata.db (metadata_open_reader opens it again). */
	struct metadata_feed *feed;
	bool reader;               /* A metadata_open_reader handle: the feed is the writer's. */
	bool shared_writer;        /* A metadata_open_writer handle: publishes on md's feed. */
};

static const char metadata_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS streams(stream_id INTEGER PRIMARY KEY,"
	" incarnation INTEGER NOT NULL, name TEXT NOT NULL UNIQUE,"
	" deleting INTEGER NOT NULL, mode INTEGER NOT NULL,"
	" retention_hours INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
	" shard_count INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS shards(stream_id INTEGER NOT NULL,"
	" shard_index INTEGER NOT NULL, start_key TEXT NOT NULL, end_key TEXT NOT NULL,"
	" parent INTEGER NOT NULL, adjacent_parent INTEGER NOT NULL,"
	" created_s INTEGER NOT NULL, closed INTEGER NOT NULL, seq_end INTEGER NOT NULL,"
	" PRIMARY KEY(stream_id, shard_index));"
	"CREATE TABLE IF NOT EXISTS tags(stream_id INTEGER NOT NULL, key TEXT NOT NULL,"
	" value TEXT NOT NULL, PRIMARY KEY(stream_id, key));"
	"CREATE TABLE IF NOT EXISTS pending_deletes(stream_id INTEGER PRIMARY KEY);"
	/* resource: "" for the stream itself, else a consumer's name. */
	"CREATE TABLE IF NOT EXISTS policies(stream_id INTEGER NOT NULL, resource TEXT NOT NULL,"
	" policy TEXT NOT NULL, PRIMARY KEY(stream_id, resource));"
	"CREATE TABLE IF NOT EXISTS consumers(stream_id INTEGER NOT NULL, name TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL, PRIMARY KEY(stream_id, name));"
	/* Consumers' tags: a table of their own, so older files open (tags keeps streams'). */
	"CREATE TABLE IF NOT EXISTS consumer_tags(stream_id INTEGER NOT NULL,"
	" consumer TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY(stream_id, consumer, key));"
	/* Settings added after the streams table: a table of their own, so older files open. */
	"CREATE TABLE IF NOT EXISTS stream_settings(stream_id INTEGER PRIMARY KEY,"
	" shard_metrics INTEGER NOT NULL DEFAULT 0,"
	" max_record_kib INTEGER NOT NULL DEFAULT " METADATA_TEXT(METADATA_MAX_RECORD_KIB_DEFAULT) ","
	" warm_mibps INTEGER NOT NULL DEFAULT 0);"
	/* Encrypted streams only: the KeyId as given, the keyring key it named (keyring.h). */
	"CREATE TABLE IF NOT EXISTS stream_encryption(stream_id INTEGER PRIMARY KEY,"
	" key_ref TEXT NOT NULL, key_name TEXT NOT NULL);";

/* enum metadata_setting -> its column in stream_settings. */
static const char *const metadata_setting_columns[] = {
	[METADATA_SHARD_METRICS] = "shard_metrics",
	[METADATA_MAX_RECORD_KIB] = "max_record_kib",
	[METADATA_WARM_MIBPS] = "warm_mibps",
};

/* -ENOSPC when SQLite ran out of disk, else -EIO. */
static int
metadata_errno(struct metadata *md)
{
	return sqlite3_errcode(md->db) == SQLITE_FULL || sqlite3_system_errno(md->db) == ENOSPC ?
	       -ENOSPC : -EIO;
}

static int
metadata_fail(struct metadata *md, const char *what)
{
	diag_error("metadata", "%s: %s", what, sqlite3_errmsg(md->db));
	return metadata_errno(md);
}

static int
metadata_exec(struct metadata *md, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(md->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		diag_error("metadata", "%s: %s", sql, err != NULL ? err : "?");
		sqlite3_free(err);
		return metadata_errno(md);
	}
	return 0;
}

void
metadata_reserve_renew(struct metadata *md)
{
	char dir[sizeof(md->reserve_path)];
	struct statvfs vfs;
	int fd;
	int err;

	if (md->reserve_held || md->reserve_path[0] == '\0')
		return;
	/*
	 * Only with room to spare: taken back while the disk is still nearly full, it
	 * would hold the very space the log needs to record a deletion and free more.
	 */
	snprintf(dir, sizeof(dir), "%s", md->reserve_path);
	if (strrchr(dir, '/') != NULL)
		*strrchr(dir, '/') = '\0';
	if (statvfs(dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < METADATA_RESERVE_RENEW_FREE)
		return;
	fd = open(md->reserve_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	err = posix_fallocate(fd, 0, METADATA_RESERVE_SIZE);
	close(fd);
	md->reserve_held = err == 0;
	if (md->reserve_held)
		diag_info("metadata", "disk space reserve for SQLite held (%u MiB)",
			  METADATA_RESERVE_SIZE >> 20);
}

static bool metadata_reserve_release(struct metadata *md, int rc);

bool
metadata_reserve_give(struct metadata *md)
{
	return md->reserve_held && metadata_reserve_release(md, -ENOSPC);
}

/* After a write failed with `rc`: true if the reserve was given back, so retry it once. */
static bool
metadata_reserve_release(struct metadata *md, int rc)
{
	if (rc != -ENOSPC || md->reserve_path[0] == '\0' || unlink(md->reserve_path) != 0)
		return false;
	md->reserve_held = false;
	diag_warn("metadata", "disk full: gave SQLite its %u MiB reserve (taken again once "
		  "retention frees space)", METADATA_RESERVE_SIZE >> 20);
	return true;
}

/* Prepares `sql` and binds int64 arguments in order ('i') or text ('t': ptr, size). */
static int
metadata_prepare(struct metadata *md, const char *sql, sqlite3_stmt **stmt_out)
{
	if (sqlite3_prepare_v2(md->db, sql, -1, stmt_out, NULL) != SQLITE_OK)
		return metadata_fail(md, sql);
	return 0;
}

/* Runs a statement that returns no rows, then finalizes it. */
static int
metadata_step_done(struct metadata *md, sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_CONSTRAINT) {
		sqlite3_finalize(stmt);
		return -EEXIST;
	}
	if (rc != SQLITE_DONE) {
		int err = metadata_fail(md, sqlite3_sql(stmt));

		sqlite3_finalize(stmt);
		return err;
	}
	sqlite3_finalize(stmt);
	return 0;
}

/* One statement with up to three integer arguments, no rows back. */
static int
metadata_run3(struct metadata *md, const char *sql, int64_t a, int64_t b, int64_t c)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, sql, &stmt);
	int params;

	if (rc != 0)
		return rc;
	params = sqlite3_bind_parameter_count(stmt);
	if (params >= 1)
		sqlite3_bind_int64(stmt, 1, a);
	if (params >= 2)
		sqlite3_bind_int64(stmt, 2, b);
	if (params >= 3)
		sqlite3_bind_int64(stmt, 3, c);
	return metadata_step_done(md, stmt);
}

static int
metadata_begin(struct metadata *md)
{
	return metadata_exec(md, "BEGIN IMMEDIATE");
}

static int
metadata_end(struct metadata *md, int rc)
{
	if (rc == 0)
		return metadata_exec(md, "COMMIT");
	metadata_exec(md, "ROLLBACK");
	return rc;
}

static int
metadata_setup(struct metadata *md)
{
	/* WAL + FULL: a committed transaction survives power loss, not just a crash. */
	int rc = metadata_exec(md, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			       "PRAGMA foreign_keys=OFF;");

	if (rc == 0)
		rc = metadata_exec(md, metadata_schema);
	return rc;
}

static int
metadata_connect(struct metadata *md, int flags)
{
	if (sqlite3_open_v2(md->path, &md->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		return metadata_fail(md, md->path);
	sqlite3_busy_timeout(md->db, 5000);
	return 0;
}

int
metadata_open(const char *data_dir, struct metadata **md_out)
{
	struct metadata *md = calloc(1, sizeof(*md));
	int rc;

	if (md == NULL)
		return -ENOMEM;
	md->feed = calloc(1, sizeof(*md->feed));
	if (md->feed == NULL) {
		free(md);
		return -ENOMEM;
	}
	pthread_mutex_init(&md->feed->lock, NULL);
	snprintf(md->path, sizeof(md->path), "%s/metadata.db", data_dir);
	rc = metadata_connect(md, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (rc != 0)
		goto out_close;
	snprintf(md->reserve_path, sizeof(md->reserve_path), "%s/metadata.reserve", data_dir);
	rc = metadata_setup(md);
	/* A start on a full disk: SQLite needs room for its WAL and shared memory files. */
	if (metadata_reserve_release(md, rc))
		rc = metadata_setup(md);
	if (rc != 0)
		goto out_close;
	metadata_reserve_renew(md);
	*md_out = md;
	return 0;

out_close:
	metadata_close(md);
	return rc;
}

/* Another connection on md's store and change events (a reader's, or a second writer's). */
static int
metadata_open_shared(struct metadata *md, bool writer, struct metadata **out)
{
	struct metadata *r;
	int rc;

	assert(!md->reader && !md->shared_writer);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	memcpy(r->path, md->path, sizeof(r->path));
	r->reader = !writer;
	r->shared_writer = writer;
	r->feed = md->feed;
	/* The writer created the schema; a reader never writes. */
	rc = metadata_connect(r, writer ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);
	if (rc != 0) {
		sqlite3_close(r->db);
		free(r);
		return rc;
	}
	pthread_mutex_lock(&md->feed->lock);
	md->feed->readers++;
	pthread_mutex_unlock(&md->feed->lock);
	*out = r;
	return 0;
}

int
metadata_open_reader(struct metadata *md, struct metadata **reader_out)
{
	return metadata_open_shared(md, false, reader_out);
}

int
metadata_open_writer(struct metadata *md, struct metadata **writer_out)
{
	return metadata_open_shared(md, true, writer_out);
}

void
metadata_close(struct metadata *md)
{
	if (md == NULL)
		return;
	sqlite3_close(md->db);
	if (md->reader || md->shared_writer) {
		pthread_mutex_lock(&md->feed->lock);
		md->feed->readers--;
		pthread_mutex_unlock(&md->feed->lock);
	} else if (md->feed != NULL) {
		/* Readers and watches use the feed: they must be gone (metadata_open_reader). */
		assert(md->feed->readers == 0);
		for (uint32_t i = 0; i < METADATA_WATCHES_MAX; i++)
			assert(md->feed->watches[i] == NULL);
		pthread_mutex_destroy(&md->feed->lock);
		free(md->feed);
	}
	free(md);
}

/* ---- Change events ---------------------------------------------------------------- */

/* After the commit of a change of `kind`: counted, and every watch on it woken. */
static void
metadata_publish(struct metadata *md, enum metadata_change kind)
{
	struct metadata_feed *feed = md->feed;
	uint64_t one = 1;

	assert(!md->reader);
	pthread_mutex_lock(&feed->lock);
	atomic_fetch_add(&feed->counts[__builtin_ctz(kind)], 1);
	for (uint32_t i = 0; i < METADATA_WATCHES_MAX; i++) {
		struct metadata_watch *w = feed->watches[i];

		if (w == NULL || (w->mask & kind) == 0)
			continue;
		/* The count first: a watcher that drained the fd then loads it sees this one. */
		atomic_fetch_add(&w->generation, 1);
		if (write(w->fd, &one, sizeof(one)) < 0)
			diag_warn("metadata", "watch eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&feed->lock);
}

/* Publishes `kind` when the change committed (rc == 0); returns rc. */
static int
metadata_changed(struct metadata *md, int rc, enum metadata_change kind)
{
	if (rc == 0)
		metadata_publish(md, kind);
	return rc;
}

int
metadata_watch_open(struct metadata *md, uint32_t mask, struct metadata_watch **watch_out)
{
	struct metadata_watch *w = calloc(1, sizeof(*w));
	int rc = -ENOSPC;

	if (w == NULL)
		return -ENOMEM;
	w->feed = md->feed;
	w->mask = mask;
	w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->fd < 0) {
		rc = -errno;
		free(w);
		return rc;
	}
	pthread_mutex_lock(&w->feed->lock);
	for (uint32_t i = 0; i < METADATA_WATCHES_MAX && rc != 0; i++)
		if (w->feed->watches[i] == NULL) {
			w->feed->watches[i] = w;
			rc = 0;
		}
	pthread_mutex_unlock(&w->feed->lock);
	if (rc != 0) {
		close(w->fd);
		free(w);
		return rc;
	}
	*watch_out = w;
	return 0;
}

void
metadata_watch_close(struct metadata_watch *watch)
{
	if (watch == NULL)
		return;
	pthread_mutex_lock(&watch->feed->lock);
	for (uint32_t i = 0; i < METADATA_WATCHES_MAX; i++)
		if (watch->feed->watches[i] == watch)
			watch->feed->watches[i] = NULL;
	pthread_mutex_unlock(&watch->feed->lock);
	close(watch->fd);
	free(watch);
}

int
metadata_watch_fd(const struct metadata_watch *watch)
{
	return watch->fd;
}

uint64_t
metadata_watch_take(struct metadata_watch *watch)
{
	uint64_t wakes;

	/* EAGAIN: nothing since the last take. Drained before the load (see publish). */
	if (read(watch->fd, &wakes, sizeof(wakes)) < 0 && errno != EAGAIN)
		diag_warn("metadata", "watch eventfd: %s", strerror(errno));
	return atomic_load(&watch->generation);
}

void
metadata_watch_kick(struct metadata_watch *watch)
{
	uint64_t one = 1;

	if (write(watch->fd, &one, sizeof(one)) < 0)
		diag_warn("metadata", "watch eventfd: %s", strerror(errno));
}

uint64_t
metadata_changes(struct metadata *md, enum metadata_change kind)
{
	assert(kind != 0 && (kind & (kind - 1)) == 0);
	assert((uint32_t)__builtin_ctz(kind) < METADATA_CHANGE_KINDS);
	return atomic_load(&md->feed->counts[__builtin_ctz(kind)]);
}

int
metadata_secret(struct metadata *md, uint8_t *secret, size_t size)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT value FROM meta WHERE key = 'secret'", &stmt);

	if (rc != 0)
		return rc;
	if (sqlite3_step(stmt) == SQLITE_ROW && (size_t)sqlite3_column_bytes(stmt, 0) == size) {
		memcpy(secret, sqlite3_column_blob(stmt, 0), size);
		sqlite3_finalize(stmt);
		return 0;
	}
	sqlite3_finalize(stmt);
	if (RAND_bytes(secret, (int)size) != 1)
		return -EIO;
	rc = metadata_prepare(md, "INSERT OR REPLACE INTO meta(key, value) VALUES('secret', ?)",
			      &stmt);
	if (rc != 0)
		return rc;
	sqlite3_bind_blob(stmt, 1, secret, (int)size, SQLITE_TRANSIENT);
	return metadata_step_done(md, stmt);
}

static int
metadata_load_streams(struct metadata *md, metadata_stream_fn *fn, void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT s.stream_id, incarnation, name, deleting, mode,"
				  " retention_hours, created_ms, shard_count,"
				  " IFNULL(shard_metrics, 0), IFNULL(max_record_kib, "
				  METADATA_TEXT(METADATA_MAX_RECORD_KIB_DEFAULT) "), IFNULL(warm_mibps, 0)"
				  " FROM streams s LEFT JOIN stream_settings t"
				  " ON t.stream_id = s.stream_id ORDER BY s.stream_id", &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct metadata_stream s = {
			.stream_id = (uint32_t)sqlite3_column_int64(stmt, 0),
			.incarnation = (uint64_t)sqlite3_column_int64(stmt, 1),
			.name = (const char *)sqlite3_column_text(stmt, 2),
			.deleting = sqlite3_column_int(stmt, 3) != 0,
			.mode = sqlite3_column_int(stmt, 4) == METADATA_ON_DEMAND ?
				METADATA_ON_DEMAND : METADATA_PROVISIONED,
			.retention_hours = (uint32_t)sqlite3_column_int64(stmt, 5),
			.created_ms = (uint64_t)sqlite3_column_int64(stmt, 6),
			.shard_count = (uint32_t)sqlite3_column_int64(stmt, 7),
			.shard_metrics = (uint32_t)sqlite3_column_int64(stmt, 8),
			.max_record_kib = (uint32_t)sqlite3_column_int64(stmt, 9),
			.warm_mibps = (uint32_t)sqlite3_column_int64(stmt, 10),
		};

		rc = fn(arg, &s);
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "load streams");
	sqlite3_finalize(stmt);
	return rc;
}

static int
metadata_column_hashkey(sqlite3_stmt *stmt, int column, hashkey_t *key_out)
{
	const char *text = (const char *)sqlite3_column_text(stmt, column);

	if (text == NULL)
		return -EINVAL;
	return hashkey_parse_decimal(text, strlen(text), key_out);
}

static int
metadata_load_shards(struct metadata *md, metadata_shard_fn *fn, void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT stream_id, shard_index, start_key, end_key, parent,"
				  " adjacent_parent, created_s, closed, seq_end FROM shards"
				  " ORDER BY stream_id, shard_index", &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct metadata_shard sh = {
			.shard_index = (uint32_t)sqlite3_column_int64(stmt, 1),
			.parent = sqlite3_column_int64(stmt, 4),
			.adjacent_parent = sqlite3_column_int64(stmt, 5),
			.created_s = (uint64_t)sqlite3_column_int64(stmt, 6),
			.closed = sqlite3_column_int(stmt, 7) != 0,
			.closing = sqlite3_column_int(stmt, 7) == 2,
			.seq_end = (uint64_t)sqlite3_column_int64(stmt, 8),
		};

		if (metadata_column_hashkey(stmt, 2, &sh.start) != 0 ||
		    metadata_column_hashkey(stmt, 3, &sh.end) != 0) {
			diag_error("metadata", "shard with a malformed hash key range");
			rc = -EIO;
			break;
		}
		rc = fn(arg, (uint32_t)sqlite3_column_int64(stmt, 0), &sh);
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "load shards");
	sqlite3_finalize(stmt);
	return rc;
}

int
metadata_load(struct metadata *md, metadata_stream_fn *stream_fn, metadata_shard_fn *shard_fn,
	      void *arg)
{
	int rc = metadata_load_streams(md, stream_fn, arg);

	return rc != 0 ? rc : metadata_load_shards(md, shard_fn, arg);
}

/* next_stream_id from meta, bumped in the caller's transaction. */
static int
metadata_next_stream_id(struct metadata *md, uint32_t *id_out)
{
	sqlite3_stmt *stmt;
	int64_t id = 1;
	int rc = metadata_prepare(md, "SELECT value FROM meta WHERE key = 'next_stream_id'",
				  &stmt);

	if (rc != 0)
		return rc;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		id = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (id < 1 || id > UINT32_MAX)
		return -ENOSPC;
	*id_out = (uint32_t)id;
	return metadata_run3(md, "INSERT OR REPLACE INTO meta(key, value)"
			     " VALUES('next_stream_id', ?)", id + 1, 0, 0);
}

static int
metadata_insert_shard(struct metadata *md, uint32_t stream_id, const struct metadata_shard *sh)
{
	char start[HASHKEY_DECIMAL_SIZE];
	char end[HASHKEY_DECIMAL_SIZE];
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "INSERT INTO shards(stream_id, shard_index, start_key,"
				  " end_key, parent, adjacent_parent, created_s, closed, seq_end)"
				  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", &stmt);

	if (rc != 0)
		return rc;
	hashkey_format_decimal(sh->start, start);
	hashkey_format_decimal(sh->end, end);
	sqlite3_bind_int64(stmt, 1, stream_id);
	sqlite3_bind_int64(stmt, 2, sh->shard_index);
	sqlite3_bind_text(stmt, 3, start, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(stmt, 4, end, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(stmt, 5, sh->parent);
	sqlite3_bind_int64(stmt, 6, sh->adjacent_parent);
	sqlite3_bind_int64(stmt, 7, (int64_t)sh->created_s);
	sqlite3_bind_int(stmt, 8, sh->closed);
	sqlite3_bind_int64(stmt, 9, (int64_t)sh->seq_end);
	return metadata_step_done(md, stmt);
}

static int
metadata_insert_stream(struct metadata *md, const struct metadata_stream *s)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "INSERT INTO streams(stream_id, incarnation, name, deleting,"
				  " mode, retention_hours, created_ms, shard_count)"
				  " VALUES(?, ?, ?, ?, ?, ?, ?, ?)", &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_int64(stmt, 1, s->stream_id);
	sqlite3_bind_int64(stmt, 2, (int64_t)s->incarnation);
	sqlite3_bind_text(stmt, 3, s->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(stmt, 4, s->deleting);
	sqlite3_bind_int(stmt, 5, (int)s->mode);
	sqlite3_bind_int64(stmt, 6, s->retention_hours);
	sqlite3_bind_int64(stmt, 7, (int64_t)s->created_ms);
	sqlite3_bind_int64(stmt, 8, s->shard_count);
	rc = metadata_step_done(md, stmt);
	/* Settings other than the defaults (older files have no row: the defaults). */
	if (rc == 0 && (s->shard_metrics != 0 || s->warm_mibps != 0 ||
			(s->max_record_kib != 0 && s->max_record_kib != METADATA_MAX_RECORD_KIB_DEFAULT)))
		rc = metadata_run3(md, "INSERT INTO stream_settings(stream_id, shard_metrics,"
				   " max_record_kib) VALUES(?, ?, ?)", s->stream_id, s->shard_metrics,
				   s->max_record_kib);
	/* CreateStream's WarmThroughputMiBps (run3 binds three values: a second statement). */
	if (rc == 0 && s->warm_mibps != 0)
		rc = metadata_run3(md, "UPDATE stream_settings SET warm_mibps = ? WHERE"
				   " stream_id = ?", s->warm_mibps, s->stream_id, 0);
	return rc;
}

/*
 * The tag statements, for a stream's tags (resource "": table tags) and a consumer's
 * (resource = its name: consumer_tags). Parameters: ?1 stream_id, ?2 consumer, ?3 key,
 * ?4 value or limit; a stream's statements leave ?2 out.
 */
enum metadata_tag_op { METADATA_TAG_UPSERT, METADATA_TAG_COUNT, METADATA_TAG_REMOVE,
		       METADATA_TAG_LIST };

static const char *const metadata_tag_sql[][2] = {
	[METADATA_TAG_UPSERT] = {
		"INSERT OR REPLACE INTO tags(stream_id, key, value) VALUES(?1, ?3, ?4)",
		"INSERT OR REPLACE INTO consumer_tags(stream_id, consumer, key, value)"
		" VALUES(?1, ?2, ?3, ?4)" },
	[METADATA_TAG_COUNT] = {
		"SELECT count(*) FROM tags WHERE stream_id = ?1",
		"SELECT count(*) FROM consumer_tags WHERE stream_id = ?1 AND consumer = ?2" },
	[METADATA_TAG_REMOVE] = {
		"DELETE FROM tags WHERE stream_id = ?1 AND key = ?3",
		"DELETE FROM consumer_tags WHERE stream_id = ?1 AND consumer = ?2 AND key = ?3" },
	[METADATA_TAG_LIST] = {
		"SELECT key, value FROM tags WHERE stream_id = ?1 AND key > ?3 ORDER BY key"
		" LIMIT ?4",
		"SELECT key, value FROM consumer_tags WHERE stream_id = ?1 AND consumer = ?2"
		" AND key > ?3 ORDER BY key LIMIT ?4" },
};

/* A tag statement of `op` for the resource's table, ?1 and ?2 bound. */
static int
metadata_tag_stmt(struct metadata *md, enum metadata_tag_op op, uint32_t stream_id,
		  const char *resource, sqlite3_stmt **stmt_out)
{
	bool consumer = resource != NULL && resource[0] != '\0';
	int rc = metadata_prepare(md, metadata_tag_sql[op][consumer], stmt_out);

	if (rc != 0)
		return rc;
	sqlite3_bind_int64(*stmt_out, 1, stream_id);
	if (consumer)
		sqlite3_bind_text(*stmt_out, 2, resource, -1, SQLITE_TRANSIENT);
	return 0;
}

static int
metadata_tag_upsert(struct metadata *md, uint32_t stream_id, const char *resource,
		    const struct metadata_tag *tag)
{
	sqlite3_stmt *stmt;
	int rc = metadata_tag_stmt(md, METADATA_TAG_UPSERT, stream_id, resource, &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(stmt, 3, tag->key, (int)tag->key_size, SQLITE_TRANSIENT);
	sqlite3_bind_text(stmt, 4, tag->value, (int)tag->value_size, SQLITE_TRANSIENT);
	return metadata_step_done(md, stmt);
}

static int
metadata_stream_create_txn(struct metadata *md, struct metadata_stream *stream,
			   const struct metadata_shard *shards, const struct metadata_tag *tags,
			   size_t tag_count)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	/* A cluster cache stores etcd's id; the counter only ever moves past it. */
	if (stream->stream_id != 0)
		rc = metadata_run3(md, "INSERT INTO meta(key, value) VALUES('next_stream_id', ?1)"
				   " ON CONFLICT(key) DO UPDATE SET value = max(value, ?1)",
				   (int64_t)stream->stream_id + 1, 0, 0);
	else
		rc = metadata_next_stream_id(md, &stream->stream_id);
	if (rc == 0)
		rc = metadata_insert_stream(md, stream);
	for (uint32_t i = 0; rc == 0 && i < stream->shard_count; i++)
		rc = metadata_insert_shard(md, stream->stream_id, &shards[i]);
	for (size_t i = 0; rc == 0 && i < tag_count; i++)
		rc = metadata_tag_upsert(md, stream->stream_id, "", &tags[i]);
	return metadata_end(md, rc);
}

int
metadata_stream_create(struct metadata *md, struct metadata_stream *stream,
		       const struct metadata_shard *shards, const struct metadata_tag *tags,
		       size_t tag_count)
{
	int rc = metadata_stream_create_txn(md, stream, shards, tags, tag_count);

	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_CREATED);
}

static int
metadata_stream_deleting_once(struct metadata *md, uint32_t stream_id)
{
	return metadata_run3(md, "UPDATE streams SET deleting = 1 WHERE stream_id = ?",
			     stream_id, 0, 0);
}

int
metadata_stream_deleting(struct metadata *md, uint32_t stream_id)
{
	int rc = metadata_stream_deleting_once(md, stream_id);

	if (metadata_reserve_release(md, rc))
		rc = metadata_stream_deleting_once(md, stream_id);
	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_DELETING);
}

static int
metadata_stream_delete_once(struct metadata *md, uint32_t stream_id)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	rc = metadata_run3(md, "DELETE FROM streams WHERE stream_id = ?", stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM shards WHERE stream_id = ?", stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM tags WHERE stream_id = ?", stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM policies WHERE stream_id = ?", stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM consumers WHERE stream_id = ?", stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM consumer_tags WHERE stream_id = ?", stream_id,
				   0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM stream_settings WHERE stream_id = ?", stream_id,
				   0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "DELETE FROM stream_encryption WHERE stream_id = ?",
				   stream_id, 0, 0);
	if (rc == 0)
		rc = metadata_run3(md, "INSERT OR REPLACE INTO pending_deletes(stream_id)"
				   " VALUES(?)", stream_id, 0, 0);
	return metadata_end(md, rc);
}

int
metadata_stream_delete(struct metadata *md, uint32_t stream_id)
{
	int rc = metadata_stream_delete_once(md, stream_id);

	if (metadata_reserve_release(md, rc))
		rc = metadata_stream_delete_once(md, stream_id);
	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_DELETED);
}

int
metadata_pending_deletes(struct metadata *md, int (*fn)(void *arg, uint32_t stream_id), void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT stream_id FROM pending_deletes", &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rc = fn(arg, (uint32_t)sqlite3_column_int64(stmt, 0));
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "pending deletes");
	sqlite3_finalize(stmt);
	return rc;
}

int
metadata_pending_delete_done(struct metadata *md, uint32_t stream_id)
{
	int rc = metadata_run3(md, "DELETE FROM pending_deletes WHERE stream_id = ?", stream_id,
			       0, 0);

	if (metadata_reserve_release(md, rc))
		rc = metadata_run3(md, "DELETE FROM pending_deletes WHERE stream_id = ?",
				   stream_id, 0, 0);
	return rc;
}

int
metadata_reshard(struct metadata *md, uint32_t stream_id, const uint32_t *closing,
		 size_t closing_count, const struct metadata_shard *added, size_t added_count,
		 uint32_t shard_count)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < closing_count; i++)
		rc = metadata_run3(md, "UPDATE shards SET closed = 2 WHERE stream_id = ? AND"
				   " shard_index = ? AND closed = 0", stream_id, closing[i], 0);
	for (size_t i = 0; rc == 0 && i < added_count; i++)
		rc = metadata_insert_shard(md, stream_id, &added[i]);
	if (rc == 0)
		rc = metadata_run3(md, "UPDATE streams SET shard_count = ? WHERE stream_id = ?",
				   shard_count, stream_id, 0);
	return metadata_changed(md, metadata_end(md, rc), METADATA_CHANGE_RESHARDED);
}

int
metadata_shard_closed(struct metadata *md, uint32_t stream_id, uint32_t shard_index,
		      uint64_t seq_end)
{
	int rc = metadata_run3(md, "UPDATE shards SET closed = 1, seq_end = ? WHERE stream_id = ?"
			       " AND shard_index = ?", (int64_t)seq_end, stream_id, shard_index);

	return metadata_changed(md, rc, METADATA_CHANGE_SHARD_CLOSED);
}

int
metadata_retention_set(struct metadata *md, uint32_t stream_id, uint32_t hours)
{
	int rc = metadata_run3(md, "UPDATE streams SET retention_hours = ? WHERE stream_id = ?",
			       hours, stream_id, 0);

	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_UPDATED);
}

int
metadata_setting_set(struct metadata *md, uint32_t stream_id, enum metadata_setting which,
		     uint32_t value)
{
	char sql[160];

	assert(which < ARRAY_SIZE(metadata_setting_columns));
	snprintf(sql, sizeof(sql), "INSERT INTO stream_settings(stream_id, %s) VALUES(?, ?)"
		 " ON CONFLICT(stream_id) DO UPDATE SET %s = excluded.%s",
		 metadata_setting_columns[which], metadata_setting_columns[which],
		 metadata_setting_columns[which]);
	return metadata_changed(md, metadata_run3(md, sql, stream_id, value, 0),
				METADATA_CHANGE_STREAM_UPDATED);
}

int
metadata_account_get(struct metadata *md, const char *key, int64_t *values, size_t count)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT value FROM meta WHERE key = ?", &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	rc = -ENOENT;
	if (sqlite3_step(stmt) == SQLITE_ROW &&
	    (size_t)sqlite3_column_bytes(stmt, 0) == count * sizeof(*values)) {
		memcpy(values, sqlite3_column_blob(stmt, 0), count * sizeof(*values));
		rc = 0;
	}
	sqlite3_finalize(stmt);
	return rc;
}

int
metadata_account_set(struct metadata *md, const char *key, const int64_t *values, size_t count)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
				  &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 2, values, (int)(count * sizeof(*values)), SQLITE_TRANSIENT);
	return metadata_step_done(md, stmt);
}

int
metadata_mode_set(struct metadata *md, uint32_t stream_id, enum metadata_mode mode)
{
	int rc = metadata_run3(md, "UPDATE streams SET mode = ? WHERE stream_id = ?",
			       (int64_t)mode, stream_id, 0);

	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_UPDATED);
}

static int
metadata_tags_count(struct metadata *md, uint32_t stream_id, const char *resource,
		    uint32_t *count_out)
{
	sqlite3_stmt *stmt;
	int rc = metadata_tag_stmt(md, METADATA_TAG_COUNT, stream_id, resource, &stmt);

	if (rc != 0)
		return rc;
	if (sqlite3_step(stmt) != SQLITE_ROW)
		rc = metadata_fail(md, "count tags");
	else
		*count_out = (uint32_t)sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return rc;
}

/* Inside a transaction: adds or overwrites, then counts against `max`. */
static int
metadata_tags_put_in(struct metadata *md, uint32_t stream_id, const char *resource,
		     const struct metadata_tag *tags, size_t count, uint32_t max)
{
	uint32_t total = 0;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < count; i++)
		rc = metadata_tag_upsert(md, stream_id, resource, &tags[i]);
	if (rc == 0)
		rc = metadata_tags_count(md, stream_id, resource, &total);
	if (rc == 0 && total > max)
		rc = -E2BIG;
	return rc;
}

int
metadata_tags_put(struct metadata *md, uint32_t stream_id, const char *resource,
		  const struct metadata_tag *tags, size_t count, uint32_t max)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	return metadata_end(md, metadata_tags_put_in(md, stream_id, resource, tags, count, max));
}

int
metadata_tags_remove(struct metadata *md, uint32_t stream_id, const char *resource,
		     const struct metadata_tag *keys, size_t count)
{
	int rc = metadata_begin(md);

	for (size_t i = 0; rc == 0 && i < count; i++) {
		sqlite3_stmt *stmt;

		rc = metadata_tag_stmt(md, METADATA_TAG_REMOVE, stream_id, resource, &stmt);
		if (rc != 0)
			break;
		sqlite3_bind_text(stmt, 3, keys[i].key, (int)keys[i].key_size, SQLITE_TRANSIENT);
		rc = metadata_step_done(md, stmt);
	}
	return metadata_end(md, rc);
}

int
metadata_tags_list(struct metadata *md, uint32_t stream_id, const char *resource,
		   const char *start_after, size_t start_after_size, uint32_t limit,
		   void (*fn)(void *arg, const struct metadata_tag *tag), void *arg, bool *more_out)
{
	sqlite3_stmt *stmt;
	uint32_t n = 0;
	int rc = metadata_tag_stmt(md, METADATA_TAG_LIST, stream_id, resource, &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(stmt, 3, start_after != NULL ? start_after : "",
			  start_after != NULL ? (int)start_after_size : 0, SQLITE_TRANSIENT);
	sqlite3_bind_int64(stmt, 4, (int64_t)limit + 1);
	*more_out = false;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct metadata_tag tag = {
			.key = (const char *)sqlite3_column_text(stmt, 0),
			.key_size = (size_t)sqlite3_column_bytes(stmt, 0),
			.value = (const char *)sqlite3_column_text(stmt, 1),
			.value_size = (size_t)sqlite3_column_bytes(stmt, 1),
		};

		if (n++ == limit) {
			*more_out = true;
			break;
		}
		fn(arg, &tag);
	}
	rc = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : metadata_fail(md, "list tags");
	sqlite3_finalize(stmt);
	return rc;
}

/* A statement over policies(stream_id, resource[, policy]) with its keys bound. */
static int
metadata_policy_stmt(struct metadata *md, const char *sql, uint32_t stream_id,
		     const char *resource, sqlite3_stmt **stmt_out)
{
	int rc = metadata_prepare(md, sql, stmt_out);

	if (rc != 0)
		return rc;
	sqlite3_bind_int64(*stmt_out, 1, stream_id);
	sqlite3_bind_text(*stmt_out, 2, resource, -1, SQLITE_TRANSIENT);
	return 0;
}

int
metadata_policy_put(struct metadata *md, uint32_t stream_id, const char *resource,
		    const char *policy, size_t size)
{
	sqlite3_stmt *stmt;
	int rc = metadata_policy_stmt(md, "INSERT OR REPLACE INTO policies(stream_id, resource,"
				      " policy) VALUES(?, ?, ?)", stream_id, resource, &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(stmt, 3, policy, (int)size, SQLITE_TRANSIENT);
	return metadata_changed(md, metadata_step_done(md, stmt), METADATA_CHANGE_POLICIES);
}

int
metadata_policy_get(struct metadata *md, uint32_t stream_id, const char *resource, char *out,
		    size_t cap, size_t *size_out)
{
	sqlite3_stmt *stmt;
	int rc = metadata_policy_stmt(md, "SELECT policy FROM policies WHERE stream_id = ? AND"
				      " resource = ?", stream_id, resource, &stmt);
	int step;

	if (rc != 0)
		return rc;
	step = sqlite3_step(stmt);
	if (step == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(stmt, 0);

		rc = n < cap ? 0 : -E2BIG;
		if (rc == 0) {
			memcpy(out, sqlite3_column_text(stmt, 0), n);
			out[n] = '\0';
			*size_out = n;
		}
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : metadata_fail(md, "read policy");
	}
	sqlite3_finalize(stmt);
	return rc;
}

int
metadata_policy_delete(struct metadata *md, uint32_t stream_id, const char *resource)
{
	sqlite3_stmt *stmt;
	int rc = metadata_policy_stmt(md, "DELETE FROM policies WHERE stream_id = ? AND"
				      " resource = ?", stream_id, resource, &stmt);

	if (rc != 0)
		return rc;
	rc = metadata_step_done(md, stmt);
	if (rc == 0 && sqlite3_changes(md->db) == 0)
		rc = -ENOENT;
	return metadata_changed(md, rc, METADATA_CHANGE_POLICIES);
}

int
metadata_policies(struct metadata *md, metadata_policy_fn *fn, void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT stream_id, resource FROM policies", &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rc = fn(arg, (uint32_t)sqlite3_column_int64(stmt, 0),
			(const char *)sqlite3_column_text(stmt, 1));
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "list policies");
	sqlite3_finalize(stmt);
	return rc;
}

/* A consumer row: one statement, so no transaction of its own is needed. */
static int
metadata_consumer_run(struct metadata *md, const char *sql, uint32_t stream_id,
		      const char *name, size_t name_size, uint64_t created_ms)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, sql, &stmt);

	if (rc != 0)
		return rc;
	sqlite3_bind_int64(stmt, 1, stream_id);
	sqlite3_bind_text(stmt, 2, name, (int)name_size, SQLITE_TRANSIENT);
	if (sqlite3_bind_parameter_count(stmt) >= 3)
		sqlite3_bind_int64(stmt, 3, (int64_t)created_ms);
	return metadata_step_done(md, stmt);
}

int
metadata_consumer_add(struct metadata *md, uint32_t stream_id, const char *name,
		      size_t name_size, uint64_t created_ms, const struct metadata_tag *tags,
		      size_t tag_count)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	rc = metadata_consumer_run(md, "INSERT INTO consumers(stream_id, name, created_ms)"
				   " VALUES(?, ?, ?)", stream_id, name, name_size, created_ms);
	for (size_t i = 0; rc == 0 && i < tag_count; i++)
		rc = metadata_tag_upsert(md, stream_id, name, &tags[i]);
	return metadata_changed(md, metadata_end(md, rc), METADATA_CHANGE_CONSUMERS);
}

int
metadata_consumer_remove(struct metadata *md, uint32_t stream_id, const char *name,
			 size_t name_size)
{
	int rc = metadata_begin(md);

	if (rc != 0)
		return rc;
	rc = metadata_consumer_run(md, "DELETE FROM consumers WHERE stream_id = ? AND name = ?",
				   stream_id, name, name_size, 0);
	if (rc == 0)
		rc = metadata_consumer_run(md, "DELETE FROM consumer_tags WHERE stream_id = ? AND"
					   " consumer = ?", stream_id, name, name_size, 0);
	return metadata_changed(md, metadata_end(md, rc), METADATA_CHANGE_CONSUMERS);
}

int
metadata_consumers_load(struct metadata *md, metadata_consumer_fn *fn, void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT stream_id, name, created_ms FROM consumers"
				  " ORDER BY stream_id, created_ms, name", &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rc = fn(arg, (uint32_t)sqlite3_column_int64(stmt, 0),
			(const char *)sqlite3_column_text(stmt, 1),
			(size_t)sqlite3_column_bytes(stmt, 1),
			(uint64_t)sqlite3_column_int64(stmt, 2));
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "consumers");
	sqlite3_finalize(stmt);
	return rc;
}

int
metadata_encryption_set(struct metadata *md, uint32_t stream_id, const char *key_ref,
			const char *key_name)
{
	sqlite3_stmt *stmt;
	int rc;

	if (key_ref == NULL)
		return metadata_changed(md, metadata_run3(md, "DELETE FROM stream_encryption WHERE"
							  " stream_id = ?", stream_id, 0, 0),
					METADATA_CHANGE_STREAM_UPDATED);
	rc = metadata_prepare(md, "INSERT OR REPLACE INTO stream_encryption(stream_id, key_ref,"
			      " key_name) VALUES(?, ?, ?)", &stmt);
	if (rc != 0)
		return rc;
	sqlite3_bind_int64(stmt, 1, stream_id);
	sqlite3_bind_text(stmt, 2, key_ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, key_name, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE)
		rc = metadata_fail(md, "set stream encryption");
	sqlite3_finalize(stmt);
	return metadata_changed(md, rc, METADATA_CHANGE_STREAM_UPDATED);
}

int
metadata_encryption_list(struct metadata *md,
			 metadata_encryption_fn *fn, void *arg)
{
	sqlite3_stmt *stmt;
	int rc = metadata_prepare(md, "SELECT stream_id, key_ref, key_name FROM stream_encryption",
				  &stmt);

	while (rc == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
		rc = fn(arg, (uint32_t)sqlite3_column_int64(stmt, 0),
			(const char *)sqlite3_column_text(stmt, 1),
			(const char *)sqlite3_column_text(stmt, 2));
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = metadata_fail(md, "stream encryption");
	sqlite3_finalize(stmt);
	return rc;
}
