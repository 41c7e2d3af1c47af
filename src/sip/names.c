/* names.c — the fixed vocabularies of SIP: method names, header names
 * (long and compact, RFC 3261 §7.3.3 and the IANA registry), and the reason
 * phrases of status codes (RFC 3261 §21 and later RFCs).
 *
 * Lookups switch on length and first letter, then compare once: no hashing
 * tables to build at start-up and no per-byte calls. */
#include "sip/msg.h"
#include "sip/scan.h"

/* ---- methods --------------------------------------------------------- */

static const char *const method_names[SIP_METHOD_COUNT] = {
    [SIP_METHOD_UNKNOWN] = "", [SIP_INVITE] = "INVITE",     [SIP_ACK] = "ACK",
    [SIP_BYE] = "BYE",         [SIP_CANCEL] = "CANCEL",     [SIP_OPTIONS] = "OPTIONS",
    [SIP_REGISTER] = "REGISTER", [SIP_MESSAGE] = "MESSAGE", [SIP_INFO] = "INFO",
    [SIP_PRACK] = "PRACK",     [SIP_UPDATE] = "UPDATE",     [SIP_SUBSCRIBE] = "SUBSCRIBE",
    [SIP_NOTIFY] = "NOTIFY",   [SIP_REFER] = "REFER",       [SIP_PUBLISH] = "PUBLISH",
};

const char *sip_method_name(enum sip_method m)
{
    if ((unsigned)m >= SIP_METHOD_COUNT) return "";
    return method_names[m];
}

/* Methods are case-sensitive (RFC 3261 §7.1). */
#define METHOD_IS(lit, m) \
    if (memcmp(s, lit, sizeof(lit) - 1) == 0) return m
enum sip_method sip_method_from_str(str_t name)
{
    const char *s = name.s;
    switch (name.len) {
    case 3:
        METHOD_IS("ACK", SIP_ACK);
        METHOD_IS("BYE", SIP_BYE);
        break;
    case 4:
        METHOD_IS("INFO", SIP_INFO);
        break;
    case 5:
        METHOD_IS("PRACK", SIP_PRACK);
        METHOD_IS("REFER", SIP_REFER);
        break;
    case 6:
        METHOD_IS("INVITE", SIP_INVITE);
        METHOD_IS("CANCEL", SIP_CANCEL);
        METHOD_IS("UPDATE", SIP_UPDATE);
        METHOD_IS("NOTIFY", SIP_NOTIFY);
        break;
    case 7:
        METHOD_IS("OPTIONS", SIP_OPTIONS);
        METHOD_IS("MESSAGE", SIP_MESSAGE);
        METHOD_IS("PUBLISH", SIP_PUBLISH);
        break;
    case 8:
        METHOD_IS("REGISTER", SIP_REGISTER);
        break;
    case 9:
        METHOD_IS("SUBSCRIBE", SIP_SUBSCRIBE);
        break;
    default:
        break;
    }
    return SIP_METHOD_UNKNOWN;
}

/* ---- header names ---------------------------------------------------- */

static const char *const canonical[SIP_HDR_COUNT] = {
    [SIP_HDR_OTHER] = "",
    [SIP_HDR_VIA] = "Via",
    [SIP_HDR_FROM] = "From",
    [SIP_HDR_TO] = "To",
    [SIP_HDR_CALL_ID] = "Call-ID",
    [SIP_HDR_CSEQ] = "CSeq",
    [SIP_HDR_MAX_FORWARDS] = "Max-Forwards",
    [SIP_HDR_CONTACT] = "Contact",
    [SIP_HDR_ROUTE] = "Route",
    [SIP_HDR_RECORD_ROUTE] = "Record-Route",
    [SIP_HDR_EXPIRES] = "Expires",
    [SIP_HDR_MIN_EXPIRES] = "Min-Expires",
    [SIP_HDR_CONTENT_LENGTH] = "Content-Length",
    [SIP_HDR_CONTENT_TYPE] = "Content-Type",
    [SIP_HDR_CONTENT_ENCODING] = "Content-Encoding",
    [SIP_HDR_AUTHORIZATION] = "Authorization",
    [SIP_HDR_PROXY_AUTHORIZATION] = "Proxy-Authorization",
    [SIP_HDR_WWW_AUTHENTICATE] = "WWW-Authenticate",
    [SIP_HDR_PROXY_AUTHENTICATE] = "Proxy-Authenticate",
    [SIP_HDR_AUTHENTICATION_INFO] = "Authentication-Info",
    [SIP_HDR_REQUIRE] = "Require",
    [SIP_HDR_PROXY_REQUIRE] = "Proxy-Require",
    [SIP_HDR_SUPPORTED] = "Supported",
    [SIP_HDR_UNSUPPORTED] = "Unsupported",
    [SIP_HDR_ALLOW] = "Allow",
    [SIP_HDR_ACCEPT] = "Accept",
    [SIP_HDR_PATH] = "Path",
    [SIP_HDR_SUBJECT] = "Subject",
    [SIP_HDR_DATE] = "Date",
    [SIP_HDR_USER_AGENT] = "User-Agent",
    [SIP_HDR_SERVER] = "Server",
    [SIP_HDR_WARNING] = "Warning",
    [SIP_HDR_EVENT] = "Event",
    [SIP_HDR_SUBSCRIPTION_STATE] = "Subscription-State",
    [SIP_HDR_REFER_TO] = "Refer-To",
    [SIP_HDR_REFERRED_BY] = "Referred-By",
    [SIP_HDR_REPLY_TO] = "Reply-To",
    [SIP_HDR_RETRY_AFTER] = "Retry-After",
    [SIP_HDR_TIMESTAMP] = "Timestamp",
    [SIP_HDR_ORGANIZATION] = "Organization",
    [SIP_HDR_PRIORITY] = "Priority",
    [SIP_HDR_ALLOW_EVENTS] = "Allow-Events",
    [SIP_HDR_SESSION_EXPIRES] = "Session-Expires",
    [SIP_HDR_IDENTITY] = "Identity",
    [SIP_HDR_IDENTITY_INFO] = "Identity-Info",
    [SIP_HDR_ACCEPT_CONTACT] = "Accept-Contact",
    [SIP_HDR_REJECT_CONTACT] = "Reject-Contact",
    [SIP_HDR_REQUEST_DISPOSITION] = "Request-Disposition",
    [SIP_HDR_CONTENT_DISPOSITION] = "Content-Disposition",
    [SIP_HDR_CONTENT_LANGUAGE] = "Content-Language",
    [SIP_HDR_ACCEPT_ENCODING] = "Accept-Encoding",
    [SIP_HDR_ACCEPT_LANGUAGE] = "Accept-Language",
    [SIP_HDR_MIME_VERSION] = "MIME-Version",
    [SIP_HDR_ALERT_INFO] = "Alert-Info",
    [SIP_HDR_CALL_INFO] = "Call-Info",
    [SIP_HDR_ERROR_INFO] = "Error-Info",
    [SIP_HDR_IN_REPLY_TO] = "In-Reply-To",
    [SIP_HDR_RSEQ] = "RSeq",
    [SIP_HDR_RACK] = "RAck",
    [SIP_HDR_MIN_SE] = "Min-SE",
    [SIP_HDR_SERVICE_ROUTE] = "Service-Route",
    [SIP_HDR_P_ASSERTED_IDENTITY] = "P-Asserted-Identity",
    [SIP_HDR_REASON] = "Reason",
};

const char *sip_hdr_canonical_name(enum sip_hdr type)
{
    if ((unsigned)type >= SIP_HDR_COUNT) return "";
    return canonical[type];
}

/* Compact forms (RFC 3261 §7.3.3, RFC 3841, 4028, 4474, 6665, 8224). */
static const uint8_t compact[26] = {
    ['a' - 'a'] = SIP_HDR_ACCEPT_CONTACT,      ['b' - 'a'] = SIP_HDR_REFERRED_BY,
    ['c' - 'a'] = SIP_HDR_CONTENT_TYPE,        ['d' - 'a'] = SIP_HDR_REQUEST_DISPOSITION,
    ['e' - 'a'] = SIP_HDR_CONTENT_ENCODING,    ['f' - 'a'] = SIP_HDR_FROM,
    ['i' - 'a'] = SIP_HDR_CALL_ID,             ['j' - 'a'] = SIP_HDR_REJECT_CONTACT,
    ['k' - 'a'] = SIP_HDR_SUPPORTED,           ['l' - 'a'] = SIP_HDR_CONTENT_LENGTH,
    ['m' - 'a'] = SIP_HDR_CONTACT,             ['n' - 'a'] = SIP_HDR_IDENTITY_INFO,
    ['o' - 'a'] = SIP_HDR_EVENT,               ['r' - 'a'] = SIP_HDR_REFER_TO,
    ['s' - 'a'] = SIP_HDR_SUBJECT,             ['t' - 'a'] = SIP_HDR_TO,
    ['u' - 'a'] = SIP_HDR_ALLOW_EVENTS,        ['v' - 'a'] = SIP_HDR_VIA,
    ['x' - 'a'] = SIP_HDR_SESSION_EXPIRES,     ['y' - 'a'] = SIP_HDR_IDENTITY,
};

/* The first letter is compared before the whole name so a miss costs one
 * comparison per candidate of the same length. */
#define HDR_IS(lit, t) \
    if (c0 == (lit)[0] && token_ieq(s, lit, sizeof(lit) - 1)) return t

enum sip_hdr sip_hdr_lookup(const char *s, size_t n)
{
    if (n == 0) return SIP_HDR_OTHER;
    unsigned char c0 = cc_lower((unsigned char)s[0]);
    switch (n) {
    case 1:
        return (c0 >= 'a' && c0 <= 'z') ? (enum sip_hdr)compact[c0 - 'a'] : SIP_HDR_OTHER;
    case 2:
        HDR_IS("to", SIP_HDR_TO);
        break;
    case 3:
        HDR_IS("via", SIP_HDR_VIA);
        break;
    case 4:
        HDR_IS("from", SIP_HDR_FROM);
        HDR_IS("cseq", SIP_HDR_CSEQ);
        HDR_IS("path", SIP_HDR_PATH);
        HDR_IS("date", SIP_HDR_DATE);
        HDR_IS("rseq", SIP_HDR_RSEQ);
        HDR_IS("rack", SIP_HDR_RACK);
        break;
    case 5:
        HDR_IS("route", SIP_HDR_ROUTE);
        HDR_IS("allow", SIP_HDR_ALLOW);
        HDR_IS("event", SIP_HDR_EVENT);
        break;
    case 6:
        HDR_IS("accept", SIP_HDR_ACCEPT);
        HDR_IS("server", SIP_HDR_SERVER);
        HDR_IS("reason", SIP_HDR_REASON);
        HDR_IS("min-se", SIP_HDR_MIN_SE);
        break;
    case 7:
        HDR_IS("call-id", SIP_HDR_CALL_ID);
        HDR_IS("contact", SIP_HDR_CONTACT);
        HDR_IS("expires", SIP_HDR_EXPIRES);
        HDR_IS("require", SIP_HDR_REQUIRE);
        HDR_IS("subject", SIP_HDR_SUBJECT);
        HDR_IS("warning", SIP_HDR_WARNING);
        break;
    case 8:
        HDR_IS("refer-to", SIP_HDR_REFER_TO);
        HDR_IS("reply-to", SIP_HDR_REPLY_TO);
        HDR_IS("priority", SIP_HDR_PRIORITY);
        HDR_IS("identity", SIP_HDR_IDENTITY);
        break;
    case 9:
        HDR_IS("supported", SIP_HDR_SUPPORTED);
        HDR_IS("timestamp", SIP_HDR_TIMESTAMP);
        HDR_IS("call-info", SIP_HDR_CALL_INFO);
        break;
    case 10:
        HDR_IS("user-agent", SIP_HDR_USER_AGENT);
        HDR_IS("alert-info", SIP_HDR_ALERT_INFO);
        HDR_IS("error-info", SIP_HDR_ERROR_INFO);
        break;
    case 11:
        HDR_IS("min-expires", SIP_HDR_MIN_EXPIRES);
        HDR_IS("unsupported", SIP_HDR_UNSUPPORTED);
        HDR_IS("referred-by", SIP_HDR_REFERRED_BY);
        HDR_IS("retry-after", SIP_HDR_RETRY_AFTER);
        HDR_IS("in-reply-to", SIP_HDR_IN_REPLY_TO);
        break;
    case 12:
        HDR_IS("max-forwards", SIP_HDR_MAX_FORWARDS);
        HDR_IS("content-type", SIP_HDR_CONTENT_TYPE);
        HDR_IS("record-route", SIP_HDR_RECORD_ROUTE);
        HDR_IS("organization", SIP_HDR_ORGANIZATION);
        HDR_IS("allow-events", SIP_HDR_ALLOW_EVENTS);
        HDR_IS("mime-version", SIP_HDR_MIME_VERSION);
        break;
    case 13:
        HDR_IS("authorization", SIP_HDR_AUTHORIZATION);
        HDR_IS("proxy-require", SIP_HDR_PROXY_REQUIRE);
        HDR_IS("service-route", SIP_HDR_SERVICE_ROUTE);
        HDR_IS("identity-info", SIP_HDR_IDENTITY_INFO);
        break;
    case 14:
        HDR_IS("content-length", SIP_HDR_CONTENT_LENGTH);
        HDR_IS("accept-contact", SIP_HDR_ACCEPT_CONTACT);
        HDR_IS("reject-contact", SIP_HDR_REJECT_CONTACT);
        break;
    case 15:
        HDR_IS("session-expires", SIP_HDR_SESSION_EXPIRES);
        HDR_IS("accept-encoding", SIP_HDR_ACCEPT_ENCODING);
        HDR_IS("accept-language", SIP_HDR_ACCEPT_LANGUAGE);
        break;
    case 16:
        HDR_IS("content-encoding", SIP_HDR_CONTENT_ENCODING);
        HDR_IS("www-authenticate", SIP_HDR_WWW_AUTHENTICATE);
        HDR_IS("content-language", SIP_HDR_CONTENT_LANGUAGE);
        break;
    case 18:
        HDR_IS("proxy-authenticate", SIP_HDR_PROXY_AUTHENTICATE);
        HDR_IS("subscription-state", SIP_HDR_SUBSCRIPTION_STATE);
        break;
    case 19:
        HDR_IS("proxy-authorization", SIP_HDR_PROXY_AUTHORIZATION);
        HDR_IS("authentication-info", SIP_HDR_AUTHENTICATION_INFO);
        HDR_IS("content-disposition", SIP_HDR_CONTENT_DISPOSITION);
        HDR_IS("p-asserted-identity", SIP_HDR_P_ASSERTED_IDENTITY);
        HDR_IS("request-disposition", SIP_HDR_REQUEST_DISPOSITION);
        break;
    default:
        break;
    }
    return SIP_HDR_OTHER;
}

enum sip_hdr sip_hdr_from_name(str_t name) { return sip_hdr_lookup(name.s, name.len); }

/* ---- reason phrases -------------------------------------------------- */

struct reason {
    short code;
    const char *text;
};

/* RFC 3261 §21 plus the codes later RFCs registered (IANA "SIP Response Codes"). */
static const struct reason reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"},          /* RFC 6228 */
    {200, "OK"},
    {202, "Accepted"},                         /* RFC 6665 */
    {204, "No Notification"},                  /* RFC 5839 */
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"},       /* RFC 3903 */
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {417, "Unknown Resource-Priority"},        /* RFC 4412 */
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"},       /* RFC 4028 */
    {423, "Interval Too Brief"},
    {424, "Bad Location Information"},         /* RFC 6442 */
    {425, "Bad Alert Message"},                /* RFC 8876 */
    {428, "Use Identity Header"},              /* RFC 8224 */
    {429, "Provide Referrer Identity"},        /* RFC 3892 */
    {430, "Flow Failed"},                      /* RFC 5626 */
    {433, "Anonymity Disallowed"},             /* RFC 5079 */
    {436, "Bad Identity Info"},
    {437, "Unsupported Credential"},
    {438, "Invalid Identity Header"},
    {439, "First Hop Lacks Outbound Support"}, /* RFC 5626 */
    {440, "Max-Breadth Exceeded"},             /* RFC 5393 */
    {469, "Bad Info Package"},                 /* RFC 6086 */
    {470, "Consent Needed"},                   /* RFC 5360 */
    {478, "Unresolvable Destination"},         /* not IANA: SER/Kamailio's, the proxy sends it */
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"},                        /* RFC 6665 */
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {494, "Security Agreement Required"},      /* RFC 3329 */
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {555, "Push Notification Service Not Supported"}, /* RFC 8599 */
    {580, "Precondition Failure"},             /* RFC 3312 */
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
    {607, "Unwanted"},                         /* RFC 8197 */
    {608, "Rejected"},                         /* RFC 8688 */
};

/* Every code we may send gets a phrase: an empty one is legal (RFC 3261
 * §25.1) but tells the peer nothing, and some parsers refuse it. */
static const char *class_phrase(int status)
{
    /* RFC 3261 §7.2 names the six classes. */
    static const char *const classes[] = {"Provisional", "Success", "Redirection", "Client Error", "Server Error",
                                          "Global Failure"};
    return status >= 100 && status <= 699 ? classes[status / 100 - 1] : "";
}

const char *sip_reason_phrase(int status)
{
    /* binary search over the sorted table */
    size_t lo = 0, hi = sizeof(reasons) / sizeof(reasons[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (reasons[mid].code == status) return reasons[mid].text;
        if (reasons[mid].code < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    return class_phrase(status);
}

bool sip_reason_phrase_known(int status)
{
    const char *p = sip_reason_phrase(status);
    return p[0] && p != class_phrase(status);
}
