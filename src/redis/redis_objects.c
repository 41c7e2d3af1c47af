/* redis_objects.c — capped reply objects for hiredis's reader (redis_objects.h).
 * Built like hiredis's own, so freeReplyObject() frees them. */
#include "redis/redis_objects.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* A task without a parent starts a new reply: its budget starts afresh. */
static struct redis_reply_budget *budget_of(const redisReadTask *t)
{
    struct redis_reply_budget *b = t->privdata;
    if (b && !t->parent) b->elements = 0;
    return b;
}

/* Hangs r under its parent array (if any) and returns it. */
static void *link_up(const redisReadTask *t, redisReply *r)
{
    if (t->parent) {
        redisReply *p = t->parent->obj;
        p->element[t->idx] = r;
    }
    return r;
}

static void *make_string(const redisReadTask *t, char *s, size_t len)
{
    budget_of(t);
    redisReply *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->str = malloc(len + 1);
    if (!r->str) {
        free(r);
        return NULL;
    }
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    r->type = t->type;
    return link_up(t, r);
}

static void *make_array(const redisReadTask *t, int elements)
{
    struct redis_reply_budget *b = budget_of(t);
    if (!b || elements < 0 || (size_t)elements > REDIS_REPLY_MAX_ELEMENTS - b->elements) return NULL;
    b->elements += (size_t)elements;
    redisReply *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    if (elements > 0) {
        r->element = calloc((size_t)elements, sizeof(redisReply *));
        if (!r->element) {
            free(r);
            return NULL;
        }
    }
    r->elements = (size_t)elements;
    r->type = REDIS_REPLY_ARRAY;
    return link_up(t, r);
}

static void *make_integer(const redisReadTask *t, long long v)
{
    budget_of(t);
    redisReply *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return link_up(t, r);
}

static void *make_nil(const redisReadTask *t)
{
    budget_of(t);
    redisReply *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->type = REDIS_REPLY_NIL;
    return link_up(t, r);
}

static redisReplyObjectFunctions capped = {
    .createString = make_string,
    .createArray = make_array,
    .createInteger = make_integer,
    .createNil = make_nil,
    .freeObject = freeReplyObject,
};

void redis_objects_use(redisReader *reader, struct redis_reply_budget *budget)
{
    reader->fn = &capped;
    reader->privdata = budget;
}
