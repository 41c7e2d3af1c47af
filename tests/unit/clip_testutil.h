/* clip_testutil.h — reading the test clip (tests/data/clip.h264) whole into
 * memory. Shared by the media unit tests (test_h264.c, test_ps.c, test_rtp.c)
 * and bench/bench_gb_rtp.c (header-only: static functions, no cmocka). */
#ifndef CASCADE_TESTS_CLIP_TESTUTIL_H
#define CASCADE_TESTS_CLIP_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The clip as the unit tests see it: they run from tests/unit (see CMakeLists.txt). */
#define TEST_CLIP_PATH "../data/clip.h264"

/* Reads the file at path into a malloc'ed buffer (free it) and sets *len.
 * NULL, with *len 0, when it cannot be opened or read or is empty; errno is
 * left as the failing call set it. */
static inline uint8_t *read_whole_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

/* The test clip (50 H.264 frames at 25 frames/s), as read_whole_file(). */
static inline uint8_t *read_test_clip(size_t *len) { return read_whole_file(TEST_CLIP_PATH, len); }

#endif
