/* guard_buf.c - one mapping per thread: GUARD_BUF_SIZE_MAX readable bytes, then a PROT_NONE page. */
#include <assert.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/support/guard_buf.h"

static _Thread_local unsigned char *guard_buf_base;

const void *
guard_buf_place(const void *data, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *dst;

	assert(size <= GUARD_BUF_SIZE_MAX);
	if (guard_buf_base == NULL) {
		void *map = mmap(NULL, GUARD_BUF_SIZE_MAX + page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert(map != MAP_FAILED);
		guard_buf_base = map;
		int rc = mprotect(guard_buf_base + GUARD_BUF_SIZE_MAX, page, PROT_NONE);

		assert(rc == 0);
		(void)rc;
	}
	dst = guard_buf_base + GUARD_BUF_SIZE_MAX - size;
	if (size > 0)
		memcpy(dst, data, size);
	return dst;
}
