/*
 * log_crypt.c - encryption at rest: the keyring the log was given, which
 * streams are encrypted under which key, and the AES-256-GCM sealing and
 * opening of batches. The only file of nvme-log/ that names OpenSSL.
 *
 * Keys: each producer makes its own random data key per keyring key
 * version (and per keyring generation), wraps it once with that key (AES
 * key wrap, RFC 3394) and copies the 40 wrapped bytes into the trailer of
 * every batch it encrypts. The GCM nonce is the data key's batch counter:
 * a data key belongs to one producer for one process lifetime and is never
 * written unwrapped, so (data key, nonce) never repeats; after
 * LOG_DATA_KEY_BATCHES_MAX batches the producer makes a new data key.
 *
 * Readers unwrap a batch's data key with the keyring key its trailer names
 * and keep the last few unwrapped keys (consecutive batches of a producer
 * share one), then open the batch in place in their own buffer.
 *
 * Memory: a cipher context pair per producer and per reader, made when they
 * are; nothing is allocated per batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/base.h"
#include "nvme-log/log_internal.h"

/* GCM with a counter nonce is good for 2^64 batches; a new data key long before. */
#define LOG_DATA_KEY_BATCHES_MAX (1ull << 32)

struct log_data_key {
	bool valid;
	uint64_t key_id;
	uint32_t key_version;
	uint64_t generation;           /* Keyring generation the wrapping key came from. */
	uint8_t key[LOG_KEY_SIZE];
	uint8_t wrapped[LOG_WRAPPED_KEY_SIZE];
	uint64_t nonce_next;           /* Producers: the next batch's counter. */
};

struct log_crypt {
	EVP_CIPHER_CTX *gcm;
	EVP_CIPHER_CTX *wrap;
	struct log_data_key keys[LOG_CRYPT_DATA_KEYS];
	uint32_t victim;               /* Round robin over keys[] when none matches. */
};

/* ---- Keyring and streams (under keys.lock) ------------------------------- */

int
log_keys_init(struct log_keys *keys)
{
	atomic_init(&keys->stream_count, 0);
	return -pthread_mutex_init(&keys->lock, NULL);
}

void
log_keys_fini(struct log_keys *keys)
{
	OPENSSL_cleanse(keys->keys, sizeof(keys->keys));
	pthread_mutex_destroy(&keys->lock);
}

static bool
keys_valid(const struct log_key *keys, uint32_t count)
{
	if (count > LOG_KEYS_MAX)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		if (keys[i].key_id == 0)
			return false;
		for (uint32_t j = 0; j < i; j++) {
			if (keys[j].key_id == keys[i].key_id && keys[j].version == keys[i].version)
				return false;
		}
	}
	return true;
}

int
log_keys_replace(struct log *log, const struct log_key *keys, uint32_t count)
{
	struct log_keys *k = &log->keys;

	if (!keys_valid(keys, count))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	OPENSSL_cleanse(k->keys, sizeof(k->keys));
	if (count > 0)
		memcpy(k->keys, keys, count * sizeof(*keys));
	k->key_count = count;
	/* Cached data keys wrapped under the old keyring are not used again. */
	k->generation++;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static struct log_stream_key *
stream_key_find(struct log_keys *k, uint32_t stream_id)
{
	uint32_t count = atomic_load_explicit(&k->stream_count, memory_order_relaxed);

	for (uint32_t i = 0; i < count; i++) {
		if (k->streams[i].stream_id == stream_id)
			return &k->streams[i];
	}
	return NULL;
}

int
log_stream_encryption_set(struct log *log, uint32_t stream_id, uint64_t key_id)
{
	struct log_keys *k = &log->keys;
	struct log_stream_key *s;
	uint32_t count;
	int err = 0;

	pthread_mutex_lock(&k->lock);
	s = stream_key_find(k, stream_id);
	count = atomic_load_explicit(&k->stream_count, memory_order_relaxed);
	if (s != NULL && key_id != 0) {
		s->key_id = key_id;
	} else if (s != NULL) {
		*s = k->streams[count - 1];
		atomic_store_explicit(&k->stream_count, count - 1, memory_order_relaxed);
	} else if (key_id != 0 && count == LOG_ENCRYPTED_STREAMS_MAX) {
		err = -ENOSPC;
	} else if (key_id != 0) {
		k->streams[count] = (struct log_stream_key){ stream_id, key_id };
		atomic_store_explicit(&k->stream_count, count + 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&k->lock);
	return err;
}

/* The key with this id and version (version UINT32_MAX: the newest), or NULL. */
static const struct log_key *
key_find(const struct log_keys *k, uint64_t key_id, uint32_t version)
{
	const struct log_key *found = NULL;

	for (uint32_t i = 0; i < k->key_count; i++) {
		const struct log_key *key = &k->keys[i];

		if (key->key_id != key_id)
			continue;
		if (version != UINT32_MAX && key->version == version)
			return key;
		if (version == UINT32_MAX && (found == NULL || key->version > found->version))
			found = key;
	}
	return found;
}

/*
 * Copies the key out (lock held only for the lookup). 0, -ENOKEY (none),
 * -EKEYREVOKED (disabled). version UINT32_MAX asks for the newest.
 */
static int
key_copy(struct log_keys *k, uint64_t key_id, uint32_t version, struct log_key *out,
	 uint64_t *generation_out)
{
	const struct log_key *key;
	int err = 0;

	pthread_mutex_lock(&k->lock);
	key = key_find(k, key_id, version);
	if (key == NULL)
		err = -ENOKEY;
	else if (!key->enabled)
		err = -EKEYREVOKED;
	else
		*out = *key;
	*generation_out = k->generation;
	pthread_mutex_unlock(&k->lock);
	return err;
}

/* The key id of the stream the shard belongs to (0: not encrypted). */
static uint64_t
shard_key_id(struct log_keys *k, uint64_t shard_id)
{
	const struct log_stream_key *s;
	uint64_t key_id;

	/* No encrypted stream: the common case costs one relaxed load, no lock. */
	if (atomic_load_explicit(&k->stream_count, memory_order_relaxed) == 0)
		return 0;
	pthread_mutex_lock(&k->lock);
	s = stream_key_find(k, LOG_SHARD_STREAM(shard_id));
	key_id = s == NULL ? 0 : s->key_id;
	pthread_mutex_unlock(&k->lock);
	return key_id;
}

/* ---- Cipher contexts ------------------------------------------------------ */

int
log_crypt_open(struct log_crypt **crypt_out)
{
	struct log_crypt *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->gcm = EVP_CIPHER_CTX_new();
	c->wrap = EVP_CIPHER_CTX_new();
	/* The ciphers are bound once here: later inits only change key and IV. */
	if (c->gcm == NULL || c->wrap == NULL ||
	    EVP_CipherInit_ex(c->gcm, EVP_aes_256_gcm(), NULL, NULL, NULL, 1) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->gcm, EVP_CTRL_GCM_SET_IVLEN, LOG_NONCE_SIZE, NULL) != 1) {
		log_crypt_close(c);
		return -ENOMEM;
	}
	EVP_CIPHER_CTX_set_flags(c->wrap, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(c->wrap, EVP_aes_256_wrap(), NULL, NULL, NULL, 1) != 1) {
		log_crypt_close(c);
		return -ENOMEM;
	}
	*crypt_out = c;
	return 0;
}

void
log_crypt_close(struct log_crypt *crypt)
{
	if (crypt == NULL)
		return;
	EVP_CIPHER_CTX_free(crypt->gcm);
	EVP_CIPHER_CTX_free(crypt->wrap);
	OPENSSL_cleanse(crypt->keys, sizeof(crypt->keys));
	free(crypt);
}

/* AES key wrap (enc 1) or unwrap (enc 0) of one data key. */
static int
key_wrap(struct log_crypt *c, const uint8_t *kek, const uint8_t *in, uint8_t *out, int enc)
{
	int in_size = enc ? (int)LOG_KEY_SIZE : (int)LOG_WRAPPED_KEY_SIZE;
	int out_size = enc ? (int)LOG_WRAPPED_KEY_SIZE : (int)LOG_KEY_SIZE;
	int len = 0;

	if (EVP_CipherInit_ex(c->wrap, NULL, NULL, kek, NULL, enc) != 1)
		return -EIO;
	/* Unwrapping checks RFC 3394's integrity value: a wrong key fails here. */
	if (EVP_CipherUpdate(c->wrap, out, &len, in, in_size) != 1 || len != out_size)
		return -EKEYREJECTED;
	return 0;
}

/* A cached data key for (key, generation), or a slot to fill. */
static struct log_data_key *
data_key_slot(struct log_crypt *c, const struct log_key *key, uint64_t generation,
	      const uint8_t *wrapped, bool *hit_out)
{
	struct log_data_key *d;

	for (uint32_t i = 0; i < LOG_CRYPT_DATA_KEYS; i++) {
		d = &c->keys[i];
		*hit_out = d->valid && d->key_id == key->key_id &&
			   d->key_version == key->version && d->generation == generation &&
			   (wrapped == NULL ? d->nonce_next < LOG_DATA_KEY_BATCHES_MAX :
			    memcmp(d->wrapped, wrapped, LOG_WRAPPED_KEY_SIZE) == 0);
		if (*hit_out)
			return d;
	}
	d = &c->keys[c->victim++ % LOG_CRYPT_DATA_KEYS];
	d->valid = false;
	d->key_id = key->key_id;
	d->key_version = key->version;
	d->generation = generation;
	return d;
}

/* The producer's data key under `key`: cached, or made and wrapped now. */
static int
data_key_for_write(struct log_crypt *c, const struct log_key *key, uint64_t generation,
		   struct log_data_key **out)
{
	bool hit;
	struct log_data_key *d = data_key_slot(c, key, generation, NULL, &hit);
	int err;

	*out = d;
	if (hit)
		return 0;
	if (RAND_priv_bytes(d->key, LOG_KEY_SIZE) != 1)
		return -EIO;
	err = key_wrap(c, key->material, d->key, d->wrapped, 1);
	if (err != 0)
		return err == -EKEYREJECTED ? -EIO : err;
	d->nonce_next = 1;
	d->valid = true;
	return 0;
}

/* The data key of a batch being read: cached, or unwrapped now. */
static int
data_key_for_read(struct log_crypt *c, const struct log_key *key, uint64_t generation,
		  const uint8_t *wrapped, struct log_data_key **out)
{
	bool hit;
	struct log_data_key *d = data_key_slot(c, key, generation, wrapped, &hit);
	int err;

	*out = d;
	if (hit)
		return 0;
	err = key_wrap(c, key->material, wrapped, d->key, 0);
	if (err != 0)
		return err;
	memcpy(d->wrapped, wrapped, LOG_WRAPPED_KEY_SIZE);
	d->valid = true;
	return 0;
}

/*
 * GCM's additional data: where the batch belongs and what its header says
 * (the flags the producer set: the writer adds its own later).
 */
static int
gcm_aad(EVP_CIPHER_CTX *gcm, uint64_t shard_id, const uint8_t *batch,
	const struct log_batch_trailer *t)
{
	const struct log_batch_header *h = (const struct log_batch_header *)(const void *)batch;
	uint64_t fixed[4] = { shard_id, (uint64_t)h->size << 32 | h->record_count,
			      h->base_arrival_ns, h->flags & LOG_BATCH_F_PRODUCER };
	int len;

	if (EVP_CipherUpdate(gcm, NULL, &len, (const uint8_t *)fixed, sizeof(fixed)) != 1 ||
	    EVP_CipherUpdate(gcm, NULL, &len, (const uint8_t *)t, LOG_BATCH_TRAILER_AAD_SIZE) != 1)
		return -EIO;
	return 0;
}

/* Encrypts the records in place and fills the trailer's tag (enc) or checks it. */
static int
gcm_run(EVP_CIPHER_CTX *gcm, const struct log_data_key *d, uint64_t shard_id, uint8_t *batch,
	struct log_batch_trailer *t, int enc)
{
	const struct log_batch_header *h = (const struct log_batch_header *)(const void *)batch;
	uint8_t *records = batch + LOG_BATCH_HEADER_SIZE;
	int size = (int)(h->size - LOG_BATCH_HEADER_SIZE - LOG_BATCH_TRAILER_SIZE);
	int len;

	if (EVP_CipherInit_ex(gcm, NULL, NULL, d->key, t->nonce, enc) != 1 ||
	    gcm_aad(gcm, shard_id, batch, t) != 0 ||
	    EVP_CipherUpdate(gcm, records, &len, records, size) != 1)
		return -EIO;
	if (enc)
		return EVP_CipherFinal_ex(gcm, records + len, &len) == 1 &&
		       EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_GET_TAG, LOG_TAG_SIZE, t->tag) == 1 ?
		       0 : -EIO;
	if (EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_TAG, LOG_TAG_SIZE, t->tag) != 1)
		return -EIO;
	/* A wrong tag under the right data key: the bytes were altered. */
	return EVP_CipherFinal_ex(gcm, records + len, &len) == 1 ? 0 : -EBADMSG;
}

/* ---- Sealing and opening batches ------------------------------------------ */

int
log_batch_encrypt(struct log *log, struct log_crypt *c, struct log_batch *batch,
		  uint32_t *flags_out)
{
	struct log_batch_header *h = (struct log_batch_header *)(void *)batch->buf;
	uint64_t key_id = shard_key_id(&log->keys, batch->shard_id);
	struct log_batch_trailer t = { 0 };
	struct log_data_key *d;
	uint64_t generation;
	struct log_key key;
	int err;

	*flags_out = 0;
	if (key_id == 0)
		return 0;
	err = key_copy(&log->keys, key_id, UINT32_MAX, &key, &generation);
	if (err == 0)
		err = data_key_for_write(c, &key, generation, &d);
	OPENSSL_cleanse(&key, sizeof(key));
	if (err != 0)
		return err;
	assert(batch->used + LOG_BATCH_TRAILER_SIZE <= log->config.batch_size);
	t.key_id = key_id;
	t.key_version = d->key_version;
	t.cipher = LOG_CIPHER_AES256_GCM_KW;
	memcpy(t.wrapped_key, d->wrapped, LOG_WRAPPED_KEY_SIZE);
	memcpy(t.nonce, &d->nonce_next, sizeof(d->nonce_next));
	d->nonce_next++;
	t.arrival_max_ns = batch->arrival_max_ns;
	/* The additional data covers the header as it will be sealed. */
	batch->used += LOG_BATCH_TRAILER_SIZE;
	h->size = batch->used;
	h->record_count = batch->record_count;
	h->base_arrival_ns = batch->base_arrival_ns;
	h->flags = LOG_BATCH_F_ENCRYPTED;
	err = gcm_run(c->gcm, d, batch->shard_id, batch->buf, &t, 1);
	if (err != 0)
		return err;
	memcpy(batch->buf + batch->used - LOG_BATCH_TRAILER_SIZE, &t, sizeof(t));
	*flags_out = LOG_BATCH_F_ENCRYPTED;
	return 0;
}

int
log_batch_decrypt(struct log *log, struct log_crypt *c, uint8_t *batch)
{
	const struct log_batch_header *h = (const struct log_batch_header *)(const void *)batch;
	struct log_batch_trailer t;
	struct log_data_key *d;
	uint64_t generation;
	struct log_key key;
	int err;

	if ((h->flags & LOG_BATCH_F_ENCRYPTED) == 0)
		return 0;
	memcpy(&t, batch + h->size - LOG_BATCH_TRAILER_SIZE, sizeof(t));
	/* UINT32_MAX asks key_copy for the newest version: never a version on disk. */
	if (t.cipher != LOG_CIPHER_AES256_GCM_KW || t.reserved != 0 || t.key_version == UINT32_MAX)
		return -EBADMSG;
	err = key_copy(&log->keys, t.key_id, t.key_version, &key, &generation);
	if (err == 0)
		err = data_key_for_read(c, &key, generation, t.wrapped_key, &d);
	OPENSSL_cleanse(&key, sizeof(key));
	if (err == 0)
		err = gcm_run(c->gcm, d, h->shard_id, batch, &t, 0);
	if (err == 0)
		err = log_batch_check_records(batch);
	return err;
}

uint64_t
log_batch_trailer_arrival_max(const uint8_t *batch)
{
	const struct log_batch_header *h = (const struct log_batch_header *)(const void *)batch;
	struct log_batch_trailer t;

	assert((h->flags & LOG_BATCH_F_ENCRYPTED) != 0);
	memcpy(&t, batch + h->size - LOG_BATCH_TRAILER_SIZE, sizeof(t));
	return t.arrival_max_ns;
}
