/*
 * cmd_backup.c - sluice backup / sluice restore: an online copy of a running
 * appliance's data directory, and putting one in place.
 *
 * Backup, while sluiced keeps ingesting:
 *   1. metadata.db, then firehose.db (delivery streams, when present), through
 *      SQLite's online backup API (consistent snapshots; SQLite's WAL lets sluiced
 *      go on writing meanwhile);
 *   2. then the log: log.meta, and every segment and index file present when
 *      the copy starts, oldest first. Everything acknowledged before step 1
 *      began was durable on disk before it, so it is in the copy; the active
 *      segment may end in a window the writer had in flight, which the next
 *      open cuts as a torn tail (log_recover.c), exactly as after a crash.
 *   3. the copied log is checked with log_verify() and a BACKUP manifest written.
 * Ordering metadata first means every shard holding copied records exists in
 * the copied metadata. Zero-filled (pre-written, unused) parts of segments are
 * left as holes, so spare segments cost no space.
 *
 * A segment that retention deletes or recycles while it is listed or copied
 * is left out (the name no longer leads to the file copied): it was past
 * retention, and its copy could be torn. The backup directory must be on a
 * file system with room for the live data.
 *
 * Restore copies a backup into an empty data directory (sluiced stopped, or a
 * new one); sluiced's next start recovers from it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/base.h"
#include "common/clock.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"
#include "tools/cmd.h"

#define BACKUP_COPY_CHUNK (1u << 20)
#define BACKUP_FILES_MAX 65536u       /* Log files copied (segments, indexes, log.meta). */
#define BACKUP_NAME_SIZE 64u
#define BACKUP_PATH_SIZE 4096u
#define BACKUP_SQLITE_PAGES_STEP 1024 /* Pages per backup step: short read transactions. */
#define BACKUP_SQLITE_BUSY_SLEEP_US 10000u

/*
 * Copies `src_path` to `dst_path`, leaving all-zero chunks as holes. -ESTALE
 * (and no copy left) when the name no longer leads to the file copied: the log
 * deleted or recycled it meanwhile (retention), so the copy may be torn.
 */
static int
backup_copy_file(const char *src_path, const char *dst_path, uint8_t *buf, uint64_t *bytes_out)
{
	struct stat copied;
	struct stat now;
	int src = open(src_path, O_RDONLY | O_CLOEXEC);
	int dst;
	off_t size = 0;
	ssize_t n;
	int err = 0;

	if (src < 0)
		return -errno;
	dst = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (dst < 0) {
		err = -errno;
		goto out_close_src;
	}
	while ((n = read(src, buf, BACKUP_COPY_CHUNK)) > 0) {
		bool zero = true;

		for (ssize_t i = 0; i < n && zero; i++)
			zero = buf[i] == 0;
		if (!zero && pwrite(dst, buf, (size_t)n, size) != n) {
			err = errno != 0 ? -errno : -EIO;
			break;
		}
		size += n;
	}
	if (n < 0)
		err = -errno;
	if (err == 0 && (ftruncate(dst, size) != 0 || fsync(dst) != 0))
		err = -errno;
	if (err == 0 && fstat(src, &copied) == 0 &&
	    (stat(src_path, &now) != 0 || now.st_ino != copied.st_ino)) {
		unlink(dst_path);
		err = -ESTALE;
	}
	*bytes_out += (uint64_t)size;
	close(dst);
out_close_src:
	close(src);
	return err;
}

/*
 * Retention took segment file `name` while it was listed or copied: its copy
 * and its index's copy go (the segment was past retention, and a torn copy
 * would read as corruption).
 */
static int
backup_drop_segment(const char *dst_dir, const char *name)
{
	char path[BACKUP_PATH_SIZE];
	size_t stem = strcspn(name, ".");

	snprintf(path, sizeof(path), "%s/%.*s.log", dst_dir, (int)stem, name);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%.*s.idx", dst_dir, (int)stem, name);
	unlink(path);
	return 0;
}

static int
backup_name_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * Copies the log directory's files present now: log.meta first, then segment
 * and index files in name order (oldest segment first). Temporary files are
 * skipped; a file that vanished meanwhile (retention) is skipped too.
 */
static int
backup_copy_log(const char *src_dir, const char *dst_dir, uint8_t *buf, uint64_t *bytes_out)
{
	char (*names)[BACKUP_NAME_SIZE] = calloc(BACKUP_FILES_MAX, BACKUP_NAME_SIZE);
	char src[BACKUP_PATH_SIZE];
	char dst[BACKUP_PATH_SIZE];
	DIR *dir = opendir(src_dir);
	struct dirent *e;
	uint32_t count = 0;
	int err = 0;

	if (names == NULL || dir == NULL) {
		err = names == NULL ? -ENOMEM : -errno;
		goto out_free;
	}
	while ((e = readdir(dir)) != NULL && count < BACKUP_FILES_MAX) {
		size_t size = strlen(e->d_name);

		if (e->d_name[0] == '.' || size >= BACKUP_NAME_SIZE ||
		    (size > 4 && strcmp(e->d_name + size - 4, ".tmp") == 0))
			continue;
		memcpy(names[count++], e->d_name, size + 1);
	}
	/* "log.meta" sorts after "seg-...": copy it first, by name. */
	qsort(names, count, BACKUP_NAME_SIZE, backup_name_compare);
	for (int pass = 0; pass < 2 && err == 0; pass++) {
		for (uint32_t i = 0; i < count && err == 0; i++) {
			if ((strcmp(names[i], "log.meta") == 0) != (pass == 0))
				continue;
			snprintf(src, sizeof(src), "%s/%s", src_dir, names[i]);
			snprintf(dst, sizeof(dst), "%s/%s", dst_dir, names[i]);
			err = backup_copy_file(src, dst, buf, bytes_out);
			if ((err == -ENOENT || err == -ESTALE) && pass == 1)
				err = backup_drop_segment(dst_dir, names[i]);
		}
	}
out_free:
	if (dir != NULL)
		closedir(dir);
	free(names);
	return err;
}

/* SQLite's online backup of `src_path` into the new database `dst_path`. */
static int
backup_metadata(const char *src_path, const char *dst_path)
{
	sqlite3 *src = NULL;
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL) {
		rc = sqlite3_errcode(dst);
		goto out_close;
	}
	do {
		rc = sqlite3_backup_step(b, BACKUP_SQLITE_PAGES_STEP);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			usleep(BACKUP_SQLITE_BUSY_SLEEP_US);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	sqlite3_backup_finish(b);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
out_close:
	if (rc != SQLITE_OK)
		fprintf(stderr, "sluice backup: metadata %s: %s\n", src_path,
			dst != NULL ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
	sqlite3_close(dst);
	sqlite3_close(src);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* Creates `path` (and nothing above it); it must not exist or be an empty directory. */
static int
backup_dir_fresh(const char *path)
{
	DIR *dir;
	struct dirent *e;
	int found = 0;

	if (mkdir(path, 0750) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	dir = opendir(path);
	if (dir == NULL)
		return -errno;
	while ((e = readdir(dir)) != NULL)
		found += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(dir);
	return found == 0 ? 0 : -ENOTEMPTY;
}

struct backup_args {
	const char *data_dir;
	const char *other_dir;        /* --to (backup) or --from (restore). */
};

static int
backup_parse(int argc, char **argv, const char *other_flag, struct backup_args *args)
{
	const struct option options[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ other_flag, required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'd')
			args->data_dir = optarg;
		else if (opt == 'o')
			args->other_dir = optarg;
		else
			return opt == 'h' ? 1 : -EINVAL;
	}
	return args->data_dir != NULL && args->other_dir != NULL && optind == argc ? 0 : -EINVAL;
}

static int
backup_manifest(const char *dir, uint64_t started_ns, uint64_t bytes,
		const struct log_verify_report *report)
{
	char path[BACKUP_PATH_SIZE];
	FILE *f;

	snprintf(path, sizeof(path), "%s/BACKUP", dir);
	f = fopen(path, "we");
	if (f == NULL)
		return -errno;
	fprintf(f, "sluice backup 1\nstarted_ns %llu\nfinished_ns %llu\nlog_bytes %llu\n"
		"records %llu\nsegments %llu\ntorn_tails %llu\n", (unsigned long long)started_ns,
		(unsigned long long)clock_real_ns(), (unsigned long long)bytes,
		(unsigned long long)report->records, (unsigned long long)report->segments,
		(unsigned long long)report->torn_tails);
	return fclose(f) == 0 ? 0 : -EIO;
}

int
cmd_backup(int argc, char **argv)
{
	struct backup_args args = { 0 };
	struct log_verify_report report;
	char src[BACKUP_PATH_SIZE];
	char dst[BACKUP_PATH_SIZE];
	uint64_t started_ns = clock_real_ns();
	uint64_t bytes = 0;
	uint8_t *buf;
	int rc = backup_parse(argc, argv, "to", &args);

	if (rc != 0) {
		fprintf(rc == 1 ? stdout : stderr, "usage: sluice backup --data-dir DIR --to DIR\n"
			"  Online copy of a running appliance's data directory (docs/OPERATIONS.md).\n");
		return rc == 1 ? CMD_EXIT_OK : CMD_EXIT_USAGE;
	}
	rc = backup_dir_fresh(args.other_dir);
	snprintf(dst, sizeof(dst), "%s/log", args.other_dir);
	if (rc == 0 && mkdir(dst, 0750) != 0)
		rc = -errno;
	if (rc != 0) {
		fprintf(stderr, "sluice backup: %s: %s\n", args.other_dir, strerror(-rc));
		return CMD_EXIT_ERROR;
	}
	snprintf(src, sizeof(src), "%s/metadata.db", args.data_dir);
	snprintf(dst, sizeof(dst), "%s/metadata.db", args.other_dir);
	if (backup_metadata(src, dst) != 0)
		return CMD_EXIT_ERROR;
	/*
	 * Delivery streams' positions are snapshotted before the log is copied: each is at
	 * most what was durable then, so the copied log holds what they still need.
	 */
	snprintf(src, sizeof(src), "%s/" FIREHOSE_DB_FILE, args.data_dir);
	snprintf(dst, sizeof(dst), "%s/" FIREHOSE_DB_FILE, args.other_dir);
	if (access(src, F_OK) == 0 && backup_metadata(src, dst) != 0)
		return CMD_EXIT_ERROR;
	buf = malloc(BACKUP_COPY_CHUNK);
	if (buf == NULL)
		return CMD_EXIT_ERROR;
	snprintf(src, sizeof(src), "%s/log", args.data_dir);
	snprintf(dst, sizeof(dst), "%s/log", args.other_dir);
	rc = backup_copy_log(src, dst, buf, &bytes);
	free(buf);
	if (rc != 0) {
		fprintf(stderr, "sluice backup: copying %s: %s\n", src, strerror(-rc));
		return CMD_EXIT_ERROR;
	}
	rc = log_verify(dst, &report, NULL, NULL);
	if (rc != 0 && rc != -EBADMSG) {
		fprintf(stderr, "sluice backup: verifying the copy: %s\n", strerror(-rc));
		return CMD_EXIT_ERROR;
	}
	if (backup_manifest(args.other_dir, started_ns, bytes, &report) != 0)
		return CMD_EXIT_ERROR;
	printf("backup %s: %llu records in %llu segments, %.1f MiB copied%s\n", args.other_dir,
	       (unsigned long long)report.records, (unsigned long long)report.segments,
	       (double)bytes / (1 << 20), rc == -EBADMSG ? "; log_verify found corruption" : "");
	return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_PARTIAL;
}

int
cmd_restore(int argc, char **argv)
{
	struct backup_args args = { 0 };
	char src[BACKUP_PATH_SIZE];
	char dst[BACKUP_PATH_SIZE];
	uint64_t bytes = 0;
	uint8_t *buf;
	int rc = backup_parse(argc, argv, "from", &args);

	if (rc != 0) {
		fprintf(rc == 1 ? stdout : stderr, "usage: sluice restore --from DIR --data-dir DIR\n"
			"  Puts a backup in an empty data directory (sluiced not running on it).\n");
		return rc == 1 ? CMD_EXIT_OK : CMD_EXIT_USAGE;
	}
	snprintf(src, sizeof(src), "%s/BACKUP", args.other_dir);
	if (access(src, R_OK) != 0) {
		fprintf(stderr, "sluice restore: %s is not a backup (no BACKUP file)\n",
			args.other_dir);
		return CMD_EXIT_ERROR;
	}
	rc = backup_dir_fresh(args.data_dir);
	snprintf(dst, sizeof(dst), "%s/log", args.data_dir);
	if (rc == 0 && mkdir(dst, 0750) != 0)
		rc = -errno;
	buf = rc == 0 ? malloc(BACKUP_COPY_CHUNK) : NULL;
	if (rc == 0 && buf == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		snprintf(src, sizeof(src), "%s/metadata.db", args.other_dir);
		snprintf(dst, sizeof(dst), "%s/metadata.db", args.data_dir);
		rc = backup_copy_file(src, dst, buf, &bytes);
	}
	if (rc == 0) {
		snprintf(src, sizeof(src), "%s/" FIREHOSE_DB_FILE, args.other_dir);
		snprintf(dst, sizeof(dst), "%s/" FIREHOSE_DB_FILE, args.data_dir);
		if (access(src, F_OK) == 0)  /* Backups from before delivery streams have none. */
			rc = backup_copy_file(src, dst, buf, &bytes);
	}
	if (rc == 0) {
		snprintf(src, sizeof(src), "%s/log", args.other_dir);
		snprintf(dst, sizeof(dst), "%s/log", args.data_dir);
		rc = backup_copy_log(src, dst, buf, &bytes);
	}
	free(buf);
	if (rc != 0) {
		fprintf(stderr, "sluice restore: %s: %s\n", args.data_dir, strerror(-rc));
		return CMD_EXIT_ERROR;
	}
	printf("restored %s into %s (%.1f MiB); start sluiced with --data-dir %s\n",
	       args.other_dir, args.data_dir, (double)bytes / (1 << 20), args.data_dir);
	return CMD_EXIT_OK;
}
