/*
 * cli_args: flags in both forms, positionals, `--`, help, and every way a
 * command line can be wrong: unknown flags, missing values, bad numbers,
 * suffixes, overflow, bounds, too many positionals.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "common/base.h"
#include "tools/cli_args.h"

struct fixture {
	bool follow;
	const char *from;
	uint64_t max;
	uint64_t size;
	uint64_t duration;
	double ratio;
};

static struct fixture f;
static struct cli_args args;

static int
parse(int argc, const char **argv)
{
	const struct cli_opt opts[] = {
		{ "follow", CLI_OPT_BOOL, &f.follow, 0, 0, NULL, "" },
		{ "from", CLI_OPT_STRING, &f.from, 0, 0, "POS", "" },
		{ "max", CLI_OPT_COUNT, &f.max, 1, 1000000, "N", "" },
		{ "size", CLI_OPT_SIZE, &f.size, 0, 0, "B", "" },
		{ "duration", CLI_OPT_DURATION, &f.duration, 0, 0, "D", "" },
		{ "ratio", CLI_OPT_DOUBLE, &f.ratio, 0, 10, "X", "" },
	};

	memset(&f, 0, sizeof(f));
	return cli_args_parse(argc, (char **)argv, opts, ARRAY_SIZE(opts), &args);
}

#define PARSE(...) parse((int)ARRAY_SIZE(((const char *[]){ __VA_ARGS__ })), \
			 (const char *[]){ __VA_ARGS__ })

Test(cli_args, takes_both_flag_forms_and_positionals)
{
	cr_assert_eq(PARSE("consume", "s1", "--from", "latest", "--max=10k", "--follow",
			   "--size", "4k", "--duration=250ms", "--ratio", "1.5"), 0);
	cr_assert_eq(args.positional_count, 1);
	cr_assert_str_eq(args.positional[0], "s1");
	cr_assert_str_eq(f.from, "latest");
	cr_assert_eq(f.max, 10000);
	cr_assert(f.follow);
	cr_assert_eq(f.size, 4096);
	cr_assert_eq(f.duration, 250000000);
	cr_assert_float_eq(f.ratio, 1.5, 1e-9);
}

Test(cli_args, double_dash_ends_flags)
{
	cr_assert_eq(PARSE("put", "--", "--follow", "-x"), 0);
	cr_assert_eq(args.positional_count, 2);
	cr_assert_str_eq(args.positional[0], "--follow");
	cr_assert_not(f.follow);
}

Test(cli_args, a_lone_dash_is_positional)
{
	cr_assert_eq(PARSE("put", "s", "k", "-"), 0);
	cr_assert_eq(args.positional_count, 3);
}

Test(cli_args, help_wins)
{
	cr_assert_eq(PARSE("consume", "--bogus", "--help"), -EINVAL);
	cr_assert_eq(PARSE("consume", "s", "--help"), CLI_ARGS_HELP);
	cr_assert_eq(PARSE("consume", "-h"), CLI_ARGS_HELP);
}

Test(cli_args, refuses_bad_command_lines)
{
	static const char *const cases[][3] = {
		{ "--bogus", NULL, NULL },        /* unknown */
		{ "-x", NULL, NULL },             /* unknown short */
		{ "--from", NULL, NULL },         /* missing value */
		{ "--follow=yes", NULL, NULL },   /* bool with a value */
		{ "--max", "0", NULL },           /* below min */
		{ "--max", "1000001", NULL },     /* above max */
		{ "--max", "2m", NULL },          /* above max after the suffix */
		{ "--max", "-1", NULL },          /* negative */
		{ "--max", "10x", NULL },         /* bad suffix */
		{ "--max", "", NULL },            /* empty */
		{ "--size", "4kk", NULL },
		{ "--size", "99999999999999999999", NULL },   /* overflow */
		{ "--size", "99999999999g", NULL },           /* overflow by the suffix */
		{ "--duration", "5x", NULL },
		{ "--ratio", "nan", NULL },
		{ "--ratio", "11", NULL },
		{ "--ratio", "1.5z", NULL },
		{ "--fro", "x", NULL },           /* prefixes are not abbreviations */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *argv[4] = { "cmd", cases[i][0], cases[i][1], NULL };
		int argc = cases[i][1] != NULL ? 3 : 2;

		cr_assert_eq(parse(argc, argv), -EINVAL, "case %zu: %s %s", i, cases[i][0],
			     cases[i][1] != NULL ? cases[i][1] : "");
		cr_assert_neq(args.error[0], '\0', "case %zu has no message", i);
	}
}

Test(cli_args, refuses_too_many_positionals)
{
	const char *argv[CLI_POSITIONAL_MAX + 2];

	argv[0] = "cmd";
	for (int i = 1; i < CLI_POSITIONAL_MAX + 2; i++)
		argv[i] = "p";
	cr_assert_eq(parse(CLI_POSITIONAL_MAX + 1, argv), 0);
	cr_assert_eq(parse(CLI_POSITIONAL_MAX + 2, argv), -EINVAL);
}

Test(cli_args, number_suffixes)
{
	static const struct {
		const char *text;
		enum cli_opt_type type;
		uint64_t value;
	} cases[] = {
		{ "0", CLI_OPT_COUNT, 0 },
		{ "7", CLI_OPT_COUNT, 7 },
		{ "10k", CLI_OPT_COUNT, 10000 },
		{ "3M", CLI_OPT_COUNT, 3000000 },
		{ "1g", CLI_OPT_COUNT, 1000000000 },
		{ "100", CLI_OPT_SIZE, 100 },
		{ "1k", CLI_OPT_SIZE, 1024 },
		{ "1MiB", CLI_OPT_SIZE, 1048576 },
		{ "2", CLI_OPT_DURATION, 2000000000 },
		{ "2s", CLI_OPT_DURATION, 2000000000 },
		{ "15ms", CLI_OPT_DURATION, 15000000 },
		{ "3us", CLI_OPT_DURATION, 3000 },
		{ "9ns", CLI_OPT_DURATION, 9 },
		{ "1m", CLI_OPT_DURATION, 60000000000 },
		{ "18446744073709551615", CLI_OPT_COUNT, UINT64_MAX },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t value = 1;

		cr_assert_eq(cli_number_parse(cases[i].text, cases[i].type, &value), 0, "%s",
			     cases[i].text);
		cr_assert_eq(value, cases[i].value, "%s", cases[i].text);
	}
}

Test(cli_args, number_limit_plus_one_overflows)
{
	uint64_t value;

	cr_assert_eq(cli_number_parse("18446744073709551616", CLI_OPT_COUNT, &value), -ERANGE);
	cr_assert_eq(cli_number_parse("18446744073709552k", CLI_OPT_COUNT, &value), -ERANGE);
	cr_assert_eq(cli_number_parse("18446744073709551k", CLI_OPT_COUNT, &value), 0);
	cr_assert_eq(cli_number_parse(" 1", CLI_OPT_COUNT, &value), -EINVAL);
	cr_assert_eq(cli_number_parse("1 ", CLI_OPT_COUNT, &value), -EINVAL);
	cr_assert_eq(cli_number_parse("k", CLI_OPT_COUNT, &value), -EINVAL);
}
