/*
 * frame_ack.c - ACK and NACK frames. The encoder applies the decoder's rules
 * before writing, so the dataplane cannot emit a frame producers refuse.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol/frame.h"
#include "protocol/frame_int.h"

void
frame_ack_run_get(const struct frame_ack *ack, uint16_t index, struct frame_ack_run *run_out)
{
	assert(index < ack->run_count);
	if (ack->runs != NULL) {
		*run_out = ack->runs[index];
		return;
	}
	const uint8_t *p = ack->runs_wire + (size_t)index * FRAME_ACK_RUN_SIZE;

	run_out->seq_first = frame_load64(p);
	run_out->shard_index = frame_load32(p + 8);
	run_out->count = frame_load16(p + 12);
}

/* Runs cover exactly record_count records, each non-empty and without seq overflow. */
static enum frame_err
runs_check(const struct frame_ack *ack)
{
	uint32_t total = 0;

	for (uint16_t i = 0; i < ack->run_count; i++) {
		struct frame_ack_run run;

		frame_ack_run_get(ack, i, &run);
		if (run.count == 0 || run.seq_first > UINT64_MAX - (run.count - 1u))
			return FRAME_ERR_RUNS;
		total += run.count;
	}
	return total == ack->record_count ? FRAME_OK : FRAME_ERR_RUNS;
}

/* A redirect names an IPv4 (the rest of the address zero) or IPv6 leader and its port. */
static enum frame_err
redirect_check(const struct frame_redirect *r)
{
	if (r->port == 0 || (r->family != 4 && r->family != 6))
		return FRAME_ERR_STATUS;
	if (r->family == 4) {
		for (uint32_t i = 4; i < FRAME_REDIRECT_ADDR_SIZE; i++)
			if (r->addr[i] != 0)
				return FRAME_ERR_RESERVED;
	}
	return FRAME_OK;
}

/* The rules of frame.h's ACK/NACK table, on decoded or to-be-encoded fields. */
static enum frame_err
ack_fields_check(const struct frame_ack *ack)
{
	uint16_t mode = ack->flags & FRAME_F_ACK_MODE_MASK;

	if (ack->record_count > FRAME_RECORDS_MAX || ack->run_count > FRAME_RECORDS_MAX)
		return ack->record_count > FRAME_RECORDS_MAX ? FRAME_ERR_RECORD_COUNT :
							       FRAME_ERR_RUNS;
	if (ack->type == FRAME_TYPE_NACK) {
		if (ack->status == FRAME_STATUS_OK || ack->status >= FRAME_STATUS_COUNT_)
			return FRAME_ERR_STATUS;
		if (ack->record_index != FRAME_RECORD_INDEX_NONE &&
		    ack->record_index >= ack->record_count)
			return FRAME_ERR_RECORD_INDEX;
		if (ack->run_count != 0)
			return FRAME_ERR_RUNS;
		return ack->status == FRAME_STATUS_NOT_LEADER ? redirect_check(&ack->redirect) :
								FRAME_OK;
	}
	if (ack->status != FRAME_STATUS_OK)
		return FRAME_ERR_STATUS;
	if (ack->record_count == 0)
		return FRAME_ERR_RECORD_COUNT;
	if (ack->record_index != FRAME_RECORD_INDEX_NONE)
		return FRAME_ERR_RECORD_INDEX;
	if (mode != FRAME_ACK_DURABLE || (ack->flags & FRAME_F_NO_DETAIL) != 0)
		return ack->run_count == 0 ? FRAME_OK : FRAME_ERR_RUNS;
	return runs_check(ack);
}

static bool
ack_flags_valid(uint8_t type, uint16_t flags)
{
	uint16_t mode = flags & FRAME_F_ACK_MODE_MASK;

	if (type == FRAME_TYPE_NACK)
		return flags == 0;
	if (type != FRAME_TYPE_ACK)
		return false;
	if ((flags & ~(FRAME_F_ACK_MODE_MASK | FRAME_F_DUPLICATE | FRAME_F_NO_DETAIL)) != 0)
		return false;
	if ((flags & FRAME_F_NO_DETAIL) != 0 && mode != FRAME_ACK_DURABLE)
		return false;
	return mode == FRAME_ACK_RECEIVED || mode == FRAME_ACK_DURABLE;
}

/* What follows the fixed fields: the runs, or a NOT_LEADER NACK's redirect block. */
static uint32_t
ack_extra_size(const struct frame_ack *ack)
{
	if (ack->type == FRAME_TYPE_NACK && ack->status == FRAME_STATUS_NOT_LEADER)
		return FRAME_REDIRECT_SIZE;
	return (uint32_t)ack->run_count * FRAME_ACK_RUN_SIZE;
}

/*
 * The redirect block (frame.h's table): offset 0 shard_index, 4 family, 5 reserved,
 * 6 port, 8 the address (16 bytes, IPv4 in the first 4).
 */
static void
redirect_store(uint8_t *p, const struct frame_redirect *r)
{
	frame_store32(p, r->shard_index);
	p[4] = r->family;
	frame_store16(p + 6, r->port);
	memcpy(p + 8, r->addr, FRAME_REDIRECT_ADDR_SIZE);
}

static enum frame_err
redirect_load(const uint8_t *p, struct frame_redirect *r)
{
	r->shard_index = frame_load32(p);
	r->family = p[4];
	r->port = frame_load16(p + 6);
	memcpy(r->addr, p + 8, FRAME_REDIRECT_ADDR_SIZE);
	if (p[5] != 0)
		return FRAME_ERR_RESERVED;
	return redirect_check(r);
}

int
frame_ack_encode(void *buf, size_t capacity, const struct frame_ack *ack, bool auth)
{
	uint8_t *p = buf;
	uint32_t size;

	if (!ack_flags_valid(ack->type, ack->flags) || (ack->run_count > 0 && ack->runs == NULL))
		return -EINVAL;
	if (ack_fields_check(ack) != FRAME_OK)
		return -EINVAL;
	auth |= ack->sign_key != NULL;
	size = FRAME_ACK_HEADER_SIZE + ack_extra_size(ack) + (auth ? FRAME_AUTH_SIZE : 0);
	if (size > capacity)
		return -ENOSPC;

	memset(p, 0, size);
	memcpy(p + FRAME_OFF_MAGIC, "SLUC", 4);
	frame_store32(p + FRAME_OFF_SIZE, size);
	p[FRAME_OFF_VERSION] = FRAME_VERSION;
	p[FRAME_OFF_TYPE] = ack->type;
	frame_store16(p + FRAME_OFF_FLAGS, (uint16_t)(ack->flags | (auth ? FRAME_F_AUTH : 0)));
	frame_store64(p + FRAME_OFF_PRODUCER_ID, ack->producer_id);
	frame_store64(p + FRAME_OFF_BATCH_SEQ, ack->batch_seq);
	frame_store32(p + FRAME_OFF_EPOCH, ack->producer_epoch);
	p[FRAME_OFF_STATUS] = ack->status;
	frame_store16(p + FRAME_OFF_ACK_RECORD_COUNT, ack->record_count);
	frame_store16(p + FRAME_OFF_RECORD_INDEX, ack->record_index);
	frame_store16(p + FRAME_OFF_RUN_COUNT, ack->run_count);
	frame_store32(p + FRAME_OFF_CREDIT, ack->credit_size);
	frame_store32(p + FRAME_OFF_RETRY_AFTER, ack->retry_after_ms);
	for (uint16_t i = 0; i < ack->run_count; i++) {
		uint8_t *r = p + FRAME_OFF_RUNS + (size_t)i * FRAME_ACK_RUN_SIZE;

		frame_store64(r, ack->runs[i].seq_first);
		frame_store32(r + 8, ack->runs[i].shard_index);
		frame_store16(r + 12, ack->runs[i].count);
	}
	if (ack->status == FRAME_STATUS_NOT_LEADER)
		redirect_store(p + FRAME_OFF_RUNS, &ack->redirect);
	if (ack->sign_key != NULL)
		frame_auth_sign(p, size, ack->sign_key, ack->sign_time_ms);
	else
		frame_seal(p, size);
	return (int)size;
}

/* Reserved bytes of the body, the runs and the trailer must be zero. */
static bool
ack_reserved_zero(const uint8_t *p, const struct frame_ack *ack)
{
	if (p[FRAME_OFF_ACK_RESERVED] != 0 || frame_load32(p + FRAME_OFF_ACK_RESERVED2) != 0)
		return false;
	for (uint16_t i = 0; i < ack->run_count; i++)
		if (frame_load16(ack->runs_wire + (size_t)i * FRAME_ACK_RUN_SIZE + 14) != 0)
			return false;
	return ack->auth == NULL || frame_load32(ack->auth + 4) == 0;
}

enum frame_err
frame_ack_decode(const void *bytes, size_t size, struct frame_ack *out)
{
	const uint8_t *p = bytes;
	struct frame_header header;
	uint32_t body_end;
	enum frame_err err;

	memset(out, 0, sizeof(*out));
	err = frame_header_decode(bytes, size, &header);
	if (err != FRAME_OK)
		return err;
	if (header.type != FRAME_TYPE_ACK && header.type != FRAME_TYPE_NACK)
		return FRAME_ERR_TYPE;
	body_end = header.frame_size;
	if ((header.flags & FRAME_F_AUTH) != 0) {
		body_end -= FRAME_AUTH_SIZE;
		out->auth = p + body_end;
	}
	if (body_end < FRAME_ACK_HEADER_SIZE)
		return FRAME_ERR_FRAME_SIZE;
	out->type = header.type;
	out->flags = header.flags & (uint16_t)~FRAME_F_AUTH;
	out->producer_id = frame_load64(p + FRAME_OFF_PRODUCER_ID);
	out->batch_seq = frame_load64(p + FRAME_OFF_BATCH_SEQ);
	out->producer_epoch = frame_load32(p + FRAME_OFF_EPOCH);
	out->status = p[FRAME_OFF_STATUS];
	out->record_count = frame_load16(p + FRAME_OFF_ACK_RECORD_COUNT);
	out->record_index = frame_load16(p + FRAME_OFF_RECORD_INDEX);
	out->run_count = frame_load16(p + FRAME_OFF_RUN_COUNT);
	out->credit_size = frame_load32(p + FRAME_OFF_CREDIT);
	out->retry_after_ms = frame_load32(p + FRAME_OFF_RETRY_AFTER);
	out->runs_wire = p + FRAME_OFF_RUNS;
	if ((uint64_t)FRAME_ACK_HEADER_SIZE + (out->type == FRAME_TYPE_NACK &&
					       out->status == FRAME_STATUS_NOT_LEADER ?
					       FRAME_REDIRECT_SIZE :
					       (uint64_t)out->run_count * FRAME_ACK_RUN_SIZE) !=
	    body_end) {
		out->run_count = 0;
		return FRAME_ERR_BODY_SIZE;
	}
	if (out->type == FRAME_TYPE_NACK && out->status == FRAME_STATUS_NOT_LEADER) {
		if (out->run_count != 0)
			return FRAME_ERR_RUNS;
		err = redirect_load(p + FRAME_OFF_RUNS, &out->redirect);
		if (err != FRAME_OK)
			return err;
	}
	if (!ack_reserved_zero(p, out))
		return FRAME_ERR_RESERVED;
	return ack_fields_check(out);
}

void
frame_ack_prepare(struct frame_ack *ack_out, const struct frame_records *records, uint8_t type,
		  uint8_t status, uint32_t credit_size)
{
	assert(records->identity_valid);
	assert((type == FRAME_TYPE_ACK) == (status == FRAME_STATUS_OK));
	memset(ack_out, 0, sizeof(*ack_out));
	ack_out->type = type;
	ack_out->status = status;
	ack_out->producer_id = records->producer_id;
	ack_out->batch_seq = records->batch_seq;
	ack_out->producer_epoch = records->producer_epoch;
	/* A refused batch may lie about its count; the answer must still encode. */
	ack_out->record_count = records->record_count <= FRAME_RECORDS_MAX ?
					records->record_count : 0;
	ack_out->record_index = FRAME_RECORD_INDEX_NONE;
	ack_out->credit_size = credit_size;
	if (type == FRAME_TYPE_ACK)
		ack_out->flags = records->flags & FRAME_F_ACK_MODE_MASK;
}

void
frame_ack_run_add(struct frame_ack_run *runs, uint16_t *run_count, uint32_t shard_index,
		  uint64_t seq)
{
	struct frame_ack_run *last = *run_count > 0 ? &runs[*run_count - 1] : NULL;

	/* seq != 0: a run ending at UINT64_MAX must not wrap into the next one. */
	if (last != NULL && last->shard_index == shard_index && seq != 0 &&
	    last->seq_first + last->count == seq && last->count < UINT16_MAX) {
		last->count++;
		return;
	}
	assert(*run_count < FRAME_RECORDS_MAX);
	runs[(*run_count)++] = (struct frame_ack_run){ .seq_first = seq,
						       .shard_index = shard_index, .count = 1 };
}
