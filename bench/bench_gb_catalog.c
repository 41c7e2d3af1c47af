/* bench_gb_catalog.c — how long the upper role takes to assemble a big
 * catalog: N channels (default 10 000) arriving as Response MESSAGEs of K
 * items each (default 4, what devices send to stay under the UDP MTU), GB2312
 * bodies with Chinese names, fed as SIP text through the real path
 * (sip_parse -> transaction layer -> gb_upper_on_request -> MANSCDP parse
 * with iconv + libxml2 -> assembly with de-duplication -> the final replace
 * of the device's channel set and the tree JSON).
 *
 *   bench_gb_catalog [--channels N] [--per-message K] [--runs R]
 *
 * Prints the median over R runs of: building nothing (bodies are made before
 * timing), the feed of all MESSAGEs until the catalog is complete, and the
 * tree JSON. The store is off (its writes happen on its own thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "../tests/unit/gb_upper_harness.h"

#define DEV "34020000001320000001"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct done {
    struct gb_waiter wt;
    int status;
};

static void on_done(struct gb_waiter *wt, int status, json_t *body)
{
    ((struct done *)wt)->status = status;
    json_decref(body);
}

int main(int argc, char **argv)
{
    size_t n = 10000, per = 4;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--channels")) n = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--per-message")) per = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
    }
    if (!n || !per || runs < 1 || runs > 101 || n > GB_MAX_CHANNELS) {
        fprintf(stderr, "usage: %s [--channels N<=%d] [--per-message K] [--runs R<=101]\n", argv[0], GB_MAX_CHANNELS);
        return 2;
    }
    log_set_level(LOG_ERROR);

    /* The items: 1 business group, 10 virtual organisations, cameras. */
    gb_catalog_item_t *items = calloc(n, sizeof(*items));
    char (*ids)[32] = calloc(n, 32);
    char (*parents)[32] = calloc(n, 32);
    char (*names)[48] = calloc(n, 48);
    for (size_t i = 0; i < n; i++) {
        gb_catalog_item_init(&items[i]);
        if (i == 0) snprintf(ids[i], 32, "34020000002150000001"), snprintf(parents[i], 32, "%s", DEV);
        else if (i <= 10) snprintf(ids[i], 32, "340200000021600%05zu", i), snprintf(parents[i], 32, "34020000002150000001");
        else snprintf(ids[i], 32, "340200000013100%05zu", i), snprintf(parents[i], 32, "340200000021600%05zu", 1 + i % 10);
        snprintf(names[i], 48, "摄像机%zu号", i);
        items[i].device_id = ids[i];
        items[i].parent_id = parents[i];
        items[i].name = names[i];
        items[i].manufacturer = "cascade";
        items[i].model = "IPC";
        items[i].civil_code = "340200";
        items[i].address = "合肥";
        items[i].status = GB_ONOFF_ON;
        items[i].parental = 0;
        items[i].secrecy = 0;
    }
    double *feed = calloc((size_t)runs, sizeof(double)), *tree_t = calloc((size_t)runs, sizeof(double));
    size_t msgs = (n + per - 1) / per, bytes = 0;
    for (int r = 0; r < runs; r++) {
        static struct gbh h;
        gbh_init(&h);
        if (gbh_start(&h) != 0 || gb_device_admin_set(h.g, DEV, "pw", NULL, 0) != 0 ||
            gbh_register(&h, DEV, "pw", 3600, SIP_TRANSPORT_UDP, 0, 5080) != 200) {
            fprintf(stderr, "setup failed\n");
            return 1;
        }
        struct done d = {.wt.done = on_done};
        gb_query_start(h.g, gb_device_find(h.g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &d.wt);
        const char *p = strstr(gbh_last(&h), "<SN>");
        uint32_t sn = p ? (uint32_t)strtoul(p + 4, NULL, 10) : 0;
        /* Every MESSAGE printed before the clock starts. */
        char **texts = calloc(msgs, sizeof(char *));
        size_t *lens = calloc(msgs, sizeof(size_t));
        for (size_t m = 0; m < msgs; m++) {
            sbuf_t body, b;
            sbuf_init(&body);
            sbuf_init(&b);
            size_t from = m * per, k = from + per > n ? n - from : per;
            gb_manscdp_build_catalog_response(&body, GB_CHARSET_GB2312, sn, DEV, items, n, from, k);
            sbuf_printf(&b,
                        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKcat%zu;rport\r\n"
                        "From: <sip:%s@3402000000>;tag=c%zu\r\nTo: <sip:34020000002000000001@3402000000>\r\n"
                        "Call-ID: cat-%zu\r\nCSeq: 20 MESSAGE\r\nMax-Forwards: 70\r\n"
                        "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n",
                        m, DEV, m, m, body.len);
            sbuf_append(&b, body.data, body.len);
            lens[m] = b.len;
            bytes += r == 0 ? b.len : 0;
            texts[m] = sbuf_take(&b);
            sbuf_free(&body);
        }
        double t0 = now_s();
        for (size_t m = 0; m < msgs; m++) gbh_feed(&h, texts[m], lens[m], SIP_TRANSPORT_UDP, 0, 5080);
        double t1 = now_s();
        json_t *tree = gb_channels_tree_json(gb_device_find(h.g, DEV));
        double t2 = now_s();
        if (d.status != 200 || gb_device_find(h.g, DEV)->channel_count != n) {
            fprintf(stderr, "catalog not complete (status %d, %zu channels)\n", d.status,
                    gb_device_find(h.g, DEV)->channel_count);
            return 1;
        }
        json_decref(tree);
        feed[r] = t1 - t0;
        tree_t[r] = t2 - t1;
        for (size_t m = 0; m < msgs; m++) free(texts[m]);
        free(texts);
        free(lens);
        gbh_free(&h);
    }
    qsort(feed, (size_t)runs, sizeof(double), cmp_d);
    qsort(tree_t, (size_t)runs, sizeof(double), cmp_d);
    printf("catalog of %zu channels in %zu MESSAGEs of %zu items (%.1f MiB of SIP): assembled in %.1f ms "
           "(median of %d; min %.1f, max %.1f), %.1f us per MESSAGE; tree JSON %.1f ms\n",
           n, msgs, per, (double)bytes / (1 << 20), feed[runs / 2] * 1e3, runs, feed[0] * 1e3,
           feed[runs - 1] * 1e3, feed[runs / 2] * 1e6 / (double)msgs, tree_t[runs / 2] * 1e3);
    free(items), free(ids), free(parents), free(names), free(feed), free(tree_t);
    return 0;
}
