/* console.c — serves the embedded web console (see console.h). The files
 * are compiled in, so the daemon needs nothing on disk to show it; the
 * security headers every API answer carries (CSP, no framing, nosniff) are
 * added by http.c, not here. */
#include <stdio.h>
#include <string.h>

#include "api/console.h"

#include "api/http.h"
#include "api/http_internal.h"

const struct console_file *api_console_find(const char *path)
{
    if (!path) return NULL;
    for (size_t i = 0; i < console_nfiles; i++)
        if (!strcmp(console_files[i].path, path)) return &console_files[i];
    return NULL;
}

/* 1 when an If-None-Match list names etag (or is "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm) return 0;
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!strncmp(p, "W/", 2)) p += 2;
        if (*p == '*') return 1;
        if (!strncmp(p, etag, el) && (p[el] == '\0' || p[el] == ',' || p[el] == ' ')) return 1;
        while (*p && *p != ',') p++;
    }
    return 0;
}

static void serve(struct api_request *req, const char *path)
{
    const struct console_file *f = api_console_find(path);
    if (!f) {
        api_reply_error(req, 404, "not-found", "no such file");
        return;
    }
    /* no-cache: the browser keeps the file but asks each time, so a new
     * build is seen at once and an unchanged file costs a 304 */
    api_add_header(req, "Cache-Control", "no-cache");
    api_add_header(req, "ETag", f->etag);
    if (etag_matches(api_header(req, "if-none-match"), f->etag)) {
        api_reply_bytes(req, 304, f->content_type, "", 0);   /* the type of what the cached copy is */
        return;
    }
    api_reply_bytes(req, 200, f->content_type, (const char *)f->data, f->len);
}

static void index_route(struct api_request *req, void *user)
{
    (void)user;
    serve(req, "index.html");
}

static void file_route(struct api_request *req, void *user)
{
    (void)user;
    serve(req, api_param(req, "file"));
}

/* The third-party files the console vendors (cmake/embed_console.cmake
 * embeds them as vendor/NAME): /console/vendor/NAME. */
static void vendor_route(struct api_request *req, void *user)
{
    (void)user;
    const char *file = api_param(req, "file");
    char path[128];
    if (!file || strlen(file) > sizeof(path) - sizeof("vendor/")) {
        api_reply_error(req, 404, "not-found", "no such file");
        return;
    }
    snprintf(path, sizeof(path), "vendor/%s", file);
    serve(req, path);
}

void api_console_routes(struct api_server *srv)
{
    api_route_ex(srv, "GET", "/", index_route, NULL, API_ROUTE_PUBLIC);
    api_route_ex(srv, "GET", "/index.html", index_route, NULL, API_ROUTE_PUBLIC);
    api_route_ex(srv, "GET", "/console/{file}", file_route, NULL, API_ROUTE_PUBLIC);
    api_route_ex(srv, "GET", "/console/vendor/{file}", vendor_route, NULL, API_ROUTE_PUBLIC);
}
