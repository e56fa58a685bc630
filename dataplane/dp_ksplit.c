/*
 * dp_ksplit.c - cuts a TCP byte stream into record frames (dp_ksplit.h).
 *
 * Two places a frame can be: whole in the fed bytes (handed over there), or
 * assembled in the borrowed assembly buffer. Only the bytes a frame needs are
 * copied into assembly (frame_next() says how many), so what follows a frame
 * in the fed bytes is cut from there again, without a copy.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "dataplane/dp_ksplit.h"
#include "protocol/frame.h"

void
dp_ksplit_init(struct dp_ksplit *s, uint32_t asm_size)
{
	assert(asm_size >= FRAME_HEADER_SIZE);
	memset(s, 0, sizeof(*s));
	s->asm_size = asm_size;
}

void
dp_ksplit_reset(struct dp_ksplit *s, const struct dp_ksplit_ops *ops, void *ctx)
{
	if (s->asm_buf != NULL)
		ops->put_asm(ctx, s->asm_buf);
	s->asm_buf = NULL;
	s->asm_used = 0;
}

/* How a frame_next() verdict on `size` bytes turns into "need more", "whole" or an error. */
static int
dp_ksplit_need(const struct dp_ksplit *s, const uint8_t *bytes, uint32_t size,
	       uint32_t *frame_size, uint32_t *need)
{
	enum frame_err err = frame_next(bytes, size, frame_size, need);

	/* One bound wherever the frame lies: whole in a receive buffer or not. */
	if (err == FRAME_OK)
		return *frame_size <= s->asm_size ? 0 : -EMSGSIZE;
	if (err != FRAME_ERR_TRUNCATED)
		return -EPROTO;
	if ((uint64_t)size + *need > s->asm_size)
		return -EMSGSIZE;
	return -EAGAIN;
}

/*
 * Assembly in progress: copies what the frame still needs from bytes, and
 * hands the frame over once whole and taken. Returns 0 when the frame went
 * (assembly is empty again), -EAGAIN when it is still short or not taken
 * (*used says what was copied), or an error.
 */
static int
dp_ksplit_assemble(struct dp_ksplit *s, const uint8_t *bytes, uint32_t size,
		   const struct dp_ksplit_ops *ops, void *ctx, uint32_t *used)
{
	*used = 0;
	for (;;) {
		uint32_t frame_size;
		uint32_t need;
		int rc = dp_ksplit_need(s, s->asm_buf, s->asm_used, &frame_size, &need);

		if (rc == 0)
			break;
		if (rc != -EAGAIN || *used == size)
			return rc;
		need = need < size - *used ? need : size - *used;
		memcpy(s->asm_buf + s->asm_used, bytes + *used, need);
		s->asm_used += need;
		*used += need;
	}
	if (!ops->can_take(ctx))
		return -EAGAIN;
	ops->frame(ctx, s->asm_buf, s->asm_used, true);
	dp_ksplit_reset(s, ops, ctx);
	return 0;
}

bool
dp_ksplit_holds_frame(const struct dp_ksplit *s)
{
	uint32_t frame_size;
	uint32_t need;

	return s->asm_buf != NULL &&
	       frame_next(s->asm_buf, s->asm_used, &frame_size, &need) == FRAME_OK;
}

int
dp_ksplit_feed(struct dp_ksplit *s, const uint8_t *bytes, uint32_t size,
	       const struct dp_ksplit_ops *ops, void *ctx, uint32_t *consumed_out)
{
	uint32_t off = 0;
	int rc = 0;

	while (rc == 0) {
		uint32_t frame_size;
		uint32_t need;
		uint32_t used;

		if (s->asm_buf != NULL) {
			rc = dp_ksplit_assemble(s, bytes + off, size - off, ops, ctx, &used);
			off += used;
			continue;
		}
		if (off == size)
			break;
		rc = dp_ksplit_need(s, bytes + off, size - off, &frame_size, &need);
		if (rc == 0) {
			if (!ops->can_take(ctx))
				break;
			ops->frame(ctx, bytes + off, frame_size, false);
			off += frame_size;
		} else if (rc == -EAGAIN) {
			/* The tail is a frame's beginning: it waits in assembly. */
			s->asm_buf = ops->take_asm(ctx);
			if (s->asm_buf == NULL)
				break;
			memcpy(s->asm_buf, bytes + off, size - off);
			s->asm_used = size - off;
			off = size;
			rc = 0;
		}
	}
	*consumed_out = off;
	return rc == -EAGAIN ? 0 : rc;
}
