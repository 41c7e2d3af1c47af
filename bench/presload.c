/* presload.c — a presence load generator (RFC 3856 SUBSCRIBE, RFC 3903
 * PUBLISH) over one UDP socket, for the "100 000 active presence
 * subscriptions" benchmark (bench/presence-subs.sh).
 *
 *   presload 127.0.0.1:5060 --domain example.com --presentities 1000 \
 *            --watchers 100 --sub-rate 5000 --publish-rate 1000 --duration 30
 *
 * Phase 1: presentities x watchers SUBSCRIBEs (Event: presence, no
 * credentials: the server is run without require_auth), watcher i of
 * presentity j as sip:w<j>x<i>@domain, paced at --sub-rate, at most
 * --window unanswered; each NOTIFY that comes back is answered 200 at once
 * (the Contact of every SUBSCRIBE is this socket), so the subscriptions stay.
 * Phase 2, once every SUBSCRIBE was answered (or --sub-timeout passed) and
 * --pause seconds more:
 * --publish-rate PUBLISHes a second for --duration seconds, round robin over
 * the presentities, each alternating open/closed under the entity tag of the
 * previous one (RFC 3903 modify; a fresh publication after a 412). Every
 * PUBLISH that changes a presentity's state makes the server NOTIFY its
 * watchers: --watchers NOTIFYs per PUBLISH.
 *
 * Prints one line a second and a `final` line (key=value words):
 * subscribed (2xx to SUBSCRIBE), sub_failed, published (2xx to PUBLISH),
 * pub_failed, notifies (NOTIFYs received and answered), sub_s (the time
 * phase 1 took). Exit 0 when every SUBSCRIBE and PUBLISH got a 2xx.
 *
 * No retransmissions (loopback, large socket buffers); a request not
 * answered within 32 s counts as failed. Parsing is minimal and bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 65536
#define ETAG_MAX 64
#define TIMEOUT_MS 32000

struct pres {
    char etag[ETAG_MAX];
    bool open;
    bool in_flight;
    uint64_t sent_ms;
};

static struct {
    int fd;
    struct sockaddr_in to;
    char local_ip[64];
    uint16_t local_port;
    char domain[128];
    uint32_t npres, nwatch, window;
    double sub_rate, pub_rate;
    uint32_t duration_s, sub_timeout_s, expires, pause_s;
    uint64_t run;
    uint64_t *sub_sent_ms;   /* per subscription: when sent, 0 when answered */
    struct pres *pres;
    uint64_t subscribed, sub_failed, sub_inflight, published, pub_failed, notifies, pub_seq;
    bool quiet;
} L;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void send_text(const char *buf, int n)
{
    if (n <= 0) return;
    if (sendto(L.fd, buf, (size_t)n, 0, (struct sockaddr *)&L.to, sizeof(L.to)) < 0 && errno != EAGAIN)
        perror("presload: sendto");
}

static void send_subscribe(uint64_t k)
{
    char buf[2048];
    uint32_t j = (uint32_t)(k % L.npres), i = (uint32_t)(k / L.npres);
    int n = snprintf(buf, sizeof(buf),
                     "SUBSCRIBE sip:p%u@%s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bKs%" PRIu64 "x%" PRIu64 ";rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:w%ux%u@%s>;tag=t%" PRIu64 "\r\n"
                     "To: <sip:p%u@%s>\r\n"
                     "Call-ID: ps%" PRIu64 ".%" PRIu64 "\r\n"
                     "CSeq: 1 SUBSCRIBE\r\n"
                     "Contact: <sip:w%ux%u@%s:%u>\r\n"
                     "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: %u\r\n"
                     "Content-Length: 0\r\n\r\n",
                     j, L.domain, L.local_ip, L.local_port, k, L.run, j, i, L.domain, k, j, L.domain, k, L.run, j,
                     i, L.local_ip, L.local_port, L.expires);
    send_text(buf, n);
}

static void send_publish(uint32_t j)
{
    struct pres *p = &L.pres[j];
    char body[512], ifm[ETAG_MAX + 32] = "", buf[2048];
    p->open = !p->open;
    int bl = snprintf(body, sizeof(body),
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
                      "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:p%u@%s\">"
                      "<tuple id=\"t1\"><status><basic>%s</basic></status></tuple></presence>",
                      j, L.domain, p->open ? "open" : "closed");
    if (p->etag[0]) snprintf(ifm, sizeof(ifm), "SIP-If-Match: %s\r\n", p->etag);
    uint64_t seq = ++L.pub_seq;
    int n = snprintf(buf, sizeof(buf),
                     "PUBLISH sip:p%u@%s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bKp%" PRIu64 "x%" PRIu64 ";rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:p%u@%s>;tag=q%" PRIu64 "\r\n"
                     "To: <sip:p%u@%s>\r\n"
                     "Call-ID: pp%u.%" PRIu64 ".%" PRIu64 "\r\n"
                     "CSeq: 1 PUBLISH\r\n"
                     "Event: presence\r\nExpires: 3600\r\n%s"
                     "Content-Type: application/pidf+xml\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     j, L.domain, L.local_ip, L.local_port, seq, L.run, j, L.domain, seq, j, L.domain, j, seq, L.run,
                     ifm, bl, body);
    p->in_flight = true;
    p->sent_ms = now_ms();
    send_text(buf, n);
}

/* The value of header name (or its compact form c) in msg, up to CRLF. */
static bool header(const char *msg, size_t len, const char *name, char c, const char **v, size_t *vl)
{
    const char *p = msg, *end = msg + len;
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0) return false; /* end of headers */
        const char *colon = memchr(p, ':', ll);
        if (colon) {
            size_t hn = (size_t)(colon - p);
            while (hn && (p[hn - 1] == ' ' || p[hn - 1] == '\t')) hn--;
            if ((hn == nl && strncasecmp(p, name, nl) == 0) || (c && hn == 1 && (p[0] | 0x20) == c)) {
                const char *s = colon + 1;
                while (s < p + ll && (*s == ' ' || *s == '\t')) s++;
                *v = s;
                *vl = (size_t)(p + ll - s);
                return true;
            }
        }
        p = eol + 1;
    }
    return false;
}

/* 200 to a request (a NOTIFY): its Via, From, To, Call-ID, CSeq lines copied. */
static void answer_request(const char *msg, size_t len)
{
    char out[4096];
    size_t n = (size_t)snprintf(out, sizeof(out), "SIP/2.0 200 OK\r\n");
    const char *p = msg, *end = msg + len;
    const char *eol0 = memchr(p, '\n', len);
    if (!eol0) return;
    p = eol0 + 1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0) break;
        bool keep = !strncasecmp(p, "Via:", 4) || !strncasecmp(p, "v:", 2) || !strncasecmp(p, "From:", 5) ||
                    !strncasecmp(p, "f:", 2) || !strncasecmp(p, "To:", 3) || !strncasecmp(p, "t:", 2) ||
                    !strncasecmp(p, "Call-ID:", 8) || !strncasecmp(p, "i:", 2) || !strncasecmp(p, "CSeq:", 5);
        if (keep && n + ll + 2 < sizeof(out)) {
            memcpy(out + n, p, ll);
            n += ll;
            out[n++] = '\r';
            out[n++] = '\n';
        }
        p = eol + 1;
    }
    n += (size_t)snprintf(out + n, sizeof(out) - n, "Content-Length: 0\r\n\r\n");
    send_text(out, (int)n);
}

static void on_message(const char *msg, size_t len)
{
    if (len < 12) return;
    if (strncmp(msg, "SIP/2.0 ", 8) != 0) {
        if (strncmp(msg, "NOTIFY ", 7) == 0) L.notifies++;
        answer_request(msg, len);
        return;
    }
    int status = atoi(msg + 8);
    if (status < 200) return;
    const char *cid;
    size_t cl;
    if (!header(msg, len, "Call-ID", 'i', &cid, &cl) || cl < 3) return;
    if (cid[0] == 'p' && cid[1] == 's') {
        uint64_t k = strtoull(cid + 2, NULL, 10);
        if (k >= (uint64_t)L.npres * L.nwatch || !L.sub_sent_ms[k]) return;
        L.sub_sent_ms[k] = 0;
        L.sub_inflight--;
        if (status < 300) L.subscribed++;
        else L.sub_failed++;
    } else if (cid[0] == 'p' && cid[1] == 'p') {
        uint32_t j = (uint32_t)strtoul(cid + 2, NULL, 10);
        if (j >= L.npres || !L.pres[j].in_flight) return;
        struct pres *p = &L.pres[j];
        p->in_flight = false;
        const char *et;
        size_t el;
        if (status < 300) {
            L.published++;
            if (header(msg, len, "SIP-ETag", 0, &et, &el) && el < ETAG_MAX) {
                memcpy(p->etag, et, el);
                p->etag[el] = '\0';
            }
        } else {
            L.pub_failed++;
            p->etag[0] = '\0'; /* 412 and the like: a fresh publication next time */
        }
    }
}

static void drain(int timeout_ms)
{
    static char buf[MSG_MAX];
    struct pollfd pf = {.fd = L.fd, .events = POLLIN};
    if (poll(&pf, 1, timeout_ms) <= 0) return;
    for (int k = 0; k < 4096; k++) {
        ssize_t n = recv(L.fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n <= 0) return;
        buf[n] = '\0';
        on_message(buf, (size_t)n);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: presload HOST:PORT [--domain D] [--presentities P] [--watchers W] [--sub-rate R]\n"
                    "       [--publish-rate Q] [--duration S] [--window N] [--expires E] [--sub-timeout S]\n"
                    "       [--pause S] [--local-ip IP] [--quiet]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    snprintf(L.domain, sizeof(L.domain), "127.0.0.1");
    snprintf(L.local_ip, sizeof(L.local_ip), "127.0.0.1");
    L.npres = 1000, L.nwatch = 10, L.window = 5000, L.sub_rate = 5000, L.pub_rate = 1000;
    L.duration_s = 10, L.sub_timeout_s = 120, L.expires = 3600;
    const char *target = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) {
            L.quiet = true;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--domain")) snprintf(L.domain, sizeof(L.domain), "%s", v);
        else if (!strcmp(a, "--presentities")) L.npres = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--watchers")) L.nwatch = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--sub-rate")) L.sub_rate = atof(v);
        else if (!strcmp(a, "--publish-rate")) L.pub_rate = atof(v);
        else if (!strcmp(a, "--duration")) L.duration_s = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--window")) L.window = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--expires")) L.expires = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--sub-timeout")) L.sub_timeout_s = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--pause")) L.pause_s = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--local-ip")) snprintf(L.local_ip, sizeof(L.local_ip), "%s", v);
        else usage();
    }
    if (!L.npres || !L.nwatch || L.sub_rate <= 0 || L.pub_rate <= 0 || !L.window) usage();
    const char *colon = strrchr(target, ':');
    if (!colon) usage();
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
    L.to.sin_family = AF_INET;
    L.to.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &L.to.sin_addr) != 1) usage();
    L.fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 64 << 20;
    setsockopt(L.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(L.fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, L.local_ip, &me.sin_addr);
    if (bind(L.fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
        perror("presload: bind");
        return 2;
    }
    socklen_t ml = sizeof(me);
    getsockname(L.fd, (struct sockaddr *)&me, &ml);
    L.local_port = ntohs(me.sin_port);
    L.run = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    uint64_t total = (uint64_t)L.npres * L.nwatch;
    L.sub_sent_ms = calloc(total, sizeof(*L.sub_sent_ms));
    L.pres = calloc(L.npres, sizeof(*L.pres));
    if (!L.sub_sent_ms || !L.pres) return 2;

    /* Phase 1. */
    uint64_t t0 = now_ms(), next_print = t0 + 1000, sent = 0;
    while (L.subscribed + L.sub_failed < total) {
        uint64_t now = now_ms();
        uint64_t due = (uint64_t)((double)(now - t0) * L.sub_rate / 1000.0) + 1;
        while (sent < total && sent < due && L.sub_inflight < L.window) {
            L.sub_sent_ms[sent] = now ? now : 1;
            L.sub_inflight++;
            send_subscribe(sent++);
        }
        drain(1);
        if (now >= next_print) {
            next_print += 1000;
            if (!L.quiet)
                printf("t=%.0fs phase=subscribe sent=%" PRIu64 " subscribed=%" PRIu64 " failed=%" PRIu64
                       " notifies=%" PRIu64 "\n",
                       (now - t0) / 1000.0, sent, L.subscribed, L.sub_failed, L.notifies);
            fflush(stdout);
            for (uint64_t k = 0; k < sent; k++) /* no answer in 32 s: failed */
                if (L.sub_sent_ms[k] && now - L.sub_sent_ms[k] > TIMEOUT_MS) {
                    L.sub_sent_ms[k] = 0;
                    L.sub_inflight--;
                    L.sub_failed++;
                }
        }
        if (now - t0 > (uint64_t)L.sub_timeout_s * 1000u) break;
    }
    double sub_s = (now_ms() - t0) / 1000.0;
    printf("subscribed: %" PRIu64 " of %" PRIu64 " in %.1f s (failed %" PRIu64 ")\n", L.subscribed, total, sub_s,
           L.sub_failed);
    /* --pause: idle (answering NOTIFYs) so that the server's transaction
     * records of phase 1 run out before what is measured next. */
    if (L.pause_s) {
        printf("phase=pause %u s\n", L.pause_s);
        fflush(stdout);
        for (uint64_t end = now_ms() + (uint64_t)L.pause_s * 1000u; now_ms() < end;) drain(50);
    }
    printf("phase=publish start\n");
    fflush(stdout);

    /* Phase 2. */
    uint64_t t1 = now_ms(), psent = 0;
    uint32_t rr = 0;
    uint64_t notif0 = L.notifies;
    next_print = t1 + 1000;
    for (;;) {
        uint64_t now = now_ms();
        if (now - t1 >= (uint64_t)L.duration_s * 1000u) break;
        uint64_t due = (uint64_t)((double)(now - t1) * L.pub_rate / 1000.0) + 1;
        for (uint32_t tries = 0; psent < due && tries < L.npres; tries++) {
            uint32_t j = rr++ % L.npres;
            if (L.pres[j].in_flight) {
                if (now - L.pres[j].sent_ms < TIMEOUT_MS) continue;
                L.pres[j].in_flight = false;
                L.pub_failed++;
            }
            send_publish(j);
            psent++;
        }
        drain(1);
        if (now >= next_print) {
            next_print += 1000;
            if (!L.quiet)
                printf("t=%.0fs phase=publish sent=%" PRIu64 " published=%" PRIu64 " failed=%" PRIu64
                       " notifies=%" PRIu64 "\n",
                       (now - t1) / 1000.0, psent, L.published, L.pub_failed, L.notifies - notif0);
            fflush(stdout);
        }
    }
    /* The last answers and NOTIFYs. */
    for (uint64_t end = now_ms() + 2000; now_ms() < end;) drain(10);
    double pub_s = (now_ms() - t1) / 1000.0;
    printf("final subscribed=%" PRIu64 " sub_failed=%" PRIu64 " sub_s=%.1f published=%" PRIu64 " pub_failed=%" PRIu64
           " publish_rate=%.0f notifies=%" PRIu64 " notifies_during_publish=%" PRIu64 " notify_rate=%.0f\n",
           L.subscribed, L.sub_failed, sub_s, L.published, L.pub_failed, L.published / (pub_s - 2.0), L.notifies,
           L.notifies - notif0, (L.notifies - notif0) / (pub_s - 2.0));
    fflush(stdout);
    /* Keep answering NOTIFYs while the caller measures (until killed). */
    if (getenv("PRESLOAD_HOLD")) {
        uint64_t hold_end = now_ms() + (uint64_t)atoi(getenv("PRESLOAD_HOLD")) * 1000u;
        while (now_ms() < hold_end) drain(100);
    }
    return L.sub_failed || L.pub_failed ? 1 : 0;
}
