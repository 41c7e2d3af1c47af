/* fork.c — the proxy's response contexts (RFC 3261 §16.6-§16.10).
 *
 * One struct proxy_call per proxied request: the server transaction, one
 * branch per target (each its own client transaction, or a DNS lookup in
 * flight first), the best final response so far (§16.7), the 401/407
 * challenges collected for aggregation, and one timer: timer C (§16.8) until
 * the final response goes upstream (when it fires, branches that rang are
 * CANCELled and the others count as 408; the final goes up once the
 * CANCELled ones answered, 487 as a rule, or 64*T1 later), then a cleanup
 * deadline for branches that never end (a callee that ignores our CANCEL).
 * A non-INVITE request has a deadline instead of timer C: [proxy]
 * non_invite_timeout_ms, by default 60*T1, a little before the sender's own
 * timer F (64*T1). When it passes, the best answer so far goes upstream, a
 * 408 when no branch answered (as Kamailio's fr_timer does), so the sender
 * learns the target is silent instead of timing out on its own. A
 * deliberate deviation: RFC 4320 §4.2 says a stateful element MUST NOT send
 * 408 to a non-INVITE, reasoning that it always arrives after the sender's
 * timer F; this one is sent before it (issue 9).
 *
 * Lifetime: a call is freed once its final response went upstream (or the
 * server transaction is gone) and none of its branches has a live client
 * transaction or lookup. Client transactions report their end through
 * on_terminated, from timer callbacks only, so a call is never freed under
 * a caller's feet. The server transaction is not touched after the final
 * response: later 2xx (forks) are forwarded statelessly by Via. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "proxy/proxy_int.h"
#include "registrar/location.h"
#include "txn/txn.h"

struct proxy_branch;

/* A name lookup in flight (RFC 3263 reduced to A/AAAA). */
struct proxy_dns {
    uv_getaddrinfo_t req;
    struct proxy *p;                  /* NULL: the proxy is gone, just free */
    struct proxy_branch *br;          /* NULL: a stateless send, or abandoned */
    bool stateless;
    struct transport_dest dest;
    uint16_t port;
    struct proxy_dns *prev, *next;    /* p->dns */
    size_t len;
    char data[];                      /* the message to send */
};

struct proxy_branch {
    struct proxy_call *call;
    struct txn *ct;                   /* live client transaction we listen to */
    struct proxy_dns *dns;            /* lookup in flight */
    bool provisional, final;
    bool by_token;                    /* sent over a flow named by a flow token: failure is 430 */
    int status;
    /* The binding this branch is, when it came through an edge's Path:
     * "aor\0contact\0path" (malloc), removed when the edge answers 430
     * and the binding still has that Path; or NULL. */
    char *binding;
    char branch[PROXY_BRANCH_LEN + 1];
};

struct proxy_call {
    struct proxy *p;
    struct txn *st;                   /* NULL once the final went upstream */
    struct hnode node;                /* in p->by_st, while linked */
    struct proxy_call *prev, *next;   /* p->calls */
    struct timer_node timer;          /* timer C, then cleanup */
    bool invite, final_sent;
    bool timer_c_fired;               /* §16.8 done: waiting for the CANCELled branches */
                                      /* (non-INVITE: the deadline passed) */
    enum sip_method method;
    int live;                         /* client transactions + lookups */
    int best_status, best_rank;
    bool sips_refused;                /* a branch had no TLS/WSS hop for its sips: request */
    bool cancelled;                   /* the caller CANCELled (the observer's "cancelled") */
    char *best;                       /* raw bytes of the best final so far; NULL: synthetic */
    size_t best_len;
    sbuf_t challenges;                /* WWW-/Proxy-Authenticate lines of every 401/407 */
    char src[TRANSPORT_ADDR_TEXT];    /* for logs */
    char offline_aor[LOCATION_MAX_AOR]; /* a MESSAGE that may be kept for this user; "" none */
    size_t n;
    struct proxy_branch br[];
};

static void call_timer(struct timer_node *n, uint64_t now);

/* Tells the observer (proxy_deps.on_call) what a response did to an INVITE. */
static void observe(struct proxy_call *c, const struct sip_msg *req, const struct sip_msg *resp, int status)
{
    struct proxy *p = c->p;
    if (!p->d.on_call || !c->invite || !req) return;
    struct proxy_call_event ev = {.what = PROXY_CALL_RESPONSE, .req = req, .resp = resp, .status = status,
                                  .cancelled = c->cancelled, .timed_out = c->timer_c_fired};
    p->d.on_call(p->d.on_call_arg, &ev);
}

static void branch_fail(struct proxy_branch *b, int status);
static void dns_start(struct proxy *p, struct proxy_branch *br, const struct transport_dest *dest, const char *host,
                      uint16_t port, const char *data, size_t len);

#define CLEANUP_MS(p) (64ull * (p)->t1_ms)

/* ---- server transaction -> call ---- */

static uint32_t st_hash(const struct txn *st) { return htable_hash_u64((uint64_t)(uintptr_t)st); }

static int call_hash(struct proxy_call *c)
{
    return htable_insert(&c->p->by_st, &c->node, st_hash(c->st)) == 0 ? 0 : -1;
}

static void call_unhash(struct proxy_call *c) { htable_remove(&c->p->by_st, &c->node); }

struct proxy_call *proxy_call_find(struct proxy *p, const struct txn *st)
{
    for (struct hnode *n = htable_first(&p->by_st, st_hash(st)); n; n = htable_next(n)) {
        struct proxy_call *c = container_of(n, struct proxy_call, node);
        if (c->st == st) return c;
    }
    return NULL;
}

/* ---- freeing ---- */

static void call_free(struct proxy_call *c)
{
    struct proxy *p = c->p;
    timer_stop(p->d.timers, &c->timer);
    call_unhash(c);
    for (size_t i = 0; i < c->n; i++) {
        struct proxy_branch *b = &c->br[i];
        if (b->ct) txn_client_detach(b->ct);
        if (b->dns) b->dns->br = NULL;
        free(b->binding);
    }
    if (c->prev) c->prev->next = c->next;
    else p->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    p->stats.calls_live--;
    free(c->best);
    sbuf_free(&c->challenges);
    free(c);
}

static void maybe_free(struct proxy_call *c)
{
    if (c->final_sent && c->live <= 0) call_free(c);
}

void proxy_calls_free(struct proxy *p)
{
    while (p->calls) call_free(p->calls);
    for (struct proxy_dns *d = p->dns; d; d = d->next) {
        d->p = NULL; /* the callback frees it */
        d->br = NULL;
        uv_cancel((uv_req_t *)&d->req);
    }
    p->dns = NULL;
}

/* ---- choosing the response (§16.7 step 6) ---- */

/* Lower is better: 6xx first, then the lowest class; inside 4xx the codes
 * §16.7 names as informative to the caller, then other real answers, then
 * 487 (what our own CANCEL produced), then what we made up ourselves. */
static int response_rank(int status, bool synthetic)
{
    int cls = status / 100;
    int base = cls == 6 ? 0 : cls == 3 ? 100 : cls == 4 ? 200 : 300;
    int sub = 10;
    if (status == 401 || status == 407 || status == 415 || status == 420 || status == 484) sub = 0;
    if (status == 487) sub = 20;
    if (synthetic) sub = 30;
    return base + sub;
}

static void collect_challenges(struct proxy_call *c, const struct sip_msg *resp)
{
    for (uint32_t i = 0; i < resp->header_count; i++) {
        const struct sip_header *h = &resp->headers[i];
        if (h->type != SIP_HDR_WWW_AUTHENTICATE && h->type != SIP_HDR_PROXY_AUTHENTICATE) continue;
        sbuf_append_cstr(&c->challenges, h->type == SIP_HDR_WWW_AUTHENTICATE ? "WWW-Authenticate" : "Proxy-Authenticate");
        sbuf_append_cstr(&c->challenges, ": ");
        sbuf_append_str(&c->challenges, h->value);
        sbuf_append_cstr(&c->challenges, "\r\n");
    }
}

static void consider(struct proxy_call *c, const struct sip_msg *resp, int status)
{
    if (resp && (status == 401 || status == 407)) collect_challenges(c, resp);
    int rank = response_rank(status, resp == NULL);
    if (c->best_status && rank >= c->best_rank) return;
    char *copy = NULL;
    if (resp) {
        copy = malloc(resp->len);
        if (!copy) {
            log_error("proxy: out of memory keeping a %d response", status);
            resp = NULL;
        } else {
            memcpy(copy, resp->buf, resp->len);
        }
    }
    free(c->best);
    c->best = copy;
    c->best_len = copy ? resp->len : 0;
    c->best_status = status;
    c->best_rank = rank;
}

/* Copies resp, pops our Via (§16.7 step 9) and, for an aggregated 401/407,
 * puts every collected challenge in it. Result in p->sb. */
static int build_upstream(struct proxy_call *c, const struct sip_msg *resp, bool aggregate)
{
    struct proxy *p = c->p;
    struct sip_msg m;
    if (sip_edit_clone(resp, &p->arena, &m) != 0) return -1;
    sip_edit_pop_first_entry(&m, SIP_HDR_VIA);
    if (aggregate && c->challenges.len) {
        sip_edit_remove_all(&m, SIP_HDR_WWW_AUTHENTICATE);
        sip_edit_remove_all(&m, SIP_HDR_PROXY_AUTHENTICATE);
        str_t all = sbuf_str(&c->challenges);
        const char *s = all.s, *end = all.s + all.len;
        while (s < end) {
            const char *nl = memchr(s, '\r', (size_t)(end - s));
            if (!nl) nl = end;
            const char *colon = memchr(s, ':', (size_t)(nl - s));
            if (colon && sip_msg_add_header(&m, &p->arena, str_make(s, (size_t)(colon - s)),
                                            str_make(colon + 2, (size_t)(nl - colon - 2))) != 0)
                return -1;
            s = nl + 2;
        }
    }
    sbuf_clear(&p->sb);
    return sip_print(&m, &p->sb) == 0 && !p->sb.failed ? 0 : -1;
}

static void start_cleanup(struct proxy_call *c)
{
    struct proxy *p = c->p;
    if (c->live > 0) timer_start(p->d.timers, &c->timer, timer_now(p->d.timers) + CLEANUP_MS(p), call_timer);
    else timer_stop(p->d.timers, &c->timer);
}

/* The final response has gone (or cannot go) upstream: forget st. */
static void mark_final(struct proxy_call *c)
{
    c->final_sent = true;
    call_unhash(c);
    c->st = NULL;
    start_cleanup(c);
}

static void send_final(struct proxy_call *c)
{
    struct proxy *p = c->p;
    struct txn *st = c->st;
    int status = c->best_status ? c->best_status : 500;
    mark_final(c);
    if (!st) return;
    /* Registered but unreachable (no answer, unavailable, transport error):
     * a MESSAGE may still be kept for later (offline_msg.h). */
    if (c->offline_aor[0] && (status == 408 || status == 480 || status == 503)) {
        const struct sip_msg *req = txn_request(st);
        if (req && proxy_offline_offer(p, st, req, c->offline_aor)) {
            log_info("proxy: MESSAGE from %s: every branch failed (%d), offered for later", c->src, status);
            return;
        }
    }
    int rc = -1;
    if (c->best && status != 503) {
        struct sip_msg resp;
        struct sip_parse_limits lim;
        struct sip_parse_error err;
        sip_parse_limits_default(&lim);
        if (lim.max_message_bytes < c->best_len) lim.max_message_bytes = (uint32_t)c->best_len;
        if (sip_parse(c->best, c->best_len, &p->arena, &lim, &resp, &err) == 0 &&
            build_upstream(c, &resp, status == 401 || status == 407) == 0) {
            observe(c, txn_request(st), &resp, status);
            rc = txn_respond_bytes(st, status, p->sb.data, p->sb.len);
        }
        if (rc < 0) log_warn("proxy: cannot forward the %d final to %s (%d)", status, c->src, rc);
        return;
    }
    /* §16.7 step 6: a 503 becomes 500; §16.9: a transport error counts as 503. */
    const char *reason = NULL;
    str_t extra = STR_NULL;
    if (status == 503) {
        status = 500;
        reason = "Next Hop Failed";
    } else if (status == 430) {
        reason = "Flow Failed"; /* RFC 5626 §5.3 */
    } else if (status == 480 && c->sips_refused) {
        reason = "SIPS Not Allowed";
        extra = proxy_sips_warning(p);
    }
    log_info("proxy: %d to %s (no better answer from %zu branch(es))", status, c->src, c->n);
    observe(c, txn_request(st), NULL, status);
    proxy_reply(p, st, status, reason, extra);
}

static void check_complete(struct proxy_call *c)
{
    if (c->final_sent) return;
    for (size_t i = 0; i < c->n; i++)
        if (!c->br[i].final) return;
    send_final(c);
}

/* CANCEL every branch still pending but except (§16.7 step 10, §16.10). */
static void cancel_branches(struct proxy_call *c, const struct proxy_branch *except)
{
    for (size_t i = 0; i < c->n; i++) {
        struct proxy_branch *b = &c->br[i];
        if (b == except || b->final) continue;
        if (b->dns) { /* not sent yet: never will be */
            b->dns->br = NULL;
            b->dns = NULL;
            c->live--;
            b->final = true;
            b->status = 487;
            if (!c->final_sent) consider(c, NULL, 487);
        } else if (b->ct && c->invite) {
            int rc = txn_client_cancel(b->ct);
            if (rc < 0) log_debug("proxy: CANCEL of branch %s not sent (%d)", b->branch, rc);
        }
    }
}

void proxy_call_cancel(struct proxy_call *c)
{
    c->cancelled = true;
    cancel_branches(c, NULL);
    check_complete(c);
    maybe_free(c);
}

void proxy_call_server_gone(struct proxy_call *c)
{
    log_info("proxy: server transaction from %s ended before a final response", c->src);
    cancel_branches(c, NULL);
    mark_final(c);
    maybe_free(c);
}

static void call_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct proxy_call *c = container_of(n, struct proxy_call, timer);
    struct proxy *p = c->p;
    arena_reset(&p->arena);
    if (!c->final_sent && !c->invite) {
        /* The non-INVITE deadline: silent branches count as 408 and the best
         * answer goes up now; the branches run out on their own (their
         * late answers are dropped, §16.7 step 2). */
        c->timer_c_fired = true;
        p->stats.non_invite_timeouts++;
        log_info("proxy: no final to %s from %s in time: best answer upstream",
                 sip_method_name(c->method), c->src);
        for (size_t i = 0; i < c->n; i++) {
            struct proxy_branch *b = &c->br[i];
            if (b->final) continue;
            if (b->dns) {
                b->dns->br = NULL;
                b->dns = NULL;
                c->live--;
            }
            branch_fail(b, 408);
        }
        check_complete(c);
        maybe_free(c);
        return;
    }
    if (!c->final_sent && !c->timer_c_fired) {
        /* §16.8 timer C: a branch that rang is CANCELled (its 487 is to
         * come); one that never answered counts as a 408 and is let go. */
        c->timer_c_fired = true;
        p->stats.timer_c++;
        log_info("proxy: timer C for INVITE from %s: CANCEL the ringing branches, 408 for the silent ones", c->src);
        for (size_t i = 0; i < c->n; i++) {
            struct proxy_branch *b = &c->br[i];
            if (b->final) continue;
            if (b->ct && b->provisional) {
                int rc = txn_client_cancel(b->ct);
                if (rc == 0) continue;
                log_debug("proxy: CANCEL of branch %s not sent (%d)", b->branch, rc);
            }
            if (b->dns) {
                b->dns->br = NULL;
                b->dns = NULL;
                c->live--;
            } else if (b->ct) {
                txn_client_detach(b->ct);
                b->ct = NULL;
                c->live--;
            }
            branch_fail(b, 408);
        }
        check_complete(c);
        /* A callee that ignores the CANCEL: the final goes up 64*T1 later. */
        if (!c->final_sent) timer_start(p->d.timers, &c->timer, timer_now(p->d.timers) + CLEANUP_MS(p), call_timer);
        maybe_free(c);
        return;
    }
    if (!c->final_sent) {
        log_info("proxy: no final after CANCEL for the INVITE from %s: 408", c->src);
        consider(c, NULL, 408);
        send_final(c);
        maybe_free(c);
        return;
    }
    /* Cleanup: branches that never ended (a callee ignoring CANCEL). */
    for (size_t i = 0; i < c->n; i++) {
        struct proxy_branch *b = &c->br[i];
        if (b->ct) {
            txn_client_detach(b->ct);
            b->ct = NULL;
        }
    }
    c->live = 0;
    call_free(c);
}

/* The non-INVITE deadline (see the top of the file). */
static void arm_non_invite_deadline(struct proxy_call *c)
{
    struct proxy *p = c->p;
    uint64_t ms = p->cfg.non_invite_timeout_ms;
    if (!ms) ms = 60ull * p->t1_ms;
    timer_start(p->d.timers, &c->timer, timer_now(p->d.timers) + ms, call_timer);
}

static void arm_timer_c(struct proxy_call *c)
{
    struct proxy *p = c->p;
    uint64_t ms = (uint64_t)(p->cfg.invite_timeout_s ? p->cfg.invite_timeout_s : 180) * 1000;
    timer_start(p->d.timers, &c->timer, timer_now(p->d.timers) + ms, call_timer);
}

/* ---- branch callbacks ---- */

static void branch_fail(struct proxy_branch *b, int status)
{
    b->final = true;
    b->status = status;
    if (!b->call->final_sent) consider(b->call, NULL, status);
}

static void br_on_response(void *arg, struct txn *ct, const struct sip_msg *resp, const struct transport_rx *rx)
{
    (void)ct;
    struct proxy_branch *b = arg;
    struct proxy_call *c = b->call;
    struct proxy *p = c->p;
    int s = resp->status;
    if (s == 100) return; /* hop by hop (§16.7 step 3) */
    arena_reset(&p->arena);
    if (s < 200) {
        b->provisional = true;
        if (c->final_sent || !c->st) return;
        if (c->invite && !c->timer_c_fired) arm_timer_c(c); /* §16.8: reset by each provisional */
        if (build_upstream(c, resp, false) == 0) {
            observe(c, txn_request(c->st), resp, s);
            int rc = txn_respond_bytes(c->st, s, p->sb.data, p->sb.len);
            if (rc < 0 && rc != -EALREADY) log_warn("proxy: %d not forwarded to %s (%d)", s, c->src, rc);
        }
        return;
    }
    b->final = true;
    b->status = s;
    if (s < 300) {
        /* §16.7 step 5: a 2xx goes upstream at once; the rest are CANCELled. */
        if (!c->final_sent && c->st) {
            int rc = build_upstream(c, resp, false);
            observe(c, txn_request(c->st), resp, s);
            if (rc == 0) rc = txn_respond_bytes(c->st, s, p->sb.data, p->sb.len);
            if (rc < 0) log_warn("proxy: %d from %s not forwarded to %s (%d)", s, rx->src_text, c->src, rc);
            mark_final(c);
        } else if (c->invite) {
            /* another fork's 2xx: the caller needs it to ACK/BYE that dialog */
            proxy_forward_response_stateless(p, resp, rx->src_text);
        }
        if (c->invite) cancel_branches(c, b);
        maybe_free(c);
        return;
    }
    if (s == 430 && b->binding) {
        /* RFC 5626 §5.3: the edge no longer has the flow this binding's
         * Path names: the binding goes at once (the user's other bindings
         * are tried, as branches of this very fork), and the caller is not
         * told about a flow it knows nothing of: 480 when nothing better
         * comes from another branch. */
        const char *aor = b->binding, *contact = aor + strlen(aor) + 1, *path = contact + strlen(contact) + 1;
        bool same = false;
        const struct location_binding *bs[PROXY_MAX_BRANCHES];
        size_t nb = p->d.location ? location_lookup(p->d.location, str_from_cstr(aor), bs, PROXY_MAX_BRANCHES) : 0;
        for (size_t i = 0; i < nb && i < PROXY_MAX_BRANCHES && !same; i++)
            same = !strcmp(bs[i]->contact, contact) && !strcmp(bs[i]->path, path);
        /* Registered again meanwhile (a new flow, a new Path): that binding stays. */
        int rc = same ? location_remove(p->d.location, str_from_cstr(aor), str_from_cstr(contact),
                                        LOCATION_REMOVED_FLOW_FAILED, NULL, NULL)
                      : LOCATION_ERR_NOT_FOUND;
        if (rc >= 0) p->stats.flow_failed_removed++;
        log_info("proxy: 430 Flow Failed from %s for %s (%s): binding %s", rx->src_text, aor, contact,
                 rc >= 0 ? "removed" : "gone or registered again since");
        if (!c->final_sent) consider(c, NULL, 480);
        check_complete(c);
        maybe_free(c);
        return;
    }
    if (c->final_sent) return;
    consider(c, resp, s);
    if (s >= 600 && c->invite) cancel_branches(c, b); /* §16.7 step 5 */
    check_complete(c);
    maybe_free(c);
}

static void br_on_failure(void *arg, struct txn *ct, int status)
{
    (void)ct;
    struct proxy_branch *b = arg;
    struct proxy_call *c = b->call;
    arena_reset(&c->p->arena);
    if (b->final) return;
    log_info("proxy: branch %s of a request from %s failed: %d", b->branch, c->src, status);
    /* RFC 5626 §5.3: the flow a token named is gone (the transport
     * reports 503 for a connection it no longer has). */
    if (b->by_token && status == 503) {
        status = 430;
        c->p->stats.flow_failed++;
    }
    branch_fail(b, status);
    check_complete(c);
    maybe_free(c);
}

static void br_on_terminated(void *arg, struct txn *ct)
{
    (void)ct;
    struct proxy_branch *b = arg;
    struct proxy_call *c = b->call;
    b->ct = NULL;
    c->live--;
    if (!b->final) branch_fail(b, 503); /* should not happen: ended without a final */
    arena_reset(&c->p->arena);
    check_complete(c);
    maybe_free(c);
}

static const struct txn_client_cb branch_cb = {
    .on_response = br_on_response,
    .on_failure = br_on_failure,
    .on_terminated = br_on_terminated,
};

static void branch_send(struct proxy_branch *b, const struct transport_dest *dest, const char *data, size_t len)
{
    struct proxy_call *c = b->call;
    struct proxy *p = c->p;
    b->ct = txn_client_new(p->d.txn, dest, data, len, str_from_cstr(b->branch), c->method, &branch_cb, b);
    if (!b->ct) {
        log_error("proxy: client transaction for branch %s refused", b->branch);
        branch_fail(b, 500);
        return;
    }
    c->live++;
    p->stats.forwarded++;
}

/* Whether the request came from a client only its flow reaches (RFC 5626
 * §5.3): over WS/WSS, or over another connection with ;ob in its Contact. */
static bool caller_needs_token(struct proxy *p, const struct transport_rx *rx)
{
    if (!sip_transport_is_stream(rx->proto) || !rx->conn_id) return false;
    if (sip_transport_is_ws(rx->proto)) return true;
    struct sip_contact *list = NULL;
    bool star = false;
    if (sip_msg_contacts(rx->msg, &p->arena, &list, &star) < 0 || !list) return false;
    return sip_param_get(list->addr.uri.params, "ob", NULL);
}

/* One of our Record-Route entries, facing a hop over proto. A sips:
 * request gets sips: URIs (RFC 5630 §5.3, without transport=tls, which
 * RFC 5630 deprecates); otherwise the transport parameter names the hop's
 * transport (tcp, tls, ws; WSS is ws as well, RFC 7118 §5.2, the scheme
 * telling the two apart). token (may be NULL): a flow token for the user
 * part, marked with ;ob (RFC 5626 §5.3). */
static str_t rr_entry(arena_t *a, const struct sip_local *l, bool sips, enum sip_transport proto, const char *host,
                      const char *token)
{
    const char *tp = "";
    if (proto == SIP_TRANSPORT_TCP) tp = ";transport=tcp";
    else if (proto == SIP_TRANSPORT_TLS && !sips) tp = ";transport=tls";
    else if (sip_transport_is_ws(proto)) tp = ";transport=ws";
    return arena_printf(a, "<%s:%s%s%s:%u%s;lr%s>", sips ? "sips" : "sip", token ? token : "", token ? "@" : "",
                        host, sip_local_port(l, proto), tp, token ? ";ob" : "");
}

/* §16.6 step 4: record-route m, which goes to dest for target t. One entry
 * when both hops share a transport; two (RFC 5658), the one facing the
 * callee on top, when the transport changes or a hop is a flow that
 * needs a token (each direction then pops the entry facing it). */
static int record_route_add(struct proxy *p, struct sip_msg *m, arena_t *a, const struct transport_rx *rx,
                            const struct proxy_target *t, const struct transport_dest *dest, const char *host)
{
    const struct sip_local *l = p->d.local;
    bool sips = m->ruri.scheme == SIP_SCHEME_SIPS;
    char tok_in[PROXY_PATH_TOKEN_MAX + 1], tok_out[PROXY_PATH_TOKEN_MAX + 1];
    bool has_in, has_out;
    if (p->edge) {
        /* Edge mode: the entry facing a client of ours names its flow
         * (UDP too) with a Path token, so that requests later in the
         * dialog reach it as the initial one did. */
        struct transport_dest in = {.proto = rx->proto, .addr = rx->src, .listener_id = rx->listener_id};
        if (sip_transport_is_stream(rx->proto)) in.conn_id = rx->conn_id;
        has_in = (t->edge_up || caller_needs_token(p, rx)) &&
                 proxy_path_token_make(&p->flow_key, &in, tok_in, sizeof(tok_in)) > 0;
        has_out = (t->edge_client || (t->flow_token && t->use_flow && dest->conn_id)) &&
                  proxy_path_token_make(&p->flow_key, dest, tok_out, sizeof(tok_out)) > 0;
    } else {
        has_in = caller_needs_token(p, rx);
        has_out = t->flow_token && t->use_flow && dest->conn_id;
        if (has_in) proxy_flow_token_make(&p->flow_key, rx->proto, rx->conn_id, tok_in, sizeof(tok_in));
        if (has_out) proxy_flow_token_make(&p->flow_key, dest->proto, dest->conn_id, tok_out, sizeof(tok_out));
    }
    int at = sip_edit_index_after(m, SIP_HDR_VIA); /* after the Vias, above other Record-Routes */
    str_t rr_in = rr_entry(a, l, sips, rx->proto, host, has_in ? tok_in : NULL);
    if (!rr_in.s || sip_edit_insert_before(m, a, SIP_HDR_RECORD_ROUTE, at, STR_LIT("Record-Route"), rr_in) != 0)
        return -1;
    if (dest->proto != rx->proto || has_in || has_out) {
        str_t rr_out = rr_entry(a, l, sips, dest->proto, host, has_out ? tok_out : NULL);
        if (!rr_out.s || sip_edit_insert_before(m, a, SIP_HDR_RECORD_ROUTE, at, STR_LIT("Record-Route"), rr_out) != 0)
            return -1;
    }
    return 0;
}

/* Builds the copy for one target (§16.6 steps 1-8) and sends it. */
static void branch_start(struct proxy_call *c, struct proxy_branch *b, const struct transport_rx *rx,
                         const struct sip_msg *req, const struct proxy_target *t, bool record_route,
                         uint64_t loop_hash, const char *via_host)
{
    struct proxy *p = c->p;
    const struct sip_local *l = p->d.local;
    arena_t *a = &p->arena;
    b->call = c;
    proxy_make_branch(b->branch, sizeof(b->branch), loop_hash, ++p->counter);
    struct sip_msg m;
    if (sip_edit_clone(req, a, &m) != 0) goto nomem;
    if (t->ruri.len && sip_msg_set_ruri(&m, a, t->ruri) != 0) {
        log_warn("proxy: target %.*s is not a usable Request-URI", STR_FMT(t->ruri));
        branch_fail(b, 500);
        return;
    }
    if (sip_edit_set_max_forwards(&m, a, req->max_forwards >= 0 ? req->max_forwards - 1 : 70) != 0) goto nomem;
    /* RFC 3327 §5.4: a binding's Path becomes the Route set's head. */
    if (t->path.len && sip_edit_insert_before(&m, a, SIP_HDR_ROUTE, -1, STR_LIT("Route"), t->path) != 0) goto nomem;

    struct transport_dest dest;
    char host[PROXY_HOST_MAX];
    uint16_t port = 0;
    int rc = proxy_next_hop(p, &m, a, t, &dest, host, sizeof(host), &port);
    if (rc < 0) {
        log_warn("proxy: no usable next hop for %.*s (from %s)", STR_FMT(m.ruri_raw), c->src);
        branch_fail(b, 503);
        return;
    }
    if (proxy_sips_demanded(&m) && !sip_transport_is_secure(dest.proto)) {
        /* RFC 5630 §5.3 (no last-hop exception): never a sips: request
         * over UDP/TCP/WS. */
        log_info("proxy: branch %s: sips: request and the next hop is over %s: refused", b->branch,
                 sip_transport_param(dest.proto));
        c->sips_refused = true;
        branch_fail(b, 480);
        return;
    }
    b->by_token = t->by_token;
    if (t->binding_aor && t->binding_contact && t->path.len) {
        size_t la = strlen(t->binding_aor), lc = strlen(t->binding_contact);
        b->binding = malloc(la + lc + t->path.len + 3);
        if (b->binding) {
            memcpy(b->binding, t->binding_aor, la + 1);
            memcpy(b->binding + la + 1, t->binding_contact, lc + 1);
            memcpy(b->binding + la + lc + 2, t->path.s, t->path.len);
            b->binding[la + lc + 2 + t->path.len] = '\0';
        }
    }
    uint16_t out_port = sip_local_port(l, dest.proto);
    if (record_route && record_route_add(p, &m, a, rx, t, &dest, via_host) != 0) goto nomem;
    /* §16.6 step 8: our Via on top. */
    str_t via = arena_printf(a, "SIP/2.0/%s %s:%u;branch=%s", transport_name(dest.proto), via_host, out_port, b->branch);
    if (!via.s || sip_msg_insert_header(&m, a, 0, STR_LIT("Via"), via) != 0) goto nomem;
    sbuf_clear(&p->sb);
    if (sip_print(&m, &p->sb) != 0 || p->sb.failed) goto nomem;
    if (rc == 1) {
        dns_start(p, b, &dest, host, port, p->sb.data, p->sb.len);
        return;
    }
    branch_send(b, &dest, p->sb.data, p->sb.len);
    return;
nomem:
    log_error("proxy: out of memory forwarding a request from %s", c->src);
    branch_fail(b, 500);
}

void proxy_fork(struct proxy *p, struct txn *st, const struct transport_rx *rx, const struct sip_msg *req,
                const struct proxy_target *targets, size_t n, bool record_route, const char *offline_aor)
{
    if (n > PROXY_MAX_BRANCHES) n = PROXY_MAX_BRANCHES;
    struct proxy_call *c = calloc(1, sizeof(*c) + n * sizeof(c->br[0]));
    if (!c) {
        log_error("proxy: out of memory for a request from %s", rx->src_text);
        proxy_reply(p, st, 500, "Server Internal Error", STR_NULL);
        return;
    }
    c->p = p;
    c->st = st;
    c->n = n;
    c->invite = req->method == SIP_INVITE;
    c->method = req->method;
    sbuf_init(&c->challenges);
    timer_node_init(&c->timer);
    snprintf(c->src, sizeof(c->src), "%s", rx->src_text);
    if (offline_aor) snprintf(c->offline_aor, sizeof(c->offline_aor), "%s", offline_aor);
    if (call_hash(c) != 0) {
        free(c);
        proxy_reply(p, st, 500, "Server Internal Error", STR_NULL);
        return;
    }
    c->next = p->calls;
    if (p->calls) p->calls->prev = c;
    p->calls = c;
    p->stats.calls_live++;

    /* The loop hash of the request as received (R-URI before translation,
     * top Via as it arrived): §16.6 step 8. */
    uint32_t idx;
    str_t top = STR_NULL;
    sip_edit_first_entry(rx->msg, SIP_HDR_VIA, &idx, &top);
    uint64_t lh = proxy_loop_hash(rx->msg, top);
    char via_host[80];
    proxy_via_host(p, rx, via_host, sizeof(via_host));
    if (p->d.on_call && (c->invite || (req->method == SIP_BYE && req->to.tag.len))) {
        struct proxy_call_event ev = {.what = c->invite ? PROXY_CALL_INVITE : PROXY_CALL_BYE, .req = rx->msg};
        p->d.on_call(p->d.on_call_arg, &ev);
    }
    for (size_t i = 0; i < n; i++) branch_start(c, &c->br[i], rx, req, &targets[i], record_route, lh, via_host);
    if (c->invite) arm_timer_c(c);
    else arm_non_invite_deadline(c);
    check_complete(c);
    maybe_free(c);
}

/* ---- name lookups and stateless sends ---- */

static void dns_unlink(struct proxy *p, struct proxy_dns *d)
{
    if (!p) return;
    if (d->prev) d->prev->next = d->next;
    else p->dns = d->next;
    if (d->next) d->next->prev = d->prev;
}

static void dns_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct proxy_dns *d = container_of(req, struct proxy_dns, req);
    struct proxy *p = d->p;
    dns_unlink(p, d);
    const struct addrinfo *ai = NULL;
    for (const struct addrinfo *x = status == 0 ? res : NULL; x; x = x->ai_next) {
        if (x->ai_family == AF_INET) {
            ai = x;
            break;
        }
        if (x->ai_family == AF_INET6 && !ai) ai = x;
    }
    if (ai) {
        memcpy(&d->dest.addr, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET) ((struct sockaddr_in *)&d->dest.addr)->sin_port = htons(d->port);
        else ((struct sockaddr_in6 *)&d->dest.addr)->sin6_port = htons(d->port);
    }
    if (res) uv_freeaddrinfo(res);
    if (p && !ai) p->stats.dns_failures++;
    if (p && d->stateless) {
        if (ai) {
            int rc = p->d.send ? p->d.send(p->d.send_arg, &d->dest, d->data, d->len) : UV_ENOTCONN;
            if (rc < 0) log_info_rl("proxy: stateless send failed: %s", uv_strerror(rc));
        }
    } else if (p && d->br) {
        struct proxy_branch *b = d->br;
        struct proxy_call *c = b->call;
        b->dns = NULL;
        c->live--;
        arena_reset(&p->arena);
        if (!ai) {
            log_info("proxy: branch %s: name lookup failed (%s)", b->branch, status ? uv_strerror(status) : "no address");
            branch_fail(b, 478 /* Unresolvable Destination, as Kamailio answers */);
        } else if (!b->final) {
            branch_send(b, &d->dest, d->data, d->len);
        }
        check_complete(c);
        maybe_free(c);
    }
    free(d);
}

static void dns_start(struct proxy *p, struct proxy_branch *br, const struct transport_dest *dest, const char *host,
                      uint16_t port, const char *data, size_t len)
{
    struct proxy_dns *d = malloc(sizeof(*d) + len);
    if (!d) {
        if (br) branch_fail(br, 500);
        return;
    }
    memset(d, 0, sizeof(*d));
    d->p = p;
    d->br = br;
    d->stateless = br == NULL;
    d->dest = *dest;
    /* A TLS connection opened to what the name gives must carry a
     * certificate for the name (RFC 5922 §4): it goes in as SNI too. */
    snprintf(d->dest.server_name, sizeof(d->dest.server_name), "%s", host);
    d->port = port;
    d->len = len;
    memcpy(d->data, data, len);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
    p->stats.dns_lookups++;
    int rc = uv_getaddrinfo(p->d.loop, &d->req, dns_done, host, NULL, &hints);
    if (rc < 0) {
        log_warn("proxy: cannot look %s up: %s", host, uv_strerror(rc));
        p->stats.dns_failures++;
        free(d);
        if (br) branch_fail(br, 478);
        return;
    }
    d->next = p->dns;
    if (p->dns) p->dns->prev = d;
    p->dns = d;
    if (br) {
        br->dns = d;
        br->call->live++;
    }
}

void proxy_send_stateless(struct proxy *p, struct transport_dest *dest, const char *host, uint16_t port,
                          const char *data, size_t len)
{
    if (host) {
        dns_start(p, NULL, dest, host, port, data, len);
        return;
    }
    int rc = p->d.send ? p->d.send(p->d.send_arg, dest, data, len) : UV_ENOTCONN;
    if (rc < 0) log_info_rl("proxy: stateless send failed: %s", uv_strerror(rc));
}
