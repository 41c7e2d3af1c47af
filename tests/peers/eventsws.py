"""eventsws.py — reads the API's event stream over ws:// or wss:// for the peer tests.

A minimal RFC 6455 client of GET /api/v1/events?since=N (Bearer token), so a
test sees the frames cascade sends without a browser:

  python3 eventsws.py seqs PORT TOKEN SINCE COUNT [--cafile F] [--timeout S]
      prints the seq of each of the first COUNT events (text frames), one per line
  python3 eventsws.py find PORT TOKEN SINCE TYPE USER [--cafile F] [--timeout S] [--max N]
      prints TYPE when an event of that type for that user arrives within the
      first N (default 100) events; fails otherwise

With --cafile the connection is TLS, the server's certificate verified against
F for the name 127.0.0.1 (a failed verification ends in the ssl module's
CERTIFICATE_VERIFY_FAILED on stderr). A refused upgrade exits with
"no upgrade: <status line>" on stderr."""
import argparse
import base64
import json
import os
import socket
import ssl
import struct
import sys


class Stream:
    def __init__(self, port, token, since, cafile=None, timeout=30.0):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if cafile:
            ctx = ssl.create_default_context(cafile=cafile)
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.s = s
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /api/v1/events?since=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (since, port, key, token)).encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("closed during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status:
            sys.exit("no upgrade: %r" % status)

    def need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                sys.exit("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def events(self):
        """Yields each text frame's JSON object (the server sends unfragmented frames)."""
        while True:
            b0, b1 = self.need(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.need(8))[0]
            payload = self.need(n)
            if b0 & 0x0F == 1:
                yield json.loads(payload)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seqs", "find"])
    ap.add_argument("port", type=int)
    ap.add_argument("token")
    ap.add_argument("since")
    ap.add_argument("rest", nargs="+")
    ap.add_argument("--cafile")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--max", type=int, default=100)
    a = ap.parse_args()
    st = Stream(a.port, a.token, a.since, a.cafile, a.timeout)
    if a.mode == "seqs":
        count = int(a.rest[0])
        for got, ev in enumerate(st.events(), 1):
            print(ev.get("seq", ev.get("type")), flush=True)
            if got >= count:
                return
    want_type, want_user = a.rest[0], a.rest[1]
    for seen, ev in enumerate(st.events(), 1):
        if ev.get("type") == want_type and ev.get("user") == want_user:
            print(ev["type"])
            return
        if seen >= a.max:
            break
    sys.exit("no %s for %s in the first %d events" % (want_type, want_user, a.max))


if __name__ == "__main__":
    main()
