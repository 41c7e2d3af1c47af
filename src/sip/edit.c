/* edit.c — editing a parsed message for forwarding (see edit.h). */
#include "sip/edit.h"

#include <string.h>

int sip_edit_clone(const struct sip_msg *src, arena_t *a, struct sip_msg *dst)
{
    *dst = *src;
    uint32_t cap = src->header_count + 16;
    struct sip_header *h = arena_alloc(a, cap * sizeof(*h));
    if (!h) return -1;
    if (src->header_count) memcpy(h, src->headers, src->header_count * sizeof(*h));
    dst->headers = h;
    dst->header_cap = cap;
    return 0;
}

/* Index of a header pointer inside m. */
static uint32_t hindex(const struct sip_msg *m, const struct sip_header *h) { return (uint32_t)(h - m->headers); }

bool sip_edit_first_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry)
{
    for (const struct sip_header *h = sip_msg_header(m, type); h; h = sip_msg_header_next(m, h)) {
        str_t cur = h->value;
        if (sip_list_next(&cur, entry)) {
            *hidx = hindex(m, h);
            return true;
        }
    }
    return false;
}

bool sip_edit_last_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry)
{
    bool found = false;
    for (const struct sip_header *h = sip_msg_header(m, type); h; h = sip_msg_header_next(m, h)) {
        str_t cur = h->value, item;
        while (sip_list_next(&cur, &item)) {
            *entry = item;
            *hidx = hindex(m, h);
            found = true;
        }
    }
    return found;
}

void sip_edit_pop_first_entry(struct sip_msg *m, enum sip_hdr type)
{
    uint32_t idx;
    str_t first;
    if (!sip_edit_first_entry(m, type, &idx, &first)) return;
    struct sip_header *h = &m->headers[idx];
    const char *end = h->value.s + h->value.len;
    str_t cur = {first.s + first.len, (size_t)(end - (first.s + first.len))}, next;
    if (sip_list_next(&cur, &next)) h->value = str_make(next.s, (size_t)(end - next.s));
    else sip_msg_remove_header(m, idx);
}

void sip_edit_pop_last_entry(struct sip_msg *m, enum sip_hdr type)
{
    uint32_t idx;
    str_t last;
    if (!sip_edit_last_entry(m, type, &idx, &last)) return;
    struct sip_header *h = &m->headers[idx];
    str_t cur = h->value, item;
    const char *prev_end = NULL;
    while (sip_list_next(&cur, &item)) {
        if (item.s == last.s) break;
        prev_end = item.s + item.len;
    }
    if (prev_end) h->value = str_make(h->value.s, (size_t)(prev_end - h->value.s));
    else sip_msg_remove_header(m, idx);
}

int sip_edit_set_max_forwards(struct sip_msg *m, arena_t *a, int value)
{
    str_t v = arena_printf(a, "%d", value);
    if (!v.s) return -1;
    int32_t i = m->first[SIP_HDR_MAX_FORWARDS];
    if (i >= 0) {
        m->headers[i].value = v;
        /* duplicates would confuse the next hop: keep the first only */
        for (uint32_t k = m->header_count; k-- > (uint32_t)i + 1;)
            if (m->headers[k].type == SIP_HDR_MAX_FORWARDS) sip_msg_remove_header(m, k);
        m->max_forwards = value;
        return 0;
    }
    m->max_forwards = value;
    return sip_msg_add_header(m, a, STR_LIT("Max-Forwards"), v);
}

int sip_edit_insert_before(struct sip_msg *m, arena_t *a, enum sip_hdr before_type, int at, str_t name, str_t value)
{
    int32_t i = m->first[before_type];
    return sip_msg_insert_header(m, a, i >= 0 ? i : at, name, value);
}

int sip_edit_index_after(const struct sip_msg *m, enum sip_hdr type)
{
    int at = 0;
    for (uint32_t k = 0; k < m->header_count; k++)
        if (m->headers[k].type == type) at = (int)k + 1;
    return at;
}

void sip_edit_remove_all(struct sip_msg *m, enum sip_hdr type)
{
    for (uint32_t k = m->header_count; k-- > 0;)
        if (m->headers[k].type == type) sip_msg_remove_header(m, k);
}
