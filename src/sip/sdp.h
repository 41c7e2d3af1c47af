/* sdp.h — SDP session descriptions (RFC 4566) with the GB/T 28181 lines
 * `y=` (10-digit SSRC) and `f=` (media format description).
 *
 * sdp_parse() slices a body (usually sip_msg.body) into a struct
 * sdp_session allocated in a caller-owned arena; nothing is copied, so the
 * body and the arena must outlive the session. sdp_print() writes a session
 * back in RFC 4566 §5 order (y= and f= last, where GB/T 28181 puts them), so
 * a session filled by hand is also how an SDP offer/answer is built.
 *
 * Media-level lines (i, c, b, k, a) hang off their struct sdp_media; the
 * helpers below resolve the usual questions (port, proto, formats, rtpmap
 * of a payload type, direction, setup, connection address), falling back
 * to the session level where RFC 4566 says so. */
#ifndef CASCADE_SIP_SDP_H
#define CASCADE_SIP_SDP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/sbuf.h"
#include "base/str.h"

struct sdp_attr {           /* a=name or a=name:value */
    str_t name;
    str_t value;
    bool has_value;
};

struct sdp_bandwidth {      /* b=<bwtype>:<bandwidth> */
    str_t type;
    uint64_t value;
};

struct sdp_conn {           /* c=<nettype> <addrtype> <address>[/<ttl>][/<number>] */
    str_t nettype;          /* "IN" */
    str_t addrtype;         /* "IP4" / "IP6" */
    str_t address;          /* without /ttl/number */
    uint32_t ttl;           /* 0 when absent */
    uint32_t count;         /* number of addresses, 1 when absent */
};

struct sdp_time {           /* t=<start> <stop> and its r= lines */
    uint64_t start, stop;
    const str_t *repeats;   /* r= values as received */
    uint32_t repeat_count;
};

struct sdp_media {          /* m=<media> <port>[/<count>] <proto> <fmt> ... */
    str_t media;            /* "audio", "video", "application", ... */
    uint16_t port;
    uint16_t port_count;    /* 1 when absent */
    str_t proto;            /* "RTP/AVP", "TCP/RTP/AVP", "RTP/SAVP", ... */
    str_t fmts;             /* the format list as received, "96 97 98" */
    str_t info;             /* i= */
    str_t key;              /* k= */
    const struct sdp_conn *conns;
    uint32_t conn_count;
    const struct sdp_bandwidth *bws;
    uint32_t bw_count;
    const struct sdp_attr *attrs;
    uint32_t attr_count;
};

struct sdp_session {
    uint32_t version;       /* v= (0) */
    struct {                /* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address> */
        str_t username, sess_id, sess_version, nettype, addrtype, address;
    } origin;
    str_t name;             /* s= ("Play", "Playback", "Download" in GB/T 28181) */
    str_t info;             /* i= */
    str_t uri;              /* u= (GB/T 28181 playback: "<channel-id>:<type>") */
    const str_t *emails;    /* e= */
    uint32_t email_count;
    const str_t *phones;    /* p= */
    uint32_t phone_count;
    const struct sdp_conn *conn; /* session-level c=, NULL when absent */
    const struct sdp_bandwidth *bws;
    uint32_t bw_count;
    const struct sdp_time *times;
    uint32_t time_count;
    str_t zone;             /* z= as received */
    str_t key;              /* k= */
    const struct sdp_attr *attrs;
    uint32_t attr_count;
    const struct sdp_media *media;
    uint32_t media_count;
    str_t gb_ssrc;          /* y= (GB/T 28181), empty when absent */
    str_t gb_format;        /* f= (GB/T 28181), empty when absent */
};

/* Parses body[0..len). Accepts CRLF or LF line ends (RFC 4566 §5). Unknown
 * type letters are refused as RFC 4566 §5 requires. Returns 0, or -1 with
 * *reason (static text) set. */
int sdp_parse(const char *body, size_t len, arena_t *a, struct sdp_session *s, const char **reason);

/* Writes the session with CRLF line ends. 0, or -1 when out failed or a
 * mandatory field (o=, s=, t=) is missing. */
int sdp_print(const struct sdp_session *s, sbuf_t *out);

/* Formats of a media line one by one: start with *cursor = m->fmts. */
bool sdp_fmt_next(str_t *cursor, str_t *fmt);

/* Attribute lookup in a list (first match, name case-sensitive as RFC 4566
 * §5.13 attribute names are). */
const struct sdp_attr *sdp_attr_find(const struct sdp_attr *attrs, uint32_t n, const char *name);
/* Media-level first, then session-level. */
const struct sdp_attr *sdp_media_attr(const struct sdp_session *s, const struct sdp_media *m, const char *name);

struct sdp_rtpmap {          /* a=rtpmap:<pt> <encoding>/<clock>[/<params>] */
    unsigned pt;
    str_t encoding;          /* "PS", "H264", "PCMA" ... */
    uint32_t clock_rate;
    str_t params;            /* channels for audio, empty when absent */
};
/* The rtpmap of payload type pt in m; -1 when there is none (static payload
 * types 0-34 without rtpmap are the caller's business, RFC 3551). */
int sdp_media_rtpmap(const struct sdp_media *m, unsigned pt, struct sdp_rtpmap *out);

enum sdp_direction { SDP_SENDRECV = 0, SDP_SENDONLY, SDP_RECVONLY, SDP_INACTIVE };
/* RFC 4566 §6: media attribute, else session attribute, else sendrecv. */
enum sdp_direction sdp_media_direction(const struct sdp_session *s, const struct sdp_media *m);
const char *sdp_direction_name(enum sdp_direction d);

enum sdp_setup { SDP_SETUP_NONE = 0, SDP_SETUP_ACTIVE, SDP_SETUP_PASSIVE, SDP_SETUP_ACTPASS, SDP_SETUP_HOLDCONN };
/* RFC 4145 a=setup (used by GB/T 28181 over TCP). */
enum sdp_setup sdp_media_setup(const struct sdp_session *s, const struct sdp_media *m);

/* The connection of a media: its own first c=, else the session's; NULL when neither. */
const struct sdp_conn *sdp_media_conn(const struct sdp_session *s, const struct sdp_media *m);

/* GB/T 28181 y= as a number: 0, or -1 when absent or not 1..10 digits fitting 32 bits. */
int sdp_gb_ssrc(const struct sdp_session *s, uint32_t *ssrc);

#endif
