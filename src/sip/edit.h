/* edit.h — editing a parsed message in place for forwarding: an editable
 * copy (the header array duplicated in an arena, values still pointing into
 * the original buffer), list elements of Route/Via-style headers, Max-Forwards,
 * inserting and removing headers. What a proxy or a B2BUA does to a request
 * before sending it on; nothing here allocates outside the arena given. */
#ifndef CASCADE_SIP_EDIT_H
#define CASCADE_SIP_EDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "sip/msg.h"

/* Makes dst an editable copy of src: the header array is duplicated in a,
 * values still point into src's buffer (which must outlive dst). */
int sip_edit_clone(const struct sip_msg *src, arena_t *a, struct sip_msg *dst);

/* The first / last element of all headers of a type (e.g. Route, Via),
 * with the index of the header holding it. false when there is none. */
bool sip_edit_first_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry);
bool sip_edit_last_entry(const struct sip_msg *m, enum sip_hdr type, uint32_t *hidx, str_t *entry);
/* Removes that element; its header goes when it held only that one. */
void sip_edit_pop_first_entry(struct sip_msg *m, enum sip_hdr type);
void sip_edit_pop_last_entry(struct sip_msg *m, enum sip_hdr type);
/* Sets Max-Forwards to value (replacing or adding the header). 0 / -1. */
int sip_edit_set_max_forwards(struct sip_msg *m, arena_t *a, int value);
/* Inserts a header right before the first header of type before_type, or
 * at index at when there is none (-1 appends). 0 / -1. */
int sip_edit_insert_before(struct sip_msg *m, arena_t *a, enum sip_hdr before_type, int at, str_t name, str_t value);
/* The index right after the last header of a type (0 when none). */
int sip_edit_index_after(const struct sip_msg *m, enum sip_hdr type);
/* Removes every header of a type. */
void sip_edit_remove_all(struct sip_msg *m, enum sip_hdr type);

#endif
