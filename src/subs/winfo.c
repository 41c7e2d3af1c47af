/* winfo.c — building application/watcherinfo+xml (RFC 3858 §4). */
#include "subs/winfo.h"

#include <errno.h>

#include "subs/reginfo.h"

int winfo_build(sbuf_t *out, uint32_t version, const char *resource, const char *package,
                const struct winfo_watcher *w, size_t n)
{
    sbuf_printf(out,
                "<?xml version=\"1.0\"?>\n<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%u\" "
                "state=\"full\">\n <watcher-list resource=\"",
                version);
    reginfo_put_escaped(out, resource);
    sbuf_append_cstr(out, "\" package=\"");
    reginfo_put_escaped(out, package);
    sbuf_append_cstr(out, "\">\n");
    for (size_t i = 0; i < n; i++) {
        sbuf_append_cstr(out, "  <watcher id=\"");
        reginfo_put_escaped(out, w[i].id);
        sbuf_append_cstr(out, "\" event=\"");
        reginfo_put_escaped(out, w[i].event);
        sbuf_append_cstr(out, "\" status=\"");
        reginfo_put_escaped(out, w[i].status);
        sbuf_append_cstr(out, "\">");
        reginfo_put_escaped(out, w[i].uri);
        sbuf_append_cstr(out, "</watcher>\n");
    }
    sbuf_append_cstr(out, " </watcher-list>\n</watcherinfo>\n");
    return out->failed ? -ENOMEM : 0;
}
