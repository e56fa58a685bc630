/*
 * harness.h - shared pieces of libsluice's tests: per-record outcomes
 * collected by the completion callback, default configurations for the
 * test server and the producer, and the exactly-once / key-order checks.
 */
#ifndef SLUICE_TEST_PRODUCER_HARNESS_H
#define SLUICE_TEST_PRODUCER_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/tools/producer/test_server.h"
#include "tools/producer/sluice_producer.h"

#define STREAM "orders"

struct outcome {
	uint32_t completions;
	int err;
	uint8_t status;
	bool known;
	uint32_t shard_index;
	uint64_t seq;
};

/* Indexed by the record's tag. */
extern struct outcome outcomes[TEST_SERVER_RECORDS_MAX];

void on_complete(void *user, const struct sluice_result *r);
void server_config_init(struct test_server_config *sc, bool tcp);
void producer_config_init(struct sluice_producer_config *pc, struct test_server *server, bool tcp);
/* Puts records first .. first+count-1 (key "key-<i % keys>", data "rec-<i>"), polling on -EAGAIN. */
void put_range(struct sluice_producer *p, uint32_t first, uint32_t count, uint32_t keys);
void put_all(struct sluice_producer *p, uint32_t count, uint32_t keys);
void verify(struct test_server *server, uint32_t count, uint32_t keys, bool positions_required);

#endif /* SLUICE_TEST_PRODUCER_HARNESS_H */
