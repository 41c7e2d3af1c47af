/* reginfo.c — building application/reginfo+xml (RFC 3680 §5.3). */
#include "subs/reginfo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

/* XML character escaping for attribute values and text (the five specials;
 * control characters other than TAB/LF/CR cannot appear in XML 1.0 and are
 * dropped). */
void reginfo_put_escaped(sbuf_t *b, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': sbuf_append_cstr(b, "&amp;"); break;
        case '<': sbuf_append_cstr(b, "&lt;"); break;
        case '>': sbuf_append_cstr(b, "&gt;"); break;
        case '"': sbuf_append_cstr(b, "&quot;"); break;
        case '\'': sbuf_append_cstr(b, "&apos;"); break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') break;
            sbuf_append_char(b, (char)c);
        }
    }
}

void reginfo_id(const char *s, char out[9])
{
    snprintf(out, 9, "%08x", (unsigned)str_hash(str_from_cstr(s)));
}

static void put_contact(sbuf_t *b, const struct reginfo_contact *c)
{
    char id[9];
    reginfo_id(c->uri, id);
    sbuf_printf(b, "  <contact id=\"%s\" state=\"", id);
    reginfo_put_escaped(b, c->state);
    sbuf_append_cstr(b, "\" event=\"");
    reginfo_put_escaped(b, c->event);
    sbuf_append_char(b, '"');
    if (strcmp(c->state, "active") == 0) sbuf_printf(b, " expires=\"%u\"", c->expires);
    if (c->q1000 >= 0 && c->q1000 < 1000) sbuf_printf(b, " q=\"0.%03d\"", c->q1000);
    if (c->call_id && *c->call_id) {
        sbuf_append_cstr(b, " callid=\"");
        reginfo_put_escaped(b, c->call_id);
        sbuf_printf(b, "\" cseq=\"%u\"", c->cseq);
    }
    sbuf_append_cstr(b, ">\n   <uri>");
    reginfo_put_escaped(b, c->uri);
    sbuf_append_cstr(b, "</uri>\n  </contact>\n");
}

int reginfo_build(sbuf_t *out, uint32_t version, bool full, const char *aor_uri, const char *reg_state,
                  const struct reginfo_contact *contacts, size_t n)
{
    char id[9];
    reginfo_id(aor_uri, id);
    sbuf_printf(out,
                "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"%u\" "
                "state=\"%s\">\n <registration aor=\"",
                version, full ? "full" : "partial");
    reginfo_put_escaped(out, aor_uri);
    sbuf_printf(out, "\" id=\"%s\" state=\"", id);
    reginfo_put_escaped(out, reg_state);
    sbuf_append_cstr(out, "\">\n");
    for (size_t i = 0; i < n; i++) put_contact(out, &contacts[i]);
    sbuf_append_cstr(out, " </registration>\n</reginfo>\n");
    return out->failed ? -ENOMEM : 0;
}

const char *reginfo_event_for_removal(enum location_reason reason)
{
    switch (reason) {
    case LOCATION_REMOVED_UNREGISTER: return "unregistered";
    case LOCATION_REMOVED_EXPIRED: return "expired";
    case LOCATION_REMOVED_TRANSPORT_LOST: return "deactivated";
    case LOCATION_REMOVED_UNREACHABLE: return "deactivated";
    case LOCATION_REMOVED_FLOW_FAILED: return "deactivated";
    case LOCATION_REMOVED_KICKED: return "rejected";
    case LOCATION_REMOVED_REPLACED: return "unregistered";
    }
    return "unregistered";
}
