/* bench_parse.c — SIP parser throughput on one core.
 *
 * Parses each sample message in a loop (arena reset per message, as a worker
 * does per datagram) and prints messages/s, the median of several runs.
 * Built-in samples: a GB28181 device REGISTER with a digest Authorization
 * (the registrar's hot path) and an INVITE with an SDP body (as in
 * bench/corpus/); files given on the command line are measured instead.
 *
 *   bench_parse [-n iterations] [-r runs] [-b] [FILE...]
 *     -b  also time sip_build_response (200 OK with To-tag) per message
 *
 * Instructions per message: run under callgrind with a small -n, e.g.
 *   valgrind --tool=callgrind --toggle-collect=sip_parse bench_parse FILE -n 10000 -r 1
 * and divide the Ir total by the parses made (n plus the n/10+1 warm-up). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sip/msg.h"

static const char register_msg[] =
    "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK18384460\r\n"
    "From: <sip:34020000001320000001@3402000000>;tag=16129572\r\n"
    "To: <sip:34020000001320000001@3402000000>\r\n"
    "Call-ID: 1453346457\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\n"
    "Authorization: Digest username=\"34020000001320000001\", realm=\"3402000000\", "
    "nonce=\"9bd055c2b1e0\", uri=\"sip:34020000002000000001@3402000000\", "
    "response=\"8d1f4a7e2c9b3e6f0a1d2c3b4a5f6e7d\"\r\n"
    "Max-Forwards: 70\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char invite_msg[] =
    "INVITE sip:34020000001310000001@3402000000 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.10:5060;rport;branch=z9hG4bK3f1e2d7a9c1b4e\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;received=192.168.1.5;branch=z9hG4bK77aa01\r\n"
    "Record-Route: <sip:192.168.1.10:5060;lr>\r\n"
    "From: <sip:34020000002000000001@3402000000>;tag=483920174\r\n"
    "To: <sip:34020000001310000001@3402000000>\r\n"
    "Call-ID: 8d2a47c1e5b94f0a@192.168.1.10\r\n"
    "CSeq: 20 INVITE\r\n"
    "Contact: <sip:34020000002000000001@192.168.1.10:5060>\r\n"
    "Subject: 34020000001310000001:0100000001,34020000002000000001:0\r\n"
    "Max-Forwards: 70\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, NOTIFY\r\n"
    "Supported: timer, 100rel\r\n"
    "User-Agent: cascade-bench/1.0\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 236\r\n"
    "\r\n"
    "v=0\r\n"
    "o=34020000002000000001 0 0 IN IP4 192.168.1.10\r\n"
    "s=Play\r\n"
    "c=IN IP4 192.168.1.10\r\n"
    "t=0 0\r\n"
    "m=video 30000 RTP/AVP 96 97 98\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 PS/90000\r\n"
    "a=rtpmap:97 MPEG4/90000\r\n"
    "a=rtpmap:98 H264/90000\r\n"
    "y=0100000001\r\n"
    "f=v/2/4///a///\r\n";

struct sample {
    const char *name;
    char *buf;
    size_t len;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static _Alignas(16) char scratch[16384];

/* One run: n parses; returns seconds, or -1 when a parse fails. */
static double run_once(const struct sample *s, long n, bool build, sbuf_t *out, unsigned long *sink)
{
    struct sip_msg m;
    struct sip_parse_error err;
    arena_t a;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        arena_init(&a, scratch, sizeof(scratch));
        if (sip_parse(s->buf, s->len, &a, NULL, &m, &err) < 0) {
            fprintf(stderr, "%s: parse failed: %s\n", s->name, err.reason);
            return -1;
        }
        *sink += m.header_count + m.cseq.number;
        if (build) {
            sbuf_clear(out);
            if (sip_build_response(&m, 200, NULL, STR_LIT("8f2e61a9"), NULL, 0, STR_NULL, STR_NULL, out) < 0)
                return -1;
            *sink += out->len;
        }
        arena_free(&a);
    }
    return now_s() - t0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(65536 + 1);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf) return NULL;
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 7;
    bool build = false;
    struct sample samples[16];
    int ns = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            n = atol(argv[++i]);
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-b")) {
            build = true;
        } else if (ns < 16) {
            size_t len;
            char *buf = read_file(argv[i], &len);
            if (!buf) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                return 1;
            }
            samples[ns++] = (struct sample){argv[i], buf, len};
        }
    }
    if (ns == 0) {
        samples[ns++] = (struct sample){"REGISTER+digest", (char *)register_msg, sizeof(register_msg) - 1};
        samples[ns++] = (struct sample){"INVITE+SDP", (char *)invite_msg, sizeof(invite_msg) - 1};
    }
    if (n < 1 || runs < 1 || runs > 101) return 1;
    unsigned long sink = 0;
    sbuf_t out;
    sbuf_init(&out);
    for (int k = 0; k < ns; k++) {
        double t[101];
        run_once(&samples[k], n / 10 + 1, build, &out, &sink); /* warm up */
        for (int r = 0; r < runs; r++) {
            t[r] = run_once(&samples[k], n, build, &out, &sink);
            if (t[r] < 0) return 1;
        }
        qsort(t, (size_t)runs, sizeof(double), cmp_double);
        double med = t[runs / 2];
        printf("%-18s %5zu bytes  %10.0f msg/s  %7.1f ns/msg  (median of %d x %ld%s)\n", samples[k].name,
               samples[k].len, (double)n / med, med * 1e9 / (double)n, runs, n, build ? ", +response" : "");
    }
    sbuf_free(&out);
    return sink == 42 ? 2 : 0;
}
