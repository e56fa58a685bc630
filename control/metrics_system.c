/*
 * metrics_system.c - the figures /metrics reads from elsewhere at scrape time:
 * the log's statistics, the dataplane's per-worker counters, delivery streams,
 * the data file system and the process. Runs on the admin thread only; sluiced only (the
 * recording side, metrics.c, also links into the API's tests).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control/cluster_node.h"
#include "control/forward.h"
#include "control/metrics.h"
#include "control/route.h"
#include "dataplane/dataplane.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"

static void
metrics_one(struct metrics_out *out, const char *name, const char *type, const char *help,
	    double value)
{
	metrics_family(out, name, type, help);
	metrics_printf(out, "%s %.17g\n", name, value);
}

static void
metrics_render_log(const struct metrics_sources *src, struct metrics_out *out)
{
	struct log_stats st;
	struct statvfs vfs;

	log_stats_read(src->log, &st);
	metrics_one(out, "sluice_log_durable_bytes_total", "counter",
		    "Bytes made durable (whole 4 KiB blocks of committed windows).",
		    (double)st.bytes_written);
	metrics_one(out, "sluice_log_records_total", "counter", "Records made durable.",
		    (double)st.records_appended);
	metrics_one(out, "sluice_log_batches_total", "counter", "Batches made durable.",
		    (double)st.batches_appended);
	metrics_one(out, "sluice_log_commits_total", "counter", "Group-commit windows made durable.",
		    (double)st.commits);
	metrics_family(out, "sluice_log_commit_window_bytes", "histogram",
		       "Sizes of committed group-commit windows.");
	metrics_hist(out, "sluice_log_commit_window_bytes", "", &st.window_bytes,
		     LOG_HIST_WINDOW_BASE_BYTES, 1.0);
	metrics_one(out, "sluice_log_commit_window_wait_seconds", "gauge",
		    "The adaptive commit window's wait now ([log] commit_window_adaptive_us).",
		    (double)st.window_wait_ns / 1e9);
	metrics_one(out, "sluice_log_windows_back_to_back_total", "counter",
		    "Windows whose first batch waited for the disk (adaptive window only).",
		    (double)st.windows_back_to_back);
	metrics_family(out, "sluice_log_fdatasync_duration_seconds", "histogram",
		       "Flush (fdatasync) of one window.");
	metrics_hist(out, "sluice_log_fdatasync_duration_seconds", "", &st.sync_ns,
		     LOG_HIST_SYNC_BASE_NS, 1e-9);
	metrics_one(out, "sluice_log_segments", "gauge", "Segment files holding retained data.",
		    st.segments);
	metrics_one(out, "sluice_log_segments_spare", "gauge", "Pre-written spare segments ready.",
		    st.segments_spare);
	metrics_one(out, "sluice_log_segments_deleted_total", "counter",
		    "Segments deleted or recycled by retention.", (double)st.segments_deleted);
	metrics_one(out, "sluice_log_segments_resumed_total", "counter",
		    "Starts that continued the newest segment instead of a new one.",
		    (double)st.segments_resumed);
	metrics_one(out, "sluice_log_shards_active", "gauge", "Shards the log tracks.",
		    st.shards_active);
	metrics_one(out, "sluice_log_corruptions_total", "counter",
		    "Bad batches found in durable data.", (double)st.corruptions);
	metrics_one(out, "sluice_log_enospc_errors_total", "counter",
		    "Appends refused because the disk was full.", (double)st.enospc_errors);
	metrics_one(out, "sluice_log_io_errors_total", "counter", "I/O errors (fail-stop).",
		    (double)st.io_errors);
	metrics_one(out, "sluice_log_failed", "gauge", "1 after a fail-stop: reopen to recover.",
		    st.failed ? 1 : 0);
	metrics_one(out, "sluice_log_recovery_seconds", "gauge",
		    "Time the last start spent recovering the log.", (double)st.recovery_ns / 1e9);
	metrics_family(out, "sluice_log_reads_total", "counter",
		       "Batches read, by where they came from.");
	metrics_printf(out, "sluice_log_reads_total{source=\"memory\"} %llu\n"
		       "sluice_log_reads_total{source=\"page_cache\"} %llu\n"
		       "sluice_log_reads_total{source=\"device\"} %llu\n",
		       (unsigned long long)st.reads_memory, (unsigned long long)st.reads_cached,
		       (unsigned long long)st.reads_device);
	if (statvfs(src->data_dir, &vfs) == 0) {
		metrics_one(out, "sluice_log_disk_free_bytes", "gauge",
			    "Free bytes on the data_dir file system.",
			    (double)vfs.f_bavail * (double)vfs.f_frsize);
		metrics_one(out, "sluice_log_disk_size_bytes", "gauge",
			    "Size of the data_dir file system.",
			    (double)vfs.f_blocks * (double)vfs.f_frsize);
	}
}

/* The route publisher: its metadata reads by cause and the tables it published. */
static void
metrics_render_route(struct route *route, struct metrics_out *out)
{
	struct route_stats rs;

	route_stats_read(route, &rs);
	metrics_family(out, "sluice_route_reads_total", "counter", "Metadata reads of the route "
		       "publisher, by cause (route.h, enum route_cause): start, event (a routing "
		       "change committed), cut (a reshard's cut), retry (after a failure).");
	for (uint32_t c = 0; c < ROUTE_CAUSES; c++)
		metrics_printf(out, "sluice_route_reads_total{cause=\"%s\"} %llu\n",
			       route_cause_name((enum route_cause)c),
			       (unsigned long long)rs.refreshes[c]);
	metrics_family(out, "sluice_route_publishes_total", "counter", "Route tables published "
		       "to the dataplane (a read that found the routes changed).");
	metrics_printf(out, "sluice_route_publishes_total %llu\n",
		       (unsigned long long)rs.publishes);
	metrics_family(out, "sluice_route_failures_total", "counter", "Route reads or publishes "
		       "that failed (retried until one works; the dataplane keeps its last table).");
	metrics_printf(out, "sluice_route_failures_total %llu\n",
		       (unsigned long long)rs.failures);
}

static void
metrics_render_dataplane(const struct metrics_sources *src, struct metrics_out *out)
{
	static struct dp_stats workers[DP_WORKERS_MAX]; /* Admin thread only. */
	uint32_t count = 0;
	char name[96];

	if (!src->dataplane_enabled)
		return;
	while (count < DP_WORKERS_MAX &&
	       route_dp_worker_stats(src->route, count, &workers[count]) == 0)
		count++;
	if (count == 0)
		return;
	for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++) {
		snprintf(name, sizeof(name), "sluice_dataplane_%s_total",
			 dp_counter_name((enum dp_counter)c));
		metrics_family(out, name, "counter", "Dataplane counter (dataplane.h, enum "
			       "dp_counter), per worker lcore.");
		for (uint32_t w = 0; w < count; w++)
			metrics_printf(out, "%s{worker=\"%u\"} %llu\n", name, w,
				       (unsigned long long)workers[w].counters[c]);
	}
	metrics_render_route(src->route, out);
}

/* Open descriptors, counted with getdents64 into a stack buffer (no allocation). */
static int
metrics_open_fds(void)
{
	char buf[4096];
	int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int count = 0;
	long n;

	if (fd < 0)
		return -errno;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);

			count += d->d_name[0] != '.';
			off += d->d_reclen;
		}
	}
	close(fd);
	return count - 1; /* Not the one just opened to count. */
}

/* Pages of memory from /proc/self/statm: size, then resident. */
static int
metrics_statm(unsigned long long *size_out, unsigned long long *resident_out)
{
	char text[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	text[n] = '\0';
	return sscanf(text, "%llu %llu", size_out, resident_out) == 2 ? 0 : -EIO;
}

static void
metrics_render_process(struct metrics_out *out)
{
	unsigned long long size_pages;
	unsigned long long resident_pages;
	double page = (double)sysconf(_SC_PAGESIZE);
	int fds = metrics_open_fds();

	if (metrics_statm(&size_pages, &resident_pages) == 0) {
		metrics_one(out, "process_resident_memory_bytes", "gauge",
			    "Resident memory size in bytes.", (double)resident_pages * page);
		metrics_one(out, "process_virtual_memory_bytes", "gauge",
			    "Virtual memory size in bytes.", (double)size_pages * page);
	}
	if (fds >= 0)
		metrics_one(out, "process_open_fds", "gauge", "Number of open file descriptors.",
			    fds);
}

/* Delivery streams: one family per row, CloudWatch's Firehose metric in the help. */
static const struct {
	const char *name;
	const char *type;
	const char *help;
	size_t offset;
	double scale;  /* Into the family's unit. */
} metrics_firehose_rows[] = {
#define FS(field) offsetof(struct firehose_stats, field)
	{ "sluice_firehose_incoming_records_total", "counter",
	  "Records put and durable (IncomingRecords).", FS(incoming_records), 1 },
	{ "sluice_firehose_incoming_bytes_total", "counter",
	  "Data bytes put and durable (IncomingBytes).", FS(incoming_bytes), 1 },
	{ "sluice_firehose_delivered_records_total", "counter",
	  "Records delivered (DeliveryToS3.Records).", FS(delivered_records), 1 },
	{ "sluice_firehose_delivered_bytes_total", "counter",
	  "Data bytes delivered, before compression (DeliveryToS3.Bytes).",
	  FS(delivered_bytes), 1 },
	{ "sluice_firehose_delivered_objects_total", "counter",
	  "Objects written (DeliveryToS3.Success).", FS(delivered_objects), 1 },
	{ "sluice_firehose_delivery_failures_total", "counter",
	  "Delivery attempts that failed and will be retried.", FS(delivery_failures), 1 },
	{ "sluice_firehose_records_lost_total", "counter",
	  "Records the log trimmed before they were delivered.", FS(records_lost), 1 },
	{ "sluice_firehose_processing_failed_records_total", "counter",
	  "Records a Lambda processor failed, written under processing-failed/.",
	  FS(processing_failed), 1 },
	{ "sluice_firehose_http_backup_records_total", "counter",
	  "Records an HTTP endpoint did not take within RetryOptions, backed up under "
	  "http-endpoint-failed/.", FS(http_backup_records), 1 },
	{ "sluice_firehose_data_freshness_seconds", "gauge",
	  "Age of the oldest record not delivered yet (DeliveryToS3.DataFreshness).",
	  FS(freshness_ms), 1e-3 },
	{ "sluice_firehose_retention_warnings_total", "counter",
	  "Times undelivered records came within the retention margin of aging out.",
	  FS(retention_warnings), 1 },
	{ "sluice_firehose_retention_headroom_seconds", "gauge",
	  "Time before the oldest undelivered record ages out of its source's retention.",
	  FS(retention_headroom_s), 1 },
#undef FS
};

static void
metrics_render_firehose(const struct metrics_sources *src, struct metrics_out *out)
{
	static struct firehose_stats stats[FIREHOSE_STREAMS_MAX];  /* Admin thread only. */
	uint32_t n;

	if (src->firehose == NULL)
		return;
	n = firehose_stats_read(src->firehose, stats, FIREHOSE_STREAMS_MAX);
	for (size_t f = 0; f < sizeof(metrics_firehose_rows) / sizeof(metrics_firehose_rows[0]);
	     f++) {
		metrics_family(out, metrics_firehose_rows[f].name, metrics_firehose_rows[f].type,
			       metrics_firehose_rows[f].help);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t v;

			memcpy(&v, (const char *)&stats[i] + metrics_firehose_rows[f].offset,
			       sizeof(v));
			/* Names are [a-zA-Z0-9_.-]: nothing to escape. */
			metrics_printf(out, "%s{delivery_stream=\"%s\"} %.17g\n",
				       metrics_firehose_rows[f].name, stats[i].name,
				       (double)v * metrics_firehose_rows[f].scale);
		}
	}
}

void
metrics_render_prometheus(const struct metrics_sources *src, struct metrics_out *out)
{
	metrics_render_tables(src->dataplane_enabled, out);
	metrics_render_log(src, out);
	metrics_render_firehose(src, out);
	metrics_render_dataplane(src, out);
	cluster_node_render_metrics(src->cluster, out);
	forward_render_metrics(src->forward, out);
	metrics_render_process(out);
}
