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
#include <openssl/evp.h>

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
    char pid[PRESENCE_PID_SIZE];       /* its identity across nodes (kept when a node takes it over) */
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
    char pid[PRESENCE_PID_SIZE];       /* "" when its record had none */
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

/* A publication's identity across nodes: 128 random bits in hex. */
static int new_pid(char out[PRESENCE_PID_SIZE])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1) return -EIO;
    for (size_t i = 0; i < sizeof(r); i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

void presence_tag_hash(const char *aor, const char *etag, char out[PRESENCE_TAG_HASH_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, aor, strlen(aor)) == 1 &&
              EVP_DigestUpdate(c, "\n", 1) == 1 && EVP_DigestUpdate(c, etag, strlen(etag)) == 1 &&
              EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok) { /* no digest: a value no record holds (their tags are hex) */
        memset(out, 'x', PRESENCE_TAG_HASH_SIZE - 1);
        out[PRESENCE_TAG_HASH_SIZE - 1] = '\0';
        return;
    }
    for (size_t i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
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
    char id[24], tag[PRESENCE_TAG_HASH_SIZE];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)pub->id);
    presence_tag_hash(pub->aor, pub->etag, tag);
    struct presence_shared_pub sp = {.id = id, .expires_wall_ms = pub->expires_wall_ms,
                                     .set_wall_ms = pub->set_wall_ms, .version = pub->seq, .body = pub->body,
                                     .len = pub->len, .pid = pub->pid, .tag = tag};
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
    if (new_pid(pub->pid) < 0) {
        free(pub);
        return outcome(out, 500, "Server Internal Error", "no publication id");
    }
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

/* ---- a publication another node holds (mirror_presence's take) ---- */

static void remote_free(struct presence *p, struct presence_remote *r);
static struct presence_remote *remote_find_pid(const struct presence *p, const char *aor, const char *pid,
                                               bool unkept_only);

struct take_op {
    struct presence *p;
    presence_publish_done done;
    void *ctx;
    char mode;                         /* 'r', 'm', 'd' */
    uint32_t expires;
    uint64_t id;                       /* this node's number for it ('r', 'm') */
    int64_t expires_wall_ms, set_wall_ms;
    char etag[PRESENCE_ETAG_SIZE];     /* its new entity tag ('r', 'm') */
    char aor[LOCATION_MAX_AOR];
    char *body;                        /* 'm' */
    size_t len;
};

static void take_finish(struct take_op *op, struct presence_outcome *out)
{
    op->done(op->ctx, out);
    free(op->body);
    free(op);
}

/* Makes the publication found this node's: out filled. */
static bool take_hold(struct presence *p, struct take_op *op, const struct presence_take_found *f,
                      struct presence_outcome *out)
{
    struct presence_pub *pub = calloc(1, sizeof(*pub));
    if (!pub) return false;
    timer_node_init(&pub->expiry);
    pub->owner = p;
    pub->id = op->id;
    memcpy(pub->aor, op->aor, sizeof(pub->aor));
    snprintf(pub->pid, sizeof(pub->pid), "%s", f->pid);
    memcpy(pub->etag, op->etag, sizeof(pub->etag));
    if (op->mode == 'm') {
        pub->body = op->body, pub->len = op->len, op->body = NULL;
        pub->set_wall_ms = op->set_wall_ms;
    } else {
        if (!(pub->body = malloc(f->len + 1))) {
            free(pub);
            return false;
        }
        memcpy(pub->body, f->body, f->len);
        pub->body[f->len] = '\0';
        pub->len = f->len;
        pub->set_wall_ms = f->set_wall_ms;
    }
    pub->seq = ++p->seq;
    pub->expires_wall_ms = op->expires_wall_ms;
    if (htable_insert(&p->by_aor, &pub->by_aor, hash_cstr(pub->aor)) < 0) {
        free(pub->body);
        free(pub);
        return false;
    }
    if (htable_insert(&p->by_etag, &pub->by_etag, hash_cstr(pub->etag)) < 0) {
        htable_remove(&p->by_aor, &pub->by_aor);
        free(pub->body);
        free(pub);
        return false;
    }
    p->total++;
    timer_start(p->d.timers, &pub->expiry, timer_now(p->d.timers) + (uint64_t)op->expires * 1000u, on_pub_expiry);
    memcpy(out->etag, pub->etag, sizeof(out->etag));
    out->expires = op->expires;
    return true;
}

static void on_taken(void *ctx, int status, const struct presence_take_found *f)
{
    struct take_op *op = ctx;
    struct presence *p = op->p;
    struct presence_outcome out;
    memset(&out, 0, sizeof(out));
    if (status == 0) {
        outcome(&out, 412, "Conditional Request Failed", "no publication of any node has this entity tag");
        return take_finish(op, &out);
    }
    if (status < 0 || !f || !f->pid) {
        outcome(&out, 503, "Service Unavailable", "the shared publications could not be read");
        return take_finish(op, &out);
    }
    /* this node's copy of it, as another node's: it is this node's own now */
    struct presence_remote *r = remote_find_pid(p, op->aor, f->pid, false);
    bool had = r != NULL, same = false;
    const char *nb = op->mode == 'm' ? op->body : f->body;
    size_t nl = op->mode == 'm' ? op->len : f->len;
    if (r) {
        same = nb && r->len == nl && memcmp(r->body, nb, nl) == 0;
        remote_free(p, r);
    }
    if (op->mode == 'd') {
        log_info("presence: the publication of %s held by %s removed through this node", op->aor, f->old_id);
        outcome(&out, 200, "OK", NULL);
        if (had && p->d.on_change) p->d.on_change(p->d.arg, op->aor);
        return take_finish(op, &out);
    }
    if (!take_hold(p, op, f, &out)) {
        /* its record names this node now: take it out again */
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)op->id);
        if (p->mirror.withdrawn) p->mirror.withdrawn(p->mirror.arg, op->aor, id);
        outcome(&out, 500, "Server Internal Error", "no memory");
        if (had && p->d.on_change) p->d.on_change(p->d.arg, op->aor);
        return take_finish(op, &out);
    }
    log_info("presence: the publication of %s held by %s taken over (%s)", op->aor, f->old_id,
             op->mode == 'm' ? "modified" : "refreshed");
    outcome(&out, 200, "OK", NULL);
    /* as on one node: a modify notifies, a refresh does not (unless the
     * watchers here did not see it yet) */
    if ((op->mode == 'm' || !had || !same) && p->d.on_change) p->d.on_change(p->d.arg, op->aor);
    take_finish(op, &out);
}

void presence_publish_any(struct presence *p, const struct presence_publish *req, presence_publish_done done,
                          void *ctx)
{
    struct presence_outcome out;
    memset(&out, 0, sizeof(out));
    if (!req->if_match || find_etag(p, req->if_match) || !p->mirror.take || strlen(req->aor) >= LOCATION_MAX_AOR) {
        presence_publish(p, req, &out);
        return done(ctx, &out);
    }
    bool modify = req->expires > 0 && req->body && req->len;
    if (modify && !body_ok(req, &out)) return done(ctx, &out);
    if (req->expires > 0) {
        if (presence_count(p, req->aor) >= (size_t)p->d.cfg->presence_max_publications_per_user) {
            outcome(&out, 403, "Too Many Publications", "presence_max_publications_per_user reached");
            return done(ctx, &out);
        }
        if (p->total >= (uint32_t)p->d.cfg->presence_max_publications) {
            outcome(&out, 503, "Service Unavailable", "presence_max_publications reached");
            return done(ctx, &out);
        }
    }
    struct take_op *op = calloc(1, sizeof(*op));
    if (!op || (modify && !(op->body = malloc(req->len + 1)))) {
        free(op);
        outcome(&out, 500, "Server Internal Error", "no memory");
        return done(ctx, &out);
    }
    op->p = p, op->done = done, op->ctx = ctx, op->len = modify ? req->len : 0;
    op->mode = req->expires == 0 ? 'd' : modify ? 'm' : 'r';
    op->expires = (uint32_t)req->expires;
    snprintf(op->aor, sizeof(op->aor), "%s", req->aor);
    if (modify) {
        memcpy(op->body, req->body, req->len);
        op->body[req->len] = '\0';
    }
    char tag[PRESENCE_TAG_HASH_SIZE], new_tag[PRESENCE_TAG_HASH_SIZE], id[24];
    presence_tag_hash(req->aor, req->if_match, tag);
    struct presence_take t = {.aor = op->aor, .tag = tag, .mode = op->mode};
    if (op->mode != 'd') {
        if (new_etag(op->etag) < 0) {
            free(op->body);
            free(op);
            outcome(&out, 500, "Server Internal Error", "no entity tag");
            return done(ctx, &out);
        }
        op->id = ++p->next_id;
        op->expires_wall_ms = clock_wall_ms() + (int64_t)op->expires * 1000;
        op->set_wall_ms = clock_wall_ms();
        snprintf(id, sizeof(id), "%llu", (unsigned long long)op->id);
        presence_tag_hash(req->aor, op->etag, new_tag);
        t.id = id;
        t.new_tag = new_tag;
        t.expires_wall_ms = op->expires_wall_ms;
        if (modify) {
            t.set_wall_ms = op->set_wall_ms;
            t.version = p->seq + 1;
            t.body = op->body;
            t.len = op->len;
        }
    }
    if (p->mirror.take(p->mirror.arg, &t, on_taken, op) < 0) {
        free(op->body);
        free(op);
        outcome(&out, 503, "Service Unavailable", "the shared publications cannot be asked now");
        return done(ctx, &out);
    }
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

static struct presence_remote *remote_find_pid(const struct presence *p, const char *aor, const char *pid,
                                               bool unkept_only)
{
    if (!pid || !*pid) return NULL;
    for (struct hnode *n = htable_first(&p->remote, hash_cstr(aor)); n; n = htable_next(n)) {
        struct presence_remote *r = container_of(n, struct presence_remote, node);
        if (strcmp(r->aor, aor) == 0 && strcmp(r->pid, pid) == 0 && !(unkept_only && r->keep)) return r;
    }
    return NULL;
}

static struct presence_pub *local_find_pid(const struct presence *p, const char *aor, const char *pid)
{
    if (!pid || !*pid) return NULL;
    for (struct hnode *n = htable_first(&p->by_aor, hash_cstr(aor)); n; n = htable_next(n)) {
        struct presence_pub *pub = container_of(n, struct presence_pub, by_aor);
        if (strcmp(pub->aor, aor) == 0 && strcmp(pub->pid, pid) == 0) return pub;
    }
    return NULL;
}

/* One of ours is another node's now (taken over, or removed through it):
 * dropped without a word to Redis; while its AoR is watched here its
 * document stays, as another node's with no id yet, until a read says
 * what became of it (matched by pid) or its expiry. No on_change: what
 * the watchers see is the same. */
static void local_to_remote(struct presence *p, struct presence_pub *pub)
{
    struct presence_remote *r = watched_find(p, pub->aor) ? calloc(1, sizeof(*r)) : NULL;
    if (r) {
        timer_node_init(&r->expiry);
        r->owner = p;
        memcpy(r->aor, pub->aor, sizeof(r->aor));
        memcpy(r->pid, pub->pid, sizeof(r->pid));
        r->id[0] = '\0'; /* no record's field is empty: only its pid finds it */
        r->body = pub->body;
        r->len = pub->len;
        r->set_wall_ms = pub->set_wall_ms;
        r->version = pub->seq;
        pub->body = NULL;
        if (htable_insert(&p->remote, &r->node, hash_cstr(r->aor)) < 0) {
            free(r->body);
            free(r);
            r = NULL;
        } else {
            p->remote_total++;
            int64_t left = pub->expires_wall_ms - clock_wall_ms();
            timer_start(p->d.timers, &r->expiry, timer_now(p->d.timers) + (uint64_t)(left > 0 ? left : 0),
                        on_remote_expiry);
        }
    }
    log_info("presence: the publication %s of %s was taken over by another node", pub->etag, pub->aor);
    pub_free(p, pub);
}

bool presence_taken(struct presence *p, const char *aor, const char *id)
{
    char *end = NULL;
    unsigned long long n = strtoull(id, &end, 10);
    if (!*id || !end || *end) return false;
    for (struct hnode *h = htable_first(&p->by_aor, hash_cstr(aor)); h; h = htable_next(h)) {
        struct presence_pub *pub = container_of(h, struct presence_pub, by_aor);
        if (pub->id == n && strcmp(pub->aor, aor) == 0) {
            local_to_remote(p, pub);
            return true;
        }
    }
    return false;
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
        /* one of ours another node took over (its change message was missed) */
        struct presence_pub *mine = local_find_pid(p, aor, sp->pid);
        if (mine) local_to_remote(p, mine);
        struct presence_remote *r = remote_find(p, aor, sp->id);
        if (!r && (r = remote_find_pid(p, aor, sp->pid, true))) /* moved to another node's field */
            snprintf(r->id, sizeof(r->id), "%s", sp->id);
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
            snprintf(r->pid, sizeof(r->pid), "%s", sp->pid && strlen(sp->pid) < sizeof(r->pid) ? sp->pid : "");
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

bool presence_first_read_pending(const struct presence *p, const char *aor)
{
    return p->mirror.pending && p->mirror.pending(p->mirror.arg, aor);
}

bool presence_mirrored(const struct presence *p) { return p->mirror.watch && p->mirror.pending; }

void presence_first_read_done(struct presence *p, const char *aor)
{
    if (p->d.on_first_read) p->d.on_first_read(p->d.arg, aor);
}

void presence_set_mirror(struct presence *p, const struct presence_mirror_hooks *h, size_t remote_max)
{
    if (h) p->mirror = *h;
    else memset(&p->mirror, 0, sizeof(p->mirror));
    if (!h && p->d.on_first_read) p->d.on_first_read(p->d.arg, NULL); /* nobody waits for a read any more */
    /* the shared ids (fields "<node>/<n>") outlive this process in Redis
     * until their expiry: a node restarted under the same id must not
     * reuse one, so its numbers start from the wall clock (1000 per ms) */
    int64_t wall = clock_wall_ms();
    if (h && p->next_id == 0 && wall > 0) p->next_id = (uint64_t)wall * 1000u;
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

/* Whether names[0..n) is a list an allow list may hold. */
static bool allow_names_ok(const char *const *names, size_t n)
{
    if (n > PRESENCE_MAX_ALLOW) return false;
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !*names[i] || strlen(names[i]) >= PRESENCE_MAX_NAME || strchr(names[i], ','))
            return false;
    return true;
}

/* Makes aor's list names[0..n) (n == 0: none), written to the store when
 * persist; what changed. */
static enum presence_allow_result allow_put(struct presence *p, const char *aor, const char *const *names, size_t n,
                                            bool persist)
{
    if (!aor || !*aor || strlen(aor) >= LOCATION_MAX_AOR || !allow_names_ok(names, n))
        return PRESENCE_ALLOW_REJECTED;
    struct presence_allow *a = find_allow(p, aor);
    if (!n) {
        if (a) htable_remove(&p->allow, &a->node);
        bool had = a != NULL;
        free(a);
        if (persist && p->d.store && store_submit(p->d.store, store_op_presence_allow_delete(aor), NULL, NULL) < 0)
            log_warn("presence: cannot delete the allow list of %s from the store", aor);
        return had ? PRESENCE_ALLOW_REMOVED : PRESENCE_ALLOW_UNCHANGED;
    }
    enum presence_allow_result res = PRESENCE_ALLOW_CHANGED;
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a) return PRESENCE_ALLOW_NOMEM;
        snprintf(a->aor, sizeof(a->aor), "%s", aor);
        if (htable_insert(&p->allow, &a->node, hash_cstr(aor)) < 0) {
            free(a);
            return PRESENCE_ALLOW_NOMEM;
        }
        res = PRESENCE_ALLOW_ADDED;
    } else if (a->n == n) {
        size_t i = 0;
        while (i < n && strcmp(a->names[i], names[i]) == 0) i++;
        if (i == n) res = PRESENCE_ALLOW_UNCHANGED;
    }
    for (size_t i = 0; i < n; i++) snprintf(a->names[i], PRESENCE_MAX_NAME, "%s", names[i]);
    a->n = n;
    if (persist && res != PRESENCE_ALLOW_UNCHANGED) allow_persist(p, a);
    return res;
}

int presence_allow_set(struct presence *p, const char *aor, const char *const *names, size_t n)
{
    if (n > PRESENCE_MAX_ALLOW || strlen(aor) >= LOCATION_MAX_AOR || !allow_names_ok(names, n)) return -EINVAL;
    enum presence_allow_result res = allow_put(p, aor, names, n, false);
    if (res == PRESENCE_ALLOW_NOMEM) return -ENOMEM;
    if (res == PRESENCE_ALLOW_REJECTED) return -EINVAL;
    /* the API's change: stored and shared even when it changes nothing here
     * (the store or the other nodes may differ) */
    const struct presence_allow *a = find_allow(p, aor);
    if (a) allow_persist(p, a);
    else if (p->d.store && store_submit(p->d.store, store_op_presence_allow_delete(aor), NULL, NULL) < 0)
        log_warn("presence: cannot delete the allow list of %s from the store", aor);
    if (p->d.on_allow_change) p->d.on_allow_change(p->d.arg, aor);
    if (p->allow_changed) p->allow_changed(p->allow_arg, aor);
    return 0;
}

enum presence_allow_result presence_allow_apply(struct presence *p, const char *aor, const char *const *names,
                                                size_t n)
{
    enum presence_allow_result res = allow_put(p, aor, names, n, true); /* the mirror logs what it applied */
    if ((res == PRESENCE_ALLOW_ADDED || res == PRESENCE_ALLOW_CHANGED || res == PRESENCE_ALLOW_REMOVED) &&
        p->d.on_allow_change)
        p->d.on_allow_change(p->d.arg, aor);
    return res;
}

void presence_set_allow_observer(struct presence *p, void (*cb)(void *arg, const char *aor), void *arg)
{
    p->allow_changed = cb;
    p->allow_arg = cb ? arg : NULL;
}

struct allow_visit {
    int (*cb)(void *arg, const char *aor);
    void *arg;
};

static int visit_allow(struct hnode *n, void *arg)
{
    const struct allow_visit *v = arg;
    return v->cb(v->arg, container_of(n, struct presence_allow, node)->aor);
}

int presence_allow_foreach(struct presence *p, int (*cb)(void *arg, const char *aor), void *arg)
{
    struct allow_visit v = {cb, arg};
    return htable_foreach(&p->allow, visit_allow, &v);
}

size_t presence_allow_count(const struct presence *p) { return htable_count(&p->allow); }

static int load_allow(void *arg, const struct store_presence_allow *row)
{
    struct presence *p = arg;
    char buf[PRESENCE_MAX_ALLOW * PRESENCE_MAX_NAME];
    const char *names[PRESENCE_MAX_ALLOW];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", row->watchers);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < PRESENCE_MAX_ALLOW; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    enum presence_allow_result rc = allow_put(p, row->user, names, n, false); /* loading: nothing to write back */
    if (rc == PRESENCE_ALLOW_REJECTED || rc == PRESENCE_ALLOW_NOMEM)
        log_warn("presence: the stored allow list of %s is not usable (%s)", row->user,
                 rc == PRESENCE_ALLOW_NOMEM ? "no memory" : "a bad name");
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
