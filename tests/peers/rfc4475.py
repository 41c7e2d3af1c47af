"""rfc4475.py — invalid requests in the categories of RFC 4475 §3.1.2 / §3.3
(SIP torture tests), written here for cascade's tests from the RFC's prose:
same traps, own content. Each case says what a strict element answers.

cases(transport, lport, domain) -> [(name, bytes, expected)] where expected
is a status code (the request must be answered with it) or None (nothing can
be answered: UDP gets nothing back, TCP sees the connection closed)."""
import os


def _tok():
    return os.urandom(6).hex()


def _msg(start, headers, body=""):
    hs = list(headers)
    if not any(h.lower().startswith(("content-length:", "l:")) for h in hs):
        hs.append("Content-Length: %d" % len(body.encode()))
    return (start + "\r\n" + "\r\n".join(hs) + "\r\n\r\n" + body).encode()


def _base(method, tr, lport, domain, cseq=None, drop=(), replace=None):
    """The usual header set of a request to ghost@domain; drop removes
    headers by name, replace swaps one header line for another."""
    h = [
        "Via: SIP/2.0/%s 127.0.0.1:%d;rport;branch=z9hG4bK%s" % (tr, lport, _tok()),
        "Max-Forwards: 70",
        "From: <sip:probe@client.example>;tag=%s" % _tok(),
        "To: <sip:ghost@%s>" % domain,
        "Call-ID: %s@client.example" % _tok(),
        "CSeq: %s" % (cseq or "1 " + method),
        "Contact: <sip:probe@127.0.0.1:%d>" % lport,
    ]
    h = [x for x in h if x.split(":")[0] not in drop]
    if replace:
        h = [replace[1] if x.split(":")[0] == replace[0] else x for x in h]
    return h


def cases(tr, lport, domain):
    ru = "sip:ghost@%s" % domain
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    many = ["X-Filler-%d: %d" % (i, i) for i in range(140)]
    out = [
        # §3.1.2.16: an unknown protocol version -> 505
        ("version SIP/7.0", _msg("OPTIONS %s SIP/7.0" % ru, _base("OPTIONS", tr, lport, domain)), 505),
        # §3.1.2.6: an unterminated quoted string in the To display name -> 400
        ("unbalanced quote in To", _msg("INVITE %s SIP/2.0" % ru, _base(
            "INVITE", tr, lport, domain, replace=("To", 'To: "Ghost of Christmas <%s>' % ru)),
            sdp).replace(b"Contact:", b"Content-Type: application/sdp\r\nContact:"), 400),
        # §3.1.2.9: more than one SP between the request-line elements -> 400
        ("extra spaces in request-line", _msg("INVITE  %s   SIP/2.0" % ru, _base("INVITE", tr, lport, domain)), 400),
        # §3.1.2.10: SP between the version and the CRLF -> 400
        ("trailing space in request-line", _msg("OPTIONS %s SIP/2.0  " % ru, _base("OPTIONS", tr, lport, domain)), 400),
        # §3.1.2.8: LWS inside the Request-URI -> 400
        ("LWS in the Request-URI", _msg("INVITE sip:ghost@%s; lr SIP/2.0" % domain,
                                        _base("INVITE", tr, lport, domain)), 400),
        # an Accept that is no media-range list (RFC 3261 §20.1) -> 400
        ("bad Accept syntax", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain) +
                                   ["Accept: application, sdp;;q=="]), 400),
        # §3.1.2.4: a CSeq number over 2**32-1 (and Max-Forwards over 255) -> 400
        ("CSeq overflow", _msg("REGISTER sip:%s SIP/2.0" % domain, _base(
            "REGISTER", tr, lport, domain, cseq="36893488147419103232 REGISTER",
            replace=("Max-Forwards", "Max-Forwards: 300"))), 400),
        # §3.3.1 style: no Call-ID (Via present: the response can still be built) -> 400
        ("missing Call-ID", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain, drop=("Call-ID",))), 400),
        # more header fields than we parse (128) -> 513
        ("more than 128 headers", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain) + many), 513),
        # one header line over 8 KB (our line limit) -> 513
        ("8 KB header line", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain) +
                                  ["X-Long: " + "a" * 8300]), 513),
        # §3.1.2.7: a Request-URI in <> -> 400
        ("Request-URI in <>", _msg("INVITE <%s> SIP/2.0" % ru, _base("INVITE", tr, lport, domain)), 400),
        # §3.1.2.11: escaped headers in a SIP Request-URI -> 400
        ("headers in the Request-URI", _msg("INVITE %s?Route=%%3Csip:x.example%%3E SIP/2.0" % ru,
                                            _base("INVITE", tr, lport, domain)), 400),
        # §3.1.2.17: CSeq method differs from the request method -> 400
        ("CSeq method mismatch", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain, cseq="1 INVITE")), 400),
        # §3.3.8 style: two From header fields -> 400
        ("two From fields", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain) +
                                 ["From: <sip:other@client.example>;tag=2"]), 400),
    ]
    if tr == "UDP":
        # §3.1.2.2: Content-Length larger than the datagram's body -> 400
        # (over TCP the stream simply waits for the rest: not a refusal)
        out.append(("Content-Length past the body", _msg("INVITE %s SIP/2.0" % ru, _base("INVITE", tr, lport, domain) +
                                                          ["Content-Length: 9999"], "v=0\r\n"), 400))
        # §3.1.2.3: a negative Content-Length -> 400 (over TCP: no framing, closed)
        out.append(("negative Content-Length", _msg("INVITE %s SIP/2.0" % ru, _base("INVITE", tr, lport, domain) +
                                                     ["Content-Length: -999"]), 400))
    else:
        out.append(("negative Content-Length", _msg("INVITE %s SIP/2.0" % ru, _base("INVITE", tr, lport, domain) +
                                                     ["Content-Length: -999"]), None))
    # Nothing to answer with: no Via (where would it go?), a broken Via, no
    # From/To (§3.3.1's "insuf": dropped, logged), no CSeq.
    out += [
        ("no Via", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain, drop=("Via",))), None),
        ("broken Via", _msg("OPTIONS %s SIP/2.0" % ru, _base(
            "OPTIONS", tr, lport, domain, replace=("Via", "Via: SIP/2.0/%s 127.0.0.1:%d;;,;,," % (tr, lport)))), None),
        ("no From, To, Call-ID", _msg("OPTIONS %s SIP/2.0" % ru, _base(
            "OPTIONS", tr, lport, domain, drop=("From", "To", "Call-ID"))), None),
        ("no CSeq", _msg("OPTIONS %s SIP/2.0" % ru, _base("OPTIONS", tr, lport, domain, drop=("CSeq",))), None),
    ]
    return out
