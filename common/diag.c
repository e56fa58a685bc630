/* diag.c - formats one diagnostic line and writes it with a single call. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/diag.h"

static _Atomic int diag_level_min = DIAG_INFO;
static _Atomic int diag_format_used = DIAG_TEXT;

static const char *const diag_level_names[] = {
	[DIAG_DEBUG] = "debug",
	[DIAG_INFO] = "info",
	[DIAG_WARN] = "warn",
	[DIAG_ERROR] = "error",
};

void
diag_level_set(enum diag_level level)
{
	atomic_store_explicit(&diag_level_min, (int)level, memory_order_relaxed);
}

void
diag_format_set(enum diag_format format)
{
	atomic_store_explicit(&diag_format_used, (int)format, memory_order_relaxed);
}

int
diag_level_parse(const char *text, enum diag_level *level_out)
{
	for (int i = DIAG_DEBUG; i <= DIAG_ERROR; i++) {
		if (strcmp(text, diag_level_names[i]) == 0) {
			*level_out = (enum diag_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int
diag_format_parse(const char *text, enum diag_format *format_out)
{
	if (strcmp(text, "text") == 0)
		*format_out = DIAG_TEXT;
	else if (strcmp(text, "json") == 0)
		*format_out = DIAG_JSON;
	else
		return -EINVAL;
	return 0;
}

/* `text` as the inside of a JSON string: quotes, backslashes and control bytes escaped. */
static size_t
diag_json_escape(const char *text, char *out, size_t size)
{
	size_t n = 0;

	for (; *text != '\0' && n + 7 < size; text++) {
		unsigned char c = (unsigned char)*text;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

/* "2026-12-07T02:07:13.123Z" */
static void
diag_json_time(char ts[48])
{
	char secs[24];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, 48, "%s.%03dZ", secs, (int)(now.tv_nsec / 1000000L) % 1000);
}

/* One JSON object per line, for log shippers (journald, Loki, ...). */
static void
diag_json_print(enum diag_level level, const char *module, const char *text)
{
	char msg[2048];
	char ts[48];

	diag_json_time(ts);
	diag_json_escape(text, msg, sizeof(msg));
	fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"%s\"}\n",
		ts, diag_level_names[level], module, msg);
}

/* Appends `fmt` at *used within `size` (truncating, never overrunning). */
static void
diag_append(char *line, size_t size, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
diag_append(char *line, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line + *used, size - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used = *used + (size_t)n < size ? *used + (size_t)n : size;
}

void
diag_fields(enum diag_level level, const char *module, const struct diag_field *fields,
	    unsigned count)
{
	bool json = atomic_load_explicit(&diag_format_used, memory_order_relaxed) == DIAG_JSON;
	char line[2048];
	char value[512];
	char ts[48];
	size_t used = 0;

	if ((int)level < atomic_load_explicit(&diag_level_min, memory_order_relaxed))
		return;
	diag_json_time(ts);
	if (json)
		diag_append(line, sizeof(line), &used, "{\"ts\":\"%s\",\"level\":\"%s\","
			    "\"module\":\"%s\"", ts, diag_level_names[level], module);
	else
		diag_append(line, sizeof(line), &used, "sluice %s %s: ts=%s", diag_level_names[level],
			    module, ts);
	for (unsigned i = 0; i < count; i++) {
		const struct diag_field *f = &fields[i];

		if (f->text == NULL)
			diag_append(line, sizeof(line), &used, json ? ",\"%s\":%llu" : " %s=%llu",
				    f->name, (unsigned long long)f->number);
		else if (json)
			diag_append(line, sizeof(line), &used, ",\"%s\":\"%s\"", f->name,
				    (diag_json_escape(f->text, value, sizeof(value)), value));
		else
			diag_append(line, sizeof(line), &used, " %s=%s", f->name,
				    f->text[0] != '\0' ? f->text : "-");
	}
	/* One fprintf per line, as diag_printf. */
	fprintf(stderr, "%.*s%s\n", (int)(used < sizeof(line) ? used : sizeof(line) - 1), line,
		json ? "}" : "");
}

void
diag_printf(enum diag_level level, const char *module, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if ((int)level < atomic_load_explicit(&diag_level_min, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&diag_format_used, memory_order_relaxed) == DIAG_JSON) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		diag_json_print(level, module, line);
		return;
	}
	n = snprintf(line, sizeof(line), "sluice %s %s: ", diag_level_names[level], module);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fputs per line keeps concurrent threads from interleaving mid-line. */
	fprintf(stderr, "%s\n", line);
}
