/*
 * log_internal.h - the log's private state, shared by the files of
 * nvme-log/ (and white-box tests). Nobody outside nvme-log/ includes it.
 *
 * Threads and what they own:
 *   producers   their log_producer: batch pool, submit ring (push side),
 *               completion ring (pop side)
 *   writer      shard seq_next, the two group-commit windows, the active
 *               segment, the I/O ring; it publishes under index_lock
 *   preparer    pre-writes spare segments and writes index files of sealed
 *               segments (off the write path)
 *   any         log_read / log_shard_info / retention under index_lock
 *
 * index_lock guards the shard table, the segment list and their index
 * entries. The writer takes it once per commit, never across I/O.
 */
#ifndef SLUICE_LOG_INTERNAL_H
#define SLUICE_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/record_wire.h"
#include "nvme-log/log.h"
#include "nvme-log/log_format.h"

#define LOG_SEGMENTS_MAX 16384u   /* Segments one log may hold (retained + spares). */
#define LOG_SPARES_DEFAULT 2u     /* Pre-written segments kept ready (config 0). */
#define LOG_SPARES_MAX 1024u
/*
 * Space a new segment must leave free on the filesystem: for the log's own small files
 * (log.meta, indexes) and SQLite next to it. Without it the segments took every byte, and
 * then no shard close, no DeleteStream, and no start could write (issue 14, finding 4).
 */
#define LOG_SPACE_HEADROOM (16ull << 20)
/*
 * How far past a segment's durable end the windows of a run may have written:
 * two in flight, each of at most the largest window plus one batch and its
 * blocks (log_windows_init), whatever the last run's configuration was.
 */
#define LOG_TAIL_REACH (2ull * (LOG_COMMIT_WINDOW_BYTES_MAX + LOG_BATCH_SIZE_MAX + \
				2 * LOG_BLOCK_SIZE))
#define LOG_SHARD_BAD_MAX 8u      /* Corrupt ranges remembered per shard. */
#define LOG_WRITE_CHUNK (512u << 10) /* Largest single write of a window. */
static_assert(LOG_COMMIT_WINDOW_BYTES_MIN == LOG_BLOCK_SIZE, "a window is whole blocks");
static_assert(LOG_BATCH_SIZE_MAX >= LOG_BATCH_HEADER_SIZE + LOG_BATCH_TRAILER_SIZE +
	      RECORD_WIRE_OVERHEAD_MAX + SLUICE_PARTITION_KEY_SIZE_MAX +
	      SLUICE_RECORD_DATA_SIZE_LARGE_MAX, "the largest record fits a batch");
static_assert((LOG_COMMIT_WINDOW_BYTES_MAX + LOG_BATCH_SIZE_MAX + 2 * LOG_BLOCK_SIZE) /
	      LOG_WRITE_CHUNK + 2 <= 64, "a window fits in LOG_IO_INFLIGHT_MAX ops");
#define LOG_STREAMS_RETENTION_MAX 4096u
#define LOG_RETENTION_HOURS_DEFAULT 24u
#define LOG_DELETED_MAX 4096u     /* Deleted streams remembered until their data is gone. */
#define LOG_RECENT_EXTENTS 64u    /* Runs of recent windows a reader can find in the ring. */

/*
 * Single-producer single-consumer ring of 32-bit slots. head and tail run
 * free (masked on access) and sit on their own cache lines.
 */
struct log_spsc {
	_Alignas(64) _Atomic uint32_t head; /* Next slot to fill: the pushing side. */
	_Alignas(64) _Atomic uint32_t tail; /* Next slot to take: the popping side. */
	_Alignas(64) uint32_t mask;
	uint32_t *slots;
};

/* Encrypted streams and the keyring (log_crypt.c). */
struct log_stream_key {
	uint32_t stream_id;
	uint64_t key_id;
};

#define LOG_CRYPT_DATA_KEYS 4u    /* Data keys a producer or reader keeps unwrapped. */

struct log_crypt;

/*
 * lock guards everything here; stream_count is also read without it (relaxed)
 * so that a log with no encrypted stream never takes the lock on a submit.
 */
struct log_keys {
	pthread_mutex_t lock;
	struct log_key keys[LOG_KEYS_MAX];
	uint32_t key_count;
	uint64_t generation;       /* Bumped by every log_keys_replace. */
	struct log_stream_key streams[LOG_ENCRYPTED_STREAMS_MAX];
	_Atomic uint32_t stream_count;
};

struct log_batch {
	uint8_t *buf;              /* batch_size bytes, 8-byte aligned; header first. */
	uint32_t used;             /* Bytes encoded, header included. */
	uint32_t record_count;
	uint64_t base_arrival_ns;
	uint64_t arrival_max_ns;
	uint32_t index;
	struct log_producer *producer;
	/* Set at submit (producer), read by the writer after the ring's acquire. */
	uint64_t shard_id;
	uint64_t cookie;
	uint64_t seq_expect;       /* log_batch_submit_at's seq_first, or UINT64_MAX. */
	uint64_t epoch;            /* log_batch_submit_at's epoch (LOG_EPOCH_NONE: no fence). */
	/* Set by the writer, read by the producer after the completion ring's acquire. */
	uint64_t seq_first;
	int32_t error;
	uint64_t durable_ns;
};

struct log_producer {
	struct log *log;
	uint32_t index;
	int event_fd;
	struct log_batch *batches;
	uint32_t *free_stack;      /* Producer-local pool of batch indices. */
	uint32_t free_count;
	struct log_spsc submit;    /* Producer -> writer: batch indices. */
	struct log_spsc done;      /* Writer -> producer: batch indices. */
	bool signal_due;           /* Writer-local: completions posted since the last signal. */
	_Atomic bool signal_armed; /* Set once by log_producer_event_fd(): signal this producer. */
	_Atomic bool napping;      /* Between log_producer_nap_begin() and _end(): signal it. */
	_Atomic bool open;
	struct log_crypt *crypt;   /* Its cipher contexts and data keys. */
};

/* One sealed or active segment's per-shard summary, kept per shard. */
struct log_shard_seg {
	uint64_t segment_no;
	uint64_t seq_first;
	uint64_t seq_end;          /* One past the last seq of the shard in the segment. */
	uint64_t arrival_max_ns;
};

struct log_seq_range {
	uint64_t first;
	uint64_t end;
};

/* A shard's replication state (log_epoch.c), allocated at its first epoch or cut. */
struct log_epoch_entry {
	uint64_t epoch;
	uint64_t seq_start;
};

struct log_truncation {
	uint64_t seq;              /* Batches from here on ... */
	uint64_t commit_before;    /* ... in windows below this commit id are cut. */
};

/*
 * log_index_entry.reserved in memory: a cut removed the batch (log_epoch.c).
 * Never on disk: seg-N.idx is written with it cleared, and recovery marks
 * again from log.epochs and the batches appended at the cut points.
 */
#define LOG_ENTRY_DEAD 1u

struct log_shard_repl {
	uint64_t promised;
	uint32_t epoch_count;
	uint32_t trunc_count;
	struct log_epoch_entry epochs[LOG_SHARD_EPOCHS_MAX]; /* Oldest first. */
	struct log_truncation truncs[LOG_SHARD_TRUNCATIONS_MAX]; /* Version 1 files: up to
							 * the maximum; since 2, one. */
	/*
	 * The newest cut kept [its point, kept_end) (log_shard_truncate_keep), stored
	 * with it (version 3): no epoch begins below it (log_epoch_begin). 0: none.
	 */
	uint64_t kept_end;
};

struct log_shard {
	uint64_t shard_id;
	bool used;
	bool closed;
	bool deleted;              /* Its stream was deleted: reads as unknown. */
	bool delete_hold;          /* Deleted, not yet in log.meta: appends refused. */
	bool close_pending;        /* Writer: refuses new batches until the request is done. */
	uint64_t seq_next;         /* Writer-owned: next seq to assign. */
	uint64_t seq_durable;      /* Under index_lock. */
	uint64_t seq_trim;
	uint64_t seq_watermark;    /* Under index_lock: readers stop here (UINT64_MAX: none). */
	bool trunc_hold;           /* A cut is not durable yet: appends refused (-EAGAIN). */
	/*
	 * Atomic. A cut that split a batch (log_shard_truncate_keep): its caller appends
	 * the records below the cut again, up to here. Until they are in the writer the
	 * shard takes only them, fenced epoch or not; until they are durable every other
	 * cut or settle waits. 0, or at most seq_next once they are taken: none pending.
	 */
	uint64_t keep_end;
	bool trunc_stuck;          /* Under index_lock: a cut's log.epochs failed to store. */
	uint64_t fence_epoch;      /* Atomic: the durable promise, read by the writer. */
	struct log_shard_repl *repl; /* Under index_lock; NULL until an epoch or a cut. */
	uint64_t last_arrival_ns;
	struct log_shard_seg *segs;
	uint32_t seg_count;
	uint32_t seg_cap;
	struct log_seq_range bad[LOG_SHARD_BAD_MAX];
	uint32_t bad_count;
};

enum log_ctl_kind {
	LOG_CTL_SHARD_CLOSE,
	LOG_CTL_STREAM_DELETE,
	LOG_CTL_SHARD_TRUNCATE,
};

/*
 * A control request the writer carries out between steps (it owns the
 * shards' pending sequence numbers): the caller waits for `done`.
 */
struct log_ctl {
	enum log_ctl_kind kind;
	uint64_t id;               /* Shard id, or stream id. */
	uint64_t seq;              /* Truncate: cut from here. */
	uint64_t epoch;            /* Truncate: refused once a newer one was promised. */
	bool keep;                 /* Truncate: the caller appends a split batch's rest again. */
	bool start;                /* Truncate: log_shard_start_at (the shard starts at seq). */
	bool hold;                 /* Truncate: cut made, log.epochs still to store. */
	bool accepted;             /* Writer: new batches refused, waiting for durability. */
	bool done;
	int32_t err;
	uint64_t seq_end;
};

#define LOG_CTL_MAX 16u

enum log_segment_state {
	LOG_SEGMENT_ACTIVE,
	LOG_SEGMENT_SEALED,
};

struct log_segment {
	uint64_t segment_no;
	uint32_t file;
	enum log_segment_state state;
	bool index_persisted;
	bool doubtful;             /* Recovery only: see recover_doubtful(). */
	bool resumable;            /* Recovery only: header sound, no corruption found in it
				    * (see recover_resume()). */
	bool corrupt;              /* Recovery only: its scan found corrupt durable data. */
	bool indexed;              /* Recovery only: entries from its index file, which vouches
				    * for every window in it (see resume_drop_open_window()). */
	uint64_t commit_first;
	uint64_t bytes_used;       /* End of the last durable window. */
	uint64_t written_end;      /* Writer: end of the furthest window submitted. */
	uint64_t arrival_max_ns;
	struct log_index_entry *entries; /* Durable batches, in segment order. */
	uint32_t entry_count;
	uint32_t entry_cap;
};

struct log_window_batch {
	struct log_batch *batch;
	uint32_t shard_index;
	uint32_t offset;           /* In the segment. */
	uint64_t arrival_max_ns;
};

struct log_window {
	uint8_t *buf;
	uint32_t cap;
	uint32_t used;             /* Bytes from buf[0], batches 8-aligned. */
	uint32_t last_batch_pos;
	struct log_segment *seg;   /* NULL: goes to a new segment, activated at submit. */
	uint64_t seg_offset;       /* Segment offset of buf[0]; 4 KiB aligned. */
	bool open;
	uint64_t commit_id;
	struct log_window_batch *batches;
	uint32_t batch_count;
	uint32_t batch_cap;
	uint64_t opened_ns;
	uint64_t ring_pos;         /* Free-running ring position of buf[0] (struct log_recent). */
	uint32_t ios_pending;
	int32_t error;
	bool in_flight;
	bool seals_segment;
	bool writes_done;          /* All its writes completed; the flush may be pending. */
	bool flushed;              /* Its flush completed: durable. */
	uint64_t flush_start_ns;   /* Monotonic: when its flush began (the sync histogram). */
};

/* Windows: one filling, up to two in flight (the older one flushing). */
#define LOG_WINDOWS 3u

struct log_stream_retention {
	uint32_t stream_id;
	uint32_t hours;
};

struct log_stream_deleted {
	uint32_t stream_id;
	uint32_t zero;
	uint64_t commit_before;
};

struct log_mem {
	void *addr;
	size_t size;
	bool huge;   /* From libhugetlbfs. */
	bool mapped; /* An anonymous mapping of its own (LOG_MAP_ALLOC_MIN and up). */
};

/* Durable windows that follow each other both in one segment and in the ring. */
struct log_recent_extent {
	uint64_t segment_no;
	uint64_t seg_start;        /* Segment offset of the first window. */
	uint64_t seg_end;          /* End of the last durable window. */
	uint64_t ring_pos;         /* Ring position of seg_start. */
};

/*
 * The window ring: windows are filled in place, one after another, in a
 * ring of `size` bytes, so what was written lately stays in memory after
 * it is durable, and log_read copies from here instead of the device.
 *
 * Positions run free (64 bits, never wrap); byte p lives at addr + p %
 * size. A window reserves `window_cap` contiguous bytes (never straddling
 * the end; if it would, it starts at the next multiple of `size`) and
 * consumes its used bytes, rounded to 4 KiB, when it is submitted.
 *
 * valid_from (seqlock-style; written by the writer only): bytes at
 * positions below it may have been overwritten. The writer raises it
 * before filling a newly reserved window, then a release fence; a reader
 * checks it, copies, issues an acquire fence and checks it again: a copy
 * that raced with the writer fails the second check and the reader goes
 * to the device. (The copy itself is a plain memcpy racing with plain
 * stores: it is the kernel's seqlock pattern, ordered by these fences on
 * x86-64 and AArch64; the copied batch is CRC-checked as well.)
 *
 * extents: which durable (segment, offset) ranges sit where in the ring,
 * written by the writer in window_commit and read by readers, both under
 * index_lock, together with the index entries, so a reader never finds a
 * batch that is not durable.
 */
struct log_recent {
	struct log_mem mem;
	uint64_t size;
	uint64_t fill_pos;         /* Writer: where the next window goes. */
	_Atomic uint64_t valid_from;
	struct log_recent_extent extents[LOG_RECENT_EXTENTS]; /* Under index_lock. */
	uint32_t extent_count;     /* Under index_lock. */
	uint32_t extent_last;      /* Under index_lock: slot of the newest extent. */
};

struct log {
	struct log_config config;
	char dir_path[4096];
	struct log_io *io;
	bool io_owned;
	uint64_t log_id;
	uint32_t window_cap;

	/* Producers. */
	struct log_producer *producers;
	_Atomic uint32_t producer_count;
	pthread_mutex_t producer_lock;
	struct log_mem batch_mem;

	/* Writer. */
	struct log_window windows[LOG_WINDOWS];
	uint32_t window_fill;      /* Index of the filling window. */
	uint32_t flight[2];        /* Windows in flight, oldest first. */
	uint32_t flight_count;
	uint32_t flush_inline_max; /* LOG_FLUSH_INLINE_MAX; the sim test varies it. */
	struct log_recent recent;  /* The windows' memory; serves recent reads. */
	struct log_segment *active;
	uint64_t commit_next;
	uint64_t commit_durable;   /* Writer: newest window known durable (0: none). */
	_Atomic bool stop;
	_Atomic bool writer_sleeping;
	int doorbell_fd;
	int durable_fd;            /* log_durable_event_fd(): a window became durable. */
	_Atomic bool durable_armed; /* Set once by log_durable_event_fd(): signal it. */
	bool durable_due;          /* Writer-local: a window committed since the last signal. */
	pthread_t writer_thread;
	bool writer_started;
	_Atomic int32_t failed;    /* 0, or the fail-stop errno (negative). */
	bool enospc;               /* Writer: last window hit ENOSPC; retry later. */
	uint64_t enospc_retry_ns;  /* Monotonic (the clock writer steps are given). */
	uint64_t mono_ns;          /* Writer: `now` of the current step. */
	uint32_t drain_first;      /* Writer: producer drained first in this step. */
	uint64_t window_wait_ns;   /* Writer: the adaptive window's wait now (log_writer.c). */
	bool disk_freed;           /* Writer: the last window in flight retired since the
				    * producers were last drained. */
	uint64_t busy_since_ns;    /* Writer: a window went with none in flight, ... */
	uint64_t busy_ns;          /* ... and the disk's last busy period lasted this long; */
	uint64_t idle_since_ns;    /* ... it has been free since (the adaptive window's signal). */

	/* Index: guarded by index_lock. */
	pthread_mutex_t index_lock;
	pthread_rwlock_t segments_rw; /* Readers hold it shared across preads. */
	struct log_shard *shards;
	uint32_t *shard_slots;     /* Open addressing: shard index + 1, 0 = empty. */
	uint32_t shard_slot_mask;
	uint32_t shard_count;
	struct log_segment *segments[LOG_SEGMENTS_MAX]; /* Ordered by segment_no. */
	uint32_t segment_count;
	struct log_stream_retention retention[LOG_STREAMS_RETENTION_MAX];
	uint32_t retention_count;
	struct log_stream_deleted deleted[LOG_DELETED_MAX];
	uint32_t deleted_count;
	pthread_mutex_t meta_lock;
	uint64_t *shards_loaded;   /* log.meta's {shard_id, seq_trim, seq_end}, for recovery. */
	uint32_t shards_loaded_count;

	/* Spares and seals: guarded by prep_lock. */
	pthread_mutex_t prep_lock;
	pthread_cond_t prep_cond;
	struct log_segment *spares[LOG_SPARES_MAX];
	uint32_t spares_target;
	uint32_t spare_count;
	uint64_t segment_no_next;
	struct log_segment *seal_queue[LOG_SEGMENTS_MAX];
	uint32_t seal_count;
	pthread_t prep_thread;
	bool prep_started;
	bool prep_stop;
	int32_t prep_error;

	/* Control requests: guarded by ctl_lock; ctl_pending tells the writer to look. */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	struct log_ctl *ctl[LOG_CTL_MAX];
	uint32_t ctl_count;
	_Atomic bool ctl_pending;

	/* Encryption at rest: keyring and encrypted streams (log_crypt.c). */
	struct log_keys keys;

	/* Statistics: written by one thread each, read with relaxed loads. */
	struct log_stats stats;
};

/* log.c */
void log_stat_add(uint64_t *counter, uint64_t value);
int log_mem_alloc(struct log_mem *mem, size_t size);
void log_mem_free(struct log_mem *mem);
void log_fail(struct log *log, int err);

/* log_spsc (log_producer.c) */
bool log_spsc_push(struct log_spsc *ring, uint32_t value);
bool log_spsc_pop(struct log_spsc *ring, uint32_t *value_out);
bool log_spsc_empty(struct log_spsc *ring);
bool log_spsc_full(struct log_spsc *ring);
bool log_spsc_peek(struct log_spsc *ring, uint32_t *value_out);
int log_producers_init(struct log *log);
void log_producers_fini(struct log *log);

/* log_shard.c (callers hold index_lock unless noted) */
int log_shard_table_init(struct log *log);
void log_shard_table_fini(struct log *log);
struct log_shard *log_shard_find(struct log *log, uint64_t shard_id);
struct log_shard *log_shard_get(struct log *log, uint64_t shard_id);
int log_shard_note_batch(struct log *log, struct log_shard *shard, uint64_t segment_no,
			 const struct log_index_entry *entry);
void log_shard_mark_bad(struct log_shard *shard, uint64_t first, uint64_t end);
bool log_stream_deleted_before(const struct log *log, uint64_t shard_id, uint64_t commit_id);

/* log_segment.c */
void log_segment_name(uint64_t segment_no, const char *ext, char *buf, size_t size);
int log_segment_entry_add(struct log_segment *seg, const struct log_index_entry *entry);
/* Same batch (all but arrival_max_ns, which a walk derives and may not reproduce). */
bool log_index_entry_same(const struct log_index_entry *a, const struct log_index_entry *b);
struct log_segment *log_segment_find(struct log *log, uint64_t segment_no);
int log_segment_list_add(struct log *log, struct log_segment *seg);
void log_segment_free(struct log *log, struct log_segment *seg);
int log_segment_prepare(struct log *log);
struct log_segment *log_segment_take_spare(struct log *log, bool wait);
int log_segment_index_write(struct log *log, struct log_segment *seg);
int log_segment_index_read(struct log *log, struct log_segment *seg);
void log_segment_seal_request(struct log *log, struct log_segment *seg);
int log_segments_run_seals(struct log *log);
int log_prep_start(struct log *log);
void log_prep_stop(struct log *log);

/* log_recover.c */
int log_recover(struct log *log);
int log_probe_segment_size(struct log_io *io, uint64_t *size_out);
int log_segment_read_all(struct log *log, struct log_segment *seg, struct log_mem *image);
int log_segment_scan_image(struct log *log, struct log_segment *seg, const uint8_t *image,
			   uint32_t *corruptions_out, bool *torn_out);

/* log_writer.c */
int log_writer_start(struct log *log);
void log_writer_stop(struct log *log);
int log_windows_init(struct log *log);
void log_writer_doorbell(struct log *log);
int log_ctl_run(struct log *log, struct log_ctl *req);
int log_writer_step_forced(struct log *log);
void log_ctl_process(struct log *log);

/* log_crypt.c */
int log_keys_init(struct log_keys *keys);
void log_keys_fini(struct log_keys *keys);
int log_crypt_open(struct log_crypt **crypt_out);
void log_crypt_close(struct log_crypt *crypt);
/*
 * Producer, at submit: encrypts the batch in place and appends its trailer
 * when its stream is encrypted (*flags_out = LOG_BATCH_F_ENCRYPTED), else
 * leaves it alone (*flags_out = 0). -ENOKEY, -EKEYREVOKED, -EIO: not taken.
 */
int log_batch_encrypt(struct log *log, struct log_crypt *crypt, struct log_batch *batch,
		      uint32_t *flags_out);
/*
 * Reader, on a checked batch in its own buffer: decrypts in place (nothing
 * to do for a plain batch) and checks the record framing. -ENOKEY,
 * -EKEYREVOKED, -EKEYREJECTED (log.h), -EBADMSG (altered bytes).
 */
int log_batch_decrypt(struct log *log, struct log_crypt *crypt, uint8_t *batch);
/* An encrypted batch's latest arrival, from its trailer (readable without a key). */
uint64_t log_batch_trailer_arrival_max(const uint8_t *batch);

/* log_meta.c */
int log_meta_load_or_create(struct log *log);
int log_meta_store(struct log *log);
/* Reads a small file whole (at most size_max bytes, else -EBADMSG) and parses it. */
int log_file_load(struct log *log, uint32_t file, uint64_t size_max,
		  int (*parse)(struct log *log, const uint8_t *buf, size_t size));
/*
 * Replaces `name` atomically with what `build` makes under index_lock (its size, 0 when
 * out of memory): writes `tmp_name`, fsync, rename, fsync the directory. Any thread;
 * serialised by meta_lock.
 */
int log_file_store(struct log *log, size_t (*build)(struct log *log, uint8_t **buf_out),
		   const char *name, const char *tmp_name);

/* log_epoch.c (callers hold index_lock unless noted) */
/* Loads log.epochs into the shard table (recovery, before entries are replayed). */
int log_epochs_load(struct log *log);
/* Replaces log.epochs with the shards' current state (any thread, no lock held). */
int log_epochs_store(struct log *log);
/*
 * True for a batch cut by log_shard_truncate (its index entry stays, never served).
 * `shard` is the entry's (NULL: none): the read path has it, and pays one pointer test
 * for a shard that was never cut.
 */
bool log_entry_truncated(const struct log_shard *shard, const struct log_index_entry *e);
/* Recovery: a batch at `seq` below the shard's end (window commit_id), appended after a cut there. */
int log_recover_cut(struct log *log, struct log_shard *shard, uint64_t seq, uint64_t commit_id);
/* Where readers of the shard stop: the durable end or the replicated watermark. */
uint64_t log_shard_readable_end(const struct log_shard *shard);
/* The watermark a new or reset shard starts with (watermark_gated). */
uint64_t log_shard_watermark_initial(const struct log *log);
/* Writer: one step of a truncation request. Returns true when done. */
bool log_ctl_truncate_step(struct log *log, struct log_ctl *req);

#endif /* SLUICE_LOG_INTERNAL_H */
