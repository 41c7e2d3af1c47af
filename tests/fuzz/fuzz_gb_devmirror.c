/* fuzz_gb_devmirror.c — libFuzzer target for what a node reads from Redis
 * about a GB device registered elsewhere (src/gb/upper/device_mirror.c):
 * the HGETALL answer of <prefix>gbdev:{id}, and the GET answer of a
 * channel key <prefix>gbchan:{channel} (the channel's device, read by a
 * middle node relaying an upstream's INVITE). hiredis's reader turns the
 * input into replies (with the client's capped objects, redis_objects.h),
 * each given to gb_devmirror_reply_read and gb_devmirror_channel_reply_read
 * as a lookup does; the raw input is
 * also split at NUL bytes into the field/value strings of
 * gb_devmirror_record_read.
 *
 * The same input is also read as [redis] mirror_gb_admin reads it
 * (src/gb/upper/admin_mirror.c, on redis/hash_mirror.c): the raw bytes as
 * an administrative record (gb_admin_record_decode, an HGET's value), and
 * each reply as an HSCAN answer of the hash (hash_mirror_scan_read) whose
 * values are decoded as a load does and as an HGET answer. An accepted
 * administrative record has a password of at most GB_ADMIN_PASSWORD_MAX
 * bytes with no CR or LF (it is stored and digested), a known charset and
 * a subscribe mask of -1..7, and re-encodes to a record that decodes the
 * same.
 *
 * Beyond "no crash": an accepted record has a non-empty node id, transport
 * and remote that fit with their NUL and hold only printable ASCII with no
 * space (the node id is looked up in the registry and logged; nothing
 * from Redis reaches a SIP header unchecked), and times that are >= 0; an
 * accepted channel key names a device of exactly 20 digits (it goes into
 * a Request-URI parameter and a Redis key).
 *
 *   tests/fuzz/fuzz_gb_devmirror -max_total_time=60 tests/fuzz/corpus/fuzz_gb_devmirror */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "gb/upper/admin_mirror.h"
#include "gb/upper/device_mirror.h"
#include "redis/hash_mirror.h"
#include "redis/redis_objects.h"

static void text_checked(const char *s, size_t cap, int may_be_empty)
{
    size_t n = strnlen(s, cap);
    if (n >= cap || (!may_be_empty && n == 0)) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) abort();
}

static void record_checked(const struct gb_devmirror_record *r)
{
    text_checked(r->node, sizeof(r->node), 0);
    text_checked(r->transport, sizeof(r->transport), 1);
    text_checked(r->remote, sizeof(r->remote), 1);
    if (r->registered < 0 || r->keepalive < 0 || r->expires < 0) abort();
}

static void admin_checked(const struct gb_admin_record *r)
{
    size_t n = strnlen(r->password, sizeof(r->password));
    if (n > GB_ADMIN_PASSWORD_MAX || strpbrk(r->password, "\r\n")) abort();
    if (r->charset < GB_CHARSET_GB2312 || r->charset > GB_CHARSET_GB18030) abort();
    if (r->subscribe < -1 || r->subscribe > 7) abort();
    char buf[GB_ADMIN_RECORD_MAX + 1];
    int len = gb_admin_record_encode(r, buf, sizeof(buf));
    struct gb_admin_record again;
    if (len < 0 || gb_admin_record_decode(buf, (size_t)len, &again) != 0) abort();
    if (strcmp(again.password, r->password) || again.charset != r->charset || again.auth != r->auth ||
        again.allow != r->allow || again.subscribe != r->subscribe)
        abort();
}

static void admin_value(const char *s, size_t len)
{
    struct gb_admin_record r;
    if (gb_admin_record_decode(s, len, &r) == 0) admin_checked(&r);
}

static void admin_pair(void *arg, const redisReply *field, const redisReply *value)
{
    (void)arg;
    if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) abort();
    admin_value(value->str, value->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    admin_value((const char *)data, size);
    struct gb_devmirror_record rec;
    /* The raw input as NUL-separated strings. */
    const char *strs[40];
    size_t lens[40], n = 0, start = 0;
    for (size_t i = 0; i <= size && n < 40; i++) {
        if (i == size || data[i] == 0) {
            strs[n] = (const char *)data + start;
            lens[n++] = i - start;
            start = i + 1;
        }
    }
    if (gb_devmirror_record_read(strs, lens, n, &rec) == 0) record_checked(&rec);

    redisReader *rd = redisReaderCreate();
    if (!rd) return 0;
    struct redis_reply_budget budget = {0};
    redis_objects_use(rd, &budget); /* as the client reads: arrays capped */
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 16; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply) break;
            int rc = gb_devmirror_reply_read(reply, &rec);
            if (rc == 0) record_checked(&rec);
            else if (rc != -ENOENT && rc != -EPROTO) abort();
            char dev[GB_DEVMIRROR_ID_LEN + 1];
            rc = gb_devmirror_channel_reply_read(reply, dev);
            if (rc == 0) {
                if (strlen(dev) != GB_DEVMIRROR_ID_LEN) abort();
                for (size_t k = 0; k < GB_DEVMIRROR_ID_LEN; k++)
                    if (dev[k] < '0' || dev[k] > '9') abort();
            } else if (rc != -ENOENT && rc != -EPROTO) abort();
            char cursor[32];
            if (hash_mirror_scan_read(reply, cursor, sizeof(cursor), admin_pair, NULL) == 0 &&
                (!cursor[0] || strspn(cursor, "0123456789") != strlen(cursor)))
                abort();
            const redisReply *rp = reply;
            if (rp->type == REDIS_REPLY_STRING) admin_value(rp->str, rp->len);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
