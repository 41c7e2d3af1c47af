/* fuzz_redis_stream.c — libFuzzer target for what a node reads from the
 * cluster's event stream (src/redis/redis_stream.c, [redis] events_stream):
 * hiredis's reader (with the client's capped objects, redis_objects.h)
 * turns the input into replies, and each is read as an XREAD/XREADGROUP
 * answer, an XREVRANGE/XRANGE array (both directions) and an XAUTOCLAIM
 * answer. The raw input is also read as a stream id and as a local event
 * text whose head is cut off.
 *
 * Beyond "no crash": an accepted id prints back to the same numbers; an
 * entry handed on with a text has id "<seq>-0", seq > 0, a text that is a
 * JSON object of at most REDIS_STREAM_TEXT_MAX bytes starting {"seq":<seq>,
 * and a node id of at most REDIS_STREAM_NODE_MAX bytes; the entries of one
 * reply come in strictly ascending id order; a reply read as refused calls
 * nobody; the one-pass JSON check (redis_stream_json_object_ok) never
 * accepts a text jansson does not read as an object.
 *
 *   tests/fuzz/fuzz_redis_stream -max_total_time=60 tests/fuzz/corpus/fuzz_redis_stream */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "app/events_stream.h"
#include "redis/redis_objects.h"
#include "redis/redis_stream.h"

struct walk {
    int calls;
    struct redis_stream_id last;
};

static int on_entry(void *arg, const struct redis_stream_entry *e)
{
    struct walk *w = arg;
    if (w->calls && redis_stream_id_cmp(w->last, e->id) >= 0) abort();
    w->last = e->id;
    w->calls++;
    if (e->node_len > REDIS_STREAM_NODE_MAX || (e->node_len && !e->node)) abort();
    if (!e->text) return 0;
    if (e->id.seq != 0 || e->id.ms == 0 || e->event_seq != e->id.ms) abort();
    if (e->text_len > REDIS_STREAM_TEXT_MAX) abort();
    char head[40];
    int hn = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)e->event_seq);
    if ((size_t)hn > e->text_len || memcmp(e->text, head, (size_t)hn) != 0) abort();
    json_t *v = json_loadb(e->text, e->text_len, 0, NULL);
    if (!json_is_object(v)) abort();
    json_decref(v);
    return 0;
}

static void walk_checked(int n, const struct walk *w)
{
    if (n < 0 && w->calls) abort();
    if (n >= 0 && n != w->calls) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct redis_stream_id id;
    if (redis_stream_id_parse((const char *)data, size, &id) == 0) {
        char buf[REDIS_STREAM_ID_MAX];
        struct redis_stream_id back;
        int n = redis_stream_id_print(id, buf, sizeof(buf));
        if (n < 0 || redis_stream_id_parse(buf, (size_t)n, &back) != 0 || redis_stream_id_cmp(id, back) != 0) abort();
    }
    /* The one-pass JSON check never accepts what jansson refuses. */
    if (redis_stream_json_object_ok((const char *)data, size)) {
        json_t *v = json_loadb((const char *)data, size, 0, NULL);
        if (!json_is_object(v)) abort();
        json_decref(v);
    }
    long off = events_stream_body_offset((const char *)data, size);
    if (off >= 0 && ((size_t)off > size || data[off - 1] != ',')) abort();

    redisReader *rd = redisReaderCreate();
    if (!rd) return 0;
    struct redis_reply_budget budget = {0};
    redis_objects_use(rd, &budget);
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 8; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
            const redisReply *r = reply;
            struct walk w = {0};
            walk_checked(redis_stream_parse_read(r, "k", 1, on_entry, &w), &w);
            memset(&w, 0, sizeof(w));
            walk_checked(redis_stream_parse_entries(r, 0, on_entry, &w), &w);
            memset(&w, 0, sizeof(w));
            int n = redis_stream_parse_entries(r, 1, on_entry, &w);
            walk_checked(n, &w);
            memset(&w, 0, sizeof(w));
            struct redis_stream_id next;
            walk_checked(redis_stream_parse_autoclaim(r, &next, on_entry, &w), &w);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
