/* subs_config.c — the keys of [subscriptions] (struct subs_config,
 * base/config.h): which bounds the notifier puts on subscriptions. */
#include <stdio.h>

#include "subs/subs_config.h"

#include "base/config.h"
#include "subs/mwi.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct subs_config, f), def, lo, hi, NULL, 0, help}

/* In the order of enum subs_presence_policy. */
static const char *const policies[] = {"domain", "allowlist", NULL};

static const struct config_key keys[] = {
    KEY("enabled", CONFIG_BOOL, enabled, "yes", 0, 0,
        "yes: cascade is the notifier for the packages it serves (reg, dialog, message-summary); no: SUBSCRIBE is proxied"),
    KEY("min_expires", CONFIG_INT, min_expires, "60", 1, 86400, "shorter asks get 423 with Min-Expires"),
    KEY("max_expires", CONFIG_INT, max_expires, "7200", 1, 86400, "longer asks are granted this"),
    KEY("default_expires", CONFIG_INT, default_expires, "3761", 1, 86400,
        "for a SUBSCRIBE that names no expiry (RFC 3680 section 4.1)"),
    KEY("max_per_subscriber", CONFIG_INT, max_per_subscriber, "20", 0, 100000,
        "active subscriptions of one subscriber URI; one more is refused 403; 0: no limit"),
    KEY("max_total", CONFIG_INT, max_total, "10000", 0, 10000000,
        "active subscriptions on the node; one more is refused 503; 0: no limit"),
    KEY("reg_any_user", CONFIG_BOOL, reg_any_user, "no", 0, 0,
        "reg: yes lets every authenticated user watch any AoR's registrations; no: only the AoR's own user"),
    KEY("dialog_any_user", CONFIG_BOOL, dialog_any_user, "no", 0, 0,
        "dialog: yes lets every authenticated user watch any AoR's calls (busy lamps); no: only its own"),
    KEY("dialog_max_per_user", CONFIG_INT, dialog_max_per_user, "16", 1, 64,
        "dialog: calls tracked at once per watched AoR; further calls are not reported"),
    KEY("voicemail_source", CONFIG_STRING, voicemail_source, "", 0, 0,
        "message-summary: ip, host or host:port list of voicemail servers whose NOTIFYs are relayed; empty: off"),
    {"presence_policy", CONFIG_ENUM, CONFIG_FIELD(struct subs_config, presence_policy), "domain", 0, 0, policies, 0,
     "presence: who may watch a user: domain (every user of ours) or allowlist (the user's allow list, API)"},
    KEY("presence_max_publications_per_user", CONFIG_INT, presence_max_publications_per_user, "8", 1, 1000,
        "PUBLISHed presence documents one user holds at once; one more is refused 403"),
    KEY("presence_max_publications", CONFIG_INT, presence_max_publications, "20000", 1, 10000000,
        "PUBLISHed presence documents on the node; one more is refused 503"),
    KEY("presence_publish_any_user", CONFIG_BOOL, presence_publish_any_user, "no", 0, 0,
        "presence: yes lets every authenticated user publish for any user; no: only for itself"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct subs_config *c = section;
    if (c->min_expires > c->max_expires) {
        snprintf(err, errcap, "[subscriptions] min_expires > max_expires");
        return -1;
    }
    struct mwi_source src[MWI_MAX_SOURCES];
    char why[200];
    if (mwi_sources_parse(c->voicemail_source, src, MWI_MAX_SOURCES, why, sizeof(why)) < 0) {
        snprintf(err, errcap, "[subscriptions] %s", why);
        return -1;
    }
    return 0;
}

const struct config_section subs_config_section = {
    .name = "subscriptions",
    .help = "SIP event subscriptions (RFC 6665) cascade answers itself: the reg (RFC 3680), dialog (RFC 4235), message-summary (RFC 3842) and presence (RFC 3856, PUBLISH RFC 3903) packages.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
