/*
 * log.h - the durable record log: the only header other folders include.
 *
 * One log is one directory on an NVMe device. Callers on other threads
 * (dataplane workers, the API server) build record batches for one shard and
 * hand them to the log's writer thread through their own single-producer
 * ring (a struct log_producer each). The writer assigns per-shard sequence
 * numbers, packs batches into group-commit windows, writes them with io_uring
 * and O_DIRECT, makes them durable, then posts one completion per batch to
 * the producer's completion ring. A record is readable (log_read) only once
 * its batch is durable.
 *
 * Shard ids are chosen by the control plane: LOG_SHARD_ID(stream_id, shard_index).
 * Sequence numbers are per shard, start at 0 and increase by one per record.
 *
 * Memory: log_open() allocates the writer's window ring (read_cache_bytes,
 *   which also serves recent reads) and every producer's batch pool; the
 *   index (48 B per retained batch, a few bytes per shard and segment)
 *   grows with retained data (docs/LOG_FORMAT.md, "Memory").
 * Threads: a log_producer belongs to one thread; a log_reader to one thread;
 *   log_shard_* , log_retention_* and log_stats_read may be called from any
 *   thread (they take the log's control lock, never held on the write path).
 * Errors: functions returning int return 0 or a negative errno.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hist.h"
#include "common/limits.h"

#define LOG_SHARD_ID(stream_id, shard_index) \
	(((uint64_t)(uint32_t)(stream_id) << 32) | (uint32_t)(shard_index))
#define LOG_SHARD_STREAM(shard_id) ((uint32_t)((shard_id) >> 32))
#define LOG_SHARD_INDEX(shard_id) ((uint32_t)(shard_id))

struct log;
struct log_producer;
struct log_batch;
struct log_reader;
struct log_io; /* I/O backend (io_uring, or the simulated disk in tests); see log_io.h. */

/*
 * Bounds of struct log_config: the only place they are written down. sluiced's
 * configuration table (control/config.c) is built from them, and --check-config
 * runs log_config_check() itself, so a value the log refuses is refused there first.
 */
#define LOG_SEGMENT_SIZE_UNIT (1ull << 20)          /* Segment sizes are whole MiB ... */
#define LOG_SEGMENT_SIZE_MIN LOG_SEGMENT_SIZE_UNIT
/* ... below 4 GiB: segment offsets are 32-bit in the index (docs/LOG_FORMAT.md). */
#define LOG_SEGMENT_SIZE_MAX ((4ull << 30) - LOG_SEGMENT_SIZE_UNIT)
#define LOG_BATCH_SIZE_MIN 256u
/* A batch can hold the largest record (SLUICE_RECORD_DATA_SIZE_LARGE_MAX) and its headers. */
#define LOG_BATCH_SIZE_MAX (12u << 20)
#define LOG_BATCHES_PER_SEGMENT_MIN 4u      /* batch_size <= segment_size / this. */
#define LOG_COMMIT_WINDOW_BYTES_MIN 4096u   /* One block (LOG_BLOCK_SIZE). */
#define LOG_COMMIT_WINDOW_BYTES_MAX (16u << 20)
#define LOG_WINDOWS_PER_SEGMENT_MIN 2u      /* commit_window_bytes <= segment_size / this. */
#define LOG_COMMIT_WINDOW_US_MAX 1000000u   /* A window waits at most a second. */
#define LOG_PRODUCERS_MAX 1024u
#define LOG_BATCHES_PER_PRODUCER_MAX 65536u
#define LOG_READ_CACHE_BYTES_MAX (16ull << 30)
#define LOG_DIR_PATH_SIZE_MAX 4000u
/*
 * How long one hour of a stream's retention lasts when retention decides what has
 * expired (log_config.retention_hour_ms): an hour; lowered only to test expiry (a
 * 24 h stream then keeps its records 24 x this). Nothing else in the log scales.
 */
#define LOG_RETENTION_HOUR_MS_DEFAULT 3600000u
/* A 24 h stream then keeps 2.4 s: longer than a retention run's period can be (1 s). */
#define LOG_RETENTION_HOUR_MS_MIN 100u
#define LOG_RETENTION_HOUR_MS_MAX LOG_RETENTION_HOUR_MS_DEFAULT

struct log_config {
	const char *dir_path;          /* Directory owned by this log; created if missing. */
	uint64_t segment_size;         /* Bytes per segment file, multiple of 1 MiB. */
	uint32_t commit_window_us;     /* A group-commit window closes after this long
					* (0: as soon as no window is in flight, or
					* adaptively, below) ... */
	uint64_t commit_window_bytes;  /* ... or once this many bytes are pending. */
	uint32_t commit_window_adaptive_us; /* With commit_window_us 0: the wait grows toward
					* this while windows follow each other back to back
					* and falls to 0 when they do not (0: never waits). */
	uint32_t producers_max;        /* log_producer_open() calls allowed. */
	uint32_t batches_per_producer; /* Batches a producer may have in flight. */
	uint32_t batch_size;           /* Bytes of one encoded batch (records + headers). */
	uint32_t shards_max;           /* Distinct shard ids the log tracks. */
	struct log_io *io;             /* NULL: io_uring on real files. */
	bool writer_thread;            /* true: log_open starts the writer thread.
					* false: the caller drives log_writer_step(). */
	uint32_t segments_prepared;    /* Pre-written spare segments kept ready (0: 2). */
	bool read_only;                /* Inspect only (tools): recovery changes no file,
					* no writer, producers refused (-EROFS);
					* segment_size 0 = as found on disk. */
	uint64_t read_cache_bytes;     /* Memory holding the most recently written windows,
					* from which log_read serves durable data without
					* device I/O (at least 4 windows are always kept). */
	uint32_t retention_hour_ms;    /* One hour of retention, for expiry: see
					* LOG_RETENTION_HOUR_MS_DEFAULT (0: an hour). */
	bool watermark_gated;          /* Replicated logs: every shard starts (also after a
					* restart) with a replicated watermark of 0, so readers
					* see nothing until log_shard_watermark_set() says what a
					* quorum holds. false: readers see the local durable end. */
};

/*
 * Fills `config` with the library's defaults: small batches and few producers,
 * sized for tests and tools. They are not sluiced's defaults: sluiced sets every
 * field from its configuration (docs/CONFIG.md, [log]).
 */
void log_config_default(struct log_config *config);

/*
 * The checks log_open() runs on a writable configuration: 0, or -EINVAL with
 * *field_out (when not NULL) naming the struct log_config field at fault
 * ("segment_size", ...), so that callers can name their own key for it.
 * Shard counts are bounded by SLUICE_SHARDS_MAX (common/limits.h).
 */
int log_config_check(const struct log_config *config, const char **field_out);

/* Opens (creating or recovering) the log in config->dir_path. */
int log_open(const struct log_config *config, struct log **log_out);
/* Stops the writer after completing everything submitted, then frees the log. */
void log_close(struct log *log);

/*
 * One step of the writer when config.writer_thread is false (tests and
 * simulations): drains producer rings, closes a window if due at `now_ns`,
 * reaps I/O, posts completions. Returns the amount of work done (0 = idle)
 * or a negative errno once the log has failed.
 */
int log_writer_step(struct log *log, uint64_t now_ns);

/* ---- Appending ---------------------------------------------------------- */

int log_producer_open(struct log *log, struct log_producer **producer_out);
void log_producer_close(struct log_producer *producer);

/*
 * An eventfd that becomes readable when completions are posted (for epoll users).
 * The first call arms it: until then the writer signals nothing and
 * log_completions_poll() makes no system call, which is what polling callers
 * (dataplane workers) want. Poll once after arming: earlier postings were not signalled.
 */
int log_producer_event_fd(struct log_producer *producer);

/*
 * For a caller that polls and naps now and then (dataplane workers): the same eventfd,
 * but signalled only during a nap, so a window's completions cost no eventfd write
 * (writer) and no read (log_completions_poll) while the caller polls. Does not arm
 * log_producer_event_fd()'s signalling. A nap: if log_producer_nap_begin() returns
 * true (false: completions are waiting, take them instead), sleep on the fd, then call
 * log_producer_nap_end() (which clears it).
 */
int log_producer_nap_fd(struct log_producer *producer);
bool log_producer_nap_begin(struct log_producer *producer);
void log_producer_nap_end(struct log_producer *producer);

struct log_record_in {
	const void *partition_key;           /* 1 .. SLUICE_PARTITION_KEY_SIZE_MAX bytes. */
	uint16_t partition_key_size;
	const uint8_t *explicit_hash_key;    /* 16 bytes big-endian, or NULL. */
	const void *data;                    /* 0 .. SLUICE_RECORD_DATA_SIZE_LARGE_MAX bytes. */
	uint32_t data_size;
	uint64_t arrival_ns;                 /* Wall-clock arrival, ns since the epoch. */
};

/* A free batch from the producer's pool, or NULL when all are in flight (back-pressure). */
struct log_batch *log_batch_get(struct log_producer *producer);
/*
 * Encodes one record into the batch. Returns 0; -ENOSPC when the batch has
 * no room left for it (submit and take a new one); -EMSGSIZE when the record
 * could never fit in an empty batch; -EINVAL for a key or size out of bounds.
 */
int log_batch_add(struct log_batch *batch, const struct log_record_in *record);
/*
 * The smallest batch_size whose empty batch takes a record of `data_size` bytes
 * with the largest partition key and an explicit hash key (what log_batch_add()
 * refuses with -EMSGSIZE otherwise): for checking a record size limit against
 * the configuration before records of that size arrive.
 */
uint32_t log_batch_size_for_record(uint32_t data_size);
/*
 * Appends `count` records already in the log's encoding (common/record_wire.h)
 * with one copy: a shard-grouped frame's record block. Each record's arrival
 * delta must be 0, so it arrives with the batch's base arrival (arrival_ns
 * when the batch is empty). The caller has checked every record (the frame
 * decoder does); this function trusts them. Takes the longest prefix of whole
 * records that fits: returns how many (then *size_taken bytes), 0 when not
 * even the first fits (submit, then add to an empty batch), or -EMSGSIZE when
 * the first could never fit in an empty batch.
 */
int log_batch_add_encoded(struct log_batch *batch, const uint8_t *records, uint32_t size,
			  uint32_t count, uint64_t arrival_ns, uint32_t *size_taken);
/* The base arrival of a batch's records (valid once it holds one). */
uint64_t log_batch_base_arrival_ns(const struct log_batch *batch);
uint32_t log_batch_record_count(const struct log_batch *batch);
/* Batches free in the producer's pool now (its own thread: the pool is producer-local). */
uint32_t log_batches_free(const struct log_producer *producer);
/* Returns an unsubmitted batch to the pool. */
void log_batch_put(struct log_producer *producer, struct log_batch *batch);

/*
 * Hands the batch to the writer; ownership moves to the log until its
 * completion is polled. `cookie` comes back in the completion. Returns 0 or
 * -EAGAIN when the producer's ring is full (the caller still owns the batch).
 */
int log_batch_submit(struct log_producer *producer, struct log_batch *batch,
		     uint64_t shard_id, uint64_t cookie);

struct log_completion {
	uint64_t cookie;
	uint64_t shard_id;
	uint64_t seq_first;     /* Records got seq_first .. seq_first + record_count - 1. */
	uint32_t record_count;
	int32_t error;          /* 0 (durable); -ENOSPC (disk full: throttle and retry);
				 * -EPIPE (shard closed); -EIO (log failed, fail-stop). */
	uint64_t durable_ns;    /* Wall clock when the batch became durable. */
};

/* Copies up to `count` completions out; their batches return to the pool. */
uint32_t log_completions_poll(struct log_producer *producer,
			      struct log_completion *completions_out, uint32_t count);

/*
 * An eventfd that becomes readable after the writer published a durable window: some
 * shard's seq_durable advanced, whichever producer (API or dataplane) wrote it. For a
 * reader that follows shards as they grow (SubscribeToShard) without polling: read the
 * eventfd to clear it, then log_shard_info() / log_read() the shards it follows. The
 * first call arms it; until then the writer signals nothing. Signalled at most once per
 * writer step, after the window's index and watermarks are visible to log_read().
 */
int log_durable_event_fd(struct log *log);

/* ---- Shards and retention ------------------------------------------------ */

struct log_shard_info {
	uint64_t seq_trim;         /* First readable sequence number (trim horizon). */
	uint64_t seq_durable;      /* Every seq below this is durable and readable (never past
				    * the replicated watermark when one is set). */
	uint64_t seq_local;        /* The local durable end, watermark or not (replication). */
	bool closed;               /* No more appends; seq_durable is the ending seq + 1. */
	uint64_t last_arrival_ns;  /* Arrival time of the newest durable record, 0 if none. */
};

/* A shard that never received a record reads as empty and open (0, 0, false, 0). */
int log_shard_info(struct log *log, uint64_t shard_id, struct log_shard_info *info_out);

/*
 * The first known corrupt range of the shard that ends after `seq` (a range log_read
 * answered -EBADMSG for, or recovery reported): [*first_out, *end_out). -ENOENT if none.
 * Lets a reader step over data that is lost, as AWS readers never meet any.
 */
int log_shard_bad_range(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *first_out,
			uint64_t *end_out);

/*
 * Closes a shard: every batch the writer accepted before the call is durable
 * first; later appends complete with -EPIPE. Stores the last sequence number
 * (or UINT64_MAX for a shard that never had a record) in *seq_end_out.
 */
int log_shard_close(struct log *log, uint64_t shard_id, uint64_t *seq_end_out);

/* Copies up to `count` known shard ids (any order); returns how many the log has. */
uint32_t log_shard_list(struct log *log, uint64_t *ids_out, uint32_t count);

/* Forgets all shards of a stream (DeleteStream); their data is reclaimed with its segments. */
int log_stream_delete(struct log *log, uint32_t stream_id);

/* Retention of a stream's records, 24 .. 8760 hours. Default 24. */
int log_retention_set(struct log *log, uint32_t stream_id, uint32_t hours);
/*
 * How long `hours` of a stream's retention last: hours x retention_hour_ms (an hour
 * each unless lowered to test expiry). Retention trims by it; whatever else ages out
 * with retention (ListShards' closed shards, Firehose's retention watch) uses it too.
 */
uint64_t log_retention_ms(const struct log *log, uint32_t hours);
/* Advances trim horizons and deletes or recycles segments past every stream's retention. */
int log_retention_run(struct log *log, uint64_t now_ns);

/* ---- Reading ------------------------------------------------------------- */

int log_reader_open(struct log *log, struct log_reader **reader_out);
void log_reader_close(struct log_reader *reader);

struct log_record_out {
	uint64_t seq;
	uint64_t arrival_ns;
	const uint8_t *partition_key;
	uint16_t partition_key_size;
	bool has_explicit_hash_key;
	uint8_t explicit_hash_key[16];
	const uint8_t *data;       /* Valid only during the callback. */
	uint32_t data_size;
	bool encrypted;            /* Stored encrypted (its stream's encryption was on). */
};

/* Returns 0 to go on, 1 to stop after this record, or a negative errno to abort. */
typedef int (*log_read_fn)(void *arg, const struct log_record_out *record);

/*
 * Calls `fn` for the shard's durable records from `seq_from` in order, at most
 * `records_max` records and (after the first) `bytes_max` bytes of data.
 * *seq_next_out is the sequence number to continue from. Returns the number
 * of records delivered; -ERANGE when seq_from is below the trim horizon;
 * -EBADMSG when durable data in the range is corrupt (reported, never served).
 */
int log_read(struct log_reader *reader, uint64_t shard_id, uint64_t seq_from,
	     uint32_t records_max, uint64_t bytes_max, log_read_fn fn, void *arg,
	     uint64_t *seq_next_out);

/* First sequence number whose arrival time is >= ts_ns (seq_durable if none). */
int log_seek_time(struct log_reader *reader, uint64_t shard_id, uint64_t ts_ns,
		  uint64_t *seq_out);

/* ---- Replication primitives (replica/) ----------------------------------- */

/*
 * A follower's log holds its leader's records under the leader's sequence numbers
 * (log_batch_submit_at). Every shard keeps the history of its leader epochs, Kafka's
 * leader-epoch cache: (epoch, first seq written in it), plus the highest epoch promised
 * (a follower refuses anything older). After a failover a follower cuts its divergent
 * tail (log_shard_truncate), durably: the cut records never come back, also after a
 * crash. A replicated watermark hides what a quorum does not hold yet. The epoch history
 * and the truncations live in log.epochs (docs/LOG_FORMAT.md), replaced atomically on
 * every change, never on the write path. Epoch 0 (LOG_EPOCH_NONE) means "no epoch".
 */
#define LOG_EPOCH_NONE 0u
#define LOG_SHARD_EPOCHS_MAX 64u      /* Epochs remembered per shard (older ones forgotten). */
/*
 * Tail cuts a version 1 log.epochs may hold per shard (read only). Since version 2 a shard
 * remembers its newest cut alone, however often it is cut (docs/LOG_FORMAT.md).
 */
#define LOG_SHARD_TRUNCATIONS_MAX 32u

/*
 * Like log_batch_submit, but the batch must get exactly `seq_first`: its completion
 * fails with -EILSEQ when seq_first is above the shard's next sequence number (a gap)
 * and -EEXIST when below it (an overlap). Batches submitted this way may be in flight
 * one after another: each continues the one before. `epoch` is the leader epoch the
 * batch comes from: it fails with -ESTALE if the shard promised a higher one before
 * the writer took it (the fence is checked by the writer, so a promise and this
 * append cannot race). LOG_EPOCH_NONE: not checked.
 */
int log_batch_submit_at(struct log_producer *producer, struct log_batch *batch,
			uint64_t shard_id, uint64_t seq_first, uint64_t epoch, uint64_t cookie);

struct log_epoch_info {
	uint64_t epoch_last;       /* Newest epoch with records (or begun), LOG_EPOCH_NONE if none. */
	uint64_t epoch_last_start; /* Its first sequence number. */
	uint64_t promised;         /* Highest epoch promised or begun: older ones are refused. */
	uint32_t count;            /* Epochs remembered. */
	uint64_t kept_end;         /* The newest cut kept [cut, kept_end) (log_shard_truncate_keep);
				    * below it, log_epoch_begin refuses (-ENODATA). 0: none. */
};

int log_epoch_info(struct log *log, uint64_t shard_id, struct log_epoch_info *info_out);
/*
 * Records durably that `epoch` starts at `seq_start` (a new leader, at its durable end;
 * a follower, at the first record it takes from a leader of that epoch). Also promises
 * it. -ESTALE when epoch is below the promised one or below the newest epoch begun;
 * -EINVAL when seq_start is below the newest epoch's start or epoch is LOG_EPOCH_NONE.
 * Beginning the newest epoch again at the same start is a no-op. -ENODATA when
 * seq_start is below the end of the range the shard's newest cut kept
 * (log_shard_truncate_keep) and did not hold again: this log held those records
 * (a leader may have acknowledged them), so it must not lead without them.
 */
int log_epoch_begin(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start);
/*
 * An operator's unclean election (docs/CLUSTER.md "Unclean election"): like
 * log_epoch_begin, but it begins below the kept range too, and forgets that range
 * durably with it (the epoch's records take those numbers; the kept records are
 * given up: acknowledged ones among them are lost).
 */
int log_epoch_begin_unclean(struct log *log, uint64_t shard_id, uint64_t epoch,
			    uint64_t seq_start);
/*
 * A follower copies its leader's history: like log_epoch_begin, but the epoch may be
 * below the promise (records of an older epoch, caught up from the current leader) and
 * it promises nothing.
 */
int log_epoch_record(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t seq_start);
/* Durably refuses every epoch below `epoch` from now on. -ESTALE if a higher one was promised. */
int log_epoch_promise(struct log *log, uint64_t shard_id, uint64_t epoch);
/*
 * Kafka's OffsetsForLeaderEpoch: the largest epoch <= `epoch` this log knows
 * (*epoch_out, LOG_EPOCH_NONE if none) and the end of its records: the start of the
 * next epoch, or the local durable end for the newest one (for LOG_EPOCH_NONE: the
 * start of the first epoch).
 */
int log_epoch_end(struct log *log, uint64_t shard_id, uint64_t epoch, uint64_t *epoch_out,
		  uint64_t *seq_end_out);
/*
 * The epoch whose records hold `seq` (LOG_EPOCH_NONE before the first epoch) and where
 * its range ends (the next epoch's start, UINT64_MAX for the newest): a leader ships each
 * record with the epoch it was written in.
 */
int log_epoch_at(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *epoch_out,
		 uint64_t *seq_end_out);
/*
 * Cuts the shard's tail from `seq` on, durably (recovery never brings it back). The cut
 * falls on a batch boundary: it starts at the batch holding `seq`, so *seq_end_out (the
 * new end, where appends continue) may be below seq; the caller fetches the difference
 * again. Epochs starting at or after the new end are forgotten (also when `seq` is the
 * durable end: epochs begun there never wrote a record). Appends submitted while
 * it runs complete with -EAGAIN. -ERANGE when the cut would go below the trim horizon.
 * A closed shard is cut too and stays closed (a replica copy's unacknowledged tail goes:
 * cluster resharding); log_shard_truncate_keep on one is -EPIPE. A shard can be cut any
 * number of times. If storing log.epochs fails, the shard refuses appends (-EAGAIN) and later cuts and settles
 * (-EIO) until the log is reopened. A cut or settle waits for another one's work on
 * the shard (its log.epochs, the re-append of log_shard_truncate_keep) to finish.
 */
int log_shard_truncate(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *seq_end_out);
/*
 * log_shard_truncate for a follower of `epoch`: -ESTALE, cutting nothing, once the shard
 * promised a newer epoch. Checked under the lock the cut and log_epoch_* share, so an
 * epoch this node began at its end meanwhile (it was placed as the shard's new leader)
 * is never forgotten by the cut of a handshake that epoch deposed.
 */
int log_shard_truncate_in(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
			  uint64_t *seq_end_out);
/*
 * log_shard_truncate_in for a cut inside a batch whose records [*seq_end_out, seq) the
 * caller appends again at once, at the same numbers (log_batch_submit_at, batches
 * within that range, any epoch). In the cut's writer step the shard starts to take
 * only them, fenced epoch or not, and every other cut or settle waits until they are
 * durable: a new leader (promise, settle, begin) starts its epoch after them, never
 * at the cut point. Every other append meanwhile completes -EAGAIN. A caller that
 * cannot append them all calls log_shard_keep_abandon. The range's end is stored with
 * the cut (log.epochs version 3): after a crash or an abandon, until the shard holds
 * records up to it again (from its leader), log_epoch_begin below it is refused.
 */
int log_shard_truncate_keep(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
			    uint64_t *seq_end_out);
/*
 * Kafka's log start offset, for a follower whose end is at or below its leader's first
 * retained record `seq` (the leader's trim horizon: what lies below expired there).
 * Once every batch the writer took for the shard is durable, the shard starts at `seq`:
 * what it holds is dropped as retention drops it (log_read below `seq`: -ERANGE), its
 * next sequence number is `seq` (log_batch_submit_at continues there), and its epoch
 * history and cut are forgotten (they describe records below `seq`; the leader's
 * APPENDs record the epochs from `seq` on). The promise stays, and so does a kept
 * range (log_shard_truncate_keep) ending above `seq`: no lead without those records.
 * Stored before the call returns (appends meanwhile: -EAGAIN): log.meta (the horizon),
 * then log.epochs. A crash before the first leaves the shard as it was; between the two, it
 * starts at `seq` with its old history, and starting at `seq` again clears it.
 * *seq_end_out: the shard's end, `seq`. A shard ending above `seq` is left alone
 * (*seq_end_out: its end). -ESTALE, changing nothing, once the shard promised an epoch
 * newer than `epoch` (LOG_EPOCH_NONE: not checked); -EPIPE for a closed shard.
 */
int log_shard_start_at(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t epoch,
		       uint64_t *seq_end_out);
/* Gives up a log_shard_truncate_keep's re-append: the shard ends where it is. */
void log_shard_keep_abandon(struct log *log, uint64_t shard_id);
/*
 * Waits until every batch the writer took for the shard is durable (or failed) and
 * returns the local durable end; appends submitted meanwhile complete with -EAGAIN.
 * Cuts nothing and forgets no epoch (one begun at the end stays). A new leader settles
 * before its epoch begins at the end; a follower before it compares ends in the epoch
 * handshake: a batch of an older LEAD the writer took before the new promise would
 * land after the end the follower reports.
 */
int log_shard_settle(struct log *log, uint64_t shard_id, uint64_t *seq_end_out);
/* Where log_shard_truncate(seq) would cut now (<= seq): to keep [*seq_out, seq) first. */
int log_shard_cut_point(struct log *log, uint64_t shard_id, uint64_t seq, uint64_t *seq_out);
/*
 * The replicated watermark: readers (log_read, log_seek_time, log_shard_info's
 * seq_durable) see no record at or above `seq`, whatever is durable locally.
 * UINT64_MAX removes it. Kept in memory only (see watermark_gated).
 */
int log_shard_watermark_set(struct log *log, uint64_t shard_id, uint64_t seq);
/* The leader's shipping reader: log_read on it ignores the watermark (local durable end). */
void log_reader_past_watermark(struct log_reader *reader);

/* ---- Encryption at rest ------------------------------------------------- */

/*
 * A stream with a key set (log_stream_encryption_set) has every batch
 * submitted from then on encrypted with AES-256-GCM under a data key of the
 * producer's, wrapped (AES key wrap, RFC 3394) by the newest version of that
 * key; reads decrypt transparently (docs/LOG_FORMAT.md, "Encrypted batch").
 * Keys are identified by a 64-bit id (the caller's choice, stable across
 * restarts: sluiced hashes the keyring's key id) and a version; the log
 * keeps them in memory only and never writes their material anywhere.
 *
 * Errors on a read of an encrypted batch (never ciphertext as data):
 *   -ENOKEY        the batch's key id/version is not in the keyring
 *   -EKEYREVOKED   it is there but disabled
 *   -EKEYREJECTED  it is there but does not unwrap the batch's data key
 *                  (a different key under the same id and version)
 * log_batch_submit answers -ENOKEY / -EKEYREVOKED the same way for the
 * stream's newest key version (the batch is not taken).
 */
#define LOG_KEY_SIZE 32u         /* AES-256. */
#define LOG_KEYS_MAX 1024u       /* Key versions in the keyring. */
#define LOG_ENCRYPTED_STREAMS_MAX SLUICE_STREAMS_MAX

struct log_key {
	uint64_t key_id;                 /* Not 0 (0 means "no encryption"). */
	uint32_t version;                /* New writes use the highest version of key_id. */
	bool enabled;
	uint8_t material[LOG_KEY_SIZE];
};

/*
 * Replaces the whole keyring (start-up and reload). Returns 0, or -EINVAL for
 * a key id of 0, a repeated (key_id, version) or more than LOG_KEYS_MAX keys.
 * Producers and readers pick the change up at their next batch.
 */
int log_keys_replace(struct log *log, const struct log_key *keys, uint32_t count);

/*
 * Encrypts the stream's batches submitted from now on under key_id (0: stop
 * encrypting; batches already written stay as they are). Not persisted: the
 * caller sets it again after every log_open. -ENOSPC when
 * LOG_ENCRYPTED_STREAMS_MAX streams are encrypted already.
 */
int log_stream_encryption_set(struct log *log, uint32_t stream_id, uint64_t key_id);

/* ---- Statistics ---------------------------------------------------------- */

struct log_stats {
	uint64_t batches_appended;
	uint64_t records_appended;
	uint64_t bytes_written;
	uint64_t commits;            /* Group-commit windows made durable. */
	uint64_t corruptions;        /* Bad batches found in durable data. */
	uint64_t torn_tails_cut;
	uint64_t enospc_errors;
	uint64_t io_errors;
	uint64_t segments_deleted;
	uint64_t segments_resumed;   /* Opens that continued the newest segment (log_recover.c). */
	uint64_t batches_encrypted;  /* Batches submitted encrypted (docs/LOG_FORMAT.md). */
	uint64_t decrypt_errors;     /* Reads refused for a missing, disabled or wrong key. */
	uint64_t reads_memory;       /* Batches log_read/log_seek_time took from the window ring, */
	uint64_t reads_cached;       /* ... through the page cache (sealed segments), */
	uint64_t reads_device;       /* ... with O_DIRECT (active segment, or a re-read). */
	struct hist window_bytes;    /* Committed window sizes (LOG_HIST_WINDOW_BASE_BYTES). */
	struct hist sync_ns;         /* Flush (fdatasync) of a window, ns (LOG_HIST_SYNC_BASE_NS). */
	uint64_t recovery_ns;        /* log_open's recovery of the directory took this long. */
	uint64_t windows_back_to_back; /* Windows whose first batch waited for the disk
					* (counted with commit_window_adaptive_us only). */
	uint64_t window_wait_ns;     /* The adaptive window's wait now (0: none or fixed). */
	uint64_t ctl_idle_waits;     /* Writer sleeps on its doorbell while a control request
				      * waited for what only another thread brings (a cut's
				      * kept records, another cut's log.epochs): not spinning. */
	uint32_t shards_active;
	bool failed;                 /* Fail-stop after EIO. */
	uint32_t segments_spare;     /* Pre-written segments ready for the writer. */
	uint32_t segments;           /* Segment files holding retained data (spares apart). */
};

/* Smallest histogram buckets of struct log_stats: 4 KiB .. 128 MiB, 8 us .. 262 ms. */
#define LOG_HIST_WINDOW_BASE_BYTES 4096u
#define LOG_HIST_SYNC_BASE_NS 8000u

void log_stats_read(struct log *log, struct log_stats *stats_out);

/* ---- Verification (sluice log verify) ----------------------------------- */

struct log_verify_report {
	uint64_t segments;           /* Segment files holding data. */
	uint64_t segments_sealed;    /* ... of which came with an index file. */
	uint64_t batches;
	uint64_t records;
	uint64_t bytes;              /* Batch bytes checked. */
	uint64_t shards;
	uint64_t crc_errors;         /* Indexed batches whose bytes do not check out. */
	uint64_t index_mismatches;   /* Index entries that disagree with a scan of the data. */
	uint64_t sequence_gaps;      /* Shard ranges missing inside retained data. */
	uint64_t corruptions;        /* Everything recovery reported (includes the above kinds). */
	uint64_t torn_tails;         /* Unacknowledged tails a reopen would cut. */
};

/* Called after each segment: bytes checked so far of `total`. */
typedef void (*log_verify_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Full read-only check of a log directory: every batch's CRCs, every
 * index file against a scan of its segment, sequence continuity per
 * shard. Returns 0 when clean, -EBADMSG when anything is corrupt (the
 * report says what), or another negative errno when it cannot be read.
 */
int log_verify(const char *dir_path, struct log_verify_report *report_out,
	       log_verify_progress_fn progress, void *arg);

#endif /* SLUICE_LOG_H */
