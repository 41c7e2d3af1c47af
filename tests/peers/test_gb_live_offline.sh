#!/usr/bin/env bash
# test_gb_live_offline.sh — a camera that goes away mid-stream ends every
# viewer of its live stream, with a reason, in both ways a camera goes:
#  - frozen (SIGSTOP: its process neither sends nor answers, its sockets stay
#    open), SIP over UDP: cascade notices no keepalive for interval x misses
#    (1 s x 3 here, before the 20 s RTP silence limit), takes the device
#    offline (keepalive-timeout) and stops its streams with reason
#    device-offline;
#  - killed (SIGKILL), SIP over TCP: the kernel closes its connection, the
#    device goes offline at once (transport-lost), the stream stops with
#    reason device-offline too.
# In both cases two FLV players (ffmpeg) were reading: gb.stream.stopped
# counts them (viewers 2) and both players end.
source "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "skip: ffmpeg not installed"; exit 77; }

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV_A=34020000001320000001 # UDP, frozen
DEV_B=34020000001320000002 # TCP, killed
CH_A=34020000001310000001
CH_B=34020000001310000002
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF
keepalive_interval = 1
keepalive_misses = 3
[media]
enabled = no
EOF
start_cascade top "$WORK/top.ini"
AUTH="Authorization: Bearer $API_TOKEN"

sim() { # sim TRANSPORT DEVICE_ID LOG: one device with one channel
    gb_sim "$SIP" "$UPPER" "$3" --transport "$1" --base-id "$2" --devices 1 --channels 1
}
online() { api GET "/gb/devices/$1" | jq -e '.online == true' >/dev/null; }
viewers_are() { api GET "/gb/streams/$1" | jq -e ".viewers == $2" >/dev/null; }
stopped_event() { # stopped_event SID: the stream's gb.stream.stopped, as JSON
    events_json | jq -c "[.events[] | select(.type==\"gb.stream.stopped\" and .stream_id==\"$1\")] | first // empty"
}
has_stopped() { test -n "$(stopped_event "$1")"; }

# watch DEVICE CHANNEL: starts the live stream, two FLV players on it; sets SID, P1, P2.
watch() {
    SID=$(api POST "/gb/devices/$1/channels/$2/live" '{}' | jget 'd.get("stream_id","")')
    local url="http://127.0.0.1:$API_PORT/api/v1/gb/streams/$SID/live.flv"
    timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$url" -c copy -f null - 2>/dev/null &
    P1=$!
    timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$url" -c copy -f null - 2>/dev/null &
    P2=$!
    PIDS+=("$P1" "$P2")
}

# 1. Frozen camera, SIP over UDP.
sim udp "$DEV_A" gbsim-a.log
SIM_A=$SIM
check "camera A (UDP) is online" wait_for 30 online "$DEV_A"
watch "$DEV_A" "$CH_A"
SID_A=$SID
check "A: its live stream started ($SID_A)" test -n "$SID_A"
check "A: two FLV players read it" wait_for 30 viewers_are "$SID_A" 2
kill -STOP "$SIM_A"
check "A: the frozen camera goes offline (keepalive-timeout)" wait_for 30 has_event \
    "select(.type==\"gb.device.offline\" and .device_id==\"$DEV_A\" and .reason==\"keepalive-timeout\")"
check "A: gb.stream.stopped follows" wait_for 10 has_stopped "$SID_A"
EV=$(stopped_event "$SID_A")
check "A: reason device-offline, the two viewers counted ($EV)" jq_ok "$EV" \
    '.reason == "device-offline" and .viewers == 2 and .viewers_by_output.flv == 2'
check "A: both players end" wait_for 30 bash -c "! kill -0 $P1 2>/dev/null && ! kill -0 $P2 2>/dev/null"
check "A: the stream is gone" test "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" \
    "http://127.0.0.1:$API_PORT/api/v1/gb/streams/$SID_A")" = 404
kill -CONT "$SIM_A" 2>/dev/null || true
kill "$SIM_A" 2>/dev/null || true

# 2. Killed camera, SIP over TCP.
sim tcp "$DEV_B" gbsim-b.log
SIM_B=$SIM
check "camera B (TCP) is online" wait_for 30 online "$DEV_B"
watch "$DEV_B" "$CH_B"
SID_B=$SID
check "B: its live stream started ($SID_B)" test -n "$SID_B"
check "B: two FLV players read it" wait_for 30 viewers_are "$SID_B" 2
kill -KILL "$SIM_B"
check "B: the killed camera goes offline (transport-lost)" wait_for 30 has_event \
    "select(.type==\"gb.device.offline\" and .device_id==\"$DEV_B\" and .reason==\"transport-lost\")"
check "B: gb.stream.stopped follows" wait_for 10 has_stopped "$SID_B"
EV=$(stopped_event "$SID_B")
check "B: reason device-offline, the two viewers counted ($EV)" jq_ok "$EV" \
    '.reason == "device-offline" and .viewers == 2 and .viewers_by_output.flv == 2'
check "B: both players end" wait_for 30 bash -c "! kill -0 $P1 2>/dev/null && ! kill -0 $P2 2>/dev/null"

finish
