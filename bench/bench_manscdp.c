/* bench_manscdp.c — MANSCDP codec throughput on one core.
 *
 * Times four operations the GB roles do all day and prints operations/s, the
 * median of several runs:
 *   parse keepalive      a GB2312-declared Keepalive (pure ASCII: no iconv)
 *   parse catalog20      a GB2312 Catalog response with 20 Chinese-named items
 *   build keepalive      Keepalive notify, GB2312
 *   build catalog20      the same 20 items, GB2312 (UTF-8 -> GB2312 via iconv)
 *
 *   bench_manscdp [-n iterations] [-r runs] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "gb/codec/manscdp.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static gb_catalog_item_t items[20];
static char ids[20][24];
static sbuf_t catalog_body;

static const char keepalive[] = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n"
                                "<CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n"
                                "<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n";

static int op_parse_keepalive(void)
{
    gb_manscdp_t m;
    int rc = gb_manscdp_parse(keepalive, sizeof(keepalive) - 1, NULL, &m);
    gb_manscdp_free(&m);
    return rc;
}

static int op_parse_catalog(void)
{
    gb_manscdp_t m;
    int rc = gb_manscdp_parse(catalog_body.data, catalog_body.len, NULL, &m);
    if (rc == 0 && m.item_count != 20) rc = -1;
    gb_manscdp_free(&m);
    return rc;
}

static int op_build_keepalive(void)
{
    sbuf_t b;
    sbuf_init(&b);
    int rc = gb_manscdp_build_keepalive(&b, GB_CHARSET_GB2312, 43, "34020000001320000001", NULL);
    sbuf_free(&b);
    return rc;
}

static int op_build_catalog(void)
{
    sbuf_t b;
    sbuf_init(&b);
    int rc = gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 7, "34020000002000000001", items, 20, 0, 20);
    sbuf_free(&b);
    return rc;
}

int main(int argc, char **argv)
{
    long iterations = 20000;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) iterations = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) runs = atoi(argv[i + 1]);
    }
    if (iterations < 1 || runs < 1 || runs > 100) return 2;
    xmlInitParser();
    for (int i = 0; i < 20; i++) {
        gb_catalog_item_init(&items[i]);
        snprintf(ids[i], sizeof(ids[i]), "340200000013100000%02d", i);
        items[i].device_id = ids[i];
        items[i].name = i % 2 ? "一号摄像机" : "研发楼大门口";
        items[i].manufacturer = "海康威视";
        items[i].model = "DS-2CD3T46";
        items[i].owner = "Owner";
        items[i].civil_code = "3402000000";
        items[i].address = "研发楼";
        items[i].parental = 0;
        items[i].parent_id = "34020000002000000001";
        items[i].register_way = 1;
        items[i].secrecy = 0;
        items[i].status = GB_ONOFF_ON;
    }
    sbuf_init(&catalog_body);
    if (gb_manscdp_build_catalog_response(&catalog_body, GB_CHARSET_GB2312, 7, "34020000002000000001", items, 20, 0,
                                          20) != 0)
        return 1;
    static const struct {
        const char *name;
        int (*fn)(void);
    } ops[] = {
        {"parse keepalive", op_parse_keepalive},
        {"parse catalog20", op_parse_catalog},
        {"build keepalive", op_build_keepalive},
        {"build catalog20", op_build_catalog},
    };
    printf("catalog20 body: %zu bytes GB2312\n", catalog_body.len);
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        double rates[100];
        long n = k == 1 || k == 3 ? iterations / 10 : iterations;
        for (int r = 0; r < runs; r++) {
            double t0 = now();
            for (long i = 0; i < n; i++)
                if (ops[k].fn() != 0) {
                    fprintf(stderr, "%s failed\n", ops[k].name);
                    return 1;
                }
            rates[r] = (double)n / (now() - t0);
        }
        qsort(rates, (size_t)runs, sizeof(double), cmp_double);
        printf("%-16s %10.0f ops/s (median of %d runs of %ld)\n", ops[k].name, rates[runs / 2], runs, n);
    }
    sbuf_free(&catalog_body);
    xmlCleanupParser();
    return 0;
}
