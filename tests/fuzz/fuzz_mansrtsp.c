/* fuzz_mansrtsp.c — libFuzzer target for the GB/T 28181 playback control
 * body parser: whatever parses is built again and must read back the same
 * method, CSeq, scale and range (within the builder's rounding). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gb/codec/mansrtsp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gb_rtsp_req r, back;
    const char *why;
    if (gb_mansrtsp_parse((const char *)data, size, &r, &why) != 0) {
        if (!why) abort();
        return 0;
    }
    sbuf_t b;
    sbuf_init(&b);
    if (gb_mansrtsp_build(&b, &r) != 0) abort();
    if (gb_mansrtsp_parse(b.data, b.len, &back, &why) != 0) abort();
    if (back.method != r.method || back.cseq != r.cseq) abort();
    if (r.method == GB_RTSP_PLAY) {
        if (back.has_scale != r.has_scale) abort();
        if (r.has_scale && fabs(back.scale - r.scale) > r.scale * 1e-5) abort();
        if (r.has_range && r.range_from >= 0 && fabs(back.range_from - r.range_from) > 0.0006) abort();
    }
    sbuf_free(&b);
    return 0;
}
