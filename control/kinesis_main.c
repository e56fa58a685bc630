/*
 * kinesis_main.c - the Kinesis module's life: open (SQLite -> memory, re-apply
 * retention and unfinished deletions to the log), poll (log completions,
 * status transitions, retention) and close. Dispatch is kinesis_ops.c.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"

/* ---- Open and close ---------------------------------------------------- */

static int
kinesis_load_stream(void *arg, const struct metadata_stream *ms)
{
	struct kinesis *k = arg;
	struct kinesis_stream *s = NULL;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX && s == NULL; i++)
		if (!k->streams[i].used)
			s = &k->streams[i];
	if (s == NULL || ms->shard_count == 0 || strlen(ms->name) > SLUICE_STREAM_NAME_SIZE_MAX)
		return -ENOSPC;
	s->shards = calloc(ms->shard_count, sizeof(*s->shards));
	if (s->shards == NULL)
		return -ENOMEM;
	kinesis_stream_use(k, s);
	s->stream_id = ms->stream_id;
	s->incarnation = ms->incarnation;
	s->name_size = strlen(ms->name);
	memcpy(s->name, ms->name, s->name_size + 1);
	snprintf(s->arn, sizeof(s->arn), "arn:aws:kinesis:%s:%s:stream/%s", k->config.region,
		 k->config.account_id, s->name);
	s->status = ms->deleting ? KINESIS_DELETING : KINESIS_ACTIVE;
	s->mode = ms->mode;
	s->retention_hours = ms->retention_hours;
	s->shard_metrics = ms->shard_metrics & KINESIS_METRICS_ALL;
	s->max_record_kib = ms->max_record_kib;
	s->warm_mibps = ms->warm_mibps;
	s->created_ms = ms->created_ms;
	s->shard_count = ms->shard_count;
	s->shards_shown = ms->shard_count;
	k->shards_total += ms->shard_count;
	return 0;
}

int
kinesis_load_shard(void *arg, uint32_t stream_id, const struct metadata_shard *msh)
{
	struct kinesis *k = arg;
	struct kinesis_stream *s = kinesis_stream_by_id(k, stream_id);
	struct kinesis_shard *sh;

	if (s == NULL || msh->shard_index >= s->shard_count) {
		diag_error("kinesis", "metadata: shard %u of unknown stream %u", msh->shard_index,
			   stream_id);
		return -EIO;
	}
	sh = &s->shards[msh->shard_index];
	sh->index = msh->shard_index;
	sh->start = msh->start;
	sh->end = msh->end;
	sh->parent = msh->parent;
	sh->adjacent_parent = msh->adjacent_parent;
	sh->created_s = msh->created_s;
	sh->closed = msh->closed;
	sh->close_pending = msh->closing;
	sh->seq_end = msh->seq_end;
	sh->log_id = LOG_SHARD_ID(stream_id, msh->shard_index);
	return 0;
}

/* Cluster mode: one stream's shards of a full load (the stream being adopted). */
struct kinesis_adopt {
	struct kinesis *k;
	uint32_t stream_id;
};

static int
kinesis_adopt_stream_skip(void *arg, const struct metadata_stream *ms)
{
	(void)arg;
	(void)ms;
	return 0;
}

static int
kinesis_adopt_shard(void *arg, uint32_t stream_id, const struct metadata_shard *msh)
{
	struct kinesis_adopt *a = arg;

	return stream_id == a->stream_id ? kinesis_load_shard(a->k, stream_id, msh) : 0;
}

int
kinesis_stream_adopt(struct kinesis *k, const struct metadata_stream *ms)
{
	struct kinesis_adopt a = { .k = k, .stream_id = ms->stream_id };
	struct kinesis_stream *s;
	int rc = kinesis_load_stream(k, ms);

	if (rc == 0)
		rc = metadata_load(k->md, kinesis_adopt_stream_skip, kinesis_adopt_shard, &a);
	s = kinesis_stream_by_id(k, ms->stream_id);
	if (rc == 0 && s != NULL) {
		kinesis_stream_index(s);
		kinesis_reshard_loaded(k, s);
		rc = kinesis_log_retention(k, s->stream_id, s->retention_hours);
	}
	return rc;
}

static int
kinesis_redo_delete(void *arg, uint32_t stream_id)
{
	struct kinesis *k = arg;
	int rc = log_stream_delete(k->log, stream_id);

	if (rc != 0 && rc != -ENOENT) {
		diag_warn("kinesis", "log_stream_delete(%u): %s", stream_id, strerror(-rc));
		return 0; /* Retried at the next retention pass, or start. */
	}
	return metadata_pending_delete_done(k->md, stream_id);
}

/* Makes the log agree with SQLite: finished deletions, retention. */
static int
kinesis_reconcile(struct kinesis *k)
{
	int rc;

	for (uint32_t i = 0; i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used && s->status == KINESIS_DELETING) {
			rc = kinesis_stream_delete_finish(k, s);
			if (rc != 0)
				return rc;
		}
	}
	/*
	 * Reshards committed in SQLite whose parents the log did not close yet. Cluster
	 * mode: the parent's leader closes it, wherever it is (kinesis_cluster_closes).
	 */
	for (uint32_t i = 0; k->mc == NULL && i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		for (uint32_t j = 0; s->used && j < s->shard_count; j++) {
			if (!s->shards[j].close_pending)
				continue;
			rc = kinesis_reshard_recover(k, s, j);
			/*
			 * A full disk must not keep the appliance down (space comes back
			 * through DeleteStream): the parent stays closing, redone next start.
			 */
			if (rc != 0 && rc != -ENOSPC)
				return rc;
		}
	}
	rc = metadata_pending_deletes(k->md, kinesis_redo_delete, k);
	for (uint32_t i = 0; rc == 0 && i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (s->used)
			rc = kinesis_log_retention(k, s->stream_id, s->retention_hours);
	}
	return rc;
}

static int
kinesis_alloc(struct kinesis *k)
{
	k->streams = calloc(SLUICE_STREAMS_MAX, sizeof(*k->streams));
	k->pending = calloc(KINESIS_PENDING_MAX, sizeof(*k->pending));
	k->results = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
			    sizeof(*k->results));
	k->batched = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
			    sizeof(*k->batched));
	k->batch_first = calloc((size_t)KINESIS_PENDING_MAX * KINESIS_PUT_RECORDS_MAX,
				sizeof(*k->batch_first));
	k->waits = calloc(KINESIS_PUT_WAITS_MAX, sizeof(*k->waits));
	k->scratch_size = k->config.request_body_size_max;
	k->scratch = malloc(k->scratch_size);
	k->req_scratch = malloc(sizeof(*k->req_scratch));
	if (k->streams == NULL || k->pending == NULL || k->results == NULL || k->scratch == NULL ||
	    k->batched == NULL || k->batch_first == NULL || k->waits == NULL ||
	    k->req_scratch == NULL)
		return -ENOMEM;
	static_assert(CONFIG_LOG_BATCHES_MIN >= KINESIS_PUT_RECORDS_MAX,
		      "one PutRecords to KINESIS_PUT_RECORDS_MAX shards fits the API's batches");
	static_assert(KINESIS_PUT_RECORDS_MAX <= UINT16_MAX, "result indexes are 16-bit");
	for (uint32_t i = 0; i < KINESIS_PENDING_MAX; i++) {
		size_t at = (size_t)i * KINESIS_PUT_RECORDS_MAX;

		k->pending[i].results = &k->results[at];
		k->pending[i].batched = &k->batched[at];
		k->pending[i].batch_first = &k->batch_first[at];
	}
	return 0;
}

/*
 * One fd for the server to wait on: an epoll set of the producer's completion eventfd,
 * the delivery streams' put completions and, while a subscription is open, the log's
 * durable eventfd (SubscribeToShard wakes on records other producers, such as the
 * dataplane's, made durable: kinesis_durable_watch). Asking for the durable eventfd
 * here arms it, so records made durable before a subscription starts find it readable.
 */
static int
kinesis_wake_open(struct kinesis *k)
{
	int fds[2] = { log_producer_event_fd(k->producer), firehose_event_fd(k->firehose) };
	int durable_fd = log_durable_event_fd(k->log);

	if (durable_fd < 0)
		return durable_fd;
	k->wake_fd = epoll_create1(EPOLL_CLOEXEC);
	if (k->wake_fd < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

		if (fds[i] < 0)
			return fds[i];
		if (epoll_ctl(k->wake_fd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
			return -errno;
	}
	return kinesis_cluster_wake_open(k);
}

void
kinesis_durable_watch(struct kinesis *k)
{
	struct epoll_event ev = { .events = EPOLLIN };
	bool want = kinesis_fanout_active(k);

	if (want == k->durable_watched)
		return;
	if (epoll_ctl(k->wake_fd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
		      log_durable_event_fd(k->log), &ev) != 0) {
		diag_warn("kinesis", "log durable eventfd %s the wake set: %s (tried again)",
			  want ? "into" : "out of", strerror(errno));
		return;
	}
	k->durable_watched = want;
}

/* Delivery streams: firehose.db next to the metadata, objects under [firehose] local_root. */
static int
kinesis_firehose_open(struct kinesis *k)
{
	char root[CONFIG_STRING_SIZE + 16];
	struct firehose_options options = {
		.data_dir = k->config.data_dir, .local_root = root, .log = k->log,
		.source = kinesis_firehose_source, .source_ctx = k, .flusher_thread = true,
		.s3 = {
			.endpoint = k->config.firehose_s3_endpoint,
			.region = k->config.firehose_s3_region,
			.access_key = k->config.firehose_s3_access_key,
			.secret_key = k->config.firehose_s3_secret_key,
			.path_style = k->config.firehose_s3_path_style,
			.part_mb = k->config.firehose_s3_part_mb,
		},
		.region = k->config.region, .account_id = k->config.account_id,
		.lambda_map = k->config.firehose_lambda_map,
		.lambda_timeout_s = k->config.firehose_lambda_timeout_s,
	};
	int rc;

	if (k->config.firehose_local_root[0] != '\0')
		snprintf(root, sizeof(root), "%s", k->config.firehose_local_root);
	else
		snprintf(root, sizeof(root), "%s/firehose", k->config.data_dir);
	rc = firehose_open(&options, &k->firehose);
	if (rc != 0)
		diag_error("kinesis", "delivery streams: %s", strerror(-rc));
	return rc;
}

int
kinesis_open(const struct sluice_config *config, struct log *log, struct kinesis **k_out)
{
	return kinesis_open_cluster(config, log, NULL, NULL, k_out);
}

int
kinesis_open_cluster(const struct sluice_config *config, struct log *log,
		     const char *etcd_endpoints, const char *cluster, struct kinesis **k_out)
{
	struct kinesis *k = calloc(1, sizeof(*k));
	int rc;

	if (k == NULL)
		return -ENOMEM;
	k->config = *config;
	k->log = log;
	k->wake_fd = -1;
	kinesis_ops_register_metrics();
	k->shard_limit = config->log_shards_max < SLUICE_SHARDS_MAX ? config->log_shards_max :
			 SLUICE_SHARDS_MAX;
	rc = kinesis_alloc(k);
	if (rc == 0)
		rc = metadata_open(config->data_dir, &k->md);
	/* etcd's state into the cache before anything below loads it. */
	if (rc == 0 && etcd_endpoints != NULL)
		rc = metadata_cluster_start(k->md, etcd_endpoints, cluster, &k->mc);
	if (rc != 0)
		goto out_free;
	/* Cluster mode: one secret for all nodes, so an iterator is good on any of them. */
	rc = k->mc != NULL ? metadata_cluster_secret(k->mc, k->secret, sizeof(k->secret)) :
	     metadata_secret(k->md, k->secret, sizeof(k->secret));
	if (rc == 0)
		rc = metadata_load(k->md, kinesis_load_stream, kinesis_load_shard, k);
	for (uint32_t i = 0; rc == 0 && i < SLUICE_STREAMS_MAX; i++) {
		if (!k->streams[i].used)
			continue;
		kinesis_stream_index(&k->streams[i]);
		if (k->mc != NULL)  /* Single-node: kinesis_reconcile closes them first. */
			kinesis_reshard_loaded(k, &k->streams[i]);
	}
	if (rc == 0)
		rc = kinesis_reconcile(k);
	if (rc == 0)
		rc = kinesis_policies_open(k);
	if (rc == 0)
		rc = kinesis_encryption_load(k);
	if (rc == 0)
		rc = log_producer_open(log, &k->producer);
	if (rc != 0)
		goto out_free;
	rc = log_reader_open(log, &k->reader);
	if (rc == 0)
		rc = kinesis_fanout_open(k);
	if (rc == 0)
		rc = kinesis_firehose_open(k);
	if (rc == 0)
		rc = kinesis_wake_open(k);
	if (rc != 0)
		goto out_close_producer;
	RAND_bytes((uint8_t *)&k->nonce, sizeof(k->nonce));
	k->retention_due_ns = clock_mono_ns() + (uint64_t)config->retention_check_s * 1000000000u;
	*k_out = k;
	return 0;

out_close_producer:
	log_producer_close(k->producer);
out_free:
	k->producer = NULL;
	kinesis_close(k);
	return rc;
}

/* Waits (bounded) for batches still in the log so the producer closes idle. */
static void
kinesis_drain(struct kinesis *k)
{
	/* Durable here, waiting for replicas that will not be asked again: no reply. */
	for (uint32_t i = 0; k->pending != NULL && i < KINESIS_PENDING_MAX; i++) {
		struct kinesis_pending *p = &k->pending[i];

		/* Waiting for leaders too (the forwarder is closed): no reply either. */
		if (p->call != NULL && p->forwards_left > 0 && p->batches_left == 0)
			p->replicating = true;
		p->forwards_left = 0;
		if (k->pending[i].call != NULL && k->pending[i].replicating) {
			k->pending[i].call = NULL;
			k->pending[i].replicating = false;
			k->pending_count--;
		}
	}
	k->replicating = 0;
	/* Reads waiting for a holder's answer (the forwarder is closed): no reply either. */
	memset(k->reads, 0, sizeof(k->reads));
	/* Relayed subscriptions' calls belong to the server, closed before us: forgotten. */
	memset(k->relays, 0, sizeof(k->relays));
	for (int i = 0; i < 5000 && k->pending_count > 0; i++) {
		struct log_completion done[64];
		uint32_t n = log_completions_poll(k->producer, done, 64);

		for (uint32_t j = 0; j < n; j++) {
			struct kinesis_pending *p = &k->pending[done[j].cookie >> 32];

			if (p->call != NULL && --p->batches_left == 0) {
				p->call = NULL; /* The server is gone: no reply. */
				k->pending_count--;
			}
		}
		if (n == 0)
			usleep(1000);
	}
}

void
kinesis_close(struct kinesis *k)
{
	if (k == NULL)
		return;
	kinesis_reshard_stop(k);
	firehose_close(k->firehose);
	if (k->producer != NULL) {
		kinesis_drain(k);
		log_producer_close(k->producer);
	}
	if (k->reader != NULL)
		log_reader_close(k->reader);
	kinesis_fanout_close(k);
	if (k->wake_fd >= 0)
		close(k->wake_fd);
	for (uint32_t i = 0; k->streams != NULL && i < SLUICE_STREAMS_MAX; i++)
		if (k->streams[i].used)
			kinesis_stream_free(&k->streams[i]);
	kinesis_policies_close(k);
	metadata_watch_close(k->cluster_watch);
	metadata_cluster_stop(k->mc);
	metadata_close(k->md);
	free(k->streams);
	free(k->pending);
	free(k->waits);
	free(k->results);
	free(k->batched);
	free(k->batch_first);
	free(k->scratch);
	free(k->req_scratch);
	free(k);
}

/* ---- Poll -------------------------------------------------- */

const struct firehose *
kinesis_firehose(const struct kinesis *k)
{
	return k->firehose;
}

struct metadata *
kinesis_metadata(struct kinesis *k)
{
	return k->md;
}

int
kinesis_event_fd(const struct kinesis *k)
{
	return k->wake_fd;
}

/*
 * Resets the eventfds behind wake_fd so a level-triggered loop does not spin (firehose_poll()
 * resets the delivery streams' own).
 */
static void
kinesis_event_clear(struct kinesis *k)
{
	/* Not watched (no subscription): left alone, poll(2) skips a negative fd. */
	struct pollfd pfd[2] = {
		{ .fd = log_producer_event_fd(k->producer), .events = POLLIN },
		{ .fd = k->durable_watched ? log_durable_event_fd(k->log) : -1, .events = POLLIN },
	};
	uint64_t value;

	if (poll(pfd, 2, 0) <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		if ((pfd[i].revents & POLLIN) != 0) {
			ssize_t n = read(pfd[i].fd, &value, sizeof(value));

			(void)n;
		}
	}
}

void
kinesis_poll(struct kinesis *k, uint64_t now_ns)
{
	uint64_t mono = clock_mono_ns();

	(void)now_ns;
	kinesis_event_clear(k);
	kinesis_put_poll(k);
	kinesis_reshard_poll(k);
	kinesis_autoscale_tick(k, mono, clock_real_ns());
	kinesis_stream_status_tick(k, mono);
	kinesis_cluster_follow(k);
	k->cluster_cuts_waiting = kinesis_cluster_closes(k);
	kinesis_fanout_poll(k);
	kinesis_durable_watch(k);
	firehose_poll(k->firehose, clock_real_ns());
	if (mono >= k->retention_due_ns) {
		int rc = log_retention_run(k->log, clock_real_ns());

		/* A full disk: the reserve is there so that space can come back. */
		if (rc == -ENOSPC && metadata_reserve_give(k->md))
			rc = log_retention_run(k->log, clock_real_ns());
		if (rc != 0 && rc != -ENOSYS)
			diag_warn("kinesis", "log_retention_run: %s", strerror(-rc));
		/* A deletion the log could not record (a full disk): try it again now. */
		if (metadata_pending_deletes(k->md, kinesis_redo_delete, k) != 0)
			diag_warn("kinesis", "pending stream deletions: not read");
		metadata_reserve_renew(k->md);  /* A no-op while held, or while space is short. */
		k->retention_due_ns = mono + (uint64_t)k->config.retention_check_s * 1000000000u;
	}
}

void
kinesis_reload(struct kinesis *k, const struct sluice_config *config)
{
	uint64_t retention_due = clock_mono_ns() + (uint64_t)config->retention_check_s * 1000000000u;

	config_copy_live(&k->config, config);
	/* A shorter interval starts now, not after the old one ran out. */
	k->retention_due_ns = min_u64(k->retention_due_ns, retention_due);
}

int
kinesis_poll_timeout_ms(const struct kinesis *k, uint64_t now_ns)
{
	uint64_t mono = clock_mono_ns();
	uint64_t due = k->retention_due_ns;
	int fanout_ms;

	(void)now_ns;
	for (uint32_t i = 0; k->transitions > 0 && i < k->streams_high; i++)
		if (k->streams[i].used && k->streams[i].status_due_ns != 0)
			due = min_u64(due, k->streams[i].status_due_ns);
	/* Completions wake us through the event fd; a short tick is a safety net. */
	if (k->pending_count > 0 || kinesis_forward_relays_retry(k))
		due = min_u64(due, mono + 10000000u);
	if (k->config.autoscale_window_s != 0)
		due = min_u64(due, k->autoscale_due_ns);
	/* Parent closes finish on the closer thread: look again soon. */
	if (k->closes_pending > 0)
		due = min_u64(due, mono + 1000000u);
	/* Cluster mode: a parent's cut waits for its acknowledgements (a replica's round trip). */
	if (k->cluster_cuts_waiting > 0)
		due = min_u64(due, mono + KINESIS_CLUSTER_CUT_POLL_MS * 1000000u);
	if (due <= mono)
		return 0;
	fanout_ms = kinesis_fanout_timeout_ms(k);
	if (fanout_ms >= 0)
		due = min_u64(due, mono + (uint64_t)fanout_ms * 1000000u);
	return (int)min_u64(min_u64((due - mono + 999999) / 1000000, 60000),
			    (uint64_t)firehose_poll_timeout_ms(k->firehose, clock_real_ns()));
}
