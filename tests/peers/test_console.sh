#!/usr/bin/env bash
# The web console (issue 14) in headless Chromium (tests/browser/console.mjs)
# against a GB upper node: two cascade-gbsim devices over UDP and one over TCP,
# a SIP user registered by sipp (its User-Agent is a <script> text, which the
# page must show as text). Checked here: the console's files are served
# without a token, with an ETag (304 on If-None-Match), 404 for an unknown
# file, and every answer (a page, a JSON answer, a 401) carries the security
# headers; then by the driver: a wrong token shows the sign-in again, the
# overview shows the counts of /stats, the devices are listed online, a
# device's tree matches its catalog, PTZ is sent, a user added from the page
# appears in `cascadectl user list`, the events page shows gb.device.offline
# live when the TCP gbsim is killed, no dialog opens and the CSP refuses
# nothing. Screenshots of every page are left in $WORK/browser (kept with
# KEEP_WORK=1). Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/console.mjs
GBSIM=$BUILD_DIR/cascade-gbsim
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=console-token
NODE_ID=34020000002000000001
DEV_A1=34020000001320000001   # gbsim A (UDP): two devices, three channels each
DEV_A2=34020000001320000002
DEV_B=34020000001320000011    # gbsim B (TCP): killed during the run
SCRIPT='<script>alert(1)</script>'
gb_upper_ini n "$PORT" "$API_PORT" "$NODE_ID" gb-secret yes </dev/null
start_cascade n "$WORK/n.ini"
URL=http://127.0.0.1:$API_PORT

# ---- static files and headers (curl) ----
hdr() { curl -s -D - -o /dev/null "$@" | tr -d '\r'; }
secure() { # secure HEADERS: the four security headers are there
    grep -qi "^content-security-policy: default-src 'self'.*connect-src 'self' ws: wss:.*frame-ancestors 'none'" <<<"$1" &&
        grep -qi '^x-frame-options: DENY' <<<"$1" && grep -qi '^x-content-type-options: nosniff' <<<"$1" &&
        grep -qi '^referrer-policy: no-referrer' <<<"$1"
}
H_ROOT=$(hdr "$URL/")
check "GET / without a token: 200 text/html" grep -qiE '^HTTP/1.1 200|^content-type: text/html' <<<"$H_ROOT"
check "GET /: the security headers" secure "$H_ROOT"
check "GET /: no inline script in the page" not grep -qiE '<script>|<script [^>]*>[^<]' <(curl -s "$URL/")
H_API=$(hdr -H "Authorization: Bearer $API_TOKEN" "$URL/api/v1/stats")
check "GET /api/v1/stats: the security headers, no-store" bash -c 'grep -qi "^cache-control: no-store" <<<"$1"' _ "$H_API"
check "GET /api/v1/stats: the security headers" secure "$H_API"
check "a 401 carries the security headers" secure "$(hdr "$URL/api/v1/stats")"
ETAG=$(hdr "$URL/console/app.js" | sed -n 's/^etag: //Ip')
check "GET /console/app.js: an ETag, no-cache" test -n "$ETAG"
check "If-None-Match with it: 304" test "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" \
    "$URL/console/app.js")" = 304
check "an unknown console file: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/nope.js")" = 404
check "the stylesheet is text/css" grep -qi '^content-type: text/css' <<<"$(hdr "$URL/console/style.css")"

# ---- peers: gbsim devices and a sipp registration ----
"$GBSIM" --target "127.0.0.1:$PORT" --target-id $NODE_ID --password gb-secret --devices 2 --channels 3 \
    --keepalive 2 --quiet --log-level info --duration 600 >"$WORK/gbsim-a.log" 2>&1 &
PIDS+=("$!")
"$GBSIM" --target "127.0.0.1:$PORT" --target-id $NODE_ID --password gb-secret --base-id $DEV_B --devices 1 \
    --channels 2 --transport tcp --keepalive 2 --quiet --log-level info --duration 600 >"$WORK/gbsim-b.log" 2>&1 &
SIM_B=$!
PIDS+=("$SIM_B")
online() { [ "$(api GET "/gb/devices/$1" | jget 'd["online"] and d["channels"] > 0')" = True ]; }
for d in $DEV_A1 $DEV_A2 $DEV_B; do check "device $d online with its catalog" wait_for 60 online $d; done

check "cascadectl user add alice" ctl user add alice --password alicepw
sed -e "s|^Max-Forwards: 70|User-Agent: $SCRIPT\nMax-Forwards: 70|" "$PEERS_DIR/sipp/register.xml" >"$WORK/register-ua.xml"
check "sipp registers alice (User-Agent: $SCRIPT)" \
    sipp_scn alice "$WORK/register-ua.xml" -s alice -au alice -ap alicepw -key expires 600 -key cport 5099 -p "$(free_port)"
ua_is_script() { api GET '/registrations?user=alice' | jq -e --arg ua "$SCRIPT" '.registrations[0].user_agent == $ua'; }
check "the registration carries that user agent" ua_is_script

# ---- the browser ----
OUT=$WORK/console.out
node "$DRIVER" --api "$URL" --token "$API_TOKEN" --devices "$DEV_A1,$DEV_A2,$DEV_B" --catalog-device $DEV_A1 \
    --kill-pid $SIM_B --kill-device $DEV_B --sip-user alice --add-user webuser --script-text "$SCRIPT" \
    --timeout 30000 --workdir "$WORK/browser" >"$OUT" 2>"$WORK/console-driver.log" && rc=0 || rc=$?
cat "$OUT"
if [ "$rc" = 77 ]; then
    cat "$WORK/console-driver.log"
    echo "SKIP - Chromium cannot start here (see above)"
    exit 77
fi
check "the driver exits 0" test "$rc" = 0
step_ok() { jq -e -s --arg s "$1" "[.[] | select(.step == \$s and .ok) | ${2:-.}] | length > 0 and all" "$OUT" >/dev/null; }
check "a wrong token: the sign-in again, with an error" step_ok wrong-token '.error | length > 0'
check "signed in" step_ok signed-in
check "the overview shows the counts of /stats (3 GB devices online)" step_ok overview '.cards["gb_upper.online"] == "3"'
check "the device list shows the gbsim devices online; the search narrows it" step_ok devices
check "the device's tree matches its catalog; PTZ sent" step_ok catalog '.nodes == 3'
check "the registration's <script> user agent shown as text" step_ok users '.registration.scripts == 0'
check "the events page showed gb.device.offline live" step_ok events-live
check "replay from seq 0" step_ok events-replay
check "rooms, upstreams, language switch" step_ok language
check "no dialog, nothing refused by the CSP, no page error" step_ok safety
ctl user list >"$WORK/user-list.txt" 2>&1 || true
check "the user added from the page is in cascadectl user list" grep -qw webuser "$WORK/user-list.txt"
check "its gb.device.offline is in the event ring (transport-lost)" \
    has_event "select(.type == \"gb.device.offline\" and .device_id == \"$DEV_B\")"
check "a PNG of every page" test "$(ls "$WORK/browser"/console-*.png 2>/dev/null | wc -l)" -ge 8
finish
