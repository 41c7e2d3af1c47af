#!/usr/bin/env bash
# test_gb_cascade3.sh — three levels of GB/T 28181 cascade on loopback:
# simulated devices (cascade-gbsim: three over UDP, one over TCP) -> middle
# node (upper role for the devices, lower role towards the top, registered to
# it over TCP) -> top node (upper role).
#  - the top sees the devices and their channels in the middle node's catalog,
#    with the tree kept (device under the middle node, channels under it);
#  - the top plays a device's channel: the middle relays the INVITE, the
#    device streams straight to the top (UDP and TCP), BYE is relayed;
#  - a device that goes away reaches the top as a catalog Notify (OFF);
#  - DeviceInfo / DeviceStatus / RecordInfo asked at the top about a camera
#    behind the middle are asked of that camera's device, whose own answer
#    comes back; about a device that is offline or silent, an ERROR answer.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim

TOP_SIP=$(free_port); TOP_API=$(free_port); MID_SIP=$(free_port); MID_API=$(free_port)
TOP_ID=34020000002000000001
MID_ID=34020000002000000002
DEV1=34020000001320000001
API_TOKEN=tok

gb_upper_ini top "$TOP_SIP" "$TOP_API" "$TOP_ID" top-secret yes </dev/null

gb_upper_ini middle "$MID_SIP" "$MID_API" "$MID_ID" dev-secret yes <<EOF
keepalive_interval = 1
keepalive_misses = 3
$(gb_upstream_ini "$TOP_ID" "$TOP_SIP" tcp top-secret 120)
keepalive_interval = 2
catalog_items = 2
EOF

top() { API_PORT=$TOP_API api "$@"; }
mid() { API_PORT=$MID_API api "$@"; }

start_cascade top "$WORK/top.ini"
start_cascade middle "$WORK/middle.ini"
check "middle registered to the top" wait_for 10 \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$MID_API/api/v1/gb/upstreams | grep -q '\"state\": *\"registered\"'"

# Three devices with two channels each register to the middle node.
"$GBSIM" --target 127.0.0.1:$MID_SIP --target-id $MID_ID --password dev-secret --devices 3 --channels 2 \
    --keepalive 1 --quiet --duration 120 >"$WORK/gbsim.log" 2>&1 &
SIM_PID=$!
PIDS+=("$SIM_PID")
# One more device over TCP (its channels are numbered after its serial: 7, 8).
"$GBSIM" --target 127.0.0.1:$MID_SIP --target-id $MID_ID --password dev-secret --transport tcp \
    --base-id 34020000001320000004 --devices 1 --channels 2 --keepalive 1 --quiet --duration 120 \
    >"$WORK/gbsim-tcp.log" 2>&1 &
SIM_TCP_PID=$!
PIDS+=("$SIM_TCP_PID")
check "devices online at the middle node" wait_for 10 \
    bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$MID_API/api/v1/gb/devices | python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin)[\"devices\"] if d[\"online\"] and d[\"channels\"]==2))')\" = 4 ]"
check "middle: the TCP device registered over TCP" \
    test "$(mid GET /gb/devices/34020000001320000004 | jget 'd["transport"]')" = tcp
check "middle: registered to the top over TCP" \
    test "$(mid GET /gb/upstreams | jget 'd["upstreams"][0]["transport"]+" "+d["upstreams"][0]["state"]')" = "tcp registered"

check "middle: its directory lists the devices' channels with where they live" \
    test "$(mid GET /gb/channels | jget 'sorted((c["id"], c["device_id"]) for c in d["channels"])[0:2]==[("34020000001310000001","'$DEV1'"),("34020000001310000002","'$DEV1'")]')" = True
check "middle: ?local=1 lists no relayed channel" test "$(mid GET '/gb/channels?local=1' | jget 'len(d["channels"])')" = 0

CAT=$(top POST /gb/devices/$MID_ID/catalog)
check "top: middle's catalog has 4 devices + 8 channels" test "$(echo "$CAT" | jget 'd["sum_num"]')" = 12
check "top: devices hang under the middle node" \
    test "$(echo "$CAT" | jget 'sorted(c["id"] for c in d["channels"] if c["parent_id"]=="'$MID_ID'")==["34020000001320000001","34020000001320000002","34020000001320000003","34020000001320000004"]')" = True
check "top: channels hang under their device" \
    test "$(echo "$CAT" | jget 'sorted(c["id"] for c in d["channels"] if c["parent_id"]=="'$DEV1'")==["34020000001310000001","34020000001310000002"]')" = True
check "top: device channel names decoded" \
    test "$(echo "$CAT" | jget '[c["name"] for c in d["channels"] if c["id"]=="34020000001310000002"][0]')" = "模拟通道1-2"
check "top: the TCP device's channels under it" \
    test "$(echo "$CAT" | jget 'sorted(c["id"] for c in d["channels"] if c["parent_id"]=="34020000001320000004")==["34020000001310000007","34020000001310000008"]')" = True

# Queries about a camera behind the middle: the device that owns it answers.
CAM=34020000001310000003 # channel 1 of device 2 (gbsim: 模拟设备2, two channels)
check "top: the middle's own DeviceInfo is still its own" \
    test "$(top POST /gb/devices/$MID_ID/info | jget 'd["result"]+"|"+d["device_id"]+"|"+d["manufacturer"]')" = "OK|$MID_ID|cascade"
INFO=$(top POST /gb/devices/$MID_ID/info "{\"target\":\"$CAM\"}")
check "top: DeviceInfo of a camera behind the middle is gbsim's own" \
    test "$(echo "$INFO" | jget '"|".join(str(d[k]) for k in ("result","device_id","manufacturer","model","device_name","firmware","channel"))')" \
    = "OK|$CAM|cascade-gbsim|SIM-IPC|模拟设备2|1.0|2"
check "top: DeviceInfo of a device behind the middle (target the device id)" \
    test "$(top POST /gb/devices/$MID_ID/info "{\"target\":\"$DEV1\"}" | jget 'd["device_id"]+"|"+d["device_name"]+"|"+d["model"]')" \
    = "$DEV1|模拟设备1|SIM-IPC"
STATUS=$(top POST /gb/devices/$MID_ID/status "{\"target\":\"$CAM\"}")
check "top: DeviceStatus of a camera behind the middle is gbsim's own" \
    test "$(echo "$STATUS" | jget '"|".join(str(d[k]) for k in ("result","device_id","online","status","encode","record"))')" \
    = "OK|$CAM|ONLINE|OK|ON|OFF"
check "top: the camera's DeviceStatus carries the device's time" \
    test -n "$(echo "$STATUS" | jget 'd["device_time"] or ""')"
check "top: the middle device's stored info was not overwritten by the camera's" \
    test "$(top GET /gb/devices/$MID_ID | jget 'd["info"]["manufacturer"]+"|"+d["info"]["device_id"]')" = "cascade|$MID_ID"
check "middle: DeviceInfo and DeviceStatus were asked of device 2" \
    test "$(grep -cE "Device(Info|Status) for $CAM from upstream $TOP_ID \(SN [0-9]+\) asked of device 34020000001320000002" "$WORK/middle.log")" -eq 2
check "middle: the device's answers went to the top" \
    test "$(grep -cE "Device(Info|Status) for $CAM answered by its device, sent to upstream $TOP_ID" "$WORK/middle.log")" -eq 2
REC=$(top POST /gb/devices/$MID_ID/records "{\"channel\":\"$CAM\",\"start\":\"2026-01-01T00:00:00\",\"end\":\"2026-01-02T00:00:00\"}")
check "top: RecordInfo of a camera behind the middle (gbsim records nothing)" \
    test "$(echo "$REC" | jget 'd["channel"]+"|"+str(d["sum_num"])')" = "$CAM|0"
check "middle: the RecordInfo was asked of device 2 and its answer relayed" \
    grep -q "RecordInfo for $CAM answered by its device, sent to upstream $TOP_ID" "$WORK/middle.log"
check "top: a target that is not a GB id is refused" \
    test "$(top POST /gb/devices/$MID_ID/info '{"target":"12"}' | jget 'd["error"]')" = bad-request

n=0
for tr in udp tcp; do
    n=$((n + 1))
    gb_play_dump top "$MID_ID" 34020000001310000003 "$tr"
    check "top: play $tr of a device channel through the middle ($SID)" test -n "$SID"
    check "top: $tr packets from the device ($PK)" test "${PK:-0}" -gt 20
    check "top: $tr codec h264" test "$(top GET /gb/streams/$SID | jget 'd["codec"]')" = h264
    check "middle: the $tr INVITE was relayed to the device" \
        test "$(grep -c "relayed INVITE for 34020000001310000003: device 34020000001320000002 answered" "$WORK/middle.log")" -ge $n
    top DELETE /gb/streams/$SID >/dev/null
    check "middle: BYE relayed to the device" \
        wait_for 5 bash -c "[ \$(grep -c 'ended: bye-from-upstream' '$WORK/middle.log') -ge $n ]"
    check "top: $tr dump is h264 for ffprobe" test "$(ffprobe_codec "$DUMP")" = h264
done

# A channel of the device that signals over TCP.
P=$(top POST /gb/devices/$MID_ID/channels/34020000001310000008/play '{"transport":"udp"}')
SID=$(echo "$P" | jget 'd.get("stream_id","")')
check "top: play a channel of the TCP device ($SID)" test -n "$SID"
sleep 2
check "top: packets from the TCP device" test "$(top GET /gb/streams/$SID | jget 'd["packets"]')" -gt 10
top DELETE /gb/streams/$SID >/dev/null

# The devices go away: the middle sees them offline and notifies the top.
kill "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
check "gbsim: the devices answered queries and streamed" grep -q "streams=2" "$WORK/gbsim.log"
check "top: device status OFF after the middle's catalog Notify" wait_for 15 \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$TOP_API/api/v1/gb/devices/$MID_ID/channels | python3 -c '
import json,sys
def walk(cs):
    for c in cs:
        yield c
        yield from walk(c.get(\"children\",[]))
st=[c[\"status\"] for c in walk(json.load(sys.stdin)[\"channels\"]) if c[\"id\"]==\"$DEV1\"]
sys.exit(0 if st==[\"OFF\"] else 1)'"

# Asked about a camera of a device that is offline: an ERROR answer at once.
check "middle: device 2 offline" wait_for 10 \
    bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$MID_API/api/v1/gb/devices/34020000001320000002 | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"online\"])')\" = False ]"
T0=$SECONDS
check "top: DeviceInfo of a camera whose device is offline: Result ERROR" \
    test "$(top POST /gb/devices/$MID_ID/info "{\"target\":\"$CAM\"}" | jget 'd["result"]+"|"+d["device_id"]')" = "ERROR|$CAM"
check "top: DeviceStatus of it: Result ERROR, OFFLINE" \
    test "$(top POST /gb/devices/$MID_ID/status "{\"target\":\"$CAM\"}" | jget 'd["result"]+"|"+d["online"]+"|"+d["device_id"]')" \
    = "ERROR|OFFLINE|$CAM"
check "top: both answered without waiting for a timeout (10 s each; took $((SECONDS - T0)) s)" test $((SECONDS - T0)) -le 9
check "middle: not asked of the offline device" grep -q "DeviceInfo for $CAM from upstream $TOP_ID not asked of device 34020000001320000002 (offline)" "$WORK/middle.log"

# A device that stops answering while asked: the middle answers ERROR when it
# is declared offline (keepalives missed), before the top's own query timeout.
kill -STOP "$SIM_TCP_PID"
T0=$SECONDS
check "top: DeviceInfo of a camera of a silent device: Result ERROR" \
    test "$(top POST /gb/devices/$MID_ID/info '{"target":"34020000001310000008"}' | jget 'd["result"]+"|"+d["device_id"]')" \
    = "ERROR|34020000001310000008"
check "top: answered before the query timeout ($((SECONDS - T0)) s)" test $((SECONDS - T0)) -lt 10
check "middle: the pending query failed when the device went offline" \
    grep -q "DeviceInfo for 34020000001310000008 not answered by its device (503 device-offline)" "$WORK/middle.log"
kill -CONT "$SIM_TCP_PID"

finish
