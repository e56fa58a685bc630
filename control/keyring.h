/*
 * keyring.h - the local stand-in for AWS KMS: `[encryption] keyring = PATH`,
 * a file of named 256-bit keys that StartStreamEncryption's KeyId (a key id,
 * a key ARN, an alias such as alias/aws/kinesis, or an alias ARN) resolves
 * against, and whose keys the log encrypts with (nvme-log/log.h, "Encryption
 * at rest").
 *
 * File format (docs/OPERATIONS.md, "Encryption at rest"): one key version per
 * line, fields separated by blanks; '#' starts a comment:
 *
 *   FIELD       MEANING
 *   KEY-ID      the key's name: 1..KEYRING_ID_SIZE_MAX-1 bytes of [A-Za-z0-9/_.:+=@-],
 *               not starting with "alias/" or "arn:"
 *   VERSION     1..4294967294; new writes use the highest enabled-or-not version
 *   KEY         64 hex digits (32 bytes)
 *   [STATE]     "enabled" (default) or "disabled" (reads and writes refused:
 *               KMSDisabledException)
 *   [ALIAS...]  "alias/NAME" names that resolve to KEY-ID
 *
 * The file must not be readable or writable by others (mode o-rwx): a
 * world-readable keyring is refused, naming its mode.
 */
#ifndef SLUICE_CONTROL_KEYRING_H
#define SLUICE_CONTROL_KEYRING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvme-log/log.h"

#define KEYRING_ID_SIZE_MAX 256u          /* Key ids and alias names, NUL included. */
#define KEYRING_KEYS_MAX LOG_KEYS_MAX     /* Key versions in one file. */
#define KEYRING_ALIASES_MAX 256u
#define KEYRING_LINE_SIZE_MAX 1024u
#define KEYRING_WHY_SIZE 256u

struct keyring {
	struct log_key keys[KEYRING_KEYS_MAX];
	char key_names[KEYRING_KEYS_MAX][KEYRING_ID_SIZE_MAX];
	uint32_t key_count;
	char alias_names[KEYRING_ALIASES_MAX][KEYRING_ID_SIZE_MAX];
	uint32_t alias_key[KEYRING_ALIASES_MAX];  /* Index into keys[]. */
	uint32_t alias_count;
};

/*
 * Reads the keyring file into *out (replacing its contents). Returns 0;
 * -ENOENT / -EACCES when it cannot be opened; -EPERM when others may read or
 * write it; -EINVAL for a bad line. `why` says which, with the line number.
 */
int keyring_load(const char *path, struct keyring *out, char *why, size_t why_size);

/* Forgets the key material (before freeing or reusing the struct). */
void keyring_wipe(struct keyring *keyring);

/* The log's 64-bit id for a key name: the first 8 bytes of its SHA-256 (never 0). */
uint64_t keyring_log_key_id(const char *key_name);

/*
 * Resolves a KMS KeyId as AWS accepts it: KEY-ID, arn:aws:kms:R:A:key/KEY-ID,
 * alias/NAME, arn:aws:kms:R:A:alias/NAME. Returns 0 and the key's name (in
 * the keyring, valid until the next load) and log key id; -ENOENT when the
 * keyring has no such key or alias.
 */
int keyring_resolve(const struct keyring *keyring, const char *key_ref, const char **name_out,
		    uint64_t *log_key_id_out);

/*
 * The keyring sluiced serves from: loaded by the main thread (start, SIGHUP),
 * resolved by the API thread (StartStreamEncryption). `lock` guards `current`.
 */
struct keyring_shared {
	pthread_mutex_t lock;
	struct keyring current;
	struct keyring scratch;    /* Loader-only: a file is read here, then swapped in. */
};

int keyring_shared_init(struct keyring_shared *ks);
void keyring_shared_fini(struct keyring_shared *ks);
/*
 * Reads `path` ("" = no keys) and, when it loads, makes it current. Returns 0
 * or keyring_load's error (with `why`); a refused file changes nothing.
 */
int keyring_shared_load(struct keyring_shared *ks, const char *path, char *why,
			size_t why_size);
/*
 * keyring_resolve() on the current keyring: copies the key's name
 * (KEYRING_ID_SIZE_MAX bytes) and log id, and whether its newest version is
 * enabled. -ENOENT when unknown.
 */
int keyring_shared_resolve(struct keyring_shared *ks, const char *key_ref, char *name_out,
			   uint64_t *log_key_id_out, bool *enabled_out);

#endif /* SLUICE_CONTROL_KEYRING_H */
