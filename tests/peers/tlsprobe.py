"""tlsprobe.py — a TLS (and raw TCP) SIP client for test_tls.sh.

Python's ssl module is a real TLS client (OpenSSL underneath): it sends
requests written by sipprobe.request over TLS, with or without a client
certificate, and reports what came back: the status line of the answer, or
how the connection ended. It also plays the bad peers: plain SIP text to a
TLS port, half a ClientHello then silence.

Usage (prints one line; exit 0 when the expected outcome happened):
  tlsprobe.py options HOST PORT CA [CERT KEY]     OPTIONS over TLS: prints the status line
                                                  (exit 0 on 200) or "closed: WHY"
  tlsprobe.py request HOST PORT CA METHOD RURI [HEADER...]  any request over TLS: prints its final status line
  tlsprobe.py hold HOST PORT CA READY GO          OPTIONS, writes its status line to READY, waits
                                                  (60 s at most) for the file GO, OPTIONS again on
                                                  the same connection: prints that status line
  tlsprobe.py plain HOST PORT                     plain SIP text to a TLS port: prints "closed" when
                                                  the server closed the connection within 10 s
  tlsprobe.py half HOST PORT                      half a ClientHello, then nothing: prints the seconds
                                                  until the server closed (30 s at most)
"""
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipprobe  # noqa: E402


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tls_connect(host, port, ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.socket(family(host), socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.connect((host, port))
    return ctx.wrap_socket(raw, server_hostname=host)


def read_response(s, want_final=True):
    """The first (final, unless want_final is false) response on s; '' if closed."""
    buf = b""
    while True:
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":", 1)[1])
            if len(rest) < n:
                break
            buf = rest[n:]
            msg = head.decode(errors="replace")
            code = sipprobe.status(msg) if msg.startswith("SIP/2.0") else 0
            if code >= 200 or not want_final:
                return msg
        chunk = s.recv(65536)
        if not chunk:
            return ""
        buf += chunk


def request_over(s, host, lport, method, ruri, extra=()):
    s.sendall(sipprobe.request(method, ruri, lport, transport="TLS", extra=extra))
    return read_response(s)


def first_line(msg):
    return msg.split("\r\n", 1)[0] if msg else "closed: no answer"


def cmd_options(host, port, ca, cert=None, key=None):
    try:
        s = tls_connect(host, port, ca, cert, key)
        msg = request_over(s, host, s.getsockname()[1], "OPTIONS", "sip:%s:%d" % (sipprobe_host(host), port))
    except (OSError, ssl.SSLError) as e:
        print("closed: %s" % e)
        return 1
    print(first_line(msg))
    return 0 if msg.startswith("SIP/2.0 200") else 1


def sipprobe_host(host):
    return "[%s]" % host if ":" in host else host


def cmd_request(host, port, ca, method, ruri, *headers):
    try:
        s = tls_connect(host, port, ca)
        msg = request_over(s, host, s.getsockname()[1], method, ruri, extra=headers)
    except (OSError, ssl.SSLError) as e:
        print("closed: %s" % e)
        return 1
    print(first_line(msg))
    for line in msg.split("\r\n")[1:]:
        if line.lower().startswith("warning:"):
            print(line)
    return 0 if msg else 1


def cmd_hold(host, port, ca, ready, go):
    s = tls_connect(host, port, ca)
    ruri = "sip:%s:%d" % (sipprobe_host(host), port)
    msg = request_over(s, host, s.getsockname()[1], "OPTIONS", ruri)
    with open(ready + ".tmp", "w") as f:
        f.write(first_line(msg) + "\n")
    os.rename(ready + ".tmp", ready)
    end = time.time() + 60
    while not os.path.exists(go) and time.time() < end:
        time.sleep(0.05)
    try:
        msg = request_over(s, host, s.getsockname()[1], "OPTIONS", ruri)
    except (OSError, ssl.SSLError) as e:
        print("closed: %s" % e)
        return 1
    print(first_line(msg))
    return 0 if msg.startswith("SIP/2.0 200") else 1


def wait_closed(s, limit):
    """Seconds until the peer closed s (reads and drops data), or None."""
    t0 = time.time()
    s.settimeout(0.2)
    while time.time() - t0 < limit:
        try:
            if not s.recv(65536):
                return time.time() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0
    return None


def cmd_plain(host, port):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(sipprobe.request("OPTIONS", "sip:%s:%d" % (sipprobe_host(host), port), s.getsockname()[1],
                               transport="TCP"))
    t = wait_closed(s, 10)
    print("closed" if t is not None else "still open after 10 s")
    return 0 if t is not None else 1


# The first 40 bytes of a TLS 1.2/1.3 ClientHello: record header announcing
# 512 bytes, handshake header, version, part of the random.
HALF_HELLO = bytes.fromhex("160301020001000" "1fc0303") + os.urandom(29)


def cmd_half(host, port):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(HALF_HELLO)
    t = wait_closed(s, 30)
    print("%.2f" % t if t is not None else "still open after 30 s")
    return 0 if t is not None else 1


def main(argv):
    cmds = {"options": cmd_options, "request": cmd_request, "hold": cmd_hold, "plain": cmd_plain,
            "half": cmd_half}
    if len(argv) < 3 or argv[0] not in cmds:
        print(__doc__)
        return 2
    args = list(argv[1:])
    args[1] = int(args[1])
    return cmds[argv[0]](*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
