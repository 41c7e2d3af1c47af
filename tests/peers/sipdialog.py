#!/usr/bin/env python3
"""sipdialog.py — SIP state held open on the test's command, for peer tests
that must show something survives an event in the daemon (a reload): a
registration over one TCP connection, a call that ends only when told.

  sipdialog.py tcpreg --server H:P --user U --password P --out F --go G --stop S
      REGISTER over TCP (digest); "register STATUS" into F. Once file G exists:
      a refresh REGISTER on the same connection, "refresh STATUS" into F. Once
      S exists: exits (the connection closes).
  sipdialog.py call --server H:P --user U --to T --out F --go G
      INVITE over UDP to T through the server (a record-routing proxy);
      "invite STATUS" into F, ACK on a 2xx. Once G exists: BYE along the route
      set, "bye STATUS" into F.

Requests the server sends meanwhile (OPTIONS pings) are answered 200. F gets
one line per step ("register 200"), flushed at once; "error WHY" when a step
could not be done. Waiting for G or S gives up after --wait seconds."""
import argparse
import hashlib
import os
import random
import re
import socket
import sys
import time


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def rand(bits=48):
    return "%x" % random.getrandbits(bits)


class Msg:
    def __init__(self, text):
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                self.headers[-1] = (self.headers[-1][0], self.headers[-1][1] + " " + line.strip())
            elif ":" in line:
                k, v = line.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))
        self.is_response = self.first.startswith("SIP/2.0 ")
        self.status = int(self.first.split()[1]) if self.is_response else 0

    def get(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    def cseq_method(self):
        return (self.get("cseq") or " ").split()[-1]


class Peer:
    def __init__(self, a, tcp):
        self.a = a
        host, port = a.server.rsplit(":", 1)
        self.server = (host, int(port))
        self.tcp = tcp
        if tcp:
            self.sock = socket.create_connection(self.server, timeout=10)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        self.lip, self.lport = self.sock.getsockname()[:2]
        self.proto = "TCP" if tcp else "UDP"
        self.buf = b""
        self.domain = a.domain or host
        self.out = open(a.out, "a")

    def note(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def send(self, text):
        data = text.encode()
        if self.tcp:
            self.sock.sendall(data)
        else:
            self.sock.sendto(data, self.server)

    def via(self, branch):
        return "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport" % (self.proto, self.lip, self.lport, branch)

    def read(self, timeout):
        """One message, or None when nothing came within timeout."""
        self.sock.settimeout(timeout)
        try:
            if not self.tcp:
                data, _ = self.sock.recvfrom(65535)
                return Msg(data.decode(errors="replace"))
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self.buf[:end])
                    n = int(m.group(1)) if m else 0
                    if len(self.buf) >= end + 4 + n:
                        text = self.buf[:end + 4 + n]
                        self.buf = self.buf[end + 4 + n:]
                        return Msg(text.decode(errors="replace"))
                chunk = self.sock.recv(65535)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                self.buf += chunk
                self.buf = self.buf.lstrip(b"\r\n")  # keepalive CRLFs (RFC 5626)
        except socket.timeout:
            return None

    def answer_request(self, m):
        """A request from the server (an OPTIONS ping): 200."""
        if m.first.startswith("ACK "):
            return
        vias = "".join("Via: %s\r\n" % v for v in m.all("via"))
        to = m.get("to") or ""
        if ";tag=" not in to:
            to += ";tag=" + rand(32)
        self.send("SIP/2.0 200 OK\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n"
                  % (vias, m.get("from"), to, m.get("call-id"), m.get("cseq")))

    def final(self, request, method, deadline=32.0):
        """Sends request (again every 0.5 s over UDP) until a final answer to method comes."""
        self.send(request)
        end = time.time() + deadline
        resend = time.time() + 0.5
        provisional = False
        while time.time() < end:
            m = self.read(0.2)
            if m is None:
                if not self.tcp and not provisional and time.time() >= resend:
                    self.send(request)
                    resend = time.time() + 0.5
                continue
            if not m.is_response:
                self.answer_request(m)
                continue
            if m.cseq_method() != method:
                continue
            if m.status < 200:
                provisional = True
                continue
            return m
        return None

    def idle_until(self, path):
        """Answers what the server sends until path exists."""
        end = time.time() + self.a.wait
        while not os.path.exists(path):
            if time.time() > end:
                return False
            m = self.read(0.1)
            if m is not None and not m.is_response:
                self.answer_request(m)
        return True


def digest(a, method, uri, challenge):
    p = dict((k.lower(), v1 or v2) for k, v1, v2 in
             re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]+))', challenge))
    ha1 = md5("%s:%s:%s" % (a.user, p.get("realm", ""), a.password))
    ha2 = md5("%s:%s" % (method, uri))
    if "auth" in (p.get("qop") or "").split(","):
        cnonce, nc = rand(32), "00000001"
        resp = md5("%s:%s:%s:%s:auth:%s" % (ha1, p["nonce"], nc, cnonce, ha2))
        extra = ', qop=auth, nc=%s, cnonce="%s"' % (nc, cnonce)
    else:
        resp = md5("%s:%s:%s" % (ha1, p["nonce"], ha2))
        extra = ""
    alg = ', algorithm=%s' % p["algorithm"] if "algorithm" in p else ""
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"%s%s'
            % (a.user, p.get("realm", ""), p["nonce"], uri, resp, alg, extra))


def tcpreg(a):
    peer = Peer(a, tcp=True)
    callid, tag, cseq = rand() + "@sipdialog", rand(32), [0]
    uri = "sip:%s" % peer.domain

    def register(auth):
        cseq[0] += 1
        req = ("REGISTER %s SIP/2.0\r\n%s\r\nMax-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: <sip:%s@%s>\r\n"
               "Call-ID: %s\r\nCSeq: %d REGISTER\r\nContact: <sip:%s@%s:%d;transport=tcp>\r\nExpires: 600\r\n%s"
               "Content-Length: 0\r\n\r\n"
               % (uri, peer.via(rand()), a.user, peer.domain, tag, a.user, peer.domain, callid, cseq[0], a.user,
                  peer.lip, peer.lport, "Authorization: %s\r\n" % auth if auth else ""))
        m = peer.final(req, "REGISTER")
        if m is not None and m.status == 401 and not auth:
            return register(digest(a, "REGISTER", uri, m.get("www-authenticate") or ""))
        return m

    m = register(None)
    peer.note("register %s" % (m.status if m else "none"))
    if not peer.idle_until(a.go):
        peer.note("error no go file")
        return 1
    m = register(None)
    peer.note("refresh %s" % (m.status if m else "none"))
    peer.idle_until(a.stop)
    return 0


def call(a):
    peer = Peer(a, tcp=False)
    callid, tag = rand() + "@sipdialog", rand(32)
    target = "sip:%s@%s" % (a.to, peer.domain)
    frm = "<sip:%s@%s>;tag=%s" % (a.user, peer.domain, tag)
    sdp = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n"
           "a=rtpmap:0 PCMU/8000\r\n" % (peer.lip, peer.lip, peer.lport + 2))
    invite = ("INVITE %s SIP/2.0\r\n%s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
              "CSeq: 1 INVITE\r\nContact: <sip:%s@%s:%d>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
              % (target, peer.via(rand()), frm, target, callid, a.user, peer.lip, peer.lport, len(sdp), sdp))
    m = peer.final(invite, "INVITE")
    peer.note("invite %s" % (m.status if m else "none"))
    if m is None or not 200 <= m.status < 300:
        return 1
    to = m.get("to")
    rr = []
    for v in m.all("record-route"):
        rr += [x.strip() for x in re.findall(r"<[^>]*>[^,]*", v)]
    routes = "".join("Route: %s\r\n" % r for r in reversed(rr))
    contact = re.search(r"<([^>]*)>", m.get("contact") or "")
    ruri = contact.group(1) if contact else target

    def in_dialog(method, cseq, branch):
        return ("%s %s SIP/2.0\r\n%s\r\nMax-Forwards: 70\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
                "Content-Length: 0\r\n\r\n" % (method, ruri, peer.via(branch), routes, frm, to, callid, cseq, method))

    peer.send(in_dialog("ACK", 1, rand()))
    if not peer.idle_until(a.go):
        peer.note("error no go file")
        return 1
    m = peer.final(in_dialog("BYE", 2, rand()), "BYE")
    peer.note("bye %s" % (m.status if m else "none"))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tcpreg", "call"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default="")
    ap.add_argument("--to", default="")
    ap.add_argument("--domain", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--go", required=True)
    ap.add_argument("--stop", default="")
    ap.add_argument("--wait", type=float, default=240)
    a = ap.parse_args()
    try:
        return tcpreg(a) if a.mode == "tcpreg" else call(a)
    except (OSError, ConnectionError) as e:
        with open(a.out, "a") as f:
            f.write("error %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
