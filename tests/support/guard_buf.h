/*
 * guard_buf.h - places bytes flush against a PROT_NONE page, so a decoder that
 * reads one byte past its span crashes the test instead of passing silently.
 */
#ifndef SLUICE_TEST_GUARD_BUF_H
#define SLUICE_TEST_GUARD_BUF_H

#include <stddef.h>

/* Largest span guard_buf_place() accepts. */
#define GUARD_BUF_SIZE_MAX (4u * 1024u * 1024u)

/*
 * Copies `size` bytes of `data` so that they end exactly at a guard page and
 * returns the copy. The copy stays valid until the next call in this thread.
 */
const void *guard_buf_place(const void *data, size_t size);

#endif /* SLUICE_TEST_GUARD_BUF_H */
