#!/usr/bin/env python3
"""sipreg.py — a minimal SIP REGISTER client with digest (MD5, qop=auth or
the RFC 2069 form), for peer tests that need what sipp cannot do: pick the
source IP, answer many times on one nonce, keep a nonce and answer it again
later from elsewhere, replay a captured Authorization verbatim.

  sipreg.py [options] register            final status, e.g. "200" or "401 stale"
  sipreg.py [options] guess N             one challenge, N wrong answers on its nonce
                                          (nc 1..N with qop): one status per answer
  sipreg.py [options] save FILE           register, keep the nonce and the
                                          Authorization that got 200 in FILE (JSON)
  sipreg.py [options] reuse FILE          answer FILE's nonce again (next nc)
  sipreg.py [options] replay FILE         send FILE's Authorization as it was
  sipreg.py [options] hold                register, print the status, then keep the
                                          connection (--transport tcp) open until killed

Statuses print on one line, space-separated; "401 stale" when the 401 said
stale=true. Options: --server HOST:PORT, --bind IP[:PORT], --user, --password,
--aor (default: user), --domain (R-URI/To host, default the server's host),
--gb-id ID (GB/T 28181: R-URI sip:ID@DOMAIN), --contact-port N,
--expires N, --transport udp|tcp (tcp: one connection, no retransmission). Exit status 0 when every exchange got an answer."""
import argparse
import hashlib
import json
import os
import random
import re
import socket
import sys


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def params(hdr_value):
    out = {}
    for m in re.finditer(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', hdr_value):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


class Client:
    def __init__(self, a):
        self.a = a
        host, port = a.server.rsplit(":", 1)
        self.server = (host, int(port))
        bip, _, bport = a.bind.partition(":")
        self.tcp = a.transport == "tcp"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM)
        self.sock.bind((bip, int(bport or 0)))
        self.buf = b""
        if self.tcp:
            self.sock.settimeout(5.0)
            self.sock.connect(self.server)
        self.lip, self.lport = self.sock.getsockname()
        self.domain = a.domain or host
        self.aor = a.aor or a.user
        self.callid = "%x@sipreg" % random.getrandbits(64)
        self.tag = "%x" % random.getrandbits(32)
        self.cseq = 0
        if a.gb_id:
            self.ruri = "sip:%s@%s" % (a.gb_id, self.domain)
        else:
            self.ruri = "sip:%s:%d" % self.server

    def request(self, authorization=None):
        self.cseq += 1
        branch = "z9hG4bK%x" % random.getrandbits(48)
        cport = self.a.contact_port or self.lport
        lines = [
            "REGISTER %s SIP/2.0" % self.ruri,
            "Via: SIP/2.0/%s %s:%d;branch=%s;rport" % ("TCP" if self.tcp else "UDP", self.lip, self.lport, branch),
            "From: <sip:%s@%s>;tag=%s" % (self.aor, self.domain, self.tag),
            "To: <sip:%s@%s>" % (self.aor, self.domain),
            "Call-ID: %s" % self.callid,
            "CSeq: %d REGISTER" % self.cseq,
            "Contact: <sip:%s@%s:%d%s>" % (self.aor, self.lip, cport, ";transport=tcp" if self.tcp else ""),
            "Max-Forwards: 70",
            "Expires: %d" % self.a.expires,
        ]
        if authorization:
            lines.append("Authorization: " + authorization)
        lines += ["Content-Length: 0", "", ""]
        data = "\r\n".join(lines).encode()
        if self.tcp:
            return self.request_tcp(data)
        for _ in range(8):  # UDP: retransmit until a final answer comes (timer E in spirit)
            self.sock.sendto(data, self.server)
            self.sock.settimeout(1.0)
            try:
                while True:
                    msg, _ = self.sock.recvfrom(65536)
                    text = msg.decode(errors="replace")
                    if not text.startswith("SIP/2.0 "):
                        continue  # a request (ping): not ours to answer here
                    status, hdrs = self.final_answer(text.split("\r\n\r\n", 1)[0])
                    if status is not None:
                        return status, hdrs
            except socket.timeout:
                continue
        return None, []

    # (status, headers) of a response's head when it is the final answer to our
    # last request (its CSeq), else (None, [])
    def final_answer(self, head_text):
        head = head_text.split("\r\n")
        status = int(head[0].split()[1])
        hdrs = [(h.split(":", 1)[0].strip().lower(), h.split(":", 1)[1].strip()) for h in head[1:] if ":" in h]
        cs = [v for k, v in hdrs if k == "cseq"]
        if status < 200 or not cs or int(cs[0].split()[0]) != self.cseq:
            return None, []
        return status, hdrs

    # one message off the stream (headers, then Content-Length bytes); None when it closed
    def read_tcp(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        self.buf = rest[n:]
        return head.decode(errors="replace")

    def request_tcp(self, data):
        self.sock.sendall(data)
        try:
            while True:
                text = self.read_tcp()
                if text is None:
                    return None, []
                if not text.startswith("SIP/2.0 "):
                    continue
                status, hdrs = self.final_answer(text)
                if status is not None:
                    return status, hdrs
        except socket.timeout:
            return None, []

    def answer(self, ch, nc, password, uri=None):
        p = params(ch)
        uri = uri or self.ruri
        ha1 = md5("%s:%s:%s" % (self.a.user, p["realm"], password))
        ha2 = md5("REGISTER:%s" % uri)
        qop = "auth" in p.get("qop", "").split(",")
        if qop:
            cnonce = "%x" % random.getrandbits(64)
            ncs = "%08x" % nc
            resp = md5("%s:%s:%s:%s:auth:%s" % (ha1, p["nonce"], ncs, cnonce, ha2))
            extra = ', cnonce="%s", nc=%s, qop=auth' % (cnonce, ncs)
        else:
            resp = md5("%s:%s:%s" % (ha1, p["nonce"], ha2))
            extra = ""
        if p.get("opaque"):
            extra += ', opaque="%s"' % p["opaque"]
        return 'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5%s' % (
            self.a.user, p["realm"], p["nonce"], uri, resp, extra)


def challenge_of(hdrs):
    for k, v in hdrs:
        if k == "www-authenticate" and "MD5" in v.upper().replace("SHA-256", ""):
            return v
    for k, v in hdrs:
        if k == "www-authenticate":
            return v
    return None


def show(status, hdrs):
    if status is None:
        return "timeout"
    if status == 401 and any(k == "www-authenticate" and re.search(r"stale\s*=\s*true", v, re.I) for k, v in hdrs):
        return "401 stale"
    return str(status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default="")
    ap.add_argument("--aor")
    ap.add_argument("--domain")
    ap.add_argument("--gb-id")
    ap.add_argument("--contact-port", type=int)
    ap.add_argument("--expires", type=int, default=300)
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("mode", choices=["register", "guess", "save", "reuse", "replay", "hold"])
    ap.add_argument("arg", nargs="?")
    a = ap.parse_args()
    c = Client(a)
    out = []
    if a.mode in ("reuse", "replay"):
        saved = json.load(open(a.arg))
        if a.mode == "replay":
            status, hdrs = c.request(saved["authorization"])
        else:
            saved["nc"] += 1
            status, hdrs = c.request(c.answer(saved["challenge"], saved["nc"], a.password, saved["uri"]))
            json.dump(saved, open(a.arg, "w"))
        out.append(show(status, hdrs))
    else:
        status, hdrs = c.request()
        ch = challenge_of(hdrs) if status == 401 else None
        if status != 401 or not ch:
            out.append(show(status, hdrs))
        elif a.mode == "guess":
            for i in range(int(a.arg)):
                status, hdrs = c.request(c.answer(ch, i + 1, "guess%d-%s" % (i, a.password)))
                out.append(show(status, hdrs))
        else:
            authz = c.answer(ch, 1, a.password)
            status, hdrs = c.request(authz)
            out.append(show(status, hdrs))
            if a.mode == "save":
                json.dump({"challenge": ch, "nc": 1, "uri": c.ruri, "authorization": authz}, open(a.arg, "w"))
    print(" ".join(out), flush=True)
    if a.mode == "hold" and out == ["200"]:
        # the binding lives as long as this connection: read (and drop) what comes until killed
        c.sock.settimeout(None)
        while (c.read_tcp() if c.tcp else c.sock.recv(65536)) is not None:
            pass
    return 0 if "timeout" not in out else 1


if __name__ == "__main__":
    sys.exit(main())
