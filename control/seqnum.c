/*
 * seqnum.c - the sequence-number codec (layout in seqnum.h). Numbers are at
 * most 188 bits, held as three 64-bit limbs, least significant first.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "control/seqnum.h"

#define SEQNUM_HEX_DIGITS 47
#define SEQNUM_LIMBS 3

__extension__ typedef unsigned __int128 seqnum_u128;

struct seqnum_big {
	uint64_t limb[SEQNUM_LIMBS];
};

static void
seqnum_big_or(struct seqnum_big *big, uint64_t value, unsigned shift)
{
	unsigned limb = shift / 64;
	unsigned off = shift % 64;

	big->limb[limb] |= value << off;
	if (off != 0 && limb + 1 < SEQNUM_LIMBS)
		big->limb[limb + 1] |= value >> (64 - off);
}

static uint64_t
seqnum_get(const char hex[SEQNUM_HEX_DIGITS], unsigned at, unsigned digits)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < digits; i++) {
		char c = hex[at + i];

		value = (value << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return value;
}

/*
 * Decimal digits of `big`, least significant first, into `rev`; returns the
 * count. Works on 32-bit halves and divides by 10^9, so every division is a
 * 64-by-32-bit one the compiler turns into a multiplication (this runs for
 * every record GetRecords returns).
 */
static size_t
seqnum_big_decimal(const struct seqnum_big *big, char rev[SEQNUM_DECIMAL_SIZE])
{
	uint32_t half[SEQNUM_LIMBS * 2];
	int top = SEQNUM_LIMBS * 2 - 1;
	size_t n = 0;

	for (int i = 0; i < SEQNUM_LIMBS; i++) {
		half[2 * i] = (uint32_t)big->limb[i];
		half[2 * i + 1] = (uint32_t)(big->limb[i] >> 32);
	}
	for (;;) {
		uint64_t rem = 0;

		while (top > 0 && half[top] == 0)
			top--;
		for (int i = top; i >= 0; i--) {
			uint64_t cur = rem << 32 | half[i];

			half[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
		}
		bool last = top == 0 && half[0] == 0;

		for (int d = 0; d < 9 && (!last || rem != 0 || n == 0); d++) {
			rev[n++] = (char)('0' + rem % 10);
			rem /= 10;
		}
		if (last)
			return n;
	}
}

size_t
seqnum_format(const struct seqnum *sn, char buf[SEQNUM_DECIMAL_SIZE])
{
	char rev[SEQNUM_DECIMAL_SIZE];
	struct seqnum_big big = { { 0, 0, 0 } };
	size_t n = 0;

	assert(sn->shard_created_s <= SEQNUM_TIME_MAX);
	assert(sn->put_s <= SEQNUM_TIME_MAX);
	assert(sn->seq <= SEQNUM_SEQ_MAX);
	/* Bit positions from the least significant end: hex digit d covers 4 * (46 - d). */
	seqnum_big_or(&big, 2, 0);
	seqnum_big_or(&big, sn->shard_index, 4);
	seqnum_big_or(&big, sn->put_s, 36);
	seqnum_big_or(&big, sn->seq, 80);
	seqnum_big_or(&big, sn->shard_index & 0xf, 144);
	seqnum_big_or(&big, sn->shard_created_s, 148);
	seqnum_big_or(&big, 2, 184);
	n = seqnum_big_decimal(&big, rev);
	for (size_t i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	buf[n] = '\0';
	return n;
}

size_t
seqnum_format_next(const struct seqnum *prev, const char *prev_text, size_t prev_size,
		   const struct seqnum *sn, char buf[SEQNUM_DECIMAL_SIZE])
{
	/* 2^80: one step of seq, which sits at bit 80. */
	static const char step[] = "1208925819614629174706176";
	size_t step_size = sizeof(step) - 1;
	unsigned carry = 0;

	if (prev == NULL || prev->shard_created_s != sn->shard_created_s ||
	    prev->shard_index != sn->shard_index || prev->put_s != sn->put_s ||
	    prev->seq + 1 != sn->seq || prev_size < step_size ||
	    prev_size >= SEQNUM_DECIMAL_SIZE - 1)
		return seqnum_format(sn, buf);
	/* Right-aligned addition over the 25 low digits, then only as far as the carry goes. */
	if (buf != prev_text)
		memcpy(buf, prev_text, prev_size);
	buf[prev_size] = '\0';
	for (size_t i = 0; i < prev_size && (i < step_size || carry != 0); i++) {
		size_t pos = prev_size - 1 - i;
		unsigned d = (unsigned)(buf[pos] - '0') + carry;

		if (i < step_size)
			d += (unsigned)(step[step_size - 1 - i] - '0');
		carry = d >= 10;
		buf[pos] = (char)('0' + (carry != 0 ? d - 10 : d));
	}
	if (carry != 0) {
		memmove(buf + 1, buf, prev_size + 1);
		buf[0] = '1';
		return prev_size + 1;
	}
	return prev_size;
}

/* big = big * 10 + digit; false when the result would not fit 188 bits. */
static bool
seqnum_big_push_digit(struct seqnum_big *big, unsigned digit)
{
	seqnum_u128 carry = digit;

	for (int i = 0; i < SEQNUM_LIMBS; i++) {
		seqnum_u128 cur = (seqnum_u128)big->limb[i] * 10 + carry;

		big->limb[i] = (uint64_t)cur;
		carry = cur >> 64;
	}
	return carry == 0 && (big->limb[2] >> (SEQNUM_HEX_DIGITS * 4 - 128)) == 0;
}

/* The 47 hex digits of `big`, zero-padded. */
static void
seqnum_hex(const struct seqnum_big *big, char hex[SEQNUM_HEX_DIGITS])
{
	static const char xdigits[] = "0123456789abcdef";

	for (unsigned i = 0; i < SEQNUM_HEX_DIGITS; i++) {
		unsigned bit = (SEQNUM_HEX_DIGITS - 1 - i) * 4;

		hex[i] = xdigits[(big->limb[bit / 64] >> (bit % 64)) & 0xf];
	}
}

/* The decimal text as a number below 2^188; -EINVAL if it is none. */
static int
seqnum_read(const char *text, size_t size, struct seqnum_big *big)
{
	*big = (struct seqnum_big){ { 0, 0, 0 } };
	if (size == 0 || size > SEQNUM_DECIMAL_SIZE - 1 || (text[0] == '0' && size > 1))
		return -EINVAL;
	for (size_t i = 0; i < size; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		if (!seqnum_big_push_digit(big, (unsigned)(text[i] - '0')))
			return -EINVAL;
	}
	return 0;
}

int
seqnum_parse(const char *text, size_t size, struct seqnum *sn_out)
{
	struct seqnum_big big;
	char hex[SEQNUM_HEX_DIGITS];
	struct seqnum sn;

	if (seqnum_read(text, size, &big) != 0)
		return -EINVAL;
	seqnum_hex(&big, hex);
	if (hex[0] != '2' || hex[46] != '2' || seqnum_get(hex, 27, 2) != 0 || hex[11] > '7')
		return -EINVAL;
	sn.shard_created_s = seqnum_get(hex, 1, 9);
	sn.shard_index = (uint32_t)seqnum_get(hex, 38, 8);
	sn.seq = seqnum_get(hex, 11, 16);
	sn.put_s = seqnum_get(hex, 29, 9);
	if (seqnum_get(hex, 10, 1) != (sn.shard_index & 0xf))
		return -EINVAL;
	*sn_out = sn;
	return 0;
}

/* Version 0: 32 or 33 hex digits, "1", 9 created, 2, 16, 4 shard index. */
static int
seqnum_client_v0(const char *hex, struct seqnum_client *c)
{
	c->shard_created_s = seqnum_get(hex, 1, 9);
	if (c->shard_created_s >= SEQNUM_V0_CREATED_MAX)
		return -EINVAL;
	c->shard_index = (uint32_t)seqnum_get(hex, 28, 4);
	return 0;
}

int
seqnum_parse_client(const char *text, size_t size, struct seqnum_client *c)
{
	const uint64_t top_min = 1ull << 57;   /* 2^185, in the top limb (bits 128..191) */
	const uint64_t top_end = 3ull << 56;   /* 1.5 * 2^185 */
	struct seqnum_big big;
	char hex[SEQNUM_HEX_DIGITS];

	*c = (struct seqnum_client){ .version = -1 };
	if (seqnum_read(text, size, &big) != 0)
		return -EINVAL;
	/* Below 2^124: 2^124 is added (that bit is clear, so setting it adds). */
	if (big.limb[2] == 0 && big.limb[1] < (1ull << 60))
		big.limb[1] |= 1ull << 60;
	seqnum_hex(&big, hex);
	if (big.limb[2] <= 1) {
		/* Below 2^129: 32 hex digits, or 33 from 2^128 on, read without the padding. */
		c->version = 0;
		return seqnum_client_v0(hex + SEQNUM_HEX_DIGITS - (big.limb[2] == 0 ? 32 : 33), c);
	}
	if (big.limb[2] < top_min || big.limb[2] >= top_end ||
	    (big.limb[2] == top_min && big.limb[1] == 0 && big.limb[0] == 0))
		return -EINVAL;
	c->version = (int)seqnum_get(hex, 46, 1);
	c->shard_created_s = seqnum_get(hex, 1, 9);
	c->shard_index = (uint32_t)seqnum_get(hex, 38, 8);
	if (c->version == 1) {
		c->put_s = seqnum_get(hex, 13, 9);
		return 0;
	}
	if (c->version != 2)
		return c->version == 3 ? -ERANGE : -EINVAL;
	if (hex[11] > '7' || hex[38] > '7')
		return -EINVAL;
	c->seq = seqnum_get(hex, 11, 16);
	c->put_s = seqnum_get(hex, 29, 9);
	return 0;
}
