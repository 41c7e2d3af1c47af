/* route.c — the proxy's message surgery and addressing helpers (see
 * proxy_int.h): list elements of Route/Via, Max-Forwards, the loop hash in
 * our branch parameters, and URI/Via -> transport destination. Nothing here
 * allocates outside the arena it is given. */
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

/* ---- editing a copy ---- */

int pmsg_clone(const struct sip_msg *src, arena_t *a, struct sip_msg *dst)
{
    *dst = *src;
    uint32_t cap = src->header_count + 16;
    struct sip_header *h = arena_alloc(a, cap * sizeof(*h));
    if (!h) return -1;
    if (src->header_count) memcpy(h, src->headers, src->header_count * sizeof(*h));
    dst->headers = h;
    dst->header_cap = cap;
    return 0;
}

/* Index of a header pointer inside m. */
static uint32_t hindex(const struct sip_msg *m, const struct sip_header *h) { return (uint32_t)(h - m->headers); }

bool pmsg_first_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry)
{
    for (const struct sip_header *h = sip_msg_header(m, type); h; h = sip_msg_header_next(m, h)) {
        str_t cur = h->value;
        if (sip_list_next(&cur, entry)) {
            *hidx = hindex(m, h);
            return true;
        }
    }
    return false;
}

bool pmsg_last_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry)
{
    bool found = false;
    for (const struct sip_header *h = sip_msg_header(m, type); h; h = sip_msg_header_next(m, h)) {
        str_t cur = h->value, item;
        while (sip_list_next(&cur, &item)) {
            *entry = item;
            *hidx = hindex(m, h);
            found = true;
        }
    }
    return found;
}

void pmsg_pop_first_entry(struct sip_msg *m, enum sip_hdr type)
{
    uint32_t idx;
    str_t first;
    if (!pmsg_first_entry(m, type, &idx, &first)) return;
    struct sip_header *h = &m->headers[idx];
    const char *end = h->value.s + h->value.len;
    str_t cur = {first.s + first.len, (size_t)(end - (first.s + first.len))}, next;
    if (sip_list_next(&cur, &next)) h->value = str_make(next.s, (size_t)(end - next.s));
    else sip_msg_remove_header(m, idx);
}

void pmsg_pop_last_entry(struct sip_msg *m, enum sip_hdr type)
{
    uint32_t idx;
    str_t last;
    if (!pmsg_last_entry(m, type, &idx, &last)) return;
    struct sip_header *h = &m->headers[idx];
    str_t cur = h->value, item;
    const char *prev_end = NULL;
    while (sip_list_next(&cur, &item)) {
        if (item.s == last.s) break;
        prev_end = item.s + item.len;
    }
    if (prev_end) h->value = str_make(h->value.s, (size_t)(prev_end - h->value.s));
    else sip_msg_remove_header(m, idx);
}

int pmsg_set_max_forwards(struct sip_msg *m, arena_t *a, int value)
{
    str_t v = arena_printf(a, "%d", value);
    if (!v.s) return -1;
    int32_t i = m->first[SIP_HDR_MAX_FORWARDS];
    if (i >= 0) {
        m->headers[i].value = v;
        /* duplicates would confuse the next hop: keep the first only */
        for (uint32_t k = m->header_count; k-- > (uint32_t)i + 1;)
            if (m->headers[k].type == SIP_HDR_MAX_FORWARDS) sip_msg_remove_header(m, k);
        m->max_forwards = value;
        return 0;
    }
    m->max_forwards = value;
    return sip_msg_add_header(m, a, STR_LIT("Max-Forwards"), v);
}

int pmsg_insert_before(struct sip_msg *m, arena_t *a, enum sip_hdr before_type, int at, str_t name, str_t value)
{
    int32_t i = m->first[before_type];
    return sip_msg_insert_header(m, a, i >= 0 ? i : at, name, value);
}

int pmsg_index_after(const struct sip_msg *m, enum sip_hdr type)
{
    int at = 0;
    for (uint32_t k = 0; k < m->header_count; k++)
        if (m->headers[k].type == type) at = (int)k + 1;
    return at;
}

void pmsg_remove_all(struct sip_msg *m, enum sip_hdr type)
{
    for (uint32_t k = m->header_count; k-- > 0;)
        if (m->headers[k].type == type) sip_msg_remove_header(m, k);
}

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
    if (u->scheme != SIP_SCHEME_SIP) return -1; /* sips needs TLS, which we do not speak yet */
    if (u->transport.len == 0 || str_ieq_cstr(u->transport, "udp")) dest->proto = SIP_TRANSPORT_UDP;
    else if (str_ieq_cstr(u->transport, "tcp")) dest->proto = SIP_TRANSPORT_TCP;
    else return -1;
    str_t h = u->maddr.len ? u->maddr : u->host;
    if (h.len == 0) return -1;
    return fill_dest(h, u->port ? u->port : 5060, dest, host, cap, port);
}

int proxy_via_dest(const struct sip_via *v, struct transport_dest *dest, char *host, size_t cap, uint16_t *port)
{
    memset(dest, 0, sizeof(*dest));
    if (str_ieq_cstr(v->transport, "UDP")) dest->proto = SIP_TRANSPORT_UDP;
    else if (str_ieq_cstr(v->transport, "TCP")) dest->proto = SIP_TRANSPORT_TCP;
    else return -1;
    str_t h = v->received.len ? v->received : v->host;
    if (h.len == 0) return -1;
    uint16_t p = v->has_rport && v->rport ? v->rport : (v->port ? v->port : 5060);
    return fill_dest(h, p, dest, host, cap, port);
}
