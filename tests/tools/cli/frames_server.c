/*
 * frames_server - libsluice's in-process test server (tests/tools/producer/
 * test_server.h) as a process, so the CLI's udp/tcp transports can be run
 * against a real ingest socket with seeded faults.
 *
 *   frames_server udp|tcp STREAM SHARDS RECORDS DROP DUP REORDER THROTTLE CUT SEED
 *
 * Prints "port N" once listening, serves until stdin closes, then prints one
 * line per record index below RECORDS: "INDEX STORED_TIMES SHARD SEQ".
 * Record data must be "rec-INDEX" (the test server's convention).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tools/producer/test_server.h"

int
main(int argc, char **argv)
{
	struct test_server_config config = { 0 };
	struct test_server *server;
	unsigned long records;
	char line[256];

	if (argc != 11) {
		fprintf(stderr, "usage: frames_server udp|tcp STREAM SHARDS RECORDS DROP DUP "
			"REORDER THROTTLE CUT SEED\n");
		return 2;
	}
	config.tcp = strcmp(argv[1], "tcp") == 0;
	config.stream_name = argv[2];
	config.shards = (uint32_t)strtoul(argv[3], NULL, 10);
	records = strtoul(argv[4], NULL, 10);
	config.drop_in_pct = config.drop_out_pct = (uint32_t)strtoul(argv[5], NULL, 10);
	config.dup_in_pct = config.dup_out_pct = (uint32_t)strtoul(argv[6], NULL, 10);
	config.reorder_pct = (uint32_t)strtoul(argv[7], NULL, 10);
	config.throttle_pct = (uint32_t)strtoul(argv[8], NULL, 10);
	config.cut_pct = (uint32_t)strtoul(argv[9], NULL, 10);
	config.seed = strtoull(argv[10], NULL, 10);
	config.credit_size = 0xffffffffu;
	if (records > TEST_SERVER_RECORDS_MAX || test_server_start(&config, &server) != 0) {
		fprintf(stderr, "frames_server: cannot start\n");
		return 1;
	}
	printf("port %u\n", test_server_port(server));
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL)
		;
	test_server_stop(server);
	for (uint32_t i = 0; i < records; i++) {
		const struct test_server_record *record = test_server_record(server, i);

		printf("%u %u %u %llu\n", i, record->stored, record->shard_index,
		       (unsigned long long)record->seq);
	}
	test_server_free(server);
	return 0;
}
