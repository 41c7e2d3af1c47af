/* mwi.h — the message-summary event package (RFC 3842): checking an
 * application/simple-message-summary body, the latest summary per user as a
 * voicemail source last sent it, and the list of those sources.
 *
 *   Messages-Waiting: yes
 *   Message-Account: sip:alice@vm.example.com
 *   Voice-Message: 2/8 (0/2)
 *
 * A source is [subscriptions] voicemail_source: "ip", "ip:port",
 * "[v6]:port" or "host[:port]" (a host name is resolved once, when the
 * list is parsed), comma separated. Loop thread only. */
#ifndef CASCADE_SUBS_MWI_H
#define CASCADE_SUBS_MWI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MWI_CONTENT_TYPE "application/simple-message-summary"
#define MWI_MAX_BODY 2048          /* larger summaries are refused (400) */
#define MWI_MAX_SOURCES 8
#define MWI_NOTHING_WAITING "Messages-Waiting: no\r\n"

/* 0 when body[0..len) is a summary RFC 3842 §5.2 allows (status line,
 * optional Message-Account, message-context lines n/m (x/y), optional
 * extension headers after an empty line; LF or CRLF; names in any case);
 * -1 with *why (a static phrase for the 400's reason) otherwise. */
int mwi_validate(const char *body, size_t len, const char **why);

/* ---- sources ---- */

struct mwi_source {
    struct sockaddr_storage addr;  /* port 0: any source port */
};

/* Parses list into out[0..max): returns how many, or -1 with err filled
 * (a bad entry, a host that does not resolve, too many). "" gives 0. */
int mwi_sources_parse(const char *list, struct mwi_source *out, size_t max, char *err, size_t errcap);
/* Whether addr (a request's source) is one of src[0..n). */
bool mwi_source_match(const struct mwi_source *src, size_t n, const struct sockaddr_storage *addr);

/* ---- the latest summary per user ---- */

struct mwi_store;

/* max_users: summaries held (>= 1). NULL on allocation failure. */
struct mwi_store *mwi_store_new(unsigned max_users);
void mwi_store_free(struct mwi_store *m);
/* Keeps body (validated by the caller) as aor's summary. 0, -ENOSPC (max
 * users reached for a new AoR), -ENOMEM, -EINVAL (too long). Stamp 0. */
int mwi_store_set(struct mwi_store *m, const char *aor, const char *body, size_t len);
/* The same with the time it was taken (wall-clock ms, the order between
 * nodes: mwi_mirror.h). */
int mwi_store_put(struct mwi_store *m, const char *aor, const char *body, size_t len, int64_t stamp_ms);
/* aor's summary's stamp, or -1 when none. */
int64_t mwi_store_stamp(const struct mwi_store *m, const char *aor);
/* Forgets aor's summary: 0, or -ENOENT. */
int mwi_store_del(struct mwi_store *m, const char *aor);
/* cb for every AoR holding a summary until it returns non-zero (its value);
 * cb must not change the store. */
int mwi_store_foreach(const struct mwi_store *m, int (*cb)(void *arg, const char *aor), void *arg);
/* aor's summary (NUL-terminated), or NULL when none was sent. */
const char *mwi_store_get(const struct mwi_store *m, const char *aor);
uint32_t mwi_store_count(const struct mwi_store *m);

#endif
