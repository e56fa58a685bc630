/*
 * cmd_bench_tcp.c - `sluice bench tcp`: the dataplane's TCP receiver against
 * its UDP path, per CPU-second of the appliance, in one run (issue 10).
 *
 * As root it makes its own network namespace, starts its own sluiced there
 * on a net_tap device (198.18.0.1 is the appliance, 198.18.0.2 the
 * namespace's side of the tap), creates a stream, and measures:
 *   1. `sluice bench ingest` over tcp (100 B records, 500 per frame, ~64 KiB
 *      frames, 16 connections) and over udp (12 records per datagram, 16
 *      producers), both offered more than the appliance takes: records acked
 *      per CPU-second of sluiced (utime+stime from /proc/PID/stat, sampled
 *      right before and after each run). The tcp run's acked rate is the
 *      saturating rate. Before each run it waits until sluiced is quiet (the
 *      previous run's backlog drained).
 *   2. tcp again at half that rate: its p99 durable-ACK latency against the
 *      log's own append p99 (`sluice bench log --only lat`, same filesystem).
 *   3. --conns connections opened from the namespace by this process (a
 *      bounded number in flight): setup rate, sluiced's VmRSS before/after,
 *      and the TCP table's own accounting (telemetry /sluice/dp/tcp, from
 *      dp_tcp_memory()).
 * It prints a table and one line:
 *   tcp-bench: rec_per_cpu_s_tcp=... rec_per_cpu_s_udp=... ratio=... p99_ratio=...
 *              conns=... bytes_per_conn=...
 * bytes_per_conn is the table's accounting (what a connection slot costs,
 * reserved at start); the VmRSS growth per connection is in the table.
 *
 * Everything it creates carries its pid (namespace tcpbench-PID, device
 * tcpbenchPID, DPDK prefix sluice-<sluiced pid>, a temp dir under --dir) and
 * is removed on every exit path, also after SIGINT/SIGTERM/SIGHUP: signals
 * only set a flag, every wait checks it.
 *
 * tools/ may not include dataplane headers: sluiced is a separate process
 * found next to this executable, in the build tree, or as $SLUICED.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/base.h"
#include "common/clock.h"
#include "tools/cli_common.h"
#include "tools/cmd.h"

#define TB_ARGS_MAX 40
#define TB_APPLIANCE "198.18.0.1"
#define TB_PEER "198.18.0.2/15"
#define TB_INGEST_PORT 4570
#define TB_API_PORT 4580            /* In our own namespace: nothing else listens there. */
#define TB_STREAM "tcpbench"
#define TB_SHARDS 4
#define TB_CONNECTIONS 16           /* tcp connections / udp producers of the load runs. */
#define TB_TCP_RECORDS_PER_FRAME 500 /* The protocol's cap: 500 x 100 B is a ~64 KiB frame. */
#define TB_UDP_RECORDS_PER_FRAME 12  /* 12 x 100 B fit one 1500 B datagram. */
#define TB_RECORD_SIZE 100
#define TB_RATE_OVERLOAD 4000000     /* Offered records/s: more than this machine takes. */
#define TB_CONNS_INFLIGHT 256        /* Connects in flight (below tcp_half_open: no cookies). */
#define TB_READY_S 60                /* sluiced's start (EAL, log) on a busy machine. */
#define TB_CONNECT_S 60              /* All --conns connections established. */
#define TB_TELEMETRY_SIZE 65536
#define TB_FDS_SPARE 64
#define TB_QUIET_MS 1000             /* No packet and no record made durable this long: quiet. */
#define TB_QUIET_MAX_S 60

struct tb_opts {
	const char *dir;
	uint64_t duration_s;        /* Each load run. */
	uint64_t conns;
	uint64_t workers;
	uint64_t lat_count;         /* sluice bench log --lat-count */
	bool quick;
};

struct tb_run {
	double acked;
	double records_per_s;
	double p50_us;
	double p99_us;
	double cpu_s;               /* sluiced's CPU seconds during the run. */
	double wait_s;              /* sluiced's threads' seconds runnable but not running. */
	double client_wait_s;       /* The same for the load generator. */
	double wall_s;
	double tap_drops;           /* Packets the tap dropped on the way in (queue full). */
	double retrans;             /* Segments the namespace's TCP retransmitted. */
};

/* Loss seen from the namespace, sampled around a run. */
struct tb_loss {
	double tap_drops;
	double retrans;
};

struct tb_conns {
	uint64_t opened;
	uint64_t failed;
	double setup_s;
	double rss_before_kb;
	double rss_after_kb;
	double established;         /* The appliance's count with them open. */
	double table_bytes;
	double conns_max;
};

struct tb_env {
	char self[PATH_MAX];        /* This executable (sluice). */
	char sluiced[PATH_MAX];
	char root[PATH_MAX];        /* Temp dir: data dir, logs. */
	char ns[32];
	char tap[16];
	char endpoint[64];
	pid_t sluiced_pid;          /* 0: not running. */
	bool ns_made;
};

static volatile sig_atomic_t tb_stop;

static void
tb_on_signal(int sig)
{
	(void)sig;
	tb_stop = 1;
}

/* ---- Processes --------------------------------------------------------------------- */

/* Starts argv with stdout into `out` and stderr into `err` (NULL: /dev/null). */
static pid_t
tb_spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDWR);
		int out_fd = out != NULL ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0640) : null_fd;
		int err_fd = err != NULL ? open(err, O_WRONLY | O_CREAT | O_APPEND, 0640) : null_fd;

		dup2(null_fd, 0);
		dup2(out_fd, 1);
		dup2(err_fd, 2);
		/* Its own process group: a terminal's ^C reaches only us; we stop it (tb_wait). */
		setpgid(0, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static double tb_wait_s(pid_t pid);

/*
 * Waits for pid; on a stop request, TERM then KILL. Returns the exit status
 * or -EINTR. *wait_s_out (when not NULL): pid's run-queue wait, last sampled.
 */
static int
tb_wait(pid_t pid, double *wait_s_out)
{
	int status;

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);
		double wait_s = wait_s_out != NULL ? tb_wait_s(pid) : -1;

		if (got == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (got < 0)
			return -errno;
		if (tb_stop) {
			kill(pid, SIGTERM);
			for (int i = 0; i < 50 && waitpid(pid, &status, WNOHANG) == 0; i++)
				usleep(100000);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -EINTR;
		}
		if (wait_s >= 0)
			*wait_s_out = wait_s;
		usleep(20000);
	}
}

/* Runs argv to completion, stdout into `out` (may be NULL), stderr into `err`. */
static int
tb_run(char *const argv[], const char *out, const char *err)
{
	pid_t pid = tb_spawn(argv, out, err);

	return pid < 0 ? -errno : tb_wait(pid, NULL);
}

/* A whole small file, NUL-terminated (malloc'd), or NULL. */
static char *
tb_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t size = 0;
	size_t cap = 0;
	size_t n;

	if (f == NULL)
		return NULL;
	do {
		if (size + 4096 + 1 > cap) {
			char *grown = realloc(text, cap = 2 * cap + 8192);

			if (grown == NULL) {
				free(text);
				fclose(f);
				return NULL;
			}
			text = grown;
		}
		n = fread(text + size, 1, 4096, f);
		size += n;
	} while (n > 0);
	fclose(f);
	text[size] = '\0';
	return text;
}

static bool
tb_file_has(const char *path, const char *needle)
{
	char *text = tb_read_file(path);
	bool found = text != NULL && strstr(text, needle) != NULL;

	free(text);
	return found;
}

static int
tb_wait_for_line(const char *path, const char *needle, uint32_t seconds, pid_t alive)
{
	for (uint32_t i = 0; i < seconds * 10; i++) {
		if (tb_file_has(path, needle))
			return 0;
		if (tb_stop || (alive > 0 && waitpid(alive, NULL, WNOHANG) != 0))
			return -EINTR;
		usleep(100000);
	}
	return -ETIMEDOUT;
}

/* ---- The appliance's CPU and memory ------------------------------------------------ */

/* utime + stime of pid (every thread), seconds; -1 when it is gone. */
static double
tb_cpu_s(pid_t pid)
{
	char path[64];
	char *text;
	char *p;
	unsigned long long utime, stime;
	double s = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	text = tb_read_file(path);
	/* comm may hold spaces: fields are counted after its closing ')'. */
	p = text != NULL ? strrchr(text, ')') : NULL;
	if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) == 2)
		s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	free(text);
	return s;
}

/*
 * Seconds pid's threads spent runnable on a run queue without a CPU (the
 * second field of /proc/PID/task/TID/schedstat): on a shared machine this,
 * not our code, is where latency goes.
 */
static double
tb_wait_s(pid_t pid)
{
	char path[320];
	struct dirent *e;
	double total = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL) {
		unsigned long long run_ns, wait_ns;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2)
			total += (double)wait_ns / 1e9;
		fclose(f);
	}
	closedir(dir);
	return total;
}

/* The share of time some runnable task waited for a CPU (PSI cpu "some", avg10), %. */
static double
tb_cpu_pressure(void)
{
	char *text = tb_read_file("/proc/pressure/cpu");
	char *p = text != NULL ? strstr(text, "avg10=") : NULL;
	double v = p != NULL ? strtod(p + 6, NULL) : -1;

	free(text);
	return v;
}

static double
tb_rss_kb(pid_t pid)
{
	char path[64];
	char *text;
	char *p;
	double kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = tb_read_file(path);
	p = text != NULL ? strstr(text, "VmRSS:") : NULL;
	if (p != NULL)
		kb = strtod(p + 6, NULL);
	free(text);
	return kb;
}

/* One DPDK telemetry command of sluiced's EAL (prefix sluice-<pid>); the reply's dict. */
static cJSON *
tb_telemetry(pid_t pid, const char *command)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char *buf = malloc(TB_TELEMETRY_SIZE);
	cJSON *reply = NULL;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "/var/run/dpdk/sluice-%d/dpdk_telemetry.v2",
		 (int)pid);
	if (fd < 0 || buf == NULL || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		goto out;
	if (recv(fd, buf, TB_TELEMETRY_SIZE - 1, 0) <= 0 ||  /* The greeting. */
	    send(fd, command, strlen(command), 0) < 0)
		goto out;
	n = recv(fd, buf, TB_TELEMETRY_SIZE - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		reply = cJSON_Parse(buf);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return reply;
}

/* A number from telemetry command `command` (the reply is {command: {field: n}}). */
static double
tb_telemetry_number(pid_t pid, const char *command, const char *field)
{
	cJSON *reply = tb_telemetry(pid, command);
	const cJSON *dict = cJSON_GetObjectItemCaseSensitive(reply, command);
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(dict, field);
	double v = cJSON_IsNumber(value) ? value->valuedouble : -1;

	cJSON_Delete(reply);
	return v;
}

/* ---- The namespace's view: tap drops and TCP retransmissions ------------------------ */

/* The tap's TX dropped count from a /proc/net/dev text (TX: the namespace -> sluiced). */
static double
tb_tap_drops(const char *dev, const char *tap)
{
	char name[24];
	const char *line;
	unsigned long long v[12];

	snprintf(name, sizeof(name), "%s:", tap);
	line = dev != NULL ? strstr(dev, name) : NULL;
	if (line == NULL || sscanf(line + strlen(name),
				   "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
				   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
				   &v[9], &v[10], &v[11]) != 12)
		return -1;
	return (double)v[11];
}

/* RetransSegs from a /proc/net/snmp text (a header line "Tcp: ..." then the values). */
static double
tb_retrans(const char *snmp)
{
	const char *head = snmp != NULL ? strstr(snmp, "\nTcp: ") : NULL;
	const char *values = head != NULL ? strstr(head + 1, "\nTcp: ") : NULL;
	int column = 0;

	if (values == NULL)
		return -1;
	for (const char *p = head + 6; *p != '\n' && *p != '\0'; p++) {
		if (strncmp(p, "RetransSegs", 11) == 0) {
			const char *q = values + 6;

			for (int i = 0; i < column && q != NULL; i++) {
				q = strchr(q, ' ');
				q = q != NULL ? q + 1 : NULL;
			}
			return q != NULL ? strtod(q, NULL) : -1;
		}
		if (*p == ' ')
			column++;
	}
	return -1;
}

/*
 * Reads the namespace's /proc/net/dev and /proc/net/snmp: this thread enters
 * the namespace (/proc/thread-self/net follows it) and goes back.
 */
static void
tb_loss_read(const struct tb_env *env, struct tb_loss *loss)
{
	char ns_path[64];
	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target;

	loss->tap_drops = -1;
	loss->retrans = -1;
	snprintf(ns_path, sizeof(ns_path), "/run/netns/%s", env->ns);
	target = open(ns_path, O_RDONLY | O_CLOEXEC);
	if (home >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0) {
		char *dev = tb_read_file("/proc/thread-self/net/dev");
		char *snmp = tb_read_file("/proc/thread-self/net/snmp");

		loss->tap_drops = tb_tap_drops(dev, env->tap);
		loss->retrans = tb_retrans(snmp);
		free(dev);
		free(snmp);
		if (setns(home, CLONE_NEWNET) != 0)
			abort();  /* The rest of the run would happen in the wrong namespace. */
	}
	if (target >= 0)
		close(target);
	if (home >= 0)
		close(home);
}

/* ---- The namespace and sluiced ----------------------------------------------------- */

static int
tb_ip(const char *a, const char *b, const char *c, const char *d, const char *e, const char *f,
      const char *g)
{
	char *argv[] = { "ip", (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f,
			 (char *)g, NULL };

	return tb_run(argv, NULL, NULL);
}

/* Finds `name` next to this executable, one level up under `subdir`, or in $env. */
static int
tb_find(const char *self, const char *env, const char *subdir, const char *name, char *path,
	size_t size)
{
	const char *value = getenv(env);
	char copy[PATH_MAX];
	char *dir;

	if (value != NULL) {
		snprintf(path, size, "%s", value);
		return access(path, X_OK) == 0 ? 0 : -ENOENT;
	}
	snprintf(copy, sizeof(copy), "%s", self);
	dir = dirname(copy);
	snprintf(path, size, "%s/%s", dir, name);
	if (access(path, X_OK) == 0)
		return 0;
	snprintf(path, size, "%s/../%s/%s", dir, subdir, name);
	return access(path, X_OK) == 0 ? 0 : -ENOENT;
}

static int
tb_start_sluiced(struct tb_env *env, const struct tb_opts *o)
{
	char data[PATH_MAX + 8], api[32], vdev[64], workers[48], per_source[64], conns[64];
	char log[PATH_MAX + 16];
	char *argv[TB_ARGS_MAX] = {
		"ip", "netns", "exec", env->ns, env->sluiced, "--data-dir", data, "--api-listen", api,
		"--set", vdev, "--set", "dataplane.no_huge=true", "--set", workers,
		"--set", per_source, "--set", conns, NULL,
	};
	/* Every connection comes from 198.18.0.2: room for all of them on any one worker. */
	uint64_t table = o->conns + 1024;
	int err;

	snprintf(data, sizeof(data), "%s/data", env->root);
	snprintf(api, sizeof(api), "127.0.0.1:%d", TB_API_PORT);
	snprintf(vdev, sizeof(vdev), "dataplane.vdev=net_tap0,iface=%s", env->tap);
	snprintf(workers, sizeof(workers), "dataplane.workers=%llu",
		 (unsigned long long)o->workers);
	snprintf(per_source, sizeof(per_source), "dataplane.tcp_per_source=%llu",
		 (unsigned long long)table);
	snprintf(conns, sizeof(conns), "dataplane.tcp_connections=%llu",
		 (unsigned long long)(table > 16384 ? table : 16384));
	snprintf(log, sizeof(log), "%s/sluiced.log", env->root);
	/* `ip netns exec` execs sluiced in place: the pid is sluiced's. */
	env->sluiced_pid = tb_spawn(argv, log, log);
	if (env->sluiced_pid < 0) {
		env->sluiced_pid = 0;
		return -errno;
	}
	err = tb_wait_for_line(log, "sluiced: ready", TB_READY_S, env->sluiced_pid);
	if (err != 0) {
		char *text = tb_read_file(log);

		fprintf(stderr, "sluice bench tcp: sluiced did not start:\n%s\n", text ? text : "");
		free(text);
		return err;
	}
	fprintf(stderr, "sluice bench tcp: namespace %s, device %s, sluiced pid %d, dir %s\n",
		env->ns, env->tap, (int)env->sluiced_pid, env->root);
	if (tb_ip("-n", env->ns, "addr", "replace", TB_PEER, "dev", env->tap) != 0 ||
	    tb_ip("-n", env->ns, "link", "set", env->tap, "up", NULL) != 0)
		return -EIO;
	return 0;
}

static int
tb_create_stream(struct tb_env *env)
{
	char shards[16];
	char log[PATH_MAX + 16];
	char *argv[TB_ARGS_MAX] = {
		"ip", "netns", "exec", env->ns, env->self, "stream", "create", TB_STREAM,
		"--shards", shards, "--endpoint", env->endpoint, NULL,
	};
	char published[64];

	snprintf(shards, sizeof(shards), "%d", TB_SHARDS);
	snprintf(log, sizeof(log), "%s/sluiced.log", env->root);
	if (tb_run(argv, NULL, NULL) != 0)
		return -EIO;
	/* The dataplane takes records once the route table names the stream. */
	snprintf(published, sizeof(published), "published 1 streams, %d open shards", TB_SHARDS);
	return tb_wait_for_line(log, published, 30, env->sluiced_pid);
}

static int
tb_setup(struct tb_env *env, const struct tb_opts *o)
{
	char template[PATH_MAX];
	int err;

	snprintf(env->ns, sizeof(env->ns), "tcpbench-%d", (int)getpid());
	snprintf(env->tap, sizeof(env->tap), "tcpbench%d", (int)getpid());
	snprintf(env->endpoint, sizeof(env->endpoint), "http://127.0.0.1:%d", TB_API_PORT);
	snprintf(template, sizeof(template), "%s/sluice-bench-tcp-XXXXXX", o->dir);
	if (mkdtemp(template) == NULL)
		return -errno;
	if (realpath(template, env->root) == NULL)
		return -errno;
	if (tb_ip("netns", "add", env->ns, NULL, NULL, NULL, NULL) != 0)
		return -EIO;
	env->ns_made = true;
	if (tb_ip("-n", env->ns, "link", "set", "lo", "up", NULL) != 0)
		return -EIO;
	err = tb_start_sluiced(env, o);
	return err != 0 ? err : tb_create_stream(env);
}

/* Stops sluiced (TERM, then KILL), removes its DPDK runtime dir, the namespace, the dir. */
static void
tb_teardown(struct tb_env *env)
{
	if (env->sluiced_pid > 0) {
		char runtime[64];
		int status;
		int i;

		kill(env->sluiced_pid, SIGTERM);
		for (i = 0; i < 300 && waitpid(env->sluiced_pid, &status, WNOHANG) == 0; i++)
			usleep(100000);
		if (i == 300) {
			kill(env->sluiced_pid, SIGKILL);
			waitpid(env->sluiced_pid, &status, 0);
		}
		/* A killed sluiced cannot remove its own. */
		snprintf(runtime, sizeof(runtime), "/var/run/dpdk/sluice-%d", (int)env->sluiced_pid);
		cli_tree_remove(runtime);
		env->sluiced_pid = 0;
	}
	if (env->ns_made) {
		/* Ignore signals while the last commands run: they must finish. */
		tb_stop = 0;
		tb_ip("netns", "del", env->ns, NULL, NULL, NULL, NULL);
		env->ns_made = false;
	}
	if (env->root[0] != '\0')
		cli_tree_remove(env->root);
}

/* ---- Load runs --------------------------------------------------------------------- */

/*
 * Waits until sluiced has finished the previous run's backlog (an overload
 * run leaves frames in the tap's queue and batches in the log): no packet
 * received and no record made durable for TB_QUIET_MS. Otherwise the next
 * run's first frames wait behind it, and its connections' first segments
 * see Linux's initial 1 s RTO.
 */
static int
tb_quiesce(const struct tb_env *env)
{
	double last_rx = -1, last_durable = -1;

	for (uint32_t i = 0; i < TB_QUIET_MAX_S * 1000 / TB_QUIET_MS && !tb_stop; i++) {
		double rx = tb_telemetry_number(env->sluiced_pid, "/sluice/dp/stats", "rx_packets");
		double durable = tb_telemetry_number(env->sluiced_pid, "/sluice/dp/stats",
						     "records_durable");

		if (rx < 0 || durable < 0)
			return -EIO;
		if (rx == last_rx && durable == last_durable)
			return 0;
		last_rx = rx;
		last_durable = durable;
		usleep(TB_QUIET_MS * 1000);
	}
	return tb_stop ? -EINTR : -ETIMEDOUT;
}

/* sluiced's CPU and run-queue wait and the namespace's loss counters, at one moment. */
struct tb_sample {
	double cpu_s;
	double wait_s;
	struct tb_loss loss;
	uint64_t at_ns;
};

static void
tb_sample_take(const struct tb_env *env, struct tb_sample *s)
{
	tb_loss_read(env, &s->loss);
	s->cpu_s = tb_cpu_s(env->sluiced_pid);
	s->wait_s = tb_wait_s(env->sluiced_pid);
	s->at_ns = clock_mono_ns();
}

/* Reads bench ingest's --json summary into r; prints its stderr when there is none. */
static int
tb_ingest_result(const char *out, const char *err_log, const char *transport, int rc,
		 struct tb_run *r)
{
	char *text = tb_read_file(out);
	const char *start = text != NULL ? strstr(text, "{\"transport\"") : NULL;
	cJSON *json = NULL;
	const cJSON *latency;

	/* Exit 3 (some records unanswered at overload) still reports; 1 acked none. */
	if (start != NULL && (rc == CMD_EXIT_OK || rc == CMD_EXIT_PARTIAL))
		json = cJSON_Parse(start);
	free(text);
	if (json == NULL) {
		char *errors = tb_read_file(err_log);

		fprintf(stderr, "sluice bench tcp: bench ingest over %s failed (exit %d)%s%s\n",
			transport, rc, errors != NULL ? ":\n" : "", errors != NULL ? errors : "");
		free(errors);
		return rc == -EINTR ? -EINTR : -EIO;
	}
	latency = cJSON_GetObjectItemCaseSensitive(json, "latency_us");
	r->acked = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(json, "records_acked"));
	r->records_per_s = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(json,
								      "records_per_s"));
	r->p50_us = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(latency, "p50"));
	r->p99_us = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(latency, "p99"));
	cJSON_Delete(json);
	return 0;
}

/*
 * `sluice bench ingest` in the namespace at `rate` records/s, once sluiced is
 * quiet; sluiced is sampled right before it starts and right after it exits.
 */
static int
tb_ingest(struct tb_env *env, const struct tb_opts *o, const char *transport, uint64_t rate,
	  uint32_t records_per_frame, struct tb_run *r)
{
	char target[32], rate_s[24], rpf[16], producers[16], duration[24], size[16];
	char out[PATH_MAX + 16], err_log[PATH_MAX + 16];
	char *argv[TB_ARGS_MAX] = {
		"ip", "netns", "exec", env->ns, env->self, "bench", "ingest", TB_STREAM,
		"--transport", (char *)transport, "--target", target, "--rate", rate_s,
		"--size", size, "--records-per-frame", rpf, "--producers", producers,
		"--duration", duration, "--drain", "5s", "--json", NULL,
	};
	struct tb_sample s0, s1;
	pid_t pid;
	int rc;

	snprintf(target, sizeof(target), "%s:%d", TB_APPLIANCE, TB_INGEST_PORT);
	snprintf(rate_s, sizeof(rate_s), "%llu", (unsigned long long)rate);
	snprintf(size, sizeof(size), "%d", TB_RECORD_SIZE);
	snprintf(rpf, sizeof(rpf), "%u", records_per_frame);
	snprintf(producers, sizeof(producers), "%d", TB_CONNECTIONS);
	snprintf(duration, sizeof(duration), "%llus", (unsigned long long)o->duration_s);
	snprintf(out, sizeof(out), "%s/ingest.json", env->root);
	snprintf(err_log, sizeof(err_log), "%s/ingest.err", env->root);
	rc = tb_quiesce(env);
	if (rc != 0) {
		fprintf(stderr, "sluice bench tcp: sluiced did not go quiet: %s\n", strerror(-rc));
		return rc;
	}
	fprintf(stderr, "sluice bench tcp: %s, %llu records/s offered, %u per frame ...\n",
		transport, (unsigned long long)rate, records_per_frame);
	tb_sample_take(env, &s0);
	pid = tb_spawn(argv, out, err_log);
	rc = pid < 0 ? -errno : tb_wait(pid, &r->client_wait_s);
	tb_sample_take(env, &s1);
	if (s0.cpu_s < 0 || s1.cpu_s < 0) {
		fprintf(stderr, "sluice bench tcp: sluiced is gone\n");
		return -ESRCH;
	}
	r->cpu_s = s1.cpu_s - s0.cpu_s;
	r->wait_s = s1.wait_s - s0.wait_s;
	r->tap_drops = s1.loss.tap_drops - s0.loss.tap_drops;
	r->retrans = s1.loss.retrans - s0.loss.retrans;
	r->wall_s = (double)(s1.at_ns - s0.at_ns) / 1e9;
	return tb_ingest_result(out, err_log, transport, rc, r);
}

/* The log's append -> durable ack p99 (us) from `sluice bench log --only lat`. */
static int
tb_log_p99(struct tb_env *env, const struct tb_opts *o, double *p99_us)
{
	char count[24];
	char out[PATH_MAX + 16];
	char *argv[TB_ARGS_MAX] = {
		env->self, "bench", "log", "--dir", env->root, "--only", "lat", "--lat-count", count,
		"--reps", "1", NULL,
	};
	const char *at;
	char *text;
	int rc;

	fprintf(stderr, "sluice bench tcp: sluice bench log --only lat ...\n");
	snprintf(count, sizeof(count), "%llu", (unsigned long long)o->lat_count);
	snprintf(out, sizeof(out), "%s/bench-log.out", env->root);
	rc = tb_run(argv, out, NULL);
	text = tb_read_file(out);
	at = text != NULL ? strstr(text, "one at a time") : NULL;
	at = at != NULL ? strstr(at, "p99 ") : NULL;
	*p99_us = at != NULL ? strtod(at + 4, NULL) : 0;
	if (rc != 0 || *p99_us <= 0) {
		fprintf(stderr, "sluice bench tcp: sluice bench log failed (exit %d):\n%s\n", rc,
			text != NULL ? text : "");
		free(text);
		return rc == -EINTR ? -EINTR : -EIO;
	}
	free(text);
	return 0;
}

/* ---- Many connections -------------------------------------------------------------- */

static int
tb_connect_one(int epoll_fd, const struct sockaddr_in *to, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct epoll_event event = { .events = EPOLLOUT };

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0 && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	event.data.fd = fd;
	epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
	*fd_out = fd;
	return 0;
}

/*
 * Opens o->conns connections from inside the namespace (sockets stay in the
 * namespace they were made in; this thread goes back afterwards), at most
 * TB_CONNS_INFLIGHT connecting at once. fds[] holds the established ones.
 */
static int
tb_open_conns(struct tb_env *env, const struct tb_opts *o, int *fds, struct tb_conns *c)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(TB_INGEST_PORT) };
	struct epoll_event events[TB_CONNS_INFLIGHT];
	char ns_path[64];
	uint64_t started = 0, inflight = 0, t0, deadline;
	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target;
	int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	int err = 0;

	snprintf(ns_path, sizeof(ns_path), "/run/netns/%s", env->ns);
	target = open(ns_path, O_RDONLY | O_CLOEXEC);
	inet_pton(AF_INET, TB_APPLIANCE, &to.sin_addr);
	if (home < 0 || target < 0 || epoll_fd < 0 || setns(target, CLONE_NEWNET) != 0) {
		err = -errno;
		goto out;
	}
	t0 = clock_mono_ns();
	deadline = t0 + TB_CONNECT_S * 1000000000ull;
	while ((c->opened + c->failed < o->conns) && !tb_stop && clock_mono_ns() < deadline) {
		int n;

		while (started < o->conns && inflight < TB_CONNS_INFLIGHT) {
			int fd;

			started++;
			if (tb_connect_one(epoll_fd, &to, &fd) != 0) {
				c->failed++;
				continue;
			}
			inflight++;
		}
		n = epoll_wait(epoll_fd, events, TB_CONNS_INFLIGHT, 100);
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			int so_error = 0;
			socklen_t size = sizeof(so_error);

			getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &size);
			epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
			inflight--;
			if (so_error != 0 || (events[i].events & (EPOLLERR | EPOLLHUP)) != 0) {
				close(fd);
				c->failed++;
				continue;
			}
			fds[c->opened++] = fd;
		}
	}
	c->setup_s = (double)(clock_mono_ns() - t0) / 1e9;
	if (setns(home, CLONE_NEWNET) != 0)
		err = -errno;
out:
	if (epoll_fd >= 0)
		close(epoll_fd);  /* Connects still in flight (timeout) close with it: not counted. */
	if (target >= 0)
		close(target);
	if (home >= 0)
		close(home);
	return err;
}

/* The appliance's established count once it has seen every handshake's last ACK. */
static double
tb_wait_established(pid_t pid, double want)
{
	double have = -1;

	for (int i = 0; i < 100 && !tb_stop; i++) {
		have = tb_telemetry_number(pid, "/sluice/dp/tcp", "established");
		if (have >= want)
			break;
		usleep(100000);
	}
	return have;
}

static int
tb_conns(struct tb_env *env, const struct tb_opts *o, struct tb_conns *c)
{
	struct rlimit limit = { o->conns + TB_FDS_SPARE, o->conns + TB_FDS_SPARE };
	int *fds = calloc(o->conns, sizeof(*fds));
	double base;
	int err;

	if (fds == NULL)
		return -ENOMEM;
	fprintf(stderr, "sluice bench tcp: %llu connections ...\n", (unsigned long long)o->conns);
	if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
		free(fds);
		return -errno;
	}
	base = tb_telemetry_number(env->sluiced_pid, "/sluice/dp/tcp", "established");
	c->rss_before_kb = tb_rss_kb(env->sluiced_pid);
	c->table_bytes = tb_telemetry_number(env->sluiced_pid, "/sluice/dp/tcp", "table_bytes");
	c->conns_max = tb_telemetry_number(env->sluiced_pid, "/sluice/dp/tcp", "connections_max");
	err = tb_open_conns(env, o, fds, c);
	if (err == 0) {
		c->established = tb_wait_established(env->sluiced_pid, base + (double)c->opened) -
				 base;
		c->rss_after_kb = tb_rss_kb(env->sluiced_pid);
	}
	for (uint64_t i = 0; i < c->opened; i++)
		close(fds[i]);
	free(fds);
	if (err == 0 && (base < 0 || c->table_bytes <= 0 || c->conns_max <= 0)) {
		fprintf(stderr, "sluice bench tcp: no /sluice/dp/tcp telemetry from sluiced\n");
		err = -EIO;
	}
	return err;
}

/* ---- Report ------------------------------------------------------------------------ */

static double
tb_per_cpu(const struct tb_run *r)
{
	return r->cpu_s > 0 ? r->acked / r->cpu_s : 0;
}

static void
tb_report_run(const char *label, const struct tb_run *r)
{
	double wall = r->wall_s > 0 ? r->wall_s : 1;

	printf("%-26s %9.0f %9.0f %6.2f %5.2f %6.2f %7.2f %9.0f %8.0f %8.0f %9.0f %7.0f\n", label,
	       r->acked, r->records_per_s, r->cpu_s, r->cpu_s / wall, r->wait_s / wall,
	       r->client_wait_s / wall, tb_per_cpu(r), r->p50_us, r->p99_us, r->tap_drops,
	       r->retrans);
}

static void
tb_report(const struct tb_opts *o, const struct tb_run *tcp, const struct tb_run *udp,
	  const struct tb_run *half, const struct tb_run *udp_half, double log_p99_us,
	  const struct tb_conns *c, double pressure)
{
	double ratio = tb_per_cpu(udp) > 0 ? tb_per_cpu(tcp) / tb_per_cpu(udp) : 0;
	double p99_ratio = log_p99_us > 0 ? half->p99_us / log_p99_us : 0;
	double conns = c->established < (double)c->opened ? c->established : (double)c->opened;
	double table_per_conn = c->conns_max > 0 ? c->table_bytes / c->conns_max : 0;
	double rss_per_conn = conns > 0 ? (c->rss_after_kb - c->rss_before_kb) * 1024 / conns : 0;

	printf("sluice bench tcp: %llu s per load run, %llu worker(s), %d B records, "
	       "%d connections/producers\n", (unsigned long long)o->duration_s,
	       (unsigned long long)o->workers, TB_RECORD_SIZE, TB_CONNECTIONS);
	printf("%-26s %9s %9s %6s %5s %6s %6s %9s %8s %8s %9s %7s\n", "run", "acked",
	       "records/s", "cpu_s", "cpu/s", "wait/s", "cwait/s", "rec/cpu-s", "p50_us", "p99_us",
	       "tap_drops", "retrans");
	tb_report_run("tcp 500/frame, overload", tcp);
	tb_report_run("udp 12/datagram, overload", udp);
	tb_report_run("tcp at half saturation", half);
	tb_report_run("udp at the same rate", udp_half);
	printf("cpu/s: sluiced's CPU seconds per second; wait/s: its threads' seconds runnable "
	       "without a CPU per second; cwait/s: the same for sluice bench ingest; tap_drops: "
	       "packets the tap's queue dropped on the way to sluiced; retrans: TCP segments the "
	       "namespace resent; CPU pressure (some, avg10) after the runs: %.0f%%\n", pressure);
	printf("records per appliance CPU-second, tcp / udp: %.2f (goal >= 1.5)\n", ratio);
	printf("p99 durable ACK over tcp at %.0f records/s: %.0f us; log append p99: %.0f us: "
	       "%.2f (goal <= 2)\n", half->records_per_s, half->p99_us, log_p99_us, p99_ratio);
	printf("connections: %llu opened (%llu failed) in %.2f s: %.0f/s; appliance holds %.0f; "
	       "VmRSS %.0f -> %.0f KiB: %.0f B per connection; table accounting %.0f B per "
	       "connection slot (%.0f slots, %.1f MiB)\n", (unsigned long long)c->opened,
	       (unsigned long long)c->failed, c->setup_s,
	       c->setup_s > 0 ? (double)c->opened / c->setup_s : 0, c->established,
	       c->rss_before_kb, c->rss_after_kb, rss_per_conn, table_per_conn, c->conns_max,
	       c->table_bytes / (1 << 20));
	printf("tcp-bench: rec_per_cpu_s_tcp=%.0f rec_per_cpu_s_udp=%.0f ratio=%.2f p99_ratio=%.2f "
	       "conns=%.0f bytes_per_conn=%.0f\n", tb_per_cpu(tcp), tb_per_cpu(udp), ratio,
	       p99_ratio, conns, table_per_conn);
}

/* ---- Main -------------------------------------------------------------------------- */

static int
tb_measure(struct tb_env *env, const struct tb_opts *o)
{
	struct tb_run tcp = { 0 }, udp = { 0 }, half = { 0 }, udp_half = { 0 };
	struct tb_conns conns = { 0 };
	double log_p99_us = 0;
	double pressure = 0;
	int err;

	err = tb_ingest(env, o, "tcp", TB_RATE_OVERLOAD, TB_TCP_RECORDS_PER_FRAME, &tcp);
	if (err == 0)
		err = tb_ingest(env, o, "udp", TB_RATE_OVERLOAD, TB_UDP_RECORDS_PER_FRAME, &udp);
	if (err == 0 && tcp.records_per_s < 2 * TB_TCP_RECORDS_PER_FRAME)
		err = -EIO;  /* No saturating rate to halve. */
	if (err == 0)
		err = tb_ingest(env, o, "tcp", (uint64_t)(tcp.records_per_s / 2),
				TB_TCP_RECORDS_PER_FRAME, &half);
	/* The same rate over udp: what the machine, not TCP, costs in latency. */
	if (err == 0)
		err = tb_ingest(env, o, "udp", (uint64_t)(tcp.records_per_s / 2),
				TB_UDP_RECORDS_PER_FRAME, &udp_half);
	pressure = tb_cpu_pressure();
	if (err == 0)
		err = tb_log_p99(env, o, &log_p99_us);
	if (err == 0)
		err = tb_conns(env, o, &conns);
	if (err == 0)
		tb_report(o, &tcp, &udp, &half, &udp_half, log_p99_us, &conns, pressure);
	return err;
}

static const char tb_synopsis[] =
	"sluice bench tcp [--dir DIR] [--duration S] [--conns N] [--workers N] [--quick]\n"
	"  As root: its own namespace, net_tap device and sluiced; TCP vs UDP ingest per\n"
	"  appliance CPU-second, p99 at half the saturating rate vs the log's, and N\n"
	"  connections (setup rate, memory). Data and temp files under DIR (default .).";

int
cmd_bench_tcp(int argc, char **argv)
{
	struct tb_opts o = {
		.dir = ".", .duration_s = 10, .conns = 10000, .workers = 1, .lat_count = 2000,
	};
	const struct cli_opt table[] = {
		{ "dir", CLI_OPT_STRING, &o.dir, 0, 0, "DIR",
		  "temp dir parent: sluiced's log and sluice bench log (default .)" },
		{ "duration", CLI_OPT_COUNT, &o.duration_s, 1, 3600, "S",
		  "seconds of each load run (default 10)" },
		{ "conns", CLI_OPT_COUNT, &o.conns, 1, 1000000, "N",
		  "connections held at once (default 10000)" },
		{ "workers", CLI_OPT_COUNT, &o.workers, 1, 64, "N",
		  "sluiced's dataplane workers (default 1)" },
		{ "quick", CLI_OPT_BOOL, &o.quick, 0, 0, NULL,
		  "a smoke run: 2 s runs, 500 connections, 200 log samples" },
	};
	struct sigaction on_signal = { .sa_handler = tb_on_signal };
	struct tb_env env = { 0 };
	struct cli_args args;
	bool done;
	ssize_t n;
	int code;
	int err;

	code = cli_parse_or_usage(argc, argv, tb_synopsis, table, ARRAY_SIZE(table), &args, &done);
	if (done)
		return code;
	if (args.positional_count != 0) {
		cli_args_usage(stderr, tb_synopsis, table, ARRAY_SIZE(table));
		return CMD_EXIT_USAGE;
	}
	if (o.quick) {
		o.duration_s = 2;
		o.conns = 500;
		o.lat_count = 200;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "sluice bench tcp: needs root (network namespace, tap device)\n");
		return CMD_EXIT_ERROR;
	}
	n = readlink("/proc/self/exe", env.self, sizeof(env.self) - 1);
	if (n <= 0)
		return CMD_EXIT_ERROR;
	env.self[n] = '\0';
	if (tb_find(env.self, "SLUICED", "control", "sluiced", env.sluiced,
		    sizeof(env.sluiced)) != 0) {
		fprintf(stderr, "sluice bench tcp: sluiced not found (set SLUICED)\n");
		return CMD_EXIT_ERROR;
	}
	sigaction(SIGINT, &on_signal, NULL);
	sigaction(SIGTERM, &on_signal, NULL);
	sigaction(SIGHUP, &on_signal, NULL);
	err = tb_setup(&env, &o);
	if (err == 0)
		err = tb_measure(&env, &o);
	tb_teardown(&env);
	if (err != 0) {
		fprintf(stderr, "sluice bench tcp: %s\n", strerror(-err));
		return CMD_EXIT_ERROR;
	}
	return CMD_EXIT_OK;
}
