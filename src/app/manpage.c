/* manpage.c — roff for the config sections of cascade.ini(5) (manpage.h). */
#include "app/manpage.h"

#include <stdbool.h>
#include <string.h>

/* Writes text as roff running text: a backslash as \e, a hyphen as \-
 * (so man does not break "udp:127.0.0.1" or "--help" into a dash), and a
 * line that would start with a control character (. or ') guarded by \&. */
static void roff_text(FILE *out, const char *text, bool line_start)
{
    for (const char *p = text; *p; p++) {
        if (line_start && (*p == '.' || *p == '\'')) fputs("\\&", out);
        line_start = *p == '\n';
        if (*p == '\\') fputs("\\e", out);
        else if (*p == '-') fputs("\\-", out);
        else fputc(*p, out);
    }
}

static void print_key(FILE *out, const struct config_key *k)
{
    char allowed[256];
    config_key_describe(k, allowed, sizeof(allowed));
    fputs(".TP\n.B ", out);
    roff_text(out, k->name, false);
    fputs("\n", out);
    roff_text(out, allowed, true);
    fputs("; default ", out);
    if (k->def[0]) {
        fputs("\\(lq", out);
        roff_text(out, k->def, false);
        fputs("\\(rq", out);
    } else {
        fputs("empty", out);
    }
    fputs(".\n.br\n", out);
    roff_text(out, k->help, true);
    fputs("\n", out);
}

void manpage_config_print(const struct config_schema *s, FILE *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct config_binding *b = &s->bindings[i];
        const struct config_section *sec = b->section;
        if (b->stride) fprintf(out, ".SS \"[%s:<id>] (up to %d)\"\n", sec->name, b->max);
        else fprintf(out, ".SS \"[%s]\"\n", sec->name);
        roff_text(out, sec->help, true);
        fputs("\n", out);
        for (size_t j = 0; j < sec->nkeys; j++) print_key(out, &sec->keys[j]);
    }
}
