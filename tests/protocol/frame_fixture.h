/*
 * frame_fixture.h - frames the protocol tests share: a RECORDS batch that
 * uses every record shape, and hex helpers for the spec's test vectors.
 */
#ifndef SLUICE_TEST_FRAME_FIXTURE_H
#define SLUICE_TEST_FRAME_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"

#define FIXTURE_RECORD_COUNT 4u

/* The records of the fixture batch, in order. */
extern const struct frame_record fixture_records[FIXTURE_RECORD_COUNT];

/* Writes the fixture batch (stream "orders.v1") into buf; returns its size. */
uint32_t fixture_records_frame(uint8_t *buf, size_t capacity, bool auth);

/* frame_records_decode() of a copy placed flush against a PROT_NONE page (guard_buf.h). */
enum frame_err fixture_records_decode_guarded(const uint8_t *bytes, size_t size,
					      struct frame_records *out);

/* Parses hex digits (whitespace ignored) into out; returns the byte count, or 0 on bad input. */
size_t fixture_hex_parse(const char *hex, uint8_t *out, size_t capacity);

/* Reads `name`'s ```hex block from docs/PROTOCOL.md into out; returns the byte count. */
size_t fixture_spec_vector(const char *name, uint8_t *out, size_t capacity);

#endif /* SLUICE_TEST_FRAME_FIXTURE_H */
