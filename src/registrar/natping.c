/* natping.c — OPTIONS pings for UDP bindings behind NAT (see natping.h). */
#include "registrar/natping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/worker.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "base/timer.h"
#include "registrar/location.h"
#include "sip/msg.h"

#define NATPING_TICK_MS 1000

struct natping {
    struct worker *w;
    struct timer_node timer;
    uint32_t interval_s;
    uint64_t tick;              /* seconds since start: picks this second's share */
    uint64_t seq;               /* makes each ping's branch and Call-ID unique */
    uint64_t sent, answered, send_errors;
    uint32_t nat_bindings;      /* NAT bindings seen by the last walk */
    uint32_t counting;          /* ... by the walk in progress */
    sbuf_t sb;
};

bool natping_contact_natted(str_t contact_uri, const struct sockaddr_storage *src)
{
    struct sip_uri u;
    if (!src || sip_uri_parse(contact_uri, &u) != 0) return false;
    str_t host = u.host;
    if (host.len >= 2 && host.s[0] == '[' && host.s[host.len - 1] == ']') host = str_make(host.s + 1, host.len - 2);
    struct sockaddr_storage c;
    if (transport_addr_parse(host.s, host.len, u.port ? u.port : 5060, &c) != 0) return true; /* a name */
    return !transport_addr_equal(&c, src);
}

/* One stateless OPTIONS to the binding's source address. */
static void ping(struct natping *np, const struct location_binding *b)
{
    struct worker *w = np->w;
    sbuf_t *s = &np->sb;
    sbuf_clear(s);
    np->seq++;
    char tag[17];
    worker_new_tag(w, tag);
    sbuf_printf(s,
                "OPTIONS %s SIP/2.0\r\n"
                "Via: SIP/2.0/UDP %s:%u;branch=" NATPING_BRANCH_PREFIX "%016llx.%s;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:ping@%s>;tag=%s\r\n"
                "To: <%s>\r\n"
                "Call-ID: np%llx.%s@%s\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n",
                b->contact, w->local_host, (unsigned)w->local_udp_port, (unsigned long long)np->seq, tag,
                w->cfg.sip.domain[0] ? w->cfg.sip.domain : w->local_host, tag, b->contact,
                (unsigned long long)np->seq, tag, w->local_host);
    if (s->failed) return;
    struct transport_dest d;
    memset(&d, 0, sizeof(d));
    d.proto = SIP_TRANSPORT_UDP;
    memcpy(&d.addr, &b->addr, b->addr.sa.sa_family == AF_INET6 ? sizeof(b->addr.in6) : sizeof(b->addr.in));
    if (transport_send(w->transport, &d, s->data, s->len) == 0) np->sent++;
    else np->send_errors++;
}

struct round {
    struct natping *np;
    uint32_t slot;
};

static int visit(void *arg, const struct location_binding *b)
{
    struct round *r = arg;
    if (!(b->flags & LOCATION_FLAG_NAT) || b->transport != LOCATION_TRANSPORT_UDP) return 0;
    if (b->addr.sa.sa_family != AF_INET && b->addr.sa.sa_family != AF_INET6) return 0;
    r->np->counting++;
    if (str_hash(str_from_cstr(b->contact)) % r->np->interval_s == r->slot) ping(r->np, b);
    return 0;
}

static void on_tick(struct timer_node *n, uint64_t now)
{
    struct natping *np = container_of(n, struct natping, timer);
    struct worker *w = np->w;
    /* Every second walks the bindings (no state to keep in step with the
     * location service), pinging the share whose contact hashes to it; not
     * at all while no binding is behind NAT. */
    struct round r = {np, (uint32_t)(np->tick % np->interval_s)};
    np->counting = 0;
    if (w->location && location_nat_count(w->location)) location_foreach(w->location, visit, &r);
    np->nat_bindings = np->counting;
    np->tick++;
    timer_start(&w->timers, &np->timer, now + NATPING_TICK_MS, on_tick);
}

struct natping *natping_new(struct worker *w)
{
    uint32_t interval = (uint32_t)w->cfg.registrar.nat_ping_interval_s;
    if (interval == 0) return NULL;
    struct natping *np = calloc(1, sizeof(*np));
    if (!np) {
        log_error("registrar: no memory for NAT pings: bindings behind NAT are not kept open");
        return NULL;
    }
    np->w = w;
    np->interval_s = interval;
    sbuf_init(&np->sb);
    timer_node_init(&np->timer);
    if (timer_start(&w->timers, &np->timer, worker_now_ms(w) + NATPING_TICK_MS, on_tick) != 0) {
        log_error("registrar: cannot start the NAT ping timer");
        sbuf_free(&np->sb);
        free(np);
        return NULL;
    }
    log_info("registrar: OPTIONS pings every %u s to UDP bindings behind NAT", interval);
    return np;
}

void natping_free(struct natping *np)
{
    if (!np) return;
    timer_stop(&np->w->timers, &np->timer);
    sbuf_free(&np->sb);
    free(np);
}

int natping_on_response(struct natping *np, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!np || !m || m->is_request || m->cseq.method != SIP_OPTIONS) return 0;
    const struct sip_header *h = sip_msg_header(m, SIP_HDR_VIA);
    if (!h) return 0;
    struct sip_via v;
    if (sip_via_parse(h->value, &v) != 0) return 0;
    size_t pl = sizeof(NATPING_BRANCH_PREFIX) - 1;
    if (v.branch.len <= pl || memcmp(v.branch.s, NATPING_BRANCH_PREFIX, pl) != 0) return 0;
    np->answered++;
    log_debug("registrar: NAT ping answered %d by %s", m->status, rx->src_text);
    return 1;
}

void natping_stats_json(const struct natping *np, json_t *o)
{
    json_object_set_new(o, "nat_pings_sent", json_integer(np ? (json_int_t)np->sent : 0));
    json_object_set_new(o, "nat_pings_answered", json_integer(np ? (json_int_t)np->answered : 0));
    json_object_set_new(o, "nat_bindings", json_integer(np ? (json_int_t)np->nat_bindings : 0));
}
