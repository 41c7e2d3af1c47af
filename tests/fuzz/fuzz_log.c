/* fuzz_log.c — libFuzzer target for the log line writer (src/base/log.c):
 * messages carry bytes from strangers (user names, User-Agents, URIs).
 *
 * The first byte picks the format, the rest (up to its first NUL, as "%s"
 * would take it) is the message. Beyond "no crash": every record is exactly
 * one line; a JSON line parses, and when the message was valid UTF-8 (and
 * short enough not to be cut) its "msg" is the message byte for byte; a text
 * line holds no control character but its final newline.
 *
 *   tests/fuzz/fuzz_log -max_total_time=60 tests/fuzz/corpus/fuzz_log */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

static FILE *out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    out = tmpfile();
    if (!out) return -1;
    log_set_file(out);
    log_set_level(LOG_DEBUG);
    return 0;
}

static char line[64 * 1024];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    bool json = data[0] & 1;
    char msg[8192];
    size_t mlen = strnlen((const char *)data + 1, size - 1);
    memcpy(msg, data + 1, mlen);
    msg[mlen] = '\0';

    int fd = fileno(out);
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) abort();
    log_set_format(json ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
    struct log_ratelimit rl = {0}; /* a fresh key: never suppressed */
    if (!log_write_site(&rl, 1, "src/fuzz/fuzz_log.c", 1, LOG_WARN, "%s", msg)) abort();

    ssize_t n = pread(fd, line, sizeof(line) - 1, 0);
    if (n <= 0) abort();
    line[n] = '\0';
    char *nl = memchr(line, '\n', (size_t)n);
    if (!nl || nl != line + n - 1) abort(); /* one line, ending in its newline */
    if (json) {
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)n, 0, &err);
        if (!o) abort();
        const char *got = json_string_value(json_object_get(o, "msg"));
        if (!got) abort();
        json_t *valid = json_stringn(msg, mlen); /* NULL unless valid UTF-8 */
        if (valid && mlen < 2000 && strcmp(got, msg) != 0) abort();
        json_decref(valid);
        json_decref(o);
    } else {
        for (ssize_t i = 0; i < n - 1; i++)
            if ((unsigned char)line[i] < 0x20 || line[i] == 0x7F) abort();
    }
    return 0;
}
