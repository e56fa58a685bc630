/*
 * api_out.c - the response output buffer of api.h: appends, printf, base64
 * (common/base64.h) and JSON string literals written straight into the
 * buffer. Growth takes buffers from the thread's pool (server_pool.h) and
 * never passes capacity_max; an append that cannot fit marks the buffer `overflow` and is
 * dropped: the server then answers 500 InternalFailure (over the cap) or 503
 * (no larger buffer free right now) instead of a cut body.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "control/server_pool.h"

static _Thread_local struct buf_pool *buf_pool_thread;

void
buf_pool_thread_set(struct buf_pool *pool)
{
	buf_pool_thread = pool;
}

void
api_out_init(struct api_out *out, size_t capacity_max)
{
	memset(out, 0, sizeof(*out));
	out->capacity_max = capacity_max;
}

void
api_out_reset(struct api_out *out)
{
	out->size = 0;
	out->overflow = false;
}

void
api_out_release(struct api_out *out)
{
	if (out->data != NULL) {
		if (buf_pool_thread != NULL)
			buf_pool_put(buf_pool_thread, out->data, out->capacity);
		else
			free(out->data);
	}
	out->data = NULL;
	out->size = 0;
	out->capacity = 0;
	out->overflow = false;
}

/* Makes room for `extra` more bytes. False (and overflow set) when it cannot. */
static bool
api_out_reserve(struct api_out *out, size_t extra)
{
	size_t need = out->size + extra;
	size_t capacity;
	char *data;

	if (out->overflow)
		return false;
	if (need <= out->capacity)
		return true;
	if (need > out->capacity_max || need < out->size)
		goto out_overflow;
	if (buf_pool_thread != NULL) {
		data = buf_pool_get(buf_pool_thread, need, &capacity);
		if (data == NULL)
			goto out_overflow;
		if (out->size > 0)
			memcpy(data, out->data, out->size);
		if (out->data != NULL)
			buf_pool_put(buf_pool_thread, out->data, out->capacity);
	} else {
		capacity = out->capacity < 4096 ? 4096 : out->capacity * 2;
		if (capacity < need)
			capacity = need;
		if (capacity > out->capacity_max)
			capacity = out->capacity_max;
		data = realloc(out->data, capacity);
		if (data == NULL)
			goto out_overflow;
	}
	out->data = data;
	out->capacity = capacity;
	return true;

out_overflow:
	out->overflow = true;
	return false;
}

void
api_out_append(struct api_out *out, const void *data, size_t size)
{
	if (size == 0 || !api_out_reserve(out, size))
		return;
	memcpy(out->data + out->size, data, size);
	out->size += size;
}

void
api_out_printf(struct api_out *out, const char *fmt, ...)
{
	va_list ap;
	size_t room = out->capacity - out->size;
	int n;

	if (out->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out->data == NULL ? NULL : out->data + out->size, room, fmt, ap);
	va_end(ap);
	assert(n >= 0);
	if ((size_t)n >= room) {
		/* Did not fit: grow (room for the NUL vsnprintf writes) and format again. */
		if (!api_out_reserve(out, (size_t)n + 1))
			return;
		va_start(ap, fmt);
		n = vsnprintf(out->data + out->size, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	out->size += (size_t)n;
}

void
api_out_base64(struct api_out *out, const void *data, size_t size)
{
	if (size == 0 || !api_out_reserve(out, base64_encoded_size(size)))
		return;
	out->size += base64_encode(data, size, out->data + out->size);
}

/* Length of the valid UTF-8 sequence at s[0 .. size), or 0 when it is not one. */
static size_t
utf8_sequence_size(const uint8_t *s, size_t size)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (n > size)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void *
api_out_extend(struct api_out *out, size_t size)
{
	void *p;

	if (!api_out_reserve(out, size))
		return NULL;
	p = out->data + out->size;
	out->size += size;
	return p;
}

/* Worst case: every byte becomes \u00XX (6 bytes), or an invalid byte U+FFFD (6 as \ufffd). */
static char *
json_chars_write(char *p, const uint8_t *s, size_t size)
{
	for (size_t i = 0; i < size;) {
		uint8_t c = s[i];
		size_t n;

		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
			i++;
			continue;
		}
		if (c < 0x20) {
			static const char short_escapes[] = "btn\0fr";

			if (c >= '\b' && c <= '\r' && c != '\v') {
				*p++ = '\\';
				*p++ = short_escapes[c - '\b'];
			} else {
				static const char hex[] = "0123456789abcdef";

				memcpy(p, "\\u00", 4);
				p[4] = hex[c >> 4];
				p[5] = hex[c & 15];
				p += 6;
			}
			i++;
			continue;
		}
		if (c < 0x80) {
			*p++ = (char)c;  /* Printable ASCII: the common case. */
			i++;
			continue;
		}
		n = utf8_sequence_size(s + i, size - i);
		if (n == 0) {
			memcpy(p, "\\ufffd", 6);
			p += 6;
			i++;
			continue;
		}
		memcpy(p, s + i, n);
		p += n;
		i += n;
	}
	return p;
}

void
api_out_json_chars(struct api_out *out, const char *text, size_t size)
{
	char *p;

	if (!api_out_reserve(out, size * 6))
		return;
	p = json_chars_write(out->data + out->size, (const uint8_t *)text, size);
	out->size = (size_t)(p - out->data);
}

void
api_out_json_string(struct api_out *out, const char *text, size_t size)
{
	char *p;

	if (!api_out_reserve(out, size * 6 + 2))
		return;
	p = out->data + out->size;
	*p++ = '"';
	p = json_chars_write(p, (const uint8_t *)text, size);
	*p++ = '"';
	out->size = (size_t)(p - out->data);
}
