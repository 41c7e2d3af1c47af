#!/usr/bin/env bash
# test_gb_lower.sh — cascade against itself: a lower-role node registers to an
# upper-role node on loopback (GB/T 28181 cascade, issue 5).
#  1. wrong password: the lower retries with backoff (no storm), no keepalive
#     goes out while it is not registered; the upper's record is fixed and the
#     lower gets in on its next attempt, then keeps alive;
#  2. the upper's catalog query is answered with the lower's channels (Chinese
#     names through GB2312, one item per MESSAGE so the answer is split);
#  3. RecordInfo answered from the lower's record index; DeviceInfo; PTZ;
#  4. play from the upper over UDP and TCP: the dumped PS is H.264 for
#     ffprobe; BYE from the upper stops the lower's stream;
#  5. the upper stops: the lower sees it within interval x misses (plus one
#     interval for the first unanswered keepalive) and registers again when
#     the upper is back;
#  6. the lower stops: it unregisters (Expires: 0), the upper sees it go.
source "$(dirname "$0")/lib.sh"

UP_SIP=$(free_port); UP_API=$(free_port); LO_SIP=$(free_port); LO_API=$(free_port)
UP_ID=34020000002000000001
LO_ID=34020000002000000002
CH1=34020000001310000101
CH2=34020000001310000102
CH3=34020000001310000103
API_TOKEN=tok
KA=1
MISSES=3

gb_upper_ini upper "$UP_SIP" "$UP_API" "$UP_ID" 12345678 no <<EOF
keepalive_interval = 5
keepalive_misses = 3
EOF

node_ini lower "$LO_SIP" "$LO_API" 3402000000 <<EOF
[gb]
id = $LO_ID
domain = 3402000000
media_ip = 127.0.0.1
$(gb_upstream_ini "$UP_ID" "$UP_SIP" udp lower-secret 60)
keepalive_interval = $KA
keepalive_misses = $MISSES
charset = GB2312
catalog_items = 1
EOF

up() { API_PORT=$UP_API api "$@"; }
lo() { API_PORT=$LO_API api "$@"; }
up_state() { lo GET /gb/upstreams | jget 'd["upstreams"][0]["state"]'; }
upper_count() { up GET /stats | jget "d.get('messages_in',{}).get('$1',0)"; }

start_cascade upper "$WORK/upper.ini"
# The upper knows the lower with another password than the lower uses.
check "upper: lower's record with a password the lower does not have" \
    test "$(up POST /gb/devices "{\"id\":\"$LO_ID\",\"password\":\"other-secret\"}" | jget 'd["id"]')" = "$LO_ID"

start_cascade lower "$WORK/lower.ini"
sleep 7
REG_BAD=$(upper_count REGISTER)
MSG_BAD=$(upper_count MESSAGE)
# Between attempts the state is failed; during one (a REGISTER and its 401 in
# flight) it is registering: wait for the former rather than read it once.
failed_401() { test "$(lo GET /gb/upstreams | jget 'd["upstreams"][0]["state"]+" "+d["upstreams"][0]["last_error"][:3]')" = "failed 401"; }
check "wrong password: state failed with the 401 as last error" wait_for 30 failed_401
# Backoff 2 s, 4 s, 8 s (jittered, halves at least): in 7 s at most 4
# attempts of 2 REGISTERs (challenge + answer) reach the upper.
check "wrong password: retried with backoff, no storm ($REG_BAD REGISTERs in 7 s)" \
    test "$REG_BAD" -ge 4 -a "$REG_BAD" -le 8
check "no keepalive while not registered ($MSG_BAD MESSAGEs)" test "$MSG_BAD" -eq 0

# Give the upper the lower's real password: its next attempt gets in.
up POST /gb/devices "{\"id\":\"$LO_ID\",\"password\":\"lower-secret\"}" >/dev/null
check "right password: registered within the next backoff" wait_for 20 \
    bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"upstreams\"][0][\"state\"])')\" = registered ]"
check "upper: lower device online" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$UP_API/api/v1/gb/devices/$LO_ID | grep -q '\"online\": *true'"
sleep 2.5
check "keepalives answered after the 200" \
    test "$(lo GET /gb/upstreams | jget 'd["upstreams"][0]["keepalives_ok"]')" -ge 2
check "upper saw keepalives (last_keepalive set)" \
    test "$(up GET /gb/devices/$LO_ID | jget 'd["last_keepalive"] is not None')" = True

# ---- the local directory, served upward ----
OUT=$(lo POST /gb/channels "{\"channels\":[{\"id\":\"$CH1\",\"name\":\"大门摄像头\",\"address\":\"一号楼\"},{\"id\":\"$CH2\",\"name\":\"后门摄像头\"},{\"id\":\"$CH3\",\"name\":\"停车场\",\"status\":\"OFF\"}]}")
check "lower: 3 channels imported" test "$(echo "$OUT" | jget 'd["imported"]')" = 3
check "lower: bad channel id refused 400" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $API_TOKEN" --data '{"id":"123","name":"x"}' http://127.0.0.1:$LO_API/api/v1/gb/channels)" = 400
CAT=$(up POST /gb/devices/$LO_ID/catalog)
check "catalog: SumNum 3 assembled by the upper" test "$(echo "$CAT" | jget 'd["sum_num"]')" = 3
check "catalog: Chinese names decoded (GB2312 on the wire)" \
    test "$(echo "$CAT" | jget '",".join(sorted(c["name"] for c in d["channels"]))')" = "停车场,后门摄像头,大门摄像头"
check "catalog: ParentID is the lower platform" \
    test "$(echo "$CAT" | jget 'set(c["parent_id"] for c in d["channels"]) == {"'$LO_ID'"}')" = True
check "catalog: status OFF carried" \
    test "$(echo "$CAT" | jget '[c["status"] for c in d["channels"] if c["id"]=="'$CH3'"][0]')" = OFF
check "catalog: split into one item per MESSAGE" \
    grep -q "catalog of 3 channels assembled from 3 messages" "$WORK/upper.log"
check "lower: charset GB2312 towards this upstream" \
    test "$(lo GET /gb/upstreams | jget 'd["upstreams"][0]["charset"]')" = GB2312

# ---- RecordInfo from the lower's record index ----
python3 - "$WORK/lower.db" "$CH1" <<'PY'
import sqlite3, sys, time
db, ch = sys.argv[1], sys.argv[2]
ms = lambda s: int(time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) * 1000)
c = sqlite3.connect(db, timeout=10)
c.execute("INSERT INTO gb_records(channel_id,start,\"end\",file_path,device_id,name,type,secrecy,size) VALUES(?,?,?,?,?,?,?,?,?)",
          (ch, ms("2026-11-21T08:00:00"), ms("2026-11-21T09:00:00"), "/rec/a.mp4", "", "早班", "time", 0, 1000))
c.execute("INSERT INTO gb_records(channel_id,start,\"end\",file_path,device_id,name,type,secrecy,size) VALUES(?,?,?,?,?,?,?,?,?)",
          (ch, ms("2026-11-21T09:00:00"), ms("2026-11-21T10:00:00"), "/rec/b.mp4", "", "alarm", "alarm", 0, 2000))
c.commit()
PY
REC=$(up POST /gb/devices/$LO_ID/records "{\"channel\":\"$CH1\",\"start\":\"2026-11-21T00:00:00\",\"end\":\"2026-11-22T00:00:00\"}")
check "RecordInfo: 2 records answered" test "$(echo "$REC" | jget 'd["sum_num"]')" = 2
check "RecordInfo: times and names" \
    test "$(echo "$REC" | jget '",".join(r["start"]+"/"+r["name"] for r in sorted(d["records"], key=lambda r: r["start"]))')" = "2026-11-21T08:00:00/早班,2026-11-21T09:00:00/alarm"
REC0=$(up POST /gb/devices/$LO_ID/records "{\"channel\":\"$CH2\",\"start\":\"2026-11-21T00:00:00\",\"end\":\"2026-11-22T00:00:00\"}")
check "RecordInfo: an empty list is an answer" test "$(echo "$REC0" | jget 'd["sum_num"]')" = 0
check "DeviceInfo answered" \
    test "$(up POST /gb/devices/$LO_ID/info | jget 'd["result"]+" "+str(d["channel"])')" = "OK 3"
up POST /gb/devices/$LO_ID/channels/$CH1/ptz '{"cmd":"left","speed":100}' >/dev/null
check "PTZ applied on the lower's channel" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/channels | grep -q '\"last_ptz\": *\"A50F01026400'"

# ---- play from the upper ----
for tr in udp tcp; do
    gb_play_dump up "$LO_ID" "$CH1" "$tr"
    check "play $tr: stream $SID started" test -n "$SID"
    check "play $tr: packets arrive ($PK)" test "${PK:-0}" -gt 20
    check "play $tr: codec h264 from the PSM" test "$(up GET /gb/streams/$SID | jget 'd["codec"]')" = h264
    check "play $tr: no loss" test "$(up GET /gb/streams/$SID | jget 'd["lost"]')" = 0
    check "play $tr: lower sends one stream" test "$(lo GET /gb/upstreams | jget 'len(d["streams"])')" = 1
    up DELETE /gb/streams/$SID >/dev/null
    check "play $tr: BYE stops the lower's stream" \
        wait_for 5 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"streams\"]))')\" = 0 ]"
    check "play $tr: ffprobe reads the dumped PS as h264" test "$(ffprobe_codec "$DUMP")" = h264
done
check "play of an OFF channel refused" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $API_TOKEN" --data '{"transport":"udp"}' http://127.0.0.1:$UP_API/api/v1/gb/devices/$LO_ID/channels/$CH3/play)" != 200

# ---- the upper goes away and comes back ----
kill "$upper_PID"
wait "$upper_PID" 2>/dev/null || true
T0=$SECONDS
LIMIT=$(( (MISSES + 1) * KA + 2 ))
check "upper stopped: lower sees the registration lost within $LIMIT s" \
    wait_for "$LIMIT" bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | grep -q '\"last_error\": *\"keepalive-timeout\"'"
echo "     (lost after $((SECONDS - T0)) s)"
check "gb.upstream.lost logged with keepalive-timeout" grep -q '"gb.upstream.lost".*keepalive-timeout' "$WORK/lower.log"
start_cascade upper "$WORK/upper.ini"
check "upper back: lower registered again" wait_for 25 \
    bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"upstreams\"][0][\"state\"])')\" = registered ]"
check "upper back: lower online there" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$UP_API/api/v1/gb/devices/$LO_ID | grep -q '\"online\": *true'"

# ---- the lower stops: Expires: 0 ----
kill "$lower_PID"
wait "$lower_PID" 2>/dev/null || true
check "lower stopped: upper sees it unregister" \
    wait_for 5 bash -c "grep -q '\"gb.device.offline\".*\"$LO_ID\".*unregister' '$WORK/upper.log'"

finish
