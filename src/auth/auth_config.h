/* auth_config.h — the [auth] section (keys: auth_config.c). */
#ifndef CASCADE_AUTH_AUTH_CONFIG_H
#define CASCADE_AUTH_AUTH_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct auth_config { /* [auth] */
    char realm[128];
    bool require_auth;
    bool match_user;
    char algorithm[16];              /* MD5 | SHA-256 | both */
    int nonce_ttl_s;
    int nonce_ttl_noqop_s;           /* nonces answered without qop (GB devices): replay window */
    int nonce_max_uses;              /* answers checked per nonce (nc ceiling with qop); 0: no limit */
    int max_failures;                /* failed attempts per source in failure_window, then lockout; 0: off */
    int max_failures_user;           /* ... per user, from any source; 0: off */
    int failure_window_s;            /* counting window, also the auth.failed event interval */
    int lockout_s;                   /* how long a locked source/user gets 403 */
};

#endif
