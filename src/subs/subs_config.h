/* subs_config.h — the [subscriptions] section (keys: subs_config.c). */
#ifndef CASCADE_SUBS_SUBS_CONFIG_H
#define CASCADE_SUBS_SUBS_CONFIG_H

#include <stdbool.h>

struct subs_config { /* [subscriptions] */
    bool enabled;              /* no: SUBSCRIBE is proxied as before */
    int min_expires;           /* shorter asks get 423 with Min-Expires */
    int max_expires;           /* longer asks are granted this */
    int default_expires;       /* a SUBSCRIBE with no Expires (RFC 3680 §4.1: 3761 s) */
    int max_per_subscriber;    /* per subscriber URI; 0: no limit */
    int max_total;             /* on the node; 0: no limit */
    bool reg_any_user;         /* reg: every authenticated user of ours may watch any AoR (not only its own) */
    bool dialog_any_user;      /* dialog: every authenticated user of ours may watch any AoR's calls */
    int dialog_max_per_user;   /* dialog: calls tracked per watched AoR; more are not reported */
    char voicemail_source[256]; /* message-summary: who may send summaries ("" = package off) */
    int presence_policy;       /* enum subs_presence_policy: who may watch a user's presence */
    int presence_max_publications_per_user; /* PUBLISH soft state of one user; one more is 403 */
    int presence_max_publications;          /* on the node; one more is 503 */
    bool presence_publish_any_user;         /* yes: any authenticated user may publish for any user */
};

enum subs_presence_policy {
    SUBS_PRESENCE_DOMAIN = 0,  /* every user of the domain (and the user itself) */
    SUBS_PRESENCE_ALLOWLIST,   /* the user itself and the names in its allow list (API) */
};

#endif
