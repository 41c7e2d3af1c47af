#!/usr/bin/env bash
# test_gb_live_cascade.sh — live view of a camera behind a middle node:
# cascade-gbsim (the camera) -> middle node (upper role for the device, lower
# role registered to the top over TCP) -> top node, where the viewers are.
#  - the top asks POST .../live for a channel of the middle node: the middle
#    relays the INVITE to the device, the device streams to the top;
#  - ffprobe reads h264 320x240 at 25 fps from the top's FLV URL while a
#    second player reads and a second live request comes: one stream, and
#    exactly one INVITE at the device;
#  - GET /media/streams at the top names the middle node as the source.
source "$(dirname "$0")/lib.sh"
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "skip: ffprobe/ffmpeg not installed"; exit 77; }

TOP_SIP=$(free_port); TOP_API=$(free_port); MID_SIP=$(free_port); MID_API=$(free_port)
TOP_ID=34020000002000000001
MID_ID=34020000002000000002
DEV=34020000001320000001
CH=34020000001310000002
API_TOKEN=tok

gb_upper_ini top "$TOP_SIP" "$TOP_API" "$TOP_ID" top-secret yes <<EOF
[media]
enabled = no
EOF
gb_upper_ini middle "$MID_SIP" "$MID_API" "$MID_ID" dev-secret yes <<EOF
$(gb_upstream_ini "$TOP_ID" "$TOP_SIP" tcp top-secret 120)
keepalive_interval = 2
EOF
top() { API_PORT=$TOP_API api "$@"; }
mid() { API_PORT=$MID_API api "$@"; }

start_cascade top "$WORK/top.ini"
start_cascade middle "$WORK/middle.ini"
check "middle registered to the top" wait_for 30 bash -c \
    "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$MID_API/api/v1/gb/upstreams | grep -q '\"state\": *\"registered\"'"
gb_sim "$MID_SIP" "$MID_ID" gbsim.log --devices 1 --channels 2
dev_online() { mid GET "/gb/devices/$DEV" | jq -e '.online == true and .channels == 2' >/dev/null; }
check "the camera is online at the middle node" wait_for 30 dev_online
check "top: the middle's catalog lists the camera's channel" \
    jq_ok "$(top POST /gb/devices/$MID_ID/catalog)" "[.channels[] | select(.id==\"$CH\")] | length == 1"

AUTH="Authorization: Bearer $API_TOKEN"
L=$(top POST "/gb/devices/$MID_ID/channels/$CH/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
URL=$(echo "$L" | jget 'd.get("flv","")')
check "top: live of the channel behind the middle started ($SID)" test -n "$SID"
check "top: the answer names the top's FLV URL" test "$URL" = "http://127.0.0.1:$TOP_API/api/v1/gb/streams/$SID/live.flv"
check "middle: the INVITE was relayed to the camera's device" wait_for 10 \
    grep -q "relayed INVITE for $CH: device $DEV answered" "$WORK/middle.log"

timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL" -c copy -f null - 2>/dev/null &
KEEPER=$!
PIDS+=("$KEEPER")
PROBE=$(timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams v:0 \
    -show_entries stream=codec_name,width,height,r_frame_rate -of csv=p=0 "$URL" || true)
check "ffprobe reads h264 320x240 at 25 fps through the middle ($PROBE)" test "$PROBE" = "h264,320,240,25/1"
A=$(top POST "/gb/devices/$MID_ID/channels/$CH/live" '{}' | jget 'd.get("stream_id","")')
check "a second live request at the top gets the same stream" test "$A" = "$SID"
check "exactly one INVITE reached the device" test "$(grep -c "INVITE for $CH: " "$WORK/gbsim.log" || true)" = 1
ROW=$(API_PORT=$TOP_API api GET /media/streams | jq -c ".streams[] | select(.stream_id==\"$SID\")")
check "top: media/streams names the middle node and channel as the source" jq_ok "$ROW" \
    ".source.device_id == \"$MID_ID\" and .source.channel_id == \"$CH\" and .source.kind == \"live\" and .viewers >= 1"
kill "$KEEPER" 2>/dev/null || true

finish
