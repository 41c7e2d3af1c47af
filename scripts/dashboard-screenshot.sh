#!/usr/bin/env bash
# dashboard-screenshot.sh BUILD_DIR [SECONDS] — the README's dashboard picture
# (docs/grafana/cascade.png) from a real run. Not part of `make test`.
#
#  1. starts cascade from BUILD_DIR (temp config: registrar, proxy, GB/T 28181
#     upper role, media/rooms, API; ports chosen at run time);
#  2. starts Debian's Prometheus (`apt-get install prometheus`; this script
#     installs nothing) with its own config and data dir in a temp dir,
#     scraping cascade's /metrics every second;
#  3. drives SECONDS (default 75) of real traffic: sipp REGISTER with digest
#     (200 AoRs, 20/s then 60/s), sipp calls through the proxy to a
#     registered sipp UAS (INVITE/180/200/ACK/BYE, 2 s long), sipp INVITEs to
#     an unknown user (404), 20 cascade-gbsim devices (2 channels each,
#     registering over ~10 s, 1 s keepalives), one GB live view watched over
#     HTTP-FLV by curl, WHIP publishers into a room (real Chromium offers; they
#     never connect, so they time out), garbage datagrams, API reads;
#  4. evaluates every query of docs/grafana/cascade.json, exactly as written
#     (Grafana variables substituted: see scripts/dashboard-render.py), through
#     Prometheus' /api/v1/query_range, draws the panels on one page laid out
#     by their gridPos, and screenshots it with headless Chromium.
#
# Environment: OUT (default docs/grafana/cascade.png), KEEP_WORK=1 keeps the
# temp dir (configs, logs, data.json, page.html).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${1:?usage: dashboard-screenshot.sh BUILD_DIR [SECONDS]}" && pwd)
SECONDS_RUN=${2:-75}
OUT=${OUT:-$ROOT/docs/grafana/cascade.png}
PEERS=$ROOT/tests/peers
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}

command -v prometheus >/dev/null || { echo "prometheus not found: apt-get install prometheus (Debian's package)"; exit 1; }
for t in sipp curl python3; do command -v "$t" >/dev/null || { echo "$t not found"; exit 1; }; done
[ -n "$CHROMIUM" ] || { echo "chromium not found: apt-get install chromium"; exit 1; }
[ -x "$BUILD_DIR/cascade" ] || { echo "no $BUILD_DIR/cascade"; exit 1; }

WORK=$(mktemp -d /tmp/cascade-dash.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
bg() { "$@" & PIDS+=("$!"); }

# free_ports N: N consecutive ports free for UDP and TCP on 127.0.0.1.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
def free(p):
    for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, k)
        try: s.bind(("127.0.0.1", p))
        except OSError: return False
        finally: s.close()
    return True
for _ in range(500):
    b = random.randrange(21000, 30000 - n)
    if all(free(p) for p in range(b, b + n)):
        print(b); sys.exit(0)
sys.exit("no free ports")
PY
}
BASE=$(free_ports 120)
SIP=$BASE API=$((BASE + 4)) MEDIA=$((BASE + 8)) PROM=$((BASE + 12)) UAS=$((BASE + 16))
REGP=$((BASE + 20)) UACP=$((BASE + 24)) REJP=$((BASE + 28)) GBMEDIA=$((BASE + 60))
TOKEN=dashtoken UPPER=34020000002000000001
# Real WebRTC media needs GStreamer's webrtcbin (tests/peers/gstwebrtc.py) and a
# non-loopback address (libnice gathers no loopback candidate).
HOST_IP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
MEDIA_IP=127.0.0.1 GST=
if [ -n "$HOST_IP" ] && /usr/bin/python3 -c 'import gi; gi.require_version("GstWebRTC", "1.0")' 2>/dev/null &&
    gst-inspect-1.0 webrtcbin >/dev/null 2>&1 && gst-inspect-1.0 nicesrc >/dev/null 2>&1; then
    MEDIA_IP=$HOST_IP GST="/usr/bin/python3 $PEERS/gstwebrtc.py"
else
    echo "no GStreamer webrtcbin or no non-loopback address: no WebRTC media (the media panels will say so)"
fi

cat >"$WORK/cascade.ini" <<INI
[sip]
listen = udp:127.0.0.1:$SIP, tcp:127.0.0.1:$SIP
domain = 3402000000
[auth]
realm = cascade.test
match_user = no
[proxy]
mode = proxy
allow_foreign = yes
authenticate = no
[gb]
enabled = yes
id = $UPPER
domain = 3402000000
password = dev-secret
allow_unknown = yes
media_ip = 127.0.0.1
media_ports = $GBMEDIA-$((GBMEDIA + 40))
[media]
enabled = yes
listen = $MEDIA_IP
port = $MEDIA
connect_timeout_s = 20
idle_stop = 10
[api]
listen = 127.0.0.1:$API
token = $TOKEN
[store]
path = $WORK/cascade.db
[log]
level = warn
INI
(cd "$WORK" && exec "$BUILD_DIR/cascade" -c "$WORK/cascade.ini" >"$WORK/cascade.log" 2>&1) & PIDS+=("$!")
for _ in $(seq 100); do grep -q "cascade ready" "$WORK/cascade.log" 2>/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$API/metrics" >/dev/null || { echo "cascade did not start:"; cat "$WORK/cascade.log"; exit 1; }

cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: cascade
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$API']
YML
bg prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --web.listen-address="127.0.0.1:$PROM" --log.level=warn >"$WORK/prometheus.log" 2>&1
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PROM/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PROM/-/ready" >/dev/null || { echo "prometheus did not start:"; cat "$WORK/prometheus.log"; exit 1; }
echo "cascade on 127.0.0.1:$SIP (API $API), prometheus on 127.0.0.1:$PROM; ${SECONDS_RUN}s of traffic"

ctl() { "$BUILD_DIR/cascadectl" --url "http://127.0.0.1:$API" --token "$TOKEN" "$@" >/dev/null; }
api() { curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$API/api/v1$2"; }
START=$(date +%s)
sleep 4 # a few idle scrapes first
ctl user add bench --password secret
ctl user add bob --password bobpw
{ echo SEQUENTIAL; for i in $(seq 0 199); do echo "u$i;"; done; } >"$WORK/users.csv"

# REGISTER with digest: 20/s for the first half, 60/s for the second.
HALF=$(((SECONDS_RUN - 4) / 2))
reg_load() { # RATE SECONDS PORT
    (cd "$WORK" && exec timeout $(($2 + 15)) sipp "127.0.0.1:$SIP" -sf "$PEERS/sipp/register-load.xml" -inf users.csv \
        -au bench -ap secret -i 127.0.0.1 -p "$3" -r "$1" -m $(($1 * $2)) -l 500 -nostdin -recv_timeout 4000 \
        >"$WORK/reg-$1.out" 2>&1)
}
bg bash -c "$(declare -f reg_load); WORK=$WORK SIP=$SIP PEERS=$PEERS; reg_load 20 $HALF $REGP; reg_load 60 $HALF $((REGP + 1))"

# Calls through the proxy: bob's UAS registers from its port, then 2 calls/s of 2 s each.
(cd "$WORK" && sipp "127.0.0.1:$SIP" -sf "$PEERS/sipp/register.xml" -s bob -au bob -ap bobpw -key expires 600 \
    -key cport "$UAS" -p "$UAS" -i 127.0.0.1 -m 1 -nostdin >"$WORK/bobreg.out" 2>&1) || echo "bob's REGISTER failed"
bg bash -c "cd '$WORK' && exec timeout $((SECONDS_RUN + 10)) sipp -sf '$PEERS/sipp/uas-call.xml' -s bob -i 127.0.0.1 -p $UAS -nostdin >uas.out 2>&1"
sed 's/pause milliseconds="300"/pause milliseconds="2000"/' "$PEERS/sipp/uac-call.xml" >"$WORK/uac-call.xml"
bg bash -c "cd '$WORK' && exec timeout $((SECONDS_RUN + 10)) sipp 127.0.0.1:$SIP -sf uac-call.xml -s bob -i 127.0.0.1 -p $UACP \
    -r 2 -m $((2 * (SECONDS_RUN - 12))) -l 50 -nostdin >uac.out 2>&1"
# INVITEs over TCP to a user nobody registered: 404, one every 2 s.
sed 's/STATUS/404/g' "$PEERS/sipp/uac-reject.xml" >"$WORK/reject-404.xml"
bg bash -c "cd '$WORK' && exec timeout $((SECONDS_RUN + 10)) sipp 127.0.0.1:$SIP -sf reject-404.xml -s nobody -key target 127.0.0.1:$SIP \
    -key mf 70 -i 127.0.0.1 -t t1 -p $REJP -r 1 -rp 2000 -m $(((SECONDS_RUN - 12) / 2)) -nostdin >reject.out 2>&1"

# GB/T 28181: 20 devices with 2 channels, 2 registrations a second, 1 s keepalives.
bg "$BUILD_DIR/cascade-gbsim" --target "127.0.0.1:$SIP" --target-id "$UPPER" --password dev-secret --devices 20 \
    --channels 2 --rate 2 --keepalive 1 --quiet --duration $((SECONDS_RUN + 10)) --json "$WORK/gbsim.json" >"$WORK/gbsim.log" 2>&1

sleep 12
# A live view of the first device's first channel, watched for 30 s over HTTP-FLV.
L=$(api POST /gb/devices/34020000001320000001/channels/34020000001310000001/live '{}')
FLV=$(echo "$L" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("flv",""))' 2>/dev/null || true)
if [ -n "$FLV" ]; then
    bg curl -s -o /dev/null --max-time 30 -H "Authorization: Bearer $TOKEN" "$FLV"
else
    echo "no live stream: $L"
fi
# WHIP publishers into room "lobby" (Chromium offers; no ICE ever comes, so they leave after connect_timeout_s).
for i in 1 2 3; do
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/sdp' \
        --data-binary "@$PEERS/rooms/chromium_publish.sdp" "http://127.0.0.1:$API/api/v1/whip/lobby" || true
    sleep 1
done
# WebRTC: a GStreamer publisher (VP8 + Opus) in room "live" over WHIP, two viewers over WHEP
# (they ask for more frames than they can get, so that they watch for their whole time).
if [ -n "$GST" ]; then
    bg $GST publish "http://127.0.0.1:$API/api/v1/whip/live" "$TOKEN" $((SECONDS_RUN - 20)) >"$WORK/gst-pub.log" 2>&1
    sleep 3
    bg $GST view "http://127.0.0.1:$API/api/v1/whep/live" "$TOKEN" $((SECONDS_RUN - 30)) 1000000 >"$WORK/gst-view1.log" 2>&1
    bg $GST view "http://127.0.0.1:$API/api/v1/whep/live" "$TOKEN" $((SECONDS_RUN - 40)) 1000000 >"$WORK/gst-view2.log" 2>&1
fi
# Garbage datagrams to the SIP port for 10 s (parse errors), and API reads.
python3 - "$SIP" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(100):
    s.sendto(b"NOT SIP AT ALL %d\r\n\r\n" % i, ("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.1)
PY
PIDS+=("$!")
while [ $(($(date +%s) - START)) -lt "$SECONDS_RUN" ]; do
    api GET /stats >/dev/null; api GET /registrations >/dev/null; api GET /gb/devices >/dev/null
    curl -s -o /dev/null "http://127.0.0.1:$API/api/v1/nosuch"
    sleep 1
done
sleep 3
END=$(date +%s)
echo "traffic done ($((END - START)) s scraped):"
for f in bobreg reg-20 reg-60 uac reject; do
    [ -f "$WORK/$f.out" ] || continue
    ok=$(awk -F'|' '/Successful call/ {gsub(/ /, "", $3); print $3}' "$WORK/$f.out" | tail -1)
    bad=$(awk -F'|' '/Failed call/ {gsub(/ /, "", $3); print $3}' "$WORK/$f.out" | tail -1)
    echo "  sipp $f: ${ok:-?} successful, ${bad:-?} failed"
done
for f in gst-pub gst-view1 gst-view2; do
    [ -f "$WORK/$f.log" ] && echo "  $f: $(grep -a 'video_frames' "$WORK/$f.log" | tail -1)"
done
LOAD=$(cut -d' ' -f1 /proc/loadavg)
echo "  load average (1 min) at the end: $LOAD on $(nproc) cores"

python3 "$ROOT/scripts/dashboard-render.py" query "$ROOT/docs/grafana/cascade.json" "http://127.0.0.1:$PROM" \
    "$START" "$END" 1 1 "$WORK/data.json"
CAPTION="$(date -u -d "@$START" '+%Y-%m-%d %H:%M') UTC, ${SECONDS_RUN} s run, load average $LOAD on $(nproc) cores · rendered by scripts/dashboard-screenshot.sh from Debian's Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') evaluating the dashboard's queries (not Grafana)"
python3 "$ROOT/scripts/dashboard-render.py" html "$ROOT/docs/grafana/cascade.json" "$WORK/data.json" "$WORK/page.html" \
    "$CAPTION" | tee "$WORK/render.out"
H=$(sed -n 's/^HEIGHT=//p' "$WORK/render.out")
"$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="1600,$H" --screenshot="$WORK/shot.png" "file://$WORK/page.html" >"$WORK/chromium.log" 2>&1 ||
    { cat "$WORK/chromium.log"; exit 1; }
cp "$WORK/shot.png" "$OUT"
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
