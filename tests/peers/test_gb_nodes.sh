#!/usr/bin/env bash
# GB devices across cascade nodes ([redis] mirror_gb_devices with
# cluster_route, issue 16): three nodes (a, b, c) with the GB upper role on
# one 3-master Redis Cluster of Debian's redis-server, on loopback ports
# chosen at run time.
#  1. a cascade-gbsim camera registers on node A: its record t:gbdev:{id}
#     (read with redis-cli -c) names node-a, udp, its address, online 1, a
#     keepalive time and a TTL; keepalives every second are written at most
#     once per gb_keepalive_write_s (counted in /stats);
#  2. played from node B's API (POST .../play): B looks the device up, its
#     INVITE goes through A (which relays it to the camera), the camera's
#     RTP comes to B; ffprobe reads H.264 from B's live.flv; node A counted
#     one relay, B one remote play; the camera saw exactly one INVITE;
#  3. the live view of the same channel from node C (POST .../live) plays
#     through A too, and ffprobe reads H.264 from C's FLV URL;
#     a playback from B through A: its pause (INFO) reaches the camera;
#  3c. the camera provisioned through A's API: with mirror_gb_admin, B
#     holds its record, offline; GB queries from B's API for the camera on
#     A are still forwarded to A's API (marked, with the client's token):
#     the device record, a
#     catalog with the camera's channel, DeviceInfo / DeviceStatus with the
#     camera's fields, RecordInfo, a PTZ command the camera logs, the
#     channel tree; A counts them as peer queries, B as node queries; a
#     marked request for it: answered from B's own table (409, offline
#     there), not sent on (the 404 of a device a node does not have: 10);
#  4. stop on B (DELETE /gb/streams/{sid}): B's BYE goes to A, A's to the
#     camera (gbsim logs the BYE from the upper), A's relay is gone;
#  5. a device registered nowhere: 404 JSON from B; a planted record naming
#     a node that is not alive: 503 JSON; a planted record naming B itself
#     (stale): 404, never sent on; the same for queries (catalog, info):
#     404 JSON for a device nowhere; a planted node whose API accepts and
#     never answers: 504 node-timeout within api_forward_timeout_ms; one
#     that answers garbage: 502 bad-gateway;
#  6. loop protection and trust: an INVITE marked as from a peer but sent
#     from an address that is no live node is refused 403 by A;
#  7. the camera unregisters while B plays it: A ends its relay (B's stream
#     gets a BYE), marks the record offline (online 0), and a play from B
#     answers 409 device-offline; with the record made to say online, a
#     query from B reaches A, whose own 409 comes back;
#  8. the owning node killed -9 with three cameras, one of which had
#     re-registered on C meanwhile: a query from B at once gets 503
#     node-unavailable without hanging (or 409 device-offline if a survivor
#     already reaped A's devices); one survivor marks the other two offline
#     in Redis (online 0, still naming node-a) and exactly one
#     gb.device.offline reason node-lost (lost_node node-a, node the
#     survivor that wrote it, no member twice) per device appears in
#     the event stream (every node runs with [redis] events_stream; the
#     reaping node's scripts write them, the same seq in B's and C's views,
#     its bus writer skipping them), none for the moved camera (its record
#     names node-c, online on C); A's device index is gone; then a play and
#     a DeviceInfo query from B answer 409 device-offline;
#  9. the camera re-registers on C: the record names node-c, and a play
#     from B goes through C;
# 10. loop protection: a planted record names C for a device C does not
#     have: C answers 404 and forwards nothing, B answers 404; a catalog
#     query for it from B: C's 404 "on this node" comes back, C forwards
#     nothing.
# 11. administrative records shared ([redis] mirror_gb_admin): two more
#     nodes, D and E, with allow_unknown = no and only that switch (key
#     prefix adm:). D, first run without the mirror, gets 70 devices
#     through its API (and 3 000 more in its SQLite); restarted with it, it
#     seeds the empty hash with them in a few batched writes, and E, started
#     after, knows all 3 070. A camera unknown to
#     both: E refuses its REGISTER (403).
#     Provisioned through D's API (POST /gb/devices, its password): the
#     record is in Redis (adm:gbadmin) and E knows the device; the camera
#     registers on E with that password. Its subscribe list changed on D
#     (where it is offline): E applies it at once (an Alarm SUBSCRIBE to the
#     camera). Its password changed on E (PATCH):
#     D applies it; at the camera's next REGISTER, on D, the old password is
#     refused and the new one accepted. Deleted on D (where it is online):
#     gone from E too (404, and E takes its stale registration offline), its
#     field gone from Redis, and its next REGISTER on E is refused (403).
#     D's /metrics stay typed with the new counters.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli jq ffprobe sipp; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=gbnodestoken
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    gb_upper_ini "$n" "${SIP[$n]}" "${API[$n]}" "$UPPER" dev-secret yes <<INI
keepalive_interval = 1
keepalive_misses = 30
catalog_on_register = no
[media]
enabled = no
[redis]
mirror_bindings = yes
cluster_route = yes
mirror_gb_devices = yes
mirror_gb_admin = yes
gb_keepalive_write_s = 5
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
api_forward_timeout_ms = 4000
events_stream = yes
events_poll_ms = 50
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }
cstat() { on "$1"; api GET /stats | jq -r ".cluster.$2"; }
sees_two() { [ "$(cstat "$1" nodes_live)" = 2 ]; }
for n in a b c; do check "node $n sees the two others live" wait_for 20 sees_two "$n"; done
check "node B logs the GB device mirror with play across nodes" \
    grep -q "GB devices mirrored into the cluster as node node-b; play across nodes on" "$WORK/b.log"

# ---- 1. the camera on A, its record in Redis
T_SIM=$(date +%s)
gb_sim "${SIP[a]}" "$UPPER" gbsim.log --devices 1 --channels 1
on a
check "1. the camera is online on node A" wait_for 30 gb_device_online "$DEV"
KEY="t:gbdev:{$DEV}"
rec_online() { [ "$(rcli hget "$KEY" online)" = 1 ]; }
check "... its record t:gbdev:{id} is online in Redis" wait_for 10 rec_online
check "... it names node-a, udp and the camera's address" bash -c "
    [ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget '$KEY' node | tr -d '\r')\" = node-a ] &&
    [ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget '$KEY' transport | tr -d '\r')\" = udp ] &&
    redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget '$KEY' remote | grep -q '^127.0.0.1:[0-9]'"
KA0=$(rcli hget "$KEY" keepalive)
check "... with a keepalive time (wall ms) and a TTL" bash -c "[ '$KA0' -gt 1700000000000 ] &&
    [ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} pttl '$KEY' | tr -d '\r')\" -gt 0 ]"
ka_moved() { [ "$(rcli hget "$KEY" keepalive)" -gt "$KA0" ]; }
check "... the keepalive time moves on (written every 5 s, not per keepalive)" wait_for 20 ka_moved
dstat() { on "$1"; api GET /stats | jq -r ".redis_gb_devices.$2"; }
gstat() { on "$1"; api GET /stats | jq -r ".gb_upper.$2"; }
ten_keepalives() { [ "$(gstat a keepalives)" -ge 10 ]; }
check "... ten keepalives reached node A" wait_for 60 ten_keepalives
# Each write is HSET + PEXPIRE + SADD (the node's device index, for node
# death): the registration's, then at most one per 5 s however many
# keepalives came (bounded by the time since the camera started, not by
# the keepalives, so a slow machine does not matter).
WR=$(dstat a writes_ok); KAS=$(gstat a keepalives); ELAPSED=$(($(date +%s) - T_SIM + 1))
BOUND=$((3 * (2 + ELAPSED / 5)))
check "... Redis writes bounded by time, not keepalives ($WR commands for $KAS keepalives in ${ELAPSED} s, at most $BOUND)" \
    test "$WR" -le "$BOUND"
check "... node B does not have the device itself (not in its list)" \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:${API[b]}/api/v1/gb/devices |
        jq -e '.devices | map(.id) | index(\"$DEV\") == null' >/dev/null"
check "... node A advertises its API in the registry (field api)" \
    test "$(rcli hget 't:node:{node-a}' api)" = "127.0.0.1:${API[a]}"

# ---- 2. played from B
AUTH="Authorization: Bearer $API_TOKEN"
probe() { timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams v:0 \
    -show_entries stream=codec_name -of csv=p=0 "$1"; }
on b
P=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
SID=$(echo "$P" | jq -r '.stream_id // empty')
URL="http://127.0.0.1:${API[b]}/api/v1/gb/streams/$SID/live.flv"
check "2. play from node B: a stream ($P)" jq_ok "$P" '.state == "playing" and .device_id == "'"$DEV"'"'
check "... ffprobe reads H.264 from node B's live.flv" test "$(probe "$URL")" = h264
check "... B's stream counts RTP packets (the camera sends to B)" \
    jq_ok "$(api GET "/gb/streams/$SID")" '.packets > 0 and .media_ip == "127.0.0.1"'
check "... node A relayed one INVITE from a peer" test "$(gstat a peer_relays)" = 1
check "... node B counted one remote play" test "$(gstat b remote_plays)" = 1
check "... node B looked the device up in Redis" test "$(dstat b lookups_found)" -ge 1
invites() { grep -c "INVITE for $1: " "$WORK/gbsim.log" || true; }
check "... the camera saw exactly one INVITE" test "$(invites "$CH1")" = 1
check "... node A logged the relay to the camera" grep -q "INVITE from node 127.0.0.1:.* for $CH1 relayed to device $DEV" "$WORK/a.log"
curl -s "http://127.0.0.1:${API[b]}/metrics" >"$WORK/b.prom"
check "... /metrics on B is well-formed, the new members typed (no untyped family)" \
    python3 "$PEERS_DIR/promcheck.py" check "$WORK/b.prom" --no-untyped
check "... /metrics on B has the remote plays and the device lookups" \
    bash -c "grep -q '^cascade_gb_upper_remote_plays' '$WORK/b.prom' && grep -q '^cascade_redis_gb_devices_lookups_found' '$WORK/b.prom'"

# ---- 3. live view from C (shared stream there)
on c
L=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}')
LSID=$(echo "$L" | jq -r '.stream_id // empty')
LURL=$(echo "$L" | jq -r '.flv // empty')
check "3. live view from node C: a shared stream ($LSID)" jq_ok "$(api GET "/gb/streams/$LSID")" '.live_shared == true'
check "... ffprobe reads H.264 from node C's FLV URL" test "$(probe "$LURL")" = h264
api DELETE "/gb/streams/$LSID" >/dev/null
check "... node A relayed a second INVITE" test "$(gstat a peer_relays)" = 2
RELAYS=3 # with the playback below (section 6 checks it before section 7 adds one)

# ---- 3b. a playback from B, paused: the INFO goes through A to the camera
on b
PB=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:10:00"}')
PSID=$(echo "$PB" | jq -r '.stream_id // empty')
check "3b. a playback from node B through A ($PSID)" jq_ok "$PB" '.playback == true and .state == "playing"'
OUT=$(api POST "/gb/streams/$PSID/control" '{"action":"pause"}')
check "... pause answered by the camera through A ($OUT)" jq_ok "$OUT" '.action == "pause" and .paused == true'
check "... the PAUSE reached the camera" wait_for 10 grep -qE "PAUSE cseq 1" "$WORK/gbsim.log"
api DELETE "/gb/streams/$PSID" >/dev/null

# ---- 3c. queries from B for the camera on A: forwarded to A's API
# (provisioned through A's API first: with mirror_gb_admin, B then holds
# the device's record too, offline, and must still ask A)
on a
R=$(api POST /gb/devices '{"id":"'"$DEV"'","password":"dev-secret"}')
check "3c. the camera provisioned through A's API ($(echo "$R" | jq -c '{id,online}'))" jq_ok "$R" '.online == true'
b_holds() { on b; curl -s -H "$AUTH" "http://127.0.0.1:${API[b]}/api/v1/gb/devices" |
    jq -e '.devices | map(select(.id == "'"$DEV"'" and .online == false)) | length == 1' >/dev/null; }
check "... B holds its record (offline there) from the shared admin records" wait_for 10 b_holds
on b
PQ0=$(gstat a peer_queries)
R=$(api GET "/gb/devices/$DEV")
check "... GET the device from node B: A's record of it ($(echo "$R" | jq -c '{id,online,transport}'))" \
    jq_ok "$R" '.id == "'"$DEV"'" and .online == true and .transport == "udp"'
CAT=$(api POST "/gb/devices/$DEV/catalog" '{}')
check "... a catalog from B: the camera's channel ($(echo "$CAT" | jq -c '{device_id,sum_num,n:(.channels|length)}'))" \
    jq_ok "$CAT" '.device_id == "'"$DEV"'" and .sum_num == 1 and (.channels | map(.id) | index("'"$CH1"'")) != null'
INFO=$(api POST "/gb/devices/$DEV/info" '{}')
check "... DeviceInfo from B: the camera's fields ($(echo "$INFO" | jq -c '{manufacturer,model,channel}'))" \
    jq_ok "$INFO" '.device_id == "'"$DEV"'" and .manufacturer == "cascade-gbsim" and .model == "SIM-IPC" and .channel == 1'
ST=$(api POST "/gb/devices/$DEV/status" '{}')
check "... DeviceStatus from B: the camera's fields ($(echo "$ST" | jq -c '{online,encode,record}'))" \
    jq_ok "$ST" '.device_id == "'"$DEV"'" and .online == "ONLINE" and .encode == "ON" and (.device_time | length) > 0'
REC=$(api POST "/gb/devices/$DEV/records" '{"channel":"'"$CH1"'","start":"2026-12-01T00:00:00","end":"2026-12-01T23:59:59"}')
check "... RecordInfo from B: the camera's (empty) list ($REC)" jq_ok "$REC" '.sum_num == 0 and (.records | length) == 0'
PTZ=$(api POST "/gb/devices/$DEV/channels/$CH1/ptz" '{"cmd":"left","speed":100}')
check "... PTZ left from B: sent by A ($PTZ)" jq_ok "$PTZ" '.sent == true and (.ptz_cmd | startswith("A50F01"))'
check "... the camera received it (gbsim logs PTZ left)" wait_for 10 grep -q "gbsim: device 0 PTZ left" "$WORK/gbsim.log"
TREE=$(api GET "/gb/devices/$DEV/channels")
check "... the channel tree from B: A's tree" jq_ok "$TREE" '(.channels | map(.id) | index("'"$CH1"'")) != null'
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{"target":"12"}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$DEV/info")
check "... a bad argument: 400 JSON ($R)" bash -c "[[ '$R' == *'\"bad-request\"'*' 400' ]]"
check "... A answered 7 requests forwarded by a peer" test "$(($(gstat a peer_queries) - PQ0))" = 7
check "... B counted 7 node queries, none failed" \
    bash -c "[ '$(gstat b node_queries)' = 7 ] && [ '$(gstat b node_query_failures)' = 0 ] && [ '$(gstat b node_queries_pending)' = 0 ]"
check "... B logged the forward to node-a at A's API" \
    grep -q "gb api: POST /api/v1/gb/devices/$DEV/catalog for device $DEV forwarded to node node-a (127.0.0.1:${API[a]})" "$WORK/b.log"
check "... the device is still not registered on B (its record there offline)" \
    bash -c "curl -s -H '$AUTH' http://127.0.0.1:${API[b]}/api/v1/gb/devices | jq -e '.total == 1 and .devices[0].online == false' >/dev/null"
# loop protection: a request already forwarded is answered from local devices only.
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'X-Cascade-Forwarded: node-c' -H 'Content-Type: application/json' \
    --data '{}' "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$DEV/info")
check "... a request marked as forwarded, for a device B holds offline: answered by B alone, 409 ($R)" \
    bash -c "[[ '$R' == *'\"device-offline\"'*' 409' ]]"
check "... and not sent on (B's node queries unchanged)" test "$(gstat b node_queries)" = 7

# ---- 4. stop on B
byes() { grep -c "stream of $CH1 ended: BYE from the upper" "$WORK/gbsim.log" || true; }
BY0=$(byes)
on b
check "4. stop on node B (DELETE)" jq_ok "$(api DELETE "/gb/streams/$SID")" '.stopped == true'
more_byes() { [ "$(byes)" -gt "$BY0" ]; }
check "... the camera got the BYE (through node A)" wait_for 15 more_byes
check "... node A ended its relay on B's BYE" wait_for 10 grep -q "ended: BYE from the node" "$WORK/a.log"

# ---- 5. errors
on b
NX=34020000001320000099
R=$(api POST "/gb/devices/$NX/channels/$CH1/play" '{}')
check "5. a device registered nowhere: 404 JSON ($R)" jq_ok "$R" '.error == "not-found"'
check "... with HTTP status 404" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" \
    -H 'Content-Type: application/json' --data '{}' "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$NX/channels/$CH1/play")" = 404
GHOST=34020000001320000077
rcli hset "t:gbdev:{$GHOST}" node node-gone transport udp remote 127.0.0.1:9 online 1 keepalive 1 >/dev/null
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$GHOST/channels/$CH1/play")
check "... a record naming a node that is not alive: 503 node-unavailable ($R)" \
    bash -c "[[ '$R' == *'\"node-unavailable\"'*' 503' ]]"
rcli hset "t:gbdev:{$GHOST}" node node-b >/dev/null
R=$(api POST "/gb/devices/$GHOST/channels/$CH1/play" '{}')
check "... a stale record naming node B itself: 404, not sent anywhere ($R)" jq_ok "$R" '.error == "not-found"'
rcli hset "t:gbdev:{$GHOST}" online maybe >/dev/null
R=$(api POST "/gb/devices/$GHOST/channels/$CH1/play" '{}')
check "... a record that does not read (online maybe): taken as absent, 404 ($R)" jq_ok "$R" '.error == "not-found"'
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$NX/catalog")
check "5b. a catalog from B for a device registered nowhere: 404 JSON ($R)" \
    bash -c "[[ '$R' == *'\"not-found\"'*' 404' ]]"
R=$(api POST "/gb/devices/$NX/info" '{}')
check "... DeviceInfo likewise ($R)" jq_ok "$R" '.error == "not-found"'
# Two planted nodes: node-x's API accepts and never answers, node-y's
# answers garbage (tests/peers/fake_http.py).
check "... two fake node APIs listen, planted in the registry" plant_fake_nodes rcli t:
sees_four() { [ "$(cstat b nodes_live)" = 4 ]; }
check "... node B sees the two planted nodes" wait_for 20 sees_four
GX=34020000001320000078
GY=34020000001320000079
rcli hset "t:gbdev:{$GX}" node node-x transport udp remote 127.0.0.1:9 online 1 >/dev/null
rcli hset "t:gbdev:{$GY}" node node-y transport udp remote 127.0.0.1:9 online 1 >/dev/null
T0=$(date +%s%N)
R=$(curl -s -m 30 -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$GX/catalog" || true)
MS=$((($(date +%s%N) - T0) / 1000000))
check "... a node whose API never answers: 504 node-timeout ($R)" bash -c "[[ '$R' == *'\"node-timeout\"'*' 504' ]]"
check "... after the 4 s hop deadline, not much later (${MS} ms)" bash -c "[ $MS -ge 3900 ] && [ $MS -lt 15000 ]"
R=$(curl -s -m 30 -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$GY/info" || true)
check "... a node that answers garbage: 502 bad-gateway ($R)" bash -c "[[ '$R' == *'\"bad-gateway\"'*' 502' ]]"
rcli del "t:node:{node-x}" "t:node:{node-y}" "t:gbdev:{$GX}" "t:gbdev:{$GY}" >/dev/null
rcli srem t:nodes node-x node-y >/dev/null
sees_two_b() { [ "$(cstat b nodes_live)" = 2 ]; }
check "... the planted nodes gone again" wait_for 20 sees_two_b

# ---- 6. trust: a marked INVITE from an address that is not a live node
# sipp binds 127.0.0.2, which no node advertises.
cat >"$WORK/peer-invite.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="forged peer INVITE">
  <send>
    <![CDATA[
      INVITE sip:[field0]@[remote_ip]:[remote_port];gb-device=[field1] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Route: <sip:[remote_ip]:[remote_port];lr;cascade-peer>
      From: <sip:34020000002000000009@3402000000>;tag=[call_number]
      To: <sip:[field0]@3402000000>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:34020000002000000009@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="403"/>
  <send>
    <![CDATA[
      ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:34020000002000000009@3402000000>;tag=[call_number]
      To: <sip:[field0]@3402000000>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
XML
printf 'SEQUENTIAL\n%s;%s\n' "$CH1" "$DEV" >"$WORK/peer-invite.csv"
SPORT=$(free_port)
forged() {
    timeout 30 sipp -sf "$WORK/peer-invite.xml" -inf "$WORK/peer-invite.csv" -i 127.0.0.2 -p "$SPORT" \
        -m 1 -timeout 20 -nostdin "127.0.0.1:${SIP[a]}" >"$WORK/sipp-forged.log" 2>&1 </dev/null
}
check "6. a peer-marked INVITE from 127.0.0.2 (no live node) gets 403 from A" forged
check "... A counted the refusal and relayed nothing more" \
    bash -c "[ '$(gstat a peer_refused)' -ge 1 ] && [ '$(gstat a peer_relays)' = $RELAYS ]"

# ---- 7. offline
on b
P7=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
S7=$(echo "$P7" | jq -r '.stream_id // empty')
check "7. a play from B before the camera leaves ($S7)" jq_ok "$P7" '.state == "playing"'
kill -9 "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null || true # no BYE from it: its relay ends when it goes offline
gb_sim "${SIP[a]}" "$UPPER" gbsim2.log --devices 1 --channels 1 --duration 2 --unregister
wait "$SIM" 2>/dev/null || true
rec_offline() { [ "$(rcli hget "$KEY" online)" = 0 ]; }
check "7. the camera unregistered: its record says online 0, still node-a" wait_for 15 rec_offline
s7_gone() { jq_ok "$(api GET "/gb/streams/$S7")" '.error == "not-found"'; }
check "... A ended its relay: B's stream got A's BYE and is gone" wait_for 15 s7_gone
check "... gb.stream.stopped on B with reason bye" \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$S7\" and .reason==\"bye\")"
check "... A logged the relay's end for the device going offline" \
    grep -q "device $DEV offline; its stream of $CH1 for node" "$WORK/a.log"
on b
check "... with a TTL (it ages out)" bash -c "[ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} pttl '$KEY' | tr -d '\r')\" -gt 0 ]"
on b
R=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
check "... a play from B: 409 device-offline ($R)" jq_ok "$R" '.error == "device-offline"'
# The owner's own error comes back: the record made to say online again,
# A (which has the camera offline) answers the forwarded query 409.
rcli hset "$KEY" online 1 >/dev/null
PQ7=$(gstat a peer_queries)
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$DEV/info")
check "... a query from B with the record saying online: A's own 409 comes back ($R)" \
    bash -c "[[ '$R' == *'\"device-offline\"'*'is not online\"}'*' 409' ]]"
check "... A answered it (a peer query)" test "$(gstat a peer_queries)" = "$((PQ7 + 1))"
rcli hset "$KEY" online 0 >/dev/null

for n in a b c; do
    pid_var="${n}_PID"
    check "node $n is still running" kill -0 "${!pid_var}"
done

# ---- 8. the owning node dies: one survivor marks its devices offline
# Three cameras on A (DEV and DEV2 in one simulator, DEV3 in another); DEV3
# then moves to C (its simulator killed -9 without unregistering: A still
# holds it online) before A is killed -9.
DEV2=34020000001320000002
DEV3=34020000001320000003
gb_sim "${SIP[a]}" "$UPPER" gbsim3.log --devices 2 --channels 1
SIM_AB=$SIM
gb_sim "${SIP[a]}" "$UPPER" gbsim3b.log --devices 1 --channels 1 --base-id "$DEV3"
SIM_3=$SIM
check "8. the camera registers on A again: its record is online" wait_for 30 rec_online
on a
both_on_a() { gb_device_online "$DEV2" && gb_device_online "$DEV3"; }
check "... two more cameras online on A" wait_for 30 both_on_a
echo "info: Redis memory of one device record: $(rcli memory usage "$KEY") bytes"
INC_A=$(rcli hget "t:node:{node-a}" inc)
IDX_A="t:node-gbdevs:{node-a}:$INC_A"
idx_has() { [ "$(rcli sismember "$IDX_A" "$1")" = 1 ]; }
rec_inc_a() { [ -n "$INC_A" ] && [ "$(rcli hget "$KEY" inc)" = "$INC_A" ]; }
check "... the records carry A's incarnation ($INC_A)" wait_for 10 rec_inc_a
for d in "$DEV" "$DEV2" "$DEV3"; do check "... A's device index lists $d" wait_for 10 idx_has "$d"; done
kill -9 "$SIM_3"; wait "$SIM_3" 2>/dev/null || true
gb_sim "${SIP[c]}" "$UPPER" gbsim3c.log --devices 1 --channels 1 --base-id "$DEV3"
dev3_on_c() { [ "$(rcli hget "t:gbdev:{$DEV3}" node)" = node-c ] && [ "$(rcli hget "t:gbdev:{$DEV3}" online)" = 1 ]; }
check "... $DEV3 re-registered on C before A dies: its record names node-c" wait_for 30 dev3_on_c
on a
check "... while A still holds it online (no unregister reached A)" gb_device_online "$DEV3"
# B and C each play $DEV through A: the camera (alive) keeps sending RTP to
# them after A dies, so no RTP timeout ends them; A's death must.
on b
P8=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
SID8B=$(echo "$P8" | jq -r '.stream_id // empty')
check "8. B plays $DEV through A before A dies ($SID8B)" jq_ok "$P8" '.state == "playing"'
on c
P8=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
SID8C=$(echo "$P8" | jq -r '.stream_id // empty')
check "... and so does C ($SID8C)" jq_ok "$P8" '.state == "playing"'
EV8=$(on b; events_json 0 | jq '[.events[].seq] | max // 0')
GBR0=$(( $(cstat b gb_devices_reaped) + $(cstat c gb_devices_reaped) ))
kill -9 "$a_PID"; wait "$a_PID" 2>/dev/null || true
on b
T0=$(date +%s%N)
R=$(curl -s -m 30 -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$DEV/catalog" || true)
MS=$((($(date +%s%N) - T0) / 1000000))
# Before or after a survivor reaped A's devices (it needs A's heartbeats to lapse first,
# which a loaded machine may let happen before curl runs): never forwarded to the dead node.
check "8. A killed -9: a catalog from B at once: 503 node-unavailable, or 409 once reaped ($R)" \
    bash -c "[[ '$R' == *'\"node-unavailable\"'*' 503' || '$R' == *'\"device-offline\"'*' 409' ]]"
check "... answered within 3 s (${MS} ms): no hang" test "$MS" -lt 3000
sees_one() { [ "$(cstat b nodes_live)" = 1 ]; }
check "... node A killed -9: B sees it gone within 3 heartbeats" wait_for 20 sees_one
rec_offline_a() { [ "$(rcli hget "t:gbdev:{$1}" online)" = 0 ] && [ "$(rcli hget "t:gbdev:{$1}" node)" = node-a ]; }
for d in "$DEV" "$DEV2"; do
    check "... a survivor marked $d offline in Redis (still naming node-a)" wait_for 20 rec_offline_a "$d"
done
idx_gone() { [ "$(rcli exists "$IDX_A")" = 0 ]; }
check "... the reap finished: A's device index is gone" wait_for 20 idx_gone
rec_ttl() { [ "$(rcli pttl "$KEY")" -gt 0 ]; }
check "... the offline records keep a TTL" rec_ttl
# One survivor reaped A (its hook stops its streams through A), the other
# learnt it from the node-lost events in the stream: whichever it was, both
# streams end with reason node-lost while the camera still sends.
stream_gone() { on "$1"; [ "$(api GET "/gb/streams/$2" | jq -r '.stream_id // empty')" != "$2" ]; }
check "... B's stream through A ended at the reap, not on an RTP timeout" wait_for 20 stream_gone b "$SID8B"
check "... and C's" wait_for 20 stream_gone c "$SID8C"
check "... the camera is still running (its RTP goes on to the dead node's viewers)" kill -0 "$SIM_AB"
lost_stopped() { on b; events_json "$EV8" | jq --arg d "$DEV" '[.events[] | select(.type == "gb.stream.stopped" and
    .device_id == $d and .reason == "node-lost")] | length'; }
two_lost() { [ "$(lost_stopped)" = 2 ]; }
check "... one gb.stream.stopped reason node-lost from each (B and C) in the stream" wait_for 10 two_lost
rstat() { on "$1"; api GET /stats | jq -r '.gb_upper.remote_streams_node_lost'; }
check "... counted in /stats gb_upper.remote_streams_node_lost on B and C" test "$(rstat b)" = 1 -a "$(rstat c)" = 1
# The nodes run with [redis] events_stream: every node's API serves the
# cluster's one stream, where the reaping node's scripts wrote the events.
# gb.device.offline reason node-lost in node $2's view (the stream), as "seq" lines.
lost_seqs() { on "${2:-b}"; events_json 0 | jq -c --arg d "$1" \
    '[.events[] | select(.type == "gb.device.offline" and .device_id == $d and .reason == "node-lost") | .seq]'; }
lost_events() { lost_seqs "$1" | jq length; }
offline_events() { on b; events_json 0 | jq --arg d "$1" '[.events[] | select(.type == "gb.device.offline" and .device_id == $d)] | length'; }
some_lost() { [ "$(lost_events "$DEV")" -ge 1 ] && [ "$(lost_events "$DEV2")" -ge 1 ]; }
check "... the survivors' views have the node-lost events" wait_for 10 some_lost
sleep 1 # three more heartbeats: a second reaper would have written by now
for d in "$DEV" "$DEV2"; do
    check "... exactly one gb.device.offline node-lost for $d in the stream ($(lost_events "$d"))" test "$(lost_events "$d")" = 1
    check "... C's view has it with the same seq" test "$(lost_seqs "$d" c)" = "$(lost_seqs "$d")"
done
sstat() { on "$1"; api GET /stats | jq -r ".$2"; }
check "... written by the reaping node's scripts (reap_events_streamed), its bus writer skipping them (written_elsewhere)" \
    test $(($(sstat b cluster.reap_events_streamed) + $(sstat c cluster.reap_events_streamed))) = 2 -a \
    $(($(sstat b events_stream.written_elsewhere) + $(sstat c events_stream.written_elsewhere))) -ge 2
node_named() {
    on b
    events_json 0 | jq -e --arg d "$DEV" '[.events[] | select(.type == "gb.device.offline" and .device_id == $d and
        .reason == "node-lost" and .lost_node == "node-a" and (.node == "node-b" or .node == "node-c"))] | length == 1' >/dev/null
}
check "... the event names the dead node (lost_node: node-a) and the survivor that wrote it (node)" node_named
lost_raw() { rcli --raw xrange 't:{events}:stream' - + | grep '^{"seq":' | grep '"reason":"node-lost"'; }
check "... no member twice in the node-lost events, in the stream and in B's and C's views" \
    eval 'lost_raw | unique_keys && on b && events_json 0 | unique_keys && on c && events_json 0 | unique_keys'
check "... none for $DEV3, which re-registered on C ($(offline_events "$DEV3"))" test "$(offline_events "$DEV3")" = 0
check "... $DEV3's record still names node-c, online" dev3_on_c
on c
check "... and C holds it online" gb_device_online "$DEV3"
GBR=$(( $(cstat b gb_devices_reaped) + $(cstat c gb_devices_reaped) - GBR0 ))
check "... the survivors counted two devices reaped in /stats ($GBR)" test "$GBR" = 2
on b
R=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
check "... a play from B: 409 device-offline, not sent to the dead node ($R)" jq_ok "$R" '.error == "device-offline"'
R=$(api POST "/gb/devices/$DEV/info" '{}')
check "... DeviceInfo from B: 409 device-offline, not forwarded to the dead node ($R)" jq_ok "$R" '.error == "device-offline"'
R=$(api GET "/gb/devices/$DEV")
check "... GET it from B: B's own (shared admin) record, offline, since it is registered on no node ($(echo "$R" | jq -c '{id,online}'))" \
    jq_ok "$R" '.id == "'"$DEV"'" and .online == false'
SIM=$SIM_AB

# ---- 9. the camera re-registers on C: B plays it through C
kill -9 "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null || true
gb_sim "${SIP[c]}" "$UPPER" gbsim4.log --devices 1 --channels 1
on_c() { [ "$(rcli hget "$KEY" node)" = node-c ]; }
check "9. the camera registered on C: its record names node-c" wait_for 30 on_c
on b
P9=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{}')
check "... a play from B goes through C now ($(echo "$P9" | jq -c '{stream_id,state}'))" jq_ok "$P9" '.state == "playing"'
check "... node C relayed it" test "$(gstat c peer_relays)" = 1

# ---- 10. loop protection: a planted record sends B to C for a device C
# does not have; C answers 404 and sends the marked INVITE nowhere else.
rcli del "t:gbdev:{$GHOST}" >/dev/null
rcli hset "t:gbdev:{$GHOST}" node node-c transport udp remote 127.0.0.1:9 online 1 >/dev/null
REF0=$(gstat c peer_refused)
on b
R=$(api POST "/gb/devices/$GHOST/channels/$CH1/play" '{}')
check "10. a record naming C for a device C does not have: 404 from B ($R)" jq_ok "$R" '.error == "not-found"'
check "... C refused the marked INVITE (404) and relayed nothing" \
    bash -c "[ '$(gstat c peer_refused)' -gt '$REF0' ] && [ '$(gstat c peer_relays)' = 1 ]"
check "... C logged the refusal, B sent the INVITE only once" \
    bash -c "grep -q 'asked for $CH1 of device $GHOST, not registered here: 404' '$WORK/c.log' &&
        [ \"\$(grep -c 'INVITE $GHOST/$CH1 through node' '$WORK/b.log')\" = 1 ]"
NQC=$(gstat c node_queries); NQB=$(gstat b node_queries)
R=$(curl -s -w ' %{http_code}' -X POST -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
    "http://127.0.0.1:${API[b]}/api/v1/gb/devices/$GHOST/catalog")
check "... a catalog from B for it: C's own 404 (on this node) comes back ($R)" \
    bash -c "[[ '$R' == *'\"not-found\"'*'on this node'*' 404' ]]"
check "... C sent it on to nobody, B forwarded it once" \
    bash -c "[ '$(gstat c node_queries)' = '$NQC' ] && [ '$(gstat b node_queries)' = '$((NQB + 1))' ] &&
        [ \"\$(grep -c 'gb api: POST /api/v1/gb/devices/$GHOST/catalog for device $GHOST forwarded' '$WORK/b.log')\" = 1 ]"
# ---- 11. administrative records shared between nodes ([redis] mirror_gb_admin)
DEV5=34020000001320000091
MEDIA5=$(free_range 4)
for n in d e; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    m=$MEDIA5; [ "$n" = e ] && m=$((MEDIA5 + 2))
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" 3402000000 <<INI
[gb]
enabled = yes
id = $UPPER
domain = 3402000000
password = node-default-secret
allow_unknown = no
media_ip = 127.0.0.1
media_ports = $m-$((m + 1))
keepalive_interval = 1
keepalive_misses = 30
catalog_on_register = no
[media]
enabled = no
[redis]
mirror_gb_admin = $([ "$n" = d ] && echo no || echo yes)
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = adm:
timeout_ms = 1000
INI
done
# D first without the mirror: 70 devices provisioned into its SQLite only.
start_cascade d0 "$WORK/d.ini"
on d
for i in $(seq 1000 1069); do api POST /gb/devices '{"id":"3402000000132000'"$i"'","password":"p'"$i"'"}' >/dev/null; done
check "11. node D alone (no mirror) holds 70 provisioned devices" \
    test "$(api GET '/gb/devices?limit=1' | jq -r .total)" = 70
kill -TERM "$d0_PID"; wait "$d0_PID" 2>/dev/null || true
# and 3 000 more straight into its SQLite: the seeding below takes several batches
sqlite3 "$WORK/d.db" "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2999)
    INSERT INTO gb_devices(id, password) SELECT printf('340200000013201%05d', i), 'q' || i FROM n;"
sed -i 's/^mirror_gb_admin = no$/mirror_gb_admin = yes/' "$WORK/d.ini"
astat() { on "$1"; api GET /stats | jq -r ".redis_gb_admin.$2"; }
loaded() { [ "$(astat "$1" subscribed)" = true ] && [ "$(astat "$1" loads)" -ge 1 ]; }
start_cascade d "$WORK/d.ini"
check "... D restarted with mirror_gb_admin: subscribed and loaded adm:gbadmin" wait_for 20 loaded d
seeded() { grep -q "redis gb admin: adm:gbadmin was not seeded yet: seeded with this node's 3070 entries" "$WORK/d.log"; }
check "... D seeded the empty hash with its 3 070 devices" wait_for 10 seeded
hlen70() { [ "$(redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" hlen adm:gbadmin | tr -d '\r')" = 3071 ]; }
check "... the hash holds the 3 070 records and the seed marker, none lost" wait_for 10 hlen70
check "... in a few batched writes, not one per device (writes_ok $(astat d writes_ok))" \
    test "$(astat d writes_ok)" -le 10
check "... D counted no failed write" test "$(astat d writes_failed)" = 0
start_cascade e "$WORK/e.ini"
check "... node E started later: subscribed and loaded adm:gbadmin" wait_for 20 loaded e
e70() { on e; [ "$(api GET '/gb/devices?limit=1' | jq -r .total)" = 3070 ]; }
check "... E knows D's 3 070 devices from the hash" wait_for 10 e70
on e
check "... with their own passwords" bash -c "
    curl -s -H '$AUTH' http://127.0.0.1:${API[e]}/api/v1/gb/devices/34020000001320001042 | jq -e '.own_password == true' >/dev/null &&
    curl -s -H '$AUTH' http://127.0.0.1:${API[e]}/api/v1/gb/devices/34020000001320102999 | jq -e '.own_password == true' >/dev/null"
# sim5 NODE PASSWORD LOG [gbsim options]: the camera DEV5 registering on NODE with PASSWORD.
sim5() {
    local node=$1 pw=$2 log=$3
    shift 3
    "$BUILD_DIR/cascade-gbsim" --target "127.0.0.1:${SIP[$node]}" --target-id "$UPPER" --password "$pw" \
        --keepalive 1 --quiet --log-level info --duration 120 --devices 1 --channels 1 --base-id "$DEV5" "$@" \
        >"$WORK/$log" 2>&1 &
    SIM=$!
    PIDS+=("$SIM")
}
stop_sim() { kill -9 "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null || true; }
refused_403() { grep -q "gb REGISTER from $DEV5 at .*: not an allowed device, 403" "$WORK/$1.log"; }
sim5 e pw-one sim5a.log
check "... a camera provisioned nowhere: E refuses its REGISTER (403, allow_unknown = no)" wait_for 20 refused_403 e
stop_sim
on d
R=$(api POST /gb/devices '{"id":"'"$DEV5"'","password":"pw-one"}')
check "... provisioned through D's API ($(echo "$R" | jq -c '{id,own_password}'))" \
    jq_ok "$R" '.id == "'"$DEV5"'" and .own_password == true'
check "... its record is in Redis (adm:gbadmin, with its password)" \
    bash -c "redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget adm:gbadmin $DEV5 | jq -e '.password == \"pw-one\" and .allow == true' >/dev/null"
e_knows() { on e; api GET "/gb/devices/$DEV5" | jq -e '.id == "'"$DEV5"'" and .own_password == true' >/dev/null; }
check "... node E knows the device (its own table, from the announcement)" wait_for 10 e_knows
SUBS5=$WORK/subs5.jsonl
sim5 e pw-one sim5b.log --subscribe-log "$SUBS5"
on e
check "... the camera registers on E with the password given on D" wait_for 30 gb_device_online "$DEV5"
got5() { [ -s "$SUBS5" ] && jq -e -s "[.[] | select($1)] | length > 0" "$SUBS5" >/dev/null; }
check "... no SUBSCRIBE yet (no [gb] subscribe)" test ! -s "$SUBS5"
on d
R=$(api PATCH "/gb/devices/$DEV5" '{"subscribe":["alarm"]}')
check "... its own subscribe list changed through D's API, where it is offline ($(echo "$R" | jq -c '{online,subscribe}'))" \
    jq_ok "$R" '.online == false and .subscribe == ["alarm"]'
check "... E, where it is online, applies it at once: an Alarm SUBSCRIBE reaches the camera" \
    wait_for 20 got5 '.kind=="new" and .event=="Alarm" and .status==200'
stop_sim
AP0=$(astat d applied)
on e
R=$(api PATCH "/gb/devices/$DEV5" '{"password":"pw-two"}')
check "... its password changed through E's API (PATCH)" jq_ok "$R" '.id == "'"$DEV5"'"'
d_applied() { [ "$(astat d applied)" -gt "$AP0" ]; }
check "... node D applied E's change (redis_gb_admin.applied)" wait_for 10 d_applied
check "... Redis holds the new password" \
    bash -c "redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget adm:gbadmin $DEV5 | jq -e '.password == \"pw-two\"' >/dev/null"
refused_pw() { grep -q "gb REGISTER from $DEV5 at .* refused: " "$WORK/d.log"; }
sim5 d pw-one sim5c.log
check "... at its next REGISTER, on D, the old password is refused" wait_for 20 refused_pw
stop_sim
sim5 d pw-two sim5d.log
on d
check "... and the new one accepted: online on D" wait_for 30 gb_device_online "$DEV5"
stop_sim
R=$(api DELETE "/gb/devices/$DEV5")
check "... deleted through D's API ($R)" jq_ok "$R" '.removed == 1'
e_forgot() { on e; [ "$(api GET "/gb/devices/$DEV5" | jq -r '.error')" = not-found ]; }
check "... gone from E too (404)" wait_for 10 e_forgot
check "... E took its stale registration offline (gb.device.offline, unregister)" \
    grep -q "gb device $DEV5 offline" "$WORK/e.log"
check "... its field is gone from Redis" \
    test -z "$(redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" hget adm:gbadmin "$DEV5" | tr -d '\r')"
N403=$(grep -c "gb REGISTER from $DEV5 at .*: not an allowed device, 403" "$WORK/e.log" || true)
more_403() { [ "$(grep -c "gb REGISTER from $DEV5 at .*: not an allowed device, 403" "$WORK/e.log" || true)" -gt "$N403" ]; }
sim5 e pw-two sim5e.log
check "... its next REGISTER on E is refused (403)" wait_for 20 more_403
stop_sim
curl -s "http://127.0.0.1:${API[d]}/metrics" >"$WORK/d.prom"
check "... /metrics on D well-formed, redis_gb_admin typed" bash -c "
    python3 '$PEERS_DIR/promcheck.py' check '$WORK/d.prom' --no-untyped &&
    grep -q '^cascade_redis_gb_admin_applied' '$WORK/d.prom'"
finish
