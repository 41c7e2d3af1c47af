/* redis_reply.h — reading the cluster's own answers: the MOVED and ASK
 * redirections and the CLUSTER SLOTS map.
 *
 * hiredis parses RESP; these read what it built (or, for the redirections,
 * the error text alone) and never trust it: every number is range-checked,
 * every string length capped, and anything unexpected is refused with
 * -EPROTO rather than guessed at. Nothing here allocates. */
#ifndef CASCADE_REDIS_REPLY_H
#define CASCADE_REDIS_REPLY_H

#include <stddef.h>

struct redisReply;

/* A host as the cluster announces it: numeric IPv4/IPv6 (or a name, which
 * the client refuses to resolve on the loop). */
#define REDIS_HOST_MAX 64

enum redis_redirect_kind { REDIS_REDIRECT_NONE, REDIS_REDIRECT_MOVED, REDIS_REDIRECT_ASK };

struct redis_redirect {
    enum redis_redirect_kind kind;
    unsigned slot;               /* 0..16383 */
    char host[REDIS_HOST_MAX];   /* "" when the server did not know its own address
                                    ("MOVED 1 :6380"): the node that answered */
    int port;                    /* 1..65535 */
};

/* Reads an error reply's text ("MOVED 3999 127.0.0.1:6381", "ASK 3999
 * [::1]:7002" or "ASK 3999 ::1:7002"). Returns the kind (REDIS_REDIRECT_NONE
 * for any other error, out->kind set the same), or -EPROTO for a MOVED/ASK
 * that does not read (bad slot, port or host). */
int redis_parse_redirect(const char *err, size_t len, struct redis_redirect *out);

/* A seed of the `[redis] nodes` list, "127.0.0.1:7000,[::1]:7001", each
 * read as the servers write a redirection's address. */
struct redis_seed {
    char host[REDIS_HOST_MAX];
    int port;
};
/* Reads up to max seeds from the comma-separated list (blanks around
 * entries allowed); entries that do not read are skipped. Returns how many
 * were read. */
size_t redis_seeds_read(const char *list, struct redis_seed *out, size_t max);

/* One master's range in a CLUSTER SLOTS answer. host is "" when the server
 * answered "" or "?" for its own address (use the node asked). */
typedef int (*redis_slots_range_cb)(void *arg, unsigned first, unsigned last, const char *host,
                                    int port);

/* Walks a CLUSTER SLOTS reply: for each entry [first, last, [host, port, ...],
 * replicas...] calls fn with the master. Checks the whole reply before the
 * first call, so fn sees either every range or none. Returns the number of
 * ranges, -EPROTO for a reply of the wrong shape (it names no range is fine:
 * 0), or what fn returned when it returned non-zero. */
int redis_parse_slots(const struct redisReply *reply, redis_slots_range_cb fn, void *arg);

#endif
