/* msg.h — the SIP message model (RFC 3261 §7, §20, §25) shared by every layer.
 *
 * sip_parse() turns one complete message in a caller-owned buffer into a
 * struct sip_msg allocated in a caller-owned arena. Nothing is copied: every
 * str_t points into the buffer (or, for headers added later, into the arena),
 * so the buffer and the arena must outlive the message.
 *
 * The fields every layer needs on every message (start line, top Via, From,
 * To, Call-ID, CSeq, Max-Forwards, Content-Length/Type, Expires) are parsed
 * eagerly and checked; everything else (Contact lists, Route sets, auth
 * parameters, URIs inside headers) is parsed on demand by the functions in
 * this header, so the hot path pays only for what it reads.
 *
 * Messages are also built and modified here (a proxy pushes a Via, removes a
 * Route) and printed with sip_print(); parse -> print -> parse is stable. */
#ifndef CASCADE_SIP_MSG_H
#define CASCADE_SIP_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/sbuf.h"
#include "base/str.h"

enum sip_method {
    SIP_METHOD_UNKNOWN = 0, /* an extension method: see method_name */
    SIP_INVITE, SIP_ACK, SIP_BYE, SIP_CANCEL, SIP_OPTIONS, SIP_REGISTER,
    SIP_MESSAGE, SIP_INFO, SIP_PRACK, SIP_UPDATE, SIP_SUBSCRIBE, SIP_NOTIFY,
    SIP_REFER, SIP_PUBLISH,
    SIP_METHOD_COUNT
};

/* Headers the stack knows by name; compact forms map to the same type. */
enum sip_hdr {
    SIP_HDR_OTHER = 0,
    SIP_HDR_VIA,                 /* v */
    SIP_HDR_FROM,                /* f */
    SIP_HDR_TO,                  /* t */
    SIP_HDR_CALL_ID,             /* i */
    SIP_HDR_CSEQ,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_CONTACT,             /* m */
    SIP_HDR_ROUTE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_EXPIRES,
    SIP_HDR_MIN_EXPIRES,
    SIP_HDR_CONTENT_LENGTH,      /* l */
    SIP_HDR_CONTENT_TYPE,        /* c */
    SIP_HDR_CONTENT_ENCODING,    /* e */
    SIP_HDR_AUTHORIZATION,
    SIP_HDR_PROXY_AUTHORIZATION,
    SIP_HDR_WWW_AUTHENTICATE,
    SIP_HDR_PROXY_AUTHENTICATE,
    SIP_HDR_AUTHENTICATION_INFO,
    SIP_HDR_REQUIRE,
    SIP_HDR_PROXY_REQUIRE,
    SIP_HDR_SUPPORTED,           /* k */
    SIP_HDR_UNSUPPORTED,
    SIP_HDR_ALLOW,
    SIP_HDR_ACCEPT,
    SIP_HDR_PATH,
    SIP_HDR_SUBJECT,             /* s */
    SIP_HDR_DATE,
    SIP_HDR_USER_AGENT,
    SIP_HDR_SERVER,
    SIP_HDR_WARNING,
    SIP_HDR_EVENT,               /* o */
    SIP_HDR_SUBSCRIPTION_STATE,
    SIP_HDR_REFER_TO,            /* r */
    SIP_HDR_REFERRED_BY,         /* b */
    SIP_HDR_REPLY_TO,
    SIP_HDR_RETRY_AFTER,
    SIP_HDR_TIMESTAMP,
    SIP_HDR_ORGANIZATION,
    SIP_HDR_PRIORITY,
    /* Added after the first contract (append-only so existing values stay). */
    SIP_HDR_ALLOW_EVENTS,        /* u  (RFC 6665) */
    SIP_HDR_SESSION_EXPIRES,     /* x  (RFC 4028) */
    SIP_HDR_IDENTITY,            /* y  (RFC 8224) */
    SIP_HDR_IDENTITY_INFO,       /* n  (RFC 4474) */
    SIP_HDR_ACCEPT_CONTACT,      /* a  (RFC 3841) */
    SIP_HDR_REJECT_CONTACT,      /* j  (RFC 3841) */
    SIP_HDR_REQUEST_DISPOSITION, /* d  (RFC 3841) */
    SIP_HDR_CONTENT_DISPOSITION,
    SIP_HDR_CONTENT_LANGUAGE,
    SIP_HDR_ACCEPT_ENCODING,
    SIP_HDR_ACCEPT_LANGUAGE,
    SIP_HDR_MIME_VERSION,
    SIP_HDR_ALERT_INFO,
    SIP_HDR_CALL_INFO,
    SIP_HDR_ERROR_INFO,
    SIP_HDR_IN_REPLY_TO,
    SIP_HDR_RSEQ,                /* RFC 3262 */
    SIP_HDR_RACK,
    SIP_HDR_MIN_SE,              /* RFC 4028 */
    SIP_HDR_SERVICE_ROUTE,       /* RFC 3608 */
    SIP_HDR_P_ASSERTED_IDENTITY, /* RFC 3325 */
    SIP_HDR_REASON,              /* RFC 3326 */
    SIP_HDR_COUNT
};

enum sip_uri_scheme { SIP_SCHEME_SIP = 0, SIP_SCHEME_SIPS, SIP_SCHEME_TEL, SIP_SCHEME_OTHER };

struct sip_uri {
    enum sip_uri_scheme scheme;
    str_t scheme_name;
    str_t user;          /* still escaped as received (may be empty) */
    str_t password;
    str_t host;          /* IPv6 references keep their brackets: "[2001:db8::1]" */
    uint16_t port;       /* 0 when absent */
    str_t params;        /* the whole ";a=b;c" run, without the first ';' */
    str_t headers;       /* after '?', without the '?' */
    str_t raw;           /* the whole URI */
    /* Common parameters pulled out of params for convenience. */
    str_t transport, maddr, user_param, method_param, ttl;
    bool lr;
    bool host_is_ipv6;
};

struct sip_name_addr {
    str_t display;       /* without quotes (escapes kept) */
    str_t uri_raw;       /* inside <> when present, else the bare URI */
    struct sip_uri uri;
    str_t params;        /* header params after the URI, without the first ';' */
    str_t tag;           /* the tag param (From/To), empty when absent */
    bool star;           /* Contact: * */
};

struct sip_via {
    str_t protocol;      /* "SIP/2.0" */
    str_t transport;     /* "UDP", "TCP", "TLS", "WS", "WSS", "SCTP" */
    str_t host;          /* sent-by host, brackets kept for IPv6 */
    uint16_t port;       /* 0 when absent */
    str_t params;        /* without the first ';' */
    str_t branch;
    str_t received;
    str_t maddr;
    str_t ttl;
    bool has_rport;
    uint16_t rport;      /* value when "rport=N", 0 when bare "rport" */
    str_t raw;           /* this via-parm as received */
};

struct sip_cseq {
    uint32_t number;
    enum sip_method method;
    str_t method_name;
};

struct sip_header {
    enum sip_hdr type;
    str_t name;          /* as received (may be compact, any case) */
    str_t value;         /* trimmed; folded lines stay inside (CR/LF count as LWS) */
};

struct sip_contact {
    struct sip_name_addr addr;
    int q1000;           /* q=0.5 -> 500; 1000 when absent */
    int64_t expires;     /* expires param, -1 when absent */
    str_t instance;      /* +sip.instance */
    str_t reg_id;
    struct sip_contact *next;
};

#define SIP_MAX_HEADERS_DEFAULT 128

struct sip_msg {
    bool is_request;
    /* request line */
    enum sip_method method;
    str_t method_name;
    str_t ruri_raw;
    struct sip_uri ruri;
    /* status line */
    int status;
    str_t reason;
    str_t version;           /* "SIP/2.0" */

    /* every header in message order; headers[0..header_count) */
    struct sip_header *headers;
    uint32_t header_count, header_cap;
    int32_t first[SIP_HDR_COUNT]; /* index of the first header of each type, -1 none */

    /* parsed eagerly */
    struct sip_via via;          /* top-most via-parm */
    uint32_t via_count;          /* via-parms over all Via headers */
    struct sip_name_addr from, to;
    str_t call_id;
    struct sip_cseq cseq;
    int32_t max_forwards;        /* -1 when absent */
    int64_t content_length;      /* -1 when absent */
    int64_t expires;             /* Expires header, -1 when absent */
    str_t content_type;
    str_t body;

    const char *buf;             /* the buffer parsed, from the start line (leading CRLFs skipped) */
    size_t len;                  /* bytes of the message from buf (header + body) */
};

struct sip_parse_limits {
    uint32_t max_message_bytes;  /* default 65536 */
    uint32_t max_headers;        /* default 128 */
    uint32_t max_line_bytes;     /* default 8192 */
};

/* Error of a failed parse. reason is a static string fit for a 400 reason
 * phrase ("Bad CSeq", "Missing Call-ID", "Message Too Large", ...). When
 * enough parsed to answer (start line, Via, From, To, Call-ID, CSeq),
 * can_answer is true and msg holds those fields. */
struct sip_parse_error {
    const char *reason;
    bool can_answer;
    int status;                  /* 400 usually; 413 too large, 505 bad version, 513 */
};

void sip_parse_limits_default(struct sip_parse_limits *l);

/* Parses exactly one message from buf[0..len). Accepts LF-only line ends.
 * Limits: more than max_message_bytes is 513 "Message Too Large" (parsing
 * goes on so the error can be answered), a Content-Length past it 413, more
 * than max_headers headers or a header line longer than max_line_bytes 513,
 * a longer request line 414. Duplicated single-value headers (From, To,
 * Call-ID, CSeq, Max-Forwards, Content-Type, Expires, Content-Length with a
 * different value) are errors, as is a CSeq method that differs from the
 * request method ("CSeq method mismatch").
 * When the buffer holds more than one message (stream framing is the
 * transport's job, see sip_frame_length) the extra bytes are an error unless
 * Content-Length bounds the body. Returns 0, or -1 with err filled. */
int sip_parse(const char *buf, size_t len, arena_t *arena, const struct sip_parse_limits *lim,
              struct sip_msg *msg, struct sip_parse_error *err);

/* Stream framing (TCP, RFC 3261 §18.3): how many bytes of buf form the next
 * complete message. Returns >0 the length, 0 need more data, -1 garbage
 * (no valid start line, bad or missing Content-Length, over max bytes).
 * Leading CRLFs (keepalives) are reported through *skip: bytes to drop first. */
long sip_frame_length(const char *buf, size_t len, size_t max_bytes, size_t *skip);

/* Method name <-> enum. */
enum sip_method sip_method_from_str(str_t name);
const char *sip_method_name(enum sip_method m);
/* "OK", "Not Found", ...; a code not in the table gets its class's name
 * (RFC 3261 §7.2: "Client Error" for 499); "" outside 100..699. */
const char *sip_reason_phrase(int status);
bool sip_reason_phrase_known(int status);      /* in the table (not a class name) */

/* Header access. */
const struct sip_header *sip_msg_header(const struct sip_msg *m, enum sip_hdr type);
const struct sip_header *sip_msg_header_next(const struct sip_msg *m, const struct sip_header *h);
const struct sip_header *sip_msg_header_by_name(const struct sip_msg *m, const char *name);
enum sip_hdr sip_hdr_from_name(str_t name);
const char *sip_hdr_canonical_name(enum sip_hdr type);

/* Comma-separated list iteration that respects quotes and <> (RFC 3261 §7.3.1).
 * Start with *cursor = header value; each call yields one trimmed element. */
bool sip_list_next(str_t *cursor, str_t *item);
/* Iterates every element of every header of a type, across header lines. */
struct sip_list_iter { const struct sip_msg *m; const struct sip_header *h; str_t cursor; };
void sip_list_iter_init(struct sip_list_iter *it, const struct sip_msg *m, enum sip_hdr type);
bool sip_list_iter_next(struct sip_list_iter *it, str_t *item);

/* Parameters ";name=value;flag" (value may be a quoted string, returned
 * without quotes). Names compare case-insensitively. */
bool sip_param_get(str_t params, const char *name, str_t *value);
/* Iterates parameters: each call yields the next name and value (quotes
 * removed); has_value (may be NULL) tells "name=" from a bare flag. */
bool sip_param_next(str_t *cursor, str_t *name, str_t *value, bool *has_value);

/* Piecewise parsers, usable on any header value. 0 ok, -1 malformed. */
int sip_uri_parse(str_t raw, struct sip_uri *uri);
int sip_name_addr_parse(str_t value, struct sip_name_addr *na);
int sip_via_parse(str_t value, struct sip_via *via);   /* one via-parm */
int sip_cseq_parse(str_t value, struct sip_cseq *cseq);

/* RFC 3261 §19.1.4 URI equality. */
bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b);
/* Unescapes %HH into dst; returns length, or -1 if it does not fit / bad escape. */
int sip_unescape(str_t in, char *dst, size_t cap);

/* Contact list of the message, in order; *star set for "Contact: *". */
int sip_msg_contacts(const struct sip_msg *m, arena_t *a, struct sip_contact **list, bool *star);

/* Editing a parsed or built message. New text is copied into the arena. */
int sip_msg_init_request(struct sip_msg *m, arena_t *a, enum sip_method method, str_t method_name, str_t ruri);
int sip_msg_init_response(struct sip_msg *m, arena_t *a, int status, str_t reason);
/* index -1 appends; 0 puts it first (e.g. a new Via). Type is derived from the name. */
int sip_msg_insert_header(struct sip_msg *m, arena_t *a, int index, str_t name, str_t value);
int sip_msg_add_header(struct sip_msg *m, arena_t *a, str_t name, str_t value); /* append */
void sip_msg_remove_header(struct sip_msg *m, uint32_t index);
int sip_msg_set_ruri(struct sip_msg *m, arena_t *a, str_t ruri);
/* Re-derives the eager fields (via, from, to, ...) after edits. */
int sip_msg_refresh(struct sip_msg *m);
/* Serializes: start line, headers in order ("Name: value"), a Content-Length
 * that matches body, blank line, body. Compact names are printed as given. */
int sip_print(const struct sip_msg *m, sbuf_t *out);

/* Builds a response to req straight into out (the hot path: no model).
 * Copies every Via, From, To (adding to_tag when To has none and to_tag is
 * not empty), Call-ID, CSeq, and for 18x/2xx to INVITE the Record-Route set;
 * then the extra header lines (each "Name: value", no CRLF), then the body. */
int sip_build_response(const struct sip_msg *req, int status, const char *reason, str_t to_tag,
                       const str_t *extra_headers, size_t n_extra, str_t content_type, str_t body,
                       sbuf_t *out);

#endif
