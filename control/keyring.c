/*
 * keyring.c - parses the keyring file (format: keyring.h) and resolves KMS
 * KeyIds against it. Runs at start and on SIGHUP, never on a request's path
 * except keyring_resolve (StartStreamEncryption).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "control/keyring.h"

#define KEYRING_FIELDS_MAX 32u
#define KEYRING_VERSION_MAX 4294967294u  /* UINT32_MAX is the log's "newest". */
#define KMS_ARN_PREFIX "arn:aws:kms:"
#define ALIAS_PREFIX "alias/"

static int
why_set(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return err;
}

uint64_t
keyring_log_key_id(const char *key_name)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	uint64_t id;

	SHA256((const uint8_t *)key_name, strlen(key_name), digest);
	memcpy(&id, digest, sizeof(id));
	return id == 0 ? 1 : id;
}

static bool
name_valid(const char *name)
{
	size_t size = strlen(name);

	if (size == 0 || size >= KEYRING_ID_SIZE_MAX)
		return false;
	for (size_t i = 0; i < size; i++) {
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_.:+=@-",
			   name[i]) == NULL)
			return false;
	}
	return true;
}

/* 64 hex digits, no separators (OpenSSL's decoder refuses anything else). */
static bool
hex_key_parse(const char *text, uint8_t *out)
{
	size_t size = 0;

	return strlen(text) == 2 * LOG_KEY_SIZE &&
	       OPENSSL_hexstr2buf_ex(out, LOG_KEY_SIZE, &size, text, '\0') == 1 &&
	       size == LOG_KEY_SIZE;
}

static int
key_index(const struct keyring *kr, const char *name)
{
	for (uint32_t i = 0; i < kr->key_count; i++) {
		if (strcmp(kr->key_names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

static int
alias_add(struct keyring *kr, const char *alias, uint32_t key, char *why, size_t size, int line)
{
	size_t prefix = strlen(ALIAS_PREFIX);

	if (strncmp(alias, ALIAS_PREFIX, prefix) != 0 || !name_valid(alias) ||
	    strlen(alias) == prefix)
		return why_set(why, size, -EINVAL, "line %d: '%s' is neither enabled, disabled "
			       "nor alias/NAME", line, alias);
	for (uint32_t i = 0; i < kr->alias_count; i++) {
		if (strcmp(kr->alias_names[i], alias) != 0)
			continue;
		if (strcmp(kr->key_names[kr->alias_key[i]], kr->key_names[key]) == 0)
			return 0;
		return why_set(why, size, -EINVAL, "line %d: %s already names key %s", line,
			       alias, kr->key_names[kr->alias_key[i]]);
	}
	if (kr->alias_count == KEYRING_ALIASES_MAX)
		return why_set(why, size, -EINVAL, "line %d: more than %u aliases", line,
			       KEYRING_ALIASES_MAX);
	strcpy(kr->alias_names[kr->alias_count], alias);
	kr->alias_key[kr->alias_count++] = key;
	return 0;
}

/* KEY-ID VERSION KEY: the key version the line adds (not yet counted). */
static int
line_key(struct keyring *kr, char **f, char *why, size_t size, int line)
{
	struct log_key *k = &kr->keys[kr->key_count];
	char *end;
	unsigned long version;

	if (kr->key_count == KEYRING_KEYS_MAX)
		return why_set(why, size, -EINVAL, "line %d: more than %u keys", line,
			       KEYRING_KEYS_MAX);
	if (!name_valid(f[0]) || strncmp(f[0], ALIAS_PREFIX, strlen(ALIAS_PREFIX)) == 0 ||
	    strncmp(f[0], "arn:", 4) == 0)
		return why_set(why, size, -EINVAL, "line %d: bad key id '%.64s' (1..%u bytes of "
			       "[A-Za-z0-9/_.:+=@-], not alias/ or arn:)", line, f[0],
			       KEYRING_ID_SIZE_MAX - 1);
	errno = 0;
	version = strtoul(f[1], &end, 10);
	if (errno != 0 || *end != '\0' || f[1][0] == '-' || version == 0 ||
	    version > KEYRING_VERSION_MAX)
		return why_set(why, size, -EINVAL, "line %d: bad version '%.32s' (1..%u)", line,
			       f[1], KEYRING_VERSION_MAX);
	if (!hex_key_parse(f[2], k->material))
		return why_set(why, size, -EINVAL, "line %d: the key must be 64 hex digits", line);
	k->key_id = keyring_log_key_id(f[0]);
	k->version = (uint32_t)version;
	k->enabled = true;
	strcpy(kr->key_names[kr->key_count], f[0]);
	for (uint32_t i = 0; i < kr->key_count; i++) {
		if (kr->keys[i].key_id != k->key_id)
			continue;
		if (strcmp(kr->key_names[i], f[0]) != 0)
			return why_set(why, size, -EINVAL, "line %d: key ids %s and %s collide",
				       line, f[0], kr->key_names[i]);
		if (kr->keys[i].version == k->version)
			return why_set(why, size, -EINVAL, "line %d: %s version %lu twice", line,
				       f[0], version);
	}
	return 0;
}

static int
line_parse(struct keyring *kr, char *text, char *why, size_t size, int line)
{
	char *f[KEYRING_FIELDS_MAX];
	uint32_t n = 0;
	char *save = NULL;
	int err;

	*strchrnul(text, '#') = '\0';
	for (char *t = strtok_r(text, " \t\r\n", &save); t != NULL;
	     t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == KEYRING_FIELDS_MAX)
			return why_set(why, size, -EINVAL, "line %d: too many fields", line);
		f[n++] = t;
	}
	if (n == 0)
		return 0;
	if (n < 3)
		return why_set(why, size, -EINVAL, "line %d: want KEY-ID VERSION KEY [enabled|"
			       "disabled] [alias/NAME...]", line);
	err = line_key(kr, f, why, size, line);
	for (uint32_t i = 3; err == 0 && i < n; i++) {
		if (strcmp(f[i], "enabled") == 0 || strcmp(f[i], "disabled") == 0)
			kr->keys[kr->key_count].enabled = strcmp(f[i], "enabled") == 0;
		else
			err = alias_add(kr, f[i], kr->key_count, why, size, line);
	}
	if (err == 0)
		kr->key_count++;
	return err;
}

/* Opens the file and refuses one that others may read or write. */
static int
keyring_open(const char *path, FILE **file_out, char *why, size_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err;

	if (fd < 0) {
		err = -errno;
		return why_set(why, size, err, "cannot open: %s", strerror(-err));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return why_set(why, size, -EINVAL, "not a regular file");
	}
	if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
		close(fd);
		return why_set(why, size, -EPERM, "readable or writable by every user (mode %04o): "
			       "chmod o-rwx it", (unsigned)(st.st_mode & 07777));
	}
	*file_out = fdopen(fd, "r");
	if (*file_out == NULL) {
		close(fd);
		return why_set(why, size, -ENOMEM, "out of memory");
	}
	return 0;
}

void
keyring_wipe(struct keyring *kr)
{
	OPENSSL_cleanse(kr->keys, sizeof(kr->keys));
	kr->key_count = 0;
	kr->alias_count = 0;
}

int
keyring_load(const char *path, struct keyring *out, char *why, size_t why_size)
{
	char text[KEYRING_LINE_SIZE_MAX + 2];
	FILE *file;
	int line = 0;
	int err = keyring_open(path, &file, why, why_size);

	if (err != 0)
		return err;
	keyring_wipe(out);
	while (err == 0 && fgets(text, sizeof(text), file) != NULL) {
		line++;
		if (strchr(text, '\n') == NULL && !feof(file))
			err = why_set(why, why_size, -EINVAL, "line %d: longer than %u bytes", line,
				      KEYRING_LINE_SIZE_MAX);
		else
			err = line_parse(out, text, why, why_size, line);
	}
	OPENSSL_cleanse(text, sizeof(text));
	fclose(file);
	if (err != 0)
		keyring_wipe(out);
	return err;
}

/* "arn:aws:kms:REGION:ACCOUNT:REST" -> REST; NULL when not a KMS ARN of that shape. */
static const char *
arn_resource(const char *ref)
{
	const char *p = ref + strlen(KMS_ARN_PREFIX);

	if (strncmp(ref, KMS_ARN_PREFIX, strlen(KMS_ARN_PREFIX)) != 0)
		return NULL;
	for (int colons = 0; colons < 2; colons++) {
		p = strchr(p, ':');
		if (p == NULL)
			return NULL;
		p++;
	}
	return p;
}

int
keyring_resolve(const struct keyring *kr, const char *ref, const char **name_out,
		uint64_t *log_key_id_out)
{
	const char *rest = arn_resource(ref);
	int index = -1;

	if (rest != NULL && strncmp(rest, "key/", 4) == 0)
		index = key_index(kr, rest + 4);
	else if (rest != NULL)
		ref = rest;
	if (rest == NULL && strncmp(ref, ALIAS_PREFIX, strlen(ALIAS_PREFIX)) != 0)
		index = key_index(kr, ref);
	for (uint32_t i = 0; index < 0 && i < kr->alias_count; i++) {
		if (strcmp(kr->alias_names[i], ref) == 0)
			index = (int)kr->alias_key[i];
	}
	if (index < 0)
		return -ENOENT;
	*name_out = kr->key_names[index];
	*log_key_id_out = kr->keys[index].key_id;
	return 0;
}

int
keyring_shared_init(struct keyring_shared *ks)
{
	return -pthread_mutex_init(&ks->lock, NULL);
}

void
keyring_shared_fini(struct keyring_shared *ks)
{
	keyring_wipe(&ks->current);
	keyring_wipe(&ks->scratch);
	pthread_mutex_destroy(&ks->lock);
}

int
keyring_shared_load(struct keyring_shared *ks, const char *path, char *why, size_t why_size)
{
	int rc = 0;

	if (path[0] == '\0')
		keyring_wipe(&ks->scratch);
	else
		rc = keyring_load(path, &ks->scratch, why, why_size);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&ks->lock);
	ks->current = ks->scratch;
	pthread_mutex_unlock(&ks->lock);
	keyring_wipe(&ks->scratch);
	return 0;
}

int
keyring_shared_resolve(struct keyring_shared *ks, const char *key_ref, char *name_out,
		       uint64_t *log_key_id_out, bool *enabled_out)
{
	const char *name;
	int rc;

	pthread_mutex_lock(&ks->lock);
	rc = keyring_resolve(&ks->current, key_ref, &name, log_key_id_out);
	if (rc == 0) {
		const struct log_key *newest = NULL;

		strcpy(name_out, name);
		for (uint32_t i = 0; i < ks->current.key_count; i++) {
			const struct log_key *key = &ks->current.keys[i];

			if (key->key_id == *log_key_id_out &&
			    (newest == NULL || key->version > newest->version))
				newest = key;
		}
		*enabled_out = newest != NULL && newest->enabled;
	}
	pthread_mutex_unlock(&ks->lock);
	return rc;
}
