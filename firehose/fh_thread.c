/*
 * fh_thread.c - the flusher's own thread (options.flusher_thread) and the lock
 * it shares with the API thread (fh_internal.h, "Threads").
 *
 *   WHO            HOLDS THE LOCK FOR
 *   API thread     every public call: streams, puts' completions, SQLite,
 *                  staging source views (control/ is asked on its thread)
 *   flusher        choosing and cutting ranges, intents and delivered positions,
 *                  lanes; NOT while it compresses and writes an object
 *                  (fh_flush.c), so a 128 MiB GZIP cut does not stop puts
 *
 * The flusher sleeps on `wake` until the earliest stream is due or
 * FH_FLUSH_TICK_NS passes (source lanes are looked at every tick: appends to a
 * Kinesis stream do not wake it); puts' completions and changes signal it.
 */
#include <assert.h>
#include <errno.h>
#include <time.h>

#include "common/base.h"
#include "common/clock.h"
#include "firehose/fh_internal.h"

void
fh_lock(struct firehose *fh)
{
	int rc = pthread_mutex_lock(&fh->lock);

	assert(rc == 0);
	(void)rc;
}

void
fh_unlock(struct firehose *fh)
{
	int rc = pthread_mutex_unlock(&fh->lock);

	assert(rc == 0);
	(void)rc;
}

bool
fh_stream_same(const struct fh_stream *s, uint32_t id)
{
	return s->used && s->id == id;
}

/* Real time the flusher next has work, at most a tick away. */
static uint64_t
fh_thread_due(const struct firehose *fh, uint64_t now_ns)
{
	uint64_t due = now_ns + FH_FLUSH_TICK_NS;

	for (uint32_t i = 0; i < FIREHOSE_STREAMS_MAX; i++)
		if (fh->streams[i].used)
			due = min_u64(due, fh_flush_due(&fh->streams[i]));
	return due;
}

static void *
fh_thread_main(void *arg)
{
	struct firehose *fh = arg;

	pthread_setname_np(pthread_self(), "sluice-firehose");
	fh_lock(fh);
	while (!fh->stop) {
		uint64_t now = clock_real_ns(), due;
		struct timespec until;

		fh_flush_run(fh, now);
		due = fh_thread_due(fh, now);
		if (fh->stop || due <= clock_real_ns())
			continue;
		until = (struct timespec){ .tv_sec = (time_t)(due / 1000000000u),
					   .tv_nsec = (long)(due % 1000000000u) };
		/* CLOCK_REALTIME (the default): due times are the records' wall clock. */
		pthread_cond_timedwait(&fh->wake, &fh->lock, &until);
	}
	fh_unlock(fh);
	return NULL;
}

int
fh_thread_start(struct firehose *fh)
{
	int rc = pthread_create(&fh->thread, NULL, fh_thread_main, fh);

	if (rc != 0)
		return -rc;
	fh->thread_running = true;
	return 0;
}

void
fh_thread_stop(struct firehose *fh)
{
	if (!fh->thread_running)
		return;
	fh_lock(fh);
	fh->stop = true;
	pthread_cond_signal(&fh->wake);
	fh_unlock(fh);
	pthread_join(fh->thread, NULL);
	fh->thread_running = false;
}

void
fh_thread_wake(struct firehose *fh)
{
	if (fh->thread_running)
		pthread_cond_signal(&fh->wake);
}
