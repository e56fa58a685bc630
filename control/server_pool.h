/*
 * server_pool.h - bounded buffer pool of the API server, and the output-buffer
 * helpers the server needs beyond api.h. Private to the server files.
 *
 * Buffers come in a few size classes, each with a fixed maximum count set at
 * open: memory is bounded by sum(size x count) however many connections and
 * calls there are. A buffer is allocated the first time its class needs one
 * and recycled through the class's free list afterwards, so a warmed-up
 * server does not allocate. A class that is exhausted makes the caller fall
 * back to a larger class, then fail (the caller answers 503 or waits).
 *
 * Threads: a pool belongs to the server thread.
 */
#ifndef SLUICE_CONTROL_SERVER_POOL_H
#define SLUICE_CONTROL_SERVER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/api.h"

#define BUF_POOL_CLASSES 4

struct buf_pool_class {
	size_t size;
	uint32_t count_max;       /* Buffers of this class that may exist at once. */
	uint32_t count_allocated; /* Allocated so far (in use + free). */
	uint32_t free_count;
	void **free;              /* count_max slots. */
};

struct buf_pool {
	struct buf_pool_class classes[BUF_POOL_CLASSES];
	uint32_t class_count;
};

/*
 * Sets up `class_count` classes, sizes strictly increasing. Allocates only
 * the free-list arrays. Returns 0 or -ENOMEM.
 */
int buf_pool_init(struct buf_pool *pool, const size_t *sizes, const uint32_t *counts,
		  uint32_t class_count);
/* Frees every buffer on the free lists. Buffers still out are the caller's leak. */
void buf_pool_fini(struct buf_pool *pool);
/*
 * A buffer of at least `size_min` bytes from the smallest class that has one
 * (its real size in *size_out), or NULL when every fitting class is exhausted.
 */
void *buf_pool_get(struct buf_pool *pool, size_t size_min, size_t *size_out);
/*
 * As buf_pool_get(); with keep_half, only from a class that still has more than half of
 * its buffers to hand out (requests not yet authenticated take that half at most).
 */
void *buf_pool_get_share(struct buf_pool *pool, size_t size_min, bool keep_half,
			 size_t *size_out);
/* Returns a buffer; `size` is what buf_pool_get() reported for it. */
void buf_pool_put(struct buf_pool *pool, void *buf, size_t size);
/* True when the largest class has no buffer left to hand out (all in use). */
bool buf_pool_exhausted(const struct buf_pool *pool);
/* Largest buffer this pool can ever hand out. */
size_t buf_pool_size_max(const struct buf_pool *pool);

/*
 * Output buffers grow from the pool set for this thread (the server thread
 * sets its own); with none set they grow with realloc (tests, tools).
 */
void buf_pool_thread_set(struct buf_pool *pool);

/* An empty output buffer that may grow to `capacity_max` bytes. */
void api_out_init(struct api_out *out, size_t capacity_max);
/* Drops the contents (and the overflow mark) but keeps the buffer. */
void api_out_reset(struct api_out *out);
/* Gives the buffer back (to the pool or to free()); the out is empty afterwards. */
void api_out_release(struct api_out *out);
/* Appends `size` uninitialised bytes and returns them, or NULL (overflow set). */
void *api_out_extend(struct api_out *out, size_t size);
/* Appends a JSON string's characters, escaped as api_out_json_string(), no quotes. */
void api_out_json_chars(struct api_out *out, const char *text, size_t size);

#endif /* SLUICE_CONTROL_SERVER_POOL_H */
