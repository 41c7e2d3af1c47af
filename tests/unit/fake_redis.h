/* fake_redis.h — Redis replies made in a test, without a server:
 * fake_resp() parses RESP bytes as the client does (hiredis's reader with
 * the client's capped objects, redis/redis_objects.h), for parsers of whole
 * answers; fake_str_reply() is a string reply over a C string, for code
 * handed one element. Included by one test file each. */
#ifndef CASCADE_TEST_FAKE_REDIS_H
#define CASCADE_TEST_FAKE_REDIS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis/redis_objects.h"

/* The one reply bytes hold (the test fails on anything else); the caller
 * frees it with freeReplyObject. */
static inline redisReply *fake_resp(const char *bytes)
{
    static struct redis_reply_budget budget; /* reset by the reader at each reply */
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    redis_objects_use(rd, &budget);
    assert_int_equal(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

/* A string reply whose text is s (not copied: s must outlive it). */
static inline redisReply fake_str_reply(const char *s)
{
    return (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s)};
}

#endif
