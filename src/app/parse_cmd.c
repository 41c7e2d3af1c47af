/* parse_cmd.c — `cascade parse FILE...` (see parse_cmd.h). Each file holds
 * one message exactly as it came off the wire; CRLF or LF line ends. */
#include "app/parse_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip/msg.h"

/* Larger than any message the parser accepts, so "too large" is the
 * parser's verdict, not a silent truncation here. */
#define PARSE_CMD_MAX_FILE (1024 * 1024)

static char *slurp(const char *path, size_t *len, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    char *buf = malloc(PARSE_CMD_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        *why = "out of memory";
        return NULL;
    }
    size_t n = fread(buf, 1, PARSE_CMD_MAX_FILE + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        *why = "read error";
        return NULL;
    }
    if (n > PARSE_CMD_MAX_FILE) {
        free(buf);
        *why = "file too large";
        return NULL;
    }
    *len = n;
    return buf;
}

int parse_cmd_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cascade parse FILE...\n");
        return 2;
    }
    int rc = 0;
    /* the arena's first block; more comes from the heap if a message needs it */
    char *scratch = malloc(65536);
    if (!scratch) {
        fprintf(stderr, "cascade parse: out of memory\n");
        return 2;
    }
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    for (int i = 1; i < argc; i++) {
        size_t len = 0;
        const char *why = NULL;
        char *buf = slurp(argv[i], &len, &why);
        if (!buf) {
            printf("BAD %s: %s\n", argv[i], why);
            rc = 1;
            continue;
        }
        arena_t a;
        arena_init(&a, scratch, 65536);
        struct sip_msg m;
        struct sip_parse_error err;
        if (sip_parse(buf, len, &a, &lim, &m, &err) == 0) {
            if (m.is_request)
                printf("OK %.*s %.*s\n", STR_FMT(m.method_name), STR_FMT(m.call_id));
            else
                printf("OK %d %.*s\n", m.status, STR_FMT(m.call_id));
        } else {
            printf("BAD %s\n", err.reason);
            rc = 1;
        }
        arena_free(&a);
        free(buf);
    }
    free(scratch);
    return rc;
}
