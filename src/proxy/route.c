/* route.c — the proxy's addressing helpers (see proxy_int.h): the loop
 * hash in our branch parameters, and URI/Via -> transport destination (the
 * message editing itself is sip/edit.h). Nothing here allocates outside the
 * arena it is given. */
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

/* ---- branch and loop hash (RFC 3261 §16.6 step 8, §16.3 step 4) ---- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, str_t s)
{
    h = fnv(h, s.s, s.len);
    return fnv(h, "\x1f", 1); /* separator: ("ab","c") != ("a","bc") */
}

uint64_t proxy_loop_hash(const struct sip_msg *m, str_t prev_via)
{
    uint64_t h = FNV_OFFSET;
    h = fnv_str(h, m->ruri_raw);
    h = fnv_str(h, m->from.tag);
    h = fnv_str(h, m->to.tag);
    h = fnv_str(h, m->call_id);
    h = fnv(h, &m->cseq.number, sizeof(m->cseq.number));
    /* The previous hop by its sent-by and branch: the received/rport stamps
     * a transport adds must not change the hash. */
    struct sip_via v;
    if (prev_via.len && sip_via_parse(prev_via, &v) == 0) {
        h = fnv_str(h, v.host);
        h = fnv(h, &v.port, sizeof(v.port));
        h = fnv_str(h, v.branch);
    } else {
        h = fnv_str(h, prev_via);
    }
    for (const struct sip_header *x = sip_msg_header(m, SIP_HDR_PROXY_REQUIRE); x; x = sip_msg_header_next(m, x))
        h = fnv_str(h, x->value);
    return h;
}

void proxy_make_branch(char *out, size_t cap, uint64_t loop_hash, uint32_t counter)
{
    snprintf(out, cap, PROXY_BRANCH_PREFIX "%016llx.%08x", (unsigned long long)loop_hash, counter);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool proxy_branch_loop_hash(str_t branch, uint64_t *hash)
{
    size_t pl = sizeof(PROXY_BRANCH_PREFIX) - 1;
    if (branch.len != PROXY_BRANCH_LEN || memcmp(branch.s, PROXY_BRANCH_PREFIX, pl) != 0) return false;
    uint64_t h = 0;
    for (size_t i = 0; i < 16; i++) {
        int d = hexval(branch.s[pl + i]);
        if (d < 0) return false;
        h = h << 4 | (uint64_t)d;
    }
    if (branch.s[pl + 16] != '.') return false;
    *hash = h;
    return true;
}

bool proxy_detect_loop(const struct sip_msg *m, bool (*is_ours)(void *arg, const struct sip_via *v), void *arg)
{
    struct sip_list_iter it;
    str_t item, prev = STR_NULL;
    struct sip_via pv;
    bool prev_ours = false;
    uint64_t prev_hash = 0;
    int guard = 0;
    sip_list_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_list_iter_next(&it, &item) && guard++ < 256) {
        /* item is the via below prev: if prev was one of ours, item was on
         * top when that earlier copy reached us */
        if (prev_ours && proxy_loop_hash(m, item) == prev_hash) return true;
        prev = item;
        prev_ours = sip_via_parse(prev, &pv) == 0 && proxy_branch_loop_hash(pv.branch, &prev_hash) && is_ours(arg, &pv);
    }
    return false;
}

/* ---- destinations ---- */

static str_t unbracket(str_t h)
{
    if (h.len >= 2 && h.s[0] == '[' && h.s[h.len - 1] == ']') return str_make(h.s + 1, h.len - 2);
    return h;
}

static int fill_dest(str_t host, uint16_t port, struct transport_dest *dest, char *out, size_t cap, uint16_t *port_out)
{
    *port_out = port;
    if (transport_addr_parse(host.s, host.len, port, &dest->addr) == 0) return 0;
    str_t bare = unbracket(host);
    if (bare.len == 0 || bare.len >= cap) return -1;
    /* RFC 6761 §6.4: .invalid never resolves; a WebSocket client's Contact
     * (RFC 7118 §5) is reached over its flow or not at all. */
    static const char inv[] = ".invalid";
    size_t il = sizeof(inv) - 1;
    if (bare.len >= il && str_ieq_cstr(str_make(bare.s + bare.len - il, il), inv)) return -1;
    for (size_t i = 0; i < bare.len; i++) {
        char c = bare.s[i];
        /* a DNS name: letters, digits, '-', '.' (RFC 1123) */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return -1;
    }
    memcpy(out, bare.s, bare.len);
    out[bare.len] = '\0';
    return 1;
}

int proxy_uri_dest(const struct sip_uri *u, struct transport_dest *dest, char *host, size_t cap, uint16_t *port)
{
    memset(dest, 0, sizeof(*dest));
    int proto = sip_uri_transport(u); /* sips: TLS or WSS only (RFC 5630 §3) */
    if (proto < 0) return -1;
    dest->proto = (enum sip_transport)proto;
    str_t h = u->maddr.len ? u->maddr : u->host;
    if (h.len == 0) return -1;
    return fill_dest(h, u->port ? u->port : sip_transport_default_port(dest->proto), dest, host, cap, port);
}

int proxy_via_dest(const struct sip_via *v, struct transport_dest *dest, char *host, size_t cap, uint16_t *port)
{
    memset(dest, 0, sizeof(*dest));
    int proto = sip_transport_from_name(v->transport); /* UDP TCP TLS WS WSS */
    if (proto < 0) return -1;
    dest->proto = (enum sip_transport)proto;
    str_t h = v->received.len ? v->received : v->host;
    if (h.len == 0) return -1;
    uint16_t p = v->has_rport && v->rport ? v->rport : (v->port ? v->port : sip_transport_default_port(dest->proto));
    return fill_dest(h, p, dest, host, cap, port);
}
