/* fuzz_users_mirror.c — libFuzzer target for what a node reads from Redis
 * about SIP users shared by other nodes (src/registrar/users_mirror.c,
 * [redis] mirror_users): hiredis's reader (with the client's capped
 * objects, redis_objects.h) turns the input into replies; each is read as
 * an HSCAN answer (hash_mirror_scan_read, every pair applied to a table as
 * a load does) and as an HGET answer for an announced name (the input's
 * first line) applied by users_mirror_apply; the raw input is also decoded
 * as a record (users_record_decode).
 *
 * Beyond "no crash": an accepted record has a printable realm that fits,
 * HA1s of 0 or 32 / 64 lower-case hex digits (at least one) and created >= 0;
 * the table never holds more than the cap, and every user in it has a name
 * users_name_ok accepts and HA1s of that shape; a re-encoded record decodes
 * to the same.
 *
 *   tests/fuzz/fuzz_users_mirror -max_total_time=60 tests/fuzz/corpus/fuzz_users_mirror */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/redis_objects.h"
#include "registrar/users.h"
#include "redis/hash_mirror.h"
#include "registrar/users_mirror.h"

#define CAP 8

static void hex_checked(const char *s, size_t digits)
{
    size_t n = strlen(s);
    if (n != 0 && n != digits) abort();
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) abort();
}

static void record_checked(const struct users_record *r)
{
    size_t n = strnlen(r->realm, sizeof(r->realm));
    if (n >= sizeof(r->realm)) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r->realm[i] < 0x20 || (unsigned char)r->realm[i] == 0x7f) abort();
    hex_checked(r->md5, 32);
    hex_checked(r->sha256, 64);
    if (!r->md5[0] && !r->sha256[0]) abort();
    if (r->created_at < 0) abort();
}

static int entry_checked(void *arg, const struct users_entry *e)
{
    (void)arg;
    if (!users_name_ok(e->name)) abort();
    hex_checked(e->ha1_md5, 32);
    hex_checked(e->ha1_sha256, 64);
    if (!e->ha1_md5[0] && !e->ha1_sha256[0]) abort();
    /* its record round-trips */
    char buf[USERS_MIRROR_RECORD_MAX];
    int n = users_record_encode(e, buf, sizeof(buf));
    struct users_record r;
    if (n < 0 || users_record_decode(buf, (size_t)n, &r) != 0) abort();
    if (strcmp(r.realm, e->realm) || strcmp(r.md5, e->ha1_md5) || strcmp(r.sha256, e->ha1_sha256)) abort();
    return 0;
}

static void on_pair(void *arg, const redisReply *field, const redisReply *value)
{
    users_mirror_apply(arg, field->str, field->len, value, CAP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct users_record rec;
    if (users_record_decode((const char *)data, size, &rec) == 0) record_checked(&rec);

    struct users *u = users_new(NULL);
    if (!u) return 0;
    const char *nul = memchr(data, '\0', size);
    size_t name_len = nul ? (size_t)(nul - (const char *)data) : 0;
    const char *resp = nul ? nul + 1 : (const char *)data;
    size_t resp_len = size - (size_t)(resp - (const char *)data);

    redisReader *rd = redisReaderCreate();
    if (!rd) {
        users_free(u);
        return 0;
    }
    struct redis_reply_budget budget = {0};
    redis_objects_use(rd, &budget);
    if (redisReaderFeed(rd, resp, resp_len) == REDIS_OK) {
        for (int i = 0; i < 16; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
            char cursor[32];
            if (hash_mirror_scan_read(reply, cursor, sizeof(cursor), on_pair, u) == 0) {
                if (!cursor[0] || strspn(cursor, "0123456789") != strlen(cursor)) abort();
            }
            users_mirror_apply(u, (const char *)data, name_len, reply, CAP);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    if (users_count(u) > CAP) abort();
    users_foreach(u, entry_checked, NULL);
    users_free(u);
    return 0;
}
