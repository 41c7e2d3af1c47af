/* presence_int.h — the presence state shared by presence.c (publications,
 * allow lists) and publish.c (the SIP side of PUBLISH). Private to src/subs. */
#ifndef CASCADE_SUBS_PRESENCE_INT_H
#define CASCADE_SUBS_PRESENCE_INT_H

#include "base/htable.h"
#include "subs/presence.h"

struct presence {
    struct presence_deps d;
    struct htable by_etag, by_aor, allow; /* publications by tag and by user; allow lists by user */
    uint64_t seq;                         /* publications set so far: orders them newest first */
    uint32_t total;                       /* publications held */
    /* [redis] mirror_presence: the hooks, the other nodes' publications of
     * the AoRs watched here (struct presence_remote by AoR) and those AoRs
     * (struct presence_watched, with their watcher counts) */
    struct presence_mirror_hooks mirror;
    struct htable remote, watched;
    size_t remote_max;
    uint32_t remote_total;
    uint64_t next_id;                     /* this node's publication numbers (their shared ids) */
    /* [redis] mirror_presence_allow: told of each allow list the API sets */
    void (*allow_changed)(void *arg, const char *aor);
    void *allow_arg;
};

#endif
