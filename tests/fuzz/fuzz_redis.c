/* fuzz_redis.c — libFuzzer target for what the Redis Cluster client reads
 * from servers (src/redis/redis_reply.c): MOVED/ASK error texts and CLUSTER
 * SLOTS answers. hiredis parses RESP; its reader turns the input into
 * replies (with the client's capped objects, redis_objects.h), and each is
 * given to both readers.
 *
 * Beyond "no crash": an accepted redirection has a slot < 16384, a port in
 * 1..65535, a NUL-terminated host under REDIS_HOST_MAX, and reads back the
 * same when printed again; an accepted slot map reports ranges inside
 * 0..16383 with first <= last and ports in range, and as many as it says.
 * The raw input is also read as a redirection text and hashed as a key.
 *
 *   tests/fuzz/fuzz_redis -max_total_time=60 tests/fuzz/corpus/fuzz_redis */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_slot.h"

static void redirect_checked(const char *text, size_t len)
{
    struct redis_redirect rd;
    int kind = redis_parse_redirect(text, len, &rd);
    if (kind != REDIS_REDIRECT_MOVED && kind != REDIS_REDIRECT_ASK) return;
    if (rd.slot >= REDIS_SLOTS || rd.port < 1 || rd.port > 65535) abort();
    size_t hn = strnlen(rd.host, sizeof(rd.host));
    if (hn >= sizeof(rd.host)) abort();
    /* Printed again (IPv6 bracketed), it reads the same. */
    char again[REDIS_HOST_MAX + 40];
    int n = snprintf(again, sizeof(again), "%s %u %s%s%s:%d", kind == REDIS_REDIRECT_ASK ? "ASK" : "MOVED",
                     rd.slot, strchr(rd.host, ':') ? "[" : "", rd.host, strchr(rd.host, ':') ? "]" : "",
                     rd.port);
    struct redis_redirect back;
    if (n < 0 || (size_t)n >= sizeof(again) || redis_parse_redirect(again, (size_t)n, &back) != kind)
        abort();
    if (back.slot != rd.slot || back.port != rd.port || strcmp(back.host, rd.host) != 0) abort();
}

static int ranges_seen;

static int on_range(void *arg, unsigned first, unsigned last, const char *host, int port)
{
    (void)arg;
    if (first > last || last >= REDIS_SLOTS || port < 1 || port > 65535) abort();
    if (strlen(host) >= REDIS_HOST_MAX) abort();
    ranges_seen++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redirect_checked((const char *)data, size);
    if (redis_key_slot((const char *)data, size) >= REDIS_SLOTS) abort();

    redisReader *rd = redisReaderCreate();
    if (!rd) return 0;
    struct redis_reply_budget budget = {0};
    redis_objects_use(rd, &budget); /* as the client reads: arrays capped */
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 16; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
            redisReply *r = reply;
            if (r->type == REDIS_REPLY_ERROR) redirect_checked(r->str, r->len);
            ranges_seen = 0;
            int n = redis_parse_slots(r, on_range, NULL);
            if (n >= 0 && n != ranges_seen) abort();
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
