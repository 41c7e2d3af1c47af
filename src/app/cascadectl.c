/* cascadectl.c — the command-line client of the cascade HTTP API.
 *
 *   cascadectl [-c FILE] [--url URL] [--token TOKEN] [--json] <noun> <verb> [args]
 *
 * Every command is one (or, for `gb channel import`, a few) requests to
 * /api/v1/... (see docs/api.md); `events` follows the WebSocket stream. The
 * API address and token come from --url/--token, else CASCADE_URL and
 * CASCADE_TOKEN, else the [api] section of the config file (-c FILE, or
 * ./cascade.ini when present), else http://127.0.0.1:8080.
 *
 * Output: readable tables and "key: value" lines, or the API's JSON as is
 * with --json. Exit status: 0 done, 1 the API refused or could not be
 * reached (its {error, detail} is printed), 2 usage error. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "events/httpc.h"
#include "api/wsclient.h"
#include "app/config.h"
#include "base/log.h"
#include "base/sbuf.h"

#define EXIT_API 1
#define EXIT_USAGE 2

struct ctl {
    struct api_url url;
    char url_text[600];
    char token[256];
    char prefix[1024];         /* the URL's path without a trailing '/' */
    bool json;
    int timeout_ms;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char usage_text[] =
    "usage: cascadectl [-c FILE] [--url URL] [--token TOKEN] [--json] [--timeout SEC] <noun> <verb> [args]\n"
    "\n"
    "  user list                                  registered SIP users\n"
    "  user add NAME --password P                 (P of '-' reads it from stdin)\n"
    "  user del NAME\n"
    "  reg list [--user USER]                     current registrations\n"
    "  reg kick USER                              remove USER's bindings\n"
    "  events [--since SEQ]                       follow the event stream (one line per event)\n"
    "  stats                                      counters\n"
    "  reload                                     the daemon reads its config file again (as on SIGHUP):\n"
    "                                             what was applied, what needs a restart\n"
    "  gb device list\n"
    "  gb device show ID\n"
    "  gb device add ID [--password P] [--charset GB2312|UTF-8] [--subscribe catalog,alarm,position|none|default]\n"
    "  gb device del ID\n"
    "  gb device channels ID                      the stored channel tree\n"
    "  gb device catalog ID                       query the device's catalog now\n"
    "  gb device info ID | status ID              DeviceInfo / DeviceStatus query\n"
    "  gb device records ID --channel C --start T --end T\n"
    "  gb device ptz ID CHANNEL CMD [--speed N]   CMD: left right up down zoomin zoomout stop ...\n"
    "  gb device play ID CHANNEL [--transport udp|tcp]\n"
    "  gb live ID CHANNEL                         start/share the channel's live stream, print its URLs\n"
    "  gb stream list | show SID | stop SID\n"
    "  gb stream pause SID | resume SID | speed SID X | seek SID SECONDS   (playbacks)\n"
    "  gb channel list\n"
    "  gb channel add ID --name NAME [--parent ID] [--media FILE] [--status ON|OFF]\n"
    "  gb channel del ID\n"
    "  gb channel import FILE                     JSON ([...] or {\"channels\":[...]}) or CSV\n"
    "                                             lines: id,name[,parent_id[,media]]\n"
    "  gb upstream list\n"
    "  media streams                              streams being watched: source, viewers, codec, size, fps\n"
    "  room list                                  SFU rooms\n"
    "  room show NAME                             its participants, streams and media counters\n"
    "  room kick NAME ID                          remove a participant (reason kicked)\n"
    "  room close NAME                            every participant leaves, the room closes\n"
    "  room token NAME [--name N] [--ttl S]       a join token for the room WebSocket (default 3600 s)\n"
    "\n"
    "Options may appear anywhere. Defaults: CASCADE_URL, CASCADE_TOKEN, then the [api]\n"
    "section of -c FILE (or ./cascade.ini), then http://127.0.0.1:8080.\n"
    "Exit status: 0 ok, 1 API error or unreachable, 2 usage error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cascadectl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see cascadectl --help)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* ---- argument helpers ----------------------------------------------------- */

struct args {
    int argc;
    char **argv;
};

/* Removes "--name VALUE" (or "--name=VALUE") from a; returns the value, NULL
 * when absent, or "" with *missing set when the value is missing. */
static const char *take_opt(struct args *a, const char *name, bool *missing)
{
    size_t nl = strlen(name);
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (!strcmp(s, "--")) break;
        const char *val = NULL;
        int used = 0;
        if (!strcmp(s, name)) {
            if (i + 1 >= a->argc) {
                if (missing) *missing = true;
                used = 1;
                val = "";
            } else {
                val = a->argv[i + 1];
                used = 2;
            }
        } else if (!strncmp(s, name, nl) && s[nl] == '=') {
            val = s + nl + 1;
            used = 1;
        }
        if (used) {
            memmove(&a->argv[i], &a->argv[i + used], (size_t)(a->argc - i - used) * sizeof(char *));
            a->argc -= used;
            return val;
        }
    }
    return NULL;
}

static bool take_flag(struct args *a, const char *name)
{
    for (int i = 0; i < a->argc; i++) {
        if (!strcmp(a->argv[i], "--")) break;
        if (!strcmp(a->argv[i], name)) {
            memmove(&a->argv[i], &a->argv[i + 1], (size_t)(a->argc - i - 1) * sizeof(char *));
            a->argc--;
            return true;
        }
    }
    return false;
}

/* After the verb's options were taken: the positional arguments, exactly n. */
static int positional(struct args *a, int n, const char *what)
{
    for (int i = 0; i < a->argc; i++)
        if (a->argv[i][0] == '-' && a->argv[i][1] && strcmp(a->argv[i], "--"))
            return usage_error("unknown option '%s' for %s", a->argv[i], what);
    int count = a->argc;
    for (int i = 0; i < a->argc; i++)
        if (!strcmp(a->argv[i], "--")) {
            memmove(&a->argv[i], &a->argv[i + 1], (size_t)(a->argc - i - 1) * sizeof(char *));
            a->argc--;
            count--;
            break;
        }
    if (count != n) return usage_error("%s takes %d argument%s", what, n, n == 1 ? "" : "s");
    return 0;
}

/* ---- HTTP ----------------------------------------------------------------- */

static void append_escaped(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~')
            sbuf_append_char(b, (char)*p);
        else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sbuf_append(b, e, 3);
        }
    }
}

/* Builds "/api/v1" + fmt where each %s is percent-encoded (a path segment or
 * query value) — the only conversion used. */
static char *api_path(const struct ctl *c, const char *fmt, ...)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, c->prefix);
    sbuf_append_cstr(&b, "/api/v1");
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            append_escaped(&b, va_arg(ap, const char *));
            p++;
        } else {
            sbuf_append_char(&b, *p);
        }
    }
    va_end(ap);
    return sbuf_take(&b);
}

/* Sends the request; on a 2xx answer returns 0 with *out set to the parsed
 * JSON (NULL when the body is empty). Otherwise prints the failure and
 * returns EXIT_API. body (may be NULL) is not consumed. */
static int call(const struct ctl *c, const char *method, char *path, json_t *body, json_t **out)
{
    if (out) *out = NULL;
    char headers[400] = "";
    if (c->token[0]) snprintf(headers, sizeof(headers), "Authorization: Bearer %s\r\n", c->token);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char err[256];
    struct api_httpc_response r;
    int rc = api_httpc_request(&c->url, method, path, headers, text ? "application/json" : NULL, text,
                               text ? strlen(text) : 0, c->timeout_ms, -1, &r, err, sizeof(err));
    free(text);
    if (rc) {
        fprintf(stderr, "cascadectl: %s %s: cannot reach %s: %s\n", method, path, c->url_text, err);
        free(path);
        return EXIT_API;
    }
    json_error_t je;
    json_t *j = r.len ? json_loadb(r.body, r.len, 0, &je) : NULL;
    if (r.status < 200 || r.status > 299) {
        if (c->json && j) {
            char *s = json_dumps(j, JSON_INDENT(2));
            if (s) printf("%s\n", s);
            free(s);
        }
        const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
        const char *d = j ? json_string_value(json_object_get(j, "detail")) : NULL;
        if (e) fprintf(stderr, "cascadectl: %s (%d)%s%s\n", e, r.status, d ? ": " : "", d ? d : "");
        else fprintf(stderr, "cascadectl: %s %s: HTTP %d%s%.200s\n", method, path, r.status, r.len ? ": " : "",
                     r.body ? r.body : "");
        json_decref(j);
        api_httpc_response_free(&r);
        free(path);
        return EXIT_API;
    }
    if (r.len && !j) {
        fprintf(stderr, "cascadectl: %s %s: the answer is not JSON\n", method, path);
        api_httpc_response_free(&r);
        free(path);
        return EXIT_API;
    }
    api_httpc_response_free(&r);
    free(path);
    if (out) *out = j;
    else json_decref(j);
    return 0;
}

/* ---- output --------------------------------------------------------------- */

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
}

/* Display columns a UTF-8 string takes on a terminal (CJK wide = 2). */
static size_t display_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        int n;
        if (*p < 0x80) cp = *p, n = 1;
        else if ((*p & 0xE0) == 0xC0) cp = *p & 0x1F, n = 2;
        else if ((*p & 0xF0) == 0xE0) cp = *p & 0x0F, n = 3;
        else if ((*p & 0xF8) == 0xF0) cp = *p & 0x07, n = 4;
        else cp = '?', n = 1;
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                n = i;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        p += n;
        bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                    (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                    (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                    (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
        w += wide ? 2 : 1;
    }
    return w;
}

/* A JSON value as table cell text (malloc'ed). */
static char *cell(json_t *v)
{
    char buf[64];
    if (!v || json_is_null(v)) return strdup("-");
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_true(v)) return strdup("yes");
    if (json_is_false(v)) return strdup("no");
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        return strdup(buf);
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : strdup("?");
}

struct column {
    const char *key;      /* member of each row */
    const char *title;
};

/* Prints rows (an array of objects) under titles; indent_key names a member
 * holding a nesting depth used to indent the first column (trees). */
static void print_table(json_t *rows, const struct column *cols, int ncols, const char *depth_key)
{
    size_t nrows = json_array_size(rows);
    if (!nrows) {
        printf("(none)\n");
        return;
    }
    char ***cells = calloc(nrows, sizeof(*cells));
    size_t width[16] = {0};
    for (int k = 0; k < ncols; k++) width[k] = strlen(cols[k].title);
    for (size_t i = 0; i < nrows; i++) {
        json_t *row = json_array_get(rows, i);
        cells[i] = calloc((size_t)ncols, sizeof(char *));
        for (int k = 0; k < ncols; k++) {
            char *t = cell(json_object_get(row, cols[k].key));
            if (k == 0 && depth_key) {
                int depth = (int)json_integer_value(json_object_get(row, depth_key));
                if (depth > 0) {
                    size_t n = strlen(t) + (size_t)depth * 2 + 1;
                    char *ind = malloc(n);
                    snprintf(ind, n, "%*s%s", depth * 2, "", t);
                    free(t);
                    t = ind;
                }
            }
            cells[i][k] = t;
            size_t w = display_width(t);
            if (w > width[k]) width[k] = w;
        }
    }
    for (int k = 0; k < ncols; k++)
        printf("%s%-*s", k ? "  " : "", k == ncols - 1 ? 0 : (int)width[k], cols[k].title);
    printf("\n");
    for (size_t i = 0; i < nrows; i++) {
        for (int k = 0; k < ncols; k++) {
            const char *t = cells[i][k];
            printf("%s%s", k ? "  " : "", t);
            if (k < ncols - 1)
                for (size_t pad = display_width(t); pad < width[k]; pad++) putchar(' ');
            free(cells[i][k]);
        }
        printf("\n");
        free(cells[i]);
    }
    free(cells);
}

/* "key: value" lines; nested objects become dotted keys. */
static void print_flat(json_t *obj, const char *prefix)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
        if (json_is_object(v) && json_object_size(v)) {
            print_flat(v, name);
        } else {
            char *t = cell(v);
            printf("%s: %s\n", name, t);
            free(t);
        }
    }
}

/* Shows a list answer: {"<name>": [...]} as a table, or JSON with --json. */
static int show_list(const struct ctl *c, json_t *j, const char *name, const struct column *cols, int ncols)
{
    if (c->json) {
        print_json(j);
    } else {
        json_t *rows = json_object_get(j, name);
        if (!json_is_array(rows)) {
            fprintf(stderr, "cascadectl: the answer has no \"%s\" list\n", name);
            json_decref(j);
            return EXIT_API;
        }
        print_table(rows, cols, ncols, NULL);
    }
    json_decref(j);
    return 0;
}

static int show_object(const struct ctl *c, json_t *j)
{
    if (c->json) print_json(j);
    else if (json_is_object(j)) print_flat(j, "");
    else if (j) print_json(j);
    json_decref(j);
    return 0;
}

/* ---- commands ------------------------------------------------------------- */

static int cmd_user(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j;
    int rc;
    if (!strcmp(verb, "list")) {
        if ((rc = positional(a, 0, "user list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/users"), NULL, &j))) return rc;
        static const struct column cols[] = {{"name", "NAME"}};
        return show_list(c, j, "users", cols, 1);
    }
    if (!strcmp(verb, "add")) {
        bool missing = false;
        const char *pw = take_opt(a, "--password", &missing);
        if ((rc = positional(a, 1, "user add NAME --password P"))) return rc;
        if (!pw || missing) return usage_error("user add needs --password");
        char line[512];
        if (!strcmp(pw, "-")) {
            if (!fgets(line, sizeof(line), stdin)) return usage_error("no password on stdin");
            line[strcspn(line, "\r\n")] = '\0';
            pw = line;
        }
        json_t *body = json_pack("{s:s, s:s}", "name", a->argv[0], "password", pw);
        rc = call(c, "POST", api_path(c, "/users"), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (!c->json) printf("user %s added\n", a->argv[0]);
        else print_json(j);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "del")) {
        if ((rc = positional(a, 1, "user del NAME"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/users/%s", a->argv[0]), NULL, &j))) return rc;
        if (!c->json) printf("user %s deleted\n", a->argv[0]);
        else print_json(j);
        json_decref(j);
        return 0;
    }
    return usage_error("user: unknown verb '%s' (list, add, del)", verb);
}

static int cmd_reg(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j;
    int rc;
    if (!strcmp(verb, "list")) {
        bool missing = false;
        const char *user = take_opt(a, "--user", &missing);
        if (missing) return usage_error("--user needs a value");
        if ((rc = positional(a, 0, "reg list [--user USER]"))) return rc;
        char *path = user ? api_path(c, "/registrations?user=%s", user) : api_path(c, "/registrations");
        if ((rc = call(c, "GET", path, NULL, &j))) return rc;
        static const struct column cols[] = {{"user", "USER"},       {"contact", "CONTACT"},
                                             {"expires", "EXPIRES"}, {"transport", "TRANSPORT"},
                                             {"remote", "REMOTE"},   {"nat", "NAT"},
                                             {"aor", "AOR"}};
        return show_list(c, j, "registrations", cols, 7);
    }
    if (!strcmp(verb, "kick")) {
        if ((rc = positional(a, 1, "reg kick USER"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/registrations/%s", a->argv[0]), NULL, &j))) return rc;
        if (c->json) print_json(j);
        else printf("removed %" JSON_INTEGER_FORMAT " binding(s) of %s\n",
                    json_integer_value(json_object_get(j, "removed")), a->argv[0]);
        json_decref(j);
        return 0;
    }
    return usage_error("reg: unknown verb '%s' (list, kick)", verb);
}

static int cmd_stats(struct ctl *c, struct args *a)
{
    json_t *j;
    int rc;
    if ((rc = positional(a, 0, "stats"))) return rc;
    if ((rc = call(c, "GET", api_path(c, "/stats"), NULL, &j))) return rc;
    return show_object(c, j);
}

static void print_names(json_t *j, const char *member, const char *title)
{
    json_t *a = json_object_get(j, member);
    size_t i;
    json_t *v;
    printf("%s:%s\n", title, json_array_size(a) ? "" : " none");
    json_array_foreach(a, i, v) printf("  %s\n", json_string_value(v) ? json_string_value(v) : "?");
}

static void print_counts(json_t *j, const char *member, const char *title)
{
    json_t *o = json_object_get(j, member);
    if (!o) return;
    if (json_object_get(o, "error")) {
        printf("%s: not read again: %s\n", title, json_string_value(json_object_get(o, "error")));
        return;
    }
    printf("%s: %" JSON_INTEGER_FORMAT " stored, %" JSON_INTEGER_FORMAT " added, %" JSON_INTEGER_FORMAT
           " changed, %" JSON_INTEGER_FORMAT " removed\n",
           title, json_integer_value(json_object_get(o, "stored")), json_integer_value(json_object_get(o, "added")),
           json_integer_value(json_object_get(o, "changed")), json_integer_value(json_object_get(o, "removed")));
}

static int cmd_reload(struct ctl *c, struct args *a)
{
    json_t *j;
    int rc;
    if ((rc = positional(a, 0, "reload"))) return rc;
    if ((rc = call(c, "POST", api_path(c, "/reload"), NULL, &j))) return rc;
    if (c->json) {
        print_json(j);
    } else {
        printf("reloaded %s\n", json_string_value(json_object_get(j, "config")) &&
                                         *json_string_value(json_object_get(j, "config"))
                                     ? json_string_value(json_object_get(j, "config"))
                                     : "(no config file: store and certificates only)");
        print_names(j, "applied", "applied");
        print_names(j, "restart_needed", "restart needed");
        print_counts(j, "users", "users");
        print_counts(j, "gb_devices", "gb devices");
    }
    json_decref(j);
    return 0;
}

/* ---- events --------------------------------------------------------------- */

struct follow {
    struct ctl *c;
    uint64_t last_seq;
    bool have_seq;
    bool write_failed;
};

static void print_event_line(json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *time = json_string_value(json_object_get(ev, "time"));
    json_t *seq = json_object_get(ev, "seq");
    if (type && !strcmp(type, "events.lost")) {
        printf("-- %" JSON_INTEGER_FORMAT " event(s) lost (seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT
               " left the server's buffer) --\n",
               json_integer_value(json_object_get(ev, "count")), json_integer_value(json_object_get(ev, "from")),
               json_integer_value(json_object_get(ev, "to")));
        return;
    }
    printf("%s #%" JSON_INTEGER_FORMAT " %s", time ? time : "-", json_integer_value(seq), type ? type : "?");
    const char *key;
    json_t *v;
    json_object_foreach(ev, key, v) {
        if (!strcmp(key, "seq") || !strcmp(key, "time") || !strcmp(key, "type")) continue;
        char *t = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        bool quote = t && (strchr(t, ' ') || !*t) && json_is_string(v);
        printf(" %s=%s%s%s", key, quote ? "\"" : "", t ? t : "?", quote ? "\"" : "");
        free(t);
    }
    printf("\n");
}

static int on_event(const char *text, size_t len, void *arg)
{
    struct follow *f = arg;
    json_error_t je;
    json_t *ev = json_loadb(text, len, 0, &je);
    if (!ev) {
        fprintf(stderr, "cascadectl: ignoring a frame that is not JSON\n");
        return 0;
    }
    json_t *seq = json_object_get(ev, "seq");
    if (json_is_integer(seq)) {
        f->last_seq = (uint64_t)json_integer_value(seq);
        f->have_seq = true;
    }
    if (f->c->json) printf("%.*s\n", (int)len, text);
    else print_event_line(ev);
    json_decref(ev);
    /* one line per event, visible at once when piped or tailed */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        f->write_failed = true;
        return 1;
    }
    return 0;
}

static int cmd_events(struct ctl *c, struct args *a)
{
    bool missing = false;
    const char *since = take_opt(a, "--since", &missing);
    int rc;
    if (missing) return usage_error("--since needs a sequence number");
    if ((rc = positional(a, 0, "events [--since SEQ]"))) return rc;
    struct follow f = {.c = c};
    if (since) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(since, &end, 10);
        if (errno || end == since || *end) return usage_error("--since needs a sequence number");
        f.last_seq = v;
        f.have_seq = true;
    }
    signal(SIGPIPE, SIG_IGN);
    bool connected_once = false;
    int backoff_ms = 1000;
    while (!interrupted) {
        char target[1100], err[256];
        if (f.have_seq)
            snprintf(target, sizeof(target), "%s/api/v1/events?since=%llu", c->prefix, (unsigned long long)f.last_seq);
        else
            snprintf(target, sizeof(target), "%s/api/v1/events", c->prefix);
        int r = api_ws_stream(&c->url, target, c->token, on_event, &f, &interrupted, err, sizeof(err));
        if (f.write_failed) return 0;                      /* the reader went away (e.g. | head) */
        if (r == API_WS_STOPPED) break;
        if (r == API_WS_CLOSED) {
            /* Reconnect from the last seq seen: nothing is missed while the
             * server still holds it (else an events.lost line says so). */
            connected_once = true;
            backoff_ms = 1000;
            fprintf(stderr, "cascadectl: event stream closed; reconnecting\n");
        } else if (!connected_once) {
            fprintf(stderr, "cascadectl: cannot follow events at %s: %s\n", c->url_text, err[0] ? err : "refused");
            return EXIT_API;
        } else {
            fprintf(stderr, "cascadectl: reconnect failed (%s); retrying in %d s\n", err[0] ? err : "refused",
                    backoff_ms / 1000);
        }
        for (int waited = 0; waited < backoff_ms && !interrupted; waited += 100) usleep(100000);
        if (r == API_WS_FAILED && backoff_ms < 8000) backoff_ms *= 2;
    }
    return 0;
}

/* ---- gb ------------------------------------------------------------------- */

static void flatten_tree(json_t *nodes, int depth, json_t *out)
{
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        json_t *copy = json_copy(n);
        json_object_del(copy, "children");
        json_object_set_new(copy, "_depth", json_integer(depth));
        json_array_append_new(out, copy);
        json_t *kids = json_object_get(n, "children");
        if (json_is_array(kids) && depth < 64) flatten_tree(kids, depth + 1, out);
    }
}

static int show_channels(const struct ctl *c, json_t *j, const char *list, bool local)
{
    if (c->json) {
        print_json(j);
        json_decref(j);
        return 0;
    }
    json_t *nodes = json_object_get(j, list);
    if (!json_is_array(nodes)) {
        fprintf(stderr, "cascadectl: the answer has no \"%s\" list\n", list);
        json_decref(j);
        return EXIT_API;
    }
    json_t *flat = json_array();
    flatten_tree(nodes, 0, flat);
    static const struct column dev_cols[] = {{"id", "ID"},          {"name", "NAME"},
                                             {"status", "STATUS"},  {"parent_id", "PARENT"},
                                             {"manufacturer", "MANUFACTURER"}, {"model", "MODEL"},
                                             {"civil_code", "CIVIL_CODE"}, {"address", "ADDRESS"}};
    static const struct column local_cols[] = {{"id", "ID"}, {"name", "NAME"}, {"status", "STATUS"},
                                               {"parent_id", "PARENT"}, {"media", "MEDIA"}};
    if (local) print_table(flat, local_cols, 5, "_depth");
    else print_table(flat, dev_cols, 8, "_depth");
    json_decref(flat);
    json_decref(j);
    return 0;
}

static int cmd_gb_device(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j, *body;
    int rc;
    bool missing = false;
    if (!strcmp(verb, "list")) {
        if ((rc = positional(a, 0, "gb device list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/devices"), NULL, &j))) return rc;
        static const struct column cols[] = {
            {"id", "ID"},         {"online", "ONLINE"},           {"transport", "TRANSPORT"},
            {"remote", "REMOTE"}, {"channels", "CHANNELS"},       {"last_keepalive", "LAST_KEEPALIVE"},
            {"charset", "CHARSET"}};
        return show_list(c, j, "devices", cols, 7);
    }
    if (!strcmp(verb, "show")) {
        if ((rc = positional(a, 1, "gb device show ID"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/devices/%s", a->argv[0]), NULL, &j))) return rc;
        return show_object(c, j);
    }
    if (!strcmp(verb, "add")) {
        const char *pw = take_opt(a, "--password", &missing);
        const char *cs = take_opt(a, "--charset", &missing);
        const char *sub = take_opt(a, "--subscribe", &missing);
        if (missing) return usage_error("an option is missing its value");
        if ((rc = positional(a, 1, "gb device add ID [--password P] [--charset GB2312|UTF-8] "
                                   "[--subscribe catalog,alarm,position|none|default]")))
            return rc;
        if (cs && strcasecmp(cs, "GB2312") && strcasecmp(cs, "UTF-8"))
            return usage_error("--charset is GB2312 or UTF-8");
        body = json_pack("{s:s}", "id", a->argv[0]);
        if (pw) json_object_set_new(body, "password", json_string(pw));
        if (cs) json_object_set_new(body, "charset", json_string(cs));
        if (sub && !strcmp(sub, "default")) {
            json_object_set_new(body, "subscribe", json_null()); /* back to [gb] subscribe */
        } else if (sub) {
            /* "catalog,alarm" -> ["catalog","alarm"]; "none" -> [] (the server checks the names). */
            json_t *list = json_array();
            for (const char *p = sub; strcmp(sub, "none") && *p;) {
                size_t n = strcspn(p, ",");
                if (n) json_array_append_new(list, json_stringn(p, n));
                p += n + (p[n] == ',');
            }
            json_object_set_new(body, "subscribe", list);
        }
        rc = call(c, "POST", api_path(c, "/gb/devices"), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (!c->json) printf("device %s added\n", a->argv[0]);
        else print_json(j);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "del")) {
        if ((rc = positional(a, 1, "gb device del ID"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/gb/devices/%s", a->argv[0]), NULL, &j))) return rc;
        if (!c->json) printf("device %s deleted\n", a->argv[0]);
        else print_json(j);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "channels")) {
        if ((rc = positional(a, 1, "gb device channels ID"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/devices/%s/channels", a->argv[0]), NULL, &j))) return rc;
        return show_channels(c, j, "channels", false);
    }
    if (!strcmp(verb, "catalog")) {
        if ((rc = positional(a, 1, "gb device catalog ID"))) return rc;
        if ((rc = call(c, "POST", api_path(c, "/gb/devices/%s/catalog", a->argv[0]), NULL, &j))) return rc;
        if (!c->json)
            printf("device %s: %" JSON_INTEGER_FORMAT " channel(s)\n", a->argv[0],
                   json_integer_value(json_object_get(j, "sum_num")));
        return show_channels(c, j, "channels", false);
    }
    if (!strcmp(verb, "info") || !strcmp(verb, "status")) {
        if ((rc = positional(a, 1, !strcmp(verb, "info") ? "gb device info ID" : "gb device status ID"))) return rc;
        char *path = !strcmp(verb, "info") ? api_path(c, "/gb/devices/%s/info", a->argv[0])
                                           : api_path(c, "/gb/devices/%s/status", a->argv[0]);
        if ((rc = call(c, "POST", path, NULL, &j))) return rc;
        return show_object(c, j);
    }
    if (!strcmp(verb, "records")) {
        const char *ch = take_opt(a, "--channel", &missing);
        const char *start = take_opt(a, "--start", &missing);
        const char *end = take_opt(a, "--end", &missing);
        if ((rc = positional(a, 1, "gb device records ID --channel C --start T --end T"))) return rc;
        if (missing || !ch || !start || !end) return usage_error("records needs --channel, --start and --end");
        body = json_pack("{s:s, s:s, s:s}", "channel", ch, "start", start, "end", end);
        rc = call(c, "POST", api_path(c, "/gb/devices/%s/records", a->argv[0]), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (!c->json)
            printf("%" JSON_INTEGER_FORMAT " record(s)\n", json_integer_value(json_object_get(j, "sum_num")));
        static const struct column cols[] = {{"name", "NAME"},
                                             {"start", "START"},
                                             {"end", "END"},
                                             {"type", "TYPE"},
                                             {"file_path", "FILE"}};
        return show_list(c, j, "records", cols, 5);
    }
    if (!strcmp(verb, "ptz")) {
        const char *speed = take_opt(a, "--speed", &missing);
        if ((rc = positional(a, 3, "gb device ptz ID CHANNEL CMD [--speed N]"))) return rc;
        if (missing) return usage_error("--speed needs a value");
        body = json_pack("{s:s}", "cmd", a->argv[2]);
        if (speed) {
            char *e;
            long s = strtol(speed, &e, 10);
            if (e == speed || *e || s < 0 || s > 255) {
                json_decref(body);
                return usage_error("--speed is 0..255");
            }
            json_object_set_new(body, "speed", json_integer(s));
        }
        rc = call(c, "POST", api_path(c, "/gb/devices/%s/channels/%s/ptz", a->argv[0], a->argv[1]), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (c->json) print_json(j);
        else {
            const char *cmd = json_string_value(json_object_get(j, "ptz_cmd"));
            printf("sent %s\n", cmd ? cmd : "");
        }
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "play")) {
        const char *tr = take_opt(a, "--transport", &missing);
        if ((rc = positional(a, 2, "gb device play ID CHANNEL [--transport udp|tcp]"))) return rc;
        if (missing || (tr && strcmp(tr, "udp") && strcmp(tr, "tcp")))
            return usage_error("--transport is udp or tcp");
        body = json_pack("{s:s}", "transport", tr ? tr : "udp");
        rc = call(c, "POST", api_path(c, "/gb/devices/%s/channels/%s/play", a->argv[0], a->argv[1]), body, &j);
        json_decref(body);
        if (rc) return rc;
        return show_object(c, j);
    }
    return usage_error("gb device: unknown verb '%s'", verb);
}

static int cmd_gb_stream(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j;
    int rc;
    if (!strcmp(verb, "list")) {
        if ((rc = positional(a, 0, "gb stream list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/streams"), NULL, &j))) return rc;
        static const struct column cols[] = {
            {"stream_id", "STREAM"}, {"device_id", "DEVICE"}, {"channel_id", "CHANNEL"},
            {"codec", "CODEC"},      {"packets", "PACKETS"},  {"bytes", "BYTES"},
            {"lost", "LOST"},        {"bitrate_bps", "BPS"},  {"started_at", "STARTED"}};
        return show_list(c, j, "streams", cols, 9);
    }
    if (!strcmp(verb, "show")) {
        if ((rc = positional(a, 1, "gb stream show SID"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/streams/%s", a->argv[0]), NULL, &j))) return rc;
        return show_object(c, j);
    }
    if (!strcmp(verb, "stop")) {
        if ((rc = positional(a, 1, "gb stream stop SID"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/gb/streams/%s", a->argv[0]), NULL, &j))) return rc;
        if (c->json) print_json(j);
        else printf("stream %s stopped\n", a->argv[0]);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "pause") || !strcmp(verb, "resume") || !strcmp(verb, "speed") || !strcmp(verb, "seek")) {
        /* Playback control: the device's answer decides the outcome. */
        bool pause_resume = verb[0] == 'p' || verb[0] == 'r';
        if ((rc = positional(a, pause_resume ? 1 : 2,
                             pause_resume ? "gb stream pause|resume SID" : "gb stream speed SID X | seek SID SECONDS")))
            return rc;
        json_t *body = json_pack("{s:s}", "action", verb);
        if (!pause_resume) {
            char *end;
            double v = strtod(a->argv[1], &end);
            if (end == a->argv[1] || *end) {
                json_decref(body);
                return usage_error("gb stream %s: '%s' is not a number", verb, a->argv[1]);
            }
            json_object_set_new(body, verb[1] == 'p' ? "speed" : "position", json_real(v));
        }
        rc = call(c, "POST", api_path(c, "/gb/streams/%s/control", a->argv[0]), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (c->json) print_json(j);
        else
            printf("stream %s: %s (paused %s, speed %g)\n", a->argv[0], verb,
                   json_is_true(json_object_get(j, "paused")) ? "yes" : "no",
                   json_number_value(json_object_get(j, "scale")));
        json_decref(j);
        return 0;
    }
    return usage_error("gb stream: unknown verb '%s' (list, show, stop, pause, resume, speed, seek)", verb);
}

/* ---- rooms (the SFU) ------------------------------------------------------ */

/* room show: the room's lines, then its participants as a table (a
 * participant's media counters come with --json). */
static int show_room(const struct ctl *c, json_t *j)
{
    if (c->json) return show_object(c, j);
    json_t *parts = json_incref(json_object_get(j, "participants"));
    json_object_del(j, "participants");
    print_flat(j, "");
    json_t *rows = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p) {
        json_t *media = json_object_get(p, "media");
        json_t *row = json_pack("{s:O*,s:O*,s:O*,s:O*,s:i,s:i,s:O*,s:O*,s:O*,s:O*}", "id", json_object_get(p, "id"),
                                "name", json_object_get(p, "name"), "user", json_object_get(p, "user"), "state",
                                json_object_get(p, "state"), "streams",
                                (json_int_t)json_array_size(json_object_get(p, "streams")), "subscriptions",
                                json_integer_value(json_object_get(p, "subscriptions")), "connected",
                                json_object_get(media, "connected"), "remote", json_object_get(media, "remote"),
                                "rtp_in", json_object_get(json_object_get(media, "counters"), "rtp_in"), "rtp_out",
                                json_object_get(json_object_get(media, "counters"), "rtp_out"));
        if (row) json_array_append_new(rows, row);
    }
    static const struct column cols[] = {{"id", "ID"},         {"name", "NAME"},
                                         {"user", "USER"},     {"state", "STATE"},
                                         {"streams", "STREAMS"}, {"subscriptions", "SUBS"},
                                         {"connected", "CONNECTED"}, {"remote", "REMOTE"},
                                         {"rtp_in", "RTP_IN"}, {"rtp_out", "RTP_OUT"}};
    printf("participants:\n");
    print_table(rows, cols, 10, NULL);
    json_decref(rows);
    json_decref(parts);
    json_decref(j);
    return 0;
}

/* A /media/streams row flattened for the table: its source and its viewers per output. */
static json_t *media_row(json_t *r)
{
    json_t *src = json_object_get(r, "source"), *per = json_object_get(r, "viewers_by_output");
    json_t *w = json_object_get(r, "width"), *h = json_object_get(r, "height");
    char size[32] = "-";
    if (json_is_integer(w) && json_is_integer(h))
        snprintf(size, sizeof(size), "%lldx%lld", (long long)json_integer_value(w), (long long)json_integer_value(h));
    json_t *o = json_object();
    json_object_set(o, "stream_id", json_object_get(r, "stream_id"));
    json_object_set(o, "device_id", json_object_get(src, "device_id"));
    json_object_set(o, "channel_id", json_object_get(src, "channel_id"));
    json_object_set(o, "kind", json_object_get(src, "kind"));
    json_object_set(o, "flv", json_object_get(per, "flv"));
    json_object_set(o, "hls", json_object_get(per, "hls"));
    json_object_set(o, "webrtc", json_object_get(per, "webrtc"));
    json_object_set(o, "codec", json_object_get(r, "codec"));
    json_object_set_new(o, "size", json_string(size));
    json_object_set(o, "frame_rate", json_object_get(r, "frame_rate"));
    json_object_set(o, "bitrate_bps", json_object_get(r, "bitrate_bps"));
    json_object_set(o, "started_at", json_object_get(r, "started_at"));
    return o;
}

static int cmd_media(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j;
    int rc;
    if (strcmp(verb, "streams")) return usage_error("media: unknown verb '%s' (streams)", verb);
    if ((rc = positional(a, 0, "media streams"))) return rc;
    if ((rc = call(c, "GET", api_path(c, "/media/streams"), NULL, &j))) return rc;
    if (c->json) return show_list(c, j, "streams", NULL, 0);
    json_t *rows = json_object_get(j, "streams"), *flat = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_array_append_new(flat, media_row(r));
    json_decref(j);
    static const struct column cols[] = {
        {"stream_id", "STREAM"}, {"device_id", "DEVICE"}, {"channel_id", "CHANNEL"}, {"kind", "KIND"},
        {"flv", "FLV"},          {"hls", "HLS"},          {"webrtc", "WEBRTC"},      {"codec", "CODEC"},
        {"size", "SIZE"},        {"frame_rate", "FPS"},   {"bitrate_bps", "BPS"},    {"started_at", "STARTED"}};
    return show_list(c, json_pack("{s:o}", "streams", flat), "streams", cols, 12);
}

static int cmd_room(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j;
    int rc;
    if (!strcmp(verb, "list")) {
        if ((rc = positional(a, 0, "room list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/rooms"), NULL, &j))) return rc;
        static const struct column cols[] = {{"name", "ROOM"},
                                             {"participants", "PARTICIPANTS"},
                                             {"publishers", "PUBLISHERS"},
                                             {"created", "CREATED"}};
        return show_list(c, j, "rooms", cols, 4);
    }
    if (!strcmp(verb, "show")) {
        if ((rc = positional(a, 1, "room show NAME"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/rooms/%s", a->argv[0]), NULL, &j))) return rc;
        return show_room(c, j);
    }
    if (!strcmp(verb, "kick")) {
        if ((rc = positional(a, 2, "room kick NAME ID"))) return rc;
        char *path = api_path(c, "/rooms/%s/participants/%s", a->argv[0], a->argv[1]);
        if ((rc = call(c, "DELETE", path, NULL, &j))) return rc;
        if (c->json) print_json(j);
        else printf("participant %s kicked from room %s\n", a->argv[1], a->argv[0]);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "close")) {
        if ((rc = positional(a, 1, "room close NAME"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/rooms/%s", a->argv[0]), NULL, &j))) return rc;
        if (c->json) print_json(j);
        else printf("room %s closed\n", a->argv[0]);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "token")) {
        bool missing = false;
        const char *name = take_opt(a, "--name", &missing);
        const char *ttl = take_opt(a, "--ttl", &missing);
        if (missing) return usage_error("--name and --ttl need a value");
        if ((rc = positional(a, 1, "room token NAME [--name N] [--ttl S]"))) return rc;
        char *end = NULL;
        long long ttl_s = ttl ? strtoll(ttl, &end, 10) : 0;
        if (ttl && (end == ttl || *end || ttl_s <= 0)) return usage_error("--ttl needs seconds (> 0)");
        json_t *body = json_object();
        if (name) json_object_set_new(body, "name", json_string(name));
        if (ttl) json_object_set_new(body, "ttl_s", json_integer(ttl_s));
        rc = call(c, "POST", api_path(c, "/rooms/%s/tokens", a->argv[0]), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (c->json) print_json(j);
        else printf("%s\nexpires %s\n", json_string_value(json_object_get(j, "token")),
                    json_string_value(json_object_get(j, "expires_at")));
        json_decref(j);
        return 0;
    }
    return usage_error("room: unknown verb '%s' (list, show, kick, close, token)", verb);
}

/* One channel from a CSV line "id,name[,parent_id[,media]]"; NULL for blank
 * lines and comments. */
static json_t *csv_channel(char *line, int lineno, bool *bad)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') return NULL;
    char *field[4] = {0};
    int n = 0;
    for (char *tok = p; tok && n < 4; n++) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        field[n] = tok;
        tok = comma ? comma + 1 : NULL;
    }
    if (n < 2 || !*field[0] || !*field[1]) {
        fprintf(stderr, "cascadectl: line %d: want id,name[,parent_id[,media]]\n", lineno);
        *bad = true;
        return NULL;
    }
    json_t *ch = json_pack("{s:s, s:s}", "id", field[0], "name", field[1]);
    if (!ch) {
        fprintf(stderr, "cascadectl: line %d: not valid UTF-8\n", lineno);
        *bad = true;
        return NULL;
    }
    if (n > 2 && *field[2]) json_object_set_new(ch, "parent_id", json_string(field[2]));
    if (n > 3 && *field[3]) json_object_set_new(ch, "media", json_string(field[3]));
    return ch;
}

static json_t *load_channels(const char *file)
{
    json_error_t je;
    json_t *doc = json_load_file(file, 0, &je);
    if (doc) {
        json_t *list = json_is_array(doc) ? json_incref(doc) : json_incref(json_object_get(doc, "channels"));
        json_decref(doc);
        if (!json_is_array(list)) {
            fprintf(stderr, "cascadectl: %s: want a JSON array or {\"channels\": [...]}\n", file);
            json_decref(list);
            return NULL;
        }
        return list;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "cascadectl: %s: %s\n", file, strerror(errno));
        return NULL;
    }
    int c0 = fgetc(f);
    if (c0 == '[' || c0 == '{') {                  /* meant to be JSON */
        fclose(f);
        fprintf(stderr, "cascadectl: %s: line %d: %s\n", file, je.line, je.text);
        return NULL;
    }
    ungetc(c0, f);
    json_t *list = json_array();
    char line[2048];
    int lineno = 0;
    bool bad = false;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        json_t *ch = csv_channel(line, lineno, &bad);
        if (ch) json_array_append_new(list, ch);
    }
    fclose(f);
    if (bad) {
        json_decref(list);
        return NULL;
    }
    return list;
}

static int cmd_gb_channel(struct ctl *c, const char *verb, struct args *a)
{
    json_t *j, *body;
    int rc;
    bool missing = false;
    if (!strcmp(verb, "list")) {
        if ((rc = positional(a, 0, "gb channel list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/channels"), NULL, &j))) return rc;
        return show_channels(c, j, "channels", true);
    }
    if (!strcmp(verb, "add")) {
        const char *name = take_opt(a, "--name", &missing);
        const char *parent = take_opt(a, "--parent", &missing);
        const char *media = take_opt(a, "--media", &missing);
        const char *status = take_opt(a, "--status", &missing);
        if ((rc = positional(a, 1, "gb channel add ID --name NAME [--parent ID] [--media FILE]"))) return rc;
        if (missing || !name) return usage_error("gb channel add needs --name (and values for its options)");
        body = json_pack("{s:s, s:s}", "id", a->argv[0], "name", name);
        if (!body) return usage_error("the name is not valid UTF-8");
        if (parent) json_object_set_new(body, "parent_id", json_string(parent));
        if (media) json_object_set_new(body, "media", json_string(media));
        if (status) json_object_set_new(body, "status", json_string(status));
        rc = call(c, "POST", api_path(c, "/gb/channels"), body, &j);
        json_decref(body);
        if (rc) return rc;
        if (c->json) print_json(j);
        else printf("channel %s added\n", a->argv[0]);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "del")) {
        if ((rc = positional(a, 1, "gb channel del ID"))) return rc;
        if ((rc = call(c, "DELETE", api_path(c, "/gb/channels/%s", a->argv[0]), NULL, &j))) return rc;
        if (c->json) print_json(j);
        else printf("channel %s deleted\n", a->argv[0]);
        json_decref(j);
        return 0;
    }
    if (!strcmp(verb, "import")) {
        if ((rc = positional(a, 1, "gb channel import FILE"))) return rc;
        json_t *list = load_channels(a->argv[0]);
        if (!list) return EXIT_USAGE;
        size_t i, ok = 0, failed = 0;
        json_t *ch;
        json_array_foreach(list, i, ch) {
            const char *id = json_string_value(json_object_get(ch, "id"));
            if (!json_is_object(ch) || !id) {
                fprintf(stderr, "cascadectl: entry %zu has no \"id\"; skipped\n", i + 1);
                failed++;
                continue;
            }
            if (call(c, "POST", api_path(c, "/gb/channels"), ch, NULL)) {
                fprintf(stderr, "cascadectl: channel %s not imported\n", id);
                failed++;
            } else {
                ok++;
            }
        }
        json_decref(list);
        if (c->json) printf("{\"imported\":%zu,\"failed\":%zu}\n", ok, failed);
        else printf("%zu channel(s) imported, %zu failed\n", ok, failed);
        return failed ? EXIT_API : 0;
    }
    return usage_error("gb channel: unknown verb '%s' (list, add, del, import)", verb);
}

static int cmd_gb(struct ctl *c, struct args *a)
{
    if (a->argc < 2) return usage_error("gb needs a noun and a verb (device, stream, channel, upstream)");
    const char *noun = a->argv[0], *verb = a->argv[1];
    a->argv += 2;
    a->argc -= 2;
    if (!strcmp(noun, "device")) return cmd_gb_device(c, verb, a);
    if (!strcmp(noun, "stream")) return cmd_gb_stream(c, verb, a);
    if (!strcmp(noun, "live")) {
        /* gb live ID CHANNEL: the channel's shared live stream and its URLs */
        if (a->argc != 1) return usage_error("gb live ID CHANNEL");
        json_t *j;
        int rc = call(c, "POST", api_path(c, "/gb/devices/%s/channels/%s/live", verb, a->argv[0]), NULL, &j);
        if (rc) return rc;
        if (c->json) print_json(j);
        else
            printf("stream %s (viewers %lld)\nflv  %s\n", json_string_value(json_object_get(j, "stream_id")),
                   (long long)json_integer_value(json_object_get(j, "viewers")),
                   json_string_value(json_object_get(j, "flv")));
        if (!c->json && json_is_string(json_object_get(j, "hls")))
            printf("hls  %s\n", json_string_value(json_object_get(j, "hls")));
        if (!c->json && json_string_value(json_object_get(j, "webrtc")))
            printf("webrtc  %s (WHEP: POST an SDP offer)\n", json_string_value(json_object_get(j, "webrtc")));
        json_decref(j);
        return 0;
    }
    if (!strcmp(noun, "channel")) return cmd_gb_channel(c, verb, a);
    if (!strcmp(noun, "upstream")) {
        json_t *j;
        int rc;
        if (strcmp(verb, "list")) return usage_error("gb upstream: unknown verb '%s' (list)", verb);
        if ((rc = positional(a, 0, "gb upstream list"))) return rc;
        if ((rc = call(c, "GET", api_path(c, "/gb/upstreams"), NULL, &j))) return rc;
        static const struct column cols[] = {{"id", "ID"},
                                             {"state", "STATE"},
                                             {"registered_at", "REGISTERED"},
                                             {"last_keepalive_ok", "LAST_KEEPALIVE_OK"},
                                             {"last_error", "LAST_ERROR"}};
        return show_list(c, j, "upstreams", cols, 5);
    }
    return usage_error("gb: unknown noun '%s' (device, stream, channel, upstream)", noun);
}

/* ---- setup ---------------------------------------------------------------- */

/* The URL to reach an API listening on `listen` from this host. */
static void url_from_listen(const char *listen, char *out, size_t cap)
{
    char host[160] = "";
    const char *port = strrchr(listen, ':');
    if (!port) {
        out[0] = '\0';
        return;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(port - listen), listen);
    if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "*")) snprintf(host, sizeof(host), "127.0.0.1");
    else if (!strcmp(host, "[::]")) snprintf(host, sizeof(host), "[::1]");
    snprintf(out, cap, "http://%s:%s", host, port + 1);
}

int main(int argc, char **argv)
{
    struct args a = {argc - 1, argv + 1};
    if (take_flag(&a, "--help") || take_flag(&a, "-h") || (a.argc && !strcmp(a.argv[0], "help"))) {
        fputs(usage_text, stdout);
        return 0;
    }
    log_set_level(LOG_ERROR);
    struct ctl c = {.timeout_ms = 60000};
    bool missing = false;
    const char *url = take_opt(&a, "--url", &missing);
    const char *token = take_opt(&a, "--token", &missing);
    const char *cfg_file = take_opt(&a, "-c", &missing);
    if (!cfg_file) cfg_file = take_opt(&a, "--config", &missing);
    const char *timeout = take_opt(&a, "--timeout", &missing);
    c.json = take_flag(&a, "--json");
    if (missing) return usage_error("an option is missing its value");
    if (timeout) {
        char *e;
        long t = strtol(timeout, &e, 10);
        if (e == timeout || *e || t < 1 || t > 3600) return usage_error("--timeout is 1..3600 seconds");
        c.timeout_ms = (int)t * 1000;
    }

    if (!url) url = getenv("CASCADE_URL");
    if (!token) token = getenv("CASCADE_TOKEN");
    char cfg_url[200] = "";
    if (!url || !token) {
        const char *file = cfg_file ? cfg_file : (access("cascade.ini", R_OK) == 0 ? "cascade.ini" : NULL);
        if (file) {
            static struct config cfg;
            char err[300];
            config_init(&cfg);
            if (config_load(&cfg, file, err, sizeof(err))) {
                fprintf(stderr, "cascadectl: %s\n", err);
                if (cfg_file) return EXIT_USAGE;
            } else {
                if (!url && cfg.api.listen[0]) {
                    url_from_listen(cfg.api.listen, cfg_url, sizeof(cfg_url));
                    if (cfg_url[0]) url = cfg_url;
                }
                if (!token) {
                    snprintf(c.token, sizeof(c.token), "%s", cfg.api.token);
                    token = c.token;
                }
            }
        }
    }
    if (!url || !*url) url = "http://127.0.0.1:8080";
    if (token && token != c.token) snprintf(c.token, sizeof(c.token), "%s", token);
    snprintf(c.url_text, sizeof(c.url_text), "%s", url);
    char err[200];
    if (api_url_parse(url, &c.url, err, sizeof(err))) return usage_error("--url %s: %s", url, err);
    snprintf(c.prefix, sizeof(c.prefix), "%s", c.url.path);
    size_t pl = strlen(c.prefix);
    while (pl && c.prefix[pl - 1] == '/') c.prefix[--pl] = '\0';

    if (a.argc < 1) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const char *noun = a.argv[0];
    a.argv++;
    a.argc--;
    if (!strcmp(noun, "events")) return cmd_events(&c, &a);
    if (!strcmp(noun, "stats")) return cmd_stats(&c, &a);
    if (!strcmp(noun, "reload")) return cmd_reload(&c, &a);
    if (!strcmp(noun, "gb")) return cmd_gb(&c, &a);
    if (!strcmp(noun, "user") || !strcmp(noun, "reg") || !strcmp(noun, "room") || !strcmp(noun, "media")) {
        if (a.argc < 1) return usage_error("%s needs a verb", noun);
        const char *verb = a.argv[0];
        a.argv++;
        a.argc--;
        if (!strcmp(noun, "room")) return cmd_room(&c, verb, &a);
        if (!strcmp(noun, "media")) return cmd_media(&c, verb, &a);
        return !strcmp(noun, "user") ? cmd_user(&c, verb, &a) : cmd_reg(&c, verb, &a);
    }
    return usage_error("unknown command '%s'", noun);
}
