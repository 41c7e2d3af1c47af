/* fuzz_pidf.c — libFuzzer target for src/subs/pidf.c (PIDF, RFC 3863).
 *
 * The input is a published document. pidf_validate must agree with
 * pidf_summary; a valid one is composed twice over with itself (the
 * duplicate tuple ids must fold: the composition has the same tuples and as
 * many open ones) and the composition must itself be valid PIDF. The first
 * 200 bytes, as an entity URI, must give a valid derived document whatever
 * they hold (escaping).
 *
 *   tests/fuzz/fuzz_pidf -max_total_time=60 tests/fuzz/corpus/fuzz_pidf */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "subs/pidf.h"

static void check_derived(const uint8_t *data, size_t size)
{
    char entity[201];
    size_t n = 0;
    /* XML 1.0 cannot carry NUL or invalid UTF-8: keep printable ASCII. */
    for (size_t i = 0; i < size && n < 200; i++)
        if (data[i] >= 0x20 && data[i] < 0x7f) entity[n++] = (char)data[i];
    entity[n] = '\0';
    sbuf_t out;
    sbuf_init(&out);
    if (pidf_derived(&out, entity, size & 1, entity) != 0) abort();
    const char *why;
    int tuples, open;
    if (pidf_validate(out.data, out.len, &why) != 0) abort();
    if (pidf_summary(out.data, out.len, &tuples, &open) != 0 || tuples != 1 || open != (int)(size & 1)) abort();
    sbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++) log_set_level(LOG_ERROR);
    const char *doc = (const char *)data;
    const char *why = NULL;
    int rc = pidf_validate(doc, size, &why);
    int tuples = 0, open = 0;
    int src = pidf_summary(doc, size, &tuples, &open);
    if ((rc == 0) != (src == 0)) abort();
    if (rc != 0 && !why) abort();
    if (rc == 0) {
        const char *docs[2] = {doc, doc};
        size_t lens[2] = {size, size};
        sbuf_t out;
        sbuf_init(&out);
        if (pidf_compose(&out, "sip:fuzz@example.com", docs, lens, 2) != 0) abort();
        int t2 = 0, o2 = 0;
        /* The composition may exceed PIDF_MAX_BODY (pretty-printed): check its shape anyway. */
        if (out.len <= PIDF_MAX_BODY && pidf_validate(out.data, out.len, &why) != 0) abort();
        if (out.len <= PIDF_MAX_BODY && (pidf_summary(out.data, out.len, &t2, &o2) != 0 || t2 != tuples || o2 != open))
            abort();
        sbuf_free(&out);
    }
    check_derived(data, size);
    return 0;
}
