/*
 * base64.c - see base64.h. Encoding writes two characters per 12 input bits
 * from a 4096-entry table (half the lookups of the plain alphabet: GetRecords
 * encodes up to 10 MiB per answer); decoding takes four characters at a time
 * and falls back to a careful path for the last group and for anything odd.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "common/base.h"
#include "common/base64.h"

static const char base64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or 64 for '=', or 255 for anything else. */
static const uint8_t base64_values[256] = {
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
	255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
	255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

static char base64_pairs[4096][2];
static pthread_once_t base64_pairs_once = PTHREAD_ONCE_INIT;

static void
base64_pairs_init(void)
{
	for (unsigned i = 0; i < 4096; i++) {
		base64_pairs[i][0] = base64_alphabet[i >> 6];
		base64_pairs[i][1] = base64_alphabet[i & 63];
	}
}

size_t
base64_encode(const void *data, size_t size, char *out)
{
	const uint8_t *in = data;
	size_t full = size / 3;
	char *p = out;

	pthread_once(&base64_pairs_once, base64_pairs_init);
	for (size_t i = 0; i < full; i++, in += 3, p += 4) {
		uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];

		memcpy(p, base64_pairs[v >> 12], 2);
		memcpy(p + 2, base64_pairs[v & 0xfff], 2);
	}
	if (size % 3 != 0) {
		uint32_t v = (uint32_t)in[0] << 16;

		if (size % 3 == 2)
			v |= (uint32_t)in[1] << 8;
		*p++ = base64_alphabet[v >> 18];
		*p++ = base64_alphabet[(v >> 12) & 63];
		*p++ = size % 3 == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	return (size_t)(p - out);
}

size_t
base64_scan(const char *text, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		uint8_t v = base64_values[(unsigned char)text[i]];

		if (unlikely(v >= 64) && (v == 255 || (i + 1 < size && text[i + 1] != '=')))
			return i;
	}
	return size;
}

/* Decodes one 4-character group; returns the bytes it gives (1..3) or -EINVAL. */
static int
base64_group(const char *text, bool last, uint8_t out[3])
{
	uint8_t v[4];
	int pad = 0;

	for (int i = 0; i < 4; i++) {
		v[i] = base64_values[(unsigned char)text[i]];
		if (v[i] == 255)
			return -EINVAL;
		if (v[i] == 64) {
			if (!last || i < 2)
				return -EINVAL;
			pad++;
		} else if (pad > 0) {
			return -EINVAL;  /* '=' followed by a non-'='. */
		}
	}
	/* Unused bits must be zero, or the text would not re-encode to itself. */
	if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0))
		return -EINVAL;
	out[0] = (uint8_t)(v[0] << 2 | v[1] >> 4);
	out[1] = (uint8_t)(v[1] << 4 | (pad < 2 ? v[2] >> 2 : 0));
	out[2] = (uint8_t)((pad < 2 ? v[2] << 6 : 0) | (pad == 0 ? v[3] : 0));
	return 3 - pad;
}

int64_t
base64_decode(const char *text, size_t size, uint8_t *out, size_t out_size)
{
	size_t n = 0;

	if (size % 4 != 0)
		return -EINVAL;
	if (size / 4 * 3 > out_size + 2)
		return -ENOBUFS;
	for (size_t i = 0; i < size; i += 4) {
		uint8_t group[3];
		int got;

		/* Fast path: four alphabet characters (no '=') make three bytes. */
		if (i + 4 < size && n + 3 <= out_size) {
			uint8_t a = base64_values[(unsigned char)text[i]];
			uint8_t b = base64_values[(unsigned char)text[i + 1]];
			uint8_t c = base64_values[(unsigned char)text[i + 2]];
			uint8_t d = base64_values[(unsigned char)text[i + 3]];

			/* '=' (64) and invalid (255) both have bit 6 set: one test for all four. */
			if ((a | b | c | d) < 64) {
				out[n++] = (uint8_t)(a << 2 | b >> 4);
				out[n++] = (uint8_t)(b << 4 | c >> 2);
				out[n++] = (uint8_t)(c << 6 | d);
				continue;
			}
		}
		got = base64_group(text + i, i + 4 == size, group);

		if (got < 0)
			return got;
		if (n + (size_t)got > out_size)
			return -ENOBUFS;
		for (int j = 0; j < got; j++)
			out[n++] = group[j];
	}
	return (int64_t)n;
}
