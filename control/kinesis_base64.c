/*
 * kinesis_base64.c - standard base64 with padding, decoded as strictly as
 * AWS decodes a JSON blob: length a multiple of 4, only [A-Za-z0-9+/], '='
 * only as the last one or two characters, and zero unused bits in the last
 * character (the text re-encodes to itself).
 */
#include <assert.h>
#include <errno.h>

#include "control/kinesis.h"

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

static uint8_t
base64_value(char c)
{
	return base64_values[(unsigned char)c];
}

size_t
kinesis_base64_scan(const char *text, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		uint8_t v = base64_values[(unsigned char)text[i]];

		if (unlikely(v >= 64) && (v == 255 || (i + 1 < size && text[i + 1] != '=')))
			return i;
	}
	return size;
}

size_t
kinesis_base64_encode(const uint8_t *data, size_t size, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < size; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		size_t left = size - i;

		if (left > 1)
			v |= (uint32_t)data[i + 1] << 8;
		if (left > 2)
			v |= data[i + 2];
		out[n++] = base64_alphabet[(v >> 18) & 63];
		out[n++] = base64_alphabet[(v >> 12) & 63];
		out[n++] = left > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
		out[n++] = left > 2 ? base64_alphabet[v & 63] : '=';
	}
	out[n] = '\0';
	return n;
}

/* Decodes one 4-character group; returns the bytes it gives (1..3) or -EINVAL. */
static int
base64_group(const char *text, bool last, uint8_t out[3])
{
	uint8_t v[4];
	int pad = 0;

	for (int i = 0; i < 4; i++) {
		v[i] = base64_value(text[i]);
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
kinesis_base64_decode(const char *text, size_t size, uint8_t *out, size_t out_size)
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
			uint8_t a = base64_value(text[i]);
			uint8_t b = base64_value(text[i + 1]);
			uint8_t c = base64_value(text[i + 2]);
			uint8_t d = base64_value(text[i + 3]);

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
