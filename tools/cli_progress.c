/*
 * cli_progress.c - the terminal-only status line of cli_progress.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli_progress.h"

void
cli_progress_init(struct cli_progress *progress, FILE *out, uint64_t now_ns)
{
	const char *term = getenv("TERM");

	progress->out = out;
	progress->enabled = isatty(fileno(out)) == 1 && (term == NULL || strcmp(term, "dumb") != 0);
	progress->drawn = false;
	progress->next_ns = now_ns + CLI_PROGRESS_INTERVAL_NS;
}

bool
cli_progress_due(struct cli_progress *progress, uint64_t now_ns)
{
	if (!progress->enabled || now_ns < progress->next_ns)
		return false;
	progress->next_ns = now_ns + CLI_PROGRESS_INTERVAL_NS;
	return true;
}

void
cli_progress_draw(struct cli_progress *progress, const char *line)
{
	if (!progress->enabled)
		return;
	/* \r back to column 0, the line, then ESC[K erases what a longer line left. */
	fprintf(progress->out, "\r%s\033[K", line);
	fflush(progress->out);
	progress->drawn = true;
}

void
cli_progress_end(struct cli_progress *progress)
{
	if (!progress->enabled || !progress->drawn)
		return;
	fprintf(progress->out, "\r\033[K");
	fflush(progress->out);
	progress->drawn = false;
}

void
cli_format_ns(char *out, size_t out_size, double ns)
{
	static const struct {
		double scale;
		const char *unit;
	} units[] = { { 1e9, "s" }, { 1e6, "ms" }, { 1e3, "us" } };

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		double value = ns / units[i].scale;

		if (value >= 1.0) {
			snprintf(out, out_size, value >= 100 ? "%.0f %s" : value >= 10 ? "%.1f %s" :
				 "%.2f %s", value, units[i].unit);
			return;
		}
	}
	snprintf(out, out_size, "%.0f ns", ns);
}
