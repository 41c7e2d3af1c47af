/* test_lower_dir.c — a middle node's directory across cascade nodes
 * (src/gb/lower/lower_nodes.c, lower_dir.h; issue 16); the fan-out itself
 * runs for real in tests/peers/test_gb_relay_nodes.sh:
 *  - what a node answers (gb_lower_dir_json) read back by the asking node
 *    (gb_lower_dir_parse): every field, absent ones, defaults;
 *  - answers a node is left out for: not JSON, not {"channels":[…]}, an
 *    entry not an object, bad ids, fields of the wrong type, too long, with
 *    a control byte or a NUL, parental / status out of range; over the cap;
 *    each leaves what was merged before untouched;
 *  - the merge: duplicates by id dropped, the first kept, order kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gb/lower/lower_dir.h"
#include "gb/lower/lower_int.h"

#define DEV "34020000001320000001"
#define CH1 "34020000001310000001"
#define CH2 "34020000001310000002"

static gb_catalog_item_t item(const char *id, const char *name, const char *parent, int parental, gb_onoff_t st)
{
    gb_catalog_item_t it;
    gb_catalog_item_init(&it);
    it.device_id = (char *)id;
    it.name = (char *)name;
    it.parent_id = (char *)parent;
    it.parental = parental;
    it.status = st;
    return it;
}

static int parse_s(const char *s, size_t max, gb_catalog_item_t **items, size_t *n, size_t *cap)
{
    return gb_lower_dir_parse(s, strlen(s), max, items, n, cap);
}

static void test_roundtrip(void **state)
{
    (void)state;
    gb_catalog_item_t src[2];
    src[0] = item(DEV, "cam \"one\" 模拟", "34020000002000000002", 1, GB_ONOFF_ON);
    src[0].manufacturer = (char *)"cascade-gbsim";
    src[0].model = (char *)"SIM-IPC";
    src[0].owner = (char *)"Owner";
    src[0].civil_code = (char *)"340200";
    src[0].address = (char *)"Address";
    src[1] = item(CH1, NULL, DEV, 0, GB_ONOFF_OFF);
    src[1].business_group_id = (char *)"34020000002150000001";
    json_t *o = gb_lower_dir_json(src, 2);
    assert_non_null(o);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(text);

    gb_catalog_item_t *items = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(parse_s(text, GB_DIR_MAX_ITEMS, &items, &n, &cap), 2);
    free(text);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].device_id, DEV);
    assert_string_equal(items[0].name, "cam \"one\" 模拟");
    assert_string_equal(items[0].manufacturer, "cascade-gbsim");
    assert_string_equal(items[0].model, "SIM-IPC");
    assert_string_equal(items[0].civil_code, "340200");
    assert_string_equal(items[0].parent_id, "34020000002000000002");
    assert_int_equal(items[0].parental, 1);
    assert_int_equal(items[0].status, GB_ONOFF_ON);
    assert_string_equal(items[1].device_id, CH1);
    assert_null(items[1].name); /* absent stays absent */
    assert_null(items[1].manufacturer);
    assert_string_equal(items[1].business_group_id, "34020000002150000001");
    assert_int_equal(items[1].parental, 0);
    assert_int_equal(items[1].status, GB_ONOFF_OFF);

    /* Defaults: no parental (0), no status (ON); unknown members ignored;
     * null fields are absent. */
    assert_int_equal(parse_s("{\"channels\":[{\"id\":\"" CH2 "\",\"name\":null,\"x\":[1,2]}],\"node\":1}",
                             GB_DIR_MAX_ITEMS, &items, &n, &cap),
                     1);
    assert_int_equal(n, 3);
    assert_null(items[2].name);
    assert_int_equal(items[2].parental, 0);
    assert_int_equal(items[2].status, GB_ONOFF_ON);
    /* An empty directory. */
    assert_int_equal(parse_s("{\"channels\":[]}", GB_DIR_MAX_ITEMS, &items, &n, &cap), 0);
    assert_int_equal(n, 3);
    gb_lower_items_free(items, n);

    o = gb_lower_dir_json(NULL, 0);
    assert_non_null(o);
    assert_int_equal(json_array_size(json_object_get(o, "channels")), 0);
    json_decref(o);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"channels\":{}}",
        "{\"channels\":[1]}",
        "{\"channels\":[{}]}",
        "{\"channels\":[{\"id\":\"3402000000131000000\"}]}",             /* 19 digits */
        "{\"channels\":[{\"id\":\"3402000000131000000a\"}]}",
        "{\"channels\":[{\"id\":34020000001310000001}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"name\":5}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"name\":\"a\\nb\"}]}",         /* control byte */
        "{\"channels\":[{\"id\":\"" CH1 "\",\"name\":\"a\\u0000b\"}]}",     /* NUL inside */
        "{\"channels\":[{\"id\":\"" CH1 "\",\"address\":\"a\\u007fb\"}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"parental\":2}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"parental\":\"1\"}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"status\":\"MAYBE\"}]}",
        "{\"channels\":[{\"id\":\"" CH1 "\",\"parent_id\":[]}]}",
        /* the second entry spoils the first: nothing of the node is kept */
        "{\"channels\":[{\"id\":\"" CH1 "\"},{\"id\":\"x\"}]}",
    };
    gb_catalog_item_t *items = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(parse_s("{\"channels\":[{\"id\":\"" DEV "\",\"name\":\"kept\"}]}", 10, &items, &n, &cap), 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_s(bad[i], 10, &items, &n, &cap);
        if (rc != -EINVAL) fail_msg("%s: %d", bad[i], rc);
        assert_int_equal(n, 1);
    }
    assert_string_equal(items[0].name, "kept");
    assert_int_equal(gb_lower_dir_parse(NULL, 0, 10, &items, &n, &cap), -EINVAL);

    /* A field at the cap passes, one byte over does not. */
    char *s = malloc(GB_DIR_FIELD_MAX + 128);
    assert_non_null(s);
    int k = snprintf(s, GB_DIR_FIELD_MAX + 128, "{\"channels\":[{\"id\":\"" CH1 "\",\"name\":\"");
    memset(s + k, 'x', GB_DIR_FIELD_MAX);
    strcpy(s + k + GB_DIR_FIELD_MAX, "\"}]}");
    assert_int_equal(parse_s(s, 10, &items, &n, &cap), 1);
    assert_int_equal(strlen(items[1].name), GB_DIR_FIELD_MAX);
    memset(s + k, 'x', GB_DIR_FIELD_MAX + 1);
    strcpy(s + k + GB_DIR_FIELD_MAX + 1, "\"}]}");
    assert_int_equal(parse_s(s, 10, &items, &n, &cap), -EINVAL);
    assert_int_equal(n, 2);
    free(s);

    /* The cap on entries: max_items exactly, then one more. */
    const char *three = "{\"channels\":[{\"id\":\"" CH1 "\"},{\"id\":\"" CH2 "\"},{\"id\":\"" DEV "\"}]}";
    assert_int_equal(parse_s(three, 2, &items, &n, &cap), -E2BIG);
    assert_int_equal(n, 2);
    assert_int_equal(parse_s(three, 3, &items, &n, &cap), 3);
    assert_int_equal(n, 5);
    assert_int_equal(parse_s(three, 0, &items, &n, &cap), -E2BIG);
    gb_lower_items_free(items, n);
}

static gb_catalog_item_t *owned(const char *const *ids, size_t n)
{
    gb_catalog_item_t *items = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof(name), "n%zu", i);
        gb_catalog_item_t it = item(ids[i], name, NULL, 0, GB_ONOFF_ON);
        assert_int_equal(gb_lower_items_push(&items, &count, &cap, &it), 0);
    }
    return items;
}

static void test_dedupe(void **state)
{
    (void)state;
    const char *ids[] = {CH2, DEV, CH2, CH1, DEV, CH2, NULL, NULL};
    gb_catalog_item_t *items = owned(ids, 8);
    size_t n = gb_lower_items_dedupe(items, 8);
    assert_int_equal(n, 5);
    assert_string_equal(items[0].device_id, CH2);
    assert_string_equal(items[0].name, "n0"); /* the first stays */
    assert_string_equal(items[1].device_id, DEV);
    assert_string_equal(items[1].name, "n1");
    assert_string_equal(items[2].device_id, CH1);
    assert_string_equal(items[2].name, "n3");
    assert_null(items[3].device_id); /* no id: nothing to compare, kept */
    assert_null(items[4].device_id);
    gb_lower_items_free(items, n);

    const char *one[] = {CH1};
    items = owned(one, 1);
    assert_int_equal(gb_lower_items_dedupe(items, 1), 1);
    gb_lower_items_free(items, 1);
    assert_int_equal(gb_lower_items_dedupe(NULL, 0), 0);

    const char *distinct[] = {CH1, CH2, DEV};
    items = owned(distinct, 3);
    assert_int_equal(gb_lower_items_dedupe(items, 3), 3);
    assert_string_equal(items[2].device_id, DEV);
    gb_lower_items_free(items, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_dedupe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
