/*
 * sluice_producer.h - libsluice, the C producer library: sends records to a
 * Sluice appliance's ingest port over UDP or TCP (docs/PROTOCOL.md) and
 * reports, per record, its (shard, sequence number) or an error.
 *
 * Model: poll-driven, no threads of its own. The caller puts records, then
 * calls sluice_producer_poll() from its loop (or blocks in it): poll sends
 * batches that are due, reads ACKs, runs retry timers and calls the
 * completion callback, always on the caller's thread, inside poll, flush or
 * close. sluice_producer_fd() and sluice_producer_timeout_ms() let a caller
 * with its own event loop wait on the socket instead.
 *
 * Batching: records go to one of `lanes` by a hash of their partition key;
 * each lane fills one batch (closed when it reaches batch_records_max or
 * batch_size_max, or is linger_us old) and has at most one batch in flight,
 * so records with the same partition key are stored in put order, retries
 * included. A batch whose records all carry hash keys is sorted by hash key
 * (stably) when sealed, so the ACK needs one run per shard touched.
 *
 * Shard-grouped batches: given the stream's shard map
 * (sluice_producer_set_shard_map, from ListShards), lanes follow shards and
 * each batch holds one shard's records, sent as SHARD_RECORDS frames that the
 * appliance appends with one copy (no MD5, no routing per record). When a
 * NACK says the map moved (WRONG_SHARD), the batch is resent as a RECORDS
 * frame, later batches are RECORDS too, and sluice_producer_map_stale() says
 * so until a new map is given.
 *
 * Retries: over UDP a batch is resent when no answer came within the ack
 * timeout (datagrams get lost), with backoff. Over TCP the appliance answers
 * every frame it took, so a resend on a live connection tells it nothing and
 * only adds to its backlog: a batch is resent only on a new connection. A
 * connection is judged dead when nothing at all (no answer, no byte) came on
 * it for silence_timeout_ms while frames were owed an answer; it is then
 * closed, re-established, and every batch in flight resent in seq order.
 * Either way a record fails with -ETIMEDOUT only once it has waited
 * delivery_timeout_ms in total since it was put (Kafka's delivery.timeout.ms).
 *
 * Cluster (docs/CLUSTER.md "The dataplane in cluster mode"): `host` is an entry
 * node; a not_leader NACK names the shard's leader, and the batch is resent there
 * at once (later redirects of the same batch back off); with a shard map the
 * shard's later batches go there too, until a not_leader names another node, or
 * the leader is found dead, which sends them back to the entry node. UDP: one
 * socket serves every node; answers are taken only from the nodes it sent to; dead
 * is two sends in a row left unanswered (PRODUCER_LEADER_SILENT_SENDS: one late ACK
 * is not a dead leader). TCP: a connection per node, opened on the first redirect
 * there; dead is that connection failing or going silent (silence_timeout_ms), and
 * the batches in flight on it are resent to the entry node in seq order; an idle
 * redirect connection is closed (PRODUCER_NODE_IDLE_MS).
 *
 * Exactly once: each batch carries (producer_id, epoch, batch_seq); retries
 * resend the same batch, which the appliance stores at most once. At most
 * FRAME_DEDUP_WINDOW batches are unacknowledged and their seqs span less
 * than the window, so a retry always finds its batch in the appliance's
 * dedup window.
 *
 * Memory: everything is allocated in sluice_producer_open(): 2 * lanes
 * batch buffers of batch_size_max bytes plus their record tags. put() never
 * allocates; when the record's lane has a full batch and one in flight it
 * returns -EAGAIN: poll, then put again.
 *
 * Threads: a producer belongs to one thread at a time.
 * Errors: functions returning int return 0 (or a count) or a negative errno.
 */
#ifndef SLUICE_PRODUCER_H
#define SLUICE_PRODUCER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "protocol/frame.h"

/* Defaults of the limits below (sluice_producer_config_default()). */
#define SLUICE_DELIVERY_TIMEOUT_MS_DEFAULT 120000u  /* Kafka's delivery.timeout.ms. */
/*
 * TCP: silence that declares a connection dead. The appliance sends nothing
 * while its log is stalled (docs/PROTOCOL.md section 6), and durable ACKs
 * have been seen 20 s late under load, so this is generous (Kafka's
 * request.timeout.ms is 30 s too).
 */
#define SLUICE_TCP_SILENCE_MS_DEFAULT 30000u

/*
 * Cluster nodes one producer sends to at once (the entry node and the leaders
 * redirects named); over TCP a socket each: sluice_producer_pollfds() needs no more.
 */
#define SLUICE_PRODUCER_NODES_MAX 16u

struct sluice_producer;

enum sluice_transport {
	SLUICE_TRANSPORT_UDP = 0,
	SLUICE_TRANSPORT_TCP = 1,
};

/* The outcome of one record, passed to the completion callback. */
struct sluice_result {
	uint64_t tag;              /* The caller's tag from sluice_producer_put(). */
	int err;                   /* 0 stored, or a negative errno (table below). */
	uint8_t status;            /* enum frame_status of the batch's NACK, else OK. */
	bool position_known;       /* shard_index and seq are valid. */
	uint32_t shard_index;
	uint64_t seq;
};

/*
 * result->err:
 *   0            stored. position_known is false in ack mode RECEIVED and NONE,
 *                and for a replayed ACK that lost its detail (FRAME_F_NO_DETAIL).
 *   -ENOENT      unknown stream              -EMSGSIZE  record too large
 *   -EINVAL      malformed (a library bug)    -EACCES    authentication failed
 *   -ESTALE      fenced by a newer epoch of this producer id (all later puts fail too)
 *   -ETIMEDOUT   no ACK within delivery_timeout_ms of the record's put (or after
 *                retries_max sends, when set): the outcome is UNKNOWN
 *   -EPROTO      the appliance had forgotten the batch (sequence_old): UNKNOWN
 *   -EBUSY, -EIO throttled / internal error was the last answer when the deadline
 *                (or retries_max) ran out
 *   -ECANCELED   the producer was closed first: never acknowledged, outcome UNKNOWN
 *   -EREMOTE     cluster: split_leaders (a RECORDS batch over shards of different
 *                leaders: set a shard map), or a not_leader naming an address of another
 *                family than the entry node's over UDP; not stored
 */
/* Called once per record, in batch order. It must not call back into the producer. */
typedef void sluice_completion_fn(void *user, const struct sluice_result *result);

struct sluice_producer_config {
	enum sluice_transport transport;
	const char *host;              /* Numeric IPv4 or IPv6 address, or a host name. */
	uint16_t port;
	const char *stream_name;       /* [a-zA-Z0-9_.-], 1 .. 128 bytes. */
	uint64_t producer_id;          /* 0: random. */
	uint32_t producer_epoch;       /* 0: CLOCK_REALTIME seconds (grows across restarts). */
	uint8_t ack_mode;              /* enum frame_ack_mode; default DURABLE. */
	bool hash_keys;                /* Send MD5(partition key) so the appliance skips it. */
	uint32_t lanes;                /* 1 .. FRAME_DEDUP_WINDOW; batches in flight at most. */
	uint32_t batch_records_max;    /* 1 .. FRAME_RECORDS_MAX. */
	uint32_t batch_size_max;       /* Frame bytes; UDP: <= 65507 (default 1472). */
	uint32_t linger_us;            /* A non-empty batch waits at most this long. */
	uint32_t ack_timeout_ms;       /* UDP: first resend after this long without an answer.
					* TCP: not used (no resend on a live connection). */
	uint32_t backoff_max_ms;       /* Resend and reconnect delays double up to this (jitter). */
	uint32_t retries_max;          /* Sends of one batch before -ETIMEDOUT; 0: no limit
					* (the default: delivery_timeout_ms bounds the wait). */
	uint32_t delivery_timeout_ms;  /* >= 1: a record fails with -ETIMEDOUT once it has
					* waited this long since its put() without an answer. */
	uint32_t silence_timeout_ms;   /* >= 1; TCP: a connection that delivered nothing for
					* this long while answers were owed is closed, and
					* every batch in flight resent on a new one. */
	const struct frame_auth_key *auth_key; /* NULL: unsigned frames. Copied. */
	sluice_completion_fn *on_complete;     /* Required. */
	void *user;
};

/* Fills `config` with the defaults (UDP, DURABLE, hash keys on, 8 lanes, ...). */
void sluice_producer_config_default(struct sluice_producer_config *config,
				    enum sluice_transport transport);

/*
 * Validates the configuration, resolves the host, allocates every buffer
 * and opens the socket (TCP connects without blocking; poll finishes it).
 * -EINVAL for a bad configuration, -ENOENT if the host does not resolve,
 * -ENOMEM, or the socket's errno.
 */
int sluice_producer_open(const struct sluice_producer_config *config,
			 struct sluice_producer **producer_out);

/*
 * Completes every record not yet acknowledged with -ECANCELED (calling
 * the callback), closes the socket and frees everything. Call flush first
 * to wait for ACKs.
 */
void sluice_producer_close(struct sluice_producer *producer);

/*
 * Queues one record (copied) into its lane's batch. `hash_key` is an
 * explicit hash key (16 big-endian bytes) or NULL. Returns 0;
 * -EAGAIN when the lane is full (poll, then retry); -EINVAL for a key not
 * 1..256 bytes of UTF-8 or an oversized record; -EMSGSIZE when the record
 * cannot fit one batch (UDP: one datagram); -ESTALE once fenced.
 */
int sluice_producer_put(struct sluice_producer *producer, const void *key, uint16_t key_size,
			const void *data, uint32_t data_size, const uint8_t *hash_key,
			uint64_t tag);

/*
 * Does all due work, waiting up to timeout_ms (0: do not wait; -1: no limit)
 * for the socket or the next timer, once. With -1 and nothing outstanding it
 * returns at once. Returns the number of records completed, or a negative
 * errno on a failure of the local socket layer (the producer stays usable:
 * poll again).
 */
int sluice_producer_poll(struct sluice_producer *producer, int timeout_ms);

/*
 * Sends every open batch now and polls until every record has completed or
 * timeout_ms passed. 0, or -ETIMEDOUT with records still outstanding.
 */
int sluice_producer_flush(struct sluice_producer *producer, int timeout_ms);

/*
 * The entry node's socket to wait on (POLLIN; POLLOUT while sluice_producer_wants_write()).
 * Over TCP in a cluster, redirects open a connection per leader: wait on them all with
 * sluice_producer_pollfds() instead.
 */
int sluice_producer_fd(const struct sluice_producer *producer);
bool sluice_producer_wants_write(const struct sluice_producer *producer);
/*
 * Every socket to wait on, with its events, into fds[0 .. size): the count, or -ENOSPC
 * when size is too small (SLUICE_PRODUCER_NODES_MAX always suffices).
 */
int sluice_producer_pollfds(const struct sluice_producer *producer, struct pollfd *fds,
			    uint32_t size);
/* Milliseconds until the next timer (linger, retry, reconnect); -1: none. */
int sluice_producer_timeout_ms(const struct sluice_producer *producer);

/* One open shard of the stream, as ListShards shows it. */
struct sluice_shard_range {
	uint32_t shard_index;      /* shardId-NNNNNNNNNNNN's number. */
	uint8_t start[16];         /* Its hash-key range, inclusive, big-endian. */
	uint8_t end[16];
};

/*
 * Sends SHARD_RECORDS frames from now on: `shards` (copied) are the stream's
 * open shards, in any order; their ranges must not overlap. Records whose
 * hash key no range owns go in RECORDS frames. count 0 returns to RECORDS
 * frames. Records need hash keys: hash_keys on, or explicit hash keys.
 * Lanes change with the map, so it may only change while nothing is
 * outstanding: -EBUSY otherwise (flush first). -EINVAL for overlapping
 * ranges, more than SLUICE_SHARDS_MAX, or hash_keys off; -ENOMEM.
 */
int sluice_producer_set_shard_map(struct sluice_producer *producer,
				  const struct sluice_shard_range *shards, uint32_t count);
/* True once a WRONG_SHARD NACK said the map moved, until the next set_shard_map(). */
bool sluice_producer_map_stale(const struct sluice_producer *producer);

struct sluice_producer_stats {
	uint64_t records_put;
	uint64_t records_ok;
	uint64_t records_failed;
	uint64_t records_outstanding;  /* Put but not completed. */
	uint64_t batches_sent;         /* First sends. */
	uint64_t batches_resent;       /* Retries (UDP timeout, NACK, TCP reconnect, a TCP
					* redirect node's batches back to the entry node). */
	uint64_t acks_received;
	uint64_t acks_duplicate;       /* ACKs with FRAME_F_DUPLICATE (stored once, answered again). */
	uint64_t acks_ignored;         /* ACKs of no batch in flight (late copies) or bad frames. */
	uint64_t nacks_received;
	uint64_t answers_forged;       /* Signing producer: answers not signed with its key (or
					* stale): ignored (docs/PROTOCOL.md section 7). */
	uint64_t connects;             /* TCP (re)connections established, to any node. */
	uint64_t connections_silent;   /* TCP connections closed for silence_timeout_ms. */
	uint64_t batches_grouped;      /* Sealed as SHARD_RECORDS frames. */
	uint64_t batches_regrouped;    /* NACKed WRONG_SHARD, resent as RECORDS frames. */
	uint64_t batches_redirected;   /* NACKed not_leader, resent to the leader it named. */
	uint64_t leaders_forgotten;    /* Batches whose redirected leader did not answer (UDP),
					* whose connection to it failed or went silent (TCP), or
					* whose node entry a full table reused: back to the
					* entry node with their shards. */
	uint64_t producer_id;
	uint32_t producer_epoch;
};

void sluice_producer_stats(const struct sluice_producer *producer,
			   struct sluice_producer_stats *stats_out);

#endif /* SLUICE_PRODUCER_H */
