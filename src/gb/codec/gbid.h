/* gbid.h — GB/T 28181 20-digit identities and the 10-digit SSRC ("y=" line).
 *
 * An id is centre code (8) + industry (2) + type (3) + network (1) + serial (6);
 * its first 10 digits are the SIP domain. The SSRC a platform puts in the SDP
 * "y=" line (and then in every RTP packet) is 10 decimal digits: '0' live or
 * '1' history, 5 digits of the domain, and a 4-digit serial the allocator below
 * hands out so that two streams of one platform never share an SSRC.
 *
 * Ids come as str_t slices (they are usually parsed out of a SIP URI). */
#ifndef CASCADE_GB_CODEC_GBID_H
#define CASCADE_GB_CODEC_GBID_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"

#define GB_ID_LEN 20
#define GB_DOMAIN_LEN 10
#define GB_SSRC_LEN 10
#define GB_SSRC_SERIALS 10000 /* serials 0001..9999; 0000 is never handed out */

/* Well-known type codes (digits 11-13). */
enum {
    GB_TYPE_DVR = 111,
    GB_TYPE_NVR = 118,
    GB_TYPE_ENCODER = 113,
    GB_TYPE_ALARM_INPUT = 134,
    GB_TYPE_CAMERA = 131,
    GB_TYPE_IPC = 132,
    GB_TYPE_SIP_SERVER = 200,
    GB_TYPE_BUSINESS_GROUP = 215,
    GB_TYPE_VIRTUAL_ORG = 216,
};

/* True when id is exactly 20 ASCII digits. */
bool gb_id_valid(str_t id);
/* Copies the first 10 digits (the SIP domain) into out. -1 when id is not a valid id. */
int gb_id_domain(str_t id, char out[GB_DOMAIN_LEN + 1]);
/* The type code at digits 11-13 (0..999), or -1 when id is not a valid id. */
int gb_id_type(str_t id);

/* SSRC allocator for one platform (one SIP domain). Serials rotate: each
 * allocation takes the next free serial after the previous one, so a just
 * released SSRC is not reused at once (late RTP of a finished stream must not
 * land in a new one). Plain struct, no heap. */
typedef struct {
    char prefix[6];                        /* domain digits [3..8) */
    uint16_t last;                         /* last serial handed out */
    uint16_t in_use;                       /* count of serials taken */
    uint8_t used[GB_SSRC_SERIALS / 8 + 1]; /* bitmap by serial */
} gb_ssrc_alloc_t;

/* domain: a 10-digit domain or a full 20-digit id. -1 when it is neither. The
 * 5 digits taken are domain[3..8), as wvp-GB28181-pro and most platforms do. */
int gb_ssrc_alloc_init(gb_ssrc_alloc_t *a, str_t domain);
/* Takes a free serial and writes the 10-digit SSRC (NUL-terminated).
 * Returns 0, or -1 when all 9999 serials are in use. */
int gb_ssrc_alloc(gb_ssrc_alloc_t *a, bool history, char out[GB_SSRC_LEN + 1]);
/* Marks an SSRC seen elsewhere (e.g. restored after a restart, or chosen by a
 * peer) as in use. -1 when it is malformed, has another prefix, or is taken. */
int gb_ssrc_claim(gb_ssrc_alloc_t *a, str_t ssrc);
/* Frees an SSRC. -1 when it is malformed, has another prefix, or was free. */
int gb_ssrc_release(gb_ssrc_alloc_t *a, str_t ssrc);
/* The 10-digit decimal SSRC as the 32-bit RTP SSRC value (it always fits:
 * at most 1999999999). -1 when ssrc is not 10 digits starting with 0 or 1. */
int gb_ssrc_to_u32(str_t ssrc, uint32_t *out);

#endif
