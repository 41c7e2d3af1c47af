/* redis_objects.h — the reply objects hiredis's reader builds, with a cap.
 *
 * hiredis 0.14's reader allocates an array reply's element vector as soon
 * as it reads the "*N" header: ten bytes from the server ("*300000000")
 * cost gigabytes, and nested headers multiply it. These are the same
 * redisReply objects (freeReplyObject frees them) made under a budget of
 * REDIS_REPLY_MAX_ELEMENTS array elements per reply, counted in a
 * struct redis_reply_budget the reader's privdata points to. Over it the
 * reader fails (an "out of memory" protocol error: the connection is closed)
 * instead of allocating. */
#ifndef CASCADE_REDIS_OBJECTS_H
#define CASCADE_REDIS_OBJECTS_H

#include <stddef.h>

#define REDIS_REPLY_MAX_ELEMENTS (1u << 20) /* per reply, all levels: 8 MiB of pointers */

struct redisReader;

struct redis_reply_budget {
    size_t elements; /* used by the reply being read */
};

/* Makes reader build its replies with the cap; budget must outlive it. */
void redis_objects_use(struct redisReader *reader, struct redis_reply_budget *budget);

#endif
