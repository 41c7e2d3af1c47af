/* store_config.c — the keys of [store] (struct store_config, base/config.h). */
#include <stddef.h>

#include "store/store_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct store_config, f), def, lo, hi, NULL, 0, help}

static const char *const backend_values[] = {"sqlite", "redis", NULL};

static const struct config_key keys[] = {
    {"backend", CONFIG_ENUM, CONFIG_FIELD(struct store_config, backend), "sqlite", 0, 0, backend_values, 0,
     "sqlite: a node on its own; redis: a node of a cluster whose shared state is in the Redis Cluster of [redis] "
     "nodes (required): every [redis] sharing switch the file does not set goes on (docs/config.md); SQLite stays "
     "this node's local store either way. A change needs a restart"},
    KEY("path", CONFIG_STRING, path, "./cascade.db", 0, 0, "the SQLite database"),
    KEY("commit_window_ms", CONFIG_UINT, commit_window_ms, "0", 0, 1000,
        "group commit: a write waits up to this long for company (the 200 to REGISTER too)"),
};

const struct config_section store_config_section = {
    .name = "store",
    .help = "The database (SQLite, each node's own): users, bindings, devices, channels; and where a cluster's "
            "shared state lives.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
