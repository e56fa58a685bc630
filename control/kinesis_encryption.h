/*
 * kinesis_encryption.h - the encryption concern (kinesis_encryption.c):
 * StartStreamEncryption and StopStreamEncryption against the keyring
 * (control/keyring.h), the stream's encryption as DescribeStream shows it,
 * and the KMS exceptions PutRecord(s) and GetRecords answer when a key is
 * missing, disabled or wrong. Included by control/kinesis.h.
 */
#ifndef SLUICE_CONTROL_KINESIS_ENCRYPTION_H
#define SLUICE_CONTROL_KINESIS_ENCRYPTION_H

#include "control/kinesis.h"

#define KINESIS_KEY_ID_LENGTH_MAX 2048   /* AWS's bound of KeyId. */

/* StartStreamEncryption and StopStreamEncryption: the same members. */
#define KINESIS_SHAPE_ENCRYPTION(F) \
	F(ENCRYPTION, STREAM_NAME, KV_STREAM_NAME) \
	F(ENCRYPTION, ENCRYPTION_TYPE, KV_ENUM("EncryptionType", true, kinesis_encryption_types)) \
	F(ENCRYPTION, KEY_ID, KV_STR("KeyId", true, KV_PATTERN_NONE, 1, KINESIS_KEY_ID_LENGTH_MAX)) \
	F(ENCRYPTION, STREAM_ARN, KV_STREAM_ARN)
KV_SHAPE_ENUM(ENCRYPTION);

extern const char *const kinesis_encryption_types[];

kinesis_handler_fn kinesis_start_encryption;
kinesis_handler_fn kinesis_stop_encryption;

/* Re-applies SQLite's encrypted streams to the log at start. */
int kinesis_encryption_load(struct kinesis *k);
/*
 * Cluster mode: memory and the log made equal to the store's encrypted streams after
 * the cache applied another node's Start/StopStreamEncryption (kinesis_cluster_follow).
 * The key itself comes from this node's keyring: a node without it fails the stream's
 * writes with the log's key errors.
 */
int kinesis_encryption_follow(struct kinesis *k);
/* `,"EncryptionType":...` and `,"KeyId":...` of DescribeStream(Summary). */
void kinesis_out_encryption(struct api_out *out, const struct kinesis_stream *s);
/* PutRecord(s) answers: `,"EncryptionType":"KMS"` for an encrypted stream, else nothing (AWS). */
const char *kinesis_put_encryption_member(bool on);
/* True for the log's key errors (nvme-log/log.h, "Encryption at rest"). */
bool kinesis_kms_errno(int err);
/* Answers the KMS exception of a key error on stream `s` (key_ref: its KeyId, or NULL). */
void kinesis_kms_error(struct api_call *call, int err, const char *key_ref);

#endif /* SLUICE_CONTROL_KINESIS_ENCRYPTION_H */
