/*
 * config: defaults are valid; every error names file, line and key; the
 * non-loopback-without-sigv4 rule holds; overrides win; bounds are enforced
 * at the limit and limit + 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "control/config.h"

static char *
write_temp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/sluice-config-test-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(config, defaults_are_valid)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	cr_assert_eq(config_validate(&c, &e), 0);
	cr_assert_str_eq(c.api_listen, "127.0.0.1:4567");
	cr_assert_eq(c.auth, CONFIG_AUTH_OFF);
	cr_assert_eq(c.dp_ingest_port, 4570u);
}

Test(config, file_values_apply)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };
	char *path = write_temp("; comment\n[server]\ndata_dir = /tmp/x\n"
				"[log]\ncommit_window_us = 200\n[dataplane]\nenabled = false\n");

	config_defaults(&c);
	cr_assert_eq(config_load_file(&c, path, &e), 0);
	cr_assert_str_eq(c.data_dir, "/tmp/x");
	cr_assert_eq(c.log_commit_window_us, 200u);
	cr_assert_eq(c.dataplane_enabled, false);
	unlink(path);
}

Test(config, every_error_names_its_line_and_key)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };
	char *path = write_temp("[server]\n"               /* 1 */
				"connections_max = 0\n"     /* 2: below range */
				"nonsense = 1\n"             /* 3: unknown key */
				"[log]\n"                    /* 4 */
				"segment_size_mb = 4096\n"   /* 5: limit + 1 */
				"segment_size_mb = 4095\n"   /* 6: the limit: fine */
				"[dataplane]\n"              /* 7 */
				"enabled = maybe\n"          /* 8: not a boolean */
				"[nosuch]\n"                 /* 9 */
				"a = b\n");                  /* 10: unknown section */

	config_defaults(&c);
	cr_assert_eq(config_load_file(&c, path, &e), -EINVAL);
	cr_assert_eq(e.count, 5u);
	cr_assert_eq(e.items[0].line, 2);
	cr_assert(strstr(e.items[0].text, "connections_max") != NULL);
	cr_assert(strstr(e.items[0].text, "out of range") != NULL);
	cr_assert_eq(e.items[1].line, 3);
	cr_assert(strstr(e.items[1].text, "nonsense") != NULL);
	cr_assert_eq(e.items[2].line, 5);
	cr_assert(strstr(e.items[2].text, "segment_size_mb") != NULL);
	cr_assert_eq(e.items[3].line, 8);
	cr_assert(strstr(e.items[3].text, "boolean") != NULL);
	cr_assert_eq(e.items[4].line, 10);
	cr_assert(strstr(e.items[4].text, "[nosuch] a") != NULL);
	cr_assert_eq(c.log_segment_size_mb, 4095u);
	cr_assert_str_eq(e.items[0].file, path);
	unlink(path);
}

Test(config, syntax_error_has_a_line)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };
	char *path = write_temp("[server]\nthis line has no equals sign\n");

	config_defaults(&c);
	cr_assert_eq(config_load_file(&c, path, &e), -EINVAL);
	cr_assert_eq(e.count, 1u);
	cr_assert_eq(e.items[0].line, 2);
	unlink(path);
}

Test(config, missing_file)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	cr_assert_eq(config_load_file(&c, "/nonexistent/sluice.ini", &e), -ENOENT);
	cr_assert_eq(e.count, 1u);
}

Test(config, non_loopback_needs_sigv4)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	cr_assert_eq(config_set(&c, "server.api_listen=0.0.0.0:4567", &e), 0);
	cr_assert_eq(config_validate(&c, &e), -EINVAL);
	cr_assert(strstr(e.items[0].text, "sigv4") != NULL);

	e.count = 0;
	cr_assert_eq(config_set(&c, "auth.mode=sigv4", &e), 0);
	cr_assert_eq(config_validate(&c, &e), -EINVAL); /* sigv4 without keys */
	e.count = 0;
	cr_assert_eq(config_set(&c, "auth.access_keys=AKID:SECRET", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);

	/* The admin listener off loopback: with a token, or with the API's SigV4 keys. */
	e.count = 0;
	cr_assert_eq(config_set(&c, "server.api_listen=127.0.0.1:4567", &e), 0);
	cr_assert_eq(config_set(&c, "admin.listen=0.0.0.0:4568", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);
	cr_assert_eq(config_set(&c, "auth.mode=off", &e), 0);
	cr_assert_eq(config_validate(&c, &e), -EINVAL);
	cr_assert(strstr(e.items[0].text, "[admin] listen") != NULL);
	e.count = 0;
	cr_assert_eq(config_set(&c, "admin.token=t", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);

	config_defaults(&c);
	cr_assert_eq(config_set(&c, "server.api_listen=[::1]:4567", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);
	cr_assert_eq(config_set(&c, "server.api_listen=127.9.9.9:1", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);
}

Test(config, overrides_are_checked)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	cr_assert_eq(config_set(&c, "dataplane.ingest_port=65535", &e), 0);
	cr_assert_eq(config_set(&c, "dataplane.ingest_port=65536", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "dataplane.ingest_port=-1", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "noequals", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "server.nokey=1", &e), -EINVAL);
	cr_assert_eq(c.dp_ingest_port, 65535u);
	/* A batch must hold the largest record the API accepts: 1039 KiB is limit - 1. */
	cr_assert_eq(config_set(&c, "log.batch_size_kb=1039", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "log.batch_size_kb=1040", &e), 0);
	/* ring_size's power-of-two rule is the dataplane's own: see test_config_bounds.py. */
	cr_assert_eq(config_set(&c, "dataplane.ring_size=32768", &e), 0);
	cr_assert_eq(config_set(&c, "dataplane.ring_size=65536", &e), -EINVAL);
}

Test(config, backend_is_dpdk_or_kernel)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	cr_assert_str_eq(c.dp_backend, "dpdk");
	cr_assert_eq(config_set(&c, "dataplane.backend=kernel", &e), 0);
	cr_assert_eq(config_validate(&c, &e), 0);
	cr_assert_eq(config_set(&c, "dataplane.backend=sockets", &e), 0);
	cr_assert_eq(config_validate(&c, &e), -EINVAL);
	cr_assert_eq(e.count, 1);
	cr_assert(strstr(e.items[0].text, "backend 'sockets'") != NULL, "%s", e.items[0].text);
}

struct diff_seen {
	char names[8][64];
	bool live[8];
	uint32_t count;
};

static void
diff_note(void *arg, const char *section, const char *name, bool live)
{
	struct diff_seen *seen = arg;

	cr_assert_lt(seen->count, 8u);
	snprintf(seen->names[seen->count], sizeof(seen->names[0]), "%s.%s", section, name);
	seen->live[seen->count++] = live;
}

/* SIGHUP's two halves: config_diff names each changed key with its reload flag, and
 * config_copy_live takes the live ones only (auth mode with its text). */
Test(config, reload_copies_live_keys_only)
{
	static struct sluice_config running, fresh;
	struct config_errors e = { .count = 0 };
	struct diff_seen seen = { .count = 0 };

	config_defaults(&running);
	config_defaults(&fresh);
	cr_assert_eq(config_set(&fresh, "admin.token=new", &e), 0);
	cr_assert_eq(config_set(&fresh, "auth.mode=sigv4", &e), 0);
	cr_assert_eq(config_set(&fresh, "admin.access_log_sample=7", &e), 0);
	cr_assert_eq(config_set(&fresh, "log.segment_size_mb=128", &e), 0);
	cr_assert_eq(config_set(&fresh, "server.connections_max=99", &e), 0);
	config_diff(&running, &fresh, diff_note, &seen);
	cr_assert_eq(seen.count, 5u);
	for (uint32_t i = 0; i < seen.count; i++) {
		bool restart = strcmp(seen.names[i], "log.segment_size_mb") == 0 ||
			       strcmp(seen.names[i], "server.connections_max") == 0;

		cr_assert_eq(seen.live[i], !restart, "%s", seen.names[i]);
	}
	config_copy_live(&running, &fresh);
	cr_assert_str_eq(running.admin_token, "new");
	cr_assert_eq(running.auth, CONFIG_AUTH_SIGV4);
	cr_assert_str_eq(running.auth_text, "sigv4");
	cr_assert_eq(running.admin_access_log_sample, 7u);
	cr_assert_eq(running.log_segment_size_mb, 64u);
	cr_assert_eq(running.connections_max, 1024u);
}

/* Validates `c` after the overrides and expects exactly one error naming `needle`. */
static void
cluster_refused(const char *const *sets, size_t n, const char *needle)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	config_defaults(&c);
	c.dataplane_enabled = false;
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(config_set(&c, sets[i], &e), 0, "%s", sets[i]);
	cr_assert_eq(config_validate(&c, &e), -EINVAL, "%s", needle);
	cr_assert_eq(e.count, 1u, "%s: %u errors, first: %s", needle, e.count, e.items[0].text);
	cr_assert(strstr(e.items[0].text, needle) != NULL, "%s: %s", needle, e.items[0].text);
}

Test(config, cluster_is_off_by_default_and_a_full_section_is_accepted)
{
	struct sluice_config c;
	struct config_errors e = { .count = 0 };
	const char *sets[] = {
		"dataplane.enabled=false", "cluster.enabled=true", "cluster.name=prod-1", "cluster.node_id=3",
		"cluster.etcd_endpoints=http://127.0.0.1:2379,http://127.0.0.1:2381",
		"cluster.replica_listen=127.0.0.1:7003", "cluster.acks=all",
		"cluster.replication_factor=5", "cluster.lease_ttl_s=2", "cluster.inflight_kb=1024",
		"cluster.advertise_api=node3.example:4567",
	};

	config_defaults(&c);
	cr_assert_eq(c.cluster_enabled, false);
	cr_assert_str_eq(c.cluster_acks, "quorum");
	cr_assert_eq(c.cluster_replication_factor, 3u);
	cr_assert_eq(c.cluster_lease_ttl_s, 6u);
	cr_assert_eq(c.cluster_inflight_kb, 16384u);
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		cr_assert_eq(config_set(&c, sets[i], &e), 0, "%s", sets[i]);
	cr_assert_eq(config_validate(&c, &e), 0, "%s", e.items[0].text);
	cr_assert_eq(c.cluster_node_id, 3u);
	cr_assert_str_eq(c.cluster_replica_listen, "127.0.0.1:7003");
}

Test(config, cluster_bad_values_are_named)
{
	const char *on[] = { "cluster.enabled=true", "cluster.node_id=1",
			     "cluster.replica_listen=127.0.0.1:7001", NULL };
	const char *no_id[] = { "cluster.enabled=true", "cluster.replica_listen=127.0.0.1:7001" };
	const char *no_listen[] = { "cluster.enabled=true", "cluster.node_id=1" };
	const char *any[] = { "cluster.enabled=true", "cluster.node_id=1",
			      "cluster.replica_listen=0.0.0.0:7001" };
	const char *name_host[] = { "cluster.enabled=true", "cluster.node_id=1",
				    "cluster.replica_listen=node1:7001" };
	const char *no_etcd[] = { "cluster.enabled=true", "cluster.node_id=1",
				  "cluster.replica_listen=127.0.0.1:7001",
				  "cluster.etcd_endpoints=" };
	struct sluice_config c;
	struct config_errors e = { .count = 0 };

	cluster_refused(no_id, 2, "node_id");
	cluster_refused(no_listen, 2, "replica_listen");
	cluster_refused(any, 3, "replica_listen");
	cluster_refused(name_host, 3, "replica_listen");
	cluster_refused(no_etcd, 4, "etcd_endpoints");
	{
		/* Forwarding dials the advertised API: a wildcard listener needs advertise_api. */
		const char *wild[] = { "cluster.enabled=true", "cluster.node_id=1",
				       "cluster.replica_listen=127.0.0.1:7001",
				       "server.api_listen=0.0.0.0:4567", "auth.mode=sigv4",
				       "auth.access_keys=A:B" };
		const char *told[] = { "cluster.enabled=true", "cluster.node_id=1",
				       "cluster.replica_listen=127.0.0.1:7001",
				       "cluster.advertise_api=0.0.0.0:1" };

		cluster_refused(wild, 6, "advertise_api");
		cluster_refused(told, 4, "advertise_api");
	}
	{
		/*
		 * The dataplane runs in cluster mode; its redirects name this node by an
		 * IPv4 address and port, so the advertised one must be that.
		 */
		const char *dp_name[] = { "dataplane.enabled=true", "cluster.enabled=true",
					  "cluster.node_id=1", "cluster.replica_listen=127.0.0.1:7001",
					  "cluster.advertise_dataplane=node1:4571" };
		const char *dp_any[] = { "dataplane.enabled=true", "cluster.enabled=true",
					 "cluster.node_id=1", "cluster.replica_listen=127.0.0.1:7001",
					 "dataplane.ipv4=0.0.0.0" };
		const char *dp_ok[] = { "dataplane.enabled=true", "cluster.enabled=true",
					"cluster.node_id=1", "cluster.replica_listen=127.0.0.1:7001",
					"cluster.advertise_dataplane=10.0.0.1:4571" };
		struct sluice_config ok;
		struct config_errors none = { .count = 0 };

		cluster_refused(dp_name, 5, "advertise_dataplane 'node1:4571'");
		cluster_refused(dp_any, 5, "advertise_dataplane '0.0.0.0:");
		config_defaults(&ok);
		for (size_t i = 0; i < sizeof(dp_ok) / sizeof(dp_ok[0]); i++)
			cr_assert_eq(config_set(&ok, dp_ok[i], &none), 0, "%s", dp_ok[i]);
		cr_assert_eq(config_validate(&ok, &none), 0, "%s", none.items[0].text);
	}
	/* Checked even when disabled: the file must be good the day it is enabled. */
	on[0] = "cluster.acks=most";
	cluster_refused(on, 1, "[cluster] acks 'most'");
	on[0] = "cluster.name=a/b";
	cluster_refused(on, 1, "[cluster] name");
	/* Numbers: the table's bounds. */
	config_defaults(&c);
	cr_assert_eq(config_set(&c, "cluster.replication_factor=6", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "cluster.replication_factor=0", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "cluster.lease_ttl_s=1", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "cluster.inflight_kb=1023", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "cluster.node_id=65536", &e), -EINVAL);
	cr_assert_eq(config_set(&c, "cluster.enabled=maybe", &e), -EINVAL);
	cr_assert_eq(e.count, 6u);
	cr_assert(strstr(e.items[0].text, "[cluster] replication_factor") != NULL);
}
