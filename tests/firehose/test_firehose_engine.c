/*
 * test_firehose_engine.c - the delivery engine (firehose/) over a real log and
 * real files: object names, each compression format (decoded again, and the
 * same bytes twice), puts answered once durable, delivery cut by size, and the
 * two crash points of a delivery replayed from SQLite state (after the rename,
 * before the rename with a torn temp file): the redo writes the same name with
 * the same bytes and nothing else.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <snappy-c.h>
#include <sqlite3.h>
#include <zlib.h>
#include <zstd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/hashkey.h"
#include "common/kpl_aggregated.pb-c.h"
#include "firehose/fh_internal.h"
#include "nvme-log/log.h"

#define WAIT_NS (30ull * 1000000000ull)  /* Generous: conditions, not timings. */
#define RECORDS 2000u

struct env {
	char dir[256];
	char root[300];
	struct log *log;
	struct firehose *fh;
	uint32_t segment_mb;   /* 0: 16. */
	bool flusher_thread;   /* The flusher on its own thread (as sluiced runs it). */
	char lambda_map[600];  /* [firehose] lambda_map ("" none). */
	uint32_t lambda_timeout_s;  /* [firehose] lambda_timeout_s (0: its default). */
};

static void
env_open_parts(struct env *e)
{
	char log_dir[300];
	struct log_config lc;
	struct firehose_options o = { .data_dir = e->dir, .local_root = e->root,
				      .flusher_thread = e->flusher_thread,
				      .lambda_map = e->lambda_map,
				      .lambda_timeout_s = e->lambda_timeout_s };

	snprintf(log_dir, sizeof(log_dir), "%s/log", e->dir);
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = (uint64_t)(e->segment_mb != 0 ? e->segment_mb : 16) << 20;
	lc.batch_size = 1088u << 10;
	lc.writer_thread = true;
	cr_assert_eq(log_open(&lc, &e->log), 0);
	o.log = e->log;
	cr_assert_eq(firehose_open(&o, &e->fh), 0);
}

static void
env_open(struct env *e)
{
	const char *tmp = getenv("TMPDIR");

	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s/sluice-firehose-XXXXXX", tmp != NULL ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(e->dir));
	snprintf(e->root, sizeof(e->root), "%s/objects", e->dir);
	env_open_parts(e);
}

static void
env_stop(struct env *e)
{
	firehose_close(e->fh);
	log_close(e->log);
}

static void
env_close(struct env *e)
{
	char cmd[400];

	env_stop(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	cr_assert_eq(system(cmd), 0);
}

static struct firehose_spec
spec_of(const char *name, enum firehose_compression c, uint32_t size_mb, uint32_t interval_s)
{
	struct firehose_spec s = { .size_mb = size_mb, .interval_s = interval_s, .compression = c };

	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.bucket, sizeof(s.bucket), "bkt");
	snprintf(s.bucket_arn, sizeof(s.bucket_arn), "arn:aws:s3:::bkt");
	return s;
}

/* ---- Names -------------------------------------------------------------------- */

Test(firehose_names, firehose_layout_and_determinism)
{
	struct firehose_spec s = spec_of("orders", FIREHOSE_GZIP, 5, 300);
	uint64_t t = 1786000000ull * 1000000000ull + 123; /* 2026-08-06 07:06:40 UTC */
	char a[512], b[512], c[512];

	snprintf(s.prefix, sizeof(s.prefix), "raw/");
	cr_assert_eq(firehose_object_key(&s, 3, 42, 100, 200, t, a, sizeof(a)), 0);
	cr_assert_eq(strncmp(a, "raw/2026/08/06/07/orders-3-2026-08-06-07-06-40-", 47), 0, "%s", a);
	cr_assert_eq(strlen(a), 47 + 36 + 3, "%s", a);
	cr_assert_eq(strcmp(a + strlen(a) - 3, ".gz"), 0);
	cr_assert_eq(a[47 + 14], '4', "a version-4 shaped uuid: %s", a);
	cr_assert_eq(firehose_object_key(&s, 3, 42, 100, 200, t, b, sizeof(b)), 0);
	cr_assert_str_eq(a, b, "the same range gets the same name");
	cr_assert_eq(firehose_object_key(&s, 3, 42, 100, 201, t, c, sizeof(c)), 0);
	cr_assert_str_neq(a, c, "another range gets another uuid");
	s.compression = FIREHOSE_UNCOMPRESSED;
	cr_assert_eq(firehose_object_key(&s, 3, 42, 100, 200, t, c, sizeof(c)), 0);
	cr_assert_eq(strlen(c), 47 + 36, "UNCOMPRESSED has no extension: %s", c);
	cr_assert_eq(firehose_object_key(&s, 3, 42, 100, 200, t, c, 40), -ENAMETOOLONG);
}

/* ---- Codecs ---------------------------------------------------------------------- */

static size_t
gunzip(const uint8_t *in, size_t size, uint8_t *out, size_t cap)
{
	z_stream z = { .next_in = (Bytef *)(uintptr_t)in, .avail_in = (uInt)size,
		       .next_out = out, .avail_out = (uInt)cap };

	cr_assert_eq(inflateInit2(&z, 31), Z_OK);
	cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
	inflateEnd(&z);
	return z.total_out;
}

static size_t
unsnappy_java(const uint8_t *in, size_t size, uint8_t *out, size_t cap)
{
	static const uint8_t header[16] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1,
					    0, 0, 0, 1 };
	size_t at = 16, used = 0;

	cr_assert(size >= 16 && memcmp(in, header, 16) == 0, "snappy-java header");
	while (at < size) {
		uint32_t n = (uint32_t)in[at] << 24 | (uint32_t)in[at + 1] << 16 |
			     (uint32_t)in[at + 2] << 8 | in[at + 3];
		size_t len = cap - used;

		cr_assert(at + 4 + n <= size);
		cr_assert_eq(snappy_uncompress((const char *)in + at + 4, n, (char *)out + used,
					       &len), SNAPPY_OK);
		cr_assert(len <= 32768, "blocks of at most 32 KiB input");
		used += len;
		at += 4 + n;
	}
	return used;
}

static uint32_t
be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t
le_at(const uint8_t *p, int bytes)
{
	uint32_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Hadoop's BlockDecompressorStream: [raw len][compressed len][snappy]... per block. */
static size_t
unhadoop_snappy(const uint8_t *in, size_t size, uint8_t *out, size_t cap)
{
	size_t at = 0, used = 0;

	while (at < size) {
		uint32_t raw = be32_at(in + at), n = be32_at(in + at + 4);
		size_t len = cap - used;

		cr_assert(at + 8 + n <= size);
		cr_assert(raw <= 262144 - (262144 / 6 + 32), "a block Hadoop's 256 KiB buffer holds");
		cr_assert_eq(snappy_uncompress((const char *)in + at + 8, n, (char *)out + used,
					       &len), SNAPPY_OK);
		cr_assert_eq(len, raw, "the block's raw length is what it holds");
		used += len;
		at += 8 + n;
	}
	return used;
}

/* A one-entry PKZIP archive: headers checked against each other, the entry inflated. */
static size_t
unzip_one(const uint8_t *in, size_t size, uint8_t *out, size_t cap)
{
	const uint8_t *end = in + size - 22, *central;
	uint32_t name = le_at(in + 26, 2), packed = le_at(in + 18, 4), raw = le_at(in + 22, 4);
	z_stream z;

	cr_assert(size >= 30 + 46 + 22 && le_at(in, 4) == 0x04034b50, "local header");
	cr_assert_eq(le_at(end, 4), 0x06054b50, "end of central directory");
	cr_assert_eq(le_at(end + 10, 2), 1, "one entry");
	central = in + le_at(end + 16, 4);
	cr_assert_eq(le_at(central, 4), 0x02014b50, "central directory");
	cr_assert(memcmp(central + 6, in + 4, 26) == 0, "both headers say the same");
	cr_assert(memcmp(central + 46, in + 30, name) == 0, "same name");
	cr_assert_eq(le_at(in + 8, 2), 8, "deflated");
	cr_assert_eq(le_at(in + 12, 2), 0x21, "1980-01-01, fixed");
	cr_assert_eq(in + 30 + name + packed, central, "data then directory");
	memset(&z, 0, sizeof(z));
	cr_assert_eq(inflateInit2(&z, -15), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)(in + 30 + name);
	z.avail_in = packed;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
	inflateEnd(&z);
	cr_assert_eq(z.total_out, raw);
	cr_assert_eq(crc32(0, out, raw), le_at(in + 14, 4), "crc32");
	return z.total_out;
}

static size_t
decode(enum firehose_compression c, const uint8_t *in, size_t size, uint8_t *out, size_t cap)
{
	size_t n;

	switch (c) {
	case FIREHOSE_GZIP:
		return gunzip(in, size, out, cap);
	case FIREHOSE_SNAPPY:
		return unsnappy_java(in, size, out, cap);
	case FIREHOSE_HADOOP_SNAPPY:
		return unhadoop_snappy(in, size, out, cap);
	case FIREHOSE_ZIP:
		return unzip_one(in, size, out, cap);
	case FIREHOSE_ZSTD:
		n = ZSTD_decompress(out, cap, in, size);
		cr_assert(!ZSTD_isError(n));
		cr_assert_eq(ZSTD_getFrameContentSize(in, size), n, "the frame carries its size");
		cr_assert(!ZSTD_isError(n));
		return n;
	default:
		cr_assert(size <= cap);
		memcpy(out, in, size);
		return size;
	}
}

Test(firehose_codecs, every_format_round_trips_and_is_deterministic)
{
	size_t size = 600000, cap = fh_codec_bound(FIREHOSE_SNAPPY, size) + size;
	uint8_t *in = malloc(size), *a = malloc(cap), *b = malloc(cap), *back = malloc(size + 1);

	for (size_t i = 0; i < size; i++)  /* Compressible, not trivially. */
		in[i] = (uint8_t)("sluice firehose "[i % 16] ^ (i % 7 == 0 ? (i >> 9) : 0));
	for (int c = 0; c < FIREHOSE_COMPRESSION_COUNT; c++) {
		size_t na = 0, nb = 0;
		enum firehose_compression fc = (enum firehose_compression)c;
		enum firehose_compression parsed;

		cr_assert_eq(firehose_compression_parse(firehose_compression_name(fc), &parsed), 0);
		cr_assert_eq(parsed, fc);
		cr_assert(fh_codec_bound(fc, size) <= cap);
		cr_assert_eq(fh_codec_compress(fc, in, size, a, cap, &na), 0);
		cr_assert_eq(fh_codec_compress(fc, in, size, b, cap, &nb), 0);
		cr_assert(na == nb && memcmp(a, b, na) == 0, "%s: same input, same bytes",
			  firehose_compression_name(fc));
		cr_assert_eq(decode(fc, a, na, back, size + 1), size);
		cr_assert(memcmp(back, in, size) == 0, "%s round trip",
			  firehose_compression_name(fc));
	}
	{
		enum firehose_compression parsed;

		cr_assert_eq(firehose_compression_parse("SNAPPY", &parsed), -EINVAL);
		cr_assert_eq(firehose_compression_parse("zip", &parsed), -EINVAL);
		cr_assert_eq(firehose_compression_parse("Hadoop_Snappy", &parsed), -EINVAL);
	}
	free(in);
	free(a);
	free(b);
	free(back);
}

/* ---- Puts and delivery ------------------------------------------------------------ */

struct put_result {
	bool done;
	int error;
	uint32_t count;
	uint64_t first_seq;
};

static void
put_done(void *ctx, int error, const uint64_t *seqs, uint32_t count)
{
	struct put_result *r = ctx;

	cr_assert_not(r->done, "answered once");
	r->done = true;
	r->error = error;
	r->count = count;
	r->first_seq = seqs[0];
	for (uint32_t i = 1; i < count; i++)
		cr_assert_eq(seqs[i], seqs[0] + i, "consecutive sequence numbers");
}

/* Puts `count` records and polls until the log answers them, durable. */
static void
put_wait(struct env *e, const char *name, const struct firehose_record *recs, uint32_t count,
	 struct put_result *r)
{
	uint64_t deadline = clock_mono_ns() + WAIT_NS;

	cr_assert_eq(firehose_put(e->fh, name, recs, count, clock_real_ns(), put_done, r), 0);
	while (!r->done) {
		cr_assert(clock_mono_ns() < deadline, "put answered");
		firehose_poll(e->fh, clock_real_ns());
		usleep(200);
	}
	cr_assert_eq(r->error, 0);
}

static uint8_t sent[RECORDS * 700];
static char dots[601];
static size_t sent_size;

/* RECORDS records of 9..~610 bytes, 100 per put; returns when all are durable. */
static void
put_records(struct env *e, const char *name, uint64_t seq_base)
{
	struct firehose_record recs[100];
	char buf[100][1300];
	uint32_t next = 0;

	memset(dots, '.', sizeof(dots) - 1);
	sent_size = 0;
	for (uint32_t p = 0; p < RECORDS / 100; p++) {
		struct put_result r = { 0 };

		for (uint32_t i = 0; i < 100; i++, next++) {
			int n = snprintf(buf[i], sizeof(buf[i]), "r%06u-%.*s\n", next,
					 (int)((next * 7919u) % 600), dots);

			recs[i] = (struct firehose_record){ buf[i], (uint32_t)n };
			memcpy(sent + sent_size, buf[i], (size_t)n);
			sent_size += (size_t)n;
		}
		put_wait(e, name, recs, 100, &r);
		cr_assert_eq(r.first_seq, seq_base + (uint64_t)p * 100);
	}
}

/* Every object under root/bkt (final names only; temp files are counted apart). */
static uint32_t
list_objects(const char *dir, char paths[][512], uint32_t max, uint32_t *temps)
{
	char cmd[600];
	FILE *f;
	uint32_t n = 0;

	snprintf(cmd, sizeof(cmd), "find '%s' -type f 2>/dev/null | sort", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (n < max && fgets(paths[n], 512, f) != NULL) {
		paths[n][strcspn(paths[n], "\n")] = '\0';
		if (strlen(paths[n]) > 4 && strcmp(paths[n] + strlen(paths[n]) - 4, ".tmp") == 0)
			(*temps)++;
		else
			n++;
	}
	pclose(f);
	return n;
}

static size_t
read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	cr_assert_not_null(f, "%s", path);
	n = fread(buf, 1, cap, f);
	cr_assert(feof(f), "%s fits", path);
	fclose(f);
	return n;
}

/* Polls as if `ahead_s` seconds later than now (intervals due without waiting them out). */
static void
wait_delivered(struct env *e, const char *name, uint64_t records, uint64_t ahead_s)
{
	uint64_t deadline = clock_mono_ns() + WAIT_NS;
	struct firehose_info info;

	for (;;) {
		cr_assert_eq(firehose_describe(e->fh, name, &info), 0);
		if (info.delivered_seq >= records)
			break;
		cr_assert(clock_mono_ns() < deadline, "delivered %llu of %llu",
			  (unsigned long long)info.delivered_seq, (unsigned long long)records);
		firehose_poll(e->fh, clock_real_ns() + ahead_s * 1000000000ull);
		usleep(1000);
	}
	cr_assert_eq(info.delivered_seq, records);
}

/* The objects, decoded and joined in delivery order, are exactly what was sent. */
static uint32_t
check_objects(struct env *e, enum firehose_compression c, char paths[][512])
{
	static uint8_t file[4u << 20], plain[4u << 20];
	char dir[400];
	uint32_t temps = 0, n;
	size_t at = 0;

	snprintf(dir, sizeof(dir), "%s/bkt", e->root);
	n = list_objects(dir, paths, 64, &temps);
	cr_assert_eq(temps, 0, "no temp file left");
	cr_assert(n >= 1);
	/* Names sort by time, not by range: join by finding each object's place. */
	for (uint32_t round = 0; round < n; round++) {
		bool found = false;

		for (uint32_t i = 0; i < n && !found; i++) {
			size_t size = read_file(paths[i], file, sizeof(file));
			size_t got = decode(c, file, size, plain, sizeof(plain));

			if (got > 0 && at + got <= sent_size &&
			    memcmp(plain, sent + at, got) == 0) {
				at += got;
				found = true;
			}
		}
		cr_assert(found || at == sent_size, "objects tile the sent bytes");
	}
	cr_assert_eq(at, sent_size, "every byte once");
	return n;
}

Test(firehose_engine, delivers_every_format_cut_by_size)
{
	for (int c = 0; c < FIREHOSE_COMPRESSION_COUNT; c++) {
		struct firehose_spec s = spec_of("cut", (enum firehose_compression)c, 1, 900);
		char paths[64][512];
		struct env e;

		env_open(&e);
		cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
		cr_assert_eq(firehose_create(e.fh, &s, 1), -EEXIST);
		put_records(&e, "cut", 0);
		/* ~600 KiB under a 1 MiB hint: not due for 900 s, so nothing yet. */
		firehose_poll(e.fh, clock_real_ns());
		cr_assert_eq(list_objects(e.root, paths, 64, &(uint32_t){ 0 }), 0);
		/* After a restart (the hints are rebuilt from the log), past the interval. */
		env_stop(&e);
		env_open_parts(&e);
		{
			struct firehose_info info;

			firehose_poll(e.fh, clock_real_ns() + 901ull * 1000000000ull);
			cr_assert_eq(firehose_describe(e.fh, "cut", &info), 0);
			cr_assert_eq(info.delivered_seq, RECORDS, "one cut, all of it");
			cr_assert_eq(info.objects_delivered, 1);
		}
		cr_assert_eq(check_objects(&e, (enum firehose_compression)c, paths), 1);
		env_close(&e);
	}
}

Test(firehose_engine, size_hint_cuts_objects)
{
	struct firehose_spec s = spec_of("small", FIREHOSE_GZIP, 1, 900);
	char paths[64][512];
	struct env e;
	uint32_t n;

	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	/* Three rounds of ~600 KiB: cuts at 1 MiB of data, the tail by the interval. */
	for (uint64_t round = 0; round < 3; round++)
		put_records(&e, "small", round * RECORDS);
	wait_delivered(&e, "small", 3 * RECORDS, 901);
	n = list_objects(e.root, paths, 64, &(uint32_t){ 0 });
	cr_assert(n >= 2, "cut by size: %u objects", n);
	env_close(&e);
}

/* Sets the SQLite state a crash would leave: delivered back at 0, intent [0, end). */
static void
rewind_to_intent(struct env *e, const char *name, uint64_t end)
{
	char path[400], sql[300];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/firehose.db", e->dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "UPDATE delivery_streams SET delivered = 0, intent_first = 0,"
		 " intent_end = %llu WHERE name = '%s'", (unsigned long long)end, name);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/*
 * As a crash would leave the stream's records: no object yet, one intent for all of
 * them (the puts may have been cut into several objects; now they are one range).
 */
static void
crash_before_the_object(struct env *e, const char *name, uint64_t records)
{
	char cmd[400];

	env_stop(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
	cr_assert_eq(system(cmd), 0);
	rewind_to_intent(e, name, records);
	env_open_parts(e);
}

Test(firehose_engine, a_crash_redoes_the_same_object)
{
	static uint8_t first[4u << 20], again[4u << 20];
	struct firehose_spec s = spec_of("redo", FIREHOSE_ZSTD, 128, 0);
	char paths[64][512], tmp[600];
	size_t n1, n2;
	struct env e;
	FILE *f;

	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_records(&e, "redo", 0);
	wait_delivered(&e, "redo", RECORDS, 0);
	/* Interval 0: puts may have been cut into several objects; make it one. */
	crash_before_the_object(&e, "redo", RECORDS);
	wait_delivered(&e, "redo", RECORDS, 0);
	cr_assert_eq(check_objects(&e, FIREHOSE_ZSTD, paths), 1);
	n1 = read_file(paths[0], first, sizeof(first));

	/* Crash after the rename, before SQLite moved on: the same file, rewritten. */
	env_stop(&e);
	rewind_to_intent(&e, "redo", RECORDS);
	env_open_parts(&e);
	wait_delivered(&e, "redo", RECORDS, 0);
	cr_assert_eq(check_objects(&e, FIREHOSE_ZSTD, paths), 1, "no second object");
	n2 = read_file(paths[0], again, sizeof(again));
	cr_assert(n1 == n2 && memcmp(first, again, n1) == 0, "the same bytes");

	/* Crash before the rename: no object, a torn temp file. */
	env_stop(&e);
	snprintf(tmp, sizeof(tmp), "%s.tmp", paths[0]);
	cr_assert_eq(rename(paths[0], tmp), 0);
	cr_assert_eq(truncate(tmp, (off_t)(n1 / 3)), 0);
	rewind_to_intent(&e, "redo", RECORDS);
	env_open_parts(&e);
	wait_delivered(&e, "redo", RECORDS, 0);
	cr_assert_eq(check_objects(&e, FIREHOSE_ZSTD, paths), 1);
	n2 = read_file(paths[0], again, sizeof(again));
	cr_assert(n1 == n2 && memcmp(first, again, n1) == 0, "the same name and bytes");
	f = fopen(tmp, "rb");
	cr_assert_null(f, "the temp file became the object");
	env_close(&e);
}

Test(firehose_engine, records_aged_out_are_skipped_and_counted)
{
	struct firehose_spec s = spec_of("late", FIREHOSE_GZIP, 128, 900);
	uint64_t later = clock_real_ns() + 25ull * 3600 * 1000000000ull;
	struct firehose_info info;
	struct env e;

	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	/* ~15 MiB of records over 5 MiB segments: the older ones are sealed. */
	env_stop(&e);
	e.segment_mb = 5;
	env_open_parts(&e);
	for (uint64_t round = 0; round < 25; round++)
		put_records(&e, "late", round * RECORDS);
	/* 25 hours on: the log drops the sealed segments before anything was delivered. */
	cr_assert_eq(log_retention_run(e.log, later), 0);
	firehose_poll(e.fh, later);
	cr_assert_eq(firehose_describe(e.fh, "late", &info), 0);
	cr_assert(info.records_lost > 0 && info.delivered_seq == info.records_lost,
		  "lost %llu, delivered position %llu", (unsigned long long)info.records_lost,
		  (unsigned long long)info.delivered_seq);
	/* What the log still holds is delivered as usual. */
	wait_delivered(&e, "late", 25 * RECORDS, 25 * 3600 + 901);
	env_close(&e);
}

Test(firehose_engine, streams_survive_a_restart_and_delete_forgets)
{
	struct firehose_spec s = spec_of("keep", FIREHOSE_UNCOMPRESSED, 5, 300);
	char names[4][FIREHOSE_NAME_SIZE_MAX + 1];
	struct firehose_info info;
	struct env e;

	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1234), 0);
	snprintf(s.name, sizeof(s.name), "also");
	cr_assert_eq(firehose_create(e.fh, &s, 1235), 0);
	env_stop(&e);
	env_open_parts(&e);
	cr_assert_eq(firehose_list(e.fh, NULL, names, 4), 2);
	cr_assert_str_eq(names[0], "also");
	cr_assert_str_eq(names[1], "keep");
	cr_assert_eq(firehose_list(e.fh, "also", names, 4), 1);
	cr_assert_eq(firehose_describe(e.fh, "keep", &info), 0);
	cr_assert_eq(info.created_ms, 1234);
	cr_assert_eq(info.version, 1);
	{
		struct firehose_stats st[4];

		cr_assert_eq(firehose_stats_read(e.fh, st, 4), 2);
		cr_assert(strcmp(st[0].name, "keep") == 0 || strcmp(st[1].name, "keep") == 0);
		cr_assert_eq(firehose_delete(e.fh, "keep"), 0);
		cr_assert_eq(firehose_stats_read(e.fh, st, 4), 1, "a deleted slot retires");
		cr_assert_str_eq(st[0].name, "also");
		cr_assert_eq(st[0].delivered_records + st[0].incoming_records, 0);
	}
	cr_assert_eq(firehose_delete(e.fh, "keep"), -ENOENT);
	cr_assert_eq(firehose_put(e.fh, "keep", &(struct firehose_record){ "x", 1 }, 1, 1,
				  put_done, &(struct put_result){ 0 }), -ENOENT);
	env_stop(&e);
	env_open_parts(&e);
	cr_assert_eq(firehose_describe(e.fh, "keep", &info), -ENOENT);
	cr_assert_eq(firehose_list(e.fh, NULL, names, 4), 1);
	env_close(&e);
}

/* ---- The retention alarm ------------------------------------------------------------ */

static struct firehose_stats
stats_of(struct env *e)
{
	struct firehose_stats st[2];

	cr_assert_eq(firehose_stats_read(e->fh, st, 2), 1);
	return st[0];
}

Test(firehose_engine, a_delivery_near_retention_raises_the_alarm_once)
{
	struct firehose_spec s = spec_of("behind", FIREHOSE_GZIP, 128, 60);
	uint64_t hour_ns = 3600ull * 1000000000ull;
	uint64_t now = clock_real_ns();
	struct firehose_stats st;
	FILE *block;
	struct env e;

	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	/* local_root is a file: every delivery fails and the records stay waiting. */
	block = fopen(e.root, "w");
	cr_assert_not_null(block);
	fclose(block);
	put_records(&e, "behind", 0);
	firehose_poll(e.fh, now + 2 * hour_ns);
	st = stats_of(&e);
	cr_assert(st.delivery_failures >= 1 && st.retention_warnings == 0,
		  "22 h of headroom is no alarm (failures %llu)",
		  (unsigned long long)st.delivery_failures);
	cr_assert(st.retention_headroom_s > 21 * 3600 && st.retention_headroom_s <= 22 * 3600 + 60,
		  "headroom %llu s", (unsigned long long)st.retention_headroom_s);
	/* Within FIREHOSE_RETENTION_MARGIN_S of the 24 h horizon: one warning while it lasts. */
	firehose_poll(e.fh, now + 23 * hour_ns + hour_ns / 2);
	firehose_poll(e.fh, now + 23 * hour_ns + hour_ns * 3 / 4);
	st = stats_of(&e);
	cr_assert_eq(st.retention_warnings, 1, "warned once, not per poll");
	cr_assert(st.retention_headroom_s <= FIREHOSE_RETENTION_MARGIN_S, "headroom %llu s",
		  (unsigned long long)st.retention_headroom_s);
	/* The way clears: delivered, the alarm ends and the headroom is the whole retention. */
	cr_assert_eq(unlink(e.root), 0);
	wait_delivered(&e, "behind", RECORDS, 23 * 3600 + 3600 * 3 / 4 + 120);
	st = stats_of(&e);
	cr_assert_eq(st.retention_headroom_s, FIREHOSE_DIRECT_RETENTION_HOURS * 3600ull);
	cr_assert_eq(st.retention_warnings, 1);
	env_close(&e);
}

/* ---- The flusher's own thread (as sluiced runs it; the TSan stage runs this) ------------ */

Test(firehose_engine, the_flusher_thread_delivers_while_puts_and_changes_go_on)
{
	struct firehose_spec a = spec_of("threaded", FIREHOSE_GZIP, 1, 0);
	struct firehose_spec b = spec_of("churn", FIREHOSE_UNCOMPRESSED, 1, 0);
	uint64_t deadline = clock_mono_ns() + WAIT_NS;
	struct firehose_info info;
	struct env e;

	env_open(&e);
	env_stop(&e);
	e.flusher_thread = true;
	env_open_parts(&e);
	cr_assert_eq(firehose_create(e.fh, &a, 1), 0);
	/* Puts (this thread) while the flusher delivers (its own), and a stream made and
	 * deleted under it: every call takes the lock, the flusher lets go only to write. */
	for (uint32_t round = 0; round < 3; round++) {
		struct firehose_spec upd = a;

		cr_assert_eq(firehose_create(e.fh, &b, 1), 0);
		put_records(&e, "churn", 0);
		put_records(&e, "threaded", round * RECORDS);
		cr_assert_eq(firehose_delete(e.fh, "churn"), 0);
		upd.size_mb = 1 + round;  /* Refused only while a range is redone: not here. */
		cr_assert_eq(firehose_describe(e.fh, "threaded", &info), 0);
		while (firehose_update(e.fh, "threaded", info.version, &upd, 2) == -EBUSY)
			usleep(1000);
	}
	for (;;) {
		cr_assert_eq(firehose_describe(e.fh, "threaded", &info), 0);
		if (info.delivered_seq >= 3 * RECORDS)
			break;
		cr_assert(clock_mono_ns() < deadline, "delivered %llu of %u",
			  (unsigned long long)info.delivered_seq, 3 * RECORDS);
		firehose_poll(e.fh, clock_real_ns());  /* Puts are answered here, not there. */
		usleep(1000);
	}
	cr_assert_eq(info.delivered_seq, 3 * RECORDS);
	cr_assert_eq(info.version, 4, "three updates");
	cr_assert_eq(firehose_stats_read(e.fh, &(struct firehose_stats){ 0 }, 1), 1);
	env_close(&e);
}

/* ---- Dynamic partitioning ------------------------------------------------------- */

/* 300 records: JSON with c in {a, b, c}, every tenth not JSON (an error record). */
static void
put_partitioned(struct env *e, const char *name)
{
	for (uint32_t p = 0; p < 3; p++) {
		struct firehose_record recs[100];
		char buf[100][64];
		struct put_result r = { 0 };

		for (uint32_t i = 0; i < 100; i++) {
			uint32_t n = p * 100 + i;
			int len = n % 10 == 9 ? snprintf(buf[i], sizeof(buf[i]), "bad %u\n", n) :
				  snprintf(buf[i], sizeof(buf[i]), "{\"c\":\"%c\",\"n\":%u}\n",
					   'a' + n % 3, n);

			recs[i] = (struct firehose_record){ buf[i], (uint32_t)len };
		}
		put_wait(e, name, recs, 100, &r);
	}
}

/* Every object's path and bytes (sorted by path); the count. */
static uint32_t
snapshot(struct env *e, char paths[][512], uint8_t bytes[][16384], size_t *sizes)
{
	char dir[400];
	uint32_t temps = 0, n;

	snprintf(dir, sizeof(dir), "%s/bkt", e->root);
	n = list_objects(dir, paths, 16, &temps);
	cr_assert_eq(temps, 0);
	for (uint32_t i = 0; i < n; i++)
		sizes[i] = read_file(paths[i], bytes[i], sizeof(bytes[i]));
	return n;
}

/*
 * A crash after the objects, before SQLite moved on: the redo writes the same n objects
 * (paths, bytes, sizes: a snapshot of them) under the same names with the same bytes.
 */
static void
redo_snapshot_the_same(struct env *e, const char *name, uint64_t records, uint32_t n,
		       char paths[][512], uint8_t bytes[][16384], const size_t *sizes)
{
	static char again_paths[16][512];
	static uint8_t again[16][16384];
	static size_t again_sizes[16];

	env_stop(e);
	rewind_to_intent(e, name, records);
	env_open_parts(e);
	wait_delivered(e, name, records, 2);
	cr_assert_eq(snapshot(e, again_paths, again, again_sizes), n, "no other object");
	for (uint32_t i = 0; i < n; i++)
		cr_assert(strcmp(paths[i], again_paths[i]) == 0 && sizes[i] == again_sizes[i] &&
			  memcmp(bytes[i], again[i], sizes[i]) == 0, "%s: the same", paths[i]);
}

Test(firehose_engine, partitioned_redo_writes_the_same_objects)
{
	static char paths[16][512];
	static uint8_t bytes[16][16384];
	static size_t sizes[16];
	struct firehose_spec s = spec_of("part", FIREHOSE_GZIP, 128, 1);
	struct firehose_info info;
	uint32_t n, errors = 0;
	struct env e;

	snprintf(s.prefix, sizeof(s.prefix), "c=!{partitionKeyFromQuery:c}/");
	snprintf(s.error_prefix, sizeof(s.error_prefix), "e/!{firehose:error-output-type}/");
	snprintf(s.query, sizeof(s.query), "{c:.c}");
	s.partitioning = true;
	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_partitioned(&e, "part");
	wait_delivered(&e, "part", 300, 2);
	/* As one range (the puts may have been cut in several): rewound and redone. */
	crash_before_the_object(&e, "part", 300);
	wait_delivered(&e, "part", 300, 2);
	cr_assert_eq(firehose_describe(e.fh, "part", &info), 0);
	cr_assert_eq(info.objects_delivered, 4, "three partitions and one error object");
	n = snapshot(&e, paths, bytes, sizes);
	cr_assert_eq(n, 4);
	for (uint32_t i = 0; i < n; i++) {
		const char *rel = paths[i] + strlen(e.root) + strlen("/bkt/");

		errors += strncmp(rel, "e/partitioning-failed/", 22) == 0;
		cr_assert(strncmp(rel, "c=", 2) == 0 || strncmp(rel, "e/", 2) == 0, "%s", rel);
	}
	cr_assert_eq(errors, 1);
	redo_snapshot_the_same(&e, "part", 300, n, paths, bytes, sizes);
	env_close(&e);
}

/* FH_PART_RECORDS_MAX records cut a partitioned range at once, and a redo stops there too. */
Test(firehose_engine, partitioned_cut_by_record_count)
{
	static struct firehose_record recs[FIREHOSE_BATCH_RECORDS_MAX];
	static const char rec[] = "{\"c\":\"a\"}";
	const uint64_t total = FH_PART_RECORDS_MAX + 1000u;
	struct firehose_spec s = spec_of("many", FIREHOSE_GZIP, 128, 900);
	struct firehose_info info;
	uint64_t deadline;
	struct env e;

	snprintf(s.prefix, sizeof(s.prefix), "c=!{partitionKeyFromQuery:c}/");
	snprintf(s.error_prefix, sizeof(s.error_prefix), "e/!{firehose:error-output-type}/");
	snprintf(s.query, sizeof(s.query), "{c:.c}");
	s.partitioning = true;
	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	for (uint32_t i = 0; i < FIREHOSE_BATCH_RECORDS_MAX; i++)
		recs[i] = (struct firehose_record){ rec, (uint32_t)strlen(rec) };
	for (uint64_t sent_count = 0; sent_count < total;) {
		uint32_t n = (uint32_t)min_u64(total - sent_count, FIREHOSE_BATCH_RECORDS_MAX);
		struct put_result r = { 0 };

		put_wait(&e, "many", recs, n, &r);
		sent_count += n;
	}
	/* Neither 128 MiB nor 900 s: only the record count makes the first cut due. */
	deadline = clock_mono_ns() + WAIT_NS;
	do {
		cr_assert(clock_mono_ns() < deadline, "a cut by record count");
		firehose_poll(e.fh, clock_real_ns());
		cr_assert_eq(firehose_describe(e.fh, "many", &info), 0);
	} while (info.delivered_seq == 0);
	cr_assert_eq(info.delivered_seq, FH_PART_RECORDS_MAX);
	/* A redo of that range reads exactly it again. */
	env_stop(&e);
	rewind_to_intent(&e, "many", FH_PART_RECORDS_MAX);
	env_open_parts(&e);
	wait_delivered(&e, "many", FH_PART_RECORDS_MAX, 0);
	wait_delivered(&e, "many", total, 901);
	env_close(&e);
}

/* ---- KPL aggregates (Kinesis sources) ---------------------------------------------- */

/* A KPL aggregate of `count` user records (protobuf-c, the same .proto) into out. */
static size_t
kpl_build(const char *const *data, size_t count, uint8_t *out, size_t cap)
{
	char *keys[] = { "k" };
	Record records[8], *ptrs[8];
	AggregatedRecord agg = AGGREGATED_RECORD__INIT;
	size_t body;

	cr_assert(count <= 8 && cap >= 512, "small aggregates only");
	for (size_t i = 0; i < count; i++) {
		record__init(&records[i]);
		records[i].data.data = (uint8_t *)(uintptr_t)data[i];
		records[i].data.len = strlen(data[i]);
		ptrs[i] = &records[i];
	}
	agg.n_partition_key_table = 1;
	agg.partition_key_table = keys;
	agg.n_records = count;
	agg.records = ptrs;
	memcpy(out, "\xf3\x89\x9a\xc2", 4);
	body = aggregated_record__pack(&agg, out + 4);
	hashkey_md5(out + 4, body, out + 4 + body);
	return 4 + body + 16;
}

/* Delivers the only object under root/<bucket> into buf; its size. */
static size_t
only_object(struct env *e, const char *bucket, uint8_t *buf, size_t cap)
{
	char dir[400], paths[4][512];

	snprintf(dir, sizeof(dir), "%s/%s", e->root, bucket);
	cr_assert_eq(list_objects(dir, paths, 4, &(uint32_t){ 0 }), 1, "one object in %s", dir);
	return read_file(paths[0], buf, cap);
}

Test(firehose_engine, kinesis_sources_deliver_kpl_aggregates_as_their_user_records)
{
	static const char *const users[] = { "u1\n", "u2\n", "u3\n" };
	uint8_t agg[600], bad[600], got[4096];
	size_t agg_size = kpl_build(users, 3, agg, sizeof(agg)), bad_size;
	struct firehose_spec plain = spec_of("plain", FIREHOSE_UNCOMPRESSED, 1, 900);
	struct firehose_spec deagg = spec_of("deagg", FIREHOSE_UNCOMPRESSED, 1, 900);
	struct firehose_record recs[4];
	uint8_t want[4096];
	size_t want_size = 0, n;
	struct env e;

	memcpy(bad, agg, agg_size);
	bad[agg_size - 1] ^= 1;  /* Its MD5 no longer matches: not unpacked, kept whole. */
	bad_size = agg_size;
	recs[0] = (struct firehose_record){ "p0\n", 3 };
	recs[1] = (struct firehose_record){ agg, (uint32_t)agg_size };
	recs[2] = (struct firehose_record){ "p4\n", 3 };
	recs[3] = (struct firehose_record){ bad, (uint32_t)bad_size };
	snprintf(deagg.bucket, sizeof(deagg.bucket), "deagg");
	deagg.deaggregate = true;
	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &plain, 1), 0);
	cr_assert_eq(firehose_create(e.fh, &deagg, 1), 0);
	for (int s = 0; s < 2; s++) {
		struct put_result r = { 0 };
		uint64_t deadline = clock_mono_ns() + WAIT_NS;

		cr_assert_eq(firehose_put(e.fh, s == 0 ? "plain" : "deagg", recs, 4, clock_real_ns(),
					  put_done, &r), 0);
		while (!r.done) {
			cr_assert(clock_mono_ns() < deadline, "put answered");
			firehose_poll(e.fh, clock_real_ns());
			usleep(200);
		}
		cr_assert_eq(r.error, 0);
	}
	wait_delivered(&e, "plain", 4, 901);
	wait_delivered(&e, "deagg", 4, 901);
	/* Without deaggregation the aggregate is data like any other. */
	n = only_object(&e, "bkt", got, sizeof(got));
	cr_assert_eq(n, 3 + agg_size + 3 + bad_size);
	cr_assert(memcmp(got + 3, agg, agg_size) == 0);
	/* With it: the user records in place of the aggregate; a broken one stays whole. */
	memcpy(want, "p0\n", 3);
	memcpy(want + 3, "u1\nu2\nu3\n", 9);
	memcpy(want + 12, "p4\n", 3);
	memcpy(want + 15, bad, bad_size);
	want_size = 15 + bad_size;
	n = only_object(&e, "deagg", got, sizeof(got));
	cr_assert_eq(n, want_size);
	cr_assert(memcmp(got, want, want_size) == 0, "user records in order, in place");
	env_close(&e);
}

/* ---- A Lambda processor ---------------------------------------------------------------- */

#define TEST_LAMBDA_ARN "arn:aws:lambda:us-east-1:000000000000:function:upper"

/* A deterministic function as a Python script in e->dir, mapped to TEST_LAMBDA_ARN. */
static void
lambda_install_script(struct env *e, const char *script)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/upper.py", e->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(script, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, 0755), 0);
	snprintf(e->lambda_map, sizeof(e->lambda_map), "%s=%s", TEST_LAMBDA_ARN, path);
}

/* Upper-cases every record. */
static void
lambda_install(struct env *e)
{
	lambda_install_script(e, "#!/usr/bin/python3\nimport base64, json, sys\n"
			      "ev = json.load(sys.stdin)\n"
			      "json.dump({'records': [{'recordId': r['recordId'], 'result': 'Ok',"
			      " 'data':\n"
			      "    base64.b64encode(base64.b64decode(r['data']).upper()).decode()}\n"
			      "    for r in ev['records']]}, sys.stdout)\n");
}

/*
 * A crash after the range's one object, before SQLite moved on: the redo writes one
 * object again, under the same name with the same bytes (check_objects: what was sent).
 */
static void
redo_one_object_the_same(struct env *e, const char *name, uint64_t records,
			 enum firehose_compression c)
{
	static uint8_t first[4u << 20], again[4u << 20];
	static char paths[64][512];
	size_t n1, n2;

	cr_assert_eq(check_objects(e, c, paths), 1, "one object");
	n1 = read_file(paths[0], first, sizeof(first));
	env_stop(e);
	rewind_to_intent(e, name, records);
	env_open_parts(e);
	wait_delivered(e, name, records, 0);
	cr_assert_eq(check_objects(e, c, paths), 1, "no second object");
	n2 = read_file(paths[0], again, sizeof(again));
	cr_assert(n1 == n2 && memcmp(first, again, n1) == 0, "the same name and bytes");
}

Test(firehose_engine, a_crash_redoes_the_same_transformed_object)
{
	struct firehose_spec s = spec_of("lambda", FIREHOSE_GZIP, 128, 0);
	char dir[400];
	struct env e;

	env_open(&e);
	lambda_install(&e);
	env_stop(&e);
	env_open_parts(&e);
	cr_assert(firehose_lambda_known(e.fh, TEST_LAMBDA_ARN));
	cr_assert_not(firehose_lambda_known(e.fh, TEST_LAMBDA_ARN ":2"));
	snprintf(s.lambda.arn, sizeof(s.lambda.arn), "%s", TEST_LAMBDA_ARN);
	s.lambda.retries = 0;
	s.lambda.buffer_bytes = 256u << 10;  /* Several invocations for the ~600 KiB. */
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_records(&e, "lambda", 0);
	wait_delivered(&e, "lambda", RECORDS, 0);
	crash_before_the_object(&e, "lambda", RECORDS);
	wait_delivered(&e, "lambda", RECORDS, 0);
	for (size_t i = 0; i < sent_size; i++)  /* What the function makes of the records. */
		sent[i] = (uint8_t)(sent[i] >= 'a' && sent[i] <= 'z' ? sent[i] - 32 : sent[i]);
	/* The kept stream came back from SQLite with its processor. */
	redo_one_object_the_same(&e, "lambda", RECORDS, FIREHOSE_GZIP);
	snprintf(dir, sizeof(dir), "%s/bkt/processing-failed", e.root);
	cr_assert_eq(access(dir, F_OK), -1, "nothing failed");
	env_close(&e);
}

/*
 * The n objects of a snapshot: two partitions, prefixes[p]'s object holding exactly
 * want[p], and one error object under e/partitioning-failed/ (its index returned).
 */
static uint32_t
check_two_partitions(struct env *e, uint32_t n, char paths[][512], uint8_t bytes[][16384],
		     const size_t *sizes, const char *const prefixes[2], char want[][16384],
		     const size_t *want_size)
{
	uint32_t errors = 0, error_at = 0;

	cr_assert_eq(n, 3, "two partitions and one error object, not %u", n);
	for (uint32_t i = 0; i < n; i++) {
		const char *rel = paths[i] + strlen(e->root) + strlen("/bkt/");
		int part = strncmp(rel, prefixes[0], strlen(prefixes[0])) == 0 ? 0 :
			   strncmp(rel, prefixes[1], strlen(prefixes[1])) == 0 ? 1 : -1;

		if (part < 0) {
			cr_assert(strncmp(rel, "e/partitioning-failed/", 22) == 0, "%s", rel);
			errors++;
			error_at = i;
			continue;
		}
		cr_assert(sizes[i] == want_size[part] &&
			  memcmp(bytes[i], want[part], sizes[i]) == 0, "%s: its records, in order", rel);
	}
	cr_assert_eq(errors, 1);
	return error_at;
}

/*
 * Partitioning after a processor sees its output: the function drops partition b's
 * records (the cut's records move) and upper-cases the rest, so the query is {C:.C}.
 */
Test(firehose_engine, a_lambda_processor_before_partitioning)
{
	static char paths[16][512], want[2][16384];
	static uint8_t bytes[16][16384];
	static size_t sizes[16];
	struct firehose_spec s = spec_of("lp", FIREHOSE_UNCOMPRESSED, 128, 1);
	size_t want_size[2] = { 0, 0 };
	uint32_t n;
	struct env e;

	env_open(&e);
	lambda_install_script(&e, "#!/usr/bin/python3\nimport base64, json, sys\n"
			      "out = []\n"
			      "for r in json.load(sys.stdin)['records']:\n"
			      "    d = base64.b64decode(r['data'])\n"
			      "    out.append({'recordId': r['recordId'], 'result': 'Dropped' if\n"
			      "                d.startswith(b'{\"c\":\"b\"') else 'Ok',\n"
			      "                'data': base64.b64encode(d.upper()).decode()})\n"
			      "json.dump({'records': out}, sys.stdout)\n");
	env_stop(&e);
	env_open_parts(&e);
	snprintf(s.prefix, sizeof(s.prefix), "c=!{partitionKeyFromQuery:C}/");
	snprintf(s.error_prefix, sizeof(s.error_prefix), "e/!{firehose:error-output-type}/");
	snprintf(s.query, sizeof(s.query), "{C:.C}");
	s.partitioning = true;
	snprintf(s.lambda.arn, sizeof(s.lambda.arn), "%s", TEST_LAMBDA_ARN);
	s.lambda.retries = 0;
	s.lambda.buffer_bytes = 4096;  /* Several invocations. */
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_partitioned(&e, "lp");
	wait_delivered(&e, "lp", 300, 2);
	/* put_partitioned's records, as the function leaves them, by partition (A, C). */
	for (uint32_t i = 0; i < 300; i++) {
		uint32_t c = i % 3;

		if (i % 10 == 9 || c == 1)
			continue;  /* Not JSON (an error record), or dropped. */
		want_size[c / 2] += (size_t)sprintf(want[c / 2] + want_size[c / 2],
						    "{\"C\":\"%c\",\"N\":%u}\n", 'A' + c, i);
	}
	/* Partitions A and C (B dropped) and one error object. */
	n = snapshot(&e, paths, bytes, sizes);
	check_two_partitions(&e, n, paths, bytes, sizes, (const char *const[]){ "c=A/", "c=C/" },
			     want, want_size);
	env_close(&e);
}

/* An aggregate of `count` empty user records (more than any cut holds), malloc'd. */
static uint8_t *
kpl_build_empty(size_t count, size_t *size_out)
{
	char *keys[] = { "k" };
	Record *records = calloc(count, sizeof(*records));
	Record **ptrs = calloc(count, sizeof(*ptrs));
	AggregatedRecord agg = AGGREGATED_RECORD__INIT;
	uint8_t *out;
	size_t body;

	cr_assert(records != NULL && ptrs != NULL);
	for (size_t i = 0; i < count; i++) {
		record__init(&records[i]);
		ptrs[i] = &records[i];
	}
	agg.n_partition_key_table = 1;
	agg.partition_key_table = keys;
	agg.n_records = count;
	agg.records = ptrs;
	out = malloc(4 + aggregated_record__get_packed_size(&agg) + 16);
	cr_assert_not_null(out);
	memcpy(out, "\xf3\x89\x9a\xc2", 4);
	body = aggregated_record__pack(&agg, out + 4);
	hashkey_md5(out + 4, body, out + 4 + body);
	free(records);
	free(ptrs);
	*size_out = 4 + body + 16;
	return out;
}

Test(firehose_engine, an_aggregate_larger_than_a_cut_is_delivered_whole)
{
	struct firehose_spec s = spec_of("huge", FIREHOSE_UNCOMPRESSED, 128, 0);
	size_t agg_size;
	uint8_t *agg = kpl_build_empty(FH_CUT_RECORDS_MAX + 1, &agg_size);
	struct firehose_record recs[3] = {
		{ "a\n", 2 }, { agg, (uint32_t)agg_size }, { "b\n", 2 },
	};
	struct put_result r = { 0 };
	uint64_t deadline = clock_mono_ns() + WAIT_NS;
	char paths[64][512];
	struct env e;

	cr_assert_leq(agg_size, FIREHOSE_RECORD_SIZE_MAX);
	env_open(&e);
	lambda_install(&e);
	env_stop(&e);
	env_open_parts(&e);
	snprintf(s.lambda.arn, sizeof(s.lambda.arn), "%s", TEST_LAMBDA_ARN);
	s.lambda.buffer_bytes = FIREHOSE_LAMBDA_BUFFER_DEFAULT;
	s.deaggregate = true;
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	cr_assert_eq(firehose_put(e.fh, "huge", recs, 3, clock_real_ns(), put_done, &r), 0);
	while (!r.done) {
		cr_assert(clock_mono_ns() < deadline, "put answered");
		firehose_poll(e.fh, clock_real_ns());
		usleep(200);
	}
	cr_assert_eq(r.error, 0);
	wait_delivered(&e, "huge", 3, 0);
	/* The function saw the aggregate as one record: its bytes, upper-cased, in place. */
	memcpy(sent, "A\n", 2);
	for (size_t i = 0; i < agg_size; i++)
		sent[2 + i] = (uint8_t)(agg[i] >= 'a' && agg[i] <= 'z' ? agg[i] - 32 : agg[i]);
	memcpy(sent + 2 + agg_size, "B\n", 2);
	sent_size = 2 + agg_size + 2;
	cr_assert_geq(check_objects(&e, FIREHOSE_UNCOMPRESSED, paths), 1);
	free(agg);
	env_close(&e);
}

/* ---- AppendDelimiterToRecord, partitionKeyFromLambda, UpdateDestination --------------- */

/*
 * A delimiter follows every record (the sent records each get "##" after them); a crash
 * redoes the range into the same name with the same bytes; kept across a restart.
 */
Test(firehose_engine, a_delimiter_follows_every_record_and_a_redo_is_the_same)
{
	static uint8_t with[RECORDS * 702];
	struct firehose_spec s = spec_of("delim", FIREHOSE_GZIP, 128, 0);
	size_t at = 0;
	struct firehose_info info;
	struct env e;

	memcpy(s.delimiter, "##", 3);
	s.delimiter_size = 2;
	env_open(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_records(&e, "delim", 0);
	wait_delivered(&e, "delim", RECORDS, 0);
	crash_before_the_object(&e, "delim", RECORDS);
	cr_assert_eq(firehose_describe(e.fh, "delim", &info), 0);
	cr_assert(info.spec.delimiter_size == 2 && memcmp(info.spec.delimiter, "##", 2) == 0,
		  "the delimiter came back from SQLite");
	wait_delivered(&e, "delim", RECORDS, 0);
	/* put_records' records end in '\n': each is followed by "##". */
	for (size_t i = 0; i < sent_size; i++) {
		with[at++] = sent[i];
		if (sent[i] == '\n') {
			memcpy(with + at, "##", 2);
			at += 2;
		}
	}
	memcpy(sent, with, at);
	sent_size = at;
	redo_one_object_the_same(&e, "delim", RECORDS, FIREHOSE_GZIP);
	env_close(&e);
}

/* metadata.partitionKeys {"k": the record's first letter}, none for records starting 'x'. */
static const char lambda_keys_script[] =
	"#!/usr/bin/python3\nimport base64, json, sys\n"
	"out = []\n"
	"for r in json.load(sys.stdin)['records']:\n"
	"    d = base64.b64decode(r['data'])\n"
	"    a = {'recordId': r['recordId'], 'result': 'Ok', 'data': r['data']}\n"
	"    if not d.startswith(b'x'):\n"
	"        a['metadata'] = {'partitionKeys': {'k': d[:1].decode(), 'z': 1}}\n"
	"    out.append(a)\n"
	"json.dump({'records': out}, sys.stdout)\n";

/* The lk stream: k=!{partitionKeyFromLambda:k}/, a delimiter, several invocations. */
static struct firehose_spec
lambda_keys_spec(const char *name)
{
	struct firehose_spec s = spec_of(name, FIREHOSE_UNCOMPRESSED, 128, 1);

	snprintf(s.prefix, sizeof(s.prefix), "k=!{partitionKeyFromLambda:k}/");
	snprintf(s.error_prefix, sizeof(s.error_prefix), "e/!{firehose:error-output-type}/");
	s.partitioning = true;
	s.delimiter[0] = '\n';
	s.delimiter_size = 1;
	snprintf(s.lambda.arn, sizeof(s.lambda.arn), "%s", TEST_LAMBDA_ARN);
	s.lambda.buffer_bytes = 512;  /* Several invocations. */
	return s;
}

/* 90 records "<a|b|x> record <i>" in one put; want[p]: partition a's and b's, delimited. */
static void
put_lambda_keys(struct env *e, const char *name, char want[][16384], size_t *want_size)
{
	struct firehose_record recs[90];
	char buf[90][32];
	struct put_result r = { 0 };

	for (uint32_t i = 0; i < 90; i++) {
		char k = "abx"[i % 3];
		int len = snprintf(buf[i], sizeof(buf[i]), "%c record %u", k, i);

		recs[i] = (struct firehose_record){ buf[i], (uint32_t)len };
		if (i % 3 < 2)
			want_size[i % 3] += (size_t)sprintf(want[i % 3] + want_size[i % 3], "%s\n",
							    buf[i]);
	}
	put_wait(e, name, recs, 90, &r);
}

/*
 * !{partitionKeyFromLambda:k}: the function answers metadata.partitionKeys {"k": the
 * record's first letter} (records need not be JSON), none for records starting with 'x'
 * (they go to the error prefix), and the delimiter follows what it returns. A redo
 * writes the same objects.
 */
Test(firehose_engine, lambda_partition_keys_with_a_delimiter)
{
	static char paths[16][512], want[3][16384];
	static uint8_t bytes[16][16384];
	static size_t sizes[16];
	struct firehose_spec s = lambda_keys_spec("lk");
	size_t want_size[3] = { 0, 0, 0 };
	uint32_t n, err;
	struct env e;

	env_open(&e);
	lambda_install_script(&e, lambda_keys_script);
	env_stop(&e);
	env_open_parts(&e);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_lambda_keys(&e, "lk", want, want_size);
	wait_delivered(&e, "lk", 90, 2);
	env_stop(&e);
	rewind_to_intent(&e, "lk", 90);
	env_open_parts(&e);
	wait_delivered(&e, "lk", 90, 2);
	n = snapshot(&e, paths, bytes, sizes);
	err = check_two_partitions(&e, n, paths, bytes, sizes,
				   (const char *const[]){ "k=a/", "k=b/" }, want, want_size);
	cr_assert_not_null(memmem(bytes[err], sizes[err], "metadata.partitionKeys", 22));
	/* base64("x record 2"), closed: the record without its delimiter. */
	cr_assert_not_null(memmem(bytes[err], sizes[err], "\"rawData\":\"eCByZWNvcmQgMg==\"",
				  strlen("\"rawData\":\"eCByZWNvcmQgMg==\"")));
	redo_snapshot_the_same(&e, "lk", 90, n, paths, bytes, sizes);
	env_close(&e);
}

/* A file where partition b's directory goes (bkt/k=b): its objects are refused. */
static void
block_partition_b(struct env *e, char block[600])
{
	FILE *f;

	snprintf(block, 600, "%s/bkt", e->root);
	cr_assert_eq(mkdir(e->root, 0755) == 0 || errno == EEXIST, true);
	cr_assert_eq(mkdir(block, 0755), 0);
	snprintf(block, 600, "%s/bkt/k=b", e->root);
	f = fopen(block, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fclose(f), 0);
}

/* Polls until a delivery failed (the blocked partition's). */
static void
wait_delivery_failure(struct env *e)
{
	uint64_t deadline = clock_mono_ns() + WAIT_NS;

	while (stats_of(e).delivery_failures == 0) {
		cr_assert(clock_mono_ns() < deadline, "the blocked partition fails its delivery");
		firehose_poll(e->fh, clock_real_ns() + 2000000000ull);
		usleep(1000);
	}
}

/*
 * Issue 16: a store failure in the middle of a partitioned delivery (partition a's object
 * written, b's refused: a file stands where its directory goes) is retried in the same
 * process; the retry redoes the range into the same names with the same bytes, so no
 * record is in two objects, and a crash redo afterwards changes nothing either.
 */
Test(firehose_engine, a_partition_write_failure_is_redone_into_the_same_names)
{
	static char paths[16][512], want[3][16384];
	static uint8_t bytes[16][16384];
	static size_t sizes[16];
	struct firehose_spec s = lambda_keys_spec("lf");
	size_t want_size[3] = { 0, 0, 0 };
	char block[600];
	uint32_t n;
	struct env e;

	env_open(&e);
	lambda_install_script(&e, lambda_keys_script);
	env_stop(&e);
	env_open_parts(&e);
	block_partition_b(&e, block);
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_lambda_keys(&e, "lf", want, want_size);
	wait_delivery_failure(&e);
	/* Partition a's object (the first group) and the blocking file: nothing else yet. */
	cr_assert_eq(snapshot(&e, paths, bytes, sizes), 2);
	cr_assert_eq(unlink(block), 0);
	wait_delivered(&e, "lf", 90, 2);
	n = snapshot(&e, paths, bytes, sizes);
	check_two_partitions(&e, n, paths, bytes, sizes, (const char *const[]){ "k=a/", "k=b/" },
			     want, want_size);
	redo_snapshot_the_same(&e, "lf", 90, n, paths, bytes, sizes);
	env_close(&e);
}

/*
 * lambda_keys_script, but its first run sleeps past the timeout (killed: its records go
 * to processing-failed), and every run adds a line to e->dir/calls.
 */
static const char lambda_slow_once_script[] =
	"#!/usr/bin/python3\nimport base64, json, os, sys, time\n"
	"d = os.path.dirname(os.path.abspath(__file__))\n"
	"with open(os.path.join(d, 'calls'), 'a') as f:\n"
	"    f.write('run\\n')\n"
	"if not os.path.exists(os.path.join(d, 'slept')):\n"
	"    open(os.path.join(d, 'slept'), 'w').close()\n"
	"    time.sleep(300)\n"
	"out = []\n"
	"for r in json.load(sys.stdin)['records']:\n"
	"    d = base64.b64decode(r['data'])\n"
	"    a = {'recordId': r['recordId'], 'result': 'Ok', 'data': r['data']}\n"
	"    if not d.startswith(b'x'):\n"
	"        a['metadata'] = {'partitionKeys': {'k': d[:1].decode()}}\n"
	"    out.append(a)\n"
	"json.dump({'records': out}, sys.stdout)\n";

/* Runs of the function so far (lines of e->dir/calls). */
static uint32_t
lambda_runs(struct env *e)
{
	char path[400], line[16];
	uint32_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/calls", e->dir);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n++;
	fclose(f);
	return n;
}

/* Lines (records) of the objects whose path has `part` under bkt/. */
static uint32_t
lines_under(struct env *e, uint32_t n, char paths[][512], const size_t *sizes,
	    uint8_t bytes[][16384], const char *part)
{
	uint32_t lines = 0;

	for (uint32_t i = 0; i < n; i++)
		if (strncmp(paths[i] + strlen(e->root) + strlen("/bkt/"), part, strlen(part)) == 0)
			for (size_t b = 0; b < sizes[i]; b++)
				lines += bytes[i][b] == '\n';
	return lines;
}

/*
 * Issue 16's other gap: what the function made of a range is kept with its intent. Its
 * first run times out (those records: processing-failed), then partition b's object is
 * refused, and the engine closes with the intent pending, as a crash would leave it. The
 * redo, from SQLite, runs the function for nothing: the kept timeout sends the same
 * records to processing-failed again (the same object, the same bytes, its
 * attemptEndingTimestamp too), and no record is both there and in a partition.
 */
Test(firehose_engine, a_redo_reuses_what_the_lambda_answered)
{
	static char paths[16][512], first_paths[16][512], want[3][16384];
	static uint8_t bytes[16][16384], first_bytes[16][16384];
	static size_t sizes[16], first_sizes[16];
	struct firehose_spec s = lambda_keys_spec("ls");
	size_t want_size[3] = { 0, 0, 0 };
	uint32_t n, first_n, runs, kept = 0;
	char block[600];
	struct env e;

	env_open(&e);
	lambda_install_script(&e, lambda_slow_once_script);
	e.lambda_timeout_s = 1;
	env_stop(&e);
	env_open_parts(&e);
	block_partition_b(&e, block);
	s.lambda.retries = 0;
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_lambda_keys(&e, "ls", want, want_size);
	wait_delivery_failure(&e);
	runs = lambda_runs(&e);
	cr_assert_geq(runs, 2, "one run per invocation (several), the first timed out");
	/* processing-failed (the timed-out run), partition a, the blocking file. */
	first_n = snapshot(&e, first_paths, first_bytes, first_sizes);
	cr_assert_eq(first_n, 3);
	env_stop(&e);  /* The intent pending in SQLite, as a crash leaves it. */
	cr_assert_eq(unlink(block), 0);
	env_open_parts(&e);
	wait_delivered(&e, "ls", 90, 2);
	cr_assert_eq(lambda_runs(&e), runs, "the redo ran the function for nothing");
	n = snapshot(&e, paths, bytes, sizes);
	for (uint32_t i = 0; i < first_n; i++)
		for (uint32_t k = 0; k < n; k++)
			kept += strcmp(first_paths[i], paths[k]) == 0 &&
				first_sizes[i] == sizes[k] &&
				memcmp(first_bytes[i], bytes[k], sizes[k]) == 0;
	cr_assert_eq(kept, 2, "the error object and partition a's: the same names and bytes");
	cr_assert_gt(lines_under(&e, n, paths, sizes, bytes, "e/processing-failed/"), 0);
	/* Each of the 90 records in one place: a partition, or one of the error objects. */
	cr_assert_eq(lines_under(&e, n, paths, sizes, bytes, "k=") +
		     lines_under(&e, n, paths, sizes, bytes, "e/"), 90);
	env_close(&e);
}

/*
 * UpdateDestination of a partitioned stream with a processor: the new prefix and
 * delimiter apply to ranges cut after it; it is refused while a range is being
 * delivered, and refused outright when it would switch partitioning off; it survives a
 * restart (every table rewritten).
 */
Test(firehose_engine, an_update_changes_processors_and_partitioning_query)
{
	static char paths[16][512];
	static uint8_t bytes[16][16384];
	static size_t sizes[16];
	struct firehose_spec s = spec_of("upd", FIREHOSE_UNCOMPRESSED, 128, 1), next;
	struct firehose_record rec = { "{\"c\":\"a\",\"d\":\"x\"}", 17 };
	struct firehose_info info;
	struct put_result r = { 0 };
	uint32_t n, found = 0;
	struct env e;

	env_open(&e);
	snprintf(s.prefix, sizeof(s.prefix), "c=!{partitionKeyFromQuery:c}/");
	snprintf(s.error_prefix, sizeof(s.error_prefix), "e/!{firehose:error-output-type}/");
	snprintf(s.query, sizeof(s.query), "{c:.c}");
	s.partitioning = true;
	cr_assert_eq(firehose_create(e.fh, &s, 1), 0);
	put_wait(&e, "upd", &rec, 1, &r);
	wait_delivered(&e, "upd", 1, 2);
	next = s;
	next.partitioning = false;
	cr_assert_eq(firehose_update(e.fh, "upd", 1, &next, 2), -EINVAL, "partitioning stays");
	next = s;
	snprintf(next.prefix, sizeof(next.prefix), "d=!{partitionKeyFromQuery:d}/");
	snprintf(next.query, sizeof(next.query), "{d:.d}");
	next.delimiter[0] = '\n';
	next.delimiter_size = 1;
	cr_assert_eq(firehose_update(e.fh, "upd", 1, &next, 2), 0);
	cr_assert_eq(firehose_update(e.fh, "upd", 1, &next, 2), -ESTALE);
	env_stop(&e);
	env_open_parts(&e);
	cr_assert_eq(firehose_describe(e.fh, "upd", &info), 0);
	cr_assert(info.version == 2 && strcmp(info.spec.query, "{d:.d}") == 0 &&
		  info.spec.delimiter_size == 1 && info.spec.partitioning, "kept in SQLite");
	r = (struct put_result){ 0 };
	put_wait(&e, "upd", &rec, 1, &r);
	wait_delivered(&e, "upd", 2, 2);
	n = snapshot(&e, paths, bytes, sizes);
	cr_assert_eq(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		const char *rel = paths[i] + strlen(e.root) + strlen("/bkt/");

		if (strncmp(rel, "c=a/", 4) == 0 && strstr(rel, "/upd-1-") != NULL)
			found += sizes[i] == 17 && memcmp(bytes[i], rec.data, 17) == 0;
		if (strncmp(rel, "d=x/", 4) == 0 && strstr(rel, "/upd-2-") != NULL)
			found += sizes[i] == 18 && memcmp(bytes[i], rec.data, 17) == 0 &&
				 bytes[i][17] == '\n';
	}
	cr_assert_eq(found, 2, "version 1's object as it was, version 2's by the new settings");
	env_close(&e);
}
