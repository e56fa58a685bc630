/*
 * dp_ingestd - the dataplane over a real log, for integration tests: opens
 * the log in --dir, starts the dataplane on --vdev with one stream ("s",
 * --shards equal shards), prints "dp_ingestd: ready", runs until SIGTERM,
 * then verifies a producer's ledger against the log and prints the counters.
 *
 * Ledger lines (written by dp_sender): "<shard> <seq> <key> <data>". The
 * check: every line's record is at (shard, seq) with its key and data, the
 * shard is the one MD5(key) routes to, and each shard holds exactly the
 * ledger's records (no gap, no duplicate): exactly once.
 *
 * Exit: 0 ok, 1 verification or runtime failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/hashkey.h"
#include "dataplane/dataplane.h"
#include "nvme-log/log.h"

#define STREAM_ID 1u
#define SHARDS_MAX 64u
#define LEDGER_KEY_MAX 256

struct opts {
	const char *dir;
	const char *vdev;
	const char *ledger;
	uint32_t shards;
	uint32_t workers;
};

static int
publish(struct dp *dp, uint32_t shards)
{
	struct dp_route_builder *b;
	int rc = dp_route_builder_open(1, shards, &b);

	if (rc != 0)
		return rc;
	rc = dp_route_add_stream(b, "s", STREAM_ID);
	for (uint32_t i = 0; i < shards && rc == 0; i++) {
		hashkey_t end = i + 1 < shards ? hashkey_range_start(i + 1, shards) - 1 : HASHKEY_MAX;

		rc = dp_route_add_range(b, STREAM_ID, hashkey_range_start(i, shards), end,
					LOG_SHARD_ID(STREAM_ID, i));
	}
	if (rc == 0)
		rc = dp_route_publish(dp, b);
	dp_route_builder_close(b);
	return rc;
}

struct expect {
	const char *key;
	const char *data;
	int found;
};

static int
compare(void *arg, const struct log_record_out *r)
{
	struct expect *e = arg;

	e->found = r->partition_key_size == strlen(e->key) &&
		   memcmp(r->partition_key, e->key, r->partition_key_size) == 0 &&
		   r->data_size == strlen(e->data) && memcmp(r->data, e->data, r->data_size) == 0;
	return 1;
}

static uint32_t
shard_of(const char *key, uint32_t shards)
{
	hashkey_t h = hashkey_from_partition_key(key, strlen(key));

	for (uint32_t i = shards; i-- > 0;)
		if (h >= hashkey_range_start(i, shards))
			return i;
	return 0;
}

static int
verify_line(struct log_reader *reader, uint32_t shards, unsigned shard, unsigned long long seq,
	    const char *key, const char *data)
{
	struct expect e = { key, data, 0 };
	uint64_t next;

	if (shard != shard_of(key, shards)) {
		fprintf(stderr, "verify: key %s in shard %u, MD5 routes it to %u\n", key, shard,
			shard_of(key, shards));
		return -1;
	}
	if (log_read(reader, LOG_SHARD_ID(STREAM_ID, shard), seq, 1, 1u << 20, compare, &e,
		     &next) != 1 || !e.found) {
		fprintf(stderr, "verify: shard %u seq %llu does not hold key %s\n", shard, seq, key);
		return -1;
	}
	return 0;
}

static int
verify(struct log *log, const char *path, uint32_t shards)
{
	static char key[LEDGER_KEY_MAX + 1];
	static char data[4096];
	uint64_t count[SHARDS_MAX] = { 0 };
	struct log_reader *reader;
	unsigned long long seq;
	unsigned shard;
	uint64_t lines = 0;
	int bad = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL || log_reader_open(log, &reader) != 0) {
		fprintf(stderr, "verify: cannot open %s or a reader\n", path);
		return -1;
	}
	while (fscanf(f, "%u %llu %256s %4095s", &shard, &seq, key, data) == 4) {
		lines++;
		if (shard >= shards || verify_line(reader, shards, shard, seq, key, data) != 0) {
			bad++;
			continue;
		}
		count[shard]++;
	}
	fclose(f);
	for (uint32_t s = 0; s < shards; s++) {
		struct log_shard_info info;

		log_shard_info(log, LOG_SHARD_ID(STREAM_ID, s), &info);
		if (info.seq_durable != count[s]) {
			fprintf(stderr, "verify: shard %u holds %llu records, the ledger %llu\n", s,
				(unsigned long long)info.seq_durable, (unsigned long long)count[s]);
			bad++;
		}
	}
	log_reader_close(reader);
	printf("dp_ingestd: verified %llu ledger records, %d problems\n",
	       (unsigned long long)lines, bad);
	return bad == 0 && lines > 0 ? 0 : -1;
}

static void
print_stats(const struct dp *dp)
{
	struct dp_stats stats;

	dp_stats_read(dp, &stats);
	for (uint32_t c = 0; c < DP_COUNTER_COUNT; c++)
		if (stats.counters[c] != 0)
			printf("dp-stat %s %llu\n", dp_counter_name((enum dp_counter)c),
			       (unsigned long long)stats.counters[c]);
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "vdev", required_argument, NULL, 'v' },
		{ "ledger", required_argument, NULL, 'l' },
		{ "shards", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*o = (struct opts){ .shards = 4, .workers = 1 };
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'd')
			o->dir = optarg;
		else if (opt == 'v')
			o->vdev = optarg;
		else if (opt == 'l')
			o->ledger = optarg;
		else if (opt == 's')
			o->shards = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'w')
			o->workers = (uint32_t)strtoul(optarg, NULL, 10);
		else
			return -1;
	}
	if (o->dir == NULL || o->vdev == NULL || o->shards == 0 || o->shards > SHARDS_MAX)
		return -1;
	return 0;
}

static int
run(const struct opts *o, struct log *log)
{
	struct dp_config c;
	struct dp *dp;
	sigset_t stop;
	int sig;
	int rc;

	dp_config_default(&c);
	c.vdev = o->vdev;
	c.no_huge = true;
	c.workers = o->workers;
	c.idle_polls = 256;
	c.idle_sleep_us = 100;
	c.log = log;
	rc = dp_open(&c, &dp);
	if (rc != 0)
		return rc;
	rc = publish(dp, o->shards);
	if (rc == 0)
		rc = dp_start(dp);
	if (rc == 0) {
		printf("dp_ingestd: ready\n");
		fflush(stdout);
		sigemptyset(&stop);
		sigaddset(&stop, SIGTERM);
		sigaddset(&stop, SIGINT);
		sigwait(&stop, &sig);
		dp_stop(dp);
	}
	print_stats(dp);
	dp_close(dp);
	return rc;
}

int
main(int argc, char **argv)
{
	struct log_config lc;
	struct log *log;
	struct opts o;
	sigset_t stop;
	int rc;

	if (parse(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: dp_ingestd --dir DIR --vdev VDEV [--shards N] "
				"[--workers N] [--ledger FILE]\n");
		return 2;
	}
	/* Blocked before any thread starts, so every thread inherits the mask. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	mkdir(o.dir, 0750);
	log_config_default(&lc);
	lc.dir_path = o.dir;
	lc.segment_size = 16u << 20;
	lc.commit_window_us = 100;
	rc = log_open(&lc, &log);
	if (rc != 0) {
		fprintf(stderr, "dp_ingestd: log_open %s: %s\n", o.dir, strerror(-rc));
		return 1;
	}
	rc = run(&o, log);
	if (rc != 0)
		fprintf(stderr, "dp_ingestd: dataplane: %s\n", strerror(-rc));
	if (rc == 0 && o.ledger != NULL)
		rc = verify(log, o.ledger, o.shards);
	log_close(log);
	return rc == 0 ? 0 : 1;
}
