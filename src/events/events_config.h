/* events_config.h — the [events] section (keys: events_config.c). */
#ifndef CASCADE_EVENTS_EVENTS_CONFIG_H
#define CASCADE_EVENTS_EVENTS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct events_config { /* [events] */
    char webhook[512];
    int ring_size;
};

#endif
