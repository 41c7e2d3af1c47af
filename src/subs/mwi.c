/* mwi.c — application/simple-message-summary checks (RFC 3842 §5.2), the
 * voicemail sources and the latest summary per user. */
#include "subs/mwi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/htable.h"
#include "base/str.h"
#include "base/timer.h" /* container_of */

#define MWI_MAX_LINES 64
#define MWI_MAX_COUNT_DIGITS 9

/* ---- the body ---- */

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

static str_t skip_ws(str_t s)
{
    while (s.len && is_ws(*s.s)) s.s++, s.len--;
    return s;
}

/* "name" HCOLON: the rest after the colon (whitespace skipped), or a
 * STR_NULL-like result with ok false when line is not "name:". */
static bool header_value(str_t line, const char *name, str_t *value)
{
    size_t n = strlen(name);
    if (line.len < n || strncasecmp(line.s, name, n) != 0) return false;
    str_t rest = skip_ws(str_make(line.s + n, line.len - n));
    if (!rest.len || *rest.s != ':') return false;
    *value = str_trim(str_make(rest.s + 1, rest.len - 1));
    return true;
}

/* 1*DIGIT (at most MWI_MAX_COUNT_DIGITS) from *s; false when none. */
static bool take_count(str_t *s)
{
    size_t n = 0;
    while (n < s->len && s->s[n] >= '0' && s->s[n] <= '9') n++;
    if (n == 0 || n > MWI_MAX_COUNT_DIGITS) return false;
    s->s += n, s->len -= n;
    return true;
}

static bool take_char(str_t *s, char c)
{
    *s = skip_ws(*s);
    if (!s->len || *s->s != c) return false;
    s->s++, s->len--;
    *s = skip_ws(*s);
    return true;
}

/* newmsgs SLASH oldmsgs [ LPAREN new-urgentmsgs SLASH old-urgentmsgs RPAREN ] */
static bool summary_counts(str_t v)
{
    if (!take_count(&v) || !take_char(&v, '/') || !take_count(&v)) return false;
    v = skip_ws(v);
    if (!v.len) return true;
    if (!take_char(&v, '(') || !take_count(&v) || !take_char(&v, '/') || !take_count(&v) || !take_char(&v, ')'))
        return false;
    return v.len == 0;
}

static const char *const context_classes[] = {"voice-message",      "fax-message",  "pager-message",
                                              "multimedia-message", "text-message", "none"};

/* A message-context line (RFC 3458 classes): 1 valid, 0 not such a line,
 * -1 such a line with bad counts. */
static int summary_line(str_t line)
{
    for (size_t i = 0; i < sizeof(context_classes) / sizeof(context_classes[0]); i++) {
        str_t v;
        if (header_value(line, context_classes[i], &v)) return summary_counts(v) ? 1 : -1;
    }
    return 0;
}

/* An absolute URI with no whitespace or control characters: scheme ":" rest. */
static bool account_uri(str_t v)
{
    size_t i = 0;
    if (!v.len || !((v.s[0] | 0x20) >= 'a' && (v.s[0] | 0x20) <= 'z')) return false;
    while (i < v.len && v.s[i] != ':') {
        char c = v.s[i];
        bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
                  c == '.';
        if (!ok) return false;
        i++;
    }
    if (i == v.len || i + 1 == v.len) return false;
    for (; i < v.len; i++)
        if ((unsigned char)v.s[i] <= ' ' || v.s[i] == 0x7f) return false;
    return true;
}

/* extension-header = header-name HCOLON header-value (printable, tabs). */
static bool extension_header(str_t line)
{
    size_t i = 0;
    while (i < line.len && line.s[i] != ':' && !is_ws(line.s[i])) {
        unsigned char c = (unsigned char)line.s[i];
        if (c <= ' ' || c >= 0x7f || strchr("()<>@,;\\\"/[]?={}", c)) return false;
        i++;
    }
    if (i == 0) return false;
    str_t rest = skip_ws(str_make(line.s + i, line.len - i));
    if (!rest.len || *rest.s != ':') return false;
    for (size_t k = 1; k < rest.len; k++)
        if (((unsigned char)rest.s[k] < ' ' && rest.s[k] != '\t') || rest.s[k] == 0x7f) return false;
    return true;
}

/* The next line of *rest (LF or CRLF), false at the end. */
static bool next_line(str_t *rest, str_t *line)
{
    if (!rest->len) return false;
    const char *nl = memchr(rest->s, '\n', rest->len);
    size_t n = nl ? (size_t)(nl - rest->s) : rest->len;
    *line = str_make(rest->s, n);
    if (line->len && line->s[line->len - 1] == '\r') line->len--;
    rest->s += nl ? n + 1 : n;
    rest->len -= nl ? n + 1 : n;
    return true;
}

int mwi_validate(const char *body, size_t len, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (len == 0) return *why = "Empty Message Summary", -1;
    if (len > MWI_MAX_BODY) return *why = "Message Summary Too Large", -1;
    if (memchr(body, '\0', len)) return *why = "NUL In Message Summary", -1;
    str_t rest = str_make(body, len), line, v;
    next_line(&rest, &line);
    if (!header_value(line, "Messages-Waiting", &v)) return *why = "Missing Messages-Waiting", -1;
    if (!str_ieq_cstr(v, "yes") && !str_ieq_cstr(v, "no")) return *why = "Bad Messages-Waiting", -1;
    bool account = false, summaries = false, extensions = false;
    for (int lines = 1; next_line(&rest, &line); lines++) {
        if (lines >= MWI_MAX_LINES) return *why = "Too Many Summary Lines", -1;
        if (extensions) {
            if (line.len && !extension_header(line)) return *why = "Bad Message Header", -1;
            continue;
        }
        if (!line.len) {
            extensions = true; /* opt-msg-headers follow an empty line */
            continue;
        }
        if (header_value(line, "Message-Account", &v)) {
            if (account || summaries) return *why = "Misplaced Message-Account", -1;
            if (!account_uri(v)) return *why = "Bad Message-Account", -1;
            account = true;
            continue;
        }
        int s = summary_line(line);
        if (s < 0) return *why = "Bad Message Counts", -1;
        if (s == 0) return *why = "Unknown Summary Line", -1;
        summaries = true;
    }
    return 0;
}

/* ---- sources ---- */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, res->ai_addr, res->ai_addrlen <= sizeof(*out) ? res->ai_addrlen : sizeof(*out));
    freeaddrinfo(res);
    if (out->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons(port);
    else if (out->ss_family == AF_INET6) ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    else return -1;
    return 0;
}

/* One entry "host", "host:port", "[v6]" or "[v6]:port" (a bare v6 has no port). */
static int parse_source(str_t item, struct mwi_source *out)
{
    char host[256];
    unsigned long port = 0;
    str_t h = item, p = STR_NULL;
    if (item.len && item.s[0] == '[') {
        const char *close = memchr(item.s, ']', item.len);
        if (!close) return -1;
        h = str_make(item.s + 1, (size_t)(close - item.s - 1));
        size_t used = (size_t)(close - item.s) + 1;
        if (used < item.len) {
            if (item.s[used] != ':') return -1;
            p = str_make(item.s + used + 1, item.len - used - 1);
        }
    } else {
        const char *c1 = memchr(item.s, ':', item.len);
        if (c1 && !memchr(c1 + 1, ':', item.len - (size_t)(c1 - item.s) - 1)) {
            h = str_make(item.s, (size_t)(c1 - item.s));
            p = str_make(c1 + 1, item.len - h.len - 1);
        }
    }
    if (!h.len || h.len >= sizeof(host)) return -1;
    if (p.s) {
        uint64_t v;
        if (str_to_u64(p, 65535, &v) != 0 || v == 0) return -1;
        port = (unsigned long)v;
    }
    memcpy(host, h.s, h.len);
    host[h.len] = '\0';
    return resolve(host, (uint16_t)port, &out->addr);
}

int mwi_sources_parse(const char *list, struct mwi_source *out, size_t max, char *err, size_t errcap)
{
    str_t rest = str_from_cstr(list ? list : "");
    size_t n = 0;
    while (rest.len) {
        const char *comma = memchr(rest.s, ',', rest.len);
        size_t len = comma ? (size_t)(comma - rest.s) : rest.len;
        str_t item = str_trim(str_make(rest.s, len));
        rest.s += comma ? len + 1 : len;
        rest.len -= comma ? len + 1 : len;
        if (!item.len) continue;
        if (n == max) {
            snprintf(err, errcap, "more than %zu voicemail sources", max);
            return -1;
        }
        if (parse_source(item, &out[n]) != 0) {
            snprintf(err, errcap, "voicemail source \"%.*s\": not ip, host or host:port (or does not resolve)",
                     (int)(item.len > 100 ? 100 : item.len), item.s);
            return -1;
        }
        n++;
    }
    return (int)n;
}

static bool same_source(const struct sockaddr_storage *want, const struct sockaddr_storage *a)
{
    /* An IPv4 source may arrive v4-mapped on a dual-stack socket. */
    if (want->ss_family == AF_INET && a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in *w = (const struct sockaddr_in *)want;
        if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) || memcmp(&s6->sin6_addr.s6_addr[12], &w->sin_addr, 4) != 0)
            return false;
        return w->sin_port == 0 || w->sin_port == s6->sin6_port;
    }
    if (want->ss_family != a->ss_family) return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *w = (const struct sockaddr_in *)want, *s = (const struct sockaddr_in *)a;
        return w->sin_addr.s_addr == s->sin_addr.s_addr && (w->sin_port == 0 || w->sin_port == s->sin_port);
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *w = (const struct sockaddr_in6 *)want, *s = (const struct sockaddr_in6 *)a;
        return memcmp(&w->sin6_addr, &s->sin6_addr, sizeof(w->sin6_addr)) == 0 &&
               (w->sin6_port == 0 || w->sin6_port == s->sin6_port);
    }
    return false;
}

bool mwi_source_match(const struct mwi_source *src, size_t n, const struct sockaddr_storage *addr)
{
    for (size_t i = 0; i < n; i++)
        if (same_source(&src[i].addr, addr)) return true;
    return false;
}

/* ---- the store ---- */

struct mwi_entry {
    struct hnode node;
    char *body;
    int64_t stamp;
    char aor[];
};

struct mwi_store {
    struct htable by_aor;
    unsigned max;
};

struct mwi_store *mwi_store_new(unsigned max_users)
{
    struct mwi_store *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    htable_init(&m->by_aor);
    m->max = max_users ? max_users : 1;
    return m;
}

static int free_entry(struct hnode *n, void *arg)
{
    struct mwi_store *m = arg;
    struct mwi_entry *e = container_of(n, struct mwi_entry, node);
    htable_remove(&m->by_aor, n);
    free(e->body);
    free(e);
    return 0;
}

void mwi_store_free(struct mwi_store *m)
{
    if (!m) return;
    htable_foreach(&m->by_aor, free_entry, m);
    htable_free(&m->by_aor);
    free(m);
}

static struct mwi_entry *find(const struct mwi_store *m, const char *aor)
{
    for (struct hnode *n = htable_first(&m->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct mwi_entry *e = container_of(n, struct mwi_entry, node);
        if (strcmp(e->aor, aor) == 0) return e;
    }
    return NULL;
}

int mwi_store_set(struct mwi_store *m, const char *aor, const char *body, size_t len)
{
    return mwi_store_put(m, aor, body, len, 0);
}

int mwi_store_put(struct mwi_store *m, const char *aor, const char *body, size_t len, int64_t stamp_ms)
{
    if (len > MWI_MAX_BODY) return -EINVAL;
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    struct mwi_entry *e = find(m, aor);
    if (!e) {
        if (htable_count(&m->by_aor) >= m->max) {
            free(copy);
            return -ENOSPC;
        }
        size_t alen = strlen(aor);
        e = calloc(1, sizeof(*e) + alen + 1);
        if (!e || htable_insert(&m->by_aor, &e->node, str_hash(str_from_cstr(aor))) < 0) {
            free(e);
            free(copy);
            return -ENOMEM;
        }
        memcpy(e->aor, aor, alen + 1);
    }
    free(e->body);
    e->body = copy;
    e->stamp = stamp_ms;
    return 0;
}

int64_t mwi_store_stamp(const struct mwi_store *m, const char *aor)
{
    const struct mwi_entry *e = find(m, aor);
    return e ? e->stamp : -1;
}

int mwi_store_del(struct mwi_store *m, const char *aor)
{
    struct mwi_entry *e = find(m, aor);
    if (!e) return -ENOENT;
    free_entry(&e->node, m);
    return 0;
}

struct walk {
    int (*cb)(void *arg, const char *aor);
    void *arg;
};

static int walk_one(struct hnode *n, void *arg)
{
    struct walk *w = arg;
    return w->cb(w->arg, container_of(n, struct mwi_entry, node)->aor);
}

int mwi_store_foreach(const struct mwi_store *m, int (*cb)(void *arg, const char *aor), void *arg)
{
    struct walk w = {cb, arg};
    return htable_foreach((struct htable *)&m->by_aor, walk_one, &w);
}

const char *mwi_store_get(const struct mwi_store *m, const char *aor)
{
    const struct mwi_entry *e = find(m, aor);
    return e ? e->body : NULL;
}

uint32_t mwi_store_count(const struct mwi_store *m) { return htable_count(&m->by_aor); }
