/*
 * cli_bench.h - pieces the API benchmarks share (cli_bench.c): a PutRecords
 * body, one HTTP/1.1 round trip on a kept-alive socket, and a GET from the
 * admin listener (sluice status, top, bench firehose).
 */
#ifndef SLUICE_TOOLS_CLI_BENCH_H
#define SLUICE_TOOLS_CLI_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tools/kinesis_client.h"

/* One connection's response buffer, grown as responses need. */
struct cli_rx {
	char *buf;
	size_t capacity;
};

/* Sends `size` bytes of `request` on `fd` and reads one whole response into rx. */
int cli_round_trip(struct cli_rx *rx, int fd, const char *request, size_t size,
		   struct kc_http_response *response);

/*
 * A PutRecords body for `stream` of `records` records of `record_size` random bytes
 * (at most 256) with random partition keys, each with `explicit_hash_key` (a decimal
 * 128-bit hash key: every record to the shard holding it) unless NULL; malloc'ed, NULL
 * without memory. The caller makes sure the key is digits only.
 */
char *cli_put_records_body(const char *stream, uint32_t records, uint32_t record_size,
			   const char *explicit_hash_key, size_t *size_out);

struct cli_admin_http {
	int code;
	char *body;      /* NUL-terminated, malloc'ed; NULL on failure. */
};

/* GET http://HOST:PORT/path over HTTP/1.0 (the admin listener closes after one answer). */
int cli_admin_get(const char *host_port, const char *path, const char *token,
		  struct cli_admin_http *out);
/* A JSON object's number member, 0 when absent. */
double cli_json_number(const cJSON *object, const char *name);

/* kc_call() with a JSON text; a service error is printed. */
int cli_bench_call(struct kc_client *client, const char *action, const char *json);
/* Creates the stream and waits (5 s at most) until it is ACTIVE. */
int cli_bench_stream_create(struct kc_client *client, const char *stream, uint64_t shards);
void cli_bench_stream_delete(struct kc_client *client, const char *stream);

#endif /* SLUICE_TOOLS_CLI_BENCH_H */
