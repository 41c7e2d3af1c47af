/* redis_reply.c — MOVED/ASK and CLUSTER SLOTS readers (redis_reply.h). */
#include "redis/redis_reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/redis_slot.h"

/* Digits only, no sign, no leading '+', at most max; -1 otherwise. */
static long read_uint(const char *p, size_t n, long max)
{
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v <= max ? v : -1;
}

/* Host characters: what a numeric address or a DNS name may hold. */
static int host_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == ':' || c == '-' || c == '_' || c == '%'))
            return 0;
    }
    return 1;
}

int redis_parse_redirect(const char *err, size_t len, struct redis_redirect *out)
{
    memset(out, 0, sizeof(*out));
    size_t skip;
    if (len >= 6 && memcmp(err, "MOVED ", 6) == 0) {
        out->kind = REDIS_REDIRECT_MOVED;
        skip = 6;
    } else if (len >= 4 && memcmp(err, "ASK ", 4) == 0) {
        out->kind = REDIS_REDIRECT_ASK;
        skip = 4;
    } else {
        return REDIS_REDIRECT_NONE;
    }
    const char *p = err + skip, *end = err + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp) goto bad;
    long slot = read_uint(p, (size_t)(sp - p), REDIS_SLOTS - 1);
    if (slot < 0) goto bad;
    const char *addr = sp + 1;
    /* The port follows the last ':' (an IPv6 host holds ':' itself). */
    const char *colon = NULL;
    for (const char *q = addr; q < end; q++)
        if (*q == ':') colon = q;
    if (!colon) goto bad;
    long port = read_uint(colon + 1, (size_t)(end - colon - 1), 65535);
    if (port < 1) goto bad;
    const char *h = addr, *he = colon;
    if (he - h >= 2 && h[0] == '[' && he[-1] == ']') { /* "[::1]:7000" */
        h++;
        he--;
    }
    size_t hn = (size_t)(he - h);
    if (hn >= REDIS_HOST_MAX || !host_ok(h, hn)) goto bad;
    memcpy(out->host, h, hn);
    out->host[hn] = '\0';
    out->slot = (unsigned)slot;
    out->port = (int)port;
    return out->kind;
bad:
    memset(out, 0, sizeof(*out));
    return -EPROTO;
}

/* Checks one entry; fills the master's range and address. */
static int slots_entry(const redisReply *e, unsigned *first, unsigned *last, const redisReply **host,
                       int *port)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) return -EPROTO;
    const redisReply *a = e->element[0], *b = e->element[1], *m = e->element[2];
    if (!a || !b || !m || a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER)
        return -EPROTO;
    if (a->integer < 0 || b->integer < a->integer || b->integer >= REDIS_SLOTS) return -EPROTO;
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !m->element[0] || !m->element[1])
        return -EPROTO;
    const redisReply *h = m->element[0], *p = m->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER) return -EPROTO;
    /* "?" (or "") is how a node says it does not know its own address. */
    if (h->len >= REDIS_HOST_MAX) return -EPROTO;
    if (!(h->len == 1 && h->str[0] == '?') && !host_ok(h->str, h->len)) return -EPROTO;
    if (p->integer < 1 || p->integer > 65535) return -EPROTO;
    *first = (unsigned)a->integer;
    *last = (unsigned)b->integer;
    *host = h;
    *port = (int)p->integer;
    return 0;
}

int redis_parse_slots(const redisReply *reply, redis_slots_range_cb fn, void *arg)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return -EPROTO;
    if (reply->elements > REDIS_SLOTS) return -EPROTO; /* at most one range per slot */
    unsigned first, last;
    const redisReply *h;
    int port;
    for (size_t i = 0; i < reply->elements; i++) {
        if (!reply->element[i]) return -EPROTO;
        if (slots_entry(reply->element[i], &first, &last, &h, &port) < 0) return -EPROTO;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        slots_entry(reply->element[i], &first, &last, &h, &port);
        char host[REDIS_HOST_MAX] = "";
        if (!(h->len == 1 && h->str[0] == '?')) {
            memcpy(host, h->str, h->len);
            host[h->len] = '\0';
        }
        int rc = fn(arg, first, last, host, port);
        if (rc != 0) return rc;
    }
    return (int)reply->elements;
}

size_t redis_seeds_read(const char *list, struct redis_seed *out, size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (p && *p && n < max) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        char text[REDIS_HOST_MAX + 32];
        struct redis_redirect rd;
        if (len && len + 8 < sizeof(text)) {
            int k = snprintf(text, sizeof(text), "MOVED 0 %.*s", (int)len, p);
            if (k > 0 && redis_parse_redirect(text, (size_t)k, &rd) == REDIS_REDIRECT_MOVED && rd.host[0]) {
                snprintf(out[n].host, sizeof(out[n].host), "%s", rd.host);
                out[n++].port = rd.port;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return n;
}
