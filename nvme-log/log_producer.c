/*
 * log_producer.c - the producer side of the log: batch pools, record
 * encoding, the lock-free SPSC handoff to the writer and the completion
 * ring back. Everything here runs on the producer's own thread except
 * log_spsc_pop on the submit ring and log_spsc_push on the completion ring
 * (the writer).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/base.h"
#include "common/crc32c.h"
#include "common/record_wire.h"
#include "nvme-log/log_internal.h"

/*
 * Push: the release store of head orders the slot write (and everything
 * the pusher wrote before, e.g. the batch bytes) before the consumer can
 * see the new head. The acquire load of tail pairs with the consumer's
 * release in pop, so a slot is reused only after it was read.
 */
bool
log_spsc_push(struct log_spsc *ring, uint32_t value)
{
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);

	if (head - tail > ring->mask)
		return false;
	ring->slots[head & ring->mask] = value;
	atomic_store_explicit(&ring->head, head + 1, memory_order_release);
	return true;
}

/*
 * Pop: the acquire load of head pairs with the pusher's release, so the
 * slot and the batch it names are visible; the release store of tail
 * tells the pusher the slot has been read.
 */
bool
log_spsc_pop(struct log_spsc *ring, uint32_t *value_out)
{
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_acquire);

	if (head == tail)
		return false;
	*value_out = ring->slots[tail & ring->mask];
	atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
	return true;
}

/* Like pop, without taking the slot (the consumer decides after a look). */
bool
log_spsc_peek(struct log_spsc *ring, uint32_t *value_out)
{
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_acquire);

	if (head == tail)
		return false;
	*value_out = ring->slots[tail & ring->mask];
	return true;
}

/* Pusher side: no free slot (the popper can only make room). */
bool
log_spsc_full(struct log_spsc *ring)
{
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);

	return head - atomic_load_explicit(&ring->tail, memory_order_acquire) > ring->mask;
}

bool
log_spsc_empty(struct log_spsc *ring)
{
	return atomic_load_explicit(&ring->head, memory_order_acquire) ==
	       atomic_load_explicit(&ring->tail, memory_order_relaxed);
}

static int
spsc_init(struct log_spsc *ring, uint32_t count)
{
	uint32_t size = 1;

	while (size < count)
		size <<= 1;
	ring->slots = calloc(size, sizeof(uint32_t));
	if (ring->slots == NULL)
		return -ENOMEM;
	ring->mask = size - 1;
	atomic_init(&ring->head, 0);
	atomic_init(&ring->tail, 0);
	return 0;
}

static int
producer_init(struct log *log, struct log_producer *producer, uint32_t index)
{
	uint32_t count = log->config.batches_per_producer;
	uint8_t *mem = (uint8_t *)log->batch_mem.addr +
		       (size_t)index * count * log->config.batch_size;

	producer->log = log;
	producer->index = index;
	producer->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	producer->batches = calloc(count, sizeof(*producer->batches));
	producer->free_stack = calloc(count, sizeof(uint32_t));
	if (producer->event_fd < 0 || producer->batches == NULL || producer->free_stack == NULL)
		return -ENOMEM;
	if (log_crypt_open(&producer->crypt) != 0)
		return -ENOMEM;
	if (spsc_init(&producer->submit, count) != 0 || spsc_init(&producer->done, count) != 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++) {
		producer->batches[i].buf = mem + (size_t)i * log->config.batch_size;
		producer->batches[i].index = i;
		producer->batches[i].producer = producer;
		producer->free_stack[i] = count - 1 - i;
	}
	producer->free_count = count;
	atomic_init(&producer->open, false);
	atomic_init(&producer->signal_armed, false);
	return 0;
}

int
log_producers_init(struct log *log)
{
	const struct log_config *c = &log->config;
	int err;

	err = log_mem_alloc(&log->batch_mem,
			    (size_t)c->producers_max * c->batches_per_producer * c->batch_size);
	if (err != 0)
		return err;
	log->producers = calloc(c->producers_max, sizeof(*log->producers));
	if (log->producers == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->producers_max; i++) {
		log->producers[i].event_fd = -1;
		err = producer_init(log, &log->producers[i], i);
		if (err != 0)
			return err;
	}
	return 0;
}

void
log_producers_fini(struct log *log)
{
	if (log->producers == NULL)
		return;
	for (uint32_t i = 0; i < log->config.producers_max; i++) {
		struct log_producer *p = &log->producers[i];

		if (p->event_fd >= 0)
			close(p->event_fd);
		free(p->batches);
		free(p->free_stack);
		free(p->submit.slots);
		free(p->done.slots);
		log_crypt_close(p->crypt);
	}
	free(log->producers);
	log_mem_free(&log->batch_mem);
}

int
log_producer_open(struct log *log, struct log_producer **producer_out)
{
	uint32_t count;

	if (log->config.read_only)
		return -EROFS;
	pthread_mutex_lock(&log->producer_lock);
	count = atomic_load(&log->producer_count);
	for (uint32_t i = 0; i < log->config.producers_max; i++) {
		struct log_producer *p = &log->producers[i];

		if (atomic_load(&p->open))
			continue;
		assert(p->free_count == log->config.batches_per_producer);
		atomic_store(&p->signal_armed, false);
		atomic_store(&p->napping, false);
		atomic_store(&p->open, true);
		/* The writer scans producers below producer_count: publish after init. */
		if (i >= count)
			atomic_store_explicit(&log->producer_count, i + 1, memory_order_release);
		pthread_mutex_unlock(&log->producer_lock);
		*producer_out = p;
		return 0;
	}
	pthread_mutex_unlock(&log->producer_lock);
	return -EMFILE;
}

/*
 * Waits for the producer's batches in flight (with a writer thread), then
 * frees its slot. Without a writer thread the caller must have drained it.
 */
void
log_producer_close(struct log_producer *producer)
{
	struct log *log = producer->log;
	struct log_completion drop[16];

	while (producer->free_count < log->config.batches_per_producer) {
		if (log_completions_poll(producer, drop, ARRAY_SIZE(drop)) != 0)
			continue;
		if (!log->config.writer_thread)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
	}
	pthread_mutex_lock(&log->producer_lock);
	atomic_store(&producer->open, false);
	pthread_mutex_unlock(&log->producer_lock);
}

uint32_t
log_batches_free(const struct log_producer *producer)
{
	return producer->free_count;
}

int
log_producer_event_fd(struct log_producer *producer)
{
	/* Release: pairs with the writer's acquire in producers_signal(). */
	atomic_store_explicit(&producer->signal_armed, true, memory_order_release);
	return producer->event_fd;
}

int
log_producer_nap_fd(struct log_producer *producer)
{
	return producer->event_fd;
}

/*
 * The doorbell's pattern (log_batch_submit and writer_sleep, the other way
 * round): we store napping then look at the completion ring; the writer
 * pushes a completion then looks at napping (producers_signal), each with a
 * seq_cst fence between, so at least one of us sees the other: a completion
 * is never posted unsignalled while we sleep.
 */
bool
log_producer_nap_begin(struct log_producer *producer)
{
	atomic_store_explicit(&producer->napping, true, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (!log_spsc_empty(&producer->done)) {
		atomic_store_explicit(&producer->napping, false, memory_order_relaxed);
		return false;
	}
	return true;
}

void
log_producer_nap_end(struct log_producer *producer)
{
	uint64_t drain;

	atomic_store_explicit(&producer->napping, false, memory_order_relaxed);
	/* A signal of this nap, or one that raced its end: costs the next nap nothing. */
	if (read(producer->event_fd, &drain, sizeof(drain)) < 0)
		drain = 0;
}

int
log_durable_event_fd(struct log *log)
{
	/* Release: pairs with the writer's acquire in producers_signal(). */
	atomic_store_explicit(&log->durable_armed, true, memory_order_release);
	return log->durable_fd;
}

struct log_batch *
log_batch_get(struct log_producer *producer)
{
	struct log_batch *batch;

	if (producer->free_count == 0)
		return NULL;
	batch = &producer->batches[producer->free_stack[--producer->free_count]];
	batch->used = LOG_BATCH_HEADER_SIZE;
	batch->record_count = 0;
	batch->base_arrival_ns = 0;
	batch->arrival_max_ns = 0;
	return batch;
}

uint32_t
log_batch_size_for_record(uint32_t data_size)
{
	return LOG_BATCH_HEADER_SIZE + LOG_BATCH_TRAILER_SIZE +
	       log_record_size_max(SLUICE_PARTITION_KEY_SIZE_MAX, true, data_size);
}

/*
 * Records leave room for an encryption trailer in every batch: whether the
 * batch is encrypted is known only at submit (its shard's stream).
 */
int
log_batch_add(struct log_batch *batch, const struct log_record_in *record)
{
	uint32_t batch_size = batch->producer->log->config.batch_size - LOG_BATCH_TRAILER_SIZE;
	int size;

	if (log_record_validate(record) != 0)
		return -EINVAL;
	if (log_record_size_max(record->partition_key_size, record->explicit_hash_key != NULL,
				record->data_size) > batch_size - LOG_BATCH_HEADER_SIZE)
		return -EMSGSIZE;
	if (batch->record_count == 0) {
		batch->base_arrival_ns = record->arrival_ns;
		batch->arrival_max_ns = record->arrival_ns;
	}
	size = log_record_encode(batch->buf + batch->used, batch_size - batch->used,
				 batch->base_arrival_ns, record);
	if (size < 0)
		return size;
	batch->used += (uint32_t)size;
	batch->record_count++;
	batch->arrival_max_ns = max_u64(batch->arrival_max_ns, record->arrival_ns);
	return 0;
}

/* Whole records from the front of `records` that fit in `room` bytes; their bytes in *taken. */
static uint32_t
encoded_prefix(const uint8_t *records, uint32_t size, uint32_t count, uint32_t room,
	       uint32_t *taken)
{
	const uint8_t *pos = records;
	const uint8_t *end = records + size;
	uint32_t n = 0;

	for (; n < count; n++) {
		struct record_wire r;
		const uint8_t *next = record_wire_next(pos, end, &r);

		assert(next != NULL);
		if ((uint32_t)(next - records) > room)
			break;
		pos = next;
	}
	*taken = (uint32_t)(pos - records);
	return n;
}

int
log_batch_add_encoded(struct log_batch *batch, const uint8_t *records, uint32_t size,
		      uint32_t count, uint64_t arrival_ns, uint32_t *size_taken)
{
	/* Room for an encryption trailer stays free, as in log_batch_add. */
	uint32_t batch_size = batch->producer->log->config.batch_size - LOG_BATCH_TRAILER_SIZE;
	uint32_t room = batch_size - batch->used;
	uint32_t n = count;

	assert(count > 0);
	*size_taken = size;
	if (size > room) {
		n = encoded_prefix(records, size, count, room, size_taken);
		if (n == 0 && batch->record_count == 0)
			return -EMSGSIZE;
		if (n == 0)
			return 0;
	}
	if (batch->record_count == 0) {
		batch->base_arrival_ns = arrival_ns;
		batch->arrival_max_ns = arrival_ns;
	}
	memcpy(batch->buf + batch->used, records, *size_taken);
	batch->used += *size_taken;
	batch->record_count += n;
	return (int)n;
}

uint64_t
log_batch_base_arrival_ns(const struct log_batch *batch)
{
	return batch->base_arrival_ns;
}

uint32_t
log_batch_record_count(const struct log_batch *batch)
{
	return batch->record_count;
}

void
log_batch_put(struct log_producer *producer, struct log_batch *batch)
{
	assert(batch->producer == producer);
	assert(producer->free_count < producer->log->config.batches_per_producer);
	producer->free_stack[producer->free_count++] = batch->index;
}

int
log_batch_submit(struct log_producer *producer, struct log_batch *batch,
		 uint64_t shard_id, uint64_t cookie)
{
	return log_batch_submit_at(producer, batch, shard_id, UINT64_MAX, LOG_EPOCH_NONE, cookie);
}

int
log_batch_submit_at(struct log_producer *producer, struct log_batch *batch,
		    uint64_t shard_id, uint64_t seq_first, uint64_t epoch, uint64_t cookie)
{
	struct log *log = producer->log;
	uint32_t flags;
	bool pushed;
	int err;

	assert(batch->producer == producer);
	if (batch->record_count == 0)
		return -EINVAL;
	/* Refuse before encrypting: a batch handed back must be as it was given. */
	if (log_spsc_full(&producer->submit))
		return -EAGAIN;
	batch->shard_id = shard_id;
	batch->cookie = cookie;
	batch->seq_expect = seq_first;
	batch->epoch = epoch;
	err = log_batch_encrypt(log, producer->crypt, batch, &flags);
	if (err != 0)
		return err;
	if (flags != 0)
		log_stat_add(&log->stats.batches_encrypted, 1);
	/* The body CRC is the producer's share of the work, off the writer's core. */
	log_batch_seal_body(batch->buf, batch->used, batch->record_count,
			    batch->base_arrival_ns, flags);
	/* Only this thread pushes: the room seen above is still there. */
	pushed = log_spsc_push(&producer->submit, batch->index);
	assert(pushed);
	/*
	 * Dekker with the writer going to sleep: our push (above) and its
	 * sleeping flag store are both followed by a full fence, so either it
	 * sees the batch or we see the flag and ring the doorbell.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&log->writer_sleeping, memory_order_relaxed))
		log_writer_doorbell(log);
	return 0;
}

static uint32_t
completions_pop(struct log_producer *producer, struct log_completion *out, uint32_t count)
{
	uint32_t got = 0;
	uint32_t index;

	while (got < count && log_spsc_pop(&producer->done, &index)) {
		struct log_batch *batch = &producer->batches[index];
		struct log_completion *c = &out[got++];

		c->cookie = batch->cookie;
		c->shard_id = batch->shard_id;
		c->seq_first = batch->seq_first;
		c->record_count = batch->record_count;
		c->error = batch->error;
		c->durable_ns = batch->durable_ns;
		log_batch_put(producer, batch);
	}
	return got;
}

uint32_t
log_completions_poll(struct log_producer *producer, struct log_completion *completions_out,
		     uint32_t count)
{
	uint32_t got = completions_pop(producer, completions_out, count);
	uint64_t drain;

	if (got == 0)
		return 0;
	/* Nobody waits on the eventfd: no system call on a polling core. */
	if (!atomic_load_explicit(&producer->signal_armed, memory_order_relaxed))
		return got;
	/*
	 * Clear the eventfd so epoll users see the next posting, then pop
	 * again: a completion pushed between our pop and this read had its
	 * signal consumed here, so it must be taken now.
	 */
	if (read(producer->event_fd, &drain, sizeof(drain)) < 0)
		drain = 0;
	return got + completions_pop(producer, completions_out + got, count - got);
}
