/*
 * dp_ksplit.h - the kernel backend's TCP frame splitter (private to
 * dataplane/): a connection's byte stream, as the kernel hands it over in
 * receive buffers, cut into whole record frames (docs/PROTOCOL.md section 6).
 *
 * A frame that lies whole inside one receive buffer is handed over where it
 * lies (no copy). A frame that spans buffers is assembled in an assembly
 * buffer the caller lends (take_asm), at most `asm_size` bytes: a larger
 * frame is an error, as is a stream that is not framed. Before each frame the
 * splitter asks can_take(): "no" stops it where it is (back-pressure: the
 * caller keeps the unconsumed bytes and stops receiving on the connection),
 * and the next dp_ksplit_feed() resumes there.
 *
 * Pure: no I/O, no allocation; the caller owns every buffer.
 */
#ifndef SLUICE_DP_KSPLIT_H
#define SLUICE_DP_KSPLIT_H

#include <stdbool.h>
#include <stdint.h>

struct dp_ksplit_ops {
	/* Room for one more frame (ingest and the connection's answer reservation). */
	bool (*can_take)(void *ctx);
	/*
	 * One whole frame. `assembled`: it lies in the assembly buffer, which
	 * the splitter reuses after this call returns (the caller must be done
	 * with it, or copy it); otherwise it lies in the fed bytes.
	 */
	void (*frame)(void *ctx, const uint8_t *frame, uint32_t size, bool assembled);
	/* An assembly buffer of asm_size bytes, or NULL when none is free now. */
	uint8_t *(*take_asm)(void *ctx);
	void (*put_asm)(void *ctx, uint8_t *buffer);
};

struct dp_ksplit {
	uint8_t *asm_buf;           /* NULL unless a frame spans receive buffers. */
	uint32_t asm_used;          /* Bytes of that frame assembled so far. */
	uint32_t asm_size;          /* Capacity of an assembly buffer: the largest frame. */
};

void dp_ksplit_init(struct dp_ksplit *s, uint32_t asm_size);

/*
 * Cuts bytes[0 .. size) into frames. Returns 0 and the bytes consumed in
 * *consumed_out (fewer than `size` only when can_take() said no or no
 * assembly buffer was free: feed the rest later; size 0 retries a frame
 * assembled whole but not yet taken), -EPROTO when the stream is not framed,
 * or -EMSGSIZE when a frame is larger than asm_size. After an error the
 * connection must be closed (dp_ksplit_reset).
 */
int dp_ksplit_feed(struct dp_ksplit *s, const uint8_t *bytes, uint32_t size,
		   const struct dp_ksplit_ops *ops, void *ctx, uint32_t *consumed_out);

/* A partial frame is waiting for more bytes (or a whole one for can_take). */
static inline bool
dp_ksplit_is_partial(const struct dp_ksplit *s)
{
	return s->asm_buf != NULL;
}

/*
 * A whole frame waits in assembly for can_take(): the caller must feed again
 * (size 0 will do) once there is room, even if no byte more arrives.
 */
bool dp_ksplit_holds_frame(const struct dp_ksplit *s);

/* Gives the assembly buffer back (connection closed). */
void dp_ksplit_reset(struct dp_ksplit *s, const struct dp_ksplit_ops *ops, void *ctx);

#endif /* SLUICE_DP_KSPLIT_H */
