/* fuzz_presence_mirror.c — libFuzzer target for what a node reads from
 * Redis about the other nodes' presence publications
 * (src/subs/presence_mirror.c, [redis] mirror_presence): the input's first
 * line is a field name, the rest a record (presence_record_decode), a
 * subscription's record (presence_sub_record_decode) and a change message
 * (presence_mirror_key_aor, presence_mirror_change_parse); the whole input
 * is also fed to hiredis's reader (with the client's capped objects,
 * redis_objects.h) and each reply read as an HGETALL answer
 * (presence_mirror_read_hash), whose records are given to a presence state
 * (presence_remote_set) and composed into the document a watcher gets, and
 * as the take script's answer (presence_take_reply_read, the mode from the
 * input's first byte), which, found, completes a PUBLISH naming another
 * node's entity tag (presence_publish_any through a take hook).
 *
 * Beyond "no crash": an accepted record's id is "<node>/<digits>" with a
 * printable node, exp > 0, set >= 0, and a body pidf_validate accepts; the
 * state never holds more than its caps, and none of it once every expiry
 * ran; the composed document is made (every body was valid); a take
 * answer read has an old field "<node>/<digits>", a hex pid, and for a
 * refresh a valid body, and the PUBLISH it completes is answered 200 (or
 * refused by a cap before asking).
 *
 * The shared allow lists ([redis] mirror_presence_allow, subs/allow_mirror.h)
 * read the same field and record (presence_allow_field_ok,
 * presence_allow_record_decode): an accepted record holds 1..64 names of
 * 1..63 bytes with no comma, encodes back to a record that decodes to the
 * same names, and applied to the state (presence_allow_apply) lets exactly
 * those names watch the field's user; an accepted field has no control
 * character and no '#'.
 *
 * A subscription's record as a survivor reads it (subs_takeover.h): the same
 * field and record given to subs_takeover_record_decode; an accepted one
 * has its field's node and tag, version 1 or 2, and for version 2 every
 * dialog field (no space or control character where none may be, a known
 * transport, CSeqs under 2^31); it is decided on (version 1 never adopted,
 * a connection never adopted), its row made (the CSeq and version moved
 * on, never past 2^31 - 1), and encoded back it decodes to the same record.
 * Each hiredis reply is also read as the adoption script's answer
 * (subs_takeover_reply_each), each pair decoded the same way.
 *
 *   tests/fuzz/fuzz_presence_mirror -max_total_time=60 tests/fuzz/corpus/fuzz_presence_mirror */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "base/timer.h"
#include "redis/hash_mirror.h"
#include "redis/redis_objects.h"
#include "subs/allow_mirror.h"
#include "subs/pidf.h"
#include "subs/presence.h"
#include "subs/presence_mirror.h"
#include "subs/subs_config.h"
#include "subs/subs_takeover.h"
#include "store/store.h"

#define NOW 1000000
#define REMOTE_MAX 6
#define PER_USER 4

static void record_checked(const struct presence_record *r)
{
    size_t nl = strnlen(r->node, sizeof(r->node)), il = strnlen(r->id, sizeof(r->id));
    if (!nl || nl >= sizeof(r->node) || il >= sizeof(r->id)) abort();
    if (strncmp(r->id, r->node, nl) != 0 || r->id[nl] != '/' || !r->id[nl + 1]) abort();
    if (strspn(r->id + nl + 1, "0123456789") != il - nl - 1) abort();
    for (size_t i = 0; i < nl; i++)
        if ((unsigned char)r->node[i] <= 0x20 || r->node[i] == '/' || (unsigned char)r->node[i] == 0x7f) abort();
    if (r->expires_wall_ms <= 0 || r->set_wall_ms < 0) abort();
    const char *why;
    if (!r->body || r->len == 0 || r->len > PIDF_MAX_BODY || strlen(r->body) != r->len ||
        pidf_validate(r->body, r->len, &why) != 0)
        abort();
}

/* the take hook: keeps the callback, answered by the fuzzer */
static presence_take_cb take_cb;
static void *take_ctx;
static int take_status;

static int fake_take(void *arg, const struct presence_take *req, presence_take_cb cb, void *ctx)
{
    (void)arg, (void)req;
    take_cb = cb;
    take_ctx = ctx;
    return 0;
}

static void on_done(void *arg, const struct presence_outcome *out)
{
    (void)arg;
    take_status = out->status;
}

static void take_checked(struct presence *p, const redisReply *reply, char mode)
{
    struct presence_take_answer a;
    int rc = presence_take_reply_read(reply, mode, &a);
    if (rc < 0 || rc == 0) return;
    if (rc != 1) abort();
    size_t il = strnlen(a.old_id, sizeof(a.old_id)), pl = strnlen(a.pid, sizeof(a.pid));
    const char *slash = strchr(a.old_id, '/');
    if (il >= sizeof(a.old_id) || !slash || slash == a.old_id || !slash[1] ||
        strspn(slash + 1, "0123456789") != strlen(slash + 1))
        abort();
    if (!pl || pl >= sizeof(a.pid) || strspn(a.pid, "0123456789abcdef") != pl || a.set_wall_ms < 0) abort();
    const char *why;
    if (mode == 'r' && (!a.body || !a.len || a.len > PIDF_MAX_BODY || pidf_validate(a.body, a.len, &why) != 0))
        abort();
    /* complete a PUBLISH that named another node's tag with it */
    const char *doc = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                      "entity=\"sip:alice@example.com\"><tuple id=\"m\"><status><basic>open</basic></status>"
                      "</tuple></presence>";
    struct presence_publish req = {.aor = "alice", .if_match = "elsewhere", .expires = mode == 'd' ? 0 : 60,
                                   .body = mode == 'm' ? doc : NULL, .len = mode == 'm' ? strlen(doc) : 0};
    take_cb = NULL;
    take_status = 0;
    presence_publish_any(p, &req, on_done, NULL);
    if (!take_cb) {
        if (take_status != 403 && take_status != 503) abort(); /* a cap, before asking */
        return;
    }
    struct presence_take_found f = {.old_id = a.old_id, .pid = a.pid, .set_wall_ms = a.set_wall_ms,
                                    .version = a.version, .body = a.body, .len = a.len};
    take_cb(take_ctx, 1, &f);
    if (take_status != 200) abort();
    if (presence_count(p, "alice") > PER_USER) abort();
}

/* The allow-list record (mirror_presence_allow) in val, for the field in. */
static void allow_checked(struct presence *p, const char *field, size_t flen, const char *val, size_t vlen)
{
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME], again[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
    size_t n = 99, m = 0;
    bool field_ok = presence_allow_field_ok(field, flen);
    if (field_ok) {
        if (flen > HASH_MIRROR_NAME_MAX) abort();
        for (size_t i = 0; i < flen; i++)
            if ((unsigned char)field[i] < 0x20 || field[i] == 0x7f || field[i] == '#') abort();
    }
    if (presence_allow_record_decode(val, vlen, names, &n) != 0) {
        if (n != 0) abort();
        return;
    }
    if (n == 0 || n > PRESENCE_MAX_ALLOW) abort();
    const char *ptrs[PRESENCE_MAX_ALLOW];
    for (size_t i = 0; i < n; i++) {
        size_t l = strnlen(names[i], PRESENCE_MAX_NAME);
        if (l == 0 || l >= PRESENCE_MAX_NAME || strchr(names[i], ',')) abort();
        ptrs[i] = names[i];
    }
    char rec[PRESENCE_ALLOW_RECORD_MAX + 1];
    int len = presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, n, rec, sizeof(rec));
    if (len <= 0 || len > PRESENCE_ALLOW_RECORD_MAX || presence_allow_record_decode(rec, (size_t)len, again, &m) != 0 ||
        m != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], again[i]) != 0) abort();
    if (!field_ok) return;
    char aor[HASH_MIRROR_NAME_MAX + 1];
    memcpy(aor, field, flen);
    aor[flen] = '\0';
    enum presence_allow_result r = presence_allow_apply(p, aor, ptrs, n);
    if (r != PRESENCE_ALLOW_ADDED && r != PRESENCE_ALLOW_NOMEM) abort();
    if (r == PRESENCE_ALLOW_NOMEM) return;
    for (size_t i = 0; i < n; i++)
        if (!presence_may_watch(p, names[i], aor)) abort();
    if (strcmp(aor, "nobody-listed") != 0 && presence_may_watch(p, "nobody-listed", aor)) {
        bool listed = false;
        for (size_t i = 0; i < n; i++) listed |= strcmp(names[i], "nobody-listed") == 0;
        if (!listed) abort();
    }
    if (presence_allow_apply(p, aor, NULL, 0) != PRESENCE_ALLOW_REMOVED || presence_allow_count(p) != 0) abort();
}

static void on_change(void *arg, const char *aor)
{
    (void)arg, (void)aor;
}

static bool has_ctl(const char *s, bool space_ok)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (*s == ' ' && !space_ok) || *s == 0x7f) return true;
    return false;
}

/* A survivor's reading of a subscription record (subs_takeover.h). */
static void takeover_checked(const char *field, size_t flen, const char *val, size_t vlen)
{
    struct subs_takeover_record t;
    if (!field || subs_takeover_record_decode(field, flen, val, vlen, &t) != 0) return;
    size_t nl = strlen(t.node);
    if (!nl || flen != nl + 1 + strlen(t.tag) || memcmp(field, t.node, nl) != 0 || field[nl] != '/' ||
        memcmp(field + nl + 1, t.tag, strlen(t.tag)) != 0 || !t.tag[0] || has_ctl(t.tag, false) ||
        has_ctl(t.node, false) ||
        strchr(t.node, '/') || !t.watcher[0] || has_ctl(t.watcher, false) || !t.event[0] || t.expires_wall_ms <= 0 ||
        has_ctl(t.inc, false) || (t.version != 1 && t.version != 2))
        abort();
    enum subs_takeover_verdict v = subs_takeover_decide(&t, NOW);
    if (t.version == 1) {
        if (v != SUBS_TAKEOVER_OLD || t.call_id[0]) abort();
        return;
    }
    if (!t.call_id[0] || !t.remote_tag[0] || !t.target[0] || !t.remote[0] || has_ctl(t.call_id, false) ||
        has_ctl(t.remote_tag, false) || has_ctl(t.target, false) || has_ctl(t.remote, false) ||
        has_ctl(t.routes, true) || has_ctl(t.accept, true) || t.local_cseq > INT32_MAX ||
        t.remote_cseq > INT32_MAX || t.version_doc > INT32_MAX)
        abort();
    bool udp = strcmp(t.transport, "udp") == 0;
    if (v == SUBS_TAKEOVER_OLD || (!udp && v != SUBS_TAKEOVER_FLOW) ||
        (udp && v != (t.expires_wall_ms <= NOW ? SUBS_TAKEOVER_EXPIRED : SUBS_TAKEOVER_ADOPT)))
        abort();
    struct store_subscription row;
    subs_takeover_row(&t, "alice", &row);
    if (row.local_cseq > INT32_MAX || row.version > INT32_MAX || row.local_cseq < t.local_cseq ||
        strcmp(row.local_tag, t.tag) != 0)
        abort();
    struct subs_record r = {.aor = "alice", .id = t.tag, .watcher = t.watcher, .event = t.event,
                            .expires_wall_ms = t.expires_wall_ms, .call_id = t.call_id, .remote_tag = t.remote_tag,
                            .target = t.target, .routes = t.routes, .transport = t.transport, .remote = t.remote,
                            .accept = t.accept, .local_cseq = t.local_cseq, .remote_cseq = t.remote_cseq,
                            .version = t.version_doc};
    char f2[SUBS_TAKEOVER_NODE_MAX + SUBS_TAKEOVER_TAG_MAX + 2], *rec = NULL;
    int n = subs_takeover_record_encode(t.node, t.inc, &r, f2, sizeof(f2), &rec);
    if (n == -ENOSPC) return; /* escaping may make it longer than what was read */
    if (n < 0) abort();
    struct subs_takeover_record u;
    if (subs_takeover_record_decode(f2, strlen(f2), rec, (size_t)n, &u) != 0 || memcmp(&t, &u, sizeof(t)) != 0)
        abort();
    free(rec);
}

static void takeover_pair(void *arg, const char *f, size_t fl, const char *v, size_t vl)
{
    (void)arg;
    if (f) takeover_checked(f, fl, v, vl);
}

static void apply(struct presence *p, const redisReply *reply)
{
    struct presence_record recs[8];
    struct presence_shared_pub pubs[8];
    size_t bad = 0;
    int n = presence_mirror_read_hash(reply, "me", NOW, recs, 8, &bad);
    if (n < 0) return;
    for (int i = 0; i < n; i++) {
        record_checked(&recs[i]);
        if (!strcmp(recs[i].node, "me") || recs[i].expires_wall_ms <= NOW) abort();
        pubs[i] = (struct presence_shared_pub){.id = recs[i].id, .node = recs[i].node,
                                               .expires_wall_ms = recs[i].expires_wall_ms,
                                               .set_wall_ms = recs[i].set_wall_ms, .version = recs[i].version,
                                               .body = recs[i].body, .len = recs[i].len};
    }
    presence_remote_set(p, "alice", pubs, (size_t)n, NOW);
    if (presence_remote_count(p) > REMOTE_MAX) abort();
    for (int i = 0; i < n; i++) presence_record_clear(&recs[i]);
    sbuf_t sb;
    sbuf_init(&sb);
    if (presence_document(p, "alice", "sip:alice@example.com", false, NULL, &sb) != 0 || sb.failed) abort();
    sbuf_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t flen = nl ? (size_t)(nl - in) : 0;
    const char *val = nl ? nl + 1 : in;
    size_t vlen = size - (size_t)(val - in);
    struct presence_record r;
    if (presence_record_decode(in, flen, val, vlen, &r) == 0) {
        record_checked(&r);
        presence_record_clear(&r);
    }
    struct presence_sub_record sr;
    if (presence_sub_record_decode(in, flen, val, vlen, &sr) == 0) {
        size_t nl = strlen(sr.node);
        if (!nl || strncmp(sr.id, sr.node, nl) != 0 || sr.id[nl] != '/' || !sr.id[nl + 1] || !sr.watcher[0] ||
            strchr(sr.watcher, ' ') || !sr.event[0] || sr.expires_wall_ms <= 0)
            abort();
    }
    if (nl) takeover_checked(in, flen, val, vlen);
    char aor[256], field[PRESENCE_PUB_ID_MAX];
    if (presence_mirror_key_aor("p:", in, size, aor, sizeof(aor)) == 0) {
        size_t al = strlen(aor);
        if (!al || strchr(aor, '{') || strchr(aor, '}') || strchr(aor, ' ')) abort();
    }
    if (presence_mirror_change_parse("p:", in, size, aor, sizeof(aor), field, sizeof(field)) == 0) {
        size_t al = strlen(aor);
        if (!al || strchr(aor, '{') || strchr(aor, '}') || strchr(aor, ' ')) abort();
        const char *slash = strchr(field, '/');
        if (field[0] && (!slash || slash == field || !slash[1] || strchr(field, ' ') ||
                         strspn(slash + 1, "0123456789") != strlen(slash + 1)))
            abort();
    }
    char mode = size ? "rmd"[data[0] % 3] : 'r';

    struct timer_service ts;
    timer_service_init(&ts);
    struct subs_config cfg = {.enabled = true, .presence_max_publications_per_user = PER_USER,
                              .presence_max_publications = 10, .presence_policy = SUBS_PRESENCE_ALLOWLIST};
    struct presence_deps d = {.cfg = &cfg, .timers = &ts, .on_change = on_change};
    struct presence *p = presence_new(&d);
    redisReader *rd = redisReaderCreate();
    if (p && rd) {
        struct presence_mirror_hooks h = {.take = fake_take};
        presence_set_mirror(p, &h, REMOTE_MAX);
        allow_checked(p, in, flen, val, vlen);
        presence_watch(p, "alice", true);
        struct redis_reply_budget budget = {0};
        redis_objects_use(rd, &budget);
        if (redisReaderFeed(rd, in, size) == REDIS_OK) {
            for (int i = 0; i < 8; i++) {
                void *reply = NULL;
                if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
                apply(p, reply);
                take_checked(p, reply, mode);
                subs_takeover_reply_each(reply, takeover_pair, NULL);
                freeReplyObject(reply);
            }
        }
        timer_run(&ts, UINT64_MAX / 2); /* every expiry */
        if (presence_remote_count(p) != 0 || presence_count(p, "alice") != 0) abort();
        presence_watch(p, "alice", false);
    }
    if (rd) redisReaderFree(rd);
    presence_free(p);
    timer_service_free(&ts);
    return 0;
}
