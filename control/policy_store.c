/*
 * policy_store.c - resource policies by resource: SQLite, a sorted index of
 * which resources have one, and a small cache of compiled policies
 * (contract in policy_store.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/policy_store.h"

/* One resource with a policy; the index is sorted by (stream_id, hash). */
struct policy_key {
	uint32_t stream_id;
	uint64_t hash;
};

struct policy_slot {
	bool valid;
	struct policy_key key;
	char name[POLICY_STORE_NAME_SIZE_MAX + 1];
	uint64_t used_tick;        /* Least recently used is replaced first. */
	struct policy policy;
};

struct policy_store {
	struct metadata *md;
	uint32_t key_count;
	uint64_t tick;
	struct policy_key readd;          /* The key policy_store_delete looks for again. */
	struct policy_key keys[POLICY_STORE_POLICIES_MAX];
	struct policy_slot slots[POLICY_STORE_CACHE_SLOTS];
	char text[POLICY_SIZE_MAX + 1];   /* A document read back from SQLite. */
};

/* FNV-1a: names are short, chosen by the owner account, and a collision is harmless. */
static struct policy_key
policy_key_of(uint32_t stream_id, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return (struct policy_key){ stream_id, h };
}

static int
policy_key_cmp(struct policy_key a, struct policy_key b)
{
	if (a.stream_id != b.stream_id)
		return a.stream_id < b.stream_id ? -1 : 1;
	if (a.hash != b.hash)
		return a.hash < b.hash ? -1 : 1;
	return 0;
}

/* The index of the first key >= `key`; *found when it is equal. */
static uint32_t
policy_key_search(const struct policy_store *ps, struct policy_key key, bool *found)
{
	uint32_t lo = 0;
	uint32_t hi = ps->key_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (policy_key_cmp(ps->keys[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < ps->key_count && policy_key_cmp(ps->keys[lo], key) == 0;
	return lo;
}

/* Adds `key` to the index (already there: nothing). -EDQUOT when full. */
static int
policy_key_add(struct policy_store *ps, struct policy_key key)
{
	bool found;
	uint32_t i = policy_key_search(ps, key, &found);

	if (found)
		return 0;
	if (ps->key_count == POLICY_STORE_POLICIES_MAX)
		return -EDQUOT;
	memmove(&ps->keys[i + 1], &ps->keys[i], (ps->key_count - i) * sizeof(ps->keys[0]));
	ps->keys[i] = key;
	ps->key_count++;
	return 0;
}

/* Removes `key` from the index (policy_store_delete puts it back if still needed). */
static void
policy_key_remove(struct policy_store *ps, struct policy_key key)
{
	bool found;
	uint32_t i = policy_key_search(ps, key, &found);

	if (!found)
		return;
	memmove(&ps->keys[i], &ps->keys[i + 1], (ps->key_count - i - 1) * sizeof(ps->keys[0]));
	ps->key_count--;
}

static int
policy_store_load_one(void *arg, uint32_t stream_id, const char *name)
{
	struct policy_store *ps = arg;

	return policy_key_add(ps, policy_key_of(stream_id, name)) == 0 ? 0 : -E2BIG;
}

int
policy_store_open(struct metadata *md, struct policy_store **out)
{
	struct policy_store *ps = calloc(1, sizeof(*ps));
	int rc;

	if (ps == NULL)
		return -ENOMEM;
	ps->md = md;
	rc = metadata_policies(md, policy_store_load_one, ps);
	if (rc != 0) {
		free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

void
policy_store_close(struct policy_store *ps)
{
	free(ps);
}

static struct policy_slot *
policy_slot_find(struct policy_store *ps, struct policy_key key, const char *name)
{
	for (uint32_t i = 0; i < POLICY_STORE_CACHE_SLOTS; i++) {
		struct policy_slot *slot = &ps->slots[i];

		if (slot->valid && policy_key_cmp(slot->key, key) == 0 &&
		    strcmp(slot->name, name) == 0)
			return slot;
	}
	return NULL;
}

static void
policy_slot_drop(struct policy_store *ps, struct policy_key key, const char *name)
{
	struct policy_slot *slot = policy_slot_find(ps, key, name);

	if (slot != NULL)
		slot->valid = false;
}

static struct policy_slot *
policy_slot_victim(struct policy_store *ps)
{
	struct policy_slot *victim = &ps->slots[0];

	for (uint32_t i = 0; i < POLICY_STORE_CACHE_SLOTS; i++) {
		if (!ps->slots[i].valid)
			return &ps->slots[i];
		if (ps->slots[i].used_tick < victim->used_tick)
			victim = &ps->slots[i];
	}
	return victim;
}

static void
policy_store_full(char *message, size_t message_size)
{
	snprintf(message, message_size, "This appliance holds %u resource policies, its limit",
		 POLICY_STORE_POLICIES_MAX);
}

int
policy_store_put(struct policy_store *ps, uint32_t stream_id, const char *name,
		 const char *json, size_t size, char *message, size_t message_size)
{
	struct policy_key key = policy_key_of(stream_id, name);
	struct policy_slot *slot = policy_slot_victim(ps);
	int rc;

	assert(strlen(name) <= POLICY_STORE_NAME_SIZE_MAX);
	slot->valid = false;
	rc = policy_parse(&slot->policy, json, size, message, message_size);
	if (rc != 0)
		return rc;
	rc = policy_key_add(ps, key);
	if (rc != 0) {
		policy_store_full(message, message_size);
		return rc;
	}
	rc = metadata_policy_put(ps->md, stream_id, name, json, size);
	if (rc != 0) {
		snprintf(message, message_size, "The policy could not be stored");
		return rc;  /* The index may now name a resource without one: harmless. */
	}
	policy_slot_drop(ps, key, name);
	slot->valid = true;
	slot->key = key;
	strcpy(slot->name, name);
	slot->used_tick = ++ps->tick;
	return 0;
}

int
policy_store_check(struct policy_store *ps, uint32_t stream_id, const char *name,
		   const char *json, size_t size, char *message, size_t message_size)
{
	struct policy_slot *slot = policy_slot_victim(ps);
	bool found;
	int rc;

	assert(strlen(name) <= POLICY_STORE_NAME_SIZE_MAX);
	slot->valid = false;   /* Parsed into, never kept: the cache's apply is what stores. */
	rc = policy_parse(&slot->policy, json, size, message, message_size);
	if (rc != 0)
		return rc;
	policy_key_search(ps, policy_key_of(stream_id, name), &found);
	if (!found && ps->key_count == POLICY_STORE_POLICIES_MAX) {
		policy_store_full(message, message_size);
		return -EDQUOT;
	}
	return 0;
}

int
policy_store_reload(struct policy_store *ps)
{
	ps->key_count = 0;
	for (uint32_t i = 0; i < POLICY_STORE_CACHE_SLOTS; i++)
		ps->slots[i].valid = false;
	return metadata_policies(ps->md, policy_store_load_one, ps);
}

static int
policy_store_readd_one(void *arg, uint32_t stream_id, const char *name)
{
	struct policy_store *ps = arg;
	struct policy_key key = policy_key_of(stream_id, name);

	return policy_key_cmp(key, ps->readd) == 0 ? policy_key_add(ps, key) : 0;
}

int
policy_store_delete(struct policy_store *ps, uint32_t stream_id, const char *name)
{
	struct policy_key key = policy_key_of(stream_id, name);
	int rc = metadata_policy_delete(ps->md, stream_id, name);

	if (rc != 0)
		return rc;
	policy_slot_drop(ps, key, name);
	/* Two names of a stream sharing a hash share the entry: keep it if the other remains. */
	policy_key_remove(ps, key);
	ps->readd = key;
	return metadata_policies(ps->md, policy_store_readd_one, ps);
}

int
policy_store_text(struct policy_store *ps, uint32_t stream_id, const char *name, char *out,
		  size_t cap, size_t *size_out)
{
	bool found;

	policy_key_search(ps, policy_key_of(stream_id, name), &found);
	if (!found)
		return -ENOENT;
	return metadata_policy_get(ps->md, stream_id, name, out, cap, size_out);
}

int
policy_store_find(struct policy_store *ps, uint32_t stream_id, const char *name,
		  const struct policy **out)
{
	struct policy_key key = policy_key_of(stream_id, name);
	struct policy_slot *slot;
	char message[POLICY_MESSAGE_SIZE];
	size_t size = 0;
	bool found;
	int rc;

	*out = NULL;
	policy_key_search(ps, key, &found);
	if (!found)
		return 0;
	slot = policy_slot_find(ps, key, name);
	if (slot == NULL) {
		rc = metadata_policy_get(ps->md, stream_id, name, ps->text, sizeof(ps->text),
					 &size);
		if (rc == -ENOENT)
			return 0;  /* Another name with the same hash. */
		if (rc != 0)
			return rc;
		slot = policy_slot_victim(ps);
		slot->valid = false;
		rc = policy_parse(&slot->policy, ps->text, size, message, sizeof(message));
		if (rc != 0)
			return -EINVAL;
		slot->valid = true;
		slot->key = key;
		strcpy(slot->name, name);
	}
	slot->used_tick = ++ps->tick;
	*out = &slot->policy;
	return 0;
}

void
policy_store_forget_stream(struct policy_store *ps, uint32_t stream_id)
{
	bool found;
	uint32_t first = policy_key_search(ps, (struct policy_key){ stream_id, 0 }, &found);
	uint32_t end = first;

	while (end < ps->key_count && ps->keys[end].stream_id == stream_id)
		end++;
	memmove(&ps->keys[first], &ps->keys[end], (ps->key_count - end) * sizeof(ps->keys[0]));
	ps->key_count -= end - first;
	for (uint32_t i = 0; i < POLICY_STORE_CACHE_SLOTS; i++)
		if (ps->slots[i].key.stream_id == stream_id)
			ps->slots[i].valid = false;
}
