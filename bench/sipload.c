/* sipload.c — an authenticated-REGISTER load generator over TLS, TCP or UDP.
 *
 * Runs the transaction of sipp's register-auth.xml (REGISTER, 401, REGISTER
 * with a Digest answer, 200) for the AoRs user0..user<N-1>, in turn, at a
 * fixed offered rate with at most W transactions in flight, over ONE
 * connection (tls: or tcp:) or one UDP socket. It exists because Debian's sipp
 * has no TLS: sipp over TCP into stunnel costs more CPU than the servers it
 * measures (docs/benchmarks.md, "Authenticated REGISTER over TLS").
 *
 *   sipload tls:127.0.0.1:5061 --ca ca.pem --rate 1000 --duration 10 \
 *           --users 10000 --window 3000 [--auth-user bench] [--password secret]
 *
 * Prints one line a second and a `final` line (key=value words):
 * attempted, ok, failed (a final answer other than 200 where 200 belongs, a
 * 401 that cannot be answered, or no answer in 32 s), retrans (UDP Timer A
 * resends, RFC 3261 17.1.2.2), latency p50/p99 (first REGISTER sent to 200
 * received) and achieved/s (ok over the time from the first send to the last
 * answer). Exit 0 when every attempt ended in 200, 1 when some did not, 2 when
 * it could not run (connect, TLS verification, arguments). --warmup S first
 * runs S seconds at the same rate over the same connection, from the same
 * first AoR, unmeasured: the measured part then renews bindings (a registrar's
 * steady state) instead of creating them. Its end is the line `warmed ...`
 * (its own counts), then one quiet second, then the measured part, whose
 * counts alone are in the `second` and `final` lines. --hold S keeps the
 * connection open S seconds after the final line: a server drops the
 * bindings of a closed connection, and a test may want to look at them.
 *
 * Single-threaded on libuv. TLS is OpenSSL 3 over memory BIOs, verifying the
 * given CA and the host name (or IP address) of the target. Everything a
 * transaction needs lives in a slot of a table sized by the window, so the
 * steady state allocates nothing: the slot's index and generation are in the
 * Call-ID, which is how a response finds its transaction. Parsing of what the
 * server sends is minimal and bounded: a message larger than MAX_MSG or a
 * header block without an end within it closes the connection (every
 * transaction in flight then fails) rather than growing a buffer. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#define MAX_MSG 16384        /* a whole SIP message we accept from the server */
#define REQ_MAX 2048         /* one REGISTER we send (kept per slot for UDP resends) */
#define FIELD_MAX 256        /* realm, nonce, opaque copied out of a challenge */
#define T1_MS 500            /* RFC 3261 17.1.2.2 Timer A start */
#define T2_MS 4000           /* ... and its cap for non-INVITE */
#define TIMER_B_MS 32000     /* 64*T1: no final answer to one request in this time: failed */
#define SCAN_MS 50           /* how often resends and timeouts are looked at */
#define HIST_SUB 512         /* latency histogram: 512 steps per power of two above 1024 us */
#define HIST_BUCKETS (1024 + 32 * HIST_SUB)

enum proto { P_UDP, P_TCP, P_TLS };
enum slot_state { S_FREE, S_WAIT_401, S_WAIT_200 };

/* One transaction in flight: the REGISTER pair of one AoR. */
struct slot {
    enum slot_state state;
    uint32_t gen;         /* bumped at each reuse; in the Call-ID, so late answers miss */
    uint32_t user;        /* AoR index */
    uint64_t started_us;  /* first REGISTER sent */
    uint64_t sent_ms;     /* current request (re)sent */
    uint64_t req_first_ms;/* current request first sent: Timer B counts from here */
    uint32_t interval_ms; /* Timer A */
    uint16_t req_len;     /* of its request in load.reqs (UDP resends) */
};

/* Latency histogram in microseconds: exact below 1024, ~0.2% steps above. */
struct hist {
    uint64_t n;
    uint64_t b[HIST_BUCKETS];
};

struct counters {
    uint64_t attempted, ok, failed, retrans;
};

struct opts {
    enum proto proto;
    char host[256];
    int port;
    const char *ca;
    const char *tls_name; /* host name or IP checked in the certificate */
    const char *domain;   /* From/To/Request-URI domain; default the target host */
    const char *auth_user;/* digest user; NULL: the AoR's user */
    const char *password;
    const char *prefix;
    double rate;
    double duration;
    uint32_t users;
    uint32_t window;
    double hold;          /* seconds the connection stays open after the final line */
    double warmup;        /* seconds of unmeasured load first (0: none) */
    bool quiet;
};

/* Output to a stream: a buffer filling while the other one is being written. */
struct outbuf {
    char *p;
    size_t len, cap;
};

struct load {
    struct opts o;
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_udp_t udp;
    uv_connect_t conn_req;
    uv_timer_t tick, scan, second, hold, gap;
    bool warming; /* in the --warmup part */
    struct sockaddr_storage peer;
    char local_ip[INET6_ADDRSTRLEN];
    int local_port;
    bool ready;   /* connected (and TLS handshake done) */
    bool closing; /* connection gone: nothing more is sent */
    bool done_sending;
    bool stopped; /* every handle closed: the loop ends */
    /* TLS */
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
    /* stream output: out[cur] fills; out[!cur] is in uv_write while writing */
    struct outbuf out[2];
    int cur;
    bool writing;
    uv_write_t wreq;
    /* stream input (plaintext) */
    char in[MAX_MSG * 2];
    size_t in_len;
    /* TLS plaintext gathered over one loop turn: one SSL_write (a few records) per turn */
    struct outbuf plain;
    /* transactions; the slots stay small (scanned every SCAN_MS) and the
     * requests sit apart: one per slot over UDP (resends), one scratch otherwise */
    struct slot *slots;
    char *reqs;
    uint32_t *free_list;
    uint32_t free_n;
    uint32_t inflight;
    uint32_t next_user;
    uint64_t t0_us, last_done_us;
    struct counters tot, sec;
    struct hist h_tot, h_sec;
    uint32_t seconds;
    EVP_MD *md5;
    EVP_MD_CTX *mdctx;
    char tag[16];
    int exit_code;
};

static uint64_t now_us(void) { return uv_hrtime() / 1000; }
static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

/* ---- latency histogram ---- */

static size_t hist_index(uint64_t v)
{
    if (v < 1024)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v); /* >= 10 */
    uint64_t mant = v >> (e - 9);    /* 512..1023 */
    size_t i = 1024 + (size_t)(e - 10) * HIST_SUB + (size_t)(mant - 512);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static uint64_t hist_value(size_t i)
{
    if (i < 1024)
        return i;
    size_t e = (i - 1024) / HIST_SUB + 10, mant = (i - 1024) % HIST_SUB + 512;
    return (uint64_t)mant << (e - 9);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
}

/* The value below which fraction q of the samples lie, in ms; 0 when empty. */
static double hist_quantile_ms(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > want)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)hist_value(HIST_BUCKETS - 1) / 1000.0;
}

/* ---- digest (RFC 2617 / RFC 3261 22.4, MD5) ---- */

static void md5_hex(struct load *L, const char *parts[], size_t n, char out[33])
{
    unsigned char d[16];
    unsigned int dl = 0;
    EVP_DigestInit_ex(L->mdctx, L->md5, NULL);
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(L->mdctx, parts[i], strlen(parts[i]));
    EVP_DigestFinal_ex(L->mdctx, d, &dl);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

struct challenge {
    char realm[FIELD_MAX], nonce[FIELD_MAX], opaque[FIELD_MAX];
    bool has_opaque, qop_auth, md5_ok;
};

/* Copy param NAME's value (quoted or token) from a challenge into OUT; false when absent or too long. */
static bool chal_param(const char *s, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < len; i++) {
        bool at_start = i == 0 || s[i - 1] == ' ' || s[i - 1] == ',' || s[i - 1] == '\t';
        if (!at_start || strncasecmp(s + i, name, nl) != 0)
            continue;
        size_t j = i + nl;
        while (j < len && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j >= len || s[j] != '=')
            continue;
        j++;
        while (j < len && (s[j] == ' ' || s[j] == '\t'))
            j++;
        size_t k = j, end;
        if (j < len && s[j] == '"') {
            k = ++j;
            while (k < len && s[k] != '"')
                k++;
            end = k;
        } else {
            while (k < len && s[k] != ',' && s[k] != ' ' && s[k] != '\t')
                k++;
            end = k;
        }
        if (end - j >= cap)
            return false;
        memcpy(out, s + j, end - j);
        out[end - j] = '\0';
        return true;
    }
    return false;
}

static bool parse_challenge(const char *s, size_t len, struct challenge *c)
{
    memset(c, 0, sizeof *c);
    if (len < 7 || strncasecmp(s, "Digest ", 7) != 0)
        return false;
    s += 7;
    len -= 7;
    if (!chal_param(s, len, "realm", c->realm, sizeof c->realm) ||
        !chal_param(s, len, "nonce", c->nonce, sizeof c->nonce))
        return false;
    c->has_opaque = chal_param(s, len, "opaque", c->opaque, sizeof c->opaque);
    char alg[32], qop[64];
    c->md5_ok = !chal_param(s, len, "algorithm", alg, sizeof alg) || strcasecmp(alg, "MD5") == 0;
    if (chal_param(s, len, "qop", qop, sizeof qop)) {
        /* qop is a list ("auth,auth-int"): look for the token auth. */
        for (char *t = strtok(qop, ", \t"); t; t = strtok(NULL, ", \t"))
            if (strcasecmp(t, "auth") == 0)
                c->qop_auth = true;
    }
    return true;
}

/* ---- sending ---- */

static void load_fail_all(struct load *L, const char *why);
static void finish(struct load *L);

static void on_write(uv_write_t *req, int status);

static void stream_flush(struct load *L)
{
    if (L->writing || L->closing || L->out[L->cur].len == 0)
        return;
    struct outbuf *b = &L->out[L->cur];
    uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->len);
    L->cur ^= 1;
    L->out[L->cur].len = 0;
    L->writing = true;
    int rc = uv_write(&L->wreq, (uv_stream_t *)&L->tcp, &ub, 1, on_write);
    if (rc != 0) {
        L->writing = false;
        load_fail_all(L, uv_strerror(rc));
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct load *L = req->data;
    L->writing = false;
    if (status != 0) {
        load_fail_all(L, uv_strerror(status));
        return;
    }
    stream_flush(L);
}

/* Append to B, growing it to what the window needs once; then it stays. */
static int out_append(struct load *L, struct outbuf *b, const void *p, size_t n)
{
    (void)L;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Move what OpenSSL wrote into the write BIO to the socket buffer. */
static int tls_drain_wbio(struct load *L)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(L->wbio, buf, sizeof buf)) > 0)
        if (out_append(L, &L->out[L->cur], buf, (size_t)n) != 0)
            return -1;
    return 0;
}

static void send_bytes(struct load *L, const char *p, size_t n)
{
    if (L->closing)
        return;
    if (L->o.proto == P_UDP) {
        uv_buf_t ub = uv_buf_init((char *)p, (unsigned)n);
        /* A full socket buffer drops it like the network would: Timer A resends. */
        (void)uv_udp_try_send(&L->udp, &ub, 1, NULL);
        return;
    }
    if (out_append(L, L->o.proto == P_TLS ? &L->plain : &L->out[L->cur], p, n) != 0) {
        load_fail_all(L, "cannot queue a request");
        return;
    }
    if (L->o.proto == P_TCP)
        stream_flush(L);
}

/* End of a loop turn's sending over TLS: encrypt what was gathered and queue it. */
static void tls_flush_plain(struct load *L)
{
    if (L->o.proto != P_TLS || L->closing || L->plain.len == 0)
        return;
    size_t off = 0;
    while (off < L->plain.len) {
        /* SSL_write takes an int and cuts records itself (16 KiB each). */
        size_t k = L->plain.len - off < (1u << 20) ? L->plain.len - off : (1u << 20);
        if (SSL_write(L->ssl, L->plain.p + off, (int)k) <= 0) {
            load_fail_all(L, "TLS write error");
            return;
        }
        off += k;
    }
    L->plain.len = 0;
    if (tls_drain_wbio(L) != 0) {
        load_fail_all(L, "cannot queue a request");
        return;
    }
    stream_flush(L);
}

static char *slot_req(struct load *L, uint32_t i)
{
    return L->o.proto == P_UDP ? L->reqs + (size_t)i * REQ_MAX : L->reqs;
}

static const char *transport_name(enum proto p)
{
    return p == P_UDP ? "UDP" : p == P_TCP ? "TCP" : "TLS";
}

/* Write the REGISTER of slot I (CSeq 1 without, CSeq 2 with AUTH) into the slot and send it. */
static bool send_register(struct load *L, uint32_t i, int cseq, const char *auth)
{
    struct slot *s = &L->slots[i];
    char *req = slot_req(L, i);
    const char *tp = L->o.proto == P_TLS ? ";transport=tls" : L->o.proto == P_TCP ? ";transport=tcp" : "";
    int n = snprintf(req, REQ_MAX,
                     "REGISTER sip:%s SIP/2.0\r\n"
                     "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK-sl%" PRIu32 "x%" PRIu32 "x%d;rport\r\n"
                     "From: <sip:%s%" PRIu32 "@%s>;tag=%s%" PRIu32 "\r\n"
                     "To: <sip:%s%" PRIu32 "@%s>\r\n"
                     "Call-ID: sl-%" PRIu32 "-%" PRIu32 "-%s\r\n"
                     "CSeq: %d REGISTER\r\n"
                     "Contact: <sip:%s%" PRIu32 "@%s:%d%s>\r\n"
                     "%s"
                     "Max-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: sipload\r\nContent-Length: 0\r\n\r\n",
                     L->o.domain, transport_name(L->o.proto), L->local_ip, L->local_port, i, s->gen, cseq,
                     L->o.prefix, s->user, L->o.domain, L->tag, i, L->o.prefix, s->user, L->o.domain, i, s->gen,
                     L->tag, cseq, L->o.prefix, s->user, L->local_ip, L->local_port, tp, auth ? auth : "");
    if (n < 0 || (size_t)n >= REQ_MAX)
        return false;
    s->req_len = (uint16_t)n;
    s->sent_ms = s->req_first_ms = now_ms();
    s->interval_ms = T1_MS;
    send_bytes(L, req, (size_t)n);
    return true;
}

/* ---- transaction ends ---- */

static void slot_release(struct load *L, uint32_t i)
{
    L->slots[i].state = S_FREE;
    L->slots[i].gen++;
    L->free_list[L->free_n++] = i;
    L->inflight--;
}

static void slot_ok(struct load *L, uint32_t i)
{
    uint64_t t = now_us(), lat = t - L->slots[i].started_us;
    hist_add(&L->h_tot, lat);
    hist_add(&L->h_sec, lat);
    L->tot.ok++;
    L->sec.ok++;
    L->last_done_us = t;
    slot_release(L, i);
}

static void slot_failed(struct load *L, uint32_t i)
{
    L->tot.failed++;
    L->sec.failed++;
    L->last_done_us = now_us();
    slot_release(L, i);
}

/* Start one transaction if a slot is free; false when the window is full. */
static bool start_one(struct load *L)
{
    if (L->free_n == 0)
        return false;
    uint32_t i = L->free_list[--L->free_n];
    struct slot *s = &L->slots[i];
    L->inflight++;
    s->user = L->next_user;
    L->next_user = (L->next_user + 1) % L->o.users;
    s->state = S_WAIT_401;
    s->started_us = now_us();
    L->tot.attempted++;
    L->sec.attempted++;
    if (!send_register(L, i, 1, NULL))
        slot_failed(L, i);
    return true;
}

/* ---- the answer to the 401 ---- */

static void answer_challenge(struct load *L, uint32_t i, const char *hv, size_t hl)
{
    struct slot *s = &L->slots[i];
    struct challenge c;
    if (!parse_challenge(hv, hl, &c) || !c.md5_ok) {
        slot_failed(L, i);
        return;
    }
    char user[128], uri[300], ha1[33], ha2[33], resp[33], cnonce[24], auth[1200];
    if (L->o.auth_user)
        snprintf(user, sizeof user, "%s", L->o.auth_user);
    else
        snprintf(user, sizeof user, "%s%" PRIu32, L->o.prefix, s->user);
    snprintf(uri, sizeof uri, "sip:%s", L->o.domain);
    snprintf(cnonce, sizeof cnonce, "%08" PRIx32 "%08" PRIx32, i, s->gen);
    const char *p1[] = {user, ":", c.realm, ":", L->o.password};
    md5_hex(L, p1, 5, ha1);
    const char *p2[] = {"REGISTER:", uri};
    md5_hex(L, p2, 2, ha2);
    int n;
    if (c.qop_auth) {
        const char *p3[] = {ha1, ":", c.nonce, ":00000001:", cnonce, ":auth:", ha2};
        md5_hex(L, p3, 7, resp);
        n = snprintf(auth, sizeof auth,
                     "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                     "response=\"%s\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"%s\"%s%s%s\r\n",
                     user, c.realm, c.nonce, uri, resp, cnonce, c.has_opaque ? ", opaque=\"" : "",
                     c.has_opaque ? c.opaque : "", c.has_opaque ? "\"" : "");
    } else {
        const char *p3[] = {ha1, ":", c.nonce, ":", ha2};
        md5_hex(L, p3, 5, resp);
        n = snprintf(auth, sizeof auth,
                     "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                     "response=\"%s\", algorithm=MD5%s%s%s\r\n",
                     user, c.realm, c.nonce, uri, resp, c.has_opaque ? ", opaque=\"" : "",
                     c.has_opaque ? c.opaque : "", c.has_opaque ? "\"" : "");
    }
    if (n < 0 || (size_t)n >= sizeof auth) {
        slot_failed(L, i);
        return;
    }
    s->state = S_WAIT_200;
    if (!send_register(L, i, 2, auth))
        slot_failed(L, i);
}

/* ---- parsing a response ---- */

/* What on_message needs from a response, as slices into the message. */
struct resp {
    int status;
    const char *callid, *cseq, *chal;
    size_t callid_len, cseq_len, chal_len;
};

static bool hdr_is(const char *line, size_t len, const char *name, const char *compact, size_t *val)
{
    size_t nl = strlen(name), i;
    if (len > nl && strncasecmp(line, name, nl) == 0)
        i = nl;
    else if (compact && len > 1 && (line[0] == compact[0] || line[0] == (compact[0] ^ 0x20)))
        i = 1;
    else
        return false;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= len || line[i] != ':')
        return false;
    i++;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    *val = i;
    return true;
}

/* Parse the status line and the headers of M (LEN bytes, the header block);
 * false when it is no response. */
static bool parse_response(const char *m, size_t len, struct resp *r)
{
    memset(r, 0, sizeof *r);
    if (len < 12 || memcmp(m, "SIP/2.0 ", 8) != 0)
        return false;
    for (int k = 8; k < 11; k++) {
        if (m[k] < '0' || m[k] > '9')
            return false;
        r->status = r->status * 10 + (m[k] - '0');
    }
    const char *p = memchr(m, '\n', len), *end = m + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t ll = (size_t)((nl ? nl : end) - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        size_t v;
        if (hdr_is(line, ll, "Call-ID", "i", &v)) {
            r->callid = line + v;
            r->callid_len = ll - v;
        } else if (hdr_is(line, ll, "CSeq", NULL, &v)) {
            r->cseq = line + v;
            r->cseq_len = ll - v;
        } else if (!r->chal && (hdr_is(line, ll, "WWW-Authenticate", NULL, &v) ||
                                hdr_is(line, ll, "Proxy-Authenticate", NULL, &v))) {
            r->chal = line + v;
            r->chal_len = ll - v;
        }
        p = nl;
    }
    return r->callid && r->cseq;
}

/* "sl-<slot>-<gen>-<tag>" -> slot and gen; false for any other Call-ID. */
static bool callid_slot(struct load *L, const char *s, size_t len, uint32_t *slot, uint32_t *gen)
{
    char buf[64];
    if (len < 4 || len >= sizeof buf || memcmp(s, "sl-", 3) != 0)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *e;
    errno = 0;
    unsigned long a = strtoul(buf + 3, &e, 10);
    if (*e != '-' || errno)
        return false;
    unsigned long b = strtoul(e + 1, &e, 10);
    if (*e != '-' || errno || strcmp(e + 1, L->tag) != 0 || a >= L->o.window)
        return false;
    *slot = (uint32_t)a;
    *gen = (uint32_t)b;
    return true;
}

static void on_message(struct load *L, const char *m, size_t len)
{
    struct resp r;
    uint32_t i, gen;
    if (!parse_response(m, len, &r) || !callid_slot(L, r.callid, r.callid_len, &i, &gen))
        return;
    struct slot *s = &L->slots[i];
    if (s->state == S_FREE || s->gen != gen || r.status < 200)
        return;
    int cseq = 0; /* the digits before " REGISTER" */
    for (size_t k = 0; k < r.cseq_len && k < 9 && r.cseq[k] >= '0' && r.cseq[k] <= '9'; k++)
        cseq = cseq * 10 + (r.cseq[k] - '0');
    if ((s->state == S_WAIT_401 && cseq != 1) || (s->state == S_WAIT_200 && cseq != 2))
        return; /* a resent answer to the previous request */
    if (r.status == 200)
        slot_ok(L, i);
    else if (s->state == S_WAIT_401 && (r.status == 401 || r.status == 407) && r.chal)
        answer_challenge(L, i, r.chal, r.chal_len);
    else
        slot_failed(L, i);
}

/* Find the end of the header block in A..A+N: offset past the blank line, or 0. */
static size_t header_end(const char *a, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (a[i] == '\r' && a[i + 1] == '\n' && a[i + 2] == '\r' && a[i + 3] == '\n')
            return i + 4;
    return 0;
}

/* Content-Length of a header block (compact l too); -1 when missing or bad. */
static long content_length(const char *m, size_t hl)
{
    const char *p = m, *end = m + hl;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = (size_t)((nl ? nl : end) - p), v;
        if (hdr_is(p, ll, "Content-Length", "l", &v)) {
            long n = 0;
            size_t k = v;
            for (; k < ll && p[k] >= '0' && p[k] <= '9'; k++) {
                n = n * 10 + (p[k] - '0');
                if (n > MAX_MSG)
                    return -1;
            }
            return k == v ? -1 : n;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return -1;
}

/* Cut whole messages out of the stream input; -1 on a framing error. */
static int stream_frames(struct load *L)
{
    size_t off = 0;
    while (off < L->in_len) {
        /* keep-alive CRLFs (RFC 5626 4.4.1) between messages */
        if (L->in[off] == '\r' || L->in[off] == '\n') {
            off++;
            continue;
        }
        size_t hl = header_end(L->in + off, L->in_len - off);
        if (hl == 0) {
            if (L->in_len - off > MAX_MSG)
                return -1;
            break;
        }
        long cl = content_length(L->in + off, hl);
        if (cl < 0 || hl + (size_t)cl > MAX_MSG)
            return -1;
        if (L->in_len - off < hl + (size_t)cl)
            break;
        on_message(L, L->in + off, hl);
        off += hl + (size_t)cl;
    }
    memmove(L->in, L->in + off, L->in_len - off);
    L->in_len -= off;
    return 0;
}

/* ---- connection ---- */

static void on_closed(uv_handle_t *h) { (void)h; }

static void stop_all(struct load *L)
{
    if (L->stopped)
        return;
    L->stopped = true;
    uv_close((uv_handle_t *)&L->tick, on_closed);
    uv_close((uv_handle_t *)&L->scan, on_closed);
    uv_close((uv_handle_t *)&L->second, on_closed);
    uv_close((uv_handle_t *)&L->gap, on_closed);
    uv_close((uv_handle_t *)&L->hold, on_closed);
    if (L->o.proto == P_UDP)
        uv_close((uv_handle_t *)&L->udp, on_closed);
    else if (!uv_is_closing((uv_handle_t *)&L->tcp))
        uv_close((uv_handle_t *)&L->tcp, on_closed);
}

/* The connection is gone (or unusable): every transaction in flight fails and no more start. */
static void load_fail_all(struct load *L, const char *why)
{
    if (L->closing)
        return;
    fprintf(stderr, "sipload: connection lost: %s\n", why);
    L->closing = true;
    L->done_sending = true;
    for (uint32_t i = 0; i < L->o.window; i++)
        if (L->slots[i].state != S_FREE)
            slot_failed(L, i);
    if (!L->ready) {
        finish(L); /* the timers never started: nothing else would end the run */
        return;
    }
    if (L->o.proto != P_UDP && !uv_is_closing((uv_handle_t *)&L->tcp))
        uv_close((uv_handle_t *)&L->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *buf)
{
    static char rbuf[65536]; /* one loop, one read at a time */
    (void)h;
    (void)sug;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void ready_now(struct load *L);

static void tls_pump(struct load *L)
{
    if (!L->ready) {
        int rc = SSL_do_handshake(L->ssl);
        if (tls_drain_wbio(L) != 0) {
            load_fail_all(L, "out of memory");
            return;
        }
        stream_flush(L);
        if (rc != 1) {
            int e = SSL_get_error(L->ssl, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                char eb[256];
                long v = SSL_get_verify_result(L->ssl);
                ERR_error_string_n(ERR_get_error(), eb, sizeof eb);
                fprintf(stderr, "sipload: TLS handshake failed: %s (verify: %s)\n", eb,
                        X509_verify_cert_error_string(v));
                L->exit_code = 2;
                load_fail_all(L, "TLS handshake");
            }
            return;
        }
        ready_now(L);
    }
    for (;;) {
        size_t room = sizeof L->in - L->in_len;
        if (room == 0) {
            load_fail_all(L, "a message over the size limit");
            return;
        }
        int n = SSL_read(L->ssl, L->in + L->in_len, (int)room);
        if (n <= 0) {
            int e = SSL_get_error(L->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                break;
            load_fail_all(L, e == SSL_ERROR_ZERO_RETURN ? "TLS close_notify" : "TLS read error");
            return;
        }
        L->in_len += (size_t)n;
        if (stream_frames(L) != 0) {
            load_fail_all(L, "bad framing from the server");
            return;
        }
        if (L->closing)
            return;
    }
    /* The REGISTERs answering the 401s just read, and whatever SSL_read wrote (a key update). */
    tls_flush_plain(L);
    if (!L->closing && tls_drain_wbio(L) == 0)
        stream_flush(L);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct load *L = st->data;
    if (nread < 0) {
        load_fail_all(L, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || L->closing)
        return;
    if (L->o.proto == P_TLS) {
        if (BIO_write(L->rbio, buf->base, (int)nread) != (int)nread) {
            load_fail_all(L, "out of memory");
            return;
        }
        tls_pump(L);
        return;
    }
    size_t n = (size_t)nread, off = 0;
    while (off < n && !L->closing) {
        size_t room = sizeof L->in - L->in_len, k = n - off < room ? n - off : room;
        if (k == 0) {
            load_fail_all(L, "a message over the size limit");
            return;
        }
        memcpy(L->in + L->in_len, buf->base + off, k);
        L->in_len += k;
        off += k;
        if (stream_frames(L) != 0)
            load_fail_all(L, "bad framing from the server");
    }
}

static void on_udp(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned fl)
{
    struct load *L = u->data;
    (void)from;
    if (nread <= 0 || (fl & UV_UDP_PARTIAL))
        return;
    size_t hl = header_end(buf->base, (size_t)nread);
    if (hl)
        on_message(L, buf->base, hl);
}

static void local_addr(struct load *L, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        char ip[INET6_ADDRSTRLEN];
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(L->local_ip, sizeof L->local_ip, "[%.*s]", (int)sizeof ip - 3, ip);
        L->local_port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const void *)ss;
        uv_ip4_name(a, L->local_ip, sizeof L->local_ip);
        L->local_port = ntohs(a->sin_port);
    }
}

static void on_tick(uv_timer_t *t);
static void on_scan(uv_timer_t *t);
static void on_second(uv_timer_t *t);

static void ready_now(struct load *L)
{
    L->ready = true;
    L->t0_us = now_us();
    uv_timer_start(&L->tick, on_tick, 1, 1);
    uv_timer_start(&L->scan, on_scan, SCAN_MS, SCAN_MS);
    uv_timer_start(&L->second, on_second, 1000, 1000);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct load *L = req->data;
    if (status != 0) {
        fprintf(stderr, "sipload: connect: %s\n", uv_strerror(status));
        L->exit_code = 2;
        stop_all(L);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    uv_tcp_getsockname(&L->tcp, (struct sockaddr *)&ss, &sl);
    local_addr(L, &ss);
    uv_tcp_nodelay(&L->tcp, 1);
    uv_read_start((uv_stream_t *)&L->tcp, on_alloc, on_read);
    if (L->o.proto == P_TLS)
        tls_pump(L); /* sends the ClientHello */
    else
        ready_now(L);
}

static int tls_setup(struct load *L)
{
    L->ctx = SSL_CTX_new(TLS_client_method());
    if (!L->ctx)
        return -1;
    SSL_CTX_set_min_proto_version(L->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(L->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(L->ctx, L->o.ca, NULL) != 1) {
        fprintf(stderr, "sipload: cannot load CA file %s\n", L->o.ca);
        return -1;
    }
    L->ssl = SSL_new(L->ctx);
    L->rbio = BIO_new(BIO_s_mem());
    L->wbio = BIO_new(BIO_s_mem());
    if (!L->ssl || !L->rbio || !L->wbio)
        return -1;
    SSL_set_bio(L->ssl, L->rbio, L->wbio);
    SSL_set_connect_state(L->ssl);
    X509_VERIFY_PARAM *vp = SSL_get0_param(L->ssl);
    unsigned char ipbuf[16];
    if (inet_pton(AF_INET, L->o.tls_name, ipbuf) == 1 || inet_pton(AF_INET6, L->o.tls_name, ipbuf) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, L->o.tls_name) != 1)
            return -1;
    } else {
        if (SSL_set1_host(L->ssl, L->o.tls_name) != 1 || SSL_set_tlsext_host_name(L->ssl, L->o.tls_name) != 1)
            return -1;
    }
    return 0;
}

/* ---- timers ---- */

static void print_line(struct load *L, const char *what, const struct counters *c, const struct hist *h,
                       double secs)
{
    printf("%s t=%.1f attempted=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64 " retrans=%" PRIu64
           " inflight=%" PRIu32 " p50_ms=%.2f p99_ms=%.2f achieved_per_s=%.0f\n",
           what, (double)(now_us() - L->t0_us) / 1e6, c->attempted, c->ok, c->failed, c->retrans, L->inflight,
           hist_quantile_ms(h, 0.5), hist_quantile_ms(h, 0.99), secs > 0 ? (double)c->ok / secs : 0);
    fflush(stdout);
}

static void on_hold_end(uv_timer_t *t) { stop_all(t->data); }

static void on_tick(uv_timer_t *t);

/* After the warm-up's quiet second: the measured part starts from the first AoR. */
static void on_gap_end(uv_timer_t *t)
{
    struct load *L = t->data;
    memset(&L->tot, 0, sizeof L->tot);
    memset(&L->sec, 0, sizeof L->sec);
    memset(&L->h_tot, 0, sizeof L->h_tot);
    memset(&L->h_sec, 0, sizeof L->h_sec);
    L->next_user = 0;
    L->last_done_us = 0;
    L->done_sending = false;
    L->t0_us = now_us();
    uv_timer_start(&L->tick, on_tick, 1, 1);
}

static void finish(struct load *L)
{
    double secs = (double)((L->last_done_us > L->t0_us ? L->last_done_us : now_us()) - L->t0_us) / 1e6;
    if (L->warming) {
        print_line(L, "warmed", &L->tot, &L->h_tot, secs);
        if (L->tot.failed || L->tot.ok != L->tot.attempted) L->exit_code = 1;
        L->warming = false;
        uv_timer_stop(&L->tick);
        uv_timer_start(&L->gap, on_gap_end, 1000, 0);
        return;
    }
    print_line(L, "final", &L->tot, &L->h_tot, secs);
    if (L->exit_code == 0 && (L->tot.failed || L->tot.ok != L->tot.attempted || L->tot.attempted == 0))
        L->exit_code = 1;
    if (L->o.hold > 0 && !L->closing) {
        /* Bindings over a stream last as long as its connection: keep it for whoever checks them. */
        uv_timer_stop(&L->tick);
        uv_timer_stop(&L->scan);
        uv_timer_stop(&L->second);
        uv_timer_start(&L->hold, on_hold_end, (uint64_t)(L->o.hold * 1000), 0);
        return;
    }
    stop_all(L);
}

/* Start what the offered rate says is due by now, as far as the window allows. */
static void on_tick(uv_timer_t *t)
{
    struct load *L = t->data;
    double el = (double)(now_us() - L->t0_us) / 1e6;
    if (!L->done_sending && !L->closing) {
        if (el >= (L->warming ? L->o.warmup : L->o.duration)) {
            L->done_sending = true;
        } else {
            uint64_t due = (uint64_t)(el * L->o.rate) + 1;
            /* A full window defers starts; they are made up as slots free (as sipp's -l does). */
            while (L->tot.attempted < due && start_one(L) && !L->closing)
                ;
            tls_flush_plain(L);
        }
    }
    if (L->done_sending && L->inflight == 0)
        finish(L);
}

/* Timer A resends (UDP) and Timer B timeouts, both every SCAN_MS. */
static void on_scan(uv_timer_t *t)
{
    struct load *L = t->data;
    uint64_t ms = now_ms();
    for (uint32_t i = 0; i < L->o.window; i++) {
        struct slot *s = &L->slots[i];
        if (s->state == S_FREE)
            continue;
        if (ms - s->req_first_ms >= TIMER_B_MS) {
            slot_failed(L, i);
            continue;
        }
        if (L->o.proto == P_UDP && ms - s->sent_ms >= s->interval_ms) {
            send_bytes(L, slot_req(L, i), s->req_len);
            s->sent_ms = ms;
            s->interval_ms = s->interval_ms * 2 < T2_MS ? s->interval_ms * 2 : T2_MS;
            L->tot.retrans++;
            L->sec.retrans++;
        }
    }
}

static void on_second(uv_timer_t *t)
{
    struct load *L = t->data;
    L->seconds++;
    if (!L->o.quiet)
        print_line(L, "second", &L->sec, &L->h_sec, 1.0);
    memset(&L->sec, 0, sizeof L->sec);
    memset(&L->h_sec, 0, sizeof L->h_sec);
}

/* ---- setup ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: sipload tls:|tcp:|udp:HOST:PORT [--rate R] [--duration S] [--users N] [--window W]\n"
            "       [--ca FILE] [--tls-name NAME] [--domain D] [--auth-user U] [--password P]\n"
            "       [--prefix user] [--warmup S] [--hold S] [--quiet]\n");
    exit(2);
}

static void parse_target(struct opts *o, const char *t)
{
    if (strncmp(t, "tls:", 4) == 0)
        o->proto = P_TLS;
    else if (strncmp(t, "tcp:", 4) == 0)
        o->proto = P_TCP;
    else if (strncmp(t, "udp:", 4) == 0)
        o->proto = P_UDP;
    else
        usage();
    t += 4;
    const char *colon;
    if (*t == '[') {
        const char *rb = strchr(t, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - t - 1) >= sizeof o->host)
            usage();
        memcpy(o->host, t + 1, (size_t)(rb - t - 1));
        o->host[rb - t - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(t, ':');
        if (!colon || (size_t)(colon - t) >= sizeof o->host)
            usage();
        memcpy(o->host, t, (size_t)(colon - t));
        o->host[colon - t] = '\0';
    }
    o->port = atoi(colon + 1);
    if (o->port <= 0 || o->port > 65535)
        usage();
}

static void parse_args(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){.rate = 100, .duration = 10, .users = 1000, .window = 1000, .password = "secret",
                       .prefix = "user"};
    if (argc < 2)
        usage();
    parse_target(o, argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--rate") == 0)
            o->rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            o->duration = atof(v);
        else if (strcmp(a, "--users") == 0)
            o->users = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--window") == 0)
            o->window = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--ca") == 0)
            o->ca = v;
        else if (strcmp(a, "--tls-name") == 0)
            o->tls_name = v;
        else if (strcmp(a, "--domain") == 0)
            o->domain = v;
        else if (strcmp(a, "--auth-user") == 0)
            o->auth_user = v;
        else if (strcmp(a, "--password") == 0)
            o->password = v;
        else if (strcmp(a, "--hold") == 0)
            o->hold = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = atof(v);
        else if (strcmp(a, "--prefix") == 0)
            o->prefix = v;
        else
            usage();
    }
    if (o->rate <= 0 || o->duration <= 0 || o->warmup < 0 || o->users == 0 || o->window == 0 || o->window > 500000 ||
        strlen(o->prefix) > 64 || strlen(o->password) > 128 || (o->auth_user && strlen(o->auth_user) > 100))
        usage();
    if (o->proto == P_TLS && !o->ca) {
        fprintf(stderr, "sipload: tls: needs --ca FILE (the server's certificate is verified)\n");
        exit(2);
    }
    if (!o->tls_name)
        o->tls_name = o->host;
    if (!o->domain)
        o->domain = o->host;
    if (strlen(o->domain) > 200)
        usage();
}

static int open_transport(struct load *L)
{
    /* Resolved once, before the clock starts: a name (localhost) or a literal. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(L->o.host, NULL, &hints, &ai);
    if (rc != 0 || !ai || ai->ai_addrlen > sizeof L->peer) {
        fprintf(stderr, "sipload: %s: %s\n", L->o.host, rc ? gai_strerror(rc) : "no address");
        if (ai)
            freeaddrinfo(ai);
        return -1;
    }
    memcpy(&L->peer, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (L->peer.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&L->peer)->sin6_port = htons((uint16_t)L->o.port);
    else
        ((struct sockaddr_in *)&L->peer)->sin_port = htons((uint16_t)L->o.port);
    if (L->o.proto == P_UDP) {
        uv_udp_init(L->loop, &L->udp);
        L->udp.data = L;
        if ((rc = uv_udp_connect(&L->udp, (struct sockaddr *)&L->peer)) != 0) {
            fprintf(stderr, "sipload: udp connect: %s\n", uv_strerror(rc));
            return -1;
        }
        struct sockaddr_storage ss;
        int sl = sizeof ss;
        uv_udp_getsockname(&L->udp, (struct sockaddr *)&ss, &sl);
        local_addr(L, &ss);
        uv_udp_recv_start(&L->udp, on_alloc, on_udp);
        ready_now(L);
        return 0;
    }
    if (L->o.proto == P_TLS && tls_setup(L) != 0) {
        ERR_print_errors_fp(stderr);
        return -1;
    }
    uv_tcp_init(L->loop, &L->tcp);
    L->tcp.data = L;
    L->conn_req.data = L;
    L->wreq.data = L;
    rc = uv_tcp_connect(&L->conn_req, &L->tcp, (struct sockaddr *)&L->peer, on_connect);
    if (rc != 0) {
        fprintf(stderr, "sipload: connect: %s\n", uv_strerror(rc));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct load L; /* large (histograms, input buffer): not on the stack */
    parse_args(&L.o, argc, argv);
    L.loop = uv_default_loop();
    L.slots = calloc(L.o.window, sizeof *L.slots);
    L.reqs = malloc(L.o.proto == P_UDP ? (size_t)L.o.window * REQ_MAX : REQ_MAX);
    L.free_list = calloc(L.o.window, sizeof *L.free_list);
    L.md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    L.mdctx = EVP_MD_CTX_new();
    if (!L.slots || !L.reqs || !L.free_list || !L.md5 || !L.mdctx) {
        fprintf(stderr, "sipload: out of memory (or no MD5 in this OpenSSL)\n");
        return 2;
    }
    for (uint32_t i = 0; i < L.o.window; i++)
        L.free_list[L.free_n++] = L.o.window - 1 - i;
    snprintf(L.tag, sizeof L.tag, "%x", (unsigned)(uv_hrtime() & 0xffffff));
    uv_timer_init(L.loop, &L.tick);
    uv_timer_init(L.loop, &L.scan);
    uv_timer_init(L.loop, &L.second);
    uv_timer_init(L.loop, &L.hold);
    uv_timer_init(L.loop, &L.gap);
    L.tick.data = L.scan.data = L.second.data = L.hold.data = L.gap.data = &L;
    L.warming = L.o.warmup > 0;
    L.t0_us = now_us();
    if (open_transport(&L) != 0)
        return 2;
    uv_run(L.loop, UV_RUN_DEFAULT);
    if (L.ssl)
        SSL_free(L.ssl);
    SSL_CTX_free(L.ctx);
    EVP_MD_CTX_free(L.mdctx);
    EVP_MD_free(L.md5);
    free(L.slots);
    free(L.reqs);
    free(L.plain.p);
    free(L.free_list);
    free(L.out[0].p);
    free(L.out[1].p);
    return L.exit_code;
}
