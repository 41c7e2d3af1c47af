/* redis_stream.c — stream entries read defensively (see the header). */
#include "redis/redis_stream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

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

/* ---- a JSON syntax check without allocation ----------------------------
 *
 * Every node reads every entry: building a jansson tree per entry only to
 * throw it away was most of the stream's read cost. This checks RFC 8259
 * syntax in one pass, a little stricter than jansson where jansson refuses
 * (so whatever passes here jansson reads too; fuzz_redis_stream checks
 * that): no \u0000, surrogates only in pairs, nesting at most JSON_DEPTH,
 * numbers of at most 32 characters with at most 2 exponent digits, and
 * integers (no fraction, no exponent) of at most 18 digits. */
#define JSON_DEPTH 32

struct jcur {
    const unsigned char *p, *end;
};

static void jws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned d;
        if (p[i] >= '0' && p[i] <= '9') d = p[i] - '0';
        else if (p[i] >= 'a' && p[i] <= 'f') d = p[i] - 'a' + 10;
        else if (p[i] >= 'A' && p[i] <= 'F') d = p[i] - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* One UTF-8 sequence at p (RFC 3629): its length, 0 when invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], u;
    size_t n;
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0;
    if (c < 0xe0) n = 2, u = c & 0x1f;
    else if (c < 0xf0) n = 3, u = c & 0x0f;
    else if (c < 0xf5) n = 4, u = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        u = u << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && u < 0x800) || (n == 4 && u < 0x10000) || (u >= 0xd800 && u <= 0xdfff) || u > 0x10ffff) return 0;
    return n;
}

static int jstring(struct jcur *c)
{
    if (c->p >= c->end || *c->p != '"') return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch != '\\') {
            size_t n = utf8_len(c->p, c->end);
            if (!n) return -1;
            c->p += n;
            continue;
        }
        if (c->end - c->p < 2) return -1;
        ch = c->p[1];
        if (ch != 'u') {
            if (!strchr("\"\\/bfnrt", ch) || !ch) return -1;
            c->p += 2;
            continue;
        }
        unsigned u, lo;
        if (c->end - c->p < 6 || hex4(c->p + 2, &u)) return -1;
        c->p += 6;
        if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) return -1;
        if (u >= 0xd800 && u <= 0xdbff) { /* a high surrogate: its low one must follow */
            if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) || lo < 0xdc00 ||
                lo > 0xdfff)
                return -1;
            c->p += 6;
        }
    }
    return -1;
}

static int jdigits(struct jcur *c)
{
    const unsigned char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return (int)(c->p - s);
}

static int jnumber(struct jcur *c)
{
    const unsigned char *s = c->p;
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p >= c->end) return -1;
    int ip;
    if (*c->p == '0') {
        c->p++;
        ip = 1;
    } else if ((ip = jdigits(c)) == 0) {
        return -1;
    }
    bool integer = true;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        integer = false;
        if (jdigits(c) == 0) return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        integer = false;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        int ed = jdigits(c);
        if (ed == 0 || ed > 2) return -1;
    }
    if (c->p - s > 32 || (integer && ip > 18)) return -1;
    return 0;
}

static int jvalue(struct jcur *c, int depth);

static int jcontainer(struct jcur *c, int depth, unsigned char open)
{
    unsigned char close = open == '{' ? '}' : ']';
    if (depth >= JSON_DEPTH) return -1;
    c->p++;
    jws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            if (jstring(c)) return -1;
            jws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++;
        }
        if (jvalue(c, depth + 1)) return -1;
        jws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        if (*c->p != ',') return -1;
        c->p++;
        jws(c);
    }
}

static int jlit(struct jcur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return -1;
    c->p += n;
    return 0;
}

static int jvalue(struct jcur *c, int depth)
{
    jws(c);
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '{':
    case '[': return jcontainer(c, depth, *c->p);
    case '"': return jstring(c);
    case 't': return jlit(c, "true");
    case 'f': return jlit(c, "false");
    case 'n': return jlit(c, "null");
    default: return jnumber(c);
    }
}

int redis_stream_json_object_ok(const char *text, size_t len)
{
    struct jcur c = {(const unsigned char *)text, (const unsigned char *)text + len};
    jws(&c);
    if (c.p >= c.end || *c.p != '{' || jcontainer(&c, 0, '{')) return 0;
    jws(&c);
    return c.p == c.end;
}

/* The event text is ours: a JSON object (nothing after it), at most
 * REDIS_STREAM_TEXT_MAX bytes, starting {"seq":<seq>, — the head written
 * by the script, so the object's "seq" is the id's. */
static int text_ok(const char *t, size_t len, uint64_t seq)
{
    char head[40];
    int hn = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)seq);
    if (len > REDIS_STREAM_TEXT_MAX || hn < 0 || len < (size_t)hn + 1) return 0;
    if (memcmp(t, head, (size_t)hn) != 0 || t[len - 1] != '}') return 0;
    return redis_stream_json_object_ok(t, len);
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
