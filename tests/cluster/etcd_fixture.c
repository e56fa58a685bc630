/* etcd_fixture.c - see etcd_fixture.h. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "etcd_fixture.h"

char etcd_endpoint[64];
static pid_t etcd_pid = -1;
static char etcd_dir[64];

uint16_t
etcd_fixture_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t size = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &size), 0);
	close(fd);
	return ntohs(a.sin_port);
}

void
etcd_fixture_start(void)
{
	uint16_t client_port = etcd_fixture_free_port();
	uint16_t peer_port = etcd_fixture_free_port();
	char peer[64];
	char cluster[96];
	char data[96];
	char log[96];
	uint64_t deadline = clock_mono_ns() + 30000000000ull;
	struct etcd_client *client;
	struct etcd_range r;
	int err;

	snprintf(etcd_dir, sizeof(etcd_dir), "/tmp/sluice-etcd-test-XXXXXX");
	cr_assert_not_null(mkdtemp(etcd_dir));
	snprintf(etcd_endpoint, sizeof(etcd_endpoint), "http://127.0.0.1:%u", client_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", peer_port);
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	snprintf(data, sizeof(data), "%s/data", etcd_dir);
	snprintf(log, sizeof(log), "%s/etcd.log", etcd_dir);
	etcd_pid = fork();
	cr_assert_geq(etcd_pid, 0);
	if (etcd_pid == 0) {
		FILE *f = freopen(log, "w", stderr);

		(void)f;
		execlp("etcd", "etcd", "--name", "t", "--data-dir", data,
		       "--listen-client-urls", etcd_endpoint, "--advertise-client-urls", etcd_endpoint,
		       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		       "--initial-cluster", cluster, "--initial-cluster-state", "new",
		       (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(etcd_open(etcd_endpoint, 2000, &client), 0);
	/* Ready once it answers a read (a condition, not a sleep; the deadline bounds a hang). */
	while ((err = etcd_get(client, "ready", false, 0, &r)) != 0) {
		cr_assert_lt(clock_mono_ns(), deadline, "etcd did not answer: %d (see %s)", err, log);
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	}
	etcd_range_free(&r);
	etcd_close(client);
}

void
etcd_fixture_signal(int sig)
{
	cr_assert_gt(etcd_pid, 0);
	cr_assert_eq(kill(etcd_pid, sig), 0);
}

void
etcd_fixture_stop(void)
{
	if (etcd_pid > 0) {
		kill(etcd_pid, SIGCONT);   /* A test that failed while it was stopped. */
		kill(etcd_pid, SIGTERM);
		waitpid(etcd_pid, NULL, 0);   /* Before its data directory goes. */
		etcd_pid = -1;
	}
	if (etcd_dir[0] != '\0') {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", etcd_dir);
		cr_assert_eq(system(cmd), 0);
		etcd_dir[0] = '\0';
	}
}
