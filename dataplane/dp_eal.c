/*
 * dp_eal.c - DPDK EAL start-up and shutdown from struct dp_config; the only
 * caller of rte_eal_init/rte_eal_cleanup.
 *
 * Lcores: the calling thread is the main lcore (control, never polls);
 * lcores 1..workers are the polling workers. Unless eal_args names lcores
 * itself, every lcore may float over every CPU of the process: on a 2-CPU
 * development machine pinning a poller and the control plane to fixed CPUs
 * would starve the log writer and the kernel side of a tap device. The
 * calling thread's CPU mask is restored after init for the same reason
 * (EAL pins the main lcore, and threads created later inherit the mask).
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "common/diag.h"
#include "common/dir.h"
#include "dataplane/dp_internal.h"

#define DP_EAL_ARGV_MAX 48
#define DP_EAL_ARG_SIZE 320

struct dp_eal_argv {
	char args[DP_EAL_ARGV_MAX][DP_EAL_ARG_SIZE];
	char *argv[DP_EAL_ARGV_MAX + 1];
	int argc;
};

static int
dp_eal_arg(struct dp_eal_argv *a, const char *fmt, const char *text, unsigned long number)
{
	int n;

	if (a->argc >= DP_EAL_ARGV_MAX)
		return -E2BIG;
	if (text != NULL)
		n = snprintf(a->args[a->argc], DP_EAL_ARG_SIZE, fmt, text);
	else
		n = snprintf(a->args[a->argc], DP_EAL_ARG_SIZE, fmt, number);
	if (n < 0 || n >= DP_EAL_ARG_SIZE)
		return -E2BIG;
	a->argv[a->argc] = a->args[a->argc];
	a->argc++;
	return 0;
}

/* True when the extra arguments already contain `flag` as a word. */
static bool
dp_eal_args_have(const char *args, const char *flag)
{
	size_t size = strlen(flag);

	for (const char *p = strstr(args, flag); p != NULL; p = strstr(p + 1, flag)) {
		bool starts = p == args || p[-1] == ' ';
		bool ends = p[size] == '\0' || p[size] == ' ' || p[size] == '=';

		if (starts && ends)
			return true;
	}
	return false;
}

/* No-huge memory: a mempool object cannot cross a 4 KiB page, so one page per mbuf. */
static unsigned long
dp_eal_memory_mb(const struct dp_config *config)
{
	return 48ul + ((unsigned long)config->mbufs * 4096ul >> 20) +
	       (unsigned long)config->workers * 16ul;
}

/* The number of ';'-separated entries of a vdev list. */
static uint32_t
dp_eal_vdev_count(const char *vdevs)
{
	uint32_t count = 1;

	for (const char *p = strchr(vdevs, ';'); p != NULL; p = strchr(p + 1, ';'))
		count++;
	return count;
}

/*
 * One --vdev per ';'-separated entry. An AF_XDP device without queue_count
 * gets workers / devices queues: the queues follow the workers (dp_port.c
 * gives each device workers / ports of them), and the driver's default is 1.
 */
static int
dp_eal_vdevs(struct dp *dp, struct dp_eal_argv *a)
{
	char copy[sizeof(dp->vdev)];
	uint32_t queues = dp->config.workers / dp_eal_vdev_count(dp->vdev);
	char *save = NULL;
	int rc = 0;

	memcpy(copy, dp->vdev, sizeof(copy));
	for (char *tok = strtok_r(copy, ";", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ";", &save)) {
		char arg[DP_EAL_ARG_SIZE];
		int n;

		if (strncmp(tok, "net_af_xdp", strlen("net_af_xdp")) == 0 &&
		    strstr(tok, "queue_count=") == NULL && queues > 1)
			n = snprintf(arg, sizeof(arg), "--vdev=%s,queue_count=%u", tok, queues);
		else
			n = snprintf(arg, sizeof(arg), "--vdev=%s", tok);
		if (n < 0 || n >= (int)sizeof(arg))
			return -E2BIG;
		rc = dp_eal_arg(a, "%s", arg, 0);
	}
	return rc;
}

static int
dp_eal_build_fixed(struct dp *dp, struct dp_eal_argv *a)
{
	const struct dp_config *c = &dp->config;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc = dp_eal_arg(a, "%s", "sluice-dp", 0);

	if (rc == 0 && c->no_huge) {
		rc = dp_eal_arg(a, "%s", "--no-huge", 0);
		if (rc == 0)
			rc = dp_eal_arg(a, "-m%lu", NULL, dp_eal_memory_mb(c));
		if (rc == 0)
			rc = dp_eal_arg(a, "%s", "--no-shconf", 0);
	} else if (rc == 0 && c->in_memory) {
		rc = dp_eal_arg(a, "%s", "--in-memory", 0);
	}
	/*
	 * Always our own prefix, --in-memory too: without one EAL uses the shared
	 * /var/run/dpdk/rte, which dp_eal_cleanup() would then remove from under
	 * any other DPDK process on the host.
	 */
	if (rc == 0)
		rc = dp_eal_arg(a, "--file-prefix=%s", dp->file_prefix, 0);
	if (rc == 0 && !dp_eal_args_have(dp->eal_args, "-l") &&
	    !dp_eal_args_have(dp->eal_args, "--lcores") && !dp_eal_args_have(dp->eal_args, "-c")) {
		char lcores[64];

		snprintf(lcores, sizeof(lcores), "--lcores=(0-%u)@(0-%ld)", c->workers,
			 cpus > 1 ? cpus - 1 : 0);
		rc = dp_eal_arg(a, "%s", lcores, 0);
	}
	if (rc == 0 && dp->vdev[0] != '\0')
		rc = dp_eal_vdevs(dp, a);
	if (rc == 0 && dp->vdev[0] != '\0' && !dp_eal_args_have(dp->eal_args, "-a") &&
	    !dp_eal_args_have(dp->eal_args, "--allow"))
		rc = dp_eal_arg(a, "%s", "--no-pci", 0);
	if (rc == 0 && !c->telemetry)
		rc = dp_eal_arg(a, "%s", "--no-telemetry", 0);
	/* The kernel backend needs EAL only for lcores and RCU (its vdev is ""): no device. */
	if (rc == 0 && c->backend == DP_BACKEND_KERNEL)
		rc = dp_eal_arg(a, "%s", "--no-pci", 0);
	if (rc == 0)
		rc = dp_eal_arg(a, "%s", "--log-level=*:warning", 0);
	return rc;
}

/* Splits the configured extra arguments on spaces, after the fixed ones. */
static int
dp_eal_build_extra(struct dp *dp, struct dp_eal_argv *a)
{
	char copy[sizeof(dp->eal_args)];
	char *save = NULL;
	int rc = 0;

	memcpy(copy, dp->eal_args, sizeof(copy));
	for (char *tok = strtok_r(copy, " ", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, " ", &save))
		rc = dp_eal_arg(a, "%s", tok, 0);
	return rc;
}

int
dp_eal_init(struct dp *dp)
{
	static struct dp_eal_argv a;
	cpu_set_t cpus;
	bool have_cpus;
	int rc;

	assert(!dp->eal_ready);
	memset(&a, 0, sizeof(a));
	rc = dp_eal_build_fixed(dp, &a);
	if (rc == 0)
		rc = dp_eal_build_extra(dp, &a);
	if (rc != 0) {
		diag_error("dataplane", "EAL arguments too long");
		return rc;
	}
	have_cpus = pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus) == 0;
	rc = rte_eal_init(a.argc, a.argv);
	if (rc < 0) {
		rc = rte_errno > 0 ? -rte_errno : -EINVAL;
		diag_error("dataplane", "rte_eal_init: %s", rte_strerror(-rc));
		return rc;
	}
	if (have_cpus)
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	dp->eal_ready = true;
	return 0;
}

void
dp_eal_cleanup(struct dp *dp)
{
	char runtime_dir[PATH_MAX];

	if (!dp->eal_ready)
		return;
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	dir_remove_flat(runtime_dir);
	dp->eal_ready = false;
}
