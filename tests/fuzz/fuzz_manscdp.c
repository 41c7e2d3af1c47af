/* fuzz_manscdp.c — libFuzzer target for the MANSCDP parser and builder.
 *
 * Every input is parsed (with no charset, and with a Content-Type charset when
 * the first byte asks for one); whatever parses is built again in GB2312 and
 * UTF-8 and parsed back, and the key fields must survive: the builder must
 * never write something its own parser rejects or reads differently. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "gb/codec/manscdp.h"

/* What the builder does to a string (manscdp.h): control chars -> ' ',
 * invalid UTF-8 / U+FFFE / U+FFFF -> '?'; the parser then trims whitespace. */
static char *normalize(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s), o = 0;
    char *r = malloc(n + 1);
    if (!r) abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) c = ' ';
        if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBF &&
            ((unsigned char)s[i + 2] == 0xBE || (unsigned char)s[i + 2] == 0xBF)) {
            r[o++] = '?';
            i += 2;
            continue;
        }
        r[o++] = (char)c;
    }
    r[o] = '\0';
    char *b = r;
    while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n') b++;
    size_t l = strlen(b);
    while (l && (b[l - 1] == ' ' || b[l - 1] == '\t' || b[l - 1] == '\r' || b[l - 1] == '\n')) l--;
    memmove(r, b, l);
    r[l] = '\0';
    return r;
}

static void same_str(const char *a, const char *b)
{
    if (!a || !b) {
        if (a != b) __builtin_trap();
        return;
    }
    char *na = normalize(a), *nb = normalize(b);
    if (strcmp(na, nb) != 0) __builtin_trap();
    free(na);
    free(nb);
}

static void round_trip(const gb_manscdp_t *m, gb_charset_t cs)
{
    sbuf_t b;
    sbuf_init(&b);
    int rc = gb_manscdp_build(&b, cs, m);
    if (rc != 0) __builtin_trap(); /* a parsed message always has a kind and a CmdType */
    gb_manscdp_t r;
    rc = gb_manscdp_parse(b.data, b.len, NULL, &r);
    if (rc == GB_MANSCDP_ETOOBIG) goto out; /* escaping can grow a body past the cap */
    if (rc != 0) __builtin_trap();
    if (r.kind != m->kind || r.cmd != m->cmd || r.has_sn != m->has_sn || r.sn != m->sn) __builtin_trap();
    if (r.has_sum_num != m->has_sum_num || r.sum_num != m->sum_num) __builtin_trap();
    if (r.item_count != m->item_count || r.record_count != m->record_count ||
        r.dstatus.alarm_count != m->dstatus.alarm_count)
        __builtin_trap();
    if (r.charset != cs) __builtin_trap();
    same_str(r.device_id, m->device_id);
    same_str(r.status, m->status);
    same_str(r.control.ptz_cmd, m->control.ptz_cmd);
    for (size_t i = 0; i < m->item_count; i++) {
        same_str(r.items[i].device_id, m->items[i].device_id);
        same_str(r.items[i].name, m->items[i].name);
        if (r.items[i].status != m->items[i].status || r.items[i].port != m->items[i].port ||
            r.items[i].event != m->items[i].event || r.items[i].has_position != m->items[i].has_position)
            __builtin_trap();
    }
    for (size_t i = 0; i < m->record_count; i++) {
        same_str(r.records[i].file_path, m->records[i].file_path);
        if (r.records[i].file_size != m->records[i].file_size) __builtin_trap();
    }
    gb_manscdp_free(&r);
out:
    sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *charsets[] = {NULL, "GB2312", "GBK", "UTF-8", "GB18030"};
    const char *cs = NULL;
    /* A leading 0x01..0x04 picks a Content-Type charset for the rest. */
    if (size && data[0] >= 1 && data[0] <= 4) {
        cs = charsets[data[0]];
        data++, size--;
    }
    gb_manscdp_t m;
    if (gb_manscdp_parse((const char *)data, size, cs, &m) == 0) {
        round_trip(&m, GB_CHARSET_GB2312);
        round_trip(&m, GB_CHARSET_UTF8);
    }
    gb_manscdp_free(&m);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    xmlInitParser();
    return 0;
}
