/* events_config.c — the keys of [events] (struct events_config, base/config.h). */
#include <stddef.h>

#include "events/events_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct events_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("webhook", CONFIG_STRING, webhook, "", 0, 0, "URL every event is POSTed to; empty: none"),
    KEY("ring_size", CONFIG_INT, ring_size, "4096", 16, 1 << 22, "events kept for ?since= replay"),
};

const struct config_section events_config_section = {
    .name = "events",
    .help = "Events (registrations, calls, devices, auth failures): the replay ring and the webhook.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
