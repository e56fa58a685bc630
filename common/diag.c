/* diag.c - formats one diagnostic line and writes it with a single call. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "common/diag.h"

static _Atomic int diag_level_min = DIAG_INFO;

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
diag_printf(enum diag_level level, const char *module, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if ((int)level < atomic_load_explicit(&diag_level_min, memory_order_relaxed))
		return;
	n = snprintf(line, sizeof(line), "sluice %s %s: ", diag_level_names[level], module);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fputs per line keeps concurrent threads from interleaving mid-line. */
	fprintf(stderr, "%s\n", line);
}
