/*
 * diag.h - human diagnostics on stderr ("log" is the data log, so these are diag_*).
 * One line per call, prefixed with the level and the module. Thread-safe
 * (one fprintf per line). Never call from a per-packet path.
 */
#ifndef SLUICE_DIAG_H
#define SLUICE_DIAG_H

#include <stdint.h>

enum diag_level {
	DIAG_DEBUG,
	DIAG_INFO,
	DIAG_WARN,
	DIAG_ERROR,
};

enum diag_format {
	DIAG_TEXT,    /* "sluice <level> <module>: <text>" */
	DIAG_JSON,    /* {"ts":"<RFC 3339 UTC>","level":"..","module":"..","msg":".."} */
};

/* Lines below `level` are suppressed. Default DIAG_INFO. Any thread, any time. */
void diag_level_set(enum diag_level level);
/* Default DIAG_TEXT. Any thread, any time. */
void diag_format_set(enum diag_format format);
/* "debug" | "info" | "warn" | "error" -> level; -EINVAL otherwise. */
int diag_level_parse(const char *text, enum diag_level *level_out);
/* "text" | "json" -> format; -EINVAL otherwise. */
int diag_format_parse(const char *text, enum diag_format *format_out);

void diag_printf(enum diag_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One named value of a structured line: text, or a number when `text` is NULL. */
struct diag_field {
	const char *name;
	const char *text;
	uint64_t number;
};

/*
 * One line of named values (the access log), with its time: text format
 * "ts=TIME name=value ..." after the usual prefix (text values must hold no
 * spaces; an empty one shows as "-"), json format the fields as members of the
 * line's object beside ts, level and module.
 */
void diag_fields(enum diag_level level, const char *module, const struct diag_field *fields,
		 unsigned count);

#define diag_debug(module, ...) diag_printf(DIAG_DEBUG, module, __VA_ARGS__)
#define diag_info(module, ...) diag_printf(DIAG_INFO, module, __VA_ARGS__)
#define diag_warn(module, ...) diag_printf(DIAG_WARN, module, __VA_ARGS__)
#define diag_error(module, ...) diag_printf(DIAG_ERROR, module, __VA_ARGS__)

#endif /* SLUICE_DIAG_H */
