/* test_presence_mirror.c — presence shared across nodes ([redis]
 * mirror_presence) without a Redis server (tests/peers/
 * test_presence_nodes.sh runs it against a real cluster): the record's
 * encoding and its defensive reading (what a node takes from Redis), an
 * HGETALL answer's reader on fake replies, the change message's key; and
 * the presence state's side: what it tells the mirror (a stable id per
 * publication, a version per document, its removal), which AoRs it asks
 * to follow, and what the other nodes' publications do to the document and
 * to the watchers (told only when what they see changes; dropped at their
 * expiry; capped). Time is a fake clock driven through the timer service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "base/timer.h"
#include "subs/pidf.h"
#include "subs/presence.h"
#include "subs/presence_mirror.h"
#include "subs/subs_config.h"
#include "fake_redis.h"

#define DOC(id, basic)                                                                                             \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "                \
    "entity=\"sip:alice@example.com\"><tuple id=\"" id "\"><status><basic>" basic "</basic></status></tuple>"      \
    "</presence>"
/* the same escaped for a JSON string */
#define JDOC(id, basic)                                                                                            \
    "<presence xmlns=\\\"urn:ietf:params:xml:ns:pidf\\\" entity=\\\"sip:a@b\\\"><tuple id=\\\"" id                \
    "\\\"><status><basic>" basic "</basic></status></tuple></presence>"

/* ---- records ---- */

static void test_record_round_trip(void **state)
{
    (void)state;
    const char *body = DOC("t1", "open");
    struct presence_shared_pub pub = {.id = "42", .expires_wall_ms = 1700000060000, .set_wall_ms = 1700000000000,
                                      .version = 7, .body = body, .len = strlen(body)};
    char field[PRESENCE_PUB_ID_MAX], *rec = NULL;
    int n = presence_record_encode("node-a", &pub, field, sizeof(field), &rec);
    assert_true(n > 0);
    assert_string_equal(field, "node-a/42");
    struct presence_record r;
    assert_int_equal(presence_record_decode(field, strlen(field), rec, (size_t)n, &r), 0);
    assert_string_equal(r.id, "node-a/42");
    assert_string_equal(r.node, "node-a");
    assert_int_equal(r.expires_wall_ms, 1700000060000);
    assert_int_equal(r.set_wall_ms, 1700000000000);
    assert_int_equal(r.version, 7);
    assert_int_equal(r.len, strlen(body));
    assert_string_equal(r.body, body);
    presence_record_clear(&r);
    free(rec);

    /* a node id that could not be read back, or an id that is not a number */
    assert_int_equal(presence_record_encode("a/b", &pub, field, sizeof(field), &rec), -EINVAL);
    assert_int_equal(presence_record_encode("", &pub, field, sizeof(field), &rec), -EINVAL);
    pub.id = "x1";
    assert_int_equal(presence_record_encode("node-a", &pub, field, sizeof(field), &rec), -EINVAL);
    pub.id = "1";
    assert_int_equal(presence_record_encode("node-a", &pub, field, 4, &rec), -ENOSPC);
}

static void test_record_refused(void **state)
{
    (void)state;
#define OK_REC "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}"
    struct presence_record r;
    assert_int_equal(presence_record_decode("n1/1", 4, OK_REC, strlen(OK_REC), &r), 0);
    presence_record_clear(&r);
    const char *bad[] = {
        "",
        "[]",
        "not json",
        "{\"node\":\"n1\",\"exp\":0,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}",    /* exp 0 */
        "{\"node\":\"n1\",\"exp\":5,\"set\":-1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}",   /* set < 0 */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":-1,\"body\":\"" JDOC("t", "open") "\"}",   /* ver < 0 */
        "{\"node\":\"n1\",\"exp\":\"5\",\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}", /* a string */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1}",                                     /* no body */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"\"}",                       /* empty body */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"<presence/>\"}",            /* not PIDF */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "maybe") "\"}",  /* bad basic */
        "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"a\\u0000b\"}",              /* NUL inside */
        "{\"node\":\"n2\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}",   /* not the field's node */
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}",    /* a prefix of it */
        "{\"node\":\"n1\",\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"x\"}",       /* duplicate key */
        "{\"node\":\"n 1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"" JDOC("t", "open") "\"}",  /* space in node */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (presence_record_decode("n1/1", 4, bad[i], strlen(bad[i]), &r) == 0) fail_msg("took %s", bad[i]);
    /* the field: <node>/<digits> */
    const char *fields[] = {"n1/", "n1/x", "n1", "n1/1a", "n2/1", "/1", "n1/123456789012345678901"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (presence_record_decode(fields[i], strlen(fields[i]), OK_REC, strlen(OK_REC), &r) == 0)
            fail_msg("took field %s", fields[i]);
    /* over the size cap */
    size_t big = PRESENCE_RECORD_MAX + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    memcpy(huge, OK_REC, strlen(OK_REC));
    assert_int_equal(presence_record_decode("n1/1", 4, huge, big, &r), -EINVAL);
    free(huge);
    /* a body over PIDF_MAX_BODY */
    sbuf_t sb;
    sbuf_init(&sb);
    sbuf_append_cstr(&sb, "{\"node\":\"n1\",\"exp\":5,\"set\":1,\"ver\":1,\"body\":\"");
    for (size_t i = 0; i < PIDF_MAX_BODY + 1; i++) sbuf_append_cstr(&sb, "a");
    sbuf_append_cstr(&sb, "\"}");
    assert_int_equal(presence_record_decode("n1/1", 4, sb.data, sb.len, &r), -EINVAL);
    sbuf_free(&sb);
}

/* ---- subscription records ---- */

static void test_sub_record(void **state)
{
    (void)state;
    struct subs_record r = {.aor = "alice", .id = "a1b2", .watcher = "sip:bob@example.com", .event = "presence",
                            .expires_wall_ms = 1700000600000};
    char field[PRESENCE_NODE_MAX + PRESENCE_SUB_TAG_MAX], *rec = NULL;
    int n = presence_sub_record_encode("node-a", &r, field, sizeof(field), &rec);
    assert_true(n > 0);
    assert_string_equal(field, "node-a/a1b2");
    struct presence_sub_record d;
    assert_int_equal(presence_sub_record_decode(field, strlen(field), rec, (size_t)n, &d), 0);
    assert_string_equal(d.id, "node-a/a1b2");
    assert_string_equal(d.node, "node-a");
    assert_string_equal(d.watcher, "sip:bob@example.com");
    assert_string_equal(d.event, "presence");
    assert_int_equal(d.expires_wall_ms, 1700000600000);
    free(rec);
    /* what cannot be written */
    r.event = "Presence";
    assert_int_equal(presence_sub_record_encode("node-a", &r, field, sizeof(field), &rec), -EINVAL);
    r.event = "presence";
    r.watcher = "sip:bob smith@x";
    assert_int_equal(presence_sub_record_encode("node-a", &r, field, sizeof(field), &rec), -EINVAL);
    /* what is not read */
#define SREC(node, w, ev, exp) "{\"node\":\"" node "\",\"watcher\":\"" w "\",\"event\":\"" ev "\",\"exp\":" exp "}"
    const char *bad[] = {
        "", "[]", "nope",
        SREC("n1", "sip:b@x", "presence", "0"),       /* exp 0 */
        SREC("n1", "sip:b@x", "presence", "\"5\""), /* a string */
        SREC("n1", "", "presence", "5"),              /* no watcher */
        SREC("n1", "sip:b @x", "presence", "5"),      /* a space */
        SREC("n1", "sip:b@x\\u0001", "presence", "5"), /* a control character */
        SREC("n1", "sip:b@x", "pres ence", "5"),      /* not a package name */
        SREC("n1", "sip:b@x", "presence.winfo.and.more", "5"), /* too long */
        SREC("n2", "sip:b@x", "presence", "5"),       /* not the field's node */
        "{\"node\":\"n1\",\"node\":\"n1\",\"watcher\":\"w\",\"event\":\"reg\",\"exp\":5}", /* duplicate */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (presence_sub_record_decode("n1/t", 4, bad[i], strlen(bad[i]), &d) == 0) fail_msg("took %s", bad[i]);
    const char *good = SREC("n1", "sip:b@x", "reg", "5");
    assert_int_equal(presence_sub_record_decode("n1/t", 4, good, strlen(good), &d), 0);
    const char *fields[] = {"n1/", "n1", "n2/t", "n1/a b", "/t"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (presence_sub_record_decode(fields[i], strlen(fields[i]), good, strlen(good), &d) == 0)
            fail_msg("took field %s", fields[i]);
}

/* ---- an HGETALL answer ---- */

static void test_read_hash(void **state)
{
    (void)state;
    const char *mine = "{\"node\":\"me\",\"exp\":500,\"set\":1,\"ver\":1,\"body\":\"" JDOC("m", "open") "\"}";
    const char *old = "{\"node\":\"n1\",\"exp\":99,\"set\":1,\"ver\":1,\"body\":\"" JDOC("o", "open") "\"}";
    const char *good = "{\"node\":\"n2\",\"exp\":500,\"set\":3,\"ver\":4,\"body\":\"" JDOC("g", "closed") "\"}";
    redisReply e[] = {fake_str_reply("me/1"), fake_str_reply(mine),  fake_str_reply("n1/1"), fake_str_reply(old),
                      fake_str_reply("n2/9"), fake_str_reply(good),  fake_str_reply("x/1"),  fake_str_reply("garbage")};
    redisReply *ptr[8];
    for (int i = 0; i < 8; i++) ptr[i] = &e[i];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 8, .element = ptr};
    struct presence_record out[4];
    size_t bad = 0;
    /* own node's and the expired one skipped quietly; the garbage counted */
    assert_int_equal(presence_mirror_read_hash(&arr, "me", 100, out, 4, &bad), 1);
    assert_int_equal(bad, 1);
    assert_string_equal(out[0].id, "n2/9");
    assert_int_equal(out[0].version, 4);
    presence_record_clear(&out[0]);
    /* the cap: what does not fit is counted */
    assert_int_equal(presence_mirror_read_hash(&arr, NULL, 0, out, 1, &bad), 1);
    assert_int_equal(bad, 3);
    presence_record_clear(&out[0]);
    /* an empty hash */
    redisReply empty = {.type = REDIS_REPLY_ARRAY, .elements = 0};
    assert_int_equal(presence_mirror_read_hash(&empty, "me", 0, out, 4, &bad), 0);
    /* replies of another shape */
    arr.elements = 7;
    assert_int_equal(presence_mirror_read_hash(&arr, "me", 0, out, 4, &bad), -EINVAL);
    arr.elements = 8;
    e[3].type = REDIS_REPLY_INTEGER;
    assert_int_equal(presence_mirror_read_hash(&arr, "me", 0, out, 4, &bad), -EINVAL);
    redisReply nil = {.type = REDIS_REPLY_NIL};
    assert_int_equal(presence_mirror_read_hash(&nil, "me", 0, out, 4, &bad), -EINVAL);
    assert_int_equal(presence_mirror_read_hash(NULL, "me", 0, out, 4, &bad), -EINVAL);
}

static void test_key_aor(void **state)
{
    (void)state;
    char aor[64];
    const char *k = "p:pres:{alice}";
    assert_int_equal(presence_mirror_key_aor("p:", k, strlen(k), aor, sizeof(aor)), 0);
    assert_string_equal(aor, "alice");
    k = "p:pres:{alice@example.com}";
    assert_int_equal(presence_mirror_key_aor("p:", k, strlen(k), aor, sizeof(aor)), 0);
    assert_string_equal(aor, "alice@example.com");
    const char *bad[] = {"",          "junk",           "q:pres:{alice}", "p:pres:{}",      "p:pres:{al ice}",
                         "p:pres:{a}x", "p:pres:{a{b}", "p:pres:alice",   "p:loc:{alice}", "p:pres:{a\nb}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (presence_mirror_key_aor("p:", bad[i], strlen(bad[i]), aor, sizeof(aor)) == 0) fail_msg("took %s", bad[i]);
    k = "p:pres:{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}";
    assert_int_equal(presence_mirror_key_aor("p:", k, strlen(k), aor, sizeof(aor)), -EINVAL); /* over cap */
}

/* The change message with the field that left (the take script's). */
static void test_change_parse(void **state)
{
    (void)state;
    char aor[64], field[PRESENCE_PUB_ID_MAX];
    const char *k = "p:pres:{alice}";
    assert_int_equal(presence_mirror_change_parse("p:", k, strlen(k), aor, sizeof(aor), field, sizeof(field)), 0);
    assert_string_equal(aor, "alice");
    assert_string_equal(field, "");
    k = "p:pres:{alice} node-b/12";
    assert_int_equal(presence_mirror_change_parse("p:", k, strlen(k), aor, sizeof(aor), field, sizeof(field)), 0);
    assert_string_equal(aor, "alice");
    assert_string_equal(field, "node-b/12");
    const char *bad[] = {"p:pres:{alice} ",       "p:pres:{alice} node-b/",  "p:pres:{alice} node-b/1x",
                         "p:pres:{alice} /1",     "p:pres:{alice} a b/1",    "p:pres:{alice}  node-b/1",
                         "p:pres:{al ice} n/1",   "junk n/1",                "p:pres:{alice} n/123456789012345678901",
                         "p:pres:{alice} n\x01/1", "p:pres:{alice} n/1 n/2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (presence_mirror_change_parse("p:", bad[i], strlen(bad[i]), aor, sizeof(aor), field, sizeof(field)) == 0)
            fail_msg("took %s", bad[i]);
}

/* A record with the pid and tag hash a take needs; the tag hash. */
static void test_record_pid_tag(void **state)
{
    (void)state;
    char tag[PRESENCE_TAG_HASH_SIZE], tag2[PRESENCE_TAG_HASH_SIZE];
    presence_tag_hash("alice", "ETAG0123456789abcdefghij", tag);
    assert_int_equal(strlen(tag), 64);
    assert_int_equal(strspn(tag, "0123456789abcdef"), 64);
    presence_tag_hash("bob", "ETAG0123456789abcdefghij", tag2); /* bound to its AoR */
    assert_string_not_equal(tag, tag2);
    presence_tag_hash("alice", "ETAG0123456789abcdefghij", tag2);
    assert_string_equal(tag, tag2);
    const char *body = DOC("t1", "open");
    struct presence_shared_pub pub = {.id = "3", .expires_wall_ms = 1700000060000, .set_wall_ms = 1700000000000,
                                      .version = 2, .body = body, .len = strlen(body),
                                      .pid = "0123456789abcdef0123456789abcdef", .tag = tag};
    char field[PRESENCE_PUB_ID_MAX], *rec = NULL;
    int n = presence_record_encode("node-a", &pub, field, sizeof(field), &rec);
    assert_true(n > 0);
    assert_non_null(strstr(rec, tag));
    struct presence_record r;
    assert_int_equal(presence_record_decode(field, strlen(field), rec, (size_t)n, &r), 0);
    assert_string_equal(r.pid, "0123456789abcdef0123456789abcdef");
    presence_record_clear(&r);
    free(rec);
    pub.pid = "XYZ"; /* not lower-case hex */
    assert_int_equal(presence_record_encode("node-a", &pub, field, sizeof(field), &rec), -EINVAL);
    pub.pid = "ab";
    pub.tag = "abc"; /* not 64 digits */
    assert_int_equal(presence_record_encode("node-a", &pub, field, sizeof(field), &rec), -EINVAL);
    /* read back: a pid or a tag that is not what a node writes */
    const char *bad[] = {
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"pid\":\"\",\"body\":\"" JDOC("a", "open") "\"}",
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"pid\":7,\"body\":\"" JDOC("a", "open") "\"}",
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"pid\":\"0123456789abcdef0123456789abcdef0\",\"body\":\"" JDOC(
            "a", "open") "\"}",
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"tag\":\"ab\",\"body\":\"" JDOC("a", "open") "\"}",
        "{\"node\":\"n\",\"exp\":5,\"set\":1,\"ver\":1,\"tag\":null,\"body\":\"" JDOC("a", "open") "\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (presence_record_decode("n/1", 3, bad[i], strlen(bad[i]), &r) == 0) fail_msg("took %s", bad[i]);
}

/* The take script's answer (stranger input). */
static void test_take_reply(void **state)
{
    (void)state;
    redisReply zero = {.type = REDIS_REPLY_INTEGER, .integer = 0}, one = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply *e0[] = {&zero};
    redisReply r0 = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = e0};
    struct presence_take_answer a;
    assert_int_equal(presence_take_reply_read(&r0, 'r', &a), 0);
    redisReply f = fake_str_reply("node-b/12"), pid = fake_str_reply("00ff00ff"), set = fake_str_reply("1700000000000"),
               ver = fake_str_reply("9"), body = fake_str_reply(DOC("t1", "open")), empty = fake_str_reply("");
    redisReply *e[] = {&one, &f, &pid, &set, &ver, &body};
    redisReply r = {.type = REDIS_REPLY_ARRAY, .elements = 6, .element = e};
    assert_int_equal(presence_take_reply_read(&r, 'r', &a), 1);
    assert_string_equal(a.old_id, "node-b/12");
    assert_string_equal(a.pid, "00ff00ff");
    assert_int_equal(a.set_wall_ms, 1700000000000);
    assert_int_equal(a.version, 9);
    assert_int_equal(a.len, strlen(DOC("t1", "open")));
    assert_int_equal(presence_take_reply_read(&r, 'm', &a), -EINVAL); /* a body only for a refresh */
    e[5] = &empty;
    assert_int_equal(presence_take_reply_read(&r, 'd', &a), 1);
    assert_null(a.body);
    assert_int_equal(presence_take_reply_read(&r, 'r', &a), -EINVAL); /* a refresh needs its document */
    /* each member wrong in turn */
    struct { int at; const char *v; } bad[] = {
        {1, "node-b/"}, {1, "node-b/1x"}, {1, "/1"}, {1, "no slash"}, {1, "a b/1"}, {1, "n/123456789012345678901"},
        {2, ""}, {2, "XYZ"}, {2, "0123456789abcdef0123456789abcdef0"}, {3, "-1"}, {3, ""}, {3, "1e9"},
        {3, "1234567890123456789"}, {4, "18446744073709551616"}, {4, "x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply v = fake_str_reply(bad[i].v), *keep = e[bad[i].at];
        e[bad[i].at] = &v;
        if (presence_take_reply_read(&r, 'd', &a) != -EINVAL) fail_msg("took %s at %d", bad[i].v, bad[i].at);
        e[bad[i].at] = keep;
    }
    e[5] = &body;
    redisReply bodies[] = {fake_str_reply("<presence/>"), fake_str_reply("<!DOCTYPE x><presence/>")};
    for (size_t i = 0; i < 2; i++) {
        e[5] = &bodies[i];
        assert_int_equal(presence_take_reply_read(&r, 'r', &a), -EINVAL);
    }
    e[5] = &body;
    /* shapes */
    redisReply two = {.type = REDIS_REPLY_INTEGER, .integer = 2};
    e[0] = &two;
    assert_int_equal(presence_take_reply_read(&r, 'r', &a), -EINVAL);
    e[0] = &f;
    assert_int_equal(presence_take_reply_read(&r, 'r', &a), -EINVAL);
    e[0] = &one;
    r.elements = 5;
    assert_int_equal(presence_take_reply_read(&r, 'r', &a), -EINVAL);
    r0.elements = 0;
    assert_int_equal(presence_take_reply_read(&r0, 'r', &a), -EINVAL);
    assert_int_equal(presence_take_reply_read(&f, 'r', &a), -EINVAL);
    assert_int_equal(presence_take_reply_read(NULL, 'r', &a), -EINVAL);
}

/* ---- the presence state's side ---- */

struct fixture {
    struct timer_service ts;
    struct subs_config cfg;
    struct presence *p;
    int changes;
    int published, withdrawn, watch_on, watch_off;
    char last_id[32], last_withdrawn[32];
    uint64_t last_version;
    int64_t last_exp;
    char last_pid[PRESENCE_PID_SIZE], last_tag[PRESENCE_TAG_HASH_SIZE];
    /* the take hook: what it was asked, and its callback to answer later */
    int takes;
    struct presence_take last_take;
    char take_tag[PRESENCE_TAG_HASH_SIZE], take_new_tag[PRESENCE_TAG_HASH_SIZE];
    presence_take_cb take_cb;
    void *take_ctx;
    /* presence_publish_any's answers */
    int done;
    struct presence_outcome out;
};

static void on_change(void *arg, const char *aor)
{
    (void)aor;
    ((struct fixture *)arg)->changes++;
}

static void h_published(void *arg, const char *aor, const struct presence_shared_pub *pub)
{
    (void)aor;
    struct fixture *f = arg;
    f->published++;
    snprintf(f->last_id, sizeof(f->last_id), "%s", pub->id);
    f->last_version = pub->version;
    f->last_exp = pub->expires_wall_ms;
    snprintf(f->last_pid, sizeof(f->last_pid), "%s", pub->pid ? pub->pid : "");
    snprintf(f->last_tag, sizeof(f->last_tag), "%s", pub->tag ? pub->tag : "");
}

static int h_take(void *arg, const struct presence_take *req, presence_take_cb cb, void *ctx)
{
    struct fixture *f = arg;
    f->takes++;
    f->last_take = *req;
    snprintf(f->take_tag, sizeof(f->take_tag), "%s", req->tag);
    snprintf(f->take_new_tag, sizeof(f->take_new_tag), "%s", req->new_tag ? req->new_tag : "");
    f->take_cb = cb;
    f->take_ctx = ctx;
    return 0;
}

static void on_done(void *arg, const struct presence_outcome *out)
{
    struct fixture *f = arg;
    f->done++;
    f->out = *out;
}

static void h_withdrawn(void *arg, const char *aor, const char *id)
{
    (void)aor;
    struct fixture *f = arg;
    f->withdrawn++;
    snprintf(f->last_withdrawn, sizeof(f->last_withdrawn), "%s", id);
}

static void h_watch(void *arg, const char *aor, bool on)
{
    (void)aor;
    struct fixture *f = arg;
    if (on) f->watch_on++;
    else f->watch_off++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    timer_service_init(&f->ts);
    f->cfg = (struct subs_config){.enabled = true, .min_expires = 60, .max_expires = 7200, .default_expires = 3761,
                                  .presence_max_publications_per_user = 2, .presence_max_publications = 10};
    struct presence_deps d = {.cfg = &f->cfg, .timers = &f->ts, .on_change = on_change, .arg = f};
    f->p = presence_new(&d);
    *state = f;
    return f->p ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    presence_free(f->p);
    timer_service_free(&f->ts);
    free(f);
    return 0;
}

static void hooks(struct fixture *f, size_t remote_max)
{
    struct presence_mirror_hooks h = {.arg = f, .published = h_published, .withdrawn = h_withdrawn,
                                      .watch = h_watch, .take = h_take};
    presence_set_mirror(f->p, &h, remote_max);
}

static struct presence_outcome publish(struct fixture *f, const char *if_match, int64_t expires, const char *body)
{
    struct presence_publish req = {.aor = "alice", .if_match = if_match, .expires = expires, .body = body,
                                   .len = body ? strlen(body) : 0};
    struct presence_outcome out;
    presence_publish(f->p, &req, &out);
    return out;
}

/* What this node tells the mirror: one id per publication across its
 * refreshes and modifies, a new version only with a new document. */
static void test_hooks_told(void **state)
{
    struct fixture *f = *state;
    presence_watch(f->p, "alice", true); /* before the mirror: told when it comes */
    hooks(f, 10);
    assert_int_equal(f->watch_on, 1);
    struct presence_outcome o = publish(f, NULL, 600, DOC("t1", "open"));
    assert_int_equal(o.status, 200);
    assert_int_equal(f->published, 1);
    char id[32];
    snprintf(id, sizeof(id), "%s", f->last_id);
    uint64_t v1 = f->last_version;
    assert_true(f->last_exp > 0);
    o = publish(f, o.etag, 600, NULL); /* refresh */
    assert_int_equal(f->published, 2);
    assert_string_equal(f->last_id, id);
    assert_int_equal(f->last_version, v1);
    o = publish(f, o.etag, 600, DOC("t1", "closed")); /* modify */
    assert_int_equal(f->published, 3);
    assert_string_equal(f->last_id, id);
    assert_true(f->last_version > v1);
    o = publish(f, o.etag, 0, NULL); /* remove */
    assert_int_equal(f->withdrawn, 1);
    assert_string_equal(f->last_withdrawn, id);
    /* expiry and a user's last binding gone withdraw too */
    publish(f, NULL, 60, DOC("t2", "open"));
    timer_run(&f->ts, 60 * 1000);
    assert_int_equal(f->withdrawn, 2);
    publish(f, NULL, 600, DOC("t3", "open"));
    presence_drop_user(f->p, "alice");
    assert_int_equal(f->withdrawn, 3);
    /* a second watcher asks nothing more; the last one leaving says so */
    presence_watch(f->p, "alice", true);
    assert_int_equal(f->watch_on, 1);
    presence_watch(f->p, "alice", false);
    assert_int_equal(f->watch_off, 0);
    presence_watch(f->p, "alice", false);
    assert_int_equal(f->watch_off, 1);
    presence_set_mirror(f->p, NULL, 0);
}

static struct presence_shared_pub rpub(const char *id, int64_t exp, int64_t set, uint64_t ver, const char *body)
{
    return (struct presence_shared_pub){.id = id, .node = "n2", .expires_wall_ms = exp, .set_wall_ms = set,
                                        .version = ver, .body = body, .len = strlen(body)};
}

static bool doc_has(struct fixture *f, const char *needle)
{
    sbuf_t sb;
    sbuf_init(&sb);
    assert_int_equal(presence_document(f->p, "alice", "sip:alice@example.com", false, NULL, &sb), 0);
    bool has = strstr(sb.data, needle) != NULL;
    sbuf_free(&sb);
    return has;
}

/* The other nodes' publications: the watchers are told when what they see
 * changes, not for a refresh; each goes at its expiry; the caps hold. */
static void test_remote_set(void **state)
{
    struct fixture *f = *state;
    hooks(f, 3);
    presence_watch(f->p, "alice", true);
    int64_t now = 1000000;
    struct presence_shared_pub a = rpub("n2/1", now + 30000, now - 5, 1, DOC("remote-a", "open"));
    assert_int_equal(presence_remote_set(f->p, "alice", &a, 1, now), 0);
    assert_int_equal(f->changes, 1);
    assert_int_equal(presence_remote_count(f->p), 1);
    assert_true(doc_has(f, "remote-a"));
    /* the same again, a later expiry and version, same bytes: nobody told */
    a.expires_wall_ms = now + 60000;
    a.version = 2;
    assert_int_equal(presence_remote_set(f->p, "alice", &a, 1, now), 0);
    assert_int_equal(f->changes, 1);
    /* a new document: told */
    a.body = DOC("remote-a", "closed");
    a.len = strlen(a.body);
    presence_remote_set(f->p, "alice", &a, 1, now);
    assert_int_equal(f->changes, 2);
    /* with one of ours, newest first across both */
    assert_int_equal(publish(f, NULL, 600, DOC("local", "open")).status, 200);
    sbuf_t sb;
    sbuf_init(&sb);
    presence_document(f->p, "alice", "sip:alice@example.com", false, NULL, &sb);
    assert_true(strstr(sb.data, "local") < strstr(sb.data, "remote-a")); /* ours set now (the wall clock), its long before */
    sbuf_free(&sb);
    /* expired on arrival, a duplicate id, the per-user cap (2) */
    struct presence_shared_pub list[4] = {a, rpub("n2/2", now - 1, now, 1, DOC("old", "open")), a,
                                          rpub("n3/1", now + 1000, now, 1, DOC("third", "open"))};
    int before = f->changes;
    assert_int_equal(presence_remote_set(f->p, "alice", list, 4, now), 2);
    assert_int_equal(f->changes, before + 1); /* n3/1 came */
    assert_int_equal(presence_remote_count(f->p), 2);
    /* the total cap (3) across users */
    presence_watch(f->p, "bob", true);
    struct presence_shared_pub b[2] = {rpub("n2/5", now + 1000, now, 1, DOC("b1", "open")),
                                       rpub("n2/6", now + 1000, now, 1, DOC("b2", "open"))};
    assert_int_equal(presence_remote_set(f->p, "bob", b, 2, now), 1);
    assert_int_equal(presence_remote_count(f->p), 3);
    /* n3/1 expires at +1 s (its node died, nobody announced): dropped, told */
    before = f->changes;
    timer_run(&f->ts, 1000);
    assert_int_equal(presence_remote_count(f->p), 1); /* alice's n2/1 (60 s) left; bob's expired too */
    assert_true(f->changes >= before + 1);
    assert_false(doc_has(f, "third"));
    /* gone from the hash: told */
    before = f->changes;
    presence_remote_set(f->p, "alice", NULL, 0, now);
    assert_int_equal(f->changes, before + 1);
    assert_int_equal(presence_remote_count(f->p), 0);
    /* the last watcher leaving forgets them, quietly */
    presence_remote_set(f->p, "alice", &a, 1, now);
    before = f->changes;
    presence_watch(f->p, "alice", false);
    assert_int_equal(presence_remote_count(f->p), 0);
    assert_int_equal(f->changes, before);
    presence_watch(f->p, "bob", false);
    /* a record claiming to last a year is held max_expires (7200 s) and a minute at most */
    presence_watch(f->p, "carol", true);
    struct presence_shared_pub y = rpub("n2/9", now + 365LL * 86400 * 1000, now, 1, DOC("year", "open"));
    presence_remote_set(f->p, "carol", &y, 1, now);
    assert_int_equal(presence_remote_count(f->p), 1);
    timer_run(&f->ts, 1000 + 7260 * 1000);
    assert_int_equal(presence_remote_count(f->p), 0);
    presence_watch(f->p, "carol", false);
    presence_set_mirror(f->p, NULL, 0);
}

static void publish_any(struct fixture *f, const char *if_match, int64_t expires, const char *body)
{
    struct presence_publish req = {.aor = "alice", .if_match = if_match, .expires = expires, .body = body,
                                   .len = body ? strlen(body) : 0};
    presence_publish_any(f->p, &req, on_done, f);
}

/* A tag this node does not hold: asked of the take hook (the hash of the
 * tag bound to the AoR), answered when it answers; the publication is this
 * node's then, a refresh notifies nobody that saw it already, a modify and
 * a removal once; not found: 412; Redis silent: 503. */
static void test_take(void **state)
{
    struct fixture *f = *state;
    hooks(f, 10);
    presence_watch(f->p, "alice", true);
    const char *PID = "0123456789abcdef0123456789abcdef";
    int64_t now = 1000000;
    /* another node's publication, seen here */
    struct presence_shared_pub r = rpub("n2/4", now + 600000, now - 5, 1, DOC("far", "open"));
    r.pid = PID;
    presence_remote_set(f->p, "alice", &r, 1, now);
    assert_int_equal(f->changes, 1);
    /* a tag not held here: asked of the hook, answered when it answers */
    publish_any(f, "nosuchtag", 600, NULL);
    assert_int_equal(f->takes, 1);
    assert_int_equal(f->done, 0); /* waits for the hook */
    char want[PRESENCE_TAG_HASH_SIZE];
    presence_tag_hash("alice", "nosuchtag", want);
    assert_string_equal(f->take_tag, want);
    assert_int_equal(f->last_take.mode, 'r');
    assert_string_equal(f->last_take.aor, "alice");
    assert_non_null(f->last_take.id);
    assert_int_equal(strlen(f->take_new_tag), 64);
    /* found: a refresh of the document seen already */
    struct presence_take_found found = {.old_id = "n2/4", .pid = PID, .set_wall_ms = now - 5, .version = 1,
                                        .body = DOC("far", "open"), .len = strlen(DOC("far", "open"))};
    f->take_cb(f->take_ctx, 1, &found);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->out.status, 200);
    assert_int_equal(f->out.expires, 600);
    char tag[PRESENCE_TAG_HASH_SIZE];
    presence_tag_hash("alice", f->out.etag, tag);
    assert_string_equal(tag, f->take_new_tag); /* the record holds the hash of the tag answered */
    assert_int_equal(f->changes, 1);             /* a refresh: nobody told */
    assert_int_equal(presence_count(f->p, "alice"), 1);
    assert_int_equal(presence_remote_count(f->p), 0); /* ours now: not twice */
    assert_true(doc_has(f, "far"));
    /* its tag works here now, locally, and keeps the pid */
    struct presence_outcome o = publish(f, f->out.etag, 600, DOC("far", "closed"));
    assert_int_equal(o.status, 200);
    assert_int_equal(f->changes, 2);
    assert_string_equal(f->last_pid, PID);
    presence_tag_hash("alice", o.etag, tag);
    assert_string_equal(f->last_tag, tag);
    assert_int_equal(f->takes, 1);
    /* not found anywhere: 412; Redis did not answer: 503 */
    publish_any(f, "gone", 600, NULL);
    f->take_cb(f->take_ctx, 0, NULL);
    assert_int_equal(f->out.status, 412);
    publish_any(f, "gone", 600, DOC("x", "open"));
    assert_int_equal(f->last_take.mode, 'm');
    f->take_cb(f->take_ctx, -EIO, NULL);
    assert_int_equal(f->out.status, 503);
    assert_int_equal(presence_count(f->p, "alice"), 1);
    /* a modify of another node's: told once, the new document held */
    r = rpub("n3/2", now + 600000, now, 1, DOC("other", "open"));
    r.pid = "aa";
    presence_remote_set(f->p, "alice", &r, 1, now);
    int before = f->changes;
    publish_any(f, "theirs", 600, DOC("other", "closed"));
    assert_int_equal(f->last_take.mode, 'm');
    assert_int_equal(f->last_take.len, strlen(DOC("other", "closed")));
    found = (struct presence_take_found){.old_id = "n3/2", .pid = "aa", .set_wall_ms = now, .version = 1};
    f->take_cb(f->take_ctx, 1, &found);
    assert_int_equal(f->out.status, 200);
    assert_int_equal(f->changes, before + 1);
    assert_int_equal(presence_count(f->p, "alice"), 2);
    assert_int_equal(presence_remote_count(f->p), 0);
    assert_true(doc_has(f, "<basic>closed</basic>"));
    /* the per-user cap (2): refused before asking */
    publish_any(f, "third", 600, NULL);
    assert_int_equal(f->out.status, 403);
    assert_int_equal(f->takes, 4);
    /* a removal of another node's: told once, 200 with no tag */
    r = rpub("n3/3", now + 600000, now, 1, DOC("third", "open"));
    r.pid = "bb";
    presence_remote_set(f->p, "alice", &r, 1, now);
    before = f->changes;
    publish_any(f, "third", 0, NULL);
    assert_int_equal(f->last_take.mode, 'd');
    found = (struct presence_take_found){.old_id = "n3/3", .pid = "bb", .set_wall_ms = now, .version = 1};
    f->take_cb(f->take_ctx, 1, &found);
    assert_int_equal(f->out.status, 200);
    assert_int_equal(f->out.expires, 0);
    assert_int_equal(f->changes, before + 1);
    assert_int_equal(presence_remote_count(f->p), 0);
    /* without the hook: 412 at once, as on one node */
    presence_set_mirror(f->p, NULL, 0);
    int d = f->done;
    publish_any(f, "gone", 600, NULL);
    assert_int_equal(f->done, d + 1);
    assert_int_equal(f->out.status, 412);
    presence_watch(f->p, "alice", false);
}

/* Ours taken over by another node: dropped without a word to Redis; while
 * watched, its document stays until the read says what became of it. */
static void test_taken(void **state)
{
    struct fixture *f = *state;
    hooks(f, 10);
    presence_watch(f->p, "alice", true);
    int64_t now = 1000000;
    struct presence_outcome o = publish(f, NULL, 600, DOC("mine", "open"));
    assert_int_equal(o.status, 200);
    char id[32], pid[PRESENCE_PID_SIZE];
    snprintf(id, sizeof(id), "%s", f->last_id);
    snprintf(pid, sizeof(pid), "%s", f->last_pid);
    assert_int_equal(strlen(pid), 32);
    int before = f->changes, withdrawn = f->withdrawn;
    assert_false(presence_taken(f->p, "alice", "999"));
    assert_false(presence_taken(f->p, "bob", id));
    assert_true(presence_taken(f->p, "alice", id));
    assert_int_equal(f->withdrawn, withdrawn); /* Redis has it under the other node's field */
    assert_int_equal(f->changes, before);
    assert_int_equal(presence_count(f->p, "alice"), 0);
    assert_int_equal(presence_remote_count(f->p), 1);
    assert_true(doc_has(f, "mine"));
    assert_int_equal(publish(f, o.etag, 600, NULL).status, 412); /* its tag is not ours any more */
    /* the read: under another node's field, same document: nobody told */
    struct presence_shared_pub r = rpub("n2/8", now + 600000, now, 1, DOC("mine", "open"));
    r.pid = pid;
    presence_remote_set(f->p, "alice", &r, 1, now);
    assert_int_equal(f->changes, before);
    assert_int_equal(presence_remote_count(f->p), 1);
    /* modified there: told once */
    r.body = DOC("mine", "closed");
    r.len = strlen(r.body);
    presence_remote_set(f->p, "alice", &r, 1, now);
    assert_int_equal(f->changes, before + 1);
    /* a missed message: a read showing one of ours under another node's field drops ours */
    o = publish(f, NULL, 600, DOC("second", "open"));
    snprintf(pid, sizeof(pid), "%s", f->last_pid);
    struct presence_shared_pub two[2] = {r, rpub("n3/1", now + 600000, now, 1, DOC("second", "open"))};
    two[1].pid = pid;
    before = f->changes;
    presence_remote_set(f->p, "alice", two, 2, now);
    assert_int_equal(presence_count(f->p, "alice"), 0);
    assert_int_equal(presence_remote_count(f->p), 2);
    assert_int_equal(f->changes, before); /* the same documents */
    /* not watched: ours just goes */
    presence_watch(f->p, "alice", false);
    o = publish(f, NULL, 600, DOC("third", "open"));
    assert_true(presence_taken(f->p, "alice", f->last_id));
    assert_int_equal(presence_remote_count(f->p), 0);
    assert_int_equal(presence_count(f->p, "alice"), 0);
    presence_set_mirror(f->p, NULL, 0);
}

/* Registered on another node (the cluster's lookups): the derived state is
 * open; told only when that state is what watchers see and it changed. */
static void test_registered_elsewhere(void **state)
{
    struct fixture *f = *state;
    presence_set_registered_elsewhere(f->p, "alice", true); /* not watched: ignored */
    assert_int_equal(f->changes, 0);
    presence_watch(f->p, "alice", true);
    assert_true(doc_has(f, "<basic>closed</basic>"));
    presence_set_registered_elsewhere(f->p, "alice", true);
    assert_int_equal(f->changes, 1);
    assert_true(doc_has(f, "<basic>open</basic>"));
    presence_set_registered_elsewhere(f->p, "alice", true);
    assert_int_equal(f->changes, 1);
    /* with a publication the derived state is not shown: nobody told */
    assert_int_equal(publish(f, NULL, 600, DOC("pub", "closed")).status, 200);
    int before = f->changes;
    presence_set_registered_elsewhere(f->p, "alice", false);
    assert_int_equal(f->changes, before);
    assert_true(doc_has(f, "pub"));
    /* forgotten with the last watcher */
    presence_drop_user(f->p, "alice");
    presence_set_registered_elsewhere(f->p, "alice", true);
    presence_watch(f->p, "alice", false);
    presence_watch(f->p, "alice", true);
    assert_true(doc_has(f, "<basic>closed</basic>"));
    presence_watch(f->p, "alice", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_refused),
        cmocka_unit_test(test_sub_record),
        cmocka_unit_test(test_read_hash),
        cmocka_unit_test(test_key_aor),
        cmocka_unit_test(test_change_parse),
        cmocka_unit_test(test_record_pid_tag),
        cmocka_unit_test(test_take_reply),
        cmocka_unit_test_setup_teardown(test_take, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hooks_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_elsewhere, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
