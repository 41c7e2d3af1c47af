/* dialog_nodes.c — the dialog package's records across nodes (dialog_nodes.h). */
#include "subs/dialog_nodes.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/json_out.h"

static const char *const EVENTS[] = {"cancelled", "rejected", "timeout", "local-bye", "remote-bye", "replaced", "error"};

static bool node_ok(const char *s, size_t len)
{
    if (!len || len >= DIALOG_NODES_NODE_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '{' || c == '}') return false;
    }
    return true;
}

static bool id_ok(const char *s, size_t len)
{
    if (len != 16) return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v && *v) json_object_set_new(o, key, json_string(v));
}

int dialog_nodes_encode(const char *node, const struct dialog_info_entry *e, int64_t expires_wall_ms, char *field,
                        size_t fcap, char *out, size_t cap)
{
    if (!node || !node_ok(node, strlen(node)) || !id_ok(e->id, strnlen(e->id, sizeof(e->id))) || !e->call_id[0] ||
        expires_wall_ms <= 0)
        return -EINVAL;
    int fl = snprintf(field, fcap, "%s/%s", node, e->id);
    if (fl < 0 || (size_t)fl >= fcap) return -ENOSPC;
    json_t *o = json_object();
    if (!o) return -ENOMEM;
    set_str(o, "node", node);
    json_object_set_new(o, "exp", json_integer((json_int_t)expires_wall_ms));
    set_str(o, "cid", e->call_id);
    set_str(o, "lt", e->local_tag);
    set_str(o, "rt", e->remote_tag);
    set_str(o, "dir", e->initiator ? "initiator" : "recipient");
    set_str(o, "st", dialog_state_name(e->state));
    if (e->state == DIALOG_TERMINATED) set_str(o, "ev", e->event);
    if (e->code >= 100 && e->code <= 699) json_object_set_new(o, "code", json_integer(e->code));
    set_str(o, "lu", e->local_uri);
    set_str(o, "ru", e->remote_uri);
    set_str(o, "rd", e->remote_display);
    /* every string is valid UTF-8 for json_string, else it was left out:
     * the decoder refuses a record without cid or st */
    if (!json_object_get(o, "cid") || json_object_size(o) < 5) {
        json_decref(o);
        return -EINVAL;
    }
    int n = json_out_buf(o, out, cap < DIALOG_NODES_RECORD_MAX + 1 ? cap : DIALOG_NODES_RECORD_MAX + 1);
    json_decref(o);
    return n;
}

/* A string member: absent gives "" (unless required); present must be a
 * string under cap with no NUL and no control byte. */
static bool get_str(json_t *o, const char *key, char *dst, size_t cap, bool required)
{
    json_t *v = json_object_get(o, key);
    dst[0] = '\0';
    if (!v) return !required;
    if (!json_is_string(v)) return false;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= cap || strlen(s) != len || (required && !len)) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    memcpy(dst, s, len + 1);
    return true;
}

static bool uri_ok(const char *s)
{
    return !*s || strncasecmp(s, "sip:", 4) == 0 || strncasecmp(s, "sips:", 5) == 0 || strncasecmp(s, "tel:", 4) == 0;
}

static bool state_of(const char *s, enum dialog_state *out)
{
    for (int i = DIALOG_TRYING; i <= DIALOG_TERMINATED; i++)
        if (strcmp(s, dialog_state_name((enum dialog_state)i)) == 0) {
            *out = (enum dialog_state)i;
            return true;
        }
    return false;
}

static bool decode_object(json_t *o, const char *field_node, size_t node_len, struct dialog_remote *out)
{
    if (!json_is_object(o)) return false;
    if (!get_str(o, "node", out->node, sizeof(out->node), true) || strlen(out->node) != node_len ||
        memcmp(out->node, field_node, node_len) != 0)
        return false;
    json_t *exp = json_object_get(o, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= 0) return false;
    out->expires_wall_ms = (int64_t)json_integer_value(exp);
    struct dialog_info_entry *e = &out->e;
    char word[16];
    if (!get_str(o, "cid", e->call_id, sizeof(e->call_id), true) ||
        !get_str(o, "lt", e->local_tag, sizeof(e->local_tag), false) ||
        !get_str(o, "rt", e->remote_tag, sizeof(e->remote_tag), false) ||
        !get_str(o, "lu", e->local_uri, sizeof(e->local_uri), false) ||
        !get_str(o, "ru", e->remote_uri, sizeof(e->remote_uri), false) ||
        !get_str(o, "rd", e->remote_display, sizeof(e->remote_display), false) || !uri_ok(e->local_uri) ||
        !uri_ok(e->remote_uri))
        return false;
    if (!get_str(o, "dir", word, sizeof(word), true)) return false;
    if (strcmp(word, "initiator") == 0) e->initiator = true;
    else if (strcmp(word, "recipient") == 0) e->initiator = false;
    else return false;
    if (!get_str(o, "st", word, sizeof(word), true) || !state_of(word, &e->state)) return false;
    if (!get_str(o, "ev", word, sizeof(word), false)) return false;
    e->event = NULL;
    if (word[0]) {
        if (e->state != DIALOG_TERMINATED) return false;
        for (size_t i = 0; i < sizeof(EVENTS) / sizeof(EVENTS[0]); i++)
            if (strcmp(word, EVENTS[i]) == 0) e->event = EVENTS[i];
        if (!e->event) return false;
    }
    json_t *code = json_object_get(o, "code");
    e->code = 0;
    if (code) {
        if (!json_is_integer(code) || json_integer_value(code) < 100 || json_integer_value(code) > 699) return false;
        e->code = (int)json_integer_value(code);
    }
    return true;
}

int dialog_nodes_decode(const char *field, size_t flen, const char *value, size_t vlen, struct dialog_remote *out)
{
    memset(out, 0, sizeof(*out));
    if (!field || !value || flen >= DIALOG_NODES_FIELD_MAX || vlen > DIALOG_NODES_RECORD_MAX) return -EINVAL;
    const char *slash = memchr(field, '/', flen);
    if (!slash) return -EINVAL;
    size_t node_len = (size_t)(slash - field), id_len = flen - node_len - 1;
    if (!node_ok(field, node_len) || !id_ok(slash + 1, id_len)) return -EINVAL;
    json_t *o = json_loadb(value, vlen, JSON_REJECT_DUPLICATES, NULL);
    bool ok = o && decode_object(o, field, node_len, out);
    json_decref(o);
    if (!ok) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    memcpy(out->e.id, slash + 1, 16);
    out->e.id[16] = '\0';
    return 0;
}

static bool aor_ok(const char *s, size_t len, size_t cap)
{
    if (!len || len >= cap) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '{' || c == '}') return false;
    }
    return true;
}

int dialog_nodes_message(const char *prefix, const char *msg, size_t len, char *aor, size_t cap, char *node,
                         size_t ncap)
{
    if (cap) aor[0] = '\0';
    if (ncap) node[0] = '\0';
    size_t pl = strlen(prefix);
    if (!msg || len < pl || memcmp(msg, prefix, pl) != 0) return -EINVAL;
    msg += pl;
    len -= pl;
    if (len == 9 && memcmp(msg, "dlgw-sync", 9) == 0) return DIALOG_NODES_MSG_SYNC;
    int kind;
    if (len > 5 && memcmp(msg, "dlg:{", 5) == 0) kind = DIALOG_NODES_MSG_CHANGED, msg += 5, len -= 5;
    else if (len > 6 && memcmp(msg, "dlgw:{", 6) == 0) kind = DIALOG_NODES_MSG_WATCHED, msg += 6, len -= 6;
    else return -EINVAL;
    const char *close = memchr(msg, '}', len);
    if (!close) return -EINVAL;
    size_t al = (size_t)(close - msg), rest = len - al - 1;
    if (!aor_ok(msg, al, cap)) return -EINVAL;
    const char *tail = close + 1;
    if (kind == DIALOG_NODES_MSG_CHANGED) {
        if (rest) return -EINVAL;
    } else {
        if (rest < 2 || tail[0] != ' ' || !node_ok(tail + 1, rest - 1) || rest - 1 >= ncap) return -EINVAL;
        memcpy(node, tail + 1, rest - 1);
        node[rest - 1] = '\0';
    }
    memcpy(aor, msg, al);
    aor[al] = '\0';
    return kind;
}

static struct dialog_remote *find_id(struct dialog_remote *a, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].e.id, id) == 0) return &a[i];
    return NULL;
}

static int decode(const struct redisReply *f, const struct redisReply *v, void *rec)
{
    return dialog_nodes_decode(f->str, f->len, v->str, v->len, rec) < 0 ? -1 : 0;
}

/* The call went through two nodes: the later state. */
static bool seen(void *out, size_t n, const void *rec, struct follow_read_stats *st)
{
    (void)st;
    const struct dialog_remote *x = rec;
    struct dialog_remote *same = find_id(out, n, x->e.id);
    if (same && x->e.state > same->e.state) *same = *x;
    return same != NULL;
}

int dialog_nodes_parse(const struct redisReply *r, const char *self, int64_t now_wall, follow_alive_fn alive,
                       void *arg, struct dialog_remote *out, size_t cap, struct follow_read_stats *st)
{
    struct dialog_remote x;
    const struct follow_records how = {
        .elem_size = sizeof(x), .node_off = offsetof(struct dialog_remote, node),
        .exp_off = offsetof(struct dialog_remote, expires_wall_ms), .pairs_max = DIALOG_NODES_PAIRS_MAX,
        .max = DIALOG_NODES_MAX, .tmp = &x, .decode = decode, .dup = seen};
    return follow_parse_hash(r, &how, self, now_wall, alive, arg, out, cap, st);
}

static bool same_view(const struct dialog_info_entry *a, const struct dialog_info_entry *b)
{
    bool same_event = a->event == b->event || (a->event && b->event && strcmp(a->event, b->event) == 0);
    return a->state == b->state && a->code == b->code && same_event &&
           strcmp(a->local_tag, b->local_tag) == 0 && strcmp(a->remote_tag, b->remote_tag) == 0;
}

size_t dialog_nodes_diff(const struct dialog_remote *old, size_t n_old, const struct dialog_remote *cur, size_t n_cur,
                         struct dialog_info_entry *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < n_old && n < cap; i++) {
        bool kept = false;
        for (size_t j = 0; j < n_cur && !kept; j++) kept = strcmp(cur[j].e.id, old[i].e.id) == 0;
        if (kept || old[i].e.state == DIALOG_TERMINATED) continue;
        out[n] = old[i].e;
        out[n].state = DIALOG_TERMINATED;
        out[n].event = NULL;
        out[n].code = 0;
        n++;
    }
    for (size_t j = 0; j < n_cur && n < cap; j++) {
        const struct dialog_remote *o = NULL;
        for (size_t i = 0; i < n_old && !o; i++)
            if (strcmp(old[i].e.id, cur[j].e.id) == 0) o = &old[i];
        if (o && same_view(&o->e, &cur[j].e)) continue;
        out[n++] = cur[j].e;
    }
    return n;
}
