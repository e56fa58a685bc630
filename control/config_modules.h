/*
 * config_modules.h - private to control/: sluiced's configuration converted
 * for the modules that own the values, and checked by the modules themselves.
 */
#ifndef SLUICE_CONTROL_CONFIG_MODULES_H
#define SLUICE_CONTROL_CONFIG_MODULES_H

#include "control/config.h"

struct log_config;

/* The [log] keys (and [dataplane] workers) -> the log's configuration for `log_dir`. */
void config_log_config(const struct sluice_config *config, const char *log_dir,
		       struct log_config *out);

/*
 * Runs log_config_check() and dp_config_check() on the configuration sluiced
 * would open them with; every refusal is recorded naming the key to change.
 * 0 or -EINVAL.
 */
int config_check_modules(const struct sluice_config *config, struct config_errors *errors);

#endif /* SLUICE_CONTROL_CONFIG_MODULES_H */
