#!/usr/bin/env bash
# test_gb_lower_totag.sh — the GB lower role's own answers carry a To tag
# (RFC 3261 §8.2.6.2: a UAS adds one to every response to a request without
# one). A python "upper" on a UDP port is the lower's upstream; from it come a
# MESSAGE (Query DeviceInfo) -> 200, an INVITE for a channel the lower does not
# have -> 404, an INVITE for a channel with status OFF -> 480, and a MESSAGE
# whose Content-Type is not MANSCDP -> 415. Each answer is read off the wire.
source "$(dirname "$0")/lib.sh"

LO_SIP=$(free_port); LO_API=$(free_port); UP_PORT=$(free_port)
UP_ID=34020000002000000001
LO_ID=34020000002000000002
CH_OFF=34020000001310000103
API_TOKEN=tok

node_ini lower "$LO_SIP" "$LO_API" 3402000000 <<EOF
[gb]
id = $LO_ID
domain = 3402000000
media_ip = 127.0.0.1
$(gb_upstream_ini "$UP_ID" "$UP_PORT" udp secret 60)
EOF
start_cascade lower "$WORK/lower.ini"
lo() { API_PORT=$LO_API api "$@"; }
check "lower: a channel with status OFF" \
    test "$(lo POST /gb/channels "{\"channels\":[{\"id\":\"$CH_OFF\",\"name\":\"off\",\"status\":\"OFF\"}]}" | jget 'd["imported"]')" = 1

# ask KIND TARGET: one request from the "upper" at 127.0.0.1:$UP_PORT; prints
# the final status and the To header of the answer ("STATUS|To: ...").
ask() {
    python3 - "$LO_SIP" "$UP_PORT" "$UP_ID" "$LO_ID" "$1" "$2" <<'PY'
import socket, sys, random
lo, up, up_id, lo_id, kind, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", up))
branch = "z9hG4bK%08x" % random.randrange(1 << 32)
cid = "totag-%08x" % random.randrange(1 << 32)
method = "INVITE" if kind == "invite" else "MESSAGE"
if kind == "invite":
    ctype = "application/sdp"
    body = ("v=0\r\no=%s 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=video 40000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0200000001\r\n" % up_id)
elif kind == "message":
    ctype = "Application/MANSCDP+xml"
    body = ('<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>DeviceInfo</CmdType>\r\n'
            '<SN>7</SN>\r\n<DeviceID>%s</DeviceID>\r\n</Query>\r\n' % lo_id)
else:
    ctype, body = "text/plain", "hello"
head = ("%s sip:%s@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
        "From: <sip:%s@3402000000>;tag=up1\r\nTo: <sip:%s@3402000000>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"
        "Contact: <sip:%s@127.0.0.1:%d>\r\nMax-Forwards: 70\r\n"
        % (method, target, lo, up, branch, up_id, target, cid, method, up_id, up))
if kind == "invite":
    head += "Subject: %s:0200000001,%s:0\r\n" % (target, up_id)
msg = head + "Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (ctype, len(body), body)
s.sendto(msg.encode(), ("127.0.0.1", lo))
s.settimeout(5)
try:
    while True:
        r = s.recv(65535).decode(errors="replace")
        if not r.startswith("SIP/2.0 ") or branch not in r:
            continue   # the lower's own REGISTER attempts, or a Response MESSAGE
        code = int(r.split(" ", 2)[1])
        if code >= 200:
            break
except socket.timeout:
    print("0|"); sys.exit(0)
to = [l for l in r.split("\r\n") if l.lower().startswith("to:")][0]
if kind == "invite" and code >= 300:   # ACK for the non-2xx (RFC 3261 §17.1.1.3), with the To of the answer
    s.sendto(("ACK sip:%s@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
              "From: <sip:%s@3402000000>;tag=up1\r\n%s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
              "Content-Length: 0\r\n\r\n" % (target, lo, up, branch, up_id, to, cid)).encode(), ("127.0.0.1", lo))
print("%d|%s" % (code, to))
PY
}
has_tag() { [[ $1 == "$2|"* && $1 == *";tag="* ]]; }

R=$(ask message "$LO_ID")
check "MESSAGE Query DeviceInfo -> 200 with a To tag ($R)" has_tag "$R" 200
R=$(ask invite 34020000001310000999)
check "INVITE for an unknown channel -> 404 with a To tag ($R)" has_tag "$R" 404
R=$(ask invite "$CH_OFF")
check "INVITE for a channel with status OFF -> 480 with a To tag ($R)" has_tag "$R" 480
R=$(ask other "$LO_ID")
check "MESSAGE that is not MANSCDP -> 415 with a To tag ($R)" has_tag "$R" 415

finish
