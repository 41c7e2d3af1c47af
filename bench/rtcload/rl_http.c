/* rl_http.c — the load viewer's small HTTP/1.1 client (rl_http.h). A
 * request is one malloc'd struct holding its own request text, socket and
 * response buffer; it is freed after its callback. Signaling is a few
 * requests per viewer, so allocation here is fine. */
#include "rl_http.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RL_HTTP_MAX_RESPONSE (1u << 20)

typedef struct rl_req {
    struct rl_req *next;           /* in the queue */
    struct rl_req *rnext, *rprev;  /* among the running */
    struct sockaddr_in addr;
    char *text;
    size_t text_len;
    char *resp;
    size_t resp_len, resp_cap;
    bool failed;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    rl_http_cb cb;
    void *user;
} rl_req_t;

static uv_loop_t *g_loop;
static int g_max = 16, g_running;
static size_t g_pending;
static rl_req_t *g_head, *g_tail;
static rl_req_t *g_running_list;
static bool g_aborting;

int rl_http_url(const char *url, struct sockaddr_in *addr, char *hostport, size_t hcap, char *path, size_t pcap)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= hcap)
        return -1;
    memcpy(hostport, h, hl);
    hostport[hl] = '\0';
    if ((size_t)snprintf(path, pcap, "%s", slash ? slash : "/") >= pcap)
        return -1;
    char host[256];
    int port = 80;
    const char *colon = strrchr(hostport, ':');
    size_t nl = colon ? (size_t)(colon - hostport) : hl;
    if (nl >= sizeof host)
        return -1;
    memcpy(host, hostport, nl);
    host[nl] = '\0';
    if (colon)
        port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return -1;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    memcpy(addr, res->ai_addr, sizeof *addr);
    addr->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

void rl_http_init(uv_loop_t *loop, int max_inflight)
{
    g_loop = loop;
    g_max = max_inflight > 0 ? max_inflight : 16;
}

size_t rl_http_pending(void)
{
    return g_pending;
}

static void start_next(void);

/* Undoes chunked transfer coding in place (RFC 9112 §7.1; Janus's
 * libmicrohttpd answers that way). Returns the decoded length; a broken
 * framing keeps what was decoded before it. */
static size_t dechunk(char *b, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        char *end;
        unsigned long n = strtoul(b + in, &end, 16);
        char *crlf = memmem(b + in, len - in, "\r\n", 2);
        if (end == b + in || !crlf)
            break;
        in = (size_t)(crlf - b) + 2;
        if (n == 0 || n > len - in)
            break;
        memmove(b + out, b + in, n);
        out += n;
        in += n + 2; /* the chunk's own CRLF */
    }
    b[out] = '\0';
    return out;
}

/* Finds the end of the header block and the Location header. */
static void finish(rl_req_t *r)
{
    rl_http_resp_t resp = {0};
    char *loc = NULL;
    bool chunked = false;
    if (!r->failed && r->resp_len > 12 && strncmp(r->resp, "HTTP/1.", 7) == 0) {
        r->resp[r->resp_len] = '\0';
        resp.status = atoi(r->resp + 9);
        char *hend = strstr(r->resp, "\r\n\r\n");
        if (hend) {
            *hend = '\0';
            resp.body = hend + 4;
            resp.body_len = r->resp_len - (size_t)(hend + 4 - r->resp);
            /* The header block is terminated at hend: walk its lines. */
            for (char *line = strstr(r->resp, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
                char *h = line + 2, *e = strstr(h, "\r\n");
                size_t hn = e ? (size_t)(e - h) : strlen(h);
                if (hn > 18 && strncasecmp(h, "Transfer-Encoding:", 18) == 0 && memmem(h, hn, "chunked", 7))
                    chunked = true;
                if (hn > 9 && strncasecmp(h, "Location:", 9) == 0 && !loc) {
                    char *v = h + 9;
                    while (*v == ' ')
                        v++;
                    loc = strndup(v, hn - (size_t)(v - h));
                }
            }
            if (chunked)
                resp.body_len = dechunk((char *)resp.body, resp.body_len);
        } else {
            resp.status = 0;
        }
    }
    resp.location = loc;
    if (!resp.body)
        resp.body = "";
    r->cb(r->user, &resp);
    free(loc);
}

static void on_close(uv_handle_t *h)
{
    rl_req_t *r = h->data;
    if (r->rprev)
        r->rprev->rnext = r->rnext;
    else
        g_running_list = r->rnext;
    if (r->rnext)
        r->rnext->rprev = r->rprev;
    free(r->text);
    free(r->resp);
    free(r);
    g_running--;
    g_pending--;
    if (!g_aborting)
        start_next();
}

static void done(rl_req_t *r)
{
    if (!g_aborting)
        finish(r);
    /* At exit the program closes every handle; a connect or read then ends
     * with UV_ECANCELED on a handle already closing. */
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    rl_req_t *r = h->data;
    if (r->resp_cap - r->resp_len < 4097) {
        size_t nc = r->resp_cap ? r->resp_cap * 2 : 8192;
        char *n = nc <= RL_HTTP_MAX_RESPONSE + 1 ? realloc(r->resp, nc) : NULL;
        if (!n) {
            *buf = uv_buf_init(NULL, 0); /* libuv then reports UV_ENOBUFS */
            return;
        }
        r->resp = n;
        r->resp_cap = nc;
    }
    /* One byte kept for the terminator finish() writes. */
    *buf = uv_buf_init(r->resp + r->resp_len, (unsigned)(r->resp_cap - r->resp_len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    rl_req_t *r = s->data;
    if (n > 0) {
        r->resp_len += (size_t)n;
        return;
    }
    if (n == 0)
        return;
    if (n != UV_EOF)
        r->failed = true;
    uv_read_stop(s);
    done(r);
}

static void on_write(uv_write_t *w, int status)
{
    rl_req_t *r = w->data;
    if (status < 0) {
        r->failed = true;
        done(r);
        return;
    }
    uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
}

static void on_connect(uv_connect_t *c, int status)
{
    rl_req_t *r = c->data;
    if (status < 0) {
        r->failed = true;
        done(r);
        return;
    }
    uv_buf_t b = uv_buf_init(r->text, (unsigned)r->text_len);
    r->wr.data = r;
    if (uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_write) < 0) {
        r->failed = true;
        done(r);
    }
}

static void start_next(void)
{
    while (g_running < g_max && g_head) {
        rl_req_t *r = g_head;
        g_head = r->next;
        if (!g_head)
            g_tail = NULL;
        g_running++;
        r->rprev = NULL;
        r->rnext = g_running_list;
        if (g_running_list)
            g_running_list->rprev = r;
        g_running_list = r;
        uv_tcp_init(g_loop, &r->tcp);
        r->tcp.data = r;
        r->conn.data = r;
        if (uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&r->addr, on_connect) < 0) {
            r->failed = true;
            done(r);
        }
    }
}

void rl_http_request(const struct sockaddr_in *addr, const char *hostport, const char *method, const char *path,
                     const char *ctype, const char *auth, const char *body, size_t body_len, rl_http_cb cb,
                     void *user)
{
    rl_req_t *r = calloc(1, sizeof *r);
    size_t cap = 512 + strlen(hostport) + strlen(path) + (ctype ? strlen(ctype) : 0) + (auth ? strlen(auth) : 0) +
                 body_len;
    if (r)
        r->text = malloc(cap);
    if (!r || !r->text) {
        free(r);
        rl_http_resp_t none = {.body = ""};
        cb(user, &none);
        return;
    }
    int n = snprintf(r->text, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: cascade-rtcload\r\n",
                     method, path, hostport);
    if (ctype)
        n += snprintf(r->text + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (auth)
        n += snprintf(r->text + n, cap - (size_t)n, "Authorization: %s\r\n", auth);
    if (body || strcmp(method, "POST") == 0)
        n += snprintf(r->text + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(r->text + n, cap - (size_t)n, "\r\n");
    if (body_len)
        memcpy(r->text + n, body, body_len);
    r->text_len = (size_t)n + body_len;
    r->addr = *addr;
    r->cb = cb;
    r->user = user;
    if (g_tail)
        g_tail->next = r;
    else
        g_head = r;
    g_tail = r;
    g_pending++;
    start_next();
}

void rl_http_abort_all(void)
{
    g_aborting = true;
    while (g_head) {
        rl_req_t *r = g_head;
        g_head = r->next;
        free(r->text);
        free(r);
        g_pending--;
    }
    g_tail = NULL;
    for (rl_req_t *r = g_running_list; r; r = r->rnext)
        if (!uv_is_closing((uv_handle_t *)&r->tcp))
            uv_close((uv_handle_t *)&r->tcp, on_close);
}
