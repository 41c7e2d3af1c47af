/* fuzz_presence_mirror.c — libFuzzer target for what a node reads from
 * Redis about the other nodes' presence publications
 * (src/subs/presence_mirror.c, [redis] mirror_presence): the input's first
 * line is a field name, the rest a record (presence_record_decode), a
 * subscription's record (presence_sub_record_decode) and a change message
 * (presence_mirror_key_aor); the whole input is also fed to
 * hiredis's reader (with the client's capped objects, redis_objects.h) and
 * each reply read as an HGETALL answer (presence_mirror_read_hash), whose
 * records are given to a presence state (presence_remote_set) and composed
 * into the document a watcher gets.
 *
 * Beyond "no crash": an accepted record's id is "<node>/<digits>" with a
 * printable node, exp > 0, set >= 0, and a body pidf_validate accepts; the
 * state never holds more than its caps, and none of it once every expiry
 * ran; the composed document is made (every body was valid).
 *
 *   tests/fuzz/fuzz_presence_mirror -max_total_time=60 tests/fuzz/corpus/fuzz_presence_mirror */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "base/timer.h"
#include "redis/redis_objects.h"
#include "subs/pidf.h"
#include "subs/presence.h"
#include "subs/presence_mirror.h"
#include "subs/subs_config.h"

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

static void on_change(void *arg, const char *aor)
{
    (void)arg, (void)aor;
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
    char aor[256];
    if (presence_mirror_key_aor("p:", in, size, aor, sizeof(aor)) == 0) {
        size_t al = strlen(aor);
        if (!al || strchr(aor, '{') || strchr(aor, '}') || strchr(aor, ' ')) abort();
    }

    struct timer_service ts;
    timer_service_init(&ts);
    struct subs_config cfg = {.enabled = true, .presence_max_publications_per_user = PER_USER,
                              .presence_max_publications = 10};
    struct presence_deps d = {.cfg = &cfg, .timers = &ts, .on_change = on_change};
    struct presence *p = presence_new(&d);
    redisReader *rd = redisReaderCreate();
    if (p && rd) {
        presence_set_mirror(p, NULL, REMOTE_MAX);
        presence_watch(p, "alice", true);
        struct redis_reply_budget budget = {0};
        redis_objects_use(rd, &budget);
        if (redisReaderFeed(rd, in, size) == REDIS_OK) {
            for (int i = 0; i < 8; i++) {
                void *reply = NULL;
                if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
                apply(p, reply);
                freeReplyObject(reply);
            }
        }
        timer_run(&ts, UINT64_MAX / 2); /* every expiry */
        if (presence_remote_count(p) != 0) abort();
        presence_watch(p, "alice", false);
    }
    if (rd) redisReaderFree(rd);
    presence_free(p);
    timer_service_free(&ts);
    return 0;
}
