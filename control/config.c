/*
 * config.c - the table of every configuration key, and the INI/override
 * readers over it. Adding a key is adding one row to config_keys[].
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/base.h"
#include "common/diag.h"
#include "common/limits.h"
#include "cluster/cluster.h"
#include "control/config.h"
#include "dataplane/dataplane.h"
#include "firehose/firehose.h"
#include "nvme-log/log.h"
#include "replica/replica.h"

enum config_type {
	CONFIG_STR,
	CONFIG_U32,
	CONFIG_BOOL,
	CONFIG_AUTH,
};

struct config_key {
	const char *section;
	const char *name;
	enum config_type type;
	size_t offset;
	size_t size;            /* CONFIG_STR: buffer size. */
	const char *value;      /* The default, as text: parsed like a file value. */
	uint32_t min;           /* CONFIG_U32 bounds. */
	uint32_t max;
	const char *help;
	bool live;              /* SIGHUP applies it (config_copy_live); else a restart does. */
};

#define KEY_STR_(sec, name, field, def, help, live) \
	{ sec, name, CONFIG_STR, offsetof(struct sluice_config, field), \
	  sizeof(((struct sluice_config *)0)->field), def, 0, 0, help, live }
#define KEY_U32_(sec, name, field, def, lo, hi, help, live) \
	{ sec, name, CONFIG_U32, offsetof(struct sluice_config, field), 0, def, lo, hi, help, live }
#define KEY_BOOL_(sec, name, field, def, help, live) \
	{ sec, name, CONFIG_BOOL, offsetof(struct sluice_config, field), 0, def, 0, 1, help, live }
#define KEY_STR(sec, name, field, def, help) KEY_STR_(sec, name, field, def, help, false)
#define KEY_U32(sec, name, field, def, lo, hi, help) \
	KEY_U32_(sec, name, field, def, lo, hi, help, false)
#define KEY_BOOL(sec, name, field, def, help) KEY_BOOL_(sec, name, field, def, help, false)
/*
 * The keys SIGHUP applies: each is read where it is used, on the thread that
 * applies it (main: diagnostics; the API thread: the server's and the Kinesis
 * actions' copies; the admin thread: its token and keys under a lock).
 */
#define LIVE_STR(sec, name, field, def, help) KEY_STR_(sec, name, field, def, help, true)
#define LIVE_U32(sec, name, field, def, lo, hi, help) \
	KEY_U32_(sec, name, field, def, lo, hi, help, true)
#define LIVE_BOOL(sec, name, field, def, help) KEY_BOOL_(sec, name, field, def, help, true)

#define CONFIG_STRINGIFY_(x) #x
#define CONFIG_STRINGIFY(x) CONFIG_STRINGIFY_(x)
#define MIB_FLOOR(bytes) ((uint32_t)((bytes) >> 20))
#define KIB_FLOOR(bytes) ((uint32_t)((bytes) >> 10))
/* The largest record Kinesis accepts (1 MiB of data, a 256-byte key, headers) fits a batch. */
#define CONFIG_LOG_BATCH_KB_MIN 1040u
static_assert(CONFIG_LOG_BATCHES_MIN <= LOG_BATCHES_PER_PRODUCER_MAX, "a valid range");
/* The log wants LOG_BATCHES_PER_SEGMENT_MIN batches per segment: 4 x 1040 KiB -> 5 MiB. */
#define CONFIG_LOG_SEGMENT_MB_MIN \
	((CONFIG_LOG_BATCH_KB_MIN * LOG_BATCHES_PER_SEGMENT_MIN + 1023u) / 1024u)

static_assert(LOG_RETENTION_HOUR_MS_DEFAULT == 3600000u,
	      "[log] retention_hour_ms's default as text");
static_assert(CLUSTER_NAME_SIZE == 64u, "[cluster] name's bound as text");
static_assert(CLUSTER_LEASE_TTL_S_DEFAULT == 6u, "[cluster] lease_ttl_s's default as text");
static_assert(CLUSTER_REPLICATION_FACTOR_DEFAULT == 3u,
	      "[cluster] replication_factor's default as text");
static_assert(REPLICA_INFLIGHT_BYTES_DEFAULT == 16384u << 10, "[cluster] inflight_kb's default");
static_assert(REPLICA_FOLLOWERS_MAX + 1 >= CLUSTER_REPLICATION_FACTOR_MAX,
	      "a leader links to replication_factor - 1 followers per shard");
static_assert(FIREHOSE_S3_PART_MB_DEFAULT == 16u, "[firehose] s3_part_mb's default as text");

static const struct config_key config_keys[] = {
	KEY_STR("server", "data_dir", data_dir, "/var/lib/sluice",
		"Directory for the log segments and the metadata database."),
	KEY_STR("server", "api_listen", api_listen, "127.0.0.1:4567",
		"Kinesis API listener (HTTP/1.1 and h2c), ADDR:PORT."),
	KEY_STR("server", "tls_listen", tls_listen, "",
		"TLS listener (HTTP/1.1 and h2 via ALPN), ADDR:PORT; empty = none."),
	LIVE_STR("server", "tls_cert", tls_cert, "", "PEM certificate chain for tls_listen."),
	LIVE_STR("server", "tls_key", tls_key, "", "PEM private key for tls_listen."),
	KEY_U32("server", "connections_max", connections_max, "1024", 1, 65536,
		"API connections held at once; more are refused."),
	KEY_U32("server", "request_body_size_max", request_body_size_max, "16777216", 1024,
		67108864, "Largest request body accepted, bytes (PutRecords of 500 x 1 MiB fits "
		"base64 in 5 MiB x 4/3; AWS caps the request at 5 MiB of data)."),
	LIVE_U32("server", "idle_timeout_ms", idle_timeout_ms, "60000", 100, 3600000,
		"A connection idle or stalled mid-request this long is closed."),
	LIVE_U32("server", "shutdown_grace_ms", shutdown_grace_ms, "10000", 0, 60000,
		"On SIGTERM/SIGINT the API stops taking connections and refuses new requests "
		"(503 + Connection: close; h2: GOAWAY) and the calls already taken get their "
		"answers for at most this long; what is left then is closed unanswered and "
		"logged. 0: stop at once. A second signal stops at once."),
	KEY_U32("server", "put_queue_mb", put_queue_mb, "256", 0, 65536,
		"Memory budget, MiB of request bodies, of the PutRecord and PutRecords calls that "
		"wait, in arrival order, for the log's batches while all are in flight (the log "
		"falling behind): within it a call waits instead of being refused; beyond it "
		"calls are answered ProvisionedThroughputExceededException (0: never wait)."),
	KEY_STR("server", "region", region, "us-east-1", "Region shown in stream ARNs."),
	KEY_STR("server", "account_id", account_id, "000000000000",
		"Account id shown in stream ARNs; with [auth] mode = sigv4 the owner account of "
		"every stream for resource policies (12 digits)."),
	LIVE_U32("server", "stream_status_delay_ms", stream_status_delay_ms, "200", 0, 600000,
		"How long a stream stays CREATING/UPDATING/DELETING before the change completes."),
	LIVE_U32("server", "shards_per_stream_max", shards_per_stream_max, "10000", 1,
		SLUICE_SHARDS_MAX,
		"Open shards one stream may have (AWS: 10000); checked by UpdateShardCount."),
	LIVE_U32("server", "shard_count_updates_per_day", shard_count_updates_per_day, "10", 0,
		64, "UpdateShardCount calls per stream in a rolling 24 h (AWS: 10; 0: no limit)."),
	LIVE_U32("server", "autoscale_window_s", autoscale_window_s, "60", 0, 86400,
		"ON_DEMAND streams: seconds between auto-scaling looks (rates over this window; "
		"0: off)."),
	LIVE_U32("server", "autoscale_split_records_s", autoscale_split_records_s, "1000", 1,
		100000000, "ON_DEMAND streams: split an open shard writing more records/s than "
		"this; merge an adjacent pair writing less than a quarter of it together."),
	LIVE_U32("server", "autoscale_cooldown_s", autoscale_cooldown_s, "120", 0, 86400,
		"ON_DEMAND streams: no auto-scaling decision this long after the last one."),
	LIVE_BOOL("server", "shard_throttling", shard_throttling, "false",
		"Enforce Kinesis per-shard limits (1 MiB/s, 1000 rec/s write; 2 MiB/s, 5 calls/s "
		"read) with ProvisionedThroughputExceededException."),
	LIVE_STR("server", "diag_level", diag_level, "info",
		"debug | info | warn | error: diagnostics (stderr, the journal) below this are not "
		"written."),
	LIVE_STR("server", "diag_format", diag_format, "text",
		"text | json (one object per line: ts, level, module, msg; the access log's lines "
		"carry its fields as members)."),
	{ "auth", "mode", CONFIG_AUTH, offsetof(struct sluice_config, auth), 0, "off", 0, 0,
	  "off | presence | sigv4. off and presence are refused on a non-loopback api_listen.",
	  true },
	LIVE_STR("auth", "access_keys", access_keys, "",
		"Comma-separated ACCESS_KEY_ID:SECRET pairs accepted by sigv4."),
	KEY_STR("auth", "principals", principals, "",
		"Comma-separated ACCESS_KEY_ID=ARN pairs (arn:aws:iam::ACCOUNT:root, ...:user/NAME "
		"or ...:role/NAME): who a sigv4 key is, for resource policies. A key not listed "
		"is the owner account's root ([server] account_id)."),
	KEY_STR("admin", "listen", admin_listen, "127.0.0.1:4568",
		"Admin listener (/healthz, /readyz, /metrics, the status page at /), ADDR:PORT; "
		"empty = none. Not loopback: only with a token or [auth] mode = sigv4 (then every "
		"request needs the token or a SigV4 signature, service sluice-admin)."),
	LIVE_STR("admin", "token", admin_token, "",
		"Bearer token the admin listener requires (Authorization: Bearer TOKEN, or "
		"?token=TOKEN); empty = none (loopback only, unless [auth] mode = sigv4)."),
	LIVE_U32("admin", "access_log_sample", admin_access_log_sample, "0", 0,
		 CONFIG_ACCESS_LOG_SAMPLE_MAX,
		 "Access log (stderr, the journal): one line for 1 in N API requests (0: off; 1: "
		 "every one) with time, peer, operation, stream, status, error type, body bytes in "
		 "and out, latency; while on, every error is logged too, at most "
		 CONFIG_STRINGIFY(CONFIG_ACCESS_LOG_ERRORS_PER_S) " a second (the rest counted in "
		 "sluice_access_log_suppressed_total)."),
	KEY_BOOL("admin", "metrics", admin_metrics, "true",
		"Record the figures /metrics and the status page show (false: to measure what "
		"recording costs; docs/BENCHMARKS.md)."),
	KEY_U32("log", "segment_size_mb", log_segment_size_mb, "64", CONFIG_LOG_SEGMENT_MB_MIN,
		MIB_FLOOR(LOG_SEGMENT_SIZE_MAX),
		"Size of one preallocated log segment file, MiB."),
	KEY_U32("log", "commit_window_us", log_commit_window_us, "0", 0,
		LOG_COMMIT_WINDOW_US_MAX,
		"A group-commit window closes this long after its first batch (0: as soon as "
		"the previous window's flush is done, after commit_window_adaptive_us's wait "
		"if any) ..."),
	KEY_U32("log", "commit_window_kb", log_commit_window_kb, "1024",
		KIB_FLOOR(LOG_COMMIT_WINDOW_BYTES_MIN), KIB_FLOOR(LOG_COMMIT_WINDOW_BYTES_MAX),
		"... or once this many KiB are pending, whichever comes first."),
	KEY_U32("log", "commit_window_adaptive_us", log_commit_window_adaptive_us, "500", 0,
		LOG_COMMIT_WINDOW_US_MAX,
		"With commit_window_us = 0: the longest a window waits after its first batch "
		"while windows follow each other back to back (its first batch waited for the "
		"disk: the wait doubles up to this); the wait halves for each window that opens "
		"after the disk was idle at least as long as it was last busy, so it is 0 at low "
		"load (0: never waits). Fewer, larger windows under load: the log writer's CPU "
		"is per window, not per record (docs/BENCHMARKS.md)."),
	KEY_U32("log", "batch_size_kb", log_batch_size_kb, "1088", CONFIG_LOG_BATCH_KB_MIN,
		KIB_FLOOR(LOG_BATCH_SIZE_MAX),
		"Largest encoded record batch, KiB; at least 1040 so that the largest record "
		"Kinesis accepts (1 MiB of data, a 256-byte key, headers) always fits. A stream "
		"raised to MaxRecordSizeInKiB N needs N + 1 here (10241 for 10 MiB records; "
		"UpdateMaxRecordSize refuses otherwise, naming the value)."),
	KEY_U32("log", "batches_per_producer", log_batches_per_producer, "1024",
		CONFIG_LOG_BATCHES_MIN, LOG_BATCHES_PER_PRODUCER_MAX,
		"Batches each log client (the API, each dataplane worker) may have in flight; "
		"when all are, the API queues calls (put_queue_mb) and a worker throttles. At "
		"least 512: one PutRecords to 500 shards needs 500. Virtual memory reserved: "
		"batch_size_kb times this per client; only the bytes batches really fill become "
		"resident."),
	KEY_U32("log", "read_cache_mb", log_read_cache_mb, "64", 0,
		MIB_FLOOR(LOG_READ_CACHE_BYTES_MAX),
		"Memory holding the most recently written windows, MiB: reads at the tail are "
		"served from it instead of the device (never less than 4 commit windows)."),
	KEY_U32("log", "shards_max", log_shards_max, "16384", 1, SLUICE_SHARDS_MAX,
		"Shards (over all streams, open and closed but retained) the log tracks."),
	LIVE_U32("log", "retention_check_s", retention_check_s, "60", 1, 86400,
		"How often retention trims the log."),
	KEY_U32("log", "retention_hour_ms", log_retention_hour_ms, "3600000",
		LOG_RETENTION_HOUR_MS_MIN, LOG_RETENTION_HOUR_MS_MAX,
		"How long one hour of a stream's retention lasts when records expire, ms. Only "
		"for testing expiry (Kafka's and Redpanda's retention.ms go as low, Kinesis' "
		"shortest retention is 24 h): at 1000 a 24 h stream keeps its records 24 s. "
		"Scales what ages out with retention and nothing else: the trim horizon that "
		"TRIM_HORIZON and AT_TIMESTAMP start from, closed shards leaving ListShards, "
		"Firehose's retention watch. RetentionPeriodHours keeps AWS's 24..8760 and "
		"texts; SigV4, sequence numbers, iterators and timeouts keep real time. "
		"Production: 3600000."),
	KEY_BOOL("dataplane", "enabled", dataplane_enabled, "true",
		"Start the DPDK dataplane (false = API and log only, as --no-dataplane)."),
	KEY_STR("dataplane", "backend", dp_backend, "dpdk",
		"dpdk | kernel. dpdk: a DPDK port (vdev, or a PCI NIC through eal_args). kernel: "
		"kernel UDP and TCP sockets on ipv4:ingest_port through io_uring, for hosts "
		"without a DPDK-capable NIC (ipv4 must be an address of the host; ARP, ICMP and "
		"TCP are the kernel's; tcp_connections, the tcp_* buffers and timeouts apply, "
		"tcp_rx_buffer_kb bounding a frame)."),
	KEY_STR("dataplane", "eal_args", dp_eal_args, "",
		"Extra DPDK EAL arguments, space separated (for example -a 0000:01:00.0)."),
	KEY_STR("dataplane", "vdev", dp_vdev, "net_tap0,iface=sluice0",
		"DPDK virtual devices, ';'-separated, one port each (workers are spread over "
		"the ports, worker i on port i % ports): net_tap0,iface=NAME; "
		"net_af_xdp0,iface=NAME (queue_count follows workers / ports); "
		"net_memif0,role=server,socket=PATH,socket-abstract=no. "
		"Used when no PCI device is allowed (docs/DEPLOY.md)."),
	KEY_STR("dataplane", "ipv4", dp_ipv4, "198.18.0.1",
		"IPv4 address the dataplane answers ARP and ICMP for and ingests on."),
	KEY_U32("dataplane", "ingest_port", dp_ingest_port, "4570", 1, UINT16_MAX,
		"UDP port of the record-frame ingest protocol."),
	KEY_U32("dataplane", "workers", dp_workers, "1", 1, DP_WORKERS_MAX,
		"Polling worker lcores."),
	KEY_U32("dataplane", "batch_age_us", dp_batch_age_us, "100", DP_BATCH_AGE_US_MIN,
		DP_BATCH_AGE_US_MAX,
		"A staged shard batch is handed to the log at most this old."),
	KEY_U32("dataplane", "admit_wait_ms", dp_admit_wait_ms,
		CONFIG_STRINGIFY(DP_ADMIT_WAIT_MS_DEFAULT), DP_ADMIT_WAIT_MS_MIN, DP_ADMIT_WAIT_MS_MAX,
		"Admission by age: once a worker's fastest durable ACK of the last 100 ms came "
		"later than this after its frame, it refuses new durable frames THROTTLED (TCP: "
		"its window closes) until one comes in time, so admitted records keep a bounded "
		"latency under overload."),
	KEY_U32("dataplane", "producers_max", dp_producers_max, "1024", 1, DP_PRODUCERS_MAX,
		"Producer ids with a dedup window, per worker (about 2.2 KiB each; the workers "
		"share one table of workers x producers_max windows, so a producer meets its "
		"window on any worker); when all are taken a new id is NACKed throttled until "
		"one has been idle 60 s plus the auth replay window."),
	KEY_U32("dataplane", "idle_polls", dp_idle_polls, "16", 0, DP_IDLE_POLLS_MAX,
		"Empty polls before a worker naps, then it naps after each empty poll until work "
		"comes (0 = never sleep: production)."),
	KEY_U32("dataplane", "idle_sleep_us", dp_idle_sleep_us, "100", 0, DP_IDLE_SLEEP_US_MAX,
		"Longest nap of an idle worker, microseconds: shorter when a staged batch is due "
		"sooner; a log completion ends it (DPDK backend)."),
	KEY_U32("dataplane", "mbufs", dp_mbufs, "8191", DP_MBUFS_MIN, DP_MBUFS_MAX,
		"Packet buffers in the mempool."),
	KEY_U32("dataplane", "ring_size", dp_ring_size, "1024", DP_RING_SIZE_MIN, DP_RING_SIZE_MAX,
		"RX and TX descriptors of each worker's queue pair (a power of two)."),
	KEY_U32("dataplane", "mtu", dp_mtu, "1500", DP_MTU_MIN, DP_MTU_MAX,
		"IP MTU of the dataplane's port. Above 2,000 the device must scatter packets "
		"over chained buffers (tap, memif and most NICs can). Larger UDP datagrams arrive "
		"as IPv4 fragments and are reassembled (at most 8 fragments each)."),
	KEY_U32("dataplane", "tcp_connections", dp_tcp_connections, "16384", 1,
		DP_TCP_CONNECTIONS_MAX,
		"TCP connections each worker can hold (about 0.3 KiB each, idle); SYNs beyond "
		"the table are answered with SYN cookies whose connections are refused with RST."),
	KEY_U32("dataplane", "tcp_half_open", dp_tcp_half_open, "1024", 1, DP_TCP_CONNECTIONS_MAX,
		"Half-open TCP connections per worker before SYNs are answered with SYN cookies "
		"(no state: a SYN flood costs no memory)."),
	KEY_U32("dataplane", "tcp_per_source", dp_tcp_per_source, "4096", 1,
		DP_TCP_CONNECTIONS_MAX, "TCP connections one IPv4 address may hold per worker."),
	KEY_U32("dataplane", "tcp_rx_buffers", dp_tcp_rx_buffers, "64", 1, DP_TCP_BUFFERS_MAX,
		"TCP receive buffers per worker: a connection holds one only while a frame spans "
		"segments, data arrives out of order, or ingest pushes back."),
	KEY_U32("dataplane", "tcp_rx_buffer_kb", dp_tcp_rx_buffer_kb, "1028",
		DP_TCP_BUFFER_KB_MIN, DP_TCP_BUFFER_KB_MAX,
		"Size of a TCP receive buffer, KiB: the largest frame a TCP producer may send and "
		"the largest window advertised (1028 takes any legal frame)."),
	KEY_U32("dataplane", "tcp_tx_buffers", dp_tcp_tx_buffers, "256", 1, DP_TCP_BUFFERS_MAX,
		"TCP send buffers per worker: a connection holds one while answers are owed or "
		"unacknowledged."),
	KEY_U32("dataplane", "tcp_tx_buffer_kb", dp_tcp_tx_buffer_kb, "64", DP_TCP_BUFFER_KB_MIN,
		DP_TCP_BUFFER_KB_MAX,
		"Size of a TCP send buffer, KiB: room for one answer (1472 B) is reserved per "
		"frame in flight, so this bounds a connection's unanswered frames (44 at 64)."),
	KEY_U32("dataplane", "tcp_mss", dp_tcp_mss, "1460", DP_TCP_MSS_MIN, DP_MTU_MAX - 40,
		"Largest TCP segment taken and advertised; the MTU less 40 bytes and half a "
		"receive buffer bound it further."),
	KEY_U32("dataplane", "tcp_idle_timeout_s", dp_tcp_idle_timeout_s, "600", 0,
		DP_TCP_TIMEOUT_S_MAX,
		"A TCP connection that sent no data this long is reset (0 = never)."),
	KEY_U32("dataplane", "tcp_keepalive_s", dp_tcp_keepalive_s, "60", 0, DP_TCP_TIMEOUT_S_MAX,
		"Silence before keepalive probes; 3 unanswered probes 10 s apart reset the "
		"connection (0 = no probes)."),
	KEY_U32("dataplane", "tcp_partial_frame_s", dp_tcp_partial_frame_s, "30", 1,
		DP_TCP_PARTIAL_FRAME_S_MAX,
		"A TCP frame left incomplete this long resets its connection (slowloris)."),
	KEY_BOOL("dataplane", "no_huge", dp_no_huge, "false",
		"Run DPDK without hugepages (development machines)."),
	KEY_STR("dataplane", "auth_keys", dp_auth_keys, "",
		"Producer HMAC keys, comma-separated KEY_ID:HEX (16..64 bytes each); when set, "
		"every record frame must carry a valid tag."),
	LIVE_STR("encryption", "keyring", keyring, "",
		"Keyring file for encryption at rest (StartStreamEncryption): one key version "
		"per line, KEY-ID VERSION 64-HEX-DIGITS, then optionally enabled or disabled and "
		"alias/NAME names "
		"(docs/OPERATIONS.md, \"Encryption at rest\"); must not be readable by others; "
		"read again on SIGHUP. Empty: StartStreamEncryption answers KMSNotFoundException."),
	KEY_STR("firehose", "local_root", firehose_local_root, "",
		"Directory delivery streams land objects in, as local_root/<bucket>/<key> for a "
		"BucketARN arn:aws:s3:::<bucket> (docs/FIREHOSE.md); empty = <data_dir>/firehose."),
	KEY_STR("firehose", "s3_endpoint", firehose_s3_endpoint, "",
		"S3-compatible store behind every BucketARN, http(s)://host[:port] "
		"(docs/FIREHOSE.md); objects are PUT there, SigV4-signed for service s3. "
		"Empty = objects land under local_root."),
	KEY_STR("firehose", "s3_region", firehose_s3_region, "us-east-1",
		"Region of the store's SigV4 credential scope."),
	KEY_STR("firehose", "s3_access_key", firehose_s3_access_key, "",
		"Access key id that signs requests to s3_endpoint."),
	KEY_STR("firehose", "s3_secret_key", firehose_s3_secret_key, "",
		"Secret access key that signs requests to s3_endpoint."),
	KEY_BOOL("firehose", "s3_path_style", firehose_s3_path_style, "true",
		"Path-style addressing (host/bucket/key); false = virtual-host style "
		"(bucket.host/key)."),
	KEY_U32("firehose", "s3_part_mb", firehose_s3_part_mb,
		"16", FIREHOSE_S3_PART_MB_MIN,
		FIREHOSE_S3_PART_MB_MAX,
		"An object larger than this many MiB is sent as a multipart upload of parts this "
		"size (S3: parts but the last >= 5 MiB)."),
	KEY_STR("firehose", "lambda_map", firehose_lambda_map, "",
		"Lambda processors as local executables: ARN=PATH[,ARN=PATH...] (at most 16); "
		"PATH gets Firehose's transformation event on stdin and answers on stdout "
		"(docs/FIREHOSE.md). A LambdaArn not named here is refused at create."),
	KEY_U32("firehose", "lambda_timeout_s", firehose_lambda_timeout_s, "60", 1,
		FIREHOSE_LAMBDA_TIMEOUT_S_MAX,
		"A Lambda executable still running after this is killed (the invocation failed; "
		"it is retried NumberOfRetries times). Delivery waits for it meanwhile."),
	KEY_BOOL("cluster", "enabled", cluster_enabled, "false",
		"Run as one node of a cluster (docs/CLUSTER.md): membership on etcd, shards "
		"replicated to replication_factor nodes. false: single-node mode, the other "
		"[cluster] keys unused."),
	KEY_STR("cluster", "name", cluster_name, "sluice",
		"Cluster name: every key lives under /sluice/<name>/ in etcd (letters, digits, "
		"'-', '_', '.', at most 63 bytes)."),
	KEY_U32("cluster", "node_id", cluster_node_id, "0", 0, CLUSTER_NODE_ID_MAX,
		"This node's id, unique in the cluster and kept across restarts (its logs' "
		"epochs and the placement name it); 0: unset, refused when enabled."),
	KEY_STR("cluster", "etcd_endpoints", cluster_etcd_endpoints, "http://127.0.0.1:2379",
		"etcd v3 endpoints, comma-separated http://HOST:PORT: the members of one "
		"etcd cluster. Calls go to the one that answered last and move to the next "
		"when it is down, has no leader or times out (docs/CLUSTER.md)."),
	KEY_STR("cluster", "replica_listen", cluster_replica_listen, "",
		"Replication listener (followers take the leaders' links here), IPV4:PORT; also "
		"the address other nodes dial, so not 0.0.0.0. Needed when enabled."),
	KEY_STR("cluster", "advertise_api", cluster_advertise_api, "",
		"Kinesis API address other nodes forward puts to and clients are told, HOST:PORT "
		"(empty: [server] api_listen; a wildcard there needs this)."),
	KEY_STR("cluster", "advertise_dataplane", cluster_advertise_dataplane, "",
		"Dataplane address producers are redirected to, IPV4:PORT (empty: [dataplane] "
		"ipv4 and ingest_port); with the dataplane on it must be IPV4:PORT, not 0.0.0.0."),
	KEY_U32("cluster", "lease_ttl_s", cluster_lease_ttl_s, "6", CLUSTER_LEASE_TTL_S_MIN,
		CLUSTER_LEASE_TTL_S_MAX,
		"TTL of the node's etcd lease, seconds: a node silent this long is gone (its "
		"shards get new leaders); renewed every third of it."),
	KEY_U32("cluster", "replication_factor", cluster_replication_factor, "3", 1,
		CLUSTER_REPLICATION_FACTOR_MAX,
		"Replicas of every shard, leader included (fewer while fewer nodes live)."),
	KEY_STR("cluster", "acks", cluster_acks, "quorum",
		"leader | quorum | all: how many replicas must hold a record durably before "
		"PutRecord/PutRecords answers (quorum: a majority, leader included)."),
	KEY_U32("cluster", "inflight_kb", cluster_inflight_kb, "16384",
		KIB_FLOOR(REPLICA_INFLIGHT_BYTES_MIN), KIB_FLOOR(REPLICA_INFLIGHT_BYTES_MAX),
		"KiB shipped to one follower and not yet acknowledged; beyond it shipping waits "
		"(the leader's log keeps everything)."),
};

void
config_error_add(struct config_errors *errors, const char *file, int line, const char *fmt, ...)
{
	struct config_error *e;
	va_list ap;

	if (errors->count >= CONFIG_ERRORS_MAX)
		return;
	e = &errors->items[errors->count++];
	snprintf(e->file, sizeof(e->file), "%s", file);
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

/* A refused value: the key, the value, why, and for a number its range. */
static void
config_key_error(struct config_errors *errors, const char *file, int line,
		 const struct config_key *key, const char *value, const char *why)
{
	if (key->type == CONFIG_U32)
		config_error_add(errors, file, line, "[%s] %s = '%s': %s (%u .. %u)", key->section,
				 key->name, value, why, key->min, key->max);
	else
		config_error_add(errors, file, line, "[%s] %s = '%s': %s", key->section, key->name,
				 value, why);
}

static const struct config_key *
config_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static int
config_parse_u32(const char *text, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Stores `value` into the field of `key`; returns a reason text on failure, NULL on success. */
static const char *
config_key_store(struct sluice_config *config, const struct config_key *key, const char *value)
{
	char *field = (char *)config + key->offset;
	uint32_t u;

	switch (key->type) {
	case CONFIG_STR:
		if (strlen(value) >= key->size)
			return "value too long";
		memcpy(field, value, strlen(value) + 1);
		return NULL;
	case CONFIG_U32:
		if (config_parse_u32(value, &u) != 0)
			return "not an unsigned integer";
		if (u < key->min || u > key->max)
			return "out of range";
		memcpy(field, &u, sizeof(u));
		return NULL;
	case CONFIG_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
		    strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
			 strcmp(value, "0") == 0)
			*(bool *)field = false;
		else
			return "not a boolean (true/false)";
		return NULL;
	case CONFIG_AUTH:
		if (strcmp(value, "off") == 0)
			config->auth = CONFIG_AUTH_OFF;
		else if (strcmp(value, "presence") == 0)
			config->auth = CONFIG_AUTH_PRESENCE;
		else if (strcmp(value, "sigv4") == 0)
			config->auth = CONFIG_AUTH_SIGV4;
		else
			return "not one of off, presence, sigv4";
		snprintf(config->auth_text, sizeof(config->auth_text), "%s", value);
		return NULL;
	}
	return "bad key type";
}

void
config_defaults(struct sluice_config *config)
{
	memset(config, 0, sizeof(*config));
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const char *why = config_key_store(config, &config_keys[i], config_keys[i].value);

		/* A default that does not parse is a bug in the table above. */
		assert(why == NULL);
		(void)why;
	}
}

struct config_file_state {
	FILE *file;
	const char *path;
	int line;
	struct sluice_config *config;
	struct config_errors *errors;
};

/* libinih reader: fgets that counts lines, so every error names its line. */
static char *
config_read_line(char *buf, int size, void *arg)
{
	struct config_file_state *st = arg;
	char *line = fgets(buf, size, st->file);

	if (line != NULL)
		st->line++;
	return line;
}

static int
config_ini_handler(void *arg, const char *section, const char *name, const char *value)
{
	struct config_file_state *st = arg;
	const struct config_key *key = config_key_find(section, name);
	const char *why;

	if (key == NULL) {
		config_error_add(st->errors, st->path, st->line, "unknown key [%s] %s", section, name);
		return 1; /* Keep going: report every error, not the first only. */
	}
	why = config_key_store(st->config, key, value);
	if (why != NULL)
		config_key_error(st->errors, st->path, st->line, key, value, why);
	return 1;
}

int
config_load_file(struct sluice_config *config, const char *path, struct config_errors *errors)
{
	struct config_file_state st = { .path = path, .config = config, .errors = errors };
	uint32_t errors_before = errors->count;
	int rc;

	st.file = fopen(path, "r");
	if (st.file == NULL) {
		int err = -errno;

		config_error_add(errors, path, 0, "cannot open: %s", strerror(-err));
		return err;
	}
	rc = ini_parse_stream(config_read_line, &st, config_ini_handler, &st);
	fclose(st.file);
	/* rc > 0: a line libinih could not parse at all (no '=' or a bad section header). */
	if (rc > 0)
		config_error_add(errors, path, rc, "syntax error (expected [section] or key = value)");
	else if (rc < 0)
		config_error_add(errors, path, 0, "read error");
	return errors->count == errors_before ? 0 : -EINVAL;
}

int
config_set_value(struct sluice_config *config, const char *section, const char *name,
		 const char *value, struct config_errors *errors)
{
	const struct config_key *key = config_key_find(section, name);
	const char *why;

	if (key == NULL) {
		config_error_add(errors, "command line", 0, "unknown key [%s] %s", section, name);
		return -EINVAL;
	}
	why = config_key_store(config, key, value);
	if (why != NULL) {
		config_key_error(errors, "command line", 0, key, value, why);
		return -EINVAL;
	}
	return 0;
}

int
config_set(struct sluice_config *config, const char *assignment, struct config_errors *errors)
{
	char section[64];
	char name[64];
	const char *dot = strchr(assignment, '.');
	const char *eq = strchr(assignment, '=');

	if (dot == NULL || eq == NULL || dot > eq || (size_t)(dot - assignment) >= sizeof(section) ||
	    (size_t)(eq - dot - 1) >= sizeof(name)) {
		config_error_add(errors, "command line", 0, "--set '%s': expected section.key=value",
				 assignment);
		return -EINVAL;
	}
	memcpy(section, assignment, (size_t)(dot - assignment));
	section[dot - assignment] = '\0';
	memcpy(name, dot + 1, (size_t)(eq - dot - 1));
	name[eq - dot - 1] = '\0';
	return config_set_value(config, section, name, eq + 1, errors);
}

bool
config_listen_is_loopback(const char *listen)
{
	char host[CONFIG_STRING_SIZE];
	const char *colon = strrchr(listen, ':');
	struct in_addr a4;
	struct in6_addr a6;

	if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
		return false;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (host[0] == '[' && strlen(host) > 2) {
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6) == 1)
			return IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

static bool
config_listen_is_valid(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	uint32_t port;

	return colon != NULL && colon != listen && config_parse_u32(colon + 1, &port) == 0 &&
	       port > 0 && port <= 65535;
}

void
config_cluster_dp_addr(const struct sluice_config *config, char *out, size_t size)
{
	if (config->cluster_advertise_dataplane[0] != '\0')
		snprintf(out, size, "%s", config->cluster_advertise_dataplane);
	else
		snprintf(out, size, "%s:%u", config->dp_ipv4, config->dp_ingest_port);
}

/* "IPV4:PORT", not 0.0.0.0: an address other nodes (and redirected producers) reach. */
static bool
config_ipv4_port_is_valid(const char *text)
{
	const char *colon = strrchr(text, ':');
	char host[CONFIG_STRING_SIZE];
	struct in_addr ip;

	return config_listen_is_valid(text) && (size_t)(colon - text) < REPLICA_HOST_SIZE_MAX &&
	       snprintf(host, sizeof(host), "%.*s", (int)(colon - text), text) > 0 &&
	       inet_pton(AF_INET, host, &ip) == 1 && ip.s_addr != htonl(INADDR_ANY);
}

/* [cluster]: the shapes cluster_member_start and the replica follower take. */
static void
config_validate_cluster(const struct sluice_config *config, struct config_errors *errors)
{
	const char *name = config->cluster_name;
	char dp_addr[CONFIG_STRING_SIZE + 16];
	const char *api;

	if (strcmp(config->cluster_acks, "leader") != 0 &&
	    strcmp(config->cluster_acks, "quorum") != 0 && strcmp(config->cluster_acks, "all") != 0)
		config_error_add(errors, "config", 0, "[cluster] acks '%s': expected leader, quorum "
				 "or all", config->cluster_acks);
	if (name[0] == '\0' || strlen(name) >= CLUSTER_NAME_SIZE ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
		    strlen(name))
		config_error_add(errors, "config", 0, "[cluster] name '%s': expected 1 to %u "
				 "letters, digits, '-', '_' or '.'", name, CLUSTER_NAME_SIZE - 1);
	if (strlen(config->cluster_advertise_api) >= CLUSTER_ADDR_SIZE ||
	    strlen(config->cluster_advertise_dataplane) >= CLUSTER_ADDR_SIZE)
		config_error_add(errors, "config", 0, "[cluster] advertise_api and "
				 "advertise_dataplane: at most %u bytes", CLUSTER_ADDR_SIZE - 1);
	if (!config->cluster_enabled)
		return;  /* The rest names what a running cluster node needs. */
	if (config->cluster_node_id == 0)
		config_error_add(errors, "config", 0, "[cluster] enabled needs node_id (1 .. %u)",
				 CLUSTER_NODE_ID_MAX);
	/*
	 * The dataplane's not_leader NACK names a node by an IPv4 address and port
	 * (docs/PROTOCOL.md section 4): the address this node advertises must be one.
	 */
	config_cluster_dp_addr(config, dp_addr, sizeof(dp_addr));
	if (config->dataplane_enabled && !config_ipv4_port_is_valid(dp_addr))
		config_error_add(errors, "config", 0, "[cluster] advertise_dataplane '%s': "
				 "expected IPV4:PORT, not 0.0.0.0 (the dataplane's redirects "
				 "name this node by it)", dp_addr);
	if (config->cluster_etcd_endpoints[0] == '\0')
		config_error_add(errors, "config", 0, "[cluster] enabled needs etcd_endpoints");
	if (!config_ipv4_port_is_valid(config->cluster_replica_listen))
		config_error_add(errors, "config", 0, "[cluster] replica_listen '%s': expected "
				 "IPV4:PORT (an address other nodes dial, not 0.0.0.0)",
				 config->cluster_replica_listen);
	/* Other nodes forward puts to it (docs/CLUSTER.md): a wildcard would dial themselves. */
	api = config->cluster_advertise_api[0] != '\0' ? config->cluster_advertise_api :
	      config->api_listen;
	if (strncmp(api, "0.0.0.0:", 8) == 0 || strncmp(api, "[::]:", 5) == 0 || api[0] == ':')
		config_error_add(errors, "config", 0, "[cluster] advertise_api: other nodes "
				 "forward puts to this node's API; '%s' is no address they can "
				 "dial (set advertise_api)", api);
}

int
config_validate(const struct sluice_config *config, struct config_errors *errors)
{
	uint32_t errors_before = errors->count;

	if (!config_listen_is_valid(config->api_listen))
		config_error_add(errors, "config", 0, "[server] api_listen '%s': expected ADDR:PORT",
				 config->api_listen);
	else if (config->auth != CONFIG_AUTH_SIGV4 && !config_listen_is_loopback(config->api_listen))
		config_error_add(errors, "config", 0,
				 "[server] api_listen '%s' is not loopback: refusing to serve the "
				 "API to the network without [auth] mode = sigv4", config->api_listen);
	if (config->tls_listen[0] != '\0') {
		if (!config_listen_is_valid(config->tls_listen))
			config_error_add(errors, "config", 0,
					 "[server] tls_listen '%s': expected ADDR:PORT",
					 config->tls_listen);
		else if (config->auth != CONFIG_AUTH_SIGV4 &&
			 !config_listen_is_loopback(config->tls_listen))
			config_error_add(errors, "config", 0,
					 "[server] tls_listen '%s' is not loopback: refusing without "
					 "[auth] mode = sigv4", config->tls_listen);
		if (config->tls_cert[0] == '\0' || config->tls_key[0] == '\0')
			config_error_add(errors, "config", 0,
					 "[server] tls_listen needs tls_cert and tls_key");
	}
	if (config->admin_listen[0] != '\0') {
		if (!config_listen_is_valid(config->admin_listen))
			config_error_add(errors, "config", 0,
					 "[admin] listen '%s': expected ADDR:PORT",
					 config->admin_listen);
		else if (config->admin_token[0] == '\0' && config->auth != CONFIG_AUTH_SIGV4 &&
			 !config_listen_is_loopback(config->admin_listen))
			config_error_add(errors, "config", 0,
					 "[admin] listen '%s' is not loopback: refusing to serve "
					 "metrics and status to the network without [admin] token "
					 "or [auth] mode = sigv4", config->admin_listen);
	}
	enum diag_level level;
	enum diag_format format;

	if (diag_level_parse(config->diag_level, &level) != 0)
		config_error_add(errors, "config", 0, "[server] diag_level '%s': expected debug, "
				 "info, warn or error", config->diag_level);
	if (diag_format_parse(config->diag_format, &format) != 0)
		config_error_add(errors, "config", 0, "[server] diag_format '%s': expected text or "
				 "json", config->diag_format);
	if (config->auth == CONFIG_AUTH_SIGV4 && config->access_keys[0] == '\0')
		config_error_add(errors, "config", 0, "[auth] mode = sigv4 needs access_keys");
	if (strcmp(config->dp_backend, "dpdk") != 0 && strcmp(config->dp_backend, "kernel") != 0)
		config_error_add(errors, "config", 0, "[dataplane] backend '%s': expected dpdk or "
				 "kernel", config->dp_backend);
	if (config->data_dir[0] == '\0')
		config_error_add(errors, "config", 0, "[server] data_dir is empty");
	config_validate_cluster(config, errors);
	return errors->count == errors_before ? 0 : -EINVAL;
}

void
config_errors_print(const struct config_errors *errors, FILE *out)
{
	for (uint32_t i = 0; i < errors->count; i++) {
		const struct config_error *e = &errors->items[i];

		if (e->line > 0)
			fprintf(out, "%s:%d: %s\n", e->file, e->line, e->text);
		else
			fprintf(out, "%s: %s\n", e->file, e->text);
	}
	if (errors->count == CONFIG_ERRORS_MAX)
		fprintf(out, "(further errors not shown)\n");
}

/* Writes `text` as "; " comment lines of at most ~90 columns (libinih reads 200 a line). */
static void
config_comment_print(FILE *out, const char *text)
{
	while (*text != '\0') {
		size_t size = strlen(text);

		if (size > 88) {
			size = 88;
			while (size > 0 && text[size] != ' ')
				size--;
			if (size == 0)
				size = strcspn(text, " ");
		}
		fprintf(out, "; %.*s\n", (int)size, text);
		text += size;
		while (*text == ' ')
			text++;
	}
}

/* The bytes of `key`'s value in `config` (CONFIG_AUTH: the mode; its text follows it). */
static size_t
config_key_bytes(const struct config_key *key)
{
	switch (key->type) {
	case CONFIG_STR:
		return key->size;
	case CONFIG_U32:
		return sizeof(uint32_t);
	case CONFIG_BOOL:
		return sizeof(bool);
	case CONFIG_AUTH:
		return sizeof(enum config_auth);
	}
	return 0;
}

void
config_diff(const struct sluice_config *a, const struct sluice_config *b,
	    void (*fn)(void *arg, const char *section, const char *name, bool live), void *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		const char *x = (const char *)a + k->offset;
		const char *y = (const char *)b + k->offset;
		bool same;

		if (k->type == CONFIG_STR)
			same = strcmp(x, y) == 0;
		else
			same = memcmp(x, y, config_key_bytes(k)) == 0;
		if (!same)
			fn(arg, k->section, k->name, k->live);
	}
}

void
config_copy_live(struct sluice_config *to, const struct sluice_config *from)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		if (!k->live)
			continue;
		memcpy((char *)to + k->offset, (const char *)from + k->offset, config_key_bytes(k));
		if (k->type == CONFIG_AUTH)
			memcpy(to->auth_text, from->auth_text, sizeof(to->auth_text));
	}
}

void
config_ini_print(FILE *out)
{
	char help[CONFIG_STRING_SIZE * 2];

	const char *section = "";

	fprintf(out, "; sluiced configuration (sluiced --config FILE). Every key is shown at its\n"
		     "; default, commented out: uncomment what you change. Reference: CONFIG.md;\n"
		     "; check a change with sluiced --check-config FILE before restarting.\n");
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s]\n", section);
		}
		if (k->type == CONFIG_U32)
			snprintf(help, sizeof(help), "%s (%u .. %u)", k->help, k->min, k->max);
		else
			snprintf(help, sizeof(help), "%s", k->help);
		config_comment_print(out, help);
		fprintf(out, ";%s = %s\n", k->name, k->value);
	}
}

void
config_doc_print(FILE *out)
{
	const char *section = "";

	fprintf(out, "# Configuration reference\n\n"
		     "Generated by `sluiced --print-config-doc` from the key table in "
		     "control/config.c; do not edit by hand.\n\n"
		     "An INI file (`sluiced --config FILE`); any key can also be set with "
		     "`--set section.key=value`. Every key below shows its default.\n\n"
		     "**reload**: `yes` keys take a new value on SIGHUP (`systemctl reload "
		     "sluiced`); a changed `no` key is named in the log as needing a restart "
		     "and keeps its running value until then.\n");
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n## [%s]\n\n| key | default | range | reload | meaning |\n"
				     "|---|---|---|---|---|\n", section);
		}
		fprintf(out, "| `%s` | `%s` | ", k->name, k->value);
		if (k->type == CONFIG_U32)
			fprintf(out, "%u .. %u", k->min, k->max);
		fprintf(out, " | %s | %s |\n", k->live ? "yes" : "no", k->help);
	}
}
