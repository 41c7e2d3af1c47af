#!/usr/bin/env bash
# SIP/TCP under a descriptor limit and against slow senders (issue 9), with
# real sockets from python, sipsak and curl. cascade runs under `ulimit -n 256`
# with the default tcp_max_connections (10000): it must clamp the cap to the
# limit minus its reserve, refuse (close) connections over the cap and over
# tcp_max_per_ip instead of running out of descriptors, keep its API and UDP
# answering, not spin, not flood its log, and serve a new TCP client once
# places are free again. Then a client trickling one byte at a time is closed
# tcp_message_timeout after its message began, while a normal client is kept.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=fdtoken
NOFILE=256; RESERVE=64; CAP=$((NOFILE - RESERVE)); PER_IP=100
node_ini fd "$PORT" "$API_PORT" 127.0.0.1 <<INI
tcp_max_per_ip = $PER_IP
tcp_first_message_timeout = 600
tcp_message_timeout = 2
INI

# start_cascade with the descriptor limit lowered (soft and hard) for the daemon only.
(cd "$WORK" && ulimit -n $NOFILE && exec "$CASCADE" -c "$WORK/fd.ini" >"$WORK/fd.log" 2>&1) &
fd_PID=$!
PIDS+=("$fd_PID")
wait_for 10 grep -q "cascade ready" "$WORK/fd.log" || { echo "cascade did not start"; cat "$WORK/fd.log"; exit 1; }

stat_field() { api GET /stats | jget "d['transport']['$1']"; }

check "the cap is clamped to the descriptor limit minus the reserve, with a warning" \
    grep -q "tcp_max_connections 10000 does not fit the descriptor limit $NOFILE" "$WORK/fd.log"
check "GET /stats shows tcp_max_connections $CAP" test "$(stat_field tcp_max_connections)" = "$CAP"

# holder SRC_IP N OUT: opens N connections from SRC_IP, sends an OPTIONS on
# each, writes {"served","closed","silent"} to OUT and holds the served ones open.
cat >"$WORK/holder.py" <<'PY'
import json, os, socket, sys, time
src, n, port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
socks, refused = [], 0
for i in range(n):
    s = socket.socket(); s.bind((src, 0)); s.settimeout(15)
    try:
        s.connect(("127.0.0.1", port)); socks.append(s)
    except OSError:
        refused += 1; s.close()
served, closed, silent = [], refused, 0
for i, s in enumerate(socks):
    lport = s.getsockname()[1]
    req = (f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/TCP {src}:{lport};rport;branch=z9hG4bK-hold-{src}-{i}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:hold@127.0.0.1>;tag=h{i}\r\nTo: <sip:ping@127.0.0.1>\r\n"
           f"Call-ID: hold-{src}-{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    try:
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(4096)
            if not d:
                raise ConnectionResetError()
            data += d
        if data.startswith(b"SIP/2.0 200"):
            served.append(s)
        else:
            closed += 1
    except socket.timeout:
        silent += 1
    except OSError:
        closed += 1; s.close()
with open(out + ".tmp", "w") as f:
    json.dump({"served": len(served), "closed": closed, "silent": silent}, f)
os.rename(out + ".tmp", out)
while True:
    time.sleep(60)
PY
holder() { # NAME SRC_IP N
    python3 "$WORK/holder.py" "$2" "$3" "$PORT" "$WORK/$1.json" &
    local pid=$!
    PIDS+=("$pid")
    eval "${1}_PID=$pid"
    wait_for 60 test -f "$WORK/$1.json"
}
hget() { jget "d['$2']" <"$WORK/$1.json"; }

# 1. 150 connections from one address: tcp_max_per_ip of them are served, the rest closed.
holder ha 127.0.0.1 150
echo "  127.0.0.1: $(cat "$WORK/ha.json")"
check "from one address: $PER_IP served, 50 closed at once (none left hanging)" \
    test "$(hget ha served)/$(hget ha closed)/$(hget ha silent)" = "$PER_IP/50/0"
# 2. 150 more from another address: only the places left under the cap.
holder hb 127.0.0.2 150
echo "  127.0.0.2: $(cat "$WORK/hb.json")"
check "from a second address: $((CAP - PER_IP)) served (the cap), the rest closed" \
    test "$(hget hb served)/$(hget hb closed)/$(hget hb silent)" = "$((CAP - PER_IP))/$((150 - CAP + PER_IP))/0"
check "GET /stats at the cap: tcp_open $CAP, tcp_refused $((300 - CAP))" \
    test "$(stat_field tcp_open)/$(stat_field tcp_refused)" = "$CAP/$((300 - CAP))"

# 3. At the cap: the API and UDP answer, a new TCP client is closed (not left hanging), no spin.
api_answers() { api GET /stats | jq -e '.transport.tcp_open' >/dev/null; }
check "the HTTP API answers at the cap" api_answers
check "sipsak OPTIONS over UDP gets 200 at the cap" \
    bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
check "a new TCP connection at the cap is closed at once" python3 - "$PORT" <<'PY'
import socket, sys
s = socket.socket(); s.bind(("127.0.0.3", 0)); s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
try:
    sys.exit(0 if s.recv(100) == b"" else 1)
except ConnectionResetError:
    sys.exit(0)
PY
cpu() { awk '{print $14 + $15}' "/proc/$fd_PID/stat"; }
c0=$(cpu); sleep 3; c1=$(cpu); tck=$(getconf CLK_TCK)
check "no spin at the cap: $((c1 - c0)) ticks of CPU in 3 s (bound $tck)" test $((c1 - c0)) -lt "$tck"

# 4. Places freed are places again: a fresh SIP client over TCP is served.
kill "$ha_PID"
wait_for 20 test "$(stat_field tcp_open)" -le $((CAP - PER_IP))
check "sipsak OPTIONS over TCP gets 200 once connections closed" \
    wait_for 20 bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -E tcp -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
kill "$hb_PID"

# 5. The log holds a few rate-limited lines, not one per refusal, and no accept errors.
refused_lines=$(grep -c "refused" "$WORK/fd.log" || true)
accept_errors=$(grep -c "TCP accept" "$WORK/fd.log" || true)
check "refusals logged rate-limited: $refused_lines lines for $((300 - CAP + 1)) refusals" test "$refused_lines" -le 40
check "no accept errors logged ($accept_errors)" test "$accept_errors" -eq 0

# 6. tcp_message_timeout = 2 s: a trickling client is closed, a normal one is not.
check "a client sending one byte every 0.5 s is closed within the message timeout" python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(); s.settimeout(0.5)
s.connect(("127.0.0.1", port))
msg = b"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow\r\n"
end = time.time() + 30
for b in msg:
    if time.time() > end:
        sys.exit(1)
    try:
        s.send(bytes([b]))
        if s.recv(100) == b"":
            sys.exit(0)  # closed before the message could finish
    except socket.timeout:
        pass
    except OSError:
        sys.exit(0)
sys.exit(1)  # the whole header trickled in: never closed
PY
check "a client sending a message in two parts 0.5 s apart, then another 3 s later, is served and kept" \
    python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(); s.settimeout(10)
s.connect(("127.0.0.1", port))
lport = s.getsockname()[1]
def req(i):
    return (f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{lport};rport;branch=z9hG4bKok{i}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:ok@127.0.0.1>;tag=o{i}\r\nTo: <sip:ping@127.0.0.1>\r\n"
            f"Call-ID: ok{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
def answer():
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            sys.exit(1)
        data += d
    return data.startswith(b"SIP/2.0 200")
r = req(1); s.sendall(r[:40]); time.sleep(0.5); s.sendall(r[40:])
ok1 = answer()
time.sleep(3)
s.sendall(req(2))
sys.exit(0 if ok1 and answer() else 1)
PY
check "GET /stats counts the slow client: tcp_timed_out 1" test "$(stat_field tcp_timed_out)" = 1

finish
