/* throttle.h — limits on failed digest attempts (online password guessing).
 *
 * Failures are counted per source address (IPv4 /32, IPv6 /64: one host
 * holds a whole /64) and per user (realm + name) in a fixed window. Once a
 * count reaches its limit, that source, or that user from any source, is
 * refused for lockout_s, and the caller answers before any digest work.
 * A third key, user + source, rate-limits what the caller reports (an
 * event, a log line): at most one report per window, carrying the number of
 * failures since the previous one.
 *
 *   struct auth_throttle_note n;
 *   if (auth_throttle_locked(t, peer, realm, user, now, &n)) -> 403; log when n.report
 *   ... digest work ...
 *   if (failed) auth_throttle_failed(t, peer, realm, user, now, &n); -> event/log when n.report
 *
 * The table has a fixed size (set-associative, 8 ways per bucket) so memory
 * stays bounded under a flood from many sources; when a bucket is full the
 * least useful entry goes (unlocked and oldest first). Keys are a 64-bit
 * hash seeded at random, so an attacker cannot pick user names whose keys
 * collide with another user's. Times are seconds on the caller's clock, on a
 * wrapping 32-bit scale. Not thread-safe: one per auth_server. */
#ifndef CASCADE_AUTH_THROTTLE_H
#define CASCADE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/str.h"

struct auth_throttle_config {
    uint32_t max_failures;      /* per source within window_s; 0: sources are never locked */
    uint32_t max_failures_user; /* per user within window_s; 0: users are never locked */
    uint32_t window_s;          /* 0 -> 60 */
    uint32_t lockout_s;         /* 0 -> 60 */
    uint32_t entries;           /* table capacity; 0 -> 65536 */
};

enum auth_throttle_lock { AUTH_THROTTLE_NONE = 0, AUTH_THROTTLE_SOURCE, AUTH_THROTTLE_USER };

struct auth_throttle_note {
    enum auth_throttle_lock locked; /* which key is (or just got) locked */
    bool locked_now;                /* auth_throttle_failed: this failure started the lockout */
    bool report;                    /* the caller may publish / log now (rate-limited) */
    uint32_t count;                 /* with report: failures (locked: refusals) since the last report */
    uint32_t retry_after;           /* locked: seconds until the lock ends */
};

/* NULL on allocation or RNG failure. */
struct auth_throttle *auth_throttle_new(const struct auth_throttle_config *cfg);
void auth_throttle_free(struct auth_throttle *t);

/* Whether the source (peer's address; NULL: none) or the user is locked
 * out. Cheap: two table lookups, no hashing of secrets. A refusal is
 * counted on the locked key and reported at most once per window. */
bool auth_throttle_locked(struct auth_throttle *t, const struct sockaddr *peer, str_t realm, str_t user,
                          uint32_t now, struct auth_throttle_note *out);

/* Counts one failed attempt (wrong password, unknown user, forged nonce)
 * against the source, the user and their pair; may start a lockout. */
void auth_throttle_failed(struct auth_throttle *t, const struct sockaddr *peer, str_t realm, str_t user,
                          uint32_t now, struct auth_throttle_note *out);

#endif
