/*
 * tsan_criterion.c - lets Criterion start under ThreadSanitizer (TSan builds only).
 *
 * Criterion's runner (BoxFort, statically inside libcriterion.so) maps its shared "inheritable
 * arena" at a random 16 MiB-aligned address in 0x2000'0000'0000..0x6000'0000'0000, drawn with
 * rand_r() and checked free with mincore(). TSan reserves almost all of that range for its
 * shadow and meta memory (mapped PROT_NONE or noreserve), so ten draws usually all look taken
 * and Criterion aborts ("Could not initialize inheritable arena"), or a draw lands on a TSan
 * range and the runner crashes (Criterion issue #274). The one window TSan leaves to the
 * application there is its PIE range, 0x5500'0000'0000..0x5680'0000'0000 (clang 14's x86_64
 * layout: /proc/self/maps of any TSan program shows it).
 *
 * This file defines rand_r() in the test executable, which wins over libc's for every library:
 * calls made from libcriterion get draws inside that window (BoxFort still checks each page and
 * retries on a collision with the executable's own mapping); every other caller gets libc's
 * rand_r unchanged. Nothing in our code uses rand_r. Linked only when b_sanitize has "thread".
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int rand_r(unsigned int *seedp);

/* BoxFort's constants (src/arena.c): base 0x2000'0000'0000, step 1 << 24, draw & 0x3fffff. */
#define BXF_MMAP_BASE 0x200000000000ull
#define BXF_MMAP_STEP_SHIFT 24
/* TSan's application window inside BoxFort's range, as BoxFort draws (base + draw << 24). */
#define TSAN_APP_LO 0x558000000000ull /* above where a PIE executable is usually loaded */
#define TSAN_APP_HI 0x568000000000ull

static int libc_rand_r(unsigned int *seedp)
{
	int (*real)(unsigned int *) = (int (*)(unsigned int *))dlsym(RTLD_NEXT, "rand_r");

	return real(seedp);
}

static int caller_is_criterion(const void *return_address)
{
	Dl_info info;

	if (dladdr(return_address, &info) == 0 || info.dli_fname == NULL)
		return 0;
	return strstr(info.dli_fname, "libcriterion") != NULL;
}

int rand_r(unsigned int *seedp)
{
	unsigned int lo = (unsigned int)((TSAN_APP_LO - BXF_MMAP_BASE) >> BXF_MMAP_STEP_SHIFT);
	unsigned int hi = (unsigned int)((TSAN_APP_HI - BXF_MMAP_BASE) >> BXF_MMAP_STEP_SHIFT);
	int r = libc_rand_r(seedp);

	if (!caller_is_criterion(__builtin_return_address(0)))
		return r;
	return (int)(lo + (unsigned int)r % (hi - lo));
}
