/*
 * producer_int.h - libsluice's private state, shared by producer.c (batches,
 * lanes, completions) and producer_net.c (sockets, timers, poll).
 */
#ifndef SLUICE_PRODUCER_INT_H
#define SLUICE_PRODUCER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/hashkey.h"
#include "protocol/frame.h"
#include "tools/producer/sluice_producer.h"

/* Largest datagram payload over IPv4 (65535 - 20 - 8). */
#define PRODUCER_UDP_PAYLOAD_MAX 65507u
#define PRODUCER_TX_QUEUE_MAX (2u * FRAME_DEDUP_WINDOW)
#define PRODUCER_RECONNECT_MS_MIN 10u
#define PRODUCER_RETRY_AFTER_MS_MAX 60000u
/*
 * Cluster redirects: the nodes a producer sends to, the entry node (config host,
 * node 0) and the leaders not_leader NACKs named. A full table reuses its oldest
 * redirect entry (the shards cached on it, and its batches, go back to node 0).
 */
#define PRODUCER_NODES_MAX SLUICE_PRODUCER_NODES_MAX
/*
 * TCP: a redirect node's connection with nothing owed and nothing sent or heard for
 * this long is closed (a leadership that moved away leaves no connection behind); its
 * cached shards keep it, and their next batch connects again.
 */
#define PRODUCER_NODE_IDLE_MS 30000u
/*
 * Sends in a row a redirected leader leaves unanswered before its shard goes back to
 * the entry node: one late ACK (replicas slow to hold a frame) is not a dead leader.
 */
#define PRODUCER_LEADER_SILENT_SENDS 2u
/* Byte offset of batch_seq in a RECORDS frame (docs/PROTOCOL.md §3). */
#define PRODUCER_OFF_BATCH_SEQ 24u

enum batch_state {
	BATCH_EMPTY = 0,
	BATCH_OPEN,        /* Taking records. */
	BATCH_FLYING,      /* Sealed: sent at least once or about to be; awaiting an answer. */
	BATCH_DRAINING,    /* Answered, but TCP is still writing its bytes: buffer busy. */
};

struct producer_batch {
	uint8_t *frame;             /* batch_size_max bytes. */
	uint64_t *tags;             /* batch_records_max tags, in frame order. */
	struct frame_writer writer;
	uint64_t batch_seq;
	uint64_t opened_ns;         /* First record's put time (linger). */
	uint64_t last_put_ns;       /* Last record's put time: the delivery deadline counts
				     * from it, so no record fails before it waited that long. */
	uint64_t deadline_ns;       /* FLYING: fails with -ETIMEDOUT from then on. */
	uint64_t due_ns;            /* FLYING: next send time (UINT64_MAX: none, TCP). */
	uint64_t sent_ns;           /* TCP: first queued on the current connection; 0: never sent. */
	uint32_t frame_size;
	uint32_t sends;             /* Sends so far (first included). */
	uint32_t delay_ms;          /* Current retry delay, doubled per retry. */
	uint8_t state;              /* enum batch_state */
	uint8_t last_status;        /* Status of the last NACK, FRAME_STATUS_OK if none. */
	bool queued;                /* TCP: in the transmit queue. */
	bool awaiting;              /* TCP: sent on this connection, no answer to it since. */
	bool sent_once;             /* False until its first send (for stats). */
	bool all_hashed;            /* Every record carries a hash key: sortable by it. */
	bool grouped;               /* A SHARD_RECORDS frame for shard_index. */
	uint32_t shard_index;
	uint32_t records_size;      /* Grouped: the same records' size in a RECORDS frame, head
				     * and trailer included, kept within batch_size_max so a
				     * WRONG_SHARD answer can resend them as one. */
	uint8_t node;               /* FLYING: where it is sent (index in nodes[]; 0: entry). */
	uint8_t txq_node;           /* TCP, queued: whose transmit queue holds it. */
	bool nacked;                /* A NACK came since its last send (not a timeout). */
	uint8_t silent_sends;       /* Sends in a row to its node without an answer. */
	uint32_t redirects;         /* not_leader NACKs followed for it. */
};

/* The shard map (sluice_producer_set_shard_map), sorted by range start. */
struct producer_shard {
	hashkey_t start;
	hashkey_t end;
	uint32_t shard_index;
	uint8_t node;               /* Its leader as last redirected (nodes[]); 0: entry node. */
};

/*
 * A node frames go to: the entry node, or a leader a redirect named. Flow control is
 * per node (each answers with its own credit). UDP: one socket (nodes[0].fd) serves
 * every node. TCP: a connection per node, opened on the first batch sent there; the
 * entry's reconnects with backoff, a redirect node's is not retried: its batches and
 * shards go back to the entry node.
 */
struct producer_node {
	struct sockaddr_storage addr;
	socklen_t addr_size;
	uint32_t credit_size;       /* Its last credit hint; FRAME_CREDIT_UNLIMITED at start. */
	uint64_t inflight_bytes;    /* Of the FLYING batches sent to it. */
	int fd;
	uint64_t serial;            /* Which connection this is: a new one per open. */
	bool connected;             /* UDP: always; TCP: handshake done. */
	bool connecting;
	uint64_t reconnect_ns;      /* TCP, entry: next connect attempt (0: none pending). */
	uint32_t reconnect_ms;
	uint64_t heard_ns;          /* TCP: connect, or the last bytes received on it. */
	uint64_t sent_ns;           /* TCP: the last frame queued on it (idle bound). */
	struct producer_batch *txq[PRODUCER_TX_QUEUE_MAX];   /* TCP, in send order. */
	uint32_t txq_count;
	uint32_t tx_offset;         /* Bytes of txq[0] already written. */
	uint32_t rx_size;
	uint8_t rx[2 * FRAME_ACK_SIZE_MAX];
};

/* One record of a batch being sorted by hash key. */
struct producer_sort_entry {
	const uint8_t *hash_key;
	const uint8_t *record;
	uint32_t record_size;
	uint32_t index;
};

/* One lane: a batch being filled and at most one in flight (keeps key order). */
struct producer_lane {
	struct producer_batch batches[2];
	uint8_t open_index;
};

struct sluice_producer {
	struct sluice_producer_config config;
	char stream_name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
	struct frame_auth_key auth_key;
	bool auth;
	struct producer_node nodes[PRODUCER_NODES_MAX]; /* [0]: the entry node. */
	uint32_t node_count;
	uint32_t node_reuse;        /* The next redirect entry a full table reuses. */
	uint64_t serials;           /* Connections opened so far (producer_node.serial). */
	bool flushing;              /* Linger is zero while flushing. */
	bool fenced;                /* A STALE_EPOCH NACK was received. */
	uint64_t next_seq;
	uint64_t rng;               /* xorshift64 state for retry jitter. */
	int completed;              /* Completions during the current call. */
	struct producer_lane lanes[FRAME_DEDUP_WINDOW];
	struct producer_sort_entry sort[FRAME_RECORDS_MAX];
	struct producer_shard *shards;  /* The map; NULL: RECORDS frames only. */
	uint32_t shard_count;
	bool map_stale;             /* A WRONG_SHARD NACK came: RECORDS frames until a new map. */
	uint8_t *scratch;           /* batch_size_max: a grouped batch rewritten as RECORDS. */
	struct sluice_producer_stats stats;
};

/* producer.c */
void producer_batch_transmit(struct sluice_producer *producer, struct producer_batch *batch,
			     uint64_t now_ns);
void producer_lanes_work(struct sluice_producer *producer, uint64_t now_ns);
/* An answer that came from nodes[node]. */
void producer_answer(struct sluice_producer *producer, uint32_t node, const struct frame_ack *ack,
		     uint64_t now_ns);
/* A FLYING batch now goes to `node`: its bytes in flight move there, its TCP copy leaves. */
void producer_batch_move(struct sluice_producer *producer, struct producer_batch *batch,
			 uint32_t node);
/* The FLYING batches going to nodes[node], into out[], in seq order; their count. */
uint32_t producer_flying_to(struct sluice_producer *producer, uint32_t node,
			    struct producer_batch *out[2 * FRAME_DEDUP_WINDOW]);
/* TCP: the connection to redirect node `node` failed: its shards and batches go to node 0. */
void producer_node_forget(struct sluice_producer *producer, uint32_t node);
void producer_batch_fail(struct sluice_producer *producer, struct producer_batch *batch,
			 int err, uint8_t status);
uint64_t producer_next_timer_ns(const struct sluice_producer *producer);

/* producer_net.c */
int producer_socket_open(struct sluice_producer *producer, uint32_t node, uint64_t now_ns);
void producer_socket_close(struct sluice_producer *producer, uint32_t node);
void producer_send(struct sluice_producer *producer, struct producer_batch *batch);
/* Takes a batch off its TCP queue unless it is half written; true if it was taken. */
bool producer_txq_remove(struct sluice_producer *producer, struct producer_batch *batch);
void producer_net_work(struct sluice_producer *producer, uint64_t now_ns);
/* TCP: the next time a connection's silence, reconnect or idle bound is due; UINT64_MAX: none. */
uint64_t producer_net_timer_ns(const struct sluice_producer *producer);
int producer_resolve(struct sluice_producer *producer);

#endif /* SLUICE_PRODUCER_INT_H */
