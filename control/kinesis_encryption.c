/*
 * kinesis_encryption.c - encryption at rest as the Kinesis API shows it.
 *
 * StartStreamEncryption resolves its KeyId in the keyring (control/keyring.h),
 * stores (KeyId, key name) in SQLite, then tells the log to encrypt the
 * stream's new batches under the key (nvme-log/log.h); the stream is UPDATING
 * for stream_status_delay_ms, then ACTIVE, as AWS shows it. StopStreamEncryption
 * undoes it for new batches; old ones stay encrypted and readable while their
 * key is in the keyring. At start SQLite's encrypted streams are given to the
 * log again (the log keeps no such state). In cluster mode the (KeyId, key name)
 * pair goes into the stream's etcd record instead, and every node sets memory and
 * its log from its cache (kinesis_encryption_follow): the key itself comes from
 * each node's own keyring (docs/CLUSTER.md, "Encryption at rest in a cluster"). The log refers to a key by the hash
 * of its name, so the keyring file can change (rotation, aliases) underneath.
 *
 * Key errors, as AWS names them (the log's errnos):
 *
 *   ERRNO          WHERE                     EXCEPTION
 *   ENOKEY         key or version not in     KMSNotFoundException
 *                  the keyring
 *   EKEYREVOKED    key version disabled      KMSDisabledException
 *   EKEYREJECTED   same id and version,      KMSAccessDeniedException
 *                  other bytes (reads)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/diag.h"
#include "control/kinesis.h"
#include "nvme-log/log.h"

const char *const kinesis_encryption_types[] = { "NONE", "KMS", NULL };

/* AWS's KMS exceptions carry the KMS service's text; these follow its shape. */
#define KMS_SUFFIX(code) " (Service: AWSKMS; Status Code: 400; Error Code: " code ")"

void
kinesis_kms_error(struct api_call *call, int err, const char *key_ref)
{
	const char *key = key_ref != NULL ? key_ref : "that encrypted the records";

	if (err == -EKEYREVOKED)
		kinesis_error(call, "KMSDisabledException", "The key %s is disabled."
			      KMS_SUFFIX("DisabledException"), key);
	else if (err == -EKEYREJECTED)
		kinesis_error(call, "KMSAccessDeniedException", "The ciphertext refers to a key "
			      "that does not exist or that you are not allowed to access."
			      KMS_SUFFIX("AccessDeniedException"));
	else
		kinesis_error(call, "KMSNotFoundException", "Key '%s' does not exist."
			      KMS_SUFFIX("NotFoundException"), key);
}

bool
kinesis_kms_errno(int err)
{
	return err == -ENOKEY || err == -EKEYREVOKED || err == -EKEYREJECTED;
}

const char *
kinesis_put_encryption_member(bool on)
{
	return on ? ",\"EncryptionType\":\"KMS\"" : "";
}

void
kinesis_out_encryption(struct api_out *out, const struct kinesis_stream *s)
{
	api_out_printf(out, ",\"EncryptionType\":\"%s\"", s->encryption.on ? "KMS" : "NONE");
	if (!s->encryption.on)
		return;
	api_out_printf(out, ",\"KeyId\":");
	api_out_json_string(out, s->encryption.key_ref, strlen(s->encryption.key_ref));
}

void
kinesis_keyring_set(struct kinesis *k, struct keyring_shared *keyring)
{
	k->keyring = keyring;
}

/*
 * The store first (SQLite, or etcd then this node's cache in cluster mode), then
 * memory, then the log (key_ref NULL: off).
 */
static int
encryption_apply(struct kinesis *k, struct kinesis_stream *s, const char *key_ref,
		 const char *key_name, uint64_t log_key_id)
{
	int rc = k->mc == NULL ? metadata_encryption_set(k->md, s->stream_id, key_ref, key_name) :
		 metadata_cluster_encryption_set(k->mc, s->name, key_ref, key_name);

	if (rc != 0)
		return rc;
	s->encryption.on = key_ref != NULL;
	snprintf(s->encryption.key_ref, sizeof(s->encryption.key_ref), "%s",
		 key_ref != NULL ? key_ref : "");
	return log_stream_encryption_set(k->log, s->stream_id, log_key_id);
}

/* The checks both operations share after the shape: type, then state. 0 or replied. */
static int
encryption_check(struct kinesis_req *r, const char *op)
{
	const struct kv_value *type = &r->v[ENCRYPTION_ENCRYPTION_TYPE];
	struct kinesis_stream *s = r->stream;

	if (strcmp(type->string, "KMS") != 0) {
		kinesis_error(r->call, "InvalidArgumentException", "Encryption type %s is not "
			      "supported by %s; the only valid value is KMS.", type->string, op);
		return -EINVAL;
	}
	if (s->status != KINESIS_ACTIVE) {
		kinesis_error(r->call, "ResourceInUseException", "Stream %s under account %s not "
			      "ACTIVE, instead in state %s", s->name, r->k->config.account_id,
			      kinesis_status_name(s->status));
		return -EBUSY;
	}
	return 0;
}

/* Applies the change (key_ref NULL: off), UPDATING for a while as AWS, and answers. */
static void
encryption_change(struct kinesis_req *r, const char *key_ref, const char *key_name,
		  uint64_t log_key_id, const char *op)
{
	struct kinesis_stream *s = r->stream;
	int rc = encryption_apply(r->k, s, key_ref, key_name, log_key_id);

	if (rc != 0) {
		diag_error("kinesis", "%s %s: %s", op, s->name, strerror(-rc));
		kinesis_internal_error(r->call);
		return;
	}
	kinesis_status_schedule(r->k, s, KINESIS_UPDATING, KINESIS_ACTIVE);
	api_call_reply(r->call, 200);
}

void
kinesis_start_encryption(struct kinesis_req *r)
{
	static const char op[] = "StartStreamEncryption";
	const struct kv_value *key_id = &r->v[ENCRYPTION_KEY_ID];
	char name[KEYRING_ID_SIZE_MAX];
	uint64_t log_key_id = 0;
	bool enabled = false;
	int rc;

	if (encryption_check(r, op) != 0)
		return;
	rc = key_id->size >= KINESIS_KEY_ID_SIZE_MAX || r->k->keyring == NULL ? -ENOENT :
	     keyring_shared_resolve(r->k->keyring, key_id->string, name, &log_key_id, &enabled);
	if (rc != 0 || !enabled) {
		kinesis_kms_error(r->call, rc != 0 ? -ENOKEY : -EKEYREVOKED, key_id->string);
		return;
	}
	encryption_change(r, key_id->string, name, log_key_id, op);
}

void
kinesis_stop_encryption(struct kinesis_req *r)
{
	static const char op[] = "StopStreamEncryption";

	if (encryption_check(r, op) == 0)
		encryption_change(r, NULL, NULL, 0, op);
}

static int
encryption_load_one(void *arg, uint32_t stream_id, const char *key_ref, const char *key_name)
{
	struct kinesis *k = arg;
	struct kinesis_stream *s = kinesis_stream_by_id(k, stream_id);

	if (s == NULL)
		return 0;  /* Deleted meanwhile: its row goes with the deletion. */
	s->encryption.on = true;
	snprintf(s->encryption.key_ref, sizeof(s->encryption.key_ref), "%s", key_ref);
	return log_stream_encryption_set(k->log, stream_id, keyring_log_key_id(key_name));
}

int
kinesis_encryption_load(struct kinesis *k)
{
	return metadata_encryption_list(k->md, encryption_load_one, k);
}

/* kinesis_encryption_follow's pass: the streams the store has encrypted, by slot. */
struct encryption_follow {
	struct kinesis *k;
	uint8_t seen[SLUICE_STREAMS_MAX / 8];
};

static int
encryption_follow_one(void *arg, uint32_t stream_id, const char *key_ref, const char *key_name)
{
	struct encryption_follow *f = arg;
	struct kinesis_stream *s = kinesis_stream_by_id(f->k, stream_id);
	uint32_t slot;

	if (s == NULL)
		return 0;   /* Adopted at a later pass, or being deleted. */
	slot = (uint32_t)(s - f->k->streams);
	f->seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
	if (s->encryption.on && strcmp(s->encryption.key_ref, key_ref) == 0)
		return 0;
	diag_info("kinesis", "cluster: stream %s encrypted under %s through another node",
		  s->name, key_ref);
	return encryption_load_one(f->k, stream_id, key_ref, key_name);
}

int
kinesis_encryption_follow(struct kinesis *k)
{
	struct encryption_follow *f = calloc(1, sizeof(*f));
	int rc;

	if (f == NULL)
		return -ENOMEM;
	f->k = k;
	rc = metadata_encryption_list(k->md, encryption_follow_one, f);
	for (uint32_t i = 0; rc == 0 && i < SLUICE_STREAMS_MAX; i++) {
		struct kinesis_stream *s = &k->streams[i];

		if (!s->used || !s->encryption.on || (f->seen[i / 8] & (1u << (i % 8))) != 0)
			continue;
		diag_info("kinesis", "cluster: stream %s encryption stopped through another node",
			  s->name);
		s->encryption.on = false;
		s->encryption.key_ref[0] = '\0';
		rc = log_stream_encryption_set(k->log, s->stream_id, 0);
	}
	free(f);
	return rc;
}
