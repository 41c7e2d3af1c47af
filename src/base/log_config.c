/* log_config.c — the keys of [log] (struct log_config, config.h). */
#include <stddef.h>

#include "base/log_config.h"

#include "base/config.h"

/* The names log_level_from_name() takes. */
static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

/* The names log_format_from_name() takes. */
static const char *const formats[] = {"text", "json", NULL};

static const struct config_key keys[] = {
    {"level", CONFIG_STRING, CONFIG_FIELD(struct log_config, level), "info", 0, 0, levels, 0,
     "least severe level written (-l overrides)"},
    {"format", CONFIG_STRING, CONFIG_FIELD(struct log_config, format), "text", 0, 0, formats, 0,
     "text lines, or json: one object per line (ts, level, module, file, line, msg)"},
    {"file", CONFIG_STRING, CONFIG_FIELD(struct log_config, file), "", 0, 0, NULL, 0,
     "append to this file instead of stderr; SIGUSR1 reopens it (after logrotate)"},
};

const struct config_section log_config_section = {
    .name = "log",
    .help = "Logging: to stderr, or to a file reopened on SIGUSR1.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
