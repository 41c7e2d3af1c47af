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
# appears in `cascadectl user list`, the device list finds a device by its
# DeviceInfo name, the events page is live over the WebSocket (a ticket from
# POST /events/ticket) and shows the user.offline that `cascadectl reg kick`
# causes, the user.offline (transport-lost) of bob when his TCP client
# (tests/peers/sipreg.py hold) is killed, then gb.device.offline live when the
# TCP gbsim is killed, no dialog opens and the CSP refuses
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
check "the vendored mpegts.js (the FLV player): text/javascript, its licence beside it" \
    bash -c 'grep -qi "^content-type: text/javascript" <<<"$1" && test "$(curl -s -o /dev/null -w "%{http_code}" "$2")" = 200' \
    _ "$(hdr "$URL/console/vendor/mpegts.js")" "$URL/console/vendor/LICENSE-mpegts.js.txt"
check "an unknown vendor file: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/vendor/nope.js")" = 404
check "console/'s npm files are not served" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/package.json")" = 404

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
# bob over TCP, the connection held by sipreg.py until the driver kills it
check "cascadectl user add bob" ctl user add bob --password bobpw
python3 "$PEERS_DIR/sipreg.py" --transport tcp --server "127.0.0.1:$PORT" --user bob --password bobpw --expires 600 \
    hold >"$WORK/bob.out" 2>&1 &
BOB=$!
PIDS+=("$BOB")
bob_tcp() { api GET '/registrations?user=bob' | jq -e '[.registrations[] | select(.transport == "tcp")] | length == 1'; }
check "bob registered over TCP (sipreg.py holds the connection)" wait_for 20 bob_tcp
ua_is_script() { api GET '/registrations?user=alice' | jq -e --arg ua "$SCRIPT" '.registrations[0].user_agent == $ua'; }
check "the registration carries that user agent" ua_is_script

# ---- the event stream's tickets (curl's upgrade: 101 or a refusal) ----
ws_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$@" || true; }
TICKET_JSON=$(api POST /events/ticket)
TICKET=$(jq -r .ticket <<<"$TICKET_JSON")
check "POST /events/ticket: a ticket of 32 hex digits, expires_in 30" \
    jq_ok "$TICKET_JSON" '(.ticket | test("^[0-9a-f]{32}$")) and .expires_in == 30'
check "POST /events/ticket without the token: 401" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v1/events/ticket")" = 401
check "the event WebSocket opens with ?ticket= (101)" test "$(ws_code "$URL/api/v1/events?ticket=$TICKET")" = 101
check "the same ticket a second time: 401" test "$(ws_code "$URL/api/v1/events?ticket=$TICKET")" = 401
check "a made-up ticket: 401" test "$(ws_code "$URL/api/v1/events?ticket=0123456789abcdef0123456789abcdef")" = 401
check "neither token nor ticket: 401" test "$(ws_code "$URL/api/v1/events")" = 401
check "the Bearer header still opens it (101)" \
    test "$(ws_code -H "Authorization: Bearer $API_TOKEN" "$URL/api/v1/events")" = 101
check "the refusals are logged with the sender" grep -q 'websocket upgrade for /api/v1/events from 127.0.0.1 refused: unauthorized (ticket' "$WORK/n.log"
check "/stats counts one ticket redeemed, two refused" \
    jq_ok "$(api GET /stats)" '.event_tickets.redeemed == 1 and .event_tickets.refused == 2'

# ---- device names (DeviceInfo) in the list, and ?q= ----
check "DeviceInfo of $DEV_A2 answered" jq_ok "$(api POST /gb/devices/$DEV_A2/info)" '.device_name | length > 0'
NAME_A2=$(api GET "/gb/devices/$DEV_A2" | jq -r .name)
named_in_list() { api GET /gb/devices | jq -e --arg id "$DEV_A2" --arg n "$1" \
    '[.devices[] | select(.id == $id and .name == $n and .manufacturer == "cascade-gbsim")] | length == 1' >/dev/null; }
check "the device's name ($NAME_A2) is in its record and the list" named_in_list "$NAME_A2"
QNAME=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$NAME_A2")
check "GET /gb/devices?q=<its name>: that device alone" \
    jq_ok "$(api GET "/gb/devices?q=$QNAME")" "[.devices[].id] == [\"$DEV_A2\"]"
check "GET /gb/devices?q=132000000 (a part of the id): the two A devices" \
    jq_ok "$(api GET '/gb/devices?q=132000000')" "[.devices[].id] == [\"$DEV_A1\", \"$DEV_A2\"]"
check "GET /gb/devices?q=no-such: none" jq_ok "$(api GET '/gb/devices?q=no-such')" '.devices == []'
check "GET /gb/devices?q= longer than 64 bytes: 400" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $API_TOKEN" \
        "$URL/api/v1/gb/devices?q=$(printf 'x%.0s' $(seq 65))")" = 400

# ---- the browser ----
OUT=$WORK/console.out
KICK="$CASCADECTL --url $URL --token $API_TOKEN reg kick alice"
run_driver "$OUT" "$WORK/console-driver.log" --api "$URL" --token "$API_TOKEN" --devices "$DEV_A1,$DEV_A2,$DEV_B" --catalog-device $DEV_A1 \
    --name-search "$NAME_A2" --name-device $DEV_A2 \
    --event-cmd "$KICK" --event-type user.offline --event-text alice \
    --user-kill-pid $BOB --user-kill bob --kill-pid $SIM_B --kill-device $DEV_B --sip-user alice --add-user webuser --script-text "$SCRIPT" \
    --timeout 30000 --workdir "$WORK/browser"
check "a wrong token: the sign-in again, with an error" step_ok wrong-token '.error | length > 0'
check "signed in" step_ok signed-in
check "the overview shows the counts of /stats (3 GB devices online)" step_ok overview '.cards["gb_upper.online"] == "3"'
check "the device list shows the gbsim devices online; the search narrows it" step_ok devices
check "the device's tree matches its catalog; PTZ sent" step_ok catalog '.nodes == 3'
check "the registration's <script> user agent shown as text" step_ok users '.registration.scripts == 0'
check "the device list found $DEV_A2 by its name" step_ok devices ".byName.id == \"$DEV_A2\""
check "the events page was live over the WebSocket and showed the user.offline of cascadectl reg kick" \
    step_ok events-ws '.indicator | length > 0'
check "bob's TCP client killed: the events page showed user.offline (transport-lost) over the WebSocket" \
    step_ok events-user-offline '.mode == "websocket" and (.details | contains("transport=tcp"))'
check "the events page showed gb.device.offline live" step_ok events-live
check "the page opened its socket with a ticket of its own (/stats: more than the one redeemed above)" \
    jq_ok "$(api GET /stats)" '.event_tickets.redeemed >= 2'
check "replay from seq 0" step_ok events-replay
check "rooms, upstreams, language switch" step_ok language
check "no dialog, nothing refused by the CSP, no page error" step_ok safety
ctl user list >"$WORK/user-list.txt" 2>&1 || true
check "the user added from the page is in cascadectl user list" grep -qw webuser "$WORK/user-list.txt"
check "its gb.device.offline is in the event ring (transport-lost)" \
    has_event "select(.type == \"gb.device.offline\" and .device_id == \"$DEV_B\")"
check "a PNG of every page" test "$(ls "$WORK/browser"/console-*.png 2>/dev/null | wc -l)" -ge 8
finish
