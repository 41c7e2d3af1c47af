#!/usr/bin/env bash
# test_console_live.sh — the web console's live view page (issue 14; the
# live routes of issue 13) in headless Chromium (tests/browser/
# console-live.mjs) against a GB upper node with the media plane on:
#  - a cascade-gbsim camera (one device, two channels): two tiles of a 4-tile
#    grid play its channels over WebRTC (frames decoded, rising), the API
#    counts a WebRTC viewer each; one tile switched to FLV plays the stream
#    through mpegts.js (the video's decoded frames rising, an FLV viewer in the
#    API); a tab whose browser lacks WebRTC falls back to FLV by itself; the
#    language switch keeps the tiles playing; a PTZ click beside a tile
#    reaches the device;
#  - a middle node registered to the top, whose own channel has recordings in
#    its store (gbsim records nothing): the page's record search draws them
#    as a timeline, a click plays one over WebRTC, pause stops the frames and
#    resume brings them back (the controls reached the middle), speed 2;
#  - closing the tiles stops the playback and drops the live viewers; the
#    devices page's Watch button opens the live page playing the channel,
#    whose tile shows "ended" and the reason when the stream is stopped;
#    once the page is left, the shared live streams idle-stop.
# Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim
ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/console-live.mjs
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi

TOP_SIP=$(free_port); TOP_API=$(free_port); MEDIA_PORT=$(free_port); MID_SIP=$(free_port); MID_API=$(free_port)
API_TOKEN=tok
TOP_ID=34020000002000000001
MID_ID=34020000002000000002
DEV=34020000001320000001
CH1=34020000001310000001
CH2=34020000001310000002
LCH=34020000001310000201     # the middle's own channel, with recordings
DAY=2026-12-01
gb_upper_ini top "$TOP_SIP" "$TOP_API" "$TOP_ID" top-secret yes <<EOF
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA_PORT
idle_stop = 6
EOF
gb_upper_ini middle "$MID_SIP" "$MID_API" "$MID_ID" dev-secret yes <<EOF
$(gb_upstream_ini "$TOP_ID" "$TOP_SIP" udp top-secret 120)
keepalive_interval = 2
EOF
API_PORT=$TOP_API
mid() { API_PORT=$MID_API api "$@"; }
start_cascade top "$WORK/top.ini"
start_cascade middle "$WORK/middle.ini"
mid POST /gb/channels "{\"channels\":[{\"id\":\"$LCH\",\"name\":\"库房\"}]}" >/dev/null
"$GBSIM" --target 127.0.0.1:$TOP_SIP --target-id $TOP_ID --password top-secret --devices 1 --channels 2 \
    --keepalive 1 --quiet --log-level info --duration 400 >"$WORK/gbsim.log" 2>&1 &
PIDS+=("$!")

# three recordings of the middle's channel that day (GB times are local; mktime reads them)
python3 - "$WORK/middle.db" "$LCH" "$DAY" <<'PY'
import sqlite3, sys, time
db, ch, day = sys.argv[1], sys.argv[2], sys.argv[3]
ms = lambda s: int(time.mktime(time.strptime(day + "T" + s, "%Y-%m-%dT%H:%M:%S")) * 1000)
c = sqlite3.connect(db, timeout=10)
for a, b, name, kind in [("08:00:00", "09:00:00", "morning", "time"), ("10:00:00", "11:30:00", "noon", "time"),
                         ("14:00:00", "14:40:00", "alarm", "alarm")]:
    c.execute("INSERT INTO gb_records(channel_id,start,\"end\",file_path,device_id,name,type,secrecy,size) "
              "VALUES(?,?,?,?,?,?,?,?,?)", (ch, ms(a), ms(b), "/rec/" + name + ".mp4", "", name, kind, 0, 1000))
c.commit()
PY

online_with() { # online_with DEVICE CHANNEL: online, CHANNEL in its catalog
    api GET "/gb/devices/$1/channels" | jq -e --arg c "$2" '[.. | objects | select(.id? == $c)] | length > 0' >/dev/null &&
        [ "$(api GET "/gb/devices/$1" | jget 'd["online"]')" = True ]
}
check "the camera is online with its catalog" wait_for 60 online_with $DEV $CH2
catalog_mid() { api POST "/gb/devices/$MID_ID/catalog" '{}' >/dev/null; online_with $MID_ID $LCH; }
check "the middle node is online, its channel in its catalog" wait_for 60 catalog_mid

OUT=$WORK/console-live.out
run_driver "$OUT" "$WORK/driver.log" --api "http://127.0.0.1:$TOP_API" --token "$API_TOKEN" --device $DEV --channel $CH1 --channel2 $CH2 \
    --pb-device $MID_ID --pb-channel $LCH --day $DAY --timeout 30000 --workdir "$WORK/browser"
check "signed in, the live page has a 4-tile grid" step_ok live-page '.tiles == 4'
check "two tiles decode the camera's channels at 320 wide, frames rising" step_ok live \
    '(.tiles | length) == 2 and all(.tiles[]; .width == 320 and .to > .from)'
check "the API counts one WebRTC viewer per tile" step_ok live '(.viewers | length) == 2'
check "tile 1 switched to FLV: the same stream, frames decoded by mpegts.js (totalVideoFrames rising)" step_ok flv \
    '.width == 320 and .to > .from and .from > 0'
check "the API counts an FLV viewer instead of the WebRTC one" step_ok flv '.viewers.flv == 1 and (.viewers.webrtc // 0) == 0'
check "a browser with no WebRTC: the tile falls back to FLV by itself and decodes frames" step_ok fallback \
    '.width == 320 and .to > .from and (.fallback | test("WebRTC"))'
check "the language switch keeps both tiles playing (same video, same stream, frames rising)" step_ok lang-keeps \
    '(.tiles | length) == 2 and all(.tiles[]; .more > 0 and .status == "播放中") and ([.tiles[].transport] == ["webrtc","flv"])'
check "PTZ from the pad beside the tile: sent" step_ok ptz
check "the PTZ command reached the camera" wait_for 10 grep -q "PTZ left" "$WORK/gbsim.log"
check "the timeline has a segment per recording the API answered (3)" step_ok records '.segments == 3 and .api == 3'
check "a recording clicked plays over WebRTC (frames rising)" step_ok playback '.width == 320 and .to > .from'
check "a second WebRTC viewer of the playback: 409" step_ok playback '.second == 409'
PB=$(jq -s -r '.[] | select(.step == "playback") | .sid' "$OUT")
T0=$(date -d "${DAY}T08:00:00" +%s); T1=$(date -d "${DAY}T09:00:00" +%s)
check "the middle got the playback of the clicked recording (08:00-09:00)" \
    grep -qE "INVITE for $LCH from upstream $TOP_ID: Playback udp .* t=$T0-$T1" "$WORK/middle.log"
check "paused: no frame decoded" step_ok pause
check "resumed: frames again; speed 2 answered" step_ok resume '.to > .from and .scale == 2'
check "the middle applied pause and play" test "$(grep -cE "playback of $LCH for upstream $TOP_ID: (PAUSE|PLAY)" \
    "$WORK/middle.log")" -ge 2
check "tiles closed: the playback stopped, the live viewers dropped" step_ok close
check "the devices page's Watch button: the live page plays the channel" step_ok watch-button '.width == 320 and .to > .from'
check "the stream stopped through the API: the tile shows ended, reason api" step_ok watch-button '.ended == "api"'
check "the playback ended by the page (reason api)" \
    has_event "select(.type == \"gb.stream.stopped\" and .stream_id == \"$PB\" and .reason == \"api\")"
no_live() { [ "$(api GET /media/streams | jq '[.streams[] | select(.source.kind == "live")] | length')" = 0 ]; }
check "the shared live streams idle-stopped" wait_for 40 no_live
check "the language switch, no page error, nothing refused by the CSP" step_ok safety
check "PNGs of the live page" test "$(ls "$WORK/browser"/console-live*.png 2>/dev/null | wc -l)" -ge 3
finish
