/* pidf.c — reading and writing application/pidf+xml (RFC 3863) with
 * libxml2. Documents are parsed without network access and refused when
 * they carry a DTD: entity declarations are the one way a few bytes of XML
 * become megabytes, and PIDF has no use for them. */
#include "subs/pidf.h"

#include <errno.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define PIDF_PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static bool is_pidf(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href && strcmp((const char *)n->ns->href, PIDF_NS) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *pidf_child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n->children; c; c = c->next)
        if (is_pidf(c, name)) return c;
    return NULL;
}

/* <basic>'s text, surrounding white space ignored: "open", "closed" or
 * anything else (invalid). */
static bool basic_is(const xmlNode *basic, const char *want)
{
    xmlChar *t = xmlNodeGetContent(basic);
    if (!t) return false;
    const char *s = (const char *)t;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n')) len--;
    while (len && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++, len--;
    bool eq = strlen(want) == len && memcmp(s, want, len) == 0;
    xmlFree(t);
    return eq;
}

/* Checks one <tuple> (RFC 3863 §4.1.2, §4.1.4): an id, unique in the
 * document among the ids seen so far, and a <status> whose <basic>, when
 * present, is open or closed. *open is set when it is open. */
static const char *check_tuple(const xmlNode *t, xmlChar **ids, int nids, bool *open)
{
    xmlChar *id = xmlGetNoNsProp(t, (const xmlChar *)"id");
    ids[nids] = id; /* the caller frees it */
    if (!id || !*id) return "a tuple has no id";
    for (int i = 0; i < nids; i++)
        if (xmlStrEqual(ids[i], id)) return "two tuples share an id";
    const xmlNode *status = pidf_child(t, "status");
    if (!status) return "a tuple has no status";
    const xmlNode *basic = pidf_child(status, "basic");
    *open = basic && basic_is(basic, "open");
    if (basic && !*open && !basic_is(basic, "closed")) return "basic status is neither open nor closed";
    return NULL;
}

/* Parses and checks body; the document, or NULL with *why. */
static xmlDocPtr pidf_read(const char *body, size_t len, const char **why, int *tuples, int *open)
{
    *tuples = *open = 0;
    if (len == 0) return *why = "empty body", NULL;
    xmlDocPtr d = xmlReadMemory(body, (int)len, NULL, NULL, PIDF_PARSE_OPTIONS);
    if (!d) return *why = "not well-formed XML", NULL;
    const xmlNode *root = xmlDocGetRootElement(d);
    *why = NULL;
    if (d->intSubset || d->extSubset) *why = "a DTD is not allowed";
    else if (!root || !is_pidf(root, "presence")) *why = "the root is not a PIDF <presence>";
    else if (!xmlHasNsProp(root, (const xmlChar *)"entity", NULL)) *why = "<presence> has no entity";
    xmlChar *ids[PIDF_MAX_TUPLES + 1];
    int n = 0;
    for (const xmlNode *c = root && !*why ? root->children : NULL; c && !*why; c = c->next) {
        if (!is_pidf(c, "tuple")) continue;
        if (n == PIDF_MAX_TUPLES) {
            *why = "too many tuples";
            break;
        }
        bool is_open = false;
        *why = check_tuple(c, ids, n, &is_open);
        if (ids[n]) n++;
        *open += is_open;
    }
    for (int i = 0; i < n; i++) xmlFree(ids[i]);
    *tuples = n;
    if (*why) {
        xmlFreeDoc(d);
        return NULL;
    }
    return d;
}

int pidf_validate(const char *body, size_t len, const char **why)
{
    int t, o;
    if (len > PIDF_MAX_BODY) {
        *why = "document too large";
        return -EMSGSIZE;
    }
    xmlDocPtr d = pidf_read(body, len, why, &t, &o);
    if (!d) return -EINVAL;
    xmlFreeDoc(d);
    return 0;
}

int pidf_summary(const char *body, size_t len, int *tuples, int *open)
{
    const char *why;
    if (len > PIDF_MAX_BODY) return -EMSGSIZE;
    xmlDocPtr d = pidf_read(body, len, &why, tuples, open);
    if (!d) return -EINVAL;
    xmlFreeDoc(d);
    return 0;
}

/* A new document with an empty <presence entity=...> root; NULL on ENOMEM. */
static xmlDocPtr new_presence(const char *entity, xmlNodePtr *root)
{
    xmlDocPtr d = xmlNewDoc((const xmlChar *)"1.0");
    *root = d ? xmlNewDocNode(d, NULL, (const xmlChar *)"presence", NULL) : NULL;
    xmlNsPtr ns = *root ? xmlNewNs(*root, (const xmlChar *)PIDF_NS, NULL) : NULL;
    if (!ns || !xmlNewProp(*root, (const xmlChar *)"entity", (const xmlChar *)entity)) {
        xmlFreeNode(*root);
        xmlFreeDoc(d);
        return NULL;
    }
    xmlSetNs(*root, ns);
    xmlDocSetRootElement(d, *root);
    return d;
}

static int dump(xmlDocPtr d, sbuf_t *out)
{
    xmlChar *mem = NULL;
    int size = 0;
    xmlDocDumpFormatMemoryEnc(d, &mem, &size, "UTF-8", 1);
    xmlFreeDoc(d);
    if (!mem) return -ENOMEM;
    sbuf_append(out, mem, (size_t)size);
    xmlFree(mem);
    return out->failed ? -ENOMEM : 0;
}

/* Whether a tuple with the same id as t is already under root (the first
 * document to name an id keeps it: ids stay unique, RFC 3863 §4.1.2). */
static bool id_taken(const xmlNode *root, const xmlNode *t)
{
    if (!is_pidf(t, "tuple")) return false;
    xmlChar *id = xmlGetNoNsProp(t, (const xmlChar *)"id");
    bool taken = false;
    for (const xmlNode *c = root->children; c && id && !taken; c = c->next) {
        if (!is_pidf(c, "tuple")) continue;
        xmlChar *other = xmlGetNoNsProp(c, (const xmlChar *)"id");
        taken = xmlStrEqual(id, other);
        xmlFree(other);
    }
    xmlFree(id);
    return taken;
}

/* Copies every top-level element of src under root (a copy declares the
 * namespaces it uses that were declared above it, so prefixes survive). */
static int copy_elements(xmlDocPtr dst, xmlNodePtr root, const xmlDoc *src)
{
    for (xmlNodePtr c = xmlDocGetRootElement(src)->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || id_taken(root, c)) continue;
        xmlNodePtr copy = xmlDocCopyNode(c, dst, 1);
        if (!copy || !xmlAddChild(root, copy)) {
            xmlFreeNode(copy);
            return -ENOMEM;
        }
    }
    return 0;
}

int pidf_compose(sbuf_t *out, const char *entity, const char *const *docs, const size_t *lens, size_t n)
{
    xmlNodePtr root;
    xmlDocPtr d = new_presence(entity, &root);
    if (!d) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *why;
        int t, o;
        xmlDocPtr src = lens[i] <= PIDF_MAX_BODY ? pidf_read(docs[i], lens[i], &why, &t, &o) : NULL;
        int rc = src ? copy_elements(d, root, src) : -EINVAL;
        xmlFreeDoc(src);
        if (rc < 0) {
            xmlFreeDoc(d);
            return rc;
        }
    }
    xmlReconciliateNs(d, root);
    return dump(d, out);
}

int pidf_derived(sbuf_t *out, const char *entity, bool open, const char *contact)
{
    xmlNodePtr root;
    xmlDocPtr d = new_presence(entity, &root);
    if (!d) return -ENOMEM;
    xmlNodePtr t = xmlNewChild(root, root->ns, (const xmlChar *)"tuple", NULL);
    xmlNodePtr st = t ? xmlNewChild(t, root->ns, (const xmlChar *)"status", NULL) : NULL;
    bool ok = st && xmlNewProp(t, (const xmlChar *)"id", (const xmlChar *)"registration") &&
              xmlNewChild(st, root->ns, (const xmlChar *)"basic", (const xmlChar *)(open ? "open" : "closed"));
    if (ok && open && contact && *contact)
        ok = xmlNewTextChild(t, root->ns, (const xmlChar *)"contact", (const xmlChar *)contact) != NULL;
    if (!ok) {
        xmlFreeDoc(d);
        return -ENOMEM;
    }
    return dump(d, out);
}
