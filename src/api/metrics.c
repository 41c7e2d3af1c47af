/* metrics.c — the metric registry and GET /metrics in the Prometheus text
 * exposition format 0.0.4: per family one "# HELP", one "# TYPE", then its
 * samples. Values are read at scrape time through the registered getters, so
 * modules keep plain counters in their own structs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_internal.h"
#include "base/histogram.h"
#include "base/log.h"
#include "base/sbuf.h"

struct api_metric_writer {
    sbuf_t *out;
    const char *name;
};

static int valid_name(const char *n, size_t len)
{
    if (!len) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static struct api_metric_family_s *family_for(struct api_server *srv, const char *name, size_t nlen,
                                              const char *help, enum api_metric_type type)
{
    for (int i = 0; i < srv->nfamilies; i++) {
        struct api_metric_family_s *f = &srv->families[i];
        if (strlen(f->name) == nlen && !strncmp(f->name, name, nlen)) {
            if (f->type != type) {
                log_error("api: metric %s registered with two types", f->name);
                return NULL;
            }
            return f;
        }
    }
    if (srv->nfamilies == srv->families_cap) {
        int cap = srv->families_cap ? srv->families_cap * 2 : 16;
        struct api_metric_family_s *n = realloc(srv->families, (size_t)cap * sizeof(*n));
        if (!n) return NULL;
        srv->families = n;
        srv->families_cap = cap;
    }
    struct api_metric_family_s *f = &srv->families[srv->nfamilies];
    memset(f, 0, sizeof(*f));
    f->name = strndup(name, nlen);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        return NULL;
    }
    srv->nfamilies++;
    return f;
}

static int add_entry(struct api_server *srv, const char *name, const char *help, enum api_metric_type type,
                     api_metric_fn fn, api_metric_collect_fn collect, void *arg)
{
    if (!name) return -1;
    const char *brace = strchr(name, '{');
    size_t nlen = brace ? (size_t)(brace - name) : strlen(name);
    if (!valid_name(name, nlen) || (brace && name[strlen(name) - 1] != '}')) {
        log_error("api: bad metric name '%s'", name);
        return -1;
    }
    struct api_metric_family_s *f = family_for(srv, name, nlen, help, type);
    if (!f) return -1;
    if (f->nentries == f->cap) {
        int cap = f->cap ? f->cap * 2 : 4;
        struct api_metric_entry *n = realloc(f->entries, (size_t)cap * sizeof(*n));
        if (!n) return -1;
        f->entries = n;
        f->cap = cap;
    }
    char *labels = NULL;
    if (brace) {
        size_t llen = strlen(brace) - 2;          /* between the braces */
        if (llen && !(labels = strndup(brace + 1, llen))) return -1;
    }
    f->entries[f->nentries++] = (struct api_metric_entry){labels, fn, collect, arg};
    return 0;
}

int api_metric_counter(struct api_server *srv, const char *name, const char *help, api_metric_fn fn, void *arg)
{
    return fn ? add_entry(srv, name, help, API_METRIC_COUNTER, fn, NULL, arg) : -1;
}

int api_metric_gauge(struct api_server *srv, const char *name, const char *help, api_metric_fn fn, void *arg)
{
    return fn ? add_entry(srv, name, help, API_METRIC_GAUGE, fn, NULL, arg) : -1;
}

int api_metric_family(struct api_server *srv, const char *name, const char *help, enum api_metric_type type,
                      api_metric_collect_fn collect, void *arg)
{
    if (!collect || strchr(name, '{')) return -1;
    return add_entry(srv, name, help, type, NULL, collect, arg);
}

static void put_value(sbuf_t *out, double v)
{
    if (isnan(v)) sbuf_append_cstr(out, "NaN");
    else if (isinf(v)) sbuf_append_cstr(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) sbuf_printf(out, "%.0f", v);
    else sbuf_printf(out, "%.17g", v);
}

static void put_sample(sbuf_t *out, const char *name, const char *labels, double v)
{
    sbuf_append_cstr(out, name);
    if (labels && *labels) sbuf_printf(out, "{%s}", labels);
    sbuf_append_char(out, ' ');
    put_value(out, v);
    sbuf_append_char(out, '\n');
}

/* name="value" with the value escaped per the text format. */
static void put_label(sbuf_t *l, const char *label_name, const char *label_value)
{
    sbuf_printf(l, "%s=\"", label_name);
    for (const char *c = label_value ? label_value : ""; *c; c++) {
        if (*c == '\\') sbuf_append_cstr(l, "\\\\");
        else if (*c == '"') sbuf_append_cstr(l, "\\\"");
        else if (*c == '\n') sbuf_append_cstr(l, "\\n");
        else sbuf_append_char(l, *c);
    }
    sbuf_append_char(l, '"');
}

void api_metric_sample(struct api_metric_writer *w, const char *label_name, const char *label_value, double value)
{
    if (!label_name) {
        put_sample(w->out, w->name, NULL, value);
        return;
    }
    if (!valid_name(label_name, strlen(label_name))) return;
    sbuf_t l;
    sbuf_init(&l);
    put_label(&l, label_name, label_value);
    if (!l.failed) put_sample(w->out, w->name, l.data, value);
    sbuf_free(&l);
}

/* Microseconds as decimal seconds, exactly: 50 -> "0.00005", 2500000 -> "2.5". */
static void put_seconds(sbuf_t *out, uint64_t us)
{
    char frac[8];
    snprintf(frac, sizeof(frac), "%06u", (unsigned)(us % 1000000u));
    int n = 6;
    while (n > 0 && frac[n - 1] == '0') n--;
    sbuf_printf(out, "%llu", (unsigned long long)(us / 1000000u));
    if (n) sbuf_printf(out, ".%.*s", n, frac);
}

void api_metric_histogram_sample(struct api_metric_writer *w, const char *label_name, const char *label_value,
                                 const struct histogram *h)
{
    if (label_name && !valid_name(label_name, strlen(label_name))) return;
    sbuf_t *out = w->out;
    sbuf_t l;
    sbuf_init(&l);
    if (label_name) {
        put_label(&l, label_name, label_value);
        sbuf_append_char(&l, ',');
    }
    if (l.failed) {
        sbuf_free(&l);
        return;
    }
    const char *lp = l.data ? l.data : "";
    uint64_t cum = 0;
    for (unsigned i = 0; i <= h->nbounds; i++) {
        cum += h->buckets[i];
        sbuf_printf(out, "%s_bucket{%sle=\"", w->name, lp);
        if (i < h->nbounds) put_seconds(out, h->bounds_us[i]);
        else sbuf_append_cstr(out, "+Inf");
        sbuf_printf(out, "\"} %llu\n", (unsigned long long)cum);
    }
    /* The count is the +Inf bucket, so the two always agree (see histogram.h). */
    sbuf_printf(out, "%s_sum", w->name);
    if (label_name) {
        l.len--; /* the trailing comma */
        sbuf_printf(out, "{%.*s}", (int)l.len, l.data);
    }
    sbuf_append_char(out, ' ');
    put_seconds(out, h->sum_us);
    sbuf_printf(out, "\n%s_count", w->name);
    if (label_name) sbuf_printf(out, "{%.*s}", (int)l.len, l.data);
    sbuf_printf(out, " %llu\n", (unsigned long long)cum);
    sbuf_free(&l);
}

static void collect_histogram(struct api_metric_writer *w, void *arg)
{
    struct histogram snap;
    histogram_snapshot(arg, &snap);
    api_metric_histogram_sample(w, NULL, NULL, &snap);
}

int api_metric_histogram(struct api_server *srv, const char *name, const char *help, const struct histogram *h)
{
    return h ? api_metric_family(srv, name, help, API_METRIC_HISTOGRAM, collect_histogram, (void *)h) : -1;
}

static void metrics_route(struct api_request *req, void *user)
{
    struct api_server *srv = user;
    sbuf_t out;
    sbuf_init(&out);
    for (int i = 0; i < srv->nfamilies; i++) {
        const struct api_metric_family_s *f = &srv->families[i];
        sbuf_printf(&out, "# HELP %s ", f->name);
        for (const char *c = f->help; *c; c++) {
            if (*c == '\\') sbuf_append_cstr(&out, "\\\\");
            else if (*c == '\n') sbuf_append_cstr(&out, "\\n");
            else sbuf_append_char(&out, *c);
        }
        static const char *const types[] = {"counter", "gauge", "histogram"};
        sbuf_printf(&out, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (int k = 0; k < f->nentries; k++) {
            const struct api_metric_entry *e = &f->entries[k];
            if (e->fn) {
                put_sample(&out, f->name, e->labels, e->fn(e->arg));
            } else {
                struct api_metric_writer w = {&out, f->name};
                e->collect(&w, e->arg);
            }
        }
    }
    api_metrics_from_stats(srv, &out);
    if (out.failed) {
        sbuf_free(&out);
        api_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    api_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "", out.len);
    sbuf_free(&out);
}

void api_metrics_routes(struct api_server *srv) { api_route(srv, "GET", "/metrics", metrics_route, srv); }

void api_metrics_free(struct api_server *srv)
{
    for (int i = 0; i < srv->nfamilies; i++) {
        struct api_metric_family_s *f = &srv->families[i];
        for (int k = 0; k < f->nentries; k++) free(f->entries[k].labels);
        free(f->entries);
        free(f->name);
        free(f->help);
    }
    free(srv->families);
    srv->families = NULL;
    srv->nfamilies = 0;
}
