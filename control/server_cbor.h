/*
 * server_cbor.h - CBOR (application/x-amz-cbor-1.1) at the API server's boundary.
 * Private to control/: the server files, kinesis_consumers.c (SubscribeToShard's events
 * to a CBOR request) and their tests include it.
 *
 * The Kinesis actions speak JSON only. A CBOR request body is translated into the
 * JSON they take before dispatch, and their JSON answer (or error) back into CBOR,
 * so CBOR costs one pass each way and no action knows about it. The mapping is the
 * AWS Java SDK's (v1 SdkCborGenerator, v2 its port): blobs are byte strings and
 * timestamps are tag 1 over integer epoch *milliseconds* (not RFC 8949's seconds).
 * server_cbor.c holds the table of which members are blobs and timestamps.
 *
 * Both directions write through struct api_out (growable, capped, no allocation of
 * their own besides the buffer); neither keeps state between calls.
 */
#ifndef SLUICE_CONTROL_SERVER_CBOR_H
#define SLUICE_CONTROL_SERVER_CBOR_H

#include <stddef.h>
#include <stdint.h>

#include "control/api.h"

/* Containers open at once in a request: Kinesis bodies nest 4 deep (PutRecords). */
#define SERVER_CBOR_NESTING_MAX 16u

/*
 * Appends to `json` the JSON text of the CBOR request body `cbor` (one map, nothing
 * after it). Returns 0, or -EINVAL with a SerializationException text in *error_out
 * (bad or truncated CBOR, nesting over SERVER_CBOR_NESTING_MAX, a byte string where
 * no blob belongs, ...), or -ENOBUFS when `json` overflowed its cap.
 */
int server_cbor_request_to_json(const uint8_t *cbor, size_t size, struct api_out *json,
				const char **error_out);

/*
 * Appends to `cbor` the CBOR form of the JSON answer `json` (written by the actions or
 * the server). Returns 0, -EINVAL when it is not JSON (or nests deeper than
 * SERVER_CBOR_NESTING_MAX), or -ENOBUFS when `cbor` overflowed its cap.
 */
int server_cbor_answer_from_json(const char *json, size_t size, struct api_out *cbor);

#endif /* SLUICE_CONTROL_SERVER_CBOR_H */
