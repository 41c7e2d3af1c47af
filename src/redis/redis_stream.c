/* redis_stream.c — stream entries read defensively (see the header). */
#include "redis/redis_stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#define STREAM_FIELDS_MAX 64 /* field/value items of one entry we look at */

static int read_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int redis_stream_id_parse(const char *s, size_t len, struct redis_stream_id *out)
{
    if (!s) return -EPROTO;
    const char *dash = memchr(s, '-', len);
    if (!dash) return -EPROTO;
    size_t a = (size_t)(dash - s);
    struct redis_stream_id id;
    if (read_u64(s, a, &id.ms) || read_u64(dash + 1, len - a - 1, &id.seq)) return -EPROTO;
    *out = id;
    return 0;
}

int redis_stream_id_print(struct redis_stream_id id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%llu-%llu", (unsigned long long)id.ms, (unsigned long long)id.seq);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int redis_stream_id_cmp(struct redis_stream_id a, struct redis_stream_id b)
{
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && (r->str || r->len == 0);
}

/* The event text is ours: a JSON object (nothing after it), at most
 * REDIS_STREAM_TEXT_MAX bytes, starting {"seq":<seq>, with that seq. */
static int text_ok(const char *t, size_t len, uint64_t seq)
{
    char head[40];
    int hn = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)seq);
    if (len > REDIS_STREAM_TEXT_MAX || hn < 0 || len < (size_t)hn + 1) return 0;
    if (memcmp(t, head, (size_t)hn) != 0 || t[len - 1] != '}') return 0;
    json_error_t jerr;
    json_t *v = json_loadb(t, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) return 0;
    json_t *s = json_object_get(v, "seq");
    int ok = json_is_object(v) && json_is_integer(s) && json_integer_value(s) >= 0 &&
             (uint64_t)json_integer_value(s) == seq;
    json_decref(v);
    return ok;
}

/* Reads one [id, fields] element; -EPROTO when its id does not read. */
static int read_entry(const redisReply *el, struct redis_stream_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->node = "";
    if (!el || el->type != REDIS_REPLY_ARRAY || el->elements != 2 || !el->element) return -EPROTO;
    const redisReply *id = el->element[0], *f = el->element[1];
    if (!is_str(id) || redis_stream_id_parse(id->str, id->len, &e->id) != 0) return -EPROTO;
    if (!f || f->type == REDIS_REPLY_NIL) return 0;          /* deleted meanwhile */
    if (f->type != REDIS_REPLY_ARRAY || (f->elements && !f->element)) return -EPROTO;
    if (e->id.seq != 0 || e->id.ms == 0) return 0;            /* not written by us */
    const char *text = NULL, *node = NULL;
    size_t tl = 0, nl = 0;
    size_t n = f->elements < STREAM_FIELDS_MAX ? f->elements : STREAM_FIELDS_MAX;
    for (size_t i = 0; i + 1 < n; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (!is_str(k) || !is_str(v) || k->len != 1) continue;
        if (k->str[0] == 'e' && !text) text = v->str, tl = v->len;
        else if (k->str[0] == 'n' && !node) node = v->str, nl = v->len;
    }
    if (!text || !text_ok(text, tl, e->id.ms)) return 0;
    if (node && nl <= REDIS_STREAM_NODE_MAX && !memchr(node, '\0', nl)) {
        e->node = node;
        e->node_len = nl;
    }
    e->text = text;
    e->text_len = tl;
    e->event_seq = e->id.ms;
    return 0;
}

int redis_stream_parse_entries(const struct redisReply *arr, int reverse, redis_stream_entry_cb fn, void *arg)
{
    if (!arr || arr->type != REDIS_REPLY_ARRAY || (arr->elements && !arr->element)) return -EPROTO;
    struct redis_stream_entry e;
    /* Ids first: fn sees all or nothing, and they must ascend (descend for XREVRANGE). */
    struct redis_stream_id prev = {0, 0};
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *el = arr->element[reverse ? arr->elements - 1 - i : i];
        if (!el || el->type != REDIS_REPLY_ARRAY || el->elements != 2 || !el->element) return -EPROTO;
        const redisReply *id = el->element[0];
        struct redis_stream_id cur;
        if (!is_str(id) || redis_stream_id_parse(id->str, id->len, &cur) != 0) return -EPROTO;
        if (i && redis_stream_id_cmp(prev, cur) >= 0) return -EPROTO;
        prev = cur;
        const redisReply *f = el->element[1];
        if (f && f->type != REDIS_REPLY_NIL && (f->type != REDIS_REPLY_ARRAY || (f->elements && !f->element)))
            return -EPROTO;
    }
    for (size_t i = 0; i < arr->elements; i++) {
        if (read_entry(arr->element[reverse ? arr->elements - 1 - i : i], &e) != 0) return -EPROTO;
        int rc = fn(arg, &e);
        if (rc) return rc;
    }
    return (int)(arr->elements > 0x7fffffff ? 0x7fffffff : arr->elements);
}

int redis_stream_parse_read(const struct redisReply *reply, const char *key, size_t keylen,
                            redis_stream_entry_cb fn, void *arg)
{
    if (!reply) return -EPROTO;
    if (reply->type == REDIS_REPLY_NIL) return 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || !reply->element) return -EPROTO;
    const redisReply *s = reply->element[0];
    if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 2 || !s->element) return -EPROTO;
    const redisReply *k = s->element[0];
    if (!is_str(k) || k->len != keylen || (keylen && memcmp(k->str, key, keylen) != 0)) return -EPROTO;
    return redis_stream_parse_entries(s->element[1], 0, fn, arg);
}

int redis_stream_parse_autoclaim(const struct redisReply *reply, struct redis_stream_id *next,
                                 redis_stream_entry_cb fn, void *arg)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || (reply->elements != 2 && reply->elements != 3) ||
        !reply->element)
        return -EPROTO;
    const redisReply *c = reply->element[0];
    struct redis_stream_id cur;
    if (!is_str(c) || redis_stream_id_parse(c->str, c->len, &cur) != 0) return -EPROTO;
    int n = redis_stream_parse_entries(reply->element[1], 0, fn, arg);
    if (n >= 0) *next = cur;
    return n;
}
