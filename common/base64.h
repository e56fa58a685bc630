/*
 * base64.h - standard base64 with padding (RFC 4648, section 4): the one
 * encoder and decoder of the project. Decoding is as strict as AWS's JSON
 * blob decoding: length a multiple of 4, only [A-Za-z0-9+/], '=' only as the
 * last one or two characters, and zero unused bits in the last character
 * (the text re-encodes to itself). No allocation; safe on any thread.
 */
#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode() writes for `size` bytes (no NUL counted). */
static inline size_t
base64_encoded_size(size_t size)
{
	return (size + 2) / 3 * 4;
}

/* Writes base64_encoded_size(size) characters to `out`, no NUL; returns that count. */
size_t base64_encode(const void *data, size_t size, char *out);
/*
 * Decodes strictly (see above) into `out`. Returns the decoded size, -EINVAL
 * for text that is not strict base64, or -ENOBUFS when it does not fit.
 */
int64_t base64_decode(const char *text, size_t size, uint8_t *out, size_t out_size);
/*
 * Index of the first character outside [A-Za-z0-9+/=], or of a '=' followed by
 * something else; `size` when there is none (a quick check before decoding).
 */
size_t base64_scan(const char *text, size_t size);

#endif /* SLUICE_BASE64_H */
