/* log_config.h — the [log] section (keys: log_config.c). */
#ifndef CASCADE_BASE_LOG_CONFIG_H
#define CASCADE_BASE_LOG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct log_config { /* [log] */
    char level[16];
    char format[8];      /* "text" or "json" (log_format_from_name) */
    char file[512];      /* "": stderr */
};

#endif
