/* store_config.h — the [store] section (keys: store_config.c). */
#ifndef CASCADE_STORE_STORE_CONFIG_H
#define CASCADE_STORE_STORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/* [store] backend: where the state shared between nodes lives. SQLite is
 * each node's local store with either (app/config.c: what redis turns on). */
enum store_backend { STORE_BACKEND_SQLITE, STORE_BACKEND_REDIS };

struct store_config { /* [store] */
    int backend;                     /* enum store_backend */
    char path[512];
    uint32_t commit_window_ms;       /* group commit: ops wait this long for company (0: none) */
};

#endif
