/*
 * fh_flush.c - the flusher: when a delivery stream's buffer is due (AWS's
 * BufferingHints: SizeInMBs of data before compression, or IntervalInSeconds
 * since its oldest record arrived, whichever comes first), cut a range of its
 * log shard, record the cut as an intent, write the object, then record the
 * new delivered position (firehose.h, "Exactly once").
 *
 * One delivery, step by step (a crash after any step redoes the intent):
 *
 *   STEP  WHAT                                          DURABLE AFTER IT
 *   1     read [delivered, cut) from the log             -
 *   2     intent = [delivered, cut)                      SQLite
 *   3     compress, write <key>.tmp, fsync               the temp file
 *   4     rename to <key>, fsync the directory           the object
 *   5     delivered = cut, intent cleared                SQLite
 *
 * Directories the key creates are fsynced into their parents as they are made.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/diag.h"
#include "common/hist.h"
#include "common/kpl.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

/* ---- Names ---------------------------------------------------------------- */

static uint64_t
fh_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

uint64_t
fh_hash_text(uint64_t h, const char *text)
{
	for (; *text != '\0'; text++)
		h = fh_mix(h, (uint8_t)*text);
	return h;
}

/* What the object holds: its stream, version, range and (partitions) group salt. */
static uint64_t
fh_object_hash(const char *name, uint32_t version, uint64_t shard_id, uint64_t first,
	       uint64_t end, uint64_t salt)
{
	uint64_t h = fh_mix(fh_mix(fh_mix(fh_mix(fh_hash_text(1, name), version), shard_id),
				   first), end);

	return salt != 0 ? fh_mix(h, salt) : h;  /* Salt 0: an unpartitioned object. */
}

/* The "random" part: a hash of what the object holds, so a redo names it the same. */
static void
fh_uuid(uint64_t h, char out[FH_UUID_SIZE])
{
	uint64_t hi = fh_mix(h, 0x68692d31ull), lo = fh_mix(h, 0x6c6f2d32ull);

	hi = (hi & ~0xf000ull) | 0x4000ull;           /* Shaped as a version-4 UUID. */
	lo = (lo & ~(3ull << 62)) | (2ull << 62);
	snprintf(out, FH_UUID_SIZE, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
		 (unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff, (unsigned)(lo >> 48),
		 (unsigned long long)(lo & 0xffffffffffffull));
}

void
fh_range_uuid(const struct fh_job *j, uint64_t first, uint64_t end, char out[FH_UUID_SIZE])
{
	fh_uuid(fh_object_hash(j->spec.name, j->version, j->shard_id, first, end, 0), out);
}

int
fh_object_key(const struct fh_job *j, uint64_t first, uint64_t end, const char *prefix,
	      const struct fh_prefix_vars *vars, char *out, size_t out_size)
{
	struct fh_prefix_vars v = *vars;
	time_t t = (time_t)(v.arrival_ns / 1000000000u);
	char stamp[32], uuid[FH_UUID_SIZE];
	size_t used;
	struct tm tm;
	int n;

	v.salt = fh_object_hash(j->spec.name, j->version, j->shard_id, first, end, vars->salt);
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d-%H-%M-%S", &tm);
	fh_uuid(v.salt, uuid);
	if (fh_prefix_eval(prefix, &v, out, out_size) != 0)
		return -ENAMETOOLONG;
	used = strlen(out);
	n = snprintf(out + used, out_size - used, "%s-%u-%s-%s%s", j->spec.name, j->version,
		     stamp, uuid, fh_codec_extension(j->spec.compression));
	return n < 0 || (size_t)n >= out_size - used ? -ENAMETOOLONG : 0;
}

int
firehose_object_key(const struct firehose_spec *spec, uint32_t version, uint64_t shard_id,
		    uint64_t seq_first, uint64_t seq_end, uint64_t first_arrival_ns, char *out,
		    size_t out_size)
{
	struct fh_job j = { .spec = *spec, .version = version, .shard_id = shard_id };
	struct fh_prefix_vars v = { .arrival_ns = first_arrival_ns };

	return fh_object_key(&j, seq_first, seq_end, spec->prefix, &v, out, out_size);
}

/* ---- Files ----------------------------------------------------------------- */

static int
fh_fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* mkdir -p of the directory part of `path`; each new directory is fsynced into its parent. */
static int
fh_make_dirs(char *path)
{
	for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		int rc;

		*p = '\0';
		if (mkdir(path, 0755) == 0) {
			char *slash = strrchr(path, '/');

			*slash = '\0';
			rc = fh_fsync_path(slash == path ? "/" : path);
			*slash = '/';
		} else {
			rc = errno == EEXIST ? 0 : -errno;
		}
		*p = '/';
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
fh_write_all(int fd, const uint8_t *data, size_t size)
{
	while (size > 0) {
		ssize_t n = write(fd, data, size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

/* Steps 3 and 4: temp file, fsync, rename, fsync the directory. */
static int
fh_write_object(char *path, const uint8_t *data, size_t size)
{
	char tmp[FIREHOSE_PATH_SIZE_MAX + 8];
	char *slash;
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	rc = fh_make_dirs(path);
	if (rc != 0)
		return rc;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = fh_write_all(fd, data, size);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	slash = strrchr(path, '/');
	*slash = '\0';
	rc = fh_fsync_path(path);
	*slash = '/';
	return rc;
}

/* ---- Reading a range ------------------------------------------------------- */

struct fh_read {
	struct firehose *fh;
	struct fh_part *part;    /* Partitioned: each record's place noted. */
	uint64_t limit;          /* Stop once this many data bytes are in (a cut by size). */
	uint32_t records_max;    /* Or this many records (0: no limit). */
	bool keep_ends;          /* Each record's end, arrival and seq kept (fh->record_*). */
	bool deaggregate;        /* KPL aggregates become their user records. */
	const struct firehose_spec *spec;  /* Its RecordDeAggregation (fh_split.c). */
	const char *delimiter;   /* Written after each record (AppendDelimiterToRecord). */
	uint32_t delimiter_size;
	bool refused;            /* A log record did not fit: the cut ends before refused_seq. */
	uint64_t refused_seq;
	uint64_t first_arrival_ns;
	uint32_t records;
};

/* Appends one (user) record of log record `seq` to the cut; false when it is full. */
static bool
fh_read_add(struct fh_read *r, uint64_t seq, uint64_t arrival_ns, const uint8_t *data,
	    size_t size)
{
	struct firehose *fh = r->fh;

	if (fh->raw_used + size + r->delimiter_size > FH_RAW_SIZE_MAX ||
	    (r->records_max != 0 && r->records == r->records_max))
		return false;
	if (r->records++ == 0)
		r->first_arrival_ns = arrival_ns;
	if (size != 0) /* An empty user record of a KPL aggregate has no data pointer. */
		memcpy(fh->raw + fh->raw_used, data, size);
	if (r->part != NULL)
		fh_partition_note(r->part, r->records - 1, fh->raw_used, size, arrival_ns);
	fh->raw_used += size;
	memcpy(fh->raw + fh->raw_used, r->delimiter, r->delimiter_size);
	fh->raw_used += r->delimiter_size;
	if (r->keep_ends) {
		assert(r->records <= r->records_max && r->records_max <= FH_CUT_RECORDS_MAX);
		fh->record_ends[r->records - 1] = (uint32_t)fh->raw_used;
		fh->record_arrivals[r->records - 1] = arrival_ns;
		fh->record_seqs[r->records - 1] = seq;
	}
	return true;
}

/*
 * One (user) record, as its sub-records when the stream has RecordDeAggregation and it
 * splits (fh_split.c); false when they do not all fit (the caller takes back the rest).
 */
static bool
fh_read_one(struct fh_read *r, const struct log_record_out *record, const uint8_t *data,
	    size_t size)
{
	struct fh_piece pieces[FIREHOSE_DEAGG_RECORDS_MAX];
	uint32_t count = 0;

	if (r->spec->deaggregation == FIREHOSE_DEAGG_NONE ||
	    fh_split(r->spec, data, size, pieces, &count) != 0)
		return fh_read_add(r, record->seq, record->arrival_ns, data, size);
	for (uint32_t i = 0; i < count; i++)
		if (!fh_read_add(r, record->seq, record->arrival_ns, data + pieces[i].off,
				 pieces[i].size))
			return false;
	return true;
}

/* A KPL aggregate's user records (Kinesis sources); false when they do not all fit. */
static bool
fh_read_aggregate(struct fh_read *r, const struct log_record_out *record, const struct kpl *agg)
{
	for (size_t i = 0; i < agg->record_count; i++) {
		struct kpl_record user;

		kpl_record(agg, i, &user);
		if (!fh_read_one(r, record, user.data, user.data_size))
			return false;
	}
	return true;
}

/*
 * Takes log record `record` into the cut, all of it or nothing (a cut never splits a
 * log record); false when it must open the next one.
 */
static bool
fh_read_take(struct fh_read *r, const struct log_record_out *record)
{
	uint32_t records = r->records;
	size_t used = r->fh->raw_used;
	struct kpl agg;
	bool taken;

	if (r->deaggregate && kpl_open(record->data, record->data_size, &agg) == 0) {
		taken = fh_read_aggregate(r, record, &agg);
		kpl_close(&agg);
		if (taken)
			return true;
		r->records = records;
		r->fh->raw_used = used;
		if (records > 0)
			return false;  /* The aggregate opens the next cut. */
		diag_warn("firehose", "seq %llu: a KPL aggregate of more user records than a cut "
			  "may hold (%u) is delivered whole", (unsigned long long)record->seq,
			  r->records_max);
		/* Kept whole, as it is (its bytes are no records to split). */
		return fh_read_add(r, record->seq, record->arrival_ns, record->data,
				   record->data_size);
	}
	taken = fh_read_one(r, record, record->data, record->data_size);
	if (!taken) {
		r->records = records;
		r->fh->raw_used = used;
	}
	return taken;
}

static int
fh_read_record(void *arg, const struct log_record_out *record)
{
	struct fh_read *r = arg;

	if (!fh_read_take(r, record)) {
		if (r->records == 0)
			return -ENOBUFS;  /* Cannot happen: a log record always fits an empty cut. */
		r->refused = true;
		r->refused_seq = record->seq;
		return 1;
	}
	/* The same bounds cut a redo of the range at the same place. */
	return r->fh->raw_used >= r->limit || r->records == r->records_max ? 1 : 0;
}

/* Records one cut of stream `s` may hold (0: no bound but its size). */
static uint32_t
fh_cut_records_max(const struct fh_stream *s)
{
	uint32_t max = fh_records_max(s);

	if (s->spec.partitioning && (max == 0 || max > FH_PART_RECORDS_MAX))
		max = FH_PART_RECORDS_MAX;
	return max;
}

/* Reads [first, end) of shard_id into fh->raw, stopping early at a cut's bounds. */
static int
fh_read_range(struct firehose *fh, const struct fh_stream *s, uint64_t shard_id, uint64_t first,
	      uint64_t end, struct fh_read *r, uint64_t *next_out)
{
	uint64_t seq = first;

	fh->raw_used = 0;
	r->fh = fh;
	r->part = s->spec.partitioning ? fh->part : NULL;
	r->records_max = fh_cut_records_max(s);
	r->keep_ends = fh_records_max(s) != 0;
	/* Firehose deaggregates a Kinesis stream source's KPL records, not DirectPut's. */
	r->deaggregate = s->spec.source_arn[0] != '\0' || s->spec.deaggregate;
	r->spec = &s->spec;
	/* With a Lambda processor the delimiter follows what it returns (fh_lambda.c). */
	r->delimiter = s->spec.delimiter;
	r->delimiter_size = s->spec.lambda.arn[0] == '\0' ? s->spec.delimiter_size : 0;
	while (seq < end && fh->raw_used < r->limit &&
	       (r->records_max == 0 || r->records < r->records_max)) {
		uint64_t next = seq;
		uint32_t want = (uint32_t)min_u64(end - seq, UINT32_MAX);
		int n = log_read(fh->reader, shard_id, seq, want, UINT64_MAX, fh_read_record, r,
				 &next);

		if (n < 0)
			return n;
		if (r->refused) {
			seq = r->refused_seq;
			break;
		}
		if (n == 0 || next <= seq)
			break;
		seq = next;
	}
	*next_out = seq;
	return 0;
}

/* ---- Delivering ------------------------------------------------------------ */

/* Steps 3 and 4 under local_root/<bucket>/. */
static int
fh_write_local(struct firehose *fh, const struct fh_job *j, const char *key,
	       const uint8_t *data, size_t size)
{
	char path[FIREHOSE_PATH_SIZE_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s/%s", fh->local_root, j->spec.bucket, key);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	return fh_write_object(path, data, size);
}

int
fh_object_write(struct firehose *fh, const struct fh_job *j, const char *key,
		const uint8_t *raw, size_t size)
{
	const uint8_t *data = raw;
	int rc = 0;

	if (j->spec.compression != FIREHOSE_UNCOMPRESSED) {
		rc = fh_codec_compress(j->spec.compression, raw, size, fh->out, fh->out_size,
				       &size);
		data = fh->out;
	}
	/* The destination seam: an S3-compatible store when configured, else a directory. */
	if (rc == 0)
		rc = fh->s3 != NULL ? fh_s3_deliver(fh, j, key, data, size) :
				      fh_write_local(fh, j, key, data, size);
	if (rc != 0)
		diag_warn("firehose", "%s: delivering %s/%s: %s", j->spec.name, j->spec.bucket,
			  key, strerror(-rc));
	return rc;
}

int
fh_error_object_write(struct firehose *fh, const struct fh_job *j, const char *type,
		      uint64_t first, uint64_t end, uint64_t arrival_ns, uint64_t salt,
		      const uint8_t *data, size_t size)
{
	struct fh_prefix_vars v = { .arrival_ns = arrival_ns, .error_type = type, .salt = salt };
	char key[FIREHOSE_PATH_SIZE_MAX];
	int rc = fh_object_key(j, first, end, j->spec.error_prefix, &v, key, sizeof(key));

	return rc != 0 ? rc : fh_object_write(fh, j, key, data, size);
}

int
fh_job_object_write(struct firehose *fh, const struct fh_job *j, uint64_t first, uint64_t end,
		    uint64_t first_arrival_ns)
{
	struct fh_prefix_vars v = { .arrival_ns = first_arrival_ns };
	char key[FIREHOSE_PATH_SIZE_MAX];
	int rc = fh_object_key(j, first, end, j->spec.prefix, &v, key, sizeof(key));

	return rc != 0 ? rc : fh_object_write(fh, j, key, fh->raw, fh->raw_used);
}

/*
 * After a Lambda processor: partitioning sees the records it kept, where they are now
 * (each record's end is past its delimiter).
 */
static void
fh_partition_renote(struct firehose *fh, const struct fh_job *j, uint32_t records)
{
	for (uint32_t i = 0; i < records; i++) {
		uint32_t start = i == 0 ? 0 : fh->record_ends[i - 1];

		fh_partition_note(fh->part, i, start,
				  fh->record_ends[i] - start - j->spec.delimiter_size,
				  fh->record_arrivals[i]);
	}
}

/* Steps 3 and 4 without the lock: transform, then POST or write the object(s). */
static int
fh_deliver_job(struct firehose *fh, struct fh_job *j, uint64_t first, uint64_t end,
	       uint64_t first_arrival_ns, uint32_t records)
{
	int rc = j->spec.partitioning ? fh_partition_begin(fh, j) : 0;

	if (rc != 0)
		return rc;
	if (j->spec.lambda.arn[0] != '\0') {
		rc = fh_lambda_process(fh, j, first, &records);
		if (rc != 0 || records == 0)
			return rc;  /* Nothing left (dropped or failed): no object, as AWS. */
		if (j->spec.partitioning)
			fh_partition_renote(fh, j, records);
	}
	if (j->spec.destination == FIREHOSE_DEST_HTTP)
		return fh_http_deliver(fh, j, first, end, first_arrival_ns, records);
	if (j->spec.partitioning)
		return fh_partition_deliver(fh, j, first, end, &j->objects);
	return fh_job_object_write(fh, j, first, end, first_arrival_ns);
}

/*
 * Steps 3 and 4 for the cut in fh->raw. The lock is let go while it transforms,
 * compresses and writes, uploads or POSTs: what that reads of the stream and lane is
 * fh->job, copied first (the flusher's own, like its buffers), and it touches no
 * engine state (the intent is in SQLite, and fh_settings.c refuses changes while one
 * is; fh_s3.c takes the lock back for its SQLite rows). fh_commit takes the results.
 */
static int
fh_deliver(struct firehose *fh, struct fh_stream *s, const struct fh_lane *l, uint64_t first,
	   uint64_t end, const struct fh_read *r)
{
	struct fh_job *j = &fh->job;
	int rc;

	j->spec = s->spec;
	j->id = s->id;
	j->version = s->version;
	j->shard_id = l->shard_id;
	j->http_attempts = l->http_attempts;
	j->http_failing_ns = l->http_failing_ns;
	j->objects = 1;
	j->processing_failed = j->http_backup_records = 0;
	fh_unlock(fh);
	rc = fh_deliver_job(fh, j, first, end, r->first_arrival_ns, r->records);
	fh_lock(fh);
	return rc;
}

/* Steps 3-5 for the cut [first, end) already in fh->raw (step 2 done by the caller). */
static int
fh_commit(struct firehose *fh, struct fh_stream *s, struct fh_lane *l, uint64_t first,
	  uint64_t end, const struct fh_read *r)
{
	const struct fh_job *j = &fh->job;
	uint32_t id = s->id;
	int rc = fh_deliver(fh, s, l, first, end, r);

	if (!fh_stream_same(s, id))
		return -ECANCELED;  /* Deleted while it was written: its object is an orphan. */
	/* Counted per write: a range redone after a crash counts again. */
	counter_add_single_writer(&s->stats->processing_failed, j->processing_failed);
	counter_add_single_writer(&s->stats->http_backup_records, j->http_backup_records);
	l->http_attempts = j->http_attempts;
	l->http_failing_ns = j->http_failing_ns;
	if (rc == 0)
		rc = fh_store_delivered(fh, s, l, end);
	if (rc != 0)
		return rc;
	l->delivered = end;
	l->intent = false;
	counter_add_single_writer(&s->stats->delivered_records, r->records);
	counter_add_single_writer(&s->stats->delivered_bytes, fh->raw_used);
	counter_add_single_writer(&s->stats->delivered_objects, j->objects);
	l->oldest_ns = 0;
	l->pending_bytes = UINT64_MAX;  /* What is left past the cut: read again to know. */
	l->pending_records = 0;
	l->scanned = end;
	return 0;
}

/*
 * The log trimmed records before they were delivered (the flusher fell further behind
 * than the log's retention): say so loudly and go on from `to`.
 */
static int
fh_skip_lost(struct firehose *fh, struct fh_stream *s, struct fh_lane *l, uint64_t to)
{
	int rc;

	diag_error("firehose", "%s: records %llu..%llu of shard %016llx aged out of the log "
		   "before delivery: lost", s->spec.name, (unsigned long long)l->delivered,
		   (unsigned long long)to - 1, (unsigned long long)l->shard_id);
	rc = fh_store_delivered(fh, s, l, to);
	if (rc != 0)
		return rc;
	counter_add_single_writer(&s->stats->records_lost, to - l->delivered);
	l->delivered = to;
	l->intent = false;
	l->pending_bytes = UINT64_MAX;
	l->pending_records = 0;
	l->oldest_ns = 0;
	l->scanned = to;
	return 0;
}

/* A crash left an intent: write the same range again, into the same name. */
static int
fh_redo(struct firehose *fh, struct fh_stream *s, struct fh_lane *l)
{
	struct fh_read r = { .limit = UINT64_MAX };
	uint64_t next;
	int rc = fh_read_range(fh, s, l->shard_id, l->intent_first, l->intent_end, &r, &next);

	/* Part of the range is gone: no object can be the one begun; skip all of it. */
	if (rc == -ERANGE)
		return fh_skip_lost(fh, s, l, l->intent_end);
	if (rc == 0 && next != l->intent_end)
		rc = -EIO;  /* The log lost a range it had made durable. */
	if (rc != 0)
		return rc;
	return fh_commit(fh, s, l, l->intent_first, l->intent_end, &r);
}

/* A cut full of records (a bounded one: HTTP, Lambda, partitioning) is due like a full one. */
static bool
fh_records_full(const struct fh_stream *s, const struct fh_lane *l)
{
	uint32_t max = fh_cut_records_max(s);

	return max != 0 && l->pending_records >= max;
}

int
fh_flush_lane(struct firehose *fh, struct fh_stream *s, struct fh_lane *l, uint64_t now_ns)
{
	uint64_t size_bytes = (uint64_t)s->spec.size_mb << 20;
	uint64_t interval_ns = (uint64_t)s->spec.interval_s * 1000000000u;
	struct fh_read r = { .limit = size_bytes };
	struct log_shard_info info;
	uint64_t next;
	int rc;

	if (l->intent)
		return fh_redo(fh, s, l);
	rc = log_shard_info(fh->log, l->shard_id, &info);
	if (rc != 0 || info.seq_durable <= l->delivered) {
		l->pending_bytes = 0;
		l->pending_records = 0;
		l->oldest_ns = 0;
		return rc;
	}
	if (l->pending_bytes != UINT64_MAX && l->pending_bytes < size_bytes &&
	    !fh_records_full(s, l) && l->oldest_ns != 0 && l->oldest_ns + interval_ns > now_ns)
		return 0;  /* Neither hint is due: no read. */
	if (info.seq_trim > l->delivered)
		return fh_skip_lost(fh, s, l, info.seq_trim);
	rc = fh_read_range(fh, s, l->shard_id, l->delivered, info.seq_durable, &r, &next);
	if (rc == 0 && r.records == 0)
		rc = -EIO;  /* Durable records that do not read: retried, with a pause. */
	if (rc != 0)
		return rc;
	l->oldest_ns = r.first_arrival_ns;
	l->pending_bytes = fh->raw_used;
	l->pending_records = r.records;
	if (fh->raw_used < size_bytes && r.first_arrival_ns + interval_ns > now_ns &&
	    !fh_records_full(s, l) && (r.records_max == 0 || r.records < r.records_max) &&
	    !r.refused)
		return 0;
	rc = fh_store_intent(fh, s, l, l->delivered, next);
	if (rc != 0)
		return rc;
	l->intent = true;
	l->intent_first = l->delivered;
	l->intent_end = next;
	return fh_commit(fh, s, l, l->delivered, next, &r);
}

uint64_t
fh_lane_due(const struct fh_stream *s, const struct fh_lane *l)
{
	if (l->retry_due_ns != 0)
		return l->retry_due_ns;
	if (l->intent || l->pending_bytes == UINT64_MAX || fh_records_full(s, l) ||
	    l->pending_bytes >= ((uint64_t)s->spec.size_mb << 20))
		return 0;
	if (l->oldest_ns == 0)
		return UINT64_MAX;
	return l->oldest_ns + (uint64_t)s->spec.interval_s * 1000000000u;
}

uint64_t
fh_flush_due(const struct fh_stream *s)
{
	return s->source != NULL ? fh_source_due(s) : fh_lane_due(s, &s->direct);
}

/*
 * The retention alarm: the oldest record still waiting in lane `l` ages out of the
 * log `retention_hours` after it arrived (log_retention_ms: [log] retention_hour_ms
 * scales the hours and the margin alike); within FIREHOSE_RETENTION_MARGIN_S of
 * that, say so once (a log line, a counter) while it lasts. Returns the headroom, s.
 */
static uint64_t
fh_lane_retention(const struct firehose *fh, struct fh_stream *s, struct fh_lane *l,
		  uint64_t now_ns, uint32_t retention_hours)
{
	uint64_t horizon_ms = log_retention_ms(fh->log, retention_hours), age_ms, left_s;
	uint64_t margin_s = log_retention_ms(fh->log, 1) * FIREHOSE_RETENTION_MARGIN_S / 3600000u;

	if (l->oldest_ns == 0 || now_ns <= l->oldest_ns) {
		l->at_risk = false;
		return horizon_ms / 1000u;
	}
	age_ms = (now_ns - l->oldest_ns) / 1000000u;
	left_s = age_ms < horizon_ms ? (horizon_ms - age_ms) / 1000u : 0;
	if (left_s <= margin_s && !l->at_risk) {
		diag_error("firehose", "%s: shard %016llx: the oldest undelivered record (seq %llu) "
			   "ages out of the log in %llu s (retention %u h): delivery is behind",
			   s->spec.name, (unsigned long long)l->shard_id,
			   (unsigned long long)l->delivered, (unsigned long long)left_s,
			   retention_hours);
		counter_add_single_writer(&s->stats->retention_warnings, 1);
	}
	l->at_risk = left_s <= margin_s;
	return left_s;
}

void
fh_gauges_publish(struct fh_stream *s, const struct fh_gauges *g)
{
	__atomic_store_n(&s->stats->freshness_ms, g->freshness_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&s->stats->retention_headroom_s, g->headroom_s, __ATOMIC_RELAXED);
}

void
fh_lane_account(const struct firehose *fh, struct fh_stream *s, struct fh_lane *l, int rc,
		uint64_t now_ns, uint32_t retention_hours, struct fh_gauges *g)
{
	uint64_t headroom_s = fh_lane_retention(fh, s, l, now_ns, retention_hours);

	/* After the cut: oldest_ns is the first record still waiting (0: none known). */
	if (l->oldest_ns != 0 && now_ns > l->oldest_ns)
		g->freshness_ms = max_u64(g->freshness_ms, (now_ns - l->oldest_ns) / 1000000u);
	g->headroom_s = min_u64(g->headroom_s, headroom_s);
	if (rc == 0) {
		if (l->retry_due_ns <= now_ns)
			l->retry_due_ns = l->retry_ns = 0;
		return;
	}
	/* Kept as it is (the intent too): retried later, with a growing pause. */
	counter_add_single_writer(&s->stats->delivery_failures, 1);
	l->retry_ns = l->retry_ns == 0 ? FH_RETRY_MIN_NS : min_u64(l->retry_ns * 2, FH_RETRY_MAX_NS);
	l->retry_due_ns = now_ns + l->retry_ns;
}

void
fh_flush_run(struct firehose *fh, uint64_t now_ns)
{
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++) {
		struct fh_stream *s = &fh->streams[i];
		struct fh_lane *l = &s->direct;
		struct fh_gauges g = FH_GAUGES_INIT;
		int rc;

		if (!s->used)
			continue;
		if (s->source != NULL) {
			fh_source_run(fh, s, now_ns);
			continue;
		}
		rc = fh_lane_due(s, l) > now_ns ? 0 : fh_flush_lane(fh, s, l, now_ns);
		if (rc == -ECANCELED)
			continue;
		fh_lane_account(fh, s, l, rc, now_ns, FIREHOSE_DIRECT_RETENTION_HOURS, &g);
		fh_gauges_publish(s, &g);
	}
}
