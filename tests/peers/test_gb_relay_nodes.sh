#!/usr/bin/env bash
# A middle node's relay across nodes (issue 16): two cascade nodes, A and B,
# one platform (the same GB id, the GB upper role, [redis] mirror_gb_devices
# with cluster_route on one 3-master Redis Cluster on loopback ports chosen
# at run time); A is also a lower platform registered to an upstream, "top"
# (a third cascade, upper role only, no Redis). A cascade-gbsim camera
# registers on B.
#  1. B writes the camera's channel key t:gbchan:{channel} = device;
#  2. top plays the camera's channel through A (it INVITEs A, whose lower
#     role finds the channel's device and node in Redis and sends the
#     peer-marked INVITE to B, which relays it to the camera with top's SDP):
#     the camera sees exactly one INVITE, its RTP reaches top's stream
#     (packets counted, ffprobe reads H.264 from the dump); A logs the relay
#     through node-b, B counts one peer relay;
#  3. top stops (DELETE): top's BYE -> A -> B -> the camera (gbsim logs the
#     BYE from the upper); A and B end their relays;
#  3b. a playback from top paused through A and B (the camera logs PAUSE);
#  3c. top's CANCEL (the camera stopped while the INVITE waits at it):
#     A cancels its INVITE to B, B its INVITE to the camera;
#  4. a channel nowhere: 404 to top; the device's own id (no channel key)
#     looked up as a device, through B (the camera has no such channel: 404); a planted record saying offline: 480;
#     naming a node that is not alive: 503; naming A itself (stale): 404;
#     naming B for a device B does not have: B answers 404 and sends nothing
#     on (loop protection), A passes the 404 to top;
#  5. what A reports to top as its directory: the devices of every live
#     node (A asks B's API for its relayed directory and merges: the camera
#     and its channel, SumNum 2); 5a: a Catalog query naming the camera gets
#     its channel through B; 5d: two planted nodes that do not answer (one
#     silent, one not HTTP): the catalog still comes, after A's 5 s bound,
#     without them;
#  5b. top's DeviceInfo / DeviceStatus / RecordInfo about the camera (its
#     channel or itself) through A: A asks B's API (the HTTP forward the API
#     uses, with its own token), the camera's answer reaches top; an id on
#     no node or offline: an ERROR answer at once; a PTZ command from top:
#     A sends it to B in a peer-marked MESSAGE, B on to the camera;
#  5e. the camera's alarms and positions (B subscribes to them) reach top,
#     subscribed to A's: A reads B's gb.alarm / gb.position from the
#     cluster's event stream and sends them up as its own devices' (each
#     alarm once); 5f: a newer subscription of top's alarms at another node
#     (planted in the stream) ends A's: one per upstream across the nodes;
#  6. the camera goes offline while top plays it: B ends its relay, its BYE
#     reaches A, A's reaches top; A, following the cluster's event stream
#     ([redis] events_stream), sends top a catalog Notify: the camera OFF;
#     a play then answers 480.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli jq ffprobe sipp; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=relaytoken
TOP_ID=34020000002000000001
MID_ID=34020000002000000002
DEV=34020000001320000001
CH1=34020000001310000001

TOP_SIP=$(free_port); TOP_API=$(free_port)
gb_upper_ini top "$TOP_SIP" "$TOP_API" "$TOP_ID" top-secret yes </dev/null
start_cascade top "$WORK/top.ini"

declare -A SIP API
for n in a b; do SIP[$n]=$(free_port); API[$n]=$(free_port); done
for n in a b; do
    UP=""
    [ "$n" = a ] && UP="$(gb_upstream_ini "$TOP_ID" "$TOP_SIP" udp top-secret 120)
keepalive_interval = 2"
    gb_upper_ini "$n" "${SIP[$n]}" "${API[$n]}" "$MID_ID" dev-secret yes <<INI
keepalive_interval = 1
keepalive_misses = 30
[redis]
mirror_bindings = yes
cluster_route = yes
mirror_gb_devices = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
events_stream = yes
events_poll_ms = 50
$UP
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; }
top() { API_PORT=$TOP_API api "$@"; }
cstat() { on "$1"; api GET /stats | jq -r ".cluster.$2"; }
gstat() { on "$1"; api GET /stats | jq -r ".gb_upper.$2"; }
sees_one() { [ "$(cstat "$1" nodes_live)" = 1 ]; }
for n in a b; do check "node $n sees the other live" wait_for 20 sees_one "$n"; done
registered() { on a; api GET /gb/upstreams | jq -e '.upstreams[0].state == "registered"' >/dev/null; }
check "node A (the middle node) registered to top" wait_for 20 registered

# ---- 1. the camera on B, its channel key
gb_sim "${SIP[b]}" "$MID_ID" gbsim.log --devices 1 --channels 1 --alarm-every 1
on b
check "1. the camera is online on node B" wait_for 30 gb_device_online "$DEV"
chan_key() { [ "$(rcli get "t:gbchan:{$CH1}")" = "$DEV" ]; }
check "... B wrote its channel key t:gbchan:{$CH1} = $DEV (after the catalog)" wait_for 20 chan_key
check "... with a TTL of at least a day" test "$(rcli pttl "t:gbchan:{$CH1}")" -gt 86000000
check "... node A does not hold the camera" bash -c "! curl -s -H 'Authorization: Bearer $API_TOKEN' \
    http://127.0.0.1:${API[a]}/api/v1/gb/devices | jq -e '.devices | map(.id) | index(\"$DEV\")' >/dev/null"

# ---- 2. top plays the channel through A, which relays it through B
gb_play_dump top "$MID_ID" "$CH1" udp
check "2. top plays $CH1 of the middle node ($SID)" test -n "$SID"
check "... the camera's RTP reaches top ($PK packets)" test "${PK:-0}" -gt 40
check "... top's stream is H.264" test "$(top GET "/gb/streams/$SID" | jq -r .codec)" = h264
invites() { grep -c "INVITE for $1: " "$WORK/gbsim.log" || true; }
check "... the camera saw exactly one INVITE" test "$(invites "$CH1")" = 1
check "... node A relayed it through node B" \
    grep -q "relayed INVITE for $CH1: device $DEV answered through node node-b, stream goes to upstream $TOP_ID" \
    "$WORK/a.log"
check "... node B relayed one INVITE from a peer to the camera" test "$(gstat b peer_relays)" = 1
check "... node B logged it" grep -q "INVITE from node 127.0.0.1:.* for $CH1 relayed to device $DEV" "$WORK/b.log"
# The cluster's stream: "node" is the node that wrote the event (A), via_node
# the node the INVITE went through (B); no member twice in the text.
a_events() { curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:${API[a]}/api/v1/events/recent?since=0"; }
relay_raw() { rcli --raw xrange 't:{events}:stream' - + | grep '^{"seq":' | grep '"type":"gb.lower.relay.started"'; }
relay_named() { a_events | jq -e '[.events[] | select(.type == "gb.lower.relay.started" and .channel_id == "'"$CH1"'" and
    .device_id == "'"$DEV"'" and .node == "node-a" and .via_node == "node-b")] | length == 1' >/dev/null; }
check "... A's relay event names the channel, A (node: the writer) and node-b (via_node)" wait_for 10 relay_named
check "... no member twice in it, as the stream holds it and as A's API serves it" \
    eval 'relay_raw | unique_keys && a_events | unique_keys'

# ---- 3. stop on top: BYE through A and B to the camera
top DELETE "/gb/streams/$SID" >/dev/null
check "... top's dump is H.264 for ffprobe" test "$(ffprobe_codec "$DUMP")" = h264
bye_seen() { grep -q "stream of $CH1 ended: BYE from the upper" "$WORK/gbsim.log"; }
check "3. stop on top: the camera got the BYE (through A and B)" wait_for 15 bye_seen
check "... A ended its relay on top's BYE" wait_for 10 grep -q "relayed stream of $CH1 (device $DEV) for upstream $TOP_ID ended: bye-from-upstream" "$WORK/a.log"
check "... B ended its relay on A's BYE" wait_for 10 grep -q "ended: BYE from the node" "$WORK/b.log"

# ---- 3b. a playback from top, paused: the INFO goes through A and B to the camera
PB=$(top POST "/gb/devices/$MID_ID/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:10:00"}')
PSID=$(echo "$PB" | jq -r '.stream_id // empty')
check "3b. a playback from top through A and B ($PSID)" jq_ok "$PB" '.playback == true and .state == "playing"'
OUT=$(top POST "/gb/streams/$PSID/control" '{"action":"pause"}')
check "... pause answered by the camera through A and B ($OUT)" jq_ok "$OUT" '.action == "pause" and .paused == true'
check "... the PAUSE reached the camera" wait_for 10 grep -qE "PAUSE cseq 1" "$WORK/gbsim.log"
top DELETE "/gb/streams/$PSID" >/dev/null
two_byes() { [ "$(grep -c "ended: BYE from the node" "$WORK/b.log")" -ge 2 ]; }
check "... its stop reached B too" wait_for 10 two_byes

# ---- 3c. CANCEL: the camera stopped (SIGSTOP) so that the INVITE waits at
# it; top gives up (DELETE while inviting): its CANCEL goes to A, A's to B,
# B's to the camera; each answers 487.
INV_STOP=$(invites "$CH1")
kill -STOP "$SIM"
RELAYED_B=$(grep -c "INVITE from node 127.0.0.1:.* for $CH1 relayed to device" "$WORK/b.log")
# The API answers a play once the INVITE is answered: asked in the
# background, the stream found inviting in top's list.
top POST "/gb/devices/$MID_ID/channels/$CH1/play" '{}' >"$WORK/p3.json" &
P3_PID=$!
b_relayed() { [ "$(grep -c "INVITE from node 127.0.0.1:.* for $CH1 relayed to device" "$WORK/b.log")" -gt "$RELAYED_B" ]; }
check "3c. a play from top while the camera is stopped: B relays the INVITE" wait_for 15 b_relayed
S3=$(top GET /gb/streams | jq -r '[.streams[] | select(.state == "inviting")][0].stream_id // empty')
check "... top's stream is inviting ($S3)" test -n "$S3"
top DELETE "/gb/streams/$S3" >/dev/null
check "... top's CANCEL reaches A" wait_for 10 grep -q "relayed INVITE for $CH1 cancelled by upstream $TOP_ID" "$WORK/a.log"
check "... A's CANCEL reaches B" wait_for 10 grep -q "gb peer relay: INVITE for $CH1 cancelled by node" "$WORK/b.log"
check "... top's play request ends (the stream stopped)" wait_for 15 bash -c "! kill -0 $P3_PID 2>/dev/null"
kill -CONT "$SIM"
late_invite() { [ "$(invites "$CH1")" -gt "$INV_STOP" ]; }
check "... the camera, resumed, reads the INVITE that waited for it" wait_for 15 late_invite
three_byes() { [ "$(grep -c "stream of $CH1 ended: BYE from the upper" "$WORK/gbsim.log")" -ge 3 ]; }
check "... its late 200 is ACKed and ended with a BYE by B" wait_for 15 three_byes
INV_BEFORE4=$(invites "$CH1")

# ---- 4. the answers when the channel cannot be reached
# play_code CHANNEL: the SIP status A answered top for CHANNEL (from A's log).
play_code() {
    top POST "/gb/devices/$MID_ID/channels/$1/play" '{}' >/dev/null
    local i
    for i in $(seq 1 100); do
        grep -oE "INVITE from upstream $TOP_ID for $1: not relayed to any node, [0-9]+" "$WORK/a.log" |
            tail -1 | grep -oE '[0-9]+$' && return 0
        grep -q "relayed INVITE for $1: device .* answered [0-9]" "$WORK/a.log" &&
            { grep -oE "relayed INVITE for $1: device .* answered [0-9]+" "$WORK/a.log" | tail -1 |
                grep -oE '[0-9]+$'; return 0; }
        sleep 0.1
    done
    echo none
}
check "4. a channel on no node: 404" test "$(play_code 34020000001310000099)" = 404
# The device's own id (no channel key): looked up as a device; the INVITE
# goes through B to the camera, which has no channel of that id (404).
top POST "/gb/devices/$MID_ID/channels/$DEV/play" '{}' >/dev/null
check "... an INVITE naming the device's own id is looked up as a device and goes through B" \
    wait_for 10 grep -q "relayed INVITE for $DEV: device $DEV answered 404 through node node-b" "$WORK/a.log"
# Planted: a channel whose device's record says offline on B.
OFF_DEV=34020000001320000091 OFF_CH=34020000001310000091
rcli set "t:gbchan:{$OFF_CH}" "$OFF_DEV" px 60000 >/dev/null
rcli hset "t:gbdev:{$OFF_DEV}" node node-b online 0 transport udp remote 127.0.0.1:9 >/dev/null
check "... a channel whose device is offline: 480" test "$(play_code "$OFF_CH")" = 480
# Planted: a record naming a node that is not alive.
DEAD_DEV=34020000001320000092 DEAD_CH=34020000001310000092
rcli set "t:gbchan:{$DEAD_CH}" "$DEAD_DEV" px 60000 >/dev/null
rcli hset "t:gbdev:{$DEAD_DEV}" node node-z online 1 transport udp remote 127.0.0.1:9 >/dev/null
check "... a channel whose device's node is not alive: 503" test "$(play_code "$DEAD_CH")" = 503
# Planted: a stale record naming A itself.
STALE_DEV=34020000001320000093 STALE_CH=34020000001310000093
rcli set "t:gbchan:{$STALE_CH}" "$STALE_DEV" px 60000 >/dev/null
rcli hset "t:gbdev:{$STALE_DEV}" node node-a online 1 transport udp remote 127.0.0.1:9 >/dev/null
check "... a stale record naming node A itself: 404" test "$(play_code "$STALE_CH")" = 404
# Planted: a record naming B for a device B does not have (loop protection).
LOOP_DEV=34020000001320000094 LOOP_CH=34020000001310000094
rcli set "t:gbchan:{$LOOP_CH}" "$LOOP_DEV" px 60000 >/dev/null
rcli hset "t:gbdev:{$LOOP_DEV}" node node-b online 1 transport udp remote 127.0.0.1:9 >/dev/null
check "... a record naming B for a device B lacks: B's 404 reaches top through A" \
    test "$(play_code "$LOOP_CH")" = 404
check "... B refused it and sent nothing on" \
    grep -q "gb peer relay: node 127.0.0.1:.* asked for $LOOP_CH of device $LOOP_DEV, not registered here: 404" "$WORK/b.log"
check "... B relayed no other INVITE" test "$(gstat b peer_relays)" = 4
check "... the camera saw no other INVITE for the channel" test "$(invites "$CH1")" = "$INV_BEFORE4"

# ---- 5. A's directory to top: every live node's devices (A asks B's API,
# GET /gb/channels?relayed=1, and merges)
CAT=$(top POST "/gb/devices/$MID_ID/catalog")
echo "# A's catalog to top: $CAT"
check "5. A's catalog to top lists the camera on B and its channel, once each" \
    jq_ok "$CAT" '([.channels[] | select(.id == "'"$DEV"'")] | length == 1) and ([.channels[] | select(.id == "'"$CH1"'")] | length == 1)'
check "... the channel under the camera, the camera under A, both ON" \
    jq_ok "$CAT" '(.channels[] | select(.id == "'"$CH1"'") | .parent_id == "'"$DEV"'" and .status == "ON") and (.channels[] | select(.id == "'"$DEV"'") | .parent_id == "'"$MID_ID"'")'
check "... SumNum is what was sent (2: the camera and its channel)" jq_ok "$CAT" '.sum_num == 2 and (.channels | length) == 2'
check "... A asked node B" grep -qE "Catalog SN [0-9]+ from upstream $TOP_ID: 2 item\(s\) with 1 node\(s\) asked \(0 left out" "$WORK/a.log"
REL=$(on b; api GET "/gb/channels?relayed=1")
check "... B's relayed directory (the route A asked) ($REL)" \
    jq_ok "$REL" '(.channels | length) == 2 and (.channels[0].id == "'"$DEV"'") and (.channels[0].parental == 1)'

# 5a. a Catalog query naming the camera (not A's id), sent as top (sipp
# from top's address with top's id: A answers top): A asks B for that
# device's channels; top gets the answer (an unsolicited catalog there,
# SN 7716) with the camera's channel
cat >"$WORK/cat-query.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="Catalog query naming a device on another node">
  <send>
    <![CDATA[
      MESSAGE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field1]@3402000000>;tag=[call_number]
      To: <sip:[field0]@3402000000>
      Call-ID: [call_id]
      CSeq: 1 MESSAGE
      Max-Forwards: 70
      Content-Type: Application/MANSCDP+xml
      Content-Length: [len]

<?xml version="1.0" encoding="UTF-8"?>
<Query><CmdType>Catalog</CmdType><SN>7716</SN><DeviceID>[field2]</DeviceID></Query>
    ]]>
  </send>
  <recv response="200"/>
</scenario>
XML
printf 'SEQUENTIAL\n%s;%s;%s\n' "$MID_ID" "$TOP_ID" "$DEV" >"$WORK/cat-query.csv"
CPORT=$(free_port)
cat_query() {
    timeout 30 sipp -sf "$WORK/cat-query.xml" -inf "$WORK/cat-query.csv" -i 127.0.0.1 -p "$CPORT" \
        -m 1 -timeout 20 -nostdin "127.0.0.1:${SIP[a]}" >"$WORK/sipp-cat.log" 2>&1 </dev/null
}
check "5a. a Catalog query naming the camera ($DEV), from top's address: 200 from A" cat_query
check "... A asked node B for that device and got its channel" \
    wait_for 10 grep -qE "Catalog SN 7716 from upstream $TOP_ID: 1 item\(s\) with 1 node\(s\) asked \(0 left out" "$WORK/a.log"
check "... top received the answer" wait_for 10 grep -q "unsolicited catalog SN 7716" "$WORK/top.log"
dev_cat() {
    curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$TOP_API/api/v1/events/recent?since=0" |
        jq -e '[.events[] | select(.type == "gb.catalog.updated" and .device_id == "'"$MID_ID"'" and .sum_num == 1)] | length >= 1' >/dev/null
}
check "... with SumNum 1 (the camera's channel)" wait_for 10 dev_cat

# 5d. nodes that do not answer (planted in the registry: one whose API
# never answers, one answering what is not HTTP): the catalog still comes,
# after A's 5 s bound, without them (logged)
check "5d. two fake node APIs listen, planted in the registry" plant_fake_nodes rcli t:
sees_three() { [ "$(cstat a nodes_live)" = 3 ]; }
check "... node A sees the two planted nodes" wait_for 20 sees_three
T0=$(date +%s%N)
CAT=$(top POST "/gb/devices/$MID_ID/catalog")
MS=$((($(date +%s%N) - T0) / 1000000))
check "... A's catalog still comes, with the camera (${MS} ms)" \
    jq_ok "$CAT" '.sum_num == 2 and ([.channels[] | select(.id == "'"$CH1"'")] | length == 1)'
check "... after A's 5 s bound for the silent node" test "$MS" -ge 4500
check "... A left both out and logged it" \
    grep -qE "Catalog SN [0-9]+ from upstream $TOP_ID: 2 item\(s\) with 3 node\(s\) asked \(2 left out" "$WORK/a.log"
check "... the silent node, by its deadline" grep -qE "node node-x left out \(no answer in time\)" "$WORK/a.log"
check "... the garbage node" grep -qE "node node-y left out" "$WORK/a.log"
rcli del "t:node:{node-x}" "t:node:{node-y}" >/dev/null
rcli srem t:nodes node-x node-y >/dev/null
check "... the planted nodes gone again" wait_for 20 sees_one a
dev_status() { top GET "/gb/devices/$MID_ID/channels" | jq -r '[.. | objects | select(.id == "'"$DEV"'") | .status][0] // "none"'; }
check "... top holds the camera ON (from A's catalog)" test "$(dev_status)" = ON

# ---- 5b. top's queries about the camera on B, through A: A finds the
# device's node and asks that node's API (its own token), whose answer is
# the camera's
INFO=$(top POST "/gb/devices/$MID_ID/info" "{\"target\":\"$CH1\"}")
check "5b. top: DeviceInfo of the camera's channel is the camera's own ($INFO)" \
    jq_ok "$INFO" '.result == "OK" and .device_id == "'"$CH1"'" and .manufacturer == "cascade-gbsim" and .model == "SIM-IPC"'
INFO=$(top POST "/gb/devices/$MID_ID/info" "{\"target\":\"$DEV\"}")
check "... DeviceInfo of the camera itself ($INFO)" \
    jq_ok "$INFO" '.result == "OK" and .device_id == "'"$DEV"'" and .model == "SIM-IPC" and .device_name == "模拟设备1"'
STATUS=$(top POST "/gb/devices/$MID_ID/status" "{\"target\":\"$CH1\"}")
check "... DeviceStatus of the channel ($STATUS)" \
    jq_ok "$STATUS" '.result == "OK" and .device_id == "'"$CH1"'" and .online == "ONLINE" and .status == "OK"'
REC=$(top POST "/gb/devices/$MID_ID/records" "{\"channel\":\"$CH1\",\"start\":\"2026-01-01T00:00:00\",\"end\":\"2026-01-02T00:00:00\"}")
check "... RecordInfo of the channel (gbsim records nothing) ($REC)" jq_ok "$REC" '.channel == "'"$CH1"'" and .sum_num == 0'
check "... A asked them through node B" \
    test "$(grep -cE "(DeviceInfo|DeviceStatus|RecordInfo) for ($CH1|$DEV) from upstream $TOP_ID \(SN [0-9]+\) asked of device $DEV through node node-b" "$WORK/a.log")" = 4
check "... B answered them as peer queries" test "$(gstat b peer_queries)" = 4
PTZ=$(top POST "/gb/devices/$MID_ID/channels/$CH1/ptz" '{"cmd":"left","speed":100}')
check "... PTZ left from top for the camera's channel: sent to A ($PTZ)" jq_ok "$PTZ" '.sent == true'
check "... the camera received it through A and B (gbsim logs PTZ left)" \
    wait_for 10 grep -q "gbsim: device 0 PTZ left" "$WORK/gbsim.log"
check "... A sent it through node B" grep -q "DeviceControl for $CH1 relayed to device $DEV through node node-b" "$WORK/a.log"
check "... B re-encoded it for the camera" \
    grep -q "gb peer relay: DeviceControl from node 127.0.0.1:.* for $CH1 relayed to device $DEV" "$WORK/b.log"
NOWHERE=$(top POST "/gb/devices/$MID_ID/info" '{"target":"34020000001310000099"}')
check "... DeviceInfo of a channel on no node: an ERROR answer at once ($NOWHERE)" \
    jq_ok "$NOWHERE" '.result == "ERROR" and .device_id == "34020000001310000099"'
OFFQ=$(top POST "/gb/devices/$MID_ID/status" "{\"target\":\"$OFF_CH\"}")
check "... DeviceStatus of a channel whose device is offline: ERROR, OFFLINE ($OFFQ)" \
    jq_ok "$OFFQ" '.result == "ERROR" and .online == "OFFLINE"'

# ---- 5c. trust: a peer-marked DeviceControl MESSAGE from an address that
# is no live node's (sipp on 127.0.0.2): 403 at B, nothing sent on
cat >"$WORK/peer-message.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="forged peer MESSAGE">
  <send>
    <![CDATA[
      MESSAGE sip:[field0]@[remote_ip]:[remote_port];gb-device=[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Route: <sip:[remote_ip]:[remote_port];lr;cascade-peer>
      From: <sip:34020000002000000009@3402000000>;tag=[call_number]
      To: <sip:[field0]@3402000000>
      Call-ID: [call_id]
      CSeq: 1 MESSAGE
      Max-Forwards: 70
      Content-Type: Application/MANSCDP+xml
      Content-Length: [len]

<?xml version="1.0" encoding="UTF-8"?>
<Control><CmdType>DeviceControl</CmdType><SN>7</SN><DeviceID>[field0]</DeviceID><PTZCmd>A50F0102640000 1B</PTZCmd></Control>
    ]]>
  </send>
  <recv response="403"/>
</scenario>
XML
printf 'SEQUENTIAL\n%s;%s\n' "$CH1" "$DEV" >"$WORK/peer-message.csv"
SPORT=$(free_port)
PTZ_SEEN=$(grep -c "PTZ" "$WORK/gbsim.log")
forged() {
    timeout 30 sipp -sf "$WORK/peer-message.xml" -inf "$WORK/peer-message.csv" -i 127.0.0.2 -p "$SPORT" \
        -m 1 -timeout 20 -nostdin "127.0.0.1:${SIP[b]}" >"$WORK/sipp-forged.log" 2>&1 </dev/null
}
check "5c. a peer-marked MESSAGE from 127.0.0.2 (no live node) gets 403 from B" forged
check "... B sent the camera nothing" test "$(grep -c "PTZ" "$WORK/gbsim.log")" = "$PTZ_SEEN"

# ---- 5e. the camera's alarms and positions, reported to B, reach top
# through A: top subscribes to A's alarms and positions (its own list for
# A), then B to the camera's (gbsim: a position at once, an alarm every
# second, "模拟报警 N"); B publishes gb.alarm / gb.position on its bus, A
# reads them from the cluster's event stream (another node's) and sends
# them up within top's subscriptions, as it would its own devices'.
top PATCH "/gb/devices/$MID_ID" '{"subscribe":["alarm","position"]}' >/dev/null
a_sub() { on a; api GET /gb/upstreams | jq -e ".upstreams[0].subscriptions.$1.state == \"active\"" >/dev/null; }
check "5e. A holds top's alarm subscription" wait_for 15 a_sub alarm
check "... and its position subscription" wait_for 15 a_sub position
on b; api PATCH "/gb/devices/$DEV" '{"subscribe":["alarm","position"]}' >/dev/null
top_events() { curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$TOP_API/api/v1/events/recent?since=0"; }
top_alarms() { # N: how many of top's gb.alarm events are the camera's alarm number N, through A
    top_events | jq "[.events[] | select(.type == \"gb.alarm\" and .device == \"$MID_ID\" and .channel == \"$CH1\"
        and .priority == 1 and .method == 5 and .alarm_type == 2 and .description == \"模拟报警 $1\")] | length"
}
alarm_at_top() { [ "$(top_alarms "$1")" -ge 1 ]; }
check "... the camera's first alarm on B reaches top as A's Alarm NOTIFY (channel $CH1)" wait_for 15 alarm_at_top 1
check "... B published it (node B's own bus)" bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' \
    'http://127.0.0.1:${API[b]}/api/v1/events/recent?since=0' |
    jq -e '[.events[] | select(.type == \"gb.alarm\" and .device == \"$DEV\" and .description == \"模拟报警 1\")] | length == 1' >/dev/null"
check "... the next one too" wait_for 10 alarm_at_top 2
check "... each once" test "$(top_alarms 1)" = 1
pos_at_top() {
    top_events | jq -e "[.events[] | select(.type == \"gb.position\" and .device == \"$MID_ID\" and .channel == \"$DEV\"
        and (.longitude > 116.39 and .longitude < 116.41) and .speed == 12)] | length >= 1" >/dev/null
}
check "... the camera's position reaches top as A's MobilePosition NOTIFY" wait_for 10 pos_at_top
UPS=$(on a; api GET /gb/upstreams)
check "... A counts them sent for another node's device, none dropped" jq_ok "$UPS" \
    '.upstreams[0].subscriptions | .alarm.other_nodes >= 2 and .position.other_nodes >= 1 and .alarm.other_nodes_dropped == 0 and .position.other_nodes_dropped == 0'
# 5f. One subscription per upstream across the nodes: top subscribing to
# alarms at another node of the platform (node-z's gb.lower.subscribed,
# planted in the stream after A's own) ends A's — every node reads the
# stream in one order and the newest stands, so an alarm never goes up
# twice. A's position subscription stays.
SEQ=$(rcli incr 't:{events}:seq')
EV5F=$(jq -cn --argjson seq "$SEQ" --arg up "$TOP_ID" '{seq: $seq, node: "node-z", time: "2026-12-08T00:00:00.000Z",
    type: "gb.lower.subscribed", upstream: $up, event: "alarm", expires: 3600}')
rcli xadd 't:{events}:stream' "$SEQ-0" e "$EV5F" n node-z >/dev/null
a_sub_over() { on a; api GET /gb/upstreams |
    jq -e '.upstreams[0].subscriptions.alarm | .state == "none" and .replaced_by_node == 1' >/dev/null; }
check "5f. top subscribed to alarms at another node since: A's alarm subscription ends (replaced_by_node)" \
    wait_for 10 a_sub_over
check "... its position subscription stays" a_sub position
check "... A logged it" grep -q "upstream $TOP_ID subscribed to alarm at node node-z since" "$WORK/a.log"
a_alarm_notifies() { on a; api GET /gb/upstreams | jq -r '.upstreams[0].subscriptions.alarm.notifies'; }
b_alarms() { on b; events_json 0 | jq '[.events[] | select(.type == "gb.alarm" and .device == "'"$DEV"'")] | length'; }
N5F=$(a_alarm_notifies); B5F=$(b_alarms)
b_more_alarms() { [ "$(b_alarms)" -ge $((B5F + 2)) ]; }
check "... the camera's alarms go on on B" wait_for 10 b_more_alarms
check "... A sends top none of them now ($(a_alarm_notifies) NOTIFYs, $N5F before)" test "$(a_alarm_notifies)" = "$N5F"
on b; api PATCH "/gb/devices/$DEV" '{"subscribe":[]}' >/dev/null

# ---- 6. the camera goes offline while top plays it: B's BYE -> A -> top
P6=$(top POST "/gb/devices/$MID_ID/channels/$CH1/play" '{}')
S6=$(echo "$P6" | jq -r '.stream_id // empty')
check "6. a play from top before the camera leaves ($S6)" jq_ok "$P6" '.state == "playing"'
kill -9 "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null || true # no BYE of its own
gb_sim "${SIP[b]}" "$MID_ID" gbsim2.log --devices 1 --channels 1 --duration 2 --unregister
wait "$SIM" 2>/dev/null || true
s6_gone() { jq_ok "$(top GET "/gb/streams/$S6")" '.error == "not-found"'; }
check "... top's stream got the BYE (B -> A -> top) and is gone" wait_for 15 s6_gone
check "... A logged the end from the device's side" \
    grep -q "relayed stream of $CH1 (device $DEV) for upstream $TOP_ID ended: bye-from-device" "$WORK/a.log"
# The camera's offline on B reaches A through the cluster's event stream;
# A asks B for the camera's items and sends top a catalog Notify (OFF).
dev_off() { [ "$(dev_status)" = OFF ]; }
check "... top holds the camera OFF: A's catalog Notify for a device on B" wait_for 15 dev_off
check "... A logged the Notify of a device on another node" \
    grep -qE "catalog Notify of [0-9]+ device\(s\) on other nodes" "$WORK/a.log"
check "... a play now: the device is offline, 480" test "$(play_code "$CH1")" = 480

finish
