/* json_out.h — JSON text with a cap: jansson's compact encoding of a value,
 * refused when longer than its reader takes (a record a node writes into
 * Redis is read back by its peers as stranger input, with the same cap:
 * the writer refuses what a reader would refuse). */
#ifndef CASCADE_BASE_JSON_OUT_H
#define CASCADE_BASE_JSON_OUT_H

#include <stddef.h>

#include <jansson.h>

/* o as compact JSON, malloc'd and NUL-terminated in *out: its length; or
 * -ENOSPC (longer than max bytes), -ENOMEM (*out NULL either way). */
int json_out_dup(const json_t *o, size_t max, char **out);
/* o as compact JSON into out, NUL-terminated (cap bytes with the NUL): its
 * length; or -ENOSPC (does not fit), -ENOMEM (the encoder failed). */
int json_out_buf(const json_t *o, char *out, size_t cap);

#endif
