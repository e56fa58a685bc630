/*
 * producer_example: the example program of docs/PROTOCOL.md §10, extracted and
 * compiled by meson, run against the test server with 200 lines on stdin.
 * It must exit 0, print one position per line, and the server must have
 * stored each line once at exactly that position.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/tools/producer/harness.h"

/* One printed position: the record's tag and where the example says it was stored. */
struct example_line {
	unsigned long long tag;
	unsigned shard;
	unsigned long long seq;
};

Test(producer_example, runs_as_documented)
{
	struct test_server_config sc;
	struct test_server *server;
	static struct example_line printed[200];
	char cmd[1024];
	char line[256];
	FILE *out;
	uint32_t lines = 0;

	server_config_init(&sc, false);
	cr_assert_eq(test_server_start(&sc, &server), 0);
	snprintf(cmd, sizeof(cmd),
		 "i=0; while [ $i -lt 200 ]; do echo rec-$i; i=$((i+1)); done | '%s' 127.0.0.1 %u %s",
		 PRODUCER_EXAMPLE_PATH, (unsigned)test_server_port(server), STREAM);
	out = popen(cmd, "r");
	cr_assert_not_null(out);
	while (fgets(line, sizeof(line), out) != NULL) {
		struct example_line *p = &printed[lines];

		cr_assert_lt(lines, 200, "more lines than records: %s", line);
		cr_assert_eq(sscanf(line, "record %llu: shardId-%u seq %llu", &p->tag, &p->shard,
				    &p->seq), 3, "%s", line);
		lines++;
	}
	cr_assert_eq(WEXITSTATUS(pclose(out)), 0);
	cr_assert_eq(lines, 200);
	/*
	 * The server thread writes the records; they are read only after it stopped (its
	 * contract), not while it runs: the ACK the example waited for went through the kernel,
	 * which orders nothing for the memory model.
	 */
	test_server_stop(server);
	for (uint32_t i = 0; i < lines; i++) {
		const struct test_server_record *rec = test_server_record(server,
									  (uint32_t)printed[i].tag);

		cr_assert_eq(rec->stored, 1);
		cr_assert_eq(rec->shard_index, printed[i].shard);
		cr_assert_eq(rec->seq, printed[i].seq);
	}
	test_server_free(server);
}
