/* store_config.h — the [store] section (keys: store_config.c). */
#ifndef CASCADE_STORE_STORE_CONFIG_H
#define CASCADE_STORE_STORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct store_config { /* [store] */
    char path[512];
    uint32_t commit_window_ms;       /* group commit: ops wait this long for company (0: none) */
};

#endif
