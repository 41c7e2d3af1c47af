#!/usr/bin/env bash
# SIP core checks with real peers: sipsak and sipp OPTIONS over UDP and TCP,
# stateless answers to retransmissions, malformed input on UDP and TCP, `cascade parse`.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=coretoken
cat >"$WORK/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, tcp:127.0.0.1:$PORT
max_message_bytes = 8192
[api]
listen = 127.0.0.1:$API_PORT
token = $API_TOKEN
[store]
path = $WORK/c.db
INI
start_cascade core "$WORK/c.ini"

# 1. sipsak OPTIONS over UDP and TCP.
check "sipsak OPTIONS over UDP gets 200" bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
check "sipsak OPTIONS over TCP gets 200" bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -E tcp -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"

# 2. sipp: 3000 OPTIONS at 500/s over UDP, then 1000 over TCP; every one answered 200.
sipp_run() { # name transport scenario calls rate
    local name=$1 tr=$2 sf=$3 calls=$4 rate=$5
    (cd "$WORK" && timeout 120 sipp 127.0.0.1:$PORT -sf "$PEERS_DIR/sipp/$sf" -t "$tr" -i 127.0.0.1 \
        -m "$calls" -r "$rate" -l 200 -nostdin -trace_stat -stf "$name.csv" -trace_err -error_file "$name.err" \
        >"$WORK/$name.out" 2>&1) || true
}
sipp_stat() { # name column -> last value in the stat file
    python3 - "$WORK/$1.csv" "$2" <<'PY'
import sys, csv
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
i = rows[0].index(sys.argv[2]); print(rows[-1][i])
PY
}
sipp_ok() { # name calls: all calls successful, none failed
    local s f
    s=$(sipp_stat "$1" "SuccessfulCall(C)"); f=$(sipp_stat "$1" "FailedCall(C)")
    echo "  $1: successful=$s failed=$f"
    [ "$s" = "$2" ] && [ "$f" = "0" ]
}
stats_field() { api GET /stats | python3 -c "import sys,json; d=json.load(sys.stdin); print(eval('d'+sys.argv[1]))" "$1"; }

created0=$(stats_field "['transactions']['created']")
sipp_run opt_udp u1 options.xml 3000 500
check "sipp: 3000 OPTIONS over UDP at 500/s, all 200" sipp_ok opt_udp 3000
sipp_run opt_tcp t1 options.xml 1000 500
check "sipp: 1000 OPTIONS over TCP, all 200" sipp_ok opt_tcp 1000
created1=$(stats_field "['transactions']['created']")
absorbed1=$(stats_field "['transactions']['retransmissions_absorbed']")
# One transaction per OPTIONS sipp sent: the 200 is stateless, so an OPTIONS
# that sipp retransmitted over UDP (its answer late on a loaded machine) makes
# one more, and sipp counts those itself; a storm (more absorbed or resent
# than 1 % of calls) fails.
resent=$(sipp_stat opt_udp "Retransmissions(C)")
check "one server transaction per OPTIONS sent, no retransmission storm (created $((created1 - created0)), sipp resent $resent, absorbed $absorbed1)" \
    test "$((created1 - created0))" -ge 4000 -a "$((created1 - created0))" -le "$((4000 + resent))" \
        -a "$resent" -le 40 -a "$absorbed1" -le 40

# 3. sipp ignores 30 % of the 200s: it retransmits. The 200 to OPTIONS is
#    stateless (issue 9: nothing kept for strangers), so each retransmission
#    is answered anew, with the same bytes (the To tag derives from the request).
sipp_run opt_lossy u1 options-lossy.xml 300 100
check "lossy sipp: all 300 calls end in 200" sipp_ok opt_lossy 300
created2=$(stats_field "['transactions']['created']")
absorbed2=$(stats_field "['transactions']['retransmissions_absorbed']")
echo "  lossy: transactions created $((created2 - created1)), retransmissions absorbed $((absorbed2 - absorbed1))"
live2=$(stats_field "['transactions']['server_live']")
check "retransmitted OPTIONS answered anew, no state kept (created $((created2 - created1)) > 300, server_live $live2)" \
    test "$((created2 - created1))" -gt 300 -a "$((absorbed2 - absorbed1))" -eq 0 -a "$live2" -eq 0

# The re-sent response is the same: same To tag as the first.
check "a retransmitted request gets the stored response byte for byte" python3 - "$PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
req = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKretrans1\r\n"
       "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: retrans-test\r\nCSeq: 7 OPTIONS\r\n"
       "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n" % (port, lp)).encode()
s.sendto(req, ("127.0.0.1", port)); a = s.recv(65535)
s.sendto(req, ("127.0.0.1", port)); b = s.recv(65535)
sys.exit(0 if a == b and a.startswith(b"SIP/2.0 200") else 1)
PY

# 4. Malformed input never crashes; requests get 400 with the reason; TCP garbage closes.
check "malformed input: 400s with reasons, TCP garbage closed, daemon still answers" python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); ok = True
def udp(data, expect_prefix=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1); s.bind(("127.0.0.1", 0))
    s.sendto(data, ("127.0.0.1", port))
    try: r = s.recv(65535)
    except socket.timeout: r = b""
    s.close(); return r
def top(callid, extra="", cl="0", body=""):
    return ("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK%s\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n%s"
            "Content-Length: %s\r\n\r\n%s" % (callid, callid, extra, cl, body)).encode()
# A request whose CSeq number cannot be read is still answered (issue 9,
# RFC 4475 §3.1.2.4): 400 "Bad CSeq", the response's CSeq is "0 OPTIONS"
# (clients match by branch and CSeq method), so the 400 parses everywhere.
r = udp(top("c1").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"))
print("  %-35s -> %s" % ("bad CSeq", r.split(b"\r\n", 1)[0].decode() or "(no answer)"))
ok &= r.startswith(b"SIP/2.0 400 Bad CSeq\r\n") and b"\r\nCSeq: 0 OPTIONS\r\n" in r
cases = [
    ("CSeq method mismatch", top("c2").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")),
    ("body shorter than Content-Length", top("c3", cl="50", body="short")),
    ("negative Content-Length", top("c4", cl="-5")),
    ("bad version", top("c5").replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia", 1)),
]
for name, data in cases:
    r = udp(data)
    first = r.split(b"\r\n", 1)[0].decode(errors="replace")
    good = first.startswith("SIP/2.0 4") or first.startswith("SIP/2.0 5")
    print("  %-35s -> %s" % (name, first or "(no answer)")); ok &= good
# oversized datagram (over max_message_bytes = 8192): dropped, no answer, no crash
r = udp(top("big", extra="X-Big: " + "a" * 20000 + "\r\n")); print("  oversized UDP -> %r" % r[:20]); ok &= (r == b"" or r.startswith(b"SIP/2.0 4") or r.startswith(b"SIP/2.0 5"))
for g in (b"\x00\xff" * 500, b"GARBAGE\r\n\r\n", b"INVITE\r\n\r\n", b""):
    udp(g)
# TCP: garbage closes the connection
t = socket.create_connection(("127.0.0.1", port)); t.settimeout(2)
t.sendall(b"\x16\x03\x01 this is not SIP at all\r\n\r\n")
try: closed = t.recv(100) == b""
except (ConnectionResetError, socket.timeout): closed = True
print("  TCP garbage -> closed=%s" % closed); ok &= closed
# TCP: Content-Length beyond the limit closes
t = socket.create_connection(("127.0.0.1", port)); t.settimeout(2)
t.sendall(top("tcpbig", cl="999999"))
try: r = t.recv(1000)
except (ConnectionResetError, socket.timeout): r = b""
print("  TCP huge Content-Length -> %r" % r[:30])
# TCP: truncated message then close; CRLF keepalive answered
t = socket.create_connection(("127.0.0.1", port)); t.settimeout(2)
t.sendall(b"\r\n\r\n"); pong = t.recv(10); print("  CRLFCRLF ping -> %r" % pong); ok &= pong == b"\r\n"
t.sendall(top("half")[:60]); t.close()
# valid request still answered, UDP and TCP
r = udp(top("after"))
print("  valid OPTIONS after garbage -> %r" % r[:15]); ok &= r.startswith(b"SIP/2.0 200")
t = socket.create_connection(("127.0.0.1", port)); t.settimeout(2)
t.sendall(top("aftertcp")); r = t.recv(1000); ok &= r.startswith(b"SIP/2.0 200"); t.close()
sys.exit(0 if ok else 1)
PY
check "refusals are logged with the sender's address" grep -qE "WARN .*(400|505|413).*127\.0\.0\.1:" "$WORK/core.log"
check "daemon still alive" kill -0 "$core_PID"

# 5. cascade parse
printf 'REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: parse-1\nCSeq: 1 REGISTER\nContent-Length: 0\n\n' >"$WORK/ok.sip"
printf 'NOT A SIP MESSAGE\r\n\r\n' >"$WORK/bad.sip"
check "cascade parse: OK line for a valid LF-only message" bash -c "'$CASCADE' parse '$WORK/ok.sip' | grep -qx 'OK REGISTER parse-1'"
check "cascade parse: BAD line and exit 1 for garbage" bash -c "out=\$('$CASCADE' parse '$WORK/ok.sip' '$WORK/bad.sip'); rc=\$?; [ \$rc -eq 1 ] && echo \"\$out\" | grep -q '^BAD '"

# 6. Clean stop on SIGTERM.
kill -TERM "$core_PID"
check "SIGTERM stops the daemon cleanly" wait_for 5 bash -c "! kill -0 $core_PID 2>/dev/null"
check "clean stop logged" grep -q "cascade stopped" "$WORK/core.log"
finish
