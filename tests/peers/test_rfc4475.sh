#!/usr/bin/env bash
# Issue 9: invalid requests of RFC 4475 §3.1.2 / §3.3 (tests/peers/rfc4475.py,
# written from the RFC's prose) over UDP and TCP. Each one that can be
# answered (Via, From, To and CSeq readable) gets the right status line (400
# with a reason naming the fault, 505, 513); each one that cannot is dropped
# over UDP (nothing comes back) and closes the connection over TCP (a TCP
# client is never left waiting). Every refusal is logged with the sender.
source "$(dirname "$0")/lib.sh"
export PYTHONPATH="$PEERS_DIR${PYTHONPATH:+:$PYTHONPATH}"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=rfctoken
node_ini rfc "$PORT" "$API_PORT" rfc.test </dev/null
start_cascade rfc "$WORK/rfc.ini"

for TR in UDP TCP; do
check "RFC 4475 invalid requests over $TR: answered with the right status, or dropped/closed" python3 - "$PORT" "$TR" <<'PY'
import sys
from rfc4475 import cases
from sipprobe import *
port, tr = int(sys.argv[1]), sys.argv[2]
ok = True
if tr == "UDP":
    s = udp_socket(); lport = s.getsockname()[1]
    for name, data, want in cases(tr, lport, "rfc.test"):
        s.sendto(data, ("127.0.0.1", port))
        got = collect([s], 1.0)[s]
        good = (got == []) if want is None else (len(got) == 1 and status(got[0]) == want)
        ok &= good
        print("  %-32s -> %-48s %s" % (name, status_line(got[0]) if got else "(nothing)",
                                       "" if good else "<-- FAIL, want %s" % (want or "nothing")))
else:
    for name, data, want in cases(tr, 0, "rfc.test"):
        buf, closed = tcp_exchange(port, data, 3.0)
        if want is None:
            good = buf == b"" and closed
        else:
            good = status(buf) == want
        ok &= good
        print("  %-32s -> %-48s %s%s" % (name, status_line(buf) if buf else "(nothing)", "closed" if closed else "",
                                         "" if good else "  <-- FAIL, want %s" % (want or "close")))
sys.exit(0 if ok else 1)
PY
done
check "refusals are logged with the sender's address" grep -qE "WARN .*(400|505|513).*127\.0\.0\.1:" "$WORK/rfc.log"
check "unanswerable requests are logged as dropped" grep -q "dropped (cannot answer)" "$WORK/rfc.log"
# A burst of 200 malformed requests is answered 200 times but not logged 200
# times by the core: 20 lines a second, then a count of the others.
check "a burst of 200 malformed requests: all answered, refusals logged rate-limited" python3 - "$PORT" "$WORK/rfc.log" <<'PY'
import socket, sys, time
from rfc4475 import cases
from sipprobe import *
port, log = int(sys.argv[1]), sys.argv[2]
s = udp_socket(); lport = s.getsockname()[1]
# A loaded machine may not run this reader for a while: a large socket buffer
# and draining between batches keep the answers from being dropped here.
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
bad = [d for n, d, w in cases("UDP", lport, "rfc.test") if n == "CSeq method mismatch"][0]
got = []
for i in range(200):
    s.sendto(bad.replace(b"branch=z9hG4bK", b"branch=z9hG4bK%d" % i), ("127.0.0.1", port))
    if i % 20 == 19:
        got += collect([s], 0.05)[s]
deadline = time.monotonic() + 20
while len(got) < 200 and time.monotonic() < deadline:
    got += collect([s], 0.5)[s]
time.sleep(1.1)
s.sendto(bad, ("127.0.0.1", port))  # the next refusal after the second closes the count
collect([s], 1.0)
lines = [l for l in open(log, errors="replace") if "400 CSeq method mismatch to UDP" in l]
summary = [l for l in open(log, errors="replace") if "not logged one by one" in l]
print("  %d answers, %d log lines for them, summary: %s" % (len(got), len(lines), summary[-1].strip()[-90:] if summary else None))
sys.exit(0 if len(got) == 200 and 0 < len(lines) < 100 and summary else 1)
PY
check "daemon still alive" kill -0 "$rfc_PID"
finish
