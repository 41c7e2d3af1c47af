/* subs_fixture.h — what the tests of the subscription side share
 * (test_subs.c, test_dialog_info.c, test_offline_msg.c; header-only:
 * static functions):
 *   - XML bodies read back with libxml2 and checked by XPath (struct doc);
 *   - the in-process stack (harness.h) with the real registrar and location
 *     service and no store: the harness and config for a test's setup, the
 *     registrar wired as the daemon wires it for its start, and the
 *     teardown. The test keeps the pieces in its own struct and builds its
 *     role (notifier, offline store) on top.
 * Include it after <cmocka.h>. */
#ifndef CASCADE_TESTS_SUBS_FIXTURE_H
#define CASCADE_TESTS_SUBS_FIXTURE_H

#include <stdio.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "app/config.h"
#include "auth/digest.h"
#include "base/log.h"
#include "harness.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "registrar/users.h"

/* ---- XML documents, read back with libxml2 ---- */

struct doc {
    xmlDocPtr d;
    xmlXPathContextPtr x;
};

/* Parses len bytes of text (name: for libxml2's messages) and binds prefix
 * to the namespace ns for the XPath expressions. */
static inline void doc_open_ns(struct doc *doc, const char *text, size_t len, const char *name, const char *prefix,
                               const char *ns)
{
    doc->d = xmlReadMemory(text, (int)len, name, NULL, XML_PARSE_NONET);
    assert_non_null(doc->d);
    doc->x = xmlXPathNewContext(doc->d);
    assert_non_null(doc->x);
    assert_int_equal(xmlXPathRegisterNs(doc->x, BAD_CAST prefix, BAD_CAST ns), 0);
}

static inline void doc_close(struct doc *doc)
{
    xmlXPathFreeContext(doc->x);
    xmlFreeDoc(doc->d);
}

/* The string value of an XPath expression (in a static buffer of 512 bytes). */
static inline const char *xs(struct doc *doc, const char *expr)
{
    static char out[512];
    char q[600];
    snprintf(q, sizeof(q), "string(%s)", expr);
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST q, doc->x);
    assert_non_null(o);
    snprintf(out, sizeof(out), "%s", o->stringval ? (const char *)o->stringval : "");
    xmlXPathFreeObject(o);
    return out;
}

/* The number value of an XPath expression. */
static inline double xn(struct doc *doc, const char *expr)
{
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, doc->x);
    assert_non_null(o);
    double v = o->floatval;
    xmlXPathFreeObject(o);
    return v;
}

/* ---- the stack with the registrar ---- */

/* For a setup: errors only in the log, the harness, and the defaults in cfg
 * with NAT pings off and no auth asked (a test may change cfg before its
 * start). */
static inline struct harness *subs_fx_harness(struct config *cfg)
{
    log_set_level(LOG_ERROR);
    struct harness *h = harness_new();
    config_init(cfg);
    cfg->registrar.nat_ping_interval_s = 0;
    cfg->auth.require_auth = false;
    return h;
}

/* For a start: the registrar on h for users ([registrar] and [sip] from
 * cfg, auth_cfg for its digest; auth may be NULL) and the location service
 * it keeps its bindings in (*loc). */
static inline struct registrar *subs_fx_registrar(struct harness *h, const struct config *cfg,
                                                  const struct auth_config *auth_cfg, struct users *users,
                                                  struct auth_server *auth, struct location **loc)
{
    struct registrar_config rc = cfg->registrar;
    struct registrar_deps d = {.cfg = &rc, .auth_cfg = auth_cfg, .sip_cfg = &cfg->sip, .local = &h->local,
                               .users = users, .auth = auth, .ua = h->ua, .timers = h->timers,
                               .send = harness_send, .send_arg = h};
    struct registrar *r = registrar_new(&d);
    assert_non_null(r);
    struct location_callbacks cb;
    registrar_location_callbacks(r, &cb);
    *loc = location_new(h->timers, NULL, &cb);
    registrar_set_location(r, *loc);
    return r;
}

/* For a teardown, once the role built on the registrar is freed (NULLs are
 * fine: a test that never started). */
static inline void subs_fx_free(struct harness *h, struct registrar *r, struct location *loc, struct auth_server *auth,
                                struct users *users)
{
    registrar_free(r);
    location_free(loc);
    auth_server_free(auth);
    users_free(users);
    harness_free(h);
}

#endif
