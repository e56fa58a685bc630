/*
 * cli_args.h - the CLI's flag parser: each command describes its flags as a
 * table of struct cli_opt rows; the parser fills the targets, collects the
 * positional arguments and prints the usage text from the same table.
 *
 * Accepted forms: --name VALUE, --name=VALUE, --flag, `--` (ends flags), -h.
 * Numbers take suffixes: counts k/m/g (powers of 1000), sizes k/m/g (KiB,
 * MiB, GiB), durations ns/us/ms/s/m/h (a bare number is seconds).
 */
#ifndef SLUICE_TOOLS_CLI_ARGS_H
#define SLUICE_TOOLS_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_POSITIONAL_MAX 8
#define CLI_ARGS_HELP 1 /* cli_args_parse() saw --help or -h. */

enum cli_opt_type {
	CLI_OPT_BOOL,     /* bool *: set to true by --name. */
	CLI_OPT_STRING,   /* const char **: points into argv. */
	CLI_OPT_COUNT,    /* uint64_t *: 1000, 10k, 2m. */
	CLI_OPT_SIZE,     /* uint64_t *: bytes; 512, 4k (4096), 1m. */
	CLI_OPT_DURATION, /* uint64_t *: nanoseconds; 10s, 250ms, 2m, 5 (seconds). */
	CLI_OPT_DOUBLE,   /* double *: a finite number. */
};

struct cli_opt {
	const char *name;      /* Without the leading "--". */
	enum cli_opt_type type;
	void *value;
	uint64_t min;          /* Inclusive bounds of the numeric types (after suffixes); */
	uint64_t max;          /* max == 0 means no upper bound. */
	const char *arg;       /* Metavariable in the usage text, NULL for BOOL. */
	const char *help;
};

struct cli_args {
	const char *positional[CLI_POSITIONAL_MAX];
	size_t positional_count;
	char error[256];       /* Why parsing failed, for the usage message. */
};

/*
 * Parses argv[1 .. argc) (argv[0] is the command's name) against `opts`.
 * Returns 0, CLI_ARGS_HELP, or -EINVAL with args->error set: an unknown flag,
 * a missing or malformed value, a value out of bounds, too many positionals.
 */
int cli_args_parse(int argc, char **argv, const struct cli_opt *opts, size_t opt_count,
		   struct cli_args *args);

/* Parses one numeric value of `type` (COUNT, SIZE or DURATION); 0 or -EINVAL/-ERANGE. */
int cli_number_parse(const char *text, enum cli_opt_type type, uint64_t *value_out);

/* Prints "usage: <synopsis>" and one line per option. */
void cli_args_usage(FILE *out, const char *synopsis, const struct cli_opt *opts,
		    size_t opt_count);

#endif /* SLUICE_TOOLS_CLI_ARGS_H */
