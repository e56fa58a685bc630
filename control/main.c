/*
 * main.c - sluiced, the appliance daemon: configuration -> log -> metadata and
 * Kinesis API -> (dataplane) -> serve until SIGTERM/SIGINT -> stop in reverse.
 * The only place the process exits.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "common/diag.h"
#include "control/admin.h"
#include "control/api.h"
#include "control/cluster_node.h"
#include "control/config.h"
#include "control/config_modules.h"
#include "control/forward.h"
#include "control/keyring.h"
#include "control/metrics.h"
#include "control/notify.h"
#include "control/route.h"
#include "dataplane/dataplane.h"
#include "nvme-log/log.h"

#define SLUICED_EXIT_USAGE 2
/* Descriptors besides connections: log segments and indexes, SQLite, DPDK, eventfds. */
#define SLUICED_FDS_RESERVED 256

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: sluiced [options]\n"
		"\n"
		"The Sluice appliance: Kinesis Data Streams API over a durable io_uring log,\n"
		"with a DPDK ingest dataplane.\n"
		"\n"
		"options:\n"
		"  --config FILE          read an INI configuration (docs/CONFIG.md)\n"
		"  --check-config FILE    validate FILE, print line-numbered errors, exit\n"
		"  --data-dir DIR         [server] data_dir: log segments and metadata\n"
		"  --api-listen ADDR:PORT [server] api_listen: Kinesis API (HTTP/1.1, h2c)\n"
		"  --admin-listen ADDR:PORT [admin] listen: /metrics, /healthz, /readyz, status\n"
		"  --no-dataplane         API and log only (no DPDK): [dataplane] enabled=false\n"
		"  --set SECTION.KEY=VAL  override any configuration key\n"
		"  --print-config-doc     print the configuration reference (Markdown)\n"
		"  --print-config-ini     print an INI file of every key at its default, commented\n"
		"  --verbose              debug diagnostics\n"
		"  --help                 this text\n");
}

enum {
	OPT_CONFIG = 1,
	OPT_CHECK_CONFIG,
	OPT_DATA_DIR,
	OPT_API_LISTEN,
	OPT_ADMIN_LISTEN,
	OPT_NO_DATAPLANE,
	OPT_SET,
	OPT_PRINT_CONFIG_DOC,
	OPT_PRINT_CONFIG_INI,
	OPT_VERBOSE,
	OPT_HELP,
};

static const struct option sluiced_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "check-config", required_argument, NULL, OPT_CHECK_CONFIG },
	{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
	{ "api-listen", required_argument, NULL, OPT_API_LISTEN },
	{ "admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN },
	{ "no-dataplane", no_argument, NULL, OPT_NO_DATAPLANE },
	{ "set", required_argument, NULL, OPT_SET },
	{ "print-config-doc", no_argument, NULL, OPT_PRINT_CONFIG_DOC },
	{ "print-config-ini", no_argument, NULL, OPT_PRINT_CONFIG_INI },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/*
 * Parses the command line into `config`: the file first (wherever --config
 * stands), then the overrides in order. Returns 0, 1 for "done, exit 0"
 * (--help, --print-config-doc, a clean --check-config), or -EINVAL.
 */
static int
sluiced_parse_args(int argc, char **argv, struct sluice_config *config,
		   struct config_errors *errors)
{
	const char *config_path = NULL;
	const char *check_path = NULL;
	int opt;

	config_defaults(config);
	optind = 1; /* Parsed again on SIGHUP. */
	/* Pass 1: find the file so that command-line overrides win over it. */
	while ((opt = getopt_long(argc, argv, "", sluiced_options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (opt == OPT_PRINT_CONFIG_DOC) {
			config_doc_print(stdout);
			return 1;
		}
		if (opt == OPT_PRINT_CONFIG_INI) {
			config_ini_print(stdout);
			return 1;
		}
		if (opt == OPT_CONFIG)
			config_path = optarg;
		else if (opt == OPT_CHECK_CONFIG)
			check_path = optarg;
		else if (opt == '?')
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (check_path != NULL) {
		int rc = config_load_file(config, check_path, errors);

		if (rc == 0)
			rc = config_validate(config, errors);
		if (rc == 0)
			rc = config_check_modules(config, errors);
		if (rc != 0)
			return -EINVAL;
		printf("%s: ok\n", check_path);
		return 1;
	}
	if (config_path != NULL && config_load_file(config, config_path, errors) != 0)
		return -EINVAL;
	/* Pass 2: the overrides, in the order given. */
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", sluiced_options, NULL)) != -1) {
		int rc = 0;

		if (opt == OPT_DATA_DIR)
			rc = config_set_value(config, "server", "data_dir", optarg, errors);
		else if (opt == OPT_API_LISTEN)
			rc = config_set_value(config, "server", "api_listen", optarg, errors);
		else if (opt == OPT_ADMIN_LISTEN)
			rc = config_set_value(config, "admin", "listen", optarg, errors);
		else if (opt == OPT_NO_DATAPLANE)
			rc = config_set_value(config, "dataplane", "enabled", "false", errors);
		else if (opt == OPT_SET)
			rc = config_set(config, optarg, errors);
		else if (opt == OPT_VERBOSE)
			rc = config_set_value(config, "server", "diag_level", "debug", errors);
		if (rc != 0)
			return -EINVAL;
	}
	if (config_validate(config, errors) != 0)
		return -EINVAL;
	return config_check_modules(config, errors);
}

struct sluiced {
	struct sluice_config config;
	int argc;                 /* The command line, parsed again on SIGHUP. */
	char **argv;
	struct log *log;
	struct keyring_shared *keyring; /* The keys the log has (sluiced_keyring_apply). */
	struct kinesis *kinesis;
	struct api_server *server;
	struct admin *admin;
	struct route *route;      /* The route publisher ([dataplane] enabled), or NULL. */
	struct cluster_node *cluster; /* [cluster] enabled, or NULL. */
	struct forward *forward;      /* Its forwarder (puts for shards led elsewhere), or NULL. */
	struct dp_cluster dp_cluster; /* The dataplane's view of the node (cluster mode). */
	pthread_t server_thread;
	int server_rc;
};

static void *
sluiced_server_main(void *arg)
{
	struct sluiced *d = arg;

	pthread_setname_np(pthread_self(), "sluice-api");
	d->server_rc = api_server_run(d->server);
	/*
	 * The server stopped on its own (an error) or its drain ended: wake main() as a
	 * signal would; it knows this one by its sender (sluiced_wait).
	 */
	kill(getpid(), SIGTERM);
	return NULL;
}

static int
sluiced_open_log(struct sluiced *d, char *log_dir, size_t log_dir_size)
{
	struct log_config lc;

	if (mkdir(d->config.data_dir, 0750) != 0 && errno != EEXIST) {
		diag_error("sluiced", "data_dir %s: %s", d->config.data_dir, strerror(errno));
		return -errno;
	}
	snprintf(log_dir, log_dir_size, "%s/log", d->config.data_dir);
	config_log_config(&d->config, log_dir, &lc);
	/* Readers stop at what the replicas hold: nothing is readable until the leader says. */
	lc.watermark_gated = d->config.cluster_enabled;
	return log_open(&lc, &d->log);
}

/*
 * Connections, log segments, SQLite and DPDK all take descriptors: the soft limit
 * (often 1024) is raised to the hard one, and a limit below what the configured
 * connections need is reported (the server then sheds connections at EMFILE).
 */
static void
sluiced_raise_fd_limit(const struct sluice_config *config)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
		return;
	if (lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
	if (lim.rlim_cur < (rlim_t)config->connections_max + SLUICED_FDS_RESERVED)
		diag_warn("sluiced", "open-file limit %llu is below connections_max %u + %u",
			  (unsigned long long)lim.rlim_cur, config->connections_max,
			  SLUICED_FDS_RESERVED);
}

static int
sluiced_cluster_acked(void *ctx, uint64_t log_id, uint64_t *seq_out)
{
	return cluster_node_acked(ctx, log_id, seq_out);
}

static int
sluiced_cluster_lead_epoch(void *ctx, uint64_t log_id, uint64_t *epoch_out)
{
	return cluster_node_lead_epoch(ctx, log_id, epoch_out);
}

static void
sluiced_cluster_durable(void *ctx, uint64_t log_id, uint64_t seq_end)
{
	cluster_node_durable(ctx, log_id, seq_end);
}

static int
sluiced_cluster_leader_api(void *ctx, uint64_t log_id, char *addr, size_t size)
{
	return cluster_node_leader_api(ctx, log_id, addr, size);
}

static int
sluiced_cluster_read_api(void *ctx, uint64_t log_id, uint32_t nth, char *addr, size_t size)
{
	return cluster_node_read_api(ctx, log_id, nth, addr, size);
}

static int
sluiced_cluster_dp_lead(void *ctx, uint64_t log_id, uint64_t *epoch_out,
			struct dp_leader *leader_out)
{
	return cluster_node_dp_lead(ctx, log_id, epoch_out, &leader_out->ipv4, &leader_out->port);
}

/*
 * Cluster mode: the node (follower, leader, membership, placement watcher) over
 * the log and the actions' metadata, and the actions' acks through it. Before
 * the admin (it shows the node) and the server thread (it answers puts).
 */
static int
sluiced_cluster_start(struct sluiced *d)
{
	struct kinesis_replication repl = {
		.acked = sluiced_cluster_acked, .lead_epoch = sluiced_cluster_lead_epoch,
		.durable = sluiced_cluster_durable, .leader_api = sluiced_cluster_leader_api,
		.read_api = sluiced_cluster_read_api,
	};
	int rc;

	if (!d->config.cluster_enabled)
		return 0;
	rc = cluster_node_start(&d->config, d->log, kinesis_metadata(d->kinesis), &d->cluster);
	if (rc != 0) {
		diag_error("sluiced", "cannot join the cluster: %s", strerror(-rc));
		return rc;
	}
	rc = forward_open(&d->config, &d->forward);
	if (rc != 0) {
		diag_error("sluiced", "forwarder not started: %s", strerror(-rc));
		return rc;
	}
	repl.ctx = d->cluster;
	repl.doorbell_fd = cluster_node_doorbell_fd(d->cluster);
	/* The dataplane asks the same node, through its own interface (dataplane.h). */
	d->dp_cluster = (struct dp_cluster){
		.ctx = d->cluster, .lead = sluiced_cluster_dp_lead, .acked = sluiced_cluster_acked,
		.durable = sluiced_cluster_durable,
		.acked_gen = cluster_node_doorbell_gen(d->cluster),
	};
	repl.forward = d->forward;
	return kinesis_replication_set(d->kinesis, &repl);
}

/*
 * The admin listener, once the log and metadata are open (it reads both).
 * Not fatal when it cannot start: the Kinesis service matters more than its
 * dashboard, and the error says why; [admin] listen = "" turns it off.
 */
static void
sluiced_admin_start(struct sluiced *d)
{
	struct metrics_sources src = {
		.log = d->log, .firehose = kinesis_firehose(d->kinesis),
		.data_dir = d->config.data_dir,
		.dataplane_enabled = d->config.dataplane_enabled,
		.route = d->route, .md = kinesis_metadata(d->kinesis), .cluster = d->cluster,
		.forward = d->forward,
	};
	int rc;

	if (d->config.admin_listen[0] == '\0')
		return;
	rc = admin_open(&d->config, &src, &d->admin);
	if (rc == 0)
		rc = admin_start(d->admin);
	if (rc == 0)
		return;
	diag_error("sluiced", "admin listener %s not started: %s", d->config.admin_listen,
		   strerror(-rc));
	admin_close(d->admin);
	d->admin = NULL;
}

static void
sluiced_notify_ready(const struct sluiced *d)
{
	char text[4 * CONFIG_STRING_SIZE];

	snprintf(text, sizeof(text), "READY=1\nSTATUS=serving: kinesis api %s, admin %s, "
		 "dataplane %s", d->config.api_listen,
		 d->admin != NULL ? d->config.admin_listen : "off",
		 d->config.dataplane_enabled ? d->config.dp_ipv4 : "off");
	notify_send(text);
}

/*
 * Waits for SIGTERM, SIGINT or SIGHUP and returns it; *from_self: sent by
 * sluiced itself (the server thread ended: sluiced_server_main). Under a
 * systemd watchdog (WatchdogSec), pings at half the interval while every part
 * is still ready: a wedged or failed part stops the pings and systemd restarts
 * the service. While `stopping` (the API not ready by design) it pings anyway:
 * the grace and TimeoutStopSec bound that wait.
 */
static int
sluiced_wait(const sigset_t *stop_signals, bool dataplane_enabled, bool stopping,
	     bool *from_self)
{
	uint64_t watchdog_usec = notify_watchdog_usec();
	struct timespec interval = {
		.tv_sec = (time_t)(watchdog_usec / 2 / 1000000u),
		.tv_nsec = (long)(watchdog_usec / 2 % 1000000u * 1000u),
	};
	const char *missing;
	siginfo_t info;
	int sig;

	for (;;) {
		if (watchdog_usec == 0)
			sig = sigwaitinfo(stop_signals, &info);
		else
			sig = sigtimedwait(stop_signals, &info, &interval);
		if (sig > 0) {
			*from_self = info.si_pid == getpid();
			return sig;
		}
		if (watchdog_usec != 0 &&
		    (stopping || metrics_ready_all(dataplane_enabled, &missing)))
			notify_send("WATCHDOG=1");
	}
}

/*
 * The first SIGTERM/SIGINT: with [server] shutdown_grace_ms, the API finishes
 * what it took (api_server_drain) until the server thread says it is done;
 * a second signal stops it at once. Returns once the server thread is ending.
 */
static void
sluiced_stop_api(struct sluiced *d, const sigset_t *stop_signals, bool from_self)
{
	uint32_t grace_ms = d->config.shutdown_grace_ms;
	int sig;

	if (from_self || grace_ms == 0) {
		api_server_stop(d->server);
		return;
	}
	api_server_drain(d->server, grace_ms);
	for (;;) {
		sig = sluiced_wait(stop_signals, false, true, &from_self);
		if (from_self)
			return;
		if (sig != SIGHUP)
			break;
		diag_info("sluiced", "SIGHUP while stopping: not applied");
	}
	diag_warn("sluiced", "second %s: stopping at once", sig == SIGINT ? "SIGINT" : "SIGTERM");
	api_server_stop(d->server);
}

/* The diagnostics keys, on SIGHUP and once at start (the main thread's part of a reload). */
static void
sluiced_diag_apply(const struct sluice_config *config)
{
	enum diag_level level;
	enum diag_format format;

	/* config_validate() accepted both. */
	if (diag_level_parse(config->diag_level, &level) == 0)
		diag_level_set(level);
	if (diag_format_parse(config->diag_format, &format) == 0)
		diag_format_set(format);
}

/*
 * Reads the keyring file and gives its keys to the log (start, and every
 * SIGHUP: rotation adds a line to the same file). A keyring that does not
 * load is refused: at start sluiced stops; on SIGHUP the keys in use stay.
 */
static int
sluiced_keyring_apply(struct sluiced *d, const char *path)
{
	const struct keyring *current = &d->keyring->current; /* Only this thread writes it. */
	char why[KEYRING_WHY_SIZE];
	int rc = keyring_shared_load(d->keyring, path, why, sizeof(why));

	if (rc != 0) {
		diag_error("sluiced", "[encryption] keyring %s: %s", path, why);
		return rc;
	}
	rc = log_keys_replace(d->log, current->keys, current->key_count);
	if (rc == 0 && path[0] != '\0')
		diag_info("sluiced", "keyring %s: %u key versions, %u aliases", path,
			  current->key_count, current->alias_count);
	return rc;
}

struct sluiced_changes {
	uint32_t applied;
	uint32_t restart;
	char restart_keys[2 * CONFIG_STRING_SIZE];  /* "[log] segment_size_mb, ..." */
};

static void
sluiced_changed_key(void *arg, const char *section, const char *name, bool live)
{
	struct sluiced_changes *ch = arg;
	size_t used = strlen(ch->restart_keys);

	if (live) {
		ch->applied++;
		diag_info("sluiced", "SIGHUP: [%s] %s changed: applied", section, name);
		return;
	}
	ch->restart++;
	diag_warn("sluiced", "SIGHUP: [%s] %s changed: needs a restart, not applied", section,
		  name);
	snprintf(ch->restart_keys + used, sizeof(ch->restart_keys) - used, "%s[%s] %s",
		 used > 0 ? ", " : "", section, name);
}

/*
 * SIGHUP: reads the configuration again (file and command line, as at start),
 * applies the keys the table marks live (docs/CONFIG.md, column reload) and
 * names every other changed key as needing a restart. A configuration with
 * errors is reported, never used. Each thread takes its part: diagnostics and
 * the keyring (read again even when its path is unchanged: rotation adds a
 * line to the same file) here, the admin's token and keys under its lock, the
 * API thread's keys (the server's and the Kinesis actions') through
 * api_server_reload().
 */
static void
sluiced_reload(struct sluiced *d)
{
	static struct sluice_config fresh; /* Main thread only. */
	struct config_errors errors = { .count = 0 };
	struct sluiced_changes changes = { .applied = 0 };

	if (sluiced_parse_args(d->argc, d->argv, &fresh, &errors) != 0) {
		diag_warn("sluiced", "SIGHUP: the configuration has errors; nothing changes:");
		config_errors_print(&errors, stderr);
		return;
	}
	sluiced_diag_apply(&fresh); /* First: the lines below come in the new format. */
	config_diff(&d->config, &fresh, sluiced_changed_key, &changes);
	if (changes.applied + changes.restart == 0)
		diag_info("sluiced", "SIGHUP: configuration unchanged");
	config_copy_live(&d->config, &fresh);
	if (sluiced_keyring_apply(d, d->config.keyring) != 0)
		diag_warn("sluiced", "SIGHUP: the keys in use stay");
	if (d->admin != NULL && admin_reload(d->admin, &d->config) != 0)
		diag_warn("sluiced", "SIGHUP: the admin listener keeps its token and keys: "
			  "[auth] access_keys do not parse");
	api_server_reload(d->server, &d->config); /* Also reads the TLS files again. */
	if (changes.restart > 0)
		diag_warn("sluiced", "SIGHUP: %u key(s) applied; %u need a restart: %s",
			  changes.applied, changes.restart, changes.restart_keys);
	else if (changes.applied > 0)
		diag_info("sluiced", "SIGHUP: %u key(s) applied", changes.applied);
}

static void
sluiced_announce_ready(const struct sluiced *d)
{
	printf("sluiced: ready: kinesis api http://%s, data %s, dataplane %s, admin %s%s\n",
	       d->config.api_listen, d->config.data_dir,
	       d->config.dataplane_enabled ? d->config.dp_ipv4 : "off",
	       d->admin != NULL ? "http://" : "", d->admin != NULL ? d->config.admin_listen : "off");
	fflush(stdout);
	sluiced_notify_ready(d);
}

/* Runs the appliance until SIGTERM or SIGINT. Returns the process exit code. */
static int
sluiced_serve(struct sluiced *d)
{
	char log_dir[CONFIG_STRING_SIZE + 8];
	sigset_t stop_signals;
	bool from_self = false;
	int sig = 0;
	int rc;

	/* Block the stop signals (and SIGHUP) in every thread; main() takes them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	sluiced_raise_fd_limit(&d->config);

	metrics_enable(d->config.admin_metrics);
	notify_send("STATUS=recovering the log");
	rc = sluiced_open_log(d, log_dir, sizeof(log_dir));
	if (rc != 0) {
		diag_error("sluiced", "cannot open the log in %s: %s", log_dir, strerror(-rc));
		return 1;
	}
	metrics_ready_set(METRICS_READY_LOG, true);
	d->keyring = calloc(1, sizeof(*d->keyring));
	rc = d->keyring == NULL ? -ENOMEM : keyring_shared_init(d->keyring);
	if (rc == 0)
		rc = sluiced_keyring_apply(d, d->config.keyring);
	if (rc != 0)
		goto out_close_log;
	/* In cluster mode the metadata is etcd's, cached in SQLite (metadata_cluster.c):
	 * the cache reads etcd before anything is loaded, so every node names a stream's
	 * log shards with the same stream id (docs/CLUSTER.md). */
	rc = kinesis_open_cluster(&d->config, d->log,
				  d->config.cluster_enabled ? d->config.cluster_etcd_endpoints : NULL,
				  d->config.cluster_name, &d->kinesis);
	if (rc != 0) {
		diag_error("sluiced", "cannot open metadata: %s", strerror(-rc));
		goto out_close_log;
	}
	metrics_ready_set(METRICS_READY_METADATA, true);
	kinesis_keyring_set(d->kinesis, d->keyring);
	/* Opened (not started) before the admin, which reads its counters. */
	if (d->config.dataplane_enabled && (rc = route_open(&d->route)) != 0)
		goto out_close_kinesis;
	if ((rc = sluiced_cluster_start(d)) != 0)
		goto out_close_kinesis;
	sluiced_admin_start(d);
	rc = api_server_open(&d->config, d->kinesis, &d->server);
	if (rc != 0)
		goto out_close_kinesis;
	if (d->config.dataplane_enabled) {
		struct kinesis_routes routes;

		rc = route_dataplane_start(d->route, &d->config, d->log,
					   kinesis_metadata(d->kinesis),
					   d->cluster != NULL ? &d->dp_cluster : NULL, &routes);
		if (rc != 0) {
			diag_error("sluiced", "cannot start the dataplane: %s", strerror(-rc));
			goto out_close_kinesis;
		}
		/* Before the server thread: the closer copies them when a reshard starts it. */
		kinesis_routes_set(d->kinesis, &routes);
		metrics_ready_set(METRICS_READY_DATAPLANE, true);
	}
	rc = pthread_create(&d->server_thread, NULL, sluiced_server_main, d);
	if (rc != 0) {
		rc = -rc;
		goto out_stop_dataplane;
	}
	metrics_ready_set(METRICS_READY_API, true);
	sluiced_announce_ready(d);

	while ((sig = sluiced_wait(&stop_signals, d->config.dataplane_enabled, false,
				   &from_self)) == SIGHUP)
		sluiced_reload(d);
	notify_send("STOPPING=1\nSTATUS=stopping");
	diag_info("sluiced", "stopping (%s)", from_self ? "the API server ended" :
		  sig == SIGINT ? "SIGINT" : "SIGTERM");
	metrics_ready_set(METRICS_READY_API, false);
	sluiced_stop_api(d, &stop_signals, from_self);
	pthread_join(d->server_thread, NULL);
	rc = d->server_rc;

out_stop_dataplane:
	/* The closer thread is joined before the routes it may be calling go away. */
	kinesis_routes_set(d->kinesis, NULL);
	metrics_ready_set(METRICS_READY_DATAPLANE, false);
	/* Its metadata reader and watch go before the actions' handle (kinesis_close). */
	route_dataplane_stop(d->route);
out_close_kinesis:
	/* The admin reads the log and SQLite: it stops before either closes. */
	admin_close(d->admin);
	d->admin = NULL;
	route_close(d->route);   /* After the admin, which reads its counters. */
	d->route = NULL;
	/*
	 * The server thread is gone: the actions stop asking the node (their waiting
	 * calls are dropped at kinesis_close); then the node leaves the cluster (the
	 * controller moves its leaderships) and stops its threads, all before the
	 * metadata and the log close under them.
	 */
	kinesis_replication_set(d->kinesis, NULL);
	forward_close(d->forward);   /* Its answers are no longer taken: dropped. */
	d->forward = NULL;
	cluster_node_stop(d->cluster);
	d->cluster = NULL;
	metrics_ready_set(METRICS_READY_METADATA, false);
	/*
	 * The actions go first: closing them answers (or drops) the calls they still
	 * hold, and those calls belong to the server, which must still exist then.
	 */
	kinesis_close(d->kinesis);
	if (d->server != NULL)
		api_server_close(d->server);
out_close_log:
	log_close(d->log);
	if (d->keyring != NULL)
		keyring_shared_fini(d->keyring);
	free(d->keyring);
	if (rc == 0)
		diag_info("sluiced", "stopped cleanly");
	return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static struct sluiced d;
	struct config_errors errors = { .count = 0 };
	int rc = sluiced_parse_args(argc, argv, &d.config, &errors);

	d.argc = argc;
	d.argv = argv;
	if (rc == 0)
		sluiced_diag_apply(&d.config);

	if (rc == 1)
		return 0;
	if (rc != 0) {
		config_errors_print(&errors, stderr);
		if (errors.count == 0)
			usage(stderr);
		return SLUICED_EXIT_USAGE;
	}
	return sluiced_serve(&d);
}
