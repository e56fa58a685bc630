/*
 * cli_args.c - the table-driven flag parser of cli_args.h.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli_args.h"

struct cli_suffix {
	const char *text;
	uint64_t factor;
};

static const struct cli_suffix cli_count_suffixes[] = {
	{ "", 1 }, { "k", 1000 }, { "m", 1000000 }, { "g", 1000000000 },
	{ "K", 1000 }, { "M", 1000000 }, { "G", 1000000000 }, { NULL, 0 },
};

static const struct cli_suffix cli_size_suffixes[] = {
	{ "", 1 }, { "b", 1 }, { "k", 1024 }, { "m", 1024 * 1024 }, { "g", 1024 * 1024 * 1024 },
	{ "K", 1024 }, { "M", 1024 * 1024 }, { "G", 1024 * 1024 * 1024 },
	{ "KiB", 1024 }, { "MiB", 1024 * 1024 }, { "GiB", 1024 * 1024 * 1024 }, { NULL, 0 },
};

static const struct cli_suffix cli_duration_suffixes[] = {
	{ "", 1000000000 }, { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 },
	{ "s", 1000000000 }, { "m", 60000000000 }, { "h", 3600000000000 }, { NULL, 0 },
};

int
cli_number_parse(const char *text, enum cli_opt_type type, uint64_t *value_out)
{
	const struct cli_suffix *suffixes;
	uint64_t digits = 0;
	const char *p = text;

	assert(type == CLI_OPT_COUNT || type == CLI_OPT_SIZE || type == CLI_OPT_DURATION);
	suffixes = type == CLI_OPT_COUNT ? cli_count_suffixes :
		   type == CLI_OPT_SIZE ? cli_size_suffixes : cli_duration_suffixes;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (digits > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		digits = digits * 10 + digit;
	}
	for (const struct cli_suffix *s = suffixes; s->text != NULL; s++) {
		if (strcmp(p, s->text) != 0)
			continue;
		if (digits != 0 && s->factor > UINT64_MAX / digits)
			return -ERANGE;
		*value_out = digits * s->factor;
		return 0;
	}
	return -EINVAL;
}

static int __attribute__((format(printf, 2, 3)))
cli_args_fail(struct cli_args *args, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args->error, sizeof(args->error), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int
cli_opt_set_number(const struct cli_opt *opt, const char *text, struct cli_args *args)
{
	uint64_t value;
	int err = cli_number_parse(text, opt->type, &value);

	if (err == -ERANGE)
		return cli_args_fail(args, "--%s: '%s' is too large", opt->name, text);
	if (err != 0)
		return cli_args_fail(args, "--%s: '%s' is not a valid %s", opt->name, text,
				     opt->type == CLI_OPT_DURATION ? "duration" :
				     opt->type == CLI_OPT_SIZE ? "size" : "number");
	if (value < opt->min || (opt->max != 0 && value > opt->max))
		return cli_args_fail(args, "--%s: '%s' is out of range", opt->name, text);
	*(uint64_t *)opt->value = value;
	return 0;
}

static int
cli_opt_set(const struct cli_opt *opt, const char *text, struct cli_args *args)
{
	char *end;
	double number;

	switch (opt->type) {
	case CLI_OPT_STRING:
		*(const char **)opt->value = text;
		return 0;
	case CLI_OPT_DOUBLE:
		errno = 0;
		number = strtod(text, &end);
		if (errno != 0 || end == text || *end != '\0' || !isfinite(number) ||
		    number < (double)opt->min || (opt->max != 0 && number > (double)opt->max))
			return cli_args_fail(args, "--%s: '%s' is not a valid number", opt->name,
					     text);
		*(double *)opt->value = number;
		return 0;
	case CLI_OPT_COUNT:
	case CLI_OPT_SIZE:
	case CLI_OPT_DURATION:
		return cli_opt_set_number(opt, text, args);
	case CLI_OPT_BOOL:
		break;
	}
	assert(false);
	return -EINVAL;
}

static const struct cli_opt *
cli_opt_find(const struct cli_opt *opts, size_t opt_count, const char *name, size_t name_size)
{
	for (size_t i = 0; i < opt_count; i++) {
		if (strlen(opts[i].name) == name_size && memcmp(opts[i].name, name, name_size) == 0)
			return &opts[i];
	}
	return NULL;
}

/* Handles argv[*index], a "--name[=value]" word; may consume the next word as the value. */
static int
cli_args_flag(int argc, char **argv, int *index, const struct cli_opt *opts, size_t opt_count,
	      struct cli_args *args)
{
	const char *name = argv[*index] + 2;
	const char *equals = strchr(name, '=');
	size_t name_size = equals != NULL ? (size_t)(equals - name) : strlen(name);
	const struct cli_opt *opt = cli_opt_find(opts, opt_count, name, name_size);

	if (opt == NULL)
		return cli_args_fail(args, "unknown option --%.*s", (int)name_size, name);
	if (opt->type == CLI_OPT_BOOL) {
		if (equals != NULL)
			return cli_args_fail(args, "--%s takes no value", opt->name);
		*(bool *)opt->value = true;
		return 0;
	}
	if (equals != NULL)
		return cli_opt_set(opt, equals + 1, args);
	if (*index + 1 >= argc)
		return cli_args_fail(args, "--%s needs a value", opt->name);
	*index += 1;
	return cli_opt_set(opt, argv[*index], args);
}

int
cli_args_parse(int argc, char **argv, const struct cli_opt *opts, size_t opt_count,
	       struct cli_args *args)
{
	bool flags_done = false;

	assert(argc >= 1);
	args->positional_count = 0;
	args->error[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *word = argv[i];
		int err;

		if (!flags_done && (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0))
			return CLI_ARGS_HELP;
		if (!flags_done && strcmp(word, "--") == 0) {
			flags_done = true;
			continue;
		}
		if (!flags_done && word[0] == '-' && word[1] == '-') {
			err = cli_args_flag(argc, argv, &i, opts, opt_count, args);
			if (err != 0)
				return err;
			continue;
		}
		if (!flags_done && word[0] == '-' && word[1] != '\0')
			return cli_args_fail(args, "unknown option %s", word);
		if (args->positional_count == CLI_POSITIONAL_MAX)
			return cli_args_fail(args, "too many arguments");
		args->positional[args->positional_count++] = word;
	}
	return 0;
}

void
cli_args_usage(FILE *out, const char *synopsis, const struct cli_opt *opts, size_t opt_count)
{
	fprintf(out, "usage: %s\n", synopsis);
	if (opt_count > 0)
		fprintf(out, "\noptions:\n");
	for (size_t i = 0; i < opt_count; i++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name,
			 opts[i].arg != NULL ? " " : "", opts[i].arg != NULL ? opts[i].arg : "");
		fprintf(out, "  %-28s %s\n", left, opts[i].help);
	}
	fprintf(out, "  %-28s %s\n", "--help", "show this help");
}
