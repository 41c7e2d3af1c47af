/* lower_dir.h — a middle node's directory across cascade nodes (issue 16):
 * the relayed part of a node's catalog as JSON (GET /gb/channels?relayed=1,
 * what a peer node answers), its reader on the asking node, and the merge
 * of several nodes' parts by channel id. Pure: unit-tested
 * (tests/unit/test_lower_dir.c) and fuzzed (tests/fuzz/fuzz_lower_dir.c). */
#ifndef CASCADE_GB_LOWER_DIR_H
#define CASCADE_GB_LOWER_DIR_H

#include <stddef.h>

#include <jansson.h>

#include "gb/codec/manscdp.h"

#define GB_DIR_MAX_ITEMS 100000              /* items from one node, and merged in one answer */
#define GB_DIR_MAX_ANSWER (32u * 1024 * 1024) /* a node's JSON answer, bytes */
#define GB_DIR_FIELD_MAX 256                  /* one string field, bytes */
#define GB_DIR_TIMEOUT_MS 5000                /* at most this long for the nodes' answers */
#define GB_DIR_MAX_NODES 64                   /* nodes asked (the registry holds no more) */
#define GB_DIR_NODE_MAX 128                   /* a node id with its NUL */
#define GB_DIR_MAX_FANS 4                     /* catalog answers waiting for the nodes at once */

/* items[0..n) as {"channels":[{"id","name","manufacturer","model","owner",
 * "civil_code","address","parental","parent_id","business_group_id",
 * "status"}]} (absent strings left out); NULL on no memory. */
json_t *gb_lower_dir_json(const gb_catalog_item_t *items, size_t n);

/* Reads a node's answer (len bytes, not NUL-terminated) and appends its
 * items (owned copies) to *items / *n / *cap. Everything or nothing: on
 * an error what was appended is freed again and *n is as before. Returns
 * how many were appended, or -EINVAL (not JSON, not {"channels":[…]}, an
 * entry not an object, an id not 20 digits, a field not a string / over
 * GB_DIR_FIELD_MAX / with a control byte, parental not 0 or 1, status not
 * ON / OFF), -E2BIG (more than max_items entries), -ENOMEM. */
int gb_lower_dir_parse(const char *body, size_t len, size_t max_items, gb_catalog_item_t **items, size_t *n,
                       size_t *cap);

/* Drops every item whose id an earlier item has (the first one stays; the
 * order of the rest is kept), freeing its strings. Returns the new count;
 * n when there is no memory to sort (nothing dropped). */
size_t gb_lower_items_dedupe(gb_catalog_item_t *items, size_t n);

#endif
