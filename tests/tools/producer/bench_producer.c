/*
 * bench_producer: libsluice throughput against the in-process test server on
 * loopback (both on this machine's 2 cores), durable ACKs, for
 * docs/BENCHMARKS.md "Ingest". Records: 16-byte keys (1000 distinct), 100 B data.
 * Usage: bench_producer [records, default 300000]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/tools/producer/test_server.h"
#include "tools/producer/sluice_producer.h"

static uint64_t completed_ok;
static uint64_t completed_failed;

static void
on_done(void *user, const struct sluice_result *r)
{
	(void)user;
	if (r->err == 0)
		completed_ok++;
	else
		completed_failed++;
}

static void
run(bool tcp, uint32_t count, bool hash_keys)
{
	struct test_server_config sc = { .tcp = tcp, .seed = 1, .shards = 4,
					 .stream_name = "bench",
					 .credit_size = FRAME_CREDIT_UNLIMITED };
	struct sluice_producer_config pc;
	struct sluice_producer *p;
	struct test_server *server;
	char data[100];
	uint64_t start;
	double seconds;

	completed_ok = completed_failed = 0;
	if (test_server_start(&sc, &server) != 0)
		abort();
	sluice_producer_config_default(&pc, tcp ? SLUICE_TRANSPORT_TCP : SLUICE_TRANSPORT_UDP);
	pc.host = "127.0.0.1";
	pc.port = test_server_port(server);
	pc.stream_name = "bench";
	pc.on_complete = on_done;
	pc.hash_keys = hash_keys;
	if (tcp)
		pc.batch_size_max = 64 * 1024;
	if (sluice_producer_open(&pc, &p) != 0)
		abort();
	memset(data, 'x', sizeof(data));
	start = clock_mono_ns();
	for (uint32_t i = 0; i < count; i++) {
		char key[17];
		int n = snprintf(data, sizeof(data), "rec-%u", i % TEST_SERVER_RECORDS_MAX);

		data[n] = 'x';
		snprintf(key, sizeof(key), "device-%09u", i % 1000);
		while (sluice_producer_put(p, key, 16, data, sizeof(data), NULL, i) == -EAGAIN)
			sluice_producer_poll(p, 1);
	}
	if (sluice_producer_flush(p, 60000) != 0)
		abort();
	seconds = (double)(clock_mono_ns() - start) / 1e9;
	sluice_producer_close(p);
	test_server_stop(server);
	test_server_free(server);
	printf("libsluice %s, hash keys %s: %u records in %.2f s = %.0f records/s (ok %lu, "
	       "failed %lu)\n", tcp ? "TCP" : "UDP", hash_keys ? "on " : "off", count, seconds,
	       count / seconds, (unsigned long)completed_ok, (unsigned long)completed_failed);
}

int
main(int argc, char **argv)
{
	uint32_t count = argc > 1 ? (uint32_t)atoi(argv[1]) : 300000;

	run(false, count, true);
	run(false, count, false);
	run(true, count, true);
	run(true, count, false);
	return 0;
}
