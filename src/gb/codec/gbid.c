/* gbid.c — GB/T 28181 ids and SSRC allocation (see gbid.h). */
#include "gb/codec/gbid.h"

#include <stdio.h>
#include <string.h>

static bool all_digits(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.s[i] < '0' || s.s[i] > '9') return false;
    return true;
}

bool gb_id_valid(str_t id) { return id.s && id.len == GB_ID_LEN && all_digits(id); }

int gb_id_domain(str_t id, char out[GB_DOMAIN_LEN + 1])
{
    if (!gb_id_valid(id)) return -1;
    memcpy(out, id.s, GB_DOMAIN_LEN);
    out[GB_DOMAIN_LEN] = '\0';
    return 0;
}

int gb_id_type(str_t id)
{
    if (!gb_id_valid(id)) return -1;
    return (id.s[10] - '0') * 100 + (id.s[11] - '0') * 10 + (id.s[12] - '0');
}

int gb_ssrc_alloc_init(gb_ssrc_alloc_t *a, str_t domain)
{
    if (!domain.s || (domain.len != GB_DOMAIN_LEN && domain.len != GB_ID_LEN) || !all_digits(domain))
        return -1;
    memset(a, 0, sizeof(*a));
    memcpy(a->prefix, domain.s + 3, 5);
    a->prefix[5] = '\0';
    return 0;
}

static bool serial_used(const gb_ssrc_alloc_t *a, unsigned n) { return a->used[n / 8] & (1u << (n % 8)); }
static void serial_set(gb_ssrc_alloc_t *a, unsigned n, bool on)
{
    if (on)
        a->used[n / 8] |= (uint8_t)(1u << (n % 8));
    else
        a->used[n / 8] &= (uint8_t)~(1u << (n % 8));
}

int gb_ssrc_alloc(gb_ssrc_alloc_t *a, bool history, char out[GB_SSRC_LEN + 1])
{
    if (a->in_use >= GB_SSRC_SERIALS - 1) return -1;
    unsigned n = a->last;
    for (unsigned tries = 0; tries < GB_SSRC_SERIALS; tries++) {
        n = n >= GB_SSRC_SERIALS - 1 ? 1 : n + 1;
        if (serial_used(a, n)) continue;
        serial_set(a, n, true);
        a->in_use++;
        a->last = (uint16_t)n;
        snprintf(out, GB_SSRC_LEN + 1, "%c%s%04u", history ? '1' : '0', a->prefix, n);
        return 0;
    }
    return -1;
}

/* Checks shape and prefix, returns the serial or -1. */
static int ssrc_serial(const gb_ssrc_alloc_t *a, str_t ssrc)
{
    if (!ssrc.s || ssrc.len != GB_SSRC_LEN || !all_digits(ssrc)) return -1;
    if (ssrc.s[0] != '0' && ssrc.s[0] != '1') return -1;
    if (memcmp(ssrc.s + 1, a->prefix, 5) != 0) return -1;
    int n = (ssrc.s[6] - '0') * 1000 + (ssrc.s[7] - '0') * 100 + (ssrc.s[8] - '0') * 10 + (ssrc.s[9] - '0');
    return n == 0 ? -1 : n;
}

int gb_ssrc_claim(gb_ssrc_alloc_t *a, str_t ssrc)
{
    int n = ssrc_serial(a, ssrc);
    if (n < 0 || serial_used(a, (unsigned)n)) return -1;
    serial_set(a, (unsigned)n, true);
    a->in_use++;
    return 0;
}

int gb_ssrc_release(gb_ssrc_alloc_t *a, str_t ssrc)
{
    int n = ssrc_serial(a, ssrc);
    if (n < 0 || !serial_used(a, (unsigned)n)) return -1;
    serial_set(a, (unsigned)n, false);
    a->in_use--;
    return 0;
}

int gb_ssrc_to_u32(str_t ssrc, uint32_t *out)
{
    if (!ssrc.s || ssrc.len != GB_SSRC_LEN || !all_digits(ssrc)) return -1;
    if (ssrc.s[0] != '0' && ssrc.s[0] != '1') return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < ssrc.len; i++) v = v * 10 + (uint32_t)(ssrc.s[i] - '0');
    *out = v;
    return 0;
}
