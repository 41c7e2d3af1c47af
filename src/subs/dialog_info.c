/* dialog_info.c — the dialog package's state per watched AoR and its
 * application/dialog-info+xml document (RFC 4235 §4). */
#include "subs/dialog_info.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/htable.h"
#include "base/timer.h" /* container_of */
#include "subs/reginfo.h"

struct dlg_node {
    struct hnode by_aor, by_call;
    uint64_t seq;                              /* insertion order: documents list oldest first */
    char aor[DIALOG_INFO_MAX_AOR];
    char caller_tag[DIALOG_INFO_MAX_TAG];
    struct dialog_info_entry e;
};

struct dialog_table {
    struct htable by_aor, by_call;
    unsigned cap;
    uint64_t seq;
};

const char *dialog_state_name(enum dialog_state s)
{
    switch (s) {
    case DIALOG_TRYING: return "trying";
    case DIALOG_PROCEEDING: return "proceeding";
    case DIALOG_EARLY: return "early";
    case DIALOG_CONFIRMED: return "confirmed";
    case DIALOG_TERMINATED: return "terminated";
    }
    return "terminated";
}

/* ---- the document ---- */

static void put_attr(sbuf_t *b, const char *name, const char *value)
{
    if (!value || !*value) return;
    sbuf_printf(b, " %s=\"", name);
    reginfo_put_escaped(b, value);
    sbuf_append_char(b, '"');
}

static void put_dialog(sbuf_t *b, const struct dialog_info_entry *e)
{
    sbuf_append_cstr(b, " <dialog");
    put_attr(b, "id", e->id);
    put_attr(b, "call-id", e->call_id);
    put_attr(b, "local-tag", e->local_tag);
    put_attr(b, "remote-tag", e->remote_tag);
    put_attr(b, "direction", e->initiator ? "initiator" : "recipient");
    sbuf_append_cstr(b, ">\n  <state");
    if (e->state == DIALOG_TERMINATED) put_attr(b, "event", e->event);
    if (e->code >= 100 && e->code <= 699) sbuf_printf(b, " code=\"%d\"", e->code);
    sbuf_printf(b, ">%s</state>\n", dialog_state_name(e->state));
    if (e->local_uri[0]) {
        sbuf_append_cstr(b, "  <local><identity>");
        reginfo_put_escaped(b, e->local_uri);
        sbuf_append_cstr(b, "</identity></local>\n");
    }
    if (e->remote_uri[0]) {
        sbuf_append_cstr(b, "  <remote><identity");
        put_attr(b, "display", e->remote_display);
        sbuf_append_char(b, '>');
        reginfo_put_escaped(b, e->remote_uri);
        sbuf_append_cstr(b, "</identity></remote>\n");
    }
    sbuf_append_cstr(b, " </dialog>\n");
}

int dialog_info_build(sbuf_t *out, uint32_t version, bool full, const char *entity,
                      const struct dialog_info_entry *const *d, size_t n)
{
    sbuf_printf(out,
                "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"%u\" "
                "state=\"%s\" entity=\"",
                version, full ? "full" : "partial");
    reginfo_put_escaped(out, entity);
    sbuf_append_cstr(out, "\">\n");
    for (size_t i = 0; i < n; i++) put_dialog(out, d[i]);
    sbuf_append_cstr(out, "</dialog-info>\n");
    return out->failed ? -ENOMEM : 0;
}

/* ---- state changes ---- */

static bool set_tag(char *dst, str_t tag)
{
    if (!tag.len || tag.len >= DIALOG_INFO_MAX_TAG) return false;
    memcpy(dst, tag.s, tag.len);
    dst[tag.len] = '\0';
    return true;
}

bool dialog_info_on_response(struct dialog_info_entry *e, int status, str_t to_tag, bool cancelled, bool timed_out)
{
    if (e->state == DIALOG_TERMINATED || status < 101) return false;
    /* The callee's tag: ours when we are the recipient, the other side's
     * when we called. A later fork's tag replaces an earlier one. */
    char *tag_slot = e->initiator ? e->remote_tag : e->local_tag;
    if (status < 200) {
        bool tagged = set_tag(tag_slot, to_tag);
        enum dialog_state next = tagged ? DIALOG_EARLY : DIALOG_PROCEEDING;
        if (e->state >= next) return false;
        e->state = next;
        return true;
    }
    if (status < 300) {
        if (e->state == DIALOG_CONFIRMED) return false;
        set_tag(tag_slot, to_tag);
        e->state = DIALOG_CONFIRMED;
        return true;
    }
    if (e->state == DIALOG_CONFIRMED) return false; /* another fork's failure after our answer */
    e->state = DIALOG_TERMINATED;
    e->code = status;
    /* RFC 4235 §4.1.2: cancelled is the caller's CANCEL, timeout the
     * proxy giving up (timer C CANCELs the branches, so its final may be
     * their 487), rejected any other failure. */
    if (cancelled) e->event = "cancelled";
    else if (timed_out) e->event = "timeout";
    else e->event = status == 487 ? "cancelled" : status == 408 ? "timeout" : "rejected";
    return true;
}

bool dialog_info_on_bye(struct dialog_info_entry *e, str_t from_tag)
{
    if (e->state == DIALOG_TERMINATED) return false;
    e->state = DIALOG_TERMINATED;
    e->code = 0;
    e->event = e->local_tag[0] && str_eq_cstr(from_tag, e->local_tag) ? "local-bye" : "remote-bye";
    return true;
}

/* ---- the table ---- */

struct dialog_table *dialog_table_new(unsigned per_aor_cap)
{
    struct dialog_table *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    htable_init(&t->by_aor);
    htable_init(&t->by_call);
    t->cap = per_aor_cap ? per_aor_cap : 1;
    return t;
}

static int free_node(struct hnode *n, void *arg)
{
    struct dialog_table *t = arg;
    struct dlg_node *d = container_of(n, struct dlg_node, by_aor);
    htable_remove(&t->by_aor, &d->by_aor);
    htable_remove(&t->by_call, &d->by_call);
    free(d);
    return 0;
}

void dialog_table_free(struct dialog_table *t)
{
    if (!t) return;
    htable_foreach(&t->by_aor, free_node, t);
    htable_free(&t->by_aor);
    htable_free(&t->by_call);
    free(t);
}

static uint32_t aor_hash(const char *aor) { return str_hash(str_from_cstr(aor)); }

struct dialog_info_entry *dialog_table_find(struct dialog_table *t, const char *aor, str_t call_id, str_t caller_tag)
{
    for (struct hnode *n = htable_first(&t->by_call, str_hash(call_id)); n; n = htable_next(n)) {
        struct dlg_node *d = container_of(n, struct dlg_node, by_call);
        if (str_eq_cstr(call_id, d->e.call_id) && str_eq_cstr(caller_tag, d->caller_tag) && strcmp(d->aor, aor) == 0)
            return &d->e;
    }
    return NULL;
}

static unsigned aor_count(const struct dialog_table *t, const char *aor)
{
    unsigned c = 0;
    for (struct hnode *n = htable_first(&t->by_aor, aor_hash(aor)); n; n = htable_next(n))
        if (strcmp(container_of(n, struct dlg_node, by_aor)->aor, aor) == 0) c++;
    return c;
}

struct dialog_info_entry *dialog_table_add(struct dialog_table *t, const char *aor, str_t call_id, str_t caller_tag,
                                           bool initiator)
{
    if (strlen(aor) >= DIALOG_INFO_MAX_AOR || !call_id.len || call_id.len >= DIALOG_INFO_MAX_CALL_ID ||
        !caller_tag.len || caller_tag.len >= DIALOG_INFO_MAX_TAG)
        return NULL;
    if (aor_count(t, aor) >= t->cap) return NULL;
    struct dlg_node *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    snprintf(d->aor, sizeof(d->aor), "%s", aor);
    set_tag(d->caller_tag, caller_tag);
    memcpy(d->e.call_id, call_id.s, call_id.len);
    set_tag(initiator ? d->e.local_tag : d->e.remote_tag, caller_tag);
    d->e.initiator = initiator;
    d->e.state = DIALOG_TRYING;
    snprintf(d->e.id, sizeof(d->e.id), "%08x%08x", (unsigned)str_hash(call_id), (unsigned)str_hash(caller_tag));
    if (htable_insert(&t->by_aor, &d->by_aor, aor_hash(aor)) < 0) {
        free(d);
        return NULL;
    }
    if (htable_insert(&t->by_call, &d->by_call, str_hash(call_id)) < 0) {
        htable_remove(&t->by_aor, &d->by_aor);
        free(d);
        return NULL;
    }
    d->seq = ++t->seq;
    return &d->e;
}

size_t dialog_table_list(struct dialog_table *t, const char *aor, const struct dialog_info_entry **out, size_t max)
{
    const struct dlg_node *got[64];
    size_t n = 0;
    if (max > 64) max = 64;
    for (struct hnode *h = htable_first(&t->by_aor, aor_hash(aor)); h && n < max; h = htable_next(h)) {
        const struct dlg_node *d = container_of(h, struct dlg_node, by_aor);
        if (strcmp(d->aor, aor) != 0) continue;
        size_t i = n++;
        for (; i > 0 && got[i - 1]->seq > d->seq; i--) got[i] = got[i - 1]; /* insertion sort: a few entries */
        got[i] = d;
    }
    for (size_t i = 0; i < n; i++) out[i] = &got[i]->e;
    return n;
}

size_t dialog_table_by_call(struct dialog_table *t, str_t call_id, struct dialog_info_entry **out, size_t max)
{
    size_t n = 0;
    for (struct hnode *h = htable_first(&t->by_call, str_hash(call_id)); h && n < max; h = htable_next(h)) {
        struct dlg_node *d = container_of(h, struct dlg_node, by_call);
        if (str_eq_cstr(call_id, d->e.call_id)) out[n++] = &d->e;
    }
    return n;
}

const char *dialog_table_aor(const struct dialog_info_entry *e)
{
    return ((const struct dlg_node *)(const void *)((const char *)e - offsetof(struct dlg_node, e)))->aor;
}

void dialog_table_remove(struct dialog_table *t, struct dialog_info_entry *e)
{
    struct dlg_node *d = container_of(e, struct dlg_node, e);
    htable_remove(&t->by_aor, &d->by_aor);
    htable_remove(&t->by_call, &d->by_call);
    free(d);
}

uint32_t dialog_table_count(const struct dialog_table *t) { return htable_count(&t->by_aor); }

struct each_ctx {
    int (*fn)(void *arg, const struct dialog_info_entry *e);
    void *arg;
};

static int each_one(struct hnode *n, void *arg)
{
    struct each_ctx *c = arg;
    return c->fn(c->arg, &container_of(n, struct dlg_node, by_aor)->e);
}

void dialog_table_foreach(struct dialog_table *t, int (*fn)(void *arg, const struct dialog_info_entry *e), void *arg)
{
    struct each_ctx c = {.fn = fn, .arg = arg};
    htable_foreach(&t->by_aor, each_one, &c);
}
