/*
 * policy_store.h - the resource policies of streams and consumers, as the
 * Kinesis layer asks for them on every request: stored in SQLite
 * (metadata_policy_*), with an index of which resources have one and a few
 * compiled policies (policy.h) kept for the hot ones. Private to the control
 * module.
 *
 * A resource is (stream_id, name): name "" for the stream itself, else the
 * consumer's name. The index keeps (stream_id, 64-bit hash of name) sorted:
 * a request to a resource without a policy costs one binary search and no
 * SQLite read; a hash collision only costs a read that finds nothing.
 * Compiled policies live in POLICY_STORE_CACHE_SLOTS slots taken at open
 * (least recently used goes); a miss reads SQLite and parses (cJSON allocates
 * there: the one allocation on a request path, only for a policy not cached).
 *
 * Threads: the API server thread only (it owns the metadata connection).
 * Errors: 0 or a negative errno, as listed per function.
 */
#ifndef SLUICE_CONTROL_POLICY_STORE_H
#define SLUICE_CONTROL_POLICY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "control/metadata.h"
#include "control/policy.h"

/* Resources with a policy, appliance-wide (a put beyond it: -EDQUOT, LimitExceededException). */
#define POLICY_STORE_POLICIES_MAX 16384u
/* Compiled policies held at once (each ~50 KiB: struct policy). */
#define POLICY_STORE_CACHE_SLOTS 8u
/* The longest resource name: a consumer name (AWS: 128 characters). */
#define POLICY_STORE_NAME_SIZE_MAX 128u

struct policy_store;

/* Takes the index and the cache, and loads the index from `md`. -ENOMEM, -EIO, -E2BIG. */
int policy_store_open(struct metadata *md, struct policy_store **out);
void policy_store_close(struct policy_store *ps);

/*
 * Validates `json` (policy_parse) and stores it as the resource's policy,
 * replacing any. -EINVAL / -E2BIG: refused, `message` says why (AWS-like);
 * -EDQUOT: POLICY_STORE_POLICIES_MAX reached (message set); -EIO, -ENOSPC from SQLite.
 */
int policy_store_put(struct policy_store *ps, uint32_t stream_id, const char *name,
		     const char *json, size_t size, char *message, size_t message_size);

/*
 * Cluster mode, where etcd stores policies (metadata_cluster_policy_put) and the
 * node's cache writes SQLite: check validates `json` as put would and refuses a new
 * resource past POLICY_STORE_POLICIES_MAX (-EINVAL, -E2BIG, -EDQUOT; message set),
 * storing nothing; reload rebuilds the index from SQLite and drops every compiled
 * policy (after a change another node or this one made). -EIO, -E2BIG.
 */
int policy_store_check(struct policy_store *ps, uint32_t stream_id, const char *name,
		       const char *json, size_t size, char *message, size_t message_size);
int policy_store_reload(struct policy_store *ps);

/* Removes the resource's policy. -ENOENT when it has none. */
int policy_store_delete(struct policy_store *ps, uint32_t stream_id, const char *name);

/* The stored text (NUL-terminated, at most POLICY_SIZE_MAX bytes). -ENOENT when none. */
int policy_store_text(struct policy_store *ps, uint32_t stream_id, const char *name, char *out,
		      size_t cap, size_t *size_out);

/*
 * The compiled policy of the resource in *out, NULL when it has none; valid
 * until the next policy_store_* call. -EIO when SQLite fails; -EINVAL when the
 * stored text no longer parses (never written so: a damaged database).
 */
int policy_store_find(struct policy_store *ps, uint32_t stream_id, const char *name,
		      const struct policy **out);

/* Drops every entry of a deleted stream (SQLite's rows go with metadata_stream_delete). */
void policy_store_forget_stream(struct policy_store *ps, uint32_t stream_id);

#endif /* SLUICE_CONTROL_POLICY_STORE_H */
