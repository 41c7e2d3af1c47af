"""bctl.py — one command to a baresip ctrl_tcp port (netstring JSON), for the
peer tests: `python3 bctl.py PORT COMMAND [PARAMS]` prints baresip's answer
and exits 0 when it says ok."""
import json
import socket
import sys

port, cmd = int(sys.argv[1]), sys.argv[2]
params = sys.argv[3] if len(sys.argv) > 3 else ""
s = socket.create_connection(("127.0.0.1", port), timeout=5)
body = json.dumps({"command": cmd, "params": params, "token": "t1"}).encode()
s.sendall(b"%d:%s," % (len(body), body))
buf = b""
while True:
    # answers and events are netstrings; print the response to our token
    while b":" in buf:
        n, rest = buf.split(b":", 1)
        if not n.isdigit() or len(rest) < int(n) + 1:
            break
        msg = json.loads(rest[:int(n)])
        buf = rest[int(n) + 1:]
        if msg.get("response"):
            print(json.dumps(msg))
            sys.exit(0 if msg.get("ok") else 1)
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(1)
    buf += chunk
