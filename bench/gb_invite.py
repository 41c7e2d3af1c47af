#!/usr/bin/env python3
"""gb_invite.py — the smallest GB/T 28181 upper for bench/gb-fanout.sh's anchor
run: a server that is not a SIP platform (ZLMediaKit: its openRtpServer port
takes PS over RTP) gets the same camera stream cascade gets, from the same
device simulator (cascade-gbsim), because this script plays the upper's SIP
part: it answers the devices' REGISTER and MESSAGE (keepalive, catalog) with
200, and sends each camera a live INVITE whose SDP points at the RTP port
the media server opened (then the ACK).

    gb_invite.py --listen PORT --device IP:PORT --targets FILE

FILE: one "CHANNEL_ID RTP_PORT" a line. Prints "ok N" once every INVITE was
answered 200 (ACKed), then keeps answering until killed. UDP only; not a
SIP implementation: enough for cascade-gbsim, nothing more.
"""
import argparse
import random
import socket
import sys
import time


def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def headers_all(msg, name):
    out = []
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


def answer_200(sock, msg, src):
    to = header(msg, "To") or ""
    if ";tag=" not in to:
        to += ";tag=%08x" % random.getrandbits(32)
    lines = ["SIP/2.0 200 OK"]
    lines += ["Via: " + v for v in headers_all(msg, "Via")]
    lines += ["From: " + (header(msg, "From") or ""), "To: " + to,
              "Call-ID: " + (header(msg, "Call-ID") or ""), "CSeq: " + (header(msg, "CSeq") or "")]
    if msg.startswith("REGISTER"):
        lines.append("Expires: 3600")
    lines += ["Content-Length: 0", "", ""]
    sock.sendto("\r\n".join(lines).encode(), src)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--device", required=True, help="the simulator's SIP address IP:PORT")
    ap.add_argument("--targets", required=True)
    ap.add_argument("--upper-id", default="34020000002000000001")
    a = ap.parse_args()
    dev_ip, dev_port = a.device.rsplit(":", 1)
    dev = (dev_ip, int(dev_port))
    targets = [l.split() for l in open(a.targets) if l.strip()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", a.listen))
    sock.settimeout(0.2)
    calls = {}   # Call-ID -> [channel, invite text, answered]
    pending = list(targets)
    last_send = 0.0
    announced = False
    while True:
        now = time.time()
        # a few INVITEs at a time, re-sent every second until answered (UDP)
        if now - last_send > 1.0 or (pending and len([c for c in calls.values() if not c[2]]) < 20):
            last_send = now
            for c in [c for c in calls.values() if not c[2]]:
                sock.sendto(c[1].encode(), dev)
            while pending and len([c for c in calls.values() if not c[2]]) < 20:
                ch, port = pending.pop(0)
                cid = "%016x@gb-invite" % random.getrandbits(64)
                ssrc = "0%09d" % random.randint(100000000, 999999999)
                sdp = ("v=0\r\no=%s 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       "m=video %s RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=%s\r\n") % (
                           a.upper_id, port, ssrc)
                inv = ("INVITE sip:%s@%s:%d SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bK%016x\r\n"
                       "From: <sip:%s@%s>;tag=%08x\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"
                       "Contact: <sip:%s@127.0.0.1:%d>\r\nMax-Forwards: 70\r\nSubject: %s:%s,%s:0\r\n"
                       "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s") % (
                           ch, dev_ip, dev[1], a.listen, random.getrandbits(64), a.upper_id, a.upper_id[:10],
                           random.getrandbits(32), ch, ch[:10], cid, a.upper_id, a.listen, ch, ssrc,
                           a.upper_id, len(sdp), sdp)
                calls[cid] = [ch, inv, False]
                sock.sendto(inv.encode(), dev)
        if not announced and not pending and calls and all(c[2] for c in calls.values()):
            print("ok %d" % len(calls), flush=True)
            announced = True
        try:
            data, src = sock.recvfrom(65536)
        except socket.timeout:
            continue
        msg = data.decode("utf-8", "replace")
        if msg.startswith("SIP/2.0 "):
            cid = header(msg, "Call-ID")
            code = int(msg.split(" ", 2)[1])
            if cid in calls and "INVITE" in (header(msg, "CSeq") or "") and code >= 200:
                if code != 200:
                    print("INVITE for %s: %d" % (calls[cid][0], code), file=sys.stderr, flush=True)
                contact = header(msg, "Contact") or ("<sip:%s@%s:%d>" % (calls[cid][0], dev_ip, dev[1]))
                ruri = contact.strip("<>").split(">")[0]
                ack = ("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bK%016x\r\n"
                       "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                       "Content-Length: 0\r\n\r\n") % (ruri, a.listen, random.getrandbits(64),
                                                        header(msg, "From"), header(msg, "To"), cid)
                sock.sendto(ack.encode(), src)
                calls[cid][2] = True
            continue
        method = msg.split(" ", 1)[0]
        if method in ("REGISTER", "MESSAGE", "NOTIFY", "OPTIONS", "BYE", "INFO"):
            answer_200(sock, msg, src)


if __name__ == "__main__":
    main()
