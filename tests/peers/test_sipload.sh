#!/usr/bin/env bash
# bench/sipload (the REGISTER load generator of bench/register-tls.sh) counts
# right against a real registrar: cascade with udp: and tls: listeners and the
# test CA (pki.sh), [auth] match_user = no and the one digest user bench, as
# the benchmark runs it. At 100/s:
#  1. over TLS (the certificate and the name localhost verified): 200
#     registrations -> attempted=200 ok=200 failed=0, exit 0, and while
#     sipload holds its connection (--hold) cascadectl lists 200 tls bindings,
#     user0..user199; closing it takes them away (no keep_on_transport_loss).
#  2. over UDP: 200 more, AoRs udp0..udp199 -> 200 ok, 200 udp bindings.
#  3. a wrong password: every attempt counted failed, none ok, exit 1.
#  4. a CA that did not sign the server's certificate: no transaction, exit 2,
#     the verification failure said.
#  5. UDP through a relay that loses the first copy of every request: Timer A
#     resends them (retrans counts at least one a request) and all 20 end ok.
# Cheap: about 10 s of 100/s on one connection.
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"

SIPLOAD=$BUILD_DIR/sipload
[ -x "$SIPLOAD" ] || { echo "SKIP: no $SIPLOAD (cmake --build $BUILD_DIR --target sipload)"; exit 77; }

PKI=$WORK/pki
make_test_pki "$PKI"
PORT=$(free_port); TPORT=$(free_port); API_PORT=$(free_port); API_TOKEN=loadtoken
cat >"$WORK/n.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, tls:127.0.0.1:$TPORT
domain = 127.0.0.1
[tls]
cert = $PKI/server.pem
key = $PKI/server.key
[auth]
realm = 127.0.0.1
match_user = no
[registrar]
max_expires = 3600
[api]
listen = 127.0.0.1:$API_PORT
token = $API_TOKEN
[store]
path = $WORK/n.db
[log]
level = info
INI
start_cascade node "$WORK/n.ini"
check "user bench added" ctl user add bench --password secret >/dev/null
# bench2: the user of part 5 (bench is locked out from 127.0.0.1 after part 3)
check "user bench2 added" ctl user add bench2 --password secret2 >/dev/null

# field NAME FILE: the value of NAME= on sipload's final line in FILE.
field() { sed -n "s/^final .* $1=\([0-9.]*\).*/\1/p" "$2"; }
# final_is FILE ATTEMPTED OK FAILED: the final line says exactly that.
final_is() {
    [ "$(field attempted "$1")" = "$2" ] && [ "$(field ok "$1")" = "$3" ] && [ "$(field failed "$1")" = "$4" ]
}
# bindings TRANSPORT PREFIX: how many bindings cascadectl lists over TRANSPORT for AoRs PREFIX<n>.
bindings() {
    ctl --json reg list | jq --arg t "$1" --arg p "$2" \
        '[.registrations[] | select(.transport == $t and (.user | test("^" + $p + "[0-9]+$")))] | length'
}
no_bindings() { [ "$(bindings "$1" "$2")" = 0 ]; }
# reg_has USER REGEX: cascadectl reg list --user USER shows a line matching REGEX.
reg_has() { ctl reg list --user "$1" | grep -q "$2"; }
# distinct_users TRANSPORT PREFIX: how many different AoRs those bindings are for.
distinct_users() {
    ctl --json reg list | jq --arg t "$1" --arg p "$2" \
        '[.registrations[] | select(.transport == $t and (.user | test("^" + $p + "[0-9]+$"))) | .user] | unique | length'
}

# ---- 1. TLS ----
"$SIPLOAD" "tls:127.0.0.1:$TPORT" --ca "$PKI/ca.pem" --tls-name localhost --rate 100 --duration 2 \
    --users 200 --window 300 --auth-user bench --password secret --hold 120 >"$WORK/tls.out" 2>"$WORK/tls.err" &
TLS_PID=$!
PIDS+=("$TLS_PID")
check "TLS: sipload printed its final line" wait_for 60 grep -q '^final ' "$WORK/tls.out"
check "TLS: attempted=200 ok=200 failed=0" final_is "$WORK/tls.out" 200 200 0
check "TLS: no retransmission over a stream" test "$(field retrans "$WORK/tls.out")" = 0
check "TLS: a per-second line before the final one" grep -q '^second .* ok=' "$WORK/tls.out"
check "TLS: cascadectl lists 200 tls bindings for user0..user199" test "$(bindings tls user)" = 200
check "... of 200 different AoRs" test "$(distinct_users tls user)" = 200
check "... user199's contact is the one sipload sent (transport=tls)" reg_has user199 'sip:user199@127.0.0.1:[0-9]*;transport=tls'
kill "$TLS_PID"
wait "$TLS_PID" 2>/dev/null || true
check "TLS: the bindings go with the connection" wait_for 30 no_bindings tls user

# ---- 2. UDP ----
RC=0
timeout 120 "$SIPLOAD" "udp:127.0.0.1:$PORT" --rate 100 --duration 2 --users 200 --window 300 --prefix udp \
    --auth-user bench --password secret >"$WORK/udp.out" 2>"$WORK/udp.err" || RC=$?
check "UDP: exit 0" test "$RC" = 0
check "UDP: attempted=200 ok=200 failed=0" final_is "$WORK/udp.out" 200 200 0
check "UDP: cascadectl lists 200 udp bindings for udp0..udp199" test "$(bindings udp udp)" = 200
check "... of 200 different AoRs" test "$(distinct_users udp udp)" = 200

# ---- 3. a wrong password: failures are counted, not hidden ----
RC=0
timeout 120 "$SIPLOAD" "udp:127.0.0.1:$PORT" --rate 10 --duration 0.5 --users 5 --window 10 --prefix bad \
    --auth-user bench --password wrong >"$WORK/bad.out" 2>"$WORK/bad.err" || RC=$?
check "wrong password: exit 1" test "$RC" = 1
check "wrong password: attempted=5 ok=0 failed=5" final_is "$WORK/bad.out" 5 0 5
check "wrong password: no binding" test "$(bindings udp bad)" = 0

# ---- 4. the server's certificate checked against the CA given ----
RC=0
timeout 60 "$SIPLOAD" "tls:127.0.0.1:$TPORT" --ca "$PKI/stranger.pem" --tls-name localhost --rate 100 \
    --duration 1 >"$WORK/stranger.out" 2>"$WORK/stranger.err" || RC=$?
check "untrusted CA: exit 2" test "$RC" = 2
check "... the verification failure said" grep -q 'certificate verify failed' "$WORK/stranger.err"
check "... and no transaction attempted" final_is "$WORK/stranger.out" 0 0 0

# ---- 5. a lossy path: Timer A ----
# A UDP relay to cascade dropping the first copy of each request (Call-ID + CSeq).
RELAY_PORT=$(free_port)
python3 - "$RELAY_PORT" "$PORT" >"$WORK/relay.log" 2>&1 <<'PY' &
import re, select, socket, sys
relay, target = int(sys.argv[1]), ("127.0.0.1", int(sys.argv[2]))
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); front.bind(("127.0.0.1", relay))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); back.connect(target)
seen, client = set(), None
print("relay ready", flush=True)
while True:
    ready, _, _ = select.select([front, back], [], [])
    for sock in ready:
        data, addr = sock.recvfrom(65535)
        if sock is front:
            client = addr
            key = (re.search(rb"Call-ID: (\S+)", data) or [b""])[0] + (re.search(rb"CSeq: (\d+)", data) or [b""])[0]
            if key not in seen:
                seen.add(key)
                continue
            back.send(data)
        elif client:
            front.sendto(data, client)
PY
PIDS+=("$!")
wait_for 20 grep -q "relay ready" "$WORK/relay.log"
RC=0
timeout 120 "$SIPLOAD" "udp:127.0.0.1:$RELAY_PORT" --rate 20 --duration 1 --users 20 --window 40 --prefix lossy \
    --auth-user bench2 --password secret2 >"$WORK/lossy.out" 2>"$WORK/lossy.err" || RC=$?
check "lossy UDP: exit 0" test "$RC" = 0
check "lossy UDP: attempted=20 ok=20 failed=0" final_is "$WORK/lossy.out" 20 20 0
check "lossy UDP: retrans counts the 40 lost requests (at least)" test "$(field retrans "$WORK/lossy.out")" -ge 40

finish
