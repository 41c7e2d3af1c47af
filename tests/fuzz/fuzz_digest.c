/* fuzz_digest.c — libFuzzer target for src/auth (Digest).
 *
 * First byte even: the rest is a header value given to auth_parse_challenge
 * and auth_parse_credentials. A parsed challenge is answered and the answer
 * must parse back to the same realm/nonce/opaque; "%n" in the input is
 * replaced by a fresh valid nonce for realm "r" (the byte after "%n" picks
 * algorithm and qop) so auth_verify gets past the nonce check and exercises
 * the response path.
 *
 * First byte odd: the rest is a script of lines, each
 *   flags time-step nc-step realm \t user \t uri \t cnonce
 * played against a fresh server with an 8-entry replay table: challenge (or
 * reuse the last nonce), answer, verify. The outcome must agree with what
 * the line asked for (right password: OK, REPLAY or STALE; wrong password:
 * BAD_RESPONSE), which checks the nonce, replay window and eviction logic
 * rather than only "no crash".
 *
 *   tests/fuzz/fuzz_digest -dict=tests/fuzz/fuzz_digest.dict -max_total_time=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/digest.h"

static const uint8_t fuzz_secret[32] = "fuzz-secret-fuzz-secret-fuzz-sec";
static struct auth_server *parse_srv;

static struct auth_server *new_server(uint32_t entries)
{
    struct auth_server_config cfg = {
        .nonce_ttl_s = 60,
        .legacy_nonce_ttl_s = 30,
        .secret = fuzz_secret,
        .secret_len = sizeof fuzz_secret,
        .algorithms = 0xf,
        .replay_entries = entries,
    };
    struct auth_server *srv = auth_server_new(&cfg);
    if (!srv) abort();
    return srv;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    parse_srv = new_server(64);
    return 0;
}

static const char *ha1_for(enum auth_algorithm alg)
{
    return auth_algorithm_base(alg) == AUTH_ALG_SHA256
               ? "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
               : "939e7578ed9e3c518a452acee763bce9";
}

static void fuzz_values(const uint8_t *data, size_t size)
{
    str_t in = str_make((const char *)data, size);
    struct auth_challenge ch;
    struct auth_credentials c;
    sbuf_t b;
    sbuf_init(&b);

    if (auth_parse_challenge(in, &ch) == 0) {
        int rc = auth_client_answer(&ch, STR_LIT("user"), STR_LIT("pw"), STR_LIT("REGISTER"), STR_LIT("sip:r"), 1,
                                    STR_NULL, &b);
        if (rc == 0 && ch.realm.len) {
            /* What we write must parse back to what we read. */
            if (auth_parse_credentials(sbuf_str(&b), &c) != 0) abort();
            if (!str_eq(c.realm, ch.realm) || !str_eq(c.nonce, ch.nonce) || !str_eq(c.opaque, ch.opaque) ||
                c.algorithm != ch.algorithm || c.qop != ch.qop)
                abort();
        }
    }

    if (auth_parse_credentials(in, &c) == 0)
        (void)auth_verify(parse_srv, &c, STR_LIT("REGISTER"), str_from_cstr(ha1_for(c.algorithm)), 1000);

    /* Substitute "%n" with a real nonce (algorithm from the byte after it). */
    if (size < AUTH_MAX_HEADER && memmem(data, size, "%n", 2)) {
        sbuf_t chal, expanded;
        sbuf_init(&chal);
        sbuf_init(&expanded);
        for (size_t i = 0; i < size; i++) {
            if (data[i] == '%' && i + 1 < size && data[i + 1] == 'n') {
                enum auth_algorithm alg = i + 2 < size ? (enum auth_algorithm)(data[i + 2] & 3) : AUTH_ALG_MD5;
                bool qop = i + 2 < size ? (data[i + 2] & 4) : true;
                sbuf_clear(&chal);
                if (auth_challenge(parse_srv, STR_LIT("r"), alg, qop || alg != auth_algorithm_base(alg), false, 1000,
                                   &chal) == 0 &&
                    auth_parse_challenge(sbuf_str(&chal), &ch) == 0)
                    sbuf_append_str(&expanded, ch.nonce);
                i += i + 2 < size ? 2 : 1; /* "%n" and the algorithm byte */
            } else {
                sbuf_append_char(&expanded, (char)data[i]);
            }
        }
        if (auth_parse_credentials(sbuf_str(&expanded), &c) == 0)
            (void)auth_verify(parse_srv, &c, STR_LIT("REGISTER"), str_from_cstr(ha1_for(c.algorithm)), 1010);
        sbuf_free(&chal);
        sbuf_free(&expanded);
    }
    sbuf_free(&b);
}

static str_t next_field(str_t *rest, str_t dflt)
{
    const char *tab = rest->len ? memchr(rest->s, '\t', rest->len) : NULL;
    size_t n = tab ? (size_t)(tab - rest->s) : rest->len;
    str_t f = str_make(rest->s, n);
    *rest = tab ? str_make(tab + 1, rest->len - n - 1) : STR_NULL;
    return f.len ? f : dflt;
}

static void fuzz_script(const uint8_t *data, size_t size)
{
    struct auth_server *srv = new_server(8);
    char last[1400] = "";
    char last_realm[300] = "";
    uint32_t nc = 0;
    uint64_t now = 1000;
    const char *p = (const char *)data, *end = p + size;
    int lines = 0;

    while (p < end && lines++ < 64) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        str_t line = str_make(p, nl ? (size_t)(nl - p) : (size_t)(end - p));
        p = nl ? nl + 1 : end;
        if (line.len < 3) continue;
        uint8_t flags = (uint8_t)line.s[0];
        now += (uint8_t)line.s[1] & 0x3f;
        str_t rest = str_make(line.s + 3, line.len - 3);
        str_t realm = next_field(&rest, STR_LIT("example.com"));
        str_t user = next_field(&rest, STR_LIT("alice"));
        str_t uri = next_field(&rest, STR_LIT("sip:example.com"));
        str_t cnonce = next_field(&rest, STR_NULL);
        enum auth_algorithm alg = (enum auth_algorithm)(flags & 3);
        bool qop = (flags & 4) || alg != auth_algorithm_base(alg);
        bool reuse = (flags & 8) && last[0];
        bool wrong = flags & 16;

        struct auth_challenge ch;
        sbuf_t b;
        sbuf_init(&b);
        if (!reuse) {
            if (auth_challenge(srv, realm, alg, qop, false, now, &b) != 0) {
                sbuf_free(&b);
                continue;
            }
            str_copy(last, sizeof last, sbuf_str(&b));
            str_copy(last_realm, sizeof last_realm, realm);
            nc = 0;
            sbuf_clear(&b);
        }
        if (auth_parse_challenge(str_from_cstr(last), &ch) != 0) abort(); /* we wrote it */
        nc += (uint8_t)line.s[2] & 0x3f; /* 0: repeat the last nc */
        int rc = auth_client_answer(&ch, user, wrong ? STR_LIT("wrong") : STR_LIT("right"), STR_LIT("REGISTER"),
                                    uri, nc, cnonce, &b);
        struct auth_credentials c;
        if (rc == 0 && auth_parse_credentials(sbuf_str(&b), &c) == 0) {
            char ha1[65];
            if (auth_ha1(ch.algorithm, c.username, str_from_cstr(last_realm), STR_LIT("right"), ha1) != 0) abort();
            enum auth_result r = auth_verify(srv, &c, STR_LIT("REGISTER"), str_from_cstr(ha1), now);
            if (wrong ? r != AUTH_BAD_RESPONSE : (r != AUTH_OK && r != AUTH_REPLAY && r != AUTH_STALE)) {
                fprintf(stderr, "unexpected %s for %s\n", auth_result_name(r), b.data);
                abort();
            }
        }
        sbuf_free(&b);
    }
    auth_server_free(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    if (data[0] & 1) fuzz_script(data + 1, size - 1);
    else fuzz_values(data + 1, size - 1);
    return 0;
}
