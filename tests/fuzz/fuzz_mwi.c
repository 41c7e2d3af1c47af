/* fuzz_mwi.c — libFuzzer target for the message-summary body check
 * (src/subs/mwi.c, RFC 3842 §5.2).
 *
 * The input is a body from a voicemail source. Beyond "no crash": an
 * accepted body must stay accepted with its line ends changed (LF <->
 * CRLF: the grammar does not care), the store must keep it byte for byte,
 * and a refusal must come with a reason phrase fit for a status line
 * (printable, no CR/LF).
 *
 *   tests/fuzz/fuzz_mwi -max_total_time=60 tests/fuzz/corpus/fuzz_mwi */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subs/mwi.h"

static struct mwi_store *store;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    store = mwi_store_new(4);
    return store ? 0 : -1;
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
