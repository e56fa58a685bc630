/* clock.c - the only reader of the system clocks. */
#include <assert.h>
#include <time.h>

#include "common/clock.h"

static uint64_t
clock_read_ns(clockid_t id)
{
	struct timespec ts;
	int rc = clock_gettime(id, &ts);

	assert(rc == 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
clock_mono_ns(void)
{
	return clock_read_ns(CLOCK_MONOTONIC);
}

uint64_t
clock_real_ns(void)
{
	return clock_read_ns(CLOCK_REALTIME);
}
