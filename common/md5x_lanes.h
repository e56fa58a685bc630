/*
 * md5x_lanes.h - the body of one multi-lane MD5 kernel, included by md5x.c
 * once per vector width (private to md5x.c; no include guard on purpose).
 *
 * Before including, md5x.c defines MD5X_N (lanes), MD5X_V (a GCC vector of
 * MD5X_N uint32_t), MD5X_FN (the function's name) and MD5X_TARGET (its ISA).
 * Each lane runs the MD5 compression of its own message; a lane whose
 * message has fewer blocks than the longest keeps its state (masked add).
 */
__attribute__((target(MD5X_TARGET))) static void
MD5X_FN(const uint8_t *const messages[], const uint32_t sizes[], uint32_t count,
	uint8_t digests_out[][16])
{
	const MD5X_V zero = { 0 };
	MD5X_V a = zero + 0x67452301u;
	MD5X_V b = zero + 0xefcdab89u;
	MD5X_V c = zero + 0x98badcfeu;
	MD5X_V d = zero + 0x10325476u;
	uint32_t blocks[MD5X_N] = { 0 };
	uint32_t blocks_max = 0;

	assert(count >= 1 && count <= MD5X_N);
	for (uint32_t l = 0; l < count; l++) {
		blocks[l] = md5x_block_count(sizes[l]);
		blocks_max = blocks[l] > blocks_max ? blocks[l] : blocks_max;
	}
	for (uint32_t block = 0; block < blocks_max; block++) {
		uint32_t words[16][MD5X_N] __attribute__((aligned(64)));
		uint32_t active[MD5X_N] __attribute__((aligned(64)));
		MD5X_V m[16];
		MD5X_V act;
		MD5X_V aa = a, bb = b, cc = c, dd = d;

		for (uint32_t l = 0; l < MD5X_N; l++) {
			uint8_t buf[64];

			active[l] = block < blocks[l] ? UINT32_MAX : 0;
			if (active[l] == 0) {
				for (uint32_t j = 0; j < 16; j++)
					words[j][l] = 0;
				continue;
			}
			md5x_block_fill(messages[l], sizes[l], block, buf);
			for (uint32_t j = 0; j < 16; j++)
				memcpy(&words[j][l], buf + 4 * j, 4); /* Little-endian: x86 only. */
			if (block + 1 == blocks[l]) {
				/* The last block ends with the bit length (< 2^64). */
				words[14][l] = sizes[l] << 3;
				words[15][l] = sizes[l] >> 29;
			}
		}
		memcpy(m, words, sizeof(m));
		memcpy(&act, active, sizeof(act));
		MD5X_ROUNDS(aa, bb, cc, dd, m);
		a += aa & act;
		b += bb & act;
		c += cc & act;
		d += dd & act;
	}
	for (uint32_t l = 0; l < count; l++) {
		uint32_t state[4] = { a[l], b[l], c[l], d[l] };

		memcpy(digests_out[l], state, 16); /* MD5's digest is little-endian: x86 order. */
	}
}
