/*
 * route.c - the control side of the dataplane: configuration -> dp_config,
 * dataplane start and stop, and the route table.
 *
 * The route table follows metadata (metadata.h, the truth for streams and
 * shards): the route thread sleeps on a metadata watch (METADATA_CHANGES_ROUTING)
 * and, when woken, takes the watch's generation, reads every stream that is not
 * being deleted and its open shards through its own reader handle, and publishes
 * a new table when their digest changed. No timer: every change that moves a
 * route is published by the metadata call that committed it, so nothing can be
 * missed and nothing is polled (a failed read is retried on a timer until it
 * works, as its change will not be announced again). A storm of changes costs one
 * read per wake (the generation coalesces them), and a wake or a cut that finds
 * the generation where the last good read left it reads nothing. Publishing waits
 * for one RCU grace period of the workers (one poll pass), never the reverse.
 * A stream exists here as soon as CreateStream committed it (metadata has no
 * CREATING state), so UDP producers may write to it a status delay early.
 *
 * Reads by cause (enum route_cause) are counted for tests and the docs' claims.
 * The dataplane never calls into SQLite, HTTP or JSON: only this module does.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/diag.h"
#include "common/limits.h"
#include "control/metadata.h"
#include "control/route.h"
#include "dataplane/dataplane.h"
#include "nvme-log/log.h"

/* A worker asleep answers a flush when it wakes; this bounds a stuck one. */
#define ROUTE_FLUSH_TIMEOUT_MS 1000
/*
 * While the last read or publish failed (SQLite busy past its timeout, no memory, a
 * table the dataplane refuses), it is retried this often: the change that caused it
 * was taken, so no event would come again. The only timer, and only while failing.
 */
#define ROUTE_RETRY_MS 1000

struct route_shard {
	uint32_t stream_id;
	uint32_t shard_index;
	hashkey_t start;
	hashkey_t end;
};

struct route_stream {
	uint32_t stream_id;
	char name[SLUICE_STREAM_NAME_SIZE_MAX + 1];
};

/* What one metadata read found. Grown with realloc: control thread only. */
struct route_snapshot {
	struct route_stream *streams;
	uint32_t stream_count;
	uint32_t stream_capacity;
	struct route_shard *shards;
	uint32_t shard_count;
	uint32_t shard_capacity;
};

struct route {
	struct dp *dp;
	struct metadata *md;     /* The route thread's reader handle (metadata_open_reader). */
	/*
	 * Wakes the route thread (metadata publishes into it; stop kicks it). Not a condition
	 * under `lock`: the API thread must never wait for that lock, which a reshard's cut
	 * holds while workers flush (up to ROUTE_FLUSH_TIMEOUT_MS).
	 */
	struct metadata_watch *watch;
	pthread_mutex_t lock;    /* One publisher at a time: the route thread or a cut. */
	pthread_t thread;
	atomic_bool stop;
	uint32_t digest;         /* Under lock, as the rest below. */
	bool published;
	bool failed;             /* The last read or publish failed: retry, do not skip. */
	uint32_t workers;        /* Of the running dataplane (route_dp_worker_stats). */
	struct route_stats stats;
};

static int
route_add_stream(void *arg, const struct metadata_stream *stream)
{
	struct route_snapshot *snap = arg;
	struct route_stream *s;

	if (stream->deleting)
		return 0;
	if (snap->stream_count == snap->stream_capacity) {
		uint32_t cap = snap->stream_capacity ? snap->stream_capacity * 2 : 16;
		void *p = realloc(snap->streams, cap * sizeof(*snap->streams));

		if (p == NULL)
			return -ENOMEM;
		snap->streams = p;
		snap->stream_capacity = cap;
	}
	s = &snap->streams[snap->stream_count++];
	memset(s, 0, sizeof(*s));
	s->stream_id = stream->stream_id;
	strncpy(s->name, stream->name, SLUICE_STREAM_NAME_SIZE_MAX);
	return 0;
}

static int
route_add_shard(void *arg, uint32_t stream_id, const struct metadata_shard *shard)
{
	struct route_snapshot *snap = arg;
	struct route_shard *s;

	if (shard->closed)
		return 0;
	if (snap->shard_count == snap->shard_capacity) {
		uint32_t cap = snap->shard_capacity ? snap->shard_capacity * 2 : 64;
		void *p = realloc(snap->shards, cap * sizeof(*snap->shards));

		if (p == NULL)
			return -ENOMEM;
		snap->shards = p;
		snap->shard_capacity = cap;
	}
	s = &snap->shards[snap->shard_count++];
	memset(s, 0, sizeof(*s));
	s->stream_id = stream_id;
	s->shard_index = shard->shard_index;
	s->start = shard->start;
	s->end = shard->end;
	return 0;
}

static bool
route_stream_listed(const struct route_snapshot *snap, uint32_t stream_id)
{
	for (uint32_t i = 0; i < snap->stream_count; i++)
		if (snap->streams[i].stream_id == stream_id)
			return true;
	return false;
}

static int
route_publish(struct route *r, const struct route_snapshot *snap)
{
	struct dp_route_builder *b = NULL;
	int rc = dp_route_builder_open(snap->stream_count ? snap->stream_count : 1,
				       snap->shard_count ? snap->shard_count : 1, &b);

	for (uint32_t i = 0; i < snap->stream_count && rc == 0; i++)
		rc = dp_route_add_stream(b, snap->streams[i].name, snap->streams[i].stream_id);
	for (uint32_t i = 0; i < snap->shard_count && rc == 0; i++) {
		const struct route_shard *s = &snap->shards[i];

		if (!route_stream_listed(snap, s->stream_id))
			continue; /* A shard of a stream being deleted. */
		rc = dp_route_add_range(b, s->stream_id, s->start, s->end,
					LOG_SHARD_ID(s->stream_id, s->shard_index));
	}
	if (rc == 0)
		rc = dp_route_publish(r->dp, b);
	if (b != NULL)
		dp_route_builder_close(b);
	return rc;
}

/*
 * Reads metadata; publishes when streams or open shards changed. Under r->lock. The
 * watch's generation is taken before the read, so the read holds every change it
 * counts; when no change came since the last good read there is nothing to read (a
 * cut after the route thread already read the reshard, a wake after a cut did).
 */
static int
route_refresh(struct route *r, enum route_cause cause)
{
	struct route_snapshot snap = { 0 };
	uint64_t generation = metadata_watch_take(r->watch);
	uint32_t digest;
	int rc;

	if (r->published && !r->failed && generation == r->stats.generation) {
		r->stats.skips++;
		return 0;
	}
	r->stats.refreshes[cause]++;
	rc = metadata_load(r->md, route_add_stream, route_add_shard, &snap);
	if (rc == 0) {
		digest = crc32c(0, snap.streams, snap.stream_count * sizeof(*snap.streams));
		digest = crc32c(digest, snap.shards, snap.shard_count * sizeof(*snap.shards));
		if (!r->published || digest != r->digest) {
			rc = route_publish(r, &snap);
			if (rc == 0) {
				r->digest = digest;
				r->published = true;
				r->stats.publishes++;
				diag_info("route", "published %u streams, %u open shards",
					  snap.stream_count, snap.shard_count);
			}
		}
	}
	if (rc == 0)
		r->stats.generation = generation;
	else
		r->stats.failures++;
	r->failed = rc != 0;
	free(snap.streams);
	free(snap.shards);
	return rc;
}

/*
 * Sleeps until the watch fires (a routing change, or the stop's kick): no timeout,
 * unless the last read failed (ROUTE_RETRY_MS). What woke it: EVENT or RETRY.
 */
static enum route_cause
route_wait(struct route *r, bool failed)
{
	struct pollfd pfd = { .fd = metadata_watch_fd(r->watch), .events = POLLIN };
	int n;

	while ((n = poll(&pfd, 1, failed ? ROUTE_RETRY_MS : -1)) < 0 && errno == EINTR)
		;
	return n == 0 ? ROUTE_CAUSE_RETRY : ROUTE_CAUSE_EVENT;
}

static void *
route_thread_main(void *arg)
{
	struct route *r = arg;
	bool failed = false;
	int last_rc = 0;

	pthread_setname_np(pthread_self(), "sluice-route");
	for (;;) {
		enum route_cause cause = route_wait(r, failed);
		int rc;

		if (atomic_load(&r->stop))
			break;
		pthread_mutex_lock(&r->lock);
		rc = route_refresh(r, cause);
		failed = r->failed;      /* A cut may have failed or succeeded since. */
		pthread_mutex_unlock(&r->lock);
		/* Retried every ROUTE_RETRY_MS until it works; said once per new error. */
		if (rc != 0 && rc != last_rc)
			diag_warn("route", "route table refresh: %s", strerror(-rc));
		last_rc = rc;
	}
	return NULL;
}

/* kinesis_routes.sync (closer thread): the reshard's cut (see route.h). */
static int
route_sync(void *ctx)
{
	struct route *r = ctx;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = r->dp == NULL ? 0 : route_refresh(r, ROUTE_CAUSE_CUT);
	/* The cut took the change: the route thread takes over retrying it. */
	if (rc != 0)
		metadata_watch_kick(r->watch);
	if (rc == 0 && r->dp != NULL)
		rc = dp_flush_staged(r->dp, ROUTE_FLUSH_TIMEOUT_MS);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int
route_hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One "KEY_ID:HEX" of [dataplane] auth_keys. */
static int
route_auth_key_parse(const char *text, size_t size, struct frame_auth_key *key)
{
	const char *colon = memchr(text, ':', size);
	size_t hex_size;
	char *end;
	unsigned long id;

	if (colon == NULL || colon == text)
		return -EINVAL;
	id = strtoul(text, &end, 10);
	hex_size = size - (size_t)(colon + 1 - text);
	if (end != colon || id > UINT32_MAX || hex_size % 2 != 0 ||
	    hex_size / 2 < FRAME_AUTH_KEY_SIZE_MIN || hex_size / 2 > FRAME_AUTH_KEY_SIZE_MAX)
		return -EINVAL;
	memset(key, 0, sizeof(*key));
	key->key_id = (uint32_t)id;
	key->key_size = (uint8_t)(hex_size / 2);
	for (size_t i = 0; i < hex_size / 2; i++) {
		int hi = route_hex_nibble(colon[1 + 2 * i]);
		int lo = route_hex_nibble(colon[2 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		key->key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* "KEY_ID:HEX,KEY_ID:HEX" -> keys; the count, or -EINVAL. */
static int
route_auth_keys_parse(const char *text, struct frame_auth_key *keys, uint32_t keys_max)
{
	uint32_t count = 0;

	while (*text != '\0') {
		size_t size = strcspn(text, ",");

		if (count == keys_max || route_auth_key_parse(text, size, &keys[count]) != 0)
			return -EINVAL;
		count++;
		text += size;
		if (*text == ',')
			text++;
	}
	return (int)count;
}

int
route_dp_config(const struct sluice_config *c, struct log *log, struct dp_config *out,
		const char **key_out)
{
	static struct frame_auth_key keys[DP_AUTH_KEYS_MAX];
	int key_count = route_auth_keys_parse(c->dp_auth_keys, keys, DP_AUTH_KEYS_MAX);

	struct in_addr addr;

	*key_out = NULL;
	if (key_count < 0) {
		*key_out = "auth_keys";
		diag_error("route", "[dataplane] auth_keys: want up to %u KEY_ID:HEX pairs, "
			   "16 to 64 bytes each", DP_AUTH_KEYS_MAX);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, c->dp_ipv4, &addr) != 1) {
		*key_out = "ipv4";
		diag_error("route", "[dataplane] ipv4 %s is not an IPv4 address", c->dp_ipv4);
		return -EINVAL;
	}
	dp_config_default(out);
	/* Keys are copied by dp_open(); with any key, every frame must be signed. */
	out->auth_keys = keys;
	out->auth_key_count = (uint32_t)key_count;
	out->auth_required = key_count > 0;
	out->backend = strcmp(c->dp_backend, "kernel") == 0 ? DP_BACKEND_KERNEL :
							      DP_BACKEND_DPDK;
	out->eal_args = c->dp_eal_args;
	out->vdev = c->dp_vdev;
	out->no_huge = c->dp_no_huge;
	out->in_memory = !c->dp_no_huge; /* No hugepage files left behind. */
	out->telemetry = true;
	out->ipv4 = ntohl(addr.s_addr);
	out->ingest_port = (uint16_t)c->dp_ingest_port;
	out->workers = c->dp_workers;
	out->batch_age_us = c->dp_batch_age_us;
	out->admit_wait_ms = c->dp_admit_wait_ms;
	out->producers_max = c->dp_producers_max;
	out->idle_polls = c->dp_idle_polls;
	out->idle_sleep_us = c->dp_idle_sleep_us;
	out->mbufs = c->dp_mbufs;
	out->ring_size = c->dp_ring_size;
	out->mtu = c->dp_mtu;
	out->tcp_connections = c->dp_tcp_connections;
	out->tcp_half_open = c->dp_tcp_half_open;
	out->tcp_per_source = c->dp_tcp_per_source;
	out->tcp_rx_buffers = c->dp_tcp_rx_buffers;
	out->tcp_rx_buffer_kb = c->dp_tcp_rx_buffer_kb;
	out->tcp_tx_buffers = c->dp_tcp_tx_buffers;
	out->tcp_tx_buffer_kb = c->dp_tcp_tx_buffer_kb;
	out->tcp_mss = c->dp_tcp_mss;
	out->tcp_idle_timeout_s = c->dp_tcp_idle_timeout_s;
	out->tcp_keepalive_s = c->dp_tcp_keepalive_s;
	out->tcp_partial_frame_s = c->dp_tcp_partial_frame_s;
	out->log = log;
	return 0;
}

int
route_open(struct route **route_out)
{
	struct route *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	*route_out = r;
	return 0;
}

void
route_close(struct route *r)
{
	if (r == NULL)
		return;
	route_dataplane_stop(r);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* The reader handle and its watch; nothing is left open on failure. */
static int
route_metadata_open(struct route *r, struct metadata *md)
{
	int rc = metadata_open_reader(md, &r->md);

	if (rc != 0)
		return rc;
	rc = metadata_watch_open(md, METADATA_CHANGES_ROUTING, &r->watch);
	if (rc != 0) {
		metadata_close(r->md);
		r->md = NULL;
	}
	return rc;
}

static void
route_metadata_close(struct route *r)
{
	metadata_watch_close(r->watch);
	r->watch = NULL;
	metadata_close(r->md);
	r->md = NULL;
}

int
route_dataplane_start(struct route *r, const struct sluice_config *config, struct log *log,
		      struct metadata *md, const struct dp_cluster *cluster,
		      struct kinesis_routes *routes_out)
{
	struct dp_config dc;
	const char *key;
	int rc = route_dp_config(config, log, &dc, &key);

	dc.cluster = cluster;
	assert(r->dp == NULL);
	if (rc == 0)
		rc = route_metadata_open(r, md);
	if (rc != 0)
		return rc;
	rc = dp_open(&dc, &r->dp);
	if (rc != 0)
		goto out_close_md;
	r->workers = dc.workers;
	pthread_mutex_lock(&r->lock);
	rc = route_refresh(r, ROUTE_CAUSE_START);
	pthread_mutex_unlock(&r->lock);
	if (rc == 0)
		rc = dp_start(r->dp);
	if (rc != 0)
		goto out_close_dp;
	atomic_store(&r->stop, false);
	rc = -pthread_create(&r->thread, NULL, route_thread_main, r);
	if (rc == 0) {
		*routes_out = (struct kinesis_routes){ .sync = route_sync, .ctx = r };
		diag_info("route", "dataplane on %s, %s:%u, %u workers",
			  dc.backend == DP_BACKEND_KERNEL ? "kernel sockets (io_uring)" :
							    config->dp_vdev,
			  config->dp_ipv4, config->dp_ingest_port, config->dp_workers);
		return 0;
	}
	dp_stop(r->dp);
out_close_dp:
	pthread_mutex_lock(&r->lock);
	dp_close(r->dp);
	r->dp = NULL;
	pthread_mutex_unlock(&r->lock);
out_close_md:
	route_metadata_close(r);
	return rc;
}

int
route_dp_worker_stream_counts(struct route *r, uint32_t worker, struct dp_stream_count *out,
			      uint32_t max)
{
	int rc = -ENODEV;

	if (r == NULL)
		return rc;
	pthread_mutex_lock(&r->lock);
	if (r->dp != NULL && worker < r->workers)
		rc = (int)dp_worker_stream_counts(r->dp, worker, out, max);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int
route_dp_worker_stats(struct route *r, uint32_t worker, struct dp_stats *stats_out)
{
	int rc = -ENODEV;

	if (r == NULL)
		return rc;
	pthread_mutex_lock(&r->lock);
	if (r->dp != NULL && worker < r->workers) {
		dp_worker_stats_read(r->dp, worker, stats_out);
		rc = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

const char *
route_cause_name(enum route_cause cause)
{
	static const char *const names[ROUTE_CAUSES] = {
		[ROUTE_CAUSE_START] = "start",
		[ROUTE_CAUSE_EVENT] = "event",
		[ROUTE_CAUSE_CUT] = "cut",
		[ROUTE_CAUSE_RETRY] = "retry",
	};

	assert(cause < ROUTE_CAUSES);
	return names[cause];
}

void
route_stats_read(struct route *r, struct route_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->stats;
	pthread_mutex_unlock(&r->lock);
}

int
route_lookup(struct route *r, const char *stream_name, hashkey_t key, uint64_t *shard_id_out)
{
	int rc = -ENODEV;

	/* Publishes happen under the lock: the table read here cannot be freed meanwhile. */
	pthread_mutex_lock(&r->lock);
	if (r->dp != NULL)
		rc = dp_route_lookup(r->dp, stream_name, key, shard_id_out);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
route_hold(struct route *r)
{
	pthread_mutex_lock(&r->lock);
}

void
route_release(struct route *r)
{
	pthread_mutex_unlock(&r->lock);
}

void
route_dataplane_stop(struct route *r)
{
	if (r == NULL || r->dp == NULL)
		return;
	atomic_store(&r->stop, true);
	metadata_watch_kick(r->watch);
	pthread_join(r->thread, NULL);
	pthread_mutex_lock(&r->lock);
	diag_info("route", "metadata reads: %llu at start, %llu on events, %llu at cuts, %llu "
		  "retries; %llu wakes and cuts found nothing new; %llu tables published, %llu "
		  "failures", (unsigned long long)r->stats.refreshes[ROUTE_CAUSE_START],
		  (unsigned long long)r->stats.refreshes[ROUTE_CAUSE_EVENT],
		  (unsigned long long)r->stats.refreshes[ROUTE_CAUSE_CUT],
		  (unsigned long long)r->stats.refreshes[ROUTE_CAUSE_RETRY],
		  (unsigned long long)r->stats.skips, (unsigned long long)r->stats.publishes,
		  (unsigned long long)r->stats.failures);
	dp_close(r->dp);
	r->dp = NULL;
	pthread_mutex_unlock(&r->lock);
	route_metadata_close(r);
}
