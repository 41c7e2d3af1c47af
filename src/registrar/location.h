/* location.h — the location service: address-of-record -> contact bindings
 * (RFC 3261 §10.3, data side; the REGISTER handling lives in registrar.c).
 *
 * What it keeps: per AoR, the bindings sorted by q (highest first, newest
 * first among equals), each with one timer on the worker's timer service for
 * its expiry (no scanning), and an index conn_id -> bindings so that a lost
 * TCP connection drops (or flags) exactly its bindings. Each change is
 * written through the store (when there is one); location_update and the
 * removal calls take an optional done callback fired once the write is
 * COMMITTED, so the registrar answers 200 only for durable bindings.
 *
 * Keys are compared byte-exact: the registrar decides the AoR key (e.g.
 * "alice@example.com" or just "alice") and passes the contact URI in one
 * canonical form (RFC 3261 §10.3 step 7 asks for §19.1.4 URI comparison; that
 * needs the URI parser, so it is the caller's job to canonicalise).
 *
 * Callbacks (struct location_callbacks) report what changed so the event
 * layer can publish registration.added|refreshed|removed and
 * user.online|offline. They run inside the location call (or timer_run) that
 * caused the change and must not call functions that modify the location.
 *
 * Pointers to bindings (from lookup, foreach, callbacks) stay valid until the
 * next call that modifies the location or the next timer_run.
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_LOCATION_H
#define CASCADE_REGISTRAR_LOCATION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/str.h"
#include "base/timer.h"
#include "store/store.h"

#define LOCATION_MAX_AOR 512          /* bytes */
#define LOCATION_MAX_FIELD 4096       /* bytes per contact, path, call-id, user-agent, instance */
#define LOCATION_MAX_CONTACTS 256     /* contacts in one location_update */
#define LOCATION_DEFAULT_MAX_PER_AOR 32

enum location_transport {
    LOCATION_TRANSPORT_UDP = 0,
    LOCATION_TRANSPORT_TCP,
    LOCATION_TRANSPORT_TLS,
    LOCATION_TRANSPORT_WS,
    LOCATION_TRANSPORT_WSS,
};

enum location_reason {
    LOCATION_REMOVED_UNREGISTER = 1,  /* expires=0 or Contact: * (RFC 3261 §10.2.2) */
    LOCATION_REMOVED_EXPIRED,         /* not refreshed in time */
    LOCATION_REMOVED_TRANSPORT_LOST,  /* its TCP/TLS/WS connection closed */
    LOCATION_REMOVED_KICKED,          /* administrative removal (API, cascadectl) */
    LOCATION_REMOVED_REPLACED,        /* same +sip.instance and reg-id, new contact (RFC 5626 §6) */
    LOCATION_REMOVED_UNREACHABLE,     /* behind NAT and stopped answering our pings (natping.h) */
    LOCATION_REMOVED_FLOW_FAILED,     /* its Path's edge answered 430 Flow Failed (RFC 5626 §5.3) */
};

/* Binding flags. */
#define LOCATION_FLAG_TRANSPORT_LOST 0x01u  /* its connection is gone; kept until expiry or refresh */
#define LOCATION_FLAG_NAT 0x02u             /* UDP, behind NAT (natping_request_natted): reached at its source, pinged */

/* Errors (negative). The registrar's answer for each is given. */
enum location_error {
    LOCATION_ERR_NOMEM = -1,          /* 500 */
    LOCATION_ERR_INVALID = -2,        /* 400: empty/oversized/control chars, q outside 0..1000 */
    /* RFC 3261 §10.3 steps 6-7: same Call-ID and CSeq not higher than the
     * stored binding's. "The update MUST be aborted and the request fails";
     * since the whole REGISTER fails atomically, answer 500 (Server Internal
     * Error), as the last paragraph of step 7 prescribes for a failed update. */
    LOCATION_ERR_OUT_OF_ORDER = -3,
    LOCATION_ERR_TOO_MANY = -4,       /* per-AoR or total limit: 403 (or 503 with Retry-After) */
    LOCATION_ERR_NOT_FOUND = -5,      /* location_remove: no such binding (404 for the API) */
    LOCATION_ERR_NO_STORE = -6,       /* location_load without a store */
};

union location_addr {
    struct sockaddr sa;               /* sa_family AF_UNSPEC when unknown */
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* One binding, read-only for everyone but location.c. All strings are
 * NUL-terminated, "" when absent. */
struct location_binding {
    const char *aor;
    const char *contact;
    const char *call_id;
    const char *remote;               /* "192.0.2.1:5060", "[2001:db8::1]:5060" or "" */
    const char *path;                 /* RFC 3327 Path values, comma-joined, or "" */
    const char *user_agent;
    const char *instance;             /* +sip.instance (RFC 5626/5627) or "" */
    uint64_t expires_ms;              /* monotonic deadline (the timer service's clock) */
    int64_t expires_wall_ms;          /* the same deadline on the wall clock */
    int64_t received_wall_ms;         /* when the REGISTER that set it arrived */
    uint64_t conn_id;                 /* transport flow, 0 for none (UDP, or lost) */
    union location_addr addr;         /* where the REGISTER came from */
    uint32_t cseq;
    uint32_t reg_id;                  /* RFC 5626 reg-id, 0 when absent */
    uint16_t q1000;                   /* q * 1000 */
    uint8_t transport;                /* enum location_transport */
    uint8_t flags;                    /* LOCATION_FLAG_* */
};

/* What the registrar passes for one Contact of a REGISTER. Slices may point
 * into the received message: everything is copied. */
struct location_binding_in {
    str_t contact;                    /* required */
    uint32_t expires_s;               /* granted expiry; 0 removes the binding */
    int q1000;                        /* 0..1000 (1000 when the contact had no q) */
    str_t call_id;
    uint32_t cseq;
    enum location_transport transport;
    const struct sockaddr *remote_addr; /* may be NULL */
    uint64_t conn_id;                 /* 0 for UDP */
    str_t path;
    str_t user_agent;
    str_t instance;
    uint32_t reg_id;
    uint8_t flags;                    /* LOCATION_FLAG_NAT or 0 */
};

struct location_callbacks {
    void *arg;
    /* Each may be NULL. */
    void (*binding_added)(void *arg, const struct location_binding *b);
    void (*binding_refreshed)(void *arg, const struct location_binding *b);
    void (*binding_removed)(void *arg, const struct location_binding *b, enum location_reason reason);
    /* First binding of an AoR added (after binding_added): user.online. */
    void (*aor_online)(void *arg, const char *aor);
    /* Last binding of an AoR gone (after binding_removed): user.offline. */
    void (*aor_offline)(void *arg, const char *aor, enum location_reason reason);
};

struct location;

/* timers: the worker's timer service (expiries are armed on it).
 * store: where changes are written; NULL keeps everything in memory.
 * cb: copied; may be NULL. Returns NULL on allocation failure. */
struct location *location_new(struct timer_service *timers, struct store *store,
                              const struct location_callbacks *cb);
/* Stops every timer and frees everything; no callbacks, no store writes. */
void location_free(struct location *loc);
/* max_per_aor / max_total: 0 means no limit. Defaults: 32 / none. */
void location_set_limits(struct location *loc, uint32_t max_per_aor, uint32_t max_total);

/* Write-behind refreshes (see location.c): with ms > 0 a REGISTER that only
 * renews a binding is answered without waiting for a commit, and the renewed
 * bindings are written together at most ms later. 0 (the default) writes
 * every change before its answer; switching to 0 writes what is dirty. */
void location_set_write_behind(struct location *loc, uint32_t ms);
/* Writes every renewed-but-unwritten binding now (shutdown: before the store
 * is flushed). */
void location_flush(struct location *loc);
size_t location_dirty_count(const struct location *loc);

/* Reloads bindings from st at start-up (before serving): rows expired at
 * now_wall_ms are dropped (and deleted from st), the others get a timer at
 * now_ms + remaining. Connection-oriented bindings come back with conn_id 0
 * and LOCATION_FLAG_TRANSPORT_LOST: their flows died with the old process.
 * No callbacks fire. Returns the number loaded, LOCATION_ERR_NO_STORE,
 * LOCATION_ERR_NOMEM, or the store's negative errno. */
int location_load(struct location *loc, struct store *st, uint64_t now_ms, int64_t now_wall_ms);

/* Applies the Contacts of one REGISTER for aor, all or nothing (RFC 3261
 * §10.3 step 7): every entry is checked first — an entry whose contact is
 * bound with the same Call-ID and a CSeq >= in[i].cseq fails the whole call
 * with LOCATION_ERR_OUT_OF_ORDER and nothing changes. Then each entry
 * upserts by (aor, contact), or removes it when expires_s is 0 (a missing
 * binding with expires 0 is not an error). An entry with instance and
 * reg_id != 0 that matches another binding's (RFC 5626) replaces it.
 * now_ms is the timer clock. Returns 0 or a negative enum location_error.
 * On 0, cb (may be NULL) is called exactly once with 0 once every resulting
 * store write is committed, or with the first store error (the in-memory
 * change stays; answer 500). Without a store cb runs before this returns. */
int location_update(struct location *loc, str_t aor, const struct location_binding_in *in, size_t n,
                    uint64_t now_ms, store_done_cb cb, void *arg);

/* "Contact: *" with Expires: 0 (RFC 3261 §10.3 step 6): removes every
 * binding of aor, unless one has the same Call-ID and a CSeq >= cseq
 * (LOCATION_ERR_OUT_OF_ORDER, nothing removed). Returns the number removed;
 * cb as for location_update. */
int location_unregister_all(struct location *loc, str_t aor, str_t call_id, uint32_t cseq, store_done_cb cb,
                            void *arg);

/* Removes one binding: 1, or LOCATION_ERR_NOT_FOUND (cb not called). */
int location_remove(struct location *loc, str_t aor, str_t contact, enum location_reason reason,
                    store_done_cb cb, void *arg);
/* Removes every binding of aor; returns how many (cb called even for 0). */
int location_remove_all(struct location *loc, str_t aor, enum location_reason reason, store_done_cb cb,
                        void *arg);
/* Removes every binding that came over connection conn_id (O(its bindings)).
 * Returns how many. */
int location_remove_by_conn(struct location *loc, uint64_t conn_id, enum location_reason reason);
/* Keeps the bindings of conn_id but flags them LOCATION_FLAG_TRANSPORT_LOST
 * and detaches them from the connection (conn_id 0); a refresh clears the
 * flag. Returns how many. */
int location_flag_conn_lost(struct location *loc, uint64_t conn_id);

/* Fills out[0..cap) with aor's bindings, q descending, and returns how many
 * it has (which may exceed cap). */
size_t location_lookup(const struct location *loc, str_t aor, const struct location_binding **out, size_t cap);
size_t location_count(const struct location *loc);      /* bindings */
size_t location_aor_count(const struct location *loc);  /* AoRs with at least one binding */
size_t location_nat_count(const struct location *loc);  /* bindings flagged LOCATION_FLAG_NAT */
/* Every binding, AoR by AoR (in no particular AoR order), until cb returns
 * non-zero (that value is returned). */
int location_foreach(const struct location *loc, int (*cb)(void *arg, const struct location_binding *b),
                     void *arg);

const char *location_reason_name(enum location_reason r);     /* "unregister", "expired", "transport-lost", ... */
const char *location_transport_name(enum location_transport t); /* "udp", "tcp", "tls", "ws", "wss" */
/* -1 when unknown (case-insensitive). */
int location_transport_from_name(const char *name);

#endif
