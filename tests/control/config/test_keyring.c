/*
 * keyring: the file format of [encryption] keyring (control/keyring.h):
 * versions and aliases load; every KMS KeyId form resolves (id, key ARN,
 * alias, alias ARN) and unknown ones do not; each malformed line is refused
 * naming its line; a file others may read is refused naming its mode.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "control/keyring.h"

#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static struct keyring kr;
static char why[KEYRING_WHY_SIZE];

static const char *
write_keyring(const char *text, mode_t mode)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/sluice-keyring-test-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static int
load(const char *text, mode_t mode)
{
	const char *path = write_keyring(text, mode);
	int rc = keyring_load(path, &kr, why, sizeof(why));

	unlink(path);
	return rc;
}

Test(keyring, loads_versions_aliases_and_states)
{
	const char *name;
	uint64_t id;

	cr_assert_eq(load("# the appliance's keys\n"
			  "\n"
			  "key-1 1 " HEX_A "\n"
			  "key-1 2 " HEX_B " enabled alias/aws/kinesis   # rotated\n"
			  "old-key 7 " HEX_A " disabled alias/old\n", 0600), 0, "%s", why);
	cr_assert_eq(kr.key_count, 3);
	cr_assert_eq(kr.alias_count, 2);
	cr_assert_eq(kr.keys[1].version, 2);
	cr_assert_eq(kr.keys[1].material[0], 0xff);
	cr_assert(kr.keys[0].enabled);
	cr_assert(!kr.keys[2].enabled);
	cr_assert_eq(kr.keys[0].key_id, kr.keys[1].key_id);
	cr_assert_eq(kr.keys[0].key_id, keyring_log_key_id("key-1"));
	cr_assert_neq(kr.keys[0].key_id, kr.keys[2].key_id);

	const char *refs[] = {
		"key-1", "arn:aws:kms:us-east-1:000000000000:key/key-1", "alias/aws/kinesis",
		"arn:aws:kms:eu-west-1:123456789012:alias/aws/kinesis",
	};
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		cr_assert_eq(keyring_resolve(&kr, refs[i], &name, &id), 0, "%s", refs[i]);
		cr_assert_str_eq(name, "key-1");
		cr_assert_eq(id, keyring_log_key_id("key-1"));
	}
	cr_assert_eq(keyring_resolve(&kr, "alias/old", &name, &id), 0);
	cr_assert_str_eq(name, "old-key");

	const char *unknown[] = {
		"key-2", "alias/nosuch", "alias/", "arn:aws:kms:us-east-1:0:key/nosuch",
		"arn:aws:kms:us-east-1:0:alias/nosuch", "arn:aws:kms:us-east-1", "",
		"arn:aws:kms:us-east-1:0:key-1",
	};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		cr_assert_eq(keyring_resolve(&kr, unknown[i], &name, &id), -ENOENT, "%s",
			     unknown[i]);
}

Test(keyring, refuses_a_file_others_may_read_or_write)
{
	cr_assert_eq(load("k 1 " HEX_A "\n", 0644), -EPERM);
	cr_assert(strstr(why, "mode 0644") != NULL, "%s", why);
	cr_assert_eq(load("k 1 " HEX_A "\n", 0602), -EPERM);
	cr_assert_eq(load("k 1 " HEX_A "\n", 0640), 0, "%s", why);
	cr_assert_eq(keyring_load("/nonexistent/keyring", &kr, why, sizeof(why)), -ENOENT);
	cr_assert_eq(keyring_load("/tmp", &kr, why, sizeof(why)), -EINVAL);
}

Test(keyring, refuses_bad_lines_naming_them)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "k 1\n", "line 1: want KEY-ID" },
		{ "k 0 " HEX_A "\n", "line 1: bad version" },
		{ "k 4294967295 " HEX_A "\n", "line 1: bad version" },
		{ "k -1 " HEX_A "\n", "line 1: bad version" },
		{ "k 1x " HEX_A "\n", "line 1: bad version" },
		{ "k 1 " HEX_A "0\n", "64 hex digits" },
		{ "k 1 " HEX_A "\nk 2 zz" HEX_A "\n", "line 2: the key must be 64 hex digits" },
		{ "k 1 " HEX_A "\nk 1 " HEX_B "\n", "line 2: k version 1 twice" },
		{ "alias/k 1 " HEX_A "\n", "bad key id" },
		{ "arn:aws:kms:r:a:key/k 1 " HEX_A "\n", "bad key id" },
		{ "k;x 1 " HEX_A "\n", "bad key id" },
		{ "k 1 " HEX_A " alias/\n", "alias/NAME" },
		{ "k 1 " HEX_A " enabledx\n", "alias/NAME" },
		{ "k 1 " HEX_A " alias/a\nj 1 " HEX_A " alias/a\n", "alias/a already names key k" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(load(bad[i].text, 0600), -EINVAL, "case %zu", i);
		cr_assert(strstr(why, bad[i].why) != NULL, "case %zu: %s", i, why);
		cr_assert_eq(kr.key_count, 0, "a refused file leaves no key");
	}
}

Test(keyring, refuses_too_long_a_line_and_too_many_keys)
{
	char *text = malloc(KEYRING_LINE_SIZE_MAX + 8);
	size_t size = (KEYRING_KEYS_MAX + 1) * 90;
	char *many = malloc(size);
	size_t used = 0;

	memset(text, 'k', KEYRING_LINE_SIZE_MAX + 4);
	strcpy(text + KEYRING_LINE_SIZE_MAX + 4, "\n");
	cr_assert_eq(load(text, 0600), -EINVAL);
	cr_assert(strstr(why, "longer than") != NULL, "%s", why);
	for (uint32_t i = 0; i <= KEYRING_KEYS_MAX; i++)
		used += (size_t)snprintf(many + used, size - used, "k %u " HEX_A "\n", i + 1);
	cr_assert_eq(load(many, 0600), -EINVAL);
	cr_assert(strstr(why, "more than") != NULL, "%s", why);
	free(text);
	free(many);
}
