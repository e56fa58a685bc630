/*
 * config.h - sluiced's configuration: INI file (libinih) + command-line
 * overrides -> one validated struct. Every key, its default, its bounds and
 * its meaning are rows of one table in config.c; docs/CONFIG.md is generated
 * from that table (sluiced --print-config-doc) so the two never disagree.
 */
#ifndef SLUICE_CONTROL_CONFIG_H
#define SLUICE_CONTROL_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STRING_SIZE 256
#define CONFIG_ERRORS_MAX 32
/*
 * Fewest [log] batches_per_producer: the API's one producer must hold the batches of one
 * PutRecords to 500 shards (KINESIS_PUT_RECORDS_MAX; kinesis_main.c asserts it), or such a
 * call could never start (it waits for them all, kinesis_records.c).
 */
#define CONFIG_LOG_BATCHES_MIN 512u
/* [admin] access_log_sample: 1 in at most this many requests. */
#define CONFIG_ACCESS_LOG_SAMPLE_MAX 1000000u
/*
 * While the access log is on, error lines written per second at most (a flood of
 * bad requests must not become a flood of lines); the rest are counted. A
 * literal: the key's help text quotes it.
 */
#define CONFIG_ACCESS_LOG_ERRORS_PER_S 100

enum config_auth {
	CONFIG_AUTH_OFF,      /* Any request is accepted (loopback only). */
	CONFIG_AUTH_PRESENCE, /* An Authorization header must be present; not verified. */
	CONFIG_AUTH_SIGV4,    /* AWS Signature Version 4, verified against access_keys. */
};

struct sluice_config {
	/* [server] */
	char data_dir[CONFIG_STRING_SIZE];
	char api_listen[CONFIG_STRING_SIZE];
	char tls_listen[CONFIG_STRING_SIZE];
	char tls_cert[CONFIG_STRING_SIZE];
	char tls_key[CONFIG_STRING_SIZE];
	uint32_t connections_max;
	uint32_t request_body_size_max;
	uint32_t idle_timeout_ms;
	uint32_t shutdown_grace_ms;
	uint32_t put_queue_mb;
	char region[CONFIG_STRING_SIZE];
	char account_id[CONFIG_STRING_SIZE];
	uint32_t stream_status_delay_ms;
	uint32_t shards_per_stream_max;
	uint32_t shard_count_updates_per_day;
	uint32_t autoscale_window_s;
	uint32_t autoscale_split_records_s;
	uint32_t autoscale_cooldown_s;
	bool shard_throttling;
	char diag_level[CONFIG_STRING_SIZE];
	char diag_format[CONFIG_STRING_SIZE];
	/* [auth] */
	enum config_auth auth;
	char auth_text[CONFIG_STRING_SIZE];
	char access_keys[4 * CONFIG_STRING_SIZE]; /* "AKID:SECRET,AKID2:SECRET2" */
	char principals[16 * CONFIG_STRING_SIZE]; /* "AKID=arn:aws:iam::ACCOUNT:user/NAME,..." */
	/* [admin] */
	char admin_listen[CONFIG_STRING_SIZE];
	char admin_token[CONFIG_STRING_SIZE];
	uint32_t admin_access_log_sample;         /* 1 in N requests; 0: off. */
	bool admin_metrics;
	/* [log] */
	uint32_t log_segment_size_mb;
	uint32_t log_commit_window_us;
	uint32_t log_commit_window_adaptive_us;
	uint32_t log_commit_window_kb;
	uint32_t log_batch_size_kb;
	uint32_t log_batches_per_producer;
	uint32_t log_read_cache_mb;
	uint32_t log_shards_max;
	uint32_t retention_check_s;
	uint32_t log_retention_hour_ms;
	/* [dataplane] */
	bool dataplane_enabled;
	char dp_backend[CONFIG_STRING_SIZE]; /* "dpdk" | "kernel" */
	char dp_eal_args[4 * CONFIG_STRING_SIZE];
	char dp_vdev[CONFIG_STRING_SIZE];
	char dp_ipv4[CONFIG_STRING_SIZE];
	uint32_t dp_ingest_port;
	uint32_t dp_workers;
	uint32_t dp_batch_age_us;
	uint32_t dp_admit_wait_ms;
	uint32_t dp_producers_max;
	uint32_t dp_idle_polls;
	uint32_t dp_idle_sleep_us;
	uint32_t dp_mbufs;
	uint32_t dp_ring_size;
	uint32_t dp_mtu;
	uint32_t dp_tcp_connections;
	uint32_t dp_tcp_half_open;
	uint32_t dp_tcp_per_source;
	uint32_t dp_tcp_rx_buffers;
	uint32_t dp_tcp_rx_buffer_kb;
	uint32_t dp_tcp_tx_buffers;
	uint32_t dp_tcp_tx_buffer_kb;
	uint32_t dp_tcp_mss;
	uint32_t dp_tcp_idle_timeout_s;
	uint32_t dp_tcp_keepalive_s;
	uint32_t dp_tcp_partial_frame_s;
	bool dp_no_huge;
	char dp_auth_keys[4 * CONFIG_STRING_SIZE]; /* "KEY_ID:HEX,KEY_ID:HEX" */
	/* [encryption] */
	char keyring[CONFIG_STRING_SIZE];    /* Keyring file (control/keyring.h), or "". */
	/* [firehose] */
	char firehose_local_root[CONFIG_STRING_SIZE];
	char firehose_s3_endpoint[CONFIG_STRING_SIZE];
	char firehose_s3_region[CONFIG_STRING_SIZE];
	char firehose_s3_access_key[CONFIG_STRING_SIZE];
	char firehose_s3_secret_key[CONFIG_STRING_SIZE];
	bool firehose_s3_path_style;
	uint32_t firehose_s3_part_mb;
	char firehose_lambda_map[4 * CONFIG_STRING_SIZE];  /* "ARN=PATH,..." */
	uint32_t firehose_lambda_timeout_s;
	/* [cluster] (issue 15, docs/CLUSTER.md): disabled = single-node mode. */
	bool cluster_enabled;
	char cluster_name[CONFIG_STRING_SIZE];
	uint32_t cluster_node_id;
	char cluster_etcd_endpoints[4 * CONFIG_STRING_SIZE];
	char cluster_replica_listen[CONFIG_STRING_SIZE];
	char cluster_advertise_api[CONFIG_STRING_SIZE];
	char cluster_advertise_dataplane[CONFIG_STRING_SIZE];
	uint32_t cluster_lease_ttl_s;
	uint32_t cluster_replication_factor;
	char cluster_acks[CONFIG_STRING_SIZE];   /* leader | quorum | all */
	uint32_t cluster_inflight_kb;
};

/* One error found while loading: file, line (0 = command line or whole file), text. */
struct config_error {
	char file[CONFIG_STRING_SIZE];
	int line;
	char text[CONFIG_STRING_SIZE];
};

struct config_errors {
	struct config_error items[CONFIG_ERRORS_MAX];
	uint32_t count;
};

/* Fills every field with its documented default. */
void config_defaults(struct sluice_config *config);

/*
 * Reads `path` over the current values. Unknown sections or keys, malformed
 * values and out-of-range numbers are recorded in `errors` with their line.
 * Returns 0, -ENOENT/-EACCES when the file cannot be opened, or -EINVAL when
 * any error was recorded.
 */
int config_load_file(struct sluice_config *config, const char *path,
		     struct config_errors *errors);

/* Sets one key from text, as a file line would. */
int config_set_value(struct sluice_config *config, const char *section, const char *name,
		     const char *value, struct config_errors *errors);

/* Applies one "section.key=value" override (from --set). */
int config_set(struct sluice_config *config, const char *assignment,
	       struct config_errors *errors);

/* Cross-field checks (for example: a non-loopback API needs auth = sigv4). */
int config_validate(const struct sluice_config *config, struct config_errors *errors);

/* Whether `listen` ("ADDR:PORT") names a loopback address. */
bool config_listen_is_loopback(const char *listen);
/* The dataplane address a cluster node registers (nodes/<id>'s dp_addr): "host:port". */
void config_cluster_dp_addr(const struct sluice_config *config, char *out, size_t size);

void config_errors_print(const struct config_errors *errors, FILE *out);

/* Records one error (file "config" and line 0 for whole-configuration rules). */
void config_error_add(struct config_errors *errors, const char *file, int line,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Writes the table of keys, defaults and meanings as Markdown (docs/CONFIG.md). */
void config_doc_print(FILE *out);

/*
 * Calls `fn` for every key whose value differs between `a` and `b` (SIGHUP's
 * report); `live` says whether SIGHUP applies it (config_copy_live) or it waits
 * for a restart.
 */
void config_diff(const struct sluice_config *a, const struct sluice_config *b,
		 void (*fn)(void *arg, const char *section, const char *name, bool live),
		 void *arg);

/* Copies the keys SIGHUP applies (the table's live ones) from `from` into `to`. */
void config_copy_live(struct sluice_config *to, const struct sluice_config *from);

/* Writes an INI file with every key at its default, commented out (the package's conffile). */
void config_ini_print(FILE *out);

#endif /* SLUICE_CONTROL_CONFIG_H */
