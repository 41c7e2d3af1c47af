/* presence.c — the presence package's state: publications (RFC 3903) kept
 * by entity tag and by user, the allow lists, and the document composed for
 * watchers (RFC 3856 §6.4).
 *
 * A publication, as this file holds it:
 *
 *   PUBLISH, no SIP-If-Match, a body --200 SIP-ETag e1--> held (expires)
 *   held --If-Match e1, no body--> held, refreshed, new tag e2
 *   held --If-Match e1, a body--> held, document replaced, new tag e2
 *   held --If-Match e1, Expires: 0 | expiry--> gone
 *   If-Match naming no held tag (or another user's) --> 412
 *
 * Each change of a user's document calls on_change, so the notifier sends
 * its watchers the new composition. Soft state: nothing is stored; a
 * restart forgets publications and the publishers refresh them. */
#include "subs/presence.h"
#include "subs/presence_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "store/store.h"
#include "subs/pidf.h"

struct presence_pub {
    struct hnode by_etag, by_aor;
    struct timer_node expiry;
    struct presence *owner;
    uint64_t seq;                      /* when the document was last set: newest first */
    uint64_t id;                       /* this node's number for it: its shared id, kept across refreshes */
    int64_t set_wall_ms, expires_wall_ms; /* for the other nodes (mirror_presence) */
    char etag[PRESENCE_ETAG_SIZE];
    char aor[LOCATION_MAX_AOR];
    char *body;
    size_t len;
};

/* Another node's publication of an AoR watched here (mirror_presence). */
struct presence_remote {
    struct hnode node;                 /* p->remote, by AoR */
    struct timer_node expiry;
    struct presence *owner;
    int64_t set_wall_ms;
    uint64_t version;
    bool keep;                         /* presence_remote_set's mark */
    char aor[LOCATION_MAX_AOR];
    char id[PRESENCE_PUB_ID_MAX];
    char *body;
    size_t len;
};

/* An AoR with presence watchers here, and how many. */
struct presence_watched {
    struct hnode node;
    uint32_t n;
    bool elsewhere;                    /* registered on another node (presence_set_registered_elsewhere) */
    char aor[LOCATION_MAX_AOR];
};

struct presence_allow {
    struct hnode node;
    char aor[LOCATION_MAX_AOR];
    size_t n;
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
};

static uint32_t hash_cstr(const char *s) { return str_hash(str_from_cstr(s)); }

/* An entity tag nobody can guess (RFC 3903 §6: it names the publication
 * to modify or remove, so guessing one would let a stranger remove it). */
static int new_etag(char out[PRESENCE_ETAG_SIZE])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[18];
    if (RAND_bytes(r, sizeof(r)) != 1) return -EIO;
    for (size_t i = 0; i < sizeof(r); i += 3) {
        uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
        char *o = out + i / 3 * 4;
        o[0] = b64url[v >> 18 & 63], o[1] = b64url[v >> 12 & 63], o[2] = b64url[v >> 6 & 63], o[3] = b64url[v & 63];
    }
    out[PRESENCE_ETAG_SIZE - 1] = '\0';
    return 0;
}

static struct presence_pub *find_etag(const struct presence *p, const char *etag)
{
    for (struct hnode *n = htable_first(&p->by_etag, hash_cstr(etag)); n; n = htable_next(n)) {
        struct presence_pub *pub = container_of(n, struct presence_pub, by_etag);
        if (strcmp(pub->etag, etag) == 0) return pub;
    }
    return NULL;
}

size_t presence_count(const struct presence *p, const char *aor)
{
    size_t c = 0;
    for (struct hnode *n = htable_first(&p->by_aor, hash_cstr(aor)); n; n = htable_next(n))
        c += strcmp(container_of(n, struct presence_pub, by_aor)->aor, aor) == 0;
    return c;
}

static void pub_free(struct presence *p, struct presence_pub *pub)
{
    timer_stop(p->d.timers, &pub->expiry);
    htable_remove(&p->by_etag, &pub->by_etag);
    htable_remove(&p->by_aor, &pub->by_aor);
    if (p->total) p->total--;
    free(pub->body);
    free(pub);
}

/* The mirror's hooks: one of ours set or refreshed, or gone. */
static void pub_share(struct presence *p, const struct presence_pub *pub)
{
    if (!p->mirror.published) return;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)pub->id);
    struct presence_shared_pub sp = {.id = id, .expires_wall_ms = pub->expires_wall_ms,
                                     .set_wall_ms = pub->set_wall_ms, .version = pub->seq, .body = pub->body,
                                     .len = pub->len};
    p->mirror.published(p->mirror.arg, pub->aor, &sp);
}

static void pub_withdraw(struct presence *p, const struct presence_pub *pub)
{
    if (!p->mirror.withdrawn) return;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)pub->id);
    p->mirror.withdrawn(p->mirror.arg, pub->aor, id);
}

/* Removes pub and tells the notifier (the aor is copied first: pub goes). */
static void pub_remove(struct presence *p, struct presence_pub *pub)
{
    char aor[LOCATION_MAX_AOR];
    memcpy(aor, pub->aor, sizeof(aor));
    pub_withdraw(p, pub);
    pub_free(p, pub);
    if (p->d.on_change) p->d.on_change(p->d.arg, aor);
}

static void on_pub_expiry(struct timer_node *node, uint64_t now_ms)
{
    (void)now_ms;
    struct presence_pub *pub = container_of(node, struct presence_pub, expiry);
    log_info("presence: the publication %s of %s expired", pub->etag, pub->aor);
    pub_remove(pub->owner, pub);
}

/* A new entity tag for pub (every successful refresh or modify gets one,
 * RFC 3903 §6 step 8) and its expiry restarted. */
static int pub_retag(struct presence *p, struct presence_pub *pub, uint32_t expires)
{
    char etag[PRESENCE_ETAG_SIZE];
    if (new_etag(etag) < 0) return -EIO;
    if (hnode_linked(&pub->by_etag)) htable_remove(&p->by_etag, &pub->by_etag);
    memcpy(pub->etag, etag, sizeof(etag));
    if (htable_insert(&p->by_etag, &pub->by_etag, hash_cstr(etag)) < 0) return -ENOMEM;
    timer_start(p->d.timers, &pub->expiry, timer_now(p->d.timers) + (uint64_t)expires * 1000u, on_pub_expiry);
    pub->expires_wall_ms = clock_wall_ms() + (int64_t)expires * 1000;
    return 0;
}

static int pub_set_body(struct presence *p, struct presence_pub *pub, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    free(pub->body);
    pub->body = copy;
    pub->len = len;
    pub->seq = ++p->seq;
    pub->set_wall_ms = clock_wall_ms();
    return 0;
}

static void outcome(struct presence_outcome *out, int status, const char *reason, const char *why)
{
    out->status = status;
    out->reason = reason;
    out->why = why;
}

/* The body check shared by initial and modifying publications. */
static bool body_ok(const struct presence_publish *req, struct presence_outcome *out)
{
    const char *why = NULL;
    int rc = pidf_validate(req->body, req->len, &why);
    if (rc == -EMSGSIZE) outcome(out, 413, "Request Entity Too Large", why);
    else if (rc < 0) outcome(out, 400, "Bad Request", why);
    return rc == 0;
}

static void publish_new(struct presence *p, const struct presence_publish *req, struct presence_outcome *out)
{
    if (!req->body || !req->len) return outcome(out, 400, "Bad Request", "an initial PUBLISH needs a body");
    if (req->expires == 0) return outcome(out, 400, "Bad Request", "Expires 0 without SIP-If-Match");
    if (!body_ok(req, out)) return;
    if (presence_count(p, req->aor) >= (size_t)p->d.cfg->presence_max_publications_per_user)
        return outcome(out, 403, "Too Many Publications", "presence_max_publications_per_user reached");
    if (p->total >= (uint32_t)p->d.cfg->presence_max_publications)
        return outcome(out, 503, "Service Unavailable", "presence_max_publications reached");
    struct presence_pub *pub = calloc(1, sizeof(*pub));
    if (!pub || strlen(req->aor) >= sizeof(pub->aor)) {
        free(pub);
        return outcome(out, 500, "Server Internal Error", "no memory or AoR too long");
    }
    timer_node_init(&pub->expiry);
    pub->owner = p;
    pub->id = ++p->next_id;
    snprintf(pub->aor, sizeof(pub->aor), "%s", req->aor);
    if (pub_set_body(p, pub, req->body, req->len) < 0 ||
        htable_insert(&p->by_aor, &pub->by_aor, hash_cstr(pub->aor)) < 0) {
        free(pub->body);
        free(pub);
        return outcome(out, 500, "Server Internal Error", "no memory");
    }
    p->total++;
    if (pub_retag(p, pub, (uint32_t)req->expires) < 0) {
        pub_free(p, pub);
        return outcome(out, 500, "Server Internal Error", "no entity tag");
    }
    memcpy(out->etag, pub->etag, sizeof(out->etag));
    out->expires = (uint32_t)req->expires;
    outcome(out, 200, "OK", NULL);
    pub_share(p, pub);
    if (p->d.on_change) p->d.on_change(p->d.arg, pub->aor);
}

/* Refresh, modify or remove the publication req->if_match names. */
static void publish_update(struct presence *p, const struct presence_publish *req, struct presence_outcome *out)
{
    struct presence_pub *pub = find_etag(p, req->if_match);
    if (!pub || strcmp(pub->aor, req->aor) != 0)
        return outcome(out, 412, "Conditional Request Failed", "no publication has this entity tag");
    if (req->expires == 0) {
        pub_remove(p, pub);
        out->expires = 0;
        return outcome(out, 200, "OK", NULL);
    }
    bool modify = req->body && req->len;
    if (modify && !body_ok(req, out)) return;
    if (modify && pub_set_body(p, pub, req->body, req->len) < 0)
        return outcome(out, 500, "Server Internal Error", "no memory");
    if (pub_retag(p, pub, (uint32_t)req->expires) < 0) {
        pub_remove(p, pub);
        return outcome(out, 500, "Server Internal Error", "no entity tag");
    }
    memcpy(out->etag, pub->etag, sizeof(out->etag));
    out->expires = (uint32_t)req->expires;
    outcome(out, 200, "OK", NULL);
    pub_share(p, pub); /* a refresh too: the other nodes keep it until its new expiry */
    if (modify && p->d.on_change) p->d.on_change(p->d.arg, pub->aor);
}

size_t presence_drop_user(struct presence *p, const char *aor)
{
    char key[LOCATION_MAX_AOR];
    snprintf(key, sizeof(key), "%s", aor); /* aor may point into what goes */
    size_t n = 0;
    struct hnode *h = htable_first(&p->by_aor, hash_cstr(key));
    while (h) {
        struct presence_pub *pub = container_of(h, struct presence_pub, by_aor);
        h = htable_next(h);
        if (strcmp(pub->aor, key) != 0) continue;
        pub_withdraw(p, pub);
        pub_free(p, pub);
        n++;
    }
    if (n) {
        log_info("presence: %zu publications of %s dropped with its last binding", n, key);
        if (p->d.on_change) p->d.on_change(p->d.arg, key);
    }
    return n;
}

void presence_publish(struct presence *p, const struct presence_publish *req, struct presence_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (req->if_match) publish_update(p, req, out);
    else publish_new(p, req, out);
}

/* One document to compose, this node's or another's. */
struct doc_ref {
    int64_t set_wall_ms;
    uint64_t seq; /* this node's order; 0 for another node's */
    const char *body;
    size_t len;
};

/* Newest first: by the wall time its document was set (the nodes' clocks),
 * then, on this node, by its own order. */
static int newest_first(const void *a, const void *b)
{
    const struct doc_ref *x = a, *y = b;
    if (x->set_wall_ms != y->set_wall_ms) return x->set_wall_ms < y->set_wall_ms ? 1 : -1;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

static struct presence_watched *watched_find(const struct presence *p, const char *aor);

static size_t remote_count_of(const struct presence *p, const char *aor)
{
    size_t c = 0;
    for (struct hnode *n = htable_first(&p->remote, hash_cstr(aor)); n; n = htable_next(n))
        c += strcmp(container_of(n, struct presence_remote, node)->aor, aor) == 0;
    return c;
}

int presence_document(struct presence *p, const char *aor, const char *entity, bool registered,
                      const char *contact, sbuf_t *out)
{
    size_t n = presence_count(p, aor) + remote_count_of(p, aor);
    if (!n) {
        const struct presence_watched *w = registered ? NULL : watched_find(p, aor);
        return pidf_derived(out, entity, registered || (w && w->elsewhere), contact);
    }
    struct doc_ref *refs = calloc(n, sizeof(*refs));
    const char **docs = calloc(n, sizeof(*docs));
    size_t *lens = calloc(n, sizeof(*lens));
    int rc = -ENOMEM;
    if (refs && docs && lens) {
        size_t k = 0;
        for (struct hnode *h = htable_first(&p->by_aor, hash_cstr(aor)); h && k < n; h = htable_next(h)) {
            struct presence_pub *pub = container_of(h, struct presence_pub, by_aor);
            if (strcmp(pub->aor, aor) == 0)
                refs[k++] = (struct doc_ref){.set_wall_ms = pub->set_wall_ms, .seq = pub->seq, .body = pub->body,
                                             .len = pub->len};
        }
        for (struct hnode *h = htable_first(&p->remote, hash_cstr(aor)); h && k < n; h = htable_next(h)) {
            struct presence_remote *r = container_of(h, struct presence_remote, node);
            if (strcmp(r->aor, aor) == 0)
                refs[k++] = (struct doc_ref){.set_wall_ms = r->set_wall_ms, .body = r->body, .len = r->len};
        }
        qsort(refs, k, sizeof(*refs), newest_first);
        for (size_t i = 0; i < k; i++) docs[i] = refs[i].body, lens[i] = refs[i].len;
        rc = pidf_compose(out, entity, docs, lens, k);
    }
    free(refs);
    free(docs);
    free(lens);
    return rc;
}

/* ---- the other nodes' publications (mirror_presence) ---- */

static struct presence_watched *watched_find(const struct presence *p, const char *aor)
{
    for (struct hnode *n = htable_first(&p->watched, hash_cstr(aor)); n; n = htable_next(n)) {
        struct presence_watched *w = container_of(n, struct presence_watched, node);
        if (strcmp(w->aor, aor) == 0) return w;
    }
    return NULL;
}

void presence_set_registered_elsewhere(struct presence *p, const char *aor, bool yes)
{
    struct presence_watched *w = watched_find(p, aor);
    if (!w || w->elsewhere == yes) return;
    w->elsewhere = yes;
    /* only the derived state reads it, and only without a binding here:
     * otherwise nothing a watcher sees changed */
    if (presence_count(p, aor) || remote_count_of(p, aor)) return;
    struct location *loc = p->d.registrar ? registrar_location(p->d.registrar) : NULL;
    const struct location_binding *b;
    if (loc && location_lookup(loc, str_from_cstr(aor), &b, 1) > 0) return;
    if (p->d.on_change) p->d.on_change(p->d.arg, w->aor);
}

static void remote_free(struct presence *p, struct presence_remote *r)
{
    timer_stop(p->d.timers, &r->expiry);
    htable_remove(&p->remote, &r->node);
    if (p->remote_total) p->remote_total--;
    free(r->body);
    free(r);
}

static void on_remote_expiry(struct timer_node *node, uint64_t now_ms)
{
    (void)now_ms;
    struct presence_remote *r = container_of(node, struct presence_remote, expiry);
    struct presence *p = r->owner;
    char aor[LOCATION_MAX_AOR];
    memcpy(aor, r->aor, sizeof(aor));
    log_info("presence: the publication %s of %s (another node's) expired", r->id, aor);
    remote_free(p, r);
    if (p->d.on_change) p->d.on_change(p->d.arg, aor);
}

static struct presence_remote *remote_find(const struct presence *p, const char *aor, const char *id)
{
    for (struct hnode *n = htable_first(&p->remote, hash_cstr(aor)); n; n = htable_next(n)) {
        struct presence_remote *r = container_of(n, struct presence_remote, node);
        if (strcmp(r->aor, aor) == 0 && strcmp(r->id, id) == 0) return r;
    }
    return NULL;
}

static bool remote_set_body(struct presence_remote *r, const struct presence_shared_pub *sp)
{
    char *b = malloc(sp->len + 1);
    if (!b) return false;
    memcpy(b, sp->body, sp->len);
    b[sp->len] = '\0';
    free(r->body);
    r->body = b;
    r->len = sp->len;
    r->version = sp->version;
    r->set_wall_ms = sp->set_wall_ms;
    return true;
}

size_t presence_remote_set(struct presence *p, const char *aor, const struct presence_shared_pub *pubs, size_t n,
                           int64_t now_wall_ms)
{
    if (strlen(aor) >= LOCATION_MAX_AOR) return n;
    size_t per_user = (size_t)p->d.cfg->presence_max_publications_per_user, held = 0, skipped = 0;
    bool changed = false;
    for (struct hnode *h = htable_first(&p->remote, hash_cstr(aor)); h; h = htable_next(h))
        container_of(h, struct presence_remote, node)->keep = false;
    for (size_t i = 0; i < n; i++) {
        const struct presence_shared_pub *sp = &pubs[i];
        if (!sp->id || !sp->body || !sp->len || strlen(sp->id) >= PRESENCE_PUB_ID_MAX ||
            sp->expires_wall_ms <= now_wall_ms || held >= per_user) {
            skipped++;
            continue;
        }
        struct presence_remote *r = remote_find(p, aor, sp->id);
        if (r && r->keep) { /* the same id twice */
            skipped++;
            continue;
        }
        if (!r) {
            if (p->remote_total >= p->remote_max || !(r = calloc(1, sizeof(*r)))) {
                skipped++;
                continue;
            }
            timer_node_init(&r->expiry);
            r->owner = p;
            snprintf(r->aor, sizeof(r->aor), "%s", aor);
            snprintf(r->id, sizeof(r->id), "%s", sp->id);
            if (!remote_set_body(r, sp) || htable_insert(&p->remote, &r->node, hash_cstr(aor)) < 0) {
                free(r->body);
                free(r);
                skipped++;
                continue;
            }
            p->remote_total++;
            changed = true;
        } else if (r->len != sp->len || memcmp(r->body, sp->body, sp->len) != 0) {
            if (!remote_set_body(r, sp)) {
                skipped++;
                continue; /* not kept: it goes below */
            }
            changed = true;
        } else {
            /* the same document set again: nothing a watcher sees changed */
            r->version = sp->version;
            r->set_wall_ms = sp->set_wall_ms;
        }
        r->keep = true;
        held++;
        /* no publication is granted more than max_expires: a record saying
         * otherwise (a clock far ahead, a planted one) is held that long */
        uint64_t left = (uint64_t)(sp->expires_wall_ms - now_wall_ms),
                 cap = (uint64_t)p->d.cfg->max_expires * 1000u + 60000u;
        timer_start(p->d.timers, &r->expiry, timer_now(p->d.timers) + (left < cap ? left : cap), on_remote_expiry);
    }
    struct hnode *h = htable_first(&p->remote, hash_cstr(aor));
    while (h) {
        struct presence_remote *r = container_of(h, struct presence_remote, node);
        h = htable_next(h);
        if (strcmp(r->aor, aor) != 0 || r->keep) continue;
        remote_free(p, r);
        changed = true;
    }
    if (changed && p->d.on_change) p->d.on_change(p->d.arg, aor);
    return skipped;
}

void presence_remote_clear(struct presence *p, const char *aor)
{
    char key[LOCATION_MAX_AOR];
    snprintf(key, sizeof(key), "%s", aor);
    struct hnode *h = htable_first(&p->remote, hash_cstr(key));
    while (h) {
        struct presence_remote *r = container_of(h, struct presence_remote, node);
        h = htable_next(h);
        if (strcmp(r->aor, key) == 0) remote_free(p, r);
    }
}

size_t presence_remote_count(const struct presence *p) { return p->remote_total; }


void presence_watch(struct presence *p, const char *aor, bool on)
{
    if (strlen(aor) >= LOCATION_MAX_AOR) return;
    struct presence_watched *w = watched_find(p, aor);
    if (on) {
        if (!w) {
            if (!(w = calloc(1, sizeof(*w)))) return;
            snprintf(w->aor, sizeof(w->aor), "%s", aor);
            if (htable_insert(&p->watched, &w->node, hash_cstr(aor)) < 0) {
                free(w);
                return;
            }
        }
        if (w->n++ == 0 && p->mirror.watch) p->mirror.watch(p->mirror.arg, w->aor, true);
        return;
    }
    if (!w || --w->n > 0) return;
    char key[LOCATION_MAX_AOR];
    memcpy(key, w->aor, sizeof(key));
    htable_remove(&p->watched, &w->node);
    free(w);
    presence_remote_clear(p, key);
    if (p->mirror.watch) p->mirror.watch(p->mirror.arg, key, false);
}

static int watch_again(struct hnode *n, void *arg)
{
    struct presence *p = arg;
    p->mirror.watch(p->mirror.arg, container_of(n, struct presence_watched, node)->aor, true);
    return 0;
}

void presence_set_mirror(struct presence *p, const struct presence_mirror_hooks *h, size_t remote_max)
{
    if (h) p->mirror = *h;
    else memset(&p->mirror, 0, sizeof(p->mirror));
    p->remote_max = remote_max;
    if (p->mirror.watch) htable_foreach(&p->watched, watch_again, p);
}

/* ---- allow lists ---- */

static struct presence_allow *find_allow(const struct presence *p, const char *aor)
{
    for (struct hnode *n = htable_first(&p->allow, hash_cstr(aor)); n; n = htable_next(n)) {
        struct presence_allow *a = container_of(n, struct presence_allow, node);
        if (strcmp(a->aor, aor) == 0) return a;
    }
    return NULL;
}

/* The list as one comma-joined row (names cannot hold a comma). */
static void allow_persist(struct presence *p, const struct presence_allow *a)
{
    if (!p->d.store) return;
    char buf[PRESENCE_MAX_ALLOW * PRESENCE_MAX_NAME];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n; i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? "," : "", a->names[i]);
    struct store_presence_allow row = {.user = a->aor, .watchers = buf};
    if (store_submit(p->d.store, store_op_presence_allow_upsert(&row), NULL, NULL) < 0)
        log_warn("presence: cannot store the allow list of %s", a->aor);
}

bool presence_may_watch(const struct presence *p, const char *watcher, const char *aor)
{
    if (strcmp(watcher, aor) == 0) return true;
    if (p->d.cfg->presence_policy == SUBS_PRESENCE_DOMAIN) return true;
    const struct presence_allow *a = find_allow(p, aor);
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->names[i], watcher) == 0) return true;
    return false;
}

const char *presence_policy_name(const struct presence *p)
{
    return p->d.cfg->presence_policy == SUBS_PRESENCE_ALLOWLIST ? "allowlist" : "domain";
}

bool presence_user_known(const struct presence *p, const char *name)
{
    return p->d.registrar && registrar_user_known(p->d.registrar, str_from_cstr(name));
}

size_t presence_allow_get(const struct presence *p, const char *aor, char (*names)[PRESENCE_MAX_NAME], size_t cap)
{
    const struct presence_allow *a = find_allow(p, aor);
    size_t n = a ? a->n : 0;
    for (size_t i = 0; i < n && i < cap; i++) memcpy(names[i], a->names[i], PRESENCE_MAX_NAME);
    return n;
}

int presence_allow_set(struct presence *p, const char *aor, const char *const *names, size_t n)
{
    if (n > PRESENCE_MAX_ALLOW || strlen(aor) >= LOCATION_MAX_AOR) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !*names[i] || strlen(names[i]) >= PRESENCE_MAX_NAME || strchr(names[i], ','))
            return -EINVAL;
    struct presence_allow *a = find_allow(p, aor);
    if (!n) {
        if (a) htable_remove(&p->allow, &a->node);
        free(a);
        if (p->d.store && store_submit(p->d.store, store_op_presence_allow_delete(aor), NULL, NULL) < 0)
            log_warn("presence: cannot delete the allow list of %s from the store", aor);
        return 0;
    }
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a) return -ENOMEM;
        snprintf(a->aor, sizeof(a->aor), "%s", aor);
        if (htable_insert(&p->allow, &a->node, hash_cstr(aor)) < 0) {
            free(a);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) snprintf(a->names[i], PRESENCE_MAX_NAME, "%s", names[i]);
    a->n = n;
    allow_persist(p, a);
    return 0;
}

static int load_allow(void *arg, const struct store_presence_allow *row)
{
    struct presence *p = arg;
    char buf[PRESENCE_MAX_ALLOW * PRESENCE_MAX_NAME];
    const char *names[PRESENCE_MAX_ALLOW];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", row->watchers);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < PRESENCE_MAX_ALLOW; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    struct store *st = p->d.store;
    p->d.store = NULL; /* loading: nothing to write back */
    int rc = presence_allow_set(p, row->user, names, n);
    p->d.store = st;
    if (rc < 0) log_warn("presence: the stored allow list of %s is not usable (%s)", row->user, strerror(-rc));
    return 0;
}

int presence_load(struct presence *p)
{
    if (!p->d.store) return 0;
    int rc = store_load_presence_allow(p->d.store, load_allow, p);
    return rc < 0 ? rc : (int)htable_count(&p->allow);
}

/* ---- life cycle ---- */

struct presence *presence_new(const struct presence_deps *d)
{
    struct presence *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->d = *d;
    htable_init(&p->by_etag);
    htable_init(&p->by_aor);
    htable_init(&p->allow);
    htable_init(&p->remote);
    htable_init(&p->watched);
    return p;
}

static int free_pub(struct hnode *n, void *arg)
{
    pub_free(arg, container_of(n, struct presence_pub, by_etag));
    return 0;
}

static int free_allow(struct hnode *n, void *arg)
{
    struct presence *p = arg;
    htable_remove(&p->allow, n);
    free(container_of(n, struct presence_allow, node));
    return 0;
}

static int free_remote(struct hnode *n, void *arg)
{
    remote_free(arg, container_of(n, struct presence_remote, node));
    return 0;
}

static int free_watched(struct hnode *n, void *arg)
{
    struct presence *p = arg;
    htable_remove(&p->watched, n);
    free(container_of(n, struct presence_watched, node));
    return 0;
}

void presence_free(struct presence *p)
{
    if (!p) return;
    htable_foreach(&p->by_etag, free_pub, p);
    htable_foreach(&p->allow, free_allow, p);
    htable_foreach(&p->remote, free_remote, p);
    htable_foreach(&p->watched, free_watched, p);
    htable_free(&p->remote);
    htable_free(&p->watched);
    htable_free(&p->by_etag);
    htable_free(&p->by_aor);
    htable_free(&p->allow);
    free(p);
}
