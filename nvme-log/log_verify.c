/*
 * log_verify.c - `sluice log verify`: a read-only full check. The log is
 * opened read-only (recovery reports what it finds but changes nothing),
 * then every retained segment is read whole: each index entry must point
 * at a batch whose CRCs and header agree with it, and a fresh scan of the
 * data must produce exactly the index. Sequence gaps come from recovery's
 * per-shard continuity check.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/diag.h"
#include "nvme-log/log_internal.h"

static bool
entry_matches_data(const struct log_segment *seg, const struct log_index_entry *e,
		   const uint8_t *image, uint64_t size)
{
	struct log_batch_header h;

	if (e->offset >= size || log_batch_check(image + e->offset, size - e->offset, &h) != 0)
		return false;
	return h.shard_id == e->shard_id && h.base_seq == e->seq_first &&
	       h.record_count == e->record_count && h.size == e->size &&
	       h.segment_no == (uint32_t)seg->segment_no && h.commit_id == e->commit_id;
}

/* Batches in one list and not the other (both are in segment order). */
static uint64_t
entries_diff(const struct log_segment *a, const struct log_segment *b)
{
	uint64_t diff = 0;
	uint32_t i = 0;
	uint32_t j = 0;

	while (i < a->entry_count || j < b->entry_count) {
		if (i < a->entry_count && j < b->entry_count &&
		    log_index_entry_same(&a->entries[i], &b->entries[j])) {
			i++;
			j++;
		} else if (j == b->entry_count ||
			   (i < a->entry_count && a->entries[i].offset < b->entries[j].offset)) {
			i++;
			diff++;
		} else {
			j++;
			diff++;
		}
	}
	return diff;
}

/* Checks one segment's index against its bytes. */
static int
verify_segment(struct log *log, struct log_segment *seg, struct log_verify_report *rep)
{
	struct log_segment scan = { .segment_no = seg->segment_no, .commit_first = seg->commit_first };
	struct log_mem image;
	uint32_t corruptions;
	bool torn;
	int err = log_segment_read_all(log, seg, &image);

	if (err != 0)
		return err;
	for (uint32_t i = 0; i < seg->entry_count; i++) {
		const struct log_index_entry *e = &seg->entries[i];

		if (!entry_matches_data(seg, e, image.addr, log->config.segment_size)) {
			diag_error("log", "verify: segment %" PRIu64 " offset %u: batch of shard %"
				   PRIx64 " seq %" PRIu64 " fails its checks", seg->segment_no,
				   e->offset, e->shard_id, e->seq_first);
			rep->crc_errors++;
		}
		rep->records += e->record_count;
		rep->bytes += e->size;
	}
	if (seg->index_persisted) {
		uint64_t before = rep->index_mismatches;

		err = log_segment_scan_image(log, &scan, image.addr, &corruptions, &torn);
		if (err == 0)
			rep->index_mismatches += entries_diff(&scan, seg);
		if (rep->index_mismatches != before)
			diag_error("log", "verify: segment %" PRIu64 ": index file disagrees with data "
				   "on %" PRIu64 " batches", seg->segment_no, rep->index_mismatches - before);
		free(scan.entries);
		rep->segments_sealed++;
	}
	rep->batches += seg->entry_count;
	log_mem_free(&image);
	return err;
}

int
log_verify(const char *dir_path, struct log_verify_report *report_out,
	   log_verify_progress_fn progress, void *arg)
{
	struct log_config c;
	struct log_stats st;
	struct log *log;
	int err;

	memset(report_out, 0, sizeof(*report_out));
	log_config_default(&c);
	c.dir_path = dir_path;
	c.read_only = true;
	c.segment_size = 0;
	err = log_open(&c, &log);
	if (err != 0)
		return err;
	for (uint32_t i = 0; i < log->segment_count && err == 0; i++) {
		err = verify_segment(log, log->segments[i], report_out);
		if (progress != NULL)
			progress(arg, (uint64_t)(i + 1) * log->config.segment_size,
				 (uint64_t)log->segment_count * log->config.segment_size);
	}
	report_out->segments = log->segment_count;
	for (uint32_t i = 0; i < log->shard_count; i++) {
		report_out->shards += log->shards[i].deleted ? 0u : 1u;
		report_out->sequence_gaps += log->shards[i].bad_count;
	}
	log_stats_read(log, &st);
	report_out->corruptions = st.corruptions;
	report_out->torn_tails = st.torn_tails_cut;
	log_close(log);
	if (err == 0 && (report_out->corruptions + report_out->crc_errors +
			 report_out->index_mismatches + report_out->sequence_gaps) != 0)
		err = -EBADMSG;
	return err;
}
