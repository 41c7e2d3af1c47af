#!/usr/bin/env bash
# SIP over WebSocket (RFC 7118) against what a browser never sends: a raw
# client (tests/peers/wsprobe.py) writes the handshake and frames byte for
# byte. A handshake without the sip subprotocol or from an Origin not on
# [sip] ws_origins is refused (400 / 403) and closed; after the upgrade a
# REGISTER in one frame or in three fragments is answered in a text frame, a
# ping gets its pong, a silent connection gets our ping; an oversize frame
# gets close 1009, an unmasked frame close 1002, a close is echoed, random
# bytes in a binary frame close the connection — each logged with the sender,
# and through all of it a UDP client and an open WebSocket are still served.
# The same cases over wss: (TLS below the WebSocket).
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"
make_test_pki "$WORK/pki" >/dev/null

PORT=$(free_port); WS=$(free_port); WSS=$(free_port); API_PORT=$(free_port); API_TOKEN=wstoken
cat >"$WORK/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, ws:127.0.0.1:$WS, wss:127.0.0.1:$WSS
domain = 127.0.0.1
max_message_bytes = 4096
ws_origins = https://phone.example, http://127.0.0.1:8080
ws_ping_interval = 1
tcp_first_message_timeout = 600
[tls]
cert = $WORK/pki/server.pem
key = $WORK/pki/server.key
[api]
listen = 127.0.0.1:$API_PORT
token = $API_TOKEN
[store]
path = $WORK/c.db
[log]
level = info
INI
start_cascade c "$WORK/c.ini"

probe() { python3 "$PEERS_DIR/wsprobe.py" "$@"; }
options_ok() { sipsak -s "sip:127.0.0.1:$PORT" -v 2>&1 | grep -q "200 OK"; }

# A WebSocket kept open through the hostile cases below: it must still be answered at the end.
exec 3> >(cd "$PEERS_DIR" && python3 -c "
import sys, time, wsprobe as w
s = w.connect($WS); code, _ = w.handshake(s)
assert code == 101
line = sys.stdin.readline()              # wait until the test says go
s.sendall(w.frame(1, w.register('steady').encode()))
f = w.read_frame(s)
while f and f[0] == 9:                    # our pings may come first
    s.sendall(w.frame(10, f[1])); f = w.read_frame(s)
open('$WORK/steady.out', 'w').write('answered' if f and f[1].startswith(b'SIP/2.0 401 ') else repr(f))
")

for scheme in ws wss; do
    P=$WS; [ "$scheme" = wss ] && P=$WSS && export WSPROBE_TLS=1
    check "$scheme: no sip subprotocol -> 400 and closed" probe no-sip-protocol "$P"
    check "$scheme: an Origin not on ws_origins -> 403" probe origin "$P" https://evil.example 403
    check "$scheme: an Origin on ws_origins -> 101" probe origin "$P" https://phone.example 101
    check "$scheme: REGISTER in a text frame -> 401 in a text frame" probe register "$P"
    check "$scheme: REGISTER in three fragments -> answered" probe fragmented "$P"
    check "$scheme: ping -> pong with the same payload" probe ping "$P"
    check "$scheme: a silent connection gets our ping (ws_ping_interval 1 s)" probe server-ping "$P" 5
    check "$scheme: a frame over max_message_bytes -> close 1009" probe oversize "$P"
    check "$scheme: an unmasked client frame -> close 1002" probe unmasked "$P"
    check "$scheme: random bytes in a binary frame -> closed" probe garbage "$P"
    check "$scheme: a close is echoed" probe close "$P"
    check "$scheme: UDP still answered" options_ok
    unset WSPROBE_TLS
done
echo go >&3
exec 3>&-
check "the WebSocket kept open through it all is still answered" wait_for 10 grep -q answered "$WORK/steady.out"
check "refusals logged with the sender (subprotocol)" grep -q "WS handshake from 127.0.0.1:[0-9]* refused: .*sip" "$WORK/c.log"
check "refusals logged with the sender (Origin)" grep -q "handshake from 127.0.0.1:[0-9]* refused: .*Origin" "$WORK/c.log"
check "oversize frame logged with the sender" grep -qE "WSS? connection from 127.0.0.1:[0-9]*: .*size limit" "$WORK/c.log"
check "/stats counts upgrades and refusals" \
    jq_ok "$(api GET /stats)" '.transport.ws_upgrades >= 16 and .transport.ws_refused == 4'
check "/stats: the steady connection is the one WS connection left" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/stats | jq -e '.transport.connections.ws <= 1 and .transport.connections.wss == 0' >/dev/null"
finish
