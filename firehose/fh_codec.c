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
 *
 * ZIP and HADOOP_SNAPPY are not built yet (firehose_compression_parse refuses them).
 */
#include <errno.h>
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

static const uint8_t fh_snappy_magic[8] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };

static const struct {
	const char *name;
	const char *extension;
} fh_codecs[FIREHOSE_COMPRESSION_COUNT] = {
	[FIREHOSE_UNCOMPRESSED] = { "UNCOMPRESSED", "" },
	[FIREHOSE_GZIP] = { "GZIP", ".gz" },
	[FIREHOSE_SNAPPY] = { "Snappy", ".snappy" },
	[FIREHOSE_ZSTD] = { "ZSTD", ".zst" },
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

	switch (c) {
	case FIREHOSE_GZIP:
		/* deflateBound() needs a stream; zlib's documented worst case plus the wrapper. */
		return size + (size >> 12) + (size >> 14) + (size >> 25) + 13 + 18;
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

static int
fh_gzip(const uint8_t *in, size_t size, uint8_t *out, size_t cap, size_t *out_size)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, FH_GZIP_LEVEL, Z_DEFLATED, FH_GZIP_WINDOW_BITS, FH_GZIP_MEM_LEVEL,
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
		return fh_gzip(in, size, out, out_cap, out_size);
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
