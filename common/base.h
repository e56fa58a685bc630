/*
 * base.h - tiny helpers every folder uses: array size, branch hints, alignment.
 * Nothing else belongs here; a helper with state or I/O is a module of its own.
 */
#ifndef SLUICE_BASE_H
#define SLUICE_BASE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Rounds `value` up to a multiple of `align`, which must be a power of two. */
static inline uint64_t
align_up(uint64_t value, uint64_t align)
{
	assert(align != 0 && (align & (align - 1)) == 0);
	return (value + align - 1) & ~(align - 1);
}

static inline uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t
max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

#endif /* SLUICE_BASE_H */
