/* flvload.c — cascade-flvload, an HTTP-FLV load viewer for benches: one
 * process, one libuv loop, N TCP connections each reading one FLV stream
 * (a GET of an http:// URL), the way flv.js or ffplay would, without
 * decoding. What a viewer sees is counted: bytes, FLV tags (video, audio,
 * key frames), stalls (no video tag for --stall-ms of wall time) and gaps
 * (a video timestamp more than --gap-ms after the previous one, or before
 * it), and connections the server ended. Used by bench/gb-fanout.sh; not a
 * test, never installed.
 *
 * URLs: --url URL for every viewer, or --url-file FILE (one URL a line;
 * viewer i reads line i mod count). IPv4 literal hosts only ("localhost" is
 * taken as 127.0.0.1). The response may be a plain body that ends with the
 * connection or chunked (Transfer-Encoding: chunked).
 *
 * Output: one JSON line a second on stdout (cumulative counts and the
 * second's rate), then a summary line ("summary":true). One receive buffer
 * for the whole loop: the parsers keep only a few bytes per viewer. */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <uv.h>

#define HEAD_MAX 8192
#define TICK_MS 10
#define MAX_URLS 100000

enum vstate { V_IDLE, V_CONNECTING, V_HEAD, V_BODY, V_ENDED, V_FAILED };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_DONE };
enum flv_state { FLV_FILE_HDR, FLV_TAG_HDR, FLV_TAG_BODY };

typedef struct {
    char host[128];
    uint16_t port;
    char path[1024];
    struct sockaddr_in addr;
} url_t;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    int idx;
    const url_t *url;
    enum vstate st;
    char *req;
    uint64_t start_ms;          /* loop time the connect began */
    /* the response head, then the body decoders */
    char head[HEAD_MAX];
    size_t head_len;
    bool chunked;
    enum chunk_state ch;
    uint64_t ch_left;
    char ch_line[32];
    size_t ch_line_len;
    enum flv_state flv;
    uint8_t hb[13];
    size_t hb_len;
    uint32_t tag_left;          /* body bytes + PreviousTagSize still to come */
    uint8_t tag_type;
    uint32_t tag_ts;
    uint32_t tag_pos;           /* bytes of the body seen so far (for its first two) */
    uint8_t body0, body1;
    /* counts */
    uint64_t bytes, video, audio, keys;
    bool have_video, have_key, in_stall;
    uint32_t last_vts;
    uint64_t last_video_ms;
    uint64_t first_key_ms;      /* ms from start_ms to the first key frame tag; 0: none */
    uint64_t stalls, stall_ms, gaps;
    bool closed_by_server;
    char why[64];
} viewer_t;

static struct {
    int n;
    int ramp_ms, duration_s, stall_ms, gap_ms;
    const char *token;
    bool quiet;
} cfg = {.n = 10, .ramp_ms = 2000, .duration_s = 30, .stall_ms = 1000, .gap_ms = 200};

static uv_loop_t *loop;
static viewer_t *viewers;
static url_t *urls;
static int nurls;
static int next_start;
static uint64_t t0;             /* loop time of the first join */
static uint64_t all_key_ms;     /* ms from t0 until every viewer had a key frame; 0: not yet */
static int nkeyed;
static uv_timer_t tick;
static uint64_t last_report_ms, last_report_bytes;
static int report_sec;
static char rbuf[1 << 16];
static bool stopping;

static void fail(viewer_t *v, const char *why);

static int parse_url(const char *s, url_t *u)
{
    if (strncmp(s, "http://", 7) != 0) return -1;
    s += 7;
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    char hp[128];
    if (hl == 0 || hl >= sizeof hp) return -1;
    memcpy(hp, s, hl);
    hp[hl] = 0;
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    char *colon = strrchr(hp, ':');
    unsigned port = 80;
    if (colon) {
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (*end || p == 0 || p > 65535) return -1;
        port = (unsigned)p;
        *colon = 0;
    }
    snprintf(u->host, sizeof u->host, "%s", hp);
    u->port = (uint16_t)port;
    const char *ip = strcmp(hp, "localhost") == 0 ? "127.0.0.1" : hp;
    return uv_ip4_addr(ip, (int)port, &u->addr) == 0 ? 0 : -1;
}

static int load_urls(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[2048];
    while (fgets(line, sizeof line, f) && nurls < MAX_URLS) {
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1])) line[--l] = 0;
        if (!l || line[0] == '#') continue;
        url_t *nu = realloc(urls, (size_t)(nurls + 1) * sizeof *urls);
        if (!nu) break;
        urls = nu;
        if (parse_url(line, &urls[nurls]) != 0) {
            fprintf(stderr, "flvload: bad URL '%s' (http://IPv4:port/path)\n", line);
            fclose(f);
            return -1;
        }
        nurls++;
    }
    fclose(f);
    return nurls > 0 ? 0 : -1;
}

/* ---- FLV: tags counted, never assembled ---- */

static void on_tag(viewer_t *v)
{
    uint64_t now = uv_now(loop);
    if (v->tag_type == 8) {
        v->audio++;
        return;
    }
    if (v->tag_type != 9) return;
    /* frame type: the upper nibble (enhanced RTMP: its low 3 bits under the
     * IsExHeader flag); AVC packet type 0 is the sequence header, not a frame */
    unsigned ftype = (v->body0 >> 4) & 7;
    bool ex = v->body0 & 0x80;
    bool seqhdr = ex ? (v->body0 & 0x0f) == 0 : ((v->body0 & 0x0f) == 7 && v->body1 != 1); /* 0 header, 2 end */
    if (seqhdr) return;
    v->video++;
    if (ftype == 1) {
        v->keys++;
        if (!v->have_key) {
            v->have_key = true;
            v->first_key_ms = now - v->start_ms + 1;
            if (++nkeyed == cfg.n && !all_key_ms) all_key_ms = now - t0;
        }
    }
    if (v->have_video && (v->tag_ts < v->last_vts || v->tag_ts - v->last_vts > (uint32_t)cfg.gap_ms)) v->gaps++;
    if (v->in_stall) v->stall_ms += now - v->last_video_ms;
    v->have_video = true;
    v->last_vts = v->tag_ts;
    v->last_video_ms = now;
    v->in_stall = false;
}

static int flv_feed(viewer_t *v, const uint8_t *p, size_t n)
{
    while (n) {
        if (v->flv == FLV_FILE_HDR || v->flv == FLV_TAG_HDR) {
            size_t need = v->flv == FLV_FILE_HDR ? 13 : 11;
            size_t take = need - v->hb_len < n ? need - v->hb_len : n;
            memcpy(v->hb + v->hb_len, p, take);
            v->hb_len += take;
            p += take;
            n -= take;
            if (v->hb_len < need) break;
            v->hb_len = 0;
            if (v->flv == FLV_FILE_HDR) {
                if (memcmp(v->hb, "FLV", 3) != 0) return -1;
                v->flv = FLV_TAG_HDR;
                continue;
            }
            v->tag_type = v->hb[0] & 0x1f;
            uint32_t size = (uint32_t)v->hb[1] << 16 | (uint32_t)v->hb[2] << 8 | v->hb[3];
            v->tag_ts = (uint32_t)v->hb[7] << 24 | (uint32_t)v->hb[4] << 16 | (uint32_t)v->hb[5] << 8 | v->hb[6];
            v->tag_left = size + 4;
            v->tag_pos = 0;
            v->body0 = v->body1 = 0;
            v->flv = FLV_TAG_BODY;
            continue;
        }
        size_t take = v->tag_left < n ? v->tag_left : n;
        for (size_t i = 0; i < take && v->tag_pos + i < 2; i++) *(v->tag_pos + i == 0 ? &v->body0 : &v->body1) = p[i];
        v->tag_pos += (uint32_t)take;
        v->tag_left -= (uint32_t)take;
        p += take;
        n -= take;
        if (v->tag_left == 0) {
            on_tag(v);
            v->flv = FLV_TAG_HDR;
        }
    }
    return 0;
}

/* ---- HTTP: the head, then a plain or chunked body ---- */

static int body_feed(viewer_t *v, const uint8_t *p, size_t n)
{
    if (!v->chunked) return flv_feed(v, p, n);
    while (n) {
        switch (v->ch) {
        case CH_SIZE: {
            uint8_t c = *p++;
            n--;
            if (c == '\n') {
                v->ch_line[v->ch_line_len] = 0;
                char *end;
                unsigned long long sz = strtoull(v->ch_line, &end, 16);
                if (end == v->ch_line) return -1;
                v->ch_line_len = 0;
                v->ch_left = sz;
                v->ch = sz ? CH_DATA : CH_DONE;
            } else if (c != '\r') {
                if (v->ch_line_len + 1 >= sizeof v->ch_line) return -1;
                v->ch_line[v->ch_line_len++] = (char)c;
            }
            break;
        }
        case CH_DATA: {
            size_t take = v->ch_left < n ? (size_t)v->ch_left : n;
            if (flv_feed(v, p, take) != 0) return -1;
            p += take;
            n -= take;
            v->ch_left -= take;
            if (!v->ch_left) v->ch = CH_DATA_CRLF;
            break;
        }
        case CH_DATA_CRLF:
            if (*p == '\n') v->ch = CH_SIZE;
            p++;
            n--;
            break;
        case CH_DONE:
            return 0;
        }
    }
    return 0;
}

static int head_feed(viewer_t *v, const uint8_t *p, size_t n)
{
    size_t take = HEAD_MAX - 1 - v->head_len < n ? HEAD_MAX - 1 - v->head_len : n;
    memcpy(v->head + v->head_len, p, take);
    size_t old = v->head_len;
    v->head_len += take;
    v->head[v->head_len] = 0;
    char *end = strstr(v->head, "\r\n\r\n");
    if (!end) {
        if (v->head_len >= HEAD_MAX - 1) {
            fail(v, "response head too long");
            return -1;
        }
        return 0;
    }
    size_t head_end = (size_t)(end - v->head) + 4;
    int status = 0;
    if (sscanf(v->head, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        char why[64];
        snprintf(why, sizeof why, "HTTP status %d", status);
        fail(v, why);
        return -1;
    }
    for (char *l = strstr(v->head, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "transfer-encoding:", 18) == 0) {
            char *val = l + 20;
            char *eol = strstr(val, "\r\n");
            for (char *q = val; eol && q + 7 <= eol; q++)
                if (strncasecmp(q, "chunked", 7) == 0) v->chunked = true;
        }
    v->st = V_BODY;
    size_t rest_at = head_end - old; /* where the body starts in p */
    return rest_at < n ? body_feed(v, p + rest_at, n - rest_at) : 0;
}

/* ---- connections ---- */

static void on_close(uv_handle_t *h) { (void)h; }

static void close_viewer(viewer_t *v)
{
    if (!uv_is_closing((uv_handle_t *)&v->tcp)) uv_close((uv_handle_t *)&v->tcp, on_close);
}

static void fail(viewer_t *v, const char *why)
{
    if (v->st == V_FAILED || v->st == V_ENDED) return;
    bool ended = v->st == V_BODY;
    v->st = ended ? V_ENDED : V_FAILED;
    v->closed_by_server = ended;
    snprintf(v->why, sizeof v->why, "%s", why);
    if (!cfg.quiet && !stopping) fprintf(stderr, "flvload: viewer %d: %s\n", v->idx, why);
    close_viewer(v);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    viewer_t *v = s->data;
    if (n < 0) {
        fail(v, n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        return;
    }
    if (n == 0 || v->st == V_ENDED || v->st == V_FAILED) return;
    v->bytes += (uint64_t)n;
    const uint8_t *p = (const uint8_t *)b->base;
    int rc = v->st == V_HEAD ? head_feed(v, p, (size_t)n) : body_feed(v, p, (size_t)n);
    if (rc != 0) fail(v, "not an FLV stream");
}

static void on_written(uv_write_t *w, int status)
{
    viewer_t *v = w->data;
    if (status < 0) fail(v, uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
    viewer_t *v = c->data;
    if (status < 0) {
        fail(v, uv_strerror(status));
        return;
    }
    v->st = V_HEAD;
    uv_buf_t b = uv_buf_init(v->req, (unsigned)strlen(v->req));
    v->wr.data = v;
    int rc = uv_write(&v->wr, (uv_stream_t *)&v->tcp, &b, 1, on_written);
    if (rc == 0) rc = uv_read_start((uv_stream_t *)&v->tcp, on_alloc, on_read);
    if (rc != 0) fail(v, uv_strerror(rc));
}

static void start_viewer(viewer_t *v)
{
    uv_tcp_init(loop, &v->tcp); /* first: every started viewer has a handle to close */
    v->tcp.data = v;
    char auth[600] = "";
    if (cfg.token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", cfg.token);
    size_t cap = strlen(v->url->path) + strlen(v->url->host) + strlen(auth) + 128;
    v->req = malloc(cap);
    if (!v->req) {
        v->st = V_FAILED;
        snprintf(v->why, sizeof v->why, "out of memory");
        return;
    }
    snprintf(v->req, cap, "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%sUser-Agent: cascade-flvload\r\nAccept: */*\r\n\r\n",
             v->url->path, v->url->host, v->url->port, auth);
    v->start_ms = uv_now(loop);
    v->st = V_CONNECTING;
    v->conn.data = v;
    int rc = uv_tcp_connect(&v->conn, &v->tcp, (const struct sockaddr *)&v->url->addr, on_connect);
    if (rc != 0) fail(v, uv_strerror(rc));
}

/* ---- the clock: joins, stalls, the per-second line, the end ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(uint64_t now, bool summary)
{
    uint64_t bytes = 0, video = 0, audio = 0, keys = 0, stalls = 0, stall_ms = 0, gaps = 0;
    int reading = 0, ended = 0, failed = 0, stalled_viewers = 0, gapped_viewers = 0, connected = 0;
    for (int i = 0; i < cfg.n; i++) {
        viewer_t *v = &viewers[i];
        bytes += v->bytes;
        video += v->video;
        audio += v->audio;
        keys += v->keys;
        stalls += v->stalls;
        stall_ms += v->stall_ms + (v->in_stall && v->st == V_BODY ? now - v->last_video_ms : 0);
        gaps += v->gaps;
        reading += v->st == V_BODY;
        ended += v->st == V_ENDED;
        failed += v->st == V_FAILED;
        connected += v->st == V_BODY || v->st == V_ENDED;
        stalled_viewers += v->stalls > 0;
        gapped_viewers += v->gaps > 0;
    }
    if (!summary) {
        double dt = (double)(now - last_report_ms) / 1000.0;
        double mbps = dt > 0 ? (double)(bytes - last_report_bytes) * 8 / 1e6 / dt : 0;
        printf("{\"t\":%d,\"reading\":%d,\"ended\":%d,\"failed\":%d,\"bytes\":%" PRIu64 ",\"video\":%" PRIu64
               ",\"audio\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"stalls\":%" PRIu64 ",\"stall_ms\":%" PRIu64
               ",\"gaps\":%" PRIu64 ",\"mbps\":%.3f}\n",
               report_sec, reading, ended, failed, bytes, video, audio, keys, stalls, stall_ms, gaps, mbps);
        fflush(stdout);
        last_report_ms = now;
        last_report_bytes = bytes;
        return;
    }
    uint64_t *ks = calloc((size_t)cfg.n, sizeof *ks);
    int nk = 0;
    for (int i = 0; ks && i < cfg.n; i++)
        if (viewers[i].first_key_ms) ks[nk++] = viewers[i].first_key_ms - 1;
    if (ks) qsort(ks, (size_t)nk, sizeof *ks, cmp_u64);
    double secs = (double)(now - t0) / 1000.0;
    printf("{\"summary\":true,\"viewers\":%d,\"connected\":%d,\"keyframed\":%d,\"reading_at_end\":%d,\"ended\":%d,"
           "\"failed\":%d,\"bytes\":%" PRIu64 ",\"video\":%" PRIu64 ",\"audio\":%" PRIu64 ",\"stalls\":%" PRIu64
           ",\"stall_ms\":%" PRIu64 ",\"stalled_viewers\":%d,\"gaps\":%" PRIu64 ",\"gapped_viewers\":%d",
           cfg.n, connected, nk, reading, ended, failed, bytes, video, audio, stalls, stall_ms, stalled_viewers, gaps,
           gapped_viewers);
    if (nk) printf(",\"keyframe_ms_p50\":%" PRIu64 ",\"keyframe_ms_p99\":%" PRIu64, ks[nk / 2], ks[(nk * 99) / 100]);
    if (all_key_ms) printf(",\"all_keyframed_ms\":%" PRIu64, all_key_ms);
    printf(",\"client_cpu_pct\":%.1f}\n", secs > 0 ? cpu_seconds() * 100 / secs : 0);
    free(ks);
    for (int i = 0, shown = 0; i < cfg.n && shown < 5; i++)
        if (viewers[i].why[0] && !cfg.quiet) {
            fprintf(stderr, "flvload: viewer %d ended: %s\n", i, viewers[i].why);
            shown++;
        }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_now(loop);
    while (next_start < cfg.n &&
           (cfg.ramp_ms == 0 || now - t0 >= (uint64_t)cfg.ramp_ms * (uint64_t)next_start / (uint64_t)cfg.n))
        start_viewer(&viewers[next_start++]);
    for (int i = 0; i < next_start; i++) {
        viewer_t *v = &viewers[i];
        if (v->st == V_BODY && v->have_video && !v->in_stall && now - v->last_video_ms >= (uint64_t)cfg.stall_ms) {
            v->in_stall = true;
            v->stalls++;
        }
        /* the stalled time is added when the stall ends (on_tag), or by report() */
    }
    if (now - t0 >= (uint64_t)(report_sec + 1) * 1000) {
        report_sec++;
        report(now, false);
    }
    if (now - t0 >= (uint64_t)cfg.duration_s * 1000) {
        stopping = true;
        report(now, true);
        for (int i = 0; i < next_start; i++) close_viewer(&viewers[i]);
        uv_close((uv_handle_t *)&tick, NULL);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cascade-flvload (--url URL | --url-file FILE) [options]\n"
               "  --url URL            the FLV stream every viewer reads (http://IPv4:port/path)\n"
               "  --url-file FILE      one URL a line; viewer i reads line i mod count\n"
               "  -n, --viewers N      viewers (10)\n"
               "  --token T            Authorization: Bearer T\n"
               "  --ramp MS            spread the joins over MS milliseconds (2000; 0: all at once)\n"
               "  --duration S         run S seconds from the first join, then summarise (30)\n"
               "  --stall-ms MS        no video tag for this long counts a stall (1000)\n"
               "  --gap-ms MS          a video timestamp step above this counts a gap (200)\n"
               "  --quiet              no per-viewer failure lines on stderr\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},      {"url-file", required_argument, 0, 'f'},
        {"viewers", required_argument, 0, 'n'},  {"token", required_argument, 0, 't'},
        {"ramp", required_argument, 0, 'r'},     {"duration", required_argument, 0, 'd'},
        {"stall-ms", required_argument, 0, 's'}, {"gap-ms", required_argument, 0, 'g'},
        {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *url = NULL, *url_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'f': url_file = optarg; break;
        case 'n': cfg.n = atoi(optarg); break;
        case 't': cfg.token = optarg; break;
        case 'r': cfg.ramp_ms = atoi(optarg); break;
        case 'd': cfg.duration_s = atoi(optarg); break;
        case 's': cfg.stall_ms = atoi(optarg); break;
        case 'g': cfg.gap_ms = atoi(optarg); break;
        case 'q': cfg.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if ((!url == !url_file) || cfg.n < 1 || cfg.ramp_ms < 0 || cfg.duration_s < 1 || cfg.stall_ms < 1 ||
        cfg.gap_ms < 1) {
        usage(stderr);
        return 2;
    }
    if (url) {
        urls = calloc(1, sizeof *urls);
        if (!urls || parse_url(url, &urls[0]) != 0) {
            fprintf(stderr, "flvload: bad URL '%s' (http://IPv4:port/path)\n", url);
            return 2;
        }
        nurls = 1;
    } else if (load_urls(url_file) != 0) {
        fprintf(stderr, "flvload: no usable URL in %s\n", url_file);
        return 2;
    }
    viewers = calloc((size_t)cfg.n, sizeof *viewers);
    if (!viewers) return 1;
    for (int i = 0; i < cfg.n; i++) {
        viewers[i].idx = i;
        viewers[i].url = &urls[i % nurls];
    }
    loop = uv_default_loop();
    uv_update_time(loop);
    t0 = last_report_ms = uv_now(loop);
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 0, TICK_MS);
    uv_run(loop, UV_RUN_DEFAULT);
    for (int i = 0; i < cfg.n; i++) free(viewers[i].req);
    free(viewers);
    free(urls);
    uv_loop_close(loop);
    return 0;
}
