/* json_out.c — JSON text with a cap (see the header). */
#include "base/json_out.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int json_out_dup(const json_t *o, size_t max, char **out)
{
    *out = NULL;
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!txt) return -ENOMEM;
    size_t n = strlen(txt);
    if (n > max || n > INT_MAX) {
        free(txt);
        return -ENOSPC;
    }
    *out = txt;
    return (int)n;
}

int json_out_buf(const json_t *o, char *out, size_t cap)
{
    size_t n = o ? json_dumpb(o, out, cap, JSON_COMPACT) : 0; /* what it needs; over cap, out is left undefined */
    if (n == 0) return -ENOMEM;
    if (n >= cap || n > INT_MAX) return -ENOSPC;
    out[n] = '\0';
    return (int)n;
}
