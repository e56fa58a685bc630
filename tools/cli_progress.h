/*
 * cli_progress.h - a live status line for long commands, drawn only when
 * its stream is a terminal: each redraw returns the cursor with \r and
 * clears the rest of the line, so the line updates in place. When the
 * stream is a pipe or a file, every call is a no-op and nothing is written.
 */
#ifndef SLUICE_TOOLS_CLI_PROGRESS_H
#define SLUICE_TOOLS_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_PROGRESS_INTERVAL_NS 1000000000ull  /* Redraw once a second. */

struct cli_progress {
	FILE *out;
	bool enabled;
	bool drawn;
	uint64_t next_ns;
};

/* Enabled when `out` is a terminal and TERM is not "dumb". */
void cli_progress_init(struct cli_progress *progress, FILE *out, uint64_t now_ns);

/* Whether a redraw is due at `now_ns` (always false when disabled). */
bool cli_progress_due(struct cli_progress *progress, uint64_t now_ns);

void cli_progress_draw(struct cli_progress *progress, const char *line);

/* Clears the line, so the summary that follows starts clean. */
void cli_progress_end(struct cli_progress *progress);

/* "850 ns", "12.3 us", "4.56 ms", "1.20 s": three significant digits. */
void cli_format_ns(char *out, size_t out_size, double ns);

#endif /* SLUICE_TOOLS_CLI_PROGRESS_H */
