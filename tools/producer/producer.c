/*
 * producer.c - libsluice's batches: configuration, lanes, sealing, retry
 * timers and completions. Sockets and poll() live in producer_net.c.
 *
 * A batch's life: EMPTY -> OPEN (records added) -> FLYING (sealed with the
 * next batch_seq; sent; resent on its timer over UDP, after a NACK's wait,
 * or on a new TCP connection) -> EMPTY (ACK, final NACK or its delivery
 * deadline: every record completed). A released batch still being written
 * to a TCP socket stays DRAINING until its last byte is out, so its buffer
 * is not reused under the writer.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <netinet/in.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/hashkey.h"
#include "tools/producer/producer_int.h"

void
sluice_producer_config_default(struct sluice_producer_config *config,
			       enum sluice_transport transport)
{
	bool udp = transport == SLUICE_TRANSPORT_UDP;

	memset(config, 0, sizeof(*config));
	config->transport = transport;
	config->ack_mode = FRAME_ACK_DURABLE;
	config->hash_keys = true;
	config->lanes = FRAME_DEDUP_WINDOW;
	config->batch_records_max = FRAME_RECORDS_MAX;
	/* UDP: one unfragmented datagram on a 1500-byte MTU; TCP: any legal record fits. */
	config->batch_size_max = udp ? 1472u : FRAME_SIZE_MAX;
	config->linger_us = 2000;
	config->ack_timeout_ms = udp ? 100u : 1000u;
	config->backoff_max_ms = 2000;
	config->retries_max = 0;
	config->delivery_timeout_ms = SLUICE_DELIVERY_TIMEOUT_MS_DEFAULT;
	config->silence_timeout_ms = SLUICE_TCP_SILENCE_MS_DEFAULT;
}

static uint32_t
batch_head_size(const struct sluice_producer_config *config)
{
	return FRAME_RECORDS_HEADER_SIZE + (uint32_t)strlen(config->stream_name) +
	       (config->auth_key != NULL ? FRAME_AUTH_SIZE : 0);
}

static bool
config_valid(const struct sluice_producer_config *c)
{
	if (c->host == NULL || c->port == 0 || c->on_complete == NULL || c->stream_name == NULL)
		return false;
	if (!frame_stream_name_valid(c->stream_name, strlen(c->stream_name)))
		return false;
	if (c->transport != SLUICE_TRANSPORT_UDP && c->transport != SLUICE_TRANSPORT_TCP)
		return false;
	if (c->ack_mode > FRAME_ACK_DURABLE || c->lanes < 1 || c->lanes > FRAME_DEDUP_WINDOW)
		return false;
	if (c->batch_records_max < 1 || c->batch_records_max > FRAME_RECORDS_MAX)
		return false;
	if (c->batch_size_max > FRAME_SIZE_MAX ||
	    (c->transport == SLUICE_TRANSPORT_UDP && c->batch_size_max > PRODUCER_UDP_PAYLOAD_MAX))
		return false;
	/* At least one record of a one-byte key must fit. */
	if (c->batch_size_max < batch_head_size(c) + frame_record_encoded_size(1, 0, 0))
		return false;
	if (c->ack_timeout_ms == 0 || c->backoff_max_ms < c->ack_timeout_ms ||
	    c->delivery_timeout_ms == 0 || c->silence_timeout_ms == 0)
		return false;
	if (c->auth_key != NULL && (c->auth_key->key_size < FRAME_AUTH_KEY_SIZE_MIN ||
				    c->auth_key->key_size > FRAME_AUTH_KEY_SIZE_MAX))
		return false;
	return true;
}

static void
producer_free(struct sluice_producer *producer)
{
	for (uint32_t l = 0; l < FRAME_DEDUP_WINDOW; l++) {
		for (int i = 0; i < 2; i++) {
			free(producer->lanes[l].batches[i].frame);
			free(producer->lanes[l].batches[i].tags);
		}
	}
	free(producer->scratch);
	free(producer->shards);
	free(producer);
}

/* Identity: a random id, and an epoch that grows across restarts of the same id. */
static void
producer_identity(struct sluice_producer *producer)
{
	while (producer->config.producer_id == 0) {
		if (getrandom(&producer->config.producer_id, sizeof(uint64_t), 0) !=
		    (ssize_t)sizeof(uint64_t))
			producer->config.producer_id = clock_real_ns() ^ clock_mono_ns();
	}
	if (producer->config.producer_epoch == 0)
		producer->config.producer_epoch = (uint32_t)(clock_real_ns() / 1000000000u);
	producer->rng = producer->config.producer_id | 1;
	producer->stats.producer_id = producer->config.producer_id;
	producer->stats.producer_epoch = producer->config.producer_epoch;
}

int
sluice_producer_open(const struct sluice_producer_config *config,
		     struct sluice_producer **producer_out)
{
	struct sluice_producer *p;
	int err;

	if (!config_valid(config))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->config = *config;
	strcpy(p->stream_name, config->stream_name);
	p->config.stream_name = p->stream_name;
	if (config->auth_key != NULL) {
		p->auth_key = *config->auth_key;
		p->auth = true;
	}
	p->config.auth_key = NULL;
	for (uint32_t i = 0; i < PRODUCER_NODES_MAX; i++) {
		p->nodes[i].fd = -1;
		p->nodes[i].credit_size = FRAME_CREDIT_UNLIMITED;
		p->nodes[i].reconnect_ms = PRODUCER_RECONNECT_MS_MIN;
	}
	producer_identity(p);
	p->scratch = malloc(config->batch_size_max);
	if (p->scratch == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	for (uint32_t l = 0; l < config->lanes; l++) {
		for (int i = 0; i < 2; i++) {
			struct producer_batch *b = &p->lanes[l].batches[i];

			b->frame = malloc(config->batch_size_max);
			b->tags = calloc(config->batch_records_max, sizeof(uint64_t));
			if (b->frame == NULL || b->tags == NULL) {
				err = -ENOMEM;
				goto out_free;
			}
		}
	}
	err = producer_resolve(p);
	if (err != 0)
		goto out_free;
	err = producer_socket_open(p, 0, clock_mono_ns());
	if (err != 0)
		goto out_free;
	*producer_out = p;
	return 0;

out_free:
	producer_free(p);
	return err;
}

/* A batch (SHARD_RECORDS for `shard`, or RECORDS when NULL) into b->frame, or `buf`. */
static void
batch_writer_begin(struct sluice_producer *p, struct frame_writer *writer, uint8_t *buf,
		   uint64_t batch_seq, const struct producer_shard *shard)
{
	struct frame_batch_params params = {
		.producer_id = p->config.producer_id,
		.batch_seq = batch_seq,
		.producer_epoch = p->config.producer_epoch,
		.ack_mode = p->config.ack_mode,
		.auth = p->auth,
		.shard_grouped = shard != NULL,
		.shard_index = shard != NULL ? shard->shard_index : 0,
		.stream_name = p->stream_name,
		.stream_name_size = (uint8_t)strlen(p->stream_name),
	};
	int rc = frame_writer_begin(writer, buf, p->config.batch_size_max, &params);

	assert(rc == 0);    /* config_valid() checked that a batch head fits. */
	(void)rc;
}

static void
batch_begin(struct sluice_producer *p, struct producer_batch *b, uint64_t now_ns,
	    const struct producer_shard *shard)
{
	/* The seq is patched when sealed. */
	batch_writer_begin(p, &b->writer, b->frame, 0, shard);
	b->grouped = shard != NULL;
	b->shard_index = shard != NULL ? shard->shard_index : 0;
	b->records_size = batch_head_size(&p->config);
	b->state = BATCH_OPEN;
	b->opened_ns = now_ns;
	b->last_put_ns = now_ns;
	b->sends = 0;
	b->sent_once = false;
	b->node = 0;
	b->nacked = false;
	b->silent_sends = 0;
	b->redirects = 0;
	b->all_hashed = true;
	b->last_status = FRAME_STATUS_OK;
}

/* Calls the callback for every record of a batch, then frees the batch's slot. */
static void
batch_complete(struct sluice_producer *p, struct producer_batch *b, int err, uint8_t status,
	       const struct frame_ack *ack)
{
	struct sluice_result result = { .err = err, .status = status };
	uint16_t run_index = 0;
	struct frame_ack_run run = { 0 };
	uint32_t in_run = 0;
	bool detail = ack != NULL && ack->run_count > 0;

	for (uint32_t i = 0; i < b->writer.record_count; i++) {
		result.tag = b->tags[i];
		result.position_known = detail;
		if (detail) {
			if (in_run == run.count) {
				frame_ack_run_get(ack, run_index++, &run);
				in_run = 0;
			}
			result.shard_index = run.shard_index;
			result.seq = run.seq_first + in_run++;
		}
		if (err == 0)
			p->stats.records_ok++;
		else
			p->stats.records_failed++;
		p->completed++;
		p->config.on_complete(p->config.user, &result);
	}
	if (b->state == BATCH_FLYING)
		p->nodes[b->node].inflight_bytes -= b->frame_size;
	b->writer.record_count = 0;
	if (b->queued)
		producer_txq_remove(p, b);
	b->state = b->queued ? BATCH_DRAINING : BATCH_EMPTY;
}

static int
status_errno(uint8_t status)
{
	switch (status) {
	case FRAME_STATUS_UNKNOWN_STREAM:
		return -ENOENT;
	case FRAME_STATUS_RECORD_TOO_LARGE:
		return -EMSGSIZE;
	case FRAME_STATUS_AUTH_FAILED:
		return -EACCES;
	case FRAME_STATUS_THROTTLED:
		return -EBUSY;
	case FRAME_STATUS_INTERNAL:
		return -EIO;
	case FRAME_STATUS_STALE_EPOCH:
		return -ESTALE;
	case FRAME_STATUS_SEQUENCE_OLD:
		return -EPROTO;
	case FRAME_STATUS_WRONG_SHARD:
		return -ENXIO;
	case FRAME_STATUS_NOT_LEADER:
	case FRAME_STATUS_SPLIT_LEADERS:
		return -EREMOTE;
	default:
		return -EINVAL;
	}
}

void
producer_batch_fail(struct sluice_producer *p, struct producer_batch *b, int err, uint8_t status)
{
	batch_complete(p, b, err, status, NULL);
}

/* Retry delay with jitter in [delay/2, delay], so producers do not retry in step. */
static uint64_t
jitter_ns(struct sluice_producer *p, uint32_t delay_ms)
{
	uint64_t x = p->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	p->rng = x;
	return ((uint64_t)delay_ms * 1000000u / 2) + x % ((uint64_t)delay_ms * 1000000u / 2 + 1);
}

/* ---- Cluster redirects: which node a batch goes to ------------------------ */

static struct producer_shard *
shard_by_index(struct sluice_producer *p, uint32_t shard_index)
{
	for (uint32_t i = 0; i < p->shard_count; i++)
		if (p->shards[i].shard_index == shard_index)
			return &p->shards[i];
	return NULL;
}

/*
 * A new batch goes where its shard's leader was last named (RECORDS: the entry node).
 * Without a redirect yet (a single node) there is no shard to look up.
 */
static uint8_t
batch_node(struct sluice_producer *p, const struct producer_batch *b)
{
	const struct producer_shard *shard = b->grouped && p->node_count > 1 ?
					     shard_by_index(p, b->shard_index) : NULL;

	return shard != NULL ? shard->node : 0;
}

void
producer_batch_move(struct sluice_producer *p, struct producer_batch *b, uint32_t node)
{
	assert(b->state == BATCH_FLYING && node < p->node_count);
	if (b->node == node)
		return;
	/*
	 * A copy still queued on the old connection leaves it. A NACK answers a copy
	 * written whole, and a lost connection drops its queue, so none is half written
	 * here; should one be, that connection goes (the stream cannot skip its rest).
	 */
	if (b->queued && !producer_txq_remove(p, b))
		producer_socket_close(p, b->txq_node);
	p->nodes[b->node].inflight_bytes -= b->frame_size;
	p->nodes[node].inflight_bytes += b->frame_size;
	b->node = (uint8_t)node;
	b->awaiting = false;
	b->sent_ns = 0;         /* Not yet on the new node's connection. */
	b->silent_sends = 0;
}

/* The batch's leader did not answer (UDP): its shard (and the batch) go to the entry node. */
static void
leader_forget(struct sluice_producer *p, struct producer_batch *b)
{
	struct producer_shard *shard = b->grouped ? shard_by_index(p, b->shard_index) : NULL;

	if (shard != NULL && shard->node == b->node)
		shard->node = 0;
	producer_batch_move(p, b, 0);
	p->stats.leaders_forgotten++;
}

uint32_t
producer_flying_to(struct sluice_producer *p, uint32_t node,
		   struct producer_batch *out[2 * FRAME_DEDUP_WINDOW])
{
	uint32_t count = 0;

	for (uint32_t l = 0; l < p->config.lanes; l++)
		for (int i = 0; i < 2; i++) {
			struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state == BATCH_FLYING && b->node == node)
				out[count++] = b;
		}
	/* Insertion sort: at most 2 * lanes entries. */
	for (uint32_t i = 1; i < count; i++)
		for (uint32_t j = i; j > 0 && out[j - 1]->batch_seq > out[j]->batch_seq; j--) {
			struct producer_batch *t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return count;
}

/*
 * Redirect node `node` is gone (TCP: its connection failed or went silent; either
 * transport: its table entry is reused): its shards go back to the entry node, and
 * its batches in flight are resent there in seq order. The entry node redirects them
 * again once the placement has moved; it answers a batch it already stored from its
 * dedup window.
 */
void
producer_node_forget(struct sluice_producer *p, uint32_t node)
{
	struct producer_batch *moved[2 * FRAME_DEDUP_WINDOW];
	uint32_t count;

	assert(node != 0);
	for (uint32_t s = 0; s < p->shard_count; s++)
		if (p->shards[s].node == node)
			p->shards[s].node = 0;
	count = producer_flying_to(p, node, moved);
	for (uint32_t i = 0; i < count; i++) {
		producer_batch_move(p, moved[i], 0);
		p->stats.leaders_forgotten++;
		if (p->config.transport == SLUICE_TRANSPORT_TCP) {
			p->stats.batches_resent++;
			producer_send(p, moved[i]);
		}
	}
}

/* A redirect's address as a node of the table (added, or an old entry reused); -1: bad. */
static int
node_of(struct sluice_producer *p, const struct frame_redirect *r)
{
	struct producer_node *n;
	struct sockaddr_storage addr = { 0 };
	socklen_t addr_size;
	uint32_t i;

	if (r->family == 4) {
		struct sockaddr_in *a = (struct sockaddr_in *)&addr;

		a->sin_family = AF_INET;
		a->sin_port = htons(r->port);
		memcpy(&a->sin_addr, r->addr, 4);
		addr_size = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(r->port);
		memcpy(&a->sin6_addr, r->addr, 16);
		addr_size = sizeof(*a);
	}
	/* UDP: the one socket is of the entry node's family; TCP opens one per node. */
	if (p->config.transport == SLUICE_TRANSPORT_UDP && addr.ss_family != p->nodes[0].addr.ss_family)
		return -1;
	for (i = 0; i < p->node_count; i++)
		if (p->nodes[i].addr_size == addr_size &&
		    memcmp(&p->nodes[i].addr, &addr, addr_size) == 0)
			return (int)i;
	if (p->node_count < PRODUCER_NODES_MAX) {
		i = p->node_count++;
	} else {
		/* Full: reuse the next entry past the entry node; what it held goes back to 0. */
		i = 1 + p->node_reuse++ % (PRODUCER_NODES_MAX - 1);
		if (p->config.transport == SLUICE_TRANSPORT_TCP)
			producer_socket_close(p, i);
		producer_node_forget(p, i);
	}
	n = &p->nodes[i];
	*n = (struct producer_node){ .addr = addr, .addr_size = addr_size, .fd = -1,
				     .credit_size = FRAME_CREDIT_UNLIMITED,
				     .reconnect_ms = PRODUCER_RECONNECT_MS_MIN };
	return (int)i;
}

/*
 * not_leader: the shard's leader is elsewhere. The batch goes there (at once the first
 * time; with backoff when redirected again: two nodes naming each other while a
 * leadership moves), and with a map its shard's later batches follow. TCP opens a
 * connection to it on the first batch sent there. False: not followed (UDP and an
 * address of another family): the batch fails.
 */
static bool
batch_redirect(struct sluice_producer *p, struct producer_batch *b, const struct frame_ack *ack,
	       uint64_t now_ns)
{
	struct producer_shard *shard;
	int node = node_of(p, &ack->redirect);

	if (node < 0)
		return false;
	shard = shard_by_index(p, ack->redirect.shard_index);
	if (shard != NULL)
		shard->node = (uint8_t)node;
	producer_batch_move(p, b, (uint32_t)node);
	b->last_status = ack->status;
	p->stats.batches_redirected++;
	if (b->redirects++ == 0)
		producer_batch_transmit(p, b, now_ns);
	else
		b->due_ns = now_ns + jitter_ns(p, b->delay_ms);
	return true;
}

void
producer_batch_transmit(struct sluice_producer *p, struct producer_batch *b, uint64_t now_ns)
{
	assert(b->state == BATCH_FLYING);
	if (now_ns >= b->deadline_ns ||
	    (p->config.retries_max != 0 && b->sends >= p->config.retries_max)) {
		int err = b->last_status == FRAME_STATUS_OK ? -ETIMEDOUT :
							      status_errno(b->last_status);

		producer_batch_fail(p, b, err, b->last_status);
		return;
	}
	if (b->sent_once)
		p->stats.batches_resent++;
	else
		p->stats.batches_sent++;
	/* UDP: a leader that left two sends unanswered is forgotten (TCP: its connection). */
	if (b->sent_once && !b->nacked && b->node != 0 &&
	    p->config.transport == SLUICE_TRANSPORT_UDP &&
	    ++b->silent_sends >= PRODUCER_LEADER_SILENT_SENDS)
		leader_forget(p, b);
	if (b->nacked)
		b->silent_sends = 0;
	b->nacked = false;
	b->sent_once = true;
	b->sends++;
	/*
	 * TCP: the appliance answers every frame it took, so no timer resends on a live
	 * connection; a reconnect (for silence or a lost connection) does (producer_net.c).
	 */
	b->due_ns = p->config.transport == SLUICE_TRANSPORT_TCP ? UINT64_MAX :
								 now_ns + jitter_ns(p, b->delay_ms);
	b->delay_ms = (uint32_t)min_u64((uint64_t)b->delay_ms * 2, p->config.backoff_max_ms);
	producer_send(p, b);
	if (p->config.ack_mode == FRAME_ACK_NONE && b->state == BATCH_FLYING)
		batch_complete(p, b, 0, FRAME_STATUS_OK, NULL);
}

/* Seqs in flight must span less than the appliance's dedup window. */
static bool
seq_window_allows(const struct sluice_producer *p)
{
	for (uint32_t l = 0; l < p->config.lanes; l++) {
		for (int i = 0; i < 2; i++) {
			const struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state == BATCH_FLYING && p->next_seq - b->batch_seq >= FRAME_DEDUP_WINDOW)
				return false;
		}
	}
	return true;
}

static int
sort_entry_compare(const void *a, const void *b)
{
	const struct producer_sort_entry *x = a;
	const struct producer_sort_entry *y = b;
	int order = memcmp(x->hash_key, y->hash_key, FRAME_HASH_KEY_SIZE);

	if (order != 0)
		return order;
	return x->index < y->index ? -1 : 1;    /* Stable: one key keeps put order. */
}

/*
 * Rewrites the lane's open batch, sorted by hash key, into the lane's other
 * (empty) buffer, which becomes the open batch. Shards own contiguous
 * hash-key ranges, so a shard's records end up adjacent: the ACK needs one
 * run per shard touched, which keeps replayed ACKs' detail (frame.h,
 * FRAME_DEDUP_RUNS_MAX). Same key means same hash, so key order holds.
 */
static void
lane_sort(struct sluice_producer *p, struct producer_lane *lane)
{
	struct producer_batch *from = &lane->batches[lane->open_index];
	struct producer_batch *to = &lane->batches[lane->open_index ^ 1];
	uint32_t head = FRAME_RECORDS_HEADER_SIZE + (uint32_t)strlen(p->stream_name);
	struct frame_records view = { .records = from->frame + head,
				      .record_count = from->writer.record_count };
	struct frame_record_iter iter;
	struct frame_record r;
	uint32_t count = 0;
	uint32_t pos = head;

	frame_record_iter_init(&iter, &view);
	for (const uint8_t *start = iter.next; frame_record_iter_next(&iter, &r); start = iter.next) {
		p->sort[count] = (struct producer_sort_entry){
			.hash_key = r.hash_key, .record = start,
			.record_size = (uint32_t)(iter.next - start), .index = count,
		};
		count++;
	}
	qsort(p->sort, count, sizeof(p->sort[0]), sort_entry_compare);
	memcpy(to->frame, from->frame, head);
	for (uint32_t i = 0; i < count; i++) {
		memcpy(to->frame + pos, p->sort[i].record, p->sort[i].record_size);
		pos += p->sort[i].record_size;
		to->tags[i] = from->tags[p->sort[i].index];
	}
	assert(pos == from->writer.size);
	*to = (struct producer_batch){ .frame = to->frame, .tags = to->tags,
				       .writer = from->writer, .opened_ns = from->opened_ns,
				       .last_put_ns = from->last_put_ns,
				       .state = BATCH_OPEN, .all_hashed = true };
	to->writer.buf = to->frame;
	from->state = BATCH_EMPTY;
	from->writer.record_count = 0;
	lane->open_index ^= 1;
}

/*
 * The lane's open batch may be sealed now: its in-flight slot, the seq window and the
 * credit of the node it goes to allow (one batch may always fly to each node).
 */
static bool
lane_can_seal(const struct sluice_producer *p, const struct producer_lane *lane)
{
	const struct producer_batch *b = &lane->batches[lane->open_index];
	const struct producer_batch *other = &lane->batches[lane->open_index ^ 1];
	const struct producer_node *n;

	if (b->state != BATCH_OPEN || other->state != BATCH_EMPTY || !seq_window_allows(p))
		return false;
	n = &p->nodes[batch_node((struct sluice_producer *)p, b)];
	return n->inflight_bytes == 0 ||
	       n->inflight_bytes + b->writer.size + b->writer.reserve <= n->credit_size;
}

/* Seals the lane's open batch and sends it, if lane_can_seal(). */
static bool
lane_seal(struct sluice_producer *p, struct producer_lane *lane, uint64_t now_ns)
{
	struct producer_batch *b = &lane->batches[lane->open_index];
	uint64_t seq_le;
	int size;

	if (!lane_can_seal(p, lane))
		return false;
	if (b->grouped)
		p->stats.batches_grouped++;
	else if (b->all_hashed && b->writer.record_count > 1) {
		lane_sort(p, lane);
		b = &lane->batches[lane->open_index];
	}
	b->batch_seq = p->next_seq++;
	seq_le = b->batch_seq;       /* The host is little-endian, as the wire (frame.h). */
	memcpy(b->frame + PRODUCER_OFF_BATCH_SEQ, &seq_le, sizeof(seq_le));
	size = frame_writer_finish(&b->writer);
	assert(size > 0);
	b->frame_size = (uint32_t)size;
	b->state = BATCH_FLYING;
	b->delay_ms = p->config.ack_timeout_ms;
	b->deadline_ns = b->last_put_ns + (uint64_t)p->config.delivery_timeout_ms * 1000000u;
	b->queued = false;
	b->awaiting = false;
	b->sent_ns = 0;
	lane->open_index ^= 1;
	b->node = batch_node(p, b);
	p->nodes[b->node].inflight_bytes += b->frame_size;
	producer_batch_transmit(p, b, now_ns);
	return true;
}

void
producer_lanes_work(struct sluice_producer *p, uint64_t now_ns)
{
	uint64_t linger_ns = p->flushing ? 0 : (uint64_t)p->config.linger_us * 1000u;

	for (uint32_t l = 0; l < p->config.lanes; l++) {
		struct producer_lane *lane = &p->lanes[l];
		struct producer_batch *flying = &lane->batches[lane->open_index ^ 1];
		struct producer_batch *open = &lane->batches[lane->open_index];

		if (flying->state == BATCH_FLYING &&
		    now_ns >= min_u64(flying->due_ns, flying->deadline_ns))
			producer_batch_transmit(p, flying, now_ns);
		if (open->state == BATCH_OPEN && now_ns - open->opened_ns >= linger_ns)
			lane_seal(p, lane, now_ns);
	}
}

uint64_t
producer_next_timer_ns(const struct sluice_producer *p)
{
	uint64_t next = UINT64_MAX;
	uint64_t linger_ns = p->flushing ? 0 : (uint64_t)p->config.linger_us * 1000u;

	for (uint32_t l = 0; l < p->config.lanes; l++) {
		const struct producer_lane *lane = &p->lanes[l];
		const struct producer_batch *flying = &lane->batches[lane->open_index ^ 1];
		const struct producer_batch *open = &lane->batches[lane->open_index];

		if (flying->state == BATCH_FLYING)
			next = min_u64(next, min_u64(flying->due_ns, flying->deadline_ns));
		/* An open batch that cannot seal yet waits for an answer, not for time. */
		if (lane_can_seal(p, lane))
			next = min_u64(next, open->opened_ns + linger_ns);
	}
	return min_u64(next, producer_net_timer_ns(p));
}

/*
 * A grouped batch the appliance refused (WRONG_SHARD: nothing stored) as a
 * RECORDS frame of the same records, order and batch_seq, in place. It fits:
 * records_size kept it within batch_size_max. False when its bytes are still
 * being written to a TCP socket.
 */
static bool
batch_regroup(struct sluice_producer *p, struct producer_batch *b)
{
	struct frame_records fr;
	struct frame_record_iter it;
	struct frame_record r;
	struct frame_writer w;
	int size;

	if (b->queued && !producer_txq_remove(p, b))
		return false;
	b->queued = false;
	if (frame_records_decode(b->frame, b->frame_size, &fr) != FRAME_OK)
		return false;
	batch_writer_begin(p, &w, p->scratch, b->batch_seq, NULL);
	frame_record_iter_init(&it, &fr);
	while (frame_record_iter_next(&it, &r)) {
		int rc = frame_writer_add(&w, &r);

		assert(rc == 0);
		(void)rc;
	}
	size = frame_writer_finish(&w);
	assert(size > 0 && (uint32_t)size == b->records_size);
	memcpy(b->frame, p->scratch, (size_t)size);
	w.buf = b->frame;
	b->writer = w;
	p->nodes[b->node].inflight_bytes =
		p->nodes[b->node].inflight_bytes - b->frame_size + (uint32_t)size;
	b->frame_size = (uint32_t)size;
	b->grouped = false;
	p->stats.batches_regrouped++;
	return true;
}

static struct producer_batch *
flying_find(struct sluice_producer *p, uint64_t batch_seq)
{
	for (uint32_t l = 0; l < p->config.lanes; l++) {
		for (int i = 0; i < 2; i++) {
			struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state == BATCH_FLYING && b->batch_seq == batch_seq)
				return b;
		}
	}
	return NULL;
}

void
producer_answer(struct sluice_producer *p, uint32_t node, const struct frame_ack *ack,
		uint64_t now_ns)
{
	struct producer_batch *b;

	if (ack->producer_id != p->config.producer_id ||
	    ack->producer_epoch != p->config.producer_epoch) {
		p->stats.acks_ignored++;
		return;
	}
	p->nodes[node].credit_size = ack->credit_size;
	b = flying_find(p, ack->batch_seq);
	if (b == NULL || (ack->type == FRAME_TYPE_ACK && ack->record_count != b->writer.record_count)) {
		p->stats.acks_ignored++;    /* A late copy of an answer already handled. */
		return;
	}
	if (ack->type == FRAME_TYPE_NACK && node != b->node &&
	    p->config.transport == SLUICE_TRANSPORT_TCP) {
		/* A copy the batch left behind on a node it moved away from: not its answer. */
		p->stats.acks_ignored++;
		return;
	}
	if (ack->type == FRAME_TYPE_ACK) {
		p->stats.acks_received++;
		if ((ack->flags & FRAME_F_DUPLICATE) != 0)
			p->stats.acks_duplicate++;
		batch_complete(p, b, 0, FRAME_STATUS_OK, ack);
		return;
	}
	if (ack->status == FRAME_STATUS_WRONG_SHARD && !b->grouped) {
		/*
		 * Only SHARD_RECORDS frames are refused so: this answers a copy of the
		 * batch sent before it was regrouped (a resend, a duplicated datagram);
		 * the RECORDS frame now flying gets its own answer.
		 */
		p->stats.acks_ignored++;
		return;
	}
	p->stats.nacks_received++;
	b->awaiting = false;    /* Answered: it waits for its resend, not for the connection. */
	b->nacked = true;
	if (ack->status == FRAME_STATUS_NOT_LEADER && batch_redirect(p, b, ack, now_ns))
		return;
	if (frame_status_retryable((enum frame_status)ack->status)) {
		/* Honour the appliance's hint, but a minute at most: it is only a hint. */
		uint64_t wait_ms = min_u64(max_u64(ack->retry_after_ms, b->delay_ms / 2),
					   PRODUCER_RETRY_AFTER_MS_MAX);

		b->last_status = ack->status;
		b->due_ns = now_ns + wait_ms * 1000000u;
		return;
	}
	if (ack->status == FRAME_STATUS_STALE_EPOCH)
		p->fenced = true;
	if (ack->status == FRAME_STATUS_WRONG_SHARD && b->grouped) {
		p->map_stale = true;
		if (batch_regroup(p, b)) {
			b->last_status = ack->status;
			producer_batch_transmit(p, b, now_ns);
			return;
		}
	}
	producer_batch_fail(p, b, status_errno(ack->status), ack->status);
}

/* Builds the record (MD5 hash key if configured) and checks it fits a batch at all. */
static int
record_prepare(struct sluice_producer *p, struct frame_record *r, uint8_t md5[16])
{
	if (r->key_size == 0 || r->key_size > SLUICE_PARTITION_KEY_SIZE_MAX ||
	    !frame_utf8_valid(r->key, r->key_size) ||
	    (uint64_t)r->key_size + r->data_size > SLUICE_RECORD_DATA_SIZE_MAX)
		return -EINVAL;
	if (r->data_size > 0 && r->data == NULL)
		return -EINVAL;
	if (r->hash_key != NULL) {
		r->hash_kind = FRAME_HASH_EXPLICIT;
	} else if (p->config.hash_keys) {
		/* The digest bytes are the big-endian hash key. */
		hashkey_md5(r->key, r->key_size, md5);
		r->hash_kind = FRAME_HASH_MD5;
		r->hash_key = md5;
	}
	if ((uint64_t)batch_head_size(&p->config) +
	    frame_record_encoded_size(r->key_size, r->hash_kind, r->data_size) >
	    p->config.batch_size_max)
		return -EMSGSIZE;
	return 0;
}

/* The map's shard owning the record's hash key, or NULL (no map, no hash key, a gap). */
static const struct producer_shard *
shard_of(const struct sluice_producer *p, const struct frame_record *r)
{
	uint32_t low = 0;
	uint32_t high = p->shard_count;
	hashkey_t key;

	if (p->shard_count == 0 || r->hash_kind == FRAME_HASH_NONE)
		return NULL;
	key = hashkey_from_be_bytes(r->hash_key);
	while (low < high) {        /* The first shard starting above the key ... */
		uint32_t mid = low + (high - low) / 2;

		if (p->shards[mid].start <= key)
			low = mid + 1;
		else
			high = mid;
	}
	/* ... so the one before it is the only one that may own it. */
	if (low == 0 || key > p->shards[low - 1].end)
		return NULL;
	return &p->shards[low - 1];
}

/* Whether `r` still fits the lane's open batch `b` (both encodings for a grouped batch). */
static bool
batch_has_room(const struct sluice_producer *p, const struct producer_batch *b,
	       const struct frame_record *r)
{
	if (b->writer.record_count == p->config.batch_records_max)
		return false;
	if ((uint64_t)b->writer.size + b->writer.reserve + frame_writer_record_size(&b->writer, r) >
	    b->writer.capacity)
		return false;
	return !b->grouped || (uint64_t)b->records_size +
			      frame_record_encoded_size(r->key_size, r->hash_kind, r->data_size) <=
			      p->config.batch_size_max;
}

int
sluice_producer_put(struct sluice_producer *p, const void *key, uint16_t key_size,
		    const void *data, uint32_t data_size, const uint8_t *hash_key, uint64_t tag)
{
	struct frame_record r = { .key = key, .key_size = key_size, .data = data,
				  .data_size = data_size, .hash_key = hash_key };
	uint8_t md5[16];
	uint64_t now_ns = clock_mono_ns();
	const struct producer_shard *shard;
	struct producer_lane *lane;
	struct producer_batch *b;
	int rc;

	if (p->fenced)
		return -ESTALE;
	rc = record_prepare(p, &r, md5);
	if (rc != 0)
		return rc;
	/* With a map, lanes follow shards (a key keeps its lane while the map stands). */
	shard = shard_of(p, &r);
	lane = &p->lanes[shard != NULL ? (uint32_t)(shard - p->shards) % p->config.lanes :
					 crc32c(0, key, key_size) % p->config.lanes];
	if (p->map_stale)
		shard = NULL;
	b = &lane->batches[lane->open_index];
	if (b->state == BATCH_OPEN &&
	    (!batch_has_room(p, b, &r) || b->grouped != (shard != NULL) ||
	     (shard != NULL && b->shard_index != shard->shard_index))) {
		if (!lane_seal(p, lane, now_ns))
			return -EAGAIN;
		b = &lane->batches[lane->open_index];
	}
	if (b->state != BATCH_OPEN) {
		if (b->state != BATCH_EMPTY)
			return -EAGAIN;     /* Still draining to a TCP socket. */
		batch_begin(p, b, now_ns, shard);
		if (!batch_has_room(p, b, &r))
			batch_begin(p, b, now_ns, NULL);  /* Fits RECORDS only (record_prepare). */
	}
	rc = frame_writer_add(&b->writer, &r);
	assert(rc == 0);    /* record_prepare() and the room checks above. */
	b->all_hashed = b->all_hashed && r.hash_kind != FRAME_HASH_NONE;
	b->records_size += frame_record_encoded_size(r.key_size, r.hash_kind, r.data_size);
	b->tags[b->writer.record_count - 1] = tag;
	b->last_put_ns = now_ns;
	p->stats.records_put++;
	if (b->writer.record_count == p->config.batch_records_max)
		lane_seal(p, lane, now_ns);
	return 0;
}

static int
shard_compare(const void *a, const void *b)
{
	const struct producer_shard *x = a;
	const struct producer_shard *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int
sluice_producer_set_shard_map(struct sluice_producer *p, const struct sluice_shard_range *shards,
			      uint32_t count)
{
	struct producer_shard *map = NULL;

	if (count > SLUICE_SHARDS_MAX || (count > 0 && !p->config.hash_keys))
		return -EINVAL;
	if (p->stats.records_put != p->stats.records_ok + p->stats.records_failed)
		return -EBUSY;
	if (count > 0) {
		map = calloc(count, sizeof(*map));
		if (map == NULL)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < count; i++) {
		map[i] = (struct producer_shard){
			.start = hashkey_from_be_bytes(shards[i].start),
			.end = hashkey_from_be_bytes(shards[i].end),
			.shard_index = shards[i].shard_index,
		};
		if (map[i].start > map[i].end) {
			free(map);
			return -EINVAL;
		}
	}
	qsort(map, count, sizeof(*map), shard_compare);
	for (uint32_t i = 1; i < count; i++) {
		if (map[i].start <= map[i - 1].end) {
			free(map);
			return -EINVAL;
		}
	}
	free(p->shards);
	p->shards = map;
	p->shard_count = count;
	p->map_stale = false;
	return 0;
}

bool
sluice_producer_map_stale(const struct sluice_producer *p)
{
	return p->map_stale;
}

void
sluice_producer_stats(const struct sluice_producer *p, struct sluice_producer_stats *stats_out)
{
	*stats_out = p->stats;
	stats_out->records_outstanding = p->stats.records_put - p->stats.records_ok -
					 p->stats.records_failed;
}

void
sluice_producer_close(struct sluice_producer *p)
{
	for (uint32_t l = 0; l < p->config.lanes; l++) {
		for (int i = 0; i < 2; i++) {
			struct producer_batch *b = &p->lanes[l].batches[i];

			if (b->state == BATCH_OPEN || b->state == BATCH_FLYING)
				producer_batch_fail(p, b, -ECANCELED, FRAME_STATUS_OK);
		}
	}
	for (uint32_t i = 0; i < p->node_count; i++)
		producer_socket_close(p, i);
	producer_free(p);
}
