/* fuzz_mwi.c — libFuzzer target for the message-summary body check
 * (src/subs/mwi.c, RFC 3842 §5.2) and for what a node reads from Redis
 * about the other nodes' summaries ([redis] mirror_mwi, src/subs/mwi_mirror.c).
 *
 * The input is a body from a voicemail source. Beyond "no crash": an
 * accepted body must stay accepted with its line ends changed (LF <->
 * CRLF: the grammar does not care), the store must keep it byte for byte,
 * and a refusal must come with a reason phrase fit for a status line
 * (printable, no CR/LF).
 *
 * The same input is also a record from Redis ("<stamp>\n<body>"): a decoded
 * one has a stamp of at most 15 digits and a body mwi_validate accepts,
 * re-encodes to the same bytes, and applied to a store never leaves a
 * summary stamped below the one held; a refused one changes nothing.
 *
 *   tests/fuzz/fuzz_mwi -max_total_time=60 tests/fuzz/corpus/fuzz_mwi */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subs/mwi.h"
#include "subs/mwi_mirror.h"

static struct mwi_store *store, *shared;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    store = mwi_store_new(4);
    shared = mwi_store_new(2);
    return store && shared ? 0 : -1;
}

/* The input as a record from Redis for one of three AoRs (the table holds two). */
static void as_record(const uint8_t *data, size_t size)
{
    int64_t stamp = -1;
    const char *body = NULL;
    size_t blen = 0;
    int rc = mwi_record_decode((const char *)data, size, &stamp, &body, &blen);
    if (rc == 0) {
        if (stamp < 0 || stamp > 999999999999999LL || mwi_validate(body, blen, NULL) != 0) abort();
        char out[MWI_MIRROR_RECORD_MAX + 1];
        int n = mwi_record_encode(stamp, body, blen, out, sizeof(out));
        /* a stamp written with leading zeros encodes shorter: compare from the body */
        if (n < 0 || (size_t)n < blen || memcmp(out + (size_t)n - blen, body, blen) != 0) abort();
    }
    static const char *const aors[] = {"alice@example.com", "bob@example.com", "carol@example.com"};
    const char *aor = aors[size % 3];
    int64_t before = mwi_store_stamp(shared, aor);
    uint32_t count = mwi_store_count(shared);
    enum mwi_apply_result r = mwi_mirror_apply(shared, aor, (const char *)data, size);
    int64_t after = mwi_store_stamp(shared, aor);
    if (rc != 0 && r != MWI_APPLY_REJECTED) abort();
    if (r == MWI_APPLY_REJECTED || r == MWI_APPLY_OLDER || r == MWI_APPLY_UNCHANGED) {
        if (after != before || mwi_store_count(shared) != count) abort();
    } else if (after < before || after != stamp) {
        abort();
    }
    if (mwi_store_count(shared) > 2) abort();
    if (size % 7 == 0) mwi_mirror_apply(shared, aor, NULL, 0); /* a delete now and then */
}

/* body with every CRLF made LF and every lone LF made CRLF, in out. */
static size_t swap_line_ends(const char *body, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\r' && i + 1 < len && body[i + 1] == '\n') {
            out[n++] = '\n';
            i++;
        } else if (body[i] == '\n') {
            out[n++] = '\r';
            out[n++] = '\n';
        } else {
            out[n++] = body[i];
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_record(data, size);
    const char *body = (const char *)data;
    const char *why = NULL;
    if (mwi_validate(body, size, &why) != 0) {
        if (!why || !*why) abort();
        for (const char *p = why; *p; p++)
            if (*p < ' ' || *p > '~') abort();
        return 0;
    }
    if (size == 0 || size > MWI_MAX_BODY) abort();
    char *swapped = malloc(size * 2);
    if (!swapped) return 0;
    size_t n = swap_line_ends(body, size, swapped);
    /* A CR not before an LF stays where it was and could join or split
     * lines differently: only bodies without one compare. */
    bool lone_cr = false;
    for (size_t i = 0; i < size; i++)
        if (body[i] == '\r' && (i + 1 == size || body[i + 1] != '\n')) lone_cr = true;
    const char *why2 = NULL;
    if (!lone_cr && n <= MWI_MAX_BODY && mwi_validate(swapped, n, &why2) != 0) abort();
    free(swapped);
    if (mwi_store_set(store, "alice", body, size) != 0) abort();
    const char *kept = mwi_store_get(store, "alice");
    if (!kept || strlen(kept) != size || memcmp(kept, body, size) != 0) abort();
    return 0;
}
