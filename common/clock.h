/*
 * clock.h - time, read in one place. Logic takes `now_ns` as an argument
 * (time is injected) so tests and simulations can drive it.
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds: for timeouts, windows and latencies. */
uint64_t clock_mono_ns(void);

/* CLOCK_REALTIME in nanoseconds since the Unix epoch: for arrival timestamps. */
uint64_t clock_real_ns(void);

#endif /* SLUICE_CLOCK_H */
