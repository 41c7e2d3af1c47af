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
};

#endif
