/*
 * etcd_fixture.h - a real etcd (Debian etcd-server) for cluster/ tests: one
 * member on kernel-chosen loopback ports in a temp directory, started per
 * test and stopped by its PID.
 */
#ifndef SLUICE_TEST_ETCD_FIXTURE_H
#define SLUICE_TEST_ETCD_FIXTURE_H

#include <stdint.h>

/* "http://127.0.0.1:<port>" of the running member. */
extern char etcd_endpoint[64];

/* A free loopback TCP port (asked of the kernel; racy only against other tests). */
uint16_t etcd_fixture_free_port(void);
/* Starts the member and returns once it answers a read (asserts on failure). */
void etcd_fixture_start(void);
/* Sends the member a signal (SIGSTOP, SIGCONT: a stall of etcd as a fault). */
void etcd_fixture_signal(int sig);
/* Stops it (waiting for its exit) and removes its directory. */
void etcd_fixture_stop(void);

#endif /* SLUICE_TEST_ETCD_FIXTURE_H */
