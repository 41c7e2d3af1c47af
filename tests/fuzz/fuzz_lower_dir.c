/* fuzz_lower_dir.c — libFuzzer target for what a middle node reads from
 * another cascade node's API when it merges the directory it reports
 * upstream (src/gb/lower/lower_nodes.c, issue 16): the JSON answer of
 * GET /gb/channels?relayed=1, read by gb_lower_dir_parse after an item of
 * its own, then deduplicated and written into a MANSCDP Catalog Response
 * as the answer to the upstream is.
 *
 * Beyond "no crash": a refused answer leaves the item already merged as it
 * was; an accepted one adds exactly what it says, each with an id of 20
 * digits, string fields under GB_DIR_FIELD_MAX without control bytes,
 * parental 0 or 1, status ON or OFF; dedupe never grows the list and keeps
 * the first item; the items written back as JSON read again to as many.
 *
 *   tests/fuzz/fuzz_lower_dir -max_total_time=60 tests/fuzz/corpus/fuzz_lower_dir */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/sbuf.h"
#include "gb/lower/lower_dir.h"
#include "gb/lower/lower_int.h"

static void text_checked(const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    if (n > GB_DIR_FIELD_MAX) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

static void item_checked(const gb_catalog_item_t *it)
{
    if (!it->device_id || strlen(it->device_id) != 20) abort();
    for (size_t i = 0; i < 20; i++)
        if (it->device_id[i] < '0' || it->device_id[i] > '9') abort();
    text_checked(it->name), text_checked(it->manufacturer), text_checked(it->model), text_checked(it->owner);
    text_checked(it->civil_code), text_checked(it->address), text_checked(it->parent_id);
    text_checked(it->business_group_id);
    if (it->parental != 0 && it->parental != 1) abort();
    if (it->status != GB_ONOFF_ON && it->status != GB_ONOFF_OFF) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_catalog_item_t *items = NULL;
    size_t n = 0, cap = 0;
    gb_catalog_item_t own;
    gb_catalog_item_init(&own);
    own.device_id = (char *)"34020000001320000001";
    own.name = (char *)"own";
    if (gb_lower_items_push(&items, &n, &cap, &own) != 0) abort();
    int rc = gb_lower_dir_parse((const char *)data, size, 1000, &items, &n, &cap);
    if (rc < 0) {
        if (rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM) abort();
        if (n != 1) abort();
    } else if ((size_t)rc != n - 1 || rc > 1000) {
        abort();
    }
    if (strcmp(items[0].device_id, own.device_id) || strcmp(items[0].name, "own")) abort();
    for (size_t i = 1; i < n; i++) item_checked(&items[i]);

    json_t *back = gb_lower_dir_json(items, n);
    if (back) {
        char *text = json_dumps(back, JSON_COMPACT);
        json_decref(back);
        if (text) {
            gb_catalog_item_t *again = NULL;
            size_t m = 0, cap2 = 0;
            if (gb_lower_dir_parse(text, strlen(text), 2000, &again, &m, &cap2) != (int)n) abort();
            gb_lower_items_free(again, m);
            free(text);
        }
    }

    size_t before = n;
    n = gb_lower_items_dedupe(items, n);
    if (n > before || n < 1 || strcmp(items[0].name, "own")) abort();
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_catalog_response(&body, GB_CHARSET_GB2312, 1, "34020000002000000002", items, n, 0,
                                          n < 20 ? n : 20) == 0 &&
        body.len == 0)
        abort();
    sbuf_free(&body);
    gb_lower_items_free(items, n);
    return 0;
}
