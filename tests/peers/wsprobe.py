"""wsprobe.py — a raw WebSocket client for the peer tests (issue 11).

Writes the opening handshake and frames byte for byte (RFC 6455), masked or
not, so a test can send what a browser never would — a wrong subprotocol, an
oversize or unmasked frame, garbage — and read exactly what cascade answers:
the HTTP status of the handshake, the frames that come back, the close code,
whether the connection closed. Run as `python3 wsprobe.py CASE PORT [ARGS]`;
exit status 0 when the case saw what it expects (printed on stdout)."""
import base64
import os
import select
import socket
import ssl
import struct
import sys
import time


def connect(port, tls=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def handshake(s, protocol="sip", origin=None, version="13"):
    """Sends the upgrade; returns (status code, head text)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET / HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: " + version]
    if protocol:
        lines.append("Sec-WebSocket-Protocol: " + protocol)
    if origin:
        lines.append("Origin: " + origin)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    text = head.decode(errors="replace")
    code = int(text.split(" ")[1]) if text.startswith("HTTP/1.1 ") else 0
    return code, text


def frame(opcode, payload, fin=True, mask=True, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def read_frame(s, timeout=5.0):
    """(opcode, payload), or None when the connection closed or nothing came."""
    s.settimeout(timeout)
    try:
        h = recv_exact(s, 2)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(s, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(s, 8))[0]
        if h[1] & 0x80:
            raise ValueError("server frame masked")
        return h[0] & 0x0F, recv_exact(s, n)
    except (ConnectionError, socket.timeout, OSError, EOFError):
        return None


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def closed(s, timeout=5.0):
    """True when the server closes the connection within timeout (frames before are read and dropped)."""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([s], [], [], end - time.time())
        if not r:
            continue
        try:
            if not s.recv(65536):
                return True
        except (ConnectionError, OSError):
            return True
    return False


def register(user="probe"):
    return ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK%s\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:%s@127.0.0.1>;tag=%s\r\n"
            "To: <sip:%s@127.0.0.1>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 REGISTER\r\n"
            "Contact: <sip:%s@df7jal23ls0d.invalid;transport=ws>\r\n"
            "Expires: 60\r\n"
            "Content-Length: 0\r\n\r\n") % (os.urandom(6).hex(), user, os.urandom(4).hex(), user,
                                            os.urandom(8).hex(), user)


def expect(cond, what):
    print(("ok: " if cond else "unexpected: ") + what)
    return 0 if cond else 1


def main():
    case, port = sys.argv[1], int(sys.argv[2])
    tls = os.environ.get("WSPROBE_TLS") == "1"
    s = connect(port, tls)
    if case == "no-sip-protocol":
        code, text = handshake(s, protocol="chat")
        return expect(code == 400 and closed(s), "handshake with subprotocol chat: %d, closed" % code)
    if case == "origin":  # ARGS: origin expected-code
        code, _ = handshake(s, origin=sys.argv[3])
        return expect(code == int(sys.argv[4]), "Origin %s: %d" % (sys.argv[3], code))
    code, text = handshake(s)
    if code != 101 or "Sec-WebSocket-Protocol: sip" not in text:
        return expect(False, "handshake: %d %r" % (code, text[:200]))
    if case == "register":
        s.sendall(frame(0x1, register().encode()))
        f = read_frame(s)
        ok = f is not None and f[0] == 0x1 and f[1].startswith(b"SIP/2.0 401 ")
        return expect(ok, "REGISTER in a text frame answered in a text frame: %r" % (f and f[1][:40]))
    if case == "fragmented":
        msg = register().encode()
        s.sendall(frame(0x1, msg[:50], fin=False) + frame(0x0, msg[50:120], fin=False) + frame(0x0, msg[120:]))
        f = read_frame(s)
        return expect(f is not None and f[1].startswith(b"SIP/2.0 401 "), "REGISTER in three fragments answered")
    if case == "ping":
        s.sendall(frame(0x9, b"are-you-there"))
        f = read_frame(s)
        return expect(f == (0xA, b"are-you-there"), "ping answered by a pong with its payload: %r" % (f,))
    if case == "server-ping":  # ARGS: seconds to wait
        f = read_frame(s, float(sys.argv[3]))
        return expect(f is not None and f[0] == 0x9, "a ping from the server on a silent connection: %r" % (f,))
    if case == "oversize":  # a header announcing more than max_message_bytes
        s.sendall(frame(0x1, b"", length=200000)[:14])
        f = read_frame(s)
        code = struct.unpack("!H", f[1][:2])[0] if f and f[0] == 0x8 and len(f[1]) >= 2 else None
        return expect(code == 1009 and closed(s), "oversize frame: close %s, connection closed" % code)
    if case == "unmasked":
        s.sendall(frame(0x1, register().encode(), mask=False))
        f = read_frame(s)
        code = struct.unpack("!H", f[1][:2])[0] if f and f[0] == 0x8 and len(f[1]) >= 2 else None
        return expect(code == 1002 and closed(s), "unmasked client frame: close %s, connection closed" % code)
    if case == "garbage":
        s.sendall(frame(0x2, os.urandom(300)))
        return expect(closed(s), "a binary frame of random bytes: connection closed")
    if case == "close":
        s.sendall(frame(0x8, struct.pack("!H", 1001) + b"going away"))
        f = read_frame(s)
        code = struct.unpack("!H", f[1][:2])[0] if f and f[0] == 0x8 and len(f[1]) >= 2 else None
        return expect(code == 1001 and closed(s), "close 1001 echoed, connection closed: %s" % code)
    print("unknown case " + case)
    return 2


if __name__ == "__main__":
    sys.exit(main())
