/* store_config.c — the keys of [store] (struct store_config, base/config.h). */
#include <stddef.h>

#include "store/store_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct store_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("path", CONFIG_STRING, path, "./cascade.db", 0, 0, "the SQLite database"),
    KEY("commit_window_ms", CONFIG_UINT, commit_window_ms, "0", 0, 1000,
        "group commit: a write waits up to this long for company (the 200 to REGISTER too)"),
};

const struct config_section store_config_section = {
    .name = "store",
    .help = "The database: users, bindings, devices, channels.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
