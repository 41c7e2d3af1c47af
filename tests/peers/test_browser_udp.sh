#!/usr/bin/env bash
# A browser phone and a UDP softphone calling each other through cascade:
# signaling bridged across transports, media end to end between them.
#
# alice is JsSIP in headless Chromium (tests/browser/jssip-call.mjs) over wss;
# bob is baresip 1.0.0 (headless, ctrl_tcp, SIP trace with -s) over UDP. For
# Chromium to accept bob's SDP at all it must be WebRTC-shaped: ICE, DTLS-SRTP
# and rtcp-mux (a plain RTP/AVP answer without rtcp-mux fails the call right
# after the 200), so bob loads ice.so and dtls_srtp.so (medianat=ice,
# mediaenc=dtls_srtp) with "rtcp_mux yes", and G.711 alone so that the 8 kHz
# tone file serves as its microphone.
#
# 1. alice calls sip:bob@127.0.0.1: bob's phone receives the INVITE over UDP
#    from cascade carrying two Record-Routes (RFC 5658, transport change: the
#    UDP one facing bob on top, the ws one with alice's flow token below),
#    auto-answers, alice sees the call confirmed and audio RTP arriving
#    (getStats); alice hangs up and the BYE reaches bob over UDP.
# 2. bob dials sip:alice@127.0.0.1: the INVITE reaches alice's page over her
#    wss flow (the R-URI her .invalid contact), she answers, bob gets the 200
#    with both Record-Routes, alice sees the call confirmed and audio arriving,
#    bob the browser's audio; bob hangs up and alice sees the call ended by
#    the remote end.
#
# Chromium runs with --no-loopback-ice: baresip gathers no loopback candidate,
# so with Chromium's loopback candidates two pairs would succeed and each side
# could select another, baresip's DTLS then dropping Chromium's handshake (see
# the driver). ICE therefore runs over the host's non-loopback address: the
# test needs one (any container with a network interface has it).
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/jssip-call.mjs
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi
if ! command -v baresip >/dev/null; then
    echo "baresip not installed"; exit 1
fi
if ! ip -4 -o addr show scope global | grep -q inet; then
    echo "SKIPPED: no non-loopback IPv4 address: ICE between Chromium and baresip needs one (see the header of $0)"
    exit 77
fi
MODDIR=/usr/lib/baresip/modules
[ -f "$MODDIR/ctrl_tcp.so" ] || MODDIR=$(dirname "$(find / -name ctrl_tcp.so -path '*baresip*' 2>/dev/null | head -1)")
source "$PEERS_DIR/pki.sh"
make_test_pki "$WORK/pki"

PORT=$(free_port); WSS_PORT=$(free_port); API_PORT=$(free_port)
API_TOKEN=bridgetoken
cat >"$WORK/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, wss:127.0.0.1:$WSS_PORT
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

# bob: baresip on UDP, auto-answering, WebRTC-shaped media.
baresip_tone
BOB=$WORK/bob
mkdir -p "$BOB"
# baresip also binds sip_listen + 1 (TLS): keep clear of it
while :; do BOB_SIP=$(free_port); [ "$(ss -Htanl "sport = :$((BOB_SIP + 1))" | wc -l)" = 0 ] && break; done
BOB_CTRL=$(free_port)
cat >"$BOB/config" <<CONF
poll_method		epoll
sip_listen		127.0.0.1:$BOB_SIP
audio_player		aufile,$BOB/play.wav
audio_source		aufile,$WORK/tone.wav
audio_alert		aufile,$BOB/alert.wav
rtcp_mux		yes
module_path		$MODDIR
module			g711.so
module			aufile.so
module			ice.so
module			dtls_srtp.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$BOB_CTRL
CONF
echo "<sip:bob@127.0.0.1:$PORT;transport=udp>;auth_pass=bobpw;answermode=auto;regint=600;medianat=ice;mediaenc=dtls_srtp" \
    >"$BOB/accounts"
(cd "$BOB" && exec baresip -4 -f "$BOB" -v -s >"$WORK/baresip-bob.log" 2>&1) &
PIDS+=("$!")

# bctl COMMAND [PARAMS]: one ctrl_tcp command to bob (netstring JSON).
bctl() { python3 "$PEERS_DIR/bctl.py" "$BOB_CTRL" "$@"; }

# bob_trace: the SIP messages in bob's trace (-s), one JSON object a line:
# {proto, src, dst, start, method, status, cseq, hdr: {lower-case name: [values]}}.
bob_trace() {
    python3 - "$WORK/baresip-bob.log" <<'PY'
import json, re, sys
lines = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read().split("\n")
head = re.compile(r"^(UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)$")
i = 0
while i < len(lines):
    m = head.match(lines[i])
    i += 1
    if not m or i >= len(lines):
        continue
    start = lines[i].rstrip("\r"); i += 1
    hdr = {}
    while i < len(lines) and lines[i].endswith("\r") and lines[i] != "\r":
        name, _, value = lines[i].rstrip("\r").partition(":")
        hdr.setdefault(name.strip().lower(), []).append(value.strip())
        i += 1
    sm = re.match(r"^SIP/2\.0 (\d{3})", start)
    print(json.dumps({"proto": m[1], "src": m[2], "dst": m[3], "start": start,
                      "method": None if sm else start.split(" ")[0], "status": int(sm[1]) if sm else None,
                      "cseq": (hdr.get("cseq") or [""])[0], "hdr": hdr}))
PY
}
# trace_ok JQ: some message in bob's trace satisfies JQ.
trace_ok() { bob_trace | jq -e -s "[.[] | select($1)] | length > 0" >/dev/null; }
# rr_pair TOP BOTTOM (udp or ws): JQ for a message whose Record-Routes are
# cascade's two (RFC 5658): the UDP one facing bob, the ws one with a flow
# token facing alice; the one facing the callee on top (§16.6 step 4: a
# dialog's messages keep the INVITE's order).
UDP_RR="^<sip:127\\\\.0\\\\.0\\\\.1:$PORT;lr>\$"
WS_RR="^<sip:[^@;>]+@127\\\\.0\\\\.0\\\\.1:$WSS_PORT;transport=wss?;lr;ob>\$"
rr_pair() {
    local top=UDP_RR bottom=WS_RR
    [ "$1" = ws ] && { top=WS_RR; bottom=UDP_RR; }
    echo "(.hdr[\"record-route\"] | length == 2 and (.[0] | test(\"${!top}\")) and (.[1] | test(\"${!bottom}\")))"
}
FROM_CASCADE=".proto == \"UDP\" and .src == \"127.0.0.1:$PORT\" and .dst == \"127.0.0.1:$BOB_SIP\""
TO_CASCADE=".proto == \"UDP\" and .src == \"127.0.0.1:$BOB_SIP\" and .dst == \"127.0.0.1:$PORT\""

check "bob (baresip) registers over UDP" \
    wait_for 10 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/registrations |
        jq '[.registrations[] | select(.user == \"bob\" and .transport == \"udp\")] | length')\" = 1 ]"

# step_ok STEP [JQ]: the driver printed STEP with ok true (and JQ holds on it).
OUT=$WORK/jssip.out
step_ok() { jq -e -s --arg s "$1" "[.[] | select(.step == \$s and .ok) | ${2:-.}] | length > 0 and all" "$OUT" >/dev/null; }
# reached SECONDS STEP: waits until the driver got to STEP or failed; then
# whether it got there.
reached() { wait_for "$1" grep -qE "\"step\":\"$2\"|\"ok\":false" "$OUT"; step_ok "$2"; }

node "$DRIVER" --ws "wss://127.0.0.1:$WSS_PORT" --cert "$WORK/pki/server.pem" --domain 127.0.0.1 \
    --alice alice:alicepw --target sip:bob@127.0.0.1 --audio-only --no-loopback-ice --answer-incoming \
    --workdir "$WORK/browser" --timeout 15000 >"$OUT" 2>"$WORK/jssip.log" &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")

# ---- call 1: the browser calls the UDP phone ----
check "call 1: the driver got to alice's hang-up" reached 40 ended
check "alice registered over wss" has_event 'select(.type=="user.online" and .user=="alice" and .transport=="wss")'
check "call 1: the browser saw the call confirmed (JsSIP confirmed)" step_ok confirmed
check "call 1: audio RTP arrived in the browser (getStats)" step_ok media '.stats.alice.audio > 0'
check "call 1: bob received the INVITE over UDP from cascade, record-routed twice (RFC 5658)" \
    trace_ok "$FROM_CASCADE and .method == \"INVITE\" and (.start | startswith(\"INVITE sip:bob-\")) and $(rr_pair udp ws)"
check "call 1: bob answered: 200 for the INVITE back over UDP" \
    trace_ok "$TO_CASCADE and .status == 200 and (.cseq | endswith(\"INVITE\")) and $(rr_pair udp ws)"
check "call 1: alice's hang-up ended the call in the browser" step_ok ended '.originator == "local"'
check "call 1: the BYE reached bob over UDP from cascade" wait_for 10 trace_ok "$FROM_CASCADE and .method == \"BYE\""
check "call 1: bob answered the BYE with 200" \
    wait_for 10 trace_ok "$TO_CASCADE and .status == 200 and (.cseq | endswith(\"BYE\"))"

# ---- call 2: the UDP phone calls the browser ----
check "call 2: alice's page waits for a call" reached 15 waiting-incoming
check "call 2: bob dials sip:alice@127.0.0.1 (ctrl_tcp)" bctl dial "sip:alice@127.0.0.1:$PORT"
check "call 2: the INVITE reached the browser over its wss flow (R-URI the .invalid contact)" \
    wait_for 20 step_ok incoming '(.from | startswith("sip:bob@")) and (.ruri | test("^sip:[^@]+@[^;]+\\.invalid(;|$)"))'
check "call 2: the browser saw the call confirmed" wait_for 20 step_ok incoming-confirmed
check "call 2: audio RTP arrived in the browser (getStats)" wait_for 20 step_ok incoming-media '.stats.alice.audio > 0'
# baresip notes the first RTP packet of a call; the lines after its last
# INVITE to alice are call 2's (bob hangs up only after this).
bob_got_rtp() { awk '/^INVITE sip:alice@/ { n = 0 } /incoming rtp for .audio. established/ { n++ } END { exit !n }' "$WORK/baresip-bob.log"; }
check "call 2: the browser's audio RTP arrived at bob (DTLS-SRTP both ways)" wait_for 10 bob_got_rtp
check "call 2: bob sent the INVITE over UDP to cascade" trace_ok "$TO_CASCADE and .method == \"INVITE\""
check "call 2: bob got the browser's 200 over UDP, record-routed twice (RFC 5658)" \
    trace_ok "$FROM_CASCADE and .status == 200 and (.cseq | endswith(\"INVITE\")) and $(rr_pair ws udp)"
check "call 2: bob hangs up (ctrl_tcp)" bctl hangup
check "call 2: the BYE left bob over UDP and was answered 200" \
    wait_for 10 trace_ok "$FROM_CASCADE and .status == 200 and (.cseq | endswith(\"BYE\"))"
check "call 2: the browser saw the call ended by the remote end" \
    wait_for 10 step_ok incoming-ended '.originator == "remote"'

check "the driver exits 0" wait "$DRIVER_PID"
cat "$OUT"
check "the INVITEs, ACKs and BYEs were proxied" jq_ok "$(api GET /stats)" '.proxy.forwarded >= 4'

finish
