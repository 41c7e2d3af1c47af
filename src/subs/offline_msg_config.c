/* offline_msg_config.c — the keys of [messages] (struct offline_msg_config,
 * base/config.h): whether and how much cascade keeps for offline users. */
#include <stdio.h>

#include "subs/offline_msg.h"

#include "base/config.h"
#include "store/store.h"

#define KEY(name, type, f, def, lo, hi, help)                                                                      \
    {name, type, CONFIG_FIELD(struct offline_msg_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("offline", CONFIG_BOOL, offline, "yes", 0, 0,
        "yes: a MESSAGE to a user with no binding, or whose phones do not answer, is kept (202) and delivered "
        "at the next registration; no: 480 as before"),
    KEY("max_per_user", CONFIG_INT, max_per_user, "100", 1, 100000,
        "queued messages per user; one more is refused 480"),
    KEY("max_bytes_per_user", CONFIG_INT, max_bytes_per_user, "262144", 1, 1 << 30,
        "queued body bytes per user; a message that would pass it is refused 480"),
    KEY("max_body", CONFIG_INT, max_body, "8192", 1, STORE_MAX_JSON, "bytes of one kept body; a longer one gets 480"),
    KEY("max_age", CONFIG_INT, max_age, "604800", 1, 31536000,
        "seconds a message waits before it expires; delivered and expired ones are listed this long after"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct offline_msg_config *c = section;
    if (c->max_body > c->max_bytes_per_user) {
        snprintf(err, errcap, "[messages] max_body > max_bytes_per_user");
        return -1;
    }
    return 0;
}

const struct config_section offline_msg_config_section = {
    .name = "messages",
    .help = "Instant messages (RFC 3428) kept for users who are offline or do not answer.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
