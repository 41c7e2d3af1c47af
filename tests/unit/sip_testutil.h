/* sip_testutil.h — helpers shared by the SIP unit tests (test_parse.c,
 * test_print.c, test_uri.c, test_sdp.c).
 *
 * Test messages are written with "\n" line ends for readability; msg_make()
 * turns them into CRLF wire form and fills in a Content-Length written as
 * "#" with the length of the (converted) body, so no test hand-counts bytes. */
#ifndef CASCADE_TESTS_SIP_TESTUTIL_H
#define CASCADE_TESTS_SIP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sip/msg.h"

/* Asserts a slice equals a C string. */
#define assert_str(slice, cstr)                                                             \
    do {                                                                                    \
        str_t s__ = (slice);                                                                \
        const char *c__ = (cstr);                                                           \
        if (!str_eq(s__, str_from_cstr(c__)))                                              \
            fail_msg("%s:%d: got \"%.*s\", want \"%s\"", __FILE__, __LINE__, STR_FMT(s__), c__); \
    } while (0)

/* LF -> CRLF (an existing CRLF stays), then each "#CL#" becomes the body length. Returns a malloc'ed buffer (free it) and its length. */
static inline char *msg_make(const char *text, size_t *len)
{
    size_t n = strlen(text);
    char *tmp = malloc(2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) tmp[o++] = '\r';
        tmp[o++] = text[i];
    }
    tmp[o] = '\0';
    const char *hend = strstr(tmp, "\r\n\r\n");
    size_t body = hend ? o - (size_t)(hend + 4 - tmp) : 0;
    char *out = malloc(o + 128);
    size_t w = 0;
    for (size_t i = 0; i < o;) {
        if (i + 4 <= o && memcmp(tmp + i, "#CL#", 4) == 0 && (!hend || tmp + i < hend)) {
            w += (size_t)snprintf(out + w, 24, "%zu", body);
            i += 4;
        } else {
            out[w++] = tmp[i++];
        }
    }
    o = w;
    out[o] = '\0';
    free(tmp);
    *len = o;
    return out;
}

/* One parse context: a scratch-first arena, the message and the error. */
struct pctx {
    _Alignas(16) char scratch[32768];
    arena_t arena;
    struct sip_msg m;
    struct sip_parse_error err;
    char *buf;
    size_t len;
    int rc;
};

static inline struct pctx *pctx_new(void)
{
    struct pctx *c = calloc(1, sizeof(*c));
    arena_init(&c->arena, c->scratch, sizeof(c->scratch));
    return c;
}

static inline void pctx_free(struct pctx *c)
{
    if (!c) return;
    arena_free(&c->arena);
    free(c->buf);
    free(c);
}

/* Parses text (LF form, converted) with the given limits (NULL: defaults). */
static inline struct pctx *parse_text_lim(const char *text, const struct sip_parse_limits *lim)
{
    struct pctx *c = pctx_new();
    c->buf = msg_make(text, &c->len);
    c->rc = sip_parse(c->buf, c->len, &c->arena, lim, &c->m, &c->err);
    return c;
}

static inline struct pctx *parse_text(const char *text) { return parse_text_lim(text, NULL); }

/* Parses bytes exactly as given (no conversion). */
static inline struct pctx *parse_raw(const char *bytes, size_t len)
{
    struct pctx *c = pctx_new();
    c->buf = malloc(len ? len : 1);
    memcpy(c->buf, bytes, len);
    c->len = len;
    c->rc = sip_parse(c->buf, c->len, &c->arena, NULL, &c->m, &c->err);
    return c;
}

#define assert_parse_ok(c)                                                                      \
    do {                                                                                        \
        if ((c)->rc != 0) fail_msg("%s:%d: parse failed: %s", __FILE__, __LINE__, (c)->err.reason); \
    } while (0)

#define assert_parse_bad(c, why)                                                                 \
    do {                                                                                         \
        if ((c)->rc == 0) fail_msg("%s:%d: parse succeeded, want \"%s\"", __FILE__, __LINE__, why); \
        assert_string_equal((c)->err.reason, why);                                               \
    } while (0)

#endif
