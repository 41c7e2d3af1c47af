/* log_config.c — the keys of [log] (struct log_config, config.h). */
#include <stddef.h>

#include "base/log_config.h"

#include "base/config.h"

/* The names log_level_from_name() takes. */
static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static const struct config_key keys[] = {
    {"level", CONFIG_STRING, CONFIG_FIELD(struct log_config, level), "info", 0, 0, levels, 0,
     "least severe level written (-l overrides)"},
};

const struct config_section log_config_section = {
    .name = "log",
    .help = "Logging to stderr.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
