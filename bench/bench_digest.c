/* bench_digest.c — Digest verifications per second on one core.
 *
 * Measures what a registrar pays per authenticated REGISTER in src/auth:
 *   verify:    auth_parse_credentials + auth_verify (qop=auth, fresh nc each
 *              time, so the replay table is consulted and updated)
 *   legacy:    the same for the GB28181 form without qop (no replay table)
 *   challenge: auth_challenge (one HMAC-SHA256 and formatting)
 * for MD5 and SHA-256. The answers are made beforehand with the client side
 * and not timed. Single-threaded; about two seconds in all.
 *
 *   build-x/bench_digest            (build with -DCMAKE_BUILD_TYPE=Release) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/digest.h"

#define NONCES 1000
#define NC_PER_NONCE 20
#define ANSWERS (NONCES * NC_PER_NONCE)
#define ROUNDS 10

static const uint8_t bench_secret[32] = "bench-secret-bench-secret-bench-";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct auth_server *new_server(void)
{
    struct auth_server_config cfg = {
        .nonce_ttl_s = 300,
        .secret = bench_secret,
        .secret_len = sizeof bench_secret,
        .algorithms = AUTH_OFFER(AUTH_ALG_MD5) | AUTH_OFFER(AUTH_ALG_SHA256),
        .replay_entries = 16384,
    };
    struct auth_server *srv = auth_server_new(&cfg);
    if (!srv) {
        fprintf(stderr, "auth_server_new failed\n");
        exit(1);
    }
    return srv;
}

/* Authorization values for NONCES challenges, NC_PER_NONCE answers each
 * (with qop each has the next nc; without, they are identical). */
static char **make_answers(struct auth_server *srv, enum auth_algorithm alg, bool qop, size_t *count)
{
    size_t per = NC_PER_NONCE, n = 0; /* no-qop: the same answer re-sent, as devices do */
    char **v = calloc(NONCES * per, sizeof *v);
    sbuf_t chal, ans;
    sbuf_init(&chal);
    sbuf_init(&ans);
    for (int i = 0; i < NONCES; i++) {
        struct auth_challenge ch;
        char user[32];
        snprintf(user, sizeof user, "user%04d", i);
        sbuf_clear(&chal);
        if (auth_challenge(srv, STR_LIT("example.com"), alg, qop, false, 1000, &chal) != 0 ||
            auth_parse_challenge(sbuf_str(&chal), &ch) != 0)
            exit(1);
        for (size_t k = 0; k < per; k++) {
            sbuf_clear(&ans);
            if (auth_client_answer(&ch, str_from_cstr(user), STR_LIT("secret"), STR_LIT("REGISTER"),
                                   STR_LIT("sip:example.com"), (uint32_t)k + 1, STR_NULL, &ans) != 0)
                exit(1);
            v[n++] = strdup(ans.data);
        }
    }
    sbuf_free(&chal);
    sbuf_free(&ans);
    /* Interleave nonces as a registrar would see them: nc order kept per nonce. */
    char **mixed = calloc(n, sizeof *mixed);
    for (size_t k = 0, o = 0; k < per; k++)
        for (size_t i = 0; i < NONCES; i++) mixed[o++] = v[i * per + k];
    free(v);
    *count = n;
    return mixed;
}

static void bench_verify(enum auth_algorithm alg, bool qop)
{
    struct auth_server *srv = new_server();
    size_t n;
    char **answers = make_answers(srv, alg, qop, &n);
    char (*ha1)[65] = calloc(NONCES, sizeof *ha1);
    for (int i = 0; i < NONCES; i++) {
        char user[32];
        snprintf(user, sizeof user, "user%04d", i);
        auth_ha1(alg, str_from_cstr(user), STR_LIT("example.com"), STR_LIT("secret"), ha1[i]);
    }
    auth_server_free(srv);

    size_t ok = 0, total = 0;
    double spent = 0;
    for (int r = 0; r < ROUNDS; r++) {
        srv = new_server(); /* empty replay table: every answer is new again */
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            struct auth_credentials c;
            if (auth_parse_credentials(str_from_cstr(answers[i]), &c) != 0) continue;
            int user = atoi(c.username.s + 4); /* "userNNNN" */
            if (auth_verify(srv, &c, STR_LIT("REGISTER"), str_from_cstr(ha1[user]), 1001) == AUTH_OK) ok++;
        }
        spent += now_s() - t0;
        total += n;
        auth_server_free(srv);
    }
    printf("verify    %-7s %-6s %9.0f /s  (%.2f us each, %zu/%zu ok)\n", auth_algorithm_name(alg),
           qop ? "qop" : "no-qop", (double)total / spent, spent * 1e6 / (double)total, ok, total);
    for (size_t i = 0; i < n; i++) free(answers[i]);
    free(answers);
    free(ha1);
}

static void bench_challenge(enum auth_algorithm alg)
{
    struct auth_server *srv = new_server();
    sbuf_t b;
    sbuf_init(&b);
    size_t n = 200000, ok = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        sbuf_clear(&b);
        if (auth_challenge(srv, STR_LIT("example.com"), alg, true, false, 1000, &b) == 0) ok++;
    }
    double spent = now_s() - t0;
    printf("challenge %-7s        %9.0f /s  (%.2f us each, %zu/%zu ok)\n", auth_algorithm_name(alg),
           (double)n / spent, spent * 1e6 / (double)n, ok, n);
    sbuf_free(&b);
    auth_server_free(srv);
}

int main(void)
{
    bench_verify(AUTH_ALG_MD5, true);
    bench_verify(AUTH_ALG_SHA256, true);
    bench_verify(AUTH_ALG_MD5, false);
    bench_challenge(AUTH_ALG_MD5);
    bench_challenge(AUTH_ALG_SHA256);
    return 0;
}
