"""sipprobe.py — a raw-socket SIP client for the peer tests (issue 9).

It sends requests written byte for byte over UDP or TCP and collects every
response that comes back within a window, so a test can count bytes
(amplification: bytes out / bytes in), status lines and retransmissions
without a SIP stack in between. Imported by the test scripts' inline Python
(PYTHONPATH=tests/peers)."""
import os
import select
import socket
import time


def token(n=10):
    return os.urandom(n).hex()


def request(method, ruri, lport, frm="<sip:mallory@evil.example>", to=None, extra=(), body="",
            transport="UDP", cseq=None, to_tag=None, branch=None, call_id=None):
    """A request as a user agent would write it (Via with rport, Max-Forwards,
    Contact, User-Agent): about 300 bytes without body."""
    to = to or "<%s>" % ruri
    lines = [
        "%s %s SIP/2.0" % (method, ruri),
        "Via: SIP/2.0/%s 127.0.0.1:%d;rport;branch=%s" % (transport, lport, branch or "z9hG4bK" + token(8)),
        "Max-Forwards: 70",
        "From: %s;tag=%s" % (frm, token(4)),
        "To: %s%s" % (to, ";tag=" + to_tag if to_tag else ""),
        "Call-ID: %s@evil.example" % (call_id or token(8)),
        "CSeq: %s" % (cseq or "1 " + method),
        "Contact: <sip:mallory@127.0.0.1:%d>" % lport,
        "User-Agent: sipprobe/1.0",
    ]
    lines += list(extra)
    lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def collect(socks, window):
    """Reads every datagram arriving on socks for window seconds: {sock: [bytes]}."""
    got = {s: [] for s in socks}
    end = time.monotonic() + window
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return got
        r, _, _ = select.select(list(socks), [], [], left)
        for s in r:
            got[s].append(s.recv(65535))


def status_line(msg):
    return msg.split(b"\r\n", 1)[0].decode(errors="replace")


def status(msg):
    try:
        return int(msg[8:11])
    except ValueError:
        return 0


def header(msg, name):
    for line in msg.split(b"\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode(errors="replace")
    return None


def to_tag(msg):
    to = header(msg, "To") or ""
    i = to.find(";tag=")
    return to[i + 5:].split(";")[0] if i >= 0 else None


def tcp_exchange(port, data, wait=3.0):
    """Sends data over a fresh TCP connection; returns (bytes received, closed)
    after the first complete response, the peer closing, or wait seconds."""
    t = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t.sendall(data)
    buf, closed = b"", False
    end = time.monotonic() + wait
    while time.monotonic() < end:
        t.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = t.recv(65535)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        if b"\r\n\r\n" in buf:
            break
    t.close()
    return buf, closed
