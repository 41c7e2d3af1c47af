/* digest_config.c — an auth_server_config from the [auth] section, shared
 * by the SIP registrar/proxy server (app/worker.c) and the GB28181 upper
 * role's MD5 server (gb/upper/upper.c), so both get the same nonce lifetimes and
 * failure limits. */
#include <string.h>

#include "auth/digest.h"
#include "auth/auth_config.h"

void auth_server_config_from(struct auth_server_config *out, const struct auth_config *cfg, unsigned algorithms)
{
    memset(out, 0, sizeof *out);
    out->nonce_ttl_s = (uint32_t)(cfg->nonce_ttl_s > 0 ? cfg->nonce_ttl_s : 300);
    out->legacy_nonce_ttl_s = (uint32_t)cfg->nonce_ttl_noqop_s;
    out->algorithms = algorithms;
    out->nonce_max_uses = (uint32_t)cfg->nonce_max_uses;
    out->throttle = (struct auth_throttle_config){
        .max_failures = (uint32_t)cfg->max_failures,
        .max_failures_user = (uint32_t)cfg->max_failures_user,
        .window_s = (uint32_t)cfg->failure_window_s,
        .lockout_s = (uint32_t)cfg->lockout_s,
    };
}
