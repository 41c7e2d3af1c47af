#!/usr/bin/env bash
# test_gb_playback.sh — GB/T 28181 playback of recordings (s=Playback) with
# its time range and playback control (MANSRTSP in INFO, Annex B), on three
# kinds of device:
#  - cascade-gbsim registered straight to the top node;
#  - cascade-gbsim behind a middle node (the INVITE and the INFOs relayed);
#  - a local channel of the middle node itself (its lower role plays its clip).
# Checked at the device: the range of t= arrives, each control body arrives
# and is applied (a paused device sends nothing, as the top's packet counter
# shows), a range that ends brings MediaStatus (NotifyType 121) and the top
# ends the stream with reason media-end. Checked at the API: refusals of bad
# controls, control of a live stream, of an unknown stream.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim

TOP_SIP=$(free_port); TOP_API=$(free_port); MID_SIP=$(free_port); MID_API=$(free_port)
TOP_ID=34020000002000000001
MID_ID=34020000002000000002
DEV_A=34020000001320000001   # gbsim, straight to the top
CH_A1=34020000001310000001
CH_A2=34020000001310000002
DEV_B=34020000001320000005   # gbsim behind the middle
CH_B1=34020000001310000005
LCH=34020000001310000201     # the middle's own channel
API_TOKEN=tok

gb_upper_ini top "$TOP_SIP" "$TOP_API" "$TOP_ID" top-secret yes </dev/null
gb_upper_ini middle "$MID_SIP" "$MID_API" "$MID_ID" dev-secret yes <<EOF
$(gb_upstream_ini "$TOP_ID" "$TOP_SIP" udp top-secret 120)
keepalive_interval = 2
EOF
top() { API_PORT=$TOP_API api "$@"; }
mid() { API_PORT=$MID_API api "$@"; }
start_cascade top "$WORK/top.ini"
start_cascade middle "$WORK/middle.ini"

"$GBSIM" --target 127.0.0.1:$TOP_SIP --target-id $TOP_ID --password top-secret --devices 1 --channels 2 \
    --keepalive 1 --quiet --log-level info --duration 300 --json "$WORK/gbsim-a.json" >"$WORK/gbsim-a.log" 2>&1 &
SIM_A=$!
PIDS+=("$SIM_A")
"$GBSIM" --target 127.0.0.1:$MID_SIP --target-id $MID_ID --password dev-secret --base-id $DEV_B --devices 1 \
    --channels 1 --keepalive 1 --quiet --log-level info --duration 300 --json "$WORK/gbsim-b.json" \
    >"$WORK/gbsim-b.log" 2>&1 &
SIM_B=$!
PIDS+=("$SIM_B")
mid POST /gb/channels "{\"channels\":[{\"id\":\"$LCH\",\"name\":\"local\"}]}" >/dev/null

online() { [ "$(top GET "/gb/devices/$1" | jget 'd["online"]')" = True ]; }
check "top: device A online" wait_for 30 online $DEV_A
check "top: the middle node online" wait_for 30 online $MID_ID
check "middle: device B online" wait_for 30 bash -c \
    "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$MID_API/api/v1/gb/devices/$DEV_B | grep -q '\"online\": *true'"

# GB times are local; cascade reads them with mktime, so does date here.
START=2026-12-01T10:00:00
END=2026-12-01T10:10:00
T0=$(date -d "$START" +%s); T1=$(date -d "$END" +%s)

packets() { top GET "/gb/streams/$1" | jget 'd.get("packets",0)'; }
grows() { # grows SID: the packet count rises within 30 s
    local a b
    a=$(packets "$1")
    for _ in $(seq 1 300); do
        b=$(packets "$1")
        [ "${b:-0}" -gt "${a:-0}" ] && return 0
        sleep 0.1
    done
    return 1
}
# still SID: the count stops (two reads 1 s apart agree, within 30 s), then
# stays the same for 2 s more (50 frames at 25 fps) — a paused device sends
# nothing. Polling, not a fixed wait: what was in flight when the PAUSE was
# answered may still arrive.
still() {
    local a b
    for _ in $(seq 1 30); do
        a=$(packets "$1"); sleep 1; b=$(packets "$1")
        [ "$a" = "$b" ] && break
    done
    [ "$a" = "$b" ] || return 1
    sleep 2
    [ "$(packets "$1")" = "$b" ]
}
control() { top POST "/gb/streams/$1/control" "$2"; }
top_event() { API_PORT=$TOP_API has_event "$@"; }

# playback_controls LABEL SID DEVICE_LOG: pause, resume, speed, seek on SID,
# each answered by the device and visible in DEVICE_LOG.
playback_controls() {
    local label=$1 sid=$2 log=$3 out
    check "$label: RTP flows" grows "$sid"
    out=$(control "$sid" '{"action":"pause"}')
    check "$label: pause answered by the device" jq_ok "$out" '.action == "pause" and .paused == true'
    check "$label: PAUSE reached the device" wait_for 10 grep -qE "PAUSE cseq 1" "$log"
    check "$label: no RTP while paused" still "$sid"
    check "$label: the API shows the stream paused" jq_ok "$(top GET "/gb/streams/$sid")" '.paused == true'
    out=$(control "$sid" '{"action":"speed","speed":2}')
    check "$label: speed 2 answered" jq_ok "$out" '.action == "speed" and .scale == 2'
    check "$label: PLAY with Scale 2 reached the device" wait_for 10 grep -qE "PLAY cseq 2.*(scale 2|Scale)" "$log"
    out=$(control "$sid" '{"action":"resume"}')
    check "$label: resume answered" jq_ok "$out" '.action == "resume" and .paused == false and .scale == 2'
    check "$label: RTP flows again after resume" grows "$sid"
    out=$(control "$sid" '{"action":"seek","position":120}')
    check "$label: seek answered" jq_ok "$out" '.action == "seek"'
    check "$label: seek to 120 s reached the device" wait_for 10 grep -qE "PLAY cseq 4" "$log"
    check "$label: RTP flows after the seek" grows "$sid"
    top DELETE "/gb/streams/$sid" >/dev/null
}

# ---- A: a device registered to the top ----
P=$(top POST "/gb/devices/$DEV_A/channels/$CH_A1/play" "{\"start\":\"$START\",\"end\":\"$END\"}")
SID=$(echo "$P" | jget 'd.get("stream_id","")')
check "A: playback started ($SID)" test -n "$SID"
check "A: the stream is a playback" jq_ok "$(top GET "/gb/streams/$SID")" '.playback == true and .paused == false'
check "A: the device got s=Playback with t=$T0 $T1" grep -qE "INVITE for $CH_A1: Playback udp .* t=$T0-$T1" \
    "$WORK/gbsim-a.log"
playback_controls "A" "$SID" "$WORK/gbsim-a.log"
check "A: the playback's INFOs were logged by the device" \
    test "$(grep -c "INFO for $CH_A1: " "$WORK/gbsim-a.log")" -ge 4

# Refusals.
LIVE=$(top POST "/gb/devices/$DEV_A/channels/$CH_A2/play" '{}' | jget 'd.get("stream_id","")')
check "control of a live stream: 409 not-playback" jq_ok "$(control "$LIVE" '{"action":"pause"}')" \
    '.error == "not-playback"'
top DELETE "/gb/streams/$LIVE" >/dev/null
check "control of an unknown stream: 404" jq_ok "$(control 0000000000 '{"action":"pause"}')" '.error == "not-found"'
check "unknown action: 400" jq_ok "$(control "$SID" '{"action":"rewind"}')" '.error == "bad-request"'
check "speed out of range: 400" jq_ok "$(control "$SID" '{"action":"speed","speed":100}')" '.error == "bad-request"'
check "seek without a position: 400" jq_ok "$(control "$SID" '{"action":"seek"}')" '.error == "bad-request"'

# A short range ends by itself: MediaStatus from the device, BYE from the top.
SHORT=$(top POST "/gb/devices/$DEV_A/channels/$CH_A2/play" \
    '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:00:03"}' | jget 'd.get("stream_id","")')
check "A: a 3 s playback started ($SHORT)" test -n "$SHORT"
check "A: after 3 s of media, the stream stopped with reason media-end" wait_for 60 \
    top_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SHORT\" and .reason==\"media-end\")"

# ---- B: a device behind the middle node ----
P=$(top POST "/gb/devices/$MID_ID/channels/$CH_B1/play" "{\"start\":\"$START\",\"end\":\"$END\"}")
SID=$(echo "$P" | jget 'd.get("stream_id","")')
check "B: playback through the middle started ($SID)" test -n "$SID"
check "B: the device behind the middle got the range" grep -qE "INVITE for $CH_B1: Playback udp .* t=$T0-$T1" \
    "$WORK/gbsim-b.log"
playback_controls "B" "$SID" "$WORK/gbsim-b.log"
check "middle: the INFOs were relayed to the device" \
    test "$(grep -c "relayed INFO for $CH_B1: device answered 200" "$WORK/middle.log")" -ge 4

# ---- L: the middle node's own channel ----
P=$(top POST "/gb/devices/$MID_ID/channels/$LCH/play" "{\"start\":\"$START\",\"end\":\"$END\"}")
SID=$(echo "$P" | jget 'd.get("stream_id","")')
check "L: playback of the middle's own channel started ($SID)" test -n "$SID"
check "L: the middle took the range" grep -qE "INVITE for $LCH from upstream $TOP_ID: Playback udp .* t=$T0-$T1" \
    "$WORK/middle.log"
check "L: RTP flows" grows "$SID"
top_ctl_says() { # top_ctl_says TEXT ARGS...: cascadectl at the top prints TEXT
    local want=$1; shift
    API_PORT=$TOP_API ctl "$@" | grep -qF "$want"
}
check "L: cascadectl gb stream pause: answered, paused" top_ctl_says "pause (paused yes" gb stream pause "$SID"
check "L: no RTP while paused" still "$SID"
check "L: cascadectl gb stream resume: answered, playing" top_ctl_says "resume (paused no" gb stream resume "$SID"
check "L: RTP flows again" grows "$SID"
check "L: the middle applied both" test "$(grep -cE "playback of $LCH for upstream $TOP_ID: (PAUSE|PLAY)" \
    "$WORK/middle.log")" -ge 2
top DELETE "/gb/streams/$SID" >/dev/null

# The devices' own counts (the summary they write when they stop).
kill -INT "$SIM_A" "$SIM_B"
wait "$SIM_A" "$SIM_B" 2>/dev/null || true
check "gbsim A: 2 playbacks, 3 PLAYs (speed, resume, seek), 1 pause, 1 scale, 1 seek, 1 MediaStatus, nothing refused" \
    jq_ok "$(cat "$WORK/gbsim-a.json")" \
    '.playbacks == 2 and .rtsp_pause == 1 and .rtsp_play == 3 and .rtsp_scale == 1 and .rtsp_seek == 1 and .media_status == 1 and .rtsp_bad == 0'
check "gbsim B: the relayed controls arrived" jq_ok "$(cat "$WORK/gbsim-b.json")" \
    '.playbacks == 1 and .rtsp_pause == 1 and .rtsp_play == 3 and .rtsp_bad == 0'

finish
