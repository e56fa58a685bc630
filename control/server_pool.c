/*
 * server_pool.c - the bounded buffer pool (contract in server_pool.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/server_pool.h"

int
buf_pool_init(struct buf_pool *pool, const size_t *sizes, const uint32_t *counts,
	      uint32_t class_count)
{
	assert(class_count > 0 && class_count <= BUF_POOL_CLASSES);
	memset(pool, 0, sizeof(*pool));
	for (uint32_t i = 0; i < class_count; i++) {
		struct buf_pool_class *c = &pool->classes[i];

		assert(sizes[i] > 0);
		assert(i == 0 || sizes[i] > sizes[i - 1]);
		assert(counts[i] > 0);
		c->size = sizes[i];
		c->count_max = counts[i];
		c->free = calloc(counts[i], sizeof(c->free[0]));
		if (c->free == NULL) {
			pool->class_count = i;
			buf_pool_fini(pool);
			return -ENOMEM;
		}
	}
	pool->class_count = class_count;
	return 0;
}

void
buf_pool_fini(struct buf_pool *pool)
{
	for (uint32_t i = 0; i < pool->class_count; i++) {
		struct buf_pool_class *c = &pool->classes[i];

		for (uint32_t j = 0; j < c->free_count; j++)
			free(c->free[j]);
		free(c->free);
		c->free = NULL;
		c->free_count = 0;
	}
	pool->class_count = 0;
}

void *
buf_pool_get(struct buf_pool *pool, size_t size_min, size_t *size_out)
{
	return buf_pool_get_share(pool, size_min, false, size_out);
}

void *
buf_pool_get_share(struct buf_pool *pool, size_t size_min, bool keep_half, size_t *size_out)
{
	for (uint32_t i = 0; i < pool->class_count; i++) {
		struct buf_pool_class *c = &pool->classes[i];
		uint32_t available = c->free_count + (c->count_max - c->count_allocated);
		void *buf;

		if (c->size < size_min || (keep_half && available <= c->count_max / 2))
			continue;
		if (c->free_count > 0) {
			*size_out = c->size;
			return c->free[--c->free_count];
		}
		if (c->count_allocated == c->count_max)
			continue;
		buf = malloc(c->size);
		if (buf == NULL)
			continue;
		c->count_allocated++;
		*size_out = c->size;
		return buf;
	}
	return NULL;
}

void
buf_pool_put(struct buf_pool *pool, void *buf, size_t size)
{
	for (uint32_t i = 0; i < pool->class_count; i++) {
		struct buf_pool_class *c = &pool->classes[i];

		if (c->size != size)
			continue;
		assert(c->free_count < c->count_allocated);
		c->free[c->free_count++] = buf;
		return;
	}
	assert(false);  /* The size matches no class: not a buffer of this pool. */
}

bool
buf_pool_exhausted(const struct buf_pool *pool)
{
	const struct buf_pool_class *c = &pool->classes[pool->class_count - 1];

	assert(pool->class_count > 0);
	return c->free_count == 0 && c->count_allocated == c->count_max;
}

size_t
buf_pool_size_max(const struct buf_pool *pool)
{
	assert(pool->class_count > 0);
	return pool->classes[pool->class_count - 1].size;
}
