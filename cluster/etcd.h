/*
 * etcd.h - cluster/'s etcd v3 client (callers include cluster/cluster.h,
 * the module's one public header, which includes this): over etcd's JSON
 * gateway (HTTP/1.1 POSTs to /v3/..., libcurl + cJSON), the coordination
 * store the cluster stands on (docs/ARCHITECTURE.md, issue "Cluster").
 * There is no maintained C gRPC client for etcd v3; the gateway serves every
 * call the cluster needs: KV with revisions, compare-and-swap transactions,
 * leases, elections and watches.
 *
 * Wire rules the code follows (shared/reference/cluster.md §1.2, verified on
 * etcd 3.4.23): keys, values and election names are base64; every int64
 * (revision, lease id, TTL, version, count) travels as a JSON string and is
 * read with strtoll, never through a double; proto3 omits defaults, so an
 * absent field is 0/false (a failed txn has no "succeeded", an expired
 * lease's keepalive has no "TTL"); errors come as {"error","message","code"}.
 *
 * Calls are synchronous with the client's timeout, on the caller's thread;
 * a client belongs to one thread at a time. With several endpoints (the
 * members of one etcd cluster) a call that cannot connect to one (nothing
 * sent), or reaches one that has no leader (nothing proposed), tries the next,
 * each at most once; a call that times out returns -ETIMEDOUT, one whose
 * connection broke after sending -ECONNRESET, and the next call goes to the next
 * endpoint (a campaign's timeout is an answer: it stays). Neither is repeated: a
 * put/txn may have been applied (use a compare in a txn when that matters; the
 * caller's retry is a new call). The
 * client stays on the endpoint that answered. Each move is logged and counted
 * (etcd_failovers()).
 *
 * Errors (negative errno): -ECONNREFUSED no endpoint reachable; -ETIMEDOUT;
 * -ECONNRESET the connection broke after the request was sent (it may be applied);
 * -ENOENT lease or election leader not found; -ERANGE the revision asked for
 * was compacted; -ENOSPC the store is out of quota (NOSPACE alarm);
 * -E2BIG request too large; -EPROTO an answer that cannot be read; -EIO any
 * other error from etcd; -ENOMEM.
 */
#ifndef SLUICE_ETCD_H
#define SLUICE_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Endpoints of one client (comma-separated http://host:port in etcd_open). */
#define ETCD_ENDPOINTS_MAX 8
/* etcd's limits: 1.5 MiB per request after base64 decoding, 128 ops per txn. */
#define ETCD_REQUEST_SIZE_MAX 1572864u
#define ETCD_TXN_OPS_MAX 128u
/* An answer larger than this is refused (-E2BIG): a range that big wants paging. */
#define ETCD_RESPONSE_SIZE_MAX (64u << 20)

struct etcd_client;

/*
 * endpoints: "http://127.0.0.1:12379,http://127.0.0.1:22379"; timeout_ms
 * bounds every call (connect included). -EINVAL for a bad list, -ENOMEM.
 * Does not connect: the first call does.
 */
int etcd_open(const char *endpoints, uint32_t timeout_ms, struct etcd_client **client_out);
void etcd_close(struct etcd_client *client);
/* The URL the client's calls go to now; any thread may ask (metrics). */
const char *etcd_current_endpoint(const struct etcd_client *client);
/* Moves to another endpoint so far, by every client and watch of the process. */
uint64_t etcd_failovers(void);

/* One key-value pair of a range answer. key and value are NUL-terminated copies. */
struct etcd_kv {
	char *key;
	size_t key_size;
	uint8_t *value;
	size_t value_size;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
};

struct etcd_range {
	struct etcd_kv *kvs;
	uint32_t count;            /* kvs[] entries. */
	int64_t revision;          /* The store's revision the answer reflects. */
	bool more;                 /* A limit cut the answer short. */
};

void etcd_range_free(struct etcd_range *range);

/* Puts key = value (with `lease`, 0 for none); *revision_out (may be NULL) is the put's. */
int etcd_put(struct etcd_client *client, const char *key, const void *value, size_t value_size,
	     int64_t lease, int64_t *revision_out);
/* The key, or every key starting with it when `prefix`; limit 0: all. Free with etcd_range_free. */
int etcd_get(struct etcd_client *client, const char *key, bool prefix, uint32_t limit,
	     struct etcd_range *range_out);
/* Deletes the key (or the prefix); *deleted_out (may be NULL) counts the keys removed. */
int etcd_delete(struct etcd_client *client, const char *key, bool prefix, int64_t *deleted_out);

/* ---- Transactions: if every compare holds, the success ops, else the failure ops. */

enum etcd_target {
	ETCD_TARGET_VERSION,       /* Number of puts since creation; 0: absent. */
	ETCD_TARGET_CREATE,        /* create_revision */
	ETCD_TARGET_MOD,           /* mod_revision: the usual compare-and-swap. */
	ETCD_TARGET_VALUE,
};

enum etcd_result {
	ETCD_EQUAL,
	ETCD_GREATER,
	ETCD_LESS,
	ETCD_NOT_EQUAL,
};

struct etcd_compare {
	const char *key;
	enum etcd_target target;
	enum etcd_result result;
	int64_t number;            /* VERSION, CREATE, MOD. */
	const void *value;         /* VALUE */
	size_t value_size;
	/*
	 * Every key starting with `key` must hold (etcd's range_end; an empty range
	 * compares as one absent key: version, revisions 0; VALUE fails).
	 */
	bool prefix;
};

enum etcd_op_kind {
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
	ETCD_OP_GET,               /* Its result is not returned: read after, or compare. */
};

struct etcd_op {
	enum etcd_op_kind kind;
	const char *key;
	const void *value;
	size_t value_size;
	int64_t lease;
	bool prefix;               /* DELETE: every key starting with `key`. */
};

/*
 * Runs the transaction; *succeeded_out tells which branch ran and
 * *revision_out (may be NULL) the store's revision after it. -EINVAL for
 * more than ETCD_TXN_OPS_MAX ops in a branch.
 */
int etcd_txn(struct etcd_client *client, const struct etcd_compare *compares, uint32_t compare_count,
	     const struct etcd_op *success, uint32_t success_count, const struct etcd_op *failure,
	     uint32_t failure_count, bool *succeeded_out, int64_t *revision_out);

/* ---- Leases: keys put with a lease go when it expires. */

/* Grants a lease of ttl_s seconds (etcd raises 1 to 2); its id and granted TTL. */
int etcd_lease_grant(struct etcd_client *client, int64_t ttl_s, int64_t *id_out,
		     int64_t *ttl_out);
/* Renews it (call every TTL/3); *ttl_out the renewed TTL. -ENOENT once it expired. */
int etcd_lease_keepalive(struct etcd_client *client, int64_t id, int64_t *ttl_out);
/* Revokes it (its keys go at once). -ENOENT when it no longer exists. */
int etcd_lease_revoke(struct etcd_client *client, int64_t id);

/* ---- Elections (etcd's election API): one leader per name, held by a lease. */

struct etcd_leader {
	char name[256];            /* The election. */
	char key[320];             /* The leader's candidate key: name/ + hex lease id. */
	int64_t rev;               /* Its create_revision: the leader epoch, a fencing token. */
	int64_t lease;
	uint8_t value[256];
	size_t value_size;
};

/*
 * Campaigns for `name` with `lease` and `value` (<= 256 bytes), waiting up
 * to wait_ms (which may exceed the client's timeout) to become leader.
 * -ETIMEDOUT when another stayed leader; the candidacy then ends with the
 * request (etcd 3.4 removes a candidate whose call was abandoned).
 */
int etcd_campaign(struct etcd_client *client, const char *name, int64_t lease,
		  const void *value, size_t value_size, uint32_t wait_ms,
		  struct etcd_leader *leader_out);
/* The current leader of `name`; -ENOENT when there is none. */
int etcd_leader(struct etcd_client *client, const char *name, struct etcd_leader *leader_out);
/* Gives up leadership (the next candidate takes over). */
int etcd_resign(struct etcd_client *client, const struct etcd_leader *leader);

/* Compacts the store's history up to `revision` (older revisions can no longer be read or watched). */
int etcd_compact(struct etcd_client *client, int64_t revision);

/* ---- Watches: the changes to a key or prefix, in revision order, as a stream. */

struct etcd_watch;

struct etcd_event {
	bool deleted;              /* A delete (kv holds the key and its mod_revision); else a put. */
	struct etcd_kv kv;
};

/*
 * Opens a watch on one endpoint of the list (the first that answers):
 * changes from start_revision (0: from now on). The stream asks for the
 * leader's presence, so a member cut off from its leader ends it rather
 * than going silent (cluster.md pitfall 4). A stream that ends, or is not
 * created in time, before etcd created the watch (the member down, stopped or
 * without a leader) is asked again of the next endpoint, each once, within
 * etcd_watch_next(); a created one that is silent has its member probed and
 * ends when that does not answer. An end after creation is the caller's
 * -ECONNRESET (it reopens: the list is tried from the first again).
 */
int etcd_watch_open(const char *endpoints, const char *key, bool prefix, int64_t start_revision,
		    struct etcd_watch **watch_out);
/*
 * Waits up to timeout_ms for the next events. Returns how many (0: none in
 * time), *events_out valid until the next call. -ERANGE: start_revision was
 * compacted (read the state again, then watch from its revision);
 * -ECONNRESET: the stream ended (reopen from the last revision seen + 1);
 * -EPROTO, -ENOMEM.
 */
int etcd_watch_next(struct etcd_watch *watch, uint32_t timeout_ms,
		    const struct etcd_event **events_out);
void etcd_watch_close(struct etcd_watch *watch);

#endif /* SLUICE_ETCD_H */
