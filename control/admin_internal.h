/*
 * admin_internal.h - private to admin*.c: what the admin thread reads from,
 * the status JSON (admin_status.c) and the compiled-in status page.
 */
#ifndef SLUICE_CONTROL_ADMIN_INTERNAL_H
#define SLUICE_CONTROL_ADMIN_INTERNAL_H

#include <stddef.h>

#include "control/config.h"
#include "control/metrics.h"

struct metadata;

struct admin_context {
	struct metrics_sources src;
	struct metadata *md;         /* The admin thread's own SQLite connection. */
};

int admin_context_open(struct admin_context *ctx, const struct sluice_config *config);
void admin_context_close(struct admin_context *ctx);

/* Samples the streams' totals for the page's 15-minute charts when due (admin thread). */
void admin_history_tick(uint64_t now_ns);

/* GET /status.json: streams and shards (SQLite), their counters, log, dataplane. */
void admin_status_json(struct admin_context *ctx, struct metrics_out *out);

/* GET /: control/status_page.html, compiled in by meson (status_page.c). */
extern const char admin_status_page[];
extern const size_t admin_status_page_size;

#endif /* SLUICE_CONTROL_ADMIN_INTERNAL_H */
