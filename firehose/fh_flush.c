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

static uint64_t
fh_hash_text(uint64_t h, const char *text)
{
	for (; *text != '\0'; text++)
		h = fh_mix(h, (uint8_t)*text);
	return h;
}

/* The "random" part: a hash of what the object holds, so a redo names it the same. */
void
fh_uuid(const char *name, uint32_t version, uint64_t shard_id, uint64_t first, uint64_t end,
	char out[FH_UUID_SIZE])
{
	uint64_t h = fh_mix(fh_mix(fh_mix(fh_mix(fh_hash_text(1, name), version), shard_id),
				   first), end);
	uint64_t hi = fh_mix(h, 0x68692d31ull), lo = fh_mix(h, 0x6c6f2d32ull);

	hi = (hi & ~0xf000ull) | 0x4000ull;           /* Shaped as a version-4 UUID. */
	lo = (lo & ~(3ull << 62)) | (2ull << 62);
	snprintf(out, FH_UUID_SIZE, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
		 (unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff, (unsigned)(lo >> 48),
		 (unsigned long long)(lo & 0xffffffffffffull));
}

int
firehose_object_key(const struct firehose_spec *spec, uint32_t version, uint64_t shard_id,
		    uint64_t seq_first, uint64_t seq_end, uint64_t first_arrival_ns, char *out,
		    size_t out_size)
{
	time_t t = (time_t)(first_arrival_ns / 1000000000u);
	char hour_path[32], stamp[32], uuid[FH_UUID_SIZE];
	struct tm tm;
	int n;

	gmtime_r(&t, &tm);
	strftime(hour_path, sizeof(hour_path), "%Y/%m/%d/%H/", &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d-%H-%M-%S", &tm);
	fh_uuid(spec->name, version, shard_id, seq_first, seq_end, uuid);
	n = snprintf(out, out_size, "%s%s%s-%u-%s-%s%s", spec->prefix, hour_path, spec->name,
		     version, stamp, uuid, fh_codec_extension(spec->compression));
	return n < 0 || (size_t)n >= out_size ? -ENAMETOOLONG : 0;
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
	uint64_t limit;          /* Stop once this many data bytes are in (a cut by size). */
	uint32_t records_max;    /* Or this many records (0: no limit); their ends are kept. */
	bool deaggregate;        /* KPL aggregates become their user records. */
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

	if (fh->raw_used + size > FH_RAW_SIZE_MAX ||
	    (r->records_max != 0 && r->records == r->records_max))
		return false;
	if (r->records++ == 0)
		r->first_arrival_ns = arrival_ns;
	memcpy(fh->raw + fh->raw_used, data, size);
	fh->raw_used += size;
	if (r->records_max != 0) {
		assert(r->records <= r->records_max && r->records_max <= FH_CUT_RECORDS_MAX);
		fh->record_ends[r->records - 1] = (uint32_t)fh->raw_used;
		fh->record_arrivals[r->records - 1] = arrival_ns;
		fh->record_seqs[r->records - 1] = seq;
	}
	return true;
}

/* A KPL aggregate's user records (Kinesis sources); false when they do not all fit. */
static bool
fh_read_aggregate(struct fh_read *r, const struct log_record_out *record, const struct kpl *agg)
{
	struct firehose *fh = r->fh;
	uint32_t records = r->records;
	size_t used = fh->raw_used;

	for (size_t i = 0; i < agg->record_count; i++) {
		struct kpl_record user;

		kpl_record(agg, i, &user);
		if (!fh_read_add(r, record->seq, record->arrival_ns, user.data, user.data_size)) {
			r->records = records;  /* All or nothing: the aggregate opens the next cut. */
			fh->raw_used = used;
			return false;
		}
	}
	return true;
}

/* Takes log record `record` into the cut; false when it must open the next one. */
static bool
fh_read_take(struct fh_read *r, const struct log_record_out *record)
{
	struct kpl agg;
	bool taken;

	if (r->deaggregate && kpl_open(record->data, record->data_size, &agg) == 0) {
		taken = fh_read_aggregate(r, record, &agg);
		kpl_close(&agg);
		if (taken || r->records > 0)
			return taken;
		diag_warn("firehose", "seq %llu: a KPL aggregate of more user records than a cut "
			  "may hold (%u) is delivered whole", (unsigned long long)record->seq,
			  r->records_max);
	}
	/* A plain record, or an aggregate kept whole (it does not unpack, or is too many). */
	return fh_read_add(r, record->seq, record->arrival_ns, record->data, record->data_size);
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
	return r->fh->raw_used >= r->limit || r->records == r->records_max ? 1 : 0;
}

/* Reads [first, end) into fh->raw, stopping early at r->limit bytes (*next_out: where). */
static int
fh_read_range(struct firehose *fh, struct fh_stream *s, uint64_t first, uint64_t end,
	      struct fh_read *r, uint64_t *next_out)
{
	uint64_t seq = first;

	fh->raw_used = 0;
	r->fh = fh;
	r->records_max = fh_records_max(s);
	r->deaggregate = s->spec.deaggregate;
	while (seq < end && fh->raw_used < r->limit &&
	       (r->records_max == 0 || r->records < r->records_max)) {
		uint64_t next = seq;
		uint32_t want = (uint32_t)min_u64(end - seq, UINT32_MAX);
		int n = log_read(fh->reader, s->shard_id, seq, want, UINT64_MAX, fh_read_record, r,
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

int
fh_deliver_local(struct firehose *fh, const struct firehose_spec *spec, uint32_t version,
		 uint64_t shard_id, uint64_t first, uint64_t end, uint64_t first_arrival_ns,
		 const uint8_t *data, size_t size)
{
	char path[FIREHOSE_PATH_SIZE_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s/", fh->local_root, spec->bucket);
	int rc;

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	rc = firehose_object_key(spec, version, shard_id, first, end, first_arrival_ns,
				 path + n, sizeof(path) - (size_t)n);
	if (rc == 0 && spec->compression != FIREHOSE_UNCOMPRESSED) {
		rc = fh_codec_compress(spec->compression, data, size, fh->out, fh->out_size, &size);
		data = fh->out;
	}
	if (rc == 0)
		rc = fh_write_object(path, data, size);
	if (rc != 0)
		diag_warn("firehose", "%s: delivering seq %llu..%llu to %s: %s", spec->name,
			  (unsigned long long)first, (unsigned long long)end, path, strerror(-rc));
	return rc;
}

static int
fh_deliver(struct firehose *fh, struct fh_stream *s, uint64_t first, uint64_t end,
	   const struct fh_read *r)
{
	uint32_t records = r->records;
	int rc;

	if (s->spec.lambda.arn[0] != '\0') {
		rc = fh_lambda_process(fh, s, first, &records);
		if (rc != 0 || records == 0)
			return rc;  /* Nothing left (dropped or failed): no object, as AWS. */
	}
	if (s->spec.destination == FIREHOSE_DEST_HTTP)
		return fh_http_deliver(fh, s, first, end, r->first_arrival_ns, records);
	return fh_deliver_local(fh, &s->spec, s->version, s->shard_id, first, end,
				r->first_arrival_ns, fh->raw, fh->raw_used);
}

/* Steps 3-5 for the cut [first, end) already in fh->raw (step 2 done by the caller). */
static int
fh_commit(struct firehose *fh, struct fh_stream *s, uint64_t first, uint64_t end,
	  const struct fh_read *r)
{
	int rc = fh_deliver(fh, s, first, end, r);

	if (rc == 0)
		rc = fh_store_delivered(fh, s, end);
	if (rc != 0)
		return rc;
	s->delivered = end;
	s->intent = false;
	counter_add_single_writer(&s->stats->delivered_records, r->records);
	counter_add_single_writer(&s->stats->delivered_bytes, fh->raw_used);
	counter_add_single_writer(&s->stats->delivered_objects, 1);
	s->oldest_ns = 0;
	s->pending_bytes = UINT64_MAX;  /* What is left past the cut: read again to know. */
	return 0;
}

/*
 * The log trimmed records before they were delivered (the flusher fell further behind
 * than the log's retention): say so loudly and go on from `to`.
 */
static int
fh_skip_lost(struct firehose *fh, struct fh_stream *s, uint64_t to)
{
	int rc;

	diag_error("firehose", "%s: records %llu..%llu aged out of the log before delivery: lost",
		   s->spec.name, (unsigned long long)s->delivered, (unsigned long long)to - 1);
	rc = fh_store_delivered(fh, s, to);
	if (rc != 0)
		return rc;
	counter_add_single_writer(&s->stats->records_lost, to - s->delivered);
	s->delivered = to;
	s->intent = false;
	s->pending_bytes = UINT64_MAX;
	s->oldest_ns = 0;
	return 0;
}

/* A crash left an intent: write the same range again, into the same name. */
static int
fh_redo(struct firehose *fh, struct fh_stream *s)
{
	struct fh_read r = { .limit = UINT64_MAX };
	uint64_t next;
	int rc = fh_read_range(fh, s, s->intent_first, s->intent_end, &r, &next);

	/* Part of the range is gone: no object can be the one begun; skip all of it. */
	if (rc == -ERANGE)
		return fh_skip_lost(fh, s, s->intent_end);
	if (rc == 0 && next != s->intent_end)
		rc = -EIO;  /* The log lost a range it had made durable. */
	if (rc != 0)
		return rc;
	return fh_commit(fh, s, s->intent_first, s->intent_end, &r);
}

/* What is pending makes a cut by size or by count (unknown: look). */
static bool
fh_cut_due(const struct fh_stream *s)
{
	uint32_t records_max = fh_records_max(s);

	return s->pending_bytes == UINT64_MAX ||
	       s->pending_bytes >= ((uint64_t)s->spec.size_mb << 20) ||
	       (records_max != 0 && s->pending_records >= records_max);
}

static int
fh_flush_stream(struct firehose *fh, struct fh_stream *s, uint64_t now_ns)
{
	uint64_t size_bytes = (uint64_t)s->spec.size_mb << 20;
	uint64_t interval_ns = (uint64_t)s->spec.interval_s * 1000000000u;
	struct fh_read r = { .limit = size_bytes };
	struct log_shard_info info;
	uint64_t next;
	int rc;

	if (s->intent)
		return fh_redo(fh, s);
	rc = log_shard_info(fh->log, s->shard_id, &info);
	if (rc != 0 || info.seq_durable <= s->delivered) {
		s->pending_bytes = 0;
		s->pending_records = 0;
		s->oldest_ns = 0;
		return rc;
	}
	if (!fh_cut_due(s) && s->oldest_ns != 0 && s->oldest_ns + interval_ns > now_ns)
		return 0;  /* Neither hint is due: no read. */
	if (info.seq_trim > s->delivered)
		return fh_skip_lost(fh, s, info.seq_trim);
	rc = fh_read_range(fh, s, s->delivered, info.seq_durable, &r, &next);
	if (rc == 0 && r.records == 0)
		rc = -EIO;  /* Durable records that do not read: retried, with a pause. */
	if (rc != 0)
		return rc;
	s->oldest_ns = r.first_arrival_ns;
	s->pending_bytes = fh->raw_used;
	s->pending_records = r.records;
	if (fh->raw_used < size_bytes && r.first_arrival_ns + interval_ns > now_ns &&
	    (r.records_max == 0 || r.records < r.records_max) && !r.refused)
		return 0;
	rc = fh_store_intent(fh, s, s->delivered, next);
	if (rc != 0)
		return rc;
	s->intent = true;
	s->intent_first = s->delivered;
	s->intent_end = next;
	return fh_commit(fh, s, s->delivered, next, &r);
}

uint64_t
fh_flush_due(const struct fh_stream *s)
{
	if (s->retry_due_ns != 0)
		return s->retry_due_ns;
	if (s->intent || fh_cut_due(s))
		return 0;
	if (s->oldest_ns == 0)
		return UINT64_MAX;
	return s->oldest_ns + (uint64_t)s->spec.interval_s * 1000000000u;
}

void
fh_flush_run(struct firehose *fh, uint64_t now_ns)
{
	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++) {
		struct fh_stream *s = &fh->streams[i];
		int rc;

		if (!s->used)
			continue;
		rc = fh_flush_due(s) > now_ns ? 0 : fh_flush_stream(fh, s, now_ns);
		/* After the cut: oldest_ns is the first record still waiting (0: none known). */
		__atomic_store_n(&s->stats->freshness_ms,
				 s->oldest_ns != 0 && now_ns > s->oldest_ns ?
				 (now_ns - s->oldest_ns) / 1000000u : 0, __ATOMIC_RELAXED);
		if (rc == 0) {
			if (s->retry_due_ns <= now_ns)
				s->retry_due_ns = s->retry_ns = 0;
			continue;
		}
		/* Kept as it is (the intent too): retried later, with a growing pause. */
		counter_add_single_writer(&s->stats->delivery_failures, 1);
		s->retry_ns = s->retry_ns == 0 ? FH_RETRY_MIN_NS :
			      min_u64(s->retry_ns * 2, FH_RETRY_MAX_NS);
		s->retry_due_ns = now_ns + s->retry_ns;
	}
}
