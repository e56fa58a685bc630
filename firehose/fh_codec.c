/*
 * fh_codec.c - the CompressionFormat values, each deterministic (the same
 * input always gives the same bytes, so a redone delivery rewrites the same
 * object):
 *
 *   FORMAT        EXT       BYTES                                       LIBRARY
 *   UNCOMPRESSED  (none)    records concatenated                        -
 *   GZIP          .gz       one RFC 1952 member, MTIME 0, OS 3 (zlib)   zlib, level 1
 *   Snappy        .snappy   xerial snappy-java stream: magic            libsnappy (raw
 *                           82 53 4E 41 50 50 59 00, BE int32 1, 1,      blocks; the
 *                           then [BE int32 len][raw snappy] per 32 KiB  framing is ours)
 *   ZSTD (extra)  .zst      one frame, content size and checksum        libzstd, level 3
 *   ZIP           .zip      PKZIP archive of one deflated entry, DOS    zlib raw deflate,
 *                           time 1980-01-01 00:00, named by a hash of    level 1 (the
 *                           the content (AWS: a random UUID)            headers are ours)
 *   HADOOP_SNAPPY .snappy   Hadoop BlockCompressorStream: per block of  libsnappy (the
 *                           at most 218,422 input bytes, [BE u32 raw    framing is ours)
 *                           len][BE u32 compressed len][raw snappy]
 *
 * The ZIP archive (no ZIP64: a cut is far below 4 GiB), little-endian fields:
 *
 *   PART               BYTES  FIELDS
 *   local header       30+n   50 4B 03 04, version 20, flags 0, method 8, time, date,
 *                             crc32, compressed size, size, name length n, extra 0, name
 *   data               c      raw deflate
 *   central directory  46+n   50 4B 01 02, made by 20, version 20, flags, method, time,
 *                             date, crc32, sizes, n, extra 0, comment 0, disk 0,
 *                             attributes 0 and 0, local header offset 0, name
 *   end of directory   22     50 4B 05 06, disks 0 0, entries 1 1, directory size,
 *                             directory offset, comment 0
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "firehose/fh_internal.h"

/* Level 1: twice level 6's speed for 23 % instead of 18 % of telemetry (BENCHMARKS.md). */
#define FH_GZIP_LEVEL 1
#define FH_GZIP_WINDOW_BITS 31  /* 15 + 16: a gzip wrapper. */
#define FH_GZIP_MEM_LEVEL 8
#define FH_ZSTD_LEVEL 3
#define FH_SNAPPY_BLOCK 32768u  /* snappy-java's default block size. */
#define FH_SNAPPY_HEADER_SIZE 16u
/*
 * Hadoop's BlockCompressorStream with its default 256 KiB buffer takes at most
 * buffer - (buffer / 6 + 32) input bytes a block, so its decompressor's 256 KiB buffer
 * holds any block we write (SnappyCodec, io.compression.codec.snappy.buffersize).
 */
#define FH_HADOOP_BUFFER 262144u
#define FH_HADOOP_BLOCK (FH_HADOOP_BUFFER - (FH_HADOOP_BUFFER / 6 + 32))
#define FH_ZIP_WINDOW_BITS (-15)  /* Raw deflate: the archive carries crc and sizes. */
#define FH_ZIP_NAME_SIZE 36u      /* A UUID's text, as AWS names its one entry. */
#define FH_ZIP_LOCAL_SIZE 30u
#define FH_ZIP_CENTRAL_SIZE 46u
#define FH_ZIP_END_SIZE 22u
#define FH_ZIP_VERSION 20u        /* 2.0: deflate. */
#define FH_ZIP_DEFLATED 8u
#define FH_ZIP_DOS_DATE 0x21u     /* 1980-01-01, time 00:00:00: fixed, for the same bytes. */

static const uint8_t fh_snappy_magic[8] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };

static const struct {
	const char *name;
	const char *extension;
} fh_codecs[FIREHOSE_COMPRESSION_COUNT] = {
	[FIREHOSE_UNCOMPRESSED] = { "UNCOMPRESSED", "" },
	[FIREHOSE_GZIP] = { "GZIP", ".gz" },
	[FIREHOSE_SNAPPY] = { "Snappy", ".snappy" },
	[FIREHOSE_ZSTD] = { "ZSTD", ".zst" },
	[FIREHOSE_ZIP] = { "ZIP", ".zip" },
	[FIREHOSE_HADOOP_SNAPPY] = { "HADOOP_SNAPPY", ".snappy" },
};

const char *
firehose_compression_name(enum firehose_compression c)
{
	return fh_codecs[c].name;
}

int
firehose_compression_parse(const char *text, enum firehose_compression *out)
{
	for (int i = 0; i < FIREHOSE_COMPRESSION_COUNT; i++)
		if (strcmp(text, fh_codecs[i].name) == 0) {
			*out = (enum firehose_compression)i;
			return 0;
		}
	return -EINVAL;
}

const char *
fh_codec_extension(enum firehose_compression c)
{
	return fh_codecs[c].extension;
}

size_t
fh_codec_bound(enum firehose_compression c, size_t size)
{
	size_t blocks = (size + FH_SNAPPY_BLOCK - 1) / FH_SNAPPY_BLOCK;
	size_t hadoop_blocks = (size + FH_HADOOP_BLOCK - 1) / FH_HADOOP_BLOCK;
	/* deflateBound() needs a stream; zlib's documented worst case. */
	size_t deflated = size + (size >> 12) + (size >> 14) + (size >> 25) + 13;

	switch (c) {
	case FIREHOSE_GZIP:
		return deflated + 18;  /* The gzip wrapper. */
	case FIREHOSE_ZIP:
		return deflated + FH_ZIP_LOCAL_SIZE + FH_ZIP_CENTRAL_SIZE + 2 * FH_ZIP_NAME_SIZE +
		       FH_ZIP_END_SIZE;
	case FIREHOSE_HADOOP_SNAPPY:
		return hadoop_blocks * (8 + snappy_max_compressed_length(FH_HADOOP_BLOCK));
	case FIREHOSE_SNAPPY:
		return FH_SNAPPY_HEADER_SIZE +
		       blocks * (4 + snappy_max_compressed_length(FH_SNAPPY_BLOCK));
	case FIREHOSE_ZSTD:
		return ZSTD_compressBound(size);
	default:
		return size;
	}
}

static void
fh_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
fh_le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
fh_le32(uint8_t *p, uint32_t v)
{
	fh_le16(p, v & 0xffff);
	fh_le16(p + 2, v >> 16);
}

/* zlib deflate of in[0..size) into out, wrapped as window_bits says (gzip or raw). */
static int
fh_deflate(int window_bits, const uint8_t *in, size_t size, uint8_t *out, size_t cap,
	   size_t *out_size)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, FH_GZIP_LEVEL, Z_DEFLATED, window_bits, FH_GZIP_MEM_LEVEL,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	/* One call: a cut (<= FH_RAW_SIZE_MAX, 129 MiB) fits zlib's 32-bit counts. */
	z.next_out = out;
	z.avail_out = (uInt)cap;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)size;
	rc = deflate(&z, Z_FINISH);
	*out_size = z.total_out;
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -ENOBUFS;
}

/* The local header's and the central directory's common part (from "version needed"). */
static void
fh_zip_entry(uint8_t *p, uint32_t crc, uint32_t packed, uint32_t size)
{
	fh_le16(p, FH_ZIP_VERSION);
	fh_le16(p + 2, 0);                /* Flags: sizes known, name ASCII. */
	fh_le16(p + 4, FH_ZIP_DEFLATED);
	fh_le16(p + 6, 0);                /* DOS time. */
	fh_le16(p + 8, FH_ZIP_DOS_DATE);
	fh_le32(p + 10, crc);
	fh_le32(p + 14, packed);
	fh_le32(p + 18, size);
	fh_le16(p + 22, FH_ZIP_NAME_SIZE);
	fh_le16(p + 24, 0);               /* Extra field length. */
}

static int
fh_zip(const uint8_t *in, size_t size, uint8_t *out, size_t cap, size_t *out_size)
{
	uint32_t crc = (uint32_t)crc32_z(0, in, size);
	uint32_t adler = (uint32_t)adler32_z(1, in, size);
	size_t head = FH_ZIP_LOCAL_SIZE + FH_ZIP_NAME_SIZE, packed = 0;
	char name[FH_ZIP_NAME_SIZE + 1];
	uint8_t *p;
	int rc;

	if (cap < fh_codec_bound(FIREHOSE_ZIP, size))
		return -ENOBUFS;
	/* The entry's name: UUID-shaped, from the content, so the same cut names it the same. */
	snprintf(name, sizeof(name), "%08x-%04x-4%03x-8%03x-%012llx", crc, adler >> 16,
		 adler & 0xfff, (unsigned)(size >> 32) & 0xfff, (unsigned long long)size);
	rc = fh_deflate(FH_ZIP_WINDOW_BITS, in, size, out + head, cap - head, &packed);
	if (rc != 0)
		return rc;
	fh_le32(out, 0x04034b50);
	fh_zip_entry(out + 4, crc, (uint32_t)packed, (uint32_t)size);
	memcpy(out + FH_ZIP_LOCAL_SIZE, name, FH_ZIP_NAME_SIZE);
	p = out + head + packed;
	fh_le32(p, 0x02014b50);
	fh_le16(p + 4, FH_ZIP_VERSION);   /* Made by: MS-DOS attributes, 2.0. */
	fh_zip_entry(p + 6, crc, (uint32_t)packed, (uint32_t)size);
	memset(p + 32, 0, 14);            /* Comment, disk, attributes, local header at 0. */
	memcpy(p + FH_ZIP_CENTRAL_SIZE, name, FH_ZIP_NAME_SIZE);
	p += FH_ZIP_CENTRAL_SIZE + FH_ZIP_NAME_SIZE;
	fh_le32(p, 0x06054b50);
	memset(p + 4, 0, 4);              /* This disk, the directory's disk. */
	fh_le16(p + 8, 1);
	fh_le16(p + 10, 1);
	fh_le32(p + 12, FH_ZIP_CENTRAL_SIZE + FH_ZIP_NAME_SIZE);
	fh_le32(p + 16, (uint32_t)(head + packed));
	fh_le16(p + 20, 0);               /* Comment length. */
	*out_size = (size_t)(p + FH_ZIP_END_SIZE - out);
	return 0;
}

static int
fh_hadoop_snappy(const uint8_t *in, size_t size, uint8_t *out, size_t cap, size_t *out_size)
{
	size_t at = 0;

	for (size_t done = 0; done < size; done += FH_HADOOP_BLOCK) {
		size_t n = size - done < FH_HADOOP_BLOCK ? size - done : FH_HADOOP_BLOCK;
		size_t len = cap - at - 8;

		if (cap - at < 8 + snappy_max_compressed_length(n) ||
		    snappy_compress((const char *)in + done, n, (char *)out + at + 8, &len) !=
		    SNAPPY_OK)
			return -ENOBUFS;
		fh_be32(out + at, (uint32_t)n);
		fh_be32(out + at + 4, (uint32_t)len);
		at += 8 + len;
	}
	*out_size = at;
	return 0;
}

static int
fh_snappy(const uint8_t *in, size_t size, uint8_t *out, size_t cap, size_t *out_size)
{
	size_t at = FH_SNAPPY_HEADER_SIZE;

	memcpy(out, fh_snappy_magic, sizeof(fh_snappy_magic));
	fh_be32(out + 8, 1);   /* Version. */
	fh_be32(out + 12, 1);  /* Minimum compatible version. */
	for (size_t done = 0; done < size; done += FH_SNAPPY_BLOCK) {
		size_t n = size - done < FH_SNAPPY_BLOCK ? size - done : FH_SNAPPY_BLOCK;
		size_t len = cap - at - 4;

		if (snappy_compress((const char *)in + done, n, (char *)out + at + 4, &len) !=
		    SNAPPY_OK)
			return -ENOBUFS;
		fh_be32(out + at, (uint32_t)len);
		at += 4 + len;
	}
	*out_size = at;
	return 0;
}

static int
fh_zstd(const uint8_t *in, size_t size, uint8_t *out, size_t cap, size_t *out_size)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t n;

	if (cctx == NULL)
		return -ENOMEM;
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, FH_ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	n = ZSTD_compress2(cctx, out, cap, in, size);
	ZSTD_freeCCtx(cctx);
	if (ZSTD_isError(n))
		return -ENOBUFS;
	*out_size = n;
	return 0;
}

int
fh_codec_compress(enum firehose_compression c, const uint8_t *in, size_t size, uint8_t *out,
		  size_t out_cap, size_t *out_size)
{
	switch (c) {
	case FIREHOSE_GZIP:
		return fh_deflate(FH_GZIP_WINDOW_BITS, in, size, out, out_cap, out_size);
	case FIREHOSE_ZIP:
		return fh_zip(in, size, out, out_cap, out_size);
	case FIREHOSE_HADOOP_SNAPPY:
		return fh_hadoop_snappy(in, size, out, out_cap, out_size);
	case FIREHOSE_SNAPPY:
		return fh_snappy(in, size, out, out_cap, out_size);
	case FIREHOSE_ZSTD:
		return fh_zstd(in, size, out, out_cap, out_size);
	default:
		if (size > out_cap)
			return -ENOBUFS;
		memcpy(out, in, size);
		*out_size = size;
		return 0;
	}
}
