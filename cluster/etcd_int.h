/*
 * etcd_int.h - what cluster/etcd.c (unary calls) and cluster/etcd_watch.c
 * (streams) share: the endpoint list and the gateway's JSON encoding.
 * Private to cluster/ (and its tests).
 */
#ifndef SLUICE_ETCD_INT_H
#define SLUICE_ETCD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cluster/etcd.h"

#define ETCD_URL_SIZE 256

struct etcd_endpoints {
	char urls[ETCD_ENDPOINTS_MAX][ETCD_URL_SIZE];
	uint32_t count;
};

/* curl_global_init once (from the thread that opens clients at start). */
int etcd_curl_init_once(void);
/* "http://a:1,http://b:2" into ep; -EINVAL for an empty, over-long or scheme-less entry. */
int etcd_endpoints_parse(struct etcd_endpoints *ep, const char *endpoints);

/* Counts and logs a move from one endpoint to the next, and why. */
void etcd_failover_note(const char *from, const char *to, const char *why);

/* Adds `name` as base64 of size bytes; false when out of memory. */
bool etcd_add_bytes(cJSON *obj, const char *name, const void *data, size_t size);
/* Adds an int64 as a string (a double would round it). */
bool etcd_add_int64(cJSON *obj, const char *name, int64_t value);
/* Reads int64 `name` (absent: 0, proto3 omits defaults); false when not a number string. */
bool etcd_get_int64(const cJSON *obj, const char *name, int64_t *out);
/* key, and with `prefix` range_end = key with its last byte + 1 ("": every key). */
bool etcd_add_key_range(cJSON *obj, const char *key, bool prefix);
/* One kv object of an answer into *kv (malloc'd key and value: free them, also on error). */
int etcd_kv_read(const cJSON *item, struct etcd_kv *kv);

#endif /* SLUICE_ETCD_INT_H */
