/*
 * firehose_manage.c - the Firehose operations around a delivery stream's
 * records: tags and encryption (the rows are in firehose_api.c's table).
 *
 *   OPERATION                       ERRORS (in the order they are checked)
 *   TagDeliveryStream               Serialization, Validation, ResourceNotFound,
 *                                   LimitExceeded (over 50 tags)
 *   UntagDeliveryStream             Serialization, Validation, ResourceNotFound
 *   ListTagsForDeliveryStream       Serialization, Validation, ResourceNotFound
 *   StartDeliveryStreamEncryption   Serialization, Validation, ResourceNotFound,
 *                                   InvalidArgument (a KinesisStreamAsSource stream,
 *                                   KeyARN with AWS_OWNED_CMK or missing with
 *                                   CUSTOMER_MANAGED_CMK), InvalidKMSResource (the key
 *                                   is not in the keyring, or disabled)
 *   StopDeliveryStreamEncryption    Serialization, Validation, ResourceNotFound,
 *                                   InvalidArgument (KinesisStreamAsSource)
 *
 * Keys: CUSTOMER_MANAGED_CMK's KeyARN is resolved in the keyring ([encryption]
 * keyring) as Kinesis's KeyId is; AWS_OWNED_CMK uses the keyring's alias
 * FH_AWS_OWNED_ALIAS if it has one. With a key, the stream's records are stored
 * encrypted in the log (as a Kinesis stream's); without one (AWS_OWNED_CMK and no
 * such alias) the status is recorded and shown, the records are stored as they come.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/diag.h"
#include "control/firehose_api.h"
#include "control/keyring.h"

/* The keyring alias AWS_OWNED_CMK stands for (as alias/aws/kinesis is Kinesis's own key). */
#define FH_AWS_OWNED_ALIAS "alias/aws/firehose"
/* ListTagsForDeliveryStream without a Limit. */
#define FH_TAGS_LIST_DEFAULT FIREHOSE_TAGS_MAX
/* AWS's tag patterns (the characters are kinesis_tag_text_ok()'s). */
#define FH_TAG_KEY_RULE "Member must satisfy regular expression pattern: " \
	"^(?!aws:)[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$"
#define FH_TAG_VALUE_RULE "Member must satisfy regular expression pattern: " \
	"^[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@%]*$"

const char *const fh_key_types[] = { "AWS_OWNED_CMK", "CUSTOMER_MANAGED_CMK", NULL };

/* ---- Tags --------------------------------------------------------------------- */

int
fh_tags_types(struct kinesis_req *r, const cJSON *item)
{
	const cJSON *tag;

	cJSON_ArrayForEach(tag, item) {
		if (kv_type_check(r->call, tag, KV_STRUCT) != 0 ||
		    fh_member_type(r, tag, "Key", KV_STRING) != 0 ||
		    fh_member_type(r, tag, "Value", KV_STRING) != 0)
			return -EINVAL;
	}
	return 0;
}

void
fh_tags_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *tag;
	uint32_t i = 0;

	(void)r;
	cJSON_ArrayForEach(tag, item) {
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(tag, "Key");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(tag, "Value");
		char path[64];

		snprintf(path, sizeof(path), "tags.%u.member.key", ++i);
		kv_string_check(errors, path, key, true, KV_PATTERN_NONE, 1,
				FIREHOSE_TAG_KEY_SIZE_MAX);
		if (cJSON_IsString(key) && (!kinesis_tag_text_ok(key->valuestring) ||
					    strncmp(key->valuestring, "aws:", 4) == 0))
			kv_errors_add(errors, key->valuestring, true, path, FH_TAG_KEY_RULE);
		snprintf(path, sizeof(path), "tags.%u.member.value", i);
		kv_string_check(errors, path, value, false, KV_PATTERN_NONE, 0,
				FIREHOSE_TAG_VALUE_SIZE_MAX);
		if (cJSON_IsString(value) && !kinesis_tag_text_ok(value->valuestring))
			kv_errors_add(errors, value->valuestring, true, path, FH_TAG_VALUE_RULE);
	}
}

void
fh_tag_keys_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	const cJSON *key;
	uint32_t i = 0;

	(void)r;
	cJSON_ArrayForEach(key, item) {
		char path[64];

		snprintf(path, sizeof(path), "tagKeys.%u.member", ++i);
		kv_string_check(errors, path, key, true, KV_PATTERN_NONE, 1,
				FIREHOSE_TAG_KEY_SIZE_MAX);
	}
}

static void
fh_tags_limit(struct kinesis_req *r, const char *name)
{
	kinesis_error(r->call, "LimitExceededException", "Firehose %s under account %s would have "
		      "more than %u tags.", name, r->k->config.account_id, FIREHOSE_TAGS_MAX);
}

/* The Tags list into `tags`; returns how many (the shape bounded them). */
static uint32_t
fh_tags_collect(const cJSON *item, struct firehose_tag tags[FIREHOSE_TAGS_MAX])
{
	const cJSON *tag;
	uint32_t n = 0;

	cJSON_ArrayForEach(tag, item) {
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(tag, "Key");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(tag, "Value");

		if (n == FIREHOSE_TAGS_MAX)
			break;
		snprintf(tags[n].key, sizeof(tags[n].key), "%s", key->valuestring);
		snprintf(tags[n].value, sizeof(tags[n].value), "%s",
			 cJSON_IsString(value) ? value->valuestring : "");
		n++;
	}
	return n;
}

static int
fh_tags_apply(struct kinesis_req *r, const cJSON *item, const char *name)
{
	static struct firehose_tag tags[FIREHOSE_TAGS_MAX];  /* API thread only. */
	uint32_t n = fh_tags_collect(item, tags);
	int rc = firehose_tags_add(r->k->firehose, name, tags, n);

	if (rc == -E2BIG)
		fh_tags_limit(r, name);
	else if (rc != 0)
		fh_errno_reply(r, rc, name);
	return rc;
}

int
fh_tags_create(struct kinesis_req *r, const cJSON *tags, const char *name)
{
	return tags == NULL ? 0 : fh_tags_apply(r, tags, name);
}

void
fh_tag(struct kinesis_req *r)
{
	if (fh_tags_apply(r, r->v[FH_TAG_TAGS].json, r->v[FH_TAG_NAME].string) != 0)
		return;
	api_out_printf(api_call_out(r->call), "{}");
	api_call_reply(r->call, 200);
}

void
fh_untag(struct kinesis_req *r)
{
	const char *keys[FIREHOSE_TAGS_MAX];
	const cJSON *key;
	uint32_t n = 0;
	int rc;

	cJSON_ArrayForEach(key, r->v[FH_UNTAG_KEYS].json)
		if (n < FIREHOSE_TAGS_MAX)
			keys[n++] = key->valuestring;
	rc = firehose_tags_remove(r->k->firehose, r->v[FH_UNTAG_NAME].string, keys, n);
	if (rc != 0) {
		fh_errno_reply(r, rc, r->v[FH_UNTAG_NAME].string);
		return;
	}
	api_out_printf(api_call_out(r->call), "{}");
	api_call_reply(r->call, 200);
}

void
fh_list_tags(struct kinesis_req *r)
{
	static struct firehose_tag tags[FIREHOSE_TAGS_MAX];
	struct api_out *out = api_call_out(r->call);
	const struct kv_value *start = &r->v[FH_LIST_TAGS_START];
	uint32_t limit = r->v[FH_LIST_TAGS_LIMIT].json != NULL ?
			 (uint32_t)r->v[FH_LIST_TAGS_LIMIT].number : FH_TAGS_LIST_DEFAULT;
	uint32_t total = 0, n;
	int rc = firehose_tags_list(r->k->firehose, r->v[FH_LIST_TAGS_NAME].string,
				    start->json != NULL ? start->string : NULL, tags, limit, &total);

	if (rc != 0) {
		fh_errno_reply(r, rc, r->v[FH_LIST_TAGS_NAME].string);
		return;
	}
	n = total < limit ? total : limit;
	api_out_printf(out, "{\"Tags\":[");
	for (uint32_t i = 0; i < n; i++) {
		api_out_printf(out, "%s{\"Key\":", i == 0 ? "" : ",");
		api_out_json_string(out, tags[i].key, strlen(tags[i].key));
		api_out_printf(out, ",\"Value\":");
		api_out_json_string(out, tags[i].value, strlen(tags[i].value));
		api_out_printf(out, "}");
	}
	api_out_printf(out, "],\"HasMoreTags\":%s}", total > n ? "true" : "false");
	api_call_reply(r->call, 200);
}

/* ---- Encryption --------------------------------------------------------------------- */

int
fh_enc_types(struct kinesis_req *r, const cJSON *item)
{
	if (fh_member_type(r, item, "KeyARN", KV_STRING) != 0 ||
	    fh_member_type(r, item, "KeyType", KV_STRING) != 0)
		return -EINVAL;
	return 0;
}

void
fh_enc_check(struct kinesis_req *r, const cJSON *item, struct kv_errors *errors)
{
	static const char path[] = "deliveryStreamEncryptionConfigurationInput.keyType";
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "KeyType");
	bool known = false;

	(void)r;
	kv_string_check(errors, "deliveryStreamEncryptionConfigurationInput.keyARN",
			cJSON_GetObjectItemCaseSensitive(item, "KeyARN"), false, KV_PATTERN_NONE,
			1, FIREHOSE_ARN_SIZE_MAX);
	if (!cJSON_IsString(type)) {
		kv_errors_add(errors, "null", false, path, "Member must not be null");
		return;
	}
	for (const char *const *v = fh_key_types; *v != NULL; v++)
		known |= strcmp(*v, type->valuestring) == 0;
	if (!known)
		kv_errors_add(errors, type->valuestring, true, path, "Member must satisfy enum value "
			      "set: [AWS_OWNED_CMK, CUSTOMER_MANAGED_CMK]");
}

void
fh_out_encryption(struct api_out *out, const struct firehose_encryption *e)
{
	api_out_printf(out, ",\"DeliveryStreamEncryptionConfiguration\":{");
	if (e->enabled) {
		if (e->key_type == FIREHOSE_KEY_CUSTOMER) {
			api_out_printf(out, "\"KeyARN\":");
			api_out_json_string(out, e->key_arn, strlen(e->key_arn));
			api_out_printf(out, ",");
		}
		api_out_printf(out, "\"KeyType\":\"%s\",", fh_key_types[e->key_type]);
	}
	api_out_printf(out, "\"Status\":\"%s\"}", e->enabled ? "ENABLED" : "DISABLED");
}

/* The stream exists and is DirectPut; 0 or replied. */
static int
fh_enc_stream(struct kinesis_req *r, const char *name)
{
	static struct firehose_info info;  /* API thread only. */
	int rc = firehose_describe(r->k->firehose, name, &info);

	if (rc != 0) {
		fh_errno_reply(r, rc, name);
		return rc;
	}
	if (info.spec.source_arn[0] != '\0') {
		kinesis_error(r->call, "InvalidArgumentException", FH_NOT_FOR_SOURCE);
		return -EPERM;
	}
	return 0;
}

/* Resolves the key the configuration names into e->log_key_id; 0 or replied. */
static int
fh_enc_key(struct kinesis_req *r, const cJSON *config, struct firehose_encryption *e)
{
	const cJSON *arn = cJSON_GetObjectItemCaseSensitive(config, "KeyARN");
	char name[KEYRING_ID_SIZE_MAX];
	bool enabled = false;
	int rc;

	if ((e->key_type == FIREHOSE_KEY_CUSTOMER) != (arn != NULL)) {
		kinesis_error(r->call, "InvalidArgumentException", arn != NULL ?
			      "KeyARN must not be given with KeyType AWS_OWNED_CMK." :
			      "KeyARN is required with KeyType CUSTOMER_MANAGED_CMK.");
		return -EINVAL;
	}
	if (arn != NULL)
		snprintf(e->key_arn, sizeof(e->key_arn), "%s", arn->valuestring);
	rc = r->k->keyring == NULL ? -ENOENT :
	     keyring_shared_resolve(r->k->keyring, arn != NULL ? e->key_arn : FH_AWS_OWNED_ALIAS,
				    name, &e->log_key_id, &enabled);
	if (arn == NULL && rc == -ENOENT) {
		e->log_key_id = 0;  /* AWS's own key stands for none here: the status only. */
		return 0;
	}
	if (rc != 0 || !enabled) {
		kinesis_error(r->call, "InvalidKMSResourceException", rc != 0 ?
			      "Key %s is not in this endpoint's keyring ([encryption] keyring)." :
			      "Key %s is disabled.", arn != NULL ? e->key_arn : FH_AWS_OWNED_ALIAS);
		return -ENOKEY;
	}
	return 0;
}

static void
fh_enc_apply(struct kinesis_req *r, const char *name, const struct firehose_encryption *e)
{
	int rc = firehose_encryption_set(r->k->firehose, name, e);

	if (rc != 0) {
		diag_error("firehose", "encryption of %s: %s", name, strerror(-rc));
		fh_errno_reply(r, rc, name);
		return;
	}
	api_out_printf(api_call_out(r->call), "{}");
	api_call_reply(r->call, 200);
}

void
fh_start_encryption(struct kinesis_req *r)
{
	const char *name = r->v[FH_START_ENC_NAME].string;
	const cJSON *config = r->v[FH_START_ENC_CONFIG].json;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(config, "KeyType");
	struct firehose_encryption e = { .enabled = true, .key_type = FIREHOSE_KEY_AWS_OWNED };

	if (fh_enc_stream(r, name) != 0)
		return;
	if (type != NULL && strcmp(type->valuestring, "CUSTOMER_MANAGED_CMK") == 0)
		e.key_type = FIREHOSE_KEY_CUSTOMER;
	if (fh_enc_key(r, config, &e) != 0)
		return;
	fh_enc_apply(r, name, &e);
}

void
fh_stop_encryption(struct kinesis_req *r)
{
	const char *name = r->v[FH_STOP_ENC_NAME].string;

	if (fh_enc_stream(r, name) == 0)
		fh_enc_apply(r, name, &(struct firehose_encryption){ .enabled = false });
}
