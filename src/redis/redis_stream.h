/* redis_stream.h — reading stream entries out of XREAD, XREADGROUP,
 * XREVRANGE and XAUTOCLAIM answers (the cluster-wide event stream, issue 16).
 *
 * The event stream's entries are written by a script (app/events_stream.c)
 * as id "<seq>-0" with the fields e (the event's JSON text, which starts
 * with {"seq":<seq>,) and n (the node that published it). What comes back
 * from Redis is checked, never trusted: the shapes of the replies, every id
 * (two decimal numbers, no sign, no overflow), and each entry's text
 * (a JSON object whose "seq" is its id's first number, at most
 * REDIS_STREAM_TEXT_MAX bytes; its syntax checked in one pass, no tree
 * built). Nothing here blocks or keeps a pointer
 * into the reply after it returns. */
#ifndef CASCADE_REDIS_STREAM_H
#define CASCADE_REDIS_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define REDIS_STREAM_TEXT_MAX (64 * 1024)   /* an event's JSON text */
#define REDIS_STREAM_NODE_MAX 128            /* the publishing node's id */
#define REDIS_STREAM_ID_MAX 48               /* "18446744073709551615-18446744073709551615" */

struct redis_stream_id {
    uint64_t ms, seq;
};

/* One entry as read. text is NULL when the entry is not one of ours (id
 * with a second number other than 0, fields missing, text not a JSON object
 * with the id's seq, too long, deleted meanwhile): the caller skips it but
 * still moves past its id (and acknowledges it in a group). */
struct redis_stream_entry {
    struct redis_stream_id id;
    uint64_t event_seq;          /* id.ms when text != NULL */
    const char *text;            /* inside the reply; NOT NUL-terminated */
    size_t text_len;
    const char *node;            /* "" when absent; NOT NUL-terminated */
    size_t node_len;
};

typedef int (*redis_stream_entry_cb)(void *arg, const struct redis_stream_entry *e);

/* 1 when text is one JSON object and nothing else (whitespace aside),
 * checked without allocating, as strictly as jansson reads or stricter
 * (see redis_stream.c); else 0. */
int redis_stream_json_object_ok(const char *text, size_t len);

/* "<ms>-<seq>" (both parts decimal, no sign, at most 20 digits, in range).
 * 0, or -EPROTO. */
int redis_stream_id_parse(const char *s, size_t len, struct redis_stream_id *out);
/* Writes "<ms>-<seq>" into out (at least REDIS_STREAM_ID_MAX bytes); returns its length. */
int redis_stream_id_print(struct redis_stream_id id, char *out, size_t cap);
/* a < b: -1, equal: 0, a > b: 1. */
int redis_stream_id_cmp(struct redis_stream_id a, struct redis_stream_id b);

/* An array of entries ([id, [field, value, ...]] each, as XRANGE/XREVRANGE
 * answer and XAUTOCLAIM's second element). The whole array is checked
 * before the first call: fn sees every entry or none. reverse: walk it
 * from the last element (XREVRANGE: oldest first then). Returns the number
 * of entries, -EPROTO for a reply of the wrong shape, or what fn returned
 * when non-zero. */
int redis_stream_parse_entries(const struct redisReply *arr, int reverse, redis_stream_entry_cb fn, void *arg);

/* An XREAD / XREADGROUP answer: nil (nothing new: 0) or [[key, entries]]
 * for one stream (key must be the one asked for). */
int redis_stream_parse_read(const struct redisReply *reply, const char *key, size_t keylen,
                            redis_stream_entry_cb fn, void *arg);

/* An XAUTOCLAIM answer: [next-cursor, entries, (Redis 7: deleted ids)].
 * *next gets the cursor (0-0 when the scan is complete). */
int redis_stream_parse_autoclaim(const struct redisReply *reply, struct redis_stream_id *next,
                                 redis_stream_entry_cb fn, void *arg);

#endif
