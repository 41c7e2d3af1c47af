#!/usr/bin/env bash
# JsSIP in headless Chromium against cascade over SIP over WebSocket (RFC
# 7118): two pages register with digest over ws, call each other (audio and
# video from Chromium's fake devices), both see the call confirmed and RTP
# arriving (getStats), hang up; closing bob's page gives user.offline reason
# transport-lost at once. Then the same over wss with the test CA's server
# certificate (pinned in Chromium by its key, see tests/browser/jssip-call.mjs).
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/jssip-call.mjs
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi
source "$PEERS_DIR/pki.sh"
make_test_pki "$WORK/pki"

PORT=$(free_port); WS_PORT=$(free_port); WSS_PORT=$(free_port); API_PORT=$(free_port)
API_TOKEN=browsertoken
cat >"$WORK/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, tcp:127.0.0.1:$PORT, ws:127.0.0.1:$WS_PORT, wss:127.0.0.1:$WSS_PORT
domain = 127.0.0.1
[tls]
cert = $WORK/pki/server.pem
key = $WORK/pki/server.key
[auth]
realm = cascade.test
[api]
listen = 127.0.0.1:$API_PORT
token = $API_TOKEN
[store]
path = $WORK/c.db
[log]
level = info
INI
start_cascade c "$WORK/c.ini"
check "cascadectl user add alice" ctl user add alice --password alicepw
check "cascadectl user add bob" ctl user add bob --password bobpw

# step_ok OUT STEP [JQ]: the driver printed STEP with ok true (and JQ holds on it).
step_ok() { jq -e -s --arg s "$2" "[.[] | select(.step == \$s and .ok) | ${3:-.}] | length > 0 and all" "$1" >/dev/null; }

# call_over SCHEME PORT [driver args]: runs the driver in the background, and
# once bob's page is closed checks user.offline transport-lost for bob within
# 1 s while alice is still registered (--linger); then the driver's verdict.
call_over() {
    local scheme=$1 port=$2 out=$WORK/jssip-$1.out seq pid i
    shift 2
    seq=$(events_json | jq '.last_seq')
    node "$DRIVER" --ws "$scheme://127.0.0.1:$port" --domain 127.0.0.1 --alice alice:alicepw --bob bob:bobpw \
        --workdir "$WORK/browser-$scheme" --linger 3000 --timeout 30000 "$@" >"$out" 2>"$WORK/jssip-$scheme.log" &
    pid=$!
    PIDS+=("$pid")
    check "$scheme: the driver got to closing bob's page" wait_for 120 grep -q '"step":"bob-closed"' "$out"
    check "$scheme: user.offline bob transport-lost at once when the page closes" \
        wait_for 20 has_event "select(.type==\"user.offline\" and .user==\"bob\" and .reason==\"transport-lost\")" "$seq"
    check "$scheme: alice is still registered" test "$(binding_count alice)" = 1
    check "$scheme: the driver exits 0" wait "$pid"
    cat "$out"
    check "$scheme: both pages registered" test "$(jq -s '[.[] | select(.step=="registered" and .ok)] | length' "$out")" = 2
    check "$scheme: the call was confirmed on both pages" step_ok "$out" confirmed
    check "$scheme: RTP audio and video arrived on both pages (getStats)" step_ok "$out" media \
        '.stats.alice.audio > 0 and .stats.alice.video > 0 and .stats.bob.audio > 0 and .stats.bob.video > 0'
    check "$scheme: both pages saw the call end" \
        test "$(jq -s '[.[] | select(.step=="ended" and .ok)] | length' "$out")" = 2
    check "$scheme: events: user.online for alice and bob over $scheme" jq_ok "$(events_json "$seq")" \
        "[.events[] | select(.type==\"user.online\" and .transport==\"$scheme\") | .user] | unique == [\"alice\",\"bob\"]"
    check "$scheme: the INVITE and BYE were proxied" jq_ok "$(api GET /stats)" '.proxy.forwarded >= 2'
}

call_over ws "$WS_PORT"
call_over wss "$WSS_PORT" --cert "$WORK/pki/server.pem"

finish
