/*
 * dp_ingest: record frames through a worker on a net_ring port into a real
 * log (io_uring on a temp dir, writer thread on). The tests send datagrams, pump the
 * worker until the answer arrives, decode the ACK/NACK the worker sent, and
 * read the records back from the log: content, shard (MD5 routing as
 * Kinesis), sequence numbers, exactly-once for duplicates, and every refusal.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "nvme-log/log.h"
#include "tests/dataplane/dp_test.h"
#include "tests/support/seed.h"

#define STREAM_ID 5u
#define SHARDS 4u

static struct log *test_log;
static char log_dir[64];
static uint32_t test_batch_size = 16u << 10; /* Log batch bytes of the next open_log(). */

static void
publish_stream(void)
{
	struct dp_route_builder *b;

	cr_assert_eq(dp_route_builder_open(1, SHARDS, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "orders", STREAM_ID), 0);
	for (uint32_t i = 0; i < SHARDS; i++) {
		hashkey_t end = i + 1 < SHARDS ? hashkey_range_start(i + 1, SHARDS) - 1 : HASHKEY_MAX;

		cr_assert_eq(dp_route_add_range(b, STREAM_ID, hashkey_range_start(i, SHARDS), end,
						LOG_SHARD_ID(STREAM_ID, i)), 0);
	}
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	dp_route_builder_close(b);
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const struct frame_auth_key test_key = {
	.key_id = 77,
	.key_size = 32,
	.key = "0123456789abcdef0123456789abcdef",
};

static void
open_log(uint32_t batches_per_producer)
{
	struct log_config lc;

	snprintf(log_dir, sizeof(log_dir), "/tmp/sluice-dp-test-XXXXXX");
	cr_assert_not_null(mkdtemp(log_dir));
	log_config_default(&lc);
	lc.dir_path = log_dir;
	lc.segment_size = 4u << 20;
	lc.batch_size = test_batch_size;
	lc.commit_window_us = 50;
	if (batches_per_producer != 0)
		lc.batches_per_producer = batches_per_producer;
	cr_assert_eq(log_open(&lc, &test_log), 0);
}

static void
setup(void)
{
	open_log(0);
	dp_test_open(test_log);
	publish_stream();
}

static void
setup_auth(void)
{
	open_log(0);
	dp_test_open_auth(test_log, &test_key, 1, true);
	publish_stream();
}

/*
 * A log pool of 5 batches per producer: at most 5 spares, and a frame over 4
 * shards needs 4 + 1 of them.
 */
static void
setup_small_pool(void)
{
	open_log(5);
	dp_test_open(test_log);
	publish_stream();
}

static void
teardown(void)
{
	dp_test_close();
	log_close(test_log);
	remove_tree(log_dir);
}

TestSuite(dp_ingest, .init = setup, .fini = teardown, .timeout = 30);

struct rec {
	const char *key;
	const char *data;
	uint8_t hash_kind;
	uint8_t hash_key[16];
};

/* Bytes records_frame() may write (its callers' buffers hold 1,500). */
static uint32_t frame_capacity = 1400;

/*
 * Writes a frame of `params`' type; returns its size. In a SHARD_RECORDS frame
 * a record without a hash key gets its MD5.
 */
static uint16_t
frame_of(uint8_t *buf, const struct frame_batch_params *params, const struct rec *recs,
	 uint32_t count)
{
	struct frame_writer fw;
	int size;

	cr_assert_eq(frame_writer_begin(&fw, buf, frame_capacity, params), 0);
	for (uint32_t i = 0; i < count; i++) {
		bool md5 = params->shard_grouped && recs[i].hash_kind == FRAME_HASH_NONE;
		uint8_t digest[16];
		struct frame_record r = {
			.key = (const uint8_t *)recs[i].key,
			.key_size = (uint16_t)strlen(recs[i].key),
			.data = (const uint8_t *)recs[i].data,
			.data_size = (uint32_t)strlen(recs[i].data),
			.hash_kind = md5 ? FRAME_HASH_MD5 : recs[i].hash_kind,
			.hash_key = md5 ? digest : recs[i].hash_kind != FRAME_HASH_NONE ?
				    recs[i].hash_key : NULL,
		};

		if (md5)
			hashkey_md5(r.key, r.key_size, digest);
		cr_assert_eq(frame_writer_add(&fw, &r), 0);
	}
	size = frame_writer_finish(&fw);
	cr_assert_gt(size, 0);
	return (uint16_t)size;
}

/* A RECORDS frame for stream `stream` from producer `producer`; returns its size. */
static uint16_t
records_frame(uint8_t *buf, const char *stream, uint64_t producer, uint64_t seq, uint8_t mode,
	      const struct rec *recs, uint32_t count)
{
	struct frame_batch_params params = {
		.producer_id = producer,
		.batch_seq = seq,
		.producer_epoch = 1,
		.ack_mode = mode,
		.stream_name = stream,
		.stream_name_size = (uint8_t)strlen(stream),
	};

	return frame_of(buf, &params, recs, count);
}

static void
send_payload(const void *payload, uint16_t size)
{
	uint8_t frame[2048];

	dp_test_inject(frame, dp_test_udp_frame(frame, DP_TEST_PORT, payload, size));
}

/* Polls the worker until it sent something or `ms` passed; returns the packet or NULL. */
static struct rte_mbuf *
pump_until_sent(uint32_t ms)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)ms * 1000000u;
	struct rte_mbuf *m;

	do {
		dp_test_poll();
		if (dp_test_sent(&m, 1) == 1)
			return m;
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	} while (clock_mono_ns() < deadline);
	return NULL;
}

/* Polls until nothing is staged, in flight or waiting to be reported (up to 3 s). */
static void
pump_until_idle(void)
{
	uint64_t deadline = clock_mono_ns() + 3000000000u;
	const struct dp_ingest *ing = &dp_test->workers[0].ingest;
	struct rte_mbuf *m;

	do {
		dp_test_poll();
		while (dp_test_sent(&m, 1) == 1)
			rte_pktmbuf_free(m);
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	} while ((!dp_ingest_is_idle(&dp_test->workers[0]) || ing->in_flight != 0) &&
		 clock_mono_ns() < deadline);
}

/* Decodes the ACK/NACK in `m` (freed) into *ack; runs are copied to `runs`. */
static void
decode_answer(struct rte_mbuf *m, struct frame_ack *ack, struct frame_ack_run *runs)
{
	const uint8_t *p = rte_pktmbuf_mtod_offset(m, const uint8_t *, 42);
	uint32_t size = m->pkt_len - 42;
	const struct rte_udp_hdr *udp = rte_pktmbuf_mtod_offset(m, const struct rte_udp_hdr *, 34);

	cr_assert_eq(udp->dst_port, rte_cpu_to_be_16(DP_TEST_PEER_PORT), "answer goes to the sender");
	cr_assert_eq(frame_ack_decode(p, size, ack), FRAME_OK);
	for (uint16_t i = 0; i < ack->run_count; i++)
		frame_ack_run_get(ack, i, &runs[i]);
	ack->runs = runs;
	rte_pktmbuf_free(m);
}

static uint32_t
shard_of(const char *key)
{
	hashkey_t h = hashkey_from_partition_key(key, strlen(key));

	for (uint32_t i = SHARDS; i-- > 0;)
		if (h >= hashkey_range_start(i, SHARDS))
			return i;
	return 0;
}

struct read_check {
	const char *key;
	const char *data;
	uint32_t seen;
};

static int
read_one(void *arg, const struct log_record_out *r)
{
	struct read_check *c = arg;

	cr_assert_eq(r->partition_key_size, strlen(c->key));
	cr_assert_arr_eq(r->partition_key, c->key, r->partition_key_size);
	cr_assert_eq(r->data_size, strlen(c->data));
	cr_assert_arr_eq(r->data, c->data, r->data_size);
	c->seen++;
	return 1;
}

/* Asserts the log holds (key, data) at (shard, seq). */
static void
expect_in_log(uint32_t shard, uint64_t seq, const char *key, const char *data)
{
	struct log_reader *reader;
	struct read_check c = { key, data, 0 };
	uint64_t next;

	cr_assert_eq(log_reader_open(test_log, &reader), 0);
	cr_assert_eq(log_read(reader, LOG_SHARD_ID(STREAM_ID, shard), seq, 1, 1u << 20, read_one,
			      &c, &next), 1);
	cr_assert_eq(c.seen, 1);
	log_reader_close(reader);
}

static uint64_t
shard_durable(uint32_t shard)
{
	struct log_shard_info info;

	cr_assert_eq(log_shard_info(test_log, LOG_SHARD_ID(STREAM_ID, shard), &info), 0);
	return info.seq_durable;
}

Test(dp_ingest, acks_one_record_when_durable)
{
	uint8_t buf[1500];
	struct rec r = { .key = "device-17", .data = "temp=21.5" };
	struct frame_ack ack;
	struct frame_ack_run runs[8];
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "orders", 42, 1, FRAME_ACK_DURABLE, &r, 1));
	m = pump_until_sent(3000);
	cr_assert_not_null(m, "a durable ACK");
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.status, FRAME_STATUS_OK);
	cr_assert_eq(ack.flags & FRAME_F_ACK_MODE_MASK, FRAME_ACK_DURABLE);
	cr_assert_eq(ack.credit_size, FRAME_CREDIT_UNLIMITED, "an idle worker sets no limit");
	cr_assert_eq(ack.producer_id, 42);
	cr_assert_eq(ack.batch_seq, 1);
	cr_assert_eq(ack.run_count, 1);
	cr_assert_eq(runs[0].shard_index, shard_of("device-17"));
	cr_assert_eq(runs[0].count, 1);
	cr_assert_eq(runs[0].seq_first, 0);
	expect_in_log(runs[0].shard_index, 0, "device-17", "temp=21.5");
	cr_assert_eq(dp_test_counter(DP_FRAMES_ACCEPTED), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 1);
	cr_assert_eq(dp_test_counter(DP_ACKS_SENT), 1);
	dp_test_poll();
	cr_assert(dp_ingest_is_idle(&dp_test->workers[0]), "an idle worker may sleep");
	cr_assert_eq(dp_test->workers[0].ingest.in_flight, 0);
}

/* The next answer sent by a pass at `tsc` (a test clock), or NULL after 3 s of passes. */
static struct rte_mbuf *
pump_at(uint64_t tsc)
{
	uint64_t deadline = clock_mono_ns() + 3000000000u;
	struct rte_mbuf *m;

	do {
		dp_worker_poll(&dp_test->workers[0], tsc);
		if (dp_test_sent(&m, 1) == 1)
			return m;
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	} while (clock_mono_ns() < deadline);
	return NULL;
}

/*
 * Admission by age: a durable ACK that came admit_wait_ms after its frame (the
 * worker's clock is the test's here) puts the worker behind at the next interval: a
 * new durable frame is refused THROTTLED (drop_frames_late), nothing stored; once an
 * interval passes with nothing waiting, frames are taken again.
 */
Test(dp_ingest, refuses_new_frames_while_acks_come_late)
{
	uint8_t buf[1500];
	struct rec r = { .key = "device-17", .data = "temp=21.5" };
	uint64_t hz = rte_get_tsc_hz();
	uint64_t t0 = rte_rdtsc();
	uint64_t late = t0 + (uint64_t)(dp_test->config.admit_wait_ms + 50) * hz / 1000u;
	uint64_t interval = (uint64_t)DP_ADMIT_INTERVAL_MS * hz / 1000u + 1;
	struct frame_ack ack;
	struct frame_ack_run runs[8];
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "orders", 42, 1, FRAME_ACK_DURABLE, &r, 1));
	dp_worker_poll(&dp_test->workers[0], t0);
	m = pump_at(late);
	cr_assert_not_null(m, "a durable ACK");
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK, "a frame taken before is answered");
	rte_pktmbuf_free(m);
	dp_worker_poll(&dp_test->workers[0], late + interval); /* The interval's verdict. */
	cr_assert(dp_test->workers[0].ingest.behind);
	cr_assert_not(dp_ingest_can_take(&dp_test->workers[0]), "TCP: the window closes");

	send_payload(buf, records_frame(buf, "orders", 42, 2, FRAME_ACK_DURABLE, &r, 1));
	m = pump_at(late + interval + 1);
	cr_assert_not_null(m, "an answer");
	decode_answer(m, &ack, runs);
	rte_pktmbuf_free(m);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_THROTTLED);
	cr_assert_eq(ack.batch_seq, 2);
	cr_assert_eq(dp_test_counter(DP_DROP_FRAMES_LATE), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1, "the refused frame was not staged");

	/* An interval with no frame waiting: no longer behind, the retry is taken. */
	dp_worker_poll(&dp_test->workers[0], late + 2 * interval + 1);
	cr_assert_not(dp_test->workers[0].ingest.behind);
	send_payload(buf, records_frame(buf, "orders", 42, 2, FRAME_ACK_DURABLE, &r, 1));
	dp_worker_poll(&dp_test->workers[0], late + 2 * interval + 2);
	m = pump_at(late + 3 * interval); /* Later: its batch comes of age and goes to the log. */
	cr_assert_not_null(m, "a durable ACK");
	decode_answer(m, &ack, runs);
	rte_pktmbuf_free(m);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.batch_seq, 2);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 2);
}

Test(dp_ingest, acks_every_record_of_a_multi_record_frame)
{
	static char keys[12][16];
	static char datas[12][16];
	struct rec recs[12];
	uint8_t buf[1500];
	struct frame_ack ack;
	struct frame_ack_run runs[16];
	struct rte_mbuf *m;
	uint32_t record = 0;

	for (uint32_t i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%u", i);
		snprintf(datas[i], sizeof(datas[i]), "data-%u", i * 7);
		recs[i] = (struct rec){ .key = keys[i], .data = datas[i] };
	}
	send_payload(buf, records_frame(buf, "orders", 7, 100, FRAME_ACK_DURABLE, recs, 12));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.status, FRAME_STATUS_OK);
	cr_assert_eq(ack.record_count, 12);
	for (uint16_t r = 0; r < ack.run_count; r++) {
		for (uint16_t k = 0; k < runs[r].count; k++, record++) {
			cr_assert_eq(runs[r].shard_index, shard_of(keys[record]), "record %u", record);
			expect_in_log(runs[r].shard_index, runs[r].seq_first + k, keys[record],
				      datas[record]);
		}
	}
	cr_assert_eq(record, 12, "the runs cover every record once");
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 12);
}

Test(dp_ingest, stores_a_retransmitted_frame_once)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "once" };
	uint16_t size = records_frame(buf, "orders", 9, 5, FRAME_ACK_DURABLE, &r, 1);
	struct frame_ack first;
	struct frame_ack again;
	struct frame_ack_run runs1[4];
	struct frame_ack_run runs2[4];
	struct rte_mbuf *m;

	/* Twice before it is durable (the copy is dropped), once after (ACK replayed). */
	send_payload(buf, size);
	send_payload(buf, size);
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &first, runs1);
	send_payload(buf, size);
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &again, runs2);
	cr_assert(again.flags & FRAME_F_DUPLICATE);
	cr_assert_eq(again.run_count, 1);
	cr_assert_eq(runs2[0].shard_index, runs1[0].shard_index);
	cr_assert_eq(runs2[0].seq_first, runs1[0].seq_first);
	cr_assert_eq(dp_test_counter(DP_FRAMES_DUPLICATE), 2);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1);
	cr_assert_eq(shard_durable(shard_of("k")), 1, "one record in the shard");
}

Test(dp_ingest, nacks_an_unknown_stream)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "x" };
	struct frame_ack ack;
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "nosuch", 1, 1, FRAME_ACK_DURABLE, &r, 1));
	m = pump_until_sent(1000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_UNKNOWN_STREAM);
	cr_assert_eq(dp_test_counter(DP_FRAMES_UNKNOWN_STREAM), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);
}

Test(dp_ingest, refuses_every_truncation_and_bit_flip)
{
	uint8_t buf[1500];
	uint8_t bad[1500];
	struct rec r = { .key = "key", .data = "some data" };
	uint16_t size = records_frame(buf, "orders", 3, 1, FRAME_ACK_NONE, &r, 1);
	uint64_t refused = 0;

	for (uint16_t cut = 1; cut < size; cut++) {
		send_payload(buf, cut);
		dp_test_poll();
		refused++;
	}
	for (uint32_t bit = 0; bit < 8u * size; bit += 7) {
		memcpy(bad, buf, size);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		send_payload(bad, size);
		dp_test_poll();
		refused++;
	}
	cr_assert_eq(dp_test_counter(DP_FRAMES_MALFORMED), refused);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);
}

Test(dp_ingest, ack_mode_none_stores_silently_and_received_acks_at_once)
{
	uint8_t buf[1500];
	struct rec r = { .key = "quiet", .data = "q" };
	struct frame_ack ack;
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "orders", 11, 1, FRAME_ACK_NONE, &r, 1));
	cr_assert_null(pump_until_sent(50), "ack mode none: no answer");
	pump_until_idle();
	cr_assert_eq(shard_durable(shard_of("quiet")), 1);

	send_payload(buf, records_frame(buf, "orders", 11, 2, FRAME_ACK_RECEIVED, &r, 1));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(&m, 1), 1, "RECEIVED is answered in the same pass");
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.flags & FRAME_F_ACK_MODE_MASK, FRAME_ACK_RECEIVED);
	cr_assert_eq(ack.run_count, 0);
}

Test(dp_ingest, routes_by_explicit_and_producer_hash_keys)
{
	uint8_t buf[1500];
	struct rec recs[2] = {
		{ .key = "a", .data = "explicit", .hash_kind = FRAME_HASH_EXPLICIT },
		{ .key = "b", .data = "producer-md5", .hash_kind = FRAME_HASH_MD5 },
	};
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	struct rte_mbuf *m;

	/* Explicit: the last shard's range. Producer MD5: trusted as given (shard 0). */
	hashkey_to_be_bytes(HASHKEY_MAX - 5, recs[0].hash_key);
	hashkey_to_be_bytes(12345, recs[1].hash_key);
	send_payload(buf, records_frame(buf, "orders", 12, 1, FRAME_ACK_DURABLE, recs, 2));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.run_count, 2);
	cr_assert_eq(runs[0].shard_index, SHARDS - 1);
	cr_assert_eq(runs[1].shard_index, 0);
	cr_assert_eq(dp_test_counter(DP_MD5_COMPUTED), 0, "no MD5 for hashed records");
}

Test(dp_ingest, caches_repeated_partition_keys)
{
	uint8_t buf[1500];
	struct rec recs[3] = {
		{ .key = "sensor-1", .data = "1" },
		{ .key = "sensor-1", .data = "2" },
		{ .key = "sensor-2", .data = "3" },
	};

	send_payload(buf, records_frame(buf, "orders", 0, 0, FRAME_ACK_NONE, recs, 3));
	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_MD5_COMPUTED), 2);
	cr_assert_eq(dp_test_counter(DP_MD5_CACHE_HITS), 1);
}

/* The burst test's records: what each shard must hold, in order. */
#define BURST_DATAGRAMS 32          /* One RX burst ... */
#define BURST_FRAMES 3              /* ... of 96 frames: more than the worker holds at once. */
#define BURST_RECORDS 4

struct burst_check {
	char (*keys)[72];
	char (*data)[16];
	const uint32_t *order;      /* Record indexes of one shard, in arrival order. */
	uint32_t count;
	uint32_t seen;
};

static int
burst_read_one(void *arg, const struct log_record_out *r)
{
	struct burst_check *c = arg;
	uint32_t want;

	cr_assert_lt(c->seen, c->count, "more records than sent");
	want = c->order[c->seen++];
	cr_assert_eq(r->partition_key_size, strlen(c->keys[want]), "record %u", want);
	cr_assert_arr_eq(r->partition_key, c->keys[want], r->partition_key_size, "record %u", want);
	cr_assert_eq(r->data_size, strlen(c->data[want]), "record %u", want);
	cr_assert_arr_eq(r->data, c->data[want], r->data_size, "record %u", want);
	return 0;
}

static void
burst_record(uint32_t n, char *key, char *data, struct rec *r)
{
	/* Distinct keys (MD5), repeats within the burst (cache), long keys, producer hashes. */
	switch (n % 4) {
	case 0:
		snprintf(key, 72, "distinct-%u", n);
		break;
	case 1:
		snprintf(key, 72, "device-%u", n % 5);
		break;
	case 2:
		snprintf(key, 72, "a-partition-key-longer-than-the-key-cache-holds-%020u", n);
		break;
	default:
		snprintf(key, 72, "hashed-%u", n);
		r->hash_kind = FRAME_HASH_MD5;
		hashkey_md5(key, strlen(key), r->hash_key);
		break;
	}
	snprintf(data, 16, "d%u", n);
	r->key = key;
	r->data = data;
}

/*
 * One RX burst whose frames need MD5, hit the key cache (also on keys first
 * seen in the same burst), skip it (long keys) or carry hash keys, with more
 * frames than are held at once: every record lands in its MD5 shard, each
 * shard in arrival order.
 */
Test(dp_ingest, routes_a_burst_of_mixed_keys_in_arrival_order)
{
	static char keys[BURST_DATAGRAMS * BURST_FRAMES * BURST_RECORDS][72];
	static char data[BURST_DATAGRAMS * BURST_FRAMES * BURST_RECORDS][16];
	static uint32_t order[SHARDS][BURST_DATAGRAMS * BURST_FRAMES * BURST_RECORDS];
	uint32_t order_count[SHARDS] = { 0 };
	uint32_t n = 0;
	struct log_reader *reader;

	for (uint32_t d = 0; d < BURST_DATAGRAMS; d++) {
		uint8_t buf[1500];
		uint16_t size = 0;

		for (uint32_t f = 0; f < BURST_FRAMES; f++) {
			struct rec recs[BURST_RECORDS] = { 0 };

			for (uint32_t i = 0; i < BURST_RECORDS; i++, n++) {
				uint32_t shard;

				burst_record(n, keys[n], data[n], &recs[i]);
				shard = shard_of(keys[n]);
				order[shard][order_count[shard]++] = n;
			}
			size = (uint16_t)(size + records_frame(buf + size, "orders", 0, 0,
							       FRAME_ACK_NONE, recs,
							       BURST_RECORDS));
		}
		send_payload(buf, size);
	}
	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_RX_PACKETS), BURST_DATAGRAMS, "one burst");
	cr_assert_eq(dp_test_counter(DP_FRAMES_ACCEPTED), BURST_DATAGRAMS * BURST_FRAMES);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), n);
	/* Every record without a hash key is hashed or found; the five devices mostly found. */
	cr_assert_eq(dp_test_counter(DP_MD5_COMPUTED) + dp_test_counter(DP_MD5_CACHE_HITS),
		     n * 3 / 4);
	cr_assert_geq(dp_test_counter(DP_MD5_CACHE_HITS), n / 4 - 10);
	pump_until_idle();
	cr_assert_eq(log_reader_open(test_log, &reader), 0);
	for (uint32_t s = 0; s < SHARDS; s++) {
		struct burst_check c = { keys, data, order[s], order_count[s], 0 };
		uint64_t next;

		cr_assert_gt(order_count[s], 0);
		cr_assert_eq(log_read(reader, LOG_SHARD_ID(STREAM_ID, s), 0, order_count[s],
				      1u << 20, burst_read_one, &c, &next), (int)order_count[s]);
		cr_assert_eq(c.seen, order_count[s], "shard %u", s);
	}
	log_reader_close(reader);
}

Test(dp_ingest, answers_two_frames_in_one_datagram)
{
	uint8_t buf[1500];
	struct rec r = { .key = "two", .data = "frames" };
	uint16_t first = records_frame(buf, "orders", 20, 1, FRAME_ACK_RECEIVED, &r, 1);
	uint16_t second = records_frame(buf + first, "orders", 20, 2, FRAME_ACK_RECEIVED, &r, 1);
	struct rte_mbuf *m[4];

	send_payload(buf, (uint16_t)(first + second));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(m, 4), 2);
	rte_pktmbuf_free(m[0]);
	rte_pktmbuf_free(m[1]);
	cr_assert_eq(dp_test_counter(DP_FRAMES_ACCEPTED), 2);
}

Test(dp_ingest, rate_limits_nacks)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "x" };
	uint16_t size = records_frame(buf, "nosuch", 1, 1, FRAME_ACK_DURABLE, &r, 1);
	struct rte_mbuf *m[32];
	uint64_t start = clock_mono_ns();
	double elapsed_s;

	for (uint32_t i = 0; i < 200; i++) {
		send_payload(buf, size);
		if (i % 16 == 15) {
			dp_test_poll();
			while (dp_test_sent(m, 32) > 0)
				;
		}
	}
	dp_test_poll();
	elapsed_s = (double)(clock_mono_ns() - start) / 1e9;
	/* The bucket refills while the test runs: allow for it, whatever the machine's load. */
	cr_assert_leq((double)dp_test_counter(DP_NACKS_SENT),
		      (double)dp_test->workers[0].ingest.nack_burst + DP_NACK_PER_S * elapsed_s + 1,
		      "%.4f s", elapsed_s);
	cr_assert_eq(dp_test_counter(DP_NACKS_SENT) + dp_test_counter(DP_NACKS_SUPPRESSED), 200);
}

/* One mbuf standing for `copies` packets (its reference count), `size` zero bytes. */
static struct rte_mbuf *
filler(struct rte_mempool *pool, uint16_t copies)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	cr_assert_not_null(m);
	cr_assert_not_null(rte_pktmbuf_append(m, 64));
	memset(rte_pktmbuf_mtod(m, void *), 0, 64); /* No ethertype: dropped if read. */
	rte_mbuf_refcnt_update(m, (int16_t)(copies - 1));
	return m;
}

/*
 * A device that takes no answers (its TX ring full): the worker leaves the requests in
 * the device and keeps the answers it holds, rather than refusing more requests whose
 * NACKs would be dropped (tx_dropped); once the device takes answers again, it answers.
 */
Test(dp_ingest, waits_for_the_device_rather_than_dropping_answers)
{
	struct dp_worker *w = &dp_test->workers[0];
	const uint16_t held = DP_TX_BACKLOG - DP_TX_RX_HEADROOM + 1;
	struct rte_mbuf *ring_filler = filler(dp_test_pool, UINT16_MAX / 2);
	struct rte_mbuf *backlog_filler = filler(dp_test_pool, held);
	struct rec r = { .key = "k", .data = "x" };
	uint8_t payload[1500], frame[2048];
	uint16_t size = records_frame(payload, "nosuch", 1, 1, FRAME_ACK_DURABLE, &r, 1);
	struct frame_ack ack;
	struct rte_mbuf *m;
	uint32_t in_ring = 0;
	uint32_t nacks = 0;
	uint16_t copies = UINT16_MAX / 2;

	/* The ring (net_ring: the worker's RX and TX queue alike) full of requests owing NACKs. */
	size = dp_test_udp_frame(frame, DP_TEST_PORT, payload, size);
	for (uint32_t i = 0; i < 8; i++) {
		m = rte_pktmbuf_alloc(dp_test_pool);
		cr_assert_not_null(m);
		memcpy(rte_pktmbuf_append(m, size), frame, size);
		cr_assert_eq(rte_eth_tx_burst(dp_test->port_id, 0, &m, 1), 1);
	}
	while (copies > 0 && rte_eth_tx_burst(dp_test->port_id, 0, &ring_filler, 1) == 1) {
		copies--;
		in_ring++;
	}
	cr_assert_gt(copies, 0, "the ring filled");
	rte_mbuf_refcnt_update(ring_filler, (int16_t)-copies);
	if (copies == UINT16_MAX / 2)
		rte_pktmbuf_free(ring_filler);
	/* The backlog with less room than an RX burst's answers. */
	for (uint16_t i = 0; i < held; i++)
		w->tx[w->tx_count++] = backlog_filler;

	dp_test_poll();
	cr_assert_eq(dp_test_counter(DP_RX_PACKETS), 0, "no request taken");
	cr_assert_eq(dp_test_counter(DP_RX_PAUSED), 1);
	cr_assert_eq(w->tx_count, held, "every answer kept");

	/* The device takes answers again (the peer reads): the requests are answered. */
	for (uint32_t i = 0; i < 8; i++) {
		cr_assert_eq(dp_test_sent(&m, 1), 1);
		rte_pktmbuf_free(m); /* The requests: the worker has not taken them. */
		send_payload(payload, records_frame(payload, "nosuch", 1, 2 + i,
						    FRAME_ACK_DURABLE, &r, 1));
	}
	while (in_ring-- > 0 && dp_test_sent(&m, 1) == 1)
		rte_pktmbuf_free(m);
	/* Each pass's output read whole before the next: the worker reads this ring too. */
	for (uint32_t pass = 0; pass < 100 && nacks < 8; pass++) {
		dp_test_poll();
		while (dp_test_sent(&m, 1) == 1) {
			if (m != backlog_filler) {
				decode_answer(m, &ack, NULL);
				cr_assert_eq(ack.status, FRAME_STATUS_UNKNOWN_STREAM);
				nacks++;
			}
			rte_pktmbuf_free(m);
		}
	}
	cr_assert_eq(nacks, 8);
	cr_assert_eq(w->tx_count, 0);
	cr_assert_eq(dp_test_counter(DP_TX_DROPPED), 0);
	cr_assert_eq(dp_test_counter(DP_NACKS_SENT), 8);
}

/* Signs a finished frame with `key` at the current wall-clock time. */
static void
sign(uint8_t *frame, uint16_t size, const struct frame_auth_key *key)
{
	frame_auth_sign(frame, size, key, clock_real_ns() / 1000000u);
}

/* A one-record frame of producer 31 with a zeroed auth trailer, to sign. */
static uint16_t
auth_frame_of(uint8_t *buf, uint32_t epoch, uint64_t seq, uint8_t ack_mode)
{
	struct frame_batch_params params = {
		.producer_id = 31,
		.batch_seq = seq,
		.producer_epoch = epoch,
		.ack_mode = ack_mode,
		.auth = true,
		.stream_name = "orders",
		.stream_name_size = 6,
	};
	struct frame_record r = {
		.key = (const uint8_t *)"signed",
		.key_size = 6,
		.data = (const uint8_t *)"payload",
		.data_size = 7,
	};
	struct frame_writer fw;
	int size;

	cr_assert_eq(frame_writer_begin(&fw, buf, 1400, &params), 0);
	cr_assert_eq(frame_writer_add(&fw, &r), 0);
	size = frame_writer_finish(&fw);
	cr_assert_gt(size, 0);
	return (uint16_t)size;
}

static uint16_t
auth_frame(uint8_t *buf, uint64_t seq)
{
	return auth_frame_of(buf, 1, seq, FRAME_ACK_RECEIVED);
}

static uint8_t
answer_status(void)
{
	struct frame_ack ack;
	struct rte_mbuf *m;

	dp_test_poll();
	cr_assert_eq(dp_test_sent(&m, 1), 1, "an answer in the same pass");
	decode_answer(m, &ack, NULL);
	return ack.type == FRAME_TYPE_ACK ? FRAME_STATUS_OK : ack.status;
}

Test(dp_ingest_auth, requires_a_valid_hmac_tag, .init = setup_auth, .fini = teardown, .timeout = 30)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "unsigned" };
	struct frame_auth_key wrong = test_key;
	uint16_t size;

	send_payload(buf, records_frame(buf, "orders", 31, 1, FRAME_ACK_RECEIVED, &r, 1));
	cr_assert_eq(answer_status(), FRAME_STATUS_AUTH_FAILED, "no tag");

	size = auth_frame(buf, 2);
	wrong.key[0] ^= 1;
	sign(buf, size, &wrong);
	send_payload(buf, size);
	cr_assert_eq(answer_status(), FRAME_STATUS_AUTH_FAILED, "tag under another key");

	size = auth_frame(buf, 3);
	sign(buf, size, &test_key);
	send_payload(buf, size);
	cr_assert_eq(answer_status(), FRAME_STATUS_OK, "signed with the producer's key");
	cr_assert_eq(dp_test_counter(DP_FRAMES_UNAUTHENTICATED), 2);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1);
}

static const struct frame_auth_key other_key = {
	.key_id = 78,
	.key_size = 32,
	.key = "fedcba9876543210fedcba9876543210",
};

static void
setup_two_keys(void)
{
	const struct frame_auth_key keys[2] = { test_key, other_key };

	open_log(0);
	dp_test_open_auth(test_log, keys, 2, true);
	publish_stream();
}

/* A one-record frame of producer 31 signed with `key`. */
static uint16_t
signed_frame(uint8_t *buf, uint32_t epoch, uint64_t seq, uint8_t ack_mode,
	     const struct frame_auth_key *key)
{
	uint16_t size = auth_frame_of(buf, epoch, seq, ack_mode);

	sign(buf, size, key);
	return size;
}

/* The answer `m` (freed): decoded into *ack; whether its tag verifies under `key`. */
static bool
answer_signed_by(struct rte_mbuf *m, struct frame_ack *ack, const struct frame_auth_key *key)
{
	const uint8_t *p = rte_pktmbuf_mtod_offset(m, const uint8_t *, 42);
	uint32_t size = m->pkt_len - 42;
	bool ok;

	cr_assert_eq(frame_ack_decode(p, size, ack), FRAME_OK);
	ok = frame_auth_verify(p, size, key, clock_real_ns() / 1000000u,
			       FRAME_AUTH_WINDOW_MS) == FRAME_OK;
	rte_pktmbuf_free(m);
	return ok;
}

/*
 * Issue 14, frame authentication: producer 31 signs with key 77. A holder of key 78 who
 * sends a frame for producer 31 with a newer epoch (which would fence 31) is NACKed
 * auth_failed and counted; 31 goes on under epoch 1. Every answer to a signed frame is
 * signed with the key the frame verified under (RECEIVED, DURABLE and the NACK), so the
 * attacker's NACK does not verify under 77: producer 31 would ignore it.
 */
Test(dp_ingest_auth, binds_a_producer_id_to_its_key_and_signs_answers, .init = setup_two_keys,
     .fini = teardown, .timeout = 30)
{
	uint8_t buf[1500];
	struct frame_ack ack;
	struct rte_mbuf *m;

	send_payload(buf, signed_frame(buf, 1, 0, FRAME_ACK_RECEIVED, &test_key));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(&m, 1), 1);
	cr_assert(answer_signed_by(m, &ack, &test_key), "the ACK is signed with key 77");
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);

	send_payload(buf, signed_frame(buf, 2, 0, FRAME_ACK_RECEIVED, &other_key));
	dp_test_poll();
	cr_assert_eq(dp_test_sent(&m, 1), 1);
	cr_assert(answer_signed_by(m, &ack, &other_key), "its NACK is signed with its key 78");
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_AUTH_FAILED);
	cr_assert_eq(dp_test_counter(DP_FRAMES_KEY_MISMATCH), 1);

	send_payload(buf, signed_frame(buf, 1, 1, FRAME_ACK_DURABLE, &test_key));
	m = pump_until_sent(3000);
	cr_assert_not_null(m, "a durable ACK");
	cr_assert(answer_signed_by(m, &ack, &test_key), "the durable ACK is signed with key 77");
	cr_assert_eq(ack.type, FRAME_TYPE_ACK, "producer 31 was not fenced (status %u)", ack.status);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 2, "the attacker's record was not stored");
	cr_assert_eq(dp_test_counter(DP_FRAMES_UNAUTHENTICATED), 0);
}

/* A frame that cannot be staged whole is refused whole: THROTTLED, nothing stored. */
Test(dp_ingest_pool, refuses_a_frame_it_cannot_stage_whole, .init = setup_small_pool,
     .fini = teardown, .timeout = 30)
{
	static char keys[64][8];
	struct rec recs[64];
	uint8_t buf[1500];
	uint32_t shards_hit = 0;
	uint32_t count = 0;

	/* Keys until all four shards are hit: needs five spares, the pool holds five ... */
	for (uint32_t i = 0; i < 64 && shards_hit != 0xf; i++) {
		snprintf(keys[i], sizeof(keys[i]), "t%u", i);
		recs[i] = (struct rec){ .key = keys[i], .data = "x" };
		shards_hit |= 1u << shard_of(keys[i]);
		count++;
	}
	cr_assert_eq(shards_hit, 0xf);
	/* ... but one batch is already open for another frame, so only four are spare. */
	send_payload(buf, records_frame(buf, "orders", 0, 0, FRAME_ACK_NONE, recs, 1));
	dp_test_poll();
	send_payload(buf, records_frame(buf, "orders", 50, 1, FRAME_ACK_RECEIVED, recs, count));
	cr_assert_eq(answer_status(), FRAME_STATUS_THROTTLED);
	cr_assert_eq(dp_test_counter(DP_DROP_NO_BATCH), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1, "only the first frame");

	/* Once the open batch is durable, its spare returns and a retry goes in whole. */
	pump_until_idle();
	send_payload(buf, records_frame(buf, "orders", 50, 1, FRAME_ACK_RECEIVED, recs, count));
	cr_assert_eq(answer_status(), FRAME_STATUS_OK);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1 + count);
}

/* More runs than fit one datagram: the ACK says stored, without per-record detail. */
Test(dp_ingest, acks_without_detail_when_runs_do_not_fit)
{
	static char keys[200][8];
	struct rec recs[200];
	uint8_t buf[1500];
	struct frame_ack ack;
	struct rte_mbuf *m;

	for (uint32_t i = 0; i < 150; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%u", i);
		recs[i] = (struct rec){ .key = keys[i], .data = "" };
	}
	send_payload(buf, records_frame(buf, "orders", 60, 1, FRAME_ACK_DURABLE, recs, 150));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_OK);
	cr_assert_eq(ack.record_count, 150);
	cr_assert(ack.flags & FRAME_F_NO_DETAIL);
	cr_assert_eq(ack.run_count, 0);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 150);
}

/*
 * 260 records of one shard in one frame: the batch reaches DP_BATCH_REFS_MAX
 * records mid-frame and a second batch opens; the frame is still stored whole
 * and its sequence numbers run on across the two batches.
 */
Test(dp_ingest, stages_more_records_of_one_shard_than_a_batch_tracks)
{
	static struct rec recs[260];
	static uint8_t buf[2048];
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	struct rte_mbuf *m;

	for (uint32_t i = 0; i < 260; i++)
		recs[i] = (struct rec){ .key = "x", .data = "" };
	frame_capacity = 1878; /* A 1,920-byte mbuf data room minus the UDP/IPv4/Ethernet headers. */
	send_payload(buf, records_frame(buf, "orders", 70, 1, FRAME_ACK_DURABLE, recs, 260));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.status, FRAME_STATUS_OK);
	cr_assert_eq(ack.run_count, 1);
	cr_assert_eq(runs[0].count, 260);
	cr_assert_eq(runs[0].seq_first, 0);
	cr_assert_eq(dp_test_counter(DP_BATCHES_SUBMITTED), 2);
	cr_assert_eq(shard_durable(shard_of("x")), 260);
}

/*
 * Completions as outcomes: staged straight into dp_stage (4 shards, a full
 * batch and a partial one each), then reported through an array that holds
 * one full batch only. Each call takes whole batches and never more than fit;
 * every record is reported exactly once, in order within its batch.
 */
Test(dp_ingest, reports_every_record_through_an_array_of_one_batch)
{
	enum { PER_SHARD = DP_BATCH_REFS_MAX + 10, TOTAL = SHARDS * PER_SHARD };
	static struct dp_record_done done[DP_BATCH_REFS_MAX];
	static bool seen[SHARDS][PER_SHARD];
	struct dp_worker *w = &dp_test->workers[0];
	uint64_t deadline = clock_mono_ns() + 3000000000u;
	uint32_t reported = 0;

	for (uint32_t shard = 0; shard < SHARDS; shard++) {
		for (uint32_t r = 0; r < PER_SHARD; r++) {
			struct log_record_in in = {
				.partition_key = "k", .partition_key_size = 1, .data = "d", .data_size = 1,
			};
			struct dp_record_ref ref = {
				.frame_slot = DP_REF_NO_ACK, .record_index = (uint16_t)r, .count = 1,
			};

			cr_assert_eq(dp_stage_add(w, LOG_SHARD_ID(STREAM_ID, shard), LOG_EPOCH_NONE,
						  &in, ref, rte_rdtsc()), 0);
		}
	}
	dp_stage_flush(w, rte_rdtsc(), true);
	cr_assert_eq(w->ingest.open_count, 0);
	while (reported < TOTAL && clock_mono_ns() < deadline) {
		uint32_t in_flight = w->ingest.in_flight;
		uint32_t n = dp_stage_completions(w, done, DP_BATCH_REFS_MAX);

		cr_assert_leq(n, DP_BATCH_REFS_MAX);
		cr_assert_leq(in_flight - w->ingest.in_flight, 1, "one whole batch per call");
		for (uint32_t i = 0; i < n; i++) {
			uint32_t shard = LOG_SHARD_INDEX(done[i].shard_id);
			uint32_t r = done[i].ref.record_index;

			cr_assert_eq(done[i].error, 0);
			cr_assert_eq(done[i].ref.frame_slot, DP_REF_NO_ACK);
			cr_assert_lt(shard, SHARDS);
			cr_assert_lt(r, PER_SHARD);
			cr_assert_not(seen[shard][r], "shard %u record %u reported twice", shard, r);
			seen[shard][r] = true;
			if (i > 0 && done[i - 1].shard_id == done[i].shard_id)
				cr_assert_eq(done[i].seq, done[i - 1].seq + 1);
		}
		reported += n;
		if (n == 0)
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	cr_assert_eq(reported, TOTAL, "every record reported");
	cr_assert_eq(w->ingest.in_flight, 0);
	cr_assert_eq(dp_stage_completions(w, done, DP_BATCH_REFS_MAX), 0, "nothing twice");
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), TOTAL);
}

/* Lying record counts with a valid CRC: refused, answered or not, never a crash. */
Test(dp_ingest, survives_lying_record_counts)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "x" };
	uint16_t counts[] = { 0, 2, 501, 0xffff };
	struct rte_mbuf *m[4];

	for (uint32_t i = 0; i < 4; i++) {
		uint16_t size = records_frame(buf, "orders", 80, i + 1, FRAME_ACK_DURABLE, &r, 1);
		uint32_t crc;

		memcpy(buf + 36, &counts[i], 2);
		crc = crc32c(0, buf + 8, size - 8u);
		memcpy(buf + 4, &crc, 4);
		send_payload(buf, size);
	}
	dp_test_poll();
	while (dp_test_sent(m, 4) > 0)
		;
	cr_assert_eq(dp_test_counter(DP_FRAMES_MALFORMED), 4);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);
}

/*
 * Seeded mutations of valid frames, their CRC recomputed half of the time so
 * that the mutations reach past the checksum: the worker must never crash,
 * and every datagram ends as exactly one accepted or refused frame or more.
 */
Test(dp_ingest, survives_seeded_mutations)
{
	static char keys[8][16];
	struct rec recs[8];
	uint8_t buf[1500];
	uint8_t bad[1500];
	struct rte_mbuf *m[32];
	struct seed_rng rng;
	uint64_t seed = seed_base();

	seed_rng_init(&rng, seed);
	for (uint32_t i = 0; i < 8; i++) {
		snprintf(keys[i], sizeof(keys[i]), "m%u", i);
		recs[i] = (struct rec){ .key = keys[i], .data = "mutable" };
	}
	for (uint32_t round = 0; round < 3000; round++) {
		uint16_t size = records_frame(buf, "orders", 90 + round % 3, round, FRAME_ACK_DURABLE,
					      recs, 1 + (uint32_t)seed_rng_below(&rng, 8));
		uint16_t cut = (uint16_t)(size - seed_rng_below(&rng, 4));

		memcpy(bad, buf, size);
		for (uint64_t flips = 1 + seed_rng_below(&rng, 3); flips > 0; flips--)
			bad[8 + seed_rng_below(&rng, size - 8u)] = (uint8_t)seed_rng_next(&rng);
		if (seed_rng_below(&rng, 2) == 0) {
			uint32_t crc = crc32c(0, bad + 8, size - 8u);

			memcpy(bad + 4, &crc, 4);
		}
		send_payload(bad, cut);
		if (round % 16 == 15) {
			uint16_t n;

			dp_test_poll();
			while ((n = dp_test_sent(m, 32)) > 0)
				rte_pktmbuf_free_bulk(m, n);
		}
	}
	pump_until_idle();
	cr_assert_geq(dp_test_counter(DP_FRAMES_ACCEPTED) + dp_test_counter(DP_FRAMES_MALFORMED) +
		      dp_test_counter(DP_FRAMES_DUPLICATE) + dp_test_counter(DP_FRAMES_UNKNOWN_STREAM) +
		      dp_test_counter(DP_FRAMES_UNAUTHENTICATED), 3000, "seed %llu",
		      (unsigned long long)seed);
}

/* Sends one single-record durable frame and returns the answer (asserted to come). */
static void
send_and_answer(const char *key, uint64_t producer, uint64_t seq, struct frame_ack *ack,
		struct frame_ack_run *runs)
{
	uint8_t buf[1500];
	struct rec r = { .key = key, .data = "d" };
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "orders", producer, seq, FRAME_ACK_DURABLE, &r, 1));
	m = pump_until_sent(3000);
	cr_assert_not_null(m, "an answer to producer %lu seq %lu", (unsigned long)producer,
			   (unsigned long)seq);
	decode_answer(m, ack, runs);
}

/* The slot of the old direct-mapped table of 1,024 windows (the defect this guards). */
static uint32_t
old_dedup_slot(uint64_t producer_id)
{
	return (uint32_t)((producer_id * 0x9E3779B97F4A7C15ull) >> 32) & 1023u;
}

Test(dp_ingest, keeps_the_window_of_a_producer_whose_id_hashes_alike)
{
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	uint64_t a = 1000;
	uint64_t b = a + 1;

	while (old_dedup_slot(b) != old_dedup_slot(a))
		b++;
	send_and_answer("ka", a, 3, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	send_and_answer("kb", b, 3, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	/* A's ACK was lost: its retransmit must be answered from A's window, not stored. */
	send_and_answer("ka", a, 3, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert(ack.flags & FRAME_F_DUPLICATE, "replayed, not stored again");
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 2);
	cr_assert_eq(shard_durable(shard_of("ka")) + (shard_of("ka") != shard_of("kb") ?
						       shard_durable(shard_of("kb")) : 0), 2);
}

static void
setup_two_producers(void)
{
	dp_test_producers_max = 2;
	setup();
}

Test(dp_ingest_producers, refuses_a_new_producer_id_when_every_window_is_taken,
     .init = setup_two_producers, .fini = teardown, .timeout = 30)
{
	struct frame_ack ack;
	struct frame_ack_run runs[4];

	send_and_answer("k1", 1, 0, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	send_and_answer("k2", 2, 0, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	send_and_answer("k3", 3, 0, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK, "limit + 1: refused, nobody evicted");
	cr_assert_eq(ack.status, FRAME_STATUS_THROTTLED);
	cr_assert_gt(ack.retry_after_ms, 0);
	cr_assert_eq(dp_test_counter(DP_DROP_PRODUCERS_FULL), 1);
	for (uint64_t p = 1; p <= 2; p++) {
		send_and_answer(p == 1 ? "k1" : "k2", p, 0, &ack, runs);
		cr_assert(ack.flags & FRAME_F_DUPLICATE, "producer %lu keeps its window",
			  (unsigned long)p);
	}
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 2);
	/* Producer 1 idle past the reclaim time: its window goes to the new id. */
	dp_test->dedup.seen_tsc[0] -= dp_test->dedup.idle_tsc + 1;
	send_and_answer("k3", 3, 0, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.flags & FRAME_F_DUPLICATE, 0);
	send_and_answer("k2", 2, 0, &ack, runs);
	cr_assert(ack.flags & FRAME_F_DUPLICATE, "the busy producer kept its window");
	send_and_answer("k3", 3, 0, &ack, runs);
	cr_assert(ack.flags & FRAME_F_DUPLICATE, "the new id has a window");
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 3);
}

/* A key that MD5-routes to `shard`, written to `key`. */
static void
key_in_shard(uint32_t shard, char *key, size_t size)
{
	for (uint32_t n = 0;; n++) {
		snprintf(key, size, "key-%u", n);
		if (shard_of(key) == shard)
			return;
	}
}

/* Sends `recs` as producer 21's batch `seq` and returns the answer's status (NACK: + 100). */
static uint32_t
send_batch_status(const struct rec *recs, uint32_t count, uint64_t seq)
{
	uint8_t buf[1500];
	struct frame_ack ack;
	struct frame_ack_run runs[8];
	struct rte_mbuf *m;

	send_payload(buf, records_frame(buf, "orders", 21, seq, FRAME_ACK_DURABLE, recs, count));
	m = pump_until_sent(3000);
	cr_assert_not_null(m, "an answer to batch %lu", (unsigned long)seq);
	decode_answer(m, &ack, runs);
	return ack.status + (ack.type == FRAME_TYPE_NACK ? 100u : 0u);
}

Test(dp_ingest, never_stores_again_a_frame_that_was_partly_stored)
{
	char closed_key[16];
	char open_key[16];
	struct rec both[2] = { { .data = "a" }, { .data = "b" } };
	uint64_t seq_end;

	key_in_shard(0, closed_key, sizeof(closed_key));
	key_in_shard(1, open_key, sizeof(open_key));
	both[0].key = closed_key;
	both[1].key = open_key;
	/* Shard 0 closed in the log, still routed (a reshard's cut): its batch fails -EPIPE. */
	cr_assert_eq(log_shard_close(test_log, LOG_SHARD_ID(STREAM_ID, 0), &seq_end), 0);
	/* Nothing of it stored: retrying is safe and invited. */
	cr_assert_eq(send_batch_status(both, 1, 1), 100u + FRAME_STATUS_THROTTLED);
	cr_assert_eq(send_batch_status(both, 1, 1), 100u + FRAME_STATUS_THROTTLED);
	/* Shard 1's record is durable: outcome unknown, the same answer to every retry. */
	cr_assert_eq(send_batch_status(both, 2, 2), 100u + FRAME_STATUS_SEQUENCE_OLD);
	cr_assert_eq(shard_durable(1), 1);
	for (uint32_t retry = 0; retry < 2; retry++)
		cr_assert_eq(send_batch_status(both, 2, 2), 100u + FRAME_STATUS_SEQUENCE_OLD);
	pump_until_idle();
	cr_assert_eq(shard_durable(1), 1, "the retries stored nothing again");
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1 + 1 + 2);
}

/* Log batches of 512 bytes: a record of 1,000 bytes never fits in one. */
static void
setup_tiny_batches(void)
{
	test_batch_size = 512;
	setup();
}

Test(dp_ingest_tiny, a_record_no_batch_can_hold_leaves_no_batch_behind,
     .init = setup_tiny_batches, .fini = teardown, .timeout = 30)
{
	static char big[1001];
	const struct dp_ingest *ing = &dp_test->workers[0].ingest;
	struct rec r = { .key = "same-key", .data = big };
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	uint8_t buf[1500];
	struct rte_mbuf *m;

	memset(big, 'x', sizeof(big) - 1);
	for (uint64_t seq = 1; seq <= 2; seq++) {
		send_payload(buf, records_frame(buf, "orders", 0, seq, FRAME_ACK_DURABLE, &r, 1));
		m = pump_until_sent(1000);
		cr_assert_not_null(m);
		decode_answer(m, &ack, runs);
		cr_assert_eq(ack.type, FRAME_TYPE_NACK, "the log refuses the record");
		cr_assert_eq(ing->open_count, 0, "no empty batch left open");
		cr_assert_eq(ing->retry_count, 0, "no empty batch parked as ring-full");
	}
	cr_assert_eq(dp_test_counter(DP_RING_FULL), 0);
	/* The worker is not wedged: a small record to the same shard is stored and ACKed. */
	r.data = "small";
	send_payload(buf, records_frame(buf, "orders", 0, 3, FRAME_ACK_DURABLE, &r, 1));
	m = pump_until_sent(3000);
	cr_assert_not_null(m, "a durable ACK");
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	expect_in_log(runs[0].shard_index, 0, "same-key", "small");
	pump_until_idle();
	cr_assert(dp_ingest_is_idle(&dp_test->workers[0]));
}

#define WIDE_SHARDS 4096u

static void
setup_wide(void)
{
	struct dp_route_builder *b;

	open_log(0);
	dp_test_open(test_log);
	cr_assert_eq(dp_route_builder_open(1, WIDE_SHARDS, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "orders", STREAM_ID), 0);
	for (uint32_t i = 0; i < WIDE_SHARDS; i++) {
		hashkey_t end = i + 1 < WIDE_SHARDS ? hashkey_range_start(i + 1, WIDE_SHARDS) - 1 :
						      HASHKEY_MAX;

		cr_assert_eq(dp_route_add_range(b, STREAM_ID, hashkey_range_start(i, WIDE_SHARDS),
						end, LOG_SHARD_ID(STREAM_ID, i)), 0);
	}
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	dp_route_builder_close(b);
}

/*
 * An unanswered frame (ack mode none) of records `first` .. `first + count - 1`
 * with two-character keys, all in distinct shards of WIDE_SHARDS; returns its size.
 */
static uint16_t
wide_frame(uint8_t *buf, uint32_t capacity, uint32_t first, uint32_t count)
{
	struct frame_batch_params params = {
		.producer_epoch = 1,
		.ack_mode = FRAME_ACK_NONE,
		.stream_name = "orders",
		.stream_name_size = 6,
	};
	static uint8_t keys[400][2];
	struct frame_writer fw;
	int size;

	cr_assert_eq(frame_writer_begin(&fw, buf, capacity, &params), 0);
	for (uint32_t i = first; i < first + count; i++) {
		struct frame_record r = { .key = keys[i], .key_size = 2 };

		keys[i][0] = (uint8_t)('A' + i / 26);
		keys[i][1] = (uint8_t)('a' + i % 26);
		cr_assert_eq(frame_writer_add(&fw, &r), 0, "record %u", i);
	}
	size = frame_writer_finish(&fw);
	cr_assert_gt(size, 0);
	return (uint16_t)size;
}

/* The fastest of `trials` polls that each take `count` datagrams of `per` records. */
static uint64_t
wide_poll_tsc(uint32_t count, uint32_t per, uint32_t trials)
{
	uint64_t best = UINT64_MAX;
	uint8_t buf[2048];
	uint8_t frame[2048];

	for (uint32_t t = 0; t < trials; t++) {
		uint64_t start;

		for (uint32_t d = 0; d < count; d++) {
			uint16_t size = wide_frame(buf, 1900, d * per, per);

			dp_test_inject(frame, dp_test_udp_frame(frame, DP_TEST_PORT, buf, size));
		}
		start = rte_rdtsc();
		dp_test_poll();
		best = RTE_MIN(best, rte_rdtsc() - start);
	}
	return best;
}

/*
 * A datagram of 220 records in ~220 shards (refused: more shards than spare
 * batches) costs about what the same records in 10 datagrams of 22 cost:
 * counting a frame's distinct shards is linear, not quadratic, in its records.
 */
Test(dp_ingest_wide, counts_distinct_shards_in_linear_time, .init = setup_wide,
     .fini = teardown, .timeout = 30)
{
	uint64_t one;
	uint64_t ten;

	wide_poll_tsc(1, 220, 3); /* Warm the key cache. */
	one = wide_poll_tsc(1, 220, 40);
	ten = wide_poll_tsc(10, 22, 40);
	cr_log_info("one datagram of 220: %lu tsc, ten of 22: %lu tsc", (unsigned long)one,
		    (unsigned long)ten);
	cr_assert_gt(dp_test_counter(DP_DROP_NO_BATCH), 0, "the frames reached routing");
	/* Quadratic: 2.2 .. 3.2 x here; linear: 0.6 .. 0.9 x. */
	cr_assert_lt(2 * one, 3 * ten, "one: %lu, ten: %lu", (unsigned long)one,
		     (unsigned long)ten);
}

/* Rewrites the frame's CRC after a change (frames are checked CRC first). */
static void
reseal(uint8_t *buf, uint16_t size)
{
	uint32_t crc = crc32c(0, buf + 8, size - 8u);

	memcpy(buf + 4, &crc, 4);
}

/* The answer of one datagram: its NACK status and echoed record count, or -1 for none. */
static int
nack_of(const uint8_t *buf, uint16_t size, uint16_t *record_count_out)
{
	struct frame_ack ack;
	struct rte_mbuf *m;

	send_payload(buf, size);
	dp_test_poll();
	if (dp_test_sent(&m, 1) != 1)
		return -1;
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	if (record_count_out != NULL)
		*record_count_out = ack.record_count;
	return ack.status;
}

/*
 * docs/PROTOCOL.md section 4, case by case: an intact RECORDS frame that
 * breaks a rule is NACKed when its fixed fields were readable and it asked
 * for an answer; a damaged or unframeable one is only counted.
 */
Test(dp_ingest, nacks_intact_frames_that_break_a_rule_and_counts_the_rest)
{
	uint8_t buf[1500];
	struct rec r = { .key = "k", .data = "x" };
	uint16_t size;
	uint16_t count = 0xbeef;
	uint16_t flags;
	uint16_t big = 501;

	/* Ack mode 3: refused, answered. */
	size = records_frame(buf, "orders", 90, 1, FRAME_ACK_DURABLE, &r, 1);
	flags = 3;
	memcpy(buf + 14, &flags, 2);
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, NULL), FRAME_STATUS_MALFORMED);
	/* An undefined flag bit with ack mode durable: answered. */
	size = records_frame(buf, "orders", 90, 2, FRAME_ACK_DURABLE, &r, 1);
	flags = FRAME_ACK_DURABLE | 0x0100;
	memcpy(buf + 14, &flags, 2);
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, NULL), FRAME_STATUS_MALFORMED);
	/* The same with ack mode none: the producer asked for no answer. */
	flags = FRAME_ACK_NONE | 0x0100;
	memcpy(buf + 14, &flags, 2);
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, NULL), -1);
	/* 501 records: answered, the count it cannot echo (NACK: 0 .. 500) as 0. */
	size = records_frame(buf, "orders", 90, 3, FRAME_ACK_DURABLE, &r, 1);
	memcpy(buf + 36, &big, 2);
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, &count), FRAME_STATUS_MALFORMED);
	cr_assert_eq(count, 0);
	/* A bad CRC: its fields cannot be trusted; counted, not answered. */
	size = records_frame(buf, "orders", 90, 4, FRAME_ACK_DURABLE, &r, 1);
	buf[size - 1] ^= 1;
	cr_assert_eq(nack_of(buf, size, NULL), -1);
	/* An unknown frame type, and an ACK sent to the appliance: counted, not answered. */
	size = records_frame(buf, "orders", 90, 5, FRAME_ACK_DURABLE, &r, 1);
	buf[13] = 9;
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, NULL), -1);
	buf[13] = FRAME_TYPE_ACK;
	reseal(buf, size);
	cr_assert_eq(nack_of(buf, size, NULL), -1);
	cr_assert_eq(dp_test_counter(DP_FRAMES_MALFORMED), 7);
	cr_assert_eq(dp_test_counter(DP_NACKS_SENT), 3);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);
}

/* ---- Big datagrams: IPv4 fragments reassembled, chained (jumbo) mbufs ---- */

/* A UDP payload of exactly `size` bytes: one RECORDS frame with one record. */
static void
big_frame(uint8_t *buf, uint32_t size, uint64_t seq)
{
	struct frame_batch_params params = {
		.producer_id = 77, .batch_seq = seq, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .stream_name = "orders", .stream_name_size = 6,
	};
	static uint8_t data[65536];
	struct frame_writer fw;
	struct frame_record r = { .key = (const uint8_t *)"big", .key_size = 3, .data = data };
	uint32_t overhead = FRAME_RECORDS_HEADER_SIZE + 6 + FRAME_RECORD_HEADER_SIZE + 3;

	memset(data, 'B', sizeof(data));
	r.data_size = size - overhead;
	cr_assert_eq(frame_writer_begin(&fw, buf, size, &params), 0);
	cr_assert_eq(frame_writer_add(&fw, &r), 0);
	cr_assert_eq(frame_writer_finish(&fw), (int)size);
}

/*
 * The UDP datagram carrying `payload` as IPv4 fragments of at most `mtu`
 * bytes, injected in order (or last first). Returns the fragments sent.
 */
static uint16_t next_packet_id = 0x4242;
/* send_fragmented() injects only the fragments whose bit is set (lost-fragment tests). */
static uint64_t fragment_mask = UINT64_MAX;

/* Injects a packet of any size as a chain of mbufs of at most `seg` bytes each. */
static void
inject_chained(const uint8_t *bytes, uint32_t size, uint32_t seg)
{
	struct rte_mbuf *head = NULL;

	for (uint32_t off = 0; off < size; off += seg) {
		uint32_t len = size - off < seg ? size - off : seg;
		struct rte_mbuf *m = rte_pktmbuf_alloc(dp_test_pool);
		uint8_t *p;

		cr_assert_not_null(m);
		p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
		cr_assert_not_null(p);
		memcpy(p, bytes + off, len);
		if (head == NULL)
			head = m;
		else
			cr_assert_eq(rte_pktmbuf_chain(head, m), 0);
	}
	cr_assert_eq(rte_eth_tx_burst(dp_test->port_id, 0, &head, 1), 1);
}

static uint32_t
send_fragmented(const uint8_t *payload, uint32_t size, uint32_t mtu, bool reverse)
{
	static uint8_t dgram[65536 + 64];
	static uint8_t frame[9100];
	uint32_t l4 = (uint32_t)sizeof(struct rte_udp_hdr) + size;
	uint32_t chunk = (mtu - (uint32_t)sizeof(struct rte_ipv4_hdr)) & ~7u;
	uint32_t count = (l4 + chunk - 1) / chunk;
	struct rte_ipv4_hdr ip0;

	/* The whole datagram first (for its UDP checksum), then cut into fragments. */
	cr_assert_leq(size, 65507);
	{
		static uint8_t whole[65536 + 64];
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(whole + 14);
		struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

		/* dp_test_udp_frame takes a 16-bit size: build the datagram here. */
		memset(ip, 0, sizeof(*ip));
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4));
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_UDP;
		ip->packet_id = rte_cpu_to_be_16(next_packet_id++);
		ip->src_addr = rte_cpu_to_be_32(DP_TEST_PEER_IPV4);
		ip->dst_addr = rte_cpu_to_be_32(DP_TEST_IPV4);
		udp->src_port = rte_cpu_to_be_16(DP_TEST_PEER_PORT);
		udp->dst_port = rte_cpu_to_be_16(DP_TEST_PORT);
		udp->dgram_len = rte_cpu_to_be_16((uint16_t)l4);
		memcpy(udp + 1, payload, size);
		udp->dgram_cksum = 0;
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
		ip0 = *ip;
		memcpy(dgram, udp, l4);
	}
	for (uint32_t n = 0; n < count; n++) {
		uint32_t i = reverse ? count - 1 - n : n;
		uint32_t off = i * chunk;
		uint32_t len = l4 - off < chunk ? l4 - off : chunk;
		struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
		uint16_t fo = (uint16_t)(off / 8) | (i + 1 < count ? RTE_IPV4_HDR_MF_FLAG : 0);

		rte_ether_addr_copy(&dp_test->mac, &eth->dst_addr);
		rte_ether_addr_copy(&dp_test_peer_mac, &eth->src_addr);
		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
		*ip = ip0;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + len));
		ip->fragment_offset = rte_cpu_to_be_16(fo);
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		memcpy(ip + 1, dgram + off, len);
		if ((fragment_mask & (1ull << (i < 63 ? i : 63))) == 0)
			continue;
		/* Jumbo fragments arrive as the device would hand them over: chained. */
		inject_chained(frame, 14 + (uint32_t)sizeof(*ip) + len, 1900);
		if (n % 16 == 15)
			dp_test_poll(); /* The ring toward the worker holds a burst or so. */
	}
	return count;
}

static bool
answered_ok(uint64_t seq)
{
	struct rte_mbuf *m = pump_until_sent(3000);
	struct frame_ack ack;
	struct frame_ack_run runs[4];

	if (m == NULL)
		return false;
	decode_answer(m, &ack, runs);
	return ack.type == FRAME_TYPE_ACK && ack.batch_seq == seq;
}

Test(dp_ingest, reassembles_fragmented_datagrams)
{
	static uint8_t payload[65536];
	/* 1,473 B: just over one 1500-byte MTU; 11,000 B: 8 fragments, the most DPDK takes. */
	const uint32_t sizes[] = { 1473, 2007, 9000, 11000 };
	uint32_t fragments = 0;

	for (uint32_t i = 0; i < 4; i++) {
		big_frame(payload, sizes[i], i + 1);
		fragments += send_fragmented(payload, sizes[i], 1500, i % 2 == 1);
		cr_assert(answered_ok(i + 1), "%u bytes: a durable ACK", sizes[i]);
	}
	cr_assert_eq(dp_test_counter(DP_RX_FRAGMENTS), fragments);
	cr_assert_eq(dp_test_counter(DP_REASSEMBLED), 4);
	cr_assert_eq(dp_test_counter(DP_DROP_FRAGMENT), 0);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 4);
}

/* Log batches that hold a 64 KiB record. */
static void
setup_big_batches(void)
{
	test_batch_size = 128u << 10;
	setup();
	test_batch_size = 16u << 10;
}

Test(dp_ingest_big, counts_a_datagram_of_too_many_fragments, .init = setup_big_batches,
     .fini = teardown, .timeout = 30)
{
	static uint8_t payload[65536];
	uint32_t fragments;

	/* 65,507 B at MTU 1500 is 45 fragments: beyond rte_ip_frag's 8, given up. */
	big_frame(payload, 65507, 1);
	fragments = send_fragmented(payload, 65507, 1500, false);
	cr_assert_eq(fragments, 45);
	cr_assert_null(pump_until_sent(200), "nothing to answer: its identity never arrived whole");
	cr_assert_eq(dp_test_counter(DP_RX_FRAGMENTS), fragments);
	cr_assert_eq(dp_test_counter(DP_REASSEMBLED), 0);
	cr_assert_geq(dp_test_counter(DP_DROP_FRAGMENT), 8, "the fragments held are counted as freed");
	/* At MTU 9000 the same datagram is 8 fragments: taken. */
	big_frame(payload, 65507, 2);
	cr_assert_eq(send_fragmented(payload, 65507, 9000, false), 8);
	cr_assert(answered_ok(2));
	cr_assert_eq(dp_test_counter(DP_REASSEMBLED), 1);
}

Test(dp_ingest, gives_up_fragments_after_the_timeout)
{
	static uint8_t payload[4096];
	struct dp_worker *w = &dp_test->workers[0];
	uint64_t later = rte_rdtsc() + 3 * rte_get_tsc_hz(); /* DP_FRAG_TIMEOUT_MS is 2 s. */

	/* 3,000 B is 3 fragments at MTU 1500: the first arrives, the rest 3 s later. */
	big_frame(payload, 3000, 1);
	fragment_mask = 1;
	send_fragmented(payload, 3000, 1500, false);
	dp_test_poll();
	fragment_mask = 6;
	next_packet_id--; /* The same datagram's other fragments. */
	send_fragmented(payload, 3000, 1500, false);
	dp_worker_poll(w, later);
	fragment_mask = UINT64_MAX;
	cr_assert_eq(dp_test_counter(DP_RX_FRAGMENTS), 3);
	cr_assert_eq(dp_test_counter(DP_DROP_FRAGMENT), 1, "the stale first fragment, given up: "
		     "%lu fragments, %lu reassembled", dp_test_counter(DP_RX_FRAGMENTS),
		     dp_test_counter(DP_REASSEMBLED));
	cr_assert_eq(dp_test_counter(DP_REASSEMBLED), 0);
	cr_assert_eq(dp_test_counter(DP_TX_PACKETS), 0);
}

/* A jumbo frame the device chained over several mbufs (no IP fragments). */
Test(dp_ingest, takes_a_datagram_chained_over_mbufs)
{
	static uint8_t payload[9000];
	static uint8_t frame[9100];
	uint32_t size = 8000;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + 14);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	big_frame(payload, size, 9);
	dp_test_udp_frame(frame, DP_TEST_PORT, payload, 8); /* Headers; sizes fixed below. */
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + size));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + size));
	memcpy(udp + 1, payload, size);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	/* Segments of 1,801 bytes: the payload is cut at odd offsets. */
	inject_chained(frame, 14 + (uint32_t)sizeof(*ip) + (uint32_t)sizeof(*udp) + size, 1801);
	cr_assert(answered_ok(9));
	/* The same with one byte of the payload changed: the software checksum catches it. */
	frame[5000] ^= 0x40;
	inject_chained(frame, 14 + (uint32_t)sizeof(*ip) + (uint32_t)sizeof(*udp) + size, 1801);
	cr_assert_null(pump_until_sent(100));
	cr_assert_eq(dp_test_counter(DP_DROP_BAD_CHECKSUM), 1);
	cr_assert_eq(dp_test_counter(DP_DROP_MULTI_SEGMENT), 0);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 1);
}

Test(dp_ingest, credit_hints_follow_the_load)
{
	/* The policy as a table: frame slots free and full RX bursts in a row. */
	cr_assert_eq(dp_ingest_credit(DP_FRAME_SLOTS, 0), FRAME_CREDIT_UNLIMITED);
	cr_assert_eq(dp_ingest_credit(DP_FRAME_SLOTS / 2 - 1, 0), DP_CREDIT_LOW_BYTES);
	cr_assert_eq(dp_ingest_credit(DP_FRAME_SLOTS / 10 - 1, 0), 0);
	cr_assert_eq(dp_ingest_credit(DP_FRAME_SLOTS, DP_CREDIT_BUSY_STREAK), DP_CREDIT_LOW_BYTES);
	cr_assert_eq(dp_ingest_credit(DP_FRAME_SLOTS, DP_CREDIT_PAUSE_STREAK), 0);
}

/* ---- TCP frames through ingest (segments crafted here, answers read back) ---- */

/* A TCP segment from the test peer to the ingest port. Returns its size. */
static uint16_t
tcp_packet(uint8_t *frame, uint8_t flags, uint32_t seq, uint32_t ack, const void *data,
	   uint16_t len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);

	rte_ether_addr_copy(&dp_test->mac, &eth->dst_addr);
	rte_ether_addr_copy(&dp_test_peer_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*tcp) + len));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = rte_cpu_to_be_32(DP_TEST_PEER_IPV4);
	ip->dst_addr = rte_cpu_to_be_32(DP_TEST_IPV4);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memset(tcp, 0, sizeof(*tcp));
	tcp->src_port = rte_cpu_to_be_16(DP_TEST_PEER_PORT);
	tcp->dst_port = rte_cpu_to_be_16(DP_TEST_PORT);
	tcp->sent_seq = rte_cpu_to_be_32(seq);
	tcp->recv_ack = rte_cpu_to_be_32(ack);
	tcp->data_off = (uint8_t)((sizeof(*tcp) / 4) << 4);
	tcp->tcp_flags = flags;
	tcp->rx_win = rte_cpu_to_be_16(65535);
	if (len > 0)
		memcpy(tcp + 1, data, len);
	tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	return (uint16_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*tcp) + len);
}

/* Polls and frees what the worker sent; returns the last segment's ack field + our seq. */
static void
tcp_drain(uint32_t *our_seq_out)
{
	struct rte_mbuf *m;

	dp_test_poll();
	while (dp_test_sent(&m, 1) == 1) {
		const struct rte_tcp_hdr *tcp = rte_pktmbuf_mtod_offset(m, const struct rte_tcp_hdr *,
									 34);

		if (our_seq_out != NULL && (tcp->tcp_flags & DP_TCP_SYN))
			*our_seq_out = rte_be_to_cpu_32(tcp->sent_seq) + 1;
		rte_pktmbuf_free(m);
	}
}

/*
 * A TCP producer resends a frame on the same connection while its first
 * copy is being stored: stored once; the copy is answered THROTTLED (not
 * stored: TCP has no resend timer, so an unanswered copy left a producer that
 * had reconnected waiting for its silence bound), the first copy ACKed; the
 * connection owes nothing afterwards (it once owed the resend an answer forever).
 */
Test(dp_ingest, a_tcp_resend_while_storing_is_answered_throttled)
{
	uint8_t buf[1500];
	uint8_t pkt[1600];
	struct rec r = { .key = "k", .data = "tcp" };
	uint16_t size = records_frame(buf, "orders", 4242, 1, FRAME_ACK_DURABLE, &r, 1);
	struct dp_tcp *tcp = &dp_test->workers[0].tcp;
	uint32_t iss = 0;
	uint64_t deadline;
	const struct dp_tcp_conn *c = NULL;

	dp_test_inject(pkt, tcp_packet(pkt, DP_TCP_SYN, 999, 0, NULL, 0));
	tcp_drain(&iss);
	cr_assert_neq(iss, 0, "a SYN-ACK");
	dp_test_inject(pkt, tcp_packet(pkt, DP_TCP_ACK, 1000, iss, NULL, 0));
	dp_test_inject(pkt, tcp_packet(pkt, DP_TCP_ACK | DP_TCP_PSH, 1000, iss, buf, size));
	dp_test_inject(pkt, tcp_packet(pkt, DP_TCP_ACK | DP_TCP_PSH, 1000 + size, iss, buf, size));
	deadline = clock_mono_ns() + 3000000000u;
	do {
		tcp_drain(NULL);
		for (uint32_t i = 0; i < tcp->config.conns_max && c == NULL; i++)
			if (tcp->conns[i].state == DP_TCP_ESTABLISHED)
				c = &tcp->conns[i];
	} while ((c == NULL || c->answers_due != 0 || dp_test_counter(DP_ACKS_SENT) == 0) &&
		 clock_mono_ns() < deadline);
	cr_assert_not_null(c);
	cr_assert_eq(dp_test_counter(DP_TCP_FRAMES_IN), 2);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1, "stored once");
	cr_assert_eq(dp_test_counter(DP_ACKS_SENT), 1, "the first copy ACKed");
	cr_assert_eq(dp_test_counter(DP_NACKS_SENT), 1, "the copy NACKed");
	cr_assert_eq(dp_test_counter(DP_FRAMES_DUPLICATE), 1);
	cr_assert_eq(c->answers_due, 0, "nothing owed");
}

static void
setup_two_workers(void)
{
	dp_test_workers = 2;
	setup();
	dp_test_workers = 1;
}

/*
 * A producer whose resend reaches another worker (a new source port after
 * a reconnect, hashed elsewhere) meets the same duplicate window there: the
 * resend is answered as a duplicate, stored once.
 */
Test(dp_ingest_workers, a_resend_on_another_worker_is_a_duplicate, .init = setup_two_workers,
     .fini = teardown, .timeout = 30)
{
	uint8_t buf[1500];
	uint8_t pkt[2048];
	struct rec r = { .key = "k", .data = "once" };
	uint16_t size = records_frame(buf, "orders", 777, 5, FRAME_ACK_DURABLE, &r, 1);
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	struct rte_mbuf *m = NULL;
	uint64_t deadline = clock_mono_ns() + 3000000000u;

	send_payload(buf, size); /* Queue 0: worker 0 stores it. */
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.flags & FRAME_F_DUPLICATE, 0);
	dp_test_inject_queue(1, pkt, dp_test_udp_frame(pkt, DP_TEST_PORT, buf, size));
	m = NULL;
	while (m == NULL && clock_mono_ns() < deadline) {
		dp_test_poll_worker(1);
		if (dp_test_sent_queue(1, &m, 1) != 1)
			m = NULL;
	}
	cr_assert_not_null(m, "worker 1 answered");
	decode_answer(m, &ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert(ack.flags & FRAME_F_DUPLICATE, "the window was worker 0's, and is shared");
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1, "stored once");
}

/* ---- Shard-grouped frames (SHARD_RECORDS) --------------------------------- */

/* A SHARD_RECORDS frame for `shard`; records without a hash key get their MD5. */
static uint16_t
grouped_frame(uint8_t *buf, uint64_t producer, uint64_t seq, uint32_t shard,
	      const struct rec *recs, uint32_t count)
{
	struct frame_batch_params params = {
		.producer_id = producer, .batch_seq = seq, .producer_epoch = 1,
		.ack_mode = FRAME_ACK_DURABLE, .shard_grouped = true, .shard_index = shard,
		.stream_name = "orders", .stream_name_size = 6,
	};

	return frame_of(buf, &params, recs, count);
}

/* `count` records whose keys all hash into `shard` (keys[] and datas[] hold them). */
static void
keys_of_shard(uint32_t shard, struct rec *recs, char (*keys)[16], char (*datas)[16],
	      uint32_t count)
{
	for (uint32_t i = 0, n = 0; n < count; i++) {
		snprintf(keys[n], sizeof(keys[n]), "g-%u", i);
		if (shard_of(keys[n]) != shard)
			continue;
		snprintf(datas[n], sizeof(datas[n]), "v-%u", i);
		recs[n] = (struct rec){ .key = keys[n], .data = datas[n] };
		n++;
	}
}

Test(dp_ingest, stores_a_shard_grouped_frame_in_its_shard_after_the_frames_before_it)
{
	static char keys[13][16];
	static char datas[13][16];
	struct rec recs[13];
	uint8_t buf[1500];
	struct frame_ack acks[2];
	struct frame_ack_run runs[2][4];
	struct rte_mbuf *m;
	uint16_t first;
	uint16_t second;

	keys_of_shard(2, recs, keys, datas, 13);
	/* One explicit hash key inside shard 2, which the record then also carries. */
	recs[5].hash_kind = FRAME_HASH_EXPLICIT;
	hashkey_to_be_bytes(hashkey_range_start(2, SHARDS) + 99, recs[5].hash_key);
	/* A RECORDS frame of record 0, then a SHARD_RECORDS frame of the other 12. */
	first = records_frame(buf, "orders", 31, 1, FRAME_ACK_DURABLE, recs, 1);
	frame_capacity = (uint32_t)sizeof(buf) - first;
	second = grouped_frame(buf + first, 31, 2, 2, recs + 1, 12);
	frame_capacity = 1400;
	send_payload(buf, (uint16_t)(first + second));
	for (int i = 0; i < 2; i++) {
		/* Both answers leave in one pass: take the second before polling again. */
		if (i == 0 || dp_test_sent(&m, 1) != 1)
			m = pump_until_sent(3000);
		cr_assert_not_null(m);
		decode_answer(m, &acks[i], runs[i]);
		cr_assert_eq(acks[i].status, FRAME_STATUS_OK);
		cr_assert_eq(acks[i].run_count, 1);
		cr_assert_eq(runs[i][0].shard_index, 2);
	}
	if (acks[0].batch_seq == 2) {
		struct frame_ack_run t = runs[0][0];

		runs[0][0] = runs[1][0];
		runs[1][0] = t;
	}
	cr_assert_eq(runs[0][0].seq_first, 0, "the frame before it is stored before it");
	cr_assert_eq(runs[1][0].seq_first, 1);
	cr_assert_eq(runs[1][0].count, 12);
	for (uint32_t i = 0; i < 13; i++)
		expect_in_log(2, i, recs[i].key, recs[i].data);
	cr_assert_eq(dp_test_counter(DP_FRAMES_SHARD_GROUPED), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 13);
	cr_assert_eq(dp_test_counter(DP_MD5_COMPUTED), 1, "only the RECORDS frame's key");

	/* A retransmission is answered from the window, stored once. */
	send_payload(buf + first, second);
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &acks[0], runs[0]);
	cr_assert(acks[0].flags & FRAME_F_DUPLICATE);
	cr_assert_eq(runs[0][0].seq_first, 1);
	cr_assert_eq(shard_durable(2), 13);
}

Test(dp_ingest, refuses_a_grouped_frame_with_a_key_outside_its_shard)
{
	static char keys[4][16];
	static char datas[4][16];
	struct rec recs[4];
	uint8_t buf[1500];
	struct frame_ack ack;
	struct rte_mbuf *m;

	keys_of_shard(1, recs, keys, datas, 4);
	recs[3].hash_kind = FRAME_HASH_EXPLICIT; /* In shard 3's range. */
	hashkey_to_be_bytes(HASHKEY_MAX - 1, recs[3].hash_key);
	send_payload(buf, grouped_frame(buf, 32, 1, 1, recs, 4));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_MALFORMED);
	cr_assert_eq(ack.record_index, 3, "the NACK names the record");
	pump_until_idle();
	cr_assert_eq(shard_durable(1), 0, "refused whole");
	cr_assert_eq(shard_durable(3), 0);
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);

	/* Its first record in another open shard: the same refusal, at record 0. */
	send_payload(buf, grouped_frame(buf, 32, 2, 3, recs, 4));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_MALFORMED);
	cr_assert_eq(ack.record_index, 0);
}

Test(dp_ingest, nacks_wrong_shard_when_the_map_moved_and_stores_nothing)
{
	static char keys[6][16];
	static char datas[6][16];
	struct rec recs[6];
	uint8_t buf[1500];
	struct dp_route_builder *b;
	struct frame_ack ack;
	struct frame_ack_run runs[4];
	struct rte_mbuf *m;
	hashkey_t start = hashkey_range_start(2, SHARDS);
	hashkey_t end = hashkey_range_start(3, SHARDS) - 1;
	hashkey_t mid = start + (end - start) / 2;

	/* Shard 2 split into 4 and 5: the producer's map still says 2. */
	cr_assert_eq(dp_route_builder_open(1, SHARDS + 1, &b), 0);
	cr_assert_eq(dp_route_add_stream(b, "orders", STREAM_ID), 0);
	for (uint32_t i = 0; i < SHARDS; i++) {
		if (i == 2)
			continue;
		cr_assert_eq(dp_route_add_range(b, STREAM_ID, hashkey_range_start(i, SHARDS),
						i + 1 < SHARDS ? hashkey_range_start(i + 1, SHARDS) - 1 :
						HASHKEY_MAX, LOG_SHARD_ID(STREAM_ID, i)), 0);
	}
	cr_assert_eq(dp_route_add_range(b, STREAM_ID, start, mid, LOG_SHARD_ID(STREAM_ID, 4)), 0);
	cr_assert_eq(dp_route_add_range(b, STREAM_ID, mid + 1, end, LOG_SHARD_ID(STREAM_ID, 5)), 0);
	cr_assert_eq(dp_route_publish(dp_test, b), 0);
	dp_route_builder_close(b);

	keys_of_shard(2, recs, keys, datas, 6);
	send_payload(buf, grouped_frame(buf, 33, 1, 2, recs, 6));
	m = pump_until_sent(3000);
	cr_assert_not_null(m);
	decode_answer(m, &ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_WRONG_SHARD);
	cr_assert_eq(dp_test_counter(DP_FRAMES_WRONG_SHARD), 1);
	pump_until_idle();
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0);

	/* Regrouped for the children, with the same batch_seq: stored, in the children. */
	for (uint32_t child = 4; child <= 5; child++) {
		struct rec part[6];
		uint32_t n = 0;

		for (uint32_t i = 0; i < 6; i++)
			if ((hashkey_from_partition_key(recs[i].key, strlen(recs[i].key)) <= mid) ==
			    (child == 4))
				part[n++] = recs[i];
		if (n == 0)
			continue;
		send_payload(buf, grouped_frame(buf, 33, child, child, part, n));
		m = pump_until_sent(3000);
		cr_assert_not_null(m);
		decode_answer(m, &ack, runs);
		cr_assert_eq(ack.status, FRAME_STATUS_OK, "child %u", child);
	}
	pump_until_idle();
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 6);
}

/* Batches wait DP_BATCH_AGE_US_MAX: what a poll took stays staged until a stop drains it. */
static void
setup_old_batches(void)
{
	dp_test_batch_age_us = DP_BATCH_AGE_US_MAX;
	setup();
	dp_test_batch_age_us = 0;
}

/*
 * A stop (dp_ingest_drain: the worker takes no more frames) answers every frame the
 * worker took: the staged batch goes to the log and each frame gets its durable ACK
 * before the drain returns, with none left unanswered.
 */
Test(dp_ingest_stop, drain_answers_every_frame_taken, .init = setup_old_batches,
     .fini = teardown, .timeout = 30)
{
	struct dp_worker *w = &dp_test->workers[0];
	struct frame_ack_run runs[8];
	struct frame_ack ack;
	struct rte_mbuf *m;
	uint8_t buf[1500];
	uint32_t acked = 0;

	for (uint64_t seq = 1; seq <= 3; seq++) {
		struct rec r = { .key = "device-17", .data = "at stop" };

		send_payload(buf, records_frame(buf, "orders", 42, seq, FRAME_ACK_DURABLE, &r, 1));
	}
	dp_test_poll();  /* Takes all three (one RX burst) into a batch not old enough to go. */
	cr_assert_eq(dp_test_counter(DP_FRAMES_ACCEPTED), 3);
	cr_assert_eq(dp_ingest_drain(w), 0, "frames left unanswered");
	while (dp_test_sent(&m, 1) == 1) {
		decode_answer(m, &ack, runs);
		cr_assert_eq(ack.type, FRAME_TYPE_ACK);
		cr_assert_eq(ack.flags & FRAME_F_ACK_MODE_MASK, FRAME_ACK_DURABLE);
		expect_in_log(runs[0].shard_index, runs[0].seq_first, "device-17", "at stop");
		acked++;
	}
	cr_assert_eq(acked, 3, "answers sent by the drain");
}

/* ---- Cluster mode (struct dp_cluster): replicated ACKs and redirects -------- */

/*
 * A fake cluster node through the dataplane's interface: each shard led here, by
 * another node (FAKE_LEADER_IPV4, port 4571 + shard) or by nobody known, and a
 * replicated watermark per shard the test moves (ringing the doorbell or not).
 * The real replica set is exercised by tests/cluster/test_cluster_dataplane.py.
 */
#define FAKE_LEADER_IPV4 ((198u << 24) | (18u << 16) | 7u)

enum fake_lead { FAKE_HERE, FAKE_REMOTE, FAKE_UNKNOWN };

static struct {
	enum fake_lead lead[SHARDS];
	uint64_t acked[SHARDS];
	uint64_t shipped[SHARDS];  /* The durable() calls: what the replicas were told. */
	bool lost;                 /* acked answers -ESTALE: leadership ended. */
	_Atomic uint64_t gen;
} fake;

static int
fake_lead(void *ctx, uint64_t log_id, uint64_t *epoch_out, struct dp_leader *leader_out)
{
	uint32_t shard = LOG_SHARD_INDEX(log_id);

	(void)ctx;
	cr_assert_eq(LOG_SHARD_STREAM(log_id), STREAM_ID);
	if (fake.lead[shard] == FAKE_REMOTE) {
		leader_out->ipv4 = FAKE_LEADER_IPV4;
		leader_out->port = (uint16_t)(4571 + shard);
		return -EREMOTE;
	}
	*epoch_out = LOG_EPOCH_NONE;
	return fake.lead[shard] == FAKE_HERE ? 0 : -ENOENT;
}

static int
fake_acked(void *ctx, uint64_t log_id, uint64_t *seq_out)
{
	(void)ctx;
	if (fake.lost)
		return -ESTALE;
	*seq_out = fake.acked[LOG_SHARD_INDEX(log_id)];
	return 0;
}

static void
fake_durable(void *ctx, uint64_t log_id, uint64_t seq_end)
{
	(void)ctx;
	fake.shipped[LOG_SHARD_INDEX(log_id)] = seq_end;
}

/* The worker's next answer, decoded (asserted to come within 3 s of passes). */
static void
next_answer(struct frame_ack *ack, struct frame_ack_run *runs)
{
	struct rte_mbuf *m = pump_until_sent(3000);

	cr_assert_not_null(m, "an answer");
	decode_answer(m, ack, runs);
}

static const struct dp_cluster fake_cluster = {
	.lead = fake_lead, .acked = fake_acked, .durable = fake_durable, .acked_gen = &fake.gen,
};

static void
setup_cluster(void)
{
	memset(&fake, 0, sizeof(fake));
	dp_test_cluster = &fake_cluster;
	setup();
	dp_test_cluster = NULL;
}

/* Polls until the log said the record is durable and the replicas were told (3 s). */
static void
pump_until_shipped(uint32_t shard, uint64_t seq_end)
{
	uint64_t deadline = clock_mono_ns() + 3000000000u;

	while (fake.shipped[shard] < seq_end && clock_mono_ns() < deadline) {
		dp_test_poll();
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	cr_assert_eq(fake.shipped[shard], seq_end, "durable here, shipped");
}

/* A few more passes, past DP_REPLICATION_RECHECK_MS: still nothing may be answered. */
static void
expect_no_answer(void)
{
	uint64_t until = clock_mono_ns() + 3u * DP_REPLICATION_RECHECK_MS * 1000000u;
	struct rte_mbuf *m;

	while (clock_mono_ns() < until) {
		dp_test_poll();
		cr_assert_eq(dp_test_sent(&m, 1), 0, "no answer before the replicas hold it");
	}
}

TestSuite(dp_cluster, .init = setup_cluster, .fini = teardown, .timeout = 30);

Test(dp_cluster, acks_only_once_the_replicas_hold_the_frame)
{
	uint8_t buf[1500];
	struct rec r = { .key = "device-17", .data = "temp=21.5" };
	uint32_t shard = shard_of("device-17");
	struct frame_ack ack;
	struct frame_ack_run runs[4];

	send_payload(buf, records_frame(buf, "orders", 42, 1, FRAME_ACK_DURABLE, &r, 1));
	pump_until_shipped(shard, 1);
	expect_no_answer();
	cr_assert_eq(dp_test_counter(DP_FRAMES_REPLICATING), 1);
	cr_assert_eq(dp_test_counter(DP_RECORDS_DURABLE), 1);
	cr_assert_eq(dp_test_counter(DP_ACKS_SENT), 0);
	/* A resend meanwhile is not stored again (the first copy's answer follows). */
	send_payload(buf, records_frame(buf, "orders", 42, 1, FRAME_ACK_DURABLE, &r, 1));
	expect_no_answer();
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 1);

	fake.acked[shard] = 1;
	atomic_fetch_add(&fake.gen, 1);
	next_answer(&ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.run_count, 1);
	cr_assert_eq(runs[0].shard_index, shard);
	cr_assert_eq(runs[0].seq_first, 0);
	expect_in_log(shard, 0, "device-17", "temp=21.5");
	cr_assert_eq(dp_test->workers[0].ingest.replicating_count, 0);
	cr_assert_eq(dp_test->workers[0].ingest.frame_free_count, DP_FRAME_SLOTS, "slot back");
}

Test(dp_cluster, a_multi_shard_frame_waits_for_its_slowest_shard)
{
	uint8_t buf[1500];
	char keys[SHARDS][16];
	char datas[SHARDS][16];
	struct rec recs[SHARDS] = { 0 };
	struct frame_ack ack;
	struct frame_ack_run runs[SHARDS];

	/* One record per shard. */
	for (uint32_t s = 0, i = 0; s < SHARDS; i++) {
		snprintf(keys[s], sizeof(keys[s]), "m-%u", i);
		if (shard_of(keys[s]) != s)
			continue;
		snprintf(datas[s], sizeof(datas[s]), "v-%u", s);
		recs[s] = (struct rec){ .key = keys[s], .data = datas[s] };
		s++;
	}
	send_payload(buf, records_frame(buf, "orders", 43, 1, FRAME_ACK_DURABLE, recs, SHARDS));
	for (uint32_t s = 0; s < SHARDS; s++)
		pump_until_shipped(s, 1);
	for (uint32_t s = 0; s + 1 < SHARDS; s++)
		fake.acked[s] = 1;
	atomic_fetch_add(&fake.gen, 1);
	expect_no_answer();
	fake.acked[SHARDS - 1] = 1;  /* No doorbell: the recheck finds it. */
	next_answer(&ack, runs);
	cr_assert_eq(ack.type, FRAME_TYPE_ACK);
	cr_assert_eq(ack.run_count, SHARDS);
}

Test(dp_cluster, nacks_a_frame_whose_leadership_ended_while_it_waited)
{
	uint8_t buf[1500];
	struct rec r = { .key = "device-17", .data = "x" };
	uint32_t shard = shard_of("device-17");
	struct frame_ack ack;

	send_payload(buf, records_frame(buf, "orders", 44, 1, FRAME_ACK_DURABLE, &r, 1));
	pump_until_shipped(shard, 1);
	fake.lost = true;
	fake.acked[shard] = 1;  /* Even with the replicas past it: never ACKed now. */
	atomic_fetch_add(&fake.gen, 1);
	next_answer(&ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_THROTTLED, "retryable");
	cr_assert_gt(ack.retry_after_ms, 0);
	cr_assert_eq(dp_test_counter(DP_FRAMES_LEADERSHIP_LOST), 1);
	cr_assert_eq(dp_test_counter(DP_ACKS_SENT), 0);

	/* The retry meets the new leader's redirect, not this node's window. */
	fake.lost = false;
	fake.lead[shard] = FAKE_REMOTE;
	send_payload(buf, records_frame(buf, "orders", 44, 1, FRAME_ACK_DURABLE, &r, 1));
	next_answer(&ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_NOT_LEADER);
}

Test(dp_cluster, redirects_frames_for_a_shard_led_elsewhere)
{
	uint8_t buf[1500];
	struct rec r = { .key = "device-17", .data = "x" };
	uint32_t shard = shard_of("device-17");
	struct frame_ack ack;

	fake.lead[shard] = FAKE_REMOTE;
	send_payload(buf, records_frame(buf, "orders", 45, 7, FRAME_ACK_DURABLE, &r, 1));
	next_answer(&ack, NULL);
	cr_assert_eq(ack.type, FRAME_TYPE_NACK);
	cr_assert_eq(ack.status, FRAME_STATUS_NOT_LEADER);
	cr_assert_eq(ack.batch_seq, 7);
	cr_assert_eq(ack.redirect.shard_index, shard);
	cr_assert_eq(ack.redirect.family, 4);
	cr_assert_eq(ack.redirect.port, 4571 + shard);
	cr_assert_eq(ack.redirect.addr[0], 198);
	cr_assert_eq(ack.redirect.addr[3], 7);

	/* A SHARD_RECORDS frame for it too. */
	send_payload(buf, grouped_frame(buf, 45, 8, shard, &r, 1));
	next_answer(&ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_NOT_LEADER);
	cr_assert_eq(ack.redirect.shard_index, shard);
	cr_assert_eq(dp_test_counter(DP_FRAMES_REDIRECTED), 2);
	pump_until_idle();
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0, "nothing stored");
	cr_assert_eq(shard_durable(shard), 0);
}

Test(dp_cluster, refuses_a_records_frame_over_shards_of_different_leaders)
{
	uint8_t buf[1500];
	char keys[2][16];
	struct rec recs[2] = { 0 };
	struct frame_ack ack;
	uint32_t shards[2];

	/* Two records in two different shards: one led here, one elsewhere. */
	for (uint32_t n = 0, i = 0; n < 2; i++) {
		snprintf(keys[n], sizeof(keys[n]), "s-%u", i);
		shards[n] = shard_of(keys[n]);
		if (n == 1 && shards[1] == shards[0])
			continue;
		recs[n] = (struct rec){ .key = keys[n], .data = "d" };
		n++;
	}
	fake.lead[shards[1]] = FAKE_REMOTE;
	send_payload(buf, records_frame(buf, "orders", 46, 1, FRAME_ACK_DURABLE, recs, 2));
	next_answer(&ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_SPLIT_LEADERS);
	cr_assert_eq(dp_test_counter(DP_FRAMES_SPLIT_LEADERS), 1);

	/* No leader known for a shard: throttled, retry soon. */
	fake.lead[shards[1]] = FAKE_UNKNOWN;
	send_payload(buf, records_frame(buf, "orders", 46, 2, FRAME_ACK_DURABLE, &recs[1], 1));
	next_answer(&ack, NULL);
	cr_assert_eq(ack.status, FRAME_STATUS_THROTTLED);
	cr_assert_gt(ack.retry_after_ms, 0);
	cr_assert_eq(dp_test_counter(DP_FRAMES_NO_LEADER), 1);
	pump_until_idle();
	cr_assert_eq(dp_test_counter(DP_RECORDS_STAGED), 0, "nothing stored");
}
